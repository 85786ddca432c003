//! The allocation as it was, and as a draft plan would have made it.
//!
//! Every live evaluation is recorded in the history as readings of the virtual
//! device `service:<id>`: `demand_w`, `allocated_w` and `shed` (1 while shed, else
//! 0), so that the history can tell each service's served and shed energy, and the
//! replay can set what a draft would have given beside what was actually given.
//!
//! A replay runs the plan as the live path does ([`PlanRunner`]) at one-minute
//! steps: at each step, each device's newest reading of the minute
//! (`readings_1m.last`) stands for its value, as the live evaluation takes each
//! device's newest reading, and a meter without a reading that minute leaves its
//! service to its declared demand, as a meter without a recent reading does live.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, TimestampMillisecondType};
use ingest::reading::Reading;
use ledger::plan::Plan;
use sensors::config::DeviceConfig;
use sensors::model::{Metric, Role};
use serde::Serialize;

use crate::allocation::{Allocation, ServiceState};
use crate::config::ServiceConfig;
use crate::live::{LiveSnapshot, SiteBalance};
use crate::plan_runner::{DemandSource, PlanRunner};
use crate::{Error, Result};

/// The virtual device under which a service's allocation is recorded.
pub fn service_device(id: &str) -> String {
    format!("service:{id}")
}

/// The readings that record one live evaluation (none when its data was stale:
/// nobody acted on it).
pub fn allocation_readings(snapshot: &LiveSnapshot) -> Vec<Reading> {
    if snapshot.stale {
        return vec![];
    }
    let ts_ms = snapshot.ts.timestamp_millis();
    let mut out = Vec::with_capacity(snapshot.services.len() * 3);
    for s in &snapshot.services {
        push_service(&mut out, ts_ms, &s.id, s.state, s.demand_w, s.allocated_w);
    }
    out
}

/// One service's three readings of an evaluation: `demand_w`, `allocated_w`, `shed`.
fn push_service(
    out: &mut Vec<Reading>,
    ts_ms: i64,
    id: &str,
    state: ServiceState,
    demand_w: f64,
    allocated_w: f64,
) {
    let device: std::sync::Arc<str> = service_device(id).into();
    let shed = if state == ServiceState::Shed {
        1.0
    } else {
        0.0
    };
    for (metric, value) in [
        (Metric::DemandW, demand_w),
        (Metric::AllocatedW, allocated_w),
        (Metric::Shed, shed),
    ] {
        out.push(Reading {
            ts_ms,
            device: device.clone(),
            metric,
            value,
        });
    }
}

/// How often the live allocation is recorded: the first evaluation of each period
/// of this length. Every second would triple the history's size for figures that
/// are read by the minute.
pub const RECORD_EVERY_MS: i64 = 10_000;

/// Records the live evaluation into the history through `tx` (the sink: the
/// write-ahead log, then Parquet), the first fresh one of every
/// [`RECORD_EVERY_MS`], until `cancel`.
pub async fn record(
    mut live: tokio::sync::watch::Receiver<std::sync::Arc<LiveSnapshot>>,
    tx: ingest::sink::ReadingsTx,
    cancel: tokio_util::sync::CancellationToken,
) {
    let mut last_period = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            changed = live.changed() => if changed.is_err() { break },
        }
        let readings = {
            let snapshot = live.borrow_and_update();
            let period = snapshot.ts.timestamp_millis().div_euclid(RECORD_EVERY_MS);
            if last_period == Some(period) {
                continue;
            }
            let readings = allocation_readings(&snapshot);
            // A stale evaluation records nothing and leaves its period open.
            if !readings.is_empty() {
                last_period = Some(period);
            }
            readings
        };
        if !readings.is_empty() && tx.send(readings.into()).await.is_err() {
            break;
        }
    }
}

/// A plan run on one instant known only from readings (each device's value, by
/// device id and metric), as the live path runs it: what a replay does at each
/// minute of the history, and what the demo does for the days it makes up.
#[derive(Debug)]
pub struct MinuteRunner<'a> {
    roles: HashMap<&'a str, Role>,
    /// Each service of the plan as configured (its meter, its declared demand), in
    /// the order of the plan.
    configured: Vec<Option<&'a ServiceConfig>>,
    runner: PlanRunner,
}

impl<'a> MinuteRunner<'a> {
    pub fn new(
        devices: &'a [DeviceConfig],
        services: &'a [ServiceConfig],
        plan: &Plan,
    ) -> MinuteRunner<'a> {
        let config: HashMap<&str, &ServiceConfig> =
            services.iter().map(|s| (s.id.as_str(), s)).collect();
        MinuteRunner {
            roles: devices.iter().map(|d| (d.id.as_str(), d.role)).collect(),
            configured: plan
                .services
                .iter()
                .map(|p| config.get(p.id.as_str()).copied())
                .collect(),
            runner: PlanRunner::new(plan.clone()),
        }
    }

    /// The allocation for these values (`power_w` of every device, `soc_pct` of
    /// the batteries); `None` when none of them is a configured device's.
    pub fn run(&self, last: &HashMap<(String, Metric), f64>) -> Option<Allocation> {
        let mut site = SiteBalance::default();
        let (mut soc_sum, mut soc_n) = (0.0, 0u32);
        let mut any_device = false;
        for ((device, metric), value) in last {
            let Some(role) = self.roles.get(device.as_str()) else {
                continue;
            };
            any_device = true;
            match (role, metric) {
                (Role::Pv, Metric::PowerW) => site.pv_w += value,
                (Role::Grid, Metric::PowerW) => site.grid_w += value,
                (Role::Battery, Metric::PowerW) => site.battery_w += value,
                (Role::Load, Metric::PowerW) => site.load_w += value,
                (Role::Battery, Metric::SocPct) => {
                    soc_sum += value;
                    soc_n += 1;
                }
                _ => {}
            }
        }
        if !any_device {
            return None;
        }
        site.battery_soc_pct = (soc_n > 0).then(|| soc_sum / f64::from(soc_n));
        Some(self.runner.run(&site, false, |i, _| {
            let c = self.configured.get(i).copied().flatten();
            DemandSource {
                metered_w: c
                    .and_then(|c| c.meter.as_ref())
                    .and_then(|m| last.get(&(m.clone(), Metric::PowerW)).copied()),
                declared_w: c.and_then(|c| c.demand_w),
            }
        }))
    }

    /// The readings that record `allocation` at `ts_ms`, as the live path records
    /// an evaluation ([`allocation_readings`]).
    pub fn readings(&self, ts_ms: i64, allocation: &Allocation) -> Vec<Reading> {
        let plan = self.runner.plan();
        let mut out = Vec::with_capacity(allocation.services.len() * 3);
        for (p, g) in plan.services.iter().zip(&allocation.services) {
            push_service(&mut out, ts_ms, &p.id, g.state, g.demand_w, g.allocated_w);
        }
        out
    }
}

/// One service over a replayed period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceReplay {
    pub id: String,
    /// What the replayed plan would have given, in watt-hours.
    pub energy_wh: f64,
    /// Hours it would have been shed while asking for power.
    pub shed_hours: f64,
    /// What the live allocation actually gave (recorded), in watt-hours.
    pub actual_energy_wh: f64,
    /// Hours it was actually shed (recorded).
    pub actual_shed_hours: f64,
    /// What it asked for in all, in watt-hours.
    pub demand_wh: f64,
}

/// A replay's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replay {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Minutes with data that were replayed.
    pub minutes: usize,
    pub services: Vec<ServiceReplay>,
}

/// What one minute of history says: the newest value of each device and metric.
#[derive(Debug, Default)]
struct Minute {
    last: HashMap<(String, Metric), f64>,
    avg: HashMap<(String, Metric), f64>,
}

/// Replays `plan` over `[from, to)` on the recorded history of `ctx` (a session with
/// `readings_1m`, as [`crate::history_session::Queries`] has), service by service,
/// beside what the live allocation recorded.
pub async fn replay(
    ctx: &datafusion::prelude::SessionContext,
    devices: &[DeviceConfig],
    services: &[ServiceConfig],
    plan: &Plan,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Replay> {
    let sql = format!(
        "SELECT ts, CAST(device AS VARCHAR) AS device, CAST(metric AS VARCHAR) AS metric, last, avg
         FROM readings_1m
         WHERE ts >= arrow_cast({}, 'Timestamp(Millisecond, Some(\"UTC\"))')
           AND ts < arrow_cast({}, 'Timestamp(Millisecond, Some(\"UTC\"))')
           AND metric IN ('power_w', 'soc_pct', 'allocated_w', 'shed')",
        from.timestamp_millis(),
        to.timestamp_millis()
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    let minutes = minutes_of(&batches)?;

    let minute_runner = MinuteRunner::new(devices, services, plan);
    let mut out: Vec<ServiceReplay> = plan
        .services
        .iter()
        .map(|s| ServiceReplay {
            id: s.id.clone(),
            energy_wh: 0.0,
            shed_hours: 0.0,
            actual_energy_wh: 0.0,
            actual_shed_hours: 0.0,
            demand_wh: 0.0,
        })
        .collect();
    let mut replayed = 0;
    for minute in minutes.values() {
        // Recorded allocations, whether or not the devices reported this minute.
        for s in &mut out {
            let device = service_device(&s.id);
            if let Some(w) = minute.avg.get(&(device.clone(), Metric::AllocatedW)) {
                s.actual_energy_wh += w / 60.0;
            }
            if let Some(f) = minute.avg.get(&(device, Metric::Shed)) {
                s.actual_shed_hours += f / 60.0;
            }
        }
        // No data that minute: the live side was stale too.
        let Some(allocation) = minute_runner.run(&minute.last) else {
            continue;
        };
        replayed += 1;
        for (s, g) in out.iter_mut().zip(&allocation.services) {
            s.energy_wh += g.allocated_w / 60.0;
            s.demand_wh += g.demand_w / 60.0;
            if g.state == ServiceState::Shed {
                s.shed_hours += 1.0 / 60.0;
            }
        }
    }
    Ok(Replay {
        from,
        to,
        minutes: replayed,
        services: out,
    })
}

/// The rows of the rollup query, by minute.
fn minutes_of(batches: &[RecordBatch]) -> Result<BTreeMap<i64, Minute>> {
    let wrong = |c: &str| Error::ColumnType {
        query: "replay",
        column: c.to_string(),
    };
    let mut minutes: BTreeMap<i64, Minute> = BTreeMap::new();
    for b in batches {
        let ts = b
            .column(0)
            .as_primitive_opt::<TimestampMillisecondType>()
            .ok_or_else(|| wrong("ts"))?;
        let text = |c: usize| -> Result<Vec<Option<String>>> {
            let col = b.column(c);
            if let Some(a) = col.as_string_view_opt() {
                Ok(a.iter().map(|v| v.map(str::to_string)).collect())
            } else if let Some(a) = col.as_string_opt::<i32>() {
                Ok(a.iter().map(|v| v.map(str::to_string)).collect())
            } else {
                Err(wrong(if c == 1 { "device" } else { "metric" }))
            }
        };
        let (device, metric) = (text(1)?, text(2)?);
        let last = b
            .column(3)
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| wrong("last"))?;
        let avg = b
            .column(4)
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| wrong("avg"))?;
        for i in 0..b.num_rows() {
            let (Some(d), Some(m)) = (&device[i], &metric[i]) else {
                continue;
            };
            let Some(metric) = Metric::parse(m) else {
                continue;
            };
            let minute = minutes.entry(ts.value(i)).or_default();
            if last.is_valid(i) {
                minute.last.insert((d.clone(), metric), last.value(i));
            }
            if avg.is_valid(i) {
                minute.avg.insert((d.clone(), metric), avg.value(i));
            }
        }
    }
    Ok(minutes)
}

#[cfg(test)]
mod tests;
