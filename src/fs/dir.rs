//! Folders: lookups, listings (paged from the server, streamed into the index, one at a time
//! per folder) and readdir over per-handle snapshots with stable offsets.

use super::api::*;
use super::core::{CellsFs, lock};
use super::junk::is_desktop_junk;
use crate::client::Remote;
use crate::meta::{InodeRecord, StagedNode};
use crate::names::{RemotePath, validate_name};
use futures::FutureExt;
use std::ffi::OsStr;
use std::sync::Arc;

/// Children asked from the server per request.
pub const LIST_PAGE: u32 = 1000;
/// Entries returned per readdir call (the adapter continues from the last offset it used).
const READDIR_BATCH: usize = 512;

impl<R: Remote> CellsFs<R> {
    /// Makes sure `dir`'s children in the index are recent enough: re-lists a stale folder
    /// when online; offline, any earlier listing is served whatever its age.
    pub(super) async fn ensure_listed(&self, dir: &InodeRecord) -> FsResult<()> {
        self.ensure_listed_or_stale(dir, false).await
    }

    /// [`Self::ensure_listed`]; with `serve_stale`, a folder listed in an earlier session is
    /// served from the index at once while a background re-list refreshes it (its commit
    /// invalidates the kernel's entries that changed). Lookups do not take stale answers (a
    /// name created since must be found); listings do, so a restart shows folders at once.
    async fn ensure_listed_or_stale(&self, dir: &InodeRecord, serve_stale: bool) -> FsResult<()> {
        if !dir.is_dir() {
            return Err(FsError::NotDir);
        }
        let session = self.meta.session_started_ms();
        // Listings of an earlier session are never fresh: events may have been missed since.
        if dir
            .listed_at
            .is_some_and(|t| t >= session && self.is_fresh(t))
        {
            return Ok(());
        }
        let listed_before = dir.listed_at.is_some();
        if self.is_offline() {
            return if listed_before {
                Ok(())
            } else {
                Err(FsError::Offline)
            };
        }
        if serve_stale && dir.listed_at.is_some_and(|t| t > 0 && t < session) {
            // The listing runs in its own task; dropping our handle does not cancel it.
            drop(self.listing(dir.ino, dir.path.clone()));
            return Ok(());
        }
        match self.listing(dir.ino, dir.path.clone()).await {
            Err(FsError::Offline) if listed_before => Ok(()),
            other => other,
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
        let changes = self.meta(move |m| m.commit_listing(ino)).await?;
        self.deliver(changes);
        Ok(())
    }

    pub(super) async fn do_lookup(&self, parent: Ino, name: &OsStr) -> FsResult<Entry> {
        let name = name.to_str().ok_or(FsError::NotFound)?;
        if name.len() > crate::names::MAX_NAME_BYTES {
            return Err(FsError::NameTooLong);
        }
        if validate_name(name).is_err() || is_desktop_junk(name) {
            return Err(FsError::NotFound);
        }
        let dir = self.record(parent).await?;
        self.ensure_listed(&dir).await?;
        let owned = name.to_owned();
        match self.meta(move |m| m.child(parent, &owned)).await? {
            Some(rec) => Ok(self.entry_of(&rec)),
            None => Err(FsError::NotFound),
        }
    }

    pub(super) async fn do_opendir(&self, ino: Ino) -> FsResult<Fh> {
        let dir = self.record(ino).await?;
        self.ensure_listed_or_stale(&dir, true).await?;
        let snapshot = self.meta(move |m| m.child_inos(ino)).await?;
        let fh = self.next_handle();
        lock(&self.dirs).insert(fh, Arc::new(snapshot));
        Ok(fh)
    }

    /// Offsets: 0 = start, 1 = after `.`, 2 = after `..`, `2 + i + 1` = after child `i` of
    /// the snapshot. Children deleted since opendir are skipped; offsets stay valid.
    pub(super) async fn do_readdir(
        &self,
        ino: Ino,
        fh: Fh,
        offset: u64,
    ) -> FsResult<Vec<DirEntry>> {
        let snapshot = lock(&self.dirs)
            .get(&fh)
            .cloned()
            .ok_or(FsError::BadHandle)?;
        let dir = self.record(ino).await?;
        let mut out = Vec::new();
        if offset == 0 {
            out.push(DirEntry {
                ino,
                name: ".".into(),
                kind: FileKind::Dir,
                next_offset: 1,
                attr: self.attr_of(&dir),
            });
        }
        if offset <= 1 {
            let parent_ino = if ino == ROOT_INO {
                ROOT_INO
            } else {
                dir.parent
            };
            let parent = match self.record(parent_ino).await {
                Ok(p) => p,
                Err(_) => dir.clone(),
            };
            let mut attr = self.attr_of(&parent);
            attr.ino = parent_ino;
            out.push(DirEntry {
                ino: parent_ino,
                name: "..".into(),
                kind: FileKind::Dir,
                next_offset: 2,
                attr,
            });
        }
        let mut first = usize::try_from(offset.saturating_sub(2)).unwrap_or(usize::MAX);
        // A batch whose children were all deleted since opendir must not end the listing early.
        let dots = out.len();
        while out.len() == dots && first < snapshot.len() {
            let wanted: Vec<(usize, Ino)> = snapshot
                .iter()
                .copied()
                .enumerate()
                .skip(first)
                .take(READDIR_BATCH)
                .collect();
            first = first.saturating_add(READDIR_BATCH);
            let records = self
                .meta(move |m| {
                    let mut recs = Vec::with_capacity(wanted.len());
                    for (i, child) in wanted {
                        recs.push((i, m.get(child)?));
                    }
                    Ok(recs)
                })
                .await?;
            for (i, rec) in records {
                // Deleted or moved elsewhere since opendir: skipped, offsets unchanged.
                let Some(rec) = rec.filter(|r| r.parent == ino) else {
                    continue;
                };
                let attr = self.attr_of(&rec);
                out.push(DirEntry {
                    ino: rec.ino,
                    name: rec.name.clone(),
                    kind: attr.kind,
                    next_offset: 2 + i as u64 + 1,
                    attr,
                });
            }
        }
        Ok(out)
    }

    pub(super) fn do_releasedir(&self, fh: Fh) {
        lock(&self.dirs).remove(&fh);
    }
}
