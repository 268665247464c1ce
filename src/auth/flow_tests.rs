//! The PKCE flow against the test server's OIDC provider: the verifier we send matches the
//! challenge we published (a wrong one is refused), state is checked, refresh tokens rotate.

use super::*;
use cells_testserver::{ServerConfig, TestServer};

async fn server(ttl: Option<std::time::Duration>) -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ServerConfig::new(dir.path().join("data"));
    cfg.token_ttl = ttl;
    let srv = TestServer::start(cfg).await.unwrap();
    (dir, srv)
}

fn redirect() -> Url {
    Url::parse("http://localhost:3650/servers/callback").unwrap()
}

/// Plays the browser: the authorize endpoint auto-approves; its redirect holds code + state.
async fn authorize(http: &reqwest::Client, login: &PendingLogin) -> String {
    let resp = http.get(login.authorize_url.clone()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303, "authorize must redirect");
    let location = resp.headers()[http::header::LOCATION].to_str().unwrap();
    location.to_owned()
}

#[tokio::test]
async fn pkce_verifier_matches_the_challenge_and_a_wrong_one_is_refused() {
    let (_dir, srv) = server(None).await;
    let http = crate::auth::http_client(None).unwrap();
    let endpoints = crate::auth::discover(&http, &srv.url()).await.unwrap();

    let login = begin(&endpoints, DEFAULT_CLIENT_ID, &redirect()).unwrap();
    let query: std::collections::HashMap<_, _> =
        login.authorize_url.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["client_id"], "cells-sync");
    assert_eq!(query["scope"], "openid email profile pydio offline");
    assert!(!query["nonce"].is_empty() && !query["state"].is_empty());
    // Our side: the verifier we will send hashes to the challenge we published.
    let computed = PkceCodeChallenge::from_code_verifier_sha256(&login.verifier);
    assert_eq!(computed.as_str(), query["code_challenge"]);

    let answer = authorize(&http, &login).await;
    let code = login.code_from(&answer).unwrap();
    let grant = login.exchange(&http, code).await.unwrap();
    assert!(grant.refresh_token.is_some());
    assert_eq!(grant.user.as_deref(), Some("alice"));

    // The server checks the verifier: another login's verifier is refused.
    let one = begin(&endpoints, DEFAULT_CLIENT_ID, &redirect()).unwrap();
    let other = begin(&endpoints, DEFAULT_CLIENT_ID, &redirect()).unwrap();
    let code = one.code_from(&authorize(&http, &one).await).unwrap();
    let swapped = PendingLogin {
        verifier: other.verifier,
        ..one
    };
    let err = swapped.exchange(&http, code).await.unwrap_err();
    assert!(
        matches!(err, AuthError::Expired(ref m) if m.contains("PKCE")),
        "{err}"
    );
}

#[tokio::test]
async fn answers_with_a_foreign_state_or_an_error_are_refused() {
    let (_dir, srv) = server(None).await;
    let http = crate::auth::http_client(None).unwrap();
    let endpoints = crate::auth::discover(&http, &srv.url()).await.unwrap();
    let login = begin(&endpoints, DEFAULT_CLIENT_ID, &redirect()).unwrap();
    let forged = "http://localhost:3650/servers/callback?code=abc&state=forged";
    assert!(matches!(
        login.code_from(forged),
        Err(AuthError::Rejected(_))
    ));
    let denied = "error=access_denied&error_description=nope";
    assert!(
        login
            .code_from(denied)
            .unwrap_err()
            .to_string()
            .contains("access_denied")
    );
    assert_eq!(
        login.code_from("  bare-code-123 ").unwrap(),
        "bare-code-123"
    );
    assert!(login.code_from("two words").is_err());
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_used_one_is_dead() {
    let (_dir, srv) = server(None).await;
    let http = crate::auth::http_client(None).unwrap();
    let endpoints = crate::auth::discover(&http, &srv.url()).await.unwrap();
    let login = begin(&endpoints, DEFAULT_CLIENT_ID, &redirect()).unwrap();
    let code = login.code_from(&authorize(&http, &login).await).unwrap();
    let first = login.exchange(&http, code).await.unwrap();
    let r1 = first.refresh_token.unwrap();
    let second = refresh(&http, &endpoints, DEFAULT_CLIENT_ID, &r1)
        .await
        .unwrap();
    let r2 = second.refresh_token.unwrap();
    assert_ne!(r1, r2);
    assert_ne!(first.access_token, second.access_token);
    let err = refresh(&http, &endpoints, DEFAULT_CLIENT_ID, &r1)
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Expired(_)), "{err}");
    assert!(!err.to_string().contains(r1.expose()));
}
