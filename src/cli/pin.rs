//! `cells-mount pin PATH...` and `unpin PATH...`: keep files and folders of a mount available
//! offline (or stop). The mount process records the pins and fetches in the background; `pin`
//! shows progress until the content is local (`--no-wait`: returns at once).

use super::progress::{LineRule, Progress};
use super::status::{files_and_bytes, human_bytes};
use cells_mount::control::proto::{Command, PinReport, Reply};
use cells_mount::control::{ControlClient, ControlError, locate};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Plain progress lines (no terminal) at most this often.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

#[derive(clap::Args, Debug)]
pub struct PinArgs {
    /// Files or folders inside a mount (a folder pin covers what appears in it later).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Return once the pins are recorded; the content is fetched in the background.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(clap::Args, Debug)]
pub struct UnpinArgs {
    /// Pinned files or folders; their content stays cached but may be evicted again.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// The paths, grouped by the mount (control socket) they belong to.
type ByMount = BTreeMap<PathBuf, (PathBuf, Vec<String>)>;

fn group(paths: &[PathBuf]) -> Result<ByMount, String> {
    let mut out = ByMount::new();
    for path in paths {
        let located = locate(path)?;
        out.entry(located.socket)
            .or_insert_with(|| (located.mountpoint, Vec::new()))
            .1
            .push(located.relative.unwrap_or_default());
    }
    Ok(out)
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

fn control_error(mountpoint: &std::path::Path, e: ControlError) -> String {
    match e {
        ControlError::NotRunning(_) => format!(
            "no cells-mount process answers for {} (not running, crashed, or an older version)",
            mountpoint.display()
        ),
        e => e.to_string(),
    }
}

pub fn run_pin(args: PinArgs) -> ExitCode {
    let outcome = group(&args.paths).and_then(|groups| {
        let rt = runtime()?;
        let mut clean = true;
        for (socket, (mountpoint, paths)) in groups {
            clean &= rt
                .block_on(pin_in_mount(&socket, paths, args.no_wait))
                .map_err(|e| control_error(&mountpoint, e))?;
        }
        Ok(clean)
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("cells-mount: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Returns false when some files could not be pinned (they were reported).
async fn pin_in_mount(
    socket: &std::path::Path,
    paths: Vec<String>,
    no_wait: bool,
) -> Result<bool, ControlError> {
    let shown = paths.join(", ");
    let mut client = ControlClient::connect(socket).await?;
    client.send(Command::Pin { paths }).await?;
    let mut display = Progress::new(LineRule {
        min_gap: PLAIN_EVERY,
        heartbeat: None,
    });
    loop {
        let reply = client.next().await;
        let report = match reply {
            Ok(Some(Reply::PinProgress(r))) if no_wait => {
                display.finish();
                eprintln!(
                    "pinned; {} being fetched in the background",
                    files_and_bytes(
                        r.files_total.saturating_sub(r.files_done),
                        r.bytes_total.saturating_sub(r.bytes_done)
                    )
                );
                return Ok(true);
            }
            Ok(Some(Reply::PinProgress(r))) if !r.online => {
                display.finish();
                eprintln!(
                    "the server is unreachable: the pin is recorded, and the content will be \
                     fetched when the server is back (see `cells-mount status`)"
                );
                return Ok(true);
            }
            Ok(Some(Reply::PinProgress(r))) => {
                let files = format!("{}/{} files", r.files_done, r.files_total);
                let line = format!("pinning: {}", describe(&r));
                display.show(r.bytes_done, r.bytes_total, files, line);
                continue;
            }
            Ok(Some(Reply::Pinned(r))) => r,
            Ok(Some(other)) => {
                display.finish();
                return Err(ControlError::Protocol(format!(
                    "unexpected reply: {other:?}"
                )));
            }
            Ok(None) => {
                display.finish();
                return Err(ControlError::Protocol(
                    "the mount process went away while pinning".into(),
                ));
            }
            Err(e) => {
                display.finish();
                return Err(e);
            }
        };
        display.finish();
        return Ok(summarize(&shown, &report));
    }
}

fn summarize(shown: &str, r: &PinReport) -> bool {
    let shown = if shown.is_empty() { "the mount" } else { shown };
    eprintln!(
        "pinned {shown}: {} available offline",
        files_and_bytes(r.files_done, r.bytes_done)
    );
    if !r.online {
        eprintln!(
            "the server is unreachable: the rest will be fetched when it is back (see `cells-mount status`)"
        );
    }
    if r.errors.is_empty() {
        return true;
    }
    eprintln!(
        "{} item(s) could not be made available offline (retried in the background):",
        r.errors.len()
    );
    for e in &r.errors {
        eprintln!("  {}: {}", e.path, e.reason);
    }
    false
}

pub fn run_unpin(args: UnpinArgs) -> ExitCode {
    let outcome = group(&args.paths).and_then(|groups| {
        let rt = runtime()?;
        for (socket, (mountpoint, paths)) in groups {
            let reply = rt
                .block_on(ControlClient::request(&socket, Command::Unpin { paths }))
                .map_err(|e| control_error(&mountpoint, e))?;
            match reply {
                Reply::Unpinned { files } => eprintln!(
                    "unpinned: {files} file(s) stay cached but may be evicted when space is needed"
                ),
                other => return Err(format!("unexpected reply from the mount: {other:?}")),
            }
        }
        Ok(())
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cells-mount: {e}");
            ExitCode::FAILURE
        }
    }
}

fn describe(r: &PinReport) -> String {
    format!(
        "{}/{} files, {} of {}",
        r.files_done,
        r.files_total,
        human_bytes(r.bytes_done),
        human_bytes(r.bytes_total)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cells_mount::control::proto::PathError;

    #[test]
    fn progress_text_and_summary_name_counts_and_errors() {
        let r = PinReport {
            online: true,
            files_total: 300,
            files_done: 120,
            bytes_total: 3 << 20,
            bytes_done: 1 << 20,
            errors: vec![],
        };
        assert_eq!(describe(&r), "120/300 files, 1.0 MiB of 3.0 MiB");
        assert!(summarize("docs", &r));
        let failed = PinReport {
            errors: vec![PathError {
                path: "ws/big.iso".into(),
                reason: "not pinned: no room".into(),
            }],
            ..r
        };
        assert!(!summarize("docs", &failed));
    }

    #[test]
    fn paths_outside_any_mount_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = group(&[dir.path().to_owned()]).expect_err("no mount there");
        assert!(err.contains("no cells-mount is running"), "{err}");
    }
}
