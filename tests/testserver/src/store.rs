//! Tree mutations shared by REST, jobs and the S3 gateway: atomic file commits, folder
//! creation, delete (to `recycle_bin` or permanent), move and copy. Each keeps disk and index
//! in step under the tree lock and emits the change events.

use std::path::{Path, PathBuf};

use crate::error::{ApiError, ApiResult, Kind};
use crate::index::{Entry, mtime_of};
use crate::state::{AppState, Located, RECYCLE, lock};

/// The result of streaming an upload into a temp file.
pub struct Staged {
    pub temp: PathBuf,
    pub size: u64,
    pub etag: String,
    pub hash: String,
}

impl AppState {
    /// A fresh temp file path inside the server's private folder (same filesystem as the data,
    /// so the final rename is atomic).
    pub fn temp_path(&self) -> PathBuf {
        self.work_dir
            .join("tmp")
            .join(uuid::Uuid::new_v4().to_string())
    }

    fn disk(&self, storage: &str) -> PathBuf {
        self.data_dir.join(storage)
    }

    /// Creates `loc` as a folder, with missing ancestors. Existing folders are fine.
    fn ensure_dir_locked(&self, loc: &Located) -> ApiResult<Entry> {
        if let Some(e) = self.lookup(loc)? {
            if e.is_dir {
                return Ok(e);
            }
            return Err(ApiError::new(
                Kind::Conflict,
                format!("{} exists and is a file", loc.cells_path()),
            ));
        }
        let Some(parent) = loc.parent() else {
            // A workspace root vanished from the index: recreate it.
            std::fs::create_dir_all(self.disk(&loc.storage()))?;
            return self.index_dir(loc);
        };
        self.ensure_dir_locked(&parent)?;
        std::fs::create_dir(self.disk(&loc.storage()))?;
        let e = self.index_dir(loc)?;
        self.emit(&loc.ws.root, None, None, Some(self.node_json(loc, &e)));
        Ok(e)
    }

    fn index_dir(&self, loc: &Located) -> ApiResult<Entry> {
        let storage = loc.storage();
        let e = Entry {
            is_dir: true,
            uuid: uuid::Uuid::new_v4().to_string(),
            etag: String::new(),
            hash: String::new(),
            size: 0,
            mtime: mtime_of(&self.disk(&storage)),
            path: storage,
        };
        lock(&self.index).upsert(&e)?;
        Ok(e)
    }

    pub async fn mkdir(&self, loc: &Located) -> ApiResult<Entry> {
        let _g = self.tree_lock.lock().await;
        self.check_lock(loc, false)?;
        self.ensure_dir_locked(loc)
    }

    /// Moves a staged upload into place atomically and indexes it.
    pub async fn commit_file(
        &self,
        login: &str,
        loc: &Located,
        staged: Staged,
        preset_uuid: Option<String>,
    ) -> ApiResult<Entry> {
        let result = self
            .commit_file_inner(login, loc, &staged, preset_uuid)
            .await;
        if result.is_err() {
            let _ = std::fs::remove_file(&staged.temp);
        }
        result
    }

    async fn commit_file_inner(
        &self,
        login: &str,
        loc: &Located,
        staged: &Staged,
        preset_uuid: Option<String>,
    ) -> ApiResult<Entry> {
        let _g = self.tree_lock.lock().await;
        let parent = loc
            .parent()
            .ok_or_else(|| ApiError::bad("cannot write a workspace root"))?;
        self.check_lock(loc, false)?;
        let old = self.lookup(loc)?;
        if old.as_ref().is_some_and(|o| o.is_dir) {
            return Err(ApiError::new(Kind::Conflict, "a folder has this name"));
        }
        let old_size = old.as_ref().map(|o| o.size).unwrap_or(0);
        self.check_quota(login, loc, staged.size.saturating_sub(old_size))?;
        self.ensure_dir_locked(&parent)?;
        let storage = loc.storage();
        let dest = self.disk(&storage);
        std::fs::rename(&staged.temp, &dest)?;
        let uuid = old
            .as_ref()
            .map(|o| o.uuid.clone())
            .or(preset_uuid.filter(|u| uuid::Uuid::parse_str(u).is_ok()))
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let e = Entry {
            path: storage,
            is_dir: false,
            uuid,
            etag: staged.etag.clone(),
            hash: staged.hash.clone(),
            size: staged.size,
            mtime: mtime_of(&dest),
        };
        lock(&self.index).upsert(&e)?;
        let kind = old.is_some().then_some("UPDATE_CONTENT");
        self.emit(&loc.ws.root, kind, None, Some(self.node_json(loc, &e)));
        Ok(e)
    }

    /// Deletes `loc`: into the workspace `recycle_bin` unless `permanently` or already there.
    pub async fn delete(&self, loc: &Located, permanently: bool) -> ApiResult<()> {
        let _g = self.tree_lock.lock().await;
        if loc.rel.is_empty() || loc.rel == RECYCLE {
            return Err(ApiError::new(Kind::Forbidden, "cannot delete this folder"));
        }
        let e = self
            .lookup(loc)?
            .ok_or_else(|| ApiError::not_found(&loc.cells_path()))?;
        self.check_lock(loc, true)?;
        let in_bin = loc.rel.starts_with(&format!("{RECYCLE}/"));
        if permanently || in_bin {
            let before = self.node_json(loc, &e);
            let disk = self.disk(&e.path);
            if e.is_dir {
                std::fs::remove_dir_all(&disk)?;
            } else {
                std::fs::remove_file(&disk)?;
            }
            lock(&self.index).remove_tree(&e.path)?;
            self.emit(&loc.ws.root, Some("DELETE"), Some(before), None);
            return Ok(());
        }
        let bin = Located {
            ws: loc.ws.clone(),
            rel: RECYCLE.to_string(),
        };
        self.ensure_dir_locked(&bin)?;
        let mut target = bin.child(loc.name());
        let mut n = 1;
        while self.lookup(&target)?.is_some() {
            target = bin.child(&format!("{}-{n}", loc.name()));
            n += 1;
        }
        self.move_locked(loc, &target)
    }

    /// Renames `src` to `dst` (full target path; `dst` must not exist, its parent must).
    pub async fn move_node(&self, src: &Located, dst: &Located) -> ApiResult<()> {
        let _g = self.tree_lock.lock().await;
        self.check_lock(src, true)?;
        self.check_lock(dst, false)?;
        self.check_target(src, dst)?;
        self.move_locked(src, dst)
    }

    fn check_target(&self, src: &Located, dst: &Located) -> ApiResult<Entry> {
        if src.rel.is_empty() || dst.rel.is_empty() {
            return Err(ApiError::new(Kind::Forbidden, "workspace roots are fixed"));
        }
        let e = self
            .lookup(src)?
            .ok_or_else(|| ApiError::not_found(&src.cells_path()))?;
        if self.lookup(dst)?.is_some() {
            return Err(ApiError::new(
                Kind::Conflict,
                format!("{} already exists", dst.cells_path()),
            ));
        }
        let (s, d) = (src.storage(), dst.storage());
        if d.starts_with(&format!("{s}/")) {
            return Err(ApiError::bad("cannot move or copy a folder into itself"));
        }
        let parent = dst.parent().ok_or_else(|| ApiError::bad("bad target"))?;
        match self.lookup(&parent)? {
            Some(p) if p.is_dir => Ok(e),
            _ => Err(ApiError::not_found(&parent.cells_path())),
        }
    }

    fn move_locked(&self, src: &Located, dst: &Located) -> ApiResult<()> {
        let e = self
            .lookup(src)?
            .ok_or_else(|| ApiError::not_found(&src.cells_path()))?;
        let before = self.node_json(src, &e);
        std::fs::rename(self.disk(&src.storage()), self.disk(&dst.storage()))?;
        lock(&self.index).rename_tree(&src.storage(), &dst.storage())?;
        let moved = self
            .lookup(dst)?
            .ok_or_else(|| ApiError::new(Kind::Internal, "moved node vanished"))?;
        let after = self.node_json(dst, &moved);
        if src.ws.root == dst.ws.root {
            self.emit(&src.ws.root, Some("UPDATE_PATH"), Some(before), Some(after));
        } else {
            // Crossing a workspace boundary shows up as a delete here and a create there.
            self.emit(&src.ws.root, Some("DELETE"), Some(before), None);
            self.emit(&dst.ws.root, None, None, Some(after));
        }
        Ok(())
    }

    /// Copies `src` (file or folder tree) to `dst`; new uuids, hashes carried over.
    pub async fn copy_node(&self, login: &str, src: &Located, dst: &Located) -> ApiResult<()> {
        let _g = self.tree_lock.lock().await;
        self.check_lock(dst, false)?;
        let e = self.check_target(src, dst)?;
        let size = if e.is_dir {
            lock(&self.index).tree_size(&e.path)?
        } else {
            e.size
        };
        self.check_quota(login, dst, size)?;
        let entries = lock(&self.index).subtree(&e.path)?;
        let (from, to) = (src.storage(), dst.storage());
        for item in entries {
            let suffix = &item.path[from.len()..];
            let target_storage = format!("{to}{suffix}");
            let target_disk = self.disk(&target_storage);
            if item.is_dir {
                std::fs::create_dir(&target_disk)?;
            } else {
                copy_file_atomically(&self.disk(&item.path), &target_disk, &self.temp_path())?;
            }
            let copied = Entry {
                path: target_storage,
                uuid: uuid::Uuid::new_v4().to_string(),
                mtime: mtime_of(&target_disk),
                ..item
            };
            lock(&self.index).upsert(&copied)?;
            let loc = Located {
                ws: dst.ws.clone(),
                rel: format!("{}{suffix}", dst.rel),
            };
            self.emit(
                &dst.ws.root,
                None,
                None,
                Some(self.node_json(&loc, &copied)),
            );
        }
        Ok(())
    }
}

fn copy_file_atomically(from: &Path, to: &Path, temp: &Path) -> std::io::Result<()> {
    std::fs::copy(from, temp)?;
    std::fs::rename(temp, to)
}
