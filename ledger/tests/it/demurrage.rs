//! Demurrage: the design's check values, parameters that change only from their
//! adoption onward, and the conservation of Communs over random histories.
//!
//! Expected figures are computed here, independently of the crate's fixed-point
//! series: with `f64::powf` (far from any rounding edge for these amounts) and, for
//! the fixed figures, written out from a 50-digit computation with Python's
//! `decimal` module (`Decimal(100) * (Decimal("0.98").ln() * d / 30).exp()`).

use chrono::{DateTime, Duration, Utc};
use ledger::{
    Communs, ContributionState, EntryKind, Error, Journal, LedgerParameters, NewTransfer, Refusal,
    Verdict,
};
use proptest::prelude::*;
use serde_json::json;

use crate::contributions::{community, contribute, earn, t0, vote};

const DAY_MS: i64 = 86_400_000;

/// `floor(balance x (1 - rate)^(elapsed / period))` in micro-Communs, by floating point.
fn reference(balance_micro: i64, rate: f64, period_days: f64, elapsed_days: f64) -> i64 {
    (balance_micro as f64 * (1.0 - rate).powf(elapsed_days / period_days)).floor() as i64
}

fn micro(journal: &Journal, member: &str, at: DateTime<Utc>) -> i64 {
    journal.balance(member, at).unwrap().micro()
}

/// The figure to five decimals, floored (the precision of the design's check values).
fn five_decimals(micro: i64) -> String {
    let tens = micro / 10;
    format!("{}.{:05}", tens / 100_000, tens % 100_000)
}

#[test]
fn a_hundred_communs_decay_as_the_design_says() {
    let journal = community();
    earn(&journal, "Alice", 10.0, t0()); // 10 hours at 10 Communs: 100 Communs
    let head = journal.head().unwrap().unwrap().seq;
    // (days, exact value floored to the micro-Commun, floored to 5 decimals)
    // 30 days: 98 exactly; 1 day: 99.932680312151559...; 365 days: 78.207893338635985...
    let cases = [
        (30, 98_000_000, "98.00000"),
        (1, 99_932_680, "99.93268"),
        (365, 78_207_893, "78.20789"),
    ];
    for (days, expected, figure) in cases {
        let at = t0() + Duration::days(days);
        let balance = micro(&journal, "Alice", at);
        assert_eq!(balance, expected, "after {days} days");
        assert_eq!(balance, reference(100_000_000, 0.02, 30.0, days as f64));
        assert_eq!(five_decimals(balance), figure);
        let all = journal.balances(at).unwrap();
        assert_eq!(all.commons.micro(), 100_000_000 - expected);
        assert_eq!(all.minted_total, Communs::from_whole(100));
    }
    assert_eq!(
        serde_json::to_value(journal.balance("Alice", t0() + Duration::days(30)).unwrap()).unwrap(),
        json!(98.0)
    );
    assert_eq!(
        serde_json::to_value(journal.balance("Alice", t0() + Duration::days(1)).unwrap()).unwrap(),
        json!(99.93268)
    );
    assert_eq!(
        journal.head().unwrap().unwrap().seq,
        head,
        "reading writes nothing"
    );
}

#[test]
fn a_write_settles_exactly_what_a_read_projected() {
    let journal = community();
    earn(&journal, "Alice", 10.0, t0());
    let day = t0() + Duration::days(1);
    let projected = micro(&journal, "Alice", day);
    let entry = journal
        .transfer(
            "Alice",
            &NewTransfer {
                to: "Bob".into(),
                amount: Communs::from_micro(1),
                memo: String::new(),
                intent: None,
            },
            day,
        )
        .unwrap();
    let settled = &journal.entries(entry.seq - 2, 1).unwrap()[0];
    assert_eq!(settled.kind, EntryKind::DemurrageSettled);
    assert_eq!(
        settled.payload["accounts"][0]["decayed_micro"],
        100_000_000 - 99_932_680
    );
    assert_eq!(micro(&journal, "Alice", day), projected - 1);
    // Bob held nothing, so nothing of his was settled.
    assert_eq!(settled.payload["accounts"].as_array().unwrap().len(), 1);
}

#[test]
fn a_new_rate_applies_from_its_adoption_onward_only() {
    let journal = community();
    earn(&journal, "Alice", 10.0, t0());
    let adoption = t0() + Duration::days(10);
    let five_percent = LedgerParameters {
        demurrage_rate_ppm: 50_000,
        ..LedgerParameters::default()
    };
    let entry = journal
        .adopt_ledger_parameters(&five_percent, &vote(), "Alice", adoption)
        .unwrap();

    // By hand: 10 days at 2 % per 30 days, floored, then 20 days at 5 % per 30 days.
    // (99328838.837... then 95989653.746..., by 50-digit decimals.)
    let at_adoption = reference(100_000_000, 0.02, 30.0, 10.0);
    assert_eq!(at_adoption, 99_328_838);
    let at_end = reference(at_adoption, 0.05, 30.0, 20.0);
    assert_eq!(at_end, 95_989_653);

    // The balance was settled at the old rate just before the adoption.
    let settled = &journal.entries(entry.seq - 2, 1).unwrap()[0];
    assert_eq!(settled.kind, EntryKind::DemurrageSettled);
    assert_eq!(
        settled.payload["accounts"][0]["decayed_micro"],
        100_000_000 - at_adoption
    );
    assert_eq!(micro(&journal, "Alice", adoption), at_adoption);
    let end = t0() + Duration::days(30);
    assert_eq!(micro(&journal, "Alice", end), at_end);
    // Neither the old rate throughout nor the new one backwards.
    assert_ne!(at_end, 98_000_000);
    assert_ne!(at_end, 95_000_000);

    // Before the adoption, balances are those of the old rate (the journal replayed).
    assert_eq!(
        micro(&journal, "Alice", t0() + Duration::days(5)),
        reference(100_000_000, 0.02, 30.0, 5.0)
    );
    assert_eq!(
        micro(&journal, "Alice", t0() + Duration::days(5)),
        99_663_854
    );
    // Before anything was recorded, nobody had joined and nothing was minted.
    let before = journal.balances(t0() - Duration::days(1)).unwrap();
    assert_eq!(
        (before.balances.len(), before.minted_total),
        (0, Communs::ZERO)
    );

    let all = journal.balances(end).unwrap();
    assert_eq!(all.commons.micro(), 100_000_000 - at_end);
    assert!(journal.verify().unwrap().is_intact());
}

#[test]
fn a_new_period_applies_from_its_adoption_onward_only() {
    let journal = community();
    earn(&journal, "Bob", 24.0, t0()); // 240 Communs
    let adoption = t0() + Duration::days(30);
    let longer = LedgerParameters {
        demurrage_period_days: 365,
        ..LedgerParameters::default()
    };
    journal
        .adopt_ledger_parameters(&longer, &vote(), "Alice", adoption)
        .unwrap();
    // 240 x 0.98 after one old period; then 235.2 x 0.98 after one new period (a
    // year), where the old period would have taken twelve times 2 % and more.
    assert_eq!(micro(&journal, "Bob", adoption), 235_200_000);
    assert_eq!(
        micro(&journal, "Bob", adoption + Duration::days(365)),
        230_496_000
    );
    assert_eq!(
        micro(&journal, "Bob", adoption + Duration::days(100)),
        reference(235_200_000, 0.02, 365.0, 100.0)
    );
    // 233901766.917... by 50-digit decimals.
    assert_eq!(
        micro(&journal, "Bob", adoption + Duration::days(100)),
        233_901_766
    );
}

#[test]
fn a_clock_set_back_decays_nothing_and_keeps_the_sum() {
    let journal = community();
    let later = t0() + Duration::days(10);
    earn(&journal, "Alice", 1.0, later);
    // A write stamped before the last settlement: no demurrage, no settlement entry.
    let entry = journal
        .transfer(
            "Alice",
            &NewTransfer {
                to: "Bob".into(),
                amount: Communs::from_whole(4),
                memo: String::new(),
                intent: None,
            },
            t0(),
        )
        .unwrap();
    assert_eq!(
        journal.entries(entry.seq - 2, 1).unwrap()[0].kind,
        EntryKind::ContributionValidated
    );
    let all = journal.balances(later).unwrap();
    let held: i64 = all.balances.iter().map(|b| b.communs.micro()).sum();
    assert_eq!(held + all.commons.micro(), all.minted_total.micro());
    assert_eq!(micro(&journal, "Alice", later), 6_000_000);
    assert!(journal.verify().unwrap().is_intact());
}

#[test]
fn a_pending_contribution_leaves_the_contributor_unsettled() {
    // Only acts that change a balance settle it.
    let journal = community();
    earn(&journal, "Alice", 1.0, t0());
    let id = contribute(&journal, "Alice", 1.0, t0() + Duration::days(5));
    let a = journal
        .attest(id, "Bob", Verdict::Approve, "", t0() + Duration::days(6))
        .unwrap();
    assert_eq!(a.state, ContributionState::Pending);
    assert_eq!(
        journal.head().unwrap().unwrap().kind,
        EntryKind::Attestation
    );
}

#[derive(Debug, Clone)]
enum Op {
    Earn {
        member: usize,
        centihours: u32,
    },
    Transfer {
        from: usize,
        to: usize,
        permille: u32,
    },
    Elapse {
        ms: i64,
    },
    Demurrage {
        rate_ppm: u32,
        period_days: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..4usize, 1..=2400u32).prop_map(|(member, centihours)| Op::Earn { member, centihours }),
        4 => (0..4usize, 0..4usize, 0..=1200u32)
            .prop_map(|(from, to, permille)| Op::Transfer { from, to, permille }),
        3 => (0..=90 * DAY_MS).prop_map(|ms| Op::Elapse { ms }),
        1 => (0..=500_000u32, 1..=400u32)
            .prop_map(|(rate_ppm, period_days)| Op::Demurrage { rate_ppm, period_days }),
    ]
}

const MEMBERS: [&str; 4] = ["Alice", "Bob", "Carol", "Dave"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn communs_are_conserved_to_the_last_unit(ops in prop::collection::vec(op(), 1..40)) {
        let journal = community();
        let mut now = t0();
        let mut minted: i64 = 0;
        // The balances last seen at each instant, to compare with what the journal
        // replayed up to that instant gives afterwards.
        let mut seen = std::collections::BTreeMap::new();
        for op in ops {
            match op {
                Op::Earn { member, centihours } => {
                    let hours = f64::from(centihours) / 100.0;
                    earn(&journal, MEMBERS[member], hours, now);
                    // 10 Communs an hour: 100 000 micro-Communs a hundredth of an hour.
                    minted += i64::from(centihours) * 100_000;
                }
                Op::Transfer { from, to, permille } => {
                    let (from, to) = (MEMBERS[from], MEMBERS[to]);
                    let before_from = micro(&journal, from, now);
                    let before_to = micro(&journal, to, now);
                    let amount = before_from * i64::from(permille) / 1000;
                    let transfer = NewTransfer {
                        to: to.into(),
                        amount: Communs::from_micro(amount),
                        memo: "random".into(),
                        intent: None,
                    };
                    match journal.transfer(from, &transfer, now) {
                        Ok(_) => {
                            prop_assert!(from != to && amount > 0 && amount <= before_from);
                            prop_assert_eq!(micro(&journal, from, now), before_from - amount);
                            prop_assert_eq!(micro(&journal, to, now), before_to + amount);
                        }
                        Err(Error::Refused(Refusal::TransferToSelf(_))) => prop_assert_eq!(from, to),
                        Err(Error::Refused(Refusal::NonPositiveAmount(_))) => prop_assert!(amount <= 0),
                        Err(Error::Refused(Refusal::InsufficientCommons { balance, .. })) => {
                            prop_assert!(amount > before_from);
                            prop_assert_eq!(balance.micro(), before_from);
                        }
                        Err(e) => prop_assert!(false, "unexpected refusal: {}", e),
                    }
                }
                Op::Elapse { ms } => now += Duration::milliseconds(ms),
                Op::Demurrage { rate_ppm, period_days } => {
                    let parameters = LedgerParameters {
                        demurrage_rate_ppm: rate_ppm,
                        demurrage_period_days: period_days,
                        ..LedgerParameters::default()
                    };
                    journal.adopt_ledger_parameters(&parameters, &vote(), "Alice", now).unwrap();
                }
            }
            for at in [now, now + Duration::days(400)] {
                let all = journal.balances(at).unwrap();
                prop_assert!(all.balances.iter().all(|b| b.communs >= Communs::ZERO), "{:?}", all);
                let held: i64 = all.balances.iter().map(|b| b.communs.micro()).sum();
                prop_assert_eq!(held + all.commons.micro(), all.minted_total.micro());
                prop_assert_eq!(all.minted_total.micro(), minted);
                prop_assert!(all.commons >= Communs::ZERO);
            }
            seen.insert(now, journal.balances(now).unwrap());
        }
        for (at, balances) in &seen {
            prop_assert_eq!(&journal.balances(*at).unwrap(), balances, "at {}", at);
        }
        let report = journal.verify().unwrap();
        prop_assert!(report.is_intact(), "{}", report);
        let before = journal.balances(now + Duration::days(1)).unwrap();
        journal.rebuild_derived().unwrap();
        prop_assert_eq!(journal.balances(now + Duration::days(1)).unwrap(), before);
    }
}
