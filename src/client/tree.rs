//! Tree operations over the v4 REST API: stat, paged listing, mkdir, delete, move, copy.

use super::CellsClient;
use super::assumptions::{REST_PREFIX, children_pattern, tree_stat_path};
use super::error::{ClientError, ClientResult};
use super::http::Retry;
use super::model::Node;
use super::remote::ListPage;
use super::wire::{WireBulk, WireStat, list_reply, stat_reply};
use crate::names::RemotePath;
use futures::Stream;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

/// Page size of [`CellsClient::list_all`]: big enough to keep round trips few, small enough
/// that one reply stays a few hundred KiB.
pub const LIST_PAGE_SIZE: u32 = 500;

/// Largest page we ask for, whatever the caller wants.
const MAX_PAGE: u32 = 5_000;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct WireDeleteReply {
    delete_jobs: Vec<WireJobRef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct WireJobRef {
    uuid: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct WireJobStart {
    job_uuid: Option<String>,
}

/// Refuses to act on the root or on a workspace root: those are not ours to create, delete
/// or move.
fn require_inside_workspace(path: &RemotePath, what: &str) -> ClientResult<()> {
    if path.components().count() < 2 {
        return Err(ClientError::Forbidden(format!(
            "cannot {what} {path:?}: not inside a workspace"
        )));
    }
    Ok(())
}

impl CellsClient {
    /// Metadata of one node (`GET /a/tree/stat/{path}`).
    pub async fn stat(&self, path: &RemotePath) -> ClientResult<Node> {
        let reply: WireStat = self
            .http()
            .rest_json::<(), _>(Method::GET, &tree_stat_path(path), None, Retry::Idempotent)
            .await?;
        stat_reply(path, reply)
    }

    /// One page of `dir`'s children (`POST /a/tree/stats` with `dir/*`).
    pub async fn list_page(
        &self,
        dir: &RemotePath,
        offset: u64,
        limit: u32,
    ) -> ClientResult<ListPage> {
        let limit = limit.clamp(1, MAX_PAGE);
        let body = json!({
            "NodePaths": [children_pattern(dir)],
            "Offset": offset,
            "Limit": limit,
        });
        let reply: WireBulk = self
            .http()
            .rest_json(
                Method::POST,
                &format!("{REST_PREFIX}/tree/stats"),
                Some(&body),
                Retry::Idempotent,
            )
            .await?;
        let page = list_reply(dir, offset, limit, reply);
        if !page.refused.is_empty() {
            tracing::warn!(
                "listing {dir}: refused {} entries, first: {}",
                page.refused.len(),
                page.refused[0]
            );
        }
        Ok(page)
    }

    /// All of `dir`'s children, page by page, fetched lazily as the stream is polled: a
    /// folder of 100,000 entries never becomes one giant reply or one giant vector.
    pub fn list_all(
        &self,
        dir: &RemotePath,
        page_size: u32,
    ) -> impl Stream<Item = ClientResult<ListPage>> + Send + 'static {
        let client = self.clone();
        let dir = dir.clone();
        futures::stream::try_unfold(Some(0u64), move |next| {
            let client = client.clone();
            let dir = dir.clone();
            async move {
                let Some(offset) = next else {
                    return Ok(None);
                };
                let page = client.list_page(&dir, offset, page_size).await?;
                let following = page.next_offset;
                Ok(Some((page, following)))
            }
        })
    }

    /// Creates folder `path` and any missing parents (`POST /a/tree/create`, Recursive).
    pub async fn mkdir(&self, path: &RemotePath) -> ClientResult<()> {
        require_inside_workspace(path, "create")?;
        let body = json!({
            "Nodes": [{"Path": path.as_str(), "Type": "COLLECTION"}],
            "Recursive": true,
        });
        let _: serde_json::Value = self
            .http()
            .rest_json(
                Method::POST,
                &format!("{REST_PREFIX}/tree/create"),
                Some(&body),
                Retry::Once,
            )
            .await?;
        Ok(())
    }

    /// Deletes `path` to the recycle bin and waits for the delete jobs.
    pub async fn delete(&self, path: &RemotePath) -> ClientResult<()> {
        require_inside_workspace(path, "delete")?;
        let body = json!({"Nodes": [{"Path": path.as_str()}], "RemovePermanently": false});
        let reply: WireDeleteReply = self
            .http()
            .rest_json(
                Method::POST,
                &format!("{REST_PREFIX}/tree/delete"),
                Some(&body),
                Retry::Once,
            )
            .await?;
        for job in reply.delete_jobs {
            if let Some(uuid) = job.uuid.filter(|u| !u.is_empty()) {
                self.wait_job(&uuid).await?;
            }
        }
        Ok(())
    }

    /// Moves or renames `from` to the full path `to` and waits for the job.
    pub async fn rename(&self, from: &RemotePath, to: &RemotePath) -> ClientResult<()> {
        self.move_or_copy("move", from, to).await
    }

    /// Copies `from` to the full path `to` and waits for the job.
    pub async fn copy(&self, from: &RemotePath, to: &RemotePath) -> ClientResult<()> {
        self.move_or_copy("copy", from, to).await
    }

    async fn move_or_copy(
        &self,
        job: &str,
        from: &RemotePath,
        to: &RemotePath,
    ) -> ClientResult<()> {
        require_inside_workspace(from, job)?;
        require_inside_workspace(to, job)?;
        if to.starts_with(from) {
            return Err(ClientError::Conflict(format!(
                "cannot {job} {from} into itself ({to})"
            )));
        }
        // The job parameters travel as a JSON document inside a JSON string.
        let params =
            json!({"nodes": [from.as_str()], "target": to.as_str(), "targetParent": false});
        let body = json!({"JsonParameters": params.to_string()});
        let reply: WireJobStart = self
            .http()
            .rest_json(
                Method::PUT,
                &format!("{REST_PREFIX}/jobs/user/{job}"),
                Some(&body),
                Retry::Once,
            )
            .await?;
        let uuid = reply
            .job_uuid
            .filter(|u| !u.is_empty())
            .ok_or_else(|| ClientError::Protocol(format!("{job} job started without a JobUuid")))?;
        self.wait_job(&uuid).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_protected() {
        assert!(require_inside_workspace(&RemotePath::root(), "delete").is_err());
        assert!(require_inside_workspace(&RemotePath::parse("ws").unwrap(), "delete").is_err());
        assert!(require_inside_workspace(&RemotePath::parse("ws/a").unwrap(), "delete").is_ok());
    }
}
