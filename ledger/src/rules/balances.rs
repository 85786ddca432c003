//! Balances of Communs: transfers between members, and demurrage settled into the
//! commons account (`transfer` and `demurrage_settled` entries; `balances`,
//! `ledger_totals` and `transfers` tables): their payloads, recording them, the rules
//! that apply them, and reading transfers back. Balances at an instant, which may
//! replay the journal, are read in `replay`.
//!
//! Every write that changes a balance first settles it ([`settle`]): what decayed
//! since it was last settled goes to the commons, in a `demurrage_settled` entry just
//! before the act, so that the journal alone gives every balance.

use std::collections::BTreeSet;

use chrono::{DateTime, SubsecRound, Utc};
use rusqlite::{Connection, Row};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::balances::{MAX_MEMO_CHARS, NewTransfer, Transfer};
use crate::communs::{Communs, decayed_balance};
use crate::entry::{Entry, EntryKind, format_ts, parse_canonical_ts};
use crate::error::{Error, Refusal, Result};
use crate::journal::Journal;
use crate::journal::chain::{append, check_author};
use crate::parameters::LedgerParameters;
use crate::rules::sql::SqlState;
use crate::rules::state::{Account, LedgerState, TransferRow, decode, encode, require_member};

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
    /// Absent from transfers that name no intent, as from every transfer recorded
    /// before intents could be named: their payloads, and so their hashes, are
    /// unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    intent: Option<i64>,
}

impl Journal {
    /// Moves `transfer.amount` from `from` to `transfer.to`, after settling both
    /// balances' demurrage at `ts`. Refuses an unknown sender or recipient
    /// ([`Refusal::UnknownMember`]), a transfer to oneself ([`Refusal::TransferToSelf`]),
    /// an amount that is not positive ([`Refusal::NonPositiveAmount`]), more than the
    /// sender holds after demurrage ([`Refusal::InsufficientCommons`]), and a memo that
    /// does not hold ([`Refusal::InvalidMemo`]). Returns the `transfer` entry.
    pub fn transfer(&self, from: &str, transfer: &NewTransfer, ts: DateTime<Utc>) -> Result<Entry> {
        let payload = transfer_payload(transfer);
        self.write(|tx| record_transfer(tx, from, &payload, ts))
    }

    /// Moves everything `from` holds at `ts`, after demurrage, to `to`: the amount is
    /// read and sent in one transaction, so that "send all" never fails for a
    /// millionth that decayed between reading the balance and sending it. The
    /// entry records the amount as any transfer does. Refuses as
    /// [`Journal::transfer`] does, an empty balance with
    /// [`Refusal::NonPositiveAmount`].
    pub fn transfer_all(
        &self,
        from: &str,
        to: &str,
        memo: &str,
        ts: DateTime<Utc>,
    ) -> Result<Entry> {
        self.transfer_all_paying(from, to, memo, None, ts)
    }

    /// [`Journal::transfer_all`] naming the intent it pays for, if any (see
    /// [`NewTransfer::intent`]).
    pub fn transfer_all_paying(
        &self,
        from: &str,
        to: &str,
        memo: &str,
        intent: Option<i64>,
        ts: DateTime<Utc>,
    ) -> Result<Entry> {
        self.write(|tx| {
            check_author(from)?;
            let ts = ts.trunc_subsecs(3);
            settle(tx, from, &[from, to], ts)?;
            let held = SqlState::new(tx)
                .account(from)?
                .map_or(Communs::ZERO, |account| account.balance);
            let payload = transfer_payload(&NewTransfer {
                to: to.to_string(),
                amount: held,
                memo: memo.to_string(),
                intent,
            });
            record_transfer(tx, from, &payload, ts)
        })
    }

    /// The transfers `member` sent or received, newest first.
    pub fn transfers_of(&self, member: &str) -> Result<Vec<Transfer>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT t.seq, j.ts, t.from_member, t.to_member, t.amount_micro, t.memo, t.intent
                 FROM transfers t JOIN journal j ON j.seq = t.seq
                 WHERE t.from_member = ?1 OR t.to_member = ?1
                 ORDER BY t.seq DESC",
            )?;
            let mut rows = stmt.query([member])?;
            let mut transfers = Vec::new();
            while let Some(row) = rows.next()? {
                transfers.push(transfer_from_row(row)?);
            }
            Ok(transfers)
        })
    }

    /// The transfers that name an intent (that pay for it), oldest first.
    pub fn transfers_for_intents(&self) -> Result<Vec<Transfer>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT t.seq, j.ts, t.from_member, t.to_member, t.amount_micro, t.memo, t.intent
                 FROM transfers t JOIN journal j ON j.seq = t.seq
                 WHERE t.intent IS NOT NULL
                 ORDER BY t.seq",
            )?;
            let mut rows = stmt.query([])?;
            let mut transfers = Vec::new();
            while let Some(row) = rows.next()? {
                transfers.push(transfer_from_row(row)?);
            }
            Ok(transfers)
        })
    }
}

pub(crate) fn transfer_payload(t: &NewTransfer) -> Value {
    let mut payload =
        serde_json::json!({"to": t.to, "amount_micro": t.amount.micro(), "memo": t.memo});
    if let Some(intent) = t.intent {
        payload["intent"] = intent.into();
    }
    payload
}

// ---------------------------------------------------------------------------------
// Writing: the entries each act is made of, appended and applied in one transaction.

pub(crate) fn record_transfer(
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
    let entry = append(tx, kind, from, &encode(kind, &transfer)?, ts)?;
    apply_transfer(&mut SqlState::new(tx), &entry)?;
    Ok(entry)
}

/// Appends a `demurrage_settled` entry for those of `members` whose balance has
/// decayed since it was last settled, if any has.
pub(crate) fn settle(
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
    let entry = append(tx, kind, author, &payload, ts)?;
    apply_settled(&mut SqlState::new(tx), &entry)?;
    Ok(Some(entry))
}

// ---------------------------------------------------------------------------------
// Applying: what each entry does to the state, and what it must find there.

pub(crate) fn apply_settled(state: &mut impl LedgerState, entry: &Entry) -> Result<()> {
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

pub(crate) fn apply_transfer(state: &mut impl LedgerState, entry: &Entry) -> Result<()> {
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
    if let Some(intent) = transfer.intent {
        crate::rules::planning::require_payment_parties(state, intent, from, to)?;
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
        intent: transfer.intent,
    })
}

pub(crate) fn require_settled(
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
pub(crate) fn later(settled_at: Option<DateTime<Utc>>, ts: DateTime<Utc>) -> Option<DateTime<Utc>> {
    Some(settled_at.map_or(ts, |s| s.max(ts)))
}

fn memo_problem(memo: &str) -> Option<String> {
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

/// What an account holds at `at`, demurrage projected from its last settlement.
pub(crate) fn projected(
    account: &Account,
    parameters: &LedgerParameters,
    at: DateTime<Utc>,
) -> Communs {
    match account.settled_at {
        Some(since) => decayed_balance(
            account.balance,
            parameters.demurrage_rate_ppm,
            parameters.demurrage_period_ms(),
            (at - since).num_milliseconds(),
        ),
        None => account.balance,
    }
}

// ---------------------------------------------------------------------------------
// Reading.

fn transfer_from_row(row: &Row<'_>) -> Result<Transfer> {
    let seq: i64 = row.get(0)?;
    let corrupt = |problem: String| Error::Corrupt { seq, problem };
    let text = |idx: usize, name: &str| -> Result<String> {
        row.get(idx)
            .map_err(|_| corrupt(format!("transfer column `{name}` is not text")))
    };
    let ts = text(1, "ts")?;
    let amount: i64 = row
        .get(4)
        .map_err(|_| corrupt("transfer amount is not an integer".into()))?;
    Ok(Transfer {
        seq,
        ts: parse_canonical_ts(&ts)
            .ok_or_else(|| corrupt(format!("ts `{ts}` is not canonical")))?,
        from: text(2, "from_member")?,
        to: text(3, "to_member")?,
        amount: Communs::from_micro(amount),
        memo: text(5, "memo")?,
        intent: row
            .get(6)
            .map_err(|_| corrupt("transfer intent is not an integer".into()))?,
    })
}
