//! What the members' forms (the assembly's plan, the ledger's contributions,
//! attestations, transfers and rules) can get wrong, and how the pages say it: one
//! [`FormProblem`] per mistake, naming the [`FormField`] it is in, phrased by
//! [`form_problem_text`]. The forms are read by the `web` crate; the decision
//! record that both the plan and the ledger's rules carry is one [`DecisionForm`].

use ledger::{
    Category, Communs, ContributionProblem, ContributionState, DecisionProblem, DecisionRule,
    PlanProblem,
};

use crate::format::{
    category_name, contribution_state_key, format_communs, format_communs_exact, format_date_long,
    format_power,
};
use crate::{Catalog, Lang};

/// An assembly's decision record as its form holds it, every value as typed: the
/// part of the plan's form and of the ledger rules' form that is the same.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecisionForm {
    pub assembly_date: String,
    pub votes_for: String,
    pub votes_against: String,
    pub votes_abstain: String,
    pub quorum_required: String,
    pub present: String,
    pub minutes: String,
    /// The draw whose panel took the decision; empty: the assembly.
    pub panel: String,
}

impl DecisionForm {
    /// An empty record dated `date`.
    pub fn dated(date: chrono::NaiveDate) -> DecisionForm {
        DecisionForm {
            assembly_date: date.format("%Y-%m-%d").to_string(),
            ..DecisionForm::default()
        }
    }

    /// The value of the field the form sends as `name`, if the record has one.
    pub fn field_mut(&mut self, name: &str) -> Option<&mut String> {
        Some(match name {
            "assembly_date" => &mut self.assembly_date,
            "votes_for" => &mut self.votes_for,
            "votes_against" => &mut self.votes_against,
            "votes_abstain" => &mut self.votes_abstain,
            "quorum_required" => &mut self.quorum_required,
            "present" => &mut self.present,
            "minutes" => &mut self.minutes,
            "panel" => &mut self.panel,
            _ => return None,
        })
    }
}

/// A field of the members' forms that a message can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormField {
    // The assembly's plan; services by id.
    ServiceTier(String),
    ServiceMin(String),
    ServiceMax(String),
    Split(u32),
    BatteryReserve,
    BatteryMaxDischarge,
    BatteryTiers,
    GridMaxImport,
    GridTiers,
    // An assembly's decision record (a plan's, or the ledger rules').
    AssemblyDate,
    VotesFor,
    VotesAgainst,
    VotesAbstain,
    QuorumRequired,
    Present,
    Minutes,
    /// The panel drawn by lot that took the decision.
    Panel,
    // The ledger's forms.
    Category,
    Hours,
    Date,
    Description,
    Verdict,
    Comment,
    To,
    Amount,
    Memo,
    /// The commitment a contribution fulfils.
    Commitment,
    /// The intent a transfer pays for.
    Intent,
    AttestationsNeeded,
    Rate(Category),
    DemurrageRate,
    DemurragePeriod,
}

/// Why a form could not be used, one item per problem: what could not be read,
/// then what the ledger's rules refuse in what could.
#[derive(Debug, Clone, PartialEq)]
pub enum FormProblem {
    /// The form sent a field the page does not have.
    UnknownField {
        name: String,
    },
    /// A field that is needed was not sent or left empty.
    Missing(FormField),
    /// A field that should hold a number holds `value`.
    NotANumber {
        field: FormField,
        value: String,
    },
    /// A whole number of 0 or more was expected (tiers, votes, days).
    NotAWholeNumber {
        field: FormField,
        value: String,
    },
    /// The date is not YYYY-MM-DD.
    NotADate {
        field: FormField,
        value: String,
    },
    /// A split rule other than `pro_rata` or `equal`.
    UnknownSplit {
        tier: u32,
        value: String,
    },
    UnknownCategory {
        value: String,
    },
    UnknownVerdict {
        value: String,
    },
    TooLong {
        field: FormField,
        chars: usize,
        max: usize,
    },
    /// The replay period is not one of those on offer.
    ReplayDays,
    Plan(PlanProblem),
    Decision(DecisionProblem),
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
    /// A problem of the planning board met on another page (a contribution naming
    /// the commitment it fulfils), phrased as the planning board does.
    Board(crate::BoardProblem),
    /// What the ledger said, in English, when none of the above fits.
    Other(String),
}

/// The page a form is on. Each words a few problems its own way: a quorum not
/// reached says whether the plan or the rules cannot be adopted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormPage {
    Assembly,
    Ledger,
}

impl FormPage {
    /// The catalog key of `problem` in this page's words.
    fn key(self, problem: &str) -> String {
        let page = match self {
            FormPage::Assembly => "assembly",
            FormPage::Ledger => "ledger",
        };
        format!("{page}.problem_{problem}")
    }
}

/// The label of a form field, as the page shows it; services are named by
/// `name(id)`.
pub(crate) fn field_label(field: &FormField, name: &dyn Fn(&str) -> String, lang: Lang) -> String {
    let t = Catalog::for_lang(lang);
    let service = |key: &str, id: &str| t.tf(key, &[("name", &name(id))]);
    let key = match field {
        FormField::ServiceTier(id) => return service("assembly.field_tier", id),
        FormField::ServiceMin(id) => return service("assembly.field_min", id),
        FormField::ServiceMax(id) => return service("assembly.field_max", id),
        FormField::Split(tier) => {
            return t.tf("assembly.tier_split", &[("tier", &tier.to_string())]);
        }
        FormField::Rate(category) => {
            return t.tf(
                "ledger.rate_of",
                &[("category", category_name(*category, lang))],
            );
        }
        FormField::BatteryReserve => "assembly.battery_reserve",
        FormField::BatteryMaxDischarge => "assembly.battery_max_discharge",
        FormField::BatteryTiers => "assembly.battery_tiers",
        FormField::GridMaxImport => "assembly.grid_max_import",
        FormField::GridTiers => "assembly.grid_tiers",
        FormField::AssemblyDate => "assembly.assembly_date",
        FormField::VotesFor => "assembly.votes_for",
        FormField::VotesAgainst => "assembly.votes_against",
        FormField::VotesAbstain => "assembly.votes_abstain",
        FormField::QuorumRequired => "assembly.quorum_required",
        FormField::Present => "assembly.present",
        FormField::Minutes => "assembly.minutes",
        FormField::Panel => "assembly.panel",
        FormField::Category => "ledger.category",
        FormField::Hours => "ledger.hours",
        FormField::Date => "ledger.date",
        FormField::Description => "ledger.description",
        FormField::Verdict => "ledger.verdict",
        FormField::Comment => "ledger.comment",
        FormField::To => "ledger.to",
        FormField::Amount => "ledger.amount",
        FormField::Memo => "ledger.memo",
        FormField::Commitment => "ledger.fulfils",
        FormField::Intent => "ledger.pays_for",
        FormField::AttestationsNeeded => "ledger.attestations_needed",
        FormField::DemurrageRate => "ledger.demurrage_rate",
        FormField::DemurragePeriod => "ledger.demurrage_period",
    };
    t.t(key).to_string()
}

/// A problem with a form on `page`, in plain words naming the field; services are
/// named by `name(id)`.
pub fn form_problem_text(
    problem: &FormProblem,
    page: FormPage,
    name: &dyn Fn(&str) -> String,
    lang: Lang,
) -> String {
    let t = Catalog::for_lang(lang);
    let label = |field: &FormField| field_label(field, name, lang);
    let named = |key: &str, id: &str| t.tf(key, &[("name", &name(id))]);
    match problem {
        FormProblem::UnknownField { name } => t.tf(&page.key("unknown_field"), &[("field", name)]),
        FormProblem::Missing(field) => t.tf(&page.key("missing"), &[("field", &label(field))]),
        FormProblem::NotANumber { field, value } => t.tf(
            &page.key("not_a_number"),
            &[("field", &label(field)), ("value", value)],
        ),
        FormProblem::NotAWholeNumber { field, value } => t.tf(
            &page.key("not_whole"),
            &[("field", &label(field)), ("value", value)],
        ),
        FormProblem::NotADate { field, value } => t.tf(
            &page.key("not_a_date"),
            &[("field", &label(field)), ("value", value)],
        ),
        FormProblem::UnknownSplit { tier, value } => t.tf(
            "assembly.problem_split",
            &[("tier", &tier.to_string()), ("value", value)],
        ),
        FormProblem::UnknownCategory { value } => {
            t.tf("ledger.problem_category", &[("value", value)])
        }
        FormProblem::UnknownVerdict { value } => {
            t.tf("ledger.problem_verdict", &[("value", value)])
        }
        FormProblem::TooLong { field, chars, max } => t.tf(
            "ledger.problem_too_long",
            &[
                ("field", &label(field)),
                ("chars", &chars.to_string()),
                ("max", &max.to_string()),
            ],
        ),
        FormProblem::ReplayDays => t.t("assembly.problem_replay_days").to_string(),
        FormProblem::Plan(p) => match p {
            PlanProblem::EmptyServiceId => t.t("assembly.problem_empty_id").to_string(),
            PlanProblem::ServiceTwice { id } => named("assembly.problem_service_twice", id),
            PlanProblem::ServiceTierZero { id } => named("assembly.problem_tier_zero", id),
            PlanProblem::MinNegative { id } => named("assembly.problem_min_negative", id),
            PlanProblem::MaxNegative { id } => named("assembly.problem_max_negative", id),
            PlanProblem::MaxBelowMin { id, min_w, max_w } => t.tf(
                "assembly.problem_max_below_min",
                &[
                    ("name", &name(id)),
                    ("min", &format_power(*min_w, lang)),
                    ("max", &format_power(*max_w, lang)),
                ],
            ),
            PlanProblem::TierZeroRule => t.t("assembly.problem_tier_zero_rule").to_string(),
            PlanProblem::TierTwice { tier } => t.tf(
                "assembly.problem_tier_twice",
                &[("tier", &tier.to_string())],
            ),
            PlanProblem::BatteryReserve => t.t("assembly.problem_battery_reserve").to_string(),
            PlanProblem::BatteryDischarge => t.t("assembly.problem_battery_discharge").to_string(),
            PlanProblem::GridImport => t.t("assembly.problem_grid_import").to_string(),
            PlanProblem::NotConfigured { id } => named("assembly.problem_not_configured", id),
        },
        FormProblem::Decision(d) => match d {
            DecisionProblem::QuorumNotReached { present, required } => t.tf(
                &page.key("quorum"),
                &[
                    ("present", &present.to_string()),
                    ("required", &required.to_string()),
                ],
            ),
            DecisionProblem::MoreVotesThanPresent { cast, present } => t.tf(
                "assembly.problem_votes",
                &[
                    ("cast", &cast.to_string()),
                    ("present", &present.to_string()),
                ],
            ),
            DecisionProblem::NoQuorum => t.t("decision.problem_no_quorum").to_string(),
            DecisionProblem::NotCarried {
                rule,
                votes_for,
                votes_against,
            } => t.tf(
                "decision.problem_not_carried",
                &[
                    ("for", &votes_for.to_string()),
                    ("against", &votes_against.to_string()),
                    ("rule", t.t(rule_key(*rule))),
                ],
            ),
            DecisionProblem::DateInFuture { date } => t.tf(
                "decision.problem_date_future",
                &[("date", &format_date_long(*date, lang))],
            ),
            DecisionProblem::DateBeforePrevious { date, previous } => t.tf(
                "decision.problem_date_before_previous",
                &[
                    ("date", &format_date_long(*date, lang)),
                    ("previous", &format_date_long(*previous, lang)),
                ],
            ),
            DecisionProblem::NoSuchPanel { draw } => {
                t.tf("decision.problem_no_panel", &[("draw", &draw.to_string())])
            }
            DecisionProblem::OutsideMandate {
                draw,
                scope,
                motion,
            } => t.tf(
                "decision.problem_outside_mandate",
                &[
                    ("draw", &draw.to_string()),
                    (
                        "scope",
                        t.t(match scope {
                            ledger::MandateScope::EnergyPriorities => {
                                "sortition.scope_energy_priorities"
                            }
                            ledger::MandateScope::LedgerParameters => {
                                "sortition.scope_ledger_parameters"
                            }
                        }),
                    ),
                    (
                        "motion",
                        t.t(match motion {
                            ledger::Motion::Plan => "decision.motion_plan",
                            ledger::Motion::Parameters => "decision.motion_parameters",
                        }),
                    ),
                ],
            ),
            DecisionProblem::AfterTerm {
                draw,
                date,
                term_end,
            } => t.tf(
                "decision.problem_after_term",
                &[
                    ("draw", &draw.to_string()),
                    ("date", &format_date_long(*date, lang)),
                    ("term_end", &format_date_long(*term_end, lang)),
                ],
            ),
            DecisionProblem::BeforePanel {
                draw,
                date,
                drawn_on,
            } => t.tf(
                "decision.problem_before_panel",
                &[
                    ("draw", &draw.to_string()),
                    ("date", &format_date_long(*date, lang)),
                    ("drawn_on", &format_date_long(*drawn_on, lang)),
                ],
            ),
            DecisionProblem::MorePresentThanPanel { present, seated } => t.tf(
                "decision.problem_more_present_than_panel",
                &[
                    ("present", &present.to_string()),
                    ("seated", &seated.to_string()),
                ],
            ),
            DecisionProblem::PanelQuorumTooLow {
                required,
                minimum,
                seated,
            } => t.tf(
                "decision.problem_panel_quorum",
                &[
                    ("required", &required.to_string()),
                    ("minimum", &minimum.to_string()),
                    ("seated", &seated.to_string()),
                ],
            ),
        },
        FormProblem::Contribution(p) => match p {
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
                    ("field", &label(&FormField::Description)),
                    ("chars", &chars.to_string()),
                    ("max", &ledger::MAX_DESCRIPTION_CHARS.to_string()),
                ],
            ),
            ContributionProblem::DescriptionControlCharacter => {
                t.t("ledger.problem_description_control").to_string()
            }
        },
        FormProblem::NoSuchContribution { id } => {
            t.tf("ledger.problem_no_such", &[("id", &id.to_string())])
        }
        FormProblem::SelfAttestation => t.t("ledger.problem_self").to_string(),
        FormProblem::AlreadyAttested => t.t("ledger.problem_already").to_string(),
        FormProblem::Decided { state } => t.tf(
            "ledger.problem_decided",
            &[("state", t.t(contribution_state_key(*state)))],
        ),
        FormProblem::RejectionWithoutComment => t.t("ledger.problem_reject_comment").to_string(),
        FormProblem::UnknownMember { name } => {
            t.tf("ledger.problem_unknown_member", &[("name", name)])
        }
        FormProblem::TransferToSelf => t.t("ledger.problem_to_self").to_string(),
        FormProblem::AmountNotPositive => t.t("ledger.problem_amount_positive").to_string(),
        FormProblem::AmountNotCommuns { value } => {
            t.tf("ledger.problem_amount_precise", &[("value", value)])
        }
        // Exact: rounded, the balance could read as the amount asked.
        FormProblem::Insufficient { balance, asked } => t.tf(
            "ledger.problem_insufficient",
            &[
                ("balance", &format_communs_exact(*balance, lang)),
                ("asked", &format_communs_exact(*asked, lang)),
            ],
        ),
        FormProblem::AttestationsNeededOutOfRange { value } => t.tf(
            "ledger.problem_k",
            &[
                ("value", &value.to_string()),
                ("max", &ledger::MAX_ATTESTATIONS_NEEDED.to_string()),
            ],
        ),
        FormProblem::RateOutOfRange { category, value } => t.tf(
            "ledger.problem_rate",
            &[
                ("category", category_name(*category, lang)),
                ("value", value),
                ("max", &format_communs(ledger::MAX_RATE_PER_HOUR, lang)),
            ],
        ),
        FormProblem::DemurrageRateOutOfRange { value } => {
            t.tf("ledger.problem_demurrage_rate", &[("value", value)])
        }
        FormProblem::DemurragePeriodOutOfRange { days } => t.tf(
            "ledger.problem_demurrage_period",
            &[
                ("value", &days.to_string()),
                ("max", &ledger::MAX_DEMURRAGE_PERIOD_DAYS.to_string()),
            ],
        ),
        FormProblem::UnknownDecisionRule { value } => {
            t.tf("ledger.problem_decision_rule", &[("value", value)])
        }
        FormProblem::Board(p) => crate::board_problem_text(p, lang),
        FormProblem::Other(text) => text.clone(),
    }
}

/// The catalog key of a decision rule's sentence ("simple majority: more votes for
/// than against").
fn rule_key(rule: DecisionRule) -> &'static str {
    match rule {
        DecisionRule::Simple => "decision.rule_simple",
        DecisionRule::TwoThirds => "decision.rule_two_thirds",
        DecisionRule::Consent => "decision.rule_consent",
    }
}

/// The catalog key of the sentence saying how the assembly's motions carry.
pub(crate) fn rule_in_force_key(rule: DecisionRule) -> &'static str {
    match rule {
        DecisionRule::Simple => "decision.in_force_simple",
        DecisionRule::TwoThirds => "decision.in_force_two_thirds",
        DecisionRule::Consent => "decision.in_force_consent",
    }
}

/// The catalog key of a decision rule's short name, for a choice in a form.
pub(crate) fn rule_name_key(rule: DecisionRule) -> &'static str {
    match rule {
        DecisionRule::Simple => "decision.rule_name_simple",
        DecisionRule::TwoThirds => "decision.rule_name_two_thirds",
        DecisionRule::Consent => "decision.rule_name_consent",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The problems each page words its own way have their words on both pages,
    /// in both languages; a quorum not reached says what cannot be adopted.
    #[test]
    fn problems_worded_by_page_read_on_both_pages() {
        let field = || FormField::AssemblyDate;
        let value = || "x".to_string();
        let problems = [
            FormProblem::UnknownField { name: value() },
            FormProblem::Missing(field()),
            FormProblem::NotANumber {
                field: field(),
                value: value(),
            },
            FormProblem::NotAWholeNumber {
                field: field(),
                value: value(),
            },
            FormProblem::NotADate {
                field: field(),
                value: value(),
            },
            FormProblem::Decision(DecisionProblem::QuorumNotReached {
                present: 3,
                required: 4,
            }),
        ];
        for page in [FormPage::Assembly, FormPage::Ledger] {
            for lang in Lang::ALL {
                for problem in &problems {
                    let text = form_problem_text(problem, page, &str::to_string, lang);
                    assert!(
                        !text.contains('{') && !text.contains("problem_"),
                        "{page:?} {lang}: {text}"
                    );
                }
            }
        }
        let quorum = |page| form_problem_text(&problems[5], page, &str::to_string, Lang::En);
        assert!(quorum(FormPage::Assembly).ends_with("The plan cannot be adopted."));
        assert!(quorum(FormPage::Ledger).ends_with("The rules cannot be adopted."));
    }

    #[test]
    fn the_decision_record_takes_its_fields_by_their_form_names() {
        let mut form = DecisionForm::default();
        for (name, value) in [("present", "12"), ("minutes", "Voté."), ("votes_for", "9")] {
            match form.field_mut(name) {
                Some(field) => *field = value.to_string(),
                None => panic!("{name} is a field of the record"),
            }
        }
        assert_eq!(form.present, "12");
        assert_eq!(form.minutes, "Voté.");
        assert_eq!(form.votes_for, "9");
        assert!(form.field_mut("tier.clinic").is_none());
        let dated =
            DecisionForm::dated(chrono::NaiveDate::from_ymd_opt(2026, 3, 12).unwrap_or_default());
        assert_eq!(dated.assembly_date, "2026-03-12");
    }
}
