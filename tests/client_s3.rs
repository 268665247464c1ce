//! Content transfers through the test server's S3 gateway: range reads, single and multipart
//! uploads with hash verification, SigV4 refusal, legacy-hash servers.

mod client_support;

use cells_mount::client::http::{ErrorFlavor, classify};
use cells_mount::client::s3::sign_request;
use cells_mount::client::{ClientError, HashKind, Secret};
use client_support::*;
use md5::{Digest, Md5};
use std::time::SystemTime;

#[tokio::test]
async fn range_reads_return_exactly_the_bytes_asked() {
    let env = start().await;
    let data = pattern(1024 * 1024 + 17);
    let tmp = tempfile::tempdir().unwrap();
    let f = local_file(tmp.path(), "x", &data);
    let path = p("personal-files/r.bin");
    env.client.upload_file(&path, &f).await.unwrap();
    let len = data.len() as u64;
    for range in [0..10, 1000..5000, 0..len, len - 10..len] {
        let got = env.client.read_range(&path, range.clone()).await.unwrap();
        assert_eq!(
            &got[..],
            &data[range.start as usize..range.end as usize],
            "{range:?}"
        );
    }
    // Past the end: what exists, then nothing.
    let tail = env
        .client
        .read_range(&path, len - 5..len + 100)
        .await
        .unwrap();
    assert_eq!(&tail[..], &data[data.len() - 5..]);
    assert!(env.client.read_range(&path, 7..7).await.unwrap().is_empty());
    let err = env
        .client
        .read_range(&path, len + 10..len + 20)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::RangeNotSatisfiable(_)), "{err}");
    let err = env
        .client
        .read_range(&p("personal-files/none"), 0..10)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::NotFound(_)), "{err}");
    let head = env.client.head(&path).await.unwrap();
    assert_eq!(head.size, len);
}

#[tokio::test]
async fn multipart_upload_of_25_mib_records_the_whole_file_hash() {
    let env = start().await;
    let data = pattern(25 * 1024 * 1024);
    let tmp = tempfile::tempdir().unwrap();
    let f = local_file(tmp.path(), "big", &data);
    let path = p("personal-files/big.bin");
    let out = env.client.upload_file(&path, &f).await.unwrap();
    assert_eq!(out.local_cells_hash, "813604c8e473a3ec08c99023c062c535");
    assert_eq!(out.size, data.len() as u64);
    let node = out.node.expect("the server indexed the upload");
    let version = node.version.unwrap();
    assert_eq!(version.kind, HashKind::CellsHash);
    assert_eq!(version.value, "813604c8e473a3ec08c99023c062c535");
    let node = env.client.stat(&path).await.unwrap();
    assert_eq!(node.size, data.len() as u64);
    let middle = env
        .client
        .read_range(&path, 10 * 1024 * 1024 - 3..10 * 1024 * 1024 + 3)
        .await
        .unwrap();
    assert_eq!(
        &middle[..],
        &data[10 * 1024 * 1024 - 3..10 * 1024 * 1024 + 3]
    );
}

#[tokio::test]
async fn failed_multipart_upload_is_aborted_and_reported() {
    let env = start().await;
    env.server.set_quota("alice", Some(15 * 1024 * 1024));
    let data = pattern(25 * 1024 * 1024);
    let tmp = tempfile::tempdir().unwrap();
    let f = local_file(tmp.path(), "big", &data);
    let err = env
        .client
        .upload_file(&p("personal-files/too-big.bin"), &f)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Quota(_)), "{err}");
    assert!(matches!(
        env.client.stat(&p("personal-files/too-big.bin")).await,
        Err(ClientError::NotFound(_))
    ));
    // The upload was aborted: the gateway lists no pending multipart upload.
    let url = url::Url::parse(&format!("{}/io?uploads", env.server.url())).unwrap();
    let headers = sign_request(
        &Secret::new(TOKEN),
        &reqwest::Method::GET,
        &url,
        &[],
        SystemTime::now(),
    )
    .unwrap();
    cells_mount::client::http::install_crypto_provider();
    let mut req = reqwest::Client::new().get(url);
    for (k, v) in &headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let listing = resp.text().await.unwrap();
    assert!(listing.contains("ListMultipartUploadsResult"), "{listing}");
    assert!(!listing.contains("<Upload>"), "{listing}");
}

#[tokio::test]
async fn a_wrong_signature_is_refused() {
    let env = start().await;
    let url = url::Url::parse(&format!("{}/io/personal-files/x.txt", env.server.url())).unwrap();
    let mut headers = sign_request(
        &Secret::new(TOKEN),
        &reqwest::Method::GET,
        &url,
        &[],
        SystemTime::now(),
    )
    .unwrap();
    for (name, value) in headers.iter_mut() {
        if name == "authorization" {
            // Flip the last hex digit of the signature.
            let last = value.pop().unwrap();
            value.push(if last == '0' { '1' } else { '0' });
        }
    }
    cells_mount::client::http::install_crypto_provider();
    let mut req = reqwest::Client::new().get(url.clone());
    for (k, v) in &headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    assert_eq!(status, 403);
    let body = resp.bytes().await.unwrap();
    let err = classify(status, &body, ErrorFlavor::S3);
    assert!(matches!(err, ClientError::Unauthorized(_)), "{err}");

    // The same request correctly signed goes through to the object (404: none uploaded).
    let err = env
        .client
        .read_range(&p("personal-files/x.txt"), 0..1)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::NotFound(_)), "{err}");
    // And an unknown token is refused.
    let stranger = env.client_with_token("not-a-token");
    let err = stranger
        .read_range(&p("personal-files/x.txt"), 0..1)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Forbidden(_) | ClientError::Unauthorized(_)
        ),
        "{err}"
    );
}

#[tokio::test]
async fn legacy_hash_servers_give_plain_md5_versions() {
    let env = start_with(|cfg, _| cfg.legacy_hash = true).await;
    let data = b"legacy content".to_vec();
    let tmp = tempfile::tempdir().unwrap();
    let f = local_file(tmp.path(), "x", &data);
    let path = p("personal-files/legacy.txt");
    let out = env.client.upload_file(&path, &f).await.unwrap();
    assert_eq!(out.local_cells_hash, cells_mount::hash::cells_hash(&data));
    let node = env.client.stat(&path).await.unwrap();
    let version = node.version.unwrap();
    assert_eq!(version.kind, HashKind::PlainMd5);
    assert_eq!(version.value, hex::encode(Md5::digest(&data)));
    // Switching the server back: the same node now carries the Cells hash.
    env.server.set_legacy_hash(false);
    let node = env.client.stat(&path).await.unwrap();
    assert_eq!(node.version.unwrap().kind, HashKind::CellsHash);
}

#[tokio::test]
async fn an_expired_jwt_is_refreshed_for_s3_transfers() {
    use cells_mount::client::{CellsClient, PasswordTokenSource, TokenSource};
    use std::sync::Arc;
    use std::time::Duration;
    let env = start_with(|cfg, _| cfg.token_ttl = Some(Duration::from_secs(1))).await;
    let url = env.server.url();
    let tmp = tempfile::tempdir().unwrap();
    let f = local_file(tmp.path(), "x", b"0123456789");
    env.client
        .upload_file(&p("personal-files/t.txt"), &f)
        .await
        .unwrap();
    let tokens = Arc::new(
        PasswordTokenSource::connect(&url, "alice", Secret::new("alice-password"))
            .await
            .unwrap(),
    );
    let first = tokens.current();
    let fixed = cells_mount::client::CellsClient::new(fast_config(&url, first.expose())).unwrap();
    let refreshing =
        CellsClient::with_token_source(fast_config(&url, "unused"), tokens.clone()).unwrap();
    assert_eq!(
        &refreshing
            .read_range(&p("personal-files/t.txt"), 0..4)
            .await
            .unwrap()[..],
        b"0123"
    );
    // The gateway answers an expired token with 403 AccessDenied.
    wait_for(Duration::from_secs(10), "the JWT to expire", || async {
        fixed
            .read_range(&p("personal-files/t.txt"), 0..4)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    assert_eq!(
        &refreshing
            .read_range(&p("personal-files/t.txt"), 2..6)
            .await
            .unwrap()[..],
        b"2345"
    );
    assert_ne!(tokens.current(), first);
}
