//! Seeding, members and plan adoptions through the public API, on a file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use ledger::{
    Decision, EntryKind, Error, Journal, Plan, PlanProblem, PlanService, Refusal, Role, Sources,
    Split, TierRule,
};
use serde_json::json;

pub(crate) fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub(crate) fn service(id: &str, tier: u32, min_w: f64, max_w: Option<f64>) -> PlanService {
    PlanService {
        id: id.into(),
        tier,
        min_w,
        max_w,
    }
}

pub(crate) fn config_plan() -> Plan {
    Plan {
        tiers: vec![
            TierRule {
                tier: 1,
                split: Split::Equal,
            },
            TierRule {
                tier: 2,
                split: Split::ProRata,
            },
        ],
        services: vec![
            service("clinic-fridge", 1, 150.0, None),
            service("water-pump", 1, 0.0, Some(1500.0)),
            service("school", 2, 0.0, None),
        ],
        sources: Sources::default(),
    }
}

/// The ids of the services of the site configuration [`config_plan`] comes from.
pub(crate) fn site_services() -> BTreeSet<String> {
    config_plan().services.into_iter().map(|s| s.id).collect()
}

pub(crate) fn config_members() -> Vec<(String, Vec<Role>)> {
    vec![
        ("Alice".into(), vec![Role::Assembly, Role::Resident]),
        ("Bob".into(), vec![Role::Resident]),
        ("Carol".into(), vec![Role::Installer]),
    ]
}

pub(crate) fn vote(date: NaiveDate) -> Decision {
    Decision {
        assembly_date: date,
        votes_for: 12,
        votes_against: 3,
        votes_abstain: 1,
        quorum_required: 10,
        present: 16,
        minutes: "The school moves to tier 1 during exams.".into(),
        panel: None,
    }
}

pub(crate) fn db_path(dir: &Path) -> PathBuf {
    dir.join("data").join("ledger.sqlite")
}

#[test]
fn seeding_is_idempotent_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let t0 = at("2026-11-22T10:00:00Z");
    {
        let journal = Journal::open(&path).unwrap();
        assert!(journal.seed(&config_plan(), &config_members(), t0).unwrap());
        assert!(!journal.seed(&config_plan(), &config_members(), t0).unwrap());
        let mut other_plan = config_plan();
        other_plan.services.pop();
        assert!(
            !journal
                .seed(&other_plan, &[], t0 + Duration::days(1))
                .unwrap()
        );
        assert_eq!(journal.head().unwrap().unwrap().seq, 4);
    }
    let journal = Journal::open(&path).unwrap();
    assert!(!journal.seed(&config_plan(), &config_members(), t0).unwrap());

    let entries = journal.entries(0, 100).unwrap();
    let kinds: Vec<_> = entries.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EntryKind::MemberJoined,
            EntryKind::MemberJoined,
            EntryKind::MemberJoined,
            EntryKind::PlanAdopted
        ]
    );
    assert!(entries.iter().all(|e| e.author == "config"));

    let members = journal.members().unwrap();
    let names: Vec<_> = members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["Alice", "Bob", "Carol"]);
    assert_eq!(members[0].roles, [Role::Resident, Role::Assembly]);

    let active = journal.active_plan().unwrap().unwrap();
    assert_eq!(active.seq, 4);
    assert_eq!(active.plan, config_plan());
    assert_eq!(active.author, "config");
    assert!(active.is_from_configuration());
    assert_eq!(
        active.decision.assembly_date,
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
    );
    assert_eq!(
        active.decision.minutes,
        "Initial plan from the site configuration"
    );
    assert_eq!(
        (
            active.decision.votes_for,
            active.decision.present,
            active.decision.quorum_required
        ),
        (0, 0, 0)
    );
    assert!(journal.verify().unwrap().is_intact());
}

#[test]
fn adoption_appends_and_the_latest_plan_is_active() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let t0 = at("2026-11-22T10:00:00Z");
    let mut exam_plan = config_plan();
    exam_plan.services[2].tier = 1;
    let adopted = {
        let journal = Journal::open(&path).unwrap();
        journal.seed(&config_plan(), &config_members(), t0).unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let entry = journal
            .adopt_plan(
                &exam_plan,
                &vote(date),
                &site_services(),
                "Alice",
                t0 + Duration::days(9),
            )
            .unwrap();
        assert_eq!(entry.seq, 5);
        assert_eq!(entry.kind, EntryKind::PlanAdopted);
        assert_eq!(entry.payload["plan"]["services"][2]["tier"], json!(1));
        entry
    };

    let journal = Journal::open(&path).unwrap();
    let active = journal.active_plan().unwrap().unwrap();
    assert_eq!(
        (active.seq, active.hash.as_str()),
        (5, adopted.hash.as_str())
    );
    assert_eq!(active.plan, exam_plan);
    assert_eq!(
        active.decision,
        vote(NaiveDate::from_ymd_opt(2026, 12, 1).unwrap())
    );
    assert_eq!(active.author, "Alice");
    assert_eq!(active.adopted_at, t0 + Duration::days(9));

    let history = journal.plan_history().unwrap();
    let seqs: Vec<_> = history.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, [5, 4], "newest first");
    assert_eq!(history[1].plan, config_plan());
    assert!(journal.verify().unwrap().is_intact());
}

#[test]
fn an_invalid_plan_is_refused_naming_the_service() {
    let journal = Journal::open_in_memory().unwrap();
    let t0 = at("2026-11-22T10:00:00Z");
    journal.seed(&config_plan(), &config_members(), t0).unwrap();
    let mut bad = config_plan();
    bad.services[0].max_w = Some(100.0); // below clinic-fridge's 150 W minimum
    bad.services.push(service("water-pump", 2, 0.0, None));
    let err = journal
        .adopt_plan(&bad, &vote(t0.date_naive()), &site_services(), "Alice", t0)
        .unwrap_err();
    let Error::Refused(Refusal::InvalidPlan(problems)) = &err else {
        panic!("expected InvalidPlan, got {err}");
    };
    assert_eq!(
        problems,
        &[
            PlanProblem::MaxBelowMin {
                id: "clinic-fridge".into(),
                min_w: 150.0,
                max_w: 100.0
            },
            PlanProblem::ServiceTwice {
                id: "water-pump".into()
            }
        ]
    );
    assert!(err.to_string().contains("clinic-fridge"));
    assert_eq!(journal.head().unwrap().unwrap().seq, 4, "nothing recorded");
    assert_eq!(journal.active_plan().unwrap().unwrap().plan, config_plan());

    // The untyped door does not know the site's services: it is shut to plans.
    let payload = json!({"plan": config_plan(), "decision": vote(t0.date_naive())});
    let err = journal
        .append(EntryKind::PlanAdopted, "Alice", &payload, t0)
        .unwrap_err();
    assert!(
        matches!(err, Error::Refused(Refusal::TypedCallOnly { .. })),
        "{err}"
    );
}

#[test]
fn an_invalid_seed_plan_seeds_nothing() {
    let journal = Journal::open_in_memory().unwrap();
    let mut bad = config_plan();
    bad.services[1].tier = 0;
    let err = journal
        .seed(&bad, &config_members(), at("2026-11-22T10:00:00Z"))
        .unwrap_err();
    assert!(err.to_string().contains("`water-pump`"), "{err}");
    assert_eq!(journal.head().unwrap(), None);
    assert!(journal.members().unwrap().is_empty());
}

#[test]
fn concurrent_writers_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let shared = Arc::new(Journal::open(&path).unwrap());
    // A second handle on the same file, as a second process would have.
    let other = Arc::new(Journal::open(&path).unwrap());
    let t0 = at("2026-11-22T10:00:00Z");
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let journal = if i % 2 == 0 {
                shared.clone()
            } else {
                other.clone()
            };
            std::thread::spawn(move || {
                for j in 0..10 {
                    journal
                        .add_member(&format!("member-{i}-{j}"), &[Role::Resident], "admin", t0)
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let report = shared.verify().unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.entries, 80);
    assert_eq!(shared.members().unwrap().len(), 80);
}

#[test]
fn derived_tables_rebuild_from_the_journal() {
    let journal = Journal::open_in_memory().unwrap();
    let t0 = at("2026-11-22T10:00:00Z");
    journal.seed(&config_plan(), &config_members(), t0).unwrap();
    journal
        .adopt_plan(
            &config_plan(),
            &vote(t0.date_naive()),
            &site_services(),
            "Alice",
            t0,
        )
        .unwrap();
    let members = journal.members().unwrap();
    let history = journal.plan_history().unwrap();
    assert_eq!(journal.rebuild_derived().unwrap(), 5);
    assert_eq!(journal.members().unwrap(), members);
    assert_eq!(journal.plan_history().unwrap(), history);
}
