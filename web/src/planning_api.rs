//! The planning board's JSON API (DESIGN.md §11): intents (needs and offers),
//! commitments on them, and the matches between members' intents. The rules are the
//! ledger's (`ledger::Journal::post_intent` and the calls beside it); this module
//! decodes requests and answers refusals as the ledger API does (`ledger_api`):
//! 404 for an intent or commitment that does not exist, 403 for a member who is not
//! the side that may act, 422 for the rest, each naming what is wrong.
//!
//! Reading is for members; posting, committing, accepting and releasing for the
//! role `resident` (a collective need: a resident of the assembly). The route table
//! says so.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use ledger::{Direction, IntentState, NewCommitment, NewIntent, Recorded, Request};
use serde::Deserialize;
use serde_json::json;

use crate::api_json::ApiJson;
use crate::auth::CurrentMember;
use crate::idempotency::{self, IdempotencyKey};
use crate::ledger_api::{created, entry_of, ledger_call, no_store};
use crate::{AppError, AppState};

/// An id from the path; anything else names nothing.
fn id_of(what: &str, raw: &str) -> Result<i64, AppError> {
    raw.parse::<i64>().map_err(|_| {
        let message = format!("there is no {what} {raw:?}: ids are whole numbers");
        AppError::invalid(StatusCode::NOT_FOUND, message.clone(), vec![message])
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct IntentsQuery {
    /// Only intents of this class.
    class: Option<String>,
    /// `need` or `offer`.
    direction: Option<String>,
    /// `open` (default), `closed`, `expired` or `all`.
    state: Option<String>,
}

/// `GET /api/intents[?class=C][&direction=need|offer][&state=open|closed|expired|all]`:
/// intents newest first (open ones by default), each with what is committed,
/// fulfilled and remaining, and its state now.
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(query): Query<IntentsQuery>,
) -> Result<Response, AppError> {
    let direction = match query.direction.as_deref().filter(|d| !d.is_empty()) {
        None => None,
        Some(raw) => Some(Direction::parse(raw).ok_or_else(|| {
            unprocessable(format!("`direction` is `need` or `offer`, not {raw:?}"))
        })?),
    };
    let wanted = match query.state.as_deref().unwrap_or("open") {
        "" | "open" => Some(IntentState::Open),
        "closed" => Some(IntentState::Closed),
        "expired" => Some(IntentState::Expired),
        "all" => None,
        other => {
            return Err(unprocessable(format!(
                "`state` is `open`, `closed`, `expired` or `all`, not {other:?}"
            )));
        }
    };
    let class = query.class.filter(|c| !c.is_empty());
    let intents = ledger_call(&state, "intents", |j| j.intents(Utc::now())).await?;
    let intents: Vec<_> = intents
        .into_iter()
        .filter(|i| class.as_ref().is_none_or(|c| &i.class == c))
        .filter(|i| direction.is_none_or(|d| i.direction == d))
        .filter(|i| wanted.is_none_or(|s| i.state == s))
        .collect();
    Ok(no_store(intents))
}

fn unprocessable(problem: String) -> AppError {
    AppError::invalid(
        StatusCode::UNPROCESSABLE_ENTITY,
        problem.clone(),
        vec![problem],
    )
}

/// `GET /api/intents/{id}`: one intent with its commitments, or 404.
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = id_of("intent", &id)?;
    let found = ledger_call(&state, "intent", move |j| {
        let intent = j.intent(id, Utc::now())?;
        let commitments: Vec<_> = j
            .commitments()?
            .into_iter()
            .filter(|c| c.intent == id)
            .collect();
        Ok(intent.map(|i| (i, commitments)))
    })
    .await?;
    match found {
        Some((intent, commitments)) => Ok(no_store(json!({
            "intent": intent,
            "commitments": commitments,
        }))),
        None => Err(crate::ledger_api::refused(ledger::Refusal::NoSuchIntent(
            id,
        ))),
    }
}

/// `POST /api/intents` `{"direction", "action", "class", "quantity", "unit",
/// "window_start"?, "window_end"?, "expires_at"?, "never_expires"?, "description",
/// "visibility"?, "collective"?}`: the signed-in member's need or offer; 201
/// `{"id", "hash", "expires_at"}`. With an `Idempotency-Key`, a repeated request
/// gets the first answer and records nothing.
pub(crate) async fn post(
    State(state): State<AppState>,
    member: CurrentMember,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(intent): ApiJson<NewIntent>,
) -> Result<Response, AppError> {
    let name = member.member.name.clone();
    let recorded = ledger_call(&state, "intent", move |j| {
        let now = Utc::now();
        match key {
            Some(key) => j.record_once(&name, &key, Request::Intent(&intent), now),
            None => j.post_intent(&name, &intent, now).map(Recorded::New),
        }
    })
    .await?;
    let (entry, repeated) = entry_of(recorded);
    if !repeated {
        tracing::info!(id = entry.seq, member = %member.member.name, "intent posted");
    }
    Ok(idempotency::mark(
        created(
            format!("/api/intents/{}", entry.seq),
            json!({
                "id": entry.seq,
                "hash": entry.hash,
                "expires_at": entry.payload.get("expires_at"),
            }),
        ),
        repeated,
    ))
}

/// `POST /api/intents/{id}/commitments` `{"quantity", "note"?}`: the signed-in
/// member takes the other side of intent `id` for `quantity` (all or part of what
/// remains), accepting by proposing; 201 `{"id", "hash"}`. The commitment exists
/// once the intent's side accepts it.
pub(crate) async fn commit(
    State(state): State<AppState>,
    member: CurrentMember,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<String>,
    ApiJson(commitment): ApiJson<NewCommitment>,
) -> Result<Response, AppError> {
    let intent = id_of("intent", &id)?;
    let name = member.member.name.clone();
    let recorded = ledger_call(&state, "commitment", move |j| {
        let now = Utc::now();
        match key {
            Some(key) => j.record_once(
                &name,
                &key,
                Request::Commitment {
                    intent,
                    commitment: &commitment,
                },
                now,
            ),
            None => j
                .propose_commitment(&name, intent, &commitment, now)
                .map(Recorded::New),
        }
    })
    .await?;
    let (entry, repeated) = entry_of(recorded);
    if !repeated {
        tracing::info!(id = entry.seq, intent, member = %member.member.name, "commitment proposed");
    }
    Ok(idempotency::mark(
        created(
            format!("/api/commitments/{}", entry.seq),
            json!({ "id": entry.seq, "hash": entry.hash }),
        ),
        repeated,
    ))
}

/// `GET /api/commitments`: the commitments the signed-in member is a side of.
pub(crate) async fn mine(
    State(state): State<AppState>,
    member: CurrentMember,
) -> Result<Response, AppError> {
    let name = member.member.name.clone();
    let all = ledger_call(&state, "commitments", move |j| j.commitments_of(&name)).await?;
    Ok(no_store(all))
}

/// `GET /api/intents/matches`: the signed-in member's matches, `{"offers_for_your_needs",
/// "needs_you_could_meet"}`, each `[{"yours", "theirs"}]`.
pub(crate) async fn matches(
    State(state): State<AppState>,
    member: CurrentMember,
) -> Result<Response, AppError> {
    let name = member.member.name.clone();
    let found = ledger_call(&state, "matches", move |j| j.matches(&name, Utc::now())).await?;
    let (for_needs, for_offers): (Vec<_>, Vec<_>) = found
        .into_iter()
        .partition(|m| m.yours.direction == Direction::Need);
    Ok(no_store(json!({
        "offers_for_your_needs": for_needs,
        "needs_you_could_meet": for_offers,
    })))
}

/// The body of `POST /api/commitments/{id}/release`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReleaseRequest {
    #[serde(default)]
    reason: String,
}

/// `POST /api/commitments/{id}/accept` (body `{}` or none): the other side accepts;
/// 201 `{"seq", "hash", "commitment"}`.
pub(crate) async fn accept(
    State(state): State<AppState>,
    member: CurrentMember,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = id_of("commitment", &id)?;
    let name = member.member.name.clone();
    let entry = ledger_call(&state, "acceptance", move |j| {
        j.accept_commitment(&name, id, Utc::now())
    })
    .await?;
    tracing::info!(commitment = id, member = %member.member.name, "commitment accepted");
    Ok(created(
        format!("/api/commitments/{id}"),
        json!({ "seq": entry.seq, "hash": entry.hash, "commitment": id }),
    ))
}

/// `POST /api/commitments/{id}/release` `{"reason"?}`: either side releases it
/// before it is fulfilled; 201 `{"seq", "hash", "commitment"}`.
pub(crate) async fn release(
    State(state): State<AppState>,
    member: CurrentMember,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let id = id_of("commitment", &id)?;
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        String::new()
    } else {
        serde_json::from_slice::<ReleaseRequest>(&body)
            .map_err(|e| unprocessable(format!("the body is not a valid release: {e}")))?
            .reason
    };
    let name = member.member.name.clone();
    let entry = ledger_call(&state, "release", move |j| {
        j.release_commitment(&name, id, &reason, Utc::now())
    })
    .await?;
    tracing::info!(commitment = id, member = %member.member.name, "commitment released");
    Ok(created(
        format!("/api/commitments/{id}"),
        json!({ "seq": entry.seq, "hash": entry.hash, "commitment": id }),
    ))
}

/// The body of `POST /api/interests`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InterestsRequest {
    classes: Vec<String>,
}

/// `GET /api/interests`: the signed-in member's saved interest classes, the open
/// intents of others in them, and how many matches are new since they last
/// opened `/plan`: `{"classes", "intents", "new_matches"}`.
pub(crate) async fn interests(
    State(state): State<AppState>,
    member: CurrentMember,
) -> Result<Response, AppError> {
    let name = member.member.name.clone();
    let (classes, intents, new) = ledger_call(&state, "interests", move |j| {
        let now = Utc::now();
        Ok((
            j.interests(&name)?,
            j.interest_matches(&name, now)?,
            j.new_matches(&name, now)?,
        ))
    })
    .await?;
    Ok(no_store(json!({
        "classes": classes,
        "intents": intents,
        "new_matches": new,
    })))
}

/// `POST /api/interests` `{"classes": [CLASS, …]}`: replaces the signed-in
/// member's saved interests (an empty list clears them); 200 `{"classes"}`, or 422
/// naming each class that is not one.
pub(crate) async fn set_interests(
    State(state): State<AppState>,
    member: CurrentMember,
    ApiJson(request): ApiJson<InterestsRequest>,
) -> Result<Response, AppError> {
    let name = member.member.name.clone();
    let classes = ledger_call(&state, "interests", move |j| {
        j.set_interests(&name, &request.classes)
    })
    .await?;
    Ok(no_store(json!({ "classes": classes })))
}
