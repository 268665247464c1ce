//! The cache's error type: what can go wrong, phrased for the caller deciding what to do next.

use std::path::PathBuf;

/// Errors of [`crate::Cache`]. None of them carries file contents or credentials.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The key is empty, too long, or has a character outside `[0-9A-Za-z_-]`.
    #[error("invalid cache key {0:?}: expected 1..=130 characters from [0-9A-Za-z_-]")]
    InvalidKey(String),
    /// Clean (re-fetchable) data was refused: everything left is pinned, held or dirty.
    #[error("cache is full: every remaining entry is pinned, open or not yet uploaded")]
    Full,
    /// Stored or offered content does not match its key or its chunk checksums; it was dropped.
    #[error("cache content is corrupt: {0}")]
    Corrupt(String),
    /// `ensure_entry` was not called for this key (or the entry was evicted or removed since).
    #[error("no cache entry for key {0:?}; declare it with ensure_entry first")]
    UnknownEntry(String),
    /// The key is already cached with another size and that entry cannot be replaced (it is dirty).
    #[error("cache entry {key:?} has size {cached}, but size {declared} was declared")]
    SizeMismatch {
        key: String,
        cached: u64,
        declared: u64,
    },
    /// Bad configuration (chunk size out of range, source file not a regular file, ...).
    #[error("invalid cache configuration: {0}")]
    InvalidConfig(String),
    /// Another process has this cache directory open.
    #[error("cache directory {0} is in use by another process")]
    Locked(PathBuf),
    #[error("cache I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("cache index error: {0}")]
    Index(#[from] rusqlite::Error),
}
