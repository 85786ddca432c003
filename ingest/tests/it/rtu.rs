//! Modbus RTU over a serial line: a pseudo-terminal pair made by socat, a pymodbus
//! RTU server on one end with two units, the node's worker on the other, polling
//! both units one at a time on the one bus.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ingest::metrics::HealthState;
use ingest::modbus::{Link, ModbusDevice};
use sensors::config::SerialConfig;
use sensors::model::{Metric, Role};

use crate::support::*;

const SOCAT: &str = "/usr/bin/socat";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rtu_devices_share_one_serial_bus() {
    if !Path::new(SOCAT).exists() {
        return skip("socat (apt-get install socat)");
    }
    if !python_has("pymodbus") || !python_has("serial") {
        return skip("pymodbus with pyserial (python3 -m pip install 'pymodbus>=3.9,<4' pyserial)");
    }
    let dir = std::env::temp_dir().join(format!(
        "communalia-rtu-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let (a, b) = (dir.join("node"), dir.join("device"));
    let _socat = Peer::spawn(
        Command::new(SOCAT)
            .args([
                "-d",
                &format!("pty,raw,echo=0,link={}", a.display()),
                &format!("pty,raw,echo=0,link={}", b.display()),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .expect("socat");
    wait_for(Duration::from_secs(5), "the pty pair", || {
        a.exists() && b.exists()
    })
    .await;
    let mut server = Peer::spawn(
        Command::new("python3")
            .args([
                peer_script("rtu_server.py"),
                b.to_string_lossy().into_owned(),
                "19200".into(),
                "none".into(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )
    .expect("pymodbus rtu server");
    let stdout = server.child().stdout.take().expect("stdout");
    let ready = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .expect("ready in time")
        .expect("join")
        .expect("read");
    assert_eq!(line.trim(), "ready");

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
