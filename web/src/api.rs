//! The JSON API (DESIGN.md §8): read-only, no login needed for these routes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CACHE_CONTROL;
use axum::response::{IntoResponse, Response};
use query::allocation::{SimulateRequest, SimulateResponse};
use query::live::LiveSnapshot;

use crate::api_json::ApiJson;
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
