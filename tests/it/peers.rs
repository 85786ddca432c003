//! The same paths against peers the project did not write: the Mosquitto broker
//! and a pymodbus SunSpec server. Skipped with a clear line when the peer is
//! absent, failed when `COMMUNALIA_REQUIRE_PEERS=1` (as `.ci/run` sets).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::end_to_end::{check_site, publish_loop, site_config, start_modbus_sims};
use crate::support::*;

const MOSQUITTO: &str = "127.0.0.1:1883";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_path_through_a_real_mosquitto_broker() {
    if !tcp_open(MOSQUITTO) {
        return skip("mosquitto on 127.0.0.1:1883");
    }
    let dir = TempDir::new("mosquitto");
    let (inverter_port, meter_port) = start_modbus_sims().await;
    // A topic prefix of our own: the shared broker may carry other traffic.
    let prefix = format!("communalia-it-{}", std::process::id());
    let config = site_config(
        dir.path(),
        inverter_port,
        meter_port,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sunspec_inverter_served_by_pymodbus() {
    if !python_has("pymodbus") {
        return skip("pymodbus (python3 -m pip install 'pymodbus>=3.9,<4')");
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/sunspec_server.py");
    for (base, w_raw, w_sf) in [(40000u16, 12345i32, -1i32), (0, 2500, 1), (50000, -300, 0)] {
        let port = free_port();
        let mut peer = Peer::spawn(
            Command::new("python3")
                .args([
                    script,
                    &port.to_string(),
                    &base.to_string(),
                    &w_raw.to_string(),
                    &w_sf.to_string(),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        )
        .expect("start pymodbus");
        let stdout = peer.child().stdout.take().expect("stdout");
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
