//! The region's compacted history: every node's archived days, checked and
//! summed into quarter hours, one Parquet file a month on the same bucket.
//!
//! The nodes' own archive (`node=<id>/date=<day>/summaries.parquet`, a file per
//! node and day, each row signed) is the source of truth, and it stays as it is.
//! It is the wrong shape to answer a year: 1,000 nodes write 365,000 files a
//! year, and opening each costs an S3 request or more (BENCHMARKS.md, "Federation
//! at scale": 7 to 19 minutes for a year's totals). So the region reads each day
//! once, after it is archived: every row's signature is checked against the key
//! `region.toml` gives for the node (a row that fails is counted and left out,
//! never summed), the minutes are summed into quarter hours, and the quarters of
//! a month, every node's, go into one file under
//! `regions/<consumer>/quarters/month=YYYY-MM/quarters.parquet`. Beside each, the
//! same month rolled up by node and day (`days/month=YYYY-MM/days.parquet`, 96
//! times fewer rows, written from the month's quarters in the same pass): the
//! history page and `/api/region/history` read those, twelve small files for a
//! year (365,000 rows for 1,000 nodes, not 35 million), and the quarters stay
//! for anything finer than a day.
//!
//! Only the region writes under its prefix (named by its durable consumer, which
//! is unique among the regions reading one stream). What it has compacted is
//! remembered in `regions/<consumer>/compaction.json`: each node day with the
//! entity tag of the file it came from, so that a day a node writes again (a
//! node that lost its archive cursor) is compacted again, its old quarters
//! replaced. A month's file is written before the manifest: a region stopped in
//! between does the same work again at its next pass, and replacing a node day's
//! quarters twice gives the same file.
//!
//! Energy stays exact: each quarter holds the sum of its minutes' power divided by
//! 60 (watt-hours) and how many minutes the node sent, so a day's or a year's
//! energy is a plain sum, whatever minutes are missing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Float64Builder, RecordBatch, StringArray,
    StringBuilder, TimestampMillisecondBuilder, UInt32Array, UInt32Builder,
};
use datafusion::arrow::compute::{
    SortColumn, concat_batches, filter_record_batch, lexsort_to_indices, take_record_batch,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::archive::DAY_FILE;
use crate::identity::PublicKey;
use crate::summary::Summary;
use crate::{Error, Result};

/// The month file's name, under `quarters/month=YYYY-MM/`.
pub const MONTH_FILE: &str = "quarters.parquet";
/// The month's rollup by node and day, under `days/month=YYYY-MM/`.
pub const DAYS_FILE: &str = "days.parquet";
/// The manifest's name, under the region's prefix.
pub const MANIFEST_FILE: &str = "compaction.json";
const QUARTER_MS: i64 = 15 * 60 * 1000;
/// How often a pass lists the nodes' whole archives (see [`Compactor`]).
pub const FULL_LISTING_EVERY: Duration = Duration::from_secs(24 * 3600);

/// The region's prefix in the bucket: `regions/<consumer>`.
pub fn region_prefix(consumer: &str) -> StorePath {
    StorePath::from_iter(["regions", consumer])
}

/// Where the month `month` (`YYYY-MM`) of the compacted history goes.
pub fn month_path(consumer: &str, month: &str) -> StorePath {
    region_prefix(consumer)
        .join("quarters")
        .join(format!("month={month}"))
        .join(MONTH_FILE)
}

/// Where the month `month`'s rollup by node and day goes.
pub fn days_path(consumer: &str, month: &str) -> StorePath {
    region_prefix(consumer)
        .join("days")
        .join(format!("month={month}"))
        .join(DAYS_FILE)
}

/// The columns of a month file (the month is the path's).
pub fn quarter_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("node", DataType::Utf8, false),
        // The UTC day of the node's archived file, as the archive names it.
        Field::new("date", DataType::Utf8, false),
        Field::new(
            "quarter",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        // Minutes the node sent in the quarter (signature checked), up to 15.
        Field::new("minutes", DataType::UInt32, false),
        Field::new("stale_minutes", DataType::UInt32, false),
        Field::new("production_wh", DataType::Float64, false),
        Field::new("consumption_wh", DataType::Float64, false),
        // The positive part of the surplus, minute by minute.
        Field::new("surplus_wh", DataType::Float64, false),
        Field::new("grid_import_wh", DataType::Float64, false),
        Field::new("grid_export_wh", DataType::Float64, false),
    ]))
}

/// The columns of a month's rollup: a row a node and day, the sums of its quarters.
pub fn day_schema() -> SchemaRef {
    let quarters = quarter_schema();
    Arc::new(Schema::new(
        quarters
            .fields()
            .iter()
            .filter(|f| f.name() != "quarter")
            .cloned()
            .collect::<Vec<_>>(),
    ))
}

/// Registers the region's compacted history in `bucket` (whose store the session
/// already knows, see [`super::register_archive`]): `quarters`, the month files,
/// and `node_days`, their rollups by node and day.
pub fn register_compacted(ctx: &SessionContext, bucket: &str, consumer: &str) -> Result<()> {
    let prefix = region_prefix(consumer);
    for (table, dir, schema) in [
        ("quarters", "quarters", quarter_schema()),
        ("node_days", "days", day_schema()),
    ] {
        let table_url = ListingTableUrl::parse(format!("s3://{bucket}/{prefix}/{dir}/"))?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(vec![("month".to_string(), DataType::Utf8)]);
        let config = ListingTableConfig::new(table_url)
            .with_listing_options(options)
            .with_schema(schema);
        ctx.register_table(table, Arc::new(ListingTable::try_new(config)?))?;
    }
    Ok(())
}

/// What the region has compacted: for each node, each day with the entity tag
/// of the archived file it came from.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub version: u32,
    /// When the last pass ended.
    pub passed_at: Option<DateTime<Utc>>,
    pub nodes: BTreeMap<String, BTreeMap<NaiveDate, String>>,
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PassReport {
    /// Node days read (new, or written again by their node).
    pub days: usize,
    /// Months written.
    pub months: Vec<String>,
    /// Minutes summed into quarters.
    pub minutes: u64,
    /// Months whose rollup by day was missing (a region compacted before the
    /// rollups existed) and was written from their quarters.
    pub rolled_up: Vec<String>,
    /// Rows left out, by node and reason.
    pub refused: BTreeMap<(String, &'static str), u64>,
}

/// Counters the region's page and API show.
#[derive(Debug, Default)]
pub struct CompactionStats {
    pub passes: AtomicU64,
    pub days: AtomicU64,
    pub minutes: AtomicU64,
    pub rows_refused: AtomicU64,
    pub failures: AtomicU64,
    pub last_pass: Mutex<Option<DateTime<Utc>>>,
    pub last_error: Mutex<Option<String>>,
}

/// The compactor of one region.
pub struct Compactor {
    store: Arc<dyn ObjectStore>,
    consumer: String,
    keys: BTreeMap<String, PublicKey>,
    manifest: Manifest,
    /// When a pass last listed every node's whole archive: the first pass after
    /// a start does, then one a day; the others list only the days after the
    /// last one compacted (a node archives its days in order, and a day it
    /// missed comes after), so that a pass costs a request a node, not a
    /// request per thousand files of the whole archive.
    listed_fully: Option<std::time::Instant>,
    stats: Arc<CompactionStats>,
}

impl std::fmt::Debug for Compactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compactor")
            .field("consumer", &self.consumer)
            .field("nodes", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// One node day to read: its archived file and that file's entity tag.
struct DayFile {
    node: String,
    date: NaiveDate,
    path: StorePath,
    tag: String,
}

impl Compactor {
    /// The compactor of the region whose durable consumer is `consumer`, for the
    /// nodes (and keys) it knows; reads the manifest from the bucket.
    pub async fn open(
        store: Arc<dyn ObjectStore>,
        consumer: &str,
        keys: BTreeMap<String, PublicKey>,
        stats: Arc<CompactionStats>,
    ) -> Result<Compactor> {
        let path = region_prefix(consumer).join(MANIFEST_FILE);
        let manifest = match read_if_any(&*store, &path).await? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::Store(format!("{path}: not a compaction manifest: {e}")))?,
            None => Manifest {
                version: 1,
                ..Manifest::default()
            },
        };
        Ok(Compactor {
            store,
            consumer: consumer.to_string(),
            keys,
            manifest,
            listed_fully: None,
            stats,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Compacts every period at `interval`, until `cancel`.
    pub async fn run(mut self, interval: Duration, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.pass().await {
                Ok(report) if report.days > 0 || !report.rolled_up.is_empty() => {
                    tracing::info!(
                        days = report.days,
                        months = ?report.months,
                        rolled_up = ?report.rolled_up,
                        minutes = report.minutes,
                        refused = report.refused.values().sum::<u64>(),
                        "region: history compacted"
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    *self
                        .stats
                        .last_error
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                    tracing::warn!(error = %e, "region: history not compacted this time");
                }
            }
        }
    }

    /// Reads every node day archived (or written again) since the last pass and
    /// writes the months they fall in.
    pub async fn pass(&mut self) -> Result<PassReport> {
        let full = self
            .listed_fully
            .is_none_or(|at| at.elapsed() >= FULL_LISTING_EVERY);
        let mut todo: BTreeMap<String, Vec<DayFile>> = BTreeMap::new();
        for node in self.keys.keys() {
            for day in self.list_node(node, full).await? {
                todo.entry(day.date.format("%Y-%m").to_string())
                    .or_default()
                    .push(day);
            }
        }
        if full {
            self.listed_fully = Some(std::time::Instant::now());
        }
        let mut report = PassReport::default();
        if full {
            report.rolled_up = self.roll_up_missing().await?;
        }
        // Files are fetched and checked a few at a time, so that the checks keep
        // every core busy and a fetch overlaps them; `buffered` keeps the order.
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
        for (month, days) in todo {
            let reads: Vec<_> = days.iter().map(|day| self.read_day(day)).collect();
            let read: Vec<DayQuarters> = futures::stream::iter(reads)
                .buffered(workers)
                .try_collect()
                .await?;
            let mut fresh = Vec::with_capacity(read.len());
            for (day, quarters) in days.iter().zip(read) {
                report.minutes += quarters.minutes;
                for (reason, n) in &quarters.refused {
                    *report
                        .refused
                        .entry((day.node.clone(), reason))
                        .or_default() += n;
                }
                fresh.push(quarters.batch);
            }
            self.write_month(&month, &days, fresh).await?;
            for day in &days {
                self.manifest
                    .nodes
                    .entry(day.node.clone())
                    .or_default()
                    .insert(day.date, day.tag.clone());
            }
            report.days += days.len();
            report.months.push(month);
        }
        self.manifest.passed_at = Some(Utc::now());
        if report.days > 0 {
            self.save_manifest().await?;
        }
        let s = &self.stats;
        s.passes.fetch_add(1, Ordering::Relaxed);
        s.days.fetch_add(report.days as u64, Ordering::Relaxed);
        s.minutes.fetch_add(report.minutes, Ordering::Relaxed);
        s.rows_refused
            .fetch_add(report.refused.values().sum(), Ordering::Relaxed);
        *s.last_pass.lock().unwrap_or_else(|e| e.into_inner()) = self.manifest.passed_at;
        Ok(report)
    }

    /// Fetches one archived node day and checks and sums it (on a blocking
    /// thread). The future owns what it needs, so that a pass can run several.
    fn read_day(
        &self,
        day: &DayFile,
    ) -> impl Future<Output = Result<DayQuarters>> + Send + 'static {
        let store = self.store.clone();
        let key = self.keys[&day.node];
        let (node, date, path) = (day.node.clone(), day.date, day.path.clone());
        async move {
            let bytes = read(&*store, &path).await?;
            let shown = path.to_string();
            tokio::task::spawn_blocking(move || quarters_of_day(&node, date, &shown, &bytes, key))
                .await
                .map_err(|e| Error::Query(format!("compaction task: {e}")))?
        }
    }

    /// Writes the rollup by day of every month that has quarters but no rollup
    /// (a region that compacted before rollups existed); returns those months.
    async fn roll_up_missing(&self) -> Result<Vec<String>> {
        let months_under = |dir: &'static str, file: &'static str| {
            let prefix = region_prefix(&self.consumer).join(dir);
            async move {
                let objects: Vec<_> = self
                    .store
                    .list(Some(&prefix))
                    .try_collect()
                    .await
                    .map_err(|e| Error::Store(format!("cannot list {prefix}/: {e}")))?;
                Ok::<_, Error>(
                    objects
                        .iter()
                        .filter_map(|meta| {
                            let mut parts = meta.location.prefix_match(&prefix)?;
                            let month = parts.next()?.as_ref().strip_prefix("month=")?.to_string();
                            (parts.next()?.as_ref() == file && parts.next().is_none())
                                .then_some(month)
                        })
                        .collect::<BTreeSet<String>>(),
                )
            }
        };
        let quarters = months_under("quarters", MONTH_FILE).await?;
        let rolled = months_under("days", DAYS_FILE).await?;
        let mut done = Vec::new();
        for month in quarters.difference(&rolled) {
            let path = month_path(&self.consumer, month);
            let bytes = read(&*self.store, &path).await?;
            let shown = path.to_string();
            let rollup = tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
                let all = concat_batches(&quarter_schema(), &parquet_batches(bytes, &shown)?)?;
                crate::archive::parquet_bytes(&day_rollup(&all, &shown)?)
            })
            .await
            .map_err(|e| Error::Query(format!("compaction task: {e}")))??;
            let days = days_path(&self.consumer, month);
            write(&*self.store, &days, rollup).await?;
            tracing::info!(%month, "region: the month's rollup by day written from its quarters");
            done.push(month.clone());
        }
        Ok(done)
    }

    /// The node's archived days that are not compacted as they are now, from its
    /// whole archive when `full`, else from the days after the last compacted.
    async fn list_node(&self, node: &str, full: bool) -> Result<Vec<DayFile>> {
        let prefix = StorePath::from(format!("node={node}"));
        let known = self.manifest.nodes.get(node);
        let last = known.and_then(|days| days.keys().next_back().copied());
        let listing = match (full, last) {
            (false, Some(last)) => {
                let offset = prefix
                    .clone()
                    .join(format!("date={}", last.format("%Y-%m-%d")))
                    .join(DAY_FILE);
                self.store.list_with_offset(Some(&prefix), &offset)
            }
            _ => self.store.list(Some(&prefix)),
        };
        let objects: Vec<_> = listing
            .try_collect()
            .await
            .map_err(|e| Error::Store(format!("cannot list {prefix}/: {e}")))?;
        let mut days = Vec::new();
        for meta in objects {
            let Some(date) = day_of(node, &meta.location) else {
                continue;
            };
            let tag = meta.e_tag.clone().unwrap_or_else(|| {
                format!("{}@{}", meta.size, meta.last_modified.timestamp_millis())
            });
            if known.and_then(|days| days.get(&date)) == Some(&tag) {
                continue;
            }
            days.push(DayFile {
                node: node.to_string(),
                date,
                path: meta.location,
                tag,
            });
        }
        Ok(days)
    }

    /// Writes `month`: what its file held, but the quarters of `days`, which
    /// `fresh` replaces; then the month's rollup by day, from the same quarters
    /// (a region stopped between the two redoes both at its next pass, since the
    /// manifest is written after).
    async fn write_month(
        &self,
        month: &str,
        days: &[DayFile],
        fresh: Vec<RecordBatch>,
    ) -> Result<()> {
        let path = month_path(&self.consumer, month);
        let old = read_if_any(&*self.store, &path).await?;
        let replaced: BTreeSet<(String, String)> = days
            .iter()
            .map(|d| (d.node.clone(), d.date.format("%Y-%m-%d").to_string()))
            .collect();
        let shown = path.to_string();
        let (bytes, rollup) = tokio::task::spawn_blocking(move || -> Result<(Vec<u8>, Vec<u8>)> {
            let mut batches = Vec::new();
            if let Some(old) = old {
                for batch in parquet_batches(old, &shown)? {
                    let keep = kept_rows(&batch, &replaced, &shown)?;
                    batches.push(filter_record_batch(&batch, &keep)?);
                }
            }
            batches.extend(fresh);
            let all = concat_batches(&quarter_schema(), &batches)?;
            let order = lexsort_to_indices(
                &[
                    SortColumn {
                        values: all.column(0).clone(),
                        options: None,
                    },
                    SortColumn {
                        values: all.column(2).clone(),
                        options: None,
                    },
                ],
                None,
            )?;
            let sorted = take_record_batch(&all, &order)?;
            Ok((
                crate::archive::parquet_bytes(&sorted)?,
                crate::archive::parquet_bytes(&day_rollup(&sorted, &shown)?)?,
            ))
        })
        .await
        .map_err(|e| Error::Query(format!("compaction task: {e}")))??;
        write(&*self.store, &path, bytes).await?;
        write(&*self.store, &days_path(&self.consumer, month), rollup).await
    }

    async fn save_manifest(&self) -> Result<()> {
        let path = region_prefix(&self.consumer).join(MANIFEST_FILE);
        let bytes =
            serde_json::to_vec(&self.manifest).map_err(|e| Error::Store(format!("{path}: {e}")))?;
        write(&*self.store, &path, bytes).await
    }
}

/// Writes `bytes` as the object at `path`.
async fn write(store: &dyn ObjectStore, path: &StorePath, bytes: Vec<u8>) -> Result<()> {
    store
        .put(path, bytes.into())
        .await
        .map(|_| ())
        .map_err(|e| Error::Store(format!("cannot write {path}: {e}")))
}

/// The record batches of a Parquet file's bytes, read from `path`.
fn parquet_batches(bytes: bytes::Bytes, path: &str) -> Result<Vec<RecordBatch>> {
    ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| Error::Store(format!("{path}: not a Parquet file: {e}")))?
        .build()?
        .map(|batch| batch.map_err(|e| Error::Store(format!("{path}: {e}"))))
        .collect()
}

/// The bytes of the object at `path`, `None` if there is none.
async fn read_if_any(store: &dyn ObjectStore, path: &StorePath) -> Result<Option<bytes::Bytes>> {
    let got = match store.get(path).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(Error::Store(format!("cannot read {path}: {e}"))),
    };
    got.bytes()
        .await
        .map(Some)
        .map_err(|e| Error::Store(format!("cannot read {path}: {e}")))
}

/// The bytes of the object at `path`, which must be there.
async fn read(store: &dyn ObjectStore, path: &StorePath) -> Result<bytes::Bytes> {
    read_if_any(store, path)
        .await?
        .ok_or_else(|| Error::Store(format!("cannot read {path}: not found")))
}

/// The day of `location` if it is `node=<node>/date=YYYY-MM-DD/summaries.parquet`.
fn day_of(node: &str, location: &StorePath) -> Option<NaiveDate> {
    let mut parts = location.parts();
    if parts.next()?.as_ref() != format!("node={node}") {
        return None;
    }
    let date = parts.next()?;
    let date = date.as_ref().strip_prefix("date=")?;
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    if parts.next()?.as_ref() != DAY_FILE || parts.next().is_some() {
        return None;
    }
    Some(date)
}

/// The text column `name` of a batch read from the file `path`.
fn text_column<'a>(batch: &'a RecordBatch, name: &str, path: &str) -> Result<&'a StringArray> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| Error::Store(format!("{path}: no text column `{name}`")))
}

/// The rows of a month file that no node day of `replaced` owns.
fn kept_rows(
    batch: &RecordBatch,
    replaced: &BTreeSet<(String, String)>,
    path: &str,
) -> Result<BooleanArray> {
    let (node, date) = (
        text_column(batch, "node", path)?,
        text_column(batch, "date", path)?,
    );
    Ok((0..batch.num_rows())
        .map(|r| Some(!replaced.contains(&(node.value(r).to_string(), date.value(r).to_string()))))
        .collect())
}

/// A node day's quarters, with what was left out.
pub struct DayQuarters {
    pub batch: RecordBatch,
    pub minutes: u64,
    pub refused: BTreeMap<&'static str, u64>,
}

#[derive(Default, Clone, Copy)]
struct Quarter {
    minutes: u32,
    stale: u32,
    production: f64,
    consumption: f64,
    surplus: f64,
    import: f64,
    export: f64,
}

/// Reads one archived day of `node` (the Parquet file's bytes) and sums its
/// minutes into quarters. A row counts only if its signature is `key`'s over its
/// payload, the payload is a summary of `node` for a minute of `date`, and no
/// earlier row gave that minute; the figures summed are the signed payload's, not
/// the file's columns (which anyone with write access to the bucket could edit).
pub fn quarters_of_day(
    node: &str,
    date: NaiveDate,
    path: &str,
    bytes: &bytes::Bytes,
    key: PublicKey,
) -> Result<DayQuarters> {
    let subject = format!("communalia.{node}.summary");
    let mut quarters: BTreeMap<i64, Quarter> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut refused: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut minutes = 0u64;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
        .map_err(|e| Error::Store(format!("{path}: not a Parquet file: {e}")))?
        .build()?;
    for batch in reader {
        let batch = batch.map_err(|e| Error::Store(format!("{path}: {e}")))?;
        let (payload, signature) = (
            text_column(&batch, "payload", path)?,
            text_column(&batch, "signature", path)?,
        );
        for r in 0..batch.num_rows() {
            let checked = (!payload.is_null(r) && !signature.is_null(r))
                .then(|| {
                    base64::engine::general_purpose::STANDARD
                        .decode(signature.value(r))
                        .ok()
                })
                .flatten()
                .ok_or("no_signature")
                .and_then(|sig| {
                    crate::summary::verify(&subject, payload.value(r).as_bytes(), Some(&sig), |n| {
                        (n == node).then_some(key)
                    })
                    .map_err(|refusal| refusal.reason())
                })
                .and_then(|s| {
                    if s.minute.date_naive() != date {
                        Err("wrong_day")
                    } else if !seen.insert(s.minute) {
                        Err("duplicate")
                    } else {
                        Ok(s)
                    }
                });
            match checked {
                Ok(s) => {
                    minutes += 1;
                    add_minute(&mut quarters, &s);
                }
                Err(reason) => {
                    if refused.is_empty() {
                        tracing::warn!(%path, row = r, reason, "region: an archived row left out of the history");
                    }
                    *refused.entry(reason).or_default() += 1;
                }
            }
        }
    }
    Ok(DayQuarters {
        batch: quarter_batch(node, date, &quarters)?,
        minutes,
        refused,
    })
}

impl Quarter {
    /// Adds another period's sums to this one's.
    fn merge(&mut self, other: &Quarter) {
        self.minutes += other.minutes;
        self.stale += other.stale;
        self.production += other.production;
        self.consumption += other.consumption;
        self.surplus += other.surplus;
        self.import += other.import;
        self.export += other.export;
    }

    /// The energies in the order of the schemas' Wh columns.
    fn energy(&self) -> [f64; 5] {
        [
            self.production,
            self.consumption,
            self.surplus,
            self.import,
            self.export,
        ]
    }
}

fn add_minute(quarters: &mut BTreeMap<i64, Quarter>, s: &Summary) {
    let ms = s.minute.timestamp_millis();
    let q = quarters.entry(ms - ms.rem_euclid(QUARTER_MS)).or_default();
    q.minutes += 1;
    q.stale += u32::from(s.stale);
    q.production += s.production_w / 60.0;
    q.consumption += s.consumption_w / 60.0;
    q.surplus += s.surplus_w.max(0.0) / 60.0;
    q.import += s.grid_w.max(0.0) / 60.0;
    q.export += (-s.grid_w).max(0.0) / 60.0;
}

fn quarter_batch(
    node: &str,
    date: NaiveDate,
    quarters: &BTreeMap<i64, Quarter>,
) -> Result<RecordBatch> {
    let n = quarters.len();
    let date = date.format("%Y-%m-%d").to_string();
    let mut nodes = StringBuilder::with_capacity(n, n * node.len());
    let mut dates = StringBuilder::with_capacity(n, n * date.len());
    let mut at = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut counts: Vec<UInt32Builder> = (0..2).map(|_| UInt32Builder::with_capacity(n)).collect();
    let mut wh: Vec<Float64Builder> = (0..5).map(|_| Float64Builder::with_capacity(n)).collect();
    for (start, q) in quarters {
        nodes.append_value(node);
        dates.append_value(&date);
        at.append_value(*start);
        counts[0].append_value(q.minutes);
        counts[1].append_value(q.stale);
        for (b, v) in wh.iter_mut().zip(q.energy()) {
            b.append_value(v);
        }
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(nodes.finish()),
        Arc::new(dates.finish()),
        Arc::new(at.finish()),
    ];
    columns.extend(counts.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    columns.extend(wh.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    Ok(RecordBatch::try_new(quarter_schema(), columns)?)
}

/// A month's quarters (in `quarter_schema`) summed by node and day, in
/// `day_schema`, sorted by node then day. The quarters of a node day usually come
/// together (the month files are sorted by node and time), so rows are summed run
/// by run and a run is merged with an earlier one only if the order was other.
pub fn day_rollup(quarters: &RecordBatch, path: &str) -> Result<RecordBatch> {
    let node = text_column(quarters, "node", path)?;
    let date = text_column(quarters, "date", path)?;
    let count = |name: &str| -> Result<&UInt32Array> {
        quarters
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<UInt32Array>())
            .ok_or_else(|| Error::Store(format!("{path}: no count column `{name}`")))
    };
    let energy = |name: &str| -> Result<&Float64Array> {
        quarters
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<Float64Array>())
            .ok_or_else(|| Error::Store(format!("{path}: no energy column `{name}`")))
    };
    let (minutes, stale) = (count("minutes")?, count("stale_minutes")?);
    let wh = [
        energy("production_wh")?,
        energy("consumption_wh")?,
        energy("surplus_wh")?,
        energy("grid_import_wh")?,
        energy("grid_export_wh")?,
    ];
    let mut days: BTreeMap<(String, String), Quarter> = BTreeMap::new();
    let mut r = 0;
    while r < quarters.num_rows() {
        let (n, d) = (node.value(r), date.value(r));
        let mut sum = Quarter::default();
        while r < quarters.num_rows() && node.value(r) == n && date.value(r) == d {
            sum.minutes += minutes.value(r);
            sum.stale += stale.value(r);
            sum.production += wh[0].value(r);
            sum.consumption += wh[1].value(r);
            sum.surplus += wh[2].value(r);
            sum.import += wh[3].value(r);
            sum.export += wh[4].value(r);
            r += 1;
        }
        days.entry((n.to_string(), d.to_string()))
            .or_default()
            .merge(&sum);
    }
    let n = days.len();
    let mut nodes = StringBuilder::with_capacity(n, n * 16);
    let mut dates = StringBuilder::with_capacity(n, n * 10);
    let mut counts: Vec<UInt32Builder> = (0..2).map(|_| UInt32Builder::with_capacity(n)).collect();
    let mut sums: Vec<Float64Builder> = (0..5).map(|_| Float64Builder::with_capacity(n)).collect();
    for ((node, date), q) in &days {
        nodes.append_value(node);
        dates.append_value(date);
        counts[0].append_value(q.minutes);
        counts[1].append_value(q.stale);
        for (b, v) in sums.iter_mut().zip(q.energy()) {
            b.append_value(v);
        }
    }
    let mut columns: Vec<ArrayRef> = vec![Arc::new(nodes.finish()), Arc::new(dates.finish())];
    columns.extend(counts.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    columns.extend(sums.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    Ok(RecordBatch::try_new(day_schema(), columns)?)
}

/// Energy per node and day over `[from, to]` from the months' rollups by day, in
/// the shape of [`super::web::history_sql`].
pub fn history_sql(from: NaiveDate, to: NaiveDate) -> String {
    energy_sql("node, date", "date, node", from, to)
}

/// Each node's energy over `[from, to]` from the months' rollups by day.
pub fn totals_sql(from: NaiveDate, to: NaiveDate) -> String {
    energy_sql("node", "node", from, to)
}

fn energy_sql(by: &str, order: &str, from: NaiveDate, to: NaiveDate) -> String {
    format!(
        "SELECT {by},
                sum(production_wh) AS production_wh,
                sum(consumption_wh) AS consumption_wh,
                sum(surplus_wh) AS surplus_wh,
                CAST(sum(minutes) AS BIGINT) AS minutes
         FROM node_days
         WHERE {}
         GROUP BY {by} ORDER BY {order}",
        period(from, to)
    )
}

/// The filter of `[from, to]`: the months first, so that only their files are
/// opened, then the days.
fn period(from: NaiveDate, to: NaiveDate) -> String {
    format!(
        "month >= '{}' AND month <= '{}' AND date >= '{from}' AND date <= '{to}'",
        from.format("%Y-%m"),
        to.format("%Y-%m")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_node_day_file_is_a_day() {
        let day = |s: &str| day_of("tilleuls", &StorePath::from(s));
        assert_eq!(
            day("node=tilleuls/date=2026-05-03/summaries.parquet"),
            NaiveDate::from_ymd_opt(2026, 5, 3)
        );
        assert_eq!(day("node=tilleuls/date=2026-05-03/other.parquet"), None);
        assert_eq!(day("node=tilleuls/date=2026-13-03/summaries.parquet"), None);
        assert_eq!(day("node=chenes/date=2026-05-03/summaries.parquet"), None);
        assert_eq!(
            day("node=tilleuls/date=2026-05-03/summaries.parquet/x"),
            None
        );
    }

    #[test]
    fn a_period_names_its_months_for_pruning() {
        let d = |m, d| NaiveDate::from_ymd_opt(2026, m, d).expect("date");
        let sql = totals_sql(d(1, 31), d(3, 1));
        assert!(
            sql.contains("month >= '2026-01' AND month <= '2026-03'"),
            "{sql}"
        );
        assert!(
            sql.contains("date >= '2026-01-31' AND date <= '2026-03-01'"),
            "{sql}"
        );
    }
}
