//! The WinFsp adapter (Windows): translates WinFsp's path-based requests onto the core's
//! inode-based `FileSystem` trait, maps names (`winnames`) and errors (`winmap`), and mounts
//! on a drive letter or a folder.

mod adapter;
mod mount;
mod paths;

pub use adapter::CellsWinFs;
pub use mount::{WinFspMount, WinMountOptions};
