//! The JSON API (DESIGN.md §8): read-only, no login needed for these routes.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::http::header::CACHE_CONTROL;
use axum::response::{IntoResponse, Response};
use query::allocation::{SimulateRequest, SimulateResponse};
use query::live::LiveSnapshot;
use serde::de::DeserializeOwned;

use crate::{AppError, AppState};

/// `GET /api/live`: the current snapshot, with this week's validated hours of
/// contributions (a community total, like the rest).
pub(crate) async fn live(State(state): State<AppState>) -> Response {
    let snapshot = state.live.borrow().clone();
    let tally = crate::ledger_api::week_tally(&state, chrono::Utc::now()).await;
    (
        [(CACHE_CONTROL, "no-store")],
        Json(live_body(&snapshot, tally)),
    )
        .into_response()
}

/// The `/api/live` body (also each event's data): the snapshot's fields, plus
/// `contributions` (see [`crate::ledger_api::tally_json`]).
pub(crate) fn live_body(
    snapshot: &LiveSnapshot,
    tally: Option<crate::ledger_api::WeekTally>,
) -> serde_json::Value {
    let mut body = match serde_json::to_value(snapshot) {
        Ok(body) => body,
        Err(error) => {
            // Not expected (plain data); logged rather than sent half-made.
            tracing::error!(%error, "live snapshot could not be encoded");
            serde_json::Value::Null
        }
    };
    if let serde_json::Value::Object(fields) = &mut body {
        fields.insert("contributions".into(), crate::ledger_api::tally_json(tally));
    }
    body
}

/// `POST /api/allocation/simulate`: the live allocation, run on the caller's figures.
pub(crate) async fn simulate(
    ApiJson(request): ApiJson<SimulateRequest>,
) -> Result<Json<SimulateResponse>, AppError> {
    query::allocation::simulate(&request)
        .map(Json)
        .map_err(|problems| {
            let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
            AppError::invalid(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "the simulation request is not valid: {}",
                    problems.join("; ")
                ),
                problems,
            )
        })
}

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
