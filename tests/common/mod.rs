//! Helpers shared by the mount integration tests: FUSE availability, polling with a deadline,
//! seeded test servers and the real `cells-mount` binary run in the foreground.
#![allow(dead_code)] // each test binary uses a different subset

pub mod fake_fs;
pub mod mounted;

use std::path::Path;
use std::time::{Duration, Instant};

/// True when this machine can mount FUSE file systems. Tests call it first and return early,
/// loudly, only when /dev/fuse is missing.
pub fn fuse_available(test: &str) -> bool {
    if Path::new("/dev/fuse").exists() {
        return true;
    }
    eprintln!("\n!!! SKIPPING {test}: /dev/fuse is absent, FUSE mounts are impossible here !!!\n");
    false
}

/// Polls `cond` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `path` is currently a mount point (its device differs from its parent's).
pub fn is_mountpoint(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(me), Some(parent)) = (std::fs::metadata(path), path.parent()) else {
        return false;
    };
    std::fs::metadata(parent).is_ok_and(|p| p.dev() != me.dev())
}

/// Deterministic pseudo-random bytes (xorshift), so tests need no fixture files.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
