//! Translation of lower layers' errors (client, metadata index, cache, task joins) into the
//! one error type the platform adapters know.

use super::api::FsError;
use crate::client::ClientError;
use crate::meta::MetaError;

/// The single mapping from client errors to file-system errors. Exhaustive on purpose: a new
/// client error must be classified here before it compiles.
pub fn from_client_error(e: ClientError) -> FsError {
    match e {
        ClientError::NotFound(_) => FsError::NotFound,
        ClientError::Unauthorized(_) => FsError::Unauthenticated,
        ClientError::Forbidden(m) => FsError::Denied(m),
        ClientError::Locked(_) => FsError::Locked,
        ClientError::Quota(_) => FsError::Quota,
        ClientError::Conflict(_) => FsError::Exists,
        ClientError::Precondition(m) => FsError::Io(format!("changed on the server: {m}")),
        ClientError::RangeNotSatisfiable(m) => {
            FsError::Io(format!("file changed on the server while reading: {m}"))
        }
        ClientError::Offline(_) => FsError::Offline,
        ClientError::Server { status, message } => {
            FsError::Io(format!("server error {status}: {message}"))
        }
        ClientError::Protocol(m) => FsError::Io(format!("unexpected server reply: {m}")),
        ClientError::InvalidName(n) => FsError::InvalidName(n.to_string()),
        ClientError::JobFailed(m) => FsError::Io(format!("server job failed: {m}")),
        ClientError::Config(m) => FsError::Io(format!("configuration: {m}")),
        ClientError::Io(e) => FsError::Io(e.to_string()),
    }
}

pub fn from_meta_error(e: MetaError) -> FsError {
    FsError::Io(e.to_string())
}

pub fn from_cache_error(e: cells_cache::CacheError) -> FsError {
    match e {
        cells_cache::CacheError::Full => FsError::NoSpace,
        other => FsError::Io(format!("cache: {other}")),
    }
}

/// A blocking task panicked or was cancelled at shutdown.
pub fn from_join_error(e: tokio::task::JoinError) -> FsError {
    FsError::Io(format!("internal task failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_map_to_their_file_system_meaning() {
        let cases = [
            (ClientError::NotFound("x".into()), FsError::NotFound),
            (
                ClientError::Unauthorized("t".into()),
                FsError::Unauthenticated,
            ),
            (
                ClientError::Forbidden("no".into()),
                FsError::Denied("no".into()),
            ),
            (ClientError::Locked("l".into()), FsError::Locked),
            (ClientError::Quota("q".into()), FsError::Quota),
            (ClientError::Offline("down".into()), FsError::Offline),
            (ClientError::Conflict("c".into()), FsError::Exists),
        ];
        for (client, fs) in cases {
            assert_eq!(from_client_error(client), fs);
        }
        assert!(matches!(
            from_client_error(ClientError::Server {
                status: 500,
                message: "boom".into()
            }),
            FsError::Io(_)
        ));
        assert!(matches!(
            from_client_error(
                crate::names::RemotePath::parse("a/../b")
                    .unwrap_err()
                    .into()
            ),
            FsError::InvalidName(_)
        ));
    }
}
