//! [`OidcTokens`]: the token source of an OIDC account. It refreshes ahead of expiry (a
//! background keeper) and on demand (after a 401), one refresh at a time, and saves each
//! rotated refresh token before the new access token is used: a crash can never leave us
//! holding only a refresh token the server has already retired.

use super::AuthError;
use super::discovery::OidcEndpoints;
use super::flow::{Grant, refresh};
use super::store::{SecretStore, StoredCredential};
use crate::client::{ClientError, ClientResult, Secret, TokenSource};
use crate::config::SecretStoreKind;
use async_trait::async_trait;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

/// Refresh this long before expiry (less for tokens that live less than twice as long).
pub const REFRESH_AHEAD: Duration = Duration::from_secs(60);
/// After a refresh, another caller's refresh within this delay reuses its result.
const COALESCE: Duration = Duration::from_millis(500);
/// A refresh token the server rejected is not retried for this long (each 401 asks again).
const DEAD_LOGIN_BACKOFF: Duration = Duration::from_secs(60);

struct State {
    access: Secret,
    refresh: Option<Secret>,
    expires_at: Option<SystemTime>,
    /// When the current access token was obtained (lifetime estimate for the margin).
    obtained: SystemTime,
    refreshed: Option<Instant>,
    /// Set when the server refused the refresh token: the user must log in again.
    dead_since: Option<Instant>,
}

/// Where rotated tokens are saved.
pub struct Persistence {
    pub store: SecretStore,
    pub account: String,
    pub kind: SecretStoreKind,
}

pub struct OidcTokens {
    http: reqwest::Client,
    endpoints: OidcEndpoints,
    client_id: String,
    server: String,
    persist: Persistence,
    state: Mutex<State>,
    /// Serialises refreshes: two concurrent ones would spend the same rotating token twice.
    refreshing: tokio::sync::Mutex<()>,
}

impl OidcTokens {
    pub fn new(
        http: reqwest::Client,
        endpoints: OidcEndpoints,
        client_id: String,
        server: String,
        persist: Persistence,
        saved: &StoredCredential,
    ) -> Result<Arc<Self>, AuthError> {
        let StoredCredential::Oidc {
            access_token,
            refresh_token,
            ..
        } = saved
        else {
            return Err(AuthError::Config("this account has no OIDC login".into()));
        };
        Ok(Arc::new(Self {
            http,
            endpoints,
            client_id,
            server,
            persist,
            state: Mutex::new(State {
                access: Secret::new(access_token.clone()),
                refresh: refresh_token.clone().map(Secret::new),
                expires_at: saved.expires_at(),
                obtained: SystemTime::now(),
                refreshed: None,
                dead_since: None,
            }),
            refreshing: tokio::sync::Mutex::new(()),
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn log_in_again(&self, why: &str) -> ClientError {
        ClientError::Unauthorized(format!(
            "the login has expired or was revoked ({why}); log in again: cells-mount login {}",
            self.server
        ))
    }

    /// How long until the keeper should refresh: `REFRESH_AHEAD` before expiry, or at half
    /// the lifetime for short-lived tokens. `None`: the token does not expire.
    fn refresh_due_in(&self) -> Option<Duration> {
        let st = self.state();
        let expires = st.expires_at?;
        let lifetime = expires.duration_since(st.obtained).unwrap_or_default();
        let margin = REFRESH_AHEAD.min(lifetime / 2);
        let due = expires.checked_sub(margin).unwrap_or(expires);
        Some(due.duration_since(SystemTime::now()).unwrap_or_default())
    }

    /// Starts the background keeper; it ends when the last other handle is dropped.
    pub fn spawn_keeper(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                let Some(wait) = weak.upgrade().map(|t| t.refresh_due_in()) else {
                    return;
                };
                let Some(wait) = wait else { return };
                tokio::time::sleep(wait).await;
                let Some(tokens) = weak.upgrade() else { return };
                match tokens.refresh_now().await {
                    Ok(_) => failures = 0,
                    Err(ClientError::Unauthorized(m)) => {
                        tracing::error!("{m}; the mount keeps serving cached files");
                        return;
                    }
                    Err(e) => {
                        failures += 1;
                        let delay = Duration::from_secs(5u64 << failures.min(4));
                        tracing::warn!("token refresh failed ({e}); retrying in {delay:?}");
                        drop(tokens);
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        })
    }

    async fn refresh_now(&self) -> ClientResult<Secret> {
        let _one_at_a_time = self.refreshing.lock().await;
        let refresh_token = {
            let st = self.state();
            if st.refreshed.is_some_and(|t| t.elapsed() < COALESCE) {
                return Ok(st.access.clone());
            }
            if st
                .dead_since
                .is_some_and(|t| t.elapsed() < DEAD_LOGIN_BACKOFF)
            {
                return Err(self.log_in_again("refresh token refused"));
            }
            st.refresh.clone()
        };
        let Some(refresh_token) = refresh_token else {
            return Err(self.log_in_again("no refresh token was issued"));
        };
        let grant =
            match refresh(&self.http, &self.endpoints, &self.client_id, &refresh_token).await {
                Ok(g) => g,
                Err(AuthError::Expired(why)) => {
                    self.state().dead_since = Some(Instant::now());
                    return Err(self.log_in_again(&why));
                }
                Err(AuthError::Offline(why)) => return Err(ClientError::Offline(why)),
                Err(e) => {
                    return Err(ClientError::Server {
                        status: 0,
                        message: e.to_string(),
                    });
                }
            };
        let refresh = grant.refresh_token.clone().or(Some(refresh_token));
        self.save(&grant, refresh.as_ref()).await;
        let mut st = self.state();
        st.access = grant.access_token.clone();
        st.refresh = refresh;
        st.expires_at = grant.expires_at;
        st.obtained = SystemTime::now();
        st.refreshed = Some(Instant::now());
        st.dead_since = None;
        tracing::debug!(expires_at = ?grant.expires_at, "access token refreshed");
        Ok(grant.access_token)
    }

    /// Saves the rotated tokens (blocking store: off the runtime's threads). A failure cannot
    /// be undone (the old refresh token is already retired), so it is logged loudly and the
    /// new tokens are still used for this session.
    async fn save(&self, grant: &Grant, refresh: Option<&Secret>) {
        let cred = StoredCredential::oidc(&grant.access_token, refresh, grant.expires_at);
        let (store, account, kind) = (
            self.persist.store.clone(),
            self.persist.account.clone(),
            self.persist.kind,
        );
        let saved =
            tokio::task::spawn_blocking(move || store.save(&account, &cred, Some(kind))).await;
        match saved {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!("{e}; the next start will need a new login"),
            Err(e) => tracing::error!("saving the renewed login failed: {e}"),
        }
    }
}

#[async_trait]
impl TokenSource for OidcTokens {
    fn current(&self) -> Secret {
        self.state().access.clone()
    }

    async fn refresh(&self) -> ClientResult<Secret> {
        self.refresh_now().await
    }

    fn expires_at(&self) -> Option<SystemTime> {
        self.state().expires_at
    }
}
