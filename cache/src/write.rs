//! The write paths: declaring an entry, storing fetched ranges, moving a saved file in.
//!
//! Crash safety: saved (dirty) files moved in with `sync` are synced before their rows are
//! committed, so the index never claims a save that is not on disk; without `sync` (the caller
//! keeps its own durable copy, as the upload journal does) they are protected like fetched
//! chunks, by checksums. Fetched (clean) ranges are written without a sync,
//! in one index transaction per range: rows whose data a crash lost fail their checksum on
//! first read in the next process, are dropped and fetched again (never served).

use crate::digest::FileDigest;
use crate::entry::{Entry, EntryInit, lock};
use crate::error::CacheError;
use crate::hash::{ContentHasher, chunk_sum};
use crate::index::{self, Flag, NewEntry};
use crate::key::{KeyKind, key_kind};
use crate::layout::Layout;
use crate::space::AcctGuard;
use crate::store::Inner;
use crate::verify::Check;
use crate::{HoldGuard, fsio};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// How [`Inner::insert_file`] takes a file in.
#[derive(Clone, Copy)]
pub struct InsertHow<'a> {
    /// Digests computed by whoever wrote the file; used instead of reading it again when they
    /// describe it (same size, this cache's chunk size, a `c` key equal to their hash).
    pub digest: Option<&'a FileDigest>,
    /// Sync the data, its name and the index row before returning.
    pub sync: bool,
}

impl Inner {
    pub fn ensure_entry(&self, key: &str, size: u64) -> Result<(), CacheError> {
        let guard = lock(&self.acct);
        if let Some(existing) = self.get(key) {
            if existing.layout.size == size {
                self.touch(&existing);
                return Ok(());
            }
            if existing.dirty.load(Ordering::Acquire) {
                return Err(CacheError::SizeMismatch {
                    key: key.to_owned(),
                    cached: existing.layout.size,
                    declared: size,
                });
            }
            tracing::warn!(
                key,
                cached = existing.layout.size,
                declared = size,
                "size changed; replacing cache entry"
            );
            self.drop_entry(&guard, &existing)?;
        }
        let kind = key_kind(key);
        if size == 0
            && let Some(h) = ContentHasher::for_kind(kind)
            && !h.matches_key(key)
        {
            return Err(CacheError::Corrupt(format!(
                "{key}: empty content does not match the key"
            )));
        }
        let path = self.object_path(key);
        create_parent(&path)?;
        let file = fsio::private_options()
            .create(true)
            .truncate(true)
            .open(&path)?;
        // Sparse: only fetched chunks take disk space (on file systems that support holes).
        if let Err(e) = file.set_len(size) {
            let _ = std::fs::remove_file(&path);
            return Err(e.into());
        }
        let id = match index::create_entry(&lock(&self.db), key, size, self.chunk_size) {
            Ok(id) => id,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        let entry = Entry::new(EntryInit {
            id,
            key: key.to_owned(),
            kind,
            layout: Layout::new(size, self.chunk_size),
            path,
            stored: 0,
            dirty: false,
            whole_verified: false,
            last_access: self.tick.fetch_add(1, Ordering::AcqRel),
        });
        lock(&entry.chunks).loaded = true;
        entry.set_file(file);
        self.insert_entry_locked(&guard, entry);
        Ok(())
    }

    fn insert_entry_locked(&self, _guard: &AcctGuard<'_>, entry: Entry) {
        let mut map = self.entries.write().unwrap_or_else(|e| e.into_inner());
        map.insert(entry.key.clone(), Arc::new(entry));
    }

    pub fn write_range(
        self: &Arc<Self>,
        key: &str,
        offset: u64,
        data: &[&[u8]],
    ) -> Result<(), CacheError> {
        if let Some(entry) = self.store_range(key, offset, data)? {
            self.check_whole(&entry)?;
        }
        Ok(())
    }

    /// Stores the whole chunks of `data`; returns the entry when this write completed a `c`/`m`
    /// entry whose whole content is still to be checked against its key (`check_whole`).
    /// `data` is one run of bytes given in pieces.
    pub fn store_range(
        self: &Arc<Self>,
        key: &str,
        offset: u64,
        data: &[&[u8]],
    ) -> Result<Option<Arc<Entry>>, CacheError> {
        let data_len: usize = data.iter().map(|p| p.len()).sum();
        let entry = self
            .get(key)
            .ok_or_else(|| CacheError::UnknownEntry(key.to_owned()))?;
        // Not evictable while we write into it.
        let _hold = HoldGuard::new(self, key);
        self.touch(&entry);
        let layout = entry.layout;
        let todo: Vec<u64> = {
            let chunks = self.chunk_state(&entry)?;
            if chunks.removed {
                return Err(CacheError::UnknownEntry(key.to_owned()));
            }
            layout
                .covered(offset, data_len as u64)
                .filter(|&i| !chunks.is_present(i))
                .collect()
        };
        if todo.is_empty() {
            return Ok(None);
        }
        let bytes = todo.iter().map(|&i| layout.len(i)).sum();
        let reservation = self.reserve(bytes, true, Some(key))?;
        let Some(file) = self.data_file(&entry)? else {
            return Err(CacheError::UnknownEntry(key.to_owned()));
        };
        let mut chunks = Vec::with_capacity(todo.len());
        for idx in todo {
            let r = layout.range(idx);
            let from = usize::try_from(r.start - offset).unwrap_or(usize::MAX);
            let to = from.saturating_add(usize::try_from(r.end - r.start).unwrap_or(usize::MAX));
            let chunk = pieces_within(data, from, to)
                .ok_or_else(|| CacheError::Corrupt("chunk arithmetic out of range".into()))?;
            chunks.push((idx, r.start, chunk));
        }
        // Checksums first, in parallel with other writers; then the writes, one writer at a time.
        // Buffered, not O_DIRECT: direct writes cost less CPU, but the reader then came after
        // the bytes on disk instead of in the page cache, and a cold read slowed to half.
        let mut written: Vec<(u64, [u8; 16])> = chunks
            .iter()
            .map(|(idx, _, chunk)| (*idx, entry.sums.sum_parts(chunk)))
            .collect();
        {
            let _writing = lock(&entry.writing);
            for (_, start, chunk) in &chunks {
                let mut at = *start;
                for piece in chunk {
                    fsio::write_all_at(&file, piece, at)?;
                    at += piece.len() as u64;
                }
            }
        }
        // No fsync: these are clean, fetched bytes. If a crash loses them while their rows
        // survive, the chunks fail their checksum on first read in the next process and are
        // fetched again; within this process the page cache holds exactly what we hashed.
        let added = {
            let mut chunks = lock(&entry.chunks);
            if chunks.removed {
                return Err(CacheError::UnknownEntry(key.to_owned()));
            }
            // A concurrent writer may have stored some of these chunks meanwhile.
            written.retain(|(i, _)| !chunks.is_present(*i));
            index::add_chunks(&mut lock(&self.db), entry.id, &written)?;
            let mut added = 0;
            for (idx, sum) in &written {
                // Verified: the sum was computed from the very bytes just written, and this
                // process reads them back from the page cache. A later process verifies them
                // on first read (they were not fsynced).
                chunks.insert(*idx, *sum);
                chunks.set_verified(*idx, *sum);
                added += layout.len(*idx);
            }
            entry.stored.fetch_add(added, Ordering::AcqRel);
            added
        };
        reservation.settle(added);
        let unchecked = entry.is_complete()
            && entry.kind != KeyKind::Opaque
            && !lock(&entry.chunks).whole_verified;
        Ok(unchecked.then_some(entry))
    }

    /// Checks a complete `c`/`m` entry against its key unless already done; `Corrupt` when it
    /// did not match (the entry was dropped).
    pub fn check_whole(&self, entry: &Arc<Entry>) -> Result<(), CacheError> {
        if entry.kind == KeyKind::Opaque
            || !entry.is_complete()
            || lock(&entry.chunks).whole_verified
        {
            return Ok(());
        }
        match self.verify_whole(entry, false)? {
            Check::EntryDropped => Err(CacheError::Corrupt(format!(
                "{}: content does not match the key",
                entry.key
            ))),
            Check::Good | Check::ChunksDropped => Ok(()),
        }
    }

    pub fn insert_file(
        &self,
        key: &str,
        src: &Path,
        dirty: bool,
        how: InsertHow<'_>,
    ) -> Result<(), CacheError> {
        // Not following symlinks: the object must be a file of our own, not a link out.
        let meta = std::fs::symlink_metadata(src)?;
        if !meta.is_file() {
            return Err(CacheError::InvalidConfig(format!(
                "{} is not a regular file",
                src.display()
            )));
        }
        let size = meta.len();
        let kind = key_kind(key);
        let layout = Layout::new(size, self.chunk_size);
        let sums = match how.digest {
            Some(d) if self.digest_fits(d, key, size, layout) => d.chunk_sums.clone(),
            _ => hash_source(src, layout, kind, key)?,
        };
        let guard = lock(&self.acct);
        if let Some(existing) = self.get(key) {
            // Same key, same content: a clean copy need not replace what we have. A dirty one
            // (the only copy of a save) does, so that it never depends on older cached bytes.
            if !dirty && existing.is_complete() && existing.layout.size == size {
                self.touch(&existing);
                std::fs::remove_file(src)?;
                return Ok(());
            }
            self.drop_entry(&guard, &existing)?;
        }
        let reservation = self.reserve_locked(&guard, size, !dirty, Some(key))?;
        let path = self.object_path(key);
        move_in(src, &path, how.sync)?;
        let tick = self.tick.fetch_add(1, Ordering::AcqRel);
        let row = NewEntry {
            key,
            size,
            chunk: self.chunk_size,
            dirty,
            whole_verified: kind != KeyKind::Opaque,
            last_access: tick,
            sums: &sums,
        };
        let id = match index::insert_entry(&mut lock(&self.db), &row, how.sync) {
            Ok(id) => id,
            Err(e) => {
                // Give the caller its file back rather than lose a save.
                if std::fs::rename(&path, src).is_err() {
                    let _ = std::fs::remove_file(&path);
                }
                return Err(e);
            }
        };
        let entry = Entry::new(EntryInit {
            id,
            key: key.to_owned(),
            kind,
            layout,
            path,
            stored: size,
            dirty,
            whole_verified: kind != KeyKind::Opaque,
            last_access: tick,
        });
        {
            let mut chunks = lock(&entry.chunks);
            chunks.loaded = true;
            for (idx, sum) in sums.iter().enumerate() {
                chunks.insert(idx as u64, *sum);
            }
        }
        reservation.settle(size);
        self.insert_entry_locked(&guard, entry);
        Ok(())
    }

    /// True when `d` describes exactly the file about to be moved in under `key`, cut at this
    /// cache's chunk size, so its checksums can be used without reading the file again.
    fn digest_fits(&self, d: &FileDigest, key: &str, size: u64, layout: Layout) -> bool {
        d.size == size
            && d.chunk_size == self.chunk_size
            && d.chunk_sums.len() as u64 == layout.count()
            && key_kind(key) == KeyKind::CellsHash
            && key.get(1..) == Some(d.cells_hash.as_str())
    }

    pub fn mark_clean(&self, key: &str) -> Result<(), CacheError> {
        let Some(entry) = self.get(key) else {
            return Ok(());
        };
        let chunks = lock(&entry.chunks);
        if !chunks.removed && entry.dirty.load(Ordering::Acquire) {
            index::set_flag(&lock(&self.db), entry.id, Flag::Dirty, false)?;
            entry.dirty.store(false, Ordering::Release);
        }
        Ok(())
    }
}

/// Computes the chunk checksums of `src` and checks its content against the key (for `c`/`m`
/// keys); refuses the file, unchanged, on mismatch or if it changes size while being read.
fn hash_source(
    src: &Path,
    layout: Layout,
    kind: KeyKind,
    key: &str,
) -> Result<Vec<[u8; 16]>, CacheError> {
    let mut file = std::fs::File::open(src)?;
    let mut hasher = ContentHasher::for_kind(kind);
    let mut sums = Vec::new();
    let mut buf = Vec::new();
    for idx in 0..layout.count() {
        buf.resize(usize::try_from(layout.len(idx)).unwrap_or(0), 0);
        file.read_exact(&mut buf)?;
        sums.push(chunk_sum(&buf));
        if let Some(h) = hasher.as_mut() {
            h.update(&buf);
        }
    }
    if file.read(&mut [0u8; 1])? != 0 {
        return Err(CacheError::Corrupt(format!(
            "{key}: source file grew while being cached"
        )));
    }
    if let Some(h) = hasher
        && !h.matches_key(key)
    {
        return Err(CacheError::Corrupt(format!(
            "{key}: file content does not match the key"
        )));
    }
    Ok(sums)
}

fn create_parent(path: &Path) -> Result<(), CacheError> {
    if let Some(parent) = path.parent() {
        fsio::ensure_private_dir(parent)?;
    }
    Ok(())
}

/// Moves `src` to `dest`: rename when on the same file system, else copy to a temporary name,
/// rename, and delete the source. The result is owner-only. With `sync`, the data and the new
/// name are made durable first; without, durability is the caller's (a torn chunk after a
/// power loss fails its checksum and is never served).
fn move_in(src: &Path, dest: &Path, sync: bool) -> Result<(), CacheError> {
    if sync {
        std::fs::OpenOptions::new()
            .read(true)
            .write(cfg!(windows))
            .open(src)?
            .sync_all()?;
    }
    // The folder of `dest` is made on first use only: on a small-file burst, making sure of
    // it every time cost more system calls than the move itself.
    let renamed = match std::fs::rename(src, dest) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_parent(dest)?;
            std::fs::rename(src, dest)
        }
        other => other,
    };
    match renamed {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
            let tmp = PathBuf::from(format!("{}.part", dest.display()));
            let mut out = fsio::private_options()
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            std::io::copy(&mut std::fs::File::open(src)?, &mut out)?;
            if sync {
                out.sync_all()?;
            }
            std::fs::rename(&tmp, dest)?;
            std::fs::remove_file(src)?;
        }
        Err(e) => return Err(e.into()),
    }
    fsio::ensure_private_file(dest)?;
    if sync && let Some(parent) = dest.parent() {
        fsio::sync_dir(parent)?;
    }
    Ok(())
}

/// The parts of `data` (one run of bytes in pieces) covering bytes `from..to` of the run;
/// `None` when the run is shorter.
fn pieces_within<'a>(data: &[&'a [u8]], from: usize, to: usize) -> Option<Vec<&'a [u8]>> {
    let (mut out, mut at) = (Vec::new(), 0usize);
    for piece in data {
        let (lo, hi) = (at, at + piece.len());
        at = hi;
        if from.max(lo) < to.min(hi) {
            out.push(piece.get(from.max(lo) - lo..to.min(hi) - lo)?);
        }
    }
    (at >= to && from <= to).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::pieces_within;

    #[test]
    fn pieces_within_covers_exactly_the_asked_bytes() {
        let data: [&[u8]; 3] = [b"abc", b"defg", b"h"];
        let joined = |v: Vec<&[u8]>| v.concat();
        assert_eq!(joined(pieces_within(&data, 0, 8).unwrap()), b"abcdefgh");
        assert_eq!(joined(pieces_within(&data, 2, 5).unwrap()), b"cde");
        assert_eq!(pieces_within(&data, 3, 7).unwrap(), vec![&b"defg"[..]]);
        assert!(pieces_within(&data, 4, 4).unwrap().is_empty());
        assert_eq!(pieces_within(&data, 6, 9), None, "past the end of the run");
    }
}
