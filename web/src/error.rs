//! How a failed request is answered: a plain message for the person or program that
//! asked, the cause in the log for whoever runs the node.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request itself is wrong; `problems` says what, one item per problem.
    #[error("{message}")]
    InvalidRequest {
        status: StatusCode,
        message: String,
        problems: Vec<String>,
    },
    /// An API path that does not exist.
    #[error("no such endpoint: {0}")]
    NoSuchEndpoint(String),
    #[error(transparent)]
    Render(#[from] dashboards::Error),
    /// The journal could not be read or written. A refusal from the ledger is not
    /// one: converting a [`ledger::Error`] makes it an `InvalidRequest` (see
    /// `ledger_api::refused`).
    #[error(transparent)]
    Ledger(ledger::Error),
    /// A query over the history failed.
    #[error(transparent)]
    Query(#[from] query::Error),
    /// Something that should not happen (a task that panicked).
    #[error("{0}")]
    Internal(String),
}

impl From<ledger::Error> for AppError {
    /// A refusal answers the request with what to correct (4xx); anything else is
    /// the journal failing (500, cause logged).
    fn from(error: ledger::Error) -> Self {
        match error {
            ledger::Error::Refused(refusal) => crate::ledger_api::refused(refusal),
            failure => AppError::Ledger(failure),
        }
    }
}

impl AppError {
    pub(crate) fn invalid(status: StatusCode, message: String, problems: Vec<String>) -> Self {
        AppError::InvalidRequest {
            status,
            message,
            problems,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::InvalidRequest {
                status,
                message,
                problems,
            } => {
                tracing::debug!(%status, %message, "request refused");
                (
                    status,
                    Json(json!({ "error": message, "problems": problems })),
                )
                    .into_response()
            }
            AppError::NoSuchEndpoint(path) => (
                StatusCode::NOT_FOUND,
                Json(json!({ "error": format!("no such endpoint: {path}"), "problems": [] })),
            )
                .into_response(),
            AppError::Ledger(cause) => {
                tracing::error!(error = %cause, "ledger access failed");
                internal()
            }
            AppError::Internal(cause) => {
                tracing::error!(error = %cause, "internal error");
                internal()
            }
            AppError::Query(cause) => {
                tracing::error!(error = %cause, "history query failed");
                internal()
            }
            AppError::Render(cause) => {
                tracing::error!(error = %cause, "page rendering failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    "Erreur interne : la page n'a pas pu être affichée. \
                     Internal error: the page could not be drawn.\n",
                )
                    .into_response()
            }
        }
    }
}

/// A 500 that names no cause (the log has it), in both languages.
fn internal() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Erreur interne : la demande n'a pas pu aboutir. \
         Internal error: the request could not be completed.\n",
    )
        .into_response()
}
