//! HTML pages: the wall screen, the not-found page, and the health check.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};

use crate::auth::CurrentMember;
use crate::lang::PageLang;
use crate::{AppError, AppState};

/// `GET /`: the wall screen, drawn from the current snapshot, with the hours of
/// contributions validated since Monday 00:00 in the site's time zone and today's
/// curve from the history.
pub(crate) async fn wall(
    State(state): State<AppState>,
    lang: PageLang,
    member: Option<CurrentMember>,
) -> Result<Response, AppError> {
    // Clone the Arc so the watch channel is not borrowed while rendering.
    let snapshot = state.live.borrow().clone();
    let tally = crate::ledger_api::week_tally(&state, chrono::Utc::now()).await;
    let (needs, surplus_offer) = planning_lines(&state, snapshot.ts).await;
    let context = dashboards::WallContext {
        assembly_link: member
            .as_ref()
            .is_some_and(|m| m.has(ledger::Role::Assembly)),
        ledger_link: member.is_some(),
        installer_link: member
            .as_ref()
            .is_some_and(|m| m.has(ledger::Role::Installer)),
        week_hours: tally.map(|t| t.hours),
        today: crate::history_page::today_curve(&state).await,
        storage: state.metrics.storage(),
        collective_needs: needs,
        surplus_offer,
    };
    let html = dashboards::render_wall_with(&snapshot, lang.lang, &state.site, &context)?;
    // Live figures: a cached copy would show old numbers as if they were current.
    Ok(lang.page(StatusCode::OK, html))
}

/// The open collective needs of the planning board, newest first, and the node's
/// next open surplus offer (its window not over at `now`, the node's clock); none
/// (and an error logged) when the journal cannot be read, so that the wall still
/// shows.
async fn planning_lines(
    state: &AppState,
    now: chrono::DateTime<chrono::Utc>,
) -> (Vec<ledger::Intent>, Option<ledger::Intent>) {
    // Intents are read on the real clock, as the planning board reads them. A
    // surplus offer lapses at its window's end, which is judged on the node's clock
    // (a demo's simulated day): only its being closed is taken from the read.
    let read = crate::ledger_api::with_journal(state, "collective needs", |j| {
        j.intents(chrono::Utc::now())
    })
    .await;
    let open = |i: &ledger::Intent| i.state == ledger::IntentState::Open;
    match read {
        Ok(Ok(intents)) => {
            let surplus = intents
                .iter()
                .filter(|i| {
                    i.state != ledger::IntentState::Closed
                        && i.author == ledger::NODE_AUTHOR
                        && i.class == ledger::SURPLUS_CLASS
                        && i.window_end.is_some_and(|end| end > now)
                })
                .min_by_key(|i| i.window_start)
                .cloned();
            let needs = intents
                .into_iter()
                .filter(|i| i.collective && open(i) && i.remaining > ledger::Quantity::ZERO)
                .collect();
            (needs, surplus)
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot read the planning board for the wall");
            (Vec::new(), None)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read the planning board for the wall");
            (Vec::new(), None)
        }
    }
}

/// Anything else: a JSON error under `/api/`, a page in the reader's language elsewhere.
pub(crate) async fn not_found(
    State(state): State<AppState>,
    lang: PageLang,
    uri: Uri,
) -> Result<Response, AppError> {
    let path = uri.path();
    if path == "/api" || path.starts_with("/api/") {
        return Err(AppError::NoSuchEndpoint(path.to_string()));
    }
    let html = dashboards::render_not_found(lang.lang, &state.site)?;
    Ok((StatusCode::NOT_FOUND, Html(html)).into_response())
}

/// `GET /healthz`: 200 while the live data loop is connected, 503 once it is gone.
pub(crate) async fn healthz(State(state): State<AppState>) -> Response {
    match state.live.has_changed() {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "live data loop stopped\n").into_response(),
    }
}
