//! Credentials: the OIDC login (discovery, PKCE flow, redirect listener), personal access
//! tokens, where secrets are kept, and the token source a mount authenticates with.

pub mod callback;
pub mod discovery;
pub mod flow;
pub mod login;
pub mod store;
pub mod tokens;

pub use discovery::{OidcEndpoints, discover, http_client};
pub use store::{SecretStore, StoredCredential};
pub use tokens::OidcTokens;

use crate::client::{Secret, StaticToken, TokenSource};
use crate::config::{AccountConfig, AuthKind, SecretStoreKind};
use std::path::Path;
use std::sync::Arc;

/// Why a login or a refresh failed. Messages never hold a token, code or verifier.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Offline(String),
    #[error("{0}")]
    Certificate(String),
    #[error("{0}")]
    Discovery(String),
    /// The login was refused or its answer does not match (state, nonce, error reply).
    #[error("{0}")]
    Rejected(String),
    /// The code or refresh token is no longer valid (`invalid_grant`): log in again.
    #[error("the login has expired or was revoked: {0}")]
    Expired(String),
    #[error("the identity provider misbehaved: {0}")]
    Server(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// What a mount needs to authenticate as a configured account.
pub struct AccountAuth {
    /// The token to start with (also given to `ClientConfig::new`).
    pub token: Secret,
    pub source: Arc<dyn TokenSource>,
    /// For OIDC accounts: start its keeper once a runtime runs (`OidcTokens::spawn_keeper`).
    pub oidc: Option<Arc<OidcTokens>>,
}

/// Loads `name`'s saved secret (blocking: the keyring may talk D-Bus) and builds its token
/// source. Errors say what to do (log in again, fix permissions).
pub fn open_account(
    config_dir: &Path,
    name: &str,
    account: &AccountConfig,
) -> Result<AccountAuth, AuthError> {
    let store = SecretStore::new(config_dir);
    let (saved, kind) = load_either(&store, name, account.secret_store)?;
    match (account.auth, &saved) {
        (AuthKind::Token, StoredCredential::Token { token }) => {
            let token = Secret::new(token.clone());
            Ok(AccountAuth {
                source: Arc::new(StaticToken(token.clone())),
                token,
                oidc: None,
            })
        }
        (AuthKind::Oidc, StoredCredential::Oidc { access_token, .. }) => {
            let token_url = account.token_url.as_deref().ok_or_else(|| {
                AuthError::Config(format!(
                    "account {name:?} has no token endpoint; log in again: cells-mount login {}",
                    account.server
                ))
            })?;
            let token = url::Url::parse(token_url)
                .map_err(|e| AuthError::Config(format!("account {name:?}: token_url: {e}")))?;
            let endpoints = OidcEndpoints {
                // Only the token endpoint is used to refresh.
                authorization: token.clone(),
                token,
            };
            let http = http_client(account.ca_cert.as_deref())?;
            let tokens = OidcTokens::new(
                http,
                endpoints,
                account
                    .client_id
                    .clone()
                    .unwrap_or_else(|| flow::DEFAULT_CLIENT_ID.to_owned()),
                account.server.clone(),
                tokens::Persistence {
                    store,
                    account: name.to_owned(),
                    kind,
                },
                &saved,
            )?;
            Ok(AccountAuth {
                token: Secret::new(access_token.clone()),
                source: tokens.clone(),
                oidc: Some(tokens),
            })
        }
        _ => Err(AuthError::Config(format!(
            "account {name:?}: the saved secret does not match its auth kind {}; log in again",
            account.auth
        ))),
    }
}

/// The secret from where the config says, or from the other store (a save that fell back to
/// the file after the keyring failed mid-session).
fn load_either(
    store: &SecretStore,
    name: &str,
    kind: SecretStoreKind,
) -> Result<(StoredCredential, SecretStoreKind), AuthError> {
    match store.load(name, kind) {
        Ok(c) => Ok((c, kind)),
        Err(first) => {
            let other = match kind {
                SecretStoreKind::Keyring => SecretStoreKind::File,
                SecretStoreKind::File => return Err(first.into()),
            };
            store
                .load(name, other)
                .map(|c| (c, other))
                .map_err(|_| first.into())
        }
    }
}
