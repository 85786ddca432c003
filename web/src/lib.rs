//! The node's HTTP face: an axum server with the wall screen, the JSON API of
//! DESIGN.md §8, live updates as Server-Sent Events and Prometheus `/metrics`.
//! It owns routes, content negotiation (language, caching), request decoding and
//! error responses, and no domain logic: figures come from the `query` crate's live
//! snapshot and its allocation, pages from the `dashboards` crate. [`app`] builds
//! the router on its own so tests drive it with `oneshot`; [`serve`] runs it on a
//! listener until a cancellation token fires.

mod api;
mod assets;
mod error;
mod events;
mod lang;
mod metrics;
mod pages;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::{Extension, Router};
use ingest::metrics::IngestMetrics;
use query::live::LiveSnapshot;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use crate::error::AppError;
pub use crate::metrics::{PROMETHEUS_CONTENT_TYPE, render_metrics};

/// What every handler may read. Cheap to clone: a watch receiver and two shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The latest live snapshot; the sender side is the live loop in `query`.
    pub live: watch::Receiver<Arc<LiveSnapshot>>,
    pub metrics: Arc<IngestMetrics>,
    pub site: dashboards::SiteInfo,
}

/// Set by [`serve`] so that open event streams end when the server shuts down;
/// otherwise a graceful shutdown would wait for every wall screen to disconnect.
#[derive(Debug, Clone)]
pub(crate) struct ShutdownSignal(pub(crate) CancellationToken);

/// Every route of the node.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::wall))
        .route("/api/live", get(api::live))
        .route("/api/allocation/simulate", post(api::simulate))
        .route("/events", get(events::events))
        .route("/metrics", get(metrics::metrics))
        .route("/static/wall.js", get(assets::wall_js))
        .route("/static/wall.css", get(assets::wall_css))
        .route("/healthz", get(pages::healthz))
        .fallback(pages::not_found)
        .with_state(state)
}

/// Serves [`app`] on `listener` until `shutdown` is cancelled, then stops accepting,
/// ends the event streams and waits for requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "web server listening");
    }
    let router = app(state).layer(Extension(ShutdownSignal(shutdown.clone())));
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    tracing::info!("web server stopped");
    Ok(())
}
