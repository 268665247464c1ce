//! Whole-content digests used to verify a complete entry against its key.
//!
//! The Cells hash lives here because the cache verifies content with it and depends on no
//! other crate of the workspace; `cells_mount::hash` re-exports it:
//! MD5 over the MD5 digests of 10 MiB blocks; empty content counts as one empty block.

use crate::key::KeyKind;
use md5::{Digest, Md5};

/// Block size of the Cells hash.
pub const CELLS_HASH_BLOCK: usize = 10 * 1024 * 1024;

/// Streaming Cells hasher: feed bytes in any chunking.
#[derive(Default, Clone)]
pub struct CellsHasher {
    outer: Md5,
    block: Md5,
    in_block: usize,
    blocks: u64,
}

impl CellsHasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let take = (CELLS_HASH_BLOCK - self.in_block).min(data.len());
            self.block.update(&data[..take]);
            self.in_block += take;
            data = &data[take..];
            if self.in_block == CELLS_HASH_BLOCK {
                self.close_block();
            }
        }
    }

    fn close_block(&mut self) {
        let digest = std::mem::take(&mut self.block).finalize();
        self.outer.update(digest);
        self.in_block = 0;
        self.blocks += 1;
    }

    /// The outer digest so far, the current block's digest, its length and the blocks closed:
    /// for [`crate::parallel::ParallelDigester`], which goes on from where this one stopped.
    pub(crate) fn into_parts(self) -> (Md5, Md5, usize, u64) {
        (self.outer, self.block, self.in_block, self.blocks)
    }

    pub fn finalize_hex(mut self) -> String {
        if self.in_block > 0 || self.blocks == 0 {
            self.close_block();
        }
        hex::encode(self.outer.finalize())
    }
}

/// A digest of the kind a key names, fed in order, compared at the end.
pub enum ContentHasher {
    Cells(CellsHasher),
    Md5(Md5),
}

impl ContentHasher {
    /// `None` for opaque keys: nothing to verify.
    pub fn for_kind(kind: KeyKind) -> Option<Self> {
        match kind {
            KeyKind::CellsHash => Some(Self::Cells(CellsHasher::default())),
            KeyKind::PlainMd5 => Some(Self::Md5(Md5::new())),
            KeyKind::Opaque => None,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Cells(h) => h.update(data),
            Self::Md5(h) => h.update(data),
        }
    }

    /// True when the digest equals the key's value (the key minus its one-letter prefix).
    pub fn matches_key(self, key: &str) -> bool {
        let hex = match self {
            Self::Cells(h) => h.finalize_hex(),
            Self::Md5(h) => hex::encode(h.finalize()),
        };
        key.get(1..) == Some(hex.as_str())
    }
}

/// How an entry's per-chunk checksums were computed; persisted per entry (`entries.sum_kind`),
/// so entries written by an older version stay readable.
///
/// The chunk checksum only guards against local damage (bit rot, torn or lost writes): the
/// server's bytes are checked against the content key by the whole-content hash. A fast
/// non-cryptographic 128-bit hash is enough for that, and MD5 over every fetched chunk cost
/// most of a cold read's CPU on small machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SumKind {
    /// MD5 (index version 1).
    Md5,
    /// XXH3-128 (index version 2 on).
    Xxh3,
}

impl SumKind {
    /// The kind new entries use.
    pub const CURRENT: SumKind = SumKind::Xxh3;

    /// The kind of the value stored in the index (`entries.sum_kind`: 0 MD5, 1 XXH3, the
    /// column's default); `None` for a value this version does not know.
    pub fn from_sql(value: i64) -> Option<Self> {
        match value {
            0 => Some(Self::Md5),
            1 => Some(Self::Xxh3),
            _ => None,
        }
    }

    /// The checksum of one chunk.
    pub fn sum(self, data: &[u8]) -> [u8; 16] {
        match self {
            Self::Md5 => Md5::digest(data).into(),
            Self::Xxh3 => xxhash_rust::xxh3::xxh3_128(data).to_le_bytes(),
        }
    }

    /// [`Self::sum`] of the concatenation of `parts`, without concatenating them.
    pub fn sum_parts(self, parts: &[&[u8]]) -> [u8; 16] {
        match (self, parts) {
            (_, [one]) => self.sum(one),
            (Self::Md5, _) => {
                let mut h = Md5::new();
                parts.iter().for_each(|p| h.update(p));
                h.finalize().into()
            }
            (Self::Xxh3, _) => {
                let mut h = xxhash_rust::xxh3::Xxh3::new();
                parts.iter().for_each(|p| h.update(p));
                h.digest128().to_le_bytes()
            }
        }
    }
}

/// Checksum of a chunk of a new entry.
pub fn chunk_sum(data: &[u8]) -> [u8; 16] {
    SumKind::CURRENT.sum(data)
}

/// The streaming form of [`chunk_sum`] (for [`crate::FileDigester`]); the two must agree, which
/// the digester's tests check.
#[derive(Clone, Default)]
pub struct ChunkSummer(xxhash_rust::xxh3::Xxh3);

impl ChunkSummer {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The sum of what was fed, as [`SumKind::CURRENT`] computes it.
    pub fn finish(&self) -> [u8; 16] {
        const _: () = assert!(matches!(SumKind::CURRENT, SumKind::Xxh3));
        self.0.digest128().to_le_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(data: &[u8]) -> String {
        let mut h = CellsHasher::default();
        h.update(data);
        h.finalize_hex()
    }

    #[test]
    fn cells_hash_vectors() {
        assert_eq!(cells(b"a"), "b6ff9a06b7e20bcb2858c5b8ff744aea");
        assert_eq!(cells(b""), "59adb24ef3cdbe0297f05b395827453f");
        assert_eq!(
            cells(&vec![0u8; CELLS_HASH_BLOCK + 1]),
            "6cd9bc72037834a89584556663e1e232"
        );
    }

    #[test]
    fn content_hasher_checks_keys() {
        let mut h = ContentHasher::for_kind(KeyKind::CellsHash).unwrap();
        h.update(b"a");
        assert!(h.matches_key("cb6ff9a06b7e20bcb2858c5b8ff744aea"));
        let mut h = ContentHasher::for_kind(KeyKind::PlainMd5).unwrap();
        h.update(b"a");
        assert!(h.matches_key("m0cc175b9c0f1b6a831c399e269772661"));
        let mut h = ContentHasher::for_kind(KeyKind::PlainMd5).unwrap();
        h.update(b"b");
        assert!(!h.matches_key("m0cc175b9c0f1b6a831c399e269772661"));
        assert!(ContentHasher::for_kind(KeyKind::Opaque).is_none());
    }

    #[test]
    fn a_sum_over_pieces_equals_the_sum_of_the_joined_bytes() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 253) as u8).collect();
        let pieces: Vec<&[u8]> = vec![&data[..1], &data[1..70_001], &data[70_001..]];
        for kind in [SumKind::Md5, SumKind::Xxh3] {
            assert_eq!(kind.sum_parts(&pieces), kind.sum(&data));
            assert_eq!(kind.sum_parts(&[&data[..]]), kind.sum(&data));
            assert_eq!(kind.sum_parts(&[]), kind.sum(b""));
        }
    }

    #[test]
    fn sum_kinds_round_trip_and_differ() {
        assert_eq!(SumKind::from_sql(0), Some(SumKind::Md5));
        assert_eq!(SumKind::from_sql(1), Some(SumKind::CURRENT));
        assert_eq!(SumKind::from_sql(7), None);
        assert_eq!(
            hex::encode(SumKind::Md5.sum(b"a")),
            "0cc175b9c0f1b6a831c399e269772661"
        );
        assert_ne!(SumKind::Md5.sum(b"a"), SumKind::Xxh3.sum(b"a"));
        assert_ne!(SumKind::Xxh3.sum(b"a"), SumKind::Xxh3.sum(b"b"));
    }
}
