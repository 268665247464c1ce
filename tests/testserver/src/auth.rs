//! Bearer-token authentication for REST routes: an extractor yielding the caller's login.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::{ApiError, Kind};
use crate::state::AppState;

/// The authenticated login of a REST request (`Authorization: Bearer TOKEN`).
pub struct User(pub String);

pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(axum::http::header::AUTHORIZATION)?;
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<Arc<AppState>> for User {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)
            .ok_or_else(|| ApiError::new(Kind::Unauthorized, "missing bearer token"))?;
        state.token_login(token).map(User)
    }
}
