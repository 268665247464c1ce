//! The seam between the file-system core and Cells: a trait the real client implements, and
//! that tests implement with in-memory and fault-injecting doubles.

use super::error::ClientResult;
use super::model::Node;
use super::pieces::Pieces;
use crate::names::RemotePath;
use async_trait::async_trait;
use std::ops::Range;
use std::path::Path;

/// One page of a folder listing. Entries the server sent that failed validation are not in
/// `nodes`; they are counted in `refused` so callers can log them once.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub nodes: Vec<Node>,
    pub refused: Vec<String>,
    /// Offset of the next page, `None` when this was the last.
    pub next_offset: Option<u64>,
    /// Total children as reported by the server, when it says.
    pub total: Option<u64>,
}

/// What the server recorded after an upload.
#[derive(Debug, Clone)]
pub struct UploadOutcome {
    /// The node as the server now describes it (hash may be absent if indexing lags).
    pub node: Option<Node>,
    /// Cells hash computed locally while uploading.
    pub local_cells_hash: String,
    pub size: u64,
}

#[async_trait]
pub trait Remote: Send + Sync + 'static {
    /// Metadata of one node.
    async fn stat(&self, path: &RemotePath) -> ClientResult<Node>;

    /// One page of the children of `dir` (the root lists workspaces).
    async fn list_page(&self, dir: &RemotePath, offset: u64, limit: u32) -> ClientResult<ListPage>;

    /// Bytes `range` of a file's current content, in the pieces they arrived in. A short reply
    /// (the file shrank) is returned as is; the caller checks lengths.
    async fn read_range(&self, path: &RemotePath, range: Range<u64>) -> ClientResult<Pieces>;

    /// Uploads a local file as `path` (single PUT or multipart, chosen by size).
    async fn upload_file(&self, path: &RemotePath, local: &Path) -> ClientResult<UploadOutcome>;

    /// Creates a folder and any missing parents.
    async fn mkdir(&self, path: &RemotePath) -> ClientResult<()>;

    /// Deletes a file or folder (to the recycle bin) and waits for the job.
    async fn delete(&self, path: &RemotePath) -> ClientResult<()>;

    /// Moves or renames `from` to the full path `to` and waits for the job.
    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> ClientResult<()>;

    /// Copies `from` to the full path `to` and waits for the job.
    async fn copy(&self, from: &RemotePath, to: &RemotePath) -> ClientResult<()>;
}
