//! Publishing the node's summary once a minute on NATS JetStream, with a durable
//! cursor: nothing lost while the federation is unreachable, nothing doubled.
//!
//! Each summary goes to `communalia.<node>.summary` with `Nats-Msg-Id =
//! <node>/<minute>`, and counts as shared only once JetStream has acknowledged it
//! (stored, on a cluster by a majority of its replicas). The cursor in the data
//! directory is the last minute acknowledged, every earlier one having been
//! acknowledged too. At each minute the publisher first resends, from the node's
//! history, the minutes after the cursor that it missed (an outage, a restart),
//! then publishes the current minute from the live snapshot. A summary whose
//! acknowledgement was lost is resent with the same id, and JetStream's
//! duplicate window stores it once.
//!
//! While the client is not connected nothing is published (the client would
//! otherwise queue it in memory): the history holds what the cursor has not
//! passed, and that is what is sent once the federation is back.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::stream::{Config as StreamSettings, StorageType};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{FederationConfig, StreamConfig};
use crate::cursor::Cursor;
use crate::identity::NodeKey;
use crate::source::NodeSource;
use crate::summary::{Summary, minute_of};
use crate::{Error, Result};

/// The header that carries a summary's signature (base64).
pub const SIGNATURE_HEADER: &str = "Communalia-Signature";
/// Subjects of every node's summaries.
pub const SUMMARY_SUBJECTS: &str = "communalia.*.summary";
/// At most this many summaries are awaiting their acknowledgement at once.
const IN_FLIGHT: usize = 256;

/// Connects to the federation's NATS servers, trying again in the background for
/// as long as they are unreachable (so that a node starts without them).
pub async fn connect(
    servers: &[String],
    credentials: Option<&std::path::Path>,
    name: &str,
) -> Result<async_nats::Client> {
    connect_with(
        servers,
        credentials,
        name,
        crate::config::default_ping_interval(),
    )
    .await
}

/// As [`connect`], pinging the server every `ping_interval`: after two pings
/// without an answer the connection counts as dead and the client reconnects,
/// to another server of the cluster if one answers.
pub async fn connect_with(
    servers: &[String],
    credentials: Option<&std::path::Path>,
    name: &str,
    ping_interval: Duration,
) -> Result<async_nats::Client> {
    let mut options = match credentials {
        Some(path) => async_nats::ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|e| Error::io(path, e))?,
        None => async_nats::ConnectOptions::new(),
    };
    options = options
        .name(name)
        .retry_on_initial_connect()
        .ping_interval(ping_interval)
        .connection_timeout(Duration::from_secs(5))
        // Back off to at most five seconds between tries: a federation coming back
        // is noticed within one publishing minute.
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((100 * attempts as u64).min(5_000))
        });
    let mut addrs = Vec::with_capacity(servers.len());
    for s in servers {
        let addr: async_nats::ServerAddr = s
            .parse()
            .map_err(|e| Error::Config(format!("key `nats`: `{s}` is not a NATS address: {e}")))?;
        addrs.push(addr);
    }
    options
        .connect(addrs)
        .await
        .map_err(|e| Error::Nats(format!("cannot connect to {}: {e}", servers.join(", "))))
}

/// The stream's settings when a node or a test creates it.
pub fn stream_settings(c: &StreamConfig) -> StreamSettings {
    StreamSettings {
        name: c.name.clone(),
        subjects: vec![SUMMARY_SUBJECTS.to_string()],
        num_replicas: c.replicas,
        duplicate_window: c.duplicate_window,
        max_age: c.max_age,
        storage: StorageType::File,
        ..Default::default()
    }
}

fn connected(client: &async_nats::Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}

/// What a publisher did since it started.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PublishCounts {
    /// Summaries JetStream acknowledged as new.
    pub stored: u64,
    /// Summaries JetStream already had (same `Nats-Msg-Id`).
    pub duplicates: u64,
    /// Minutes resent from the history.
    pub resent: u64,
}

/// The node's publisher.
pub struct Publisher {
    client: async_nats::Client,
    js: jetstream::Context,
    key: Arc<NodeKey>,
    source: NodeSource,
    cursor: Cursor,
    clock: Arc<dyn Clock>,
    config: FederationConfig,
    stream_ready: bool,
    counts: Arc<std::sync::Mutex<PublishCounts>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("node", &self.key.node_id())
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher on `client` for the node `key`, its cursor in `data_dir`.
    pub fn new(
        client: async_nats::Client,
        key: Arc<NodeKey>,
        source: NodeSource,
        data_dir: &std::path::Path,
        clock: Arc<dyn Clock>,
        config: FederationConfig,
    ) -> Result<Publisher> {
        let mut js = jetstream::new(client.clone());
        js.set_timeout(config.ack_timeout);
        Ok(Publisher {
            client,
            js,
            key,
            source,
            cursor: Cursor::open(data_dir)?,
            clock,
            config,
            stream_ready: false,
            counts: Arc::default(),
        })
    }

    /// What it did so far, readable while it runs.
    pub fn counts(&self) -> Arc<std::sync::Mutex<PublishCounts>> {
        self.counts.clone()
    }

    /// Publishes every minute until `cancel`.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(self.config.publish_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.step().await {
                tracing::warn!(node = %self.key.node_id(), error = %e, "federation: summaries not published this time");
            }
        }
    }

    /// One look at the clock: resend the minutes missed since the cursor, then
    /// publish the current one, if it is not published yet. The current minute is
    /// the live snapshot's own, so that its label and its figures always agree
    /// however long the resending took.
    pub async fn step(&mut self) -> Result<()> {
        let now = minute_of(self.clock.now());
        let through = self.cursor.position().published_through;
        if through.is_some_and(|t| t >= now) || !connected(&self.client) {
            return Ok(());
        }
        if !self.stream_ready {
            self.js
                .get_or_create_stream(stream_settings(&self.config.stream))
                .await
                .map_err(|e| Error::Nats(format!("stream `{}`: {e}", self.config.stream.name)))?;
            self.stream_ready = true;
        }
        let live = self.source.live().await;
        let minute = live.minute;
        if through.is_some_and(|t| t >= minute) {
            return Ok(());
        }
        if let Some(through) = through {
            let horizon = minute
                - chrono::Duration::from_std(self.config.catch_up)
                    .unwrap_or(chrono::Duration::days(1));
            let from = (through + chrono::Duration::minutes(1)).max(horizon);
            if from < minute {
                let missed = self.source.history(from, minute).await?;
                let n = missed.len() as u64;
                self.publish_all(&missed).await?;
                self.counts.lock().map(|mut c| c.resent += n).ok();
                if n > 0 {
                    tracing::info!(node = %self.key.node_id(), minutes = n, "federation: missed minutes resent from the history");
                }
            }
        }
        self.publish_all(std::slice::from_ref(&live)).await?;
        Ok(())
    }

    /// Publishes `summaries` (oldest first), a window of them in flight at once,
    /// and moves the cursor past each one acknowledged in order; stops at the
    /// first that is not, so that it is resent next time.
    async fn publish_all(&mut self, summaries: &[Summary]) -> Result<()> {
        for chunk in summaries.chunks(IN_FLIGHT) {
            let mut acks = Vec::with_capacity(chunk.len());
            for s in chunk {
                acks.push((s.minute, publish(&self.js, &self.key, s).await?));
            }
            for (minute, ack) in acks {
                let ack = ack.await.map_err(|e| {
                    Error::Nats(format!("summary of {minute} not acknowledged: {e}"))
                })?;
                {
                    let mut c = self
                        .counts
                        .lock()
                        .map_err(|_| Error::Nats("counts".into()))?;
                    if ack.duplicate {
                        c.duplicates += 1;
                    } else {
                        c.stored += 1;
                    }
                }
                self.cursor.set_published(minute)?;
            }
        }
        Ok(())
    }
}

/// Sends one signed summary; the future resolves with JetStream's acknowledgement.
pub async fn publish(
    js: &jetstream::Context,
    key: &NodeKey,
    summary: &Summary,
) -> Result<jetstream::context::PublishAckFuture> {
    use base64::Engine as _;
    let signed = summary.sign(key);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", summary.msg_id().as_str());
    headers.insert(
        SIGNATURE_HEADER,
        base64::engine::general_purpose::STANDARD
            .encode(signed.signature)
            .as_str(),
    );
    js.publish_with_headers(summary.subject(), headers, signed.payload.into())
        .await
        .map_err(|e| Error::Nats(format!("cannot publish {}: {e}", summary.msg_id())))
}

/// The minute after `t`.
pub fn next_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    minute_of(t) + chrono::Duration::minutes(1)
}
