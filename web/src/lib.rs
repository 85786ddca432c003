//! The node's HTTP face: an axum server with the wall screen, the JSON API of
//! DESIGN.md §8, live updates as Server-Sent Events and Prometheus `/metrics`.
//! It owns routes, content negotiation (language, caching), request decoding and
//! error responses, and no domain logic: figures come from the `query` crate's live
//! snapshot and its allocation, pages from the `dashboards` crate, plans,
//! accounts and the contribution ledger (contributions, attestations, transfers,
//! balances, its parameters) from the `ledger`, whose calls run on the blocking
//! pool. [`app`] builds the router on its own so tests drive
//! it with `oneshot`; [`serve`] runs it on a listener until a cancellation token
//! fires, and [`serve_tls`] serves it over HTTPS with the plain port redirecting
//! (see `tls.rs` and `redirect.rs`).
//!
//! Every route is declared once, with who may call it, in the table of [`routes`]
//! (`routes.rs`); the router is built from that table only. Signing in, sessions,
//! tokens, roles and CSRF are in `auth.rs` and `login.rs`.

mod api;
mod api_json;
mod archive;
mod assembly;
mod assets;
mod auth;
mod error;
mod events;
mod form;
mod history;
mod history_page;
mod idempotency;
mod installer;
mod lang;
mod ledger_api;
mod ledger_page;
mod login;
mod me;
mod metrics;
mod pages;
mod plan_page;
mod planning_api;
mod plans;
mod redirect;
mod routes;
mod security;
mod sortition;
pub mod tls;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::{Extension, Router};
use ingest::metrics::IngestMetrics;
use query::live::LiveSnapshot;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

pub use crate::auth::{
    Access, CSRF_FIELD, CSRF_HEADER, Credential, CurrentMember, SESSION_COOKIE, changes_state,
};
pub use crate::error::AppError;
pub use crate::idempotency::{IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED};
pub use crate::login::{
    Attempt, CheckSlot, FAILURES_PER_ACCOUNT, FAILURES_PER_ADDRESS, LIMIT_WINDOW, LoginLimiter,
    PASSWORD_CHECKS_AT_ONCE,
};
pub use crate::metrics::{PROMETHEUS_CONTENT_TYPE, render_metrics};
pub use crate::routes::{RouteSpec, routes};
pub use crate::security::CONTENT_SECURITY_POLICY_VALUE;

/// What every handler may read. Cheap to clone: a watch receiver and shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The latest live snapshot as the public sees it: the site's totals and
    /// services, and the community's devices only, never a household's meter
    /// (made once per evaluation by [`query::visibility::public_feed`]). What every
    /// route reads unless it is an installer's.
    pub live: watch::Receiver<Arc<LiveSnapshot>>,
    /// The latest live snapshot with every device, households' meters included:
    /// for the installers' routes only. The sender side is the live loop in `query`.
    pub live_full: watch::Receiver<Arc<LiveSnapshot>>,
    /// Which devices are the community's: what `/metrics` may name beside the
    /// snapshot (ingest counters are kept per device, households' too).
    pub visibility: Arc<query::visibility::Visibility>,
    pub metrics: Arc<IngestMetrics>,
    pub site: dashboards::SiteInfo,
    /// The community journal: members, accounts and sessions, plans, and the
    /// contribution ledger.
    pub journal: Arc<ledger::Journal>,
    /// Notified after each plan adoption, so that the live evaluation re-runs at
    /// once instead of at its next tick.
    pub replan: Arc<Notify>,
    /// Failed sign-ins, per account and per client address.
    pub login_limiter: Arc<LoginLimiter>,
    /// Queries over the history (export, installer SQL, charts, replay); `None` on a
    /// node that keeps none (tests of the live side).
    pub queries: Option<query::history_session::Queries>,
    /// The ids of the services the site configuration declares: an adopted plan may
    /// name no other.
    pub services: Arc<BTreeSet<String>>,
}

/// Set by [`serve`] so that open event streams end when the server shuts down;
/// otherwise a graceful shutdown would wait for every wall screen to disconnect.
#[derive(Debug, Clone)]
pub(crate) struct ShutdownSignal(pub(crate) CancellationToken);

/// Every route of the node, from the table of [`routes`].
pub fn app(state: AppState) -> Router {
    routes::router(state)
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
    // The peer address feeds the sign-in limits per client address.
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await?;
    tracing::info!("web server stopped");
    Ok(())
}

/// Serves [`app`] over HTTPS on `https` with `identity`'s certificate until
/// `shutdown` is cancelled, and on `plain` (when given) answers every request with
/// a redirect to HTTPS or, for anything but a page, a refusal (`redirect.rs`).
/// Cookies set over HTTPS are `Secure`, and `/installer` shows the certificate's
/// fingerprints.
pub async fn serve_tls(
    https: tokio::net::TcpListener,
    plain: Option<tokio::net::TcpListener>,
    state: AppState,
    identity: tls::TlsIdentity,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let https_addr = https.local_addr()?;
    tracing::info!(addr = %https_addr, fingerprint = %identity.shown.fingerprint, "HTTPS server listening");
    let router = app(state)
        .layer(Extension(ShutdownSignal(shutdown.clone())))
        .layer(Extension(Arc::new(identity.shown.clone())))
        .layer(Extension(tls::OverTls));
    let listener = tls::TlsListener::start(https, &identity, shutdown.clone())?;
    // `tap_io` only so that axum hands the client's address over as it does for
    // a TCP listener (the sign-in limits per address).
    let secure = axum::serve(
        listener.tap_io(|_| {}),
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let redirect = async {
        if let Some(plain) = plain {
            if let Ok(addr) = plain.local_addr() {
                tracing::info!(%addr, "plain HTTP redirects to HTTPS");
            }
            axum::serve(plain, redirect::router(https_addr.port()))
                .with_graceful_shutdown(shutdown.clone().cancelled_owned())
                .await
        } else {
            Ok(())
        }
    };
    let (secure, redirect) = tokio::join!(secure.into_future(), redirect);
    tracing::info!("web server stopped");
    secure.and(redirect)
}
