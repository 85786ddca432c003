//! What `/api/export` and `/api/sql` run (DESIGN.md §8), on the history session
//! ([`Queries`]).
//!
//! An export streams readings batch after batch as DataFusion produces them, in
//! CSV or Parquet, never holding the whole range; rows come day by day, each day's
//! files sorted by device, metric and time, then the readings not yet written out.
//! The SQL of installers is read-only (no DDL, DML or statements) and bounded: in
//! rows, in time (a query past its time is stopped, not just answered), in memory
//! (a DataFusion memory pool of its own, nothing spilled to disk) and in number (at
//! most [`SqlLimits::at_once`] at a time).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type, TimestampMillisecondType};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SQLOptions, SessionContext, col, lit};
use datafusion::scalar::ScalarValue;

use tokio::sync::Semaphore;

use crate::consent::Scope;
use crate::history_session::Queries;
use crate::{Error, Result};

/// One export request.
#[derive(Debug, Clone, Default)]
pub struct ExportRange {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Empty: every device.
    pub devices: Vec<String>,
    /// Empty: every metric.
    pub metrics: Vec<String>,
}

/// The columns of an export: `ts`, `device`, `metric`, `value`.
pub fn export_schema() -> datafusion::arrow::datatypes::SchemaRef {
    use datafusion::arrow::datatypes::{Field, Schema};
    // The readings' own columns, with plain strings where they keep dictionaries:
    // what any CSV or Parquet reader expects.
    let fields: Vec<Field> = ingest::reading::readings_schema()
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Dictionary(_, value) => f.as_ref().clone().with_data_type((**value).clone()),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Memory the installers' queries may hold together by default, in MiB.
pub const SQL_MEMORY_MB: usize = 256;

/// Limits of installer queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlLimits {
    pub max_rows: usize,
    /// A query still running after this is stopped.
    pub timeout: Duration,
    /// What the queries running at once may hold together in DataFusion's memory
    /// pool (hash tables, sorts, buffered batches), in bytes.
    pub memory_bytes: usize,
    /// Queries running at once; one more is refused ([`SqlError::Busy`]).
    pub at_once: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        SqlLimits {
            max_rows: 10_000,
            timeout: Duration::from_secs(10),
            memory_bytes: SQL_MEMORY_MB * 1024 * 1024,
            at_once: 2,
        }
    }
}

/// What an installer query gave.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SqlAnswer {
    pub columns: Vec<String>,
    /// One object per row, by column name.
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    /// More rows than `max_rows` exist; only the first are here.
    pub truncated: bool,
}

/// Why an installer query did not run.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The text is not a read-only query DataFusion accepts (the message says why).
    #[error("{0}")]
    Refused(String),
    #[error("the query took longer than {0:?} and was stopped")]
    TimedOut(Duration),
    #[error(
        "the query needs more than {} MB of memory, what installer queries may hold \
         (together, when several run at once): narrow its time range, read the \
         one-minute rollups (readings_1m), or aggregate before joining or sorting",
        .limit_bytes / (1024 * 1024)
    )]
    TooMuchMemory { limit_bytes: usize },
    #[error("{at_once} installer queries are already running: try again when one is over")]
    Busy { at_once: usize },
}

/// The session installers' queries run on: the history session's tables and
/// functions, with a memory pool of its own and no spilling to disk, and the slots
/// of the queries running.
#[derive(Clone)]
pub(crate) struct SqlSession {
    ctx: SessionContext,
    slots: Arc<Semaphore>,
    limits: SqlLimits,
}

impl SqlSession {
    /// Over the tables of `history` (registered already), within `limits`.
    pub(crate) fn new(history: &SessionContext, limits: SqlLimits) -> Result<SqlSession> {
        let runtime = RuntimeEnvBuilder::from_runtime_env(&history.runtime_env())
            .with_memory_pool(Arc::new(GreedyMemoryPool::new(limits.memory_bytes)))
            // A query over its memory fails rather than fill the node's storage.
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()?;
        let state = SessionStateBuilder::new_from_existing(history.state())
            .with_runtime_env(runtime)
            .build();
        Ok(SqlSession {
            ctx: SessionContext::new_with_state(state),
            slots: Arc::new(Semaphore::new(limits.at_once)),
            limits,
        })
    }

    pub(crate) fn limits(&self) -> SqlLimits {
        self.limits
    }
}

/// Raises its flag when dropped: a query whose caller has stopped waiting, for its
/// answer or for anything, is stopped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The export and the installers' SQL, on the history session.
impl Queries {
    /// The readings of a range that `scope` may read, as a stream of batches: `ts`,
    /// `device`, `metric`, `value` (device and metric as text). A read under a grant
    /// is logged as `what`.
    pub async fn export(
        &self,
        scope: &Scope,
        range: &ExportRange,
        what: &str,
    ) -> Result<SendableRecordBatchStream> {
        let ts = |t: DateTime<Utc>| {
            lit(ScalarValue::TimestampMillisecond(
                Some(t.timestamp_millis()),
                Some("UTC".into()),
            ))
        };
        let session = self.scoped_session(scope, None).await?;
        scope
            .log(
                self.households(),
                what,
                &range.devices,
                range.from,
                range.to,
            )
            .await?;
        let mut df = session.table("readings").await?;
        if let Some(from) = range.from {
            df = df.filter(col("ts").gt_eq(ts(from)))?;
        }
        if let Some(to) = range.to {
            df = df.filter(col("ts").lt(ts(to)))?;
        }
        let text = |c: &str| datafusion::prelude::cast(col(c), DataType::Utf8);
        if !range.devices.is_empty() {
            let list = range.devices.iter().map(|d| lit(d.clone())).collect();
            df = df.filter(text("device").in_list(list, false))?;
        }
        if !range.metrics.is_empty() {
            let list = range.metrics.iter().map(|m| lit(m.clone())).collect();
            df = df.filter(text("metric").in_list(list, false))?;
        }
        let df = df.select(vec![
            col("ts"),
            text("device").alias("device"),
            text("metric").alias("metric"),
            col("value"),
        ])?;
        Ok(df.execute_stream().await?)
    }

    /// Runs an installer's query within the session's [`SqlLimits`]: read-only, at
    /// most `max_rows` rows, stopped after `timeout`, in the installers' memory pool,
    /// refused when `at_once` are running already. It runs on a thread and runtime
    /// of its own, so that a heavy query never holds up the node's own tasks; its
    /// slot is given back when that thread is done, not when the caller stops
    /// waiting, so that `at_once` counts what really runs.
    pub async fn sql(&self, scope: &Scope, text: &str) -> Result<SqlAnswer, SqlError> {
        let session = self.sql_session();
        let limits = session.limits;
        let slot = Arc::clone(&session.slots)
            .try_acquire_owned()
            .map_err(|_| SqlError::Busy {
                at_once: limits.at_once,
            })?;
        let ctx = self
            .scoped_session(scope, Some(session.ctx.runtime_env()))
            .await
            .map_err(|e| SqlError::Refused(format!("cannot prepare the query: {e}")))?;
        let what: String = ["sql: ", text].concat();
        scope
            .log(self.households(), &what, &[], None, None)
            .await
            .map_err(|e| SqlError::Refused(format!("cannot log the read: {e}")))?;
        let text = text.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_on_drop = StopOnDrop(Arc::clone(&stop));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("communalia-sql".into())
            .spawn(move || {
                let outcome = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => {
                        let outcome = runtime.block_on(run_sql(&ctx, &text, limits, &stop));
                        // Whatever the query left behind is dropped unpolled.
                        runtime.shutdown_background();
                        outcome
                    }
                    Err(e) => Err(SqlError::Refused(format!("cannot run the query: {e}"))),
                };
                // The query no longer computes: its slot is free before its answer
                // is, so that the next query of the same caller finds it.
                drop(slot);
                let _ = tx.send(outcome);
            });
        if let Err(e) = spawned {
            return Err(SqlError::Refused(format!("cannot run the query: {e}")));
        }
        let (columns, batches) = match tokio::time::timeout(limits.timeout, rx).await {
            Ok(Ok(outcome)) => outcome?,
            Ok(Err(_)) => {
                return Err(SqlError::Refused(
                    "the query ended without an answer".into(),
                ));
            }
            // Dropping the guard below raises the flag: the query stops within a
            // batch of work.
            Err(_) => return Err(SqlError::TimedOut(limits.timeout)),
        };
        drop(stop_on_drop);
        let mut rows = Vec::new();
        let mut truncated = false;
        for batch in &batches {
            for i in 0..batch.num_rows() {
                if rows.len() == limits.max_rows {
                    truncated = true;
                    break;
                }
                let mut row = serde_json::Map::new();
                for (name, column) in columns.iter().zip(batch.columns()) {
                    row.insert(name.clone(), json_value(column, i));
                }
                rows.push(row);
            }
        }
        Ok(SqlAnswer {
            columns,
            rows,
            truncated,
        })
    }
}

/// Plans and runs a read-only query, with one row more than `max_rows` to say
/// whether there were more; every operator of its plan stops once `stop` is raised.
async fn run_sql(
    ctx: &SessionContext,
    text: &str,
    limits: SqlLimits,
    stop: &Arc<AtomicBool>,
) -> Result<(Vec<String>, Vec<RecordBatch>), SqlError> {
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let failed = |e: datafusion::error::DataFusionError| {
        if stop.load(Ordering::Relaxed) {
            SqlError::TimedOut(limits.timeout)
        } else if matches!(
            e.find_root(),
            datafusion::error::DataFusionError::ResourcesExhausted(_)
        ) {
            SqlError::TooMuchMemory {
                limit_bytes: limits.memory_bytes,
            }
        } else {
            SqlError::Refused(e.to_string())
        }
    };
    let df = ctx.sql_with_options(text, options).await.map_err(failed)?;
    let df = df.limit(0, Some(limits.max_rows + 1)).map_err(failed)?;
    let columns: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let task = Arc::new(df.task_ctx());
    let plan = df.create_physical_plan().await.map_err(failed)?;
    let plan = crate::stoppable::stoppable(plan, stop).map_err(failed)?;
    let batches = datafusion::physical_plan::collect(plan, task)
        .await
        .map_err(failed)?;
    Ok((columns, batches))
}

/// One cell as JSON: numbers as numbers, times in RFC 3339 UTC, the rest as text.
fn json_value(column: &ArrayRef, i: usize) -> serde_json::Value {
    use serde_json::Value;
    if column.is_null(i) {
        return Value::Null;
    }
    match column.data_type() {
        DataType::Boolean => Value::Bool(column.as_boolean().value(i)),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            datafusion::arrow::compute::cast(&column.slice(i, 1), &DataType::Int64)
                .ok()
                .map(|a| {
                    Value::from(
                        a.as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                            .value(0),
                    )
                })
                .unwrap_or(Value::Null)
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            datafusion::arrow::compute::cast(&column.slice(i, 1), &DataType::UInt64)
                .ok()
                .map(|a| {
                    Value::from(
                        a.as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
                            .value(0),
                    )
                })
                .unwrap_or(Value::Null)
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            datafusion::arrow::compute::cast(&column.slice(i, 1), &DataType::Float64)
                .ok()
                .and_then(|a| {
                    serde_json::Number::from_f64(a.as_primitive::<Float64Type>().value(0))
                })
                .map(Value::Number)
                .unwrap_or(Value::Null)
        }
        DataType::Timestamp(_, _) => {
            let ms = datafusion::arrow::compute::cast(
                &column.slice(i, 1),
                &DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Millisecond, None),
            )
            .ok()
            .map(|a| a.as_primitive::<TimestampMillisecondType>().value(0));
            ms.and_then(DateTime::<Utc>::from_timestamp_millis)
                .map(|t| Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true)))
                .unwrap_or(Value::Null)
        }
        _ => {
            let options = FormatOptions::default();
            ArrayFormatter::try_new(column.as_ref(), &options)
                .map(|f| Value::String(f.value(i).to_string()))
                .unwrap_or(Value::Null)
        }
    }
}

/// The CSV of one export batch (`ts,device,metric,value`, no header), times in
/// RFC 3339 UTC with milliseconds.
pub fn csv_rows(batch: &RecordBatch) -> Result<String> {
    let wrong = |column: &str| Error::ColumnType {
        query: "export",
        column: column.to_string(),
    };
    let ts = batch
        .column(0)
        .as_primitive_opt::<TimestampMillisecondType>()
        .ok_or_else(|| wrong("ts"))?;
    let device = batch.column(1);
    let metric = batch.column(2);
    let value = batch
        .column(3)
        .as_primitive_opt::<Float64Type>()
        .ok_or_else(|| wrong("value"))?;
    let text = |a: &ArrayRef, i: usize| -> String {
        a.as_string_opt::<i32>()
            .map(|s| s.value(i).to_string())
            .or_else(|| a.as_string_view_opt().map(|s| s.value(i).to_string()))
            .unwrap_or_default()
    };
    let mut out = String::with_capacity(batch.num_rows() * 48);
    for i in 0..batch.num_rows() {
        let Some(t) = DateTime::<Utc>::from_timestamp_millis(ts.value(i)) else {
            continue;
        };
        out.push_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true));
        out.push(',');
        out.push_str(&csv_field(&text(device, i)));
        out.push(',');
        out.push_str(&csv_field(&text(metric, i)));
        out.push(',');
        out.push_str(&value.value(i).to_string());
        out.push('\n');
    }
    Ok(out)
}

/// A CSV field, quoted when it must be (RFC 4180).
fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use ingest::history::{History, HistoryOptions};
    use ingest::reading::Reading;
    use sensors::model::Metric;

    use super::*;

    /// A member of no household, with no grant.
    fn anyone() -> crate::consent::Scope {
        crate::consent::Scope::new(
            &crate::visibility::Visibility::new(&[], &[]),
            &crate::consent::Households::default(),
            &[],
            crate::consent::Viewer {
                member: "ines".into(),
                roles: vec![ledger::Role::Installer],
            },
            chrono::Utc::now(),
        )
    }

    async fn queries(readings: &[Reading]) -> (tempfile::TempDir, Queries) {
        let dir = tempfile::tempdir().expect("tmp");
        let history = History::open(dir.path(), HistoryOptions::default()).expect("history");
        history.add_pending(None, readings).expect("pending");
        let queries = Queries::new(history, &[], &[]).await.expect("queries");
        (dir, queries)
    }

    fn r(ts_ms: i64, device: &str, value: f64) -> Reading {
        Reading {
            ts_ms,
            device: device.into(),
            metric: Metric::PowerW,
            value,
        }
    }

    #[tokio::test]
    async fn installer_sql_reads_but_never_writes() {
        let (_dir, q) = queries(&[r(1_000, "pv", 5.0), r(2_000, "pv", 7.5)]).await;
        let answer = q
            .sql(
                &anyone(),
                "SELECT CAST(device AS VARCHAR) AS device, sum(value) AS total, max(ts) AS last
                 FROM readings GROUP BY 1",
            )
            .await
            .expect("select");
        assert_eq!(answer.columns, ["device", "total", "last"]);
        assert_eq!(answer.rows.len(), 1);
        assert_eq!(answer.rows[0]["device"], "pv");
        assert_eq!(answer.rows[0]["total"], 12.5);
        assert_eq!(answer.rows[0]["last"], "1970-01-01T00:00:02.000Z");
        assert!(!answer.truncated);
        for write in [
            "CREATE TABLE t AS SELECT 1",
            "INSERT INTO readings VALUES (now(), 'x', 'power_w', 1.0)",
            "COPY (SELECT 1) TO '/tmp/communalia-sql-test.csv'",
            "SET datafusion.execution.batch_size = 1",
            "DROP TABLE readings",
        ] {
            let refused = q.sql(&anyone(), write).await;
            assert!(
                matches!(refused, Err(SqlError::Refused(_))),
                "{write}: {refused:?}"
            );
        }
        assert!(!std::path::Path::new("/tmp/communalia-sql-test.csv").exists());
    }

    #[tokio::test]
    async fn installer_sql_stops_at_its_row_limit() {
        let (_dir, q) = queries(&[]).await;
        let q = q
            .with_sql_limits(SqlLimits {
                max_rows: 3,
                ..SqlLimits::default()
            })
            .expect("limits");
        let answer = q
            .sql(&anyone(), "SELECT * FROM range(10)")
            .await
            .expect("range");
        assert_eq!(answer.rows.len(), 3);
        assert!(answer.truncated, "more rows existed");
        let exact = q
            .sql(&anyone(), "SELECT * FROM range(3)")
            .await
            .expect("range");
        assert!(!exact.truncated, "exactly the limit is not truncated");
    }

    /// A cross join of a million by a million computes for minutes without waiting
    /// once. Past its time it is stopped: its slot, held until its thread is done,
    /// is free again a moment later, which only happens once it has stopped.
    #[tokio::test]
    async fn installer_sql_past_its_time_is_stopped_and_frees_its_slot() {
        let (_dir, q) = queries(&[]).await;
        let q = q
            .with_sql_limits(SqlLimits {
                timeout: Duration::from_millis(300),
                at_once: 1,
                ..SqlLimits::default()
            })
            .expect("limits");
        let slow = q
            .sql(
                &anyone(),
                "SELECT count(*) FROM range(1000000) a CROSS JOIN range(1000000) b",
            )
            .await;
        assert!(matches!(slow, Err(SqlError::TimedOut(_))), "{slow:?}");
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        let next = loop {
            match q.sql(&anyone(), "SELECT 1 AS one").await {
                Err(SqlError::Busy { .. }) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => break other,
            }
        };
        let next = next.expect("the slot is free once the slow query has stopped");
        assert_eq!(next.rows[0]["one"], 1);
    }

    #[tokio::test]
    async fn a_query_while_every_slot_is_taken_is_refused_as_busy() {
        let (_dir, q) = queries(&[]).await;
        let q = q
            .with_sql_limits(SqlLimits {
                timeout: Duration::from_millis(500),
                at_once: 1,
                ..SqlLimits::default()
            })
            .expect("limits");
        let slow = {
            let q = q.clone();
            tokio::spawn(async move {
                q.sql(
                    &anyone(),
                    "SELECT count(*) FROM range(1000000) a CROSS JOIN range(1000000) b",
                )
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let refused = q.sql(&anyone(), "SELECT 1").await;
        assert!(
            matches!(refused, Err(SqlError::Busy { at_once: 1 })),
            "{refused:?}"
        );
        let slow = slow.await.expect("task");
        assert!(matches!(slow, Err(SqlError::TimedOut(_))), "{slow:?}");
    }

    /// A hash join of 200,000 rows with itself holds several megabytes of hash
    /// table and batches: over a 1 MiB pool it fails with the pool named, and the
    /// same query within the default pool runs.
    #[tokio::test]
    async fn installer_sql_over_its_memory_is_refused_with_the_limit() {
        let (_dir, q) = queries(&[]).await;
        let join =
            "SELECT count(*) AS n FROM range(200000) a JOIN range(200000) b ON a.value = b.value";
        let answer = q.sql(&anyone(), join).await.expect("within 256 MB");
        assert_eq!(answer.rows[0]["n"], 200_000);
        let small = q
            .with_sql_limits(SqlLimits {
                memory_bytes: 1024 * 1024,
                ..SqlLimits::default()
            })
            .expect("limits");
        let refused = small.sql(&anyone(), join).await;
        let Err(e @ SqlError::TooMuchMemory { .. }) = refused else {
            panic!("{refused:?}")
        };
        assert!(
            e.to_string()
                .starts_with("the query needs more than 1 MB of memory"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn an_export_keeps_to_its_range_devices_and_metrics_in_csv() {
        let readings = [
            r(1_000, "pv", 1.0),
            r(2_000, "a,b \"meter\"", 2.0),
            r(3_000, "pv", 3.0),
            Reading {
                metric: Metric::SocPct,
                ..r(2_500, "pv", 50.0)
            },
        ];
        let (_dir, q) = queries(&readings).await;
        let range = ExportRange {
            from: DateTime::from_timestamp_millis(1_500),
            to: DateTime::from_timestamp_millis(3_000),
            devices: vec![],
            metrics: vec!["power_w".into()],
        };
        let mut stream = q.export(&anyone(), &range, "test").await.expect("export");
        let mut csv = String::new();
        while let Some(batch) = futures::StreamExt::next(&mut stream).await {
            csv.push_str(&csv_rows(&batch.expect("batch")).expect("csv"));
        }
        // From inclusive, to exclusive; quoted as RFC 4180 says.
        assert_eq!(
            csv,
            "1970-01-01T00:00:02.000Z,\"a,b \"\"meter\"\"\",power_w,2\n"
        );
        let only_pv = ExportRange {
            devices: vec!["pv".into()],
            ..ExportRange::default()
        };
        let mut stream = q.export(&anyone(), &only_pv, "test").await.expect("export");
        let mut rows = 0;
        while let Some(batch) = futures::StreamExt::next(&mut stream).await {
            rows += batch.expect("batch").num_rows();
        }
        assert_eq!(rows, 3);
    }
}

/// A Parquet file written batch by batch, handing out its bytes as they are ready,
/// so that an export is streamed: each batch becomes a row group, and the footer
/// comes with [`ParquetChunks::finish`].
pub struct ParquetChunks {
    writer: datafusion::parquet::arrow::ArrowWriter<SharedBuffer>,
    buffer: SharedBuffer,
}

impl std::fmt::Debug for ParquetChunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetChunks").finish_non_exhaustive()
    }
}

/// The bytes written so far, taken out as chunks.
#[derive(Clone, Default)]
struct SharedBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedBuffer {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl ParquetChunks {
    /// A file of `schema` (the export's: `ts`, `device`, `metric`, `value`), zstd.
    pub fn new(schema: datafusion::arrow::datatypes::SchemaRef) -> Result<ParquetChunks> {
        use datafusion::parquet::basic::{Compression, ZstdLevel};
        use datafusion::parquet::file::properties::WriterProperties;
        let buffer = SharedBuffer::default();
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let writer =
            datafusion::parquet::arrow::ArrowWriter::try_new(buffer.clone(), schema, Some(props))?;
        Ok(ParquetChunks { writer, buffer })
    }

    /// Writes one batch as a row group; returns the bytes now ready.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<Vec<u8>> {
        self.writer.write(batch)?;
        self.writer.flush()?;
        Ok(self.buffer.take())
    }

    /// Ends the file; returns its last bytes (the footer).
    pub fn finish(self) -> Result<Vec<u8>> {
        let buffer = self.buffer.clone();
        self.writer.close()?;
        Ok(buffer.take())
    }
}
