//! The actuation publisher: the node's one outgoing MQTT client. It publishes what
//! `query::actuation` decides, QoS 1, and knows nothing of what the messages mean.
//!
//! It has its own connection (client id `<client_id>-act`), so that a flood of
//! readings never delays a command and a command never waits on a decode. Its event
//! loop is polled continuously in its own task; errors are logged and retried,
//! never fatal. Messages are handed to the connection only while it is up; the last
//! message of every topic is kept and published again on every (re)connection, so a
//! broker that restarted without its retained messages has them back at once.

use std::collections::BTreeMap;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Outgoing, Packet, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::mqtt::MqttClientOptions;

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// Room in the client's request queue: every topic's last message is pushed at
/// once on connection, and commands come a few a minute.
const REQUEST_CAPACITY: usize = 256;

/// How long the publisher tries to get its last messages out when the node stops.
const FLUSH_ON_STOP: Duration = Duration::from_secs(1);

/// Starts the publisher. It runs until `cancel`; when `rx` closes it keeps the
/// connection (and the last messages) until then. `last_will` is what the broker
/// publishes when the connection dies without a goodbye.
pub fn spawn_publisher(
    opts: MqttClientOptions,
    mut rx: mpsc::Receiver<Publish>,
    last_will: Option<Publish>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    let client_id = format!("{}-act", opts.client_id);
    let mut mqtt_options = match crate::mqtt::client_options(client_id.clone(), &opts.endpoint) {
        Ok(o) => o,
        Err(e) => {
            // Checked when the node starts; a file changed since is said here.
            tracing::error!(error = %e, "MQTT publisher not started");
            return tokio::spawn(async {});
        }
    };
    mqtt_options.set_keep_alive(Duration::from_secs(15));
    if let Some(will) = last_will {
        mqtt_options.set_last_will(rumqttc::LastWill::new(
            will.topic,
            will.payload,
            QoS::AtLeastOnce,
            will.retain,
        ));
    }
    if let (Some(u), Some(p)) = (&opts.username, &opts.password) {
        mqtt_options.set_credentials(u.clone(), p.clone());
    }
    let (client, mut eventloop) = AsyncClient::new(mqtt_options, REQUEST_CAPACITY);
    let span = tracing::info_span!("mqtt_actuate", client_id = %client_id);
    tokio::spawn(
        async move {
            let mut last: BTreeMap<String, Publish> = BTreeMap::new();
            let mut connected = false;
            let mut rx_open = true;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    message = rx.recv(), if rx_open => match message {
                        Some(p) => {
                            if connected {
                                hand_over(&client, &p);
                            }
                            last.insert(p.topic.clone(), p);
                        }
                        None => rx_open = false,
                    },
                    event = eventloop.poll() => match event {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            connected = true;
                            tracing::info!(topics = last.len(), "actuation connected to the MQTT broker");
                            // The session is new: whatever was queued before is gone.
                            for p in last.values() {
                                hand_over(&client, p);
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            connected = false;
                            tracing::warn!(error = %e, "actuation: MQTT connection lost, retrying in 1 s");
                            tokio::select! {
                                _ = cancel.cancelled() => break,
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            }
                        }
                    },
                }
            }
            if connected && client.try_disconnect().is_ok() {
                // Give QoS 1 messages still in flight a moment, then say goodbye.
                let _ = tokio::time::timeout(FLUSH_ON_STOP, async {
                    loop {
                        match eventloop.poll().await {
                            Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                })
                .await;
            }
        }
        .instrument(span),
    )
}

/// Queues `p` on the connection; a full queue is logged (the message is still
/// published again on the next connection).
fn hand_over(client: &AsyncClient, p: &Publish) {
    if let Err(e) = client.try_publish(
        p.topic.clone(),
        QoS::AtLeastOnce,
        p.retain,
        p.payload.clone(),
    ) {
        tracing::warn!(topic = %p.topic, error = %e, "actuation: message not queued");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerEndpoint;
    use rumqttc::MqttOptions;

    /// Subscribes to `topic` and returns the first `n` (payload, retain) received.
    async fn receive(addr: std::net::SocketAddr, topic: &str, n: usize) -> Vec<(String, bool)> {
        let mut opts = MqttOptions::new(format!("actuate-test-sub-{n}"), "127.0.0.1", addr.port());
        opts.set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = AsyncClient::new(opts, 10);
        client
            .subscribe(topic, QoS::AtLeastOnce)
            .await
            .expect("queue subscribe");
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while got.len() < n {
            match tokio::time::timeout_at(deadline, eventloop.poll()).await {
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                    got.push((String::from_utf8_lossy(&p.payload).into_owned(), p.retain));
                }
                Ok(_) => {}
                Err(_) => panic!("only {got:?} received on {topic} within 10 s"),
            }
        }
        got
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn messages_wait_for_the_broker_and_are_published_retained() {
        let addr = crate::broker::free_local_addr().expect("free port");
        let (tx, rx) = mpsc::channel(8);
        let cancel = CancellationToken::new();
        let task = spawn_publisher(
            MqttClientOptions {
                endpoint: BrokerEndpoint::Embedded(addr),
                client_id: "actuate-test".into(),
                username: None,
                password: None,
            },
            rx,
            None,
            cancel.clone(),
        );
        // No broker yet: the publisher keeps the last message of each topic.
        for payload in ["old", "on"] {
            tx.send(Publish {
                topic: "site/school/allowed".into(),
                payload: payload.into(),
                retain: true,
            })
            .await
            .expect("publisher running");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        crate::broker::start_embedded(addr).expect("broker");
        // A subscriber arriving later still finds the last message, retained.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            receive(addr, "site/school/allowed", 1).await,
            vec![("on".to_string(), true)]
        );
        tx.send(Publish {
            topic: "site/school/allowed".into(),
            payload: b"off".to_vec(),
            retain: true,
        })
        .await
        .expect("publisher running");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            receive(addr, "site/school/allowed", 1).await,
            vec![("off".to_string(), true)]
        );
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops on cancel")
            .expect("no panic");
    }
}
