//! The SQLite index: which entries exist, which of their chunks are on disk (with checksums),
//! pins, and last-access ticks. The index is the only authority on presence; a row is only
//! written after the bytes it describes were written and `fdatasync`ed.

use crate::error::CacheError;
use crate::sqlite::{CachedExecute, own_connection};
use rusqlite::{Connection, params};
use std::path::Path;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entries(
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    chunk_size INTEGER NOT NULL,
    dirty INTEGER NOT NULL DEFAULT 0,
    whole_verified INTEGER NOT NULL DEFAULT 0,
    last_access INTEGER NOT NULL DEFAULT 0,
    sum_kind INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS chunks(
    entry_id INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    sum BLOB NOT NULL,
    PRIMARY KEY(entry_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pins(
    key TEXT PRIMARY KEY,
    count INTEGER NOT NULL
) WITHOUT ROWID;
PRAGMA user_version = 2;
";

/// Version 1 to 2: chunk checksums became XXH3-128 (`SumKind`); entries of version 1 keep
/// their MD5 sums, marked as such. New rows get the column's default, the current kind.
const MIGRATE_1_TO_2: &str = "
BEGIN;
ALTER TABLE entries ADD COLUMN sum_kind INTEGER NOT NULL DEFAULT 1;
UPDATE entries SET sum_kind = 0;
PRAGMA user_version = 2;
COMMIT;
";

/// One `entries` row plus the bytes its present chunks hold.
pub struct EntryRow {
    pub id: i64,
    pub key: String,
    pub size: u64,
    pub chunk_size: u64,
    pub dirty: bool,
    pub whole_verified: bool,
    pub last_access: u64,
    pub stored: u64,
    /// `SumKind` of its chunk checksums, as stored.
    pub sum_kind: i64,
}

/// SQLite stores signed 64-bit integers; every size we store is far below `i64::MAX`.
pub fn to_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn from_sql(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub fn open(path: &Path) -> Result<Connection, CacheError> {
    let conn = Connection::open(path)?;
    own_connection(&conn)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // WAL + NORMAL: a power cut may lose the last commits (the cache is evictable, and a lost
    // row only loses a chunk), but never leaves a row without its synced data. Dirty entries
    // are committed with synchronous=FULL, see `insert_entry`.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 1 {
        conn.execute_batch(MIGRATE_1_TO_2)?;
    }
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

pub fn load_entries(conn: &Connection) -> Result<Vec<EntryRow>, CacheError> {
    let mut stmt = conn.prepare(
        "SELECT e.id, e.key, e.size, e.chunk_size, e.dirty, e.whole_verified, e.last_access,
           e.sum_kind, COALESCE((SELECT SUM(MIN(e.chunk_size, e.size - c.idx * e.chunk_size))
                     FROM chunks c WHERE c.entry_id = e.id AND c.idx * e.chunk_size < e.size), 0)
         FROM entries e",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(EntryRow {
            id: r.get(0)?,
            key: r.get(1)?,
            size: from_sql(r.get(2)?),
            chunk_size: from_sql(r.get(3)?),
            dirty: r.get(4)?,
            whole_verified: r.get(5)?,
            last_access: from_sql(r.get(6)?),
            sum_kind: r.get(7)?,
            stored: from_sql(r.get(8)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Present chunks of one entry: (index, checksum). Malformed checksums are skipped (the chunk
/// then counts as missing and will be fetched again).
pub fn load_chunks(conn: &Connection, entry_id: i64) -> Result<Vec<(u64, [u8; 16])>, CacheError> {
    let mut stmt = conn.prepare_cached("SELECT idx, sum FROM chunks WHERE entry_id = ?1")?;
    let rows = stmt.query_map([entry_id], |r| {
        Ok((from_sql(r.get(0)?), r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (idx, sum) = row?;
        if let Ok(sum) = <[u8; 16]>::try_from(sum.as_slice()) {
            out.push((idx, sum));
        }
    }
    Ok(out)
}

pub fn create_entry(
    conn: &Connection,
    key: &str,
    size: u64,
    chunk: u64,
) -> Result<i64, CacheError> {
    conn.exec(
        "INSERT INTO entries(key, size, chunk_size) VALUES (?1, ?2, ?3)",
        params![key, to_sql(size), to_sql(chunk)],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Inserts a complete entry with all its chunk checksums in one transaction. A dirty entry
/// inserted with `sync` is the only copy of a user's save, so its commit is made durable
/// (synchronous=FULL).
pub struct NewEntry<'a> {
    pub key: &'a str,
    pub size: u64,
    pub chunk: u64,
    pub dirty: bool,
    pub whole_verified: bool,
    pub last_access: u64,
    pub sums: &'a [[u8; 16]],
}

pub fn insert_entry(
    conn: &mut Connection,
    e: &NewEntry<'_>,
    sync: bool,
) -> Result<i64, CacheError> {
    let full = e.dirty && sync;
    if full {
        conn.pragma_update(None, "synchronous", "FULL")?;
    }
    let result = (|| {
        let tx = conn.transaction()?;
        tx.exec(
            "INSERT INTO entries(key, size, chunk_size, dirty, whole_verified, last_access)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                e.key,
                to_sql(e.size),
                to_sql(e.chunk),
                e.dirty,
                e.whole_verified,
                to_sql(e.last_access)
            ],
        )?;
        let id = tx.last_insert_rowid();
        {
            let mut stmt =
                tx.prepare_cached("INSERT INTO chunks(entry_id, idx, sum) VALUES (?1, ?2, ?3)")?;
            for (idx, sum) in e.sums.iter().enumerate() {
                stmt.execute(params![id, to_sql(idx as u64), &sum[..]])?;
            }
        }
        tx.commit()?;
        Ok(id)
    })();
    if full {
        conn.pragma_update(None, "synchronous", "NORMAL")?;
    }
    result
}

pub fn add_chunks(
    conn: &mut Connection,
    entry_id: i64,
    chunks: &[(u64, [u8; 16])],
) -> Result<(), CacheError> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT OR REPLACE INTO chunks(entry_id, idx, sum) VALUES (?1, ?2, ?3)",
        )?;
        for (idx, sum) in chunks {
            stmt.execute(params![entry_id, to_sql(*idx), &sum[..]])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Forgets one chunk and, since the entry is no longer complete, its whole-content verdict.
pub fn drop_chunk(conn: &mut Connection, entry_id: i64, idx: u64) -> Result<(), CacheError> {
    let tx = conn.transaction()?;
    tx.exec(
        "DELETE FROM chunks WHERE entry_id = ?1 AND idx = ?2",
        params![entry_id, to_sql(idx)],
    )?;
    tx.exec(
        "UPDATE entries SET whole_verified = 0 WHERE id = ?1",
        [entry_id],
    )?;
    tx.commit()?;
    Ok(())
}

pub fn delete_entry(conn: &Connection, entry_id: i64) -> Result<(), CacheError> {
    conn.exec("DELETE FROM entries WHERE id = ?1", [entry_id])?;
    Ok(())
}

pub fn set_flag(
    conn: &Connection,
    entry_id: i64,
    column: Flag,
    value: bool,
) -> Result<(), CacheError> {
    let sql = match column {
        Flag::Dirty => "UPDATE entries SET dirty = ?2 WHERE id = ?1",
        Flag::WholeVerified => "UPDATE entries SET whole_verified = ?2 WHERE id = ?1",
    };
    conn.exec(sql, params![entry_id, value])?;
    Ok(())
}

#[derive(Clone, Copy)]
pub enum Flag {
    Dirty,
    WholeVerified,
}

pub fn save_access(conn: &mut Connection, ticks: &[(i64, u64)]) -> Result<(), CacheError> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached("UPDATE entries SET last_access = ?2 WHERE id = ?1")?;
        for (id, tick) in ticks {
            stmt.execute(params![id, to_sql(*tick)])?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub fn load_pins(conn: &Connection) -> Result<Vec<(String, u32)>, CacheError> {
    let mut stmt = conn.prepare("SELECT key, count FROM pins WHERE count > 0")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn save_pin(conn: &Connection, key: &str, count: u32) -> Result<(), CacheError> {
    if count == 0 {
        conn.exec("DELETE FROM pins WHERE key = ?1", [key])?;
    } else {
        conn.exec(
            "INSERT INTO pins(key, count) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET count = excluded.count",
            params![key, count],
        )?;
    }
    Ok(())
}
