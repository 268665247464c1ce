//! The `pin` and `unpin` commands on the mount side: pins are recorded at once, then pin
//! progress is streamed until the pinned content is local (the client may hang up earlier).

use super::proto::Reply;
use super::server::{Shared, send, wait_finished};
use super::view::pin_report;
use std::time::Duration;
use tokio::net::unix::OwnedWriteHalf;

/// Progress is sent at least this often, even when nothing changed.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
const COALESCE: Duration = Duration::from_millis(100);

fn no_pins() -> Reply {
    Reply::Error {
        message: "this mount does not support offline pins".into(),
    }
}

pub(super) async fn pin(
    shared: &Shared,
    paths: Vec<String>,
    write: &mut OwnedWriteHalf,
) -> std::io::Result<()> {
    let view = &shared.view;
    let Some(pins) = view.pins.clone() else {
        return send(write, no_pins()).await;
    };
    let remote = match view.remote_paths(&paths) {
        Ok(r) => r,
        Err(message) => return send(write, Reply::Error { message }).await,
    };
    let ticket = match pins.pin(remote.clone()).await {
        Ok(t) => t,
        Err(message) => return send(write, Reply::Error { message }).await,
    };
    let changed = pins.changed();
    let mut finished = shared.finished.clone();
    loop {
        let notified = changed.clone().notified_owned();
        let mut notified = Box::pin(notified);
        notified.as_mut().enable();
        let progress = pins.progress(&remote, ticket);
        let done = progress.done;
        let report = pin_report(progress);
        if done {
            return send(write, Reply::Pinned(report)).await;
        }
        send(write, Reply::PinProgress(report)).await?;
        tokio::select! {
            _ = tokio::time::timeout(PROGRESS_EVERY, notified) => {
                // Files finish in bursts: one line per burst is enough.
                tokio::time::sleep(COALESCE).await;
            }
            _ = wait_finished(&mut finished) => {
                let message = "the mount is being unmounted".to_string();
                return send(write, Reply::Error { message }).await;
            }
        }
    }
}

pub(super) async fn unpin(
    shared: &Shared,
    paths: Vec<String>,
    write: &mut OwnedWriteHalf,
) -> std::io::Result<()> {
    let view = &shared.view;
    let Some(pins) = view.pins.clone() else {
        return send(write, no_pins()).await;
    };
    let reply = match view.remote_paths(&paths) {
        Ok(remote) => match pins.unpin(remote).await {
            Ok(files) => Reply::Unpinned { files },
            Err(message) => Reply::Error { message },
        },
        Err(message) => Reply::Error { message },
    };
    send(write, reply).await
}
