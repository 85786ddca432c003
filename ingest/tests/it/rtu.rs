//! Modbus RTU over a serial line: a pseudo-terminal pair made by socat, a pymodbus
//! RTU server on one end with two units, the node's worker on the other, polling
//! both units one at a time on the one bus.

use std::time::Duration;

use ingest::metrics::HealthState;
use ingest::modbus::{Link, ModbusDevice};
use sensors::config::SerialConfig;
use sensors::model::{Metric, Role};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rtu_devices_share_one_serial_bus() {
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(bus) =
        tokio::task::block_in_place(|| testkit::rtu::Sdm120Bus::start(dir.path(), 19200))
    else {
        return;
    };
    let a = &bus.node_end;

    let serial = |unit| SerialConfig {
        path: a.to_string_lossy().into_owned(),
        baud: 19200,
        // A pseudo-terminal takes no parity bit (tcsetattr refuses PARENB on it):
        // 8N1 here; the parity setting is checked where it is parsed.
        parity: sensors::config::Parity::None,
        stop_bits: 1,
        data_bits: 8,
        unit,
    };
    let dev = |id: &str, unit| ModbusDevice {
        id: id.into(),
        link: Link::Serial(serial(unit)),
        unit,
        source: profile("sdm120"),
        poll_interval: Duration::from_millis(200),
        timeout: Duration::from_millis(500),
        role: Role::Load,
        power_sign: None,
        limits: ingest::plausible::Limits::polled(Role::Load),
    };
    let running = run(vec![dev("kitchen", 2), dev("workshop", 5)]);
    let m = running.metrics.clone();
    wait_for(Duration::from_secs(15), "both units read", || {
        ["kitchen", "workshop"].iter().all(|d| {
            m.health()
                .get(*d)
                .is_some_and(|h| h.polls >= 3 && h.last_success.is_some())
        })
    })
    .await;
    let now = chrono::Utc::now();
    for d in ["kitchen", "workshop"] {
        let h = &m.health()[d];
        assert_eq!(
            h.state(now, Duration::from_secs(5)),
            HealthState::Up,
            "{d}: {h:?}"
        );
        assert_eq!(h.last_cycle_transactions, Some(1));
    }
    let readings = running
        .readings
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    // The server gives unit 2 a 150 W load and unit 5 a 2300 W one (float32 ABCD).
    for (id, w) in [("kitchen", 150.0), ("workshop", 2300.0)] {
        assert!(
            readings.iter().any(|r| &*r.device == id
                && r.metric == Metric::PowerW
                && (r.value - w).abs() < 1e-3),
            "{id}"
        );
    }
    let d = m.diagnostics_of("kitchen").expect("diagnostics");
    assert!(d.transport.starts_with("modbus-rtu "), "{}", d.transport);
    running.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
