//! An in-memory [`Remote`] for tests: a tree of folders and files with real content hashes,
//! call counters, a read log, a switch to fail like an unreachable or broken server, a gate
//! that holds reads, and injection of entries a hostile server might send.

use crate::client::{
    ClientError, ClientResult, ContentVersion, HashKind, ListPage, Node, NodeKind, Pieces, Remote,
    UploadOutcome,
};
use crate::names::RemotePath;
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::watch;

/// Size of the pieces the in-memory server delivers a body in: odd, so that cache chunks
/// straddle piece boundaries.
const MOCK_PIECE: usize = 100_003;

/// How the double fails every request while set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Offline,
    Server,
}

#[derive(Debug, Clone)]
struct MemNode {
    kind: NodeKind,
    content: Bytes,
    uuid: String,
    mtime: i64,
    /// False while "uploading": the node has no content version.
    versioned: bool,
}

#[derive(Default)]
pub struct Counts {
    pub stat: AtomicUsize,
    pub list: AtomicUsize,
    pub read: AtomicUsize,
}

pub struct MemoryRemote {
    tree: Mutex<BTreeMap<String, MemNode>>,
    extra: Mutex<Vec<(String, Node)>>,
    failure: Mutex<Option<Failure>>,
    reads_open: watch::Sender<bool>,
    reads: Mutex<Vec<(String, Range<u64>)>>,
    next_uuid: AtomicUsize,
    pub counts: Counts,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Default for MemoryRemote {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRemote {
    pub fn new() -> Self {
        Self {
            tree: Mutex::default(),
            extra: Mutex::default(),
            failure: Mutex::default(),
            reads_open: watch::channel(true).0,
            reads: Mutex::default(),
            next_uuid: AtomicUsize::new(1),
            counts: Counts::default(),
        }
    }

    fn put(&self, path: &str, kind: NodeKind, content: Bytes) {
        let path = RemotePath::parse(path).expect("test paths are valid");
        let mut tree = lock(&self.tree);
        let mut parent = path.parent();
        while !parent.is_root() && !tree.contains_key(parent.as_str()) {
            let uuid = format!("uuid-{}", self.next_uuid.fetch_add(1, Ordering::Relaxed));
            tree.insert(
                parent.as_str().into(),
                MemNode {
                    kind: NodeKind::Folder,
                    content: Bytes::new(),
                    uuid,
                    mtime: 1_700_000_000,
                    versioned: true,
                },
            );
            parent = parent.parent();
        }
        let uuid = match tree.get(path.as_str()) {
            Some(old) if old.kind == kind => old.uuid.clone(),
            _ => format!("uuid-{}", self.next_uuid.fetch_add(1, Ordering::Relaxed)),
        };
        tree.insert(
            path.as_str().into(),
            MemNode {
                kind,
                content,
                uuid,
                mtime: 1_700_000_000,
                versioned: true,
            },
        );
    }

    /// Creates a folder (and missing parents).
    pub fn add_dir(&self, path: &str) {
        self.put(path, NodeKind::Folder, Bytes::new());
    }

    /// Creates or replaces a file's content (and missing parents); the uuid is kept.
    pub fn add_file(&self, path: &str, content: impl Into<Bytes>) {
        self.put(path, NodeKind::File, content.into());
    }

    /// Marks a file as being uploaded: no content version.
    pub fn set_unversioned(&self, path: &str) {
        if let Some(n) = lock(&self.tree).get_mut(path) {
            n.versioned = false;
        }
    }

    /// Removes a node and everything below it.
    pub fn remove(&self, path: &str) {
        let prefix = format!("{path}/");
        lock(&self.tree).retain(|p, _| p != path && !p.starts_with(&prefix));
    }

    /// Renames a node (with its subtree), keeping uuids.
    pub fn move_node(&self, from: &str, to: &str) {
        let mut tree = lock(&self.tree);
        let prefix = format!("{from}/");
        let moved: Vec<String> = tree
            .keys()
            .filter(|p| *p == from || p.starts_with(&prefix))
            .cloned()
            .collect();
        for old in moved {
            if let Some(n) = tree.remove(&old) {
                tree.insert(format!("{to}{}", &old[from.len()..]), n);
            }
        }
    }

    pub fn set_failure(&self, failure: Option<Failure>) {
        *lock(&self.failure) = failure;
    }

    /// Holds every `read_range` until called again with `true`.
    pub fn set_reads_open(&self, open: bool) {
        self.reads_open.send_replace(open);
    }

    /// Adds a node to every listing of `dir`, whatever its path says (hostile-server tests).
    pub fn inject_listing_node(&self, dir: &str, node: Node) {
        lock(&self.extra).push((dir.to_owned(), node));
    }

    /// The ranges read so far, in order.
    pub fn read_log(&self) -> Vec<(String, Range<u64>)> {
        lock(&self.reads).clone()
    }

    pub fn reads(&self) -> usize {
        self.counts.read.load(Ordering::SeqCst)
    }

    pub fn lists(&self) -> usize {
        self.counts.list.load(Ordering::SeqCst)
    }

    /// The node as the server would describe it.
    pub fn node(&self, path: &str) -> Option<Node> {
        let tree = lock(&self.tree);
        tree.get(path).map(|n| to_node(path, n))
    }

    fn check(&self) -> ClientResult<()> {
        match *lock(&self.failure) {
            None => Ok(()),
            Some(Failure::Offline) => Err(ClientError::Offline("connection refused".into())),
            Some(Failure::Server) => Err(ClientError::Server {
                status: 500,
                message: "internal error".into(),
            }),
        }
    }
}

fn to_node(path: &str, n: &MemNode) -> Node {
    let version = (n.kind == NodeKind::File && n.versioned).then(|| ContentVersion {
        kind: HashKind::CellsHash,
        value: crate::hash::cells_hash(&n.content),
    });
    Node {
        uuid: Some(n.uuid.clone()),
        path: RemotePath::parse(path).expect("stored paths are valid"),
        kind: n.kind,
        size: n.content.len() as u64,
        mtime: n.mtime,
        version,
        storage_etag: None,
        read_only: false,
        workspace: None,
    }
}

#[async_trait]
impl Remote for MemoryRemote {
    async fn stat(&self, path: &RemotePath) -> ClientResult<Node> {
        self.counts.stat.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.node(path.as_str())
            .ok_or_else(|| ClientError::NotFound(path.to_string()))
    }

    async fn list_page(&self, dir: &RemotePath, offset: u64, limit: u32) -> ClientResult<ListPage> {
        self.counts.list.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        let mut children: Vec<Node> = {
            let tree = lock(&self.tree);
            if !dir.is_root()
                && tree
                    .get(dir.as_str())
                    .is_none_or(|n| n.kind != NodeKind::Folder)
            {
                return Err(ClientError::NotFound(dir.to_string()));
            }
            tree.iter()
                .filter(|(p, _)| RemotePath::parse(p).is_ok_and(|p| p.parent() == *dir))
                .map(|(p, n)| to_node(p, n))
                .collect()
        };
        children.extend(
            lock(&self.extra)
                .iter()
                .filter(|(d, _)| d == dir.as_str())
                .map(|(_, n)| n.clone()),
        );
        let total = children.len() as u64;
        let start = offset.min(total) as usize;
        let end = (offset + u64::from(limit)).min(total) as usize;
        Ok(ListPage {
            nodes: children[start..end].to_vec(),
            refused: Vec::new(),
            next_offset: ((end as u64) < total).then_some(end as u64),
            total: Some(total),
        })
    }

    async fn read_range(&self, path: &RemotePath, range: Range<u64>) -> ClientResult<Pieces> {
        self.counts.read.fetch_add(1, Ordering::SeqCst);
        let mut open = self.reads_open.subscribe();
        // Ignoring the error is right: the sender lives as long as `self`.
        let _ = open.wait_for(|o| *o).await;
        self.check()?;
        lock(&self.reads).push((path.to_string(), range.clone()));
        let tree = lock(&self.tree);
        let n = tree
            .get(path.as_str())
            .ok_or_else(|| ClientError::NotFound(path.to_string()))?;
        let len = n.content.len() as u64;
        let (s, e) = (range.start.min(len) as usize, range.end.min(len) as usize);
        // In uneven pieces, as a network delivers them: chunks straddle piece boundaries.
        let body = n.content.slice(s..e);
        let parts = (0..body.len())
            .step_by(MOCK_PIECE)
            .map(|at| body.slice(at..(at + MOCK_PIECE).min(body.len())))
            .collect();
        Ok(Pieces::new(parts))
    }

    async fn upload_file(&self, _path: &RemotePath, _local: &Path) -> ClientResult<UploadOutcome> {
        Err(ClientError::Protocol(
            "uploads are not modelled by MemoryRemote".into(),
        ))
    }

    async fn mkdir(&self, path: &RemotePath) -> ClientResult<()> {
        self.check()?;
        self.add_dir(path.as_str());
        Ok(())
    }

    async fn delete(&self, path: &RemotePath) -> ClientResult<()> {
        self.check()?;
        self.remove(path.as_str());
        Ok(())
    }

    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> ClientResult<()> {
        self.check()?;
        self.move_node(from.as_str(), to.as_str());
        Ok(())
    }

    async fn copy(&self, from: &RemotePath, to: &RemotePath) -> ClientResult<()> {
        self.check()?;
        let content = lock(&self.tree)
            .get(from.as_str())
            .map(|n| n.content.clone());
        match content {
            Some(c) => {
                self.add_file(to.as_str(), c);
                Ok(())
            }
            None => Err(ClientError::NotFound(from.to_string())),
        }
    }
}
