//! Fetching chunks from the server into the cache: one in-flight request per chunk, shared by
//! every reader that needs it, bounded in parallelism, and never attempted while offline.

use super::api::{FsError, FsResult};
use super::content::ContentStore;
use super::errors::from_client_error;
use super::offline::{OfflineState, went_offline};
use crate::client::Remote;
use crate::names::RemotePath;
use bytes::Bytes;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// A chunk fetch that any number of readers can await.
pub type ChunkFetch = Shared<BoxFuture<'static, FsResult<Bytes>>>;

/// Which file a chunk belongs to.
#[derive(Debug, Clone)]
pub struct Source {
    pub key: String,
    pub path: RemotePath,
    pub size: u64,
}

type InFlight = Arc<Mutex<HashMap<(String, u64), ChunkFetch>>>;

pub struct Fetcher<R: Remote> {
    remote: Arc<R>,
    store: ContentStore,
    offline: Arc<OfflineState>,
    inflight: InFlight,
    /// Reads a caller is waiting for.
    demand: Arc<Semaphore>,
    /// Read-ahead: never starves demand reads of connections.
    ahead: Arc<Semaphore>,
    probe_path: RemotePath,
    probe: (Duration, Duration),
    /// Read-ahead planners still deciding what to fetch (for [`Self::idle`]).
    planning: Arc<AtomicUsize>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<R: Remote> Fetcher<R> {
    pub fn new(
        remote: Arc<R>,
        store: ContentStore,
        offline: Arc<OfflineState>,
        parallelism: usize,
        probe_path: RemotePath,
        probe: (Duration, Duration),
    ) -> Self {
        let parallelism = parallelism.max(1);
        Self {
            remote,
            store,
            offline,
            inflight: Arc::default(),
            demand: Arc::new(Semaphore::new(parallelism)),
            ahead: Arc::new(Semaphore::new(parallelism)),
            probe_path,
            probe,
            planning: Arc::default(),
        }
    }

    pub fn store(&self) -> &ContentStore {
        &self.store
    }

    /// Records an error from the server; `Offline` switches the whole core offline.
    pub fn note_error(&self, e: &crate::client::ClientError) {
        if e.is_offline() {
            went_offline(
                &self.offline,
                &self.remote,
                self.probe_path.clone(),
                self.probe.0,
                self.probe.1,
            );
        }
    }

    pub fn is_offline(&self) -> bool {
        self.offline.is_offline()
    }

    /// The fetch of chunk `idx` of `src`: joins the one in flight or starts it. The request
    /// runs in its own task, so a reader giving up does not cancel it for the others.
    pub fn chunk(self: &Arc<Self>, src: &Source, idx: u64, background: bool) -> ChunkFetch {
        let id = (src.key.clone(), idx);
        let mut map = lock(&self.inflight);
        if let Some(f) = map.get(&id) {
            return f.clone();
        }
        let this = self.clone();
        let src = src.clone();
        let task_id = id.clone();
        let task = tokio::spawn(async move {
            let res = this.fetch_and_store(&src, idx, background).await;
            // Removed only after completion; late joiners still hold the shared result.
            lock(&this.inflight).remove(&task_id);
            res
        });
        let fut = async move {
            match task.await {
                Ok(r) => r,
                Err(e) => Err(FsError::Io(format!("fetch task failed: {e}"))),
            }
        }
        .boxed()
        .shared();
        map.insert(id, fut.clone());
        fut
    }

    async fn fetch_and_store(&self, src: &Source, idx: u64, background: bool) -> FsResult<Bytes> {
        let cs = self.store.chunk_size();
        let start = idx.saturating_mul(cs);
        let end = start.saturating_add(cs).min(src.size);
        if start >= end {
            return Ok(Bytes::new());
        }
        // A fetch of this chunk may have finished between the caller's cache check and now.
        let len = end - start;
        if self
            .store
            .missing(&src.key, src.size, start, len)
            .await?
            .is_empty()
            && let Some(b) = self.store.read(&src.key, start, len).await?
            && b.len() as u64 == len
        {
            return Ok(b);
        }
        let sem = if background {
            &self.ahead
        } else {
            &self.demand
        };
        let _permit = sem
            .acquire()
            .await
            .map_err(|_| FsError::Io("fetcher shut down".into()))?;
        if self.is_offline() {
            return Err(FsError::Offline);
        }
        let bytes = match self.remote.read_range(&src.path, start..end).await {
            Ok(b) => b,
            Err(e) => {
                self.note_error(&e);
                return Err(from_client_error(e));
            }
        };
        if bytes.len() as u64 != end - start {
            // The file changed size under us: never cache bytes of an unknown version.
            return Err(FsError::Io(format!(
                "file changed on the server while reading ({} bytes where {} were expected)",
                bytes.len(),
                end - start
            )));
        }
        self.store
            .write(&src.key, src.size, start, bytes.clone())
            .await;
        Ok(bytes)
    }

    /// Reads bytes of a file without caching (no content version yet: upload in progress).
    pub async fn read_uncached(&self, path: &RemotePath, offset: u64, len: u64) -> FsResult<Bytes> {
        if self.is_offline() {
            return Err(FsError::Offline);
        }
        let _permit = self
            .demand
            .acquire()
            .await
            .map_err(|_| FsError::Io("fetcher shut down".into()))?;
        self.remote
            .read_range(path, offset..offset.saturating_add(len))
            .await
            .map_err(|e| {
                self.note_error(&e);
                from_client_error(e)
            })
    }

    /// Starts background fetches of the chunks of `range` not in the cache yet.
    pub fn prefetch(self: &Arc<Self>, src: Source, range: std::ops::Range<u64>) {
        if self.is_offline() || range.is_empty() {
            return;
        }
        let this = self.clone();
        self.planning.fetch_add(1, Ordering::AcqRel);
        tokio::spawn(async move {
            this.plan_prefetch(&src, range).await;
            this.planning.fetch_sub(1, Ordering::AcqRel);
        });
    }

    async fn plan_prefetch(self: &Arc<Self>, src: &Source, range: std::ops::Range<u64>) {
        let this = self;
        {
            let missing = match this
                .store
                .missing(&src.key, src.size, range.start, range.end - range.start)
                .await
            {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!("read-ahead skipped: {e}");
                    return;
                }
            };
            let cs = this.store.chunk_size();
            for r in missing {
                for idx in r.start / cs..r.end.div_ceil(cs) {
                    drop(this.chunk(src, idx, true));
                }
            }
        }
    }

    /// How many parties hold the in-flight fetch of chunk `idx` of `key` (the map counts one).
    #[cfg(test)]
    pub fn sharers(&self, key: &str, idx: u64) -> usize {
        lock(&self.inflight)
            .get(&(key.to_owned(), idx))
            .and_then(|f| f.strong_count())
            .unwrap_or(0)
    }

    /// Waits until no fetch is in flight (tests, unmount).
    pub async fn idle(&self) {
        loop {
            let pending: Vec<ChunkFetch> = lock(&self.inflight).values().cloned().collect();
            if pending.is_empty() {
                if self.planning.load(Ordering::Acquire) == 0 {
                    return;
                }
                // A planner is between its cache query and starting fetches: poll briefly.
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
            for f in pending {
                let _ = f.await;
            }
        }
    }
}
