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

    /// Each piece overlapping bytes `range` (clamped to what exists), with the part of it
    /// inside the range; the one walk the methods below share.
    fn within(&self, range: Range<usize>) -> impl Iterator<Item = (&Bytes, Range<usize>)> {
        let (start, end) = (range.start.min(self.len), range.end.min(self.len));
        let mut at = 0;
        self.parts.iter().filter_map(move |part| {
            let (lo, hi) = (at, at + part.len());
            at = hi;
            (start < end && hi > start && lo < end)
                .then(|| (part, start.max(lo) - lo..end.min(hi) - lo))
        })
    }

    /// Bytes `range` (clamped to what exists): no copy when they lie within one piece.
    pub fn slice(&self, range: Range<usize>) -> Bytes {
        let mut parts = self.within(range).peekable();
        let Some((first, r)) = parts.next() else {
            return Bytes::new();
        };
        if parts.peek().is_none() {
            return first.slice(r);
        }
        let mut out = BytesMut::from(&first[r]);
        for (part, r) in parts {
            out.extend_from_slice(&part[r]);
        }
        out.freeze()
    }

    /// Bytes `range` (clamped) as pieces of their own, sharing the buffers: nothing copied.
    pub fn sub(&self, range: Range<usize>) -> Pieces {
        Pieces::new(self.within(range).map(|(part, r)| part.slice(r)).collect())
    }

    /// Bytes `range` when they lie within one piece (shared, not copied); `None` otherwise.
    pub fn within_one(&self, range: Range<usize>) -> Option<Bytes> {
        let mut parts = self.within(range.clone());
        match (parts.next(), parts.next()) {
            (Some((part, r)), None) if r.len() == range.len() => Some(part.slice(r)),
            _ => None,
        }
    }

    /// Copies the bytes from `from` on into `out` (as many as fit and exist); how many.
    pub fn copy_to(&self, from: usize, out: &mut [u8]) -> usize {
        let mut done = 0;
        for (part, r) in self.within(from..from.saturating_add(out.len())) {
            let n = r.len();
            out[done..done + n].copy_from_slice(&part[r]);
            done += n;
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
