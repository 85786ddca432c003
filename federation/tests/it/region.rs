//! Three nodes and a region on loopback: every node's latest summary on the
//! region's page and API, a forged summary refused and counted, a silent node
//! flagged, and the page in a real browser.

use std::sync::Arc;
use std::time::{Duration, Instant};

use federation::clock::{Clock, ScaledClock};
use federation::config::RegionFile;
use federation::identity::NodeKey;
use federation::region::{RegionState, consume};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::nats::NatsServer;
use crate::node::{GRID_W, pv_w, sim_node};
use crate::publish::{SPEED, start_publisher, t0, test_config};

const NODES: [(&str, &str); 3] = [
    ("tilleuls", "Les Tilleuls"),
    ("platanes", "Les Platanes"),
    ("moulin", "Le Moulin"),
];

fn region_file(url: &str, keys: &[String], silent_key: &str) -> RegionFile {
    let mut text = format!(
        "[region]\nname = \"Vallée\"\nlanguage = \"fr\"\ntimezone = \"UTC\"\nnats = [\"{url}\"]\nstale_after = \"10m\"\n"
    );
    for ((id, name), key) in NODES.iter().zip(keys) {
        text.push_str(&format!(
            "[[node]]\nid = \"{id}\"\nname = \"{name}\"\nkey = \"{key}\"\n"
        ));
    }
    text.push_str(&format!(
        "[[node]]\nid = \"silence\"\nname = \"Le Hameau\"\nkey = \"{silent_key}\"\n"
    ));
    RegionFile::parse(&text, "region.toml").expect("region.toml")
}

async fn get_json(url: &str) -> Value {
    reqwest::get(url)
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

fn node<'a>(live: &'a Value, id: &str) -> &'a Value {
    live["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == id))
        .unwrap_or_else(|| panic!("no node {id} in {live}"))
}

/// The figures of a node's latest summary in the region's JSON: its minute
/// index and production, checked against what that node publishes for it.
fn check_node(live: &Value, index: u32, id: &str) -> f64 {
    let summary = &node(live, id)["summary"];
    let minute = summary["minute"].as_str().expect("minute");
    let at = chrono::NaiveDateTime::parse_from_str(minute, "%Y-%m-%dT%H:%MZ")
        .expect("minute label")
        .and_utc();
    let k = (at - t0()).num_minutes();
    let production = summary["production_w"].as_f64().expect("production");
    assert_eq!(production, pv_w(index, k), "{id} at minute {k}");
    assert_eq!(summary["grid_w"].as_f64(), Some(GRID_W));
    production
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_and_a_region_with_a_forged_summary_refused() {
    if !crate::nats::available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let server = NatsServer::single(dir.path());
    let clock: Arc<dyn Clock> = Arc::new(ScaledClock::new(t0(), SPEED));
    let config = test_config(vec![server.url()], 1);
    let mut nodes = Vec::new();
    let mut node_cancels = Vec::new();
    for (i, (id, _)) in NODES.iter().enumerate() {
        let cancel = CancellationToken::new();
        let node = sim_node(id, i as u32 + 1, t0(), 200, clock.clone(), cancel.clone()).await;
        start_publisher(&node, &config, clock.clone(), cancel.clone()).await;
        nodes.push(node);
        node_cancels.push(cancel);
    }
    let keys: Vec<String> = nodes.iter().map(|n| n.key.public().to_string()).collect();
    let silent = NodeKey::from_seed([42; 32], Some("silence")).expect("key");
    let file = region_file(&server.url(), &keys, &silent.public().to_string());

    // A forger signs a summary as `tilleuls` with its own key: a huge production
    // at a late minute, which would be the node's latest if it were believed.
    let forger = NodeKey::from_seed([9; 32], Some("tilleuls")).expect("key");
    let forged = crate::support::summary(
        "tilleuls",
        t0() + chrono::Duration::minutes(10_000),
        999_999.0,
        0.0,
    );
    // Wait for the stream, which the nodes create.
    let client = async_nats::connect(server.url()).await.expect("client");
    let js = async_nats::jetstream::new(client.clone());
    let deadline = Instant::now() + Duration::from_secs(20);
    while js.get_stream("COMMUNALIA").await.is_err() {
        assert!(Instant::now() < deadline, "no stream");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    federation::publish::publish(&js, &forger, &forged)
        .await
        .expect("publish")
        .await
        .expect("stored: the stream does not judge signatures, the region does");

    // The region.
    let region_cancel = CancellationToken::new();
    let state = Arc::new(RegionState::new(&file, clock.clone()).expect("state"));
    let consumer = tokio::spawn(consume(
        client,
        file.region.stream.clone(),
        file.region.consumer.clone(),
        state.clone(),
        region_cancel.clone(),
    ));
    let ctx = federation::region::session(state.clone(), None)
        .await
        .expect("session");
    let base = crate::support::serve_region(state.clone(), ctx, false, None, &region_cancel).await;

    // Every node heard, and the forgery refused.
    let deadline = Instant::now() + Duration::from_secs(30);
    let live = loop {
        let live = get_json(&format!("{base}/api/region/live")).await;
        let heard = NODES
            .iter()
            .all(|(id, _)| !node(&live, id)["summary"].is_null());
        // At 300 times real speed a node's summary goes stale in two real
        // seconds: on a loaded machine a publisher may lag that much for a moment,
        // so the region is judged once all three are current at once.
        if heard && live["refused"]["total"] == 1 && live["totals"]["current"] == 3 {
            break live;
        }
        assert!(Instant::now() < deadline, "region incomplete: {live}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let by = &live["refused"]["by"][0];
    assert_eq!(by["node"], "tilleuls");
    assert_eq!(by["reason"], "bad_signature");
    assert_eq!(by["count"], 1);
    // The node the forger named is flagged, with what was refused and when;
    // the others are not.
    let flagged = &node(&live, "tilleuls")["refused"];
    assert_eq!(flagged["count"], 1, "{live}");
    assert_eq!(flagged["reasons"], serde_json::json!(["bad_signature"]));
    assert!(
        flagged["last"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{flagged}"
    );
    for (id, _) in NODES.iter().filter(|(id, _)| *id != "tilleuls") {
        assert!(node(&live, id).get("refused").is_none(), "{id}: {live}");
    }
    let mut expected_total = 0.0;
    for (i, (id, _)) in NODES.iter().enumerate() {
        expected_total += check_node(&live, i as u32 + 1, id);
    }
    assert_ne!(
        node(&live, "tilleuls")["summary"]["production_w"],
        999_999.0
    );
    assert_eq!(node(&live, "silence")["stale"], true);
    assert!(node(&live, "silence")["summary"].is_null());
    assert_eq!(live["totals"]["nodes"], 4);
    assert_eq!(
        live["totals"]["production_w"].as_f64(),
        Some(expected_total)
    );
    // Every node exports 400 W: each has 400 W of surplus.
    assert_eq!(live["surplus"].as_array().map(Vec::len), Some(3));

    // `moulin` stops; ten simulated minutes later the region says so.
    node_cancels[2].cancel();
    let deadline = Instant::now() + Duration::from_secs(30);
    let live = loop {
        let live = get_json(&format!("{base}/api/region/live")).await;
        // The two still running current at the same moment (see above).
        if node(&live, "moulin")["stale"] == true && live["totals"]["current"] == 2 {
            break live;
        }
        assert!(Instant::now() < deadline, "moulin never went stale: {live}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(node(&live, "tilleuls")["stale"], false);

    // The page, as a browser asks for it in English, and in French.
    let page = reqwest::Client::new()
        .get(format!("{base}/"))
        .header("Accept-Language", "en")
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    for (_, name) in NODES {
        assert!(page.contains(name), "{name} missing from the page");
    }
    assert!(page.contains("Le Hameau") && page.contains("Never heard from"));
    assert!(
        page.contains(r#"<tr class="node-stale" data-node="moulin">"#),
        "{page}"
    );
    assert!(page.contains("1 summary refused"), "{page}");
    assert_eq!(
        page.matches("node-refused\"").count(),
        1,
        "only the forged node: {page}"
    );
    assert!(
        // Current or, on a loaded machine, already out of date: flagged either way.
        page.contains(r#" node-refused" data-node="tilleuls">"#)
            && page.contains("1 summary under this name refused"),
        "the forged node's row is flagged: {page}"
    );
    crate::browser::region_page_in_a_browser(&base).await;

    for c in &node_cancels {
        c.cancel();
    }
    region_cancel.cancel();
    let _ = consumer.await;
}
