//! The state the contribution ledger's rules act on, behind [`LedgerState`]: the
//! derived tables while recording and rebuilding (`rules::sql`), or their image in
//! memory while replaying (`replay`), so that the replay that checks the tables cannot
//! drift from the code that wrote them. And what the rules share: decoding payloads,
//! the stored form of the parameters, knowing who is a member.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::assembly::DecisionRule;
use crate::communs::{Communs, Hours};
use crate::contributions::{Category, ContributionState, Verdict};
use crate::entry::EntryKind;
use crate::error::{Refusal, Result};
use crate::members::Role;
use crate::parameters::LedgerParameters;
use crate::planning::{Action, Direction, Quantity, Unit, Visibility};

/// A member's balance as last settled.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Account {
    pub(crate) balance: Communs,
    /// When the balance was last settled; `None` until it first holds anything.
    pub(crate) settled_at: Option<DateTime<Utc>>,
    /// The entry that last changed it.
    pub(crate) last_seq: i64,
}

/// The totals of the ledger: what demurrage gave the commons, what was minted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Totals {
    pub(crate) commons: Communs,
    pub(crate) minted: Communs,
    pub(crate) last_seq: i64,
}

/// A contribution's stage. `Approved` is the instant between the `k`-th approval and
/// its validation, which follow each other in one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Pending,
    Approved,
    Validated,
    Rejected,
}

impl Stage {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Stage::Pending => "pending",
            Stage::Approved => "approved",
            Stage::Validated => "validated",
            Stage::Rejected => "rejected",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Stage> {
        [
            Stage::Pending,
            Stage::Approved,
            Stage::Validated,
            Stage::Rejected,
        ]
        .into_iter()
        .find(|stage| stage.as_str() == s)
    }

    pub(crate) fn public(self) -> ContributionState {
        match self {
            Stage::Pending | Stage::Approved => ContributionState::Pending,
            Stage::Validated => ContributionState::Validated,
            Stage::Rejected => ContributionState::Rejected,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContributionRow {
    pub(crate) id: i64,
    pub(crate) member: String,
    pub(crate) category: Category,
    pub(crate) hours: Hours,
    pub(crate) date: NaiveDate,
    pub(crate) description: String,
    pub(crate) stage: Stage,
    pub(crate) approvals: u32,
    pub(crate) rejections: u32,
    pub(crate) minted: Option<Communs>,
    pub(crate) decided_seq: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttestationRow {
    pub(crate) seq: i64,
    pub(crate) contribution: i64,
    pub(crate) member: String,
    pub(crate) verdict: Verdict,
    pub(crate) comment: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TransferRow {
    pub(crate) seq: i64,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) amount: Communs,
    pub(crate) memo: String,
    pub(crate) intent: Option<i64>,
}

/// An intent as the `intents` table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IntentRow {
    pub(crate) id: i64,
    pub(crate) author: String,
    pub(crate) direction: Direction,
    pub(crate) action: Action,
    pub(crate) class: String,
    pub(crate) quantity: Quantity,
    pub(crate) unit: Unit,
    pub(crate) window_start: Option<DateTime<Utc>>,
    pub(crate) window_end: Option<DateTime<Utc>>,
    pub(crate) expires_at: Option<DateTime<Utc>>,
    pub(crate) description: String,
    pub(crate) visibility: Visibility,
    pub(crate) collective: bool,
    /// Held by accepted commitments; a released one keeps only what it fulfilled.
    pub(crate) committed: Quantity,
    pub(crate) fulfilled: Quantity,
    /// The fulfilment that brought `fulfilled` to `quantity`, or the
    /// `intent_closed` entry.
    pub(crate) closed_seq: Option<i64>,
    /// The device a repair need the node opened is about.
    pub(crate) device: Option<String>,
}

/// A commitment as the `commitments` table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommitmentRow {
    pub(crate) id: i64,
    pub(crate) intent: i64,
    pub(crate) provider: String,
    pub(crate) receiver: String,
    pub(crate) proposed_by: String,
    pub(crate) quantity: Quantity,
    pub(crate) note: String,
    pub(crate) accepted_seq: Option<i64>,
    pub(crate) released_seq: Option<i64>,
    pub(crate) fulfilled: Quantity,
    /// The node's `load_shift_certified` entry, for a load shifted into one of its
    /// surplus offers.
    pub(crate) certified_seq: Option<i64>,
}

/// A contribution that names the commitment it fulfils (`fulfilments` table), and
/// what its validation fulfilled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FulfilmentRow {
    pub(crate) contribution: i64,
    pub(crate) commitment: i64,
    /// The `commitment_fulfilled` entry, once the contribution is validated.
    pub(crate) fulfilment_seq: Option<i64>,
    pub(crate) quantity: Quantity,
}

/// What the rules read and write: the derived tables, or their image in memory.
pub(crate) trait LedgerState {
    fn is_member(&mut self, name: &str) -> Result<bool>;
    /// The parameters in force: the latest adopted, or the defaults.
    fn parameters(&mut self) -> Result<LedgerParameters>;
    fn add_parameters(&mut self, seq: i64, parameters: &str, decision: &str) -> Result<()>;
    fn contribution(&mut self, id: i64) -> Result<Option<ContributionRow>>;
    fn put_contribution(&mut self, row: &ContributionRow) -> Result<()>;
    fn has_attested(&mut self, contribution: i64, member: &str) -> Result<bool>;
    fn add_attestation(&mut self, row: &AttestationRow) -> Result<()>;
    fn account(&mut self, member: &str) -> Result<Option<Account>>;
    /// Every account, by member name.
    fn accounts(&mut self) -> Result<Vec<(String, Account)>>;
    fn put_account(&mut self, member: &str, account: &Account) -> Result<()>;
    fn totals(&mut self) -> Result<Totals>;
    fn put_totals(&mut self, totals: &Totals) -> Result<()>;
    fn add_transfer(&mut self, row: &TransferRow) -> Result<()>;
    fn has_role(&mut self, name: &str, role: Role) -> Result<bool>;
    fn intent(&mut self, id: i64) -> Result<Option<IntentRow>>;
    fn put_intent(&mut self, row: &IntentRow) -> Result<()>;
    fn commitment(&mut self, id: i64) -> Result<Option<CommitmentRow>>;
    fn put_commitment(&mut self, row: &CommitmentRow) -> Result<()>;
    /// The commitment contribution `id` names, if any, and what it fulfilled.
    fn fulfilment(&mut self, contribution: i64) -> Result<Option<FulfilmentRow>>;
    fn put_fulfilment(&mut self, row: &FulfilmentRow) -> Result<()>;
    /// The commitments on intent `intent`, in any state.
    fn commitments_on(&mut self, intent: i64) -> Result<Vec<CommitmentRow>>;
}

/// Ledger parameters as payloads and the `ledger_parameters` table hold them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoredParameters {
    attestations_needed: u32,
    rates_micro_per_hour: BTreeMap<Category, i64>,
    demurrage_rate_ppm: u32,
    demurrage_period_days: u32,
    /// Absent from adoptions recorded before the rule could be adopted: `simple`.
    #[serde(default)]
    decision_rule: DecisionRule,
}

impl From<&LedgerParameters> for StoredParameters {
    fn from(p: &LedgerParameters) -> Self {
        StoredParameters {
            attestations_needed: p.attestations_needed,
            rates_micro_per_hour: p
                .rates_per_hour
                .iter()
                .map(|(c, r)| (*c, r.micro()))
                .collect(),
            demurrage_rate_ppm: p.demurrage_rate_ppm,
            demurrage_period_days: p.demurrage_period_days,
            decision_rule: p.decision_rule,
        }
    }
}

impl From<&StoredParameters> for LedgerParameters {
    fn from(p: &StoredParameters) -> Self {
        LedgerParameters {
            attestations_needed: p.attestations_needed,
            rates_per_hour: p
                .rates_micro_per_hour
                .iter()
                .map(|(c, r)| (*c, Communs::from_micro(*r)))
                .collect(),
            demurrage_rate_ppm: p.demurrage_rate_ppm,
            demurrage_period_days: p.demurrage_period_days,
            decision_rule: p.decision_rule,
        }
    }
}

/// Parameters from the `parameters` column of `ledger_parameters`.
pub(crate) fn parameters_from_stored(text: &str) -> Result<LedgerParameters, String> {
    serde_json::from_str::<StoredParameters>(text)
        .map(|p| LedgerParameters::from(&p))
        .map_err(|e| e.to_string())
}

pub(crate) fn decode<T: DeserializeOwned>(kind: EntryKind, payload: &Value) -> Result<T> {
    serde_json::from_value(payload.clone()).map_err(|e| {
        Refusal::InvalidPayload {
            kind,
            reason: e.to_string(),
        }
        .into()
    })
}

pub(crate) fn encode<T: Serialize>(kind: EntryKind, payload: &T) -> Result<Value> {
    serde_json::to_value(payload).map_err(|e| {
        Refusal::InvalidPayload {
            kind,
            reason: e.to_string(),
        }
        .into()
    })
}

pub(crate) fn require_member(state: &mut impl LedgerState, name: &str) -> Result<()> {
    if state.is_member(name)? {
        Ok(())
    } else {
        Err(Refusal::UnknownMember(name.to_string()).into())
    }
}
