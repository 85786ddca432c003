//! Counters and per-device health that ingest keeps for `/metrics`, `/api/live` and
//! the installer pages. Lock-free counters on the hot path; per-device maps behind
//! a mutex touched once per message or poll.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Health of one device as its worker last saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceHealth {
    pub last_success: Option<DateTime<Utc>>,
    pub consecutive_failures: u32,
    pub last_latency: Option<Duration>,
    pub last_error: Option<String>,
    /// Modbus exception code of the last refused request, if any.
    pub last_exception: Option<u8>,
}

impl DeviceHealth {
    /// Up while the last read succeeded and it is recent enough.
    pub fn is_up(&self, now: DateTime<Utc>, max_age: Duration) -> bool {
        self.consecutive_failures == 0
            && self
                .last_success
                .is_some_and(|t| (now - t).to_std().map(|age| age <= max_age).unwrap_or(true))
    }
}

#[derive(Debug, Default)]
pub struct IngestMetrics {
    readings_ingested: AtomicU64,
    mqtt_messages: AtomicU64,
    mqtt_duplicates: AtomicU64,
    wal_errors: AtomicU64,
    payloads_rejected: Mutex<BTreeMap<String, u64>>,
    modbus_transactions: Mutex<BTreeMap<String, u64>>,
    health: Mutex<BTreeMap<String, DeviceHealth>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not take the counters down with it.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl IngestMetrics {
    pub fn add_readings(&self, n: u64) {
        self.readings_ingested.fetch_add(n, Ordering::Relaxed);
    }
    pub fn readings_ingested(&self) -> u64 {
        self.readings_ingested.load(Ordering::Relaxed)
    }
    pub fn add_mqtt_message(&self) {
        self.mqtt_messages.fetch_add(1, Ordering::Relaxed);
    }
    pub fn mqtt_messages(&self) -> u64 {
        self.mqtt_messages.load(Ordering::Relaxed)
    }
    /// A message the broker sent again after a reconnection whose readings were
    /// already accepted: acknowledged, not stored twice.
    pub fn add_mqtt_duplicate(&self) {
        self.mqtt_duplicates.fetch_add(1, Ordering::Relaxed);
    }
    pub fn mqtt_duplicates(&self) -> u64 {
        self.mqtt_duplicates.load(Ordering::Relaxed)
    }
    /// A write to the write-ahead log failed (disk full, I/O error).
    pub fn add_wal_error(&self) {
        self.wal_errors.fetch_add(1, Ordering::Relaxed);
    }
    pub fn wal_errors(&self) -> u64 {
        self.wal_errors.load(Ordering::Relaxed)
    }
    /// `device` is the device id, or `unknown` for a topic no device claims.
    pub fn reject_payload(&self, device: &str) {
        *lock(&self.payloads_rejected)
            .entry(device.to_string())
            .or_default() += 1;
    }
    pub fn payloads_rejected(&self) -> BTreeMap<String, u64> {
        lock(&self.payloads_rejected).clone()
    }
    pub fn add_modbus_transactions(&self, device: &str, n: u64) {
        *lock(&self.modbus_transactions)
            .entry(device.to_string())
            .or_default() += n;
    }
    pub fn modbus_transactions(&self) -> BTreeMap<String, u64> {
        lock(&self.modbus_transactions).clone()
    }
    /// Registers a device so that it shows (as down) before its first reading.
    pub fn register_device(&self, device: &str) {
        lock(&self.health).entry(device.to_string()).or_default();
    }
    pub fn record_success(&self, device: &str, at: DateTime<Utc>, latency: Option<Duration>) {
        let mut map = lock(&self.health);
        let h = map.entry(device.to_string()).or_default();
        h.last_success = Some(at);
        h.consecutive_failures = 0;
        h.last_latency = latency;
    }
    pub fn record_failure(&self, device: &str, error: String, exception: Option<u8>) {
        let mut map = lock(&self.health);
        let h = map.entry(device.to_string()).or_default();
        h.consecutive_failures = h.consecutive_failures.saturating_add(1);
        h.last_error = Some(error);
        if exception.is_some() {
            h.last_exception = exception;
        }
    }
    pub fn health(&self) -> BTreeMap<String, DeviceHealth> {
        lock(&self.health).clone()
    }
    /// Reads the per-device health in place, without copying it (the live
    /// evaluation looks up every device every second).
    pub fn with_health<R>(&self, f: impl FnOnce(&BTreeMap<String, DeviceHealth>) -> R) -> R {
        f(&lock(&self.health))
    }
}
