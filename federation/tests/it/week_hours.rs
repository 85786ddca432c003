//! Minutes resent from the history carry the week's validated hours as the
//! journal had them at the end of each minute, as the live summary of that minute
//! did.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use federation::clock::ScaledClock;
use ledger::{Category, Journal, NewContribution, Role, Verdict};
use tokio_util::sync::CancellationToken;

use crate::node::{index_of, sim_node_with_journal};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("instant")
        .with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resent_minutes_carry_the_weeks_validated_hours_of_their_time() {
    // A Wednesday: the week (UTC) began on Monday 2026-06-01.
    let t0 = at("2026-06-03T10:00:00Z");
    let dir = tempfile::tempdir().expect("temp dir");
    let journal = Arc::new(Journal::open(&dir.path().join("ledger.sqlite")).expect("journal"));
    for name in ["ana", "ben", "cleo"] {
        journal
            .create_user(
                name,
                &[Role::Resident],
                "a long enough password",
                "test",
                t0 - Duration::hours(2),
            )
            .expect("member");
    }
    let contribution = |hours: f64, at: DateTime<Utc>| {
        let entry = journal
            .record_contribution(
                "ana",
                &NewContribution {
                    category: Category::Care,
                    hours,
                    date: at.date_naive(),
                    description: "soins".into(),
                },
                at,
            )
            .expect("contribution");
        entry.seq
    };
    // 1.5 hours validated during minute 10 (the second approval), 2.25 during
    // minute 25; a third contribution never validated.
    let first = contribution(1.5, t0 + Duration::minutes(5));
    let second = contribution(2.25, t0 + Duration::minutes(6));
    contribution(4.0, t0 + Duration::minutes(7));
    let approve = |id: i64, who: &str, at: DateTime<Utc>| {
        journal
            .attest(id, who, Verdict::Approve, "", at)
            .expect("attestation");
    };
    approve(first, "ben", t0 + Duration::minutes(8));
    approve(
        first,
        "cleo",
        t0 + Duration::minutes(10) + Duration::seconds(30),
    );
    approve(second, "ben", t0 + Duration::minutes(20));
    approve(
        second,
        "cleo",
        t0 + Duration::minutes(25) + Duration::seconds(59),
    );
    assert!(
        (journal
            .hours_validated_since(t0)
            .expect("hours")
            .centihours()
            == 375),
        "both validated"
    );

    let cancel = CancellationToken::new();
    let clock = Arc::new(ScaledClock::new(t0 + Duration::minutes(40), 1.0));
    let node =
        sim_node_with_journal("tilleuls", 1, t0, 40, clock, cancel.clone(), Some(journal)).await;
    let resent = node
        .source
        .history(t0, t0 + Duration::minutes(40))
        .await
        .expect("history");
    cancel.cancel();
    assert_eq!(resent.len(), 40);
    for s in &resent {
        let k = index_of(s, t0);
        let expected = match k {
            ..10 => 0.0,
            10..25 => 1.5,
            _ => 3.75,
        };
        assert_eq!(s.week_hours, Some(expected), "minute {k}");
    }
}

/// A member's need shared with the federation goes out in the node's live
/// summary, without its author's name; one kept on the node, and one shared but
/// closed, do not; a summary without any keeps the bytes it had before intents
/// existed (no `intents` key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_summary_carries_the_needs_shared_with_the_federation_and_no_name() {
    let t0 = at("2026-06-03T10:00:00Z");
    let dir = tempfile::tempdir().expect("temp dir");
    let journal = Arc::new(Journal::open(&dir.path().join("ledger.sqlite")).expect("journal"));
    journal
        .create_user(
            "anastasia",
            &[Role::Resident],
            "a long enough password",
            "test",
            t0,
        )
        .expect("member");
    let cancel = CancellationToken::new();
    let clock = Arc::new(ScaledClock::new(t0 + Duration::minutes(5), 0.0));
    let node = sim_node_with_journal(
        "tilleuls",
        1,
        t0,
        10,
        clock,
        cancel.clone(),
        Some(journal.clone()),
    )
    .await;
    let before = node.source.live().await;
    assert!(before.intents.is_empty());
    assert!(
        !String::from_utf8_lossy(&before.canonical_bytes()).contains("intents"),
        "no key when there are none"
    );
    let need = |visibility: ledger::Visibility, description: &str| ledger::NewIntent {
        direction: ledger::Direction::Need,
        action: ledger::Action::Work,
        class: "bike-repair".into(),
        quantity: 3.0,
        unit: ledger::Unit::Hours,
        window_start: None,
        window_end: None,
        expires_at: None,
        never_expires: false,
        description: description.into(),
        visibility,
        collective: false,
    };
    let shared = journal
        .post_intent(
            "anastasia",
            &need(ledger::Visibility::Federation, "Deux vélos"),
            t0,
        )
        .expect("shared")
        .seq;
    journal
        .post_intent(
            "anastasia",
            &need(ledger::Visibility::Node, "Une echelle"),
            t0,
        )
        .expect("kept");
    let closed = journal
        .post_intent(
            "anastasia",
            &need(ledger::Visibility::Federation, "Une scie"),
            t0,
        )
        .expect("closed")
        .seq;
    journal
        .close_intent("anastasia", closed, "trouvée", t0)
        .expect("close");
    let summary = node.source.live().await;
    assert_eq!(summary.intents.len(), 1, "{:?}", summary.intents);
    let i = &summary.intents[0];
    assert_eq!(
        (i.id, i.direction.as_str(), i.class.as_str()),
        (shared, "need", "bike-repair")
    );
    assert_eq!((i.remaining, i.unit.as_str()), (3.0, "hours"));
    assert_eq!(i.description, "Deux vélos");
    let bytes = String::from_utf8_lossy(&summary.canonical_bytes()).into_owned();
    assert!(
        !bytes.contains("anastasia"),
        "the author's name left the node: {bytes}"
    );
    assert!(
        !bytes.contains("echelle"),
        "a need kept on the node left it: {bytes}"
    );
    cancel.cancel();
}
