//! Shared set-up for the client integration tests: a test server in a temporary folder and
//! a client pointed at it.
#![allow(dead_code)]

use cells_mount::client::{CellsClient, ClientConfig, RetryPolicy, Secret};
use cells_mount::names::RemotePath;
use cells_testserver::{ServerConfig, TestServer};
use std::future::Future;
use std::time::Duration;
use tempfile::TempDir;

pub const TOKEN: &str = "alice-token";

pub struct Env {
    pub server: TestServer,
    pub dir: TempDir,
    pub client: CellsClient,
}

impl Env {
    /// Folder on disk backing `personal-files/<rel>` for alice.
    pub fn personal_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("personal-files").join("alice")
    }

    pub fn client_with_token(&self, token: &str) -> CellsClient {
        CellsClient::new(fast_config(&self.server.url(), token)).unwrap()
    }
}

/// A config with short timeouts and quick retries, so failing tests fail fast.
pub fn fast_config(url: &str, token: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new(url, Secret::new(token)).unwrap();
    cfg.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
    };
    cfg.timeouts.request = Duration::from_secs(20);
    cfg.timeouts.job = Duration::from_secs(20);
    cfg
}

pub async fn start() -> Env {
    start_with(|_, _| {}).await
}

/// Starts a server after letting `prepare` adjust its config or seed its data folder.
pub async fn start_with(prepare: impl FnOnce(&mut ServerConfig, &std::path::Path)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ServerConfig::new(dir.path());
    prepare(&mut cfg, dir.path());
    let server = TestServer::start(cfg).await.unwrap();
    let client = CellsClient::new(fast_config(&server.url(), TOKEN)).unwrap();
    Env {
        server,
        dir,
        client,
    }
}

pub fn p(s: &str) -> RemotePath {
    RemotePath::parse(s).unwrap()
}

/// Byte i is i % 251: the pattern of the Cells hash test vectors.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Polls `check` until it returns `Some`, failing the test after `within`.
pub async fn wait_for<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes `data` to a new file in `dir` and returns its path.
pub fn local_file(dir: &std::path::Path, name: &str, data: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}
