//! The single writer of the live store and of the write-ahead log. Workers send
//! their readings over a bounded channel; the sink takes everything queued at once,
//! appends it to the WAL as one record made durable with one `fdatasync` (group
//! commit: the more arrives, the more readings share a sync), and only then
//! releases the acknowledgements the MQTT worker holds back (QoS 1 messages are
//! acknowledged to the broker once they cannot be lost). Durable readings are the
//! live store's newest values at once ([`LiveStore::observe`], which wakes the live
//! evaluation), and join the store's window in batches of a few per second, so that
//! queries scan few, larger batches; they go to the history writer too.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::IngestMetrics;
use crate::reading::Reading;
use crate::store::LiveStore;
use crate::wal::Wal;

/// How long readings wait to be grouped into one batch of the live store.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// A batch is written at once when it reaches this many rows.
pub const MAX_BATCH_ROWS: usize = 8192;

/// An MQTT message to acknowledge once its readings are durable.
#[derive(Debug)]
pub struct PendingAck {
    pub publish: rumqttc::Publish,
    pub to: mpsc::UnboundedSender<rumqttc::Publish>,
}

impl PendingAck {
    fn release(self) {
        // The worker has stopped: the broker will send the message again, and the
        // digest in the log will tell it apart.
        let _ = self.to.send(self.publish);
    }
}

/// What a worker hands the sink: readings, and for a message, its digest and the
/// acknowledgement to send once they are durable (an empty message is acknowledged
/// in its turn too, so that acknowledgements keep the order of the messages).
#[derive(Debug, Default)]
pub struct Accepted {
    pub readings: Vec<Reading>,
    pub digest: Option<u64>,
    pub ack: Option<PendingAck>,
}

impl From<Vec<Reading>> for Accepted {
    fn from(readings: Vec<Reading>) -> Self {
        Accepted {
            readings,
            ..Accepted::default()
        }
    }
}

/// The sending side handed to every worker.
pub type ReadingsTx = mpsc::Sender<Accepted>;

/// Readings made durable, with the number of the WAL record that holds them (`None`
/// without a log), for the history writer.
pub type DurableTx = mpsc::UnboundedSender<(Option<u64>, Vec<Reading>)>;

/// Where the sink puts what it accepts.
#[derive(Debug, Clone)]
pub struct SinkTargets {
    pub store: Arc<LiveStore>,
    pub metrics: Arc<IngestMetrics>,
    /// `None`: readings are kept in memory only (tests, benchmarks without a log).
    pub wal: Option<Arc<Mutex<Wal>>>,
    pub history: Option<DurableTx>,
}

/// Starts the sink task; it drains what is already queued before it stops.
pub fn spawn_sink(
    targets: SinkTargets,
    cancel: CancellationToken,
) -> (ReadingsTx, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Accepted>(4096);
    let handle = tokio::spawn(async move {
        let mut pending: Vec<Reading> = Vec::with_capacity(MAX_BATCH_ROWS);
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut group: Vec<Accepted> = Vec::new();
        let mut open = true;
        let mut last_flush = tokio::time::Instant::now();
        while open {
            tokio::select! {
                got = rx.recv() => match got {
                    Some(first) => {
                        group.push(first);
                        // Everything already queued joins the same commit.
                        let mut rows = group[0].readings.len();
                        while rows < MAX_BATCH_ROWS {
                            match rx.try_recv() {
                                Ok(next) => {
                                    rows += next.readings.len();
                                    group.push(next);
                                }
                                Err(_) => break,
                            }
                        }
                    }
                    None => open = false,
                },
                _ = tick.tick() => {}
                _ = cancel.cancelled() => {
                    rx.close();
                    while let Some(next) = rx.recv().await {
                        group.push(next);
                    }
                    open = false;
                }
            }
            if !group.is_empty() {
                commit(&targets, std::mem::take(&mut group), &mut pending).await;
            }
            if pending.len() >= MAX_BATCH_ROWS || last_flush.elapsed() >= FLUSH_EVERY {
                flush(&targets, &mut pending);
                last_flush = tokio::time::Instant::now();
            }
        }
        flush(&targets, &mut pending);
    });
    (tx, handle)
}

/// Makes one group durable, then releases its acknowledgements and queues its
/// readings for the store and the history.
async fn commit(targets: &SinkTargets, group: Vec<Accepted>, pending: &mut Vec<Reading>) {
    let mut readings = Vec::with_capacity(group.iter().map(|a| a.readings.len()).sum());
    let mut digests = Vec::new();
    let mut acks = Vec::new();
    for a in group {
        readings.extend(a.readings);
        digests.extend(a.digest);
        acks.extend(a.ack);
    }
    let mut record = None;
    let mut durable = true;
    if let Some(wal) = &targets.wal
        && !(readings.is_empty() && digests.is_empty())
    {
        let wal = wal.clone();
        let rows = readings;
        let outcome = tokio::task::spawn_blocking(move || {
            let result = wal
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .append(&rows, &digests);
            (result, rows)
        })
        .await;
        match outcome {
            Ok((Ok(n), rows)) => {
                record = Some(n);
                readings = rows;
            }
            Ok((Err(e), rows)) => {
                // Kept in memory so the live view goes on, but not acknowledged: the
                // broker keeps the messages and sends them again.
                tracing::error!(error = %e, rows = rows.len(), "could not write the write-ahead log");
                targets.metrics.add_wal_error();
                durable = false;
                readings = rows;
            }
            Err(e) => {
                tracing::error!(error = %e, "write-ahead log task failed");
                targets.metrics.add_wal_error();
                return;
            }
        }
    }
    if durable {
        for ack in acks {
            ack.release();
        }
    }
    // Known to the live evaluation at once (it wakes on the store's changes); the
    // window's batch follows within FLUSH_EVERY.
    targets.store.observe(&readings);
    if let Some(history) = &targets.history
        && !readings.is_empty()
    {
        let _ = history.send((record, readings.clone()));
    }
    pending.append(&mut readings);
}

fn flush(targets: &SinkTargets, pending: &mut Vec<Reading>) {
    if pending.is_empty() {
        return;
    }
    match targets.store.append(pending) {
        Ok(()) => targets.metrics.add_readings(pending.len() as u64),
        // Building a batch from well-typed readings cannot fail in practice; if it
        // ever does, say so loudly rather than dropping data silently.
        Err(e) => tracing::error!(error = %e, rows = pending.len(), "could not store readings"),
    }
    pending.clear();
}
