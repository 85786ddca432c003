//! MQTT ingest throughput: the node's MQTT worker (decode, sign, batch, live store)
//! against a bare rumqttc client that only counts messages, draining the same broker
//! in the same run; and the node with its write-ahead log on (every message made
//! durable before it is acknowledged) against off. Reports the rates and ratios.
//!
//!     cargo bench -p ingest --bench mqtt_ingest [-- MESSAGES]
//!
//! Runs on the embedded broker, and on Mosquitto at 127.0.0.1:1883 when it is up.
//! When `mosquitto_sub` (Debian's `mosquitto-clients`) is installed, the Eclipse
//! Mosquitto C client drains the same messages in each round too, as the reference
//! the node's durable ingest is measured against.
//!
//!     cargo bench -p ingest --bench mqtt_ingest -- encryption [MESSAGES]
//!
//! instead compares durable ingest with the write-ahead log's records sealed
//! (an encrypted node, DESIGN.md §10) against clear records, rounds alternating.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ingest::config::BrokerEndpoint;
use ingest::metrics::IngestMetrics;
use ingest::mqtt::MqttClientOptions;
use ingest::store::LiveStore;
use ingest::{Ingest, resolve_devices};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use sensors::config::{DeviceConfig, MqttDeviceConfig};
use sensors::model::Role;
use tokio_util::sync::CancellationToken;

const DEVICES: usize = 10;
/// The embedded broker's backlog for the bench's bursts, per subscription (KiB).
const BURST_BACKLOG_KIB: u32 = 160 * 1024;

/// A fresh number per call, so that every round has its own client ids and topics.
fn round() -> usize {
    static ROUND: AtomicUsize = AtomicUsize::new(0);
    ROUND.fetch_add(1, Ordering::Relaxed)
}

fn devices(prefix: &str) -> Vec<DeviceConfig> {
    (0..DEVICES)
        .map(|i| DeviceConfig {
            id: format!("meter-{i}"),
            name: None,
            role: Role::Load,
            profile: "shelly-gen2-em".into(),
            modbus: None,
            serial: None,
            mqtt: Some(MqttDeviceConfig {
                topic: format!("{prefix}/m{i}"),
                fields: Default::default(),
                username: None,
                password: None,
            }),
            power_sign: None,
            max_power_w: None,
            // The bench sends as fast as it can: no rate limit.
            max_messages_per_s: Some(1e12),
            sunspec_model: None,
            registers: Vec::new(),
            poll_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        })
        .collect()
}

/// Publishes `n` Shelly Pro 3EM status messages spread over the devices, QoS 1.
async fn publish(host: &str, port: u16, prefix: &str, n: usize) {
    let mut opts = MqttOptions::new(format!("bench-pub-{prefix}"), host, port);
    opts.set_inflight(200);
    let (client, mut eventloop) = AsyncClient::new(opts, 1000);
    let driver = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Disconnect)) | Err(_) => break,
                _ => {}
            }
        }
    });
    for i in 0..n {
        let payload = sensors::sim::shelly::gen2_em_status(1000.0 + i as f64, 230.0);
        client
            .publish(
                format!("{prefix}/m{}/status/em:0", i % DEVICES),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
            .expect("publish");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), driver).await;
}

/// Messages per second through the node's MQTT worker into the live store, and how
/// many of the `n` published arrived.
async fn node_rate(host: &str, port: u16, n: usize, with_wal: bool) -> (f64, usize) {
    node_rate_sealed(host, port, n, with_wal, false).await
}

/// [`node_rate`], the log's records sealed when `sealed`.
async fn node_rate_sealed(
    host: &str,
    port: u16,
    n: usize,
    with_wal: bool,
    sealed: bool,
) -> (f64, usize) {
    let prefix = format!("bench-node-{}-{}", std::process::id(), round());
    let wal_dir = tempfile::tempdir().expect("temp dir");
    let workers = resolve_devices(&devices(&prefix)).expect("devices");
    let store = Arc::new(LiveStore::new(Duration::from_secs(3600)));
    let metrics = Arc::new(IngestMetrics::default());
    let cancel = CancellationToken::new();
    let opts = MqttClientOptions {
        endpoint: BrokerEndpoint::External {
            host: host.to_string(),
            port,
        },
        client_id: format!("{prefix}-sub"),
        username: None,
        password: None,
    };
    let durability = if with_wal {
        let sealer = sealed.then(|| {
            let key = keyring::DataKey::generate().expect("key");
            Arc::new(keyring::RecordSealer::new(
                &key.subkey(keyring::Purpose::Wal),
            ))
        });
        let (wal, _) =
            ingest::open_wal_sealed(wal_dir.path(), &store, None, sealer).expect("write-ahead log");
        ingest::Durability {
            wal: Some(wal),
            ..Default::default()
        }
    } else {
        ingest::Durability::default()
    };
    let ingest = Ingest::start(
        workers,
        Some(opts),
        store.clone(),
        metrics.clone(),
        durability,
        cancel.clone(),
    );
    // Connected and subscribed: a probe reaches the node (a fixed pause lost the first
    // messages of a round when the subscription came late on a busy machine).
    let probe_deadline = Instant::now() + Duration::from_secs(10);
    while metrics.mqtt_messages() == 0 && Instant::now() < probe_deadline {
        publish(host, port, &prefix, 1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (base_messages, base_rows) = (metrics.mqtt_messages() as usize, store.rows());
    let started = Instant::now();
    let publisher = tokio::spawn({
        let host = host.to_string();
        let prefix = prefix.clone();
        async move { publish(&host, port, &prefix, n).await }
    });
    // Done when every message's readings are in the store (not merely received).
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut expected_rows = None;
    // A broker that dropped messages never sends them: the rate is counted up to
    // the last arrival, and the round ends after 3 s without one.
    let (mut seen, mut last_arrival) = (metrics.mqtt_messages(), Instant::now());
    loop {
        if metrics.mqtt_messages() != seen {
            seen = metrics.mqtt_messages();
            last_arrival = Instant::now();
        } else if last_arrival.elapsed() > Duration::from_secs(3) {
            eprintln!(
                "node: {} of {n} messages, none for 3 s",
                metrics.mqtt_messages() as usize - base_messages
            );
            break;
        }
        if metrics.mqtt_messages() as usize >= base_messages + n {
            // Each message decodes to the same number of readings.
            let per_message = (metrics.readings_ingested() as usize).max(1)
                / (metrics.mqtt_messages() as usize).max(1);
            let rows = *expected_rows.get_or_insert(base_rows + n * per_message.max(1));
            if store.rows() >= rows {
                break;
            }
        }
        if Instant::now() > deadline {
            eprintln!(
                "node: only {} of {n} messages after 120 s",
                metrics.mqtt_messages() as usize - base_messages
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = if store.rows() >= expected_rows.unwrap_or(usize::MAX) {
        started.elapsed()
    } else {
        last_arrival.duration_since(started)
    };
    let _ = publisher.await;
    cancel.cancel();
    ingest.join().await;
    let got = (metrics.mqtt_messages() as usize - base_messages).min(n);
    (got as f64 / elapsed.as_secs_f64(), got)
}

/// Messages per second for a bare client that only counts them, and how many of the
/// `n` published arrived.
async fn bare_rate(host: &str, port: u16, n: usize) -> (f64, usize) {
    let prefix = format!("bench-bare-{}-{}", std::process::id(), round());
    let mut opts = MqttOptions::new(format!("{prefix}-sub"), host, port);
    opts.set_keep_alive(Duration::from_secs(15));
    let (client, mut eventloop) = AsyncClient::new(opts, 1000);
    let got = Arc::new(AtomicUsize::new(0));
    let received = got.clone();
    let counter = tokio::spawn(async move {
        while received.load(Ordering::Relaxed) < n {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(_))) => {
                    received.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("bare client: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    client
        .subscribe(format!("{prefix}/+/status/em:0"), QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let publisher = tokio::spawn({
        let host = host.to_string();
        async move { publish(&host, port, &prefix, n).await }
    });
    let abort = counter.abort_handle();
    if tokio::time::timeout(Duration::from_secs(120), counter)
        .await
        .is_err()
    {
        abort.abort();
        eprintln!(
            "bare client: only {} of {n} messages after 120 s",
            got.load(Ordering::Relaxed)
        );
    }
    let elapsed = started.elapsed();
    let _ = publisher.await;
    let got = got.load(Ordering::Relaxed);
    (got as f64 / elapsed.as_secs_f64(), got)
}

/// Messages per second for `mosquitto_sub`, the Eclipse Mosquitto project's C
/// client, subscribed at QoS 1 and printing only each message's topic, and how many
/// of the `n` published arrived; `None` when `mosquitto_sub` is not installed.
async fn mosquitto_sub_rate(host: &str, port: u16, n: usize) -> Option<(f64, usize)> {
    use std::io::BufRead;
    let prefix = format!("bench-mosq-{}-{}", std::process::id(), round());
    let mut child = std::process::Command::new("mosquitto_sub")
        .args(["-h", host, "-p", &port.to_string(), "-q", "1", "-F", "%t"])
        .args([
            "-i",
            &format!("{prefix}-sub"),
            "-t",
            &format!("{prefix}/+/status/em:0"),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let stdout = child.stdout.take()?;
    let got = Arc::new(AtomicUsize::new(0));
    let probes = Arc::new(AtomicUsize::new(0));
    let reader = std::thread::spawn({
        let (got, probes, probe_topic) = (got.clone(), probes.clone(), format!("{prefix}/probe/"));
        move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with(&probe_topic) {
                    probes.fetch_add(1, Ordering::Relaxed);
                } else if got.fetch_add(1, Ordering::Relaxed) + 1 >= n {
                    break;
                }
            }
        }
    });
    // Subscribed: a probe on a topic of its own reaches it.
    let probe_deadline = Instant::now() + Duration::from_secs(10);
    while probes.load(Ordering::Relaxed) == 0 && Instant::now() < probe_deadline {
        publish_one(host, port, &format!("{prefix}/probe/status/em:0")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    let publisher = tokio::spawn({
        let host = host.to_string();
        let prefix = prefix.clone();
        async move { publish(&host, port, &prefix, n).await }
    });
    let (mut seen, mut last_arrival) = (0, Instant::now());
    while got.load(Ordering::Relaxed) < n {
        let now = got.load(Ordering::Relaxed);
        if now != seen {
            (seen, last_arrival) = (now, Instant::now());
        } else if last_arrival.elapsed() > Duration::from_secs(3) {
            eprintln!("mosquitto_sub: {now} of {n} messages, none for 3 s");
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let got_all = got.load(Ordering::Relaxed);
    let elapsed = if got_all >= n {
        started.elapsed()
    } else {
        last_arrival.duration_since(started)
    };
    let _ = publisher.await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    Some((
        got_all.min(n) as f64 / elapsed.as_secs_f64(),
        got_all.min(n),
    ))
}

/// One QoS 1 message on `topic`, from a client of its own.
async fn publish_one(host: &str, port: u16, topic: &str) {
    let mut opts = MqttOptions::new(format!("bench-probe-{}", round()), host, port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(opts, 10);
    let payload = sensors::sim::shelly::gen2_em_status(1.0, 230.0);
    let _ = client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await;
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) | Err(_) => break,
                _ => {}
            }
        }
    })
    .await;
}

async fn compare(name: &str, addr: SocketAddr, n: usize, rounds: usize) {
    let host = addr.ip().to_string();
    let mut bare = Vec::new();
    let mut node = Vec::new();
    let mut durable = Vec::new();
    let mut mosq = Vec::new();
    let (mut bare_lost, mut node_lost, mut durable_lost, mut mosq_lost) = (0, 0, 0, 0);
    for _ in 0..rounds {
        // Alternate so that drift on a shared machine hits all alike.
        if let Some((rate, got)) = mosquitto_sub_rate(&host, addr.port(), n).await {
            mosq.push(rate);
            mosq_lost += n - got;
        }
        let (rate, got) = bare_rate(&host, addr.port(), n).await;
        bare.push(rate);
        bare_lost += n - got;
        let (rate, got) = node_rate(&host, addr.port(), n, false).await;
        node.push(rate);
        node_lost += n - got;
        let (rate, got) = node_rate(&host, addr.port(), n, true).await;
        durable.push(rate);
        durable_lost += n - got;
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (b, nd, d) = (median(&mut bare), median(&mut node), median(&mut durable));
    println!(
        "{name:<22} {n:>7} msgs  bare client {b:>9.0} msg/s   node, WAL off {nd:>9.0} msg/s (ratio {:.2})   node, WAL on {d:>9.0} msg/s (ratio to bare {:.2}, to WAL off {:.2})",
        nd / b,
        d / b,
        d / nd
    );
    if mosq.is_empty() {
        println!("{:<22} skipped: mosquitto_sub not available", "");
    } else {
        let m = median(&mut mosq);
        println!(
            "{:<22} mosquitto_sub {m:>9.0} msg/s   node WAL on / mosquitto_sub {:.2}   node WAL off / mosquitto_sub {:.2}   rumqttc bare / mosquitto_sub {:.2}",
            "",
            d / m,
            nd / m,
            b / m
        );
    }
    if bare_lost + node_lost + durable_lost + mosq_lost > 0 {
        println!(
            "{:<22} not delivered over {rounds} rounds: mosquitto_sub {mosq_lost}, bare client {bare_lost}, node WAL off {node_lost}, node WAL on {durable_lost}",
            ""
        );
    }
}

/// A Mosquitto started for the bench on a free port, with no limit on the messages
/// it queues for a subscriber; stopped when the guard drops.
fn private_mosquitto() -> Option<(SocketAddr, MosquittoGuard)> {
    let binary = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let addr = ingest::broker::free_local_addr().ok()?;
    let dir = tempfile::tempdir().ok()?;
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {} {}\nallow_anonymous true\nmax_queued_messages 0\npersistence false\n",
            addr.port(),
            addr.ip()
        ),
    )
    .ok()?;
    let child = std::process::Command::new(binary)
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let guard = MosquittoGuard { child, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((addr, guard))
}

struct MosquittoGuard {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for MosquittoGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Durable ingest with sealed against clear log records, `rounds` of each,
/// alternating; prints the medians and their ratio.
async fn compare_encryption(name: &str, addr: SocketAddr, n: usize, rounds: usize) {
    let host = addr.ip().to_string();
    let (mut clear, mut sealed) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (rate, got) = node_rate_sealed(&host, addr.port(), n, true, false).await;
        if got == n {
            clear.push(rate);
        }
        let (rate, got) = node_rate_sealed(&host, addr.port(), n, true, true).await;
        if got == n {
            sealed.push(rate);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let (c, s) = (median(&mut clear), median(&mut sealed));
    println!(
        "{name:<32} {n} messages, {rounds} rounds: WAL clear {c:>8.0} msg/s, WAL sealed {s:>8.0} msg/s, sealed/clear {:.3} (complete rounds: {} and {})",
        s / c,
        clear.len(),
        sealed.len()
    );
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if std::env::args().any(|a| a == "encryption") {
        rt.block_on(async {
            let embedded = ingest::broker::free_local_addr().expect("port");
            ingest::broker::start_embedded_with(embedded, None, BURST_BACKLOG_KIB)
                .expect("embedded broker");
            compare_encryption("embedded (rumqttd)", embedded, n, 5).await;
            if let Some((addr, _broker)) = private_mosquitto() {
                compare_encryption("mosquitto (own, queue unbounded)", addr, n, 5).await;
            }
        });
        return;
    }
    rt.block_on(async {
        let embedded = ingest::broker::free_local_addr().expect("port");
        // A burst of `n` messages on 10 subscriptions: the backlog must hold what
        // a subscriber may fall behind by (as the private Mosquitto's unbounded
        // queue below), else every client loses the oldest.
        ingest::broker::start_embedded_with(embedded, None, BURST_BACKLOG_KIB)
            .expect("embedded broker");
        compare("embedded (rumqttd)", embedded, n, 3).await;
        // A Mosquitto of the bench's own whose queue per subscriber is unbounded,
        // as a site's broker for the node should be: with the default queue (1000
        // messages), a burst of this size is partly dropped by the broker for every
        // subscriber, even `mosquitto_sub`, and the rates compare what each was sent.
        match private_mosquitto() {
            Some((addr, _broker)) => {
                compare("mosquitto (own, queue unbounded)", addr, n, 3).await;
            }
            None => println!("skipped: mosquitto not available (no mosquitto binary to start)"),
        }
        let mosquitto: SocketAddr = "127.0.0.1:1883".parse().expect("addr");
        if std::net::TcpStream::connect_timeout(&mosquitto, Duration::from_millis(300)).is_ok() {
            compare("mosquitto 127.0.0.1:1883", mosquitto, n, 3).await;
        } else {
            println!("skipped: mosquitto not available on 127.0.0.1:1883");
        }
    });
}
