//! Folders: lookups and listings (paged from the server, streamed into the index, one at a
//! time per folder); readdir is in `readdir`.

use super::api::*;
use super::core::{CellsFs, lock};
use super::junk::is_desktop_junk;
use crate::client::Remote;
use crate::meta::{InodeRecord, StagedNode, now_ms};
use crate::names::{RemotePath, validate_name};
use futures::FutureExt;
use std::ffi::OsStr;

/// Children asked from the server per request.
pub const LIST_PAGE: u32 = 1000;

impl<R: Remote> CellsFs<R> {
    /// Makes sure `dir`'s children in the index are recent enough: re-lists a stale folder
    /// when online; offline, any earlier listing is served whatever its age.
    pub(super) async fn ensure_listed(&self, dir: &InodeRecord) -> FsResult<()> {
        self.ensure_listed_or_stale(dir, false).await.map(|_| ())
    }

    /// Whether the index's children of `dir` can be served as they are: listed within the
    /// TTL and since the last restart or resync, or offline and listed once.
    pub(super) fn listing_current(&self, dir: &InodeRecord) -> bool {
        let stale_before = self.meta.stale_before_ms();
        match dir.listed_at {
            Some(t) if t >= stale_before && self.is_fresh(t) => true,
            Some(_) => self.is_offline(),
            None => false,
        }
    }

    /// [`Self::ensure_listed`]; with `serve_stale`, a listing that may have missed server
    /// changes (made by an earlier session, or before a feed resync) is served from the index
    /// at once while a background re-list refreshes it (its commit invalidates the kernel's
    /// entries that changed): a restart or a reconnection shows folders at once. Returns true
    /// when it served such a listing. A listing whose TTL ran out is still awaited: without a
    /// live feed, a change must show on the next access after the TTL.
    async fn ensure_listed_or_stale(&self, dir: &InodeRecord, serve_stale: bool) -> FsResult<bool> {
        if !dir.is_dir() {
            return Err(FsError::NotDir);
        }
        if self.listing_current(dir) {
            return Ok(false);
        }
        let stale_before = self.meta.stale_before_ms();
        let listed_before = dir.listed_at.is_some();
        if self.is_offline() {
            return if listed_before {
                Ok(false)
            } else {
                self.offline.nudge();
                Err(FsError::Offline)
            };
        }
        if serve_stale && dir.listed_at.is_some_and(|t| t > 0 && t < stale_before) {
            // The listing runs in its own task; dropping our handle does not cancel it.
            drop(self.listing(dir.ino, dir.path.clone()));
            return Ok(true);
        }
        match self.listing(dir.ino, dir.path.clone()).await {
            Err(FsError::Offline) if listed_before => Ok(false),
            other => other.map(|()| false),
        }
    }

    /// The listing of folder `ino` in progress, or a new one.
    fn listing(&self, ino: Ino, path: RemotePath) -> super::core::ListingFuture {
        let mut map = lock(&self.listings);
        if let Some(f) = map.get(&ino) {
            return f.clone();
        }
        let Some(this) = self.weak_self.upgrade() else {
            return futures::future::ready(Err(FsError::Io("shutting down".into())))
                .boxed()
                .shared();
        };
        let task = tokio::spawn(async move {
            let res = this.list_folder(ino, &path).await;
            lock(&this.listings).remove(&ino);
            res
        });
        let fut = async move {
            task.await
                .unwrap_or_else(|e| Err(FsError::Io(format!("listing task failed: {e}"))))
        }
        .boxed()
        .shared();
        map.insert(ino, fut.clone());
        fut
    }

    /// Lists folder `ino` page by page into the index's stage, then swaps it in.
    async fn list_folder(&self, ino: Ino, path: &RemotePath) -> FsResult<()> {
        // Before the first page: the listing is only as recent as that (see commit_listing).
        let started = now_ms();
        self.meta(move |m| m.clear_stage(ino)).await?;
        let mut offset = 0u64;
        loop {
            let page = self
                .remote
                .list_page(path, offset, LIST_PAGE)
                .await
                .map_err(|e| self.client_error(e))?;
            if !page.refused.is_empty() {
                tracing::warn!(folder = %path, count = page.refused.len(), "entries with unusable names were skipped");
            }
            let received = page.nodes.len() + page.refused.len();
            let staged: Vec<StagedNode> = page
                .nodes
                .iter()
                .filter(|n| {
                    // A server must not place entries in another folder through a listing.
                    let inside = n.path.parent() == *path && !n.path.is_root();
                    if !inside {
                        tracing::warn!(folder = %path, "listing entry outside the folder skipped");
                    }
                    inside && !is_desktop_junk(n.name())
                })
                .map(StagedNode::from)
                .collect();
            self.meta(move |m| m.stage_page(ino, &staged)).await?;
            match page.next_offset {
                // Only ever forward, and never on an empty page: a looping server cannot
                // keep us here.
                Some(next) if next > offset && received > 0 => offset = next,
                _ => break,
            }
        }
        let changes = self.meta(move |m| m.commit_listing(ino, started)).await?;
        self.deliver(changes);
        if lock(&self.relist).remove(&ino) {
            // The feed removed a child while the pages came in: the next access lists again.
            self.meta(move |m| m.mark_stale(ino)).await?;
        }
        Ok(())
    }

    /// The name of a lookup, or the answer to a name that cannot exist here.
    fn lookup_name(name: &OsStr) -> FsResult<&str> {
        let name = name.to_str().ok_or(FsError::NotFound)?;
        if name.len() > crate::names::MAX_NAME_BYTES {
            return Err(FsError::NameTooLong);
        }
        if validate_name(name).is_err() {
            return Err(FsError::NotFound);
        }
        Ok(name)
    }

    /// [`Self::do_lookup`] without waiting: a child of a folder whose listing is current,
    /// from the caches or one indexed read of the index (a miss is what creating files
    /// costs: each new name is looked up first). `None` when the folder must be listed or
    /// anything waited for.
    pub(super) fn do_lookup_now(&self, parent: Ino, name: &OsStr) -> Option<FsResult<Entry>> {
        let name = match Self::lookup_name(name) {
            Ok(name) => name,
            Err(e) => return Some(Err(e)),
        };
        let closes_before = self.write_closes();
        let dir = self.meta.cached(parent)?;
        if !dir.is_dir() {
            return Some(Err(FsError::NotDir));
        }
        // Desktop junk lives on this machine only: the index alone answers, listed or not.
        if !is_desktop_junk(name) && !self.listing_current(&dir) {
            return None;
        }
        let rec = match self.meta.try_child(parent, name)? {
            Ok(Some(rec)) => rec,
            Ok(None) => return Some(Err(FsError::NotFound)),
            Err(_) => return None,
        };
        self.current_entry_now(&rec, closes_before).map(Ok)
    }

    pub(super) async fn do_lookup(&self, parent: Ino, name: &OsStr) -> FsResult<Entry> {
        let name = Self::lookup_name(name)?;
        let closes_before = self.write_closes();
        if is_desktop_junk(name) {
            // Kept on this machine only: the index answers, never the server (a lookup of
            // a `.DS_Store` that does not exist must not cost a listing).
            return match self.meta_point_read(|m| m.child(parent, name))? {
                Some(rec) => self.current_entry(rec, closes_before).await,
                None => Err(FsError::NotFound),
            };
        }
        let dir = self.record(parent).await?;
        let served_stale = self.ensure_listed_or_stale(&dir, true).await?;
        // Hot path (`ls -l` once the kernel's entries expired): a cached child needs no
        // blocking thread.
        let cached = self.meta.cached_child(parent, name);
        let found = match cached {
            Some(rec) => Some(rec),
            None => self.meta_point_read(|m| m.child(parent, name))?,
        };
        if let Some(rec) = found {
            // From a stale listing, a name is shown at once; the refresh under way
            // invalidates it in the kernel if the server changed or removed it.
            return self.current_entry(rec, closes_before).await;
        }
        if !served_stale {
            return Err(FsError::NotFound);
        }
        // A name missing from a stale listing may have been created since: the refresh (the
        // one under way, or none if it is done) decides.
        let dir = self.record(parent).await?;
        self.ensure_listed(&dir).await?;
        let owned = name.to_owned();
        match self.meta(move |m| m.child(parent, &owned)).await? {
            Some(rec) => self.current_entry(rec, closes_before).await,
            None => Err(FsError::NotFound),
        }
    }

    pub(super) async fn do_opendir(&self, ino: Ino) -> FsResult<Fh> {
        let dir = self.record(ino).await?;
        self.ensure_listed_or_stale(&dir, true).await?;
        let snapshot = self.meta(move |m| m.snapshot_children(ino)).await?;
        Ok(self.open_dir_handle(snapshot))
    }
}
