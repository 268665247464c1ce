//! The one place that sends HTTP requests to Cells: per-request timeouts, error classification,
//! retries with backoff for idempotent calls, and token refresh on 401.

use super::config::{ClientConfig, RetryPolicy, Secret, Timeouts};
use super::errmap::redact_error;
pub use super::errmap::{ErrorFlavor, classify};
use super::error::{ClientError, ClientResult};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::SystemTime;
use url::Url;

/// Where the bearer token comes from. `current` is cheap and called for every request;
/// `refresh` is called once after a 401, and by the event feed before the token expires.
#[async_trait]
pub trait TokenSource: Send + Sync {
    fn current(&self) -> Secret;
    async fn refresh(&self) -> ClientResult<Secret>;
    /// When the current token stops working, if known (personal access tokens: unknown).
    fn expires_at(&self) -> Option<SystemTime> {
        None
    }
}

/// A personal access token: fixed, cannot be refreshed.
pub struct StaticToken(pub Secret);

#[async_trait]
impl TokenSource for StaticToken {
    fn current(&self) -> Secret {
        self.0.clone()
    }
    async fn refresh(&self) -> ClientResult<Secret> {
        Err(ClientError::Unauthorized(
            "the personal access token was refused and cannot be refreshed".into(),
        ))
    }
}

/// Whether a call may be sent again after a transient failure. Job starts and multipart
/// completion are `Once`: a lost reply does not mean the server did nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    Idempotent,
    Once,
}

/// Largest error or JSON body we read into memory.
const MAX_JSON_BODY: usize = 64 * 1024 * 1024;
const MAX_ERROR_BODY: usize = 64 * 1024;

pub struct Http {
    client: reqwest::Client,
    base: Url,
    pub tokens: Arc<dyn TokenSource>,
    pub retry: RetryPolicy,
    pub timeouts: Timeouts,
    user_agent: String,
}

/// Installs the ring crypto provider for rustls once per process; a second install (by us or
/// by another part of the program) reports "already installed", which is what we want.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Http {
    pub fn new(cfg: &ClientConfig, tokens: Arc<dyn TokenSource>) -> ClientResult<Self> {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(cfg.timeouts.connect)
            .user_agent(cfg.user_agent.clone())
            // Redirects could carry our Authorization header elsewhere; Cells does not use them.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem_path) = &cfg.extra_ca_pem {
            let pem = std::fs::read(pem_path).map_err(|e| {
                ClientError::Config(format!("CA certificate {}: {e}", pem_path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ClientError::Config(format!("CA certificate {}: {e}", pem_path.display()))
            })?;
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder
            .build()
            .map_err(|e| ClientError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            base: cfg.server.clone(),
            tokens,
            retry: cfg.retry.clone(),
            timeouts: cfg.timeouts.clone(),
            user_agent: cfg.user_agent.clone(),
        })
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    pub fn user_agent(&self) -> &str {
        &self.user_agent
    }

    /// `rel` (already percent-encoded, no leading `/`) resolved against the server root.
    pub fn url(&self, rel: &str) -> ClientResult<Url> {
        self.base
            .join(rel)
            .map_err(|e| ClientError::Config(format!("bad request path {rel:?}: {e}")))
    }

    /// A request with the default per-request timeout; callers may override it.
    pub fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        self.client
            .request(method, url)
            .timeout(self.timeouts.request)
    }

    /// Sends the request `build` makes for the current token; on 401 refreshes the token once
    /// and tries again; retries transient failures of idempotent calls with backoff.
    /// Success means a 2xx status; anything else is classified with `flavor`.
    pub async fn send<F>(
        &self,
        retry: Retry,
        flavor: ErrorFlavor,
        build: F,
    ) -> ClientResult<reqwest::Response>
    where
        F: Fn(&Secret) -> ClientResult<reqwest::RequestBuilder>,
    {
        let mut refreshed = false;
        let mut retries = 0u32;
        loop {
            let token = self.tokens.current();
            let request = build(&token)?
                .build()
                .map_err(|e| transport_error(e, &token))?;
            // For the failure log line: never the query (presigned URLs carry credentials).
            let (method, path) = (request.method().clone(), request.url().path().to_owned());
            let err = match self.client.execute(request).await {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) => error_from_response(resp, flavor, &token).await,
                Err(e) => transport_error(e, &token),
            };
            // The S3 gateway answers an expired token with 403 AccessDenied, so there a
            // Forbidden also earns one refresh (a static token cannot refresh: no retry).
            let auth_suspect = matches!(err, ClientError::Unauthorized(_))
                || (flavor == ErrorFlavor::S3 && matches!(err, ClientError::Forbidden(_)));
            if auth_suspect && !refreshed {
                refreshed = true;
                // A 401 means the server did nothing, so even a `Once` call may be re-sent.
                match self.tokens.refresh().await {
                    Ok(_) => continue,
                    Err(refresh_err) => {
                        tracing::warn!(
                            "{method} {path} failed: {err} (token refresh failed: {refresh_err})"
                        );
                        return Err(err);
                    }
                }
            }
            if retry == Retry::Idempotent
                && is_retryable(&err)
                && retries + 1 < self.retry.max_attempts
            {
                let delay = self.retry.delay(retries);
                tracing::debug!("retrying in {delay:?} after: {err}");
                tokio::time::sleep(delay).await;
                retries += 1;
                continue;
            }
            // One line per failed call. A missing node is an everyday answer (lookups of
            // names that do not exist), not a failure worth a warning.
            if matches!(err, ClientError::NotFound(_)) {
                tracing::debug!("{method} {path}: {err}");
            } else {
                tracing::warn!("{method} {path} failed: {err}");
            }
            return Err(err);
        }
    }

    /// A REST call with a JSON body (or none) and a JSON reply.
    pub async fn rest_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        rel: &str,
        body: Option<&B>,
        retry: Retry,
    ) -> ClientResult<T> {
        let url = self.url(rel)?;
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ClientError::Protocol(format!("encoding request: {e}")))?;
        let resp = self
            .send(retry, ErrorFlavor::Rest, |token| {
                let mut req = self
                    .request(method.clone(), url.clone())
                    .bearer_auth(token.expose());
                if let Some(body) = &body {
                    req = req
                        .header(http::header::CONTENT_TYPE, "application/json")
                        .body(body.clone());
                }
                Ok(req)
            })
            .await?;
        parse_json(resp).await
    }
}

/// Reads a JSON reply (bounded in size) and decodes it; any failure is a protocol error.
pub async fn parse_json<T: DeserializeOwned>(resp: reqwest::Response) -> ClientResult<T> {
    let body = read_limited(resp, MAX_JSON_BODY).await?;
    serde_json::from_slice(&body)
        .map_err(|e| ClientError::Protocol(format!("undecodable JSON reply: {e}")))
}

/// Reads at most `limit` bytes of a body; a longer body is a protocol error.
pub async fn read_limited(mut resp: reqwest::Response, limit: usize) -> ClientResult<Bytes> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| transport_error(e, &Secret::new("")))?
    {
        if buf.len() + chunk.len() > limit {
            return Err(ClientError::Protocol(format!(
                "reply larger than {limit} bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn is_retryable(err: &ClientError) -> bool {
    match err {
        ClientError::Offline(_) => true,
        ClientError::Server { status, .. } => *status >= 500,
        _ => false,
    }
}

/// Classifies a failure to get any reply: all of them mean "out of reach" except a reply we
/// could not decode.
pub fn transport_error(e: reqwest::Error, token: &Secret) -> ClientError {
    let msg = token.redact(&e.to_string());
    if e.is_decode() {
        ClientError::Protocol(msg)
    } else if e.is_builder() {
        ClientError::Config(msg)
    } else if e.is_timeout() {
        ClientError::Offline(format!("timed out: {msg}"))
    } else {
        ClientError::Offline(msg)
    }
}

async fn error_from_response(
    resp: reqwest::Response,
    flavor: ErrorFlavor,
    token: &Secret,
) -> ClientError {
    let status = resp.status().as_u16();
    let body = read_limited(resp, MAX_ERROR_BODY).await.unwrap_or_default();
    let mapped = classify(status, &body, flavor);
    redact_error(mapped, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_errors_are_retried() {
        assert!(is_retryable(&ClientError::Offline("x".into())));
        assert!(is_retryable(&ClientError::Server {
            status: 500,
            message: String::new()
        }));
        assert!(!is_retryable(&ClientError::Server {
            status: 400,
            message: String::new()
        }));
        assert!(!is_retryable(&ClientError::NotFound("x".into())));
        assert!(!is_retryable(&ClientError::Protocol("x".into())));
    }
}
