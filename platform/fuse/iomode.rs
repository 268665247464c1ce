//! FUSE passthrough bookkeeping. The kernel requires every open of an inode that has a backing
//! file to be a passthrough open with the same backing id, and refuses a passthrough open of an
//! inode that is already open in caching mode. So the decision is per inode, not per open:
//! the first open decides, later opens follow it until the last handle is released. A
//! `BackingId` must live until its handles are released (dropping it closes it in the kernel).

use crate::fs::Ino;
use fuser::BackingId;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
struct InodeIo {
    backing: Option<BackingId>,
    open_handles: u64,
}

#[derive(Default)]
pub struct IoModes {
    inodes: Mutex<HashMap<Ino, InodeIo>>,
}

impl IoModes {
    /// Registers one more open handle of `ino` and sends the open reply while the lock is
    /// held, so no concurrent release can close the backing id between decision and reply.
    /// `backing` is called (at most once, only for the first open of the inode) to try to
    /// start passthrough; it returns `None` when the kernel refused or the core offered no
    /// local file. `send` gets the backing id to reply with, if any.
    pub fn open<R, T>(
        &self,
        ino: Ino,
        reply: R,
        backing: impl FnOnce(&R) -> Option<BackingId>,
        send: impl FnOnce(R, Option<&BackingId>) -> T,
    ) -> T {
        let mut inodes = self.inodes.lock().unwrap_or_else(|p| p.into_inner());
        let io = inodes.entry(ino).or_default();
        if io.open_handles == 0 {
            io.backing = backing(&reply);
        }
        io.open_handles += 1;
        send(reply, io.backing.as_ref())
    }

    /// Registers a handle the core serves from local state (created, or open for writing).
    /// Returns false, registering nothing, while the inode is open in passthrough: the
    /// kernel would send this handle's writes straight into the cached version.
    pub fn open_local(&self, ino: Ino) -> bool {
        let mut inodes = self.inodes.lock().unwrap_or_else(|p| p.into_inner());
        let io = inodes.entry(ino).or_default();
        if io.backing.is_some() {
            return false;
        }
        io.open_handles += 1;
        true
    }

    /// Forgets one handle of `ino`; the last one closes the backing id.
    pub fn release(&self, ino: Ino) {
        let mut inodes = self.inodes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(io) = inodes.get_mut(&ino) {
            io.open_handles = io.open_handles.saturating_sub(1);
            if io.open_handles == 0 {
                inodes.remove(&ino);
            }
        }
    }

    /// Handles of `ino` currently open.
    #[cfg(test)]
    pub fn open_handles(&self, ino: Ino) -> u64 {
        let inodes = self.inodes.lock().unwrap_or_else(|p| p.into_inner());
        inodes.get(&ino).map_or(0, |io| io.open_handles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_open_decides_and_last_release_forgets() {
        let modes = IoModes::default();
        let plain = modes.open(7, (), |_| None, |_, b| b.is_none());
        assert!(plain);
        let mut asked = false;
        modes.open(
            7,
            (),
            |_| {
                asked = true;
                None
            },
            |_, _| (),
        );
        assert!(!asked, "a second open must follow the first one's mode");
        assert_eq!(modes.open_handles(7), 2);
        modes.release(7);
        modes.release(7);
        assert_eq!(modes.open_handles(7), 0);
        modes.release(7);
        assert_eq!(modes.open_handles(7), 0);
    }
}
