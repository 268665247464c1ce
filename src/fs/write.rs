//! Local-first file content: a file opened for writing gets one staging file per inode under
//! `STATE/open/` (shared by all its handles), where writes, reads and truncates run at
//! local-disk speed. fsync, flush and the last release hand the content to the upload
//! journal, after which the inode's version is the local Cells hash (served from the cache).

use super::api::*;
use super::core::{CellsFs, lock};
use super::fetch::Source;
pub(super) use super::open_staging::{blocking, io_error, now_secs, unix_secs};
use super::open_staging::{private_file, read_at, read_full_at, write_at};
use super::write_digest::RunningDigest;
use crate::client::{ContentVersion, HashKind, Remote};
use crate::meta::{InodeRecord, LocalState};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

/// Bytes copied per step when an existing file's content is brought into its staging file.
const FILL_STEP: u64 = 4 << 20;

/// Where the write path keeps its files, and the journal it hands versions to.
pub struct WriteSetup {
    pub journal: Arc<crate::sync::Journal>,
    /// `STATE/open`: staging files of open inodes.
    pub open_dir: PathBuf,
    /// `STATE/junk`: desktop junk files, kept locally only.
    pub junk_dir: PathBuf,
}

/// The write state of one inode, shared by every handle open on it.
pub(super) struct InodeWrite {
    pub ino: Ino,
    pub junk: bool,
    /// Handles using this state; changed only under the core's `writes` lock.
    pub handles: AtomicUsize,
    pub size: AtomicU64,
    /// Unix seconds.
    pub mtime: AtomicI64,
    pub body: tokio::sync::Mutex<WriteBody>,
}

pub(super) struct WriteBody {
    pub file: Arc<File>,
    /// Our name of the staging file; `None` once handed to the journal (the journal may
    /// have linked it: it must not change in place any more).
    pub disk_path: Option<PathBuf>,
    /// Changed since the last hand-over.
    pub dirty: bool,
    /// The version this edit started from (`None` for a new file).
    pub base: Option<ContentVersion>,
    /// Digests of the content while it has been written in order from offset 0 (`None` once
    /// a write went elsewhere): a file written front to back (a copy, a download, a save)
    /// is then handed over without being read again.
    pub digest: Option<RunningDigest>,
}

/// A new file made on disk and in the index, before its write state exists.
struct NewFile {
    rec: Arc<InodeRecord>,
    file: File,
    path: PathBuf,
    junk: bool,
    chunk: u64,
}

/// How a hand-over to the journal ended.
enum HandOver {
    /// Journaled as this version; the index update that follows may still have failed.
    Journaled(ContentVersion, FsResult<()>),
    /// The inode was deleted while open.
    Deleted,
    /// Nothing was journaled; the content stays dirty.
    Failed(FsError),
}

pub(super) fn sync_error(e: crate::sync::SyncError) -> FsError {
    match e {
        crate::sync::SyncError::Io(io) => io_error(io),
        other => FsError::Io(other.to_string()),
    }
}

impl<R: Remote> CellsFs<R> {
    pub(super) fn setup(&self) -> FsResult<&WriteSetup> {
        self.write_setup.get().ok_or(FsError::ReadOnly)
    }

    /// The shared write state of `rec`, created (with the current content copied in unless
    /// `truncate`) when no handle has it yet. Counts one more handle.
    pub(super) async fn attach_write(
        &self,
        rec: &InodeRecord,
        truncate: bool,
    ) -> FsResult<Arc<InodeWrite>> {
        let existing = lock(&self.writes).get(&rec.ino).cloned();
        if let Some(w) = existing {
            w.handles.fetch_add(1, Ordering::AcqRel);
            if truncate {
                self.truncate_to(&w, 0).await?;
            }
            return Ok(w);
        }
        let setup = self.setup()?;
        let junk = rec.local == Some(LocalState::Junk);
        let path = if junk {
            setup.junk_dir.join(rec.ino.to_string())
        } else {
            let n = self.next_handle();
            setup.open_dir.join(format!("{}-{n}", rec.ino))
        };
        let p = path.clone();
        let file = Arc::new(blocking(move || private_file(&p)).await?);
        let size = if truncate || rec.size == 0 {
            let f = file.clone();
            blocking(move || f.set_len(0)).await?;
            0
        } else if junk {
            file.metadata().map_err(io_error)?.len()
        } else {
            match self.fill(rec, &file).await {
                Ok(()) => rec.size,
                Err(e) => {
                    let _ = std::fs::remove_file(&path);
                    return Err(e);
                }
            }
        };
        if !junk {
            // Durable before it can hold an edit: what reaches it from now on survives a kill.
            let recorded = self.seal_initial(rec, &path).await;
            if let Err(e) = recorded {
                self.drop_staging(&path).await;
                return Err(e);
            }
        }
        let w = Arc::new(InodeWrite {
            ino: rec.ino,
            junk,
            handles: AtomicUsize::new(1),
            size: AtomicU64::new(size),
            mtime: AtomicI64::new(if truncate { now_secs() } else { rec.mtime }),
            body: tokio::sync::Mutex::new(WriteBody {
                file,
                disk_path: Some(path.clone()),
                dirty: truncate && rec.size > 0,
                base: rec.version.clone(),
                digest: (size == 0).then(|| RunningDigest::new(setup.journal.chunk_size())),
            }),
        });
        let raced = {
            let mut map = lock(&self.writes);
            let other = map.get(&rec.ino).cloned();
            if other.is_none() {
                map.insert(rec.ino, w.clone());
            }
            other
        };
        let Some(other) = raced else { return Ok(w) };
        // Another open won the race: use its state, drop ours (a junk file's path is the
        // winner's too: it stays).
        if !junk {
            self.drop_staging(&path).await;
        }
        other.handles.fetch_add(1, Ordering::AcqRel);
        Ok(other)
    }

    /// Creates the new, empty file `name` in `dir` and its write state in one blocking step
    /// (index row, staging file, staging record): creating many small files is a common
    /// workload (archives, copies, builds) and each step off the async threads costs a
    /// thread hand-off. Counts one handle.
    pub(super) async fn create_local_file(
        &self,
        dir: &InodeRecord,
        node: crate::meta::NewLocal,
    ) -> FsResult<(Arc<InodeRecord>, Arc<InodeWrite>)> {
        let made = self.new_local_file(dir, node)?;
        let made = tokio::task::spawn_blocking(made)
            .await
            .map_err(super::errors::from_join_error)??;
        Ok(self.track_new_file(made))
    }

    /// [`Self::create_local_file`] on the caller's thread (local disk and index only).
    pub(super) fn create_local_file_now(
        &self,
        dir: &InodeRecord,
        node: crate::meta::NewLocal,
    ) -> FsResult<(Arc<InodeRecord>, Arc<InodeWrite>)> {
        let made = self.new_local_file(dir, node)?()?;
        Ok(self.track_new_file(made))
    }

    /// The blocking work of a create, to run where the caller likes.
    fn new_local_file(
        &self,
        dir: &InodeRecord,
        node: crate::meta::NewLocal,
    ) -> FsResult<impl FnOnce() -> FsResult<NewFile> + Send + 'static> {
        let setup = self.setup()?;
        let junk = node.state == LocalState::Junk;
        let (meta, parent, n) = (self.meta.clone(), dir.ino, self.next_handle());
        let (open_dir, junk_dir) = (setup.open_dir.clone(), setup.junk_dir.clone());
        let chunk = setup.journal.chunk_size();
        Ok(move || -> FsResult<NewFile> {
            let meta_err = super::errors::from_meta_error;
            let staging_name = |ino: Ino| format!("{ino}-{n}");
            // A file created here is recorded with its staging file in the same transaction.
            let (ino, _) = if junk {
                meta.insert_local(parent, &node)
            } else {
                meta.insert_local_staged(parent, &node, staging_name)
            }
            .map_err(meta_err)?;
            let undo = |meta: &crate::meta::MetaStore| {
                if !junk {
                    let _ = meta.forget_open_staging(&staging_name(ino));
                }
                let _ = meta.delete_local(ino, &[]);
            };
            let rec = match meta.get(ino) {
                Ok(Some(rec)) => rec,
                Ok(None) => return Err(FsError::Io("a new file vanished from the index".into())),
                Err(e) => {
                    undo(&meta);
                    return Err(meta_err(e));
                }
            };
            let path = if junk {
                junk_dir.join(ino.to_string())
            } else {
                open_dir.join(staging_name(ino))
            };
            // Truncated: a file of this name left by an earlier run is not this file's content.
            let file = match private_file(&path).and_then(|f| f.set_len(0).map(|()| f)) {
                Ok(f) => f,
                Err(e) => {
                    undo(&meta);
                    return Err(io_error(e));
                }
            };
            Ok(NewFile {
                rec,
                file,
                path,
                junk,
                chunk,
            })
        })
    }

    /// The write state of a file just made by [`Self::new_local_file`].
    fn track_new_file(&self, made: NewFile) -> (Arc<InodeRecord>, Arc<InodeWrite>) {
        let NewFile {
            rec,
            file,
            path,
            junk,
            chunk,
        } = made;
        let w = Arc::new(InodeWrite {
            ino: rec.ino,
            junk,
            handles: AtomicUsize::new(1),
            size: AtomicU64::new(0),
            mtime: AtomicI64::new(now_secs()),
            body: tokio::sync::Mutex::new(WriteBody {
                file: Arc::new(file),
                disk_path: Some(path),
                // A new file exists on the server even if nothing is ever written to it.
                dirty: true,
                base: None,
                digest: Some(RunningDigest::new(chunk)),
            }),
        });
        lock(&self.writes).insert(rec.ino, w.clone());
        (rec, w)
    }

    /// Records a staging file holding its initial content with the version it holds, for
    /// recovery after the process dies (no sync: the page cache outlives the process; a
    /// power loss is covered by fsync and the journal's sync, as on a local disk).
    async fn seal_initial(&self, rec: &InodeRecord, path: &Path) -> FsResult<()> {
        self.record_staging(rec.ino, rec.path.as_str(), path, rec.version.clone())
            .await
    }

    /// Copies the current content of `rec` into `file` (fetching what the cache lacks).
    async fn fill(&self, rec: &InodeRecord, file: &Arc<File>) -> FsResult<()> {
        let mut offset = 0;
        while offset < rec.size {
            let len = FILL_STEP.min(rec.size - offset);
            let bytes = match &rec.version {
                Some(v) => {
                    let src = Source {
                        key: v.cache_key(),
                        path: rec.path.clone(),
                        size: rec.size,
                    };
                    self.read_cached_pub(&src, offset, len).await?
                }
                None => self.fetcher.read_uncached(&rec.path, offset, len).await?,
            };
            if bytes.is_empty() {
                break;
            }
            let f = file.clone();
            let at = offset;
            offset += bytes.len() as u64;
            blocking(move || write_at(&f, &bytes, at)).await?;
        }
        Ok(())
    }

    /// Makes the staging file writable again after a hand-over: its content is copied into a
    /// fresh file (the journal may hold the old one as its staged copy).
    async fn unseal(&self, w: &InodeWrite, body: &mut WriteBody) -> FsResult<()> {
        if body.disk_path.is_some() {
            return Ok(());
        }
        let setup = self.setup()?;
        let path = setup
            .open_dir
            .join(format!("{}-{}", w.ino, self.next_handle()));
        let (old, p) = (body.file.clone(), path.clone());
        let size = w.size.load(Ordering::Acquire);
        let file = blocking(move || {
            let new = private_file(&p)?;
            new.set_len(0)?;
            let mut buf = vec![0u8; 1 << 20];
            let mut at = 0u64;
            while at < size {
                let n = read_at(&old, &mut buf, at)?;
                if n == 0 {
                    break;
                }
                write_at(&new, &buf[..n], at)?;
                at += n as u64;
            }
            Ok(new)
        })
        .await;
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        let rec = self.record(w.ino).await;
        let recorded = match rec {
            Ok(rec) => {
                self.record_staging(w.ino, rec.path.as_str(), &path, body.base.clone())
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = recorded {
            self.drop_staging(&path).await;
            return Err(e);
        }
        body.file = Arc::new(file);
        body.disk_path = Some(path);
        Ok(())
    }

    pub(super) async fn write_to(&self, w: &InodeWrite, offset: u64, data: &[u8]) -> FsResult<u32> {
        let (len, end) = write_extent(offset, data)?;
        let mut body = w.body.lock().await;
        self.unseal(w, &mut body).await?;
        let (f, bytes) = (body.file.clone(), data.to_vec());
        let digest = body.digest.take();
        body.digest = blocking(move || {
            write_at(&f, &bytes, offset)?;
            Ok(hashed_on(digest, offset, &bytes, &f))
        })
        .await?;
        wrote(w, &mut body, end);
        Ok(len)
    }

    /// [`Self::write_to`] at once on the caller's thread, when the content lock is free and
    /// the staging file writable (`None` otherwise: the caller goes the async way). A local
    /// `pwrite` costs less than the thread hand-offs around it.
    pub(super) fn write_to_now(
        &self,
        w: &InodeWrite,
        offset: u64,
        data: &[u8],
    ) -> Option<FsResult<u32>> {
        let mut body = w.body.try_lock().ok()?;
        body.disk_path.as_ref()?;
        let (len, end) = match write_extent(offset, data) {
            Ok(extent) => extent,
            Err(e) => return Some(Err(e)),
        };
        let digest = body.digest.take();
        if let Err(e) = write_at(&body.file, data, offset) {
            return Some(Err(io_error(e)));
        }
        body.digest = hashed_on(digest, offset, data, &body.file);
        wrote(w, &mut body, end);
        Some(Ok(len))
    }

    pub(super) async fn read_from(
        &self,
        w: &InodeWrite,
        offset: u64,
        size: u32,
    ) -> FsResult<bytes::Bytes> {
        let body = w.body.lock().await;
        let total = w.size.load(Ordering::Acquire);
        if offset >= total {
            return Ok(bytes::Bytes::new());
        }
        let len = u64::from(size).min(total - offset) as usize;
        let f = body.file.clone();
        drop(body);
        let buf = blocking(move || {
            let mut buf = vec![0u8; len];
            let got = read_full_at(&f, &mut buf, offset)?;
            buf.truncate(got);
            Ok(buf)
        })
        .await?;
        Ok(bytes::Bytes::from(buf))
    }

    pub(super) async fn truncate_to(&self, w: &InodeWrite, size: u64) -> FsResult<()> {
        let mut body = w.body.lock().await;
        if size == w.size.load(Ordering::Acquire) && !body.dirty && size != 0 {
            return Ok(());
        }
        self.unseal(w, &mut body).await?;
        let f = body.file.clone();
        blocking(move || f.set_len(size)).await?;
        body.dirty = true;
        body.digest = if size == 0 {
            Some(RunningDigest::new(self.setup()?.journal.chunk_size()))
        } else {
            body.digest.take().filter(|d| d.size() == size)
        };
        w.size.store(size, Ordering::Release);
        w.mtime.store(now_secs(), Ordering::Release);
        Ok(())
    }

    /// Hands the content to the journal when it changed: journaled on return (it survives
    /// the death of the process); with `durable` (fsync), synced too (it survives a power
    /// loss), together with everything journaled before it.
    pub(super) async fn commit(&self, w: &InodeWrite, durable: bool) -> FsResult<()> {
        self.let_hash_catch_up(w).await;
        let mut body = w.body.lock().await;
        if body.dirty {
            self.hand_over(w, &mut body).await?;
        }
        if durable && !w.junk {
            let journal = self.setup()?.journal.clone();
            tokio::task::spawn_blocking(move || journal.sync())
                .await
                .map_err(super::errors::from_join_error)?
                .map_err(sync_error)?;
        }
        Ok(())
    }

    /// Waits, without the content lock, until a large save's running hash (which may lag
    /// behind the writes: see `write_digest`) has caught up with what was written. The
    /// hand-over that follows holds the lock while it takes the digest: reads and writes of
    /// the file would otherwise queue behind the whole catch-up.
    async fn let_hash_catch_up(&self, w: &InodeWrite) {
        let pending = {
            let body = w.body.lock().await;
            let size = w.size.load(Ordering::Acquire);
            match &body.digest {
                Some(d) if body.dirty && d.size() == size && d.may_lag() => d.snapshot(),
                _ => return,
            }
        };
        let _ = tokio::task::spawn_blocking(move || pending.wait()).await;
    }

    /// flush: changed content is handed to the journal by a background task and the close
    /// returns at once. Nothing is at risk meanwhile: the staging file and its record (made
    /// when the file was opened) are what crash recovery journals after a kill, and the
    /// journal counts the save as pending (`announce_save`) until it is journaled, so status
    /// and unmount wait for it. The file's later operations (release, fsync, rename, another
    /// save) wait for the hand-over on the content lock.
    pub(super) fn flush_behind(&self, w: &Arc<InodeWrite>) -> FsResult<()> {
        let journal = self.setup()?.journal.clone();
        if let Ok(body) = w.body.try_lock()
            && !body.dirty
        {
            return Ok(());
        }
        let Some(fs) = self.weak_self.upgrade() else {
            return Ok(());
        };
        let counted = journal.announce_save(w.size.load(Ordering::Acquire));
        lock(&self.handovers).insert(w.ino, w.clone());
        let w = w.clone();
        tokio::spawn(async move {
            let _counted = counted;
            if let Err(e) = fs.commit(&w, false).await {
                // Still dirty: the release retries, and the staging record covers a crash.
                tracing::error!(ino = w.ino, "could not save a closed file for upload: {e}");
            }
            let mut handovers = lock(&fs.handovers);
            if handovers.get(&w.ino).is_some_and(|h| Arc::ptr_eq(h, &w)) {
                handovers.remove(&w.ino);
            }
        });
        Ok(())
    }

    /// Waits for every closed save still being handed over (see `flush_behind`). Deletes and
    /// renames call it first, so the journal receives the save, then the namespace change,
    /// in the order the user made them (and a save never lands after the delete of its file).
    pub(super) async fn settle_handovers(&self) {
        let pending: Vec<Arc<InodeWrite>> = lock(&self.handovers).values().cloned().collect();
        for w in pending {
            if let Err(e) = self.commit(&w, false).await {
                tracing::error!(ino = w.ino, "could not save a closed file: {e}");
            }
        }
    }

    /// The work of [`Self::commit`] for changed content, in one blocking step.
    async fn hand_over(&self, w: &InodeWrite, body: &mut WriteBody) -> FsResult<()> {
        let (size, mtime) = (
            w.size.load(Ordering::Acquire),
            w.mtime.load(Ordering::Acquire),
        );
        let (ino, junk, meta) = (w.ino, w.junk, self.meta.clone());
        if junk {
            let f = body.file.clone();
            blocking(move || f.sync_data()).await?;
            body.dirty = false;
            return self
                .meta(move |m| m.set_local_content(ino, size, mtime, None, LocalState::Junk))
                .await;
        }
        let journal = self.setup()?.journal.clone();
        let Some(src) = body.disk_path.clone() else {
            return Err(FsError::Io("staging file missing".into()));
        };
        let base = body.base.clone();
        let pending = body
            .digest
            .as_ref()
            .filter(|d| d.size() == size)
            .map(RunningDigest::snapshot);
        let handed = tokio::task::spawn_blocking(move || {
            let digest = pending.and_then(|p| p.wait());
            let meta_err = super::errors::from_meta_error;
            let rec = match meta.get(ino) {
                Ok(Some(rec)) => rec,
                // Deleted while open: the content goes with it.
                Ok(None) => return HandOver::Deleted,
                Err(e) => return HandOver::Failed(meta_err(e)),
            };
            let enqueued = match journal.enqueue_upload_digested(&rec.path, &src, base, digest) {
                Ok(enqueued) => enqueued,
                Err(e) => return HandOver::Failed(sync_error(e)),
            };
            // The journal linked or moved our file: it must not change in place any more.
            let _ = std::fs::remove_file(&src);
            let version = ContentVersion {
                kind: HashKind::CellsHash,
                value: enqueued.cells_hash,
            };
            let staging_name = super::open_staging::file_name(&src);
            let recorded = meta
                .hand_over_open_staging(&staging_name, ino, size, mtime, &version)
                .map_err(meta_err);
            HandOver::Journaled(version, recorded)
        })
        .await
        .map_err(super::errors::from_join_error)?;
        match handed {
            HandOver::Journaled(version, recorded) => {
                body.dirty = false;
                body.disk_path = None;
                body.base = Some(version);
                recorded
            }
            HandOver::Deleted => {
                body.dirty = false;
                Ok(())
            }
            HandOver::Failed(e) => Err(e),
        }
    }

    /// One handle of `w` is gone; the last one hands the content over and drops the state.
    pub(super) async fn detach_write(&self, w: &Arc<InodeWrite>) {
        if w.handles.load(Ordering::Acquire) > 1 {
            w.handles.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        if let Err(e) = self.commit(w, false).await {
            tracing::error!(ino = w.ino, "could not save a closed file for upload: {e}");
        }
        let last = {
            let mut map = lock(&self.writes);
            let left = w.handles.fetch_sub(1, Ordering::AcqRel) - 1;
            if left == 0 {
                map.remove(&w.ino);
                self.write_closes.fetch_add(1, Ordering::AcqRel);
            }
            left == 0
        };
        if !last {
            return;
        }
        let body = w.body.lock().await;
        if let Some(path) = &body.disk_path
            && !w.junk
        {
            self.drop_staging(path).await;
        }
    }

    /// Size and mtime of an inode open for writing, which override the index's.
    pub(super) fn local_overrides(&self, ino: Ino) -> Option<(u64, i64)> {
        lock(&self.writes).get(&ino).map(|w| {
            (
                w.size.load(Ordering::Acquire),
                w.mtime.load(Ordering::Acquire),
            )
        })
    }
}

/// The length of a write of `data` at `offset`, and where it ends.
fn write_extent(offset: u64, data: &[u8]) -> FsResult<(u32, u64)> {
    let len = u32::try_from(data.len()).map_err(|_| FsError::Invalid("write too large".into()))?;
    let end = offset
        .checked_add(u64::from(len))
        .ok_or_else(|| FsError::Invalid("offset too large".into()))?;
    Ok((len, end))
}

/// The running digest after `bytes` were written at `offset`, fed while the bytes are at
/// hand (`None` once a write went elsewhere than the end).
fn hashed_on(
    digest: Option<RunningDigest>,
    offset: u64,
    bytes: &[u8],
    file: &Arc<File>,
) -> Option<RunningDigest> {
    digest.and_then(|d| d.fed(offset, bytes, file))
}

/// The bookkeeping after a write that ended at `end`.
fn wrote(w: &InodeWrite, body: &mut WriteBody, end: u64) {
    body.dirty = true;
    w.size.fetch_max(end, Ordering::AcqRel);
    w.mtime.store(now_secs(), Ordering::Release);
}
