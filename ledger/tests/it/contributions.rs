//! Contributions, attestations and transfers through the public API: who may attest,
//! exactly when a contribution is decided, what it mints, and every refusal named.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use ledger::{
    Category, Communs, ContributionState, Decision, EntryKind, Error, Hours, Journal,
    LedgerParameters, NewContribution, NewTransfer, Refusal, Role, Verdict,
};
use serde_json::json;

use crate::community::{at, config_members, config_plan};

pub(crate) fn t0() -> DateTime<Utc> {
    at("2026-11-22T10:00:00Z")
}

/// Alice, Bob and Carol from the configuration (entries 1-3, plan 4), Dave (5).
pub(crate) fn community() -> Journal {
    let journal = Journal::open_in_memory().unwrap();
    journal
        .seed(&config_plan(), &config_members(), t0())
        .unwrap();
    journal
        .add_member("Dave", &[Role::Resident], "Alice", t0())
        .unwrap();
    journal
}

pub(crate) fn work(
    category: Category,
    hours: f64,
    date: NaiveDate,
    description: &str,
) -> NewContribution {
    NewContribution {
        category,
        hours,
        date,
        description: description.into(),
    }
}

/// Records `hours` of repair by `member` at `ts`; returns its id.
pub(crate) fn contribute(journal: &Journal, member: &str, hours: f64, ts: DateTime<Utc>) -> i64 {
    let c = work(
        Category::Repair,
        hours,
        ts.date_naive(),
        "Fixed the school's bikes",
    );
    journal.record_contribution(member, &c, ts).unwrap().seq
}

/// Records and validates (two approvals) `hours` by `member` at `ts`.
pub(crate) fn earn(journal: &Journal, member: &str, hours: f64, ts: DateTime<Utc>) -> i64 {
    let id = contribute(journal, member, hours, ts);
    let others: Vec<&str> = ["Alice", "Bob", "Carol", "Dave"]
        .into_iter()
        .filter(|m| *m != member)
        .collect();
    journal
        .attest(id, others[0], Verdict::Approve, "", ts)
        .unwrap();
    let done = journal
        .attest(id, others[1], Verdict::Approve, "Seen it", ts)
        .unwrap();
    assert_eq!(done.state, ContributionState::Validated);
    id
}

/// A vote that carries, at an assembly held two days before [`t0`].
pub(crate) fn vote() -> Decision {
    crate::community::vote(NaiveDate::from_ymd_opt(2026, 11, 20).unwrap())
}

fn micro(journal: &Journal, member: &str, ts: DateTime<Utc>) -> i64 {
    journal.balance(member, ts).unwrap().micro()
}

#[test]
fn the_kth_approval_validates_and_mints_hours_times_rate() {
    let journal = community();
    let id = contribute(&journal, "Alice", 2.5, t0());

    let first = journal
        .attest(
            id,
            "Bob",
            Verdict::Approve,
            "I helped",
            t0() + Duration::hours(1),
        )
        .unwrap();
    assert_eq!(first.state, ContributionState::Pending);
    assert_eq!((first.validation, first.minted), (None, None));
    assert_eq!(micro(&journal, "Alice", t0() + Duration::hours(1)), 0);
    assert_eq!(
        journal.contribution(id).unwrap().unwrap().state,
        ContributionState::Pending
    );

    let second = journal
        .attest(id, "Carol", Verdict::Approve, "", t0() + Duration::hours(2))
        .unwrap();
    assert_eq!(second.state, ContributionState::Validated);
    // 2.5 hours at the default 10 Communs an hour.
    assert_eq!(second.minted, Some(Communs::from_whole(25)));
    let validation = second.validation.unwrap();
    assert_eq!(validation.kind, EntryKind::ContributionValidated);
    assert_eq!(
        validation.seq,
        second.attestation.seq + 1,
        "in the same act"
    );
    assert_eq!(
        validation.payload,
        json!({"contribution": id, "member": "Alice", "hours": 2.5,
               "rate_micro_per_hour": 10_000_000, "minted_micro": 25_000_000})
    );
    assert_eq!(
        micro(&journal, "Alice", t0() + Duration::hours(2)),
        25_000_000
    );

    let c = journal.contribution(id).unwrap().unwrap();
    assert_eq!(c.state, ContributionState::Validated);
    assert_eq!(c.minted, Some(Communs::from_whole(25)));
    assert_eq!(c.decided_at, Some(t0() + Duration::hours(2)));
    let verdicts: Vec<_> = c
        .attestations
        .iter()
        .map(|a| (a.member.as_str(), a.verdict, a.comment.as_str()))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("Bob", Verdict::Approve, "I helped"),
            ("Carol", Verdict::Approve, "")
        ]
    );

    let err = journal
        .attest(id, "Dave", Verdict::Approve, "", t0() + Duration::hours(3))
        .unwrap_err();
    assert!(
        matches!(err, Error::Refused(Refusal::ContributionDecided { contribution, state: ContributionState::Validated }) if contribution == id),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!("contribution {id} is already validated: it takes no more attestations")
    );
    assert!(journal.verify().unwrap().is_intact());
}

#[test]
fn with_k_three_the_second_approval_is_not_enough() {
    let journal = community();
    let parameters = LedgerParameters {
        attestations_needed: 3,
        ..LedgerParameters::default()
    };
    journal
        .adopt_ledger_parameters(&parameters, &vote(), "Alice", t0())
        .unwrap();
    let id = contribute(&journal, "Dave", 1.0, t0());
    for (i, member) in ["Alice", "Bob"].into_iter().enumerate() {
        let a = journal
            .attest(id, member, Verdict::Approve, "", t0())
            .unwrap();
        assert_eq!(
            a.state,
            ContributionState::Pending,
            "after approval {}",
            i + 1
        );
    }
    assert_eq!(micro(&journal, "Dave", t0()), 0);
    let third = journal
        .attest(id, "Carol", Verdict::Approve, "", t0())
        .unwrap();
    assert_eq!(third.state, ContributionState::Validated);
    assert_eq!(micro(&journal, "Dave", t0()), 10_000_000);
}

#[test]
fn the_kth_rejection_rejects_and_mints_nothing() {
    let journal = community();
    let id = contribute(&journal, "Bob", 3.0, t0());
    let a = journal
        .attest(id, "Alice", Verdict::Reject, "It was one hour", t0())
        .unwrap();
    assert_eq!(a.state, ContributionState::Pending);
    // One of each is no decision with k = 2.
    let b = journal
        .attest(id, "Carol", Verdict::Approve, "", t0())
        .unwrap();
    assert_eq!(b.state, ContributionState::Pending);
    let c = journal
        .attest(id, "Dave", Verdict::Reject, "Not three hours", t0())
        .unwrap();
    assert_eq!(c.state, ContributionState::Rejected);
    assert_eq!(c.validation, None);
    let contribution = journal.contribution(id).unwrap().unwrap();
    assert_eq!(contribution.state, ContributionState::Rejected);
    assert_eq!(contribution.minted, None);
    let balances = journal.balances(t0()).unwrap();
    assert_eq!(balances.minted_total, Communs::ZERO);
    assert!(balances.balances.iter().all(|b| b.communs == Communs::ZERO));

    let err = journal
        .attest(id, "Alice", Verdict::Approve, "", t0())
        .unwrap_err();
    assert!(
        matches!(err, Error::Refused(Refusal::ContributionDecided { .. })),
        "{err}"
    );
    let journal2 = community();
    let id2 = contribute(&journal2, "Bob", 3.0, t0());
    journal2
        .attest(id2, "Alice", Verdict::Reject, "no", t0())
        .unwrap();
    journal2
        .attest(id2, "Carol", Verdict::Reject, "no", t0())
        .unwrap();
    let err = journal2
        .attest(id2, "Dave", Verdict::Approve, "", t0())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("contribution {id2} is already rejected: it takes no more attestations")
    );
}

#[test]
fn self_and_double_attestations_are_refused_and_record_nothing() {
    let journal = community();
    let id = contribute(&journal, "Alice", 1.0, t0());
    let head = journal.head().unwrap().unwrap().seq;

    let err = journal
        .attest(id, "Alice", Verdict::Approve, "", t0())
        .unwrap_err();
    assert!(
        matches!(&err, Error::Refused(Refusal::SelfAttestation { member, contribution }) if member == "Alice" && *contribution == id),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!("`Alice` cannot attest contribution {id}: it is their own")
    );

    journal
        .attest(id, "Bob", Verdict::Approve, "", t0())
        .unwrap();
    for verdict in [Verdict::Approve, Verdict::Reject] {
        let err = journal
            .attest(id, "Bob", verdict, "changed my mind", t0())
            .unwrap_err();
        assert!(
            matches!(err, Error::Refused(Refusal::AlreadyAttested { .. })),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!("`Bob` has already attested contribution {id}")
        );
    }
    assert_eq!(
        journal.head().unwrap().unwrap().seq,
        head + 1,
        "only Bob's approval"
    );
    assert_eq!(
        journal.contribution(id).unwrap().unwrap().state,
        ContributionState::Pending
    );
}

#[test]
fn other_attestation_refusals_are_named() {
    let journal = community();
    let id = contribute(&journal, "Alice", 1.0, t0());
    let err = journal
        .attest(999, "Bob", Verdict::Approve, "", t0())
        .unwrap_err();
    assert_eq!(err.to_string(), "there is no contribution 999");
    let err = journal
        .attest(id, "Mallory", Verdict::Approve, "", t0())
        .unwrap_err();
    assert!(
        matches!(err, Error::Refused(Refusal::UnknownMember(ref m)) if m == "Mallory"),
        "{err}"
    );
    let err = journal
        .attest(id, "Bob", Verdict::Reject, "  ", t0())
        .unwrap_err();
    assert!(
        matches!(err, Error::Refused(Refusal::InvalidComment(_))),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("a rejection needs a comment saying why")
    );
    // An attestation names a contribution, not any entry.
    let err = journal
        .attest(1, "Bob", Verdict::Approve, "", t0())
        .unwrap_err();
    assert!(
        matches!(err, Error::Refused(Refusal::NoSuchContribution(1))),
        "{err}"
    );
}

#[test]
fn a_bad_contribution_is_refused_with_each_problem_named() {
    let journal = community();
    let today = t0().date_naive();
    let cases: [(NewContribution, &str); 6] = [
        (
            work(Category::Care, 0.0, today, "x"),
            "hours must be more than 0, not 0",
        ),
        (
            work(Category::Care, 25.0, today, "x"),
            "hours must be at most 24 in one contribution, not 25",
        ),
        (
            work(Category::Care, 1.234, today, "x"),
            "hours have at most two decimals (1.25, not 1.234)",
        ),
        (
            work(Category::Care, 1.0, today + Duration::days(2), "x"),
            "the date 2026-11-24 is in the future",
        ),
        (
            work(Category::Care, 1.0, today, " \n "),
            "the description is empty",
        ),
        (
            work(Category::Care, 1.0, today, &"é".repeat(1001)),
            "the description has 1001 characters, more than 1000",
        ),
    ];
    for (contribution, expected) in cases {
        let err = journal
            .record_contribution("Alice", &contribution, t0())
            .unwrap_err();
        let Error::Refused(Refusal::InvalidContribution(problems)) = &err else {
            panic!("{contribution:?}: {err}");
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].to_string(), expected);
        assert_eq!(
            err.to_string(),
            format!("the contribution cannot be recorded: {expected}")
        );
    }
    let err = journal
        .record_contribution("Mallory", &work(Category::Care, 1.0, today, "x"), t0())
        .unwrap_err();
    assert!(
        matches!(err, Error::Refused(Refusal::UnknownMember(_))),
        "{err}"
    );
    // Through the untyped door, with two problems at once.
    let err = journal
        .append(
            EntryKind::ContributionRecorded,
            "Alice",
            &json!({"category": "care", "hours": 30, "date": "2027-01-01", "description": "x"}),
            t0(),
        )
        .unwrap_err();
    let Error::Refused(Refusal::InvalidContribution(problems)) = &err else {
        panic!("{err}");
    };
    assert_eq!(problems.len(), 2, "{problems:?}");
    let err = journal
        .append(
            EntryKind::ContributionRecorded,
            "Alice",
            &json!({"category": "plumbing", "hours": 1, "date": "2026-11-22", "description": "x"}),
            t0(),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::Refused(Refusal::InvalidPayload { .. })),
        "{err}"
    );
    assert_eq!(journal.head().unwrap().unwrap().seq, 5, "nothing recorded");
}

#[test]
fn a_pending_contribution_is_decided_by_the_k_in_force_at_each_attestation() {
    let journal = community();
    let id = contribute(&journal, "Alice", 1.0, t0());
    journal
        .attest(id, "Bob", Verdict::Approve, "", t0())
        .unwrap();
    // k drops to 1: the adoption decides nothing by itself...
    let k1 = LedgerParameters {
        attestations_needed: 1,
        ..LedgerParameters::default()
    };
    journal
        .adopt_ledger_parameters(&k1, &vote(), "Alice", t0() + Duration::hours(1))
        .unwrap();
    assert_eq!(
        journal.contribution(id).unwrap().unwrap().state,
        ContributionState::Pending
    );
    // ...the next approval does.
    let a = journal
        .attest(id, "Carol", Verdict::Approve, "", t0() + Duration::hours(2))
        .unwrap();
    assert_eq!(a.state, ContributionState::Validated);
    // And a new contribution now needs one approval only.
    let id2 = contribute(&journal, "Bob", 1.0, t0() + Duration::hours(3));
    let a = journal
        .attest(id2, "Dave", Verdict::Approve, "", t0() + Duration::hours(3))
        .unwrap();
    assert_eq!(a.state, ContributionState::Validated);
    assert!(journal.verify().unwrap().is_intact());
}

#[test]
fn validation_mints_at_the_rate_in_force_for_its_category() {
    let journal = community();
    let mut parameters = LedgerParameters::default();
    parameters
        .rates_per_hour
        .insert(Category::Care, Communs::from_micro(12_345_678));
    journal
        .adopt_ledger_parameters(&parameters, &vote(), "Alice", t0())
        .unwrap();
    let care = work(
        Category::Care,
        1.33,
        t0().date_naive(),
        "Sat with Mrs Martin",
    );
    let id = journal.record_contribution("Bob", &care, t0()).unwrap().seq;
    journal
        .attest(id, "Alice", Verdict::Approve, "", t0())
        .unwrap();
    let done = journal
        .attest(id, "Carol", Verdict::Approve, "", t0())
        .unwrap();
    // floor(1.33 x 12.345678) = floor(16.41975174) Communs, to the micro-Commun.
    assert_eq!(done.minted, Some(Communs::from_micro(16_419_751)));
    let c = journal.contribution(id).unwrap().unwrap();
    assert_eq!(
        (c.category, c.hours),
        (Category::Care, Hours::from_centihours(133))
    );
}

#[test]
fn transfers_move_communs_after_demurrage_and_never_below_zero() {
    let journal = community();
    earn(&journal, "Alice", 10.0, t0()); // 100 Communs
    let month = t0() + Duration::days(30);
    // After 30 days Alice holds exactly 98: a cent more is refused, naming both figures.
    let too_much = NewTransfer {
        to: "Bob".into(),
        amount: Communs::from_micro(98_000_001),
        memo: "all of it".into(),
        intent: None,
    };
    let head = journal.head().unwrap().unwrap().seq;
    let err = journal.transfer("Alice", &too_much, month).unwrap_err();
    assert!(
        matches!(&err, Error::Refused(Refusal::InsufficientCommons { member, balance, asked })
            if member == "Alice" && balance.micro() == 98_000_000 && asked.micro() == 98_000_001),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "`Alice` has 98 Communs (after demurrage), less than the 98.000001 asked"
    );
    assert_eq!(
        journal.head().unwrap().unwrap().seq,
        head,
        "no settlement left behind"
    );

    let all = NewTransfer {
        amount: Communs::from_whole(98),
        ..too_much
    };
    let entry = journal.transfer("Alice", &all, month).unwrap();
    assert_eq!(
        entry.payload,
        json!({"to": "Bob", "amount_micro": 98_000_000, "memo": "all of it"})
    );
    let settled = &journal.entries(entry.seq - 2, 1).unwrap()[0];
    assert_eq!(settled.kind, EntryKind::DemurrageSettled);
    assert_eq!(
        settled.payload,
        json!({"accounts": [{"member": "Alice", "since": "2026-11-22T10:00:00.000Z",
                             "balance_micro": 100_000_000, "decayed_micro": 2_000_000}]})
    );
    let balances = journal.balances(month).unwrap();
    let of = |m: &str| {
        balances
            .balances
            .iter()
            .find(|b| b.member == m)
            .unwrap()
            .communs
    };
    assert_eq!(of("Alice"), Communs::ZERO);
    assert_eq!(of("Bob"), Communs::from_whole(98));
    assert_eq!(balances.commons, Communs::from_whole(2));
    assert_eq!(balances.minted_total, Communs::from_whole(100));

    let mine = journal.transfers_of("Bob").unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(
        (mine[0].from.as_str(), mine[0].to.as_str()),
        ("Alice", "Bob")
    );
    assert_eq!(mine[0].amount, Communs::from_whole(98));
    assert_eq!(mine[0].ts, month);
    assert_eq!(journal.transfers_of("Alice").unwrap(), mine);
    assert!(journal.transfers_of("Carol").unwrap().is_empty());
    assert!(journal.verify().unwrap().is_intact());
}

/// "Send all" sends what the sender holds at that millisecond, whatever millionths
/// demurrage left: the balance nobody could type in full.
#[test]
fn sending_all_sends_the_exact_balance_after_demurrage() {
    let journal = community();
    earn(&journal, "Alice", 10.0, t0()); // 100 Communs
    let later = t0() + Duration::days(17) + Duration::milliseconds(123_457);
    let held = journal.balance("Alice", later).unwrap();
    assert_ne!(held.micro() % 10_000, 0, "not a whole hundredth: {held}");
    let entry = journal.transfer_all("Alice", "Bob", "tout", later).unwrap();
    assert_eq!(entry.payload["amount_micro"], json!(held.micro()));
    assert_eq!(journal.balance("Alice", later).unwrap(), Communs::ZERO);
    assert_eq!(journal.balance("Bob", later).unwrap(), held);
    // Nothing left: a second "send all" is refused, and leaves nothing behind.
    let head = journal.head().unwrap().unwrap().seq;
    let err = journal
        .transfer_all("Alice", "Bob", "", later + Duration::seconds(1))
        .unwrap_err();
    assert!(
        matches!(err, Error::Refused(Refusal::NonPositiveAmount(_))),
        "{err}"
    );
    assert_eq!(journal.head().unwrap().unwrap().seq, head);
    assert!(journal.verify().unwrap().is_intact());
}

#[test]
fn transfer_refusals_are_named() {
    let journal = community();
    earn(&journal, "Alice", 1.0, t0());
    let send = |to: &str, amount: Communs, memo: &str| {
        journal
            .transfer(
                "Alice",
                &NewTransfer {
                    to: to.into(),
                    amount,
                    memo: memo.into(),
                    intent: None,
                },
                t0(),
            )
            .unwrap_err()
    };
    let err = send("Alice", Communs::from_whole(1), "");
    assert_eq!(
        err.to_string(),
        "`Alice` cannot transfer Communs to themselves"
    );
    let err = send("Bob", Communs::ZERO, "");
    assert_eq!(
        err.to_string(),
        "a transfer moves more than 0 Communs, not 0"
    );
    let err = send("Bob", Communs::from_whole(-1), "");
    assert!(
        matches!(err, Error::Refused(Refusal::NonPositiveAmount(_))),
        "{err}"
    );
    let err = send("Zoé", Communs::from_whole(1), "");
    assert_eq!(err.to_string(), "no member named `Zoé`");
    let err = send("Bob", Communs::from_whole(1), &"m".repeat(201));
    assert!(
        err.to_string().contains("the memo has 201 characters"),
        "{err}"
    );
    let err = journal
        .transfer(
            "Carol",
            &NewTransfer {
                to: "Bob".into(),
                amount: Communs::from_micro(1),
                memo: String::new(),
                intent: None,
            },
            t0(),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::Refused(Refusal::InsufficientCommons { .. })),
        "{err}"
    );
    // The request body of `POST /api/transfers` reads straight into a NewTransfer.
    let body: NewTransfer =
        serde_json::from_value(json!({"to": "Bob", "amount": 2.5, "memo": "soup"})).unwrap();
    assert_eq!(body.amount, Communs::from_micro(2_500_000));
    assert!(
        serde_json::from_value::<NewTransfer>(json!({"to": "Bob", "amount": 0.0000001})).is_err()
    );
}

#[test]
fn the_read_api_lists_contributions_newest_first_and_hours_this_week() {
    let journal = community();
    let monday = at("2026-11-23T08:00:00Z");
    let old = earn(&journal, "Alice", 2.0, monday - Duration::days(3));
    let a = earn(&journal, "Bob", 1.5, monday + Duration::hours(1));
    let pending = contribute(&journal, "Carol", 4.0, monday + Duration::hours(2));
    let b = earn(&journal, "Dave", 0.25, monday + Duration::hours(3));

    let all = journal.contributions().unwrap();
    let ids: Vec<i64> = all.iter().map(|c| c.id).collect();
    assert_eq!(ids, [b, pending, a, old]);
    let states: Vec<_> = all.iter().map(|c| c.state).collect();
    assert_eq!(
        states,
        [
            ContributionState::Validated,
            ContributionState::Pending,
            ContributionState::Validated,
            ContributionState::Validated
        ]
    );
    assert_eq!(all[1].attestations, []);
    assert_eq!(all[0].attestations.len(), 2);
    assert_eq!(all[0].minted, Some(Communs::from_micro(2_500_000)));

    assert_eq!(
        journal.hours_validated_since(monday).unwrap(),
        Hours::from_centihours(175)
    );
    assert_eq!(
        journal
            .hours_validated_since(monday - Duration::days(7))
            .unwrap(),
        Hours::from_centihours(375)
    );
    assert_eq!(
        journal
            .hours_validated_since(monday + Duration::days(1))
            .unwrap(),
        Hours::ZERO
    );

    let json = serde_json::to_value(&all[2]).unwrap();
    assert_eq!(json["id"], a);
    assert_eq!(json["member"], "Bob");
    assert_eq!(json["category"], "repair");
    assert_eq!(json["hours"], 1.5);
    assert_eq!(json["state"], "validated");
    assert_eq!(json["minted"], 15.0);
    assert_eq!(json["attestations"][0]["verdict"], "approve");
    assert_eq!(json["date"], "2026-11-23");

    let balances =
        serde_json::to_value(journal.balances(monday + Duration::hours(3)).unwrap()).unwrap();
    assert_eq!(balances["at"], "2026-11-23T11:00:00.000Z");
    assert_eq!(
        balances["balances"][3],
        json!({"member": "Dave", "communs": 2.5})
    );
    assert_eq!(balances["minted_total"], 37.5);
    assert!(balances["commons"].is_number());
}

#[test]
fn parameters_are_adopted_under_a_decision_that_holds() {
    let journal = community();
    assert_eq!(
        journal.ledger_parameters().unwrap(),
        LedgerParameters::default()
    );
    let bad = LedgerParameters {
        attestations_needed: 0,
        demurrage_period_days: 0,
        ..LedgerParameters::default()
    };
    let err = journal
        .adopt_ledger_parameters(&bad, &vote(), "Alice", t0())
        .unwrap_err();
    let Error::Refused(Refusal::InvalidParameters(problems)) = &err else {
        panic!("{err}")
    };
    assert_eq!(problems.len(), 2, "{problems:?}");
    let mut no_quorum = vote();
    no_quorum.present = 3;
    let err = journal
        .adopt_ledger_parameters(&LedgerParameters::default(), &no_quorum, "Alice", t0())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("quorum not reached: 3 members present, 10 required"),
        "{err}"
    );
    assert_eq!(journal.head().unwrap().unwrap().seq, 5, "nothing recorded");

    let k3 = LedgerParameters {
        attestations_needed: 3,
        ..LedgerParameters::default()
    };
    let entry = journal
        .adopt_ledger_parameters(&k3, &vote(), "Alice", t0() + Duration::days(1))
        .unwrap();
    assert_eq!(entry.kind, EntryKind::ParametersAdopted);
    assert_eq!(
        entry.payload["parameters"]["rates_micro_per_hour"]["energy_sharing"],
        10_000_000
    );
    assert_eq!(entry.payload["parameters"]["demurrage_rate_ppm"], 20_000);
    assert_eq!(journal.ledger_parameters().unwrap(), k3);
    let history = journal.parameters_history().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].seq, history[0].author.as_str()),
        (entry.seq, "Alice")
    );
    assert_eq!(history[0].decision, vote());
    assert_eq!(history[0].adopted_at, t0() + Duration::days(1));
}

#[test]
fn derived_entries_cannot_be_appended_and_the_tables_rebuild() {
    let journal = community();
    earn(&journal, "Alice", 3.0, t0());
    earn(&journal, "Alice", 1.0, t0() + Duration::days(3));
    journal
        .transfer(
            "Alice",
            &NewTransfer {
                to: "Dave".into(),
                amount: Communs::from_whole(7),
                memo: "for the bread".into(),
                intent: None,
            },
            t0() + Duration::days(4),
        )
        .unwrap();
    let err = journal
        .append(
            EntryKind::ContributionValidated,
            "Alice",
            &json!({"contribution": 6, "member": "Alice", "hours": 3.0,
                    "rate_micro_per_hour": 10_000_000, "minted_micro": 30_000_000}),
            t0(),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Refused(Refusal::DerivedKind(EntryKind::ContributionValidated))
        ),
        "{err}"
    );

    let later = t0() + Duration::days(40);
    let before = (
        journal.balances(later).unwrap(),
        journal.contributions().unwrap(),
        journal.transfers_of("Dave").unwrap(),
    );
    let entries = journal.head().unwrap().unwrap().seq;
    assert_eq!(journal.rebuild_derived().unwrap(), entries as u64);
    let after = (
        journal.balances(later).unwrap(),
        journal.contributions().unwrap(),
        journal.transfers_of("Dave").unwrap(),
    );
    assert_eq!(before, after);
    assert!(journal.verify().unwrap().is_intact());
}
