//! The command line: `mount` (also the shorthand `cells-mount MOUNTPOINT`), `unmount`,
//! `status` and `hash`. Parsing and dispatch only; each command lives in its own module.

mod accounts;
mod args;
mod compose;
mod daemon;
mod login;
mod mount;
mod mountpoint;
mod pin;
mod progress;
mod service;
mod size;
mod status;
mod unmount;

use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cells-mount",
    version,
    about = "Mount a Pydio Cells workspace as a local folder"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Mount a workspace (shorthand: `cells-mount MOUNTPOINT ...`).
    Mount(args::MountArgs),
    /// Log in to a Cells server (browser, or --token-file) and save the account.
    Login(login::LoginArgs),
    /// List the saved accounts (`accounts default NAME`, `accounts remove NAME`).
    Accounts(accounts::AccountsArgs),
    /// Mount a folder at every login (systemd user unit; launchd agent on macOS).
    Service(service::ServiceArgs),
    /// Unmount a cells-mount folder once pending uploads are done (--force: at once).
    Unmount(unmount::UnmountArgs),
    /// Show a mount's state (connection, upload queue, conflicts, cache), or a path's.
    Status(status::StatusArgs),
    /// Keep files or folders of a mount available offline (fetches them now).
    Pin(pin::PinArgs),
    /// Stop keeping files or folders offline (their content may be evicted again).
    Unpin(pin::UnpinArgs),
    /// Print the Cells content hash of files, like md5sum (`HASH  FILE`).
    Hash {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

const SUBCOMMANDS: &[&str] = &[
    "mount", "unmount", "status", "hash", "help", "pin", "unpin", "login", "accounts", "service",
];

/// `cells-mount DIR [options]` means `cells-mount mount DIR [options]`: a first argument that
/// is neither an option nor a subcommand name is a mountpoint.
fn expand_shorthand(mut args: Vec<OsString>) -> Vec<OsString> {
    if let Some(first) = args.get(1) {
        let s = first.to_string_lossy();
        if !s.starts_with('-') && !SUBCOMMANDS.contains(&s.as_ref()) {
            args.insert(1, OsString::from("mount"));
        }
    }
    args
}

/// Logging to stderr for the short-lived commands; `mount` sets up its own (with rotated log
/// files in its state directory) once that directory exists. The filter always caps the
/// targets that log secrets (`cells_mount::config::logs::SECRET_BEARING_TARGETS`).
fn init_logging(verbose: u8) {
    let all = Some(cells_mount::config::logs::LevelFilter::TRACE);
    let _ = cells_mount::config::logs::init(verbose, None, all);
}

pub fn main() -> ExitCode {
    let cli = Cli::parse_from(expand_shorthand(std::env::args_os().collect()));
    match cli.command {
        Command::Mount(args) => match args.validate() {
            Ok(plan) => mount::run(plan),
            Err(e) => {
                eprintln!("cells-mount: {e}");
                ExitCode::from(2)
            }
        },
        Command::Login(args) => {
            init_logging(0);
            login::run(args)
        }
        Command::Accounts(args) => {
            init_logging(0);
            accounts::run(args)
        }
        Command::Service(args) => service::run(args),
        Command::Unmount(args) => unmount::run(args),
        Command::Status(args) => status::run(args),
        Command::Pin(args) => pin::run_pin(args),
        Command::Unpin(args) => pin::run_unpin(args),
        Command::Hash { files } => hash(files),
    }
}

fn hash(files: Vec<PathBuf>) -> ExitCode {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(args: &[&str]) -> Vec<String> {
        expand_shorthand(args.iter().map(OsString::from).collect())
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_bare_directory_means_mount() {
        assert_eq!(
            expand(&["cm", "/mnt/cells", "-f"]),
            ["cm", "mount", "/mnt/cells", "-f"]
        );
        assert_eq!(expand(&["cm", "hash", "x"]), ["cm", "hash", "x"]);
        assert_eq!(expand(&["cm", "unmount", "/m"]), ["cm", "unmount", "/m"]);
        assert_eq!(expand(&["cm", "--version"]), ["cm", "--version"]);
        assert_eq!(expand(&["cm"]), ["cm"]);
    }

    #[test]
    fn mount_options_parse() {
        let cli = Cli::try_parse_from(expand(&[
            "cm",
            "/m",
            "--server",
            "https://c",
            "--cache-size",
            "2G",
            "-vv",
        ]))
        .expect("parse");
        let Command::Mount(a) = cli.command else {
            panic!("not mount")
        };
        assert_eq!((a.verbose, a.cache_size.as_deref()), (2, Some("2G")));
        assert!(
            Cli::try_parse_from(["cm", "mount", "/m", "--token", "a", "--token-file", "/f"])
                .is_err()
        );
    }
}
