//! With the server gone, journaled operations wait (no error state) and go up once it is back
//! on the same address; the journal, not the server, is the truth for what is pending.

mod client_support;
mod sync_support;

use cells_mount::sync::OpState;
use cells_testserver::{ServerConfig, TestServer};
use client_support::*;
use std::sync::Arc;
use std::time::Duration;
use sync_support::*;

#[tokio::test]
async fn operations_wait_while_offline_and_go_up_when_the_server_returns() {
    let env = start().await;
    let Env {
        server,
        dir,
        client,
    } = env;
    let addr = server.addr();
    server.stop().await;
    let state = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let journal = open_journal(state.path());
    let hooks = Arc::new(Recorder::default());
    let uploader = start_uploader(&client, &journal, &hooks);
    journal.enqueue_mkdir(&p("personal-files/offline")).unwrap();
    let f = local_file(src.path(), "a", b"written offline");
    journal
        .enqueue_upload(&p("personal-files/offline/a.txt"), &f, None)
        .unwrap();
    wait_for(
        Duration::from_secs(30),
        "a failed attempt while offline",
        || {
            let j = journal.clone();
            async move { j.pending().iter().any(|o| o.attempts >= 2).then_some(()) }
        },
    )
    .await;
    let stats = uploader.stats();
    assert!(
        stats.errors.is_empty(),
        "offline is not an error: {stats:?}"
    );
    assert!(journal.pending().iter().all(|o| o.state == OpState::Queued));
    assert_eq!(stats.pending_ops, 2);

    let mut cfg = ServerConfig::new(dir.path());
    cfg.listen = addr;
    let server = TestServer::start(cfg).await.unwrap();
    uploader.online();
    let stats = drain(&uploader).await;
    assert!(stats.errors.is_empty(), "{stats:?}");
    let file = dir.path().join("personal-files/alice/offline/a.txt");
    assert_eq!(std::fs::read(file).unwrap(), b"written offline");
    server.stop().await;
}
