//! The assembly's panel (`/assembly`, role `assembly`): the active plan, a draft
//! form, its preview on the live figures and its adoption with the decision record,
//! and the history of plans. Plain HTML forms: the draft travels as form fields
//! (`tier.ID`, `min_w.ID`, `max_w.ID`, `split.N`, the sources and the decision
//! record), so a draft with a mistake comes back as typed, beside every problem
//! named. Adoption goes through [`plans::adopt_checked`], as `POST /api/plans`
//! does; the preview runs each plan as the live evaluation runs the active one
//! ([`query::plan_runner::preview`]).

use std::collections::{HashMap, HashSet};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, LOCATION};
use axum::response::{IntoResponse, Response};
use dashboards::{
    AssemblyView, DraftForm, DraftService, FormField, FormProblem, Preview, PreviewRow,
};
use ledger::{
    AdoptedPlan, BatterySource, Decision, GridSource, Plan, PlanService, Split, TierRule,
};
use query::allocation::{Allocation, ServiceGrant};
use query::live::LiveSnapshot;
use serde::Deserialize;

use crate::auth::CurrentMember;
use crate::form::{self, number, required_number, whole};
use crate::lang::PageLang;
use crate::plans::{self, AdoptError};
use crate::{AppError, AppState};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct PanelQuery {
    /// Set by the redirect after an adoption: the entry that recorded it.
    adopted: Option<i64>,
}

/// `GET /assembly`: the panel, its draft form filled with the active plan, less
/// the services the site configuration no longer declares (a plan naming them
/// would be refused).
pub(crate) async fn panel(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
    Query(query): Query<PanelQuery>,
) -> Result<Response, AppError> {
    let history = history(&state).await?;
    let snapshot = state.live.borrow().clone();
    let today = chrono::Utc::now()
        .with_timezone(&state.site.timezone)
        .date_naive();
    let draft = history.first().map_or_else(
        || DraftForm::from_plan(&empty_plan(), today),
        |a| {
            let mut plan = a.plan.clone();
            plan.services.retain(|s| state.services.contains(&s.id));
            DraftForm::from_plan(&plan, today)
        },
    );
    let adopted_seq = query
        .adopted
        .filter(|seq| history.first().is_some_and(|a| a.seq == *seq));
    render(
        StatusCode::OK,
        &state,
        &lang,
        &member,
        &history,
        &snapshot,
        &draft,
        &[],
        None,
        None,
        adopted_seq,
        None,
    )
    .await
}

/// `POST /assembly/preview`: the draft run on the current demand and production,
/// beside the active plan on the same figures. Records nothing.
pub(crate) async fn preview(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
    body: Bytes,
) -> Result<Response, AppError> {
    let history = history(&state).await?;
    let snapshot = state.live.borrow().clone();
    let parsed = parse(&body, &known_ids(&history, &snapshot));
    let (status, preview) = if parsed.plan_problems.is_empty() {
        (
            StatusCode::OK,
            Some(preview_of(
                &parsed.plan,
                history.first().map(|a| &a.plan),
                &snapshot,
            )),
        )
    } else {
        (StatusCode::UNPROCESSABLE_ENTITY, None)
    };
    render(
        status,
        &state,
        &lang,
        &member,
        &history,
        &snapshot,
        &parsed.draft,
        &parsed.plan_problems,
        preview.as_ref(),
        None,
        None,
        None,
    )
    .await
}

/// `POST /assembly/replay`: the draft replayed over the last 1, 7 or 30 days of the
/// recorded history at one-minute steps, beside what each service actually
/// received. Records nothing.
pub(crate) async fn replay(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
    body: Bytes,
) -> Result<Response, AppError> {
    let history = history(&state).await?;
    let snapshot = state.live.borrow().clone();
    let parsed = parse(&body, &known_ids(&history, &snapshot));
    let mut problems = parsed.plan_problems.clone();
    let days = match parsed.draft.replay_days.as_str() {
        "" | "7" => Some(7),
        "1" => Some(1),
        "30" => Some(30),
        _ => None,
    };
    if days.is_none() {
        problems.push(FormProblem::ReplayDays);
    }
    let mut replayed = None;
    if let (true, Some(days), Some(queries)) = (problems.is_empty(), days, &state.queries) {
        let to = chrono::Utc::now();
        let from = to - chrono::Duration::days(days);
        replayed = Some(queries.replay(&parsed.plan, from, to).await?);
    }
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    render(
        status,
        &state,
        &lang,
        &member,
        &history,
        &snapshot,
        &parsed.draft,
        &problems,
        None,
        replayed.as_ref(),
        None,
        None,
    )
    .await
}

/// `POST /assembly/adopt`: records the draft with its decision record, then back to
/// the panel (303) with a confirmation; or the panel again (422) with every problem
/// listed and the draft kept.
pub(crate) async fn adopt(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
    body: Bytes,
) -> Result<Response, AppError> {
    let history = history(&state).await?;
    let snapshot = state.live.borrow().clone();
    let parsed = parse(&body, &known_ids(&history, &snapshot));
    let mut problems = parsed.plan_problems;
    problems.extend(parsed.decision_problems);
    if problems.is_empty() && !parsed.confirmed {
        // First step: the decision record about to be signed and what the draft
        // changes, for the secretary to confirm. Nothing is recorded yet.
        let confirmation = dashboards::AdoptionStep {
            fields: &parsed.fields,
            decision: &parsed.decision,
            changes: history
                .first()
                .map(|active| parsed.plan.changes_since(&active.plan)),
        };
        return render(
            StatusCode::OK,
            &state,
            &lang,
            &member,
            &history,
            &snapshot,
            &parsed.draft,
            &[],
            None,
            None,
            None,
            Some(confirmation),
        )
        .await;
    }
    if problems.is_empty() {
        match plans::adopt_checked(
            &state,
            parsed.plan,
            parsed.decision,
            member.member.name.clone(),
            None,
        )
        .await
        {
            Ok(recorded) => {
                let entry = recorded.entry();
                return Ok((
                    StatusCode::SEE_OTHER,
                    [
                        (LOCATION, format!("/assembly?adopted={}", entry.seq)),
                        (CACHE_CONTROL, "no-store".to_string()),
                    ],
                )
                    .into_response());
            }
            Err(AdoptError::Refused { plan, decision }) => {
                problems.extend(plan.into_iter().map(FormProblem::Plan));
                problems.extend(decision.into_iter().map(FormProblem::Decision));
            }
            Err(AdoptError::Failed(e)) => return Err(e),
        }
    }
    render(
        StatusCode::UNPROCESSABLE_ENTITY,
        &state,
        &lang,
        &member,
        &history,
        &snapshot,
        &parsed.draft,
        &problems,
        None,
        None,
        None,
        None,
    )
    .await
}

async fn history(state: &AppState) -> Result<Vec<AdoptedPlan>, AppError> {
    let journal = state.journal.clone();
    Ok(tokio::task::spawn_blocking(move || journal.plan_history())
        .await
        .map_err(|e| AppError::Internal(format!("plan history task: {e}")))??)
}

fn empty_plan() -> Plan {
    Plan {
        tiers: vec![],
        services: vec![],
        sources: ledger::Sources::default(),
    }
}

/// The services a draft may name: those of the active plan and those the live
/// evaluation knows.
fn known_ids(history: &[AdoptedPlan], snapshot: &LiveSnapshot) -> HashSet<String> {
    history
        .first()
        .into_iter()
        .flat_map(|a| a.plan.services.iter().map(|s| s.id.clone()))
        .chain(snapshot.services.iter().map(|s| s.id.to_string()))
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn render(
    status: StatusCode,
    state: &AppState,
    lang: &PageLang,
    member: &CurrentMember,
    history: &[AdoptedPlan],
    snapshot: &LiveSnapshot,
    draft: &DraftForm,
    problems: &[FormProblem],
    preview: Option<&Preview>,
    replay: Option<&query::replay::Replay>,
    adopted_seq: Option<i64>,
    confirmation: Option<dashboards::AdoptionStep<'_>>,
) -> Result<Response, AppError> {
    let journal = state.journal.clone();
    let rule = tokio::task::spawn_blocking(move || journal.ledger_parameters())
        .await
        .map_err(|e| AppError::Internal(format!("ledger parameters task: {e}")))??
        .decision_rule;
    let names: HashMap<String, String> = snapshot
        .services
        .iter()
        .map(|s| (s.id.to_string(), s.name.to_string()))
        .collect();
    let view = AssemblyView {
        new_matches: member.new_matches(state),
        rule,
        history,
        names: &names,
        draft,
        problems,
        preview,
        replay,
        adopted_seq,
        confirmation,
        csrf: member.csrf().unwrap_or_default(),
        member: &member.member.name,
        roles: &member.member.roles,
    };
    let html = dashboards::render_assembly(&view, lang.lang, &state.site)?;
    Ok(lang.page(status, html))
}

/// The draft run on the live figures, and the active plan on the same figures.
fn preview_of(draft: &Plan, active: Option<&Plan>, snapshot: &LiveSnapshot) -> Preview {
    let draft_run = query::plan_runner::preview(draft, snapshot);
    let active_run = active.map(|plan| query::plan_runner::preview(plan, snapshot));
    fn grant<'a>(a: &'a Allocation, id: &str) -> Option<&'a ServiceGrant> {
        a.services.iter().find(|g| &*g.id == id)
    }
    let mut ids: Vec<&str> = draft.services.iter().map(|s| s.id.as_str()).collect();
    for s in active.into_iter().flat_map(|p| &p.services) {
        if !ids.contains(&s.id.as_str()) {
            ids.push(&s.id);
        }
    }
    Preview {
        rows: ids
            .into_iter()
            .map(|id| {
                let draft = grant(&draft_run, id);
                let active = active_run.as_ref().and_then(|a| grant(a, id));
                PreviewRow {
                    id: id.to_string(),
                    // Both plans run on the same demands.
                    demand_w: draft.or(active).map_or(0.0, |g| g.demand_w),
                    draft: draft.map(|g| (g.allocated_w, g.state)),
                    active: active.map(|g| (g.allocated_w, g.state)),
                }
            })
            .collect(),
        draft_available_w: draft_run.available_w,
        active_available_w: active_run.map_or(0.0, |a| a.available_w),
        stale: snapshot.stale,
        changes: active.map(|active| draft.changes_since(active)),
    }
}

/// The form read: the draft as typed, the plan and the decision record it
/// describes, and every problem found. A field that cannot be read is named in the
/// problems and read as a neutral value (one that raises no other problem), so that
/// the plan's and the decision's own checks still run on the rest: one round trip
/// shows every problem.
struct Parsed {
    draft: DraftForm,
    plan: Plan,
    /// Fields the panel does not have, fields of the plan that cannot be read, and
    /// what the plan itself gets wrong.
    plan_problems: Vec<FormProblem>,
    decision: Decision,
    decision_problems: Vec<FormProblem>,
    /// The secretary confirmed the adoption (the second step).
    confirmed: bool,
    /// The fields as posted, but the token and the confirmation: what the
    /// confirmation step sends again.
    fields: Vec<(String, String)>,
}

fn tier_list(field: FormField, value: &str, problems: &mut Vec<FormProblem>) -> Option<Vec<u32>> {
    let parsed: Result<Vec<u32>, _> = value
        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(str::parse::<u32>)
        .collect();
    match parsed {
        Ok(mut tiers) => {
            tiers.sort_unstable();
            tiers.dedup();
            Some(tiers)
        }
        Err(_) => {
            problems.push(FormProblem::NotAWholeNumber {
                field,
                value: value.to_string(),
            });
            None
        }
    }
}

/// Reads the panel's form. Never fails: what cannot be read becomes a problem
/// naming the field.
fn parse(body: &[u8], known: &HashSet<String>) -> Parsed {
    let mut draft = DraftForm::default();
    let mut unknown = Vec::new();
    let mut splits: Vec<(u32, String)> = Vec::new();
    let mut confirmed = false;
    let mut fields = Vec::new();
    let service = |draft: &mut DraftForm, id: &str| -> usize {
        match draft.services.iter().position(|s| s.id == id) {
            Some(i) => i,
            None => {
                draft.services.push(DraftService {
                    id: id.to_string(),
                    ..DraftService::default()
                });
                draft.services.len() - 1
            }
        }
    };
    for (name, value) in form::fields(body) {
        match name.as_str() {
            "confirm" => {
                confirmed = value == "yes";
                continue;
            }
            "csrf" => {}
            _ => fields.push((name.clone(), value.clone())),
        }
        if let Some((kind, id)) = name.split_once('.')
            && matches!(kind, "tier" | "min_w" | "max_w")
        {
            if !known.contains(id) {
                unknown.push(FormProblem::UnknownField { name });
                continue;
            }
            let i = service(&mut draft, id);
            let s = &mut draft.services[i];
            match kind {
                "tier" => s.tier = value,
                "min_w" => s.min_w = value,
                _ => s.max_w = value,
            }
            continue;
        }
        if let Some(tier) = name.strip_prefix("split.") {
            match tier.parse::<u32>() {
                Ok(tier) if tier >= 1 && !splits.iter().any(|(t, _)| *t == tier) => {
                    splits.push((tier, value));
                }
                _ => unknown.push(FormProblem::UnknownField { name }),
            }
            continue;
        }
        if let Some(field) = draft.decision.field_mut(&name) {
            *field = value;
            continue;
        }
        match name.as_str() {
            "battery" => draft.battery = value == "on",
            "battery_reserve_soc_pct" => draft.battery_reserve_soc_pct = value,
            "battery_max_discharge_w" => draft.battery_max_discharge_w = value,
            "battery_tiers" => draft.battery_tiers = value,
            "grid" => draft.grid = value == "on",
            "grid_max_import_w" => draft.grid_max_import_w = value,
            "grid_tiers" => draft.grid_tiers = value,
            "replay_days" => draft.replay_days = value,
            _ => unknown.push(FormProblem::UnknownField { name }),
        }
    }
    splits.sort_by_key(|(t, _)| *t);
    draft.splits = splits;
    // One more split rule on offer than the draft uses, for a service moved to a
    // new last tier.
    let shown = draft.tier_count();
    // A rule for a tier past those on offer (no service is in it) is dropped.
    draft.splits.retain(|(t, _)| *t <= shown);
    for tier in 1..=shown {
        if !draft.splits.iter().any(|(t, _)| *t == tier) {
            draft.splits.push((tier, "pro_rata".to_string()));
        }
    }
    draft.splits.sort_by_key(|(t, _)| *t);

    let (plan, plan_problems) = plan_of(&draft);
    unknown.extend(plan_problems);
    unknown.extend(plan.problems().into_iter().map(FormProblem::Plan));
    let mut decision_problems = Vec::new();
    let decision = form::decision(&draft.decision, &mut decision_problems);
    Parsed {
        draft,
        plan,
        plan_problems: unknown,
        decision,
        decision_problems,
        confirmed,
        fields,
    }
}

/// The plan the draft describes; an unreadable field is named in the problems and
/// read as a value that raises no other problem.
fn plan_of(draft: &DraftForm) -> (Plan, Vec<FormProblem>) {
    let mut problems = Vec::new();
    let mut services = Vec::new();
    for s in &draft.services {
        let tier = whole(FormField::ServiceTier(s.id.clone()), &s.tier, &mut problems);
        let min_w = if s.min_w.trim().is_empty() {
            Some(0.0)
        } else {
            number(FormField::ServiceMin(s.id.clone()), &s.min_w, &mut problems)
        };
        let max_w = if s.max_w.trim().is_empty() {
            None
        } else {
            number(FormField::ServiceMax(s.id.clone()), &s.max_w, &mut problems)
        };
        services.push(PlanService {
            id: s.id.clone(),
            tier: tier.unwrap_or(1),
            min_w: min_w.unwrap_or(0.0),
            max_w,
        });
    }
    services.sort_by_key(|s| s.tier);
    let used: HashSet<u32> = services.iter().map(|s| s.tier).collect();
    let mut tiers = Vec::new();
    for (tier, split) in &draft.splits {
        let split = match split.as_str() {
            "pro_rata" => Split::ProRata,
            "equal" => Split::Equal,
            other => {
                problems.push(FormProblem::UnknownSplit {
                    tier: *tier,
                    value: other.to_string(),
                });
                continue;
            }
        };
        // A rule for a tier no service is in changes nothing: it is left out.
        if used.contains(tier) {
            tiers.push(TierRule { tier: *tier, split });
        }
    }
    let battery = draft.battery.then(|| {
        let reserve_soc_pct = required_number(
            FormField::BatteryReserve,
            &draft.battery_reserve_soc_pct,
            &mut problems,
        );
        let max_discharge_w = if draft.battery_max_discharge_w.trim().is_empty() {
            None
        } else {
            number(
                FormField::BatteryMaxDischarge,
                &draft.battery_max_discharge_w,
                &mut problems,
            )
        };
        let tiers = tier_list(FormField::BatteryTiers, &draft.battery_tiers, &mut problems);
        BatterySource {
            reserve_soc_pct: reserve_soc_pct.unwrap_or(100.0),
            tiers: tiers.unwrap_or_default(),
            max_discharge_w,
        }
    });
    let grid = draft.grid.then(|| {
        let max_import_w = required_number(
            FormField::GridMaxImport,
            &draft.grid_max_import_w,
            &mut problems,
        );
        let tiers = tier_list(FormField::GridTiers, &draft.grid_tiers, &mut problems);
        GridSource {
            max_import_w: max_import_w.unwrap_or(0.0),
            tiers: tiers.unwrap_or_default(),
        }
    });
    let plan = Plan {
        tiers,
        services,
        sources: ledger::Sources { battery, grid },
    };
    (plan, problems)
}
