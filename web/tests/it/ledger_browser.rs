//! The ledger in a real browser (headless Chromium through chromedriver): the wall
//! screen with its week panel measured at both screen sizes, and a resident who
//! signs in, records a contribution and transfers Communs from the ledger page.
//! Screenshots are kept as test artefacts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::{PASSWORD, validated, with_residents};
use crate::webdriver::{self, Driver};

pub(crate) fn keep_screenshot(png: &[u8], name: &str) -> PathBuf {
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

pub(crate) async fn serve(
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

pub(crate) async fn stop(
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
) {
    shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(10), server).await;
    assert!(
        matches!(stopped, Ok(Ok(Ok(())))),
        "server did not stop cleanly"
    );
}

/// With the week's panel beside the figures, the wall still fits 1920x1080 and
/// 1280x800 without scrolling, and the panel is on the screen, in large type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_with_its_week_panel_fits_both_screens() {
    if !webdriver::available() {
        return;
    }
    let (state, _tx) = with_residents();
    validated(&state, "rita", 10.0, Utc::now());
    validated(&state, "remi", 2.5, Utc::now());
    let (base, shutdown, server) = serve(state).await;
    for (width, height) in [(1920, 1080), (1280, 800)] {
        let browser = Driver::start(width, height).await;
        browser.goto(&format!("{base}/?lang=fr")).await;
        let text = browser.text(".figure-week").await;
        assert_eq!(
            text.split_whitespace().collect::<Vec<_>>().join(" "),
            "Cette semaine 12,5 heures de contributions validées"
        );
        let m = browser
            .execute(
                "const d = document.documentElement;
                 const p = document.querySelector('.figure-week').getBoundingClientRect();
                 const v = document.querySelector('.figure-week .week-value');
                 return {scrollH: d.scrollHeight, innerH: window.innerHeight,
                         scrollW: d.scrollWidth, innerW: window.innerWidth,
                         bottom: p.bottom, right: p.right,
                         font: parseFloat(getComputedStyle(v).fontSize),
                         clipped: v.scrollWidth > v.clientWidth};",
            )
            .await;
        let n = |k: &str| m[k].as_f64().unwrap_or_else(|| panic!("{k} in {m}"));
        assert!(n("scrollH") <= n("innerH"), "{width}x{height} scrolls: {m}");
        assert!(
            n("scrollW") <= n("innerW"),
            "{width}x{height} scrolls sideways: {m}"
        );
        assert!(
            n("bottom") <= n("innerH") && n("right") <= n("innerW"),
            "{m}"
        );
        // Readable from across the room: at least 4 % of the screen height.
        assert!(n("font") >= 0.04 * n("innerH"), "{m}");
        assert_eq!(m["clipped"], false, "the hours are cut off: {m}");
        keep_screenshot(
            &browser.screenshot().await,
            &format!("wall-week-fr-{width}x{height}.png"),
        );
        browser.quit().await;
    }
    stop(shutdown, server).await;
}

/// rita, validated 100 Communs yesterday, signs in from the ledger's address,
/// records an afternoon of gardening, then gives aline 12.5 Communs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_records_and_transfers_in_a_browser() {
    if !webdriver::available() {
        return;
    }
    let (state, _tx) = with_residents();
    validated(&state, "rita", 10.0, Utc::now() - chrono::Duration::days(1));
    let journal = state.journal.clone();
    let (base, shutdown, server) = serve(state).await;
    let browser = Driver::start(1280, 2400).await;

    browser.goto(&format!("{base}/ledger?lang=fr")).await;
    browser
        .find("main.message a[href^='/login']")
        .await
        .click()
        .await;
    browser.find("input[name=name]").await.fill("rita").await;
    browser
        .find("input[name=password]")
        .await
        .fill(PASSWORD)
        .await;
    browser
        .find("form.account-form button[type=submit]")
        .await
        .click()
        .await;
    let url = browser.current_url().await;
    assert!(url.contains("/ledger"), "{url}");

    browser
        .find("select[name=category]")
        .await
        .select("gardening")
        .await;
    browser.find("input[name=hours]").await.fill("3.5").await;
    browser
        .find("textarea[name=description]")
        .await
        .fill("Désherbé les carrés du jardin partagé")
        .await;
    browser
        .find("form[action='/ledger/contributions#record'] button[type=submit]")
        .await
        .click()
        .await;
    let status = browser.text(".form-ok").await;
    assert!(
        status.contains("Votre contribution est enregistrée"),
        "{status}"
    );
    let recorded = journal.contributions().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].hours.centihours(), 350);
    assert_eq!(
        recorded[0].description,
        "Désherbé les carrés du jardin partagé"
    );

    browser.find("select[name=to]").await.select("aline").await;
    browser.find("input[name=amount]").await.fill("12.5").await;
    browser
        .find("input[name=memo]")
        .await
        .fill("Pour le pain")
        .await;
    browser
        .find("form[action='/ledger/transfers#transfer'] button[type=submit]")
        .await
        .click()
        .await;
    let status = browser.text(".form-ok").await;
    assert!(
        status.contains("12,50 Communs transférés à aline"),
        "{status}"
    );
    let balances = browser.text(".balances-table").await;
    // Rounded down: demurrage takes millionths from the millisecond it arrives.
    assert!(
        balances.contains("aline 12,49") || balances.contains("aline 12,50"),
        "{balances}"
    );
    let report = journal.verify().unwrap_or_else(|e| panic!("{e}"));
    assert!(report.is_intact(), "{report}");

    keep_screenshot(&browser.screenshot().await, "ledger-fr.png");
    browser.quit().await;
    stop(shutdown, server).await;
}
