//! Namespace changes of the write path: create, mkdir, unlink, rmdir, rename and setattr.
//! Each is applied to the index at once (with the local-state overlay) and journaled for the
//! uploader; desktop junk names stay local.

use super::api::*;
use super::core::{CellsFs, lock};
use super::junk::is_desktop_junk;
use super::write::{WriteSetup, sync_error, unix_secs};
use crate::client::{NodeKind, Remote};
use crate::meta::{InodeRecord, LocalState, NewLocal};
use crate::names::{RemotePath, validate_name};
use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// File-type bits of a mode, and the regular-file type.
const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;

fn child_name(name: &OsStr) -> FsResult<String> {
    let name = name
        .to_str()
        .ok_or_else(|| FsError::InvalidName("names must be UTF-8".into()))?;
    if name.len() > crate::names::MAX_NAME_BYTES {
        return Err(FsError::NameTooLong);
    }
    validate_name(name).map_err(|e| FsError::InvalidName(e.to_string()))?;
    Ok(name.to_owned())
}

impl<R: Remote> CellsFs<R> {
    /// Turns on the write path: versions go to `journal`, open files are staged under
    /// `state_dir/open`, junk files kept in `state_dir/junk`.
    pub fn enable_writes(
        &self,
        journal: Arc<crate::sync::Journal>,
        state_dir: &Path,
    ) -> FsResult<()> {
        let open_dir = state_dir.join("open");
        let junk_dir = state_dir.join("junk");
        for dir in [&open_dir, &junk_dir] {
            std::fs::create_dir_all(dir).map_err(super::write::io_error)?;
        }
        // Moves and deletes first: a recovered edit below is journaled under the file's
        // name as the journal left it.
        self.replay_journaled_moves(&journal)?;
        // Staging files of a previous run were never handed over (a crash before close):
        // their edits are journaled now rather than lost.
        let recovered = self.recover_open_files(&journal, &open_dir)?;
        if recovered > 0 {
            tracing::warn!("{recovered} unsaved edit(s) recovered after a crash");
        }
        self.restore_pending_versions(&journal);
        let setup = WriteSetup {
            journal,
            open_dir,
            junk_dir,
        };
        self.write_setup
            .set(setup)
            .map_err(|_| FsError::Invalid("writes are already enabled".into()))
    }

    /// The folder `parent`, listed, and allowed to receive a new child.
    async fn writable_dir(&self, parent: Ino) -> FsResult<Arc<InodeRecord>> {
        let dir = self.record(parent).await?;
        self.accepts_children(&dir)?;
        self.ensure_listed(&dir).await?;
        Ok(dir)
    }

    /// Whether `dir` may receive a new child, its listing aside.
    fn accepts_children(&self, dir: &InodeRecord) -> FsResult<()> {
        self.setup()?;
        if !dir.is_dir() {
            return Err(FsError::NotDir);
        }
        if dir.ino == ROOT_INO && self.cfg.workspace.is_none() {
            return Err(FsError::NotPermitted(
                "workspaces cannot be created here".into(),
            ));
        }
        if dir.read_only {
            return Err(FsError::Denied("the server allows reading only".into()));
        }
        Ok(())
    }

    /// The child `name` of `parent`, by a point read (no task needed).
    fn child_of(&self, parent: Ino, name: &str) -> FsResult<Option<Arc<InodeRecord>>> {
        self.meta_point_read(|m| m.child(parent, name))
    }

    /// The index row of a new local file or folder `name` in `dir` (desktop junk stays local).
    fn new_local(dir: &InodeRecord, name: &str, kind: NodeKind) -> NewLocal {
        let junk = is_desktop_junk(name) || dir.local == Some(LocalState::Junk);
        NewLocal {
            name: name.to_owned(),
            kind,
            mtime: unix_secs(std::time::SystemTime::now()),
            state: if junk {
                LocalState::Junk
            } else {
                LocalState::Pending
            },
        }
    }

    async fn insert_local(&self, dir: &InodeRecord, name: &str, kind: NodeKind) -> FsResult<Ino> {
        let node = Self::new_local(dir, name, kind);
        let parent = dir.ino;
        let (ino, _) = self.meta(move |m| m.insert_local(parent, &node)).await?;
        Ok(ino)
    }

    pub(super) async fn do_create(
        &self,
        parent: Ino,
        name: &OsStr,
        flags: i32,
    ) -> FsResult<(Entry, OpenReply)> {
        let name = child_name(name)?;
        let dir = self.writable_dir(parent).await?;
        if let Some(existing) = self.child_of(parent, &name)? {
            return self.create_existing(&existing, flags).await;
        }
        let node = Self::new_local(&dir, &name, NodeKind::File);
        let (rec, w) = match self.create_local_file(&dir, node).await {
            Ok(made) => made,
            Err(e) => {
                // The change feed or a listing may have brought the name in since the check
                // above (the index refuses a second row of one name): the file exists now.
                if let Some(existing) = self.child_of(parent, &name)? {
                    return self.create_existing(&existing, flags).await;
                }
                return Err(e);
            }
        };
        let opened = self.register_local_handle(rec.ino, &rec, Some(w));
        Ok((self.entry_of(&rec), opened))
    }

    /// [`Self::do_create`] on the caller's thread when the index and local disk answer it:
    /// the folder's listing is current and the name free. `None`
    /// otherwise (the async way then lists, opens an existing file, or reports the error).
    pub(super) fn do_create_now(
        &self,
        parent: Ino,
        name: &OsStr,
    ) -> Option<FsResult<(Entry, OpenReply)>> {
        let name = match child_name(name) {
            Ok(name) => name,
            Err(e) => return Some(Err(e)),
        };
        let dir = self.record_now(parent).ok()?;
        let writable = self.accepts_children(&dir).is_ok() && self.listing_current(&dir);
        if !writable || !matches!(self.child_of(parent, &name), Ok(None)) {
            return None;
        }
        let node = Self::new_local(&dir, &name, NodeKind::File);
        let (rec, w) = self.create_local_file_now(&dir, node).ok()?;
        let opened = self.register_local_handle(rec.ino, &rec, Some(w));
        Some(Ok((self.entry_of(&rec), opened)))
    }

    /// `create` of a name that exists: `O_EXCL` refuses, otherwise the file is opened.
    async fn create_existing(
        &self,
        existing: &InodeRecord,
        flags: i32,
    ) -> FsResult<(Entry, OpenReply)> {
        if flags & libc::O_EXCL != 0 {
            return Err(FsError::Exists);
        }
        if existing.is_dir() {
            return Err(FsError::IsDir);
        }
        let opened = self.do_open(existing.ino, flags).await?;
        Ok((self.entry_of(existing), opened))
    }

    pub(super) async fn do_mknod(&self, parent: Ino, name: &OsStr, mode: u32) -> FsResult<Entry> {
        if mode & S_IFMT != S_IFREG && mode & S_IFMT != 0 {
            return Err(FsError::Unsupported);
        }
        let (entry, opened) = self
            .do_create(parent, name, libc::O_EXCL | libc::O_WRONLY)
            .await?;
        self.do_release(opened.fh).await;
        Ok(entry)
    }

    pub(super) async fn do_mkdir(&self, parent: Ino, name: &OsStr) -> FsResult<Entry> {
        let name = child_name(name)?;
        let dir = self.writable_dir(parent).await?;
        if self.child_of(parent, &name)?.is_some() {
            return Err(FsError::Exists);
        }
        let ino = self.insert_local(&dir, &name, NodeKind::Folder).await?;
        let rec = self.record(ino).await?;
        if rec.local != Some(LocalState::Junk) {
            let journal = self.setup()?.journal.clone();
            let path = rec.path.clone();
            let queued = tokio::task::spawn_blocking(move || journal.enqueue_mkdir(&path))
                .await
                .map_err(super::errors::from_join_error)?;
            if let Err(e) = queued {
                let _ = self.meta(move |m| m.delete_local(ino, &[])).await;
                return Err(sync_error(e));
            }
        }
        Ok(self.entry_of(&rec))
    }

    /// Journals the removal of `rec`; returns the journal operation (none for desktop junk,
    /// which never leaves).
    async fn journal_delete(&self, rec: &InodeRecord) -> FsResult<Option<i64>> {
        if rec.local == Some(LocalState::Junk) {
            return Ok(None);
        }
        let journal = self.setup()?.journal.clone();
        let (path, base) = (rec.path.clone(), rec.version.clone());
        let seq = tokio::task::spawn_blocking(move || journal.enqueue_delete(&path, base))
            .await
            .map_err(super::errors::from_join_error)?
            .map_err(sync_error)?;
        Ok(Some(seq))
    }

    /// Removes `rec` from the index, applying the journal operation `journaled` (if any).
    /// The name is tombstoned until that operation is done: else the server's state in
    /// between (say, a file moved there and about to be moved on) would show through.
    async fn remove_local(&self, rec: &InodeRecord, journaled: Option<i64>) -> FsResult<()> {
        let ino = rec.ino;
        let seqs: Vec<i64> = journaled.into_iter().collect();
        let changes = self.meta(move |m| m.delete_local(ino, &seqs)).await?;
        if rec.local == Some(LocalState::Junk) && !rec.is_dir() {
            let path = self.setup()?.junk_dir.join(ino.to_string());
            if !lock(&self.writes).contains_key(&ino) {
                let _ = std::fs::remove_file(path);
            }
        }
        drop(changes);
        Ok(())
    }

    pub(super) async fn do_unlink(&self, parent: Ino, name: &OsStr) -> FsResult<()> {
        self.setup()?;
        self.settle_handovers().await;
        let name = name.to_str().ok_or(FsError::NotFound)?;
        let rec = self.child_of(parent, name)?.ok_or(FsError::NotFound)?;
        if rec.is_dir() {
            return Err(FsError::IsDir);
        }
        if rec.read_only {
            return Err(FsError::Denied("the server allows reading only".into()));
        }
        let journaled = self.journal_delete(&rec).await?;
        self.remove_local(&rec, journaled).await
    }

    pub(super) async fn do_rmdir(&self, parent: Ino, name: &OsStr) -> FsResult<()> {
        self.setup()?;
        self.settle_handovers().await;
        let name = name.to_str().ok_or(FsError::NotFound)?;
        let rec = self.child_of(parent, name)?.ok_or(FsError::NotFound)?;
        if !rec.is_dir() {
            return Err(FsError::NotDir);
        }
        if rec.local != Some(LocalState::Junk) {
            self.ensure_listed(&rec).await?;
        }
        let ino = rec.ino;
        if !self.meta(move |m| m.child_inos(ino)).await?.is_empty() {
            return Err(FsError::NotEmpty);
        }
        let journaled = self.journal_delete(&rec).await?;
        self.remove_local(&rec, journaled).await
    }

    pub(super) async fn do_rename(
        &self,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> FsResult<()> {
        if flags.exchange {
            return Err(FsError::Unsupported);
        }
        // Closed saves still being handed over go first: the journal gets the content, then
        // the move, in the order the user made them (and the records read below are current).
        self.settle_handovers().await;
        let new_name = child_name(new_name)?;
        let dir = self.writable_dir(new_parent).await?;
        let name = name.to_str().ok_or(FsError::NotFound)?;
        let src = self.child_of(parent, name)?.ok_or(FsError::NotFound)?;
        if src.is_dir() && (dir.path == src.path || dir.path.starts_with(&src.path)) {
            return Err(FsError::Invalid("cannot move a folder into itself".into()));
        }
        let target = self.child_of(new_parent, &new_name)?;
        if let Some(t) = &target {
            if t.ino == src.ino {
                return Ok(());
            }
            if flags.no_replace {
                return Err(FsError::Exists);
            }
            match (src.is_dir(), t.is_dir()) {
                (true, false) => return Err(FsError::NotDir),
                (false, true) => return Err(FsError::IsDir),
                (true, true) => {
                    let ino = t.ino;
                    if !self.meta(move |m| m.child_inos(ino)).await?.is_empty() {
                        return Err(FsError::NotEmpty);
                    }
                }
                (false, false) => {}
            }
        }
        let src_junk = src.local == Some(LocalState::Junk);
        let dst_junk = is_desktop_junk(&new_name) || dir.local == Some(LocalState::Junk);
        if src_junk != dst_junk {
            // A local-only file would have to become a synced one or the reverse.
            return Err(FsError::Unsupported);
        }
        let to = dir
            .path
            .join(&new_name)
            .map_err(|e| FsError::InvalidName(e.to_string()))?;
        let journaled = if src_junk {
            Vec::new()
        } else {
            self.journal_move(&src, target.as_deref(), &to).await?
        };
        let (ino, np, nn) = (src.ino, new_parent, new_name.clone());
        let changes = self
            .meta(move |m| m.rename_local(ino, np, &nn, &journaled))
            .await?;
        drop(changes);
        Ok(())
    }

    /// Journals a move of `src` to `to`, replacing `target`: the replaced node is deleted
    /// first (with the version the user saw, so a newer server version is kept), then moved.
    /// Returns the journal operations, in order.
    async fn journal_move(
        &self,
        src: &InodeRecord,
        target: Option<&InodeRecord>,
        to: &RemotePath,
    ) -> FsResult<Vec<i64>> {
        let mut seqs = Vec::new();
        if let Some(t) = target {
            seqs.extend(self.journal_delete(t).await?);
        }
        let journal = self.setup()?.journal.clone();
        let (from, to) = (src.path.clone(), to.clone());
        let seq = tokio::task::spawn_blocking(move || journal.enqueue_rename(&from, &to))
            .await
            .map_err(super::errors::from_join_error)?
            .map_err(sync_error)?;
        seqs.push(seq);
        Ok(seqs)
    }

    pub(super) async fn do_setattr(&self, ino: Ino, attr: SetAttr) -> FsResult<Entry> {
        let rec = self.record(ino).await?;
        if attr.uid.is_some_and(|u| u != self.cfg.uid)
            || attr.gid.is_some_and(|g| g != self.cfg.gid)
        {
            return Err(FsError::NotPermitted(
                "files on Cells have no owner to change".into(),
            ));
        }
        if let Some(size) = attr.size {
            self.setup()?;
            if rec.is_dir() {
                return Err(FsError::IsDir);
            }
            if rec.read_only {
                return Err(FsError::Denied("the server allows reading only".into()));
            }
            let open = lock(&self.writes).get(&ino).cloned();
            match open {
                Some(w) => self.truncate_to(&w, size).await?,
                None => {
                    let w = self.attach_write(&rec, size == 0).await?;
                    let done = self.truncate_to(&w, size).await;
                    self.detach_write(&w).await;
                    done?;
                }
            }
        }
        if let Some(mtime) = attr.mtime {
            let secs = unix_secs(mtime);
            let open = lock(&self.writes).get(&ino).cloned();
            if let Some(w) = open {
                w.mtime.store(secs, Ordering::Release);
            }
            self.meta(move |m| m.set_mtime(ino, secs)).await?;
        }
        // Modes are not stored by Cells: chmod succeeds and changes nothing, as on FAT or SMB.
        let rec = self.record(ino).await?;
        Ok(self.entry_of(&rec))
    }

    pub(super) async fn do_write(
        &self,
        ino: Ino,
        fh: Fh,
        offset: u64,
        data: &[u8],
    ) -> FsResult<u32> {
        let file = lock(&self.files)
            .get(&fh)
            .cloned()
            .ok_or(FsError::BadHandle)?;
        match &file.write {
            Some(w) if file.ino == ino => self.write_to(w, offset, data).await,
            _ => Err(FsError::BadHandle),
        }
    }

    /// [`Self::do_write`] at once, when the handle's staging file is ready (see `write_to_now`).
    pub(super) fn do_write_now(
        &self,
        ino: Ino,
        fh: Fh,
        offset: u64,
        data: &[u8],
    ) -> Option<FsResult<u32>> {
        let file = lock(&self.files).get(&fh).cloned()?;
        match &file.write {
            Some(w) if file.ino == ino => self.write_to_now(w, offset, data),
            _ => None,
        }
    }

    /// [`Self::do_sync`] of a flush, which never waits: it only starts the hand-over.
    pub(super) fn do_flush_now(&self, ino: Ino, fh: Fh) -> Option<FsResult<()>> {
        let file = lock(&self.files).get(&fh).cloned()?;
        match &file.write {
            Some(w) if file.ino == ino && !w.junk => Some(self.flush_behind(w)),
            Some(_) => None,
            None => Some(Ok(())),
        }
    }

    /// flush (`durable = false`) and fsync (`true`): the handle's content goes to the journal
    /// when it changed (in the background for flush: see `flush_behind`); fsync waits for it
    /// and also makes what is journaled survive a power loss.
    pub(super) async fn do_sync(&self, ino: Ino, fh: Fh, durable: bool) -> FsResult<()> {
        let file = lock(&self.files)
            .get(&fh)
            .cloned()
            .ok_or(FsError::BadHandle)?;
        match &file.write {
            Some(w) if file.ino == ino && !durable && !w.junk => self.flush_behind(w),
            Some(w) if file.ino == ino => self.commit(w, true).await,
            _ => Ok(()),
        }
    }
}
