//! What every SQLite database of cells-mount shares (this cache's index, the metadata index
//! and the upload journal): how a connection is set up, and
//! statements compiled once per connection instead of once per call.

use rusqlite::{Connection, Params};

/// Statements kept compiled per connection (the hot ones of the index and the journal fit).
const STATEMENT_CACHE: usize = 64;

/// Settings for a connection that only this process uses, before its first access: the lock
/// is held for good, so SQLite makes no file-lock calls per transaction (dozens per
/// small-file create otherwise) and keeps the WAL index in memory; a second process opening
/// the file is refused (`database is locked`) instead of sharing it.
pub fn own_connection(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// True when `e` says another process holds the database (see [`own_connection`]).
pub fn held_elsewhere(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// `execute` with the statement compiled once per connection: parsing SQL cost more than
/// running it on the write path.
pub trait CachedExecute {
    fn exec(&self, sql: &str, params: impl Params) -> rusqlite::Result<usize>;
}

impl CachedExecute for Connection {
    fn exec(&self, sql: &str, params: impl Params) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_statements_run_like_plain_ones_and_a_second_process_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let conn = Connection::open(&path).unwrap();
        own_connection(&conn).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t(x INTEGER)").unwrap();
        for x in 0..3 {
            assert_eq!(conn.exec("INSERT INTO t(x) VALUES (?1)", [x]).unwrap(), 1);
        }
        assert_eq!(conn.exec("DELETE FROM t WHERE x > ?1", [0]).unwrap(), 2);

        let other = Connection::open(&path).unwrap();
        other
            .busy_timeout(std::time::Duration::from_millis(10))
            .unwrap();
        let refused = other.query_row("SELECT COUNT(*) FROM t", [], |r| r.get::<_, i64>(0));
        assert!(refused.as_ref().is_err_and(held_elsewhere), "{refused:?}");
    }
}
