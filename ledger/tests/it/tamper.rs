//! Tampering with a contribution ledger in a file: entries altered, deleted or
//! reordered break the chain; a journal forged with a fresh chain breaks the
//! ledger's rules on replay; a derived table edited by hand disagrees with the
//! replay. Each time `verify` names the first bad entry, or the account.

use std::path::{Path, PathBuf};

use chrono::Duration;
use ledger::{
    BadEntry, Communs, Entry, EntryKind, Journal, LedgerParameters, NewTransfer, Role, Verdict,
    canonical_json,
};
use rusqlite::{Connection, params};

use crate::community::{config_members, config_plan, db_path};
use crate::contributions::{contribute, earn, t0, vote};

/// A community whose journal holds every kind of ledger entry.
fn community() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let journal = Journal::open(&path).unwrap();
    journal
        .seed(&config_plan(), &config_members(), t0())
        .unwrap();
    journal
        .add_member("Dave", &[Role::Resident], "Alice", t0())
        .unwrap();
    earn(&journal, "Alice", 10.0, t0());
    earn(&journal, "Bob", 2.0, t0() + Duration::days(1));
    let rejected = contribute(&journal, "Carol", 5.0, t0() + Duration::days(2));
    for member in ["Alice", "Dave"] {
        journal
            .attest(
                rejected,
                member,
                Verdict::Reject,
                "Not five hours",
                t0() + Duration::days(2),
            )
            .unwrap();
    }
    journal
        .transfer(
            "Alice",
            &NewTransfer {
                to: "Dave".into(),
                amount: Communs::from_whole(50),
                memo: "Thanks for the soup".into(),
                intent: None,
            },
            t0() + Duration::days(30),
        )
        .unwrap();
    // The planning board: Bob needs 2 hours of bike repair, Dave commits to them,
    // Bob accepts, and Dave's validated contribution fulfils them; a second
    // commitment is released.
    let day = t0() + Duration::days(35);
    let need = ledger::NewIntent {
        direction: ledger::Direction::Need,
        action: ledger::Action::Work,
        class: "bike-repair".into(),
        quantity: 3.0,
        unit: ledger::Unit::Hours,
        window_start: None,
        window_end: None,
        expires_at: None,
        never_expires: false,
        description: "Two punctures and a chain".into(),
        visibility: ledger::Visibility::Node,
        collective: false,
    };
    let need = journal.post_intent("Bob", &need, day).unwrap().seq;
    let commit = |q: f64| ledger::NewCommitment {
        quantity: q,
        note: String::new(),
    };
    let c = journal
        .propose_commitment("Dave", need, &commit(2.0), day)
        .unwrap()
        .seq;
    journal.accept_commitment("Bob", c, day).unwrap();
    let other = journal
        .propose_commitment("Alice", need, &commit(1.0), day)
        .unwrap()
        .seq;
    journal.release_commitment("Alice", other, "", day).unwrap();
    journal
        .close_intent("Bob", need_withdrawn(&journal, day), "found one", day)
        .unwrap();
    let work = ledger::NewContribution {
        category: ledger::Category::Repair,
        hours: 2.0,
        date: day.date_naive(),
        description: "Bikes mended".into(),
    };
    let id = journal
        .record_contribution_fulfilling("Dave", &work, c, day)
        .unwrap()
        .seq;
    journal
        .attest(id, "Alice", Verdict::Approve, "", day)
        .unwrap();
    journal
        .attest(id, "Bob", Verdict::Approve, "", day)
        .unwrap();
    // A panel drawn by lot: one of its members declines.
    let day = t0() + Duration::days(39);
    journal
        .set_sortition_keys(&["building".into()], "Alice", day)
        .unwrap();
    for (member, building) in [("Alice", "A"), ("Bob", "A"), ("Carol", "B"), ("Dave", "B")] {
        let attributes = [("building".to_string(), building.to_string())].into();
        journal
            .opt_in_sortition(member, true, &attributes, day)
            .unwrap();
    }
    let spec = ledger::DrawSpec {
        size: 2,
        strata_key: Some("building".into()),
        quotas: [("B".to_string(), ledger::Quota { min: 1, max: None })].into(),
        mandate: ledger::Mandate {
            scope: ledger::MandateScope::EnergyPriorities,
            title: "Winter".into(),
            term_end: (day + Duration::days(90)).date_naive(),
        },
        draw_at: day,
    };
    let draw = journal.announce_sortition(&spec, "Alice", day).unwrap().seq;
    let drawn = journal
        .draw_sortition(draw, &[6], &["A witness".into()], "Alice", day)
        .unwrap();
    let first: Vec<String> = serde_json::from_value(drawn.payload["selected"].clone()).unwrap();
    journal
        .decline_panel_seat(draw, &first[0], &first[0], day)
        .unwrap();
    crate::consent::grant_revoke_erase(&journal, day);
    // The node's surplus offer: Bob shifts his washing machine into it, and once
    // the window is over the node certifies it from his household's meter.
    let (start, end) = (day + Duration::hours(1), day + Duration::hours(5));
    let offer = journal
        .open_surplus_offer(start, end, 6.0, "Surplus solaire", day)
        .unwrap()
        .expect("offered")
        .seq;
    let shift = journal
        .propose_commitment("Bob", offer, &commit(1.5), day)
        .unwrap()
        .seq;
    journal.accept_surplus_commitments(day).unwrap();
    journal
        .certify_load_shift(
            &ledger::NewLoadShiftCertification {
                commitment: shift,
                household: Some("bob-home".into()),
                household_members: vec!["Bob".into()],
                meters: vec!["bob-meter".into()],
                basis: ledger::LoadShiftBasis::Metered,
                measured_kwh: Some(2.4),
                baseline_kwh: Some(1.2),
                baseline_days: 7,
            },
            end + Duration::minutes(10),
        )
        .unwrap();
    let three_percent = LedgerParameters {
        demurrage_rate_ppm: 30_000,
        ..LedgerParameters::default()
    };
    journal
        .adopt_ledger_parameters(&three_percent, &vote(), "Alice", t0() + Duration::days(40))
        .unwrap();
    let report = journal.verify().unwrap();
    assert!(report.is_intact(), "{report}");
    (dir, path)
}

/// Bob's second need, which he closes himself.
fn need_withdrawn(journal: &ledger::Journal, day: chrono::DateTime<chrono::Utc>) -> i64 {
    let need = ledger::NewIntent {
        direction: ledger::Direction::Need,
        action: ledger::Action::Use,
        class: "ladder".into(),
        quantity: 1.0,
        unit: ledger::Unit::Items,
        window_start: None,
        window_end: None,
        expires_at: None,
        never_expires: false,
        description: "Une échelle".into(),
        visibility: ledger::Visibility::Node,
        collective: false,
    };
    journal.post_intent("Bob", &need, day).unwrap().seq
}

fn entries(path: &Path) -> Vec<Entry> {
    Journal::open(path).unwrap().entries(0, 1000).unwrap()
}

/// The `n`-th (from 0) entry of `kind`.
fn seq_of(path: &Path, kind: EntryKind, n: usize) -> i64 {
    entries(path)
        .into_iter()
        .filter(|e| e.kind == kind)
        .nth(n)
        .unwrap_or_else(|| panic!("no {kind} number {n}"))
        .seq
}

fn tamper(path: &Path, sql: &str) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = OFF;
         DROP TRIGGER IF EXISTS journal_no_update; DROP TRIGGER IF EXISTS journal_no_delete; {sql}"
    ))
    .unwrap();
}

/// Writes `entries` as the whole journal, each chained onto the one before with a
/// freshly computed hash: what a forger with the file and this crate's rules could do.
fn forge(path: &Path, mut entries: Vec<Entry>) {
    let mut prev = "0".repeat(64);
    for (i, e) in entries.iter_mut().enumerate() {
        e.seq = i as i64 + 1;
        e.prev_hash = prev.clone();
        e.hash = e.computed_hash();
        prev = e.hash.clone();
    }
    tamper(path, "DELETE FROM journal;");
    let conn = Connection::open(path).unwrap();
    for e in &entries {
        conn.execute(
            "INSERT INTO journal (seq, ts, kind, author, payload, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                e.seq,
                ledger::format_ts(e.ts),
                e.kind.as_str(),
                e.author,
                canonical_json(&e.payload),
                e.prev_hash,
                e.hash
            ],
        )
        .unwrap();
    }
}

fn first_bad(path: &Path) -> BadEntry {
    let report = Journal::open(path).unwrap().verify().unwrap();
    match report.first_bad {
        Some(bad) => bad,
        None => panic!("tampering not detected: {report}"),
    }
}

#[test]
fn the_community_holds_every_kind_of_entry() {
    let (_dir, path) = community();
    let kinds: std::collections::BTreeSet<EntryKind> =
        entries(&path).iter().map(|e| e.kind).collect();
    assert_eq!(kinds.len(), EntryKind::ALL.len(), "{kinds:?}");
}

#[test]
fn a_commitment_edited_in_its_table_is_named() {
    let (_dir, path) = community();
    let seq = seq_of(&path, EntryKind::CommitmentProposed, 0);
    tamper(
        &path,
        &format!("UPDATE commitments SET centi_quantity = 300 WHERE id = {seq};"),
    );
    let bad = first_bad(&path);
    assert_eq!(bad.seq, seq, "{bad}");
    assert!(bad.problem.contains("commitments table"), "{bad}");
}

#[test]
fn a_forged_fulfilment_breaks_the_rules_on_replay() {
    let (_dir, path) = community();
    let mut all = entries(&path);
    let at = all
        .iter()
        .position(|e| e.kind == EntryKind::CommitmentFulfilled)
        .unwrap();
    // Claim 3 hours fulfilled for a contribution of 2.
    all[at].payload["quantity"] = serde_json::json!(3.0);
    let seq = all[at].seq;
    forge(&path, all);
    let bad = first_bad(&path);
    assert_eq!(bad.seq, seq, "{bad}");
    assert!(bad.problem.contains("fulfils 2 of commitment"), "{bad}");
}

/// The node's certification made to count more than its measures give, with a
/// fresh chain: the replay recomputes it from the measures.
#[test]
fn a_load_shift_forged_to_count_more_breaks_the_rules_on_replay() {
    let (_dir, path) = community();
    let mut all = entries(&path);
    let at = all
        .iter()
        .position(|e| e.kind == EntryKind::LoadShiftCertified)
        .unwrap();
    // 2.4 − 1.2 kWh is 1.2, not the whole 1.5 committed.
    assert_eq!(all[at].payload["quantity"], serde_json::json!(1.2));
    all[at].payload["quantity"] = serde_json::json!(1.5);
    let seq = all[at].seq;
    forge(&path, all);
    let bad = first_bad(&path);
    assert_eq!(bad.seq, seq, "{bad}");
    assert!(bad.problem.contains("above the baseline"), "{bad}");
}

/// A certification claimed by a member rather than the node is refused on replay.
#[test]
fn a_load_shift_certified_by_a_member_breaks_the_rules_on_replay() {
    let (_dir, path) = community();
    let mut all = entries(&path);
    let at = all
        .iter()
        .position(|e| e.kind == EntryKind::LoadShiftCertified)
        .unwrap();
    all[at].author = "Bob".into();
    let seq = all[at].seq;
    forge(&path, all);
    let bad = first_bad(&path);
    assert_eq!(bad.seq, seq, "{bad}");
    assert!(bad.problem.contains("only the node"), "{bad}");
}

#[test]
fn over_committing_in_a_forged_journal_is_named() {
    let (_dir, path) = community();
    let mut all = entries(&path);
    let at = all
        .iter()
        .position(|e| e.kind == EntryKind::CommitmentProposed)
        .unwrap();
    all[at].payload["quantity"] = serde_json::json!(5.0);
    let seq = all[at].seq;
    forge(&path, all);
    let bad = first_bad(&path);
    assert_eq!(bad.seq, seq, "{bad}");
    assert!(bad.problem.contains("left to commit"), "{bad}");
}

#[test]
fn an_altered_transfer_amount_names_the_entry() {
    let (_dir, path) = community();
    let seq = seq_of(&path, EntryKind::Transfer, 0);
    tamper(
        &path,
        &format!(
            "UPDATE journal SET payload = replace(payload, '50000000', '90000000') WHERE seq = {seq};"
        ),
    );
    let bad = first_bad(&path);
    assert_eq!(
        (bad.seq, bad.problem.as_str()),
        (seq, "hash does not match its contents")
    );
}

#[test]
fn an_altered_settlement_names_the_entry() {
    let (_dir, path) = community();
    let seq = seq_of(&path, EntryKind::DemurrageSettled, 0);
    tamper(
        &path,
        &format!(
            "UPDATE journal SET payload = replace(payload, 'Alice', 'Bob') WHERE seq = {seq};"
        ),
    );
    assert_eq!(first_bad(&path).seq, seq);
}

#[test]
fn a_deleted_settlement_names_the_gap() {
    let (_dir, path) = community();
    let seq = seq_of(&path, EntryKind::DemurrageSettled, 0);
    tamper(&path, &format!("DELETE FROM journal WHERE seq = {seq};"));
    let bad = first_bad(&path);
    assert_eq!(bad.seq, seq);
    assert_eq!(
        bad.problem,
        format!(
            "entry {seq} is missing (sequence jumps from {} to {})",
            seq - 1,
            seq + 1
        )
    );
}

#[test]
fn a_deleted_last_entry_is_noticed_through_the_parameters_table() {
    let (_dir, path) = community();
    let last = entries(&path).last().unwrap().seq;
    tamper(&path, &format!("DELETE FROM journal WHERE seq = {last};"));
    let bad = first_bad(&path);
    assert_eq!(bad.seq, last);
    assert!(
        bad.problem
            .contains("the ledger_parameters table refers to entry"),
        "{bad}"
    );
}

#[test]
fn an_attestation_and_its_validation_swapped_name_the_first() {
    let (_dir, path) = community();
    let attestation = seq_of(&path, EntryKind::Attestation, 0);
    let validation = seq_of(&path, EntryKind::ContributionValidated, 0);
    assert!(attestation < validation);
    tamper(
        &path,
        &format!(
            "CREATE TEMP TABLE saved AS SELECT * FROM journal WHERE seq IN ({attestation}, {validation});
             UPDATE journal SET (ts, kind, author, payload, prev_hash, hash) =
                 (SELECT ts, kind, author, payload, prev_hash, hash FROM saved
                  WHERE saved.seq = CASE journal.seq WHEN {attestation} THEN {validation}
                                                     ELSE {attestation} END)
             WHERE seq IN ({attestation}, {validation});"
        ),
    );
    let bad = first_bad(&path);
    assert_eq!(
        (bad.seq, bad.problem),
        (
            attestation,
            format!("prev_hash does not match entry {}", attestation - 1)
        )
    );
}

#[test]
fn a_forged_mint_with_a_fresh_chain_breaks_the_rules() {
    let (_dir, path) = community();
    let mut all = entries(&path);
    let seq = seq_of(&path, EntryKind::ContributionValidated, 0);
    let validation = &mut all[seq as usize - 1];
    validation.payload["minted_micro"] = 1_000_000_000.into();
    forge(&path, all);
    let bad = first_bad(&path);
    assert_eq!(bad.seq, seq);
    assert!(
        bad.problem.contains("mints 100 Communs, not 1000"),
        "{}",
        bad.problem
    );
}

#[test]
fn a_journal_rechained_without_its_settlement_breaks_the_rules() {
    let (_dir, path) = community();
    let mut all = entries(&path);
    let settled = seq_of(&path, EntryKind::DemurrageSettled, 0);
    all.remove(settled as usize - 1);
    forge(&path, all);
    // The transfer, now at the settlement's place, finds Alice's demurrage unpaid.
    let bad = first_bad(&path);
    assert_eq!(bad.seq, settled, "{bad}");
    assert_eq!(
        bad.problem,
        "the ledger would not have recorded it: the balance of `Alice` has demurrage due \
         since 2026-11-22T10:00:00.000Z that was not settled first"
    );
}

#[test]
fn a_forged_reordering_with_a_fresh_chain_breaks_the_rules() {
    let (_dir, path) = community();
    let mut all = entries(&path);
    // The validation moved before the approvals that earned it.
    let validation = seq_of(&path, EntryKind::ContributionValidated, 0) as usize - 1;
    let first_approval = seq_of(&path, EntryKind::Attestation, 0) as usize - 1;
    let moved = all.remove(validation);
    all.insert(first_approval, moved);
    forge(&path, all);
    let bad = first_bad(&path);
    assert_eq!(bad.seq, first_approval as i64 + 1);
    assert!(
        bad.problem.contains("without the approvals it needs"),
        "{}",
        bad.problem
    );
}

/// The last entry that changed `member`'s balance, read from the payloads.
fn last_touching(path: &Path, member: &str) -> i64 {
    entries(path)
        .into_iter()
        .filter(|e| match e.kind {
            EntryKind::ContributionValidated => e.payload["member"] == member,
            EntryKind::Transfer => e.author == member || e.payload["to"] == member,
            EntryKind::DemurrageSettled => e.payload["accounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["member"] == member),
            _ => false,
        })
        .map(|e| e.seq)
        .max()
        .unwrap()
}

#[test]
fn a_tampered_balance_names_the_account() {
    let (_dir, path) = community();
    tamper(
        &path,
        "UPDATE balances SET balance_micro = balance_micro + 1000000 WHERE member = 'Dave';",
    );
    let bad = first_bad(&path);
    assert_eq!(bad.account.as_deref(), Some("Dave"));
    assert_eq!(bad.seq, last_touching(&path, "Dave"));
    assert!(
        bad.problem.contains("the balances table gives `Dave`"),
        "{}",
        bad.problem
    );
    assert!(bad.to_string().contains("(account `Dave`)"));

    // Rebuilding the derived tables from the journal repairs it.
    let journal = Journal::open(&path).unwrap();
    journal.rebuild_derived().unwrap();
    assert!(journal.verify().unwrap().is_intact());
}

#[test]
fn a_deleted_balance_row_names_the_account() {
    let (_dir, path) = community();
    tamper(&path, "DELETE FROM balances WHERE member = 'Bob';");
    let bad = first_bad(&path);
    assert_eq!(bad.account.as_deref(), Some("Bob"));
    assert_eq!(bad.seq, last_touching(&path, "Bob"));
}

#[test]
fn a_tampered_commons_is_named() {
    let (_dir, path) = community();
    tamper(
        &path,
        "UPDATE ledger_totals SET commons_micro = commons_micro - 1;",
    );
    let bad = first_bad(&path);
    assert_eq!(bad.account.as_deref(), Some("commons"));
    assert!(bad.problem.contains("ledger_totals"), "{}", bad.problem);
}

#[test]
fn a_tampered_contribution_state_names_the_contribution() {
    let (_dir, path) = community();
    let rejected = seq_of(&path, EntryKind::ContributionRecorded, 2);
    tamper(
        &path,
        &format!(
            "UPDATE contributions SET state = 'validated', minted_micro = 50000000 WHERE id = {rejected};"
        ),
    );
    let bad = first_bad(&path);
    assert_eq!((bad.seq, bad.account), (rejected, None));
    assert!(
        bad.problem
            .contains("state is validated in the table, rejected by the journal"),
        "{}",
        bad.problem
    );
}

#[test]
fn a_tampered_attestation_or_transfer_row_names_its_entry() {
    let (_dir, path) = community();
    tamper(
        &path,
        "UPDATE attestations SET comment = 'Fine by me' WHERE verdict = 'reject';",
    );
    let first_reject = entries(&path)
        .into_iter()
        .find(|e| e.kind == EntryKind::Attestation && e.payload["verdict"] == "reject")
        .unwrap()
        .seq;
    assert_eq!(first_bad(&path).seq, first_reject);

    let (_dir, path) = community();
    tamper(&path, "UPDATE transfers SET to_member = 'Bob';");
    assert_eq!(first_bad(&path).seq, seq_of(&path, EntryKind::Transfer, 0));
}

#[test]
fn an_unreadable_derived_row_is_a_finding() {
    let (_dir, path) = community();
    tamper(
        &path,
        "UPDATE balances SET balance_micro = 'lots' WHERE member = 'Alice';",
    );
    let bad = first_bad(&path);
    assert!(bad.problem.contains("balance_micro"), "{}", bad.problem);
}
