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
    cancel.cancel();
}
