//! readdir over per-handle snapshots with stable offsets, sized to what the kernel takes.
//!
//! Offsets: 0 = start, 1 = after `.`, 2 = after `..`, `2 + i + 1` = after child `i` of the
//! snapshot taken at opendir. Children deleted since are skipped; offsets stay valid.
//!
//! A warm `ls -l` of a big folder is dozens of readdir calls. Each is answered at once on the
//! adapter's thread when every record it needs is in memory (`readdir_now`), and each builds
//! about as many entries as the kernel's buffer took last time (`Pace`), not a fixed batch the
//! kernel mostly throws away.

use super::api::*;
use super::core::{CellsFs, lock};
use crate::client::Remote;
use crate::meta::InodeRecord;
use std::sync::{Arc, Mutex};

/// Most entries built for one call.
const BATCH_MAX: usize = 512;
/// Entries built for a handle's first call.
const BATCH_FIRST: usize = 128;
/// Built beyond what the kernel took last time (names differ in length).
const BATCH_MARGIN: usize = 16;

/// An open folder: its children at opendir, and how much the kernel takes per call.
pub struct DirHandle {
    children: Vec<Ino>,
    pace: Mutex<Pace>,
}

/// The last call's first offset, the offset after the last entry it offered, and the size of
/// the next batch.
struct Pace {
    start: u64,
    end: u64,
    batch: usize,
}

impl DirHandle {
    pub fn new(children: Vec<Ino>) -> Self {
        Self {
            children,
            pace: Mutex::new(Pace {
                start: 0,
                end: 0,
                batch: BATCH_FIRST,
            }),
        }
    }

    /// Entries to build for a call at `offset`. A call starting inside the last batch shows
    /// how many the kernel took (its buffer is the same size each time); one starting at its
    /// end took everything, so the batch grows.
    /// Asking twice gives the same answer: only [`Self::offered`] moves the pace on.
    fn batch_for(&self, offset: u64) -> usize {
        let pace = lock(&self.pace);
        if pace.start < offset && offset < pace.end {
            let took = usize::try_from(offset - pace.start).unwrap_or(BATCH_MAX);
            took.saturating_add(BATCH_MARGIN).min(BATCH_MAX)
        } else if offset == pace.end && pace.end > 0 {
            pace.batch.saturating_mul(2).min(BATCH_MAX)
        } else {
            pace.batch
        }
    }

    /// A call at `start`, built with `batch`, offered entries up to offset `end` (`None`:
    /// none, the end of the folder).
    fn offered(&self, start: u64, batch: usize, end: Option<u64>) {
        if let Some(end) = end {
            *lock(&self.pace) = Pace { start, end, batch };
        }
    }
}

impl<R: Remote> CellsFs<R> {
    pub(super) fn open_dir_handle(&self, children: Vec<Ino>) -> Fh {
        let fh = self.next_handle();
        lock(&self.dirs).insert(fh, Arc::new(DirHandle::new(children)));
        fh
    }

    fn dir_handle(&self, fh: Fh) -> FsResult<Arc<DirHandle>> {
        lock(&self.dirs).get(&fh).cloned().ok_or(FsError::BadHandle)
    }

    /// [`Self::do_readdir`] when every record it needs is in memory: no task, no blocking
    /// thread. `None`: the caller takes the async way.
    pub(super) fn do_readdir_now(
        &self,
        ino: Ino,
        fh: Fh,
        offset: u64,
    ) -> Option<FsResult<Vec<DirEntry>>> {
        let handle = match self.dir_handle(fh) {
            Ok(h) => h,
            Err(e) => return Some(Err(e)),
        };
        let dir = self.meta.cached(ino)?;
        let parent = self.meta.cached(self.parent_of(ino, &dir))?;
        let mut out = self.dots(ino, &dir, &parent, offset);
        let dots = out.len();
        let batch = handle.batch_for(offset);
        let mut first = usize::try_from(offset.saturating_sub(2)).unwrap_or(usize::MAX);
        // A batch whose children were all deleted since opendir must not end the listing early.
        while out.len() == dots && first < handle.children.len() {
            let closes_before = self.write_closes();
            for (i, child) in handle.children.iter().enumerate().skip(first).take(batch) {
                let rec = self.meta.cached(*child)?;
                out.extend(self.child_entry_now(ino, i, &rec, closes_before)?);
            }
            first = first.saturating_add(batch);
        }
        handle.offered(offset, batch, out.last().map(|e| e.next_offset));
        Some(Ok(out))
    }

    pub(super) async fn do_readdir(
        &self,
        ino: Ino,
        fh: Fh,
        offset: u64,
    ) -> FsResult<Vec<DirEntry>> {
        let handle = self.dir_handle(fh)?;
        let dir = self.record(ino).await?;
        let parent_ino = self.parent_of(ino, &dir);
        let parent = match self.record(parent_ino).await {
            Ok(p) => p,
            Err(_) => dir.clone(),
        };
        let mut out = self.dots(ino, &dir, &parent, offset);
        let dots = out.len();
        let batch = handle.batch_for(offset);
        let mut first = usize::try_from(offset.saturating_sub(2)).unwrap_or(usize::MAX);
        while out.len() == dots && first < handle.children.len() {
            let wanted: Vec<(usize, Ino)> = handle
                .children
                .iter()
                .copied()
                .enumerate()
                .skip(first)
                .take(batch)
                .collect();
            first = first.saturating_add(batch);
            let closes_before = self.write_closes();
            // Records in memory are taken as they are; only the others cost a blocking hop.
            let mut records: Vec<(usize, Option<Arc<InodeRecord>>)> = wanted
                .iter()
                .map(|&(i, child)| (i, self.meta.cached(child)))
                .collect();
            let misses: Vec<(usize, Ino)> = wanted
                .into_iter()
                .zip(&records)
                .filter(|(_, (_, rec))| rec.is_none())
                .map(|(w, _)| w)
                .collect();
            if !misses.is_empty() {
                let found = self
                    .meta(move |m| {
                        let mut recs = Vec::with_capacity(misses.len());
                        for (i, child) in misses {
                            recs.push((i, m.get(child)?));
                        }
                        Ok(recs)
                    })
                    .await?;
                records.retain(|(_, rec)| rec.is_some());
                records.extend(found);
                records.sort_unstable_by_key(|(i, _)| *i);
            }
            for (i, rec) in records {
                // Deleted or moved elsewhere since opendir: skipped, offsets unchanged.
                let Some(rec) = rec.filter(|r| r.parent == ino) else {
                    continue;
                };
                let attr = self.current_attr(rec.clone(), closes_before).await?;
                out.push(child_entry(i, &rec, attr));
            }
        }
        handle.offered(offset, batch, out.last().map(|e| e.next_offset));
        Ok(out)
    }

    pub(super) fn do_releasedir(&self, fh: Fh) {
        lock(&self.dirs).remove(&fh);
    }

    fn parent_of(&self, ino: Ino, dir: &InodeRecord) -> Ino {
        if ino == ROOT_INO {
            ROOT_INO
        } else {
            dir.parent
        }
    }

    /// `.` and `..` when `offset` has not passed them.
    fn dots(
        &self,
        ino: Ino,
        dir: &InodeRecord,
        parent: &InodeRecord,
        offset: u64,
    ) -> Vec<DirEntry> {
        let mut out = Vec::new();
        if offset == 0 {
            out.push(DirEntry {
                ino,
                name: ".".into(),
                kind: FileKind::Dir,
                next_offset: 1,
                attr: self.attr_of(dir),
            });
        }
        if offset <= 1 {
            let parent_ino = self.parent_of(ino, dir);
            let mut attr = self.attr_of(parent);
            attr.ino = parent_ino;
            out.push(DirEntry {
                ino: parent_ino,
                name: "..".into(),
                kind: FileKind::Dir,
                next_offset: 2,
                attr,
            });
        }
        out
    }

    /// The entry for child `i` (`rec`) of folder `ino` without waiting. `Some(None)`: skipped
    /// (deleted or moved since opendir); `None`: its attributes need the async way.
    fn child_entry_now(
        &self,
        ino: Ino,
        i: usize,
        rec: &InodeRecord,
        closes_before: u64,
    ) -> Option<Option<DirEntry>> {
        if rec.parent != ino {
            return Some(None);
        }
        let attr = self.current_attr_now(rec, closes_before)?;
        Some(Some(child_entry(i, rec, attr)))
    }
}

/// The entry for child `i` of the snapshot: its offset is the one after it.
fn child_entry(i: usize, rec: &InodeRecord, attr: Attr) -> DirEntry {
    DirEntry {
        ino: rec.ino,
        name: rec.name.clone(),
        kind: attr.kind,
        next_offset: 2 + i as u64 + 1,
        attr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call at `start` offering the whole batch built for it; how much of it the kernel
    /// took shows in where the next call starts.
    fn call(h: &DirHandle, start: u64) -> usize {
        let batch = h.batch_for(start);
        assert_eq!(h.batch_for(start), batch, "asking again changes nothing");
        h.offered(start, batch, Some(start + batch as u64));
        batch
    }

    #[test]
    fn the_batch_follows_what_the_kernel_took() {
        let h = DirHandle::new((0..10_000).collect());
        assert_eq!(call(&h, 0), BATCH_FIRST);
        // The kernel took all 128: the next batch doubles.
        assert_eq!(call(&h, 128), 256);
        // It took 190 of 256: that is its buffer, plus a margin.
        assert_eq!(call(&h, 318), 190 + BATCH_MARGIN);
        assert_eq!(call(&h, 508), 190 + BATCH_MARGIN);
        // A seek elsewhere keeps the size learned.
        assert_eq!(h.batch_for(5), 190 + BATCH_MARGIN);
        // Taking everything each time grows it up to the cap.
        let mut at = 5;
        for _ in 0..10 {
            at += call(&h, at) as u64;
        }
        assert_eq!(h.batch_for(at), BATCH_MAX);
        // The end of the folder (nothing offered) leaves the pace as it was.
        h.offered(at, 1, None);
        assert_eq!(h.batch_for(at), BATCH_MAX);
    }
}
