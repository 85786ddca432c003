//! The charts in a real browser (headless Chromium through chromedriver): the wall
//! with today's curve still fits 1920x1080 and 1280x800 without scrolling, its
//! figures still a tenth of the screen high; the history page draws its charts
//! within the page's width. Screenshots are kept as test artefacts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::history_page::{sunny_day, village_day, with_village};
use crate::support::validated;
use crate::webdriver::{self, Driver};

fn keep_screenshot(png: &[u8], name: &str) -> PathBuf {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 20_000,
        "the screenshot is only {} bytes",
        png.len()
    );
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let file = dir.join(name);
    std::fs::write(&file, png).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    println!("screenshot: {}", file.display());
    file
}

async fn serve(
    state: web::AppState,
) -> (
    String,
    CancellationToken,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let shutdown = CancellationToken::new();
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let base = format!(
        "http://{}",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    let server = tokio::spawn(web::serve(listener, state, shutdown.clone()));
    (base, shutdown, server)
}

async fn stop(shutdown: CancellationToken, server: tokio::task::JoinHandle<std::io::Result<()>>) {
    shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(10), server).await;
    assert!(
        matches!(stopped, Ok(Ok(Ok(())))),
        "server did not stop cleanly"
    );
}

fn number(m: &serde_json::Value, key: &str) -> f64 {
    m[key].as_f64().unwrap_or_else(|| panic!("{key} in {m}"))
}

/// Today's curve beside production and consumption, with this week's panel too:
/// nothing scrolls, the curve is on the screen and drawn, and the headline figures
/// keep a tenth of the screen's height.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_with_todays_curve_fits_both_screens() {
    if !webdriver::available() {
        return;
    }
    // The day so far, or the whole day when it has hardly begun (the test must
    // see a curve whatever the hour).
    let now = Utc::now().with_timezone(&chrono_tz::Europe::Paris);
    let until = if now.time() < chrono::NaiveTime::from_hms_opt(3, 0, 0).unwrap_or_default() {
        chrono::NaiveTime::from_hms_opt(23, 59, 0).unwrap_or_default()
    } else {
        now.time()
    };
    let (state, _dir, _tx) = with_village(&sunny_day(now.date_naive(), until, 1.0)).await;
    crate::support::add_residents(&state);
    validated(&state, "rita", 10.0, Utc::now());
    validated(&state, "remi", 2.5, Utc::now());
    let (base, shutdown, server) = serve(state).await;
    for (lang, width, height) in [("fr", 1920, 1080), ("fr", 1280, 800), ("en", 1280, 800)] {
        let browser = Driver::start(width, height).await;
        browser.goto(&format!("{base}/?lang={lang}")).await;
        let m = browser
            .execute(
                "const d = document.documentElement;
                 const chart = document.querySelector('.today-chart svg').getBoundingClientRect();
                 const panel = document.querySelector('.today-panel').getBoundingClientRect();
                 const value = document.querySelector('.figure-pv .figure-value');
                 const v = value.getBoundingClientRect();
                 const line = document.querySelector('.today-chart path.series-production');
                 const dashed = document.querySelector('.today-chart path.series-consumption');
                 const services = document.querySelector('.services').getBoundingClientRect();
                 return {scrollH: d.scrollHeight, innerH: window.innerHeight,
                         scrollW: d.scrollWidth, innerW: window.innerWidth,
                         chartW: chart.width, chartH: chart.height,
                         chartBottom: chart.bottom, chartRight: chart.right,
                         panelBottom: panel.bottom, servicesBottom: services.bottom,
                         valueRight: v.right, chartLeft: chart.left,
                         font: parseFloat(getComputedStyle(value).fontSize),
                         length: line.getTotalLength(),
                         dash: getComputedStyle(dashed).strokeDasharray,
                         solid: getComputedStyle(line).strokeDasharray};",
            )
            .await;
        let n = |k: &str| number(&m, k);
        let size = format!("{width}x{height} {lang}");
        assert!(n("scrollH") <= n("innerH"), "{size} scrolls: {m}");
        assert!(n("scrollW") <= n("innerW"), "{size} scrolls sideways: {m}");
        assert!(
            n("chartBottom") <= n("innerH") && n("chartRight") <= n("innerW"),
            "{size}: {m}"
        );
        assert!(
            n("panelBottom") <= n("innerH") && n("servicesBottom") <= n("innerH"),
            "{size}: {m}"
        );
        // Large enough to read across a room: a quarter of the width at least.
        assert!(
            n("chartW") >= 0.25 * n("innerW") && n("chartH") >= 0.15 * n("innerH"),
            "{size}: {m}"
        );
        // The figures beside the curve, not under it.
        assert!(n("valueRight") <= n("chartLeft") + 1.0, "{size}: {m}");
        assert!(
            n("font") >= 0.099 * n("innerH"),
            "{size}: headline figures too small: {m}"
        );
        assert!(
            n("length") > 50.0,
            "{size}: the production line is not drawn: {m}"
        );
        // Told apart by style as well as colour.
        assert_eq!(m["solid"], "none", "{m}");
        assert_ne!(m["dash"], "none", "{m}");
        keep_screenshot(
            &browser.screenshot().await,
            &format!("wall-curve-{lang}-{width}x{height}.png"),
        );
        browser.quit().await;
    }
    stop(shutdown, server).await;
}

/// The history page's day (French) and month (English): every chart drawn, none
/// wider than the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_page_draws_its_charts_in_a_browser() {
    if !webdriver::available() {
        return;
    }
    // A week of March in sun and cloud, and the services' records of the 12th.
    let march = |day| chrono::NaiveDate::from_ymd_opt(2026, 3, day).unwrap_or_default();
    let mut readings = village_day(march(12));
    let end = chrono::NaiveTime::from_hms_opt(23, 59, 0).unwrap_or_default();
    for (day, sun) in [
        (9, 0.9),
        (10, 0.4),
        (11, 1.0),
        (12, 0.8),
        (13, 0.2),
        (14, 0.6),
        (15, 1.0),
    ] {
        readings.extend(sunny_day(march(day), end, sun));
    }
    let (state, _dir, _tx) = with_village(&readings).await;
    let (base, shutdown, server) = serve(state).await;
    let browser = Driver::start(1280, 1600).await;
    for (query, name) in [
        ("view=day&date=2026-03-12&lang=fr", "history-day-fr"),
        ("view=month&date=2026-03-12&lang=en", "history-month-en"),
    ] {
        browser.goto(&format!("{base}/history?{query}")).await;
        let m = browser
            .execute(
                "const charts = [...document.querySelectorAll('svg.chart-svg')];
                 return {scrollW: document.documentElement.scrollWidth, innerW: window.innerWidth,
                         charts: charts.length,
                         narrowest: Math.min(...charts.map(c => c.getBoundingClientRect().width)),
                         widest: Math.max(...charts.map(c => c.getBoundingClientRect().right)),
                         bars: document.querySelectorAll('rect.bar').length};",
            )
            .await;
        let n = |k: &str| number(&m, k);
        assert!(n("scrollW") <= n("innerW"), "{query} scrolls sideways: {m}");
        assert_eq!(
            n("charts"),
            5.0,
            "{query}: energy, self-sufficiency, battery, charge, services: {m}"
        );
        assert!(
            n("narrowest") > 600.0 && n("widest") <= n("innerW"),
            "{query}: {m}"
        );
        assert!(n("bars") > 4.0, "{query}: {m}");
        keep_screenshot(&browser.screenshot().await, &format!("{name}.png"));
        // The sections further down, each at the top of the window.
        for section in ["battery", "services"] {
            browser
                .execute(&format!(
                    "document.getElementById('{section}-heading').scrollIntoView(); return true;"
                ))
                .await;
            keep_screenshot(
                &browser.screenshot().await,
                &format!("{name}-{section}.png"),
            );
        }
    }
    browser.quit().await;
    stop(shutdown, server).await;
}
