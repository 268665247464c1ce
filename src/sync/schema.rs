//! The journal's SQLite schema and the mapping between rows and [`Op`]s.

use super::SyncError;
use super::op::{Op, OpKind, OpState};
use crate::client::{ContentVersion, HashKind};
use crate::names::RemotePath;
use cells_cache::sqlite::CachedExecute;
use rusqlite::{Connection, Row, params};

const VERSION: i64 = 1;

/// Opens the journal database: WAL, `synchronous=NORMAL` (a committed row survives the death
/// of the process at once, and a power loss after the next checkpoint: `Journal::sync`),
/// schema created or checked.
pub fn open(path: &std::path::Path) -> Result<Connection, SyncError> {
    let conn = Connection::open(path)?;
    cells_cache::sqlite::own_connection(&conn)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    match version {
        0 => {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS ops(
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    kind TEXT NOT NULL,
                    path TEXT NOT NULL,
                    dest TEXT,
                    staging TEXT,
                    size INTEGER NOT NULL DEFAULT 0,
                    cells_hash TEXT,
                    md5 TEXT,
                    base_kind TEXT,
                    base_value TEXT,
                    state TEXT NOT NULL DEFAULT 'queued',
                    attempts INTEGER NOT NULL DEFAULT 0,
                    not_before INTEGER NOT NULL DEFAULT 0,
                    last_error TEXT,
                    started_target TEXT
                );
                CREATE TABLE IF NOT EXISTS conflicts(
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    path TEXT NOT NULL,
                    saved_as TEXT,
                    at INTEGER NOT NULL
                );
                PRAGMA user_version = 1;",
            )?;
        }
        VERSION => {}
        other => {
            return Err(SyncError::Corrupt(format!(
                "journal schema version {other} is newer than this program understands"
            )));
        }
    }
    Ok(conn)
}

fn kind_str(kind: HashKind) -> &'static str {
    match kind {
        HashKind::CellsHash => "cells",
        HashKind::PlainMd5 => "md5",
        HashKind::OpaqueEtag => "etag",
    }
}

fn version_parts(v: &Option<ContentVersion>) -> (Option<&'static str>, Option<&str>) {
    match v {
        Some(v) => (Some(kind_str(v.kind)), Some(v.value.as_str())),
        None => (None, None),
    }
}

fn parse_version(
    kind: Option<String>,
    value: Option<String>,
) -> Result<Option<ContentVersion>, String> {
    match (kind.as_deref(), value) {
        (None, _) => Ok(None),
        (Some(k), Some(value)) => {
            let kind = match k {
                "cells" => HashKind::CellsHash,
                "md5" => HashKind::PlainMd5,
                "etag" => HashKind::OpaqueEtag,
                other => return Err(format!("unknown version kind {other:?}")),
            };
            Ok(Some(ContentVersion { kind, value }))
        }
        (Some(_), None) => Err("version kind without a value".into()),
    }
}

fn path_of(raw: &str) -> Result<RemotePath, String> {
    RemotePath::parse(raw).map_err(|e| format!("bad path {raw:?}: {e}"))
}

/// The columns that describe what an op does, in one place for insert and update.
struct KindColumns<'a> {
    label: &'static str,
    path: &'a str,
    dest: Option<&'a str>,
    staging: Option<&'a str>,
    size: i64,
    cells_hash: Option<&'a str>,
    md5: Option<&'a str>,
    base_kind: Option<&'static str>,
    base_value: Option<&'a str>,
}

impl<'a> KindColumns<'a> {
    /// An op with a path and maybe a base version, and nothing else yet.
    fn plain(label: &'static str, path: &'a RemotePath, base: &'a Option<ContentVersion>) -> Self {
        let (base_kind, base_value) = version_parts(base);
        KindColumns {
            label,
            path: path.as_str(),
            dest: None,
            staging: None,
            size: 0,
            cells_hash: None,
            md5: None,
            base_kind,
            base_value,
        }
    }

    fn of(kind: &'a OpKind) -> Self {
        let plain = Self::plain;
        match kind {
            OpKind::Upload {
                path,
                staging,
                size,
                cells_hash,
                md5,
                base,
            } => KindColumns {
                staging: Some(staging),
                size: *size as i64,
                cells_hash: Some(cells_hash),
                md5: Some(md5),
                ..plain("upload", path, base)
            },
            OpKind::Mkdir { path } => plain("mkdir", path, &None),
            OpKind::Delete { path, base } => plain("delete", path, base),
            OpKind::Rename { from, to } => KindColumns {
                dest: Some(to.as_str()),
                ..plain("rename", from, &None)
            },
        }
    }
}

/// Inserts a new op row and returns its sequence number.
pub fn insert(conn: &Connection, kind: &OpKind) -> Result<i64, SyncError> {
    let c = KindColumns::of(kind);
    conn.exec(
        "INSERT INTO ops(kind, path, dest, staging, size, cells_hash, md5, base_kind, base_value)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            c.label,
            c.path,
            c.dest,
            c.staging,
            c.size,
            c.cells_hash,
            c.md5,
            c.base_kind,
            c.base_value
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Rewrites every column of an existing op from `op` (used after coalescing, retargeting and
/// state changes).
pub fn update(conn: &Connection, op: &Op) -> Result<(), SyncError> {
    let c = KindColumns::of(&op.kind);
    let state = match op.state {
        OpState::Queued => "queued",
        OpState::Error => "error",
    };
    conn.exec(
        "UPDATE ops SET path=?2, dest=?3, staging=?4, size=?5, cells_hash=?6, md5=?7,
             base_kind=?8, base_value=?9, state=?10, attempts=?11, not_before=?12,
             last_error=?13, started_target=?14
         WHERE seq=?1",
        params![
            op.seq,
            c.path,
            c.dest,
            c.staging,
            c.size,
            c.cells_hash,
            c.md5,
            c.base_kind,
            c.base_value,
            state,
            op.attempts,
            op.not_before_ms,
            op.last_error,
            op.started_target.as_ref().map(|t| t.as_str()),
        ],
    )?;
    Ok(())
}

/// Every pending op, in line order.
pub fn load(conn: &Connection) -> Result<Vec<Op>, SyncError> {
    let mut stmt = conn.prepare(
        "SELECT seq, kind, path, dest, staging, size, cells_hash, md5, base_kind, base_value,
                state, attempts, not_before, last_error, started_target
         FROM ops ORDER BY seq",
    )?;
    let rows = stmt.query_map([], |r| Ok(row_to_op(r)))?;
    let mut ops = Vec::new();
    for row in rows {
        ops.push(row?.map_err(SyncError::Corrupt)?);
    }
    Ok(ops)
}

type RowResult = Result<Op, String>;

fn row_to_op(r: &Row<'_>) -> RowResult {
    let get = |e: rusqlite::Error| e.to_string();
    let seq: i64 = r.get(0).map_err(get)?;
    let kind: String = r.get(1).map_err(get)?;
    let path = path_of(&r.get::<_, String>(2).map_err(get)?)?;
    let dest: Option<String> = r.get(3).map_err(get)?;
    let staging: Option<String> = r.get(4).map_err(get)?;
    let size: i64 = r.get(5).map_err(get)?;
    let base = parse_version(r.get(8).map_err(get)?, r.get(9).map_err(get)?)?;
    let kind = match kind.as_str() {
        "upload" => {
            let staging = staging.filter(|s| super::staging::is_staging_name(s));
            OpKind::Upload {
                path,
                staging: staging
                    .ok_or_else(|| format!("upload {seq} has no valid staging file"))?,
                size: u64::try_from(size).map_err(|_| format!("upload {seq}: bad size"))?,
                cells_hash: r
                    .get::<_, Option<String>>(6)
                    .map_err(get)?
                    .unwrap_or_default(),
                md5: r
                    .get::<_, Option<String>>(7)
                    .map_err(get)?
                    .unwrap_or_default(),
                base,
            }
        }
        "mkdir" => OpKind::Mkdir { path },
        "delete" => OpKind::Delete { path, base },
        "rename" => OpKind::Rename {
            from: path,
            to: path_of(&dest.ok_or_else(|| format!("rename {seq} has no target"))?)?,
        },
        other => return Err(format!("unknown operation kind {other:?}")),
    };
    let state = match r.get::<_, String>(10).map_err(get)?.as_str() {
        "error" => OpState::Error,
        _ => OpState::Queued,
    };
    let started: Option<String> = r.get(14).map_err(get)?;
    Ok(Op {
        seq,
        kind,
        state,
        attempts: r.get(11).map_err(get)?,
        not_before_ms: r.get(12).map_err(get)?,
        last_error: r.get(13).map_err(get)?,
        started_target: started.as_deref().map(path_of).transpose()?,
    })
}
