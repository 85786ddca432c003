//! The node's own repair need on a running node: a simulated inverter stops
//! answering for longer than `[planning] repair_after`, the node opens a collective
//! need to repair it (author `node`, in the site's language); the device comes
//! back, the need stays open until a resident's repair naming a commitment on it is
//! validated by two peers, and the node then closes it.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sensors::sim::sunspec::{InverterState, build_inverter_image, write_inverter};
use sensors::sim::{RegisterImage, SimControl, serve_modbus_gateway};
use tokio::net::TcpListener;

use crate::cli::{run_cli, stdout_of};
use crate::support::*;

/// A SunSpec inverter producing 2 kW on a free port, and the switch that silences it.
async fn inverter() -> (u16, Arc<SimControl>) {
    let mut image = RegisterImage::default();
    build_inverter_image(&mut image, 40000);
    write_inverter(
        &mut image,
        40000,
        &InverterState {
            power_w: 2000.0,
            energy_wh: 1_000_000.0,
            voltage_v: 231.0,
            frequency_hz: 50.0,
            temperature_c: 35.0,
            status: 4,
        },
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sim");
    let port = listener.local_addr().expect("addr").port();
    let control = SimControl::new();
    tokio::spawn(serve_modbus_gateway(
        listener,
        vec![(1, Arc::new(RwLock::new(image)))],
        control.clone(),
    ));
    (port, control)
}

/// The intent the node opened for `roof-school`, if any, in any state.
async fn repair_need(
    client: &reqwest::Client,
    node: &NodeProc,
    token: &str,
) -> Option<serde_json::Value> {
    let all: serde_json::Value = client
        .get(format!("{}/api/intents?state=all", node.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("intents")
        .json()
        .await
        .expect("intents JSON");
    all.as_array()?
        .iter()
        .find(|i| i["device"] == "roof-school")
        .cloned()
}

async fn post(
    client: &reqwest::Client,
    node: &NodeProc,
    token: &str,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let reply = client
        .post(format!("{}{path}", node.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = reply.status();
    let json: serde_json::Value = reply.json().await.unwrap_or_default();
    assert!(status.is_success(), "POST {path}: {status} {json}");
    json
}

#[tokio::test]
async fn a_device_down_opens_a_repair_need_that_closes_once_back_and_repaired() {
    let (port, control) = inverter().await;
    let dir = TempDir::new("repair");
    let config = format!(
        r#"
[site]
name = "Les Tilleuls"
language = "fr"
timezone = "Europe/Paris"
latitude = 45.76
longitude = 4.84

[storage]
dir = "{dir}"

[planning]
repair_after = "2s"

[[device]]
id = "roof-school"
name = "l'onduleur du toit de l'école"
role = "pv"
profile = "sunspec"
modbus = {{ host = "127.0.0.1", port = {port}, unit = 1 }}
poll_interval = "200ms"

[[service]]
id = "lights"
demand_w = 100
tier = 1

[[member]]
name = "ana"
roles = ["resident", "assembly"]

[[member]]
name = "bea"
roles = ["resident"]

[[member]]
name = "carl"
roles = ["resident"]
"#,
        dir = dir.path().display()
    );
    let path = dir.path().join("site.toml");
    std::fs::write(&path, config).expect("write config");
    let cfg = path.to_string_lossy().to_string();
    for (name, roles) in [
        ("ana", &["--role", "resident", "--role", "assembly"][..]),
        ("bea", &["--role", "resident"][..]),
        ("carl", &["--role", "resident"][..]),
    ] {
        let mut args = vec!["user", "add", name];
        args.extend_from_slice(roles);
        args.extend_from_slice(&["--generate", "--config", &cfg]);
        stdout_of(&run_cli(&args, ""), "user add");
    }
    let node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    let token = |name: &str| {
        stdout_of(
            &run_cli(&["token", "create", "--user", name, "--config", &cfg], ""),
            "token create",
        )
    };
    let (ana, bea, carl) = (token("ana"), token("bea"), token("carl"));
    let client = reqwest::Client::new();
    let healthy = |up: bool| {
        move |live: &serde_json::Value| {
            live["devices"]
                .as_array()
                .and_then(|d| d.iter().find(|d| d["id"] == "roof-school"))
                .is_some_and(|d| d["healthy"] == up)
        }
    };
    wait_live(&node, Duration::from_secs(20), "inverter up", healthy(true)).await;

    // The inverter stops answering: down, then past repair_after a need opens.
    control.set_silent(true);
    wait_live(
        &node,
        Duration::from_secs(20),
        "inverter down",
        healthy(false),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let need = loop {
        if let Some(need) = repair_need(&client, &node, &ana).await {
            break need;
        }
        assert!(Instant::now() < deadline, "no repair need within 30 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(need["author"], "node");
    assert_eq!(need["class"], "repair");
    assert_eq!(need["collective"], true);
    assert_eq!(need["description"], "Réparer l'onduleur du toit de l'école");
    assert_eq!(need["state"], "open");
    let id = need["id"].as_i64().expect("id");

    // Back, but nobody repaired it yet: the need stays open, and only one was opened.
    control.set_silent(false);
    wait_live(
        &node,
        Duration::from_secs(20),
        "inverter back",
        healthy(true),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let still = repair_need(&client, &node, &ana).await.expect("the need");
    assert_eq!(
        (still["id"].as_i64(), &still["state"]),
        (Some(id), &serde_json::json!("open"))
    );

    // bea commits, the assembly accepts for the node, she records the repair naming
    // the commitment, and two peers approve it.
    let commitment = post(
        &client,
        &node,
        &bea,
        &format!("/api/intents/{id}/commitments"),
        serde_json::json!({"quantity": 2, "note": "Je regarde le fusible"}),
    )
    .await["id"]
        .as_i64()
        .expect("commitment id");
    post(
        &client,
        &node,
        &ana,
        &format!("/api/commitments/{commitment}/accept"),
        serde_json::json!({}),
    )
    .await;
    let today = chrono::Utc::now().date_naive().to_string();
    let contribution = post(
        &client,
        &node,
        &bea,
        "/api/contributions",
        serde_json::json!({
            "category": "repair",
            "hours": 2,
            "date": today,
            "description": "Fusible de l'onduleur changé",
            "commitment": commitment,
        }),
    )
    .await["id"]
        .as_i64()
        .expect("contribution id");
    for peer in [&ana, &carl] {
        post(
            &client,
            &node,
            peer,
            &format!("/api/contributions/{contribution}/attestations"),
            serde_json::json!({"verdict": "approve", "comment": ""}),
        )
        .await;
    }
    // The node sees the device back and the repair validated: it closes the need.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let need = repair_need(&client, &node, &ana).await.expect("the need");
        if need["state"] == "closed" {
            break;
        }
        assert!(Instant::now() < deadline, "not closed within 20 s: {need}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let verify: serde_json::Value = client
        .get(format!("{}/api/ledger/verify", node.base))
        .bearer_auth(&ana)
        .send()
        .await
        .expect("verify")
        .json()
        .await
        .expect("verify JSON");
    assert_eq!(verify["intact"], true, "{verify}");
}
