//! File versions in the journal: staging a closed file and recording its upload (replacing a
//! queued save of the same path), saves still being handed over, and the pending versions a
//! restarted mount puts back in the cache.

use super::*;

impl Journal {
    /// Journals a finished file version: `src` is staged (hard link or copy) and digested,
    /// then, with a cache, moved into it as a dirty entry; the row is committed before
    /// returning. A pending, not yet started save of the same path is replaced in place.
    /// The caller must not modify `src` in place afterwards (it may be the staged inode).
    ///
    /// Durable against the death of the process on return; against a power loss once
    /// [`Journal::sync`] ran (fsync calls it; so does the background sync every few seconds).
    pub fn enqueue_upload(
        &self,
        path: &RemotePath,
        src: &Path,
        base: Option<ContentVersion>,
    ) -> Result<EnqueuedUpload, SyncError> {
        self.enqueue_upload_digested(path, src, base, None)
    }

    /// [`Journal::enqueue_upload`] with the digests the writer computed while writing `src`
    /// in order (they spare reading it again; ignored unless they describe it).
    pub fn enqueue_upload_digested(
        &self,
        path: &RemotePath,
        src: &Path,
        base: Option<ContentVersion>,
        digest: Option<FileDigest>,
    ) -> Result<EnqueuedUpload, SyncError> {
        check_path(path)?;
        let staged = staging::stage(&self.staging_dir, src, digest, self.chunk_size())?;
        let cache_key = ContentVersion {
            kind: HashKind::CellsHash,
            value: staged.digest.cells_hash.clone(),
        }
        .cache_key();
        // The row first, then the cache takes `src`: until the row is committed, `src` is
        // still where the caller's crash recovery looks for it.
        let (seq, coalesced, replaced) = match self.record_upload(path, &staged, base) {
            Ok(recorded) => recorded,
            Err(e) => {
                let _ = std::fs::remove_file(self.staging_dir.join(&staged.name));
                return Err(e);
            }
        };
        lock_unsynced(&self.unsynced).push(staged.name.clone());
        let cached = match &self.cache {
            Some(cache) => match cache.insert_saved(src, &staged.digest) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!("could not put the new version of {path} in the cache: {e}");
                    false
                }
            },
            None => false,
        };
        if let Some(old) = replaced {
            self.forget_staged(&old.0, &old.1);
        }
        self.notify();
        Ok(EnqueuedUpload {
            seq,
            size: staged.digest.size,
            cells_hash: staged.digest.cells_hash,
            cache_key,
            coalesced,
            cached,
        })
    }

    /// Counts a closed save of `bytes` as pending until the returned guard is dropped.
    pub fn announce_save(self: &Arc<Self>, bytes: u64) -> IncomingSave {
        self.incoming.fetch_add(1, Ordering::AcqRel);
        self.incoming_bytes.fetch_add(bytes, Ordering::AcqRel);
        self.last_save_ms.store(now_ms(), Ordering::Release);
        IncomingSave {
            journal: self.clone(),
            bytes,
        }
    }

    /// When the last save was announced (Unix ms; 0 before any).
    pub(crate) fn last_save_ms(&self) -> i64 {
        self.last_save_ms.load(Ordering::Acquire)
    }

    /// Saves announced and not yet journaled (or dropped), and their bytes.
    pub(crate) fn incoming(&self) -> (u64, u64) {
        (
            self.incoming.load(Ordering::Acquire),
            self.incoming_bytes.load(Ordering::Acquire),
        )
    }

    /// True for an upload journaled by an earlier run whose staged copy was not checked yet
    /// (a power loss may have torn it).
    pub fn from_earlier_run(&self, seq: i64) -> bool {
        self.lock().from_earlier_run.contains(&seq)
    }

    pub fn checked_after_restart(&self, seq: i64) {
        self.lock().from_earlier_run.remove(&seq);
    }

    /// The version the last pending operation on `path` leaves there, when that operation is
    /// an upload of exactly `path`: (size, Cells hash).
    pub fn pending_version(&self, path: &RemotePath) -> Option<(u64, String)> {
        let inner = self.lock();
        let last = inner.ops.latest_touching(path)?;
        match &last.kind {
            OpKind::Upload {
                path: p,
                size,
                cells_hash,
                ..
            } if p == path => Some((*size, cells_hash.clone())),
            _ => None,
        }
    }

    /// Puts the staged copy of every pending upload back in the cache where it is missing (a
    /// kill between journaling a save and the cache taking it): reads of a file waiting for
    /// upload are served from there. Returns how many were restored.
    pub fn restore_cached_versions(&self) -> usize {
        let Some(cache) = &self.cache else { return 0 };
        let uploads: Vec<(String, String)> = self
            .lock()
            .ops
            .values()
            .filter_map(|op| match &op.kind {
                OpKind::Upload {
                    staging,
                    cells_hash,
                    ..
                } => Some((staging.clone(), cells_hash.clone())),
                _ => None,
            })
            .collect();
        let mut restored = 0;
        for (staging, hash) in uploads {
            let key = format!("c{hash}");
            if matches!(cache.state(&key), Ok(cells_cache::EntryState::Complete)) {
                continue;
            }
            // A copy: the staged file itself must stay where the uploader reads it.
            let copy = self.staging_dir.join(format!("{staging}.restore"));
            let done = std::fs::copy(self.staging_dir.join(&staging), &copy)
                .map_err(|e| e.to_string())
                .and_then(|_| {
                    FileDigester::of_file(&copy, cache.chunk_size()).map_err(|e| e.to_string())
                })
                .and_then(|digest| {
                    if digest.cells_hash != hash {
                        return Err("the staged copy does not match its hash".into());
                    }
                    cache
                        .insert_saved(&copy, &digest)
                        .map_err(|e| e.to_string())
                });
            match done {
                Ok(()) => restored += 1,
                Err(e) => {
                    let _ = std::fs::remove_file(&copy);
                    tracing::warn!("could not put a pending version back in the cache: {e}");
                }
            }
        }
        restored
    }

    /// Returns (seq, coalesced, replaced (staging name, cells hash)).
    #[allow(clippy::type_complexity)]
    fn record_upload(
        &self,
        path: &RemotePath,
        staged: &staging::Staged,
        base: Option<ContentVersion>,
    ) -> Result<(i64, bool, Option<(String, String)>), SyncError> {
        let mut inner = self.lock();
        let latest = inner.ops.latest_touching(path).map(|op| op.seq);
        // An upload that started may have reached the server before a crash or a failure:
        // its content is then the server's version, and the next save must be checked
        // against it, not against the older base a merged entry would keep.
        if let Some(seq) = latest
            && !inner.in_flight.contains(&seq)
            && let Some(op) = inner.ops.get(&seq)
            && op.started_target.is_none()
            && let OpKind::Upload { path: p, .. } = &op.kind
            && p == path
        {
            let mut op = op.clone();
            let OpKind::Upload {
                staging,
                size,
                cells_hash,
                md5,
                ..
            } = &mut op.kind
            else {
                unreachable!("matched an upload above")
            };
            let old = (
                std::mem::replace(staging, staged.name.clone()),
                std::mem::replace(cells_hash, staged.digest.cells_hash.clone()),
            );
            *size = staged.digest.size;
            md5.clear();
            op.state = OpState::Queued;
            op.attempts = 0;
            op.not_before_ms = 0;
            op.last_error = None;
            schema::update(&inner.conn, &op)?;
            tracing::debug!(seq, "a new save of {path} replaces the queued one");
            inner.ops.insert(op);
            return Ok((seq, true, Some(old)));
        }
        let kind = OpKind::Upload {
            path: path.clone(),
            staging: staged.name.clone(),
            size: staged.digest.size,
            cells_hash: staged.digest.cells_hash.clone(),
            // Computed by the uploader if a server without Cells hashes needs it.
            md5: String::new(),
            base,
        };
        let seq = insert_op(&mut inner, kind)?;
        Ok((seq, false, None))
    }

    /// Removes a staged file no op needs any more and lets the cache evict its version
    /// unless another pending upload has the same content.
    pub(super) fn forget_staged(&self, staging_name: &str, cells_hash: &str) {
        if let Err(e) = std::fs::remove_file(self.staging_dir.join(staging_name)) {
            tracing::warn!("could not remove the staging file {staging_name}: {e}");
        }
        let still_needed =
            self.lock().ops.values().any(
                |op| matches!(&op.kind, OpKind::Upload { cells_hash: h, .. } if h == cells_hash),
            );
        if let (Some(cache), false) = (&self.cache, still_needed) {
            let key = ContentVersion {
                kind: HashKind::CellsHash,
                value: cells_hash.to_owned(),
            }
            .cache_key();
            if let Err(e) = cache.mark_clean(&key) {
                tracing::warn!("could not mark {key} clean in the cache: {e}");
            }
        }
    }
}
