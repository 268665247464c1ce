//! Reads: byte identity, read-ahead, shared fetches, corruption, uncached files, xattrs.

use super::*;

fn file_remote(len: usize) -> (MemoryRemote, Vec<u8>) {
    let r = MemoryRemote::new();
    let data = content(len, 7);
    r.add_file("ws/f.bin", data.clone());
    (r, data)
}

fn chunk_reads(h: &Harness, idx: u64) -> usize {
    h.remote
        .read_log()
        .iter()
        .filter(|(_, r)| r.start == idx * CHUNK)
        .count()
}

#[tokio::test]
async fn random_reads_are_byte_identical() {
    use rand::{Rng, SeedableRng};
    let (r, data) = file_remote(40 * CHUNK as usize + 123);
    let h = Harness::new(r);
    let ino = h.lookup_path("f.bin").await.unwrap().attr.ino;
    let fh = h.fs.open(ino, 0, Caller::default()).await.unwrap().fh;
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for _ in 0..300 {
        let off = rng.random_range(0..data.len() as u64 + 10);
        let len = rng.random_range(1..3 * CHUNK as u32);
        let got = h.fs.read(ino, fh, off, len).await.unwrap();
        let lo = (off as usize).min(data.len());
        let hi = (off as usize + len as usize).min(data.len());
        assert_eq!(&got[..], &data[lo..hi], "read at {off}+{len}");
    }
    h.fs.wait_fetches_idle().await;
    for idx in 0..41 {
        assert!(chunk_reads(&h, idx) <= 1, "chunk {idx} fetched twice");
    }
}

#[tokio::test]
async fn sequential_reads_grow_the_read_ahead() {
    let (r, data) = file_remote(64 * CHUNK as usize);
    let h = Harness::new(r);
    let ino = h.lookup_path("f.bin").await.unwrap().attr.ino;
    let fh = h.fs.open(ino, 0, Caller::default()).await.unwrap().fh;
    let step = 1024u32;
    for i in 0..(4 * CHUNK / u64::from(step)) {
        h.fs.read(ino, fh, i * u64::from(step), step).await.unwrap();
    }
    h.fs.wait_fetches_idle().await;
    // Four chunks read; the window has grown well past them.
    let furthest = h
        .remote
        .read_log()
        .iter()
        .map(|(_, r)| r.end)
        .max()
        .unwrap();
    assert!(furthest >= 12 * CHUNK, "read-ahead reached only {furthest}");
    let got = h.read_all(ino, 8192).await;
    assert!(got == data);
    h.fs.wait_fetches_idle().await;
    assert_eq!(h.remote.reads(), 64, "every chunk fetched exactly once");
}

#[tokio::test]
async fn random_reads_fetch_only_what_they_need() {
    let (r, data) = file_remote(64 * CHUNK as usize);
    let h = Harness::new(r);
    let ino = h.lookup_path("f.bin").await.unwrap().attr.ino;
    let fh = h.fs.open(ino, 0, Caller::default()).await.unwrap().fh;
    let off = 30 * CHUNK + 100;
    let got = h.fs.read(ino, fh, off, 100).await.unwrap();
    assert_eq!(&got[..], &data[off as usize..off as usize + 100]);
    h.fs.wait_fetches_idle().await;
    assert_eq!(h.remote.reads(), 2, "the chunk itself and the next one");
}

#[tokio::test]
async fn concurrent_readers_share_one_fetch() {
    let (r, data) = file_remote(16 * CHUNK as usize);
    let h = Harness::new(r);
    let ino = h.lookup_path("f.bin").await.unwrap().attr.ino;
    let key = h
        .remote
        .node("ws/f.bin")
        .unwrap()
        .version
        .unwrap()
        .cache_key();
    h.remote.set_reads_open(false);
    let mut readers = Vec::new();
    for _ in 0..3 {
        let fs = h.fs.clone();
        readers.push(tokio::spawn(async move {
            let fh = fs.open(ino, 0, Caller::default()).await.unwrap().fh;
            fs.read(ino, fh, 5 * CHUNK, 10).await.unwrap()
        }));
    }
    // The map and three readers hold the one fetch of chunk 5.
    wait_until("three readers on one fetch", || {
        h.fs.fetcher.sharers(&key, 5) >= 4
    })
    .await;
    h.remote.set_reads_open(true);
    for r in readers {
        assert_eq!(
            &r.await.unwrap()[..],
            &data[5 * CHUNK as usize..5 * CHUNK as usize + 10]
        );
    }
    h.fs.wait_fetches_idle().await;
    assert_eq!(chunk_reads(&h, 5), 1);
}

#[tokio::test]
async fn a_corrupted_cache_is_fetched_again() {
    let (r, data) = file_remote(8 * CHUNK as usize);
    let h = Harness::new(r);
    let ino = h.lookup_path("f.bin").await.unwrap().attr.ino;
    assert!(h.read_all(ino, 8192).await == data);
    let reads = h.remote.reads();
    let h = h.restart().await;
    // Flip bytes in the only data file of the cache.
    let object = find_data_file(&h.dir.path().join("cache")).expect("a cached data file");
    let mut bytes = std::fs::read(&object).unwrap();
    bytes[10] ^= 0xff;
    bytes[3 * CHUNK as usize + 1] ^= 0xff;
    std::fs::write(&object, bytes).unwrap();
    assert!(h.read_all(ino, 8192).await == data);
    h.fs.wait_fetches_idle().await;
    assert!(
        h.remote.reads() > reads,
        "the corrupt chunks came from the server again"
    );
}

fn find_data_file(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let mut best: Option<(u64, std::path::PathBuf)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            let p = e.path();
            let meta = e.metadata().ok()?;
            if meta.is_dir() {
                stack.push(p);
            } else if !p.to_string_lossy().contains("sqlite")
                && best.as_ref().is_none_or(|b| meta.len() > b.0)
            {
                best = Some((meta.len(), p));
            }
        }
    }
    best.map(|b| b.1)
}

#[tokio::test]
async fn files_being_uploaded_are_read_without_caching() {
    let (r, data) = file_remote(3 * CHUNK as usize);
    r.set_unversioned("ws/f.bin");
    let h = Harness::new(r);
    let ino = h.lookup_path("f.bin").await.unwrap().attr.ino;
    let reply = h.fs.open(ino, 0, Caller::default()).await.unwrap();
    assert!(reply.direct_io && reply.passthrough.is_none());
    let got = h.fs.read(ino, reply.fh, 100, 50).await.unwrap();
    assert_eq!(&got[..], &data[100..150]);
    h.fs.read(ino, reply.fh, 100, 50).await.unwrap();
    assert_eq!(h.remote.reads(), 2, "nothing was cached");
    assert_eq!(
        h.fs.getxattr(ino, OsStr::new("user.cells.state"))
            .await
            .unwrap(),
        b"online-only"
    );
}

#[tokio::test]
async fn xattrs_follow_the_cache_state() {
    let (r, data) = file_remote(4 * CHUNK as usize);
    let h = Harness::new(r);
    let ino = h.lookup_path("f.bin").await.unwrap().attr.ino;
    let state = || async {
        h.fs.getxattr(ino, OsStr::new("user.cells.state"))
            .await
            .unwrap()
    };
    assert_eq!(state().await, b"online-only");
    let fh = h.fs.open(ino, 0, Caller::default()).await.unwrap().fh;
    h.fs.read(ino, fh, 0, 10).await.unwrap();
    h.fs.wait_fetches_idle().await;
    assert_eq!(state().await, b"partial");
    assert!(h.read_all(ino, 8192).await == data);
    assert_eq!(state().await, b"cached");
    let hash =
        h.fs.getxattr(ino, OsStr::new("user.cells.hash"))
            .await
            .unwrap();
    assert_eq!(hash, crate::hash::cells_hash(&data).into_bytes());
    assert!(
        h.fs.getxattr(ino, OsStr::new("user.cells.uuid"))
            .await
            .unwrap()
            .starts_with(b"uuid-")
    );
    assert_eq!(
        h.fs.getxattr(ino, OsStr::new("user.other"))
            .await
            .unwrap_err(),
        FsError::NoAttr
    );
    let names = h.fs.listxattr(ino).await.unwrap();
    assert_eq!(
        names,
        ["user.cells.state", "user.cells.hash", "user.cells.uuid"]
    );
}

#[tokio::test]
async fn reopening_keeps_the_kernel_cache_until_the_version_changes() {
    let (r, data) = file_remote(2 * CHUNK as usize);
    let h = Harness::new(r);
    let ino = h.lookup_path("f.bin").await.unwrap().attr.ino;
    assert!(h.read_all(ino, 8192).await == data);
    let again = h.fs.open(ino, 0, Caller::default()).await.unwrap();
    assert!(again.keep_cache);
    let local = again
        .passthrough
        .clone()
        .expect("complete files are offered for passthrough");
    assert!(std::fs::read(local).unwrap() == data);
    assert_eq!(
        h.fs.open(ino, 1, Caller::default()).await.unwrap_err(),
        FsError::ReadOnly
    );
    // New content on the server, noticed when the description is re-checked at open.
    h.remote.add_file("ws/f.bin", b"new content".to_vec());
    h.fs.apply_feed_item(crate::client::FeedItem::Resync)
        .await
        .unwrap();
    let changed = h.fs.open(ino, 0, Caller::default()).await.unwrap();
    assert!(!changed.keep_cache && changed.passthrough.is_none());
    assert_eq!(
        &h.fs.read(ino, changed.fh, 0, 100).await.unwrap()[..],
        b"new content"
    );
    wait_until("inval_inode", || {
        h.inv.inodes.lock().unwrap().contains(&ino)
    })
    .await;
}

/// `read_now` through one reused buffer, as the adapter calls it; the bytes it answered.
fn read_now(
    h: &Harness,
    buf: &mut Vec<u8>,
    ino: Ino,
    fh: Fh,
    at: u64,
    size: u32,
) -> Option<Vec<u8>> {
    match h.fs.read_now(ino, fh, at, size, buf)?.unwrap() {
        ReadNow::InBuffer(n) => Some(buf[..n].to_vec()),
        ReadNow::Shared(bytes) => Some(bytes.to_vec()),
    }
}

#[tokio::test]
async fn chunks_just_fetched_are_answered_from_memory_until_read_through() {
    let (r, data) = file_remote(4 * CHUNK as usize);
    let h = Harness::new(r);
    let ino = h.lookup_path("f.bin").await.unwrap().attr.ino;
    let fh = h.fs.open(ino, 0, Caller::default()).await.unwrap().fh;
    let got = h.fs.read(ino, fh, 0, 100).await.unwrap();
    assert_eq!(&got[..], &data[..100]);
    h.fs.wait_fetches_idle().await;
    let held = || h.fs.fetcher.just_fetched().held_bytes();
    let before = held();
    assert!(before >= CHUNK as usize, "the fetched chunk is held");

    let mut buf = Vec::new();
    let half = (CHUNK / 2) as u32;
    let first = read_now(&h, &mut buf, ino, fh, 0, half).expect("in memory");
    assert_eq!(&first[..], &data[..CHUNK as usize / 2]);
    assert_eq!(held(), before, "kept until read through");
    let second = read_now(&h, &mut buf, ino, fh, CHUNK / 2, half).expect("in memory");
    assert_eq!(&second[..], &data[CHUNK as usize / 2..CHUNK as usize]);
    assert_eq!(held(), before - CHUNK as usize, "let go once read through");
    let again = read_now(&h, &mut buf, ino, fh, 10, 100).expect("from the cache");
    assert_eq!(&again[..], &data[10..110]);
    let across = read_now(&h, &mut buf, ino, fh, CHUNK - 10, 100);
    assert!(
        across.is_none_or(|b| b[..] == data[CHUNK as usize - 10..CHUNK as usize + 90]),
        "a read across chunks comes from the cache or not at once, never wrong"
    );
    h.fs.release(ino, fh).await;
    assert_eq!(held(), 0, "closing the file lets go of the rest");
}

#[tokio::test]
async fn reads_are_answered_at_once_only_from_checked_cached_bytes() {
    let (r, data) = file_remote(8 * CHUNK as usize);
    let h = Harness::new(r);
    let ino = h.lookup_path("f.bin").await.unwrap().attr.ino;
    let fh = h.fs.open(ino, 0, Caller::default()).await.unwrap().fh;
    // A reused buffer holds an earlier read's bytes: only the first `n` are the answer.
    let mut buf = vec![0xa5; 64];
    assert!(
        read_now(&h, &mut buf, ino, fh, 0, 100).is_none(),
        "nothing cached yet"
    );
    assert_eq!(h.remote.reads(), 0, "a miss fetches nothing by itself");
    assert!(
        read_now(&h, &mut buf, ino, 999_999, 0, 100).is_none(),
        "unknown handle"
    );

    let got = h.fs.read(ino, fh, 0, CHUNK as u32).await.unwrap();
    assert_eq!(&got[..], &data[..CHUNK as usize]);
    let at_once = read_now(&h, &mut buf, ino, fh, 10, 100).expect("cached");
    assert_eq!(&at_once[..], &data[10..110]);
    let whole_chunk = CHUNK as u32 - 1;
    let grown = read_now(&h, &mut buf, ino, fh, 1, whole_chunk).expect("cached");
    assert_eq!(
        &grown[..],
        &data[1..CHUNK as usize],
        "the buffer grows to the read"
    );
    assert!(
        read_now(&h, &mut buf, ino + 1, fh, 10, 100).is_none(),
        "wrong inode"
    );
    let past_end = read_now(&h, &mut buf, ino, fh, data.len() as u64, 10).unwrap();
    assert!(past_end.is_empty());
    let whole = h.read_all(ino, 8192).await;
    assert!(whole == data);
    let across = read_now(&h, &mut buf, ino, fh, CHUNK - 10, 100).expect("cached now");
    assert_eq!(&across[..], &data[CHUNK as usize - 10..CHUNK as usize + 90]);

    // After a restart no chunk has been checked in this process: the async way checks them,
    // and it alone sees (and drops) a corrupt one.
    h.fs.wait_fetches_idle().await;
    let h = h.restart().await;
    let object = find_data_file(&h.dir.path().join("cache")).expect("a cached data file");
    let mut bytes = std::fs::read(&object).unwrap();
    bytes[5] ^= 0xff;
    std::fs::write(&object, bytes).unwrap();
    let fh = h.fs.open(ino, 0, Caller::default()).await.unwrap().fh;
    assert!(
        read_now(&h, &mut buf, ino, fh, 0, 100).is_none(),
        "not checked yet"
    );
    let got = h.fs.read(ino, fh, 0, 100).await.unwrap();
    assert_eq!(&got[..], &data[..100], "the corrupt chunk came again");
    let at_once = read_now(&h, &mut buf, ino, fh, 0, 100).expect("checked now");
    assert_eq!(&at_once[..], &data[..100]);
}
