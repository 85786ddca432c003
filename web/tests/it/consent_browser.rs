//! Consent on `/me` in a real browser (headless Chromium through chromedriver):
//! hugo, of household `martin`, lets rita see one value a day of his household's
//! meter; rita, signed in, reads the household's history at that granularity and no
//! finer; hugo revokes, and rita reads nothing of it any more.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::consent::site_with_household;
use crate::privacy::HOUSEHOLD;
use crate::webdriver::{self, Driver, sign_in};

/// What rita's browser gets for the household meter's history over the last
/// day, through the page's own session: `(status, CSV lines after the header)`.
async fn history_seen(browser: &Driver) -> (u64, Vec<String>) {
    let now = chrono::Utc::now();
    let from = (now - chrono::Duration::days(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let to = (now + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // WebDriver waits for a promise the script returns.
    let reply = browser
        .execute(&format!(
            "return fetch('/api/export?device={HOUSEHOLD}&format=csv&from={from}&to={to}', \
               {{credentials: 'same-origin'}})
               .then(r => r.text().then(t => ({{status: r.status, body: t}})));"
        ))
        .await;
    let status = reply["status"].as_u64().unwrap_or_default();
    let lines = reply["body"]
        .as_str()
        .unwrap_or_default()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect();
    (status, lines)
}

/// The element at `css`, scrolled to the middle of the window first, as a person
/// scrolls to a field below the fold before typing in it.
async fn scrolled_to<'a>(browser: &'a Driver, css: &str) -> crate::webdriver::Element<'a> {
    browser
        .execute(&format!(
            "document.querySelector({css:?}).scrollIntoView({{block: 'center'}});"
        ))
        .await;
    browser.find(css).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_grants_daily_readings_on_me_and_revokes_them_in_a_browser() {
    if !webdriver::available() {
        return;
    }
    let (state, _tx, _dir) = site_with_household().await;
    let shutdown = CancellationToken::new();
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let base = format!(
        "http://{}",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    let server = tokio::spawn(web::serve(listener, state, shutdown.clone()));
    let browser = Driver::start(1280, 900).await;

    // Before any grant, rita (a resident of no household) reads nothing of it.
    sign_in(&browser, &base, "rita", "/me").await;
    let (status, _) = history_seen(&browser).await;
    assert_eq!(status, 403, "rita reads the household before any grant");

    sign_in(&browser, &base, "hugo", "/me").await;
    // The household's own view: every reading (60 of them, ten seconds apart).
    let (status, own) = history_seen(&browser).await;
    assert_eq!((status, own.len()), (200, 60), "{own:?}");
    scrolled_to(&browser, "#grant input[name=grantee]")
        .await
        .fill("member:rita")
        .await;
    scrolled_to(&browser, "#grant input[name=purpose]")
        .await
        .fill("conseil en économies d'énergie")
        .await;
    // Last: a picked option may leave the list open over the fields below.
    scrolled_to(&browser, "#grant select[name=granularity]")
        .await
        .select("daily")
        .await;
    scrolled_to(&browser, "#grant button[type=submit]")
        .await
        .click()
        .await;
    let url = browser.current_url().await;
    assert!(url.contains("done=granted"), "{url}");
    let row = browser.text("tr.grant").await;
    assert!(row.contains("member:rita"), "{row}");

    sign_in(&browser, &base, "rita", "/me").await;
    let (status, daily) = history_seen(&browser).await;
    assert_eq!(status, 200, "{daily:?}");
    // One row a day: the ten minutes of readings fall in one day, or two across
    // midnight; never the 60 readings themselves.
    assert!((1..=2).contains(&daily.len()), "{daily:?}");
    assert!(daily.iter().all(|l| l.contains(HOUSEHOLD)), "{daily:?}");

    sign_in(&browser, &base, "hugo", "/me").await;
    scrolled_to(&browser, "tr.grant form button[type=submit]")
        .await
        .click()
        .await;
    let url = browser.current_url().await;
    assert!(url.contains("done=revoked"), "{url}");

    sign_in(&browser, &base, "rita", "/me").await;
    let (status, after) = history_seen(&browser).await;
    assert_eq!(
        status, 403,
        "rita still reads after the revocation: {after:?}"
    );

    browser.quit().await;
    shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(10), server).await;
    assert!(
        matches!(stopped, Ok(Ok(Ok(())))),
        "server did not stop cleanly"
    );
}
