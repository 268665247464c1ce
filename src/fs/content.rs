//! The core's view of the content cache: every `cells_cache::Cache` call, moved off the async
//! executor with `spawn_blocking`, with errors translated. The one place that knows the
//! cache's API.

use super::api::{FsError, FsResult};
use super::errors::{from_cache_error, from_join_error};
use crate::client::Pieces;
use bytes::Bytes;
use cells_cache::{Cache, CacheError, EntryState, HoldGuard, Usage};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

/// Whether offered bytes were kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Yes,
    /// Kept, and the entry is now complete: its whole content is still to be checked against
    /// the key (`check_content`), which the caller may do after handing the bytes on.
    Completed,
    /// The cache is full of pinned, open or dirty data; the bytes are served but not kept.
    Refused,
}

#[derive(Clone)]
pub struct ContentStore {
    cache: Arc<Cache>,
    chunk_size: u64,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CacheError> + Send + 'static,
) -> FsResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(from_join_error)?
        .map_err(from_cache_error)
}

impl ContentStore {
    /// Fetches are made of whole chunks of the cache's size, so that the cache records
    /// what they bring.
    pub fn new(cache: Arc<Cache>) -> Self {
        let chunk_size = cache.chunk_size().max(1);
        Self { cache, chunk_size }
    }

    /// Keeps `key` from being evicted while a file using it is open.
    pub fn hold(&self, key: &str) -> HoldGuard {
        self.cache.hold(key)
    }

    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    /// Chunk-aligned ranges of `[offset, offset+len)` not in the cache (all of it when the
    /// entry does not exist yet; the entry is declared on the way).
    pub async fn missing(
        &self,
        key: &str,
        size: u64,
        offset: u64,
        len: u64,
    ) -> FsResult<Vec<Range<u64>>> {
        let (cache, key) = (self.cache.clone(), key.to_owned());
        blocking(move || match cache.missing_ranges(&key, offset, len) {
            Err(CacheError::UnknownEntry(_)) => {
                cache.ensure_entry(&key, size)?;
                cache.missing_ranges(&key, offset, len)
            }
            other => other,
        })
        .await
    }

    /// Cached bytes, or `None` when any part is missing or failed verification (a corrupt
    /// chunk is dropped by the cache and simply fetched again).
    pub async fn read(&self, key: &str, offset: u64, len: u64) -> FsResult<Option<Bytes>> {
        let (cache, key) = (self.cache.clone(), key.to_owned());
        let len = usize::try_from(len).map_err(|_| FsError::Invalid("read too large".into()))?;
        blocking(move || match cache.read(&key, offset, len) {
            Err(CacheError::UnknownEntry(_)) | Err(CacheError::Corrupt(_)) => Ok(None),
            other => other.map(|o| o.map(Bytes::from)),
        })
        .await
    }

    /// Stores fetched bytes. Only a refusal for lack of space is reported; any other failure
    /// is logged, since the bytes are served from memory either way.
    pub async fn write(&self, key: &str, size: u64, offset: u64, data: Pieces) -> Stored {
        let (cache, key) = (self.cache.clone(), key.to_owned());
        let res = blocking(move || {
            let attempt = |c: &Cache| c.write_range_deferred(&key, offset, &data.slices());
            match attempt(&cache) {
                Err(CacheError::UnknownEntry(_)) => {
                    cache.ensure_entry(&key, size)?;
                    attempt(&cache)
                }
                other => other,
            }
        })
        .await;
        match res {
            Ok(false) => Stored::Yes,
            Ok(true) => Stored::Completed,
            Err(FsError::NoSpace) => Stored::Refused,
            Err(e) => {
                tracing::warn!("could not store fetched bytes in the cache: {e}");
                Stored::Refused
            }
        }
    }

    /// The whole-content check of a complete entry (see [`Stored::Completed`]): content that
    /// does not match its key is dropped, and later reads fetch it again.
    /// It runs on a thread of its own at the lowest CPU priority: it hashes the whole file and
    /// must not slow the reads still going on (on a small machine, a cold read's last part
    /// competed with it). Its own thread, because a thread cannot always raise its priority
    /// back, and a pooled one would stay slow for the reads it serves next.
    pub async fn check_content(&self, key: &str) -> FsResult<()> {
        let (cache, key) = (self.cache.clone(), key.to_owned());
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("cache-check".into())
            .spawn(move || {
                lower_thread_priority();
                let _ = tx.send(cache.check_content(&key));
            })
            .map_err(|e| FsError::Io(format!("cannot start a cache check: {e}")))?;
        rx.await
            .map_err(|_| FsError::Io("cache check ended early".into()))?
            .map_err(from_cache_error)
    }

    /// One blocking step for a read: the cached bytes of `[offset, offset+len)` when every
    /// chunk is present and passes its check, else the chunk-aligned ranges that are missing
    /// (declaring the entry if needed). Presence is asked first, then the bytes, as in two
    /// separate calls, but without a second hop to a blocking thread.
    pub async fn read_or_missing(
        &self,
        key: &str,
        size: u64,
        offset: u64,
        len: u64,
    ) -> FsResult<Result<Bytes, Vec<Range<u64>>>> {
        let (cache, key) = (self.cache.clone(), key.to_owned());
        let want = usize::try_from(len).map_err(|_| FsError::Invalid("read too large".into()))?;
        blocking(move || {
            let missing = match cache.missing_ranges(&key, offset, len) {
                Err(CacheError::UnknownEntry(_)) => {
                    cache.ensure_entry(&key, size)?;
                    cache.missing_ranges(&key, offset, len)?
                }
                other => other?,
            };
            if !missing.is_empty() {
                return Ok(Err(missing));
            }
            match cache.read(&key, offset, want) {
                Ok(Some(b)) if b.len() == want => Ok(Ok(Bytes::from(b))),
                // Dropped as corrupt, evicted or cut short since: what is missing now (the
                // caller reads or fetches chunk by chunk whatever this does not cover).
                Ok(_) | Err(CacheError::UnknownEntry(_)) | Err(CacheError::Corrupt(_)) => {
                    Ok(Err(cache
                        .missing_ranges(&key, offset, len)
                        .unwrap_or_default()))
                }
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Fills `out` with the cached bytes at `offset` on the calling thread when every chunk is
    /// present and already checked (true). False on a miss or an error, `out` then undefined:
    /// the caller takes the slower way, which reports errors.
    pub fn read_now(&self, key: &str, offset: u64, out: &mut [u8]) -> bool {
        matches!(self.cache.read_checked(key, offset, out), Ok(true))
    }

    pub async fn state(&self, key: &str) -> FsResult<EntryState> {
        let (cache, key) = (self.cache.clone(), key.to_owned());
        blocking(move || cache.state(&key)).await
    }

    /// The verified local file holding all of `key`, if complete.
    pub async fn complete_path(&self, key: &str) -> FsResult<Option<PathBuf>> {
        let (cache, key) = (self.cache.clone(), key.to_owned());
        blocking(move || cache.complete_path(&key)).await
    }

    pub async fn usage(&self) -> FsResult<Usage> {
        let cache = self.cache.clone();
        blocking(move || Ok(cache.usage())).await
    }
}

/// Gives the calling thread the lowest CPU priority (Linux, where a thread has its own nice
/// value; elsewhere nothing). For threads that end after their one background job.
pub(super) fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: a plain syscall on the calling thread's id; no memory is passed. Failure leaves
    // the priority as it was, which is only slower for others.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
    }
}
