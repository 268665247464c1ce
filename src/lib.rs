//! cells-mount: a Pydio Cells workspace as a local folder.
//!
//! Layers, bottom up: [`names`] and [`hash`] (pure helpers), [`client`] (talks to Cells),
//! the `cells-cache` crate (content on disk), then the file-system core and the platform
//! adapters that translate kernel requests onto it.

pub mod auth;
pub mod client;
pub mod config;
#[cfg(unix)]
pub mod control;
pub mod fs;
pub mod hash;
pub mod meta;
pub mod names;
/// Platform adapters (FUSE; WinFsp later): kernel requests onto the core.
#[path = "../platform/mod.rs"]
pub mod platform;
pub mod sync;
