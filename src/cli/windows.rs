//! The Windows command line: `cells-mount X:` (or `mount --drive X:`, or a folder that does
//! not exist yet) mounts through WinFsp and stays in the foreground until Ctrl+C; `hash` as
//! elsewhere. Reuses the portable parts of the Unix CLI: option validation (`args`), sizes
//! and the composition of the core (`compose`).

// `mountpoint`, `foreground` and `allow_other` of the plan are Unix options.
#[allow(dead_code)]
#[path = "args.rs"]
mod args;
#[path = "compose.rs"]
mod compose;
#[path = "size.rs"]
mod size;

use cells_mount::platform::winfsp::{WinFspMount, WinMountOptions};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cells-mount",
    version,
    about = "Mount a Pydio Cells workspace as a drive"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Mount a workspace on a drive letter or folder (shorthand: `cells-mount X: ...`).
    Mount {
        #[command(flatten)]
        args: args::MountArgs,
        /// Drive letter to mount on (instead of the MOUNTPOINT argument), e.g. X:
        #[arg(long, value_name = "LETTER:")]
        drive: Option<String>,
        /// Volume label shown by Explorer [default: the workspace]
        #[arg(long)]
        label: Option<String>,
    },
    /// Print the Cells content hash of files, like md5sum (`HASH  FILE`).
    Hash {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// `X:` / `x` → `X:`; anything else is a folder path, passed to WinFsp as given.
fn mount_target(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim_end_matches(['\\', '/']);
    let letter = trimmed.strip_suffix(':').unwrap_or(trimmed);
    if letter.len() == 1 && letter.chars().all(|c| c.is_ascii_alphabetic()) {
        return Ok(format!("{}:", letter.to_ascii_uppercase()));
    }
    if trimmed.len() <= 2 {
        return Err(format!(
            "{raw:?} is neither a drive letter (X:) nor a folder"
        ));
    }
    Ok(trimmed.to_owned())
}

/// `%LOCALAPPDATA%\cells-mount\{cache,state}\ACCOUNT` unless given: `args` falls back to
/// `$HOME`, which Windows does not set.
fn default_dirs(a: &mut args::MountArgs) -> Result<(), String> {
    let base = std::env::var_os("LOCALAPPDATA")
        .map(PathBuf::from)
        .ok_or("LOCALAPPDATA is not set: pass --cache-dir and --state-dir")?
        .join("cells-mount");
    let account = args::account_id(a.server.as_deref().unwrap_or(""), a.workspace.as_deref());
    a.cache_dir
        .get_or_insert_with(|| base.join("cache").join(&account));
    a.state_dir
        .get_or_insert_with(|| base.join("state").join(&account));
    Ok(())
}

fn mount(
    mut a: args::MountArgs,
    drive: Option<String>,
    label: Option<String>,
) -> Result<(), String> {
    let target = mount_target(&drive.unwrap_or_else(|| a.mountpoint.display().to_string()))?;
    default_dirs(&mut a)?;
    let plan = a.validate()?;
    for dir in [&plan.cache_dir, &plan.state_dir] {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cells-worker")
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let core = rt.block_on(compose::build_core(&plan))?;
    let opts = WinMountOptions {
        target: target.clone(),
        volume_label: label.unwrap_or_else(|| {
            plan.workspace
                .clone()
                .unwrap_or_else(|| "Cells".to_string())
        }),
    };
    let mounted = WinFspMount::mount(core.fs(), &opts, rt.handle().clone())
        .map_err(|e| format!("cannot mount on {target}: {e}"))?;
    tracing::info!("mounted on {target}; press Ctrl+C to unmount");
    rt.block_on(async { tokio::signal::ctrl_c().await })
        .map_err(|e| format!("waiting for Ctrl+C: {e}"))?;
    tracing::info!("unmounting {}", mounted.target());
    mounted.unmount();
    core.shutdown(&rt);
    Ok(())
}

pub fn main() -> ExitCode {
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| {
        let a = a.to_string_lossy();
        !a.starts_with('-') && !["mount", "hash", "help"].contains(&a.as_ref())
    }) {
        argv.insert(1, "mount".into());
    }
    match Cli::parse_from(argv).command {
        Command::Mount { args, drive, label } => {
            // The same filter as elsewhere: `-v`, `RUST_LOG`, and the crates that would log
            // credentials capped whatever those say.
            use cells_mount::config::logs;
            let _ = logs::init(args.verbose, None, Some(logs::LevelFilter::TRACE));
            match mount(args, drive, label) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("cells-mount: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Hash { files } => {
            let mut status = ExitCode::SUCCESS;
            for f in files {
                match cells_mount::hash::cells_hash_file_on_every_core(&f) {
                    Ok(h) => println!("{h}  {}", f.display()),
                    Err(e) => {
                        eprintln!("cells-mount: {}: {e}", f.display());
                        status = ExitCode::FAILURE;
                    }
                }
            }
            status
        }
    }
}
