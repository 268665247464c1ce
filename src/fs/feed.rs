//! The change-feed consumer: server events update the index and invalidate kernel caches; a
//! resync (events may have been lost) marks every listing stale. Without a feed, stale
//! listings are simply re-listed on access (polling fallback).

use super::core::{CellsFs, lock};
use super::junk::is_desktop_junk;
use crate::client::{ChangeEvent, ChangeKind, FeedItem, Node, Remote};
use crate::meta::StagedNode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

impl<R: Remote> CellsFs<R> {
    /// Consumes the feed until the sender closes. While it runs, listings are trusted for
    /// `dir_ttl_live_feed` instead of `dir_ttl`.
    pub fn spawn_feed(self: &Arc<Self>, mut rx: mpsc::Receiver<FeedItem>) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            this.feed_live.store(true, Ordering::Release);
            while let Some(item) = rx.recv().await {
                if let Err(e) = this.apply_feed_item(item).await {
                    tracing::warn!("change event not applied: {e}");
                }
            }
            this.feed_live.store(false, Ordering::Release);
        })
    }

    /// Applies one feed item to the index and the kernel's caches.
    pub async fn apply_feed_item(&self, item: FeedItem) -> super::FsResult<()> {
        let pinned = self.pin_touched(&item);
        let res = match item {
            FeedItem::Resync => {
                self.meta.mark_all_stale();
                Ok(())
            }
            FeedItem::Event(ev) => self.apply_event(ev).await,
        };
        if pinned {
            // After the index has the change, so the pin worker sees it.
            self.pins.wake.notify_one();
        }
        res
    }

    /// A listing in flight may have fetched a removed child before the removal, and would
    /// bring it back: its folder is listed again once it commits (see `list_folder`).
    fn relist_if_listing(&self, changes: &[crate::meta::MetaChange]) {
        let listings = lock(&self.listings);
        let mut relist = lock(&self.relist);
        for change in changes {
            if let crate::meta::MetaChange::EntryGone { parent, .. } = change
                && listings.contains_key(parent)
            {
                relist.insert(*parent);
            }
        }
    }

    /// True for nodes below the mount root (events about other workspaces are ignored).
    fn inside(&self, node: &Node) -> bool {
        node.path != self.root_path && node.path.starts_with(&self.root_path)
    }

    async fn apply_event(&self, ev: ChangeEvent) -> super::FsResult<()> {
        let ChangeEvent {
            kind,
            source,
            target,
        } = ev;
        let target = target.filter(|t| self.inside(t) && !is_desktop_junk(t.name()));
        let source = source.filter(|s| self.inside(s));
        if let (ChangeKind::UpdatePath, Some(s), Some(t)) = (&kind, &source, &target)
            && self.follow_remote_move(s, t).await?
        {
            return Ok(());
        }
        let gone = match (&kind, &source, &target) {
            (ChangeKind::Delete, Some(s), _) => Some(s.clone()),
            (ChangeKind::Delete, None, Some(t)) => Some(t.clone()),
            // Moved out of the mounted tree.
            (_, Some(s), None) => Some(s.clone()),
            _ => None,
        };
        if let Some(node) = gone {
            let path = node.path.clone();
            let changes = self
                .meta(move |m| match m.by_path(&path)? {
                    Some(rec) => m.remove(rec.ino),
                    None => Ok(Vec::new()),
                })
                .await?;
            self.relist_if_listing(&changes);
            self.deliver(changes);
            return Ok(());
        }
        let Some(target) = target else { return Ok(()) };
        let parent_path = target.path.parent();
        let staged = StagedNode::from(&target);
        let changes = self
            .meta(move |m| match m.by_path(&parent_path)? {
                // Parents never seen are not tracked: their first listing will show it.
                Some(parent) if parent.is_dir() => m.upsert_child(parent.ino, &staged).map(|r| r.1),
                _ => Ok(Vec::new()),
            })
            .await?;
        self.deliver(changes);
        Ok(())
    }
}
