//! The contribution ledger's page (`/ledger`): every member's balance now and in
//! 30 days, the commons and all that was minted, the journal's verification, recent
//! contributions with their attestations, the signed-in member's transfers, the
//! parameters in force and their history; and the forms to record a contribution,
//! attest others', transfer Communs and (for the assembly) adopt new parameters.
//! Everything here formats and arranges: the forms are read, and the journal
//! written, by the `web` crate, which hands back every problem as a
//! [`LedgerProblem`] to phrase in the reader's language, with the form as typed.

use askama::Template;
use ledger::{
    AdoptedParameters, Balances, Category, Communs, Contribution, ContributionProblem,
    ContributionState, DecisionProblem, LedgerParameters, Transfer, Verdict, VerifyReport,
};

use crate::assembly::{decision_problem_text, decision_sentence, rule_in_force_key, rule_name_key};
use crate::pages::ASSET_VERSION;
use crate::{
    Catalog, Error, Lang, Result, SiteInfo, format_communs, format_communs_exact, format_date_long,
};

/// How far ahead the page projects balances, in days.
pub const PROJECTION_DAYS: i64 = 30;

/// A contribution as the form holds it, every value as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContributionForm {
    pub category: String,
    pub hours: String,
    pub date: String,
    pub description: String,
}

/// A transfer as the form holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransferForm {
    pub to: String,
    pub amount: String,
    pub memo: String,
}

/// The ledger parameters and their decision record as the assembly's form holds
/// them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParametersForm {
    pub attestations_needed: String,
    /// One rate per category, in [`Category::ALL`] order, in Communs per hour.
    pub rates: Vec<(Category, String)>,
    /// In percent per period ("2" is 2 %).
    pub demurrage_rate_pct: String,
    pub demurrage_period_days: String,
    /// `simple`, `two_thirds` or `consent`; empty keeps the rule in force.
    pub decision_rule: String,
    pub assembly_date: String,
    pub votes_for: String,
    pub votes_against: String,
    pub votes_abstain: String,
    pub quorum_required: String,
    pub present: String,
    pub minutes: String,
}

impl ParametersForm {
    /// The form filled with `parameters` (those in force) and an empty decision
    /// record dated `today`.
    pub fn from_parameters(parameters: &LedgerParameters, today: chrono::NaiveDate) -> Self {
        ParametersForm {
            attestations_needed: parameters.attestations_needed.to_string(),
            rates: Category::ALL
                .into_iter()
                .map(|c| (c, parameters.rate(c).to_string()))
                .collect(),
            demurrage_rate_pct: ppm_as_percent(parameters.demurrage_rate_ppm),
            demurrage_period_days: parameters.demurrage_period_days.to_string(),
            decision_rule: parameters.decision_rule.as_str().to_string(),
            assembly_date: today.format("%Y-%m-%d").to_string(),
            ..ParametersForm::default()
        }
    }
}

/// "2" for 20 000 ppm, "2.5" for 25 000, as a form field (a dot: browsers'
/// number fields want one).
fn ppm_as_percent(ppm: u32) -> String {
    let whole = ppm / 10_000;
    let frac = ppm % 10_000;
    if frac == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{}", format!("{frac:04}").trim_end_matches('0'))
    }
}

/// Every form of the page, as typed (or as first offered).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerForms {
    pub contribution: ContributionForm,
    pub transfer: TransferForm,
    /// The comment typed on an attestation that was refused, by contribution id.
    pub attestation: Option<(i64, String)>,
    pub parameters: ParametersForm,
}

/// Which form a list of problems belongs to: they are shown beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormTarget {
    /// Not one form's: shown at the top (e.g. a contribution that does not exist).
    General,
    Contribution,
    Transfer,
    Attestation(i64),
    Parameters,
}

/// A field of the page's forms that a message can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerField {
    Category,
    Hours,
    Date,
    Description,
    Verdict,
    Comment,
    To,
    Amount,
    Memo,
    AttestationsNeeded,
    Rate(Category),
    DemurrageRate,
    DemurragePeriod,
    AssemblyDate,
    VotesFor,
    VotesAgainst,
    VotesAbstain,
    QuorumRequired,
    Present,
    Minutes,
}

/// Why a form could not be recorded, one item per problem.
#[derive(Debug, Clone, PartialEq)]
pub enum LedgerProblem {
    /// The form sent a field the page does not have.
    UnknownField {
        name: String,
    },
    Missing(LedgerField),
    NotANumber {
        field: LedgerField,
        value: String,
    },
    NotAWholeNumber {
        field: LedgerField,
        value: String,
    },
    NotADate {
        field: LedgerField,
        value: String,
    },
    UnknownCategory {
        value: String,
    },
    UnknownVerdict {
        value: String,
    },
    TooLong {
        field: LedgerField,
        chars: usize,
        max: usize,
    },
    Contribution(ContributionProblem),
    NoSuchContribution {
        id: i64,
    },
    /// One's own contribution.
    SelfAttestation,
    AlreadyAttested,
    Decided {
        state: ContributionState,
    },
    RejectionWithoutComment,
    UnknownMember {
        name: String,
    },
    TransferToSelf,
    AmountNotPositive,
    /// More than six decimals, or more than the ledger counts.
    AmountNotCommuns {
        value: String,
    },
    Insufficient {
        balance: Communs,
        asked: Communs,
    },
    AttestationsNeededOutOfRange {
        value: u32,
    },
    RateOutOfRange {
        category: Category,
        value: String,
    },
    DemurrageRateOutOfRange {
        value: String,
    },
    DemurragePeriodOutOfRange {
        days: u32,
    },
    /// Not one of `simple`, `two_thirds`, `consent`.
    UnknownDecisionRule {
        value: String,
    },
    Decision(DecisionProblem),
    /// What the ledger said, in English, when none of the above fits.
    Other(String),
}

/// What the page confirms after a form was recorded (the redirect's query).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    Recorded { id: i64 },
    Attested { id: i64 },
    Transferred { seq: i64 },
    ParametersAdopted { seq: i64 },
}

/// What the page shows.
#[derive(Debug, Clone)]
pub struct LedgerView<'a> {
    /// The signed-in member.
    pub member: &'a str,
    /// The member's roles: which pages the navigation offers.
    pub roles: &'a [ledger::Role],
    /// Holds the role `resident`: may record, attest and transfer.
    pub resident: bool,
    /// Holds the role `assembly`: may adopt parameters.
    pub assembly: bool,
    /// The session's anti-forgery token for the forms.
    pub csrf: &'a str,
    /// Newest first.
    pub contributions: &'a [Contribution],
    pub balances_now: &'a Balances,
    /// The same balances [`PROJECTION_DAYS`] later, demurrage projected.
    pub balances_later: &'a Balances,
    pub verify: &'a VerifyReport,
    pub parameters: &'a LedgerParameters,
    /// Newest first.
    pub parameters_history: &'a [AdoptedParameters],
    /// The signed-in member's, newest first.
    pub transfers: &'a [Transfer],
    /// Every member's name, for the transfer form.
    pub members: &'a [String],
    pub forms: &'a LedgerForms,
    pub problems: &'a [LedgerProblem],
    pub problems_for: Option<FormTarget>,
    pub confirmation: Option<Confirmation>,
}

struct BalanceLine {
    member: String,
    now: String,
    later: String,
    is_me: bool,
}

struct AttestationLine {
    icon: &'static str,
    text: String,
    /// `: “…”`, or empty.
    comment: String,
}

/// Words a member wrote, quoted after what precedes them; nothing when empty.
fn quoted(text: &str, lang: Lang) -> String {
    if text.trim().is_empty() {
        String::new()
    } else {
        Catalog::for_lang(lang).tf("ledger.quoted", &[("text", text)])
    }
}

struct ContributionLine {
    id: i64,
    title: String,
    description: String,
    state_code: &'static str,
    state_icon: &'static str,
    state_text: String,
    attestations: Vec<AttestationLine>,
    /// "Your contribution", "you approved it", …: why there are no buttons.
    note: Option<String>,
    can_attest: bool,
    comment: String,
    problems: Vec<String>,
}

struct TransferLine {
    text: String,
    /// `: “…”`, or empty.
    memo: String,
}

struct ParametersLine {
    title: String,
    decision: String,
    minutes: String,
    text: String,
}

struct RateInput {
    name: String,
    label: String,
    value: String,
}

struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "ledger.html")]
struct LedgerTemplate<'a> {
    csrf: &'a str,
    resident: bool,
    assembly: bool,
    nav: crate::nav::MemberNav,
    confirmation: Option<String>,
    general_problems: Vec<String>,
    chain_ok: bool,
    chain_text: String,
    balances: Vec<BalanceLine>,
    later_heading: String,
    commons_now: String,
    commons_later: String,
    minted_total: String,
    demurrage_text: String,
    parameters_text: Vec<String>,
    contribution_form: &'a ContributionForm,
    categories: Vec<Choice>,
    contribution_problems: Vec<String>,
    transfer_form: &'a TransferForm,
    recipients: Vec<Choice>,
    transfer_problems: Vec<String>,
    my_balance: String,
    contributions: Vec<ContributionLine>,
    transfers: Vec<TransferLine>,
    parameters_form: &'a ParametersForm,
    rate_inputs: Vec<RateInput>,
    decision_rules: Vec<Choice>,
    parameters_problems: Vec<String>,
    history: Vec<ParametersLine>,
    site_name: &'a str,
    t: &'static Catalog,
    lang_code: &'static str,
    page_title: String,
    asset_version: u64,
}

/// The name of a category in the reader's language.
pub fn category_name(category: Category, lang: Lang) -> &'static str {
    let t = Catalog::for_lang(lang);
    t.t(category_key(category))
}

fn category_key(category: Category) -> &'static str {
    match category {
        Category::Care => "ledger.category_care",
        Category::Teaching => "ledger.category_teaching",
        Category::Repair => "ledger.category_repair",
        Category::Gardening => "ledger.category_gardening",
        Category::Cooking => "ledger.category_cooking",
        Category::EnergySharing => "ledger.category_energy_sharing",
        Category::Other => "ledger.category_other",
    }
}

/// Code, icon and catalog key of a contribution's state.
fn state_parts(state: ContributionState) -> (&'static str, &'static str, &'static str) {
    match state {
        ContributionState::Pending => ("pending", "…", "ledger.state_pending"),
        ContributionState::Validated => ("validated", "✔", "ledger.state_validated"),
        ContributionState::Rejected => ("rejected", "✖", "ledger.state_rejected"),
    }
}

fn field_name(field: LedgerField, lang: Lang) -> String {
    let t = Catalog::for_lang(lang);
    let key = match field {
        LedgerField::Category => "ledger.category",
        LedgerField::Hours => "ledger.hours",
        LedgerField::Date => "ledger.date",
        LedgerField::Description => "ledger.description",
        LedgerField::Verdict => "ledger.verdict",
        LedgerField::Comment => "ledger.comment",
        LedgerField::To => "ledger.to",
        LedgerField::Amount => "ledger.amount",
        LedgerField::Memo => "ledger.memo",
        LedgerField::AttestationsNeeded => "ledger.attestations_needed",
        LedgerField::Rate(category) => {
            return t.tf(
                "ledger.rate_of",
                &[("category", category_name(category, lang))],
            );
        }
        LedgerField::DemurrageRate => "ledger.demurrage_rate",
        LedgerField::DemurragePeriod => "ledger.demurrage_period",
        LedgerField::AssemblyDate => "assembly.assembly_date",
        LedgerField::VotesFor => "assembly.votes_for",
        LedgerField::VotesAgainst => "assembly.votes_against",
        LedgerField::VotesAbstain => "assembly.votes_abstain",
        LedgerField::QuorumRequired => "assembly.quorum_required",
        LedgerField::Present => "assembly.present",
        LedgerField::Minutes => "assembly.minutes",
    };
    t.t(key).to_string()
}

/// One problem in plain words.
pub fn ledger_problem_text(problem: &LedgerProblem, lang: Lang) -> String {
    let t = Catalog::for_lang(lang);
    let field = |f: LedgerField| field_name(f, lang);
    match problem {
        LedgerProblem::UnknownField { name } => {
            t.tf("ledger.problem_unknown_field", &[("field", name)])
        }
        LedgerProblem::Missing(f) => t.tf("ledger.problem_missing", &[("field", &field(*f))]),
        LedgerProblem::NotANumber { field: f, value } => t.tf(
            "ledger.problem_not_a_number",
            &[("field", &field(*f)), ("value", value)],
        ),
        LedgerProblem::NotAWholeNumber { field: f, value } => t.tf(
            "ledger.problem_not_whole",
            &[("field", &field(*f)), ("value", value)],
        ),
        LedgerProblem::NotADate { field: f, value } => t.tf(
            "ledger.problem_not_a_date",
            &[("field", &field(*f)), ("value", value)],
        ),
        LedgerProblem::UnknownCategory { value } => {
            t.tf("ledger.problem_category", &[("value", value)])
        }
        LedgerProblem::UnknownVerdict { value } => {
            t.tf("ledger.problem_verdict", &[("value", value)])
        }
        LedgerProblem::TooLong {
            field: f,
            chars,
            max,
        } => t.tf(
            "ledger.problem_too_long",
            &[
                ("field", &field(*f)),
                ("chars", &chars.to_string()),
                ("max", &max.to_string()),
            ],
        ),
        LedgerProblem::Contribution(p) => match p {
            ContributionProblem::HoursNotPositive { .. } => {
                t.t("ledger.problem_hours_positive").to_string()
            }
            ContributionProblem::TooManyHours { .. } => t.tf(
                "ledger.problem_hours_max",
                &[("max", &format!("{}", ledger::MAX_HOURS))],
            ),
            ContributionProblem::HoursTooPrecise { .. } => {
                t.t("ledger.problem_hours_precise").to_string()
            }
            ContributionProblem::DateInFuture { date } => t.tf(
                "ledger.problem_date_future",
                &[("date", &format_date_long(*date, lang))],
            ),
            ContributionProblem::DescriptionEmpty => {
                t.t("ledger.problem_description_empty").to_string()
            }
            ContributionProblem::DescriptionTooLong { chars } => t.tf(
                "ledger.problem_too_long",
                &[
                    ("field", &field(LedgerField::Description)),
                    ("chars", &chars.to_string()),
                    ("max", &ledger::MAX_DESCRIPTION_CHARS.to_string()),
                ],
            ),
            ContributionProblem::DescriptionControlCharacter => {
                t.t("ledger.problem_description_control").to_string()
            }
        },
        LedgerProblem::NoSuchContribution { id } => {
            t.tf("ledger.problem_no_such", &[("id", &id.to_string())])
        }
        LedgerProblem::SelfAttestation => t.t("ledger.problem_self").to_string(),
        LedgerProblem::AlreadyAttested => t.t("ledger.problem_already").to_string(),
        LedgerProblem::Decided { state } => {
            let (_, _, key) = state_parts(*state);
            t.tf("ledger.problem_decided", &[("state", t.t(key))])
        }
        LedgerProblem::RejectionWithoutComment => t.t("ledger.problem_reject_comment").to_string(),
        LedgerProblem::UnknownMember { name } => {
            t.tf("ledger.problem_unknown_member", &[("name", name)])
        }
        LedgerProblem::TransferToSelf => t.t("ledger.problem_to_self").to_string(),
        LedgerProblem::AmountNotPositive => t.t("ledger.problem_amount_positive").to_string(),
        LedgerProblem::AmountNotCommuns { value } => {
            t.tf("ledger.problem_amount_precise", &[("value", value)])
        }
        // Exact: rounded, the balance could read as the amount asked.
        LedgerProblem::Insufficient { balance, asked } => t.tf(
            "ledger.problem_insufficient",
            &[
                ("balance", &format_communs_exact(*balance, lang)),
                ("asked", &format_communs_exact(*asked, lang)),
            ],
        ),
        LedgerProblem::AttestationsNeededOutOfRange { value } => t.tf(
            "ledger.problem_k",
            &[
                ("value", &value.to_string()),
                ("max", &ledger::MAX_ATTESTATIONS_NEEDED.to_string()),
            ],
        ),
        LedgerProblem::RateOutOfRange { category, value } => t.tf(
            "ledger.problem_rate",
            &[
                ("category", category_name(*category, lang)),
                ("value", value),
                ("max", &format_communs(ledger::MAX_RATE_PER_HOUR, lang)),
            ],
        ),
        LedgerProblem::DemurrageRateOutOfRange { value } => {
            t.tf("ledger.problem_demurrage_rate", &[("value", value)])
        }
        LedgerProblem::DemurragePeriodOutOfRange { days } => t.tf(
            "ledger.problem_demurrage_period",
            &[
                ("value", &days.to_string()),
                ("max", &ledger::MAX_DEMURRAGE_PERIOD_DAYS.to_string()),
            ],
        ),
        LedgerProblem::UnknownDecisionRule { value } => {
            t.tf("ledger.problem_decision_rule", &[("value", value)])
        }
        LedgerProblem::Decision(d) => decision_problem_text(d, "ledger.problem_quorum", lang),
        LedgerProblem::Other(text) => text.clone(),
    }
}

/// The demurrage rule in force, in a sentence.
fn demurrage_text(parameters: &LedgerParameters, lang: Lang) -> String {
    let t = Catalog::for_lang(lang);
    let pct = ppm_as_percent(parameters.demurrage_rate_ppm);
    let pct = match lang {
        Lang::Fr => format!("{} %", pct.replace('.', ",")),
        Lang::En => format!("{pct}%"),
    };
    if parameters.demurrage_rate_ppm == 0 {
        return t.t("ledger.no_demurrage").to_string();
    }
    t.tf(
        "ledger.demurrage_rule",
        &[
            ("rate", &pct),
            ("days", &parameters.demurrage_period_days.to_string()),
        ],
    )
}

/// The parameters in plain sentences: k, the rates, demurrage.
fn parameters_sentences(parameters: &LedgerParameters, lang: Lang) -> Vec<String> {
    let t = Catalog::for_lang(lang);
    let k = parameters.attestations_needed;
    let mut lines = vec![if k <= 1 {
        t.t("ledger.k_one").to_string()
    } else {
        t.tf("ledger.k_many", &[("k", &k.to_string())])
    }];
    let first = parameters.rate(Category::ALL[0]);
    if Category::ALL.iter().all(|c| parameters.rate(*c) == first) {
        lines.push(t.tf("ledger.rate_all", &[("rate", &format_communs(first, lang))]));
    } else {
        let rates: Vec<String> = Category::ALL
            .into_iter()
            .map(|c| {
                format!(
                    "{} {}",
                    category_name(c, lang),
                    format_communs(parameters.rate(c), lang)
                )
            })
            .collect();
        lines.push(t.tf("ledger.rate_each", &[("rates", &rates.join(", "))]));
    }
    lines.push(demurrage_text(parameters, lang));
    lines.push(t.t(rule_in_force_key(parameters.decision_rule)).to_string());
    lines
}

/// The page as a complete HTML document.
pub fn render_ledger(view: &LedgerView<'_>, lang: Lang, site: &SiteInfo) -> Result<String> {
    let t = Catalog::for_lang(lang);
    let tz = site.timezone;
    let date = |at: chrono::DateTime<chrono::Utc>| {
        format_date_long(at.with_timezone(&tz).date_naive(), lang)
    };
    let problems_of = |target: FormTarget| -> Vec<String> {
        if view.problems_for == Some(target) {
            view.problems
                .iter()
                .map(|p| ledger_problem_text(p, lang))
                .collect()
        } else {
            Vec::new()
        }
    };

    let balances: Vec<BalanceLine> = view
        .balances_now
        .balances
        .iter()
        .map(|b| BalanceLine {
            member: b.member.clone(),
            now: format_communs(b.communs, lang),
            later: view
                .balances_later
                .balances
                .iter()
                .find(|l| l.member == b.member)
                .map_or_else(String::new, |l| format_communs(l.communs, lang)),
            is_me: b.member == view.member,
        })
        .collect();
    let my_balance = view
        .balances_now
        .balances
        .iter()
        .find(|b| b.member == view.member)
        .map_or(Communs::ZERO, |b| b.communs);

    let (chain_ok, chain_text) = match &view.verify.first_bad {
        None => (
            true,
            t.tf(
                "ledger.chain_ok",
                &[
                    ("entries", &view.verify.entries.to_string()),
                    ("head", &view.verify.head_hash),
                ],
            ),
        ),
        Some(bad) => {
            let mut text = t.tf(
                if view.verify.chain_intact {
                    "ledger.replay_bad"
                } else {
                    "ledger.chain_bad"
                },
                &[("seq", &bad.seq.to_string()), ("problem", &bad.problem)],
            );
            if let Some(account) = &bad.account {
                text.push(' ');
                text.push_str(&t.tf("ledger.bad_account", &[("account", account)]));
            }
            (false, text)
        }
    };

    let contributions = view
        .contributions
        .iter()
        .map(|c| {
            let (state_code, state_icon, state_key) = state_parts(c.state);
            let mut state_text = t.t(state_key).to_string();
            let approvals = c
                .attestations
                .iter()
                .filter(|a| a.verdict == Verdict::Approve)
                .count();
            match (c.state, c.minted) {
                (ContributionState::Validated, Some(minted)) => {
                    state_text.push_str(" · ");
                    state_text.push_str(&t.tf(
                        "ledger.minted",
                        &[("amount", &format_communs(minted, lang))],
                    ));
                }
                (ContributionState::Pending, _) => {
                    state_text.push_str(" · ");
                    state_text.push_str(&t.tf(
                        "ledger.approvals",
                        &[
                            ("n", &approvals.to_string()),
                            ("k", &view.parameters.attestations_needed.to_string()),
                        ],
                    ));
                }
                _ => {}
            }
            let mine = c.member == view.member;
            let attested_by_me = c.attestations.iter().find(|a| a.member == view.member);
            let note = if mine {
                Some(t.t("ledger.own_contribution").to_string())
            } else {
                attested_by_me.map(|a| {
                    t.t(match a.verdict {
                        Verdict::Approve => "ledger.you_approved",
                        Verdict::Reject => "ledger.you_rejected",
                    })
                    .to_string()
                })
            };
            let can_attest = view.resident
                && !mine
                && attested_by_me.is_none()
                && c.state == ContributionState::Pending;
            let comment = match &view.forms.attestation {
                Some((id, comment)) if *id == c.id => comment.clone(),
                _ => String::new(),
            };
            ContributionLine {
                id: c.id,
                title: t.tf(
                    "ledger.contribution_title",
                    &[
                        ("id", &c.id.to_string()),
                        ("member", &c.member),
                        ("category", category_name(c.category, lang)),
                        ("hours", &crate::format::hours_text(c.hours, lang)),
                        ("date", &format_date_long(c.date, lang)),
                    ],
                ),
                description: c.description.clone(),
                state_code,
                state_icon,
                state_text,
                attestations: c
                    .attestations
                    .iter()
                    .map(|a| AttestationLine {
                        icon: match a.verdict {
                            Verdict::Approve => "✔",
                            Verdict::Reject => "✖",
                        },
                        text: t.tf(
                            match a.verdict {
                                Verdict::Approve => "ledger.approved_by",
                                Verdict::Reject => "ledger.rejected_by",
                            },
                            &[("member", &a.member), ("date", &date(a.ts))],
                        ),
                        comment: quoted(&a.comment, lang),
                    })
                    .collect(),
                note,
                can_attest,
                comment,
                problems: problems_of(FormTarget::Attestation(c.id)),
            }
        })
        .collect();

    let transfers = view
        .transfers
        .iter()
        .map(|tr| TransferLine {
            text: if tr.from == view.member {
                t.tf(
                    "ledger.transfer_sent",
                    &[
                        ("amount", &format_communs(tr.amount, lang)),
                        ("member", &tr.to),
                        ("date", &date(tr.ts)),
                    ],
                )
            } else {
                t.tf(
                    "ledger.transfer_received",
                    &[
                        ("amount", &format_communs(tr.amount, lang)),
                        ("member", &tr.from),
                        ("date", &date(tr.ts)),
                    ],
                )
            },
            memo: quoted(&tr.memo, lang),
        })
        .collect();

    let history = view
        .parameters_history
        .iter()
        .map(|a| ParametersLine {
            title: t.tf(
                "ledger.parameters_item",
                &[("seq", &a.seq.to_string()), ("date", &date(a.adopted_at))],
            ),
            decision: decision_sentence(&a.decision, &a.author, lang),
            minutes: a.decision.minutes.clone(),
            text: parameters_sentences(&a.parameters, lang).join(" "),
        })
        .collect();

    let confirmation = view.confirmation.map(|c| match c {
        Confirmation::Recorded { id } => t.tf("ledger.done_recorded", &[("id", &id.to_string())]),
        Confirmation::Attested { id } => {
            let state = view
                .contributions
                .iter()
                .find(|c| c.id == id)
                .map(|c| (c.state, c.minted));
            match state {
                Some((ContributionState::Validated, Some(minted))) => t.tf(
                    "ledger.done_validated",
                    &[
                        ("id", &id.to_string()),
                        ("amount", &format_communs(minted, lang)),
                    ],
                ),
                Some((ContributionState::Rejected, _)) => {
                    t.tf("ledger.done_rejected", &[("id", &id.to_string())])
                }
                _ => t.tf("ledger.done_attested", &[("id", &id.to_string())]),
            }
        }
        Confirmation::Transferred { seq } => match view.transfers.iter().find(|tr| tr.seq == seq) {
            Some(tr) => t.tf(
                "ledger.done_transferred",
                &[
                    ("amount", &format_communs(tr.amount, lang)),
                    ("member", &tr.to),
                ],
            ),
            None => t.t("ledger.done_transferred_plain").to_string(),
        },
        Confirmation::ParametersAdopted { seq } => {
            t.tf("ledger.done_parameters", &[("seq", &seq.to_string())])
        }
    });

    LedgerTemplate {
        csrf: view.csrf,
        resident: view.resident,
        assembly: view.assembly,
        nav: crate::nav::member_nav("/ledger", view.roles, view.member, view.csrf, t),
        confirmation,
        general_problems: problems_of(FormTarget::General),
        chain_ok,
        chain_text,
        balances,
        later_heading: t.tf(
            "ledger.balance_later",
            &[("days", &PROJECTION_DAYS.to_string())],
        ),
        commons_now: format_communs(view.balances_now.commons, lang),
        commons_later: format_communs(view.balances_later.commons, lang),
        minted_total: format_communs(view.balances_now.minted_total, lang),
        demurrage_text: demurrage_text(view.parameters, lang),
        parameters_text: parameters_sentences(view.parameters, lang),
        contribution_form: &view.forms.contribution,
        categories: Category::ALL
            .into_iter()
            .map(|c| Choice {
                value: c.as_str().to_string(),
                label: category_name(c, lang).to_string(),
                selected: view.forms.contribution.category == c.as_str(),
            })
            .collect(),
        contribution_problems: problems_of(FormTarget::Contribution),
        transfer_form: &view.forms.transfer,
        recipients: view
            .members
            .iter()
            .filter(|m| m.as_str() != view.member)
            .map(|m| Choice {
                value: m.clone(),
                label: m.clone(),
                selected: &view.forms.transfer.to == m,
            })
            .collect(),
        transfer_problems: problems_of(FormTarget::Transfer),
        my_balance: t.tf(
            "ledger.your_balance",
            &[("amount", &format_communs(my_balance, lang))],
        ),
        contributions,
        transfers,
        parameters_form: &view.forms.parameters,
        decision_rules: ledger::DecisionRule::ALL
            .into_iter()
            .map(|rule| Choice {
                value: rule.as_str().to_string(),
                label: t.t(rule_name_key(rule)).to_string(),
                selected: view.forms.parameters.decision_rule == rule.as_str(),
            })
            .collect(),
        rate_inputs: view
            .forms
            .parameters
            .rates
            .iter()
            .map(|(c, value)| RateInput {
                name: format!("rate.{}", c.as_str()),
                label: field_name(LedgerField::Rate(*c), lang),
                value: value.clone(),
            })
            .collect(),
        parameters_problems: problems_of(FormTarget::Parameters),
        history,
        page_title: format!("{} · {}", site.name, t.t("ledger.title")),
        site_name: &site.name,
        t,
        lang_code: lang.code(),
        asset_version: ASSET_VERSION,
    }
    .render()
    .map_err(|source| Error::Render {
        template: "ledger.html",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys chosen at run time, which the catalog test cannot see.
    #[test]
    fn every_category_state_and_problem_is_phrased_in_both_languages() {
        let problems = [
            LedgerProblem::UnknownField { name: "x".into() },
            LedgerProblem::Missing(LedgerField::Hours),
            LedgerProblem::NotANumber {
                field: LedgerField::Rate(Category::Care),
                value: "abc".into(),
            },
            LedgerProblem::NotAWholeNumber {
                field: LedgerField::Present,
                value: "1.5".into(),
            },
            LedgerProblem::NotADate {
                field: LedgerField::Date,
                value: "demain".into(),
            },
            LedgerProblem::UnknownCategory {
                value: "plumbing".into(),
            },
            LedgerProblem::UnknownVerdict {
                value: "maybe".into(),
            },
            LedgerProblem::TooLong {
                field: LedgerField::Comment,
                chars: 600,
                max: 500,
            },
            LedgerProblem::Contribution(ContributionProblem::HoursNotPositive { hours: 0.0 }),
            LedgerProblem::Contribution(ContributionProblem::TooManyHours { hours: 30.0 }),
            LedgerProblem::Contribution(ContributionProblem::HoursTooPrecise { hours: 1.255 }),
            LedgerProblem::Contribution(ContributionProblem::DateInFuture {
                date: chrono::NaiveDate::from_ymd_opt(2030, 1, 1).unwrap_or_default(),
            }),
            LedgerProblem::Contribution(ContributionProblem::DescriptionEmpty),
            LedgerProblem::Contribution(ContributionProblem::DescriptionTooLong { chars: 1200 }),
            LedgerProblem::Contribution(ContributionProblem::DescriptionControlCharacter),
            LedgerProblem::NoSuchContribution { id: 9 },
            LedgerProblem::SelfAttestation,
            LedgerProblem::AlreadyAttested,
            LedgerProblem::Decided {
                state: ContributionState::Validated,
            },
            LedgerProblem::RejectionWithoutComment,
            LedgerProblem::UnknownMember { name: "zoe".into() },
            LedgerProblem::TransferToSelf,
            LedgerProblem::AmountNotPositive,
            LedgerProblem::AmountNotCommuns {
                value: "0.0000001".into(),
            },
            LedgerProblem::Insufficient {
                balance: Communs::from_whole(3),
                asked: Communs::from_whole(5),
            },
            LedgerProblem::AttestationsNeededOutOfRange { value: 0 },
            LedgerProblem::RateOutOfRange {
                category: Category::Cooking,
                value: "2000".into(),
            },
            LedgerProblem::DemurrageRateOutOfRange { value: "80".into() },
            LedgerProblem::DemurragePeriodOutOfRange { days: 0 },
            LedgerProblem::Decision(DecisionProblem::QuorumNotReached {
                present: 3,
                required: 10,
            }),
            LedgerProblem::Decision(DecisionProblem::NotCarried {
                rule: ledger::DecisionRule::Simple,
                votes_for: 0,
                votes_against: 3,
            }),
            LedgerProblem::UnknownDecisionRule {
                value: "unanimity".into(),
            },
        ];
        for lang in Lang::ALL {
            for problem in &problems {
                let text = ledger_problem_text(problem, lang);
                assert!(
                    !text.contains('{')
                        && !text.contains("ledger.")
                        && !text.contains("assembly.")
                        && !text.contains("decision."),
                    "{lang}: {text}"
                );
            }
            for c in Category::ALL {
                assert_ne!(category_name(c, lang), category_key(c), "{lang}: {c}");
            }
            for s in [
                ContributionState::Pending,
                ContributionState::Validated,
                ContributionState::Rejected,
            ] {
                let key = state_parts(s).2;
                assert_ne!(Catalog::for_lang(lang).t(key), key);
            }
            for field in [LedgerField::Verdict, LedgerField::To, LedgerField::Memo] {
                assert!(!field_name(field, lang).contains("ledger."));
            }
        }
        assert_eq!(
            ledger_problem_text(&LedgerProblem::SelfAttestation, Lang::En),
            "You cannot attest your own contribution: other members do."
        );
    }

    #[test]
    fn rates_and_demurrage_read_as_sentences() {
        let p = LedgerParameters::default();
        assert_eq!(
            parameters_sentences(&p, Lang::Fr),
            [
                "Une contribution est validée par 2 approbations d'autres membres.",
                "Une heure de contribution crée 10,00 Communs, quelle que soit sa catégorie.",
                "Les Communs perdent 2 % de leur valeur tous les 30 jours (fonte) ; ce qu'ils perdent va au fonds commun.",
                "Une motion de l'assemblée est adoptée à la majorité simple : plus de voix pour que \
                 contre (les abstentions comptent pour le quorum, pas pour la majorité).",
            ]
        );
        let mut p = p;
        p.demurrage_rate_ppm = 25_000;
        p.rates_per_hour
            .insert(Category::Care, Communs::from_whole(12));
        let en = parameters_sentences(&p, Lang::En);
        assert!(en[1].contains("care 12.00"), "{en:?}");
        assert!(en[2].contains("2.5%"), "{en:?}");
        assert_eq!(ppm_as_percent(20_000), "2");
        assert_eq!(ppm_as_percent(25_000), "2.5");
        assert_eq!(ppm_as_percent(1), "0.0001");
    }
}
