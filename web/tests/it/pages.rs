//! The wall screen and the other pages, through the router.

use axum::http::StatusCode;

use crate::support::{get, opening_tag, send, snapshot, state, state_with};

#[tokio::test]
async fn wall_is_french_by_default() {
    let (state, _tx) = state();
    let reply = send(state, get("/", &[])).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.header("content-type").starts_with("text/html"));
    assert_eq!(reply.header("cache-control"), "no-store");
    let html = &reply.body;
    assert!(html.contains("<html lang=\"fr\">"), "{html}");
    assert!(html.contains("<meta name=\"viewport\""));
    assert!(html.contains("Production solaire"));
    assert!(html.contains("Bon moment pour consommer"));
    assert!(html.contains("Priorités votées le 12 mars 2026"));
    assert!(html.contains("data-field=\"site.pv_w\">4,3 kW<"), "{html}");
    assert!(html.contains("data-field=\"site.battery_soc_pct\">62 %<"));
    assert!(html.contains("data-service=\"clinic-fridge\""));
    assert!(html.contains("Réfrigérateur du cabinet médical"));
    // States by word and icon, not colour alone.
    assert!(html.contains("délesté") && html.contains("✖"));
    assert!(html.contains("partiel") && html.contains("◐"));
    assert!(html.contains("servi") && html.contains("✔"));
    assert!(html.contains("/static/wall.js?v="));
    assert!(html.contains("href=\"/?lang=en\""));
    // Not stale: the banner is there for the script, but hidden.
    assert!(opening_tag(html, "class=\"stale-banner\"").contains(" hidden"));
    assert!(reply.header("set-cookie").is_empty());
}

/// The wall is the community's screen: a kiosk browser set up in English does not
/// turn a French site's wall English; `?lang=` and the switch still do.
#[tokio::test]
async fn the_wall_speaks_the_sites_language_whatever_the_browser() {
    let (state, _tx) = state();
    let reply = send(
        state.clone(),
        get("/", &[("accept-language", "en-GB,en;q=0.9")]),
    )
    .await;
    assert!(reply.body.contains("<html lang=\"fr\">"), "{}", reply.body);
    assert!(reply.body.contains("Production solaire"));
    // Other pages follow the reader's browser.
    let reply = send(
        state.clone(),
        get("/history", &[("accept-language", "en-GB,en;q=0.9")]),
    )
    .await;
    assert!(reply.body.contains("<html lang=\"en\">"), "{}", reply.body);
    let reply = send(state, get("/?lang=en", &[("accept-language", "fr")])).await;
    assert_eq!(reply.status, StatusCode::OK);
    let html = &reply.body;
    assert!(html.contains("<html lang=\"en\">"));
    assert!(html.contains("Solar production"));
    assert!(html.contains("Good time to use power"));
    assert!(html.contains("data-field=\"site.pv_w\">4.3 kW<"));
    assert!(html.contains("Priorities voted on 12 March 2026"));
    assert!(html.contains("partly served"));
}

#[tokio::test]
async fn explicit_choice_wins_and_is_remembered() {
    let (state, _tx) = state();
    let reply = send(
        state.clone(),
        get("/?lang=en", &[("accept-language", "fr")]),
    )
    .await;
    assert!(reply.body.contains("<html lang=\"en\">"));
    let cookie = reply.header("set-cookie");
    assert!(cookie.starts_with("lang=en;"), "{cookie}");
    assert!(
        cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
        "{cookie}"
    );

    // The cookie then wins over Accept-Language.
    let reply = send(
        state.clone(),
        get(
            "/",
            &[
                ("cookie", "theme=dark; lang=en"),
                ("accept-language", "fr-FR"),
            ],
        ),
    )
    .await;
    assert!(reply.body.contains("<html lang=\"en\">"));

    let reply = send(state.clone(), get("/?lang=fr", &[("cookie", "lang=en")])).await;
    assert!(reply.body.contains("<html lang=\"fr\">"));
    assert!(reply.header("set-cookie").starts_with("lang=fr;"));

    // A language we do not have is ignored, and not remembered: the wall stays in
    // the site's language.
    let reply = send(state, get("/?lang=xx", &[("accept-language", "en")])).await;
    assert!(reply.body.contains("<html lang=\"fr\">"));
    assert!(reply.header("set-cookie").is_empty());
}

#[tokio::test]
async fn stale_banner_is_visible_when_stale() {
    let mut snapshot = snapshot();
    snapshot.stale = true;
    snapshot.ts = crate::support::at(2026, 3, 15, 9, 0, 0);
    snapshot.last_data = Some(crate::support::at(2026, 3, 14, 13, 32, 5));
    let (state, _tx) = state_with(snapshot, Default::default());
    let reply = send(state.clone(), get("/", &[])).await;
    let html = &reply.body;
    let banner = opening_tag(html, "class=\"stale-banner\"");
    assert!(!banner.contains("hidden"), "{banner}");
    assert!(banner.contains("role=\"alert\""));
    assert!(
        html.contains("Données périmées : aucune mesure depuis 14/03/2026 14:32:05"),
        "{html}"
    );
    assert!(html.contains("class=\"wall is-stale\""));
    // No invitation to use power on old figures.
    assert!(!html.contains("Bon moment pour consommer</span>"));
    assert!(html.contains("data-signal=\"unknown\""));
    // A reload under the banner draws no old figure as if it were a reading.
    assert!(html.contains("data-field=\"site.pv_w\">—<"), "{html}");
    assert!(
        html.contains("data-field=\"grid_direction\">inconnu<"),
        "{html}"
    );
    assert!(!html.contains("4,3 kW"), "an old figure drawn as a reading");
    assert!(html.contains("data-state=\"unknown\""), "{html}");
    assert!(!html.contains("data-state=\"served\""), "{html}");

    let reply = send(state, get("/?lang=en", &[])).await;
    assert!(reply.body.contains("Out-of-date data: no reading since"));
}

#[tokio::test]
async fn not_found_page_in_the_readers_language() {
    let (state, _tx) = state();
    let reply = send(state.clone(), get("/nowhere", &[])).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.header("content-type").starts_with("text/html"));
    assert!(reply.body.contains("<html lang=\"fr\">"));
    assert!(reply.body.contains("Page introuvable"));

    let reply = send(state, get("/nowhere", &[("accept-language", "en-US")])).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.body.contains("Page not found"));
}

#[tokio::test]
async fn static_assets_have_types_and_cache_headers() {
    let (state, _tx) = state();
    let js = send(state.clone(), get("/static/wall.js", &[])).await;
    assert_eq!(js.status, StatusCode::OK);
    assert_eq!(js.header("content-type"), "text/javascript; charset=utf-8");
    assert!(js.header("cache-control").contains("max-age="));
    assert!(js.body.contains("EventSource('/events')"));
    let etag = js.header("etag").to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

    let again = send(
        state.clone(),
        get("/static/wall.js", &[("if-none-match", &etag)]),
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());

    let css = send(state.clone(), get("/static/wall.css", &[])).await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.header("content-type"), "text/css; charset=utf-8");
    assert!(css.header("cache-control").contains("max-age="));
    assert_ne!(css.header("etag"), etag);

    let missing = send(state, get("/static/other.js", &[])).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn healthz_follows_the_live_loop() {
    let (state, tx) = state();
    let reply = send(state.clone(), get("/healthz", &[])).await;
    assert_eq!(reply.status, StatusCode::OK);
    drop(tx);
    let reply = send(state, get("/healthz", &[])).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
}
