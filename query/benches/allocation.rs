//! Allocation cost (issue 3): the live path, `Engine::evaluate` (the DataFusion query
//! for the latest values over `readings_live`, the balance and demands read from it,
//! the active plan, the allocation and the whole snapshot, devices included), against
//! a plain Rust loop over the same inputs (latest values from a `HashMap`, the balance,
//! the plan run as the engine runs it, the same `ServiceLive` rows), for 10 to 10,000 services in one
//! run. Reports both medians and their ratio. Goal: 10,000 services in under 5 ms.
//!
//!     cargo bench -p query --bench allocation
//!
//! With `ALLOCATION_BENCH_PARTS=1` it also times the live query alone and a plan read
//! from the journal (which the engine does only after an adoption).
//!
//! Each service has a meter (every tenth one is unmetered, with a declared demand),
//! beside a PV, a grid and a battery device, and the live store holds what a real
//! site's would: every device's readings once a second for the last 30 seconds. The
//! services are spread over three tiers, some with minima or caps; the battery may
//! serve tiers 1-2 and the grid tier 1. Power runs short, so every tier is exercised.
//! Before timing, both paths must give the same balance and the same service rows.

use std::collections::HashMap;
use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ingest::metrics::IngestMetrics;
use ingest::reading::Reading;
use ingest::store::LiveStore;
use ledger::Journal;
use ledger::plan::{BatterySource, GridSource, Plan, Sources, Split, TierRule};
use query::config::{ServiceConfig, initial_plan};
use query::engine::{Engine, EngineOptions};
use query::live::{ServiceLive, SiteBalance};
use query::plan_runner::{DemandSource, PlanRunner};
use sensors::config::DeviceConfig;
use sensors::model::{Metric, Role};

type BenchResult<T> = Result<T, Box<dyn Error>>;

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

/// The inputs of one size, as both paths see them.
struct Site {
    devices: Vec<DeviceConfig>,
    services: Vec<ServiceConfig>,
    plan: Plan,
    readings: Vec<Reading>,
}

fn device(id: String, role: Role) -> DeviceConfig {
    DeviceConfig {
        id,
        name: None,
        role,
        profile: "generic-json".into(),
        modbus: None,
        serial: None,
        mqtt: None,
        power_sign: None,
        max_power_w: None,
        max_messages_per_s: None,
        sunspec_model: None,
        registers: Vec::new(),
        poll_interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
    }
}

/// Seconds of readings in the live store, one per device and second.
const WINDOW_S: i64 = 30;

fn site(n: usize, now_ms: i64) -> BenchResult<Site> {
    // The newest reading last, one second before `now`, so that it is the latest.
    let reading = |device: &str, metric, value| {
        let device: Arc<str> = device.into();
        (0..WINDOW_S).rev().map(move |age_s| Reading {
            ts_ms: now_ms - 1_000 * (age_s + 1),
            device: device.clone(),
            metric,
            // Older readings differ, so that only the newest gives the right figures.
            value: value + age_s as f64,
        })
    };
    let mut devices = vec![
        device("pv".into(), Role::Pv),
        device("grid".into(), Role::Grid),
        device("battery".into(), Role::Battery),
    ];
    let mut readings = Vec::with_capacity((n + 4) * WINDOW_S as usize);
    let mut services = Vec::with_capacity(n);
    let mut total_demand_w = 0.0;
    for i in 0..n {
        let demand_w = 100.0 + ((i * 7919) % 1900) as f64;
        total_demand_w += demand_w;
        let unmetered = i % 10 == 9;
        let meter = (!unmetered).then(|| format!("meter-{i}"));
        if let Some(m) = &meter {
            devices.push(device(m.clone(), Role::Load));
            readings.extend(reading(m, Metric::PowerW, demand_w));
        }
        // As the configuration file gives it: the optional sections keep their defaults.
        services.push(serde_json::from_value(serde_json::json!({
            "id": format!("service-{i}"),
            "name": format!("Service {i}"),
            "meter": meter,
            "demand_w": unmetered.then_some(demand_w),
            "tier": i % 3 + 1,
            "min_w": if i % 4 == 0 { 80.0 } else { 0.0 },
            "max_w": (i % 7 == 0).then_some(1_500.0),
        }))?);
    }
    // The sun covers 40 % of the demand, the battery and the grid a little more.
    let pv_w = 0.4 * total_demand_w;
    readings.extend(reading("pv", Metric::PowerW, pv_w));
    readings.extend(reading("grid", Metric::PowerW, 0.3 * total_demand_w));
    readings.extend(reading("battery", Metric::PowerW, 0.1 * total_demand_w));
    readings.extend(reading("battery", Metric::SocPct, 64.0));
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
    let sources = Sources {
        battery: Some(BatterySource {
            reserve_soc_pct: 20.0,
            tiers: vec![1, 2],
            max_discharge_w: Some(0.1 * total_demand_w),
        }),
        grid: Some(GridSource {
            max_import_w: 0.1 * total_demand_w,
            tiers: vec![1],
        }),
    };
    let plan = initial_plan(&services, &tiers, &sources);
    Ok(Site {
        devices,
        services,
        plan,
        readings,
    })
}

/// What the plain path knows of a configured service, prepared once as the engine
/// prepares its own: the display name shared, not copied, into each row.
struct Known<'a> {
    config: &'a ServiceConfig,
    name: Arc<str>,
}

/// The plain path: what `Engine::evaluate` computes for the services, from the
/// latest value of each device in a `HashMap` and the plan in memory, ready to run.
fn plain(
    site: &Site,
    runner: &PlanRunner,
    latest: &HashMap<String, f64>,
    soc: Option<f64>,
    names: &HashMap<&str, Known<'_>>,
) -> (SiteBalance, Vec<ServiceLive>) {
    let mut balance = SiteBalance {
        battery_soc_pct: soc,
        ..SiteBalance::default()
    };
    for d in &site.devices {
        let Some(&w) = latest.get(&d.id) else {
            continue;
        };
        match d.role {
            Role::Pv => balance.pv_w += w,
            Role::Grid => balance.grid_w += w,
            Role::Battery => balance.battery_w += w,
            Role::Load => balance.load_w += w,
        }
    }
    let allocation = runner.run(&balance, false, |_, p| {
        let config = names.get(p.id.as_str()).map(|k| k.config);
        DemandSource {
            metered_w: config
                .and_then(|c| c.meter.as_ref())
                .and_then(|m| latest.get(m))
                .copied(),
            declared_w: config.and_then(|c| c.demand_w),
        }
    });
    balance.available_w = allocation.available_w;
    balance.allocated_w = allocation.allocated_w;
    balance.headroom_w = allocation.headroom_w;
    let rows = allocation
        .services
        .iter()
        .zip(&site.plan.services)
        .map(|(g, p)| ServiceLive {
            id: g.id.clone(),
            name: names
                .get(&*g.id)
                .map_or_else(|| g.id.clone(), |k| k.name.clone()),
            tier: g.tier,
            demand_w: g.demand_w,
            allocated_w: g.allocated_w,
            state: g.state,
            min_w: p.min_w,
            max_w: p.max_w,
            reason: g.reason.code(),
        })
        .collect();
    (balance, rows)
}

/// Median wall time of `runs` calls of `f`, after `warm_up` calls.
fn median(warm_up: usize, runs: usize, mut f: impl FnMut() -> BenchResult<()>) -> BenchResult<f64> {
    for _ in 0..warm_up {
        f()?;
    }
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        f()?;
        ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms.get(runs / 2).copied().unwrap_or(f64::NAN))
}

fn main() -> BenchResult<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let now: DateTime<Utc> = Utc::now();

    println!("allocation: Engine::evaluate (DataFusion) vs a plain Rust loop, median wall time");
    println!(
        "{:>7}  {:>5}  {:>16}  {:>13}  {:>7}",
        "n", "runs", "datafusion_ms", "plain_ms", "ratio"
    );
    for n in SIZES {
        let site = site(n, now.timestamp_millis())?;
        let store = Arc::new(LiveStore::new(Duration::from_secs(120)));
        store.append(&site.readings)?;
        let journal = Journal::open_in_memory()?;
        journal.seed(&site.plan, &[], now)?;
        let engine = rt.block_on(Engine::new(
            store,
            Arc::new(IngestMetrics::default()),
            Arc::new(journal),
            &site.devices,
            &site.services,
            EngineOptions::default(),
        ))?;

        // The plain path's inputs: the latest value of each device, the services by id.
        // Readings come oldest first: the last one of each device wins.
        let latest: HashMap<String, f64> = site
            .readings
            .iter()
            .filter(|r| r.metric == Metric::PowerW)
            .map(|r| (r.device.to_string(), r.value))
            .collect();
        let soc = site
            .readings
            .iter()
            .rev()
            .find(|r| r.metric == Metric::SocPct)
            .map(|r| r.value);
        let runner = PlanRunner::new(site.plan.clone());
        let names: HashMap<&str, Known<'_>> = site
            .services
            .iter()
            .map(|s| {
                let known = Known {
                    config: s,
                    name: s.display_name().into(),
                };
                (s.id.as_str(), known)
            })
            .collect();

        // Both paths must agree before their times mean anything.
        let live = rt.block_on(engine.evaluate(now))?;
        let (balance, rows) = plain(&site, &runner, &latest, soc, &names);
        let same_site = [
            (live.site.pv_w, balance.pv_w),
            (live.site.grid_w, balance.grid_w),
            (live.site.battery_w, balance.battery_w),
            (live.site.load_w, balance.load_w),
            (live.site.available_w, balance.available_w),
            (live.site.allocated_w, balance.allocated_w),
        ]
        .iter()
        .all(|(a, b)| (a - b).abs() <= 1e-6 * b.abs().max(1.0));
        if live.stale
            || !same_site
            || live.site.battery_soc_pct != balance.battery_soc_pct
            || live.services != rows
        {
            return Err(format!("n = {n}: the two paths disagree").into());
        }

        let (warm_up, runs) = match n {
            0..=100 => (50, 401),
            101..=1_000 => (20, 101),
            _ => (5, 31),
        };
        let datafusion_ms = median(warm_up, runs, || {
            rt.block_on(engine.evaluate(now))?;
            Ok(())
        })?;
        let plain_ms = median(warm_up, runs, || {
            std::hint::black_box(plain(&site, &runner, &latest, soc, &names));
            Ok(())
        })?;
        println!(
            "{n:>7}  {runs:>5}  {datafusion_ms:>16.3}  {plain_ms:>13.3}  {:>7.1}",
            datafusion_ms / plain_ms
        );
        if std::env::var_os("ALLOCATION_BENCH_PARTS").is_some() {
            let query_ms = median(warm_up, runs, || {
                rt.block_on(engine.site_balance(now))?;
                Ok(())
            })?;
            let journal = Journal::open_in_memory()?;
            journal.seed(&site.plan, &[], now)?;
            let plan_ms = median(warm_up, runs, || {
                journal.active_plan()?;
                Ok(())
            })?;
            println!(
                "         latest-values query {query_ms:.3} ms; plan read from the journal {plan_ms:.3} ms"
            );
        }
    }
    println!("goal: 10,000 services in under 5 ms");
    Ok(())
}
