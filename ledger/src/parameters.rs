//! The ledger's parameters, set by the assembly (`parameters_adopted` entries,
//! `ledger_parameters` table): how many approvals validate a contribution, what an
//! hour of each category mints, and the demurrage rate and period.
//!
//! They are adopted like plans, under a [`Decision`] that must carry under the
//! decision rule in force, and apply from the adoption onward, never backwards:
//!
//! - **Demurrage**: when the rate or period changes, every balance is settled at the
//!   old rate up to the adoption instant (a `demurrage_settled` entry just before the
//!   `parameters_adopted` one, in the same transaction), and decays at the new rate
//!   after it.
//! - **Attestations needed** (`k`): the `k` in force when an attestation is recorded
//!   decides whether that attestation validates (or rejects) the contribution. An
//!   adoption decides nothing by itself: a pending contribution that already has the
//!   new `k` approvals is validated by its next approval.
//! - **Rates**: a contribution mints at the rate in force when it is validated.
//! - **Decision rule** ([`DecisionRule`]): the rule every later adoption, of a plan
//!   or of parameters, is judged by. Its own adoption is judged by the rule in force
//!   before it. Adoptions recorded before the rule existed carry none and mean
//!   `simple`.
//!
//! Until the assembly adopts any, the [`LedgerParameters::default`] apply: 2
//! approvals, 10 Communs per hour in every category, 2 % per 30 days, simple
//! majority.
//!
//! Adopting and reading them is in `rules::parameters`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::assembly::{Decision, DecisionRule};
use crate::communs::{Communs, MAX_DEMURRAGE_RATE_PPM};
use crate::contributions::Category;
use crate::entry::ts_millis;

/// Most approvals (or rejections) the assembly can require.
pub const MAX_ATTESTATIONS_NEEDED: u32 = 50;
/// Highest rate per hour the assembly can set, in Communs.
pub const MAX_RATE_PER_HOUR: Communs = Communs::from_whole(1_000);
/// Longest demurrage period the assembly can set, in days (ten years).
pub const MAX_DEMURRAGE_PERIOD_DAYS: u32 = 3_650;

const DAY_MS: i64 = 86_400_000;

/// What the assembly decides for the contribution ledger
/// ([`crate::Journal::adopt_ledger_parameters`]). An adoption applies from its instant on:
/// balances decay at the old demurrage up to it (they are settled then) and at the
/// new one after; the `k` in force when each attestation is recorded decides whether
/// it validates or rejects (an adoption decides no pending contribution by itself);
/// a contribution mints at the rates in force when it is validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerParameters {
    /// `k`: distinct members other than the contributor whose approvals validate a
    /// contribution, and whose rejections reject it.
    pub attestations_needed: u32,
    /// Communs minted per hour validated, for every category.
    pub rates_per_hour: BTreeMap<Category, Communs>,
    /// `r`: the share of a balance that decays over one period, in parts per million
    /// (20 000 is 2 %).
    pub demurrage_rate_ppm: u32,
    /// `P`: the demurrage period, in days.
    pub demurrage_period_days: u32,
    /// When the assembly's motions carry (`simple` when not given).
    #[serde(default)]
    pub decision_rule: DecisionRule,
}

impl Default for LedgerParameters {
    /// 2 approvals, 10 Communs per hour in every category, 2 % per 30 days, simple
    /// majority.
    fn default() -> Self {
        LedgerParameters {
            attestations_needed: 2,
            rates_per_hour: Category::ALL
                .into_iter()
                .map(|c| (c, Communs::from_whole(10)))
                .collect(),
            demurrage_rate_ppm: 20_000,
            demurrage_period_days: 30,
            decision_rule: DecisionRule::Simple,
        }
    }
}

impl LedgerParameters {
    /// The rate of a category (zero for one the parameters do not list, which
    /// [`LedgerParameters::problems`] refuses).
    pub fn rate(&self, category: Category) -> Communs {
        self.rates_per_hour
            .get(&category)
            .copied()
            .unwrap_or(Communs::ZERO)
    }

    /// The demurrage period in milliseconds.
    pub fn demurrage_period_ms(&self) -> i64 {
        i64::from(self.demurrage_period_days) * DAY_MS
    }

    /// Whether demurrage runs differently under `other`.
    pub(crate) fn demurrage_differs(&self, other: &LedgerParameters) -> bool {
        self.demurrage_rate_ppm != other.demurrage_rate_ppm
            || self.demurrage_period_days != other.demurrage_period_days
    }

    /// Everything that keeps these parameters from being adopted, each in words.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(1..=MAX_ATTESTATIONS_NEEDED).contains(&self.attestations_needed) {
            problems.push(format!(
                "attestations_needed must be between 1 and {MAX_ATTESTATIONS_NEEDED}, not {}",
                self.attestations_needed
            ));
        }
        for category in Category::ALL {
            match self.rates_per_hour.get(&category) {
                None => problems.push(format!("no rate per hour for category `{category}`")),
                Some(rate) if *rate < Communs::ZERO || *rate > MAX_RATE_PER_HOUR => {
                    problems.push(format!(
                        "the rate for `{category}` must be between 0 and {MAX_RATE_PER_HOUR} \
                         Communs per hour, not {rate}"
                    ))
                }
                Some(_) => {}
            }
        }
        if self.demurrage_rate_ppm > MAX_DEMURRAGE_RATE_PPM {
            problems.push(format!(
                "demurrage_rate_ppm must be at most {MAX_DEMURRAGE_RATE_PPM} (50 %), not {}",
                self.demurrage_rate_ppm
            ));
        }
        if !(1..=MAX_DEMURRAGE_PERIOD_DAYS).contains(&self.demurrage_period_days) {
            problems.push(format!(
                "demurrage_period_days must be between 1 and {MAX_DEMURRAGE_PERIOD_DAYS}, not {}",
                self.demurrage_period_days
            ));
        }
        problems
    }
}

/// Parameters as adopted: the `ledger_parameters` row with its entry's author.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdoptedParameters {
    /// The `parameters_adopted` entry.
    pub seq: i64,
    #[serde(with = "ts_millis")]
    pub adopted_at: DateTime<Utc>,
    pub parameters: LedgerParameters,
    pub decision: Decision,
    pub author: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_those_documented_and_adoptable() {
        let p = LedgerParameters::default();
        assert_eq!(p.attestations_needed, 2);
        assert_eq!(p.demurrage_rate_ppm, 20_000);
        assert_eq!(p.demurrage_period_days, 30);
        assert_eq!(p.rates_per_hour.len(), 7);
        assert!(
            p.rates_per_hour
                .values()
                .all(|r| *r == Communs::from_whole(10))
        );
        assert_eq!(p.problems(), Vec::<String>::new());
        assert_eq!(
            serde_json::to_value(&p).unwrap()["rates_per_hour"]["energy_sharing"],
            10.0
        );
    }

    #[test]
    fn out_of_bounds_parameters_are_named() {
        let mut p = LedgerParameters {
            attestations_needed: 0,
            demurrage_rate_ppm: 600_000,
            demurrage_period_days: 0,
            ..LedgerParameters::default()
        };
        p.rates_per_hour.remove(&Category::Cooking);
        p.rates_per_hour
            .insert(Category::Care, Communs::from_whole(-1));
        let problems = p.problems();
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(problems[0].contains("attestations_needed"));
        assert!(problems[1].contains("`care`"));
        assert!(problems[2].contains("`cooking`"));
        assert!(problems[3].contains("demurrage_rate_ppm"));
        assert!(problems[4].contains("demurrage_period_days"));
    }
}
