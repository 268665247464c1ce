//! Chunks just fetched, kept in memory until a reader has read them through once or closed
//! the file, within a byte budget: a cold sequential read is answered from the bytes the
//! network delivered instead of reading back, a system call and a copy per kernel request,
//! what was just written to the cache file.
//!
//! The bytes are exactly those stored in the cache (the cache's chunk checksums are computed
//! from them), and keys name content, so what is held never goes stale; a key whose whole
//! content failed its check is forgotten.

use crate::client::Pieces;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Held {
    /// Per content key, its chunks by index.
    chunks: HashMap<Arc<str>, HashMap<u64, Pieces>>,
    /// Insertion order, for dropping the oldest when over budget (entries already let go are
    /// skipped).
    order: VecDeque<(Arc<str>, u64)>,
    bytes: usize,
}

impl Held {
    fn remove(&mut self, key: &str, idx: u64) {
        if let Some(per_key) = self.chunks.get_mut(key) {
            if let Some(chunk) = per_key.remove(&idx) {
                self.bytes -= chunk.len();
            }
            if per_key.is_empty() {
                self.chunks.remove(key);
            }
        }
    }
}

pub struct JustFetched {
    held: Mutex<Held>,
    budget: usize,
}

impl JustFetched {
    /// Holds at most `budget` bytes (0: holds nothing).
    pub fn new(budget: usize) -> Self {
        Self {
            held: Mutex::default(),
            budget,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps chunk `idx` of `key`, dropping the oldest chunks held if over budget.
    pub fn put(&self, key: &str, idx: u64, chunk: Pieces) {
        if chunk.is_empty() || chunk.len() > self.budget {
            return;
        }
        let mut held = self.lock();
        held.remove(key, idx);
        while held.bytes + chunk.len() > self.budget {
            let Some((old_key, old_idx)) = held.order.pop_front() else {
                break;
            };
            held.remove(&old_key, old_idx);
        }
        let key: Arc<str> = match held.chunks.get_key_value(key) {
            Some((k, _)) => k.clone(),
            None => Arc::from(key),
        };
        held.bytes += chunk.len();
        held.order.push_back((key.clone(), idx));
        held.chunks.entry(key).or_default().insert(idx, chunk);
        // Entries let go by readers stay in `order` until they reach its front; bound it.
        if held.order.len() > 4 * held.chunks.values().map(HashMap::len).sum::<usize>() + 64 {
            let Held { chunks, order, .. } = &mut *held;
            order.retain(|(k, i)| chunks.get(k).is_some_and(|c| c.contains_key(i)));
        }
    }

    /// Chunk `idx` of `key` if held. With `read_through` (the caller read up to the chunk's
    /// end), it is let go: a sequential reader will not come back for it.
    pub fn get(&self, key: &str, idx: u64, read_through: bool) -> Option<Pieces> {
        let mut held = self.lock();
        let chunk = held.chunks.get(key)?.get(&idx)?.clone();
        if read_through {
            held.remove(key, idx);
        }
        Some(chunk)
    }

    /// Lets go of every chunk of `key`.
    pub fn forget(&self, key: &str) {
        let mut held = self.lock();
        if let Some(per_key) = held.chunks.remove(key) {
            held.bytes -= per_key.values().map(Pieces::len).sum::<usize>();
        }
    }

    #[cfg(test)]
    pub fn held_bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn chunk(byte: u8, len: usize) -> Pieces {
        Pieces::from(Bytes::from(vec![byte; len]))
    }

    #[test]
    fn a_chunk_is_served_until_read_through() {
        let held = JustFetched::new(100);
        held.put("k", 0, chunk(1, 10));
        assert!(held.get("k", 1, false).is_none());
        assert!(held.get("other", 0, false).is_none());
        assert_eq!(held.get("k", 0, false).map(|c| c.len()), Some(10));
        assert_eq!(held.get("k", 0, true).map(|c| c.len()), Some(10));
        assert!(
            held.get("k", 0, false).is_none(),
            "let go once read through"
        );
        assert_eq!(held.held_bytes(), 0);
    }

    #[test]
    fn the_budget_drops_the_oldest_chunks_first() {
        let held = JustFetched::new(30);
        for idx in 0..5 {
            held.put("k", idx, chunk(idx as u8, 10));
        }
        assert_eq!(held.held_bytes(), 30);
        assert!(held.get("k", 1, false).is_none());
        for idx in 2..5 {
            let c = held.get("k", idx, false).expect("recent chunk held");
            assert_eq!(c.into_bytes()[0], idx as u8);
        }
        held.put("k", 9, chunk(9, 31));
        assert!(held.get("k", 9, false).is_none(), "larger than the budget");
        let none = JustFetched::new(0);
        none.put("k", 0, chunk(1, 1));
        assert!(none.get("k", 0, false).is_none());
    }

    #[test]
    fn replacing_and_forgetting_keep_the_count_right() {
        let held = JustFetched::new(100);
        held.put("a", 0, chunk(1, 10));
        held.put("a", 0, chunk(2, 20));
        held.put("b", 3, chunk(3, 5));
        assert_eq!(held.held_bytes(), 25);
        held.forget("a");
        assert_eq!(held.held_bytes(), 5);
        assert!(held.get("a", 0, false).is_none());
        for round in 0..1000u64 {
            held.put("b", 10 + round % 7, chunk(4, 5));
            held.get("b", 10 + round % 7, true);
        }
        assert_eq!(held.held_bytes(), 5, "only chunk 3 of b is left");
        assert!(held.lock().order.len() < 200, "order stays bounded");
    }
}
