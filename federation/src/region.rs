//! The region: a reader of every node's summaries (`communalia region`).
//!
//! A durable JetStream pull consumer reads the stream (the stream remembers how
//! far, so a restarted region goes on where it stopped); each summary's signature
//! is checked against the key `region.toml` gives for its node, and a summary
//! that fails is counted by node and reason and dropped. The latest summary of
//! each node is kept in memory and shown to DataFusion as the table `nodes_live`
//! (one row per configured node, the ones never heard from included), beside
//! `summaries`, the nodes' daily archives on the bucket (a listing table over
//! `s3://bucket/`, partitioned by `node` and `date`). The page, the JSON API and
//! every total are queries over these two tables.

pub mod compact;
pub mod web;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, FromConsumer as _, pull};
use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, RecordBatch, StringBuilder,
    TimestampMillisecondBuilder, UInt32Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::Session;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use object_store::ObjectStore;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::RegionFile;
use crate::identity::PublicKey;
use crate::publish::SIGNATURE_HEADER;
use crate::summary::{Refusal, Summary};
use crate::witness::WitnessStatement;
use crate::{Error, Result};

/// A node as the region knows it.
#[derive(Debug, Clone)]
pub struct KnownNode {
    pub id: String,
    pub name: String,
    pub key: PublicKey,
}

/// What the region has heard: each node's latest summary, and what it refused.
pub struct RegionState {
    known: BTreeMap<String, KnownNode>,
    latest: RwLock<BTreeMap<String, Summary>>,
    /// Refused summaries by (node as the subject named it, reason).
    refused: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// When a summary naming each node was last refused.
    last_refused: Mutex<BTreeMap<String, DateTime<Utc>>>,
    accepted: AtomicU64,
    /// Each witness's latest statement, with when it came.
    statements: RwLock<BTreeMap<String, (DateTime<Utc>, WitnessStatement)>>,
    /// Witness statements refused (unknown witness, bad signature, malformed).
    statements_refused: AtomicU64,
    clock: Arc<dyn Clock>,
    stale_after: Duration,
}

/// How long a witness's statement stands without a newer one: witnesses speak
/// once a minute, so one silent this long says nothing any more.
pub const STATEMENT_STANDS: Duration = Duration::from_secs(10 * 60);

impl std::fmt::Debug for RegionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionState")
            .field("nodes", &self.known.len())
            .finish_non_exhaustive()
    }
}

/// One row of `nodes_live`, also the JSON of `/api/region/live`'s nodes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeRow {
    pub id: String,
    pub name: String,
    /// The latest summary, when the node has been heard from.
    pub latest: Option<Summary>,
    /// Seconds since the end of the latest summary's minute.
    pub age_s: Option<f64>,
    /// Never heard from, too old, or itself saying its data is stale.
    pub stale: bool,
    /// Summaries naming this node that the region refused, when there were any:
    /// a forger using its name, or the node itself signing with a key the region
    /// does not know for it.
    pub refused: Option<NodeRefused>,
    /// The witnesses that refuse this node's latest checkpoint, by their current
    /// statements: its journal no longer extends what they cosigned.
    pub witness_refusals: Vec<WitnessRefusal>,
}

/// One witness refusing a node's journal.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WitnessRefusal {
    pub witness: String,
    /// The witness's name in the region's configuration.
    pub witness_name: String,
    pub size: u64,
    pub cosigned: u64,
    pub status: u16,
    pub at: String,
}

/// What the region refused of one node since it started.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeRefused {
    pub count: u64,
    /// The reasons, as in `/api/region/live`'s `refused.by` (`bad_signature`...).
    pub reasons: Vec<&'static str>,
    /// When the latest was refused.
    pub last: DateTime<Utc>,
}

impl RegionState {
    pub fn new(file: &RegionFile, clock: Arc<dyn Clock>) -> Result<RegionState> {
        let mut known = BTreeMap::new();
        for n in &file.nodes {
            let key = PublicKey::parse(&n.key)
                .map_err(|why| Error::Config(format!("[[node]] `{}`: {why}", n.id)))?;
            known.insert(
                n.id.clone(),
                KnownNode {
                    id: n.id.clone(),
                    name: n.name.clone().unwrap_or_else(|| n.id.clone()),
                    key,
                },
            );
        }
        Ok(RegionState {
            known,
            latest: RwLock::default(),
            refused: Mutex::default(),
            last_refused: Mutex::default(),
            accepted: AtomicU64::new(0),
            statements: RwLock::default(),
            statements_refused: AtomicU64::new(0),
            clock,
            stale_after: file.region.stale_after,
        })
    }

    /// Checks one received summary and keeps it if it is its node's newest.
    pub fn receive(
        &self,
        subject: &str,
        payload: &[u8],
        signature_b64: Option<&str>,
    ) -> std::result::Result<(), Refusal> {
        match self.check(subject, payload, signature_b64) {
            Ok(summary) => {
                self.keep([summary]);
                Ok(())
            }
            Err(refusal) => {
                self.refuse(subject, &refusal);
                Err(refusal)
            }
        }
    }

    /// Checks received summaries (subject, payload, signature) as
    /// [`RegionState::receive`] does, each node's newest kept and each refusal
    /// counted: the signatures are checked without holding a lock, the accepted
    /// summaries kept under one, so that several threads can each check a share
    /// of a batch at once. Returns how many were accepted.
    pub fn receive_many<'a>(
        &self,
        received: impl IntoIterator<Item = (&'a str, &'a [u8], Option<&'a str>)>,
    ) -> u64 {
        let mut accepted = Vec::new();
        for (subject, payload, signature_b64) in received {
            match self.check(subject, payload, signature_b64) {
                Ok(summary) => accepted.push(summary),
                Err(refusal) => self.refuse(subject, &refusal),
            }
        }
        self.keep(accepted)
    }

    /// The signature and the summary of one received message.
    fn check(
        &self,
        subject: &str,
        payload: &[u8],
        signature_b64: Option<&str>,
    ) -> std::result::Result<Summary, Refusal> {
        let signature =
            signature_b64.and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok());
        crate::summary::verify(subject, payload, signature.as_deref(), |node| {
            self.known.get(node).map(|n| n.key)
        })
    }

    /// Keeps each checked summary that is its node's newest; counts them all as
    /// accepted once they are kept (so whoever sees the count sees them kept).
    fn keep(&self, summaries: impl IntoIterator<Item = Summary>) -> u64 {
        let mut count = 0;
        let mut latest = self.latest.write().unwrap_or_else(|e| e.into_inner());
        for summary in summaries {
            count += 1;
            let newer = latest
                .get(&summary.node)
                .is_none_or(|old| old.minute <= summary.minute);
            if newer {
                latest.insert(summary.node.clone(), summary);
            }
        }
        drop(latest);
        self.accepted.fetch_add(count, Ordering::Relaxed);
        count
    }

    /// Counts a refused summary by the node its subject names and the reason.
    fn refuse(&self, subject: &str, refusal: &Refusal) {
        let node = subject
            .strip_prefix("communalia.")
            .and_then(|s| s.strip_suffix(".summary"))
            .unwrap_or(subject)
            .to_string();
        tracing::warn!(%node, reason = refusal.reason(), %refusal, "region: summary refused");
        self.last_refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node.clone(), self.clock.now());
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        *refused.entry((node, refusal.reason())).or_default() += 1;
    }

    /// Checks one witness statement and keeps it as that witness's latest.
    pub fn receive_statement(
        &self,
        subject: &str,
        payload: &[u8],
        signature_b64: Option<&str>,
    ) -> std::result::Result<(), Refusal> {
        let signature =
            signature_b64.and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok());
        match WitnessStatement::verify(subject, payload, signature.as_deref(), |node| {
            self.known.get(node).map(|n| n.key)
        }) {
            Ok(statement) => {
                if !statement.refusals.is_empty() {
                    tracing::warn!(witness = %statement.witness, refused = ?statement.refusals.iter().map(|r| &r.node).collect::<Vec<_>>(), "region: a witness refuses journals");
                }
                self.statements
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(statement.witness.clone(), (self.clock.now(), statement));
                Ok(())
            }
            Err(refusal) => {
                tracing::warn!(%subject, reason = refusal.reason(), %refusal, "region: witness statement refused");
                self.statements_refused.fetch_add(1, Ordering::Relaxed);
                Err(refusal)
            }
        }
    }

    /// Witness statements refused since the start.
    pub fn statements_refused(&self) -> u64 {
        self.statements_refused.load(Ordering::Relaxed)
    }

    /// The standing refusals of the witnesses heard from within
    /// [`STATEMENT_STANDS`], by the node refused.
    fn witness_refusals(&self, now: DateTime<Utc>) -> BTreeMap<String, Vec<WitnessRefusal>> {
        let statements = self.statements.read().unwrap_or_else(|e| e.into_inner());
        let mut out: BTreeMap<String, Vec<WitnessRefusal>> = BTreeMap::new();
        for (witness, (heard, statement)) in statements.iter() {
            if (now - *heard)
                .to_std()
                .is_ok_and(|age| age > STATEMENT_STANDS)
            {
                continue;
            }
            let witness_name = self
                .known
                .get(witness)
                .map_or_else(|| witness.clone(), |n| n.name.clone());
            for r in &statement.refusals {
                out.entry(r.node.clone()).or_default().push(WitnessRefusal {
                    witness: witness.clone(),
                    witness_name: witness_name.clone(),
                    size: r.size,
                    cosigned: r.cosigned,
                    status: r.status,
                    at: r.at.clone(),
                });
            }
        }
        out
    }

    /// Summaries accepted since the start.
    /// The key of each node the region knows.
    pub fn keys(&self) -> BTreeMap<String, PublicKey> {
        self.known
            .iter()
            .map(|(id, n)| (id.clone(), n.key))
            .collect()
    }

    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Refused summaries by node and reason.
    pub fn refused(&self) -> BTreeMap<(String, &'static str), u64> {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn refused_total(&self) -> u64 {
        self.refused().values().sum()
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Every configured node with its latest summary and age, by id.
    pub fn rows(&self) -> Vec<NodeRow> {
        let now = self.clock.now();
        let refused = self.refused();
        let last_refused = self
            .last_refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut witness_refusals = self.witness_refusals(now);
        let latest = self.latest.read().unwrap_or_else(|e| e.into_inner());
        self.known
            .values()
            .map(|n| {
                let summary = latest.get(&n.id).cloned();
                let age_s = summary.as_ref().map(|s| {
                    let end = s.minute + chrono::Duration::minutes(1);
                    ((now - end).num_milliseconds() as f64 / 1000.0).max(0.0)
                });
                let stale = match (&summary, age_s) {
                    (Some(s), Some(age)) => s.stale || age > self.stale_after.as_secs_f64(),
                    _ => true,
                };
                let mine = refused.iter().filter(|((node, _), _)| *node == n.id);
                let count: u64 = mine.clone().map(|(_, c)| c).sum();
                let refused =
                    last_refused
                        .get(&n.id)
                        .filter(|_| count > 0)
                        .map(|last| NodeRefused {
                            count,
                            reasons: mine.map(|((_, reason), _)| *reason).collect(),
                            last: *last,
                        });
                NodeRow {
                    id: n.id.clone(),
                    name: n.name.clone(),
                    latest: summary,
                    age_s,
                    stale,
                    refused,
                    witness_refusals: witness_refusals.remove(&n.id).unwrap_or_default(),
                }
            })
            .collect()
    }
}

/// The columns of `nodes_live`.
pub fn live_schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("node", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("minute", ts, true),
        Field::new("age_s", DataType::Float64, true),
        Field::new("stale", DataType::Boolean, false),
        Field::new("production_w", DataType::Float64, true),
        Field::new("consumption_w", DataType::Float64, true),
        Field::new("surplus_w", DataType::Float64, true),
        Field::new("grid_w", DataType::Float64, true),
        Field::new("battery_w", DataType::Float64, true),
        Field::new("battery_soc_pct", DataType::Float64, true),
        Field::new("served", DataType::UInt32, true),
        Field::new("partial", DataType::UInt32, true),
        Field::new("shed", DataType::UInt32, true),
        Field::new("week_hours", DataType::Float64, true),
    ]))
}

/// `rows` as one batch of [`live_schema`].
pub fn live_batch(rows: &[NodeRow]) -> Result<RecordBatch> {
    let n = rows.len();
    let mut node = StringBuilder::new();
    let mut name = StringBuilder::new();
    let mut minute = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut age = Float64Builder::with_capacity(n);
    let mut stale = BooleanBuilder::with_capacity(n);
    let mut f: Vec<Float64Builder> = (0..6).map(|_| Float64Builder::with_capacity(n)).collect();
    let mut counts: Vec<UInt32Builder> = (0..3).map(|_| UInt32Builder::with_capacity(n)).collect();
    let mut week = Float64Builder::with_capacity(n);
    for r in rows {
        node.append_value(&r.id);
        name.append_value(&r.name);
        age.append_option(r.age_s);
        stale.append_value(r.stale);
        let s = r.latest.as_ref();
        minute.append_option(s.map(|s| s.minute.timestamp_millis()));
        f[0].append_option(s.map(|s| s.production_w));
        f[1].append_option(s.map(|s| s.consumption_w));
        f[2].append_option(s.map(|s| s.surplus_w));
        f[3].append_option(s.map(|s| s.grid_w));
        f[4].append_option(s.map(|s| s.battery_w));
        f[5].append_option(s.and_then(|s| s.battery_soc_pct));
        counts[0].append_option(s.map(|s| s.services.served));
        counts[1].append_option(s.map(|s| s.services.partial));
        counts[2].append_option(s.map(|s| s.services.shed));
        week.append_option(s.and_then(|s| s.week_hours));
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(node.finish()),
        Arc::new(name.finish()),
        Arc::new(minute.finish()),
        Arc::new(age.finish()),
        Arc::new(stale.finish()),
    ];
    columns.extend(f.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    columns.extend(counts.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    columns.push(Arc::new(week.finish()));
    Ok(RecordBatch::try_new(live_schema(), columns)?)
}

/// `nodes_live`: the region's state as it is when a query runs.
#[derive(Debug)]
pub struct LiveNodesTable {
    state: Arc<RegionState>,
}

#[async_trait]
impl TableProvider for LiveNodesTable {
    fn schema(&self) -> SchemaRef {
        live_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let batch = live_batch(&self.state.rows())
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            live_schema(),
            projection.cloned(),
        )?)
    }
}

/// A session over one snapshot of the rows, as `nodes_live`: the totals, the
/// surplus and the rows of one page or answer then agree with each other even
/// while summaries keep arriving.
pub fn snapshot_session(rows: &[NodeRow]) -> Result<SessionContext> {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    ctx.register_batch("nodes_live", live_batch(rows)?)?;
    Ok(ctx)
}

/// The columns of `summaries` (the archive), partitions last.
pub fn archive_partitions() -> Vec<(String, DataType)> {
    vec![
        ("node".to_string(), DataType::Utf8),
        ("date".to_string(), DataType::Utf8),
    ]
}

/// The region's DataFusion session: `nodes_live`, and `summaries` over the bucket
/// when the region has one.
pub async fn session(
    state: Arc<RegionState>,
    bucket: Option<(&str, Arc<dyn ObjectStore>)>,
) -> Result<SessionContext> {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
    ctx.register_table("nodes_live", Arc::new(LiveNodesTable { state }))?;
    if let Some((bucket, store)) = bucket {
        register_archive(&ctx, bucket, store).await?;
    }
    Ok(ctx)
}

/// Registers `summaries`: every node's archived days in `bucket`.
pub async fn register_archive(
    ctx: &SessionContext,
    bucket: &str,
    store: Arc<dyn ObjectStore>,
) -> Result<()> {
    let url = url::Url::parse(&format!("s3://{bucket}"))
        .map_err(|e| Error::Config(format!("bucket `{bucket}`: {e}")))?;
    ctx.register_object_store(&url, store);
    let table_url = ListingTableUrl::parse(format!("s3://{bucket}/"))?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(archive_partitions());
    let config = ListingTableConfig::new(table_url)
        .with_listing_options(options)
        .with_schema(crate::archive::day_schema());
    ctx.register_table("summaries", Arc::new(ListingTable::try_new(config)?))?;
    Ok(())
}

/// Reads the stream with the durable consumer `consumer` until `cancel`: the
/// messages come in chunks (what has already arrived, up to [`CHUNK`]); each
/// chunk's signatures are checked on every core at once, each summary kept or
/// counted as refused, then the chunk is acknowledged (a refused summary too: it
/// would be refused again). A consumer the region creates acknowledges with
/// `AckPolicy::All`, one acknowledgement for the chunk's last message; one made
/// with `AckPolicy::Explicit` before (its policy cannot change) is still
/// acknowledged message by message.
pub async fn consume(
    client: async_nats::Client,
    stream: String,
    consumer: String,
    state: Arc<RegionState>,
    cancel: CancellationToken,
) -> Result<()> {
    let js = jetstream::new(client);
    loop {
        let run = consume_once(&js, &stream, &consumer, &state, &cancel);
        match run.await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "region: reading the stream failed; trying again");
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// Listens to the witnesses' statements (core NATS, `communalia.*.witness`) until
/// `cancel`, keeping each witness's latest; subscribes again after a failure.
pub async fn listen_to_witnesses(
    client: async_nats::Client,
    state: Arc<RegionState>,
    cancel: CancellationToken,
) {
    loop {
        let mut subscription = match client.subscribe(crate::witness::STATEMENT_SUBJECTS).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "region: cannot listen to the witnesses; trying again");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                }
            }
        };
        loop {
            let next = tokio::select! {
                _ = cancel.cancelled() => return,
                next = subscription.next() => next,
            };
            let Some(message) = next else { break };
            let signature = message
                .headers
                .as_ref()
                .and_then(|h| h.get(SIGNATURE_HEADER))
                .map(|v| v.as_str().to_string());
            let _ = state.receive_statement(
                message.subject.as_str(),
                &message.payload,
                signature.as_deref(),
            );
        }
    }
}

/// Messages checked together at most: what has arrived, up to this many.
pub const CHUNK: usize = 500;

/// Fewer messages than this are checked on the reading task itself: handing
/// them to another thread would cost more than it spares.
const SHARE_AT_LEAST: usize = 32;

async fn consume_once(
    js: &jetstream::Context,
    stream: &str,
    consumer: &str,
    state: &Arc<RegionState>,
    cancel: &CancellationToken,
) -> Result<()> {
    let stream = js
        .get_stream(stream)
        .await
        .map_err(|e| Error::Nats(format!("stream `{stream}`: {e}")))?;
    let consumer = open_consumer(&stream, consumer).await?;
    let info = consumer.cached_info();
    let policy = info.config.ack_policy;
    // Under `AckPolicy::All` one acknowledgement covers every delivery before it,
    // read or not: the consumer sequence of each delivery is followed, and a
    // delivery missed stops the reading before anything past it is acknowledged.
    let mut next_delivery =
        (policy == AckPolicy::All).then_some(info.delivered.consumer_sequence + 1);
    let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let messages = consumer
        .stream()
        .max_messages_per_batch(1000)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(10))
        .messages()
        .await
        .map_err(|e| Error::Nats(format!("consumer: {e}")))?;
    let mut chunks = messages.ready_chunks(CHUNK);
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => {
                // The last acknowledgement leaves before the region stops.
                let _ = tokio::time::timeout(Duration::from_secs(2), js.client().flush()).await;
                return Ok(());
            }
            next = chunks.next() => next,
        };
        let Some(chunk) = next else {
            return Err(Error::Nats("the consumer's messages ended".into()));
        };
        let mut received = Vec::with_capacity(chunk.len());
        let mut failed = None;
        for message in chunk {
            match message {
                Ok(message) => received.push(message),
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        let received = check_chunk(state, received, threads).await?;
        acknowledge(&received, policy, &mut next_delivery).await?;
        if let Some(e) = failed {
            return Err(Error::Nats(format!("consumer: {e}")));
        }
    }
}

/// The region's durable consumer, made if missing (`AckPolicy::All`). One under
/// `AckPolicy::All` that an earlier reader left with deliveries unacknowledged
/// (pulled but never read: it stopped, or its pull was lost) starts again from
/// its acknowledgement floor, made anew from there: otherwise this reader's
/// first acknowledgement would cover them unread. (Should making it anew fail,
/// the next attempt makes it from the start of the stream: summaries read twice,
/// none lost.)
async fn open_consumer(
    stream: &jetstream::stream::Stream,
    name: &str,
) -> Result<jetstream::consumer::PullConsumer> {
    let failed = |e: &dyn std::fmt::Display| Error::Nats(format!("consumer `{name}`: {e}"));
    let consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(
            name,
            pull::Config {
                durable_name: Some(name.to_string()),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::All,
                max_ack_pending: 10_000,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| failed(&e))?;
    let info = consumer.cached_info();
    if info.config.ack_policy != AckPolicy::All || info.num_ack_pending == 0 {
        return Ok(consumer);
    }
    let floor = info.ack_floor.stream_sequence;
    tracing::info!(
        consumer = name,
        unacknowledged = info.num_ack_pending,
        floor,
        "region: deliveries left unread by an earlier reader; reading again from the acknowledgement floor"
    );
    let mut config =
        pull::Config::try_from_consumer_config(info.config.clone()).map_err(|e| failed(&e))?;
    config.deliver_policy = DeliverPolicy::ByStartSequence {
        start_sequence: floor + 1,
    };
    stream.delete_consumer(name).await.map_err(|e| failed(&e))?;
    stream.create_consumer(config).await.map_err(|e| failed(&e))
}

/// Checks a chunk's summaries into `state`, shared between `threads` blocking
/// threads when it is big enough; the messages back in their order.
async fn check_chunk(
    state: &Arc<RegionState>,
    mut messages: Vec<jetstream::Message>,
    threads: usize,
) -> Result<Vec<jetstream::Message>> {
    let shares = threads.min(messages.len() / SHARE_AT_LEAST).max(1);
    if shares == 1 {
        receive_messages(state, &messages);
        return Ok(messages);
    }
    let size = messages.len().div_ceil(shares);
    let mut tasks = Vec::with_capacity(shares);
    while !messages.is_empty() {
        let rest = messages.split_off(size.min(messages.len()));
        let share = std::mem::replace(&mut messages, rest);
        let state = state.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            receive_messages(&state, &share);
            share
        }));
    }
    for task in tasks {
        let share = task
            .await
            .map_err(|e| Error::Nats(format!("checking summaries: {e}")))?;
        messages.extend(share);
    }
    Ok(messages)
}

fn receive_messages(state: &RegionState, messages: &[jetstream::Message]) {
    state.receive_many(messages.iter().map(|m| {
        let signature = m
            .headers
            .as_ref()
            .and_then(|h| h.get(SIGNATURE_HEADER))
            .map(|v| v.as_str());
        (m.subject.as_str(), &m.payload[..], signature)
    }));
}

/// Acknowledges a checked chunk as the consumer's policy asks: every message
/// under `AckPolicy::Explicit`, the furthest in the stream under
/// `AckPolicy::All` once every delivery up to it has been read (`next_delivery`:
/// the consumer sequence expected next), nothing under `AckPolicy::None`.
async fn acknowledge(
    messages: &[jetstream::Message],
    policy: AckPolicy,
    next_delivery: &mut Option<u64>,
) -> Result<()> {
    async fn ack(m: &jetstream::Message) -> Result<()> {
        m.ack().await.map_err(|e| Error::Nats(format!("ack: {e}")))
    }
    match policy {
        AckPolicy::None => Ok(()),
        AckPolicy::All => {
            let mut furthest: Option<(u64, &jetstream::Message)> = None;
            for m in messages {
                let info = m
                    .info()
                    .map_err(|e| Error::Nats(format!("a delivery without its sequences: {e}")))?;
                let expected = next_delivery.get_or_insert(info.consumer_sequence);
                if info.consumer_sequence > *expected {
                    // Deliveries between were never read: acknowledging past them
                    // would lose them. Reading stops here; the consumer starts
                    // again from its acknowledgement floor.
                    return Err(Error::Nats(format!(
                        "deliveries {}..{} missed",
                        *expected, info.consumer_sequence
                    )));
                }
                if info.consumer_sequence == *expected {
                    *expected += 1;
                }
                // (Lower: a delivery again of one already read.)
                if furthest.is_none_or(|(s, _)| info.stream_sequence > s) {
                    furthest = Some((info.stream_sequence, m));
                }
            }
            match furthest {
                Some((_, m)) => ack(m).await,
                None => Ok(()),
            }
        }
        _ => {
            for m in messages {
                ack(m).await?;
            }
            Ok(())
        }
    }
}
