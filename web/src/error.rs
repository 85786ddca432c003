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
            AppError::Ledger(cause) => match cause.storage_fault() {
                Some(fault) => {
                    tracing::error!(error = %cause, "ledger write refused: the storage is at fault");
                    storage_fault(fault)
                }
                None => {
                    tracing::error!(error = %cause, "ledger access failed");
                    internal()
                }
            },
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

/// What the disk keeps the node from doing, said in words in both languages: a full
/// disk is 507 Insufficient Storage, a read-only or failing one 503 (it may come
/// back). SQLite rolled the write back, so the body can say that nothing was recorded.
pub(crate) fn storage_fault(fault: ledger::StorageFault) -> Response {
    let (status, kind, fr, en) = match fault {
        ledger::StorageFault::Full => (
            StatusCode::INSUFFICIENT_STORAGE,
            "full",
            "Le disque du nœud est plein : rien n'a été enregistré.",
            "The node's disk is full: nothing was recorded.",
        ),
        ledger::StorageFault::ReadOnly => (
            StatusCode::SERVICE_UNAVAILABLE,
            "read_only",
            "Le disque du nœud est en lecture seule : rien n'a été enregistré.",
            "The node's disk is read-only: nothing was recorded.",
        ),
        ledger::StorageFault::Failing => (
            StatusCode::SERVICE_UNAVAILABLE,
            "failing",
            "Le disque du nœud ne répond plus correctement : rien n'a été enregistré.",
            "The node's disk is failing: nothing was recorded.",
        ),
    };
    (
        status,
        [(header::RETRY_AFTER, "60")],
        Json(json!({
            "error": format!("{fr} {en}"),
            "problems": [fr, en],
            "storage": kind,
        })),
    )
        .into_response()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: i32) -> ledger::Error {
        ledger::Error::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        ))
    }

    async fn answer(error: ledger::Error) -> (StatusCode, serde_json::Value) {
        let response = AppError::from(error).into_response();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        (status, serde_json::from_slice(&body).unwrap_or_default())
    }

    /// SQLite's codes for a full disk, a read-only and a failing one answer 507 and
    /// 503 in words, never the anonymous 500.
    #[tokio::test]
    async fn storage_faults_answer_in_words_not_500() {
        let (status, body) = answer(sqlite(rusqlite::ffi::SQLITE_FULL)).await;
        assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE);
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("le disque du nœud est plein : rien n'a été enregistré")
                || error.contains("Le disque du nœud est plein : rien n'a été enregistré"),
            "{body}"
        );
        assert!(error.contains("disk is full"), "{body}");
        let (status, body) = answer(sqlite(rusqlite::ffi::SQLITE_READONLY)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["storage"], "read_only", "{body}");
        let (status, _) = answer(sqlite(rusqlite::ffi::SQLITE_IOERR)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        // Anything else is still the journal failing.
        let (status, _) = answer(sqlite(rusqlite::ffi::SQLITE_CORRUPT)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
