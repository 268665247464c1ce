//! The local-state overlay of the index: nodes created, changed, moved or deleted here and not
//! yet on the server. A protected row (pending, error, junk) is authoritative over server
//! listings and events; a tombstone keeps a locally deleted or moved-away name from being
//! brought back by a listing until the server has the change. The overlay is cleared by
//! [`MetaStore::clear_settled`] once the journal no longer holds an operation for the path.

use super::apply::{ApplyLog, detach, find, purge_detached};
use super::schema::{kind_to_sql, version_to_sql};
use super::{MetaChange, MetaError, MetaResult, MetaStore, now_ms};
use crate::client::{ContentVersion, NodeKind};
use crate::fs::Ino;
use cells_cache::sqlite::CachedExecute;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// Why a row differs from the server's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalState {
    /// Changed here; the change is queued for upload.
    Pending,
    /// The queued change failed (quota, lock, permission...); it stays queued.
    Error,
    /// Our version was saved beside the original under a conflict name. Informational: the
    /// row shows the server's version again.
    Conflict,
    /// A desktop junk file (`.DS_Store`...): kept locally, never uploaded.
    Junk,
}

impl LocalState {
    pub(super) fn to_sql(self) -> i64 {
        match self {
            LocalState::Pending => 0,
            LocalState::Error => 1,
            LocalState::Conflict => 2,
            LocalState::Junk => 3,
        }
    }

    pub(super) fn from_sql(v: i64) -> MetaResult<Self> {
        match v {
            0 => Ok(LocalState::Pending),
            1 => Ok(LocalState::Error),
            2 => Ok(LocalState::Conflict),
            3 => Ok(LocalState::Junk),
            other => Err(MetaError::Corrupt(format!("unknown local state {other}"))),
        }
    }

    /// Whether server descriptions must leave the row alone.
    pub fn is_protected(self) -> bool {
        !matches!(self, LocalState::Conflict)
    }

    /// The value of the `user.cells.state` attribute.
    pub fn label(self) -> &'static str {
        match self {
            LocalState::Pending => "pending",
            LocalState::Error => "error",
            LocalState::Conflict => "conflict",
            LocalState::Junk => "local",
        }
    }
}

/// What [`MetaStore::clear_settled`] may lift.
#[derive(Clone, Copy)]
pub struct Settled<'a> {
    /// Whether an operation on the path is still queued.
    pub pending: &'a dyn Fn(&str) -> bool,
    /// Tombstones of these paths stay too (an operation just settled them; see the hooks).
    pub keep_stone: &'a dyn Fn(&str) -> bool,
    /// Rows changed locally at or after this (when the caller took its snapshot, Unix ms)
    /// are left alone.
    pub since_ms: i64,
    /// Only these paths (`None`: every overlaid one).
    pub only: Option<&'a [String]>,
}

/// A node created locally.
#[derive(Debug, Clone)]
pub struct NewLocal {
    pub name: String,
    pub kind: NodeKind,
    /// Unix seconds.
    pub mtime: i64,
    pub state: LocalState,
}

/// SQL condition (on `inodes`) of rows that server descriptions must not touch.
pub(super) const PROTECTED_SQL: &str = "local_state IS NOT NULL AND local_state != 2";

/// True when `name` in `parent` was deleted or moved away locally (change still queued).
pub(super) fn is_tombstoned(
    conn: &rusqlite::Connection,
    parent: Ino,
    name: &str,
) -> MetaResult<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM tombstones WHERE parent = ?1 AND name = ?2")?
        .query_row(params![parent as i64, name], |_| Ok(()))
        .optional()?
        .is_some())
}

impl MetaStore {
    /// Adds a locally created child; `Exists` is the caller's to check first (the unique
    /// index refuses a duplicate). A tombstone of the same name is lifted: the new row is
    /// protected itself.
    pub fn insert_local(&self, parent: Ino, node: &NewLocal) -> MetaResult<(Ino, Vec<MetaChange>)> {
        self.insert_local_with(parent, node, None::<fn(Ino) -> String>)
    }

    /// [`Self::insert_local`] of a file created here, with the record of the staging file
    /// `staging_file(ino)` that will hold its content, in the same transaction (one commit
    /// per create instead of two).
    pub fn insert_local_staged(
        &self,
        parent: Ino,
        node: &NewLocal,
        staging_file: impl FnOnce(Ino) -> String,
    ) -> MetaResult<(Ino, Vec<MetaChange>)> {
        self.insert_local_with(parent, node, Some(staging_file))
    }

    fn insert_local_with(
        &self,
        parent: Ino,
        node: &NewLocal,
        staging_file: Option<impl FnOnce(Ino) -> String>,
    ) -> MetaResult<(Ino, Vec<MetaChange>)> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let folder = find(&tx, "ino = ?1 AND parent >= 0", [parent as i64])?
            .filter(|p| p.is_dir())
            .ok_or_else(|| MetaError::Corrupt(format!("folder inode {parent} is gone")))?;
        let path = folder
            .path
            .join(&node.name)
            .map_err(|e| MetaError::Corrupt(format!("refused local name: {e}")))?;
        let now = now_ms();
        // A new folder is empty and known to be: listed "now", never stale while protected.
        let listed = (node.kind == NodeKind::Folder).then_some(now);
        tx.exec(
            "INSERT INTO inodes (parent, name, path, kind, size, mtime, read_only, listed_at,
             seen_at, local_state) VALUES (?1, ?2, ?3, ?4, 0, ?5, 0, ?6, ?7, ?8)",
            params![
                parent as i64,
                node.name,
                path.as_str(),
                kind_to_sql(node.kind),
                node.mtime,
                listed,
                now,
                node.state.to_sql()
            ],
        )?;
        let ino = tx.last_insert_rowid() as Ino;
        tx.exec(
            "DELETE FROM tombstones WHERE parent = ?1 AND name = ?2",
            params![parent as i64, node.name],
        )?;
        if let Some(staging_file) = staging_file {
            let staging = super::OpenStaging {
                file: staging_file(ino),
                ino,
                path: path.as_str().to_owned(),
                base: None,
            };
            super::open_files::write_open_staging(&tx, &staging)?;
        }
        tx.commit()?;
        let changes = vec![MetaChange::EntryAdded {
            parent,
            name: node.name.clone(),
        }];
        self.invalidate(&changes, &[ino, parent], false);
        Ok((ino, changes))
    }

    /// Records new local content of `ino` (a saved version) and marks it `state`.
    pub fn set_local_content(
        &self,
        ino: Ino,
        size: u64,
        mtime: i64,
        version: Option<&ContentVersion>,
        state: LocalState,
    ) -> MetaResult<()> {
        write_local_content(&self.conn(), ino, size, mtime, version, state)?;
        self.inner.by_ino.invalidate(&ino);
        Ok(())
    }

    /// Sets (or with `None` clears) the overlay state of `ino`.
    pub fn set_local_state(
        &self,
        ino: Ino,
        state: Option<LocalState>,
        error: Option<&str>,
    ) -> MetaResult<()> {
        let conn = self.conn();
        conn.exec(
            "UPDATE inodes SET local_state = ?2, local_error = ?3 WHERE ino = ?1",
            params![ino as i64, state.map(LocalState::to_sql), error],
        )?;
        self.inner.by_ino.invalidate(&ino);
        Ok(())
    }

    /// Sets the modification time (Unix seconds) the user gave `ino`.
    pub fn set_mtime(&self, ino: Ino, mtime: i64) -> MetaResult<()> {
        let conn = self.conn();
        conn.exec(
            "UPDATE inodes SET mtime = ?2 WHERE ino = ?1",
            params![ino as i64, mtime],
        )?;
        self.inner.by_ino.invalidate(&ino);
        Ok(())
    }

    /// Removes `ino` (and its subtree) after a local delete. `journaled`: the journal
    /// operations this applies, recorded in the same transaction; while there are any, the
    /// name stays hidden from listings (tombstoned) until they reach the server.
    pub fn delete_local(&self, ino: Ino, journaled: &[i64]) -> MetaResult<Vec<MetaChange>> {
        let tombstone = !journaled.is_empty();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut log = ApplyLog::new(now_ms());
        if let Some(rec) = find(&tx, "ino = ?1 AND parent >= 0", [ino as i64])? {
            if tombstone {
                tx.exec(
                    "INSERT OR REPLACE INTO tombstones (parent, name, path) VALUES (?1, ?2, ?3)",
                    params![rec.parent as i64, rec.name, rec.path.as_str()],
                )?;
            }
            detach(&tx, &mut log, &rec)?;
            purge_detached(&tx, &mut log)?;
        }
        super::applied::record(&tx, journaled)?;
        tx.commit()?;
        self.invalidate(&log.changes, &log.touched, log.paths_rewritten);
        Ok(log.changes)
    }

    /// Moves `ino` to `new_name` in `new_parent`, replacing (deleting) whatever row had that
    /// name. The moved row becomes pending. `journaled`: the journal operations this applies,
    /// recorded in the same transaction; while there are any, the old name stays hidden from
    /// listings until the move reaches the server (none: a move the server made).
    pub fn rename_local(
        &self,
        ino: Ino,
        new_parent: Ino,
        new_name: &str,
        journaled: &[i64],
    ) -> MetaResult<Vec<MetaChange>> {
        let tombstone = !journaled.is_empty();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut log = ApplyLog::new(now_ms());
        let rec = find(&tx, "ino = ?1 AND parent >= 0", [ino as i64])?
            .ok_or_else(|| MetaError::Corrupt(format!("inode {ino} is gone")))?;
        let folder = find(&tx, "ino = ?1 AND parent >= 0", [new_parent as i64])?
            .filter(|p| p.is_dir())
            .ok_or_else(|| MetaError::Corrupt(format!("folder inode {new_parent} is gone")))?;
        let path = folder
            .path
            .join(new_name)
            .map_err(|e| MetaError::Corrupt(format!("refused local name: {e}")))?;
        if let Some(victim) = find(
            &tx,
            "parent = ?1 AND name = ?2",
            params![new_parent as i64, new_name],
        )? && victim.ino != ino
        {
            detach(&tx, &mut log, &victim)?;
            purge_detached(&tx, &mut log)?;
        }
        if tombstone {
            tx.exec(
                "INSERT OR REPLACE INTO tombstones (parent, name, path) VALUES (?1, ?2, ?3)",
                params![rec.parent as i64, rec.name, rec.path.as_str()],
            )?;
        }
        tx.exec(
            "DELETE FROM tombstones WHERE parent = ?1 AND name = ?2",
            params![new_parent as i64, new_name],
        )?;
        tx.exec(
            "UPDATE inodes SET parent = ?2, name = ?3, path = ?4, seen_at = ?5,
             local_state = CASE WHEN local_state = 3 THEN 3 ELSE 0 END WHERE ino = ?1",
            params![
                ino as i64,
                new_parent as i64,
                new_name,
                path.as_str(),
                log.now
            ],
        )?;
        if rec.is_dir() {
            tx.exec(
                "UPDATE inodes SET path = ?2 || substr(path, length(?1) + 1)
                 WHERE substr(path, 1, length(?1) + 1) = ?1 || '/'",
                params![rec.path.as_str(), path.as_str()],
            )?;
            log.paths_rewritten = true;
        }
        super::applied::record(&tx, journaled)?;
        tx.commit()?;
        log.changes.push(MetaChange::EntryGone {
            parent: rec.parent,
            name: rec.name.clone(),
        });
        log.changes.push(MetaChange::EntryAdded {
            parent: new_parent,
            name: new_name.to_owned(),
        });
        log.touched.extend([ino, rec.parent, new_parent]);
        self.invalidate(&log.changes, &log.touched, log.paths_rewritten);
        Ok(log.changes)
    }

    /// Lifts the overlay of every path the journal no longer has an operation for (of
    /// `settled.only`'s paths, when set): tombstones are dropped, pending and error rows show
    /// the server's view again. See [`Settled`] for what is kept.
    pub fn clear_settled(&self, settled: &Settled<'_>) -> MetaResult<Vec<Ino>> {
        let Settled {
            pending,
            keep_stone,
            since_ms,
            only,
        } = *settled;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (stones, rows) = sweep_candidates(&tx, only, since_ms)?;
        let mut folders = Vec::new();
        for (parent, name, path) in stones {
            if !pending(&path) && !keep_stone(&path) {
                tx.exec(
                    "DELETE FROM tombstones WHERE parent = ?1 AND name = ?2",
                    params![parent, name],
                )?;
                folders.push(parent as Ino);
            }
        }
        let mut cleared = Vec::new();
        for (ino, path) in rows {
            if !pending(&path) {
                tx.exec(
                    "UPDATE inodes SET local_state = NULL, local_error = NULL WHERE ino = ?1",
                    [ino],
                )?;
                cleared.push(ino as Ino);
            }
        }
        // Folders whose overlay changed are listed again, to show the server's view.
        for folder in &folders {
            tx.exec(
                "UPDATE inodes SET listed_at = 0 WHERE ino = ?1 AND listed_at IS NOT NULL",
                [*folder as i64],
            )?;
        }
        tx.commit()?;
        self.invalidate(&[], &cleared, false);
        for folder in folders {
            self.inner.by_ino.invalidate(&folder);
        }
        Ok(cleared)
    }
}

/// A tombstone: parent, name, path.
type Stone = (i64, String, String);
/// An overlaid row: ino, path.
type Overlaid = (i64, String);

/// The tombstones and overlaid rows (changed before `since_ms`) a sweep looks at: all of
/// them, or those of `only`'s paths (each an index lookup).
fn sweep_candidates(
    conn: &Connection,
    only: Option<&[String]>,
    since_ms: i64,
) -> MetaResult<(Vec<Stone>, Vec<Overlaid>)> {
    const STONES: &str = "SELECT parent, name, path FROM tombstones";
    const OVERLAID: &str =
        "SELECT ino, path FROM inodes WHERE local_state IN (0, 1) AND seen_at < ?1";
    let stone = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?));
    let overlaid = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?));
    let Some(paths) = only else {
        let mut all_stones = conn.prepare_cached(STONES)?;
        let mut all_rows = conn.prepare_cached(OVERLAID)?;
        let stones = all_stones.query_map([], stone)?.collect::<Result<_, _>>()?;
        let rows = all_rows
            .query_map([since_ms], overlaid)?
            .collect::<Result<_, _>>()?;
        return Ok((stones, rows));
    };
    let mut stone_of = conn.prepare_cached(&format!("{STONES} WHERE path = ?1"))?;
    let mut row_of = conn.prepare_cached(&format!("{OVERLAID} AND path = ?2"))?;
    let (mut stones, mut rows) = (Vec::new(), Vec::new());
    for path in paths {
        for found in stone_of.query_map([path], stone)? {
            stones.push(found?);
        }
        for found in row_of.query_map(params![since_ms, path], overlaid)? {
            rows.push(found?);
        }
    }
    Ok((stones, rows))
}

/// The row update of [`MetaStore::set_local_content`], inside the caller's connection or
/// transaction (the caller invalidates the cached record).
pub(super) fn write_local_content(
    conn: &Connection,
    ino: Ino,
    size: u64,
    mtime: i64,
    version: Option<&ContentVersion>,
    state: LocalState,
) -> MetaResult<()> {
    let (vk, vv) = version_to_sql(version);
    conn.exec(
        "UPDATE inodes SET size = ?2, mtime = ?3, version_kind = ?4, version_value = ?5,
         local_state = ?6, local_error = NULL, seen_at = ?7 WHERE ino = ?1",
        params![
            ino as i64,
            size as i64,
            mtime,
            vk,
            vv,
            state.to_sql(),
            now_ms()
        ],
    )?;
    Ok(())
}
