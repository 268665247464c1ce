//! REST API tests: login, stat/list/pagination, create/delete/move/copy jobs, errors, hooks.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn login_and_auth_errors() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path()).await;
    let base = srv.url();
    let r = http()
        .post(format!("{base}/a/frontend/session"))
        .json(&json!({"AuthInfo": {"login": "alice", "password": "alice-password", "type": "credentials"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let jwt = body["JWT"].as_str().unwrap();
    assert!(body["ExpireTime"].as_i64().unwrap() > 0);
    let ok = http()
        .get(format!("{base}/a/tree/stat/personal-files"))
        .bearer_auth(jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let bad = http()
        .post(format!("{base}/a/frontend/session"))
        .json(&json!({"AuthInfo": {"login": "alice", "password": "nope", "type": "credentials"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let no = http()
        .get(format!("{base}/a/tree/stat/personal-files"))
        .bearer_auth("bogus")
        .send()
        .await
        .unwrap();
    assert_eq!(no.status(), 401);
    let err: serde_json::Value = no.json().await.unwrap();
    assert!(err["Title"].is_string() && err["Detail"].is_string());
    srv.stop().await;
}

#[tokio::test]
async fn token_ttl_expires_jwts() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = cells_testserver::ServerConfig::new(dir.path());
    cfg.token_ttl = Some(std::time::Duration::from_secs(1));
    let srv = cells_testserver::TestServer::start(cfg).await.unwrap();
    let base = srv.url();
    let (_, body) = post(
        &format!("{base}/a/frontend/session"),
        "",
        json!({"AuthInfo": {"login": "alice", "password": "alice-password", "type": "credentials"}}),
    )
    .await;
    let jwt = body["JWT"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let r = http()
            .get(format!("{base}/a/tree/stat/common-files"))
            .bearer_auth(&jwt)
            .send()
            .await
            .unwrap();
        if r.status() == 401 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "JWT never expired");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    srv.stop().await;
}

#[tokio::test]
async fn stat_and_paged_listing_of_2500_seeded_files() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("personal-files/alice/big");
    std::fs::create_dir_all(&big).unwrap();
    for i in 0..2500 {
        std::fs::write(big.join(format!("f{i:05}.txt")), format!("{i}")).unwrap();
    }
    seed(dir.path(), "common-files/a.txt", b"a");
    let srv = start(dir.path()).await;
    let base = srv.url();

    let (code, root) = post(
        &format!("{base}/a/tree/stats"),
        TOKEN,
        json!({"NodePaths": ["/*"]}),
    )
    .await;
    assert_eq!(code, 200);
    let slugs: Vec<_> = root["Nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| meta(n, "ws_slug").unwrap())
        .collect();
    assert_eq!(slugs, ["common-files", "personal-files"]);

    let (code, a) = stat(&base, "common-files/a.txt").await;
    assert_eq!(code, 200);
    assert_eq!(
        meta(&a["Node"], "x-cells-hash").unwrap(),
        "b6ff9a06b7e20bcb2858c5b8ff744aea"
    );
    assert_eq!(a["Node"]["Etag"], "0cc175b9c0f1b6a831c399e269772661");
    assert_eq!(a["Node"]["Size"], "1");
    assert_eq!(a["Node"]["Type"], "LEAF");
    let (code, _) = stat(&base, "common-files%2Fa.txt").await;
    assert_eq!(code, 200);
    let (code, missing) = stat(&base, "common-files/nope").await;
    assert_eq!(code, 404);
    assert_eq!(missing["Title"], "E_NOT_FOUND");

    let mut names = Vec::new();
    let mut offset = 0;
    loop {
        let (code, page) = post(
            &format!("{base}/a/tree/stats"),
            TOKEN,
            json!({"NodePaths": ["personal-files/big/*"], "Offset": offset, "Limit": 1000}),
        )
        .await;
        assert_eq!(code, 200);
        assert_eq!(page["Pagination"]["Total"], 2500);
        for n in page["Nodes"].as_array().unwrap() {
            names.push(n["Path"].as_str().unwrap().to_string());
        }
        match page["Pagination"]["NextOffset"].as_u64() {
            Some(next) => offset = next,
            None => break,
        }
    }
    assert_eq!(names.len(), 2500);
    assert_eq!(names[0], "personal-files/big/f00000.txt");
    assert!(names.windows(2).all(|w| w[0] < w[1]));
    srv.stop().await;
}

#[tokio::test]
async fn create_move_copy_delete_jobs() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "common-files/x.txt", b"xx");
    let srv = start(dir.path()).await;
    let base = srv.url();
    let (code, created) = post(
        &format!("{base}/a/tree/create"),
        TOKEN,
        json!({"Nodes": [{"Path": "common-files/d1/d2", "Type": "COLLECTION"}], "Recursive": true}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(created["Children"][0]["Type"], "COLLECTION");

    let params =
        json!({"nodes": ["common-files/x.txt"], "target": "common-files/d1", "targetParent": true});
    let r = http()
        .put(format!("{base}/a/jobs/user/move"))
        .bearer_auth(TOKEN)
        .json(&json!({"JsonParameters": params.to_string()}))
        .send()
        .await
        .unwrap();
    let job = r.json::<serde_json::Value>().await.unwrap()["JobUuid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(wait_job(&base, &job).await.0, "Finished");
    assert_eq!(stat(&base, "common-files/x.txt").await.0, 404);
    let (_, moved) = stat(&base, "common-files/d1/x.txt").await;
    assert_eq!(meta(&moved["Node"], "x-cells-hash").unwrap().len(), 32);

    // Copy onto an existing target fails as a job error.
    seed(dir.path(), "common-files/y.txt", b"y");
    let params = json!({"nodes": ["common-files/d1/x.txt"], "target": "common-files/d1/x.txt", "targetParent": false});
    let r = http()
        .put(format!("{base}/a/jobs/user/copy"))
        .bearer_auth(TOKEN)
        .json(&json!({"JsonParameters": params.to_string()}))
        .send()
        .await
        .unwrap();
    let job = r.json::<serde_json::Value>().await.unwrap()["JobUuid"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, msg) = wait_job(&base, &job).await;
    assert_eq!(status, "Error");
    assert!(msg.contains("exists"), "{msg}");

    let (code, del) = post(
        &format!("{base}/a/tree/delete"),
        TOKEN,
        json!({"Nodes": [{"Path": "common-files/d1"}]}),
    )
    .await;
    assert_eq!(code, 200);
    let job = del["DeleteJobs"][0]["Uuid"].as_str().unwrap().to_string();
    assert_eq!(wait_job(&base, &job).await.0, "Finished");
    assert_eq!(stat(&base, "common-files/d1").await.0, 404);
    assert_eq!(
        stat(&base, "common-files/recycle_bin/d1/x.txt").await.0,
        200
    );
    assert!(!dir.path().join("common-files/d1").exists());
    srv.stop().await;
}

#[tokio::test]
async fn lock_quota_and_injected_children() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "common-files/locked.txt", b"l");
    let srv = start(dir.path()).await;
    let base = srv.url();
    srv.lock("common-files/locked.txt");
    let (code, body) = post(
        &format!("{base}/a/tree/delete"),
        TOKEN,
        json!({"Nodes": [{"Path": "common-files/locked.txt"}]}),
    )
    .await;
    assert_eq!(code, 423, "{body}");

    srv.set_quota("alice", Some(0));
    let (code, _) = post(
        &format!("{base}/a/tree/create"),
        TOKEN,
        json!({"Nodes": [{"Path": "personal-files/f.txt", "Type": "LEAF"}]}),
    )
    .await;
    assert_eq!(code, 200, "an empty file fits a zero quota");
    let r = http()
        .put(format!("{base}/io/personal-files/g.txt"))
        .header("X-Pydio-Bearer", TOKEN)
        .body("too much")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("QuotaExceeded"));

    srv.inject_raw_child(
        "common-files",
        json!({"Path": "common-files/../../etc", "Type": "LEAF", "Uuid": "evil"}),
    );
    let (_, list) = post(
        &format!("{base}/a/tree/stats"),
        TOKEN,
        json!({"NodePaths": ["common-files/*"]}),
    )
    .await;
    let paths: Vec<_> = list["Nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["Path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["common-files/locked.txt", "common-files/../../etc"]);
    srv.stop().await;
}

#[tokio::test]
async fn index_survives_restart_and_rescans() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "common-files/keep.txt", b"k");
    let srv = start(dir.path()).await;
    let uuid = stat(&srv.url(), "common-files/keep.txt").await.1["Node"]["Uuid"].clone();
    srv.stop().await;
    seed(dir.path(), "common-files/new.txt", b"a");
    let srv = start(dir.path()).await;
    let (_, keep) = stat(&srv.url(), "common-files/keep.txt").await;
    assert_eq!(keep["Node"]["Uuid"], uuid);
    let (code, new) = stat(&srv.url(), "common-files/new.txt").await;
    assert_eq!(code, 200);
    assert_eq!(
        meta(&new["Node"], "x-cells-hash").unwrap(),
        "b6ff9a06b7e20bcb2858c5b8ff744aea"
    );
    srv.stop().await;
}
