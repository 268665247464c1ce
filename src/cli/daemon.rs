//! Detaching from the terminal: fork once the arguments are valid; the child mounts, the
//! parent waits on a pipe and exits 0 only when the child says the mount is live, or prints
//! the child's error and exits non-zero. Must run before any thread exists (fork copies only
//! the calling thread), so before the tokio runtime is built.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

const READY: &[u8] = b"ready\n";

/// The daemon's end of the pipe: tells the waiting parent how mounting went. In the
/// foreground there is no parent waiting, and both calls do nothing.
pub struct Readiness {
    pipe: Option<File>,
}

impl Readiness {
    pub fn foreground() -> Self {
        Self { pipe: None }
    }

    pub fn ready(&mut self) {
        if let Some(mut p) = self.pipe.take() {
            let _ = p.write_all(READY);
        }
    }

    pub fn failed(&mut self, message: &str) {
        if let Some(mut p) = self.pipe.take() {
            let _ = p.write_all(message.as_bytes());
        }
    }
}

/// Forks. Returns in the child (detached, output to `log_file`); the parent never returns:
/// it exits with the outcome the child reports.
pub fn detach(log_file: &Path) -> Result<Readiness, String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log_file)
        .map_err(|e| format!("cannot open log file {}: {e}", log_file.display()))?;
    let mut fds = [0; 2];
    // SAFETY: pipe() fills two descriptors we then own.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the process is still single-threaded here (no runtime, no FUSE threads yet).
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {
            drop(read_end);
            become_daemon(&log)?;
            Ok(Readiness {
                pipe: Some(File::from(write_end)),
            })
        }
        _child => {
            drop(write_end);
            std::process::exit(wait_for_child(File::from(read_end), log_file));
        }
    }
}

fn wait_for_child(mut pipe: File, log_file: &Path) -> i32 {
    let mut report = Vec::new();
    let _ = pipe.read_to_end(&mut report);
    if report == READY {
        return 0;
    }
    let message = String::from_utf8_lossy(&report);
    if message.trim().is_empty() {
        eprintln!(
            "cells-mount: the mount process exited before mounting; see {}",
            log_file.display()
        );
    } else {
        eprintln!("cells-mount: {}", message.trim());
    }
    1
}

/// New session (no controlling terminal), stdin from /dev/null, stdout and stderr to the log,
/// working directory `/` (so the daemon holds no directory busy).
fn become_daemon(log: &File) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let null = File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
    // SAFETY: plain system calls on descriptors we own; failure is checked.
    unsafe {
        if libc::setsid() == -1
            || libc::dup2(null.as_raw_fd(), 0) == -1
            || libc::dup2(log.as_raw_fd(), 1) == -1
            || libc::dup2(log.as_raw_fd(), 2) == -1
        {
            return Err(format!("detaching: {}", std::io::Error::last_os_error()));
        }
    }
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))
}
