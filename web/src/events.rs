//! `GET /events`: the live snapshot as Server-Sent Events, for the wall screen.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream, Stream, StreamExt};
use query::live::LiveSnapshot;
use tokio::sync::{Mutex, watch};

use crate::ledger_api::WeekTally;
use crate::{AppState, ShutdownSignal};

/// The name of each event; its data is the `GET /api/live` body.
pub(crate) const SNAPSHOT_EVENT: &str = "snapshot";

/// Comments keep proxies and the browser from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How soon a browser reconnects after losing the stream (its default is a few
/// seconds, left to each browser): a restarted node is back on the wall at once.
const RECONNECT_AFTER: Duration = Duration::from_secs(2);

/// The data of the latest snapshot's event, shared by every open stream: this
/// week's validated hours are read from the journal and the body encoded once
/// per snapshot, however many walls are watching. The router holds one.
/// A tally, the journal's commits it was read at, and the week it counts.
type CachedTally = (u64, DateTime<Utc>, Option<WeekTally>);

#[derive(Debug, Default)]
pub(crate) struct SnapshotEvents {
    latest: Mutex<Option<(Arc<LiveSnapshot>, Arc<str>)>>,
    /// The week's tally and what it was read for (the journal's commits, the
    /// week's start): snapshots come up to twenty a second, contributions are
    /// validated a few times a week.
    tally: Mutex<Option<CachedTally>>,
    /// How many times the journal was read for the week's tally.
    tally_reads: AtomicU64,
}

impl SnapshotEvents {
    /// The `/api/live` body of `snapshot`, made by the first stream to ask for
    /// it; `None` (logged) if it cannot be encoded.
    async fn body(&self, state: &AppState, snapshot: &Arc<LiveSnapshot>) -> Option<Arc<str>> {
        // Held while the tally is read, so that the other streams wait for it
        // rather than read it too.
        let mut latest = self.latest.lock().await;
        if let Some((made_for, body)) = latest.as_ref()
            && Arc::ptr_eq(made_for, snapshot)
        {
            return Some(body.clone());
        }
        let tally = self.tally(state).await;
        match serde_json::to_string(&crate::api::live_body(snapshot, tally)) {
            Ok(json) => {
                let body: Arc<str> = json.into();
                // Holding the snapshot keeps its address from being reused by a
                // later one while it is the key.
                *latest = Some((snapshot.clone(), body.clone()));
                Some(body)
            }
            Err(error) => {
                // Not expected (plain data); the reader's silence timer will show it.
                tracing::error!(%error, "live snapshot could not be encoded");
                None
            }
        }
    }
}

impl SnapshotEvents {
    /// This week's tally, read from the journal only when it has changed since the
    /// last read or a new week has begun.
    async fn tally(&self, state: &AppState) -> Option<WeekTally> {
        let now = Utc::now();
        let since = crate::ledger_api::week_start(now, state.site.timezone);
        let commits = state.journal.commits();
        let mut cached = self.tally.lock().await;
        if let Some((at, for_week, tally)) = *cached
            && at == commits
            && for_week == since
        {
            return tally;
        }
        self.tally_reads.fetch_add(1, Ordering::Relaxed);
        let tally = crate::ledger_api::week_tally(state, now).await;
        // A tally that could not be read is read again next time.
        *cached = tally.is_some().then_some((commits, since, tally));
        tally
    }
}

/// Sends the current snapshot at once, then each new one, each with this week's
/// validated hours of contributions (read once per snapshot for all streams, see
/// [`SnapshotEvents`]). The watch channel keeps only the latest value, so a slow
/// reader skips snapshots instead of lagging behind.
/// The stream ends cleanly when the live loop drops its sender or the server stops.
pub(crate) async fn events(
    State(state): State<AppState>,
    Extension(shared): Extension<Arc<SnapshotEvents>>,
    shutdown: Option<Extension<ShutdownSignal>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let snapshots = snapshot_bodies(state, shared)
        .enumerate()
        .map(|(i, body)| Ok(snapshot_event(body.as_deref(), i == 0)));
    let stream: BoxStream<'static, Result<Event, Infallible>> = match shutdown {
        Some(Extension(ShutdownSignal(token))) => {
            snapshots.take_until(token.cancelled_owned()).boxed()
        }
        None => snapshots.boxed(),
    };
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// The body of each snapshot's event, the current one first; `None` for a
/// snapshot that could not be encoded.
fn snapshot_bodies(
    state: AppState,
    shared: Arc<SnapshotEvents>,
) -> impl Stream<Item = Option<Arc<str>>> + Send + 'static {
    let live: watch::Receiver<Arc<LiveSnapshot>> = state.live.clone();
    stream::unfold(
        (state, shared, live, true),
        |(state, shared, mut live, first)| async move {
            if !first && live.changed().await.is_err() {
                tracing::debug!("live snapshot sender dropped, ending event stream");
                return None;
            }
            let snapshot = live.borrow_and_update().clone();
            let body = shared.body(&state, &snapshot).await;
            Some((body, (state, shared, live, false)))
        },
    )
}

fn snapshot_event(body: Option<&str>, first: bool) -> Event {
    let event = match body {
        Some(json) => Event::default().event(SNAPSHOT_EVENT).data(json),
        None => Event::default().comment("snapshot could not be encoded"),
    };
    if first {
        event.retry(RECONNECT_AFTER)
    } else {
        event
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use futures::future::join_all;
    use ledger::{Category, NewContribution, Role, Verdict};

    use super::*;

    const WALLS: usize = 8;

    fn state() -> (AppState, watch::Sender<Arc<LiveSnapshot>>) {
        let (tx, rx) = watch::channel(Arc::new(query::engine::empty_snapshot(Utc::now())));
        let journal = ledger::Journal::open_in_memory().unwrap_or_else(|e| panic!("journal: {e}"));
        for name in ["rita", "remi", "sara"] {
            journal
                .add_member(name, &[Role::Resident], "test", Utc::now())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let state = AppState {
            live: rx.clone(),
            live_full: rx,
            visibility: Arc::new(query::visibility::Visibility::new(&[], &[])),
            metrics: Arc::default(),
            site: dashboards::SiteInfo {
                name: "Les Tilleuls".into(),
                default_lang: dashboards::Lang::Fr,
                timezone: chrono_tz::Europe::Paris,
            },
            journal: Arc::new(journal),
            replan: Arc::default(),
            login_limiter: Arc::default(),
            queries: None,
            services: Arc::default(),
        };
        (state, tx)
    }

    /// rita's contribution of `hours`, validated now by remi and sara.
    fn validate(state: &AppState, hours: f64) {
        let now = Utc::now();
        let contribution = NewContribution {
            category: Category::Repair,
            hours,
            date: now.date_naive(),
            description: "Mended the bicycles".into(),
        };
        let journal = &state.journal;
        let id = journal
            .record_contribution("rita", &contribution, now)
            .unwrap_or_else(|e| panic!("record: {e}"))
            .seq;
        for approver in ["remi", "sara"] {
            journal
                .attest(id, approver, Verdict::Approve, "Seen", now)
                .unwrap_or_else(|e| panic!("attest: {e}"));
        }
    }

    fn hours_in(body: &Option<Arc<str>>) -> f64 {
        let body = body.as_deref().unwrap_or_else(|| panic!("no body"));
        let json: serde_json::Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
        json["contributions"]["hours_validated_this_week"]
            .as_f64()
            .unwrap_or_else(|| panic!("no hours: {body}"))
    }

    /// Eight walls watch the live snapshot; the journal is read once for each
    /// snapshot that follows a change of it, not once per wall nor per snapshot,
    /// and each wall gets that snapshot's tally.
    #[tokio::test]
    async fn the_weeks_hours_are_read_once_per_snapshot_for_all_streams() {
        let (state, tx) = state();
        validate(&state, 2.5);
        let shared = Arc::new(SnapshotEvents::default());
        let mut walls: Vec<_> = (0..WALLS)
            .map(|_| Box::pin(snapshot_bodies(state.clone(), shared.clone())))
            .collect();

        let first = join_all(walls.iter_mut().map(|w| w.next())).await;
        assert_eq!(shared.tally_reads.load(Ordering::Relaxed), 1);
        for body in &first {
            assert_eq!(
                hours_in(body.as_ref().unwrap_or_else(|| panic!("ended"))),
                2.5
            );
        }

        // The next evaluation, after one more contribution is validated.
        validate(&state, 1.0);
        tx.send_modify(|snapshot| Arc::make_mut(snapshot).ts = Utc::now());
        let second = join_all(walls.iter_mut().map(|w| w.next())).await;
        assert_eq!(shared.tally_reads.load(Ordering::Relaxed), 2);
        for body in &second {
            assert_eq!(
                hours_in(body.as_ref().unwrap_or_else(|| panic!("ended"))),
                3.5
            );
        }

        // Evaluations follow readings, up to twenty a second: one that comes with
        // the journal unchanged does not read it again, and keeps the tally.
        tx.send_modify(|snapshot| Arc::make_mut(snapshot).ts = Utc::now());
        let third = join_all(walls.iter_mut().map(|w| w.next())).await;
        assert_eq!(shared.tally_reads.load(Ordering::Relaxed), 2);
        for body in &third {
            assert_eq!(
                hours_in(body.as_ref().unwrap_or_else(|| panic!("ended"))),
                3.5
            );
        }
    }
}
