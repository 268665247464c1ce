//! Login with a user name and password (`POST /a/frontend/session`): the legacy flow, and
//! what tests use to get short-lived JWTs. Also a [`TokenSource`] that logs in again when
//! the JWT expires.

use super::assumptions::{REST_PREFIX, session_expiry};
use super::config::{ClientConfig, Secret};
use super::error::{ClientError, ClientResult};
use super::http::{ErrorFlavor, Http, Retry, StaticToken, TokenSource, parse_json};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A JWT obtained by logging in.
#[derive(Debug, Clone)]
pub struct Session {
    pub jwt: Secret,
    pub expires_at: Option<SystemTime>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct WireSession {
    #[serde(rename = "JWT")]
    jwt: Option<String>,
    expire_time: Option<i64>,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Logs `login` in on `server` with a password.
pub async fn login(server: &str, login: &str, password: &Secret) -> ClientResult<Session> {
    // The config needs a token; login is the one call that does not send one.
    let cfg = ClientConfig::new(server, Secret::new("login-needs-no-token"))?;
    let http = Http::new(&cfg, Arc::new(StaticToken(Secret::new(""))))?;
    let url = http.url(&format!("{REST_PREFIX}/frontend/session"))?;
    let body =
        json!({"AuthInfo": {"login": login, "password": password.expose(), "type": "credentials"}});
    let resp = http
        .send(Retry::Idempotent, ErrorFlavor::Rest, |_| {
            Ok(http.request(reqwest::Method::POST, url.clone()).json(&body))
        })
        .await
        .map_err(|e| match e {
            ClientError::Unauthorized(_) | ClientError::Forbidden(_) => {
                ClientError::Unauthorized(format!("login of {login:?} refused"))
            }
            other => other,
        })?;
    let reply: WireSession = parse_json(resp).await?;
    let jwt = reply
        .jwt
        .filter(|j| !j.is_empty())
        .ok_or_else(|| ClientError::Unauthorized(format!("login of {login:?} returned no JWT")))?;
    let expires_at = reply
        .expire_time
        .and_then(|t| session_expiry(t, unix_now()))
        .and_then(|t| u64::try_from(t).ok())
        .map(|t| UNIX_EPOCH + Duration::from_secs(t));
    Ok(Session {
        jwt: Secret::new(jwt),
        expires_at,
    })
}

/// Keeps a session JWT fresh by logging in again when asked to refresh.
pub struct PasswordTokenSource {
    server: String,
    login: String,
    password: Secret,
    session: Mutex<Session>,
}

impl PasswordTokenSource {
    /// Logs in once; fails like [`login`].
    pub async fn connect(server: &str, user: &str, password: Secret) -> ClientResult<Self> {
        let session = login(server, user, &password).await?;
        Ok(Self {
            server: server.to_owned(),
            login: user.to_owned(),
            password,
            session: Mutex::new(session),
        })
    }
}

#[async_trait]
impl TokenSource for PasswordTokenSource {
    fn current(&self) -> Secret {
        match self.session.lock() {
            Ok(s) => s.jwt.clone(),
            Err(poisoned) => poisoned.into_inner().jwt.clone(),
        }
    }

    async fn refresh(&self) -> ClientResult<Secret> {
        let fresh = login(&self.server, &self.login, &self.password).await?;
        let jwt = fresh.jwt.clone();
        match self.session.lock() {
            Ok(mut s) => *s = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(jwt)
    }

    fn expires_at(&self) -> Option<SystemTime> {
        match self.session.lock() {
            Ok(s) => s.expires_at,
            Err(poisoned) => poisoned.into_inner().expires_at,
        }
    }
}
