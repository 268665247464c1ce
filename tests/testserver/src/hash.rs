//! The Cells block hash (`x-cells-hash`, NOTES §4) and the storage ETags, computed while bytes
//! stream through, plus the multipart combination rule the real server applies.

use md5::{Digest, Md5};

/// Size of a Cells hash block: 10 MiB.
pub const BLOCK_SIZE: usize = 10 * 1024 * 1024;

/// Streams content once and yields the per-block digests, the plain MD5 and the size.
#[derive(Default)]
pub struct ContentHasher {
    block: Md5,
    in_block: usize,
    digests: Vec<[u8; 16]>,
    whole: Md5,
    size: u64,
}

/// What [`ContentHasher::finish`] yields for one stream of bytes.
pub struct ContentDigest {
    /// Raw MD5 of each 10 MiB block (at least one: empty content is one empty block).
    pub block_digests: Vec<[u8; 16]>,
    /// Plain MD5 of the whole stream (raw bytes).
    pub md5: [u8; 16],
    pub size: u64,
}

impl ContentHasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.whole.update(data);
        self.size += data.len() as u64;
        while !data.is_empty() {
            let take = (BLOCK_SIZE - self.in_block).min(data.len());
            self.block.update(&data[..take]);
            self.in_block += take;
            data = &data[take..];
            if self.in_block == BLOCK_SIZE {
                let digest = std::mem::take(&mut self.block).finalize();
                self.digests.push(digest.into());
                self.in_block = 0;
            }
        }
    }

    pub fn finish(mut self) -> ContentDigest {
        // A trailing partial block, or the single empty block of empty content; a length that
        // is an exact multiple of the block size gets no extra empty block.
        if self.in_block > 0 || self.digests.is_empty() {
            self.digests.push(self.block.finalize().into());
        }
        ContentDigest {
            block_digests: self.digests,
            md5: self.whole.finalize().into(),
            size: self.size,
        }
    }
}

impl ContentDigest {
    /// The Cells hash of this stream alone.
    pub fn cells_hash(&self) -> String {
        combine_block_digests(self.block_digests.iter())
    }

    /// Single-part storage ETag: plain MD5 hex.
    pub fn etag(&self) -> String {
        hex::encode(self.md5)
    }
}

/// MD5 over the concatenated raw block digests, lowercase hex. For a multipart upload the
/// digests of all parts are concatenated in part order, which is why only parts that are
/// multiples of 10 MiB reproduce the whole-file hash.
pub fn combine_block_digests<'a>(digests: impl Iterator<Item = &'a [u8; 16]>) -> String {
    let mut outer = Md5::new();
    for d in digests {
        outer.update(d);
    }
    hex::encode(outer.finalize())
}

/// MinIO-style multipart ETag: `md5(concat of raw part md5s)-N`.
pub fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    let mut outer = Md5::new();
    for d in part_md5s {
        outer.update(d);
    }
    format!("{}-{}", hex::encode(outer.finalize()), part_md5s.len())
}

/// Cells hash of a byte slice (convenience for tests and small files).
pub fn cells_hash(data: &[u8]) -> String {
    let mut h = ContentHasher::new();
    h.update(data);
    h.finish().cells_hash()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn known_vectors() {
        assert_eq!(cells_hash(b"a"), "b6ff9a06b7e20bcb2858c5b8ff744aea");
        assert_eq!(cells_hash(b""), "59adb24ef3cdbe0297f05b395827453f");
        assert_eq!(
            cells_hash(b"The quick brown fox jumps over the lazy dog"),
            "a5f6bc8c547364db2a98ccb9386ea241"
        );
        assert_eq!(
            cells_hash(&pattern(BLOCK_SIZE)),
            "4fbc18713bfa7c8ba8c1bff45c2f75f7"
        );
        assert_eq!(
            cells_hash(&pattern(BLOCK_SIZE + 1)),
            "4819e8fa362d2a087ab5d0f7e9618c58"
        );
    }

    #[test]
    fn five_mib_parts_give_the_documented_wrong_hash() {
        let data = pattern(25 * 1024 * 1024);
        let mut all = Vec::new();
        for part in data.chunks(5 * 1024 * 1024) {
            let mut h = ContentHasher::new();
            h.update(part);
            all.extend(h.finish().block_digests);
        }
        assert_eq!(
            combine_block_digests(all.iter()),
            "546701f1579ea953e7f2977b39f2b4f1"
        );
        assert_eq!(cells_hash(&data), "813604c8e473a3ec08c99023c062c535");
    }

    #[test]
    fn single_part_etag_is_plain_md5() {
        let mut h = ContentHasher::new();
        h.update(b"a");
        assert_eq!(h.finish().etag(), "0cc175b9c0f1b6a831c399e269772661");
    }
}
