//! The MQTT worker: one client for all MQTT devices, its event loop polled
//! continuously in its own task (a decode never waits on the network), each
//! message routed to the devices whose subscriptions match its topic.
//!
//! Nothing is lost across a crash or a restart: the client keeps a persistent
//! session (`clean_session = false`, a stable client id), so that the broker keeps
//! what arrives while the node is away, and acknowledges each QoS 1 message only
//! once the sink has made its readings durable in the write-ahead log. What the
//! broker then sends again, marked as a duplicate, is recognised by its digest in
//! the log and acknowledged without being stored twice.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use sensors::config::MqttDeviceConfig;
use sensors::profile::{MqttProfile, MqttState};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::BrokerEndpoint;
use crate::metrics::IngestMetrics;
use crate::plausible::{Gate, Limits, RejectReason, Rejected};
use crate::reading::Reading;
use crate::sink::{Accepted, AckId, PendingAck, ReadingsTx};
use crate::wal::message_digest;

/// One configured MQTT device, resolved against its profile.
#[derive(Debug, Clone)]
pub struct MqttDevice {
    pub id: Arc<str>,
    pub profile: &'static MqttProfile,
    pub config: MqttDeviceConfig,
    /// Factor that turns the device's own power into the site bus view.
    pub power_sign: f64,
    /// What its readings must respect to be accepted.
    pub limits: Limits,
}

/// What the decoder remembers of one device between messages.
#[derive(Debug, Clone)]
pub struct DeviceState {
    /// The profile's memory (per-channel values).
    pub decode: MqttState,
    /// The plausibility gate's (rate, counters).
    pub gate: Gate,
}

impl DeviceState {
    pub fn new(device: &MqttDevice) -> DeviceState {
        DeviceState {
            decode: MqttState::default(),
            gate: Gate::new(device.limits),
        }
    }
}

/// Connection settings of the node's MQTT client.
#[derive(Debug, Clone)]
pub struct MqttClientOptions {
    pub endpoint: BrokerEndpoint,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// The client id the node keeps from one start to the next, so that the broker
/// finds its persistent session again: read from `<dir>/mqtt-client-id`, or made up
/// (`communalia-` and 12 hex digits) and written there on the first start.
pub fn stable_client_id(dir: &std::path::Path) -> std::io::Result<String> {
    let path = dir.join("mqtt-client-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seed = format!("{nanos}-{}-{}", std::process::id(), dir.display());
    let id = format!(
        "communalia-{:012x}",
        message_digest(&seed, b"") & 0xffff_ffff_ffff
    );
    std::fs::create_dir_all(dir)?;
    // Durable before the broker hears of it: a session the broker keeps under an id
    // the node then forgets (a power cut, or a card failing, before the filesystem
    // wrote the file back) is never found again, and the messages the broker queues
    // for it never arrive. Written whole or not at all: a temporary file, synced,
    // renamed into place, and the directory synced.
    let tmp = dir.join("mqtt-client-id.tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut file, format!("{id}\n").as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(id)
}

/// The client's options for `endpoint`: host and port, and over `mqtts://` the
/// TLS connection with the broker's certificate checked (see
/// [`tls_client_config`]).
pub fn client_options(client_id: String, endpoint: &BrokerEndpoint) -> crate::Result<MqttOptions> {
    let (host, port) = endpoint.host_port();
    let mut options = MqttOptions::new(client_id, host, port);
    if let BrokerEndpoint::ExternalTls { ca_file, .. } = endpoint {
        let config = tls_client_config(ca_file.as_deref())?;
        options.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(config),
        ));
    }
    Ok(options)
}

/// The TLS settings of a connection to an `mqtts://` broker: its certificate must
/// chain to an authority of `ca_file` (PEM), or of the system's store when there
/// is none, and name the host connected to. rustls on ring, TLS 1.2 and 1.3.
pub fn tls_client_config(
    ca_file: Option<&std::path::Path>,
) -> crate::Result<Arc<rustls::ClientConfig>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let bad = |why: String| {
                crate::Error::Config(format!("[mqtt] ca_file {}: {why}", path.display()))
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(format!("not a PEM certificate file: {e}")))?;
            if certs.is_empty() {
                return Err(bad(
                    "no certificate in it (expected PEM `CERTIFICATE` blocks)".to_string(),
                ));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| bad(format!("a certificate in it cannot be used: {e}")))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "system certificate store: a certificate was skipped");
            }
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(crate::Error::Config(
                    "[mqtt] broker is mqtts:// but the system has no trusted authorities: set [mqtt] ca_file to the broker's authority (PEM)"
                        .to_string(),
                ));
            }
        }
    }
    // ring, as everywhere in the node (see web's `tls.rs`): rustls marks it
    // deprecated for its lack of post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| crate::Error::Config(format!("TLS versions: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

pub use sensors::mqtt::topic_matches;

/// A subscription of one device.
#[derive(Debug, Clone)]
pub struct Route {
    pub filter: String,
    pub device: usize,
}

/// Acknowledgements sent in one go, at most.
const ACK_GROUP: usize = 1024;

/// Messages received and not yet decoded, at most.
const DECODE_QUEUE: usize = 16_384;

/// How many digests of accepted messages are remembered to recognise redeliveries.
const RECENT_DIGESTS: usize = 200_000;

/// The digests of the most recently accepted messages, oldest forgotten first.
#[derive(Debug, Default)]
pub struct RecentDigests {
    set: HashSet<u64>,
    order: VecDeque<u64>,
}

impl RecentDigests {
    /// Starts from the digests found in the write-ahead log.
    pub fn new(from_log: impl IntoIterator<Item = u64>) -> Self {
        let mut recent = RecentDigests::default();
        for d in from_log {
            recent.insert(d);
        }
        recent
    }

    /// Remembers a message made durable.
    pub fn insert(&mut self, digest: u64) {
        if self.set.insert(digest) {
            self.order.push_back(digest);
            if self.order.len() > RECENT_DIGESTS
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }

    /// Whether a message with this digest was made durable.
    pub fn contains(&self, digest: u64) -> bool {
        self.set.contains(&digest)
    }
}

/// Starts the MQTT worker. Connection errors are logged and retried forever
/// (with a pause); they never stop the node. While `online` says `false` (the
/// write-ahead log cannot be written), the worker leaves the broker, which keeps
/// every unacknowledged message of the node's persistent session; it connects
/// again when `online` turns `true`, and the broker sends those messages again.
pub fn spawn_mqtt(
    opts: MqttClientOptions,
    devices: Vec<MqttDevice>,
    tx: ReadingsTx,
    metrics: Arc<IngestMetrics>,
    mut online: tokio::sync::watch::Receiver<bool>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    for d in &devices {
        metrics.register_device_as(&d.id, format!("mqtt {}", d.config.topic), &d.profile.id);
    }
    let routes = routes(&devices);
    let mut mqtt_options = match client_options(opts.client_id.clone(), &opts.endpoint) {
        Ok(o) => o,
        Err(e) => {
            // Checked when the node starts; a file changed since is said here.
            tracing::error!(error = %e, "MQTT client not started");
            return tokio::spawn(async {});
        }
    };
    mqtt_options.set_keep_alive(Duration::from_secs(15));
    mqtt_options.set_max_packet_size(256 * 1024, 256 * 1024);
    // The broker keeps the subscriptions and what arrives while the node is away;
    // messages are acknowledged once durable, not on receipt.
    mqtt_options.set_clean_session(false);
    mqtt_options.set_manual_acks(true);
    if let (Some(u), Some(p)) = (&opts.username, &opts.password) {
        mqtt_options.set_credentials(u.clone(), p.clone());
    }
    let filters: Vec<String> = {
        let mut f: Vec<String> = routes.iter().map(|r| r.filter.clone()).collect();
        f.sort();
        f.dedup();
        f
    };
    let span = tracing::info_span!("mqtt", client_id = %opts.client_id);
    // Decoding runs beside the socket: the event loop only hands messages over, so
    // that a burst is drained from the broker at once instead of waiting, message by
    // message, for JSON decoding (a broker drops QoS 1 messages for a subscriber whose
    // queue is full).
    let (raw_tx, mut raw_rx) = tokio::sync::mpsc::channel::<rumqttc::Publish>(DECODE_QUEUE);
    // Acknowledgements come back from the sink once the readings are durable, and
    // are sent from their own task (`ack` waits on the request channel, which the
    // event loop drains) through the client of the current session. One of an
    // earlier session that cannot be sent is harmless: the broker sends the message
    // again and its digest, durable in the log, tells it apart.
    let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<AckId>();
    let (session_tx, session_rx) = tokio::sync::watch::channel::<Option<AsyncClient>>(None);
    let acker = tokio::spawn(
        async move {
            // A group commit releases many acknowledgements at once: they are sent
            // together, waiting on the event loop only when its queue is full.
            let mut ids = Vec::with_capacity(ACK_GROUP);
            while ack_rx.recv_many(&mut ids, ACK_GROUP).await > 0 {
                let client = session_rx.borrow().clone();
                if let Some(client) = client {
                    for id in ids.drain(..) {
                        let p = id.as_publish();
                        let sent = match client.try_ack(&p) {
                            Err(rumqttc::ClientError::TryRequest(_)) => client.ack(&p).await,
                            other => other,
                        };
                        if let Err(e) = sent {
                            tracing::debug!(error = %e, "could not acknowledge a message");
                        }
                    }
                }
                ids.clear();
            }
        }
        .instrument(span.clone()),
    );
    let decoder_metrics = metrics.clone();
    let decoder = tokio::spawn(
        async move {
            let mut states: Vec<DeviceState> = devices.iter().map(DeviceState::new).collect();
            while let Some(p) = raw_rx.recv().await {
                let accepted = accept(&routes, &devices, &mut states, &decoder_metrics, p, &ack_tx);
                if tx.send(accepted).await.is_err() {
                    break; // the sink has stopped: the node is shutting down
                }
            }
        }
        .instrument(span.clone()),
    );
    tokio::spawn(
        async move {
            'sessions: loop {
                // Away from the broker while the log cannot be written.
                while !*online.borrow_and_update() {
                    tokio::select! {
                        _ = cancel.cancelled() => break 'sessions,
                        changed = online.changed() => {
                            if changed.is_err() {
                                break 'sessions;
                            }
                        }
                    }
                }
                let (client, mut eventloop) = AsyncClient::new(mqtt_options.clone(), 1024);
                session_tx.send_replace(Some(client.clone()));
                loop {
                    let event = tokio::select! {
                        _ = cancel.cancelled() => break 'sessions,
                        changed = online.changed() => {
                            if changed.is_err() {
                                break 'sessions;
                            }
                            if !*online.borrow_and_update() {
                                tracing::warn!("leaving the MQTT broker until the write-ahead log can be written; it keeps the messages meanwhile");
                                // Dropping the connection without a DISCONNECT: the
                                // persistent session and its messages stay with the broker.
                                session_tx.send_replace(None);
                                break;
                            }
                            continue;
                        }
                        e = eventloop.poll() => e,
                    };
                    match event {
                        Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                            tracing::info!(
                                subscriptions = filters.len(),
                                session_present = ack.session_present,
                                "connected to the MQTT broker"
                            );
                            // Subscribing from another task: the request channel is drained by
                            // this very loop, so awaiting it here could stall.
                            let client = client.clone();
                            let filters = filters.clone();
                            tokio::spawn(async move {
                                let subs = filters
                                    .into_iter()
                                    .map(|f| rumqttc::SubscribeFilter::new(f, QoS::AtLeastOnce));
                                if let Err(e) = client.subscribe_many(subs).await {
                                    tracing::warn!(error = %e, "could not subscribe");
                                }
                            });
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            metrics.add_mqtt_message();
                            if raw_tx.send(p).await.is_err() {
                                break 'sessions; // the decoder has stopped: the node is shutting down
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "MQTT connection lost, retrying in 1 s");
                            tokio::select! {
                                _ = cancel.cancelled() => break 'sessions,
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            }
                        }
                    }
                }
                drop(eventloop);
            }
            // What was received is decoded and made durable before the worker ends;
            // what is not acknowledged by then the broker keeps for the next start.
            drop(raw_tx);
            let _ = decoder.await;
            acker.abort();
            if let Some(client) = session_tx.borrow().clone() {
                let _ = client.try_disconnect();
            }
        }
        .instrument(span),
    )
}

/// What one message gives the sink: its readings, its digest, whether the broker
/// sent it again, and its acknowledgement for after the write. The sink, which
/// knows what is durable, recognises a redelivery of a message already stored.
fn accept(
    routes: &[Route],
    devices: &[MqttDevice],
    states: &mut [DeviceState],
    metrics: &IngestMetrics,
    p: rumqttc::Publish,
    ack_tx: &tokio::sync::mpsc::UnboundedSender<AckId>,
) -> Accepted {
    let digest = message_digest(&p.topic, &p.payload);
    let ack = (p.qos != QoS::AtMostOnce).then(|| PendingAck {
        id: AckId {
            qos: p.qos,
            pkid: p.pkid,
        },
        to: ack_tx.clone(),
    });
    Accepted {
        readings: route(routes, devices, states, metrics, &p.topic, &p.payload),
        digest: Some(digest),
        dup: p.dup,
        ack,
    }
}

/// Decodes one message for every device subscribed to its topic; `states` holds
/// each device's memory of its channels.
pub fn route(
    routes: &[Route],
    devices: &[MqttDevice],
    states: &mut [DeviceState],
    metrics: &IngestMetrics,
    topic: &str,
    payload: &[u8],
) -> Vec<Reading> {
    let now = sensors::clock::now();
    let arrived = std::time::Instant::now();
    let ts_ms = now.timestamp_millis();
    let mut out = Vec::new();
    let mut matched = false;
    let mut last_device = usize::MAX;
    for r in routes.iter().filter(|r| topic_matches(&r.filter, topic)) {
        if r.device == last_device {
            continue; // two filters of one device matching one topic: decode once
        }
        last_device = r.device;
        matched = true;
        let (Some(d), Some(state)) = (devices.get(r.device), states.get_mut(r.device)) else {
            continue;
        };
        // A flood is turned away before it costs any decoding.
        let decoded = state
            .gate
            .admit_message(arrived)
            .and_then(|()| {
                d.profile
                    .decode_with(&d.config, &mut state.decode, topic, payload)
                    .map_err(|e| Rejected {
                        reason: RejectReason::Decode,
                        detail: e.to_string(),
                    })
            })
            .and_then(|points| {
                let readings = crate::modbus::to_readings(
                    &d.id,
                    d.power_sign,
                    ts_ms,
                    points.iter().map(|p| p.sample).collect(),
                );
                state.gate.check(&readings).map(|()| (points, readings))
            });
        match decoded {
            Ok((points, readings)) => {
                metrics.record_success(&d.id, now, None);
                metrics.record_payload(&d.id, topic, payload, now, None);
                crate::modbus::record_values(metrics, &d.id, now, d.power_sign, &points, None);
                out.extend(readings);
            }
            Err(rejected) => {
                metrics.reject(&d.id, &rejected, now);
                metrics.record_payload(&d.id, topic, payload, now, Some(rejected.detail.clone()));
                tracing::warn!(device = %d.id, topic, reason = rejected.reason.as_str(), "payload rejected: {}", rejected.detail);
            }
        }
    }
    if !matched {
        metrics.reject_payload("unknown", RejectReason::UnknownTopic);
        tracing::debug!(topic, "message on a topic no device claims");
    }
    out
}

/// Routes from topic filters to devices, as [`spawn_mqtt`] builds them.
pub fn routes(devices: &[MqttDevice]) -> Vec<Route> {
    let mut routes = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        for filter in d.profile.subscriptions(&d.config) {
            routes.push(Route { filter, device: i });
        }
    }
    routes
}

#[cfg(test)]
mod tests {
    use super::{stable_client_id, topic_matches};

    #[test]
    fn the_client_id_stays_from_one_start_to_the_next() {
        let a = tempfile::tempdir().expect("tmp");
        let b = tempfile::tempdir().expect("tmp");
        let first = stable_client_id(a.path()).expect("id");
        assert!(
            first.starts_with("communalia-") && first.len() == 23,
            "{first}"
        );
        assert_eq!(
            stable_client_id(a.path()).expect("id"),
            first,
            "same directory"
        );
        assert_ne!(
            stable_client_id(b.path()).expect("id"),
            first,
            "another node"
        );
    }

    #[test]
    fn topic_filters_follow_mqtt_wildcards() {
        assert!(topic_matches("a/b", "a/b"));
        assert!(!topic_matches("a/b", "a/b/c"));
        assert!(topic_matches("a/+/c", "a/x/c"));
        assert!(!topic_matches("a/+/c", "a/x/d"));
        assert!(topic_matches("a/#", "a/x/y"));
        assert!(topic_matches(
            "shellies/em/emeter/+/power",
            "shellies/em/emeter/0/power"
        ));
        assert!(!topic_matches("a/b/c", "a/b"));
    }
}
