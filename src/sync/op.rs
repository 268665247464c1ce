//! One journaled operation as the journal holds it in memory and hands it to the uploader.

use crate::client::ContentVersion;
use crate::names::RemotePath;

/// What a pending operation does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// Upload the staged file `staging` (a name inside `STATE/staging/`) as `path`.
    Upload {
        path: RemotePath,
        staging: String,
        size: u64,
        /// Cells hash and plain MD5 of the staged content, computed when it was journaled.
        cells_hash: String,
        md5: String,
        /// The server version this edit started from; `None` for a new file.
        base: Option<ContentVersion>,
    },
    Mkdir {
        path: RemotePath,
    },
    /// Delete `path`; for a file, `base` is the version the user saw (a newer one is kept).
    Delete {
        path: RemotePath,
        base: Option<ContentVersion>,
    },
    Rename {
        from: RemotePath,
        to: RemotePath,
    },
}

impl OpKind {
    /// Every path the operation touches: order is kept between operations whose paths are
    /// equal, or one below the other.
    pub fn paths(&self) -> Vec<&RemotePath> {
        match self {
            OpKind::Upload { path, .. } | OpKind::Mkdir { path } | OpKind::Delete { path, .. } => {
                vec![path]
            }
            OpKind::Rename { from, to } => vec![from, to],
        }
    }

    /// The path reported to the user for this operation.
    pub fn main_path(&self) -> &RemotePath {
        match self {
            OpKind::Upload { path, .. } | OpKind::Mkdir { path } | OpKind::Delete { path, .. } => {
                path
            }
            OpKind::Rename { from, .. } => from,
        }
    }

    pub(crate) fn label(&self) -> &'static str {
        match self {
            OpKind::Upload { .. } => "upload",
            OpKind::Mkdir { .. } => "mkdir",
            OpKind::Delete { .. } => "delete",
            OpKind::Rename { .. } => "rename",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpState {
    /// Waiting for its turn, or for its backoff to pass (offline, transient error).
    Queued,
    /// Refused by the server (quota, lock, permission...) or failing repeatedly: kept,
    /// reported, retried with a long backoff.
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// Position in line; coalesced saves keep the position of the first.
    pub seq: i64,
    pub kind: OpKind,
    pub state: OpState,
    pub attempts: u32,
    /// Not retried before this time (Unix milliseconds).
    pub not_before_ms: i64,
    pub last_error: Option<String>,
    /// Where the bytes of an upload were last being sent; set (durably) before each upload
    /// starts so that a restart knows an upload may have been interrupted there.
    pub started_target: Option<RemotePath>,
}

impl Op {
    /// A new operation, queued and never tried.
    pub fn queued(seq: i64, kind: OpKind) -> Self {
        Op {
            seq,
            kind,
            state: OpState::Queued,
            attempts: 0,
            not_before_ms: 0,
            last_error: None,
            started_target: None,
        }
    }
}
