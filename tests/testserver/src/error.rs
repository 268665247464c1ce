//! Errors of the test double and their two wire forms: REST JSON (`{"Code","Title","Detail"}`,
//! NOTES §7) and S3 XML (`<Error><Code>..</Code>..</Error>`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    RangeNotSatisfiable,
    Quota,
    Locked,
    Internal,
}

#[derive(Debug)]
pub struct ApiError {
    pub kind: Kind,
    pub detail: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(kind: Kind, detail: impl Into<String>) -> Self {
        ApiError {
            kind,
            detail: detail.into(),
        }
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(Kind::NotFound, format!("{what} not found"))
    }
    pub fn bad(detail: impl Into<String>) -> Self {
        Self::new(Kind::BadRequest, detail)
    }
    pub fn status(&self) -> StatusCode {
        match self.kind {
            Kind::BadRequest => StatusCode::BAD_REQUEST,
            Kind::Unauthorized => StatusCode::UNAUTHORIZED,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::Conflict => StatusCode::CONFLICT,
            Kind::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
            Kind::Quota => StatusCode::UNPROCESSABLE_ENTITY,
            Kind::Locked => StatusCode::LOCKED,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
    fn title(&self) -> &'static str {
        match self.kind {
            Kind::BadRequest => "E_BAD_REQUEST",
            Kind::Unauthorized => "E_UNAUTHORIZED",
            Kind::Forbidden => "E_FORBIDDEN",
            Kind::NotFound => "E_NOT_FOUND",
            Kind::Conflict => "E_CONFLICT",
            Kind::RangeNotSatisfiable => "E_RANGE",
            Kind::Quota => "E_QUOTA_REACHED",
            Kind::Locked => "E_LOCKED",
            Kind::Internal => "E_INTERNAL",
        }
    }
    /// S3 error code, as the Cells gateway (MinIO fork) names it.
    pub fn s3_code(&self) -> &'static str {
        match self.kind {
            Kind::BadRequest => "InvalidArgument",
            Kind::Unauthorized | Kind::Forbidden => "AccessDenied",
            Kind::NotFound => "NoSuchKey",
            Kind::Conflict => "OperationAborted",
            Kind::RangeNotSatisfiable => "InvalidRange",
            Kind::Quota => "QuotaExceeded",
            Kind::Locked => "Locked",
            Kind::Internal => "InternalError",
        }
    }
    /// The S3 XML form; unauthenticated maps to 403 AccessDenied like the real gateway.
    pub fn into_s3(self) -> Response {
        let status = match self.kind {
            Kind::Unauthorized => StatusCode::FORBIDDEN,
            _ => self.status(),
        };
        s3_error(status, self.s3_code(), &self.detail)
    }
}

pub fn s3_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message></Error>",
        xml_escape(code),
        xml_escape(message)
    );
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    resp
}

pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        tracing::error!("internal error: {e:#}");
        ApiError::new(Kind::Internal, "internal error")
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        tracing::error!("io error: {e}");
        ApiError::new(Kind::Internal, "storage error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::json!({
            "Code": status.as_u16().to_string(),
            "Title": self.title(),
            "Detail": self.detail,
        });
        (status, axum::Json(body)).into_response()
    }
}
