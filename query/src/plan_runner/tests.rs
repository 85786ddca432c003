use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use ingest::metrics::IngestMetrics;
use ingest::reading::Reading;
use ingest::store::LiveStore;
use ledger::Journal;
use ledger::plan::{BatterySource, GridSource, Sources, Split, TierRule};
use sensors::config::DeviceConfig;
use sensors::model::{Metric, Role};

use super::*;
use crate::allocation::ServiceState;
use crate::config::{ServiceConfig, initial_plan};
use crate::engine::{Engine, EngineOptions};

#[test]
fn a_recent_meter_reading_comes_before_the_declared_demand() {
    let source = |metered_w, declared_w| DemandSource {
        metered_w,
        declared_w,
    };
    assert_eq!(source(Some(420.0), Some(300.0)).demand_w(), 420.0);
    // No meter, or a meter without a recent reading: the declared demand.
    assert_eq!(source(None, Some(300.0)).demand_w(), 300.0);
    assert_eq!(source(None, None).demand_w(), 0.0);
    // A meter that reads export demands nothing, whatever is declared.
    assert_eq!(source(Some(-35.0), Some(300.0)).demand_w(), 0.0);
    assert_eq!(source(Some(f64::NAN), None).demand_w(), 0.0);
    // A demand already found is kept as it is.
    assert_eq!(DemandSource::found(Some(150.0)).demand_w(), 150.0);
    assert_eq!(DemandSource::found(None).demand_w(), 0.0);
}

fn plan_with_every_source() -> Plan {
    Plan {
        tiers: vec![],
        services: vec![
            PlanService {
                id: "a".into(),
                tier: 1,
                min_w: 100.0,
                max_w: None,
            },
            PlanService {
                id: "b".into(),
                tier: 2,
                min_w: 0.0,
                max_w: None,
            },
        ],
        sources: Sources {
            battery: Some(BatterySource {
                reserve_soc_pct: 20.0,
                tiers: vec![],
                max_discharge_w: Some(1000.0),
            }),
            grid: Some(GridSource {
                max_import_w: 500.0,
                tiers: vec![],
            }),
        },
    }
}

#[test]
fn stale_figures_give_no_power_and_no_demand() {
    let runner = PlanRunner::new(plan_with_every_source());
    let site = SiteBalance {
        pv_w: 2000.0,
        battery_soc_pct: Some(80.0),
        ..SiteBalance::default()
    };
    let mut asked = 0;
    let stale = runner.run(&site, true, |_, _| {
        asked += 1;
        DemandSource::found(Some(300.0))
    });
    assert_eq!(asked, 0, "nobody's demand is read");
    assert_eq!(stale.available_w, 0.0);
    assert!(stale.pools.is_empty(), "{:?}", stale.pools);
    for g in &stale.services {
        assert_eq!(
            (g.demand_w, g.allocated_w, g.state),
            (0.0, 0.0, ServiceState::Idle)
        );
    }
    // The same figures, fresh: PV 2000 + battery 1000 + grid 500; a and b get 300 each.
    let fresh = runner.run(&site, false, |_, _| DemandSource::found(Some(300.0)));
    assert_eq!(fresh.available_w, 3500.0);
    let got: Vec<(&str, f64, ServiceState)> = fresh
        .services
        .iter()
        .map(|g| (&*g.id, g.allocated_w, g.state))
        .collect();
    assert_eq!(
        got,
        [
            ("a", 300.0, ServiceState::Served),
            ("b", 300.0, ServiceState::Served)
        ]
    );
}

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

/// `id`'s allocation, state and demand in the live snapshot.
fn live_of(live: &LiveSnapshot, id: &str) -> (f64, ServiceState, f64) {
    let s = live
        .services
        .iter()
        .find(|s| &*s.id == id)
        .unwrap_or_else(|| panic!("no service `{id}` live"));
    (s.allocated_w, s.state, s.demand_w)
}

fn assert_watts(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() < 1e-6, "{what}: {got} W, not {want} W");
}

/// The preview of the plan in force, on the live snapshot, is the live allocation:
/// service by service the same allocation and state, and the same available power,
/// on a site with three tiers, minima, a cap, the battery and the grid each open to
/// some tiers, metered and declared demands, a meter whose reading is too old to
/// count and one that reads export; and when the data goes stale.
#[tokio::test]
async fn the_preview_of_the_active_plan_is_the_live_allocation() {
    let now: DateTime<Utc> = Utc
        .timestamp_millis_opt(1_750_000_000_000)
        .single()
        .expect("time");
    let ms = now.timestamp_millis();
    let r = |ts_ms: i64, device: &str, metric, value| Reading {
        ts_ms,
        device: device.into(),
        metric,
        value,
    };
    let store = Arc::new(LiveStore::new(Duration::from_secs(600)));
    store
        .append(&[
            r(ms - 1_000, "roof", Metric::PowerW, 1500.0),
            r(ms - 1_000, "bat", Metric::PowerW, 400.0),
            r(ms - 1_000, "bat", Metric::SocPct, 55.0),
            r(ms - 1_000, "grid", Metric::PowerW, 1000.0),
            r(ms - 1_000, "m-clinic", Metric::PowerW, 180.0),
            r(ms - 1_000, "m-pump", Metric::PowerW, 1500.0),
            // Five minutes old: the laundry falls back on its declared 600 W.
            r(ms - 300_000, "m-laundry", Metric::PowerW, 2000.0),
            r(ms - 1_000, "m-ev", Metric::PowerW, 3000.0),
            // The sauna's meter reads export: it demands nothing.
            r(ms - 1_000, "m-sauna", Metric::PowerW, -20.0),
        ])
        .expect("append");
    let devices = [
        device("roof", Role::Pv),
        device("bat", Role::Battery),
        device("grid", Role::Grid),
        device("m-clinic", Role::Load),
        device("m-pump", Role::Load),
        device("m-laundry", Role::Load),
        device("m-ev", Role::Load),
        device("m-sauna", Role::Load),
    ];
    let services = [
        service(serde_json::json!({"id": "clinic", "meter": "m-clinic", "tier": 1, "min_w": 150})),
        service(serde_json::json!({"id": "lights", "demand_w": 400.0, "tier": 1})),
        service(serde_json::json!({
            "id": "pump", "meter": "m-pump", "tier": 2, "min_w": 300, "max_w": 1200
        })),
        service(serde_json::json!({
            "id": "laundry", "meter": "m-laundry", "demand_w": 600.0, "tier": 2
        })),
        service(serde_json::json!({"id": "ev", "meter": "m-ev", "tier": 3})),
        service(serde_json::json!({"id": "sauna", "meter": "m-sauna", "tier": 3})),
    ];
    let tiers = [
        TierRule {
            tier: 1,
            split: Split::Equal,
        },
        TierRule {
            tier: 2,
            split: Split::ProRata,
        },
        TierRule {
            tier: 3,
            split: Split::ProRata,
        },
    ];
    // The battery (above its 30 % reserve) for tiers 1-2, the grid for tier 1.
    let sources = Sources {
        battery: Some(BatterySource {
            reserve_soc_pct: 30.0,
            tiers: vec![1, 2],
            max_discharge_w: Some(600.0),
        }),
        grid: Some(GridSource {
            max_import_w: 300.0,
            tiers: vec![1],
        }),
    };
    let journal = Arc::new(Journal::open_in_memory().expect("journal"));
    journal
        .seed(&initial_plan(&services, &tiers, &sources), &[], now)
        .expect("seed");
    let engine = Engine::new(
        store,
        Arc::new(IngestMetrics::default()),
        journal.clone(),
        &devices,
        &services,
        EngineOptions::default(),
    )
    .await
    .expect("engine");
    let active = journal
        .active_plan()
        .expect("journal")
        .expect("a plan in force")
        .plan;

    let live = engine.evaluate(now).await.expect("evaluate");
    assert!(!live.stale);
    // By hand. Pools: PV 1500 (every tier), battery 600 (tiers 1-2), grid 300 (tier 1).
    // Minima: clinic 150 and pump 300 (its demand capped at 1200), from PV (1050
    // left). Remainders: tier 1 asks clinic 30 + lights 400, from PV (620 left);
    // tier 2 asks pump 900 + laundry 600 = 1500 and reaches PV 620 + battery 600 =
    // 1220: pro rata, pump 732 and laundry 488. Tier 3 reaches PV alone, now empty:
    // the EV is shed. The grid, tier 1's only, is left: 300 W of headroom.
    let expected = [
        ("clinic", 180.0, ServiceState::Served, 180.0),
        ("lights", 400.0, ServiceState::Served, 400.0),
        ("pump", 1032.0, ServiceState::Partial, 1500.0),
        ("laundry", 488.0, ServiceState::Partial, 600.0),
        ("ev", 0.0, ServiceState::Shed, 3000.0),
        ("sauna", 0.0, ServiceState::Idle, 0.0),
    ];
    for (id, allocated_w, state, demand_w) in expected {
        let (got_w, got_state, got_demand) = live_of(&live, id);
        assert_watts(got_w, allocated_w, id);
        assert_eq!(got_state, state, "{id}");
        assert_watts(got_demand, demand_w, id);
    }
    assert_watts(live.site.available_w, 2400.0, "available");
    assert_watts(live.site.headroom_w, 300.0, "headroom");

    let same = |live: &LiveSnapshot| {
        let preview = preview(&active, live);
        assert_eq!(preview.services.len(), live.services.len());
        for g in &preview.services {
            let (allocated_w, state, demand_w) = live_of(live, &g.id);
            assert_eq!(g.allocated_w, allocated_w, "{}", g.id);
            assert_eq!(g.state, state, "{}", g.id);
            assert_eq!(g.demand_w, demand_w, "{}", g.id);
        }
        assert_eq!(preview.available_w, live.site.available_w);
        assert_eq!(preview.allocated_w, live.site.allocated_w);
        assert_eq!(preview.headroom_w, live.site.headroom_w);
    };
    same(&live);

    // A draft on the same figures: the grid open to every tier. Tier 2 now reaches
    // 1520 W and is covered (the pump held at its cap), which leaves 20 W of import
    // for the EV.
    let mut draft = active.clone();
    if let Some(grid) = &mut draft.sources.grid {
        grid.tiers.clear();
    }
    let drafted = preview(&draft, &live);
    let outcome: Vec<(&str, f64, ServiceState)> = drafted
        .services
        .iter()
        .map(|g| (&*g.id, (g.allocated_w * 1e6).round() / 1e6, g.state))
        .collect();
    assert_eq!(
        outcome,
        [
            ("clinic", 180.0, ServiceState::Served),
            ("lights", 400.0, ServiceState::Served),
            ("pump", 1200.0, ServiceState::Partial),
            ("laundry", 600.0, ServiceState::Served),
            ("ev", 20.0, ServiceState::Partial),
            ("sauna", 0.0, ServiceState::Idle),
        ]
    );

    // Thirty seconds without data: stale. The live allocation gives nothing, and so
    // does the preview, though the balance still counts readings that young.
    let later = engine
        .evaluate(now + chrono::Duration::seconds(30))
        .await
        .expect("evaluate");
    assert!(later.stale);
    assert_eq!(later.site.pv_w, 1500.0, "PV still counts in the balance");
    assert_eq!(later.site.available_w, 0.0);
    same(&later);
}
