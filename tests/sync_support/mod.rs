//! Shared set-up for the sync integration tests: a journal in a temporary state folder and an
//! uploader with quick retries against the real test server and the real client.
#![allow(dead_code)]

use cells_mount::client::{CellsClient, Remote};
use cells_mount::names::RemotePath;
use cells_mount::sync::{Journal, SyncHooks, Uploader, UploaderConfig};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Every hook call, as text, in order.
#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<String>>);

impl Recorder {
    pub fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl SyncHooks for Recorder {
    fn uploaded(&self, path: &RemotePath, _node: Option<&cells_mount::client::Node>) {
        self.0.lock().unwrap().push(format!("uploaded {path}"));
    }
    fn conflict(&self, original: &RemotePath, saved_as: &RemotePath) {
        self.0
            .lock()
            .unwrap()
            .push(format!("conflict {original} -> {saved_as}"));
    }
    fn kept_remote(&self, path: &RemotePath) {
        self.0.lock().unwrap().push(format!("kept {path}"));
    }
    fn error(&self, path: &RemotePath, reason: &str) {
        self.0
            .lock()
            .unwrap()
            .push(format!("error {path}: {reason}"));
    }
}

pub fn quick_config(client: &CellsClient) -> UploaderConfig {
    UploaderConfig {
        concurrency: 3,
        host: "testhost".into(),
        retry_base: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        offline_max: Duration::from_millis(300),
        error_backoff: Duration::from_millis(300),
        errors_after: 5,
        interrupted: Some(Arc::new(client.clone())),
        sync_every: Duration::from_millis(100),
        ..UploaderConfig::default()
    }
}

pub fn start_uploader(
    client: &CellsClient,
    journal: &Arc<Journal>,
    hooks: &Arc<Recorder>,
) -> Uploader {
    let remote: Arc<dyn Remote> = Arc::new(client.clone());
    Uploader::spawn(journal.clone(), remote, hooks.clone(), quick_config(client))
}

pub fn open_journal(state: &Path) -> Arc<Journal> {
    Arc::new(Journal::open(state, None).unwrap())
}

/// Drains with a deadline so that a stuck queue fails the test instead of hanging it.
pub async fn drain(uploader: &Uploader) -> cells_mount::sync::QueueStats {
    tokio::time::timeout(Duration::from_secs(60), uploader.drain(|_| {}))
        .await
        .expect("queue drained within 60 s")
}

/// Names in a folder of the server's data directory, sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
