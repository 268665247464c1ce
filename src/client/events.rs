//! The change feed: the `/ws/event` websocket, kept connected (capped exponential backoff),
//! subscribed with a fresh token before the old one expires, and parsed into typed events.
//!
//! The feed is a hint, not a log: events can be lost while disconnected or rate-limited, so
//! every (re)connection is announced with [`FeedItem::Resync`] and the consumer re-lists.

use super::CellsClient;
use super::assumptions::{EVENTS_PATH, EVENTS_RESUBSCRIBE_MARGIN_SECS, is_in_recycle_bin};
use super::error::{ClientError, ClientResult};
use super::model::Node;
use super::wire::WireNode;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Create,
    UpdateContent,
    UpdatePath,
    UpdateMeta,
    Delete,
}

/// One change on the server. `source` is the node before (moves, deletes), `target` after
/// (creates, updates, moves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    pub kind: ChangeKind,
    pub source: Option<Node>,
    pub target: Option<Node>,
}

// Boxing the event would cost an allocation per event to shrink a value that only moves
// through a channel; the size difference does not matter here.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedItem {
    Event(ChangeEvent),
    /// The feed (re)connected: events may have been missed, re-list what is cached.
    Resync,
}

/// Events buffered for a slow consumer before the reader waits.
const FEED_BUFFER: usize = 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A connection that lasted this long counts as healthy: the backoff starts over.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct WireEvent {
    #[serde(rename = "Type")]
    event_type: Option<String>,
    source: Option<WireNode>,
    target: Option<WireNode>,
    json_type: Option<String>,
    #[serde(rename = "@type")]
    control: Option<String>,
    #[serde(rename = "error")]
    error: Option<serde_json::Value>,
}

/// What one websocket message means to us.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
enum Parsed {
    Event(ChangeEvent),
    /// Job progress, activity, idm events: not about the tree.
    Ignored,
    /// `{"@type":"error"}`: the subscription was refused (bad or expired token).
    Refused(String),
    /// Not understandable or naming an invalid path: dropped with a log.
    Dropped(String),
}

fn event_node(wire: Option<WireNode>) -> ClientResult<Option<Node>> {
    let Some(mut wire) = wire else {
        return Ok(None);
    };
    // Event nodes (deletes especially) may omit Type; the kind matters little there.
    if wire.node_type.is_none() {
        wire.node_type = Some("LEAF".into());
    }
    wire.into_node().map(Some)
}

fn parse_message(text: &str) -> Parsed {
    let wire: WireEvent = match serde_json::from_str(text) {
        Ok(w) => w,
        Err(e) => return Parsed::Dropped(format!("undecodable event: {e}")),
    };
    if wire.control.as_deref() == Some("error") {
        let why = wire.error.map(|e| e.to_string()).unwrap_or_default();
        return Parsed::Refused(why.chars().take(200).collect());
    }
    if wire.json_type.is_some() || wire.control.is_some() {
        return Parsed::Ignored;
    }
    if wire.source.is_none() && wire.target.is_none() {
        return Parsed::Ignored;
    }
    let kind = match wire.event_type.as_deref() {
        None | Some("CREATE") => ChangeKind::Create,
        Some("UPDATE_CONTENT") => ChangeKind::UpdateContent,
        Some("UPDATE_PATH") => ChangeKind::UpdatePath,
        Some("UPDATE_META" | "UPDATE_USER_META") => ChangeKind::UpdateMeta,
        Some("DELETE") => ChangeKind::Delete,
        Some(other) => {
            return Parsed::Dropped(format!("unknown event type {:?}", short(other)));
        }
    };
    match (event_node(wire.source), event_node(wire.target)) {
        (Ok(source), Ok(target)) => match hide_recycle_bin(kind, source, target) {
            Some(event) => Parsed::Event(event),
            None => Parsed::Ignored,
        },
        (Err(e), _) | (_, Err(e)) => Parsed::Dropped(format!("event with an invalid node: {e}")),
    }
}

/// The recycle bin is hidden from the mount, so events are seen from outside it: a move into
/// it is a delete, a move out of it (a restore) a creation, and changes inside it nothing.
fn hide_recycle_bin(
    kind: ChangeKind,
    source: Option<Node>,
    target: Option<Node>,
) -> Option<ChangeEvent> {
    let hidden = |n: &Option<Node>| n.as_ref().is_some_and(|n| is_in_recycle_bin(&n.path));
    match (hidden(&source), hidden(&target)) {
        (false, false) => Some(ChangeEvent {
            kind,
            source,
            target,
        }),
        (true, true) => None,
        (false, true) if source.is_some() => Some(ChangeEvent {
            kind: ChangeKind::Delete,
            source,
            target: None,
        }),
        (true, false) if target.is_some() => Some(ChangeEvent {
            kind: ChangeKind::Create,
            source: None,
            target,
        }),
        _ => None,
    }
}

fn short(s: &str) -> String {
    s.chars().take(60).collect()
}

/// How a connection ended.
enum Ended {
    ConsumerGone,
    Lost { healthy: bool, refused: bool },
}

impl CellsClient {
    /// Starts the feed; it runs until the returned receiver is dropped.
    pub fn subscribe(&self) -> mpsc::Receiver<FeedItem> {
        let (tx, rx) = mpsc::channel(FEED_BUFFER);
        let client = self.clone();
        tokio::spawn(async move { client.run_feed(tx).await });
        rx
    }

    /// `ws://` or `wss://` URL of the feed, from the server URL.
    pub fn events_url(&self) -> ClientResult<url::Url> {
        let mut url = self.http().url(EVENTS_PATH)?;
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme)
            .map_err(|()| ClientError::Config("cannot derive the websocket URL".into()))?;
        Ok(url)
    }

    async fn run_feed(self, tx: mpsc::Sender<FeedItem>) {
        let mut failures = 0u32;
        loop {
            match self.feed_connection(&tx).await {
                Ended::ConsumerGone => return,
                Ended::Lost { healthy, refused } => {
                    failures = if healthy {
                        0
                    } else {
                        failures.saturating_add(1)
                    };
                    if refused && let Err(e) = self.http().tokens.refresh().await {
                        tracing::debug!("event feed: token refresh failed: {e}");
                    }
                }
            }
            let exp = BACKOFF_BASE.saturating_mul(1u32 << failures.min(16));
            let delay = exp.min(BACKOFF_MAX).mul_f64(rand::random_range(0.5..=1.0));
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = tx.closed() => return,
            }
        }
    }

    /// One connection: connect, subscribe, announce a resync, forward events until it drops.
    async fn feed_connection(&self, tx: &mpsc::Sender<FeedItem>) -> Ended {
        let lost = |healthy, refused| Ended::Lost { healthy, refused };
        let url = match self.events_url() {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!("event feed: {e}");
                return lost(false, false);
            }
        };
        let connect = tokio_tungstenite::connect_async(url.as_str());
        let mut ws = tokio::select! {
            r = tokio::time::timeout(CONNECT_TIMEOUT, connect) => match r {
                Ok(Ok((ws, _))) => ws,
                Ok(Err(e)) => {
                    tracing::debug!("event feed: connect failed: {e}");
                    return lost(false, false);
                }
                Err(_) => return lost(false, false),
            },
            _ = tx.closed() => return Ended::ConsumerGone,
        };
        let started = Instant::now();
        let tokens = &self.http().tokens;
        if let Err(e) = ws.send(subscribe_message(tokens.current().expose())).await {
            tracing::debug!("event feed: subscribe failed: {e}");
            return lost(false, false);
        }
        if tx.send(FeedItem::Resync).await.is_err() {
            return Ended::ConsumerGone;
        }
        loop {
            let resubscribe = resubscribe_delay(tokens.expires_at(), SystemTime::now());
            let msg = tokio::select! {
                m = ws.next() => m,
                _ = tx.closed() => {
                    let _ = ws.close(None).await;
                    return Ended::ConsumerGone;
                }
                _ = sleep_or_forever(resubscribe) => {
                    match tokens.refresh().await {
                        Ok(fresh) => {
                            if ws.send(subscribe_message(fresh.expose())).await.is_err() {
                                return lost(started.elapsed() > HEALTHY_AFTER, false);
                            }
                        }
                        Err(e) => tracing::warn!("event feed: token refresh failed: {e}"),
                    }
                    continue;
                }
            };
            let text = match msg {
                Some(Ok(Message::Text(t))) => t.to_string(),
                Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
                Some(Ok(Message::Close(_))) | None => {
                    return lost(started.elapsed() > HEALTHY_AFTER, false);
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    tracing::debug!("event feed: connection lost: {e}");
                    return lost(started.elapsed() > HEALTHY_AFTER, false);
                }
            };
            match parse_message(&text) {
                Parsed::Event(event) => {
                    if tx.send(FeedItem::Event(event)).await.is_err() {
                        return Ended::ConsumerGone;
                    }
                }
                Parsed::Ignored => {}
                Parsed::Refused(why) => {
                    tracing::warn!("event feed: subscription refused: {why}");
                    return lost(false, true);
                }
                Parsed::Dropped(why) => tracing::warn!("event feed: dropped a message: {why}"),
            }
        }
    }
}

fn subscribe_message(jwt: &str) -> Message {
    Message::text(serde_json::json!({"@type": "subscribe", "jwt": jwt}).to_string())
}

/// How long until we should re-subscribe with a fresh token: a margin before expiry, scaled
/// down for short-lived tokens, never less than half a second. `None`: no known expiry.
fn resubscribe_delay(expires_at: Option<SystemTime>, now: SystemTime) -> Option<Duration> {
    let remaining = expires_at?.duration_since(now).unwrap_or_default();
    let lead = Duration::from_secs(EVENTS_RESUBSCRIBE_MARGIN_SECS).min(remaining / 4);
    Some((remaining - lead).max(Duration::from_millis(500)))
}

async fn sleep_or_forever(delay: Option<Duration>) {
    match delay {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(text: &str) -> ChangeEvent {
        match parse_message(text) {
            Parsed::Event(e) => e,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn the_recycle_bin_is_seen_from_outside() {
        let trashed = event(
            r#"{"Type":"UPDATE_PATH","Source":{"Path":"ws/a.txt"},"Target":{"Path":"ws/recycle_bin/a.txt"}}"#,
        );
        assert_eq!(trashed.kind, ChangeKind::Delete);
        assert_eq!(trashed.source.unwrap().path.as_str(), "ws/a.txt");
        assert!(trashed.target.is_none());
        let restored = event(
            r#"{"Type":"UPDATE_PATH","Source":{"Path":"ws/recycle_bin/a.txt"},"Target":{"Path":"ws/b/a.txt"}}"#,
        );
        assert_eq!(restored.kind, ChangeKind::Create);
        assert_eq!(restored.target.unwrap().path.as_str(), "ws/b/a.txt");
        let inside = r#"{"Type":"DELETE","Source":{"Path":"ws/recycle_bin/a.txt"}}"#;
        assert!(matches!(parse_message(inside), Parsed::Ignored));
    }

    #[test]
    fn event_types_parse() {
        let e = event(r#"{"Target":{"Path":"ws/a.txt","Type":"LEAF","Size":"3"}}"#);
        assert_eq!(e.kind, ChangeKind::Create);
        assert_eq!(e.target.unwrap().size, 3);
        let e =
            event(r#"{"Type":"UPDATE_PATH","Source":{"Path":"ws/a"},"Target":{"Path":"ws/b"}}"#);
        assert_eq!(e.kind, ChangeKind::UpdatePath);
        assert_eq!(e.source.unwrap().path.as_str(), "ws/a");
        let e = event(r#"{"Type":"DELETE","Source":{"Path":"ws/a"}}"#);
        assert_eq!(e.kind, ChangeKind::Delete);
        assert_eq!(
            event(r#"{"Type":"UPDATE_USER_META","Target":{"Path":"ws/a"}}"#).kind,
            ChangeKind::UpdateMeta
        );
        assert_eq!(
            event(r#"{"Type":"UPDATE_CONTENT","Target":{"Path":"ws/a"}}"#).kind,
            ChangeKind::UpdateContent
        );
    }

    #[test]
    fn other_messages_are_ignored_or_dropped() {
        assert_eq!(
            parse_message(r#"{"JsonType":"idm","Target":{"Path":"ws/a"}}"#),
            Parsed::Ignored
        );
        assert_eq!(
            parse_message(r#"{"TaskUpdated":{"Status":"Running"}}"#),
            Parsed::Ignored
        );
        assert!(matches!(
            parse_message(r#"{"@type":"error","error":"bad jwt"}"#),
            Parsed::Refused(_)
        ));
        assert!(matches!(parse_message("{not json"), Parsed::Dropped(_)));
        assert!(matches!(
            parse_message(r#"{"Target":{"Path":"ws/../etc"}}"#),
            Parsed::Dropped(_)
        ));
        assert!(matches!(
            parse_message(r#"{"Type":"EXPLODE","Target":{"Path":"ws/a"}}"#),
            Parsed::Dropped(_)
        ));
    }

    #[test]
    fn resubscription_happens_before_expiry() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(resubscribe_delay(None, now), None);
        let hour = resubscribe_delay(Some(now + Duration::from_secs(3600)), now).unwrap();
        assert_eq!(
            hour,
            Duration::from_secs(3600 - EVENTS_RESUBSCRIBE_MARGIN_SECS)
        );
        let short = resubscribe_delay(Some(now + Duration::from_secs(8)), now).unwrap();
        assert_eq!(short, Duration::from_secs(6));
        let past = resubscribe_delay(Some(now - Duration::from_secs(5)), now).unwrap();
        assert_eq!(past, Duration::from_millis(500));
    }
}
