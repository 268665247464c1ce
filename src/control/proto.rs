//! The control protocol: one JSON request line from the CLI, one or more JSON reply lines from
//! the mount, newline-delimited and versioned (`{"v":1,"cmd":...}`), with a hard line limit
//! so a confused or hostile peer cannot make either side buffer without bound.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt};

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;
/// Longest request line the server reads (requests are tiny; a path is at most a few KiB).
pub const MAX_REQUEST_LINE: usize = 64 * 1024;
/// Longest reply line the client reads (a status with many conflicts and errors).
pub const MAX_REPLY_LINE: usize = 16 * 1024 * 1024;

/// The command names this build answers, for the "unknown command" reply.
pub const COMMANDS: &[&str] = &["status", "drain", "unmount", "path_state", "pin", "unpin"];

/// What the CLI asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// One [`Reply::Status`].
    Status,
    /// [`Reply::Progress`] lines until the queue is empty or holds only errors, then one
    /// [`Reply::Drained`].
    Drain,
    /// One [`Reply::Unmounting`] at once, then one [`Reply::Unmounted`] when the mount is gone.
    Unmount {
        #[serde(default)]
        force: bool,
    },
    /// One [`Reply::PathState`]; `path` is relative to the mount root, `/`-separated.
    PathState { path: String },
    /// Records pins on `paths` (relative to the mount root, `""` = all of it), then
    /// [`Reply::PinProgress`] lines until the pinned content is local, then one
    /// [`Reply::Pinned`]. A client may hang up after the first line (`--no-wait`).
    Pin { paths: Vec<String> },
    /// One [`Reply::Unpinned`]: the pins are gone, their content may be evicted again.
    Unpin { paths: Vec<String> },
}

/// A request line: the version, then the command's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub v: u32,
    #[serde(flatten)]
    pub cmd: Command,
}

impl Request {
    pub fn new(cmd: Command) -> Self {
        Self { v: VERSION, cmd }
    }

    /// Parses a request line. Errors are meant for the peer: they say what was wrong and
    /// what this build understands.
    pub fn parse(line: &[u8]) -> Result<Request, String> {
        let value: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| format!("request is not JSON: {e}"))?;
        let v = value.get("v").and_then(serde_json::Value::as_u64);
        if v != Some(u64::from(VERSION)) {
            return Err(format!(
                "unsupported protocol version {}; this mount speaks v{VERSION}",
                value
                    .get("v")
                    .map_or("(none)".to_string(), |v| v.to_string())
            ));
        }
        let Some(cmd) = value
            .get("cmd")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
        else {
            return Err("request has no \"cmd\"".into());
        };
        if !COMMANDS.contains(&cmd.as_str()) {
            return Err(format!(
                "unknown command {cmd:?}; known commands: {}",
                COMMANDS.join(", ")
            ));
        }
        serde_json::from_value(value).map_err(|e| format!("bad {cmd} request: {e}"))
    }
}

/// A path and why its operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathError {
    pub path: String,
    pub reason: String,
}

/// Everything `status --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    pub server: String,
    pub workspace: Option<String>,
    pub mountpoint: String,
    pub online: bool,
    /// When the server became unreachable (RFC 3339), `None` while online.
    pub offline_since: Option<String>,
    pub pending_uploads: u64,
    pub pending_bytes: u64,
    pub pending_ops: u64,
    pub in_flight: u64,
    pub conflicts: Vec<String>,
    pub errors: Vec<PathError>,
    pub cache_bytes: u64,
    pub cache_limit_bytes: u64,
    pub cache_pinned_bytes: u64,
    /// Files covered by pins, the sum of their sizes, and how many are not all local yet.
    #[serde(default)]
    pub pinned_files: u64,
    #[serde(default)]
    pub pinned_bytes: u64,
    #[serde(default)]
    pub pin_pending_files: u64,
}

/// Where a pin request stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinReport {
    pub online: bool,
    pub files_total: u64,
    pub files_done: u64,
    pub bytes_total: u64,
    pub bytes_done: u64,
    /// Files that could not be pinned or fetched (retried in the background).
    pub errors: Vec<PathError>,
}

/// The upload queue as drain progress and unmount outcome report it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueReport {
    pub online: bool,
    pub pending_uploads: u64,
    pub pending_bytes: u64,
    pub pending_ops: u64,
    pub in_flight: u64,
    pub errors: Vec<PathError>,
}

/// The state of one path, as `user.cells.state` says, refined by the upload journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathStateReport {
    pub path: String,
    /// online-only, partial, cached, pinned, pending, conflict, error, folder...
    pub state: String,
    /// Why, for `error` (the server's refusal) and `conflict` (where our version went).
    pub detail: Option<String>,
}

/// What the mount answers; one per line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    Status(StatusReport),
    Progress(QueueReport),
    Drained(QueueReport),
    /// The unmount was accepted; what stays queued for the next mount.
    Unmounting(QueueReport),
    /// The mount is gone (`error` set when unmounting failed).
    Unmounted {
        error: Option<String>,
    },
    PathState(PathStateReport),
    PinProgress(PinReport),
    /// Every pinned file was handled: local, or listed in `errors`.
    Pinned(PinReport),
    /// The pins were removed; `files` had their content released to eviction.
    Unpinned {
        files: u64,
    },
    Error {
        message: String,
    },
}

/// A reply line: the version, then the reply's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyLine {
    pub v: u32,
    #[serde(flatten)]
    pub reply: Reply,
}

/// One JSON line (with its newline) for `value`.
pub fn encode_line(value: &impl Serialize) -> Vec<u8> {
    // Serializing our own plain structs cannot fail; an empty object keeps the stream valid.
    let mut line = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    line.push(b'\n');
    line
}

pub fn encode_reply(reply: Reply) -> Vec<u8> {
    encode_line(&ReplyLine { v: VERSION, reply })
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LineError {
    #[error("line longer than {0} bytes")]
    TooLong(usize),
    #[error("connection closed")]
    Closed,
    #[error("{0}")]
    Io(String),
}

/// Reads one line of at most `max` bytes (newline excluded). A longer line is refused
/// without reading the rest of it.
pub async fn read_line<R: AsyncBufRead + AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Vec<u8>, LineError> {
    let mut line = Vec::new();
    let mut limited = reader.take(max as u64 + 1);
    let n = limited
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| LineError::Io(e.to_string()))?;
    if n == 0 {
        return Err(LineError::Closed);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        return Ok(line);
    }
    if line.len() > max {
        return Err(LineError::TooLong(max));
    }
    // The peer closed the connection after a last line without a newline.
    Ok(line)
}

/// Parses a reply line.
pub fn parse_reply(line: &[u8]) -> Result<Reply, String> {
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| format!("reply is not JSON: {e}"))?;
    if value.get("v").and_then(serde_json::Value::as_u64) != Some(u64::from(VERSION)) {
        return Err("the mount speaks another protocol version (a different build?)".into());
    }
    serde_json::from_value::<ReplyLine>(value)
        .map(|l| l.reply)
        .map_err(|e| format!("unexpected reply: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for cmd in [
            Command::Status,
            Command::Drain,
            Command::Unmount { force: true },
            Command::PathState {
                path: "a dir/é.txt".into(),
            },
            Command::Pin {
                paths: vec!["a".into(), "".into()],
            },
            Command::Unpin {
                paths: vec!["b/c".into()],
            },
        ] {
            let line = encode_line(&Request::new(cmd.clone()));
            assert_eq!(line.last(), Some(&b'\n'));
            assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
            let parsed = Request::parse(&line[..line.len() - 1]).expect("parse");
            assert_eq!(parsed.cmd, cmd);
        }
        let r = Request::parse(br#"{"v":1,"cmd":"unmount"}"#).expect("force defaults");
        assert_eq!(r.cmd, Command::Unmount { force: false });
    }

    #[test]
    fn replies_round_trip() {
        let replies = [
            Reply::Progress(QueueReport {
                online: false,
                pending_uploads: 3,
                pending_bytes: 13_002_342,
                pending_ops: 4,
                in_flight: 1,
                errors: vec![PathError {
                    path: "/ws/a".into(),
                    reason: "quota exceeded".into(),
                }],
            }),
            Reply::Unmounted { error: None },
            Reply::Pinned(PinReport {
                online: true,
                files_total: 3,
                files_done: 2,
                bytes_total: 30,
                bytes_done: 20,
                errors: vec![PathError {
                    path: "ws/x".into(),
                    reason: "not pinned: no room".into(),
                }],
            }),
            Reply::Unpinned { files: 4 },
            Reply::Error {
                message: "nope".into(),
            },
            Reply::PathState(PathStateReport {
                path: "x".into(),
                state: "cached".into(),
                detail: None,
            }),
        ];
        for reply in replies {
            let line = encode_reply(reply.clone());
            assert_eq!(parse_reply(&line[..line.len() - 1]), Ok(reply));
        }
    }

    #[test]
    fn bad_requests_get_clear_errors() {
        let unknown = Request::parse(br#"{"v":1,"cmd":"format_disk"}"#).unwrap_err();
        assert!(
            unknown.contains("unknown command \"format_disk\"") && unknown.contains("status"),
            "{unknown}"
        );
        let version = Request::parse(br#"{"v":2,"cmd":"status"}"#).unwrap_err();
        assert!(version.contains("version 2"), "{version}");
        assert!(Request::parse(br#"{"cmd":"status"}"#).is_err());
        assert!(Request::parse(b"status").unwrap_err().contains("not JSON"));
        let missing = Request::parse(br#"{"v":1,"cmd":"path_state"}"#).unwrap_err();
        assert!(missing.contains("path"), "{missing}");
        assert!(parse_reply(br#"{"v":9,"type":"status"}"#).is_err());
    }

    #[tokio::test]
    async fn oversized_lines_are_refused_and_short_ones_read() {
        let mut input = vec![b'x'; 100];
        input.push(b'\n');
        let mut reader = tokio::io::BufReader::new(&input[..]);
        assert_eq!(
            read_line(&mut reader, 50).await,
            Err(LineError::TooLong(50))
        );
        let mut reader = tokio::io::BufReader::new(&b"one\ntwo"[..]);
        assert_eq!(read_line(&mut reader, 50).await, Ok(b"one".to_vec()));
        assert_eq!(read_line(&mut reader, 50).await, Ok(b"two".to_vec()));
        assert_eq!(read_line(&mut reader, 50).await, Err(LineError::Closed));
        // Exactly at the limit is fine.
        let mut exact = vec![b'y'; 50];
        exact.push(b'\n');
        let mut reader = tokio::io::BufReader::new(&exact[..]);
        assert_eq!(read_line(&mut reader, 50).await.map(|l| l.len()), Ok(50));
    }
}
