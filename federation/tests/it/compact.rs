//! The region's compacted history on a real S3 server (SeaweedFS): the nodes'
//! archived days, each row's signature checked, summed into quarter hours in one
//! file a month, read by the history page and API; rows that fail their check
//! left out and counted; a day written again replaced, never doubled.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use federation::archive::{day_batch, day_path, parquet_bytes, upload_day};
use federation::clock::{Clock, ScaledClock};
use federation::config::RegionFile;
use federation::identity::NodeKey;
use federation::region::RegionState;
use federation::region::compact::{
    CompactionStats, Compactor, days_path, month_path, register_compacted,
};

use federation::summary::{ServiceCounts, Summary};
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::s3::S3Server;

const CONSUMER: &str = "vallee";

fn key(seed: u8, id: &str) -> NodeKey {
    NodeKey::from_seed([seed; 32], Some(id)).expect("key")
}

fn day(m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, m, d).expect("date")
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN))
}

/// Production of a minute, different for every minute, node and day.
fn pv(seed: u8, d: NaiveDate, k: u32) -> f64 {
    f64::from((k * 7 + u32::from(seed) * 13 + d.ordinal()) % 97) * 10.0
}

fn summary(node: &str, minute: DateTime<Utc>, production_w: f64) -> Summary {
    let mut s = crate::support::summary(node, minute, production_w, 450.0);
    s.grid_w = -s.surplus_w;
    s.services = ServiceCounts {
        served: 1,
        partial: 0,
        shed: 0,
    };
    s
}

/// `minutes` minutes of node `seed`'s day `d` from midnight, production scaled by `scale`.
fn day_summaries(key: &NodeKey, seed: u8, d: NaiveDate, minutes: u32, scale: f64) -> Vec<Summary> {
    (0..minutes)
        .map(|k| {
            summary(
                key.node_id(),
                midnight(d) + Duration::minutes(i64::from(k)),
                pv(seed, d, k) * scale,
            )
        })
        .collect()
}

/// Watt-hours the test works out from what it archived.
fn wh(summaries: &[Summary]) -> f64 {
    summaries.iter().map(|s| s.production_w).sum::<f64>() / 60.0
}

fn surplus_wh(summaries: &[Summary]) -> f64 {
    summaries.iter().map(|s| s.surplus_w.max(0.0)).sum::<f64>() / 60.0
}

fn region_file(keys: &[&NodeKey]) -> RegionFile {
    let mut text = format!(
        "[region]\nname = \"Vallée\"\ntimezone = \"UTC\"\nnats = [\"nats://127.0.0.1:1\"]\nconsumer = \"{CONSUMER}\"\n"
    );
    for k in keys {
        text.push_str(&format!(
            "[[node]]\nid = \"{}\"\nkey = \"{}\"\n",
            k.node_id(),
            k.public()
        ));
    }
    RegionFile::parse(&text, "region.toml").expect("region.toml")
}

/// A SeaweedFS of the test's own with the bucket `federation`, and its store;
/// `None` (the test skipped) without SeaweedFS.
async fn bucket() -> Option<(S3Server, Arc<dyn ObjectStore>, tempfile::TempDir)> {
    if !crate::s3::available() {
        return None;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let s3 = S3Server::start(dir.path(), "federation").await;
    let store = federation::archive::s3_store(&s3.config).expect("store");
    Some((s3, store, dir))
}

struct Region {
    state: Arc<RegionState>,
    store: Arc<dyn ObjectStore>,
    stats: Arc<CompactionStats>,
    cancel: CancellationToken,
}

impl Region {
    fn new(file: &RegionFile, store: Arc<dyn ObjectStore>) -> Region {
        let clock: Arc<dyn Clock> = Arc::new(ScaledClock::new(midnight(day(6, 10)), 0.0));
        Region {
            state: Arc::new(RegionState::new(file, clock).expect("state")),
            store,
            stats: Arc::new(CompactionStats::default()),
            cancel: CancellationToken::new(),
        }
    }

    async fn compactor(&self) -> Compactor {
        Compactor::open(
            self.store.clone(),
            CONSUMER,
            self.state.keys(),
            self.stats.clone(),
        )
        .await
        .expect("compactor")
    }

    /// The region's web server; its history reads the compacted months when
    /// `compacted`, the nodes' daily files otherwise. Returns its base URL.
    async fn serve(&self, compacted: bool) -> String {
        let ctx = federation::region::session(
            self.state.clone(),
            Some(("federation", self.store.clone())),
        )
        .await
        .expect("session");
        if compacted {
            register_compacted(&ctx, "federation", CONSUMER).expect("quarters");
        }
        crate::support::serve_region(
            self.state.clone(),
            ctx,
            true,
            compacted.then(|| self.stats.clone()),
            &self.cancel,
        )
        .await
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn get_json(url: String) -> Value {
    let response = reqwest::get(&url).await.expect("request");
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.expect("json")
}

/// `(node, date) -> (production_wh, surplus_wh, minutes)` of a history answer.
fn by_day(history: &Value) -> BTreeMap<(String, String), (f64, f64, i64)> {
    history["days"]
        .as_array()
        .expect("days")
        .iter()
        .map(|d| {
            (
                (
                    d["node"].as_str().expect("node").to_string(),
                    d["date"].as_str().expect("date").to_string(),
                ),
                (
                    d["production_wh"].as_f64().expect("production"),
                    d["surplus_wh"].as_f64().expect("surplus"),
                    d["minutes"].as_i64().expect("minutes"),
                ),
            )
        })
        .collect()
}

fn close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() < 1e-6, "{what}: {got} vs {want}");
}

/// The record batches of the Parquet object at `path`.
async fn batches_at(
    store: &Arc<dyn ObjectStore>,
    path: &object_store::path::Path,
) -> Vec<RecordBatch> {
    let bytes = store
        .get(path)
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .bytes()
        .await
        .expect("bytes");
    ParquetRecordBatchReaderBuilder::try_new(bytes)
        .expect("Parquet")
        .build()
        .expect("reader")
        .map(|batch| batch.expect("batch"))
        .collect()
}

async fn month_rows(store: &Arc<dyn ObjectStore>, month: &str) -> Vec<(String, i64)> {
    let mut rows = Vec::new();
    for batch in batches_at(store, &month_path(CONSUMER, month)).await {
        let node = text(&batch, "node");
        let quarter = datafusion::arrow::compute::cast(
            batch.column_by_name("quarter").expect("quarter"),
            &datafusion::arrow::datatypes::DataType::Int64,
        )
        .expect("ms");
        let quarter = quarter
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .expect("ms");
        for r in 0..batch.num_rows() {
            rows.push((node.value(r).to_string(), quarter.value(r)));
        }
    }
    rows
}

/// `(node, date, minutes, production_wh)` of a month's rollup by day, in file order.
async fn rollup_rows(store: &Arc<dyn ObjectStore>, month: &str) -> Vec<(String, String, u32, f64)> {
    let mut rows = Vec::new();
    for batch in batches_at(store, &days_path(CONSUMER, month)).await {
        let minutes = batch
            .column_by_name("minutes")
            .and_then(|c| {
                c.as_any()
                    .downcast_ref::<datafusion::arrow::array::UInt32Array>()
            })
            .expect("minutes");
        let production = batch
            .column_by_name("production_wh")
            .and_then(|c| c.as_any().downcast_ref::<Float64Array>())
            .expect("production");
        let (node, date) = (text(&batch, "node"), text(&batch, "date"));
        for r in 0..batch.num_rows() {
            rows.push((
                node.value(r).to_string(),
                date.value(r).to_string(),
                minutes.value(r),
                production.value(r),
            ));
        }
    }
    rows
}

fn text<'a>(batch: &'a RecordBatch, name: &str) -> &'a StringArray {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .expect(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_region_compacts_each_archived_day_once_and_its_history_reads_the_months() {
    let Some((_s3, store, _dir)) = bucket().await else {
        return;
    };
    let (tilleuls, chenes) = (key(1, "tilleuls"), key(2, "chenes"));
    let mut archived: BTreeMap<(String, NaiveDate), Vec<Summary>> = BTreeMap::new();
    for (k, seed, d, minutes) in [
        (&tilleuls, 1, day(5, 30), 1440),
        (&tilleuls, 1, day(5, 31), 1440),
        (&tilleuls, 1, day(6, 1), 1440),
        // A node that went quiet at ten in the morning.
        (&chenes, 2, day(5, 31), 600),
    ] {
        let summaries = day_summaries(k, seed, d, minutes, 1.0);
        upload_day(&*store, k, d, &summaries).await.expect("upload");
        archived.insert((k.node_id().to_string(), d), summaries);
    }
    let region = Region::new(&region_file(&[&tilleuls, &chenes]), store.clone());
    let mut compactor = region.compactor().await;
    let report = compactor.pass().await.expect("pass");
    assert_eq!(report.days, 4);
    assert_eq!(
        report.months,
        vec!["2026-05".to_string(), "2026-06".to_string()]
    );
    assert_eq!(report.minutes, 3 * 1440 + 600);
    assert!(report.refused.is_empty(), "{:?}", report.refused);

    // May's file: every node's quarters, sorted by node then time.
    let may = month_rows(&store, "2026-05").await;
    assert_eq!(may.len(), 2 * 96 + 40, "two full days and 600 minutes");
    let mut sorted = may.clone();
    sorted.sort();
    assert_eq!(may, sorted);
    assert_eq!(may[0].0, "chenes");
    assert_eq!(month_rows(&store, "2026-06").await.len(), 96);
    // Beside it, the month by node and day: what the history reads.
    let may_days = rollup_rows(&store, "2026-05").await;
    let want: Vec<(String, String, u32)> = archived
        .iter()
        .filter(|((_, d), _)| d.month() == 5)
        .map(|((n, d), s)| (n.clone(), d.to_string(), s.len() as u32))
        .collect();
    assert_eq!(
        may_days
            .iter()
            .map(|(n, d, m, _)| (n.clone(), d.clone(), *m))
            .collect::<Vec<_>>(),
        want
    );
    for (n, d, _, production) in &may_days {
        let at = (
            n.clone(),
            NaiveDate::parse_from_str(d, "%Y-%m-%d").expect("date"),
        );
        close(
            *production,
            wh(&archived[&at]),
            &format!("{n} {d} rolled up"),
        );
    }

    // Nothing new: nothing read, nothing written.
    let again = compactor.pass().await.expect("again");
    assert_eq!((again.days, again.months.len()), (0, 0));

    // The history from the months, and the same from the nodes' own files
    // (the region's files in the bucket do not disturb the nodes' table).
    let compacted = region.serve(true).await;
    let raw = region.serve(false).await;
    let period = "from=2026-05-29&to=2026-06-01";
    let from_months = get_json(format!("{compacted}/api/region/history?{period}")).await;
    let from_days = get_json(format!("{raw}/api/region/history?{period}")).await;
    let (months, days) = (by_day(&from_months), by_day(&from_days));
    assert_eq!(months.len(), 4, "{from_months}");
    for ((node, d), summaries) in &archived {
        let at = (node.clone(), d.to_string());
        let (production, surplus, minutes) = months[&at];
        close(production, wh(summaries), &format!("{node} {d} production"));
        close(
            surplus,
            surplus_wh(summaries),
            &format!("{node} {d} surplus"),
        );
        assert_eq!(minutes, summaries.len() as i64);
        let (p, s, m) = days[&at];
        close(p, production, "the nodes' files agree");
        close(s, surplus, "the nodes' files agree");
        assert_eq!(m, minutes);
    }
    // A period inside a month reads only its days.
    let one = get_json(format!(
        "{compacted}/api/region/history?from=2026-05-31&to=2026-05-31"
    ))
    .await;
    assert_eq!(by_day(&one).len(), 2, "{one}");

    // Each node's totals over the period.
    let totals = get_json(format!("{compacted}/api/region/history?{period}&per=node")).await;
    let nodes = totals["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 2, "{totals}");
    let tilleuls_wh: f64 = archived
        .iter()
        .filter(|((n, _), _)| n == "tilleuls")
        .map(|(_, s)| wh(s))
        .sum();
    let row = nodes
        .iter()
        .find(|n| n["node"] == "tilleuls")
        .expect("tilleuls");
    close(
        row["production_wh"].as_f64().expect("wh"),
        tilleuls_wh,
        "tilleuls over the period",
    );
    assert_eq!(row["minutes"], 3 * 1440);
    let raw_totals = get_json(format!("{raw}/api/region/history?{period}&per=node")).await;
    assert_eq!(raw_totals["nodes"].as_array().expect("nodes").len(), 2);
    let bad = reqwest::get(format!("{compacted}/api/region/history?{period}&per=week"))
        .await
        .expect("request");
    assert_eq!(bad.status(), 422);

    // The page's chart and the live answer's counters.
    let page = reqwest::get(format!(
        "{compacted}/history?from=2026-05-29&to=2026-06-01&lang=en"
    ))
    .await
    .expect("page")
    .text()
    .await
    .expect("text");
    assert!(page.contains("chart-region-energy"), "{page}");
    assert!(
        page.contains(r#"data-field="compaction""#) && page.contains("at its last pass"),
        "the page says up to when its history counts: {page}"
    );
    let raw_page = reqwest::get(format!(
        "{raw}/history?from=2026-05-29&to=2026-06-01&lang=fr"
    ))
    .await
    .expect("page")
    .text()
    .await
    .expect("text");
    assert!(raw_page.contains("chart-region-energy"), "{raw_page}");
    assert!(
        !raw_page.contains(r#"data-field="compaction""#),
        "{raw_page}"
    );
    let live = get_json(format!("{compacted}/api/region/live")).await;
    assert_eq!(live["compaction"]["days"], 4, "{live}");
    assert_eq!(live["compaction"]["rows_refused"], 0);
    assert!(live["compaction"]["last_pass"].is_string(), "{live}");

    // A region that compacted before the rollups existed: its months have no
    // rollup. Restarted, it writes them from the quarters, reading no node's day.
    for month in ["2026-05", "2026-06"] {
        store
            .delete(&days_path(CONSUMER, month))
            .await
            .expect("delete");
    }
    let mut restarted = region.compactor().await;
    let report = restarted.pass().await.expect("pass");
    assert_eq!(report.days, 0);
    assert_eq!(
        report.rolled_up,
        vec!["2026-05".to_string(), "2026-06".to_string()]
    );
    assert_eq!(rollup_rows(&store, "2026-05").await, may_days);
    let back = get_json(format!("{compacted}/api/region/history?{period}")).await;
    assert_eq!(by_day(&back), months);
    // The history and the totals are answered from the rollups alone.
    store
        .delete(&month_path(CONSUMER, "2026-06"))
        .await
        .expect("delete");
    let june = get_json(format!(
        "{compacted}/api/region/history?from=2026-06-01&to=2026-06-01"
    ))
    .await;
    assert_eq!(
        by_day(&june),
        months
            .iter()
            .filter(|((_, d), _)| d == "2026-06-01")
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    );
    let june = get_json(format!(
        "{compacted}/api/region/history?from=2026-06-01&to=2026-06-01&per=node"
    ))
    .await;
    assert_eq!(june["nodes"].as_array().expect("nodes").len(), 1, "{june}");
}

/// Replaces columns of `batch` by name.
fn with_columns(batch: &RecordBatch, replace: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let schema = batch.schema();
    let mut columns = batch.columns().to_vec();
    for (name, column) in replace {
        let i = schema.index_of(name).expect(name);
        columns[i] = column;
    }
    RecordBatch::try_new(schema, columns).expect("batch")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_that_fail_their_check_are_left_out_and_counted() {
    let Some((_s3, store, _dir)) = bucket().await else {
        return;
    };
    let tilleuls = key(1, "tilleuls");
    let mallory = key(9, "tilleuls");
    let d = day(5, 30);
    let summaries = day_summaries(&tilleuls, 1, d, 1440, 1.0);
    let batch = day_batch(&summaries, &tilleuls).expect("batch");
    let mut payloads: Vec<String> = text(&batch, "payload")
        .iter()
        .map(|p| p.expect("payload").to_string())
        .collect();
    let mut signatures: Vec<String> = text(&batch, "signature")
        .iter()
        .map(|s| s.expect("signature").to_string())
        .collect();
    // Row 0: its figure raised, its signature kept.
    let raised = payloads[0].replacen("\"production_w\":", "\"production_w\":9", 1);
    assert_ne!(raised, payloads[0]);
    payloads[0] = raised;
    // Row 1: signed by another key claiming the node's id.
    let forged = day_batch(&summaries[1..2], &mallory).expect("forged");
    signatures[1] = text(&forged, "signature").value(0).to_string();
    // Row 2: minute 3 a second time.
    payloads[2] = payloads[3].clone();
    signatures[2] = signatures[3].clone();
    // Row 4: a minute of the next day, properly signed.
    let next = summary("tilleuls", midnight(d) + Duration::days(1), 1234.0);
    let next = day_batch(&[next], &tilleuls).expect("next");
    payloads[4] = text(&next, "payload").value(0).to_string();
    signatures[4] = text(&next, "signature").value(0).to_string();
    // And every figure column of the file multiplied: the payloads say otherwise.
    let inflated: Vec<f64> = summaries.iter().map(|s| s.production_w * 1000.0).collect();
    let tampered = with_columns(
        &batch,
        vec![
            ("payload", Arc::new(StringArray::from(payloads)) as ArrayRef),
            ("signature", Arc::new(StringArray::from(signatures))),
            ("production_w", Arc::new(Float64Array::from(inflated))),
        ],
    );
    store
        .put(
            &day_path("tilleuls", d),
            parquet_bytes(&tampered).expect("bytes").into(),
        )
        .await
        .expect("put");

    let region = Region::new(&region_file(&[&tilleuls]), store.clone());
    let report = region.compactor().await.pass().await.expect("pass");
    let refused: BTreeMap<&str, u64> = report
        .refused
        .iter()
        .map(|((node, reason), n)| {
            assert_eq!(node, "tilleuls");
            (*reason, *n)
        })
        .collect();
    assert_eq!(
        refused,
        BTreeMap::from([("bad_signature", 2), ("duplicate", 1), ("wrong_day", 1)])
    );
    assert_eq!(report.minutes, 1436);
    // Only the rows that hold, with their signed figures.
    let kept: Vec<Summary> = summaries
        .iter()
        .enumerate()
        .filter(|(k, _)| ![0, 1, 2, 4].contains(k))
        .map(|(_, s)| s.clone())
        .collect();
    let base = region.serve(true).await;
    let history = get_json(format!(
        "{base}/api/region/history?from=2026-05-30&to=2026-05-30"
    ))
    .await;
    let (production, _, minutes) = by_day(&history)[&("tilleuls".to_string(), d.to_string())];
    close(production, wh(&kept), "the rows that hold");
    assert_eq!(minutes, 1436);
    let live = get_json(format!("{base}/api/region/live")).await;
    assert_eq!(live["compaction"]["rows_refused"], 4, "{live}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_written_again_replaces_its_quarters_and_a_restarted_region_redoes_nothing() {
    let Some((_s3, store, _dir)) = bucket().await else {
        return;
    };
    let tilleuls = key(1, "tilleuls");
    let region = Region::new(&region_file(&[&tilleuls]), store.clone());
    let base = region.serve(true).await;
    let production = |history: &Value, d: NaiveDate| {
        by_day(history)
            .get(&("tilleuls".to_string(), d.to_string()))
            .map(|v| v.0)
    };
    // Before the region's first pass, its page says the history is to come.
    let page = reqwest::get(format!(
        "{base}/history?from=2026-05-29&to=2026-06-01&lang=fr"
    ))
    .await
    .expect("page")
    .text()
    .await
    .expect("text");
    assert!(page.contains("pas encore écrits"), "{page}");
    let first = day_summaries(&tilleuls, 1, day(5, 30), 1440, 1.0);
    upload_day(&*store, &tilleuls, day(5, 30), &first)
        .await
        .expect("upload");
    let mut compactor = region.compactor().await;
    assert_eq!(compactor.pass().await.expect("pass").days, 1);

    // The node writes the day again (its cursor lost), with other figures.
    let second = day_summaries(&tilleuls, 1, day(5, 30), 1440, 2.0);
    upload_day(&*store, &tilleuls, day(5, 30), &second)
        .await
        .expect("again");
    // And archives its next day.
    let next = day_summaries(&tilleuls, 1, day(5, 31), 1440, 1.0);
    upload_day(&*store, &tilleuls, day(5, 31), &next)
        .await
        .expect("next");
    // The running region sees the next day; the restarted one, the day written again.
    let report = compactor.pass().await.expect("pass");
    assert_eq!(report.days, 1, "the day after the last compacted");
    let mut restarted = region.compactor().await;
    assert_eq!(restarted.manifest(), compactor.manifest());
    let report = restarted.pass().await.expect("pass");
    assert_eq!(
        report.days, 1,
        "the day written again, found by the full listing"
    );
    let history = get_json(format!(
        "{base}/api/region/history?from=2026-05-30&to=2026-05-31"
    ))
    .await;
    close(
        production(&history, day(5, 30)).expect("30 May"),
        wh(&second),
        "replaced, not added",
    );
    close(
        production(&history, day(5, 31)).expect("31 May"),
        wh(&next),
        "31 May",
    );
    assert_eq!(month_rows(&store, "2026-05").await.len(), 2 * 96);

    // Restarted once more: the manifest says all is done.
    let mut third = region.compactor().await;
    assert_eq!(third.pass().await.expect("pass").days, 0);
}
