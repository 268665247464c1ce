//! The file-system core: [`CellsFs`], its state (open handles, in-flight listings, what the
//! kernel has cached), construction, and the helpers every operation shares.

use super::api::*;
use super::config::FsConfig;
use super::content::ContentStore;
use super::errors::{from_client_error, from_join_error, from_meta_error};
use super::fetch::{Fetcher, Source};
use super::offline::OfflineState;
use super::readahead::ReadAhead;
use super::readdir::DirHandle;
use crate::client::{NodeKind, Remote};
use crate::meta::{InodeRecord, MetaChange, MetaResult, MetaStore, StagedNode, now_ms};
use crate::names::{RemotePath, validate_name};
use cells_cache::{Cache, HoldGuard};
use futures::future::{BoxFuture, Shared};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An open file.
pub(super) struct OpenFile {
    pub ino: Ino,
    pub path: RemotePath,
    pub size: u64,
    /// `None` while the server has no content version (upload in progress): read uncached.
    pub source: Option<Source>,
    /// Told to the kernel at open: bypass the page cache.
    pub direct_io: bool,
    pub readahead: Mutex<ReadAhead>,
    /// Keeps the content in the cache while the file is open.
    pub _hold: Option<HoldGuard>,
    /// The inode's local write state, for handles opened for writing (or while it was
    /// being written).
    pub write: Option<Arc<super::write::InodeWrite>>,
}

pub(super) type ListingFuture = Shared<BoxFuture<'static, FsResult<()>>>;

/// The OS-independent file system over a Cells [`Remote`], the content cache and the
/// metadata index.
pub struct CellsFs<R: Remote> {
    pub(super) cfg: FsConfig,
    pub(super) remote: Arc<R>,
    pub(super) meta: MetaStore,
    pub(super) fetcher: Arc<Fetcher<R>>,
    pub(super) offline: Arc<OfflineState>,
    pub(super) root_path: RemotePath,
    invalidator: RwLock<Option<Arc<dyn Invalidator>>>,
    next_fh: AtomicU64,
    pub(super) files: Mutex<HashMap<Fh, Arc<OpenFile>>>,
    /// Per open directory handle: the children's inodes at opendir time (offsets index it).
    pub(super) dirs: Mutex<HashMap<Fh, Arc<DirHandle>>>,
    /// The cache key each inode had when the kernel last opened it (for `keep_cache`).
    pub(super) kernel_keys: Mutex<HashMap<Ino, Option<String>>>,
    /// One listing per folder at a time; concurrent lookups wait on the same one.
    pub(super) listings: Mutex<HashMap<Ino, ListingFuture>>,
    /// Folders with a listing in flight from which the feed removed a child meanwhile: the
    /// listing's pages may predate the removal, so the folder is listed again after it.
    pub(super) relist: Mutex<HashSet<Ino>>,
    pub(super) feed_live: AtomicBool,
    pub(super) weak_self: Weak<Self>,
    /// Set by [`Self::enable_writes`]; without it the mount is read-only.
    pub(super) write_setup: OnceLock<super::write::WriteSetup>,
    /// Inodes open for writing: their shared staging state.
    pub(super) writes: Mutex<HashMap<Ino, Arc<super::write::InodeWrite>>>,
    /// Bumped each time an inode leaves `writes` (its final size is in the index by then):
    /// a record read before a bump may predate that size (see [`Self::current_attr`]).
    pub(super) write_closes: AtomicU64,
    /// Offline pins: roots, worker wake-ups and progress.
    pub(super) pins: super::pin::PinState,
    /// Closed saves whose hand-over to the journal runs in the background (see
    /// `write::flush_behind`).
    pub(super) handovers: Mutex<HashMap<Ino, Arc<super::write::InodeWrite>>>,
    /// Paths of operations the uploader finished lately, with when (see `hooks::sweep`).
    pub(super) recently_settled: Mutex<Vec<(String, std::time::Instant)>>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<R: Remote> CellsFs<R> {
    /// Builds the core. `meta` must have been opened with [`Self::root_path_for`]`(&cfg)`.
    /// Fetches use the cache's chunk size. Must be called inside a Tokio
    /// runtime's context for the background tasks it starts later.
    pub fn new(
        cfg: FsConfig,
        remote: Arc<R>,
        cache: Arc<Cache>,
        meta: MetaStore,
    ) -> FsResult<Arc<Self>> {
        let root_path = Self::root_path_for(&cfg)?;
        let offline = Arc::new(OfflineState::default());
        let pins = super::pin::PinState::load(cache.clone(), &meta);
        let store = ContentStore::new(cache);
        let fetcher = Arc::new(
            Fetcher::new(
                remote.clone(),
                store,
                offline.clone(),
                cfg.fetch_parallelism,
                root_path.clone(),
                (cfg.offline_probe_min, cfg.offline_probe_max),
            )
            .with_request_size(cfg.fetch_request_max)
            .with_memory(cfg.fetched_in_memory),
        );
        Ok(Arc::new_cyclic(|weak| Self {
            cfg,
            remote,
            meta,
            fetcher,
            offline,
            root_path,
            invalidator: RwLock::new(None),
            next_fh: AtomicU64::new(1),
            files: Mutex::default(),
            dirs: Mutex::default(),
            kernel_keys: Mutex::default(),
            listings: Mutex::default(),
            relist: Mutex::default(),
            feed_live: AtomicBool::new(false),
            recently_settled: Mutex::default(),
            handovers: Mutex::default(),
            weak_self: weak.clone(),
            write_setup: OnceLock::new(),
            writes: Mutex::default(),
            write_closes: AtomicU64::new(0),
            pins,
        }))
    }

    /// The remote path shown at the mount root for `cfg` (what [`MetaStore::open`] wants).
    pub fn root_path_for(cfg: &FsConfig) -> FsResult<RemotePath> {
        match &cfg.workspace {
            None => Ok(RemotePath::root()),
            Some(slug) => {
                validate_name(slug).map_err(|e| FsError::InvalidName(e.to_string()))?;
                RemotePath::root()
                    .join(slug)
                    .map_err(|e| FsError::InvalidName(e.to_string()))
            }
        }
    }

    /// Where kernel cache invalidations go (the FUSE adapter's notifier).
    pub fn set_invalidator(&self, inv: Arc<dyn Invalidator>) {
        *self.invalidator.write().unwrap_or_else(|p| p.into_inner()) = Some(inv);
    }

    /// True while the server is unreachable and the core serves from local state only.
    pub fn is_offline(&self) -> bool {
        self.offline.is_offline()
    }

    /// Since when (Unix milliseconds) the server is unreachable, if it is.
    pub fn offline_since_ms(&self) -> Option<i64> {
        self.offline.offline_since_ms()
    }

    /// Returns the next time the server answers again after being unreachable.
    pub async fn back_online(&self) {
        self.offline.back_online().await
    }

    /// Waits until no content fetch (demand or read-ahead) is in flight.
    pub async fn wait_fetches_idle(&self) {
        self.fetcher.idle().await
    }

    pub(super) fn next_handle(&self) -> Fh {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn dir_ttl(&self) -> Duration {
        if self.feed_live.load(Ordering::Acquire) {
            self.cfg.dir_ttl_live_feed
        } else {
            self.cfg.dir_ttl
        }
    }

    /// True when a timestamp (Unix ms) is recent enough to trust without asking the server.
    pub(super) fn is_fresh(&self, at_ms: i64) -> bool {
        at_ms > 0 && now_ms().saturating_sub(at_ms) < self.dir_ttl().as_millis() as i64
    }

    /// Runs a blocking metadata operation off the executor.
    pub(super) async fn meta<T: Send + 'static>(
        &self,
        f: impl FnOnce(&MetaStore) -> MetaResult<T> + Send + 'static,
    ) -> FsResult<T> {
        let meta = self.meta.clone();
        tokio::task::spawn_blocking(move || f(&meta))
            .await
            .map_err(from_join_error)?
            .map_err(from_meta_error)
    }

    /// Runs a point read of the index (one row by key) right here. Such a read takes a few
    /// microseconds on the WAL database, less than handing it to a blocking thread and back,
    /// which every lookup, getattr and create would otherwise pay (and pay dearly on a busy
    /// machine). Anything that writes or scans goes through [`Self::meta`].
    pub(super) fn meta_point_read<T>(
        &self,
        f: impl FnOnce(&MetaStore) -> MetaResult<T>,
    ) -> FsResult<T> {
        f(&self.meta).map_err(from_meta_error)
    }

    pub(super) async fn record(&self, ino: Ino) -> FsResult<Arc<InodeRecord>> {
        self.record_now(ino)
    }

    /// The record of `ino` from the memory cache, else a point read of the index.
    pub(super) fn record_now(&self, ino: Ino) -> FsResult<Arc<InodeRecord>> {
        // Hot path (getattr, readdir, xattrs): a cached record needs no blocking thread.
        if let Some(hit) = self.meta.cached(ino) {
            return Ok(hit);
        }
        self.meta_point_read(|m| m.get(ino))?
            .ok_or(FsError::NotFound)
    }

    /// Records a server error; `Offline` switches the core offline. Returns its mapping.
    pub(super) fn client_error(&self, e: crate::client::ClientError) -> FsError {
        self.fetcher.note_error(&e);
        from_client_error(e)
    }

    /// Sends the kernel invalidations that index changes call for. Delivered from a separate
    /// task: the kernel may hold locks of the very request that caused them.
    pub(super) fn deliver(&self, changes: Vec<MetaChange>) {
        let inv = self
            .invalidator
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(inv) = inv else { return };
        if changes.is_empty() {
            return;
        }
        tokio::task::spawn_blocking(move || {
            for change in changes {
                match change {
                    MetaChange::EntryGone { parent, name }
                    | MetaChange::EntryAdded { parent, name } => {
                        inv.inval_entry(parent, std::ffi::OsStr::new(&name))
                    }
                    MetaChange::Changed { ino, .. } => inv.inval_inode(ino),
                }
            }
        });
    }

    pub(super) fn attr_of(&self, rec: &InodeRecord) -> Attr {
        self.attr_with(rec, self.local_overrides(rec.ino))
    }

    /// How many inodes left `writes` so far: taken before reading a record whose attributes
    /// go to the kernel, and handed to [`Self::current_attr`].
    pub(super) fn write_closes(&self) -> u64 {
        self.write_closes.load(Ordering::Acquire)
    }

    /// The attributes of `rec`, read after `closes_before` was taken. A file closed while
    /// the record was read may have left `writes` with a newer size than the record's (the
    /// size a closed file shows must never step back): the record is then read again.
    pub(super) async fn current_attr(
        &self,
        rec: Arc<InodeRecord>,
        closes_before: u64,
    ) -> FsResult<Attr> {
        if let Some(attr) = self.current_attr_now(&rec, closes_before) {
            return Ok(attr);
        }
        let rec = self.record(rec.ino).await?;
        Ok(self.attr_of(&rec))
    }

    /// [`Self::current_attr`] without waiting: `None` when the record must be read again.
    pub(super) fn current_attr_now(&self, rec: &InodeRecord, closes_before: u64) -> Option<Attr> {
        let local = self.local_overrides(rec.ino);
        if local.is_none() && !rec.is_dir() && self.write_closes() != closes_before {
            return None;
        }
        Some(self.attr_with(rec, local))
    }

    /// [`Self::current_attr_now`] as an entry for the kernel.
    pub(super) fn current_entry_now(&self, rec: &InodeRecord, closes_before: u64) -> Option<Entry> {
        self.current_attr_now(rec, closes_before).map(|attr| Entry {
            attr,
            ttl: self.cfg.attr_ttl,
        })
    }

    /// [`Self::current_attr`] as an entry for the kernel.
    pub(super) async fn current_entry(
        &self,
        rec: Arc<InodeRecord>,
        closes_before: u64,
    ) -> FsResult<Entry> {
        Ok(Entry {
            attr: self.current_attr(rec, closes_before).await?,
            ttl: self.cfg.attr_ttl,
        })
    }

    /// The attributes of `rec`, with `local` (size, mtime of an open write state) over the
    /// index's.
    fn attr_with(&self, rec: &InodeRecord, local: Option<(u64, i64)>) -> Attr {
        let (size, mtime) = local.unwrap_or((rec.size, rec.mtime));
        let mtime = u64::try_from(mtime)
            .map(|s| UNIX_EPOCH + Duration::from_secs(s))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let (kind, perm, nlink, size) = match rec.kind {
            NodeKind::Folder => (FileKind::Dir, 0o755, 2, 0),
            NodeKind::File => (FileKind::File, 0o644, 1, size),
        };
        let perm = if rec.read_only { perm & !0o222 } else { perm };
        Attr {
            ino: rec.ino,
            kind,
            size,
            mtime,
            ctime: mtime,
            perm,
            nlink,
            uid: self.cfg.uid,
            gid: self.cfg.gid,
        }
    }

    pub(super) fn entry_of(&self, rec: &InodeRecord) -> Entry {
        Entry {
            attr: self.attr_of(rec),
            ttl: self.cfg.attr_ttl,
        }
    }

    /// Whether `rec` can be shown as it is, without asking the server (see
    /// [`Self::fresh_record`]).
    pub(super) fn record_current(&self, rec: &InodeRecord) -> bool {
        rec.ino == ROOT_INO
            || rec.is_dir()
            || rec.is_protected()
            || (self.is_fresh(rec.seen_at) && rec.seen_at >= self.meta.stale_before_ms())
            || self.is_offline()
    }

    /// The record of `ino`, checked with the server (`stat`) when its description is older
    /// than the listing TTL or than the last restart or feed resync. Offline, or for the root and folders, the stored one is used.
    pub(super) async fn fresh_record(&self, ino: Ino) -> FsResult<Arc<InodeRecord>> {
        let rec = self.record(ino).await?;
        if self.record_current(&rec) {
            return Ok(rec);
        }
        match self.remote.stat(&rec.path).await {
            Ok(node) if node.path == rec.path => {
                let staged = StagedNode::from(&node);
                let parent = rec.parent;
                let (new_ino, changes) =
                    self.meta(move |m| m.upsert_child(parent, &staged)).await?;
                self.deliver(changes);
                if new_ino != ino {
                    // Same name, another node now (a file became a folder...).
                    return Err(FsError::NotFound);
                }
                self.record(ino).await
            }
            Ok(_) => Err(FsError::Io("the server described another path".into())),
            Err(crate::client::ClientError::NotFound(_)) => {
                let changes = self.meta(move |m| m.remove(ino)).await?;
                self.deliver(changes);
                Err(FsError::NotFound)
            }
            Err(e) if e.is_offline() => {
                self.client_error(e);
                Ok(rec)
            }
            Err(e) => Err(self.client_error(e)),
        }
    }
}
