//! The mount side of the control channel: a Unix socket served by a tokio task of the mount
//! process. Each connection: peer uid checked, one request line read (bounded, with a
//! deadline), reply lines written, closed.

use super::proto::{self, Command, LineError, Reply, Request};
use super::socket::{effective_uid, ensure_private_dir, peer_allowed, socket_path};
use super::view::MountView;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

/// How long a client may take to send its request line.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// How long `finish` lets connections deliver their last line.
const FINISH_GRACE: Duration = Duration::from_secs(2);
/// Drain progress is sent at least this often, even when nothing changed.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// A client asked the mount to go away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnmountRequest {
    /// Unmount without waiting for the queue (the CLI drains first otherwise).
    pub force: bool,
}

/// How the unmount went, once known (`None` until then).
pub(super) type Outcome = Option<Result<(), String>>;

/// The running control server. Dropping it stops serving and removes the socket.
pub struct ControlServer {
    path: PathBuf,
    accept: Option<JoinHandle<()>>,
    finished: watch::Sender<Outcome>,
}

pub(super) struct Shared {
    pub(super) view: Arc<MountView>,
    unmount: mpsc::Sender<UnmountRequest>,
    pub(super) finished: watch::Receiver<Outcome>,
}

impl ControlServer {
    /// Binds the socket derived from `view.mountpoint` and serves it. Needs a tokio runtime.
    /// A socket file left by a dead process is replaced; a live one is an error.
    pub fn start(
        view: Arc<MountView>,
        unmount: mpsc::Sender<UnmountRequest>,
    ) -> Result<ControlServer, String> {
        let path = socket_path(&view.mountpoint)?;
        Self::start_at(&path, view, unmount)
    }

    /// [`start`](Self::start) on an explicit socket path (its directory is made private).
    pub fn start_at(
        path: &Path,
        view: Arc<MountView>,
        unmount: mpsc::Sender<UnmountRequest>,
    ) -> Result<ControlServer, String> {
        if let Some(dir) = path.parent() {
            ensure_private_dir(dir)?;
        }
        let listener = bind(path)?;
        let (finished, finished_rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            view,
            unmount,
            finished: finished_rx,
        });
        let accept = tokio::spawn(accept_loop(listener, shared));
        Ok(ControlServer {
            path: path.to_owned(),
            accept: Some(accept),
            finished,
        })
    }

    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// Tells clients waiting on an unmount how it went, lets them read it, then stops
    /// serving and removes the socket.
    pub async fn finish(mut self, outcome: Result<(), String>) {
        self.finished.send_replace(Some(outcome));
        if let Some(accept) = self.accept.take() {
            let _ = accept.await;
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `path`, first removing a socket file nobody answers on. Mode 0600.
fn bind(path: &Path) -> Result<UnixListener, String> {
    let shown = path.display();
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(format!("{shown} exists and is not a socket; remove it"));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "another cells-mount process already serves this mountpoint ({shown})"
            ));
        }
        std::fs::remove_file(path).map_err(|e| format!("removing stale {shown}: {e}"))?;
        tracing::debug!("removed a stale control socket {shown}");
    }
    let listener = UnixListener::bind(path).map_err(|e| format!("binding {shown}: {e}"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("chmod 600 {shown}: {e}"))?;
    Ok(listener)
}

async fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    let mut finished = shared.finished.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, shared.clone()));
                }
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!("control socket: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = wait_finished(&mut finished) => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(FINISH_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}

async fn serve_connection(stream: UnixStream, shared: Arc<Shared>) {
    let allowed = stream
        .peer_cred()
        .map(|c| peer_allowed(c.uid(), effective_uid()))
        .unwrap_or(false);
    let (read, mut write) = stream.into_split();
    if !allowed {
        tracing::warn!("control socket: refused a connection from another user");
        let _ = send(
            &mut write,
            Reply::Error {
                message: "permission denied: this mount belongs to another user".into(),
            },
        )
        .await;
        return;
    }
    let mut reader = BufReader::new(read);
    let line = match tokio::time::timeout(
        REQUEST_DEADLINE,
        proto::read_line(&mut reader, proto::MAX_REQUEST_LINE),
    )
    .await
    {
        Ok(Ok(line)) => line,
        Ok(Err(LineError::TooLong(max))) => {
            let message = format!("request line longer than {max} bytes; refused");
            let _ = send(&mut write, Reply::Error { message }).await;
            return;
        }
        Ok(Err(_)) | Err(_) => return,
    };
    let request = match Request::parse(&line) {
        Ok(r) => r,
        Err(message) => {
            let _ = send(&mut write, Reply::Error { message }).await;
            return;
        }
    };
    let _ = handle(request.cmd, &shared, &mut write).await;
}

async fn handle(cmd: Command, shared: &Shared, write: &mut OwnedWriteHalf) -> std::io::Result<()> {
    let view = shared.view.clone();
    match cmd {
        Command::Status => {
            let reply = blocking(move || Reply::Status(view.status())).await;
            send(write, reply).await
        }
        Command::PathState { path } => {
            let reply = match view.path_state(&path).await {
                Ok(state) => Reply::PathState(state),
                Err(message) => Reply::Error { message },
            };
            send(write, reply).await
        }
        Command::Drain => drain(shared, write).await,
        Command::Pin { paths } => super::pin_server::pin(shared, paths, write).await,
        Command::Unpin { paths } => super::pin_server::unpin(shared, paths, write).await,
        Command::Unmount { force } => {
            let report = blocking(move || Reply::Unmounting(view.queue())).await;
            if shared.unmount.try_send(UnmountRequest { force }).is_err()
                && !shared.unmount.is_closed()
            {
                tracing::debug!("an unmount is already under way");
            }
            send(write, report).await?;
            let mut finished = shared.finished.clone();
            let error = match wait_finished(&mut finished).await {
                Some(Ok(())) => None,
                Some(Err(e)) => Some(e),
                None => Some("the mount process is ending".into()),
            };
            send(write, Reply::Unmounted { error }).await
        }
    }
}

/// Streams queue progress until only errors (or nothing) remain.
async fn drain(shared: &Shared, write: &mut OwnedWriteHalf) -> std::io::Result<()> {
    let view = &shared.view;
    let changed = view.changed();
    let mut finished = shared.finished.clone();
    loop {
        let notified = changed.as_ref().map(|n| n.clone().notified_owned());
        let mut notified = notified.map(Box::pin);
        if let Some(n) = notified.as_mut() {
            n.as_mut().enable();
        }
        let v = view.clone();
        let reply = blocking(move || match v.drained() {
            true => Reply::Drained(v.queue()),
            false => Reply::Progress(v.queue()),
        })
        .await;
        let last = !matches!(reply, Reply::Progress(_));
        send(write, reply).await?;
        if last {
            return Ok(());
        }
        let wake = async {
            match notified {
                Some(n) => n.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::timeout(PROGRESS_EVERY, wake) => {}
            _ = wait_finished(&mut finished) => {
                let message = "the mount is being unmounted".to_string();
                return send(write, Reply::Error { message }).await;
            }
        }
    }
}

/// Waits until the mount process reports how unmounting went (`None`: it went away).
pub(super) async fn wait_finished(finished: &mut watch::Receiver<Outcome>) -> Outcome {
    finished
        .wait_for(Option::is_some)
        .await
        .ok()
        .and_then(|o| o.clone())
}

/// Runs `f` (journal and cache reads block) off the executor; a panic becomes an error reply.
async fn blocking(f: impl FnOnce() -> Reply + Send + 'static) -> Reply {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Reply::Error {
            message: format!("internal error: {e}"),
        })
}

pub(super) async fn send(write: &mut OwnedWriteHalf, reply: Reply) -> std::io::Result<()> {
    write.write_all(&proto::encode_reply(reply)).await?;
    write.flush().await
}
