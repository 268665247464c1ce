//! The file-system core's interface, as the platform adapters (FUSE, WinFsp) see it: plain
//! request/result types and one error enum, with no trace of fuser or winfsp.

use async_trait::async_trait;
use bytes::Bytes;
use std::ffi::OsStr;
use std::time::{Duration, SystemTime};
use thiserror::Error;

/// Inode number. 1 is the root of the mount; numbers are stable across restarts.
pub type Ino = u64;
/// Open file or directory handle.
pub type Fh = u64;

pub const ROOT_INO: Ino = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
}

/// Attributes of one inode, in the units the kernel wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub kind: FileKind,
    pub size: u64,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    /// Permission bits (e.g. 0o644 / 0o755; read-only nodes lose the write bits).
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
}

/// A lookup or getattr answer: attributes plus how long the kernel may cache them.
#[derive(Debug, Clone)]
pub struct Entry {
    pub attr: Attr,
    pub ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct DirEntry {
    pub ino: Ino,
    pub name: String,
    pub kind: FileKind,
    /// Offset of the NEXT entry (what the kernel passes back to continue).
    pub next_offset: u64,
    /// Full attributes, for readdirplus.
    pub attr: Attr,
}

#[derive(Debug, Clone)]
pub struct OpenReply {
    pub fh: Fh,
    /// Let the kernel keep its page cache for this file (content version unchanged).
    pub keep_cache: bool,
    /// Bypass the page cache (content not yet known to be stable).
    pub direct_io: bool,
    /// A fully cached, verified local file the adapter may hand to the kernel for FUSE
    /// passthrough, so reads run at local-disk speed.
    pub passthrough: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy)]
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
}

/// Every way a file-system operation can fail. Adapters map each variant to an errno (and an
/// NTSTATUS on Windows) in one exhaustive `match`.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory not empty")]
    NotEmpty,
    #[error("already exists")]
    Exists,
    #[error("permission denied: {0}")]
    Denied(String),
    #[error("read-only")]
    ReadOnly,
    /// Something no user may do here (change a file's owner, set a `user.cells.*` attribute).
    #[error("operation not permitted: {0}")]
    NotPermitted(String),
    #[error("invalid name: {0}")]
    InvalidName(String),
    #[error("name too long")]
    NameTooLong,
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("no such attribute")]
    NoAttr,
    #[error("buffer too small, {0} bytes needed")]
    Range(usize),
    #[error("stale handle")]
    BadHandle,
    #[error("operation not supported")]
    Unsupported,
    /// The server cannot be reached and the data is not in the cache.
    #[error("offline, and not available in the cache")]
    Offline,
    /// The server refused our credentials; the user has to log in again.
    #[error("not logged in")]
    Unauthenticated,
    #[error("locked by another user")]
    Locked,
    #[error("quota exceeded")]
    Quota,
    #[error("no space left in the cache or staging area")]
    NoSpace,
    #[error("interrupted")]
    Interrupted,
    #[error("I/O error: {0}")]
    Io(String),
}

pub type FsResult<T> = Result<T, FsError>;

/// The bytes [`FileSystem::read_now`] answered with.
#[derive(Debug)]
pub enum ReadNow {
    /// The first `n` bytes of the caller's buffer.
    InBuffer(usize),
    /// Bytes held in memory, handed over without a copy.
    Shared(Bytes),
}

#[cfg(test)]
impl FsError {
    /// One value of every variant, for the tests of the adapters' errno and NTSTATUS maps.
    /// The `match` makes a new variant a compile error here until it is listed.
    pub(crate) fn one_of_each() -> Vec<FsError> {
        use FsError::*;
        let all = vec![
            NotFound,
            NotDir,
            IsDir,
            NotEmpty,
            Exists,
            Denied("acl".into()),
            ReadOnly,
            NotPermitted("chown".into()),
            InvalidName("a/b".into()),
            NameTooLong,
            Invalid("x".into()),
            NoAttr,
            Range(10),
            BadHandle,
            Unsupported,
            Offline,
            Unauthenticated,
            Locked,
            Quota,
            NoSpace,
            Interrupted,
            Io("disk".into()),
        ];
        for e in &all {
            match e {
                NotFound | NotDir | IsDir | NotEmpty | Exists | Denied(_) | ReadOnly
                | NotPermitted(_) | InvalidName(_) | NameTooLong | Invalid(_) | NoAttr
                | Range(_) | BadHandle | Unsupported | Offline | Unauthenticated | Locked
                | Quota | NoSpace | Interrupted | Io(_) => {}
            }
        }
        all
    }
}

/// Who is asking (for the uid/gid of created files and permission decisions).
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
}

/// The operations of the file system. Implemented by the core; adapters only call it.
#[async_trait]
pub trait FileSystem: Send + Sync + 'static {
    async fn lookup(&self, parent: Ino, name: &OsStr) -> FsResult<Entry>;
    async fn getattr(&self, ino: Ino) -> FsResult<Entry>;
    /// [`Self::lookup`] when memory alone answers it (no I/O, no waiting), `None` otherwise.
    /// Adapters try it on their own thread before starting a task: `ls -l` of a folder the
    /// kernel forgot sends one lookup per entry, and a task hand-off costs more than the
    /// answer.
    fn lookup_now(&self, _parent: Ino, _name: &OsStr) -> Option<FsResult<Entry>> {
        None
    }
    /// [`Self::getattr`] when memory or a point read of the index answers it, as
    /// [`Self::lookup_now`].
    fn getattr_now(&self, _ino: Ino) -> Option<FsResult<Entry>> {
        None
    }
    /// [`Self::create`] when it can be done at once on the adapter's thread (the folder is
    /// known and listed, the name free): an index row and an empty local file.
    /// The name being free, `create`'s flags change nothing here.
    fn create_now(&self, _parent: Ino, _name: &OsStr) -> Option<FsResult<(Entry, OpenReply)>> {
        None
    }
    /// [`Self::write`] when it can be done at once on the adapter's thread (the file's local
    /// copy is ready and not busy): a `pwrite` to local disk, cheaper than the thread
    /// hand-offs of a task. `None`: the adapter calls [`Self::write`].
    fn write_now(&self, _ino: Ino, _fh: Fh, _offset: u64, _data: &[u8]) -> Option<FsResult<u32>> {
        None
    }
    /// [`Self::read`] when the bytes are at hand, in memory or in the local cache and already
    /// checked: answered on the adapter's thread instead of through the hand-offs of a task (a
    /// sequential read is thousands of kernel requests). `buf` is a buffer the caller reuses
    /// (grown as needed, never shrunk). `None`: the adapter calls [`Self::read`].
    fn read_now(
        &self,
        _ino: Ino,
        _fh: Fh,
        _offset: u64,
        _size: u32,
        _buf: &mut Vec<u8>,
    ) -> Option<FsResult<ReadNow>> {
        None
    }
    /// [`Self::readdir`] when it can be answered at once from memory (every record it needs
    /// is cached): no task and no blocking thread per call of a big listing. `None`: the
    /// adapter calls [`Self::readdir`].
    fn readdir_now(&self, _ino: Ino, _fh: Fh, _offset: u64) -> Option<FsResult<Vec<DirEntry>>> {
        None
    }
    /// [`Self::flush`] when it can be answered at once, as [`Self::write_now`]. The adapter
    /// calls the `*_now` methods inside the runtime's context: they may start tasks.
    fn flush_now(&self, _ino: Ino, _fh: Fh) -> Option<FsResult<()>> {
        None
    }
    /// The kernel dropped `nlookup` references to `ino`.
    async fn forget(&self, ino: Ino, nlookup: u64);
    async fn opendir(&self, ino: Ino) -> FsResult<Fh>;
    /// Entries from `offset` (0 = start); `.` and `..` included. An adapter stops copying when
    /// its buffer is full and continues later with the last copied entry's `next_offset`.
    async fn readdir(&self, ino: Ino, fh: Fh, offset: u64) -> FsResult<Vec<DirEntry>>;
    async fn releasedir(&self, ino: Ino, fh: Fh);
    async fn open(&self, ino: Ino, flags: i32, caller: Caller) -> FsResult<OpenReply>;
    async fn read(&self, ino: Ino, fh: Fh, offset: u64, size: u32) -> FsResult<Bytes>;
    async fn release(&self, ino: Ino, fh: Fh);
    async fn statfs(&self) -> FsResult<StatFs>;
    /// The whole value of attribute `name` (`NoAttr` when it does not exist). Convention: the
    /// core always returns the full value; the adapter answers a size-0 query with its length
    /// and a too-small buffer with `FsError::Range(len)` (ERANGE), as FUSE expects.
    async fn getxattr(&self, ino: Ino, name: &OsStr) -> FsResult<Vec<u8>>;
    async fn listxattr(&self, ino: Ino) -> FsResult<Vec<String>>;

    // The write path: file creation and content, folders, deletes and moves, applied locally
    // at once and journaled for upload. The defaults answer `ReadOnly`, for file systems
    // without a journal (read-only mounts, test doubles).

    /// Creates and opens a regular file (`flags` as open(2); O_EXCL honoured).
    async fn create(
        &self,
        _parent: Ino,
        _name: &OsStr,
        _mode: u32,
        _flags: i32,
        _caller: Caller,
    ) -> FsResult<(Entry, OpenReply)> {
        Err(FsError::ReadOnly)
    }
    /// Regular files only (`mode` & S_IFMT = S_IFREG or 0); anything else is `Unsupported`.
    async fn mknod(
        &self,
        _parent: Ino,
        _name: &OsStr,
        _mode: u32,
        _caller: Caller,
    ) -> FsResult<Entry> {
        Err(FsError::ReadOnly)
    }
    /// Writes at `offset`; returns the bytes written.
    async fn write(&self, _ino: Ino, _fh: Fh, _offset: u64, _data: &[u8]) -> FsResult<u32> {
        Err(FsError::ReadOnly)
    }
    /// Size, times and mode; uid/gid changes are `Denied` (EPERM at the adapter).
    async fn setattr(&self, _ino: Ino, _attr: SetAttr) -> FsResult<Entry> {
        Err(FsError::ReadOnly)
    }
    async fn mkdir(
        &self,
        _parent: Ino,
        _name: &OsStr,
        _mode: u32,
        _caller: Caller,
    ) -> FsResult<Entry> {
        Err(FsError::ReadOnly)
    }
    async fn unlink(&self, _parent: Ino, _name: &OsStr) -> FsResult<()> {
        Err(FsError::ReadOnly)
    }
    async fn rmdir(&self, _parent: Ino, _name: &OsStr) -> FsResult<()> {
        Err(FsError::ReadOnly)
    }
    /// Moves within and across folders; replacing an existing file is atomic.
    async fn rename(
        &self,
        _parent: Ino,
        _name: &OsStr,
        _new_parent: Ino,
        _new_name: &OsStr,
        _flags: RenameFlags,
    ) -> FsResult<()> {
        Err(FsError::ReadOnly)
    }
    /// Hands the file's current content to the upload journal (durable on return).
    async fn fsync(&self, _ino: Ino, _fh: Fh) -> FsResult<()> {
        Ok(())
    }
    /// A `close()` of a descriptor: like fsync when the file changed (close-to-open).
    async fn flush(&self, _ino: Ino, _fh: Fh) -> FsResult<()> {
        Ok(())
    }
    /// `user.cells.*` attributes are read-only (`Denied`); others are `Unsupported`.
    async fn setxattr(&self, _ino: Ino, _name: &OsStr, _value: &[u8]) -> FsResult<()> {
        Err(FsError::ReadOnly)
    }
    async fn removexattr(&self, _ino: Ino, _name: &OsStr) -> FsResult<()> {
        Err(FsError::ReadOnly)
    }
}

/// What a `setattr` asks to change; `None` fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct SetAttr {
    pub size: Option<u64>,
    pub mtime: Option<SystemTime>,
    pub atime: Option<SystemTime>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The handle the change came through (`ftruncate`), if any.
    pub fh: Option<Fh>,
}

/// `rename(2)` flags the core understands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenameFlags {
    /// Fail with `Exists` instead of replacing the target (RENAME_NOREPLACE).
    pub no_replace: bool,
    /// Swap source and target (RENAME_EXCHANGE): not supported by Cells.
    pub exchange: bool,
}

/// Kernel cache invalidation requests the core sends when the server changed something behind
/// the kernel's back. The FUSE adapter implements it with fuser's `Notifier`.
pub trait Invalidator: Send + Sync + 'static {
    fn inval_entry(&self, parent: Ino, name: &OsStr);
    fn inval_inode(&self, ino: Ino);
}
