//! The wall screen in a real browser (headless Chromium through chromedriver)
//! under the node's Content-Security-Policy: it still updates live, and the
//! browser reports no violation of the policy.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::CONTENT_SECURITY_POLICY;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;

use crate::support::state;
use crate::webdriver::{self, Driver};

/// Where the browser is asked to report violations, in this test only.
const REPORTS: &str = "/test-csp-reports";

/// The node's router, its policy asking the browser to report each violation to
/// [`REPORTS`], where they are gathered into `reports`; the policy is otherwise the
/// node's own, word for word.
fn reporting(router: axum::Router, reports: Arc<Mutex<Vec<String>>>) -> axum::Router {
    router.layer(middleware::from_fn(move |request: Request, next: Next| {
        let reports = reports.clone();
        async move {
            if request.method() == Method::POST && request.uri().path() == REPORTS {
                let body = axum::body::to_bytes(request.into_body(), 64 * 1024)
                    .await
                    .unwrap_or_default();
                if let Ok(mut reports) = reports.lock() {
                    reports.push(String::from_utf8_lossy(&body).into_owned());
                }
                return StatusCode::NO_CONTENT.into_response();
            }
            let mut response: Response<Body> = next.run(request).await;
            let policy = response
                .headers()
                .get(CONTENT_SECURITY_POLICY)
                .and_then(|v| v.to_str().ok())
                .map(|p| format!("{p}; report-uri {REPORTS}"));
            if let Some(policy) = policy.and_then(|p| HeaderValue::from_str(&p).ok()) {
                response
                    .headers_mut()
                    .insert(CONTENT_SECURITY_POLICY, policy);
            }
            response
        }
    }))
}

fn gathered(reports: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    reports.lock().map(|r| r.clone()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_updates_live_under_its_content_security_policy() {
    if !webdriver::available() {
        return;
    }
    let (state, tx) = state();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let router = reporting(web::app(state), reports.clone());
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let base = format!(
        "http://{}",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let browser = Driver::start(1280, 800).await;

    browser.goto(&format!("{base}/?lang=fr")).await;
    let field = "[data-field='site.pv_w']";
    assert_eq!(browser.text(field).await, "4,3 kW");
    // New figures, sent until the page shows them: only its script, over the event
    // stream, can bring them.
    let publisher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tick.tick().await;
            tx.send_modify(|snapshot| {
                std::sync::Arc::make_mut(snapshot).site.pv_w = 7777.0;
            });
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let shown = browser.text(field).await;
        if shown == "7,8 kW" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the wall still shows {shown:?}: the script did not apply the update"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    publisher.abort();
    // The page has also fetched today's curve by now; reports are sent at once,
    // but give them a moment to arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let violations = gathered(&reports);
    assert!(
        violations.is_empty(),
        "the wall broke its policy: {violations:?}"
    );

    // The reports do arrive when something breaks the policy: an inline style.
    browser
        .execute(
            "document.body.insertAdjacentHTML('beforeend', '<p style=\"color: red\">inline</p>'); \
             return true;",
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while gathered(&reports).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let violations = gathered(&reports);
    assert!(
        violations.iter().any(|r| r.contains("style-src")),
        "an inline style was not reported: {violations:?}"
    );

    browser.quit().await;
    server.abort();
}
