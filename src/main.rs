//! The `cells-mount` executable: everything is in the `cli` module.

#[cfg(unix)]
mod cli;
/// Windows: its own command line over the same core (WinFsp instead of FUSE).
#[cfg(windows)]
#[path = "cli/windows.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
