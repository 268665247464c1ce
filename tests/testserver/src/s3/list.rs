//! `GET /io?list-type=2` (ListObjectsV2; v1 with `marker` too) over the index: workspaces are
//! top-level prefixes, folders become CommonPrefixes when the delimiter is `/`.

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::multipart::format_time;
use super::{Caller, xml};
use crate::error::{ApiError, ApiResult, xml_escape};
use crate::index::Entry;
use crate::state::{AppState, Located, lock};

enum Item {
    Object(Entry),
    Prefix,
}

const DEFAULT_MAX_KEYS: usize = 1000;

/// Adds the items of one workspace under `rel_prefix` (path inside the workspace).
fn collect_ws(
    st: &AppState,
    loc_root: &Located,
    rel_prefix: &str,
    by_folder: bool,
    out: &mut Vec<(String, Item)>,
) -> ApiResult<()> {
    let slug = loc_root.ws.slug;
    let (dir, name_prefix) = match rel_prefix.rsplit_once('/') {
        Some((d, n)) => (d.to_string(), n.to_string()),
        None => (String::new(), rel_prefix.to_string()),
    };
    let dir_loc = Located {
        ws: loc_root.ws.clone(),
        rel: dir.clone(),
    };
    let storage = dir_loc.storage();
    let key_of = |e: &Entry| {
        format!(
            "{slug}/{}",
            e.path[loc_root.ws.root.len()..].trim_start_matches('/')
        )
    };
    if by_folder {
        let (children, _) = lock(&st.index).list(&storage, 0, None)?;
        for e in children {
            if !e.name().starts_with(&name_prefix) {
                continue;
            }
            let key = key_of(&e);
            if e.is_dir {
                out.push((format!("{key}/"), Item::Prefix));
            } else {
                out.push((key, Item::Object(e)));
            }
        }
    } else {
        let full_prefix = format!("{slug}/{rel_prefix}");
        for e in lock(&st.index).subtree(&storage)? {
            let key = key_of(&e);
            if !e.is_dir && key.starts_with(&full_prefix) {
                out.push((key, Item::Object(e)));
            }
        }
    }
    Ok(())
}

pub fn list_objects(
    st: &AppState,
    caller: &Caller,
    q: &HashMap<String, String>,
) -> ApiResult<Response> {
    let v2 = q.get("list-type").map(String::as_str) == Some("2");
    let prefix = q.get("prefix").cloned().unwrap_or_default();
    let delimiter = q.get("delimiter").cloned().unwrap_or_default();
    let by_folder = delimiter == "/";
    let max_keys = q
        .get("max-keys")
        .map(|m| m.parse::<usize>().map_err(|_| ApiError::bad("max-keys")))
        .transpose()?
        .unwrap_or(DEFAULT_MAX_KEYS)
        .min(DEFAULT_MAX_KEYS);
    let after = if v2 {
        match q.get("continuation-token") {
            Some(t) => {
                let raw = URL_SAFE_NO_PAD
                    .decode(t)
                    .map_err(|_| ApiError::bad("bad continuation-token"))?;
                Some(String::from_utf8(raw).map_err(|_| ApiError::bad("bad continuation-token"))?)
            }
            None => q.get("start-after").cloned(),
        }
    } else {
        q.get("marker").cloned()
    };

    let mut items: Vec<(String, Item)> = Vec::new();
    for ws in st.workspaces_for(&caller.login) {
        let ws_prefix = format!("{}/", ws.slug);
        let root = Located {
            ws,
            rel: String::new(),
        };
        if let Some(rel_prefix) = prefix.strip_prefix(&ws_prefix) {
            collect_ws(st, &root, rel_prefix, by_folder, &mut items)?;
        } else if ws_prefix.starts_with(&prefix) {
            if by_folder {
                items.push((ws_prefix, Item::Prefix));
            } else {
                collect_ws(st, &root, "", false, &mut items)?;
            }
        }
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let mut page: Vec<&(String, Item)> = items
        .iter()
        .filter(|(k, _)| after.as_ref().is_none_or(|a| k > a))
        .take(max_keys + 1)
        .collect();
    let truncated = page.len() > max_keys;
    page.truncate(max_keys);
    let mut body = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>io</Name>",
    );
    body.push_str(&format!(
        "<Prefix>{}</Prefix><MaxKeys>{max_keys}</MaxKeys><IsTruncated>{truncated}</IsTruncated>",
        xml_escape(&prefix)
    ));
    if !delimiter.is_empty() {
        body.push_str(&format!(
            "<Delimiter>{}</Delimiter>",
            xml_escape(&delimiter)
        ));
    }
    if v2 {
        body.push_str(&format!("<KeyCount>{}</KeyCount>", page.len()));
        if let Some(t) = q.get("continuation-token") {
            body.push_str(&format!(
                "<ContinuationToken>{}</ContinuationToken>",
                xml_escape(t)
            ));
        }
    } else if let Some(m) = q.get("marker") {
        body.push_str(&format!("<Marker>{}</Marker>", xml_escape(m)));
    }
    if truncated && let Some((last, _)) = page.last() {
        if v2 {
            body.push_str(&format!(
                "<NextContinuationToken>{}</NextContinuationToken>",
                URL_SAFE_NO_PAD.encode(last)
            ));
        } else {
            body.push_str(&format!("<NextMarker>{}</NextMarker>", xml_escape(last)));
        }
    }
    for (key, item) in &page {
        match item {
            Item::Object(e) => {
                body.push_str(&format!(
                    "<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>&quot;{}&quot;</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
                    xml_escape(key),
                    format_time(e.mtime),
                    xml_escape(&e.etag),
                    e.size
                ));
            }
            Item::Prefix => {
                body.push_str(&format!(
                    "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
                    xml_escape(key)
                ));
            }
        }
    }
    body.push_str("</ListBucketResult>");
    Ok(xml(StatusCode::OK, body))
}
