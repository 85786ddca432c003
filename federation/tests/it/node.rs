//! Simulated nodes for the tests: a real history (the node's own Parquet and
//! pending readings, read through `query`'s session) and a live snapshot that
//! follows a simulated clock, both with figures that tell each minute apart.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use federation::clock::Clock;
use federation::identity::NodeKey;
use federation::source::NodeSource;
use federation::summary::{Summary, minute_of};
use ingest::history::{History, HistoryOptions};
use ingest::reading::Reading;
use query::live::LiveSnapshot;
use sensors::model::Metric;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// PV power of node `n` during minute `k` after the start: what its history and
/// its live snapshot both say, so that a summary names its node and minute.
pub(crate) fn pv_w(n: u32, k: i64) -> f64 {
    1000.0 + 10.0 * k as f64 + f64::from(n)
}

/// The grid of every simulated node exports 400 W.
pub(crate) const GRID_W: f64 = -400.0;

pub(crate) struct SimNode {
    pub(crate) key: Arc<NodeKey>,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) source: NodeSource,
}

fn device(id: &str, role: &str) -> sensors::config::DeviceConfig {
    serde_json::from_value(serde_json::json!({
        "id": id, "role": role, "profile": "generic-json", "mqtt": {"topic": id}
    }))
    .unwrap_or_else(|e| panic!("{id}: {e}"))
}

/// A node named `name` whose history holds minutes `0..minutes` after `t0`
/// (two readings per minute and device) and whose live snapshot follows `clock`
/// until `cancel`.
pub(crate) async fn sim_node(
    name: &str,
    index: u32,
    t0: DateTime<Utc>,
    minutes: i64,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
) -> SimNode {
    sim_node_with_journal(name, index, t0, minutes, clock, cancel, None).await
}

/// As [`sim_node`], with the journal the week's validated hours are counted in.
pub(crate) async fn sim_node_with_journal(
    name: &str,
    index: u32,
    t0: DateTime<Utc>,
    minutes: i64,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
    journal: Option<Arc<ledger::Journal>>,
) -> SimNode {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = Arc::new(NodeKey::load_or_create(dir.path(), Some(name)).expect("node key"));
    let history =
        History::open(&dir.path().join("history"), HistoryOptions::default()).expect("history");
    let roof: Arc<str> = "roof".into();
    let grid: Arc<str> = "grid".into();
    let mut readings = Vec::new();
    for k in 0..minutes {
        let minute_ms = (t0 + chrono::Duration::minutes(k)).timestamp_millis();
        for offset_s in [10, 40] {
            let ts_ms = minute_ms + offset_s * 1000;
            readings.push(Reading {
                ts_ms,
                device: roof.clone(),
                metric: Metric::PowerW,
                value: pv_w(index, k),
            });
            readings.push(Reading {
                ts_ms,
                device: grid.clone(),
                metric: Metric::PowerW,
                value: GRID_W,
            });
        }
    }
    history
        .add_pending(None, &readings)
        .expect("readings into the history");
    let devices = [device("roof", "pv"), device("grid", "grid")];
    let queries = query::history_session::Queries::new(history, &devices, &[])
        .await
        .expect("history session");
    let (tx, rx) = watch::channel(Arc::new(snapshot(index, t0, clock.now())));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
            tx.send_replace(Arc::new(snapshot(index, t0, clock.now())));
        }
    });
    let source = NodeSource::new(name, rx, Some(queries), journal, chrono_tz::UTC);
    SimNode { key, dir, source }
}

/// The public snapshot of node `n` at `now`: PV per [`pv_w`], the grid
/// exporting, the rest used on site.
fn snapshot(n: u32, t0: DateTime<Utc>, now: DateTime<Utc>) -> LiveSnapshot {
    let k = (minute_of(now) - t0).num_minutes();
    let mut s = query::engine::empty_snapshot(now);
    s.stale = false;
    s.last_data = Some(now);
    s.site.pv_w = pv_w(n, k);
    s.site.grid_w = GRID_W;
    s.site.load_w = pv_w(n, k) + GRID_W;
    s.site.surplus_w = -GRID_W;
    s
}

/// The minute index of a summary (minutes after `t0`).
pub(crate) fn index_of(s: &Summary, t0: DateTime<Utc>) -> i64 {
    (s.minute - t0).num_minutes()
}
