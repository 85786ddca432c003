//! Requests recorded at most once (`Idempotency-Key`): a client that did not hear
//! the answer to a transfer, a contribution or a plan adoption sends it again with
//! the same key, and gets the entry the first one recorded instead of a second one.
//!
//! Keys sit beside the journal, like accounts, in the `idempotency_keys` table: a
//! key is the client's, not an act of the community, so it stays out of the hash
//! chain and out of the payloads other programs read. Each names the member who
//! sent it (keys are per member), the SHA-256 of what was asked and the entry that
//! recorded it. The key is looked up, the act recorded and the key stored in one
//! transaction, so two copies of a request sent at once record one entry, and a
//! crash cannot record the act without its key. A request the ledger refuses keeps
//! no key: nothing was recorded, and it may be sent again. Keys are kept
//! [`IDEMPOTENCY_KEY_LIFETIME`], then forgotten.

use std::collections::BTreeSet;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::assembly::Decision;
use crate::balances::NewTransfer;
use crate::contributions::NewContribution;
use crate::entry::{Entry, EntryKind, canonical_json, format_ts};
use crate::error::{Error, MAX_IDEMPOTENCY_KEY_CHARS, Refusal, Result};
use crate::journal::chain::check_author;
use crate::journal::{Journal, SELECT_ENTRY, entry_from_row};
use crate::plan::Plan;
use crate::planning::{NewCommitment, NewIntent};
use crate::rules::{assembly, balances, contributions, planning};

/// How long a key is remembered after the request that used it.
pub const IDEMPOTENCY_KEY_LIFETIME: TimeDelta = TimeDelta::hours(24);

/// An act a member may ask to record once, whatever number of times it is sent.
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    Contribution(&'a NewContribution),
    /// A contribution that fulfils a commitment
    /// ([`Journal::record_contribution_fulfilling`]).
    ContributionFulfilling {
        contribution: &'a NewContribution,
        commitment: i64,
    },
    Transfer(&'a NewTransfer),
    /// An intent posted on the planning board ([`Journal::post_intent`]).
    Intent(&'a NewIntent),
    /// A commitment proposed on intent `intent` ([`Journal::propose_commitment`]).
    Commitment {
        intent: i64,
        commitment: &'a NewCommitment,
    },
    /// A plan adoption, checked against the site's services (`configured`) as
    /// [`Journal::adopt_plan`] does.
    Plan {
        plan: &'a Plan,
        decision: &'a Decision,
        configured: &'a BTreeSet<String>,
    },
}

/// What [`Journal::record_once`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// The request was new: the entry it recorded.
    New(Entry),
    /// The key was used before for the same request: the entry recorded then;
    /// nothing new was recorded.
    Repeated(Entry),
}

impl Recorded {
    /// The entry, new or first recorded.
    pub fn entry(&self) -> &Entry {
        match self {
            Recorded::New(entry) | Recorded::Repeated(entry) => entry,
        }
    }
}

impl Journal {
    /// Records `request`, authored by `member`, unless `member` already sent it
    /// with this `key` in the last [`IDEMPOTENCY_KEY_LIFETIME`]: then returns the
    /// entry recorded that time ([`Recorded::Repeated`]). Refuses a key that is not
    /// 1 to [`MAX_IDEMPOTENCY_KEY_CHARS`] printable ASCII characters
    /// ([`Refusal::InvalidIdempotencyKey`]), a key already used by `member` for a
    /// different request ([`Refusal::IdempotencyKeyReused`]), and whatever the
    /// request's own call refuses ([`Journal::record_contribution`],
    /// [`Journal::transfer`], [`Journal::adopt_plan`]), remembering no key then.
    pub fn record_once(
        &self,
        member: &str,
        key: &str,
        request: Request<'_>,
        ts: DateTime<Utc>,
    ) -> Result<Recorded> {
        check_key(key)?;
        check_author(member)?;
        let ts = ts.trunc_subsecs(3);
        let (kind, payload) = match request {
            Request::Contribution(c)
            | Request::ContributionFulfilling {
                contribution: c, ..
            } => {
                let problems = c.problems(ts);
                if !problems.is_empty() {
                    return Err(Refusal::InvalidContribution(problems).into());
                }
                let commitment = match request {
                    Request::ContributionFulfilling { commitment, .. } => Some(commitment),
                    _ => None,
                };
                (
                    EntryKind::ContributionRecorded,
                    contributions::contribution_payload(c, commitment),
                )
            }
            Request::Transfer(t) => (EntryKind::Transfer, balances::transfer_payload(t)),
            Request::Intent(i) => (EntryKind::IntentPosted, planning::intent_payload(i, ts)?),
            Request::Commitment { intent, commitment } => (
                EntryKind::CommitmentProposed,
                planning::commitment_payload(intent, commitment),
            ),
            Request::Plan { plan, decision, .. } => (
                EntryKind::PlanAdopted,
                assembly::adoption_payload(plan, decision)?,
            ),
        };
        // An intent's payload holds its default expiry, which depends on `ts`: what
        // was asked is the request itself.
        let asked = match request {
            Request::Intent(i) => serde_json::to_value(i).map_err(|e| Refusal::InvalidPayload {
                kind,
                reason: e.to_string(),
            })?,
            _ => payload.clone(),
        };
        let fingerprint = fingerprint(kind, &asked);
        self.write(|tx| {
            tx.execute(
                "DELETE FROM idempotency_keys WHERE created_at < ?1",
                [format_ts(ts - IDEMPOTENCY_KEY_LIFETIME)],
            )?;
            if let Some(first) = earlier(tx, member, key, &fingerprint)? {
                return Ok(Recorded::Repeated(first));
            }
            let entry = match request {
                Request::Contribution(_) | Request::ContributionFulfilling { .. } => {
                    contributions::record(tx, member, &payload, ts)?
                }
                Request::Transfer(_) => balances::record_transfer(tx, member, &payload, ts)?,
                Request::Intent(_) => planning::record_intent(tx, member, &payload, ts)?,
                Request::Commitment { .. } => planning::record_proposed(tx, member, &payload, ts)?,
                Request::Plan { configured, .. } => {
                    assembly::record(tx, member, &payload, configured, ts)?
                }
            };
            tx.execute(
                "INSERT INTO idempotency_keys (member, key, request_sha256, seq, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![member, key, fingerprint, entry.seq, format_ts(ts)],
            )?;
            Ok(Recorded::New(entry))
        })
    }
}

fn check_key(key: &str) -> Result<()> {
    let printable = |c: char| c.is_ascii_graphic() || c == ' ';
    if key.trim().is_empty()
        || key.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS
        || !key.chars().all(printable)
    {
        return Err(Refusal::InvalidIdempotencyKey(key.chars().take(300).collect()).into());
    }
    Ok(())
}

/// What a request asks, as a hash: its kind and its payload in canonical form, so
/// that the same request written with its keys in another order is the same.
fn fingerprint(kind: EntryKind, payload: &Value) -> String {
    let text = canonical_json(&json!({"kind": kind.as_str(), "payload": payload}));
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The entry recorded for `key` by `member`, if they used it before for this same
/// request; refused if for another.
fn earlier(conn: &Connection, member: &str, key: &str, fingerprint: &str) -> Result<Option<Entry>> {
    let found: Option<(String, i64)> = conn
        .query_row(
            "SELECT request_sha256, seq FROM idempotency_keys WHERE member = ?1 AND key = ?2",
            params![member, key],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let Some((asked, seq)) = found else {
        return Ok(None);
    };
    if asked != fingerprint {
        return Err(Refusal::IdempotencyKeyReused(key.to_string()).into());
    }
    let mut stmt = conn.prepare(&format!("{SELECT_ENTRY} WHERE seq = ?1"))?;
    let mut rows = stmt.query([seq])?;
    match rows.next()? {
        Some(row) => entry_from_row(row).map(Some),
        None => Err(Error::CorruptAccount {
            table: "idempotency_keys",
            problem: format!("key {key:?} of `{member}` names entry {seq}, which is missing"),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::communs::Communs;
    use crate::contributions::Category;
    use crate::members::Role;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn now() -> DateTime<Utc> {
        at("2026-11-22T10:00:00Z")
    }

    fn work() -> NewContribution {
        NewContribution {
            category: Category::Repair,
            hours: 2.0,
            date: now().date_naive(),
            description: "Mended the pump".into(),
        }
    }

    fn journal() -> Journal {
        let journal = Journal::open_in_memory().unwrap();
        for name in ["Alice", "Bob"] {
            journal
                .add_member(name, &[Role::Resident], "admin", now())
                .unwrap();
        }
        journal
    }

    fn entries(journal: &Journal) -> usize {
        journal.entries(0, 1000).unwrap().len()
    }

    #[test]
    fn the_same_request_twice_records_once() {
        let journal = journal();
        let first = journal
            .record_once("Alice", "k-1", Request::Contribution(&work()), now())
            .unwrap();
        let Recorded::New(entry) = &first else {
            panic!("{first:?}")
        };
        let count = entries(&journal);
        let again = journal
            .record_once(
                "Alice",
                "k-1",
                Request::Contribution(&work()),
                now() + TimeDelta::minutes(5),
            )
            .unwrap();
        assert_eq!(again, Recorded::Repeated(entry.clone()));
        assert_eq!(entries(&journal), count, "nothing new recorded");
        // The key is Alice's: Bob's same key is another request.
        let bob = journal
            .record_once("Bob", "k-1", Request::Contribution(&work()), now())
            .unwrap();
        assert!(matches!(bob, Recorded::New(_)), "{bob:?}");
    }

    #[test]
    fn a_key_used_for_another_request_is_refused() {
        let journal = journal();
        journal
            .record_once("Alice", "k-1", Request::Contribution(&work()), now())
            .unwrap();
        let count = entries(&journal);
        let other = NewContribution {
            hours: 3.0,
            ..work()
        };
        let err = journal
            .record_once("Alice", "k-1", Request::Contribution(&other), now())
            .unwrap_err();
        assert_eq!(
            err.refusal(),
            Some(&Refusal::IdempotencyKeyReused("k-1".into()))
        );
        let transfer = NewTransfer {
            to: "Bob".into(),
            amount: Communs::from_whole(1),
            memo: String::new(),
            intent: None,
        };
        let err = journal
            .record_once("Alice", "k-1", Request::Transfer(&transfer), now())
            .unwrap_err();
        assert_eq!(
            err.refusal(),
            Some(&Refusal::IdempotencyKeyReused("k-1".into()))
        );
        assert_eq!(entries(&journal), count);
    }

    #[test]
    fn a_refused_request_keeps_no_key() {
        let journal = journal();
        let transfer = NewTransfer {
            to: "Bob".into(),
            amount: Communs::from_whole(5),
            memo: String::new(),
            intent: None,
        };
        let err = journal
            .record_once("Alice", "pay-bob", Request::Transfer(&transfer), now())
            .unwrap_err();
        assert!(
            matches!(err.refusal(), Some(Refusal::InsufficientCommons { .. })),
            "{err}"
        );
        let count: i64 = journal
            .read(|c| Ok(c.query_row("SELECT count(*) FROM idempotency_keys", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(count, 0);
    }

    #[test]
    fn keys_are_forgotten_after_a_day() {
        let journal = journal();
        journal
            .record_once("Alice", "k-1", Request::Contribution(&work()), now())
            .unwrap();
        let within = now() + IDEMPOTENCY_KEY_LIFETIME;
        let again = journal
            .record_once("Alice", "k-1", Request::Contribution(&work()), within)
            .unwrap();
        assert!(matches!(again, Recorded::Repeated(_)), "{again:?}");
        let past = within + TimeDelta::milliseconds(1);
        let later = journal
            .record_once("Alice", "k-1", Request::Contribution(&work()), past)
            .unwrap();
        assert!(matches!(later, Recorded::New(_)), "{later:?}");
    }

    #[test]
    fn keys_that_are_not_printable_ascii_or_too_long_are_refused() {
        let journal = journal();
        let long = "k".repeat(MAX_IDEMPOTENCY_KEY_CHARS + 1);
        for key in ["", "  ", "clé", "a\nb", long.as_str()] {
            let err = journal
                .record_once("Alice", key, Request::Contribution(&work()), now())
                .unwrap_err();
            assert!(
                matches!(err.refusal(), Some(Refusal::InvalidIdempotencyKey(_))),
                "{key:?}: {err}"
            );
        }
        let longest = "k".repeat(MAX_IDEMPOTENCY_KEY_CHARS);
        journal
            .record_once("Alice", &longest, Request::Contribution(&work()), now())
            .unwrap();
    }

    #[test]
    fn copies_sent_at_once_record_one_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        let first = Arc::new(Journal::open(&path).unwrap());
        first
            .add_member("Alice", &[Role::Resident], "admin", now())
            .unwrap();
        // Two handles, as two processes on the same file would have.
        let second = Arc::new(Journal::open(&path).unwrap());
        let before = entries(&first);
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let journal = if i % 2 == 0 {
                    first.clone()
                } else {
                    second.clone()
                };
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    journal
                        .record_once("Alice", "once", Request::Contribution(&work()), now())
                        .unwrap()
                })
            })
            .collect();
        let results: Vec<Recorded> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let new = results
            .iter()
            .filter(|r| matches!(r, Recorded::New(_)))
            .count();
        assert_eq!(new, 1, "{results:?}");
        assert!(results.iter().all(|r| r.entry() == results[0].entry()));
        assert_eq!(entries(&first), before + 1);
        assert!(first.verify().unwrap().is_intact());
    }
}
