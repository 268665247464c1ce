//! Shared helpers of the test-server integration tests: start a server on a tempdir, log in,
//! wait for jobs, sign S3 requests with aws-sigv4.
#![allow(dead_code)]

use std::time::{Duration, Instant, SystemTime};

use cells_testserver::{ServerConfig, TestServer};
use serde_json::{Value, json};

pub const TOKEN: &str = "alice-token";

pub async fn start(dir: &std::path::Path) -> TestServer {
    TestServer::start(ServerConfig::new(dir)).await.unwrap()
}

pub fn http() -> reqwest::Client {
    // In a workspace-wide build, Cargo unifies reqwest's features with the main crate's,
    // which uses rustls without a default crypto provider: install one (a no-op if set).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub async fn post(url: &str, token: &str, body: Value) -> (u16, Value) {
    let r = http()
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Polls a job until it leaves "Running"; returns (status, message).
pub async fn wait_job(base: &str, job: &str) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, body) = post(
            &format!("{base}/a/jobs/user"),
            TOKEN,
            json!({"JobIDs": [job], "LoadTasks": "Any"}),
        )
        .await;
        assert_eq!(code, 200, "{body}");
        let task = &body["Jobs"][0]["Tasks"][0];
        let status = task["Status"].as_str().unwrap().to_string();
        if status != "Running" {
            let msg = task["StatusMessage"].as_str().unwrap_or("").to_string();
            return (status, msg);
        }
        assert!(Instant::now() < deadline, "job {job} still running");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn stat(base: &str, path: &str) -> (u16, Value) {
    let r = http()
        .get(format!("{base}/a/tree/stat/{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Builds a SigV4-signed request (signed payload) for the S3 gateway.
pub fn signed(
    method: reqwest::Method,
    url: &str,
    access_key: &str,
    secret: &str,
    body: Vec<u8>,
    extra: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    use aws_sigv4::http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
        UriPathNormalizationMode, sign,
    };
    let parsed = url::Url::parse(url).unwrap();
    let host = format!("{}:{}", parsed.host_str().unwrap(), parsed.port().unwrap());
    let creds = aws_credential_types::Credentials::new(access_key, secret, None, None, "test");
    let identity = creds.into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let mut headers: Vec<(&str, &str)> = vec![("host", host.as_str())];
    headers.extend_from_slice(extra);
    let signable = SignableRequest::new(
        method.as_str(),
        url,
        headers.into_iter(),
        SignableBody::Bytes(&body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut req = http().request(method, url);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    for (k, v) in instructions.headers() {
        req = req.header(k, v);
    }
    req.body(body)
}

/// Byte `i` is `i mod 251`, as in the hash test vectors.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

pub fn meta(node: &Value, key: &str) -> Option<String> {
    node["MetaStore"][key]
        .as_str()
        .map(|s| serde_json::from_str::<String>(s).unwrap())
}

/// Writes a seed file below the data folder, creating its parents.
pub fn seed(dir: &std::path::Path, rel: &str, data: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}
