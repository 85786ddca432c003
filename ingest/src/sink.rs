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
use crate::mqtt::RecentDigests;
use crate::reading::Reading;
use crate::store::LiveStore;
use crate::wal::Wal;

/// How long readings wait to be grouped into one batch of the live store.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// A batch is written at once when it reaches this many rows.
pub const MAX_BATCH_ROWS: usize = 8192;

/// What acknowledging a message takes: its QoS and packet id (not the message,
/// whose topic and payload the sink has no more use for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckId {
    pub qos: rumqttc::QoS,
    pub pkid: u16,
}

impl AckId {
    /// The message as `rumqttc` acknowledges it: only its QoS and packet id count.
    pub fn as_publish(self) -> rumqttc::Publish {
        let mut p = rumqttc::Publish::new(String::new(), self.qos, Vec::new());
        p.pkid = self.pkid;
        p
    }
}

/// An MQTT message to acknowledge once its readings are durable.
#[derive(Debug)]
pub struct PendingAck {
    pub id: AckId,
    pub to: mpsc::UnboundedSender<AckId>,
}

impl PendingAck {
    fn release(self) {
        // The worker has stopped: the broker will send the message again, and the
        // digest in the log will tell it apart.
        let _ = self.to.send(self.id);
    }
}

/// What a worker hands the sink: readings, and for a message, its digest and the
/// acknowledgement to send once they are durable (an empty message is acknowledged
/// in its turn too, so that acknowledgements keep the order of the messages).
#[derive(Debug, Default)]
pub struct Accepted {
    pub readings: Vec<Reading>,
    pub digest: Option<u64>,
    /// The broker marked the message as sent again (MQTT DUP flag).
    pub dup: bool,
    pub ack: Option<PendingAck>,
}

impl Accepted {
    /// A message the broker keeps until it is acknowledged (and sends again).
    fn is_from_broker(&self) -> bool {
        self.ack.is_some()
    }
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

/// The first pause before a failed write to the log is tried again; it doubles up
/// to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_millis(50);
/// The longest pause between two tries while the log cannot be written: how long
/// at most ingest takes to resume once space is back.
pub const RETRY_MAX: Duration = Duration::from_millis(500);
/// How long MQTT messages are held, unacknowledged, waiting for the log. Past it the
/// sink lets them go (the broker still has them) and the MQTT worker leaves the
/// broker until the log can be written again, then comes back for the redelivery:
/// a broker whose in-flight window is full sends nothing new until it reconnects.
pub const HOLD_MQTT: Duration = Duration::from_secs(2);
/// Readings from polled devices (which no broker keeps) held in memory, at most,
/// while the log cannot be written; past it the oldest are dropped and counted.
pub const HOLD_READINGS: usize = 100_000;

/// Whether the node's MQTT client should be connected: `false` while the log cannot
/// be written and the messages are left with the broker.
pub type OnlineTx = tokio::sync::watch::Sender<bool>;

/// Starts the sink task; it drains what is already queued before it stops.
/// `recent` holds the digests of the messages already durable (from the log at
/// start), to recognise what the broker sends again; `online` tells the MQTT
/// worker when to leave the broker and when to come back.
pub fn spawn_sink(
    targets: SinkTargets,
    recent: RecentDigests,
    online: Option<OnlineTx>,
    cancel: CancellationToken,
) -> (ReadingsTx, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Accepted>(4096);
    let handle = tokio::spawn(async move {
        let mut sink = Sink {
            targets,
            recent,
            online,
            pending: Vec::with_capacity(MAX_BATCH_ROWS),
            fault: None,
        };
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut group: Vec<Accepted> = Vec::new();
        let mut open = true;
        let mut last_flush = tokio::time::Instant::now();
        while open {
            let retry_at = sink.fault.as_ref().map(|f| f.retry_at);
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
                _ = sleep_until(retry_at), if retry_at.is_some() => {}
                _ = cancel.cancelled() => {
                    rx.close();
                    while let Some(next) = rx.recv().await {
                        group.push(next);
                    }
                    open = false;
                }
            }
            sink.take(std::mem::take(&mut group)).await;
            if sink.pending.len() >= MAX_BATCH_ROWS || last_flush.elapsed() >= FLUSH_EVERY {
                sink.flush();
                last_flush = tokio::time::Instant::now();
            }
        }
        if let Some(fault) = &sink.fault {
            let rows: usize = fault.held.iter().map(|a| a.readings.len()).sum();
            if rows > 0 {
                tracing::error!(
                    rows,
                    "stopping while the write-ahead log cannot be written: readings of polled devices held in memory are lost"
                );
            }
        }
        sink.flush();
    });
    (tx, handle)
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The log could not be written: what waits for it, and when to try again.
#[derive(Debug)]
struct Fault {
    since: tokio::time::Instant,
    retry_at: tokio::time::Instant,
    backoff: Duration,
    /// What waits for the log, in arrival order.
    held: Vec<Accepted>,
    /// MQTT messages are no longer held: they are left with the broker.
    gave_up_mqtt: bool,
    /// Readings dropped because the memory buffer was full, in this fault.
    dropped: u64,
    last_error: String,
}

struct Sink {
    targets: SinkTargets,
    recent: RecentDigests,
    online: Option<OnlineTx>,
    pending: Vec<Reading>,
    fault: Option<Fault>,
}

impl Sink {
    /// Takes a group of accepted messages and readings: writes it, or holds it while
    /// the log cannot be written (and tries again when it is time).
    async fn take(&mut self, group: Vec<Accepted>) {
        let Some(mut fault) = self.fault.take() else {
            if group.is_empty() {
                return;
            }
            if let Err((group, e)) = self.commit(group).await {
                let now = tokio::time::Instant::now();
                tracing::error!(error = %e, "could not write the write-ahead log; holding the readings and trying again");
                self.targets.metrics.set_storage_fault(true);
                let mut fault = Fault {
                    since: now,
                    retry_at: now + RETRY_FIRST,
                    backoff: RETRY_FIRST,
                    held: Vec::new(),
                    gave_up_mqtt: false,
                    dropped: 0,
                    last_error: e,
                };
                self.hold(&mut fault, group);
                self.fault = Some(fault);
            }
            return;
        };
        self.hold(&mut fault, group);
        let now = tokio::time::Instant::now();
        if now < fault.retry_at {
            self.fault = Some(fault);
            return;
        }
        // Try again with what is held; with nothing held (the MQTT messages are with
        // the broker), an empty record tells whether the log can be written.
        let held = std::mem::take(&mut fault.held);
        match self.commit_or_probe(held).await {
            Ok(()) => {
                let down_ms = now.duration_since(fault.since).as_millis() as u64;
                tracing::warn!(
                    down_ms,
                    dropped = fault.dropped,
                    "the write-ahead log can be written again; ingest resumes"
                );
                self.targets.metrics.set_storage_fault(false);
                self.targets.metrics.set_readings_held(0);
                if let Some(online) = &self.online {
                    online.send_replace(true);
                }
            }
            Err((held, e)) => {
                fault.held = held;
                if e != fault.last_error {
                    tracing::error!(error = %e, "the write-ahead log still cannot be written");
                    fault.last_error = e;
                }
                fault.backoff = (fault.backoff * 2).min(RETRY_MAX);
                fault.retry_at = now + fault.backoff;
                if !fault.gave_up_mqtt && now.duration_since(fault.since) >= HOLD_MQTT {
                    fault.gave_up_mqtt = true;
                    let before = fault.held.len();
                    fault.held.retain(|a| !a.is_from_broker());
                    tracing::warn!(
                        messages = before - fault.held.len(),
                        "the write-ahead log cannot be written: leaving the MQTT messages with the broker, which sends them again once the node is back"
                    );
                    if let Some(online) = &self.online {
                        online.send_replace(false);
                    }
                }
                self.fault = Some(fault);
            }
        }
    }

    /// Adds a group to what waits for the log: MQTT messages while they are still
    /// held (afterwards the broker keeps them: they are neither stored nor
    /// acknowledged), readings of polled devices up to [`HOLD_READINGS`].
    fn hold(&self, fault: &mut Fault, group: Vec<Accepted>) {
        for a in group {
            if a.is_from_broker() {
                if !fault.gave_up_mqtt {
                    fault.held.push(a);
                }
            } else if !a.readings.is_empty() {
                fault.held.push(a);
            }
        }
        let mut rows: usize = fault.held.iter().map(|a| a.readings.len()).sum();
        if rows > HOLD_READINGS {
            let before = fault.dropped;
            let mut i = 0;
            while rows > HOLD_READINGS && i < fault.held.len() {
                if fault.held[i].is_from_broker() {
                    i += 1;
                    continue;
                }
                let a = fault.held.remove(i);
                rows -= a.readings.len();
                fault.dropped += a.readings.len() as u64;
                self.targets
                    .metrics
                    .add_readings_dropped(a.readings.len() as u64);
            }
            if before == 0 && fault.dropped > 0 {
                tracing::error!(
                    held = HOLD_READINGS,
                    "the write-ahead log cannot be written and the memory buffer is full: the oldest readings of polled devices are dropped (counted in communalia_storage_readings_dropped_total)"
                );
            }
        }
        self.targets.metrics.set_readings_held(rows as u64);
    }

    async fn commit_or_probe(
        &mut self,
        held: Vec<Accepted>,
    ) -> std::result::Result<(), (Vec<Accepted>, String)> {
        if !held.is_empty() {
            return self.commit(held).await;
        }
        let Some(wal) = self.targets.wal.clone() else {
            return Ok(());
        };
        let outcome = tokio::task::spawn_blocking(move || {
            wal.lock().unwrap_or_else(|p| p.into_inner()).probe()
        })
        .await;
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.targets.metrics.add_wal_error();
                Err((held, e.to_string()))
            }
            Err(e) => Err((held, e.to_string())),
        }
    }

    /// Makes one group durable, then releases its acknowledgements and queues its
    /// readings for the store and the history. Nothing goes anywhere unless the log
    /// holds it: on failure the group is handed back untouched (save for
    /// redeliveries found to be duplicates) with what went wrong.
    async fn commit(
        &mut self,
        mut group: Vec<Accepted>,
    ) -> std::result::Result<(), (Vec<Accepted>, String)> {
        // A message the broker sends again whose readings are already durable is
        // acknowledged, not stored twice; so is the second copy within one group.
        let mut here = std::collections::HashSet::new();
        for a in &mut group {
            if let Some(d) = a.digest
                && (!here.insert(d) || (a.dup && self.recent.contains(d)))
                && a.dup
            {
                self.targets.metrics.add_mqtt_duplicate();
                tracing::debug!("redelivered message already accepted");
                a.readings.clear();
                a.digest = None;
            }
        }
        let mut record = None;
        if let Some(wal) = self.targets.wal.clone()
            && group
                .iter()
                .any(|a| !a.readings.is_empty() || a.digest.is_some())
        {
            let outcome = tokio::task::spawn_blocking(move || {
                let readings: Vec<Reading> = group
                    .iter()
                    .flat_map(|a| a.readings.iter().cloned())
                    .collect();
                let digests: Vec<u64> = group.iter().filter_map(|a| a.digest).collect();
                let result = wal
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .append(&readings, &digests);
                (result, group)
            })
            .await;
            match outcome {
                Ok((Ok(n), back)) => {
                    record = Some(n);
                    group = back;
                }
                Ok((Err(e), back)) => {
                    self.targets.metrics.add_wal_error();
                    return Err((back, e.to_string()));
                }
                Err(e) => {
                    // The blocking task panicked: the group went with it. What came
                    // from the broker is not acknowledged and comes again.
                    tracing::error!(error = %e, "write-ahead log task failed");
                    self.targets.metrics.add_wal_error();
                    return Err((Vec::new(), e.to_string()));
                }
            }
        }
        let mut readings = Vec::with_capacity(group.iter().map(|a| a.readings.len()).sum());
        for a in group {
            readings.extend(a.readings);
            if let Some(d) = a.digest {
                self.recent.insert(d);
            }
            if let Some(ack) = a.ack {
                ack.release();
            }
        }
        // Known to the live evaluation at once (it wakes on the store's changes);
        // the window's batch follows within FLUSH_EVERY.
        self.targets.store.observe(&readings);
        if let Some(history) = &self.targets.history
            && !readings.is_empty()
        {
            let _ = history.send((record, readings.clone()));
        }
        self.pending.append(&mut readings);
        Ok(())
    }

    fn flush(&mut self) {
        let pending = &mut self.pending;
        if pending.is_empty() {
            return;
        }
        match self.targets.store.append(pending) {
            Ok(()) => self.targets.metrics.add_readings(pending.len() as u64),
            // Building a batch from well-typed readings cannot fail in practice; if it
            // ever does, say so loudly rather than dropping data silently.
            Err(e) => tracing::error!(error = %e, rows = pending.len(), "could not store readings"),
        }
        pending.clear();
    }
}
