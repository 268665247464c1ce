//! Running one journaled operation against the server, with the conflict rules: the server's
//! version always keeps its name, ours goes beside it; a delete never removes a version newer
//! than the one the user deleted; an upload that already happened (before a crash) is not
//! repeated.

use super::conflict::{conflict_name, local_now};
use super::op::{Op, OpKind};
use super::uploader::UploaderConfig;
use super::{Journal, SyncError, SyncHooks};
use crate::client::{ClientError, ContentVersion, HashKind, Node, Remote};
use crate::names::RemotePath;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why an operation did not finish, which decides how it is retried.
#[derive(Debug)]
pub enum Failure {
    /// The server cannot be reached: wait (short backoff, woken early by `online`).
    Offline(String),
    /// Worth retrying soon; becomes an error after repeated failures.
    Transient(String),
    /// The server said no (quota, lock, permission...) or something local is broken: error
    /// state at once, long backoff.
    Refused(String),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        if e.is_offline() {
            Failure::Offline(e.to_string())
        } else if e.is_transient() {
            Failure::Transient(e.to_string())
        } else {
            Failure::Refused(e.to_string())
        }
    }
}

impl From<SyncError> for Failure {
    fn from(e: SyncError) -> Self {
        Failure::Transient(format!("journal: {e}"))
    }
}

pub struct Ctx {
    pub journal: Arc<Journal>,
    pub remote: Arc<dyn Remote>,
    pub hooks: Arc<dyn SyncHooks>,
    pub config: UploaderConfig,
}

/// The content of a pending upload, for "is this the same version" checks.
struct Ours<'a> {
    cells_hash: &'a str,
    /// The plain MD5, when the journal has it; else computed from `staged` the first time a
    /// server version without a Cells hash must be compared (rare: legacy servers).
    md5: tokio::sync::OnceCell<String>,
    staged: PathBuf,
}

impl<'a> Ours<'a> {
    fn new(cells_hash: &'a str, md5: &str, staged: PathBuf) -> Self {
        let known = if md5.is_empty() {
            tokio::sync::OnceCell::new()
        } else {
            tokio::sync::OnceCell::new_with(Some(md5.to_owned()))
        };
        Self {
            cells_hash,
            md5: known,
            staged,
        }
    }

    async fn md5(&self) -> Result<&str, Failure> {
        let staged = self.staged.clone();
        let md5 = self
            .md5
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || super::staging::md5_of(&staged))
                    .await
                    .map_err(|e| Failure::Transient(format!("hashing task: {e}")))?
                    .map_err(|e| Failure::Refused(format!("cannot read the staged copy: {e}")))
            })
            .await?;
        Ok(md5)
    }

    async fn matches(&self, v: &ContentVersion) -> Result<bool, Failure> {
        Ok(match v.kind {
            HashKind::CellsHash => v.value == self.cells_hash,
            HashKind::PlainMd5 => v.value == self.md5().await?,
            HashKind::OpaqueEtag => false,
        })
    }
}

/// Runs a journal call off the async threads (it may fsync).
async fn journal_call<T: Send + 'static>(
    journal: &Arc<Journal>,
    f: impl FnOnce(&Journal) -> Result<T, SyncError> + Send + 'static,
) -> Result<T, Failure> {
    let journal = journal.clone();
    tokio::task::spawn_blocking(move || f(&journal))
        .await
        .map_err(|e| Failure::Transient(format!("journal task: {e}")))?
        .map_err(Failure::from)
}

async fn stat_opt(ctx: &Ctx, path: &RemotePath) -> Result<Option<Node>, Failure> {
    match ctx.remote.stat(path).await {
        Ok(n) => Ok(Some(n)),
        Err(ClientError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

enum Slot {
    Free(RemotePath),
    /// Our content is already there (an earlier run got that far).
    Ours(RemotePath, Node),
}

/// The first conflict name beside `path` not taken by another content.
async fn conflict_slot(
    ctx: &Ctx,
    path: &RemotePath,
    ours: Option<&Ours<'_>>,
) -> Result<Slot, Failure> {
    let parent = path.parent();
    let at = local_now();
    for number in 1..=1000 {
        let name = conflict_name(path.name(), &ctx.config.host, at, number);
        let candidate = parent
            .join(&name)
            .map_err(|e| Failure::Refused(format!("conflict name for {path}: {e}")))?;
        match stat_opt(ctx, &candidate).await? {
            None => return Ok(Slot::Free(candidate)),
            Some(node) => {
                if let (Some(ours), Some(v)) = (ours, &node.version)
                    && ours.matches(v).await?
                {
                    return Ok(Slot::Ours(candidate, node));
                }
            }
        }
    }
    Err(Failure::Refused(format!(
        "no free conflict name beside {path}"
    )))
}

pub async fn run(ctx: &Ctx, op: &Op) -> Result<(), Failure> {
    match &op.kind {
        OpKind::Upload {
            path,
            staging,
            cells_hash,
            md5,
            base,
            ..
        } => {
            let ours = Ours::new(cells_hash, md5, ctx.journal.staging_path(staging));
            upload(ctx, op, path, staging, &ours, base.as_ref()).await
        }
        OpKind::Mkdir { path } => mkdir(ctx, path).await,
        OpKind::Delete { path, base } => delete(ctx, path, base.as_ref()).await,
        OpKind::Rename { from, to } => rename(ctx, from, to).await,
    }
}

async fn upload(
    ctx: &Ctx,
    op: &Op,
    path: &RemotePath,
    staging: &str,
    ours: &Ours<'_>,
    base: Option<&ContentVersion>,
) -> Result<(), Failure> {
    // An earlier attempt may have been cut off: abort what it left on the server; if it was
    // a conflict copy and it completed, this upload is done.
    if let Some(previous) = &op.started_target {
        if let Some(cleaner) = &ctx.config.interrupted {
            cleaner.abort_interrupted(previous).await?;
        }
        if previous != path
            && let Some(node) = stat_opt(ctx, previous).await?
            && let Some(v) = &node.version
            && ours.matches(v).await?
        {
            finish_conflict(ctx, path, previous).await?;
            ctx.hooks.uploaded(previous, Some(&node));
            return Ok(());
        }
    }
    let existing = stat_opt(ctx, path).await?;
    let recreated = existing.is_none() && base.is_some();
    let conflicting = match &existing {
        // New file, or edited here while deleted there: the edit survives, re-created (and
        // the latter is recorded, so the user learns the delete was undone).
        None => false,
        Some(node) if node.is_dir() => true,
        Some(node) => match &node.version {
            Some(v) if ours.matches(v).await? => {
                // Already uploaded (by us before a crash, or the same bytes from elsewhere).
                ctx.hooks.uploaded(path, Some(node));
                return Ok(());
            }
            Some(v) => base != Some(v),
            // Indexing lags or someone is uploading: look again a few times first.
            None if op.attempts < 3 => {
                return Err(Failure::Transient(format!(
                    "the server's version of {path} is not known yet"
                )));
            }
            None => true,
        },
    };
    let target = if conflicting {
        match conflict_slot(ctx, path, Some(ours)).await? {
            Slot::Free(t) => t,
            Slot::Ours(t, node) => {
                finish_conflict(ctx, path, &t).await?;
                ctx.hooks.uploaded(&t, Some(&node));
                return Ok(());
            }
        }
    } else {
        path.clone()
    };
    let (seq, t) = (op.seq, target.clone());
    journal_call(&ctx.journal, move |j| j.mark_started(seq, &t)).await?;
    let local = ctx.journal.staging_path(staging);
    check_staged_after_restart(ctx, op, &local, ours).await?;
    let outcome = ctx.remote.upload_file(&target, &local).await?;
    if outcome.local_cells_hash != ours.cells_hash {
        return Err(Failure::Refused(format!(
            "the staged copy of {path} changed on disk since it was saved"
        )));
    }
    if let Some(v) = outcome.node.as_ref().and_then(|n| n.version.as_ref())
        && v.kind == HashKind::PlainMd5
        && v.value != ours.md5().await?
    {
        return Err(Failure::Transient(format!(
            "the server recorded a different content for {target}"
        )));
    }
    if target != *path || recreated {
        finish_conflict(ctx, path, &target).await?;
    }
    ctx.hooks.uploaded(&target, outcome.node.as_ref());
    Ok(())
}

/// A staged copy saved by an earlier run is hashed once before it is uploaded: a power loss
/// before the copy was synced can leave it torn, and a torn copy must never replace the
/// server's version. It stays in the journal, in error, for the user to see.
async fn check_staged_after_restart(
    ctx: &Ctx,
    op: &Op,
    local: &Path,
    ours: &Ours<'_>,
) -> Result<(), Failure> {
    if !ctx.journal.from_earlier_run(op.seq) {
        return Ok(());
    }
    let file = local.to_path_buf();
    let hash = tokio::task::spawn_blocking(move || crate::hash::cells_hash_file(&file))
        .await
        .map_err(|e| Failure::Transient(format!("hashing task: {e}")))?
        .map_err(|e| Failure::Refused(format!("cannot read the staged copy: {e}")))?;
    if hash != ours.cells_hash {
        return Err(Failure::Refused(
            "the saved copy was damaged before it reached the disk (power loss?); \
             it was not uploaded"
                .into(),
        ));
    }
    ctx.journal.checked_after_restart(op.seq);
    Ok(())
}

async fn finish_conflict(
    ctx: &Ctx,
    path: &RemotePath,
    saved_as: &RemotePath,
) -> Result<(), Failure> {
    let (p, s) = (path.clone(), saved_as.clone());
    journal_call(&ctx.journal, move |j| j.record_conflict(&p, Some(&s))).await?;
    tracing::warn!("conflict on {path}: the local version was saved as {saved_as}");
    ctx.hooks.conflict(path, saved_as);
    Ok(())
}

async fn mkdir(ctx: &Ctx, path: &RemotePath) -> Result<(), Failure> {
    match stat_opt(ctx, path).await? {
        Some(node) if node.is_dir() => {}
        Some(_) => {
            return Err(Failure::Refused(format!(
                "cannot create folder {path}: a file has that name on the server"
            )));
        }
        None => ctx.remote.mkdir(path).await?,
    }
    ctx.hooks.uploaded(path, None);
    Ok(())
}

async fn delete(
    ctx: &Ctx,
    path: &RemotePath,
    base: Option<&ContentVersion>,
) -> Result<(), Failure> {
    let Some(node) = stat_opt(ctx, path).await? else {
        // Never reached the server (a new file deleted before its save left), or gone.
        ctx.hooks.uploaded(path, None);
        return Ok(());
    };
    let deletable = node.is_dir() || (node.version.is_some() && node.version.as_ref() == base);
    if deletable {
        match ctx.remote.delete(path).await {
            // Gone between the stat and the delete (most likely deleted by this operation's
            // own run that a crash cut short, which the server finished only now): what the
            // operation wanted.
            Ok(()) | Err(ClientError::NotFound(_)) => {}
            Err(e @ ClientError::JobFailed(_)) => {
                if stat_opt(ctx, path).await?.is_some() {
                    return Err(e.into());
                }
            }
            Err(e) => return Err(e.into()),
        }
        ctx.hooks.uploaded(path, None);
    } else {
        let p = path.clone();
        journal_call(&ctx.journal, move |j| j.record_conflict(&p, None)).await?;
        tracing::warn!("not deleting {path}: the server has a newer version than the one deleted");
        ctx.hooks.kept_remote(path);
    }
    Ok(())
}

async fn rename(ctx: &Ctx, from: &RemotePath, to: &RemotePath) -> Result<(), Failure> {
    if stat_opt(ctx, from).await?.is_none() {
        if stat_opt(ctx, to).await?.is_none() {
            // Gone on the server: nothing to move; later operations on `to` recreate content.
            tracing::warn!("cannot move {from} to {to}: {from} no longer exists on the server");
        }
        return Ok(());
    }
    let dest = match stat_opt(ctx, to).await? {
        None => to.clone(),
        Some(_) => match conflict_slot(ctx, to, None).await? {
            Slot::Free(t) | Slot::Ours(t, _) => t,
        },
    };
    match ctx.remote.rename(from, &dest).await {
        Ok(()) => {}
        Err(e @ (ClientError::NotFound(_) | ClientError::JobFailed(_))) => {
            if stat_opt(ctx, from).await?.is_none() {
                // Moved between the stat and the move: most likely by this operation's own
                // run that a crash cut short, whose request the server finished only now.
                tracing::debug!("{from} was moved meanwhile; nothing left to move: {e}");
                ctx.hooks.uploaded(to, None);
                return Ok(());
            }
            if !matches!(e, ClientError::NotFound(_)) {
                return Err(e.into());
            }
            // The target folder is missing on the server (removed there): recreate it.
            ctx.remote.mkdir(&dest.parent()).await?;
            ctx.remote.rename(from, &dest).await?;
        }
        Err(e) => return Err(e.into()),
    }
    if dest != *to {
        finish_conflict(ctx, to, &dest).await?;
    }
    ctx.hooks.uploaded(&dest, None);
    Ok(())
}

#[cfg(test)]
#[path = "execute_tests.rs"]
mod tests;
