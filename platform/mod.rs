//! Platform adapters: the layer that turns kernel file-system requests (FUSE on Linux and
//! macOS; WinFsp on Windows, later) into calls on the core's `FileSystem` trait.

#[cfg(unix)]
pub mod fuse;
