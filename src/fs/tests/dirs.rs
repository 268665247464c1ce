//! Lookups, listings, readdir offsets, inode stability, hostile and junk names.

use super::*;
use crate::client::{Node, NodeKind};
use crate::names::RemotePath;

fn tree() -> MemoryRemote {
    let r = MemoryRemote::new();
    r.add_file("ws/a.txt", b"hello".to_vec());
    r.add_file("ws/docs/b.txt", b"world!".to_vec());
    r
}

async fn names(h: &Harness, ino: Ino) -> Vec<String> {
    let fh = h.fs.opendir(ino).await.unwrap();
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let batch = h.fs.readdir(ino, fh, offset).await.unwrap();
        let Some(last) = batch.last() else { break };
        offset = last.next_offset;
        out.extend(batch.into_iter().map(|e| e.name));
    }
    h.fs.releasedir(ino, fh).await;
    out
}

/// The answers adapters take on their own thread agree with the full ones, and are given only
/// when memory holds everything they need.
#[tokio::test]
async fn lookups_answered_from_memory_agree_with_full_ones() {
    let h = Harness::new(tree());
    assert!(
        h.fs.lookup_now(ROOT_INO, OsStr::new("a.txt")).is_none(),
        "never listed"
    );
    h.lookup_path("a.txt").await.unwrap();
    // The listing's commit dropped the folder's cached record; this lookup reads it again.
    let a = h.lookup_path("a.txt").await.unwrap();
    let now =
        h.fs.lookup_now(ROOT_INO, OsStr::new("a.txt"))
            .unwrap()
            .unwrap();
    assert_eq!(now.attr, a.attr);
    assert_eq!(h.fs.getattr_now(a.attr.ino).unwrap().unwrap().attr, a.attr);
    assert_eq!(
        h.fs.lookup_now(ROOT_INO, OsStr::new("../x"))
            .unwrap()
            .unwrap_err(),
        FsError::NotFound
    );
    assert_eq!(
        h.fs.lookup_now(ROOT_INO, OsStr::new(&"n".repeat(300)))
            .unwrap()
            .unwrap_err(),
        FsError::NameTooLong
    );
    assert_eq!(
        h.fs.lookup_now(ROOT_INO, OsStr::new("missing"))
            .unwrap()
            .unwrap_err(),
        FsError::NotFound
    );
    // After a feed resync the listing and the record must be checked first.
    h.fs.meta.mark_all_stale();
    assert!(h.fs.lookup_now(ROOT_INO, OsStr::new("a.txt")).is_none());
    assert!(h.fs.getattr_now(a.attr.ino).is_none());
}

#[tokio::test]
async fn lookup_getattr_and_readdir() {
    let h = Harness::new(tree());
    let a = h.lookup_path("a.txt").await.unwrap();
    assert_eq!(a.attr.size, 5);
    assert_eq!(a.attr.kind, FileKind::File);
    assert_eq!((a.attr.uid, a.attr.perm), (1000, 0o644));
    assert_eq!(h.fs.getattr(a.attr.ino).await.unwrap().attr, a.attr);
    let docs = h.lookup_path("docs").await.unwrap();
    assert_eq!(docs.attr.kind, FileKind::Dir);
    // The folder was listed just now: a miss is answered without asking the server.
    let lists = h.remote.lists();
    assert_eq!(
        h.fs.lookup(ROOT_INO, OsStr::new("nope")).await.unwrap_err(),
        FsError::NotFound
    );
    assert_eq!(h.remote.lists(), lists);
    assert_eq!(names(&h, ROOT_INO).await, [".", "..", "a.txt", "docs"]);
    assert_eq!(names(&h, docs.attr.ino).await, [".", "..", "b.txt"]);
    assert_eq!(
        h.fs.lookup(a.attr.ino, OsStr::new("x")).await.unwrap_err(),
        FsError::NotDir
    );
}

#[tokio::test]
async fn readdir_pages_with_stable_offsets() {
    let r = MemoryRemote::new();
    for i in 0..2500 {
        r.add_file(&format!("ws/big/f{i:05}"), vec![1u8]);
    }
    let h = Harness::new(r);
    let big = h.lookup_path("big").await.unwrap().attr.ino;
    let before = h.remote.lists();
    let fh = h.fs.opendir(big).await.unwrap();
    assert!(
        h.remote.lists() - before >= 3,
        "2500 entries take three pages of 1000"
    );
    let first = h.fs.readdir(big, fh, 0).await.unwrap();
    let resume = first[100].next_offset;
    // The server loses files and the folder is re-listed while the handle is open.
    for i in 0..50 {
        h.remote.remove(&format!("ws/big/f{i:05}"));
    }
    h.fs.apply_feed_item(crate::client::FeedItem::Resync)
        .await
        .unwrap();
    // The resync's refresh runs behind the first listing after it (served from the index).
    let deadline = Instant::now() + Duration::from_secs(10);
    while names(&h, big).await.len() != 2 + 2450 {
        assert!(Instant::now() < deadline, "the folder was never re-listed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The old handle continues where it was: no duplicates, nothing re-ordered.
    let mut seen: Vec<String> = first[..=100].iter().map(|e| e.name.clone()).collect();
    let mut offset = resume;
    loop {
        let batch = h.fs.readdir(big, fh, offset).await.unwrap();
        let Some(last) = batch.last() else { break };
        offset = last.next_offset;
        seen.extend(batch.into_iter().map(|e| e.name));
    }
    let mut sorted = seen.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len());
    assert_eq!(seen.last().unwrap(), "f02499");
    h.fs.releasedir(big, fh).await;
    assert_eq!(
        h.fs.readdir(big, fh, 0).await.unwrap_err(),
        FsError::BadHandle
    );
}

/// Every entry of an open folder handle, call after call, as the adapter reads them.
async fn whole_listing(h: &Harness, dir: Ino, fh: Fh, at_once: bool) -> Vec<(String, Ino, u64)> {
    let (mut out, mut offset) = (Vec::new(), 0);
    loop {
        let batch = match at_once {
            true => {
                h.fs.readdir_now(dir, fh, offset)
                    .expect("answered at once")
                    .unwrap()
            }
            false => h.fs.readdir(dir, fh, offset).await.unwrap(),
        };
        let Some(last) = batch.last() else { break };
        offset = last.next_offset;
        out.extend(batch.into_iter().map(|e| (e.name, e.attr.ino, e.attr.size)));
    }
    out
}

#[tokio::test]
async fn a_warm_folder_is_listed_at_once_with_the_same_entries() {
    let r = MemoryRemote::new();
    for i in 0..700 {
        r.add_file(&format!("ws/big/f{i:04}"), vec![1u8; i % 7]);
    }
    let h = Harness::new(r);
    let big = h.lookup_path("big").await.unwrap().attr.ino;
    let fh = h.fs.opendir(big).await.unwrap();
    let slow = whole_listing(&h, big, fh, false).await;
    assert_eq!(slow.len(), 2 + 700);
    let fh2 = h.fs.opendir(big).await.unwrap();
    assert_eq!(whole_listing(&h, big, fh2, true).await, slow);
    h.fs.releasedir(big, fh2).await;
    assert_eq!(
        h.fs.readdir_now(big, fh2, 0).map(|r| r.unwrap_err()),
        Some(FsError::BadHandle)
    );

    // After a restart only the index has the records: opendir reads them in one scan, and
    // both ways list the same entries.
    let h = h.restart().await;
    let fh = h.fs.opendir(big).await.unwrap();
    assert_eq!(whole_listing(&h, big, fh, false).await, slow);
    assert_eq!(whole_listing(&h, big, fh, true).await, slow);
}

#[tokio::test]
async fn inodes_are_stable_across_restarts_and_renames() {
    let h = Harness::new(tree());
    let b = h.lookup_path("docs/b.txt").await.unwrap().attr.ino;
    let docs = h.lookup_path("docs").await.unwrap().attr.ino;
    let h = h.restart().await;
    assert_eq!(h.lookup_path("docs/b.txt").await.unwrap().attr.ino, b);
    h.remote.move_node("ws/docs", "ws/papers");
    h.fs.apply_feed_item(crate::client::FeedItem::Resync)
        .await
        .unwrap();
    assert_eq!(h.lookup_path("papers").await.unwrap().attr.ino, docs);
    assert_eq!(h.lookup_path("papers/b.txt").await.unwrap().attr.ino, b);
    assert_eq!(h.lookup_path("docs").await.unwrap_err(), FsError::NotFound);
}

#[tokio::test]
async fn hostile_entries_from_the_server_never_appear() {
    let r = tree();
    r.add_file("ws/.DS_Store", vec![0u8; 3]);
    let outside = Node {
        uuid: Some("evil".into()),
        path: RemotePath::parse("ws/docs/escaped").unwrap(),
        kind: NodeKind::File,
        size: 1,
        mtime: 0,
        version: None,
        storage_etag: None,
        read_only: false,
        workspace: None,
    };
    r.inject_listing_node("ws", outside.clone());
    let mut itself = outside;
    itself.path = RemotePath::parse("ws").unwrap();
    r.inject_listing_node("ws", itself);
    let h = Harness::new(r);
    assert_eq!(names(&h, ROOT_INO).await, [".", "..", "a.txt", "docs"]);
    assert_eq!(
        h.lookup_path("escaped").await.unwrap_err(),
        FsError::NotFound
    );
    for bad in ["..", ".", "a/b", "x\0y"] {
        assert_eq!(
            h.fs.lookup(ROOT_INO, OsStr::new(bad)).await.unwrap_err(),
            FsError::NotFound
        );
    }
    let long = "x".repeat(300);
    assert_eq!(
        h.fs.lookup(ROOT_INO, OsStr::new(&long)).await.unwrap_err(),
        FsError::NameTooLong
    );
}

#[tokio::test]
async fn desktop_junk_never_reaches_the_server() {
    let h = Harness::new(tree());
    for junk in [
        ".DS_Store",
        "._a.txt",
        "Thumbs.db",
        "desktop.ini",
        ".Trash-1000",
        "autorun.inf",
    ] {
        assert_eq!(
            h.fs.lookup(ROOT_INO, OsStr::new(junk)).await.unwrap_err(),
            FsError::NotFound
        );
    }
    assert_eq!(
        h.remote.lists()
            + h.remote
                .counts
                .stat
                .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn stale_folders_are_listed_again_on_access() {
    let mut cfg = config();
    cfg.dir_ttl = Duration::ZERO;
    let h = Harness::with_config(tree(), cfg);
    assert_eq!(
        h.lookup_path("new.txt").await.unwrap_err(),
        FsError::NotFound
    );
    h.remote.add_file("ws/new.txt", b"n".to_vec());
    assert_eq!(h.lookup_path("new.txt").await.unwrap().attr.size, 1);
    // The negative entry the kernel may hold for it is invalidated.
    wait_until("inval_entry for new.txt", || {
        h.inv.has_entry(ROOT_INO, "new.txt")
    })
    .await;
}

#[tokio::test]
async fn statfs_reports_the_cache() {
    let h = Harness::new(tree());
    let s = h.fs.statfs().await.unwrap();
    assert_eq!(s.bsize, 4096);
    assert_eq!(s.blocks, (1u64 << 30) / 4096);
    assert!(s.bfree <= s.blocks && s.namelen == 255);
}
