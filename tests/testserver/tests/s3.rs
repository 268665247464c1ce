//! S3 gateway tests: SigV4 and X-Pydio-Bearer auth, PUT/GET/Range/416, multipart hashes,
//! listings.

mod common;

use common::*;
use reqwest::Method;

#[tokio::test]
async fn put_get_range_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path()).await;
    let url = format!("{}/io/personal-files/docs/a.txt", srv.url());
    let r = signed(
        Method::PUT,
        &url,
        TOKEN,
        "gatewaysecret",
        b"hello world".to_vec(),
        &[],
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert_eq!(r.headers()["etag"], "\"5eb63bbbe01eeed093cb22bb8f5acdc3\"");
    let (_, node) = stat(&srv.url(), "personal-files/docs/a.txt").await;
    assert_eq!(
        meta(&node["Node"], "x-cells-hash").unwrap(),
        cells_testserver::hash::cells_hash(b"hello world")
    );
    assert!(dir.path().join("personal-files/alice/docs/a.txt").is_file());

    let r = signed(
        Method::GET,
        &url,
        TOKEN,
        "gatewaysecret",
        vec![],
        &[("range", "bytes=6-")],
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 6-10/11");
    assert_eq!(r.text().await.unwrap(), "world");
    let r = http()
        .get(&url)
        .header("X-Pydio-Bearer", TOKEN)
        .header("range", "bytes=20-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert!(r.text().await.unwrap().contains("InvalidRange"));
    let r = http()
        .get(&url)
        .header("X-Pydio-Bearer", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "hello world");

    let r = signed(Method::GET, &url, TOKEN, "wrong-secret", vec![], &[])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("SignatureDoesNotMatch"));
    let r = signed(
        Method::GET,
        &url,
        "not-a-token",
        "gatewaysecret",
        vec![],
        &[],
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("AccessDenied"));
    let missing = format!("{}/io/personal-files/nope", srv.url());
    let r = http()
        .get(&missing)
        .header("X-Pydio-Bearer", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("NoSuchKey"));
    // Raw request: an HTTP client would normalise the dot segments away before sending.
    let mut sock = tokio::net::TcpStream::connect(srv.addr()).await.unwrap();
    let raw = format!(
        "PUT /io/personal-files/%2E%2E/bob/x HTTP/1.1\r\nHost: {}\r\nX-Pydio-Bearer: {TOKEN}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
        srv.addr()
    );
    tokio::io::AsyncWriteExt::write_all(&mut sock, raw.as_bytes())
        .await
        .unwrap();
    let mut reply = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut sock, &mut reply)
        .await
        .unwrap();
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(!dir.path().join("personal-files/bob").exists());

    let r = http()
        .delete(&url)
        .header("X-Pydio-Bearer", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(stat(&srv.url(), "personal-files/docs/a.txt").await.0, 404);
    srv.stop().await;
}

async fn multipart(base: &str, key: &str, data: &[u8], part: usize) -> String {
    let url = format!("{base}/io/{key}");
    let bearer = |r: reqwest::RequestBuilder| r.header("X-Pydio-Bearer", TOKEN);
    let body = bearer(http().post(format!("{url}?uploads")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let id = body
        .split("<UploadId>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    let mut xml = String::from("<CompleteMultipartUpload>");
    for (i, chunk) in data.chunks(part).enumerate() {
        let n = i + 1;
        let r = bearer(http().put(format!("{url}?partNumber={n}&uploadId={id}")))
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let etag = r.headers()["etag"].to_str().unwrap().to_string();
        xml.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    let r = bearer(http().post(format!("{url}?uploadId={id}")))
        .body(xml)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let (_, node) = stat(base, key).await;
    assert_eq!(node["Node"]["Size"], data.len().to_string());
    meta(&node["Node"], "x-cells-hash").unwrap()
}

#[tokio::test]
async fn multipart_hash_depends_on_part_size() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path()).await;
    let data = pattern(25 * 1024 * 1024);
    let good = multipart(&srv.url(), "common-files/good.bin", &data, 10 * 1024 * 1024).await;
    assert_eq!(good, "813604c8e473a3ec08c99023c062c535");
    let bad = multipart(&srv.url(), "common-files/bad.bin", &data, 5 * 1024 * 1024).await;
    assert_eq!(bad, "546701f1579ea953e7f2977b39f2b4f1");
    let (_, node) = stat(&srv.url(), "common-files/bad.bin").await;
    assert!(node["Node"]["Etag"].as_str().unwrap().ends_with("-5"));
    let r = http()
        .get(format!("{}/io?uploads", srv.url()))
        .header("X-Pydio-Bearer", TOKEN)
        .send()
        .await
        .unwrap();
    assert!(
        !r.text().await.unwrap().contains("<Upload>"),
        "no upload left behind"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join(".cells-testserver/multipart"))
            .unwrap()
            .count(),
        0
    );
    srv.stop().await;
}

#[tokio::test]
async fn list_objects_v2() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..5 {
        seed(dir.path(), &format!("common-files/d/f{i}.txt"), b"x");
    }
    seed(dir.path(), "common-files/top.txt", b"t");
    let srv = start(dir.path()).await;
    let base = srv.url();
    let get = |q: &str| {
        let url = format!("{base}/io?{q}");
        async move {
            http()
                .get(url)
                .header("X-Pydio-Bearer", TOKEN)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let root = get("list-type=2&delimiter=%2F").await;
    assert!(
        root.contains("<Prefix>common-files/</Prefix>")
            && root.contains("<Prefix>personal-files/</Prefix>")
    );
    let ws = get("list-type=2&delimiter=%2F&prefix=common-files%2F").await;
    assert!(ws.contains("<Key>common-files/top.txt</Key>"));
    assert!(ws.contains("<Prefix>common-files/d/</Prefix>"));
    let page = get("list-type=2&prefix=common-files%2Fd%2F&max-keys=3").await;
    assert!(page.contains("<IsTruncated>true</IsTruncated>"));
    let token = page
        .split("<NextContinuationToken>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap();
    let rest = get(&format!(
        "list-type=2&prefix=common-files%2Fd%2F&max-keys=3&continuation-token={token}"
    ))
    .await;
    assert!(rest.contains("<Key>common-files/d/f4.txt</Key>") && !rest.contains("f2.txt"));
    let buckets = http()
        .get(format!("{base}/"))
        .header("X-Pydio-Bearer", TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(buckets.contains("<Name>io</Name>"));
    srv.stop().await;
}
