//! A decision is what the assembly decided (DESIGN.md §9): adoptions are recorded
//! only when the motion carried under the rule in force, which the assembly itself
//! adopts; journals recorded before the rule existed keep verifying, and `verify`
//! lists their decisions that today's rule would refuse.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use ledger::{
    Decision, DecisionProblem, DecisionRule, Entry, EntryKind, Journal, LedgerParameters, Motion,
    Refusal, canonical_json,
};
use rusqlite::{Connection, params};
use serde_json::json;

use crate::community::{config_members, config_plan, db_path, site_services};
use crate::contributions::t0;

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// A decision of an assembly held on 2026-11-20 (two days before [`t0`]), 20
/// present for a quorum of 10, with these votes.
fn votes(votes_for: u32, votes_against: u32, votes_abstain: u32) -> Decision {
    Decision {
        assembly_date: date("2026-11-20"),
        votes_for,
        votes_against,
        votes_abstain,
        quorum_required: 10,
        present: 20,
        minutes: "Show of hands.".into(),
        panel: None,
    }
}

fn seeded() -> Journal {
    let journal = Journal::open_in_memory().unwrap();
    journal
        .seed(&config_plan(), &config_members(), t0())
        .unwrap();
    journal
}

fn with_rule(rule: DecisionRule) -> LedgerParameters {
    LedgerParameters {
        decision_rule: rule,
        ..LedgerParameters::default()
    }
}

fn not_carried(rule: DecisionRule, votes_for: u32, votes_against: u32) -> Refusal {
    Refusal::InvalidDecision(vec![DecisionProblem::NotCarried {
        rule,
        votes_for,
        votes_against,
    }])
}

fn head(journal: &Journal) -> i64 {
    journal.head().unwrap().map_or(0, |e| e.seq)
}

#[test]
fn a_motion_voted_down_is_refused() {
    let journal = seeded();
    let before = head(&journal);
    let mut plan = config_plan();
    plan.services.swap(0, 2);
    let down = Decision {
        present: 10,
        quorum_required: 8,
        ..votes(3, 6, 1)
    };
    let err = journal
        .adopt_plan(&plan, &down, &site_services(), "Alice", t0())
        .unwrap_err();
    assert_eq!(
        err.refusal(),
        Some(&not_carried(DecisionRule::Simple, 3, 6))
    );
    assert!(
        err.to_string()
            .contains("the motion did not carry: 3 for, 6 against"),
        "{err}"
    );
    let err = journal
        .adopt_ledger_parameters(&LedgerParameters::default(), &votes(0, 3, 0), "Alice", t0())
        .unwrap_err();
    assert_eq!(
        err.refusal(),
        Some(&not_carried(DecisionRule::Simple, 0, 3))
    );
    assert_eq!(head(&journal), before, "nothing recorded");
    assert_eq!(journal.active_plan().unwrap().unwrap().plan, config_plan());
}

#[test]
fn the_assembly_adopts_its_own_rule_and_later_motions_follow_it() {
    let journal = seeded();
    let plan = config_plan();
    let adopt_plan = |d: &Decision, at: DateTime<Utc>| {
        journal.adopt_plan(&plan, d, &site_services(), "Alice", at)
    };
    // Under the default simple majority, 6 for and 4 against carries…
    adopt_plan(&votes(6, 4, 0), t0()).unwrap();
    // …and so does the motion to require two thirds (9 for, 2 against).
    journal
        .adopt_ledger_parameters(
            &with_rule(DecisionRule::TwoThirds),
            &votes(9, 2, 0),
            "Alice",
            t0(),
        )
        .unwrap();
    assert_eq!(
        journal.ledger_parameters().unwrap().decision_rule,
        DecisionRule::TwoThirds
    );
    // Now 6 of 10 is short of two thirds; 7 of 10 is not; 2 of 3 exactly carries.
    let err = adopt_plan(&votes(6, 4, 5), t0()).unwrap_err();
    assert_eq!(
        err.refusal(),
        Some(&not_carried(DecisionRule::TwoThirds, 6, 4))
    );
    adopt_plan(&votes(7, 3, 0), t0()).unwrap();
    adopt_plan(&votes(2, 1, 9), t0()).unwrap();
    // Going back to a simple majority is judged under two thirds, the rule in force.
    let err = journal
        .adopt_ledger_parameters(
            &with_rule(DecisionRule::Simple),
            &votes(6, 4, 0),
            "Alice",
            t0(),
        )
        .unwrap_err();
    assert_eq!(
        err.refusal(),
        Some(&not_carried(DecisionRule::TwoThirds, 6, 4))
    );
    assert_eq!(
        journal.ledger_parameters().unwrap().decision_rule,
        DecisionRule::TwoThirds
    );
    // Consent, adopted by 12 for and 6 against (two thirds exactly)…
    journal
        .adopt_ledger_parameters(
            &with_rule(DecisionRule::Consent),
            &votes(12, 6, 0),
            "Alice",
            t0(),
        )
        .unwrap();
    // …then lets no motion with a vote against through, however many are for.
    let err = adopt_plan(&votes(15, 1, 0), t0()).unwrap_err();
    assert_eq!(
        err.refusal(),
        Some(&not_carried(DecisionRule::Consent, 15, 1))
    );
    adopt_plan(&votes(3, 0, 12), t0()).unwrap();
    let report = journal.verify().unwrap();
    assert!(report.is_intact(), "{report}");
    // The first plan (6 for, 4 against) and the rule adopted under two thirds
    // (12 for, 6 against) would not carry under consent.
    let warned: Vec<i64> = report.warnings.iter().map(|w| w.seq).collect();
    let plans: Vec<i64> = journal
        .plan_history()
        .unwrap()
        .iter()
        .map(|p| p.seq)
        .collect();
    let parameters: Vec<i64> = journal
        .parameters_history()
        .unwrap()
        .iter()
        .map(|p| p.seq)
        .collect();
    // Oldest first: the first voted plan (second oldest, after the seed), the first
    // rule change (9 for 2 against), the rule adopted under two thirds, then the
    // plans of 7 for 3 against and 2 for 1 against.
    let mut expected = vec![
        plans[plans.len() - 2],
        parameters[1],
        parameters[0],
        plans[2],
        plans[1],
    ];
    expected.sort_unstable();
    assert_eq!(warned, expected, "{:?}", report.warnings);
    assert!(
        report
            .warnings
            .iter()
            .all(|w| w.rule == DecisionRule::Consent)
    );
}

#[test]
fn dates_in_the_future_or_before_the_previous_adoption_are_refused() {
    let journal = seeded();
    let plan = config_plan();
    let dated = |day: &str| Decision {
        assembly_date: date(day),
        ..votes(9, 2, 0)
    };
    // t0 is 2026-11-22 10:00 UTC: the 23rd is already today east of UTC+10, the
    // 24th is nowhere.
    let err = journal
        .adopt_plan(&plan, &dated("2026-11-24"), &site_services(), "Alice", t0())
        .unwrap_err();
    assert_eq!(
        err.refusal(),
        Some(&Refusal::InvalidDecision(vec![
            DecisionProblem::DateInFuture {
                date: date("2026-11-24")
            }
        ]))
    );
    journal
        .adopt_plan(&plan, &dated("2026-11-23"), &site_services(), "Alice", t0())
        .unwrap();
    let err = journal
        .adopt_plan(
            &plan,
            &dated("2026-11-20"),
            &site_services(),
            "Alice",
            t0() + Duration::days(3),
        )
        .unwrap_err();
    assert_eq!(
        err.refusal(),
        Some(&Refusal::InvalidDecision(vec![
            DecisionProblem::DateBeforePrevious {
                date: date("2026-11-20"),
                previous: date("2026-11-23")
            }
        ]))
    );
    // Plans and parameters are dated apart: the parameters' first adoption has no
    // previous one.
    let context = journal
        .decision_context(Motion::Parameters, t0() + Duration::days(3))
        .unwrap();
    assert_eq!(context.previous_date, None);
    journal
        .adopt_ledger_parameters(
            &LedgerParameters::default(),
            &dated("2026-11-20"),
            "Alice",
            t0() + Duration::days(3),
        )
        .unwrap();
    let context = journal
        .decision_context(Motion::Plan, t0() + Duration::days(3))
        .unwrap();
    assert_eq!(context.previous_date, Some(date("2026-11-23")));
    assert_eq!(context.latest_date, date("2026-11-26"));
    assert_eq!(context.rule, DecisionRule::Simple);
}

/// Appends `entries` after the journal's head, chained as any program following
/// `Entry`'s documentation would: what an older version of this program wrote.
fn append_as_older_program(path: &std::path::Path, entries: &[(EntryKind, serde_json::Value)]) {
    let journal = Journal::open(path).unwrap();
    let mut last = journal.head().unwrap().unwrap();
    drop(journal);
    let conn = Connection::open(path).unwrap();
    for (kind, payload) in entries {
        let mut entry = Entry {
            seq: last.seq + 1,
            ts: last.ts + Duration::hours(1),
            kind: *kind,
            author: "Alice".into(),
            payload: payload.clone(),
            prev_hash: last.hash.clone(),
            hash: String::new(),
        };
        entry.hash = entry.computed_hash();
        conn.execute(
            "INSERT INTO journal (seq, ts, kind, author, payload, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                entry.seq,
                ledger::format_ts(entry.ts),
                entry.kind.as_str(),
                entry.author,
                canonical_json(&entry.payload),
                entry.prev_hash,
                entry.hash
            ],
        )
        .unwrap();
        last = entry;
    }
}

#[test]
fn a_journal_recorded_before_the_rule_keeps_verifying_and_lists_what_it_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    Journal::open(&path)
        .unwrap()
        .seed(&config_plan(), &config_members(), t0())
        .unwrap();
    // As an older version recorded them: a plan voted down, parameters without a
    // decision rule (nor a quorum), and a plan that carried.
    let down = json!({"plan": config_plan(), "decision": Decision {
        present: 10, quorum_required: 8, ..votes(3, 6, 1)
    }});
    let old_parameters = json!({
        "parameters": {
            "attestations_needed": 1,
            "rates_micro_per_hour": {"care": 10_000_000, "teaching": 10_000_000,
                "repair": 10_000_000, "gardening": 10_000_000, "cooking": 10_000_000,
                "energy_sharing": 10_000_000, "other": 10_000_000},
            "demurrage_rate_ppm": 20_000, "demurrage_period_days": 30
        },
        "decision": Decision { quorum_required: 0, present: 3, ..votes(0, 3, 0) }
    });
    let carried = json!({"plan": config_plan(), "decision": votes(9, 2, 1)});
    append_as_older_program(
        &path,
        &[
            (EntryKind::PlanAdopted, down),
            (EntryKind::ParametersAdopted, old_parameters),
            (EntryKind::PlanAdopted, carried),
        ],
    );
    let journal = Journal::open(&path).unwrap();
    assert_eq!(journal.rebuild_derived().unwrap(), 7);
    let parameters = journal.ledger_parameters().unwrap();
    assert_eq!(parameters.attestations_needed, 1);
    assert_eq!(
        parameters.decision_rule,
        DecisionRule::Simple,
        "absent means simple"
    );

    let report = journal.verify().unwrap();
    assert!(report.is_intact(), "{report}");
    let warned: Vec<(i64, EntryKind)> = report.warnings.iter().map(|w| (w.seq, w.kind)).collect();
    assert_eq!(
        warned,
        [
            (5, EntryKind::PlanAdopted),
            (6, EntryKind::ParametersAdopted)
        ]
    );
    assert_eq!(
        report.warnings[0].problems,
        [
            "the motion did not carry: 3 for, 6 against (simple majority: more votes for than against)"
        ]
    );
    assert_eq!(
        report.warnings[1].problems,
        [
            "quorum_required must be at least 1",
            "the motion did not carry: 0 for, 3 against (simple majority: more votes for than against)"
        ]
    );
    assert!(
        report.warnings[0]
            .to_string()
            .starts_with("entry 5 (plan_adopted, assembly of 2026-11-20)"),
        "{}",
        report.warnings[0]
    );
}
