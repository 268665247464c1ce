//! The change feed against the test server: typed events for create, update, move and delete,
//! and a resync after the server drops the connection.

mod client_support;

use cells_mount::client::{ChangeEvent, ChangeKind, FeedItem};
use client_support::*;
use std::time::Duration;
use tokio::sync::mpsc::Receiver;

const WAIT: Duration = Duration::from_secs(15);

/// Next item of the feed, failing the test if none comes in time.
async fn next_item(feed: &mut Receiver<FeedItem>) -> FeedItem {
    tokio::time::timeout(WAIT, feed.recv())
        .await
        .expect("no feed item in time")
        .expect("feed closed")
}

/// Skips items until an event matching `pred` arrives.
async fn event_where(
    feed: &mut Receiver<FeedItem>,
    what: &str,
    pred: impl Fn(&ChangeEvent) -> bool,
) -> ChangeEvent {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let item = tokio::time::timeout(left, feed.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} event in time"))
            .expect("feed closed");
        if let FeedItem::Event(e) = item
            && pred(&e)
        {
            return e;
        }
    }
}

fn target_is(e: &ChangeEvent, path: &str) -> bool {
    e.target.as_ref().is_some_and(|n| n.path.as_str() == path)
}

fn source_is(e: &ChangeEvent, path: &str) -> bool {
    e.source.as_ref().is_some_and(|n| n.path.as_str() == path)
}

#[tokio::test]
async fn events_for_create_update_move_and_delete() {
    let env = start().await;
    let mut feed = env.client.subscribe();
    assert_eq!(next_item(&mut feed).await, FeedItem::Resync);
    let tmp = tempfile::tempdir().unwrap();

    let f = local_file(tmp.path(), "v1", b"first");
    env.client
        .upload_file(&p("personal-files/e.txt"), &f)
        .await
        .unwrap();
    let e = event_where(&mut feed, "create", |e| {
        target_is(e, "personal-files/e.txt")
    })
    .await;
    assert_eq!(e.kind, ChangeKind::Create);

    let f = local_file(tmp.path(), "v2", b"second version");
    env.client
        .upload_file(&p("personal-files/e.txt"), &f)
        .await
        .unwrap();
    let e = event_where(&mut feed, "update", |e| {
        target_is(e, "personal-files/e.txt")
    })
    .await;
    assert_eq!(e.kind, ChangeKind::UpdateContent);
    assert_eq!(e.target.unwrap().size, 14);

    env.client
        .rename(&p("personal-files/e.txt"), &p("personal-files/moved.txt"))
        .await
        .unwrap();
    let e = event_where(&mut feed, "move", |e| source_is(e, "personal-files/e.txt")).await;
    assert_eq!(e.kind, ChangeKind::UpdatePath);
    assert_eq!(e.target.unwrap().path.as_str(), "personal-files/moved.txt");

    // A delete goes to the recycle bin, which the client hides: the move into it arrives as
    // a delete, and nothing that happens inside the bin reaches the caller.
    env.client
        .delete(&p("personal-files/moved.txt"))
        .await
        .unwrap();
    let e = event_where(&mut feed, "delete", |e| {
        source_is(e, "personal-files/moved.txt")
    })
    .await;
    assert_eq!(e.kind, ChangeKind::Delete);
    assert!(e.target.is_none(), "the recycle bin leaked: {e:?}");
    env.client
        .delete(&p("personal-files/recycle_bin/moved.txt"))
        .await
        .unwrap();
    // Events arrive in order: everything before the next create must be about the bin,
    // which is to say nothing at all.
    let marker = local_file(tmp.path(), "marker", b"after the bin");
    env.client
        .upload_file(&p("personal-files/marker.txt"), &marker)
        .await
        .unwrap();
    loop {
        let item = tokio::time::timeout(WAIT, feed.recv())
            .await
            .expect("no marker event in time")
            .expect("feed closed");
        let FeedItem::Event(e) = item else { continue };
        let in_bin = |n: &Option<cells_mount::client::Node>| {
            n.as_ref()
                .is_some_and(|n| n.path.as_str().contains("recycle_bin"))
        };
        assert!(!in_bin(&e.source) && !in_bin(&e.target), "{e:?}");
        if target_is(&e, "personal-files/marker.txt") {
            break;
        }
    }
}

#[tokio::test]
async fn a_dropped_connection_is_followed_by_a_resync() {
    let env = start().await;
    let mut feed = env.client.subscribe();
    assert_eq!(next_item(&mut feed).await, FeedItem::Resync);
    env.server.drop_event_connections();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let item = tokio::time::timeout(left, feed.recv())
            .await
            .expect("no resync after the drop")
            .expect("feed closed");
        if item == FeedItem::Resync {
            break;
        }
    }
    // The new connection delivers events again.
    let tmp = tempfile::tempdir().unwrap();
    let f = local_file(tmp.path(), "x", b"after");
    env.client
        .upload_file(&p("personal-files/after.txt"), &f)
        .await
        .unwrap();
    event_where(&mut feed, "create after reconnect", |e| {
        target_is(e, "personal-files/after.txt")
    })
    .await;
}

#[tokio::test]
async fn the_feed_stops_when_the_receiver_is_dropped() {
    let env = start().await;
    let mut feed = env.client.subscribe();
    assert_eq!(next_item(&mut feed).await, FeedItem::Resync);
    drop(feed);
    // With the feed gone, the server can stop promptly: no connection is kept open by us.
    tokio::time::timeout(Duration::from_secs(10), env.server.stop())
        .await
        .expect("server stopped");
}

#[tokio::test]
async fn the_feed_outlives_short_lived_tokens() {
    use cells_mount::client::{CellsClient, PasswordTokenSource, Secret, TokenSource};
    use std::sync::Arc;
    let env = start_with(|cfg, _| cfg.token_ttl = Some(Duration::from_secs(2))).await;
    let url = env.server.url();
    let tokens = Arc::new(
        PasswordTokenSource::connect(&url, "alice", Secret::new("alice-password"))
            .await
            .unwrap(),
    );
    let first = tokens.current();
    let client =
        CellsClient::with_token_source(fast_config(&url, "unused"), tokens.clone()).unwrap();
    let mut feed = client.subscribe();
    assert_eq!(next_item(&mut feed).await, FeedItem::Resync);
    // The feed re-subscribes with a fresh token before the first one expires.
    wait_for(WAIT, "a token refresh", || async {
        (tokens.current() != first).then_some(())
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let f = local_file(tmp.path(), "x", b"late");
    env.client
        .upload_file(&p("personal-files/late.txt"), &f)
        .await
        .unwrap();
    event_where(&mut feed, "create after the first token expired", |e| {
        target_is(e, "personal-files/late.txt")
    })
    .await;
}
