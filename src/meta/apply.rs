//! Applying one server-described node to the index inside a transaction: insert, update in
//! place, move (matched by uuid, so a moved node keeps its inode) or replace.

use super::listing::StagedNode;
use super::local::is_tombstoned;
use super::schema::{
    COLUMNS, DETACHED_PARENT, kind_to_sql, raw_row, record_from_raw, version_to_sql,
};
use super::{InodeRecord, MetaChange, MetaError, MetaResult};
use crate::fs::{Ino, ROOT_INO};
use rusqlite::{Connection, OptionalExtension, params};

/// What a batch of applications did, for the caller's cache invalidation.
pub(super) struct ApplyLog {
    pub changes: Vec<MetaChange>,
    /// Inodes whose row changed (moka entries to drop).
    pub touched: Vec<Ino>,
    /// Inodes the server described exactly as stored: their rows were not rewritten, only
    /// their `seen_at` is due (see [`ApplyLog::mark_refreshed_seen`]).
    pub refreshed: Vec<Ino>,
    /// A folder moved, so descendants' paths changed too.
    pub paths_rewritten: bool,
    pub now: i64,
    /// For a listing: when it started. Rows the server described after that (an event or a
    /// stat applied while the pages came in) are newer than the listing and are left as they
    /// are. Within the same millisecond the listing wins.
    pub described_since: Option<i64>,
}

impl ApplyLog {
    pub fn new(now: i64) -> Self {
        Self {
            changes: Vec::new(),
            touched: Vec::new(),
            refreshed: Vec::new(),
            paths_rewritten: false,
            now,
            described_since: None,
        }
    }
}

impl ApplyLog {
    /// Records in SQLite that the refreshed rows were seen now (one by one: for the few nodes
    /// of a stat or an event; a listing updates its whole folder at once instead).
    pub fn mark_refreshed_seen(&self, conn: &Connection) -> MetaResult<()> {
        let mut stmt = conn.prepare_cached("UPDATE inodes SET seen_at = ?2 WHERE ino = ?1")?;
        for ino in &self.refreshed {
            stmt.execute(params![*ino as i64, self.now])?;
        }
        Ok(())
    }
}

/// True when `node` as child of `parent` at `path` is exactly what `old` stores (`seen_at`
/// aside), so the row needs no rewrite.
fn described_as_stored(
    old: &InodeRecord,
    parent: &InodeRecord,
    node: &StagedNode,
    path: &str,
) -> bool {
    old.parent == parent.ino
        && old.name == node.name
        && old.path.as_str() == path
        && old.kind == node.kind
        && old.size == node.size
        && old.mtime == node.mtime
        && old.version == node.version
        && old.uuid == node.uuid
        && old.read_only == node.read_only
}

pub(super) fn find(
    conn: &Connection,
    where_clause: &str,
    params: impl rusqlite::Params,
) -> MetaResult<Option<InodeRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM inodes WHERE {where_clause} LIMIT 1");
    let raw = conn
        .prepare_cached(&sql)?
        .query_row(params, raw_row)
        .optional()?;
    raw.map(record_from_raw).transpose()
}

/// Takes `rec` out of its folder, keeping the row so that a later node with the same uuid can
/// claim it; [`purge_detached`] deletes whatever is left unclaimed.
pub(super) fn detach(conn: &Connection, log: &mut ApplyLog, rec: &InodeRecord) -> MetaResult<()> {
    conn.prepare_cached("UPDATE inodes SET parent = ?2, name = 'detached:' || ino WHERE ino = ?1")?
        .execute(params![rec.ino as i64, DETACHED_PARENT])?;
    log.changes.push(MetaChange::EntryGone {
        parent: rec.parent,
        name: rec.name.clone(),
    });
    log.touched.push(rec.ino);
    Ok(())
}

/// Deletes detached rows and everything below them.
pub(super) fn purge_detached(conn: &Connection, log: &mut ApplyLog) -> MetaResult<()> {
    const DOOMED: &str = "WITH RECURSIVE doomed(ino) AS (
            SELECT ino FROM inodes WHERE parent = ?1
            UNION ALL SELECT i.ino FROM inodes i JOIN doomed d ON i.parent = d.ino)";
    let mut stmt = conn.prepare_cached(&format!("{DOOMED} SELECT ino FROM doomed"))?;
    let inos = stmt.query_map([DETACHED_PARENT], |r| r.get::<_, i64>(0))?;
    for ino in inos {
        log.touched.push(ino? as Ino);
    }
    conn.prepare_cached(&format!(
        "{DOOMED} DELETE FROM inodes WHERE ino IN (SELECT ino FROM doomed)"
    ))?
    .execute([DETACHED_PARENT])?;
    Ok(())
}

fn write_fields(
    conn: &Connection,
    ino: Ino,
    parent: &InodeRecord,
    node: &StagedNode,
    path: &str,
    now: i64,
) -> MetaResult<()> {
    let (vk, vv) = version_to_sql(node.version.as_ref());
    conn.prepare_cached(
        "UPDATE inodes SET parent = ?2, name = ?3, path = ?4, kind = ?5, size = ?6, mtime = ?7,
         version_kind = ?8, version_value = ?9, uuid = ?10, read_only = ?11, seen_at = ?12
         WHERE ino = ?1",
    )?
    .execute(params![
        ino as i64,
        parent.ino as i64,
        node.name,
        path,
        kind_to_sql(node.kind),
        node.size as i64,
        node.mtime,
        vk,
        vv,
        node.uuid,
        node.read_only,
        now
    ])?;
    Ok(())
}

fn insert(
    conn: &Connection,
    parent: &InodeRecord,
    node: &StagedNode,
    path: &str,
    now: i64,
) -> MetaResult<Ino> {
    let (vk, vv) = version_to_sql(node.version.as_ref());
    conn.prepare_cached(
        "INSERT INTO inodes (parent, name, path, kind, size, mtime, version_kind, version_value,
         uuid, read_only, seen_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        parent.ino as i64,
        node.name,
        path,
        kind_to_sql(node.kind),
        node.size as i64,
        node.mtime,
        vk,
        vv,
        node.uuid,
        node.read_only,
        now
    ])?;
    Ok(conn.last_insert_rowid() as Ino)
}

/// Records what changed between the stored `old` and the server's `node`.
fn diff(log: &mut ApplyLog, old: &InodeRecord, node: &StagedNode) {
    let content = old.version != node.version || old.size != node.size;
    if content || old.mtime != node.mtime || old.read_only != node.read_only {
        log.changes.push(MetaChange::Changed {
            ino: old.ino,
            content,
        });
    }
}

/// Makes `node` the child `node.name` of `parent`; returns its inode number. The local
/// overlay wins: a tombstoned name is left out (inode 0 returned), a protected row by that
/// name is kept as it is, and a protected row elsewhere is never moved by a uuid match.
pub(super) fn apply_node(
    conn: &Connection,
    log: &mut ApplyLog,
    parent: &InodeRecord,
    node: &StagedNode,
    parent_was_listed: bool,
) -> MetaResult<Ino> {
    let path = parent
        .path
        .join(&node.name)
        .map_err(|e| MetaError::Corrupt(format!("refused child name: {e}")))?;
    if is_tombstoned(conn, parent.ino, &node.name)? {
        return Ok(0);
    }
    let by_name = find(
        conn,
        "parent = ?1 AND name = ?2",
        params![parent.ino as i64, node.name],
    )?;
    if let Some(local) = by_name.as_ref().filter(|b| b.is_protected()) {
        return Ok(local.ino);
    }
    if let (Some(since), Some(newer)) = (log.described_since, &by_name)
        && newer.seen_at > since
    {
        return Ok(newer.ino);
    }
    // The same node under the same name (the common case of a re-listing) needs no search
    // by uuid.
    let same_node = by_name
        .as_ref()
        .is_some_and(|b| b.kind == node.kind && b.uuid.is_some() && b.uuid == node.uuid);
    let by_uuid = match &node.uuid {
        Some(_) if same_node => None,
        Some(uuid) => find(
            conn,
            "uuid = ?1 AND kind = ?2 AND ino != ?3",
            params![uuid, kind_to_sql(node.kind), ROOT_INO as i64],
        )?
        // A folder cannot move below itself; a server claiming so gets a fresh inode instead.
        .filter(|u| !(u.is_dir() && parent.path.starts_with(&u.path)))
        .filter(|u| !u.is_protected()),
        None => None,
    };
    let now = log.now;
    if let Some(moved) = by_uuid.filter(|u| by_name.as_ref().map(|b| b.ino) != Some(u.ino)) {
        if let Some(other) = &by_name {
            detach(conn, log, other)?;
        }
        // A detached row reads back with parent 0 and already reported its EntryGone.
        if moved.parent != 0 {
            log.changes.push(MetaChange::EntryGone {
                parent: moved.parent,
                name: moved.name.clone(),
            });
        }
        write_fields(conn, moved.ino, parent, node, path.as_str(), now)?;
        if moved.is_dir() && moved.path != path {
            conn.prepare_cached(
                "UPDATE inodes SET path = ?2 || substr(path, length(?1) + 1)
                 WHERE substr(path, 1, length(?1) + 1) = ?1 || '/'",
            )?
            .execute(params![moved.path.as_str(), path.as_str()])?;
            log.paths_rewritten = true;
        }
        diff(log, &moved, node);
        log.changes.push(MetaChange::EntryAdded {
            parent: parent.ino,
            name: node.name.clone(),
        });
        log.touched.push(moved.ino);
        return Ok(moved.ino);
    }
    if let Some(existing) = by_name {
        let other_node = existing.kind != node.kind
            || matches!((&existing.uuid, &node.uuid), (Some(a), Some(b)) if a != b);
        if !other_node {
            // Re-listing a big folder mostly finds it unchanged: no row rewrite, and the
            // record cache stays warm.
            if described_as_stored(&existing, parent, node, path.as_str()) {
                log.refreshed.push(existing.ino);
                return Ok(existing.ino);
            }
            write_fields(conn, existing.ino, parent, node, path.as_str(), now)?;
            diff(log, &existing, node);
            log.touched.push(existing.ino);
            return Ok(existing.ino);
        }
        detach(conn, log, &existing)?;
        let ino = insert(conn, parent, node, path.as_str(), now)?;
        log.changes.push(MetaChange::EntryAdded {
            parent: parent.ino,
            name: node.name.clone(),
        });
        return Ok(ino);
    }
    let ino = insert(conn, parent, node, path.as_str(), now)?;
    if parent_was_listed {
        log.changes.push(MetaChange::EntryAdded {
            parent: parent.ino,
            name: node.name.clone(),
        });
    }
    Ok(ino)
}
