//! The live evaluation: a DataFusion query over `readings_latest`
//! (the newest reading of each device and metric, joined to the configured devices)
//! gives the site balance, each service's demand and each device's last reading; the
//! active plan runs on them ([`PlanRunner`], as the replay and the assembly's preview
//! run theirs); the result is one [`LiveSnapshot`].
//!
//! It runs when a reading changes what the site knows (the live store announces
//! it as soon as the reading is durable), at most once every
//! [`EngineOptions::min_gap`] (50 ms) however fast the readings come: what arrives
//! meanwhile is evaluated together at the end of the gap. A heartbeat runs it
//! after a second without any evaluation, for what changes with the clock alone
//! (staleness, devices' health), and a plan adoption at once. See [`Schedule`].
//!
//! It runs up to twenty times a second over every device and service, so the work that does not
//! change between evaluations is done once: devices are numbered when the engine
//! starts (the query returns those numbers, not names), and the active plan is
//! prepared, with each service's meter resolved to a device number, only when the
//! journal records an adoption. Names are shared (`Arc<str>`), not copied, into each
//! snapshot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, Float64Builder, RecordBatch, StringBuilder, UInt32Builder,
};
use datafusion::arrow::datatypes::{
    DataType, Field, Float64Type, Schema, TimestampMillisecondType, UInt32Type,
};
use datafusion::common::ParamValues;
use datafusion::datasource::MemTable;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::collect;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;
use ingest::metrics::{EvaluationTrigger, IngestMetrics};
use ingest::store::LiveStore;
use ledger::plan::Plan;
use ledger::{AdoptedPlan, EntryKind, Journal};
use sensors::config::DeviceConfig;
use sensors::model::Role;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::allocation::ServiceState;
use crate::config::ServiceConfig;
use crate::live::{DeviceLive, LiveSnapshot, PlanInfo, ServiceLive, Signal, SiteBalance};
use crate::live_table::{LatestTable, LiveTable};
use crate::plan_runner::{DemandSource, PlanRunner};
use crate::{Error, Result};

/// The site is stale when its newest reading is older than this (the default).
pub const STALE_AFTER: Duration = Duration::from_secs(10);
/// A device's value counts in the balance while it is younger than this (the
/// default).
pub const VALUE_MAX_AGE: Duration = Duration::from_secs(60);

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
    /// What starts an evaluation.
    pub schedule: Schedule,
    /// The shortest time between two evaluations a reading starts: a flood of
    /// readings is evaluated at most `1 / min_gap` times a second.
    pub min_gap: Duration,
}

/// The shortest time between two evaluations started by readings.
pub const MIN_EVALUATION_GAP: Duration = Duration::from_millis(50);

/// What starts a live evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Schedule {
    /// A reading that changed what the site knows, coalesced to one evaluation
    /// per [`EngineOptions::min_gap`]; the heartbeat (`period` of [`Engine::run`])
    /// after a period without any evaluation; a plan adoption.
    #[default]
    OnChange,
    /// Every `period` and on a plan adoption only, whatever the readings do: how
    /// the node evaluated before, kept to compare the two (the `wall_latency`
    /// bench).
    FixedTick,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            stale_after: STALE_AFTER,
            value_max_age: VALUE_MAX_AGE,
            surplus_threshold_w: 500.0,
            schedule: Schedule::default(),
            min_gap: MIN_EVALUATION_GAP,
        }
    }
}

struct DeviceInfo {
    id: Arc<str>,
    /// Modbus (read on a schedule) rather than MQTT (publishes when it likes).
    polled: bool,
    name: Arc<str>,
    role: Role,
    /// Healthy while its last success is younger than this.
    fresh_within: Duration,
}

/// What the engine keeps of a configured service.
struct ServiceInfo {
    name: Arc<str>,
    /// The number of the device whose `power_w` is the service's demand.
    meter: Option<usize>,
    /// The declared demand, when there is no meter or no recent reading.
    demand_w: Option<f64>,
}

/// The newest reading of each configured device, by the device's number
/// (`devices.idx`), with whether it is recent enough to count (`fresh`, bound to the
/// horizon `$1`). The site balance, the services' demands and the devices' last
/// readings are all read from these rows: one pass over the last-value cache per
/// evaluation, whatever the length of the window.
const LATEST_SQL: &str = "SELECT d.idx, CAST(l.metric AS VARCHAR) AS metric, l.ts, l.value,
       l.ts >= $1 AS fresh
FROM readings_latest l JOIN devices d ON CAST(l.device AS VARCHAR) = d.id";

/// What one run of [`LATEST_SQL`] says, by device number.
struct Latest {
    balance: SiteBalance,
    /// The power of each device while it is recent enough to count.
    fresh_power_w: Vec<Option<f64>>,
    /// The newest power of each device, however old.
    power_w: Vec<Option<f64>>,
    /// The time of each device's newest reading of any metric.
    last_seen_ms: Vec<Option<i64>>,
}

impl Latest {
    /// What is known of a service's demand: its meter's power while recent, and
    /// what its configuration declares.
    fn demand(&self, meter: Option<usize>, declared_w: Option<f64>) -> DemandSource {
        DemandSource {
            metered_w: meter.and_then(|i| self.fresh_power_w.get(i).copied().flatten()),
            declared_w,
        }
    }
}

/// What the configuration says of one service of the active plan, `None`s when it
/// does not know the service.
struct PlannedService {
    name: Arc<str>,
    meter: Option<usize>,
    declared_w: Option<f64>,
}

/// The active plan prepared for evaluation: ready to run, with its services as
/// configured, in the order of the plan.
struct PreparedPlan {
    adopted: Option<Arc<AdoptedPlan>>,
    runner: PlanRunner,
    services: Vec<PlannedService>,
}

/// The active plan as last read, and how far the journal was read.
#[derive(Default)]
struct PlanCache {
    /// `None` until the first read.
    plan: Option<Arc<PreparedPlan>>,
    /// The journal was read up to this entry.
    seen_seq: i64,
}

pub struct Engine {
    ctx: SessionContext,
    /// [`LATEST_SQL`], analysed and optimised once.
    latest: LogicalPlan,
    metrics: Arc<IngestMetrics>,
    journal: Arc<Journal>,
    plan_cache: Mutex<PlanCache>,
    devices: Vec<DeviceInfo>,
    /// The configured services, by id.
    services: HashMap<String, ServiceInfo>,
    opts: EngineOptions,
    /// The live store's announcements of new knowledge.
    changes: watch::Receiver<u64>,
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
        let changes = store.changes();
        ctx.register_table("readings_live", Arc::new(LiveTable::new(store.clone())))?;
        ctx.register_table("readings_latest", Arc::new(LatestTable::new(store.clone())))?;
        ctx.register_table("devices", Arc::new(devices_table(devices)?))?;
        ctx.register_table("services", Arc::new(services_table(services)?))?;
        let latest = ctx
            .state()
            .optimize(ctx.sql(LATEST_SQL).await?.logical_plan())?;
        let index: HashMap<&str, usize> = devices
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.as_str(), i))
            .collect();
        let services = services
            .iter()
            .map(|s| {
                let info = ServiceInfo {
                    name: s.display_name().into(),
                    meter: s.meter.as_deref().and_then(|m| index.get(m).copied()),
                    demand_w: s.demand_w,
                };
                (s.id.clone(), info)
            })
            .collect();
        let devices = devices
            .iter()
            .map(|d| DeviceInfo {
                id: d.id.as_str().into(),
                name: d.display_name().into(),
                role: d.role,
                polled: d.is_polled(),
                // Polled devices (Modbus TCP or RTU) are due every poll; MQTT
                // devices publish when they like.
                fresh_within: if d.is_polled() {
                    (d.poll_interval * 3).max(Duration::from_secs(5))
                } else {
                    opts.value_max_age
                },
            })
            .collect();
        Ok(Engine {
            ctx,
            latest,
            metrics,
            journal,
            plan_cache: Mutex::default(),
            devices,
            services,
            opts,
            changes,
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
        Ok(self.read_latest(&batches)?.balance)
    }

    /// Each configured service's demand: its meter's latest power, or its declared demand.
    pub async fn service_demands(&self, now: DateTime<Utc>) -> Result<HashMap<String, f64>> {
        let batches = self.query_latest(now).await?;
        let latest = self.read_latest(&batches)?;
        Ok(self
            .services
            .iter()
            .map(|(id, s)| (id.clone(), latest.demand(s.meter, s.demand_w).demand_w()))
            .collect())
    }

    /// The active plan, prepared. Parsing a plan of thousands of services every
    /// second would cost more than allocating by it, so the journal is read again
    /// only when it has recorded a plan adoption since the last read.
    fn active_plan(&self) -> Result<Arc<PreparedPlan>> {
        const PAGE: usize = 256;
        let mut cache = self.plan_cache.lock().unwrap_or_else(|p| p.into_inner());
        let mut plan = match cache.plan.take() {
            Some(plan) => plan,
            None => {
                // Entries before the active adoption cannot hold a newer one.
                let adopted = self.journal.active_plan()?.map(Arc::new);
                cache.seen_seq = adopted.as_ref().map_or(0, |p| p.seq);
                Arc::new(self.prepare(adopted))
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
            plan = Arc::new(self.prepare(self.journal.active_plan()?.map(Arc::new)));
        }
        cache.plan = Some(plan.clone());
        Ok(plan)
    }

    /// Resolves each service of a plan against the configuration, once per adoption.
    /// Without an adopted plan, an empty one runs: the sun alone, and no service.
    fn prepare(&self, adopted: Option<Arc<AdoptedPlan>>) -> PreparedPlan {
        let plan = adopted.as_ref().map_or_else(
            || Plan {
                tiers: vec![],
                services: vec![],
                sources: Default::default(),
            },
            |a| a.plan.clone(),
        );
        let services = plan
            .services
            .iter()
            .map(|p| {
                let config = self.services.get(&p.id);
                PlannedService {
                    name: config.map_or_else(|| p.id.as_str().into(), |c| c.name.clone()),
                    meter: config.and_then(|c| c.meter),
                    declared_w: config.and_then(|c| c.demand_w),
                }
            })
            .collect();
        PreparedPlan {
            adopted,
            runner: PlanRunner::new(plan),
            services,
        }
    }

    /// The whole live picture at `now`.
    pub async fn evaluate(&self, now: DateTime<Utc>) -> Result<LiveSnapshot> {
        let batches = self.query_latest(now).await?;
        let latest = self.read_latest(&batches)?;
        let mut site = latest.balance.clone();
        let prepared = self.active_plan()?;
        let adopted = prepared.adopted.as_ref();
        let last_data_ms = latest.last_seen_ms.iter().flatten().copied().max();
        let last_data = last_data_ms.and_then(|ms| Utc.timestamp_millis_opt(ms).single());
        let stale = last_data
            .map(|t| {
                (now - t)
                    .to_std()
                    .map(|age| age > self.opts.stale_after)
                    .unwrap_or(false)
            })
            .unwrap_or(true);

        let allocation = prepared.runner.run(&site, stale, |i, _| {
            prepared
                .services
                .get(i)
                .map_or_else(DemandSource::default, |s| {
                    latest.demand(s.meter, s.declared_w)
                })
        });
        site.available_w = allocation.available_w;
        site.allocated_w = allocation.allocated_w;
        site.headroom_w = allocation.headroom_w;

        let services: Vec<ServiceLive> = allocation
            .services
            .iter()
            .zip(&prepared.services)
            .zip(&prepared.runner.plan().services)
            .map(|((g, s), p)| ServiceLive {
                id: g.id.clone(),
                name: s.name.clone(),
                tier: g.tier,
                demand_w: g.demand_w,
                allocated_w: g.allocated_w,
                state: g.state,
                min_w: p.min_w,
                max_w: p.max_w,
                reason: g.reason.code(),
            })
            .collect();

        let devices = self.metrics.with_health(|health| {
            self.devices
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let seen = latest
                        .last_seen_ms
                        .get(i)
                        .copied()
                        .flatten()
                        .and_then(|ms| Utc.timestamp_millis_opt(ms).single());
                    let device_health = health.get(&*d.id);
                    let healthy = device_health.is_some_and(|h| h.is_up(now, d.fresh_within));
                    let mut state = device_health.map_or(ingest::metrics::HealthState::Down, |h| {
                        h.state(now, d.fresh_within)
                    });
                    // A device that publishes when it likes and has been silent for
                    // longer than makes the wall stale is not "up": its last value
                    // still counts (up to `value_max_age`), but the installer sees
                    // the same silence the wall does.
                    if !d.polled
                        && state == ingest::metrics::HealthState::Up
                        && device_health
                            .and_then(|h| h.last_success)
                            .and_then(|t| (now - t).to_std().ok())
                            .is_some_and(|age| age > self.opts.stale_after)
                    {
                        state = ingest::metrics::HealthState::Degraded;
                    }
                    DeviceLive {
                        id: d.id.clone(),
                        name: d.name.clone(),
                        role: d.role.as_str(),
                        power_w: latest.power_w.get(i).copied().flatten(),
                        last_seen: seen,
                        healthy,
                        state,
                    }
                })
                .collect()
        });

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
            pools: allocation.pools,
        })
    }

    /// The site balance and each device's readings from the rows of [`LATEST_SQL`].
    fn read_latest(&self, batches: &[RecordBatch]) -> Result<Latest> {
        let n = self.devices.len();
        let mut latest = Latest {
            balance: SiteBalance::default(),
            fresh_power_w: vec![None; n],
            power_w: vec![None; n],
            last_seen_ms: vec![None; n],
        };
        let (mut soc_sum, mut soc_count) = (0.0, 0u32);
        for batch in batches {
            let column = |name: &str| {
                batch
                    .column_by_name(name)
                    .ok_or_else(|| Error::MissingColumn {
                        query: "latest",
                        column: name.to_string(),
                    })
            };
            let wrong = |name: &str| Error::ColumnType {
                query: "latest",
                column: name.to_string(),
            };
            let idx = column("idx")?
                .as_primitive_opt::<UInt32Type>()
                .ok_or_else(|| wrong("idx"))?;
            let ts = column("ts")?
                .as_primitive_opt::<TimestampMillisecondType>()
                .ok_or_else(|| wrong("ts"))?;
            let values = column("value")?
                .as_primitive_opt::<Float64Type>()
                .ok_or_else(|| wrong("value"))?;
            let fresh: &BooleanArray = column("fresh")?
                .as_boolean_opt()
                .ok_or_else(|| wrong("fresh"))?;
            let metrics = text_column(batch, "metric")?;
            for (row, metric) in metrics.enumerate() {
                let (Some(metric), false, false) = (metric, idx.is_null(row), values.is_null(row))
                else {
                    continue;
                };
                let i = idx.value(row) as usize;
                let Some(device) = self.devices.get(i) else {
                    continue;
                };
                let value = values.value(row);
                if !ts.is_null(row) {
                    let t = ts.value(row);
                    let seen = &mut latest.last_seen_ms[i];
                    *seen = Some(seen.map_or(t, |s| s.max(t)));
                }
                let is_fresh = fresh.is_valid(row) && fresh.value(row);
                match metric {
                    "power_w" => {
                        latest.power_w[i] = Some(value);
                        if is_fresh {
                            latest.fresh_power_w[i] = Some(value);
                            let b = &mut latest.balance;
                            match device.role {
                                Role::Pv => b.pv_w += value,
                                Role::Grid => b.grid_w += value,
                                Role::Battery => b.battery_w += value,
                                Role::Load => b.load_w += value,
                            }
                        }
                    }
                    "soc_pct" if is_fresh && device.role == Role::Battery => {
                        soc_sum += value;
                        soc_count += 1;
                    }
                    _ => {}
                }
            }
        }
        let b = &mut latest.balance;
        b.battery_soc_pct = (soc_count > 0).then(|| soc_sum / f64::from(soc_count));
        b.unmetered_w = b.pv_w + b.grid_w + b.battery_w - b.load_w;
        b.surplus_w = b.pv_w - (b.pv_w + b.grid_w + b.battery_w);
        Ok(latest)
    }

    /// Evaluates as the [`Schedule`] of its options says, `period` being the
    /// heartbeat (or the tick), and publishes each snapshot; an evaluation error is
    /// logged and the previous snapshot stays (marked by its own timestamp).
    /// Allocation and actuation follow each snapshot.
    pub async fn run(
        self,
        tx: watch::Sender<Arc<LiveSnapshot>>,
        period: Duration,
        replan: Arc<tokio::sync::Notify>,
        cancel: CancellationToken,
    ) {
        let mut on_change = self.opts.schedule == Schedule::OnChange;
        let min_gap = self.opts.min_gap;
        let mut changes = self.changes.clone();
        let mut heartbeat = tokio::time::interval(period);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last: Option<tokio::time::Instant> = None;
        loop {
            let trigger = tokio::select! {
                _ = cancel.cancelled() => break,
                _ = heartbeat.tick() => EvaluationTrigger::Heartbeat,
                // A plan was adopted: evaluate now rather than at the next tick.
                _ = replan.notified() => EvaluationTrigger::Plan,
                changed = changes.changed(), if on_change => match changed {
                    Ok(()) => EvaluationTrigger::Reading,
                    // The store is gone (cannot happen while the engine holds
                    // it): the heartbeat goes on alone.
                    Err(_) => {
                        on_change = false;
                        continue;
                    }
                },
            };
            if trigger == EvaluationTrigger::Reading
                && let Some(at) = last
            {
                // Coalesce: whatever arrives until the gap is over is evaluated
                // together with this reading.
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep_until(at + min_gap) => {}
                }
            }
            // Seen before the query reads the store: a reading that arrives during
            // the evaluation starts the next one.
            changes.borrow_and_update();
            last = Some(tokio::time::Instant::now());
            // On change, the heartbeat counts from the last evaluation, whatever
            // started it; the fixed tick starts afresh after a plan adoption only.
            if on_change || trigger == EvaluationTrigger::Plan {
                heartbeat.reset();
            }
            self.metrics.add_evaluation(trigger);
            match self.evaluate(sensors::clock::now()).await {
                Ok(snapshot) => {
                    tx.send_replace(Arc::new(snapshot));
                }
                Err(e) => tracing::error!(error = %e, "live evaluation failed"),
            }
        }
    }
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

/// The values of a text column, whichever string layout DataFusion chose for it.
fn text_column<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<Box<dyn Iterator<Item = Option<&'a str>> + 'a>> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| Error::MissingColumn {
            query: "latest",
            column: name.to_string(),
        })?;
    if let Some(a) = col.as_string_view_opt() {
        Ok(Box::new(a.iter()))
    } else if let Some(a) = col.as_string_opt::<i32>() {
        Ok(Box::new(a.iter()))
    } else if let Some(a) = col.as_string_opt::<i64>() {
        Ok(Box::new(a.iter()))
    } else {
        Err(Error::ColumnType {
            query: "latest",
            column: name.to_string(),
        })
    }
}

pub(crate) fn devices_table(devices: &[DeviceConfig]) -> Result<MemTable> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("role", DataType::Utf8, false),
        Field::new("profile", DataType::Utf8, false),
        // The engine's number for the device: its place in the configuration.
        Field::new("idx", DataType::UInt32, false),
    ]));
    let mut idx = UInt32Builder::new();
    let mut id = StringBuilder::new();
    let mut name = StringBuilder::new();
    let mut role = StringBuilder::new();
    let mut profile = StringBuilder::new();
    for (i, d) in devices.iter().enumerate() {
        let i = u32::try_from(i).map_err(|_| Error::TooManyDevices(devices.len()))?;
        idx.append_value(i);
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
            Arc::new(idx.finish()),
        ],
    )?;
    Ok(MemTable::try_new(schema, vec![vec![batch]])?)
}

pub(crate) fn services_table(services: &[ServiceConfig]) -> Result<MemTable> {
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
