//! Client configuration: the validated server URL, the token (kept out of logs), timeouts and
//! the retry policy.

use super::error::{ClientError, ClientResult};
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

/// A token or password. Debug and Display print `***` so that a stray `{:?}` never leaks it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for the one place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces every occurrence of the secret in `text` (an error message built from a server
    /// reply, say) with `***`.
    pub fn redact(&self, text: &str) -> String {
        if self.0.len() < 4 {
            return text.to_owned();
        }
        text.replace(&self.0, "***")
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Time limits for one request. A transfer (a range read, a part upload) gets `transfer`
/// instead of `request`, as it legitimately takes longer on a slow link.
#[derive(Debug, Clone)]
pub struct Timeouts {
    pub connect: Duration,
    pub request: Duration,
    pub transfer: Duration,
    /// Overall deadline when waiting for a background job (move, copy, delete).
    pub job: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(30),
            transfer: Duration::from_secs(300),
            job: Duration::from_secs(300),
        }
    }
}

/// Exponential backoff with jitter for idempotent calls that failed transiently.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total attempts, the first one included; 1 disables retries.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `retry` (0 = the first retry): `base * 2^retry`, capped at
    /// `max_delay`, then scaled by a random factor in [0.5, 1] so that many clients that failed
    /// together do not come back together.
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = rand::random_range(0.5..=1.0);
        self.delay_with_jitter(retry, factor)
    }

    fn delay_with_jitter(&self, retry: u32, factor: f64) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX));
        exp.min(self.max_delay).mul_f64(factor.clamp(0.0, 1.0))
    }
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Server root, always ending with `/` so that relative joins keep any path prefix.
    pub server: Url,
    pub token: Secret,
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
    pub user_agent: String,
    /// Extra CA certificate (PEM file) trusted in addition to the system store, for servers
    /// behind a private CA. Verification itself is never disabled.
    pub extra_ca_pem: Option<PathBuf>,
    /// Parts uploaded at once during a multipart upload.
    pub upload_parallelism: usize,
}

impl ClientConfig {
    /// Validates `server` (see [`parse_server_url`]) and applies defaults to the rest.
    pub fn new(server: &str, token: Secret) -> ClientResult<Self> {
        if token.expose().trim().is_empty() {
            return Err(ClientError::Config("the token is empty".into()));
        }
        if token.expose().chars().any(|c| c.is_control() || c == ' ') {
            return Err(ClientError::Config(
                "the token contains spaces or control characters".into(),
            ));
        }
        Ok(Self {
            server: parse_server_url(server)?,
            token,
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
            user_agent: format!("cells-mount/{}", env!("CARGO_PKG_VERSION")),
            extra_ca_pem: None,
            upload_parallelism: 4,
        })
    }
}

/// Parses and normalises a server URL: http or https only, a host, no credentials, query or
/// fragment; a trailing `/` is added so that `https://host/cells` keeps its `/cells` prefix.
pub fn parse_server_url(raw: &str) -> ClientResult<Url> {
    let bad = |why: &str| ClientError::Config(format!("server URL {raw:?}: {why}"));
    let mut url = Url::parse(raw.trim()).map_err(|e| bad(&e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials in the URL are not allowed; give a token instead",
        ));
    }
    if url.query().is_some() {
        return Err(bad("a query string is not allowed"));
    }
    if url.fragment().is_some() {
        return Err(bad("a fragment is not allowed"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("eyJhbGciOi.secret-token");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "***");
        let cfg = ClientConfig::new("https://cells.example.com", s.clone()).unwrap();
        assert!(!format!("{cfg:?}").contains("secret-token"));
        assert_eq!(
            s.redact("bad token eyJhbGciOi.secret-token here"),
            "bad token *** here"
        );
    }

    #[test]
    fn server_urls_are_validated_and_normalised() {
        let ok = |s: &str| parse_server_url(s).unwrap().to_string();
        assert_eq!(
            ok("https://cells.example.com"),
            "https://cells.example.com/"
        );
        assert_eq!(
            ok("http://127.0.0.1:8080/cells"),
            "http://127.0.0.1:8080/cells/"
        );
        assert_eq!(ok(" https://h/cells/ "), "https://h/cells/");
        for bad in [
            "ftp://host",
            "file:///etc/passwd",
            "https://user:pw@host",
            "https://user@host",
            "https://host/?a=b",
            "https://host/#frag",
            "not a url",
            "",
        ] {
            let err = parse_server_url(bad).unwrap_err();
            assert!(matches!(err, ClientError::Config(_)), "{bad}: {err}");
            assert!(!err.to_string().contains("pw@") || bad.contains("pw@"));
        }
    }

    #[test]
    fn tokens_are_checked() {
        assert!(ClientConfig::new("https://h", Secret::new("")).is_err());
        assert!(ClientConfig::new("https://h", Secret::new("a b")).is_err());
        let err = ClientConfig::new("https://h", Secret::new("hunter2\nx")).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        };
        assert_eq!(p.delay_with_jitter(0, 1.0), Duration::from_millis(100));
        assert_eq!(p.delay_with_jitter(3, 1.0), Duration::from_millis(800));
        assert_eq!(p.delay_with_jitter(30, 1.0), Duration::from_secs(2));
        assert_eq!(p.delay_with_jitter(200, 1.0), Duration::from_secs(2));
        assert_eq!(p.delay_with_jitter(1, 0.5), Duration::from_millis(100));
        for retry in 0..40 {
            let d = p.delay(retry);
            assert!(d <= Duration::from_secs(2));
            assert!(d >= p.delay_with_jitter(retry, 0.5));
        }
    }
}
