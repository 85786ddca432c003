//! The single writer of the live store. Workers send small groups of readings over
//! a bounded channel; the sink gathers them into batches (a few per second rather
//! than one per MQTT message) so that queries scan few, larger batches. This is also
//! where the write-ahead log will sit: one place sees every accepted reading.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::IngestMetrics;
use crate::reading::Reading;
use crate::store::LiveStore;

/// How long readings wait to be grouped into one batch.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// A batch is written at once when it reaches this many rows.
pub const MAX_BATCH_ROWS: usize = 8192;

/// The sending side handed to every worker.
pub type ReadingsTx = mpsc::Sender<Vec<Reading>>;

/// Starts the sink task; it drains what is already queued before it stops.
pub fn spawn_sink(
    store: Arc<LiveStore>,
    metrics: Arc<IngestMetrics>,
    cancel: CancellationToken,
) -> (ReadingsTx, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Vec<Reading>>(4096);
    let handle = tokio::spawn(async move {
        let mut pending: Vec<Reading> = Vec::with_capacity(MAX_BATCH_ROWS);
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                got = rx.recv() => match got {
                    Some(mut readings) => {
                        pending.append(&mut readings);
                        if pending.len() >= MAX_BATCH_ROWS {
                            flush(&store, &metrics, &mut pending);
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => flush(&store, &metrics, &mut pending),
                _ = cancel.cancelled() => {
                    rx.close();
                    while let Some(mut readings) = rx.recv().await {
                        pending.append(&mut readings);
                    }
                    break;
                }
            }
        }
        flush(&store, &metrics, &mut pending);
    });
    (tx, handle)
}

fn flush(store: &LiveStore, metrics: &IngestMetrics, pending: &mut Vec<Reading>) {
    if pending.is_empty() {
        return;
    }
    match store.append(pending) {
        Ok(()) => metrics.add_readings(pending.len() as u64),
        // Building a batch from well-typed readings cannot fail in practice; if it
        // ever does, say so loudly rather than dropping data silently.
        Err(e) => tracing::error!(error = %e, rows = pending.len(), "could not store readings"),
    }
    pending.clear();
}
