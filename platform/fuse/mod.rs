//! The FUSE adapter (Linux, macOS): translates fuser requests onto the core's `FileSystem`
//! trait, replies from tokio tasks behind a reply-on-drop guard, maps errors to errno in one
//! place, and mounts/unmounts sessions.

mod adapter;
mod attr;
pub mod errno;
mod guard;
mod iomode;
mod session;

pub use adapter::FuseAdapter;
pub use errno::{ErrorCounts, ErrorStats, errno};
pub use session::{FuseInvalidator, FuseMount, MountOptions};
