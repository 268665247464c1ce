//! The background uploader: one supervisor task claims ready operations from the journal and
//! runs up to `concurrency` of them at once; failures are deferred with backoff (offline:
//! short and woken early by [`Uploader::online`]; refusals: error state, long backoff).

use super::backoff::{as_ms, delay};
use super::execute::{Ctx, Failure, run};
use super::{InterruptedUploads, Journal, QueueStats, SyncHooks};
use crate::client::Remote;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::task::JoinSet;

#[derive(Clone)]
pub struct UploaderConfig {
    /// Operations running at once (multipart parallelism is the client's, on top).
    pub concurrency: usize,
    /// Host name written into conflict names.
    pub host: String,
    /// Backoff for transient failures.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Longest wait between attempts while the server is unreachable.
    pub offline_max: Duration,
    /// Backoff of operations in the error state (quota, lock, permission).
    pub error_backoff: Duration,
    /// Transient failures in a row before an operation is shown in the error state.
    pub errors_after: u32,
    /// Cleans up uploads cut off by a crash (the real client implements it).
    pub interrupted: Option<Arc<dyn InterruptedUploads>>,
    /// How long a closed (not fsynced) save may wait before it is synced to disk in the
    /// background: the most a power loss can take, like a local file system's commit
    /// interval (ext4: 5 s).
    pub sync_every: Duration,
    /// While files are being saved one after another (the last save less than this ago),
    /// uploads wait: a burst (`cp -r`, an archive extracting, a build) runs at local speed
    /// instead of sharing the machine with its own uploads, and a file saved again and again
    /// goes up once; never longer than [`WRITE_BACK_CAP`] times this from the burst's start.
    /// Zero turns it off.
    pub write_back: Duration,
}

/// How many write-back pauses a burst of saves may hold its uploads at most.
pub const WRITE_BACK_CAP: i64 = 5;

impl Default for UploaderConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            host: super::local_host_name(),
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(60),
            offline_max: Duration::from_secs(30),
            error_backoff: Duration::from_secs(300),
            errors_after: 5,
            interrupted: None,
            sync_every: Duration::from_secs(5),
            write_back: Duration::from_secs(1),
        }
    }
}

/// Handle on the running uploader. Dropping it stops the tasks (in-flight operations are
/// simply pending again on the next start).
pub struct Uploader {
    journal: Arc<Journal>,
    stopping: Arc<AtomicBool>,
    supervisor: Option<tokio::task::JoinHandle<()>>,
    syncer: Option<tokio::task::JoinHandle<()>>,
}

impl Uploader {
    /// Starts uploading what `journal` holds, now and as it grows. Needs a tokio runtime.
    pub fn spawn(
        journal: Arc<Journal>,
        remote: Arc<dyn Remote>,
        hooks: Arc<dyn SyncHooks>,
        config: UploaderConfig,
    ) -> Uploader {
        let stopping = Arc::new(AtomicBool::new(false));
        let syncer = tokio::spawn(sync_behind(journal.clone(), config.sync_every));
        let ctx = Arc::new(Ctx {
            journal: journal.clone(),
            remote,
            hooks,
            config,
        });
        let supervisor = tokio::spawn(supervise(ctx, stopping.clone()));
        Uploader {
            journal,
            stopping,
            supervisor: Some(supervisor),
            syncer: Some(syncer),
        }
    }

    /// The server is reachable again: retry waiting operations now.
    pub fn online(&self) {
        self.journal.wake_queued();
    }

    pub fn stats(&self) -> QueueStats {
        self.journal.stats()
    }

    /// Waits until every pending operation is done, except those in the error state (and
    /// those waiting behind them), which the returned snapshot lists. `progress` gets a
    /// snapshot at every change and at least once a second.
    pub async fn drain(&self, progress: impl Fn(QueueStats)) -> QueueStats {
        let changed = self.journal.changed();
        loop {
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let stats = self.journal.stats();
            if self.journal.drained() {
                return stats;
            }
            progress(stats);
            let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
        }
    }

    /// Stops the tasks and waits for them; operations cut off stay journaled, and synced.
    pub async fn shutdown(mut self) {
        self.stopping.store(true, Ordering::Release);
        for task in [self.supervisor.take(), self.syncer.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
            let _ = task.await;
        }
        let journal = self.journal.clone();
        match tokio::task::spawn_blocking(move || journal.sync()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("could not sync the upload journal: {e}"),
            Err(e) => tracing::error!("could not sync the upload journal: {e}"),
        }
    }
}

/// Syncs what was journaled without fsync every `every` (see [`UploaderConfig::sync_every`]).
async fn sync_behind(journal: Arc<Journal>, every: Duration) {
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(10)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if !journal.needs_sync() {
            continue;
        }
        let j = journal.clone();
        match tokio::task::spawn_blocking(move || j.sync()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("background sync of the upload journal failed: {e}"),
            Err(e) => tracing::warn!("background sync of the upload journal failed: {e}"),
        }
    }
}

impl Drop for Uploader {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        for task in [self.supervisor.take(), self.syncer.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
    }
}

async fn supervise(ctx: Arc<Ctx>, stopping: Arc<AtomicBool>) {
    let changed = ctx.journal.changed();
    // Aborted with the supervisor: dropping a JoinSet aborts its tasks.
    let mut workers: JoinSet<i64> = JoinSet::new();
    let mut running: HashMap<tokio::task::Id, i64> = HashMap::new();
    let mut burst_since = None;
    while !stopping.load(Ordering::Acquire) {
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let room = ctx.config.concurrency.max(1).saturating_sub(workers.len());
        let hold = write_back_hold(
            super::journal::now_ms(),
            ctx.journal.last_save_ms(),
            &mut burst_since,
            &ctx.config,
        );
        let (claimed, next_wake_ms) = match hold {
            Some(until) => (Vec::new(), Some(until)),
            None => ctx.journal.claim_ready(room),
        };
        for op in claimed {
            let seq = op.seq;
            let ctx = ctx.clone();
            let handle = workers.spawn(async move {
                tracing::debug!(
                    seq,
                    "{} of {} started",
                    op.kind.label(),
                    op.kind.main_path()
                );
                let result = run(&ctx, &op).await;
                if result.is_ok() {
                    tracing::debug!(seq, "{} of {} done", op.kind.label(), op.kind.main_path());
                }
                settle(&ctx, &op, result).await;
                seq
            });
            running.insert(handle.id(), seq);
        }
        let sleep = next_wake_ms.map(|at| {
            let wait = (at - super::journal::now_ms()).max(0) as u64;
            Duration::from_millis(wait)
        });
        tokio::select! {
            _ = &mut notified => {}
            Some(done) = workers.join_next_with_id(), if !workers.is_empty() => {
                let id = match &done { Ok((id, _)) => *id, Err(e) => e.id() };
                if let Some(seq) = running.remove(&id)
                    && done.is_err()
                {
                    // The task panicked: the operation is pending again.
                    tracing::error!("upload task for operation {seq} failed; will retry");
                    ctx.journal.release(seq);
                }
            }
            _ = tokio::time::sleep(sleep.unwrap_or(Duration::from_secs(3600))), if sleep.is_some() => {}
        }
    }
}

/// See [`UploaderConfig::write_back`]: `Some(when to look again)` while uploads wait for a
/// burst of saves to pause, `None` to go ahead. `burst_since` (Unix ms) is the uploader's
/// memory of when the current burst began.
fn write_back_hold(
    now_ms: i64,
    last_save_ms: i64,
    burst_since: &mut Option<i64>,
    cfg: &UploaderConfig,
) -> Option<i64> {
    let quiet = as_ms(cfg.write_back);
    if quiet <= 0 || now_ms - last_save_ms >= quiet {
        *burst_since = None;
        return None;
    }
    let since = *burst_since.get_or_insert(now_ms);
    let cap = since.saturating_add(quiet.saturating_mul(WRITE_BACK_CAP));
    (now_ms < cap).then(|| (last_save_ms + quiet).min(cap))
}

/// Records the outcome of one run in the journal.
async fn settle(ctx: &Arc<Ctx>, op: &super::Op, result: Result<(), Failure>) {
    let seq = op.seq;
    let cfg = &ctx.config;
    let (delay_ms, reason, error) = match result {
        Ok(()) => {
            let journal = ctx.journal.clone();
            let done = tokio::task::spawn_blocking(move || journal.complete(seq)).await;
            if let Ok(Err(e)) | Err(e) = done.map_err(|e| super::SyncError::Invalid(e.to_string()))
            {
                // The change is on the server; the row stays, and the next run sees the
                // server already has it.
                tracing::error!("could not record the end of operation {seq}: {e}");
                ctx.journal.release(seq);
            }
            return;
        }
        Err(Failure::Offline(reason)) => (
            as_ms(delay(op.attempts, cfg.retry_base, cfg.offline_max)),
            reason,
            false,
        ),
        Err(Failure::Transient(reason)) => {
            let error = op.attempts + 1 >= cfg.errors_after;
            let wait = if error {
                cfg.error_backoff
            } else {
                cfg.retry_max
            };
            (
                as_ms(delay(op.attempts, cfg.retry_base, wait)),
                reason,
                error,
            )
        }
        Err(Failure::Refused(reason)) => (
            as_ms(delay(0, cfg.error_backoff, cfg.error_backoff)),
            reason,
            true,
        ),
    };
    let path = op.kind.main_path().clone();
    tracing::debug!(
        "{} of {path} deferred {delay_ms} ms: {reason}",
        op.kind.label()
    );
    let journal = ctx.journal.clone();
    let r = reason.clone();
    let saved = tokio::task::spawn_blocking(move || journal.defer(seq, delay_ms, &r, error)).await;
    if !matches!(saved, Ok(Ok(_))) {
        tracing::error!("could not record the failure of operation {seq}");
        ctx.journal.release(seq);
    }
    if error {
        ctx.hooks.error(&path, &reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_wait_for_a_burst_to_pause_but_never_past_the_cap() {
        let cfg = UploaderConfig::default();
        let mut since = None;
        // No save yet, or the last one a while ago: go.
        assert_eq!(write_back_hold(10_000, 0, &mut since, &cfg), None);
        assert_eq!(write_back_hold(10_000, 8_000, &mut since, &cfg), None);
        // A burst: wait for a second of quiet after the last save...
        assert_eq!(
            write_back_hold(10_000, 9_800, &mut since, &cfg),
            Some(10_800)
        );
        assert_eq!(
            write_back_hold(12_000, 11_900, &mut since, &cfg),
            Some(12_900)
        );
        // ...but no longer than 5 s after the burst began, however it goes on.
        assert_eq!(
            write_back_hold(14_900, 14_800, &mut since, &cfg),
            Some(15_000)
        );
        assert_eq!(write_back_hold(15_000, 14_950, &mut since, &cfg), None);
        assert_eq!(write_back_hold(16_000, 15_950, &mut since, &cfg), None);
        // Quiet again: the next burst waits afresh.
        assert_eq!(write_back_hold(18_000, 15_950, &mut since, &cfg), None);
        assert_eq!(
            write_back_hold(20_000, 19_900, &mut since, &cfg),
            Some(20_900)
        );
        let off = UploaderConfig {
            write_back: Duration::ZERO,
            ..UploaderConfig::default()
        };
        assert_eq!(write_back_hold(20_000, 19_999, &mut None, &off), None);
    }
}
