//! Offline pins, the part the rest of the mount sees: [`PinControl`] (pin, unpin, progress,
//! counts) implemented by the core, and [`PinState`], the shared state between those calls,
//! the background worker (`pin_worker`) and `user.cells.*` attributes.
//!
//! Pins are recorded by remote path in the metadata index; a folder pin covers everything
//! below it. The worker turns them into `Cache::pin` counts and fetched content.

use super::api::{FsError, FsResult, ROOT_INO};
use super::core::{CellsFs, lock};
use super::errors::from_join_error;
use crate::client::Remote;
use crate::names::RemotePath;
use async_trait::async_trait;
use cells_cache::Cache;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::Notify;

/// Progress of the work a set of pin roots needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinProgress {
    pub online: bool,
    pub files_total: u64,
    pub files_done: u64,
    pub bytes_total: u64,
    pub bytes_done: u64,
    /// Files that could not be pinned or fetched, and why (retried in the background).
    pub errors: Vec<(String, String)>,
    /// True once a complete pass of the worker covered the roots since they were pinned.
    pub done: bool,
}

/// Totals shown by `status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PinCounts {
    pub pinned_files: u64,
    /// Sizes of the pinned files (shared content counted once).
    pub pinned_bytes: u64,
    /// Pinned files whose content is not all local yet.
    pub pending_files: u64,
}

/// What the control socket asks of the mount about pins. Paths are remote paths.
#[async_trait]
pub trait PinControl: Send + Sync {
    /// Records pins (checked to exist when online); returns a ticket for [`Self::progress`].
    async fn pin(&self, paths: Vec<RemotePath>) -> Result<u64, String>;
    /// Removes pins and releases their content to eviction; returns the files released.
    async fn unpin(&self, paths: Vec<RemotePath>) -> Result<u64, String>;
    /// Progress of `paths`; `done` once the pass numbered `ticket` has completed.
    fn progress(&self, paths: &[RemotePath], ticket: u64) -> PinProgress;
    /// Blocking (reads the index): call off the executor.
    fn counts(&self) -> PinCounts;
    /// Woken whenever progress changes.
    fn changed(&self) -> Arc<Notify>;
    /// True when `path` is pinned (itself or a folder above it).
    fn covers(&self, path: &RemotePath) -> bool;
}

/// Per pin root: what its last (or current) pass found.
#[derive(Debug, Clone, Default)]
pub(super) struct RootProgress {
    pub files_total: u64,
    pub files_done: u64,
    pub bytes_total: u64,
    pub bytes_done: u64,
    pub errors: Vec<(String, String)>,
}

#[derive(Default)]
pub(super) struct Passes {
    /// Number of the last pass started / completed.
    pub started: u64,
    pub completed: u64,
    pub roots: HashMap<RemotePath, RootProgress>,
}

/// Pin state shared by the core, its worker and the control socket.
pub struct PinState {
    pub(super) cache: Arc<Cache>,
    /// The pin roots, mirrored from the index for cheap checks (xattrs, feed events).
    pub(super) roots: RwLock<Vec<RemotePath>>,
    /// Wakes the worker (pin added, feed event inside a pin, back online).
    pub(super) wake: Arc<Notify>,
    pub(super) changed: Arc<Notify>,
    pub(super) passes: Mutex<Passes>,
    /// Serializes unpinning with the worker's pin-row updates, so an unpin never races a
    /// file being pinned under the root it removes.
    pub(super) rows: tokio::sync::Mutex<()>,
}

impl PinState {
    /// The state for a core starting on `meta` (pin roots read from the index).
    pub(super) fn load(cache: Arc<Cache>, meta: &crate::meta::MetaStore) -> Self {
        let roots = meta.pin_roots().unwrap_or_else(|e| {
            tracing::warn!("reading pins from the index: {e}; the pin worker will retry");
            Vec::new()
        });
        Self::new(cache, roots)
    }

    pub(super) fn new(cache: Arc<Cache>, roots: Vec<RemotePath>) -> Self {
        Self {
            cache,
            roots: RwLock::new(roots),
            wake: Arc::new(Notify::new()),
            changed: Arc::new(Notify::new()),
            passes: Mutex::default(),
            rows: tokio::sync::Mutex::new(()),
        }
    }

    /// True when `path` is a pin root or lies below one.
    pub fn covers(&self, path: &RemotePath) -> bool {
        covered(&self.roots.read().unwrap_or_else(|p| p.into_inner()), path)
    }

    /// True when `path` is pinned and its content `key` holds a cache pin (not refused for
    /// lack of room).
    pub fn keeps(&self, path: &RemotePath, key: &str) -> bool {
        self.covers(path) && self.cache.pin_count(key) > 0
    }

    pub(super) fn set_roots(&self, roots: Vec<RemotePath>) {
        *self.roots.write().unwrap_or_else(|p| p.into_inner()) = roots;
    }

    pub(super) fn any(&self) -> bool {
        !self
            .roots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Runs a blocking cache call off the executor.
    pub(super) async fn cache_op<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Cache) -> Result<T, cells_cache::CacheError> + Send + 'static,
    ) -> FsResult<T> {
        let cache = self.cache.clone();
        tokio::task::spawn_blocking(move || f(&cache))
            .await
            .map_err(from_join_error)?
            .map_err(super::errors::from_cache_error)
    }

    pub(super) fn update(&self, f: impl FnOnce(&mut Passes)) {
        f(&mut lock(&self.passes));
        self.changed.notify_waiters();
    }
}

pub(super) fn covered(roots: &[RemotePath], path: &RemotePath) -> bool {
    roots.iter().any(|r| path.starts_with(r))
}

impl<R: Remote> CellsFs<R> {
    /// The inode at a remote path below the mount root, looked up (and listed) as needed.
    pub(super) async fn resolve_path(&self, path: &RemotePath) -> FsResult<Ino> {
        if !path.starts_with(&self.root_path) {
            return Err(FsError::NotFound);
        }
        let mut ino = ROOT_INO;
        let skip = self.root_path.components().count();
        for name in path.components().skip(skip) {
            ino = self
                .do_lookup(ino, std::ffi::OsStr::new(name))
                .await?
                .attr
                .ino;
        }
        Ok(ino)
    }

    async fn reload_roots(&self) -> FsResult<Vec<RemotePath>> {
        let roots = self.meta(|m| m.pin_roots()).await?;
        self.pins.set_roots(roots.clone());
        Ok(roots)
    }

    /// Gives back the cache pins of rows no root covers any more; returns how many.
    pub(super) async fn release_uncovered(&self, under: &RemotePath) -> FsResult<u64> {
        let roots = self.reload_roots().await?;
        let under = under.clone();
        let rows = self.meta(move |m| m.pinned_content_under(&under)).await?;
        let mut released = 0;
        for row in rows.into_iter().filter(|r| !covered(&roots, &r.path)) {
            let key = row.key.clone();
            self.pins.cache_op(move |c| c.unpin(&key)).await?;
            let path = row.path.clone();
            self.meta(move |m| m.remove_pinned_content(&path)).await?;
            released += 1;
        }
        Ok(released)
    }

    async fn do_pin(&self, paths: Vec<RemotePath>) -> Result<u64, String> {
        for path in &paths {
            if !path.starts_with(&self.root_path) {
                return Err(format!("{path} is not inside this mount"));
            }
            match self.resolve_path(path).await {
                // Offline: the pin is recorded and fetched when the server is back.
                Ok(_) | Err(FsError::Offline) => {}
                Err(FsError::NotFound) => return Err(format!("{path}: no such file or folder")),
                Err(e) => return Err(format!("{path}: {e}")),
            }
        }
        let ticket = lock(&self.pins.passes).started + 1;
        for path in paths {
            self.meta(move |m| m.add_pin(&path))
                .await
                .map_err(|e| e.to_string())?;
        }
        self.reload_roots().await.map_err(|e| e.to_string())?;
        self.pins.wake.notify_one();
        Ok(ticket)
    }

    async fn do_unpin(&self, paths: Vec<RemotePath>) -> Result<u64, String> {
        let _rows = self.pins.rows.lock().await;
        let roots = self.reload_roots().await.map_err(|e| e.to_string())?;
        // Check everything first: a refused path changes nothing.
        let mut removals = Vec::new();
        for path in &paths {
            // A pin root goes alone (pins nested in it stay); a folder holding pins loses
            // all of them.
            let below: Vec<RemotePath> = if roots.contains(path) {
                vec![path.clone()]
            } else {
                roots
                    .iter()
                    .filter(|r| r.starts_with(path))
                    .cloned()
                    .collect()
            };
            if below.is_empty() {
                return Err(match roots.iter().find(|r| path.starts_with(r)) {
                    Some(outer) => format!(
                        "{path} is inside the pinned folder {outer}; pins cover whole folders, \
                         unpin {outer} instead"
                    ),
                    None => format!("{path} is not pinned"),
                });
            }
            removals.push((path.clone(), below));
        }
        let mut released = 0;
        for (path, below) in removals {
            for root in below {
                self.meta(move |m| m.remove_pin(&root))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            released += self
                .release_uncovered(&path)
                .await
                .map_err(|e| e.to_string())?;
        }
        self.pins.changed.notify_waiters();
        Ok(released)
    }

    fn pin_progress(&self, paths: &[RemotePath], ticket: u64) -> PinProgress {
        let passes = lock(&self.pins.passes);
        let mut out = PinProgress {
            online: !self.is_offline(),
            done: passes.completed >= ticket,
            ..PinProgress::default()
        };
        for (root, p) in &passes.roots {
            if !paths
                .iter()
                .any(|want| root.starts_with(want) || want.starts_with(root))
            {
                continue;
            }
            out.files_total += p.files_total;
            out.files_done += p.files_done;
            out.bytes_total += p.bytes_total;
            out.bytes_done += p.bytes_done;
            out.errors.extend(p.errors.iter().cloned());
        }
        out
    }

    fn pin_counts(&self) -> PinCounts {
        let (pinned_files, pinned_bytes) = self.meta.pinned_totals().unwrap_or_else(|e| {
            tracing::warn!("pin totals: {e}");
            (0, 0)
        });
        let pending_files = lock(&self.pins.passes)
            .roots
            .values()
            .map(|p| p.files_total.saturating_sub(p.files_done))
            .sum();
        PinCounts {
            pinned_files,
            pinned_bytes,
            pending_files,
        }
    }
}

use super::api::Ino;

#[async_trait]
impl<R: Remote> PinControl for CellsFs<R> {
    async fn pin(&self, paths: Vec<RemotePath>) -> Result<u64, String> {
        self.do_pin(paths).await
    }

    async fn unpin(&self, paths: Vec<RemotePath>) -> Result<u64, String> {
        self.do_unpin(paths).await
    }

    fn progress(&self, paths: &[RemotePath], ticket: u64) -> PinProgress {
        self.pin_progress(paths, ticket)
    }

    fn counts(&self) -> PinCounts {
        self.pin_counts()
    }

    fn changed(&self) -> Arc<Notify> {
        self.pins.changed.clone()
    }

    fn covers(&self, path: &RemotePath) -> bool {
        self.pins.covers(path)
    }
}

impl<R: Remote> CellsFs<R> {
    /// True when a change event touches a pinned tree (a new file there is to be pinned, a
    /// new version fetched), or when events may have been lost: the pin worker should look.
    pub(super) fn pin_touched(&self, item: &crate::client::FeedItem) -> bool {
        use crate::client::FeedItem;
        if !self.pins.any() {
            return false;
        }
        match item {
            FeedItem::Resync => true,
            FeedItem::Event(ev) => ev
                .source
                .iter()
                .chain(ev.target.iter())
                .any(|n| self.pins.covers(&n.path)),
        }
    }
}
