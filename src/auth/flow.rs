//! The OAuth2 authorization-code flow with PKCE (S256), state and nonce, through the `oauth2`
//! crate: building the authorization URL, checking what comes back to the redirect URI, and
//! exchanging the code; also the refresh-token grant.

use super::AuthError;
use super::discovery::{OidcEndpoints, send_oauth};
use crate::client::Secret;
use base64::Engine;
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, CsrfToken, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse,
    TokenUrl,
};
use serde::{Deserialize, Serialize};
use std::time::SystemTime;
use url::Url;

/// Client id registered by default on Cells servers for desktop apps (cells-sync's).
pub const DEFAULT_CLIENT_ID: &str = "cells-sync";
/// `offline` gets a refresh token; `pydio` the Cells API.
pub const SCOPES: [&str; 5] = ["openid", "email", "profile", "pydio", "offline"];

/// The `id_token` of an OIDC token response (plain OAuth2 responses lack it).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}
impl ExtraTokenFields for IdTokenField {}

type OidcTokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;
type OidcClient = oauth2::Client<
    BasicErrorResponse,
    OidcTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Tokens from the token endpoint. Debug shows no value.
#[derive(Clone)]
pub struct Grant {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    pub expires_at: Option<SystemTime>,
    /// Who logged in, from the ID token (`preferred_username`, `name`, `email` or `sub`).
    pub user: Option<String>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("expires_at", &self.expires_at)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

fn oidc_client(
    endpoints: &OidcEndpoints,
    client_id: &str,
    redirect: Option<&Url>,
) -> Result<OidcClient, AuthError> {
    let mut client = oauth2::Client::new(ClientId::new(client_id.to_owned()))
        .set_auth_uri(AuthUrl::from_url(endpoints.authorization.clone()))
        .set_token_uri(TokenUrl::from_url(endpoints.token.clone()))
        // A public client: the client id goes in the form body, there is no secret.
        .set_auth_type(AuthType::RequestBody);
    if let Some(r) = redirect {
        client = client.set_redirect_uri(RedirectUrl::from_url(r.clone()));
    }
    Ok(client)
}

/// A login in progress: the URL to open, and what the answer must match.
pub struct PendingLogin {
    pub authorize_url: Url,
    client: OidcClient,
    state: CsrfToken,
    nonce: String,
    verifier: PkceCodeVerifier,
}

/// Starts a login: fresh random state, nonce and PKCE verifier.
pub fn begin(
    endpoints: &OidcEndpoints,
    client_id: &str,
    redirect_uri: &Url,
) -> Result<PendingLogin, AuthError> {
    let client = oidc_client(endpoints, client_id, Some(redirect_uri))?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let nonce = CsrfToken::new_random().secret().clone();
    let (authorize_url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(SCOPES.iter().map(|s| Scope::new((*s).to_owned())))
        .add_extra_param("nonce", nonce.clone())
        .set_pkce_challenge(challenge)
        .url();
    Ok(PendingLogin {
        authorize_url,
        client,
        state,
        nonce,
        verifier,
    })
}

impl PendingLogin {
    /// The authorization code in what came back: the redirect's query string, a whole
    /// redirected URL pasted by the user, or a bare code. A state that does not match ours is
    /// refused (a forged or stale redirect); a bare code carries no state, and is bound to
    /// this login by PKCE alone.
    pub fn code_from(&self, answer: &str) -> Result<String, AuthError> {
        let answer = answer.trim();
        let query = match Url::parse(answer) {
            Ok(u) => u.query().unwrap_or("").to_owned(),
            Err(_) if answer.contains('=') => answer.trim_start_matches('?').to_owned(),
            Err(_) if !answer.is_empty() && answer.chars().all(|c| c.is_ascii_graphic()) => {
                return Ok(answer.to_owned());
            }
            Err(_) => return Err(AuthError::Rejected("that is not a login answer".into())),
        };
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if let Some(error) = get("error") {
            let detail = get("error_description").unwrap_or_default();
            return Err(AuthError::Rejected(format!(
                "the server refused the login: {error} {detail}"
            )));
        }
        let state = get("state").unwrap_or_default();
        // Constant-time comparison: the state is a secret shared with the browser only.
        if !constant_time_eq(state.as_bytes(), self.state.secret().as_bytes()) {
            return Err(AuthError::Rejected(
                "the answer does not belong to this login (state mismatch); start again".into(),
            ));
        }
        get("code")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| AuthError::Rejected("the answer holds no authorization code".into()))
    }

    /// Exchanges `code` (with our PKCE verifier) for tokens; checks the ID token's nonce.
    pub async fn exchange(self, http: &reqwest::Client, code: String) -> Result<Grant, AuthError> {
        let send = |req| send_oauth(http.clone(), req);
        let response = self
            .client
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(self.verifier)
            .request_async(&send)
            .await
            .map_err(token_error)?;
        let grant = grant_from(&response)?;
        if let Some(claims) = response.extra_fields().id_token.as_deref().map(id_claims) {
            // Providers that echo the nonce must echo ours; a replayed ID token would not.
            if let Some(nonce) = claims.get("nonce").and_then(|n| n.as_str())
                && !constant_time_eq(nonce.as_bytes(), self.nonce.as_bytes())
            {
                return Err(AuthError::Rejected(
                    "the ID token's nonce does not match".into(),
                ));
            }
        }
        Ok(grant)
    }
}

/// The refresh-token grant. The answer usually holds a new refresh token (rotation): the old
/// one is then dead, and the caller must store the new one before anything else.
pub async fn refresh(
    http: &reqwest::Client,
    endpoints: &OidcEndpoints,
    client_id: &str,
    refresh_token: &Secret,
) -> Result<Grant, AuthError> {
    let client = oidc_client(endpoints, client_id, None)?;
    let token = RefreshToken::new(refresh_token.expose().to_owned());
    let send = |req| send_oauth(http.clone(), req);
    let response = client
        .exchange_refresh_token(&token)
        .add_scopes(SCOPES.iter().map(|s| Scope::new((*s).to_owned())))
        .request_async(&send)
        .await
        .map_err(token_error)?;
    grant_from(&response)
}

fn grant_from(response: &OidcTokenResponse) -> Result<Grant, AuthError> {
    let access = response.access_token().secret();
    if access.is_empty() || access.chars().any(|c| c.is_control() || c == ' ') {
        return Err(AuthError::Server(
            "the token endpoint returned an unusable access token".into(),
        ));
    }
    let user = response
        .extra_fields()
        .id_token
        .as_deref()
        .map(id_claims)
        .and_then(|claims| {
            ["preferred_username", "name", "email", "sub"]
                .iter()
                .find_map(|k| claims.get(*k).and_then(|v| v.as_str()).map(str::to_owned))
        });
    Ok(Grant {
        access_token: Secret::new(access.clone()),
        refresh_token: response
            .refresh_token()
            .map(|r| Secret::new(r.secret().clone())),
        expires_at: response.expires_in().map(|d| SystemTime::now() + d),
        user,
    })
}

/// The claims of an ID token, read without verifying its signature: they only name the user
/// and echo the nonce; the token itself came over TLS from the token endpoint.
fn id_claims(id_token: &str) -> serde_json::Map<String, serde_json::Value> {
    id_token
        .split('.')
        .nth(1)
        .and_then(|payload| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload.trim_end_matches('='))
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Maps `oauth2`'s error. `invalid_grant` means the code or refresh token is dead: the user
/// must log in again. Nothing from the request (code, verifier, token) is in the message.
fn token_error<E: std::error::Error>(e: RequestTokenError<E, BasicErrorResponse>) -> AuthError {
    use oauth2::basic::BasicErrorResponseType as Kind;
    match e {
        RequestTokenError::ServerResponse(r) => {
            let description = r.error_description().cloned().unwrap_or_default();
            match r.error() {
                Kind::InvalidGrant => AuthError::Expired(description),
                other => AuthError::Rejected(format!("{other}: {description}")),
            }
        }
        RequestTokenError::Request(e) => AuthError::Offline(e.to_string()),
        // Only the JSON path: serde's message could quote a token value.
        RequestTokenError::Parse(e, _) => {
            AuthError::Server(format!("undecodable token reply (at {})", e.path()))
        }
        RequestTokenError::Other(m) => AuthError::Server(m),
    }
}

#[cfg(test)]
#[path = "flow_tests.rs"]
mod tests;
