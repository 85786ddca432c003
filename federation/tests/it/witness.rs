//! Two neighbours witnessing a node's journal over HTTP (C2SP tlog-witness): they
//! cosign checkpoints that extend what they cosigned, and both refuse the
//! checkpoint of a rewritten journal.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use federation::clock::{Clock, ScaledClock};
use federation::config::WitnessPeer;
use federation::identity::NodeKey;
use federation::witness::{
    Answer, Witness, collect_cosignatures, journal_leaves, log_verifier, signed_checkpoint,
    verify_witnessed, witness_app,
};
use ledger::{Journal, Role};

async fn start_witness(seed: u8, name: &str, log: &NodeKey, dir: &std::path::Path) -> WitnessPeer {
    let key = Arc::new(NodeKey::from_seed([seed; 32], Some(name)).expect("key"));
    let clock: Arc<dyn Clock> = Arc::new(ScaledClock::new(
        Utc.with_ymd_and_hms(2026, 5, 4, 12, 0, 0)
            .single()
            .expect("t"),
        1.0,
    ));
    let wdir = dir.join(name);
    std::fs::create_dir_all(&wdir).expect("dir");
    let witness = Arc::new(
        Witness::open(key, &[log_verifier(log).to_string()], &wdir, clock).expect("witness"),
    );
    let verifier = witness.verifier().to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, witness_app(witness)).await });
    WitnessPeer { url, key: verifier }
}

fn add_members(journal: &Journal, names: &[&str]) {
    for name in names {
        journal
            .create_user(
                name,
                &[Role::Resident],
                "a long enough password",
                "test",
                Utc::now(),
            )
            .expect("member");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_journal_is_refused_by_both_witnesses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node_dir = dir.path().join("node");
    std::fs::create_dir_all(&node_dir).expect("dir");
    let key = NodeKey::from_seed([1; 32], Some("tilleuls")).expect("key");
    let witnesses = vec![
        start_witness(2, "platanes", &key, dir.path()).await,
        start_witness(3, "moulin", &key, dir.path()).await,
    ];
    let http = reqwest::Client::new();

    // The journal as it happened: witnessed twice as it grows.
    let journal = Journal::open_in_memory().expect("journal");
    add_members(&journal, &["ana", "bo"]);
    let leaves = journal_leaves(&journal).expect("leaves");
    let answers = collect_cosignatures(
        &http,
        &witnesses,
        signed_checkpoint(&key, &leaves),
        &leaves,
        &node_dir,
    )
    .await
    .expect("first checkpoint");
    assert!(
        answers.iter().all(|(_, a)| *a == Answer::Cosigned),
        "{answers:?}"
    );
    add_members(&journal, &["cy"]);
    let leaves = journal_leaves(&journal).expect("leaves");
    let answers = collect_cosignatures(
        &http,
        &witnesses,
        signed_checkpoint(&key, &leaves),
        &leaves,
        &node_dir,
    )
    .await
    .expect("second checkpoint");
    assert!(
        answers.iter().all(|(_, a)| *a == Answer::Cosigned),
        "{answers:?}"
    );
    let witnessed = std::fs::read_to_string(node_dir.join("checkpoint.note")).expect("checkpoint");
    let report = verify_witnessed(&witnessed, &key, &witnesses, &leaves).expect("verify");
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.cosigned.len(), 2);
    assert_eq!(report.size, leaves.len() as u64);

    // The node rewrites its history: bo never joined, mallory did, and more.
    let rewritten = Journal::open_in_memory().expect("journal");
    add_members(&rewritten, &["ana", "mallory", "cy", "dan"]);
    let forged = journal_leaves(&rewritten).expect("leaves");
    assert!(forged.len() > leaves.len());
    let answers = collect_cosignatures(
        &http,
        &witnesses,
        signed_checkpoint(&key, &forged),
        &forged,
        &node_dir,
    )
    .await
    .expect("asked");
    for (url, answer) in &answers {
        assert!(
            matches!(answer, Answer::Refused { status: 422, .. }),
            "{url} answered {answer:?}"
        );
    }
    // Pretending to be new to the witnesses (size 0) only gets their size back.
    let fresh_dir = dir.path().join("fresh");
    std::fs::create_dir_all(&fresh_dir).expect("dir");
    let answers = collect_cosignatures(
        &http,
        &witnesses,
        signed_checkpoint(&key, &forged),
        &forged,
        &fresh_dir,
    )
    .await
    .expect("asked");
    for (url, answer) in &answers {
        assert!(
            matches!(answer, Answer::Refused { status: 422, .. }),
            "{url}: after the 409 with its size, the proof from it fails: {answer:?}"
        );
    }
    // The witnessed checkpoint still stands, and the rewritten journal fails it.
    let still = std::fs::read_to_string(node_dir.join("checkpoint.note")).expect("checkpoint");
    assert_eq!(still, witnessed);
    let report = verify_witnessed(&still, &key, &witnesses, &forged).expect("verify");
    assert!(!report.journal_matches && !report.ok(), "{report:?}");

    // A checkpoint signed by another key is refused outright.
    let stranger = NodeKey::from_seed([9; 32], Some("tilleuls")).expect("key");
    let answers = collect_cosignatures(
        &http,
        &witnesses,
        signed_checkpoint(&stranger, &leaves),
        &leaves,
        &node_dir,
    )
    .await
    .expect("asked");
    assert!(
        answers
            .iter()
            .all(|(_, a)| matches!(a, Answer::Refused { status: 403, .. })),
        "{answers:?}"
    );
}
