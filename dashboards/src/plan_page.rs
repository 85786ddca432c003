//! The planning board's page (`/plan`, any signed-in member): the open needs and
//! offers (filtered by class), the signed-in member's matches ("offers for your
//! needs", "needs you could meet"), their commitments with the buttons to accept
//! and release them, and the forms to post a need or an offer and to propose a
//! commitment on someone else's intent. Like the ledger's page, everything here
//! formats and arranges: the `web` crate reads the forms and writes the journal,
//! and hands back every problem as a [`BoardProblem`] to phrase in the reader's
//! language, with the form as typed.

use askama::Template;
use ledger::{
    Action, Commitment, CommitmentState, Direction, Intent, IntentProblem, IntentState, Match,
    PlanningProblem, Quantity, TextField, Unfulfillable, Unit,
};

use crate::layout::{Layout, render};
use crate::{Catalog, Lang, Result, SiteInfo, format_date_long};

/// An intent as the posting form holds it, every value as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntentForm {
    /// `need` or `offer`.
    pub direction: String,
    /// `work`, `use` or `give`.
    pub action: String,
    pub class: String,
    pub quantity: String,
    /// `hours`, `kwh`, `kg` or `items`.
    pub unit: String,
    /// The window's first and last day, `YYYY-MM-DD`, either may be empty.
    pub window_start: String,
    pub window_end: String,
    /// The last day it stays open; empty: the default lifetime.
    pub expires: String,
    pub never_expires: bool,
    pub description: String,
    /// A need of the whole community (members of the assembly).
    pub collective: bool,
    /// Shown to the federation too (in the node's public summary, without the
    /// author's name).
    pub federation: bool,
}

/// A commitment as its form (under someone else's intent) holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitForm {
    pub quantity: String,
    pub note: String,
}

/// Every form of the page, as typed (or as first offered).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanForms {
    pub intent: IntentForm,
    /// The commitment typed under intent `.0` that was refused.
    pub commit: Option<(i64, CommitForm)>,
    /// The reason typed to release commitment `.0` that was refused.
    pub release: Option<(i64, String)>,
    /// The interests as typed, when they were refused.
    pub interests: Option<String>,
}

/// A field of the planning board's forms that a message can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoardField {
    Direction,
    Action,
    Class,
    Quantity,
    Unit,
    WindowStart,
    WindowEnd,
    Expires,
    Description,
    Note,
    Reason,
}

impl BoardField {
    fn key(self) -> &'static str {
        match self {
            BoardField::Direction => "plan.direction",
            BoardField::Action => "plan.action",
            BoardField::Class => "plan.class",
            BoardField::Quantity => "plan.quantity",
            BoardField::Unit => "plan.unit",
            BoardField::WindowStart => "plan.window_start",
            BoardField::WindowEnd => "plan.window_end",
            BoardField::Expires => "plan.expires",
            BoardField::Description => "plan.description",
            BoardField::Note => "plan.note",
            BoardField::Reason => "plan.reason",
        }
    }
}

/// Why a form of the planning board could not be used, one item per problem.
#[derive(Debug, Clone, PartialEq)]
pub enum BoardProblem {
    /// The form sent a field the page does not have.
    UnknownField {
        name: String,
    },
    Missing(BoardField),
    NotANumber {
        field: BoardField,
        value: String,
    },
    NotADate {
        field: BoardField,
        value: String,
    },
    /// A direction, action or unit that is not one of those offered.
    UnknownChoice {
        field: BoardField,
        value: String,
    },
    /// Not more than 0, more than the most, or more than two decimals.
    Quantity {
        value: String,
    },
    /// Not lowercase letters, digits, `-` and `_`, or too long.
    Class {
        value: String,
    },
    DescriptionEmpty,
    TooLong {
        field: BoardField,
        chars: usize,
        max: usize,
    },
    /// The window's last day is before its first.
    WindowOrder,
    /// A date that is already past (the window's end, the expiry).
    DatePast {
        field: BoardField,
    },
    /// An expiry given together with "never expires".
    ExpiryAndNever,
    /// Only a need can be collective.
    CollectiveOffer,
    /// A collective need is posted by a member of the assembly.
    AssemblyOnly,
    /// A path naming no intent or commitment: ids are whole numbers.
    NotAnId {
        value: String,
    },
    NoSuchIntent {
        id: i64,
    },
    NoSuchCommitment {
        id: i64,
    },
    IntentNotOpen {
        id: i64,
        state: IntentState,
    },
    OverCommitment {
        remaining: Quantity,
        asked: Quantity,
        unit: Option<Unit>,
    },
    /// Not the side of the commitment that may do this.
    NotAParty,
    /// What the journal found wrong with an intent, a commitment or a release
    /// (what the page's own checks let through, such as a control character).
    Intent(IntentProblem),
    /// A rule of the planning board the act breaks.
    Planning(PlanningProblem),
    /// A saved interest that is not a class.
    Interests {
        value: String,
    },
    UnknownMember {
        name: String,
    },
    /// What the ledger said, in English, when none of the above fits.
    Other(String),
}

/// Which form a list of problems belongs to: they are shown beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoardTarget {
    /// Not one form's: shown at the top.
    General,
    Intent,
    /// The commitment form under intent `id`.
    Commit(i64),
    /// The accept and release buttons of commitment `id`.
    Commitment(i64),
    /// The form of saved interests.
    Interests,
}

/// What the page confirms after a form was recorded (the redirect's query).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoardConfirmation {
    Posted { id: i64 },
    Proposed { id: i64 },
    Accepted { id: i64 },
    Released { id: i64 },
    InterestsSaved,
}

/// What the page shows.
#[derive(Debug, Clone)]
pub struct PlanView<'a> {
    pub member: &'a str,
    pub roles: &'a [ledger::Role],
    /// Holds the role `resident`: may post, commit, accept and release.
    pub resident: bool,
    /// Holds the role `assembly`: may post collective needs.
    pub assembly: bool,
    pub csrf: &'a str,
    /// The open intents shown (already filtered by `class`), newest first.
    pub intents: &'a [Intent],
    /// The class filter, if any.
    pub class: Option<&'a str>,
    /// The classes of every open intent, for the filter.
    pub classes: &'a [String],
    pub matches: &'a [Match],
    /// The signed-in member's commitments, newest first.
    pub commitments: &'a [Commitment],
    /// Intents of the commitments, to describe them.
    pub all_intents: &'a [Intent],
    pub forms: &'a PlanForms,
    pub problems: &'a [BoardProblem],
    pub problems_for: Option<BoardTarget>,
    pub confirmation: Option<BoardConfirmation>,
    /// The member's saved interest classes.
    pub interests: &'a [String],
    /// The open intents of others in those classes, newest first.
    pub interest_matches: &'a [Intent],
    /// When the member looked at the board before this visit: what was posted
    /// after is marked new.
    pub seen_before: Option<chrono::DateTime<chrono::Utc>>,
    /// The count of new matches for the navigation (0 on this page: it is being
    /// looked at).
    pub new_matches: usize,
    /// The transfers that name an intent they pay for.
    pub payments: &'a [ledger::Transfer],
}

/// `1,5` or `1.5`.
pub fn quantity_text(q: Quantity, lang: Lang) -> String {
    match lang {
        Lang::Fr => q.to_string().replace('.', ","),
        Lang::En => q.to_string(),
    }
}

/// `1,5 h`, `3 kWh`.
pub fn quantity_with_unit(q: Quantity, unit: Unit, lang: Lang) -> String {
    let t = Catalog::for_lang(lang);
    t.tf(unit_key(unit), &[("n", &quantity_text(q, lang))])
}

fn unit_key(unit: Unit) -> &'static str {
    match unit {
        Unit::Hours => "plan.unit_hours",
        Unit::Kwh => "plan.unit_kwh",
        Unit::Kg => "plan.unit_kg",
        Unit::Items => "plan.unit_items",
    }
}

fn unit_name_key(unit: Unit) -> &'static str {
    match unit {
        Unit::Hours => "plan.unit_name_hours",
        Unit::Kwh => "plan.unit_name_kwh",
        Unit::Kg => "plan.unit_name_kg",
        Unit::Items => "plan.unit_name_items",
    }
}

fn action_key(action: Action) -> &'static str {
    match action {
        Action::Work => "plan.action_work",
        Action::Use => "plan.action_use",
        Action::Give => "plan.action_give",
    }
}

fn direction_key(direction: Direction) -> &'static str {
    match direction {
        Direction::Need => "plan.need",
        Direction::Offer => "plan.offer",
    }
}

fn intent_state_key(state: IntentState) -> &'static str {
    match state {
        IntentState::Open => "plan.state_open",
        IntentState::Closed => "plan.state_closed",
        IntentState::Expired => "plan.state_expired",
    }
}

fn commitment_state_key(state: CommitmentState) -> &'static str {
    match state {
        CommitmentState::Proposed => "plan.commitment_proposed",
        CommitmentState::Accepted => "plan.commitment_accepted",
        CommitmentState::Fulfilled => "plan.commitment_fulfilled",
        CommitmentState::Released => "plan.commitment_released",
        CommitmentState::Certified => "plan.commitment_certified",
    }
}

/// The node's certification of a load shift, in one sentence: what the household's
/// meters measured against their baseline, or why nothing could be.
fn certification_text(c: &ledger::LoadShiftCertification, lang: Lang) -> String {
    let t = Catalog::for_lang(lang);
    let kwh = |v: f64| {
        let q = Quantity::from_centi((v * 100.0).round() as i64);
        quantity_with_unit(q, Unit::Kwh, lang)
    };
    match (c.basis, c.measured_kwh, c.baseline_kwh) {
        (ledger::LoadShiftBasis::Metered, Some(measured), Some(baseline)) => t.tf(
            "plan.certified_metered",
            &[
                ("measured", &kwh(measured)),
                ("baseline", &kwh(baseline)),
                ("days", &c.baseline_days.to_string()),
                ("quantity", &quantity_with_unit(c.quantity, Unit::Kwh, lang)),
            ],
        ),
        (ledger::LoadShiftBasis::NoMeter, ..) => t.t("plan.certified_no_meter").to_string(),
        (ledger::LoadShiftBasis::NoReadings, ..) => t.t("plan.certified_no_readings").to_string(),
        _ => t.t("plan.certified_no_baseline").to_string(),
    }
}

/// Who posted an intent, as the page names them: the node's own needs are said to
/// be the node's.
pub fn author_name(author: &str, lang: Lang) -> String {
    if author == ledger::NODE_AUTHOR {
        Catalog::for_lang(lang).t("plan.by_node").to_string()
    } else {
        author.to_string()
    }
}

/// A problem with a form of the planning board, in plain words naming the field.
pub fn board_problem_text(problem: &BoardProblem, lang: Lang) -> String {
    let t = Catalog::for_lang(lang);
    let label = |field: &BoardField| t.t(field.key()).to_string();
    match problem {
        BoardProblem::UnknownField { name } => {
            t.tf("plan.problem_unknown_field", &[("field", name)])
        }
        BoardProblem::Missing(field) => t.tf("plan.problem_missing", &[("field", &label(field))]),
        BoardProblem::NotANumber { field, value } => t.tf(
            "plan.problem_not_a_number",
            &[("field", &label(field)), ("value", value)],
        ),
        BoardProblem::NotADate { field, value } => t.tf(
            "plan.problem_not_a_date",
            &[("field", &label(field)), ("value", value)],
        ),
        BoardProblem::UnknownChoice { field, value } => t.tf(
            "plan.problem_choice",
            &[("field", &label(field)), ("value", value)],
        ),
        BoardProblem::Quantity { value } => t.tf(
            "plan.problem_quantity",
            &[
                ("value", value),
                ("max", &format!("{}", ledger::MAX_QUANTITY)),
            ],
        ),
        BoardProblem::Class { value } => t.tf(
            "plan.problem_class",
            &[
                ("value", value),
                ("max", &ledger::MAX_CLASS_CHARS.to_string()),
            ],
        ),
        BoardProblem::DescriptionEmpty => t.t("plan.problem_description_empty").to_string(),
        BoardProblem::TooLong { field, chars, max } => t.tf(
            "plan.problem_too_long",
            &[
                ("field", &label(field)),
                ("chars", &chars.to_string()),
                ("max", &max.to_string()),
            ],
        ),
        BoardProblem::WindowOrder => t.t("plan.problem_window_order").to_string(),
        BoardProblem::DatePast { field } => {
            t.tf("plan.problem_date_past", &[("field", &label(field))])
        }
        BoardProblem::ExpiryAndNever => t.t("plan.problem_expiry_and_never").to_string(),
        BoardProblem::CollectiveOffer => t.t("plan.problem_collective_offer").to_string(),
        BoardProblem::AssemblyOnly => t.t("plan.problem_assembly_only").to_string(),
        BoardProblem::NotAnId { value } => t.tf("plan.problem_not_an_id", &[("value", value)]),
        BoardProblem::NoSuchIntent { id } => {
            t.tf("plan.problem_no_intent", &[("id", &id.to_string())])
        }
        BoardProblem::NoSuchCommitment { id } => {
            t.tf("plan.problem_no_commitment", &[("id", &id.to_string())])
        }
        BoardProblem::IntentNotOpen { id, state } => t.tf(
            "plan.problem_not_open",
            &[
                ("id", &id.to_string()),
                ("state", t.t(intent_state_key(*state))),
            ],
        ),
        BoardProblem::OverCommitment {
            remaining,
            asked,
            unit,
        } => {
            let q = |q: Quantity| match unit {
                Some(u) => quantity_with_unit(q, *u, lang),
                None => quantity_text(q, lang),
            };
            t.tf(
                "plan.problem_over",
                &[("remaining", &q(*remaining)), ("asked", &q(*asked))],
            )
        }
        BoardProblem::NotAParty => t.t("plan.problem_not_a_party").to_string(),
        BoardProblem::Intent(p) => intent_problem_text(p, lang),
        BoardProblem::Interests { value } => t.tf(
            "plan.problem_interest_class",
            &[
                ("value", value),
                ("max", &ledger::MAX_CLASS_CHARS.to_string()),
            ],
        ),
        BoardProblem::Planning(p) => planning_problem_text(p, lang),
        BoardProblem::UnknownMember { name } => {
            t.tf("plan.problem_unknown_member", &[("name", name)])
        }
        BoardProblem::Other(text) => text.clone(),
    }
}

fn text_field(field: TextField) -> BoardField {
    match field {
        TextField::Description => BoardField::Description,
        TextField::Note => BoardField::Note,
        TextField::Reason => BoardField::Reason,
    }
}

/// What the journal found wrong with an intent, a commitment or a release, in the
/// page's words.
fn intent_problem_text(problem: &IntentProblem, lang: Lang) -> String {
    let t = Catalog::for_lang(lang);
    let label = |field: BoardField| t.t(field.key()).to_string();
    let max_quantity = format!("{}", ledger::MAX_QUANTITY);
    let quantity = |q: &f64| {
        t.tf(
            "plan.problem_quantity",
            &[("value", &q.to_string()), ("max", &max_quantity)],
        )
    };
    let class = |value: &str| {
        t.tf(
            "plan.problem_class",
            &[
                ("value", value),
                ("max", &ledger::MAX_CLASS_CHARS.to_string()),
            ],
        )
    };
    match problem {
        IntentProblem::ClassEmpty => t.tf(
            "plan.problem_missing",
            &[("field", &label(BoardField::Class))],
        ),
        IntentProblem::ClassTooLong => class(""),
        IntentProblem::ClassCharacters { class: value } => class(value),
        IntentProblem::QuantityNotPositive { quantity: q }
        | IntentProblem::QuantityTooLarge { quantity: q }
        | IntentProblem::QuantityTooPrecise { quantity: q } => quantity(q),
        IntentProblem::WindowOrder { .. } => t.t("plan.problem_window_order").to_string(),
        IntentProblem::WindowEnded { .. } => t.tf(
            "plan.problem_date_past",
            &[("field", &label(BoardField::WindowEnd))],
        ),
        IntentProblem::ExpiryAndNever => t.t("plan.problem_expiry_and_never").to_string(),
        IntentProblem::ExpiryPast { .. } => t.tf(
            "plan.problem_date_past",
            &[("field", &label(BoardField::Expires))],
        ),
        IntentProblem::TextEmpty {
            field: TextField::Description,
        } => t.t("plan.problem_description_empty").to_string(),
        IntentProblem::TextEmpty { field } => t.tf(
            "plan.problem_missing",
            &[("field", &label(text_field(*field)))],
        ),
        IntentProblem::TextTooLong { field, chars, max } => t.tf(
            "plan.problem_too_long",
            &[
                ("field", &label(text_field(*field))),
                ("chars", &chars.to_string()),
                ("max", &max.to_string()),
            ],
        ),
        IntentProblem::TextControlCharacter { field } => t.tf(
            "plan.problem_control",
            &[("field", &label(text_field(*field)))],
        ),
        IntentProblem::CollectiveOffer => t.t("plan.problem_collective_offer").to_string(),
        IntentProblem::TooManyInterests { count, max } => t.tf(
            "plan.problem_too_many_interests",
            &[("count", &count.to_string()), ("max", &max.to_string())],
        ),
    }
}

/// A rule of the planning board an act breaks, in the page's words.
fn planning_problem_text(problem: &PlanningProblem, lang: Lang) -> String {
    let t = Catalog::for_lang(lang);
    let with_id = |key: &str, id: &i64| t.tf(key, &[("id", &id.to_string())]);
    match problem {
        PlanningProblem::OwnIntent { intent, .. } => with_id("plan.problem_own_intent", intent),
        PlanningProblem::Released { commitment } => with_id("plan.problem_released", commitment),
        PlanningProblem::AlreadyAccepted { commitment } => {
            with_id("plan.problem_already_accepted", commitment)
        }
        PlanningProblem::AlreadyReleased { commitment } => {
            with_id("plan.problem_already_released", commitment)
        }
        PlanningProblem::NothingToRelease { commitment } => {
            with_id("plan.problem_nothing_to_release", commitment)
        }
        PlanningProblem::CannotFulfil { commitment, why } => {
            let key = match why {
                Unfulfillable::NotAccepted => "plan.problem_cannot_fulfil_not_accepted",
                Unfulfillable::Released => "plan.problem_cannot_fulfil_released",
                Unfulfillable::Fulfilled => "plan.problem_cannot_fulfil_fulfilled",
            };
            with_id(key, commitment)
        }
        PlanningProblem::NotYourIntent { intent } => {
            with_id("plan.problem_not_your_intent", intent)
        }
        PlanningProblem::RepairNotFulfilled { intent } => {
            with_id("plan.problem_repair_not_fulfilled", intent)
        }
        PlanningProblem::AlreadyClosed { intent } => with_id("plan.problem_already_closed", intent),
        PlanningProblem::NotPartyToIntent { member, intent } => t.tf(
            "plan.problem_not_party_to_intent",
            &[("member", member), ("id", &intent.to_string())],
        ),
        PlanningProblem::Inconsistent(_) => t.t("plan.problem_inconsistent").to_string(),
    }
}

struct Choice {
    value: String,
    label: String,
    selected: bool,
}

struct FilterLink {
    href: String,
    label: String,
    current: bool,
}

struct IntentLine {
    id: i64,
    direction: &'static str,
    title: String,
    description: String,
    details: String,
    /// The commitment form is offered (someone else's open intent, a resident).
    can_commit: bool,
    commit_quantity: String,
    commit_note: String,
    commit_max: String,
    commit_label: String,
    problems: Vec<String>,
    /// The transfers that paid for it.
    payments: Vec<String>,
}

struct IntentSection {
    id: &'static str,
    heading: String,
    empty: String,
    lines: Vec<IntentLine>,
}

struct MatchLine {
    yours: String,
    theirs: String,
    theirs_id: i64,
}

struct CommitmentLine {
    id: i64,
    state_code: &'static str,
    text: String,
    state_text: String,
    can_accept: bool,
    can_release: bool,
    reason: String,
    problems: Vec<String>,
    /// The node's certification of a load shift, when it made one.
    certification: Option<String>,
}

/// An open intent in one of the member's saved interests.
struct InterestLine {
    id: i64,
    title: String,
    description: String,
    new: bool,
}

#[derive(Template)]
#[template(path = "plan.html")]
struct PlanTemplate<'a> {
    csrf: &'a str,
    resident: bool,
    assembly: bool,
    confirmation: Option<String>,
    general_problems: Vec<String>,
    filters: Vec<FilterLink>,
    sections: Vec<IntentSection>,
    for_needs: Vec<MatchLine>,
    for_offers: Vec<MatchLine>,
    interest_lines: Vec<InterestLine>,
    interests_value: String,
    interests_problems: Vec<String>,
    commitments: Vec<CommitmentLine>,
    intent_form: &'a IntentForm,
    directions: Vec<Choice>,
    actions: Vec<Choice>,
    units: Vec<Choice>,
    intent_problems: Vec<String>,
    lang_query: String,
    layout: Layout<'a>,
}

/// "Need · work · electrician · 2 h, by rita" and its window / expiry line.
fn intent_title(i: &Intent, lang: Lang) -> String {
    let t = Catalog::for_lang(lang);
    t.tf(
        if i.collective {
            "plan.intent_title_collective"
        } else {
            "plan.intent_title"
        },
        &[
            ("id", &i.id.to_string()),
            ("direction", t.t(direction_key(i.direction))),
            ("action", t.t(action_key(i.action))),
            ("class", &i.class),
            ("quantity", &quantity_with_unit(i.quantity, i.unit, lang)),
            ("member", &author_name(&i.author, lang)),
        ],
    )
}

fn intent_details(i: &Intent, lang: Lang, tz: chrono_tz::Tz) -> String {
    let t = Catalog::for_lang(lang);
    let day = |at: chrono::DateTime<chrono::Utc>| {
        format_date_long(at.with_timezone(&tz).date_naive(), lang)
    };
    let mut parts = vec![t.tf(
        "plan.remaining",
        &[
            ("remaining", &quantity_with_unit(i.remaining, i.unit, lang)),
            ("fulfilled", &quantity_with_unit(i.fulfilled, i.unit, lang)),
        ],
    )];
    match (i.window_start, i.window_end) {
        (None, None) => {}
        (Some(s), None) => parts.push(t.tf("plan.window_from", &[("start", &day(s))])),
        (None, Some(e)) => parts.push(t.tf("plan.window_until", &[("end", &day(e))])),
        (Some(s), Some(e)) => parts.push(t.tf(
            "plan.window_between",
            &[("start", &day(s)), ("end", &day(e))],
        )),
    }
    parts.push(match i.expires_at {
        Some(at) => t.tf("plan.expires_on", &[("date", &day(at))]),
        None => t.t("plan.never_expires_text").to_string(),
    });
    parts.push(t.t(intent_state_key(i.state)).to_string());
    parts.join(" · ")
}

/// The page as a complete HTML document.
pub fn render_plan(view: &PlanView<'_>, lang: Lang, site: &SiteInfo) -> Result<String> {
    let t = Catalog::for_lang(lang);
    // Problems about an intent or a commitment the page does not list (an expired
    // intent, someone else's commitment) are shown at the top, never lost.
    let problems_for = view.problems_for.map(|target| match target {
        BoardTarget::Commit(id) if !view.intents.iter().any(|i| i.id == id) => BoardTarget::General,
        BoardTarget::Commitment(id) if !view.commitments.iter().any(|c| c.id == id) => {
            BoardTarget::General
        }
        other => other,
    });
    let problems_of = |target: BoardTarget| -> Vec<String> {
        if problems_for == Some(target) {
            view.problems
                .iter()
                .map(|p| board_problem_text(p, lang))
                .collect()
        } else {
            Vec::new()
        }
    };
    let line = |i: &Intent| {
        let mine = i.author == view.member || (view.assembly && i.collective);
        let typed = match &view.forms.commit {
            Some((id, form)) if *id == i.id => Some(form.clone()),
            _ => None,
        };
        IntentLine {
            id: i.id,
            direction: i.direction.as_str(),
            title: intent_title(i, lang),
            description: i.description.clone(),
            details: intent_details(i, lang, site.timezone),
            can_commit: view.resident
                && !mine
                && i.state == IntentState::Open
                && i.remaining > Quantity::ZERO,
            commit_quantity: typed
                .as_ref()
                .map_or_else(|| i.remaining.to_string(), |f| f.quantity.clone()),
            commit_note: typed.map(|f| f.note).unwrap_or_default(),
            commit_max: i.remaining.to_string(),
            commit_label: t
                .t(match i.direction {
                    Direction::Need => "plan.commit_provide",
                    Direction::Offer => "plan.commit_receive",
                })
                .to_string(),
            problems: problems_of(BoardTarget::Commit(i.id)),
            payments: view
                .payments
                .iter()
                .filter(|p| p.intent == Some(i.id))
                .map(|p| {
                    t.tf(
                        "plan.paid",
                        &[
                            ("amount", &crate::format_communs(p.amount, lang)),
                            ("from", &p.from),
                            ("to", &p.to),
                        ],
                    )
                })
                .collect(),
        }
    };
    let section = |direction: Direction, id, heading, empty| IntentSection {
        id,
        heading: t.t(heading).to_string(),
        empty: t.t(empty).to_string(),
        lines: view
            .intents
            .iter()
            .filter(|i| i.direction == direction)
            .map(line)
            .collect(),
    };
    let sections = vec![
        section(Direction::Need, "needs", "plan.open_needs", "plan.no_needs"),
        section(
            Direction::Offer,
            "offers",
            "plan.open_offers",
            "plan.no_offers",
        ),
    ];
    let match_line = |m: &Match| MatchLine {
        yours: intent_title(&m.yours, lang),
        theirs: intent_title(&m.theirs, lang),
        theirs_id: m.theirs.id,
    };
    let for_needs = view
        .matches
        .iter()
        .filter(|m| m.yours.direction == Direction::Need)
        .map(match_line)
        .collect();
    let for_offers = view
        .matches
        .iter()
        .filter(|m| m.yours.direction == Direction::Offer)
        .map(match_line)
        .collect();

    let commitments = view
        .commitments
        .iter()
        .map(|c| {
            let intent = view.all_intents.iter().find(|i| i.id == c.intent);
            let collective_side =
                view.assembly && intent.is_some_and(|i| i.collective && i.author == c.receiver);
            let my_side = c.provider == view.member || c.receiver == view.member || collective_side;
            // The side that did not propose accepts.
            let proposer_is_provider = c.proposed_by == c.provider;
            let other_side_is_me = if proposer_is_provider {
                c.receiver == view.member || collective_side
            } else {
                c.provider == view.member
            };
            let open = matches!(
                c.state,
                CommitmentState::Proposed | CommitmentState::Accepted
            );
            let reason = match &view.forms.release {
                Some((id, r)) if *id == c.id => r.clone(),
                _ => String::new(),
            };
            CommitmentLine {
                id: c.id,
                state_code: c.state.as_str(),
                text: t.tf(
                    "plan.commitment_text",
                    &[
                        ("id", &c.id.to_string()),
                        ("provider", &c.provider),
                        ("receiver", &c.receiver),
                        ("quantity", &quantity_with_unit(c.quantity, c.unit, lang)),
                        ("class", &c.class),
                        ("intent", &c.intent.to_string()),
                    ],
                ),
                state_text: t.tf(
                    "plan.commitment_state",
                    &[
                        ("state", t.t(commitment_state_key(c.state))),
                        ("fulfilled", &quantity_with_unit(c.fulfilled, c.unit, lang)),
                    ],
                ),
                can_accept: view.resident
                    && c.state == CommitmentState::Proposed
                    && other_side_is_me
                    && c.proposed_by != view.member,
                can_release: view.resident && my_side && open,
                reason,
                problems: problems_of(BoardTarget::Commitment(c.id)),
                certification: c
                    .certification
                    .as_ref()
                    .map(|c| certification_text(c, lang)),
            }
        })
        .collect();

    let confirmation = view.confirmation.map(|c| match c {
        BoardConfirmation::Posted { id } => t.tf("plan.done_posted", &[("id", &id.to_string())]),
        BoardConfirmation::Proposed { id } => {
            t.tf("plan.done_proposed", &[("id", &id.to_string())])
        }
        BoardConfirmation::Accepted { id } => {
            t.tf("plan.done_accepted", &[("id", &id.to_string())])
        }
        BoardConfirmation::Released { id } => {
            t.tf("plan.done_released", &[("id", &id.to_string())])
        }
        BoardConfirmation::InterestsSaved => t.t("plan.done_interests").to_string(),
    });
    let interest_lines = view
        .interest_matches
        .iter()
        .map(|i| InterestLine {
            id: i.id,
            title: intent_title(i, lang),
            description: i.description.clone(),
            new: view.seen_before.is_none_or(|s| i.posted_at > s),
        })
        .collect();
    let interests_value = view
        .forms
        .interests
        .clone()
        .unwrap_or_else(|| view.interests.join(" "));

    let mut filters = vec![FilterLink {
        href: "/plan".into(),
        label: t.t("plan.all_classes").to_string(),
        current: view.class.is_none(),
    }];
    filters.extend(view.classes.iter().map(|c| FilterLink {
        href: format!("/plan?class={c}"),
        label: c.clone(),
        current: view.class == Some(c.as_str()),
    }));

    let form = &view.forms.intent;
    let page = PlanTemplate {
        csrf: view.csrf,
        resident: view.resident,
        assembly: view.assembly,
        confirmation,
        general_problems: problems_of(BoardTarget::General),
        filters,
        sections,
        for_needs,
        for_offers,
        interest_lines,
        interests_value,
        interests_problems: problems_of(BoardTarget::Interests),
        commitments,
        intent_form: form,
        directions: [Direction::Need, Direction::Offer]
            .into_iter()
            .map(|d| Choice {
                value: d.as_str().into(),
                label: t.t(direction_key(d)).into(),
                selected: form.direction == d.as_str(),
            })
            .collect(),
        actions: Action::ALL
            .into_iter()
            .map(|a| Choice {
                value: a.as_str().into(),
                label: t.t(action_key(a)).into(),
                selected: form.action == a.as_str(),
            })
            .collect(),
        units: Unit::ALL
            .into_iter()
            .map(|u| Choice {
                value: u.as_str().into(),
                label: t.t(unit_name_key(u)).into(),
                selected: form.unit == u.as_str(),
            })
            .collect(),
        intent_problems: problems_of(BoardTarget::Intent),
        lang_query: view
            .class
            .map(|c| format!("class={c}&"))
            .unwrap_or_default(),
        layout: Layout::new(lang, site, t.t("plan.title")).with_nav(
            crate::nav::member_nav("/plan", view.roles, view.member, view.csrf, t)
                .with_new_matches(view.new_matches, t),
        ),
    };
    render(&page, "plan.html")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The node's certification says what was measured, against what, and what
    /// counted, in each language's numbers; and why nothing counted otherwise.
    #[test]
    fn a_certification_says_what_the_meters_measured() {
        let metered = ledger::LoadShiftCertification {
            seq: 12,
            certified_at: chrono::Utc::now(),
            household: Some("martin".into()),
            basis: ledger::LoadShiftBasis::Metered,
            measured_kwh: Some(3.3),
            baseline_kwh: Some(1.8),
            baseline_days: 7,
            quantity: Quantity::from_centi(150),
        };
        let fr = certification_text(&metered, Lang::Fr);
        for part in ["3,3 kWh", "1,8 kWh", "7 jours", "1,5 kWh"] {
            assert!(fr.contains(part), "{part} in {fr}");
        }
        let en = certification_text(&metered, Lang::En);
        for part in ["3.3 kWh", "1.8 kWh", "7 days", "1.5 kWh"] {
            assert!(en.contains(part), "{part} in {en}");
        }
        let mut texts = std::collections::BTreeSet::new();
        for basis in [
            ledger::LoadShiftBasis::NoMeter,
            ledger::LoadShiftBasis::NoReadings,
            ledger::LoadShiftBasis::NoBaseline,
        ] {
            let nothing = ledger::LoadShiftCertification {
                basis,
                measured_kwh: None,
                baseline_kwh: None,
                quantity: Quantity::ZERO,
                ..metered.clone()
            };
            for lang in [Lang::Fr, Lang::En] {
                let text = certification_text(&nothing, lang);
                assert!(!text.contains("plan."), "{text}");
                texts.insert(text);
            }
        }
        assert_eq!(texts.len(), 6, "each reason said apart: {texts:#?}");
    }

    /// Keys chosen at run time, which the catalog test cannot see.
    #[test]
    fn every_choice_state_and_problem_is_phrased_in_both_languages() {
        let problems = [
            BoardProblem::UnknownField { name: "x".into() },
            BoardProblem::Missing(BoardField::Class),
            BoardProblem::NotANumber {
                field: BoardField::Quantity,
                value: "abc".into(),
            },
            BoardProblem::NotADate {
                field: BoardField::Expires,
                value: "demain".into(),
            },
            BoardProblem::UnknownChoice {
                field: BoardField::Unit,
                value: "litres".into(),
            },
            BoardProblem::Quantity { value: "0".into() },
            BoardProblem::Class {
                value: "Bike Repair".into(),
            },
            BoardProblem::DescriptionEmpty,
            BoardProblem::TooLong {
                field: BoardField::Note,
                chars: 600,
                max: 500,
            },
            BoardProblem::WindowOrder,
            BoardProblem::DatePast {
                field: BoardField::WindowEnd,
            },
            BoardProblem::ExpiryAndNever,
            BoardProblem::CollectiveOffer,
            BoardProblem::AssemblyOnly,
            BoardProblem::NotAnId { value: "x".into() },
            BoardProblem::NoSuchIntent { id: 3 },
            BoardProblem::NoSuchCommitment { id: 4 },
            BoardProblem::IntentNotOpen {
                id: 3,
                state: IntentState::Expired,
            },
            BoardProblem::OverCommitment {
                remaining: Quantity::from_centi(100),
                asked: Quantity::from_centi(250),
                unit: Some(Unit::Hours),
            },
            BoardProblem::NotAParty,
        ];
        for lang in Lang::ALL {
            let t = Catalog::for_lang(lang);
            for problem in &problems {
                let text = board_problem_text(problem, lang);
                assert!(
                    !text.contains('{') && !text.contains("plan."),
                    "{lang}: {text}"
                );
            }
            for field in [
                BoardField::Direction,
                BoardField::Action,
                BoardField::Class,
                BoardField::Quantity,
                BoardField::Unit,
                BoardField::WindowStart,
                BoardField::WindowEnd,
                BoardField::Expires,
                BoardField::Description,
                BoardField::Note,
                BoardField::Reason,
            ] {
                assert_ne!(t.t(field.key()), field.key(), "{lang}");
            }
            for u in Unit::ALL {
                assert_ne!(t.t(unit_key(u)), unit_key(u), "{lang}");
                assert_ne!(t.t(unit_name_key(u)), unit_name_key(u), "{lang}");
            }
            for a in Action::ALL {
                assert_ne!(t.t(action_key(a)), action_key(a), "{lang}");
            }
            for d in [Direction::Need, Direction::Offer] {
                assert_ne!(t.t(direction_key(d)), direction_key(d), "{lang}");
            }
            for s in [IntentState::Open, IntentState::Closed, IntentState::Expired] {
                assert_ne!(t.t(intent_state_key(s)), intent_state_key(s), "{lang}");
            }
            for s in [
                CommitmentState::Proposed,
                CommitmentState::Accepted,
                CommitmentState::Fulfilled,
                CommitmentState::Released,
                CommitmentState::Certified,
            ] {
                assert_ne!(t.t(commitment_state_key(s)), commitment_state_key(s));
            }
        }
        assert_eq!(
            quantity_with_unit(Quantity::from_centi(150), Unit::Hours, Lang::Fr),
            "1,5 h"
        );
        assert_eq!(
            quantity_with_unit(Quantity::from_centi(150), Unit::Kwh, Lang::En),
            "1.5 kWh"
        );
    }
}
