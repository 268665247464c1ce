//! The SQLite node index: one row per file or folder of the data directory (storage paths such
//! as `personal-files/alice/a.txt`), with uuid, storage ETag, Cells hash, size and mtime.
//! Listings and stats are served from here so huge folders are never rescanned per request.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

use crate::hash::ContentHasher;

/// One indexed file or folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Storage path relative to the data directory, `/`-separated.
    pub path: String,
    pub is_dir: bool,
    pub uuid: String,
    /// Storage ETag (plain MD5 hex or `md5-N`); empty for folders.
    pub etag: String,
    /// Cells hash; empty for folders.
    pub hash: String,
    pub size: u64,
    pub mtime: i64,
}

impl Entry {
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

pub struct Index {
    conn: Connection,
}

/// Parent storage path of `path` (`""` for a top-level entry).
pub fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map(|(p, _)| p).unwrap_or("")
}

const COLUMNS: &str = "path, is_dir, uuid, etag, hash, size, mtime";

fn row_to_entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    Ok(Entry {
        path: row.get(0)?,
        is_dir: row.get(1)?,
        uuid: row.get(2)?,
        etag: row.get(3)?,
        hash: row.get(4)?,
        size: row.get::<_, i64>(5)? as u64,
        mtime: row.get(6)?,
    })
}

/// Upper bound (exclusive) of the key range holding every descendant of `path`: `/` + 1 = `0`.
fn subtree_end(path: &str) -> String {
    format!("{path}0")
}

impl Index {
    pub fn open(file: &Path) -> anyhow::Result<Index> {
        let conn = Connection::open(file).with_context(|| format!("open index {file:?}"))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS nodes(
                path TEXT PRIMARY KEY, parent TEXT NOT NULL, name TEXT NOT NULL,
                is_dir INTEGER NOT NULL, uuid TEXT NOT NULL, etag TEXT NOT NULL,
                hash TEXT NOT NULL, size INTEGER NOT NULL, mtime INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS nodes_by_parent ON nodes(parent, name);
             -- Covers `tree_size`: a folder's size is a scan of this index alone. Through the
             -- primary key it was one table lookup per descendant (a workspace of 110,000
             -- files took 200 ms to stat; Cells itself keeps folder sizes ready).
             CREATE INDEX IF NOT EXISTS nodes_sizes ON nodes(path, is_dir, size);",
        )?;
        Ok(Index { conn })
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Option<Entry>> {
        let sql = format!("SELECT {COLUMNS} FROM nodes WHERE path = ?1");
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row(params![path], row_to_entry)
            .optional()?)
    }

    pub fn get_by_uuid(&self, uuid: &str) -> anyhow::Result<Option<Entry>> {
        let sql = format!("SELECT {COLUMNS} FROM nodes WHERE uuid = ?1 LIMIT 1");
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row(params![uuid], row_to_entry)
            .optional()?)
    }

    /// Children of `parent` sorted by name, one page, and the total count.
    pub fn list(
        &self,
        parent: &str,
        offset: u64,
        limit: Option<u64>,
    ) -> anyhow::Result<(Vec<Entry>, u64)> {
        let total: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM nodes WHERE parent = ?1",
            params![parent],
            |r| r.get(0),
        )?;
        let sql = format!(
            "SELECT {COLUMNS} FROM nodes WHERE parent = ?1 ORDER BY name LIMIT ?2 OFFSET ?3"
        );
        let limit = limit.map(|l| l as i64).unwrap_or(-1);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(params![parent, limit, offset as i64], row_to_entry)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((rows, total as u64))
    }

    /// `path` itself (if indexed) and every descendant, sorted by path.
    pub fn subtree(&self, path: &str) -> anyhow::Result<Vec<Entry>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM nodes WHERE path = ?1 OR (path > ?2 AND path < ?3) ORDER BY path"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(
                params![path, format!("{path}/"), subtree_end(path)],
                row_to_entry,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Sum of file sizes below `path` (a folder's recursive size).
    pub fn tree_size(&self, path: &str) -> anyhow::Result<u64> {
        let size: i64 = self.conn.query_row(
            "SELECT COALESCE(SUM(size), 0) FROM nodes WHERE is_dir = 0 AND path > ?1 AND path < ?2",
            params![format!("{path}/"), subtree_end(path)],
            |r| r.get(0),
        )?;
        Ok(size as u64)
    }

    pub fn upsert(&self, e: &Entry) -> anyhow::Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO nodes(path, parent, name, is_dir, uuid, etag, hash, size, mtime)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                e.path,
                parent_of(&e.path),
                e.name(),
                e.is_dir,
                e.uuid,
                e.etag,
                e.hash,
                e.size as i64,
                e.mtime
            ],
        )?;
        Ok(())
    }

    pub fn remove_tree(&self, path: &str) -> anyhow::Result<()> {
        self.conn.execute(
            "DELETE FROM nodes WHERE path = ?1 OR (path > ?2 AND path < ?3)",
            params![path, format!("{path}/"), subtree_end(path)],
        )?;
        Ok(())
    }

    /// Renames `from` and all its descendants to live under `to`, keeping uuids.
    pub fn rename_tree(&mut self, from: &str, to: &str) -> anyhow::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let sql =
                format!("SELECT {COLUMNS} FROM nodes WHERE path = ?1 OR (path > ?2 AND path < ?3)");
            let mut stmt = tx.prepare(&sql)?;
            let rows = stmt
                .query_map(
                    params![from, format!("{from}/"), subtree_end(from)],
                    row_to_entry,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            tx.execute(
                "DELETE FROM nodes WHERE path = ?1 OR (path > ?2 AND path < ?3)",
                params![from, format!("{from}/"), subtree_end(from)],
            )?;
            for mut e in rows {
                e.path = format!("{to}{}", &e.path[from.len()..]);
                tx.execute(
                    "INSERT OR REPLACE INTO nodes(path, parent, name, is_dir, uuid, etag, hash, size, mtime)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        e.path,
                        parent_of(&e.path),
                        e.name(),
                        e.is_dir,
                        e.uuid,
                        e.etag,
                        e.hash,
                        e.size as i64,
                        e.mtime
                    ],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Brings the index up to date with the folders `roots` (storage paths) below `data_dir`:
    /// new files are hashed, files whose size or mtime changed are rehashed, vanished rows go.
    pub fn scan(&mut self, data_dir: &Path, roots: &[String]) -> anyhow::Result<()> {
        let mut known: HashMap<String, Entry> = HashMap::new();
        {
            let sql = format!("SELECT {COLUMNS} FROM nodes");
            let mut stmt = self.conn.prepare(&sql)?;
            for e in stmt.query_map([], row_to_entry)? {
                let e = e?;
                known.insert(e.path.clone(), e);
            }
        }
        let mut found = Vec::new();
        for root in roots {
            // Ancestors of a root (e.g. `personal-files`) are indexed too so parents resolve.
            let mut prefix = String::new();
            for seg in root.split('/') {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(seg);
                found.push((
                    prefix.clone(),
                    true,
                    0u64,
                    mtime_of(&data_dir.join(&prefix)),
                ));
            }
            walk(data_dir, root, &mut found)?;
        }
        let tx = self.conn.transaction()?;
        let mut seen = std::collections::HashSet::new();
        for (path, is_dir, size, mtime) in found {
            if !seen.insert(path.clone()) {
                continue;
            }
            let old = known.get(&path);
            let unchanged = old.is_some_and(|o| {
                o.is_dir == is_dir && (is_dir || (o.size == size && o.mtime == mtime))
            });
            if unchanged {
                continue;
            }
            let uuid = old
                .filter(|o| o.is_dir == is_dir)
                .map(|o| o.uuid.clone())
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let (etag, hash) = if is_dir {
                (String::new(), String::new())
            } else {
                let d = hash_file(&data_dir.join(&path))?;
                (d.etag(), d.cells_hash())
            };
            tx.execute(
                "INSERT OR REPLACE INTO nodes(path, parent, name, is_dir, uuid, etag, hash, size, mtime)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    path,
                    parent_of(&path),
                    path.rsplit('/').next().unwrap_or(&path),
                    is_dir,
                    uuid,
                    etag,
                    hash,
                    size as i64,
                    mtime
                ],
            )?;
        }
        for path in known.keys() {
            if !seen.contains(path) {
                tx.execute("DELETE FROM nodes WHERE path = ?1", params![path])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

pub fn mtime_of(p: &Path) -> i64 {
    std::fs::symlink_metadata(p)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

type Found = Vec<(String, bool, u64, i64)>;

/// Recursive walk; symlinks and names that are not UTF-8 are skipped (never followed).
fn walk(data_dir: &Path, rel: &str, out: &mut Found) -> anyhow::Result<()> {
    let dir = data_dir.join(rel);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("read {dir:?}")),
    };
    for item in rd {
        let item = item?;
        let Ok(name) = item.file_name().into_string() else {
            continue;
        };
        let meta = item.metadata()?;
        let path = format!("{rel}/{name}");
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        if meta.is_dir() {
            out.push((path.clone(), true, 0, mtime));
            walk(data_dir, &path, out)?;
        } else if meta.is_file() {
            out.push((path, false, meta.len(), mtime));
        }
    }
    Ok(())
}

pub fn hash_file(p: &Path) -> anyhow::Result<crate::hash::ContentDigest> {
    let mut f = std::fs::File::open(p).with_context(|| format!("open {p:?}"))?;
    let mut h = ContentHasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_list_rename_and_rescan() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        std::fs::create_dir_all(data.join("common-files/sub")).unwrap();
        std::fs::write(data.join("common-files/b.txt"), b"a").unwrap();
        std::fs::write(data.join("common-files/sub/c.txt"), b"cc").unwrap();
        let mut idx = Index::open(&data.join("index.sqlite")).unwrap();
        let roots = vec!["common-files".to_string()];
        idx.scan(data, &roots).unwrap();
        let (kids, total) = idx.list("common-files", 0, None).unwrap();
        assert_eq!(total, 2);
        assert_eq!(kids[0].name(), "b.txt");
        assert_eq!(kids[0].hash, "b6ff9a06b7e20bcb2858c5b8ff744aea");
        assert_eq!(idx.tree_size("common-files").unwrap(), 3);
        let uuid = idx.get("common-files/sub/c.txt").unwrap().unwrap().uuid;
        idx.rename_tree("common-files/sub", "common-files/moved")
            .unwrap();
        let moved = idx.get("common-files/moved/c.txt").unwrap().unwrap();
        assert_eq!(moved.uuid, uuid);
        assert!(idx.get("common-files/sub").unwrap().is_none());
        // A rescan against the disk (which still has `sub`) restores the truth.
        std::fs::remove_file(data.join("common-files/b.txt")).unwrap();
        idx.scan(data, &roots).unwrap();
        assert!(idx.get("common-files/b.txt").unwrap().is_none());
        assert!(idx.get("common-files/sub/c.txt").unwrap().is_some());
        assert!(idx.get("common-files/moved").unwrap().is_none());
    }
}
