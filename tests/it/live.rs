//! The wall follows the meters: a value a simulated Shelly Gen2 meter publishes
//! reaches `/events` on its own evaluation, through the embedded broker and
//! through Mosquitto, and a flood of readings is evaluated at most twenty times a
//! second (`communalia_evaluations_total`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, MqttOptions, QoS};
use sensors::sim::shelly;

use crate::support::*;

const MOSQUITTO: &str = "127.0.0.1:1883";

/// A site of one grid meter, a Shelly Pro 3EM on `<prefix>-grid`, allowed far
/// more messages than a real one sends (the flood).
fn meter_config(dir: &std::path::Path, broker: &str, prefix: &str) -> String {
    format!(
        r#"
[site]
name = "Live site"
language = "en"
timezone = "Europe/Paris"
latitude = 45.76
longitude = 4.84

[storage]
dir = "{dir}"

[mqtt]
{broker}

[[device]]
id = "grid-meter"
role = "grid"
profile = "shelly-gen2-em"
mqtt = {{ topic = "{prefix}-grid" }}
max_messages_per_s = 10000
"#,
        dir = dir.display()
    )
}

/// The meter: an MQTT client publishing `em:0` status messages.
struct Meter {
    client: AsyncClient,
    topic: String,
    _loop: tokio::task::JoinHandle<()>,
}

impl Meter {
    fn connect(host: &str, port: u16, prefix: &str) -> Meter {
        let mut opts = MqttOptions::new(
            format!("it-live-meter-{}-{prefix}", std::process::id()),
            host,
            port,
        );
        opts.set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = AsyncClient::new(opts, 4096);
        let driver = tokio::spawn(async move {
            loop {
                if eventloop.poll().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        Meter {
            client,
            topic: format!("{prefix}-grid/status/em:0"),
            _loop: driver,
        }
    }

    async fn publish(&self, power_w: f64) {
        self.client
            .publish(
                self.topic.clone(),
                QoS::AtLeastOnce,
                false,
                shelly::gen2_em_status(power_w, 230.0),
            )
            .await
            .unwrap_or_else(|e| panic!("publish {power_w} W: {e}"));
    }
}

/// Every `power_w` of the meter that `/events` carried, as each event arrives.
fn watch_events(base: &str) -> tokio::sync::mpsc::UnboundedReceiver<f64> {
    let url = format!("{base}/events");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut response = reqwest::get(&url)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(response.status(), 200);
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                for line in block.lines() {
                    let Some(data) = line.strip_prefix("data:") else {
                        continue;
                    };
                    let Ok(snapshot) = serde_json::from_str::<serde_json::Value>(data.trim())
                    else {
                        continue;
                    };
                    let power = snapshot["devices"].as_array().and_then(|devices| {
                        devices
                            .iter()
                            .find(|d| d["id"] == "grid-meter")
                            .and_then(|d| d["power_w"].as_f64())
                    });
                    if let Some(power) = power
                        && tx.send(power).is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// Waits until `/events` carries `power_w`, re-publishing it until then (the
/// node subscribes a moment after it announces its address).
async fn wait_connected(meter: &Meter, events: &mut tokio::sync::mpsc::UnboundedReceiver<f64>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = 777.0;
    while Instant::now() < deadline {
        meter.publish(first).await;
        let until = tokio::time::Instant::now() + Duration::from_millis(500);
        while let Ok(Some(v)) = tokio::time::timeout_at(until, events.recv()).await {
            if v == first {
                return;
            }
        }
    }
    panic!("the meter's first value never reached /events");
}

/// A small generator of the test's random gaps, seeded from the clock.
struct Lcg(u64);

impl Lcg {
    fn new() -> Lcg {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Lcg(nanos | 1)
    }

    /// A number in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        lo + (self.0 >> 33) % (hi - lo + 1)
    }
}

/// 30 values at random gaps of 100 to 300 ms: each reaches `/events`.
async fn every_value_reaches_the_wall(broker: &str, host: &str, port: u16, prefix: &str) {
    let _alone = crate::support::ONE_TIMED_NODE.lock().await;
    let dir = TempDir::new("live");
    let path = dir.path().join("site.toml");
    std::fs::write(&path, meter_config(dir.path(), broker, prefix)).expect("write config");
    let node = spawn(&[
        "run",
        "--config",
        &path.to_string_lossy(),
        "--bind",
        "127.0.0.1:0",
    ]);
    let meter = Meter::connect(host, port, prefix);
    let mut events = watch_events(&node.base);
    wait_connected(&meter, &mut events).await;

    let mut rng = Lcg::new();
    let sent: Vec<f64> = (0..30).map(|i| 1000.0 + 37.0 * f64::from(i)).collect();
    let mut seen = HashSet::new();
    for &value in &sent {
        meter.publish(value).await;
        let gap = Duration::from_millis(rng.between(100, 300));
        let until = tokio::time::Instant::now() + gap;
        while let Ok(Some(v)) = tokio::time::timeout_at(until, events.recv()).await {
            seen.insert(v.to_bits());
        }
    }
    // The last ones may still be on their way.
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while sent.iter().any(|v| !seen.contains(&v.to_bits())) {
        match tokio::time::timeout_at(until, events.recv()).await {
            Ok(Some(v)) => {
                seen.insert(v.to_bits());
            }
            _ => break,
        }
    }
    let missing: Vec<f64> = sent
        .iter()
        .copied()
        .filter(|v| !seen.contains(&v.to_bits()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} values never reached /events: {missing:?}",
        missing.len(),
        sent.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_meter_value_reaches_the_wall_through_the_embedded_broker() {
    let port = free_port();
    every_value_reaches_the_wall(
        &format!("broker = \"embedded\"\nembedded_bind = \"127.0.0.1:{port}\""),
        "127.0.0.1",
        port,
        "live",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_meter_value_reaches_the_wall_through_mosquitto() {
    if !tcp_open(MOSQUITTO) {
        return skip("mosquitto on 127.0.0.1:1883");
    }
    // A topic prefix of our own: the shared broker may carry other traffic.
    let prefix = format!("communalia-it-live-{}", std::process::id());
    every_value_reaches_the_wall(
        "broker = \"mqtt://127.0.0.1:1883\"",
        "127.0.0.1",
        1883,
        &prefix,
    )
    .await;
}

/// `communalia_evaluations_total` by trigger, from `/metrics`.
async fn evaluations(base: &str) -> (f64, f64) {
    let text = get_text(&format!("{base}/metrics")).await;
    let sample = |trigger: &str| {
        let prefix = format!("communalia_evaluations_total{{trigger=\"{trigger}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {prefix}in /metrics:\n{text}"))
    };
    let all = ["reading", "heartbeat", "plan"].map(sample);
    (all[0], all.iter().sum())
}

/// Thousands of readings in two seconds: the node evaluates on them (not once a
/// second), and never more than twenty times a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_readings_is_evaluated_at_most_twenty_times_a_second() {
    let _alone = crate::support::ONE_TIMED_NODE.lock().await;
    let port = free_port();
    let dir = TempDir::new("live-flood");
    let path = dir.path().join("site.toml");
    let broker = format!("broker = \"embedded\"\nembedded_bind = \"127.0.0.1:{port}\"");
    std::fs::write(&path, meter_config(dir.path(), &broker, "flood")).expect("write config");
    let node = spawn(&[
        "run",
        "--config",
        &path.to_string_lossy(),
        "--bind",
        "127.0.0.1:0",
    ]);
    let meter = Meter::connect("127.0.0.1", port, "flood");
    let mut events = watch_events(&node.base);
    wait_connected(&meter, &mut events).await;

    let started = Instant::now();
    let (reading_before, all_before) = evaluations(&node.base).await;
    let mut value = 2000.0;
    while started.elapsed() < Duration::from_secs(2) {
        for _ in 0..5 {
            value += 1.0;
            meter.publish(value).await;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (reading_after, all_after) = evaluations(&node.base).await;
    let seconds = started.elapsed().as_secs_f64();

    let by_readings = reading_after - reading_before;
    let all = all_after - all_before;
    let published = value - 2000.0;
    // One evaluation per 50 ms, one more for the instant the window opened on.
    assert!(
        by_readings <= (seconds * 20.0).ceil() + 1.0,
        "{by_readings} evaluations on readings in {seconds:.2} s ({published} messages)"
    );
    // A heartbeat only comes after a second without evaluations.
    assert!(
        all <= (seconds * 20.0).ceil() + 2.0,
        "{all} evaluations in {seconds:.2} s"
    );
    assert!(
        by_readings >= 10.0,
        "only {by_readings} evaluations on {published} readings in {seconds:.2} s"
    );
}
