//! The running digest of a file written front to back (its Cells hash and chunk checksums,
//! so the finished file reaches the journal without being read again). Small files are hashed
//! inline; past [`PIPE_AFTER`] bytes a file gets a hashing thread that follows the writes,
//! reading each newly written stretch back from the local file (from the page cache, as a
//! rule). The writer never waits for the hash: a large copy into the mount runs at the speed
//! of writing, and the hash catches up afterwards (MD5 is slower than a local disk, and took
//! half the daemon's CPU of a 1 GiB `cp`). That thread spreads the Cells hash's blocks over
//! helper threads ([`ParallelDigester`]).

use cells_cache::{FileDigest, FileDigester, ParallelDigester};
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

/// Bytes hashed inline before a file gets its hashing thread. Most saves are smaller: they
/// need no thread, and a burst of thousands of small files does not start thousands of them.
const PIPE_AFTER: u64 = 8 << 20;
/// How much the hashing thread reads back at a time.
const READ_BACK: usize = 1 << 20;

/// The digest of the bytes written so far, in order from offset 0.
pub(super) struct RunningDigest {
    /// Bytes fed so far.
    size: u64,
    state: State,
}

enum State {
    /// Boxed: a digester's state is 800 bytes, a feed's 24.
    Inline(Box<FileDigester>),
    Piped(Feed),
}

/// What feeds a hashing thread. Dropping it (the digest is abandoned: a write out of order,
/// a truncation) tells the thread to stop reading back at once, not to drain its queue.
struct Feed {
    queue: Sender<Message>,
    /// The file the thread reads from.
    tailed: Arc<File>,
    wanted: Arc<AtomicBool>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.wanted.store(false, Ordering::Release);
    }
}

enum Message {
    /// The file now holds written bytes up to this offset.
    WrittenTo(u64),
    /// Later bytes are in this file (a copy of the earlier one, which is no longer written).
    MovedTo(Arc<File>),
    /// Reply with the digest of everything written before.
    Snapshot(SyncSender<FileDigest>),
}

/// A digest asked for; [`PendingDigest::wait`] may block until the hashing thread caught up,
/// so call it off the async runtime.
pub(super) enum PendingDigest {
    Ready(FileDigest),
    Waiting(Receiver<FileDigest>),
}

impl PendingDigest {
    /// The digest, or `None` when the hashing thread is gone or could not read the file back
    /// (the caller hashes the file).
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

    /// The digest after `bytes` were written at `offset` into `file` (the write is done):
    /// `None` when they do not continue the file in order, or when its hashing thread is gone
    /// or could not start (the file is then hashed whole when handed over).
    pub fn fed(self, offset: u64, bytes: &[u8], file: &Arc<File>) -> Option<Self> {
        if offset != self.size {
            return None;
        }
        let size = self.size + bytes.len() as u64;
        let state = match self.state {
            State::Inline(mut digester) => {
                digester.update(bytes);
                if size >= PIPE_AFTER {
                    State::Piped(start_hashing_thread(*digester, file.clone())?)
                } else {
                    State::Inline(digester)
                }
            }
            State::Piped(mut feed) => {
                if !Arc::ptr_eq(&feed.tailed, file) {
                    feed.queue.send(Message::MovedTo(file.clone())).ok()?;
                    feed.tailed = file.clone();
                }
                feed.queue.send(Message::WrittenTo(size)).ok()?;
                State::Piped(feed)
            }
        };
        Some(Self { size, state })
    }

    /// True when a hashing thread computes the digest, which may then lag behind the writes.
    pub fn may_lag(&self) -> bool {
        matches!(self.state, State::Piped(_))
    }

    /// Asks for the digest of everything fed so far; the running digest goes on.
    pub fn snapshot(&self) -> PendingDigest {
        match &self.state {
            State::Inline(digester) => PendingDigest::Ready(digester.clone().finish()),
            State::Piped(feed) => {
                let (reply, answer) = sync_channel(1);
                // A send that fails (thread gone) drops `reply`: `wait` then answers `None`.
                let _ = feed.queue.send(Message::Snapshot(reply));
                PendingDigest::Waiting(answer)
            }
        }
    }
}

/// Moves `digester` onto a thread of its own (which starts its helpers) that goes on reading
/// `file` from where the digester stopped; returns what feeds it.
fn start_hashing_thread(digester: FileDigester, file: Arc<File>) -> Option<Feed> {
    let (queue, incoming) = channel();
    let at = digester.size();
    let wanted = Arc::new(AtomicBool::new(true));
    let feed = Feed {
        queue,
        tailed: file.clone(),
        wanted: wanted.clone(),
    };
    std::thread::Builder::new()
        .name("cells-digest".into())
        .spawn(move || {
            // Lowest priority, helpers too (they inherit it): the writer and the FUSE
            // threads serving it come first; the hash catches up when they wait.
            super::content::lower_thread_priority();
            let helpers = ParallelDigester::default_helpers();
            let digester = ParallelDigester::resume(digester, helpers);
            hash_until_closed(digester, file, at, incoming, &wanted)
        })
        .ok()?;
    Some(feed)
}

/// The hashing thread: reads back and hashes what was written, in order, until every sender
/// is gone or the digest is no longer wanted. After a failed read it answers no snapshot (the
/// file is then hashed whole).
fn hash_until_closed(
    mut digester: ParallelDigester,
    mut file: Arc<File>,
    mut at: u64,
    incoming: Receiver<Message>,
    wanted: &AtomicBool,
) {
    let mut broken = false;
    for message in incoming {
        if !wanted.load(Ordering::Acquire) {
            return;
        }
        match message {
            Message::WrittenTo(end) => {
                while !broken && at < end && wanted.load(Ordering::Acquire) {
                    let len = usize::try_from(end - at)
                        .unwrap_or(usize::MAX)
                        .min(READ_BACK);
                    match read_back(&file, at, len) {
                        Some(bytes) => {
                            at += bytes.len() as u64;
                            digester.update(bytes.into());
                        }
                        None => broken = true,
                    }
                }
            }
            Message::MovedTo(moved) => file = moved,
            Message::Snapshot(reply) => {
                // No digest (a helper died, or a read failed): dropping `reply` makes `wait`
                // answer `None`.
                if !broken && let Some(digest) = digester.snapshot() {
                    let _ = reply.send(digest);
                }
            }
        }
    }
}

/// Exactly `len` bytes of `file` at `at`, or `None` (an error, or the file is shorter now:
/// it was cut, and this digest is dropped anyway).
fn read_back(file: &File, at: u64, len: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let got = super::open_staging::read_full_at(file, &mut buf, at).ok()?;
    (got == len).then_some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::open_staging::write_at;

    fn content(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn one_shot(data: &[u8], chunk: u64) -> FileDigest {
        let mut d = FileDigester::new(chunk);
        d.update(data);
        d.finish()
    }

    /// A scratch file (removed when the directory guard drops).
    fn scratch(dir: &tempfile::TempDir, name: &str) -> Arc<File> {
        let path = dir.path().join(name);
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .unwrap();
        Arc::new(f)
    }

    /// Writes `bytes` at `offset` into `file`, then feeds them, as the write path does.
    fn write(
        d: RunningDigest,
        file: &Arc<File>,
        offset: u64,
        bytes: &[u8],
    ) -> Option<RunningDigest> {
        write_at(file, bytes, offset).unwrap();
        d.fed(offset, bytes, file)
    }

    #[test]
    fn a_large_file_written_in_order_gets_the_one_shot_digest_through_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let file = scratch(&dir, "f");
        let data = content((PIPE_AFTER as usize) * 2 + 12_345);
        let mut running = RunningDigest::new(1 << 20);
        let mut offset = 0u64;
        for piece in data.chunks(128 * 1024 + 7) {
            running = write(running, &file, offset, piece).expect("in order");
            offset += piece.len() as u64;
        }
        assert!(running.may_lag());
        assert_eq!(running.size(), data.len() as u64);
        assert_eq!(running.snapshot().wait(), Some(one_shot(&data, 1 << 20)));
    }

    #[test]
    fn a_snapshot_midway_leaves_the_digest_running() {
        let dir = tempfile::tempdir().unwrap();
        let file = scratch(&dir, "f");
        let data = content(PIPE_AFTER as usize + 4096);
        let (head, tail) = data.split_at(PIPE_AFTER as usize + 100);
        let running = write(RunningDigest::new(4096), &file, 0, head).expect("in order");
        assert_eq!(running.snapshot().wait(), Some(one_shot(head, 4096)));
        let running = write(running, &file, head.len() as u64, tail).expect("in order");
        assert_eq!(running.snapshot().wait(), Some(one_shot(&data, 4096)));
    }

    #[test]
    fn writes_that_move_to_a_copy_of_the_file_are_read_from_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let (first, copy) = (scratch(&dir, "first"), scratch(&dir, "copy"));
        let data = content(PIPE_AFTER as usize * 2);
        let (head, tail) = data.split_at(PIPE_AFTER as usize + 5);
        let running = write(RunningDigest::new(1 << 20), &first, 0, head).expect("in order");
        // As after a hand-over: the content is copied, and later writes go to the copy.
        write_at(&copy, head, 0).unwrap();
        let running = write(running, &copy, head.len() as u64, tail).expect("in order");
        assert_eq!(running.snapshot().wait(), Some(one_shot(&data, 1 << 20)));
    }

    #[test]
    fn bytes_gone_from_the_file_give_no_digest_rather_than_a_wrong_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = scratch(&dir, "f");
        let data = content(PIPE_AFTER as usize + 4096);
        let (head, tail) = data.split_at(PIPE_AFTER as usize);
        let running = write(RunningDigest::new(4096), &file, 0, head).expect("in order");
        // Fed, but never written: the thread cannot read these bytes back.
        let running = running
            .fed(head.len() as u64, tail, &file)
            .expect("in order");
        assert_eq!(running.snapshot().wait(), None);
    }

    #[test]
    fn an_abandoned_digest_stops_its_thread() {
        let dir = tempfile::tempdir().unwrap();
        let file = scratch(&dir, "f");
        let big = content(PIPE_AFTER as usize);
        let running = write(RunningDigest::new(4096), &file, 0, &big).expect("in order");
        let State::Piped(feed) = &running.state else {
            panic!("piped");
        };
        let wanted = feed.wanted.clone();
        assert!(wanted.load(Ordering::Acquire));
        assert!(running.fed(1, b"x", &file).is_none(), "out of order");
        assert!(
            !wanted.load(Ordering::Acquire),
            "the thread is told to stop"
        );
    }

    #[test]
    fn a_small_file_stays_inline() {
        let dir = tempfile::tempdir().unwrap();
        let file = scratch(&dir, "f");
        let running = write(RunningDigest::new(4096), &file, 0, b"hello").expect("in order");
        assert!(matches!(running.state, State::Inline(_)));
        assert!(!running.may_lag());
        assert_eq!(running.snapshot().wait(), Some(one_shot(b"hello", 4096)));
    }

    #[test]
    fn a_write_out_of_order_ends_the_digest() {
        let dir = tempfile::tempdir().unwrap();
        let file = scratch(&dir, "f");
        let running = write(RunningDigest::new(4096), &file, 0, b"hello").expect("in order");
        assert!(running.fed(10, b"x", &file).is_none());
        let big = content(PIPE_AFTER as usize);
        let running = write(RunningDigest::new(4096), &file, 0, &big).expect("in order");
        assert!(matches!(running.state, State::Piped(_)));
        assert!(running.fed(1, b"x", &file).is_none());
    }
}
