//! The sync side of the write path: a durable journal of local changes (file versions, mkdir,
//! rename, delete), the background uploader that applies them to the server in order, and
//! conflict handling (nothing on either side is ever silently overwritten).
//!
//! Flow: the core hands a finished file version to [`Journal::enqueue_upload`] (which returns
//! only once the version and its journal row are on disk), metadata changes to the other
//! `enqueue_*` calls; the [`Uploader`] claims ready operations (per-path order kept, see
//! `order`), runs them against a [`Remote`](crate::client::Remote) (`execute`), and reports
//! through [`SyncHooks`].

mod backoff;
pub mod conflict;
mod execute;
pub mod interrupted;
pub mod journal;
mod op;
mod op_table;
mod order;
mod schema;
mod staging;
pub(crate) use staging::md5_of;
pub mod uploader;

pub use conflict::{conflict_name, local_host_name};
pub use interrupted::InterruptedUploads;
pub use journal::{ConflictRecord, EnqueuedUpload, Journal};
pub use op::{Op, OpKind, OpState};
pub use uploader::{Uploader, UploaderConfig};

use crate::client::Node;
use crate::names::RemotePath;
use thiserror::Error;

/// Errors of the sync layer (the journal and its staging area). Server errors never surface
/// here: they become an operation's retry or error state.
#[derive(Debug, Error)]
pub enum SyncError {
    #[error("upload journal database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("upload journal I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Bad input from the caller; nothing was changed.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The journal file holds something this version cannot read.
    #[error("upload journal is damaged: {0}")]
    Corrupt(String),
}

/// A snapshot of the queue for `status --json` and drain progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    /// File versions waiting to be uploaded (including those in flight).
    pub pending_uploads: u64,
    /// Their total size.
    pub pending_bytes: u64,
    /// Every pending operation, uploads and metadata changes alike.
    pub pending_ops: u64,
    /// Operations running now.
    pub in_flight: u64,
    /// Recorded conflicts, one human-readable line each.
    pub conflicts: Vec<String>,
    /// Operations in the error state: (path, reason). They are kept and retried.
    pub errors: Vec<(String, String)>,
}

/// What the uploader tells the rest of the program. Every method has an empty default so an
/// implementor picks what it needs; they are called from async tasks and must not block long.
pub trait SyncHooks: Send + Sync {
    /// A journaled operation reached the server. For uploads `node` is the server's view of
    /// the new file when it could be read back (`path` may be a conflict name).
    fn uploaded(&self, path: &RemotePath, node: Option<&Node>) {
        let _ = (path, node);
    }
    /// Our version of `original` was saved beside it as `saved_as` (the server's version
    /// keeps the original name).
    fn conflict(&self, original: &RemotePath, saved_as: &RemotePath) {
        let _ = (original, saved_as);
    }
    /// A local delete was not applied because the server holds a newer version: the file
    /// should reappear locally on the next listing.
    fn kept_remote(&self, path: &RemotePath) {
        let _ = path;
    }
    /// An operation entered the error state (quota, lock, permission...). It stays queued.
    fn error(&self, path: &RemotePath, reason: &str) {
        let _ = (path, reason);
    }
}

/// Hooks that do nothing (tests, or a core that only polls [`Journal::stats`]).
pub struct NoHooks;

impl SyncHooks for NoHooks {}
