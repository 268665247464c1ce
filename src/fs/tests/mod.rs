//! Tests of the core against the in-memory remote, a real cache directory and a real SQLite
//! index in temporary directories. No kernel involved.

mod at_once;
mod dirs;
mod feed;
mod fetch_spans;
mod offline;
mod reads;
mod replay;
mod stale;
mod writes;

use super::testing::MemoryRemote;
use super::*;
use crate::meta::MetaStore;
use cells_cache::{Cache, CacheConfig};
use std::ffi::OsStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const CHUNK: u64 = 4096;

/// Records every invalidation the core asks for.
#[derive(Default)]
pub struct RecordingInvalidator {
    pub entries: Mutex<Vec<(Ino, String)>>,
    pub inodes: Mutex<Vec<Ino>>,
}

impl RecordingInvalidator {
    /// Whether the kernel entry `name` of `parent` was invalidated.
    pub fn has_entry(&self, parent: Ino, name: &str) -> bool {
        let seen = self.entries.lock().unwrap();
        seen.iter().any(|(p, n)| *p == parent && n == name)
    }
}

impl Invalidator for RecordingInvalidator {
    fn inval_entry(&self, parent: Ino, name: &OsStr) {
        self.entries
            .lock()
            .unwrap()
            .push((parent, name.to_string_lossy().into_owned()));
    }
    fn inval_inode(&self, ino: Ino) {
        self.inodes.lock().unwrap().push(ino);
    }
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub remote: Arc<MemoryRemote>,
    pub fs: Arc<CellsFs<MemoryRemote>>,
    pub inv: Arc<RecordingInvalidator>,
    pub cfg: FsConfig,
}

pub fn config() -> FsConfig {
    FsConfig {
        workspace: Some("ws".into()),
        uid: 1000,
        gid: 1000,
        dir_ttl: Duration::from_secs(600),
        readahead_min: CHUNK,
        readahead_max: 16 * CHUNK,
        // One chunk per request, so tests can count requests per chunk (`fetch_spans.rs`
        // tests multi-chunk requests).
        fetch_request_max: CHUNK,
        offline_probe_min: Duration::from_millis(10),
        offline_probe_max: Duration::from_millis(50),
        ..FsConfig::default()
    }
}

impl Harness {
    pub fn new(remote: MemoryRemote) -> Self {
        Self::with_config(remote, config())
    }

    pub fn with_config(remote: MemoryRemote, cfg: FsConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let remote = Arc::new(remote);
        let (fs, inv) = Self::start(&dir, &remote, &cfg);
        Self {
            dir,
            remote,
            fs,
            inv,
            cfg,
        }
    }

    fn start(
        dir: &tempfile::TempDir,
        remote: &Arc<MemoryRemote>,
        cfg: &FsConfig,
    ) -> (Arc<CellsFs<MemoryRemote>>, Arc<RecordingInvalidator>) {
        let cache = Self::open_cache(dir).unwrap();
        Self::start_with(dir, remote, cfg, cache)
    }

    fn open_cache(dir: &tempfile::TempDir) -> Result<Arc<Cache>, cells_cache::CacheError> {
        let mut cache_cfg = CacheConfig::new(dir.path().join("cache"), 1 << 30);
        cache_cfg.chunk_size = CHUNK;
        Cache::open(cache_cfg).map(Arc::new)
    }

    fn start_with(
        dir: &tempfile::TempDir,
        remote: &Arc<MemoryRemote>,
        cfg: &FsConfig,
        cache: Arc<Cache>,
    ) -> (Arc<CellsFs<MemoryRemote>>, Arc<RecordingInvalidator>) {
        let root = CellsFs::<MemoryRemote>::root_path_for(cfg).unwrap();
        let meta = MetaStore::open(&dir.path().join("state"), &root).unwrap();
        let fs = CellsFs::new(cfg.clone(), remote.clone(), cache, meta).unwrap();
        let inv = Arc::new(RecordingInvalidator::default());
        fs.set_invalidator(inv.clone());
        (fs, inv)
    }

    /// A process restart: everything in memory is dropped, the directories stay.
    pub async fn restart(self) -> Self {
        self.fs.wait_fetches_idle().await;
        let Harness {
            dir,
            remote,
            fs,
            cfg,
            ..
        } = self;
        drop(fs);
        // Background tasks release the cache (and its directory lock) as they finish.
        let deadline = Instant::now() + Duration::from_secs(10);
        let cache = loop {
            match Self::open_cache(&dir) {
                Ok(c) => break c,
                Err(cells_cache::CacheError::Locked(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(5)).await
                }
                Err(e) => panic!("cache did not reopen: {e}"),
            }
        };
        let (fs, inv) = Self::start_with(&dir, &remote, &cfg, cache);
        Self {
            dir,
            remote,
            fs,
            inv,
            cfg,
        }
    }

    pub async fn lookup_path(&self, path: &str) -> FsResult<Entry> {
        let mut ino = ROOT_INO;
        let mut entry = self.fs.getattr(ROOT_INO).await?;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            entry = self.fs.lookup(ino, OsStr::new(part)).await?;
            ino = entry.attr.ino;
        }
        Ok(entry)
    }

    /// Reads a whole file through open/read/release in `step`-byte requests.
    pub async fn read_all(&self, ino: Ino, step: u32) -> Vec<u8> {
        let reply = self.fs.open(ino, 0, Caller::default()).await.unwrap();
        let mut out = Vec::new();
        loop {
            let b = self
                .fs
                .read(ino, reply.fh, out.len() as u64, step)
                .await
                .unwrap();
            if b.is_empty() {
                break;
            }
            out.extend_from_slice(&b);
        }
        self.fs.release(ino, reply.fh).await;
        out
    }
}

/// Polls `cond` until it holds, failing after a deadline.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Deterministic pseudo-random bytes.
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}
