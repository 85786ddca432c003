//! The node's offers of solar surplus on the planning board (DESIGN.md §11, "energy
//! in the same flow"): the window of today's (or else tomorrow's) surplus forecast
//! from the history ([`query::surplus`]), or the surplus measured now when the
//! forecast did not see it coming, becomes an offer of class `kwh-surplus` written by
//! the node; households commit to shift a load into it, and the node accepts what
//! fits. Once a window is over, the node certifies each load shift committed into
//! it from what the household's meters drew above their baseline
//! ([`query::load_shift`]); the wall shows the next window in one line.

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
/// How long after a window the node waits before measuring it: time for the last
/// minutes' readings to come in.
const SETTLE: chrono::Duration = chrono::Duration::minutes(5);

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
        let writer = journal.clone();
        tokio::task::spawn_blocking(move || {
            let journal = writer;
            if let (Some(w), Some(description)) = (window, description)
                && let Some(entry) =
                    journal.open_surplus_offer(w.start, w.end, w.kwh, &description, now)?
            {
                tracing::info!(seq = entry.seq, start = %w.start, end = %w.end, kwh = w.kwh, "solar surplus offered");
            }
            for entry in journal.accept_surplus_commitments(now)? {
                tracing::info!(seq = entry.seq, "load shift into the surplus accepted");
            }
            Ok::<(), ledger::Error>(())
        })
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "surplus offers task failed");
            Ok(())
        })?;
        self.certify_load_shifts(journal, queries, now).await
    }

    /// Certifies the load shifts whose window ended [`SETTLE`] before `now`: what
    /// the receiver's household's meters drew in it above their baseline, or why
    /// nothing could be measured.
    async fn certify_load_shifts(
        &self,
        journal: &Arc<Journal>,
        queries: &Queries,
        now: DateTime<Utc>,
    ) -> ledger::Result<()> {
        let due = {
            let journal = journal.clone();
            tokio::task::spawn_blocking(move || journal.load_shifts_to_certify(now - SETTLE))
                .await
                .unwrap_or_else(|e| {
                    tracing::error!(error = %e, "load shifts not read");
                    Ok(Vec::new())
                })?
        };
        for (commitment, offer) in due {
            let (Some(start), Some(end)) = (offer.window_start, offer.window_end) else {
                continue;
            };
            let household = queries
                .households()
                .of_member(&commitment.receiver)
                .cloned();
            let mut certification = ledger::NewLoadShiftCertification {
                commitment: commitment.id,
                household: household.as_ref().map(|h| h.id.clone()),
                household_members: household
                    .as_ref()
                    .map(|h| h.members.clone())
                    .unwrap_or_default(),
                meters: household
                    .as_ref()
                    .map(|h| h.meters.clone())
                    .unwrap_or_default(),
                basis: ledger::LoadShiftBasis::NoMeter,
                measured_kwh: None,
                baseline_kwh: None,
                baseline_days: 0,
            };
            if !certification.meters.is_empty() {
                let measure = match query::load_shift::measure(
                    queries,
                    self.tz,
                    &certification.meters,
                    start,
                    end,
                )
                .await
                {
                    Ok(m) => m,
                    Err(e) => {
                        // Tried again at the next look.
                        tracing::warn!(error = %e, commitment = commitment.id, "load shift not measured");
                        continue;
                    }
                };
                // Watt-hours are all the meters resolve.
                let wh = |kwh: f64| (kwh * 1000.0).round() / 1000.0;
                certification.measured_kwh = measure.measured_kwh.map(wh);
                certification.baseline_kwh = measure.baseline_kwh.map(wh);
                certification.baseline_days = measure.baseline_days;
                certification.basis = match (measure.measured_kwh, measure.baseline_kwh) {
                    (None, _) => ledger::LoadShiftBasis::NoReadings,
                    (Some(_), None) => ledger::LoadShiftBasis::NoBaseline,
                    (Some(_), Some(_)) => ledger::LoadShiftBasis::Metered,
                };
                if certification.basis == ledger::LoadShiftBasis::NoReadings {
                    certification.baseline_kwh = None;
                }
            }
            let journal = journal.clone();
            let written = tokio::task::spawn_blocking(move || {
                journal.certify_load_shift(&certification, now)
            })
            .await;
            match written {
                Ok(Ok(entry)) => tracing::info!(
                    seq = entry.seq,
                    commitment = commitment.id,
                    "load shift certified"
                ),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, commitment = commitment.id, "load shift not certified")
                }
                Err(e) => tracing::error!(error = %e, "load shift certification task failed"),
            }
        }
        Ok(())
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

    /// Adds `name` to the journal as a resident at `at`.
    fn resident(journal: &Journal, name: &str, at: DateTime<Utc>) {
        journal
            .create_user(
                name,
                &[Role::Resident],
                "a long enough password",
                "command-line",
                at,
            )
            .unwrap();
    }

    /// A configured MQTT device of `role`.
    fn device(id: &str, role: &str) -> sensors::config::DeviceConfig {
        serde_json::from_value(serde_json::json!({
            "id": id, "role": role, "profile": "generic-json",
            "mqtt": {"topic": format!("t/{id}")}
        }))
        .unwrap()
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
        resident(&journal, "bea", morning);

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

    /// Two households on the sunny site of [`sunny_history`] (`days` days before
    /// `day`): each meter draws 300 W, day and night, from `meter_days` days
    /// before `day`; on `day`, the Martins' washing machine draws 2,000 W more from
    /// 11:00 to 11:45 (1.5 kWh), the Durands' does not run. Bea is a Martin, Ivo a
    /// Durand, Zoe of no household.
    async fn households_history(
        dir: &std::path::Path,
        day: NaiveDate,
        days: u64,
        meter_days: u64,
    ) -> Queries {
        let history = History::open(dir, HistoryOptions::default()).unwrap();
        let mut readings = Vec::new();
        let mut t = paris(day - Days::new(days), 0, 0);
        while t < paris(day, 16, 0) {
            let sun = t.with_timezone(&Paris).time()
                >= chrono::NaiveTime::from_hms_opt(10, 0, 0).unwrap()
                && t.with_timezone(&Paris).time()
                    < chrono::NaiveTime::from_hms_opt(16, 0, 0).unwrap();
            let washing = t >= paris(day, 11, 0) && t < paris(day, 11, 45);
            let pv = if sun { 3000.0 } else { 0.0 };
            let metered = t >= paris(day - Days::new(meter_days), 0, 0);
            for (device, value) in [
                ("pv", pv),
                ("grid", 1000.0 - pv),
                ("martin", 300.0 + if washing { 2000.0 } else { 0.0 }),
                ("durand", 300.0),
            ] {
                if !metered && (device == "martin" || device == "durand") {
                    continue;
                }
                readings.push(Reading {
                    ts_ms: t.timestamp_millis(),
                    device: device.into(),
                    metric: Metric::PowerW,
                    value,
                });
            }
            t += chrono::Duration::minutes(1);
        }
        history.add_pending(None, &readings).unwrap();
        let devices = [
            device("pv", "pv"),
            device("grid", "grid"),
            device("martin", "load"),
            device("durand", "load"),
        ];
        let queries = Queries::new(history, &devices, &[]).await.unwrap();
        let household = |id: &str, member: &str| query::consent::HouseholdConfig {
            id: id.into(),
            name: None,
            members: vec![member.into()],
            meters: vec![id.into()],
        };
        let households = query::consent::Households::new(
            &[household("martin", "bea"), household("durand", "ivo")],
            queries.visibility(),
        )
        .unwrap();
        queries.with_households(households)
    }

    /// The whole load-shift flow on simulated meters: the node offers today's
    /// window, Bea, Ivo and Zoe commit into it; once the window is over (and not
    /// before), the node certifies from the meters: Bea's 1.5 kWh above her
    /// household's baseline fulfil her commitment, Ivo's washing machine that did
    /// not run gives nothing, Zoe has no meter to read; and `verify` replays it.
    #[tokio::test]
    async fn load_shifts_are_certified_from_the_household_meters_once_the_window_is_over() {
        let dir = tempfile::tempdir().unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 6, 18).unwrap();
        let queries = households_history(dir.path(), day, 10, 10).await;
        let journal = Arc::new(Journal::open_in_memory().unwrap());
        let mut watch = SurplusWatch::new(500.0, Paris, dashboards::Lang::En);
        let morning = paris(day, 8, 0);
        for name in ["bea", "ivo", "zoe"] {
            resident(&journal, name, morning);
        }
        watch
            .look(&journal, &queries, &snapshot(morning, 0.0, false))
            .await
            .unwrap();
        let offer = surplus_offers(&journal, morning).remove(0);
        let commit = |who: &str, kwh: f64| {
            journal
                .propose_commitment(
                    who,
                    offer.id,
                    &NewCommitment {
                        quantity: kwh,
                        note: "lave-linge".into(),
                    },
                    morning,
                )
                .unwrap()
                .seq
        };
        let (bea, ivo, zoe) = (commit("bea", 1.5), commit("ivo", 1.5), commit("zoe", 1.0));

        // Looks during the window accept, and certify nothing yet.
        let noon = paris(day, 12, 0);
        watch
            .look(&journal, &queries, &snapshot(noon, 2000.0, false))
            .await
            .unwrap();
        for c in [bea, ivo, zoe] {
            let c = journal.commitment(c).unwrap().unwrap();
            assert_eq!(c.state, CommitmentState::Accepted);
            assert!(c.certification.is_none());
        }

        // After the window (16:00) and the settling time: certified.
        let evening = paris(day, 16, 10);
        watch
            .look(&journal, &queries, &snapshot(evening, 0.0, false))
            .await
            .unwrap();
        let bea = journal.commitment(bea).unwrap().unwrap();
        assert_eq!(bea.state, CommitmentState::Fulfilled, "{bea:#?}");
        let cert = bea.certification.unwrap();
        assert_eq!(cert.basis, ledger::LoadShiftBasis::Metered);
        assert_eq!(cert.baseline_days, 7);
        // 300 W over the six hours is 1.8 kWh on an ordinary day; 3.3 today.
        let (measured, baseline) = (cert.measured_kwh.unwrap(), cert.baseline_kwh.unwrap());
        assert!((baseline - 1.8).abs() < 0.01, "baseline {baseline}");
        assert!((measured - 3.3).abs() < 0.01, "measured {measured}");
        assert_eq!(cert.quantity, ledger::Quantity::from_centi(150));

        let ivo = journal.commitment(ivo).unwrap().unwrap();
        assert_eq!(ivo.state, CommitmentState::Certified, "{ivo:#?}");
        assert_eq!(ivo.fulfilled, ledger::Quantity::ZERO);
        assert_eq!(ivo.certification.unwrap().quantity, ledger::Quantity::ZERO);

        let zoe = journal.commitment(zoe).unwrap().unwrap();
        assert_eq!(zoe.state, CommitmentState::Certified);
        assert_eq!(
            zoe.certification.unwrap().basis,
            ledger::LoadShiftBasis::NoMeter
        );

        // A second look writes nothing more.
        let before = journal.verify().unwrap();
        watch
            .look(
                &journal,
                &queries,
                &snapshot(evening + chrono::Duration::minutes(5), 0.0, false),
            )
            .await
            .unwrap();
        assert!(journal.verify().unwrap().is_intact());
        assert_eq!(journal.verify().unwrap().entries, before.entries);
    }

    /// With fewer days of the household's meter than a baseline needs, the node
    /// says so and counts nothing, whatever the meter drew.
    #[tokio::test]
    async fn without_enough_days_of_a_household_meter_nothing_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 6, 18).unwrap();
        // Ten days of the site, so a forecast is made; two of the meters.
        let queries = households_history(dir.path(), day, 10, 2).await;
        let journal = Arc::new(Journal::open_in_memory().unwrap());
        let mut watch = SurplusWatch::new(500.0, Paris, dashboards::Lang::Fr);
        let morning = paris(day, 8, 0);
        resident(&journal, "bea", morning);
        watch
            .look(&journal, &queries, &snapshot(morning, 0.0, false))
            .await
            .unwrap();
        let offer = surplus_offers(&journal, morning).remove(0);
        let c = journal
            .propose_commitment(
                "bea",
                offer.id,
                &NewCommitment {
                    quantity: 1.5,
                    note: String::new(),
                },
                morning,
            )
            .unwrap()
            .seq;
        watch
            .look(&journal, &queries, &snapshot(paris(day, 9, 0), 0.0, false))
            .await
            .unwrap();
        watch
            .look(
                &journal,
                &queries,
                &snapshot(paris(day, 16, 30), 0.0, false),
            )
            .await
            .unwrap();
        let c = journal.commitment(c).unwrap().unwrap();
        let cert = c.certification.unwrap();
        assert_eq!(cert.basis, ledger::LoadShiftBasis::NoBaseline, "{cert:?}");
        assert!(cert.measured_kwh.is_some());
        assert_eq!(c.fulfilled, ledger::Quantity::ZERO);
        assert_eq!(c.state, CommitmentState::Certified);
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
