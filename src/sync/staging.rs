//! `STATE/staging/`: the journal's own copy of every file version not yet uploaded.
//!
//! Why the journal keeps its own copy instead of pointing at a dirty cache entry: the cache
//! directory is, by platform convention, disposable (users and cleaners wipe `~/.cache`), its
//! entries are content-addressed and shared between paths, and its integrity checks may drop
//! an entry. Unsynced edits are the one thing we may never lose, so they live in the state
//! directory next to the journal. The copy is a hard link when possible (no extra space or
//! time: the caller's file is then moved into the cache under another name), a full copy
//! across file systems.

use md5::{Digest, Md5};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// What staging a file produced.
pub struct Staged {
    pub name: String,
    pub size: u64,
    pub cells_hash: String,
    pub md5: String,
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

/// Links (or copies) `src` into `staging_dir`, hashes it, and makes it durable.
pub fn stage(staging_dir: &Path, src: &Path) -> io::Result<Staged> {
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
    let done = hash_and_sync(&dest).and_then(|(size, cells_hash, md5)| {
        sync_dir(staging_dir)?;
        Ok(Staged {
            name,
            size,
            cells_hash,
            md5,
        })
    });
    if done.is_err() {
        let _ = std::fs::remove_file(&dest);
    }
    done
}

fn hash_and_sync(path: &Path) -> io::Result<(u64, String, String)> {
    let mut file = File::options().read(true).write(true).open(path)?;
    let mut cells = crate::hash::CellsHasher::new();
    let mut md5 = Md5::new();
    let mut buf = vec![0u8; 1024 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        cells.update(&buf[..n]);
        md5.update(&buf[..n]);
        size += n as u64;
    }
    file.sync_all()?;
    Ok((size, cells.finalize_hex(), hex::encode(md5.finalize())))
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
