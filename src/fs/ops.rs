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
        let closes_before = self.write_closes();
        let rec = self.fresh_record(ino).await?;
        self.current_entry(rec, closes_before).await
    }

    fn lookup_now(&self, parent: Ino, name: &OsStr) -> Option<FsResult<Entry>> {
        self.do_lookup_now(parent, name)
    }

    fn getattr_now(&self, ino: Ino) -> Option<FsResult<Entry>> {
        let closes_before = self.write_closes();
        // A point read when the record is not cached: a create drops its folder's record,
        // and the kernel asks for the folder's attributes before the next name in it.
        let rec = self.record_now(ino).ok()?;
        if !self.record_current(&rec) {
            return None;
        }
        self.current_entry_now(&rec, closes_before).map(Ok)
    }

    fn create_now(&self, parent: Ino, name: &OsStr) -> Option<FsResult<(Entry, OpenReply)>> {
        self.do_create_now(parent, name)
    }

    fn write_now(&self, ino: Ino, fh: Fh, offset: u64, data: &[u8]) -> Option<FsResult<u32>> {
        self.do_write_now(ino, fh, offset, data)
    }

    fn read_now(
        &self,
        ino: Ino,
        fh: Fh,
        offset: u64,
        size: u32,
        buf: &mut Vec<u8>,
    ) -> Option<FsResult<ReadNow>> {
        self.do_read_now(ino, fh, offset, size, buf)
    }

    fn flush_now(&self, ino: Ino, fh: Fh) -> Option<FsResult<()>> {
        self.do_flush_now(ino, fh)
    }

    /// Inodes live in the index for as long as the server has the node, so nothing to drop.
    async fn forget(&self, _ino: Ino, _nlookup: u64) {}

    async fn opendir(&self, ino: Ino) -> FsResult<Fh> {
        self.do_opendir(ino).await
    }

    async fn readdir(&self, ino: Ino, fh: Fh, offset: u64) -> FsResult<Vec<DirEntry>> {
        self.do_readdir(ino, fh, offset).await
    }

    fn readdir_now(&self, ino: Ino, fh: Fh, offset: u64) -> Option<FsResult<Vec<DirEntry>>> {
        self.do_readdir_now(ino, fh, offset)
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
        self.do_release(fh).await
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

    async fn create(
        &self,
        parent: Ino,
        name: &OsStr,
        _mode: u32,
        flags: i32,
        _caller: Caller,
    ) -> FsResult<(Entry, OpenReply)> {
        self.do_create(parent, name, flags).await
    }

    async fn mknod(
        &self,
        parent: Ino,
        name: &OsStr,
        mode: u32,
        _caller: Caller,
    ) -> FsResult<Entry> {
        self.do_mknod(parent, name, mode).await
    }

    async fn write(&self, ino: Ino, fh: Fh, offset: u64, data: &[u8]) -> FsResult<u32> {
        self.do_write(ino, fh, offset, data).await
    }

    async fn setattr(&self, ino: Ino, attr: SetAttr) -> FsResult<Entry> {
        self.do_setattr(ino, attr).await
    }

    async fn mkdir(
        &self,
        parent: Ino,
        name: &OsStr,
        _mode: u32,
        _caller: Caller,
    ) -> FsResult<Entry> {
        self.do_mkdir(parent, name).await
    }

    async fn unlink(&self, parent: Ino, name: &OsStr) -> FsResult<()> {
        self.do_unlink(parent, name).await
    }

    async fn rmdir(&self, parent: Ino, name: &OsStr) -> FsResult<()> {
        self.do_rmdir(parent, name).await
    }

    async fn rename(
        &self,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> FsResult<()> {
        self.do_rename(parent, name, new_parent, new_name, flags)
            .await
    }

    async fn fsync(&self, ino: Ino, fh: Fh) -> FsResult<()> {
        self.do_sync(ino, fh, true).await
    }

    async fn flush(&self, ino: Ino, fh: Fh) -> FsResult<()> {
        self.do_sync(ino, fh, false).await
    }

    async fn setxattr(&self, ino: Ino, name: &OsStr, _value: &[u8]) -> FsResult<()> {
        self.do_setxattr(ino, name).await
    }

    async fn removexattr(&self, ino: Ino, name: &OsStr) -> FsResult<()> {
        self.do_setxattr(ino, name).await
    }
}
