//! The live evaluation: once a second, a DataFusion query over `readings_live`
//! gives the site balance and each service's demand; the allocation shares the
//! available power by the active plan; the result is one [`LiveSnapshot`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use datafusion::arrow::array::Float64Builder;
use datafusion::arrow::array::{
    Array, BooleanArray, Float64Array, RecordBatch, StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;
use ingest::metrics::IngestMetrics;
use ingest::store::LiveStore;
use ledger::Journal;
use ledger::plan::Plan;
use sensors::config::DeviceConfig;
use sensors::model::{Metric, Role};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::allocation::{ServiceDemand, ServiceState, allocate};
use crate::config::ServiceConfig;
use crate::live::{DeviceLive, LiveSnapshot, PlanInfo, ServiceLive, Signal, SiteBalance};
use crate::live_table::LiveTable;
use crate::{Error, Result};

/// Tuning of the live evaluation.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// The site is stale when its newest reading is older than this.
    pub stale_after: Duration,
    /// A device's value counts in the balance while it is younger than this.
    pub value_max_age: Duration,
    /// PV surplus (production minus consumption) above which the wall screen says
    /// "good time to use power".
    pub surplus_threshold_w: f64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            stale_after: Duration::from_secs(10),
            value_max_age: Duration::from_secs(60),
            surplus_threshold_w: 500.0,
        }
    }
}

struct DeviceInfo {
    id: String,
    name: String,
    role: Role,
    /// Healthy while its last success is younger than this.
    fresh_within: Duration,
}

/// Latest value of each device and metric in the recent window, per device role.
const LATEST_CTE: &str = "WITH latest AS (
    SELECT CAST(device AS VARCHAR) AS device, CAST(metric AS VARCHAR) AS metric,
           last_value(value ORDER BY ts) AS value
    FROM readings_live
    WHERE ts >= $1 AND metric IN ('power_w', 'soc_pct')
    GROUP BY 1, 2
)";

fn balance_sql() -> String {
    format!(
        "{LATEST_CTE}
        SELECT
          COALESCE(SUM(CASE WHEN d.role = 'pv' AND l.metric = 'power_w' THEN l.value END), 0.0) AS pv_w,
          COALESCE(SUM(CASE WHEN d.role = 'grid' AND l.metric = 'power_w' THEN l.value END), 0.0) AS grid_w,
          COALESCE(SUM(CASE WHEN d.role = 'battery' AND l.metric = 'power_w' THEN l.value END), 0.0) AS battery_w,
          AVG(CASE WHEN d.role = 'battery' AND l.metric = 'soc_pct' THEN l.value END) AS battery_soc_pct,
          COALESCE(SUM(CASE WHEN d.role = 'load' AND l.metric = 'power_w' THEN l.value END), 0.0) AS load_w
        FROM latest l JOIN devices d ON l.device = d.id"
    )
}

fn demand_sql() -> String {
    format!(
        "{LATEST_CTE}
        SELECT s.id, COALESCE(l.value, s.demand_w, 0.0) AS demand_w, l.value IS NOT NULL AS metered
        FROM services s LEFT JOIN latest l ON l.device = s.meter AND l.metric = 'power_w'"
    )
}

pub struct Engine {
    ctx: SessionContext,
    balance: DataFrame,
    demand: DataFrame,
    store: Arc<LiveStore>,
    metrics: Arc<IngestMetrics>,
    journal: Arc<Journal>,
    devices: Vec<DeviceInfo>,
    services: Vec<ServiceConfig>,
    opts: EngineOptions,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// Registers `readings_live`, `devices` and `services` and plans the live
    /// queries once; each evaluation only binds the time horizon.
    pub async fn new(
        store: Arc<LiveStore>,
        metrics: Arc<IngestMetrics>,
        journal: Arc<Journal>,
        devices: &[DeviceConfig],
        services: &[ServiceConfig],
        opts: EngineOptions,
    ) -> Result<Engine> {
        // Tiny in-memory tables: one partition avoids repartitioning overhead.
        let config = SessionConfig::new().with_target_partitions(1);
        let ctx = SessionContext::new_with_config(config);
        ctx.register_table("readings_live", Arc::new(LiveTable::new(store.clone())))?;
        ctx.register_table("devices", Arc::new(devices_table(devices)?))?;
        ctx.register_table("services", Arc::new(services_table(services)?))?;
        let balance = ctx.sql(&balance_sql()).await?;
        let demand = ctx.sql(&demand_sql()).await?;
        let devices = devices
            .iter()
            .map(|d| DeviceInfo {
                id: d.id.clone(),
                name: d.display_name().to_string(),
                role: d.role,
                fresh_within: if d.modbus.is_some() {
                    (d.poll_interval * 3).max(Duration::from_secs(5))
                } else {
                    opts.value_max_age
                },
            })
            .collect();
        Ok(Engine {
            ctx,
            balance,
            demand,
            store,
            metrics,
            journal,
            devices,
            services: services.to_vec(),
            opts,
        })
    }

    /// The DataFusion session, for ad-hoc queries over the same tables.
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    async fn run_query(&self, df: &DataFrame, now: DateTime<Utc>) -> Result<Vec<RecordBatch>> {
        let horizon = now.timestamp_millis() - self.opts.value_max_age.as_millis() as i64;
        let param = ScalarValue::TimestampMillisecond(Some(horizon), Some("UTC".into()));
        Ok(df.clone().with_param_values(vec![param])?.collect().await?)
    }

    /// pv, grid, battery and loads from the latest readings (a DataFusion query).
    pub async fn site_balance(&self, now: DateTime<Utc>) -> Result<SiteBalance> {
        let batches = self.run_query(&self.balance, now).await?;
        let batch = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .ok_or_else(|| Error::Query("the balance query returned no row".into()))?;
        let f = |name: &str| -> Result<Option<f64>> {
            let col = batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<Float64Array>())
                .ok_or_else(|| Error::Query(format!("balance column `{name}` missing")))?;
            Ok((!col.is_null(0)).then(|| col.value(0)))
        };
        let pv_w = f("pv_w")?.unwrap_or(0.0);
        let grid_w = f("grid_w")?.unwrap_or(0.0);
        let battery_w = f("battery_w")?.unwrap_or(0.0);
        let load_w = f("load_w")?.unwrap_or(0.0);
        Ok(SiteBalance {
            pv_w,
            grid_w,
            battery_w,
            battery_soc_pct: f("battery_soc_pct")?,
            load_w,
            unmetered_w: pv_w + grid_w + battery_w - load_w,
            surplus_w: pv_w - (pv_w + grid_w + battery_w),
            ..SiteBalance::default()
        })
    }

    /// Each configured service's demand: its meter's latest power, or its declared demand.
    pub async fn service_demands(&self, now: DateTime<Utc>) -> Result<HashMap<String, f64>> {
        let batches = self.run_query(&self.demand, now).await?;
        let mut out = HashMap::new();
        for b in &batches {
            let ids = b
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| Error::Query("service id column is not text".into()))?;
            let demand = b
                .column(1)
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or_else(|| Error::Query("demand column is not a number".into()))?;
            let _metered = b.column(2).as_any().downcast_ref::<BooleanArray>();
            for i in 0..b.num_rows() {
                // A meter reading slightly negative (noise, or export) demands nothing.
                out.insert(ids.value(i).to_string(), demand.value(i).max(0.0));
            }
        }
        Ok(out)
    }

    /// The whole live picture at `now`.
    pub async fn evaluate(&self, now: DateTime<Utc>) -> Result<LiveSnapshot> {
        let mut site = self.site_balance(now).await?;
        let demands = self.service_demands(now).await?;
        let adopted = self.journal.active_plan()?;
        let last_seen = self.store.last_seen();
        let last_data_ms = last_seen.values().copied().max();
        let last_data = last_data_ms.and_then(|ms| Utc.timestamp_millis_opt(ms).single());
        let stale = last_data
            .map(|t| {
                (now - t)
                    .to_std()
                    .map(|age| age > self.opts.stale_after)
                    .unwrap_or(false)
            })
            .unwrap_or(true);

        let empty = Plan {
            tiers: vec![],
            services: vec![],
            sources: Default::default(),
        };
        let plan = adopted.as_ref().map(|a| &a.plan).unwrap_or(&empty);
        site.available_w = if stale { 0.0 } else { available_w(plan, &site) };
        let inputs: Vec<ServiceDemand> = plan
            .services
            .iter()
            .map(|s| ServiceDemand {
                id: s.id.clone(),
                tier: s.tier,
                demand_w: if stale {
                    0.0
                } else {
                    demands.get(&s.id).copied().unwrap_or(0.0)
                },
                min_w: s.min_w,
                max_w: s.max_w,
            })
            .collect();
        let allocation = allocate(site.available_w, &plan.tiers, &inputs);
        site.allocated_w = allocation.allocated_w;
        site.headroom_w = allocation.headroom_w;

        let services: Vec<ServiceLive> = allocation
            .services
            .iter()
            .zip(&plan.services)
            .map(|(g, p)| ServiceLive {
                id: g.id.clone(),
                name: self
                    .services
                    .iter()
                    .find(|c| c.id == g.id)
                    .map(|c| c.display_name().to_string())
                    .unwrap_or_else(|| g.id.clone()),
                tier: g.tier,
                demand_w: g.demand_w,
                allocated_w: g.allocated_w,
                state: g.state,
                min_w: p.min_w,
                max_w: p.max_w,
                reason: g.reason.code(),
            })
            .collect();

        let health = self.metrics.health();
        let devices = self
            .devices
            .iter()
            .map(|d| {
                let seen = last_seen
                    .get(&d.id)
                    .and_then(|ms| Utc.timestamp_millis_opt(*ms).single());
                let healthy = health
                    .get(&d.id)
                    .is_some_and(|h| h.is_up(now, d.fresh_within));
                DeviceLive {
                    id: d.id.clone(),
                    name: d.name.clone(),
                    role: d.role.as_str(),
                    power_w: self.store.latest(&d.id, Metric::PowerW).map(|l| l.value),
                    last_seen: seen,
                    healthy,
                }
            })
            .collect();

        // A service held at its cap by the plan is as served as the plan allows.
        let all_served = allocation.services.iter().all(|g| {
            matches!(g.state, ServiceState::Served | ServiceState::Idle)
                || g.reason == crate::allocation::Reason::Capped
        });
        let signal = if stale {
            Signal::Unknown
        } else if all_served && site.surplus_w >= self.opts.surplus_threshold_w {
            Signal::Use
        } else {
            Signal::Hold
        };
        Ok(LiveSnapshot {
            ts: now,
            stale,
            last_data,
            site,
            services,
            devices,
            signal,
            plan: adopted.map(|a| PlanInfo {
                seq: a.seq,
                adopted_at: a.adopted_at,
            }),
        })
    }

    /// Evaluates every `period` and publishes each snapshot; an evaluation error is
    /// logged and the previous snapshot stays (marked by its own timestamp).
    pub async fn run(
        self,
        tx: watch::Sender<Arc<LiveSnapshot>>,
        period: Duration,
        cancel: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            match self.evaluate(Utc::now()).await {
                Ok(snapshot) => {
                    tx.send_replace(Arc::new(snapshot));
                }
                Err(e) => tracing::error!(error = %e, "live evaluation failed"),
            }
        }
    }
}

/// What the plan lets the services use: PV now, plus the battery's counted
/// discharge while it is above its reserve, plus the counted grid import.
pub fn available_w(plan: &Plan, site: &SiteBalance) -> f64 {
    let mut a = site.pv_w.max(0.0);
    if let Some(b) = &plan.sources.battery
        && site
            .battery_soc_pct
            .is_some_and(|soc| soc > b.reserve_soc_pct)
    {
        a += b.max_discharge_w.unwrap_or(0.0).max(0.0);
    }
    if let Some(g) = &plan.sources.grid {
        a += g.max_import_w.max(0.0);
    }
    a
}

/// An empty snapshot for the instant before the first evaluation.
pub fn empty_snapshot(now: DateTime<Utc>) -> LiveSnapshot {
    LiveSnapshot {
        ts: now,
        stale: true,
        last_data: None,
        site: SiteBalance::default(),
        services: vec![],
        devices: vec![],
        signal: Signal::Unknown,
        plan: None,
    }
}

fn devices_table(devices: &[DeviceConfig]) -> Result<MemTable> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("role", DataType::Utf8, false),
        Field::new("profile", DataType::Utf8, false),
    ]));
    let mut id = StringBuilder::new();
    let mut name = StringBuilder::new();
    let mut role = StringBuilder::new();
    let mut profile = StringBuilder::new();
    for d in devices {
        id.append_value(&d.id);
        name.append_value(d.display_name());
        role.append_value(d.role.as_str());
        profile.append_value(&d.profile);
    }
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(id.finish()),
            Arc::new(name.finish()),
            Arc::new(role.finish()),
            Arc::new(profile.finish()),
        ],
    )?;
    Ok(MemTable::try_new(schema, vec![vec![batch]])?)
}

fn services_table(services: &[ServiceConfig]) -> Result<MemTable> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("meter", DataType::Utf8, true),
        Field::new("demand_w", DataType::Float64, true),
    ]));
    let mut id = StringBuilder::new();
    let mut name = StringBuilder::new();
    let mut meter = StringBuilder::new();
    let mut demand = Float64Builder::new();
    for s in services {
        id.append_value(&s.id);
        name.append_value(s.display_name());
        meter.append_option(s.meter.as_deref());
        demand.append_option(s.demand_w);
    }
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(id.finish()),
            Arc::new(name.finish()),
            Arc::new(meter.finish()),
            Arc::new(demand.finish()),
        ],
    )?;
    Ok(MemTable::try_new(schema, vec![vec![batch]])?)
}
