//! Assembly decisions: the record of a vote and a plan as adopted. Recording an
//! adoption, and seeding a new journal from the site configuration, is in
//! `rules::assembly`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::entry::ts_millis;
use crate::plan::Plan;

/// The author of what comes from the site configuration rather than from a member.
pub const CONFIG_AUTHOR: &str = "config";

/// The minutes of the decision record of a plan taken from the site configuration.
/// Kept in English in the journal; pages translate it.
pub const CONFIG_MINUTES: &str = "Initial plan from the site configuration";

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
        }
    }

    /// What a decision record must satisfy for its plan to be adopted; each message
    /// says what is wrong in words (the [`DecisionProblem`]s of
    /// [`Decision::problems`], in English).
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.iter().map(ToString::to_string).collect())
        }
    }

    /// Everything that keeps this decision record from adopting a plan, as data that
    /// pages phrase in their reader's language.
    pub fn problems(&self) -> Vec<DecisionProblem> {
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
}

/// One reason a decision record cannot adopt a plan. [`std::fmt::Display`] says it in
/// English, as the JSON API does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionProblem {
    /// Fewer members present than the quorum requires.
    QuorumNotReached { present: u32, required: u32 },
    /// More votes cast (for, against and abstaining) than members present.
    MoreVotesThanPresent { cast: u64, present: u32 },
}

impl std::fmt::Display for DecisionProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecisionProblem::QuorumNotReached { present, required } => write!(
                f,
                "quorum not reached: {present} members present, {required} required"
            ),
            DecisionProblem::MoreVotesThanPresent { cast, present } => write!(
                f,
                "{cast} votes cast (for, against and abstaining) but only {present} members present"
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

    fn decision(present: u32, quorum: u32) -> Decision {
        Decision {
            assembly_date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
            votes_for: 10,
            votes_against: 2,
            votes_abstain: 1,
            quorum_required: quorum,
            present,
            minutes: "Adopted after discussion.".into(),
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
}
