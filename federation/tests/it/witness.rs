//! Two neighbours witnessing a node's journal over HTTP (C2SP tlog-witness): they
//! cosign checkpoints that extend what they cosigned, and both refuse the
//! checkpoint of a rewritten journal.

use std::sync::Arc;

use base64::Engine as _;
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
    start_witness_kept(seed, name, log, dir).await.0
}

/// A witness serving on loopback, and the witness itself.
async fn start_witness_kept(
    seed: u8,
    name: &str,
    log: &NodeKey,
    dir: &std::path::Path,
) -> (WitnessPeer, Arc<Witness>) {
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
    let served = witness.clone();
    tokio::spawn(async move { axum::serve(listener, witness_app(served)).await });
    (WitnessPeer { url, key: verifier }, witness)
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

/// Both witnesses stand by their refusal of a rewritten journal (across a
/// restart too), say so in statements signed with their keys over a real NATS
/// server, and the region flags the node naming them; a statement forged in a
/// witness's name is refused and counted, and flags nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_region_shows_a_journal_its_witnesses_refuse() {
    if !crate::nats::available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let node_dir = dir.path().join("node");
    std::fs::create_dir_all(&node_dir).expect("dir");
    let key = NodeKey::from_seed([1; 32], Some("tilleuls")).expect("key");
    let (platanes, platanes_witness) = start_witness_kept(2, "platanes", &key, dir.path()).await;
    let (moulin, moulin_witness) = start_witness_kept(3, "moulin", &key, dir.path()).await;
    let witnesses = vec![platanes, moulin];
    let http = reqwest::Client::new();

    let journal = Journal::open_in_memory().expect("journal");
    add_members(&journal, &["ana", "bo"]);
    let leaves = journal_leaves(&journal).expect("leaves");
    collect_cosignatures(
        &http,
        &witnesses,
        signed_checkpoint(&key, &leaves),
        &leaves,
        &node_dir,
    )
    .await
    .expect("witnessed");
    assert!(
        platanes_witness.refusals().is_empty(),
        "nothing refused yet"
    );
    let rewritten = Journal::open_in_memory().expect("journal");
    add_members(&rewritten, &["ana", "mallory", "cy"]);
    let forged = journal_leaves(&rewritten).expect("leaves");
    collect_cosignatures(
        &http,
        &witnesses,
        signed_checkpoint(&key, &forged),
        &forged,
        &node_dir,
    )
    .await
    .expect("asked");
    for w in [&platanes_witness, &moulin_witness] {
        let refusals = w.refusals();
        assert_eq!(refusals.len(), 1, "{refusals:?}");
        assert_eq!(refusals[0].node, "tilleuls");
        assert_eq!(refusals[0].status, 422);
        assert_eq!(refusals[0].cosigned, leaves.len() as u64);
        assert_eq!(refusals[0].size, forged.len() as u64);
    }
    // The refusal is kept in the witness's state: a restarted witness still says it.
    let platanes_key = Arc::new(NodeKey::from_seed([2; 32], Some("platanes")).expect("key"));
    let clock: Arc<dyn Clock> = Arc::new(ScaledClock::new(Utc::now(), 1.0));
    let reopened = Witness::open(
        platanes_key,
        &[log_verifier(&key).to_string()],
        &dir.path().join("platanes"),
        clock.clone(),
    )
    .expect("reopened");
    assert_eq!(reopened.refusals(), platanes_witness.refusals());

    // The region, listening on a real NATS server; each witness says what it
    // refuses five times a second.
    let server = crate::nats::NatsServer::single(dir.path());
    let node_key = |seed: u8, id: &str| {
        NodeKey::from_seed([seed; 32], Some(id))
            .expect("key")
            .public()
            .to_string()
    };
    let text = format!(
        "[region]\nname = \"Vallée\"\nlanguage = \"fr\"\ntimezone = \"UTC\"\nnats = [\"{url}\"]\n\
         [[node]]\nid = \"tilleuls\"\nname = \"Les Tilleuls\"\nkey = \"{k1}\"\n\
         [[node]]\nid = \"platanes\"\nname = \"Les Platanes\"\nkey = \"{k2}\"\n\
         [[node]]\nid = \"moulin\"\nname = \"Le Moulin\"\nkey = \"{k3}\"\n",
        url = server.url(),
        k1 = node_key(1, "tilleuls"),
        k2 = node_key(2, "platanes"),
        k3 = node_key(3, "moulin"),
    );
    let file = federation::config::RegionFile::parse(&text, "region.toml").expect("region.toml");
    let state = Arc::new(federation::region::RegionState::new(&file, clock).expect("state"));
    let cancel = tokio_util::sync::CancellationToken::new();
    let region_client = async_nats::connect(server.url()).await.expect("client");
    tokio::spawn(federation::region::listen_to_witnesses(
        region_client,
        state.clone(),
        cancel.clone(),
    ));
    for w in [&platanes_witness, &moulin_witness] {
        let client = async_nats::connect(server.url()).await.expect("client");
        tokio::spawn(federation::witness::announce(
            client,
            w.clone(),
            std::time::Duration::from_millis(200),
            cancel.clone(),
        ));
    }
    let row = |id: &str| {
        state
            .rows()
            .into_iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("no row {id}"))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while row("tilleuls").witness_refusals.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the region never heard both witnesses: {:?}",
            row("tilleuls")
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut names: Vec<String> = row("tilleuls")
        .witness_refusals
        .iter()
        .map(|w| w.witness_name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["Le Moulin", "Les Platanes"]);
    assert!(row("platanes").witness_refusals.is_empty());

    // A statement in platanes's name, signed by another key, accusing moulin.
    let stranger = NodeKey::from_seed([9; 32], Some("platanes")).expect("key");
    let lie = federation::witness::WitnessStatement {
        witness: "platanes".into(),
        at: "2026-05-04T12:00:00Z".into(),
        refusals: vec![federation::witness::StandingRefusal {
            node: "moulin".into(),
            size: 9,
            cosigned: 3,
            status: 422,
            at: "2026-05-04T12:00:00Z".into(),
        }],
    };
    let signed = lie.sign(&stranger);
    let client = async_nats::connect(server.url()).await.expect("client");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        federation::publish::SIGNATURE_HEADER,
        base64::engine::general_purpose::STANDARD
            .encode(signed.signature)
            .as_str(),
    );
    client
        .publish_with_headers(
            federation::witness::statement_subject("platanes"),
            headers,
            signed.payload.into(),
        )
        .await
        .expect("published");
    client.flush().await.expect("flushed");
    while state.statements_refused() == 0 {
        assert!(
            std::time::Instant::now() < deadline + std::time::Duration::from_secs(10),
            "the forged statement was never refused"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        row("moulin").witness_refusals.is_empty(),
        "believed a forgery"
    );
    cancel.cancel();
}
