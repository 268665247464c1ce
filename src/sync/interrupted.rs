//! Clean-up after a crash in the middle of a multipart upload: the server still holds the
//! unfinished upload (its parts are stored but no file exists); it must be aborted so that
//! no temporary object is left behind.

use crate::client::assumptions::S3_BUCKET;
use crate::client::http::{ErrorFlavor, Retry, read_limited};
use crate::client::{CellsClient, ClientError, ClientResult};
use crate::names::RemotePath;
use async_trait::async_trait;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

/// Query values are encoded strictly (RFC 3986 unreserved kept), the form SigV4 signs.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Finds and aborts unfinished uploads to one path.
#[async_trait]
pub trait InterruptedUploads: Send + Sync {
    /// Aborts every unfinished multipart upload whose key is `target`; returns how many.
    async fn abort_interrupted(&self, target: &RemotePath) -> ClientResult<usize>;
}

#[derive(Deserialize, Default)]
struct ListResult {
    #[serde(rename = "Upload", default)]
    uploads: Vec<UploadItem>,
}

#[derive(Deserialize)]
struct UploadItem {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "UploadId")]
    upload_id: String,
}

/// Upload ids in a `ListMultipartUploadsResult` whose key is `key`.
fn ids_for(xml: &str, key: &str) -> ClientResult<Vec<String>> {
    let parsed: ListResult = quick_xml::de::from_str(xml)
        .map_err(|e| ClientError::Protocol(format!("multipart upload list: {e}")))?;
    Ok(parsed
        .uploads
        .into_iter()
        .filter(|u| u.key.trim_matches('/') == key)
        .map(|u| u.upload_id)
        .collect())
}

#[async_trait]
impl InterruptedUploads for CellsClient {
    async fn abort_interrupted(&self, target: &RemotePath) -> ClientResult<usize> {
        let mut list_url = self.http().url(S3_BUCKET)?;
        list_url.set_query(Some("uploads"));
        let resp = self
            .http()
            .send(Retry::Idempotent, ErrorFlavor::S3, |token| {
                self.s3_request(token, reqwest::Method::GET, &list_url, &[])
            })
            .await?;
        let body = read_limited(resp, 8 * 1024 * 1024).await?;
        let ids = ids_for(&String::from_utf8_lossy(&body), target.as_str())?;
        for id in &ids {
            let query = format!(
                "uploadId={}",
                percent_encoding::utf8_percent_encode(id, QUERY_VALUE)
            );
            let url = self.s3_url(target, Some(&query))?;
            self.http()
                .send(Retry::Idempotent, ErrorFlavor::S3, |token| {
                    self.s3_request(token, reqwest::Method::DELETE, &url, &[])
                })
                .await?;
            tracing::info!("aborted an interrupted upload to {target}");
        }
        Ok(ids.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_uploads_of_the_target_key_are_picked() {
        let xml = r#"<?xml version="1.0"?><ListMultipartUploadsResult><Bucket>io</Bucket>
            <Upload><Key>ws/a.bin</Key><UploadId>one</UploadId></Upload>
            <Upload><Key>ws/a.bin.other</Key><UploadId>two</UploadId></Upload>
            </ListMultipartUploadsResult>"#;
        assert_eq!(ids_for(xml, "ws/a.bin").unwrap(), vec!["one".to_string()]);
        let empty = "<ListMultipartUploadsResult><Bucket>io</Bucket></ListMultipartUploadsResult>";
        assert!(ids_for(empty, "ws/a.bin").unwrap().is_empty());
    }
}
