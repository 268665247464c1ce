//! `STATE/staging/`: the journal's own copy of every file version not yet uploaded.
//!
//! Why the journal keeps its own copy instead of pointing at a dirty cache entry: the cache
//! directory is, by platform convention, disposable (users and cleaners wipe `~/.cache`), its
//! entries are content-addressed and shared between paths, and its integrity checks may drop
//! an entry. Unsynced edits are the one thing we may never lose, so they live in the state
//! directory next to the journal. The copy is a hard link when possible (no extra space or
//! time: the caller's file is then moved into the cache under another name), a full copy
//! across file systems.

use cells_cache::{FileDigest, FileDigester};
use md5::{Digest, Md5};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// What staging a file produced.
pub struct Staged {
    pub name: String,
    pub digest: FileDigest,
}

pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("staging")
}

/// A fresh, unguessable staging file name (only `[0-9a-f]`, so never a path).
fn fresh_name() -> String {
    format!("{:032x}.data", rand::random::<u128>())
}

/// True for names this module creates; anything else in the folder is left alone.
pub fn is_staging_name(name: &str) -> bool {
    name.len() == 37 && name.ends_with(".data") && name[..32].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Links (or copies) `src` into `staging_dir` and digests it, unless `digest` (computed while
/// the file was written) already describes it. Nothing is synced here: the copy survives the
/// death of the process as it is (the page cache is the kernel's), and [`sync_files`] makes
/// it survive a power loss (on fsync, and in the background).
pub fn stage(
    staging_dir: &Path,
    src: &Path,
    digest: Option<FileDigest>,
    chunk_size: u64,
) -> io::Result<Staged> {
    let meta = std::fs::metadata(src)?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "only regular files can be uploaded",
        ));
    }
    let name = fresh_name();
    let dest = staging_dir.join(&name);
    if std::fs::hard_link(src, &dest).is_err()
        && let Err(e) = std::fs::copy(src, &dest)
    {
        let _ = std::fs::remove_file(&dest);
        return Err(e);
    }
    let digest = match digest {
        Some(d) if d.size == meta.len() && d.chunk_size == chunk_size => Ok(d),
        _ => FileDigester::of_file(&dest, chunk_size),
    };
    match digest {
        Ok(digest) => Ok(Staged { name, digest }),
        Err(e) => {
            let _ = std::fs::remove_file(&dest);
            Err(e)
        }
    }
}

/// Syncs the data of the named staged files (gone ones are skipped: their op finished), then
/// the folder's entries.
pub fn sync_files(staging_dir: &Path, names: &[String]) -> io::Result<()> {
    for name in names {
        match File::open(staging_dir.join(name)) {
            Ok(f) => f.sync_data()?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    sync_dir(staging_dir)
}

/// The plain MD5 of a staged file (compared with the version of a server that has no Cells
/// hash; computed only then).
pub fn md5_of(path: &Path) -> io::Result<String> {
    let mut md5 = Md5::new();
    cells_cache::read_in_pieces(path, |piece| md5.update(piece))?;
    Ok(hex::encode(md5.finalize()))
}

#[cfg(unix)]
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Windows cannot open a directory for syncing; NTFS journals its metadata.
#[cfg(not(unix))]
pub fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Creates the folder, private to this user where the platform has modes.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Removes staging files no journal row references (left by a crash between staging a file
/// and recording it, or between replacing a coalesced version and deleting the old one).
pub fn collect_garbage(staging_dir: &Path, referenced: &std::collections::HashSet<String>) {
    let Ok(entries) = std::fs::read_dir(staging_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_staging_name(name)
            && !referenced.contains(name)
            && let Err(e) = std::fs::remove_file(entry.path())
        {
            tracing::warn!("could not remove the orphan staging file {name}: {e}");
        }
    }
}
