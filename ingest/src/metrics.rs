//! Counters, per-device health and diagnostics that ingest keeps for `/metrics`,
//! `/api/live` and the installer pages. Lock-free counters on the hot path;
//! per-device maps behind a mutex touched once per message or poll.
//!
//! Health tells whether a device is read ([`HealthState`]: up, degraded, down);
//! diagnostics keep what the last poll or message said, raw and decoded side by
//! side, so that an installer can see a value next to the registers or payload
//! field it came from.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sensors::modbus::RegisterKind;
use sensors::model::{Metric, Origin};

use crate::plausible::{RejectReason, Rejected};

/// Consecutive failed polls after which a device is down (one failure is degraded).
pub const DOWN_AFTER_FAILURES: u32 = 2;

/// What an installer is told about a device at a glance; `"up"`, `"degraded"` or
/// `"down"` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    /// Read fully at its last poll (or message), recently.
    Up,
    /// Read, but its last poll failed once, or some of its registers were refused.
    Degraded,
    /// Not read: never yet, failed [`DOWN_AFTER_FAILURES`] times in a row, or silent
    /// for longer than it should be.
    Down,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Up => "up",
            HealthState::Degraded => "degraded",
            HealthState::Down => "down",
        }
    }
}

/// Health of one device as its worker last saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceHealth {
    pub last_success: Option<DateTime<Utc>>,
    pub consecutive_failures: u32,
    /// Time the last successful poll took, all its requests included.
    pub last_latency: Option<Duration>,
    pub last_error: Option<String>,
    /// Modbus exception code of the last refused request, if any.
    pub last_exception: Option<u8>,
    /// Exception responses over the device's life.
    pub exceptions: u64,
    /// Polls attempted (Modbus), or messages decoded or rejected (MQTT).
    pub polls: u64,
    /// Modbus requests the last poll sent.
    pub last_cycle_transactions: Option<u32>,
    /// The fewest requests that can read the device's registers (its plan's size).
    pub planned_transactions: Option<u32>,
    /// Whether the last poll got some values but had registers refused.
    pub last_poll_partial: bool,
}

impl DeviceHealth {
    /// Up while the last read succeeded and it is recent enough.
    pub fn is_up(&self, now: DateTime<Utc>, max_age: Duration) -> bool {
        self.consecutive_failures == 0 && self.fresh(now, max_age)
    }

    fn fresh(&self, now: DateTime<Utc>, max_age: Duration) -> bool {
        self.last_success
            .is_some_and(|t| (now - t).to_std().map(|age| age <= max_age).unwrap_or(true))
    }

    /// Up, degraded or down; `max_age` is how old the last success may be.
    pub fn state(&self, now: DateTime<Utc>, max_age: Duration) -> HealthState {
        if !self.fresh(now, max_age) || self.consecutive_failures >= DOWN_AFTER_FAILURES {
            HealthState::Down
        } else if self.consecutive_failures > 0 || self.last_poll_partial {
            HealthState::Degraded
        } else {
            HealthState::Up
        }
    }
}

/// One read request of the last poll and what came back.
#[derive(Debug, Clone, PartialEq)]
pub struct RawBlock {
    pub kind: RegisterKind,
    pub start: u16,
    pub count: u16,
    /// The registers, or the exception code the device answered with.
    pub result: Result<Vec<u16>, u8>,
}

impl RawBlock {
    /// The words of registers `address .. address + count`, if this block read them.
    pub fn words(&self, kind: RegisterKind, address: u16, count: u16) -> Option<&[u16]> {
        let data = self.result.as_ref().ok()?;
        if kind != self.kind || address < self.start {
            return None;
        }
        let from = usize::from(address - self.start);
        data.get(from..from + usize::from(count))
    }
}

/// The last payload heard on one topic.
#[derive(Debug, Clone, PartialEq)]
pub struct RawPayload {
    pub at: DateTime<Utc>,
    /// As text (lossy UTF-8), cut at [`MAX_RAW_PAYLOAD`] bytes.
    pub payload: String,
    /// Why it was rejected, when it was.
    pub rejected: Option<String>,
}

/// The entry of `key`, made on first use; a key already there is not copied again
/// (these maps are updated for every message and every poll).
fn entry<'a, V: Default>(map: &'a mut BTreeMap<String, V>, key: &str) -> &'a mut V {
    if !map.contains_key(key) {
        map.insert(key.to_string(), V::default());
    }
    map.get_mut(key)
        .unwrap_or_else(|| unreachable!("the entry was just made"))
}

/// Bytes of a payload kept for diagnostics.
pub const MAX_RAW_PAYLOAD: usize = 4096;
/// Topics of one device whose last payload is kept.
const MAX_RAW_TOPICS: usize = 32;

/// A decoded value as the installer sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedValue {
    pub metric: Metric,
    /// In the site sign convention, as stored.
    pub value: f64,
    /// As the device counts it (before the role's sign).
    pub device_value: f64,
    pub origin: Origin,
    pub at: DateTime<Utc>,
}

/// A SunSpec model found on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub id: u16,
    pub name: Option<&'static str>,
    /// Address of its ID register.
    pub address: u16,
    pub length: u16,
    /// Whether its values are decoded (else: why not).
    pub decoded: Result<(), String>,
}

/// What the installer pages show of one device beside its health.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceDiagnostics {
    /// How the device is reached, e.g. `modbus-tcp 192.168.1.20:502 unit 1`.
    pub transport: String,
    pub profile: String,
    /// SunSpec devices: where the map starts and its models.
    pub sunspec_base: Option<u16>,
    pub sunspec_models: Vec<ModelInfo>,
    /// Manufacturer, model and serial number, when the device says.
    pub identity: Option<String>,
    /// The requests of the last poll (Modbus).
    pub raw_blocks: Vec<RawBlock>,
    pub raw_at: Option<DateTime<Utc>>,
    /// The last payload per topic (MQTT).
    pub raw_payloads: BTreeMap<String, RawPayload>,
    /// The latest value of each metric, with where it came from.
    pub values: BTreeMap<Metric, DecodedValue>,
    /// Payloads or readings turned away, by reason.
    pub rejects: BTreeMap<RejectReason, u64>,
    /// When and why the device's readings were last turned away.
    pub last_reject: Option<(DateTime<Utc>, RejectReason, String)>,
}

/// Why the live evaluation ran (`communalia_evaluations_total{trigger}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvaluationTrigger {
    /// A reading changed what the site knows.
    Reading,
    /// The heartbeat: a second without any other evaluation (staleness, clocks),
    /// or each period of the fixed tick.
    Heartbeat,
    /// A plan was adopted.
    Plan,
}

impl EvaluationTrigger {
    pub const ALL: [EvaluationTrigger; 3] = [
        EvaluationTrigger::Reading,
        EvaluationTrigger::Heartbeat,
        EvaluationTrigger::Plan,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EvaluationTrigger::Reading => "reading",
            EvaluationTrigger::Heartbeat => "heartbeat",
            EvaluationTrigger::Plan => "plan",
        }
    }
}

#[derive(Debug, Default)]
struct StorageHealth {
    fault: std::sync::atomic::AtomicBool,
    held: AtomicU64,
    dropped: AtomicU64,
    measured: std::sync::atomic::AtomicBool,
    free: AtomicU64,
    min_free: AtomicU64,
    clear_text: std::sync::atomic::AtomicBool,
}

/// The state of the storage directory, for the metrics, the installer's page and
/// the wall.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageStatus {
    /// The write-ahead log cannot be written now: ingest is held.
    pub write_failing: bool,
    /// Readings of polled devices waiting in memory for the log.
    pub readings_held: u64,
    /// Readings dropped since start because that memory was full.
    pub readings_dropped: u64,
    /// Free bytes of the filesystem (`None` before the first measure).
    pub free_bytes: Option<u64>,
    /// Below this (`[storage] min_free`) the node warns and applies its retention.
    pub min_free_bytes: u64,
    /// The data directory is not encrypted (no key configured): said to installers.
    pub clear_text: bool,
}

impl StorageStatus {
    /// Free space is below the configured threshold.
    pub fn low(&self) -> bool {
        self.free_bytes.is_some_and(|f| f < self.min_free_bytes)
    }
}

#[derive(Debug, Default)]
pub struct IngestMetrics {
    readings_ingested: AtomicU64,
    /// Live evaluations, by [`EvaluationTrigger`] in the order of `ALL`.
    evaluations: [AtomicU64; 3],
    mqtt_messages: AtomicU64,
    mqtt_duplicates: AtomicU64,
    wal_errors: AtomicU64,
    storage: StorageHealth,
    payloads_rejected: Mutex<BTreeMap<(String, RejectReason), u64>>,
    modbus_transactions: Mutex<BTreeMap<String, u64>>,
    modbus_exceptions: Mutex<BTreeMap<String, u64>>,
    health: Mutex<BTreeMap<String, DeviceHealth>>,
    diagnostics: Mutex<BTreeMap<String, DeviceDiagnostics>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not take the counters down with it.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl IngestMetrics {
    /// Counts one live evaluation (the engine keeps its counter here, beside
    /// those of the readings it evaluates).
    pub fn add_evaluation(&self, trigger: EvaluationTrigger) {
        self.evaluations[trigger as usize].fetch_add(1, Ordering::Relaxed);
    }
    /// Live evaluations so far, by trigger.
    pub fn evaluations(&self) -> [(EvaluationTrigger, u64); 3] {
        EvaluationTrigger::ALL.map(|t| (t, self.evaluations[t as usize].load(Ordering::Relaxed)))
    }
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
    /// The write-ahead log cannot be written (`true`) or can again (`false`).
    /// Whether the data directory is in clear text (no key configured).
    pub fn set_clear_text_at_rest(&self, clear: bool) {
        self.storage.clear_text.store(clear, Ordering::Relaxed);
    }

    pub fn set_storage_fault(&self, fault: bool) {
        self.storage.fault.store(fault, Ordering::Relaxed);
    }
    /// Readings of polled devices held in memory while the log cannot be written.
    pub fn set_readings_held(&self, n: u64) {
        self.storage.held.store(n, Ordering::Relaxed);
    }
    /// Readings dropped because the memory buffer was full while the log could
    /// not be written.
    pub fn add_readings_dropped(&self, n: u64) {
        self.storage.dropped.fetch_add(n, Ordering::Relaxed);
    }
    /// Free bytes of the storage directory's filesystem, as last measured.
    pub fn set_storage_free(&self, free_bytes: u64, min_free_bytes: u64) {
        self.storage.free.store(free_bytes, Ordering::Relaxed);
        self.storage
            .min_free
            .store(min_free_bytes, Ordering::Relaxed);
        self.storage.measured.store(true, Ordering::Relaxed);
    }
    /// What the node knows of its storage now.
    pub fn storage(&self) -> StorageStatus {
        let s = &self.storage;
        StorageStatus {
            write_failing: s.fault.load(Ordering::Relaxed),
            readings_held: s.held.load(Ordering::Relaxed),
            readings_dropped: s.dropped.load(Ordering::Relaxed),
            free_bytes: s
                .measured
                .load(Ordering::Relaxed)
                .then(|| s.free.load(Ordering::Relaxed)),
            min_free_bytes: s.min_free.load(Ordering::Relaxed),
            clear_text: s.clear_text.load(Ordering::Relaxed),
        }
    }
    /// Counts a payload (or a poll's readings) turned away; `device` is the device
    /// id, or `unknown` for a topic no device claims.
    pub fn reject_payload(&self, device: &str, reason: RejectReason) {
        *lock(&self.payloads_rejected)
            .entry((device.to_string(), reason))
            .or_default() += 1;
    }
    /// As [`IngestMetrics::reject_payload`], and the installer's page keeps why.
    pub fn reject(&self, device: &str, rejected: &Rejected, at: DateTime<Utc>) {
        self.reject_payload(device, rejected.reason);
        self.with_diagnostics(device, |d| {
            *d.rejects.entry(rejected.reason).or_default() += 1;
            d.last_reject = Some((at, rejected.reason, rejected.detail.clone()));
        });
    }
    /// Rejections by device and reason (`communalia_payloads_rejected_total`).
    pub fn payloads_rejected(&self) -> BTreeMap<(String, RejectReason), u64> {
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
    /// Exception responses per device (`communalia_modbus_exceptions_total`).
    pub fn modbus_exceptions(&self) -> BTreeMap<String, u64> {
        lock(&self.modbus_exceptions).clone()
    }
    /// Registers a device so that it shows (as down) before its first reading.
    pub fn register_device(&self, device: &str) {
        lock(&self.health).entry(device.to_string()).or_default();
    }
    /// Registers a device with how it is reached, for the diagnostics.
    pub fn register_device_as(&self, device: &str, transport: String, profile: &str) {
        self.register_device(device);
        let mut map = lock(&self.diagnostics);
        let d = map.entry(device.to_string()).or_default();
        d.transport = transport;
        d.profile = profile.to_string();
    }
    pub fn record_success(&self, device: &str, at: DateTime<Utc>, latency: Option<Duration>) {
        let mut map = lock(&self.health);
        let h = entry(&mut map, device);
        h.last_success = Some(at);
        h.consecutive_failures = 0;
        h.last_latency = latency;
        h.last_poll_partial = false;
        h.polls += 1;
    }
    pub fn record_failure(&self, device: &str, error: String, exception: Option<u8>) {
        let mut map = lock(&self.health);
        let h = map.entry(device.to_string()).or_default();
        h.consecutive_failures = h.consecutive_failures.saturating_add(1);
        h.last_error = Some(error);
        h.polls += 1;
        if exception.is_some() {
            h.last_exception = exception;
        }
    }
    /// One Modbus poll's outcome: `transactions` requests sent, `exceptions` of
    /// them refused (the last with `last_exception`), and whether any value came
    /// back (`Ok` with the poll's latency) or not (`Err` with why).
    pub fn record_poll(
        &self,
        device: &str,
        at: DateTime<Utc>,
        transactions: u32,
        exceptions: &[(u8, String)],
        outcome: Result<Duration, String>,
    ) {
        self.add_modbus_transactions(device, u64::from(transactions));
        if !exceptions.is_empty() {
            *lock(&self.modbus_exceptions)
                .entry(device.to_string())
                .or_default() += exceptions.len() as u64;
        }
        let mut map = lock(&self.health);
        let h = map.entry(device.to_string()).or_default();
        h.polls += 1;
        h.last_cycle_transactions = Some(transactions);
        h.exceptions += exceptions.len() as u64;
        if let Some((code, what)) = exceptions.last() {
            h.last_exception = Some(*code);
            h.last_error = Some(what.clone());
        }
        match outcome {
            Ok(latency) => {
                h.last_success = Some(at);
                h.consecutive_failures = 0;
                h.last_latency = Some(latency);
                h.last_poll_partial = !exceptions.is_empty();
            }
            Err(why) => {
                h.consecutive_failures = h.consecutive_failures.saturating_add(1);
                h.last_error = Some(why);
            }
        }
    }
    /// The size of a device's read plan, once known.
    pub fn set_planned_transactions(&self, device: &str, n: u32) {
        lock(&self.health)
            .entry(device.to_string())
            .or_default()
            .planned_transactions = Some(n);
    }
    pub fn health(&self) -> BTreeMap<String, DeviceHealth> {
        lock(&self.health).clone()
    }
    /// Reads the per-device health in place, without copying it (the live
    /// evaluation looks up every device every second).
    pub fn with_health<R>(&self, f: impl FnOnce(&BTreeMap<String, DeviceHealth>) -> R) -> R {
        f(&lock(&self.health))
    }

    /// Everything the installer pages show, per device.
    pub fn diagnostics(&self) -> BTreeMap<String, DeviceDiagnostics> {
        lock(&self.diagnostics).clone()
    }
    pub fn diagnostics_of(&self, device: &str) -> Option<DeviceDiagnostics> {
        lock(&self.diagnostics).get(device).cloned()
    }
    /// Updates a device's diagnostics in place.
    pub fn with_diagnostics<R>(
        &self,
        device: &str,
        f: impl FnOnce(&mut DeviceDiagnostics) -> R,
    ) -> R {
        f(entry(&mut lock(&self.diagnostics), device))
    }
    /// Keeps a payload as the last heard on `topic`.
    pub fn record_payload(
        &self,
        device: &str,
        topic: &str,
        payload: &[u8],
        at: DateTime<Utc>,
        rejected: Option<String>,
    ) {
        let cut = &payload[..payload.len().min(MAX_RAW_PAYLOAD)];
        self.with_diagnostics(device, |d| {
            // Every message of a busy meter passes here: a topic already heard
            // keeps its entry and its buffer.
            if let Some(kept) = d.raw_payloads.get_mut(topic) {
                kept.at = at;
                kept.payload.clear();
                kept.payload.push_str(&String::from_utf8_lossy(cut));
                kept.rejected = rejected;
                return;
            }
            if d.raw_payloads.len() >= MAX_RAW_TOPICS {
                return;
            }
            d.raw_payloads.insert(
                topic.to_string(),
                RawPayload {
                    at,
                    payload: String::from_utf8_lossy(cut).into_owned(),
                    rejected,
                },
            );
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_failures_partial_polls_and_age() {
        let now = Utc::now();
        let age = Duration::from_secs(5);
        let m = IngestMetrics::default();
        m.register_device("a");
        assert_eq!(
            m.health()["a"].state(now, age),
            HealthState::Down,
            "never read"
        );
        m.record_poll("a", now, 2, &[], Ok(Duration::from_millis(3)));
        let h = &m.health()["a"];
        assert_eq!(h.state(now, age), HealthState::Up);
        assert_eq!(h.last_cycle_transactions, Some(2));
        m.record_poll(
            "a",
            now,
            2,
            &[(2, "refused".into())],
            Ok(Duration::from_millis(3)),
        );
        assert_eq!(m.health()["a"].state(now, age), HealthState::Degraded);
        assert!(m.health()["a"].is_up(now, age), "its values are live");
        m.record_poll("a", now, 1, &[], Err("timeout".into()));
        assert_eq!(m.health()["a"].state(now, age), HealthState::Degraded);
        m.record_poll("a", now, 1, &[], Err("timeout".into()));
        assert_eq!(m.health()["a"].state(now, age), HealthState::Down);
        m.record_poll("a", now, 2, &[], Ok(Duration::from_millis(3)));
        let h = &m.health()["a"];
        assert_eq!(h.state(now, age), HealthState::Up);
        assert_eq!(
            h.state(now + chrono::Duration::seconds(6), age),
            HealthState::Down,
            "stale"
        );
        assert_eq!((h.polls, h.exceptions, h.last_exception), (5, 1, Some(2)));
        assert_eq!(m.modbus_transactions()["a"], 8);
        assert_eq!(m.modbus_exceptions()["a"], 1);
    }

    #[test]
    fn payloads_are_kept_cut_and_per_topic() {
        let m = IngestMetrics::default();
        let now = Utc::now();
        m.record_payload("p", "t/1", &[b'x'; 5000], now, None);
        m.record_payload("p", "t/2", b"{\"power\": 1}", now, Some("bad".into()));
        let d = m.diagnostics_of("p").expect("diagnostics");
        assert_eq!(d.raw_payloads["t/1"].payload.len(), MAX_RAW_PAYLOAD);
        assert_eq!(d.raw_payloads["t/2"].rejected.as_deref(), Some("bad"));
    }
}
