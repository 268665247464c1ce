//! The read path: serve a byte range only from chunks that are present and have passed their
//! checksum in this process. A chunk failing its checksum is dropped and the read reports a
//! miss, so the caller fetches it again.

use crate::entry::{ChunkState, Entry, lock};
use crate::error::CacheError;
use crate::fsio;
use crate::index;
use crate::key::KeyKind;
use crate::store::Inner;
use crate::verify::Check;
use std::fs::File;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

/// A chunk index with its recorded checksum.
type ChunkSum = (u64, [u8; 16]);

impl Inner {
    /// Locks an entry's chunk state, loading its chunk rows from the index on first use.
    pub fn chunk_state<'a>(
        &self,
        entry: &'a Entry,
    ) -> Result<MutexGuard<'a, ChunkState>, CacheError> {
        let mut chunks = lock(&entry.chunks);
        if !chunks.loaded && !chunks.removed {
            let rows = index::load_chunks(&lock(&self.db), entry.id)?;
            let mut stored = 0;
            for (idx, sum) in rows {
                if idx < entry.layout.count() {
                    chunks.insert(idx, sum);
                    stored += entry.layout.len(idx);
                }
            }
            // Start-up counted bytes with SQL; trust what was actually loaded.
            let counted = entry.stored.swap(stored, Ordering::AcqRel);
            self.used.fetch_add(stored, Ordering::AcqRel);
            self.used.fetch_sub(counted, Ordering::AcqRel);
            chunks.loaded = true;
        }
        Ok(chunks)
    }

    /// The entry's data file; `None` (and the entry dropped) when the file has vanished.
    pub fn data_file(&self, entry: &Arc<Entry>) -> Result<Option<Arc<File>>, CacheError> {
        match entry.file() {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(key = %entry.key, "cache data file vanished; dropping entry");
                self.drop_entry_now(entry)?;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Reads chunk `idx` and compares it with `sum`; marks it verified or drops it.
    pub fn verify_chunk(
        &self,
        entry: &Entry,
        file: &File,
        idx: u64,
        sum: [u8; 16],
        buf: &mut Vec<u8>,
    ) -> Result<bool, CacheError> {
        let range = entry.layout.range(idx);
        buf.resize(usize::try_from(range.end - range.start).unwrap_or(0), 0);
        let good = match fsio::read_exact_at(file, buf, range.start) {
            Ok(()) => entry.sums.sum(buf) == sum,
            // A short file is a torn or truncated write: the chunk is not there.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => false,
            Err(e) => return Err(e.into()),
        };
        if good {
            lock(&entry.chunks).set_verified(idx, sum);
        } else {
            self.drop_chunk(entry, idx, sum)?;
        }
        Ok(good)
    }

    /// For a complete `c`/`m` entry, checks the whole content against the key once (result
    /// persisted). Returns false when something was dropped.
    pub fn whole_ok(&self, entry: &Arc<Entry>) -> Result<bool, CacheError> {
        if entry.kind == KeyKind::Opaque
            || !entry.is_complete()
            || lock(&entry.chunks).whole_verified
        {
            return Ok(true);
        }
        Ok(self.verify_whole(entry, false)? == Check::Good)
    }

    pub fn read(&self, key: &str, offset: u64, len: usize) -> Result<Option<Vec<u8>>, CacheError> {
        let Some(entry) = self.get(key) else {
            return Ok(None);
        };
        self.touch(&entry);
        let range = entry.layout.clip(offset, len as u64);
        if range.is_empty() {
            return Ok(Some(Vec::new()));
        }
        // No whole-content check here: the write that completes an entry makes it (off the
        // readers' path), and a read needs only its own chunks checked, as for a partial entry.
        // Checking here made every reader of a just-completed entry hash all of it.
        let Some(file) = self.verified_file(&entry, range.clone())? else {
            return Ok(None);
        };
        self.read_range(&entry, &file, range)
    }

    /// As [`Inner::read`], but `Ok(None)` also when a chunk of the range has not been checked
    /// in this process yet: this read never hashes, so it is quick enough for any thread.
    pub fn read_checked(&self, key: &str, offset: u64, out: &mut [u8]) -> Result<bool, CacheError> {
        let Some(entry) = self.get(key) else {
            return Ok(false);
        };
        let range = entry.layout.clip(offset, out.len() as u64);
        if range.end - range.start != out.len() as u64 {
            return Ok(false);
        }
        if range.is_empty() {
            return Ok(true);
        }
        match self.unverified_in(&entry, range.clone())? {
            Some(unverified) if unverified.is_empty() => {}
            _ => return Ok(false),
        }
        self.touch(&entry);
        let Some(file) = self.data_file(&entry)? else {
            return Ok(false);
        };
        self.read_into(&entry, &file, range.start, out)
    }

    /// The bytes of `range` from the entry's data file, whose chunks were checked.
    fn read_range(
        &self,
        entry: &Arc<Entry>,
        file: &File,
        range: Range<u64>,
    ) -> Result<Option<Vec<u8>>, CacheError> {
        let mut out = vec![0u8; usize::try_from(range.end - range.start).unwrap_or(0)];
        Ok(self
            .read_into(entry, file, range.start, &mut out)?
            .then_some(out))
    }

    /// Fills `out` from the entry's data file at `at` (chunks already checked); false when the
    /// file turned out shorter (it is dropped).
    fn read_into(
        &self,
        entry: &Arc<Entry>,
        file: &File,
        at: u64,
        out: &mut [u8],
    ) -> Result<bool, CacheError> {
        match fsio::read_exact_at(file, out, at) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                // The file was truncated behind our back after verification.
                tracing::warn!(key = %entry.key, "cache data file shrank; dropping entry");
                self.drop_entry_now(entry)?;
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The data file, once every chunk of `range` is present and checked in this process
    /// (checking those not checked yet); `None` if any is missing or fails its checksum (a
    /// failing chunk is dropped, so the caller fetches it again).
    fn verified_file(
        &self,
        entry: &Arc<Entry>,
        range: Range<u64>,
    ) -> Result<Option<Arc<File>>, CacheError> {
        let Some(unverified) = self.unverified_in(entry, range)? else {
            return Ok(None);
        };
        let Some(file) = self.data_file(entry)? else {
            return Ok(None);
        };
        let mut buf = Vec::new();
        for (idx, sum) in unverified {
            if !self.verify_chunk(entry, &file, idx, sum, &mut buf)? {
                return Ok(None);
            }
        }
        Ok(Some(file))
    }

    /// Chunks of `range` that still need their checksum checked; `None` if any is missing.
    fn unverified_in(
        &self,
        entry: &Entry,
        range: Range<u64>,
    ) -> Result<Option<Vec<ChunkSum>>, CacheError> {
        let chunks = self.chunk_state(entry)?;
        if chunks.removed {
            return Ok(None);
        }
        let mut out = Vec::new();
        for idx in entry.layout.touching(range.start, range.end - range.start) {
            match chunks.sum(idx) {
                None => return Ok(None),
                Some(sum) if !chunks.is_verified(idx) => out.push((idx, sum)),
                Some(_) => {}
            }
        }
        Ok(Some(out))
    }

    pub fn missing_ranges(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<Range<u64>>, CacheError> {
        let entry = self
            .get(key)
            .ok_or_else(|| CacheError::UnknownEntry(key.to_owned()))?;
        let chunks = self.chunk_state(&entry)?;
        let mut out: Vec<Range<u64>> = Vec::new();
        for idx in entry.layout.touching(offset, len) {
            if chunks.is_present(idx) {
                continue;
            }
            let r = entry.layout.range(idx);
            match out.last_mut() {
                Some(last) if last.end == r.start => last.end = r.end,
                _ => out.push(r),
            }
        }
        Ok(out)
    }

    /// Path of the data file once the entry is complete, its whole content verified (when the
    /// key allows) and each chunk checked in this process (the caller may hand the file to the
    /// kernel, bypassing our per-read checks).
    pub fn complete_path(&self, key: &str) -> Result<Option<std::path::PathBuf>, CacheError> {
        let Some(entry) = self.get(key) else {
            return Ok(None);
        };
        self.touch(&entry);
        if !entry.is_complete() || !self.whole_ok(&entry)? {
            return Ok(None);
        }
        if self.verified_file(&entry, 0..entry.layout.size)?.is_none() {
            return Ok(None);
        }
        Ok(Some(entry.path.clone()))
    }
}
