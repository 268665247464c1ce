//! Pending operations following a move made on the server (reported by the change feed):
//! which operations follow it, and rewriting their paths in the journal and in memory.

use super::*;

impl Journal {
    /// The server moved `old` to `new` (reported by the change feed): pending operations on
    /// `old` or below it follow. Returns how many were rewritten.
    pub fn retarget(&self, old: &RemotePath, new: &RemotePath) -> Result<usize, SyncError> {
        self.retarget_where(old, new, |_, _| true)
    }

    /// The server moved the file `old` to `new`, and the moved content is `version`: a pending,
    /// not yet started upload of exactly `old` whose edit started from that very version
    /// follows the file (and is retried at once). Nothing else moves: a file created here
    /// under the old name, an edit of another version, or anything after our own rename keeps
    /// its path, so the echo of a rename we made ourselves cannot misdirect a newer upload.
    pub fn retarget_edit(
        &self,
        old: &RemotePath,
        new: &RemotePath,
        version: &ContentVersion,
    ) -> Result<usize, SyncError> {
        // Only when the upload is the one pending operation on either path: otherwise the
        // move may be the echo of our own rename, which later operations here (a rename back,
        // say) already account for; following it would move the wrong file.
        let others = self
            .lock()
            .ops
            .values()
            .filter(|op| {
                op.kind.paths().iter().any(|p| {
                    [old, new]
                        .iter()
                        .any(|q| p.starts_with(q) || q.starts_with(p))
                })
            })
            .filter(|op| !matches!(&op.kind, OpKind::Upload { path, .. } if path == old))
            .count();
        if others > 0 {
            return Ok(0);
        }
        self.retarget_where(old, new, |op, in_flight| {
            // An earlier, failed attempt's `started_target` stays: the uploader still cleans up
            // whatever that attempt left at the old name.
            !in_flight
                && matches!(&op.kind, OpKind::Upload { path, base: Some(base), .. }
                    if path == old && base == version)
        })
    }

    /// Rewrites the paths of the operations `select` picks (given each op and whether it is
    /// running) from below `old` to below `new`.
    fn retarget_where(
        &self,
        old: &RemotePath,
        new: &RemotePath,
        select: impl Fn(&Op, bool) -> bool,
    ) -> Result<usize, SyncError> {
        check_path(old)?;
        check_path(new)?;
        let moved = |p: &RemotePath| -> Result<Option<RemotePath>, SyncError> {
            if !p.starts_with(old) {
                return Ok(None);
            }
            let rest = &p.as_str()[old.as_str().len()..];
            RemotePath::parse(&format!("{}{rest}", new.as_str()))
                .map(Some)
                .map_err(|e| SyncError::Invalid(format!("retargeted path: {e}")))
        };
        let mut inner = self.lock();
        let mut changed = Vec::new();
        for op in inner.ops.values() {
            if !select(op, inner.in_flight.contains(&op.seq)) {
                continue;
            }
            let mut next = op.clone();
            // A new destination is worth trying at once, whatever backoff the old one had.
            next.not_before_ms = 0;
            let mut touched = false;
            match &mut next.kind {
                OpKind::Upload { path, .. }
                | OpKind::Mkdir { path }
                | OpKind::Delete { path, .. } => {
                    if let Some(n) = moved(path)? {
                        *path = n;
                        touched = true;
                    }
                }
                OpKind::Rename { from, to } => {
                    for p in [from, to] {
                        if let Some(n) = moved(p)? {
                            *p = n;
                            touched = true;
                        }
                    }
                }
            }
            if touched {
                changed.push(next);
            }
        }
        let tx = inner.conn.unchecked_transaction()?;
        for op in &changed {
            schema::update(&tx, op)?;
        }
        tx.commit()?;
        let count = changed.len();
        for op in changed {
            inner.ops.insert(op);
        }
        drop(inner);
        self.notify();
        Ok(count)
    }
}
