//! Test hooks under `/_admin` (loopback peers only, never subject to faults): faults, legacy
//! hash mode, locks, quotas, injected raw nodes, dropping event connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Faults;
use crate::error::{ApiError, Kind};
use crate::state::{AppState, lock, read_faults};

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/_admin/faults", get(get_faults).post(set_faults))
        .route("/_admin/legacy-hash", post(legacy_hash))
        .route("/_admin/lock", post(set_lock))
        .route("/_admin/quota", post(quota))
        .route("/_admin/inject", post(inject))
        .route("/_admin/drop-events", post(drop_events))
        .layer(middleware::from_fn(loopback_only))
}

async fn loopback_only(req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    match peer {
        Some(p) if p.ip().is_loopback() => next.run(req).await,
        _ => ApiError::new(
            Kind::Forbidden,
            "admin endpoints are for loopback peers only",
        )
        .into_response(),
    }
}

async fn get_faults(State(st): State<Arc<AppState>>) -> Json<Faults> {
    Json(read_faults(&st))
}

async fn set_faults(State(st): State<Arc<AppState>>, Json(f): Json<Faults>) -> Response {
    let valid = |r: f64| (0.0..=1.0).contains(&r);
    if !valid(f.error_rate) || !valid(f.reset_rate) {
        return ApiError::bad("rates must be within 0..1").into_response();
    }
    *st.faults.write().unwrap_or_else(|p| p.into_inner()) = f.clone();
    Json(f).into_response()
}

#[derive(Deserialize)]
struct OnOff {
    on: bool,
}

async fn legacy_hash(State(st): State<Arc<AppState>>, Json(b): Json<OnOff>) -> Json<Value> {
    st.legacy_hash.store(b.on, Ordering::Relaxed);
    Json(json!({"on": b.on}))
}

#[derive(Deserialize)]
struct LockReq {
    path: String,
    #[serde(default = "yes")]
    locked: bool,
}

fn yes() -> bool {
    true
}

async fn set_lock(State(st): State<Arc<AppState>>, Json(r): Json<LockReq>) -> Json<Value> {
    let path = r.path.trim_matches('/').to_string();
    let mut locks = lock(&st.locks);
    if r.locked {
        locks.insert(path.clone());
    } else {
        locks.remove(&path);
    }
    Json(json!({"path": path, "locked": r.locked}))
}

#[derive(Deserialize)]
struct QuotaReq {
    login: String,
    bytes: Option<u64>,
}

async fn quota(State(st): State<Arc<AppState>>, Json(r): Json<QuotaReq>) -> Json<Value> {
    let mut q = lock(&st.quotas);
    match r.bytes {
        Some(b) => q.insert(r.login.clone(), b),
        None => q.remove(&r.login),
    };
    Json(json!({"login": r.login, "bytes": r.bytes}))
}

#[derive(Deserialize)]
struct InjectReq {
    parent: String,
    node: Value,
}

async fn inject(State(st): State<Arc<AppState>>, Json(r): Json<InjectReq>) -> Json<Value> {
    lock(&st.injected)
        .entry(r.parent.trim_matches('/').to_string())
        .or_default()
        .push(r.node);
    Json(json!({}))
}

async fn drop_events(State(st): State<Arc<AppState>>) -> Json<Value> {
    st.ws_generation.send_modify(|g| *g += 1);
    Json(json!({}))
}
