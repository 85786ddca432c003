//! The planning board as a page (`/plan`, any signed-in member): open needs and
//! offers (`?class=` filters them), the member's matches and commitments, and plain
//! HTML forms for residents to post a need or an offer, propose a commitment on
//! someone else's, and accept or release their commitments. As on the ledger's
//! page, a form that cannot be recorded comes back (422, 403 or 404) as typed with
//! every problem named beside it; one that is recorded leads back to the page (303)
//! with a confirmation. The journal's rules (`ledger::Journal::post_intent` and the
//! calls beside it) are the last word.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use dashboards::{
    BoardConfirmation, BoardField, BoardProblem, BoardTarget, CommitForm, IntentForm, PlanForms,
    PlanView,
};
use ledger::{
    Action, Commitment, Direction, Intent, IntentState, Match, NewCommitment, NewIntent, Quantity,
    Role, Unit, Visibility,
};
use serde::Deserialize;

use crate::auth::CurrentMember;
use crate::form;
use crate::lang::PageLang;
use crate::ledger_api::with_journal;
use crate::{AppError, AppState};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct PageQuery {
    class: Option<String>,
    posted: Option<i64>,
    proposed: Option<i64>,
    accepted: Option<i64>,
    released: Option<i64>,
    interests: Option<String>,
}

/// What the page shows, read from the journal in one go.
struct PageData {
    /// Every intent, newest first, read now.
    intents: Vec<Intent>,
    matches: Vec<Match>,
    commitments: Vec<Commitment>,
    interests: Vec<String>,
    interest_matches: Vec<Intent>,
    /// When the member had looked at the board before this visit.
    seen_before: Option<DateTime<Utc>>,
    payments: Vec<ledger::Transfer>,
}

/// Reads the page's data; with `visit`, records that the member has now seen the
/// board (the count of new matches in the navigation starts again from zero).
async fn load(state: &AppState, member: &str, visit: bool) -> Result<PageData, AppError> {
    let member = member.to_string();
    let data = with_journal(state, "plan page", move |j| {
        let now = Utc::now();
        let seen_before = j.board_seen(&member)?;
        if visit {
            j.mark_board_seen(&member, now)?;
        }
        Ok(PageData {
            intents: j.intents(now)?,
            matches: j.matches(&member, now)?,
            commitments: j.commitments_of(&member)?,
            interests: j.interests(&member)?,
            interest_matches: j.interest_matches(&member, now)?,
            seen_before,
            payments: j.transfers_for_intents()?,
        })
    })
    .await??;
    Ok(data)
}

/// `GET /plan[?class=C]`.
pub(crate) async fn page(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
    Query(query): Query<PageQuery>,
) -> Result<Response, AppError> {
    let data = load(&state, &member.member.name, true).await?;
    let confirmation = query
        .posted
        .map(|id| BoardConfirmation::Posted { id })
        .or(query.proposed.map(|id| BoardConfirmation::Proposed { id }))
        .or(query.accepted.map(|id| BoardConfirmation::Accepted { id }))
        .or(query.released.map(|id| BoardConfirmation::Released { id }))
        .or(query.interests.map(|_| BoardConfirmation::InterestsSaved));
    let class = query.class.filter(|c| !c.trim().is_empty());
    render(
        StatusCode::OK,
        &state,
        &lang,
        &member,
        &data,
        class.as_deref(),
        &fresh_forms(),
        &[],
        None,
        confirmation,
    )
}

fn fresh_forms() -> PlanForms {
    PlanForms {
        intent: IntentForm {
            direction: Direction::Need.as_str().into(),
            action: Action::Work.as_str().into(),
            unit: Unit::Hours.as_str().into(),
            ..IntentForm::default()
        },
        ..PlanForms::default()
    }
}

#[allow(clippy::too_many_arguments)]
fn render(
    status: StatusCode,
    state: &AppState,
    lang: &PageLang,
    member: &CurrentMember,
    data: &PageData,
    class: Option<&str>,
    forms: &PlanForms,
    problems: &[BoardProblem],
    problems_for: Option<BoardTarget>,
    confirmation: Option<BoardConfirmation>,
) -> Result<Response, AppError> {
    let open: Vec<Intent> = data
        .intents
        .iter()
        .filter(|i| i.state == IntentState::Open)
        .cloned()
        .collect();
    let mut classes: Vec<String> = open.iter().map(|i| i.class.clone()).collect();
    classes.sort();
    classes.dedup();
    let shown: Vec<Intent> = open
        .into_iter()
        .filter(|i| class.is_none_or(|c| i.class == c))
        .collect();
    let view = PlanView {
        member: &member.member.name,
        roles: &member.member.roles,
        resident: member.has(Role::Resident),
        assembly: member.has(Role::Assembly),
        csrf: member.csrf().unwrap_or_default(),
        intents: &shown,
        class,
        classes: &classes,
        matches: &data.matches,
        commitments: &data.commitments,
        all_intents: &data.intents,
        forms,
        problems,
        problems_for,
        confirmation,
        interests: &data.interests,
        interest_matches: &data.interest_matches,
        seen_before: data.seen_before,
        // This page is the one that shows them: none is new once it is open.
        new_matches: 0,
        payments: &data.payments,
    };
    let html = dashboards::render_plan(&view, lang.lang, &state.site)?;
    Ok(lang.page(status, html))
}

/// Back to the page after a recorded form, saying what was done.
fn done(query: String) -> Response {
    crate::form::done("/plan", &query)
}

/// The page again with `problems` beside the form they concern and that form as
/// typed.
async fn refused(
    state: &AppState,
    lang: &PageLang,
    member: &CurrentMember,
    status: StatusCode,
    target: BoardTarget,
    problems: &[BoardProblem],
    keep: impl FnOnce(&mut PlanForms),
) -> Result<Response, AppError> {
    let data = load(state, &member.member.name, false).await?;
    let mut forms = fresh_forms();
    keep(&mut forms);
    render(
        status,
        state,
        lang,
        member,
        &data,
        None,
        &forms,
        problems,
        Some(target),
        None,
    )
}

/// A refusal from the journal as problems the page phrases, with the status it is
/// answered with; anything that is not a refusal is an error.
fn problems_of(error: ledger::Error) -> Result<(StatusCode, Vec<BoardProblem>), AppError> {
    use ledger::Refusal as R;
    let ledger::Error::Refused(refusal) = error else {
        return Err(AppError::from(error));
    };
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    Ok(match refusal {
        R::InvalidIntent(problems) => (
            unprocessable,
            problems.into_iter().map(BoardProblem::Intent).collect(),
        ),
        R::PlanningRule(problem) => (unprocessable, vec![BoardProblem::Planning(problem)]),
        R::UnknownMember(name) => (
            StatusCode::FORBIDDEN,
            vec![BoardProblem::UnknownMember { name }],
        ),
        R::NoSuchIntent(id) => (
            StatusCode::NOT_FOUND,
            vec![BoardProblem::NoSuchIntent { id }],
        ),
        R::NoSuchCommitment(id) => (
            StatusCode::NOT_FOUND,
            vec![BoardProblem::NoSuchCommitment { id }],
        ),
        R::IntentNotOpen { intent, state } => (
            unprocessable,
            vec![BoardProblem::IntentNotOpen { id: intent, state }],
        ),
        R::OverCommitment {
            asked, remaining, ..
        } => (
            unprocessable,
            vec![BoardProblem::OverCommitment {
                remaining,
                asked,
                unit: None,
            }],
        ),
        R::NotAParty { .. } => (StatusCode::FORBIDDEN, vec![BoardProblem::NotAParty]),
        R::AssemblyOnly(_) => (StatusCode::FORBIDDEN, vec![BoardProblem::AssemblyOnly]),
        // No form of this page can meet these; said in English all the same.
        other => (unprocessable, vec![BoardProblem::Other(other.to_string())]),
    })
}

/// Midnight at the start of `date` on the site's clock.
fn start_of(state: &AppState, date: NaiveDate) -> DateTime<Utc> {
    let naive = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    state
        .site
        .timezone
        .from_local_datetime(&naive)
        .earliest()
        .map_or_else(|| naive.and_utc(), |t| t.with_timezone(&Utc))
}

/// The end of `date` on the site's clock (the next day's midnight).
fn end_of(state: &AppState, date: NaiveDate) -> DateTime<Utc> {
    start_of(state, date.succ_opt().unwrap_or(date))
}

/// An optional date field.
fn optional_date(
    field: BoardField,
    value: &str,
    problems: &mut Vec<BoardProblem>,
) -> Option<NaiveDate> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let date = NaiveDate::parse_from_str(value, "%Y-%m-%d").ok();
    if date.is_none() {
        problems.push(BoardProblem::NotADate {
            field,
            value: value.to_string(),
        });
    }
    date
}

/// A quantity as typed, or the problem with it.
fn quantity(value: &str, problems: &mut Vec<BoardProblem>) -> Option<f64> {
    if value.trim().is_empty() {
        problems.push(BoardProblem::Missing(BoardField::Quantity));
        return None;
    }
    let Some(q) = form::decimal(value) else {
        problems.push(BoardProblem::NotANumber {
            field: BoardField::Quantity,
            value: value.to_string(),
        });
        return None;
    };
    let ok = q > 0.0 && q <= ledger::MAX_QUANTITY && Quantity::from_f64(q).is_some();
    if !ok {
        problems.push(BoardProblem::Quantity {
            value: value.to_string(),
        });
        return None;
    }
    Some(q)
}

fn too_long(field: BoardField, text: &str, max: usize, problems: &mut Vec<BoardProblem>) {
    let chars = text.chars().count();
    if chars > max {
        problems.push(BoardProblem::TooLong { field, chars, max });
    }
}

/// The intent the form describes, or every problem with it.
fn read_intent(
    state: &AppState,
    form: &IntentForm,
    now: DateTime<Utc>,
) -> Result<NewIntent, Vec<BoardProblem>> {
    let mut problems = Vec::new();
    let choice = |field, value: &str, problems: &mut Vec<BoardProblem>| {
        if value.trim().is_empty() {
            problems.push(BoardProblem::Missing(field));
        } else {
            problems.push(BoardProblem::UnknownChoice {
                field,
                value: value.to_string(),
            });
        }
    };
    let direction = Direction::parse(form.direction.trim());
    if direction.is_none() {
        choice(BoardField::Direction, &form.direction, &mut problems);
    }
    let action = Action::parse(form.action.trim());
    if action.is_none() {
        choice(BoardField::Action, &form.action, &mut problems);
    }
    let unit = Unit::parse(form.unit.trim());
    if unit.is_none() {
        choice(BoardField::Unit, &form.unit, &mut problems);
    }
    let class = form.class.trim().to_string();
    let class_ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if class.is_empty() {
        problems.push(BoardProblem::Missing(BoardField::Class));
    } else if class.chars().count() > ledger::MAX_CLASS_CHARS || !class.chars().all(class_ok) {
        problems.push(BoardProblem::Class {
            value: form.class.clone(),
        });
    }
    let quantity = quantity(&form.quantity, &mut problems);
    let start = optional_date(BoardField::WindowStart, &form.window_start, &mut problems);
    let end = optional_date(BoardField::WindowEnd, &form.window_end, &mut problems);
    let expires = optional_date(BoardField::Expires, &form.expires, &mut problems);
    if let (Some(s), Some(e)) = (start, end)
        && e < s
    {
        problems.push(BoardProblem::WindowOrder);
    }
    let window_end = end.map(|d| end_of(state, d));
    if window_end.is_some_and(|e| e <= now) {
        problems.push(BoardProblem::DatePast {
            field: BoardField::WindowEnd,
        });
    }
    let expires_at = expires.map(|d| end_of(state, d));
    if expires_at.is_some_and(|e| e <= now) {
        problems.push(BoardProblem::DatePast {
            field: BoardField::Expires,
        });
    }
    if form.never_expires && expires.is_some() {
        problems.push(BoardProblem::ExpiryAndNever);
    }
    if form.description.trim().is_empty() {
        problems.push(BoardProblem::DescriptionEmpty);
    }
    too_long(
        BoardField::Description,
        &form.description,
        ledger::MAX_INTENT_DESCRIPTION_CHARS,
        &mut problems,
    );
    if form.collective && direction == Some(Direction::Offer) {
        problems.push(BoardProblem::CollectiveOffer);
    }
    match (direction, action, unit, quantity) {
        (Some(direction), Some(action), Some(unit), Some(quantity)) if problems.is_empty() => {
            Ok(NewIntent {
                direction,
                action,
                class,
                quantity,
                unit,
                window_start: start.map(|d| start_of(state, d)),
                window_end,
                expires_at,
                never_expires: form.never_expires,
                description: form.description.clone(),
                visibility: if form.federation {
                    Visibility::Federation
                } else {
                    Visibility::Node
                },
                collective: form.collective,
            })
        }
        _ => Err(problems),
    }
}

/// `POST /plan/intents`: `direction`, `action`, `class`, `quantity`, `unit`,
/// `window_start`, `window_end`, `expires` (dates), `never_expires`, `description`,
/// `collective`, `visibility` (`federation` to share it).
pub(crate) async fn post(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
    body: Bytes,
) -> Result<Response, AppError> {
    let mut form = IntentForm::default();
    let mut unknown = Vec::new();
    for (name, value) in form::fields(&body) {
        match name.as_str() {
            "direction" => form.direction = value,
            "action" => form.action = value,
            "class" => form.class = value,
            "quantity" => form.quantity = value,
            "unit" => form.unit = value,
            "window_start" => form.window_start = value,
            "window_end" => form.window_end = value,
            "expires" => form.expires = value,
            "never_expires" => form.never_expires = value == "1",
            "description" => form.description = value,
            "collective" => form.collective = value == "1",
            "visibility" => form.federation = value == "federation",
            _ => unknown.push(BoardProblem::UnknownField { name }),
        }
    }
    let now = Utc::now();
    let (status, problems) = match read_intent(&state, &form, now) {
        Ok(intent) if unknown.is_empty() => {
            let name = member.member.name.clone();
            let result = with_journal(&state, "intent", move |j| {
                j.post_intent(&name, &intent, now)
            })
            .await?;
            match result {
                Ok(entry) => {
                    tracing::info!(id = entry.seq, member = %member.member.name, "intent posted");
                    return Ok(done(format!("posted={}", entry.seq)));
                }
                Err(e) => problems_of(e)?,
            }
        }
        Ok(_) => (StatusCode::UNPROCESSABLE_ENTITY, unknown),
        Err(problems) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            unknown.into_iter().chain(problems).collect(),
        ),
    };
    refused(
        &state,
        &lang,
        &member,
        status,
        BoardTarget::Intent,
        &problems,
        |forms| forms.intent = form,
    )
    .await
}

/// An id from the path, or the page with the problem at the top (404).
async fn path_id(
    state: &AppState,
    lang: &PageLang,
    member: &CurrentMember,
    raw: &str,
) -> Result<i64, Response> {
    match raw.parse::<i64>() {
        Ok(id) => Ok(id),
        Err(_) => Err(refused(
            state,
            lang,
            member,
            StatusCode::NOT_FOUND,
            BoardTarget::General,
            &[BoardProblem::NotAnId { value: raw.into() }],
            |_| {},
        )
        .await
        .unwrap_or_else(IntoResponse::into_response)),
    }
}

/// `POST /plan/intents/{id}/commitments`: `quantity`, `note`.
pub(crate) async fn commit(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, AppError> {
    let id = match path_id(&state, &lang, &member, &id).await {
        Ok(id) => id,
        Err(response) => return Ok(response),
    };
    let mut form = CommitForm::default();
    let mut problems = Vec::new();
    for (name, value) in form::fields(&body) {
        match name.as_str() {
            "quantity" => form.quantity = value,
            "note" => form.note = value,
            _ => problems.push(BoardProblem::UnknownField { name }),
        }
    }
    let quantity = quantity(&form.quantity, &mut problems);
    too_long(
        BoardField::Note,
        &form.note,
        ledger::MAX_NOTE_CHARS,
        &mut problems,
    );
    let mut status = StatusCode::UNPROCESSABLE_ENTITY;
    if let (true, Some(quantity)) = (problems.is_empty(), quantity) {
        let name = member.member.name.clone();
        let commitment = NewCommitment {
            quantity,
            note: form.note.clone(),
        };
        let result = with_journal(&state, "commitment", move |j| {
            j.propose_commitment(&name, id, &commitment, Utc::now())
        })
        .await?;
        match result {
            Ok(entry) => {
                tracing::info!(id = entry.seq, intent = id, member = %member.member.name, "commitment proposed");
                return Ok(done(format!("proposed={}", entry.seq)));
            }
            Err(e) => (status, problems) = problems_of(e)?,
        }
    }
    let target = if status == StatusCode::NOT_FOUND {
        BoardTarget::General
    } else {
        BoardTarget::Commit(id)
    };
    refused(&state, &lang, &member, status, target, &problems, |forms| {
        forms.commit = Some((id, form));
    })
    .await
}

/// `POST /plan/commitments/{id}/accept`.
pub(crate) async fn accept(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, AppError> {
    let id = match path_id(&state, &lang, &member, &id).await {
        Ok(id) => id,
        Err(response) => return Ok(response),
    };
    let mut problems: Vec<BoardProblem> = form::fields(&body)
        .into_iter()
        .map(|(name, _)| BoardProblem::UnknownField { name })
        .collect();
    let mut status = StatusCode::UNPROCESSABLE_ENTITY;
    if problems.is_empty() {
        let name = member.member.name.clone();
        let result = with_journal(&state, "acceptance", move |j| {
            j.accept_commitment(&name, id, Utc::now())
        })
        .await?;
        match result {
            Ok(_) => {
                tracing::info!(commitment = id, member = %member.member.name, "commitment accepted");
                return Ok(done(format!("accepted={id}")));
            }
            Err(e) => (status, problems) = problems_of(e)?,
        }
    }
    let target = if status == StatusCode::NOT_FOUND {
        BoardTarget::General
    } else {
        BoardTarget::Commitment(id)
    };
    refused(&state, &lang, &member, status, target, &problems, |_| {}).await
}

/// `POST /plan/commitments/{id}/release`: `reason` (optional).
pub(crate) async fn release(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, AppError> {
    let id = match path_id(&state, &lang, &member, &id).await {
        Ok(id) => id,
        Err(response) => return Ok(response),
    };
    let mut reason = String::new();
    let mut problems = Vec::new();
    for (name, value) in form::fields(&body) {
        match name.as_str() {
            "reason" => reason = value,
            _ => problems.push(BoardProblem::UnknownField { name }),
        }
    }
    too_long(
        BoardField::Reason,
        &reason,
        ledger::MAX_NOTE_CHARS,
        &mut problems,
    );
    let mut status = StatusCode::UNPROCESSABLE_ENTITY;
    if problems.is_empty() {
        let name = member.member.name.clone();
        let text = reason.clone();
        let result = with_journal(&state, "release", move |j| {
            j.release_commitment(&name, id, &text, Utc::now())
        })
        .await?;
        match result {
            Ok(_) => {
                tracing::info!(commitment = id, member = %member.member.name, "commitment released");
                return Ok(done(format!("released={id}")));
            }
            Err(e) => (status, problems) = problems_of(e)?,
        }
    }
    let target = if status == StatusCode::NOT_FOUND {
        BoardTarget::General
    } else {
        BoardTarget::Commitment(id)
    };
    refused(&state, &lang, &member, status, target, &problems, |forms| {
        forms.release = Some((id, reason));
    })
    .await
}

/// `POST /plan/interests`: `classes`, separated by spaces or commas (empty: none).
pub(crate) async fn save_interests(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
    body: Bytes,
) -> Result<Response, AppError> {
    let mut typed = String::new();
    let mut problems = Vec::new();
    for (name, value) in form::fields(&body) {
        match name.as_str() {
            "classes" => typed = value,
            _ => problems.push(BoardProblem::UnknownField { name }),
        }
    }
    let classes: Vec<String> = typed
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    let class_ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    problems.extend(
        classes
            .iter()
            .filter(|c| c.chars().count() > ledger::MAX_CLASS_CHARS || !c.chars().all(class_ok))
            .map(|c| BoardProblem::Interests { value: c.clone() }),
    );
    let mut status = StatusCode::UNPROCESSABLE_ENTITY;
    if problems.is_empty() {
        let name = member.member.name.clone();
        let result = with_journal(&state, "interests", move |j| {
            j.set_interests(&name, &classes)
        })
        .await?;
        match result {
            Ok(saved) => {
                tracing::info!(member = %member.member.name, classes = saved.len(), "interests saved");
                return Ok(done("interests=saved".into()));
            }
            Err(e) => (status, problems) = problems_of(e)?,
        }
    }
    refused(
        &state,
        &lang,
        &member,
        status,
        BoardTarget::Interests,
        &problems,
        |forms| forms.interests = Some(typed),
    )
    .await
}
