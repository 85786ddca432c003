//! The contribution ledger's JSON API (DESIGN.md §8): contributions and their
//! attestations, transfers of Communs, balances at any instant, the ledger
//! parameters the assembly adopts, and the journal's verification.
//!
//! Everything here names members, so it is for signed-in members only (the route
//! table says who may call what): recording, attesting and transferring need the
//! role `resident`, adopting parameters the role `assembly`, reading any member.
//! The rules themselves are the ledger's; this module decodes requests, runs the
//! journal call off the async threads, and turns each refusal into a 422 (404 for
//! a contribution that does not exist) whose `problems` name what is wrong.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, LOCATION};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use ledger::{
    Decision, DecisionContext, Journal, LedgerParameters, Motion, NewContribution, NewTransfer,
    Recorded, Refusal, Request, Verdict,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api_json::ApiJson;
use crate::auth::CurrentMember;
use crate::idempotency::{self, IdempotencyKey};
use crate::{AppError, AppState};

/// Runs a journal call on the blocking pool: every call may wait for the
/// journal's lock and for a synchronous disk write.
pub(crate) async fn with_journal<T: Send + 'static>(
    state: &AppState,
    what: &'static str,
    f: impl FnOnce(&Journal) -> ledger::Result<T> + Send + 'static,
) -> Result<ledger::Result<T>, AppError> {
    let journal = state.journal.clone();
    tokio::task::spawn_blocking(move || f(&journal))
        .await
        .map_err(|e| AppError::Internal(format!("{what} task: {e}")))
}

/// A refusal from the ledger as the API answers it: the status of
/// [`refusal_status`], and `problems` naming each thing to correct.
pub(crate) fn refused(refusal: Refusal) -> AppError {
    let status = refusal_status(&refusal);
    let message = refusal.to_string();
    let problems = match refusal {
        Refusal::InvalidContribution(problems) => texts(&problems),
        Refusal::InvalidDecision(problems) => texts(&problems),
        Refusal::InvalidPlan(problems) => texts(&problems),
        Refusal::InvalidParameters(problems) => problems,
        Refusal::InvalidIntent(problems) => texts(&problems),
        Refusal::InvalidDraw(problems) => texts(&problems),
        _ => vec![message.clone()],
    };
    AppError::invalid(status, message, problems)
}

fn texts(problems: &[impl ToString]) -> Vec<String> {
    problems.iter().map(ToString::to_string).collect()
}

/// 404 for a contribution that does not exist, 400 for an `Idempotency-Key` header
/// that is not one, 422 for everything else the caller can correct. Every refusal
/// is listed: a new one does not build until it is given its status here.
fn refusal_status(refusal: &Refusal) -> StatusCode {
    match refusal {
        Refusal::NoSuchContribution(_)
        | Refusal::NoSuchIntent(_)
        | Refusal::NoSuchCommitment(_)
        | Refusal::NoSuchDraw(_)
        | Refusal::NoSuchGrant(_) => StatusCode::NOT_FOUND,
        // Signed in, but not the one who may do this.
        Refusal::NotAParty { .. } | Refusal::AssemblyOnly(_) | Refusal::NotOfHousehold { .. } => {
            StatusCode::FORBIDDEN
        }
        Refusal::InvalidIdempotencyKey(_) => StatusCode::BAD_REQUEST,
        Refusal::DuplicateMember(_)
        | Refusal::InvalidMemberName { .. }
        | Refusal::InvalidAuthor(_)
        | Refusal::InvalidPlan(_)
        | Refusal::InvalidDecision(_)
        | Refusal::InvalidPayload { .. }
        | Refusal::DerivedKind(_)
        | Refusal::InvalidTimestamp(_)
        | Refusal::UnknownMember(_)
        | Refusal::CredentialExists(_)
        | Refusal::RolesDiffer { .. }
        | Refusal::UnacceptablePassword(_)
        | Refusal::InvalidLabel(_)
        | Refusal::InvalidContribution(_)
        | Refusal::SelfAttestation { .. }
        | Refusal::AlreadyAttested { .. }
        | Refusal::ContributionDecided { .. }
        | Refusal::InvalidComment(_)
        | Refusal::TransferToSelf(_)
        | Refusal::NonPositiveAmount(_)
        | Refusal::InvalidMemo(_)
        | Refusal::InsufficientCommons { .. }
        | Refusal::InvalidParameters(_)
        | Refusal::UnsettledDemurrage { .. }
        | Refusal::LedgerRule(_)
        | Refusal::TypedCallOnly { .. }
        | Refusal::IdempotencyKeyReused(_)
        | Refusal::ExpiryPast(_)
        | Refusal::InvalidIntent(_)
        | Refusal::IntentNotOpen { .. }
        | Refusal::OverCommitment { .. }
        | Refusal::PlanningRule(_)
        | Refusal::InvalidDraw(_)
        | Refusal::SortitionRule(_)
        | Refusal::ConsentRule(_) => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// A journal call whose refusals are answered as [`refused`] says.
pub(crate) async fn ledger_call<T: Send + 'static>(
    state: &AppState,
    what: &'static str,
    f: impl FnOnce(&Journal) -> ledger::Result<T> + Send + 'static,
) -> Result<T, AppError> {
    Ok(with_journal(state, what, f).await??)
}

pub(crate) fn no_store(body: impl serde::Serialize) -> Response {
    ([(CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

pub(crate) fn created(location: String, body: Value) -> Response {
    (
        StatusCode::CREATED,
        [
            (LOCATION, location),
            (CACHE_CONTROL, "no-store".to_string()),
        ],
        Json(body),
    )
        .into_response()
}

/// A contribution id from the path; anything else names no contribution.
fn contribution_id(raw: &str) -> Result<i64, AppError> {
    raw.parse::<i64>().map_err(|_| {
        let message = format!("there is no contribution {raw:?}: ids are whole numbers");
        AppError::invalid(StatusCode::NOT_FOUND, message.clone(), vec![message])
    })
}

/// `GET /api/contributions`: every contribution, newest first, each with its
/// attestations, state and what it minted.
pub(crate) async fn list_contributions(
    State(state): State<AppState>,
) -> Result<Response, AppError> {
    let all = ledger_call(&state, "contributions", |j| j.contributions()).await?;
    Ok(no_store(all))
}

/// `GET /api/contributions/{id}`: one contribution, or 404.
pub(crate) async fn get_contribution(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = contribution_id(&id)?;
    match ledger_call(&state, "contribution", move |j| j.contribution(id)).await? {
        Some(contribution) => Ok(no_store(contribution)),
        None => Err(refused(Refusal::NoSuchContribution(id))),
    }
}

/// The body of `POST /api/contributions`: a [`NewContribution`] and, optionally,
/// the commitment it fulfils.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContributionRequest {
    category: ledger::Category,
    hours: f64,
    date: chrono::NaiveDate,
    description: String,
    #[serde(default)]
    commitment: Option<i64>,
}

/// `POST /api/contributions` `{"category", "hours", "date", "description",
/// "commitment"?}`: the signed-in member's contribution, fulfilling `commitment`
/// (theirs to provide, accepted by both sides) when named; 201 `{"id", "hash"}`
/// (`id` is the journal entry's `seq`). With an `Idempotency-Key`, a repeated
/// request gets the first answer and records nothing (see `idempotency.rs`).
pub(crate) async fn record_contribution(
    State(state): State<AppState>,
    member: CurrentMember,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request): ApiJson<ContributionRequest>,
) -> Result<Response, AppError> {
    let name = member.member.name.clone();
    let contribution = NewContribution {
        category: request.category,
        hours: request.hours,
        date: request.date,
        description: request.description,
    };
    let commitment = request.commitment;
    let recorded = ledger_call(&state, "contribution", move |j| {
        let now = Utc::now();
        match (key, commitment) {
            (Some(key), None) => {
                j.record_once(&name, &key, Request::Contribution(&contribution), now)
            }
            (Some(key), Some(commitment)) => j.record_once(
                &name,
                &key,
                Request::ContributionFulfilling {
                    contribution: &contribution,
                    commitment,
                },
                now,
            ),
            (None, None) => j
                .record_contribution(&name, &contribution, now)
                .map(Recorded::New),
            (None, Some(commitment)) => j
                .record_contribution_fulfilling(&name, &contribution, commitment, now)
                .map(Recorded::New),
        }
    })
    .await?;
    let (entry, repeated) = entry_of(recorded);
    if !repeated {
        tracing::info!(id = entry.seq, member = %member.member.name, "contribution recorded");
    }
    Ok(idempotency::mark(
        created(
            format!("/api/contributions/{}", entry.seq),
            json!({ "id": entry.seq, "hash": entry.hash }),
        ),
        repeated,
    ))
}

/// The entry a request recorded, and whether it was recorded by an earlier copy.
pub(crate) fn entry_of(recorded: Recorded) -> (ledger::Entry, bool) {
    match recorded {
        Recorded::New(entry) => (entry, false),
        Recorded::Repeated(entry) => (entry, true),
    }
}

/// The body of `POST /api/contributions/{id}/attestations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AttestRequest {
    verdict: Verdict,
    /// Required (not blank) for a rejection.
    #[serde(default)]
    comment: String,
}

/// `POST /api/contributions/{id}/attestations` `{"verdict", "comment"}`: the
/// signed-in member approves or rejects someone else's contribution; 201 `{"seq",
/// "hash", "contribution", "state", "minted", "validation_seq"}`, the state being
/// the contribution's after this attestation (`validated` at the `k`-th approval,
/// with what it minted).
pub(crate) async fn attest(
    State(state): State<AppState>,
    member: CurrentMember,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<AttestRequest>,
) -> Result<Response, AppError> {
    let id = contribution_id(&id)?;
    let name = member.member.name.clone();
    let attested = ledger_call(&state, "attestation", move |j| {
        j.attest(id, &name, request.verdict, &request.comment, Utc::now())
    })
    .await?;
    tracing::info!(
        contribution = id,
        member = %member.member.name,
        state = %attested.state,
        "contribution attested"
    );
    Ok(created(
        format!("/api/contributions/{id}"),
        json!({
            "seq": attested.attestation.seq,
            "hash": attested.attestation.hash,
            "contribution": id,
            "state": attested.state,
            "minted": attested.minted,
            "validation_seq": attested.validation.as_ref().map(|e| e.seq),
            "fulfilment_seq": attested.fulfilment.as_ref().map(|e| e.seq),
        }),
    ))
}

/// `POST /api/transfers` `{"to", "amount", "memo"}`: Communs from the signed-in
/// member to another; 201 `{"seq", "hash"}`. With an `Idempotency-Key`, a repeated
/// request gets the first answer and pays nothing more (see `idempotency.rs`).
pub(crate) async fn transfer(
    State(state): State<AppState>,
    member: CurrentMember,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(transfer): ApiJson<NewTransfer>,
) -> Result<Response, AppError> {
    let name = member.member.name.clone();
    let recorded = ledger_call(&state, "transfer", move |j| {
        let now = Utc::now();
        match key {
            Some(key) => j.record_once(&name, &key, Request::Transfer(&transfer), now),
            None => j.transfer(&name, &transfer, now).map(Recorded::New),
        }
    })
    .await?;
    let (entry, repeated) = entry_of(recorded);
    if !repeated {
        tracing::info!(seq = entry.seq, member = %member.member.name, "transfer recorded");
    }
    Ok(idempotency::mark(
        created(
            "/api/transfers".to_string(),
            json!({ "seq": entry.seq, "hash": entry.hash }),
        ),
        repeated,
    ))
}

/// `GET /api/transfers`: the transfers the signed-in member sent or received,
/// newest first. Other members' transfers are theirs: only balances are shown to
/// everyone.
pub(crate) async fn transfers(
    State(state): State<AppState>,
    member: CurrentMember,
) -> Result<Response, AppError> {
    let name = member.member.name.clone();
    let all = ledger_call(&state, "transfers", move |j| j.transfers_of(&name)).await?;
    Ok(no_store(all))
}

#[derive(Debug, Deserialize)]
pub(crate) struct BalancesQuery {
    at: Option<String>,
}

/// Reads an instant given as RFC 3339.
pub(crate) fn parse_instant(name: &str, raw: &str) -> Result<DateTime<Utc>, AppError> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            let problem =
                format!("`{name}` must be an RFC 3339 instant such as 2026-03-12T18:00:00Z, not {raw:?} ({e})");
            AppError::invalid(
                StatusCode::UNPROCESSABLE_ENTITY,
                problem.clone(),
                vec![problem],
            )
        })
}

/// `GET /api/ledger/balances?at=RFC3339`: every member's balance, the commons and
/// the total minted at `at` (default now; a future instant projects demurrage).
pub(crate) async fn balances(
    State(state): State<AppState>,
    Query(query): Query<BalancesQuery>,
) -> Result<Response, AppError> {
    let at = match query.at.as_deref() {
        Some(raw) if !raw.trim().is_empty() => parse_instant("at", raw)?,
        _ => Utc::now(),
    };
    let balances = ledger_call(&state, "balances", move |j| j.balances(at)).await?;
    Ok(no_store(balances))
}

/// `GET /api/ledger/parameters`: the parameters in force (the defaults until the
/// assembly adopts any) and every adoption, newest first.
pub(crate) async fn parameters(State(state): State<AppState>) -> Result<Response, AppError> {
    let history = ledger_call(&state, "ledger parameters", |j| j.parameters_history()).await?;
    let active = history
        .first()
        .map(|a| a.parameters.clone())
        .unwrap_or_default();
    Ok(no_store(json!({
        "active": active,
        "active_seq": history.first().map(|a| a.seq),
        "defaults": LedgerParameters::default(),
        "history": history.iter().map(|a| {
            let mut decision = serde_json::to_value(&a.decision).unwrap_or(Value::Null);
            if let Value::Object(fields) = &mut decision {
                fields.insert("entered_by".into(), Value::String(a.author.clone()));
            }
            json!({
                "seq": a.seq,
                "adopted_at": ledger::format_ts(a.adopted_at),
                "parameters": a.parameters,
                "decision": decision,
            })
        }).collect::<Vec<_>>(),
    })))
}

/// The body of `POST /api/ledger/parameters`, like that of `POST /api/plans`.
/// `parameters.decision_rule` may be left out: the rule in force is kept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdoptParametersRequest {
    parameters: Value,
    decision: Decision,
}

/// Every problem with parameters and their decision record, in English, as the
/// API and the journal say them: the parameters out of bounds, and the decision
/// record judged in `context` (the rule in force, the previous adoption).
fn adoption_problems(
    parameters: &LedgerParameters,
    decision: &Decision,
    context: &DecisionContext,
) -> Vec<String> {
    parameters
        .problems()
        .into_iter()
        .chain(
            decision
                .problems_in(context)
                .iter()
                .map(ToString::to_string),
        )
        .collect()
}

/// Adopts ledger parameters under a decision record, entered by `author`: the one
/// way the API records an adoption. Refuses, naming every problem at once,
/// parameters out of bounds and a decision record that does not adopt them
/// (DESIGN.md §9).
pub(crate) async fn adopt_parameters_checked(
    state: &AppState,
    parameters: LedgerParameters,
    decision: Decision,
    author: String,
) -> Result<ledger::Entry, AppError> {
    let who = author.clone();
    let entry = with_journal(state, "parameters adoption", move |j| {
        let now = Utc::now();
        let context = j.decision_context(Motion::Parameters, now)?;
        let problems = adoption_problems(&parameters, &decision, &context);
        if !problems.is_empty() {
            return Ok(Err(problems));
        }
        j.adopt_ledger_parameters(&parameters, &decision, &who, now)
            .map(Ok)
    })
    .await??
    .map_err(|problems| {
        AppError::invalid(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "the ledger parameters cannot be adopted: {}",
                problems.join("; ")
            ),
            problems,
        )
    })?;
    tracing::info!(seq = entry.seq, member = %author, "ledger parameters adopted");
    Ok(entry)
}

/// Parameters as the API takes them: [`LedgerParameters`], whose `decision_rule`
/// is the rule in force when left out, so that a script written before the rule
/// could be adopted does not reset it by changing a rate.
async fn parameters_of(state: &AppState, mut raw: Value) -> Result<LedgerParameters, AppError> {
    if let Value::Object(fields) = &mut raw
        && !fields.contains_key("decision_rule")
    {
        let in_force = ledger_call(state, "ledger parameters", |j| j.ledger_parameters()).await?;
        fields.insert("decision_rule".into(), json!(in_force.decision_rule));
    }
    serde_json::from_value(raw).map_err(|e| {
        let problem = format!("`parameters` is not valid: {e}");
        AppError::invalid(
            StatusCode::UNPROCESSABLE_ENTITY,
            problem.clone(),
            vec![problem],
        )
    })
}

/// `POST /api/ledger/parameters` `{"parameters", "decision"}` (role `assembly`):
/// 201 `{"seq", "hash"}`, or 422 naming every problem.
pub(crate) async fn adopt_parameters(
    State(state): State<AppState>,
    member: CurrentMember,
    ApiJson(request): ApiJson<AdoptParametersRequest>,
) -> Result<Response, AppError> {
    let parameters = parameters_of(&state, request.parameters).await?;
    let entry = adopt_parameters_checked(
        &state,
        parameters,
        request.decision,
        member.member.name.clone(),
    )
    .await?;
    Ok(created(
        "/api/ledger/parameters".to_string(),
        json!({ "seq": entry.seq, "hash": entry.hash }),
    ))
}

/// `GET /api/ledger/verify`: the journal's chain re-derived and its balances
/// replayed ([`ledger::Journal::verify`]): `{"entries", "head_hash",
/// "chain_intact", "intact", "first_bad", "warnings"}`, `first_bad` naming the
/// first bad entry (and the account, for a balance) or `null`, `warnings` the past
/// adoptions today's decision rule would refuse (`[{"seq", "kind",
/// "assembly_date", "rule", "problems"}]`).
pub(crate) async fn verify(State(state): State<AppState>) -> Result<Response, AppError> {
    let report = ledger_call(&state, "verification", |j| j.verify()).await?;
    Ok(no_store(json!({
        "entries": report.entries,
        "head_hash": report.head_hash,
        "chain_intact": report.chain_intact,
        "intact": report.is_intact(),
        "first_bad": report.first_bad,
        "warnings": report.warnings,
    })))
}

/// Monday 00:00 of the week of `now`, in the site's time zone: where "this week"
/// starts on the wall screen. On a day whose midnight a clock change skips, the
/// first instant of that day.
pub(crate) fn week_start(now: DateTime<Utc>, tz: chrono_tz::Tz) -> DateTime<Utc> {
    let today = now.with_timezone(&tz).date_naive();
    let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
    let midnight = monday.and_time(chrono::NaiveTime::MIN);
    match tz.from_local_datetime(&midnight) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        // Midnight skipped: the day starts when the clock jumps, at most a few hours
        // later; searching hour by hour finds it.
        chrono::LocalResult::None => (1..=3)
            .find_map(|h| {
                tz.from_local_datetime(&(midnight + Duration::hours(h)))
                    .earliest()
            })
            .map_or(midnight.and_utc(), |t| t.with_timezone(&Utc)),
    }
}

/// What the wall screen says of the ledger: hours validated since the start of
/// this week.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct WeekTally {
    pub(crate) since: DateTime<Utc>,
    pub(crate) hours: ledger::Hours,
}

/// This week's tally, or `None` (logged) when the journal cannot be read: the wall
/// then leaves the panel out rather than show a wrong zero.
pub(crate) async fn week_tally(state: &AppState, now: DateTime<Utc>) -> Option<WeekTally> {
    let since = week_start(now, state.site.timezone);
    match with_journal(state, "week tally", move |j| j.hours_validated_since(since)).await {
        Ok(Ok(hours)) => Some(WeekTally { since, hours }),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot count this week's validated hours");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot count this week's validated hours");
            None
        }
    }
}

/// The `contributions` field `/api/live` and the event stream add to the
/// snapshot: `{"hours_validated_this_week", "week_start"}`, or `null`.
pub(crate) fn tally_json(tally: Option<WeekTally>) -> Value {
    match tally {
        Some(t) => json!({
            "hours_validated_this_week": t.hours,
            "week_start": ledger::format_ts(t.since),
        }),
        None => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use ledger::{
        Communs, ContributionProblem, ContributionState, DecisionProblem, EntryKind, PlanProblem,
        Role,
    };

    use super::*;

    const UNPROCESSABLE: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

    /// One refusal of every kind, with the status the API owes it and, where it is
    /// not the message itself, the problems it names.
    fn every_refusal() -> Vec<(Refusal, StatusCode, Option<Vec<&'static str>>)> {
        let just = |refusal: Refusal| (refusal, UNPROCESSABLE, None);
        vec![
            just(Refusal::DuplicateMember("Alice".into())),
            just(Refusal::InvalidMemberName {
                name: " Alice".into(),
                reason: "it starts or ends with a space".into(),
            }),
            just(Refusal::InvalidAuthor(String::new())),
            (
                Refusal::InvalidPlan(vec![
                    PlanProblem::TierTwice { tier: 2 },
                    PlanProblem::NotConfigured { id: "ghost".into() },
                ]),
                UNPROCESSABLE,
                Some(vec![
                    "tier 2 has two split rules",
                    "service `ghost` is not in the site configuration",
                ]),
            ),
            (
                Refusal::InvalidDecision(vec![
                    DecisionProblem::NoQuorum,
                    DecisionProblem::NotCarried {
                        rule: ledger::DecisionRule::Simple,
                        votes_for: 3,
                        votes_against: 6,
                    },
                ]),
                UNPROCESSABLE,
                Some(vec![
                    "quorum_required must be at least 1",
                    "the motion did not carry: 3 for, 6 against \
                     (simple majority: more votes for than against)",
                ]),
            ),
            just(Refusal::InvalidPayload {
                kind: EntryKind::Transfer,
                reason: "missing field `to`".into(),
            }),
            just(Refusal::DerivedKind(EntryKind::DemurrageSettled)),
            just(Refusal::InvalidTimestamp(DateTime::<Utc>::MAX_UTC)),
            just(Refusal::UnknownMember("Mallory".into())),
            just(Refusal::CredentialExists("Alice".into())),
            just(Refusal::RolesDiffer {
                name: "Bo".into(),
                recorded: vec![Role::Installer],
                asked: vec![Role::Admin],
            }),
            just(Refusal::UnacceptablePassword("too short".into())),
            just(Refusal::InvalidLabel("a\nb".into())),
            (
                Refusal::InvalidContribution(vec![
                    ContributionProblem::DescriptionEmpty,
                    ContributionProblem::HoursNotPositive { hours: 0.0 },
                ]),
                UNPROCESSABLE,
                Some(vec![
                    "the description is empty",
                    "hours must be more than 0, not 0",
                ]),
            ),
            (Refusal::NoSuchContribution(7), StatusCode::NOT_FOUND, None),
            just(Refusal::SelfAttestation {
                member: "Alice".into(),
                contribution: 7,
            }),
            just(Refusal::AlreadyAttested {
                member: "Bob".into(),
                contribution: 7,
            }),
            just(Refusal::ContributionDecided {
                contribution: 7,
                state: ContributionState::Validated,
            }),
            just(Refusal::InvalidComment(
                "a rejection needs a comment".into(),
            )),
            just(Refusal::TransferToSelf("Alice".into())),
            just(Refusal::NonPositiveAmount(Communs::ZERO)),
            just(Refusal::InvalidMemo(
                "the memo contains a control character".into(),
            )),
            just(Refusal::InsufficientCommons {
                member: "Alice".into(),
                balance: Communs::from_whole(3),
                asked: Communs::from_whole(5),
            }),
            (
                Refusal::InvalidParameters(vec![
                    "attestations_needed must be between 1 and 50".into(),
                ]),
                UNPROCESSABLE,
                Some(vec!["attestations_needed must be between 1 and 50"]),
            ),
            just(Refusal::UnsettledDemurrage {
                member: "Alice".into(),
                since: "2026-11-22T10:00:00.000Z".into(),
            }),
            just(Refusal::LedgerRule("the commons overflows".into())),
            just(Refusal::TypedCallOnly {
                kind: EntryKind::PlanAdopted,
                call: "Journal::adopt_plan",
            }),
            (
                Refusal::InvalidIdempotencyKey("é".into()),
                StatusCode::BAD_REQUEST,
                None,
            ),
            just(Refusal::IdempotencyKeyReused("k1".into())),
            just(Refusal::ExpiryPast(DateTime::<Utc>::MIN_UTC)),
            (
                Refusal::InvalidIntent(vec![ledger::IntentProblem::ClassEmpty]),
                UNPROCESSABLE,
                Some(vec!["the class is empty"]),
            ),
            (Refusal::NoSuchIntent(3), StatusCode::NOT_FOUND, None),
            (Refusal::NoSuchCommitment(3), StatusCode::NOT_FOUND, None),
            just(Refusal::IntentNotOpen {
                intent: 3,
                state: ledger::IntentState::Expired,
            }),
            just(Refusal::OverCommitment {
                intent: 3,
                asked: ledger::Quantity::from_centi(300),
                remaining: ledger::Quantity::from_centi(100),
            }),
            (
                Refusal::NotAParty {
                    member: "Mallory".into(),
                    commitment: 4,
                },
                StatusCode::FORBIDDEN,
                None,
            ),
            (
                Refusal::AssemblyOnly("only the assembly posts collective needs".into()),
                StatusCode::FORBIDDEN,
                None,
            ),
            just(Refusal::PlanningRule(ledger::PlanningProblem::Released {
                commitment: 4,
            })),
            (
                Refusal::InvalidDraw(vec![ledger::SortitionProblem::MinimaAboveSize {
                    minima: 9,
                    size: 7,
                }]),
                UNPROCESSABLE,
                Some(vec![
                    "the minima add up to 9 seats, more than the 7 of the panel",
                ]),
            ),
            (Refusal::NoSuchDraw(3), StatusCode::NOT_FOUND, None),
            just(Refusal::SortitionRule("draw 3 was already made".into())),
            (
                Refusal::NotOfHousehold {
                    member: "mallory".into(),
                    household: "house-7".into(),
                },
                StatusCode::FORBIDDEN,
                None,
            ),
            (Refusal::NoSuchGrant(12), StatusCode::NOT_FOUND, None),
            just(Refusal::ConsentRule("grant 12 was already revoked".into())),
        ]
    }

    #[test]
    fn every_refusal_is_answered_with_a_client_error_naming_it() {
        let all = every_refusal();
        let listed: BTreeSet<&str> = all.iter().map(|(refusal, ..)| refusal.name()).collect();
        let declared: BTreeSet<&str> = Refusal::NAMES.iter().copied().collect();
        assert_eq!(
            listed, declared,
            "every_refusal() holds one refusal of each kind the ledger declares"
        );
        for (refusal, expected_status, expected_problems) in all {
            let text = refusal.to_string();
            let answer = AppError::from(ledger::Error::Refused(refusal));
            let AppError::InvalidRequest {
                status,
                message,
                problems,
            } = answer
            else {
                panic!("{text}: answered as {answer:?}, not as a refusal");
            };
            assert!(status.is_client_error(), "{text}: {status}");
            assert_eq!(status, expected_status, "{text}");
            assert!(!message.trim().is_empty(), "{status} without a message");
            assert_eq!(message, text);
            let expected_problems = expected_problems.unwrap_or_else(|| vec![text.as_str()]);
            assert_eq!(problems, expected_problems, "{text}");
        }
    }

    #[test]
    fn a_journal_that_fails_is_not_a_refusal() {
        let failure = ledger::Error::Corrupt {
            seq: 3,
            problem: "payload is not valid JSON".into(),
        };
        assert!(matches!(AppError::from(failure), AppError::Ledger(_)));
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_week_starts_on_monday_at_midnight_in_the_site_zone() {
        let paris = chrono_tz::Europe::Paris;
        // Thursday 12 March 2026, 14:00 in Paris (UTC+1): Monday 9 March 00:00 is 23:00Z on the 8th.
        assert_eq!(
            week_start(utc("2026-03-12T13:00:00Z"), paris),
            utc("2026-03-08T23:00:00Z")
        );
        // Sunday 23:30 in Paris is still the same week, though it is Monday in UTC+14.
        assert_eq!(
            week_start(utc("2026-03-15T22:30:00Z"), paris),
            utc("2026-03-08T23:00:00Z")
        );
        // Monday 00:10 in Paris starts a new week, though it is Sunday in UTC.
        assert_eq!(
            week_start(utc("2026-03-15T23:10:00Z"), paris),
            utc("2026-03-15T23:00:00Z")
        );
        // Summer time: UTC+2.
        assert_eq!(
            week_start(utc("2026-07-01T12:00:00Z"), paris),
            utc("2026-06-28T22:00:00Z")
        );
        // A zone whose clocks skipped midnight (Santiago, 2026-09-06 00:00 -> 01:00, a Sunday;
        // not a Monday, so the week's start is an ordinary midnight).
        let santiago = chrono_tz::America::Santiago;
        let start = week_start(utc("2026-09-09T12:00:00Z"), santiago);
        assert_eq!(
            start.with_timezone(&santiago).date_naive().weekday(),
            chrono::Weekday::Mon
        );
    }
}
