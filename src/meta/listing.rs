//! Writing the server's view into the index: folder listings staged page by page and swapped
//! in with one transaction, and single-node upserts and removals (stat, event feed).

use super::apply::{ApplyLog, apply_node, detach, find, purge_detached};
use super::local::PROTECTED_SQL;
use super::schema::{kind_to_sql, version_to_sql};
use super::{InodeRecord, MetaChange, MetaError, MetaResult, MetaStore, now_ms};
use crate::client::{ContentVersion, Node, NodeKind};
use crate::fs::Ino;
use cells_cache::sqlite::CachedExecute;
use rusqlite::{TransactionBehavior, params};

/// A child as a listing or a stat describes it, independent of where it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedNode {
    pub name: String,
    pub kind: NodeKind,
    pub size: u64,
    pub mtime: i64,
    pub version: Option<ContentVersion>,
    pub uuid: Option<String>,
    pub read_only: bool,
}

impl From<&Node> for StagedNode {
    fn from(n: &Node) -> Self {
        Self {
            name: n.name().to_owned(),
            kind: n.kind,
            size: n.size,
            mtime: n.mtime,
            version: n.version.clone(),
            uuid: n.uuid.clone(),
            read_only: n.read_only,
        }
    }
}

impl MetaStore {
    fn parent_record(conn: &rusqlite::Connection, parent: Ino) -> MetaResult<InodeRecord> {
        find(conn, "ino = ?1 AND parent >= 0", [parent as i64])?
            .filter(|p| p.is_dir())
            .ok_or_else(|| MetaError::Corrupt(format!("folder inode {parent} is gone")))
    }

    /// Drops whatever a previous, unfinished listing of `parent` staged.
    pub fn clear_stage(&self, parent: Ino) -> MetaResult<()> {
        let conn = self.conn();
        conn.exec(
            "DELETE FROM listing_stage WHERE parent = ?1",
            [parent as i64],
        )?;
        Ok(())
    }

    /// Adds one page of `parent`'s listing to the stage (visible to nobody until
    /// [`Self::commit_listing`]). A name listed twice keeps its last description.
    pub fn stage_page(&self, parent: Ino, nodes: &[StagedNode]) -> MetaResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO listing_stage (parent, name, kind, size, mtime,
                 version_kind, version_value, uuid, read_only)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for n in nodes {
                let (vk, vv) = version_to_sql(n.version.as_ref());
                stmt.execute(params![
                    parent as i64,
                    n.name,
                    kind_to_sql(n.kind),
                    n.size as i64,
                    n.mtime,
                    vk,
                    vv,
                    n.uuid,
                    n.read_only
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Replaces `parent`'s children with the staged listing, in one transaction: children
    /// not listed are deleted (with their subtrees), known ones keep their inode numbers.
    /// `started_ms` is when the listing's first page was asked for: the listing is as recent
    /// as that (not as its commit), so a resync in between leaves it stale.
    pub fn commit_listing(&self, parent: Ino, started_ms: i64) -> MetaResult<Vec<MetaChange>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut log = ApplyLog::new(now_ms());
        log.described_since = Some(started_ms);
        {
            let folder = Self::parent_record(&tx, parent)?;
            let was_listed = folder.listed_at.is_some();
            // Absent children first, so that a rename inside the folder finds the old row
            // (by uuid) among the detached ones and keeps its inode.
            // Children described since the listing started (by an event) are newer than it.
            let mut gone = tx.prepare_cached(&format!(
                "SELECT ino FROM inodes WHERE parent = ?1 AND name NOT IN
                     (SELECT name FROM listing_stage WHERE parent = ?1)
                     AND NOT ({PROTECTED_SQL}) AND seen_at <= ?2"
            ))?;
            let gone: Vec<i64> = gone
                .query_map(params![parent as i64, started_ms], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for ino in gone {
                if let Some(rec) = find(&tx, "ino = ?1", [ino])? {
                    detach(&tx, &mut log, &rec)?;
                }
            }
            let mut staged = tx.prepare_cached(
                "SELECT name, kind, size, mtime, version_kind, version_value, uuid, read_only
                 FROM listing_stage WHERE parent = ?1 ORDER BY name",
            )?;
            let mut rows = staged.query([parent as i64])?;
            while let Some(row) = rows.next()? {
                let node = staged_from_row(row)?;
                apply_node(&tx, &mut log, &folder, &node, was_listed)?;
            }
            purge_detached(&tx, &mut log)?;
            // Every child left that is not a local change was just described by the server.
            tx.prepare_cached(&format!(
                "UPDATE inodes SET seen_at = ?2 WHERE parent = ?1 AND NOT ({PROTECTED_SQL})"
            ))?
            .execute(params![parent as i64, log.now])?;
            tx.exec(
                "DELETE FROM listing_stage WHERE parent = ?1",
                [parent as i64],
            )?;
            tx.exec(
                "UPDATE inodes SET listed_at = ?2 WHERE ino = ?1",
                params![parent as i64, started_ms],
            )?;
            log.touched.push(parent);
        }
        tx.commit()?;
        self.refresh_cached(&log.refreshed, log.now);
        self.invalidate(&log.changes, &log.touched, log.paths_rewritten);
        Ok(log.changes)
    }

    /// Records one node the server described (stat, event feed) as the child of `parent`.
    /// Returns inode 0 when the name is locally deleted (tombstoned) and was left out.
    pub fn upsert_child(
        &self,
        parent: Ino,
        node: &StagedNode,
    ) -> MetaResult<(Ino, Vec<MetaChange>)> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut log = ApplyLog::new(now_ms());
        let folder = Self::parent_record(&tx, parent)?;
        let ino = apply_node(&tx, &mut log, &folder, node, folder.listed_at.is_some())?;
        purge_detached(&tx, &mut log)?;
        log.mark_refreshed_seen(&tx)?;
        tx.commit()?;
        self.refresh_cached(&log.refreshed, log.now);
        self.invalidate(&log.changes, &log.touched, log.paths_rewritten);
        Ok((ino, log.changes))
    }

    /// Deletes `ino` and its subtree (the server says it is gone). The root and rows with
    /// local changes not yet uploaded stay.
    pub fn remove(&self, ino: Ino) -> MetaResult<Vec<MetaChange>> {
        if ino == crate::fs::ROOT_INO {
            return Ok(Vec::new());
        }
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut log = ApplyLog::new(now_ms());
        // A node changed locally stays: the queued change re-creates it on the server.
        if let Some(rec) = find(&tx, "ino = ?1 AND parent >= 0", [ino as i64])?
            && !rec.is_protected()
        {
            detach(&tx, &mut log, &rec)?;
            purge_detached(&tx, &mut log)?;
        }
        tx.commit()?;
        self.invalidate(&log.changes, &log.touched, log.paths_rewritten);
        Ok(log.changes)
    }

    /// Records that the server confirmed `ino` unchanged just now.
    pub fn touch_seen(&self, ino: Ino) -> MetaResult<()> {
        let conn = self.conn();
        conn.exec(
            "UPDATE inodes SET seen_at = ?2 WHERE ino = ?1",
            params![ino as i64, now_ms()],
        )?;
        self.inner.by_ino.invalidate(&ino);
        Ok(())
    }
}

fn staged_from_row(row: &rusqlite::Row<'_>) -> MetaResult<StagedNode> {
    let kind = match row.get::<_, i64>(1)? {
        0 => NodeKind::File,
        _ => NodeKind::Folder,
    };
    let version = match (
        row.get::<_, Option<i64>>(4)?,
        row.get::<_, Option<String>>(5)?,
    ) {
        (Some(k), Some(value)) => Some(ContentVersion {
            kind: match k {
                0 => crate::client::HashKind::CellsHash,
                1 => crate::client::HashKind::PlainMd5,
                _ => crate::client::HashKind::OpaqueEtag,
            },
            value,
        }),
        _ => None,
    };
    Ok(StagedNode {
        name: row.get(0)?,
        kind,
        size: row.get::<_, i64>(2)?.max(0) as u64,
        mtime: row.get(3)?,
        version,
        uuid: row.get(6)?,
        read_only: row.get(7)?,
    })
}
