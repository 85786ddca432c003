//! The live evaluation: once a second, a DataFusion query over `readings_live`
//! gives the latest value of each device, from which come the site balance and each
//! service's demand; the allocation shares the available power by the active plan;
//! the result is one [`LiveSnapshot`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use datafusion::arrow::array::{AsArray, Float64Builder, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema};
use datafusion::common::ParamValues;
use datafusion::datasource::MemTable;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::collect;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;
use ingest::metrics::IngestMetrics;
use ingest::store::LiveStore;
use ledger::plan::Plan;
use ledger::{AdoptedPlan, EntryKind, Journal};
use sensors::config::DeviceConfig;
use sensors::model::{Metric, Role};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::allocation::{Pool, ServiceDemand, ServiceState, allocate_pools};
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

/// What the engine keeps of a configured service.
struct ServiceInfo {
    name: String,
    /// A device whose `power_w` is the service's demand.
    meter: Option<String>,
    /// The declared demand, when there is no meter or no recent reading.
    demand_w: Option<f64>,
}

/// Latest value of each device and metric in the recent window, with the role of the
/// device when it is configured. The site balance and the services' demands are both
/// read from these rows: one scan of the window per evaluation.
const LATEST_SQL: &str = "WITH latest AS (
    SELECT CAST(device AS VARCHAR) AS device, CAST(metric AS VARCHAR) AS metric,
           last_value(value ORDER BY ts) AS value
    FROM readings_live
    WHERE ts >= $1 AND metric IN ('power_w', 'soc_pct')
    GROUP BY 1, 2
)
SELECT l.device, l.metric, l.value, d.role
FROM latest l LEFT JOIN devices d ON l.device = d.id";

/// What one run of [`LATEST_SQL`] says.
struct Latest<'a> {
    balance: SiteBalance,
    /// The latest power of each device, by id.
    power_w: HashMap<&'a str, f64>,
}

/// The active plan as last read, and how far the journal was read.
#[derive(Default)]
struct PlanCache {
    /// `None` until the first read.
    plan: Option<Option<Arc<AdoptedPlan>>>,
    /// The journal was read up to this entry.
    seen_seq: i64,
}

pub struct Engine {
    ctx: SessionContext,
    /// [`LATEST_SQL`], analysed and optimised once.
    latest: LogicalPlan,
    store: Arc<LiveStore>,
    metrics: Arc<IngestMetrics>,
    journal: Arc<Journal>,
    plan_cache: Mutex<PlanCache>,
    devices: Vec<DeviceInfo>,
    /// The configured services, by id.
    services: HashMap<String, ServiceInfo>,
    opts: EngineOptions,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// Registers `readings_live`, `devices` and `services` and plans the live query
    /// once; each evaluation binds the time horizon and plans its physical side.
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
        let latest = ctx
            .state()
            .optimize(ctx.sql(LATEST_SQL).await?.logical_plan())?;
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
        let services = services
            .iter()
            .map(|s| {
                let info = ServiceInfo {
                    name: s.display_name().to_string(),
                    meter: s.meter.clone(),
                    demand_w: s.demand_w,
                };
                (s.id.clone(), info)
            })
            .collect();
        Ok(Engine {
            ctx,
            latest,
            store,
            metrics,
            journal,
            plan_cache: Mutex::default(),
            devices,
            services,
            opts,
        })
    }

    /// The DataFusion session, for ad-hoc queries over the same tables.
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    /// Runs [`LATEST_SQL`] over the live window at `now`. The logical plan is the one
    /// optimised in [`Engine::new`]: only the horizon is bound, and the physical plan
    /// made for the batches of this instant.
    async fn query_latest(&self, now: DateTime<Utc>) -> Result<Vec<RecordBatch>> {
        let horizon = now.timestamp_millis() - self.opts.value_max_age.as_millis() as i64;
        let param = ScalarValue::TimestampMillisecond(Some(horizon), Some("UTC".into()));
        let plan = self
            .latest
            .clone()
            .with_param_values(ParamValues::List(vec![param.into()]))?;
        let state = self.ctx.state();
        let physical = state
            .query_planner()
            .create_physical_plan(&plan, &state)
            .await?;
        Ok(collect(physical, state.task_ctx()).await?)
    }

    /// pv, grid, battery and loads from the latest readings (a DataFusion query).
    pub async fn site_balance(&self, now: DateTime<Utc>) -> Result<SiteBalance> {
        let batches = self.query_latest(now).await?;
        Ok(read_latest(&batches)?.balance)
    }

    /// Each configured service's demand: its meter's latest power, or its declared demand.
    pub async fn service_demands(&self, now: DateTime<Utc>) -> Result<HashMap<String, f64>> {
        let batches = self.query_latest(now).await?;
        let latest = read_latest(&batches)?;
        Ok(self
            .services
            .keys()
            .map(|id| (id.clone(), self.demand_w(id, &latest.power_w)))
            .collect())
    }

    /// A service's demand from the latest power of each device: its meter's, else its
    /// declared demand, else 0 (and 0 for a service the configuration does not know).
    fn demand_w(&self, id: &str, power_w: &HashMap<&str, f64>) -> f64 {
        let Some(s) = self.services.get(id) else {
            return 0.0;
        };
        let metered = s.meter.as_deref().and_then(|m| power_w.get(m)).copied();
        // A meter reading slightly negative (noise, or export) demands nothing.
        metered.or(s.demand_w).unwrap_or(0.0).max(0.0)
    }

    /// The active plan. Parsing a plan of thousands of services every second would
    /// cost more than allocating by it, so the journal is read again only when it has
    /// recorded a plan adoption since the last read.
    fn active_plan(&self) -> Result<Option<Arc<AdoptedPlan>>> {
        const PAGE: usize = 256;
        let mut cache = self.plan_cache.lock().unwrap_or_else(|p| p.into_inner());
        let mut plan = match cache.plan.take() {
            Some(plan) => plan,
            None => {
                // Entries before the active adoption cannot hold a newer one.
                let plan = self.journal.active_plan()?.map(Arc::new);
                cache.seen_seq = plan.as_ref().map_or(0, |p| p.seq);
                plan
            }
        };
        let mut adopted = false;
        loop {
            let page = self.journal.entries(cache.seen_seq, PAGE)?;
            adopted |= page.iter().any(|e| e.kind == EntryKind::PlanAdopted);
            if let Some(last) = page.last() {
                cache.seen_seq = last.seq;
            }
            if page.len() < PAGE {
                break;
            }
        }
        if adopted {
            plan = self.journal.active_plan()?.map(Arc::new);
        }
        cache.plan = Some(plan.clone());
        Ok(plan)
    }

    /// The whole live picture at `now`.
    pub async fn evaluate(&self, now: DateTime<Utc>) -> Result<LiveSnapshot> {
        let batches = self.query_latest(now).await?;
        let latest = read_latest(&batches)?;
        let mut site = latest.balance;
        let adopted = self.active_plan()?;
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
        // Stale figures give no power: nobody should act on them.
        let pools = if stale { vec![] } else { pools(plan, &site) };
        site.available_w = pools.iter().fold(0.0, |sum, p| sum + p.available_w);
        let inputs: Vec<ServiceDemand> = plan
            .services
            .iter()
            .map(|s| ServiceDemand {
                id: s.id.clone(),
                tier: s.tier,
                demand_w: if stale {
                    0.0
                } else {
                    self.demand_w(&s.id, &latest.power_w)
                },
                min_w: s.min_w,
                max_w: s.max_w,
            })
            .collect();
        let allocation = allocate_pools(&pools, &plan.tiers, &inputs);
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
                    .get(&g.id)
                    .map_or_else(|| g.id.clone(), |s| s.name.clone()),
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
            plan: adopted.as_ref().map(|a| PlanInfo {
                seq: a.seq,
                adopted_at: a.adopted_at,
            }),
            pools: allocation.pools,
        })
    }

    /// Evaluates every `period`, and at once when `replan` is notified (after a plan
    /// adoption), and publishes each snapshot; an evaluation error is
    /// logged and the previous snapshot stays (marked by its own timestamp).
    pub async fn run(
        self,
        tx: watch::Sender<Arc<LiveSnapshot>>,
        period: Duration,
        replan: Arc<tokio::sync::Notify>,
        cancel: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
                // A plan was adopted: evaluate now rather than at the next tick, and
                // start the period afresh.
                _ = replan.notified() => tick.reset(),
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

/// The power the plan lets the services use, as pools in the order they are drawn
/// on: PV now (all tiers), then the battery's counted discharge while its state of
/// charge is above the reserve, then the counted grid import, each for the tiers the
/// plan names (none named: all tiers).
pub fn pools(plan: &Plan, site: &SiteBalance) -> Vec<Pool> {
    let tiers = |t: &[u32]| (!t.is_empty()).then(|| t.to_vec());
    let mut pools = vec![Pool {
        name: "pv",
        available_w: site.pv_w.max(0.0),
        tiers: None,
    }];
    if let Some(b) = &plan.sources.battery
        && site
            .battery_soc_pct
            .is_some_and(|soc| soc > b.reserve_soc_pct)
    {
        pools.push(Pool {
            name: "battery",
            available_w: b.max_discharge_w.unwrap_or(0.0).max(0.0),
            tiers: tiers(&b.tiers),
        });
    }
    if let Some(g) = &plan.sources.grid {
        pools.push(Pool {
            name: "grid",
            available_w: g.max_import_w.max(0.0),
            tiers: tiers(&g.tiers),
        });
    }
    pools
}

/// What the plan lets the services use in all: the sum of its [`pools`].
pub fn available_w(plan: &Plan, site: &SiteBalance) -> f64 {
    pools(plan, site)
        .iter()
        .fold(0.0, |sum, p| sum + p.available_w)
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
        pools: vec![],
    }
}

/// The site balance and each device's power from the rows of [`LATEST_SQL`].
fn read_latest(batches: &[RecordBatch]) -> Result<Latest<'_>> {
    let mut balance = SiteBalance::default();
    let mut power_w = HashMap::new();
    let (mut soc_sum, mut soc_count) = (0.0, 0u32);
    for batch in batches {
        let values = batch
            .column_by_name("value")
            .and_then(|c| c.as_primitive_opt::<Float64Type>())
            .ok_or_else(|| Error::Query("latest column `value` is not a number".into()))?;
        let rows = text_column(batch, "device")?
            .zip(text_column(batch, "metric")?)
            .zip(text_column(batch, "role")?)
            .zip(values.iter());
        for (((device, metric), role), value) in rows {
            let (Some(device), Some(metric), Some(value)) = (device, metric, value) else {
                continue;
            };
            match (role, metric) {
                (Some("pv"), "power_w") => balance.pv_w += value,
                (Some("grid"), "power_w") => balance.grid_w += value,
                (Some("battery"), "power_w") => balance.battery_w += value,
                (Some("load"), "power_w") => balance.load_w += value,
                (Some("battery"), "soc_pct") => {
                    soc_sum += value;
                    soc_count += 1;
                }
                _ => {}
            }
            if metric == "power_w" {
                power_w.insert(device, value);
            }
        }
    }
    balance.battery_soc_pct = (soc_count > 0).then(|| soc_sum / f64::from(soc_count));
    let b = &mut balance;
    b.unmetered_w = b.pv_w + b.grid_w + b.battery_w - b.load_w;
    b.surplus_w = b.pv_w - (b.pv_w + b.grid_w + b.battery_w);
    Ok(Latest { balance, power_w })
}

/// The values of a text column, whichever string layout DataFusion chose for it.
fn text_column<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<Box<dyn Iterator<Item = Option<&'a str>> + 'a>> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| Error::Query(format!("latest column `{name}` missing")))?;
    if let Some(a) = col.as_string_view_opt() {
        Ok(Box::new(a.iter()))
    } else if let Some(a) = col.as_string_opt::<i32>() {
        Ok(Box::new(a.iter()))
    } else if let Some(a) = col.as_string_opt::<i64>() {
        Ok(Box::new(a.iter()))
    } else {
        Err(Error::Query(format!("latest column `{name}` is not text")))
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
