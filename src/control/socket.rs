//! Where a mount's control socket lives, and who may use it: the path is derived from the
//! canonical mountpoint alone (so the CLI finds it from MOUNTPOINT), inside a directory only
//! the user can enter; connections from another user are refused by peer credentials.

use md5::{Digest, Md5};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The longest socket path `sockaddr_un` holds on every Unix we support (macOS: 104 with NUL).
const MAX_SOCKET_PATH: usize = 103;

/// The mountpoint as the socket name is derived from it: symlinks resolved. A stale or dead
/// mount cannot be canonicalized itself (ENOTCONN), so then its parent is, and the name
/// joined back.
pub fn canonical_mountpoint(path: &Path) -> Result<PathBuf, String> {
    let abs = std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Ok(c) = abs.canonicalize() {
        return Ok(c);
    }
    match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) => parent
            .canonicalize()
            .map(|p| p.join(name))
            .map_err(|e| format!("{}: {e}", parent.display())),
        _ => Ok(abs),
    }
}

/// A short, stable name for one canonical mountpoint: 16 hex digits of its MD5.
pub fn socket_name(canonical_mountpoint: &Path) -> String {
    let digest = Md5::digest(canonical_mountpoint.as_os_str().as_bytes());
    format!("{}.sock", hex::encode(&digest[..8]))
}

/// The directory holding the sockets: `$XDG_RUNTIME_DIR/cells-mount`, else
/// `$XDG_STATE_HOME/cells-mount/run`, else `~/.local/state/cells-mount/run`.
pub fn socket_dir() -> Result<PathBuf, String> {
    let var = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(run) = var("XDG_RUNTIME_DIR") {
        return Ok(run.join("cells-mount"));
    }
    if let Some(state) = var("XDG_STATE_HOME") {
        return Ok(state.join("cells-mount").join("run"));
    }
    var("HOME")
        .map(|h| h.join(".local/state/cells-mount/run"))
        .ok_or_else(|| "cannot place the control socket: set XDG_RUNTIME_DIR or HOME".into())
}

/// The control socket of the mount at `canonical_mountpoint`.
pub fn socket_path(canonical_mountpoint: &Path) -> Result<PathBuf, String> {
    socket_path_in(&socket_dir()?, canonical_mountpoint)
}

pub fn socket_path_in(dir: &Path, canonical_mountpoint: &Path) -> Result<PathBuf, String> {
    let path = dir.join(socket_name(canonical_mountpoint));
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(format!(
            "control socket path {} is too long for a Unix socket; set XDG_RUNTIME_DIR to a \
             shorter directory",
            path.display()
        ));
    }
    Ok(path)
}

/// Creates `dir` (parents included) for sockets: owned by us, a real directory, mode 0700.
/// A looser mode on our own directory is tightened; someone else's directory is refused.
pub fn ensure_private_dir(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {shown}: {e}"))?;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_dir() {
        return Err(format!("{shown} is not a directory"));
    }
    if meta.uid() != effective_uid() {
        return Err(format!(
            "{shown} belongs to another user (uid {}); refusing to put a control socket there",
            meta.uid()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot make {shown} private (0700): {e}"))?;
    }
    Ok(())
}

pub fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() }
}

/// Whether a peer with user id `peer_uid` may use our socket: only ourselves (root included
/// only when we are root, so `sudo` cannot drive another user's mount by accident).
pub fn peer_allowed(peer_uid: u32, our_uid: u32) -> bool {
    peer_uid == our_uid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_names_are_short_stable_and_distinct() {
        let a = socket_name(Path::new("/home/alice/Cells"));
        assert_eq!(a, socket_name(Path::new("/home/alice/Cells")));
        assert_ne!(a, socket_name(Path::new("/home/alice/Cells2")));
        assert_ne!(a, socket_name(Path::new("/home/bob/Cells")));
        assert_eq!(a.len(), 16 + ".sock".len());
        assert!(
            a.trim_end_matches(".sock")
                .chars()
                .all(|c| c.is_ascii_hexdigit())
        );
    }

    #[test]
    fn overlong_socket_paths_are_refused_clearly() {
        let long = PathBuf::from(format!("/{}", "d".repeat(120)));
        let err = socket_path_in(&long, Path::new("/m")).unwrap_err();
        assert!(err.contains("XDG_RUNTIME_DIR"), "{err}");
        assert!(socket_path_in(Path::new("/run/user/1000/cells-mount"), Path::new("/m")).is_ok());
    }

    #[test]
    fn canonical_mountpoint_resolves_symlinks_and_survives_a_dead_leaf() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("real");
        std::fs::create_dir(&real).expect("mkdir");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let canon_real = canonical_mountpoint(&real).expect("canon");
        assert_eq!(canonical_mountpoint(&link).expect("canon"), canon_real);
        // A leaf that cannot be resolved (like a stale mount) keeps its name under the
        // resolved parent.
        let gone = link.join("gone");
        assert_eq!(
            canonical_mountpoint(&gone).expect("canon"),
            canon_real.join("gone")
        );
    }

    #[test]
    fn private_dir_is_created_0700_and_tightened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sockets = dir.path().join("a/b/cells-mount");
        ensure_private_dir(&sockets).expect("create");
        let mode = std::fs::metadata(&sockets).expect("stat").mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(&sockets, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        ensure_private_dir(&sockets).expect("tighten");
        assert_eq!(
            std::fs::metadata(&sockets).expect("stat").mode() & 0o777,
            0o700
        );
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").expect("write");
        assert!(ensure_private_dir(&file).is_err());
    }

    #[test]
    fn only_the_same_user_is_allowed() {
        assert!(peer_allowed(1000, 1000));
        assert!(!peer_allowed(1001, 1000));
        assert!(!peer_allowed(0, 1000));
        assert!(!peer_allowed(1000, 0));
    }

    #[tokio::test]
    async fn peer_credentials_of_a_real_socket_are_our_own() {
        let (a, _b) = tokio::net::UnixStream::pair().expect("pair");
        let cred = a.peer_cred().expect("peer_cred");
        assert!(peer_allowed(cred.uid(), effective_uid()));
    }
}
