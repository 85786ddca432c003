//! The `Idempotency-Key` request header of `POST /api/transfers`,
//! `POST /api/contributions` and `POST /api/plans`: a client that did not hear the
//! answer sends the same request again with the same key, and gets the first
//! answer (same status and body, with `Idempotent-Replayed: true`) while nothing
//! new is recorded. The same key with another body is refused (422). The ledger
//! keeps the keys, per member, for a day ([`ledger::IDEMPOTENCY_KEY_LIFETIME`]),
//! and checks the key and records the act in one transaction
//! ([`ledger::Journal::record_once`]), so copies sent at once record one entry.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;

use crate::AppError;

/// The request header.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on an answer that repeats the first one for its key.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The request's `Idempotency-Key`, if it sent one. Its form is checked by the
/// ledger (1 to 255 printable ASCII characters); a value that is not text at all,
/// or two of them, is refused here (400).
#[derive(Debug, Clone, Default)]
pub(crate) struct IdempotencyKey(pub(crate) Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all(&IDEMPOTENCY_KEY).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return match parts.headers.contains_key(&IDEMPOTENCY_KEY) {
                true => Err(bad_key("send one Idempotency-Key header, not several")),
                false => Ok(IdempotencyKey(None)),
            };
        };
        let key = value
            .to_str()
            .map_err(|_| bad_key("the Idempotency-Key header is not printable ASCII text"))?;
        Ok(IdempotencyKey(Some(key.to_string())))
    }
}

fn bad_key(problem: &str) -> AppError {
    AppError::invalid(
        StatusCode::BAD_REQUEST,
        problem.to_string(),
        vec![problem.to_string()],
    )
}

/// Marks `response` as the repetition of the first answer for its key when
/// `repeated`.
pub(crate) fn mark(mut response: Response, repeated: bool) -> Response {
    if repeated {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}
