//! Open files and reads: served from the cache, missing chunks fetched (shared with other
//! readers), read-ahead planned per handle, and uncached reads for files still uploading.

use super::api::*;
use super::core::{CellsFs, OpenFile, lock};
use super::fetch::{ChunkFetch, Source};
use super::readahead::ReadAhead;
use crate::client::{Pieces, Remote};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Access-mode bits of open(2) flags; 0 = read-only on every platform we serve.
const ACCESS_MODE: i32 = 0o3;

impl<R: Remote> CellsFs<R> {
    pub(super) async fn do_open(&self, ino: Ino, flags: i32) -> FsResult<OpenReply> {
        let rec = self.fresh_record(ino).await?;
        if rec.is_dir() {
            return Err(FsError::IsDir);
        }
        let writing = flags & ACCESS_MODE != 0;
        if writing && self.write_setup.get().is_none() {
            return Err(FsError::ReadOnly);
        }
        if writing && rec.read_only {
            return Err(FsError::Denied("the server allows reading only".into()));
        }
        // Handles of an inode being written (or a local-only junk file) share its staging
        // state, so that every reader sees the local content.
        let shared = (!writing)
            .then(|| {
                let map = lock(&self.writes);
                let w = map.get(&ino).cloned();
                if let Some(w) = &w {
                    w.handles.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                }
                w
            })
            .flatten();
        let write = match shared {
            Some(w) => Some(w),
            None if writing || rec.local == Some(crate::meta::LocalState::Junk) => {
                let truncate = writing && flags & libc::O_TRUNC != 0;
                Some(self.attach_write(&rec, truncate).await?)
            }
            None => None,
        };
        if write.is_some() {
            return Ok(self.register_local_handle(ino, &rec, write));
        }
        let key = rec.version.as_ref().map(|v| v.cache_key());
        let store = self.fetcher.store();
        let (passthrough, hold) = match &key {
            Some(k) => {
                let path = store.complete_path(k).await.unwrap_or_else(|e| {
                    tracing::debug!("no passthrough: {e}");
                    None
                });
                (path, Some(store.hold(k)))
            }
            None => (None, None),
        };
        let keep_cache = {
            let mut seen = lock(&self.kernel_keys);
            let previous = seen.insert(ino, key.clone());
            key.is_some() && previous == Some(key.clone())
        };
        let source = key.map(|key| Source {
            key,
            path: rec.path.clone(),
            size: rec.size,
        });
        let file = OpenFile {
            ino,
            path: rec.path.clone(),
            size: rec.size,
            // Only bytes without a version bypass the page cache. A file not yet cached is
            // read through it too: with direct I/O, `dd bs=1M` read a cold GiB ~15% faster,
            // but `sha256sum` and `dd bs=16k` took 1.8x as long, since every small read of
            // theirs became a round trip to us instead of a hit in the kernel's read-ahead.
            direct_io: source.is_none(),
            source,
            readahead: Mutex::new(ReadAhead::new(
                self.cfg.readahead_min,
                self.cfg.readahead_max,
                store.chunk_size(),
            )),
            _hold: hold,
            write: None,
        };
        let direct_io = file.direct_io;
        let fh = self.next_handle();
        lock(&self.files).insert(fh, Arc::new(file));
        Ok(OpenReply {
            fh,
            keep_cache,
            direct_io,
            passthrough,
        })
    }

    pub(super) async fn do_read(
        &self,
        ino: Ino,
        fh: Fh,
        offset: u64,
        size: u32,
    ) -> FsResult<Bytes> {
        let file = lock(&self.files)
            .get(&fh)
            .cloned()
            .ok_or(FsError::BadHandle)?;
        if file.ino != ino {
            return Err(FsError::BadHandle);
        }
        if let Some(w) = &file.write {
            return self.read_from(w, offset, size).await;
        }
        let Some(src) = &file.source else {
            // No content version: the bytes may still change, so none of them are kept.
            return self
                .fetcher
                .read_uncached(&file.path, offset, u64::from(size))
                .await;
        };
        if offset >= file.size || size == 0 {
            return Ok(Bytes::new());
        }
        let len = u64::from(size).min(file.size - offset);
        let ahead = lock(&file.readahead).on_read(offset, len, file.size);
        if let Some(range) = ahead {
            self.fetcher.prefetch(src.clone(), range);
        }
        self.read_cached_pub(src, offset, len).await
    }

    /// [`Self::do_read`] of a versioned file whose bytes are at hand: a chunk just fetched and
    /// still in memory, or chunks all in the cache and checked. `None` (nothing done)
    /// otherwise, and for handles served from local write state.
    pub(super) fn do_read_now(
        &self,
        ino: Ino,
        fh: Fh,
        offset: u64,
        size: u32,
        buf: &mut Vec<u8>,
    ) -> Option<FsResult<ReadNow>> {
        let file = lock(&self.files).get(&fh).cloned()?;
        if file.ino != ino || file.write.is_some() {
            return None;
        }
        let src = file.source.as_ref()?;
        if offset >= file.size || size == 0 {
            return Some(Ok(ReadNow::InBuffer(0)));
        }
        // At most `size` (a u32), so it fits.
        let len = u64::from(size).min(file.size - offset) as usize;
        let answer = match self.read_in_memory(src, offset, len, buf) {
            Some(answer) => answer,
            None => {
                if buf.len() < len {
                    // Grown once per thread and reused: no fresh, zeroed buffer per read.
                    buf.resize(len, 0);
                }
                let store = self.fetcher.store();
                if !store.read_now(&src.key, offset, &mut buf[..len]) {
                    return None;
                }
                ReadNow::InBuffer(len)
            }
        };
        let ahead = lock(&file.readahead).on_read(offset, len as u64, file.size);
        if let Some(range) = ahead {
            self.fetcher.prefetch(src.clone(), range);
        }
        Some(Ok(answer))
    }

    /// Bytes `[offset, offset+len)` from a chunk just fetched, if held and the read lies
    /// within it: shared when they lie within one piece the network delivered, else copied
    /// into `buf`.
    fn read_in_memory(
        &self,
        src: &Source,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
    ) -> Option<ReadNow> {
        let cs = self.fetcher.store().chunk_size();
        let idx = offset / cs;
        let chunk_end = (idx + 1).saturating_mul(cs).min(src.size);
        let end = offset + len as u64;
        if end > chunk_end {
            return None;
        }
        let chunk = self
            .fetcher
            .just_fetched()
            .get(&src.key, idx, end == chunk_end)?;
        let from = (offset - idx * cs) as usize;
        if let Some(shared) = chunk.within_one(from..from + len) {
            return Some(ReadNow::Shared(shared));
        }
        if buf.len() < len {
            buf.resize(len, 0);
        }
        (chunk.copy_to(from, &mut buf[..len]) == len).then_some(ReadNow::InBuffer(len))
    }

    /// Bytes `[offset, offset+len)` of a versioned file (`len` > 0, within the file).
    pub(super) async fn read_cached_pub(
        &self,
        src: &Source,
        offset: u64,
        len: u64,
    ) -> FsResult<Bytes> {
        let store = self.fetcher.store();
        let missing = match store
            .read_or_missing(&src.key, src.size, offset, len)
            .await?
        {
            Ok(hit) => return Ok(hit),
            Err(missing) => missing,
        };
        let cs = store.chunk_size();
        let (first, last) = (offset / cs, (offset + len - 1) / cs);
        if self.is_offline() && !missing.is_empty() {
            self.offline.nudge();
            return Err(FsError::Offline);
        }
        // Start every missing chunk at once; they run in parallel (bounded by the fetcher).
        let mut fetches: HashMap<u64, ChunkFetch> = HashMap::new();
        for r in &missing {
            for idx in (r.start / cs).max(first)..r.end.div_ceil(cs).min(last + 1) {
                fetches.insert(idx, self.fetcher.chunk(src, idx, false));
            }
        }
        let mut out = Vec::with_capacity((last - first + 1) as usize);
        for idx in first..=last {
            let chunk_start = idx * cs;
            let from = offset.max(chunk_start);
            let to = (offset + len).min(chunk_start + cs);
            let cached = match fetches.contains_key(&idx) {
                true => None,
                false => store.read(&src.key, from, to - from).await?,
            };
            let piece = match cached {
                Some(b) if b.len() as u64 == to - from => b,
                // Missing, evicted since, or dropped as corrupt: fetch it again.
                _ => {
                    if self.is_offline() {
                        return Err(FsError::Offline);
                    }
                    let fetch = match fetches.remove(&idx) {
                        Some(f) => f,
                        None => self.fetcher.chunk(src, idx, false),
                    };
                    let chunk = fetch.await?;
                    let lo = (from - chunk_start) as usize;
                    let hi = ((to - chunk_start) as usize).min(chunk.len());
                    if lo > hi {
                        return Err(FsError::Io("short chunk from the server".into()));
                    }
                    chunk.slice(lo..hi)
                }
            };
            out.push(piece);
        }
        // A read within one chunk (most are) is handed on without a copy.
        Ok(Pieces::new(out).into_bytes())
    }

    pub(super) async fn do_release(&self, fh: Fh) {
        let file = lock(&self.files).remove(&fh);
        if let Some(src) = file.as_ref().and_then(|f| f.source.as_ref()) {
            // What a closed handle's read-ahead left in memory would only sit there: another
            // reader of the same content is served from the cache file instead.
            self.fetcher.just_fetched().forget(&src.key);
        }
        if let Some(w) = file.and_then(|f| f.write.clone()) {
            self.detach_write(&w).await;
        }
    }

    /// A handle served from the inode's local write state (no cache, no passthrough).
    pub(super) fn register_local_handle(
        &self,
        ino: Ino,
        rec: &crate::meta::InodeRecord,
        write: Option<Arc<super::write::InodeWrite>>,
    ) -> OpenReply {
        lock(&self.kernel_keys).remove(&ino);
        let file = OpenFile {
            ino,
            path: rec.path.clone(),
            size: rec.size,
            source: None,
            direct_io: false,
            readahead: Mutex::new(ReadAhead::new(1, 1, 1)),
            _hold: None,
            write,
        };
        let fh = self.next_handle();
        lock(&self.files).insert(fh, Arc::new(file));
        OpenReply {
            fh,
            keep_cache: false,
            direct_io: false,
            passthrough: None,
        }
    }

    pub(super) async fn do_statfs(&self) -> FsResult<StatFs> {
        const BSIZE: u64 = 4096;
        let usage = self.fetcher.store().usage().await?;
        let files = self.meta(|m| m.count()).await?;
        let limit = usage.limit_bytes.max(usage.bytes);
        let free = limit.saturating_sub(usage.bytes) / BSIZE;
        Ok(StatFs {
            blocks: limit / BSIZE,
            bfree: free,
            bavail: free,
            files,
            ffree: u64::from(u32::MAX).saturating_sub(files),
            bsize: BSIZE as u32,
            namelen: crate::names::MAX_NAME_BYTES as u32,
        })
    }
}
