//! The figures behind the history charts: a period of the site's calendar cut into
//! buckets (hours of a day, days of a week or month, months of a year, or the
//! quarter hours of today for the wall screen), and for each bucket the site's
//! energy and each service's, summed from the one-minute rollups (`readings_1m`).
//!
//! Every figure starts from each minute's average power (`readings_1m.avg`), one
//! minute standing for 1/60 h:
//!
//! - production: the PV devices' `power_w`, summed, counted when positive;
//! - consumption: what the site drew, `pv + grid + battery` (DESIGN.md §2: the
//!   bus's inflows), counted when positive;
//! - grid import and export, battery discharge and charge: the positive and the
//!   negative part of the summed `grid` and `battery` power, minute by minute, so
//!   that an hour that imported in the morning and exported at noon shows both;
//! - self-sufficiency: `1 − import / consumption` over the bucket, the share of
//!   what the site drew that did not come from the grid (see
//!   [`SiteEnergy::self_sufficiency`]);
//! - state of charge: the average, the lowest and the highest of the batteries'
//!   `soc_pct` over the bucket;
//! - each service, from its recorded evaluations (`service:<id>`, see
//!   [`crate::replay`]): demand (`demand_w`), served (`allocated_w`), shed energy
//!   (the demand of the minutes it was shed: `demand_w × shed`) and hours shed.
//!
//! Minutes without readings count for nothing: a bucket's `minutes` says how many
//! had data. Buckets follow the site's time zone, so a day is 23 or 25 hours long
//! when the clocks change. The SQL sums minutes into bins of a quarter hour (every
//! time zone's offset is a whole number of quarter hours), which are then added
//! into buckets here; its conditions on `ts` let the history open only the days the
//! period covers.

use chrono::{
    DateTime, Datelike, Days, Duration, LocalResult, Months, NaiveDate, NaiveDateTime, NaiveTime,
    TimeZone, Utc,
};
use chrono_tz::Tz;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use serde::Serialize;

use crate::history_session::Queries;
use crate::{Error, Result};

/// How a history page cuts time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum View {
    /// One day, by hour.
    Day,
    /// Monday to Sunday, by day.
    Week,
    /// A calendar month, by day.
    Month,
    /// A calendar year, by month.
    Year,
}

impl View {
    pub const ALL: [View; 4] = [View::Day, View::Week, View::Month, View::Year];

    /// The name used in URLs (`?view=week`).
    pub fn code(self) -> &'static str {
        match self {
            View::Day => "day",
            View::Week => "week",
            View::Month => "month",
            View::Year => "year",
        }
    }

    pub fn parse(code: &str) -> Option<View> {
        View::ALL.into_iter().find(|v| v.code() == code)
    }
}

/// One day, week, month or year of the site's calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period {
    view: View,
    /// The first day: the day itself, the week's Monday, the 1st of the month or
    /// January 1st.
    start: NaiveDate,
}

impl Period {
    /// The period of `view` that holds `date`.
    pub fn containing(view: View, date: NaiveDate) -> Option<Period> {
        let start = match view {
            View::Day => date,
            View::Week => {
                date.checked_sub_days(Days::new(u64::from(date.weekday().num_days_from_monday())))?
            }
            View::Month => date.with_day(1)?,
            View::Year => NaiveDate::from_ymd_opt(date.year(), 1, 1)?,
        };
        Some(Period { view, start })
    }

    pub fn view(&self) -> View {
        self.view
    }

    /// The first day of the period.
    pub fn start(&self) -> NaiveDate {
        self.start
    }

    /// The day after the period's last.
    pub fn end(&self) -> Option<NaiveDate> {
        match self.view {
            View::Day => self.start.checked_add_days(Days::new(1)),
            View::Week => self.start.checked_add_days(Days::new(7)),
            View::Month => self.start.checked_add_months(Months::new(1)),
            View::Year => self.start.checked_add_months(Months::new(12)),
        }
    }

    /// The period just before.
    pub fn previous(&self) -> Option<Period> {
        let start = match self.view {
            View::Day => self.start.checked_sub_days(Days::new(1)),
            View::Week => self.start.checked_sub_days(Days::new(7)),
            View::Month => self.start.checked_sub_months(Months::new(1)),
            View::Year => self.start.checked_sub_months(Months::new(12)),
        }?;
        Some(Period { start, ..*self })
    }

    /// The period just after.
    pub fn next(&self) -> Option<Period> {
        Some(Period {
            start: self.end()?,
            ..*self
        })
    }

    pub fn contains(&self, date: NaiveDate) -> bool {
        date >= self.start && self.end().is_none_or(|end| date < end)
    }

    /// The period in the site's time zone, from its first instant to the first of
    /// the next.
    pub fn range(&self, tz: Tz) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let end = self.end()?;
        Some((local_midnight(tz, self.start), local_midnight(tz, end)))
    }

    /// The buckets of the period: its hours (a day), days (a week or month) or
    /// months (a year), in the site's time zone.
    pub fn buckets(&self, tz: Tz) -> Vec<Bucket> {
        let Some(end) = self.end() else {
            return vec![];
        };
        match self.view {
            View::Day => steps(
                local_midnight(tz, self.start),
                local_midnight(tz, end),
                Duration::hours(1),
                tz,
            ),
            View::Week | View::Month => {
                calendar(self.start, end, tz, |d| d.checked_add_days(Days::new(1)))
            }
            View::Year => calendar(self.start, end, tz, |d| {
                d.checked_add_months(Months::new(1))
            }),
        }
    }
}

/// A span of time the charts sum over: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// When it starts on the site's clocks.
    pub local_start: NaiveDateTime,
}

/// The first instant of `date` in `tz`: midnight, or when a clock change skips
/// midnight (as in Santiago), the first time that exists after it.
pub fn local_midnight(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    local_instant(tz, date.and_time(NaiveTime::MIN))
}

/// `local` on the clocks of `tz`: the earlier of two when clocks go back, the
/// first time that exists after it when they skip it.
pub fn local_instant(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // Clock changes skip at most a few hours, by quarter hours at least.
            (1..=16)
                .find_map(|k| {
                    tz.from_local_datetime(&(local + Duration::minutes(15 * k)))
                        .earliest()
                })
                .map_or(local.and_utc(), |t| t.with_timezone(&Utc))
        }
    }
}

/// Buckets of `step` from `from` to `to`, the last cut short at `to`.
pub fn steps(from: DateTime<Utc>, to: DateTime<Utc>, step: Duration, tz: Tz) -> Vec<Bucket> {
    let mut out = Vec::new();
    if step <= Duration::zero() {
        return out;
    }
    let mut start = from;
    while start < to {
        let end = (start + step).min(to);
        out.push(Bucket {
            start,
            end,
            local_start: start.with_timezone(&tz).naive_local(),
        });
        start = end;
    }
    out
}

/// Today on the site's clocks, from midnight to midnight, in buckets of
/// `step_minutes`: the wall screen's curve.
pub fn today(now: DateTime<Utc>, tz: Tz, step_minutes: i64) -> Vec<Bucket> {
    let date = now.with_timezone(&tz).date_naive();
    let Some(next) = date.checked_add_days(Days::new(1)) else {
        return vec![];
    };
    steps(
        local_midnight(tz, date),
        local_midnight(tz, next),
        Duration::minutes(step_minutes),
        tz,
    )
}

/// Calendar buckets from `from` to `to`, each to the date `next` gives.
fn calendar(
    from: NaiveDate,
    to: NaiveDate,
    tz: Tz,
    next: impl Fn(NaiveDate) -> Option<NaiveDate>,
) -> Vec<Bucket> {
    let mut out = Vec::new();
    let mut day = from;
    while day < to {
        let Some(after) = next(day) else { break };
        let after = after.min(to);
        let start = local_midnight(tz, day);
        out.push(Bucket {
            start,
            end: local_midnight(tz, after),
            local_start: start.with_timezone(&tz).naive_local(),
        });
        day = after;
    }
    out
}

/// The site's energy over one bucket (or a whole period).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SiteEnergy {
    /// Minutes with power readings.
    pub minutes: u32,
    pub production_wh: f64,
    pub consumption_wh: f64,
    pub grid_import_wh: f64,
    pub grid_export_wh: f64,
    pub battery_charge_wh: f64,
    pub battery_discharge_wh: f64,
    /// Minutes with a state of charge.
    pub soc_minutes: u32,
    pub soc_avg_pct: Option<f64>,
    pub soc_min_pct: Option<f64>,
    pub soc_max_pct: Option<f64>,
}

impl SiteEnergy {
    /// The share of consumption not drawn from the grid, `1 − import /
    /// consumption` (0 to 1); `None` without consumption. A battery's discharge
    /// counts as the site's own (it was charged from the panels, or its charge
    /// from the grid was counted as import then).
    pub fn self_sufficiency(&self) -> Option<f64> {
        (self.consumption_wh > 0.0)
            .then(|| (1.0 - self.grid_import_wh / self.consumption_wh).clamp(0.0, 1.0))
    }

    /// Average production over the minutes with data, in watts.
    pub fn average_production_w(&self) -> Option<f64> {
        (self.minutes > 0).then(|| self.production_wh * 60.0 / f64::from(self.minutes))
    }

    /// Average consumption over the minutes with data, in watts.
    pub fn average_consumption_w(&self) -> Option<f64> {
        (self.minutes > 0).then(|| self.consumption_wh * 60.0 / f64::from(self.minutes))
    }

    fn add(&mut self, other: &SiteEnergy) {
        self.minutes += other.minutes;
        self.production_wh += other.production_wh;
        self.consumption_wh += other.consumption_wh;
        self.grid_import_wh += other.grid_import_wh;
        self.grid_export_wh += other.grid_export_wh;
        self.battery_charge_wh += other.battery_charge_wh;
        self.battery_discharge_wh += other.battery_discharge_wh;
        self.add_soc(
            other.soc_minutes,
            other.soc_avg_pct,
            other.soc_min_pct,
            other.soc_max_pct,
        );
    }

    fn add_soc(&mut self, minutes: u32, avg: Option<f64>, min: Option<f64>, max: Option<f64>) {
        if let Some(avg) = avg.filter(|_| minutes > 0) {
            let total = self.soc_minutes + minutes;
            let before = self.soc_avg_pct.unwrap_or(0.0) * f64::from(self.soc_minutes);
            self.soc_avg_pct = Some((before + avg * f64::from(minutes)) / f64::from(total));
            self.soc_minutes = total;
        }
        let lower = |a: Option<f64>, b: Option<f64>, pick: fn(f64, f64) -> f64| match (a, b) {
            (Some(a), Some(b)) => Some(pick(a, b)),
            (a, b) => a.or(b),
        };
        self.soc_min_pct = lower(self.soc_min_pct, min, f64::min);
        self.soc_max_pct = lower(self.soc_max_pct, max, f64::max);
    }
}

/// The site's energy in each bucket, and over all of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SiteSeries {
    /// One per bucket, in the buckets' order.
    pub buckets: Vec<SiteEnergy>,
    pub total: SiteEnergy,
}

/// One service's energy over a bucket (or a whole period).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceEnergy {
    pub demand_wh: f64,
    /// What the allocation gave it.
    pub served_wh: f64,
    /// What it asked for while shed.
    pub shed_wh: f64,
    pub shed_hours: f64,
    /// Minutes with a recorded evaluation.
    pub minutes: u32,
}

impl ServiceEnergy {
    fn add(&mut self, other: &ServiceEnergy) {
        self.demand_wh += other.demand_wh;
        self.served_wh += other.served_wh;
        self.shed_wh += other.shed_wh;
        self.shed_hours += other.shed_hours;
        self.minutes += other.minutes;
    }
}

/// One configured service over the buckets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceSeries {
    pub id: String,
    /// Its name in the configuration, else its id.
    pub name: String,
    pub buckets: Vec<ServiceEnergy>,
    pub total: ServiceEnergy,
}

/// A time literal the history's day pruning recognises.
pub(crate) fn ts_literal(t: DateTime<Utc>) -> String {
    format!(
        "arrow_cast({}, 'Timestamp(Millisecond, Some(\"UTC\"))')",
        t.timestamp_millis()
    )
}

/// The width of the SQL's bins, in minutes: a quarter hour when every bucket
/// starts and ends on one, else five minutes, else one.
fn bin_minutes(buckets: &[Bucket]) -> i64 {
    let on = |minutes: i64| {
        buckets.iter().all(|b| {
            b.start.timestamp_millis() % (minutes * 60_000) == 0
                && b.end.timestamp_millis() % (minutes * 60_000) == 0
        })
    };
    if on(15) {
        15
    } else if on(5) {
        5
    } else {
        1
    }
}

/// The start of the bin of `bin_minutes` that holds `column` (a time in
/// milliseconds), in milliseconds since 1970.
fn bin_sql(column: &str, bin_minutes: i64) -> String {
    let ms = bin_minutes * 60_000;
    format!("(CAST({column} AS BIGINT) / {ms}) * {ms}")
}

/// The bucket that holds `ts_ms`.
fn bucket_of(buckets: &[Bucket], ts_ms: i64) -> Option<usize> {
    let i = buckets
        .partition_point(|b| b.start.timestamp_millis() <= ts_ms)
        .checked_sub(1)?;
    (ts_ms < buckets[i].end.timestamp_millis()).then_some(i)
}

/// The columns of a result, by position, with their expected types.
struct Columns<'a>(&'a RecordBatch);

impl Columns<'_> {
    fn f64(&self, i: usize) -> Result<&datafusion::arrow::array::Float64Array> {
        self.0
            .column(i)
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| Error::ColumnType {
                query: "charts",
                column: i.to_string(),
            })
    }

    fn i64(&self, i: usize) -> Result<&datafusion::arrow::array::Int64Array> {
        self.0
            .column(i)
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| Error::ColumnType {
                query: "charts",
                column: i.to_string(),
            })
    }

    fn text(&self, i: usize) -> Result<Vec<Option<String>>> {
        let col = self.0.column(i);
        if let Some(a) = col.as_string_view_opt() {
            Ok(a.iter().map(|v| v.map(str::to_string)).collect())
        } else if let Some(a) = col.as_string_opt::<i32>() {
            Ok(a.iter().map(|v| v.map(str::to_string)).collect())
        } else {
            Err(Error::ColumnType {
                query: "charts",
                column: i.to_string(),
            })
        }
    }
}

fn value(a: &datafusion::arrow::array::Float64Array, i: usize) -> Option<f64> {
    a.is_valid(i).then(|| a.value(i))
}

/// The SQL of the site's power, per bin of `bin` minutes of `[from, to)`: the bin
/// (ms), its minutes with data, then production, consumption, grid import and
/// export, battery charge and discharge, in watt-hours.
fn power_sql(from: DateTime<Utc>, to: DateTime<Utc>, bin: i64) -> String {
    format!(
        "WITH m AS (
           SELECT r.ts AS minute,
                  sum(CASE WHEN d.role = 'pv' THEN r.avg ELSE 0 END) AS pv,
                  sum(CASE WHEN d.role = 'grid' THEN r.avg ELSE 0 END) AS grid,
                  sum(CASE WHEN d.role = 'battery' THEN r.avg ELSE 0 END) AS battery
           FROM readings_1m r JOIN devices d ON CAST(r.device AS VARCHAR) = d.id
           WHERE r.ts >= {from} AND r.ts < {to}
             AND r.metric = 'power_w' AND d.role IN ('pv', 'grid', 'battery')
           GROUP BY r.ts
         )
         SELECT {bin_ts} AS bin, count(*) AS minutes,
                sum(greatest(pv, 0)) / 60.0,
                sum(greatest(pv + grid + battery, 0)) / 60.0,
                sum(greatest(grid, 0)) / 60.0,
                sum(greatest(-grid, 0)) / 60.0,
                sum(greatest(-battery, 0)) / 60.0,
                sum(greatest(battery, 0)) / 60.0
         FROM m GROUP BY 1",
        from = ts_literal(from),
        to = ts_literal(to),
        bin_ts = bin_sql("minute", bin),
    )
}

/// The SQL of the batteries' state of charge per bin: the bin (ms), its minutes,
/// then the average, lowest and highest percentage.
fn soc_sql(from: DateTime<Utc>, to: DateTime<Utc>, bin: i64) -> String {
    format!(
        "SELECT {bin_ts} AS bin, count(*) AS minutes, avg(r.avg), min(r.min), max(r.max)
         FROM readings_1m r JOIN devices d ON CAST(r.device AS VARCHAR) = d.id
         WHERE r.ts >= {from} AND r.ts < {to}
           AND r.metric = 'soc_pct' AND d.role = 'battery'
         GROUP BY 1",
        from = ts_literal(from),
        to = ts_literal(to),
        bin_ts = bin_sql("r.ts", bin),
    )
}

/// The SQL of the services' recorded evaluations per bin and service device: the
/// bin (ms), the device, its minutes, then demand, served and shed energy in
/// watt-hours and the hours shed.
fn services_sql(from: DateTime<Utc>, to: DateTime<Utc>, bin: i64) -> String {
    format!(
        "WITH m AS (
           SELECT ts AS minute, CAST(device AS VARCHAR) AS device,
                  max(CASE WHEN metric = 'demand_w' THEN avg END) AS demand,
                  max(CASE WHEN metric = 'allocated_w' THEN avg END) AS allocated,
                  max(CASE WHEN metric = 'shed' THEN avg END) AS shed
           FROM readings_1m
           WHERE ts >= {from} AND ts < {to}
             AND metric IN ('demand_w', 'allocated_w', 'shed')
             AND starts_with(CAST(device AS VARCHAR), 'service:')
           GROUP BY 1, 2
         )
         SELECT {bin_ts} AS bin, device, count(*) AS minutes,
                sum(coalesce(demand, 0)) / 60.0,
                sum(coalesce(allocated, 0)) / 60.0,
                sum(coalesce(demand, 0) * coalesce(shed, 0)) / 60.0,
                sum(coalesce(shed, 0)) / 60.0
         FROM m GROUP BY 1, 2",
        from = ts_literal(from),
        to = ts_literal(to),
        bin_ts = bin_sql("minute", bin),
    )
}

/// The site's energy in each of `buckets` (sorted, not overlapping).
pub async fn site_energy(queries: &Queries, buckets: &[Bucket]) -> Result<SiteSeries> {
    let mut out = SiteSeries {
        buckets: vec![SiteEnergy::default(); buckets.len()],
        total: SiteEnergy::default(),
    };
    let (Some(first), Some(last)) = (buckets.first(), buckets.last()) else {
        return Ok(out);
    };
    let bin = bin_minutes(buckets);
    let power = power_sql(first.start, last.end, bin);
    for batch in queries.session().sql(&power).await?.collect().await? {
        let c = Columns(&batch);
        let (ts, minutes) = (c.i64(0)?, c.i64(1)?);
        let f: Vec<_> = (2..8).map(|i| c.f64(i)).collect::<Result<_>>()?;
        for i in 0..batch.num_rows() {
            let Some(b) = bucket_of(buckets, ts.value(i)) else {
                continue;
            };
            let e = &mut out.buckets[b];
            e.minutes += u32::try_from(minutes.value(i)).unwrap_or(0);
            let v = |k: usize| value(f[k], i).unwrap_or(0.0);
            e.production_wh += v(0);
            e.consumption_wh += v(1);
            e.grid_import_wh += v(2);
            e.grid_export_wh += v(3);
            e.battery_charge_wh += v(4);
            e.battery_discharge_wh += v(5);
        }
    }
    let soc = soc_sql(first.start, last.end, bin);
    for batch in queries.session().sql(&soc).await?.collect().await? {
        let c = Columns(&batch);
        let (ts, minutes) = (c.i64(0)?, c.i64(1)?);
        let (avg, min, max) = (c.f64(2)?, c.f64(3)?, c.f64(4)?);
        for i in 0..batch.num_rows() {
            let Some(b) = bucket_of(buckets, ts.value(i)) else {
                continue;
            };
            out.buckets[b].add_soc(
                u32::try_from(minutes.value(i)).unwrap_or(0),
                value(avg, i),
                value(min, i),
                value(max, i),
            );
        }
    }
    for e in &out.buckets {
        out.total.add(e);
    }
    Ok(out)
}

/// Each configured service's energy in each of `buckets`, in the configuration's
/// order.
pub async fn service_energy(queries: &Queries, buckets: &[Bucket]) -> Result<Vec<ServiceSeries>> {
    let mut out: Vec<ServiceSeries> = queries
        .services()
        .iter()
        .map(|s| ServiceSeries {
            id: s.id.clone(),
            name: s.name.clone().unwrap_or_else(|| s.id.clone()),
            buckets: vec![ServiceEnergy::default(); buckets.len()],
            total: ServiceEnergy::default(),
        })
        .collect();
    let (Some(first), Some(last)) = (buckets.first(), buckets.last()) else {
        return Ok(out);
    };
    if out.is_empty() {
        return Ok(out);
    }
    let sql = services_sql(first.start, last.end, bin_minutes(buckets));
    let index: std::collections::HashMap<String, usize> = out
        .iter()
        .enumerate()
        .map(|(i, s)| (crate::replay::service_device(&s.id), i))
        .collect();
    for batch in queries.session().sql(&sql).await?.collect().await? {
        let c = Columns(&batch);
        let (ts, device, minutes) = (c.i64(0)?, c.text(1)?, c.i64(2)?);
        let f: Vec<_> = (3..7).map(|i| c.f64(i)).collect::<Result<_>>()?;
        for (i, device) in device.iter().enumerate() {
            let Some(s) = device.as_ref().and_then(|d| index.get(d)) else {
                continue;
            };
            let Some(b) = bucket_of(buckets, ts.value(i)) else {
                continue;
            };
            let v = |k: usize| value(f[k], i).unwrap_or(0.0);
            let e = &mut out[*s].buckets[b];
            e.minutes += u32::try_from(minutes.value(i)).unwrap_or(0);
            e.demand_wh += v(0);
            e.served_wh += v(1);
            e.shed_wh += v(2);
            e.shed_hours += v(3);
        }
    }
    for s in &mut out {
        let mut total = ServiceEnergy::default();
        for e in &s.buckets {
            total.add(e);
        }
        s.total = total;
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
