//! The CLI side of the control channel: find the mount a path belongs to, connect to its
//! socket, send one request, read reply lines.

use super::proto::{self, Command, LineError, Reply, Request};
use super::socket::{canonical_mountpoint, socket_path};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No process answers: not mounted, mounted by an older build, or the mount died.
    #[error("no cells-mount process answers for {0}")]
    NotRunning(String),
    #[error("control socket {0}")]
    Io(String),
    #[error("{0}")]
    Protocol(String),
    /// The mount answered with an error reply.
    #[error("{0}")]
    Refused(String),
}

/// Where a path is, relative to a running mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub mountpoint: PathBuf,
    pub socket: PathBuf,
    /// The path below the mount root (`/`-separated), `None` for the mountpoint itself.
    pub relative: Option<String>,
}

/// Finds the mount `path` is, or is inside of: the nearest ancestor with a control socket.
pub fn locate(path: &Path) -> Result<Located, String> {
    let canonical = canonical_mountpoint(path)?;
    for ancestor in canonical.ancestors() {
        let socket = socket_path(ancestor)?;
        if std::fs::symlink_metadata(&socket).is_err() {
            continue;
        }
        let rest = canonical.strip_prefix(ancestor).unwrap_or(Path::new(""));
        let relative = if rest.as_os_str().is_empty() {
            None
        } else {
            let text = rest
                .to_str()
                .ok_or_else(|| format!("{}: the path is not valid UTF-8", path.display()))?;
            Some(text.to_owned())
        };
        return Ok(Located {
            mountpoint: ancestor.to_owned(),
            socket,
            relative,
        });
    }
    Err(format!(
        "no cells-mount is running at {} (nor at a folder above it)",
        path.display()
    ))
}

/// One connection to a mount's control socket.
pub struct ControlClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl ControlClient {
    pub async fn connect(socket: &Path) -> Result<ControlClient, ControlError> {
        let stream = UnixStream::connect(socket)
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::NotFound | ErrorKind::ConnectionRefused => {
                    ControlError::NotRunning(socket.display().to_string())
                }
                _ => ControlError::Io(format!("{}: {e}", socket.display())),
            })?;
        let (read, writer) = stream.into_split();
        Ok(ControlClient {
            reader: BufReader::new(read),
            writer,
        })
    }

    pub async fn send(&mut self, cmd: Command) -> Result<(), ControlError> {
        let line = proto::encode_line(&Request::new(cmd));
        self.writer
            .write_all(&line)
            .await
            .map_err(|e| ControlError::Io(e.to_string()))
    }

    /// The next reply; `None` when the mount closed the connection. An error reply is
    /// returned as [`ControlError::Refused`].
    pub async fn next(&mut self) -> Result<Option<Reply>, ControlError> {
        let line = match proto::read_line(&mut self.reader, proto::MAX_REPLY_LINE).await {
            Ok(line) => line,
            Err(LineError::Closed) => return Ok(None),
            Err(e) => return Err(ControlError::Io(e.to_string())),
        };
        match proto::parse_reply(&line).map_err(ControlError::Protocol)? {
            Reply::Error { message } => Err(ControlError::Refused(message)),
            reply => Ok(Some(reply)),
        }
    }

    /// Connects, sends `cmd`, and returns the first reply.
    pub async fn request(socket: &Path, cmd: Command) -> Result<Reply, ControlError> {
        let mut client = Self::connect(socket).await?;
        client.send(cmd).await?;
        client
            .next()
            .await?
            .ok_or_else(|| ControlError::Protocol("the mount closed the connection".into()))
    }
}
