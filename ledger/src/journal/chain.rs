//! The hash chain: appending an entry onto the head, and re-deriving the chain from
//! the first entry to find the first row that does not hold. The encoding hashed is
//! [`crate::Entry`]'s.
//!
//! Nothing here knows what an entry means: appending chains and stores it, and
//! whoever appends (the rules of its kind) updates the derived tables in the same
//! transaction.

use std::fmt;

use chrono::{DateTime, Datelike, SubsecRound, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::entry::{
    Entry, EntryKind, GENESIS_PREV_HASH, canonical_entry, canonical_json, chain_hash, format_ts,
    is_hash, parse_canonical_ts,
};
use crate::error::{Error, Refusal, Result};

/// The first entry that does not hold, and why, in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadEntry {
    /// The entry; for a derived balance that disagrees with the journal, the last
    /// entry that changed that balance by the journal.
    pub seq: i64,
    /// The account whose derived balance disagrees with the journal's (a member's
    /// name, or `commons` for the totals), if that is what is wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub problem: String,
}

impl fmt::Display for BadEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.account {
            None => write!(f, "entry {}: {}", self.seq, self.problem),
            Some(account) => write!(
                f,
                "entry {} (account `{account}`): {}",
                self.seq, self.problem
            ),
        }
    }
}

/// Refuses an author that is empty or holds a control character.
pub(crate) fn check_author(author: &str) -> Result<()> {
    if author.trim().is_empty() || author.chars().any(char::is_control) {
        return Err(Refusal::InvalidAuthor(author.to_string()).into());
    }
    Ok(())
}

/// Chains an entry onto the head and stores it; `ts` is truncated to milliseconds.
/// The caller holds an `IMMEDIATE` transaction, so the head cannot move underneath,
/// and updates the derived tables for the entry in that same transaction.
pub(crate) fn append(
    tx: &Connection,
    kind: EntryKind,
    author: &str,
    payload: &Value,
    ts: DateTime<Utc>,
) -> Result<Entry> {
    check_author(author)?;
    let ts = ts.trunc_subsecs(3);
    if !(0..=9999).contains(&ts.year()) {
        return Err(Refusal::InvalidTimestamp(ts).into());
    }
    let (head_seq, prev_hash) = tx
        .query_row(
            "SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1",
            [],
            |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get_ref(1)?.as_str().map(str::to_owned),
                ))
            },
        )
        .optional()?
        .map(|(seq, hash)| match hash {
            Ok(hash) if is_hash(&hash) => Ok((seq, hash)),
            _ => Err(Error::Corrupt {
                seq,
                problem: "its hash is not 64 lowercase hex digits".into(),
            }),
        })
        .transpose()?
        .unwrap_or((0, GENESIS_PREV_HASH.to_string()));

    let seq = head_seq + 1;
    let ts_text = format_ts(ts);
    let payload_text = canonical_json(payload);
    let canonical = canonical_entry(seq, &ts_text, kind.as_str(), author, &payload_text);
    let hash = chain_hash(&prev_hash, canonical.as_bytes());
    tx.execute(
        "INSERT INTO journal (seq, ts, kind, author, payload, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            seq,
            ts_text,
            kind.as_str(),
            author,
            payload_text,
            prev_hash,
            hash
        ],
    )?;
    tracing::debug!(seq, kind = %kind, author, "journal entry appended");
    Ok(Entry {
        seq,
        ts,
        kind,
        author: author.to_string(),
        payload: payload.clone(),
        prev_hash,
        hash,
    })
}

/// What re-deriving the chain found.
#[derive(Debug)]
pub(crate) struct ChainCheck {
    /// Rows in the journal.
    pub(crate) entries: u64,
    /// The `seq` of the last row.
    pub(crate) last_seq: i64,
    /// The `hash` stored in the last row (64 zeros when the journal is empty; empty
    /// when it does not read).
    pub(crate) head_hash: String,
    /// The first row that does not chain onto the one before it, if any.
    pub(crate) first_bad: Option<BadEntry>,
}

/// Re-derives the chain from the first entry, checking for every row, in order: that
/// `seq` follows on without gaps, that its columns are text, that `prev_hash` is the
/// previous entry's `hash`, that the payload is JSON in canonical form, that `ts` is
/// in canonical form, and that `hash` is the hash of its contents. A damaged row is
/// a finding, never an error: errors only when the database cannot be read.
pub(crate) fn check(conn: &Connection) -> Result<ChainCheck> {
    let mut stmt = conn.prepare(
        "SELECT seq, ts, kind, author, payload, prev_hash, hash FROM journal ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    let mut entries = 0u64;
    let mut last_seq = 0i64;
    let mut last_hash: Option<String> = None;
    let mut first_bad = None;
    while let Some(row) = rows.next()? {
        entries += 1;
        let seq: i64 = row.get(0)?;
        if first_bad.is_none()
            && let Err(problem) = check_row(row, seq, last_seq, last_hash.as_deref())
        {
            // A gap names the first missing entry, anything else the row itself.
            let named = if seq > last_seq + 1 {
                last_seq + 1
            } else {
                seq
            };
            first_bad = Some(BadEntry {
                seq: named,
                account: None,
                problem,
            });
        }
        last_seq = seq;
        last_hash = text(row, 6, "hash").ok();
    }
    Ok(ChainCheck {
        entries,
        last_seq,
        head_hash: match (entries, last_hash) {
            (0, _) => GENESIS_PREV_HASH.to_string(),
            (_, Some(hash)) => hash,
            (_, None) => String::new(),
        },
        first_bad,
    })
}

/// Checks one row against the one before it (`prev_hash` is `None` when the previous
/// row's hash could not be read, and irrelevant for the first row).
fn check_row(
    row: &Row<'_>,
    seq: i64,
    prev_seq: i64,
    prev_hash: Option<&str>,
) -> Result<(), String> {
    let expected = prev_seq + 1;
    if seq != expected {
        let missing = if seq - 1 > expected {
            format!("entries {expected} to {} are missing", seq - 1)
        } else if seq > expected {
            format!("entry {expected} is missing")
        } else {
            return Err(format!(
                "unexpected sequence number {seq} (expected {expected})"
            ));
        };
        return Err(if prev_seq == 0 {
            format!("{missing} (the journal starts at {seq})")
        } else {
            format!("{missing} (sequence jumps from {prev_seq} to {seq})")
        });
    }
    let ts = text(row, 1, "ts")?;
    let kind = text(row, 2, "kind")?;
    let author = text(row, 3, "author")?;
    let payload = text(row, 4, "payload")?;
    let stored_prev = text(row, 5, "prev_hash")?;
    let hash = text(row, 6, "hash")?;

    if prev_seq == 0 {
        if stored_prev != GENESIS_PREV_HASH {
            return Err("prev_hash of the first entry is not 64 zeros".into());
        }
    } else if Some(stored_prev.as_str()) != prev_hash {
        return Err(format!("prev_hash does not match entry {prev_seq}"));
    }
    let value: serde_json::Value =
        serde_json::from_str(&payload).map_err(|_| "payload is not valid JSON".to_string())?;
    if canonical_json(&value) != payload {
        return Err("payload is not in canonical form".into());
    }
    if parse_canonical_ts(&ts).is_none() {
        return Err(format!(
            "ts `{ts}` is not an RFC 3339 UTC timestamp with milliseconds"
        ));
    }
    let canonical = canonical_entry(seq, &ts, &kind, &author, &payload);
    if chain_hash(&stored_prev, canonical.as_bytes()) != hash {
        return Err("hash does not match its contents".into());
    }
    Ok(())
}

fn text(row: &Row<'_>, idx: usize, name: &str) -> Result<String, String> {
    match row.get_ref(idx) {
        Ok(ValueRef::Text(bytes)) => String::from_utf8(bytes.to_vec())
            .map_err(|_| format!("column `{name}` is not valid UTF-8")),
        Ok(_) => Err(format!("column `{name}` is not text")),
        Err(e) => Err(format!("column `{name}` cannot be read: {e}")),
    }
}
