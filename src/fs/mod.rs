//! The OS-independent file-system core: inodes, handles, the read path (and later the write
//! path), answering in plain result types so it is testable without a kernel.

pub mod api;
mod config;
mod content;
mod core;
mod dir;
pub mod errors;
mod feed;
mod fetch;
mod follow;
mod hooks;
pub mod junk;
mod just_fetched;
mod mutate;
mod offline;
mod open_staging;
mod ops;
mod pin;
#[cfg(test)]
mod pin_tests;
mod pin_worker;
mod read;
mod readahead;
mod readdir;
mod replay;
mod write;
mod write_digest;
pub mod xattr;

#[cfg(any(test, feature = "test-util"))]
pub mod testing;
#[cfg(test)]
mod tests;

pub use api::*;
pub use config::FsConfig;
pub use core::CellsFs;
pub use errors::from_client_error;
pub use hooks::CoreHooks;
pub use pin::{PinControl, PinCounts, PinProgress};
pub use write::WriteSetup;
