use std::collections::HashMap;

use chrono::NaiveDate;
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int64Type, TimestampMillisecondType};
use datafusion::physical_plan::displayable;
use ingest::history::{History, HistoryOptions};
use ingest::reading::Reading;
use sensors::model::Metric;

use super::*;

/// 2026-03-12T00:00:00Z
const MARCH_12: i64 = 1_773_273_600_000;
const DAY_MS: i64 = 86_400_000;

fn r(ts_ms: i64, device: &str, metric: Metric, value: f64) -> Reading {
    Reading {
        ts_ms,
        device: device.into(),
        metric,
        value,
    }
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

/// Readings every 10 s for two devices on `day` (0 = March 12), values varying.
fn day_of_readings(day: i64, every_s: i64) -> Vec<Reading> {
    (0..(600 / every_s))
        .flat_map(|k| {
            let t = MARCH_12 + day * DAY_MS + 8 * 3_600_000 + k * every_s * 1000;
            [
                r(
                    t,
                    "pv",
                    Metric::PowerW,
                    ((k * 37) % 101) as f64 + day as f64,
                ),
                r(t + 250, "grid", Metric::PowerW, -((k * 11) % 29) as f64),
            ]
        })
        .collect()
}

/// A history with March 11 and 12 written out (March 11 compacted and rolled up,
/// today being March 12) and some of March 12 still pending.
fn history(dir: &std::path::Path) -> (Arc<History>, Vec<Reading>) {
    let history = History::open(dir, HistoryOptions::default()).expect("history");
    let mut all = Vec::new();
    for (day, today) in [(-1, "2026-03-12"), (0, "2026-03-12")] {
        let readings = day_of_readings(day, 10);
        history.add_pending(None, &readings).expect("pending");
        history.flush(None, date(today)).expect("flush");
        all.extend(readings);
    }
    let later: Vec<Reading> = (0..5)
        .map(|k| {
            r(
                MARCH_12 + 20 * 3_600_000 + k * 1000,
                "pv",
                Metric::PowerW,
                7.0 + k as f64,
            )
        })
        .collect();
    history.add_pending(None, &later).expect("pending");
    all.extend(later);
    (history, all)
}

async fn ctx(history: Arc<History>) -> SessionContext {
    let ctx = SessionContext::new();
    register(&ctx, history).await.expect("register");
    ctx
}

async fn sql(ctx: &SessionContext, q: &str) -> Vec<RecordBatch> {
    ctx.sql(q)
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"))
}

fn count(batches: &[RecordBatch]) -> i64 {
    batches
        .first()
        .map(|b| b.column(0).as_primitive::<Int64Type>().value(0))
        .unwrap_or(-1)
}

#[tokio::test]
async fn readings_holds_the_files_and_the_pending_readings_once_each() {
    let dir = tempfile::tempdir().expect("tmp");
    let (history, all) = history(dir.path());
    assert!(history.pending_rows() > 0, "some readings still pending");
    let ctx = ctx(history).await;
    let total = sql(&ctx, "SELECT count(*) FROM readings").await;
    assert_eq!(count(&total), all.len() as i64);
    let pv_sum: f64 = all
        .iter()
        .filter(|x| &*x.device == "pv")
        .map(|x| x.value)
        .sum();
    let got = sql(&ctx, "SELECT sum(value) FROM readings WHERE device = 'pv'").await;
    let got = got[0].column(0).as_primitive::<Float64Type>().value(0);
    assert!((got - pv_sum).abs() < 1e-9, "{got} vs {pv_sum}");
}

#[tokio::test]
async fn a_query_over_one_day_opens_that_days_files_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let (history, all) = history(dir.path());
    let ctx = ctx(history).await;
    let q = "SELECT count(*) FROM readings
             WHERE ts >= TIMESTAMP '2026-03-11T00:00:00Z' AND ts < TIMESTAMP '2026-03-11T23:59:59Z'";
    let df = ctx.sql(q).await.expect("sql");
    let plan = df.clone().create_physical_plan().await.expect("plan");
    let shown = displayable(plan.as_ref()).indent(true).to_string();
    assert!(shown.contains("date=2026-03-11"), "{shown}");
    assert!(
        !shown.contains("date=2026-03-12"),
        "March 12 opened: {shown}"
    );
    let expected = all
        .iter()
        .filter(|x| x.ts_ms >= MARCH_12 - DAY_MS && x.ts_ms < MARCH_12)
        .count();
    assert_eq!(count(&df.collect().await.expect("run")), expected as i64);
}

#[test]
fn day_ranges_follow_the_conditions_on_ts() {
    use datafusion::prelude::{col, lit};
    let t = |ms: i64| {
        lit(ScalarValue::TimestampMillisecond(
            Some(ms),
            Some("UTC".into()),
        ))
    };
    let (from, to) = day_range(&[
        col("ts").gt_eq(t(MARCH_12)),
        col("ts").lt(t(MARCH_12 + 2 * DAY_MS)),
    ]);
    assert_eq!(
        (from, to),
        (Some(date("2026-03-12")), Some(date("2026-03-14")))
    );
    // Reversed operands, nanoseconds.
    let nanos = lit(ScalarValue::TimestampNanosecond(
        Some(MARCH_12 * 1_000_000),
        None,
    ));
    assert_eq!(
        day_range(&[nanos.lt(col("ts"))]),
        (Some(date("2026-03-12")), None)
    );
    // A bound under OR says nothing.
    let either = col("ts").lt(t(MARCH_12)).or(col("device").eq(lit("pv")));
    assert_eq!(day_range(&[either]), (None, None));
    let between = col("ts").between(t(MARCH_12), t(MARCH_12 + DAY_MS));
    assert_eq!(
        day_range(&[between]),
        (Some(date("2026-03-12")), Some(date("2026-03-13")))
    );
}

/// `readings_1m` (stored rollups for March 11, computed by DataFusion for March 12)
/// against a recomputation here from the raw readings.
#[tokio::test]
async fn readings_1m_equals_a_recomputation_from_the_raw_readings() {
    let dir = tempfile::tempdir().expect("tmp");
    let (history, all) = history(dir.path());
    let snap = history.snapshot();
    assert!(
        snap.rollups.contains_key(&date("2026-03-11")),
        "March 11 rolled up"
    );
    assert!(
        !snap.rollups.contains_key(&date("2026-03-12")),
        "March 12 not yet"
    );
    let ctx = ctx(history).await;
    let batches = sql(
        &ctx,
        "SELECT ts, CAST(device AS VARCHAR) AS device, CAST(metric AS VARCHAR) AS metric,
                avg, min, max, last, count
         FROM readings_1m",
    )
    .await;
    let mut expected: HashMap<(String, i64), Vec<(i64, f64)>> = HashMap::new();
    for x in &all {
        expected
            .entry((x.device.to_string(), x.ts_ms.div_euclid(60_000) * 60_000))
            .or_default()
            .push((x.ts_ms, x.value));
    }
    // Ten minutes of each device on each day, and one minute of pv at 20:00.
    let minutes = expected.len();
    assert_eq!(minutes, 2 * 2 * 10 + 1);
    let mut seen = 0;
    for b in &batches {
        let ts = b.column(0).as_primitive::<TimestampMillisecondType>();
        let device = b
            .column(1)
            .as_string_view_opt()
            .map(|a| a.iter().collect::<Vec<_>>());
        let device = device.unwrap_or_else(|| b.column(1).as_string::<i32>().iter().collect());
        let f = |c: usize| b.column(c).as_primitive::<Float64Type>();
        let n = b.column(7).as_primitive::<Int64Type>();
        for (i, device) in device.iter().enumerate() {
            let key = (device.unwrap_or_default().to_string(), ts.value(i));
            let mut values = expected
                .remove(&key)
                .unwrap_or_else(|| panic!("unexpected {key:?}"));
            values.sort_by_key(|(t, _)| *t);
            let vs: Vec<f64> = values.iter().map(|(_, v)| *v).collect();
            assert_eq!(n.value(i), vs.len() as i64, "{key:?}");
            let avg = vs.iter().sum::<f64>() / vs.len() as f64;
            assert!((f(3).value(i) - avg).abs() < 1e-9, "{key:?}");
            assert_eq!(
                f(4).value(i),
                vs.iter().copied().fold(f64::INFINITY, f64::min)
            );
            assert_eq!(
                f(5).value(i),
                vs.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            );
            assert_eq!(Some(f(6).value(i)), vs.last().copied(), "{key:?} last");
            seen += 1;
        }
    }
    assert!(
        expected.is_empty(),
        "minutes missing: {:?}",
        expected.keys().take(3).collect::<Vec<_>>()
    );
    assert_eq!(seen, minutes);
}

/// A handful of readings with their one-minute rollups worked out by hand, read
/// through SQL and through the DataFrame API: the stored rollups of a compacted day
/// and the ones DataFusion computes for the pending readings of today look alike.
#[tokio::test]
async fn rollups_of_stored_and_pending_days_read_as_tables() {
    use datafusion::assert_batches_eq;
    use datafusion::functions_aggregate::expr_fn::{count, sum};
    use datafusion::prelude::{col, lit};

    let dir = tempfile::tempdir().expect("tmp");
    let history = History::open(dir.path(), HistoryOptions::default()).expect("history");
    let at = |day: i64, h: i64, m: i64, s: i64| {
        MARCH_12 + day * DAY_MS + h * 3_600_000 + m * 60_000 + s * 1000
    };
    let march_11 = [
        r(at(-1, 8, 0, 0), "pv", Metric::PowerW, 100.0),
        r(at(-1, 8, 0, 15), "grid", Metric::PowerW, -20.0),
        r(at(-1, 8, 0, 30), "pv", Metric::PowerW, 200.0),
        r(at(-1, 8, 1, 10), "pv", Metric::PowerW, 50.0),
    ];
    history.add_pending(None, &march_11).expect("pending");
    history.flush(None, date("2026-03-12")).expect("flush");
    let today = [
        r(at(0, 9, 0, 5), "pv", Metric::PowerW, 10.0),
        r(at(0, 9, 0, 45), "pv", Metric::PowerW, 30.0),
    ];
    history.add_pending(None, &today).expect("pending");
    let ctx = ctx(history).await;

    let rollups = sql(
        &ctx,
        "SELECT device, metric, ts, avg, min, max, last, count FROM readings_1m
         ORDER BY device, ts",
    )
    .await;
    assert_batches_eq!(
        [
            "+--------+---------+----------------------+-------+-------+-------+-------+-------+",
            "| device | metric  | ts                   | avg   | min   | max   | last  | count |",
            "+--------+---------+----------------------+-------+-------+-------+-------+-------+",
            "| grid   | power_w | 2026-03-11T08:00:00Z | -20.0 | -20.0 | -20.0 | -20.0 | 1     |",
            "| pv     | power_w | 2026-03-11T08:00:00Z | 150.0 | 100.0 | 200.0 | 200.0 | 2     |",
            "| pv     | power_w | 2026-03-11T08:01:00Z | 50.0  | 50.0  | 50.0  | 50.0  | 1     |",
            "| pv     | power_w | 2026-03-12T09:00:00Z | 20.0  | 10.0  | 30.0  | 30.0  | 2     |",
            "+--------+---------+----------------------+-------+-------+-------+-------+-------+",
        ],
        &rollups
    );

    let per_device = ctx
        .table("readings")
        .await
        .expect("readings")
        .filter(col("metric").eq(lit("power_w")))
        .expect("filter")
        .aggregate(
            vec![col("device")],
            vec![
                count(col("value")).alias("n"),
                sum(col("value")).alias("total"),
            ],
        )
        .expect("aggregate")
        .sort(vec![col("device").sort(true, false)])
        .expect("sort")
        .collect()
        .await
        .expect("collect");
    assert_batches_eq!(
        [
            "+--------+---+-------+",
            "| device | n | total |",
            "+--------+---+-------+",
            "| grid   | 1 | -20.0 |",
            "| pv     | 5 | 390.0 |",
            "+--------+---+-------+",
        ],
        &per_device
    );
}
