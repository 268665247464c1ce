//! The S3 gateway (path style, bucket `io`, key = `ws-slug/path`): authentication (SigV4 with
//! the token as access key, or `X-Pydio-Bearer`), object GET/HEAD (ranges)/PUT/DELETE.
//! Multipart and listings live in the submodules.

pub mod list;
pub mod multipart;
pub mod sigv4;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{ApiError, ApiResult, Kind, s3_error};
use crate::hash::{ContentDigest, ContentHasher};
use crate::index::Entry;
use crate::state::{AppState, Located};
use crate::store::Staged;

pub const BUCKET: &str = "io";

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", any(service_root))
        .route("/io", any(bucket))
        .route("/io/", any(bucket))
        .route("/io/{*key}", any(object))
}

/// Who is calling, and what the body must hash to (SigV4 signed payloads).
pub struct Caller {
    pub login: String,
    pub payload_sha256: Option<String>,
}

pub fn xml(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    r
}

pub fn query_map(parts: &Parts) -> std::collections::HashMap<String, String> {
    form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// Real Cells answers AccessDenied for bad tokens and SignatureDoesNotMatch for bad signatures.
fn authenticate(st: &AppState, parts: &Parts) -> Result<Caller, Box<Response>> {
    let denied = |m: &str| Box::new(s3_error(StatusCode::FORBIDDEN, "AccessDenied", m));
    let login_of = |token: &str| {
        st.token_login(token)
            .map_err(|_| denied("invalid or expired token"))
    };
    if let Some(token) = parts
        .headers
        .get("x-pydio-bearer")
        .and_then(|v| v.to_str().ok())
    {
        return Ok(Caller {
            login: login_of(token.trim())?,
            payload_sha256: None,
        });
    }
    let q = query_map(parts);
    if let Some(token) = q.get("pydio_jwt") {
        return Ok(Caller {
            login: login_of(token)?,
            payload_sha256: None,
        });
    }
    match sigv4::verify(parts) {
        Ok(None) => Err(denied("anonymous access is not allowed")),
        Err(sigv4::SigError::Malformed(m)) => Err(Box::new(s3_error(
            StatusCode::BAD_REQUEST,
            "AuthorizationHeaderMalformed",
            &m,
        ))),
        Ok(Some(signed)) => {
            let login = login_of(&signed.access_key)?;
            if !signed.signature_ok {
                return Err(Box::new(s3_error(
                    StatusCode::FORBIDDEN,
                    "SignatureDoesNotMatch",
                    "the request signature does not match",
                )));
            }
            Ok(Caller {
                login,
                payload_sha256: signed.payload_sha256,
            })
        }
    }
}

fn finish(r: ApiResult<Response>) -> Response {
    r.unwrap_or_else(ApiError::into_s3)
}

async fn service_root(State(st): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    if let Err(r) = authenticate(&st, &parts) {
        return *r;
    }
    if parts.method != Method::GET {
        return s3_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "only GET",
        );
    }
    xml(
        StatusCode::OK,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Owner><ID>pydio</ID><DisplayName>pydio</DisplayName></Owner><Buckets><Bucket><Name>{BUCKET}</Name><CreationDate>2020-01-01T00:00:00.000Z</CreationDate></Bucket></Buckets></ListAllMyBucketsResult>"
        ),
    )
}

async fn bucket(State(st): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let caller = match authenticate(&st, &parts) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let q = query_map(&parts);
    match parts.method {
        Method::HEAD => StatusCode::OK.into_response(),
        Method::GET if q.contains_key("uploads") => multipart::list_uploads(&st, &caller),
        Method::GET if q.contains_key("location") => xml(
            StatusCode::OK,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">us-east-1</LocationConstraint>".into(),
        ),
        Method::GET => finish(list::list_objects(&st, &caller, &q)),
        _ => s3_error(StatusCode::NOT_IMPLEMENTED, "NotImplemented", "bucket operation"),
    }
}

/// The object key (`ws/path`), percent-decoded, from the raw request path.
fn key_of(parts: &Parts) -> ApiResult<String> {
    let raw = parts.uri.path().strip_prefix("/io/").unwrap_or("");
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| ApiError::bad("key is not UTF-8"))
}

async fn object(State(st): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let caller = match authenticate(&st, &parts) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    finish(object_op(&st, &caller, &parts, body).await)
}

async fn object_op(
    st: &Arc<AppState>,
    caller: &Caller,
    parts: &Parts,
    body: Body,
) -> ApiResult<Response> {
    let key = key_of(parts)?;
    let is_folder_key = key.ends_with('/');
    let loc = st
        .locate(&caller.login, &key)?
        .ok_or_else(|| ApiError::bad("empty key"))?;
    let q = query_map(parts);
    match parts.method {
        Method::POST if q.contains_key("uploads") => multipart::create(st, caller, &loc, parts),
        Method::POST if q.contains_key("uploadId") => {
            multipart::complete(st, caller, &loc, &q["uploadId"], body).await
        }
        Method::PUT if q.contains_key("uploadId") => {
            multipart::upload_part(st, caller, &q, body).await
        }
        Method::DELETE if q.contains_key("uploadId") => {
            multipart::abort(st, caller, &q["uploadId"])
        }
        Method::GET if q.contains_key("uploadId") => {
            multipart::list_parts(st, caller, &q["uploadId"])
        }
        Method::GET | Method::HEAD => get_object(st, &loc, is_folder_key, parts).await,
        Method::PUT if parts.headers.contains_key("x-amz-copy-source") => Err(ApiError::new(
            Kind::BadRequest,
            "CopyObject is not supported by this test double",
        )),
        Method::PUT if is_folder_key => {
            st.mkdir(&loc).await?;
            Ok(etag_response(
                &crate::hash::ContentHasher::new().finish().etag(),
            ))
        }
        Method::PUT => {
            let staged = stage(st, body, caller.payload_sha256.as_deref()).await?.0;
            let uuid = parts
                .headers
                .get("x-amz-meta-pydio-node-uuid")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let e = st.commit_file(&caller.login, &loc, staged, uuid).await?;
            Ok(etag_response(&e.etag))
        }
        Method::DELETE => {
            // The gateway deletes for good; an absent key is still a success in S3.
            match st.lookup(&loc)? {
                Some(_) if !loc.rel.is_empty() => st.delete(&loc, true).await?,
                _ => {}
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(ApiError::bad("unsupported object operation")),
    }
}

pub fn etag_response(etag: &str) -> Response {
    let mut r = StatusCode::OK.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

/// Streams a request body into a temp file, hashing it; checks a signed payload hash.
pub async fn stage(
    st: &AppState,
    body: Body,
    expected_sha256: Option<&str>,
) -> ApiResult<(Staged, ContentDigest)> {
    let temp = st.temp_path();
    let result = async {
        let mut file = tokio::fs::File::create(&temp).await?;
        let mut hasher = ContentHasher::new();
        let mut sha = Sha256::new();
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ApiError::bad(format!("body read failed: {e}")))?;
            hasher.update(&chunk);
            sha.update(&chunk);
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        file.sync_all().await?;
        if let Some(expected) = expected_sha256
            && hex::encode(sha.finalize()) != expected
        {
            return Err(ApiError::bad("XAmzContentSHA256Mismatch"));
        }
        Ok(hasher.finish())
    }
    .await;
    match result {
        Ok(d) => Ok((
            Staged {
                temp,
                size: d.size,
                etag: d.etag(),
                hash: d.cells_hash(),
            },
            d,
        )),
        Err(e) => {
            let _ = tokio::fs::remove_file(&temp).await;
            Err(e)
        }
    }
}

/// Parses a single `bytes=` range against `size`: `Ok(None)` = whole object.
fn parse_range(value: &str, size: u64) -> ApiResult<Option<(u64, u64)>> {
    let unsatisfiable = || ApiError::new(Kind::RangeNotSatisfiable, "range not satisfiable");
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        // Multiple ranges: ignored (whole object), as MinIO does.
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    let range = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| unsatisfiable())?;
        if n == 0 || size == 0 {
            return Err(unsatisfiable());
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let start: u64 = a.parse().map_err(|_| unsatisfiable())?;
        let end = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse::<u64>()
                .map_err(|_| unsatisfiable())?
                .min(size.saturating_sub(1))
        };
        if start >= size || end < start {
            return Err(unsatisfiable());
        }
        (start, end)
    };
    Ok(Some(range))
}

fn object_headers(r: &mut Response, e: &Entry, len: u64) {
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", e.etag)) {
        h.insert(header::ETAG, v);
    }
    let modified = std::time::UNIX_EPOCH + std::time::Duration::from_secs(e.mtime.max(0) as u64);
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(modified)) {
        h.insert(header::LAST_MODIFIED, v);
    }
    if let Ok(v) = HeaderValue::from_str(&e.uuid) {
        h.insert("x-amz-meta-pydio-node-uuid", v);
    }
}

/// Bytes read from a file per step when sending an object.
const STREAM_BUFFER: usize = 256 * 1024;

async fn get_object(
    st: &AppState,
    loc: &Located,
    folder_key: bool,
    parts: &Parts,
) -> ApiResult<Response> {
    let e = st
        .lookup(loc)?
        .ok_or_else(|| ApiError::not_found(&loc.cells_path()))?;
    if e.is_dir {
        if !folder_key {
            return Err(ApiError::not_found(&loc.cells_path()));
        }
        let mut r = StatusCode::OK.into_response();
        object_headers(&mut r, &e, 0);
        return Ok(r);
    }
    let range = match parts
        .headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
    {
        Some(v) => match parse_range(v, e.size) {
            Ok(r) => r,
            Err(err) => {
                let mut r = err.into_s3();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", e.size)) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return Ok(r);
            }
        },
        None => None,
    };
    let (start, end) = range.unwrap_or((0, e.size.saturating_sub(1)));
    let len = if e.size == 0 { 0 } else { end - start + 1 };
    let body = if parts.method == Method::HEAD {
        Body::empty()
    } else {
        // Opened and positioned in one blocking step (each tokio file call is a thread hop).
        let path = st.data_dir.join(&e.path);
        let f = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            let mut f = std::fs::File::open(path)?;
            std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(start))?;
            Ok(f)
        })
        .await
        .map_err(|e| ApiError::new(Kind::Internal, format!("open task failed: {e}")))??;
        let f = tokio::fs::File::from_std(f);
        // Reads of 256 KiB: each read of a tokio file is one hop to a blocking thread, and
        // the default 4 KiB buffer made the double, not the network, the bottleneck.
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
            f.take(len),
            STREAM_BUFFER,
        ))
    };
    let mut r = Response::new(body);
    object_headers(&mut r, &e, len);
    if range.is_some() {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{}", e.size)) {
            r.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(r)
}
