//! The durable upload journal: `STATE/journal.sqlite` (WAL) plus `STATE/staging/` (see
//! `staging` for why versions are staged there and not referenced in the cache). Every
//! `enqueue_*` returns only after its row is committed, so a change the core acknowledged
//! survives a crash or kill of the process; [`Journal::sync`] (on fsync, and every few seconds
//! in the background) makes it survive a power loss too, as a local file system does with
//! close and fsync. Rows leave the journal only when the server has the change.
//!
//! The pending operations are also held in memory in line order, for scheduling; in-flight
//! claims are memory-only, so after a crash every operation is simply pending again.

use super::op::{Op, OpKind, OpState};
use super::op_table::OpTable;
use super::{QueueStats, SyncError, order, schema, staging};
use crate::client::{ContentVersion, HashKind};
use crate::names::RemotePath;
use cells_cache::sqlite::CachedExecute;
use cells_cache::{Cache, FileDigest, FileDigester};
use rusqlite::Connection;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// What [`Journal::enqueue_upload`] recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnqueuedUpload {
    pub seq: i64,
    pub size: u64,
    pub cells_hash: String,
    /// Cache key of the new version (`c<cells hash>`).
    pub cache_key: String,
    /// True when an earlier pending save of the same path was replaced (it keeps its place).
    pub coalesced: bool,
    /// True when `src` was moved into the cache as a dirty entry under `cache_key`.
    pub cached: bool,
}

pub struct Journal {
    staging_dir: PathBuf,
    inner: Mutex<Inner>,
    cache: Option<Arc<Cache>>,
    /// Notified on every change (new op, finished op, online): wakes the uploader and drain.
    changed: Arc<Notify>,
    /// Staged files saved since the last [`Journal::sync`].
    unsynced: Mutex<Vec<String>>,
    /// Rows committed since the last [`Journal::sync`] (they survive the process, not yet a
    /// power loss).
    rows_unsynced: AtomicBool,
    syncing: Mutex<()>,
    /// Saves closed by the user and being handed over (see [`IncomingSave`]), and their bytes.
    incoming: AtomicU64,
    incoming_bytes: AtomicU64,
    /// When the last save was announced (Unix ms): the uploader holds back during a burst.
    last_save_ms: AtomicI64,
}

/// A closed file version on its way into the journal: counted as pending (by `status`, and by
/// `drain`, which waits for it) from the moment the close returns until it is journaled or
/// dropped, so no report ever says "nothing pending" while a save is still being handed over.
pub struct IncomingSave {
    journal: Arc<Journal>,
    bytes: u64,
}

impl Drop for IncomingSave {
    fn drop(&mut self) {
        self.journal.incoming.fetch_sub(1, Ordering::AcqRel);
        self.journal
            .incoming_bytes
            .fetch_sub(self.bytes, Ordering::AcqRel);
        self.journal.notify();
    }
}

fn lock_unsynced(m: &Mutex<Vec<String>>) -> MutexGuard<'_, Vec<String>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Inner {
    conn: Connection,
    ops: OpTable,
    in_flight: HashSet<i64>,
    /// Uploads journaled by an earlier run whose staged copy has not been checked yet.
    from_earlier_run: HashSet<i64>,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn check_path(path: &RemotePath) -> Result<(), SyncError> {
    if path.components().count() < 2 {
        return Err(SyncError::Invalid(format!(
            "{path:?} is not inside a workspace"
        )));
    }
    Ok(())
}

impl Journal {
    /// Opens (or creates) the journal in `state_dir`. With a `cache`, uploaded versions are
    /// inserted into it dirty on enqueue and marked clean once on the server.
    pub fn open(state_dir: &Path, cache: Option<Arc<Cache>>) -> Result<Journal, SyncError> {
        staging::ensure_private_dir(state_dir)?;
        let staging_dir = staging::dir(state_dir);
        staging::ensure_private_dir(&staging_dir)?;
        let conn = schema::open(&state_dir.join("journal.sqlite"))?;
        let ops: OpTable = schema::load(&conn)?.into_iter().collect();
        let referenced: HashSet<String> = ops
            .values()
            .filter_map(|op| match &op.kind {
                OpKind::Upload { staging, .. } => Some(staging.clone()),
                _ => None,
            })
            .collect();
        for op in ops.values() {
            if let OpKind::Upload { staging: name, .. } = &op.kind
                && !staging_dir.join(name).is_file()
            {
                // Kept, not dropped: its upload fails into the error state, visible in status.
                tracing::error!(
                    "the staged copy of {} is missing from the state folder",
                    op.kind.main_path()
                );
            }
        }
        staging::collect_garbage(&staging_dir, &referenced);
        let from_earlier_run = ops
            .values()
            .filter(|op| matches!(op.kind, OpKind::Upload { .. }))
            .map(|op| op.seq)
            .collect();
        Ok(Journal {
            staging_dir,
            inner: Mutex::new(Inner {
                conn,
                ops,
                in_flight: HashSet::new(),
                from_earlier_run,
            }),
            cache,
            changed: Arc::new(Notify::new()),
            unsynced: Mutex::new(Vec::new()),
            rows_unsynced: AtomicBool::new(false),
            syncing: Mutex::new(()),
            incoming: AtomicU64::new(0),
            incoming_bytes: AtomicU64::new(0),
            last_save_ms: AtomicI64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn changed(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    fn notify(&self) {
        self.rows_unsynced.store(true, Ordering::Release);
        self.changed.notify_waiters();
        self.changed.notify_one();
    }

    pub(crate) fn staging_path(&self, name: &str) -> PathBuf {
        self.staging_dir.join(name)
    }

    /// The chunk size digests are cut at: the cache's, so they can serve as its checksums.
    pub fn chunk_size(&self) -> u64 {
        self.cache
            .as_ref()
            .map_or(cells_cache::DEFAULT_CHUNK_SIZE, |c| c.chunk_size())
    }

    /// Makes everything journaled so far survive a power loss: the staged files saved since
    /// the last call, their folder, the journal's committed rows (a WAL checkpoint syncs the
    /// log first) and the cache index. Concurrent callers share the work of one another.
    pub fn sync(&self) -> Result<(), SyncError> {
        let _one_at_a_time = self.syncing.lock().unwrap_or_else(|e| e.into_inner());
        self.rows_unsynced.store(false, Ordering::Release);
        let names = std::mem::take(&mut *lock_unsynced(&self.unsynced));
        if let Err(e) = staging::sync_files(&self.staging_dir, &names) {
            // Synced again next time rather than forgotten.
            lock_unsynced(&self.unsynced).extend(names);
            self.rows_unsynced.store(true, Ordering::Release);
            return Err(e.into());
        }
        let checkpoint = self
            .lock()
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        if let Err(e) = checkpoint {
            self.rows_unsynced.store(true, Ordering::Release);
            return Err(e.into());
        }
        if let Some(cache) = &self.cache
            && let Err(e) = cache.sync_index()
        {
            tracing::warn!("could not sync the cache index: {e}");
        }
        Ok(())
    }

    /// True when something was journaled since the last [`Journal::sync`].
    pub fn needs_sync(&self) -> bool {
        self.rows_unsynced.load(Ordering::Acquire)
    }

    pub fn enqueue_mkdir(&self, path: &RemotePath) -> Result<i64, SyncError> {
        check_path(path)?;
        let seq = insert_op(&mut self.lock(), OpKind::Mkdir { path: path.clone() })?;
        self.notify();
        Ok(seq)
    }

    /// Journals a delete. A pending save of the same path that never started is dropped
    /// instead of uploaded, in the same transaction. The delete is journaled even for a new
    /// file that never left (the server then answers "not found", one request): it is the
    /// record a start after a kill replays on the index (`fs::replay`), and without it the
    /// file would show again there.
    pub fn enqueue_delete(
        &self,
        path: &RemotePath,
        base: Option<ContentVersion>,
    ) -> Result<i64, SyncError> {
        check_path(path)?;
        let mut inner = self.lock();
        let mut base = base;
        let mut dropped = None;
        if let Some(seq) = inner.ops.latest_touching(path).map(|op| op.seq)
            && !inner.in_flight.contains(&seq)
            && let Some(op) = inner.ops.get(&seq)
            && op.started_target.is_none()
            && let OpKind::Upload {
                path: p,
                base: upload_base,
                staging,
                cells_hash,
                ..
            } = &op.kind
            && p == path
        {
            base = upload_base.clone();
            dropped = Some((seq, staging.clone(), cells_hash.clone()));
        }
        let kind = OpKind::Delete {
            path: path.clone(),
            base,
        };
        let tx = inner.conn.unchecked_transaction()?;
        if let Some((seq, ..)) = &dropped {
            tx.exec("DELETE FROM ops WHERE seq=?1", [seq])?;
        }
        let seq = schema::insert(&tx, &kind)?;
        tx.commit()?;
        if let Some((dropped_seq, ..)) = &dropped {
            inner.ops.remove(dropped_seq);
            tracing::debug!(
                seq = dropped_seq,
                "the queued save of {path} is dropped: the file was deleted"
            );
        }
        remember_op(&mut inner, seq, kind);
        drop(inner);
        if let Some((_, name, hash)) = dropped {
            self.forget_staged(&name, &hash);
        }
        self.notify();
        Ok(seq)
    }

    pub fn enqueue_rename(&self, from: &RemotePath, to: &RemotePath) -> Result<i64, SyncError> {
        check_path(from)?;
        check_path(to)?;
        if to.starts_with(from) {
            return Err(SyncError::Invalid(format!(
                "cannot move {from} into itself"
            )));
        }
        let kind = OpKind::Rename {
            from: from.clone(),
            to: to.clone(),
        };
        let seq = insert_op(&mut self.lock(), kind)?;
        self.notify();
        Ok(seq)
    }

    /// Every pending operation, in line order.
    pub fn pending(&self) -> Vec<Op> {
        self.lock().ops.values().cloned().collect()
    }

    /// Calls `f` on every queued operation, in order, without copying them (under the
    /// journal's lock: `f` must not call back into the journal).
    pub fn for_each_pending(&self, mut f: impl FnMut(&Op)) {
        for op in self.lock().ops.values() {
            f(op);
        }
    }
}

fn insert_op(inner: &mut Inner, kind: OpKind) -> Result<i64, SyncError> {
    let seq = schema::insert(&inner.conn, &kind)?;
    remember_op(inner, seq, kind);
    Ok(seq)
}

/// The in-memory side of a row just inserted as `seq`.
fn remember_op(inner: &mut Inner, seq: i64, kind: OpKind) {
    tracing::debug!(seq, "journaled {kind:?}");
    inner.ops.insert(Op::queued(seq, kind));
}

#[path = "journal_retarget.rs"]
mod retarget;
#[path = "journal_status.rs"]
mod status;
#[path = "journal_upload.rs"]
mod upload;
pub use status::ConflictRecord;

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
