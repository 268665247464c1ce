//! The change feed `/ws/event`: subscribe with `{"@type":"subscribe","jwt":TOKEN}`, then
//! receive protojson `NodeChangeEvent`s for the workspaces the user can see.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::state::AppState;

/// Largest subscribe/unsubscribe message accepted, as on Cells.
const MAX_INCOMING: usize = 2048;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/ws/event", get(upgrade))
}

async fn upgrade(State(st): State<Arc<AppState>>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(MAX_INCOMING)
        .on_upgrade(move |socket| run(st, socket))
}

enum Incoming {
    Subscribe(String),
    Unsubscribe,
    Other,
}

fn parse(msg: &str) -> Incoming {
    let Ok(v) = serde_json::from_str::<Value>(msg) else {
        return Incoming::Other;
    };
    match v.get("@type").and_then(Value::as_str) {
        Some("subscribe") => Incoming::Subscribe(
            v.get("jwt")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        ),
        Some("unsubscribe") => Incoming::Unsubscribe,
        _ => Incoming::Other,
    }
}

async fn run(st: Arc<AppState>, mut socket: WebSocket) {
    let mut generation = st.ws_generation.subscribe();
    generation.borrow_and_update();
    let mut feed = st.events.subscribe();
    // Workspace roots this socket receives events for; empty until subscribed.
    let mut roots: Vec<String> = Vec::new();
    loop {
        tokio::select! {
            _ = generation.changed() => break,
            incoming = socket.recv() => {
                let Some(Ok(msg)) = incoming else { break };
                let text = match msg {
                    Message::Text(t) => t.to_string(),
                    Message::Close(_) => break,
                    _ => continue,
                };
                match parse(&text) {
                    Incoming::Subscribe(token) => match st.token_login(&token) {
                        Ok(login) => {
                            roots = st.workspaces_for(&login).into_iter().map(|w| w.root).collect();
                        }
                        Err(e) => {
                            let err = json!({"@type": "error", "error": e.detail});
                            let _ = socket.send(Message::Text(err.to_string().into())).await;
                            break;
                        }
                    },
                    Incoming::Unsubscribe => roots.clear(),
                    Incoming::Other => {}
                }
            }
            ev = feed.recv() => match ev {
                Ok(ev) => {
                    if roots.contains(&ev.root) {
                        let text = ev.body.to_string();
                        if socket.send(Message::Text(text.into())).await.is_err() {
                            break;
                        }
                    }
                }
                // A slow reader misses events; like Cells, the feed is only a hint.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            },
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
