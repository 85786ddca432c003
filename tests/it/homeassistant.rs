//! Home Assistant MQTT discovery through a real Mosquitto: the node's discovery
//! configs are read back and checked against the fields Home Assistant's MQTT
//! sensor schema takes, their value templates are rendered by Jinja2 (the
//! template engine Home Assistant uses) on the state the node publishes, and the
//! states follow the live values.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

use crate::support::*;

const MOSQUITTO: &str = "127.0.0.1:1883";

/// Renders Home Assistant's `value_template` on `payload` the way its MQTT sensor
/// does (`value_json` is the payload parsed as JSON), with Jinja2.
fn render(template: &str, payload: &str) -> String {
    let script = "import json, sys, jinja2\n\
                  env = jinja2.Environment()\n\
                  t = env.from_string(sys.argv[1])\n\
                  print(t.render(value_json=json.loads(sys.argv[2]), value=sys.argv[2]))";
    let out = Command::new("python3")
        .args(["-c", script, template, payload])
        .stderr(Stdio::piped())
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{template}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_discovers_the_communitys_figures() {
    if !tcp_open(MOSQUITTO) {
        return skip("mosquitto on 127.0.0.1:1883");
    }
    if !python_has("jinja2") {
        return skip("jinja2 (python3 -m pip install jinja2)");
    }
    let tag = format!("{}", std::process::id());
    let prefix = format!("ha-it-{tag}");
    let node_id = format!("it_{tag}");
    let topic = |t: &str| format!("ha-it-{tag}/dev/{t}");
    let dir = TempDir::new("homeassistant");
    let config = format!(
        "[site]\nname = \"Les Tilleuls\"\nlatitude = 1.0\nlongitude = 2.0\n\
         [storage]\ndir = \"{dir}\"\n\
         [mqtt]\nbroker = \"mqtt://127.0.0.1:1883\"\n\
         [homeassistant]\ndiscovery = true\nprefix = \"{prefix}\"\nnode_id = \"{node_id}\"\nstate_interval = \"1s\"\n\
         [[device]]\nid = \"grid\"\nrole = \"grid\"\nprofile = \"generic-json\"\n\
         mqtt = {{ topic = \"{grid}\", fields = {{ power_w = \"p\" }} }}\n\
         [[device]]\nid = \"laundry-meter\"\nrole = \"load\"\nprofile = \"generic-json\"\n\
         mqtt = {{ topic = \"{laundry}\", fields = {{ power_w = \"p\" }} }}\n\
         [[service]]\nid = \"laundry\"\nname = \"Laverie\"\nmeter = \"laundry-meter\"\ntier = 1\n\
         [sources.grid]\nmax_import_w = 5000\ntiers = [1]\n",
        dir = dir.path().display(),
        grid = topic("grid"),
        laundry = topic("laundry"),
    );
    let cfg = dir.path().join("site.toml");
    std::fs::write(&cfg, config).expect("write");

    // Home Assistant's side: subscribed before the node starts, as it would be.
    let mut opts = MqttOptions::new(format!("ha-{tag}"), "127.0.0.1", 1883);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (ha, mut events) = AsyncClient::new(opts, 64);
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    tokio::spawn(async move {
        while let Ok(event) = events.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = event {
                let _ = seen_tx.send((p.topic.clone(), String::from_utf8_lossy(&p.payload).into()));
            }
        }
    });
    ha.subscribe(format!("{prefix}/#"), QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    ha.subscribe(format!("communalia/{node_id}/#"), QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let node = spawn(&[
        "run",
        "--config",
        &cfg.to_string_lossy(),
        "--bind",
        "127.0.0.1:0",
    ]);
    let mut opts = MqttOptions::new(format!("meters-{tag}"), "127.0.0.1", 1883);
    opts.set_keep_alive(Duration::from_secs(5));
    let (meters, mut meter_events) = AsyncClient::new(opts, 64);
    tokio::spawn(async move { while meter_events.poll().await.is_ok() {} });
    let publish = |t: String, w: f64| {
        let meters = meters.clone();
        async move {
            meters
                .publish(t, QoS::AtLeastOnce, false, format!("{{\"p\": {w}}}"))
                .await
                .expect("publish");
        }
    };

    let mut configs: BTreeMap<String, Value> = BTreeMap::new();
    let mut states: Vec<Value> = Vec::new();
    let mut availability = Vec::new();
    let state_topic = format!("communalia/{node_id}/state");
    let drain = |seen: &mut tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
                 configs: &mut BTreeMap<String, Value>,
                 states: &mut Vec<Value>,
                 availability: &mut Vec<String>| {
        while let Ok((t, p)) = seen.try_recv() {
            if t.ends_with("/config") {
                configs.insert(t, serde_json::from_str(&p).expect("config JSON"));
            } else if t == state_topic {
                states.push(serde_json::from_str(&p).expect("state JSON"));
            } else if t.ends_with("/availability") {
                availability.push(p);
            }
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let grid_seen = |states: &[Value], w: f64| {
        states.iter().any(|s| {
            s["grid_w"] == serde_json::json!(w)
                && s["services"]["laundry"]["allocated_w"] == serde_json::json!(400.0)
        })
    };
    while !grid_seen(&states, 1000.0) {
        publish(topic("grid"), 1000.0).await;
        publish(topic("laundry"), 400.0).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        drain(&mut seen, &mut configs, &mut states, &mut availability);
        assert!(
            Instant::now() < deadline,
            "no state with the grid at 1000 W: {states:?}"
        );
    }

    // The discovery configs, as Home Assistant's MQTT sensor schema takes them.
    let objects: Vec<&str> = configs
        .keys()
        .map(|t| {
            t.trim_end_matches("/config")
                .rsplit('/')
                .next()
                .unwrap_or_default()
        })
        .collect();
    for want in [
        "production",
        "consumption",
        "surplus",
        "grid",
        "battery_power",
        "battery_charge",
        "signal",
        "service_laundry_allocated",
        "service_laundry_state",
    ] {
        assert!(objects.contains(&want), "no {want} in {objects:?}");
    }
    let mut unique = std::collections::BTreeSet::new();
    for (t, c) in &configs {
        assert!(t.starts_with(&format!("{prefix}/sensor/{node_id}/")), "{t}");
        assert!(
            unique.insert(c["unique_id"].as_str().unwrap_or_default().to_string()),
            "{t}: unique_id repeated"
        );
        assert_eq!(c["state_topic"], Value::from(state_topic.clone()), "{t}");
        assert_eq!(
            c["availability_topic"],
            Value::from(format!("communalia/{node_id}/availability")),
            "{t}"
        );
        assert_eq!(
            c["device"]["identifiers"][0],
            Value::from(node_id.clone()),
            "{t}"
        );
        match c["device_class"].as_str() {
            Some("power") => {
                assert_eq!(c["unit_of_measurement"], "W", "{t}");
                assert_eq!(c["state_class"], "measurement", "{t}");
            }
            Some("battery") => {
                assert_eq!(c["unit_of_measurement"], "%", "{t}");
                assert_eq!(c["state_class"], "measurement", "{t}");
            }
            Some("enum") => {
                assert!(
                    c["options"].as_array().is_some_and(|o| !o.is_empty()),
                    "{t}"
                );
                assert!(
                    c.get("unit_of_measurement").is_none(),
                    "{t}: an enum has no unit"
                );
                assert!(
                    c.get("state_class").is_none(),
                    "{t}: an enum has no state class"
                );
            }
            other => panic!("{t}: device_class {other:?}"),
        }
    }
    assert_eq!(availability.last().map(String::as_str), Some("online"));

    // Each template, rendered on a state the node published, gives the figure.
    let state = states
        .iter()
        .rev()
        .find(|s| grid_seen(std::slice::from_ref(s), 1000.0))
        .expect("state")
        .to_string();
    let rendered = |object: &str| {
        let c = configs
            .iter()
            .find(|(t, _)| t.ends_with(&format!("/{object}/config")))
            .map(|(_, c)| c)
            .expect("config");
        render(c["value_template"].as_str().expect("template"), &state)
    };
    assert_eq!(rendered("grid"), "1000.0");
    assert_eq!(rendered("consumption"), "1000.0", "pv + grid + battery");
    assert_eq!(rendered("service_laundry_allocated"), "400.0");
    assert_eq!(rendered("service_laundry_state"), "served");
    assert_eq!(rendered("battery_charge"), "None", "no battery: unknown");
    let signal = rendered("signal");
    assert!(
        ["use", "hold", "unknown"].contains(&signal.as_str()),
        "{signal}"
    );

    // The states follow the live values.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !states
        .iter()
        .any(|s| s["grid_w"] == serde_json::json!(1500.0))
    {
        publish(topic("grid"), 1500.0).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        drain(&mut seen, &mut configs, &mut states, &mut availability);
        assert!(
            Instant::now() < deadline,
            "the grid's 1500 W never reached the state"
        );
    }
    drop(node);

    // Retained configs are removed so the shared broker keeps nothing of the test.
    for t in configs.keys() {
        let _ = ha
            .publish(t.clone(), QoS::AtLeastOnce, true, Vec::<u8>::new())
            .await;
    }
    for t in ["state", "availability"] {
        let _ = ha
            .publish(
                format!("communalia/{node_id}/{t}"),
                QoS::AtLeastOnce,
                true,
                Vec::<u8>::new(),
            )
            .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
}
