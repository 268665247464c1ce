//! S3 multipart uploads. Parts are kept under the server's private folder; completion
//! concatenates them, records the MinIO-style `md5-N` ETag and the Cells hash of the
//! concatenated per-part block digests (NOTES §4), then commits atomically.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{Caller, etag_response, stage, xml};
use crate::error::{ApiError, ApiResult, xml_escape};
use crate::hash::{combine_block_digests, multipart_etag};
use crate::state::{AppState, Located, lock, now_secs};
use crate::store::Staged;

pub struct PartInfo {
    md5: [u8; 16],
    size: u64,
    block_digests: Vec<[u8; 16]>,
    file: PathBuf,
}

pub struct Upload {
    login: String,
    loc: Located,
    initiated: i64,
    dir: PathBuf,
    parts: BTreeMap<u32, PartInfo>,
}

const MAX_PART_NUMBER: u32 = 10_000;

fn iso8601(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, dd) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.000Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

pub fn format_time(secs: i64) -> String {
    iso8601(secs)
}

pub fn create(
    st: &AppState,
    caller: &Caller,
    loc: &Located,
    _parts: &Parts,
) -> ApiResult<Response> {
    if loc.rel.is_empty() {
        return Err(ApiError::bad("cannot upload a workspace root"));
    }
    st.check_lock(loc, false)?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let dir = st.work_dir.join("multipart").join(&id);
    std::fs::create_dir_all(&dir)?;
    lock(&st.uploads).insert(
        id.clone(),
        Upload {
            login: caller.login.clone(),
            loc: loc.clone(),
            initiated: now_secs(),
            dir,
            parts: BTreeMap::new(),
        },
    );
    Ok(xml(
        StatusCode::OK,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>io</Bucket><Key>{}</Key><UploadId>{id}</UploadId></InitiateMultipartUploadResult>",
            xml_escape(&loc.cells_path())
        ),
    ))
}

fn no_such_upload() -> ApiError {
    ApiError::new(crate::error::Kind::NotFound, "NoSuchUpload")
}

fn upload_dir(st: &AppState, caller: &Caller, id: &str) -> ApiResult<PathBuf> {
    let uploads = lock(&st.uploads);
    match uploads.get(id) {
        Some(u) if u.login == caller.login => Ok(u.dir.clone()),
        _ => Err(no_such_upload()),
    }
}

pub async fn upload_part(
    st: &Arc<AppState>,
    caller: &Caller,
    q: &HashMap<String, String>,
    body: Body,
) -> ApiResult<Response> {
    let id = q.get("uploadId").cloned().unwrap_or_default();
    let number: u32 = q
        .get("partNumber")
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| ApiError::bad("partNumber must be 1..10000"))?;
    let dir = upload_dir(st, caller, &id)?;
    let (staged, digest) = stage(st, body, caller.payload_sha256.as_deref()).await?;
    let file = dir.join(format!("part-{number}"));
    std::fs::rename(&staged.temp, &file)?;
    let etag = staged.etag.clone();
    let mut uploads = lock(&st.uploads);
    let Some(upload) = uploads.get_mut(&id) else {
        let _ = std::fs::remove_file(&file);
        return Err(no_such_upload());
    };
    upload.parts.insert(
        number,
        PartInfo {
            md5: digest.md5,
            size: digest.size,
            block_digests: digest.block_digests,
            file,
        },
    );
    Ok(etag_response(&etag))
}

#[derive(Deserialize)]
struct CompleteRequest {
    #[serde(rename = "Part", default)]
    parts: Vec<CompletePart>,
}

#[derive(Deserialize)]
struct CompletePart {
    #[serde(rename = "PartNumber")]
    number: u32,
    #[serde(rename = "ETag")]
    etag: String,
}

pub async fn complete(
    st: &Arc<AppState>,
    caller: &Caller,
    loc: &Located,
    id: &str,
    body: Body,
) -> ApiResult<Response> {
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|_| ApiError::bad("body too large"))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| ApiError::bad("body is not UTF-8"))?;
    let req: CompleteRequest =
        quick_xml::de::from_str(text).map_err(|e| ApiError::bad(format!("MalformedXML: {e}")))?;
    if req.parts.is_empty() {
        return Err(ApiError::bad("MalformedXML: no parts"));
    }
    // Collect the chosen parts (ascending numbers, ETags matching) without holding the lock
    // across the concatenation.
    let mut chosen = Vec::new();
    {
        let uploads = lock(&st.uploads);
        let upload = match uploads.get(id) {
            Some(u) if u.login == caller.login && u.loc.cells_path() == loc.cells_path() => u,
            _ => return Err(no_such_upload()),
        };
        let mut last = 0;
        for p in &req.parts {
            if p.number <= last {
                return Err(ApiError::bad("InvalidPartOrder"));
            }
            last = p.number;
            let part = upload
                .parts
                .get(&p.number)
                .filter(|part| hex::encode(part.md5) == p.etag.trim_matches('"'))
                .ok_or_else(|| ApiError::bad(format!("InvalidPart {}", p.number)))?;
            chosen.push((
                part.file.clone(),
                part.md5,
                part.size,
                part.block_digests.clone(),
            ));
        }
    }
    let temp = st.temp_path();
    let mut out = tokio::fs::File::create(&temp).await?;
    for (file, ..) in &chosen {
        let mut f = tokio::fs::File::open(file).await?;
        tokio::io::copy(&mut f, &mut out).await?;
    }
    out.sync_all().await?;
    drop(out);
    let md5s: Vec<[u8; 16]> = chosen.iter().map(|c| c.1).collect();
    let staged = Staged {
        temp,
        size: chosen.iter().map(|c| c.2).sum(),
        etag: multipart_etag(&md5s),
        hash: combine_block_digests(chosen.iter().flat_map(|c| c.3.iter())),
    };
    let e = st.commit_file(&caller.login, loc, staged, None).await?;
    if let Some(u) = lock(&st.uploads).remove(id) {
        let _ = std::fs::remove_dir_all(&u.dir);
    }
    Ok(xml(
        StatusCode::OK,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Location>/io/{key}</Location><Bucket>io</Bucket><Key>{key}</Key><ETag>&quot;{}&quot;</ETag></CompleteMultipartUploadResult>",
            e.etag,
            key = xml_escape(&loc.cells_path())
        ),
    ))
}

pub fn abort(st: &AppState, caller: &Caller, id: &str) -> ApiResult<Response> {
    let mut uploads = lock(&st.uploads);
    match uploads.get(id) {
        Some(u) if u.login == caller.login => {}
        _ => return Err(no_such_upload()),
    }
    if let Some(u) = uploads.remove(id) {
        let _ = std::fs::remove_dir_all(&u.dir);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub fn list_parts(st: &AppState, caller: &Caller, id: &str) -> ApiResult<Response> {
    let uploads = lock(&st.uploads);
    let u = match uploads.get(id) {
        Some(u) if u.login == caller.login => u,
        _ => return Err(no_such_upload()),
    };
    let parts: String = u
        .parts
        .iter()
        .map(|(n, p)| {
            format!(
                "<Part><PartNumber>{n}</PartNumber><ETag>&quot;{}&quot;</ETag><Size>{}</Size></Part>",
                hex::encode(p.md5),
                p.size
            )
        })
        .collect();
    Ok(xml(
        StatusCode::OK,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListPartsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>io</Bucket><Key>{}</Key><UploadId>{id}</UploadId><IsTruncated>false</IsTruncated>{parts}</ListPartsResult>",
            xml_escape(&u.loc.cells_path())
        ),
    ))
}

pub fn list_uploads(st: &AppState, caller: &Caller) -> Response {
    let uploads = lock(&st.uploads);
    let items: String = uploads
        .iter()
        .filter(|(_, u)| u.login == caller.login)
        .map(|(id, u)| {
            format!(
                "<Upload><Key>{}</Key><UploadId>{id}</UploadId><Initiated>{}</Initiated></Upload>",
                xml_escape(&u.loc.cells_path()),
                iso8601(u.initiated)
            )
        })
        .collect();
    xml(
        StatusCode::OK,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListMultipartUploadsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>io</Bucket><IsTruncated>false</IsTruncated>{items}</ListMultipartUploadsResult>"
        ),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso_dates() {
        assert_eq!(super::iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::iso8601(951_782_400), "2000-02-29T00:00:00.000Z");
    }
}
