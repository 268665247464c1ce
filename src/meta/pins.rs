//! Offline pins in the index: the pinned roots the user asked for (a folder pin covers
//! everything below it, including what appears later), and for every file below them the
//! cache key this mount holds one `Cache::pin` count for, so the counts can be given back
//! exactly (version changes, unpins) and re-checked after a crash.

use super::{MetaResult, MetaStore, now_ms};
use crate::names::RemotePath;
use cells_cache::sqlite::CachedExecute;
use rusqlite::{Connection, OptionalExtension, params};

/// Tables of this module. Kept apart from the inode tables: pins are the user's choices, not
/// a cache of the server, so an index rebuild must not lose them.
pub(super) const PIN_TABLES: &str = "
CREATE TABLE IF NOT EXISTS pins (
    path TEXT PRIMARY KEY,
    pinned_at INTEGER NOT NULL
) WITHOUT ROWID;
-- One row = one count of `Cache::pin(key)` held for the file at `path`.
CREATE TABLE IF NOT EXISTS pinned_content (
    path TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    size INTEGER NOT NULL
) WITHOUT ROWID;
";

pub(super) fn create_tables(conn: &Connection) -> MetaResult<()> {
    conn.execute_batch(PIN_TABLES)?;
    Ok(())
}

/// One file whose content this mount keeps pinned in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedContent {
    pub path: RemotePath,
    pub key: String,
    pub size: u64,
}

/// SQL condition "column `col` is `?N` or below it" that treats `%` and `_` in names
/// literally (LIKE would not).
fn below(col: &str, n: usize) -> String {
    format!("({col} = ?{n} OR ?{n} = '' OR substr({col}, 1, length(?{n}) + 1) = ?{n} || '/')")
}

fn parse_path(raw: String) -> MetaResult<RemotePath> {
    RemotePath::parse(&raw)
        .map_err(|e| super::MetaError::Corrupt(format!("stored pin path refused: {e}")))
}

impl MetaStore {
    /// Records a pin root; false when it was already pinned.
    pub fn add_pin(&self, path: &RemotePath) -> MetaResult<bool> {
        let conn = self.conn();
        let n = conn.exec(
            "INSERT OR IGNORE INTO pins (path, pinned_at) VALUES (?1, ?2)",
            params![path.as_str(), now_ms()],
        )?;
        Ok(n > 0)
    }

    /// Forgets a pin root; false when it was not pinned.
    pub fn remove_pin(&self, path: &RemotePath) -> MetaResult<bool> {
        let conn = self.conn();
        let n = conn.exec("DELETE FROM pins WHERE path = ?1", [path.as_str()])?;
        Ok(n > 0)
    }

    /// Every pin root, in path order.
    pub fn pin_roots(&self) -> MetaResult<Vec<RemotePath>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT path FROM pins ORDER BY path")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for raw in rows {
            out.push(parse_path(raw?)?);
        }
        Ok(out)
    }

    /// The key pinned for the file at `path`, if any.
    pub fn pinned_key(&self, path: &RemotePath) -> MetaResult<Option<String>> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                "SELECT key FROM pinned_content WHERE path = ?1",
                [path.as_str()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Records that `key` is pinned for `path`; returns the key it replaces (whose cache pin
    /// the caller gives back).
    pub fn set_pinned_content(
        &self,
        path: &RemotePath,
        key: &str,
        size: u64,
    ) -> MetaResult<Option<String>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let old: Option<String> = tx
            .query_row(
                "SELECT key FROM pinned_content WHERE path = ?1",
                [path.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        tx.exec(
            "INSERT OR REPLACE INTO pinned_content (path, key, size) VALUES (?1, ?2, ?3)",
            params![path.as_str(), key, i64::try_from(size).unwrap_or(i64::MAX)],
        )?;
        tx.commit()?;
        Ok(old.filter(|o| o != key))
    }

    /// Forgets the pinned content of `path`; returns its key.
    pub fn remove_pinned_content(&self, path: &RemotePath) -> MetaResult<Option<String>> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                "DELETE FROM pinned_content WHERE path = ?1 RETURNING key",
                [path.as_str()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Pinned content at or below `root` (everything for the root path).
    pub fn pinned_content_under(&self, root: &RemotePath) -> MetaResult<Vec<PinnedContent>> {
        let conn = self.conn();
        let sql = format!(
            "SELECT path, key, size FROM pinned_content WHERE {} ORDER BY path",
            below("path", 1)
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([root.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (path, key, size) = row?;
            out.push(PinnedContent {
                path: parse_path(path)?,
                key,
                size: size.max(0) as u64,
            });
        }
        Ok(out)
    }

    /// Number of pinned files and the sum of their sizes, counting shared content once.
    pub fn pinned_totals(&self) -> MetaResult<(u64, u64)> {
        let conn = self.conn();
        let files: i64 = conn.query_row("SELECT COUNT(*) FROM pinned_content", [], |r| r.get(0))?;
        let bytes: i64 = conn.query_row(
            "SELECT COALESCE(SUM(size), 0) FROM
             (SELECT key, MAX(size) AS size FROM pinned_content GROUP BY key)",
            [],
            |r| r.get(0),
        )?;
        Ok((files.max(0) as u64, bytes.max(0) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, MetaStore) {
        let dir = tempfile::tempdir().unwrap();
        let root = RemotePath::parse("ws").unwrap();
        let m = MetaStore::open(dir.path(), &root).unwrap();
        (dir, m)
    }

    fn p(s: &str) -> RemotePath {
        RemotePath::parse(s).unwrap()
    }

    #[test]
    fn pin_roots_are_durable_and_idempotent() {
        let (dir, m) = store();
        assert!(m.add_pin(&p("ws/a")).unwrap());
        assert!(!m.add_pin(&p("ws/a")).unwrap());
        assert!(m.add_pin(&p("ws/b c")).unwrap());
        drop(m);
        let m = MetaStore::open(dir.path(), &p("ws")).unwrap();
        assert_eq!(m.pin_roots().unwrap(), vec![p("ws/a"), p("ws/b c")]);
        assert!(m.remove_pin(&p("ws/a")).unwrap());
        assert!(!m.remove_pin(&p("ws/a")).unwrap());
        assert_eq!(m.pin_roots().unwrap(), vec![p("ws/b c")]);
    }

    #[test]
    fn content_rows_report_replaced_keys_and_match_subtrees_literally() {
        let (_dir, m) = store();
        assert_eq!(m.set_pinned_content(&p("ws/a/x"), "c1", 10).unwrap(), None);
        assert_eq!(m.set_pinned_content(&p("ws/a/x"), "c1", 10).unwrap(), None);
        assert_eq!(
            m.set_pinned_content(&p("ws/a/x"), "c2", 12).unwrap(),
            Some("c1".to_owned())
        );
        m.set_pinned_content(&p("ws/a_/y"), "c2", 12).unwrap();
        m.set_pinned_content(&p("ws/ab"), "c3", 5).unwrap();
        let under: Vec<_> = m
            .pinned_content_under(&p("ws/a"))
            .unwrap()
            .into_iter()
            .map(|c| c.path)
            .collect();
        assert_eq!(under, vec![p("ws/a/x")]);
        assert_eq!(
            m.pinned_content_under(&RemotePath::root()).unwrap().len(),
            3
        );
        // c2 is shared by two files and counted once.
        assert_eq!(m.pinned_totals().unwrap(), (3, 17));
        assert_eq!(
            m.remove_pinned_content(&p("ws/a/x")).unwrap(),
            Some("c2".into())
        );
        assert_eq!(m.remove_pinned_content(&p("ws/a/x")).unwrap(), None);
        assert_eq!(m.pinned_key(&p("ws/ab")).unwrap(), Some("c3".into()));
    }
}
