//! Assemblies drawn by lot, as pages: `/sortition` (members opt in, declaring what
//! they choose; the assembly lists the attributes, prepares and announces a draw)
//! and the public draw page `/sortition/ID`, the ceremony on the wall screen in big
//! type (pool size, quotas, the die entry, the names as they come), then the panel,
//! its declines and its decisions under its mandate.

use std::collections::BTreeMap;

use askama::Template;
use ledger::{Draw, EntryKind, MandateScope, PanelDecision, Role, SortitionProblem};

use crate::format::{format_date_long, format_time};
use crate::layout::{Layout, render};
use crate::nav::member_nav;
use crate::{Catalog, Lang, Result, SiteInfo};

/// What a member typed in the announcement form, kept when it is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnnounceForm {
    pub size: String,
    pub strata_key: String,
    /// One line per stratum: `VALUE: MIN-MAX` (`?` for members who declared nothing).
    pub quotas: String,
    pub scope: String,
    pub title: String,
    pub term_end: String,
    /// `YYYY-MM-DDTHH:MM` in the site's time zone; empty: now.
    pub draw_at: String,
}

/// Which form of `/sortition` a refusal belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortitionForm {
    OptIn,
    Keys,
    Announce,
}

/// What `/sortition` shows.
pub struct SortitionView<'a> {
    /// The count of new matches on the planning board, for the navigation.
    pub new_matches: usize,
    pub member: &'a str,
    pub roles: &'a [Role],
    pub csrf: &'a str,
    /// The attributes the assembly listed.
    pub keys: &'a [String],
    /// Who is opted in now, with what they declared.
    pub pool: &'a BTreeMap<String, BTreeMap<String, String>>,
    /// Newest first.
    pub draws: &'a [Draw],
    pub announce: &'a AnnounceForm,
    /// Already phrased in the reader's language.
    pub problems: &'a [String],
    pub problems_for: Option<SortitionForm>,
    /// A confirmation to show (a catalog key).
    pub done: Option<&'static str>,
}

struct KeyInput {
    key: String,
    value: String,
}

struct StratumCount {
    key: String,
    values: String,
}

struct DrawLine {
    id: i64,
    title: String,
    state: String,
}

struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "sortition.html")]
struct SortitionTemplate<'a> {
    layout: Layout<'a>,
    csrf: &'a str,
    assembly: bool,
    done: Option<String>,
    opted_in: bool,
    key_inputs: Vec<KeyInput>,
    opt_problems: Vec<String>,
    keys_text: String,
    keys_problems: Vec<String>,
    pool_text: String,
    strata: Vec<StratumCount>,
    announce: &'a AnnounceForm,
    strata_keys: Vec<Choice>,
    scopes: Vec<Choice>,
    announce_problems: Vec<String>,
    draws: Vec<DrawLine>,
}

fn scope_key(scope: MandateScope) -> &'static str {
    match scope {
        MandateScope::EnergyPriorities => "sortition.scope_energy_priorities",
        MandateScope::LedgerParameters => "sortition.scope_ledger_parameters",
    }
}

fn stratum_label(stratum: &str, t: &Catalog) -> String {
    if stratum.is_empty() {
        t.t("sortition.undeclared").to_string()
    } else {
        stratum.to_string()
    }
}

/// A reason a draw cannot be announced, in the reader's language.
pub fn sortition_problem_text(problem: &SortitionProblem, lang: Lang) -> String {
    let t = Catalog::for_lang(lang);
    let n = |v: &dyn ToString| v.to_string();
    match problem {
        SortitionProblem::SizeZero => t.t("sortition.problem_size_zero").to_string(),
        SortitionProblem::SizeTooLarge { size } => t.tf(
            "sortition.problem_size_large",
            &[("size", &n(size)), ("max", &n(&ledger::MAX_PANEL_SIZE))],
        ),
        SortitionProblem::PoolTooSmall { size, pool } => t.tf(
            "sortition.problem_pool_small",
            &[("size", &n(size)), ("pool", &n(pool))],
        ),
        SortitionProblem::MinAboveMax { stratum, min, max } => t.tf(
            "sortition.problem_min_above_max",
            &[
                ("stratum", &stratum_label(stratum, t)),
                ("min", &n(min)),
                ("max", &n(max)),
            ],
        ),
        SortitionProblem::MinAboveStratum {
            stratum,
            min,
            members,
        } => t.tf(
            "sortition.problem_min_above_stratum",
            &[
                ("stratum", &stratum_label(stratum, t)),
                ("min", &n(min)),
                ("members", &n(members)),
            ],
        ),
        SortitionProblem::MinimaAboveSize { minima, size } => t.tf(
            "sortition.problem_minima_above_size",
            &[("minima", &n(minima)), ("size", &n(size))],
        ),
        SortitionProblem::MaximaBelowSize { seats, size } => t.tf(
            "sortition.problem_maxima_below_size",
            &[("seats", &n(seats)), ("size", &n(size))],
        ),
        SortitionProblem::UnknownStrataKey { key } => {
            t.tf("sortition.problem_unknown_key", &[("key", key)])
        }
        SortitionProblem::QuotasWithoutKey => {
            t.t("sortition.problem_quotas_without_key").to_string()
        }
        SortitionProblem::BadText { what, reason } => format!("{what}: {reason}"),
        SortitionProblem::TermBeforeDraw { term_end, .. } => t.tf(
            "sortition.problem_term_before_draw",
            &[("term_end", &format_date_long(*term_end, lang))],
        ),
    }
}

fn draw_state(draw: &Draw, t: &Catalog) -> String {
    if draw.drawn.is_some() {
        t.tf(
            "sortition.state_drawn",
            &[("seated", &draw.seated.len().to_string())],
        )
    } else {
        t.t("sortition.state_announced").to_string()
    }
}

/// `/sortition` as a complete HTML document.
pub fn render_sortition(view: &SortitionView<'_>, lang: Lang, site: &SiteInfo) -> Result<String> {
    let t = Catalog::for_lang(lang);
    let mine = view.pool.get(view.member);
    let problems_for = |form: SortitionForm| -> Vec<String> {
        if view.problems_for == Some(form) {
            view.problems.to_vec()
        } else {
            Vec::new()
        }
    };
    let strata = view
        .keys
        .iter()
        .map(|key| {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for attributes in view.pool.values() {
                let value = attributes.get(key).cloned().unwrap_or_default();
                *counts.entry(stratum_label(&value, t)).or_insert(0) += 1;
            }
            StratumCount {
                key: key.clone(),
                values: counts
                    .iter()
                    .map(|(v, c)| format!("{v} ({c})"))
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        })
        .collect();
    let mut strata_keys = vec![Choice {
        value: String::new(),
        label: t.t("sortition.no_strata").to_string(),
        selected: view.announce.strata_key.is_empty(),
    }];
    strata_keys.extend(view.keys.iter().map(|k| Choice {
        value: k.clone(),
        label: k.clone(),
        selected: view.announce.strata_key == *k,
    }));
    let page = SortitionTemplate {
        layout: Layout::new(lang, site, t.t("sortition.title")).with_nav(
            member_nav("/sortition", view.roles, view.member, view.csrf, t)
                .with_new_matches(view.new_matches, t),
        ),
        csrf: view.csrf,
        assembly: view.roles.contains(&Role::Assembly),
        done: view.done.map(|k| t.t(k).to_string()),
        opted_in: mine.is_some(),
        key_inputs: view
            .keys
            .iter()
            .map(|k| KeyInput {
                key: k.clone(),
                value: mine.and_then(|m| m.get(k)).cloned().unwrap_or_default(),
            })
            .collect(),
        opt_problems: problems_for(SortitionForm::OptIn),
        keys_text: view.keys.join(", "),
        keys_problems: problems_for(SortitionForm::Keys),
        pool_text: t.tf("sortition.pool_now", &[("n", &view.pool.len().to_string())]),
        strata,
        announce: view.announce,
        strata_keys,
        scopes: MandateScope::ALL
            .into_iter()
            .map(|s| Choice {
                value: s.as_str().to_string(),
                label: t.t(scope_key(s)).to_string(),
                selected: view.announce.scope == s.as_str(),
            })
            .collect(),
        announce_problems: problems_for(SortitionForm::Announce),
        draws: view
            .draws
            .iter()
            .map(|d| DrawLine {
                id: d.id,
                title: d.spec.mandate.title.clone(),
                state: draw_state(d, t),
            })
            .collect(),
    };
    render(&page, "sortition.html")
}

/// What the public draw page shows.
pub struct DrawView<'a> {
    pub draw: &'a Draw,
    pub decisions: &'a [PanelDecision],
    /// The signed-in member, if any, with their session's token.
    pub member: Option<(&'a str, &'a [Role], &'a str)>,
    /// The reader may enter the die: the role `assembly`, and not drawn yet.
    pub can_draw: bool,
    /// Just drawn: the names appear one after the other.
    pub reveal: bool,
    pub rolls: &'a str,
    pub witnesses: &'a str,
    pub problems: &'a [String],
}

struct QuotaLine {
    stratum: String,
    members: usize,
    min: u32,
    max: String,
}

struct SeatLine {
    name: String,
    stratum: String,
    replaced: Option<String>,
    is_me: bool,
}

struct DecisionLine {
    date: String,
    what: String,
    votes: String,
    minutes: String,
}

#[derive(Template)]
#[template(path = "sortition_draw.html")]
struct DrawTemplate<'a> {
    layout: Layout<'a>,
    id: i64,
    title: String,
    scope: String,
    until_text: String,
    when_text: String,
    quotas_caption: String,
    drawn_with_text: String,
    size: u32,
    pool_size: usize,
    strata_key: Option<String>,
    quotas: Vec<QuotaLine>,
    drawn: bool,
    can_draw: bool,
    csrf: String,
    rolls: &'a str,
    witnesses_text: &'a str,
    problems: &'a [String],
    reveal: bool,
    seats: Vec<SeatLine>,
    seed: String,
    announcement_hash: String,
    head_hash: String,
    declines: Vec<String>,
    decisions: Vec<DecisionLine>,
    can_decline: bool,
}

/// The public draw page as a complete HTML document.
pub fn render_draw(view: &DrawView<'_>, lang: Lang, site: &SiteInfo) -> Result<String> {
    let t = Catalog::for_lang(lang);
    let draw = view.draw;
    let spec = &draw.spec;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &draw.pool {
        *counts.entry(m.stratum.as_str()).or_insert(0) += 1;
    }
    let mut strata: Vec<&str> = counts.keys().copied().collect();
    for s in spec.quotas.keys() {
        if !strata.contains(&s.as_str()) {
            strata.push(s);
        }
    }
    let quotas = if spec.strata_key.is_some() {
        strata
            .into_iter()
            .map(|s| {
                let q = spec.quota(s);
                QuotaLine {
                    stratum: stratum_label(s, t),
                    members: counts.get(s).copied().unwrap_or(0),
                    min: q.min,
                    max: q.max.map_or_else(|| "—".to_string(), |m| m.to_string()),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let stratum_of = |name: &str| {
        draw.pool
            .iter()
            .find(|m| m.member == name)
            .map(|m| stratum_label(&m.stratum, t))
            .unwrap_or_default()
    };
    let me = view.member.map(|(m, _, _)| m);
    let seats = draw
        .seated
        .iter()
        .map(|name| SeatLine {
            name: name.clone(),
            stratum: if spec.strata_key.is_some() {
                stratum_of(name)
            } else {
                String::new()
            },
            replaced: draw
                .declines
                .iter()
                .find(|d| d.replacement.as_deref() == Some(name))
                .map(|d| t.tf("sortition.replaces", &[("name", &d.member)])),
            is_me: me == Some(name.as_str()),
        })
        .collect();
    let drawn = draw.drawn.as_ref();
    let mut layout = Layout::new(lang, site, &spec.mandate.title);
    let mut csrf = String::new();
    if let Some((member, roles, token)) = view.member {
        layout = layout.with_nav(member_nav("/sortition", roles, member, token, t));
        csrf = token.to_string();
    }
    let page = DrawTemplate {
        layout,
        id: draw.id,
        title: spec.mandate.title.clone(),
        scope: t.t(scope_key(spec.mandate.scope)).to_string(),
        until_text: t.tf(
            "sortition.until",
            &[("date", &format_date_long(spec.mandate.term_end, lang))],
        ),
        when_text: t.tf(
            "sortition.draw_at_text",
            &[(
                "when",
                &format!(
                    "{} {}",
                    format_date_long(
                        spec.draw_at.with_timezone(&site.timezone).date_naive(),
                        lang
                    ),
                    format_time(spec.draw_at, site.timezone)
                ),
            )],
        ),
        quotas_caption: t.tf(
            "sortition.quotas_by",
            &[("key", spec.strata_key.as_deref().unwrap_or_default())],
        ),
        drawn_with_text: t.tf(
            "sortition.drawn_with",
            &[
                (
                    "rolls",
                    &drawn
                        .map(|d| {
                            d.rolls
                                .iter()
                                .map(u8::to_string)
                                .collect::<Vec<_>>()
                                .join(" · ")
                        })
                        .unwrap_or_default(),
                ),
                (
                    "witnesses",
                    &drawn.map(|d| d.witnesses.join(", ")).unwrap_or_default(),
                ),
            ],
        ),
        size: spec.size,
        pool_size: draw.pool.len(),
        strata_key: spec.strata_key.clone(),
        quotas,
        drawn: drawn.is_some(),
        can_draw: view.can_draw && drawn.is_none(),
        csrf,
        rolls: view.rolls,
        witnesses_text: view.witnesses,
        problems: view.problems,
        reveal: view.reveal,
        seats,
        seed: drawn.map(|d| d.seed.clone()).unwrap_or_default(),
        announcement_hash: draw.announcement_hash.clone(),
        head_hash: drawn.map(|d| d.head_hash.clone()).unwrap_or_default(),
        declines: draw
            .declines
            .iter()
            .map(|d| match &d.replacement {
                Some(r) => t.tf(
                    "sortition.declined_replaced",
                    &[("name", &d.member), ("replacement", r)],
                ),
                None => t.tf("sortition.declined_empty", &[("name", &d.member)]),
            })
            .collect(),
        decisions: view
            .decisions
            .iter()
            .map(|d| DecisionLine {
                date: format_date_long(d.decision.assembly_date, lang),
                what: t
                    .t(match d.kind {
                        EntryKind::ParametersAdopted => "sortition.decided_parameters",
                        _ => "sortition.decided_plan",
                    })
                    .to_string(),
                votes: t.tf(
                    "sortition.decision_votes",
                    &[
                        ("for", &d.decision.votes_for.to_string()),
                        ("against", &d.decision.votes_against.to_string()),
                        ("abstain", &d.decision.votes_abstain.to_string()),
                        ("present", &d.decision.present.to_string()),
                    ],
                ),
                minutes: d.decision.minutes.clone(),
            })
            .collect(),
        can_decline: drawn.is_some() && me.is_some_and(|m| draw.seated.iter().any(|s| s == m)),
    };
    render(&page, "sortition_draw.html")
}
