//! Where a node's summaries come from: the public view of the live snapshot for
//! the minute being published, the history's one-minute rollups for the minutes
//! resent after an outage or archived at the end of a day.

use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int64Type, TimestampMillisecondType};
use query::history_session::Queries;
use query::live::LiveSnapshot;
use tokio::sync::watch;

use crate::summary::{Origin, ServiceCounts, Summary, minute_of};
use crate::{Error, Result};

/// What a node's summaries are made of.
#[derive(Clone)]
pub struct NodeSource {
    node: String,
    /// The public view of the live snapshot (`AppState.live`).
    live: watch::Receiver<Arc<LiveSnapshot>>,
    /// The history, for resent minutes and the daily archive; `None` on a node that
    /// keeps none (nothing can be resent then).
    queries: Option<Queries>,
    /// For the week's validated hours.
    journal: Option<Arc<ledger::Journal>>,
    timezone: chrono_tz::Tz,
}

impl std::fmt::Debug for NodeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSource")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl NodeSource {
    pub fn new(
        node: &str,
        live: watch::Receiver<Arc<LiveSnapshot>>,
        queries: Option<Queries>,
        journal: Option<Arc<ledger::Journal>>,
        timezone: chrono_tz::Tz,
    ) -> NodeSource {
        NodeSource {
            node: node.to_string(),
            live,
            queries,
            journal,
            timezone,
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The summary of the live snapshot as it is now, of the minute it was
    /// computed in.
    pub async fn live(&self) -> Summary {
        let snapshot = self.live.borrow().clone();
        let week_hours = self.week_hours(snapshot.ts).await;
        let mut summary = Summary::from_live(&self.node, snapshot.ts, &snapshot, week_hours);
        summary.intents = self.shared_intents(snapshot.ts).await;
        summary
    }

    /// The open intents shared with the federation, oldest first; none when the
    /// journal cannot tell (logged).
    async fn shared_intents(&self, now: DateTime<Utc>) -> Vec<crate::summary::PublicIntent> {
        let Some(journal) = self.journal.clone() else {
            return Vec::new();
        };
        match tokio::task::spawn_blocking(move || journal.intents(now)).await {
            Ok(Ok(intents)) => intents
                .iter()
                .rev()
                .filter_map(crate::summary::PublicIntent::of)
                .collect(),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the intents shared with the federation");
                Vec::new()
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the intents shared with the federation");
                Vec::new()
            }
        }
    }

    /// Hours validated since Monday 00:00 in the site's time zone, or `None` when
    /// the journal cannot tell (logged).
    async fn week_hours(&self, now: DateTime<Utc>) -> Option<f64> {
        let journal = self.journal.clone()?;
        let since = week_start(now, self.timezone);
        let counted =
            tokio::task::spawn_blocking(move || journal.hours_validated_since(since)).await;
        match counted {
            Ok(Ok(hours)) => Some(hours.centihours() as f64 / 100.0),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot count this week's validated hours");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot count this week's validated hours");
                None
            }
        }
    }

    /// The summaries of the minutes of `[from, to)` that the history has readings
    /// of, oldest first. A minute the node recorded nothing for (it was stopped)
    /// has none: there is nothing to tell of it.
    pub async fn history(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<Summary>> {
        let Some(queries) = &self.queries else {
            return Ok(vec![]);
        };
        let batches = queries
            .session()
            .sql(&minutes_sql(minute_of(from), to))
            .await?
            .collect()
            .await?;
        let mut out = Vec::new();
        for batch in &batches {
            read_minutes(batch, &self.node, &mut out)?;
        }
        self.fill_week_hours(&mut out).await;
        Ok(out)
    }

    /// Each minute's week's validated hours as they stood at the end of that
    /// minute, from the journal: what the live summary of that minute would have
    /// said. Left empty when the journal cannot tell (logged).
    async fn fill_week_hours(&self, minutes: &mut [Summary]) {
        let (Some(journal), Some(first)) = (self.journal.clone(), minutes.first()) else {
            return;
        };
        let since = week_start(first.minute, self.timezone);
        let validations =
            match tokio::task::spawn_blocking(move || journal.validations_since(since)).await {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot count the resent minutes' validated hours");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot count the resent minutes' validated hours");
                    return;
                }
            };
        week_hours_at(minutes, &validations, self.timezone);
    }
}

/// Sets each summary's `week_hours` to the hours of `validations` (oldest first)
/// from its week's start to the end of its minute.
pub fn week_hours_at(
    minutes: &mut [Summary],
    validations: &[(DateTime<Utc>, ledger::Hours)],
    tz: chrono_tz::Tz,
) {
    for s in minutes {
        let start = week_start(s.minute, tz);
        let end = s.minute + Duration::minutes(1);
        let centihours: u64 = validations
            .iter()
            .filter(|(t, _)| *t >= start && *t < end)
            .map(|(_, h)| h.centihours())
            .sum();
        s.week_hours = Some(centihours as f64 / 100.0);
    }
}

/// Monday 00:00 of `now`'s week in `tz`, in UTC.
pub fn week_start(now: DateTime<Utc>, tz: chrono_tz::Tz) -> DateTime<Utc> {
    let today = now.with_timezone(&tz).date_naive();
    let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
    let midnight = monday.and_time(chrono::NaiveTime::MIN);
    (0..=3)
        .find_map(|h| {
            tz.from_local_datetime(&(midnight + Duration::hours(h)))
                .earliest()
        })
        .map_or(now, |t| t.with_timezone(&Utc))
}

fn ts_literal(t: DateTime<Utc>) -> String {
    format!(
        "arrow_cast({}, 'Timestamp(Millisecond, Some(\"UTC\"))')",
        t.timestamp_millis()
    )
}

/// Per minute of `[from, to)` with power readings: production, grid and battery
/// (the sums of the minute's average power of the devices of each role), the
/// batteries' average state of charge, and how many services the recorded
/// evaluations served, partly served and shed (each service by its minute's
/// averages: shed at least half the minute, else served when it got what it
/// asked to within half a watt, else partly served when it asked for anything).
/// Consumption is what the bus balance leaves: `pv + grid + battery` (DESIGN.md §2).
fn minutes_sql(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    format!(
        "WITH p AS (
           SELECT r.ts AS minute,
                  sum(CASE WHEN d.role = 'pv' THEN r.avg ELSE 0 END) AS pv,
                  sum(CASE WHEN d.role = 'grid' THEN r.avg ELSE 0 END) AS grid,
                  sum(CASE WHEN d.role = 'battery' THEN r.avg ELSE 0 END) AS battery
           FROM readings_1m r JOIN devices d ON CAST(r.device AS VARCHAR) = d.id
           WHERE r.ts >= {from} AND r.ts < {to}
             AND r.metric = 'power_w' AND d.role IN ('pv', 'grid', 'battery')
           GROUP BY r.ts
         ),
         s AS (
           SELECT r.ts AS minute, avg(r.avg) AS soc
           FROM readings_1m r JOIN devices d ON CAST(r.device AS VARCHAR) = d.id
           WHERE r.ts >= {from} AND r.ts < {to}
             AND r.metric = 'soc_pct' AND d.role = 'battery'
           GROUP BY r.ts
         ),
         v AS (
           SELECT ts AS minute, CAST(device AS VARCHAR) AS device,
                  coalesce(max(CASE WHEN metric = 'demand_w' THEN avg END), 0) AS demand,
                  coalesce(max(CASE WHEN metric = 'allocated_w' THEN avg END), 0) AS allocated,
                  coalesce(max(CASE WHEN metric = 'shed' THEN avg END), 0) AS shed
           FROM readings_1m
           WHERE ts >= {from} AND ts < {to}
             AND metric IN ('demand_w', 'allocated_w', 'shed')
             AND starts_with(CAST(device AS VARCHAR), 'service:')
           GROUP BY 1, 2
         ),
         c AS (
           SELECT minute,
                  CAST(sum(CASE WHEN shed < 0.5 AND demand > 0 AND allocated >= demand - 0.5
                           THEN 1 ELSE 0 END) AS BIGINT) AS served,
                  CAST(sum(CASE WHEN shed < 0.5 AND demand > 0 AND allocated < demand - 0.5
                           THEN 1 ELSE 0 END) AS BIGINT) AS partial,
                  CAST(sum(CASE WHEN shed >= 0.5 THEN 1 ELSE 0 END) AS BIGINT) AS shed
           FROM v GROUP BY minute
         )
         SELECT p.minute, p.pv, p.grid, p.battery, s.soc, c.served, c.partial, c.shed
         FROM p LEFT JOIN s ON p.minute = s.minute LEFT JOIN c ON p.minute = c.minute
         ORDER BY p.minute",
        from = ts_literal(from),
        to = ts_literal(to),
    )
}

fn read_minutes(batch: &RecordBatch, node: &str, out: &mut Vec<Summary>) -> Result<()> {
    let missing =
        |c: &str| Error::Query(format!("history minutes: column `{c}` missing or mistyped"));
    let minute = batch
        .column(0)
        .as_primitive_opt::<TimestampMillisecondType>()
        .ok_or_else(|| missing("minute"))?;
    let f = |i: usize, name: &str| {
        batch
            .column(i)
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| missing(name))
    };
    let i = |i: usize, name: &str| {
        batch
            .column(i)
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| missing(name))
    };
    let (pv, grid, battery, soc) = (f(1, "pv")?, f(2, "grid")?, f(3, "battery")?, f(4, "soc")?);
    let (served, partial, shed) = (i(5, "served")?, i(6, "partial")?, i(7, "shed")?);
    let count = |a: &datafusion::arrow::array::Int64Array, r: usize| {
        if a.is_valid(r) {
            u32::try_from(a.value(r)).unwrap_or(0)
        } else {
            0
        }
    };
    for r in 0..batch.num_rows() {
        let Some(t) = DateTime::from_timestamp_millis(minute.value(r)) else {
            continue;
        };
        let (pv_w, grid_w, battery_w) = (pv.value(r), grid.value(r), battery.value(r));
        let consumption_w = pv_w + grid_w + battery_w;
        out.push(
            Summary {
                node: node.to_string(),
                minute: t,
                origin: Origin::History,
                stale: false,
                production_w: pv_w,
                consumption_w,
                surplus_w: pv_w - consumption_w,
                grid_w,
                battery_w,
                battery_soc_pct: soc.is_valid(r).then(|| soc.value(r)),
                services: ServiceCounts {
                    served: count(served, r),
                    partial: count(partial, r),
                    shed: count(shed, r),
                },
                week_hours: None,
                intents: Vec::new(),
            }
            .rounded(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod week_hours_tests {
    use super::*;

    fn minute(s: &str) -> Summary {
        let t = DateTime::parse_from_rfc3339(s)
            .expect("instant")
            .with_timezone(&Utc);
        Summary {
            node: "n".into(),
            minute: t,
            origin: Origin::History,
            stale: false,
            production_w: 0.0,
            consumption_w: 0.0,
            surplus_w: 0.0,
            grid_w: 0.0,
            battery_w: 0.0,
            battery_soc_pct: None,
            services: ServiceCounts::default(),
            week_hours: None,
            intents: Vec::new(),
        }
    }

    #[test]
    fn resent_minutes_count_the_hours_validated_in_their_own_week_up_to_them() {
        let at = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("instant")
                .with_timezone(&Utc)
        };
        // Paris in June: Monday 00:00 is Sunday 22:00 UTC.
        let validations = vec![
            (
                at("2025-06-01T21:59:00Z"),
                ledger::Hours::from_centihours(700),
            ), // Sunday 23:59
            (
                at("2025-06-02T08:00:30Z"),
                ledger::Hours::from_centihours(150),
            ),
            (
                at("2025-06-04T12:00:00Z"),
                ledger::Hours::from_centihours(225),
            ),
            (
                at("2025-06-08T22:00:00Z"),
                ledger::Hours::from_centihours(1000),
            ), // next Monday 00:00
        ];
        let mut minutes = vec![
            minute("2025-06-01T21:58:00Z"), // before the first validation
            minute("2025-06-01T21:59:00Z"), // its minute
            minute("2025-06-02T07:59:00Z"), // a new week: nothing yet
            minute("2025-06-02T08:00:00Z"),
            minute("2025-06-04T11:59:00Z"),
            minute("2025-06-08T21:59:00Z"),
            minute("2025-06-08T22:00:00Z"), // the week after: only its own
        ];
        week_hours_at(&mut minutes, &validations, chrono_tz::Europe::Paris);
        let got: Vec<Option<f64>> = minutes.iter().map(|m| m.week_hours).collect();
        assert_eq!(
            got,
            vec![
                Some(0.0),
                Some(7.0),
                Some(0.0),
                Some(1.5),
                Some(1.5),
                Some(3.75),
                Some(10.0)
            ]
        );
    }
}
