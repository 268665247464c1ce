//! Digests of a whole file computed in one pass, in write order: the Cells hash (its cache key)
//! and the per-chunk checksums of the index. A writer that produces a file sequentially feeds
//! the bytes as it writes them, so handing the finished file to the cache needs no second read.

use crate::hash::{CellsHasher, ChunkSummer};
use crate::parallel::ParallelDigester;
use std::io::Read;
use std::path::Path;

/// What [`FileDigester`] produced for one complete file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    pub size: u64,
    /// Chunk size the checksums were cut at (must be the cache's to be usable).
    pub chunk_size: u64,
    pub cells_hash: String,
    pub chunk_sums: Vec<[u8; 16]>,
}

/// Streaming digester: feed the file's bytes in order, in any pieces.
#[derive(Clone)]
pub struct FileDigester {
    cells: CellsHasher,
    chunks: ChunkSums,
    size: u64,
}

/// The per-chunk checksums of bytes fed in order.
#[derive(Clone)]
pub(crate) struct ChunkSums {
    chunk_size: u64,
    chunk: ChunkSummer,
    in_chunk: u64,
    sums: Vec<[u8; 16]>,
}

impl ChunkSums {
    /// Zero is treated as one byte.
    pub fn new(chunk_size: u64) -> Self {
        Self {
            chunk_size: chunk_size.max(1),
            chunk: ChunkSummer::default(),
            in_chunk: 0,
            sums: Vec::new(),
        }
    }

    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = usize::try_from(self.chunk_size - self.in_chunk).unwrap_or(usize::MAX);
            let take = room.min(data.len());
            self.chunk.update(&data[..take]);
            self.in_chunk += take as u64;
            data = &data[take..];
            if self.in_chunk == self.chunk_size {
                self.sums.push(std::mem::take(&mut self.chunk).finish());
                self.in_chunk = 0;
            }
        }
    }

    /// The sums so far, the last (partial) chunk's included; feeding may go on.
    pub fn snapshot(&self) -> Vec<[u8; 16]> {
        let mut sums = self.sums.clone();
        if self.in_chunk > 0 {
            sums.push(self.chunk.finish());
        }
        sums
    }
}

impl FileDigester {
    /// `chunk_size` is the cache's ([`crate::Cache::chunk_size`]); zero is treated as one byte.
    pub fn new(chunk_size: u64) -> Self {
        Self {
            cells: CellsHasher::new(),
            chunks: ChunkSums::new(chunk_size),
            size: 0,
        }
    }

    /// Bytes fed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn update(&mut self, data: &[u8]) {
        self.cells.update(data);
        self.size += data.len() as u64;
        self.chunks.update(data);
    }

    pub fn finish(self) -> FileDigest {
        FileDigest {
            size: self.size,
            chunk_size: self.chunks.chunk_size(),
            cells_hash: self.cells.finalize_hex(),
            chunk_sums: self.chunks.snapshot(),
        }
    }

    /// Digests the file at `path` in one read, the Cells hash's blocks on helper threads (see
    /// [`ParallelDigester`]).
    pub fn of_file(path: &Path, chunk_size: u64) -> std::io::Result<FileDigest> {
        Self::of_file_with(path, chunk_size, ParallelDigester::default_helpers())
    }

    /// [`Self::of_file`] with `helpers` helper threads.
    pub fn of_file_with(
        path: &Path,
        chunk_size: u64,
        helpers: usize,
    ) -> std::io::Result<FileDigest> {
        let mut digester = ParallelDigester::new(chunk_size, helpers);
        let mut file = std::fs::File::open(path)?;
        loop {
            // A buffer per piece: the helpers hold the pieces of a block until they hash it.
            let mut buf = vec![0u8; 1 << 20];
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            buf.truncate(n);
            digester.update(buf.into());
        }
        digester
            .snapshot()
            .ok_or_else(|| std::io::Error::other("a hashing thread ended early"))
    }

    /// The state so far, for a digester that goes on from here.
    pub(crate) fn into_parts(self) -> (CellsHasher, ChunkSums, u64) {
        (self.cells, self.chunks, self.size)
    }
}

/// Feeds the whole content of the file at `path` to `f`, in order, 1 MiB at a time: the one
/// loop behind every "hash this file" of the workspace.
pub fn read_in_pieces(path: &Path, mut f: impl FnMut(&[u8])) -> std::io::Result<()> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        f(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::chunk_sum;

    fn expected(data: &[u8], chunk: usize) -> FileDigest {
        let mut cells = CellsHasher::new();
        cells.update(data);
        FileDigest {
            size: data.len() as u64,
            chunk_size: chunk as u64,
            cells_hash: cells.finalize_hex(),
            chunk_sums: data.chunks(chunk).map(chunk_sum).collect(),
        }
    }

    #[test]
    fn pieces_of_any_size_give_the_one_shot_digests() {
        let data: Vec<u8> = (0..100_003u32).map(|i| (i * 7 % 251) as u8).collect();
        for piece in [1, 7, 4096, 4097, 65_536, 100_003] {
            let mut d = FileDigester::new(16_384);
            for p in data.chunks(piece) {
                d.update(p);
            }
            assert_eq!(d.finish(), expected(&data, 16_384), "pieces of {piece}");
        }
    }

    #[test]
    fn empty_and_exact_multiple_sizes() {
        assert_eq!(FileDigester::new(4).finish(), expected(b"", 4));
        let mut d = FileDigester::new(4);
        d.update(b"abcdefgh");
        assert_eq!(d.finish(), expected(b"abcdefgh", 4));
    }

    #[test]
    fn a_file_is_digested_in_one_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data = vec![9u8; 3 * 1024 + 5];
        std::fs::write(&path, &data).unwrap();
        assert_eq!(
            FileDigester::of_file(&path, 1024).unwrap(),
            expected(&data, 1024)
        );
    }
}
