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
//!
//! This module holds what balances and transfers are; recording transfers and
//! settlements is in `rules::balances`, reading balances at an instant in `replay`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::communs::Communs;
use crate::entry::ts_millis;

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
    /// The intent of the planning board this transfer pays for (goods given or
    /// lent), if any: the payer and the recipient must both be parties to it.
    #[serde(default)]
    pub intent: Option<i64>,
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
    /// The intent it pays for, if it names one.
    pub intent: Option<i64>,
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
