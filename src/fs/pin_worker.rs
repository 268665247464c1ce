//! The pin worker: a background task of the mount that walks every pinned tree (listing
//! folders as needed), pins each file's current content in the cache (giving back the pin of
//! a replaced version) and fetches what is missing. It runs when woken (a new pin, a change
//! event inside a pin, the server back online) and periodically, retrying failures with
//! backoff.

use super::api::{FsError, FsResult};
use super::core::CellsFs;
use super::fetch::Source;
use super::pin::{RootProgress, covered};
use crate::client::Remote;
use crate::meta::InodeRecord;
use crate::names::RemotePath;
use futures::StreamExt;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// A pass re-walks pinned trees at least this often (catches changes without a live feed).
const PERIODIC: Duration = Duration::from_secs(30);
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// After a wake, more wakes are likely (a burst of events): let them gather.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// Files fetched at once (their chunks share the fetcher's read-ahead connections).
const FILES_AT_ONCE: usize = 4;
/// Chunks of one file requested at once.
const CHUNKS_AT_ONCE: usize = 8;

/// How a pass ended, worst first in `Ord` terms last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PassOutcome {
    Clean,
    /// The server is unreachable: wait for it.
    Offline,
    /// Some files failed: retry with backoff.
    Failed,
}

impl<R: Remote> CellsFs<R> {
    /// Starts the worker that keeps pinned content local. It holds the core only while a
    /// pass runs, so it ends with the core.
    pub fn spawn_pins(self: &Arc<Self>) -> JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let wake = self.pins.wake.clone();
        let offline = self.offline.clone();
        tokio::spawn(async move {
            let mut retry = RETRY_MIN;
            let mut first = true;
            loop {
                let outcome = match weak.upgrade() {
                    Some(fs) => fs.pin_pass(first).await,
                    None => return,
                };
                first = false;
                let wait = match outcome {
                    PassOutcome::Failed => {
                        let w = retry;
                        retry = (retry * 2).min(RETRY_MAX);
                        w
                    }
                    PassOutcome::Clean | PassOutcome::Offline => {
                        retry = RETRY_MIN;
                        PERIODIC
                    }
                };
                tokio::select! {
                    _ = wake.notified() => tokio::time::sleep(DEBOUNCE).await,
                    _ = offline.back_online(), if outcome == PassOutcome::Offline => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        })
    }

    async fn pin_pass(&self, first: bool) -> PassOutcome {
        let mut pass = 0;
        self.pins.update(|p| {
            p.started += 1;
            pass = p.started;
        });
        let outcome = match self.pin_pass_inner(first).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!("pin pass failed: {e}");
                PassOutcome::Failed
            }
        };
        self.pins.update(|p| p.completed = pass);
        outcome
    }

    async fn pin_pass_inner(&self, first: bool) -> FsResult<PassOutcome> {
        {
            let _rows = self.pins.rows.lock().await;
            self.release_uncovered(&RemotePath::root()).await?;
            if first {
                self.reconcile_cache_pins().await?;
            }
        }
        let roots = self.meta(|m| m.pin_roots()).await?;
        self.pins
            .update(|p| p.roots.retain(|r, _| roots.contains(r)));
        let mut outcome = PassOutcome::Clean;
        for root in roots {
            if self.pins.covers(&root) {
                outcome = outcome.max(self.pin_root(&root).await);
            }
        }
        Ok(outcome)
    }

    /// After a crash between an index write and a cache pin (or unpin), the cache's counts
    /// may disagree with the rows: make each key's count the number of rows holding it.
    async fn reconcile_cache_pins(&self) -> FsResult<()> {
        let rows = self
            .meta(|m| m.pinned_content_under(&RemotePath::root()))
            .await?;
        let mut wanted: HashMap<String, u32> = HashMap::new();
        for row in rows {
            *wanted.entry(row.key).or_default() += 1;
        }
        self.pins
            .cache_op(move |c| {
                for (key, want) in wanted {
                    let mut have = c.pin_count(&key);
                    while have < want {
                        c.pin(&key)?;
                        have += 1;
                    }
                    while have > want {
                        c.unpin(&key)?;
                        have -= 1;
                    }
                }
                Ok(())
            })
            .await
    }

    fn root_progress(&self, root: &RemotePath, f: impl FnOnce(&mut RootProgress)) {
        self.pins
            .update(|p| f(p.roots.entry(root.clone()).or_default()));
    }

    async fn pin_root(&self, root: &RemotePath) -> PassOutcome {
        self.pins.update(|p| {
            p.roots.insert(root.clone(), RootProgress::default());
        });
        let mut outcome = PassOutcome::Clean;
        let (files, walked) = self.pin_walk(root).await;
        if !walked {
            outcome = self.failure_outcome();
        }
        let mut seen = HashSet::new();
        let mut to_fetch = Vec::new();
        for rec in files {
            seen.insert(rec.path.clone());
            match self.pin_file_row(&rec).await {
                Ok(None) => {}
                Ok(Some(key)) => {
                    self.root_progress(root, |p| {
                        p.files_total += 1;
                        p.bytes_total += rec.size;
                    });
                    to_fetch.push((rec, key));
                }
                Err(reason) => {
                    outcome = outcome.max(PassOutcome::Failed);
                    self.root_progress(root, |p| {
                        p.files_total += 1;
                        p.bytes_total += rec.size;
                        p.errors.push((rec.path.to_string(), reason));
                    });
                }
            }
        }
        if walked && let Err(e) = self.forget_gone(root, &seen).await {
            tracing::warn!("pins under {root}: {e}");
        }
        let mut results = futures::stream::iter(to_fetch)
            .map(|(rec, key)| async move {
                let res = self.pin_fetch(&rec, key).await;
                (rec, res)
            })
            .buffer_unordered(FILES_AT_ONCE);
        while let Some((rec, res)) = results.next().await {
            match res {
                Ok(()) => self.root_progress(root, |p| {
                    p.files_done += 1;
                    p.bytes_done += rec.size;
                }),
                Err(FsError::Offline) => outcome = outcome.max(PassOutcome::Offline),
                Err(e) => {
                    tracing::warn!(path = %rec.path, "pinned file not fetched: {e}");
                    outcome = outcome.max(PassOutcome::Failed);
                    self.root_progress(root, |p| {
                        p.errors.push((rec.path.to_string(), e.to_string()))
                    });
                }
            }
        }
        outcome
    }

    fn failure_outcome(&self) -> PassOutcome {
        if self.is_offline() {
            PassOutcome::Offline
        } else {
            PassOutcome::Failed
        }
    }

    /// Every file at or below `root`; false when part of the tree could not be listed
    /// (what is known is still returned). Errors go to the root's progress.
    async fn pin_walk(&self, root: &RemotePath) -> (Vec<Arc<InodeRecord>>, bool) {
        let mut complete = true;
        let mut files = Vec::new();
        let start = match self.resolve_path(root).await {
            Ok(ino) => self.record(ino).await,
            Err(e) => Err(e),
        };
        let start = match start {
            Ok(rec) => rec,
            Err(FsError::Offline) => return (files, false),
            // Gone from the server: the pin stays (the folder may come back), the content of
            // what was below it is released.
            Err(FsError::NotFound) => {
                let reason = "no longer exists on the server".to_owned();
                self.root_progress(root, |p| p.errors.push((root.to_string(), reason)));
                return (files, true);
            }
            Err(e) => {
                self.root_progress(root, |p| p.errors.push((root.to_string(), e.to_string())));
                return (files, false);
            }
        };
        let mut stack = vec![start];
        while let Some(rec) = stack.pop() {
            if !rec.is_dir() {
                files.push(rec);
                continue;
            }
            if let Err(e) = self.ensure_listed(&rec).await {
                complete = false;
                if e != FsError::Offline {
                    let path = rec.path.to_string();
                    self.root_progress(root, |p| p.errors.push((path, e.to_string())));
                }
                continue;
            }
            let ino = rec.ino;
            let children = self
                .meta(move |m| {
                    let mut out = Vec::new();
                    for child in m.child_inos(ino)? {
                        out.extend(m.get(child)?);
                    }
                    Ok(out)
                })
                .await;
            match children {
                Ok(children) => stack.extend(children),
                Err(e) => {
                    complete = false;
                    let path = rec.path.to_string();
                    self.root_progress(root, |p| p.errors.push((path, e.to_string())));
                }
            }
        }
        (files, complete)
    }

    /// Makes sure the file's current content is the one pinned for its path. `None` for
    /// files with nothing to fetch (local changes not uploaded yet, no content version).
    async fn pin_file_row(&self, rec: &InodeRecord) -> Result<Option<String>, String> {
        let Some(version) = rec.version.as_ref().filter(|_| rec.local.is_none()) else {
            return Ok(None);
        };
        let key = version.cache_key();
        let _rows = self.pins.rows.lock().await;
        if !self.pins.covers(&rec.path) {
            return Ok(None);
        }
        let (path, size) = (rec.path.clone(), rec.size);
        let err = |e: FsError| e.to_string();
        let current = self
            .meta(move |m| m.pinned_content_under(&path))
            .await
            .map_err(err)?
            .into_iter()
            .find(|row| row.path == rec.path);
        if current.as_ref().is_some_and(|row| row.key == key) {
            return Ok(Some(key));
        }
        let (_, committed) = self.meta(|m| m.pinned_totals()).await.map_err(err)?;
        let probe = key.clone();
        let (usage, shared) = self
            .pins
            .cache_op(move |c| Ok((c.usage(), c.pin_count(&probe) > 0)))
            .await
            .map_err(err)?;
        let replaced = current.as_ref().map_or(0, |row| row.size);
        let needed = committed.saturating_sub(replaced).saturating_add(size);
        let room = usage.limit_bytes.saturating_sub(usage.dirty_bytes);
        if !shared && needed > room {
            return Err(format!(
                "not pinned: pinned files would need {needed} bytes but the cache holds \
                 {room} (limit {} minus unsaved changes); raise --cache-size or unpin something",
                usage.limit_bytes
            ));
        }
        let path = rec.path.clone();
        let new_key = key.clone();
        let old = self
            .meta(move |m| m.set_pinned_content(&path, &new_key, size))
            .await
            .map_err(err)?;
        let new_key = key.clone();
        self.pins
            .cache_op(move |c| {
                c.pin(&new_key)?;
                if let Some(old) = old {
                    c.unpin(&old)?;
                }
                Ok(())
            })
            .await
            .map_err(err)?;
        Ok(Some(key))
    }

    /// Rows under `root` whose file the (complete) walk no longer found: gone from the
    /// server, so their content is released.
    async fn forget_gone(&self, root: &RemotePath, seen: &HashSet<RemotePath>) -> FsResult<()> {
        let _rows = self.pins.rows.lock().await;
        let under = root.clone();
        let rows = self.meta(move |m| m.pinned_content_under(&under)).await?;
        let roots = self
            .pins
            .roots
            .read()
            .map(|r| r.clone())
            .unwrap_or_default();
        for row in rows {
            if seen.contains(&row.path) || !covered(&roots, &row.path) {
                continue;
            }
            let path = row.path.clone();
            self.meta(move |m| m.remove_pinned_content(&path)).await?;
            let key = row.key;
            self.pins.cache_op(move |c| c.unpin(&key)).await?;
        }
        Ok(())
    }

    /// Fetches whatever of a pinned file is not in the cache yet.
    async fn pin_fetch(&self, rec: &InodeRecord, key: String) -> FsResult<()> {
        let store = self.fetcher.store();
        let missing = store.missing(&key, rec.size, 0, rec.size).await?;
        if !missing.is_empty() {
            if self.is_offline() {
                return Err(FsError::Offline);
            }
            let src = Source {
                key: key.clone(),
                path: rec.path.clone(),
                size: rec.size,
            };
            let cs = store.chunk_size();
            let chunks: Vec<u64> = missing
                .iter()
                .flat_map(|r| r.start / cs..r.end.div_ceil(cs))
                .collect();
            let mut fetches = futures::stream::iter(chunks)
                .map(|idx| self.fetcher.chunk(&src, idx, true))
                .buffer_unordered(CHUNKS_AT_ONCE);
            while let Some(res) = fetches.next().await {
                res?;
            }
        }
        match store.state(&key).await? {
            cells_cache::EntryState::Complete => Ok(()),
            _ => Err(FsError::NoSpace),
        }
    }
}
