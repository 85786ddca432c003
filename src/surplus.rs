//! The node's offers of solar surplus on the planning board (DESIGN.md §11, "energy
//! in the same flow"): the window of today's (or else tomorrow's) surplus forecast
//! from the history ([`query::surplus`]), or the surplus measured now when the
//! forecast did not see it coming, becomes an offer of class `kwh-surplus` written by
//! the node; households commit to shift a load into it, and the node accepts what
//! fits. The wall shows the next window in one line.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use ledger::Journal;
use query::history_session::Queries;
use query::live::LiveSnapshot;
use query::surplus::{DayForecast, SurplusWindow, forecast_day};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often the node looks (on the real clock: at `--speed 60`, a simulated hour).
const LOOK_EVERY: Duration = Duration::from_secs(60);
/// How long a surplus measured now, and not forecast, is offered for.
const MEASURED_FOR: chrono::Duration = chrono::Duration::minutes(30);

/// What the node remembers between two looks: each day's forecast, made once (on
/// the day before it, and again on the day itself with one more day of history).
pub(crate) struct SurplusWatch {
    min_w: f64,
    tz: Tz,
    lang: dashboards::Lang,
    /// (the day forecast, the day it was made on) → the forecast.
    forecasts: Vec<((NaiveDate, NaiveDate), Option<DayForecast>)>,
}

impl SurplusWatch {
    pub(crate) fn new(min_w: f64, tz: Tz, lang: dashboards::Lang) -> SurplusWatch {
        SurplusWatch {
            min_w,
            tz,
            lang,
            forecasts: Vec::new(),
        }
    }

    async fn forecast(
        &mut self,
        queries: &Queries,
        day: NaiveDate,
        today: NaiveDate,
    ) -> Option<DayForecast> {
        if let Some((_, f)) = self.forecasts.iter().find(|(k, _)| *k == (day, today)) {
            return f.clone();
        }
        let made = match forecast_day(queries, self.tz, day).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, %day, "no surplus forecast");
                None
            }
        };
        self.forecasts.retain(|((_, on), _)| *on == today);
        self.forecasts.push(((day, today), made.clone()));
        made
    }

    /// The window to offer at `now`: the forecast's for the rest of today, else
    /// tomorrow's; the surplus measured now when no forecast window holds `now`.
    pub(crate) async fn next_window(
        &mut self,
        queries: &Queries,
        now: DateTime<Utc>,
        measured_surplus_w: Option<f64>,
    ) -> Option<SurplusWindow> {
        let today = now.with_timezone(&self.tz).date_naive();
        let mut forecast = None;
        for day in [Some(today), today.checked_add_days(Days::new(1))]
            .into_iter()
            .flatten()
        {
            if let Some(f) = self.forecast(queries, day, today).await
                && let Some(w) = f.best_window(self.min_w, now)
            {
                forecast = Some(w);
                break;
            }
        }
        let covers_now = forecast.as_ref().is_some_and(|w| w.start <= now);
        match measured_surplus_w {
            Some(w) if w >= self.min_w && !covers_now => Some(SurplusWindow {
                start: now,
                end: now + MEASURED_FOR,
                kwh: w * MEASURED_FOR.num_minutes() as f64 / 60.0 / 1000.0,
                peak_w: w,
            }),
            _ => forecast,
        }
    }

    /// One look: offers the next window (once: the journal skips a window an open
    /// offer already covers) and accepts the commitments that fit.
    pub(crate) async fn look(
        &mut self,
        journal: &Arc<Journal>,
        queries: &Queries,
        snapshot: &LiveSnapshot,
    ) -> ledger::Result<()> {
        let now = snapshot.ts;
        let measured = (!snapshot.stale).then_some(snapshot.site.surplus_w);
        let window = self.next_window(queries, now, measured).await;
        let t = dashboards::Catalog::for_lang(self.lang);
        let hm = |at: DateTime<Utc>| at.with_timezone(&self.tz).format("%H:%M").to_string();
        let description = window.as_ref().map(|w| {
            t.tf(
                "plan.surplus_offer",
                &[("start", &hm(w.start)), ("end", &hm(w.end))],
            )
        });
        let journal = journal.clone();
        tokio::task::spawn_blocking(move || {
            if let (Some(w), Some(description)) = (window, description)
                && let Some(entry) =
                    journal.open_surplus_offer(w.start, w.end, w.kwh, &description, now)?
            {
                tracing::info!(seq = entry.seq, start = %w.start, end = %w.end, kwh = w.kwh, "solar surplus offered");
            }
            for entry in journal.accept_surplus_commitments(now)? {
                tracing::info!(seq = entry.seq, "load shift into the surplus accepted");
            }
            Ok(())
        })
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "surplus offers task failed");
            Ok(())
        })
    }
}

/// Looks every [`LOOK_EVERY`] until `cancel`.
pub(crate) async fn run(
    mut watch: SurplusWatch,
    live: watch::Receiver<Arc<LiveSnapshot>>,
    journal: Arc<Journal>,
    queries: Queries,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(LOOK_EVERY);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let snapshot = live.borrow().clone();
        if snapshot.devices.is_empty() {
            continue;
        }
        if let Err(e) = watch.look(&journal, &queries, &snapshot).await {
            tracing::error!(error = %e, "surplus offers not updated");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use chrono::TimeZone;
    use chrono_tz::Europe::Paris;
    use ingest::history::{History, HistoryOptions};
    use ingest::reading::Reading;
    use ledger::{CommitmentState, IntentState, NODE_AUTHOR, NewCommitment, Role};
    use sensors::model::Metric;

    use super::*;

    fn paris(day: NaiveDate, h: u32, m: u32) -> DateTime<Utc> {
        Paris
            .from_local_datetime(&day.and_hms_opt(h, m, 0).unwrap())
            .single()
            .unwrap()
            .with_timezone(&Utc)
    }

    /// Ten June days in Paris: the roof gives 3,000 W from 10:00 to 16:00, the
    /// site draws 1,000 W: a forecast surplus of 2,000 W for six hours, 12 kWh.
    async fn sunny_history(dir: &std::path::Path, first: NaiveDate, n: u64) -> Queries {
        let history = History::open(dir, HistoryOptions::default()).unwrap();
        let mut readings = Vec::new();
        for d in 0..n {
            let day = first + Days::new(d);
            let mut t = paris(day, 0, 0);
            while t < paris(day + Days::new(1), 0, 0) {
                let sun = t >= paris(day, 10, 0) && t < paris(day, 16, 0);
                let pv = if sun { 3000.0 } else { 0.0 };
                for (device, value) in [("pv", pv), ("grid", 1000.0 - pv)] {
                    readings.push(Reading {
                        ts_ms: t.timestamp_millis(),
                        device: device.into(),
                        metric: Metric::PowerW,
                        value,
                    });
                }
                t += chrono::Duration::minutes(1);
            }
        }
        history.add_pending(None, &readings).unwrap();
        let device = |id: &str, role: &str| -> sensors::config::DeviceConfig {
            serde_json::from_value(serde_json::json!({
                "id": id, "role": role, "profile": "generic-json",
                "mqtt": {"topic": format!("t/{id}")}
            }))
            .unwrap()
        };
        Queries::new(history, &[device("pv", "pv"), device("grid", "grid")], &[])
            .await
            .unwrap()
    }

    fn snapshot(ts: DateTime<Utc>, surplus_w: f64, stale: bool) -> LiveSnapshot {
        let mut s = query::engine::empty_snapshot(ts);
        s.site.surplus_w = surplus_w;
        s.stale = stale;
        s
    }

    fn surplus_offers(journal: &Journal, at: DateTime<Utc>) -> Vec<ledger::Intent> {
        journal
            .intents(at)
            .unwrap()
            .into_iter()
            .filter(|i| i.author == NODE_AUTHOR && i.class == ledger::SURPLUS_CLASS)
            .collect()
    }

    /// Thursday 18 June 2026, a history of `days` sunny days before it, an empty
    /// journal, and the watch (threshold 500 W) in `lang`.
    struct Fixture {
        _dir: tempfile::TempDir,
        day: NaiveDate,
        queries: Queries,
        journal: Arc<Journal>,
        watch: SurplusWatch,
    }

    async fn fixture(days: u64, lang: dashboards::Lang) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 6, 18).unwrap();
        let queries = sunny_history(dir.path(), day - Days::new(days), days).await;
        Fixture {
            _dir: dir,
            day,
            queries,
            journal: Arc::new(Journal::open_in_memory().unwrap()),
            watch: SurplusWatch::new(500.0, Paris, lang),
        }
    }

    #[tokio::test]
    async fn the_forecast_window_is_offered_once_and_load_shifts_into_it_accepted() {
        let Fixture {
            _dir,
            day,
            queries,
            journal,
            mut watch,
        } = fixture(10, dashboards::Lang::Fr).await;
        let morning = paris(day, 8, 0);
        journal
            .create_user(
                "bea",
                &[Role::Resident],
                "a long enough password",
                "command-line",
                morning,
            )
            .unwrap();

        // At 08:00, nothing measured yet: today's forecast window is offered.
        watch
            .look(&journal, &queries, &snapshot(morning, 0.0, false))
            .await
            .unwrap();
        let offers = surplus_offers(&journal, morning);
        assert_eq!(offers.len(), 1, "{offers:#?}");
        let offer = &offers[0];
        assert_eq!(
            (offer.window_start, offer.window_end),
            (Some(paris(day, 10, 0)), Some(paris(day, 16, 0)))
        );
        assert_eq!(
            offer.quantity,
            ledger::Quantity::from_centi(1200),
            "2,000 W for 6 h"
        );
        assert!(
            offer.description.contains("10:00") && offer.description.contains("16:00"),
            "{}",
            offer.description
        );
        assert!(
            offer.description.starts_with("Surplus solaire"),
            "in the site's language"
        );

        // Bea commits to shift her washing machine into it; the next look accepts,
        // and offers nothing twice.
        let c = journal
            .propose_commitment(
                "bea",
                offer.id,
                &NewCommitment {
                    quantity: 1.5,
                    note: "lave-linge".into(),
                },
                morning,
            )
            .unwrap();
        let later = paris(day, 8, 30);
        watch
            .look(&journal, &queries, &snapshot(later, 0.0, false))
            .await
            .unwrap();
        assert_eq!(surplus_offers(&journal, later).len(), 1);
        let c = journal.commitment(c.seq).unwrap().unwrap();
        assert_eq!(c.state, CommitmentState::Accepted);
        assert_eq!(c.provider, NODE_AUTHOR);
        assert!(journal.verify().unwrap().is_intact());
    }

    #[tokio::test]
    async fn a_surplus_measured_now_and_not_forecast_is_offered_for_half_an_hour() {
        let Fixture {
            _dir,
            day,
            queries,
            journal,
            mut watch,
        } = fixture(10, dashboards::Lang::En).await;

        // 18:00: the forecast's sun is over for today, yet 1,500 W spare are measured.
        let evening = paris(day, 18, 0);
        watch
            .look(&journal, &queries, &snapshot(evening, 1500.0, false))
            .await
            .unwrap();
        let offers = surplus_offers(&journal, evening);
        assert_eq!(offers.len(), 1, "{offers:#?}");
        assert_eq!(
            (offers[0].window_start, offers[0].window_end),
            (Some(evening), Some(evening + MEASURED_FOR))
        );
        assert_eq!(
            offers[0].quantity,
            ledger::Quantity::from_centi(75),
            "1,500 W for 30 min"
        );
        // Under the threshold, or from a stale view, nothing is measured: at 19:00
        // tomorrow's forecast window is offered instead.
        let seven = paris(day, 19, 0);
        watch
            .look(&journal, &queries, &snapshot(seven, 1500.0, true))
            .await
            .unwrap();
        let open: Vec<_> = surplus_offers(&journal, seven)
            .into_iter()
            .filter(|i| i.state == IntentState::Open)
            .collect();
        assert_eq!(open.len(), 1, "{open:#?}");
        let tomorrow = day + Days::new(1);
        assert_eq!(
            (open[0].window_start, open[0].window_end),
            (Some(paris(tomorrow, 10, 0)), Some(paris(tomorrow, 16, 0)))
        );
    }

    #[tokio::test]
    async fn without_history_nothing_is_offered() {
        let Fixture {
            _dir,
            day,
            queries,
            journal,
            mut watch,
        } = fixture(2, dashboards::Lang::Fr).await;
        let now = paris(day, 8, 0);
        watch
            .look(&journal, &queries, &snapshot(now, 0.0, false))
            .await
            .unwrap();
        assert!(surplus_offers(&journal, now).is_empty());
    }
}
