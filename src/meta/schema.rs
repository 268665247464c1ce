//! The SQLite schema of the metadata index, connection set-up, and row <-> record mapping.

use super::{InodeRecord, LocalState, MetaError};
use crate::client::{ContentVersion, HashKind, NodeKind};
use crate::fs::Ino;
use crate::names::RemotePath;
use rusqlite::{Connection, Row};
use std::path::Path;

/// Bumped whenever the tables change shape; an index of another version is rebuilt (it is a
/// cache of the server's tree, so nothing is lost but inode numbers).
pub const SCHEMA_VERSION: i64 = 2;

/// `parent` of the root row: no real inode has this number.
pub const ROOT_PARENT: i64 = 0;
/// `parent` of rows displaced during a listing that may still be claimed by a move; purged at
/// the end of the transaction.
pub const DETACHED_PARENT: i64 = -1;

/// Columns in the order [`record_from_row`] reads them.
pub const COLUMNS: &str = "ino, parent, name, path, kind, size, mtime, version_kind, \
     version_value, uuid, read_only, listed_at, seen_at, local_state, local_error";

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- AUTOINCREMENT: a deleted row's ino is never handed out again, so the kernel cannot mistake
-- a new node for an old one it still remembers.
CREATE TABLE IF NOT EXISTS inodes (
    ino INTEGER PRIMARY KEY AUTOINCREMENT,
    parent INTEGER NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    kind INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime INTEGER NOT NULL,
    version_kind INTEGER,
    version_value TEXT,
    uuid TEXT,
    read_only INTEGER NOT NULL,
    listed_at INTEGER,
    seen_at INTEGER NOT NULL,
    -- The local-state overlay (see `local`): NULL = as the server described it.
    local_state INTEGER,
    local_error TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS inodes_by_name ON inodes(parent, name);
CREATE INDEX IF NOT EXISTS inodes_by_uuid ON inodes(uuid) WHERE uuid IS NOT NULL;
CREATE INDEX IF NOT EXISTS inodes_by_path ON inodes(path);
-- Names deleted or moved away locally whose server-side change is still queued: a listing
-- must not bring them back.
CREATE TABLE IF NOT EXISTS tombstones (
    parent INTEGER NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (parent, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tombstones_by_path ON tombstones(path);
-- Pages of a listing in progress; moved into `inodes` in one transaction when complete.
CREATE TABLE IF NOT EXISTS listing_stage (
    parent INTEGER NOT NULL,
    name TEXT NOT NULL,
    kind INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime INTEGER NOT NULL,
    version_kind INTEGER,
    version_value TEXT,
    uuid TEXT,
    read_only INTEGER NOT NULL,
    PRIMARY KEY (parent, name)
) WITHOUT ROWID;
";

/// Opens (creating if needed) `index.sqlite` in `state_dir` with WAL journaling.
pub fn open_connection(state_dir: &Path) -> Result<Connection, MetaError> {
    std::fs::create_dir_all(state_dir)?;
    let conn = Connection::open(state_dir.join("index.sqlite"))?;
    cells_cache::sqlite::own_connection(&conn)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL is durable enough for an index the server can always rebuild.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version != 0 && version != SCHEMA_VERSION {
        conn.execute_batch(
            "DROP TABLE IF EXISTS inodes; DROP TABLE IF EXISTS listing_stage;
             DROP TABLE IF EXISTS settings; DROP TABLE IF EXISTS tombstones;
             DROP TABLE IF EXISTS applied_ops;",
        )?;
    }
    let had_index = super::applied::inodes_table_exists(&conn)?;
    conn.execute_batch(TABLES)?;
    super::applied::create_table(&conn, had_index)?;
    super::pins::create_tables(&conn)?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    // A listing interrupted by a crash left half a folder here; it is simply redone.
    conn.execute("DELETE FROM listing_stage", [])?;
    Ok(conn)
}

pub fn kind_to_sql(kind: NodeKind) -> i64 {
    match kind {
        NodeKind::File => 0,
        NodeKind::Folder => 1,
    }
}

fn kind_from_sql(v: i64) -> Result<NodeKind, MetaError> {
    match v {
        0 => Ok(NodeKind::File),
        1 => Ok(NodeKind::Folder),
        other => Err(MetaError::Corrupt(format!("unknown node kind {other}"))),
    }
}

/// Splits a version into the two columns that store it.
pub fn version_to_sql(v: Option<&ContentVersion>) -> (Option<i64>, Option<&str>) {
    match v {
        None => (None, None),
        Some(v) => {
            let k = match v.kind {
                HashKind::CellsHash => 0,
                HashKind::PlainMd5 => 1,
                HashKind::OpaqueEtag => 2,
            };
            (Some(k), Some(v.value.as_str()))
        }
    }
}

fn version_from_sql(
    kind: Option<i64>,
    value: Option<String>,
) -> Result<Option<ContentVersion>, MetaError> {
    let (Some(kind), Some(value)) = (kind, value) else {
        return Ok(None);
    };
    let kind = match kind {
        0 => HashKind::CellsHash,
        1 => HashKind::PlainMd5,
        2 => HashKind::OpaqueEtag,
        other => return Err(MetaError::Corrupt(format!("unknown version kind {other}"))),
    };
    Ok(Some(ContentVersion { kind, value }))
}

/// The raw columns of one row, read without interpretation so that rusqlite's closure stays
/// infallible apart from SQL errors.
pub struct RawRow {
    ino: i64,
    parent: i64,
    name: String,
    path: String,
    kind: i64,
    size: i64,
    mtime: i64,
    version_kind: Option<i64>,
    version_value: Option<String>,
    uuid: Option<String>,
    read_only: bool,
    listed_at: Option<i64>,
    seen_at: i64,
    local_state: Option<i64>,
    local_error: Option<String>,
}

pub fn raw_row(row: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        ino: row.get(0)?,
        parent: row.get(1)?,
        name: row.get(2)?,
        path: row.get(3)?,
        kind: row.get(4)?,
        size: row.get(5)?,
        mtime: row.get(6)?,
        version_kind: row.get(7)?,
        version_value: row.get(8)?,
        uuid: row.get(9)?,
        read_only: row.get(10)?,
        listed_at: row.get(11)?,
        seen_at: row.get(12)?,
        local_state: row.get(13)?,
        local_error: row.get(14)?,
    })
}

/// Interprets a row. The path is validated again: the index is a file on disk, and a damaged
/// or tampered one must not become a way to name things outside the tree.
pub fn record_from_raw(raw: RawRow) -> Result<InodeRecord, MetaError> {
    let path = RemotePath::parse(&raw.path)
        .map_err(|e| MetaError::Corrupt(format!("stored path refused: {e}")))?;
    Ok(InodeRecord {
        ino: raw.ino as Ino,
        parent: raw.parent.max(0) as Ino,
        name: raw.name,
        path,
        kind: kind_from_sql(raw.kind)?,
        size: raw.size.max(0) as u64,
        mtime: raw.mtime,
        version: version_from_sql(raw.version_kind, raw.version_value)?,
        uuid: raw.uuid,
        read_only: raw.read_only,
        listed_at: raw.listed_at,
        seen_at: raw.seen_at,
        local: raw.local_state.map(LocalState::from_sql).transpose()?,
        local_error: raw.local_error,
    })
}
