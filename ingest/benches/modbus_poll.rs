//! Modbus polling: cycle time for 1, 10 and 100 simulated SunSpec devices (models
//! 1 + 103 + 203, each its own Modbus TCP server on loopback, each its own
//! connection and worker), and requests per cycle against the fewest possible.
//!
//!     cargo bench -p ingest --bench modbus_poll [-- SECONDS]
//!
//! The workers poll back to back (a 1 ms interval), so the figures are capacity:
//! how long one round over every device takes when nothing waits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ingest::metrics::IngestMetrics;
use ingest::modbus::{Link, ModbusDevice, ModbusSource, spawn_modbus_links};
use sensors::modbus::MAX_READ_REGISTERS;
use sensors::model::Role;
use sensors::sim::sunspec::{build_map, write_common, write_model};
use sensors::sim::{RegisterImage, SimControl, serve_modbus_gateway};
use sensors::sunspec::{self, SunSpecMap};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn image() -> (RegisterImage, SunSpecMap) {
    let mut image = RegisterImage::new();
    let h = build_map(&mut image, 40000, &[(1, 66), (103, 50), (203, 105)]);
    write_common(&mut image, &h[0], "Bench", "Inverter", "B-1");
    let _ = write_model(
        &mut image,
        &h[1],
        &[
            ("W", 4200.0),
            ("WH", 1.2e7),
            ("PhVphA", 230.0),
            ("Hz", 50.0),
            ("St", 4.0),
        ],
    );
    let _ = write_model(
        &mut image,
        &h[2],
        &[("W", -1800.0), ("TotWhImp", 3.4e6), ("TotWhExp", 5.6e6)],
    );
    (
        image,
        SunSpecMap {
            base: 40000,
            models: h,
        },
    )
}

/// The fewest requests that read `map`'s metric points and scale factors, by
/// dynamic programming over the ranges (independently of the planner).
fn minimum_requests(map: &SunSpecMap) -> usize {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for m in map.models.iter().filter(|m| m.id != 1) {
        let Some(def) = sunspec::model_definition(m.id) else {
            continue;
        };
        for p in def.points.iter().filter(|p| p.metric.is_some()) {
            let at = u32::from(m.address) + u32::from(p.offset);
            ranges.push((at, at + u32::from(p.words())));
            if let Some(sf) = p.sf.as_deref().and_then(|n| def.point(n)) {
                let at = u32::from(m.address) + u32::from(sf.offset);
                ranges.push((at, at + 1));
            }
        }
    }
    ranges.sort_unstable();
    let max = u32::from(MAX_READ_REGISTERS);
    let mut best = vec![usize::MAX; ranges.len() + 1];
    best[0] = 0;
    for j in 1..=ranges.len() {
        let end = ranges[..j].iter().map(|r| r.1).max().unwrap_or(0);
        for i in 0..j {
            let window_end = ranges[i..j].iter().map(|r| r.1).max().unwrap_or(end);
            if window_end - ranges[i].0 <= max && best[i] != usize::MAX {
                best[j] = best[j].min(best[i] + 1);
            }
        }
    }
    best[ranges.len()]
}

struct Round {
    devices: usize,
    cycle: Duration,
    latency_p50: Duration,
    latency_max: Duration,
    polls_per_s: f64,
    transactions: u32,
    minimum: usize,
    errors: u32,
}

async fn round(n: usize, seconds: f64) -> Round {
    let (img, map) = image();
    let minimum = minimum_requests(&map);
    let mut servers = Vec::new();
    let mut devices = Vec::new();
    for i in 0..n {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        servers.push(tokio::spawn(serve_modbus_gateway(
            listener,
            vec![(1, img.clone().shared())],
            SimControl::new(),
        )));
        devices.push(ModbusDevice {
            id: format!("inv-{i}").into(),
            link: Link::Tcp {
                host: "127.0.0.1".into(),
                port: addr.port(),
            },
            unit: 1,
            source: ModbusSource::SunSpec { model: None },
            poll_interval: Duration::from_millis(1),
            timeout: Duration::from_secs(2),
            role: Role::Pv,
            power_sign: None,
            limits: ingest::plausible::Limits::polled(Role::Pv),
        });
    }
    let metrics = Arc::new(IngestMetrics::default());
    let (tx, mut rx) = tokio::sync::mpsc::channel(65_536);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let cancel = CancellationToken::new();
    let handles = spawn_modbus_links(devices, tx, metrics.clone(), cancel.clone());
    // Discovery first: wait until every device has been read once.
    let deadline = Instant::now() + Duration::from_secs(60);
    while metrics.health().values().any(|h| h.last_success.is_none()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = metrics.health();
    let t0 = Instant::now();
    let mut latencies = Vec::new();
    while t0.elapsed().as_secs_f64() < seconds {
        tokio::time::sleep(Duration::from_millis(50)).await;
        latencies.extend(metrics.health().values().filter_map(|h| h.last_latency));
    }
    let elapsed = t0.elapsed();
    let after = metrics.health();
    cancel.cancel();
    for h in handles {
        let _ = h.await;
    }
    let _ = drain.await;
    for s in servers {
        s.abort();
    }
    let polls: Vec<u64> = after
        .iter()
        .map(|(id, h)| h.polls - before.get(id).map_or(0, |b| b.polls))
        .collect();
    let slowest = polls.iter().copied().min().unwrap_or(0).max(1);
    latencies.sort();
    Round {
        devices: n,
        cycle: elapsed / slowest as u32,
        latency_p50: latencies
            .get(latencies.len() / 2)
            .copied()
            .unwrap_or_default(),
        latency_max: latencies.last().copied().unwrap_or_default(),
        polls_per_s: polls.iter().sum::<u64>() as f64 / elapsed.as_secs_f64(),
        transactions: after
            .values()
            .filter_map(|h| h.last_cycle_transactions)
            .max()
            .unwrap_or(0),
        minimum,
        errors: after.values().map(|h| h.consecutive_failures).sum(),
    }
}

fn main() {
    let seconds: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "| devices | cycle over all devices | poll latency p50 | poll latency max | polls/s | requests per poll | fewest possible | failing |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in [1usize, 10, 100] {
        let r = rt.block_on(round(n, seconds));
        println!(
            "| {} | {:.2} ms | {:.3} ms | {:.3} ms | {:.0} | {} | {} | {} |",
            r.devices,
            r.cycle.as_secs_f64() * 1e3,
            r.latency_p50.as_secs_f64() * 1e3,
            r.latency_max.as_secs_f64() * 1e3,
            r.polls_per_s,
            r.transactions,
            r.minimum,
            r.errors
        );
    }
}
