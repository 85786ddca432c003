//! The history: every durable reading ends up in Parquet files partitioned by UTC
//! day, readable by any Parquet tool:
//!
//! ```text
//! <storage>/readings/date=YYYY-MM-DD/part-<nanos>-w<N>.parquet  raw readings of one flush
//! <storage>/readings/date=YYYY-MM-DD/day-<nanos>.parquet         a day compacted
//! <storage>/readings_1m/date=YYYY-MM-DD/rollup-<nanos>.parquet   one-minute rollups
//! <storage>/readings/_wal_checkpoint                             WAL records below this are in Parquet
//! ```
//!
//! A raw file of a flush names the checkpoint that flush writes next (`-w<N>`: it
//! holds WAL records below `N`). A flush writes its files, then the checkpoint, and
//! only then cuts the log; so a file whose `N` is above the checkpoint on disk is
//! the orphan of a flush whose checkpoint never became durable (disk full, card
//! turned read-only, power gone), and its readings are all still in the log:
//! [`History::open`] deletes it, and the log's replay writes them again. Files
//! without `-w` (those of histories written without a log, and those written before
//! the mark existed) are always kept. While the node runs, an orphan that cannot be
//! deleted (a read-only card) stops every flush until it can be: a later checkpoint
//! would otherwise cover it, and its readings would be counted twice.
//!
//! Raw files have the readings schema (DESIGN.md §2), rows sorted by device, metric
//! and time, dictionary-encoded and compressed with zstd. Rollups have `ts` (the
//! minute), `device`, `metric`, `avg`, `min`, `max`, `last` (the value of the
//! newest reading of the minute) and `count`.
//!
//! Readings made durable by the write-ahead log wait in memory (`pending`) until the
//! next flush writes them out; only then is the log cut (the checkpoint file says
//! how far). A day that is over is compacted into one file and rolled up; files of
//! days past the retention are deleted. The files a compaction replaces stay until
//! no query can still be reading them; the new file names them in its Parquet
//! metadata (`communalia.replaces`), so that a node stopped meanwhile neither reads
//! them again nor keeps them. What queries see is one consistent
//! [`HistorySnapshot`]: the files and the pending batches change together under one
//! lock, so a reading is never seen twice nor missed.
//!
//! On an encrypted node ([`HistoryOptions::key`]) every file is written with Parquet
//! modular encryption: footer and every column under the node's history key
//! (AES-256-GCM), so that a file says nothing, not even its schema or row count,
//! without the key. The footer's key metadata is the Parquet key-material JSON
//! (`PKMT1`) that Parquet's key tools read, naming the master key
//! `communalia-history`: an independent reader (pyarrow's `CryptoFactory` with a KMS
//! client that gives it the key) opens the files. Paths stay as above: day and
//! counters only, never a device or household.

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
/// The metadata key under which a compacted day or a rollup names the files it
/// replaces (one name a line).
const REPLACES_KEY: &str = "communalia.replaces";

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(
        "history {path}: the raw file of a flush whose checkpoint was never written \
         cannot be deleted ({source}); its readings are still in the write-ahead log, \
         and would be counted twice"
    )]
    Orphan {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
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
    /// Pending rows that bring the next flush forward: what waits in memory stays
    /// bounded on a site (or a demo at `--speed 60`) whose readings come faster than
    /// `flush_every` can hold cheaply.
    pub flush_rows: usize,
    /// Days of raw readings kept (`None`: all).
    pub raw_retention_days: Option<u32>,
    /// Days of one-minute rollups kept (`None`: all).
    pub rollup_retention_days: Option<u32>,
    /// The key the files are encrypted with (`None`: clear-text files).
    pub key: Option<keyring::Key32>,
}

impl Default for HistoryOptions {
    fn default() -> Self {
        HistoryOptions {
            flush_every: Duration::from_secs(300),
            flush_rows: 200_000,
            raw_retention_days: None,
            rollup_retention_days: None,
            key: None,
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
    /// Rows among the pending batches.
    pending_rows: usize,
    /// How many of the newest pending batches have not been merged yet.
    young: usize,
    /// How many of the first pending batches a flush under way has taken: they are
    /// never merged, so that it removes exactly what it wrote.
    flushing: usize,
    /// Files to delete once no query can still be reading them.
    doomed: Vec<(Instant, PathBuf)>,
}

/// What a failed flush left on disk for the next one to settle before it writes
/// anything.
#[derive(Debug, Default)]
struct Unsettled {
    /// Raw files of a flush whose checkpoint was never written, that could not be
    /// deleted (or whose deletion could not be made durable).
    orphans: Vec<PathBuf>,
    /// The checkpoint in memory was renamed into place but could not be made
    /// durable: it is written again before the log is cut behind it.
    checkpoint: bool,
}

/// The history of one node.
#[derive(Debug)]
pub struct History {
    root: PathBuf,
    opts: HistoryOptions,
    state: RwLock<State>,
    /// WAL records below this are in Parquet.
    checkpoint: Mutex<u64>,
    unsettled: Mutex<Unsettled>,
    /// Tests: every deletion of a raw file by a flush fails, as on a read-only card
    /// (permission bits do not stop root, who runs the tests).
    #[cfg(test)]
    refuse_deletes: std::sync::atomic::AtomicBool,
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
fn list_days(
    dir: &Path,
    key: Option<&keyring::Key32>,
) -> Result<BTreeMap<NaiveDate, Vec<PathBuf>>> {
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
        if files.len() > 1 {
            drop_replaced(&mut files, key);
        }
        if !files.is_empty() {
            out.insert(day, files);
        }
    }
    Ok(out)
}

/// The names of the files a compacted day or a rollup replaces, from its metadata.
fn replaced_names(path: &Path, key: Option<&keyring::Key32>) -> Vec<String> {
    let reader = File::open(path).map_err(|e| e.to_string()).and_then(|f| {
        ParquetRecordBatchReaderBuilder::try_new_with_options(f, reader_options(key))
            .map_err(|e| e.to_string())
    });
    let reader = match reader {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "could not read a history file's metadata");
            return Vec::new();
        }
    };
    reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
        .filter(|kv| kv.key == REPLACES_KEY)
        .filter_map(|kv| kv.value.as_deref())
        .flat_map(|v| v.lines().map(str::to_string).collect::<Vec<_>>())
        .collect()
}

/// Takes out of one day's files those a compaction replaced, and deletes them: a
/// crash within their grace period (see [`DELETE_GRACE`]) left them next to the
/// file that holds their rows, which would be counted twice.
fn drop_replaced(files: &mut Vec<PathBuf>, key: Option<&keyring::Key32>) {
    let replaced: std::collections::HashSet<String> = files
        .iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("day-") || n.starts_with("rollup-"))
        })
        .flat_map(|p| replaced_names(p, key))
        .collect();
    files.retain(|path| {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if !replaced.contains(name) {
            return true;
        }
        match fs::remove_file(path) {
            Ok(()) => tracing::warn!(
                path = %path.display(),
                "deleted a history file a compaction had replaced (the node stopped before it could)"
            ),
            Err(e) => tracing::warn!(
                path = %path.display(), error = %e,
                "a history file a compaction replaced could not be deleted; it is not read"
            ),
        }
        false
    });
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
    writer_properties_for(None)
}

/// The name of the key in the footer's key metadata, for a reader's key tools.
pub const HISTORY_MASTER_KEY_ID: &str = "communalia-history";

/// The footer's key metadata: Parquet's key-material JSON (`PKMT1`, stored in the
/// file) naming the master key. It holds no key: the "wrapped" key is a label, and
/// a reader's KMS client answers it with the node's history key.
fn key_metadata() -> Vec<u8> {
    format!(
        "{{\"keyMaterialType\":\"PKMT1\",\"internalStorage\":true,\"isFooterKey\":true,\
         \"kmsInstanceID\":\"DEFAULT\",\"kmsInstanceURL\":\"DEFAULT\",\
         \"masterKeyID\":\"{HISTORY_MASTER_KEY_ID}\",\"wrappedDEK\":\"{HISTORY_MASTER_KEY_ID}\",\
         \"doubleWrapping\":false}}"
    )
    .into_bytes()
}

/// Parquet encryption of the footer and, uniformly, every column under `key`.
pub fn encryption_properties(
    key: &keyring::Key32,
) -> parquet::errors::Result<Arc<parquet::encryption::encrypt::FileEncryptionProperties>> {
    parquet::encryption::encrypt::FileEncryptionProperties::builder(key.bytes().to_vec())
        .with_footer_key_metadata(key_metadata())
        .build()
}

/// How to read the history's files: with the key, when they are encrypted.
pub fn reader_options(
    key: Option<&keyring::Key32>,
) -> parquet::arrow::arrow_reader::ArrowReaderOptions {
    let options = parquet::arrow::arrow_reader::ArrowReaderOptions::new();
    match key.and_then(|k| {
        parquet::encryption::decrypt::FileDecryptionProperties::builder(k.bytes().to_vec())
            .build()
            .ok()
    }) {
        Some(props) => options.with_file_decryption_properties(props),
        None => options,
    }
}

/// [`writer_properties`], encrypted under `key` when there is one.
pub fn writer_properties_for(key: Option<&keyring::Key32>) -> WriterProperties {
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
    if let Some(encryption) = key.and_then(|k| encryption_properties(k).ok()) {
        props = props.with_file_encryption_properties(encryption);
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
fn write_parquet(
    root: &Path,
    path: &Path,
    batch: &RecordBatch,
    key: Option<&keyring::Key32>,
) -> Result<()> {
    write_parquet_replacing(root, path, batch, &[], key)
}

/// [`write_parquet`] of a file that replaces `replaces` (files of the same
/// directory), which it names in its metadata: should the node stop before they are
/// deleted, the next open still knows not to read them.
fn write_parquet_replacing(
    root: &Path,
    path: &Path,
    batch: &RecordBatch,
    replaces: &[PathBuf],
    key: Option<&keyring::Key32>,
) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    make_dirs_below(root, dir)?;
    let tmp = path.with_extension("parquet.tmp");
    let written = (|| {
        let file = File::create(&tmp).map_err(io_at(&tmp))?;
        let mut writer =
            ArrowWriter::try_new(file, batch.schema(), Some(writer_properties_for(key)))
                .map_err(pq_at(&tmp))?;
        let names: Vec<&str> = replaces
            .iter()
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()))
            .collect();
        if !names.is_empty() {
            writer.append_key_value_metadata(parquet::file::metadata::KeyValue::new(
                REPLACES_KEY.to_string(),
                names.join("\n"),
            ));
        }
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
fn read_parquet(
    files: &[PathBuf],
    schema: &SchemaRef,
    key: Option<&keyring::Key32>,
) -> Result<RecordBatch> {
    let mut batches = Vec::new();
    for path in files {
        let file = File::open(path).map_err(io_at(path))?;
        let reader =
            ParquetRecordBatchReaderBuilder::try_new_with_options(file, reader_options(key))
                .and_then(|b| b.build())
                .map_err(pq_at(path))?;
        for batch in reader {
            let batch = batch?;
            batches.push(batch.with_schema(schema.clone())?);
        }
    }
    Ok(arrow::compute::concat_batches(schema, &batches)?)
}

/// Writes the history file `src` again as `dst`, read under `from` and written
/// under `to` (`communalia encrypt`: clear text to encrypted), with its rows, its
/// schema and its metadata (what a compaction replaced). Returns the rows.
pub fn rewrite_file(
    src: &Path,
    dst: &Path,
    from: Option<&keyring::Key32>,
    to: Option<&keyring::Key32>,
) -> Result<usize> {
    let file = File::open(src).map_err(io_at(src))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file, reader_options(from))
        .map_err(pq_at(src))?;
    let schema = builder.schema().clone();
    let metadata: Vec<parquet::file::metadata::KeyValue> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
        // ArrowWriter writes the Arrow schema itself.
        .filter(|kv| kv.key != "ARROW:schema")
        .cloned()
        .collect();
    let reader = builder.build().map_err(pq_at(src))?;
    if let Some(dir) = dst.parent() {
        fs::create_dir_all(dir).map_err(io_at(dir))?;
    }
    let out = File::create(dst).map_err(io_at(dst))?;
    let mut writer =
        ArrowWriter::try_new(out, schema, Some(writer_properties_for(to))).map_err(pq_at(dst))?;
    for kv in metadata {
        writer.append_key_value_metadata(kv);
    }
    let mut rows = 0;
    for batch in reader {
        let batch = batch?;
        rows += batch.num_rows();
        writer.write(&batch).map_err(pq_at(dst))?;
    }
    let out = writer.into_inner().map_err(pq_at(dst))?;
    out.sync_all().map_err(io_at(dst))?;
    Ok(rows)
}

/// The rows of a history file (read under `key`), for checking a rewrite.
pub fn count_rows(path: &Path, key: Option<&keyring::Key32>) -> Result<usize> {
    let file = File::open(path).map_err(io_at(path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file, reader_options(key))
        .map_err(pq_at(path))?;
    Ok(builder.metadata().file_metadata().num_rows().max(0) as usize)
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

/// The name of a raw file of a flush that writes checkpoint `next` (`None`: a flush
/// without log records, which writes no checkpoint).
fn part_name(next: Option<u64>) -> String {
    match next {
        Some(next) => unique_name("part").replace(".parquet", &format!("-w{next}.parquet")),
        None => unique_name("part"),
    }
}

/// The checkpoint a raw file's flush wrote (or meant to): `part-<nanos>-w<N>.parquet`.
fn wal_mark(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let (_, mark) = name
        .strip_prefix("part-")?
        .strip_suffix(".parquet")?
        .split_once("-w")?;
    mark.parse().ok()
}

/// The raw files under `raw_dir/date=*/` that carry a WAL mark, with it.
fn marked_files(raw_dir: &Path) -> Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(raw_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_at(raw_dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_at(raw_dir))?;
        if entry.file_name().to_str().and_then(parse_day_dir).is_none() {
            continue;
        }
        let day_dir = entry.path();
        for f in fs::read_dir(&day_dir).map_err(io_at(&day_dir))? {
            let path = f.map_err(io_at(&day_dir))?.path();
            if let Some(mark) = wal_mark(&path) {
                out.push((path, mark));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Deletes `path`, a file inside the storage directory `root` (gone already is
/// fine), and makes the deletion durable, so that the file cannot come back after a
/// crash next to a checkpoint written later.
fn delete_durably(root: &Path, path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    match File::open(dir).and_then(|d| d.sync_all()) {
        Ok(()) => Ok(()),
        // No directory, no file in it; unless the storage directory itself is gone
        // (its disk unmounted under the node), where the file may still be.
        Err(e) if e.kind() == io::ErrorKind::NotFound && root.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes the checkpoint `next` durably (temporary file, fsync, rename, directory
/// fsync). On failure, says whether the new checkpoint was already renamed into
/// place: then it may or may not be durable, but it is what the file says now.
fn save_checkpoint(raw_dir: &Path, next: u64) -> Result<(), (bool, HistoryError)> {
    let path = raw_dir.join(CHECKPOINT_FILE);
    let tmp = path.with_extension("tmp");
    let renamed = fs::write(&tmp, format!("{next}\n"))
        .and_then(|()| File::open(&tmp).and_then(|f| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, &path))
        .map_err(io_at(&path));
    if let Err(e) = renamed {
        let _ = fs::remove_file(&tmp);
        return Err((false, e));
    }
    sync_dir(raw_dir).map_err(|e| (true, e))
}

impl History {
    /// Opens the history under `root` (the storage directory): reads how far the
    /// write-ahead log is already in Parquet, deletes the raw files of a flush whose
    /// checkpoint never became durable (their readings are still in the log, which
    /// replays them), and lists the files. Fails when such a file cannot be deleted
    /// (a read-only card): started with it, the node would count its readings twice.
    pub fn open(root: &Path, opts: HistoryOptions) -> Result<Arc<History>> {
        let raw_dir = root.join(RAW_DIR);
        fs::create_dir_all(&raw_dir).map_err(io_at(&raw_dir))?;
        let checkpoint_path = raw_dir.join(CHECKPOINT_FILE);
        let marked = marked_files(&raw_dir)?;
        let checkpoint = match fs::read_to_string(&checkpoint_path) {
            Ok(text) => match text.trim().parse::<u64>() {
                Ok(n) => n,
                Err(_) => {
                    // Every raw file holds log records below its mark, and flushes
                    // follow one another: the highest mark is how far the log is in
                    // Parquet. Nothing is then taken for an orphan and deleted.
                    let n = marked.iter().map(|(_, m)| *m).max().unwrap_or(0);
                    tracing::error!(
                        path = %checkpoint_path.display(), text = %text.trim(), from_files = n,
                        "the history checkpoint is unreadable; taking the highest mark of the raw files"
                    );
                    n
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_at(&checkpoint_path)(e)),
        };
        for (path, mark) in marked {
            if mark <= checkpoint {
                continue;
            }
            tracing::warn!(
                path = %path.display(), mark, checkpoint,
                "deleting the raw file of a flush whose checkpoint was never written; the write-ahead log replays its readings"
            );
            delete_durably(root, &path).map_err(|source| HistoryError::Orphan { path, source })?;
        }
        let snapshot = HistorySnapshot {
            raw: list_days(&raw_dir, opts.key.as_ref())?,
            rollups: list_days(&root.join(ROLLUP_DIR), opts.key.as_ref())?,
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
            unsettled: Mutex::new(Unsettled::default()),
            #[cfg(test)]
            refuse_deletes: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// Deletes a raw file a flush wrote, durably.
    fn delete_part(&self, path: &Path) -> io::Result<()> {
        #[cfg(test)]
        if self
            .refuse_deletes
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(io::Error::new(
                io::ErrorKind::ReadOnlyFilesystem,
                "deletion refused by the test",
            ));
        }
        delete_durably(&self.root, path)
    }

    /// Settles what a failed flush left: deletes its orphans, writes again a
    /// checkpoint that could not be made durable and cuts the log behind it. Until
    /// this succeeds a flush writes nothing: an orphan must never stand next to a
    /// later checkpoint, which would hide it from [`History::open`].
    fn settle(&self, wal: Option<&Mutex<Wal>>) -> Result<()> {
        let mut unsettled = self.unsettled.lock().unwrap_or_else(|p| p.into_inner());
        let mut failed = None;
        let mut left = Vec::new();
        for path in std::mem::take(&mut unsettled.orphans) {
            match self.delete_part(&path) {
                Ok(()) => tracing::info!(
                    path = %path.display(),
                    "deleted the raw file of a flush whose checkpoint was never written"
                ),
                Err(source) => {
                    if failed.is_none() {
                        failed = Some(HistoryError::Orphan {
                            path: path.clone(),
                            source,
                        });
                    }
                    left.push(path);
                }
            }
        }
        unsettled.orphans = left;
        if let Some(e) = failed {
            return Err(e);
        }
        if unsettled.checkpoint {
            let next = self.wal_checkpoint();
            save_checkpoint(&self.root.join(RAW_DIR), next).map_err(|(_, e)| e)?;
            unsettled.checkpoint = false;
            if let Some(wal) = wal {
                wal.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .checkpoint(next)?;
            }
        }
        Ok(())
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
        state.pending_rows += batch.num_rows();
        state.snapshot.pending.push(batch);
        state.young += 1;
        if state.young >= MERGE_AFTER {
            // A batch of a few rows costs more in arrays and schema references than
            // in readings: the newest ones are merged into one (issue 13).
            let state = &mut *state;
            let pending = &mut state.snapshot.pending;
            let start = (pending.len() - state.young).max(state.flushing);
            if pending.len() - start >= 2 {
                let merged = arrow::compute::concat_batches(&readings_schema(), &pending[start..])?;
                pending.truncate(start);
                pending.push(merged);
            }
            state.young = 0;
        }
        if let Some(r) = record {
            state.pending_upto = Some(state.pending_upto.map_or(r, |u| u.max(r)));
        }
        Ok(())
    }

    /// Whether enough rows wait to bring the next flush forward
    /// ([`HistoryOptions::flush_rows`]).
    pub fn flush_due(&self) -> bool {
        self.read().pending_rows >= self.opts.flush_rows
    }

    /// What queries see now.
    pub fn snapshot(&self) -> HistorySnapshot {
        self.read().snapshot.clone()
    }

    /// Rows waiting for the next flush.
    pub fn pending_rows(&self) -> usize {
        self.read().pending_rows
    }

    /// Writes what is pending to Parquet, cuts the write-ahead log behind it,
    /// compacts and rolls up the days that are over before `today`, and applies the
    /// retention. Blocking: run it off the async threads.
    ///
    /// First settles what an earlier flush left on a failing disk (see
    /// [`History::open`]); while that fails, it writes nothing and says which file
    /// is in the way. A flush whose new checkpoint is in place but could not be made
    /// durable keeps its files (their readings are no longer pending) and fails; the
    /// log is cut behind them only once the checkpoint is written again.
    pub fn flush(&self, wal: Option<&Mutex<Wal>>, today: NaiveDate) -> Result<FlushReport> {
        self.settle(wal)?;
        let mut report = FlushReport::default();
        let (batches, upto) = {
            let mut state = self.write();
            state.flushing = state.snapshot.pending.len();
            state.young = 0;
            (state.snapshot.pending.clone(), state.pending_upto)
        };
        // However the flush ends, the batches it took may be merged again.
        let _taken_guard = FlushingGuard(self);
        let taken = batches.len();
        if taken > 0 {
            let schema = readings_schema();
            let all = arrow::compute::concat_batches(&schema, &batches)?;
            report.rows = all.num_rows();
            let next = upto.map(|u| u + 1);
            let mut written: Vec<(NaiveDate, PathBuf)> = Vec::new();
            // A flush writes all its files and its checkpoint, or none: files left
            // behind by a flush that failed half-way (disk full) would hold readings
            // that the next flush writes again, and that the log replays at start.
            // A file that cannot be deleted (a read-only card) is an orphan: the
            // next flushes delete it before they write anything.
            let undo = |paths: &mut dyn Iterator<Item = &PathBuf>| {
                let mut unsettled = self.unsettled.lock().unwrap_or_else(|p| p.into_inner());
                for path in paths {
                    if let Err(e) = self.delete_part(path) {
                        tracing::warn!(
                            path = %path.display(), error = %e,
                            "could not delete the raw file of a failed flush; no flush writes until it is gone"
                        );
                        unsettled.orphans.push(path.clone());
                    }
                }
            };
            for (day, rows) in by_day(&all)? {
                let path = self
                    .root
                    .join(RAW_DIR)
                    .join(format!("date={day}"))
                    .join(part_name(next));
                if let Err(e) = sorted(&rows).and_then(|rows| {
                    write_parquet(&self.root, &path, &rows, self.opts.key.as_ref())
                }) {
                    // The file itself may be in place (its directory's sync failed).
                    undo(&mut written.iter().map(|(_, p)| p).chain([&path]));
                    return Err(e);
                }
                written.push((day, path));
            }
            // The files are durable: say so before the log is cut.
            let mut unsure = None;
            if let Some(next) = next {
                match save_checkpoint(&self.root.join(RAW_DIR), next) {
                    Ok(()) => {}
                    Err((false, e)) => {
                        undo(&mut written.iter().map(|(_, p)| p));
                        return Err(e);
                    }
                    Err((true, e)) => {
                        // The checkpoint file says `next` now, durably or not: the
                        // files stay (deleting them could lose their readings, were
                        // it durable) and count as written, and the log keeps their
                        // records until the checkpoint is written again.
                        tracing::warn!(
                            error = %e,
                            "the history checkpoint could not be made durable; the write-ahead log is kept"
                        );
                        self.unsettled
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .checkpoint = true;
                        unsure = Some(e);
                    }
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
                let rows: usize = state.snapshot.pending[..taken]
                    .iter()
                    .map(RecordBatch::num_rows)
                    .sum();
                state.pending_rows -= rows;
                state.snapshot.pending.drain(..taken);
                state.flushing = 0;
                if state.snapshot.pending.is_empty() {
                    state.pending_upto = None;
                }
            }
            if let Some(e) = unsure {
                return Err(e);
            }
            report.files = written.into_iter().map(|(_, p)| p).collect();
            if let (Some(wal), Some(next)) = (wal, next) {
                wal.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .checkpoint(next)?;
            }
        }
        report.compacted_days = self.compact(today)?;
        report.deleted_days = self.apply_retention(today)?;
        self.delete_doomed(false);
        // The flush's concatenated batches, the Parquet writer's buffers and a
        // compaction's whole day are freed now: give those pages back rather than
        // keep them in the heap until the next flush (issue 13).
        heaptune::release_free_memory();
        Ok(report)
    }

    /// Compacts every day before `today` that has several raw files or no rollup,
    /// into one sorted file and its rollup.
    fn compact(&self, today: NaiveDate) -> Result<Vec<NaiveDate>> {
        type Todo = (NaiveDate, Vec<PathBuf>, Vec<PathBuf>);
        let todo: Vec<Todo> = {
            let state = self.read();
            state
                .snapshot
                .raw
                .iter()
                .filter(|(day, files)| {
                    **day < today && (files.len() > 1 || !state.snapshot.rollups.contains_key(*day))
                })
                .map(|(day, files)| {
                    let rollups = state.snapshot.rollups.get(day).cloned();
                    (*day, files.clone(), rollups.unwrap_or_default())
                })
                .collect()
        };
        let mut done = Vec::new();
        for (day, files, old_rollups) in todo {
            let schema = readings_schema();
            let rows = sorted(&read_parquet(&files, &schema, self.opts.key.as_ref())?)?;
            // Each new file names those it replaces, which stay until no query can
            // be reading them: a node stopped meanwhile does not read them again.
            // The rollup first: stopped between the two, the day's files are those
            // the rollup was computed from. A rollup covers the whole day, so it
            // replaces every other rollup of the day, one a failed compaction left
            // on disk included.
            let rollup_dir = self.root.join(ROLLUP_DIR).join(format!("date={day}"));
            let rollup_path = rollup_dir.join(unique_name("rollup"));
            let mut replaced_rollups = old_rollups;
            if let Ok(entries) = fs::read_dir(&rollup_dir) {
                for path in entries.flatten().map(|e| e.path()) {
                    if path.extension().is_some_and(|e| e == "parquet")
                        && !replaced_rollups.contains(&path)
                    {
                        replaced_rollups.push(path);
                    }
                }
            }
            write_parquet_replacing(
                &self.root,
                &rollup_path,
                &rollup(&rows)?,
                &replaced_rollups,
                self.opts.key.as_ref(),
            )?;
            let day_dir = self.root.join(RAW_DIR).join(format!("date={day}"));
            let merged = day_dir.join(unique_name("day"));
            if let Err(e) =
                write_parquet_replacing(&self.root, &merged, &rows, &files, self.opts.key.as_ref())
            {
                let _ = fs::remove_file(&rollup_path);
                return Err(e);
            }
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

    /// Deletes now the files compactions replaced, without the grace that lets a
    /// running query finish reading them: for a history nobody queries yet (the
    /// demo writing its made-up past before the node opens it).
    pub fn delete_replaced_now(&self) {
        self.delete_doomed(true);
    }

    /// The storage directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn options(&self) -> &HistoryOptions {
        &self.opts
    }
}

/// Pending batches merged into one once this many small ones have come.
const MERGE_AFTER: usize = 64;

/// Ends a flush's hold on the pending batches it took, whichever way it returns.
struct FlushingGuard<'a>(&'a History);

impl Drop for FlushingGuard<'_> {
    fn drop(&mut self) {
        self.0.write().flushing = 0;
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
        // An early flush (enough rows pending) waits this long after the last one,
        // so that a failing disk is not tried again at every message.
        let early_after = Duration::from_secs(10).min(history.opts.flush_every);
        let mut last_flush = tokio::time::Instant::now();
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
                        if history.flush_due() && last_flush.elapsed() >= early_after {
                            flush(history.clone(), wal.clone()).await;
                            last_flush = tokio::time::Instant::now();
                            tick.reset();
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    flush(history.clone(), wal.clone()).await;
                    last_flush = tokio::time::Instant::now();
                }
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

mod erase;

#[cfg(test)]
mod tests;
