//! The rules of the contribution ledger, written once for every path that applies an
//! entry: recording it (the derived SQL tables, inside the write transaction),
//! rebuilding those tables from the journal, and replaying the journal in memory
//! (`verify`, balances in the past). The state they act on is behind
//! [`LedgerState`], so the replay that checks the tables cannot drift from the code
//! that wrote them.
//!
//! The payloads and the settlement rules are documented, for other programs too, in
//! the crate docs ("Entries and payloads").

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::assembly::Decision;
use crate::balances::{MAX_MEMO_CHARS, NewTransfer, projected};
use crate::communs::{Communs, Hours};
use crate::contributions::{
    Attested, Category, ContributionState, NewContribution, Verdict, comment_problem,
};
use crate::entry::{Entry, EntryKind, canonical_json, format_ts, parse_canonical_ts};
use crate::journal::{append_unchecked, check_author};
use crate::parameters::LedgerParameters;
use crate::{Error, Refusal, Result};

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
}

// ---------------------------------------------------------------------------------
// Payloads.

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContributionRecorded {
    category: Category,
    hours: f64,
    date: NaiveDate,
    description: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttestationPayload {
    contribution: i64,
    verdict: Verdict,
    comment: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContributionValidated {
    contribution: i64,
    member: String,
    hours: f64,
    rate_micro_per_hour: i64,
    minted_micro: i64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DemurrageSettled {
    accounts: Vec<Settlement>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settlement {
    member: String,
    since: String,
    balance_micro: i64,
    decayed_micro: i64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferPayload {
    to: String,
    amount_micro: i64,
    memo: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParametersAdopted {
    parameters: StoredParameters,
    decision: Decision,
}

/// Ledger parameters as payloads and the `ledger_parameters` table hold them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredParameters {
    attestations_needed: u32,
    rates_micro_per_hour: BTreeMap<Category, i64>,
    demurrage_rate_ppm: u32,
    demurrage_period_days: u32,
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
        }
    }
}

/// Parameters from the `parameters` column of `ledger_parameters`.
pub(crate) fn parameters_from_stored(text: &str) -> Result<LedgerParameters, String> {
    serde_json::from_str::<StoredParameters>(text)
        .map(|p| LedgerParameters::from(&p))
        .map_err(|e| e.to_string())
}

fn decode<T: DeserializeOwned>(kind: EntryKind, payload: &Value) -> Result<T> {
    serde_json::from_value(payload.clone()).map_err(|e| {
        Refusal::InvalidPayload {
            kind,
            reason: e.to_string(),
        }
        .into()
    })
}

fn encode<T: Serialize>(kind: EntryKind, payload: &T) -> Result<Value> {
    serde_json::to_value(payload).map_err(|e| {
        Refusal::InvalidPayload {
            kind,
            reason: e.to_string(),
        }
        .into()
    })
}

pub(crate) fn contribution_payload(c: &NewContribution) -> Value {
    serde_json::json!({
        "category": c.category,
        "hours": c.hours,
        "date": c.date,
        "description": c.description.trim(),
    })
}

pub(crate) fn attestation_payload(contribution: i64, verdict: Verdict, comment: &str) -> Value {
    serde_json::json!({"contribution": contribution, "verdict": verdict, "comment": comment})
}

pub(crate) fn transfer_payload(t: &NewTransfer) -> Value {
    serde_json::json!({"to": t.to, "amount_micro": t.amount.micro(), "memo": t.memo})
}

pub(crate) fn parameters_payload(p: &LedgerParameters, decision: &Decision) -> Value {
    serde_json::json!({"parameters": StoredParameters::from(p), "decision": decision})
}

// ---------------------------------------------------------------------------------
// Writing: the entries each act is made of, appended in one transaction.

pub(crate) fn record_contribution(
    tx: &Connection,
    member: &str,
    payload: &Value,
    ts: DateTime<Utc>,
) -> Result<Entry> {
    check_author(member)?;
    let kind = EntryKind::ContributionRecorded;
    let recorded: ContributionRecorded = decode(kind, payload)?;
    // Refused before encoding: a NaN would not survive the trip through JSON.
    let problems = new_contribution(&recorded).problems(ts.trunc_subsecs(3));
    if !problems.is_empty() {
        return Err(Refusal::InvalidContribution(problems).into());
    }
    append_unchecked(tx, kind, member, &encode(kind, &recorded)?, ts)
}

pub(crate) fn attest(
    tx: &Connection,
    member: &str,
    payload: &Value,
    ts: DateTime<Utc>,
) -> Result<Attested> {
    check_author(member)?;
    let ts = ts.trunc_subsecs(3);
    let kind = EntryKind::Attestation;
    let attestation: AttestationPayload = decode(kind, payload)?;
    let entry = append_unchecked(tx, kind, member, &encode(kind, &attestation)?, ts)?;
    let mut state = SqlState::new(tx);
    let contribution = state
        .contribution(attestation.contribution)?
        .ok_or(Refusal::NoSuchContribution(attestation.contribution))?;
    if contribution.stage != Stage::Approved {
        return Ok(Attested {
            attestation: entry,
            state: contribution.stage.public(),
            validation: None,
            minted: None,
        });
    }
    settle(tx, member, &[contribution.member.as_str()], ts)?;
    let rate = state.parameters()?.rate(contribution.category);
    let minted = mint(contribution.hours, rate)?;
    let validated = ContributionValidated {
        contribution: contribution.id,
        member: contribution.member.clone(),
        hours: contribution.hours.as_hours(),
        rate_micro_per_hour: rate.micro(),
        minted_micro: minted.micro(),
    };
    let kind = EntryKind::ContributionValidated;
    let validation = append_unchecked(tx, kind, member, &encode(kind, &validated)?, ts)?;
    Ok(Attested {
        attestation: entry,
        state: ContributionState::Validated,
        validation: Some(validation),
        minted: Some(minted),
    })
}

pub(crate) fn transfer(
    tx: &Connection,
    from: &str,
    payload: &Value,
    ts: DateTime<Utc>,
) -> Result<Entry> {
    check_author(from)?;
    let ts = ts.trunc_subsecs(3);
    let kind = EntryKind::Transfer;
    let transfer: TransferPayload = decode(kind, payload)?;
    settle(tx, from, &[from, transfer.to.as_str()], ts)?;
    append_unchecked(tx, kind, from, &encode(kind, &transfer)?, ts)
}

pub(crate) fn adopt_parameters(
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
    check_adoption(&parameters, &adopted.decision)?;
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
    append_unchecked(tx, kind, author, &encode(kind, &adopted)?, ts)
}

/// Appends a `demurrage_settled` entry for those of `members` whose balance has
/// decayed since it was last settled, if any has.
fn settle(
    tx: &Connection,
    author: &str,
    members: &[&str],
    ts: DateTime<Utc>,
) -> Result<Option<Entry>> {
    let mut state = SqlState::new(tx);
    let parameters = state.parameters()?;
    let mut seen = BTreeSet::new();
    let mut accounts = Vec::new();
    for &member in members {
        if !seen.insert(member) {
            continue;
        }
        let Some(account) = state.account(member)? else {
            continue;
        };
        let (Some(since), kept) = (account.settled_at, projected(&account, &parameters, ts)) else {
            continue;
        };
        let decayed = account.balance.micro() - kept.micro();
        if decayed > 0 {
            accounts.push(Settlement {
                member: member.to_string(),
                since: format_ts(since),
                balance_micro: account.balance.micro(),
                decayed_micro: decayed,
            });
        }
    }
    if accounts.is_empty() {
        return Ok(None);
    }
    let kind = EntryKind::DemurrageSettled;
    let payload = encode(kind, &DemurrageSettled { accounts })?;
    append_unchecked(tx, kind, author, &payload, ts).map(Some)
}

fn new_contribution(r: &ContributionRecorded) -> NewContribution {
    NewContribution {
        category: r.category,
        hours: r.hours,
        date: r.date,
        description: r.description.clone(),
    }
}

fn check_adoption(parameters: &LedgerParameters, decision: &Decision) -> Result<()> {
    let problems = parameters.problems();
    if !problems.is_empty() {
        return Err(Refusal::InvalidParameters(problems).into());
    }
    decision.validate().map_err(Refusal::InvalidDecision)?;
    Ok(())
}

/// `floor(hours x rate)`, in micro-Communs.
fn mint(hours: Hours, rate: Communs) -> Result<Communs> {
    let micro = i128::from(hours.centihours()) * i128::from(rate.micro()) / 100;
    i64::try_from(micro).map(Communs::from_micro).map_err(|_| {
        Refusal::LedgerRule(format!("{hours} hours at {rate} Communs overflow")).into()
    })
}

// ---------------------------------------------------------------------------------
// Applying: what each entry does to the state, and what it must find there.

/// Applies one entry of a ledger kind to `state`, refusing it when it breaks a rule.
/// `member_joined` and `plan_adopted` are left to their own modules.
pub(crate) fn apply(state: &mut impl LedgerState, entry: &Entry) -> Result<()> {
    match entry.kind {
        EntryKind::ContributionRecorded => apply_recorded(state, entry),
        EntryKind::Attestation => apply_attestation(state, entry),
        EntryKind::ContributionValidated => apply_validated(state, entry),
        EntryKind::DemurrageSettled => apply_settled(state, entry),
        EntryKind::Transfer => apply_transfer(state, entry),
        EntryKind::ParametersAdopted => apply_parameters(state, entry),
        EntryKind::MemberJoined | EntryKind::PlanAdopted => Ok(()),
    }
}

fn require_member(state: &mut impl LedgerState, name: &str) -> Result<()> {
    if state.is_member(name)? {
        Ok(())
    } else {
        Err(Refusal::UnknownMember(name.to_string()).into())
    }
}

fn apply_recorded(state: &mut impl LedgerState, entry: &Entry) -> Result<()> {
    let recorded: ContributionRecorded = decode(entry.kind, &entry.payload)?;
    require_member(state, &entry.author)?;
    let problems = new_contribution(&recorded).problems(entry.ts);
    let hours = Hours::from_hours(recorded.hours);
    let (true, Some(hours)) = (problems.is_empty(), hours) else {
        return Err(Refusal::InvalidContribution(problems).into());
    };
    state.put_contribution(&ContributionRow {
        id: entry.seq,
        member: entry.author.clone(),
        category: recorded.category,
        hours,
        date: recorded.date,
        description: recorded.description,
        stage: Stage::Pending,
        approvals: 0,
        rejections: 0,
        minted: None,
        decided_seq: None,
    })
}

fn apply_attestation(state: &mut impl LedgerState, entry: &Entry) -> Result<()> {
    let attestation: AttestationPayload = decode(entry.kind, &entry.payload)?;
    let id = attestation.contribution;
    let member = entry.author.as_str();
    let mut contribution = state
        .contribution(id)?
        .ok_or(Refusal::NoSuchContribution(id))?;
    require_member(state, member)?;
    if contribution.member == member {
        return Err(Refusal::SelfAttestation {
            member: member.to_string(),
            contribution: id,
        }
        .into());
    }
    match contribution.stage {
        Stage::Pending => {}
        Stage::Approved => {
            return Err(Refusal::LedgerRule(format!(
                "contribution {id} has the approvals it needs and awaits its validation"
            ))
            .into());
        }
        decided @ (Stage::Validated | Stage::Rejected) => {
            return Err(Refusal::ContributionDecided {
                contribution: id,
                state: decided.public(),
            }
            .into());
        }
    }
    if state.has_attested(id, member)? {
        return Err(Refusal::AlreadyAttested {
            member: member.to_string(),
            contribution: id,
        }
        .into());
    }
    if let Some(problem) = comment_problem(attestation.verdict, &attestation.comment) {
        return Err(Refusal::InvalidComment(problem).into());
    }
    let needed = state.parameters()?.attestations_needed;
    match attestation.verdict {
        Verdict::Approve => {
            contribution.approvals += 1;
            if contribution.approvals >= needed {
                contribution.stage = Stage::Approved;
            }
        }
        Verdict::Reject => {
            contribution.rejections += 1;
            if contribution.rejections >= needed {
                contribution.stage = Stage::Rejected;
                contribution.decided_seq = Some(entry.seq);
            }
        }
    }
    state.put_contribution(&contribution)?;
    state.add_attestation(&AttestationRow {
        seq: entry.seq,
        contribution: id,
        member: member.to_string(),
        verdict: attestation.verdict,
        comment: attestation.comment,
    })
}

fn apply_validated(state: &mut impl LedgerState, entry: &Entry) -> Result<()> {
    let validated: ContributionValidated = decode(entry.kind, &entry.payload)?;
    let id = validated.contribution;
    let mut contribution = state
        .contribution(id)?
        .ok_or(Refusal::NoSuchContribution(id))?;
    let rule = |problem: String| Err(Refusal::LedgerRule(problem).into());
    if contribution.stage != Stage::Approved {
        return rule(format!(
            "contribution {id} is {} without the approvals it needs: it cannot be validated",
            contribution.stage.public()
        ));
    }
    if validated.member != contribution.member {
        return rule(format!(
            "contribution {id} is `{}`'s, not `{}`'s",
            contribution.member, validated.member
        ));
    }
    if Hours::from_hours(validated.hours) != Some(contribution.hours) {
        return rule(format!(
            "contribution {id} counts {} hours, not {}",
            contribution.hours, validated.hours
        ));
    }
    let parameters = state.parameters()?;
    let rate = parameters.rate(contribution.category);
    if validated.rate_micro_per_hour != rate.micro() {
        return rule(format!(
            "the rate for `{}` is {rate} Communs per hour, not {}",
            contribution.category,
            Communs::from_micro(validated.rate_micro_per_hour)
        ));
    }
    let minted = mint(contribution.hours, rate)?;
    if validated.minted_micro != minted.micro() {
        return rule(format!(
            "contribution {id} mints {minted} Communs, not {}",
            Communs::from_micro(validated.minted_micro)
        ));
    }
    let member = contribution.member.clone();
    let mut account = state.account(&member)?.unwrap_or_default();
    require_settled(&member, &account, &parameters, entry.ts)?;
    account.balance = account
        .balance
        .checked_add(minted)
        .ok_or_else(|| Refusal::LedgerRule(format!("the balance of `{member}` overflows")))?;
    account.settled_at = later(account.settled_at, entry.ts);
    account.last_seq = entry.seq;
    state.put_account(&member, &account)?;
    let mut totals = state.totals()?;
    totals.minted = totals
        .minted
        .checked_add(minted)
        .ok_or_else(|| Refusal::LedgerRule("the total minted overflows".into()))?;
    totals.last_seq = entry.seq;
    state.put_totals(&totals)?;
    contribution.stage = Stage::Validated;
    contribution.minted = Some(minted);
    contribution.decided_seq = Some(entry.seq);
    state.put_contribution(&contribution)
}

fn apply_settled(state: &mut impl LedgerState, entry: &Entry) -> Result<()> {
    let settled: DemurrageSettled = decode(entry.kind, &entry.payload)?;
    let rule = |problem: String| Err(Refusal::LedgerRule(problem).into());
    if settled.accounts.is_empty() {
        return rule("a demurrage_settled entry that settles no balance".into());
    }
    let parameters = state.parameters()?;
    let mut totals = state.totals()?;
    let mut seen = BTreeSet::new();
    for s in settled.accounts {
        let member = s.member.as_str();
        if !seen.insert(s.member.clone()) {
            return rule(format!("the balance of `{member}` is settled twice"));
        }
        let Some(mut account) = state.account(member)? else {
            return rule(format!("`{member}` has no balance to settle"));
        };
        let since = account.settled_at.map(format_ts).unwrap_or_default();
        if s.since != since || s.balance_micro != account.balance.micro() {
            return rule(format!(
                "the balance of `{member}` is {} Communs settled at {since}, not {} at {}",
                account.balance,
                Communs::from_micro(s.balance_micro),
                s.since
            ));
        }
        let kept = projected(&account, &parameters, entry.ts);
        let decayed = account.balance.micro() - kept.micro();
        if s.decayed_micro != decayed || decayed <= 0 {
            return rule(format!(
                "the balance of `{member}` loses {} Communs to demurrage since {since}, not {}",
                Communs::from_micro(decayed),
                Communs::from_micro(s.decayed_micro)
            ));
        }
        account.balance = kept;
        account.settled_at = later(account.settled_at, entry.ts);
        account.last_seq = entry.seq;
        state.put_account(member, &account)?;
        totals.commons = totals
            .commons
            .checked_add(Communs::from_micro(decayed))
            .ok_or_else(|| Refusal::LedgerRule("the commons overflows".into()))?;
    }
    totals.last_seq = entry.seq;
    state.put_totals(&totals)
}

fn apply_transfer(state: &mut impl LedgerState, entry: &Entry) -> Result<()> {
    let transfer: TransferPayload = decode(entry.kind, &entry.payload)?;
    let (from, to) = (entry.author.as_str(), transfer.to.as_str());
    require_member(state, from)?;
    require_member(state, to)?;
    if from == to {
        return Err(Refusal::TransferToSelf(from.to_string()).into());
    }
    let amount = Communs::from_micro(transfer.amount_micro);
    if amount <= Communs::ZERO {
        return Err(Refusal::NonPositiveAmount(amount).into());
    }
    if let Some(problem) = memo_problem(&transfer.memo) {
        return Err(Refusal::InvalidMemo(problem).into());
    }
    let parameters = state.parameters()?;
    let mut sender = state.account(from)?.unwrap_or_default();
    let mut recipient = state.account(to)?.unwrap_or_default();
    require_settled(from, &sender, &parameters, entry.ts)?;
    require_settled(to, &recipient, &parameters, entry.ts)?;
    if sender.balance < amount {
        return Err(Refusal::InsufficientCommons {
            member: from.to_string(),
            balance: sender.balance,
            asked: amount,
        }
        .into());
    }
    sender.balance = Communs::from_micro(sender.balance.micro() - amount.micro());
    recipient.balance = recipient
        .balance
        .checked_add(amount)
        .ok_or_else(|| Refusal::LedgerRule(format!("the balance of `{to}` overflows")))?;
    for (name, account) in [(from, &mut sender), (to, &mut recipient)] {
        account.settled_at = later(account.settled_at, entry.ts);
        account.last_seq = entry.seq;
        state.put_account(name, account)?;
    }
    state.add_transfer(&TransferRow {
        seq: entry.seq,
        from: from.to_string(),
        to: to.to_string(),
        amount,
        memo: transfer.memo,
    })
}

fn apply_parameters(state: &mut impl LedgerState, entry: &Entry) -> Result<()> {
    let adopted: ParametersAdopted = decode(entry.kind, &entry.payload)?;
    let parameters = LedgerParameters::from(&adopted.parameters);
    check_adoption(&parameters, &adopted.decision)?;
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

fn require_settled(
    member: &str,
    account: &Account,
    parameters: &LedgerParameters,
    ts: DateTime<Utc>,
) -> Result<()> {
    match account.settled_at {
        Some(since) if projected(account, parameters, ts) != account.balance => {
            Err(Refusal::UnsettledDemurrage {
                member: member.to_string(),
                since: format_ts(since),
            }
            .into())
        }
        _ => Ok(()),
    }
}

/// The later of a settlement instant and `ts`: a clock set back never moves a
/// settlement back.
fn later(settled_at: Option<DateTime<Utc>>, ts: DateTime<Utc>) -> Option<DateTime<Utc>> {
    Some(settled_at.map_or(ts, |s| s.max(ts)))
}

pub(crate) fn memo_problem(memo: &str) -> Option<String> {
    let chars = memo.chars().count();
    if chars > MAX_MEMO_CHARS {
        Some(format!(
            "the memo has {chars} characters, more than {MAX_MEMO_CHARS}"
        ))
    } else if memo.chars().any(char::is_control) {
        Some("the memo contains a control character".into())
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------
// The derived tables.

/// The derived tables, inside a transaction.
pub(crate) struct SqlState<'c> {
    conn: &'c Connection,
}

impl<'c> SqlState<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Self {
        SqlState { conn }
    }
}

const SELECT_CONTRIBUTION: &str = "SELECT id, member, category, centihours, date, description,
    state, approvals, rejections, minted_micro, decided_seq FROM contributions";

pub(crate) fn contribution_row(row: &Row<'_>) -> Result<ContributionRow> {
    let id: i64 = row.get(0)?;
    let corrupt = |problem: String| Error::Corrupt { seq: id, problem };
    let bad = |name: &str| corrupt(format!("contributions column `{name}` does not read"));
    let category: String = row.get(2).map_err(|_| bad("category"))?;
    let centihours: i64 = row.get(3).map_err(|_| bad("centihours"))?;
    let date: String = row.get(4).map_err(|_| bad("date"))?;
    let stage: String = row.get(6).map_err(|_| bad("state"))?;
    let minted: Option<i64> = row.get(9).map_err(|_| bad("minted_micro"))?;
    Ok(ContributionRow {
        id,
        member: row.get(1).map_err(|_| bad("member"))?,
        category: category.parse().map_err(corrupt)?,
        hours: Hours::from_centihours(u64::try_from(centihours).map_err(|_| bad("centihours"))?),
        date: date.parse().map_err(|_| bad("date"))?,
        description: row.get(5).map_err(|_| bad("description"))?,
        stage: Stage::parse(&stage).ok_or_else(|| bad("state"))?,
        approvals: row.get(7).map_err(|_| bad("approvals"))?,
        rejections: row.get(8).map_err(|_| bad("rejections"))?,
        minted: minted.map(Communs::from_micro),
        decided_seq: row.get(10).map_err(|_| bad("decided_seq"))?,
    })
}

pub(crate) fn account_row(row: &Row<'_>) -> Result<(String, Account)> {
    let member: String = row.get(0)?;
    let last_seq: i64 = row.get(3)?;
    let corrupt = |problem: String| Error::Corrupt {
        seq: last_seq,
        problem,
    };
    let balance: i64 = row
        .get(1)
        .map_err(|_| corrupt(format!("the balance of `{member}` is not an integer")))?;
    let settled_at: Option<String> = row
        .get(2)
        .map_err(|_| corrupt(format!("settled_at of `{member}` is not text")))?;
    let settled_at = settled_at
        .map(|s| {
            parse_canonical_ts(&s)
                .ok_or_else(|| corrupt(format!("settled_at `{s}` of `{member}` is not canonical")))
        })
        .transpose()?;
    Ok((
        member,
        Account {
            balance: Communs::from_micro(balance),
            settled_at,
            last_seq,
        },
    ))
}

impl LedgerState for SqlState<'_> {
    fn is_member(&mut self, name: &str) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM members WHERE name = ?1)",
            [name],
            |row| row.get(0),
        )?)
    }

    fn parameters(&mut self) -> Result<LedgerParameters> {
        let latest: Option<(i64, String)> = self
            .conn
            .query_row(
                "SELECT seq, parameters FROM ledger_parameters ORDER BY seq DESC LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        match latest {
            None => Ok(LedgerParameters::default()),
            Some((seq, text)) => parameters_from_stored(&text).map_err(|e| Error::Corrupt {
                seq,
                problem: format!("the stored ledger parameters do not decode: {e}"),
            }),
        }
    }

    fn add_parameters(&mut self, seq: i64, parameters: &str, decision: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO ledger_parameters (seq, parameters, decision) VALUES (?1, ?2, ?3)",
            params![seq, parameters, decision],
        )?;
        Ok(())
    }

    fn contribution(&mut self, id: i64) -> Result<Option<ContributionRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{SELECT_CONTRIBUTION} WHERE id = ?1"))?;
        let mut rows = stmt.query([id])?;
        rows.next()?.map(contribution_row).transpose()
    }

    fn put_contribution(&mut self, c: &ContributionRow) -> Result<()> {
        let centihours = i64::try_from(c.hours.centihours()).unwrap_or(i64::MAX);
        self.conn.execute(
            "INSERT INTO contributions (id, member, category, centihours, date, description,
                 state, approvals, rejections, minted_micro, decided_seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (id) DO UPDATE SET member = excluded.member,
                 category = excluded.category, centihours = excluded.centihours,
                 date = excluded.date, description = excluded.description,
                 state = excluded.state, approvals = excluded.approvals,
                 rejections = excluded.rejections, minted_micro = excluded.minted_micro,
                 decided_seq = excluded.decided_seq",
            params![
                c.id,
                c.member,
                c.category.as_str(),
                centihours,
                c.date.to_string(),
                c.description,
                c.stage.as_str(),
                c.approvals,
                c.rejections,
                c.minted.map(Communs::micro),
                c.decided_seq
            ],
        )?;
        Ok(())
    }

    fn has_attested(&mut self, contribution: i64, member: &str) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM attestations WHERE contribution = ?1 AND member = ?2)",
            params![contribution, member],
            |row| row.get(0),
        )?)
    }

    fn add_attestation(&mut self, a: &AttestationRow) -> Result<()> {
        self.conn.execute(
            "INSERT INTO attestations (seq, contribution, member, verdict, comment)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                a.seq,
                a.contribution,
                a.member,
                a.verdict.as_str(),
                a.comment
            ],
        )?;
        Ok(())
    }

    fn account(&mut self, member: &str) -> Result<Option<Account>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT member, balance_micro, settled_at, last_seq FROM balances WHERE member = ?1",
        )?;
        let mut rows = stmt.query([member])?;
        Ok(rows.next()?.map(account_row).transpose()?.map(|(_, a)| a))
    }

    fn accounts(&mut self) -> Result<Vec<(String, Account)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT member, balance_micro, settled_at, last_seq FROM balances ORDER BY member",
        )?;
        let mut rows = stmt.query([])?;
        let mut all = Vec::new();
        while let Some(row) = rows.next()? {
            all.push(account_row(row)?);
        }
        Ok(all)
    }

    fn put_account(&mut self, member: &str, a: &Account) -> Result<()> {
        self.conn.execute(
            "INSERT INTO balances (member, balance_micro, settled_at, last_seq)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (member) DO UPDATE SET balance_micro = excluded.balance_micro,
                 settled_at = excluded.settled_at, last_seq = excluded.last_seq",
            params![
                member,
                a.balance.micro(),
                a.settled_at.map(format_ts),
                a.last_seq
            ],
        )?;
        Ok(())
    }

    fn totals(&mut self) -> Result<Totals> {
        let totals = self
            .conn
            .query_row(
                "SELECT commons_micro, minted_micro, last_seq FROM ledger_totals WHERE id = 1",
                [],
                |row| {
                    Ok(Totals {
                        commons: Communs::from_micro(row.get(0)?),
                        minted: Communs::from_micro(row.get(1)?),
                        last_seq: row.get(2)?,
                    })
                },
            )
            .optional()?;
        Ok(totals.unwrap_or_default())
    }

    fn put_totals(&mut self, t: &Totals) -> Result<()> {
        self.conn.execute(
            "INSERT INTO ledger_totals (id, commons_micro, minted_micro, last_seq)
             VALUES (1, ?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET commons_micro = excluded.commons_micro,
                 minted_micro = excluded.minted_micro, last_seq = excluded.last_seq",
            params![t.commons.micro(), t.minted.micro(), t.last_seq],
        )?;
        Ok(())
    }

    fn add_transfer(&mut self, t: &TransferRow) -> Result<()> {
        self.conn.execute(
            "INSERT INTO transfers (seq, from_member, to_member, amount_micro, memo)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![t.seq, t.from, t.to, t.amount.micro(), t.memo],
        )?;
        Ok(())
    }
}
