//! What the node knows right now: the shape of `GET /api/live` (DESIGN.md §8) and of
//! every live page. Fields may be added, never renamed.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ingest::metrics::HealthState;
use serde::Serialize;

pub use crate::allocation::ServiceState;

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct SiteBalance {
    /// PV production into the bus.
    pub pv_w: f64,
    /// Grid import (negative: export).
    pub grid_w: f64,
    /// Battery discharge (negative: charging).
    pub battery_w: f64,
    pub battery_soc_pct: Option<f64>,
    /// Sum of metered loads.
    pub load_w: f64,
    /// pv + grid + battery - loads: what flows to loads without a meter.
    pub unmetered_w: f64,
    /// PV production minus site consumption (loads + unmetered): what goes to the
    /// battery or the grid. Positive means the sun gives more than is used.
    pub surplus_w: f64,
    /// What the active plan lets the services use.
    pub available_w: f64,
    pub allocated_w: f64,
    pub headroom_w: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServiceLive {
    pub id: Arc<str>,
    pub name: Arc<str>,
    pub tier: u32,
    pub demand_w: f64,
    pub allocated_w: f64,
    pub state: ServiceState,
    pub min_w: f64,
    pub max_w: Option<f64>,
    /// Why the service got what it got, as a stable code (`minimum_only`, `tier_share`, ...).
    pub reason: &'static str,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeviceLive {
    pub id: Arc<str>,
    pub name: Arc<str>,
    pub role: &'static str,
    pub power_w: Option<f64>,
    pub last_seen: Option<DateTime<Utc>>,
    pub healthy: bool,
    /// `up`, `degraded` (read, but its last poll failed once or had registers
    /// refused) or `down`, over the same freshness window as `healthy`.
    pub state: HealthState,
}

/// "Is now a good time to use power?"
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Every service is served and there is spare power.
    Use,
    /// Some service is short, or there is little to spare.
    Hold,
    /// No recent data: nobody should act on the figures.
    Unknown,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlanInfo {
    /// Journal sequence number of the adoption.
    pub seq: i64,
    pub adopted_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LiveSnapshot {
    /// When this snapshot was computed.
    pub ts: DateTime<Utc>,
    /// True when the newest reading is older than the staleness limit.
    pub stale: bool,
    /// Time of the newest reading of any device.
    pub last_data: Option<DateTime<Utc>>,
    pub site: SiteBalance,
    pub services: Vec<ServiceLive>,
    pub devices: Vec<DeviceLive>,
    pub signal: Signal,
    pub plan: Option<PlanInfo>,
    /// The sources the plan opened, in the order they are drawn on (`pv`, `battery`,
    /// `grid`): what each could give and what the allocation drew from it. Empty when
    /// the data is stale.
    pub pools: Vec<crate::allocation::PoolUse>,
}
