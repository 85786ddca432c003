//! The dispatch of entry kinds: which rules record a new entry of a kind, and which
//! update the derived tables for one (when rebuilding them, and for the contribution
//! ledger's kinds in the in-memory replay). Only routing lives here: the checks and
//! the rules are in `rules`, the chain in `journal`.

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde_json::Value;

use crate::entry::{Entry, EntryKind};
use crate::error::{Error, Refusal, Result};
use crate::journal::chain::check_author;
use crate::journal::{Journal, SELECT_ENTRY, entry_from_row};
use crate::rules::sql::SqlState;
use crate::rules::state::LedgerState;
use crate::rules::{assembly, balances, contributions, members, parameters, planning, sortition};
use crate::schema::CLEAR_DERIVED;

impl Journal {
    /// Records one entry and updates the derived tables, in one transaction.
    ///
    /// The payload is checked for its kind and recorded as this program understands it
    /// (decoded and re-encoded, in canonical form). An act of the contribution ledger
    /// goes through its typed call's path, with the entries that come with it (a
    /// transfer with its demurrage settlement, the `k`-th approval with the
    /// validation), and the entry returned is the act's own; kinds the ledger only
    /// writes as consequences are refused with [`Refusal::DerivedKind`], and a plan
    /// adoption, which needs the site's services, with [`Refusal::TypedCallOnly`]
    /// (use [`Journal::adopt_plan`]). `ts` is
    /// truncated to milliseconds. Prefer the typed calls ([`Journal::add_member`],
    /// [`Journal::adopt_plan`], [`Journal::record_contribution`], [`Journal::attest`],
    /// [`Journal::transfer`], [`Journal::adopt_ledger_parameters`]).
    pub fn append(
        &self,
        kind: EntryKind,
        author: &str,
        payload: &Value,
        ts: DateTime<Utc>,
    ) -> Result<Entry> {
        self.write(|tx| record(tx, kind, author, payload, ts))
    }

    /// Empties the derived tables and replays the whole journal into them, in one
    /// transaction; returns how many entries were replayed. Fails, changing nothing,
    /// on an entry it cannot read or that breaks the ledger's rules.
    pub fn rebuild_derived(&self) -> Result<u64> {
        self.write(|tx| {
            tx.execute_batch(CLEAR_DERIVED)?;
            let mut stmt = tx.prepare(&format!("{SELECT_ENTRY} ORDER BY seq"))?;
            let mut rows = stmt.query([])?;
            let mut replayed = 0;
            while let Some(row) = rows.next()? {
                let entry = entry_from_row(row)?;
                apply(tx, &entry).map_err(|e| match e {
                    Error::Sqlite(_) | Error::Corrupt { .. } => e,
                    rule => Error::Corrupt {
                        seq: entry.seq,
                        problem: rule.to_string(),
                    },
                })?;
                replayed += 1;
            }
            Ok(replayed)
        })
    }
}

/// Checks a new entry of any kind and records it through its kind's rules.
fn record(
    tx: &Connection,
    kind: EntryKind,
    author: &str,
    payload: &Value,
    ts: DateTime<Utc>,
) -> Result<Entry> {
    check_author(author)?;
    match kind {
        EntryKind::MemberJoined => members::record(tx, author, payload, ts),
        // A plan is checked against the site's services, which only the caller knows.
        EntryKind::PlanAdopted => Err(Refusal::TypedCallOnly {
            kind,
            call: "Journal::adopt_plan",
        }
        .into()),
        EntryKind::ContributionRecorded => contributions::record(tx, author, payload, ts),
        EntryKind::Attestation => {
            contributions::attest(tx, author, payload, ts).map(|a| a.attestation)
        }
        EntryKind::Transfer => balances::record_transfer(tx, author, payload, ts),
        EntryKind::ParametersAdopted => parameters::adopt(tx, author, payload, ts),
        EntryKind::IntentPosted => planning::record_intent(tx, author, payload, ts),
        EntryKind::CommitmentProposed => planning::record_proposed(tx, author, payload, ts),
        EntryKind::CommitmentAccepted | EntryKind::CommitmentReleased => {
            planning::record_simple(tx, kind, author, payload, ts)
        }
        EntryKind::IntentClosed => planning::record_closed(tx, author, payload, ts),
        // The household's members are in the site's configuration, which only the
        // caller knows.
        EntryKind::ConsentGranted => Err(Refusal::TypedCallOnly {
            kind,
            call: "Journal::grant_consent",
        }
        .into()),
        EntryKind::ConsentRevoked => Err(Refusal::TypedCallOnly {
            kind,
            call: "Journal::revoke_consent",
        }
        .into()),
        EntryKind::HouseholdReadingsErased => Err(Refusal::TypedCallOnly {
            kind,
            call: "Journal::record_erasure",
        }
        .into()),
        EntryKind::LoadShiftCertified => Err(Refusal::TypedCallOnly {
            kind,
            call: "Journal::certify_load_shift",
        }
        .into()),
        EntryKind::HouseholdErasureRequested => Err(Refusal::TypedCallOnly {
            kind,
            call: "Journal::request_erasure",
        }
        .into()),
        EntryKind::ContributionValidated
        | EntryKind::DemurrageSettled
        | EntryKind::CommitmentFulfilled => Err(Refusal::DerivedKind(kind).into()),
        EntryKind::SortitionKeysSet
        | EntryKind::SortitionOpted
        | EntryKind::SortitionAnnounced
        | EntryKind::SortitionDrawn
        | EntryKind::PanelMemberDeclined => sortition::record(tx, kind, author, payload, ts),
    }
}

/// Updates the derived tables for one entry, as recording it did.
fn apply(tx: &Connection, entry: &Entry) -> Result<()> {
    match entry.kind {
        EntryKind::MemberJoined => members::apply(tx, entry),
        EntryKind::PlanAdopted => assembly::apply(tx, entry),
        EntryKind::SortitionKeysSet
        | EntryKind::SortitionOpted
        | EntryKind::SortitionAnnounced
        | EntryKind::SortitionDrawn
        | EntryKind::PanelMemberDeclined => sortition::apply_row(tx, entry),
        EntryKind::ConsentGranted
        | EntryKind::ConsentRevoked
        | EntryKind::HouseholdReadingsErased
        | EntryKind::HouseholdErasureRequested => crate::consent::apply_row(tx, entry),
        _ => apply_ledger(&mut SqlState::new(tx), entry),
    }
}

/// Applies one entry of a contribution-ledger kind to `state` (the derived tables or
/// their image in memory), refusing it when it breaks a rule. `member_joined` and
/// `plan_adopted` change nothing there.
pub(crate) fn apply_ledger(state: &mut impl LedgerState, entry: &Entry) -> Result<()> {
    match entry.kind {
        EntryKind::ContributionRecorded => contributions::apply_recorded(state, entry),
        EntryKind::Attestation => contributions::apply_attestation(state, entry),
        EntryKind::ContributionValidated => contributions::apply_validated(state, entry),
        EntryKind::DemurrageSettled => balances::apply_settled(state, entry),
        EntryKind::Transfer => balances::apply_transfer(state, entry),
        EntryKind::ParametersAdopted => parameters::apply(state, entry),
        EntryKind::IntentPosted => planning::apply_intent(state, entry),
        EntryKind::CommitmentProposed => planning::apply_proposed(state, entry),
        EntryKind::CommitmentAccepted => planning::apply_accepted(state, entry),
        EntryKind::CommitmentReleased => planning::apply_released(state, entry),
        EntryKind::CommitmentFulfilled => planning::apply_fulfilled(state, entry),
        EntryKind::IntentClosed => planning::apply_closed(state, entry),
        EntryKind::LoadShiftCertified => planning::apply_certified(state, entry),
        // Sortition's state is rebuilt from its entries (`rules::sortition`), and
        // the replay re-runs every draw; its only table lists them (`apply`).
        // Consent's state is rebuilt from its entries too (`consent`).
        EntryKind::ConsentGranted
        | EntryKind::ConsentRevoked
        | EntryKind::HouseholdReadingsErased
        | EntryKind::HouseholdErasureRequested
        | EntryKind::MemberJoined
        | EntryKind::PlanAdopted
        | EntryKind::SortitionKeysSet
        | EntryKind::SortitionOpted
        | EntryKind::SortitionAnnounced
        | EntryKind::SortitionDrawn
        | EntryKind::PanelMemberDeclined => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ts(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn derived_kinds_and_bad_input_are_refused_and_leave_nothing() {
        let journal = Journal::open_in_memory().unwrap();
        let now = ts("2026-11-22T10:00:00Z");
        for kind in [
            EntryKind::DemurrageSettled,
            EntryKind::ContributionValidated,
            EntryKind::CommitmentFulfilled,
        ] {
            let err = journal.append(kind, "alice", &json!({}), now).unwrap_err();
            assert!(
                matches!(err, Error::Refused(Refusal::DerivedKind(k)) if k == kind),
                "{err}"
            );
        }
        let err = journal
            .append(EntryKind::Transfer, "alice", &json!({}), now)
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Refused(Refusal::InvalidPayload {
                    kind: EntryKind::Transfer,
                    ..
                })
            ),
            "{err}"
        );
        let err = journal
            .append(EntryKind::MemberJoined, "alice", &json!({"name": 3}), now)
            .unwrap_err();
        assert!(
            matches!(err, Error::Refused(Refusal::InvalidPayload { .. })),
            "{err}"
        );
        let err = journal
            .append(
                EntryKind::MemberJoined,
                " ",
                &json!({"name": "A", "roles": []}),
                now,
            )
            .unwrap_err();
        assert!(
            matches!(err, Error::Refused(Refusal::InvalidAuthor(_))),
            "{err}"
        );
        let far = chrono::NaiveDate::from_ymd_opt(10000, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        let err = journal
            .append(
                EntryKind::MemberJoined,
                "a",
                &json!({"name": "A", "roles": []}),
                far,
            )
            .unwrap_err();
        assert!(
            matches!(err, Error::Refused(Refusal::InvalidTimestamp(_))),
            "{err}"
        );
        assert!(journal.head().unwrap().is_none());
    }

    #[test]
    fn a_failed_derived_update_rolls_the_entry_back() {
        let journal = Journal::open_in_memory().unwrap();
        let now = ts("2026-11-22T10:00:00Z");
        let payload = json!({"name": "Alice", "roles": ["resident"]});
        journal
            .append(EntryKind::MemberJoined, "a", &payload, now)
            .unwrap();
        assert!(
            journal
                .append(EntryKind::MemberJoined, "a", &payload, now)
                .is_err()
        );
        assert_eq!(journal.head().unwrap().map(|e| e.seq), Some(1));
    }
}
