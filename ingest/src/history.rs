//! The history: every durable reading ends up in Parquet files partitioned by UTC
//! day, readable by any Parquet tool:
//!
//! ```text
//! <storage>/readings/date=YYYY-MM-DD/part-*.parquet      raw readings
//! <storage>/readings_1m/date=YYYY-MM-DD/rollup.parquet   one-minute rollups
//! <storage>/readings/_wal_checkpoint                     WAL records below this are in Parquet
//! ```
//!
//! Raw files have the readings schema (DESIGN.md §2), rows sorted by device, metric
//! and time, dictionary-encoded and compressed with zstd. Rollups have `ts` (the
//! minute), `device`, `metric`, `avg`, `min`, `max`, `last` (the value of the
//! newest reading of the minute) and `count`.
//!
//! Readings made durable by the write-ahead log wait in memory (`pending`) until the
//! next flush writes them out; only then is the log cut (the checkpoint file says
//! how far). A day that is over is compacted into one file and rolled up; files of
//! days past the retention are deleted. What queries see is one consistent
//! [`HistorySnapshot`]: the files and the pending batches change together under one
//! lock, so a reading is never seen twice nor missed.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Float64Builder, Int64Builder, RecordBatch,
    StringDictionaryBuilder, TimestampMillisecondBuilder, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimestampMillisecondType};
use chrono::{DateTime, NaiveDate, Utc};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::reading::{Reading, readings_schema, to_batch};
use crate::wal::Wal;

pub const RAW_DIR: &str = "readings";
pub const ROLLUP_DIR: &str = "readings_1m";
const CHECKPOINT_FILE: &str = "_wal_checkpoint";
/// Files replaced by a compaction are deleted this long after, so that a query
/// planned just before can still read them.
const DELETE_GRACE: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("history {path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("history: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error(transparent)]
    Wal(#[from] crate::wal::WalError),
}

type Result<T, E = HistoryError> = std::result::Result<T, E>;

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> HistoryError + '_ {
    move |source| HistoryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn pq_at(path: &Path) -> impl FnOnce(parquet::errors::ParquetError) -> HistoryError + '_ {
    move |source| HistoryError::Parquet {
        path: path.to_path_buf(),
        source,
    }
}

/// How long raw readings and rollups are kept, and how often pending readings are
/// written out.
#[derive(Debug, Clone)]
pub struct HistoryOptions {
    pub flush_every: Duration,
    /// Days of raw readings kept (`None`: all).
    pub raw_retention_days: Option<u32>,
    /// Days of one-minute rollups kept (`None`: all).
    pub rollup_retention_days: Option<u32>,
}

impl Default for HistoryOptions {
    fn default() -> Self {
        HistoryOptions {
            flush_every: Duration::from_secs(300),
            raw_retention_days: None,
            rollup_retention_days: None,
        }
    }
}

/// What a query sees of the history at one instant.
#[derive(Debug, Clone, Default)]
pub struct HistorySnapshot {
    /// Raw files by UTC day.
    pub raw: BTreeMap<NaiveDate, Vec<PathBuf>>,
    /// Rollup files by UTC day (days compacted and rolled up).
    pub rollups: BTreeMap<NaiveDate, Vec<PathBuf>>,
    /// Durable readings not yet in a file, in the readings schema.
    pub pending: Vec<RecordBatch>,
}

#[derive(Debug, Default)]
struct State {
    snapshot: HistorySnapshot,
    /// The highest WAL record among the pending batches.
    pending_upto: Option<u64>,
    /// Files to delete once no query can still be reading them.
    doomed: Vec<(Instant, PathBuf)>,
}

/// The history of one node.
#[derive(Debug)]
pub struct History {
    root: PathBuf,
    opts: HistoryOptions,
    state: RwLock<State>,
    /// WAL records below this are in Parquet.
    checkpoint: Mutex<u64>,
}

/// What one flush did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FlushReport {
    pub rows: usize,
    pub files: Vec<PathBuf>,
    pub compacted_days: Vec<NaiveDate>,
    pub deleted_days: Vec<NaiveDate>,
}

/// The rollup schema.
pub fn rollup_schema() -> SchemaRef {
    let mut fields = crate::reading::key_fields().to_vec();
    fields.extend([
        Field::new("avg", DataType::Float64, false),
        Field::new("min", DataType::Float64, false),
        Field::new("max", DataType::Float64, false),
        Field::new("last", DataType::Float64, false),
        Field::new("count", DataType::Int64, false),
    ]);
    Arc::new(Schema::new(fields))
}

fn day_of(ts_ms: i64) -> Option<NaiveDate> {
    DateTime::<Utc>::from_timestamp_millis(ts_ms).map(|t| t.date_naive())
}

fn parse_day_dir(name: &str) -> Option<NaiveDate> {
    name.strip_prefix("date=")
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
}

/// The Parquet files under `dir/date=*/`, by day.
fn list_days(dir: &Path) -> Result<BTreeMap<NaiveDate, Vec<PathBuf>>> {
    let mut out: BTreeMap<NaiveDate, Vec<PathBuf>> = BTreeMap::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_at(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_at(dir))?;
        let Some(day) = entry.file_name().to_str().and_then(parse_day_dir) else {
            continue;
        };
        let day_dir = entry.path();
        let mut files = Vec::new();
        for f in fs::read_dir(&day_dir).map_err(io_at(&day_dir))? {
            let path = f.map_err(io_at(&day_dir))?.path();
            if path.extension().is_some_and(|e| e == "parquet") {
                files.push(path);
            } else if path.extension().is_some_and(|e| e == "tmp") {
                // A write a crash interrupted: never made visible.
                let _ = fs::remove_file(&path);
            }
        }
        files.sort();
        if !files.is_empty() {
            out.insert(day, files);
        }
    }
    Ok(out)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

/// How the history's Parquet files are encoded. Rows are sorted by device, metric
/// and time, so that `device` and `metric` are long runs (dictionary, RLE), `ts`
/// grows by about the same step (delta encoding), and `value` changes little
/// from one row to the next: byte-stream split puts each byte of the float64s in
/// a stream of its own, where the sign, exponent and the constant low bytes of
/// values with few significant digits (a float32 register, a reading with one
/// decimal) compress to almost nothing under zstd. Lossless: the values read back
/// are the values written. `cargo bench -p ingest --bench history_bytes` measures it.
pub fn writer_properties() -> WriterProperties {
    use parquet::basic::Encoding;
    use parquet::schema::types::ColumnPath;
    let ts = ColumnPath::from("ts");
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_dictionary_enabled(true)
        .set_column_dictionary_enabled(ts.clone(), false)
        .set_column_encoding(ts, Encoding::DELTA_BINARY_PACKED);
    // The raw readings' value, and the rollups' figures.
    for name in ["value", "avg", "min", "max", "last"] {
        let column = ColumnPath::from(name);
        props = props
            .set_column_dictionary_enabled(column.clone(), false)
            .set_column_encoding(column, Encoding::BYTE_STREAM_SPLIT);
    }
    props.build()
}

/// Makes the directories from `root` down to `dir`, each made durable in its parent,
/// but never `root` itself nor anything above it: a storage directory that is gone
/// (its disk unmounted under the running node) is an error, not something to make
/// again on whatever filesystem is left under the mount point, where what is
/// written would be hidden once the disk is mounted again.
fn make_dirs_below(root: &Path, dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let below = dir.strip_prefix(root).map_err(|_| {
        io_at(dir)(io::Error::other(format!(
            "not inside the storage directory {}",
            root.display()
        )))
    })?;
    let mut at = root.to_path_buf();
    for part in below.components() {
        at.push(part);
        match fs::create_dir(&at) {
            Ok(()) => sync_dir(at.parent().unwrap_or(root))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_at(&at)(e)),
        }
    }
    Ok(())
}

/// Writes `batch` to `path` (inside the storage directory `root`) through a
/// temporary file, durably. A write that fails (disk full) removes its temporary
/// file, so that it does not hold the space.
fn write_parquet(root: &Path, path: &Path, batch: &RecordBatch) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    make_dirs_below(root, dir)?;
    let tmp = path.with_extension("parquet.tmp");
    let written = (|| {
        let file = File::create(&tmp).map_err(io_at(&tmp))?;
        let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(writer_properties()))
            .map_err(pq_at(&tmp))?;
        writer.write(batch).map_err(pq_at(&tmp))?;
        let file = writer.into_inner().map_err(pq_at(&tmp))?;
        file.sync_all().map_err(io_at(&tmp))?;
        fs::rename(&tmp, path).map_err(io_at(path))
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Reads every row of Parquet files into one batch of `schema`.
fn read_parquet(files: &[PathBuf], schema: &SchemaRef) -> Result<RecordBatch> {
    let mut batches = Vec::new();
    for path in files {
        let file = File::open(path).map_err(io_at(path))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .map_err(pq_at(path))?;
        for batch in reader {
            let batch = batch?;
            batches.push(batch.with_schema(schema.clone())?);
        }
    }
    Ok(arrow::compute::concat_batches(schema, &batches)?)
}

/// The text of row `i` of a dictionary or string column.
fn text(col: &ArrayRef, i: usize) -> &str {
    if let Some(d) = col.as_dictionary_opt::<Int32Type>()
        && let Some(values) = d.values().as_string_opt::<i32>()
    {
        let key = d.keys().value(i);
        return values.value(key as usize);
    }
    if let Some(s) = col.as_string_opt::<i32>() {
        return s.value(i);
    }
    ""
}

/// The rows of a readings batch ordered by device, metric and time.
pub fn sorted(batch: &RecordBatch) -> Result<RecordBatch> {
    let ts = batch.column(0).as_primitive::<TimestampMillisecondType>();
    let (device, metric) = (batch.column(1), batch.column(2));
    let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (a as usize, b as usize);
        text(device, a)
            .cmp(text(device, b))
            .then_with(|| text(metric, a).cmp(text(metric, b)))
            .then_with(|| ts.value(a).cmp(&ts.value(b)))
    });
    let indices = UInt32Array::from(order);
    Ok(arrow::compute::take_record_batch(batch, &indices)?)
}

/// One-minute rollups of readings sorted by device, metric and time.
pub fn rollup(sorted: &RecordBatch) -> Result<RecordBatch> {
    let ts = sorted.column(0).as_primitive::<TimestampMillisecondType>();
    let (device, metric) = (sorted.column(1), sorted.column(2));
    let value = sorted
        .column(3)
        .as_any()
        .downcast_ref::<Float64Array>()
        .ok_or_else(|| arrow::error::ArrowError::SchemaError("value is not Float64".into()))?;
    let mut out_ts = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut out_device = StringDictionaryBuilder::<Int32Type>::new();
    let mut out_metric = StringDictionaryBuilder::<Int32Type>::new();
    let (mut avg, mut min, mut max, mut last) = (
        Float64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
    );
    let mut count = Int64Builder::new();
    let n = sorted.num_rows();
    let mut i = 0;
    while i < n {
        let minute = ts.value(i) - ts.value(i).rem_euclid(60_000);
        let (d, m) = (text(device, i), text(metric, i));
        let (mut sum, mut lo, mut hi, mut k) = (0.0, f64::INFINITY, f64::NEG_INFINITY, 0i64);
        let mut j = i;
        while j < n
            && ts.value(j) - ts.value(j).rem_euclid(60_000) == minute
            && text(device, j) == d
            && text(metric, j) == m
        {
            let v = value.value(j);
            sum += v;
            lo = lo.min(v);
            hi = hi.max(v);
            k += 1;
            j += 1;
        }
        out_ts.append_value(minute);
        out_device.append_value(d);
        out_metric.append_value(m);
        avg.append_value(sum / k as f64);
        min.append_value(lo);
        max.append_value(hi);
        // Sorted by time within the minute: the last row is the newest reading.
        last.append_value(value.value(j - 1));
        count.append_value(k);
        i = j;
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(out_ts.finish()),
        Arc::new(out_device.finish()),
        Arc::new(out_metric.finish()),
        Arc::new(avg.finish()),
        Arc::new(min.finish()),
        Arc::new(max.finish()),
        Arc::new(last.finish()),
        Arc::new(count.finish()),
    ];
    Ok(RecordBatch::try_new(rollup_schema(), columns)?)
}

/// Splits a readings batch by the UTC day of its rows.
fn by_day(batch: &RecordBatch) -> Result<BTreeMap<NaiveDate, RecordBatch>> {
    let ts = batch.column(0).as_primitive::<TimestampMillisecondType>();
    let mut rows: BTreeMap<NaiveDate, Vec<u32>> = BTreeMap::new();
    for i in 0..batch.num_rows() {
        if let Some(day) = day_of(ts.value(i)) {
            rows.entry(day).or_default().push(i as u32);
        }
    }
    let mut out = BTreeMap::new();
    for (day, idx) in rows {
        let idx = UInt32Array::from(idx);
        out.insert(day, arrow::compute::take_record_batch(batch, &idx)?);
    }
    Ok(out)
}

fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{nanos:024}.parquet")
}

impl History {
    /// Opens the history under `root` (the storage directory): lists its files and
    /// reads how far the write-ahead log is already in Parquet.
    pub fn open(root: &Path, opts: HistoryOptions) -> Result<Arc<History>> {
        let raw_dir = root.join(RAW_DIR);
        fs::create_dir_all(&raw_dir).map_err(io_at(&raw_dir))?;
        let checkpoint_path = raw_dir.join(CHECKPOINT_FILE);
        let checkpoint = match fs::read_to_string(&checkpoint_path) {
            Ok(text) => text.trim().parse::<u64>().unwrap_or(0),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_at(&checkpoint_path)(e)),
        };
        let snapshot = HistorySnapshot {
            raw: list_days(&raw_dir)?,
            rollups: list_days(&root.join(ROLLUP_DIR))?,
            pending: vec![],
        };
        Ok(Arc::new(History {
            root: root.to_path_buf(),
            opts,
            state: RwLock::new(State {
                snapshot,
                ..State::default()
            }),
            checkpoint: Mutex::new(checkpoint),
        }))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// WAL records below this number are already in Parquet: replay skips them.
    pub fn wal_checkpoint(&self) -> u64 {
        *self.checkpoint.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds durable readings (from WAL record `record`, if any) to what waits for
    /// the next flush.
    pub fn add_pending(&self, record: Option<u64>, readings: &[Reading]) -> Result<()> {
        if readings.is_empty() {
            return Ok(());
        }
        let batch = to_batch(readings)?;
        let mut state = self.write();
        state.snapshot.pending.push(batch);
        if let Some(r) = record {
            state.pending_upto = Some(state.pending_upto.map_or(r, |u| u.max(r)));
        }
        Ok(())
    }

    /// What queries see now.
    pub fn snapshot(&self) -> HistorySnapshot {
        self.read().snapshot.clone()
    }

    /// Rows waiting for the next flush.
    pub fn pending_rows(&self) -> usize {
        self.read()
            .snapshot
            .pending
            .iter()
            .map(RecordBatch::num_rows)
            .sum()
    }

    /// Writes what is pending to Parquet, cuts the write-ahead log behind it,
    /// compacts and rolls up the days that are over before `today`, and applies the
    /// retention. Blocking: run it off the async threads.
    pub fn flush(&self, wal: Option<&Mutex<Wal>>, today: NaiveDate) -> Result<FlushReport> {
        let mut report = FlushReport::default();
        let (batches, upto) = {
            let state = self.read();
            (state.snapshot.pending.clone(), state.pending_upto)
        };
        let taken = batches.len();
        if taken > 0 {
            let schema = readings_schema();
            let all = arrow::compute::concat_batches(&schema, &batches)?;
            report.rows = all.num_rows();
            let mut written: Vec<(NaiveDate, PathBuf)> = Vec::new();
            // A flush writes all its files and its checkpoint, or none: files left
            // behind by a flush that failed half-way (disk full) would hold readings
            // that the next flush writes again, and that the log replays at start.
            let undo = |written: &[(NaiveDate, PathBuf)]| {
                for (_, path) in written {
                    let _ = fs::remove_file(path);
                }
            };
            for (day, rows) in by_day(&all)? {
                let path = self
                    .root
                    .join(RAW_DIR)
                    .join(format!("date={day}"))
                    .join(unique_name("part"));
                if let Err(e) =
                    sorted(&rows).and_then(|rows| write_parquet(&self.root, &path, &rows))
                {
                    undo(&written);
                    return Err(e);
                }
                written.push((day, path));
            }
            // The files are durable: say so before the log is cut.
            if let Some(upto) = upto {
                let next = upto + 1;
                let path = self.root.join(RAW_DIR).join(CHECKPOINT_FILE);
                let tmp = path.with_extension("tmp");
                let saved = fs::write(&tmp, format!("{next}\n"))
                    .and_then(|()| File::open(&tmp).and_then(|f| f.sync_all()))
                    .and_then(|()| fs::rename(&tmp, &path))
                    .map_err(io_at(&path))
                    .and_then(|()| sync_dir(&self.root.join(RAW_DIR)));
                if let Err(e) = saved {
                    let _ = fs::remove_file(&tmp);
                    undo(&written);
                    return Err(e);
                }
                *self.checkpoint.lock().unwrap_or_else(|p| p.into_inner()) = next;
            }
            {
                // The new files appear and the pending rows go in one step.
                let mut state = self.write();
                for (day, path) in &written {
                    let files = state.snapshot.raw.entry(*day).or_default();
                    files.push(path.clone());
                    files.sort();
                }
                state.snapshot.pending.drain(..taken);
                if state.snapshot.pending.is_empty() {
                    state.pending_upto = None;
                }
            }
            report.files = written.into_iter().map(|(_, p)| p).collect();
            if let (Some(wal), Some(upto)) = (wal, upto) {
                wal.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .checkpoint(upto + 1)?;
            }
        }
        report.compacted_days = self.compact(today)?;
        report.deleted_days = self.apply_retention(today)?;
        self.delete_doomed(false);
        Ok(report)
    }

    /// Compacts every day before `today` that has several raw files or no rollup,
    /// into one sorted file and its rollup.
    fn compact(&self, today: NaiveDate) -> Result<Vec<NaiveDate>> {
        let todo: Vec<(NaiveDate, Vec<PathBuf>)> = {
            let state = self.read();
            state
                .snapshot
                .raw
                .iter()
                .filter(|(day, files)| {
                    **day < today && (files.len() > 1 || !state.snapshot.rollups.contains_key(*day))
                })
                .map(|(day, files)| (*day, files.clone()))
                .collect()
        };
        let mut done = Vec::new();
        for (day, files) in todo {
            let schema = readings_schema();
            let rows = sorted(&read_parquet(&files, &schema)?)?;
            let day_dir = self.root.join(RAW_DIR).join(format!("date={day}"));
            let merged = day_dir.join(unique_name("day"));
            write_parquet(&self.root, &merged, &rows)?;
            let rollup_path = self
                .root
                .join(ROLLUP_DIR)
                .join(format!("date={day}"))
                .join(unique_name("rollup"));
            write_parquet(&self.root, &rollup_path, &rollup(&rows)?)?;
            let mut state = self.write();
            let old_rollups = state
                .snapshot
                .rollups
                .insert(day, vec![rollup_path])
                .unwrap_or_default();
            state.snapshot.raw.insert(day, vec![merged]);
            let now = Instant::now();
            for path in files.into_iter().chain(old_rollups) {
                state.doomed.push((now, path));
            }
            done.push(day);
        }
        Ok(done)
    }

    /// Deletes the days past the retention, raw and rollups apart.
    fn apply_retention(&self, today: NaiveDate) -> Result<Vec<NaiveDate>> {
        let mut deleted = Vec::new();
        let mut state = self.write();
        let now = Instant::now();
        for (keep, rollups) in [
            (self.opts.raw_retention_days, false),
            (self.opts.rollup_retention_days, true),
        ] {
            let Some(days) = keep else { continue };
            let oldest = today - chrono::Days::new(u64::from(days));
            let map = if rollups {
                &mut state.snapshot.rollups
            } else {
                &mut state.snapshot.raw
            };
            let old: Vec<NaiveDate> = map.range(..oldest).map(|(d, _)| *d).collect();
            let mut files = Vec::new();
            for day in old {
                files.extend(map.remove(&day).unwrap_or_default());
                if !rollups {
                    deleted.push(day);
                }
            }
            state.doomed.extend(files.into_iter().map(|f| (now, f)));
        }
        Ok(deleted)
    }

    /// Makes room when the disk runs low: deletes the oldest days of raw readings
    /// that have their one-minute rollups (days that are over and compacted), one
    /// day at a time, until `enough` says there is room. Rollups and today's
    /// readings are kept; so is everything outside the history. Returns the days
    /// deleted.
    pub fn make_room(&self, enough: impl Fn() -> io::Result<bool>) -> Vec<NaiveDate> {
        let mut deleted = Vec::new();
        loop {
            if enough().unwrap_or(false) {
                break;
            }
            // Files the grace period still keeps go first.
            self.delete_doomed(true);
            let files = {
                let mut state = self.write();
                let day = state
                    .snapshot
                    .raw
                    .keys()
                    .copied()
                    .find(|d| state.snapshot.rollups.contains_key(d));
                let Some(day) = day else { break };
                deleted.push(day);
                state.snapshot.raw.remove(&day).unwrap_or_default()
            };
            for path in files {
                if let Err(e) = fs::remove_file(&path)
                    && e.kind() != io::ErrorKind::NotFound
                {
                    tracing::warn!(path = %path.display(), error = %e, "could not delete an old history file");
                }
                if let Some(dir) = path.parent()
                    && fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none())
                {
                    let _ = fs::remove_dir(dir);
                }
            }
        }
        deleted
    }

    /// Deletes the files no query can still be reading (all of them when `all`).
    pub(crate) fn delete_doomed(&self, all: bool) {
        let mut state = self.write();
        let (due, keep): (Vec<_>, Vec<_>) = state
            .doomed
            .drain(..)
            .partition(|(at, _)| all || at.elapsed() >= DELETE_GRACE);
        state.doomed = keep;
        drop(state);
        for (_, path) in due {
            if let Err(e) = fs::remove_file(&path)
                && e.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e, "could not delete an old history file");
            }
            if let Some(dir) = path.parent()
                && fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none())
            {
                let _ = fs::remove_dir(dir);
            }
        }
    }

    /// The storage directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn options(&self) -> &HistoryOptions {
        &self.opts
    }
}

/// Readings made durable, with their WAL record, as the sink hands them over.
pub type DurableRx = mpsc::UnboundedReceiver<(Option<u64>, Vec<Reading>)>;

/// Runs the history writer: takes durable readings as they come, flushes them every
/// `flush_every` and once more when the node stops.
pub fn spawn_writer(
    history: Arc<History>,
    mut rx: DurableRx,
    wal: Option<Arc<Mutex<Wal>>>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(history.opts.flush_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let flush = |history: Arc<History>, wal: Option<Arc<Mutex<Wal>>>| async move {
            let today = sensors::clock::now().date_naive();
            let outcome =
                tokio::task::spawn_blocking(move || history.flush(wal.as_deref(), today)).await;
            match outcome {
                Ok(Ok(report)) if report.rows > 0 || !report.compacted_days.is_empty() => {
                    tracing::info!(
                        rows = report.rows,
                        files = report.files.len(),
                        compacted = report.compacted_days.len(),
                        "history written"
                    );
                }
                Ok(Ok(_)) => {}
                // The readings stay pending and in the log: the next flush tries again.
                Ok(Err(e)) => tracing::error!(error = %e, "could not write the history"),
                Err(e) => tracing::error!(error = %e, "history writer task failed"),
            }
        };
        loop {
            tokio::select! {
                got = rx.recv() => match got {
                    Some((record, readings)) => {
                        if let Err(e) = history.add_pending(record, &readings) {
                            tracing::error!(error = %e, "could not keep readings for the history");
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => flush(history.clone(), wal.clone()).await,
                _ = cancel.cancelled() => {
                    // The sink may still hand over what it drains: take it all.
                    while let Some((record, readings)) = rx.recv().await {
                        if let Err(e) = history.add_pending(record, &readings) {
                            tracing::error!(error = %e, "could not keep readings for the history");
                        }
                    }
                    break;
                }
            }
        }
        flush(history.clone(), wal.clone()).await;
    })
}

#[cfg(test)]
mod tests;
