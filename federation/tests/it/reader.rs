//! The region's reader against a real JetStream server: summaries read in
//! chunks, their signatures checked on several threads at once, the chunk
//! acknowledged in one go (`AckPolicy::All`) or message by message on a consumer
//! made with `AckPolicy::Explicit` before; every summary accepted once, refusals
//! counted inside a chunk, and a restarted region going on where it stopped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use chrono::{DateTime, TimeZone, Utc};
use federation::clock::{Clock, ScaledClock};
use federation::config::{RegionFile, StreamConfig};
use federation::identity::NodeKey;
use federation::region::{RegionState, consume};
use federation::summary::Summary;
use futures::StreamExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::nats::NatsServer;

const STREAM: &str = "COMMUNALIA";
const CONSUMER: &str = "region";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0)
        .single()
        .expect("t0")
}

fn node_id(i: usize) -> String {
    format!("n{i:02}")
}

fn summary(node: &str, minute: u32, production_w: f64) -> Summary {
    crate::support::summary(
        node,
        t0() + chrono::Duration::minutes(i64::from(minute)),
        production_w,
        1000.0,
    )
}

/// A JetStream server with the summaries' stream, and the keys of `nodes` nodes
/// the region knows.
struct Federation {
    _dir: tempfile::TempDir,
    _server: NatsServer,
    client: async_nats::Client,
    js: jetstream::Context,
    keys: Vec<NodeKey>,
    file: RegionFile,
}

impl Federation {
    async fn start(nodes: usize) -> Federation {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = NatsServer::single(dir.path());
        let client = async_nats::connect(server.url()).await.expect("client");
        let js = jetstream::new(client.clone());
        js.get_or_create_stream(federation::publish::stream_settings(&StreamConfig {
            replicas: 1,
            ..StreamConfig::default()
        }))
        .await
        .expect("stream");
        let keys: Vec<NodeKey> = (0..nodes)
            .map(|i| {
                let mut seed = [0x17; 32];
                seed[0] = i as u8;
                NodeKey::from_seed(seed, Some(&node_id(i))).expect("key")
            })
            .collect();
        let mut text = format!(
            "[region]\nname = \"Vallée\"\nlanguage = \"fr\"\ntimezone = \"UTC\"\nnats = [\"{}\"]\nstale_after = \"10m\"\n",
            server.url()
        );
        for key in &keys {
            text.push_str(&format!(
                "[[node]]\nid = \"{}\"\nkey = \"{}\"\n",
                key.node_id(),
                key.public()
            ));
        }
        let file = RegionFile::parse(&text, "region.toml").expect("region.toml");
        assert_eq!(file.region.consumer, CONSUMER);
        Federation {
            _dir: dir,
            _server: server,
            client,
            js,
            keys,
            file,
        }
    }

    /// Every node's summaries of `minutes`, each signed by its node and stored
    /// (JetStream's acknowledgement awaited): how many.
    async fn publish(&self, minutes: std::ops::Range<u32>) -> u64 {
        let mut acks = Vec::new();
        for m in minutes {
            for key in &self.keys {
                let s = summary(key.node_id(), m, 1000.0 + f64::from(m));
                acks.push(
                    federation::publish::publish(&self.js, key, &s)
                        .await
                        .expect("publish"),
                );
            }
        }
        let count = acks.len() as u64;
        for ack in acks {
            assert!(!ack.await.expect("stored").duplicate);
        }
        count
    }

    /// A region reading the stream with the durable consumer `region`.
    fn region(&self) -> Region {
        let clock: Arc<dyn Clock> = Arc::new(ScaledClock::new(t0(), 1.0));
        let state = Arc::new(RegionState::new(&self.file, clock).expect("state"));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(consume(
            self.client.clone(),
            STREAM.to_string(),
            CONSUMER.to_string(),
            state.clone(),
            cancel.clone(),
        ));
        Region {
            state,
            cancel,
            task,
        }
    }

    async fn consumer(&self) -> PullConsumer {
        self.js
            .get_stream(STREAM)
            .await
            .expect("stream")
            .get_consumer(CONSUMER)
            .await
            .expect("consumer")
    }

    async fn consumer_info(&self) -> jetstream::consumer::Info {
        self.consumer().await.info().await.expect("info").clone()
    }
}

struct Region {
    state: Arc<RegionState>,
    cancel: CancellationToken,
    task: JoinHandle<federation::Result<()>>,
}

impl Region {
    /// Waits until `count` summaries are accepted (no more: checked a moment
    /// later too), within `within`.
    async fn accepts(&self, count: u64, within: Duration) {
        let deadline = Instant::now() + within;
        while self.state.accepted() < count {
            assert!(
                Instant::now() < deadline,
                "{} of {count} summaries accepted after {within:?} (refused: {:?})",
                self.state.accepted(),
                self.state.refused()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(self.state.accepted(), count, "accepted once each");
    }

    /// Each node's latest minute as the region holds it.
    fn latest_minutes(&self) -> BTreeMap<String, Option<i64>> {
        self.state
            .rows()
            .into_iter()
            .map(|r| (r.id, r.latest.map(|s| (s.minute - t0()).num_minutes())))
            .collect()
    }

    async fn stop(self) -> Arc<RegionState> {
        self.cancel.cancel();
        self.task
            .await
            .expect("joined")
            .expect("the region's reading");
        self.state
    }
}

/// Every node's latest minute is `minute`.
fn all_at(nodes: usize, minute: i64) -> BTreeMap<String, Option<i64>> {
    (0..nodes).map(|i| (node_id(i), Some(minute))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_summary_is_accepted_once_by_the_batched_reader() {
    if !crate::nats::available() {
        return;
    }
    let f = Federation::start(8).await;
    // A backlog first (whole chunks, checked on several threads), then
    // summaries arriving while the region reads (small chunks).
    let backlog = f.publish(0..40).await;
    let region = f.region();
    let live = f.publish(40..60).await;
    region
        .accepts(backlog + live, Duration::from_secs(60))
        .await;
    assert_eq!(region.state.refused_total(), 0);
    assert_eq!(region.latest_minutes(), all_at(8, 59));

    // The consumer the region made acknowledges in one go, and every message
    // is acknowledged: nothing waits to be delivered again.
    let info = f.consumer_info().await;
    assert_eq!(info.config.ack_policy, AckPolicy::All);
    assert_eq!(info.num_ack_pending, 0, "{info:?}");
    assert_eq!(info.num_pending, 0, "{info:?}");
    assert_eq!(info.ack_floor.stream_sequence, backlog + live, "{info:?}");
    region.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_summaries_inside_a_chunk_are_refused_and_counted() {
    if !crate::nats::available() {
        return;
    }
    let f = Federation::start(8).await;
    // Among the nodes' summaries, in the same chunks: a forger signing as `n00`
    // with its own key (a later minute and a huge production, which would be
    // `n00`'s latest if believed), and a node the region does not know.
    let forger = NodeKey::from_seed([9; 32], Some("n00")).expect("key");
    let stranger = NodeKey::from_seed([10; 32], Some("inconnu")).expect("key");
    let mut good = 0;
    for m in 0..30 {
        good += f.publish(m..m + 1).await;
        if m % 10 == 5 {
            let forged = summary("n00", 10_000 + m, 999_999.0);
            federation::publish::publish(&f.js, &forger, &forged)
                .await
                .expect("publish")
                .await
                .expect("stored");
        }
    }
    federation::publish::publish(&f.js, &stranger, &summary("inconnu", 20, 1.0))
        .await
        .expect("publish")
        .await
        .expect("stored");
    let region = f.region();
    region.accepts(good, Duration::from_secs(60)).await;
    let refused = region.state.refused();
    assert_eq!(
        refused,
        BTreeMap::from([
            (("inconnu".to_string(), "unknown_node"), 1),
            (("n00".to_string(), "bad_signature"), 3),
        ])
    );
    assert_eq!(region.latest_minutes(), all_at(8, 29));
    let rows = region.state.rows();
    let n00 = rows.iter().find(|r| r.id == "n00").expect("n00");
    assert_eq!(n00.latest.as_ref().map(|s| s.production_w), Some(1029.0));
    assert_eq!(n00.refused.as_ref().map(|r| r.count), Some(3));
    // The refused ones are acknowledged too: they would be refused again.
    let info = f.consumer_info().await;
    assert_eq!(info.num_ack_pending, 0, "{info:?}");
    assert_eq!(info.ack_floor.stream_sequence, good + 4, "{info:?}");
    region.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_over_an_explicit_consumer_still_acknowledges_every_message() {
    if !crate::nats::available() {
        return;
    }
    let f = Federation::start(5).await;
    // The consumer as regions made it before: every message acknowledged on its
    // own. Its policy cannot change; a short wait before a delivery is made
    // again (longer than reading a pull of summaries takes in a debug build).
    const ACK_WAIT: Duration = Duration::from_secs(10);
    f.js.get_stream(STREAM)
        .await
        .expect("stream")
        .create_consumer(pull::Config {
            durable_name: Some(CONSUMER.to_string()),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            max_ack_pending: 10_000,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let first = f.publish(0..20).await;
    let region = f.region();
    region.accepts(first, Duration::from_secs(60)).await;
    region.stop().await;

    // Restarted over the same consumer.
    let second = f.publish(20..40).await;
    let region = f.region();
    region.accepts(second, Duration::from_secs(60)).await;
    // Past the ack wait: a message left unacknowledged would have come again.
    tokio::time::sleep(ACK_WAIT + Duration::from_secs(2)).await;
    assert_eq!(region.state.accepted(), second, "nothing delivered again");
    assert_eq!(region.latest_minutes(), all_at(5, 39));
    let info = f.consumer_info().await;
    assert_eq!(info.config.ack_policy, AckPolicy::Explicit);
    assert_eq!(info.num_ack_pending, 0, "{info:?}");
    assert_eq!(info.num_redelivered, 0, "{info:?}");
    assert_eq!(info.ack_floor.stream_sequence, first + second, "{info:?}");
    region.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_region_goes_on_where_it_stopped_without_loss() {
    if !crate::nats::available() {
        return;
    }
    let f = Federation::start(6).await;
    let first = f.publish(0..30).await;
    let region = f.region();
    region.accepts(first, Duration::from_secs(60)).await;
    region.stop().await;
    let info = f.consumer_info().await;
    assert_eq!(info.config.ack_policy, AckPolicy::All);
    assert_eq!(info.num_ack_pending, 0, "{info:?}");
    assert_eq!(info.ack_floor.stream_sequence, first, "{info:?}");

    let second = f.publish(30..60).await;
    // A reader that pulled some of them and stopped before reading them (as a
    // region does when it stops with a pull under way, or crashes): delivered,
    // never acknowledged. Under `AckPolicy::All` the next acknowledgement of a
    // later message would cover them unread.
    let mut pulled = f
        .consumer()
        .await
        .fetch()
        .max_messages(60)
        .messages()
        .await
        .expect("fetch");
    let mut unread = 0;
    while let Some(message) = pulled.next().await {
        message.expect("message");
        unread += 1;
    }
    assert_eq!(unread, 60);
    assert_eq!(f.consumer_info().await.num_ack_pending, 60);

    // The region again: every summary since it stopped, none of the earlier
    // ones again, well before those deliveries would be made again (30 s).
    let region = f.region();
    region.accepts(second, Duration::from_secs(20)).await;
    assert_eq!(region.latest_minutes(), all_at(6, 59));
    let info = f.consumer_info().await;
    assert_eq!(info.num_ack_pending, 0, "{info:?}");
    assert_eq!(info.num_pending, 0, "{info:?}");
    assert_eq!(info.ack_floor.stream_sequence, first + second, "{info:?}");
    region.stop().await;
}
