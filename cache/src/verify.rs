//! Whole-content verification: a complete `c`/`m` entry is hashed against its key once (the
//! verdict is persisted), and `verify_all` rehashes everything for an explicit integrity scan.

use crate::entry::{Entry, lock};
use crate::error::CacheError;
use crate::hash::ContentHasher;
use crate::index::{self, Flag};
use crate::store::Inner;
use std::sync::Arc;

#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    /// Every chunk matched its checksum (and the whole content its key, when checkable).
    Good,
    /// Some chunks were missing or corrupt (corrupt ones were dropped).
    ChunksDropped,
    /// The content did not match its key: the whole entry was dropped.
    EntryDropped,
}

impl Inner {
    /// Reads the entry in order, checking chunks (all of them when `rehash_all`, else only
    /// those not yet verified in this process) and, if complete, the whole content.
    pub fn verify_whole(&self, entry: &Arc<Entry>, rehash_all: bool) -> Result<Check, CacheError> {
        let snapshot: Vec<(Option<[u8; 16]>, bool)> = {
            let chunks = self.chunk_state(entry)?;
            if chunks.removed {
                return Ok(Check::ChunksDropped);
            }
            // Only called on complete entries: every index is backed by stored bytes.
            (0..entry.layout.count())
                .map(|i| (chunks.sum(i), chunks.is_verified(i)))
                .collect()
        };
        let mut hasher = ContentHasher::for_kind(entry.kind);
        let mut result = Check::Good;
        let file = if snapshot.is_empty() {
            None
        } else {
            match self.data_file(entry)? {
                Some(f) => Some(f),
                None => return Ok(Check::EntryDropped),
            }
        };
        let mut buf = Vec::new();
        for (idx, (sum, verified)) in snapshot.into_iter().enumerate() {
            let idx = idx as u64;
            let (Some(sum), Some(file)) = (sum, file.as_ref()) else {
                result = Check::ChunksDropped;
                hasher = None;
                continue;
            };
            if rehash_all || !verified || hasher.is_some() {
                if !self.verify_chunk(entry, file, idx, sum, &mut buf)? {
                    result = Check::ChunksDropped;
                    hasher = None;
                    continue;
                }
                if let Some(h) = hasher.as_mut() {
                    h.update(&buf);
                }
            }
        }
        if result != Check::Good {
            return Ok(result);
        }
        let Some(hasher) = hasher else {
            return Ok(Check::Good);
        };
        if hasher.matches_key(&entry.key) {
            let mut chunks = lock(&entry.chunks);
            if !chunks.removed {
                index::set_flag(&lock(&self.db), entry.id, Flag::WholeVerified, true)?;
                chunks.whole_verified = true;
            }
            Ok(Check::Good)
        } else {
            tracing::warn!(key = %entry.key, "cached content does not match its key; dropping it");
            self.drop_entry_now(entry)?;
            Ok(Check::EntryDropped)
        }
    }

    /// Full integrity scan: rehashes every present chunk of every entry and checks complete
    /// `c`/`m` entries against their keys. Returns the keys that lost data.
    pub fn verify_all(&self) -> Result<Vec<String>, CacheError> {
        let all: Vec<Arc<Entry>> = self
            .entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let mut dropped = Vec::new();
        for entry in all {
            let check = if entry.is_complete() {
                // Re-check the whole-content verdict too.
                lock(&entry.chunks).whole_verified = false;
                self.verify_whole(&entry, true)?
            } else {
                self.verify_present_chunks(&entry)?
            };
            if check != Check::Good {
                dropped.push(entry.key.clone());
            }
        }
        Ok(dropped)
    }

    fn verify_present_chunks(&self, entry: &Arc<Entry>) -> Result<Check, CacheError> {
        let present: Vec<(u64, [u8; 16])> = {
            let chunks = self.chunk_state(entry)?;
            let mut present: Vec<_> = chunks.present().collect();
            present.sort_unstable_by_key(|(i, _)| *i);
            present
        };
        if present.is_empty() {
            return Ok(Check::Good);
        }
        let Some(file) = self.data_file(entry)? else {
            return Ok(Check::EntryDropped);
        };
        let mut buf = Vec::new();
        let mut result = Check::Good;
        for (idx, sum) in present {
            if !self.verify_chunk(entry, &file, idx, sum, &mut buf)? {
                result = Check::ChunksDropped;
            }
        }
        Ok(result)
    }
}
