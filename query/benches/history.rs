//! History costs (issue 6): bytes per reading on disk, a one-month query, and a
//! 7-day replay at one-minute steps.
//!
//!     cargo bench -p query --bench history [-- DAYS] [encrypted]
//!
//! Builds `DAYS` (default 30) days of a small site in a temporary directory the way
//! the node does: ten devices read every 10 s (PV, grid, battery power and state of
//! charge, six service meters) and the six services' recorded allocation every
//! 10 s, written out day by day, each finished day compacted and rolled up. Then,
//! side by side in one run:
//!
//! - the daily production and consumption of the whole period, from `readings_1m`
//!   against the same from the raw `readings`;
//! - a replay of the plan over the last 7 days through DataFusion (`replay`)
//!   against the same allocation loop over minute values already in memory.
//!
//! With `encrypted`, the history is written and read with Parquet modular
//! encryption under a random key, as an encrypted node's (DESIGN.md §10): run it
//! with and without to compare.

use std::error::Error;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use ingest::history::{History, HistoryOptions};
use ingest::reading::Reading;
use ledger::plan::{GridSource, Sources};
use query::config::{ServiceConfig, initial_plan};
use query::history_session::Queries;
use query::live::SiteBalance;
use query::plan_runner::{DemandSource, PlanRunner};
use sensors::config::DeviceConfig;
use sensors::model::{Metric, Role};

type BenchResult<T> = Result<T, Box<dyn Error>>;

const STEP_S: i64 = 10;
const SERVICES: usize = 6;

fn device(id: &str, role: Role) -> BenchResult<DeviceConfig> {
    Ok(serde_json::from_value(serde_json::json!({
        "id": id, "role": role.as_str(), "profile": "generic-json",
        "mqtt": {"topic": format!("t/{id}")}
    }))?)
}

/// A smooth day: the sun from 7:00 to 19:00, loads that wander.
fn pv_w(t: i64) -> f64 {
    let hour = (t.rem_euclid(86_400)) as f64 / 3600.0;
    if (7.0..19.0).contains(&hour) {
        6000.0 * ((hour - 7.0) / 12.0 * std::f64::consts::PI).sin()
    } else {
        0.0
    }
}

fn load_w(i: usize, t: i64) -> f64 {
    let phase = i as f64 * 0.7;
    (300.0 + 250.0 * ((t as f64 / 1800.0) + phase).sin()).max(0.0) + (t % 7) as f64
}

fn readings_of_day(day_start: i64) -> Vec<Reading> {
    let mut out =
        Vec::with_capacity((86_400 / STEP_S as usize) * (4 + 2 * SERVICES + 3 * SERVICES));
    let meters: Vec<Arc<str>> = (0..SERVICES).map(|i| format!("m-{i}").into()).collect();
    let services: Vec<Arc<str>> = (0..SERVICES)
        .map(|i| format!("service:s-{i}").into())
        .collect();
    let (roof, grid, battery): (Arc<str>, Arc<str>, Arc<str>) =
        ("roof".into(), "grid".into(), "battery".into());
    for k in 0..(86_400 / STEP_S) {
        let t = day_start + k * STEP_S;
        let ts_ms = t * 1000;
        let r = |device: &Arc<str>, metric, value| Reading {
            ts_ms,
            device: device.clone(),
            metric,
            value,
        };
        let loads: Vec<f64> = (0..SERVICES).map(|i| load_w(i, t)).collect();
        let total: f64 = loads.iter().sum();
        let pv = pv_w(t);
        let battery_w = (total - pv).clamp(-2000.0, 2000.0);
        out.push(r(&roof, Metric::PowerW, pv));
        out.push(r(&grid, Metric::PowerW, total - pv - battery_w));
        out.push(r(&battery, Metric::PowerW, battery_w));
        out.push(r(
            &battery,
            Metric::SocPct,
            50.0 + 30.0 * (t as f64 / 20_000.0).sin(),
        ));
        for (i, w) in loads.iter().enumerate() {
            out.push(r(&meters[i], Metric::PowerW, *w));
            out.push(r(&services[i], Metric::DemandW, *w));
            out.push(r(
                &services[i],
                Metric::AllocatedW,
                w.min(pv / SERVICES as f64),
            ));
            out.push(r(
                &services[i],
                Metric::Shed,
                if pv <= 0.0 { 1.0 } else { 0.0 },
            ));
        }
    }
    out
}

fn median(mut f: impl FnMut() -> BenchResult<()>, runs: usize) -> BenchResult<f64> {
    f()?;
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        f()?;
        ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms[runs / 2])
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for day in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(day.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if f.path().extension().is_some_and(|e| e == "parquet") {
                total += f.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    total
}

fn main() -> BenchResult<()> {
    let days: i64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(30);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let tmp = tempfile::tempdir()?;
    let encrypted = std::env::args().any(|a| a == "encrypted");
    let options = HistoryOptions {
        key: encrypted
            .then(|| {
                keyring::DataKey::generate()
                    .map(|k| k.subkey(keyring::Purpose::History))
                    .map_err(|e| e.to_string())
            })
            .transpose()?,
        ..HistoryOptions::default()
    };
    println!(
        "history files {}",
        if encrypted {
            "encrypted (Parquet modular encryption)"
        } else {
            "in clear text"
        }
    );
    let history = History::open(tmp.path(), options)?;
    let first: DateTime<Utc> = Utc
        .with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
        .single()
        .ok_or("date")?;
    let mut raw_rows = 0usize;
    let started = Instant::now();
    for d in 0..days {
        let day_start = first.timestamp() + d * 86_400;
        let readings = readings_of_day(day_start);
        raw_rows += readings.len();
        for chunk in readings.chunks(8192) {
            history.add_pending(None, chunk)?;
        }
        let next: NaiveDate = (first + Duration::days(d + 1)).date_naive();
        history.flush(None, next)?;
    }
    let write_s = started.elapsed().as_secs_f64();
    let raw_bytes = dir_bytes(&tmp.path().join("readings"));
    let rollup_bytes = dir_bytes(&tmp.path().join("readings_1m"));
    println!(
        "history: {days} days, {raw_rows} readings written, compacted and rolled up in {write_s:.1} s"
    );
    println!(
        "  raw Parquet: {raw_bytes} bytes, {:.2} bytes per reading; rollups: {rollup_bytes} bytes",
        raw_bytes as f64 / raw_rows as f64
    );

    let mut devices = vec![
        device("roof", Role::Pv)?,
        device("grid", Role::Grid)?,
        device("battery", Role::Battery)?,
    ];
    let mut services: Vec<ServiceConfig> = Vec::new();
    for i in 0..SERVICES {
        devices.push(device(&format!("m-{i}"), Role::Load)?);
        services.push(serde_json::from_value(serde_json::json!({
            "id": format!("s-{i}"), "meter": format!("m-{i}"), "tier": i % 3 + 1,
            "min_w": if i == 0 { 100.0 } else { 0.0 }
        }))?);
    }
    let plan = initial_plan(
        &services,
        &[],
        &Sources {
            battery: None,
            grid: Some(GridSource {
                max_import_w: 500.0,
                tiers: vec![1],
            }),
        },
    );
    let queries = rt.block_on(Queries::new(history.clone(), &devices, &services))?;
    let end = first + Duration::days(days);

    // One month of daily production and consumption.
    let daily = |table: &str, value: &str| {
        format!(
            "SELECT date_trunc('day', ts) AS day,
                    sum(CASE WHEN d.role = 'pv' THEN {value} ELSE 0 END) AS production,
                    sum(CASE WHEN d.role IN ('pv', 'grid', 'battery') THEN {value} ELSE 0 END) AS consumption
             FROM {table} r JOIN devices d ON CAST(r.device AS VARCHAR) = d.id
             WHERE r.metric = 'power_w'
               AND r.ts >= TIMESTAMP '{}' AND r.ts < TIMESTAMP '{}'
             GROUP BY 1 ORDER BY 1",
            first.to_rfc3339(),
            end.to_rfc3339()
        )
    };
    let run = |sql: String| -> BenchResult<usize> {
        let batches = rt.block_on(async { queries.session().sql(&sql).await?.collect().await })?;
        Ok(batches.iter().map(|b| b.num_rows()).sum())
    };
    if run(daily("readings_1m", "avg"))? != days as usize
        || run(daily("readings", "value"))? != days as usize
    {
        return Err("the daily query does not give one row a day".into());
    }
    let rollup_ms = median(|| run(daily("readings_1m", "avg")).map(|_| ()), 5)?;
    let raw_ms = median(|| run(daily("readings", "value")).map(|_| ()), 5)?;
    println!(
        "  {days}-day daily totals: readings_1m {rollup_ms:.1} ms, raw readings {raw_ms:.1} ms (ratio {:.1})",
        raw_ms / rollup_ms
    );

    // Seven days replayed at one-minute steps.
    let from = end - Duration::days(7);
    let replay = rt.block_on(queries.replay(&plan, from, end))?;
    if replay.minutes != 7 * 1440 {
        return Err(format!("replayed {} minutes, not {}", replay.minutes, 7 * 1440).into());
    }
    let replay_ms = median(
        || {
            rt.block_on(queries.replay(&plan, from, end))?;
            Ok(())
        },
        3,
    )?;
    // The allocation loop alone, over minute values already in memory.
    let minutes: Vec<(SiteBalance, Vec<f64>)> = (0..7 * 1440)
        .map(|m| {
            let t = from.timestamp() + m * 60 + 50;
            let loads: Vec<f64> = (0..SERVICES).map(|i| load_w(i, t)).collect();
            let total: f64 = loads.iter().sum();
            let pv = pv_w(t);
            let site = SiteBalance {
                pv_w: pv,
                grid_w: total - pv,
                ..SiteBalance::default()
            };
            (site, loads)
        })
        .collect();
    let runner = PlanRunner::new(plan.clone());
    let loop_ms = median(
        || {
            let mut energy = vec![0.0; SERVICES];
            for (site, loads) in &minutes {
                let a = runner.run(site, false, |i, _| DemandSource {
                    metered_w: loads.get(i).copied(),
                    declared_w: None,
                });
                for (e, g) in energy.iter_mut().zip(&a.services) {
                    *e += g.allocated_w / 60.0;
                }
            }
            std::hint::black_box(energy);
            Ok(())
        },
        3,
    )?;
    println!(
        "  7-day replay at 1-minute steps ({} steps): {replay_ms:.1} ms; the allocation loop alone {loop_ms:.1} ms (ratio {:.1})",
        replay.minutes,
        replay_ms / loop_ms
    );
    Ok(())
}
