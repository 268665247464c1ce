//! Offline pins against the in-memory remote, a real cache directory and a real SQLite index:
//! fetching, inheritance through change events, version changes, unpinning, offline pins,
//! the cache quota and restarts.

use super::testing::{Failure, MemoryRemote};
use super::tests::{CHUNK, config, content, wait_until};
use super::*;
use crate::client::{ChangeEvent, ChangeKind, FeedItem};
use crate::meta::MetaStore;
use crate::names::RemotePath;
use cells_cache::{Cache, CacheConfig, EntryState};
use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct PinEnv {
    dir: tempfile::TempDir,
    remote: Arc<MemoryRemote>,
    cache: Arc<Cache>,
    fs: Arc<CellsFs<MemoryRemote>>,
    worker: tokio::task::JoinHandle<()>,
    limit: u64,
}

fn p(s: &str) -> RemotePath {
    RemotePath::parse(s).unwrap()
}

impl PinEnv {
    fn new(remote: MemoryRemote, limit: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start(dir, Arc::new(remote), limit)
    }

    fn start(dir: tempfile::TempDir, remote: Arc<MemoryRemote>, limit: u64) -> Self {
        let mut cache_cfg = CacheConfig::new(dir.path().join("cache"), limit);
        cache_cfg.chunk_size = CHUNK;
        let cache = Arc::new(Cache::open(cache_cfg).unwrap());
        let cfg = config();
        let root = CellsFs::<MemoryRemote>::root_path_for(&cfg).unwrap();
        let meta = MetaStore::open(&dir.path().join("state"), &root).unwrap();
        let fs = CellsFs::new(cfg, remote.clone(), cache.clone(), meta).unwrap();
        let worker = fs.spawn_pins();
        Self {
            dir,
            remote,
            cache,
            fs,
            worker,
            limit,
        }
    }

    /// A process restart: memory dropped, directories kept.
    async fn restart(self) -> Self {
        self.worker.abort();
        let _ = self.worker.await;
        self.fs.wait_fetches_idle().await;
        let PinEnv {
            dir,
            remote,
            cache,
            fs,
            limit,
            ..
        } = self;
        drop(fs);
        drop(cache);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut cfg = CacheConfig::new(dir.path().join("cache"), limit);
            cfg.chunk_size = CHUNK;
            match Cache::open(cfg) {
                Ok(c) => {
                    drop(c);
                    break;
                }
                Err(cells_cache::CacheError::Locked(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(5)).await
                }
                Err(e) => panic!("cache did not reopen: {e}"),
            }
        }
        Self::start(dir, remote, limit)
    }

    /// Pins and waits until the worker finished a pass covering the pins.
    async fn pin(&self, paths: &[&str]) -> PinProgress {
        let paths: Vec<RemotePath> = paths.iter().map(|s| p(s)).collect();
        let ticket = self.fs.pin(paths.clone()).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let progress = self.fs.progress(&paths, ticket);
            if progress.done {
                return progress;
            }
            assert!(
                Instant::now() < deadline,
                "pin did not finish: {progress:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn key_of(&self, path: &str) -> String {
        let node = self.remote.node(path).expect("node exists");
        node.version.expect("versioned").cache_key()
    }

    fn state(&self, path: &str) -> EntryState {
        self.cache.state(&self.key_of(path)).unwrap()
    }

    async fn xattr(&self, path: &str, name: &str) -> FsResult<String> {
        let ino = self.lookup(path).await?;
        let v = self.fs.getxattr(ino, OsStr::new(name)).await?;
        Ok(String::from_utf8(v).unwrap())
    }

    async fn lookup(&self, path: &str) -> FsResult<Ino> {
        let mut ino = ROOT_INO;
        for part in path.split('/').filter(|p| !p.is_empty()).skip(1) {
            ino = self.fs.lookup(ino, OsStr::new(part)).await?.attr.ino;
        }
        Ok(ino)
    }

    async fn event(&self, kind: ChangeKind, path: &str) {
        let target = self.remote.node(path);
        let ev = ChangeEvent {
            kind,
            source: None,
            target,
        };
        self.fs.apply_feed_item(FeedItem::Event(ev)).await.unwrap();
    }
}

fn tree() -> MemoryRemote {
    let r = MemoryRemote::new();
    r.add_file("ws/docs/a.bin", content(3 * CHUNK as usize + 7, 1));
    r.add_file("ws/docs/sub/b.txt", b"bee".to_vec());
    r.add_file("ws/docs/empty", Vec::new());
    r.add_file("ws/other.bin", content(2 * CHUNK as usize, 2));
    r
}

#[tokio::test]
async fn a_folder_pin_fetches_and_pins_everything_below_it() {
    let env = PinEnv::new(tree(), 1 << 30);
    let done = env.pin(&["ws/docs"]).await;
    assert!(done.errors.is_empty(), "{:?}", done.errors);
    assert_eq!((done.files_total, done.files_done), (3, 3));
    assert_eq!(done.bytes_total, 3 * CHUNK + 7 + 3);
    for f in ["ws/docs/a.bin", "ws/docs/sub/b.txt", "ws/docs/empty"] {
        assert_eq!(env.state(f), EntryState::Complete, "{f}");
        assert_eq!(env.cache.pin_count(&env.key_of(f)), 1, "{f}");
        assert_eq!(env.xattr(f, xattr::XATTR_STATE).await.unwrap(), "pinned");
        assert_eq!(env.xattr(f, xattr::XATTR_PINNED).await.unwrap(), "yes");
    }
    // Not pinned: nothing fetched, no pinned attribute.
    assert_eq!(env.state("ws/other.bin"), EntryState::Absent);
    assert_eq!(
        env.xattr("ws/other.bin", xattr::XATTR_PINNED).await,
        Err(FsError::NoAttr)
    );
    let names = env.fs.listxattr(env.lookup("ws/docs").await.unwrap()).await;
    assert!(names.unwrap().contains(&xattr::XATTR_PINNED.to_owned()));
    let counts = env.fs.counts();
    assert_eq!(counts.pinned_files, 3);
    assert_eq!(counts.pinned_bytes, 3 * CHUNK + 10);
    assert_eq!(counts.pending_files, 0);

    // Everything stays readable with the server gone.
    env.remote.set_failure(Some(Failure::Offline));
    let ino = env.lookup("ws/docs/a.bin").await.unwrap();
    let fh = env.fs.open(ino, 0, Caller::default()).await.unwrap().fh;
    let bytes = env.fs.read(ino, fh, 0, 4 * CHUNK as u32).await.unwrap();
    assert_eq!(&bytes[..], &content(3 * CHUNK as usize + 7, 1)[..]);
}

#[tokio::test]
async fn new_files_and_new_versions_inside_a_pin_are_fetched_from_events() {
    let env = PinEnv::new(tree(), 1 << 30);
    env.pin(&["ws/docs"]).await;
    let old_key = env.key_of("ws/docs/sub/b.txt");

    env.remote
        .add_file("ws/docs/sub/new.txt", b"fresh".to_vec());
    env.event(ChangeKind::Create, "ws/docs/sub/new.txt").await;
    env.remote
        .add_file("ws/docs/sub/b.txt", b"bee, version two".to_vec());
    env.event(ChangeKind::UpdateContent, "ws/docs/sub/b.txt")
        .await;

    let new_key = env.key_of("ws/docs/sub/b.txt");
    let fresh_key = env.key_of("ws/docs/sub/new.txt");
    wait_until("new file and new version pinned and cached", || {
        env.cache.pin_count(&fresh_key) == 1
            && env.cache.state(&fresh_key).unwrap() == EntryState::Complete
            && env.cache.pin_count(&new_key) == 1
            && env.cache.state(&new_key).unwrap() == EntryState::Complete
    })
    .await;
    assert_eq!(env.cache.pin_count(&old_key), 0, "old version released");
    // Nobody read them: the worker fetched them.
    assert_eq!(env.fs.counts().pinned_files, 4);
}

#[tokio::test]
async fn unpin_releases_content_and_refuses_what_is_not_a_pin() {
    let env = PinEnv::new(tree(), 1 << 30);
    env.pin(&["ws/docs"]).await;
    let key = env.key_of("ws/docs/a.bin");

    let inner = env.fs.unpin(vec![p("ws/docs/sub")]).await.unwrap_err();
    assert!(
        inner.contains("inside the pinned folder ws/docs"),
        "{inner}"
    );
    let none = env.fs.unpin(vec![p("ws/other.bin")]).await.unwrap_err();
    assert!(none.contains("not pinned"), "{none}");
    // A refused request changes nothing, even when another path in it was fine.
    assert!(
        env.fs
            .unpin(vec![p("ws/docs"), p("ws/other.bin")])
            .await
            .is_err()
    );
    assert_eq!(env.cache.pin_count(&key), 1);

    assert_eq!(env.fs.unpin(vec![p("ws/docs")]).await.unwrap(), 3);
    assert_eq!(env.cache.pin_count(&key), 0);
    // Nothing is deleted: still cached, now plain "cached".
    assert_eq!(env.state("ws/docs/a.bin"), EntryState::Complete);
    assert_eq!(
        env.xattr("ws/docs/a.bin", xattr::XATTR_STATE)
            .await
            .unwrap(),
        "cached"
    );
    assert_eq!(env.fs.counts().pinned_files, 0);
    let missing = env.fs.pin(vec![p("ws/nope")]).await.unwrap_err();
    assert!(missing.contains("no such file"), "{missing}");
}

#[tokio::test]
async fn nested_pins_keep_their_content_when_the_outer_one_goes() {
    let env = PinEnv::new(tree(), 1 << 30);
    env.pin(&["ws/docs", "ws/docs/sub"]).await;
    let b = env.key_of("ws/docs/sub/b.txt");
    let a = env.key_of("ws/docs/a.bin");
    assert_eq!(env.fs.unpin(vec![p("ws/docs")]).await.unwrap(), 2);
    assert_eq!((env.cache.pin_count(&a), env.cache.pin_count(&b)), (0, 1));
}

#[tokio::test]
async fn a_pin_made_offline_is_fetched_once_the_server_is_back() {
    let env = PinEnv::new(tree(), 1 << 30);
    env.lookup("ws/docs/a.bin").await.unwrap();
    env.remote.set_failure(Some(Failure::Offline));
    // The first failure switches the core offline.
    let _ = env.fs.lookup(ROOT_INO, OsStr::new("zzz")).await;
    let _ = env.fs.getattr(env.lookup("ws/docs").await.unwrap()).await;
    let ino = env.lookup("ws/docs/a.bin").await.unwrap();
    let fh = env.fs.open(ino, 0, Caller::default()).await.unwrap().fh;
    assert!(env.fs.read(ino, fh, 0, 10).await.is_err());
    assert!(env.fs.is_offline());
    let paths = vec![p("ws/docs")];
    let ticket = env.fs.pin(paths.clone()).await.unwrap();
    wait_until("the offline pass", || env.fs.progress(&paths, ticket).done).await;
    assert!(!env.fs.progress(&paths, ticket).online);
    assert_ne!(env.state("ws/docs/a.bin"), EntryState::Complete);

    env.remote.set_failure(None);
    let key = env.key_of("ws/docs/a.bin");
    wait_until("content fetched after reconnecting", || {
        env.cache.state(&key).unwrap() == EntryState::Complete
    })
    .await;
}

#[tokio::test]
async fn pins_beyond_the_cache_limit_are_refused_without_evicting_other_pins() {
    let r = MemoryRemote::new();
    r.add_file("ws/small/one", content(2 * CHUNK as usize, 3));
    r.add_file("ws/big/huge", content(8 * CHUNK as usize, 4));
    let env = PinEnv::new(r, 6 * CHUNK);
    env.pin(&["ws/small"]).await;
    let small = env.key_of("ws/small/one");
    let done = env.pin(&["ws/big"]).await;
    assert_eq!(done.errors.len(), 1, "{done:?}");
    assert!(done.errors[0].1.contains("raise --cache-size"), "{done:?}");
    assert_eq!(env.cache.pin_count(&env.key_of("ws/big/huge")), 0);
    assert_eq!(env.cache.pin_count(&small), 1);
    assert_eq!(env.state("ws/small/one"), EntryState::Complete);
}

#[tokio::test]
async fn pins_survive_a_restart_without_extra_cache_pins() {
    let env = PinEnv::new(tree(), 1 << 30);
    env.pin(&["ws/docs"]).await;
    let key = env.key_of("ws/docs/a.bin");
    let env = env.restart().await;
    assert!(env.fs.covers(&p("ws/docs/sub/b.txt")));
    // A pass after the restart keeps exactly one cache pin per file.
    env.pin(&["ws/docs"]).await;
    assert_eq!(env.cache.pin_count(&key), 1);
    assert_eq!(env.fs.counts().pinned_files, 3);
    assert_eq!(
        env.xattr("ws/docs/a.bin", xattr::XATTR_STATE)
            .await
            .unwrap(),
        "pinned"
    );
    let _ = env.dir.path();
}

#[tokio::test]
async fn a_pinned_folder_deleted_on_the_server_releases_its_content() {
    let env = PinEnv::new(tree(), 1 << 30);
    env.pin(&["ws/docs"]).await;
    let key = env.key_of("ws/docs/a.bin");
    let source = env.remote.node("ws/docs");
    env.remote.remove("ws/docs");
    let ev = ChangeEvent {
        kind: ChangeKind::Delete,
        source,
        target: None,
    };
    env.fs.apply_feed_item(FeedItem::Event(ev)).await.unwrap();
    wait_until("content released", || env.cache.pin_count(&key) == 0).await;
    let done = env.pin(&["ws/other.bin"]).await;
    let all = env.fs.progress(&[p("ws/docs")], 0);
    assert!(
        all.errors
            .iter()
            .any(|(_, why)| why.contains("no longer exists")),
        "{all:?} {done:?}"
    );
    assert_eq!(env.fs.counts().pinned_files, 1);
}
