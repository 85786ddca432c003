//! Devices that stop answering, refuse registers, or accept one connection only.

use std::time::Duration;

use chrono::Utc;
use ingest::metrics::{HealthState, IngestMetrics};
use sensors::modbus::RegisterKind;
use sensors::model::Metric;
use sensors::sim::RegisterImage;
use sensors::sim::sdm630::{MeterState, write_meter};

use crate::support::*;

const EVERY: Duration = Duration::from_millis(100);

fn meter_image(power_w: f64) -> RegisterImage {
    let mut image = RegisterImage::new();
    write_meter(
        &mut image,
        &MeterState {
            power_w,
            import_wh: 1_000_000.0,
            export_wh: 20_000.0,
            voltage_v: 230.0,
            frequency_hz: 50.0,
        },
    );
    image
}

fn state(m: &IngestMetrics, id: &str) -> HealthState {
    m.health().get(id).map_or(HealthState::Down, |h| {
        h.state(Utc::now(), Duration::from_secs(2))
    })
}

fn polls(m: &IngestMetrics, id: &str) -> u64 {
    m.health().get(id).map_or(0, |h| h.polls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_device_is_down_within_three_polls_and_back_within_two_while_the_others_keep_their_cadence()
 {
    let a = serve(vec![(1, meter_image(100.0))]).await;
    let b = serve(vec![(1, meter_image(200.0))]).await;
    let c = serve(vec![(1, meter_image(300.0))]).await;
    let running = run(vec![
        device("a", a.addr, 1, profile("sdm630"), EVERY),
        device("b", b.addr, 1, profile("sdm630"), EVERY),
        device("c", c.addr, 1, profile("sdm630"), EVERY),
    ]);
    let m = running.metrics.clone();
    wait_for(Duration::from_secs(5), "three devices up", || {
        ["a", "b", "c"]
            .iter()
            .all(|d| state(&m, d) == HealthState::Up)
    })
    .await;

    a.control.set_silent(true);
    let a0 = polls(&m, "a");
    let (b0, c0) = (polls(&m, "b"), polls(&m, "c"));
    let t0 = tokio::time::Instant::now();
    wait_for(Duration::from_secs(5), "a down", || {
        state(&m, "a") == HealthState::Down
    })
    .await;
    let polls_to_down = polls(&m, "a") - a0;
    assert!(polls_to_down <= 3, "down after {polls_to_down} polls");
    // Stay silent a while: the others are polled at their own pace meanwhile.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let elapsed = t0.elapsed();
    let expected = elapsed.as_secs_f64() / EVERY.as_secs_f64();
    for (id, before) in [("b", b0), ("c", c0)] {
        let got = (polls(&m, id) - before) as f64;
        assert!(
            got >= 0.8 * expected,
            "{id}: {got} polls in {elapsed:?}, {expected:.0} expected"
        );
        assert_eq!(state(&m, id), HealthState::Up, "{id}");
    }
    assert_eq!(state(&m, "a"), HealthState::Down);

    a.control.set_silent(false);
    let a1 = polls(&m, "a");
    wait_for(Duration::from_secs(10), "a up again", || {
        state(&m, "a") == HealthState::Up
    })
    .await;
    let polls_to_up = polls(&m, "a") - a1;
    assert!(polls_to_up <= 2, "up after {polls_to_up} polls");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exception_makes_its_values_missing_and_is_counted() {
    let sim = serve(vec![(1, meter_image(-750.0))]).await;
    // Energy registers refused: the SDM630 plan reads them in the one block, so
    // split the profile with a generic one whose energies are a request of their own.
    let regs: Vec<sensors::profile::RegisterSpec> = toml::from_str::<toml::Table>(
        r#"r = [
            { metric = "power_w", kind = "input", address = 0x0034, type = "float32" },
            { metric = "energy_import_wh", kind = "input", address = 0x0048, type = "float32", scale = 1000.0 },
        ]"#,
    )
    .ok()
    .and_then(|t| t.get("r").cloned())
    .and_then(|v| v.try_into().ok())
    .expect("registers");
    let generic = match sensors::profile::lookup("generic-modbus") {
        Ok(sensors::profile::Profile::Modbus(p)) => p.for_device(&regs).expect("generic"),
        other => panic!("{other:?}"),
    };
    sim.control.refuse(RegisterKind::Input, 0x0048, 0x0049);
    let running = run(vec![device(
        "meter",
        sim.addr,
        1,
        ingest::modbus::ModbusSource::Profile(std::sync::Arc::new(generic)),
        EVERY,
    )]);
    let m = running.metrics.clone();
    wait_for(Duration::from_secs(5), "three polls", || {
        polls(&m, "meter") >= 3
    })
    .await;
    let h = m.health()["meter"].clone();
    assert_eq!(h.last_exception, Some(0x02));
    assert!(h.exceptions >= 3, "{h:?}");
    assert_eq!(h.consecutive_failures, 0, "power still read: {h:?}");
    assert_eq!(state(&m, "meter"), HealthState::Degraded);
    assert_eq!(h.last_cycle_transactions, Some(2));
    assert!(m.modbus_exceptions()["meter"] >= 3);
    let d = m.diagnostics_of("meter").expect("diagnostics");
    assert!(d.values.contains_key(&Metric::PowerW));
    assert!(
        !d.values.contains_key(&Metric::EnergyImportWh),
        "refused value missing, not zero"
    );
    assert!(
        d.raw_blocks.iter().any(|b| b.result == Err(0x02)),
        "{:?}",
        d.raw_blocks
    );
    let readings = running
        .readings
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    assert!(readings.iter().all(|r| r.metric != Metric::EnergyImportWh));
    // A grid meter: import positive in the bus view, as the meter counts it.
    assert!(
        readings
            .iter()
            .any(|r| r.metric == Metric::PowerW && r.value == -750.0)
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_behind_a_one_connection_gateway_share_it() {
    let sim = serve(vec![
        (1, meter_image(10.0)),
        (2, meter_image(20.0)),
        (3, meter_image(30.0)),
    ])
    .await;
    sim.control
        .max_connections
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let running = run(vec![
        device("u1", sim.addr, 1, profile("sdm630"), EVERY),
        device("u2", sim.addr, 2, profile("sdm630"), EVERY),
        device("u3", sim.addr, 3, profile("sdm630"), EVERY),
        // Not behind this gateway: refused with 0x0B, and down, without disturbing the others.
        device("u9", sim.addr, 9, profile("sdm630"), EVERY),
    ]);
    let m = running.metrics.clone();
    wait_for(Duration::from_secs(5), "ten polls each", || {
        ["u1", "u2", "u3"].iter().all(|d| polls(&m, d) >= 10)
    })
    .await;
    for d in ["u1", "u2", "u3"] {
        assert_eq!(state(&m, d), HealthState::Up, "{d}");
    }
    assert_eq!(state(&m, "u9"), HealthState::Down);
    assert_eq!(m.health()["u9"].last_exception, Some(0x0B));
    assert_eq!(
        sim.control
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one connection, never reopened"
    );
    let readings = running
        .readings
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    for (id, w) in [("u1", 10.0), ("u2", 20.0), ("u3", 30.0)] {
        assert!(
            readings.iter().any(|r| &*r.device == id
                && r.metric == Metric::PowerW
                && (r.value - w).abs() < 1e-3),
            "{id}"
        );
    }
    running.stop().await;
}
