//! What the control server reads from the running mount: the handles it is given
//! ([`MountView`]) and the answers built from them (status, queue, one path's state).

use super::proto::{PathError, PathStateReport, PinReport, QueueReport, StatusReport};
use crate::client::Remote;
use crate::fs::{CellsFs, PinControl, PinProgress};
use crate::names::{RemotePath, validate_name};
use crate::sync::{Journal, OpState, QueueStats};
use cells_cache::Cache;
use std::path::PathBuf;
use std::sync::Arc;

/// Whether the server is reachable, as the file-system core sees it.
pub trait Connectivity: Send + Sync {
    /// Unix milliseconds since the server is unreachable; `None` while online.
    fn offline_since_ms(&self) -> Option<i64>;
}

impl<R: Remote> Connectivity for CellsFs<R> {
    fn offline_since_ms(&self) -> Option<i64> {
        if self.is_offline() {
            Some(CellsFs::offline_since_ms(self).unwrap_or(0))
        } else {
            None
        }
    }
}

/// Handles on the running mount, given to the control server by the mount process.
pub struct MountView {
    pub server: String,
    pub workspace: Option<String>,
    /// Canonical; the socket name is derived from it.
    pub mountpoint: PathBuf,
    /// The remote path shown at the mount root.
    pub root: RemotePath,
    pub connectivity: Arc<dyn Connectivity>,
    pub cache: Arc<Cache>,
    /// `None` for a mount without a write path (nothing is ever pending).
    pub journal: Option<Arc<Journal>>,
    /// `None` for a mount without offline pins (pin commands are refused).
    pub pins: Option<Arc<dyn PinControl>>,
}

impl MountView {
    pub fn online(&self) -> bool {
        self.connectivity.offline_since_ms().is_none()
    }

    fn queue_stats(&self) -> QueueStats {
        self.journal.as_ref().map(|j| j.stats()).unwrap_or_default()
    }

    pub fn queue(&self) -> QueueReport {
        let stats = self.queue_stats();
        QueueReport {
            online: self.online(),
            pending_uploads: stats.pending_uploads,
            pending_bytes: stats.pending_bytes,
            pending_ops: stats.pending_ops,
            in_flight: stats.in_flight,
            errors: path_errors(stats.errors),
        }
    }

    /// True when nothing is left to upload but operations in error (and those behind them).
    pub fn drained(&self) -> bool {
        self.journal.as_ref().is_none_or(|j| j.drained())
    }

    /// Wakes on every journal change (never, without a journal).
    pub fn changed(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.journal.as_ref().map(|j| j.changed())
    }

    pub fn status(&self) -> StatusReport {
        let stats = self.queue_stats();
        let usage = self.cache.usage();
        let pins = self.pins.as_ref().map(|p| p.counts()).unwrap_or_default();
        let offline_since = self.connectivity.offline_since_ms();
        StatusReport {
            server: self.server.clone(),
            workspace: self.workspace.clone(),
            mountpoint: self.mountpoint.display().to_string(),
            online: offline_since.is_none(),
            offline_since: offline_since.map(rfc3339),
            pending_uploads: stats.pending_uploads,
            pending_bytes: stats.pending_bytes,
            pending_ops: stats.pending_ops,
            in_flight: stats.in_flight,
            conflicts: stats.conflicts,
            errors: path_errors(stats.errors),
            cache_bytes: usage.bytes,
            cache_limit_bytes: usage.limit_bytes,
            cache_pinned_bytes: usage.pinned_bytes,
            pinned_files: pins.pinned_files,
            pinned_bytes: pins.pinned_bytes,
            pin_pending_files: pins.pending_files,
        }
    }

    /// The remote paths of `relative` paths (`""` = the mount root), for pin and unpin.
    pub fn remote_paths(&self, relative: &[String]) -> Result<Vec<RemotePath>, String> {
        if relative.is_empty() {
            return Err("no path given".into());
        }
        relative
            .iter()
            .map(|r| self.resolve(r).map(|(remote, _)| remote))
            .collect()
    }

    /// The state of `relative` (a `/`-separated path below the mount root): the journal's
    /// view first (error, conflict, pending), else what `user.cells.state` says. Refuses
    /// anything that is not a plain relative path, so a request never reaches outside the
    /// mount.
    pub async fn path_state(&self, relative: &str) -> Result<PathStateReport, String> {
        let (remote, local) = self.resolve(relative)?;
        if let Some((state, detail)) = self.journal_state(&remote) {
            return Ok(PathStateReport {
                path: relative.to_owned(),
                state: state.to_owned(),
                detail,
            });
        }
        let state = tokio::task::spawn_blocking(move || read_state_xattr(&local))
            .await
            .map_err(|e| format!("reading the state: {e}"))??;
        let pinned = self.pins.as_ref().is_some_and(|p| p.covers(&remote));
        let detail = match state.as_str() {
            "pinned" => None,
            "folder" if pinned => Some("pinned: kept offline".to_owned()),
            _ if pinned => Some("pinned; content still being fetched".to_owned()),
            _ => None,
        };
        Ok(PathStateReport {
            path: relative.to_owned(),
            state,
            detail,
        })
    }

    fn resolve(&self, relative: &str) -> Result<(RemotePath, PathBuf), String> {
        let trimmed = relative.trim_end_matches('/');
        if trimmed.starts_with('/') {
            return Err(format!(
                "{relative:?}: expected a path relative to the mount"
            ));
        }
        let mut remote = self.root.clone();
        let mut local = self.mountpoint.clone();
        for name in trimmed.split('/').filter(|n| !n.is_empty()) {
            validate_name(name).map_err(|e| format!("{relative:?}: {e}"))?;
            remote = remote
                .join(name)
                .map_err(|e| format!("{relative:?}: {e}"))?;
            local.push(name);
        }
        Ok((remote, local))
    }

    fn journal_state(&self, path: &RemotePath) -> Option<(&'static str, Option<String>)> {
        let journal = self.journal.as_ref()?;
        let ops = journal.pending();
        let mine = ops.iter().filter(|op| op.kind.main_path() == path);
        let mut pending = false;
        for op in mine {
            if op.state == OpState::Error {
                return Some(("error", op.last_error.clone()));
            }
            pending = true;
        }
        if pending {
            return Some(("pending", None));
        }
        let conflicts = journal.conflicts().unwrap_or_default();
        conflicts
            .iter()
            .rev()
            .find(|c| &c.path == path || c.saved_as.as_ref() == Some(path))
            .map(|c| ("conflict", Some(c.describe())))
    }
}

fn path_errors(errors: Vec<(String, String)>) -> Vec<PathError> {
    errors
        .into_iter()
        .map(|(path, reason)| PathError { path, reason })
        .collect()
}

/// Unix milliseconds as RFC 3339 (UTC).
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// `user.cells.state` of a path inside the mount, read through the mount itself (so the
/// answer is exactly what file managers see). Folders have no state attribute: "folder".
fn read_state_xattr(path: &std::path::Path) -> Result<String, String> {
    use std::os::unix::ffi::OsStrExt;
    let shown = path.display();
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    if meta.is_dir() {
        return Ok("folder".into());
    }
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("{shown}: path holds a NUL byte"))?;
    let name = c"user.cells.state";
    let mut buf = [0u8; 256];
    let n = lgetxattr(&c_path, name, &mut buf);
    if n < 0 {
        return Err(format!(
            "{shown}: no sync state ({})",
            std::io::Error::last_os_error()
        ));
    }
    let value = &buf[..n as usize];
    Ok(String::from_utf8_lossy(value).trim().to_owned())
}

#[cfg(target_os = "linux")]
fn lgetxattr(path: &std::ffi::CStr, name: &std::ffi::CStr, buf: &mut [u8]) -> isize {
    // SAFETY: both strings are NUL-terminated; the buffer pointer and length match.
    unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    }
}

#[cfg(target_os = "macos")]
fn lgetxattr(path: &std::ffi::CStr, name: &std::ffi::CStr, buf: &mut [u8]) -> isize {
    // SAFETY: both strings are NUL-terminated; the buffer pointer and length match.
    unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            libc::XATTR_NOFOLLOW,
        )
    }
}

/// A pin's progress as the control protocol reports it.
pub fn pin_report(p: PinProgress) -> PinReport {
    PinReport {
        online: p.online,
        files_total: p.files_total,
        files_done: p.files_done,
        bytes_total: p.bytes_total,
        bytes_done: p.bytes_done,
        errors: path_errors(p.errors),
    }
}
