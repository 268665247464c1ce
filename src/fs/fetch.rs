//! Fetching chunks from the server into the cache: one in-flight request per chunk, shared by
//! every reader that needs it, bounded in parallelism, and never attempted while offline.
//!
//! Read-ahead asks for runs of up to `span` chunks in one request (fewer round trips, one
//! index transaction per run); a reader waiting on any chunk of a run joins it.

use super::api::{FsError, FsResult};
use super::content::{ContentStore, Stored};
use super::errors::from_client_error;
use super::just_fetched::JustFetched;
use super::offline::{OfflineState, went_offline};
use crate::client::{Pieces, Remote};
use crate::names::RemotePath;
use bytes::Bytes;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, oneshot};

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
    /// Whole-content checks of just-completed entries still running (for [`Self::idle`]).
    checking: Arc<AtomicUsize>,
    /// Most chunks asked for in one read-ahead request; runs are aligned on this many chunks.
    span: u64,
    /// Chunks just fetched, until read (see [`Self::just_fetched`]).
    recent: Arc<JustFetched>,
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
            checking: Arc::default(),
            span: 1,
            recent: Arc::new(JustFetched::new(0)),
        }
    }

    /// Fetched chunks stay in memory, up to `bytes` in all, until a reader has read them.
    pub fn with_memory(mut self, bytes: usize) -> Self {
        self.recent = Arc::new(JustFetched::new(bytes));
        self
    }

    /// Chunks fetched lately and not yet read through, as the network delivered them.
    pub fn just_fetched(&self) -> &JustFetched {
        &self.recent
    }

    /// Read-ahead requests cover up to `bytes` (rounded down to whole chunks, at least one).
    pub fn with_request_size(mut self, bytes: u64) -> Self {
        self.span = (bytes / self.store.chunk_size()).max(1);
        self
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
        let mut map = lock(&self.inflight);
        if let Some(f) = map.get(&(src.key.clone(), idx)) {
            return f.clone();
        }
        self.start_run(&mut map, src, idx..idx + 1, background);
        map.get(&(src.key.clone(), idx))
            .cloned()
            .unwrap_or_else(|| futures::future::ready(Ok(Bytes::new())).boxed().shared())
    }

    /// Starts one request for chunks `run` (none of them in flight; `map` is the locked
    /// in-flight map) and registers a shared fetch for each of its chunks.
    fn start_run(
        self: &Arc<Self>,
        map: &mut HashMap<(String, u64), ChunkFetch>,
        src: &Source,
        run: std::ops::Range<u64>,
        background: bool,
    ) {
        let cs = self.store.chunk_size();
        let start = run.start.saturating_mul(cs);
        let end = run.end.saturating_mul(cs).min(src.size);
        if start >= end {
            return;
        }
        let (tx, rx) = oneshot::channel::<FsResult<Pieces>>();
        let whole = rx
            .map(|r| r.unwrap_or_else(|_| Err(FsError::Io("fetch task ended".into()))))
            .boxed()
            .shared();
        for idx in run.clone() {
            let lo = usize::try_from((idx * cs).saturating_sub(start)).unwrap_or(usize::MAX);
            let hi = usize::try_from(((idx + 1) * cs).min(end) - start).unwrap_or(usize::MAX);
            let piece = whole
                .clone()
                .map(move |r| {
                    let b = r?;
                    match lo <= hi && hi <= b.len() {
                        true => Ok(b.slice(lo..hi)),
                        false => Err(FsError::Io("short range from the server".into())),
                    }
                })
                .boxed()
                .shared();
            map.insert((src.key.clone(), idx), piece);
        }
        let this = self.clone();
        let src = src.clone();
        tokio::spawn(async move {
            let fetched = this.fetch(&src, start..end, background).await;
            if let Ok(bytes) = &fetched {
                for idx in run.clone() {
                    let lo =
                        usize::try_from((idx * cs).saturating_sub(start)).unwrap_or(usize::MAX);
                    let hi = lo.saturating_add(usize::try_from(cs).unwrap_or(usize::MAX));
                    this.recent.put(&src.key, idx, bytes.sub(lo..hi));
                }
            }
            // Readers get the bytes once stored, so that whatever a reader has seen is in the
            // cache (its state xattr says so). Removed from the map in the same step, under
            // its lock: a reader arriving meanwhile either joins or finds the chunks stored.
            let mut map = lock(&this.inflight);
            let _ = tx.send(fetched);
            for idx in run {
                map.remove(&(src.key.clone(), idx));
            }
        });
    }

    /// Bytes `range` of `src`: what the cache lacks comes from the server and is stored.
    async fn fetch(
        &self,
        src: &Source,
        range: std::ops::Range<u64>,
        background: bool,
    ) -> FsResult<Pieces> {
        let len = range.end - range.start;
        // Some of these chunks may have been stored between the caller's check and now.
        let missing = self
            .store
            .missing(&src.key, src.size, range.start, len)
            .await?;
        let wanted = match (missing.first(), missing.last()) {
            (Some(first), Some(last)) => first.start.max(range.start)..last.end.min(range.end),
            _ => range.start..range.start,
        };
        if wanted.is_empty()
            && let Some(b) = self.store.read(&src.key, range.start, len).await?
            && b.len() as u64 == len
        {
            return Ok(b.into());
        }
        if !wanted.is_empty() && wanted != range {
            let part = self.download(src, wanted.clone(), background).await?;
            self.keep(src, wanted.start, part).await;
            if let Some(b) = self.store.read(&src.key, range.start, len).await?
                && b.len() as u64 == len
            {
                return Ok(b.into());
            }
        }
        // All of it from the server (also when the cache refused or lost part of it).
        let bytes = self.download(src, range.clone(), background).await?;
        self.keep(src, range.start, bytes.clone()).await;
        Ok(bytes)
    }

    /// Stores fetched bytes. When they complete the entry, its whole-content check (a hash of
    /// the whole file) runs in the background: readers waiting on these bytes, and readers of
    /// the rest of the entry, are served meanwhile from chunks checked one by one.
    async fn keep(&self, src: &Source, at: u64, bytes: Pieces) {
        if self.store.write(&src.key, src.size, at, bytes).await != Stored::Completed {
            return;
        }
        let (store, key, checking) = (self.store.clone(), src.key.clone(), self.checking.clone());
        let recent = self.recent.clone();
        checking.fetch_add(1, Ordering::AcqRel);
        tokio::spawn(async move {
            if let Err(e) = store.check_content(&key).await {
                tracing::warn!("cached content of {key} dropped: {e}");
                recent.forget(&key);
            }
            checking.fetch_sub(1, Ordering::AcqRel);
        });
    }

    /// One range request, within the parallelism bounds; refused while offline.
    async fn download(
        &self,
        src: &Source,
        range: std::ops::Range<u64>,
        background: bool,
    ) -> FsResult<Pieces> {
        let len = range.end - range.start;
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
            self.offline.nudge();
            return Err(FsError::Offline);
        }
        let bytes = match self.remote.read_range(&src.path, range).await {
            Ok(b) => b,
            Err(e) => {
                self.note_error(&e);
                return Err(from_client_error(e));
            }
        };
        if bytes.len() as u64 != len {
            // The file changed size under us: never cache bytes of an unknown version.
            return Err(FsError::Io(format!(
                "file changed on the server while reading ({} bytes where {len} were expected)",
                bytes.len(),
            )));
        }
        Ok(bytes)
    }

    /// Reads bytes of a file without caching (no content version yet: upload in progress).
    pub async fn read_uncached(&self, path: &RemotePath, offset: u64, len: u64) -> FsResult<Bytes> {
        if self.is_offline() {
            self.offline.nudge();
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
            .map(Pieces::into_bytes)
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
        let missing = match self
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
        let cs = self.store.chunk_size();
        let mut map = lock(&self.inflight);
        for r in missing {
            let chunks = r.start / cs..r.end.div_ceil(cs);
            for run in runs(chunks, self.span, |idx| {
                map.contains_key(&(src.key.clone(), idx))
            }) {
                self.start_run(&mut map, src, run, true);
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

    /// Waits until no fetch is in flight and everything fetched is stored (tests, unmount).
    pub async fn idle(&self) {
        loop {
            let pending: Vec<ChunkFetch> = lock(&self.inflight).values().cloned().collect();
            if pending.is_empty()
                && self.planning.load(Ordering::Acquire) == 0
                && self.checking.load(Ordering::Acquire) == 0
            {
                return;
            }
            for f in pending {
                let _ = f.await;
            }
            // A planner is between its cache query and starting fetches, fetched bytes are
            // being stored, or a completed entry is being checked: poll briefly.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Splits `chunks` into runs of chunks for which `busy` is false, each at most `span` long
/// and never crossing a multiple of `span` (aligned requests).
fn runs(
    chunks: std::ops::Range<u64>,
    span: u64,
    mut busy: impl FnMut(u64) -> bool,
) -> Vec<std::ops::Range<u64>> {
    let span = span.max(1);
    let mut out = Vec::new();
    let mut current: Option<std::ops::Range<u64>> = None;
    for idx in chunks {
        if busy(idx) {
            out.extend(current.take());
            continue;
        }
        match &mut current {
            Some(r) if idx % span != 0 => r.end = idx + 1,
            _ => {
                out.extend(current.take());
                current = Some(idx..idx + 1);
            }
        }
    }
    out.extend(current);
    out
}

#[cfg(test)]
mod tests {
    use super::runs;

    #[test]
    fn runs_are_aligned_bounded_and_skip_busy_chunks() {
        assert_eq!(runs(0..10, 4, |_| false), vec![0..4, 4..8, 8..10]);
        assert_eq!(runs(2..10, 4, |_| false), vec![2..4, 4..8, 8..10]);
        assert_eq!(
            runs(0..8, 4, |i| i == 1 || i == 5),
            vec![0..1, 2..4, 4..5, 6..8]
        );
        assert_eq!(runs(0..3, 1, |_| false), vec![0..1, 1..2, 2..3]);
        assert!(runs(0..3, 4, |_| true).is_empty());
    }
}
