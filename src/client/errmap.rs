//! Classification of error replies: HTTP status plus the body's REST JSON or S3 XML code
//! become a [`ClientError`], with server text shortened and the token redacted.

use super::config::Secret;
use super::error::ClientError;

/// How the server words its errors: REST JSON (`{"Title","Detail"}`) or S3 XML (`<Code>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFlavor {
    Rest,
    S3,
}

/// Maps a non-2xx status and its body to a [`ClientError`].
pub fn classify(status: u16, body: &[u8], flavor: ErrorFlavor) -> ClientError {
    let (code, detail) = match flavor {
        ErrorFlavor::Rest => rest_error_text(body),
        ErrorFlavor::S3 => s3_error_text(body),
    };
    let msg = match (&code, detail.is_empty()) {
        (Some(c), false) => format!("{c}: {detail}"),
        (Some(c), true) => c.clone(),
        (None, false) => detail.clone(),
        (None, true) => format!("HTTP {status}"),
    };
    if flavor == ErrorFlavor::S3 {
        match code.as_deref() {
            Some("NoSuchKey" | "NoSuchUpload" | "NoSuchBucket") => {
                return ClientError::NotFound(msg);
            }
            Some("PydioQuotaExceeded" | "QuotaExceeded") => return ClientError::Quota(msg),
            Some("InvalidRange") => return ClientError::RangeNotSatisfiable(msg),
            Some(
                "SignatureDoesNotMatch" | "InvalidAccessKeyId" | "ExpiredToken" | "InvalidToken",
            ) => return ClientError::Unauthorized(msg),
            Some("AccessDenied") if status != 401 => return ClientError::Forbidden(msg),
            Some("SlowDown" | "ServiceUnavailable") => return ClientError::Offline(msg),
            _ => {}
        }
    }
    match status {
        401 => ClientError::Unauthorized(msg),
        403 => ClientError::Forbidden(msg),
        404 => ClientError::NotFound(msg),
        408 | 503 => ClientError::Offline(msg),
        409 => ClientError::Conflict(msg),
        412 => ClientError::Precondition(msg),
        416 => ClientError::RangeNotSatisfiable(msg),
        422 => ClientError::Quota(msg),
        423 => ClientError::Locked(msg),
        _ => ClientError::Server {
            status,
            message: msg,
        },
    }
}

/// `{"Code","Title","Detail"}` of a REST error; the raw text (shortened) when not JSON.
fn rest_error_text(body: &[u8]) -> (Option<String>, String) {
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "PascalCase", default)]
    struct RestError {
        title: Option<String>,
        detail: Option<String>,
    }
    match serde_json::from_slice::<RestError>(body) {
        Ok(e) => {
            let detail = match (e.title, e.detail) {
                (Some(t), Some(d)) if t != d => format!("{t} ({d})"),
                (Some(t), _) => t,
                (None, Some(d)) => d,
                (None, None) => String::new(),
            };
            (None, shorten(&detail))
        }
        Err(_) => (None, shorten(&String::from_utf8_lossy(body))),
    }
}

/// `<Error><Code>…</Code><Message>…</Message></Error>` of an S3 error.
fn s3_error_text(body: &[u8]) -> (Option<String>, String) {
    #[derive(serde::Deserialize, Default)]
    #[serde(default)]
    struct S3Error {
        #[serde(rename = "Code")]
        code: Option<String>,
        #[serde(rename = "Message")]
        message: Option<String>,
    }
    let text = String::from_utf8_lossy(body);
    match quick_xml::de::from_str::<S3Error>(&text) {
        Ok(e) => (e.code, shorten(e.message.as_deref().unwrap_or(""))),
        Err(_) => (None, shorten(&text)),
    }
}

/// Keeps server text short and on one line: it ends up in logs and in errors shown to users.
fn shorten(text: &str) -> String {
    let one_line: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    one_line
}

/// Removes the token from whatever text the server echoed into an error.
pub(crate) fn redact_error(err: ClientError, token: &Secret) -> ClientError {
    use ClientError::*;
    let r = |s: String| token.redact(&s);
    match err {
        NotFound(s) => NotFound(r(s)),
        Unauthorized(s) => Unauthorized(r(s)),
        Forbidden(s) => Forbidden(r(s)),
        Locked(s) => Locked(r(s)),
        Quota(s) => Quota(r(s)),
        Conflict(s) => Conflict(r(s)),
        Precondition(s) => Precondition(r(s)),
        RangeNotSatisfiable(s) => RangeNotSatisfiable(r(s)),
        Offline(s) => Offline(r(s)),
        Server { status, message } => Server {
            status,
            message: r(message),
        },
        Protocol(s) => Protocol(r(s)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_error_kinds() {
        let rest = |s| classify(s, br#"{"Title":"E_X","Detail":"why"}"#, ErrorFlavor::Rest);
        assert!(matches!(rest(401), ClientError::Unauthorized(_)));
        assert!(matches!(rest(403), ClientError::Forbidden(_)));
        assert!(matches!(rest(404), ClientError::NotFound(_)));
        assert!(matches!(rest(409), ClientError::Conflict(_)));
        assert!(matches!(rest(412), ClientError::Precondition(_)));
        assert!(matches!(rest(416), ClientError::RangeNotSatisfiable(_)));
        assert!(matches!(rest(422), ClientError::Quota(_)));
        assert!(matches!(rest(423), ClientError::Locked(_)));
        assert!(matches!(rest(503), ClientError::Offline(_)));
        assert!(matches!(rest(500), ClientError::Server { status: 500, .. }));
        assert!(matches!(rest(502), ClientError::Server { status: 502, .. }));
        assert_eq!(rest(404).to_string(), "not found: E_X (why)");
        // Not JSON: the raw text, shortened and on one line.
        let e = classify(404, &[b'x'; 5000], ErrorFlavor::Rest);
        assert!(e.to_string().len() < 400);
        let e = classify(500, b"line1\nline2", ErrorFlavor::Rest);
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn s3_codes_win_over_statuses() {
        let xml = |code: &str| {
            format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>m</Message></Error>")
        };
        let s3 = |status, code: &str| classify(status, xml(code).as_bytes(), ErrorFlavor::S3);
        assert!(matches!(s3(404, "NoSuchKey"), ClientError::NotFound(_)));
        assert!(matches!(s3(403, "AccessDenied"), ClientError::Forbidden(_)));
        assert!(matches!(
            s3(403, "SignatureDoesNotMatch"),
            ClientError::Unauthorized(_)
        ));
        assert!(matches!(
            s3(403, "PydioQuotaExceeded"),
            ClientError::Quota(_)
        ));
        assert!(matches!(
            s3(416, "InvalidRange"),
            ClientError::RangeNotSatisfiable(_)
        ));
        assert!(matches!(
            s3(500, "InternalError"),
            ClientError::Server { .. }
        ));
        assert_eq!(s3(404, "NoSuchKey").to_string(), "not found: NoSuchKey: m");
        assert!(matches!(
            classify(423, b"not xml", ErrorFlavor::S3),
            ClientError::Locked(_)
        ));
    }

    #[test]
    fn tokens_are_redacted_from_errors() {
        let token = Secret::new("super-secret-token");
        let e = classify(
            401,
            br#"{"Title":"invalid token super-secret-token"}"#,
            ErrorFlavor::Rest,
        );
        let e = redact_error(e, &token);
        assert!(!e.to_string().contains("super-secret-token"));
        assert!(e.to_string().contains("***"));
    }
}
