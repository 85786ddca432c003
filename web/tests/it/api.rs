//! `GET /api/live` and `POST /api/allocation/simulate` against the §8 contract.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;

use crate::support::{get, post_json, send, state};

fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn assert_has(value: &Value, fields: &[&str], what: &str) {
    let have = keys(value);
    for field in fields {
        assert!(have.contains(field), "{what} lacks `{field}`: has {have:?}");
    }
}

fn assert_rfc3339_utc(value: &Value, what: &str) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value}"));
    let parsed = chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{what} = {text:?} is not RFC 3339: {e}"));
    assert_eq!(
        parsed.offset().local_minus_utc(),
        0,
        "{what} is not UTC: {text}"
    );
}

#[tokio::test]
async fn live_has_every_contract_field() {
    let (state, _tx) = state();
    let reply = send(state, get("/api/live", &[])).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.header("content-type").starts_with("application/json"));
    let live = reply.json();

    assert_has(
        &live,
        &["ts", "stale", "site", "services", "devices"],
        "live",
    );
    assert_rfc3339_utc(&live["ts"], "ts");
    assert_eq!(live["stale"], Value::Bool(false));

    let site_fields = [
        "pv_w",
        "grid_w",
        "battery_w",
        "battery_soc_pct",
        "load_w",
        "unmetered_w",
        "available_w",
        "allocated_w",
        "headroom_w",
    ];
    assert_has(&live["site"], &site_fields, "site");
    for field in site_fields {
        assert!(
            live["site"][field].is_number(),
            "site.{field} is not a number"
        );
    }
    assert_eq!(live["site"]["pv_w"], 4321.0);

    let services = live["services"]
        .as_array()
        .unwrap_or_else(|| panic!("services"));
    assert_eq!(services.len(), 6);
    for service in services {
        assert_has(
            service,
            &["id", "name", "tier", "demand_w", "allocated_w", "state"],
            "services[]",
        );
        assert!(service["demand_w"].is_number() && service["allocated_w"].is_number());
        let state = service["state"].as_str().unwrap_or_default();
        assert!(
            ["served", "partial", "shed", "idle"].contains(&state),
            "state {state:?}"
        );
    }
    assert_eq!(services[3]["state"], "partial");

    let devices = live["devices"]
        .as_array()
        .unwrap_or_else(|| panic!("devices"));
    assert_eq!(devices.len(), 2);
    for device in devices {
        assert_has(
            device,
            &["id", "role", "power_w", "last_seen", "healthy"],
            "devices[]",
        );
        assert!(device["healthy"].is_boolean());
        let state = device["state"].as_str().unwrap_or_default();
        assert!(
            ["up", "degraded", "down"].contains(&state),
            "state {state:?}"
        );
    }
    assert_eq!(
        (devices[0]["state"].as_str(), devices[1]["state"].as_str()),
        (Some("up"), Some("down"))
    );
    assert_rfc3339_utc(&devices[0]["last_seen"], "devices[0].last_seen");
    assert!(devices[0]["power_w"].is_number());
}

/// The French collective self-consumption default key (DESIGN.md §4): one tier,
/// pro rata, no minima. Demands 2/3/5 kW share 6 kW as 1.2/1.8/3 kW.
#[tokio::test]
async fn simulate_french_key() {
    let (state, _tx) = state();
    let body = r#"{
        "available_w": 6000,
        "tiers": [{"tier": 1, "split": "pro_rata"}],
        "services": [
            {"id": "a", "tier": 1, "demand_w": 2000, "min_w": 0},
            {"id": "b", "tier": 1, "demand_w": 3000, "min_w": 0},
            {"id": "c", "tier": 1, "demand_w": 5000, "min_w": 0}
        ]
    }"#;
    let reply = send(state, post_json("/api/allocation/simulate", body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let result = reply.json();
    let close = |v: &Value, want: f64| (v.as_f64().unwrap_or(f64::NAN) - want).abs() < 1e-6;
    assert!(close(&result["allocated_w"], 6000.0), "{result}");
    assert!(close(&result["headroom_w"], 0.0), "{result}");
    let services = result["services"]
        .as_array()
        .unwrap_or_else(|| panic!("{result}"));
    let by_id = |id: &str| {
        services
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {result}"))
    };
    for (id, want) in [("a", 1200.0), ("b", 1800.0), ("c", 3000.0)] {
        let service = by_id(id);
        assert!(close(&service["allocated_w"], want), "{id}: {service}");
        assert_eq!(service["state"], "partial", "{id}: {service}");
    }
}

#[tokio::test]
async fn simulate_missing_field_is_named() {
    let (state, _tx) = state();
    let body = r#"{"available_w": 6000, "services": [{"id": "a", "tier": 1}]}"#;
    let reply = send(state, post_json("/api/allocation/simulate", body)).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    let error = reply.json();
    let message = error["error"].as_str().unwrap_or_default();
    assert!(message.contains("demand_w"), "{error}");
    let problems = error["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("{error}"));
    assert!(
        problems
            .iter()
            .any(|p| p.as_str().unwrap_or_default().contains("services[0]")),
        "the problem should say where: {error}"
    );
}

#[tokio::test]
async fn simulate_wrong_type_and_unknown_field_are_named() {
    let (state, _tx) = state();
    let body = r#"{"available_w": "lots", "services": []}"#;
    let reply = send(state.clone(), post_json("/api/allocation/simulate", body)).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply.json()["error"]
            .as_str()
            .unwrap_or_default()
            .contains("available_w")
    );

    let body = r#"{"available_w": 1, "services": [], "colour": "blue"}"#;
    let reply = send(state, post_json("/api/allocation/simulate", body)).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply.json()["error"]
            .as_str()
            .unwrap_or_default()
            .contains("colour")
    );
}

#[tokio::test]
async fn simulate_malformed_json_is_a_clear_400() {
    let (state, _tx) = state();
    let reply = send(
        state.clone(),
        post_json("/api/allocation/simulate", r#"{"available_w": 6000,"#),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let error = reply.json();
    assert!(
        error["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not valid JSON"),
        "{error}"
    );
    assert!(error["problems"].as_array().is_some_and(|p| !p.is_empty()));

    let request = Request::post("/api/allocation/simulate")
        .header("content-type", "text/plain")
        .body(Body::from("{}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let reply = send(state, request).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        reply.json()["error"]
            .as_str()
            .unwrap_or_default()
            .contains("application/json")
    );
}

/// What the allocation refuses comes back as 422 with its list of problems.
#[tokio::test]
async fn simulate_refused_input_is_422_with_problems() {
    let (state, _tx) = state();
    let body = r#"{"available_w": -5, "services": [{"id": "a", "tier": 1, "demand_w": -3}]}"#;
    let reply = send(state, post_json("/api/allocation/simulate", body)).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    let error = reply.json();
    assert!(error["error"].is_string(), "{error}");
    let problems = error["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("{error}"));
    assert!(
        !problems.is_empty() && problems.iter().all(Value::is_string),
        "{error}"
    );
}

#[tokio::test]
async fn unknown_api_path_is_json_404() {
    let (state, _tx) = state();
    let reply = send(state, get("/api/nothing-here", &[])).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(
        reply.json()["error"]
            .as_str()
            .unwrap_or_default()
            .contains("/api/nothing-here")
    );
}
