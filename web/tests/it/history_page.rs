//! The history page (`/history`) and the wall's curve of today, through the router:
//! each view's figures against sums worked out by hand, the address refused in
//! words, a household's meter never shown, the export form for members only.

use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use ingest::history::{History, HistoryOptions};
use ingest::reading::Reading;
use sensors::config::DeviceConfig;
use sensors::model::{Metric, Role};

use crate::support::{get, login, send, with_members};

fn device(id: &str, role: Role) -> DeviceConfig {
    serde_json::from_value(serde_json::json!({
        "id": id, "role": role.as_str(), "profile": "generic-json",
        "mqtt": {"topic": format!("t/{id}")}
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

fn service(json: serde_json::Value) -> query::config::ServiceConfig {
    serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"))
}

/// `local` (a time of the site's day, Paris) in UTC.
pub(crate) fn paris(date: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    chrono_tz::Europe::Paris
        .from_local_datetime(&date.and_hms_opt(hour, minute, 0).unwrap_or_default())
        .single()
        .unwrap_or_else(|| panic!("{date} {hour}:{minute} is not one Paris time"))
        .with_timezone(&Utc)
}

/// Every 10 s from `from` for `minutes`, each device at its power.
fn steady(
    out: &mut Vec<Reading>,
    from: DateTime<Utc>,
    minutes: i64,
    values: &[(&str, Metric, f64)],
) {
    for k in 0..minutes * 6 {
        let ts_ms = from.timestamp_millis() + k * 10_000;
        for (device, metric, value) in values {
            out.push(Reading {
                ts_ms,
                device: (*device).into(),
                metric: *metric,
                value: *value,
            });
        }
    }
}

/// A village's day on `date` (Paris time), with the live allocation recorded:
///
/// | local | roof | grid | battery | soc | fridge: asks, gets | laundry: asks, gets, shed |
/// |---|---|---|---|---|---|---|
/// | 10:00–11:00 | 3000 | −500 | −1000 | 50 | 150, 150 | 2000, 1000, 0 |
/// | 11:00–11:30 | 1000 | 600 | 400 | 40 | 150, 150 | 2000, 0, 1 |
///
/// and a household's meter at 700 W throughout (it meters no service). By hand:
/// consumption (pv + grid + battery) is 1500 W then 2000 W; the hour of 10 has
/// 3.0 kWh of production, 1.5 kWh of consumption, 500 Wh fed into the grid and
/// 1.0 kWh charged; the half hour of 11, 500 Wh of production, 1.0 kWh of
/// consumption, 300 Wh drawn and 200 Wh discharged. The day: 3.5 kWh produced, 2.5
/// kWh consumed, 300 Wh drawn: 1 − 300 / 2500 = 88 % self-sufficient. The fridge
/// was served 150 W × 1.5 h = 225 Wh; the laundry asked 2000 W × 1.5 h = 3.0 kWh,
/// was served 1.0 kWh and shed 1.0 kWh during half an hour.
pub(crate) fn village_day(date: NaiveDate) -> Vec<Reading> {
    let mut r = Vec::new();
    steady(
        &mut r,
        paris(date, 10, 0),
        60,
        &[
            ("roof", Metric::PowerW, 3000.0),
            ("grid", Metric::PowerW, -500.0),
            ("bat", Metric::PowerW, -1000.0),
            ("bat", Metric::SocPct, 50.0),
            ("fridge-meter", Metric::PowerW, 150.0),
            ("house-7", Metric::PowerW, 700.0),
            ("service:clinic-fridge", Metric::DemandW, 150.0),
            ("service:clinic-fridge", Metric::AllocatedW, 150.0),
            ("service:clinic-fridge", Metric::Shed, 0.0),
            ("service:laundry", Metric::DemandW, 2000.0),
            ("service:laundry", Metric::AllocatedW, 1000.0),
            ("service:laundry", Metric::Shed, 0.0),
        ],
    );
    steady(
        &mut r,
        paris(date, 11, 0),
        30,
        &[
            ("roof", Metric::PowerW, 1000.0),
            ("grid", Metric::PowerW, 600.0),
            ("bat", Metric::PowerW, 400.0),
            ("bat", Metric::SocPct, 40.0),
            ("fridge-meter", Metric::PowerW, 150.0),
            ("house-7", Metric::PowerW, 700.0),
            ("service:clinic-fridge", Metric::DemandW, 150.0),
            ("service:clinic-fridge", Metric::AllocatedW, 150.0),
            ("service:clinic-fridge", Metric::Shed, 0.0),
            ("service:laundry", Metric::DemandW, 2000.0),
            ("service:laundry", Metric::AllocatedW, 0.0),
            ("service:laundry", Metric::Shed, 1.0),
        ],
    );
    r
}

/// A state of [`with_village`]: keep the directory (the history) and the sender
/// (the live snapshot: without it the wall's event stream ends) while it is used.
pub(crate) type Village = (
    web::AppState,
    tempfile::TempDir,
    tokio::sync::watch::Sender<std::sync::Arc<query::live::LiveSnapshot>>,
);

/// `with_members` with a history holding `readings` and the village's devices
/// and services.
pub(crate) async fn with_village(readings: &[Reading]) -> Village {
    let (mut state, tx) = with_members();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let history =
        History::open(dir.path(), HistoryOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    history
        .add_pending(None, readings)
        .unwrap_or_else(|e| panic!("{e}"));
    let devices = [
        device("roof", Role::Pv),
        device("grid", Role::Grid),
        device("bat", Role::Battery),
        device("fridge-meter", Role::Load),
        device("house-7", Role::Load),
    ];
    let services = [
        service(
            serde_json::json!({"id": "clinic-fridge", "name": "Réfrigérateur du cabinet médical",
                                   "meter": "fridge-meter", "tier": 1}),
        ),
        service(
            serde_json::json!({"id": "laundry", "name": "Laverie partagée",
                                   "demand_w": 2000.0, "tier": 2}),
        ),
    ];
    state.queries = Some(
        query::history_session::Queries::new(history, &devices, &services)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    (state, dir, tx)
}

/// A sunny day on the site's clocks, a reading a minute from midnight until `until`
/// (local time): production rising from 7:00 to 5 kW at 13:00 and gone at 19:00,
/// consumption with a morning, a noon and an evening peak, the battery taking the
/// surplus up to 2 kW and giving up to 1.5 kW in the evening, the grid the rest.
/// `sun` scales the production (1 for a clear sky).
pub(crate) fn sunny_day(date: NaiveDate, until: chrono::NaiveTime, sun: f64) -> Vec<Reading> {
    let start = paris(date, 0, 0);
    let mut r = Vec::new();
    let minutes = i64::from(chrono::Timelike::num_seconds_from_midnight(&until) / 60);
    for m in 0..minutes {
        let h = m as f64 / 60.0;
        let pv = if (7.0..19.0).contains(&h) {
            5000.0
                * sun
                * (std::f64::consts::PI * (h - 7.0) / 12.0).sin()
                * (0.9 + 0.1 * (m as f64 / 7.0).sin())
        } else {
            0.0
        };
        let bump = |from: f64, to: f64, w: f64| if (from..to).contains(&h) { w } else { 0.0 };
        let consumption =
            700.0 + bump(7.0, 9.0, 1400.0) + bump(12.0, 13.5, 900.0) + bump(18.0, 21.5, 2200.0);
        let battery = if pv > consumption {
            -(pv - consumption).min(2000.0)
        } else if h >= 18.0 {
            (consumption - pv).min(1500.0)
        } else {
            0.0
        };
        let grid = consumption - pv - battery;
        let ts_ms = start.timestamp_millis() + m * 60_000;
        for (device, metric, value) in [
            ("roof", Metric::PowerW, pv),
            ("grid", Metric::PowerW, grid),
            ("bat", Metric::PowerW, battery),
            ("bat", Metric::SocPct, 40.0 + 40.0 * (h / 24.0)),
            ("house-7", Metric::PowerW, 300.0),
        ] {
            r.push(Reading {
                ts_ms,
                device: device.into(),
                metric,
                value,
            });
        }
    }
    r
}

/// The text of the row named `name` of the table `id="{table}"`, cells joined by
/// single spaces.
pub(crate) fn row(html: &str, table: &str, name: &str) -> String {
    let start = html
        .find(&format!("id=\"{table}\""))
        .unwrap_or_else(|| panic!("no table {table} in {html}"));
    let html = &html[start..];
    let end_of_table = html.find("</table>").unwrap_or(html.len());
    let html = &html[..end_of_table];
    let at = html
        .find(&format!(">{name}</th>"))
        .unwrap_or_else(|| panic!("no row {name} in table {table}: {html}"));
    let end = at + html[at..].find("</tr>").unwrap_or(0);
    let mut text = String::new();
    let mut in_tag = false;
    for c in html[at..end].chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The page's text with the entities askama writes for `'`, `"` and `&` undone.
pub(crate) fn unescaped(body: &str) -> String {
    body.replace("&#39;", "'")
        .replace("&#34;", "\"")
        .replace("&#38;", "&")
}

fn march_12() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 12).unwrap_or_default()
}

#[tokio::test]
async fn the_day_shows_the_figures_worked_out_by_hand() {
    let (state, _dir, _tx) = with_village(&village_day(march_12())).await;
    let page = send(
        state.clone(),
        get("/history?view=day&date=2026-03-12&lang=fr", &[]),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &unescaped(&page.body);
    assert!(
        body.contains("Historique · <span data-field=\"period\">Jeudi 12 mars 2026</span>"),
        "{body}"
    );
    for (label, value) in [
        ("Production solaire", "3,5 kWh"),
        ("Consommation", "2,5 kWh"),
        ("Autosuffisance", "88 %"),
        ("Prélevé sur le réseau", "300 Wh"),
        ("Injecté sur le réseau", "500 Wh"),
        ("Charge de la batterie", "1,0 kWh"),
        ("Décharge de la batterie", "200 Wh"),
    ] {
        assert!(
            body.contains(&format!("<dt>{label}</dt><dd>{value}</dd>")),
            "{label}: {body}"
        );
    }
    assert_eq!(
        row(body, "energy-table", "10 h – 11 h"),
        "10 h – 11 h 3,0 kWh 1,5 kWh 0 Wh 500 Wh"
    );
    assert_eq!(
        row(body, "energy-table", "11 h – 12 h"),
        "11 h – 12 h 500 Wh 1,0 kWh 300 Wh 0 Wh"
    );
    assert_eq!(
        row(body, "energy-table", "Total"),
        "Total 3,5 kWh 2,5 kWh 300 Wh 500 Wh"
    );
    assert_eq!(
        row(body, "self-table", "10 h – 11 h"),
        "10 h – 11 h 1,5 kWh 0 Wh 100 %"
    );
    assert_eq!(
        row(body, "self-table", "11 h – 12 h"),
        "11 h – 12 h 1,0 kWh 300 Wh 70 %"
    );
    // An hour without readings says so rather than "0 Wh".
    assert_eq!(row(body, "self-table", "9 h – 10 h"), "9 h – 10 h — — —");
    assert_eq!(
        row(body, "battery-table", "10 h – 11 h"),
        "10 h – 11 h 1,0 kWh 0 Wh 50 % 50 % – 50 %"
    );
    assert_eq!(
        row(body, "battery-table", "Total"),
        "Total 1,0 kWh 200 Wh 47 % 40 % – 50 %"
    );
    assert_eq!(
        row(body, "services-table", "Réfrigérateur du cabinet médical"),
        "Réfrigérateur du cabinet médical 225 Wh 225 Wh 0 Wh 0 h"
    );
    assert_eq!(
        row(body, "services-table", "Laverie partagée"),
        "Laverie partagée 3,0 kWh 1,0 kWh 1,0 kWh 0,5 h"
    );
    // Two hours with data, each with a production and a consumption bar.
    assert_eq!(body.matches("class=\"bar series-production\"").count(), 2);
    assert_eq!(body.matches("class=\"bar series-consumption\"").count(), 2);
    assert!(
        body.contains("<svg class=\"chart-svg chart-energy\""),
        "{body}"
    );
    assert!(body.contains("<title id=\"energy-title\">Production et consommation</title>"));
    // The household's meter is nobody else's business, even by name.
    assert!(!body.contains("house-7"), "{body}");
    // The neighbours: yesterday, and tomorrow only if it has come.
    assert!(
        body.contains("href=\"/history?view=day&date=2026-03-11\""),
        "{body}"
    );
    assert!(
        body.contains("href=\"/history?view=day&date=2026-03-13\""),
        "{body}"
    );
    assert!(
        body.contains("href=\"/history?view=week&date=2026-03-09\""),
        "{body}"
    );
    assert!(page.header("cache-control").contains("no-store"));
}

#[tokio::test]
async fn the_week_month_and_year_add_the_same_day_up() {
    let (state, _dir, _tx) = with_village(&village_day(march_12())).await;
    let reply = |uri: &'static str| {
        let state = state.clone();
        async move {
            let reply = send(state, get(uri, &[])).await;
            assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.body);
            crate::support::Reply {
                body: unescaped(&reply.body),
                ..reply
            }
        }
    };
    let week = reply("/history?view=week&date=2026-03-14&lang=fr").await;
    assert_eq!(week.status, StatusCode::OK, "{}", week.body);
    assert!(
        week.body.contains("Semaine du 9 mars 2026 au 15 mars 2026"),
        "{}",
        week.body
    );
    assert_eq!(
        row(&week.body, "energy-table", "Jeudi 12 mars"),
        "Jeudi 12 mars 3,5 kWh 2,5 kWh 300 Wh 500 Wh"
    );
    assert_eq!(
        row(&week.body, "energy-table", "Mercredi 11 mars"),
        "Mercredi 11 mars — — — —"
    );
    assert_eq!(
        row(&week.body, "self-table", "Jeudi 12 mars"),
        "Jeudi 12 mars 2,5 kWh 300 Wh 88 %"
    );
    assert_eq!(
        week.body.matches("class=\"bar series-production\"").count(),
        1
    );

    let month = reply("/history?view=month&date=2026-03-31&lang=fr").await;
    assert!(
        month
            .body
            .contains("<span data-field=\"period\">Mars 2026</span>")
    );
    assert_eq!(
        row(&month.body, "energy-table", "Jeudi 12 mars"),
        "Jeudi 12 mars 3,5 kWh 2,5 kWh 300 Wh 500 Wh"
    );
    assert_eq!(
        month.body.matches("<tr><th scope=\"row\">").count(),
        3 * 31 + 3,
        "31 days in three tables, and their totals"
    );
    assert_eq!(
        row(&month.body, "services-table", "Laverie partagée"),
        "Laverie partagée 3,0 kWh 1,0 kWh 1,0 kWh 0,5 h"
    );

    let year = reply("/history?view=year&date=2026-07-04&lang=en").await;
    assert!(
        year.body
            .contains("History · <span data-field=\"period\">2026</span>")
    );
    assert_eq!(
        row(&year.body, "energy-table", "March 2026"),
        "March 2026 3.5 kWh 2.5 kWh 300 Wh 500 Wh"
    );
    assert_eq!(
        row(&year.body, "self-table", "March 2026"),
        "March 2026 2.5 kWh 300 Wh 88%"
    );
    assert_eq!(
        row(&year.body, "battery-table", "March 2026"),
        "March 2026 1.0 kWh 200 Wh 47% 40% – 50%"
    );
    assert_eq!(
        row(&year.body, "services-table", "Laverie partagée"),
        "Laverie partagée 3.0 kWh 1.0 kWh 1.0 kWh 0.5 h"
    );
    assert!(
        year.body.contains(">Solar production</dt>"),
        "{}",
        year.body
    );
    assert!(
        year.body
            .contains("href=\"/history?view=year&date=2025-01-01\"")
    );
}

#[tokio::test]
async fn a_bad_address_is_refused_in_words() {
    let (state, _dir, _tx) = with_village(&[]).await;
    for (uri, says) in [
        (
            "/history?view=decade&lang=fr",
            "« decade » n'est pas une vue : choisissez day, week, month ou year.",
        ),
        (
            "/history?date=2026-13-01&lang=fr",
            "« 2026-13-01 » n'est pas une date (AAAA-MM-JJ",
        ),
        (
            "/history?date=12/03/2026&lang=en",
            "“12/03/2026” is not a date (YYYY-MM-DD",
        ),
        (
            "/history?date=1969-07-20&lang=en",
            "outside the dates the history can hold",
        ),
        ("/history?colour=red&lang=en", "Unknown parameter: “colour”"),
        (
            "/history?view=day&view=week&lang=en",
            "The parameter “view” is given more than once.",
        ),
    ] {
        let reply = send(state.clone(), get(uri, &[])).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(
            reply.header("content-type").starts_with("text/html"),
            "{uri}"
        );
        let text = unescaped(&reply.body);
        assert!(text.contains(says), "{uri}: {text}");
        assert!(text.contains("href=\"/history\""), "{uri}: a way back");
    }
}

#[tokio::test]
async fn members_get_the_export_form_without_the_households_meter() {
    let (state, _dir, _tx) = with_village(&village_day(march_12())).await;
    let mut anonymous = send(state.clone(), get("/history?date=2026-03-12&lang=fr", &[])).await;
    anonymous.body = unescaped(&anonymous.body);
    assert!(!anonymous.body.contains("action=\"/api/export\""));
    assert!(
        anonymous
            .body
            .contains("Les membres connectés peuvent télécharger")
    );
    assert!(
        anonymous
            .body
            .contains("href=\"/login?next=/history%3Fview%3Dday%26date%3D2026-03-12\""),
        "{}",
        anonymous.body
    );

    let rita = login(&state, "rita").await;
    let page = send(
        state.clone(),
        get(
            "/history?date=2026-03-12&lang=fr",
            &[("cookie", &rita.cookie)],
        ),
    )
    .await;
    let body = &unescaped(&page.body);
    assert!(
        body.contains(
            "<form class=\"plan-form export-form\" method=\"get\" action=\"/api/export\">"
        ),
        "{body}"
    );
    // The day in Paris, as RFC 3339 times the export reads.
    assert!(
        body.contains("name=\"from\" value=\"2026-03-12T00:00:00+01:00\""),
        "{body}"
    );
    assert!(
        body.contains("name=\"to\" value=\"2026-03-13T00:00:00+01:00\""),
        "{body}"
    );
    for id in [
        "roof",
        "grid",
        "bat",
        "fridge-meter",
        "service:clinic-fridge",
        "service:laundry",
    ] {
        assert!(
            body.contains(&format!("<option value=\"{id}\">")),
            "{id}: {body}"
        );
    }
    assert!(!body.contains("house-7"), "{body}");
    assert!(body.contains("<option value=\"power_w\">power_w</option>"));
    assert!(body.contains("Connecté·e : rita"));

    // What the form sends is an export the member may make.
    let export = send(
        state.clone(),
        get(
            "/api/export?from=2026-03-12T00%3A00%3A00%2B01%3A00&to=2026-03-13T00%3A00%3A00%2B01%3A00&device=roof&metric=power_w&format=csv",
            &[("cookie", &rita.cookie)],
        ),
    )
    .await;
    assert_eq!(export.status, StatusCode::OK, "{}", export.body);
    assert_eq!(export.body.lines().count(), 1 + 90 * 6);
}

#[tokio::test]
async fn a_node_without_history_says_so() {
    let (state, _tx) = with_members();
    let page = send(state.clone(), get("/history?lang=fr", &[])).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        unescaped(&page.body).contains("Ce nœud ne garde pas d'historique des mesures."),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<svg class=\"chart-svg"));
    let wall = send(state.clone(), get("/?lang=fr", &[])).await;
    assert!(
        wall.body.contains("Courbe du jour indisponible"),
        "{}",
        wall.body
    );
    let curve = send(state, get("/wall/today?lang=en", &[])).await;
    assert_eq!(curve.status, StatusCode::OK);
    assert!(
        unescaped(&curve.body).contains("Today's curve is not available"),
        "{}",
        curve.body
    );
}

/// Today's curve on the wall: the village's day placed on today, in quarter hours.
/// From 10:00 the production line is at 3 kW for four quarter hours, then 1 kW for
/// two, and consumption at 1.5 then 2 kW.
#[tokio::test]
async fn the_wall_shows_todays_curve() {
    let today = Utc::now()
        .with_timezone(&chrono_tz::Europe::Paris)
        .date_naive();
    let (state, _dir, _tx) = with_village(&village_day(today)).await;
    let wall = send(state.clone(), get("/?lang=fr", &[])).await;
    assert_eq!(wall.status, StatusCode::OK);
    let body = &unescaped(&wall.body);
    assert!(
        body.contains("<svg class=\"chart-svg chart-today\""),
        "{body}"
    );
    assert!(
        body.contains("<title id=\"today-title\">Aujourd'hui : production et consommation</title>"),
        "{body}"
    );
    // The lines' keys beside the figures' names.
    assert!(
        body.contains("<line class=\"line series-consumption\""),
        "{body}"
    );
    let path = |class: &str| -> String {
        let marker = format!("<path class=\"line {class}\" d=\"");
        let start = body
            .find(&marker)
            .unwrap_or_else(|| panic!("no {class} line: {body}"))
            + marker.len();
        body[start..start + body[start..].find('"').unwrap_or(0)].to_string()
    };
    let production = path("series-production");
    let consumption = path("series-consumption");
    // Six quarter hours with data, one unbroken line each.
    assert_eq!(production.matches('L').count(), 5, "{production}");
    assert_eq!(production.matches('M').count(), 1, "{production}");
    assert_eq!(consumption.matches('L').count(), 5, "{consumption}");
    // Production: four points at 3 kW then two at 1 kW, 3 kW the highest.
    let ys = |d: &str| -> Vec<String> {
        d.split(['M', 'L'])
            .filter(|p| !p.is_empty())
            .map(|p| p.split(' ').nth(1).unwrap_or_default().to_string())
            .collect()
    };
    let p = ys(&production);
    assert!(
        p[..4].iter().all(|y| *y == p[0]) && p[4] == p[5] && p[4] != p[0],
        "{p:?}"
    );
    // The refreshing fragment is the same drawing.
    assert!(
        body.contains("data-field=\"today_curve\" data-refresh-ms=\"300000\""),
        "{body}"
    );
    let fragment = send(state, get("/wall/today?lang=fr", &[])).await;
    assert_eq!(fragment.status, StatusCode::OK);
    assert!(fragment.header("content-type").starts_with("text/html"));
    assert!(
        unescaped(&fragment.body).contains(&format!("d=\"{production}\"")),
        "{}",
        fragment.body
    );
    assert!(!fragment.body.contains("<html"), "a fragment, not a page");
}

/// "Download this table": the day's tables as CSV, the same figures as the page
/// (worked out by hand in the test above) as plain numbers a spreadsheet reads, in
/// the page's language; the tables are folded, with a date picker above them.
#[tokio::test]
async fn each_table_downloads_as_csv_and_folds() {
    let (state, _dir, _tx) = with_village(&village_day(march_12())).await;
    let page = send(
        state.clone(),
        get("/history?view=day&date=2026-03-12&lang=fr", &[]),
    )
    .await;
    let body = unescaped(&page.body);
    assert!(
        body.contains("href=\"/history?view=day&date=2026-03-12&lang=fr&download=energy\""),
        "{body}"
    );
    assert!(body.contains("<details class=\"table-fold\">"));
    assert!(body.contains("<input type=\"date\" name=\"date\" value=\"2026-03-12\""));

    let csv = send(
        state.clone(),
        get(
            "/history?view=day&date=2026-03-12&lang=fr&download=energy",
            &[],
        ),
    )
    .await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.body);
    assert_eq!(csv.header("content-type"), "text/csv; charset=utf-8");
    assert_eq!(
        csv.header("content-disposition"),
        "attachment; filename=\"communalia-energy-day-2026-03-12.csv\""
    );
    let lines: Vec<&str> = csv.body.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(
        lines[0],
        "Heure;Production solaire (kWh);Consommation (kWh);Prélevé sur le réseau (kWh);Injecté sur le réseau (kWh)"
    );
    assert!(
        lines.contains(&"2026-03-12 10:00;3,000;1,500;0,000;0,500"),
        "{lines:?}"
    );
    assert_eq!(lines.last(), Some(&"Total;3,500;2,500;0,300;0,500"));
    assert_eq!(lines.len(), 1 + 24 + 1, "a row an hour and the total");

    let csv = send(
        state.clone(),
        get(
            "/history?view=day&date=2026-03-12&lang=en&download=services",
            &[],
        ),
    )
    .await;
    let lines: Vec<&str> = csv.body.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(
        lines[0],
        "Service,Asked for (kWh),Served (kWh),Shed (kWh),Time shed (h)"
    );
    assert!(
        lines.contains(&"Laverie partagée,3.000,1.000,1.000,0.50"),
        "{lines:?}"
    );

    let bad = send(state, get("/history?download=everything", &[])).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(unescaped(&bad.body).contains("« everything » n'est pas un tableau"));
}
