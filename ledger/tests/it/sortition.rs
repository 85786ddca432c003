//! Assemblies drawn by lot: the pool, the announcement, the draw re-run by `verify`,
//! declines, decisions taken by a panel, and the selection's fairness.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use ledger::{
    Decision, DecisionProblem, DrawSpec, EntryKind, Journal, LedgerParameters, Mandate,
    MandateScope, PoolMember, Quota, Refusal, Role, SortitionProblem, canonical_json, feasibility,
    select,
};
use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};

use crate::community::{at, config_members, config_plan, db_path, site_services};

fn t0() -> DateTime<Utc> {
    at("2026-12-01T18:00:00Z")
}

/// The residents of three buildings: A (6), B (4), C (2), and two who declare nothing.
fn residents() -> Vec<(String, Option<&'static str>)> {
    let mut all = Vec::new();
    for (building, n) in [("A", 6), ("B", 4), ("C", 2)] {
        for i in 0..n {
            all.push((format!("{building}-resident-{i}"), Some(building)));
        }
    }
    all.push(("Quiet-1".into(), None));
    all.push(("Quiet-2".into(), None));
    all
}

/// A community whose residents opted in, declaring their building (or not).
fn community(journal: &Journal) {
    journal
        .seed(&config_plan(), &config_members(), t0() - Duration::days(10))
        .unwrap();
    journal
        .set_sortition_keys(&["building".into(), "age_band".into()], "Alice", t0())
        .unwrap();
    for (name, building) in residents() {
        journal
            .add_member(&name, &[Role::Resident], "Alice", t0())
            .unwrap();
        let attributes: BTreeMap<String, String> = building
            .map(|b| [("building".to_string(), b.to_string())].into())
            .unwrap_or_default();
        journal
            .opt_in_sortition(&name, true, &attributes, t0())
            .unwrap();
    }
}

fn mandate(scope: MandateScope) -> Mandate {
    Mandate {
        scope,
        title: "priorités d'énergie pour l'hiver".into(),
        term_end: NaiveDate::from_ymd_opt(2027, 3, 31).unwrap(),
    }
}

fn spec(size: u32, quotas: &[(&str, u32, Option<u32>)], scope: MandateScope) -> DrawSpec {
    DrawSpec {
        size,
        strata_key: Some("building".into()),
        quotas: quotas
            .iter()
            .map(|(s, min, max)| {
                (
                    s.to_string(),
                    Quota {
                        min: *min,
                        max: *max,
                    },
                )
            })
            .collect(),
        mandate: mandate(scope),
        draw_at: t0() + Duration::hours(1),
    }
}

fn witnesses() -> Vec<String> {
    vec!["Marie Curie".into(), "Jean Jaurès".into()]
}

/// Announces and draws a panel of 5 (at least 2 of A, 1 of B, 1 of C, at most 1
/// undeclared); returns the draw's id.
fn draw_panel(journal: &Journal, rolls: &[u8], scope: MandateScope) -> i64 {
    let spec = spec(
        5,
        &[
            ("A", 2, None),
            ("B", 1, None),
            ("C", 1, None),
            ("", 0, Some(1)),
        ],
        scope,
    );
    let id = journal
        .announce_sortition(&spec, "Alice", t0() + Duration::minutes(5))
        .unwrap()
        .seq;
    journal
        .draw_sortition(id, rolls, &witnesses(), "Alice", t0() + Duration::hours(1))
        .unwrap();
    id
}

#[test]
fn the_same_inputs_give_the_same_panel_and_another_die_another() {
    let one = Journal::open_in_memory().unwrap();
    let two = Journal::open_in_memory().unwrap();
    let three = Journal::open_in_memory().unwrap();
    for j in [&one, &two, &three] {
        community(j);
    }
    let a = draw_panel(&one, &[3, 5], MandateScope::EnergyPriorities);
    let b = draw_panel(&two, &[3, 5], MandateScope::EnergyPriorities);
    let c = draw_panel(&three, &[3, 6], MandateScope::EnergyPriorities);
    let (a, b, c) = (
        one.draw(a).unwrap().unwrap(),
        two.draw(b).unwrap().unwrap(),
        three.draw(c).unwrap().unwrap(),
    );
    let panel = |d: &ledger::Draw| d.drawn.as_ref().unwrap().selected.clone();
    assert_eq!(panel(&a), panel(&b));
    assert_eq!(
        a.drawn.as_ref().unwrap().seed,
        b.drawn.as_ref().unwrap().seed
    );
    assert_ne!(
        a.drawn.as_ref().unwrap().seed,
        c.drawn.as_ref().unwrap().seed
    );
    assert_ne!(panel(&a), panel(&c), "another die roll, another panel");
    // The quotas hold on the panel drawn.
    let stratum = |name: &str| {
        a.pool
            .iter()
            .find(|m| m.member == name)
            .unwrap()
            .stratum
            .clone()
    };
    let count = |s: &str| panel(&a).iter().filter(|m| stratum(m) == s).count();
    assert!(count("A") >= 2 && count("B") >= 1 && count("C") >= 1 && count("") <= 1);
    assert_eq!(panel(&a).len(), 5);
    // The seed is the documented hash of its inputs.
    let drawn = a.drawn.as_ref().unwrap();
    let expected = hex::encode(Sha256::digest(
        format!("{}{}3,5", a.announcement_hash, drawn.head_hash).as_bytes(),
    ));
    assert_eq!(drawn.seed, expected);
    assert!(one.verify().unwrap().is_intact());
    // The explanation re-runs it and says it matches.
    let explained = a.explain();
    assert!(
        explained.contains("The journal records this panel: it matches."),
        "{explained}"
    );
    assert!(explained.contains("minimum of stratum `C`"), "{explained}");
}

/// A small deterministic generator for the random pools of the test below.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

#[test]
fn quotas_are_met_on_random_pools() {
    let mut rng = Lcg(19);
    let mut drawn = 0;
    for round in 0..400 {
        let strata = 1 + rng.below(4) as usize;
        let mut pool = Vec::new();
        for s in 0..strata {
            for i in 0..1 + rng.below(8) {
                pool.push(PoolMember {
                    member: format!("m{s}-{i}"),
                    stratum: format!("s{s}"),
                });
            }
        }
        pool.sort();
        let size = 1 + rng.below(pool.len() as u64) as u32;
        let mut quotas = BTreeMap::new();
        for s in 0..strata {
            let members = pool.iter().filter(|m| m.stratum == format!("s{s}")).count() as u64;
            let min = rng.below(members + 1) as u32;
            let max = if rng.below(2) == 0 {
                None
            } else {
                Some(min + rng.below(members + 1) as u32)
            };
            quotas.insert(format!("s{s}"), Quota { min, max });
        }
        let spec = DrawSpec {
            size,
            strata_key: Some("k".into()),
            quotas: quotas.clone(),
            mandate: mandate(MandateScope::EnergyPriorities),
            draw_at: t0(),
        };
        let seed: [u8; 32] = Sha256::digest(format!("round {round}")).into();
        match select(&spec, &pool, seed) {
            Err(problems) => assert!(!problems.is_empty() && !feasibility(&spec, &pool).is_empty()),
            Ok(selection) => {
                drawn += 1;
                assert_eq!(selection.selected.len(), size as usize);
                let unique: BTreeSet<_> = selection.selected.iter().collect();
                assert_eq!(unique.len(), size as usize, "a member drawn twice");
                for (stratum, quota) in &quotas {
                    let seats = selection
                        .steps
                        .iter()
                        .filter(|s| &s.stratum == stratum)
                        .count() as u32;
                    assert!(
                        seats >= quota.min,
                        "round {round}: {stratum} under its minimum"
                    );
                    assert!(
                        quota.max.is_none_or(|max| seats <= max),
                        "round {round}: {stratum} over its maximum"
                    );
                }
            }
        }
    }
    assert!(
        drawn > 150,
        "too few feasible pools to mean anything: {drawn}"
    );
}

#[test]
fn infeasible_quotas_are_refused_with_the_reason_before_the_announcement() {
    let journal = Journal::open_in_memory().unwrap();
    community(&journal);
    let head = journal.head().unwrap().unwrap().seq;
    // C has 2 members: a minimum of 3 cannot be met; minima 3 + 4 > 6 seats.
    let infeasible = spec(
        6,
        &[("C", 3, None), ("A", 4, None)],
        MandateScope::EnergyPriorities,
    );
    let problems = journal.sortition_problems(&infeasible).unwrap();
    assert_eq!(
        problems,
        [
            SortitionProblem::MinAboveStratum {
                stratum: "C".into(),
                min: 3,
                members: 2
            },
            SortitionProblem::MinimaAboveSize { minima: 7, size: 6 }
        ]
    );
    let err = journal
        .announce_sortition(&infeasible, "Alice", t0())
        .unwrap_err();
    assert_eq!(err.refusal(), Some(&Refusal::InvalidDraw(problems)));
    assert!(
        err.to_string()
            .contains("stratum `C`: the minimum 3 is more than its 2 members in the pool"),
        "{err}"
    );
    // Maxima that cannot fill the panel.
    let spec2 = spec(
        8,
        &[("A", 0, Some(2)), ("B", 0, Some(2)), ("", 0, Some(1))],
        MandateScope::EnergyPriorities,
    );
    let err = journal
        .announce_sortition(&spec2, "Alice", t0())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("allow at most 7 seats, fewer than the 8"),
        "{err}"
    );
    // An attribute the assembly did not list.
    let mut spec3 = spec(3, &[], MandateScope::EnergyPriorities);
    spec3.strata_key = Some("income".into());
    let err = journal
        .announce_sortition(&spec3, "Alice", t0())
        .unwrap_err();
    assert!(
        err.to_string().contains("`income` is not an attribute"),
        "{err}"
    );
    assert_eq!(
        journal.head().unwrap().unwrap().seq,
        head,
        "nothing recorded"
    );
}

#[test]
fn only_listed_attributes_are_declared_and_the_draw_follows_its_announcement() {
    let journal = Journal::open_in_memory().unwrap();
    community(&journal);
    let attributes: BTreeMap<String, String> = [("religion".to_string(), "x".to_string())].into();
    let err = journal
        .opt_in_sortition("Bob", true, &attributes, t0())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("`religion` is not an attribute the assembly listed"),
        "{err}"
    );
    let err = journal
        .opt_in_sortition("Mallory", true, &BTreeMap::new(), t0())
        .unwrap_err();
    assert_eq!(
        err.refusal(),
        Some(&Refusal::UnknownMember("Mallory".into()))
    );
    let spec = spec(3, &[], MandateScope::EnergyPriorities);
    let id = journal
        .announce_sortition(&spec, "Alice", t0())
        .unwrap()
        .seq;
    // Before its time, the draw is refused; with a die showing 7, too.
    let err = journal
        .draw_sortition(id, &[4], &witnesses(), "Alice", t0())
        .unwrap_err();
    assert!(
        err.to_string().contains("it cannot be made before"),
        "{err}"
    );
    let later = t0() + Duration::hours(2);
    let err = journal
        .draw_sortition(id, &[7], &witnesses(), "Alice", later)
        .unwrap_err();
    assert!(
        err.to_string().contains("a die shows 1 to 6, not 7"),
        "{err}"
    );
    let err = journal
        .draw_sortition(id, &[4], &[], "Alice", later)
        .unwrap_err();
    assert!(err.to_string().contains("witnesses"), "{err}");
    journal
        .draw_sortition(id, &[4], &witnesses(), "Alice", later)
        .unwrap();
    let err = journal
        .draw_sortition(id, &[4], &witnesses(), "Alice", later)
        .unwrap_err();
    assert!(err.to_string().contains("a draw is made once"), "{err}");
    // A member who opts out after the announcement stays in that draw's pool.
    journal
        .opt_in_sortition("A-resident-0", false, &BTreeMap::new(), later)
        .unwrap();
    assert!(
        !journal
            .sortition_pool()
            .unwrap()
            .contains_key("A-resident-0")
    );
    assert_eq!(
        journal.draw(id).unwrap().unwrap().pool.len(),
        residents().len()
    );
    assert!(journal.verify().unwrap().is_intact());
}

#[test]
fn a_member_who_declines_is_replaced_from_the_seeds_continuation() {
    let journal = Journal::open_in_memory().unwrap();
    community(&journal);
    let id = draw_panel(&journal, &[2, 2, 6], MandateScope::EnergyPriorities);
    let draw = journal.draw(id).unwrap().unwrap();
    let selected = draw.drawn.as_ref().unwrap().selected.clone();
    let decliner = selected
        .iter()
        .find(|m| m.starts_with('B'))
        .unwrap()
        .clone();
    let later = t0() + Duration::days(1);
    journal
        .decline_panel_seat(id, &decliner, &decliner, later)
        .unwrap();
    let after = journal.draw(id).unwrap().unwrap();
    let replacement = after.declines[0].replacement.clone().unwrap();
    assert!(
        replacement.starts_with('B'),
        "from the same stratum: {replacement}"
    );
    assert!(!selected.contains(&replacement));
    assert_eq!(after.seated.len(), 5);
    assert!(after.seated.contains(&replacement) && !after.seated.contains(&decliner));
    assert!(after.consumed > draw.consumed);
    // Nobody declines a seat for its holder, not even another member of the panel.
    let holder = after.seated[0].clone();
    let other = after.seated[1].clone();
    let err = journal
        .decline_panel_seat(id, &holder, &other, later)
        .unwrap_err();
    assert!(
        err.to_string().contains("only the member drawn can"),
        "{err}"
    );
    assert!(journal.draw(id).unwrap().unwrap().seated.contains(&holder));
    // Someone not on the panel cannot decline a seat.
    let err = journal
        .decline_panel_seat(id, &decliner, "Alice", later)
        .unwrap_err();
    assert!(
        err.to_string().contains("does not sit on the panel"),
        "{err}"
    );
    let explained = after.explain();
    assert!(
        explained.contains(&format!("replacing {decliner}, who declined")),
        "{explained}"
    );
    assert!(!explained.contains("MISMATCH"), "{explained}");
    assert!(journal.verify().unwrap().is_intact());
}

fn panel_vote(panel: i64, present: u32, quorum: u32, date: &str) -> Decision {
    Decision {
        assembly_date: date.parse().unwrap(),
        votes_for: 3,
        votes_against: 1,
        votes_abstain: 0,
        quorum_required: quorum,
        present,
        minutes: "Le panel priorise l'école pendant les examens.".into(),
        panel: Some(panel),
    }
}

#[test]
fn a_panel_decides_within_its_mandate_and_term_only() {
    let journal = Journal::open_in_memory().unwrap();
    community(&journal);
    let id = draw_panel(&journal, &[1], MandateScope::EnergyPriorities);
    let day = t0() + Duration::days(2);
    // Outside its mandate: ledger parameters.
    let err = journal
        .adopt_ledger_parameters(
            &LedgerParameters::default(),
            &panel_vote(id, 4, 3, "2026-12-03"),
            "Alice",
            day,
        )
        .unwrap_err();
    assert_eq!(
        err.refusal(),
        Some(&Refusal::InvalidDecision(vec![
            DecisionProblem::OutsideMandate {
                draw: id,
                scope: MandateScope::EnergyPriorities,
                motion: ledger::Motion::Parameters
            }
        ]))
    );
    assert!(
        err.to_string().contains("cannot adopt ledger parameters"),
        "{err}"
    );
    // More present than seated, a quorum under a majority of 5.
    let err = journal
        .adopt_plan(
            &config_plan(),
            &panel_vote(id, 6, 2, "2026-12-03"),
            &site_services(),
            "Alice",
            day,
        )
        .unwrap_err();
    assert_eq!(
        err.refusal(),
        Some(&Refusal::InvalidDecision(vec![
            DecisionProblem::MorePresentThanPanel {
                present: 6,
                seated: 5
            },
            DecisionProblem::PanelQuorumTooLow {
                required: 2,
                minimum: 3,
                seated: 5
            },
        ]))
    );
    // After its term.
    let err = journal
        .adopt_plan(
            &config_plan(),
            &panel_vote(id, 4, 3, "2027-04-01"),
            &site_services(),
            "Alice",
            at("2027-04-01T10:00:00Z"),
        )
        .unwrap_err();
    assert!(err.to_string().contains("sat until 2027-03-31"), "{err}");
    // A draw that does not exist.
    let err = journal
        .adopt_plan(
            &config_plan(),
            &panel_vote(999, 4, 3, "2026-12-03"),
            &site_services(),
            "Alice",
            day,
        )
        .unwrap_err();
    assert!(err.to_string().contains("draw 999 has no panel"), "{err}");
    // Within its mandate and term: adopted, listed, and the journal verifies.
    let entry = journal
        .adopt_plan(
            &config_plan(),
            &panel_vote(id, 4, 3, "2026-12-03"),
            &site_services(),
            "Alice",
            day,
        )
        .unwrap();
    let decisions = journal.panel_decisions(id).unwrap();
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].seq, entry.seq);
    assert_eq!(decisions[0].kind, EntryKind::PlanAdopted);
    let report = journal.verify().unwrap();
    assert!(report.is_intact(), "{report}");
}

#[test]
fn a_decision_without_a_panel_keeps_its_hash() {
    // A record made before panels existed has no `panel` key, and gets none.
    let decision = crate::community::vote(NaiveDate::from_ymd_opt(2026, 11, 20).unwrap());
    let value = serde_json::to_value(&decision).unwrap();
    assert!(value.get("panel").is_none());
    let back: Decision = serde_json::from_value(value).unwrap();
    assert_eq!(back.panel, None);
}

fn tamper(path: &std::path::Path, sql: &str, args: impl rusqlite::Params) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA foreign_keys = OFF;
         DROP TRIGGER IF EXISTS journal_no_update; DROP TRIGGER IF EXISTS journal_no_delete;",
    )
    .unwrap();
    conn.execute(sql, args).unwrap();
}

#[test]
fn a_tampered_draw_is_caught_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let journal = Journal::open(&path).unwrap();
    community(&journal);
    let id = draw_panel(&journal, &[4, 1], MandateScope::EnergyPriorities);
    let draw = journal.draw(id).unwrap().unwrap();
    let mut entry = journal.head().unwrap().unwrap();
    assert_eq!(entry.kind, EntryKind::SortitionDrawn);
    drop(journal);
    // Swap a drawn member for one of the same stratum who was not drawn, and re-hash
    // the entry so that the chain itself holds: only re-running the draw shows it.
    let selected = draw.drawn.as_ref().unwrap().selected.clone();
    let (victim, stratum) = selected
        .iter()
        .map(|m| {
            (
                m.clone(),
                draw.pool
                    .iter()
                    .find(|p| &p.member == m)
                    .unwrap()
                    .stratum
                    .clone(),
            )
        })
        .find(|(_, s)| s == "A")
        .unwrap();
    let favourite = draw
        .pool
        .iter()
        .find(|p| p.stratum == stratum && !selected.contains(&p.member))
        .unwrap()
        .member
        .clone();
    let forged: Vec<String> = selected
        .iter()
        .map(|m| {
            if *m == victim {
                favourite.clone()
            } else {
                m.clone()
            }
        })
        .collect();
    entry.payload["selected"] = serde_json::json!(forged);
    entry.hash = entry.computed_hash();
    tamper(
        &path,
        "UPDATE journal SET payload = ?1, hash = ?2 WHERE seq = ?3",
        params![canonical_json(&entry.payload), entry.hash, entry.seq],
    );
    let report = Journal::open(&path).unwrap().verify().unwrap();
    assert!(report.chain_intact, "{report}");
    let bad = report.first_bad.expect("verify should fail");
    assert_eq!(bad.seq, entry.seq);
    assert!(
        bad.problem
            .contains(&format!("draw {id}: the panel recorded")),
        "{bad}"
    );
    assert!(
        bad.problem.contains("is not the one its inputs give"),
        "{bad}"
    );
    // Die rolls changed after the fact: the seed no longer follows.
    let journal = Journal::open(&path).unwrap();
    let mut entry = journal.head().unwrap().unwrap();
    drop(journal);
    entry.payload["selected"] = serde_json::json!(selected);
    entry.payload["rolls"] = serde_json::json!([4, 2]);
    entry.hash = entry.computed_hash();
    tamper(
        &path,
        "UPDATE journal SET payload = ?1, hash = ?2 WHERE seq = ?3",
        params![canonical_json(&entry.payload), entry.hash, entry.seq],
    );
    let bad = Journal::open(&path)
        .unwrap()
        .verify()
        .unwrap()
        .first_bad
        .unwrap();
    assert!(
        bad.problem
            .contains("the seed recorded is not SHA-256 of its inputs"),
        "{bad}"
    );
}

/// Chi-square statistic of observed counts against equal expected counts.
fn chi_square(counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    let expected = total as f64 / counts.len() as f64;
    counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum()
}

/// Upper critical values of the chi-square distribution at significance 0.001, by
/// degrees of freedom (standard tables).
fn critical_0_001(df: usize) -> f64 {
    match df {
        1 => 10.828,
        2 => 13.816,
        3 => 16.266,
        5 => 20.515,
        7 => 24.322,
        11 => 31.264,
        _ => panic!("no table value for {df} degrees of freedom"),
    }
}

/// Fairness: over 10,000 draws on a fixed pool with strata and quotas, each
/// member's selection frequency within its stratum is equal within statistical
/// tolerance. Pearson's chi-square goodness-of-fit test per stratum, against equal
/// frequencies, at significance 0.001 (critical values from the standard table);
/// the seeds are SHA-256("fairness <i>") for i in 0..10000, so the test is
/// deterministic. As a control, the same test rejects a selection that favours one
/// member by a fifth.
#[test]
fn each_member_of_a_stratum_has_the_same_chance() {
    let strata = [("A", 12), ("B", 6), ("C", 4), ("D", 8)];
    let mut pool: Vec<PoolMember> = strata
        .iter()
        .flat_map(|(s, n)| {
            (0..*n).map(move |i| PoolMember {
                member: format!("{s}{i:02}"),
                stratum: s.to_string(),
            })
        })
        .collect();
    pool.sort();
    let spec = DrawSpec {
        size: 10,
        strata_key: Some("building".into()),
        quotas: [
            (
                "A".to_string(),
                Quota {
                    min: 2,
                    max: Some(5),
                },
            ),
            ("B".to_string(), Quota { min: 2, max: None }),
            (
                "C".to_string(),
                Quota {
                    min: 1,
                    max: Some(2),
                },
            ),
        ]
        .into(),
        mandate: mandate(MandateScope::EnergyPriorities),
        draw_at: t0(),
    };
    let mut counts: BTreeMap<String, u64> = pool.iter().map(|m| (m.member.clone(), 0)).collect();
    for i in 0..10_000 {
        let seed: [u8; 32] = Sha256::digest(format!("fairness {i}")).into();
        for m in select(&spec, &pool, seed).unwrap().selected {
            *counts.get_mut(&m).unwrap() += 1;
        }
    }
    for (stratum, n) in strata {
        let observed: Vec<u64> = pool
            .iter()
            .filter(|m| m.stratum == stratum)
            .map(|m| counts[&m.member])
            .collect();
        assert_eq!(observed.len(), n);
        let statistic = chi_square(&observed);
        assert!(
            statistic < critical_0_001(n - 1),
            "stratum {stratum}: chi-square {statistic:.2} with {} degrees of freedom \
             rejects equal chances: {observed:?}",
            n - 1
        );
        // The control: the first member favoured by a fifth is caught.
        let mut biased = observed.clone();
        biased[0] += biased[0] / 5;
        assert!(
            chi_square(&biased) > critical_0_001(n - 1),
            "stratum {stratum}: the test cannot see a bias of a fifth"
        );
    }
}

#[test]
fn a_journal_cut_off_after_a_sortition_entry_is_noticed() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let journal = Journal::open(&path).unwrap();
    community(&journal);
    draw_panel(&journal, &[6], MandateScope::EnergyPriorities);
    let last = journal.head().unwrap().unwrap().seq;
    drop(journal);
    tamper(&path, "DELETE FROM journal WHERE seq = ?1", params![last]);
    let bad = Journal::open(&path)
        .unwrap()
        .verify()
        .unwrap()
        .first_bad
        .unwrap();
    assert_eq!(bad.seq, last);
    assert!(
        bad.problem
            .contains("the sortition_entries table refers to entry"),
        "{bad}"
    );
}
