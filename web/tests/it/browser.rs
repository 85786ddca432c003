//! The wall screen in a real browser (headless Chromium): screenshots at the two
//! screen sizes the wall must fit, and live updates applied by the page's script.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use testkit::browser::{chromium, run_headless};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::support::{opening_tag, snapshot, state, state_with, validated, with_residents};

const STREAM_CUT_AFTER: Duration = Duration::from_millis(1500);

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(
        bytes.len() > 24 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG"
    );
    let be =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    (be(16), be(20))
}

async fn screenshot(browser: &Path, url: &str, name: &str, width: u32, height: u32) -> PathBuf {
    let file = screenshot_dir().join(name);
    let _ = std::fs::remove_file(&file);
    run_headless(
        browser,
        &[
            format!("--window-size={width},{height}"),
            format!("--screenshot={}", file.display()),
            url.to_string(),
        ],
    )
    .await;
    let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    // A blank or error page compresses to a few kilobytes; the wall screen does not.
    assert!(
        bytes.len() > 20_000,
        "{} is only {} bytes",
        file.display(),
        bytes.len()
    );
    assert_eq!(png_size(&bytes), (width, height), "{}", file.display());
    println!("screenshot: {}", file.display());
    file
}

async fn spawn_server(
    state: web::AppState,
    shutdown: &CancellationToken,
) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let server = tokio::spawn(web::serve(listener, state, shutdown.clone()));
    (format!("http://{addr}"), server)
}

/// A village with many services and long names: the wall must still fit.
fn many_services() -> query::live::LiveSnapshot {
    let mut snapshot = snapshot();
    let template = snapshot.services[3].clone();
    let names = [
        "Chambre froide de l'épicerie solidaire",
        "Atelier de réparation vélos",
        "Four du fournil communal",
        "Pompe d'irrigation des jardins partagés",
        "Ventilation de la salle des fêtes",
        "Chauffe-eau des douches du stade",
    ];
    for (i, name) in names.iter().enumerate() {
        let mut service = template.clone();
        service.id = format!("extra-{i}").into();
        service.name = (*name).into();
        service.tier = 2 + (i as u32 % 2);
        snapshot.services.push(service);
    }
    snapshot
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_screen_screenshots() {
    let Some(browser) = chromium() else { return };
    let shutdown = CancellationToken::new();

    // This week's contributions: 12.5 hours validated, for the wall's small panel.
    let (state, _tx) = with_residents();
    validated(&state, "rita", 10.0, chrono::Utc::now());
    validated(&state, "remi", 2.5, chrono::Utc::now());
    let (live, server) = spawn_server(state, &shutdown).await;

    let mut stale = snapshot();
    stale.stale = true;
    stale.signal = query::live::Signal::Hold;
    stale.last_data = stale.last_data.map(|t| t - chrono::Duration::minutes(7));
    let (stale_state, _stale_tx) = state_with(stale, Default::default());
    let (stale, stale_server) = spawn_server(stale_state, &shutdown).await;

    let (many_state, _many_tx) = state_with(many_services(), Default::default());
    let (many, many_server) = spawn_server(many_state, &shutdown).await;

    let mut hold = snapshot();
    hold.signal = query::live::Signal::Hold;
    hold.site.headroom_w = 0.0;
    let (hold_state, _hold_tx) = state_with(hold, Default::default());
    let (hold, hold_server) = spawn_server(hold_state, &shutdown).await;

    for (base, lang, name) in [
        (&live, "fr", "wall-fr"),
        (&live, "en", "wall-en"),
        (&stale, "fr", "wall-stale-fr"),
        (&many, "fr", "wall-many-fr"),
        (&hold, "en", "wall-hold-en"),
    ] {
        let url = format!("{base}/?lang={lang}");
        for (width, height) in [(1920, 1080), (1280, 800)] {
            let file = format!("{name}-{width}x{height}.png");
            screenshot(browser, &url, &file, width, height).await;
        }
    }

    shutdown.cancel();
    for server in [server, stale_server, many_server, hold_server] {
        let stopped = tokio::time::timeout(Duration::from_secs(10), server).await;
        assert!(
            matches!(stopped, Ok(Ok(Ok(())))),
            "server did not stop cleanly"
        );
    }
}

/// The page's script applies a value published over SSE after the page was drawn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_screen_applies_live_updates() {
    let Some(browser) = chromium() else { return };

    // The page is first drawn from stale data; fresh data then arrives over SSE.
    let mut stale = snapshot();
    stale.stale = true;
    let (state, tx) = state_with(stale, Default::default());
    // Members whose contribution is validated once the page is drawn: the week's
    // hours reach the page through the event stream too.
    for name in ["rita", "aline", "remi"] {
        state
            .journal
            .add_member(name, &[ledger::Role::Resident], "test", chrono::Utc::now())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let journal_state = state.clone();
    // Learn when the page itself has been served, so the value below can only
    // reach the browser through the event stream.
    let page_served = Arc::new(Notify::new());
    let notify = page_served.clone();
    let router = web::app(state).layer(middleware::from_fn(move |request: Request, next: Next| {
        let notify = notify.clone();
        async move {
            let path = request.uri().path().to_string();
            let response = next.run(request).await;
            match path.as_str() {
                "/" => {
                    notify.notify_one();
                    response
                }
                // Headless Chromium's virtual clock stands still while a request is
                // open, so an endless event stream would never let the time budget
                // run out. End each stream after a while: EventSource reconnects by
                // itself, which this test then also exercises.
                "/events" => {
                    let (parts, body) = response.into_parts();
                    let cut = tokio::time::sleep(STREAM_CUT_AFTER);
                    let stream = body.into_data_stream().take_until(cut);
                    Response::from_parts(parts, Body::from_stream(stream))
                }
                _ => response,
            }
        }
    }));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let publisher = tokio::spawn(async move {
        page_served.notified().await;
        validated(&journal_state, "rita", 2.5, chrono::Utc::now());
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            tx.send_modify(|snapshot| {
                let snapshot = Arc::make_mut(snapshot);
                snapshot.stale = false;
                snapshot.site.pv_w = 7777.0;
            });
        }
    });

    let dom = run_headless(
        browser,
        &[
            "--window-size=1280,800".to_string(),
            "--virtual-time-budget=4000".to_string(),
            "--dump-dom".to_string(),
            format!("http://{addr}/?lang=fr"),
        ],
    )
    .await;
    publisher.abort();
    server.abort();

    assert!(dom.contains("<html lang=\"fr\">"), "{dom}");
    assert!(
        dom.contains("data-field=\"site.pv_w\">7,8 kW<"),
        "the script did not apply the value sent over SSE:\n{dom}"
    );
    // The rest of the page still shows the figures as the server drew them.
    assert!(
        dom.contains("data-field=\"site.battery_soc_pct\">62 %<"),
        "{dom}"
    );
    // Fresh data took the stale warning down and brought the signal back.
    let banner = opening_tag(&dom, "class=\"stale-banner\"");
    assert!(
        banner.contains("hidden"),
        "stale banner still shown: {banner}"
    );
    assert!(!opening_tag(&dom, "<body").contains("is-stale"), "{dom}");
    assert!(
        opening_tag(&dom, "class=\"signal ").contains("data-signal=\"use\""),
        "{dom}"
    );
    assert!(dom.contains("Bon moment pour consommer</span>"), "{dom}");
    // Drawn as "0 heure"; the stream brought the hours validated since.
    assert!(
        dom.contains("data-field=\"contributions.hours_validated_this_week\">2,5 heures<"),
        "the script did not apply the week's hours sent over SSE:\n{dom}"
    );
}

/// With no event at all, the page says within seconds that its figures are old and
/// that it is reconnecting, instead of showing them as live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_screen_warns_when_events_stop() {
    let Some(browser) = chromium() else { return };

    let (state, _tx) = state();
    // The event stream is down (as when a proxy or the node's web side fails).
    let router = web::app(state).layer(middleware::from_fn(
        |request: Request, next: Next| async move {
            if request.uri().path() == "/events" {
                return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            next.run(request).await
        },
    ));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let dom = run_headless(
        browser,
        &[
            "--window-size=1280,800".to_string(),
            "--virtual-time-budget=15000".to_string(),
            "--dump-dom".to_string(),
            format!("http://{addr}/?lang=fr"),
        ],
    )
    .await;
    server.abort();

    let banner = opening_tag(&dom, "class=\"stale-banner\"");
    assert!(
        !banner.contains("hidden"),
        "no stale warning after 15 s without data: {dom}"
    );
    assert!(
        dom.contains("Plus de nouvelles données depuis plus de 10 secondes"),
        "{dom}"
    );
    assert!(opening_tag(&dom, "<body").contains("is-stale"));
    assert!(
        opening_tag(&dom, "class=\"signal ").contains("data-signal=\"unknown\""),
        "{dom}"
    );
    let connection = opening_tag(&dom, "data-field=\"connection\"");
    assert!(!connection.contains("hidden"), "{connection}");
    assert!(dom.contains("Connexion perdue, reconnexion…"), "{dom}");
}
