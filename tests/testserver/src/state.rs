//! Shared server state: the index, workspaces and path resolution, sessions (PATs and issued
//! JWTs), test hooks (locks, quotas, injected nodes) and the change-event bus.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use crate::Faults;
use crate::error::{ApiError, ApiResult, Kind};
use crate::index::{Entry, Index};

pub const PERSONAL: &str = "personal-files";
pub const COMMON: &str = "common-files";
pub const RECYCLE: &str = "recycle_bin";

/// A workspace as one user sees it.
#[derive(Clone, Debug)]
pub struct Workspace {
    pub slug: &'static str,
    pub label: &'static str,
    /// Storage path of its folder (`personal-files/alice`, `common-files`).
    pub root: String,
}

/// A Cells path resolved for one user: workspace + path inside it (`""` = workspace root).
#[derive(Clone, Debug)]
pub struct Located {
    pub ws: Workspace,
    pub rel: String,
}

impl Located {
    pub fn storage(&self) -> String {
        join(&self.ws.root, &self.rel)
    }
    pub fn cells_path(&self) -> String {
        join(self.ws.slug, &self.rel)
    }
    pub fn name(&self) -> &str {
        self.rel.rsplit('/').next().unwrap_or("")
    }
    pub fn parent(&self) -> Option<Located> {
        if self.rel.is_empty() {
            return None;
        }
        let rel = crate::index::parent_of(&self.rel).to_string();
        Some(Located {
            ws: self.ws.clone(),
            rel,
        })
    }
    pub fn child(&self, name: &str) -> Located {
        Located {
            ws: self.ws.clone(),
            rel: join(&self.rel, name),
        }
    }
}

pub fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

/// Who a bearer token belongs to and until when.
#[derive(Clone, Debug)]
pub struct Session {
    pub login: String,
    pub expires_at: Option<SystemTime>,
}

/// One change, for the websocket feed: only users who see `root` receive it.
#[derive(Clone, Debug)]
pub struct ChangeEvent {
    pub root: String,
    pub body: Arc<Value>,
}

pub struct AppState {
    pub data_dir: PathBuf,
    /// Private folder of the server (index, temp files, multipart parts); never listed.
    pub work_dir: PathBuf,
    pub index: Mutex<Index>,
    pub users: Vec<(String, String)>,
    pub token_ttl: Option<Duration>,
    pub job_delay: Duration,
    pub faults: RwLock<Faults>,
    pub legacy_hash: AtomicBool,
    pub sessions: Mutex<HashMap<String, Session>>,
    pub locks: Mutex<HashSet<String>>,
    pub quotas: Mutex<HashMap<String, u64>>,
    pub injected: Mutex<HashMap<String, Vec<Value>>>,
    pub events: broadcast::Sender<ChangeEvent>,
    /// Bumped to make every websocket connection close.
    pub ws_generation: watch::Sender<u64>,
    pub jobs: Mutex<HashMap<String, crate::rest::jobs::JobRecord>>,
    pub uploads: Mutex<HashMap<String, crate::s3::multipart::Upload>>,
    pub oidc: Mutex<crate::oidc::OidcState>,
    /// Serialises tree mutations so disk and index always change together.
    pub tree_lock: tokio::sync::Mutex<()>,
}

/// Locks a std mutex, recovering from poisoning (a panicked handler must not wedge the server).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn random_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 24];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

impl AppState {
    pub fn workspaces_for(&self, login: &str) -> Vec<Workspace> {
        vec![
            Workspace {
                slug: COMMON,
                label: "Common Files",
                root: COMMON.to_string(),
            },
            Workspace {
                slug: PERSONAL,
                label: "Personal Files",
                root: format!("{PERSONAL}/{login}"),
            },
        ]
    }

    /// Resolves a Cells path (`ws/dir/file`) for `login`. `Ok(None)` is the root `""`.
    pub fn locate(&self, login: &str, cells_path: &str) -> ApiResult<Option<Located>> {
        let trimmed = cells_path.trim_matches('/');
        if trimmed.is_empty() {
            return Ok(None);
        }
        let mut segs = trimmed.split('/');
        let slug = segs.next().unwrap_or_default();
        let ws = self
            .workspaces_for(login)
            .into_iter()
            .find(|w| w.slug == slug)
            .ok_or_else(|| ApiError::not_found("workspace"))?;
        let mut rel = String::new();
        for seg in segs {
            validate_segment(seg)?;
            rel = join(&rel, seg);
        }
        Ok(Some(Located { ws, rel }))
    }

    pub fn token_login(&self, token: &str) -> ApiResult<String> {
        let sessions = lock(&self.sessions);
        let s = sessions
            .get(token)
            .ok_or_else(|| ApiError::new(Kind::Unauthorized, "invalid token"))?;
        if s.expires_at.is_some_and(|t| t <= SystemTime::now()) {
            return Err(ApiError::new(Kind::Unauthorized, "token expired"));
        }
        Ok(s.login.clone())
    }

    /// Issues a JWT-like opaque token for `login` with the configured lifetime.
    pub fn issue_jwt(&self, login: &str) -> (String, Option<SystemTime>) {
        let token = random_token();
        let expires_at = self.token_ttl.map(|ttl| SystemTime::now() + ttl);
        lock(&self.sessions).insert(
            token.clone(),
            Session {
                login: login.to_string(),
                expires_at,
            },
        );
        (token, expires_at)
    }

    pub fn legacy(&self) -> bool {
        self.legacy_hash.load(Ordering::Relaxed)
    }

    pub fn lookup(&self, loc: &Located) -> ApiResult<Option<Entry>> {
        Ok(lock(&self.index).get(&loc.storage())?)
    }

    /// 423 if `loc` (or, with `with_descendants`, anything below it) is locked.
    pub fn check_lock(&self, loc: &Located, with_descendants: bool) -> ApiResult<()> {
        let path = loc.cells_path();
        let locks = lock(&self.locks);
        let hit = locks
            .iter()
            .any(|l| l == &path || (with_descendants && l.starts_with(&format!("{path}/"))));
        if hit {
            return Err(ApiError::new(Kind::Locked, format!("{path} is locked")));
        }
        Ok(())
    }

    /// 422 if writing `extra` more bytes into `loc`'s workspace exceeds `login`'s quota.
    pub fn check_quota(&self, login: &str, loc: &Located, extra: u64) -> ApiResult<()> {
        let Some(quota) = lock(&self.quotas).get(login).copied() else {
            return Ok(());
        };
        let used = lock(&self.index).tree_size(&loc.ws.root)?;
        if used + extra > quota {
            return Err(ApiError::new(Kind::Quota, "quota reached"));
        }
        Ok(())
    }

    /// Protojson `treeNode` for an indexed entry.
    pub fn node_json(&self, loc: &Located, e: &Entry) -> Value {
        let mut node = serde_json::Map::new();
        node.insert("Uuid".into(), json!(e.uuid));
        node.insert("Path".into(), json!(loc.cells_path()));
        let mut meta = serde_json::Map::new();
        let name = if loc.rel.is_empty() {
            loc.ws.slug
        } else {
            loc.name()
        };
        meta.insert("name".into(), json!(json!(name).to_string()));
        let size = if e.is_dir {
            node.insert("Type".into(), json!("COLLECTION"));
            node.insert("Etag".into(), json!("-1"));
            lock(&self.index).tree_size(&e.path).unwrap_or(0)
        } else {
            node.insert("Type".into(), json!("LEAF"));
            node.insert("Etag".into(), json!(e.etag));
            if !self.legacy() && !e.hash.is_empty() {
                meta.insert("x-cells-hash".into(), json!(json!(e.hash).to_string()));
            }
            e.size
        };
        if size != 0 {
            node.insert("Size".into(), json!(size.to_string()));
        }
        if e.mtime != 0 {
            node.insert("MTime".into(), json!(e.mtime.to_string()));
        }
        if loc.rel.is_empty() {
            let ws = &loc.ws;
            meta.insert("ws_slug".into(), json!(json!(ws.slug).to_string()));
            meta.insert("ws_uuid".into(), json!(json!(e.uuid).to_string()));
            meta.insert("ws_label".into(), json!(json!(ws.label).to_string()));
            meta.insert("ws_scope".into(), json!(json!("ADMIN").to_string()));
            meta.insert("ws_syncable".into(), json!("true"));
            meta.insert("ws_permissions".into(), json!(json!("rw").to_string()));
        }
        node.insert("MetaStore".into(), Value::Object(meta));
        Value::Object(node)
    }

    /// Sends a `NodeChangeEvent`; `kind` `None` is CREATE (enum zero value, so omitted).
    pub fn emit(
        &self,
        root: &str,
        kind: Option<&str>,
        source: Option<Value>,
        target: Option<Value>,
    ) {
        let mut ev = serde_json::Map::new();
        if let Some(k) = kind {
            ev.insert("Type".into(), json!(k));
        }
        if let Some(s) = source {
            ev.insert("Source".into(), s);
        }
        if let Some(t) = target {
            ev.insert("Target".into(), t);
        }
        // No receiver is fine: nobody is subscribed.
        let _ = self.events.send(ChangeEvent {
            root: root.to_string(),
            body: Arc::new(Value::Object(ev)),
        });
    }
}

/// A path segment must be a plain name: no `.`/`..`, no empty parts, no NUL or backslash.
pub fn validate_segment(seg: &str) -> ApiResult<()> {
    if seg.is_empty() || seg == "." || seg == ".." || seg.contains(['\0', '\\']) {
        return Err(ApiError::bad(format!("invalid path segment {seg:?}")));
    }
    if seg.len() > 255 {
        return Err(ApiError::bad("name too long"));
    }
    Ok(())
}

pub fn read_faults(st: &AppState) -> Faults {
    st.faults.read().unwrap_or_else(|p| p.into_inner()).clone()
}
