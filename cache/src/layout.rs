//! Chunk arithmetic of one entry: which chunks a byte range touches or fully covers.
//!
//! Chunks are aligned on multiples of the entry's chunk size; the last one may be short.
//! A zero-size entry has no chunks and is complete from the start.

use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub size: u64,
    pub chunk: u64,
}

impl Layout {
    /// `chunk` must be non-zero (checked when the configuration is accepted).
    pub fn new(size: u64, chunk: u64) -> Self {
        Self { size, chunk }
    }

    pub fn count(&self) -> u64 {
        self.size.div_ceil(self.chunk)
    }

    pub fn start(&self, idx: u64) -> u64 {
        idx * self.chunk
    }

    /// Length of chunk `idx` (which must be `< count()`).
    pub fn len(&self, idx: u64) -> u64 {
        self.chunk.min(self.size - self.start(idx))
    }

    pub fn range(&self, idx: u64) -> Range<u64> {
        let start = self.start(idx);
        start..start + self.len(idx)
    }

    /// `[offset, offset+len)` clipped to the entry size (empty when past EOF).
    pub fn clip(&self, offset: u64, len: u64) -> Range<u64> {
        let start = offset.min(self.size);
        start..offset.saturating_add(len).min(self.size)
    }

    /// Indices of the chunks that intersect `[offset, offset+len)` (after clipping).
    pub fn touching(&self, offset: u64, len: u64) -> Range<u64> {
        let r = self.clip(offset, len);
        if r.is_empty() {
            return 0..0;
        }
        r.start / self.chunk..(r.end - 1) / self.chunk + 1
    }

    /// Indices of the chunks lying entirely inside `[offset, offset+len)`; a final short chunk
    /// counts when the range reaches the end of the entry.
    pub fn covered(&self, offset: u64, len: u64) -> Range<u64> {
        let end = offset.saturating_add(len);
        let first = offset.div_ceil(self.chunk);
        let last = if end >= self.size {
            self.count()
        } else {
            end / self.chunk
        };
        if first >= last {
            return 0..0;
        }
        first..last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_short_last_chunk() {
        let l = Layout::new(10, 4);
        assert_eq!(l.count(), 3);
        assert_eq!(l.len(2), 2);
        assert_eq!(l.range(2), 8..10);
        assert_eq!(Layout::new(8, 4).count(), 2);
        assert_eq!(Layout::new(0, 4).count(), 0);
    }

    #[test]
    fn touching_ranges() {
        let l = Layout::new(10, 4);
        assert_eq!(l.touching(0, 1), 0..1);
        assert_eq!(l.touching(3, 2), 0..2);
        assert_eq!(l.touching(4, 4), 1..2);
        assert_eq!(l.touching(9, 100), 2..3);
        assert_eq!(l.touching(10, 5), 0..0);
        assert_eq!(l.touching(50, 5), 0..0);
        assert_eq!(l.touching(2, 0), 0..0);
        assert_eq!(Layout::new(0, 4).touching(0, 10), 0..0);
        assert_eq!(l.touching(u64::MAX - 1, u64::MAX), 0..0);
    }

    #[test]
    fn covered_ranges() {
        let l = Layout::new(10, 4);
        assert_eq!(l.covered(0, 4), 0..1);
        assert_eq!(l.covered(0, 3), 0..0);
        assert_eq!(l.covered(1, 8), 1..2);
        assert_eq!(l.covered(8, 2), 2..3);
        assert_eq!(l.covered(8, 99), 2..3);
        assert_eq!(l.covered(0, 10), 0..3);
        assert_eq!(l.covered(9, 1), 0..0);
        assert_eq!(l.covered(12, 4), 0..0);
        assert_eq!(Layout::new(0, 4).covered(0, 0), 0..0);
    }
}
