//! SunSpec discovery and decoding against a device the project did not write
//! (pymodbus), whose image is built from the SunSpec model definitions, compared
//! value by value with what pysunspec2 itself reads from the same server.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use ingest::modbus::{Conn, Link, discover_sunspec};
use ingest::probe::{ProbeOptions, ProbeTarget, probe_modbus};
use sensors::config::DeviceConfig;
use sensors::modbus::{MAX_READ_REGISTERS, RegisterKind};
use sensors::sunspec;
use serde_json::Value;

use crate::support::*;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

async fn read_body(conn: &mut Conn, start: u16, length: u16) -> Vec<u16> {
    let mut body = Vec::new();
    let mut at = start;
    let end = u32::from(start) + u32::from(length);
    while u32::from(at) < end {
        let n = (end - u32::from(at)).min(u32::from(MAX_READ_REGISTERS)) as u16;
        body.extend(conn.read(RegisterKind::Holding, at, n).await.expect("body"));
        at += n;
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sunspec_models_at_each_base_decode_as_pysunspec2_decodes_them() {
    if !python_has("pymodbus") || !python_has("sunspec2") {
        return skip(
            "pymodbus and pysunspec2 (python3 -m pip install 'pymodbus>=3.9,<4' pysunspec2)",
        );
    }
    for (seed, base) in [(1u32, 40000u16), (2, 0), (3, 50000)] {
        let port = free_port();
        let mut peer = Peer::spawn(
            Command::new("python3")
                .args([
                    &peer_script("sunspec_models.py"),
                    &port.to_string(),
                    &base.to_string(),
                    &seed.to_string(),
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        )
        .expect("start the pymodbus peer");
        let stdout = peer.child().stdout.take().expect("stdout");
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        });
        let line = tokio::time::timeout(Duration::from_secs(90), line)
            .await
            .expect("pysunspec2 answers in time")
            .expect("join")
            .expect("read");
        let theirs: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("peer said {line:?}: {e}"));
        assert_eq!(
            theirs["base"],
            u64::from(base),
            "pysunspec2 finds the map at {base}"
        );

        // Our discovery finds the same models at the same addresses.
        let link = Link::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        let mut conn = Conn::open(&link, 1, Duration::from_secs(2))
            .await
            .expect("connect");
        let (map, common) = discover_sunspec(&mut conn).await.expect("discover");
        assert_eq!(map.base, base);
        let their_models = theirs["models"].as_array().expect("models");
        let ours: Vec<(u64, u64, u64)> = map
            .models
            .iter()
            .map(|m| (u64::from(m.id), u64::from(m.address), u64::from(m.length)))
            .collect();
        let expected: Vec<(u64, u64, u64)> = their_models
            .iter()
            .map(|m| {
                (
                    m["id"].as_u64().unwrap_or(0),
                    m["address"].as_u64().unwrap_or(0),
                    m["length"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        assert_eq!(ours, expected, "models at base {base}");
        assert!(common.is_some(), "model 1 read at discovery");

        // Every numeric point of every model decodes to pysunspec2's value, and
        // "not implemented" is missing on both sides.
        let mut compared = 0;
        let mut missing = 0;
        for (header, theirs) in map.models.iter().zip(their_models) {
            let body = read_body(&mut conn, header.body_address(), header.length).await;
            let points = sunspec::decode_points(header.id, &body).expect("supported model");
            for p in points {
                let want = &theirs["points"][p.name];
                match (p.value, want.as_f64()) {
                    (None, None) => missing += 1,
                    (Some(a), Some(b)) if close(a, b) => compared += 1,
                    (a, _) => panic!(
                        "model {} point {}: ours {a:?}, pysunspec2 {want}",
                        header.id, p.name
                    ),
                }
            }
        }
        assert!(
            compared > 300 && missing > 50,
            "{compared} values and {missing} unimplemented compared"
        );

        // The probe the CLI calls finds the same, and the values a poll reports are
        // the first implemented point of each metric along the map.
        let target =
            ProbeTarget::parse(&format!("modbus-tcp://127.0.0.1:{port}/1")).expect("target");
        let report = probe_modbus(&target, &ProbeOptions::default())
            .await
            .expect("probe");
        assert_eq!(report.sunspec.as_ref().map(|s| s.base), Some(base));
        assert!(report.poll_transactions >= 1);
        for v in &report.values {
            let want = map
                .models
                .iter()
                .zip(their_models)
                .filter(|(h, _)| h.id != 1)
                .find_map(|(h, t)| {
                    let def = sunspec::model_definition(h.id)?;
                    let point = def
                        .points
                        .iter()
                        .find(|p| p.metric == Some(v.sample.metric))?;
                    t["points"][point.name.as_str()].as_f64()
                })
                .unwrap_or(f64::NAN);
            assert!(
                close(v.sample.value, want),
                "{}: {} vs {want}",
                v.sample.metric,
                v.sample.value
            );
        }
        let block = report.suggested_device();
        let table: toml::Table = toml::from_str(&block).unwrap_or_else(|e| panic!("{block}\n{e}"));
        let device: DeviceConfig = table
            .get("device")
            .and_then(|d| d.as_array())
            .and_then(|d| d.first())
            .cloned()
            .and_then(|d| d.try_into().ok())
            .unwrap_or_else(|| panic!("{block}"));
        assert_eq!(device.profile, "sunspec");
        assert_eq!(device.modbus.as_ref().map(|m| m.port), Some(port));
        let text = report.to_text();
        assert!(text.contains("model   203"), "{text}");
    }
}
