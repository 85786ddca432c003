//! Balances of Communs and transfers between members (`transfer` and
//! `demurrage_settled` entries; `balances`, `ledger_totals` and `transfers` tables).
//!
//! Demurrage is lazy. Reading a balance projects it to the instant asked for and
//! writes nothing. Every write that changes a balance first settles it: a
//! `demurrage_settled` entry, in the same transaction and just before the act, moves
//! what decayed since the balance was last settled to the commons account. So the
//! journal alone says what every balance is at every entry, and the sum of all
//! balances plus the commons always equals all that was ever minted.
//!
//! There is no way to buy, sell or convert Communs: they enter by validated
//! contributions, move by transfers, and leave to the commons by demurrage.

use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound, Utc};
use rusqlite::{Connection, Row};
use serde::{Deserialize, Serialize};

use crate::communs::{Communs, decayed_balance};
use crate::entry::{Entry, parse_canonical_ts, ts_millis};
use crate::journal::{Journal, SELECT_ENTRY, entry_from_row};
use crate::parameters::LedgerParameters;
use crate::rules::{Account, LedgerState, SqlState};
use crate::{Error, Refusal, Result};

/// Longest transfer memo, in characters.
pub const MAX_MEMO_CHARS: usize = 200;

/// A transfer as a member asks for it (the body of `POST /api/transfers`); it comes
/// from whoever is signed in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTransfer {
    pub to: String,
    /// More than zero, at most what the sender holds after demurrage.
    pub amount: Communs,
    /// Why, in a few words (may be empty; at most [`MAX_MEMO_CHARS`] characters).
    #[serde(default)]
    pub memo: String,
}

/// A recorded transfer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transfer {
    /// The `transfer` entry.
    pub seq: i64,
    #[serde(with = "ts_millis")]
    pub ts: DateTime<Utc>,
    pub from: String,
    pub to: String,
    pub amount: Communs,
    pub memo: String,
}

/// One member's balance at an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberBalance {
    pub member: String,
    pub communs: Communs,
}

/// Every balance at an instant (`GET /api/ledger/balances?at=`). Always
/// `sum(balances) + commons == minted_total`, to the micro-Commun.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Balances {
    #[serde(with = "ts_millis")]
    pub at: DateTime<Utc>,
    /// Every member, in the order they joined (zero for those who never held any).
    pub balances: Vec<MemberBalance>,
    /// What demurrage has taken from the balances, up to `at`.
    pub commons: Communs,
    /// Everything validated contributions ever minted, up to `at`.
    pub minted_total: Communs,
}

impl Journal {
    /// Moves `transfer.amount` from `from` to `transfer.to`, after settling both
    /// balances' demurrage at `ts`. Refuses an unknown sender or recipient
    /// ([`Refusal::UnknownMember`]), a transfer to oneself ([`Refusal::TransferToSelf`]),
    /// an amount that is not positive ([`Refusal::NonPositiveAmount`]), more than the
    /// sender holds after demurrage ([`Refusal::InsufficientCommons`]), and a memo that
    /// does not hold ([`Refusal::InvalidMemo`]). Returns the `transfer` entry.
    pub fn transfer(&self, from: &str, transfer: &NewTransfer, ts: DateTime<Utc>) -> Result<Entry> {
        let payload = crate::rules::transfer_payload(transfer);
        self.write(|tx| crate::rules::transfer(tx, from, &payload, ts))
    }

    /// Every member's balance, the commons and the total minted, at `at`.
    ///
    /// From the last entry's time on (now, or a future instant) this is the current
    /// state with demurrage projected to `at`; nothing is written. Before it, the
    /// journal is replayed as far as its first entry later than `at` (in `seq`
    /// order: entries are appended in time order unless a clock was set back) and
    /// projected to `at` from there.
    pub fn balances(&self, at: DateTime<Utc>) -> Result<Balances> {
        let at = at.trunc_subsecs(3);
        self.read(|conn| {
            let last_ts: Option<String> =
                conn.query_row("SELECT max(ts) FROM journal", [], |row| row.get(0))?;
            let current = match last_ts.as_deref().map(parse_canonical_ts) {
                None => true,
                Some(Some(last)) => last <= at,
                Some(None) => false,
            };
            if current {
                let mut state = SqlState::new(conn);
                let parameters = state.parameters()?;
                let accounts = state.accounts()?.into_iter().collect();
                let totals = state.totals()?;
                let members = member_names(conn)?;
                Ok(project(
                    &members,
                    &accounts,
                    totals.commons,
                    totals.minted,
                    &parameters,
                    at,
                ))
            } else {
                let replay = replay_until(conn, at)?;
                Ok(replay.project(at))
            }
        })
    }

    /// One member's balance at `at` (see [`Journal::balances`]);
    /// [`Refusal::UnknownMember`] if they are not a member at `at`.
    pub fn balance(&self, member: &str, at: DateTime<Utc>) -> Result<Communs> {
        self.balances(at)?
            .balances
            .into_iter()
            .find(|b| b.member == member)
            .map(|b| b.communs)
            .ok_or_else(|| Refusal::UnknownMember(member.to_string()).into())
    }

    /// The transfers `member` sent or received, newest first.
    pub fn transfers_of(&self, member: &str) -> Result<Vec<Transfer>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT t.seq, j.ts, t.from_member, t.to_member, t.amount_micro, t.memo
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
}

/// Members' names in the order they joined.
fn member_names(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM members ORDER BY joined_seq")?;
    let names = stmt
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(names)
}

/// The journal replayed in memory up to (not including) its first entry later than
/// `at`.
fn replay_until(conn: &Connection, at: DateTime<Utc>) -> Result<crate::replay::Replay> {
    let mut stmt = conn.prepare(&format!("{SELECT_ENTRY} ORDER BY seq"))?;
    let mut rows = stmt.query([])?;
    let mut replay = crate::replay::Replay::default();
    while let Some(row) = rows.next()? {
        let entry = entry_from_row(row)?;
        if entry.ts > at {
            break;
        }
        replay.apply(&entry).map_err(|e| Error::Corrupt {
            seq: entry.seq,
            problem: e.to_string(),
        })?;
    }
    Ok(replay)
}

/// Balances at `at` from a settled state: each balance decays from when it was last
/// settled, and what it loses is counted in the commons.
pub(crate) fn project(
    members: &[String],
    accounts: &BTreeMap<String, Account>,
    commons: Communs,
    minted: Communs,
    parameters: &LedgerParameters,
    at: DateTime<Utc>,
) -> Balances {
    let mut commons = commons;
    let mut balance_of = |account: Option<&Account>| -> Communs {
        let Some(account) = account else {
            return Communs::ZERO;
        };
        let kept = projected(account, parameters, at);
        let decay = Communs::from_micro(account.balance.micro() - kept.micro());
        commons = commons.checked_add(decay).unwrap_or(commons);
        kept
    };
    let mut balances: Vec<MemberBalance> = members
        .iter()
        .map(|m| MemberBalance {
            member: m.clone(),
            communs: balance_of(accounts.get(m)),
        })
        .collect();
    // Accounts of names that are not members cannot arise from the rules; shown all
    // the same so that the sum still holds.
    for (name, account) in accounts {
        if !members.contains(name) {
            balances.push(MemberBalance {
                member: name.clone(),
                communs: balance_of(Some(account)),
            });
        }
    }
    Balances {
        at,
        balances,
        commons,
        minted_total: minted,
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
    })
}
