//! The Cells "storage-independent" content hash: MD5 over the MD5 digests of 10 MiB blocks.
//!
//! Every Cells v4+ server records it as `x-cells-hash`; computing it locally lets us verify
//! downloads and name cache entries without trusting storage ETags. Feed bytes in any
//! chunking with [`CellsHasher::update`]; content whose length is an exact multiple of the
//! block size gets no extra empty block; empty content hashes as one empty block.

/// The one streaming implementation lives in the cache crate, which verifies stored content
/// with it (and cannot depend on this crate); re-exported here for everything else.
pub use cells_cache::{CELLS_HASH_BLOCK, CellsHasher};

/// Cells hash of a byte slice held in memory.
pub fn cells_hash(data: &[u8]) -> String {
    let mut h = CellsHasher::default();
    h.update(data);
    h.finalize_hex()
}

/// Cells hash of a file, read in large chunks, its blocks hashed on helper threads (see
/// [`cells_cache::ParallelDigester`]), leaving a core to the rest of the mount.
pub fn cells_hash_file(path: &std::path::Path) -> std::io::Result<String> {
    file_hash(path, cells_cache::ParallelDigester::default_helpers())
}

/// [`cells_hash_file`] on every core, for `cells-mount hash`, which has nothing else to do.
pub fn cells_hash_file_on_every_core(path: &std::path::Path) -> std::io::Result<String> {
    file_hash(path, cells_cache::ParallelDigester::helpers_leaving(0))
}

fn file_hash(path: &std::path::Path, helpers: usize) -> std::io::Result<String> {
    let chunk = cells_cache::DEFAULT_CHUNK_SIZE;
    Ok(cells_cache::FileDigester::of_file_with(path, chunk, helpers)?.cells_hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn small_vectors() {
        assert_eq!(cells_hash(b""), "59adb24ef3cdbe0297f05b395827453f");
        assert_eq!(cells_hash(b"a"), "b6ff9a06b7e20bcb2858c5b8ff744aea");
        assert_eq!(
            cells_hash(b"The quick brown fox jumps over the lazy dog"),
            "a5f6bc8c547364db2a98ccb9386ea241"
        );
    }

    #[test]
    fn chunking_does_not_matter() {
        let data = pattern(CELLS_HASH_BLOCK + 12345);
        let whole = cells_hash(&data);
        let mut h = CellsHasher::default();
        for chunk in data.chunks(777_777) {
            h.update(chunk);
        }
        assert_eq!(h.finalize_hex(), whole);
    }

    #[test]
    fn block_boundaries() {
        assert_eq!(
            cells_hash(&vec![0u8; CELLS_HASH_BLOCK]),
            "9fbaeee0ccc66f9a8e3d3641dca37281"
        );
        assert_eq!(
            cells_hash(&vec![0u8; CELLS_HASH_BLOCK + 1]),
            "6cd9bc72037834a89584556663e1e232"
        );
        assert_eq!(
            cells_hash(&pattern(CELLS_HASH_BLOCK - 1)),
            "589cafb3633e59e0f5a6ff05c8f082c4"
        );
    }
}
