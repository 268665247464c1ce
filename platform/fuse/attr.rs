//! Conversions between the core's plain types and fuser's: attributes, callers, open
//! flags, and the xattr size-probe reply.

use super::guard::ReplyGuard;
use crate::fs::{Attr, Caller, FileKind, OpenReply};
use fuser::{Errno, FileAttr, FileType, FopenFlags, INodeNo, ReplyXattr, Request};

/// Block size reported to `stat`; also the unit of `st_blocks` rounding (512-byte blocks).
const BLKSIZE: u32 = 4096;

pub fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::File => FileType::RegularFile,
        FileKind::Dir => FileType::Directory,
    }
}

pub fn file_attr(attr: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(attr.ino),
        size: attr.size,
        blocks: attr.size.div_ceil(512),
        // Access times are not tracked (mounted noatime); mtime is the closest truth.
        atime: attr.mtime,
        mtime: attr.mtime,
        ctime: attr.ctime,
        crtime: attr.ctime,
        kind: file_type(attr.kind),
        perm: attr.perm,
        nlink: attr.nlink,
        uid: attr.uid,
        gid: attr.gid,
        rdev: 0,
        blksize: BLKSIZE,
        flags: 0,
    }
}

pub fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
        pid: req.pid(),
    }
}

pub fn fopen_flags(reply: &OpenReply) -> FopenFlags {
    let mut flags = FopenFlags::empty();
    if reply.keep_cache {
        flags |= FopenFlags::FOPEN_KEEP_CACHE;
    }
    if reply.direct_io {
        flags |= FopenFlags::FOPEN_DIRECT_IO;
    }
    flags
}

/// Sends an xattr value or list following the size-probe convention: a zero `size` asks for
/// the length; a buffer too small gets ERANGE.
pub fn reply_xattr(guard: ReplyGuard<ReplyXattr>, size: u32, data: &[u8]) {
    let Ok(len) = u32::try_from(data.len()) else {
        return guard.fail_errno(Errno::E2BIG);
    };
    if size == 0 {
        guard.send(|r| r.size(len));
    } else if len > size {
        guard.fail_errno(Errno::ERANGE);
    } else {
        guard.send(|r| r.data(data));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn converts_fields_and_rounds_blocks_up() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let a = Attr {
            ino: 42,
            kind: FileKind::File,
            size: 513,
            mtime: t,
            ctime: t,
            perm: 0o644,
            nlink: 1,
            uid: 1000,
            gid: 1000,
        };
        let f = file_attr(&a);
        assert_eq!(f.ino, INodeNo(42));
        assert_eq!(f.blocks, 2);
        assert_eq!(f.kind, FileType::RegularFile);
        assert_eq!((f.perm, f.uid, f.gid, f.size), (0o644, 1000, 1000, 513));
        assert_eq!(file_type(FileKind::Dir), FileType::Directory);
    }
}
