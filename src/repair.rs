//! The node's own needs on the planning board (DESIGN.md §11, "from the energy
//! side"): a device down for longer than `[planning] repair_after` (an hour by
//! default) opens a collective need to repair it, written by the node itself
//! (author `node`), in the site's language; once the device is back and the repair
//! fulfilled (a contribution naming a commitment on the need, validated by peers),
//! the node closes it. A device back without a validated repair leaves the need
//! open until it is fulfilled or expires (30 days); a need fulfilled while the
//! device is still down stays open until the device is back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ledger::{IntentState, Journal};
use query::live::LiveSnapshot;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often the devices are looked at.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// What the watch remembers between two looks.
pub(crate) struct RepairWatch {
    repair_after: chrono::Duration,
    lang: dashboards::Lang,
    /// Since when each device has been seen down (its last reading, or the first
    /// look that found it down when it never answered).
    down_since: HashMap<String, DateTime<Utc>>,
}

impl RepairWatch {
    pub(crate) fn new(repair_after: Duration, lang: dashboards::Lang) -> RepairWatch {
        RepairWatch {
            repair_after: chrono::Duration::from_std(repair_after)
                .unwrap_or(chrono::Duration::hours(1)),
            lang,
            down_since: HashMap::new(),
        }
    }

    /// Looks at every device of `snapshot` (its `ts` is the node's clock): opens the
    /// repair needs due, closes those whose device is back and repair fulfilled.
    pub(crate) fn check(
        &mut self,
        journal: &Journal,
        snapshot: &LiveSnapshot,
    ) -> ledger::Result<()> {
        let now = snapshot.ts;
        let mut open: Option<Vec<ledger::Intent>> = None;
        for device in &snapshot.devices {
            let id = device.id.to_string();
            if device.healthy {
                self.down_since.remove(&id);
                let open = match &mut open {
                    Some(open) => open,
                    None => open.insert(repair_needs(journal, now)?),
                };
                let fulfilled = open
                    .iter()
                    .any(|i| i.device.as_deref() == Some(id.as_str()) && i.fulfilled >= i.quantity);
                if fulfilled && let Some(entry) = journal.close_repair_need(&id, now)? {
                    tracing::info!(device = %id, seq = entry.seq, "device back and repaired: repair need closed");
                }
                continue;
            }
            let since = *self
                .down_since
                .entry(id.clone())
                .or_insert_with(|| device.last_seen.unwrap_or(now));
            if now - since < self.repair_after {
                continue;
            }
            let description = dashboards::Catalog::for_lang(self.lang)
                .tf("plan.repair_need", &[("device", &device.name)]);
            if let Some(entry) = journal.open_repair_need(&id, &description, now)? {
                tracing::warn!(device = %id, seq = entry.seq, %since, "device down: repair need opened");
            }
        }
        Ok(())
    }
}

/// The open repair needs the node opened.
fn repair_needs(journal: &Journal, now: DateTime<Utc>) -> ledger::Result<Vec<ledger::Intent>> {
    Ok(journal
        .intents(now)?
        .into_iter()
        .filter(|i| i.device.is_some() && i.state == IntentState::Open)
        .collect())
}

/// Runs the watch on each new snapshot, at most every [`CHECK_EVERY`], until
/// `cancel`.
pub(crate) async fn run(
    mut watch: RepairWatch,
    mut live: watch::Receiver<Arc<LiveSnapshot>>,
    journal: Arc<Journal>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let snapshot = live.borrow_and_update().clone();
        if snapshot.devices.is_empty() {
            continue;
        }
        let journal = journal.clone();
        let result = tokio::task::spawn_blocking(move || {
            let outcome = watch.check(&journal, &snapshot);
            (watch, outcome)
        })
        .await;
        match result {
            Ok((back, outcome)) => {
                watch = back;
                if let Err(e) = outcome {
                    tracing::error!(error = %e, "repair needs not updated");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "repair watch stopped");
                return;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use ledger::{
        Category, CommitmentState, NODE_AUTHOR, NewCommitment, NewContribution, Role, Verdict,
    };
    use query::live::DeviceLive;

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// A community: ana (assembly and resident), bea and carl (residents).
    fn community(t0: DateTime<Utc>) -> Journal {
        let journal = Journal::open_in_memory().unwrap();
        let members = [
            ("ana", vec![Role::Resident, Role::Assembly]),
            ("bea", vec![Role::Resident]),
            ("carl", vec![Role::Resident]),
        ];
        for (name, roles) in members {
            journal
                .create_user(name, &roles, "a long enough password", "command-line", t0)
                .unwrap();
        }
        journal
    }

    /// The node's view at `ts` of the school's roof inverter, simulated up or down
    /// (last heard at `last_seen`).
    fn snapshot(ts: DateTime<Utc>, healthy: bool, last_seen: DateTime<Utc>) -> LiveSnapshot {
        let mut snapshot = query::engine::empty_snapshot(ts);
        snapshot.devices = vec![DeviceLive {
            id: "roof-school".into(),
            name: "l'onduleur du toit de l'école".into(),
            role: "pv",
            power_w: healthy.then_some(1200.0),
            last_seen: Some(last_seen),
            healthy,
            state: if healthy {
                ingest::metrics::HealthState::Up
            } else {
                ingest::metrics::HealthState::Down
            },
        }];
        snapshot
    }

    #[test]
    fn a_device_down_for_an_hour_opens_one_repair_need_closed_once_back_and_repaired() {
        let t0 = at("2026-12-07T08:00:00Z");
        let journal = community(t0);
        let mut watch = RepairWatch::new(Duration::from_secs(3600), dashboards::Lang::Fr);
        let minutes = |m: i64| t0 + chrono::Duration::minutes(m);
        let needs = |at| repair_needs(&journal, at).unwrap();

        // Up, then silent since 08:00: nothing asked before the hour is out.
        watch.check(&journal, &snapshot(t0, true, t0)).unwrap();
        watch
            .check(&journal, &snapshot(minutes(30), false, t0))
            .unwrap();
        assert!(needs(minutes(30)).is_empty());
        // Past the hour: one need, the node's, in the site's language.
        watch
            .check(&journal, &snapshot(minutes(61), false, t0))
            .unwrap();
        watch
            .check(&journal, &snapshot(minutes(70), false, t0))
            .unwrap();
        let open = needs(minutes(70));
        assert_eq!(open.len(), 1, "not opened twice: {open:?}");
        let need = &open[0];
        assert_eq!(need.author, NODE_AUTHOR);
        assert_eq!(need.device.as_deref(), Some("roof-school"));
        assert_eq!(need.class, ledger::REPAIR_CLASS);
        assert!(need.collective);
        assert_eq!(need.description, "Réparer l'onduleur du toit de l'école");

        // Back without a repair recorded: the need stays open.
        watch
            .check(&journal, &snapshot(minutes(80), true, minutes(80)))
            .unwrap();
        assert_eq!(needs(minutes(80)).len(), 1);

        // bea commits, the assembly accepts for the node, she records the repair
        // naming the commitment and two peers validate it.
        let commitment = journal
            .propose_commitment(
                "bea",
                need.id,
                &NewCommitment {
                    quantity: 2.0,
                    note: String::new(),
                },
                minutes(90),
            )
            .unwrap()
            .seq;
        journal
            .accept_commitment("ana", commitment, minutes(91))
            .unwrap();
        let contribution = journal
            .record_contribution_fulfilling(
                "bea",
                &NewContribution {
                    category: Category::Repair,
                    hours: 2.0,
                    date: minutes(120).date_naive(),
                    description: "Changé le fusible de l'onduleur".into(),
                },
                commitment,
                minutes(120),
            )
            .unwrap()
            .seq;
        for peer in ["ana", "carl"] {
            journal
                .attest(contribution, peer, Verdict::Approve, "", minutes(121))
                .unwrap();
        }
        assert_eq!(
            journal.commitment(commitment).unwrap().unwrap().state,
            CommitmentState::Fulfilled
        );
        // Fulfilled, but the device is down again: still open.
        watch
            .check(&journal, &snapshot(minutes(125), false, minutes(80)))
            .unwrap();
        assert_eq!(needs(minutes(125)).len(), 1);
        // Back and repaired: the node closes it, and opens no other.
        watch
            .check(&journal, &snapshot(minutes(130), true, minutes(130)))
            .unwrap();
        assert!(needs(minutes(130)).is_empty());
        let closed = journal.intent(need.id, minutes(130)).unwrap().unwrap();
        assert_eq!(closed.state, IntentState::Closed);
        let last = journal.head().unwrap().unwrap();
        assert_eq!(
            (last.kind, last.author.as_str()),
            (ledger::EntryKind::IntentClosed, NODE_AUTHOR)
        );
        // Down for an hour again: a new need.
        watch
            .check(&journal, &snapshot(minutes(200), false, minutes(130)))
            .unwrap();
        assert_eq!(needs(minutes(200)).len(), 1);
        let report = journal.verify().unwrap();
        assert!(report.is_intact(), "{report}");
    }

    #[test]
    fn no_member_may_be_called_node_nor_close_the_nodes_need() {
        let t0 = at("2026-12-07T08:00:00Z");
        let journal = community(t0);
        assert!(
            journal
                .create_user(
                    "Node",
                    &[Role::Resident],
                    "a long enough password",
                    "command-line",
                    t0
                )
                .is_err()
        );
        let need = journal
            .open_repair_need("roof-school", "Réparer le toit", t0)
            .unwrap()
            .unwrap()
            .seq;
        assert!(journal.close_intent("ana", need, "", t0).is_err());
        // Nor the node itself before it is repaired.
        assert!(
            journal
                .close_repair_need("roof-school", t0)
                .unwrap()
                .is_none()
        );
        assert!(journal.verify().unwrap().is_intact());
    }
}
