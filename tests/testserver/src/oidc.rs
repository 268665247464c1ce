//! A minimal OIDC provider under `/oidc` (discovery, auto-approving authorize endpoint, token
//! endpoint with PKCE S256 and rotating refresh tokens) for the login flow of the client.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::state::{AppState, lock, random_token};

const CLIENT_IDS: [&str; 2] = ["cells-sync", "cells-client"];
/// Lifetime of an authorization code.
const CODE_TTL: Duration = Duration::from_secs(120);
/// `expires_in` reported when tokens do not expire (no `--token-ttl`).
const DEFAULT_EXPIRES_IN: u64 = 3600;

struct Grant {
    login: String,
    client_id: String,
    redirect_uri: String,
    challenge: Option<String>,
    expires_at: SystemTime,
}

#[derive(Default)]
pub struct OidcState {
    codes: HashMap<String, Grant>,
    /// refresh token -> (login, client id); a used token is removed (rotation).
    refresh: HashMap<String, (String, String)>,
}

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/oidc/.well-known/openid-configuration", get(discovery))
        .route("/oidc/oauth2/auth", get(authorize))
        .route("/oidc/oauth2/token", post(token))
}

fn oauth_error(code: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": code, "error_description": description})),
    )
        .into_response()
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

async fn discovery(headers: HeaderMap) -> Response {
    let base = base_url(&headers);
    Json(json!({
        "issuer": format!("{base}/oidc/"),
        "authorization_endpoint": format!("{base}/oidc/oauth2/auth"),
        "token_endpoint": format!("{base}/oidc/oauth2/token"),
        "jwks_uri": format!("{base}/oidc/.well-known/jwks.json"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "email", "profile", "pydio", "offline"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["none"],
        "token_endpoint_auth_methods_supported": ["none"],
    }))
    .into_response()
}

/// Only `http://localhost:PORT/servers/callback` (or 127.0.0.1) is an acceptable redirect.
fn redirect_ok(uri: &str) -> bool {
    let Ok(u) = url::Url::parse(uri) else {
        return false;
    };
    u.scheme() == "http"
        && matches!(u.host_str(), Some("localhost") | Some("127.0.0.1"))
        && u.port().is_some()
        && u.path() == "/servers/callback"
        && u.query().is_none()
}

#[derive(Deserialize)]
struct AuthQuery {
    response_type: String,
    client_id: String,
    redirect_uri: String,
    #[serde(default)]
    state: String,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

async fn authorize(State(st): State<Arc<AppState>>, Query(q): Query<AuthQuery>) -> Response {
    if !CLIENT_IDS.contains(&q.client_id.as_str()) {
        return oauth_error("invalid_client", "unknown client_id");
    }
    if !redirect_ok(&q.redirect_uri) {
        return oauth_error("invalid_request", "redirect_uri not allowed");
    }
    if q.response_type != "code" {
        return oauth_error("unsupported_response_type", "only code is supported");
    }
    if q.code_challenge.is_some() && q.code_challenge_method.as_deref() != Some("S256") {
        return oauth_error("invalid_request", "only S256 code challenges are accepted");
    }
    let Some(login) = st.users.first().map(|(l, _)| l.clone()) else {
        return oauth_error("access_denied", "no user configured");
    };
    let code = random_token();
    lock(&st.oidc).codes.insert(
        code.clone(),
        Grant {
            login,
            client_id: q.client_id,
            redirect_uri: q.redirect_uri.clone(),
            challenge: q.code_challenge,
            expires_at: SystemTime::now() + CODE_TTL,
        },
    );
    let mut target = match url::Url::parse(&q.redirect_uri) {
        Ok(u) => u,
        Err(_) => return oauth_error("invalid_request", "bad redirect_uri"),
    };
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &q.state)
        .append_pair("scope", "openid email profile pydio offline");
    Redirect::to(target.as_str()).into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    #[serde(default)]
    client_id: String,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
}

async fn token(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(f): Form<TokenForm>,
) -> Response {
    let login = match f.grant_type.as_str() {
        "authorization_code" => {
            let grant = f.code.as_ref().and_then(|c| lock(&st.oidc).codes.remove(c));
            let Some(grant) = grant else {
                return oauth_error("invalid_grant", "unknown or used code");
            };
            if grant.expires_at <= SystemTime::now()
                || grant.client_id != f.client_id
                || f.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str())
            {
                return oauth_error("invalid_grant", "code does not match this request");
            }
            if let Some(challenge) = &grant.challenge {
                let verifier = f.code_verifier.as_deref().unwrap_or_default();
                let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
                if computed != *challenge {
                    return oauth_error("invalid_grant", "PKCE verification failed");
                }
            }
            grant.login
        }
        "refresh_token" => {
            let old = f
                .refresh_token
                .as_ref()
                .and_then(|r| lock(&st.oidc).refresh.remove(r));
            match old {
                Some((login, client)) if client == f.client_id => login,
                _ => return oauth_error("invalid_grant", "unknown, used or foreign refresh token"),
            }
        }
        _ => return oauth_error("unsupported_grant_type", "unsupported grant_type"),
    };
    let (access, _) = st.issue_jwt(&login);
    let refresh = random_token();
    lock(&st.oidc)
        .refresh
        .insert(refresh.clone(), (login.clone(), f.client_id.clone()));
    let expires_in = st
        .token_ttl
        .map(|t| t.as_secs())
        .unwrap_or(DEFAULT_EXPIRES_IN);
    let now = crate::state::now_secs();
    let claims = json!({
        "iss": format!("{}/oidc/", base_url(&headers)),
        "sub": login, "name": login, "aud": f.client_id,
        "iat": now, "exp": now + expires_in as i64,
    });
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let id_token = format!("{header}.{}.", URL_SAFE_NO_PAD.encode(claims.to_string()));
    Json(json!({
        "access_token": access,
        "token_type": "bearer",
        "expires_in": expires_in,
        "refresh_token": refresh,
        "id_token": id_token,
        "scope": "openid email profile pydio offline",
    }))
    .into_response()
}
