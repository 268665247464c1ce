//! The fuser `Filesystem` implementation: each kernel request becomes a tokio task that calls
//! the core and replies from the task, so one slow fetch never blocks the FUSE threads.

use super::attr::{caller, file_attr, file_type, fopen_flags, reply_xattr};
use super::errno::ErrorStats;
use super::guard::{ErrorReply, ReplyGuard};
use super::iomode::IoModes;
use crate::fs::{DirEntry, Entry, FileSystem, FsResult, OpenReply, ReadNow};
use fuser::{
    Errno, FileHandle, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig, OpenFlags,
    ReplyAttr, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyXattr, Request,
};
use std::ffi::OsStr;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    /// Each FUSE thread's buffer for reads answered at once from the cache: grown to the
    /// largest read once, then reused (no allocation and zeroing per 128 KiB read).
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}
use std::time::Duration;

/// Attribute/entry lifetime for entries returned by readdirplus (`DirEntry` carries no TTL).
const READDIRPLUS_TTL: Duration = Duration::from_secs(1);

pub struct FuseAdapter<F: FileSystem> {
    fs: Arc<F>,
    rt: tokio::runtime::Handle,
    stats: Arc<ErrorStats>,
    io_modes: Arc<IoModes>,
    /// Passthrough asked for by configuration...
    passthrough_wanted: bool,
    /// ...and accepted by the kernel at INIT.
    passthrough_enabled: Arc<AtomicBool>,
}

impl<F: FileSystem> FuseAdapter<F> {
    pub fn new(
        fs: Arc<F>,
        rt: tokio::runtime::Handle,
        stats: Arc<ErrorStats>,
        passthrough_wanted: bool,
    ) -> Self {
        Self {
            fs,
            rt,
            stats,
            io_modes: Arc::new(IoModes::default()),
            passthrough_wanted,
            passthrough_enabled: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether the kernel accepted FUSE passthrough (known once mounted).
    pub fn passthrough_flag(&self) -> Arc<AtomicBool> {
        self.passthrough_enabled.clone()
    }

    /// Runs one of the core's `*_now` answers on this thread, inside the runtime's context
    /// (the core may start tasks from it).
    fn at_once<T>(&self, answer: impl FnOnce(&F) -> T) -> T {
        let _runtime = self.rt.enter();
        answer(&self.fs)
    }

    /// Runs `task` on the runtime with the reply in a guard. If the task panics or is dropped,
    /// the guard answers EIO.
    fn spawn<R, Fut>(
        &self,
        op: &'static str,
        reply: R,
        task: impl FnOnce(Arc<F>, ReplyGuard<R>) -> Fut,
    ) where
        R: ErrorReply,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let guard = ReplyGuard::new(reply, op, self.stats.clone());
        self.rt.spawn(task(self.fs.clone(), guard));
    }
}

impl<F: FileSystem> fuser::Filesystem for FuseAdapter<F> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Let the kernel list and look up in parallel, use readdirplus, and drop its page
        // cache when a getattr shows a new mtime/size (belt and braces with our invalidations).
        // Not FUSE_POSIX_ACL: the ACL answers the kernel would cache are dropped by every
        // readdirplus, so `ls -l` sent one ACL query per entry and per run anyway; without it
        // we answer ACL queries "not supported", which `ls` asks once per file system.
        // HANDLE_KILLPRIV_V2: we clear set-id bits and capabilities on write ourselves (there
        // never are any: modes are fixed, security attributes unsupported), so the kernel need
        // not ask for `security.capability` before every write call.
        let wanted = InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_AUTO_INVAL_DATA
            | InitFlags::FUSE_HANDLE_KILLPRIV_V2;
        for flag in wanted.iter() {
            if let Err(missing) = config.add_capabilities(flag) {
                tracing::debug!(?missing, "kernel lacks a FUSE capability");
            }
        }
        if self.passthrough_wanted
            && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(1).is_ok()
        {
            self.passthrough_enabled.store(true, Ordering::Release);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if let Some(result) = self.fs.lookup_now(parent.0, name) {
            return ReplyGuard::new(reply, "lookup", self.stats.clone()).answer(result, |r, e| {
                r.entry(&e.ttl, &file_attr(&e.attr), Generation(0))
            });
        }
        let name = name.to_owned();
        self.spawn("lookup", reply, move |fs, g| async move {
            g.answer(fs.lookup(parent.0, &name).await, |r, e| {
                r.entry(&e.ttl, &file_attr(&e.attr), Generation(0))
            })
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let fs = self.fs.clone();
        self.rt
            .spawn(async move { fs.forget(ino.0, nlookup).await });
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if let Some(result) = self.fs.getattr_now(ino.0) {
            return ReplyGuard::new(reply, "getattr", self.stats.clone())
                .answer(result, |r, e| r.attr(&e.ttl, &file_attr(&e.attr)));
        }
        self.spawn("getattr", reply, move |fs, g| async move {
            g.answer(fs.getattr(ino.0).await, |r, e| {
                r.attr(&e.ttl, &file_attr(&e.attr))
            })
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.spawn("opendir", reply, move |fs, g| async move {
            g.answer(fs.opendir(ino.0).await, |r, fh| {
                r.opened(FileHandle(fh), FopenFlags::empty())
            })
        });
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        if let Some(result) = self.at_once(|fs| fs.readdir_now(ino.0, fh.0, offset)) {
            return ReplyGuard::new(reply, "readdir", self.stats.clone())
                .answer(result, |r, entries| fill_dir(r, &entries));
        }
        self.spawn("readdir", reply, move |fs, g| async move {
            g.answer(fs.readdir(ino.0, fh.0, offset).await, |r, entries| {
                fill_dir(r, &entries)
            })
        });
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        if let Some(result) = self.at_once(|fs| fs.readdir_now(ino.0, fh.0, offset)) {
            return ReplyGuard::new(reply, "readdirplus", self.stats.clone())
                .answer(result, |r, entries| fill_dir_plus(r, &entries));
        }
        self.spawn("readdirplus", reply, move |fs, g| async move {
            g.answer(fs.readdir(ino.0, fh.0, offset).await, |r, entries| {
                fill_dir_plus(r, &entries)
            })
        });
    }

    fn releasedir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.spawn("releasedir", reply, move |fs, g| async move {
            fs.releasedir(ino.0, fh.0).await;
            g.send(|r| r.ok());
        });
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let caller = caller(req);
        let io_modes = self.io_modes.clone();
        let passthrough = self.passthrough_enabled.load(Ordering::Acquire);
        self.spawn("open", reply, move |fs, g| async move {
            let opened = match fs.open(ino.0, flags.0, caller).await {
                Ok(o) => o,
                Err(e) => return g.fail(&e),
            };
            if flags.0 & libc::O_ACCMODE != 0 {
                // Writes must reach the core, never a passthrough backing file.
                if !io_modes.open_local(ino.0) {
                    fs.release(ino.0, opened.fh).await;
                    return g.fail_errno(Errno::ETXTBSY);
                }
                let flags = fopen_flags(&opened);
                return g.send(|r| r.opened(FileHandle(opened.fh), flags));
            }
            let flags = fopen_flags(&opened);
            let local = opened.passthrough.filter(|_| passthrough);
            g.send(|reply| {
                io_modes.open(
                    ino.0,
                    reply,
                    |reply| {
                        let file = std::fs::File::open(local?).ok()?;
                        match reply.open_backing(&file) {
                            Ok(id) => Some(id),
                            Err(e) => {
                                tracing::debug!("kernel refused passthrough, serving reads: {e}");
                                None
                            }
                        }
                    },
                    |reply, backing| match backing {
                        // The kernel refuses (EIO at open) passthrough combined with page
                        // cache flags such as KEEP_CACHE: there is no page cache to keep.
                        Some(id) => reply.opened_passthrough(
                            FileHandle(opened.fh),
                            flags & FopenFlags::FOPEN_DIRECT_IO,
                            id,
                        ),
                        None => reply.opened(FileHandle(opened.fh), flags),
                    },
                )
            });
        });
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let now =
            |buf: &mut Vec<u8>| self.at_once(|fs| fs.read_now(ino.0, fh.0, offset, size, buf));
        if let Some(result) = READ_BUFFER.with_borrow_mut(now) {
            let guard = ReplyGuard::new(reply, "read", self.stats.clone());
            return READ_BUFFER.with_borrow(|buf| {
                guard.answer(result, |r, answer| match answer {
                    ReadNow::InBuffer(n) => r.data(buf.get(..n).unwrap_or_default()),
                    ReadNow::Shared(bytes) => r.data(&bytes),
                })
            });
        }
        self.spawn("read", reply, move |fs, g| async move {
            g.answer(fs.read(ino.0, fh.0, offset, size).await, |r, data| {
                r.data(&data)
            })
        });
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.io_modes.release(ino.0);
        self.spawn("release", reply, move |fs, g| async move {
            fs.release(ino.0, fh.0).await;
            g.send(|r| r.ok());
        });
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.spawn("statfs", reply, move |fs, g| async move {
            match fs.statfs().await {
                Ok(s) => g.send(|r| {
                    r.statfs(
                        s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.bsize,
                    )
                }),
                Err(e) => g.fail(&e),
            }
        });
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        // Names outside our namespace are refused right here, without a task or an inode load
        // (`ls -l` asks two of them for every entry until told they are not supported).
        if let Some(answer) = crate::fs::xattr::foreign_xattr(name) {
            reply.error(Errno::from_i32(super::errno::errno(&answer)));
            return;
        }
        let name = name.to_owned();
        self.spawn("getxattr", reply, move |fs, g| async move {
            match fs.getxattr(ino.0, &name).await {
                Ok(value) => reply_xattr(g, size, &value),
                Err(e) => g.fail(&e),
            }
        });
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.spawn("listxattr", reply, move |fs, g| async move {
            match fs.listxattr(ino.0).await {
                Ok(names) => {
                    // The kernel format: each name followed by a NUL byte.
                    let mut list = Vec::new();
                    for n in names {
                        list.extend_from_slice(n.as_bytes());
                        list.push(0);
                    }
                    reply_xattr(g, size, &list)
                }
                Err(e) => g.fail(&e),
            }
        });
    }

    // The write path: see `write_ops`.
    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: fuser::ReplyCreate,
    ) {
        if let Some(result) = self.at_once(|fs| fs.create_now(parent.0, name)) {
            let g = ReplyGuard::new(reply, "create", self.stats.clone());
            return reply_created(g, &self.io_modes, result);
        }
        let (caller, name, io_modes) = (caller(req), name.to_owned(), self.io_modes.clone());
        self.spawn("create", reply, move |fs, g| async move {
            let result = fs.create(parent.0, &name, mode, flags, caller).await;
            reply_created(g, &io_modes, result);
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let (caller, name) = (caller(req), name.to_owned());
        self.spawn("mknod", reply, move |fs, g| async move {
            g.answer(fs.mknod(parent.0, &name, mode, caller).await, |r, e| {
                r.entry(&e.ttl, &file_attr(&e.attr), Generation(0))
            })
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let (caller, name) = (caller(req), name.to_owned());
        self.spawn("mkdir", reply, move |fs, g| async move {
            g.answer(fs.mkdir(parent.0, &name, mode, caller).await, |r, e| {
                r.entry(&e.ttl, &file_attr(&e.attr), Generation(0))
            })
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_owned();
        self.spawn("unlink", reply, move |fs, g| async move {
            g.answer(fs.unlink(parent.0, &name).await, |r, ()| r.ok())
        });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_owned();
        self.spawn("rmdir", reply, move |fs, g| async move {
            g.answer(fs.rmdir(parent.0, &name).await, |r, ()| r.ok())
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        new_parent: INodeNo,
        new_name: &OsStr,
        flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (name, new_name) = (name.to_owned(), new_name.to_owned());
        let flags = rename_flags(flags);
        self.spawn("rename", reply, move |fs, g| async move {
            g.answer(
                fs.rename(parent.0, &name, new_parent.0, &new_name, flags)
                    .await,
                |r, ()| r.ok(),
            )
        });
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: fuser::ReplyWrite,
    ) {
        if let Some(result) = self.at_once(|fs| fs.write_now(ino.0, fh.0, offset, data)) {
            return ReplyGuard::new(reply, "write", self.stats.clone())
                .answer(result, |r, n| r.written(n));
        }
        let data = data.to_vec();
        self.spawn("write", reply, move |fs, g| async move {
            g.answer(fs.write(ino.0, fh.0, offset, &data).await, |r, n| {
                r.written(n)
            })
        });
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        if let Some(result) = self.at_once(|fs| fs.flush_now(ino.0, fh.0)) {
            return ReplyGuard::new(reply, "flush", self.stats.clone())
                .answer(result, |r, ()| r.ok());
        }
        self.spawn("flush", reply, move |fs, g| async move {
            g.answer(fs.flush(ino.0, fh.0).await, |r, ()| r.ok())
        });
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.spawn("fsync", reply, move |fs, g| async move {
            g.answer(fs.fsync(ino.0, fh.0).await, |r, ()| r.ok())
        });
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<fuser::TimeOrNow>,
        mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let attr = crate::fs::SetAttr {
            size,
            mtime: mtime.map(time_of),
            atime: atime.map(time_of),
            mode,
            uid,
            gid,
            fh: fh.map(|f| f.0),
        };
        self.spawn("setattr", reply, move |fs, g| async move {
            g.answer(fs.setattr(ino.0, attr).await, |r, e| {
                r.attr(&e.ttl, &file_attr(&e.attr))
            })
        });
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let (name, value) = (name.to_owned(), value.to_vec());
        self.spawn("setxattr", reply, move |fs, g| async move {
            g.answer(fs.setxattr(ino.0, &name, &value).await, |r, ()| r.ok())
        });
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_owned();
        self.spawn("removexattr", reply, move |fs, g| async move {
            g.answer(fs.removexattr(ino.0, &name).await, |r, ()| r.ok())
        });
    }

    /// Cells has no links: ENOTSUP ("Operation not supported"), which `ln` reports as is.
    fn symlink(&self, _: &Request, _: INodeNo, _: &OsStr, _: &std::path::Path, reply: ReplyEntry) {
        reply.error(Errno::from_i32(super::errno::errno(
            &crate::fs::FsError::Unsupported,
        )));
    }

    /// Hard links: ENOTSUP, as for symlinks.
    fn link(&self, _: &Request, _: INodeNo, _: INodeNo, _: &OsStr, reply: ReplyEntry) {
        reply.error(Errno::from_i32(super::errno::errno(
            &crate::fs::FsError::Unsupported,
        )));
    }
}

fn time_of(t: fuser::TimeOrNow) -> std::time::SystemTime {
    match t {
        fuser::TimeOrNow::SpecificTime(t) => t,
        fuser::TimeOrNow::Now => std::time::SystemTime::now(),
    }
}

fn rename_flags(flags: fuser::RenameFlags) -> crate::fs::RenameFlags {
    #[cfg(target_os = "linux")]
    {
        crate::fs::RenameFlags {
            no_replace: flags.contains(fuser::RenameFlags::RENAME_NOREPLACE),
            exchange: flags.contains(fuser::RenameFlags::RENAME_EXCHANGE),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = flags;
        crate::fs::RenameFlags::default()
    }
}

/// Answers a create. A new inode is never in passthrough, so this always registers.
fn reply_created(
    g: ReplyGuard<fuser::ReplyCreate>,
    io_modes: &IoModes,
    result: FsResult<(Entry, OpenReply)>,
) {
    match result {
        Ok((entry, opened)) => g.send(|r| {
            io_modes.open_local(entry.attr.ino);
            r.created(
                &entry.ttl,
                &file_attr(&entry.attr),
                Generation(0),
                FileHandle(opened.fh),
                fopen_flags(&opened),
            )
        }),
        Err(e) => g.fail(&e),
    }
}

/// Copies entries until the kernel's buffer is full; it continues from the last
/// `next_offset` it got.
fn fill_dir(mut reply: ReplyDirectory, entries: &[DirEntry]) {
    for e in entries {
        if reply.add(INodeNo(e.ino), e.next_offset, file_type(e.kind), &e.name) {
            break;
        }
    }
    reply.ok();
}

/// [`fill_dir`] with each entry's attributes.
fn fill_dir_plus(mut reply: ReplyDirectoryPlus, entries: &[DirEntry]) {
    for e in entries {
        let attr = file_attr(&e.attr);
        if reply.add(
            INodeNo(e.ino),
            e.next_offset,
            &e.name,
            &READDIRPLUS_TTL,
            &attr,
            Generation(0),
        ) {
            break;
        }
    }
    reply.ok();
}
