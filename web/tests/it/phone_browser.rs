//! Every page on a phone (390 x 844, the common size today) and a small tablet
//! (600 x 960), in a real browser: no page wider than its screen, the wall in one
//! column with its services' names and the signal word whole.

use chrono::Utc;

use crate::ledger_browser::{keep_screenshot, serve, stop};
use crate::support::{validated, with_residents};
use crate::webdriver::{self, Driver, sign_in};

/// Reads the document's and the window's widths, and which visible elements stick
/// out on the right or cut their own text.
const MEASURE: &str = "
  const d = document.documentElement;
  const over = [];
  for (const e of document.querySelectorAll('body *')) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    if (e.closest('table, .chart, svg, pre')) continue;
    if (r.right > window.innerWidth + 1) over.push(e.tagName + '.' + e.className + ' right=' + r.right);
  }
  return {scrollW: d.scrollWidth, innerW: window.innerWidth, over: over.slice(0, 5)};";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_fits_a_phone() {
    if !webdriver::available() {
        return;
    }
    let (state, _tx) = with_residents();
    validated(&state, "rita", 4.0, Utc::now());
    let (base, shutdown, server) = serve(state).await;
    for (width, height) in [(390, 844), (600, 960)] {
        let browser = Driver::start(width, height).await;
        sign_in(&browser, &base, "aline", "/").await;
        for path in [
            "/",
            "/assembly",
            "/ledger",
            "/history",
            "/history?view=week",
        ] {
            browser.goto(&format!("{base}{path}")).await;
            let m = browser.execute(MEASURE).await;
            let n = |k: &str| m[k].as_f64().unwrap_or_else(|| panic!("{k} in {m}"));
            assert!(
                n("scrollW") <= n("innerW"),
                "{path} at {width}x{height} is wider than the screen: {m}"
            );
            assert_eq!(
                m["over"].as_array().map(Vec::len),
                Some(0),
                "{path} at {width}x{height}: {m}"
            );
            let name = path.trim_start_matches('/').replace(['/', '?', '='], "-");
            let name = if name.is_empty() { "wall".into() } else { name };
            keep_screenshot(
                &browser.screenshot().await,
                &format!("phone-{name}-{width}x{height}.png"),
            );
        }
        // The wall in one column: the services as wide as the figures, every
        // name and the signal word whole.
        browser.goto(&format!("{base}/")).await;
        let wall = browser
            .execute(
                "const w = s => document.querySelector(s).getBoundingClientRect().width;
                 const cut = [...document.querySelectorAll('.service-name, .signal-word, .service-power')]
                   .filter(e => e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1)
                   .map(e => e.textContent);
                 return {services: w('.services'), figures: w('.figures'), cut};",
            )
            .await;
        let services = wall["services"].as_f64().unwrap_or(0.0);
        let figures = wall["figures"].as_f64().unwrap_or(0.0);
        assert!(
            (services - figures).abs() < 2.0 && services > 0.8 * width as f64,
            "not one column at {width}x{height}: {wall}"
        );
        assert_eq!(
            wall["cut"].as_array().map(Vec::len),
            Some(0),
            "text cut at {width}x{height}: {wall}"
        );
        browser.quit().await;
    }
    stop(shutdown, server).await;
}
