//! An in-memory `FileSystem` for adapter tests: a fixed tree, counters of core calls, and
//! names whose lookup panics or fails, to test the adapter without the real core.

use async_trait::async_trait;
use bytes::Bytes;
use cells_mount::fs::*;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

pub const DIR_INO: Ino = 2;
pub const FILE_INO: Ino = 3;
pub const PASSTHROUGH_INO: Ino = 4;
/// Children of the big directory get inodes from here on.
pub const CHILD_BASE: Ino = 1000;

pub struct FakeFs {
    pub file_content: Vec<u8>,
    pub dir_children: u64,
    /// A local file offered for passthrough (its content is also served by `read`).
    pub passthrough_file: PathBuf,
    pub passthrough_content: Vec<u8>,
    pub reads: AtomicU64,
    pub passthrough_reads: AtomicU64,
}

fn attr(ino: Ino, kind: FileKind, size: u64) -> Attr {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    Attr {
        ino,
        kind,
        size,
        mtime: t,
        ctime: t,
        perm: if kind == FileKind::Dir { 0o755 } else { 0o644 },
        nlink: if kind == FileKind::Dir { 2 } else { 1 },
        uid: 0,
        gid: 0,
    }
}

impl FakeFs {
    fn attr_of(&self, ino: Ino) -> FsResult<Attr> {
        match ino {
            ROOT_INO | DIR_INO => Ok(attr(ino, FileKind::Dir, 0)),
            FILE_INO => Ok(attr(ino, FileKind::File, self.file_content.len() as u64)),
            PASSTHROUGH_INO => Ok(attr(
                ino,
                FileKind::File,
                self.passthrough_content.len() as u64,
            )),
            i if (CHILD_BASE..CHILD_BASE + self.dir_children).contains(&i) => {
                Ok(attr(i, FileKind::File, 0))
            }
            _ => Err(FsError::NotFound),
        }
    }

    fn entry(&self, ino: Ino) -> FsResult<Entry> {
        Ok(Entry {
            attr: self.attr_of(ino)?,
            ttl: Duration::from_secs(1),
        })
    }

    fn children(&self, ino: Ino) -> FsResult<Vec<(Ino, String)>> {
        let mut v = vec![(ino, ".".to_string()), (ROOT_INO, "..".to_string())];
        match ino {
            ROOT_INO => v.extend([
                (DIR_INO, "dir".to_string()),
                (FILE_INO, "file.bin".to_string()),
                (PASSTHROUGH_INO, "cached.bin".to_string()),
            ]),
            DIR_INO => v.extend((0..self.dir_children).map(|i| {
                (
                    CHILD_BASE + i,
                    format!("entry-with-a-longish-name-{i:05}.txt"),
                )
            })),
            _ => return Err(FsError::NotDir),
        }
        Ok(v)
    }
}

#[async_trait]
impl FileSystem for FakeFs {
    async fn lookup(&self, parent: Ino, name: &OsStr) -> FsResult<Entry> {
        match name.to_str() {
            Some("panics") => panic!("simulated core bug"),
            Some("offline") => return Err(FsError::Offline),
            _ => {}
        }
        let children = self.children(parent)?;
        let found = children.iter().skip(2).find(|(_, n)| OsStr::new(n) == name);
        match found {
            Some((ino, _)) => self.entry(*ino),
            None => Err(FsError::NotFound),
        }
    }
    async fn getattr(&self, ino: Ino) -> FsResult<Entry> {
        self.entry(ino)
    }
    async fn forget(&self, _ino: Ino, _nlookup: u64) {}
    async fn opendir(&self, ino: Ino) -> FsResult<Fh> {
        self.children(ino).map(|_| 1)
    }
    async fn readdir(&self, ino: Ino, _fh: Fh, offset: u64) -> FsResult<Vec<DirEntry>> {
        let children = self.children(ino)?;
        let mut out = Vec::new();
        for (i, (child, name)) in children.into_iter().enumerate().skip(offset as usize) {
            let attr = self.attr_of(child)?;
            out.push(DirEntry {
                ino: child,
                name,
                kind: attr.kind,
                next_offset: i as u64 + 1,
                attr,
            });
        }
        Ok(out)
    }
    async fn releasedir(&self, _ino: Ino, _fh: Fh) {}
    async fn open(&self, ino: Ino, _flags: i32, _caller: Caller) -> FsResult<OpenReply> {
        let attr = self.attr_of(ino)?;
        if attr.kind == FileKind::Dir {
            return Err(FsError::IsDir);
        }
        let passthrough = (ino == PASSTHROUGH_INO).then(|| self.passthrough_file.clone());
        Ok(OpenReply {
            fh: ino,
            keep_cache: true,
            direct_io: false,
            passthrough,
        })
    }
    async fn read(&self, ino: Ino, _fh: Fh, offset: u64, size: u32) -> FsResult<Bytes> {
        let content = match ino {
            FILE_INO => &self.file_content,
            PASSTHROUGH_INO => {
                self.passthrough_reads.fetch_add(1, Ordering::Relaxed);
                &self.passthrough_content
            }
            _ => return Err(FsError::Io("no content".into())),
        };
        self.reads.fetch_add(1, Ordering::Relaxed);
        let start = (offset as usize).min(content.len());
        let end = (start + size as usize).min(content.len());
        Ok(Bytes::copy_from_slice(&content[start..end]))
    }
    async fn release(&self, _ino: Ino, _fh: Fh) {}
    async fn statfs(&self) -> FsResult<StatFs> {
        Ok(StatFs {
            blocks: 1000,
            bfree: 600,
            bavail: 500,
            files: 10,
            ffree: 5,
            bsize: 4096,
            namelen: 255,
        })
    }
    async fn getxattr(&self, ino: Ino, name: &OsStr) -> FsResult<Vec<u8>> {
        self.attr_of(ino)?;
        match name.to_str() {
            Some("user.cells.hash") => Ok(b"0123456789abcdef".to_vec()),
            _ => Err(FsError::NoAttr),
        }
    }
    async fn listxattr(&self, ino: Ino) -> FsResult<Vec<String>> {
        self.attr_of(ino)?;
        Ok(vec!["user.cells.hash".into(), "user.cells.uuid".into()])
    }
}
