//! cells-cache: the content-addressed on-disk store of cells-mount.
//!
//! Content is addressed by a key (`c<cells-hash>`, `m<md5>`, `e<etag>`, `x<hex>`), never by a
//! path, so equal contents share storage and a renamed file keeps its cache. Each entry is one
//! sparse data file `objects/<2 hex>/<md5(key) hex>` holding only the chunks fetched so far;
//! chunk presence and per-chunk checksums live in a SQLite index (`index.sqlite`).
//!
//! One sparse file per entry rather than one file per chunk: a complete entry is then a plain
//! file that can be handed to the kernel (FUSE passthrough) or copied out as is, a whole-content
//! check is one sequential read, and a 10 GiB file costs one inode instead of ten thousand.
//! The price is that holes are not reclaimed chunk by chunk: eviction works on whole entries.
//!
//! See `README.md` for the on-disk layout and the guarantees.

mod digest;
mod entry;
mod error;
mod fsio;
mod hash;
mod index;
mod key;
mod layout;
mod parallel;
mod read;
mod space;
pub mod sqlite;
mod store;
mod verify;
mod write;

pub use digest::{FileDigest, FileDigester, read_in_pieces};
pub use error::CacheError;
pub use hash::{CELLS_HASH_BLOCK, CellsHasher};
pub use key::{MAX_KEY_LEN, validate_key};
pub use parallel::ParallelDigester;
pub use store::{MAX_CHUNK, MIN_CHUNK};

use entry::lock;
use key::validate_key as check;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use store::Inner;

/// Default chunk size: 1 MiB (aligned), a good read-ahead unit and a small index.
pub const DEFAULT_CHUNK_SIZE: u64 = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Created with mode 0700 if missing (a looser mode is tightened).
    pub dir: PathBuf,
    /// Bytes of cached content kept before least-recently-used entries are evicted.
    pub limit_bytes: u64,
    /// Chunk size for new entries (existing entries keep theirs). `MIN_CHUNK..=MAX_CHUNK`.
    pub chunk_size: u64,
}

impl CacheConfig {
    pub fn new(dir: impl Into<PathBuf>, limit_bytes: u64) -> Self {
        Self {
            dir: dir.into(),
            limit_bytes,
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    Absent,
    Partial,
    Complete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub limit_bytes: u64,
    pub entries: u64,
    pub pinned_bytes: u64,
    pub dirty_bytes: u64,
}

/// The cache. `Send + Sync`; all methods block (call them through `spawn_blocking`).
/// Only one process may open a cache directory at a time (`CacheError::Locked`).
pub struct Cache {
    inner: Arc<Inner>,
}

/// An open handle on a key: while any guard for a key lives, its entry is not evicted.
pub struct HoldGuard {
    inner: Arc<Inner>,
    key: String,
}

impl HoldGuard {
    fn new(inner: &Arc<Inner>, key: &str) -> Self {
        let _acct = lock(&inner.acct);
        *lock(&inner.holds).entry(key.to_owned()).or_insert(0) += 1;
        Self {
            inner: inner.clone(),
            key: key.to_owned(),
        }
    }
}

impl Drop for HoldGuard {
    fn drop(&mut self) {
        let mut holds = lock(&self.inner.holds);
        if let Some(n) = holds.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                holds.remove(&self.key);
            }
        }
    }
}

impl Cache {
    pub fn open(cfg: CacheConfig) -> Result<Cache, CacheError> {
        Ok(Cache {
            inner: Arc::new(Inner::open(&cfg)?),
        })
    }

    /// Declare (or confirm) an entry's total size; needed before inserting ranges. A different
    /// size replaces a clean entry (`SizeMismatch` for a dirty one). For an empty `c`/`m` key
    /// the empty content is checked against the key (`Corrupt` on mismatch).
    pub fn ensure_entry(&self, key: &str, size: u64) -> Result<(), CacheError> {
        check(key)?;
        self.inner.ensure_entry(key, size)
    }

    /// Read up to `len` bytes at `offset` (fewer at the end of the content, none past it);
    /// `Ok(None)` if the entry is absent or any needed chunk is missing or was corrupt (dropped).
    pub fn read(&self, key: &str, offset: u64, len: usize) -> Result<Option<Vec<u8>>, CacheError> {
        check(key)?;
        self.inner.read(key, offset, len)
    }

    /// Fills `out` with the cached bytes at `offset`, into the caller's buffer (a reader on a
    /// hot path reuses one). `Ok(false)`, `out` undefined, when any of those bytes is missing,
    /// past the end, or in a chunk not checked in this process yet (this read never hashes):
    /// for callers that must not wait long, and take the slower way then.
    pub fn read_checked(&self, key: &str, offset: u64, out: &mut [u8]) -> Result<bool, CacheError> {
        check(key)?;
        self.inner.read_checked(key, offset, out)
    }

    /// Chunk-aligned ranges not yet present within `[offset, offset+len)`, clipped to the entry
    /// size, adjacent chunks merged. `UnknownEntry` if `ensure_entry` was not called (or the
    /// entry was evicted since; `hold` the key to prevent that).
    pub fn missing_ranges(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<Range<u64>>, CacheError> {
        check(key)?;
        self.inner.missing_ranges(key, offset, len)
    }

    /// Store fetched bytes at `offset` (any alignment; only whole chunks, or the final short
    /// chunk, are recorded present; partial chunk data at either end is ignored). `Full` when
    /// no room can be made; `Corrupt` when this write completed a `c`/`m` entry whose content
    /// then failed the key check (the entry was dropped); `UnknownEntry` without `ensure_entry`.
    pub fn write_range(&self, key: &str, offset: u64, data: &[u8]) -> Result<(), CacheError> {
        check(key)?;
        self.inner.write_range(key, offset, &[data])
    }

    /// `write_range` without the whole-content check of a `c`/`m` entry this write completes:
    /// returns true when that check is due (`check_content`), so that a caller can hand the
    /// bytes on first and hash the whole content off its readers' path. Until then, reads
    /// serve the entry's chunks as they would a partial entry's; `complete_path` checks first.
    /// The bytes come in pieces (as a response body arrives), stored without joining them.
    pub fn write_range_deferred(
        &self,
        key: &str,
        offset: u64,
        data: &[&[u8]],
    ) -> Result<bool, CacheError> {
        check(key)?;
        Ok(self.inner.store_range(key, offset, data)?.is_some())
    }

    /// Checks a complete `c`/`m` entry against its key if not done yet. `Corrupt` when the
    /// content does not match (the entry was dropped); absent, partial, opaque or already
    /// checked entries: nothing to do.
    pub fn check_content(&self, key: &str) -> Result<(), CacheError> {
        check(key)?;
        match self.inner.get(key) {
            Some(entry) => self.inner.check_whole(&entry),
            None => Ok(()),
        }
    }

    /// Move a complete local file in as the content of `key`. `src` is consumed (renamed, or
    /// copied then deleted when on another file system) on success and left untouched on
    /// error. `c`/`m` keys are checked against the content first (`Corrupt`). `dirty = true`
    /// protects it from eviction until `mark_clean`, and it is accepted even over the limit.
    pub fn insert_file(&self, key: &str, src: &Path, dirty: bool) -> Result<(), CacheError> {
        check(key)?;
        let how = write::InsertHow {
            digest: None,
            sync: true,
        };
        self.inner.insert_file(key, src, dirty, how)
    }

    /// Moves a saved, not yet uploaded file in as the dirty content of `c<digest.cells_hash>`,
    /// like [`Cache::insert_file`] but without reading it again (the writer's `digest` is
    /// trusted when it describes the file; it is read and checked otherwise) and without
    /// syncing: the caller keeps a durable copy of its own (the upload journal's staged file,
    /// which may be a hard link of `src`). After a power loss a torn chunk fails its checksum.
    pub fn insert_saved(&self, src: &Path, digest: &FileDigest) -> Result<(), CacheError> {
        let key = format!("c{}", digest.cells_hash);
        check(&key)?;
        let how = write::InsertHow {
            digest: Some(digest),
            sync: false,
        };
        self.inner.insert_file(&key, src, true, how)
    }

    /// Makes every committed index change durable (a WAL checkpoint, which syncs first).
    pub fn sync_index(&self) -> Result<(), CacheError> {
        let db = lock(&self.inner.db);
        db.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// The entry may now be evicted (its content was uploaded). Absent keys are ignored.
    pub fn mark_clean(&self, key: &str) -> Result<(), CacheError> {
        check(key)?;
        self.inner.mark_clean(key)
    }

    pub fn state(&self, key: &str) -> Result<EntryState, CacheError> {
        check(key)?;
        Ok(match self.inner.get(key) {
            None => EntryState::Absent,
            Some(e) if e.is_complete() => EntryState::Complete,
            Some(_) => EntryState::Partial,
        })
    }

    /// Path of the data file when the entry is Complete and verified (for FUSE passthrough /
    /// zero-copy). The first call per process reads the file once to check every chunk.
    pub fn complete_path(&self, key: &str) -> Result<Option<PathBuf>, CacheError> {
        check(key)?;
        self.inner.complete_path(key)
    }

    /// Open handle: not evictable while held. An invalid key yields a guard that protects nothing.
    pub fn hold(&self, key: &str) -> HoldGuard {
        HoldGuard::new(&self.inner, key)
    }

    /// Counted and persistent: two pinned paths sharing one content need two `unpin`s.
    /// A key may be pinned before its entry exists.
    pub fn pin(&self, key: &str) -> Result<(), CacheError> {
        check(key)?;
        self.inner.adjust_pin(key, 1)
    }

    /// Unpinning an unpinned key does nothing.
    pub fn unpin(&self, key: &str) -> Result<(), CacheError> {
        check(key)?;
        self.inner.adjust_pin(key, -1)
    }

    /// Current pin count of a key.
    pub fn pin_count(&self, key: &str) -> u32 {
        lock(&self.inner.pins).get(key).copied().unwrap_or(0)
    }

    /// Removes an entry now, whatever its state (pinned, held or dirty included).
    pub fn remove(&self, key: &str) -> Result<(), CacheError> {
        check(key)?;
        match self.inner.get(key) {
            Some(entry) => self.inner.drop_entry_now(&entry),
            None => Ok(()),
        }
    }

    /// The unit in which content is stored and verified; fetches should be aligned on it.
    pub fn chunk_size(&self) -> u64 {
        self.inner.chunk_size
    }

    pub fn usage(&self) -> Usage {
        self.inner.usage()
    }

    /// Changes the limit; a lower limit evicts at once (errors are logged).
    pub fn set_limit(&self, bytes: u64) {
        self.inner.limit.store(bytes, Ordering::Release);
        let guard = lock(&self.inner.acct);
        if let Err(e) = self.inner.make_room(&guard, 0, None) {
            tracing::warn!(error = %e, "eviction after a limit change failed");
        }
    }

    /// Full integrity scan (for a `cells-mount cache verify` command): rehashes every stored
    /// chunk; returns the keys that lost chunks or were dropped entirely.
    pub fn verify_all(&self) -> Result<Vec<String>, CacheError> {
        self.inner.verify_all()
    }

    /// Writes pending access times to the index (also done in batches and on drop).
    pub fn flush(&self) -> Result<(), CacheError> {
        self.inner.flush_access()
    }
}

impl Inner {
    fn adjust_pin(&self, key: &str, delta: i32) -> Result<(), CacheError> {
        let _acct = lock(&self.acct);
        let mut pins = lock(&self.pins);
        let current = pins.get(key).copied().unwrap_or(0);
        let next = current.saturating_add_signed(delta);
        if next == current {
            return Ok(());
        }
        index::save_pin(&lock(&self.db), key, next)?;
        if next == 0 {
            pins.remove(key);
        } else {
            pins.insert(key.to_owned(), next);
        }
        Ok(())
    }

    fn usage(&self) -> Usage {
        let pins = lock(&self.pins).clone();
        let map = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let mut usage = Usage {
            bytes: self.used.load(Ordering::Acquire),
            limit_bytes: self.limit.load(Ordering::Acquire),
            entries: map.len() as u64,
            pinned_bytes: 0,
            dirty_bytes: 0,
        };
        for e in map.values() {
            let stored = e.stored.load(Ordering::Acquire);
            if pins.contains_key(&e.key) {
                usage.pinned_bytes += stored;
            }
            if e.dirty.load(Ordering::Acquire) {
                usage.dirty_bytes += stored;
            }
        }
        usage
    }
}
