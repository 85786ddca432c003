//! What a household's meters drew during a surplus window, against what they
//! usually draw at those hours (DESIGN.md §11): the measure behind the node's
//! certification of a load shifted into one of its surplus offers.
//!
//! - **measured**: for each meter, its mean power over the minutes of the window
//!   it reported (`power_w`, what it drew: a negative minute counts as nothing),
//!   times the window's length; the sum over the household's meters. A meter that
//!   reported fewer than [`MIN_COVERAGE`] of the window's minutes leaves the window
//!   unmeasured: a gap is not a shifted load, nor its absence.
//! - **baseline**: the same measure over the same hours on the clocks of each of the
//!   [`BASELINE_DAYS`] days before, averaged over the days measured; at least
//!   [`MIN_BASELINE_DAYS`] of them, or there is no baseline.
//!
//! What was shifted is then `measured − baseline`: a washing machine run in the
//! window shows up above a household's ordinary day; a promise not kept does not.
//! The household's readings are read by the node itself, for the commitment its
//! member made; the certification in the journal names the meters and the window,
//! and is the record of that read.

use std::collections::BTreeMap;

use chrono::{DateTime, Days, Utc};
use chrono_tz::Tz;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};

use crate::charts::{local_instant, ts_literal};
use crate::consent::quote;
use crate::history_session::Queries;
use crate::{Error, Result};

/// Days before the window the baseline is taken from.
pub const BASELINE_DAYS: u64 = 7;
/// Days measured below which there is no baseline.
pub const MIN_BASELINE_DAYS: usize = 3;
/// The share of a span's minutes each meter must have reported for it to count.
pub const MIN_COVERAGE: f64 = 0.8;

/// A household's draw over a window and its baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadShiftMeasure {
    /// kWh over the window; `None` when a meter reported too little in it.
    pub measured_kwh: Option<f64>,
    /// The mean kWh over the same hours of the days before; `None` with fewer than
    /// [`MIN_BASELINE_DAYS`] days measured.
    pub baseline_kwh: Option<f64>,
    /// The days the baseline is the mean of.
    pub baseline_days: u32,
}

/// What `meters` drew over `[start, end)`, in kWh, or `None` when one of them
/// reported fewer than [`MIN_COVERAGE`] of its minutes.
pub async fn meters_kwh(
    queries: &Queries,
    meters: &[String],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Option<f64>> {
    let minutes = (end - start).num_minutes();
    if meters.is_empty() || minutes <= 0 {
        return Ok(None);
    }
    let ids = meters
        .iter()
        .map(|m| quote(m))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT CAST(device AS VARCHAR) AS device, count(*) AS minutes,
                avg(greatest(avg, 0.0)) AS mean_w
         FROM readings_1m
         WHERE ts >= {from} AND ts < {to} AND metric = 'power_w'
           AND CAST(device AS VARCHAR) IN ({ids})
         GROUP BY 1",
        from = ts_literal(start),
        to = ts_literal(end),
    );
    let mut per_meter: BTreeMap<String, (i64, f64)> = BTreeMap::new();
    for batch in queries.session().sql(&sql).await?.collect().await? {
        let column = |i: usize| Error::ColumnType {
            query: "load shift",
            column: i.to_string(),
        };
        let device = batch.column(0);
        let names: Vec<Option<String>> = if let Some(a) = device.as_string_view_opt() {
            a.iter().map(|v| v.map(str::to_string)).collect()
        } else if let Some(a) = device.as_string_opt::<i32>() {
            a.iter().map(|v| v.map(str::to_string)).collect()
        } else {
            return Err(column(0));
        };
        let counts = batch
            .column(1)
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| column(1))?;
        let means = batch
            .column(2)
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| column(2))?;
        for (i, name) in names.into_iter().enumerate() {
            if let Some(name) = name
                && means.is_valid(i)
            {
                per_meter.insert(name, (counts.value(i), means.value(i)));
            }
        }
    }
    let hours = minutes as f64 / 60.0;
    let mut kwh = 0.0;
    for meter in meters {
        match per_meter.get(meter) {
            Some((reported, mean_w)) if *reported as f64 >= MIN_COVERAGE * minutes as f64 => {
                kwh += mean_w * hours / 1000.0;
            }
            _ => return Ok(None),
        }
    }
    Ok(Some(kwh))
}

/// The draw of `meters` over `[start, end)` and their baseline: the same hours
/// on the clocks of `tz`, on each of the [`BASELINE_DAYS`] days before.
pub async fn measure(
    queries: &Queries,
    tz: Tz,
    meters: &[String],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<LoadShiftMeasure> {
    let measured_kwh = meters_kwh(queries, meters, start, end).await?;
    let (local_start, local_end) = (
        start.with_timezone(&tz).naive_local(),
        end.with_timezone(&tz).naive_local(),
    );
    let mut days = Vec::new();
    for back in 1..=BASELINE_DAYS {
        let (Some(s), Some(e)) = (
            local_start.checked_sub_days(Days::new(back)),
            local_end.checked_sub_days(Days::new(back)),
        ) else {
            continue;
        };
        if let Some(kwh) =
            meters_kwh(queries, meters, local_instant(tz, s), local_instant(tz, e)).await?
        {
            days.push(kwh);
        }
    }
    let baseline_kwh =
        (days.len() >= MIN_BASELINE_DAYS).then(|| days.iter().sum::<f64>() / days.len() as f64);
    Ok(LoadShiftMeasure {
        measured_kwh,
        baseline_kwh,
        baseline_days: u32::try_from(days.len()).unwrap_or(u32::MAX),
    })
}
