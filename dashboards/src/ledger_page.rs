//! The contribution ledger's page (`/ledger`): every member's balance now and in
//! 30 days, the commons and all that was minted, the journal's verification, recent
//! contributions with their attestations, the signed-in member's transfers, the
//! parameters in force and their history; and the forms to record a contribution,
//! attest others', transfer Communs and (for the assembly) adopt new parameters.
//! Everything here formats and arranges: the forms are read, and the journal
//! written, by the `web` crate, which hands back every problem as a
//! [`FormProblem`] to phrase in the reader's language, with the form as typed.

use askama::Template;
use ledger::{
    AdoptedParameters, Balances, Category, Communs, Contribution, ContributionState,
    LedgerParameters, Transfer, Verdict, VerifyReport,
};

use crate::assembly::decision_sentence;
use crate::form::{
    DecisionForm, FormField, FormPage, FormProblem, field_label, form_problem_text,
    rule_in_force_key, rule_name_key,
};
use crate::format::format_balance;
use crate::format::{category_name, contribution_state_key};
use crate::layout::{Layout, render};
use crate::{Catalog, Lang, Result, SiteInfo, format_communs, format_date_long};

/// How far ahead the page projects balances, in days.
pub const PROJECTION_DAYS: i64 = 30;

/// A contribution as the form holds it, every value as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContributionForm {
    pub category: String,
    pub hours: String,
    pub date: String,
    pub description: String,
    /// The id of the commitment this contribution fulfils; empty: none.
    pub commitment: String,
}

/// A transfer as the form holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransferForm {
    pub to: String,
    pub amount: String,
    pub memo: String,
    /// "Send all" was pressed: the amount is whatever is held when it is sent.
    pub all: bool,
    /// The id of the intent it pays for (empty: none).
    pub intent: String,
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
    pub decision: DecisionForm,
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
            decision: DecisionForm::dated(today),
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
    /// The count of new matches on the planning board, for the navigation.
    pub new_matches: usize,
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
    /// The accepted commitments the signed-in member provides, which a
    /// contribution may name as the one it fulfils.
    pub commitments: &'a [ledger::Commitment],
    pub forms: &'a LedgerForms,
    pub problems: &'a [FormProblem],
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
    commitments: Vec<Choice>,
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
    layout: Layout<'a>,
}

/// Code, icon and catalog key of a contribution's state.
fn state_parts(state: ContributionState) -> (&'static str, &'static str, &'static str) {
    let key = contribution_state_key(state);
    match state {
        ContributionState::Pending => ("pending", "…", key),
        ContributionState::Validated => ("validated", "✔", key),
        ContributionState::Rejected => ("rejected", "✖", key),
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
    let mut lines = vec![t.count("ledger.k", parameters.attestations_needed.into())];
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
                .map(|p| form_problem_text(p, FormPage::Ledger, &str::to_string, lang))
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
            now: format_balance(b.communs, lang),
            later: view
                .balances_later
                .balances
                .iter()
                .find(|l| l.member == b.member)
                .map_or_else(String::new, |l| format_balance(l.communs, lang)),
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

    let page = LedgerTemplate {
        csrf: view.csrf,
        resident: view.resident,
        assembly: view.assembly,
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
        commitments: view
            .commitments
            .iter()
            .map(|c| Choice {
                value: c.id.to_string(),
                label: t.tf(
                    "ledger.commitment_choice",
                    &[
                        ("id", &c.id.to_string()),
                        ("receiver", &c.receiver),
                        (
                            "quantity",
                            &crate::plan_page::quantity_with_unit(c.quantity, c.unit, lang),
                        ),
                        ("class", &c.class),
                    ],
                ),
                selected: view.forms.contribution.commitment == c.id.to_string(),
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
            &[("amount", &format_balance(my_balance, lang))],
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
                label: field_label(&FormField::Rate(*c), &str::to_string, lang),
                value: value.clone(),
            })
            .collect(),
        parameters_problems: problems_of(FormTarget::Parameters),
        history,
        layout: Layout::new(lang, site, t.t("ledger.title")).with_nav(
            crate::nav::member_nav("/ledger", view.roles, view.member, view.csrf, t)
                .with_new_matches(view.new_matches, t),
        ),
    };
    render(&page, "ledger.html")
}

#[cfg(test)]
mod tests {
    use ledger::{ContributionProblem, DecisionProblem};

    use super::*;
    use crate::format::category_key;

    /// Keys chosen at run time, which the catalog test cannot see.
    #[test]
    fn every_category_state_and_problem_is_phrased_in_both_languages() {
        let problems = [
            FormProblem::UnknownField { name: "x".into() },
            FormProblem::Missing(FormField::Hours),
            FormProblem::NotANumber {
                field: FormField::Rate(Category::Care),
                value: "abc".into(),
            },
            FormProblem::NotAWholeNumber {
                field: FormField::Present,
                value: "1.5".into(),
            },
            FormProblem::NotADate {
                field: FormField::Date,
                value: "demain".into(),
            },
            FormProblem::UnknownCategory {
                value: "plumbing".into(),
            },
            FormProblem::UnknownVerdict {
                value: "maybe".into(),
            },
            FormProblem::TooLong {
                field: FormField::Comment,
                chars: 600,
                max: 500,
            },
            FormProblem::Contribution(ContributionProblem::HoursNotPositive { hours: 0.0 }),
            FormProblem::Contribution(ContributionProblem::TooManyHours { hours: 30.0 }),
            FormProblem::Contribution(ContributionProblem::HoursTooPrecise { hours: 1.255 }),
            FormProblem::Contribution(ContributionProblem::DateInFuture {
                date: chrono::NaiveDate::from_ymd_opt(2030, 1, 1).unwrap_or_default(),
            }),
            FormProblem::Contribution(ContributionProblem::DescriptionEmpty),
            FormProblem::Contribution(ContributionProblem::DescriptionTooLong { chars: 1200 }),
            FormProblem::Contribution(ContributionProblem::DescriptionControlCharacter),
            FormProblem::NoSuchContribution { id: 9 },
            FormProblem::SelfAttestation,
            FormProblem::AlreadyAttested,
            FormProblem::Decided {
                state: ContributionState::Validated,
            },
            FormProblem::RejectionWithoutComment,
            FormProblem::UnknownMember { name: "zoe".into() },
            FormProblem::TransferToSelf,
            FormProblem::AmountNotPositive,
            FormProblem::AmountNotCommuns {
                value: "0.0000001".into(),
            },
            FormProblem::Insufficient {
                balance: Communs::from_whole(3),
                asked: Communs::from_whole(5),
            },
            FormProblem::AttestationsNeededOutOfRange { value: 0 },
            FormProblem::RateOutOfRange {
                category: Category::Cooking,
                value: "2000".into(),
            },
            FormProblem::DemurrageRateOutOfRange { value: "80".into() },
            FormProblem::DemurragePeriodOutOfRange { days: 0 },
            FormProblem::Decision(DecisionProblem::QuorumNotReached {
                present: 3,
                required: 10,
            }),
            FormProblem::Decision(DecisionProblem::NotCarried {
                rule: ledger::DecisionRule::Simple,
                votes_for: 0,
                votes_against: 3,
            }),
            FormProblem::UnknownDecisionRule {
                value: "unanimity".into(),
            },
        ];
        for lang in Lang::ALL {
            for problem in &problems {
                let text = form_problem_text(problem, FormPage::Ledger, &str::to_string, lang);
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
            for field in [FormField::Verdict, FormField::To, FormField::Memo] {
                assert!(!field_label(&field, &str::to_string, lang).contains("ledger."));
            }
        }
        assert_eq!(
            form_problem_text(
                &FormProblem::SelfAttestation,
                FormPage::Ledger,
                &str::to_string,
                Lang::En
            ),
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
