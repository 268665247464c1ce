//! Change events update the index and invalidate the kernel's caches.

use super::*;
use crate::client::{ChangeEvent, ChangeKind, FeedItem};

#[tokio::test]
async fn change_events_update_and_invalidate() {
    let r = MemoryRemote::new();
    r.add_file("ws/a.txt", b"one".to_vec());
    r.add_dir("ws/d");
    let h = Harness::new(r);
    let a = h.lookup_path("a.txt").await.unwrap().attr.ino;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let feed = h.fs.spawn_feed(rx);
    let lists = h.remote.lists();

    h.remote.add_file("ws/a.txt", b"two!!".to_vec());
    let target = h.remote.node("ws/a.txt");
    tx.send(FeedItem::Event(ChangeEvent {
        kind: ChangeKind::UpdateContent,
        source: None,
        target,
    }))
    .await
    .unwrap();
    wait_until("inval_inode(a)", || {
        h.inv.inodes.lock().unwrap().contains(&a)
    })
    .await;
    assert_eq!(h.fs.getattr(a).await.unwrap().attr.size, 5);

    h.remote.add_file("ws/new.txt", b"n".to_vec());
    let target = h.remote.node("ws/new.txt");
    tx.send(FeedItem::Event(ChangeEvent {
        kind: ChangeKind::Create,
        source: None,
        target,
    }))
    .await
    .unwrap();
    wait_until("inval_entry(new.txt)", || {
        h.inv.has_entry(ROOT_INO, "new.txt")
    })
    .await;
    assert_eq!(h.lookup_path("new.txt").await.unwrap().attr.size, 1);

    let source = h.remote.node("ws/a.txt");
    h.remote.move_node("ws/a.txt", "ws/d/moved.txt");
    let target = h.remote.node("ws/d/moved.txt");
    tx.send(FeedItem::Event(ChangeEvent {
        kind: ChangeKind::UpdatePath,
        source,
        target,
    }))
    .await
    .unwrap();
    wait_until("inval_entry(a.txt)", || h.inv.has_entry(ROOT_INO, "a.txt")).await;

    let source = h.remote.node("ws/new.txt");
    h.remote.remove("ws/new.txt");
    tx.send(FeedItem::Event(ChangeEvent {
        kind: ChangeKind::Delete,
        source,
        target: None,
    }))
    .await
    .unwrap();
    drop(tx);
    feed.await.unwrap();
    assert_eq!(
        h.remote.lists(),
        lists,
        "events were applied without listing"
    );
    assert_eq!(
        h.lookup_path("new.txt").await.unwrap_err(),
        FsError::NotFound
    );
    assert_eq!(h.lookup_path("a.txt").await.unwrap_err(), FsError::NotFound);
    // `d` was never listed, so its listing is fetched now and the moved file keeps its inode.
    assert_eq!(h.lookup_path("d/moved.txt").await.unwrap().attr.ino, a);
}

#[tokio::test]
async fn events_outside_the_mount_are_ignored() {
    let r = MemoryRemote::new();
    r.add_file("ws/a.txt", b"one".to_vec());
    r.add_file("other/b.txt", b"b".to_vec());
    let h = Harness::new(r);
    h.lookup_path("a.txt").await.unwrap();
    let target = h.remote.node("other/b.txt");
    h.fs.apply_feed_item(FeedItem::Event(ChangeEvent {
        kind: ChangeKind::Create,
        source: None,
        target,
    }))
    .await
    .unwrap();
    assert_eq!(h.lookup_path("b.txt").await.unwrap_err(), FsError::NotFound);
}
