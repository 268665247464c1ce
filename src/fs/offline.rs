//! Whether the server is reachable. Set when a request fails with `Offline`; cleared by a
//! background probe with exponential backoff, so that while offline no read waits on the
//! network at all. A read refused meanwhile nudges the probe, so a server that is back is
//! noticed when someone needs it, not only when the backoff expires.

use crate::client::Remote;
use crate::meta::now_ms;
use crate::names::RemotePath;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct OfflineState {
    offline: AtomicBool,
    /// Unix milliseconds when we went offline (0 when online).
    since_ms: AtomicI64,
    /// Woken when the server answers again (the uploader retries at once).
    back: tokio::sync::Notify,
    /// Woken when a read was refused for being offline (see [`Self::nudge`]).
    wanted: tokio::sync::Notify,
}

impl OfflineState {
    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::Acquire)
    }

    pub fn offline_since_ms(&self) -> Option<i64> {
        self.is_offline()
            .then(|| self.since_ms.load(Ordering::Acquire))
    }

    /// Returns true when this call made us offline (the caller starts the probe).
    fn mark_offline(&self) -> bool {
        let newly = !self.offline.swap(true, Ordering::AcqRel);
        if newly {
            self.since_ms.store(now_ms(), Ordering::Release);
        }
        newly
    }

    fn mark_online(&self) {
        self.since_ms.store(0, Ordering::Release);
        self.offline.store(false, Ordering::Release);
        self.back.notify_waiters();
    }

    /// Someone needed the server while offline: the probe tries again now rather than at
    /// the end of its backoff (but never more often than its shortest wait).
    pub fn nudge(&self) {
        if self.is_offline() {
            self.wanted.notify_one();
        }
    }

    /// Returns the next time the server becomes reachable after being offline.
    pub async fn back_online(&self) {
        self.back.notified().await
    }
}

/// Marks the state offline and, if it was online, starts a probe task that lists one entry of
/// `probe_path` until the server answers anything at all (an answer, even an error, means it
/// is reachable). The task holds only a weak reference and ends with the file system.
pub fn went_offline<R: Remote>(
    state: &Arc<OfflineState>,
    remote: &Arc<R>,
    probe_path: RemotePath,
    min: Duration,
    max: Duration,
) {
    if !state.mark_offline() {
        return;
    }
    tracing::warn!("server unreachable; serving from the local cache until it answers again");
    let weak: Weak<OfflineState> = Arc::downgrade(state);
    let remote = remote.clone();
    tokio::spawn(async move {
        let mut wait = min;
        loop {
            let probed = tokio::time::Instant::now();
            let nudged = match weak.upgrade() {
                Some(state) => tokio::select! {
                    () = tokio::time::sleep(wait) => false,
                    () = state.wanted.notified() => true,
                },
                None => return,
            };
            if nudged {
                tokio::time::sleep_until(probed + min).await;
            }
            let Some(state) = weak.upgrade() else { return };
            match remote.list_page(&probe_path, 0, 1).await {
                Err(e) if e.is_offline() => {
                    wait = (wait * 2).min(max);
                }
                _ => {
                    tracing::info!("server reachable again");
                    state.mark_online();
                    return;
                }
            }
        }
    });
}
