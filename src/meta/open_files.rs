//! Durable records of the write path's staging files (`STATE/open/`): which inode each one
//! belongs to and the version its edit started from. They let a start after a crash find
//! content that was written but never handed to the upload journal (no close, flush or fsync
//! happened), instead of losing it.

use super::schema::version_to_sql;
use super::{LocalState, MetaResult, MetaStore, now_ms};
use crate::client::{ContentVersion, HashKind};
use crate::fs::Ino;
use cells_cache::sqlite::CachedExecute;
use rusqlite::params;

const TABLE: &str = "
CREATE TABLE IF NOT EXISTS open_staging (
    file TEXT PRIMARY KEY,
    ino INTEGER NOT NULL,
    path TEXT NOT NULL,
    base_kind INTEGER,
    base_value TEXT,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
";

/// One staging file as recorded when it was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenStaging {
    /// File name inside `STATE/open/` (never a path).
    pub file: String,
    pub ino: Ino,
    /// The remote path the inode had when the file was created (renames may follow).
    pub path: String,
    /// The version the edit started from; `None` for a file created here.
    pub base: Option<ContentVersion>,
}

fn kind_from_sql(v: i64) -> Option<HashKind> {
    match v {
        0 => Some(HashKind::CellsHash),
        1 => Some(HashKind::PlainMd5),
        2 => Some(HashKind::OpaqueEtag),
        _ => None,
    }
}

/// The row of [`MetaStore::record_open_staging`], inside the caller's transaction.
pub(super) fn write_open_staging(conn: &rusqlite::Connection, rec: &OpenStaging) -> MetaResult<()> {
    let (vk, vv) = version_to_sql(rec.base.as_ref());
    conn.exec(
        "INSERT OR REPLACE INTO open_staging (file, ino, path, base_kind, base_value,
         created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![rec.file, rec.ino as i64, rec.path, vk, vv, now_ms()],
    )?;
    Ok(())
}

impl MetaStore {
    /// Creates the table if needed; called before any other method of this module.
    pub fn init_open_staging(&self) -> MetaResult<()> {
        self.conn().execute_batch(TABLE)?;
        Ok(())
    }

    /// Records a staging file (replacing a record of the same name). Durable on return as far
    /// as a process crash goes (WAL, committed).
    pub fn record_open_staging(&self, rec: &OpenStaging) -> MetaResult<()> {
        write_open_staging(&self.conn(), rec)
    }

    /// Forgets a staging file (handed to the journal, or discarded).
    pub fn forget_open_staging(&self, file: &str) -> MetaResult<()> {
        self.conn()
            .exec("DELETE FROM open_staging WHERE file = ?1", [file])?;
        Ok(())
    }

    /// A staging file handed to the journal as `version`: its record goes and the inode
    /// shows the saved content, in one transaction. (Two would let a kill between them leave
    /// the index at the old version with nothing left to tell a restart otherwise.)
    pub fn hand_over_open_staging(
        &self,
        file: &str,
        ino: Ino,
        size: u64,
        mtime: i64,
        version: &ContentVersion,
    ) -> MetaResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.exec("DELETE FROM open_staging WHERE file = ?1", [file])?;
        super::local::write_local_content(
            &tx,
            ino,
            size,
            mtime,
            Some(version),
            LocalState::Pending,
        )?;
        tx.commit()?;
        self.inner.by_ino.invalidate(&ino);
        Ok(())
    }

    /// Every recorded staging file, oldest first. A row with an unknown version kind is
    /// returned without base (its content is then treated as changed: it is never lost).
    pub fn open_staging(&self) -> MetaResult<Vec<OpenStaging>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT file, ino, path, base_kind, base_value FROM open_staging
             ORDER BY created_at, file",
        )?;
        let rows = stmt.query_map([], |r| {
            let kind: Option<i64> = r.get(3)?;
            let value: Option<String> = r.get(4)?;
            let base = match (kind.and_then(kind_from_sql), value) {
                (Some(kind), Some(value)) => Some(ContentVersion { kind, value }),
                _ => None,
            };
            Ok(OpenStaging {
                file: r.get(0)?,
                ino: r.get::<_, i64>(1)? as Ino,
                path: r.get(2)?,
                base,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::RemotePath;

    #[test]
    fn records_survive_reopening_and_can_be_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let root = RemotePath::parse("personal-files").unwrap();
        let a = OpenStaging {
            file: "7-1".into(),
            ino: 7,
            path: "personal-files/a.txt".into(),
            base: Some(ContentVersion {
                kind: HashKind::CellsHash,
                value: "abc".into(),
            }),
        };
        let b = OpenStaging {
            file: "8-2".into(),
            ino: 8,
            path: "personal-files/b.txt".into(),
            base: None,
        };
        {
            let m = MetaStore::open(dir.path(), &root).unwrap();
            m.init_open_staging().unwrap();
            m.record_open_staging(&a).unwrap();
            m.record_open_staging(&b).unwrap();
        }
        let m = MetaStore::open(dir.path(), &root).unwrap();
        m.init_open_staging().unwrap();
        let mut got = m.open_staging().unwrap();
        got.sort_by(|x, y| x.file.cmp(&y.file));
        assert_eq!(got, vec![a.clone(), b]);
        m.forget_open_staging("8-2").unwrap();
        assert_eq!(m.open_staging().unwrap(), vec![a]);
    }
}
