//! The running digest of a file written front to back (its Cells hash and chunk checksums,
//! so the finished file reaches the journal without being read again). Small files are hashed
//! inline; past [`PIPE_AFTER`] bytes a file's bytes go to a thread of their own, so a large
//! copy into the mount costs the slower of writing and hashing, not both one after the other
//! (MD5 alone took half the daemon's CPU of a 1 GiB `cp`). That thread spreads the Cells
//! hash's blocks over helper threads ([`ParallelDigester`]): one core's MD5 would otherwise
//! bound how fast a large file can be saved.

use cells_cache::{FileDigest, FileDigester, ParallelDigester};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Bytes hashed inline before a file gets its hashing thread. Most saves are smaller: they
/// need neither a thread nor a copy of every write for it, and a burst of thousands of small
/// files does not start thousands of threads.
const PIPE_AFTER: u64 = 8 << 20;
/// Writes queued for the hashing thread before a writer waits for it: bounds the memory a
/// writer outrunning its hash can hold (one FUSE write is at most 1 MiB).
const QUEUED_WRITES: usize = 16;

/// The digest of the bytes written so far, in order from offset 0.
pub(super) struct RunningDigest {
    /// Bytes fed so far.
    size: u64,
    state: State,
}

enum State {
    /// Boxed: a digester's state is 800 bytes, a queue's 16.
    Inline(Box<FileDigester>),
    Piped(SyncSender<Message>),
}

enum Message {
    Bytes(Vec<u8>),
    /// Reply with the digest of everything sent before.
    Snapshot(SyncSender<FileDigest>),
}

/// A digest asked for; [`PendingDigest::wait`] may block until the hashing thread caught up,
/// so call it off the async runtime.
pub(super) enum PendingDigest {
    Ready(FileDigest),
    Waiting(Receiver<FileDigest>),
}

impl PendingDigest {
    /// The digest, or `None` when the hashing thread is gone (the caller hashes the file).
    pub fn wait(self) -> Option<FileDigest> {
        match self {
            Self::Ready(digest) => Some(digest),
            Self::Waiting(reply) => reply.recv().ok(),
        }
    }
}

impl RunningDigest {
    /// `chunk_size` is the cache's.
    pub fn new(chunk_size: u64) -> Self {
        Self {
            size: 0,
            state: State::Inline(Box::new(FileDigester::new(chunk_size))),
        }
    }

    /// Bytes fed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digest after `bytes` were written at `offset`: `None` when they do not continue
    /// the file in order, or when its hashing thread is gone or could not start (the file is
    /// then hashed whole when handed over).
    pub fn fed(self, offset: u64, bytes: &[u8]) -> Option<Self> {
        if offset != self.size {
            return None;
        }
        let size = self.size + bytes.len() as u64;
        let state = match self.state {
            State::Inline(mut digester) => {
                digester.update(bytes);
                if size >= PIPE_AFTER {
                    State::Piped(start_hashing_thread(*digester)?)
                } else {
                    State::Inline(digester)
                }
            }
            State::Piped(queue) => {
                queue.send(Message::Bytes(bytes.to_vec())).ok()?;
                State::Piped(queue)
            }
        };
        Some(Self { size, state })
    }

    /// Asks for the digest of everything fed so far; the running digest goes on.
    pub fn snapshot(&self) -> PendingDigest {
        match &self.state {
            State::Inline(digester) => PendingDigest::Ready(digester.clone().finish()),
            State::Piped(queue) => {
                let (reply, answer) = sync_channel(1);
                // A send that fails (thread gone) drops `reply`: `wait` then answers `None`.
                let _ = queue.send(Message::Snapshot(reply));
                PendingDigest::Waiting(answer)
            }
        }
    }
}

/// Moves `digester` onto a thread of its own (which starts its helpers); returns the queue
/// that feeds it.
fn start_hashing_thread(digester: FileDigester) -> Option<SyncSender<Message>> {
    let (queue, incoming) = sync_channel(QUEUED_WRITES);
    std::thread::Builder::new()
        .name("cells-digest".into())
        .spawn(move || {
            let helpers = ParallelDigester::default_helpers();
            hash_until_closed(ParallelDigester::resume(digester, helpers), incoming)
        })
        .ok()?;
    Some(queue)
}

/// The hashing thread: hashes what arrives, in order, until every sender is gone.
fn hash_until_closed(mut digester: ParallelDigester, incoming: Receiver<Message>) {
    for message in incoming {
        match message {
            Message::Bytes(bytes) => digester.update(bytes.into()),
            Message::Snapshot(reply) => {
                // No digest (a helper died): dropping `reply` makes `wait` answer `None`.
                if let Some(digest) = digester.snapshot() {
                    let _ = reply.send(digest);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn one_shot(data: &[u8], chunk: u64) -> FileDigest {
        let mut d = FileDigester::new(chunk);
        d.update(data);
        d.finish()
    }

    #[test]
    fn a_large_file_written_in_order_gets_the_one_shot_digest_through_the_thread() {
        let data = content((PIPE_AFTER as usize) * 2 + 12_345);
        let mut running = RunningDigest::new(1 << 20);
        let mut offset = 0u64;
        for piece in data.chunks(128 * 1024 + 7) {
            running = running.fed(offset, piece).expect("in order");
            offset += piece.len() as u64;
        }
        assert!(matches!(running.state, State::Piped(_)));
        assert_eq!(running.size(), data.len() as u64);
        assert_eq!(running.snapshot().wait(), Some(one_shot(&data, 1 << 20)));
    }

    #[test]
    fn a_snapshot_midway_leaves_the_digest_running() {
        let data = content(PIPE_AFTER as usize + 4096);
        let (head, tail) = data.split_at(PIPE_AFTER as usize + 100);
        let running = RunningDigest::new(4096).fed(0, head).expect("in order");
        assert_eq!(running.snapshot().wait(), Some(one_shot(head, 4096)));
        let running = running.fed(head.len() as u64, tail).expect("in order");
        assert_eq!(running.snapshot().wait(), Some(one_shot(&data, 4096)));
    }

    #[test]
    fn a_small_file_stays_inline() {
        let running = RunningDigest::new(4096).fed(0, b"hello").expect("in order");
        assert!(matches!(running.state, State::Inline(_)));
        assert_eq!(running.snapshot().wait(), Some(one_shot(b"hello", 4096)));
    }

    #[test]
    fn a_write_out_of_order_ends_the_digest() {
        let running = RunningDigest::new(4096).fed(0, b"hello").expect("in order");
        assert!(running.fed(10, b"x").is_none());
        let big = content(PIPE_AFTER as usize);
        let running = RunningDigest::new(4096).fed(0, &big).expect("in order");
        assert!(matches!(running.state, State::Piped(_)));
        assert!(running.fed(1, b"x").is_none());
    }
}
