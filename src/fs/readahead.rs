//! Sequential-access detection for one open file: decides what to fetch ahead of the reader.
//!
//! The window starts small and doubles each time a new batch is issued while the reader stays
//! sequential, up to a maximum; a random read resets it and asks for one chunk after itself.

use std::ops::Range;

#[derive(Debug, Clone)]
pub struct ReadAhead {
    /// Where a sequential reader reads next.
    next: u64,
    /// Bytes up to which read-ahead has been requested.
    ahead_until: u64,
    window: u64,
    min: u64,
    max: u64,
    /// Also the tolerance of "sequential": the kernel issues parallel reads slightly out of
    /// order.
    chunk: u64,
}

impl ReadAhead {
    pub fn new(min: u64, max: u64, chunk: u64) -> Self {
        let chunk = chunk.max(1);
        Self {
            next: 0,
            ahead_until: 0,
            window: min.max(chunk),
            min: min.max(chunk),
            max: max.max(min).max(chunk),
            chunk,
        }
    }

    #[cfg(test)]
    pub fn window(&self) -> u64 {
        self.window
    }

    /// Records a read of `len` bytes at `offset` and returns the byte range to fetch in the
    /// background, if any.
    pub fn on_read(&mut self, offset: u64, len: u64, file_size: u64) -> Option<Range<u64>> {
        let end = offset.saturating_add(len).min(file_size);
        let sequential = offset.abs_diff(self.next) <= self.chunk;
        if !sequential {
            self.next = end;
            self.window = self.min;
            let until = end.saturating_add(self.chunk).min(file_size);
            self.ahead_until = until;
            return (until > end).then_some(end..until);
        }
        self.next = self.next.max(end);
        // Issue the next batch only when the reader has eaten into the previous one.
        if self.ahead_until.saturating_sub(end) >= self.window / 2 {
            return None;
        }
        let start = self.ahead_until.max(end);
        let target = end.saturating_add(self.window).min(file_size);
        self.window = self.window.saturating_mul(2).min(self.max);
        if target <= start {
            return None;
        }
        self.ahead_until = target;
        Some(start..target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn sequential_reads_grow_the_window_to_the_maximum() {
        let mut ra = ReadAhead::new(MIB, 16 * MIB, MIB);
        let size = 1 << 30;
        let mut requested = 0;
        let mut windows = Vec::new();
        for i in 0..2000u64 {
            if let Some(r) = ra.on_read(i * 128 * 1024, 128 * 1024, size) {
                assert!(r.start >= requested, "batches never overlap");
                requested = r.end;
                windows.push(r.end - r.start);
            }
        }
        assert!(windows.len() >= 5);
        assert!(
            windows.windows(2).take(4).all(|w| w[1] >= w[0]),
            "{windows:?}"
        );
        assert_eq!(ra.window(), 16 * MIB);
        assert!(
            requested > 2000 * 128 * 1024,
            "read-ahead stays ahead of the reader"
        );
    }

    #[test]
    fn random_reads_ask_for_one_chunk_and_reset_the_window() {
        let mut ra = ReadAhead::new(MIB, 16 * MIB, MIB);
        for i in 0..40u64 {
            ra.on_read(i * 128 * 1024, 128 * 1024, 1 << 30);
        }
        assert!(ra.window() > MIB);
        let r = ra.on_read(500 * MIB, 4096, 1 << 30).unwrap();
        assert_eq!(r, 500 * MIB + 4096..501 * MIB + 4096);
        assert_eq!(ra.window(), MIB);
    }

    #[test]
    fn nothing_is_requested_past_the_end_of_the_file() {
        let mut ra = ReadAhead::new(MIB, 16 * MIB, MIB);
        let size = MIB / 2;
        let r = ra.on_read(0, 4096, size).unwrap();
        assert_eq!(r.end, size);
        assert!(ra.on_read(size - 4096, 4096, size).is_none());
    }
}
