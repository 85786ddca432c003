//! `communalia sortition explain ID` and `communalia ledger verify` on a draw by
//! lot, through the binary: every step printed from the journal alone, and a panel
//! changed after the fact (its entry re-hashed so that the chain holds) caught by
//! verify, naming the draw.

use std::collections::BTreeMap;

use crate::cli::{run_cli, stdout_of};
use crate::ledger_cli::ledger_site;
use crate::support::*;

#[test]
fn explain_prints_every_step_and_verify_catches_a_changed_panel() {
    let dir = TempDir::new("sortition");
    let cfg = ledger_site(dir.path()).to_string_lossy().to_string();
    // Seeds the journal from the configuration: ana, bo and cy.
    stdout_of(
        &run_cli(
            &[
                "user",
                "add",
                "ana",
                "--role",
                "resident",
                "--generate",
                "--config",
                &cfg,
            ],
            "",
        ),
        "user add",
    );
    let db = dir.path().join("ledger.sqlite");
    let now = chrono::Utc::now();
    let id = {
        let journal = ledger::Journal::open(&db).expect("open the journal");
        journal
            .set_sortition_keys(&["street".into()], "ana", now)
            .expect("keys");
        for (member, street) in [("ana", "Gare"), ("bo", "Gare"), ("cy", "Tilleuls")] {
            let attributes: BTreeMap<String, String> =
                [("street".to_string(), street.to_string())].into();
            journal
                .opt_in_sortition(member, true, &attributes, now)
                .expect("opt in");
        }
        let spec = ledger::DrawSpec {
            size: 2,
            strata_key: Some("street".into()),
            quotas: [("Tilleuls".to_string(), ledger::Quota { min: 1, max: None })].into(),
            mandate: ledger::Mandate {
                scope: ledger::MandateScope::EnergyPriorities,
                title: "Winter".into(),
                term_end: (now + chrono::Duration::days(30)).date_naive(),
            },
            draw_at: now,
        };
        let id = journal
            .announce_sortition(&spec, "ana", now)
            .expect("announce")
            .seq;
        journal
            .draw_sortition(id, &[2, 5], &["A witness".into()], "ana", now)
            .expect("draw");
        id
    };
    let id_text = id.to_string();
    let explained = stdout_of(
        &run_cli(&["sortition", "explain", &id_text, "--config", &cfg], ""),
        "sortition explain",
    );
    for expected in [
        "Pool: 3 members",
        "Die rolls: 2,5",
        "minimum of stratum `Tilleuls`",
        "-> cy",
        "The journal records this panel: it matches.",
    ] {
        assert!(
            explained.contains(expected),
            "{expected} missing from:\n{explained}"
        );
    }
    let missing = run_cli(&["sortition", "explain", "999", "--config", &cfg], "");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no draw 999"));

    // The panel changed after the fact: bo for ana, or ana for bo.
    {
        let conn = rusqlite::Connection::open(&db).expect("open db");
        let (seq, ts, author, payload, prev): (i64, String, String, String, String) = conn
            .query_row(
                "SELECT seq, ts, author, payload, prev_hash FROM journal ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .expect("head");
        let mut payload: serde_json::Value = serde_json::from_str(&payload).expect("payload");
        let selected: Vec<String> =
            serde_json::from_value(payload["selected"].clone()).expect("selected");
        let swapped: Vec<String> = selected
            .iter()
            .map(|m| match m.as_str() {
                "ana" if !selected.contains(&"bo".to_string()) => "bo".to_string(),
                "bo" if !selected.contains(&"ana".to_string()) => "ana".to_string(),
                _ => m.clone(),
            })
            .collect();
        assert_ne!(swapped, selected);
        payload["selected"] = serde_json::json!(swapped);
        let entry = ledger::Entry {
            seq,
            ts: chrono::DateTime::parse_from_rfc3339(&ts)
                .expect("ts")
                .with_timezone(&chrono::Utc),
            kind: ledger::EntryKind::SortitionDrawn,
            author,
            payload: payload.clone(),
            prev_hash: prev,
            hash: String::new(),
        };
        let hash = entry.computed_hash();
        conn.execute_batch("DROP TRIGGER IF EXISTS journal_no_update;")
            .expect("drop trigger");
        conn.execute(
            "UPDATE journal SET payload = ?1, hash = ?2 WHERE seq = ?3",
            rusqlite::params![ledger::canonical_json(&payload), hash, seq],
        )
        .expect("tamper");
    }
    let verify = run_cli(&["ledger", "verify", "--config", &cfg], "");
    assert_eq!(verify.status.code(), Some(2));
    let out = String::from_utf8_lossy(&verify.stdout);
    assert!(out.contains("chain intact"), "{out}");
    assert!(
        out.contains(&format!("draw {id}: the panel recorded")),
        "{out}"
    );
}
