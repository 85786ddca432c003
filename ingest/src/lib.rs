//! Ingest: the workers that read devices (Modbus TCP polling, MQTT subscriptions)
//! and turn what they hear into Arrow record batches in the DESIGN.md §2 schema, in
//! the site sign convention, kept in a live in-memory store. It owns the `[mqtt]`
//! and `[storage]` configuration, the embedded broker, the ingest counters and the
//! device health. It never decides anything about power: that is `query`'s job.
//!
//! Every worker sends its readings to one sink task, the only writer of the store;
//! a bad payload or a silent device is counted and logged with the device named and
//! never stops the other workers.

pub mod actuate;
pub mod broker;
pub mod config;
pub mod diagnosis;
pub mod history;
pub mod metrics;
pub mod modbus;
pub mod mqtt;
pub mod plausible;
pub mod probe;
pub mod reading;
pub mod sink;
pub mod storage;
pub mod store;
pub mod wal;

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use sensors::config::DeviceConfig;
use sensors::profile::{self, Profile};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::history::History;
use crate::metrics::IngestMetrics;
use crate::modbus::{Link, ModbusDevice, ModbusSource};
use crate::mqtt::{MqttClientOptions, MqttDevice, RecentDigests};
use crate::sink::SinkTargets;
use crate::store::LiveStore;
use crate::wal::{Replayed, Wal};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    /// `key` names the configuration key at fault, when one is.
    #[error("device `{device}`: {}{problem}", key.map(|k| format!("key `{k}`: ")).unwrap_or_default())]
    Device {
        device: String,
        key: Option<&'static str>,
        problem: String,
    },
    #[error("cannot listen on {addr} for the {what}: {source}")]
    Listen {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("probing {target}: {problem}")]
    Probe { target: String, problem: String },
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error(transparent)]
    Wal(#[from] wal::WalError),
    #[error(transparent)]
    History(#[from] history::HistoryError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The configured devices, each resolved to the worker that will read it.
#[derive(Debug, Default)]
pub struct Workers {
    pub modbus: Vec<ModbusDevice>,
    pub mqtt: Vec<MqttDevice>,
}

/// Checks every device against its profile and transport; each error names the device.
pub fn resolve_devices(devices: &[DeviceConfig]) -> Result<Workers> {
    let mut workers = Workers::default();
    let mut ids = BTreeSet::new();
    for d in devices {
        let err_at = |key: Option<&'static str>, problem: String| Error::Device {
            device: d.id.clone(),
            key,
            problem,
        };
        let err = |problem: String| err_at(None, problem);
        if d.id.is_empty()
            || !d
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(err_at(
                Some("id"),
                "ids use letters, digits, `-` and `_` only (they appear in URLs)".into(),
            ));
        }
        if !ids.insert(d.id.as_str()) {
            return Err(err_at(Some("id"), "this id is used by two devices".into()));
        }
        let profile =
            profile::lookup(&d.profile).map_err(|e| err_at(Some("profile"), e.to_string()))?;
        let sign = d
            .role
            .bus_sign(d.power_sign.unwrap_or(profile.power_sign()));
        for (key, value) in [
            ("max_power_w", d.max_power_w),
            ("max_messages_per_s", d.max_messages_per_s),
        ] {
            if let Some(v) = value
                && !(v.is_finite() && v > 0.0)
            {
                return Err(err_at(Some(key), format!("{v} is not a positive number")));
            }
        }
        if d.max_messages_per_s.is_some() && d.is_polled() {
            return Err(err_at(
                Some("max_messages_per_s"),
                "a polled device is read at its poll_interval; the limit is for MQTT devices"
                    .into(),
            ));
        }
        if d.sunspec_model.is_some() && !matches!(profile, Profile::SunSpec) {
            return Err(err_at(
                Some("sunspec_model"),
                format!(
                    "profile `{}` is not SunSpec; remove `sunspec_model`",
                    d.profile
                ),
            ));
        }
        if let Some(id) = d.sunspec_model
            && sensors::sunspec::model_definition(id).is_none()
        {
            return Err(err_at(
                Some("sunspec_model"),
                format!("model {id} is not one this node decodes"),
            ));
        }
        let limits = plausible::Limits::of(d);
        if !d.registers.is_empty() && !matches!(profile, Profile::Modbus(_)) {
            return Err(err_at(
                Some("registers"),
                format!(
                    "profile `{}` does not read configured registers; remove `registers`",
                    d.profile
                ),
            ));
        }
        match profile {
            Profile::SunSpec | Profile::Modbus(_) => {
                let (link, unit) = match (&d.modbus, &d.serial) {
                    (Some(m), None) => (
                        Link::Tcp {
                            host: m.host.clone(),
                            port: m.port,
                        },
                        m.unit,
                    ),
                    (None, Some(s)) => {
                        s.check().map_err(|e| err_at(Some("serial"), e))?;
                        (Link::Serial(s.clone()), s.unit)
                    }
                    (Some(_), Some(_)) => {
                        return Err(err_at(
                            Some("serial"),
                            "a device is reached over `modbus` (TCP) or `serial` (RTU), not both"
                                .into(),
                        ));
                    }
                    (None, None) => {
                        return Err(err(format!(
                            "profile `{}` is read over Modbus: add `modbus = {{ host = \"…\", port = 502, unit = 1 }}` or `serial = {{ path = \"/dev/ttyUSB0\", baud = 9600, parity = \"none\", stop_bits = 1, unit = 1 }}`",
                            d.profile
                        )));
                    }
                };
                if d.mqtt.is_some() {
                    return Err(err_at(
                        Some("mqtt"),
                        format!(
                            "profile `{}` is read over Modbus; remove the `mqtt` key",
                            d.profile
                        ),
                    ));
                }
                if let Link::Serial(s) = &link
                    && let Some(other) = workers.modbus.iter().find(|o| match &o.link {
                        Link::Serial(t) => t.path == s.path && !t.same_line(s),
                        Link::Tcp { .. } => false,
                    })
                {
                    return Err(err_at(
                        Some("serial"),
                        format!(
                            "{} is shared with device `{}` at other line settings ({}); devices on one bus use the same baud, parity, stop and data bits",
                            s.path,
                            other.id,
                            other.link.describe()
                        ),
                    ));
                }
                // Port 0 names no device yet: it stands for a port assigned at
                // start (the demo's simulators take free ports and write them
                // in), so two such placeholders are not the same device.
                // Two SunSpec devices may share a unit when they read different
                // models: an inverter (pv) and the grid meter behind it (grid).
                let reads = matches!(profile, Profile::SunSpec)
                    .then(|| modbus::sunspec_reads(d.sunspec_model, d.role));
                if let Some(other) = workers.modbus.iter().find(|o| {
                    o.link.key() == link.key()
                        && o.unit == unit
                        && !link.is_unassigned_port()
                        && (reads.is_none()
                            || o.sunspec_reads().is_none()
                            || reads == o.sunspec_reads())
                }) {
                    return Err(err_at(
                        Some(if d.serial.is_some() {
                            "serial"
                        } else {
                            "modbus"
                        }),
                        format!(
                            "unit {unit} on {} is already device `{}`",
                            link.describe(),
                            other.id
                        ),
                    ));
                }
                let source = match profile {
                    Profile::Modbus(p) => ModbusSource::Profile(Arc::new(
                        p.for_device(&d.registers)
                            .map_err(|e| err_at(Some("registers"), e))?,
                    )),
                    _ => ModbusSource::SunSpec {
                        model: d.sunspec_model,
                    },
                };
                workers.modbus.push(ModbusDevice {
                    id: d.id.as_str().into(),
                    link,
                    unit,
                    source,
                    poll_interval: d.poll_interval,
                    timeout: d.timeout,
                    role: d.role,
                    power_sign: d.power_sign,
                    limits,
                });
            }
            Profile::Mqtt(p) => {
                let m = d.mqtt.as_ref().ok_or_else(|| {
                    err(format!(
                        "profile `{}` is read over MQTT: add `mqtt = {{ topic = \"…\" }}`",
                        d.profile
                    ))
                })?;
                if d.modbus.is_some() || d.serial.is_some() {
                    return Err(err_at(
                        Some(if d.modbus.is_some() {
                            "modbus"
                        } else {
                            "serial"
                        }),
                        format!(
                            "profile `{}` is read over MQTT; remove the `modbus` key",
                            d.profile
                        ),
                    ));
                }
                if m.topic.is_empty() || m.topic.contains(['+', '#']) {
                    return Err(err_at(
                        Some("mqtt"),
                        "mqtt.topic must be a plain topic without wildcards".into(),
                    ));
                }
                p.check_device(m).map_err(|e| err_at(Some("mqtt"), e))?;
                workers.mqtt.push(MqttDevice {
                    id: d.id.as_str().into(),
                    profile: p,
                    config: m.clone(),
                    power_sign: sign,
                    limits,
                });
            }
        }
    }
    Ok(workers)
}

/// The durable side of ingest, opened (and replayed) before the workers start.
#[derive(Debug, Default)]
pub struct Durability {
    /// `None`: readings live in memory only (tests, the bench's "WAL off" side).
    pub wal: Option<Arc<Mutex<Wal>>>,
    /// Digests of the MQTT messages the log holds, to recognise redeliveries.
    pub recovered: HashSet<u64>,
    /// The Parquet history durable readings go to.
    pub history: Option<Arc<History>>,
}

/// Opens the write-ahead log in `dir`, puts what it holds back into the live store
/// and, for the records the history does not hold yet, into the history's pending
/// readings; returns the log with what replay found (damage included, for the
/// caller to report).
pub fn open_wal(
    dir: &Path,
    store: &LiveStore,
    history: Option<&History>,
) -> Result<(Arc<Mutex<Wal>>, Replayed)> {
    open_wal_sealed(dir, store, history, None)
}

/// [`open_wal`] of a log whose records are sealed with `sealer` (an encrypted node).
pub fn open_wal_sealed(
    dir: &Path,
    store: &LiveStore,
    history: Option<&History>,
    sealer: Option<Arc<keyring::RecordSealer>>,
) -> Result<(Arc<Mutex<Wal>>, Replayed)> {
    let (wal, replayed) = Wal::open_sealed(dir, wal::SEGMENT_BYTES, sealer)?;
    let in_parquet = history.map_or(0, History::wal_checkpoint);
    for (record, readings) in &replayed.records {
        for chunk in readings.chunks(sink::MAX_BATCH_ROWS) {
            store.append(chunk)?;
        }
        if let Some(h) = history
            && *record >= in_parquet
        {
            h.add_pending(Some(*record), readings)?;
        }
    }
    Ok((Arc::new(Mutex::new(wal)), replayed))
}

/// The running ingest: its store, counters and worker tasks.
#[derive(Debug)]
pub struct Ingest {
    pub store: Arc<LiveStore>,
    pub metrics: Arc<IngestMetrics>,
    workers: Vec<JoinHandle<()>>,
    sink: JoinHandle<()>,
    history: Option<JoinHandle<()>>,
    tx: sink::ReadingsTx,
}

impl Ingest {
    /// Starts one worker per Modbus connection (devices on one gateway, host:port
    /// or serial bus share it), one MQTT client for all MQTT devices
    /// (when there are any and `mqtt` is given) and the sink.
    pub fn start(
        workers: Workers,
        mqtt: Option<MqttClientOptions>,
        store: Arc<LiveStore>,
        metrics: Arc<IngestMetrics>,
        durability: Durability,
        cancel: CancellationToken,
    ) -> Ingest {
        let (history_tx, history) = match durability.history {
            Some(h) => {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                let writer = history::spawn_writer(h, rx, durability.wal.clone(), cancel.clone());
                (Some(tx), Some(writer))
            }
            None => (None, None),
        };
        let targets = SinkTargets {
            store: store.clone(),
            metrics: metrics.clone(),
            wal: durability.wal,
            history: history_tx,
        };
        // The MQTT worker leaves the broker while the log cannot be written.
        let (online_tx, online_rx) = tokio::sync::watch::channel(true);
        let (tx, sink) = sink::spawn_sink(
            targets,
            RecentDigests::new(durability.recovered),
            Some(online_tx),
            cancel.clone(),
        );
        let mut handles = Vec::new();
        handles.extend(modbus::spawn_modbus_links(
            workers.modbus,
            tx.clone(),
            metrics.clone(),
            cancel.clone(),
        ));
        if let Some(opts) = mqtt
            && !workers.mqtt.is_empty()
        {
            handles.push(mqtt::spawn_mqtt(
                opts,
                workers.mqtt,
                tx.clone(),
                metrics.clone(),
                online_rx,
                cancel.clone(),
            ));
        }
        Ingest {
            store,
            metrics,
            workers: handles,
            sink,
            history,
            tx,
        }
    }

    /// A way in to the sink for readings that no worker reads (the services'
    /// recorded allocation): durable and in the history like the others.
    pub fn sender(&self) -> sink::ReadingsTx {
        self.tx.clone()
    }

    /// Waits for the workers, then the sink, then the history writer to finish
    /// (after cancellation), so that everything accepted is in the store and in
    /// the history files.
    pub async fn join(self) {
        for h in self.workers {
            let _ = h.await;
        }
        let _ = self.sink.await;
        if let Some(h) = self.history {
            let _ = h.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devices(text: &str) -> Vec<DeviceConfig> {
        #[derive(serde::Deserialize)]
        struct File {
            device: Vec<DeviceConfig>,
        }
        toml::from_str::<File>(text)
            .unwrap_or_else(|e| panic!("{e}"))
            .device
    }

    const TWO_UNIT_ONES: &str = r#"
[[device]]
id = "inverter"
role = "pv"
profile = "sunspec"
modbus = { host = "127.0.0.1", port = PORT_A, unit = 1 }

[[device]]
id = "meter"
role = "grid"
profile = "sdm630"
modbus = { host = "127.0.0.1", port = PORT_B, unit = 1 }
"#;

    #[test]
    fn one_unit_on_one_address_is_one_device() {
        let text = TWO_UNIT_ONES
            .replace("PORT_A", "502")
            .replace("PORT_B", "502");
        let err = resolve_devices(&devices(&text))
            .expect_err("the same unit twice")
            .to_string();
        assert!(
            err.contains("meter") && err.contains("unit 1") && err.contains("inverter"),
            "{err}"
        );
        let text = TWO_UNIT_ONES
            .replace("PORT_A", "502")
            .replace("PORT_B", "1502");
        assert_eq!(
            resolve_devices(&devices(&text))
                .expect("other ports")
                .modbus
                .len(),
            2
        );
    }

    /// An inverter and the grid meter behind it answer at one unit: a `pv` and a
    /// `grid` SunSpec device may share it, each reading its own models; two
    /// devices reading the same models may not.
    #[test]
    fn an_inverter_and_its_meter_may_share_a_unit() {
        let both = TWO_UNIT_ONES
            .replace("PORT_A", "502")
            .replace("PORT_B", "502")
            .replace("profile = \"sdm630\"", "profile = \"sunspec\"");
        assert_eq!(
            resolve_devices(&devices(&both))
                .expect("two roles")
                .modbus
                .len(),
            2
        );
        let same_role = both.replace("role = \"grid\"", "role = \"pv\"");
        assert!(resolve_devices(&devices(&same_role)).is_err());
        // The same role, but one forced onto the meter model: different models.
        let forced = same_role.replace("id = \"meter\"", "id = \"meter\"\nsunspec_model = 203");
        assert_eq!(
            resolve_devices(&devices(&forced))
                .expect("another model")
                .modbus
                .len(),
            2
        );
        let unknown = forced.replace("sunspec_model = 203", "sunspec_model = 999");
        let err = resolve_devices(&devices(&unknown))
            .expect_err("no such model")
            .to_string();
        assert!(
            err.contains("sunspec_model") && err.contains("999"),
            "{err}"
        );
    }

    /// Port 0 is a placeholder for a port assigned at start (config/demo.toml).
    #[test]
    fn placeholder_ports_are_not_compared() {
        let text = TWO_UNIT_ONES.replace("PORT_A", "0").replace("PORT_B", "0");
        assert_eq!(
            resolve_devices(&devices(&text))
                .expect("placeholders")
                .modbus
                .len(),
            2
        );
    }
}
