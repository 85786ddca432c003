//! The hash chain: an independent computation of the first hash, and tampering with
//! the database file by raw SQL, each time naming the entry that was touched.

use std::path::{Path, PathBuf};

use chrono::Duration;
use ledger::{BadEntry, Journal, Role};
use rusqlite::Connection;
use sha2::{Digest, Sha256};

use crate::community::{at, config_members, config_plan, db_path, site_services, vote};

/// A community of six entries in a file: Alice, Bob, Carol (1-3), the configuration
/// plan (4), Dave joins (5), a voted plan (6).
fn community() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let t0 = at("2026-11-22T10:00:00Z");
    let journal = Journal::open(&path).unwrap();
    journal.seed(&config_plan(), &config_members(), t0).unwrap();
    journal
        .add_member("Dave", &[Role::Resident], "Alice", t0 + Duration::hours(1))
        .unwrap();
    let mut plan = config_plan();
    plan.services[2].min_w = 300.0;
    journal
        .adopt_plan(
            &plan,
            &vote(t0.date_naive()),
            &site_services(),
            "Alice",
            t0 + Duration::days(2),
        )
        .unwrap();
    assert_eq!(journal.head().unwrap().unwrap().seq, 6);
    (dir, path)
}

/// Runs SQL on the file as someone with the file and `sqlite3` would: the
/// append-only triggers are no obstacle to them, nor are foreign keys (off by default
/// in `sqlite3`, on by default in the SQLite rusqlite bundles).
fn tamper(path: &Path, sql: &str) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = OFF;
         DROP TRIGGER journal_no_update; DROP TRIGGER journal_no_delete; {sql}"
    ))
    .unwrap();
}

fn first_bad(path: &Path) -> BadEntry {
    let report = Journal::open(path).unwrap().verify().unwrap();
    match report.first_bad {
        Some(bad) => bad,
        None => panic!("tampering not detected: {report}"),
    }
}

fn stored_payload(path: &Path, seq: i64) -> String {
    let conn = Connection::open(path).unwrap();
    conn.query_row("SELECT payload FROM journal WHERE seq = ?1", [seq], |r| {
        r.get(0)
    })
    .unwrap()
}

#[test]
fn an_intact_journal_verifies() {
    let (_dir, path) = community();
    let journal = Journal::open(&path).unwrap();
    let report = journal.verify().unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.entries, 6);
    assert_eq!(report.head_hash, journal.head().unwrap().unwrap().hash);
    let entries = journal.entries(0, 100).unwrap();
    for pair in entries.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    assert!(entries.iter().all(|e| e.hash == e.computed_hash()));
}

#[test]
fn the_first_hash_matches_an_independent_computation() {
    let (_dir, path) = community();
    // Written out by hand from the documented rule: sorted keys, no whitespace,
    // payload as stored, ts with milliseconds and Z.
    let payload = r#"{"name":"Alice","roles":["resident","assembly"]}"#;
    let canonical = format!(
        r#"{{"author":"config","kind":"member_joined","payload":{payload},"seq":1,"ts":"2026-11-22T10:00:00.000Z"}}"#
    );
    let mut hasher = Sha256::new();
    hasher.update("0".repeat(64).as_bytes());
    hasher.update(canonical.as_bytes());
    let expected = hex::encode(hasher.finalize());

    let conn = Connection::open(&path).unwrap();
    let (ts, stored_payload, prev_hash, hash): (String, String, String, String) = conn
        .query_row(
            "SELECT ts, payload, prev_hash, hash FROM journal WHERE seq = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(ts, "2026-11-22T10:00:00.000Z");
    assert_eq!(stored_payload, payload);
    assert_eq!(prev_hash, "0".repeat(64));
    assert_eq!(hash, expected);

    let journal = Journal::open(&path).unwrap();
    let first = journal.entries(0, 1).unwrap().remove(0);
    assert_eq!(first.hash, expected);
    assert_eq!(
        String::from_utf8(first.canonical_bytes()).unwrap(),
        canonical
    );
}

#[test]
fn one_changed_payload_byte_names_the_entry() {
    let (_dir, path) = community();
    let before = stored_payload(&path, 2);
    tamper(
        &path,
        "UPDATE journal SET payload = replace(payload, 'Bob', 'Bop') WHERE seq = 2;",
    );
    let after = stored_payload(&path, 2);
    let changed = before
        .bytes()
        .zip(after.bytes())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!((before.len(), changed), (after.len(), 1));

    let bad = first_bad(&path);
    assert_eq!(bad.seq, 2);
    assert_eq!(bad.problem, "hash does not match its contents");
}

#[test]
fn a_payload_byte_that_breaks_the_json_names_the_entry() {
    let (_dir, path) = community();
    tamper(
        &path,
        "UPDATE journal SET payload = substr(payload, 1, length(payload) - 1) || ']' WHERE seq = 5;",
    );
    let bad = first_bad(&path);
    assert_eq!(
        (bad.seq, bad.problem.as_str()),
        (5, "payload is not valid JSON")
    );
}

#[test]
fn a_changed_author_names_the_entry() {
    let (_dir, path) = community();
    tamper(
        &path,
        "UPDATE journal SET author = 'Mallory' WHERE seq = 6;",
    );
    let bad = first_bad(&path);
    assert_eq!(
        (bad.seq, bad.problem.as_str()),
        (6, "hash does not match its contents")
    );
}

#[test]
fn a_deleted_entry_names_the_gap() {
    let (_dir, path) = community();
    tamper(&path, "DELETE FROM journal WHERE seq = 3;");
    let bad = first_bad(&path);
    assert_eq!(bad.seq, 3);
    assert_eq!(
        bad.problem,
        "entry 3 is missing (sequence jumps from 2 to 4)"
    );
}

#[test]
fn swapped_entries_name_the_first() {
    let (_dir, path) = community();
    tamper(
        &path,
        "CREATE TEMP TABLE saved AS SELECT * FROM journal WHERE seq IN (2, 5);
         UPDATE journal SET (ts, kind, author, payload, prev_hash, hash) =
             (SELECT ts, kind, author, payload, prev_hash, hash FROM saved
              WHERE saved.seq = CASE journal.seq WHEN 2 THEN 5 ELSE 2 END)
         WHERE seq IN (2, 5);",
    );
    let bad = first_bad(&path);
    assert_eq!(bad.seq, 2);
    assert_eq!(bad.problem, "prev_hash does not match entry 1");
}

#[test]
fn swapped_payloads_name_the_first() {
    let (_dir, path) = community();
    tamper(
        &path,
        "CREATE TEMP TABLE saved AS SELECT seq, payload FROM journal WHERE seq IN (2, 5);
         UPDATE journal SET payload =
             (SELECT payload FROM saved WHERE saved.seq = CASE journal.seq WHEN 2 THEN 5 ELSE 2 END)
         WHERE seq IN (2, 5);",
    );
    let bad = first_bad(&path);
    assert_eq!(
        (bad.seq, bad.problem.as_str()),
        (2, "hash does not match its contents")
    );
}

#[test]
fn an_altered_hash_names_the_entry() {
    let (_dir, path) = community();
    tamper(
        &path,
        "UPDATE journal SET hash = (CASE substr(hash, 1, 1) WHEN 'a' THEN 'b' ELSE 'a' END)
                                   || substr(hash, 2)
         WHERE seq = 4;",
    );
    let bad = first_bad(&path);
    assert_eq!(
        (bad.seq, bad.problem.as_str()),
        (4, "hash does not match its contents")
    );
}

#[test]
fn a_rewritten_entry_with_a_fresh_hash_breaks_the_next_link() {
    let (_dir, path) = community();
    // Recompute entry 2's hash after changing it: the chain still points at the old one.
    let journal = Journal::open(&path).unwrap();
    let mut bob = journal.entries(1, 1).unwrap().remove(0);
    drop(journal);
    bob.author = "Mallory".into();
    let forged = bob.computed_hash();
    tamper(
        &path,
        &format!("UPDATE journal SET author = 'Mallory', hash = '{forged}' WHERE seq = 2;"),
    );
    let bad = first_bad(&path);
    assert_eq!(
        (bad.seq, bad.problem.as_str()),
        (3, "prev_hash does not match entry 2")
    );
}
