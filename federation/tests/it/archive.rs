//! A node's days on object storage (SeaweedFS, a real S3 server): one Parquet
//! file a day under `node=<id>/date=…/`, read back by DataFusion over `s3://`.

use std::sync::Arc;

use base64::Engine as _;
use chrono::{NaiveDate, TimeZone, Utc};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use federation::archive::Archiver;
use federation::clock::{Clock, ScaledClock};
use federation::summary::SIGNATURE_CONTEXT;
use object_store::ObjectStoreExt;
use tokio_util::sync::CancellationToken;

use crate::node::{GRID_W, pv_w, sim_node};
use crate::s3::S3Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_day_is_archived_once_as_signed_parquet() {
    if !crate::s3::available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let s3 = S3Server::start(dir.path(), "federation").await;
    let day = NaiveDate::from_ymd_opt(2026, 5, 3).expect("day");
    let t0 = Utc
        .with_ymd_and_hms(2026, 5, 3, 0, 0, 0)
        .single()
        .expect("t0");
    // The clock stands still five minutes into the next day.
    let clock: Arc<dyn Clock> = Arc::new(ScaledClock::new(
        t0 + chrono::Duration::minutes(24 * 60 + 5),
        0.0,
    ));
    let cancel = CancellationToken::new();
    let node = sim_node(
        "tilleuls",
        4,
        t0,
        24 * 60 + 5,
        clock.clone(),
        cancel.clone(),
    )
    .await;
    let store = federation::archive::s3_store(&s3.config).expect("store");
    let mut archiver = Archiver::new(
        store.clone(),
        node.key.clone(),
        node.source.clone(),
        node.dir.path(),
        clock.clone(),
        std::time::Duration::from_secs(1),
    )
    .expect("archiver");
    assert_eq!(archiver.step().await.expect("archive"), vec![day]);
    // Once archived, a day is not written again.
    assert_eq!(
        archiver.step().await.expect("again"),
        Vec::<NaiveDate>::new()
    );

    let path = object_store::path::Path::from("node=tilleuls/date=2026-05-03/summaries.parquet");
    let bytes = store
        .get(&path)
        .await
        .expect("the day's file")
        .bytes()
        .await
        .expect("bytes");
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .expect("parquet")
        .build()
        .expect("reader");
    let mut rows = 0;
    for batch in reader {
        let batch = batch.expect("batch");
        let minute = batch
            .column_by_name("minute")
            .and_then(|c| {
                c.as_any()
                    .downcast_ref::<datafusion::arrow::array::TimestampMillisecondArray>()
                    .cloned()
            })
            .expect("minute");
        let production = batch
            .column_by_name("production_w")
            .and_then(|c| {
                c.as_any()
                    .downcast_ref::<datafusion::arrow::array::Float64Array>()
                    .cloned()
            })
            .expect("production_w");
        let grid = batch
            .column_by_name("grid_w")
            .and_then(|c| {
                c.as_any()
                    .downcast_ref::<datafusion::arrow::array::Float64Array>()
                    .cloned()
            })
            .expect("grid_w");
        let payload = batch
            .column_by_name("payload")
            .and_then(|c| {
                c.as_any()
                    .downcast_ref::<datafusion::arrow::array::StringArray>()
                    .cloned()
            })
            .expect("payload");
        let signature = batch
            .column_by_name("signature")
            .and_then(|c| {
                c.as_any()
                    .downcast_ref::<datafusion::arrow::array::StringArray>()
                    .cloned()
            })
            .expect("signature");
        for r in 0..batch.num_rows() {
            let k = (minute.value(r) - t0.timestamp_millis()) / 60_000;
            assert_eq!(production.value(r), pv_w(4, k), "minute {k}");
            assert_eq!(grid.value(r), GRID_W, "minute {k}");
            // Each row's bytes are signed by the node's key.
            let sig = base64::engine::general_purpose::STANDARD
                .decode(signature.value(r))
                .expect("base64");
            let mut message = SIGNATURE_CONTEXT.to_vec();
            message.extend_from_slice(payload.value(r).as_bytes());
            assert!(node.key.public().verify(&message, &sig), "row {r}");
            rows += 1;
        }
    }
    // Every minute of the day, and none of the next.
    assert_eq!(rows, 24 * 60);

    // The region over the bucket: the day's energy, its page, and the export.
    let text = format!(
        "[region]\nname = \"Vallée\"\nlanguage = \"fr\"\ntimezone = \"UTC\"\nnats = [\"nats://127.0.0.1:1\"]\n\
         [[node]]\nid = \"tilleuls\"\nname = \"Les Tilleuls\"\nkey = \"{}\"\n",
        node.key.public()
    );
    let file = federation::config::RegionFile::parse(&text, "region.toml").expect("region.toml");
    let state =
        Arc::new(federation::region::RegionState::new(&file, clock.clone()).expect("state"));
    let ctx = federation::region::session(state.clone(), Some(("federation", store.clone())))
        .await
        .expect("session");
    let base = crate::support::serve_region(state, ctx, true, None, &cancel).await;
    let get = |path: &str| {
        let url = format!("{base}{path}");
        async move { reqwest::get(url).await.expect("request") }
    };
    // Worked out here from what the simulated node produced, minute by minute.
    let production_wh: f64 = (0..24 * 60).map(|k| pv_w(4, k)).sum::<f64>() / 60.0;
    let history: serde_json::Value = get("/api/region/history?from=2026-05-03&to=2026-05-03")
        .await
        .json()
        .await
        .expect("json");
    let days = history["days"].as_array().expect("days");
    assert_eq!(days.len(), 1, "{history}");
    assert_eq!(days[0]["node"], "tilleuls");
    assert_eq!(days[0]["minutes"], 24 * 60);
    let got = days[0]["production_wh"].as_f64().expect("production");
    assert!(
        (got - production_wh).abs() < 1e-6,
        "{got} vs {production_wh}"
    );

    let page = get("/history?from=2026-05-01&to=2026-05-04&lang=en").await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.expect("page");
    assert!(page.contains("chart-region-energy"), "the chart: {page}");
    assert!(page.contains(r#"data-node-name="Les Tilleuls""#), "{page}");
    assert!(page.contains("format=parquet"), "the export links");

    // CSV: a header, then every minute with its signed bytes.
    let csv = get("/api/region/export?from=2026-05-03&to=2026-05-03&format=csv").await;
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/csv")
    );
    let csv = csv.text().await.expect("csv");
    let mut lines = csv.lines();
    let header = lines.next().expect("header");
    assert!(header.starts_with("node,date,minute,"), "{header}");
    assert_eq!(lines.count(), 24 * 60);

    // Parquet: read back by the Parquet reader; each row's signature holds.
    let parquet = get("/api/region/export?from=2026-05-03&to=2026-05-03&format=parquet")
        .await
        .bytes()
        .await
        .expect("parquet");
    let reader = ParquetRecordBatchReaderBuilder::try_new(parquet)
        .expect("a Parquet file")
        .build()
        .expect("reader");
    let mut exported = 0;
    for batch in reader {
        let batch = batch.expect("batch");
        let text = |name: &str| {
            datafusion::arrow::compute::cast(
                batch.column_by_name(name).expect(name),
                &datafusion::arrow::datatypes::DataType::Utf8,
            )
            .expect("text")
        };
        let (payload, signature) = (text("payload"), text("signature"));
        let payload = payload
            .as_any()
            .downcast_ref::<datafusion::arrow::array::StringArray>()
            .expect("payload");
        let signature = signature
            .as_any()
            .downcast_ref::<datafusion::arrow::array::StringArray>()
            .expect("signature");
        for r in 0..batch.num_rows() {
            let sig = base64::engine::general_purpose::STANDARD
                .decode(signature.value(r))
                .expect("base64");
            let mut message = SIGNATURE_CONTEXT.to_vec();
            message.extend_from_slice(payload.value(r).as_bytes());
            assert!(node.key.public().verify(&message, &sig), "row {r}");
            exported += 1;
        }
    }
    assert_eq!(exported, 24 * 60);
    // Refused in words: an unknown format, a period backwards.
    let bad = get("/api/region/export?from=2026-05-03&to=2026-05-03&format=xml").await;
    assert_eq!(bad.status(), 422);
    assert!(bad.text().await.unwrap_or_default().contains("`xml`"));
    let backwards = get("/api/region/export?from=2026-05-04&to=2026-05-03").await;
    assert_eq!(backwards.status(), 422);
    cancel.cancel();
}
