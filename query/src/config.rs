//! The `[[service]]` section of the configuration (DESIGN.md §8) and the optional
//! `[[tier]]` and `[sources]` sections: together, the initial plan that the node
//! records as the first adoption. The assembly owns the plan afterwards.

use ledger::plan::{Plan, PlanService, Sources, TierRule};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// A device whose `power_w` is this service's demand.
    #[serde(default)]
    pub meter: Option<String>,
    /// A declared demand, for a service without a meter.
    #[serde(default)]
    pub demand_w: Option<f64>,
    /// Initial plan only.
    pub tier: u32,
    #[serde(default)]
    pub min_w: f64,
    #[serde(default)]
    pub max_w: Option<f64>,
}

impl ServiceConfig {
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

/// The first plan, from the configuration.
pub fn initial_plan(services: &[ServiceConfig], tiers: &[TierRule], sources: &Sources) -> Plan {
    Plan {
        tiers: tiers.to_vec(),
        services: services
            .iter()
            .map(|s| PlanService {
                id: s.id.clone(),
                tier: s.tier,
                min_w: s.min_w,
                max_w: s.max_w,
            })
            .collect(),
        sources: sources.clone(),
    }
}
