//! Logging set-up: a filter from `-v`/`RUST_LOG`/`CELLS_MOUNT_LOG` that always caps the
//! targets known to log secrets, to stderr and/or to daily-rotated files under a mount's
//! state directory (`logs/cells-mount.YYYY-MM-DD.log`, the newest [`KEPT_LOG_FILES`] kept).

use std::path::Path;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
pub use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Daily files kept: a week of history, bounded disk use.
pub const KEPT_LOG_FILES: usize = 7;
/// Name of the log directory inside a state directory.
pub const LOG_DIR: &str = "logs";
const PREFIX: &str = "cells-mount";
const SUFFIX: &str = "log";

/// Targets whose verbose logs would contain secrets: the SigV4 signer logs its credentials
/// (the access key is the user's token) and the canonical request at TRACE level; reqwest's
/// and hyper's connection traces may show headers. They are capped whatever `RUST_LOG` says.
pub const SECRET_BEARING_TARGETS: &[&str] = &[
    "aws_sigv4",
    "aws_smithy_runtime_api",
    "aws_credential_types",
    "reqwest",
    "hyper",
    "hyper_util",
    "h2",
    "oauth2",
    "zbus",
    // The event feed subscribes with the token inside a websocket frame.
    "tungstenite",
    "tokio_tungstenite",
];

/// `CELLS_MOUNT_LOG`, else `RUST_LOG`, else the `-v` count, with secret-bearing targets
/// capped at `warn`.
pub fn filter(verbose: u8) -> EnvFilter {
    let default = match verbose {
        0 => "cells_mount=info",
        1 => "cells_mount=debug",
        _ => "cells_mount=trace,fuser=debug",
    };
    let mut filter = EnvFilter::try_from_env("CELLS_MOUNT_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default));
    for target in SECRET_BEARING_TARGETS {
        if let Ok(directive) = format!("{target}=warn").parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// Installs the global subscriber: rotated files in `log_dir` when given, and stderr up to
/// `stderr_max` (`None`: nothing on stderr). A detached mount's stderr is its
/// `cells-mount.log`, which does not rotate: it gets `INFO` at most (lifecycle, warnings),
/// the files get everything. The appender writes synchronously and starts no thread, so this
/// may run before the daemon forks. A second call does nothing.
pub fn init(
    verbose: u8,
    log_dir: Option<&Path>,
    stderr_max: Option<LevelFilter>,
) -> Result<(), String> {
    let file_layer = match log_dir {
        Some(dir) => {
            super::files::create_private_dir(dir)
                .map_err(|e| format!("cannot create the log directory {}: {e}", dir.display()))?;
            let appender = tracing_appender::rolling::Builder::new()
                .rotation(tracing_appender::rolling::Rotation::DAILY)
                .filename_prefix(PREFIX)
                .filename_suffix(SUFFIX)
                .max_log_files(KEPT_LOG_FILES)
                .build(dir)
                .map_err(|e| format!("cannot open a log file in {}: {e}", dir.display()))?;
            Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(appender),
            )
        }
        None => None,
    };
    let stderr_layer = stderr_max.map(|max| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(max)
    });
    let _ = tracing_subscriber::registry()
        .with(filter(verbose))
        .with(file_layer)
        .with(stderr_layer)
        .try_init();
    Ok(())
}

/// The log files in `log_dir`, oldest first (their names sort by date).
pub fn log_files(log_dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(log_dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .map(|n| n.to_string_lossy())
                        .is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_bearing_targets_are_capped_even_at_trace() {
        let shown = filter(2).to_string();
        for target in SECRET_BEARING_TARGETS {
            assert!(shown.contains(&format!("{target}=warn")), "{shown}");
        }
    }

    #[test]
    fn rotated_files_are_listed_by_date() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "cells-mount.2024-01-02.log",
            "cells-mount.2024-01-01.log",
            "other.txt",
        ] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        let names: Vec<_> = log_files(dir.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["cells-mount.2024-01-01.log", "cells-mount.2024-01-02.log"]
        );
    }
}
