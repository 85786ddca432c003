//! Contributions and attestations (`contribution_recorded`, `attestation` and
//! `contribution_validated` entries; `contributions` and `attestations` tables).
//!
//! A member records what they did for the community; other members approve or
//! reject it. The `k`-th approval from distinct members other than the contributor
//! validates it and mints `hours x rate` Communs to the contributor, in the same
//! transaction as that approval; the `k`-th rejection rejects it. `k` and the rates
//! are the assembly's (see `parameters`). A contribution's id is the `seq` of the
//! entry that recorded it.
//!
//! This module holds what contributions are; recording and reading them, and the
//! rules themselves (who may attest, when a contribution is decided, what it mints),
//! are in `rules::contributions`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::communs::{Communs, Hours};
use crate::entry::{Entry, ts_millis};

/// Most hours one contribution may count: one day.
pub const MAX_HOURS: f64 = 24.0;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1_000;
/// Longest attestation comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 500;
/// How far past the UTC date of `ts` a contribution's date may lie: the ledger does
/// not know the site's time zone, and at `ts` it is already this much later in the
/// easternmost one (UTC+14). A date past that is in the future everywhere.
pub const DATE_TOLERANCE_HOURS: i64 = 14;

/// What kind of work a contribution is (DESIGN.md §5). The serde name is what
/// payloads, tables and the JSON API hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Care,
    Teaching,
    Repair,
    Gardening,
    Cooking,
    EnergySharing,
    Other,
}

impl Category {
    pub const ALL: [Category; 7] = [
        Category::Care,
        Category::Teaching,
        Category::Repair,
        Category::Gardening,
        Category::Cooking,
        Category::EnergySharing,
        Category::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Care => "care",
            Category::Teaching => "teaching",
            Category::Repair => "repair",
            Category::Gardening => "gardening",
            Category::Cooking => "cooking",
            Category::EnergySharing => "energy_sharing",
            Category::Other => "other",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Category {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown category `{s}` (care, teaching, repair, gardening, cooking, \
                     energy_sharing or other)"
                )
            })
    }
}

/// An attestation's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    Reject,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Verdict {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "approve" => Ok(Verdict::Approve),
            "reject" => Ok(Verdict::Reject),
            _ => Err(format!("unknown verdict `{s}` (approve or reject)")),
        }
    }
}

/// Where a contribution stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContributionState {
    /// Fewer than `k` approvals and fewer than `k` rejections so far.
    Pending,
    /// `k` approvals: Communs minted.
    Validated,
    /// `k` rejections: nothing minted.
    Rejected,
}

impl ContributionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ContributionState::Pending => "pending",
            ContributionState::Validated => "validated",
            ContributionState::Rejected => "rejected",
        }
    }
}

impl fmt::Display for ContributionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A contribution as a member submits it (the body of `POST /api/contributions`);
/// the member is whoever is signed in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewContribution {
    pub category: Category,
    /// More than 0, at most [`MAX_HOURS`], at most two decimals.
    pub hours: f64,
    /// When the work was done; not in the future.
    pub date: NaiveDate,
    /// What was done: not blank, at most [`MAX_DESCRIPTION_CHARS`] characters.
    pub description: String,
}

/// One reason a contribution cannot be recorded. [`fmt::Display`] says it in
/// English; pages phrase each kind in their reader's language.
#[derive(Debug, Clone, PartialEq)]
pub enum ContributionProblem {
    HoursNotPositive { hours: f64 },
    TooManyHours { hours: f64 },
    HoursTooPrecise { hours: f64 },
    DateInFuture { date: NaiveDate },
    DescriptionEmpty,
    DescriptionTooLong { chars: usize },
    DescriptionControlCharacter,
}

impl fmt::Display for ContributionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContributionProblem::HoursNotPositive { hours } => {
                write!(f, "hours must be more than 0, not {hours}")
            }
            ContributionProblem::TooManyHours { hours } => write!(
                f,
                "hours must be at most {MAX_HOURS} in one contribution, not {hours}"
            ),
            ContributionProblem::HoursTooPrecise { hours } => {
                write!(f, "hours have at most two decimals (1.25, not {hours})")
            }
            ContributionProblem::DateInFuture { date } => {
                write!(f, "the date {date} is in the future")
            }
            ContributionProblem::DescriptionEmpty => f.write_str("the description is empty"),
            ContributionProblem::DescriptionTooLong { chars } => write!(
                f,
                "the description has {chars} characters, more than {MAX_DESCRIPTION_CHARS}"
            ),
            ContributionProblem::DescriptionControlCharacter => {
                f.write_str("the description contains a control character other than a line break")
            }
        }
    }
}

impl NewContribution {
    /// Everything that keeps this contribution from being recorded at `ts`.
    pub fn problems(&self, ts: DateTime<Utc>) -> Vec<ContributionProblem> {
        let mut problems = Vec::new();
        let hours = self.hours;
        if !(hours.is_finite() && hours > 0.0) {
            problems.push(ContributionProblem::HoursNotPositive { hours });
        } else if hours > MAX_HOURS {
            problems.push(ContributionProblem::TooManyHours { hours });
        } else if Hours::from_hours(hours).is_none() {
            problems.push(ContributionProblem::HoursTooPrecise { hours });
        }
        let latest = (ts + chrono::TimeDelta::hours(DATE_TOLERANCE_HOURS)).date_naive();
        if self.date > latest {
            problems.push(ContributionProblem::DateInFuture { date: self.date });
        }
        problems.extend(text_problems(&self.description));
        problems
    }
}

fn text_problems(description: &str) -> Option<ContributionProblem> {
    let chars = description.chars().count();
    if description.trim().is_empty() {
        Some(ContributionProblem::DescriptionEmpty)
    } else if chars > MAX_DESCRIPTION_CHARS {
        Some(ContributionProblem::DescriptionTooLong { chars })
    } else if description.chars().any(|c| c.is_control() && c != '\n') {
        Some(ContributionProblem::DescriptionControlCharacter)
    } else {
        None
    }
}

/// What is wrong with an attestation comment, if anything: at most
/// [`MAX_COMMENT_CHARS`] characters, no control character but line breaks, and not
/// blank for a rejection (the contributor should learn why).
pub(crate) fn comment_problem(verdict: Verdict, comment: &str) -> Option<String> {
    let chars = comment.chars().count();
    if verdict == Verdict::Reject && comment.trim().is_empty() {
        Some("a rejection needs a comment saying why".into())
    } else if chars > MAX_COMMENT_CHARS {
        Some(format!(
            "the comment has {chars} characters, more than {MAX_COMMENT_CHARS}"
        ))
    } else if comment.chars().any(|c| c.is_control() && c != '\n') {
        Some("the comment contains a control character other than a line break".into())
    } else {
        None
    }
}

/// One member's verdict on a contribution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attestation {
    /// The `attestation` entry.
    pub seq: i64,
    /// Who attests.
    pub member: String,
    pub verdict: Verdict,
    pub comment: String,
    #[serde(with = "ts_millis")]
    pub ts: DateTime<Utc>,
}

/// A contribution as the pages and the JSON API show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contribution {
    /// The `seq` of the `contribution_recorded` entry.
    pub id: i64,
    /// Who contributed.
    pub member: String,
    pub category: Category,
    pub hours: Hours,
    pub date: NaiveDate,
    pub description: String,
    #[serde(with = "ts_millis")]
    pub recorded_at: DateTime<Utc>,
    pub state: ContributionState,
    /// Oldest first.
    pub attestations: Vec<Attestation>,
    /// Communs minted, once validated.
    pub minted: Option<Communs>,
    /// When it was validated or rejected.
    #[serde(with = "ts_millis::option")]
    pub decided_at: Option<DateTime<Utc>>,
}

/// What an attestation did.
#[derive(Debug, Clone, PartialEq)]
pub struct Attested {
    /// The `attestation` entry.
    pub attestation: Entry,
    /// The contribution's state after it.
    pub state: ContributionState,
    /// The `contribution_validated` entry, when this approval was the `k`-th.
    pub validation: Option<Entry>,
    /// What that validation minted.
    pub minted: Option<Communs>,
    /// The `commitment_fulfilled` entry, when the validated contribution fulfils a
    /// commitment.
    pub fulfilment: Option<Entry>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn new(hours: f64, date: &str, description: &str) -> NewContribution {
        NewContribution {
            category: Category::Repair,
            hours,
            date: date.parse().unwrap(),
            description: description.into(),
        }
    }

    #[test]
    fn categories_and_verdicts_round_trip() {
        for c in Category::ALL {
            assert_eq!(c.as_str().parse::<Category>(), Ok(c));
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        assert!(
            "plumbing"
                .parse::<Category>()
                .unwrap_err()
                .contains("energy_sharing")
        );
        for v in [Verdict::Approve, Verdict::Reject] {
            assert_eq!(v.as_str().parse::<Verdict>(), Ok(v));
        }
    }

    #[test]
    fn each_problem_is_named() {
        let ts = at("2026-11-22T10:00:00Z");
        assert_eq!(new(1.5, "2026-11-22", "Fixed a bike").problems(ts), []);
        assert_eq!(new(24.0, "2026-11-23", "Night watch").problems(ts), []);
        let cases = [
            (
                new(0.0, "2026-11-22", "x"),
                "hours must be more than 0, not 0",
            ),
            (
                new(-2.0, "2026-11-22", "x"),
                "hours must be more than 0, not -2",
            ),
            (
                new(f64::NAN, "2026-11-22", "x"),
                "hours must be more than 0",
            ),
            (
                new(24.5, "2026-11-22", "x"),
                "hours must be at most 24 in one contribution, not 24.5",
            ),
            (
                new(1.255, "2026-11-22", "x"),
                "at most two decimals (1.25, not 1.255)",
            ),
            (
                new(1.0, "2026-11-24", "x"),
                "the date 2026-11-24 is in the future",
            ),
            (new(1.0, "2026-11-22", "  "), "the description is empty"),
            (new(1.0, "2026-11-22", &"x".repeat(1001)), "1001 characters"),
            (new(1.0, "2026-11-22", "a\u{7}b"), "control character"),
        ];
        for (contribution, expected) in cases {
            let problems = contribution.problems(ts);
            assert_eq!(problems.len(), 1, "{contribution:?}: {problems:?}");
            let text = problems[0].to_string();
            assert!(text.contains(expected), "{text:?} should say {expected:?}");
        }
    }

    #[test]
    fn tomorrow_is_accepted_only_where_it_is_already_tomorrow() {
        // 10:00 UTC is 00:00 on the next day in UTC+14; 09:59 is not yet.
        let c = new(1.0, "2026-11-23", "Early bread");
        assert_eq!(c.problems(at("2026-11-22T10:00:00Z")), []);
        assert_eq!(c.problems(at("2026-11-22T09:59:59Z")).len(), 1);
    }

    #[test]
    fn comments() {
        assert_eq!(comment_problem(Verdict::Approve, ""), None);
        assert!(
            comment_problem(Verdict::Reject, " ")
                .unwrap()
                .contains("saying why")
        );
        assert_eq!(
            comment_problem(Verdict::Reject, "I was there, it was 1 hour"),
            None
        );
        assert!(comment_problem(Verdict::Approve, &"x".repeat(501)).is_some());
    }
}
