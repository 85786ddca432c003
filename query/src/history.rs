//! The history as DataFusion tables, over the Parquet files by day that ingest
//! writes and the durable readings it has not written out yet:
//!
//! - `readings`: every reading, live and past, in the readings schema (DESIGN.md §2);
//! - `readings_1m`: one-minute rollups (`ts`, `device`, `metric`, `avg`, `min`,
//!   `max`, `last`, `count`): the stored rollups of the days that are over, and for
//!   the days not yet rolled up, the same figures computed by DataFusion from
//!   `readings`.
//!
//! A query over a past range reads only the days it needs: the tables look at the
//! conditions on `ts` (`=`, `<`, `<=`, `>`, `>=`, `BETWEEN` against a time) and open
//! the files of those days alone.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use ingest::history::{History, HistorySnapshot, rollup_schema};
use ingest::reading::readings_schema;

/// Which part of the history a table shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Raw files and pending readings: `readings`.
    Raw,
    /// Raw files of the days without a stored rollup, and pending readings.
    NotRolledUp,
    /// Stored rollups.
    Rollups,
}

/// One table over the history.
#[derive(Debug)]
pub struct HistoryTable {
    history: Arc<History>,
    part: Part,
}

impl HistoryTable {
    /// `readings`: every reading, past and live.
    pub fn readings(history: Arc<History>) -> Self {
        HistoryTable {
            history,
            part: Part::Raw,
        }
    }
}

/// The UTC days a set of conditions on `ts` leaves open: `(from, to)`, inclusive,
/// either end `None` when unbounded.
pub fn day_range(filters: &[Expr]) -> (Option<NaiveDate>, Option<NaiveDate>) {
    let mut from: Option<i64> = None;
    let mut to: Option<i64> = None;
    let mut lower = |ms: i64| from = Some(from.map_or(ms, |f| f.max(ms)));
    let mut upper_bounds = Vec::new();
    for f in filters {
        bounds(f, &mut lower, &mut |ms| upper_bounds.push(ms));
    }
    for ms in upper_bounds {
        to = Some(to.map_or(ms, |t: i64| t.min(ms)));
    }
    let day = |ms: i64| DateTime::from_timestamp_millis(ms).map(|t| t.date_naive());
    (from.and_then(day), to.and_then(day))
}

/// A time literal in milliseconds, whatever its unit.
fn literal_ms(e: &Expr) -> Option<i64> {
    let value = match e {
        Expr::Literal(v, _) => v,
        Expr::Cast(c) => return literal_ms(&c.expr),
        _ => return None,
    };
    match value {
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1000),
        ScalarValue::TimestampMillisecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampMicrosecond(Some(v), _) => Some(v.div_euclid(1000)),
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(v.div_euclid(1_000_000)),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis()),
        _ => None,
    }
}

fn is_ts(e: &Expr) -> bool {
    match e {
        Expr::Column(c) => c.name == "ts",
        Expr::Cast(c) => is_ts(&c.expr),
        _ => false,
    }
}

/// Calls `lower`/`upper` with the bounds on `ts` that `e` sets (only conjunctions
/// can be trusted: a bound under an OR is ignored).
fn bounds(e: &Expr, lower: &mut impl FnMut(i64), upper: &mut impl FnMut(i64)) {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            if *op == Operator::And {
                bounds(left, lower, upper);
                bounds(right, lower, upper);
                return;
            }
            let (op, value) = if is_ts(left) {
                (*op, literal_ms(right))
            } else if is_ts(right) {
                // `x < ts` is `ts > x`.
                let swapped = match op {
                    Operator::Lt => Operator::Gt,
                    Operator::LtEq => Operator::GtEq,
                    Operator::Gt => Operator::Lt,
                    Operator::GtEq => Operator::LtEq,
                    other => *other,
                };
                (swapped, literal_ms(left))
            } else {
                return;
            };
            let Some(ms) = value else { return };
            match op {
                Operator::Eq => {
                    lower(ms);
                    upper(ms);
                }
                Operator::Gt | Operator::GtEq => lower(ms),
                Operator::Lt | Operator::LtEq => upper(ms),
                _ => {}
            }
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) if is_ts(expr) => {
            if let Some(ms) = literal_ms(low) {
                lower(ms);
            }
            if let Some(ms) = literal_ms(high) {
                upper(ms);
            }
        }
        _ => {}
    }
}

fn files_in(
    by_day: &BTreeMap<NaiveDate, Vec<PathBuf>>,
    (from, to): (Option<NaiveDate>, Option<NaiveDate>),
    keep: impl Fn(&NaiveDate) -> bool,
) -> Vec<PathBuf> {
    by_day
        .iter()
        .filter(|(d, _)| from.is_none_or(|f| **d >= f) && to.is_none_or(|t| **d <= t))
        .filter(|(d, _)| keep(d))
        .flat_map(|(_, files)| files.iter().cloned())
        .collect()
}

impl HistoryTable {
    fn files(
        &self,
        snap: &HistorySnapshot,
        range: (Option<NaiveDate>, Option<NaiveDate>),
    ) -> Vec<PathBuf> {
        match self.part {
            Part::Raw => files_in(&snap.raw, range, |_| true),
            Part::NotRolledUp => files_in(&snap.raw, range, |d| !snap.rollups.contains_key(d)),
            Part::Rollups => files_in(&snap.rollups, range, |_| true),
        }
    }
}

#[async_trait]
impl TableProvider for HistoryTable {
    fn schema(&self) -> SchemaRef {
        match self.part {
            Part::Rollups => rollup_schema(),
            _ => readings_schema(),
        }
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // The filters choose the days; DataFusion still applies them to the rows.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let snap = self.history.snapshot();
        let range = day_range(filters);
        let files = self.files(&snap, range);
        let schema = self.schema();
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if !files.is_empty() {
            let urls = files
                .iter()
                .map(|p| ListingTableUrl::parse(p.to_string_lossy()))
                .collect::<Result<Vec<_>>>()?;
            let mut format = ParquetFormat::default();
            if let Some(key) = &self.history.options().key {
                // The history's files are encrypted (footer and columns) under one key.
                let mut parquet = datafusion::config::TableParquetOptions::default();
                parquet.crypto.file_decryption =
                    Some(datafusion::config::ConfigFileDecryptionProperties {
                        footer_key_as_hex: key.to_hex(),
                        ..Default::default()
                    });
                format = format.with_options(parquet);
            }
            let options = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
            let config = ListingTableConfig::new_with_multi_paths(urls)
                .with_listing_options(options)
                .with_schema(schema.clone());
            let table = ListingTable::try_new(config)?;
            inputs.push(table.scan(state, projection, filters, limit).await?);
        }
        if self.part != Part::Rollups && !snap.pending.is_empty() {
            inputs.push(MemorySourceConfig::try_new_exec(
                &[snap.pending],
                schema.clone(),
                projection.cloned(),
            )?);
        }
        if inputs.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(schema.project(p)?),
                None => schema,
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        UnionExec::try_new(inputs)
    }
}

/// `readings_1m` for the days not rolled up yet: the same figures as the stored
/// rollups, computed from the raw readings.
pub(crate) const ROLLUP_VIEW: &str = "CREATE VIEW readings_1m AS
    SELECT ts, device, metric, avg, min, max, last, count FROM readings_1m_stored
    UNION ALL
    SELECT arrow_cast(date_bin(INTERVAL '1 minute', ts, TIMESTAMP '1970-01-01T00:00:00Z'),
                      'Timestamp(Millisecond, Some(\"UTC\"))') AS ts,
           device, metric,
           avg(value) AS avg, min(value) AS min, max(value) AS max,
           last_value(value ORDER BY ts) AS last, count(value) AS count
    FROM readings_not_rolled_up
    GROUP BY 1, 2, 3";

/// Registers `readings` and `readings_1m` (with the two tables the latter is made
/// of) in `ctx`.
pub async fn register(ctx: &SessionContext, history: Arc<History>) -> Result<()> {
    ctx.register_table(
        "readings",
        Arc::new(HistoryTable::readings(history.clone())),
    )?;
    ctx.register_table(
        "readings_not_rolled_up",
        Arc::new(HistoryTable {
            history: history.clone(),
            part: Part::NotRolledUp,
        }),
    )?;
    ctx.register_table(
        "readings_1m_stored",
        Arc::new(HistoryTable {
            history,
            part: Part::Rollups,
        }),
    )?;
    ctx.sql(ROLLUP_VIEW).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
