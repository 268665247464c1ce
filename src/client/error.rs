//! The client layer's error type: what went wrong talking to Cells, classified so that callers
//! (the file-system core, the uploader, the CLI) can decide without parsing messages.

use crate::names::NameError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("not found: {0}")]
    NotFound(String),
    /// The token is missing, invalid or expired (HTTP 401, S3 `AccessDenied` on a bad token).
    #[error("not authorized: the token was refused ({0}); log in again")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Content lock held by someone else (HTTP 423).
    #[error("locked: {0}")]
    Locked(String),
    /// Quota reached (HTTP 422, S3 `PydioQuotaExceeded`).
    #[error("quota exceeded: {0}")]
    Quota(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("precondition failed: {0}")]
    Precondition(String),
    #[error("requested range not satisfiable: {0}")]
    RangeNotSatisfiable(String),
    /// The server could not be reached: DNS, connect, TLS handshake, reset, timeout, 503.
    #[error("server unreachable: {0}")]
    Offline(String),
    /// The server answered with an error we cannot classify further (5xx).
    #[error("server error {status}: {message}")]
    Server { status: u16, message: String },
    /// The server answered something we cannot use: bad JSON, missing fields, bad XML.
    #[error("unexpected reply from the server: {0}")]
    Protocol(String),
    /// The server named something we refuse to represent locally.
    #[error("refused a name from the server: {0}")]
    InvalidName(#[from] NameError),
    /// A background job (move, copy, delete) finished in error.
    #[error("server job failed: {0}")]
    JobFailed(String),
    /// Bad configuration on our side: a malformed URL, an unusable token string.
    #[error("configuration: {0}")]
    Config(String),
    /// Local I/O while preparing or receiving a transfer.
    #[error("local I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl ClientError {
    /// Worth retrying later without any change on our side.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ClientError::Offline(_) | ClientError::Server { .. } | ClientError::Protocol(_)
        )
    }

    /// The server is out of reach (as opposed to reachable and saying no).
    pub fn is_offline(&self) -> bool {
        matches!(self, ClientError::Offline(_))
    }
}

pub type ClientResult<T> = Result<T, ClientError>;
