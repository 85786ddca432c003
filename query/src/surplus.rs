//! The community's solar surplus, ahead of time (DESIGN.md §11, "energy in the same
//! flow"): when the panels are expected to give more than the site draws, so that a
//! household can shift a load (a washing machine, a water heater) into it.
//!
//! A day's forecast is made from the recorded history, in quarter hours of the
//! site's clocks:
//! - **production**: the median, quarter hour by quarter hour, of the last
//!   [`PRODUCTION_DAYS`] days with data: the season, whatever the weekday (a median,
//!   so that one overcast day does not sink the sunny ones, nor one bright day in a
//!   grey week lift them);
//! - **consumption**: the mean of the same weekday over the last [`WEEKDAY_WEEKS`]
//!   weeks (a Saturday is not a Tuesday), or of the last days when no such weekday
//!   has data yet;
//! - **surplus** = production − consumption, in each quarter hour; a **window** is
//!   a run of consecutive quarter hours whose surplus is at least the threshold, and
//!   the day's window is the run holding the most energy.
//!
//! It is a forecast from the past, not from the weather: it says when surplus is
//! *usual*, and the wall says so ("forecast"). No forecast is made from fewer than
//! [`MIN_DAYS`] days of production.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::Result;
use crate::charts::{Bucket, local_midnight, site_energy, steps};
use crate::history_session::Queries;

/// Days of production the forecast takes the median of.
pub const PRODUCTION_DAYS: u64 = 7;
/// Weeks of the same weekday the consumption is averaged over.
pub const WEEKDAY_WEEKS: u64 = 4;
/// Days of production below which no forecast is made.
pub const MIN_DAYS: usize = 3;
/// The forecast's step.
pub const SLOT_MINUTES: i64 = 15;

/// A span of expected (or measured) surplus.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SurplusWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The surplus energy expected over the window, in kWh.
    pub kwh: f64,
    /// The largest quarter hour's surplus, in watts.
    pub peak_w: f64,
}

/// A day's quarter hours: expected production and consumption, in watts, by the
/// time they start on the site's clocks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayForecast {
    pub slots: Vec<Slot>,
    /// Days of production the forecast was made from.
    pub production_days: usize,
    /// Days of consumption it was made from.
    pub consumption_days: usize,
}

/// One quarter hour of a forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub production_w: f64,
    pub consumption_w: f64,
}

impl Slot {
    pub fn surplus_w(&self) -> f64 {
        self.production_w - self.consumption_w
    }
}

/// The forecast of `day` (in `tz`) from the history before it; `None` when fewer
/// than [`MIN_DAYS`] days of production are recorded.
pub async fn forecast_day(
    queries: &Queries,
    tz: Tz,
    day: NaiveDate,
) -> Result<Option<DayForecast>> {
    let span = PRODUCTION_DAYS.max(WEEKDAY_WEEKS * 7);
    let Some(first) = day.checked_sub_days(Days::new(span)) else {
        return Ok(None);
    };
    // One query for the whole span, in quarter hours.
    let buckets = steps(
        local_midnight(tz, first),
        local_midnight(tz, day),
        Duration::minutes(SLOT_MINUTES),
        tz,
    );
    let series = site_energy(queries, &buckets).await?;
    // Each past day's quarter hours with data, by their time on the clocks.
    let mut days: BTreeMap<NaiveDate, BTreeMap<NaiveTime, (f64, f64)>> = BTreeMap::new();
    for (b, e) in buckets.iter().zip(&series.buckets) {
        if let (Some(p), Some(c)) = (e.average_production_w(), e.average_consumption_w()) {
            days.entry(b.local_start.date())
                .or_default()
                .insert(b.local_start.time(), (p.max(0.0), c.max(0.0)));
        }
    }
    let production_days: Vec<&BTreeMap<NaiveTime, (f64, f64)>> = days
        .iter()
        .rev()
        .take(PRODUCTION_DAYS as usize)
        .map(|(_, slots)| slots)
        .collect();
    if production_days.len() < MIN_DAYS {
        return Ok(None);
    }
    let same_weekday: Vec<&BTreeMap<NaiveTime, (f64, f64)>> = days
        .iter()
        .filter(|(d, _)| d.weekday() == day.weekday())
        .map(|(_, slots)| slots)
        .collect();
    let consumption_days = if same_weekday.is_empty() {
        production_days.clone()
    } else {
        same_weekday
    };
    let Some(next) = day.checked_add_days(Days::new(1)) else {
        return Ok(None);
    };
    let slots = steps(
        local_midnight(tz, day),
        local_midnight(tz, next),
        Duration::minutes(SLOT_MINUTES),
        tz,
    )
    .into_iter()
    .filter_map(|b: Bucket| {
        let time = b.local_start.time();
        let production: Vec<f64> = production_days
            .iter()
            .filter_map(|d| d.get(&time).map(|v| v.0))
            .collect();
        let consumption: Vec<f64> = consumption_days
            .iter()
            .filter_map(|d| d.get(&time).map(|v| v.1))
            .collect();
        Some(Slot {
            start: b.start,
            end: b.end,
            production_w: median(production)?,
            consumption_w: mean(&consumption)?,
        })
    })
    .collect();
    Ok(Some(DayForecast {
        slots,
        production_days: production_days.len(),
        consumption_days: consumption_days.len(),
    }))
}

impl DayForecast {
    /// The run of consecutive quarter hours, ending after `after`, whose surplus is
    /// at least `min_w` and that holds the most energy; its first quarter hour cut
    /// at `after` when it had begun. `None` when no quarter hour reaches `min_w`.
    pub fn best_window(&self, min_w: f64, after: DateTime<Utc>) -> Option<SurplusWindow> {
        let mut best: Option<SurplusWindow> = None;
        let mut run: Option<SurplusWindow> = None;
        let mut close = |run: &mut Option<SurplusWindow>| {
            if let Some(w) = run.take()
                && best.as_ref().is_none_or(|b| w.kwh > b.kwh)
            {
                best = Some(w);
            }
        };
        for slot in self.slots.iter().filter(|s| s.end > after) {
            let surplus = slot.surplus_w();
            let contiguous = run.as_ref().is_some_and(|w| w.end == slot.start);
            if surplus < min_w || !contiguous {
                close(&mut run);
            }
            if surplus < min_w {
                continue;
            }
            let start = slot.start.max(after);
            let hours = (slot.end - start).num_seconds() as f64 / 3600.0;
            let w = run.get_or_insert(SurplusWindow {
                start,
                end: slot.end,
                kwh: 0.0,
                peak_w: 0.0,
            });
            w.end = slot.end;
            w.kwh += surplus * hours / 1000.0;
            w.peak_w = w.peak_w.max(surplus);
        }
        close(&mut run);
        best
    }
}

/// The median of `values`, `None` when there are none.
fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

#[cfg(test)]
mod tests;
