//! The history's API and pages: the export (CSV and Parquet, a household's
//! readings kept to installers), installer SQL, and the assembly's replay of a
//! draft over the recorded history.

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Float64Type;
use axum::http::StatusCode;
use chrono::{DurationRound, Utc};
use ingest::history::{History, HistoryOptions};
use ingest::reading::Reading;
use sensors::config::DeviceConfig;
use sensors::model::{Metric, Role};

use crate::assembly::{form, post_form};
use crate::support::{get, login, request, send, with_members};

fn device(id: &str, role: Role) -> DeviceConfig {
    serde_json::from_value(serde_json::json!({
        "id": id, "role": role.as_str(), "profile": "generic-json",
        "mqtt": {"topic": format!("t/{id}")}
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

fn service(json: serde_json::Value) -> query::config::ServiceConfig {
    serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"))
}

/// `with_members` with a history: ten minutes, an hour ago, of PV at 3000 W, the
/// fridge's meter at 150 W, the laundry's at 2900 W and a household's meter at
/// 700 W, every 10 s; and the allocation the live side recorded meanwhile (fridge
/// 150 W, laundry 600 W).
async fn with_history() -> (web::AppState, tempfile::TempDir) {
    let (mut state, _tx) = with_members();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let history =
        History::open(dir.path(), HistoryOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let t0 = (Utc::now() - chrono::Duration::hours(1))
        .duration_trunc(chrono::Duration::minutes(1))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut readings = Vec::new();
    for k in 0..60 {
        let ts_ms = t0.timestamp_millis() + k * 10_000;
        let r = |device: &str, metric, value| Reading {
            ts_ms,
            device: device.into(),
            metric,
            value,
        };
        readings.extend([
            r("roof", Metric::PowerW, 3000.0),
            r("fridge-meter", Metric::PowerW, 150.0),
            r("laundry-meter", Metric::PowerW, 2900.0),
            r("house-7", Metric::PowerW, 700.0),
            r("service:clinic-fridge", Metric::AllocatedW, 150.0),
            r("service:laundry", Metric::AllocatedW, 600.0),
            r("service:clinic-fridge", Metric::Shed, 0.0),
            r("service:laundry", Metric::Shed, 0.0),
        ]);
    }
    history
        .add_pending(None, &readings)
        .unwrap_or_else(|e| panic!("{e}"));
    let devices = [
        device("roof", Role::Pv),
        device("fridge-meter", Role::Load),
        device("laundry-meter", Role::Load),
        device("house-7", Role::Load),
    ];
    let services = [
        service(serde_json::json!({"id": "clinic-fridge", "meter": "fridge-meter", "tier": 1})),
        service(serde_json::json!({"id": "laundry", "meter": "laundry-meter", "tier": 2})),
    ];
    state.queries = Some(
        query::history_session::Queries::new(history, &devices, &services)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    (state, dir)
}

/// Devices and rows of a CSV export.
fn csv_devices(body: &str) -> (usize, std::collections::BTreeSet<String>) {
    let mut lines = body.lines();
    assert_eq!(lines.next(), Some("ts,device,metric,value"), "{body}");
    let rows: Vec<&str> = lines.collect();
    let devices = rows
        .iter()
        .filter_map(|l| l.split(',').nth(1).map(str::to_string))
        .collect();
    (rows.len(), devices)
}

#[tokio::test]
async fn members_export_the_communitys_devices_and_installers_no_households_history() {
    let (state, _dir) = with_history().await;
    let rita = login(&state, "rita").await;
    let reply = send(
        state.clone(),
        get("/api/export?metric=power_w", &[("cookie", &rita.cookie)]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(reply.header("content-type").starts_with("text/csv"));
    let (rows, devices) = csv_devices(&reply.body);
    let expected: std::collections::BTreeSet<String> = ["fridge-meter", "laundry-meter", "roof"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        devices, expected,
        "the household's meter is not the community's"
    );
    assert_eq!(rows, 3 * 60);

    let refused = send(
        state.clone(),
        get("/api/export?device=house-7", &[("cookie", &rita.cookie)]),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("`house-7`"), "{}", refused.body);

    // Installers see a household meter's health, not its history, unless the
    // household consents (web/tests/it/consent.rs).
    let ivo = login(&state, "ivo").await;
    let refused = send(
        state.clone(),
        get("/api/export?device=house-7", &[("cookie", &ivo.cookie)]),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains("`house-7`"), "{}", refused.body);
    let everything = send(
        state.clone(),
        get("/api/export", &[("cookie", &ivo.cookie)]),
    )
    .await;
    assert_eq!(everything.status, StatusCode::OK);
    assert!(
        !csv_devices(&everything.body).1.contains("house-7"),
        "{}",
        everything.body
    );

    for bad in [
        "/api/export?from=yesterday",
        "/api/export?format=xlsx",
        "/api/export?metric=watts",
        "/api/export?colour=red",
    ] {
        let reply = send(state.clone(), get(bad, &[("cookie", &ivo.cookie)])).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            reply.body
        );
    }
}

#[tokio::test]
async fn a_parquet_export_is_a_file_another_reader_opens() {
    let (state, _dir) = with_history().await;
    let ivo = login(&state, "ivo").await;
    let request = get(
        "/api/export?format=parquet&device=roof&metric=power_w",
        &[("cookie", &ivo.cookie)],
    );
    let response = tower::ServiceExt::oneshot(web::app(state.clone()), request)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), StatusCode::OK);
    let bytes: bytes::Bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"));
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .unwrap_or_else(|e| panic!("parquet: {e}"));
    let batches: Vec<RecordBatch> = reader
        .map(|b| b.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, 60);
    let sum: f64 = batches
        .iter()
        .map(|b| {
            b.column(3)
                .as_primitive::<Float64Type>()
                .iter()
                .flatten()
                .sum::<f64>()
        })
        .sum();
    assert_eq!(sum, 60.0 * 3000.0);
    let names: Vec<String> = batches[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["ts", "device", "metric", "value"]);
}

#[tokio::test]
async fn installers_query_the_history_in_sql_read_only() {
    let (state, _dir) = with_history().await;
    let ivo = login(&state, "ivo").await;
    let ask = |sql: &str| {
        request(
            "POST",
            "/api/sql",
            &[("cookie", &ivo.cookie), ("x-csrf-token", &ivo.csrf)],
            &serde_json::json!({ "sql": sql }).to_string(),
        )
    };
    let reply = send(
        state.clone(),
        ask(
            "SELECT CAST(device AS VARCHAR) AS d, avg(value) AS w FROM readings
             WHERE metric = 'power_w' GROUP BY 1 ORDER BY 1",
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["columns"], serde_json::json!(["d", "w"]));
    // The household's meter is not among them: no grant lets installers read it.
    assert_eq!(
        body["rows"],
        serde_json::json!([
            {"d": "fridge-meter", "w": 150.0},
            {"d": "laundry-meter", "w": 2900.0},
            {"d": "roof", "w": 3000.0}
        ])
    );
    assert_eq!(body["truncated"], false);
    let refused = send(state.clone(), ask("DROP TABLE readings")).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
}

/// The draft caps the laundry at 1000 W. Over the ten recorded minutes the sun's
/// 3000 W covers both minima (100 W each) and the fridge's other 50 W, and leaves
/// 2750 W for the 900 W more the capped laundry may take: 1000 W for ten minutes,
/// 167 Wh (uncapped it would have had 2850 W); the fridge 150 W, 25 Wh; the laundry
/// asked 2900 W, 483 Wh. What was recorded: 600 W, 100 Wh.
#[tokio::test]
async fn the_assembly_replays_a_draft_over_the_recorded_history() {
    let (state, _dir) = with_history().await;
    let aline = login(&state, "aline").await;
    let reply = post_form(
        &state,
        &aline,
        "/assembly/replay",
        form(&aline, &[("max_w.laundry", "1000"), ("replay_days", "7")]),
        "fr",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let row = crate::assembly::table_row(&reply.body, "replay-table", "Laverie partagée");
    assert_eq!(
        // Never shed a whole minute, and still short of most of its energy: the
        // shortfall is shown beside the hours shed.
        row,
        "Laverie partagée 483 Wh 167 Wh 317 Wh 0 h 100 Wh 383 Wh 0 h",
        "{}",
        reply.body
    );
    let fridge = crate::assembly::table_row(
        &reply.body,
        "replay-table",
        "Réfrigérateur du cabinet médical",
    );
    assert_eq!(
        fridge,
        "Réfrigérateur du cabinet médical 25 Wh 25 Wh 0 Wh 0 h 25 Wh 0 Wh 0 h"
    );
    assert!(
        reply.body.contains("0,2 h de mesures rejouées"),
        "{}",
        reply.body
    );
    // Nothing recorded; the draft kept.
    assert!(reply.body.contains("name=\"max_w.laundry\" value=\"1000\""));
    let bad = post_form(
        &state,
        &aline,
        "/assembly/replay",
        form(&aline, &[("replay_days", "365")]),
        "fr",
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("1, 7 ou 30 jours"), "{}", bad.body);
}
