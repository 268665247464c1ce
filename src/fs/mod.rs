//! The OS-independent file-system core: inodes, handles, the read path (and later the write
//! path), answering in plain result types so it is testable without a kernel.

pub mod api;

pub use api::*;
