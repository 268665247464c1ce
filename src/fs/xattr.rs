//! Extended attributes that expose sync state to file managers and scripts:
//! `user.cells.state`, `user.cells.hash`, `user.cells.uuid`, `user.cells.pinned`.

use super::api::*;
use super::core::CellsFs;
use crate::client::Remote;
use cells_cache::EntryState;
use std::ffi::OsStr;

pub const XATTR_STATE: &str = "user.cells.state";
pub const XATTR_HASH: &str = "user.cells.hash";
pub const XATTR_UUID: &str = "user.cells.uuid";
pub const XATTR_ERROR: &str = "user.cells.error";
/// `yes` on pinned files and folders (kept offline); absent otherwise.
pub const XATTR_PINNED: &str = "user.cells.pinned";

/// The namespace of every attribute we serve.
pub const XATTR_PREFIX: &str = "user.cells.";

/// Namespaces this file system does not implement at all: no security labels, no ACLs (the
/// mode bits are all there is), no trusted attributes.
const UNSUPPORTED_NAMESPACES: [&str; 3] = ["security.", "system.", "trusted."];

/// True for names in our namespace.
pub fn is_cells_xattr(name: &OsStr) -> bool {
    name.as_encoded_bytes().starts_with(XATTR_PREFIX.as_bytes())
}

/// The answer to a `getxattr` of a name outside our namespace, which never needs the inode:
/// `Unsupported` for a namespace we do not implement, `NoAttr` for any other name. `None` for
/// our own names, which the core answers from the record.
///
/// The difference matters for speed: `ls -l` asks every entry for `security.selinux` and
/// `system.posix_acl_access`, and the kernel does not cache the answers; "not supported"
/// (unlike "no such attribute") makes `ls` stop asking for the rest of the file system, so a
/// warm listing costs no round trip per entry.
pub fn foreign_xattr(name: &OsStr) -> Option<FsError> {
    if is_cells_xattr(name) {
        return None;
    }
    let bytes = name.as_encoded_bytes();
    if UNSUPPORTED_NAMESPACES
        .iter()
        .any(|ns| bytes.starts_with(ns.as_bytes()))
    {
        Some(FsError::Unsupported)
    } else {
        Some(FsError::NoAttr)
    }
}

impl<R: Remote> CellsFs<R> {
    pub(super) async fn do_listxattr(&self, ino: Ino) -> FsResult<Vec<String>> {
        let rec = self.record(ino).await?;
        let mut names = Vec::new();
        if rec.local_error.is_some() {
            names.push(XATTR_ERROR.to_owned());
        }
        if !rec.is_dir() || rec.local.is_some() {
            names.push(XATTR_STATE.to_owned());
            if rec.version.is_some() {
                names.push(XATTR_HASH.to_owned());
            }
        }
        if rec.uuid.is_some() {
            names.push(XATTR_UUID.to_owned());
        }
        if self.pins.covers(&rec.path) {
            names.push(XATTR_PINNED.to_owned());
        }
        Ok(names)
    }

    pub(super) async fn do_getxattr(&self, ino: Ino, name: &OsStr) -> FsResult<Vec<u8>> {
        if let Some(answer) = foreign_xattr(name) {
            return Err(answer);
        }
        let rec = self.record(ino).await?;
        let value = match name.to_str() {
            Some(XATTR_STATE) if rec.local.is_some() => {
                rec.local.map(|l| l.label().to_owned()).unwrap_or_default()
            }
            Some(XATTR_ERROR) => rec.local_error.clone().ok_or(FsError::NoAttr)?,
            Some(XATTR_STATE) if !rec.is_dir() => match &rec.version {
                None => "online-only".to_owned(),
                Some(v) => match self.fetcher.store().state(&v.cache_key()).await? {
                    EntryState::Absent => "online-only",
                    EntryState::Partial => "partial",
                    // Pinned and all local: kept offline, never evicted.
                    EntryState::Complete if self.pins.keeps(&rec.path, &v.cache_key()) => "pinned",
                    EntryState::Complete => "cached",
                }
                .to_owned(),
            },
            Some(XATTR_HASH) => rec
                .version
                .as_ref()
                .map(|v| v.value.clone())
                .ok_or(FsError::NoAttr)?,
            Some(XATTR_UUID) => rec.uuid.clone().ok_or(FsError::NoAttr)?,
            Some(XATTR_PINNED) if self.pins.covers(&rec.path) => "yes".to_owned(),
            _ => return Err(FsError::NoAttr),
        };
        Ok(value.into_bytes())
    }

    /// Setting or removing an attribute: ours are read-only, others are not stored.
    pub(super) async fn do_setxattr(&self, ino: Ino, name: &OsStr) -> FsResult<()> {
        self.record(ino).await?;
        match name.to_str() {
            Some(n) if n.starts_with("user.cells.") => Err(FsError::NotPermitted(
                "user.cells.* attributes are maintained by cells-mount".into(),
            )),
            _ => Err(FsError::Unsupported),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_namespace_is_ours() {
        for ours in [
            XATTR_STATE,
            XATTR_HASH,
            XATTR_UUID,
            XATTR_ERROR,
            XATTR_PINNED,
        ] {
            assert!(is_cells_xattr(OsStr::new(ours)), "{ours}");
        }
        for foreign in [
            "security.selinux",
            "system.posix_acl_access",
            "system.posix_acl_default",
            "user.cells",
            "user.other",
            "",
        ] {
            assert!(!is_cells_xattr(OsStr::new(foreign)), "{foreign}");
        }
    }

    #[test]
    fn foreign_namespaces_are_unsupported_and_foreign_names_absent() {
        let answer = |n: &str| foreign_xattr(OsStr::new(n)).map(|e| e.to_string());
        let unsupported = Some(FsError::Unsupported.to_string());
        let absent = Some(FsError::NoAttr.to_string());
        for n in [
            "security.selinux",
            "system.posix_acl_access",
            "system.posix_acl_default",
            "trusted.overlay.opaque",
        ] {
            assert_eq!(answer(n), unsupported, "{n}");
        }
        for n in ["user.other", "user.cells", "com.apple.FinderInfo", ""] {
            assert_eq!(answer(n), absent, "{n}");
        }
        for n in [XATTR_STATE, XATTR_HASH, XATTR_PINNED] {
            assert_eq!(answer(n), None, "{n}");
        }
    }
}
