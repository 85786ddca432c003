//! The whole chain on simulators the test controls: Modbus TCP (SunSpec inverter,
//! SDM630 grid meter) and MQTT (Shelly Gen2 EM sub-meters, a generic JSON battery)
//! into the node, out through `/api/live` and `/metrics`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rumqttc::{AsyncClient, MqttOptions, QoS};
use sensors::sim::sdm630::{MeterState, write_meter};
use sensors::sim::sunspec::{InverterState, build_inverter_image, write_inverter};
use sensors::sim::{RegisterImage, serve_modbus_tcp, shelly};
use tokio::net::TcpListener;

use crate::support::*;

/// Starts a Modbus TCP simulator over `image` on a free port.
async fn modbus_sim(image: RegisterImage) -> (u16, Arc<RwLock<RegisterImage>>) {
    let image = Arc::new(RwLock::new(image));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sim");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(serve_modbus_tcp(listener, image.clone(), 1));
    (port, image)
}

/// The Modbus half of the test site: a SunSpec inverter producing 4321 W and an
/// SDM630 grid meter reading 1200 W of import. Returns their ports.
pub(crate) async fn start_modbus_sims() -> (u16, u16) {
    let mut inverter = RegisterImage::default();
    build_inverter_image(&mut inverter, 40000);
    write_inverter(
        &mut inverter,
        40000,
        &InverterState {
            power_w: 4321.0,
            energy_wh: 1_000_000.0,
            voltage_v: 231.0,
            frequency_hz: 50.0,
            temperature_c: 41.0,
            status: 4,
        },
    );
    let mut meter = RegisterImage::default();
    write_meter(
        &mut meter,
        &MeterState {
            power_w: 1200.0,
            import_wh: 5000.0,
            export_wh: 7000.0,
            voltage_v: 230.0,
            frequency_hz: 50.0,
        },
    );
    let (inverter_port, _) = modbus_sim(inverter).await;
    let (meter_port, _) = modbus_sim(meter).await;
    (inverter_port, meter_port)
}

/// The site the tests read: two Modbus simulators, an MQTT broker at `broker`.
pub(crate) fn site_config(
    dir: &std::path::Path,
    inverter_port: u16,
    meter_port: u16,
    broker: &str,
    prefix: &str,
) -> String {
    format!(
        r#"
[site]
name = "Test site"
language = "en"
timezone = "Europe/Paris"
latitude = 45.76
longitude = 4.84

[storage]
dir = "{dir}"

[mqtt]
{broker}

[[device]]
id = "inverter"
role = "pv"
profile = "sunspec"
modbus = {{ host = "127.0.0.1", port = {inverter_port}, unit = 1 }}
poll_interval = "200ms"

[[device]]
id = "grid"
role = "grid"
profile = "sdm630"
modbus = {{ host = "127.0.0.1", port = {meter_port}, unit = 1 }}
poll_interval = "200ms"

[[device]]
id = "battery"
role = "battery"
profile = "generic-json"
power_sign = "generation"
mqtt = {{ topic = "{prefix}/battery", fields = {{ power_w = "power_w", soc_pct = "soc_pct" }} }}

[[device]]
id = "clinic-meter"
role = "load"
profile = "shelly-gen2-em"
mqtt = {{ topic = "{prefix}-clinic" }}

[[device]]
id = "school-meter"
role = "load"
profile = "shelly-gen2-em"
mqtt = {{ topic = "{prefix}-school" }}

[[service]]
id = "clinic-fridge"
meter = "clinic-meter"
tier = 1
min_w = 150

[[service]]
id = "school"
meter = "school-meter"
tier = 2

[sources.battery]
reserve_soc_pct = 20
max_discharge_w = 3000

[sources.grid]
max_import_w = 500
"#,
        dir = dir.display()
    )
}

/// Publishes the sub-meters and the battery every 200 ms until dropped.
pub(crate) fn publish_loop(
    host: &str,
    port: u16,
    prefix: &str,
    clinic_w: f64,
    school_w: f64,
) -> tokio::task::JoinHandle<()> {
    let mut opts = MqttOptions::new(
        format!("it-pub-{}-{prefix}", std::process::id()),
        host,
        port,
    );
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let prefix = prefix.to_string();
    tokio::spawn(async move {
        loop {
            let _ = client
                .publish(
                    format!("{prefix}-clinic/status/em:0"),
                    QoS::AtMostOnce,
                    false,
                    shelly::gen2_em_status(clinic_w, 230.0),
                )
                .await;
            let _ = client
                .publish(
                    format!("{prefix}-school/status/em:0"),
                    QoS::AtMostOnce,
                    false,
                    shelly::gen2_em_status(school_w, 230.0),
                )
                .await;
            let _ = client
                .publish(
                    format!("{prefix}/battery"),
                    QoS::AtMostOnce,
                    false,
                    r#"{"power_w": -800, "soc_pct": 61.5}"#,
                )
                .await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// The simulated values reach `/api/live` in the site sign convention, and the
/// allocation follows the plan seeded from the configuration.
pub(crate) async fn check_site(node: &NodeProc) {
    // Set by the simulators (the inverter has 1 W resolution, W_SF = 0): inverter 4321 W, grid import 1200 W, battery charging
    // 800 W (published as -800 discharge), clinic 150 W, school 1800 W.
    let live = wait_live(
        node,
        Duration::from_secs(20),
        "all devices reporting",
        |l| {
            close(&l["site"]["pv_w"], 4321.0)
                && close(&l["site"]["grid_w"], 1200.0)
                && close(&l["site"]["battery_w"], -800.0)
                && close(&l["site"]["load_w"], 1950.0)
        },
    )
    .await;
    assert_eq!(live["stale"], false, "{live:#}");
    assert!(close(&live["site"]["battery_soc_pct"], 61.5), "{live:#}");
    // Into the bus: 4321.0 + 1200 - 800 = 4721; metered loads 1950 -> 2771 unmetered.
    assert!(close(&live["site"]["unmetered_w"], 2771.0), "{live:#}");
    // Available: PV 4321 + battery 3000 (SoC 61.5 above the 20 reserve) + grid 500.
    assert!(close(&live["site"]["available_w"], 7821.0), "{live:#}");
    assert!(close(&live["site"]["allocated_w"], 1950.0), "{live:#}");
    assert!(close(&live["site"]["headroom_w"], 5871.0), "{live:#}");
    let clinic = service(&live, "clinic-fridge");
    assert!(
        close(&clinic["demand_w"], 150.0) && close(&clinic["allocated_w"], 150.0),
        "{clinic:#}"
    );
    assert_eq!(clinic["state"], "served");
    assert_eq!(clinic["tier"], 1);
    assert_eq!(service(&live, "school")["state"], "served");
    let devices = live["devices"].as_array().expect("devices");
    assert_eq!(devices.len(), 5);
    for d in devices {
        assert_eq!(d["healthy"], true, "device {d:#}");
        assert!(
            d["last_seen"].as_str().is_some_and(|t| t.ends_with('Z')),
            "RFC 3339 UTC: {d:#}"
        );
    }
    let battery = devices
        .iter()
        .find(|d| d["id"] == "battery")
        .expect("battery");
    assert_eq!(battery["role"], "battery");
    assert!(close(&battery["power_w"], -800.0), "{battery:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_site_reaches_api_live_through_the_embedded_broker() {
    let dir = TempDir::new("e2e");
    let (inverter_port, meter_port) = start_modbus_sims().await;
    let broker_port = free_port();
    let config = site_config(
        dir.path(),
        inverter_port,
        meter_port,
        &format!("broker = \"embedded\"\nembedded_bind = \"127.0.0.1:{broker_port}\""),
        "e2e",
    );
    let config_path = dir.path().join("site.toml");
    std::fs::write(&config_path, config).expect("write config");
    let cfg = config_path.to_string_lossy().to_string();

    let node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    let publisher = publish_loop("127.0.0.1", broker_port, "e2e", 150.0, 1800.0);
    check_site(&node).await;

    // A malformed payload is counted against its device and changes nothing else.
    let mut opts = MqttOptions::new("it-garbage", "127.0.0.1", broker_port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(opts, 10);
    let poller = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    client
        .publish(
            "e2e-clinic/status/em:0",
            QoS::AtLeastOnce,
            false,
            "{not json",
        )
        .await
        .expect("publish garbage");
    let metrics_url = format!("{}/metrics", node.base);
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = get_text(&metrics_url).await;
        if metrics.contains(
            "communalia_payloads_rejected_total{device=\"clinic-meter\",reason=\"decode\"} 1",
        ) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metrics.contains(
            "communalia_payloads_rejected_total{device=\"clinic-meter\",reason=\"decode\"} 1"
        ),
        "{metrics}"
    );
    let ingested = metric_value(&metrics, "communalia_readings_ingested_total");
    assert!(ingested > 10.0, "readings counted: {metrics}");
    assert!(
        metric_value(&metrics, "communalia_mqtt_messages_total") > 3.0,
        "{metrics}"
    );
    assert!(
        metrics.contains("communalia_modbus_transactions_total{device=\"inverter\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("communalia_device_up{device=\"grid\"} 1"),
        "{metrics}"
    );
    // The SDM630 is read in one request per poll, as its plan says; it refuses none.
    for line in [
        "communalia_modbus_transactions_per_cycle{device=\"grid\"} 1",
        "communalia_modbus_planned_transactions_per_cycle{device=\"grid\"} 1",
        "communalia_modbus_exceptions_total{device=\"grid\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}: {metrics}");
    }
    assert!(
        metrics.contains("communalia_allocation_headroom_watts"),
        "{metrics}"
    );
    // Still alive and still reading after the garbage.
    check_site(&node).await;
    poller.abort();
    publisher.abort();
    drop(node);

    // The journal the node wrote verifies.
    let out = std::process::Command::new(BIN)
        .args(["ledger", "verify", "--config", &cfg])
        .output()
        .expect("run verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "verify failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("chain intact"), "{stdout}");
}

fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.trim().parse::<f64>().ok())
        })
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_shows_a_living_community() {
    let dir = TempDir::new("demo");
    let data = dir.path().to_string_lossy().to_string();
    // At noon the sun is up: production, the services and the battery all report.
    let node = spawn(&[
        "demo",
        "--bind",
        "127.0.0.1:0",
        "--start",
        "12:00",
        "--date",
        "2026-06-21",
        "--data",
        &data,
        // 30 days by default; four are enough to check, and quicker in a debug build.
        "--history-days",
        "4",
    ]);
    let live = wait_live(
        &node,
        Duration::from_secs(20),
        "the demo's devices reporting",
        |l| {
            l["stale"] == false
                && l["site"]["pv_w"].as_f64().is_some_and(|w| w > 100.0)
                && l["devices"]
                    .as_array()
                    .is_some_and(|d| d.iter().all(|d| d["healthy"] == true))
                && l["services"].as_array().is_some_and(|s| {
                    s.len() == 3
                        && s.iter()
                            .all(|s| s["demand_w"].as_f64().is_some_and(|w| w > 0.0))
                })
        },
    )
    .await;
    // One clock: the node stamps, evaluates and shows the simulation's time, a
    // summer's noon in Paris (10:00 UTC) whatever the real date and hour.
    for field in ["ts", "last_data"] {
        let at = live[field].as_str().unwrap_or_default();
        assert!(at.starts_with("2026-06-21T10:0"), "{field} = {at}");
    }
    // The simulated world keeps the site balanced: what enters the bus is consumed.
    let site = &live["site"];
    let inflow = site["pv_w"].as_f64().unwrap_or(0.0)
        + site["grid_w"].as_f64().unwrap_or(0.0)
        + site["battery_w"].as_f64().unwrap_or(0.0);
    let load = site["load_w"].as_f64().unwrap_or(0.0);
    assert!(
        (inflow - load).abs() < 0.25 * load.max(1.0) + 200.0,
        "the demo's flows should roughly balance (readings come from different instants): {site:#}"
    );
    let page = get_text(&format!("{}/", node.base)).await;
    assert!(page.contains("Les Tilleuls"), "wall screen names the site");

    // The demo starts with days of simulated history behind it (four here, from
    // June 17 at noon): June 18-20 have the sun's production, the community's
    // consumption and what each service was given, in the week's tables a resident
    // downloads; the days before have nothing.
    let week = |table: &str| {
        format!(
            "{}/history?view=week&date=2026-06-18&lang=en&download={table}",
            node.base
        )
    };
    let energy = get_text(&week("energy")).await;
    let day = |date: &str| -> Vec<f64> {
        energy
            .lines()
            .find(|l| l.starts_with(date))
            .map(|l| {
                l.split(',')
                    .skip(1)
                    .map(|v| v.parse().unwrap_or(-1.0))
                    .collect()
            })
            .unwrap_or_default()
    };
    for date in ["2026-06-18", "2026-06-19", "2026-06-20"] {
        // 9 kWp in June near Lyon: tens of kWh a day; the loads never stop.
        let d = day(date);
        assert!(
            d.len() >= 2 && d[0] > 10.0 && d[1] > 5.0,
            "{date}: {d:?} in {energy}"
        );
    }
    for date in ["2026-06-15", "2026-06-16"] {
        let d = day(date);
        assert!(
            d.iter().all(|kwh| *kwh <= 0.0),
            "{date} was not simulated: {d:?} in {energy}"
        );
    }
    let services = get_text(&week("services")).await;
    let served: Vec<f64> = services
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(2)?.parse().ok())
        .collect();
    assert!(
        served.len() >= 3 && served.iter().all(|kwh| *kwh > 1.0),
        "every service was served that week: {services}"
    );

    // The demo prints its simulators' addresses and an account per member; camille
    // (assembly) signs in with hers, yasmine (installer) with hers.
    let mut inverter = None;
    let mut passwords = std::collections::BTreeMap::new();
    while passwords.len() < 2 {
        let line = node
            ._lines
            .recv_timeout(Duration::from_secs(10))
            .expect("the demo prints its accounts");
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first() {
            Some(&"inverter:") => inverter = words.get(1).map(|a| a.to_string()),
            Some(&who @ ("camille" | "yasmine")) => {
                let role = if who == "camille" {
                    "assembly"
                } else {
                    "installer"
                };
                assert!(line.contains(role), "{who}'s roles are printed: {line}");
                passwords.insert(who.to_string(), words[1].to_string());
            }
            _ => {}
        }
    }
    let password = passwords["camille"].clone();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let session = sign_in(&client, &node, "camille", &password).await;
    let me: serde_json::Value = client
        .get(format!("{}/api/me", node.base))
        .header("cookie", &session)
        .send()
        .await
        .expect("/api/me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["name"], "camille", "{me}");
    assert!(
        me["roles"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r == "assembly")),
        "{me}"
    );

    // The demo's ledger has a few days of contributions: one validated, minting
    // bernard's 3 hours at 10 Communs, and the wall counts those hours.
    let contributions: serde_json::Value = client
        .get(format!("{}/api/contributions", node.base))
        .header("cookie", &session)
        .send()
        .await
        .expect("/api/contributions")
        .json()
        .await
        .expect("json");
    let all = contributions.as_array().expect("a list");
    assert_eq!(all.len(), 3, "{contributions}");
    assert!(
        all.iter()
            .any(|c| c["member"] == "bernard" && c["state"] == "validated" && c["minted"] == 30.0),
        "{contributions}"
    );
    let ledger = client
        .get(format!("{}/ledger", node.base))
        .header("cookie", &session)
        .send()
        .await
        .expect("/ledger");
    assert_eq!(ledger.status(), 200);
    assert!(page.contains("Cette semaine"), "the wall's week panel");
    let live = get_text(&format!("{}/api/live", node.base)).await;
    assert!(live.contains("\"hours_validated_this_week\":3.0"), "{live}");

    // yasmine, the installer, sees the simulated inverter's SunSpec models and its
    // values beside their registers, and probes it from the page.
    let installer = sign_in(&client, &node, "yasmine", &passwords["yasmine"]).await;
    // The first poll also walks the SunSpec models; the figures below are those of
    // an ordinary poll, so wait for a second one (the live side may be ready first,
    // now that it follows readings rather than a 1 s tick).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let devices = loop {
        let devices: serde_json::Value = client
            .get(format!("{}/api/devices", node.base))
            .header("cookie", &installer)
            .send()
            .await
            .expect("/api/devices")
            .json()
            .await
            .expect("json");
        let polls = devices["devices"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["id"] == "roof-school"))
            .and_then(|d| d["polls"].as_u64())
            .unwrap_or(0);
        if polls >= 2 || std::time::Instant::now() > deadline {
            break devices;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let roof = devices["devices"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["id"] == "roof-school"))
        .unwrap_or_else(|| panic!("{devices:#}"));
    assert_eq!(roof["state"], "up", "{roof:#}");
    assert_eq!(roof["sunspec"]["base"], 40000, "{roof:#}");
    assert_eq!(roof["sunspec"]["models"][1]["id"], 103, "{roof:#}");
    assert_eq!(
        roof["transactions_last_cycle"], roof["transactions_planned"],
        "{roof:#}"
    );
    let power = roof["values"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["metric"] == "power_w"))
        .unwrap_or_else(|| panic!("{roof:#}"));
    assert_eq!(power["origin"]["point"], "103.W", "{power:#}");
    assert!(power["origin"]["registers"].is_array(), "{power:#}");
    let page = client
        .get(format!("{}/installer", node.base))
        .header("cookie", &installer)
        .send()
        .await
        .expect("/installer")
        .text()
        .await
        .expect("page");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no csrf in {page}"))
        .to_string();
    let inverter = inverter.expect("the demo prints its inverter's address");
    let probed = client
        .post(format!("{}/installer/probe", node.base))
        .header("cookie", &installer)
        .form(&[
            ("csrf", csrf.as_str()),
            ("address", inverter.as_str()),
            ("timeout", "2s"),
        ])
        .send()
        .await
        .expect("probe");
    assert_eq!(probed.status(), 200);
    let probed = probed.text().await.expect("page");
    assert!(probed.contains("data-model=\"103\""), "{probed}");
    assert!(probed.contains("class=\"device-block\""), "{probed}");
}
