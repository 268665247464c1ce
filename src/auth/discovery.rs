//! OIDC discovery (`/oidc/.well-known/openid-configuration`) with diagnoses of the usual
//! set-up mistakes, and the HTTP client shared by the login and refresh calls (our reqwest,
//! adapted to the `oauth2` crate's `AsyncHttpClient`).

use super::AuthError;
use crate::client::config::parse_server_url;
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;
use url::Url;

const DISCOVERY_PATH: &str = "oidc/.well-known/openid-configuration";
const MAX_BODY: usize = 256 * 1024;

/// The two endpoints the login needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcEndpoints {
    pub authorization: Url,
    pub token: Url,
}

#[derive(Deserialize)]
struct Discovery {
    authorization_endpoint: String,
    token_endpoint: String,
}

/// An HTTP client for the identity provider: never follows redirects (a token request must
/// not be replayed elsewhere), trusts `ca_cert` in addition to the system store.
pub fn http_client(ca_cert: Option<&Path>) -> Result<reqwest::Client, AuthError> {
    crate::client::http::install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .user_agent(format!("cells-mount/{}", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path)
            .map_err(|e| AuthError::Config(format!("--ca-cert {}: {e}", path.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| AuthError::Config(format!("--ca-cert {}: {e}", path.display())))?;
        builder = builder.tls_certs_merge(certs);
    }
    builder
        .build()
        .map_err(|e| AuthError::Config(format!("HTTP client: {e}")))
}

/// A transport failure of the `oauth2` adapter (its message never holds a request body).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

/// Sends one `oauth2` request with `client`.
pub async fn send_oauth(
    client: reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, TransportError> {
    let (parts, body) = request.into_parts();
    let url = Url::parse(&parts.uri.to_string()).map_err(|e| TransportError(e.to_string()))?;
    let response = client
        .request(parts.method, url)
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| TransportError(describe_transport(&e)))?;
    let mut builder = http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let body = read_capped(response)
        .await
        .map_err(|e| TransportError(e.to_string()))?;
    builder
        .body(body)
        .map_err(|e| TransportError(e.to_string()))
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, AuthError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| AuthError::Offline(describe_transport(&e)))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(AuthError::Server(format!(
                "reply larger than {MAX_BODY} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The whole cause chain of a transport error (reqwest's top message alone says only
/// "error sending request"), with a hint for certificate failures.
pub fn describe_transport(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    // Never echo a URL's query (it could carry a code); reqwest puts the URL in its message.
    if let Some(url) = e.url() {
        let mut shown = url.clone();
        shown.set_query(None);
        text = text.replace(url.as_str(), shown.as_str());
    }
    text
}

fn is_certificate_error(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "certificate",
        "unknownissuer",
        "unknown issuer",
        "invalid peer",
        "self-signed",
        "self signed",
    ]
    .iter()
    .any(|k| t.contains(k))
}

/// Finds the server's OIDC endpoints, explaining the common failures: an unreachable host, a
/// private CA (`--ca-cert`), a Cells without its external URL set (404), or a URL that is not
/// a Cells server at all (what answered instead).
pub async fn discover(client: &reqwest::Client, server: &str) -> Result<OidcEndpoints, AuthError> {
    let base = parse_server_url(server).map_err(|e| AuthError::Config(e.to_string()))?;
    let url = base
        .join(DISCOVERY_PATH)
        .map_err(|e| AuthError::Config(e.to_string()))?;
    let response = client.get(url.clone()).send().await.map_err(|e| {
        let text = describe_transport(&e);
        if is_certificate_error(&text) {
            AuthError::Certificate(format!(
                "{base}: the server's TLS certificate is not trusted ({text}). If it is signed \
                 by a private CA, pass that CA's certificate: --ca-cert /path/to/ca.pem"
            ))
        } else {
            AuthError::Offline(format!("cannot reach {base}: {text}"))
        }
    })?;
    let status = response.status();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_owned();
    let body = read_capped(response).await?;
    let what_answered = || {
        let snippet: String = String::from_utf8_lossy(&body)
            .chars()
            .filter(|c| !c.is_control())
            .take(120)
            .collect();
        format!("status {status}, content type {content_type}, body starts {snippet:?}")
    };
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(AuthError::Discovery(format!(
            "{url} was not found (404): the server's external URL is not configured (Cells: \
             EXTERNAL_URL / sites), or {base} is not the address of a Cells server. \
             Reached: {}",
            what_answered()
        )));
    }
    if !status.is_success() {
        return Err(AuthError::Discovery(format!(
            "{base} does not look like a Cells server: {url} answered {}",
            what_answered()
        )));
    }
    let doc: Discovery = serde_json::from_slice(&body).map_err(|_| {
        AuthError::Discovery(format!(
            "{base} does not look like a Cells server: {url} answered {}",
            what_answered()
        ))
    })?;
    let endpoint = |raw: &str, what: &str| -> Result<Url, AuthError> {
        let u = Url::parse(raw)
            .map_err(|e| AuthError::Discovery(format!("bad {what} {raw:?}: {e}")))?;
        // Never send a code or a refresh token in clear text to a server we reached over TLS.
        let downgrade = base.scheme() == "https" && u.scheme() != "https";
        if (u.scheme() != "https" && u.scheme() != "http") || downgrade {
            return Err(AuthError::Discovery(format!(
                "the server announced an insecure {what}: {u}"
            )));
        }
        Ok(u)
    };
    Ok(OidcEndpoints {
        authorization: endpoint(&doc.authorization_endpoint, "authorization endpoint")?,
        token: endpoint(&doc.token_endpoint, "token endpoint")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_are_recognised() {
        assert!(is_certificate_error(
            "error sending request: invalid peer certificate: UnknownIssuer"
        ));
        assert!(!is_certificate_error("connection refused"));
    }
}
