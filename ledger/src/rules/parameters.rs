//! The ledger's parameters as the assembly adopts them (`parameters_adopted` entries,
//! `ledger_parameters` table): the payload, adopting them, the rule that applies an
//! adoption, and reading adoptions back. When the demurrage rate or period changes,
//! every balance is first settled at the old one.

use chrono::{DateTime, SubsecRound, Utc};
use rusqlite::{Connection, Row};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::assembly::{Decision, Motion};
use crate::entry::{Entry, EntryKind, canonical_json, parse_canonical_ts};
use crate::error::{Error, Refusal, Result};
use crate::journal::Journal;
use crate::journal::chain::{append, check_author};
use crate::parameters::{AdoptedParameters, LedgerParameters};
use crate::rules::assembly::decision_context;
use crate::rules::balances::{later, require_settled, settle};
use crate::rules::sortition;
use crate::rules::sql::SqlState;
use crate::rules::state::{LedgerState, StoredParameters, decode, encode, parameters_from_stored};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParametersAdopted {
    parameters: StoredParameters,
    decision: Decision,
}

impl Journal {
    /// Records the assembly's adoption of `parameters` under `decision`, if the
    /// motion carried (DESIGN.md §9). Refuses parameters out of bounds
    /// ([`Refusal::InvalidParameters`]) and a decision record with any of the
    /// [`Decision::problems_in`] of [`Journal::decision_context`]
    /// ([`Refusal::InvalidDecision`]): no quorum, the motion not carried under the
    /// rule in force (a new rule too is adopted under the one it replaces), an
    /// assembly in the future or older than the previous adoption's. When the demurrage rate or
    /// period changes, every balance is first settled at the old one up to `ts`
    /// (see the module docs). Returns the `parameters_adopted` entry.
    pub fn adopt_ledger_parameters(
        &self,
        parameters: &LedgerParameters,
        decision: &Decision,
        author: &str,
        ts: DateTime<Utc>,
    ) -> Result<Entry> {
        let payload = parameters_payload(parameters, decision);
        self.write(|tx| adopt(tx, author, &payload, ts))
    }

    /// The parameters in force now: the latest adopted, or the defaults.
    pub fn ledger_parameters(&self) -> Result<LedgerParameters> {
        Ok(self
            .parameters_history()?
            .into_iter()
            .next()
            .map(|a| a.parameters)
            .unwrap_or_default())
    }

    /// Every adoption of ledger parameters, newest first.
    pub fn parameters_history(&self) -> Result<Vec<AdoptedParameters>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT p.seq, j.ts, p.parameters, p.decision, j.author
                 FROM ledger_parameters p JOIN journal j ON j.seq = p.seq
                 ORDER BY p.seq DESC",
            )?;
            let mut rows = stmt.query([])?;
            let mut all = Vec::new();
            while let Some(row) = rows.next()? {
                all.push(adopted_from_row(row)?);
            }
            Ok(all)
        })
    }
}

fn parameters_payload(p: &LedgerParameters, decision: &Decision) -> Value {
    serde_json::json!({"parameters": StoredParameters::from(p), "decision": decision})
}

pub(crate) fn adopt(
    tx: &Connection,
    author: &str,
    payload: &Value,
    ts: DateTime<Utc>,
) -> Result<Entry> {
    check_author(author)?;
    let ts = ts.trunc_subsecs(3);
    let kind = EntryKind::ParametersAdopted;
    let adopted: ParametersAdopted = decode(kind, payload)?;
    let parameters = LedgerParameters::from(&adopted.parameters);
    let problems = parameters.problems();
    if !problems.is_empty() {
        return Err(Refusal::InvalidParameters(problems).into());
    }
    let context = decision_context(tx, Motion::Parameters, ts)?;
    let mut problems = adopted.decision.problems_in(&context);
    problems.extend(sortition::panel_problems(
        tx,
        &adopted.decision,
        Motion::Parameters,
    )?);
    if !problems.is_empty() {
        return Err(Refusal::InvalidDecision(problems).into());
    }
    let current = SqlState::new(tx).parameters()?;
    if current.demurrage_differs(&parameters) {
        let members: Vec<String> = SqlState::new(tx)
            .accounts()?
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let members: Vec<&str> = members.iter().map(String::as_str).collect();
        settle(tx, author, &members, ts)?;
    }
    let entry = append(tx, kind, author, &encode(kind, &adopted)?, ts)?;
    apply(&mut SqlState::new(tx), &entry)?;
    Ok(entry)
}

/// Applies a recorded adoption. Only what has held of every adoption since the
/// first is required of it: parameters in bounds and a consistent decision record.
/// The decision rule and the dates are checked when an adoption is recorded, and
/// past adoptions that today's rule would refuse are warnings of
/// [`Journal::verify`], not breaks: they were the rule when they were recorded.
pub(crate) fn apply(state: &mut impl LedgerState, entry: &Entry) -> Result<()> {
    let adopted: ParametersAdopted = decode(entry.kind, &entry.payload)?;
    let parameters = LedgerParameters::from(&adopted.parameters);
    let problems = parameters.problems();
    if !problems.is_empty() {
        return Err(Refusal::InvalidParameters(problems).into());
    }
    let problems = adopted.decision.inconsistencies();
    if !problems.is_empty() {
        return Err(Refusal::InvalidDecision(problems).into());
    }
    let current = state.parameters()?;
    if current.demurrage_differs(&parameters) {
        for (member, mut account) in state.accounts()? {
            require_settled(&member, &account, &current, entry.ts)?;
            let settled_at = later(account.settled_at, entry.ts);
            if account.settled_at.is_some() && settled_at != account.settled_at {
                account.settled_at = settled_at;
                account.last_seq = entry.seq;
                state.put_account(&member, &account)?;
            }
        }
    }
    let (Some(p), Some(d)) = (
        entry.payload.get("parameters"),
        entry.payload.get("decision"),
    ) else {
        return Err(Refusal::LedgerRule("parameters_adopted without its parts".into()).into());
    };
    state.add_parameters(entry.seq, &canonical_json(p), &canonical_json(d))
}

fn adopted_from_row(row: &Row<'_>) -> Result<AdoptedParameters> {
    let seq: i64 = row.get(0)?;
    let corrupt = |problem: String| Error::Corrupt { seq, problem };
    let text = |idx: usize, name: &str| -> Result<String> {
        row.get(idx)
            .map_err(|_| corrupt(format!("column `{name}` is not text")))
    };
    let ts = text(1, "ts")?;
    let adopted_at =
        parse_canonical_ts(&ts).ok_or_else(|| corrupt(format!("ts `{ts}` is not canonical")))?;
    let parameters = parameters_from_stored(&text(2, "parameters")?)
        .map_err(|e| corrupt(format!("the stored parameters do not decode: {e}")))?;
    let decision = serde_json::from_str(&text(3, "decision")?)
        .map_err(|e| corrupt(format!("the stored decision does not decode: {e}")))?;
    Ok(AdoptedParameters {
        seq,
        adopted_at,
        parameters,
        decision,
        author: text(4, "author")?,
    })
}
