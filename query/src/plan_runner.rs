//! One run of a plan (DESIGN.md §4): from the site's figures and what is known of
//! each service's demand, to the allocation. The live evaluation
//! ([`crate::engine`]), the replay of a draft over the history ([`crate::replay`]),
//! the assembly's preview of a draft on the live figures ([`preview`]) and the
//! benches all run a plan here, so that the rules between the figures and
//! [`allocate_pools`] are written once:
//!
//! - the power comes from the plan's [`pools`]: PV now, then the battery's counted
//!   discharge while its state of charge is above the reserve, then the counted grid
//!   import, each for the tiers the plan names;
//! - a service demands what its meter reads while the reading is recent, else the
//!   demand its configuration declares, else nothing; a meter reading below zero
//!   (noise, or export) demands nothing ([`DemandSource`]);
//! - stale figures give no power and no demand: nobody should act on them;
//! - caps and minima are the plan's, applied by [`allocate_pools`].

use std::collections::HashMap;
use std::sync::Arc;

use ledger::plan::{Plan, PlanService};

use crate::allocation::{Allocation, Pool, ServiceDemand, allocate_pools};
use crate::live::{LiveSnapshot, SiteBalance};

/// What is known of one service's demand at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DemandSource {
    /// What its meter reads, when it has a meter and the reading is recent enough to
    /// count (the live window; in a replay, the minute).
    pub metered_w: Option<f64>,
    /// The demand its configuration declares (`demand_w`), if any.
    pub declared_w: Option<f64>,
}

impl DemandSource {
    /// A demand the live evaluation has already found for the service (a snapshot's
    /// `demand_w`), `None` when it found none: the rule gives it back unchanged.
    pub fn found(demand_w: Option<f64>) -> DemandSource {
        DemandSource {
            metered_w: demand_w,
            declared_w: None,
        }
    }

    /// The demand rule: the meter while it reads, else the declared demand, else 0;
    /// never below 0.
    pub fn demand_w(self) -> f64 {
        // `max` reads NaN as 0 too.
        self.metered_w.or(self.declared_w).unwrap_or(0.0).max(0.0)
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

/// A plan ready to run, as many times as there are instants to evaluate: the live
/// evaluation keeps one per adoption, a replay one per replay.
#[derive(Debug, Clone)]
pub struct PlanRunner {
    plan: Plan,
    /// Each service's id, shared into every allocation rather than copied: the live
    /// evaluation runs thousands of services a second.
    ids: Vec<Arc<str>>,
}

impl PlanRunner {
    pub fn new(plan: Plan) -> PlanRunner {
        let ids = plan.services.iter().map(|s| s.id.as_str().into()).collect();
        PlanRunner { plan, ids }
    }

    /// The plan it runs.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Runs the plan on the site's figures: `site` gives the pools, and
    /// `demand_of(i, service)` what is known of the demand of the plan's `i`-th
    /// service. When the figures are `stale`, no pool opens and nobody demands
    /// anything (`demand_of` is not called): every service is idle.
    ///
    /// The grants come in the order of the plan's services.
    pub fn run(
        &self,
        site: &SiteBalance,
        stale: bool,
        mut demand_of: impl FnMut(usize, &PlanService) -> DemandSource,
    ) -> Allocation {
        let pools = if stale {
            vec![]
        } else {
            pools(&self.plan, site)
        };
        let services: Vec<ServiceDemand> = self
            .plan
            .services
            .iter()
            .zip(&self.ids)
            .enumerate()
            .map(|(i, (s, id))| ServiceDemand {
                id: id.clone(),
                tier: s.tier,
                demand_w: if stale {
                    0.0
                } else {
                    demand_of(i, s).demand_w()
                },
                min_w: s.min_w,
                max_w: s.max_w,
            })
            .collect();
        allocate_pools(&pools, &self.plan.tiers, &services)
    }
}

/// `plan` run on the live figures of `live`, as the live evaluation ran the active
/// plan on them: the same site balance and staleness, and for each service the
/// demand the evaluation found (none for a service it did not evaluate). The preview
/// of the active plan is the live allocation itself.
pub fn preview(plan: &Plan, live: &LiveSnapshot) -> Allocation {
    let found: HashMap<&str, f64> = live.services.iter().map(|s| (&*s.id, s.demand_w)).collect();
    PlanRunner::new(plan.clone()).run(&live.site, live.stale, |_, s| {
        DemandSource::found(found.get(s.id.as_str()).copied())
    })
}

#[cfg(test)]
mod tests;
