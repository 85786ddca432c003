//! The planning board through the public API: intents, commitments accepted by
//! both sides, released, fulfilled by validated contributions; expiry; matching;
//! `verify` replaying all of it; and committed quantities never beyond an intent's.

use chrono::{DateTime, Duration, Utc};
use ledger::{
    Action, Category, CommitmentState, Communs, ContributionState, Direction, EntryKind, Error,
    IntentState, Journal, NewCommitment, NewContribution, NewIntent, NewTransfer, PlanningProblem,
    Quantity, Refusal, Unit, Verdict, Visibility,
};
use proptest::prelude::*;
use serde_json::json;

use crate::contributions::{community, t0};

fn intent(direction: Direction, class: &str, quantity: f64, unit: Unit) -> NewIntent {
    NewIntent {
        direction,
        action: Action::Work,
        class: class.into(),
        quantity,
        unit,
        window_start: None,
        window_end: None,
        expires_at: None,
        never_expires: false,
        description: "Réparer deux vélos".into(),
        visibility: Visibility::Node,
        collective: false,
    }
}

fn commit(quantity: f64) -> NewCommitment {
    NewCommitment {
        quantity,
        note: String::new(),
    }
}

fn repair(hours: f64, ts: DateTime<Utc>) -> NewContribution {
    NewContribution {
        category: Category::Repair,
        hours,
        date: ts.date_naive(),
        description: "Repaired the bikes".into(),
    }
}

fn refusal(err: Error) -> Refusal {
    match err {
        Error::Refused(r) => r,
        other => panic!("not a refusal: {other}"),
    }
}

/// Bob needs `hours` of bike repair; Dave offers `commit_hours` and Bob accepts.
fn committed(journal: &Journal, hours: f64, commit_hours: f64) -> (i64, i64) {
    let need = journal
        .post_intent(
            "Bob",
            &intent(Direction::Need, "bike-repair", hours, Unit::Hours),
            t0(),
        )
        .unwrap()
        .seq;
    let c = journal
        .propose_commitment("Dave", need, &commit(commit_hours), t0())
        .unwrap()
        .seq;
    journal.accept_commitment("Bob", c, t0()).unwrap();
    (need, c)
}

/// Dave records `hours` fulfilling `commitment`, and Alice and Carol approve it.
fn fulfil(journal: &Journal, commitment: i64, hours: f64) -> (i64, ledger::Attested) {
    let ts = t0() + Duration::hours(1);
    let id = journal
        .record_contribution_fulfilling("Dave", &repair(hours, ts), commitment, ts)
        .unwrap()
        .seq;
    journal
        .attest(id, "Alice", Verdict::Approve, "", ts)
        .unwrap();
    let attested = journal
        .attest(id, "Carol", Verdict::Approve, "", ts)
        .unwrap();
    (id, attested)
}

#[test]
fn a_need_met_by_a_validated_contribution_closes() {
    let journal = community();
    let (need, c) = committed(&journal, 2.0, 2.0);
    assert_eq!(
        journal.commitment(c).unwrap().unwrap().state,
        CommitmentState::Accepted
    );
    let open = journal.intent(need, t0()).unwrap().unwrap();
    assert_eq!(
        (open.state, open.committed, open.remaining),
        (IntentState::Open, Quantity::from_centi(200), Quantity::ZERO)
    );
    let (id, done) = fulfil(&journal, c, 2.0);
    assert_eq!(done.state, ContributionState::Validated);
    assert!(done.minted.is_some_and(|m| m.micro() > 0));
    let fulfilment = done
        .fulfilment
        .expect("a fulfilment follows the validation");
    assert_eq!(fulfilment.kind, EntryKind::CommitmentFulfilled);
    assert_eq!(
        fulfilment.payload,
        json!({"commitment": c, "contribution": id, "quantity": 2.0})
    );
    let closed = journal.intent(need, t0()).unwrap().unwrap();
    assert_eq!(
        (closed.state, closed.fulfilled),
        (IntentState::Closed, Quantity::from_centi(200))
    );
    assert_eq!(
        journal.commitment(c).unwrap().unwrap().state,
        CommitmentState::Fulfilled
    );
    let report = journal.verify().unwrap();
    assert!(report.is_intact(), "{report}");
    // Rebuilding the tables from the journal gives the same board.
    journal.rebuild_derived().unwrap();
    assert_eq!(journal.intent(need, t0()).unwrap().unwrap(), closed);
    assert!(journal.verify().unwrap().is_intact());
}

#[test]
fn partial_commitments_and_fulfilments_leave_the_intent_open() {
    let journal = community();
    let (need, first) = committed(&journal, 4.0, 3.0);
    // 1.5 hours of the 3 committed: the commitment stays accepted.
    fulfil(&journal, first, 1.5);
    let after = journal.intent(need, t0()).unwrap().unwrap();
    assert_eq!(after.state, IntentState::Open);
    assert_eq!(after.fulfilled, Quantity::from_centi(150));
    assert_eq!(after.remaining, Quantity::from_centi(100));
    assert_eq!(
        journal.commitment(first).unwrap().unwrap().state,
        CommitmentState::Accepted
    );
    // Beyond what remains is refused, by proposal and by acceptance.
    let too_much = journal
        .propose_commitment("Alice", need, &commit(1.5), t0())
        .unwrap_err();
    assert!(matches!(
        refusal(too_much),
        Refusal::OverCommitment { remaining, .. } if remaining == Quantity::from_centi(100)
    ));
    let second = journal
        .propose_commitment("Alice", need, &commit(1.0), t0())
        .unwrap()
        .seq;
    journal.accept_commitment("Bob", second, t0()).unwrap();
    // Dave's remaining 1.5 hours, then Alice's hour: closed.
    fulfil(&journal, first, 2.0);
    let ts = t0() + Duration::hours(2);
    let id = journal
        .record_contribution_fulfilling("Alice", &repair(1.0, ts), second, ts)
        .unwrap()
        .seq;
    journal.attest(id, "Bob", Verdict::Approve, "", ts).unwrap();
    journal
        .attest(id, "Dave", Verdict::Approve, "", ts)
        .unwrap();
    let closed = journal.intent(need, t0()).unwrap().unwrap();
    assert_eq!(closed.state, IntentState::Closed);
    assert_eq!(closed.fulfilled, Quantity::from_centi(400));
    assert!(journal.verify().unwrap().is_intact());
}

#[test]
fn a_released_commitment_returns_its_quantity_and_fulfils_nothing() {
    let journal = community();
    let (need, c) = committed(&journal, 2.0, 2.0);
    let ts = t0() + Duration::hours(1);
    let id = journal
        .record_contribution_fulfilling("Dave", &repair(2.0, ts), c, ts)
        .unwrap()
        .seq;
    // Someone else cannot release it; either side can.
    assert!(matches!(
        refusal(journal.release_commitment("Alice", c, "", ts).unwrap_err()),
        Refusal::NotAParty { .. }
    ));
    journal
        .release_commitment("Bob", c, "found someone closer", ts)
        .unwrap();
    let intent = journal.intent(need, ts).unwrap().unwrap();
    assert_eq!(intent.remaining, Quantity::from_centi(200));
    assert_eq!(
        journal.commitment(c).unwrap().unwrap().state,
        CommitmentState::Released
    );
    // The contribution is still validated and mints, but fulfils nothing.
    journal
        .attest(id, "Alice", Verdict::Approve, "", ts)
        .unwrap();
    let done = journal
        .attest(id, "Carol", Verdict::Approve, "", ts)
        .unwrap();
    assert!(done.minted.is_some());
    assert!(done.fulfilment.is_none());
    assert_eq!(
        journal.intent(need, ts).unwrap().unwrap().state,
        IntentState::Open
    );
    // A released commitment takes no acceptance, and no new contribution.
    assert!(matches!(
        refusal(journal.accept_commitment("Bob", c, ts).unwrap_err()),
        Refusal::PlanningRule(_) | Refusal::NotAParty { .. }
    ));
    assert!(matches!(
        refusal(
            journal
                .record_contribution_fulfilling("Dave", &repair(1.0, ts), c, ts)
                .unwrap_err()
        ),
        Refusal::PlanningRule(_)
    ));
    assert!(journal.verify().unwrap().is_intact());
}

#[test]
fn who_may_propose_accept_and_fulfil() {
    let journal = community();
    let need = journal
        .post_intent(
            "Bob",
            &intent(Direction::Need, "bike-repair", 2.0, Unit::Hours),
            t0(),
        )
        .unwrap()
        .seq;
    assert!(matches!(
        refusal(
            journal
                .propose_commitment("Bob", need, &commit(1.0), t0())
                .unwrap_err()
        ),
        Refusal::PlanningRule(_)
    ));
    let c = journal
        .propose_commitment("Dave", need, &commit(1.0), t0())
        .unwrap()
        .seq;
    // Not accepted yet: no contribution can fulfil it.
    assert!(matches!(
        refusal(
            journal
                .record_contribution_fulfilling("Dave", &repair(1.0, t0()), c, t0())
                .unwrap_err()
        ),
        Refusal::PlanningRule(_)
    ));
    for who in ["Dave", "Alice"] {
        assert!(matches!(
            refusal(journal.accept_commitment(who, c, t0()).unwrap_err()),
            Refusal::NotAParty { .. }
        ));
    }
    journal.accept_commitment("Bob", c, t0()).unwrap();
    // Only the provider fulfils it.
    assert!(matches!(
        refusal(
            journal
                .record_contribution_fulfilling("Alice", &repair(1.0, t0()), c, t0())
                .unwrap_err()
        ),
        Refusal::NotAParty { .. }
    ));
    assert!(matches!(
        refusal(
            journal
                .propose_commitment("Dave", 999, &commit(1.0), t0())
                .unwrap_err()
        ),
        Refusal::NoSuchIntent(999)
    ));
}

#[test]
fn collective_needs_are_the_assemblys() {
    let journal = community();
    let childcare = NewIntent {
        collective: true,
        description: "Garde d'enfants pendant l'assemblée du 12".into(),
        ..intent(Direction::Need, "care", 3.0, Unit::Hours)
    };
    assert!(matches!(
        refusal(journal.post_intent("Bob", &childcare, t0()).unwrap_err()),
        Refusal::AssemblyOnly(_)
    ));
    let need = journal.post_intent("Alice", &childcare, t0()).unwrap().seq;
    let c = journal
        .propose_commitment("Bob", need, &commit(3.0), t0())
        .unwrap()
        .seq;
    journal.accept_commitment("Alice", c, t0()).unwrap();
    assert!(journal.intent(need, t0()).unwrap().unwrap().collective);
    assert!(journal.verify().unwrap().is_intact());
}

#[test]
fn an_intent_expires_after_30_days_unless_told_otherwise() {
    let journal = community();
    let need = journal
        .post_intent(
            "Bob",
            &intent(Direction::Need, "bike-repair", 2.0, Unit::Hours),
            t0(),
        )
        .unwrap()
        .seq;
    let forever = journal
        .post_intent(
            "Bob",
            &NewIntent {
                never_expires: true,
                ..intent(Direction::Offer, "vegetables", 5.0, Unit::Kg)
            },
            t0(),
        )
        .unwrap()
        .seq;
    let later = t0() + Duration::days(30);
    let just_before = later - Duration::milliseconds(1);
    assert_eq!(
        journal.intent(need, just_before).unwrap().unwrap().state,
        IntentState::Open
    );
    assert_eq!(
        journal.intent(need, later).unwrap().unwrap().state,
        IntentState::Expired
    );
    assert_eq!(
        journal.intent(forever, later).unwrap().unwrap().state,
        IntentState::Open
    );
    assert!(matches!(
        refusal(
            journal
                .propose_commitment("Dave", need, &commit(1.0), later)
                .unwrap_err()
        ),
        Refusal::IntentNotOpen {
            state: IntentState::Expired,
            ..
        }
    ));
    // A commitment proposed in time cannot be accepted once the intent lapsed.
    let soon = journal
        .post_intent(
            "Bob",
            &NewIntent {
                expires_at: Some(t0() + Duration::hours(1)),
                ..intent(Direction::Need, "bike-repair", 1.0, Unit::Hours)
            },
            t0(),
        )
        .unwrap()
        .seq;
    let c = journal
        .propose_commitment("Dave", soon, &commit(1.0), t0())
        .unwrap()
        .seq;
    assert!(matches!(
        refusal(
            journal
                .accept_commitment("Bob", c, t0() + Duration::hours(2))
                .unwrap_err()
        ),
        Refusal::IntentNotOpen { .. }
    ));
    assert!(journal.verify().unwrap().is_intact());
}

#[test]
fn matching_pairs_opposite_intents_of_a_class_whose_windows_meet() {
    let journal = community();
    let day = |h: i64| t0() + Duration::days(1) + Duration::hours(h);
    let need = NewIntent {
        window_start: Some(day(8)),
        window_end: Some(day(12)),
        ..intent(Direction::Need, "bike-repair", 2.0, Unit::Hours)
    };
    let bob_need = journal.post_intent("Bob", &need, t0()).unwrap().seq;
    let offer = |start: i64, end: i64, class: &str| NewIntent {
        window_start: Some(day(start)),
        window_end: Some(day(end)),
        ..intent(Direction::Offer, class, 3.0, Unit::Hours)
    };
    let fits = journal
        .post_intent("Dave", &offer(10, 14, "bike-repair"), t0())
        .unwrap()
        .seq;
    journal
        .post_intent("Dave", &offer(13, 18, "bike-repair"), t0())
        .unwrap();
    journal
        .post_intent("Dave", &offer(8, 12, "electrician"), t0())
        .unwrap();
    // Another need of the same class is not a match for a need.
    journal.post_intent("Alice", &need, t0()).unwrap();
    let bob = journal.matches("Bob", t0()).unwrap();
    let pairs: Vec<(i64, i64)> = bob.iter().map(|m| (m.yours.id, m.theirs.id)).collect();
    assert_eq!(pairs, vec![(bob_need, fits)]);
    let dave = journal.matches("Dave", t0()).unwrap();
    let dave_pairs: Vec<(i64, i64)> = dave.iter().map(|m| (m.yours.id, m.theirs.id)).collect();
    assert!(dave_pairs.contains(&(fits, bob_need)), "{dave_pairs:?}");
    // Once the need is wholly committed, it matches nothing.
    let c = journal
        .propose_commitment("Dave", bob_need, &commit(2.0), t0())
        .unwrap()
        .seq;
    journal.accept_commitment("Bob", c, t0()).unwrap();
    assert!(journal.matches("Bob", t0()).unwrap().is_empty());
}

#[test]
fn a_transfer_pays_for_an_intent_between_its_parties_only() {
    let journal = community();
    // Dave earns Communs by a fulfilled commitment.
    let (_, c) = committed(&journal, 2.0, 2.0);
    fulfil(&journal, c, 2.0);
    let ts = t0() + Duration::hours(2);
    let veg = journal
        .post_intent(
            "Dave",
            &NewIntent {
                action: Action::Give,
                ..intent(Direction::Need, "vegetables", 3.0, Unit::Kg)
            },
            ts,
        )
        .unwrap()
        .seq;
    let carrots = journal
        .propose_commitment("Carol", veg, &commit(3.0), ts)
        .unwrap()
        .seq;
    journal.accept_commitment("Dave", carrots, ts).unwrap();
    let pay = |to: &str, intent: Option<i64>| NewTransfer {
        to: to.into(),
        amount: Communs::from_whole(4),
        memo: "Trois kilos de carottes".into(),
        intent,
    };
    // The author pays the side that committed: recorded, the intent in the entry.
    let paid = journal
        .transfer("Dave", &pay("Carol", Some(veg)), ts)
        .unwrap();
    assert_eq!(paid.payload["intent"], json!(veg));
    let payments = journal.transfers_for_intents().unwrap();
    assert_eq!(
        payments
            .iter()
            .map(|t| (t.seq, t.intent))
            .collect::<Vec<_>>(),
        [(paid.seq, Some(veg))]
    );
    // No such intent; a payer or a recipient who is no party to it.
    assert!(matches!(
        refusal(
            journal
                .transfer("Dave", &pay("Carol", Some(999)), ts)
                .unwrap_err()
        ),
        Refusal::NoSuchIntent(999)
    ));
    for (from, to, outsider) in [("Dave", "Alice", "Alice"), ("Carol", "Bob", "Bob")] {
        match refusal(journal.transfer(from, &pay(to, Some(veg)), ts).unwrap_err()) {
            Refusal::PlanningRule(PlanningProblem::NotPartyToIntent { member, intent }) => {
                assert_eq!((member.as_str(), intent), (outsider, veg));
            }
            other => panic!("{other:?}"),
        }
    }
    // Bob is no party: paying Carol for it is refused even with his own Communs.
    assert!(
        journal
            .transfer("Bob", &pay("Carol", Some(veg)), ts)
            .is_err()
    );
    // A transfer naming no intent is recorded as before: no `intent` in its payload,
    // so its canonical bytes, and its hash, are those of the earlier releases.
    let plain = journal.transfer("Dave", &pay("Carol", None), ts).unwrap();
    assert_eq!(
        plain.payload,
        json!({"to": "Carol", "amount_micro": 4_000_000, "memo": "Trois kilos de carottes"})
    );
    assert_eq!(journal.transfers_of("Carol").unwrap()[0].intent, None);
    // Verify replays it; a rebuild gives the same payments.
    let report = journal.verify().unwrap();
    assert!(report.is_intact(), "{report}");
    journal.rebuild_derived().unwrap();
    assert_eq!(journal.transfers_for_intents().unwrap(), payments);
    assert!(journal.verify().unwrap().is_intact());
}

#[test]
fn verify_names_a_tampered_commitment() {
    let journal = community();
    let (_, c) = committed(&journal, 2.0, 2.0);
    assert!(journal.verify().unwrap().is_intact());
    let path_free = journal.append(
        EntryKind::CommitmentFulfilled,
        "Bob",
        &json!({"commitment": c, "contribution": 1, "quantity": 2.0}),
        t0(),
    );
    assert!(matches!(
        refusal(path_free.unwrap_err()),
        Refusal::DerivedKind(EntryKind::CommitmentFulfilled)
    ));
}

/// One step of a random sequence on one intent of 5 hours.
#[derive(Debug, Clone)]
enum Step {
    Propose { who: usize, centi: i64 },
    Accept { nth: usize },
    Release { nth: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0usize..3, 1i64..400).prop_map(|(who, centi)| Step::Propose { who, centi }),
        (0usize..8).prop_map(|nth| Step::Accept { nth }),
        (0usize..8).prop_map(|nth| Step::Release { nth }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever members propose, accept and release, in any order, what accepted
    /// commitments hold never exceeds the intent's quantity, the intent's
    /// `committed` says exactly that, and `verify` replays it.
    #[test]
    fn committed_quantities_never_exceed_the_intent(steps in prop::collection::vec(step(), 1..24)) {
        let journal = community();
        let need = journal
            .post_intent("Bob", &intent(Direction::Need, "bike-repair", 5.0, Unit::Hours), t0())
            .unwrap()
            .seq;
        let providers = ["Alice", "Carol", "Dave"];
        let mut proposed: Vec<i64> = Vec::new();
        for s in steps {
            match s {
                Step::Propose { who, centi } => {
                    let q = Quantity::from_centi(centi).as_f64();
                    if let Ok(e) = journal.propose_commitment(providers[who], need, &commit(q), t0()) {
                        proposed.push(e.seq);
                    }
                }
                Step::Accept { nth } if !proposed.is_empty() => {
                    let _ = journal.accept_commitment("Bob", proposed[nth % proposed.len()], t0());
                }
                Step::Release { nth } if !proposed.is_empty() => {
                    let _ = journal.release_commitment("Bob", proposed[nth % proposed.len()], "", t0());
                }
                _ => {}
            }
            let held: i64 = journal
                .commitments()
                .unwrap()
                .iter()
                .filter(|c| c.state == CommitmentState::Accepted)
                .map(|c| c.quantity.centi())
                .sum();
            let intent = journal.intent(need, t0()).unwrap().unwrap();
            prop_assert!(held <= 500, "{held} committed of 500");
            prop_assert_eq!(intent.committed.centi(), held);
            prop_assert_eq!(intent.remaining.centi(), 500 - held);
        }
        prop_assert!(journal.verify().unwrap().is_intact());
    }
}

/// The node offers the surplus expected from 11:00 to 15:00: once for that window;
/// households commit to use part of it, the node accepts what fits, and `verify`
/// replays it all.
#[test]
fn the_nodes_surplus_offer_is_posted_once_and_its_commitments_accepted_by_the_node() {
    let journal = community();
    let (start, end) = (t0() + Duration::hours(1), t0() + Duration::hours(5));
    let offer = journal
        .open_surplus_offer(start, end, 6.239, "Surplus solaire de 11 h à 15 h", t0())
        .unwrap()
        .expect("posted");
    assert_eq!(offer.author, ledger::NODE_AUTHOR);
    let posted = journal.intent(offer.seq, t0()).unwrap().expect("intent");
    assert_eq!(posted.class, ledger::SURPLUS_CLASS);
    assert_eq!(posted.direction, Direction::Offer);
    assert_eq!(posted.quantity, Quantity::from_centi(623), "rounded down");
    assert_eq!(
        (posted.window_start, posted.window_end),
        (Some(start), Some(end))
    );
    assert_eq!(posted.expires_at, Some(end));
    // An overlapping window is the same surplus: nothing more is offered.
    let again = journal
        .open_surplus_offer(
            start + Duration::hours(2),
            end + Duration::hours(1),
            3.0,
            "x",
            t0(),
        )
        .unwrap();
    assert!(again.is_none());

    // Bob shifts his washing machine (1.5 kWh), Carol asks for more than is left.
    let bob = journal
        .propose_commitment("Bob", offer.seq, &commit(1.5), t0())
        .unwrap();
    let carol = journal
        .propose_commitment("Carol", offer.seq, &commit(6.0), t0())
        .unwrap();
    let accepted = journal.accept_surplus_commitments(t0()).unwrap();
    assert_eq!(accepted.len(), 1, "only Bob's fits");
    assert_eq!(accepted[0].author, ledger::NODE_AUTHOR);
    let bob = journal.commitment(bob.seq).unwrap().expect("bob's");
    assert_eq!(bob.state, CommitmentState::Accepted);
    assert_eq!(
        (bob.provider.as_str(), bob.receiver.as_str()),
        (ledger::NODE_AUTHOR, "Bob")
    );
    let carol = journal.commitment(carol.seq).unwrap().expect("carol's");
    assert_eq!(carol.state, CommitmentState::Proposed);
    let offer_now = journal.intent(offer.seq, t0()).unwrap().expect("intent");
    assert_eq!(offer_now.remaining, Quantity::from_centi(623 - 150));
    // Nothing more to accept; the node writes nothing a second time.
    assert!(journal.accept_surplus_commitments(t0()).unwrap().is_empty());
    assert!(journal.verify().unwrap().is_intact());

    // Once the window is over, the offer lapses and a new one may be made.
    let later = journal
        .open_surplus_offer(
            end + Duration::hours(20),
            end + Duration::hours(24),
            2.0,
            "demain",
            end,
        )
        .unwrap();
    assert!(later.is_some());
}

/// The node posts repair needs and surplus offers, nothing else; it accepts only
/// for its own offers; and nobody else posts in its name a need naming a device.
#[test]
fn the_node_posts_and_accepts_only_what_is_its_own() {
    let journal = community();
    let window = |payload: &mut serde_json::Value| {
        payload["window_start"] = json!("2026-11-22T11:00:00.000Z");
        payload["window_end"] = json!("2026-11-22T15:00:00.000Z");
    };
    let base = json!({
        "direction": "offer", "action": "use", "class": "kwh-surplus", "quantity": 2.0,
        "unit": "kwh", "window_start": null, "window_end": null,
        "expires_at": "2026-11-22T15:00:00.000Z", "description": "Surplus",
        "visibility": "node", "collective": false
    });
    // Without a window, in hours, of another class, or collective: refused.
    let mut refused = Vec::new();
    refused.push(base.clone());
    for (key, value) in [
        ("unit", json!("hours")),
        ("class", json!("vegetables")),
        ("collective", json!(true)),
        ("direction", json!("need")),
    ] {
        let mut p = base.clone();
        window(&mut p);
        p[key] = value;
        refused.push(p);
    }
    for payload in refused {
        let err = journal
            .append(EntryKind::IntentPosted, ledger::NODE_AUTHOR, &payload, t0())
            .expect_err(&format!("refused: {payload}"));
        assert!(
            matches!(refusal(err), Refusal::InvalidPayload { .. }),
            "{payload}"
        );
    }
    let mut good = base.clone();
    window(&mut good);
    journal
        .append(EntryKind::IntentPosted, ledger::NODE_AUTHOR, &good, t0())
        .expect("the node's surplus offer");
    // A member's own offer: the node does not accept a commitment on it.
    let dave = journal
        .post_intent(
            "Dave",
            &intent(Direction::Offer, "vegetables", 3.0, Unit::Kg),
            t0(),
        )
        .unwrap();
    let c = journal
        .propose_commitment("Bob", dave.seq, &commit(1.0), t0())
        .unwrap();
    let err = journal
        .accept_commitment(ledger::NODE_AUTHOR, c.seq, t0())
        .expect_err("not the node's to accept");
    assert!(
        matches!(refusal(err), Refusal::UnknownMember(_)),
        "refused as a non-member"
    );
    assert!(journal.accept_surplus_commitments(t0()).unwrap().is_empty());
    assert_eq!(
        journal.commitment(c.seq).unwrap().expect("c").state,
        CommitmentState::Proposed
    );
    assert!(journal.verify().unwrap().is_intact());
}

/// Bob's and Carol's household `h1`, with its meter.
fn metered(commitment: i64, measured: f64, baseline: f64) -> ledger::NewLoadShiftCertification {
    ledger::NewLoadShiftCertification {
        commitment,
        household: Some("h1".into()),
        household_members: vec!["Bob".into(), "Carol".into()],
        meters: vec!["h1-meter".into()],
        basis: ledger::LoadShiftBasis::Metered,
        measured_kwh: Some(measured),
        baseline_kwh: Some(baseline),
        baseline_days: 7,
    }
}

/// Once the window is over, the node certifies each load shift from what the
/// household's meter drew above its baseline: all of it fulfils Bob's commitment
/// and closes it; Dave's washing machine that did not run gives nothing; each is
/// certified once, never before the window ends, never for someone outside the
/// household named, and `verify` replays it all.
#[test]
fn a_load_shift_is_fulfilled_by_what_the_node_measured_above_the_baseline() {
    let journal = community();
    let (start, end) = (t0() + Duration::hours(1), t0() + Duration::hours(5));
    let offer = journal
        .open_surplus_offer(start, end, 6.0, "Surplus solaire de 11 h à 15 h", t0())
        .unwrap()
        .expect("posted")
        .seq;
    let bob = journal
        .propose_commitment("Bob", offer, &commit(1.5), t0())
        .unwrap()
        .seq;
    let dave = journal
        .propose_commitment("Dave", offer, &commit(2.0), t0())
        .unwrap()
        .seq;
    let carol = journal
        .propose_commitment("Carol", offer, &commit(1.0), t0())
        .unwrap()
        .seq;
    assert_eq!(journal.accept_surplus_commitments(t0()).unwrap().len(), 3);
    journal
        .release_commitment("Carol", carol, "finalement non", t0())
        .unwrap();

    // During the window nothing is due, and nothing can be certified.
    let during = start + Duration::hours(1);
    assert!(journal.load_shifts_to_certify(during).unwrap().is_empty());
    let err = journal
        .certify_load_shift(&metered(bob, 3.2, 1.0), during)
        .expect_err("too early");
    assert!(
        matches!(
            refusal(err),
            Refusal::PlanningRule(PlanningProblem::Inconsistent(_))
        ),
        "refused before the window ends"
    );

    // After it: Bob's and Dave's are due, oldest first; Carol's released one is not.
    let after = end + Duration::minutes(10);
    let due: Vec<i64> = journal
        .load_shifts_to_certify(after)
        .unwrap()
        .into_iter()
        .map(|(c, _)| c.id)
        .collect();
    assert_eq!(due, vec![bob, dave]);

    // Bob's household drew 3.2 kWh against 1.0 usually: 2.2 above, of which the
    // 1.5 committed count.
    let entry = journal
        .certify_load_shift(&metered(bob, 3.2, 1.0), after)
        .unwrap();
    assert_eq!(entry.author, ledger::NODE_AUTHOR);
    assert_eq!(entry.kind, EntryKind::LoadShiftCertified);
    assert_eq!(entry.payload["quantity"], json!(1.5));
    let c = journal.commitment(bob).unwrap().expect("bob's");
    assert_eq!(c.state, CommitmentState::Fulfilled);
    assert_eq!(c.fulfilled, Quantity::from_centi(150));
    let cert = c.certification.expect("certified");
    assert_eq!(cert.basis, ledger::LoadShiftBasis::Metered);
    assert_eq!(cert.quantity, Quantity::from_centi(150));
    assert_eq!(cert.household.as_deref(), Some("h1"));

    // Dave is not of household h1: refused. His own household's meter drew less
    // than usual: nothing shifted, nothing fulfilled, the commitment over.
    let err = journal
        .certify_load_shift(&metered(dave, 5.0, 1.0), after)
        .expect_err("Dave is not of h1");
    assert!(
        matches!(refusal(err), Refusal::InvalidPayload { .. }),
        "refused for a household Dave is not in"
    );
    let daves = ledger::NewLoadShiftCertification {
        household: Some("h2".into()),
        household_members: vec!["Dave".into()],
        meters: vec!["h2-meter".into()],
        ..metered(dave, 0.8, 1.1)
    };
    journal.certify_load_shift(&daves, after).unwrap();
    let c = journal.commitment(dave).unwrap().expect("dave's");
    assert_eq!(c.state, CommitmentState::Certified);
    assert_eq!(c.fulfilled, Quantity::ZERO);
    assert_eq!(c.certification.expect("certified").quantity, Quantity::ZERO);
    let err = journal
        .release_commitment("Dave", dave, "trop tard", after)
        .expect_err("over");
    assert!(matches!(
        refusal(err),
        Refusal::PlanningRule(PlanningProblem::NothingToRelease { .. })
    ));

    // Once only; and nobody appends one by hand, the node included.
    let err = journal
        .certify_load_shift(&metered(bob, 3.2, 1.0), after)
        .expect_err("twice");
    assert!(matches!(
        refusal(err),
        Refusal::PlanningRule(PlanningProblem::CannotFulfil { .. })
    ));
    assert!(journal.load_shifts_to_certify(after).unwrap().is_empty());
    let err = journal
        .append(
            EntryKind::LoadShiftCertified,
            ledger::NODE_AUTHOR,
            &json!({"commitment": bob}),
            after,
        )
        .expect_err("typed call only");
    assert!(matches!(refusal(err), Refusal::TypedCallOnly { .. }));

    // What the offer got: 1.5 of its 6 kWh fulfilled.
    let offer_now = journal.intent(offer, after).unwrap().expect("offer");
    assert_eq!(offer_now.fulfilled, Quantity::from_centi(150));
    assert!(journal.verify().unwrap().is_intact());
}

/// A certification whose basis does not go with its measures is refused, and one
/// without meter or baseline fulfils nothing.
#[test]
fn a_load_shift_without_a_meter_or_a_baseline_fulfils_nothing() {
    let journal = community();
    let (start, end) = (t0() + Duration::hours(1), t0() + Duration::hours(5));
    let offer = journal
        .open_surplus_offer(start, end, 6.0, "Surplus", t0())
        .unwrap()
        .expect("posted")
        .seq;
    let bob = journal
        .propose_commitment("Bob", offer, &commit(1.5), t0())
        .unwrap()
        .seq;
    journal.accept_surplus_commitments(t0()).unwrap();
    let after = end + Duration::minutes(10);
    for bad in [
        // Metered without a baseline, or with a negative or infinite measure.
        ledger::NewLoadShiftCertification {
            baseline_kwh: None,
            ..metered(bob, 3.0, 1.0)
        },
        metered(bob, -1.0, 1.0),
        metered(bob, f64::INFINITY, 1.0),
        // No meter, yet meters and measures.
        ledger::NewLoadShiftCertification {
            basis: ledger::LoadShiftBasis::NoMeter,
            ..metered(bob, 3.0, 1.0)
        },
    ] {
        assert!(
            journal.certify_load_shift(&bad, after).is_err(),
            "refused: {bad:?}"
        );
    }
    let no_baseline = ledger::NewLoadShiftCertification {
        basis: ledger::LoadShiftBasis::NoBaseline,
        baseline_kwh: None,
        baseline_days: 2,
        ..metered(bob, 3.0, 0.0)
    };
    journal.certify_load_shift(&no_baseline, after).unwrap();
    let c = journal.commitment(bob).unwrap().expect("bob's");
    assert_eq!(c.state, CommitmentState::Certified);
    assert_eq!(c.fulfilled, Quantity::ZERO);
    assert!(journal.verify().unwrap().is_intact());
}
