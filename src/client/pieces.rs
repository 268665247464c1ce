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
}
