//! Listings from an earlier session or from before a feed resync: served at once by opendir
//! and lookup while a background re-list refreshes them (stale-while-revalidate); lookups
//! still see names created since.

use super::testing::Failure;
use super::*;
use crate::meta::now_ms;

fn tree() -> MemoryRemote {
    let r = MemoryRemote::new();
    r.add_file("ws/docs/old.txt", b"old".to_vec());
    r.add_file("ws/docs/kept.txt", b"kept".to_vec());
    r
}

async fn names(h: &Harness, ino: Ino) -> FsResult<Vec<String>> {
    let fh = h.fs.opendir(ino).await?;
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let batch = h.fs.readdir(ino, fh, offset).await?;
        let Some(last) = batch.last() else { break };
        offset = last.next_offset;
        out.extend(
            batch
                .into_iter()
                .map(|e| e.name)
                .filter(|n| n != "." && n != ".."),
        );
    }
    h.fs.releasedir(ino, fh).await;
    Ok(out)
}

/// Lists `docs`, then restarts once the clock has moved past that listing (so it belongs to
/// the earlier session) with the server changed meanwhile.
async fn restarted_after_changes() -> (Harness, Ino) {
    let h = Harness::new(tree());
    let docs = h.lookup_path("docs").await.unwrap().attr.ino;
    assert_eq!(names(&h, docs).await.unwrap(), ["kept.txt", "old.txt"]);
    let listed = h.fs.meta.get(docs).unwrap().unwrap().listed_at.unwrap();
    while now_ms() <= listed {
        tokio::task::yield_now().await;
    }
    let h = h.restart().await;
    h.remote.remove("ws/docs/old.txt");
    h.remote.add_file("ws/docs/new.txt", b"new".to_vec());
    (h, docs)
}

#[tokio::test]
async fn an_earlier_listing_is_served_at_once_then_refreshed() {
    let (h, docs) = restarted_after_changes().await;
    // The server fails every listing: the folder still opens, from the index.
    h.remote.set_failure(Some(Failure::Server));
    assert_eq!(names(&h, docs).await.unwrap(), ["kept.txt", "old.txt"]);
    h.fs.wait_fetches_idle().await;
    h.remote.set_failure(None);
    // The background re-list brings the server's view, and tells the kernel what changed.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if names(&h, docs).await.unwrap() == ["kept.txt", "new.txt"] {
            break;
        }
        assert!(Instant::now() < deadline, "the listing was never refreshed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    wait_until("invalidations of the changed names", || {
        h.inv.has_entry(docs, "old.txt") && h.inv.has_entry(docs, "new.txt")
    })
    .await;
    // Refreshed in this session: trusted again, no further listing.
    let lists = h.remote.lists();
    assert_eq!(names(&h, docs).await.unwrap(), ["kept.txt", "new.txt"]);
    assert_eq!(h.remote.lists(), lists);
}

#[tokio::test]
async fn lookups_in_an_earlier_listing_see_names_created_since() {
    let (h, _) = restarted_after_changes().await;
    assert!(h.lookup_path("docs/new.txt").await.is_ok());
    assert_eq!(
        h.lookup_path("docs/old.txt").await.unwrap_err(),
        FsError::NotFound
    );
}

#[tokio::test]
async fn a_resync_does_not_make_an_earlier_listing_block() {
    let (h, docs) = restarted_after_changes().await;
    h.fs.apply_feed_item(crate::client::FeedItem::Resync)
        .await
        .unwrap();
    h.remote.set_failure(Some(Failure::Server));
    assert_eq!(names(&h, docs).await.unwrap(), ["kept.txt", "old.txt"]);
    h.remote.set_failure(None);
    h.fs.wait_fetches_idle().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while names(&h, docs).await.unwrap() != ["kept.txt", "new.txt"] {
        assert!(Instant::now() < deadline, "the listing was never refreshed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A listing of this session is served too after a resync, and refreshed behind it.
    h.remote.remove("ws/docs/kept.txt");
    h.fs.apply_feed_item(crate::client::FeedItem::Resync)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while names(&h, docs).await.unwrap() != ["new.txt"] {
        assert!(Instant::now() < deadline, "the listing was never refreshed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_lookup_in_an_earlier_listing_answers_at_once_then_sees_the_refresh() {
    let (h, docs) = restarted_after_changes().await;
    // The server fails every listing: known names still resolve, from the index.
    h.remote.set_failure(Some(Failure::Server));
    assert!(h.lookup_path("docs/old.txt").await.is_ok());
    h.fs.wait_fetches_idle().await;
    h.remote.set_failure(None);
    // The next access refreshes the folder; the removed name goes, and the kernel is told.
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.lookup_path("docs/old.txt").await.is_ok() {
        assert!(Instant::now() < deadline, "the listing was never refreshed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    wait_until("invalidation of the removed name", || {
        h.inv.has_entry(docs, "old.txt")
    })
    .await;
}

#[tokio::test]
async fn after_a_resync_lookups_answer_from_the_index_while_it_is_refreshed() {
    let h = Harness::new(tree());
    let docs = h.lookup_path("docs").await.unwrap().attr.ino;
    assert_eq!(names(&h, docs).await.unwrap(), ["kept.txt", "old.txt"]);
    h.fs.apply_feed_item(crate::client::FeedItem::Resync)
        .await
        .unwrap();
    h.remote.set_failure(Some(Failure::Server));
    // Neither a lookup nor a listing waits on (or fails with) the server after a resync.
    assert!(h.lookup_path("docs/kept.txt").await.is_ok());
    assert_eq!(names(&h, docs).await.unwrap(), ["kept.txt", "old.txt"]);
}
