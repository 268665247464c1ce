//! Multipart upload through the S3 gateway: parts of a multiple of 10 MiB (so the server's
//! recorded Cells hash equals the whole-file hash), a bounded number in flight, and an abort
//! on any failure so that no half-done upload is left on the server.

use super::CellsClient;
use super::assumptions::multipart_part_size;
use super::error::{ClientError, ClientResult};
use super::http::{ErrorFlavor, Retry, classify, read_limited};
use super::s3::etag_of;
use crate::hash::CellsHasher;
use crate::names::RemotePath;
use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde::Deserialize;
use std::path::Path;
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;

/// Query values are encoded strictly (RFC 3986 unreserved kept), the form SigV4 signs.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

#[derive(Deserialize)]
struct InitiateResult {
    #[serde(rename = "UploadId")]
    upload_id: String,
}

fn upload_query(upload_id: &str) -> String {
    format!("uploadId={}", utf8_percent_encode(upload_id, QUERY_VALUE))
}

/// The `CompleteMultipartUpload` document for parts numbered from 1 with their ETags.
fn complete_body(etags: &[String]) -> String {
    let mut xml = String::from("<CompleteMultipartUpload>");
    for (i, etag) in etags.iter().enumerate() {
        let escaped = quick_xml::escape::escape(etag.as_str());
        xml.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>\"{escaped}\"</ETag></Part>",
            i + 1
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    xml
}

impl CellsClient {
    /// Uploads `len` bytes of `local` as `path`; returns the local Cells hash and the size sent.
    pub(crate) async fn upload_multipart(
        &self,
        path: &RemotePath,
        local: &Path,
        len: u64,
    ) -> ClientResult<(String, u64)> {
        let upload_id = self.create_multipart(path).await?;
        match self
            .send_parts_and_complete(path, local, len, &upload_id)
            .await
        {
            Ok(done) => Ok(done),
            Err(e) => {
                if let Err(abort_err) = self.abort_multipart(path, &upload_id).await {
                    tracing::warn!("aborting the multipart upload of {path} failed: {abort_err}");
                }
                Err(e)
            }
        }
    }

    async fn create_multipart(&self, path: &RemotePath) -> ClientResult<String> {
        let url = self.s3_url(path, Some("uploads"))?;
        let resp = self
            .http()
            .send(Retry::Once, ErrorFlavor::S3, |token| {
                self.s3_request(token, Method::POST, &url, &[])
            })
            .await?;
        let body = read_limited(resp, 1024 * 1024).await?;
        let parsed: InitiateResult = quick_xml::de::from_str(&String::from_utf8_lossy(&body))
            .map_err(|e| ClientError::Protocol(format!("multipart start for {path}: {e}")))?;
        if parsed.upload_id.is_empty() {
            return Err(ClientError::Protocol(format!(
                "multipart start for {path}: empty UploadId"
            )));
        }
        Ok(parsed.upload_id)
    }

    async fn send_parts_and_complete(
        &self,
        path: &RemotePath,
        local: &Path,
        len: u64,
        upload_id: &str,
    ) -> ClientResult<(String, u64)> {
        let part_size = multipart_part_size(len);
        let parallel = self.config().upload_parallelism.max(1);
        let mut file = tokio::fs::File::open(local).await?;
        let mut hasher = CellsHasher::new();
        let mut in_flight: JoinSet<ClientResult<(usize, String)>> = JoinSet::new();
        let mut etags: Vec<Option<String>> = Vec::new();
        let mut sent = 0u64;
        // Parts are read in order (the hash needs that) and sent concurrently; at most
        // `parallel` parts are held in memory at once.
        while sent < len {
            let this_part = part_size.min(len - sent) as usize;
            let mut buf = vec![0u8; this_part];
            file.read_exact(&mut buf).await?;
            hasher.update(&buf);
            sent += this_part as u64;
            let index = etags.len();
            etags.push(None);
            if in_flight.len() >= parallel
                && let Some(done) = in_flight.join_next().await
            {
                let (i, etag) = joined(done)?;
                etags[i] = Some(etag);
            }
            let client = self.clone();
            let path = path.clone();
            let upload_id = upload_id.to_owned();
            let data = Bytes::from(buf);
            in_flight.spawn(async move {
                let etag = client
                    .upload_part(&path, &upload_id, index + 1, data)
                    .await?;
                Ok((index, etag))
            });
        }
        while let Some(done) = in_flight.join_next().await {
            let (i, etag) = joined(done)?;
            etags[i] = Some(etag);
        }
        let etags: Vec<String> = etags
            .into_iter()
            .map(|e| e.ok_or_else(|| ClientError::Protocol("a part was not uploaded".into())))
            .collect::<ClientResult<_>>()?;
        self.complete_multipart(path, upload_id, &etags).await?;
        Ok((hasher.finalize_hex(), sent))
    }

    /// Uploads one part (idempotent: the same part number overwrites) and returns its ETag.
    async fn upload_part(
        &self,
        path: &RemotePath,
        upload_id: &str,
        number: usize,
        data: Bytes,
    ) -> ClientResult<String> {
        let query = format!("partNumber={number}&{}", upload_query(upload_id));
        let url = self.s3_url(path, Some(&query))?;
        let resp = self
            .http()
            .send(Retry::Idempotent, ErrorFlavor::S3, |token| {
                Ok(self
                    .s3_request(token, Method::PUT, &url, &[])?
                    .body(data.clone()))
            })
            .await?;
        etag_of(resp.headers())
            .ok_or_else(|| ClientError::Protocol(format!("part {number} of {path}: no ETag")))
    }

    /// Completes the upload. Not retried: a lost reply may hide a completed upload.
    async fn complete_multipart(
        &self,
        path: &RemotePath,
        upload_id: &str,
        etags: &[String],
    ) -> ClientResult<()> {
        let url = self.s3_url(path, Some(&upload_query(upload_id)))?;
        let body = complete_body(etags);
        let resp = self
            .http()
            .send(Retry::Once, ErrorFlavor::S3, |token| {
                Ok(self
                    .s3_request(
                        token,
                        Method::POST,
                        &url,
                        &[("content-type", "application/xml")],
                    )?
                    .body(body.clone()))
            })
            .await?;
        // S3 may answer 200 and still report an error in the body.
        let reply = read_limited(resp, 1024 * 1024).await?;
        if reply.windows(7).any(|w| w == b"<Error>") {
            return Err(classify(500, &reply, ErrorFlavor::S3));
        }
        Ok(())
    }

    async fn abort_multipart(&self, path: &RemotePath, upload_id: &str) -> ClientResult<()> {
        let url = self.s3_url(path, Some(&upload_query(upload_id)))?;
        self.http()
            .send(Retry::Idempotent, ErrorFlavor::S3, |token| {
                self.s3_request(token, Method::DELETE, &url, &[])
            })
            .await?;
        Ok(())
    }
}

fn joined(
    done: Result<ClientResult<(usize, String)>, tokio::task::JoinError>,
) -> ClientResult<(usize, String)> {
    done.map_err(|e| ClientError::Protocol(format!("part upload task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_document_lists_parts_in_order() {
        let xml = complete_body(&["a1".into(), "b<2".into()]);
        assert_eq!(
            xml,
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"a1\"</ETag></Part>\
             <Part><PartNumber>2</PartNumber><ETag>\"b&lt;2\"</ETag></Part></CompleteMultipartUpload>"
        );
    }

    #[test]
    fn upload_ids_are_strictly_encoded() {
        assert_eq!(upload_query("a+b/c=="), "uploadId=a%2Bb%2Fc%3D%3D");
    }
}
