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

    /// Journals a finished file version: `src` is staged (hard link or copy) and digested,
    /// then, with a cache, moved into it as a dirty entry; the row is committed before
    /// returning. A pending, not yet started save of the same path is replaced in place.
    /// The caller must not modify `src` in place afterwards (it may be the staged inode).
    ///
    /// Durable against the death of the process on return; against a power loss once
    /// [`Journal::sync`] ran (fsync calls it; so does the background sync every few seconds).
    pub fn enqueue_upload(
        &self,
        path: &RemotePath,
        src: &Path,
        base: Option<ContentVersion>,
    ) -> Result<EnqueuedUpload, SyncError> {
        self.enqueue_upload_digested(path, src, base, None)
    }

    /// [`Journal::enqueue_upload`] with the digests the writer computed while writing `src`
    /// in order (they spare reading it again; ignored unless they describe it).
    pub fn enqueue_upload_digested(
        &self,
        path: &RemotePath,
        src: &Path,
        base: Option<ContentVersion>,
        digest: Option<FileDigest>,
    ) -> Result<EnqueuedUpload, SyncError> {
        check_path(path)?;
        let staged = staging::stage(&self.staging_dir, src, digest, self.chunk_size())?;
        let cache_key = ContentVersion {
            kind: HashKind::CellsHash,
            value: staged.digest.cells_hash.clone(),
        }
        .cache_key();
        // The row first, then the cache takes `src`: until the row is committed, `src` is
        // still where the caller's crash recovery looks for it.
        let (seq, coalesced, replaced) = match self.record_upload(path, &staged, base) {
            Ok(recorded) => recorded,
            Err(e) => {
                let _ = std::fs::remove_file(self.staging_dir.join(&staged.name));
                return Err(e);
            }
        };
        lock_unsynced(&self.unsynced).push(staged.name.clone());
        let cached = match &self.cache {
            Some(cache) => match cache.insert_saved(src, &staged.digest) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!("could not put the new version of {path} in the cache: {e}");
                    false
                }
            },
            None => false,
        };
        if let Some(old) = replaced {
            self.forget_staged(&old.0, &old.1);
        }
        self.notify();
        Ok(EnqueuedUpload {
            seq,
            size: staged.digest.size,
            cells_hash: staged.digest.cells_hash,
            cache_key,
            coalesced,
            cached,
        })
    }

    /// Counts a closed save of `bytes` as pending until the returned guard is dropped.
    pub fn announce_save(self: &Arc<Self>, bytes: u64) -> IncomingSave {
        self.incoming.fetch_add(1, Ordering::AcqRel);
        self.incoming_bytes.fetch_add(bytes, Ordering::AcqRel);
        self.last_save_ms.store(now_ms(), Ordering::Release);
        IncomingSave {
            journal: self.clone(),
            bytes,
        }
    }

    /// When the last save was announced (Unix ms; 0 before any).
    pub(crate) fn last_save_ms(&self) -> i64 {
        self.last_save_ms.load(Ordering::Acquire)
    }

    /// Saves announced and not yet journaled (or dropped), and their bytes.
    pub(crate) fn incoming(&self) -> (u64, u64) {
        (
            self.incoming.load(Ordering::Acquire),
            self.incoming_bytes.load(Ordering::Acquire),
        )
    }

    /// True for an upload journaled by an earlier run whose staged copy was not checked yet
    /// (a power loss may have torn it).
    pub fn from_earlier_run(&self, seq: i64) -> bool {
        self.lock().from_earlier_run.contains(&seq)
    }

    pub fn checked_after_restart(&self, seq: i64) {
        self.lock().from_earlier_run.remove(&seq);
    }

    /// The version the last pending operation on `path` leaves there, when that operation is
    /// an upload of exactly `path`: (size, Cells hash).
    pub fn pending_version(&self, path: &RemotePath) -> Option<(u64, String)> {
        let inner = self.lock();
        let last = inner.ops.latest_touching(path)?;
        match &last.kind {
            OpKind::Upload {
                path: p,
                size,
                cells_hash,
                ..
            } if p == path => Some((*size, cells_hash.clone())),
            _ => None,
        }
    }

    /// Puts the staged copy of every pending upload back in the cache where it is missing (a
    /// kill between journaling a save and the cache taking it): reads of a file waiting for
    /// upload are served from there. Returns how many were restored.
    pub fn restore_cached_versions(&self) -> usize {
        let Some(cache) = &self.cache else { return 0 };
        let uploads: Vec<(String, String)> = self
            .lock()
            .ops
            .values()
            .filter_map(|op| match &op.kind {
                OpKind::Upload {
                    staging,
                    cells_hash,
                    ..
                } => Some((staging.clone(), cells_hash.clone())),
                _ => None,
            })
            .collect();
        let mut restored = 0;
        for (staging, hash) in uploads {
            let key = format!("c{hash}");
            if matches!(cache.state(&key), Ok(cells_cache::EntryState::Complete)) {
                continue;
            }
            // A copy: the staged file itself must stay where the uploader reads it.
            let copy = self.staging_dir.join(format!("{staging}.restore"));
            let done = std::fs::copy(self.staging_dir.join(&staging), &copy)
                .map_err(|e| e.to_string())
                .and_then(|_| {
                    FileDigester::of_file(&copy, cache.chunk_size()).map_err(|e| e.to_string())
                })
                .and_then(|digest| {
                    if digest.cells_hash != hash {
                        return Err("the staged copy does not match its hash".into());
                    }
                    cache
                        .insert_saved(&copy, &digest)
                        .map_err(|e| e.to_string())
                });
            match done {
                Ok(()) => restored += 1,
                Err(e) => {
                    let _ = std::fs::remove_file(&copy);
                    tracing::warn!("could not put a pending version back in the cache: {e}");
                }
            }
        }
        restored
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

    /// Returns (seq, coalesced, replaced (staging name, cells hash)).
    #[allow(clippy::type_complexity)]
    fn record_upload(
        &self,
        path: &RemotePath,
        staged: &staging::Staged,
        base: Option<ContentVersion>,
    ) -> Result<(i64, bool, Option<(String, String)>), SyncError> {
        let mut inner = self.lock();
        let latest = inner.ops.latest_touching(path).map(|op| op.seq);
        // An upload that started may have reached the server before a crash or a failure:
        // its content is then the server's version, and the next save must be checked
        // against it, not against the older base a merged entry would keep.
        if let Some(seq) = latest
            && !inner.in_flight.contains(&seq)
            && let Some(op) = inner.ops.get(&seq)
            && op.started_target.is_none()
            && let OpKind::Upload { path: p, .. } = &op.kind
            && p == path
        {
            let mut op = op.clone();
            let OpKind::Upload {
                staging,
                size,
                cells_hash,
                md5,
                ..
            } = &mut op.kind
            else {
                unreachable!("matched an upload above")
            };
            let old = (
                std::mem::replace(staging, staged.name.clone()),
                std::mem::replace(cells_hash, staged.digest.cells_hash.clone()),
            );
            *size = staged.digest.size;
            md5.clear();
            op.state = OpState::Queued;
            op.attempts = 0;
            op.not_before_ms = 0;
            op.last_error = None;
            schema::update(&inner.conn, &op)?;
            tracing::debug!(seq, "a new save of {path} replaces the queued one");
            inner.ops.insert(op);
            return Ok((seq, true, Some(old)));
        }
        let kind = OpKind::Upload {
            path: path.clone(),
            staging: staged.name.clone(),
            size: staged.digest.size,
            cells_hash: staged.digest.cells_hash.clone(),
            // Computed by the uploader if a server without Cells hashes needs it.
            md5: String::new(),
            base,
        };
        let seq = insert_op(&mut inner, kind)?;
        Ok((seq, false, None))
    }

    /// Removes a staged file no op needs any more and lets the cache evict its version
    /// unless another pending upload has the same content.
    fn forget_staged(&self, staging_name: &str, cells_hash: &str) {
        if let Err(e) = std::fs::remove_file(self.staging_dir.join(staging_name)) {
            tracing::warn!("could not remove the staging file {staging_name}: {e}");
        }
        let still_needed =
            self.lock().ops.values().any(
                |op| matches!(&op.kind, OpKind::Upload { cells_hash: h, .. } if h == cells_hash),
            );
        if let (Some(cache), false) = (&self.cache, still_needed) {
            let key = ContentVersion {
                kind: HashKind::CellsHash,
                value: cells_hash.to_owned(),
            }
            .cache_key();
            if let Err(e) = cache.mark_clean(&key) {
                tracing::warn!("could not mark {key} clean in the cache: {e}");
            }
        }
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

    /// The server moved `old` to `new` (reported by the change feed): pending operations on
    /// `old` or below it follow. Returns how many were rewritten.
    pub fn retarget(&self, old: &RemotePath, new: &RemotePath) -> Result<usize, SyncError> {
        self.retarget_where(old, new, |_, _| true)
    }

    /// The server moved the file `old` to `new`, and the moved content is `version`: a pending,
    /// not yet started upload of exactly `old` whose edit started from that very version
    /// follows the file (and is retried at once). Nothing else moves: a file created here
    /// under the old name, an edit of another version, or anything after our own rename keeps
    /// its path, so the echo of a rename we made ourselves cannot misdirect a newer upload.
    pub fn retarget_edit(
        &self,
        old: &RemotePath,
        new: &RemotePath,
        version: &ContentVersion,
    ) -> Result<usize, SyncError> {
        // Only when the upload is the one pending operation on either path: otherwise the
        // move may be the echo of our own rename, which later operations here (a rename back,
        // say) already account for; following it would move the wrong file.
        let others = self
            .lock()
            .ops
            .values()
            .filter(|op| {
                op.kind.paths().iter().any(|p| {
                    [old, new]
                        .iter()
                        .any(|q| p.starts_with(q) || q.starts_with(p))
                })
            })
            .filter(|op| !matches!(&op.kind, OpKind::Upload { path, .. } if path == old))
            .count();
        if others > 0 {
            return Ok(0);
        }
        self.retarget_where(old, new, |op, in_flight| {
            // An earlier, failed attempt's `started_target` stays: the uploader still cleans up
            // whatever that attempt left at the old name.
            !in_flight
                && matches!(&op.kind, OpKind::Upload { path, base: Some(base), .. }
                    if path == old && base == version)
        })
    }

    /// Rewrites the paths of the operations `select` picks (given each op and whether it is
    /// running) from below `old` to below `new`.
    fn retarget_where(
        &self,
        old: &RemotePath,
        new: &RemotePath,
        select: impl Fn(&Op, bool) -> bool,
    ) -> Result<usize, SyncError> {
        check_path(old)?;
        check_path(new)?;
        let moved = |p: &RemotePath| -> Result<Option<RemotePath>, SyncError> {
            if !p.starts_with(old) {
                return Ok(None);
            }
            let rest = &p.as_str()[old.as_str().len()..];
            RemotePath::parse(&format!("{}{rest}", new.as_str()))
                .map(Some)
                .map_err(|e| SyncError::Invalid(format!("retargeted path: {e}")))
        };
        let mut inner = self.lock();
        let mut changed = Vec::new();
        for op in inner.ops.values() {
            if !select(op, inner.in_flight.contains(&op.seq)) {
                continue;
            }
            let mut next = op.clone();
            // A new destination is worth trying at once, whatever backoff the old one had.
            next.not_before_ms = 0;
            let mut touched = false;
            match &mut next.kind {
                OpKind::Upload { path, .. }
                | OpKind::Mkdir { path }
                | OpKind::Delete { path, .. } => {
                    if let Some(n) = moved(path)? {
                        *path = n;
                        touched = true;
                    }
                }
                OpKind::Rename { from, to } => {
                    for p in [from, to] {
                        if let Some(n) = moved(p)? {
                            *p = n;
                            touched = true;
                        }
                    }
                }
            }
            if touched {
                changed.push(next);
            }
        }
        let tx = inner.conn.unchecked_transaction()?;
        for op in &changed {
            schema::update(&tx, op)?;
        }
        tx.commit()?;
        let count = changed.len();
        for op in changed {
            inner.ops.insert(op);
        }
        drop(inner);
        self.notify();
        Ok(count)
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

#[path = "journal_status.rs"]
mod status;
pub use status::ConflictRecord;

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
