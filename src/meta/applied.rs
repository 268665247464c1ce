//! Which journaled moves and deletes the index has applied: one row per journal operation,
//! written in the transaction that applies it, so a start after a kill replays exactly those
//! that were journaled and never applied (see `fs::replay`).

use super::{MetaError, MetaResult, MetaStore};
use cells_cache::sqlite::CachedExecute;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::collections::HashSet;

const TABLE: &str = "CREATE TABLE IF NOT EXISTS applied_ops (seq INTEGER PRIMARY KEY);";

/// Set when the table was added to an index that had none: which pending operations that
/// index applied is unknown, and the next replay takes them all as applied (what the
/// versions without the table did).
const UNKNOWN_KEY: &str = "applied_ops_unknown";

fn table_exists(conn: &Connection, name: &str) -> Result<bool, MetaError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Creates the table; `had_index` says whether the index existed before this open.
pub(super) fn create_table(conn: &Connection, had_index: bool) -> Result<(), MetaError> {
    let upgrading = had_index && !table_exists(conn, "applied_ops")?;
    conn.execute_batch(TABLE)?;
    if upgrading {
        conn.exec(
            "INSERT OR REPLACE INTO settings (key, value) VALUES (?1, '1')",
            [UNKNOWN_KEY],
        )?;
    }
    Ok(())
}

pub(super) fn inodes_table_exists(conn: &Connection) -> Result<bool, MetaError> {
    table_exists(conn, "inodes")
}

/// Records, inside the caller's transaction, that the journal operations `seqs` are applied.
pub(super) fn record(tx: &Transaction<'_>, seqs: &[i64]) -> MetaResult<()> {
    let mut stmt = tx.prepare_cached("INSERT OR IGNORE INTO applied_ops (seq) VALUES (?1)")?;
    for seq in seqs {
        stmt.execute([seq])?;
    }
    Ok(())
}

impl MetaStore {
    /// The journal operations recorded as applied; `None` when that is unknown (an index
    /// from before the record existed).
    pub fn applied_journal_ops(&self) -> MetaResult<Option<HashSet<i64>>> {
        let conn = self.conn();
        let unknown = conn
            .query_row(
                "SELECT 1 FROM settings WHERE key = ?1",
                [UNKNOWN_KEY],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if unknown {
            return Ok(None);
        }
        let mut stmt = conn.prepare("SELECT seq FROM applied_ops")?;
        let rows = stmt.query_map([], |r| r.get::<_, i64>(0))?;
        Ok(Some(rows.collect::<Result<_, _>>()?))
    }

    /// Records `seqs` as applied (nothing in the index had to change for them).
    pub fn mark_journal_ops_applied(&self, seqs: &[i64]) -> MetaResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        record(&tx, seqs)?;
        tx.exec("DELETE FROM settings WHERE key = ?1", params![UNKNOWN_KEY])?;
        tx.commit()?;
        Ok(())
    }

    /// Drops the records of operations the journal no longer holds.
    pub fn forget_applied_journal_ops_except(&self, pending: &HashSet<i64>) -> MetaResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let done: Vec<i64> = tx
            .prepare("SELECT seq FROM applied_ops")?
            .query_map([], |r| r.get::<_, i64>(0))?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|s| !pending.contains(s))
            .collect();
        {
            let mut stmt = tx.prepare_cached("DELETE FROM applied_ops WHERE seq = ?1")?;
            for seq in done {
                stmt.execute([seq])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}
