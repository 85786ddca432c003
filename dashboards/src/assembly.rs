//! The assembly's panel (`/assembly`): the active plan in plain language, a form to
//! draft the next one with its decision record, a preview of the draft on the live
//! figures, and the history of plans with what each adoption changed. Everything
//! here formats and arranges; parsing the form and computing the preview belong to
//! the `web` crate.

use std::collections::HashMap;

use askama::Template;
use ledger::{AdoptedPlan, DecisionRule, Plan, PlanChange, Split};
use query::allocation::ServiceState;

use crate::form::{DecisionForm, FormPage, FormProblem, form_problem_text, rule_in_force_key};
use crate::format::{format_duration_hours, format_energy};
use crate::layout::{Layout, render};
use crate::wall::state_parts;
use crate::{Catalog, Lang, Result, SiteInfo, format_date_long, format_percent, format_power};

/// The draft as the form holds it: every value as typed, so that a draft with a
/// mistake comes back unchanged beside the message naming the mistake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DraftForm {
    pub services: Vec<DraftService>,
    /// Split rule per tier shown (`pro_rata` or `equal`), tiers 1, 2, … in order.
    pub splits: Vec<(u32, String)>,
    pub battery: bool,
    pub battery_reserve_soc_pct: String,
    pub battery_max_discharge_w: String,
    /// Tier numbers separated by commas or spaces; empty: every tier.
    pub battery_tiers: String,
    pub grid: bool,
    pub grid_max_import_w: String,
    pub grid_tiers: String,
    pub decision: DecisionForm,
    /// Days of history the replay covers (`1`, `7` or `30`; empty: 7).
    pub replay_days: String,
}

/// One service's line of the draft form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DraftService {
    pub id: String,
    pub tier: String,
    pub min_w: String,
    /// Empty: no cap.
    pub max_w: String,
}

/// A watt figure as a form field shows it: whole watts without decimals.
fn watts_field(w: f64) -> String {
    if w.fract() == 0.0 && w.abs() < 1e15 {
        format!("{w:.0}")
    } else {
        w.to_string()
    }
}

fn tiers_field(tiers: &[u32]) -> String {
    tiers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl DraftForm {
    /// A draft that starts from `plan` (the active one), with an empty decision
    /// record dated `today`.
    pub fn from_plan(plan: &Plan, today: chrono::NaiveDate) -> Self {
        let mut services: Vec<DraftService> = plan
            .services
            .iter()
            .map(|s| DraftService {
                id: s.id.clone(),
                tier: s.tier.to_string(),
                min_w: watts_field(s.min_w),
                max_w: s.max_w.map(watts_field).unwrap_or_default(),
            })
            .collect();
        services.sort_by_key(|s| s.tier.parse::<u32>().unwrap_or(u32::MAX));
        let battery = plan.sources.battery.as_ref();
        let grid = plan.sources.grid.as_ref();
        let mut form = DraftForm {
            services,
            splits: Vec::new(),
            battery: battery.is_some(),
            battery_reserve_soc_pct: battery
                .map_or_else(String::new, |b| watts_field(b.reserve_soc_pct)),
            battery_max_discharge_w: battery
                .and_then(|b| b.max_discharge_w)
                .map(watts_field)
                .unwrap_or_default(),
            battery_tiers: battery.map_or_else(String::new, |b| tiers_field(&b.tiers)),
            grid: grid.is_some(),
            grid_max_import_w: grid.map_or_else(String::new, |g| watts_field(g.max_import_w)),
            grid_tiers: grid.map_or_else(String::new, |g| tiers_field(&g.tiers)),
            decision: DecisionForm::dated(today),
            ..DraftForm::default()
        };
        form.splits = (1..=form.tier_count())
            .map(|tier| {
                let split = match plan.split_of(tier) {
                    Split::ProRata => "pro_rata",
                    Split::Equal => "equal",
                };
                (tier, split.to_string())
            })
            .collect();
        form
    }

    /// How many tiers the form offers a split rule for: every tier a service is in,
    /// plus one, so that a service can be moved to a new last tier.
    pub fn tier_count(&self) -> u32 {
        let highest = self
            .services
            .iter()
            .filter_map(|s| s.tier.trim().parse::<u32>().ok())
            .max()
            .unwrap_or(0);
        // A mistyped huge tier number does not make the form offer that many.
        let cap = u32::try_from(self.services.len()).unwrap_or(u32::MAX);
        highest.min(cap.saturating_add(1)).max(1) + 1
    }
}

/// One service's line in the preview: what it asks now, and what it would get under
/// the draft and under the active plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviewRow {
    pub id: String,
    pub demand_w: f64,
    pub draft: Option<(f64, ServiceState)>,
    pub active: Option<(f64, ServiceState)>,
}

/// The preview: one line per service, and the power each plan lets the services use.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    pub rows: Vec<PreviewRow>,
    pub draft_available_w: f64,
    pub active_available_w: f64,
    /// The live figures are out of date: demands read as zero.
    pub stale: bool,
    /// What the draft changes in the active plan; `None` when no plan is active.
    pub changes: Option<Vec<PlanChange>>,
}

/// The step between "Adopter" and the journal: what is about to be recorded and
/// signed, for the secretary to confirm.
#[derive(Debug, Clone)]
pub struct AdoptionStep<'a> {
    /// The draft's form fields as posted (but the token), sent again on confirming.
    pub fields: &'a [(String, String)],
    pub decision: &'a ledger::Decision,
    /// What the draft changes in the active plan; `None` when no plan is active.
    pub changes: Option<Vec<PlanChange>>,
}

/// What the panel shows.
#[derive(Debug, Clone)]
pub struct AssemblyView<'a> {
    /// The count of new matches on the planning board, for the navigation.
    pub new_matches: usize,
    /// Every adopted plan, newest first (the first is the active one).
    pub history: &'a [AdoptedPlan],
    /// Display names of services by id (from the live snapshot).
    pub names: &'a HashMap<String, String>,
    pub draft: &'a DraftForm,
    pub problems: &'a [FormProblem],
    pub preview: Option<&'a Preview>,
    /// The draft replayed over the recorded history, beside what was given.
    pub replay: Option<&'a query::replay::Replay>,
    /// Set after an adoption: the journal entry that recorded it.
    pub adopted_seq: Option<i64>,
    /// Set when "Adopter" was pressed on a valid draft: the confirmation step.
    pub confirmation: Option<AdoptionStep<'a>>,
    /// The session's anti-forgery token for the forms.
    pub csrf: &'a str,
    pub member: &'a str,
    /// The member's roles: which pages the navigation offers.
    pub roles: &'a [ledger::Role],
    /// The rule the decision record is judged by (a ledger parameter).
    pub rule: DecisionRule,
}

struct TierLine {
    heading: String,
    services: Vec<String>,
}

/// One service of a replay, as the panel prints it.
struct ReplayLine {
    name: String,
    demand: String,
    energy: String,
    shed: String,
    actual_energy: String,
    actual_shed: String,
    /// Energy asked for and not received, under the draft and as it was: a
    /// service short of part of its demand is never shown as "0 h shed" alone.
    short: String,
    actual_short: String,
    /// The draft gives it less than it was given.
    worse: bool,
}

struct ServiceInput {
    id: String,
    name: String,
    tier: String,
    min_w: String,
    max_w: String,
}

struct SplitInput {
    tier: u32,
    label: String,
    equal: bool,
}

struct PreviewLine {
    name: String,
    demand: String,
    draft: String,
    draft_state: String,
    draft_class: &'static str,
    active: String,
    active_state: String,
    active_class: &'static str,
}

struct ConfirmLine {
    decision: String,
    signed: String,
    changes: Vec<String>,
    fields: Vec<(String, String)>,
}

struct HistoryLine {
    seq: i64,
    title: String,
    decision: String,
    minutes: String,
    changes: Vec<String>,
}

#[derive(Template)]
#[template(path = "assembly.html")]
struct AssemblyTemplate<'a> {
    csrf: &'a str,
    active_title: Option<String>,
    active_decision: Option<String>,
    tiers: Vec<TierLine>,
    sources: Vec<String>,
    confirmation: Option<String>,
    problems: Vec<String>,
    services: Vec<ServiceInput>,
    splits: Vec<SplitInput>,
    draft: &'a DraftForm,
    rule_text: &'static str,
    preview: Option<Vec<PreviewLine>>,
    preview_note: Option<String>,
    preview_changes: Vec<String>,
    confirm: Option<ConfirmLine>,
    replay: Option<Vec<ReplayLine>>,
    replay_note: Option<String>,
    replay_days: &'a str,
    history: Vec<HistoryLine>,
    layout: Layout<'a>,
}

/// The panel as a complete HTML document.
pub fn render_assembly(view: &AssemblyView<'_>, lang: Lang, site: &SiteInfo) -> Result<String> {
    let t = Catalog::for_lang(lang);
    let name = |id: &str| {
        view.names
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    };
    let active = view.history.first();
    let (tiers, sources) = active.map_or_else(
        || (Vec::new(), Vec::new()),
        |a| {
            (
                plan_tiers(&a.plan, &name, lang),
                plan_sources(&a.plan, lang),
            )
        },
    );
    let preview = view.preview.map(|p| {
        p.rows
            .iter()
            .map(|row| {
                let cell = |outcome: Option<(f64, ServiceState)>| match outcome {
                    Some((w, state)) => {
                        let (class, icon, key) = state_parts(state);
                        (format_power(w, lang), format!("{icon} {}", t.t(key)), class)
                    }
                    None => (
                        "—".to_string(),
                        t.t("assembly.not_in_plan").to_string(),
                        "idle",
                    ),
                };
                let (draft, draft_state, draft_class) = cell(row.draft);
                let (active, active_state, active_class) = cell(row.active);
                PreviewLine {
                    name: name(&row.id),
                    demand: format_power(row.demand_w, lang),
                    draft,
                    draft_state,
                    draft_class,
                    active,
                    active_state,
                    active_class,
                }
            })
            .collect()
    });
    let preview_note = view.preview.map(|p| {
        let mut note = t.tf(
            "assembly.preview_available",
            &[
                ("draft", &format_power(p.draft_available_w, lang)),
                ("active", &format_power(p.active_available_w, lang)),
            ],
        );
        if p.stale {
            note.push(' ');
            note.push_str(t.t("assembly.preview_stale"));
        }
        note
    });
    let changes_text = |changes: &Option<Vec<PlanChange>>| match changes {
        None => vec![t.t("assembly.first_plan").to_string()],
        Some(changes) if changes.is_empty() => vec![t.t("assembly.no_change").to_string()],
        Some(changes) => changes
            .iter()
            .map(|c| change_text(c, &name, lang))
            .collect(),
    };
    let preview_changes = view
        .preview
        .map_or_else(Vec::new, |p| changes_text(&p.changes));
    let confirm = view.confirmation.as_ref().map(|c| ConfirmLine {
        decision: decision_sentence(c.decision, view.member, lang),
        signed: t.tf("assembly.confirm_signed", &[("member", view.member)]),
        changes: changes_text(&c.changes),
        fields: c.fields.to_vec(),
    });
    let replay = view.replay.map(|r| {
        r.services
            .iter()
            .map(|s| ReplayLine {
                name: name(&s.id),
                demand: format_energy(s.demand_wh, lang),
                energy: format_energy(s.energy_wh, lang),
                shed: format_duration_hours(s.shed_hours, lang),
                actual_energy: format_energy(s.actual_energy_wh, lang),
                actual_shed: format_duration_hours(s.actual_shed_hours, lang),
                short: format_energy((s.demand_wh - s.energy_wh).max(0.0), lang),
                actual_short: format_energy((s.demand_wh - s.actual_energy_wh).max(0.0), lang),
                worse: s.energy_wh + 0.5 < s.actual_energy_wh,
            })
            .collect()
    });
    let replay_note = view.replay.map(|r| {
        t.tf(
            "assembly.replay_note",
            &[
                (
                    "from",
                    &format_date_long(r.from.with_timezone(&site.timezone).date_naive(), lang),
                ),
                (
                    "to",
                    &format_date_long(r.to.with_timezone(&site.timezone).date_naive(), lang),
                ),
                (
                    "hours",
                    &format_duration_hours(r.minutes as f64 / 60.0, lang),
                ),
            ],
        )
    });
    let history = view
        .history
        .iter()
        .enumerate()
        .map(|(i, adopted)| HistoryLine {
            seq: adopted.seq,
            title: t.tf(
                "assembly.history_item",
                &[
                    ("seq", &adopted.seq.to_string()),
                    (
                        "date",
                        &format_date_long(
                            adopted
                                .adopted_at
                                .with_timezone(&site.timezone)
                                .date_naive(),
                            lang,
                        ),
                    ),
                ],
            ),
            decision: decision_text(adopted, lang),
            minutes: if adopted.is_from_configuration() {
                String::new()
            } else {
                adopted.decision.minutes.clone()
            },
            changes: match view.history.get(i + 1) {
                None => vec![t.t("assembly.first_plan").to_string()],
                Some(previous) => {
                    let changes = adopted.plan.changes_since(&previous.plan);
                    if changes.is_empty() {
                        vec![t.t("assembly.no_change").to_string()]
                    } else {
                        changes
                            .iter()
                            .map(|c| change_text(c, &name, lang))
                            .collect()
                    }
                }
            },
        })
        .collect();
    let splits = view
        .draft
        .splits
        .iter()
        .map(|(tier, split)| SplitInput {
            tier: *tier,
            label: t.tf("assembly.tier_split", &[("tier", &tier.to_string())]),
            equal: split == "equal",
        })
        .collect();
    let page = AssemblyTemplate {
        csrf: view.csrf,
        rule_text: t.t(rule_in_force_key(view.rule)),
        active_title: active.map(|a| {
            t.tf(
                "assembly.active_since",
                &[(
                    "date",
                    &format_date_long(
                        a.adopted_at.with_timezone(&site.timezone).date_naive(),
                        lang,
                    ),
                )],
            )
        }),
        active_decision: active.map(|a| decision_text(a, lang)),
        tiers,
        sources,
        confirmation: view
            .adopted_seq
            .map(|seq| t.tf("assembly.adopted", &[("seq", &seq.to_string())])),
        problems: view
            .problems
            .iter()
            .map(|p| form_problem_text(p, FormPage::Assembly, &name, lang))
            .collect(),
        services: view
            .draft
            .services
            .iter()
            .map(|s| ServiceInput {
                id: s.id.clone(),
                name: name(&s.id),
                tier: s.tier.clone(),
                min_w: s.min_w.clone(),
                max_w: s.max_w.clone(),
            })
            .collect(),
        splits,
        draft: view.draft,
        preview,
        preview_note,
        preview_changes,
        confirm,
        replay,
        replay_note,
        replay_days: if view.draft.replay_days.is_empty() {
            "7"
        } else {
            &view.draft.replay_days
        },
        history,
        layout: Layout::new(lang, site, t.t("assembly.title")).with_nav(
            crate::nav::member_nav("/assembly", view.roles, view.member, view.csrf, t)
                .with_new_matches(view.new_matches, t),
        ),
    };
    render(&page, "assembly.html")
}

fn split_name(split: Split, t: &Catalog) -> &str {
    match split {
        Split::ProRata => t.t("assembly.split_pro_rata"),
        Split::Equal => t.t("assembly.split_equal"),
    }
}

/// Each tier of `plan` in order, its services in plain words.
fn plan_tiers(plan: &Plan, name: &dyn Fn(&str) -> String, lang: Lang) -> Vec<TierLine> {
    let t = Catalog::for_lang(lang);
    let tiers: std::collections::BTreeSet<u32> = plan.services.iter().map(|s| s.tier).collect();
    let first = tiers.iter().next().copied();
    tiers
        .into_iter()
        .map(|tier| {
            let order = if Some(tier) == first {
                t.t("assembly.served_first")
            } else {
                t.t("assembly.served_after")
            };
            TierLine {
                heading: t.tf(
                    "assembly.tier_heading",
                    &[
                        ("tier", &tier.to_string()),
                        ("order", order),
                        ("split", split_name(plan.split_of(tier), t)),
                    ],
                ),
                services: plan
                    .services
                    .iter()
                    .filter(|s| s.tier == tier)
                    .map(|s| {
                        let mut line = name(&s.id);
                        line.push_str(" — ");
                        if s.min_w > 0.0 {
                            line.push_str(&t.tf(
                                "assembly.guaranteed",
                                &[("power", &format_power(s.min_w, lang))],
                            ));
                        } else {
                            line.push_str(t.t("assembly.no_minimum"));
                        }
                        if let Some(max) = s.max_w {
                            line.push_str(" — ");
                            line.push_str(
                                &t.tf("assembly.capped", &[("power", &format_power(max, lang))]),
                            );
                        }
                        line
                    })
                    .collect(),
            }
        })
        .collect()
}

fn tiers_text(tiers: &[u32], t: &Catalog) -> String {
    match tiers {
        [] => t.t("assembly.all_tiers").to_string(),
        [one] => t.tf("assembly.one_tier", &[("tier", &one.to_string())]),
        _ => t.tf("assembly.some_tiers", &[("tiers", &tiers_field(tiers))]),
    }
}

/// The sources the plan opens beyond the sun, in plain words.
fn plan_sources(plan: &Plan, lang: Lang) -> Vec<String> {
    let t = Catalog::for_lang(lang);
    let mut lines = vec![t.t("assembly.source_pv").to_string()];
    lines.push(battery_text(plan.sources.battery.as_ref(), lang));
    lines.push(grid_text(plan.sources.grid.as_ref(), lang));
    lines
}

fn battery_text(battery: Option<&ledger::BatterySource>, lang: Lang) -> String {
    let t = Catalog::for_lang(lang);
    match battery {
        None => t.t("assembly.battery_closed").to_string(),
        // Open, but with no discharge counted: it gives the services nothing, and
        // "up to 0 W" would read as a mistake.
        Some(b) if b.max_discharge_w.is_none_or(|w| w <= 0.0) => t.tf(
            "assembly.battery_no_discharge",
            &[("reserve", &format_percent(b.reserve_soc_pct, lang))],
        ),
        Some(b) => t.tf(
            "assembly.battery_open",
            &[
                ("reserve", &format_percent(b.reserve_soc_pct, lang)),
                ("max", &format_power(b.max_discharge_w.unwrap_or(0.0), lang)),
                ("tiers", &tiers_text(&b.tiers, t)),
            ],
        ),
    }
}

fn grid_text(grid: Option<&ledger::GridSource>, lang: Lang) -> String {
    let t = Catalog::for_lang(lang);
    match grid {
        None => t.t("assembly.grid_closed").to_string(),
        Some(g) if g.max_import_w <= 0.0 => t.t("assembly.grid_closed").to_string(),
        Some(g) => t.tf(
            "assembly.grid_open",
            &[
                ("max", &format_power(g.max_import_w, lang)),
                ("tiers", &tiers_text(&g.tiers, t)),
            ],
        ),
    }
}

/// The decision record of an adoption in one sentence.
fn decision_text(adopted: &AdoptedPlan, lang: Lang) -> String {
    let t = Catalog::for_lang(lang);
    if adopted.is_from_configuration() {
        return t.t("assembly.from_configuration").to_string();
    }
    decision_sentence(&adopted.decision, &adopted.author, lang)
}

/// An assembly's decision record in one sentence: date, votes, quorum, and who
/// entered it (plans and ledger parameters alike).
pub(crate) fn decision_sentence(d: &ledger::Decision, author: &str, lang: Lang) -> String {
    let t = Catalog::for_lang(lang);
    t.tf(
        "assembly.decision",
        &[
            ("date", &format_date_long(d.assembly_date, lang)),
            ("for", &d.votes_for.to_string()),
            ("against", &d.votes_against.to_string()),
            (
                "abstain",
                &t.count("assembly.abstaining", d.votes_abstain.into()),
            ),
            (
                "present",
                &t.count("assembly.present_members", d.present.into()),
            ),
            ("quorum", &d.quorum_required.to_string()),
            ("by", author),
        ],
    )
}

fn cap_text(max: Option<f64>, lang: Lang) -> String {
    let t = Catalog::for_lang(lang);
    max.map_or_else(
        || t.t("assembly.no_cap").to_string(),
        |w| format_power(w, lang),
    )
}

/// One change between two plans, in plain words.
pub fn change_text(change: &PlanChange, name: &dyn Fn(&str) -> String, lang: Lang) -> String {
    let t = Catalog::for_lang(lang);
    match change {
        PlanChange::ServiceAdded {
            id,
            tier,
            min_w,
            max_w,
        } => t.tf(
            "assembly.change_added",
            &[
                ("name", &name(id)),
                ("tier", &tier.to_string()),
                ("min", &format_power(*min_w, lang)),
                ("max", &cap_text(*max_w, lang)),
            ],
        ),
        PlanChange::ServiceRemoved { id, tier } => t.tf(
            "assembly.change_removed",
            &[("name", &name(id)), ("tier", &tier.to_string())],
        ),
        PlanChange::TierMoved { id, from, to } => t.tf(
            "assembly.change_moved",
            &[
                ("name", &name(id)),
                ("from", &from.to_string()),
                ("to", &to.to_string()),
            ],
        ),
        PlanChange::MinChanged { id, from, to } => t.tf(
            "assembly.change_min",
            &[
                ("name", &name(id)),
                ("from", &format_power(*from, lang)),
                ("to", &format_power(*to, lang)),
            ],
        ),
        PlanChange::MaxChanged { id, from, to } => t.tf(
            "assembly.change_max",
            &[
                ("name", &name(id)),
                ("from", &cap_text(*from, lang)),
                ("to", &cap_text(*to, lang)),
            ],
        ),
        PlanChange::SplitChanged { tier, from, to } => t.tf(
            "assembly.change_split",
            &[
                ("tier", &tier.to_string()),
                ("from", split_name(*from, t)),
                ("to", split_name(*to, t)),
            ],
        ),
        PlanChange::BatteryChanged { from, to } => t.tf(
            "assembly.change_battery",
            &[
                ("from", &battery_text(from.as_ref(), lang)),
                ("to", &battery_text(to.as_ref(), lang)),
            ],
        ),
        PlanChange::GridChanged { from, to } => t.tf(
            "assembly.change_grid",
            &[
                ("from", &grid_text(from.as_ref(), lang)),
                ("to", &grid_text(to.as_ref(), lang)),
            ],
        ),
    }
}

#[cfg(test)]
mod tests {
    use ledger::{DecisionProblem, PlanProblem};

    use super::*;
    use crate::form::FormField;
    use ledger::{BatterySource, GridSource};

    fn name(id: &str) -> String {
        format!("<{id}>")
    }

    /// Every kind of change and of problem has a sentence in both languages, with
    /// every placeholder filled.
    #[test]
    fn every_change_and_problem_is_phrased_in_both_languages() {
        let changes = [
            PlanChange::ServiceAdded {
                id: "pump".into(),
                tier: 3,
                min_w: 0.0,
                max_w: Some(500.0),
            },
            PlanChange::ServiceRemoved {
                id: "sauna".into(),
                tier: 3,
            },
            PlanChange::TierMoved {
                id: "school".into(),
                from: 2,
                to: 1,
            },
            PlanChange::MinChanged {
                id: "clinic".into(),
                from: 150.0,
                to: 200.0,
            },
            PlanChange::MaxChanged {
                id: "school".into(),
                from: Some(2000.0),
                to: None,
            },
            PlanChange::SplitChanged {
                tier: 2,
                from: Split::ProRata,
                to: Split::Equal,
            },
            PlanChange::BatteryChanged {
                from: None,
                to: Some(BatterySource {
                    reserve_soc_pct: 30.0,
                    tiers: vec![1],
                    max_discharge_w: Some(2000.0),
                }),
            },
            PlanChange::GridChanged {
                from: Some(GridSource {
                    max_import_w: 1000.0,
                    tiers: vec![],
                }),
                to: None,
            },
        ];
        let problems = [
            FormProblem::UnknownField { name: "x".into() },
            FormProblem::Missing(FormField::Present),
            FormProblem::NotANumber {
                field: FormField::ServiceMin("clinic".into()),
                value: "abc".into(),
            },
            FormProblem::NotAWholeNumber {
                field: FormField::ServiceTier("clinic".into()),
                value: "1.5".into(),
            },
            FormProblem::NotADate {
                field: FormField::AssemblyDate,
                value: "demain".into(),
            },
            FormProblem::UnknownSplit {
                tier: 2,
                value: "random".into(),
            },
            FormProblem::Plan(PlanProblem::MaxBelowMin {
                id: "clinic".into(),
                min_w: 150.0,
                max_w: 50.0,
            }),
            FormProblem::Plan(PlanProblem::TierTwice { tier: 2 }),
            FormProblem::Decision(DecisionProblem::QuorumNotReached {
                present: 8,
                required: 10,
            }),
            FormProblem::Decision(DecisionProblem::MoreVotesThanPresent {
                cast: 12,
                present: 8,
            }),
            FormProblem::Plan(PlanProblem::NotConfigured { id: "ghost".into() }),
            FormProblem::Decision(DecisionProblem::NoQuorum),
            FormProblem::Decision(DecisionProblem::NotCarried {
                rule: DecisionRule::Simple,
                votes_for: 3,
                votes_against: 6,
            }),
            FormProblem::Decision(DecisionProblem::NotCarried {
                rule: DecisionRule::TwoThirds,
                votes_for: 6,
                votes_against: 4,
            }),
            FormProblem::Decision(DecisionProblem::NotCarried {
                rule: DecisionRule::Consent,
                votes_for: 9,
                votes_against: 1,
            }),
            FormProblem::Decision(DecisionProblem::DateInFuture {
                date: chrono::NaiveDate::from_ymd_opt(2030, 1, 1).unwrap_or_default(),
            }),
            FormProblem::Decision(DecisionProblem::DateBeforePrevious {
                date: chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap_or_default(),
                previous: chrono::NaiveDate::from_ymd_opt(2026, 3, 12).unwrap_or_default(),
            }),
        ];
        for lang in Lang::ALL {
            for change in &changes {
                let text = change_text(change, &name, lang);
                assert!(!text.contains('{') && !text.contains("assembly."), "{text}");
            }
            for problem in &problems {
                let text = form_problem_text(problem, FormPage::Assembly, &name, lang);
                assert!(
                    !text.contains('{')
                        && !text.contains("assembly.")
                        && !text.contains("decision."),
                    "{text}"
                );
            }
        }
        assert_eq!(
            form_problem_text(&problems[12], FormPage::Assembly, &name, Lang::Fr),
            "La motion n'est pas adoptée : 3 pour, 6 contre (majorité simple : plus de voix \
             pour que contre)."
        );
        assert_eq!(
            form_problem_text(&problems[12], FormPage::Assembly, &name, Lang::En),
            "The motion did not carry: 3 for, 6 against (simple majority: more votes for than \
             against)."
        );
        assert_eq!(
            change_text(&changes[2], &name, Lang::Fr),
            "<school> passe de la priorité 2 à la priorité 1."
        );
        assert_eq!(
            form_problem_text(&problems[8], FormPage::Assembly, &name, Lang::En),
            "Quorum not reached: 8 members present, 10 required. The plan cannot be adopted."
        );
    }

    /// The sources are told as a reader would say them: one tier in the singular, a
    /// battery with no discharge counted as giving nothing (not "up to 0 W"), a grid
    /// limit of 0 as no import.
    #[test]
    fn sources_read_as_plain_sentences() {
        let battery = |max_discharge_w, tiers: Vec<u32>| ledger::BatterySource {
            reserve_soc_pct: 30.0,
            tiers,
            max_discharge_w,
        };
        assert_eq!(
            battery_text(Some(&battery(Some(2000.0), vec![1])), Lang::Fr),
            "Batterie : utilisable tant que sa charge dépasse 30 %, jusqu'à 2,0 kW, pour la priorité 1."
        );
        assert_eq!(
            battery_text(Some(&battery(Some(2000.0), vec![1, 2])), Lang::En),
            "Battery: usable while its charge is above 30%, up to 2.0 kW, for priorities 1, 2."
        );
        for max in [None, Some(0.0)] {
            let text = battery_text(Some(&battery(max, vec![1])), Lang::Fr);
            assert!(text.contains("aucune puissance de décharge"), "{text}");
            assert!(!text.contains("0 W"), "{text}");
        }
        let grid = |max_import_w| ledger::GridSource {
            max_import_w,
            tiers: vec![],
        };
        assert_eq!(
            grid_text(Some(&grid(0.0)), Lang::En),
            "Grid: no import counted on."
        );
        assert_eq!(
            grid_text(Some(&grid(3000.0)), Lang::Fr),
            "Réseau : soutirage jusqu'à 3,0 kW, pour toutes les priorités."
        );
    }
}
