//! The mountpoint's state before mounting (missing, not a directory, already mounted, or a
//! stale FUSE mount left by a crashed process, which is repaired), and `unmount`.

use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

/// What `stat` on the mountpoint tells.
#[derive(Debug, PartialEq, Eq)]
pub enum MountpointState {
    /// A plain directory: ready.
    Ready,
    /// A mount whose FUSE process died: every access fails with ENOTCONN.
    Stale,
    /// Something is mounted there and alive.
    Busy,
}

pub fn inspect(path: &Path) -> Result<MountpointState, String> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(MountpointState::Stale),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(format!(
            "mountpoint {shown} does not exist; create the directory first"
        )),
        Err(e) => Err(format!("mountpoint {shown}: {e}")),
        Ok(m) if !m.is_dir() => Err(format!("mountpoint {shown} is not a directory")),
        Ok(m) => {
            let parent = path.parent().unwrap_or(Path::new("/"));
            let parent_dev = std::fs::metadata(parent)
                .map(|p| p.dev())
                .unwrap_or(m.dev());
            if parent_dev == m.dev() {
                return Ok(MountpointState::Ready);
            }
            // `stat` can be answered from attributes the kernel cached before the FUSE process
            // died; opening the directory always needs the (dead) process.
            match std::fs::read_dir(path) {
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(MountpointState::Stale),
                _ => Ok(MountpointState::Busy),
            }
        }
    }
}

/// Makes the mountpoint usable: repairs a stale mount with a lazy unmount, refuses a live one.
pub fn prepare(path: &Path) -> Result<(), String> {
    match inspect(path)? {
        MountpointState::Ready => Ok(()),
        MountpointState::Busy => Err(format!(
            "{} is already a mount point; unmount it first (cells-mount unmount {})",
            path.display(),
            path.display()
        )),
        MountpointState::Stale => {
            tracing::warn!(
                "{}: repairing a stale mount left by a crashed process",
                path.display()
            );
            run_unmount(path, true)?;
            match inspect(path)? {
                MountpointState::Ready => Ok(()),
                state => Err(format!(
                    "{}: stale mount could not be repaired ({state:?})",
                    path.display()
                )),
            }
        }
    }
}

/// `cells-mount unmount`: a normal (not lazy) unmount, so a busy mount is reported, not hidden.
pub fn unmount(path: &Path) -> Result<(), String> {
    let path = std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))?;
    match inspect(&path) {
        Ok(MountpointState::Ready) => Err(format!("{} is not mounted", path.display())),
        Ok(MountpointState::Stale) => run_unmount(&path, true),
        Ok(MountpointState::Busy) => run_unmount(&path, false),
        Err(e) => Err(e),
    }
}

/// Runs the platform's unprivileged unmount helper.
fn run_unmount(path: &Path, lazy: bool) -> Result<(), String> {
    let (program, mut args): (&str, Vec<&str>) = if cfg!(target_os = "linux") {
        ("fusermount3", vec![if lazy { "-uz" } else { "-u" }])
    } else {
        ("umount", if lazy { vec!["-f"] } else { vec![] })
    };
    let shown = path.display().to_string();
    args.push(&shown);
    let out = Command::new(program)
        .args(&args)
        .output()
        .map_err(|e| format!("cannot run {program} (is FUSE installed?): {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let reason = stderr.trim();
    if reason.contains("busy") {
        return Err(format!(
            "{shown} is busy: close the files and shells using it, then retry"
        ));
    }
    Err(format!("unmounting {shown} failed: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_directory_is_ready_and_bad_paths_are_explained() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(inspect(dir.path()), Ok(MountpointState::Ready));
        let missing = dir.path().join("missing");
        assert!(inspect(&missing).is_err_and(|e| e.contains("does not exist")));
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").expect("write");
        assert!(inspect(&file).is_err_and(|e| e.contains("not a directory")));
        assert!(unmount(dir.path()).is_err_and(|e| e.contains("not mounted")));
    }
}
