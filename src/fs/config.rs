//! Tunables of the file-system core.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct FsConfig {
    /// Workspace slug shown at the mount root; `None` = the root lists the workspaces.
    pub workspace: Option<String>,
    /// Owner reported for every inode.
    pub uid: u32,
    pub gid: u32,
    /// How long the kernel may cache attributes and entries.
    pub attr_ttl: Duration,
    /// How long a folder listing (and a node's description) is trusted before it is checked
    /// again, when no live event feed tells us about changes.
    pub dir_ttl: Duration,
    /// The same while the event feed is live: the feed reports changes, listings are only a
    /// safety net.
    pub dir_ttl_live_feed: Duration,
    /// Largest sequential read-ahead window, bytes.
    pub readahead_max: u64,
    /// First read-ahead window, bytes (doubles on sequential reads up to `readahead_max`).
    pub readahead_min: u64,
    /// Most bytes asked for in one read-ahead request (whole chunks, aligned): fewer round
    /// trips and index transactions on sequential reads. Demand reads ask for what they need.
    pub fetch_request_max: u64,
    /// Concurrent range requests, for demand reads and for read-ahead each.
    pub fetch_parallelism: usize,
    /// Bytes of fetched chunks kept in memory until read (all files together): a cold
    /// sequential read is answered from them, not read back from the cache file. Enough for
    /// the read-ahead window and the requests in flight beyond it.
    pub fetched_in_memory: usize,
    /// First and longest wait between reachability probes while offline.
    pub offline_probe_min: Duration,
    pub offline_probe_max: Duration,
}

impl Default for FsConfig {
    fn default() -> Self {
        Self {
            workspace: None,
            uid: 0,
            gid: 0,
            attr_ttl: Duration::from_secs(1),
            dir_ttl: Duration::from_secs(3),
            dir_ttl_live_feed: Duration::from_secs(60),
            readahead_max: 64 << 20,
            readahead_min: 4 << 20,
            fetch_request_max: 8 << 20,
            fetch_parallelism: 4,
            fetched_in_memory: 96 << 20,
            offline_probe_min: Duration::from_secs(1),
            offline_probe_max: Duration::from_secs(30),
        }
    }
}
