//! The contribution ledger as a page (`/ledger`, any signed-in member): balances
//! now and in 30 days, the commons, the journal's verification, recent
//! contributions with their attestations, the member's transfers and the
//! parameters in force; plain HTML forms for residents to record a contribution,
//! attest another member's and transfer Communs, and for the assembly to adopt new
//! parameters with their decision record. A form that cannot be recorded comes
//! back (422) as typed, every problem named beside it; one that is recorded leads
//! back to the page (303) with a confirmation. The journal's own checks are the
//! last word: what the form reading here does not catch, the ledger refuses, and
//! the page says so.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Duration, NaiveDate, Utc};
use dashboards::{
    BoardProblem, Confirmation, ContributionForm, FormField, FormProblem, FormTarget, LedgerForms,
    LedgerView, PROJECTION_DAYS, ParametersForm, TransferForm,
};
use ledger::{
    AdoptedParameters, Balances, Category, Communs, Contribution, ContributionState, Decision,
    DecisionRule, LedgerParameters, NewContribution, NewTransfer, Role, Transfer, Verdict,
    VerifyReport,
};
use serde::Deserialize;

use crate::auth::CurrentMember;
use crate::form::{self, required_number, whole};
use crate::lang::PageLang;
use crate::ledger_api::with_journal;
use crate::{AppError, AppState};

/// Decided contributions shown beyond the pending ones (which are all shown, so
/// that every one can be attested).
const DECIDED_SHOWN: usize = 50;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct PageQuery {
    recorded: Option<i64>,
    attested: Option<i64>,
    transferred: Option<i64>,
    adopted: Option<i64>,
}

/// What the page shows, read from the journal in one go.
struct PageData {
    contributions: Vec<Contribution>,
    now: Balances,
    later: Balances,
    verify: VerifyReport,
    parameters: LedgerParameters,
    history: Vec<AdoptedParameters>,
    transfers: Vec<Transfer>,
    members: Vec<String>,
    /// The accepted commitments the member provides, for the contribution form.
    commitments: Vec<ledger::Commitment>,
}

async fn load(state: &AppState, member: &str) -> Result<PageData, AppError> {
    let member = member.to_string();
    let data = with_journal(state, "ledger page", move |j| {
        let now = Utc::now();
        let history = j.parameters_history()?;
        let mut contributions = j.contributions()?;
        let mut decided = 0;
        contributions.retain(|c| {
            c.state == ContributionState::Pending || {
                decided += 1;
                decided <= DECIDED_SHOWN
            }
        });
        Ok(PageData {
            contributions,
            now: j.balances(now)?,
            later: j.balances(now + Duration::days(PROJECTION_DAYS))?,
            verify: j.verify()?,
            parameters: history
                .first()
                .map(|a| a.parameters.clone())
                .unwrap_or_default(),
            history,
            transfers: j.transfers_of(&member)?,
            members: j.members()?.into_iter().map(|m| m.name).collect(),
            commitments: j
                .commitments_of(&member)?
                .into_iter()
                .filter(|c| c.provider == member && c.state == ledger::CommitmentState::Accepted)
                .collect(),
        })
    })
    .await??;
    Ok(data)
}

fn today(state: &AppState) -> NaiveDate {
    Utc::now().with_timezone(&state.site.timezone).date_naive()
}

/// The forms as first offered: a contribution dated today, an empty transfer,
/// the parameters in force with an empty decision record.
fn fresh_forms(state: &AppState, parameters: &LedgerParameters) -> LedgerForms {
    let today = today(state);
    LedgerForms {
        contribution: ContributionForm {
            category: Category::ALL[0].as_str().to_string(),
            date: today.format("%Y-%m-%d").to_string(),
            ..ContributionForm::default()
        },
        transfer: TransferForm::default(),
        attestation: None,
        parameters: ParametersForm::from_parameters(parameters, today),
    }
}

/// `GET /ledger`.
pub(crate) async fn page(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
    Query(query): Query<PageQuery>,
) -> Result<Response, AppError> {
    let data = load(&state, &member.member.name).await?;
    let forms = fresh_forms(&state, &data.parameters);
    let confirmation = query
        .recorded
        .map(|id| Confirmation::Recorded { id })
        .or(query.attested.map(|id| Confirmation::Attested { id }))
        .or(query
            .transferred
            .map(|seq| Confirmation::Transferred { seq }))
        .or(query
            .adopted
            .map(|seq| Confirmation::ParametersAdopted { seq }));
    render(
        StatusCode::OK,
        &state,
        &lang,
        &member,
        &data,
        &forms,
        &[],
        None,
        confirmation,
    )
}

#[allow(clippy::too_many_arguments)]
fn render(
    status: StatusCode,
    state: &AppState,
    lang: &PageLang,
    member: &CurrentMember,
    data: &PageData,
    forms: &LedgerForms,
    problems: &[FormProblem],
    problems_for: Option<FormTarget>,
    confirmation: Option<Confirmation>,
) -> Result<Response, AppError> {
    let view = LedgerView {
        new_matches: member.new_matches(state),
        member: &member.member.name,
        roles: &member.member.roles,
        resident: member.has(Role::Resident),
        assembly: member.has(Role::Assembly),
        csrf: member.csrf().unwrap_or_default(),
        contributions: &data.contributions,
        balances_now: &data.now,
        balances_later: &data.later,
        verify: &data.verify,
        parameters: &data.parameters,
        parameters_history: &data.history,
        transfers: &data.transfers,
        members: &data.members,
        commitments: &data.commitments,
        forms,
        problems,
        problems_for,
        confirmation,
    };
    let html = dashboards::render_ledger(&view, lang.lang, &state.site)?;
    Ok(lang.page(status, html))
}

/// Back to the page after a recorded form, saying what was done.
fn done(query: String) -> Response {
    crate::form::done("/ledger", &query)
}

/// The page again, 422, with `problems` beside the form they concern and that
/// form as typed.
async fn refused(
    state: &AppState,
    lang: &PageLang,
    member: &CurrentMember,
    status: StatusCode,
    target: FormTarget,
    problems: &[FormProblem],
    keep: impl FnOnce(&mut LedgerForms),
) -> Result<Response, AppError> {
    let data = load(state, &member.member.name).await?;
    let mut forms = fresh_forms(state, &data.parameters);
    keep(&mut forms);
    render(
        status,
        state,
        lang,
        member,
        &data,
        &forms,
        problems,
        Some(target),
        None,
    )
}

/// A refusal from the journal as problems the page phrases; anything that is not a
/// refusal (the journal cannot be read or written) is an error.
fn problems_of(error: ledger::Error) -> Result<Vec<FormProblem>, AppError> {
    use ledger::Refusal as R;
    let ledger::Error::Refused(refusal) = error else {
        return Err(AppError::from(error));
    };
    Ok(match refusal {
        R::InvalidContribution(problems) => problems
            .into_iter()
            .map(FormProblem::Contribution)
            .collect(),
        R::NoSuchContribution(id) => vec![FormProblem::NoSuchContribution { id }],
        R::SelfAttestation { .. } => vec![FormProblem::SelfAttestation],
        R::AlreadyAttested { .. } => vec![FormProblem::AlreadyAttested],
        R::ContributionDecided { state, .. } => vec![FormProblem::Decided { state }],
        R::UnknownMember(name) => vec![FormProblem::UnknownMember { name }],
        R::TransferToSelf(_) => vec![FormProblem::TransferToSelf],
        R::NonPositiveAmount(_) => vec![FormProblem::AmountNotPositive],
        R::InsufficientCommons { balance, asked, .. } => {
            vec![FormProblem::Insufficient { balance, asked }]
        }
        R::InvalidParameters(problems) => problems.into_iter().map(FormProblem::Other).collect(),
        R::InvalidDecision(problems) => problems.into_iter().map(FormProblem::Decision).collect(),
        R::InvalidComment(text) | R::InvalidMemo(text) | R::LedgerRule(text) => {
            vec![FormProblem::Other(text)]
        }
        // The planning part of the page: a contribution naming a commitment.
        R::NoSuchCommitment(id) => vec![FormProblem::Board(BoardProblem::NoSuchCommitment { id })],
        R::NoSuchIntent(id) => vec![FormProblem::Board(BoardProblem::NoSuchIntent { id })],
        R::NotAParty { .. } => vec![FormProblem::Board(BoardProblem::NotAParty)],
        R::PlanningRule(problem) => vec![FormProblem::Board(BoardProblem::Planning(problem))],
        R::InvalidIntent(problems) => problems
            .into_iter()
            .map(|p| FormProblem::Board(BoardProblem::Intent(p)))
            .collect(),
        R::IntentNotOpen { intent, state } => {
            vec![FormProblem::Board(BoardProblem::IntentNotOpen {
                id: intent,
                state,
            })]
        }
        // No form of this page asks for these; said in English all the same.
        other @ (R::DuplicateMember(_)
        | R::InvalidMemberName { .. }
        | R::InvalidAuthor(_)
        | R::InvalidPlan(_)
        | R::InvalidPayload { .. }
        | R::DerivedKind(_)
        | R::InvalidTimestamp(_)
        | R::CredentialExists(_)
        | R::RolesDiffer { .. }
        | R::UnacceptablePassword(_)
        | R::InvalidLabel(_)
        | R::UnsettledDemurrage { .. }
        | R::TypedCallOnly { .. }
        | R::InvalidIdempotencyKey(_)
        | R::IdempotencyKeyReused(_)
        | R::ExpiryPast(_)
        | R::OverCommitment { .. }
        | R::AssemblyOnly(_)
        | R::InvalidDraw(_)
        | R::NoSuchDraw(_)
        | R::SortitionRule(_)
        | R::NotOfHousehold { .. }
        | R::NoSuchGrant(_)
        | R::ConsentRule(_)) => vec![FormProblem::Other(other.to_string())],
    })
}

/// `POST /ledger/contributions`: `category`, `hours`, `date`, `description`, and
/// `commitment`, the id of the commitment it fulfils (empty: none).
pub(crate) async fn record(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
    body: Bytes,
) -> Result<Response, AppError> {
    let mut form = ContributionForm::default();
    let mut problems = Vec::new();
    for (name, value) in form::fields(&body) {
        match name.as_str() {
            "category" => form.category = value,
            "hours" => form.hours = value,
            "date" => form.date = value,
            "description" => form.description = value,
            "commitment" => form.commitment = value,
            _ => problems.push(FormProblem::UnknownField { name }),
        }
    }
    let category = match form.category.parse::<Category>() {
        Ok(c) => Some(c),
        Err(_) if form.category.trim().is_empty() => {
            problems.push(FormProblem::Missing(FormField::Category));
            None
        }
        Err(_) => {
            problems.push(FormProblem::UnknownCategory {
                value: form.category.clone(),
            });
            None
        }
    };
    let hours = required_number(FormField::Hours, &form.hours, &mut problems);
    let date = form::date(FormField::Date, &form.date, &mut problems);
    let commitment = match form.commitment.trim() {
        "" => None,
        raw => match raw.parse::<i64>() {
            Ok(id) => Some(id),
            Err(_) => {
                problems.push(FormProblem::NotAWholeNumber {
                    field: FormField::Commitment,
                    value: raw.to_string(),
                });
                None
            }
        },
    };
    // The ledger's own checks on what could be read, so that one round trip shows
    // every problem: a field that could not be read is stood in for by a value that
    // raises nothing.
    let contribution = NewContribution {
        category: category.unwrap_or(Category::Other),
        hours: hours.unwrap_or(1.0),
        date: date.unwrap_or_else(|| today(&state)),
        description: form.description.clone(),
    };
    problems.extend(
        contribution
            .problems(Utc::now())
            .into_iter()
            .map(FormProblem::Contribution),
    );
    if problems.is_empty() {
        let name = member.member.name.clone();
        let result = with_journal(&state, "contribution", move |j| match commitment {
            Some(id) => j.record_contribution_fulfilling(&name, &contribution, id, Utc::now()),
            None => j.record_contribution(&name, &contribution, Utc::now()),
        })
        .await?;
        match result {
            Ok(entry) => {
                tracing::info!(id = entry.seq, member = %member.member.name, "contribution recorded");
                return Ok(done(format!("recorded={}", entry.seq)));
            }
            Err(e) => problems = problems_of(e)?,
        }
    }
    refused(
        &state,
        &lang,
        &member,
        StatusCode::UNPROCESSABLE_ENTITY,
        FormTarget::Contribution,
        &problems,
        |forms| forms.contribution = form,
    )
    .await
}

/// `POST /ledger/contributions/{id}/attestations`: `verdict` (`approve` or
/// `reject`, the button pressed) and `comment`.
pub(crate) async fn attest(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, AppError> {
    let Ok(id) = id.parse::<i64>() else {
        return refused(
            &state,
            &lang,
            &member,
            StatusCode::NOT_FOUND,
            FormTarget::General,
            &[FormProblem::UnknownField {
                name: format!("contributions/{id}"),
            }],
            |_| {},
        )
        .await;
    };
    let mut verdict = String::new();
    let mut comment = String::new();
    let mut problems = Vec::new();
    for (name, value) in form::fields(&body) {
        match name.as_str() {
            "verdict" => verdict = value,
            "comment" => comment = value,
            _ => problems.push(FormProblem::UnknownField { name }),
        }
    }
    let verdict = match verdict.parse::<Verdict>() {
        Ok(v) => Some(v),
        Err(_) if verdict.is_empty() => {
            problems.push(FormProblem::Missing(FormField::Verdict));
            None
        }
        Err(_) => {
            problems.push(FormProblem::UnknownVerdict { value: verdict });
            None
        }
    };
    if verdict == Some(Verdict::Reject) && comment.trim().is_empty() {
        problems.push(FormProblem::RejectionWithoutComment);
    }
    let chars = comment.chars().count();
    if chars > ledger::MAX_COMMENT_CHARS {
        problems.push(FormProblem::TooLong {
            field: FormField::Comment,
            chars,
            max: ledger::MAX_COMMENT_CHARS,
        });
    }
    let mut status = StatusCode::UNPROCESSABLE_ENTITY;
    if let (true, Some(verdict)) = (problems.is_empty(), verdict) {
        let name = member.member.name.clone();
        let text = comment.clone();
        let result = with_journal(&state, "attestation", move |j| {
            j.attest(id, &name, verdict, &text, Utc::now())
        })
        .await?;
        match result {
            Ok(attested) => {
                tracing::info!(
                    contribution = id,
                    member = %member.member.name,
                    state = %attested.state,
                    "contribution attested"
                );
                return Ok(done(format!("attested={id}#contribution-{id}")));
            }
            Err(e) => {
                if matches!(e.refusal(), Some(ledger::Refusal::NoSuchContribution(_))) {
                    status = StatusCode::NOT_FOUND;
                }
                problems = problems_of(e)?;
            }
        }
    }
    let target = if status == StatusCode::NOT_FOUND {
        FormTarget::General
    } else {
        FormTarget::Attestation(id)
    };
    refused(&state, &lang, &member, status, target, &problems, |forms| {
        forms.attestation = Some((id, comment));
    })
    .await
}

/// `POST /ledger/transfers`: `to`, `amount` (in Communs), `memo`.
pub(crate) async fn transfer(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
    body: Bytes,
) -> Result<Response, AppError> {
    let mut form = TransferForm::default();
    let mut problems = Vec::new();
    for (name, value) in form::fields(&body) {
        match name.as_str() {
            "to" => form.to = value,
            "amount" => form.amount = value,
            "memo" => form.memo = value,
            "all" => form.all = value == "1",
            "intent" => form.intent = value,
            _ => problems.push(FormProblem::UnknownField { name }),
        }
    }
    if form.to.trim().is_empty() {
        problems.push(FormProblem::Missing(FormField::To));
    }
    // "Send all" needs no amount: the journal reads it when it sends.
    let amount = match (!form.all)
        .then(|| required_number(FormField::Amount, &form.amount, &mut problems))
        .flatten()
        .map(Communs::from_communs)
    {
        None if form.all => Some(Communs::ZERO),
        None => None,
        Some(Err(_)) => {
            problems.push(FormProblem::AmountNotCommuns {
                value: form.amount.clone(),
            });
            None
        }
        Some(Ok(amount)) if amount <= Communs::ZERO => {
            problems.push(FormProblem::AmountNotPositive);
            None
        }
        Some(Ok(amount)) => Some(amount),
    };
    let chars = form.memo.chars().count();
    if chars > ledger::MAX_MEMO_CHARS {
        problems.push(FormProblem::TooLong {
            field: FormField::Memo,
            chars,
            max: ledger::MAX_MEMO_CHARS,
        });
    }
    let intent = match form.intent.trim() {
        "" => None,
        raw => match raw.trim_start_matches('#').parse::<i64>() {
            Ok(id) => Some(id),
            Err(_) => {
                problems.push(FormProblem::NotAWholeNumber {
                    field: FormField::Intent,
                    value: raw.to_string(),
                });
                None
            }
        },
    };
    if let (true, Some(amount)) = (problems.is_empty(), amount) {
        let name = member.member.name.clone();
        let all = form.all;
        let transfer = NewTransfer {
            to: form.to.trim().to_string(),
            amount,
            memo: form.memo.trim().to_string(),
            intent,
        };
        let result = with_journal(&state, "transfer", move |j| {
            if all {
                j.transfer_all_paying(
                    &name,
                    &transfer.to,
                    &transfer.memo,
                    transfer.intent,
                    Utc::now(),
                )
            } else {
                j.transfer(&name, &transfer, Utc::now())
            }
        })
        .await?;
        match result {
            Ok(entry) => {
                tracing::info!(seq = entry.seq, member = %member.member.name, "transfer recorded");
                return Ok(done(format!("transferred={}", entry.seq)));
            }
            Err(e) => problems = problems_of(e)?,
        }
    }
    refused(
        &state,
        &lang,
        &member,
        StatusCode::UNPROCESSABLE_ENTITY,
        FormTarget::Transfer,
        &problems,
        |forms| forms.transfer = form,
    )
    .await
}

/// The parameters and decision record the assembly's form describes, with every
/// problem found; a field that cannot be read is named and stood in for by a
/// value that raises nothing else.
fn read_parameters(
    form: &ParametersForm,
    in_force: DecisionRule,
    problems: &mut Vec<FormProblem>,
) -> (LedgerParameters, Decision) {
    let defaults = LedgerParameters::default();
    let k = whole(
        FormField::AttestationsNeeded,
        &form.attestations_needed,
        problems,
    );
    if let Some(k) = k
        && !(1..=ledger::MAX_ATTESTATIONS_NEEDED).contains(&k)
    {
        problems.push(FormProblem::AttestationsNeededOutOfRange { value: k });
    }
    let mut rates = std::collections::BTreeMap::new();
    for category in Category::ALL {
        let value = form
            .rates
            .iter()
            .find(|(c, _)| *c == category)
            .map_or("", |(_, v)| v.as_str());
        let rate = match required_number(FormField::Rate(category), value, problems)
            .map(Communs::from_communs)
        {
            None => None,
            Some(Ok(rate)) if (Communs::ZERO..=ledger::MAX_RATE_PER_HOUR).contains(&rate) => {
                Some(rate)
            }
            Some(_) => {
                problems.push(FormProblem::RateOutOfRange {
                    category,
                    value: value.to_string(),
                });
                None
            }
        };
        rates.insert(category, rate.unwrap_or_else(|| defaults.rate(category)));
    }
    let rate_pct = required_number(FormField::DemurrageRate, &form.demurrage_rate_pct, problems);
    let rate_ppm = rate_pct.and_then(|pct| {
        let ppm = (pct * 10_000.0).round();
        let max = f64::from(ledger::MAX_DEMURRAGE_RATE_PPM);
        if (0.0..=max).contains(&ppm) && (ppm / 10_000.0 - pct).abs() < 1e-9 {
            // Within 0..=500 000: exact in a u32.
            Some(ppm as u32)
        } else {
            problems.push(FormProblem::DemurrageRateOutOfRange {
                value: form.demurrage_rate_pct.clone(),
            });
            None
        }
    });
    let period = whole(
        FormField::DemurragePeriod,
        &form.demurrage_period_days,
        problems,
    );
    if let Some(days) = period
        && !(1..=ledger::MAX_DEMURRAGE_PERIOD_DAYS).contains(&days)
    {
        problems.push(FormProblem::DemurragePeriodOutOfRange { days });
    }
    // Left out, the rule in force is kept.
    let decision_rule = match form.decision_rule.trim() {
        "" => in_force,
        value => value.parse::<DecisionRule>().unwrap_or_else(|_| {
            problems.push(FormProblem::UnknownDecisionRule {
                value: value.to_string(),
            });
            in_force
        }),
    };
    let parameters = LedgerParameters {
        attestations_needed: k.unwrap_or(defaults.attestations_needed),
        rates_per_hour: rates,
        demurrage_rate_ppm: rate_ppm.unwrap_or(defaults.demurrage_rate_ppm),
        demurrage_period_days: period.unwrap_or(defaults.demurrage_period_days),
        decision_rule,
    };

    let decision = form::decision(&form.decision, problems);
    (parameters, decision)
}

/// `POST /ledger/parameters` (role `assembly`): `attestations_needed`,
/// `rate.CATEGORY` for each category, `demurrage_rate_pct`, `demurrage_period_days`
/// and the decision record (`assembly_date`, `present`, `quorum_required`,
/// `votes_for`, `votes_against`, `votes_abstain`, `minutes`), as `POST
/// /api/ledger/parameters` takes them.
pub(crate) async fn adopt_parameters(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
    body: Bytes,
) -> Result<Response, AppError> {
    let mut form = ParametersForm::default();
    let mut problems = Vec::new();
    for (name, value) in form::fields(&body) {
        if let Some(category) = name.strip_prefix("rate.") {
            match category.parse::<Category>() {
                Ok(c) if !form.rates.iter().any(|(have, _)| *have == c) => {
                    form.rates.push((c, value));
                }
                _ => problems.push(FormProblem::UnknownField { name }),
            }
            continue;
        }
        if let Some(slot) = form.decision.field_mut(&name) {
            *slot = value;
            continue;
        }
        let slot = match name.as_str() {
            "attestations_needed" => &mut form.attestations_needed,
            "demurrage_rate_pct" => &mut form.demurrage_rate_pct,
            "demurrage_period_days" => &mut form.demurrage_period_days,
            "decision_rule" => &mut form.decision_rule,
            _ => {
                problems.push(FormProblem::UnknownField { name });
                continue;
            }
        };
        *slot = value;
    }
    form.rates.sort_by_key(|(c, _)| *c);
    let in_force = with_journal(&state, "ledger parameters", |j| j.ledger_parameters())
        .await??
        .decision_rule;
    let (parameters, decision) = read_parameters(&form, in_force, &mut problems);
    if problems.is_empty() {
        let name = member.member.name.clone();
        // The ledger judges the decision record under the rule in force and names
        // every problem with it at once.
        let result = with_journal(&state, "parameters adoption", move |j| {
            j.adopt_ledger_parameters(&parameters, &decision, &name, Utc::now())
        })
        .await?;
        match result {
            Ok(entry) => {
                tracing::info!(seq = entry.seq, member = %member.member.name, "ledger parameters adopted");
                return Ok(done(format!("adopted={}", entry.seq)));
            }
            Err(e) => problems = problems_of(e)?,
        }
    }
    refused(
        &state,
        &lang,
        &member,
        StatusCode::UNPROCESSABLE_ENTITY,
        FormTarget::Parameters,
        &problems,
        |forms| {
            // Categories the form left out come back empty, named as missing.
            for category in Category::ALL {
                if !form.rates.iter().any(|(c, _)| *c == category) {
                    form.rates.push((category, String::new()));
                }
            }
            form.rates.sort_by_key(|(c, _)| *c);
            forms.parameters = form;
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameters_form_reads_percent_and_names_each_problem() {
        let mut form = ParametersForm::from_parameters(
            &LedgerParameters::default(),
            NaiveDate::from_ymd_opt(2026, 3, 12).unwrap_or_default(),
        );
        form.demurrage_rate_pct = "2,5".into();
        form.decision.present = "12".into();
        form.decision.quorum_required = "10".into();
        form.decision.votes_for = "9".into();
        form.decision.votes_against = "2".into();
        form.decision.votes_abstain = "1".into();
        form.decision.minutes = "Un peu plus de fonte.".into();
        let mut problems = Vec::new();
        let (parameters, decision) = read_parameters(&form, DecisionRule::Simple, &mut problems);
        assert_eq!(problems, []);
        assert_eq!(parameters.demurrage_rate_ppm, 25_000);
        assert_eq!(
            parameters,
            LedgerParameters {
                demurrage_rate_ppm: 25_000,
                ..LedgerParameters::default()
            }
        );
        assert_eq!(decision.present, 12);

        form.attestations_needed = "0".into();
        form.demurrage_rate_pct = "60".into();
        form.demurrage_period_days = "x".into();
        form.rates[0].1 = "-1".into();
        form.decision.present = "8".into();
        let mut problems = Vec::new();
        read_parameters(&form, DecisionRule::Simple, &mut problems);
        assert_eq!(
            problems,
            [
                FormProblem::AttestationsNeededOutOfRange { value: 0 },
                FormProblem::RateOutOfRange {
                    category: Category::Care,
                    value: "-1".into()
                },
                FormProblem::DemurrageRateOutOfRange { value: "60".into() },
                FormProblem::NotAWholeNumber {
                    field: FormField::DemurragePeriod,
                    value: "x".into()
                },
                FormProblem::Decision(ledger::DecisionProblem::QuorumNotReached {
                    present: 8,
                    required: 10
                }),
                FormProblem::Decision(ledger::DecisionProblem::MoreVotesThanPresent {
                    cast: 12,
                    present: 8
                }),
            ]
        );
    }
}
