//! A node publishing its summary over JetStream: an outage of the federation, and a
//! server of the cluster killed mid-stream; every minute arrives once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use federation::clock::{Clock, ScaledClock};
use federation::config::FederationConfig;
use federation::publish::{Publisher, SIGNATURE_HEADER};
use federation::summary::{Origin, Summary};
use tokio_util::sync::CancellationToken;

use crate::nats::{Cluster, NatsServer};
use crate::node::{GRID_W, SimNode, index_of, pv_w, sim_node};

/// One simulated minute every 200 ms.
pub(crate) const SPEED: f64 = 300.0;

pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 4, 10, 0, 0)
        .single()
        .expect("t0")
}

pub(crate) fn test_config(urls: Vec<String>, replicas: usize) -> FederationConfig {
    let mut c: FederationConfig = toml::from_str("").expect("defaults");
    c.nats = urls;
    c.publish_interval = Duration::from_millis(20);
    c.ack_timeout = Duration::from_millis(1500);
    c.stream.replicas = replicas;
    c
}

pub(crate) async fn start_publisher(
    node: &SimNode,
    config: &FederationConfig,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let client = federation::publish::connect(&config.nats, None, node.key.node_id())
        .await
        .expect("client");
    let publisher = Publisher::new(
        client,
        node.key.clone(),
        node.source.clone(),
        node.dir.path(),
        clock,
        config.clone(),
    )
    .expect("publisher");
    tokio::spawn(publisher.run(cancel))
}

/// Every message of the stream: its summary and whether its signature header is there.
pub(crate) async fn stream_contents(url: &str) -> Vec<Summary> {
    let client = async_nats::connect(url).await.expect("reader");
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("COMMUNALIA").await.expect("stream");
    let last = stream.info().await.expect("info").state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        // Nothing deletes from the stream: a message that cannot be read is a
        // server still settling (a leader elected after a partition, a loaded
        // machine), asked again, and named if it never answers.
        let mut tries = 0;
        let m = loop {
            match stream.get_raw_message(seq).await {
                Ok(m) => break m,
                Err(e) if tries < 20 => {
                    tries += 1;
                    eprintln!("message {seq} of the stream: {e}; asking again");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => panic!("message {seq} of the stream at {url}: {e}"),
            }
        };
        assert!(
            m.headers.get(SIGNATURE_HEADER).is_some(),
            "message {seq} is unsigned"
        );
        out.push(serde_json::from_slice(&m.payload).expect("a summary"));
    }
    out
}

/// Waits until the node's cursor has passed minute `k`.
pub(crate) async fn wait_for_minute(node: &SimNode, k: i64, within: Duration) {
    let deadline = Instant::now() + within;
    let target = t0() + chrono::Duration::minutes(k);
    loop {
        let cursor = federation::cursor::Cursor::open(node.dir.path()).expect("cursor");
        if cursor.position().published_through >= Some(target) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "minute {k} not published within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks that minutes `first..=last` each appear exactly once, with node `n`'s
/// figures for that minute; returns how many came from the history.
fn assert_every_minute_once(summaries: &[Summary], n: u32, first: i64, last: i64) -> usize {
    let mut by_minute: BTreeMap<i64, Vec<&Summary>> = BTreeMap::new();
    for s in summaries {
        by_minute.entry(index_of(s, t0())).or_default().push(s);
    }
    for k in first..=last {
        let got = by_minute.get(&k).map_or(0, Vec::len);
        assert_eq!(got, 1, "minute {k} arrived {got} times");
        let s = by_minute[&k][0];
        assert_eq!(s.production_w, pv_w(n, k), "minute {k}");
        assert_eq!(s.grid_w, GRID_W, "minute {k}");
        assert_eq!(s.consumption_w, pv_w(n, k) + GRID_W, "minute {k}");
    }
    for (k, v) in &by_minute {
        assert_eq!(v.len(), 1, "minute {k} arrived {} times", v.len());
    }
    summaries
        .iter()
        .filter(|s| s.origin == Origin::History)
        .count()
}

/// The federation unreachable for ten simulated minutes: the node keeps its
/// cursor and, once the server is back, resends the missed minutes from its
/// history; every minute is in the stream exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_minutes_unreachable_then_every_minute_arrives_once() {
    if !crate::nats::available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = NatsServer::single(dir.path());
    let cancel = CancellationToken::new();
    let clock: Arc<dyn Clock> = Arc::new(ScaledClock::new(t0(), SPEED));
    let node = sim_node("tilleuls", 1, t0(), 60, clock.clone(), cancel.clone()).await;
    let config = test_config(vec![server.url()], 1);
    let task = start_publisher(&node, &config, clock.clone(), cancel.clone()).await;

    wait_for_minute(&node, 3, Duration::from_secs(20)).await;
    server.kill();
    let down_at = clock.now();
    // Ten simulated minutes without the federation.
    while clock.now() - down_at < chrono::Duration::minutes(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let back_at = index_of_now(&*clock);
    server.start();
    wait_for_minute(&node, back_at + 3, Duration::from_secs(30)).await;
    cancel.cancel();
    let _ = task.await;

    let summaries = stream_contents(&server.url()).await;
    // The node's first minute is whichever it started in; from there on, all.
    let first = summaries
        .iter()
        .map(|s| index_of(s, t0()))
        .min()
        .expect("some summaries");
    let last = summaries
        .iter()
        .map(|s| index_of(s, t0()))
        .max()
        .expect("some summaries");
    assert!(
        first <= 3 && last >= back_at + 3,
        "minutes {first} to {last}"
    );
    let resent = assert_every_minute_once(&summaries, 1, first, last);
    // The minutes of the outage can only have come from the history.
    assert!(
        resent >= 9,
        "only {resent} minutes were resent from the history"
    );
}

fn index_of_now(clock: &dyn Clock) -> i64 {
    (federation::summary::minute_of(clock.now()) - t0()).num_minutes()
}

/// A three-server cluster, the stream replicated on all three; the server leading
/// the stream is killed mid-stream and the node goes on through the other two
/// once they have elected a new leader: nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_server_killed_mid_stream_loses_nothing() {
    if !crate::nats::available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cluster = Cluster::start(dir.path());
    let cancel = CancellationToken::new();
    let clock: Arc<dyn Clock> = Arc::new(ScaledClock::new(t0(), SPEED));
    let node = sim_node("platanes", 2, t0(), 90, clock.clone(), cancel.clone()).await;
    let config = test_config(cluster.urls(), 3);
    let task = start_publisher(&node, &config, clock.clone(), cancel.clone()).await;

    // The cluster elects its JetStream leader, then the stream (R3) is made.
    wait_for_minute(&node, 3, Duration::from_secs(60)).await;
    let leader = stream_leader(&cluster.urls()[0]).await;
    let killed: usize = leader
        .strip_prefix('n')
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("leader `{leader}` is not one of n0, n1, n2"));
    cluster.servers[killed].kill();
    let killed_at = index_of_now(&*clock);
    wait_for_minute(&node, killed_at + 8, Duration::from_secs(60)).await;
    cancel.cancel();
    let _ = task.await;

    let survivor = cluster.servers[(killed + 1) % 3].url();
    assert_ne!(
        stream_leader(&survivor).await,
        leader,
        "a new leader was elected"
    );
    let summaries = stream_contents(&survivor).await;
    let first = summaries
        .iter()
        .map(|s| index_of(s, t0()))
        .min()
        .expect("some");
    let last = summaries
        .iter()
        .map(|s| index_of(s, t0()))
        .max()
        .expect("some");
    assert!(last >= killed_at + 8);
    assert_every_minute_once(&summaries, 2, first, last);
    // What the stream says of its replicas: three configured.
    let client = async_nats::connect(survivor).await.expect("client");
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("COMMUNALIA").await.expect("stream");
    assert_eq!(stream.info().await.expect("info").config.num_replicas, 3);
}

/// The name of the server leading the stream.
async fn stream_leader(url: &str) -> String {
    let client = async_nats::connect(url).await.expect("client");
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("COMMUNALIA").await.expect("stream");
    let info = stream.info().await.expect("info");
    info.cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .expect("a replicated stream has a leader")
}
