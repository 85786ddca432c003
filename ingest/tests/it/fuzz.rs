//! Garbage on the wire and in payloads: counted, logged, never a panic.

use std::sync::Arc;
use std::time::Duration;

use ingest::metrics::IngestMetrics;
use ingest::mqtt::{DeviceState, MqttDevice, route, routes};
use ingest::plausible::Limits;
use proptest::prelude::*;
use sensors::config::MqttDeviceConfig;
use sensors::model::Role;
use sensors::profile::{self, Profile};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::*;

/// A "device" that answers every request with `reply` (after echoing the request's
/// transaction id when `keep_header`, so the reply is taken for the answer).
async fn garbage_server(
    reply: Vec<u8>,
    keep_header: bool,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 260];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let mut out = Vec::new();
                    if keep_header && n >= 7 {
                        out.extend_from_slice(&buf[..4]); // transaction and protocol ids
                        let len = (reply.len() + 1).min(0xFFFF) as u16;
                        out.extend_from_slice(&len.to_be_bytes());
                        out.push(buf[6]); // unit
                    }
                    out.extend_from_slice(&reply);
                    if s.write_all(&out).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, task)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn garbage_modbus_responses_are_counted_failures(reply in proptest::collection::vec(any::<u8>(), 0..64), keep_header in any::<bool>()) {
        let rt = runtime();
        rt.block_on(async {
            let (addr, server) = garbage_server(reply, keep_header).await;
            let running = run(vec![
                device("garbage", addr, 1, profile("sdm630"), Duration::from_millis(20)),
                device("garbage-sunspec", addr, 2, profile("sunspec"), Duration::from_millis(20)),
            ]);
            let m = running.metrics.clone();
            wait_for(Duration::from_secs(10), "a few polls", || {
                m.health().values().all(|h| h.polls >= 2)
            }).await;
            for (id, h) in m.health() {
                // Garbage never reads as a value.
                assert!(h.last_success.is_none() || h.last_error.is_some(), "{id}: {h:?}");
            }
            running.stop().await;
            server.abort();
        });
    }

    #[test]
    fn malformed_payloads_of_every_mqtt_profile_are_rejected_and_counted(
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        suffix in prop_oneof![Just(""), Just("/emeter/0/power"), Just("/emeter/1/total"), Just("/status/em:0"), Just("/0/power"), Just("/0/yieldtotal")],
    ) {
        let mut devices = Vec::new();
        for name in ["shelly-gen1-em", "shelly-gen2-em", "tasmota", "opendtu", "zigbee2mqtt", "generic-json"] {
            let Ok(Profile::Mqtt(p)) = profile::lookup(name) else { panic!("{name}") };
            let topic = if name == "tasmota" { "dev".to_string() } else { format!("dev/{name}") };
            let config: MqttDeviceConfig = toml::from_str(&format!("topic = \"{topic}\"{}", if name == "generic-json" { "\nfields = { power_w = \"p\" }" } else { "" })).expect("config");
            devices.push(MqttDevice { id: Arc::from(name), profile: p, config, power_sign: 1.0, limits: Limits::polled(Role::Load) });
        }
        let metrics = IngestMetrics::default();
        let routes = routes(&devices);
        let mut states: Vec<DeviceState> = devices.iter().map(DeviceState::new).collect();
        let mut topics: Vec<String> = devices.iter().map(|d| format!("{}{suffix}", d.config.topic)).collect();
        topics.push("tele/dev/SENSOR".into());
        for topic in &topics {
            let readings = route(&routes, &devices, &mut states, &metrics, topic, &payload);
            prop_assert!(readings.iter().all(|r| r.value.is_finite()));
        }
        let rejected: u64 = metrics.payloads_rejected().values().sum();
        let accepted: u64 = metrics.health().values().map(|h| h.polls).sum();
        prop_assert!(rejected + accepted >= topics.len() as u64, "every message is counted one way or the other");
    }
}
