//! The [`FileSystem`] trait of the adapters, implemented by delegating to the core's modules.

use super::api::*;
use super::core::CellsFs;
use crate::client::Remote;
use async_trait::async_trait;
use bytes::Bytes;
use std::ffi::OsStr;

#[async_trait]
impl<R: Remote> FileSystem for CellsFs<R> {
    async fn lookup(&self, parent: Ino, name: &OsStr) -> FsResult<Entry> {
        self.do_lookup(parent, name).await
    }

    async fn getattr(&self, ino: Ino) -> FsResult<Entry> {
        let rec = self.fresh_record(ino).await?;
        Ok(self.entry_of(&rec))
    }

    /// Inodes live in the index for as long as the server has the node, so nothing to drop.
    async fn forget(&self, _ino: Ino, _nlookup: u64) {}

    async fn opendir(&self, ino: Ino) -> FsResult<Fh> {
        self.do_opendir(ino).await
    }

    async fn readdir(&self, ino: Ino, fh: Fh, offset: u64) -> FsResult<Vec<DirEntry>> {
        self.do_readdir(ino, fh, offset).await
    }

    async fn releasedir(&self, _ino: Ino, fh: Fh) {
        self.do_releasedir(fh)
    }

    async fn open(&self, ino: Ino, flags: i32, _caller: Caller) -> FsResult<OpenReply> {
        self.do_open(ino, flags).await
    }

    async fn read(&self, ino: Ino, fh: Fh, offset: u64, size: u32) -> FsResult<Bytes> {
        self.do_read(ino, fh, offset, size).await
    }

    async fn release(&self, _ino: Ino, fh: Fh) {
        self.do_release(fh)
    }

    async fn statfs(&self) -> FsResult<StatFs> {
        self.do_statfs().await
    }

    async fn getxattr(&self, ino: Ino, name: &OsStr) -> FsResult<Vec<u8>> {
        self.do_getxattr(ino, name).await
    }

    async fn listxattr(&self, ino: Ino) -> FsResult<Vec<String>> {
        self.do_listxattr(ino).await
    }
}
