//! Tree endpoints: `GET /a/tree/stat/{path}`, `POST /a/tree/stats` (bulk stat and paged
//! listings from the index), `POST /a/tree/create`, `POST /a/tree/delete` (as a job).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use crate::auth::User;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Located, lock};
use crate::store::Staged;

/// protojson accepts int32/int64 either as JSON numbers or strings.
fn num_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Num(u64),
        Str(String),
    }
    match Option::<N>::deserialize(d)? {
        None => Ok(0),
        Some(N::Num(n)) => Ok(n),
        Some(N::Str(s)) => s.parse().map_err(serde::de::Error::custom),
    }
}

fn root_node() -> Value {
    json!({"Uuid": "ROOT", "Path": "", "Type": "COLLECTION"})
}

/// The node JSON at `loc`, or 404.
fn stat_loc(st: &AppState, loc: &Located) -> ApiResult<Value> {
    let e = st
        .lookup(loc)?
        .ok_or_else(|| ApiError::not_found(&loc.cells_path()))?;
    Ok(st.node_json(loc, &e))
}

pub async fn stat(
    State(st): State<Arc<AppState>>,
    User(login): User,
    Path(path): Path<String>,
) -> ApiResult<Json<Value>> {
    let node = match st.locate(&login, &path)? {
        None => root_node(),
        Some(loc) => stat_loc(&st, &loc)?,
    };
    Ok(Json(json!({ "Node": node })))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct BulkStatRequest {
    node_paths: Vec<String>,
    #[serde(deserialize_with = "num_or_string")]
    offset: u64,
    #[serde(deserialize_with = "num_or_string")]
    limit: u64,
}

/// Children of one folder (or of the root): a page of the sorted list, plus the total.
fn list_children(
    st: &AppState,
    login: &str,
    parent_path: &str,
    offset: u64,
    limit: Option<u64>,
) -> ApiResult<(Vec<Value>, u64)> {
    let injected = lock(&st.injected)
        .get(parent_path.trim_matches('/'))
        .cloned()
        .unwrap_or_default();
    let (mut nodes, db_total) = match st.locate(login, parent_path)? {
        None => {
            let mut all = Vec::new();
            for ws in st.workspaces_for(login) {
                let loc = Located {
                    ws,
                    rel: String::new(),
                };
                if let Some(e) = st.lookup(&loc)? {
                    all.push(st.node_json(&loc, &e));
                }
            }
            let total = all.len() as u64;
            let page: Vec<Value> = all
                .into_iter()
                .skip(offset as usize)
                .take(limit.unwrap_or(u64::MAX) as usize)
                .collect();
            (page, total)
        }
        Some(loc) => {
            match st.lookup(&loc)? {
                Some(e) if e.is_dir => {}
                Some(_) => return Ok((Vec::new(), 0)),
                None => return Err(ApiError::not_found(&loc.cells_path())),
            }
            let (entries, total) = lock(&st.index).list(&loc.storage(), offset, limit)?;
            let nodes = entries
                .iter()
                .map(|e| st.node_json(&loc.child(e.name()), e))
                .collect();
            (nodes, total)
        }
    };
    // Injected raw nodes sort after the real ones.
    let want = limit.unwrap_or(u64::MAX);
    for (i, raw) in injected.iter().enumerate() {
        let pos = db_total + i as u64;
        if pos >= offset && (nodes.len() as u64) < want {
            nodes.push(raw.clone());
        }
    }
    Ok((nodes, db_total + injected.len() as u64))
}

pub async fn stats(
    State(st): State<Arc<AppState>>,
    User(login): User,
    Json(req): Json<BulkStatRequest>,
) -> ApiResult<Json<Value>> {
    let limit = (req.limit > 0).then_some(req.limit);
    let mut nodes = Vec::new();
    let mut listed_total = None;
    for p in &req.node_paths {
        if let Some(parent) = p.strip_suffix("/*").or((p == "*").then_some("")) {
            let (children, total) = list_children(&st, &login, parent, req.offset, limit)?;
            nodes.extend(children);
            listed_total = Some(total);
        } else {
            match st.locate(&login, p)? {
                None => nodes.push(root_node()),
                Some(loc) => {
                    // Bulk stat skips missing nodes rather than failing the whole request.
                    if let Some(e) = st.lookup(&loc)? {
                        nodes.push(st.node_json(&loc, &e));
                    }
                }
            }
        }
    }
    let mut body = serde_json::Map::new();
    body.insert("Nodes".into(), json!(nodes));
    if let Some(total) = listed_total {
        body.insert("Pagination".into(), pagination(req.offset, limit, total));
    }
    Ok(Json(Value::Object(body)))
}

/// `restPagination`, zero values omitted as protojson does.
fn pagination(offset: u64, limit: Option<u64>, total: u64) -> Value {
    let mut p = serde_json::Map::new();
    let mut put = |k: &str, v: u64| {
        if v != 0 {
            p.insert(k.into(), json!(v));
        }
    };
    put("Total", total);
    put("CurrentOffset", offset);
    if let Some(limit) = limit {
        put("Limit", limit);
        put("TotalPages", total.div_ceil(limit));
        put("CurrentPage", offset / limit + 1);
        if offset + limit < total {
            put("NextOffset", offset + limit);
        }
        if offset > 0 {
            put("PrevOffset", offset.saturating_sub(limit));
        }
    }
    Value::Object(p)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeRef {
    path: String,
    #[serde(default, rename = "Type")]
    kind: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateRequest {
    nodes: Vec<NodeRef>,
    #[serde(default)]
    recursive: bool,
}

pub async fn create(
    State(st): State<Arc<AppState>>,
    User(login): User,
    Json(req): Json<CreateRequest>,
) -> ApiResult<Json<Value>> {
    let mut children = Vec::new();
    for n in &req.nodes {
        let loc = st
            .locate(&login, &n.path)?
            .filter(|l| !l.rel.is_empty())
            .ok_or_else(|| ApiError::bad("cannot create a workspace"))?;
        if !req.recursive {
            let parent = loc.parent().ok_or_else(|| ApiError::bad("bad path"))?;
            match st.lookup(&parent)? {
                Some(p) if p.is_dir => {}
                _ => return Err(ApiError::not_found(&parent.cells_path())),
            }
        }
        let e = if n.kind == "COLLECTION" {
            st.mkdir(&loc).await?
        } else {
            if st.lookup(&loc)?.is_some() {
                return Err(ApiError::new(
                    crate::error::Kind::Conflict,
                    format!("{} already exists", loc.cells_path()),
                ));
            }
            let temp = st.temp_path();
            std::fs::write(&temp, b"")?;
            let d = crate::hash::ContentHasher::new().finish();
            let staged = Staged {
                temp,
                size: 0,
                etag: d.etag(),
                hash: d.cells_hash(),
            };
            st.commit_file(&login, &loc, staged, None).await?
        };
        children.push(st.node_json(&loc, &e));
    }
    Ok(Json(json!({ "Children": children })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteRequest {
    nodes: Vec<NodeRef>,
    #[serde(default)]
    remove_permanently: bool,
}

pub async fn delete(
    State(st): State<Arc<AppState>>,
    User(login): User,
    Json(req): Json<DeleteRequest>,
) -> ApiResult<Json<Value>> {
    let mut targets = Vec::new();
    for n in &req.nodes {
        let loc = st
            .locate(&login, &n.path)?
            .filter(|l| !l.rel.is_empty())
            .ok_or_else(|| ApiError::bad("cannot delete a workspace"))?;
        let e = st
            .lookup(&loc)?
            .ok_or_else(|| ApiError::not_found(&loc.cells_path()))?;
        st.check_lock(&loc, true)?;
        targets.push((loc, e.uuid));
    }
    let mut jobs = Vec::new();
    for (loc, node_uuid) in targets {
        let worker = st.clone();
        let permanently = req.remove_permanently;
        let target = loc.clone();
        let id = crate::rest::jobs::spawn_job(&st, &login, "Deleting", async move {
            worker.delete(&target, permanently).await
        });
        jobs.push(json!({"Uuid": id, "Label": "Deletion in progress", "NodeUuid": node_uuid}));
    }
    Ok(Json(json!({ "DeleteJobs": jobs })))
}
