//! The uploader's reports, applied to the index: a finished operation lifts the local-state
//! overlay (and brings the server's description of an uploaded file), conflicts and errors
//! become the `user.cells.state` of the node. A periodic sweep lifts whatever overlay the
//! journal no longer backs (operations that completed without a report).

use super::core::{CellsFs, lock};
use crate::client::{Node, Remote};
use crate::meta::{LocalState, StagedNode, now_ms};
use crate::names::RemotePath;
use crate::sync::SyncHooks;
use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often the overlay is checked against the journal besides the uploader's reports.
const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// How long the tombstone of a path outlives the operation that settled it. The server's
/// events for that operation arrive a little later over the feed; an event applied after the
/// tombstone was lifted would bring the name back: an upload's "created" event arriving after
/// the rename that followed it showed `index.lock` again and broke git.
const SETTLED_GRACE: Duration = Duration::from_secs(3);

/// What one sweep of the overlay looks at (see [`CellsFs::pending_snapshot`]).
pub(super) struct SweepScope {
    /// Paths with queued operations (among `only`, when set).
    pending: HashSet<String>,
    /// When the snapshot was taken (Unix ms): rows changed later are left alone.
    since: i64,
    /// `None`: every overlaid path (the periodic sweep); `Some`: only these.
    only: Option<Vec<String>>,
}

/// One report's work on the index.
type Report = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// [`SyncHooks`] that update a [`CellsFs`]. Holds it weakly: the uploader may outlive it.
/// Reports are applied one after another, in the order the uploader made them: an upload's
/// report applied after the report of the delete that followed it would bring the deleted
/// file back.
pub struct CoreHooks<R: Remote> {
    fs: Weak<CellsFs<R>>,
    reports: tokio::sync::mpsc::UnboundedSender<Report>,
}

impl<R: Remote> CellsFs<R> {
    /// Hooks for the uploader, and a background sweep of the overlay. Needs a Tokio runtime.
    pub fn sync_hooks(self: &Arc<Self>) -> Arc<CoreHooks<R>> {
        let weak = Arc::downgrade(self);
        let sweeper = weak.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            loop {
                tick.tick().await;
                let Some(fs) = sweeper.upgrade() else { return };
                if fs.write_setup.get().is_some() {
                    let snapshot = fs.pending_snapshot(None, false);
                    fs.sweep(snapshot).await;
                }
            }
        });
        let (reports, mut queue) = tokio::sync::mpsc::unbounded_channel::<Report>();
        tokio::spawn(async move {
            while let Some(report) = queue.recv().await {
                report.await;
            }
        });
        Arc::new(CoreHooks { fs: weak, reports })
    }

    /// What a sweep taken now looks at. With `finishing`, the path of an operation being
    /// reported right now (the first queued operation on it is the one that just completed: it
    /// leaves the journal only after the report), only that operation's paths, minus those
    /// other queued operations still hold; with `grace`, they stay counted as pending for
    /// `SETTLED_GRACE`. Without, every path with a queued operation. Must be taken
    /// synchronously inside the report.
    fn pending_snapshot(&self, finishing: Option<&RemotePath>, grace: bool) -> SweepScope {
        let mut scope = SweepScope {
            pending: HashSet::new(),
            since: now_ms(),
            only: None,
        };
        let Some(setup) = self.write_setup.get() else {
            return scope;
        };
        let journal = &setup.journal;
        let Some(finishing) = finishing else {
            journal.for_each_pending(|op| {
                let paths = op.kind.paths().into_iter();
                scope.pending.extend(paths.map(|p| p.as_str().to_owned()));
            });
            return scope;
        };
        // Looking at the finished operation's paths only keeps a report's cost independent of
        // the queue's length: a burst of 1,000 saves made 1,000 reports each scan 1,000 rows.
        let mut finished: Option<(i64, Vec<String>)> = None;
        journal.for_each_pending(|op| {
            let paths = op.kind.paths();
            if finished.is_none() && paths.contains(&finishing) {
                let owned = paths.iter().map(|p| p.as_str().to_owned()).collect();
                finished = Some((op.seq, owned));
            }
        });
        let (seq, only) = finished.unwrap_or((-1, vec![finishing.as_str().to_owned()]));
        journal.for_each_pending(|op| {
            if op.seq != seq {
                let held = op.kind.paths().into_iter().map(|p| p.as_str());
                scope.pending.extend(
                    held.filter(|p| only.iter().any(|o| o == p))
                        .map(str::to_owned),
                );
            }
        });
        if grace && seq >= 0 {
            let now = std::time::Instant::now();
            lock(&self.recently_settled).extend(only.iter().map(|p| (p.clone(), now)));
        }
        scope.only = Some(only);
        scope
    }

    /// Lifts the overlay of paths without queued operations (nor open files).
    pub(super) async fn sweep(&self, scope: SweepScope) {
        let SweepScope {
            mut pending,
            since,
            only,
        } = scope;
        let recent: HashSet<String> = {
            let mut settled = lock(&self.recently_settled);
            settled.retain(|(_, at)| at.elapsed() < SETTLED_GRACE);
            settled.iter().map(|(p, _)| p.clone()).collect()
        };
        let open: Vec<u64> = lock(&self.writes).keys().copied().collect();
        for ino in open {
            if let Ok(rec) = self.record(ino).await {
                pending.insert(rec.path.as_str().to_owned());
            }
        }
        let res = self
            .meta(move |m| {
                let settled = crate::meta::Settled {
                    pending: &|p| pending.contains(p),
                    keep_stone: &|p| recent.contains(p),
                    since_ms: since,
                    only: only.as_deref(),
                };
                m.clear_settled(&settled)
            })
            .await;
        if let Err(e) = res {
            tracing::warn!("could not update the local sync state: {e}");
        }
    }

    async fn on_uploaded(&self, snap: SweepScope, path: RemotePath, node: Option<Node>) {
        self.sweep(snap).await;
        if let Some(node) = node.filter(|n| n.path == path) {
            self.record_node(path, node).await;
        }
    }

    /// Puts the server's description of the file at `path` into the index.
    async fn record_node(&self, path: RemotePath, node: Node) {
        let parent_path = path.parent();
        let staged = StagedNode::from(&node);
        let res = self
            .meta(move |m| match m.by_path(&parent_path)? {
                Some(dir) if dir.is_dir() => m.upsert_child(dir.ino, &staged).map(|r| r.1),
                _ => Ok(Vec::new()),
            })
            .await;
        match res {
            Ok(changes) => self.deliver(changes),
            Err(e) => tracing::warn!("could not record the uploaded {path}: {e}"),
        }
    }

    /// Both sides changed `original`: the server's description of it and of the copy our
    /// version went to (`saved_as`, the same path when our edit re-created a file deleted
    /// there, `None` when our delete was refused) are recorded at once, each marked as a
    /// conflict. Done here rather than left to the next listing because a re-created file
    /// is a new node on the server, which a listing would show without the mark.
    async fn on_conflict(
        &self,
        snap: SweepScope,
        original: RemotePath,
        saved_as: Option<RemotePath>,
    ) {
        self.sweep(snap).await;
        let mut paths = vec![original];
        paths.extend(saved_as.filter(|s| !paths.contains(s)));
        for path in paths {
            match self.remote.stat(&path).await {
                Ok(node) => self.record_node(path.clone(), node).await,
                Err(e) => tracing::debug!("could not read back {path} after a conflict: {e}"),
            }
            self.on_state(path, LocalState::Conflict, None).await;
        }
    }

    async fn on_state(&self, path: RemotePath, state: LocalState, reason: Option<String>) {
        let res = self
            .meta(move |m| {
                let Some(rec) = m.by_path(&path)? else {
                    return Ok(());
                };
                m.set_local_state(rec.ino, Some(state), reason.as_deref())?;
                if state == LocalState::Conflict {
                    // The conflict copy appears, the original shows the server's version.
                    m.mark_stale(rec.parent)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = res {
            tracing::warn!("could not record a sync state: {e}");
        }
    }
}

impl<R: Remote> CoreHooks<R> {
    /// Takes the journal snapshot now (see [`CellsFs::pending_snapshot`]) and queues `f` for
    /// the reports task, so the uploader is never held up by the index.
    fn run<F>(
        &self,
        finishing: Option<&RemotePath>,
        grace: bool,
        f: impl FnOnce(Arc<CellsFs<R>>, SweepScope) -> F + Send + 'static,
    ) where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let Some(fs) = self.fs.upgrade() else { return };
        let snap = fs.pending_snapshot(finishing, grace);
        if self.reports.send(Box::pin(f(fs, snap))).is_err() {
            tracing::debug!("the core is shutting down: an upload report was dropped");
        }
    }
}

impl<R: Remote> SyncHooks for CoreHooks<R> {
    fn uploaded(&self, path: &RemotePath, node: Option<&Node>) {
        let (p, node) = (path.clone(), node.cloned());
        self.run(Some(path), true, move |fs, snap| async move {
            fs.on_uploaded(snap, p, node).await
        });
    }

    fn conflict(&self, original: &RemotePath, saved_as: &RemotePath) {
        let (p, s) = (original.clone(), saved_as.clone());
        // No grace: the conflict's paths are recorded with their mark right now.
        self.run(Some(original), false, move |fs, snap| async move {
            fs.on_conflict(snap, p, Some(s)).await
        });
    }

    fn kept_remote(&self, path: &RemotePath) {
        let p = path.clone();
        self.run(Some(path), false, move |fs, snap| async move {
            fs.on_conflict(snap, p, None).await
        });
    }

    fn error(&self, path: &RemotePath, reason: &str) {
        let (p, reason) = (path.clone(), reason.to_owned());
        self.run(None, false, move |fs, _| async move {
            fs.on_state(p, LocalState::Error, Some(reason)).await
        });
    }
}
