//! A household's consent in the journal: only its members grant and revoke, a
//! grant names a known grantee and a bounded period, and `verify` replays it all,
//! refusing a forged grant as the write path would.

use chrono::{DateTime, Duration, Utc};
use ledger::{
    Entry, EntryKind, Erasure, ErasureRequest, Grantee, Granularity, Journal, NewGrant, Refusal,
    Role, canonical_json,
};
use rusqlite::{Connection, params};

use crate::community::{at, config_members, config_plan, db_path};

fn t0() -> DateTime<Utc> {
    at("2026-12-01T18:00:00Z")
}

/// Household `martin`: Bob and Dave.
fn members() -> Vec<String> {
    vec!["Bob".into(), "Dave".into()]
}

fn grant(grantee: &str, granularity: Granularity, starts: DateTime<Utc>) -> NewGrant {
    NewGrant {
        household: "martin".into(),
        household_members: members(),
        grantee: grantee.parse().unwrap(),
        granularity,
        purpose: "conseil en économies d'énergie".into(),
        starts,
        expires: starts + Duration::days(90),
    }
}

fn refusal(e: ledger::Error) -> Refusal {
    e.refusal()
        .cloned()
        .unwrap_or_else(|| panic!("not a refusal: {e}"))
}

/// A grant, its revocation, a second grant and an erasure, by Bob: the entries
/// the tamper tests' community holds too.
pub(crate) fn grant_revoke_erase(journal: &Journal, day: DateTime<Utc>) {
    if journal.member("Dave").unwrap().is_none() {
        journal
            .add_member("Dave", &[Role::Resident], "Alice", day)
            .unwrap();
    }
    let first = journal
        .grant_consent(
            "Bob",
            &grant("role:installer", Granularity::Daily, day),
            day,
        )
        .unwrap();
    journal
        .revoke_consent("Dave", first.seq, "martin", &members(), day)
        .unwrap();
    journal
        .grant_consent("Bob", &grant("member:Carol", Granularity::Raw, day), day)
        .unwrap();
    let request = journal
        .request_erasure("Dave", &erasure_request(day), day)
        .unwrap();
    journal
        .record_erasure(
            "Bob",
            &Erasure {
                household: "martin".into(),
                household_members: members(),
                meters: vec!["house-martin".into()],
                from: day - Duration::days(30),
                to: day,
                rows: 1234,
                request: Some(request.seq),
            },
            day,
        )
        .unwrap();
}

/// Household `martin`'s last 30 days before `day`.
fn erasure_request(day: DateTime<Utc>) -> ErasureRequest {
    ErasureRequest {
        household: "martin".into(),
        household_members: members(),
        meters: vec!["house-martin".into()],
        from: day - Duration::days(30),
        to: day,
    }
}

/// A request from `/me` is one at a time per household, only by its members, and
/// the erasure that carries it out erases what it asked, once.
#[test]
fn an_erasure_request_is_pending_until_an_erasure_carries_it_out_once() {
    let (_dir, path, journal) = community();
    let day = t0();
    assert!(matches!(
        refusal(
            journal
                .request_erasure("Carol", &erasure_request(day), day)
                .unwrap_err()
        ),
        Refusal::NotOfHousehold { .. }
    ));
    let request = journal
        .request_erasure("Bob", &erasure_request(day), day)
        .unwrap();
    let again = refusal(
        journal
            .request_erasure("Dave", &erasure_request(day), day)
            .unwrap_err(),
    );
    assert!(again.to_string().contains("already asked"), "{again}");
    let pending = journal.erasure_requests(Some("martin")).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].done_by_entry, None);
    assert_eq!(pending[0].by, "Bob");
    assert!(journal.erasure_requests(Some("dupont")).unwrap().is_empty());

    let erasure = |from: DateTime<Utc>, request: i64| Erasure {
        household: "martin".into(),
        household_members: members(),
        meters: vec!["house-martin".into()],
        from,
        to: day,
        rows: 7,
        request: Some(request),
    };
    // Not another period than the one asked for, nor another entry.
    let other = refusal(
        journal
            .record_erasure("Bob", &erasure(day - Duration::days(1), request.seq), day)
            .unwrap_err(),
    );
    assert!(other.to_string().contains("does not erase what"), "{other}");
    assert!(
        journal
            .record_erasure("Bob", &erasure(day - Duration::days(30), 1), day)
            .is_err()
    );
    let done = journal
        .record_erasure("Bob", &erasure(day - Duration::days(30), request.seq), day)
        .unwrap();
    let twice = refusal(
        journal
            .record_erasure("Bob", &erasure(day - Duration::days(30), request.seq), day)
            .unwrap_err(),
    );
    assert!(twice.to_string().contains("already carried out"), "{twice}");
    let requests = journal.erasure_requests(None).unwrap();
    assert_eq!(requests[0].done_by_entry, Some(done.seq));
    // Carried out, the household may ask again.
    journal
        .request_erasure("Dave", &erasure_request(day), day)
        .unwrap();
    drop(journal);
    assert!(Journal::open(&path).unwrap().verify().unwrap().is_intact());
}

fn community() -> (tempfile::TempDir, std::path::PathBuf, Journal) {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let journal = Journal::open(&path).unwrap();
    journal
        .seed(&config_plan(), &config_members(), t0() - Duration::days(1))
        .unwrap();
    journal
        .add_member("Dave", &[Role::Resident], "Alice", t0())
        .unwrap();
    (dir, path, journal)
}

#[test]
fn members_of_the_household_grant_and_revoke_and_verify_replays_it() {
    let (_dir, _path, journal) = community();
    grant_revoke_erase(&journal, t0());
    let grants = journal.consent_grants().unwrap();
    assert_eq!(grants.len(), 2);
    assert_eq!(grants[0].revoked_by.as_deref(), Some("Dave"));
    assert!(!grants[0].is_live(t0() + Duration::hours(1)), "revoked");
    assert!(grants[1].is_live(t0() + Duration::hours(1)));
    assert!(!grants[1].is_live(t0() + Duration::days(91)), "expired");
    assert_eq!(grants[1].grantee, Grantee::Member("Carol".into()));
    let erasures = journal.erasures("martin").unwrap();
    assert_eq!(erasures.len(), 1);
    assert_eq!((erasures[0].erasure.rows, &*erasures[0].by), (1234, "Bob"));
    let report = journal.verify().unwrap();
    assert!(report.is_intact(), "{report}");
}

#[test]
fn a_member_of_another_household_cannot_grant_or_revoke() {
    let (_dir, _path, journal) = community();
    let e = journal
        .grant_consent(
            "Alice",
            &grant("role:installer", Granularity::Raw, t0()),
            t0(),
        )
        .unwrap_err();
    assert_eq!(
        refusal(e),
        Refusal::NotOfHousehold {
            member: "Alice".into(),
            household: "martin".into()
        }
    );
    let g = journal
        .grant_consent(
            "Bob",
            &grant("role:installer", Granularity::Raw, t0()),
            t0(),
        )
        .unwrap();
    let e = journal
        .revoke_consent("Alice", g.seq, "martin", &members(), t0())
        .unwrap_err();
    assert!(matches!(refusal(e), Refusal::NotOfHousehold { .. }));
    // Naming another household's grant as one's own is no way round it.
    let e = journal
        .revoke_consent("Alice", g.seq, "dupont", &["Alice".into()], t0())
        .unwrap_err();
    assert_eq!(refusal(e), Refusal::NoSuchGrant(g.seq));
    assert!(journal.consent_grants().unwrap()[0].revoked_at.is_none());
}

#[test]
fn bad_grants_are_refused_each_saying_why() {
    let (_dir, _path, journal) = community();
    let cases: Vec<(NewGrant, &str)> = vec![
        (
            grant("member:Mallory", Granularity::Daily, t0()),
            "no member named `Mallory`",
        ),
        (
            grant("federation:les-saules", Granularity::Daily, t0()),
            "reserved",
        ),
        (
            NewGrant {
                purpose: "  ".into(),
                ..grant("role:installer", Granularity::Daily, t0())
            },
            "purpose",
        ),
        (
            NewGrant {
                expires: t0(),
                ..grant("role:installer", Granularity::Daily, t0())
            },
            "expires",
        ),
        (
            NewGrant {
                household_members: vec!["Bob".into(), "Zed".into()],
                ..grant("role:installer", Granularity::Daily, t0())
            },
            "no member named `Zed`",
        ),
    ];
    for (g, expected) in cases {
        let e = journal.grant_consent("Bob", &g, t0()).unwrap_err();
        assert!(e.refusal().is_some(), "{e}");
        assert!(e.to_string().contains(expected), "{expected}: {e}");
    }
    let g = journal
        .grant_consent(
            "Bob",
            &grant("role:installer", Granularity::Daily, t0()),
            t0(),
        )
        .unwrap();
    journal
        .revoke_consent("Bob", g.seq, "martin", &members(), t0())
        .unwrap();
    let e = journal
        .revoke_consent("Bob", g.seq, "martin", &members(), t0())
        .unwrap_err();
    assert!(e.to_string().contains("already revoked"), "{e}");
    assert_eq!(
        refusal(
            journal
                .revoke_consent("Bob", 999, "martin", &members(), t0())
                .unwrap_err()
        ),
        Refusal::NoSuchGrant(999)
    );
    assert!("member:".parse::<Grantee>().is_err());
    assert!("role:plumber".parse::<Grantee>().is_err());
    assert!("nobody".parse::<Grantee>().is_err());
}

#[test]
fn consent_kinds_are_recorded_only_through_their_typed_calls() {
    let (_dir, _path, journal) = community();
    for kind in [
        EntryKind::ConsentGranted,
        EntryKind::ConsentRevoked,
        EntryKind::HouseholdReadingsErased,
        EntryKind::HouseholdErasureRequested,
    ] {
        let e = journal
            .append(kind, "Bob", &serde_json::json!({}), t0())
            .unwrap_err();
        assert!(
            matches!(refusal(e), Refusal::TypedCallOnly { kind: k, .. } if k == kind),
            "{kind}"
        );
    }
}

/// A forger who writes a grant by someone outside the household, with a fresh
/// chain, is caught by `verify`'s replay.
#[test]
fn a_forged_grant_by_a_stranger_breaks_the_rules_on_replay() {
    let (_dir, path, journal) = community();
    let g = journal
        .grant_consent(
            "Bob",
            &grant("role:installer", Granularity::Raw, t0()),
            t0(),
        )
        .unwrap();
    assert!(journal.verify().unwrap().is_intact());
    drop(journal);
    let mut entries: Vec<Entry> = Journal::open(&path).unwrap().entries(0, 1000).unwrap();
    let forged = entries.iter_mut().find(|e| e.seq == g.seq).unwrap();
    forged.author = "Alice".into();
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("DROP TRIGGER IF EXISTS journal_no_update;")
        .unwrap();
    let mut prev = "0".repeat(64);
    for e in entries.iter_mut() {
        e.prev_hash = prev.clone();
        e.hash = e.computed_hash();
        prev = e.hash.clone();
        conn.execute(
            "UPDATE journal SET author = ?1, payload = ?2, prev_hash = ?3, hash = ?4 WHERE seq = ?5",
            params![e.author, canonical_json(&e.payload), e.prev_hash, e.hash, e.seq],
        )
        .unwrap();
    }
    drop(conn);
    let report = Journal::open(&path).unwrap().verify().unwrap();
    assert!(report.chain_intact, "{report}");
    let Some(bad) = report.first_bad.clone() else {
        panic!("the forged grant is not noticed: {report}")
    };
    assert_eq!(bad.seq, g.seq, "{bad:?}");
    assert!(format!("{bad:?}").contains("Alice"), "{bad:?}");
}

#[test]
fn the_access_log_keeps_each_read_newest_first() {
    let (_dir, _path, journal) = community();
    let record = |what: &str, at: DateTime<Utc>| ledger::AccessRecord {
        at,
        household: "martin".into(),
        grant: 7,
        reader: "Carol".into(),
        what: what.into(),
        meters: vec!["house-martin".into()],
        from: Some(t0() - Duration::days(1)),
        to: None,
    };
    journal
        .log_access(&[
            record("/api/export", t0()),
            record("sql: SELECT 1", t0() + Duration::seconds(1)),
        ])
        .unwrap();
    let log = journal.access_log("martin").unwrap();
    assert_eq!(
        log,
        vec![
            record("sql: SELECT 1", t0() + Duration::seconds(1)),
            record("/api/export", t0())
        ]
    );
    assert!(journal.access_log("dupont").unwrap().is_empty());
}

/// Deleting the last entry, a revocation, would bring its grant back to life: the
/// `consent_entries` table still names it, and `verify` says so.
#[test]
fn a_deleted_last_revocation_is_noticed() {
    let (_dir, path, journal) = community();
    let g = journal
        .grant_consent(
            "Bob",
            &grant("role:installer", Granularity::Raw, t0()),
            t0(),
        )
        .unwrap();
    let revoked = journal
        .revoke_consent("Dave", g.seq, "martin", &members(), t0())
        .unwrap();
    drop(journal);
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = OFF; DROP TRIGGER IF EXISTS journal_no_delete;\n         DELETE FROM journal WHERE seq = {};",
        revoked.seq
    ))
    .unwrap();
    drop(conn);
    let journal = Journal::open(&path).unwrap();
    assert!(journal.consent_grants().unwrap()[0].revoked_at.is_none());
    let report = journal.verify().unwrap();
    let Some(bad) = report.first_bad.clone() else {
        panic!("the deleted revocation is not noticed: {report}")
    };
    assert_eq!(bad.seq, revoked.seq, "{bad:?}");
    assert!(bad.problem.contains("consent_entries"), "{bad:?}");
}
