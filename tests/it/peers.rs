//! The same paths against peers the project did not write: the Mosquitto broker
//! and a pymodbus SunSpec server. Skipped with a clear line when the peer is
//! absent, failed when `COMMUNALIA_REQUIRE_PEERS=1` (as `.ci/run` sets).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sensors::sim::sdm630::{MeterState, write_meter};
use sensors::sim::sunspec::{InverterState, build_inverter_image, write_inverter};
use sensors::sim::{RegisterImage, serve_modbus_tcp};
use tokio::net::TcpListener;

use crate::end_to_end::{check_site, publish_loop, site_config};
use crate::support::*;

const MOSQUITTO: &str = "127.0.0.1:1883";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_path_through_a_real_mosquitto_broker() {
    if !tcp_open(MOSQUITTO) {
        return skip("mosquitto on 127.0.0.1:1883");
    }
    let dir = TempDir::new("mosquitto");
    let mut inverter = RegisterImage::default();
    build_inverter_image(&mut inverter, 40000);
    write_inverter(
        &mut inverter,
        40000,
        &InverterState {
            power_w: 4321.0,
            energy_wh: 10.0,
            voltage_v: 230.0,
            frequency_hz: 50.0,
            temperature_c: 30.0,
            status: 4,
        },
    );
    let mut meter = RegisterImage::default();
    write_meter(
        &mut meter,
        &MeterState {
            power_w: 1200.0,
            import_wh: 1.0,
            export_wh: 1.0,
            voltage_v: 230.0,
            frequency_hz: 50.0,
        },
    );
    let mut ports = Vec::new();
    for image in [inverter, meter] {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        ports.push(listener.local_addr().expect("addr").port());
        tokio::spawn(serve_modbus_tcp(listener, Arc::new(RwLock::new(image)), 1));
    }
    // A topic prefix of our own: the shared broker may carry other traffic.
    let prefix = format!("communalia-it-{}", std::process::id());
    let config = site_config(
        dir.path(),
        ports[0],
        ports[1],
        "broker = \"mqtt://127.0.0.1:1883\"",
        &prefix,
    );
    let path = dir.path().join("site.toml");
    std::fs::write(&path, config).expect("write config");
    let node = spawn(&[
        "run",
        "--config",
        &path.to_string_lossy(),
        "--bind",
        "127.0.0.1:0",
    ]);
    let publisher = publish_loop("127.0.0.1", 1883, &prefix, 150.0, 1800.0);
    check_site(&node).await;
    publisher.abort();
}

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pymodbus_available() -> bool {
    Command::new("python3")
        .args(["-c", "import pymodbus"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sunspec_inverter_served_by_pymodbus() {
    if !pymodbus_available() {
        return skip("pymodbus (python3 -m pip install 'pymodbus>=3.9,<4')");
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/sunspec_server.py");
    for (base, w_raw, w_sf) in [(40000u16, 12345i32, -1i32), (0, 2500, 1), (50000, -300, 0)] {
        let port = free_port();
        let mut child = Command::new("python3")
            .args([
                script,
                &port.to_string(),
                &base.to_string(),
                &w_raw.to_string(),
                &w_sf.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pymodbus");
        let stdout = child.stdout.take().expect("stdout");
        let peer = Peer(child);
        let mut first = String::new();
        BufReader::new(stdout).read_line(&mut first).expect("read");
        assert_eq!(first.trim(), "ready");
        for _ in 0..50 {
            if tcp_open(&format!("127.0.0.1:{port}")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let dir = TempDir::new("pymodbus");
        let config = format!(
            "[site]\nname = \"pymodbus\"\nlatitude = 45.0\nlongitude = 4.0\n[storage]\ndir = \"{}\"\n\
             [[device]]\nid = \"inverter\"\nrole = \"pv\"\nprofile = \"sunspec\"\n\
             modbus = {{ host = \"127.0.0.1\", port = {port}, unit = 1 }}\npoll_interval = \"200ms\"\n",
            dir.path().display()
        );
        let path = dir.path().join("site.toml");
        std::fs::write(&path, config).expect("write config");
        let node = spawn(&[
            "run",
            "--config",
            &path.to_string_lossy(),
            "--bind",
            "127.0.0.1:0",
        ]);
        // W = raw x 10^SF, computed here from what the peer serves.
        let expected = f64::from(w_raw) * 10f64.powi(w_sf);
        let live = wait_live(
            &node,
            Duration::from_secs(15),
            &format!("SunSpec at base {base}"),
            |l| close(&l["site"]["pv_w"], expected),
        )
        .await;
        assert_eq!(live["devices"][0]["healthy"], true, "{live:#}");
        drop(node);
        drop(peer);
    }
}
