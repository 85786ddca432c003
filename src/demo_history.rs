//! The demo's past: days of simulated history written before the node starts, so
//! that the week, month and year views and the assembly's replay have something to
//! show on the first minute of a demo instead of after a month of waiting.
//!
//! The days come from the same simulated world as the live demo (the sun at the
//! site's latitude for each day of the season, clouds, the services' load shapes,
//! the battery), stepped a minute at a time. Each minute gives what the live node
//! would have recorded: every simulated device's `power_w` (and the battery's
//! `soc_pct`) as a reading of the device configured for it, and the allocation the
//! configured plan gives that minute (`service:<id>` `demand_w`, `allocated_w`,
//! `shed`, computed by the same [`query::replay::MinuteRunner`] a replay uses). They
//! are written through the node's own history writer, a day at a time, so each past
//! day ends up compacted and rolled up as a real one would.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, DurationRound, Utc};
use ingest::history::History;
use ingest::reading::Reading;
use query::replay::MinuteRunner;
use sensors::model::{Metric, Role};
use sensors::sim::world::{World, WorldConfig};

use crate::config::Config;

/// The made-up past has its own weather (another seed than the live demo's).
const PAST_SEED: u64 = 0x0DA7_A5EE;
const STEP_S: i64 = 60;

/// What [`seed`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seeded {
    pub(crate) days: u32,
    pub(crate) readings: usize,
}

/// Writes `days` days of simulated history ending at `until` (the demo's simulated
/// start) into the history under `dir`, unless it already holds readings (a demo
/// started again on the same `--data` keeps its own past). `Seeded::days` is 0 when
/// nothing was written.
pub(crate) fn seed(
    config: &Config,
    history_options: ingest::history::HistoryOptions,
    world: &WorldConfig,
    dir: &Path,
    until: DateTime<Utc>,
    days: u32,
) -> Result<Seeded> {
    let history = History::open(dir, history_options)
        .with_context(|| format!("cannot open the history under {}", dir.display()))?;
    let snapshot = history.snapshot();
    if days == 0 || !snapshot.raw.is_empty() || !snapshot.rollups.is_empty() {
        return Ok(Seeded {
            days: 0,
            readings: 0,
        });
    }
    let timezone = config.site.timezone;
    let mut world = World::new(world.clone(), PAST_SEED).with_timezone(timezone);

    // Which configured device stands for which part of the world.
    let ids = |role: Role| -> Vec<Arc<str>> {
        config
            .devices
            .iter()
            .filter(|d| d.role == role)
            .map(|d| Arc::<str>::from(d.id.as_str()))
            .collect()
    };
    let (pv, grid, battery) = (ids(Role::Pv), ids(Role::Grid), ids(Role::Battery));
    // A simulated load is read by the meter of the service of the same id.
    let meters: HashMap<&str, Arc<str>> = config
        .services
        .iter()
        .filter_map(|s| Some((s.id.as_str(), Arc::<str>::from(s.meter.as_deref()?))))
        .collect();
    let plan = query::config::initial_plan(&config.services, &config.tiers, &config.sources);
    let runner = MinuteRunner::new(&config.devices, &config.services, &plan);

    let step = Duration::seconds(STEP_S);
    let mut t = (until - Duration::days(i64::from(days)))
        .duration_trunc(step)
        .context("the demo's start is out of range")?;
    let mut dt_s = 0.0;
    let mut day = t.date_naive();
    let mut pending: Vec<Reading> = Vec::new();
    let mut written = 0;
    while t < until {
        let s = world.step(t, dt_s);
        dt_s = STEP_S as f64;
        let ts_ms = t.timestamp_millis();
        let mut values: HashMap<(String, Metric), f64> = HashMap::new();
        let mut put = |device: &Arc<str>, metric: Metric, value: f64| {
            values.insert((device.to_string(), metric), value);
            pending.push(Reading {
                ts_ms,
                device: device.clone(),
                metric,
                value,
            });
        };
        // One device of a role takes its share of the world's figure.
        for (devices, w) in [(&pv, s.pv_w), (&grid, s.grid_w), (&battery, s.battery_w)] {
            for d in devices {
                put(d, Metric::PowerW, round1(w / devices.len() as f64));
            }
        }
        for d in &battery {
            put(d, Metric::SocPct, round1(s.battery_soc_pct));
        }
        for (service, w) in &s.loads {
            if let Some(meter) = meters.get(service.as_str()) {
                put(meter, Metric::PowerW, round1(*w));
            }
        }
        if let Some(allocation) = runner.run(&values) {
            pending.extend(runner.readings(ts_ms, &allocation));
        }
        t += step;
        if t.date_naive() != day || t >= until {
            written += pending.len();
            history
                .add_pending(None, &std::mem::take(&mut pending))
                .context("cannot keep the simulated readings")?;
            // Days before the demo's first day are compacted and rolled up here.
            history
                .flush(None, until.date_naive())
                .with_context(|| format!("cannot write the simulated history of {day}"))?;
            day = t.date_naive();
        }
    }
    // Nobody reads this history yet: the day files the compactions replaced go
    // now, rather than being found and deleted by the node as a stop's leftovers.
    history.delete_replaced_now();
    Ok(Seeded {
        days,
        readings: written,
    })
}

/// Readings with one decimal, as the demo's own devices publish them.
fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
