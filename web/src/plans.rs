//! The plan API of DESIGN.md §8: `GET /api/plans` (any signed-in member: decision
//! records carry minutes and members' names, which the public pages do not show)
//! and `POST /api/plans` (role `assembly`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, LOCATION};
use axum::response::{IntoResponse, Response};
use ledger::{
    AdoptedPlan, Decision, DecisionProblem, Motion, Plan, PlanProblem, Recorded, Request,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api_json::ApiJson;
use crate::auth::CurrentMember;
use crate::idempotency::{self, IdempotencyKey};
use crate::{AppError, AppState};

/// The body of `POST /api/plans`.
#[derive(Debug, Deserialize)]
pub(crate) struct AdoptRequest {
    plan: Plan,
    decision: Decision,
}

/// `GET /api/plans`: the active plan and every adopted plan, newest first, each with
/// what changed from the one before.
pub(crate) async fn list(State(state): State<AppState>) -> Result<Response, AppError> {
    let journal = state.journal.clone();
    let history = tokio::task::spawn_blocking(move || journal.plan_history())
        .await
        .map_err(|e| AppError::Internal(format!("plan history task: {e}")))??;
    let body = json!({
        "active": history.first().map(|p| &p.plan),
        "active_seq": history.first().map(|p| p.seq),
        "history": history
            .iter()
            .enumerate()
            .map(|(i, adopted)| history_item(adopted, history.get(i + 1)))
            .collect::<Vec<_>>(),
    });
    Ok(([(CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// One adoption, with what changed from the plan it replaced (`previous`, the next
/// older adoption; `null` for the first plan).
fn history_item(adopted: &AdoptedPlan, previous: Option<&AdoptedPlan>) -> Value {
    let mut decision = serde_json::to_value(&adopted.decision).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut decision {
        // Who entered the decision: the journal entry's author.
        fields.insert("entered_by".into(), Value::String(adopted.author.clone()));
        fields.insert(
            "from_configuration".into(),
            Value::Bool(adopted.is_from_configuration()),
        );
    }
    json!({
        "seq": adopted.seq,
        "adopted_at": ledger::format_ts(adopted.adopted_at),
        "decision": decision,
        "plan": adopted.plan,
        "hash": adopted.hash,
        "changes": previous.map(|p| adopted.plan.changes_since(&p.plan)),
    })
}

/// Why [`adopt_checked`] did not adopt a plan.
#[derive(Debug)]
pub(crate) enum AdoptError {
    /// The plan or its decision record does not hold: every problem, as data.
    Refused {
        plan: Vec<PlanProblem>,
        decision: Vec<DecisionProblem>,
    },
    /// The journal could not record it.
    Failed(AppError),
}

/// Adopts `plan` under `decision`, entered by `author`: the one way the API and the
/// assembly's panel record an adoption; with `key` (an `Idempotency-Key`) at most
/// once for that key ([`ledger::Journal::record_once`]). The ledger checks the
/// plan, its services against the site configuration and the decision record
/// under the assembly's rule in force (DESIGN.md §9); when it refuses, every
/// problem is named at once. A new adoption wakes the live evaluation so that the
/// plan applies at once.
pub(crate) async fn adopt_checked(
    state: &AppState,
    plan: Plan,
    decision: Decision,
    author: String,
    key: Option<String>,
) -> Result<Recorded, AdoptError> {
    let journal = state.journal.clone();
    let services = state.services.clone();
    let who = author.clone();
    let recorded = tokio::task::spawn_blocking(move || {
        let now = chrono::Utc::now();
        let recorded = match &key {
            Some(key) => {
                let request = Request::Plan {
                    plan: &plan,
                    decision: &decision,
                    configured: &services,
                };
                journal.record_once(&who, key, request, now)
            }
            None => journal
                .adopt_plan(&plan, &decision, &services, &who, now)
                .map(Recorded::New),
        };
        let (plan_problems, decision_problems) = match recorded {
            Err(ledger::Error::Refused(ledger::Refusal::InvalidPlan(p))) => (p, Vec::new()),
            Err(ledger::Error::Refused(ledger::Refusal::InvalidDecision(d))) => (Vec::new(), d),
            other => return other.map(Ok),
        };
        // The ledger stops at the first part that does not hold: name them all.
        let context = journal.decision_context(Motion::Plan, now)?;
        let all_plan = plan.problems_against(&services);
        let all_decision = decision.problems_in(&context);
        Ok(Err(if all_plan.is_empty() && all_decision.is_empty() {
            (plan_problems, decision_problems)
        } else {
            (all_plan, all_decision)
        }))
    })
    .await
    .map_err(|e| AdoptError::Failed(AppError::Internal(format!("plan adoption task: {e}"))))?;
    let recorded = match recorded {
        Ok(Ok(recorded)) => recorded,
        Ok(Err((plan, decision))) => return Err(AdoptError::Refused { plan, decision }),
        Err(other) => return Err(AdoptError::Failed(AppError::from(other))),
    };
    if let Recorded::New(entry) = &recorded {
        state.replan.notify_one();
        tracing::info!(seq = entry.seq, member = %author, "plan adopted");
    }
    Ok(recorded)
}

/// `POST /api/plans`: adopts a plan with its decision record, entered by the
/// member making the request; 201 `{"seq", "hash"}`, or 422 naming every problem
/// with the plan and the decision at once. The live evaluation is woken at once.
/// With an `Idempotency-Key`, a repeated request gets the first answer and records
/// nothing (see `idempotency.rs`).
pub(crate) async fn adopt(
    State(state): State<AppState>,
    member: CurrentMember,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request): ApiJson<AdoptRequest>,
) -> Result<Response, AppError> {
    let recorded = adopt_checked(
        &state,
        request.plan,
        request.decision,
        member.member.name.clone(),
        key,
    )
    .await
    .map_err(|e| match e {
        AdoptError::Refused { plan, decision } => refused(
            plan.iter()
                .map(ToString::to_string)
                .chain(decision.iter().map(ToString::to_string))
                .collect(),
        ),
        AdoptError::Failed(e) => e,
    })?;
    let (entry, repeated) = crate::ledger_api::entry_of(recorded);
    Ok(idempotency::mark(
        (
            StatusCode::CREATED,
            [(LOCATION, "/api/plans"), (CACHE_CONTROL, "no-store")],
            Json(json!({ "seq": entry.seq, "hash": entry.hash })),
        )
            .into_response(),
        repeated,
    ))
}

fn refused(problems: Vec<String>) -> AppError {
    AppError::invalid(
        StatusCode::UNPROCESSABLE_ENTITY,
        format!("the plan cannot be adopted: {}", problems.join("; ")),
        problems,
    )
}
