//! `cells-mount unmount MOUNTPOINT [--force]`: waits for the upload queue to drain (with a
//! progress display), then asks the mount process to unmount and exit. `--force` skips the
//! wait and says what stays queued. Ctrl-C during the wait leaves the mount as it is. Without
//! a reachable control socket (crashed mount, older build) it falls back to fusermount.

use super::mountpoint;
use super::progress::{LineRule, Progress};
use super::status::files_and_bytes;
use cells_mount::control::proto::{Command, QueueReport, Reply};
use cells_mount::control::socket::{canonical_mountpoint, socket_path};
use cells_mount::control::{ControlClient, ControlError};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// How long the mount process may take to unmount and exit once asked.
const UNMOUNT_DEADLINE: Duration = Duration::from_secs(120);
/// Plain progress lines (no terminal) at most this often unless the numbers change.
const PLAIN_EVERY: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug)]
pub struct UnmountArgs {
    pub mountpoint: PathBuf,
    /// Unmount now; pending uploads stay queued and resume at the next mount.
    #[arg(long)]
    pub force: bool,
}

enum Failure {
    /// The control socket cannot be used: unmount the old way.
    NoControl(String),
    Interrupted,
    Other(String),
}

pub fn run(args: UnmountArgs) -> ExitCode {
    let socket = canonical_mountpoint(&args.mountpoint).and_then(|c| socket_path(&c));
    let outcome = match &socket {
        Ok(socket) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::Other(format!("cannot start the runtime: {e}")))
            .and_then(|rt| rt.block_on(controlled(&args, socket))),
        Err(e) => Err(Failure::NoControl(e.clone())),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Interrupted) => {
            eprintln!(
                "cells-mount: interrupted; {} is still mounted and keeps uploading",
                args.mountpoint.display()
            );
            ExitCode::from(130)
        }
        Err(Failure::Other(e)) => {
            eprintln!("cells-mount: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::NoControl(why)) => {
            eprintln!(
                "cells-mount: warning: cannot reach the mount's control socket ({why}); \
                 unmounting without waiting for uploads (anything pending stays queued for the \
                 next mount)"
            );
            match mountpoint::unmount(&args.mountpoint) {
                Ok(()) => {
                    if let Ok(socket) = &socket {
                        remove_dead_socket(socket);
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("cells-mount: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn controlled(args: &UnmountArgs, socket: &Path) -> Result<(), Failure> {
    let connect = |e: ControlError| match e {
        ControlError::NotRunning(_) | ControlError::Io(_) => Failure::NoControl(e.to_string()),
        e => Failure::Other(e.to_string()),
    };
    if !args.force {
        let mut client = ControlClient::connect(socket).await.map_err(connect)?;
        client.send(Command::Drain).await.map_err(connect)?;
        let left = tokio::select! {
            left = watch_drain(&mut client) => left?,
            _ = tokio::signal::ctrl_c() => return Err(Failure::Interrupted),
        };
        report_errors(&left);
    }
    let mut client = ControlClient::connect(socket).await.map_err(connect)?;
    client
        .send(Command::Unmount { force: args.force })
        .await
        .map_err(connect)?;
    match client.next().await {
        Ok(Some(Reply::Unmounting(left))) => {
            if args.force {
                report_errors(&left);
            }
            report_left(&left);
        }
        Ok(other) => return Err(Failure::Other(format!("unexpected reply: {other:?}"))),
        Err(e) => return Err(Failure::Other(e.to_string())),
    }
    let shown = args.mountpoint.display();
    let done = tokio::time::timeout(UNMOUNT_DEADLINE, client.next()).await;
    match done {
        Ok(Ok(Some(Reply::Unmounted { error: None }))) => {}
        Ok(Ok(Some(Reply::Unmounted { error: Some(e) }))) => {
            return Err(Failure::Other(format!("unmounting {shown} failed: {e}")));
        }
        Err(_) => {
            return Err(Failure::Other(format!(
                "{shown}: the mount process did not finish unmounting within {UNMOUNT_DEADLINE:?}"
            )));
        }
        // The process went away without a last word: trust the mountpoint's state.
        Ok(_) => {}
    }
    match mountpoint::inspect(&args.mountpoint) {
        Ok(mountpoint::MountpointState::Ready) => {
            eprintln!("unmounted {shown}");
            Ok(())
        }
        Ok(state) => Err(Failure::Other(format!(
            "{shown} is still mounted ({state:?}); close the programs using it and retry"
        ))),
        Err(e) => Err(Failure::Other(e)),
    }
}

/// Shows drain progress until the mount says the queue is drained; returns what is left.
async fn watch_drain(client: &mut ControlClient) -> Result<QueueReport, Failure> {
    let mut display = Progress::new(LineRule {
        min_gap: Duration::ZERO,
        heartbeat: Some(PLAIN_EVERY),
    });
    // The total grows when files are written during the wait.
    let mut total = 0;
    loop {
        match client.next().await {
            Ok(Some(Reply::Progress(q))) => {
                total = total.max(q.pending_bytes);
                let text = describe(&q);
                display.show(total - q.pending_bytes, total, text.clone(), text);
            }
            Ok(Some(Reply::Drained(q))) => {
                display.finish();
                return Ok(q);
            }
            Ok(Some(other)) => {
                display.finish();
                return Err(Failure::Other(format!("unexpected reply: {other:?}")));
            }
            Ok(None) => {
                display.finish();
                return Err(Failure::Other(
                    "the mount process went away while uploads were draining".into(),
                ));
            }
            Err(e) => {
                display.finish();
                return Err(Failure::Other(e.to_string()));
            }
        }
    }
}

fn describe(q: &QueueReport) -> String {
    let what = if q.pending_uploads > 0 {
        format!(
            "uploading: {} left",
            files_and_bytes(q.pending_uploads, q.pending_bytes)
        )
    } else {
        format!("applying {} pending changes", q.pending_ops)
    };
    if q.online {
        what
    } else {
        format!("{what} (server unreachable; waiting for it, Ctrl-C to stop waiting)")
    }
}

/// Operations the server refused stay journaled; say which, and why.
fn report_errors(q: &QueueReport) {
    if q.errors.is_empty() {
        return;
    }
    eprintln!(
        "{} change(s) could not be uploaded and stay queued (retried at the next mount):",
        q.errors.len()
    );
    for e in &q.errors {
        eprintln!("  {}: {}", e.path, e.reason);
    }
}

fn report_left(q: &QueueReport) {
    if q.pending_ops == 0 {
        return;
    }
    if q.pending_uploads > 0 {
        println!(
            "{} left pending; they will upload at the next mount",
            files_and_bytes(q.pending_uploads, q.pending_bytes)
        );
    } else {
        println!(
            "{} change(s) left pending; they will be applied at the next mount",
            q.pending_ops
        );
    }
}

/// Removes the socket file a crashed mount left, once nobody answers on it.
fn remove_dead_socket(socket: &Path) {
    use std::os::unix::fs::FileTypeExt;
    let is_socket = std::fs::symlink_metadata(socket).is_ok_and(|m| m.file_type().is_socket());
    let refused = std::os::unix::net::UnixStream::connect(socket)
        .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
    if is_socket && refused {
        let _ = std::fs::remove_file(socket);
    }
}
