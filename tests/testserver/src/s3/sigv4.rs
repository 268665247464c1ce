//! AWS Signature V4 verification for the S3 gateway (header form and presigned query form):
//! the canonical request is rebuilt from what was received and signed with `gatewaysecret`.

use axum::http::request::Parts;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The shared secret of the Cells gateway: the access key (a token) is the real credential.
pub const GATEWAY_SECRET: &str = "gatewaysecret";

/// What the signature said about the request.
#[derive(Debug)]
pub struct Signed {
    pub access_key: String,
    /// Hex SHA-256 the body must have, or `None` for `UNSIGNED-PAYLOAD`.
    pub payload_sha256: Option<String>,
    pub signature_ok: bool,
}

pub enum SigError {
    Malformed(String),
}

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// RFC 3986 encoding as SigV4 wants it; `/` kept only in paths.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn canonical_query(raw: &str, skip_signature: bool) -> String {
    let mut pairs: Vec<(String, String)> = raw
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (uri_encode(&decode(k), false), uri_encode(&decode(v), false))
        })
        .filter(|(k, _)| !(skip_signature && k == "X-Amz-Signature"))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn header_value(parts: &Parts, name: &str) -> String {
    let values: Vec<String> = parts
        .headers
        .get_all(name)
        .iter()
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    values.join(",")
}

fn query_param(raw: &str, name: &str) -> Option<String> {
    raw.split('&').find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        (decode(k) == name).then(|| decode(v))
    })
}

/// Parses and checks a SigV4 request. `Ok(None)` when the request carries no SigV4 at all.
pub fn verify(parts: &Parts) -> Result<Option<Signed>, SigError> {
    let raw_query = parts.uri.query().unwrap_or("");
    let (credential, signed_headers, signature, amz_date, presigned) =
        if let Some(auth) = parts.headers.get("authorization") {
            let auth = auth
                .to_str()
                .map_err(|_| SigError::Malformed("authorization header".into()))?;
            let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256 ") else {
                return Err(SigError::Malformed(
                    "unsupported authorization scheme".into(),
                ));
            };
            let field = |name: &str| {
                rest.split(',')
                    .map(str::trim)
                    .find_map(|f| f.strip_prefix(name).map(str::to_string))
            };
            let credential = field("Credential=");
            let headers = field("SignedHeaders=");
            let signature = field("Signature=");
            let date = parts
                .headers
                .get("x-amz-date")
                .and_then(|d| d.to_str().ok())
                .map(str::to_string);
            match (credential, headers, signature, date) {
                (Some(c), Some(h), Some(s), Some(d)) => (c, h, s, d, false),
                _ => return Err(SigError::Malformed("incomplete authorization".into())),
            }
        } else if query_param(raw_query, "X-Amz-Algorithm").is_some() {
            let get = |n: &str| {
                query_param(raw_query, n).ok_or_else(|| SigError::Malformed(format!("missing {n}")))
            };
            (
                get("X-Amz-Credential")?,
                get("X-Amz-SignedHeaders")?,
                get("X-Amz-Signature")?,
                get("X-Amz-Date")?,
                true,
            )
        } else {
            return Ok(None);
        };
    let mut cred = credential.splitn(2, '/');
    let access_key = cred.next().unwrap_or_default().to_string();
    let scope = cred.next().unwrap_or_default().to_string();
    let scope_parts: Vec<&str> = scope.split('/').collect();
    if scope_parts.len() != 4 || scope_parts[3] != "aws4_request" {
        return Err(SigError::Malformed("bad credential scope".into()));
    }
    let payload = if presigned {
        "UNSIGNED-PAYLOAD".to_string()
    } else {
        header_value(parts, "x-amz-content-sha256")
    };
    let payload_sha256 = match payload.as_str() {
        "UNSIGNED-PAYLOAD" => None,
        p if p.len() == 64 && p.bytes().all(|b| b.is_ascii_hexdigit()) => Some(p.to_lowercase()),
        "" => return Err(SigError::Malformed("missing x-amz-content-sha256".into())),
        _ => {
            return Err(SigError::Malformed(
                "unsupported payload signing mode".into(),
            ));
        }
    };
    let canonical_headers: String = signed_headers
        .split(';')
        .map(|h| format!("{h}:{}\n", header_value(parts, h)))
        .collect();
    let query = canonical_query(raw_query, presigned);
    let raw_path = parts.uri.path();
    let mut key = hmac_sha256(
        format!("AWS4{GATEWAY_SECRET}").as_bytes(),
        scope_parts[0].as_bytes(),
    );
    for p in &scope_parts[1..] {
        key = hmac_sha256(&key, p.as_bytes());
    }
    let check = |path: &str| {
        let canonical = format!(
            "{}\n{path}\n{query}\n{canonical_headers}\n{signed_headers}\n{payload}",
            parts.method
        );
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        hex::encode(hmac_sha256(&key, to_sign.as_bytes())) == signature.to_lowercase()
    };
    // Clients differ in how much of the path they escape; accept the path exactly as sent and
    // its strict re-encoding.
    let signature_ok = check(raw_path) || check(&uri_encode(&decode(raw_path), true));
    Ok(Some(Signed {
        access_key,
        payload_sha256,
        signature_ok,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn query_is_sorted_and_strictly_encoded() {
        assert_eq!(
            canonical_query("prefix=a%20b/c&list-type=2&delimiter=%2F", false),
            "delimiter=%2F&list-type=2&prefix=a%20b%2Fc"
        );
    }
}
