//! Platform adapters: the layer that turns kernel file-system requests (FUSE on Linux and
//! macOS; WinFsp on Windows, later) into calls on the core's `FileSystem` trait.

#[cfg(unix)]
pub mod fuse;

/// Server names ↔ Windows names (pure; compiled and tested everywhere, used by `winfsp`).
pub mod winnames;

/// Core errors → NTSTATUS, attributes → FILETIME/FILE_ATTRIBUTE_* (pure; used by `winfsp`).
pub mod winmap;

/// The WinFsp adapter (Windows).
#[cfg(windows)]
pub mod winfsp;

/// macOS specifics of the FUSE adapter (macFUSE mount options).
pub mod macos;
