//! The node's needs for its services shed for hours (DESIGN.md §11, "from the
//! energy side"): a service the allocation shed for `[planning] shed_need_hours`
//! or more since the start of the week (Monday, on the site's clocks) opens a
//! collective need, written by the node, of class `load-shift`: the energy it was
//! refused this week, in kWh, for members to shift their own loads away from its
//! hours (or for the assembly to see that its priorities, or the roof, fall
//! short). One a service a week: it lapses at the week's end, and the node opens
//! none while one for that service is open.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, Days, Utc};
use chrono_tz::Tz;
use ledger::Journal;
use query::charts::{Bucket, local_midnight, service_energy};
use query::history_session::Queries;
use query::live::LiveSnapshot;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often the node looks (on the real clock).
const LOOK_EVERY: Duration = Duration::from_secs(60);

pub(crate) struct ShedWatch {
    hours: f64,
    tz: Tz,
    lang: dashboards::Lang,
}

impl ShedWatch {
    pub(crate) fn new(hours: f64, tz: Tz, lang: dashboards::Lang) -> ShedWatch {
        ShedWatch { hours, tz, lang }
    }

    /// The week holding `now`, on the site's clocks: its first instant, and the
    /// first of the next.
    fn week(&self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let today = now.with_timezone(&self.tz).date_naive();
        let monday =
            today.checked_sub_days(Days::new(u64::from(today.weekday().num_days_from_monday())))?;
        let next = monday.checked_add_days(Days::new(7))?;
        Some((
            local_midnight(self.tz, monday),
            local_midnight(self.tz, next),
        ))
    }

    /// One look at `now`: opens the needs due.
    pub(crate) async fn look(
        &self,
        journal: &Arc<Journal>,
        queries: &Queries,
        now: DateTime<Utc>,
    ) -> ledger::Result<()> {
        let Some((start, next_week)) = self.week(now) else {
            return Ok(());
        };
        // To the last whole quarter hour, so the history is read in quarter hours.
        let quarter = 15 * 60 * 1000;
        let end_ms = now.timestamp_millis() / quarter * quarter;
        let Some(end) = DateTime::from_timestamp_millis(end_ms).filter(|e| *e > start) else {
            return Ok(());
        };
        let bucket = Bucket {
            start,
            end,
            local_start: start.with_timezone(&self.tz).naive_local(),
        };
        let series = match service_energy(queries, &[bucket]).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "shed services not read");
                return Ok(());
            }
        };
        let t = dashboards::Catalog::for_lang(self.lang);
        for s in series
            .into_iter()
            .filter(|s| s.total.shed_hours >= self.hours)
        {
            let description = t.tf(
                "plan.shed_need",
                &[
                    ("service", &s.name),
                    ("hours", &format!("{:.0}", s.total.shed_hours.floor())),
                ],
            );
            let kwh = s.total.shed_wh / 1000.0;
            let journal = journal.clone();
            let written = tokio::task::spawn_blocking(move || {
                journal.open_shed_need(&s.id, kwh, &description, next_week, now)
            })
            .await;
            match written {
                Ok(Ok(Some(entry))) => {
                    tracing::warn!(seq = entry.seq, kwh, "service shed for hours: need opened")
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "shed need not opened"),
                Err(e) => tracing::error!(error = %e, "shed need task failed"),
            }
        }
        Ok(())
    }
}

/// Looks every [`LOOK_EVERY`] until `cancel`, on the node's clock.
pub(crate) async fn run(
    watch: ShedWatch,
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
        let now = live.borrow().ts;
        if let Err(e) = watch.look(&journal, &queries, now).await {
            tracing::error!(error = %e, "shed needs not updated");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use chrono::{NaiveDate, TimeZone};
    use chrono_tz::Europe::Paris;
    use ingest::history::{History, HistoryOptions};
    use ingest::reading::Reading;
    use ledger::{IntentState, NODE_AUTHOR};
    use sensors::model::Metric;

    use super::*;

    fn paris(day: NaiveDate, h: u32, m: u32) -> DateTime<Utc> {
        Paris
            .from_local_datetime(&day.and_hms_opt(h, m, 0).unwrap())
            .single()
            .unwrap()
            .with_timezone(&Utc)
    }

    /// Monday 15 June 2026: the school's water heater asks 2,000 W from 08:00 to
    /// 15:00 and is shed all that time (7 h, 14 kWh refused); the laundry asks
    /// 1,000 W and is served.
    async fn shed_monday(dir: &std::path::Path) -> (NaiveDate, Queries) {
        let monday = NaiveDate::from_ymd_opt(2026, 6, 15).unwrap();
        let history = History::open(dir, HistoryOptions::default()).unwrap();
        let mut readings = Vec::new();
        let mut t = paris(monday, 8, 0);
        while t < paris(monday, 15, 0) {
            for (device, metric, value) in [
                ("service:school", Metric::DemandW, 2000.0),
                ("service:school", Metric::AllocatedW, 0.0),
                ("service:school", Metric::Shed, 1.0),
                ("service:laundry", Metric::DemandW, 1000.0),
                ("service:laundry", Metric::AllocatedW, 1000.0),
                ("service:laundry", Metric::Shed, 0.0),
            ] {
                readings.push(Reading {
                    ts_ms: t.timestamp_millis(),
                    device: device.into(),
                    metric,
                    value,
                });
            }
            t += chrono::Duration::minutes(1);
        }
        history.add_pending(None, &readings).unwrap();
        let service = |id: &str, name: &str, tier: u32| -> query::config::ServiceConfig {
            serde_json::from_value(serde_json::json!({
                "id": id, "name": name, "demand_w": 1000.0, "tier": tier
            }))
            .unwrap()
        };
        let services = [
            service("laundry", "Laverie", 1),
            service("school", "Chauffe-eau de l'école", 2),
        ];
        (monday, Queries::new(history, &[], &services).await.unwrap())
    }

    fn node_needs(journal: &Journal, at: DateTime<Utc>) -> Vec<ledger::Intent> {
        journal
            .intents(at)
            .unwrap()
            .into_iter()
            .filter(|i| i.author == NODE_AUTHOR)
            .collect()
    }

    /// Shed seven hours this week, over a threshold of six: one need for the
    /// school's service (its 14 kWh, lapsing at the week's end), none for the
    /// laundry that was served, none twice, and the week after none at all.
    #[tokio::test]
    async fn a_service_shed_for_hours_this_week_opens_one_need() {
        let dir = tempfile::tempdir().unwrap();
        let (monday, queries) = shed_monday(dir.path()).await;
        let journal = Arc::new(Journal::open_in_memory().unwrap());
        let watch = ShedWatch::new(6.0, Paris, dashboards::Lang::Fr);
        // Monday 12:00: four hours shed so far, under the threshold.
        let noon = paris(monday, 12, 0);
        watch.look(&journal, &queries, noon).await.unwrap();
        assert!(node_needs(&journal, noon).is_empty());

        let wednesday = paris(monday + Days::new(2), 12, 7);
        watch.look(&journal, &queries, wednesday).await.unwrap();
        let needs = node_needs(&journal, wednesday);
        assert_eq!(needs.len(), 1, "{needs:#?}");
        let need = &needs[0];
        assert_eq!(need.class, ledger::SHED_CLASS);
        assert_eq!(need.device.as_deref(), Some("service:school"));
        assert!(need.collective);
        assert_eq!(need.direction, ledger::Direction::Need);
        assert_eq!(need.unit, ledger::Unit::Kwh);
        assert_eq!(
            need.quantity,
            ledger::Quantity::from_centi(1400),
            "2,000 W for 7 h"
        );
        assert_eq!(need.expires_at, Some(paris(monday + Days::new(7), 0, 0)));
        assert!(
            need.description.contains("Chauffe-eau de l'école") && need.description.contains("7 h"),
            "{}",
            need.description
        );
        // Another look writes nothing more.
        watch
            .look(&journal, &queries, wednesday + chrono::Duration::minutes(1))
            .await
            .unwrap();
        assert_eq!(node_needs(&journal, wednesday).len(), 1);

        // The next week: the need has lapsed, and nothing was shed since Monday.
        let next = paris(monday + Days::new(8), 12, 0);
        watch.look(&journal, &queries, next).await.unwrap();
        let needs = node_needs(&journal, next);
        assert_eq!(needs.len(), 1);
        assert_eq!(needs[0].state, IntentState::Expired);
        assert!(journal.verify().unwrap().is_intact());
    }

    /// Over a higher threshold, nothing is opened.
    #[tokio::test]
    async fn under_the_threshold_nothing_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let (monday, queries) = shed_monday(dir.path()).await;
        let journal = Arc::new(Journal::open_in_memory().unwrap());
        let watch = ShedWatch::new(8.0, Paris, dashboards::Lang::En);
        let friday = paris(monday + Days::new(4), 18, 0);
        watch.look(&journal, &queries, friday).await.unwrap();
        assert!(node_needs(&journal, friday).is_empty());
    }
}
