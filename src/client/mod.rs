//! The Cells client: REST tree API (v4, under `/a`), the S3 gateway for content, the event
//! feed, and the types the rest of the program sees.
//!
//! [`CellsClient`] is the entry point; it is cheap to clone (an `Arc` inside) and implements
//! [`Remote`] for the file-system core.

pub mod assumptions;
pub mod config;
pub mod errmap;
pub mod error;
pub mod events;
pub mod http;
mod jobs;
pub mod model;
mod multipart;
pub mod pieces;
pub mod remote;
pub mod s3;
pub mod session;
pub mod tree;
pub mod wire;

pub use config::{ClientConfig, RetryPolicy, Secret, Timeouts};
pub use error::{ClientError, ClientResult};
pub use events::{ChangeEvent, ChangeKind, FeedItem};
pub use http::{StaticToken, TokenSource};
pub use model::{ContentVersion, HashKind, Node, NodeKind, WorkspaceInfo};
pub use pieces::Pieces;
pub use remote::{ListPage, Remote, UploadOutcome};
pub use s3::ObjectHead;
pub use session::{PasswordTokenSource, Session, login};

use crate::names::RemotePath;
use async_trait::async_trait;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

/// The real client. Clones share one connection pool and one token source.
#[derive(Clone)]
pub struct CellsClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: http::Http,
    config: ClientConfig,
}

impl std::fmt::Debug for CellsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CellsClient")
            .field("server", &self.inner.config.server.as_str())
            .finish_non_exhaustive()
    }
}

impl CellsClient {
    /// A client authenticating with the config's token (a personal access token or a JWT
    /// that will not be refreshed).
    pub fn new(config: ClientConfig) -> ClientResult<Self> {
        let tokens = Arc::new(StaticToken(config.token.clone()));
        Self::with_token_source(config, tokens)
    }

    /// A client taking its tokens from `tokens` (refreshed on 401); `config.token` is unused.
    pub fn with_token_source(
        config: ClientConfig,
        tokens: Arc<dyn TokenSource>,
    ) -> ClientResult<Self> {
        let http = http::Http::new(&config, tokens)?;
        Ok(Self {
            inner: Arc::new(Inner { http, config }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    pub(crate) fn http(&self) -> &http::Http {
        &self.inner.http
    }
}

#[async_trait]
impl Remote for CellsClient {
    async fn stat(&self, path: &RemotePath) -> ClientResult<Node> {
        CellsClient::stat(self, path).await
    }

    async fn list_page(&self, dir: &RemotePath, offset: u64, limit: u32) -> ClientResult<ListPage> {
        CellsClient::list_page(self, dir, offset, limit).await
    }

    async fn read_range(&self, path: &RemotePath, range: Range<u64>) -> ClientResult<Pieces> {
        CellsClient::read_range_pieces(self, path, range).await
    }

    async fn upload_file(&self, path: &RemotePath, local: &Path) -> ClientResult<UploadOutcome> {
        CellsClient::upload_file(self, path, local).await
    }

    async fn mkdir(&self, path: &RemotePath) -> ClientResult<()> {
        CellsClient::mkdir(self, path).await
    }

    async fn delete(&self, path: &RemotePath) -> ClientResult<()> {
        CellsClient::delete(self, path).await
    }

    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> ClientResult<()> {
        CellsClient::rename(self, from, to).await
    }

    async fn copy(&self, from: &RemotePath, to: &RemotePath) -> ClientResult<()> {
        CellsClient::copy(self, from, to).await
    }
}
