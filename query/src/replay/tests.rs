use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, TimeZone};
use ingest::history::{History, HistoryOptions};
use ingest::metrics::IngestMetrics;
use ingest::store::LiveStore;
use ledger::Journal;
use ledger::plan::{GridSource, Sources};

use super::*;
use crate::config::initial_plan;
use crate::engine::{Engine, EngineOptions};
use crate::history_session::Queries;

fn device(id: &str, role: Role) -> DeviceConfig {
    serde_json::from_value(serde_json::json!({
        "id": id, "role": role.as_str(), "profile": "generic-json",
        "mqtt": {"topic": format!("t/{id}")}
    }))
    .expect("device")
}

fn service(json: serde_json::Value) -> ServiceConfig {
    serde_json::from_value(json).expect("service")
}

/// (pv, meter a, meter b) for each of ten minutes: the sun comes and goes, so that
/// the services are served, partly served and shed in turn.
const MINUTES: [(f64, f64, f64); 10] = [
    (1500.0, 400.0, 900.0),
    (900.0, 400.0, 900.0),
    (300.0, 450.0, 700.0),
    (0.0, 450.0, 700.0),
    (200.0, 300.0, 1200.0),
    (2500.0, 300.0, 1200.0),
    (1200.0, 500.0, 0.0),
    (700.0, 500.0, 600.0),
    (650.0, 100.0, 600.0),
    (3000.0, 100.0, 600.0),
];

/// The live path, second by second over ten minutes, records its allocations into
/// the history exactly as the node does; a replay of the plan in force over the
/// same ten minutes, at one-minute steps, finds the same energy and the same shed
/// time for every service, whether the day is still raw or compacted and rolled up.
#[tokio::test]
async fn replaying_the_active_plan_reproduces_the_allocation_recorded_live() {
    let t0 = Utc
        .with_ymd_and_hms(2026, 3, 12, 10, 0, 0)
        .single()
        .expect("t0");
    let dir = tempfile::tempdir().expect("tmp");
    let history = History::open(dir.path(), HistoryOptions::default()).expect("history");
    let store = Arc::new(LiveStore::new(Duration::from_secs(120)));
    let devices = [
        device("roof", Role::Pv),
        device("grid", Role::Grid),
        device("m-a", Role::Load),
        device("m-b", Role::Load),
    ];
    let services = [
        service(serde_json::json!({"id": "a", "meter": "m-a", "tier": 1, "min_w": 200})),
        service(serde_json::json!({"id": "b", "meter": "m-b", "tier": 2})),
        service(serde_json::json!({"id": "c", "demand_w": 250.0, "tier": 2, "max_w": 200})),
    ];
    // The grid helps tier 1 only, up to 300 W.
    let sources = Sources {
        battery: None,
        grid: Some(GridSource {
            max_import_w: 300.0,
            tiers: vec![1],
        }),
    };
    let plan = initial_plan(&services, &[], &sources);
    let journal = Arc::new(Journal::open_in_memory().expect("journal"));
    journal.seed(&plan, &[], t0).expect("seed");
    let engine = Engine::new(
        store.clone(),
        Arc::new(IngestMetrics::default()),
        journal.clone(),
        &devices,
        &services,
        EngineOptions::default(),
    )
    .await
    .expect("engine");

    let mut shed_seconds = 0;
    for (m, (pv, a, b)) in MINUTES.iter().enumerate() {
        for s in 0..60 {
            let ts = t0 + chrono::Duration::seconds((m * 60 + s) as i64);
            let ts_ms = ts.timestamp_millis();
            let readings: Vec<Reading> = [
                ("roof", *pv),
                ("grid", a + b - pv),
                ("m-a", *a),
                ("m-b", *b),
            ]
            .iter()
            .map(|(d, v)| Reading {
                ts_ms,
                device: (*d).into(),
                metric: Metric::PowerW,
                value: *v,
            })
            .collect();
            store.append(&readings).expect("store");
            history.add_pending(None, &readings).expect("history");
            let live = engine
                .evaluate(ts + chrono::Duration::milliseconds(500))
                .await
                .expect("evaluate");
            assert!(!live.stale);
            shed_seconds += live
                .services
                .iter()
                .filter(|s| s.state == ServiceState::Shed)
                .count();
            history
                .add_pending(None, &allocation_readings(&live))
                .expect("record");
        }
    }
    assert!(shed_seconds > 0, "the scenario sheds some service at times");

    let to = t0 + chrono::Duration::minutes(10);
    let check = |replay: &Replay| {
        assert_eq!(replay.minutes, 10);
        for s in &replay.services {
            assert!(
                (s.energy_wh - s.actual_energy_wh).abs() < 1e-6,
                "{}: replayed {} Wh, recorded {} Wh",
                s.id,
                s.energy_wh,
                s.actual_energy_wh
            );
            assert!(
                (s.shed_hours - s.actual_shed_hours).abs() < 1e-9,
                "{}: replayed {} h shed, recorded {} h",
                s.id,
                s.shed_hours,
                s.actual_shed_hours
            );
        }
    };
    let queries = Queries::new(history.clone(), &devices, &services)
        .await
        .expect("queries");
    let raw = replay(queries.session(), &devices, &services, &plan, t0, to)
        .await
        .expect("replay");
    check(&raw);
    let b = raw.services.iter().find(|s| s.id == "b").expect("b");
    assert!(
        b.actual_shed_hours > 0.0 && b.actual_energy_wh > 0.0,
        "{b:?}"
    );

    // The same after the day is written out, compacted and rolled up.
    let next_day = NaiveDate::from_ymd_opt(2026, 3, 13).expect("date");
    let report = history.flush(None, next_day).expect("flush");
    assert_eq!(report.compacted_days.len(), 1);
    assert!(history.snapshot().pending.is_empty());
    let rolled = replay(queries.session(), &devices, &services, &plan, t0, to)
        .await
        .expect("replay");
    assert_eq!(rolled, raw, "stored rollups and raw readings replay alike");

    // A draft that puts b first gives b more than it had.
    let mut draft = plan.clone();
    for s in &mut draft.services {
        s.tier = if s.id == "b" { 1 } else { 2 };
    }
    let drafted = replay(queries.session(), &devices, &services, &draft, t0, to)
        .await
        .expect("replay");
    let b_draft = drafted.services.iter().find(|s| s.id == "b").expect("b");
    assert!(b_draft.energy_wh > b.energy_wh, "{b_draft:?} vs {b:?}");
    assert_eq!(
        b_draft.actual_energy_wh, b.actual_energy_wh,
        "what was given stays"
    );
}

/// The recorder keeps the first fresh evaluation of every ten seconds: nobody
/// acted on a stale one.
#[tokio::test]
async fn the_recorder_keeps_one_evaluation_every_ten_seconds() {
    let at = |s: i64| {
        Utc.timestamp_millis_opt(1_773_309_600_000 + s * 1000)
            .single()
            .expect("t")
    };
    let snapshot = |s: i64, stale: bool| {
        let mut live = crate::engine::empty_snapshot(at(s));
        live.stale = stale;
        live.services = vec![crate::live::ServiceLive {
            id: "a".into(),
            name: "A".into(),
            tier: 1,
            demand_w: 100.0,
            allocated_w: s as f64,
            state: ServiceState::Served,
            min_w: 0.0,
            max_w: None,
            reason: "fully_served",
        }];
        Arc::new(live)
    };
    let (live_tx, live_rx) = tokio::sync::watch::channel(snapshot(-1, true));
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let cancel = tokio_util::sync::CancellationToken::new();
    let recorder = tokio::spawn(record(live_rx, tx, cancel.clone()));
    let mut recorded = Vec::new();
    for (s, stale) in [
        (0, false),
        (3, false),
        (9, false),
        (10, false),
        (14, true),
        (21, true),
        (25, false),
        (29, false),
        (30, false),
    ] {
        live_tx.send_replace(snapshot(s, stale));
        // Each evaluation is seen before the next one comes.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        while let Ok(a) = rx.try_recv() {
            let allocated: Vec<f64> = a
                .readings
                .iter()
                .filter(|r| r.metric == Metric::AllocatedW)
                .map(|r| r.value)
                .collect();
            recorded.extend(allocated);
        }
    }
    cancel.cancel();
    let _ = recorder.await;
    // 0-9 s: the one at 0 s; 10-19 s: 10 s (14 s is stale anyway); 20-29 s: 21 s
    // is stale, so 25 s; 30 s opens the next period.
    assert_eq!(recorded, [0.0, 10.0, 25.0, 30.0]);
}
