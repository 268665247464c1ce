//! The digests of a file fed in order (as [`crate::FileDigester`]), with the Cells hash's
//! 10 MiB blocks hashed on helper threads. MD5 runs at about 0.5 GB/s on one core and each
//! block's MD5 is independent of the others, so one thread would bound how fast a large file
//! is saved into the mount or checked; the helpers spread the blocks over the cores. The
//! feeding thread keeps the chunk checksums (xxh3, some twenty times faster) and the order.

use crate::digest::{ChunkSums, FileDigest, FileDigester};
use crate::hash::CELLS_HASH_BLOCK;
use bytes::Bytes;
use md5::{Digest, Md5};
use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Most helper threads per digester, whatever the core count: MD5 is the only work they do.
const MAX_HELPERS: usize = 4;

/// A block of the Cells hash to digest: the digest of its first bytes when they were hashed
/// before the block was handed over, then the rest as the pieces they arrived in.
struct Block {
    prefix: Option<Md5>,
    pieces: Vec<Bytes>,
}

impl Block {
    fn digest(self) -> [u8; 16] {
        let mut md5 = self.prefix.unwrap_or_default();
        for piece in &self.pieces {
            md5.update(piece);
        }
        md5.finalize().into()
    }
}

struct Helper {
    work: SyncSender<Block>,
    done: Receiver<[u8; 16]>,
}

/// Streaming digester of a file fed in order, in owned pieces.
pub struct ParallelDigester {
    chunks: ChunkSums,
    size: u64,
    /// The Cells hash: the digests of the blocks collected so far, in order.
    outer: Md5,
    blocks: u64,
    /// The block being filled.
    block: Block,
    in_block: usize,
    helpers: Vec<Helper>,
    /// Helpers still to start, with the first full block: a file smaller than a block (most
    /// are) costs no thread.
    helpers_to_start: usize,
    next_helper: usize,
    /// The helper of each block handed over and not collected yet, in block order.
    waiting: VecDeque<usize>,
    /// A helper died holding a block: the Cells hash can no longer be computed.
    broken: bool,
}

impl ParallelDigester {
    /// One helper per core but one (at most [`MAX_HELPERS`]): the core left is the writer's.
    /// On two cores, with one helper per core a 1 GiB `cp` into the mount was no faster and
    /// its median slower: the helpers take the CPU the copy itself needs.
    pub fn default_helpers() -> usize {
        Self::helpers_leaving(1)
    }

    /// One helper per core but `spare` cores, at most [`MAX_HELPERS`].
    pub fn helpers_leaving(spare: usize) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        cores.saturating_sub(spare).min(MAX_HELPERS)
    }

    /// `chunk_size` is the cache's; with `helpers` 0 everything is hashed on the caller's
    /// thread.
    pub fn new(chunk_size: u64, helpers: usize) -> Self {
        Self::resume(FileDigester::new(chunk_size), helpers)
    }

    /// Goes on from `digester`'s state (a writer that hashed a file's first bytes inline).
    pub fn resume(digester: FileDigester, helpers: usize) -> Self {
        let (cells, chunks, size) = digester.into_parts();
        let (outer, block, in_block, blocks) = cells.into_parts();
        Self {
            chunks,
            size,
            outer,
            blocks,
            block: Block {
                prefix: (in_block > 0).then_some(block),
                pieces: Vec::new(),
            },
            in_block,
            helpers: Vec::new(),
            helpers_to_start: helpers,
            next_helper: 0,
            waiting: VecDeque::new(),
            broken: false,
        }
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, mut data: Bytes) {
        self.chunks.update(&data);
        self.size += data.len() as u64;
        while !data.is_empty() {
            let take = (CELLS_HASH_BLOCK - self.in_block).min(data.len());
            self.block.pieces.push(data.split_to(take));
            self.in_block += take;
            if self.in_block == CELLS_HASH_BLOCK {
                self.close_block();
            }
        }
    }

    /// The digest of everything fed so far (waiting for the helpers); the digester goes on.
    /// `None` when a helper thread died holding a block.
    pub fn snapshot(&mut self) -> Option<FileDigest> {
        while !self.waiting.is_empty() {
            self.collect_oldest();
        }
        if self.broken {
            return None;
        }
        let mut outer = self.outer.clone();
        // Content that fills its last block exactly gets no empty block; empty content is one.
        if self.in_block > 0 || self.blocks == 0 {
            let partial = Block {
                prefix: self.block.prefix.clone(),
                pieces: self.block.pieces.clone(),
            };
            outer.update(partial.digest());
        }
        Some(FileDigest {
            size: self.size,
            chunk_size: self.chunks.chunk_size(),
            cells_hash: hex::encode(outer.finalize()),
            chunk_sums: self.chunks.snapshot(),
        })
    }

    /// Hands the full block to the next helper (hashing it here when there is none).
    fn close_block(&mut self) {
        let block = std::mem::replace(
            &mut self.block,
            Block {
                prefix: None,
                pieces: Vec::new(),
            },
        );
        self.in_block = 0;
        self.blocks += 1;
        if self.helpers_to_start > 0 {
            self.helpers = (0..self.helpers_to_start)
                .filter_map(|_| start_helper())
                .collect();
            self.helpers_to_start = 0;
        }
        if self.helpers.is_empty() {
            self.outer.update(block.digest());
            return;
        }
        // One block per helper at a time bounds the memory held to a block per helper. Blocks
        // go round in turn, so the oldest one waiting is the next helper's.
        if self.waiting.len() >= self.helpers.len() {
            self.collect_oldest();
        }
        let helper = self.next_helper;
        self.next_helper = (helper + 1) % self.helpers.len();
        match self.helpers[helper].work.send(block) {
            Ok(()) => self.waiting.push_back(helper),
            Err(refused) => {
                // The helper is gone (it never holds a block between two sends): hash here,
                // after the blocks before this one.
                while !self.waiting.is_empty() {
                    self.collect_oldest();
                }
                self.outer.update(refused.0.digest());
            }
        }
    }

    fn collect_oldest(&mut self) {
        let Some(helper) = self.waiting.pop_front() else {
            return;
        };
        match self.helpers[helper].done.recv() {
            Ok(digest) => self.outer.update(digest),
            Err(_) => self.broken = true,
        }
    }
}

/// A helper thread: digests the blocks it is sent, in order, until its digester is dropped.
fn start_helper() -> Option<Helper> {
    let (work, blocks) = sync_channel::<Block>(1);
    let (results, done) = sync_channel(1);
    std::thread::Builder::new()
        .name("cells-digest".into())
        .spawn(move || {
            for block in blocks {
                if results.send(block.digest()).is_err() {
                    return;
                }
            }
        })
        .ok()?;
    Some(Helper { work, done })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 13 % 251) as u8).collect()
    }

    fn one_shot(data: &[u8], chunk: u64) -> FileDigest {
        let mut d = FileDigester::new(chunk);
        d.update(data);
        d.finish()
    }

    fn fed(data: &[u8], piece: usize, chunk: u64, helpers: usize) -> FileDigest {
        let mut d = ParallelDigester::new(chunk, helpers);
        for p in data.chunks(piece) {
            d.update(Bytes::copy_from_slice(p));
        }
        d.snapshot().expect("helpers alive")
    }

    #[test]
    fn any_helper_count_and_piece_size_gives_the_one_shot_digest() {
        let data = content(CELLS_HASH_BLOCK * 3 + 4321);
        let want = one_shot(&data, 1 << 20);
        for helpers in [0, 1, 2] {
            for piece in [131_079, CELLS_HASH_BLOCK] {
                assert_eq!(
                    fed(&data, piece, 1 << 20, helpers),
                    want,
                    "{helpers}/{piece}"
                );
            }
        }
    }

    #[test]
    fn block_boundaries_empty_content_and_snapshots() {
        for len in [
            0,
            1,
            CELLS_HASH_BLOCK - 1,
            CELLS_HASH_BLOCK,
            CELLS_HASH_BLOCK * 2,
        ] {
            let data = content(len);
            assert_eq!(
                fed(&data, 65_536, 4096, 2),
                one_shot(&data, 4096),
                "{len} bytes"
            );
        }
        // Content within one block starts no helper; the first full block starts them.
        let mut d = ParallelDigester::new(4096, 2);
        d.update(Bytes::from(content(CELLS_HASH_BLOCK - 1)));
        assert!(d.snapshot().is_some() && d.helpers.is_empty());
        d.update(Bytes::from_static(b"x"));
        assert_eq!(d.helpers.len(), 2);
        // A snapshot midway leaves the digest running.
        let data = content(CELLS_HASH_BLOCK * 2 + 10);
        let (head, tail) = data.split_at(CELLS_HASH_BLOCK + 5);
        let mut d = ParallelDigester::new(4096, 2);
        d.update(Bytes::copy_from_slice(head));
        assert_eq!(d.snapshot(), Some(one_shot(head, 4096)));
        d.update(Bytes::copy_from_slice(tail));
        assert_eq!(d.snapshot(), Some(one_shot(&data, 4096)));
    }

    #[test]
    fn it_goes_on_from_a_digester_stopped_inside_a_block() {
        let data = content(CELLS_HASH_BLOCK * 2 + 99);
        let (head, tail) = data.split_at(8 << 20);
        let mut inline = FileDigester::new(1 << 20);
        inline.update(head);
        let mut d = ParallelDigester::resume(inline, 2);
        assert_eq!(d.size, head.len() as u64);
        for p in tail.chunks(100_000) {
            d.update(Bytes::copy_from_slice(p));
        }
        assert_eq!(d.snapshot(), Some(one_shot(&data, 1 << 20)));
    }

    #[test]
    fn a_file_digest_matches_the_streaming_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let data = content(CELLS_HASH_BLOCK * 2 + 777);
        std::fs::write(&path, &data).expect("write");
        let got = FileDigester::of_file(&path, 1 << 20).expect("digest");
        assert_eq!(got, one_shot(&data, 1 << 20));
    }
}
