//! The live store: the most recent window of readings as Arrow record batches in
//! memory (what DataFusion sees as `readings_live`), plus the newest value of each
//! device and metric so that a page never scans the window to say "last seen".
//!
//! The newest values are updated as soon as the sink has made a reading durable
//! ([`LiveStore::observe`]), before the reading joins a batch of the window, and
//! each update that changes what the site knows (a new device or metric, another
//! value) is announced on [`LiveStore::changes`]: the live evaluation runs on that
//! signal rather than on a clock.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use sensors::model::Metric;
use tokio::sync::watch;

use crate::reading::{Reading, to_batch};
use crate::{Error, Result};

struct Stored {
    batch: RecordBatch,
    max_ts_ms: i64,
}

/// The sink appends a batch every 50 ms or so, often of a few rows; kept as they
/// come, a 15-minute window held some 18,000 batches whose arrays and schema
/// references cost far more memory than their rows. Once this many young batches
/// have come, they are merged into one.
const MERGE_AFTER: usize = 64;

#[derive(Default)]
struct Inner {
    batches: VecDeque<Stored>,
    /// How many of the newest batches have not been merged yet.
    young: usize,
    rows: usize,
    latest: HashMap<(Arc<str>, Metric), (i64, f64)>,
}

impl Inner {
    /// Keeps the newest value of each device and metric; true when one of
    /// `readings` changed a value or added a device or metric (a newer reading of
    /// the same value only moves the time).
    fn update_latest(&mut self, readings: &[Reading]) -> bool {
        let mut changed = false;
        for r in readings {
            let key = (r.device.clone(), r.metric);
            match self.latest.get_mut(&key) {
                Some(l) if l.0 > r.ts_ms => {}
                Some(l) => {
                    changed |= l.1.to_bits() != r.value.to_bits();
                    *l = (r.ts_ms, r.value);
                }
                None => {
                    self.latest.insert(key, (r.ts_ms, r.value));
                    changed = true;
                }
            }
        }
        changed
    }
}

/// Shared between the ingest sink (the only writer) and the query engine.
pub struct LiveStore {
    window: Duration,
    inner: RwLock<Inner>,
    /// Counts the updates that changed what the site knows (see [`LiveStore::changes`]).
    changes: watch::Sender<u64>,
}

impl std::fmt::Debug for LiveStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveStore")
            .field("window", &self.window)
            .field("rows", &self.rows())
            .finish()
    }
}

/// Newest value of one device and metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latest {
    pub ts_ms: i64,
    pub value: f64,
}

impl LiveStore {
    /// Keeps readings for `window` after the newest one.
    pub fn new(window: Duration) -> Self {
        LiveStore {
            window,
            inner: RwLock::new(Inner::default()),
            changes: watch::Sender::new(0),
        }
    }

    /// Wakes when a reading changed what the site knows: a device or metric seen
    /// for the first time, or a value other than the newest one kept. The value is
    /// the number of such updates so far; what matters is that it changed.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Makes durable readings known at once as the newest values, before they
    /// join a batch of the window ([`LiveStore::append`], which the sink calls a
    /// little later, groups them for the queries that scan the window).
    pub fn observe(&self, readings: &[Reading]) {
        if readings.is_empty() {
            return;
        }
        let changed = self.write().update_latest(readings);
        if changed {
            self.announce();
        }
    }

    fn announce(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends readings as one batch and drops batches that fell out of the window.
    pub fn append(&self, readings: &[Reading]) -> Result<()> {
        if readings.is_empty() {
            return Ok(());
        }
        let batch = to_batch(readings).map_err(Error::Arrow)?;
        let max_ts_ms = readings.iter().map(|r| r.ts_ms).max().unwrap_or(i64::MIN);
        let mut inner = self.write();
        let changed = inner.update_latest(readings);
        inner.rows += batch.num_rows();
        inner.batches.push_back(Stored { batch, max_ts_ms });
        inner.young += 1;
        if inner.young >= MERGE_AFTER {
            let from = inner.batches.len() - inner.young;
            let young: Vec<Stored> = inner.batches.drain(from..).collect();
            let schema = young[0].batch.schema();
            match arrow::compute::concat_batches(&schema, young.iter().map(|s| &s.batch)) {
                Ok(merged) => {
                    let max_ts_ms = young.iter().map(|s| s.max_ts_ms).max().unwrap_or(max_ts_ms);
                    inner.batches.push_back(Stored {
                        batch: merged,
                        max_ts_ms,
                    });
                }
                // Never lose a reading for want of merging: keep them as they came.
                Err(_) => inner.batches.extend(young),
            }
            inner.young = 0;
        }
        let newest = inner
            .batches
            .iter()
            .map(|s| s.max_ts_ms)
            .max()
            .unwrap_or(max_ts_ms);
        let horizon = newest.saturating_sub(self.window.as_millis() as i64);
        while inner.batches.front().is_some_and(|s| s.max_ts_ms < horizon) {
            if let Some(old) = inner.batches.pop_front() {
                inner.rows -= old.batch.num_rows();
            }
            inner.young = inner.young.min(inner.batches.len());
        }
        drop(inner);
        if changed {
            self.announce();
        }
        Ok(())
    }

    /// The batches currently in the window (cheap: record batches share their buffers).
    pub fn batches(&self) -> Vec<RecordBatch> {
        self.read()
            .batches
            .iter()
            .map(|s| s.batch.clone())
            .collect()
    }

    pub fn rows(&self) -> usize {
        self.read().rows
    }

    /// Newest value of one device and metric.
    pub fn latest(&self, device: &str, metric: Metric) -> Option<Latest> {
        let inner = self.read();
        inner
            .latest
            .get(&(Arc::<str>::from(device), metric))
            .map(|&(ts_ms, value)| Latest { ts_ms, value })
    }

    /// The newest reading of each device and metric, as one batch of the readings
    /// schema: the last-value cache that the live evaluation queries, so that its
    /// cost follows the number of devices and not the length of the window.
    pub fn latest_batch(&self) -> Result<RecordBatch> {
        let readings: Vec<Reading> = {
            let inner = self.read();
            inner
                .latest
                .iter()
                .map(|((device, metric), &(ts_ms, value))| Reading {
                    ts_ms,
                    device: device.clone(),
                    metric: *metric,
                    value,
                })
                .collect()
        };
        to_batch(&readings).map_err(Error::Arrow)
    }

    /// Time of the newest reading of each device.
    pub fn last_seen(&self) -> HashMap<String, i64> {
        let inner = self.read();
        let mut out: HashMap<String, i64> = HashMap::new();
        for ((device, _), (ts, _)) in &inner.latest {
            let e = out.entry(device.to_string()).or_insert(*ts);
            *e = (*e).max(*ts);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(ts_ms: i64, device: &str, value: f64) -> Reading {
        Reading {
            ts_ms,
            device: device.into(),
            metric: Metric::PowerW,
            value,
        }
    }

    #[test]
    fn small_batches_are_merged_and_no_reading_is_lost() {
        let store = LiveStore::new(Duration::from_secs(3600));
        for i in 0..1000 {
            store.append(&[r(i, "meter", i as f64)]).expect("append");
        }
        assert_eq!(store.rows(), 1000);
        let batches = store.batches();
        assert!(
            batches.len() <= 1000 / MERGE_AFTER + MERGE_AFTER,
            "{} batches kept for 1000 appends",
            batches.len()
        );
        // Every reading is there once, in the order it came.
        let values: Vec<f64> = batches
            .iter()
            .flat_map(|b| {
                let v = b
                    .column(3)
                    .as_any()
                    .downcast_ref::<arrow::array::Float64Array>()
                    .expect("value column");
                v.values().to_vec()
            })
            .collect();
        assert_eq!(values, (0..1000).map(|i| i as f64).collect::<Vec<_>>());
    }

    #[test]
    fn merged_batches_still_leave_the_window() {
        let store = LiveStore::new(Duration::from_millis(100));
        for i in 0..1000 {
            store.append(&[r(i, "meter", 1.0)]).expect("append");
        }
        // The newest is at 999 ms: what is older than 899 ms has gone, give or take
        // the span of one merged batch.
        assert!(
            (100..=100 + MERGE_AFTER).contains(&store.rows()),
            "{} rows left",
            store.rows()
        );
    }

    #[test]
    fn keeps_the_window_and_the_newest_value() {
        let store = LiveStore::new(Duration::from_secs(10));
        store
            .append(&[r(1_000, "a", 1.0), r(2_000, "b", 2.0)])
            .expect("append");
        store.append(&[r(5_000, "a", 3.0)]).expect("append");
        assert_eq!(store.rows(), 3);
        assert_eq!(
            store.latest("a", Metric::PowerW).map(|l| l.value),
            Some(3.0)
        );
        // An older reading arriving late does not replace the newest.
        store.append(&[r(4_000, "a", 9.0)]).expect("append");
        assert_eq!(
            store.latest("a", Metric::PowerW).map(|l| l.value),
            Some(3.0)
        );
        // 20 s later, the first batches leave the window.
        store.append(&[r(21_000, "b", 5.0)]).expect("append");
        assert_eq!(
            store.rows(),
            1,
            "only the newest batch stays in a 10 s window"
        );
        assert_eq!(store.last_seen().get("a"), Some(&5_000));
    }

    #[test]
    fn the_latest_batch_holds_the_newest_value_of_each_device_and_metric() {
        let store = LiveStore::new(Duration::from_secs(60));
        let soc = Reading {
            metric: Metric::SocPct,
            ..r(1_500, "a", 55.0)
        };
        store
            .append(&[
                r(1_000, "a", 1.0),
                r(3_000, "a", 3.0),
                soc,
                r(2_000, "b", 2.0),
            ])
            .expect("append");
        store.append(&[r(2_500, "a", 9.0)]).expect("append");
        let batch = store.latest_batch().expect("batch");
        assert_eq!(batch.schema(), crate::reading::readings_schema());
        let mut rows: Vec<(String, String, i64, f64)> = (0..batch.num_rows())
            .map(|i| {
                let text = |c: usize| {
                    arrow::util::display::array_value_to_string(batch.column(c), i)
                        .expect("display")
                };
                let ts = batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::TimestampMillisecondArray>()
                    .expect("ts")
                    .value(i);
                let value = batch
                    .column(3)
                    .as_any()
                    .downcast_ref::<arrow::array::Float64Array>()
                    .expect("value")
                    .value(i);
                (text(1), text(2), ts, value)
            })
            .collect();
        rows.sort_by(|x, y| (&x.0, &x.1).cmp(&(&y.0, &y.1)));
        let expected = [
            ("a", "power_w", 3_000, 3.0),
            ("a", "soc_pct", 1_500, 55.0),
            ("b", "power_w", 2_000, 2.0),
        ]
        .map(|(d, m, ts, v)| (d.to_string(), m.to_string(), ts, v));
        assert_eq!(rows, expected);
    }

    /// A durable reading is the newest value at once, before it is in a batch of
    /// the window, and the change is announced; a newer reading of the same value,
    /// or an older one arriving late, is not a change.
    #[test]
    fn observed_readings_are_known_at_once_and_changes_are_announced() {
        let store = LiveStore::new(Duration::from_secs(60));
        let mut changes = store.changes();
        assert!(!changes.has_changed().unwrap_or(true));

        store.observe(&[r(1_000, "a", 1.0)]);
        assert_eq!(store.rows(), 0, "not yet in the window");
        assert_eq!(
            store.latest("a", Metric::PowerW).map(|l| l.value),
            Some(1.0)
        );
        assert!(changes.has_changed().unwrap_or(false), "a new device");
        changes.borrow_and_update();

        store.observe(&[r(2_000, "a", 1.0)]);
        assert_eq!(
            store.latest("a", Metric::PowerW).map(|l| l.ts_ms),
            Some(2_000)
        );
        assert!(!changes.has_changed().unwrap_or(true), "the same value");

        store.observe(&[r(1_500, "a", 7.0)]);
        assert!(!changes.has_changed().unwrap_or(true), "an older reading");

        store.observe(&[r(3_000, "a", 2.0)]);
        assert!(changes.has_changed().unwrap_or(false), "another value");
        changes.borrow_and_update();

        // The batch of the window that follows changes nothing more.
        store.append(&[r(3_000, "a", 2.0)]).expect("append");
        assert_eq!(store.rows(), 1);
        assert!(!changes.has_changed().unwrap_or(true));
    }

    #[test]
    fn batches_follow_the_readings_schema() {
        let store = LiveStore::new(Duration::from_secs(60));
        store.append(&[r(1_000, "a", 1.5)]).expect("append");
        let b = store.batches();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].schema(), crate::reading::readings_schema());
        assert_eq!(b[0].num_rows(), 1);
    }
}
