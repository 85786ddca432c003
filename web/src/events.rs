//! `GET /events`: the live snapshot as Server-Sent Events, for the wall screen.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, BoxStream, Stream, StreamExt};
use query::live::LiveSnapshot;
use tokio::sync::watch;

use crate::{AppState, ShutdownSignal};

/// The name of each event; its data is the `GET /api/live` body.
pub(crate) const SNAPSHOT_EVENT: &str = "snapshot";

/// Comments keep proxies and the browser from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How soon a browser reconnects after losing the stream (its default is a few
/// seconds, left to each browser): a restarted node is back on the wall at once.
const RECONNECT_AFTER: Duration = Duration::from_secs(2);

/// Sends the current snapshot at once, then each new one, each with this week's
/// validated hours of contributions read from the journal as it is sent. The watch
/// channel keeps only the latest value, so a slow reader skips snapshots instead of
/// lagging behind.
/// The stream ends cleanly when the live loop drops its sender or the server stops.
pub(crate) async fn events(
    State(state): State<AppState>,
    shutdown: Option<Extension<ShutdownSignal>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let snapshots = snapshot_events(state);
    let stream: BoxStream<'static, Result<Event, Infallible>> = match shutdown {
        Some(Extension(ShutdownSignal(token))) => {
            snapshots.take_until(token.cancelled_owned()).boxed()
        }
        None => snapshots.boxed(),
    };
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

fn snapshot_events(
    state: AppState,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let live: watch::Receiver<Arc<LiveSnapshot>> = state.live.clone();
    stream::unfold((state, live, true), |(state, mut live, first)| async move {
        if !first && live.changed().await.is_err() {
            tracing::debug!("live snapshot sender dropped, ending event stream");
            return None;
        }
        let snapshot = live.borrow_and_update().clone();
        let tally = crate::ledger_api::week_tally(&state, chrono::Utc::now()).await;
        let event = snapshot_event(&snapshot, tally);
        let event = if first {
            event.retry(RECONNECT_AFTER)
        } else {
            event
        };
        Some((Ok(event), (state, live, false)))
    })
}

fn snapshot_event(snapshot: &LiveSnapshot, tally: Option<crate::ledger_api::WeekTally>) -> Event {
    match serde_json::to_string(&crate::api::live_body(snapshot, tally)) {
        Ok(json) => Event::default().event(SNAPSHOT_EVENT).data(json),
        Err(error) => {
            // Not expected (plain data); the reader's silence timer will show it.
            tracing::error!(%error, "live snapshot could not be encoded");
            Event::default().comment("snapshot could not be encoded")
        }
    }
}
