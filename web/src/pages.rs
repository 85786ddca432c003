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
        collective_needs: collective_needs(&state).await,
    };
    let html = dashboards::render_wall_with(&snapshot, lang.lang, &state.site, &context)?;
    // Live figures: a cached copy would show old numbers as if they were current.
    Ok(lang.page(StatusCode::OK, html))
}

/// The open collective needs of the planning board, newest first; none (and an
/// error logged) when the journal cannot be read, so that the wall still shows.
async fn collective_needs(state: &AppState) -> Vec<ledger::Intent> {
    let read = crate::ledger_api::with_journal(state, "collective needs", |j| {
        j.intents(chrono::Utc::now())
    })
    .await;
    match read {
        Ok(Ok(intents)) => intents
            .into_iter()
            .filter(|i| {
                i.collective
                    && i.state == ledger::IntentState::Open
                    && i.remaining > ledger::Quantity::ZERO
            })
            .collect(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot read the collective needs for the wall");
            Vec::new()
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read the collective needs for the wall");
            Vec::new()
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
