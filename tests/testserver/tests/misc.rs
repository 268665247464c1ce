//! Events websocket, OIDC, faults/admin, legacy-hash mode and the binary.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sha2::Digest;
use tokio_tungstenite::tungstenite::Message;

async fn next_json<S>(ws: &mut S) -> Value
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("event timeout");
        if let Some(Ok(Message::Text(t))) = msg {
            return serde_json::from_str(&t).unwrap();
        }
        assert!(matches!(msg, Some(Ok(_))), "socket closed: {msg:?}");
    }
}

#[tokio::test]
async fn events_for_put_and_bad_token() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path()).await;
    let ws_url = format!("ws://{}/ws/event", srv.addr());
    let (mut bad, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    bad.send(Message::text(
        json!({"@type": "subscribe", "jwt": "nope"}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut bad).await["@type"], "error");

    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    ws.send(Message::text(
        json!({"@type": "subscribe", "jwt": TOKEN}).to_string(),
    ))
    .await
    .unwrap();
    // The subscription is processed asynchronously: PUT until an event shows up.
    let url = format!("{}/io/personal-files/ev.txt", srv.url());
    let deadline = Instant::now() + Duration::from_secs(5);
    let ev = loop {
        http()
            .put(&url)
            .header("X-Pydio-Bearer", TOKEN)
            .body("e")
            .send()
            .await
            .unwrap();
        if let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(200), ws.next()).await
        {
            break serde_json::from_str::<Value>(&t).unwrap();
        }
        assert!(Instant::now() < deadline, "no event");
    };
    assert_eq!(ev["Target"]["Path"], "personal-files/ev.txt");
    assert!(ev.get("Type").is_none() || ev["Type"] == "UPDATE_CONTENT");

    srv.drop_event_connections();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                _ => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "socket not closed");
    srv.stop().await;
}

fn query_param(url: &str, name: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    u.query_pairs()
        .find(|(k, _)| k == name)
        .unwrap()
        .1
        .into_owned()
}

#[tokio::test]
async fn oidc_pkce_and_rotating_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path()).await;
    let base = srv.url();
    let conf: Value = http()
        .get(format!("{base}/oidc/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token_url = conf["token_endpoint"].as_str().unwrap().to_string();
    let verifier = "a-verifier-long-enough-for-pkce-0123456789abcdef";
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier));
    let redirect = "http://localhost:3636/servers/callback";
    let authorize = || async {
        let r = http()
            .get(conf["authorization_endpoint"].as_str().unwrap())
            .query(&[
                ("response_type", "code"),
                ("client_id", "cells-sync"),
                ("redirect_uri", redirect),
                ("state", "st8"),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        assert_eq!(query_param(&loc, "state"), "st8");
        query_param(&loc, "code")
    };
    let exchange = |code: String, verifier: &'static str| {
        let token_url = token_url.clone();
        async move {
            http()
                .post(token_url)
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("client_id", "cells-sync"),
                    ("code", code.as_str()),
                    ("redirect_uri", redirect),
                    ("code_verifier", verifier),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let bad = exchange(authorize().await, "wrong-verifier").await;
    assert_eq!(bad.status(), 400);
    let ok = exchange(authorize().await, verifier).await;
    assert_eq!(ok.status(), 200);
    let tokens: Value = ok.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert!(tokens["id_token"].is_string() && tokens["expires_in"].as_u64().unwrap() > 0);
    let r = http()
        .get(format!("{base}/a/tree/stat/personal-files"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let refresh = |rt: String| {
        let token_url = token_url.clone();
        async move {
            http()
                .post(token_url)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", "cells-sync"),
                    ("refresh_token", rt.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let rt1 = tokens["refresh_token"].as_str().unwrap().to_string();
    let r = refresh(rt1.clone()).await;
    assert_eq!(r.status(), 200);
    let rt2 = r.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(rt1, rt2);
    let old = refresh(rt1).await;
    assert_eq!(old.status(), 400);
    assert_eq!(old.json::<Value>().await.unwrap()["error"], "invalid_grant");
    assert_eq!(refresh(rt2).await.status(), 200);
    srv.stop().await;
}

#[tokio::test]
async fn faults_admin_and_legacy_hash() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "common-files/a.txt", b"a");
    let srv = start(dir.path()).await;
    let base = srv.url();
    let r = http()
        .post(format!("{base}/_admin/faults"))
        .json(&json!({"error_rate": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(stat(&base, "common-files/a.txt").await.0, 500);
    let r = http()
        .post(format!("{base}/_admin/faults"))
        .json(&json!({"reset_rate": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "admin is exempt from faults");
    let dropped = http()
        .get(format!("{base}/a/tree/stat/common-files/a.txt"))
        .bearer_auth(TOKEN)
        .send()
        .await;
    assert!(dropped.is_err(), "connection should be dropped");
    srv.set_faults(cells_testserver::Faults {
        bandwidth_bytes_per_sec: 20_000,
        ..Default::default()
    });
    let t = Instant::now();
    let r = http()
        .put(format!("{base}/io/common-files/slow.bin"))
        .header("X-Pydio-Bearer", TOKEN)
        .body(vec![0u8; 10_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "bandwidth cap not applied"
    );
    srv.set_faults(Default::default());

    let (_, node) = stat(&base, "common-files/a.txt").await;
    assert!(meta(&node["Node"], "x-cells-hash").is_some());
    let r = http()
        .post(format!("{base}/_admin/legacy-hash"))
        .json(&json!({"on": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, node) = stat(&base, "common-files/a.txt").await;
    assert!(meta(&node["Node"], "x-cells-hash").is_none());
    assert_eq!(node["Node"]["Etag"], "0cc175b9c0f1b6a831c399e269772661");
    srv.stop().await;
}

#[tokio::test]
async fn binary_prints_url_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_cells-testserver"))
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path())
        .args(["--user", "bob:pw", "--token", "bob:tok"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let url = first.strip_prefix("listening on ").unwrap().to_string();
    let r = http()
        .get(format!("{url}/a/tree/stat/personal-files"))
        .bearer_auth("tok")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let pid = child.id().unwrap() as i32;
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}
