use chrono::{NaiveDate, TimeZone};
use chrono_tz::Europe::Paris;
use ingest::history::{History, HistoryOptions};
use ingest::reading::Reading;
use sensors::config::DeviceConfig;
use sensors::model::Metric;

use super::*;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("date")
}

/// `h:m` on `day` in Paris, as a UTC instant.
fn paris(day: NaiveDate, h: u32, m: u32) -> DateTime<Utc> {
    Paris
        .from_local_datetime(&day.and_hms_opt(h, m, 0).expect("time"))
        .single()
        .expect("one instant")
        .with_timezone(&Utc)
}

fn device(id: &str, role: &str) -> DeviceConfig {
    serde_json::from_value(serde_json::json!({
        "id": id, "role": role, "profile": "generic-json",
        "mqtt": {"topic": format!("t/{id}")}
    }))
    .expect("device")
}

/// One reading a minute of the roof (`pv`) and the grid connection over each day
/// from `first` to `last`: the roof gives `sun(day)` watts from 10:00 to 16:00
/// (Paris) and nothing otherwise, the site draws `load(day)` watts throughout (the
/// grid gives the rest: consumption = pv + grid).
fn days(
    first: NaiveDate,
    last: NaiveDate,
    sun: impl Fn(NaiveDate) -> f64,
    load: impl Fn(NaiveDate) -> f64,
) -> Vec<Reading> {
    let mut out = Vec::new();
    let mut day = first;
    while day <= last {
        let (start, end) = (paris(day, 0, 0), paris(day + Days::new(1), 0, 0));
        let (sun_from, sun_to) = (paris(day, 10, 0), paris(day, 16, 0));
        let mut t = start;
        while t < end {
            let pv = if t >= sun_from && t < sun_to {
                sun(day)
            } else {
                0.0
            };
            for (device, value) in [("pv", pv), ("grid", load(day) - pv)] {
                out.push(Reading {
                    ts_ms: t.timestamp_millis(),
                    device: device.into(),
                    metric: Metric::PowerW,
                    value,
                });
            }
            t += Duration::minutes(1);
        }
        day = day + Days::new(1);
    }
    out
}

async fn queries_over(readings: &[Reading]) -> (tempfile::TempDir, Queries) {
    let dir = tempfile::tempdir().expect("tmp");
    let history = History::open(dir.path(), HistoryOptions::default()).expect("history");
    history.add_pending(None, readings).expect("pending");
    let devices = [device("pv", "pv"), device("grid", "grid")];
    let q = Queries::new(history, &devices, &[]).await.expect("queries");
    (dir, q)
}

fn assert_near(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() < 1e-6, "{what} = {a}, expected {b}");
}

/// Four weeks of June sun, 3,000 W from 10:00 to 16:00, with one overcast day at
/// 500 W; the site draws 1,000 W, except on Thursdays, 2,000 W.
///
/// By hand: the median of the last seven days' production is 3,000 W from 10:00
/// to 16:00 (six sunny days of seven). Thursday the 18th's consumption is the
/// Thursdays' 2,000 W: a surplus of 1,000 W for six hours, 6 kWh. Friday the
/// 19th's is the Fridays' 1,000 W: 2,000 W for six hours, 12 kWh.
#[tokio::test]
async fn a_days_surplus_window_comes_from_the_seasons_sun_and_the_weekdays_load() {
    let overcast = date(2026, 6, 16);
    let readings = days(
        date(2026, 5, 21),
        date(2026, 6, 17),
        |d| if d == overcast { 500.0 } else { 3000.0 },
        |d| {
            if d.weekday() == chrono::Weekday::Thu {
                2000.0
            } else {
                1000.0
            }
        },
    );
    let (_dir, q) = queries_over(&readings).await;

    let thursday = date(2026, 6, 18);
    let f = forecast_day(&q, Paris, thursday)
        .await
        .expect("forecast")
        .expect("enough history");
    assert_eq!(f.production_days, 7);
    assert_eq!(f.consumption_days, 4, "the four Thursdays");
    assert_eq!(f.slots.len(), 96);
    let w = f
        .best_window(500.0, paris(thursday, 0, 0))
        .expect("a window");
    assert_eq!(
        (w.start, w.end),
        (paris(thursday, 10, 0), paris(thursday, 16, 0))
    );
    assert_near(w.kwh, 6.0, "Thursday's kWh");
    assert_near(w.peak_w, 1000.0, "Thursday's peak");
    // Above the threshold the surplus never reaches, no window.
    assert_eq!(f.best_window(1500.0, paris(thursday, 0, 0)), None);

    let friday = date(2026, 6, 19);
    let f = forecast_day(&q, Paris, friday)
        .await
        .expect("forecast")
        .expect("enough history");
    let w = f.best_window(500.0, paris(friday, 0, 0)).expect("a window");
    assert_eq!(
        (w.start, w.end),
        (paris(friday, 10, 0), paris(friday, 16, 0))
    );
    assert_near(w.kwh, 12.0, "Friday's kWh");

    // Later in the day, the window left: from 10:07 on Thursday, 1,000 W for
    // 5 h 53 min.
    let thursday_f = forecast_day(&q, Paris, thursday)
        .await
        .expect("forecast")
        .expect("enough history");
    let w = thursday_f
        .best_window(500.0, paris(thursday, 10, 7))
        .expect("a window");
    assert_eq!(w.start, paris(thursday, 10, 7));
    assert_near(
        w.kwh,
        1.0 * (5.0 + 53.0 / 60.0),
        "what is left of Thursday's",
    );
    // After the sun, nothing is left of the day.
    assert_eq!(thursday_f.best_window(500.0, paris(thursday, 16, 0)), None);
}

#[tokio::test]
async fn no_forecast_is_made_from_two_days() {
    let readings = days(date(2026, 6, 16), date(2026, 6, 17), |_| 3000.0, |_| 1000.0);
    let (_dir, q) = queries_over(&readings).await;
    assert_eq!(
        forecast_day(&q, Paris, date(2026, 6, 18))
            .await
            .expect("forecast"),
        None
    );
}

/// Two runs of surplus apart: the one holding more energy is the day's window,
/// though the other's peak is higher and it comes first.
#[test]
fn the_window_is_the_run_with_the_most_energy() {
    let day = date(2026, 6, 18);
    let slot = |h: u32, m: u32, production_w: f64| Slot {
        start: paris(day, h, m),
        end: paris(day, h, m) + Duration::minutes(15),
        production_w,
        consumption_w: 1000.0,
    };
    let f = DayForecast {
        slots: vec![
            slot(9, 0, 5000.0), // 4,000 W, 1 kWh
            slot(9, 15, 1000.0),
            slot(9, 30, 3000.0), // 2,000 W for 45 minutes, 1.5 kWh
            slot(9, 45, 3000.0),
            slot(10, 0, 3000.0),
            slot(10, 15, 1200.0), // 200 W: under the threshold
        ],
        production_days: 7,
        consumption_days: 4,
    };
    let w = f.best_window(500.0, paris(day, 0, 0)).expect("a window");
    assert_eq!((w.start, w.end), (paris(day, 9, 30), paris(day, 10, 15)));
    assert_near(w.kwh, 1.5, "kWh");
    assert_near(w.peak_w, 2000.0, "peak");
    // A threshold the first run alone reaches.
    let w = f.best_window(3000.0, paris(day, 0, 0)).expect("a window");
    assert_eq!((w.start, w.end), (paris(day, 9, 0), paris(day, 9, 15)));
}

#[test]
fn a_median_ignores_one_odd_day() {
    assert_eq!(median(vec![3000.0, 500.0, 3000.0]), Some(3000.0));
    assert_eq!(median(vec![1.0, 2.0, 3.0, 10.0]), Some(2.5));
    assert_eq!(median(vec![]), None);
}
