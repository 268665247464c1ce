//! The reply-on-drop guard: every kernel request gets exactly one reply, even when the core
//! returns an error, panics, or its task is dropped (runtime shutting down). A request the
//! kernel never hears back about would hang the calling process in uninterruptible sleep.

use super::errno::ErrorStats;
use crate::fs::FsError;
use fuser::Errno;
use std::sync::Arc;

/// A fuser reply object that can answer with an error.
pub trait ErrorReply: Send + 'static {
    fn reply_error(self, errno: Errno);
}

macro_rules! impl_error_reply {
    ($($t:ty),*) => {$(
        impl ErrorReply for $t {
            fn reply_error(self, errno: Errno) {
                self.error(errno);
            }
        }
    )*};
}

impl_error_reply!(
    fuser::ReplyEntry,
    fuser::ReplyAttr,
    fuser::ReplyData,
    fuser::ReplyOpen,
    fuser::ReplyEmpty,
    fuser::ReplyDirectory,
    fuser::ReplyDirectoryPlus,
    fuser::ReplyStatfs,
    fuser::ReplyXattr,
    fuser::ReplyWrite,
    fuser::ReplyCreate
);

/// Holds a reply until it is sent; replies EIO in `Drop` if it never was.
pub struct ReplyGuard<R: ErrorReply> {
    reply: Option<R>,
    op: &'static str,
    stats: Arc<ErrorStats>,
}

impl<R: ErrorReply> ReplyGuard<R> {
    pub fn new(reply: R, op: &'static str, stats: Arc<ErrorStats>) -> Self {
        Self {
            reply: Some(reply),
            op,
            stats,
        }
    }

    /// Sends the successful answer built by `send`.
    pub fn send(mut self, send: impl FnOnce(R)) {
        if let Some(reply) = self.reply.take() {
            send(reply);
        }
    }

    /// Answers a core result: `send` builds the reply from the value, an error becomes its
    /// errno (logged and counted).
    pub fn answer<T>(self, result: Result<T, FsError>, send: impl FnOnce(R, T)) {
        match result {
            Ok(value) => self.send(|reply| send(reply, value)),
            Err(err) => self.fail(&err),
        }
    }

    /// Answers with the errno of `err`, logging and counting it.
    pub fn fail(mut self, err: &FsError) {
        if let Some(reply) = self.reply.take() {
            let code = self.stats.record(self.op, err);
            reply.reply_error(Errno::from_i32(code));
        }
    }

    /// Answers with a raw errno decided by the adapter itself (e.g. ERANGE for a buffer the
    /// caller sized too small).
    pub fn fail_errno(mut self, errno: Errno) {
        if let Some(reply) = self.reply.take() {
            reply.reply_error(errno);
        }
    }
}

impl<R: ErrorReply> Drop for ReplyGuard<R> {
    fn drop(&mut self) {
        if let Some(reply) = self.reply.take() {
            self.stats.record_unanswered(self.op);
            reply.reply_error(Errno::EIO);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Records what would have been sent to the kernel.
    struct Recorder(mpsc::Sender<Option<i32>>);

    impl ErrorReply for Recorder {
        fn reply_error(self, errno: Errno) {
            let _ = self.0.send(Some(errno.code()));
        }
    }

    fn guard() -> (
        ReplyGuard<Recorder>,
        mpsc::Receiver<Option<i32>>,
        Arc<ErrorStats>,
    ) {
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(ErrorStats::default());
        (
            ReplyGuard::new(Recorder(tx), "test", stats.clone()),
            rx,
            stats,
        )
    }

    #[test]
    fn dropped_guard_replies_eio_once() {
        let (g, rx, stats) = guard();
        drop(g);
        assert_eq!(rx.try_recv().ok(), Some(Some(libc::EIO)));
        assert!(rx.try_recv().is_err());
        assert_eq!(stats.snapshot().unanswered, 1);
    }

    #[test]
    fn sent_guard_does_not_reply_again() {
        let (g, rx, stats) = guard();
        g.send(|r| {
            let _ = r.0.send(None);
        });
        assert_eq!(rx.try_recv().ok(), Some(None));
        assert!(rx.try_recv().is_err());
        assert_eq!(stats.snapshot().unanswered, 0);
    }

    #[test]
    fn failed_guard_replies_mapped_errno() {
        let (g, rx, stats) = guard();
        g.fail(&FsError::Offline);
        assert_eq!(rx.try_recv().ok(), Some(Some(libc::EHOSTDOWN)));
        assert!(rx.try_recv().is_err());
        assert_eq!(stats.snapshot().offline, 1);
    }

    #[test]
    fn panicking_task_still_replies_eio() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .expect("runtime");
        let (g, rx, stats) = guard();
        let handle = rt.spawn(async move {
            let _g = g;
            panic!("core bug");
        });
        let joined = rt.block_on(handle);
        assert!(joined.is_err_and(|e| e.is_panic()));
        assert_eq!(rx.recv().ok(), Some(Some(libc::EIO)));
        assert_eq!(stats.snapshot().unanswered, 1);
    }
}
