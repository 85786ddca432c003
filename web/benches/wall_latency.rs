//! Meter to wall: how long a value a Shelly Gen2 meter publishes over MQTT takes
//! to reach `GET /events`, with the live evaluation on a fixed 1 s tick (how the
//! node evaluated before) and driven by the readings (coalesced to one evaluation
//! per 50 ms), side by side in one run, through the embedded broker and through
//! Mosquitto at 127.0.0.1:1883 when it runs.
//!
//! Each side is a node assembled as `communalia run` assembles it: ingest with its
//! write-ahead log (acknowledgements after fsync), the live evaluation, the public
//! feed and the web server, in this process. Both nodes run at once and the meter
//! publishes each value to both at the same instant, at random gaps; a watcher
//! reads each node's `/events` like a wall screen. A sample's latency is the time
//! from the publish to the first event carrying that value or a later one (values
//! rise): a value the wall never showed counts from its publish to the first that
//! showed a later one, and is counted as never shown.
//!
//! `cargo bench -p web --bench wall_latency` (`-- --samples N` for another count).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingest::config::BrokerEndpoint;
use ingest::metrics::IngestMetrics;
use ingest::mqtt::MqttClientOptions;
use ingest::store::LiveStore;
use query::engine::{Engine, EngineOptions, Schedule, empty_snapshot};
use rand::Rng;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use sensors::config::DeviceConfig;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

const MOSQUITTO: &str = "127.0.0.1:1883";
/// The heartbeat, and the period of the fixed tick.
const PERIOD: Duration = Duration::from_secs(1);
/// Random gaps between two values, in milliseconds.
const GAP_MS: (u64, u64) = (150, 650);

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// One node of the bench: its web address, what its `/events` carried (value,
/// when), and how to stop it.
struct Node {
    label: &'static str,
    seen: mpsc::UnboundedReceiver<(f64, Instant)>,
    cancel: CancellationToken,
    _ingest: ingest::Ingest,
    _dir: tempfile::TempDir,
}

fn meter_device(topic: &str) -> Res<Vec<DeviceConfig>> {
    #[derive(serde::Deserialize)]
    struct File {
        device: Vec<DeviceConfig>,
    }
    let text = format!(
        r#"
[[device]]
id = "grid-meter"
role = "grid"
profile = "shelly-gen2-em"
mqtt = {{ topic = "{topic}" }}
"#
    );
    Ok(toml::from_str::<File>(&text)?.device)
}

async fn start_node(
    label: &'static str,
    schedule: Schedule,
    endpoint: BrokerEndpoint,
    topic: &str,
) -> Res<Node> {
    let dir = tempfile::tempdir()?;
    let devices = meter_device(topic)?;
    let workers = ingest::resolve_devices(&devices)?;
    let store = Arc::new(LiveStore::new(Duration::from_secs(15 * 60)));
    let metrics = Arc::new(IngestMetrics::default());
    let (wal, replayed) = ingest::open_wal(&dir.path().join("wal"), &store, None)?;
    let cancel = CancellationToken::new();
    let client_id = format!("bench-wall-{}-{label}", std::process::id());
    let running = ingest::Ingest::start(
        workers,
        Some(MqttClientOptions {
            endpoint,
            client_id,
            username: None,
            password: None,
        }),
        store.clone(),
        metrics.clone(),
        ingest::Durability {
            wal: Some(wal),
            recovered: replayed.digests,
            history: None,
        },
        cancel.clone(),
    );
    let journal = Arc::new(ledger::Journal::open_in_memory()?);
    let engine = Engine::new(
        store,
        metrics.clone(),
        journal.clone(),
        &devices,
        &[],
        EngineOptions {
            schedule,
            ..EngineOptions::default()
        },
    )
    .await?;
    let (tx, rx) = watch::channel(Arc::new(empty_snapshot(chrono::Utc::now())));
    let replan = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(engine.run(tx, PERIOD, replan.clone(), cancel.clone()));
    let visibility = Arc::new(query::visibility::Visibility::new(&devices, &[]));
    let (public, feed) = query::visibility::public_feed(rx.clone(), visibility.clone());
    tokio::spawn(feed);
    let state = web::AppState {
        live: public,
        live_full: rx,
        visibility,
        metrics,
        site: dashboards::SiteInfo {
            name: "Bench".into(),
            default_lang: dashboards::Lang::En,
            timezone: chrono_tz::Europe::Paris,
        },
        journal,
        replan,
        login_limiter: Arc::new(web::LoginLimiter::default()),
        queries: None,
        services: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(web::serve(listener, state, cancel.clone()));
    Ok(Node {
        label,
        seen: watch_events(addr),
        cancel,
        _ingest: running,
        _dir: dir,
    })
}

/// Reads `/events` as a wall does; sends the meter's value of each event.
fn watch_events(addr: SocketAddr) -> mpsc::UnboundedReceiver<(f64, Instant)> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let url = format!("http://{addr}/events");
        let Ok(mut response) = reqwest::get(&url).await else {
            eprintln!("GET {url} failed");
            return;
        };
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            let now = Instant::now();
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                for data in block.lines().filter_map(|l| l.strip_prefix("data:")) {
                    let Ok(snapshot) = serde_json::from_str::<serde_json::Value>(data.trim())
                    else {
                        continue;
                    };
                    let power = snapshot["devices"].as_array().and_then(|d| {
                        d.iter()
                            .find(|d| d["id"] == "grid-meter")
                            .and_then(|d| d["power_w"].as_f64())
                    });
                    if let Some(power) = power
                        && tx.send((power, now)).is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// The meter: one client publishing to each node's topic.
fn meter(host: &str, port: u16) -> AsyncClient {
    let mut opts = MqttOptions::new(format!("bench-meter-{}", std::process::id()), host, port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(opts, 1024);
    tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    client
}

async fn publish(client: &AsyncClient, topic: &str, power_w: f64) -> Res<()> {
    client
        .publish(
            format!("{topic}/status/em:0"),
            QoS::AtLeastOnce,
            false,
            sensors::sim::shelly::gen2_em_status(power_w, 230.0),
        )
        .await?;
    Ok(())
}

/// Publishes a first value until every node shows it.
async fn warm_up(client: &AsyncClient, topics: &[String], nodes: &mut [Node]) -> Res<()> {
    let value = 500.0;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut ready = vec![false; nodes.len()];
    while !ready.iter().all(|r| *r) {
        if Instant::now() > deadline {
            return Err("the nodes did not show the meter within 30 s".into());
        }
        for t in topics {
            publish(client, t, value).await?;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        for (node, ready) in nodes.iter_mut().zip(&mut ready) {
            while let Ok((v, _)) = node.seen.try_recv() {
                *ready |= v == value;
            }
        }
    }
    Ok(())
}

/// Nearest-rank percentile of sorted `values`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Figures {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    never_shown: usize,
    not_caught_up: usize,
}

/// Latencies of `sent` (value, publish instant; values rise) from what a node showed.
fn figures(sent: &[(f64, Instant)], seen: &[(f64, Instant)]) -> Figures {
    let mut latencies = Vec::new();
    let mut never_shown = 0;
    let mut not_caught_up = 0;
    for &(value, at) in sent {
        if !seen.iter().any(|&(v, _)| v == value) {
            never_shown += 1;
        }
        match seen.iter().find(|&&(v, t)| v >= value && t >= at) {
            Some(&(_, t)) => latencies.push(t.duration_since(at).as_secs_f64() * 1000.0),
            None => not_caught_up += 1,
        }
    }
    latencies.sort_by(f64::total_cmp);
    Figures {
        p50: percentile(&latencies, 50.0),
        p90: percentile(&latencies, 90.0),
        p99: percentile(&latencies, 99.0),
        max: latencies.last().copied().unwrap_or(f64::NAN),
        never_shown,
        not_caught_up,
    }
}

async fn run_broker(name: &str, endpoint: BrokerEndpoint, samples: usize) -> Res<()> {
    let (host, port) = endpoint.host_port();
    let prefix = format!("bench-wall-{}", std::process::id());
    let topics = vec![format!("{prefix}-tick"), format!("{prefix}-event")];
    let mut nodes = vec![
        start_node(
            "fixed 1 s tick",
            Schedule::FixedTick,
            endpoint.clone(),
            &topics[0],
        )
        .await?,
        start_node("event-driven", Schedule::OnChange, endpoint, &topics[1]).await?,
    ];
    let client = meter(&host, port);
    warm_up(&client, &topics, &mut nodes).await?;

    let mut rng = rand::rng();
    let mut sent = Vec::with_capacity(samples);
    let mut seen: Vec<Vec<(f64, Instant)>> = vec![Vec::new(); nodes.len()];
    for i in 0..samples {
        let value = 1000.0 + i as f64;
        let at = Instant::now();
        for t in &topics {
            publish(&client, t, value).await?;
        }
        sent.push((value, at));
        tokio::time::sleep(Duration::from_millis(rng.random_range(GAP_MS.0..=GAP_MS.1))).await;
        for (node, seen) in nodes.iter_mut().zip(&mut seen) {
            while let Ok(s) = node.seen.try_recv() {
                seen.push(s);
            }
        }
    }
    tokio::time::sleep(PERIOD * 2).await;
    println!(
        "\nmeter -> wall, {name}: {samples} values at random gaps of {}-{} ms, latency in ms",
        GAP_MS.0, GAP_MS.1
    );
    println!(
        "{:<16} {:>8} {:>8} {:>8} {:>8}  {:>12}",
        "evaluation", "p50", "p90", "p99", "max", "never shown"
    );
    let mut p99s = Vec::new();
    for (node, seen) in nodes.iter_mut().zip(&mut seen) {
        while let Ok(s) = node.seen.try_recv() {
            seen.push(s);
        }
        let f = figures(&sent, seen);
        println!(
            "{:<16} {:>8.1} {:>8.1} {:>8.1} {:>8.1}  {:>8} / {samples}{}",
            node.label,
            f.p50,
            f.p90,
            f.p99,
            f.max,
            f.never_shown,
            if f.not_caught_up > 0 {
                format!(" ({} not caught up)", f.not_caught_up)
            } else {
                String::new()
            }
        );
        p99s.push(f.p99);
        node.cancel.cancel();
    }
    println!(
        "p99 ratio fixed tick / event-driven: {:.1}x",
        p99s[0] / p99s[1]
    );
    Ok(())
}

fn main() -> Res<()> {
    let mut samples = 200;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--samples"
            && let Some(n) = args.next()
        {
            samples = n.parse()?;
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let addr = ingest::broker::free_local_addr()?;
        ingest::broker::start_embedded(addr)?;
        run_broker("embedded broker", BrokerEndpoint::Embedded(addr), samples).await?;
        if testkit::net::tcp_open(MOSQUITTO) {
            let endpoint = BrokerEndpoint::External {
                host: "127.0.0.1".into(),
                port: 1883,
            };
            run_broker("Mosquitto", endpoint, samples).await?;
        } else {
            println!("\nskipped: mosquitto on {MOSQUITTO} not available");
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    })?;
    // The brokers' and the nodes' threads end with the process.
    std::process::exit(0)
}
