//! A household's consumption is that household's (DESIGN.md §9): a running node
//! whose household's meter publishes over MQTT keeps that meter off every public
//! answer, counts it in the site's totals, and shows it to installers.

use std::path::Path;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::cli::{run_cli, stdout_of};
use crate::support::*;

/// In the household meter's id and name, and nowhere else.
const MARKER: &str = "q7x9z";
/// Its power: no total of the site comes to it (see [`site`]).
const HOUSEHOLD_W: &str = "613.37";

/// A battery, the laundry service's meter, and a household's meter, on the
/// embedded broker at `port`; `ivo` is an installer.
fn site(dir: &Path, port: u16) -> String {
    let config = format!(
        "[site]\nname = \"x\"\nlatitude = 1.0\nlongitude = 2.0\n\
         [storage]\ndir = \"{dir}\"\n\
         [mqtt]\nbroker = \"embedded\"\nembedded_bind = \"127.0.0.1:{port}\"\n\
         [[device]]\nid = \"battery\"\nrole = \"battery\"\nprofile = \"generic-json\"\n\
         mqtt = {{ topic = \"t/battery\", fields = {{ power_w = \"p\", soc_pct = \"soc\" }} }}\n\
         [[device]]\nid = \"laundry-meter\"\nrole = \"load\"\nprofile = \"generic-json\"\n\
         mqtt = {{ topic = \"t/laundry\", fields = {{ power_w = \"p\" }} }}\n\
         [[device]]\nid = \"foyer-q7x9z\"\nname = \"Logement Q7X9Z des Martin\"\n\
         role = \"load\"\nprofile = \"generic-json\"\n\
         mqtt = {{ topic = \"t/foyer\", fields = {{ power_w = \"p\" }} }}\n\
         [[service]]\nid = \"laundry\"\nmeter = \"laundry-meter\"\ntier = 1\n\
         [[member]]\nname = \"ivo\"\nroles = [\"installer\"]\n",
        dir = dir.display()
    );
    let path = dir.join("site.toml");
    std::fs::write(&path, config).expect("write the configuration");
    path.to_string_lossy().into_owned()
}

/// A client of the embedded broker whose event loop runs in the background.
fn publisher(port: u16) -> AsyncClient {
    let (client, mut eventloop) =
        AsyncClient::new(MqttOptions::new("privacy-test", "127.0.0.1", port), 64);
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Disconnect)) => break,
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    client
}

fn assert_no_household(what: &str, body: &str) {
    assert!(
        !body.to_lowercase().contains(MARKER),
        "{what} names the household's meter:\n{body}"
    );
    assert!(
        !body.contains(HOUSEHOLD_W),
        "{what} shows the household's power:\n{body}"
    );
}

/// The first event of `GET /events`, as it arrives.
async fn first_event(base: &str) -> String {
    let mut response = reqwest::get(format!("{base}/events"))
        .await
        .expect("GET /events");
    let mut text = String::new();
    let read = async {
        while let Some(chunk) = response.chunk().await.expect("reading /events") {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if let Some(end) = text.find("\n\n") {
                return text[..end].to_string();
            }
        }
        panic!("/events ended before its first event: {text:?}")
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("an event from /events within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_node_keeps_a_households_meter_off_its_public_answers() {
    let dir = TempDir::new("household");
    let port = free_port();
    let cfg = site(dir.path(), port);
    let node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    let token = stdout_of(
        &run_cli(&["token", "create", "--user", "ivo", "--config", &cfg], ""),
        "token create",
    );
    let mqtt = publisher(port);
    let publish = |topic: &'static str, payload: &'static str| {
        let mqtt = mqtt.clone();
        async move {
            mqtt.publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .expect("publish");
        }
    };
    // Until the node has heard all three (the broker keeps nothing for it before
    // it subscribes): the totals then count the household's draw, 800 + 613.37 W.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let live = loop {
        publish("t/battery", r#"{"p": 1000, "soc": 60}"#).await;
        publish("t/laundry", r#"{"p": 800}"#).await;
        publish("t/foyer", r#"{"p": 613.37}"#).await;
        // Unreadable: counted against the household's meter.
        publish("t/foyer", "not json").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let live = get_json(&format!("{}/api/live", node.base)).await;
        let load_w = live["site"]["load_w"].as_f64().unwrap_or_default();
        if (load_w - 1413.37).abs() < 1e-6 {
            break live;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the household's draw never reached the totals: {live:#}"
        );
    };
    let ids: Vec<&str> = live["devices"]
        .as_array()
        .expect("a devices array")
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert_eq!(ids, ["battery", "laundry-meter"], "{live:#}");
    assert_no_household("GET /api/live", &live.to_string());
    assert_no_household("the first /events event", &first_event(&node.base).await);
    for path in ["/metrics", "/", "/wall/today", "/history"] {
        let body = get_text(&format!("{}{path}", node.base)).await;
        assert_no_household(path, &body);
    }

    let devices: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/devices", node.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET /api/devices")
        .json()
        .await
        .expect("JSON");
    assert!(
        devices["devices"]
            .as_array()
            .is_some_and(|all| all.iter().any(|d| d["id"] == "foyer-q7x9z")),
        "the installer does not see the household's meter: {devices:#}"
    );
}
