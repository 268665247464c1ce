//! The REST API (v4, prefix `/a`): routes, and the legacy credentials login.

pub mod jobs;
pub mod tree;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult, Kind};
use crate::state::AppState;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/a/frontend/session", post(session))
        .route("/a/frontend/bootconf", get(bootconf))
        .route("/a/tree/stat/{*path}", get(tree::stat))
        .route("/a/tree/stats", post(tree::stats))
        .route("/a/meta/bulk/get", post(tree::stats))
        .route("/a/tree/create", post(tree::create))
        .route("/a/tree/delete", post(tree::delete))
        .route("/a/jobs/user/{name}", put(jobs::user_job))
        .route("/a/jobs/user", post(jobs::list_jobs))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct SessionRequest {
    auth_info: Option<AuthInfo>,
    logout: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AuthInfo {
    login: String,
    password: String,
}

/// Expiry reported for tokens that never expire (PAT-like sessions without `--token-ttl`).
const FAR_FUTURE: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

pub fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `POST /a/frontend/session`: credentials login returning a JWT and its absolute expiry.
async fn session(
    State(st): State<Arc<AppState>>,
    Json(req): Json<SessionRequest>,
) -> ApiResult<Json<Value>> {
    if req.logout {
        return Ok(Json(json!({})));
    }
    let info = req
        .auth_info
        .ok_or_else(|| ApiError::bad("AuthInfo is required"))?;
    let known = st
        .users
        .iter()
        .any(|(l, p)| *l == info.login && *p == info.password);
    if !known {
        return Err(ApiError::new(Kind::Unauthorized, "invalid credentials"));
    }
    let (jwt, expires) = st.issue_jwt(&info.login);
    let expire = unix(expires.unwrap_or_else(|| SystemTime::now() + FAR_FUTURE));
    Ok(Json(json!({
        "JWT": jwt,
        "ExpireTime": expire,
        "Token": {"AccessToken": jwt, "ExpiresAt": expire.to_string()},
    })))
}

async fn bootconf() -> Json<Value> {
    Json(
        json!({"backend": {"PackageType": "cells-testserver", "PackageLabel": "Cells test double"}}),
    )
}
