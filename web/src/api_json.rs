//! [`ApiJson`]: the JSON body extractor of every API route that takes one, whose
//! rejection is an [`AppError`] in the API's error shape (DESIGN.md §8).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::AppError;

/// A JSON body whose rejection says, in the API's error shape, what was wrong:
/// which field is missing or mistyped, where the syntax breaks, or that the
/// content type is not JSON.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> AppError {
    let status = rejection.status();
    let text = rejection.body_text();
    // axum prefixes its own sentence; the part after it names the field and position.
    let problem = text
        .split_once(": ")
        .map_or_else(|| text.clone(), |(_, detail)| detail.to_string());
    let message = match rejection {
        JsonRejection::JsonDataError(_) => {
            format!("the request body does not have the expected fields: {problem}")
        }
        JsonRejection::JsonSyntaxError(_) => {
            format!("the request body is not valid JSON: {problem}")
        }
        JsonRejection::MissingJsonContentType(_) => {
            "the request body must be JSON, sent with `Content-Type: application/json`".to_string()
        }
        JsonRejection::BytesRejection(_) => {
            format!("the request body could not be read: {problem}")
        }
        _ => text.clone(),
    };
    AppError::invalid(status, message, vec![problem])
}
