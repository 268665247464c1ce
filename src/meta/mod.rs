//! The metadata index: every inode the mount has seen, in SQLite (WAL, under the state
//! directory) with a moka cache in front. Owns inode numbering (stable across restarts, never
//! reused), folder listings (replaced atomically) and staleness bookkeeping.
//!
//! All methods block (SQLite); async callers run them on `spawn_blocking`.

mod applied;
mod apply;
mod listing;
mod local;
mod open_files;
mod pins;
mod schema;
#[cfg(test)]
mod tests;

pub use listing::StagedNode;
pub use local::{LocalState, NewLocal, Settled};
pub use open_files::OpenStaging;
pub use pins::PinnedContent;

use crate::client::{ContentVersion, NodeKind};
use crate::fs::{Ino, ROOT_INO};
use crate::names::RemotePath;
use cells_cache::sqlite::CachedExecute;
use moka::sync::Cache as MokaCache;
use rusqlite::{Connection, OptionalExtension, params};
use schema::{COLUMNS, raw_row, record_from_raw};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum MetaError {
    #[error("metadata index: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("metadata index is damaged: {0}")]
    Corrupt(String),
    #[error("metadata index I/O: {0}")]
    Io(#[from] std::io::Error),
}

pub type MetaResult<T> = Result<T, MetaError>;

/// One inode as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InodeRecord {
    pub ino: Ino,
    pub parent: Ino,
    pub name: String,
    pub path: RemotePath,
    pub kind: NodeKind,
    pub size: u64,
    /// Unix seconds.
    pub mtime: i64,
    pub version: Option<ContentVersion>,
    pub uuid: Option<String>,
    pub read_only: bool,
    /// Unix milliseconds of the last complete listing of this folder's children; `None` =
    /// never listed, `Some(0)` = listed once but marked stale.
    pub listed_at: Option<i64>,
    /// Unix milliseconds when the server last described this node.
    pub seen_at: i64,
    /// The local-state overlay: `None` = as the server described it.
    pub local: Option<LocalState>,
    /// Why the last sync of this node failed (with [`LocalState::Error`]).
    pub local_error: Option<String>,
}

impl InodeRecord {
    pub fn is_dir(&self) -> bool {
        self.kind == NodeKind::Folder
    }

    /// True when local changes not yet on the server make this row authoritative: server
    /// listings and events must neither remove nor overwrite it.
    pub fn is_protected(&self) -> bool {
        self.local.is_some_and(LocalState::is_protected)
    }
}

/// What a change to the index means for the kernel's caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaChange {
    /// `name` in `parent` no longer names what it did (removed, moved away, replaced).
    EntryGone { parent: Ino, name: String },
    /// `name` now exists in `parent`, a folder listed before (a negative entry may be cached).
    EntryAdded { parent: Ino, name: String },
    /// Attributes or content of `ino` changed.
    Changed { ino: Ino, content: bool },
}

/// The index. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct MetaStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<Connection>,
    by_ino: MokaCache<Ino, Arc<InodeRecord>>,
    by_name: MokaCache<(Ino, String), Ino>,
    /// Unix milliseconds since which every description may have missed a server change:
    /// when this process opened the index (events of the time it was down are lost), moved
    /// forward by each feed resync. Listings and descriptions older than this are stale, but
    /// still good to show while they are refreshed (stale-while-revalidate). Kept in memory
    /// only, so a resync writes nothing.
    stale_before_ms: AtomicI64,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl MetaStore {
    /// Opens the index in `state_dir` (created if needed). `root` is the remote path shown at
    /// the mount root; when it differs from the stored one, the old tree is dropped (inode
    /// numbers still never repeat).
    pub fn open(state_dir: &Path, root: &RemotePath) -> MetaResult<Self> {
        let conn = schema::open_connection(state_dir)?;
        let stored: Option<String> = conn
            .query_row(
                "SELECT value FROM settings WHERE key = 'root_path'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        if stored.as_deref() != Some(root.as_str()) {
            conn.execute_batch("BEGIN IMMEDIATE")?;
            let reset = (|| -> MetaResult<()> {
                conn.exec("DELETE FROM inodes", [])?;
                conn.exec(
                    "INSERT INTO inodes (ino, parent, name, path, kind, size, mtime, read_only,
                     seen_at) VALUES (?1, ?2, '', ?3, 1, 0, 0, 0, 0)",
                    params![ROOT_INO as i64, schema::ROOT_PARENT, root.as_str()],
                )?;
                conn.exec(
                    "INSERT OR REPLACE INTO settings (key, value) VALUES ('root_path', ?1)",
                    [root.as_str()],
                )?;
                Ok(())
            })();
            match reset {
                Ok(()) => conn.execute_batch("COMMIT")?,
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    return Err(e);
                }
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                by_ino: MokaCache::new(200_000),
                by_name: MokaCache::new(200_000),
                stale_before_ms: AtomicI64::new(now_ms()),
            }),
        })
    }

    /// The connection. A panic while it was held leaves no open transaction behind (rusqlite
    /// rolls back on drop), so a poisoned lock is still safe to use.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.inner
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn query_one(
        conn: &Connection,
        where_clause: &str,
        params: impl rusqlite::Params,
    ) -> MetaResult<Option<InodeRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM inodes WHERE {where_clause}");
        let raw = conn
            .prepare_cached(&sql)?
            .query_row(params, raw_row)
            .optional()?;
        raw.map(record_from_raw).transpose()
    }

    /// One inode by number.
    pub fn get(&self, ino: Ino) -> MetaResult<Option<Arc<InodeRecord>>> {
        if let Some(hit) = self.inner.by_ino.get(&ino) {
            return Ok(Some(hit));
        }
        let conn = self.conn();
        let rec = Self::query_one(&conn, "ino = ?1 AND parent >= 0", [ino as i64])?;
        Ok(rec.map(|r| {
            let r = Arc::new(r);
            // Filled while the connection is held, so a writer cannot slip in between.
            self.inner.by_ino.insert(ino, r.clone());
            r
        }))
    }

    /// Listings and node descriptions made before this time (Unix ms) may have missed server
    /// changes (made by an earlier session, or before a feed resync): they are shown, but
    /// refreshed first chance.
    pub fn stale_before_ms(&self) -> i64 {
        self.inner.stale_before_ms.load(Ordering::Acquire)
    }

    /// One inode from the in-memory cache only (never touches SQLite, so it needs no
    /// blocking thread): `None` when it is not cached, whatever the index holds.
    pub fn cached(&self, ino: Ino) -> Option<Arc<InodeRecord>> {
        self.inner.by_ino.get(&ino)
    }

    /// The child `name` of `parent` from the in-memory caches only (never touches SQLite, so
    /// it needs no blocking thread): `None` when it is not cached, whatever the index holds.
    pub fn cached_child(&self, parent: Ino, name: &str) -> Option<Arc<InodeRecord>> {
        let ino = self.inner.by_name.get(&(parent, name.to_owned()))?;
        self.inner
            .by_ino
            .get(&ino)
            .filter(|rec| rec.parent == parent && rec.name == name)
    }

    /// The child `name` of `parent`.
    pub fn child(&self, parent: Ino, name: &str) -> MetaResult<Option<Arc<InodeRecord>>> {
        let key = (parent, name.to_owned());
        if let Some(ino) = self.inner.by_name.get(&key)
            && let Some(rec) = self.get(ino)?
            && rec.parent == parent
            && rec.name == name
        {
            return Ok(Some(rec));
        }
        self.child_from_index(&self.conn(), parent, name)
    }

    /// [`Self::child`] from the caches, or from the index if its connection is free at once:
    /// `None` when it is busy (a thread that must never wait on the index asks elsewhere).
    pub fn try_child(
        &self,
        parent: Ino,
        name: &str,
    ) -> Option<MetaResult<Option<Arc<InodeRecord>>>> {
        if let Some(rec) = self.cached_child(parent, name) {
            return Some(Ok(Some(rec)));
        }
        let conn = match self.inner.conn.try_lock() {
            Ok(conn) => conn,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        Some(self.child_from_index(&conn, parent, name))
    }

    /// The child `name` of `parent` read from SQLite and put in the caches.
    fn child_from_index(
        &self,
        conn: &Connection,
        parent: Ino,
        name: &str,
    ) -> MetaResult<Option<Arc<InodeRecord>>> {
        let rec = Self::query_one(
            conn,
            "parent = ?1 AND name = ?2",
            params![parent as i64, name],
        )?;
        Ok(rec.map(|r| {
            let r = Arc::new(r);
            // Filled while the connection is held, so a writer cannot slip in between.
            self.inner.by_name.insert((parent, name.to_owned()), r.ino);
            self.inner.by_ino.insert(r.ino, r.clone());
            r
        }))
    }

    /// The inode at a remote path, if known.
    pub fn by_path(&self, path: &RemotePath) -> MetaResult<Option<Arc<InodeRecord>>> {
        let conn = self.conn();
        let rec = Self::query_one(&conn, "path = ?1 AND parent >= 0", [path.as_str()])?;
        Ok(rec.map(Arc::new))
    }

    /// The inode numbers of `parent`'s children, ordered by name: a readdir snapshot.
    pub fn child_inos(&self, parent: Ino) -> MetaResult<Vec<Ino>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT ino FROM inodes WHERE parent = ?1 ORDER BY name")?;
        let rows = stmt.query_map([parent as i64], |r| r.get::<_, i64>(0))?;
        let mut out = Vec::new();
        for ino in rows {
            out.push(ino? as Ino);
        }
        Ok(out)
    }

    /// [`Self::child_inos`] for a readdir: the children's records are read in the same query
    /// and put in the caches, so the readdir that follows needs no query per child (one scan
    /// instead of one lookup per entry: the cost of listing a big folder after a restart).
    /// When every child is cached already (a warm folder), only the index is scanned: reading
    /// and caching 10,000 records again was most of a warm `ls -l`'s cost.
    pub fn snapshot_children(&self, parent: Ino) -> MetaResult<Vec<Ino>> {
        let conn = self.conn();
        let mut inos =
            conn.prepare_cached("SELECT ino FROM inodes WHERE parent = ?1 ORDER BY name")?;
        let mut out = Vec::new();
        for ino in inos.query_map([parent as i64], |r| r.get::<_, i64>(0))? {
            out.push(ino? as Ino);
        }
        if out.iter().all(|ino| self.inner.by_ino.contains_key(ino)) {
            return Ok(out);
        }
        out.clear();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM inodes WHERE parent = ?1 ORDER BY name"
        ))?;
        let rows = stmt.query_map([parent as i64], raw_row)?;
        let mut out = Vec::new();
        for raw in rows {
            let rec = record_from_raw(raw?)?;
            out.push(rec.ino);
            // Filled while the connection is held, so a writer cannot slip in between.
            self.inner
                .by_name
                .insert((parent, rec.name.clone()), rec.ino);
            self.inner.by_ino.insert(rec.ino, Arc::new(rec));
        }
        Ok(out)
    }

    /// Number of inodes in the index.
    pub fn count(&self) -> MetaResult<u64> {
        let conn = self.conn();
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM inodes", [], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }

    /// Marks one folder's listing stale (it is re-listed on next access when online).
    pub fn mark_stale(&self, ino: Ino) -> MetaResult<()> {
        let conn = self.conn();
        conn.exec(
            "UPDATE inodes SET listed_at = 0 WHERE ino = ?1 AND listed_at IS NOT NULL",
            [ino as i64],
        )?;
        self.inner.by_ino.invalidate(&ino);
        Ok(())
    }

    /// Marks every folder listing and every node description stale (event feed resync): they
    /// stay readable (a resync must neither blank nor block listings), and are refreshed on
    /// their next use. Nothing is written: one boundary in memory moves.
    pub fn mark_all_stale(&self) {
        self.inner
            .stale_before_ms
            // + 1: a listing that started in this very millisecond may have missed the change.
            .fetch_max(now_ms() + 1, Ordering::AcqRel);
    }

    /// Updates `seen_at` of the cached records of nodes the server just described unchanged
    /// (their rows were refreshed in SQLite without being rewritten), so the cache stays warm.
    /// Called with the connection held, like every cache fill.
    fn refresh_cached(&self, refreshed: &[Ino], seen_at: i64) {
        for ino in refreshed {
            if let Some(rec) = self.inner.by_ino.get(ino) {
                let mut fresh = InodeRecord::clone(&rec);
                fresh.seen_at = seen_at;
                self.inner.by_ino.insert(*ino, Arc::new(fresh));
            }
        }
    }

    fn invalidate(&self, changes: &[MetaChange], touched: &[Ino], paths_rewritten: bool) {
        for ch in changes {
            if let MetaChange::EntryGone { parent, name } = ch {
                self.inner.by_name.invalidate(&(*parent, name.clone()));
            }
        }
        if paths_rewritten {
            self.inner.by_ino.invalidate_all();
        } else {
            for ino in touched {
                self.inner.by_ino.invalidate(ino);
            }
        }
    }
}
