//! The node's history on object storage: each UTC day's public summaries, one
//! row a minute, as one Parquet file under `node=<id>/date=YYYY-MM-DD/` of the
//! federation's bucket (Garage in production; any S3 works). Only the node writes
//! under its own prefix. Each row keeps the summary's canonical bytes and
//! signature beside its figures, so that anyone reading the bucket can check what
//! the node said without trusting the bucket.
//!
//! A day is archived once it is over, from the node's own history (the same
//! one-minute rollups a resent minute comes from), and the day is remembered in
//! the data directory so that a restart neither skips nor rewrites one. Writing a
//! day again replaces its file whole: S3 `PUT` is atomic per object.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::NaiveDate;
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, RecordBatch, StringBuilder,
    TimestampMillisecondBuilder, UInt32Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::parquet::arrow::ArrowWriter;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::S3Config;
use crate::cursor::Cursor;
use crate::identity::NodeKey;
use crate::source::NodeSource;
use crate::summary::Summary;
use crate::{Error, Result};

/// The archive cursor's file name in the data directory.
pub const ARCHIVE_CURSOR_FILE: &str = "federation-archive.json";
/// The Parquet file of one day, under its partition.
pub const DAY_FILE: &str = "summaries.parquet";

/// The S3 client for `config` (path-style requests, as Garage and SeaweedFS
/// expect; plain HTTP allowed when the endpoint says `http://`).
pub fn s3_store(config: &S3Config) -> Result<Arc<dyn ObjectStore>> {
    let (access_key, secret) = config.credentials()?;
    let store = AmazonS3Builder::new()
        .with_endpoint(&config.endpoint)
        .with_bucket_name(&config.bucket)
        .with_region(&config.region)
        .with_access_key_id(access_key)
        .with_secret_access_key(secret)
        .with_virtual_hosted_style_request(false)
        .with_allow_http(config.endpoint.starts_with("http://"))
        .build()
        .map_err(|e| {
            Error::Store(format!(
                "bucket `{}` at {}: {e}",
                config.bucket, config.endpoint
            ))
        })?;
    Ok(Arc::new(store))
}

/// The columns of an archived day (the node and the date are the path's).
pub fn day_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "minute",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("stale", DataType::Boolean, false),
        Field::new("production_w", DataType::Float64, false),
        Field::new("consumption_w", DataType::Float64, false),
        Field::new("surplus_w", DataType::Float64, false),
        Field::new("grid_w", DataType::Float64, false),
        Field::new("battery_w", DataType::Float64, false),
        Field::new("battery_soc_pct", DataType::Float64, true),
        Field::new("served", DataType::UInt32, false),
        Field::new("partial", DataType::UInt32, false),
        Field::new("shed", DataType::UInt32, false),
        // The canonical bytes and their signature (base64), for anyone to check.
        Field::new("payload", DataType::Utf8, false),
        Field::new("signature", DataType::Utf8, false),
    ]))
}

/// `summaries` as one batch of [`day_schema`], each signed with `key`.
pub fn day_batch(summaries: &[Summary], key: &NodeKey) -> Result<RecordBatch> {
    let n = summaries.len();
    let mut minute = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut stale = BooleanBuilder::with_capacity(n);
    let mut f: Vec<Float64Builder> = (0..6).map(|_| Float64Builder::with_capacity(n)).collect();
    let mut counts: Vec<UInt32Builder> = (0..3).map(|_| UInt32Builder::with_capacity(n)).collect();
    let mut payload = StringBuilder::new();
    let mut signature = StringBuilder::new();
    for s in summaries {
        minute.append_value(s.minute.timestamp_millis());
        stale.append_value(s.stale);
        f[0].append_value(s.production_w);
        f[1].append_value(s.consumption_w);
        f[2].append_value(s.surplus_w);
        f[3].append_value(s.grid_w);
        f[4].append_value(s.battery_w);
        f[5].append_option(s.battery_soc_pct);
        counts[0].append_value(s.services.served);
        counts[1].append_value(s.services.partial);
        counts[2].append_value(s.services.shed);
        let signed = s.sign(key);
        payload.append_value(String::from_utf8_lossy(&signed.payload));
        signature.append_value(B64.encode(signed.signature));
    }
    let mut columns: Vec<ArrayRef> = vec![Arc::new(minute.finish()), Arc::new(stale.finish())];
    columns.extend(f.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    columns.extend(counts.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    columns.push(Arc::new(payload.finish()));
    columns.push(Arc::new(signature.finish()));
    Ok(RecordBatch::try_new(day_schema(), columns)?)
}

/// Where a node's day goes in the bucket.
pub fn day_path(node: &str, day: NaiveDate) -> StorePath {
    StorePath::from(format!(
        "node={node}/date={}/{DAY_FILE}",
        day.format("%Y-%m-%d")
    ))
}

/// `batch` as the bytes of a Parquet file (zstd, like the node's own history).
pub fn parquet_bytes(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let props = ingest::history::writer_properties();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(out)
}

/// Uploads one day of `key`'s summaries; returns where it went.
pub async fn upload_day(
    store: &dyn ObjectStore,
    key: &NodeKey,
    day: NaiveDate,
    summaries: &[Summary],
) -> Result<StorePath> {
    let batch = day_batch(summaries, key)?;
    let bytes = parquet_bytes(&batch)?;
    let path = day_path(key.node_id(), day);
    store
        .put(&path, bytes.into())
        .await
        .map_err(|e| Error::Store(format!("cannot write {path}: {e}")))?;
    Ok(path)
}

/// Archives each day once it is over.
pub struct Archiver {
    store: Arc<dyn ObjectStore>,
    key: Arc<NodeKey>,
    source: NodeSource,
    cursor: Cursor,
    clock: Arc<dyn Clock>,
    interval: std::time::Duration,
}

impl std::fmt::Debug for Archiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archiver")
            .field("node", &self.key.node_id())
            .finish_non_exhaustive()
    }
}

impl Archiver {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        key: Arc<NodeKey>,
        source: NodeSource,
        data_dir: &std::path::Path,
        clock: Arc<dyn Clock>,
        interval: std::time::Duration,
    ) -> Result<Archiver> {
        Ok(Archiver {
            store,
            key,
            source,
            cursor: Cursor::open_named(data_dir, ARCHIVE_CURSOR_FILE)?,
            clock,
            interval,
        })
    }

    /// Archives the days that are over, until `cancel`.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.step().await {
                tracing::warn!(node = %self.key.node_id(), error = %e, "federation: day not archived this time");
            }
        }
    }

    /// Archives every day after the last one archived and before today (the day
    /// before today the first time); returns the days written.
    pub async fn step(&mut self) -> Result<Vec<NaiveDate>> {
        let today = self.clock.now().date_naive();
        let Some(yesterday) = today.pred_opt() else {
            return Ok(vec![]);
        };
        let mut day = match self.cursor.position().archived_through {
            Some(d) => match d.succ_opt() {
                Some(next) => next,
                None => return Ok(vec![]),
            },
            None => yesterday,
        };
        let mut written = Vec::new();
        while day < today {
            let from = day.and_time(chrono::NaiveTime::MIN).and_utc();
            let to = from + chrono::Duration::days(1);
            let summaries = self.source.history(from, to).await?;
            if !summaries.is_empty() {
                let path = upload_day(&*self.store, &self.key, day, &summaries).await?;
                tracing::info!(node = %self.key.node_id(), %path, minutes = summaries.len(), "federation: day archived");
                written.push(day);
            }
            self.cursor.set_archived(day)?;
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        Ok(written)
    }
}
