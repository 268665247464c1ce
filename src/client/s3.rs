//! Content transfers through the Cells S3 gateway: SigV4-signed ranged GET, HEAD, and PUT of
//! whole files (multipart lives in `multipart.rs`), with the Cells hash computed locally and
//! checked against what the server recorded.

use super::CellsClient;
use super::assumptions::{MULTIPART_THRESHOLD, S3_REGION, S3_SECRET, S3_SERVICE, s3_object_path};
use super::config::Secret;
use super::error::{ClientError, ClientResult};
use super::http::{ErrorFlavor, Retry};
use super::model::HashKind;
use super::pieces::Pieces;
use super::remote::UploadOutcome;
use crate::hash::cells_hash;
use crate::names::RemotePath;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use reqwest::Method;
use std::ops::Range;
use std::path::Path;
use std::time::SystemTime;
use url::Url;

/// What a HEAD on an object says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    pub size: u64,
    /// Storage ETag, quotes removed (not the Cells hash).
    pub etag: Option<String>,
}

/// Signs a request for the gateway: access key = the token, secret and region from
/// [`super::assumptions`]. `headers` are the extra headers to sign and send (lowercase names).
/// Returns the headers to add: `authorization`, `x-amz-date`, `x-amz-content-sha256`.
pub fn sign_request(
    token: &Secret,
    method: &Method,
    url: &Url,
    headers: &[(&str, &str)],
    time: SystemTime,
) -> ClientResult<Vec<(String, String)>> {
    let identity = Credentials::new(token.expose(), S3_SECRET, None, None, "cells-token").into();
    let mut settings = SigningSettings::default();
    // S3 signs the path exactly as sent (single encoding, no normalisation) and wants the
    // payload hash header; the body is not hashed (UNSIGNED-PAYLOAD) so files stream once.
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(S3_REGION)
        .name(S3_SERVICE)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| ClientError::Config(format!("S3 signing parameters: {e}")))?
        .into();
    let signable = SignableRequest::new(
        method.as_str(),
        url.as_str(),
        headers.iter().copied(),
        SignableBody::UnsignedPayload,
    )
    .map_err(|e| ClientError::Config(format!("S3 request cannot be signed: {e}")))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| ClientError::Config(format!("S3 signing failed: {e}")))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

impl CellsClient {
    /// URL of an object on the gateway, with an optional raw (already encoded) query.
    pub(crate) fn s3_url(&self, path: &RemotePath, query: Option<&str>) -> ClientResult<Url> {
        let mut url = self.http().url(&s3_object_path(path))?;
        url.set_query(query);
        Ok(url)
    }

    /// A signed request builder for `url`, with `headers` signed and sent.
    pub(crate) fn s3_request(
        &self,
        token: &Secret,
        method: Method,
        url: &Url,
        headers: &[(&str, &str)],
    ) -> ClientResult<reqwest::RequestBuilder> {
        let signed = sign_request(token, &method, url, headers, SystemTime::now())?;
        let mut req = self
            .http()
            .request(method, url.clone())
            .timeout(self.http().timeouts.transfer);
        for (k, v) in headers
            .iter()
            .copied()
            .chain(signed.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        {
            req = req.header(k, v);
        }
        Ok(req)
    }

    /// Bytes `range` of `path` in one buffer. A range reaching past the end returns what
    /// exists; a range starting past the end is `RangeNotSatisfiable`.
    pub async fn read_range(&self, path: &RemotePath, range: Range<u64>) -> ClientResult<Bytes> {
        Ok(self.read_range_pieces(path, range).await?.into_bytes())
    }

    /// [`Self::read_range`] in the pieces the network delivered: no copy into one buffer
    /// (a cold read stores them in the cache as they are).
    pub async fn read_range_pieces(
        &self,
        path: &RemotePath,
        range: Range<u64>,
    ) -> ClientResult<Pieces> {
        if range.start >= range.end {
            return Ok(Pieces::default());
        }
        let want = usize::try_from(range.end - range.start)
            .map_err(|_| ClientError::Config("range too large for this machine".into()))?;
        let url = self.s3_url(path, None)?;
        let range_header = format!("bytes={}-{}", range.start, range.end - 1);
        let mut resp = self
            .http()
            .send(Retry::Idempotent, ErrorFlavor::S3, |token| {
                self.s3_request(token, Method::GET, &url, &[("range", &range_header)])
            })
            .await?;
        // 206: the range itself. 200: the server ignored Range and sends everything, so we
        // skip up to the start and stop reading once we have the range.
        let mut skip = match resp.status().as_u16() {
            206 => {
                check_content_range(resp.headers(), range.start)?;
                0
            }
            _ => range.start,
        };
        let (mut parts, mut have) = (Vec::new(), 0usize);
        while have < want {
            let Some(mut chunk) = resp
                .chunk()
                .await
                .map_err(|e| super::http::transport_error(e, &Secret::new("")))?
            else {
                break;
            };
            if skip > 0 {
                let dropped = skip.min(chunk.len() as u64);
                skip -= dropped;
                chunk = chunk.slice(dropped as usize..);
            }
            chunk.truncate(want - have);
            have += chunk.len();
            parts.push(chunk);
        }
        Ok(Pieces::new(parts))
    }

    /// Size and storage ETag of an object.
    pub async fn head(&self, path: &RemotePath) -> ClientResult<ObjectHead> {
        let url = self.s3_url(path, None)?;
        let resp = self
            .http()
            .send(Retry::Idempotent, ErrorFlavor::S3, |token| {
                self.s3_request(token, Method::HEAD, &url, &[])
            })
            .await?;
        let size = resp
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ClientError::Protocol(format!("HEAD {path}: no Content-Length")))?;
        Ok(ObjectHead {
            size,
            etag: etag_of(resp.headers()),
        })
    }

    /// Uploads `local` as `path`: one PUT up to [`MULTIPART_THRESHOLD`], multipart above.
    /// The Cells hash is computed over the bytes sent; when the server reports its own, they
    /// must match.
    pub async fn upload_file(
        &self,
        path: &RemotePath,
        local: &Path,
    ) -> ClientResult<UploadOutcome> {
        if path.components().count() < 2 {
            return Err(ClientError::Forbidden(format!(
                "cannot upload {path:?}: not inside a workspace"
            )));
        }
        let len = tokio::fs::metadata(local).await?.len();
        let (local_hash, size) = if len <= MULTIPART_THRESHOLD {
            let data = Bytes::from(tokio::fs::read(local).await?);
            let hash = cells_hash(&data);
            self.put_object(path, data.clone()).await?;
            (hash, data.len() as u64)
        } else {
            self.upload_multipart(path, local, len).await?
        };
        let node = match self.stat(path).await {
            Ok(node) => Some(node),
            Err(e) => {
                tracing::debug!("stat after uploading {path} failed: {e}");
                None
            }
        };
        if let Some(version) = node.as_ref().and_then(|n| n.version.as_ref())
            && version.kind == HashKind::CellsHash
            && version.value != local_hash
        {
            return Err(ClientError::Protocol(format!(
                "uploaded {path}: the server recorded hash {} but the content sent hashes to {local_hash}",
                version.value
            )));
        }
        Ok(UploadOutcome {
            node,
            local_cells_hash: local_hash,
            size,
        })
    }

    /// One PUT of a whole object; idempotent, so retried on transient failures.
    async fn put_object(&self, path: &RemotePath, data: Bytes) -> ClientResult<()> {
        let url = self.s3_url(path, None)?;
        self.http()
            .send(Retry::Idempotent, ErrorFlavor::S3, |token| {
                Ok(self
                    .s3_request(token, Method::PUT, &url, &[])?
                    .body(data.clone()))
            })
            .await?;
        Ok(())
    }
}

/// The storage ETag of a reply, quotes removed.
pub(crate) fn etag_of(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(http::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
}

/// A 206 must start where we asked; anything else would put bytes at the wrong offset.
fn check_content_range(headers: &http::HeaderMap, start: u64) -> ClientResult<()> {
    let Some(value) = headers
        .get(http::header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(());
    };
    let first = value
        .strip_prefix("bytes ")
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.trim().parse::<u64>().ok());
    match first {
        Some(first) if first == start => Ok(()),
        _ => Err(ClientError::Protocol(format!(
            "asked for bytes from {start}, got Content-Range {value:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_name_the_token_and_cover_the_signed_headers() {
        let url = Url::parse("http://127.0.0.1:9000/io/personal-files/a%20b.txt").unwrap();
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let sign_range = |range| {
            sign_request(
                &Secret::new("tok-a"),
                &Method::GET,
                &url,
                &[("range", range)],
                t,
            )
            .unwrap()
        };
        let get = |h: &[(String, String)], k: &str| {
            h.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        let a = sign_range("bytes=0-9");
        assert_eq!(get(&a, "x-amz-content-sha256"), "UNSIGNED-PAYLOAD");
        assert_eq!(get(&a, "x-amz-date"), "20231114T221320Z");
        let auth = get(&a, "authorization");
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=tok-a/20231114/us-east-1/s3/aws4_request"
            )
        );
        assert!(auth.contains("SignedHeaders=host;range;x-amz-content-sha256;x-amz-date"));
        // The signature covers the range: a tampered header would not verify.
        let b = sign_range("bytes=0-10");
        assert_ne!(get(&a, "authorization"), get(&b, "authorization"));
    }

    #[test]
    fn content_range_must_start_where_asked() {
        let mut h = http::HeaderMap::new();
        assert!(check_content_range(&h, 5).is_ok());
        h.insert(
            http::header::CONTENT_RANGE,
            "bytes 5-9/100".parse().unwrap(),
        );
        assert!(check_content_range(&h, 5).is_ok());
        assert!(check_content_range(&h, 0).is_err());
        h.insert(http::header::CONTENT_RANGE, "garbage".parse().unwrap());
        assert!(check_content_range(&h, 5).is_err());
    }
}
