//! The client's tree calls (stat, list, mkdir, delete, move, copy, login) against the test
//! server, including pagination, hostile names and error mapping.

mod client_support;

use cells_mount::client::{
    CellsClient, ClientError, NodeKind, PasswordTokenSource, Secret, TokenSource, login,
};
use client_support::*;
use futures::TryStreamExt;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn root_lists_workspaces_and_stat_describes_them() {
    let env = start().await;
    let page = env.client.list_page(&p(""), 0, 100).await.unwrap();
    let names: Vec<_> = page.nodes.iter().map(|n| n.name().to_owned()).collect();
    assert!(names.contains(&"personal-files".to_owned()), "{names:?}");
    assert!(names.contains(&"common-files".to_owned()), "{names:?}");
    assert!(page.nodes.iter().all(|n| n.is_dir()));
    let ws = env.client.stat(&p("personal-files")).await.unwrap();
    assert_eq!(ws.kind, NodeKind::Folder);
}

#[tokio::test]
async fn mkdir_upload_stat_and_list() {
    let env = start().await;
    env.client.mkdir(&p("personal-files/a/b")).await.unwrap();
    let b = env.client.stat(&p("personal-files/a/b")).await.unwrap();
    assert!(b.is_dir());
    let tmp = tempfile::tempdir().unwrap();
    let f = local_file(tmp.path(), "x", b"hello");
    let out = env
        .client
        .upload_file(&p("personal-files/a/b/hello.txt"), &f)
        .await
        .unwrap();
    assert_eq!(out.size, 5);
    assert_eq!(
        out.local_cells_hash,
        cells_mount::hash::cells_hash(b"hello")
    );
    let node = env
        .client
        .stat(&p("personal-files/a/b/hello.txt"))
        .await
        .unwrap();
    assert_eq!((node.kind, node.size), (NodeKind::File, 5));
    assert_eq!(node.version.unwrap().value, out.local_cells_hash);
    let page = env
        .client
        .list_page(&p("personal-files/a/b"), 0, 10)
        .await
        .unwrap();
    assert_eq!(page.nodes.len(), 1);
    assert_eq!(page.nodes[0].name(), "hello.txt");
    assert_eq!(page.next_offset, None);
}

#[tokio::test]
async fn pagination_over_2500_entries() {
    let env = start_with(|_, dir| {
        let many = dir.join("personal-files/alice/many");
        std::fs::create_dir_all(&many).unwrap();
        for i in 0..2500 {
            std::fs::write(many.join(format!("f{i:05}")), i.to_string()).unwrap();
        }
    })
    .await;
    let pages: Vec<_> = env
        .client
        .list_all(&p("personal-files/many"), 300)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(pages.len(), 9, "2500 entries in pages of 300");
    let mut names: Vec<String> = pages
        .iter()
        .flat_map(|pg| pg.nodes.iter().map(|n| n.name().to_owned()))
        .collect();
    assert_eq!(names.len(), 2500);
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 2500, "no entry twice");
    assert_eq!(pages[0].total, Some(2500));
    let last = env
        .client
        .list_page(&p("personal-files/many"), 2400, 500)
        .await
        .unwrap();
    assert_eq!((last.nodes.len(), last.next_offset), (100, None));
}

#[tokio::test]
async fn rename_copy_and_delete_wait_for_their_jobs() {
    let env = start().await;
    let tmp = tempfile::tempdir().unwrap();
    let f = local_file(tmp.path(), "x", b"content");
    env.client
        .upload_file(&p("personal-files/one.txt"), &f)
        .await
        .unwrap();

    env.client
        .rename(&p("personal-files/one.txt"), &p("personal-files/two.txt"))
        .await
        .unwrap();
    assert!(matches!(
        env.client.stat(&p("personal-files/one.txt")).await,
        Err(ClientError::NotFound(_))
    ));
    env.client.stat(&p("personal-files/two.txt")).await.unwrap();

    env.client
        .copy(&p("personal-files/two.txt"), &p("common-files/three.txt"))
        .await
        .unwrap();
    let copy = env.client.stat(&p("common-files/three.txt")).await.unwrap();
    assert_eq!(copy.size, 7);
    env.client.stat(&p("personal-files/two.txt")).await.unwrap();

    env.client
        .delete(&p("personal-files/two.txt"))
        .await
        .unwrap();
    assert!(matches!(
        env.client.stat(&p("personal-files/two.txt")).await,
        Err(ClientError::NotFound(_))
    ));
    // A move onto an existing node fails in the job; into itself is refused before asking.
    env.client
        .upload_file(&p("common-files/four.txt"), &f)
        .await
        .unwrap();
    let err = env
        .client
        .rename(&p("common-files/three.txt"), &p("common-files/four.txt"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::JobFailed(_)), "{err}");
    let err = env
        .client
        .rename(&p("common-files/three.txt"), &p("common-files/three.txt/x"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Conflict(_)), "{err}");
}

#[tokio::test]
async fn server_errors_are_classified() {
    let env = start().await;
    let err = env
        .client
        .stat(&p("personal-files/missing"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::NotFound(_)), "{err}");

    let bad = env.client_with_token("wrong-token-123");
    let err = bad.stat(&p("personal-files")).await.unwrap_err();
    assert!(matches!(err, ClientError::Unauthorized(_)), "{err}");
    assert!(!err.to_string().contains("wrong-token-123"));

    // Deleting a file creates the recycle bin, which itself may not be deleted.
    let tmp = tempfile::tempdir().unwrap();
    let f = local_file(tmp.path(), "x", &[7u8; 100]);
    env.client
        .upload_file(&p("personal-files/gone.txt"), &f)
        .await
        .unwrap();
    env.client
        .delete(&p("personal-files/gone.txt"))
        .await
        .unwrap();
    // The server refuses inside the delete job, so the refusal comes back as a failed job.
    let err = env
        .client
        .delete(&p("personal-files/recycle_bin"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::JobFailed(_)), "{err}");

    env.client
        .upload_file(&p("personal-files/locked.txt"), &f)
        .await
        .unwrap();
    env.server.lock("personal-files/locked.txt");
    let err = env
        .client
        .delete(&p("personal-files/locked.txt"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Locked(_)), "{err}");
    let err = env
        .client
        .upload_file(&p("personal-files/locked.txt"), &f)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Locked(_)), "{err}");

    env.server.set_quota("alice", Some(150));
    let err = env
        .client
        .upload_file(&p("personal-files/big.bin"), &f)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Quota(_)), "{err}");
    env.server.set_quota("alice", None);

    env.server.set_faults(cells_testserver::Faults {
        error_rate: 1.0,
        ..Default::default()
    });
    let err = env.client.stat(&p("personal-files")).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Server { status: 500, .. }),
        "{err}"
    );

    env.server.set_faults(cells_testserver::Faults {
        latency_ms: 3_000,
        ..Default::default()
    });
    let mut cfg = fast_config(&env.server.url(), TOKEN);
    cfg.timeouts.request = Duration::from_millis(300);
    cfg.retry.max_attempts = 1;
    let impatient = CellsClient::new(cfg).unwrap();
    let err = impatient.stat(&p("personal-files")).await.unwrap_err();
    assert!(matches!(err, ClientError::Offline(_)), "{err}");
}

#[tokio::test]
async fn transient_resets_are_retried_for_idempotent_calls() {
    let env = start().await;
    env.server.set_faults(cells_testserver::Faults {
        reset_rate: 0.3,
        ..Default::default()
    });
    let mut cfg = fast_config(&env.server.url(), TOKEN);
    cfg.retry.max_attempts = 12;
    let client = CellsClient::new(cfg).unwrap();
    for _ in 0..10 {
        client.list_page(&p(""), 0, 100).await.unwrap();
    }
}

#[tokio::test]
async fn hostile_names_from_the_server_are_refused() {
    let env = start().await;
    env.client.mkdir(&p("personal-files/d")).await.unwrap();
    for raw in [
        json!({"Path": "personal-files/d/..", "Type": "COLLECTION"}),
        json!({"Path": "personal-files/d/../../etc", "Type": "COLLECTION"}),
        json!({"Path": "personal-files/d/a\u{0}b", "Type": "LEAF"}),
        json!({"Path": "personal-files/elsewhere", "Type": "LEAF"}),
        json!({"Path": format!("personal-files/d/{}", "n".repeat(300)), "Type": "LEAF"}),
        json!({"Path": "personal-files/d/fine.txt", "Type": "LEAF", "Size": "3"}),
    ] {
        env.server.inject_raw_child("personal-files/d", raw);
    }
    let page = env
        .client
        .list_page(&p("personal-files/d"), 0, 100)
        .await
        .unwrap();
    let names: Vec<_> = page.nodes.iter().map(|n| n.name().to_owned()).collect();
    assert_eq!(names, ["fine.txt"]);
    assert_eq!(page.refused.len(), 5, "{:?}", page.refused);
}

#[tokio::test]
async fn login_gives_a_working_jwt_and_refreshes_after_expiry() {
    let env = start_with(|cfg, _| cfg.token_ttl = Some(Duration::from_secs(1))).await;
    let url = env.server.url();
    let err = login(&url, "alice", &Secret::new("nope"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Unauthorized(_)), "{err}");

    let session = login(&url, "alice", &Secret::new("alice-password"))
        .await
        .unwrap();
    assert!(session.expires_at.is_some());

    let tokens = Arc::new(
        PasswordTokenSource::connect(&url, "alice", Secret::new("alice-password"))
            .await
            .unwrap(),
    );
    let first = tokens.current();
    let fixed = CellsClient::new(fast_config(&url, first.expose())).unwrap();
    fixed.stat(&p("personal-files")).await.unwrap();
    let refreshing =
        CellsClient::with_token_source(fast_config(&url, "unused"), tokens.clone()).unwrap();
    // Wait until the fixed JWT has expired on the server...
    wait_for(Duration::from_secs(10), "the JWT to expire", || async {
        matches!(
            fixed.stat(&p("personal-files")).await,
            Err(ClientError::Unauthorized(_))
        )
        .then_some(())
    })
    .await;
    // ...then the refreshing client logs in again on the 401 and carries on.
    refreshing.stat(&p("personal-files")).await.unwrap();
    assert_ne!(tokens.current(), first);
}

/// A one-reply HTTP server: answers every request with `status` and `body`.
async fn stub_server(status: &'static str, body: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                // Read the request head (and any small body) before answering.
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(reply.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn malformed_replies_are_protocol_errors() {
    let url = stub_server("200 OK", r#"{"Node": {"Path": "#).await;
    let client = CellsClient::new(fast_config(&url, TOKEN)).unwrap();
    let err = client.stat(&p("personal-files/a")).await.unwrap_err();
    assert!(matches!(err, ClientError::Protocol(_)), "{err}");
    let err = client
        .list_page(&p("personal-files"), 0, 10)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Protocol(_)), "{err}");

    let url = stub_server(
        "200 OK",
        r#"{"Node": {"Path": "personal-files/other", "Type": "LEAF"}}"#,
    )
    .await;
    let client = CellsClient::new(fast_config(&url, TOKEN)).unwrap();
    let err = client.stat(&p("personal-files/a")).await.unwrap_err();
    assert!(matches!(err, ClientError::Protocol(_)), "{err}");

    let url = stub_server(
        "200 OK",
        r#"{"Node": {"Path": "personal-files/../x", "Type": "LEAF"}}"#,
    )
    .await;
    let client = CellsClient::new(fast_config(&url, TOKEN)).unwrap();
    let err = client.stat(&p("personal-files/a")).await.unwrap_err();
    assert!(matches!(err, ClientError::InvalidName(_)), "{err}");

    let url = stub_server(
        "403 Forbidden",
        r#"{"Title":"E_FORBIDDEN","Detail":"no access"}"#,
    )
    .await;
    let client = CellsClient::new(fast_config(&url, TOKEN)).unwrap();
    let err = client
        .list_page(&p("personal-files"), 0, 10)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Forbidden(_)), "{err}");
    assert!(err.to_string().contains("no access"));

    let url = stub_server("503 Service Unavailable", "{}").await;
    let client = CellsClient::new(fast_config(&url, TOKEN)).unwrap();
    let err = client.stat(&p("personal-files/a")).await.unwrap_err();
    assert!(matches!(err, ClientError::Offline(_)), "{err}");
}
