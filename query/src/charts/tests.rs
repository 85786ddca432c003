use std::sync::Arc;

use chrono::{NaiveDate, Timelike};
use chrono_tz::Europe::Paris;
use ingest::history::{History, HistoryOptions};
use ingest::reading::Reading;
use sensors::config::DeviceConfig;
use sensors::model::{Metric, Role};

use super::*;
use crate::config::ServiceConfig;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("date")
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

fn device(id: &str, role: Role) -> DeviceConfig {
    serde_json::from_value(serde_json::json!({
        "id": id, "role": role.as_str(), "profile": "generic-json",
        "mqtt": {"topic": format!("t/{id}")}
    }))
    .expect("device")
}

fn service(json: serde_json::Value) -> ServiceConfig {
    serde_json::from_value(json).expect("service")
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

macro_rules! assert_close {
    ($a:expr, $b:expr) => {
        assert!(
            close($a, $b),
            "{} = {}, expected {}",
            stringify!($a),
            $a,
            $b
        )
    };
}

/// Two readings a minute (at :00 and :30) whose average is `value`, so that the
/// charts are seen to use each minute's average.
fn minute(
    out: &mut Vec<Reading>,
    start: DateTime<Utc>,
    m: i64,
    device: &str,
    metric: Metric,
    value: f64,
) {
    let t = start.timestamp_millis() + m * 60_000;
    for (dt, v) in [(0, value - 100.0), (30_000, value + 100.0)] {
        out.push(Reading {
            ts_ms: t + dt,
            device: device.into(),
            metric,
            value: v,
        });
    }
}

/// March 12th 2026 in Paris (UTC+1). From 10:00 local (09:00Z), thirty minutes:
///
/// | minutes | roof | roof-2 | grid | battery | soc | `a`: demand, allocated, shed | `b` |
/// |---|---|---|---|---|---|---|---|
/// | 0–19 | 3000 | 1000 | −1000 | −500 | 50 | 400, 400, 0 | 300, 150, 0 |
/// | 20–29 | 600 | 0 | 1200 | 200 | 60 | 400, 0, 1 | 300, 150, 0 |
///
/// then from 11:00 local ten minutes of grid at 300 W alone; one minute of roof at
/// 600 W at 00:05 local (23:05Z the day before, in the day) and one at 23:55 local
/// on March 11th (22:55Z, not in it). A household's meter draws 700 W throughout
/// and a service no longer configured was recorded: neither counts.
///
/// By hand, hour 10: production 4000 × 20/60 + 600 × 10/60 = 1433.33 Wh;
/// consumption (pv + grid + battery) 2500 × 20/60 + 2000 × 10/60 = 1166.67 Wh;
/// import 1200 × 10/60 = 200 Wh; export 1000 × 20/60 = 333.33 Wh; charge
/// 500 × 20/60 = 166.67 Wh; discharge 200 × 10/60 = 33.33 Wh; state of charge
/// (50 × 20 + 60 × 10) / 30 = 53.33 % on average, 49 to 61 % (the readings are
/// 50 ± 1 and 60 ± 1 here). Hour 11: consumption and import 300 × 10/60 = 50 Wh.
/// Hour 0: production and consumption 600/60 = 10 Wh.
/// The day: production 1443.33, consumption 1226.67, import 250 Wh, so
/// self-sufficiency 1 − 250 / 1226.67 = 79.62 %.
/// Service `a`: demand 400 × 30/60 = 200 Wh, served 400 × 20/60 = 133.33 Wh, shed
/// 400 × 10/60 = 66.67 Wh during 1/6 h; `b`: demand 150 Wh, served 75 Wh.
fn scenario() -> (Vec<Reading>, Vec<DeviceConfig>, Vec<ServiceConfig>) {
    let mut r = Vec::new();
    let ten = utc("2026-03-12T09:00:00Z");
    for m in 0..30 {
        let first = m < 20;
        let pick = |a: f64, b: f64| if first { a } else { b };
        minute(&mut r, ten, m, "roof", Metric::PowerW, pick(3000.0, 600.0));
        minute(&mut r, ten, m, "roof-2", Metric::PowerW, pick(1000.0, 0.0));
        minute(
            &mut r,
            ten,
            m,
            "grid",
            Metric::PowerW,
            pick(-1000.0, 1200.0),
        );
        minute(&mut r, ten, m, "bat", Metric::PowerW, pick(-500.0, 200.0));
        let soc = pick(50.0, 60.0);
        for (dt, v) in [(0, soc - 1.0), (30_000, soc + 1.0)] {
            r.push(Reading {
                ts_ms: ten.timestamp_millis() + m * 60_000 + dt,
                device: "bat".into(),
                metric: Metric::SocPct,
                value: v,
            });
        }
        minute(&mut r, ten, m, "house-7", Metric::PowerW, 700.0);
        for (device, demand, allocated, shed) in [
            ("service:a", 400.0, pick(400.0, 0.0), pick(0.0, 1.0)),
            ("service:b", 300.0, 150.0, 0.0),
            ("service:gone", 999.0, 999.0, 0.0),
        ] {
            let ts_ms = ten.timestamp_millis() + m * 60_000 + 500;
            for (metric, value) in [
                (Metric::DemandW, demand),
                (Metric::AllocatedW, allocated),
                (Metric::Shed, shed),
            ] {
                r.push(Reading {
                    ts_ms,
                    device: device.into(),
                    metric,
                    value,
                });
            }
        }
    }
    let eleven = utc("2026-03-12T10:00:00Z");
    for m in 0..10 {
        minute(&mut r, eleven, m, "grid", Metric::PowerW, 300.0);
    }
    minute(
        &mut r,
        utc("2026-03-11T23:05:00Z"),
        0,
        "roof",
        Metric::PowerW,
        600.0,
    );
    minute(
        &mut r,
        utc("2026-03-11T22:55:00Z"),
        0,
        "roof",
        Metric::PowerW,
        600.0,
    );
    let devices = vec![
        device("roof", Role::Pv),
        device("roof-2", Role::Pv),
        device("grid", Role::Grid),
        device("bat", Role::Battery),
        device("house-7", Role::Load),
    ];
    let services = vec![
        service(
            serde_json::json!({"id": "a", "name": "Clinic fridge", "demand_w": 400.0, "tier": 1}),
        ),
        service(serde_json::json!({"id": "b", "demand_w": 300.0, "tier": 2})),
    ];
    (r, devices, services)
}

async fn queries(history: Arc<History>) -> Queries {
    let (_, devices, services) = scenario();
    Queries::new(history, &devices, &services)
        .await
        .expect("queries")
}

fn check_day(site: &SiteSeries, services: &[ServiceSeries], buckets: &[Bucket]) {
    assert_eq!(buckets.len(), 24);
    assert_eq!(site.buckets.len(), 24);
    let h0 = &site.buckets[0];
    assert_eq!(h0.minutes, 1);
    assert_close!(h0.production_wh, 10.0);
    assert_close!(h0.consumption_wh, 10.0);
    let h10 = &site.buckets[10];
    assert_eq!(buckets[10].local_start.hour(), 10);
    assert_eq!(h10.minutes, 30);
    assert_close!(h10.production_wh, 4000.0 / 3.0 + 100.0);
    assert_close!(h10.consumption_wh, 2500.0 / 3.0 + 2000.0 / 6.0);
    assert_close!(h10.grid_import_wh, 200.0);
    assert_close!(h10.grid_export_wh, 1000.0 / 3.0);
    assert_close!(h10.battery_charge_wh, 500.0 / 3.0);
    assert_close!(h10.battery_discharge_wh, 200.0 / 6.0);
    assert_close!(h10.soc_avg_pct.expect("soc"), 160.0 / 3.0);
    assert_eq!((h10.soc_min_pct, h10.soc_max_pct), (Some(49.0), Some(61.0)));
    assert_close!(
        h10.average_production_w().expect("avg"),
        (4000.0 * 20.0 + 600.0 * 10.0) / 30.0
    );
    let h11 = &site.buckets[11];
    assert_eq!(h11.minutes, 10);
    assert_close!(h11.consumption_wh, 50.0);
    assert_close!(h11.grid_import_wh, 50.0);
    assert_eq!(h11.self_sufficiency(), Some(0.0));
    assert_eq!(
        site.buckets[12],
        SiteEnergy::default(),
        "nothing after 11:10"
    );
    assert_eq!(site.buckets[12].self_sufficiency(), None);

    let t = &site.total;
    assert_eq!(t.minutes, 41);
    assert_close!(t.production_wh, 4300.0 / 3.0 + 10.0);
    assert_close!(t.consumption_wh, 3500.0 / 3.0 + 60.0);
    assert_close!(t.grid_import_wh, 250.0);
    assert_close!(
        t.self_sufficiency().expect("share"),
        1.0 - 250.0 / (3500.0 / 3.0 + 60.0)
    );
    assert_close!(t.soc_avg_pct.expect("soc"), 160.0 / 3.0);

    let names: Vec<_> = services
        .iter()
        .map(|s| (s.id.as_str(), s.name.as_str()))
        .collect();
    assert_eq!(names, [("a", "Clinic fridge"), ("b", "b")]);
    let a = &services[0];
    assert_eq!(a.buckets.len(), 24);
    assert_close!(a.buckets[10].demand_wh, 200.0);
    assert_close!(a.total.served_wh, 400.0 / 3.0);
    assert_close!(a.total.shed_wh, 200.0 / 3.0);
    assert_close!(a.total.shed_hours, 1.0 / 6.0);
    assert_eq!(a.total.minutes, 30);
    let b = &services[1];
    assert_close!(b.total.demand_wh, 150.0);
    assert_close!(b.total.served_wh, 75.0);
    assert_close!(b.total.shed_wh, 0.0);
}

/// The day by hour, the week by day, the year by month: the sums worked out by
/// hand in [`scenario`], from readings still pending and again once the days are
/// written out, compacted and rolled up.
#[tokio::test]
async fn the_charts_sum_what_was_worked_out_by_hand() {
    let dir = tempfile::tempdir().expect("tmp");
    let history = History::open(dir.path(), HistoryOptions::default()).expect("history");
    let (readings, _, _) = scenario();
    history.add_pending(None, &readings).expect("pending");
    let q = queries(history.clone()).await;

    let day = Period::containing(View::Day, date(2026, 3, 12)).expect("day");
    let buckets = day.buckets(Paris);
    let site = site_energy(&q, &buckets).await.expect("site");
    let services = service_energy(&q, &buckets).await.expect("services");
    check_day(&site, &services, &buckets);

    // The same from the stored rollups of days that are over.
    history.flush(None, date(2026, 3, 14)).expect("flush");
    assert!(history.snapshot().pending.is_empty());
    assert!(history.snapshot().rollups.contains_key(&date(2026, 3, 12)));
    let rolled = site_energy(&q, &buckets).await.expect("site");
    let rolled_services = service_energy(&q, &buckets).await.expect("services");
    check_day(&rolled, &rolled_services, &buckets);

    // The week of Thursday the 12th: Monday the 9th to Sunday the 15th.
    let week = Period::containing(View::Week, date(2026, 3, 12)).expect("week");
    assert_eq!(week.start(), date(2026, 3, 9));
    let week_buckets = week.buckets(Paris);
    assert_eq!(week_buckets.len(), 7);
    let by_day = site_energy(&q, &week_buckets).await.expect("week");
    // The minute at 23:55 on the 11th counts there, local time.
    assert_close!(by_day.buckets[2].production_wh, 10.0);
    assert_close!(by_day.buckets[3].production_wh, site.total.production_wh);
    assert_close!(by_day.buckets[3].consumption_wh, site.total.consumption_wh);
    assert_close!(by_day.total.production_wh, site.total.production_wh + 10.0);

    let year = Period::containing(View::Year, date(2026, 3, 12)).expect("year");
    let months = year.buckets(Paris);
    assert_eq!(months.len(), 12);
    let by_month = site_energy(&q, &months).await.expect("year");
    assert_close!(by_month.buckets[2].grid_import_wh, 250.0);
    assert_eq!(by_month.buckets[0].minutes, 0);
    let services_year = service_energy(&q, &months).await.expect("year");
    assert_close!(services_year[0].buckets[2].served_wh, 400.0 / 3.0);
}

/// Today in quarter hours for the wall: 96 of them, the 10:00 one holding the
/// first fifteen minutes of the scenario.
#[tokio::test]
async fn todays_curve_is_in_quarter_hours_from_local_midnight() {
    let dir = tempfile::tempdir().expect("tmp");
    let history = History::open(dir.path(), HistoryOptions::default()).expect("history");
    let (readings, _, _) = scenario();
    history.add_pending(None, &readings).expect("pending");
    let q = queries(history).await;
    let buckets = today(utc("2026-03-12T13:00:00Z"), Paris, 15);
    assert_eq!(buckets.len(), 96);
    assert_eq!(buckets[0].start, utc("2026-03-11T23:00:00Z"));
    assert_eq!(bin_minutes(&buckets), 15);
    let curve = site_energy(&q, &buckets).await.expect("curve");
    let at_ten = &curve.buckets[40];
    assert_eq!(buckets[40].local_start.hour(), 10);
    assert_eq!(at_ten.minutes, 15);
    assert_close!(at_ten.average_production_w().expect("avg"), 4000.0);
    assert_close!(at_ten.average_consumption_w().expect("avg"), 2500.0);
    // 10:15–10:30: five minutes like the first, ten like the second.
    let next = &curve.buckets[41];
    assert_close!(
        next.average_production_w().expect("avg"),
        (4000.0 * 5.0 + 600.0 * 10.0) / 15.0
    );
    assert_eq!(curve.buckets[50].average_production_w(), None);
}

#[test]
fn periods_follow_the_calendar_and_the_clocks() {
    // The clocks go forward on March 29th 2026 in Paris, back on October 25th.
    let spring = Period::containing(View::Day, date(2026, 3, 29))
        .expect("day")
        .buckets(Paris);
    assert_eq!(spring.len(), 23);
    let hours: Vec<u32> = spring
        .iter()
        .take(4)
        .map(|b| b.local_start.hour())
        .collect();
    assert_eq!(hours, [0, 1, 3, 4]);
    let autumn = Period::containing(View::Day, date(2026, 10, 25))
        .expect("day")
        .buckets(Paris);
    assert_eq!(autumn.len(), 25);
    let hours: Vec<u32> = autumn
        .iter()
        .take(4)
        .map(|b| b.local_start.hour())
        .collect();
    assert_eq!(hours, [0, 1, 2, 2]);

    let month = Period::containing(View::Month, date(2026, 2, 17)).expect("month");
    assert_eq!(month.start(), date(2026, 2, 1));
    assert_eq!(month.buckets(Paris).len(), 28);
    assert_eq!(month.previous().map(|p| p.start()), Some(date(2026, 1, 1)));
    assert_eq!(month.next().map(|p| p.start()), Some(date(2026, 3, 1)));
    assert!(month.contains(date(2026, 2, 28)) && !month.contains(date(2026, 3, 1)));
    let march = month.next().expect("march").buckets(Paris);
    // March 29th has 23 hours.
    assert_eq!(march[28].end - march[28].start, Duration::hours(23));

    let week = Period::containing(View::Week, date(2026, 1, 1)).expect("week");
    assert_eq!(
        week.start(),
        date(2025, 12, 29),
        "a Monday of the year before"
    );
    assert_eq!(week.next().map(|p| p.start()), Some(date(2026, 1, 5)));
    let year = Period::containing(View::Year, date(2026, 7, 4)).expect("year");
    assert_eq!(
        year.range(Paris),
        Some((utc("2025-12-31T23:00:00Z"), utc("2026-12-31T23:00:00Z")))
    );
    assert_eq!(View::parse("month"), Some(View::Month));
    assert_eq!(View::parse("decade"), None);

    // Santiago skips midnight when its clocks go forward (September 6th 2026).
    let santiago = chrono_tz::America::Santiago;
    let skipped = Period::containing(View::Day, date(2026, 9, 6))
        .expect("day")
        .buckets(santiago);
    assert_eq!(skipped[0].local_start.hour(), 1);
    assert_eq!(skipped.len(), 23);

    // Kathmandu is 5:45 ahead: its hours start at a quarter past, on the quarter.
    let kathmandu = chrono_tz::Asia::Kathmandu;
    let day = Period::containing(View::Day, date(2026, 3, 12))
        .expect("day")
        .buckets(kathmandu);
    assert_eq!(day[0].start, utc("2026-03-11T18:15:00Z"));
    assert_eq!(bin_minutes(&day), 15);
}

#[test]
fn a_time_falls_in_the_bucket_that_holds_it() {
    let buckets = steps(
        utc("2026-03-12T00:00:00Z"),
        utc("2026-03-12T01:00:00Z"),
        Duration::minutes(20),
        Paris,
    );
    assert_eq!(buckets.len(), 3);
    let ms = |s: &str| utc(s).timestamp_millis();
    assert_eq!(bucket_of(&buckets, ms("2026-03-11T23:59:59Z")), None);
    assert_eq!(bucket_of(&buckets, ms("2026-03-12T00:00:00Z")), Some(0));
    assert_eq!(bucket_of(&buckets, ms("2026-03-12T00:20:00Z")), Some(1));
    assert_eq!(bucket_of(&buckets, ms("2026-03-12T00:59:59Z")), Some(2));
    assert_eq!(bucket_of(&buckets, ms("2026-03-12T01:00:00Z")), None);
    assert_eq!(bin_minutes(&buckets), 5);
}

/// A day's queries open the files of the UTC days its local day overlaps, and no
/// others: March 13th in Paris is 23:00Z on the 12th to 23:00Z on the 13th.
#[tokio::test]
async fn a_days_queries_open_only_the_days_they_need() {
    let dir = tempfile::tempdir().expect("tmp");
    let history = History::open(dir.path(), HistoryOptions::default()).expect("history");
    let mut readings = Vec::new();
    for day in 10..=14 {
        let t = utc(&format!("2026-03-{day}T12:00:00Z"));
        minute(&mut readings, t, 0, "roof", Metric::PowerW, 1000.0);
        minute(&mut readings, t, 0, "service:a", Metric::AllocatedW, 100.0);
    }
    history.add_pending(None, &readings).expect("pending");
    history.flush(None, date(2026, 3, 20)).expect("flush");
    let q = queries(history).await;
    let (from, to) = Period::containing(View::Day, date(2026, 3, 13))
        .and_then(|p| p.range(Paris))
        .expect("range");
    for sql in [
        power_sql(from, to, 15),
        soc_sql(from, to, 15),
        services_sql(from, to, 15),
    ] {
        let df = q.session().sql(&sql).await.expect("sql");
        let plan = df.create_physical_plan().await.expect("plan");
        let shown = datafusion::physical_plan::displayable(plan.as_ref())
            .indent(true)
            .to_string();
        assert!(shown.contains("date=2026-03-13"), "{shown}");
        assert!(shown.contains("date=2026-03-12"), "{shown}");
        for other in ["date=2026-03-10", "date=2026-03-11", "date=2026-03-14"] {
            assert!(!shown.contains(other), "{other} opened: {shown}");
        }
    }
    let day = Period::containing(View::Day, date(2026, 3, 13))
        .expect("day")
        .buckets(Paris);
    let site = site_energy(&q, &day).await.expect("site");
    assert_close!(site.total.production_wh, 1000.0 / 60.0);
}
