//! A kill between journaling a move or delete and applying it to the index: the next start
//! shows the journal's outcome, and leaves alone what later operations already went past.

use super::*;
use crate::names::RemotePath;
use crate::sync::Journal;
use std::path::Path;

fn p(s: &str) -> RemotePath {
    RemotePath::parse(s).unwrap()
}

/// A core with writes enabled over the cache and state in `dir` (one process's life).
fn start(dir: &Path, remote: &Arc<MemoryRemote>) -> (Arc<CellsFs<MemoryRemote>>, Arc<Journal>) {
    let mut cache_cfg = CacheConfig::new(dir.join("cache"), 1 << 30);
    cache_cfg.chunk_size = CHUNK;
    let cache = Arc::new(Cache::open(cache_cfg).unwrap());
    let cfg = config();
    let root = CellsFs::<MemoryRemote>::root_path_for(&cfg).unwrap();
    let state = dir.join("state");
    let meta = MetaStore::open(&state, &root).unwrap();
    let fs = CellsFs::new(cfg, remote.clone(), cache, meta).unwrap();
    let journal = Arc::new(Journal::open(&state, None).unwrap());
    fs.enable_writes(journal.clone(), &state).unwrap();
    (fs, journal)
}

async fn names(fs: &CellsFs<MemoryRemote>, dir: Ino) -> Vec<String> {
    let mut out = Vec::new();
    for ino in fs.meta.child_inos(dir).unwrap() {
        out.push(fs.meta.get(ino).unwrap().unwrap().name.clone());
    }
    out
}

#[tokio::test]
async fn a_move_or_delete_journaled_before_a_kill_shows_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let remote = MemoryRemote::new();
    for name in ["gone.txt", "moved.txt", "recreated.txt", "kept.txt"] {
        remote.add_file(&format!("ws/{name}"), name.as_bytes().to_vec());
    }
    remote.add_dir("ws/docs");
    let remote = Arc::new(remote);
    {
        let (fs, journal) = start(dir.path(), &remote);
        fs.opendir(ROOT_INO).await.unwrap();
        let docs = fs.lookup(ROOT_INO, OsStr::new("docs")).await.unwrap();
        fs.opendir(docs.attr.ino).await.unwrap();
        // What the kill cut short: journaled, never applied to the index.
        journal.enqueue_delete(&p("ws/gone.txt"), None).unwrap();
        journal
            .enqueue_rename(&p("ws/moved.txt"), &p("ws/docs/moved.txt"))
            .unwrap();
        // A delete that completed, then a new file of the same name, open at the kill
        // (local only: the journal has nothing of it yet).
        fs.unlink(ROOT_INO, OsStr::new("recreated.txt"))
            .await
            .unwrap();
        let (e, o) = fs
            .create(
                ROOT_INO,
                OsStr::new("recreated.txt"),
                0o644,
                libc::O_RDWR,
                Caller::default(),
            )
            .await
            .unwrap();
        fs.write(e.attr.ino, o.fh, 0, b"again").await.unwrap();
        fs.wait_fetches_idle().await;
    }
    let (fs, journal) = start(dir.path(), &remote);
    assert_eq!(
        names(&fs, ROOT_INO).await,
        ["docs", "kept.txt", "recreated.txt"]
    );
    let again = fs
        .lookup(ROOT_INO, OsStr::new("recreated.txt"))
        .await
        .unwrap();
    assert_eq!(again.attr.size, 5, "the new file, not the deleted one");
    let docs = fs.meta.by_path(&p("ws/docs")).unwrap().unwrap();
    assert_eq!(names(&fs, docs.ino).await, ["moved.txt"]);
    // The server still has the old names until the uploader runs: the tombstones hide them.
    fs.meta.mark_stale(ROOT_INO).unwrap();
    fs.opendir(ROOT_INO).await.unwrap();
    for gone in ["gone.txt", "moved.txt"] {
        assert!(matches!(
            fs.lookup(ROOT_INO, OsStr::new(gone)).await,
            Err(FsError::NotFound)
        ));
    }
    // Replayed once: a third start finds nothing left to apply. (One journal per process:
    // its database is locked while open.)
    drop((fs, journal));
    let (fs, journal) = start(dir.path(), &remote);
    assert_eq!(fs.replay_journaled_moves(&journal).unwrap(), 0);
}
