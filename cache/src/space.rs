//! Space accounting and eviction: reservations taken before bytes are written, LRU eviction of
//! whole entries done synchronously by the inserting thread, and entry removal.
//!
//! Pinned entries, entries with an open handle (`hold`) and dirty entries are never evicted.
//! When nothing evictable is left, dirty data is still accepted (it is the only copy) while
//! clean data is refused with `CacheError::Full`.

use crate::entry::{Entry, lock};
use crate::error::CacheError;
use crate::index;
use crate::store::Inner;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

/// Proof that the caller holds `Inner::acct`.
pub type AcctGuard<'a> = MutexGuard<'a, ()>;

/// Bytes counted in `used` ahead of a write, so concurrent inserts cannot overshoot the limit.
/// Dropping it gives the bytes back; `settle` keeps the part that was actually stored.
pub struct Reservation<'a> {
    inner: &'a Inner,
    bytes: u64,
}

impl Reservation<'_> {
    pub fn settle(mut self, stored: u64) {
        let unused = self.bytes.saturating_sub(stored);
        self.inner.used.fetch_sub(unused, Ordering::AcqRel);
        self.bytes = 0;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.inner.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl Inner {
    /// Makes room for `bytes` and counts them as used. `clean` data is refused with `Full`
    /// when eviction cannot make room; dirty data goes over the limit instead.
    pub fn reserve(
        &self,
        bytes: u64,
        clean: bool,
        protect: Option<&str>,
    ) -> Result<Reservation<'_>, CacheError> {
        let guard = lock(&self.acct);
        self.reserve_locked(&guard, bytes, clean, protect)
    }

    pub fn reserve_locked(
        &self,
        guard: &AcctGuard<'_>,
        bytes: u64,
        clean: bool,
        protect: Option<&str>,
    ) -> Result<Reservation<'_>, CacheError> {
        if !self.make_room(guard, bytes, protect)? && clean {
            return Err(CacheError::Full);
        }
        self.used.fetch_add(bytes, Ordering::AcqRel);
        Ok(Reservation { inner: self, bytes })
    }

    /// Evicts least-recently-used evictable entries until `used + bytes <= limit`.
    /// Returns whether that was reached.
    pub fn make_room(
        &self,
        guard: &AcctGuard<'_>,
        bytes: u64,
        protect: Option<&str>,
    ) -> Result<bool, CacheError> {
        let limit = self.limit.load(Ordering::Acquire);
        let fits =
            |inner: &Inner| inner.used.load(Ordering::Acquire).saturating_add(bytes) <= limit;
        if fits(self) {
            return Ok(true);
        }
        let mut candidates = self.eviction_candidates(protect);
        candidates.sort_by_key(|e| e.last_access.load(Ordering::Acquire));
        for victim in candidates {
            if fits(self) {
                break;
            }
            tracing::debug!(key = %victim.key, "evicting cache entry");
            self.drop_entry(guard, &victim)?;
        }
        Ok(fits(self))
    }

    fn eviction_candidates(&self, protect: Option<&str>) -> Vec<Arc<Entry>> {
        let all: Vec<Arc<Entry>> = self
            .entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|e| {
                Some(e.key.as_str()) != protect
                    && e.stored.load(Ordering::Acquire) > 0
                    && !e.dirty.load(Ordering::Acquire)
            })
            .cloned()
            .collect();
        let pins = lock(&self.pins);
        let holds = lock(&self.holds);
        all.into_iter()
            .filter(|e| !pins.contains_key(&e.key) && !holds.contains_key(&e.key))
            .collect()
    }

    /// Removes an entry: index row first (so the index never claims a deleted file), then the
    /// in-memory entry, then the data file. Readers that already opened the file keep reading
    /// the old, unlinked data, which is still the right content.
    pub fn drop_entry(&self, _guard: &AcctGuard<'_>, entry: &Arc<Entry>) -> Result<(), CacheError> {
        let freed = {
            let mut chunks = lock(&entry.chunks);
            if chunks.removed {
                return Ok(());
            }
            index::delete_entry(&lock(&self.db), entry.id)?;
            chunks.removed = true;
            entry.stored.swap(0, Ordering::AcqRel)
        };
        {
            let mut map = self.entries.write().unwrap_or_else(|e| e.into_inner());
            if map.get(&entry.key).is_some_and(|e| Arc::ptr_eq(e, entry)) {
                map.remove(&entry.key);
            }
        }
        self.used.fetch_sub(freed, Ordering::AcqRel);
        match std::fs::remove_file(&entry.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Drops one chunk whose data no longer matches `sum` (still the recorded checksum, or
    /// someone else already dealt with it).
    pub fn drop_chunk(&self, entry: &Entry, idx: u64, sum: [u8; 16]) -> Result<(), CacheError> {
        let mut chunks = lock(&entry.chunks);
        if chunks.removed || chunks.sum(idx) != Some(sum) {
            return Ok(());
        }
        tracing::warn!(key = %entry.key, chunk = idx, "dropping corrupt cache chunk");
        index::drop_chunk(&mut lock(&self.db), entry.id, idx)?;
        chunks.remove(idx);
        chunks.whole_verified = false;
        let len = entry.layout.len(idx);
        entry.stored.fetch_sub(len, Ordering::AcqRel);
        self.used.fetch_sub(len, Ordering::AcqRel);
        Ok(())
    }

    /// Drops a whole entry if it is still the current one for its key.
    pub fn drop_entry_now(&self, entry: &Arc<Entry>) -> Result<(), CacheError> {
        let guard = lock(&self.acct);
        self.drop_entry(&guard, entry)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Cache, CacheConfig, CacheError};
    use std::sync::atomic::Ordering;

    fn open(dir: &std::path::Path, limit: u64) -> Cache {
        Cache::open(CacheConfig {
            dir: dir.join("c"),
            limit_bytes: limit,
            chunk_size: 1024,
        })
        .unwrap()
    }

    #[test]
    fn reservations_count_until_settled_or_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cache = open(dir.path(), 4096);
        let inner = &cache.inner;
        let r = inner.reserve(3000, true, None).unwrap();
        assert_eq!(inner.used.load(Ordering::Acquire), 3000);
        // A second clean reservation cannot fit while the first is in flight.
        assert!(matches!(
            inner.reserve(2000, true, None),
            Err(CacheError::Full)
        ));
        r.settle(1000);
        assert_eq!(inner.used.load(Ordering::Acquire), 1000);
        let r = inner.reserve(2000, false, None).unwrap();
        drop(r);
        assert_eq!(inner.used.load(Ordering::Acquire), 1000);
        // Dirty data may go over the limit.
        let _r = inner.reserve(10_000, false, None).unwrap();
        assert_eq!(inner.used.load(Ordering::Acquire), 11_000);
    }

    #[test]
    fn cache_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Cache>();
        assert_send_sync::<crate::HoldGuard>();
    }
}
