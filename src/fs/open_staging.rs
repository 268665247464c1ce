//! The staging files of `STATE/open/` on disk: positional I/O helpers, their durable records
//! in the metadata index, and crash recovery. A staging file is recorded (inode + the version
//! its edit started from) once its initial content is in place, and forgotten when it is
//! handed to the journal or dropped; at start, a recorded file whose content differs from its
//! base is journaled ("recovered after a crash"), so a kill loses nothing that reached it.

use super::api::*;
use super::core::CellsFs;
use crate::client::{ContentVersion, HashKind, Remote};
use crate::meta::{LocalState, MetaStore, OpenStaging};
use std::collections::HashSet;
use std::fs::File;
use std::path::Path;

pub(super) fn io_error(e: std::io::Error) -> FsError {
    match e.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => FsError::NoSpace,
        _ => FsError::Io(e.to_string()),
    }
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> FsResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(super::errors::from_join_error)?
        .map_err(io_error)
}

pub(super) fn private_file(path: &Path) -> std::io::Result<File> {
    let mut opts = File::options();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)
}

pub(super) fn unix_secs(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub(super) fn now_secs() -> i64 {
    unix_secs(std::time::SystemTime::now())
}

/// The name of a staging file (what its record is keyed by).
pub(super) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Names this module creates in `STATE/open/`: `INO-N`, digits only around one dash, so a
/// record can never name a path outside the folder.
fn is_staging_name(name: &str) -> bool {
    let mut parts = name.split('-');
    let digits =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    digits(parts.next()) && digits(parts.next()) && parts.next().is_none()
}

/// True when the file at `path` holds exactly the content `base` names.
fn same_as_base(path: &Path, base: &ContentVersion) -> std::io::Result<bool> {
    match base.kind {
        HashKind::CellsHash => Ok(crate::hash::cells_hash_file(path)? == base.value),
        HashKind::PlainMd5 => Ok(crate::sync::md5_of(path)? == base.value),
        // Nothing to compare with: uploading identical bytes again is harmless.
        HashKind::OpaqueEtag => Ok(false),
    }
}

impl<R: Remote> CellsFs<R> {
    /// Records the staging file `path` of inode `ino`, whose edit started from `base`.
    pub(super) async fn record_staging(
        &self,
        ino: Ino,
        remote_path: &str,
        path: &Path,
        base: Option<ContentVersion>,
    ) -> FsResult<()> {
        let rec = OpenStaging {
            file: file_name(path),
            ino,
            path: remote_path.to_owned(),
            base,
        };
        self.meta(move |m| m.record_open_staging(&rec)).await
    }

    /// Removes the staging file `path` (if still there) and its record.
    pub(super) async fn drop_staging(&self, path: &Path) {
        let _ = std::fs::remove_file(path);
        let name = file_name(path);
        if let Err(e) = self.meta(move |m| m.forget_open_staging(&name)).await {
            tracing::warn!("could not forget a staging file record: {e}");
        }
    }

    /// Start-up recovery of `open_dir` (see the module doc). Blocking; runs before the mount
    /// serves requests. Returns how many files were journaled.
    pub(super) fn recover_open_files(
        &self,
        journal: &crate::sync::Journal,
        open_dir: &Path,
    ) -> FsResult<usize> {
        let meta: &MetaStore = &self.meta;
        let meta_err = super::errors::from_meta_error;
        meta.init_open_staging().map_err(meta_err)?;
        let records = meta.open_staging().map_err(meta_err)?;
        let mut recovered = 0;
        let mut kept = HashSet::new();
        for rec in records {
            if !is_staging_name(&rec.file) {
                tracing::warn!("ignoring a damaged staging record {:?}", rec.file);
                meta.forget_open_staging(&rec.file).map_err(meta_err)?;
                continue;
            }
            let file = open_dir.join(&rec.file);
            match self.recover_one(journal, &rec, &file) {
                Ok(true) => recovered += 1,
                Ok(false) => {}
                Err(e) => {
                    // Kept (file and record) for the next start rather than lost.
                    tracing::error!("could not recover the unsaved edit of {}: {e}", rec.path);
                    kept.insert(rec.file.clone());
                    continue;
                }
            }
            let _ = std::fs::remove_file(&file);
            meta.forget_open_staging(&rec.file).map_err(meta_err)?;
        }
        // Files without a record were never complete (a crash while they were being filled).
        if let Ok(entries) = std::fs::read_dir(open_dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !kept.contains(&name) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(recovered)
    }

    /// Start-up: a kill between the journal taking a save and the cache taking its copy
    /// leaves the cache without the version the index shows (reads of it would fail until it
    /// is uploaded): it is put back from the journal's staged copy. Blocking.
    pub(super) fn restore_pending_versions(&self, journal: &crate::sync::Journal) {
        let restored = journal.restore_cached_versions();
        if restored > 0 {
            tracing::warn!("{restored} pending version(s) put back in the cache after a crash");
        }
    }

    /// Points the index at the version the journal holds for the inode of a staging record
    /// whose file is gone (see `recover_one`), when its last pending operation uploads it.
    fn adopt_journaled_version(
        &self,
        journal: &crate::sync::Journal,
        rec: &OpenStaging,
    ) -> FsResult<()> {
        let meta_err = super::errors::from_meta_error;
        let Some(node) = self.meta.get(rec.ino).map_err(meta_err)? else {
            return Ok(());
        };
        let Some((size, hash)) = journal.pending_version(&node.path) else {
            return Ok(());
        };
        let version = ContentVersion {
            kind: HashKind::CellsHash,
            value: hash,
        };
        if node.is_dir() || node.version.as_ref() == Some(&version) {
            return Ok(());
        }
        tracing::warn!(
            "{}: the save cut short by a crash is taken as journaled",
            node.path
        );
        self.meta
            .set_local_content(
                rec.ino,
                size,
                node.mtime,
                Some(&version),
                LocalState::Pending,
            )
            .map_err(meta_err)
    }

    /// Journals one recorded staging file if it holds an edit; returns whether it did.
    fn recover_one(
        &self,
        journal: &crate::sync::Journal,
        rec: &OpenStaging,
        file: &Path,
    ) -> FsResult<bool> {
        let meta_err = super::errors::from_meta_error;
        let Ok(stat) = std::fs::metadata(file) else {
            // Gone: either dropped, or taken by a hand-over that the kill cut short after the
            // journal (and the cache) had the version but before the index learned it. The
            // journal says which version the file is at.
            self.adopt_journaled_version(journal, rec)?;
            return Ok(false);
        };
        let Some(node) = self.meta.get(rec.ino).map_err(meta_err)? else {
            tracing::warn!(
                "dropping the unsaved edit of {}: the file was deleted while open",
                rec.path
            );
            return Ok(false);
        };
        if node.is_dir() || node.local == Some(LocalState::Junk) {
            return Ok(false);
        }
        if let Some(base) = &rec.base
            && same_as_base(file, base).map_err(io_error)?
        {
            return Ok(false);
        }
        let enqueued = journal
            .enqueue_upload(&node.path, file, rec.base.clone())
            .map_err(super::write::sync_error)?;
        let version = ContentVersion {
            kind: HashKind::CellsHash,
            value: enqueued.cells_hash,
        };
        let mtime = stat
            .modified()
            .map(unix_secs)
            .unwrap_or_else(|_| now_secs());
        self.meta
            .set_local_content(
                rec.ino,
                enqueued.size,
                mtime,
                Some(&version),
                LocalState::Pending,
            )
            .map_err(meta_err)?;
        tracing::warn!(
            "recovered after a crash: the unsaved edit of {} is queued for upload",
            node.path
        );
        Ok(true)
    }
}

#[cfg(unix)]
pub(super) fn write_at(f: &File, buf: &[u8], at: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, buf, at)
}

#[cfg(unix)]
pub(super) fn read_at(f: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(f, buf, at)
}

#[cfg(windows)]
pub(super) fn write_at(f: &File, mut buf: &[u8], mut at: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(f, buf, at)?;
        buf = &buf[n..];
        at += n as u64;
    }
    Ok(())
}

#[cfg(windows)]
pub(super) fn read_at(f: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(f, buf, at)
}

/// Reads into `buf` from `at` until it is full or the file ends; how many bytes were read.
pub(super) fn read_full_at(f: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match read_at(f, &mut buf[got..], at + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::{Digest, Md5};

    #[test]
    fn only_generated_names_are_staging_names() {
        assert!(is_staging_name("12-3"));
        for bad in ["", "12", "12-", "-3", "1-2-3", "../1-2", "1-2/x", "a-1"] {
            assert!(!is_staging_name(bad), "{bad}");
        }
    }

    #[test]
    fn content_is_compared_with_its_base() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("1-1");
        std::fs::write(&f, b"hello").unwrap();
        let cells = ContentVersion {
            kind: HashKind::CellsHash,
            value: crate::hash::cells_hash(b"hello"),
        };
        assert!(same_as_base(&f, &cells).unwrap());
        let md5 = ContentVersion {
            kind: HashKind::PlainMd5,
            value: hex::encode(Md5::digest(b"hello")),
        };
        assert!(same_as_base(&f, &md5).unwrap());
        std::fs::write(&f, b"hello!").unwrap();
        assert!(!same_as_base(&f, &cells).unwrap());
        assert!(!same_as_base(&f, &md5).unwrap());
    }
}
