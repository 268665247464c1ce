//! `cells-mount status PATH [--json]`: the state of a running mount (connection, upload
//! queue, conflicts, errors, cache), or of one path inside it, asked over the control socket.

use cells_mount::control::proto::{Command, PathStateReport, Reply, StatusReport};
use cells_mount::control::{ControlClient, ControlError, locate};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// A mountpoint, or a file or folder inside a mount.
    pub path: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: StatusArgs) -> ExitCode {
    match query(&args) {
        Ok(text) => {
            // Not println!: it panics when the reader has gone (`status --json | grep -q`).
            use std::io::Write;
            match writeln!(std::io::stdout().lock(), "{text}") {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("cells-mount: cannot write the status: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("cells-mount: {e}");
            ExitCode::FAILURE
        }
    }
}

fn query(args: &StatusArgs) -> Result<String, String> {
    let located = locate(&args.path)?;
    let cmd = match &located.relative {
        None => Command::Status,
        Some(path) => Command::PathState { path: path.clone() },
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let reply = rt
        .block_on(ControlClient::request(&located.socket, cmd))
        .map_err(|e| match e {
            ControlError::NotRunning(_) => format!(
                "no cells-mount process answers for {} (the mount is not running, crashed, or \
                 was started by an older version)",
                located.mountpoint.display()
            ),
            e => e.to_string(),
        })?;
    match reply {
        Reply::Status(s) if args.json => Ok(json(&s)),
        Reply::Status(s) => Ok(status_table(&s)),
        Reply::PathState(p) if args.json => Ok(json(&p)),
        Reply::PathState(p) => Ok(path_line(&args.path, &p)),
        other => Err(format!("unexpected reply from the mount: {other:?}")),
    }
}

fn json(value: &impl serde::Serialize) -> String {
    // Our own plain structs always serialize.
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn status_table(s: &StatusReport) -> String {
    let mut out = Vec::new();
    let row = |label: &str, value: String| format!("{label:<12}{value}");
    out.push(row("Mount", s.mountpoint.clone()));
    out.push(row("Server", s.server.clone()));
    out.push(row(
        "Workspace",
        s.workspace.clone().unwrap_or_else(|| "(all)".into()),
    ));
    out.push(row(
        "Connection",
        match &s.offline_since {
            None => "online".into(),
            Some(since) => format!("OFFLINE since {since}"),
        },
    ));
    out.push(row(
        "Uploads",
        if s.pending_ops == 0 {
            "up to date".into()
        } else {
            format!(
                "{} ({} changes queued, {} running)",
                files_and_bytes(s.pending_uploads, s.pending_bytes),
                s.pending_ops,
                s.in_flight
            )
        },
    ));
    out.push(row("Conflicts", s.conflicts.len().to_string()));
    for c in &s.conflicts {
        out.push(format!("  {c}"));
    }
    out.push(row("Errors", s.errors.len().to_string()));
    for e in &s.errors {
        out.push(format!("  {}: {}", e.path, e.reason));
    }
    out.push(row(
        "Cache",
        format!(
            "{} of {} used ({} pinned)",
            human_bytes(s.cache_bytes),
            human_bytes(s.cache_limit_bytes),
            human_bytes(s.cache_pinned_bytes)
        ),
    ));
    out.push(row(
        "Pinned",
        match (s.pinned_files, s.pin_pending_files) {
            (0, _) => "nothing".into(),
            (n, 0) => format!("{}, all offline", files_and_bytes(n, s.pinned_bytes)),
            (n, p) => format!("{}, {p} still fetching", files_and_bytes(n, s.pinned_bytes)),
        },
    ));
    out.join("\n")
}

fn path_line(shown: &std::path::Path, p: &PathStateReport) -> String {
    match &p.detail {
        Some(d) => format!("{}: {} ({d})", shown.display(), p.state),
        None => format!("{}: {}", shown.display(), p.state),
    }
}

/// "3 files (12.4 MiB)".
pub fn files_and_bytes(files: u64, bytes: u64) -> String {
    let noun = if files == 1 { "file" } else { "files" };
    format!("{files} {noun} ({})", human_bytes(bytes))
}

/// Binary units with one decimal: 12.4 MiB.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_humans_write_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(13_002_342), "12.4 MiB");
        assert_eq!(human_bytes(10 << 30), "10.0 GiB");
        assert_eq!(files_and_bytes(3, 13_002_342), "3 files (12.4 MiB)");
        assert_eq!(files_and_bytes(1, 5), "1 file (5 B)");
    }

    #[test]
    fn the_table_names_offline_errors_and_conflicts() {
        let s = StatusReport {
            server: "https://c".into(),
            workspace: None,
            mountpoint: "/m".into(),
            online: false,
            offline_since: Some("2025-01-01T00:00:00Z".into()),
            pending_uploads: 2,
            pending_bytes: 2048,
            pending_ops: 3,
            in_flight: 0,
            conflicts: vec!["/a: local version saved as /a (conflict)".into()],
            errors: vec![cells_mount::control::proto::PathError {
                path: "/b".into(),
                reason: "quota exceeded".into(),
            }],
            cache_bytes: 0,
            cache_limit_bytes: 1 << 30,
            cache_pinned_bytes: 0,
            pinned_files: 3,
            pinned_bytes: 3 << 20,
            pin_pending_files: 1,
        };
        let t = status_table(&s);
        for needle in [
            "OFFLINE since 2025",
            "2 files (2.0 KiB)",
            "/b: quota exceeded",
            "saved as",
            "1.0 GiB",
            "3 files (3.0 MiB), 1 still fetching",
        ] {
            assert!(t.contains(needle), "{needle} missing in:\n{t}");
        }
    }
}
