//! What several of the federation's tests build the same way: a summary with
//! the figures a test cares about, and the region's web server on a free port.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::prelude::SessionContext;
use federation::region::RegionState;
use federation::region::compact::CompactionStats;
use federation::region::web::{RegionApp, serve};
use federation::summary::{Origin, ServiceCounts, Summary};
use tokio_util::sync::CancellationToken;

/// A live, current summary of `node` for `minute`: its production and
/// consumption as given, the surplus their difference, the rest zero.
pub(crate) fn summary(
    node: &str,
    minute: DateTime<Utc>,
    production_w: f64,
    consumption_w: f64,
) -> Summary {
    Summary {
        node: node.to_string(),
        minute,
        origin: Origin::Live,
        stale: false,
        production_w,
        consumption_w,
        surplus_w: production_w - consumption_w,
        grid_w: 0.0,
        battery_w: 0.0,
        battery_soc_pct: None,
        services: ServiceCounts::default(),
        week_hours: None,
        intents: Vec::new(),
    }
}

/// Serves the region "Vallée" (French by default, in UTC) on a free loopback
/// port until `cancel`; returns its base URL.
pub(crate) async fn serve_region(
    state: Arc<RegionState>,
    ctx: SessionContext,
    has_archive: bool,
    compaction: Option<Arc<CompactionStats>>,
    cancel: &CancellationToken,
) -> String {
    let app = RegionApp {
        state,
        ctx,
        site: dashboards::SiteInfo {
            name: "Vallée".into(),
            default_lang: dashboards::Lang::Fr,
            timezone: chrono_tz::UTC,
        },
        has_archive,
        compaction,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(serve(listener, app, cancel.clone()));
    base
}
