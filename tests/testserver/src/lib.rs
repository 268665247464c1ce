//! cells-testserver: a Cells-compatible test double (REST v4 `/a`, S3 gateway `/io`, events
//! websocket `/ws/event`, OIDC `/oidc`, admin hooks `/_admin`). Not a Cells replacement.

pub mod admin;
pub mod auth;
pub mod error;
pub mod events;
pub mod hash;
pub mod index;
pub mod oidc;
pub mod rest;
pub mod s3;
mod server;
pub mod state;
pub mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{broadcast, watch};

use crate::index::Index;
use crate::state::{AppState, COMMON, PERSONAL, Session, lock};

/// Startup configuration of the test server.
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// (login, password)
    pub users: Vec<(String, String)>,
    /// (login, personal access token)
    pub tokens: Vec<(String, String)>,
    /// Lifetime of JWTs issued by login/OIDC; `None` = they never expire.
    pub token_ttl: Option<Duration>,
    /// v3-style: no `x-cells-hash` in any reply.
    pub legacy_hash: bool,
    pub faults: Faults,
    /// How long move/copy/delete jobs stay "Running".
    pub job_delay: Duration,
}

impl ServerConfig {
    /// 127.0.0.1:0, user alice/alice-password, token alice/alice-token, 50 ms jobs.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            users: vec![("alice".into(), "alice-password".into())],
            tokens: vec![("alice".into(), "alice-token".into())],
            token_ttl: None,
            legacy_hash: false,
            faults: Faults::default(),
            job_delay: Duration::from_millis(50),
        }
    }
}

/// Injected faults; admin endpoints are never subject to them.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Faults {
    pub latency_ms: u64,
    /// 0 = unlimited.
    pub bandwidth_bytes_per_sec: u64,
    /// 0..1: fraction of requests answered 500.
    pub error_rate: f64,
    /// 0..1: fraction of requests whose connection is dropped without a response.
    pub reset_rate: f64,
}

/// A running server; `stop` it to free the port (dropping it also asks it to stop).
pub struct TestServer {
    addr: SocketAddr,
    state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(cfg: ServerConfig) -> anyhow::Result<TestServer> {
        let data_dir = cfg.data_dir.clone();
        let work_dir = data_dir.join(".cells-testserver");
        let logins: Vec<String> = cfg
            .users
            .iter()
            .chain(cfg.tokens.iter())
            .map(|(l, _)| l.clone())
            .collect();
        let mut roots = vec![COMMON.to_string()];
        for login in &logins {
            crate::state::validate_segment(login)
                .map_err(|e| anyhow::anyhow!("bad login {login:?}: {}", e.detail))?;
            roots.push(format!("{PERSONAL}/{login}"));
        }
        for root in &roots {
            std::fs::create_dir_all(data_dir.join(root))
                .with_context(|| format!("create workspace folder {root}"))?;
        }
        // Leftovers of an interrupted run are never valid uploads.
        let _ = std::fs::remove_dir_all(work_dir.join("tmp"));
        std::fs::create_dir_all(work_dir.join("tmp"))?;
        std::fs::create_dir_all(work_dir.join("multipart"))?;
        let mut index = Index::open(&work_dir.join("index.sqlite"))?;
        index.scan(&data_dir, &roots).context("scan data folder")?;

        let mut sessions = HashMap::new();
        for (login, token) in &cfg.tokens {
            sessions.insert(
                token.clone(),
                Session {
                    login: login.clone(),
                    expires_at: None,
                },
            );
        }
        let (events, _) = broadcast::channel(4096);
        let (ws_generation, _) = watch::channel(0);
        let state = Arc::new(AppState {
            data_dir,
            work_dir,
            index: Mutex::new(index),
            users: cfg.users,
            token_ttl: cfg.token_ttl,
            job_delay: cfg.job_delay,
            faults: RwLock::new(cfg.faults),
            legacy_hash: AtomicBool::new(cfg.legacy_hash),
            sessions: Mutex::new(sessions),
            locks: Mutex::default(),
            quotas: Mutex::default(),
            injected: Mutex::default(),
            events,
            ws_generation,
            jobs: Mutex::default(),
            uploads: Mutex::default(),
            oidc: Mutex::default(),
            tree_lock: tokio::sync::Mutex::new(()),
        });
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("bind {}", cfg.listen))?;
        let addr = listener.local_addr()?;
        let router = rest::router()
            .merge(s3::router())
            .merge(events::router())
            .merge(admin::router())
            .merge(oidc::router())
            .with_state(state.clone());
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(server::serve(listener, router, state.clone(), rx));
        tracing::info!("cells-testserver listening on http://{addr}");
        Ok(TestServer {
            addr,
            state,
            shutdown,
            task: Some(task),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set_faults(&self, f: Faults) {
        *self.state.faults.write().unwrap_or_else(|p| p.into_inner()) = f;
    }

    pub fn set_legacy_hash(&self, on: bool) {
        self.state.legacy_hash.store(on, Ordering::Relaxed);
    }

    /// Inject a raw node JSON object (v4 treeNode shape) that listings of `parent` will also
    /// return, to test hostile names the disk cannot hold.
    pub fn inject_raw_child(&self, parent: &str, raw: serde_json::Value) {
        lock(&self.state.injected)
            .entry(parent.trim_matches('/').to_string())
            .or_default()
            .push(raw);
    }

    /// Makes writes and deletes of the Cells path `path` (e.g. `personal-files/a.txt`) fail
    /// with 423 Locked.
    pub fn lock(&self, path: &str) {
        lock(&self.state.locks).insert(path.trim_matches('/').to_string());
    }

    pub fn unlock(&self, path: &str) {
        lock(&self.state.locks).remove(path.trim_matches('/'));
    }

    /// Caps the bytes `login` may store in its workspaces' folders (422 beyond); `None` lifts it.
    pub fn set_quota(&self, login: &str, bytes: Option<u64>) {
        let mut q = lock(&self.state.quotas);
        match bytes {
            Some(b) => q.insert(login.to_string(), b),
            None => q.remove(login),
        };
    }

    /// Closes every events websocket (clients must reconnect).
    pub fn drop_event_connections(&self) {
        self.state.ws_generation.send_modify(|g| *g += 1);
    }

    /// Graceful stop; the port is free when this returns.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
