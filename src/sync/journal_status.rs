//! The journal's reporting side and the calls the uploader makes as operations run: claims,
//! completion, deferral with backoff, conflict records, queue statistics.

use super::*;
use cells_cache::sqlite::CachedExecute;

/// A recorded conflict, until the user dismisses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictRecord {
    pub id: i64,
    pub path: RemotePath,
    /// Where our version went; `None` when a local delete was not applied (server kept).
    pub saved_as: Option<RemotePath>,
    /// Unix seconds.
    pub at: i64,
}

impl ConflictRecord {
    pub fn describe(&self) -> String {
        match &self.saved_as {
            Some(s) if *s == self.path => format!(
                "{}: deleted on the server while edited here; the local version was kept",
                self.path
            ),
            Some(s) => format!("{}: local version saved as {s}", self.path),
            None => format!("{}: not deleted, the server has a newer version", self.path),
        }
    }
}

impl Journal {
    pub fn stats(&self) -> QueueStats {
        let conflicts = self
            .conflicts()
            .map(|c| c.iter().map(ConflictRecord::describe).collect())
            .unwrap_or_else(|e| vec![format!("(conflicts unreadable: {e})")]);
        let inner = self.lock();
        let mut stats = QueueStats {
            pending_ops: inner.ops.len() as u64,
            in_flight: inner.in_flight.len() as u64,
            conflicts,
            ..QueueStats::default()
        };
        // Files, not journal rows: two saves of one file waiting in line are one file to
        // upload, of the size of its latest save (ops are in line order, so it wins).
        let mut files: BTreeMap<&RemotePath, u64> = BTreeMap::new();
        for op in inner.ops.values() {
            if let OpKind::Upload { path, size, .. } = &op.kind {
                files.insert(path, *size);
            }
            if op.state == OpState::Error {
                let reason = op.last_error.clone().unwrap_or_default();
                stats.errors.push((op.kind.main_path().to_string(), reason));
            }
        }
        let (incoming, incoming_bytes) = self.incoming();
        stats.pending_uploads = files.len() as u64 + incoming;
        stats.pending_bytes = files.values().sum::<u64>() + incoming_bytes;
        stats.pending_ops += incoming;
        stats
    }

    pub fn conflicts(&self) -> Result<Vec<ConflictRecord>, SyncError> {
        let inner = self.lock();
        let mut stmt = inner
            .conn
            .prepare("SELECT id, path, saved_as, at FROM conflicts ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, path, saved_as, at) = row?;
            let parse =
                |s: &str| RemotePath::parse(s).map_err(|e| SyncError::Corrupt(e.to_string()));
            out.push(ConflictRecord {
                id,
                path: parse(&path)?,
                saved_as: saved_as.as_deref().map(parse).transpose()?,
                at,
            });
        }
        Ok(out)
    }

    /// The user has seen (resolved) a conflict.
    pub fn dismiss_conflict(&self, id: i64) -> Result<(), SyncError> {
        self.lock()
            .conn
            .exec("DELETE FROM conflicts WHERE id=?1", [id])?;
        Ok(())
    }

    pub(crate) fn record_conflict(
        &self,
        path: &RemotePath,
        saved_as: Option<&RemotePath>,
    ) -> Result<(), SyncError> {
        self.lock().conn.exec(
            "INSERT INTO conflicts(path, saved_as, at) VALUES (?1, ?2, ?3)",
            rusqlite::params![path.as_str(), saved_as.map(|s| s.as_str()), now_ms() / 1000],
        )?;
        Ok(())
    }

    /// Claims up to `limit` ready operations for running; returns them and the time the next
    /// backing-off one becomes ready.
    pub(crate) fn claim_ready(&self, limit: usize) -> (Vec<Op>, Option<i64>) {
        let mut inner = self.lock();
        let scan = order::scan(inner.ops.values(), &inner.in_flight, now_ms(), limit);
        let mut claimed = Vec::with_capacity(scan.ready.len());
        for seq in scan.ready {
            if let Some(op) = inner.ops.get(&seq).cloned() {
                inner.in_flight.insert(seq);
                claimed.push(op);
            }
        }
        (claimed, scan.next_wake_ms)
    }

    /// A claimed operation did not finish (its task ended): it is pending again.
    pub(crate) fn release(&self, seq: i64) {
        self.lock().in_flight.remove(&seq);
        self.notify();
    }

    /// Records durably where an upload is about to send bytes.
    pub(crate) fn mark_started(&self, seq: i64, target: &RemotePath) -> Result<(), SyncError> {
        let mut inner = self.lock();
        let Some(mut op) = inner.ops.get(&seq).cloned() else {
            return Ok(());
        };
        op.started_target = Some(target.clone());
        schema::update(&inner.conn, &op)?;
        inner.ops.insert(op);
        Ok(())
    }

    /// The operation reached the server: its row and staged copy go.
    pub(crate) fn complete(&self, seq: i64) -> Result<(), SyncError> {
        let mut inner = self.lock();
        inner.conn.exec("DELETE FROM ops WHERE seq=?1", [seq])?;
        inner.in_flight.remove(&seq);
        let op = inner.ops.remove(&seq);
        drop(inner);
        if let Some(Op {
            kind:
                OpKind::Upload {
                    staging,
                    cells_hash,
                    ..
                },
            ..
        }) = op
        {
            self.forget_staged(&staging, &cells_hash);
        }
        self.notify();
        Ok(())
    }

    /// The operation failed; it is retried after `delay_ms`, in the error state if `error`.
    /// Returns the updated op.
    pub(crate) fn defer(
        &self,
        seq: i64,
        delay_ms: i64,
        reason: &str,
        error: bool,
    ) -> Result<Option<Op>, SyncError> {
        let mut inner = self.lock();
        inner.in_flight.remove(&seq);
        let Some(mut op) = inner.ops.get(&seq).cloned() else {
            return Ok(None);
        };
        op.attempts = op.attempts.saturating_add(1);
        op.not_before_ms = now_ms() + delay_ms;
        op.last_error = Some(reason.to_owned());
        op.state = if error {
            OpState::Error
        } else {
            OpState::Queued
        };
        let saved = schema::update(&inner.conn, &op);
        inner.ops.insert(op.clone());
        let superseded = match saved {
            Ok(()) => absorb_next_save(&mut inner, seq)?,
            Err(e) => return Err(e),
        };
        let op = inner.ops.get(&seq).cloned();
        drop(inner);
        if let Some((staging, hash)) = superseded {
            self.forget_staged(&staging, &hash);
        }
        self.notify();
        Ok(op)
    }

    /// The server is back: operations waiting out an offline backoff may run now (those in
    /// the error state keep their long backoff).
    pub(crate) fn wake_queued(&self) {
        let mut inner = self.lock();
        for op in inner.ops.values_mut() {
            if op.state == OpState::Queued {
                op.not_before_ms = 0;
            }
        }
        drop(inner);
        self.notify();
    }

    /// True when nothing is pending but operations in error and those behind them.
    pub(crate) fn drained(&self) -> bool {
        if self.incoming().0 > 0 {
            return false;
        }
        let inner = self.lock();
        inner.in_flight.is_empty() && order::only_errors_left(inner.ops.values())
    }
}

/// A save that could not coalesce with the upload before it (that one was running) and is
/// next in line for the same file: once the earlier upload is back in line without having
/// sent a byte, the newer content replaces its content, as coalescing would have done: the
/// entry keeps its place and the base version its edit started from, and only the latest
/// content is uploaded. Returns the replaced staged file, for the caller to forget.
fn absorb_next_save(inner: &mut Inner, seq: i64) -> Result<Option<(String, String)>, SyncError> {
    let Some(earlier) = inner.ops.get(&seq) else {
        return Ok(None);
    };
    let OpKind::Upload { path, .. } = &earlier.kind else {
        return Ok(None);
    };
    if earlier.started_target.is_some() {
        // Bytes may have reached the server: its version could be this one now.
        return Ok(None);
    }
    let next = inner.ops.range(seq + 1..).find(|op| {
        op.kind
            .paths()
            .iter()
            .any(|p| p.starts_with(path) || path.starts_with(p))
    });
    let Some(later) = next else {
        return Ok(None);
    };
    let OpKind::Upload {
        path: later_path,
        staging,
        size,
        cells_hash,
        md5,
        ..
    } = &later.kind
    else {
        return Ok(None);
    };
    if later_path != path || later.started_target.is_some() || inner.in_flight.contains(&later.seq)
    {
        return Ok(None);
    }
    let later_seq = later.seq;
    let mut merged = earlier.clone();
    let replaced = match &mut merged.kind {
        OpKind::Upload {
            staging: s,
            size: z,
            cells_hash: h,
            md5: m,
            ..
        } => {
            let old = (
                std::mem::replace(s, staging.clone()),
                std::mem::replace(h, cells_hash.clone()),
            );
            *z = *size;
            *m = md5.clone();
            old
        }
        _ => return Ok(None),
    };
    let tx = inner.conn.unchecked_transaction()?;
    schema::update(&tx, &merged)?;
    tx.exec("DELETE FROM ops WHERE seq=?1", [later_seq])?;
    tx.commit()?;
    inner.ops.remove(&later_seq);
    inner.ops.insert(merged);
    Ok(Some(replaced))
}
