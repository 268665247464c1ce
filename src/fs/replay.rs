//! Start-up: a move or delete the journal holds but the index never applied (a kill between
//! the two) is applied to the index before the mount serves, so the folder shows what the
//! uploader is about to make true on the server, and what the user does next is journaled
//! against the right names. The index records which operations it applied
//! ([`crate::meta::MetaStore::applied_journal_ops`]); exactly the others are replayed.

use super::api::*;
use super::core::CellsFs;
use crate::client::Remote;
use crate::sync::{Journal, OpKind};
use std::collections::HashSet;

impl<R: Remote> CellsFs<R> {
    /// Applies the journal's moves and deletes the index lacks. Blocking; returns how many
    /// changed the index.
    pub(super) fn replay_journaled_moves(&self, journal: &Journal) -> FsResult<usize> {
        let meta_err = super::errors::from_meta_error;
        let pending = journal.pending();
        let pending_seqs: HashSet<i64> = pending.iter().map(|op| op.seq).collect();
        let Some(applied) = self.meta.applied_journal_ops().map_err(meta_err)? else {
            // An index from before the record: its operations were applied as they were
            // journaled (only a kill in between escaped it, as it did then).
            let seqs: Vec<i64> = pending_seqs.iter().copied().collect();
            self.meta
                .mark_journal_ops_applied(&seqs)
                .map_err(meta_err)?;
            return Ok(0);
        };
        let mut changed = 0;
        for op in pending.iter().filter(|op| !applied.contains(&op.seq)) {
            let seq = [op.seq];
            let done = match &op.kind {
                OpKind::Delete { path, .. } => match self.meta.by_path(path).map_err(meta_err)? {
                    Some(rec) => {
                        self.meta.delete_local(rec.ino, &seq).map_err(meta_err)?;
                        tracing::warn!("{path}: the delete cut short by a crash is applied");
                        true
                    }
                    None => false,
                },
                OpKind::Rename { from, to } => {
                    let rec = self.meta.by_path(from).map_err(meta_err)?;
                    let dir = self.meta.by_path(&to.parent()).map_err(meta_err)?;
                    match (rec, dir.filter(|d| d.is_dir())) {
                        (Some(rec), Some(dir)) => {
                            self.meta
                                .rename_local(rec.ino, dir.ino, to.name(), &seq)
                                .map_err(meta_err)?;
                            tracing::warn!(
                                "{from}: the move to {to} cut short by a crash is applied"
                            );
                            true
                        }
                        _ => false,
                    }
                }
                OpKind::Upload { .. } | OpKind::Mkdir { .. } => continue,
            };
            if done {
                changed += 1;
            } else {
                // Nothing left to apply; recorded so that a later start never applies it to
                // a file that takes the name meanwhile.
                self.meta.mark_journal_ops_applied(&seq).map_err(meta_err)?;
            }
        }
        self.meta
            .forget_applied_journal_ops_except(&pending_seqs)
            .map_err(meta_err)?;
        Ok(changed)
    }
}
