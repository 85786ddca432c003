//! Assembly decisions: the record of a vote, the rule it is judged by, and a plan as
//! adopted. Recording an adoption, and seeding a new journal from the site
//! configuration, is in `rules::assembly`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::entry::ts_millis;
use crate::plan::Plan;
use crate::sortition::MandateScope;

/// The author of what comes from the site configuration rather than from a member.
pub const CONFIG_AUTHOR: &str = "config";

/// The minutes of the decision record of a plan taken from the site configuration.
/// Kept in English in the journal; pages translate it.
pub const CONFIG_MINUTES: &str = "Initial plan from the site configuration";

/// How many hours ahead of the entry's UTC instant an assembly date may lie: a site
/// east of Greenwich is already on the next day (UTC+14 at the most).
const DATE_TOLERANCE_HOURS: i64 = 14;

/// The record of an assembly vote (DESIGN.md §5, §8: these field names are a contract).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub assembly_date: NaiveDate,
    pub votes_for: u32,
    pub votes_against: u32,
    pub votes_abstain: u32,
    pub quorum_required: u32,
    pub present: u32,
    pub minutes: String,
    /// The panel drawn by lot that took the decision, named by its draw (the
    /// `sortition_announced` entry's `seq`): presence, votes and quorum are then
    /// counted among its seated members, within its mandate and term
    /// ([`DecisionProblem::OutsideMandate`] and the like). Absent when the
    /// assembly took it, and from every record made before panels existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panel: Option<i64>,
}

/// When a motion carries: the rule the assembly adopts for its own decisions
/// (DESIGN.md §9), a ledger parameter like the others. Abstentions count towards
/// the quorum, never towards the majority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionRule {
    /// More votes for than against.
    #[default]
    Simple,
    /// At least two thirds of the votes for or against are for.
    TwoThirds,
    /// No vote against, and at least one for.
    Consent,
}

impl DecisionRule {
    pub const ALL: [DecisionRule; 3] = [
        DecisionRule::Simple,
        DecisionRule::TwoThirds,
        DecisionRule::Consent,
    ];

    /// The name in payloads and forms: `simple`, `two_thirds`, `consent`.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionRule::Simple => "simple",
            DecisionRule::TwoThirds => "two_thirds",
            DecisionRule::Consent => "consent",
        }
    }

    /// Whether a motion with these votes carries under this rule. No rule carries a
    /// motion nobody voted for.
    pub fn carries(self, votes_for: u32, votes_against: u32) -> bool {
        let (yes, no) = (u64::from(votes_for), u64::from(votes_against));
        yes > 0
            && match self {
                DecisionRule::Simple => yes > no,
                // yes / (yes + no) >= 2/3, in integers.
                DecisionRule::TwoThirds => 3 * yes >= 2 * (yes + no),
                DecisionRule::Consent => no == 0,
            }
    }

    /// What the rule asks, in English.
    pub fn describe(self) -> &'static str {
        match self {
            DecisionRule::Simple => "simple majority: more votes for than against",
            DecisionRule::TwoThirds => {
                "two thirds: at least two thirds of the votes for or against are for"
            }
            DecisionRule::Consent => "consent: no vote against and at least one for",
        }
    }
}

impl fmt::Display for DecisionRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DecisionRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DecisionRule::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown decision rule `{s}` (simple, two_thirds or consent)"))
    }
}

/// What adoptions are compared with: a plan's assembly date with the previous
/// plan's, a change of the ledger parameters' with the previous change's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Motion {
    Plan,
    Parameters,
}

impl Motion {
    /// Whether a panel whose mandate has `scope` may adopt this motion: a panel on
    /// energy priorities adopts priority plans, one on the ledger's parameters
    /// adopts those, and neither anything else.
    pub fn within(self, scope: MandateScope) -> bool {
        matches!(
            (scope, self),
            (MandateScope::EnergyPriorities, Motion::Plan)
                | (MandateScope::LedgerParameters, Motion::Parameters)
        )
    }
}

/// What a decision record is judged against besides itself: the rule in force, the
/// latest assembly date that is not in the future, and the assembly date of the
/// previous adoption of the same kind (none for the first, nor for the plan taken
/// from the configuration, which no assembly voted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionContext {
    pub rule: DecisionRule,
    pub latest_date: NaiveDate,
    pub previous_date: Option<NaiveDate>,
}

impl DecisionContext {
    /// The context of an adoption recorded at `ts`.
    pub fn at(ts: DateTime<Utc>, rule: DecisionRule, previous_date: Option<NaiveDate>) -> Self {
        DecisionContext {
            rule,
            latest_date: (ts + chrono::TimeDelta::hours(DATE_TOLERANCE_HOURS)).date_naive(),
            previous_date,
        }
    }
}

impl Decision {
    /// The decision record of a plan taken from the site configuration: no vote.
    pub fn from_configuration(date: NaiveDate) -> Self {
        Decision {
            assembly_date: date,
            votes_for: 0,
            votes_against: 0,
            votes_abstain: 0,
            quorum_required: 0,
            present: 0,
            minutes: CONFIG_MINUTES.to_string(),
            panel: None,
        }
    }

    /// What no decision record has ever been allowed to hold, old or new: fewer
    /// members present than the quorum, more votes than members present. The
    /// journal's replay checks these on every recorded adoption.
    pub fn inconsistencies(&self) -> Vec<DecisionProblem> {
        let mut problems = Vec::new();
        if self.present < self.quorum_required {
            problems.push(DecisionProblem::QuorumNotReached {
                present: self.present,
                required: self.quorum_required,
            });
        }
        let cast = u64::from(self.votes_for)
            + u64::from(self.votes_against)
            + u64::from(self.votes_abstain);
        if cast > u64::from(self.present) {
            problems.push(DecisionProblem::MoreVotesThanPresent {
                cast,
                present: self.present,
            });
        }
        problems
    }

    /// Everything that keeps this record from adopting anything whatever the
    /// journal holds: its [`Decision::inconsistencies`] and a quorum of zero.
    pub fn problems(&self) -> Vec<DecisionProblem> {
        let mut problems = Vec::new();
        if self.quorum_required == 0 {
            problems.push(DecisionProblem::NoQuorum);
        }
        problems.extend(self.inconsistencies());
        problems
    }

    /// Everything that keeps this record from adopting a motion now (DESIGN.md §9):
    /// its [`Decision::problems`], the motion not carried under the rule in force,
    /// an assembly date in the future or before the previous adoption's. As data,
    /// which pages phrase in their reader's language.
    pub fn problems_in(&self, context: &DecisionContext) -> Vec<DecisionProblem> {
        let mut problems = self.problems();
        if !context.rule.carries(self.votes_for, self.votes_against) {
            problems.push(DecisionProblem::NotCarried {
                rule: context.rule,
                votes_for: self.votes_for,
                votes_against: self.votes_against,
            });
        }
        if self.assembly_date > context.latest_date {
            problems.push(DecisionProblem::DateInFuture {
                date: self.assembly_date,
            });
        }
        if let Some(previous) = context.previous_date
            && self.assembly_date < previous
        {
            problems.push(DecisionProblem::DateBeforePrevious {
                date: self.assembly_date,
                previous,
            });
        }
        problems
    }
}

/// One reason a decision record cannot adopt a plan or parameters.
/// [`std::fmt::Display`] says it in English, as the JSON API does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionProblem {
    /// Fewer members present than the quorum requires.
    QuorumNotReached { present: u32, required: u32 },
    /// More votes cast (for, against and abstaining) than members present.
    MoreVotesThanPresent { cast: u64, present: u32 },
    /// A quorum of zero: a decision nobody attended.
    NoQuorum,
    /// The votes for do not carry the motion under the rule in force.
    NotCarried {
        rule: DecisionRule,
        votes_for: u32,
        votes_against: u32,
    },
    /// The assembly has not met yet.
    DateInFuture { date: NaiveDate },
    /// An older assembly than the one whose decision is in force.
    DateBeforePrevious {
        date: NaiveDate,
        previous: NaiveDate,
    },
    /// The decision names a draw that has no panel (not announced, or not drawn).
    NoSuchPanel { draw: i64 },
    /// The panel's mandate does not cover this motion.
    OutsideMandate {
        draw: i64,
        scope: MandateScope,
        motion: Motion,
    },
    /// The panel met after its term.
    AfterTerm {
        draw: i64,
        date: NaiveDate,
        term_end: NaiveDate,
    },
    /// The panel "met" before it was drawn.
    BeforePanel {
        draw: i64,
        date: NaiveDate,
        drawn_on: NaiveDate,
    },
    /// More members present than the panel has seated members.
    MorePresentThanPanel { present: u32, seated: u32 },
    /// A quorum under a majority of the panel's seated members.
    PanelQuorumTooLow {
        required: u32,
        minimum: u32,
        seated: u32,
    },
}

impl fmt::Display for DecisionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecisionProblem::QuorumNotReached { present, required } => write!(
                f,
                "quorum not reached: {present} members present, {required} required"
            ),
            DecisionProblem::MoreVotesThanPresent { cast, present } => write!(
                f,
                "{cast} votes cast (for, against and abstaining) but only {present} members present"
            ),
            DecisionProblem::NoQuorum => f.write_str("quorum_required must be at least 1"),
            DecisionProblem::NotCarried {
                rule,
                votes_for,
                votes_against,
            } => write!(
                f,
                "the motion did not carry: {votes_for} for, {votes_against} against ({})",
                rule.describe()
            ),
            DecisionProblem::DateInFuture { date } => {
                write!(f, "the assembly date {date} is in the future")
            }
            DecisionProblem::DateBeforePrevious { date, previous } => write!(
                f,
                "the assembly date {date} is before that of the previous adoption ({previous})"
            ),
            DecisionProblem::NoSuchPanel { draw } => write!(
                f,
                "draw {draw} has no panel: no such draw was announced, or it was not drawn yet"
            ),
            DecisionProblem::OutsideMandate {
                draw,
                scope,
                motion,
            } => write!(
                f,
                "the panel of draw {draw} has the mandate `{scope}`: it cannot adopt {}",
                match motion {
                    Motion::Plan => "a priority plan",
                    Motion::Parameters => "ledger parameters",
                }
            ),
            DecisionProblem::AfterTerm {
                draw,
                date,
                term_end,
            } => write!(
                f,
                "the panel of draw {draw} sat until {term_end}: it cannot decide on {date}"
            ),
            DecisionProblem::BeforePanel {
                draw,
                date,
                drawn_on,
            } => write!(
                f,
                "the panel of draw {draw} was drawn on {drawn_on}: it cannot have decided on {date}"
            ),
            DecisionProblem::MorePresentThanPanel { present, seated } => write!(
                f,
                "{present} members present but the panel has only {seated} seated members"
            ),
            DecisionProblem::PanelQuorumTooLow {
                required,
                minimum,
                seated,
            } => write!(
                f,
                "a quorum of {required} is under a majority of the panel's {seated} members \
                 (at least {minimum})"
            ),
        }
    }
}

/// A plan as adopted: the `plans` row with its journal entry's author and hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdoptedPlan {
    /// The `plan_adopted` entry; versions of the plan are told apart by it.
    pub seq: i64,
    #[serde(with = "ts_millis")]
    pub adopted_at: DateTime<Utc>,
    pub plan: Plan,
    pub decision: Decision,
    pub author: String,
    pub hash: String,
}

impl AdoptedPlan {
    /// Whether this plan came from the site configuration rather than a vote.
    pub fn is_from_configuration(&self) -> bool {
        self.author == CONFIG_AUTHOR
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn decision(present: u32, quorum: u32) -> Decision {
        Decision {
            assembly_date: date("2026-11-20"),
            votes_for: 10,
            votes_against: 2,
            votes_abstain: 1,
            quorum_required: quorum,
            present,
            minutes: "Adopted after discussion.".into(),
            panel: None,
        }
    }

    fn votes(votes_for: u32, votes_against: u32, votes_abstain: u32) -> Decision {
        Decision {
            votes_for,
            votes_against,
            votes_abstain,
            ..decision(20, 5)
        }
    }

    fn context(rule: DecisionRule) -> DecisionContext {
        DecisionContext {
            rule,
            latest_date: date("2026-11-22"),
            previous_date: Some(date("2026-10-01")),
        }
    }

    #[test]
    fn decision_serde_names_are_the_contract() {
        let value = serde_json::to_value(decision(14, 10)).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "assembly_date": "2026-11-20", "votes_for": 10, "votes_against": 2,
                "votes_abstain": 1, "quorum_required": 10, "present": 14,
                "minutes": "Adopted after discussion."
            })
        );
    }

    #[test]
    fn each_rule_counts_for_and_against_and_leaves_abstentions_out() {
        use DecisionRule::*;
        // (for, against, abstaining) -> simple, two thirds, consent; worked by hand.
        let cases = [
            ((3, 6, 1), [false, false, false]),
            ((6, 3, 1), [true, true, false]),
            // 6 of 10 for: 60 %, under two thirds.
            ((6, 4, 0), [true, false, false]),
            // 2 of 3 exactly.
            ((2, 1, 9), [true, true, false]),
            ((5, 5, 0), [false, false, false]),
            ((1, 0, 15), [true, true, true]),
            ((0, 0, 12), [false, false, false]),
            ((0, 9, 0), [false, false, false]),
        ];
        for ((f, a, x), expected) in cases {
            let outcome = [Simple, TwoThirds, Consent].map(context).map(|ctx| {
                !votes(f, a, x)
                    .problems_in(&ctx)
                    .iter()
                    .any(|p| matches!(p, DecisionProblem::NotCarried { .. }))
            });
            assert_eq!(outcome, expected, "{f} for, {a} against, {x} abstaining");
        }
    }

    #[test]
    fn a_motion_voted_down_is_named_with_its_votes() {
        let d = Decision {
            votes_for: 3,
            votes_against: 6,
            votes_abstain: 1,
            present: 10,
            quorum_required: 8,
            ..decision(0, 0)
        };
        let problems = d.problems_in(&context(DecisionRule::Simple));
        assert_eq!(
            problems,
            [DecisionProblem::NotCarried {
                rule: DecisionRule::Simple,
                votes_for: 3,
                votes_against: 6
            }]
        );
        assert!(
            problems[0]
                .to_string()
                .starts_with("the motion did not carry: 3 for, 6 against (simple majority")
        );
    }

    #[test]
    fn quorum_and_dates_are_checked() {
        let nobody = Decision {
            votes_for: 0,
            votes_against: 0,
            votes_abstain: 0,
            quorum_required: 0,
            present: 0,
            ..decision(0, 0)
        };
        assert_eq!(
            nobody.problems_in(&context(DecisionRule::Simple)),
            [
                DecisionProblem::NoQuorum,
                DecisionProblem::NotCarried {
                    rule: DecisionRule::Simple,
                    votes_for: 0,
                    votes_against: 0
                }
            ]
        );
        let future = Decision {
            assembly_date: date("2030-01-01"),
            ..decision(14, 10)
        };
        assert_eq!(
            future.problems_in(&context(DecisionRule::Simple)),
            [DecisionProblem::DateInFuture {
                date: date("2030-01-01")
            }]
        );
        let older = Decision {
            assembly_date: date("2026-09-30"),
            ..decision(14, 10)
        };
        assert_eq!(
            older.problems_in(&context(DecisionRule::Simple)),
            [DecisionProblem::DateBeforePrevious {
                date: date("2026-09-30"),
                previous: date("2026-10-01")
            }]
        );
        // The same day as the previous adoption, and the latest day, are fine.
        for day in ["2026-10-01", "2026-11-22"] {
            let d = Decision {
                assembly_date: date(day),
                ..decision(14, 10)
            };
            assert_eq!(d.problems_in(&context(DecisionRule::Simple)), [], "{day}");
        }
    }

    #[test]
    fn a_site_east_of_greenwich_may_date_today_before_utc_does() {
        let ts = "2026-11-22T10:30:00Z".parse::<DateTime<Utc>>().unwrap();
        // 10:30 UTC is 00:30 on the 23rd at UTC+14.
        let ctx = DecisionContext::at(ts, DecisionRule::Simple, None);
        assert_eq!(ctx.latest_date, date("2026-11-23"));
    }

    #[test]
    fn rule_names_round_trip() {
        for rule in DecisionRule::ALL {
            assert_eq!(rule.as_str().parse::<DecisionRule>(), Ok(rule));
            assert_eq!(
                serde_json::to_value(rule).unwrap(),
                serde_json::json!(rule.as_str())
            );
        }
        assert!("majority".parse::<DecisionRule>().is_err());
        assert_eq!(DecisionRule::default(), DecisionRule::Simple);
    }
}
