//! The WinFsp `FileSystemContext` over the core: each request runs as a task on the tokio
//! runtime and the WinFsp dispatcher thread waits for it. A core task that panics or is
//! dropped ends as a join error, answered STATUS_UNEXPECTED_IO_ERROR: like the FUSE reply
//! guard, every request gets exactly one answer.

use super::paths::{Resolved, dir_names, resolve, resolve_parent};
use crate::fs::{
    Attr, Caller, Entry, Fh, FileKind, FileSystem, FsError, Ino, RenameFlags, SetAttr,
};
use crate::platform::winmap::{file_attributes, filetime, ntstatus, status, system_time};
use std::ffi::{OsStr, c_void};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use winfsp::filesystem::{
    DirBuffer, DirInfo, DirMarker, FileInfo, FileSecurity, FileSystemContext, OpenFileInfo,
    VolumeInfo, WideNameInfo,
};
use winfsp::{FspError, U16CStr};

const FILE_DIRECTORY_FILE: u32 = 0x0000_0001;
const FILE_WRITE_DATA: u32 = 0x0000_0002;
const FILE_APPEND_DATA: u32 = 0x0000_0004;
const CLEANUP_DELETE: u32 = 0x01;

/// Runs `task` on the runtime and waits for it from a WinFsp dispatcher thread.
pub(super) fn run<T: Send + 'static>(
    rt: &tokio::runtime::Handle,
    task: impl Future<Output = Result<T, FsError>> + Send + 'static,
) -> Result<T, FsError> {
    match rt.block_on(rt.spawn(task)) {
        Ok(result) => result,
        Err(join) => {
            tracing::error!("WinFsp request ended without an answer: {join}");
            Err(FsError::Io("internal error".into()))
        }
    }
}

fn fail(err: FsError) -> FspError {
    if matches!(err, FsError::NotFound | FsError::Exists) {
        tracing::debug!("{err}");
    } else {
        tracing::warn!("{err}");
    }
    FspError::NTSTATUS(ntstatus(&err))
}

fn name_of(path: &U16CStr) -> winfsp::Result<String> {
    path.to_string()
        .map_err(|_| FspError::NTSTATUS(status::OBJECT_NAME_INVALID))
}

/// One open file or folder.
pub struct OpenNode {
    ino: Ino,
    kind: FileKind,
    fh: Fh,
    /// Parent and names, updated by renames (deletes happen at cleanup, by name).
    place: Mutex<Resolved>,
    delete_pending: AtomicBool,
    dir_buffer: DirBuffer,
}

/// The WinFsp file system over a core `F`.
pub struct CellsWinFs<F: FileSystem> {
    fs: Arc<F>,
    rt: tokio::runtime::Handle,
    volume_label: String,
    /// Self-relative security descriptor every node gets (see `mount::security_descriptor`).
    security: Vec<u8>,
}

impl<F: FileSystem> CellsWinFs<F> {
    pub fn new(
        fs: Arc<F>,
        rt: tokio::runtime::Handle,
        volume_label: String,
        security: Vec<u8>,
    ) -> Self {
        Self {
            fs,
            rt,
            volume_label,
            security,
        }
    }

    fn call<T: Send + 'static, Fut>(&self, task: impl FnOnce(Arc<F>) -> Fut) -> winfsp::Result<T>
    where
        Fut: Future<Output = Result<T, FsError>> + Send + 'static,
    {
        run(&self.rt, task(self.fs.clone())).map_err(fail)
    }

    fn fill(&self, info: &mut FileInfo, attr: &Attr, win_name: &str) {
        info.file_attributes = file_attributes(attr, win_name);
        info.file_size = attr.size;
        info.allocation_size = attr.size.div_ceil(4096) * 4096;
        info.creation_time = filetime(attr.ctime);
        info.last_access_time = filetime(attr.mtime);
        info.last_write_time = filetime(attr.mtime);
        info.change_time = filetime(attr.ctime);
        info.index_number = attr.ino;
        info.hard_links = 0;
        info.reparse_tag = 0;
        info.ea_size = 0;
    }

    fn refresh(&self, node: &OpenNode, info: &mut FileInfo) -> winfsp::Result<()> {
        let ino = node.ino;
        let entry = self.call(move |fs| async move { fs.getattr(ino).await })?;
        let win = self.place(node).win_name;
        self.fill(info, &entry.attr, &win);
        Ok(())
    }

    fn place(&self, node: &OpenNode) -> Resolved {
        node.place.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn opened(&self, place: Resolved, entry: &Entry, fh: Fh, info: &mut FileInfo) -> OpenNode {
        self.fill(info, &entry.attr, &place.win_name);
        OpenNode {
            ino: entry.attr.ino,
            kind: entry.attr.kind,
            fh,
            place: Mutex::new(place),
            delete_pending: AtomicBool::new(false),
            dir_buffer: DirBuffer::new(),
        }
    }

    fn open_handle(&self, ino: Ino, kind: FileKind, writing: bool) -> winfsp::Result<Fh> {
        let flags = if writing { libc_rdwr() } else { 0 };
        self.call(move |fs| async move {
            match kind {
                FileKind::Dir => fs.opendir(ino).await,
                FileKind::File => Ok(fs.open(ino, flags, Caller::default()).await?.fh),
            }
        })
    }

    fn set_attr(&self, node: &OpenNode, attr: SetAttr, info: &mut FileInfo) -> winfsp::Result<()> {
        let ino = node.ino;
        let entry = self.call(move |fs| async move { fs.setattr(ino, attr).await })?;
        let win = self.place(node).win_name;
        self.fill(info, &entry.attr, &win);
        Ok(())
    }
}

/// `O_RDWR` (2 on every platform the core runs on; the core reads open(2) flags).
fn libc_rdwr() -> i32 {
    2
}

impl<F: FileSystem> FileSystemContext for CellsWinFs<F> {
    type FileContext = OpenNode;

    fn get_security_by_name(
        &self,
        file_name: &U16CStr,
        security_descriptor: Option<&mut [c_void]>,
        _reparse_point_resolver: impl FnOnce(&U16CStr) -> Option<FileSecurity>,
    ) -> winfsp::Result<FileSecurity> {
        let path = name_of(file_name)?;
        let node = resolve(&self.fs, &self.rt, &path).map_err(fail)?;
        let ino = node.ino;
        let entry = self.call(move |fs| async move { fs.getattr(ino).await })?;
        if let Some(buffer) = security_descriptor
            && buffer.len() >= self.security.len()
        {
            // SAFETY: `buffer` is at least as long as the descriptor, and both are plain bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    self.security.as_ptr(),
                    buffer.as_mut_ptr().cast::<u8>(),
                    self.security.len(),
                );
            }
        }
        Ok(FileSecurity {
            reparse: false,
            sz_security_descriptor: self.security.len() as u64,
            attributes: file_attributes(&entry.attr, &node.win_name),
        })
    }

    fn open(
        &self,
        file_name: &U16CStr,
        _create_options: u32,
        granted_access: u32,
        file_info: &mut OpenFileInfo,
    ) -> winfsp::Result<OpenNode> {
        let path = name_of(file_name)?;
        let place = resolve(&self.fs, &self.rt, &path).map_err(fail)?;
        let ino = place.ino;
        let entry = self.call(move |fs| async move { fs.getattr(ino).await })?;
        let writing = granted_access & (FILE_WRITE_DATA | FILE_APPEND_DATA) != 0;
        let fh = self.open_handle(ino, entry.attr.kind, writing)?;
        Ok(self.opened(place, &entry, fh, file_info.as_mut()))
    }

    fn close(&self, node: OpenNode) {
        let (ino, fh, kind) = (node.ino, node.fh, node.kind);
        let _ = self.call(move |fs| async move {
            match kind {
                FileKind::Dir => fs.releasedir(ino, fh).await,
                FileKind::File => fs.release(ino, fh).await,
            }
            Ok(())
        });
    }

    fn create(
        &self,
        file_name: &U16CStr,
        create_options: u32,
        _granted_access: u32,
        _file_attributes: u32,
        _security_descriptor: Option<&[c_void]>,
        _allocation_size: u64,
        _extra_buffer: Option<&[u8]>,
        _extra_buffer_is_reparse_point: bool,
        file_info: &mut OpenFileInfo,
    ) -> winfsp::Result<OpenNode> {
        let path = name_of(file_name)?;
        let (parent, server) = resolve_parent(&self.fs, &self.rt, &path).map_err(fail)?;
        let name = server.clone();
        let (entry, fh) = if create_options & FILE_DIRECTORY_FILE != 0 {
            let entry = self.call(move |fs| async move {
                fs.mkdir(parent, OsStr::new(&name), 0o755, Caller::default())
                    .await
            })?;
            let fh = self.open_handle(entry.attr.ino, FileKind::Dir, false)?;
            (entry, fh)
        } else {
            // O_RDWR | O_CREAT | O_EXCL: Windows decided already that the name is new.
            let flags = libc_rdwr() | 0o100 | 0o200;
            self.call(move |fs| async move {
                let (entry, opened) = fs
                    .create(parent, OsStr::new(&name), 0o644, flags, Caller::default())
                    .await?;
                Ok((entry, opened.fh))
            })?
        };
        let win_name = dir_names(&self.fs, &self.rt, parent)
            .ok()
            .and_then(|n| n.windows_name(&server).map(str::to_owned))
            .unwrap_or_else(|| crate::platform::winnames::to_windows(&server));
        let place = Resolved {
            ino: entry.attr.ino,
            parent,
            server_name: server,
            win_name,
        };
        Ok(self.opened(place, &entry, fh, file_info.as_mut()))
    }

    fn cleanup(&self, node: &OpenNode, _file_name: Option<&U16CStr>, flags: u32) {
        let place = self.place(node);
        let (ino, fh, kind) = (node.ino, node.fh, node.kind);
        let delete = flags & CLEANUP_DELETE != 0 || node.delete_pending.load(Ordering::Acquire);
        // Cleanup cannot fail on Windows: errors are logged (by `fail`) and dropped.
        let _ = self.call(move |fs| async move {
            if kind == FileKind::File {
                // The last handle closed: hand the content to the upload journal.
                fs.flush(ino, fh).await?;
            }
            if delete {
                let name = OsStr::new(&place.server_name);
                match kind {
                    FileKind::Dir => fs.rmdir(place.parent, name).await?,
                    FileKind::File => fs.unlink(place.parent, name).await?,
                }
            }
            Ok(())
        });
    }

    fn flush(&self, node: Option<&OpenNode>, file_info: &mut FileInfo) -> winfsp::Result<()> {
        let Some(node) = node else {
            return Ok(()); // whole volume: every change is journaled as it happens
        };
        if node.kind == FileKind::File {
            let (ino, fh) = (node.ino, node.fh);
            self.call(move |fs| async move { fs.fsync(ino, fh).await })?;
        }
        self.refresh(node, file_info)
    }

    fn get_file_info(&self, node: &OpenNode, file_info: &mut FileInfo) -> winfsp::Result<()> {
        self.refresh(node, file_info)
    }

    fn get_security(
        &self,
        _node: &OpenNode,
        security_descriptor: Option<&mut [c_void]>,
    ) -> winfsp::Result<u64> {
        if let Some(buffer) = security_descriptor {
            if buffer.len() < self.security.len() {
                return Err(FspError::NTSTATUS(status::BUFFER_TOO_SMALL));
            }
            // SAFETY: as in `get_security_by_name`.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    self.security.as_ptr(),
                    buffer.as_mut_ptr().cast::<u8>(),
                    self.security.len(),
                );
            }
        }
        Ok(self.security.len() as u64)
    }

    fn overwrite(
        &self,
        node: &OpenNode,
        _file_attributes: u32,
        _replace_file_attributes: bool,
        _allocation_size: u64,
        _extra_buffer: Option<&[u8]>,
        file_info: &mut FileInfo,
    ) -> winfsp::Result<()> {
        let attr = SetAttr {
            size: Some(0),
            fh: Some(node.fh),
            ..SetAttr::default()
        };
        self.set_attr(node, attr, file_info)
    }

    fn read_directory(
        &self,
        node: &OpenNode,
        _pattern: Option<&U16CStr>,
        marker: DirMarker,
        buffer: &mut [u8],
    ) -> winfsp::Result<u32> {
        if marker.is_none() {
            // A new enumeration: list once into WinFsp's buffer, which pages it out.
            let lock = node.dir_buffer.acquire(true, None)?;
            let (ino, fh) = (node.ino, node.fh);
            let names = dir_names(&self.fs, &self.rt, ino).map_err(fail)?;
            let entries = self.call(move |fs| async move {
                let mut all = Vec::new();
                let mut offset = 0;
                loop {
                    let batch = fs.readdir(ino, fh, offset).await?;
                    let Some(last) = batch.last() else { break };
                    offset = last.next_offset;
                    all.extend(batch);
                }
                Ok(all)
            })?;
            let root = node.ino == crate::fs::ROOT_INO;
            for e in entries {
                let is_dot = e.name == "." || e.name == "..";
                if is_dot && root {
                    continue; // a volume root has no `.` and `..` on Windows
                }
                let win = if is_dot {
                    e.name.clone()
                } else {
                    names
                        .windows_name(&e.name)
                        .map(str::to_owned)
                        .unwrap_or_else(|| crate::platform::winnames::to_windows(&e.name))
                };
                let mut info: DirInfo<255> = DirInfo::new();
                self.fill(info.file_info_mut(), &e.attr, &win);
                if info.set_name(&win).is_err() {
                    tracing::warn!("name too long for Windows, not listed: {win:?}");
                    continue;
                }
                lock.write(&mut info)?;
            }
        }
        Ok(node.dir_buffer.read(marker, buffer))
    }

    fn rename(
        &self,
        node: &OpenNode,
        _file_name: &U16CStr,
        new_file_name: &U16CStr,
        replace_if_exists: bool,
    ) -> winfsp::Result<()> {
        let new_path = name_of(new_file_name)?;
        let (new_parent, new_server) =
            resolve_parent(&self.fs, &self.rt, &new_path).map_err(fail)?;
        let place = self.place(node);
        let target = new_server.clone();
        let flags = RenameFlags {
            no_replace: !replace_if_exists,
            exchange: false,
        };
        self.call(move |fs| async move {
            let (from, to) = (OsStr::new(&place.server_name), OsStr::new(&target));
            fs.rename(place.parent, from, new_parent, to, flags).await
        })?;
        let mut moved = node.place.lock().unwrap_or_else(|p| p.into_inner());
        moved.parent = new_parent;
        moved.win_name = crate::platform::winnames::to_windows(&new_server);
        moved.server_name = new_server;
        Ok(())
    }

    fn set_basic_info(
        &self,
        node: &OpenNode,
        _file_attributes: u32,
        _creation_time: u64,
        last_access_time: u64,
        last_write_time: u64,
        _last_change_time: u64,
        file_info: &mut FileInfo,
    ) -> winfsp::Result<()> {
        // Attribute bits are derived (READONLY from Cells rights), not stored: ignored.
        let attr = SetAttr {
            mtime: system_time(last_write_time),
            atime: system_time(last_access_time),
            fh: Some(node.fh),
            ..SetAttr::default()
        };
        if attr.mtime.is_none() && attr.atime.is_none() {
            return self.refresh(node, file_info);
        }
        self.set_attr(node, attr, file_info)
    }

    fn set_delete(
        &self,
        node: &OpenNode,
        _file_name: &U16CStr,
        delete_file: bool,
    ) -> winfsp::Result<()> {
        if delete_file && node.kind == FileKind::Dir {
            let names = dir_names(&self.fs, &self.rt, node.ino).map_err(fail)?;
            if !names.is_empty() {
                return Err(FspError::NTSTATUS(status::DIRECTORY_NOT_EMPTY));
            }
        }
        node.delete_pending.store(delete_file, Ordering::Release);
        Ok(())
    }

    fn set_file_size(
        &self,
        node: &OpenNode,
        new_size: u64,
        set_allocation_size: bool,
        file_info: &mut FileInfo,
    ) -> winfsp::Result<()> {
        if set_allocation_size {
            // Allocation is not modelled; only a shrinking allocation cuts the file.
            let ino = node.ino;
            let size = self.call(move |fs| async move { Ok(fs.getattr(ino).await?.attr.size) })?;
            if new_size >= size {
                return self.refresh(node, file_info);
            }
        }
        let attr = SetAttr {
            size: Some(new_size),
            fh: Some(node.fh),
            ..SetAttr::default()
        };
        self.set_attr(node, attr, file_info)
    }

    fn read(&self, node: &OpenNode, buffer: &mut [u8], offset: u64) -> winfsp::Result<u32> {
        let (ino, fh) = (node.ino, node.fh);
        let want = u32::try_from(buffer.len()).unwrap_or(u32::MAX);
        let data = self.call(move |fs| async move { fs.read(ino, fh, offset, want).await })?;
        if data.is_empty() && want > 0 {
            return Err(FspError::NTSTATUS(status::END_OF_FILE));
        }
        let n = data.len().min(buffer.len());
        buffer[..n].copy_from_slice(&data[..n]);
        Ok(n as u32)
    }

    fn write(
        &self,
        node: &OpenNode,
        buffer: &[u8],
        offset: u64,
        write_to_eof: bool,
        constrained_io: bool,
        file_info: &mut FileInfo,
    ) -> winfsp::Result<u32> {
        let (ino, fh) = (node.ino, node.fh);
        let size = self.call(move |fs| async move { Ok(fs.getattr(ino).await?.attr.size) })?;
        let offset = if write_to_eof { size } else { offset };
        let mut data = buffer.to_vec();
        if constrained_io {
            // Paging I/O must not extend the file.
            if offset >= size {
                self.refresh(node, file_info)?;
                return Ok(0);
            }
            data.truncate(usize::try_from(size - offset).unwrap_or(usize::MAX));
        }
        let written = self.call(move |fs| async move { fs.write(ino, fh, offset, &data).await })?;
        self.refresh(node, file_info)?;
        Ok(written)
    }

    fn get_volume_info(&self, out: &mut VolumeInfo) -> winfsp::Result<()> {
        let stats = self.call(|fs| async move { fs.statfs().await })?;
        let unit = u64::from(stats.bsize);
        out.total_size = stats.blocks.saturating_mul(unit);
        out.free_size = stats.bavail.saturating_mul(unit);
        out.set_volume_label(&self.volume_label);
        Ok(())
    }
}
