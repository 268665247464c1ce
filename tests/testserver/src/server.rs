//! The accept loop: HTTP/1.1 with upgrades (websocket), fault injection in front of the
//! router (latency, bandwidth cap, 500s, dropped connections), graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use bytes::Bytes;
use futures::StreamExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::state::AppState;

/// Error returned to hyper to drop a connection without answering (the "reset" fault).
#[derive(Debug)]
struct InjectedReset;

impl std::fmt::Display for InjectedReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected connection reset")
    }
}
impl std::error::Error for InjectedReset {}

pub async fn serve(
    listener: TcpListener,
    router: Router,
    state: Arc<AppState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let router = router.clone();
        let st = state.clone();
        let mut conn_shutdown = shutdown.clone();
        conns.spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                handle(req, peer, router.clone(), st.clone())
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!("connection from {peer} ended: {e}");
                    }
                }
                _ = conn_shutdown.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    // Websocket tasks live outside this set: ask them to close too.
    state.ws_generation.send_modify(|g| *g += 1);
    let drained = tokio::time::timeout(Duration::from_secs(5), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        conns.abort_all();
    }
}

async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    router: Router,
    state: Arc<AppState>,
) -> Result<Response<Body>, InjectedReset> {
    let mut req = req.map(Body::new);
    req.extensions_mut().insert(ConnectInfo(peer));
    let path = req.uri().path().to_string();
    let exempt = path.starts_with("/_admin");
    let faults = crate::state::read_faults(&state);
    let mut bandwidth = 0;
    if !exempt {
        if faults.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
        }
        if roll(faults.reset_rate) {
            return Err(InjectedReset);
        }
        if roll(faults.error_rate) {
            return Ok(injected_error(&path));
        }
        if !path.starts_with("/ws/") {
            bandwidth = faults.bandwidth_bytes_per_sec;
        }
    }
    if bandwidth > 0 {
        req = req.map(|b| throttle(b, bandwidth));
    }
    let resp = match router.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    Ok(if bandwidth > 0 {
        resp.map(|b| throttle(b, bandwidth))
    } else {
        resp
    })
}

fn roll(rate: f64) -> bool {
    rate > 0.0 && rand::random::<f64>() < rate
}

fn injected_error(path: &str) -> Response<Body> {
    if path.starts_with("/io") || path == "/" {
        crate::error::s3_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "injected fault",
        )
    } else {
        crate::error::ApiError::new(crate::error::Kind::Internal, "injected fault").into_response()
    }
}

/// Re-chunks a body into small pieces and paces them to `bps` bytes per second.
fn throttle(body: Body, bps: u64) -> Body {
    let piece = ((bps / 20).max(1)) as usize;
    let stream = body
        .into_data_stream()
        .flat_map(move |res| {
            let items: Vec<Result<Bytes, axum::Error>> = match res {
                Ok(mut b) => {
                    let mut v = Vec::new();
                    while b.len() > piece {
                        v.push(Ok(b.split_to(piece)));
                    }
                    v.push(Ok(b));
                    v
                }
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(items)
        })
        .then(move |res| async move {
            if let Ok(b) = &res {
                tokio::time::sleep(Duration::from_secs_f64(b.len() as f64 / bps as f64)).await;
            }
            res
        });
    Body::from_stream(stream)
}
