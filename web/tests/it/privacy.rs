//! A household's consumption is that household's (DESIGN.md §6, §9): a site with a
//! household's meter (a `load` that meters no service), its live snapshot made by
//! the real evaluation and its public view fed as the node feeds it. No public
//! answer names that meter or shows its power; the site's totals still count it;
//! installers see it on their routes.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use chrono::Utc;
use futures::StreamExt;
use ingest::history::{History, HistoryOptions};
use ingest::metrics::IngestMetrics;
use ingest::plausible::RejectReason;
use ingest::reading::Reading;
use ingest::store::LiveStore;
use query::engine::{Engine, EngineOptions};
use query::live::LiveSnapshot;
use sensors::config::DeviceConfig;
use sensors::model::Metric;
use tokio::sync::watch;
use tower::ServiceExt;
use web::{Access, AppState};

use crate::support::{get, login, request, send, with_members_in};

/// The household's meter: its id and name carry a string found nowhere else, so
/// that finding it anywhere in an answer means the meter leaked.
pub(crate) const MARKER: &str = "q7x9z";
pub(crate) const HOUSEHOLD: &str = "foyer-q7x9z";
const HOUSEHOLD_NAME: &str = "Logement Q7X9Z des Martin";
/// Its power: a figure no total of the site comes to.
const HOUSEHOLD_W: f64 = 613.37;
pub(crate) const HOUSEHOLD_W_TEXT: &str = "613.37";

/// The community's devices, in the configuration's order.
const COMMUNITY: [&str; 4] = ["roof", "grid-meter", "battery", "clinic-meter"];

fn device(json: serde_json::Value) -> DeviceConfig {
    serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn devices() -> Vec<DeviceConfig> {
    let plain = |id: &str, role: &str| {
        device(serde_json::json!({
            "id": id, "role": role, "profile": "generic-json", "mqtt": {"topic": format!("t/{id}")}
        }))
    };
    vec![
        plain("roof", "pv"),
        plain("grid-meter", "grid"),
        plain("battery", "battery"),
        plain("clinic-meter", "load"),
        device(serde_json::json!({
            "id": HOUSEHOLD, "name": HOUSEHOLD_NAME, "role": "load",
            "profile": "generic-json", "mqtt": {"topic": "t/foyer"}
        })),
    ]
}

pub(crate) fn services() -> Vec<query::config::ServiceConfig> {
    [
        serde_json::json!({"id": "clinic-fridge", "meter": "clinic-meter", "tier": 1}),
        serde_json::json!({"id": "laundry", "demand_w": 1500.0, "tier": 2}),
    ]
    .into_iter()
    .map(|j| serde_json::from_value(j).unwrap_or_else(|e| panic!("{e}")))
    .collect()
}

/// What the site reads now: the roof gives 3000 W, the grid 200 W, the battery
/// charges at 500 W (55 %), the clinic's meter draws 150 W and the household
/// 613.37 W. By hand: `load_w` = 150 + 613.37 = 763.37; `unmetered_w` =
/// 3000 + 200 − 500 − 763.37 = 1936.63.
fn readings(ts_ms: i64) -> Vec<Reading> {
    let r = |device: &str, metric, value| Reading {
        ts_ms,
        device: device.into(),
        metric,
        value,
    };
    vec![
        r("roof", Metric::PowerW, 3000.0),
        r("grid-meter", Metric::PowerW, 200.0),
        r("battery", Metric::PowerW, -500.0),
        r("battery", Metric::SocPct, 55.0),
        r("clinic-meter", Metric::PowerW, 150.0),
        r(HOUSEHOLD, Metric::PowerW, HOUSEHOLD_W),
    ]
}

/// Ingest's counters, the household's meter among them as a polled device that
/// rejected one payload.
fn ingest_metrics() -> IngestMetrics {
    let metrics = IngestMetrics::default();
    let now = Utc::now();
    for id in COMMUNITY.into_iter().chain([HOUSEHOLD]) {
        metrics.register_device_as(id, "modbus-tcp 127.0.0.1:502".into(), "generic-json");
        metrics.record_poll(id, now, 2, &[], Ok(Duration::from_millis(40)));
        metrics.set_planned_transactions(id, 2);
    }
    metrics.reject_payload(HOUSEHOLD, RejectReason::Decode);
    metrics.reject_payload("clinic-meter", RejectReason::Decode);
    metrics
}

/// The site, its snapshot evaluated by the engine over the readings above, its
/// public view fed as `communalia run` feeds it, and a history holding the last
/// ten minutes of the same readings; the members of `with_members`. The sender of
/// the full snapshots is returned: dropping it ends the event streams.
pub(crate) async fn site() -> (
    AppState,
    watch::Sender<Arc<LiveSnapshot>>,
    tempfile::TempDir,
) {
    let now = Utc::now();
    let (mut state, _support_tx) =
        with_members_in(query::engine::empty_snapshot(now), ingest_metrics());
    let (devices, services) = (devices(), services());

    let store = Arc::new(LiveStore::new(Duration::from_secs(120)));
    store
        .append(&readings(now.timestamp_millis() - 1_000))
        .unwrap_or_else(|e| panic!("{e}"));
    let engine = Engine::new(
        store,
        state.metrics.clone(),
        state.journal.clone(),
        &devices,
        &services,
        EngineOptions::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let full = engine.evaluate(now).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        full.devices.iter().any(|d| &*d.id == HOUSEHOLD),
        "the full snapshot has the household's meter: {:?}",
        full.devices
    );

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let history =
        History::open(dir.path(), HistoryOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let mut past = Vec::new();
    for k in 1..=60 {
        past.extend(readings(now.timestamp_millis() - k * 10_000));
    }
    history
        .add_pending(None, &past)
        .unwrap_or_else(|e| panic!("{e}"));
    let queries = query::history_session::Queries::new(history, &devices, &services)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // As `communalia run` wires it (src/node.rs).
    let (full_tx, full_rx) = watch::channel(Arc::new(full));
    let visibility = queries.visibility().clone();
    let (public, feed) = query::visibility::public_feed(full_rx.clone(), visibility.clone());
    tokio::spawn(feed);
    state.live = public;
    state.live_full = full_rx;
    state.visibility = visibility;
    state.queries = Some(queries);
    (state, full_tx, dir)
}

/// What an answer must not hold: the household's id, its name, or its power.
pub(crate) fn assert_no_household(what: &str, body: &str) {
    let lower = body.to_lowercase();
    assert!(
        !lower.contains(MARKER),
        "{what} names the household's meter:\n{body}"
    );
    // The figure, or a mean of it summed in another order (613.3699999999999).
    assert!(
        !body.contains(HOUSEHOLD_W_TEXT) && !body.contains("613.369999"),
        "{what} shows the household's power:\n{body}"
    );
}

/// The data of the first event of `GET /events`, read as it arrives.
async fn first_event(state: &AppState) -> String {
    let response = web::app(state.clone())
        .oneshot(get("/events", &[]))
        .await
        .unwrap_or_else(|e| match e {});
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body().into_data_stream();
    let mut text = String::new();
    let read = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.unwrap_or_else(|e| panic!("reading /events: {e}"));
            text.push_str(&String::from_utf8_lossy(&chunk));
            if let Some(end) = text.find("\n\n") {
                return text[..end].to_string();
            }
        }
        panic!("/events ended before its first event: {text:?}")
    };
    let block = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .unwrap_or_else(|_| panic!("no event from /events within 10 s"));
    assert!(block.contains("event: snapshot"), "{block}");
    block
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect::<Vec<_>>()
        .join("\n")
}

fn device_ids(live: &serde_json::Value) -> Vec<String> {
    live["devices"]
        .as_array()
        .unwrap_or_else(|| panic!("no devices array: {live}"))
        .iter()
        .map(|d| d["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn close(value: &serde_json::Value, expected: f64) -> bool {
    value.as_f64().is_some_and(|v| (v - expected).abs() < 1e-6)
}

#[tokio::test]
async fn a_household_meter_is_not_in_the_public_live_view() {
    let (state, _tx, _dir) = site().await;
    let live = send(state.clone(), get("/api/live", &[])).await;
    assert_eq!(live.status, StatusCode::OK, "{}", live.body);
    assert_no_household("GET /api/live", &live.body);
    let event = first_event(&state).await;
    assert_no_household("the first /events event", &event);

    for (what, body) in [("GET /api/live", live.body.as_str()), ("/events", &event)] {
        let json: serde_json::Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"));
        // The §8 shape: the devices array stays, with the community's devices.
        assert_eq!(device_ids(&json), COMMUNITY, "{what}");
        // The totals still count the household's draw.
        assert!(close(&json["site"]["load_w"], 763.37), "{what}: {json}");
        assert!(
            close(&json["site"]["unmetered_w"], 1936.63),
            "{what}: {json}"
        );
    }
}

#[tokio::test]
async fn metrics_do_not_name_household_meters() {
    let (state, _tx, _dir) = site().await;
    let reply = send(state, get("/metrics", &[])).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_no_household("GET /metrics", &reply.body);
    // The community's devices are still there, family by family.
    for line in [
        r#"communalia_payloads_rejected_total{device="clinic-meter",reason="decode"} 1"#,
        r#"communalia_modbus_transactions_total{device="clinic-meter"} 2"#,
        r#"communalia_modbus_exceptions_total{device="roof"} 0"#,
        r#"communalia_modbus_transactions_per_cycle{device="grid-meter"} 2"#,
        r#"communalia_modbus_planned_transactions_per_cycle{device="battery"} 2"#,
        r#"communalia_device_poll_latency_seconds{device="roof"} 0.04"#,
        r#"communalia_device_up{device="clinic-meter"} 1"#,
    ] {
        assert!(reply.body.contains(line), "no `{line}` in\n{}", reply.body);
    }
}

/// The history's charts and the wall's curve sum roles and services, and never
/// had a row per meter: this keeps it so.
#[tokio::test]
async fn the_public_history_and_todays_curve_show_no_household_meter() {
    let (state, _tx, _dir) = site().await;
    for path in ["/history", "/history?view=week", "/wall/today", "/"] {
        let reply = send(state.clone(), get(path, &[])).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
        assert_no_household(path, &reply.body);
    }
    // Nor for a member who is not an installer, export form included.
    let rita = login(&state, "rita").await;
    let reply = send(state.clone(), get("/history", &[("cookie", &rita.cookie)])).await;
    assert!(reply.body.contains("clinic-meter"), "{}", reply.body);
    assert_no_household("/history for a resident", &reply.body);
}

/// Every public route of the table, asked by someone who is not signed in, and
/// every read route a member who is neither installer nor admin may call: none
/// answers with the household's meter. The installers' routes do.
#[tokio::test]
async fn no_public_route_names_a_household_meter_but_installers_see_it() {
    let (state, tx, _dir) = site().await;
    // The event streams end when the live loop is gone, so no request hangs; the
    // public view fed so far stays.
    drop(tx);
    let rita = login(&state, "rita").await;
    let aline = login(&state, "aline").await;
    let mut asked = 0;
    for spec in web::routes() {
        let path = spec.path.replace("{id}", "1");
        let what = format!("{} {path}", spec.method);
        let cookie = match spec.access {
            Access::Public => None,
            _ if spec.changes_state() => continue,
            Access::AnyMember => Some(&rita.cookie),
            Access::Role(ledger::Role::Assembly) => Some(&aline.cookie),
            Access::Role(ledger::Role::Resident) => Some(&rita.cookie),
            // Theirs to see.
            Access::Role(ledger::Role::Installer | ledger::Role::Admin) => continue,
        };
        let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("cookie", c.as_str())).collect();
        let body = if spec.method == Method::GET { "" } else { "{}" };
        let reply = send(
            state.clone(),
            request(spec.method.as_str(), &path, &headers, body),
        )
        .await;
        assert_no_household(&what, &reply.body);
        asked += 1;
    }
    assert!(asked >= 20, "only {asked} routes were asked");

    let ivo = login(&state, "ivo").await;
    let devices = send(
        state.clone(),
        get("/api/devices", &[("cookie", &ivo.cookie)]),
    )
    .await;
    assert_eq!(devices.status, StatusCode::OK, "{}", devices.body);
    let json = devices.json();
    let household = json["devices"]
        .as_array()
        .and_then(|all| all.iter().find(|d| d["id"] == HOUSEHOLD))
        .unwrap_or_else(|| panic!("the installer does not see the household's meter: {json}"));
    assert_eq!(household["name"], HOUSEHOLD_NAME);
    let page = send(state.clone(), get("/installer", &[("cookie", &ivo.cookie)])).await;
    assert!(page.body.contains(HOUSEHOLD), "{}", page.body);
}
