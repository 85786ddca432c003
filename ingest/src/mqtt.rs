//! The MQTT worker: one client for all MQTT devices, its event loop polled
//! continuously in its own task (a decode never waits on the network), each
//! message routed to the devices whose subscriptions match its topic.

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
use crate::reading::Reading;
use crate::sink::ReadingsTx;

/// One configured MQTT device, resolved against its profile.
#[derive(Debug, Clone)]
pub struct MqttDevice {
    pub id: Arc<str>,
    pub profile: &'static MqttProfile,
    pub config: MqttDeviceConfig,
    /// Factor that turns the device's own power into the site bus view.
    pub power_sign: f64,
}

/// Connection settings of the node's MQTT client.
#[derive(Debug, Clone)]
pub struct MqttClientOptions {
    pub endpoint: BrokerEndpoint,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

pub use sensors::mqtt::topic_matches;

/// A subscription of one device.
#[derive(Debug, Clone)]
pub struct Route {
    pub filter: String,
    pub device: usize,
}

/// Messages received and not yet decoded, at most.
const DECODE_QUEUE: usize = 16_384;

/// Starts the MQTT worker. Connection errors are logged and retried forever
/// (with a pause); they never stop the node.
pub fn spawn_mqtt(
    opts: MqttClientOptions,
    devices: Vec<MqttDevice>,
    tx: ReadingsTx,
    metrics: Arc<IngestMetrics>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    for d in &devices {
        metrics.register_device_as(&d.id, format!("mqtt {}", d.config.topic), &d.profile.id);
    }
    let routes = routes(&devices);
    let (host, port) = opts.endpoint.host_port();
    let mut mqtt_options = MqttOptions::new(opts.client_id.clone(), host, port);
    mqtt_options.set_keep_alive(Duration::from_secs(15));
    mqtt_options.set_max_packet_size(256 * 1024, 256 * 1024);
    if let (Some(u), Some(p)) = (&opts.username, &opts.password) {
        mqtt_options.set_credentials(u.clone(), p.clone());
    }
    let (client, mut eventloop) = AsyncClient::new(mqtt_options, 1024);
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
    let decoder_metrics = metrics.clone();
    let decoder = tokio::spawn(
        async move {
            let mut states = vec![MqttState::default(); devices.len()];
            while let Some(p) = raw_rx.recv().await {
                let readings = route(
                    &routes,
                    &devices,
                    &mut states,
                    &decoder_metrics,
                    &p.topic,
                    &p.payload,
                );
                if !readings.is_empty() && tx.send(readings).await.is_err() {
                    break; // the sink has stopped: the node is shutting down
                }
            }
        }
        .instrument(span.clone()),
    );
    tokio::spawn(
        async move {
            loop {
                let event = tokio::select! {
                    _ = cancel.cancelled() => break,
                    e = eventloop.poll() => e,
                };
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        tracing::info!(
                            subscriptions = filters.len(),
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
                            break; // the decoder has stopped: the node is shutting down
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "MQTT connection lost, retrying in 1 s");
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                }
            }
            let _ = client.try_disconnect();
            // What was received is decoded before the worker ends.
            drop(raw_tx);
            let _ = decoder.await;
        }
        .instrument(span),
    )
}

/// Decodes one message for every device subscribed to its topic; `states` holds
/// each device's memory of its channels.
pub fn route(
    routes: &[Route],
    devices: &[MqttDevice],
    states: &mut [MqttState],
    metrics: &IngestMetrics,
    topic: &str,
    payload: &[u8],
) -> Vec<Reading> {
    let now = chrono::Utc::now();
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
        match d.profile.decode_with(&d.config, state, topic, payload) {
            Ok(points) => {
                metrics.record_success(&d.id, now, None);
                metrics.record_payload(&d.id, topic, payload, now, None);
                crate::modbus::record_values(metrics, &d.id, now, d.power_sign, &points, None);
                out.extend(crate::modbus::to_readings(
                    &d.id,
                    d.power_sign,
                    ts_ms,
                    points.into_iter().map(|p| p.sample).collect(),
                ));
            }
            Err(e) => {
                metrics.reject_payload(&d.id);
                metrics.record_payload(&d.id, topic, payload, now, Some(e.to_string()));
                tracing::warn!(device = %d.id, topic, error = %e, "payload rejected");
            }
        }
    }
    if !matched {
        metrics.reject_payload("unknown");
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
    use super::topic_matches;

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
