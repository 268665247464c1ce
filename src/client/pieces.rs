//! A run of bytes kept in the pieces it arrived in (a response body as the network delivered
//! it), so that storing it costs no copy into one contiguous buffer.

use bytes::{Bytes, BytesMut};
use std::ops::Range;
use std::sync::Arc;

/// Consecutive bytes held as shared pieces; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Pieces {
    parts: Arc<[Bytes]>,
    len: usize,
}

impl Pieces {
    /// The pieces in order; empty ones are dropped.
    pub fn new(parts: Vec<Bytes>) -> Self {
        let parts: Vec<Bytes> = parts.into_iter().filter(|p| !p.is_empty()).collect();
        let len = parts.iter().map(Bytes::len).sum();
        Self {
            parts: parts.into(),
            len,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces as slices, in order.
    pub fn slices(&self) -> Vec<&[u8]> {
        self.parts.iter().map(|p| p.as_ref()).collect()
    }

    /// Bytes `range` (clamped to what exists): no copy when they lie within one piece.
    pub fn slice(&self, range: Range<usize>) -> Bytes {
        let (start, end) = (range.start.min(self.len), range.end.min(self.len));
        if start >= end {
            return Bytes::new();
        }
        let mut out: Option<BytesMut> = None;
        let mut at = 0;
        for part in self.parts.iter() {
            let (lo, hi) = (at, at + part.len());
            at = hi;
            if hi <= start {
                continue;
            }
            if lo >= end {
                break;
            }
            let piece = part.slice(start.max(lo) - lo..end.min(hi) - lo);
            if out.is_none() && lo <= start && end <= hi {
                return piece;
            }
            out.get_or_insert_with(|| BytesMut::with_capacity(end - start))
                .extend_from_slice(&piece);
        }
        out.map(BytesMut::freeze).unwrap_or_default()
    }

    /// Bytes `range` (clamped) as pieces of their own, sharing the buffers: nothing copied.
    pub fn sub(&self, range: Range<usize>) -> Pieces {
        let (start, end) = (range.start.min(self.len), range.end.min(self.len));
        let mut parts = Vec::new();
        let mut at = 0;
        for part in self.parts.iter() {
            let (lo, hi) = (at, at + part.len());
            at = hi;
            if hi <= start || lo >= end {
                continue;
            }
            parts.push(part.slice(start.max(lo) - lo..end.min(hi) - lo));
        }
        Pieces::new(parts)
    }

    /// Bytes `range` when they lie within one piece (shared, not copied); `None` otherwise.
    pub fn within_one(&self, range: Range<usize>) -> Option<Bytes> {
        let mut at = 0;
        for part in self.parts.iter() {
            let (lo, hi) = (at, at + part.len());
            at = hi;
            if lo <= range.start && range.end <= hi && range.start < range.end {
                return Some(part.slice(range.start - lo..range.end - lo));
            }
            if hi > range.start {
                return None;
            }
        }
        None
    }

    /// Copies the bytes from `from` on into `out` (as many as fit and exist); how many.
    pub fn copy_to(&self, from: usize, out: &mut [u8]) -> usize {
        let end = from.saturating_add(out.len()).min(self.len);
        let (mut at, mut done) = (0, 0);
        for part in self.parts.iter() {
            let (lo, hi) = (at, at + part.len());
            at = hi;
            if hi <= from || lo >= end {
                continue;
            }
            let piece = &part[from.max(lo) - lo..end.min(hi) - lo];
            out[done..done + piece.len()].copy_from_slice(piece);
            done += piece.len();
        }
        done
    }

    /// All the bytes in one buffer (copied only when there is more than one piece).
    pub fn into_bytes(self) -> Bytes {
        self.slice(0..self.len)
    }
}

impl From<Bytes> for Pieces {
    fn from(b: Bytes) -> Self {
        Self::new(vec![b])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Pieces {
        Pieces::new(vec![
            Bytes::from_static(b"abc"),
            Bytes::new(),
            Bytes::from_static(b"defg"),
            Bytes::from_static(b"h"),
        ])
    }

    #[test]
    fn slices_within_and_across_pieces_give_the_same_bytes_as_one_buffer() {
        let p = sample();
        assert_eq!(p.len(), 8);
        let whole = b"abcdefgh";
        for start in 0..=8 {
            for end in start..=10 {
                let got = p.slice(start..end);
                assert_eq!(&got[..], &whole[start.min(8)..end.min(8)], "{start}..{end}");
            }
        }
        assert_eq!(&p.clone().into_bytes()[..], whole);
        assert_eq!(p.slices().len(), 3, "the empty piece is dropped");
    }

    #[test]
    fn a_slice_within_one_piece_shares_its_memory() {
        let p = sample();
        let part = p.slice(4..6);
        assert_eq!(&part[..], b"ef");
        assert_eq!(part.as_ptr(), p.parts[1][1..].as_ptr());
        assert!(Pieces::default().slice(0..3).is_empty());
    }

    #[test]
    fn sub_runs_and_copies_give_the_same_bytes_as_one_buffer() {
        let p = sample();
        let whole = b"abcdefgh";
        for start in 0..=8 {
            for end in start..=10 {
                let sub = p.sub(start..end);
                assert_eq!(&sub.into_bytes()[..], &whole[start.min(8)..end.min(8)]);
                let mut out = vec![0u8; end - start];
                let n = p.copy_to(start, &mut out);
                assert_eq!(
                    &out[..n],
                    &whole[start.min(8)..end.min(8)],
                    "{start}..{end}"
                );
            }
        }
        let shared = p.sub(4..6).within_one(0..2).expect("one piece");
        assert_eq!(
            shared.as_ptr(),
            p.parts[1][1..].as_ptr(),
            "sub shares the buffers"
        );
    }

    #[test]
    fn within_one_answers_only_ranges_inside_a_single_piece() {
        let p = sample();
        assert_eq!(p.within_one(3..7).as_deref(), Some(&b"defg"[..]));
        assert_eq!(p.within_one(0..3).as_deref(), Some(&b"abc"[..]));
        assert!(p.within_one(2..4).is_none(), "spans two pieces");
        assert!(p.within_one(7..9).is_none(), "past the end");
        assert!(p.within_one(5..5).is_none(), "empty");
    }
}
