//! Offline behaviour: listings from the index, cached reads, fast failure, recovery.

use super::testing::Failure;
use super::*;

#[tokio::test]
async fn offline_serves_the_cache_and_fails_fast_otherwise() {
    let r = MemoryRemote::new();
    let cached = content(3 * CHUNK as usize, 1);
    let uncached = content(3 * CHUNK as usize, 2);
    r.add_file("ws/cached.bin", cached.clone());
    r.add_file("ws/uncached.bin", uncached.clone());
    let h = Harness::new(r);
    let c = h.lookup_path("cached.bin").await.unwrap().attr.ino;
    let u = h.lookup_path("uncached.bin").await.unwrap().attr.ino;
    assert!(h.read_all(c, 8192).await == cached);

    h.remote.set_failure(Some(Failure::Offline));
    h.fs.apply_feed_item(crate::client::FeedItem::Resync)
        .await
        .unwrap();
    // The index answers at once; the background re-list fails and switches offline.
    assert_eq!(h.lookup_path("uncached.bin").await.unwrap().attr.ino, u);
    wait_until("the failed re-list to switch offline", || h.fs.is_offline()).await;
    let fh = h.fs.opendir(ROOT_INO).await.unwrap();
    assert_eq!(h.fs.readdir(ROOT_INO, fh, 0).await.unwrap().len(), 4);
    assert!(h.read_all(c, 8192).await == cached);
    let reads = h.remote.reads();
    let started = Instant::now();
    let fh = h.fs.open(u, 0, Caller::default()).await.unwrap().fh;
    assert_eq!(
        h.fs.read(u, fh, 0, 100).await.unwrap_err(),
        FsError::Offline
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(h.remote.reads(), reads, "no network attempt while offline");

    h.remote.set_failure(None);
    wait_until("the probe to bring us back", || !h.fs.is_offline()).await;
    assert_eq!(
        &h.fs.read(u, fh, 0, 100).await.unwrap()[..],
        &uncached[..100]
    );
}

#[tokio::test]
async fn a_folder_never_listed_is_offline_not_empty() {
    let r = MemoryRemote::new();
    r.add_file("ws/d/x", b"x".to_vec());
    let h = Harness::new(r);
    let d = h.lookup_path("d").await.unwrap().attr.ino;
    h.remote.set_failure(Some(Failure::Offline));
    assert_eq!(
        h.fs.lookup(d, OsStr::new("x")).await.unwrap_err(),
        FsError::Offline
    );
    assert_eq!(h.fs.opendir(d).await.unwrap_err(), FsError::Offline);
}

#[tokio::test]
async fn server_errors_are_reported_without_going_offline() {
    let r = MemoryRemote::new();
    r.add_file("ws/d/x", b"x".to_vec());
    let h = Harness::new(r);
    let d = h.lookup_path("d").await.unwrap().attr.ino;
    h.remote.set_failure(Some(Failure::Server));
    assert!(matches!(
        h.fs.lookup(d, OsStr::new("x")).await.unwrap_err(),
        FsError::Io(_)
    ));
    assert!(!h.fs.is_offline());
}

/// After a long outage the probe waits long between tries; a read refused meanwhile makes
/// it try again at once, so the server being back is noticed when someone needs it.
#[tokio::test]
async fn a_refused_read_makes_the_probe_try_at_once() {
    let r = MemoryRemote::new();
    r.add_file("ws/f", content(CHUNK as usize, 3));
    let mut cfg = config();
    cfg.offline_probe_min = Duration::from_millis(20);
    cfg.offline_probe_max = Duration::from_secs(3600);
    let h = Harness::with_config(r, cfg);
    let f = h.lookup_path("f").await.unwrap().attr.ino;
    h.remote.set_failure(Some(Failure::Offline));
    let fh = h.fs.open(f, 0, Caller::default()).await.unwrap().fh;
    assert_eq!(h.fs.read(f, fh, 0, 10).await.unwrap_err(), FsError::Offline);
    // Six failed probes: the next one is 20 ms × 2⁶ ≈ 1.3 s away, then 2.6 s, 5 s...
    let lists = h.remote.lists();
    wait_until("six probes", || h.remote.lists() >= lists + 6).await;
    h.remote.set_failure(None);
    let started = Instant::now();
    assert_eq!(h.fs.read(f, fh, 0, 10).await.unwrap_err(), FsError::Offline);
    wait_until("the nudged probe to bring us back", || !h.fs.is_offline()).await;
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "back after {:?}",
        started.elapsed()
    );
    assert_eq!(h.fs.read(f, fh, 0, 10).await.unwrap().len(), 10);
}
