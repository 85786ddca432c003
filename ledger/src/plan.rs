//! Priority plans as the assembly adopts them (DESIGN.md §4, §8 `PLAN`). The journal
//! stores them whole; `query` reads the latest one to allocate power.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// How a tier shares what reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// In proportion to each service's ask.
    #[default]
    ProRata,
    /// Max-min fair water-filling: equal shares, what a small ask leaves goes to the others.
    Equal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierRule {
    pub tier: u32,
    #[serde(default)]
    pub split: Split,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanService {
    pub id: String,
    pub tier: u32,
    #[serde(default)]
    pub min_w: f64,
    #[serde(default)]
    pub max_w: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatterySource {
    /// The battery may discharge for the community down to this state of charge.
    pub reserve_soc_pct: f64,
    /// Tiers allowed to draw on the battery (empty: all tiers).
    #[serde(default)]
    pub tiers: Vec<u32>,
    /// Largest discharge the plan counts on, in watts (absent: none counted).
    #[serde(default)]
    pub max_discharge_w: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridSource {
    /// Import the plan counts on, in watts (0: self-consumption only).
    pub max_import_w: f64,
    /// Tiers allowed to draw on the grid (empty: all tiers).
    #[serde(default)]
    pub tiers: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Sources {
    #[serde(default)]
    pub battery: Option<BatterySource>,
    #[serde(default)]
    pub grid: Option<GridSource>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub tiers: Vec<TierRule>,
    pub services: Vec<PlanService>,
    #[serde(default)]
    pub sources: Sources,
}

impl Plan {
    /// The split rule of a tier; a tier the plan does not list shares pro rata.
    pub fn split_of(&self, tier: u32) -> Split {
        self.tiers
            .iter()
            .find(|t| t.tier == tier)
            .map(|t| t.split)
            .unwrap_or_default()
    }

    /// Checks what a plan must satisfy before it can be adopted; each message names
    /// the offending service or tier (the [`PlanProblem`]s of [`Plan::problems`], in
    /// words).
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.iter().map(ToString::to_string).collect())
        }
    }

    /// Everything that keeps this plan from being adopted, in the order of the plan,
    /// as data that pages phrase in their reader's language.
    pub fn problems(&self) -> Vec<PlanProblem> {
        let mut problems = Vec::new();
        let mut seen = BTreeSet::new();
        for s in &self.services {
            if s.id.trim().is_empty() {
                problems.push(PlanProblem::EmptyServiceId);
            }
            if !seen.insert(s.id.as_str()) {
                problems.push(PlanProblem::ServiceTwice { id: s.id.clone() });
            }
            if s.tier == 0 {
                problems.push(PlanProblem::ServiceTierZero { id: s.id.clone() });
            }
            if !(s.min_w.is_finite() && s.min_w >= 0.0) {
                problems.push(PlanProblem::MinNegative { id: s.id.clone() });
            }
            if let Some(max) = s.max_w {
                if !(max.is_finite() && max >= 0.0) {
                    problems.push(PlanProblem::MaxNegative { id: s.id.clone() });
                } else if max < s.min_w {
                    problems.push(PlanProblem::MaxBelowMin {
                        id: s.id.clone(),
                        min_w: s.min_w,
                        max_w: max,
                    });
                }
            }
        }
        let mut tiers = BTreeSet::new();
        for t in &self.tiers {
            if t.tier == 0 {
                problems.push(PlanProblem::TierZeroRule);
            }
            if !tiers.insert(t.tier) {
                problems.push(PlanProblem::TierTwice { tier: t.tier });
            }
        }
        if let Some(b) = &self.sources.battery
            && !(0.0..=100.0).contains(&b.reserve_soc_pct)
        {
            problems.push(PlanProblem::BatteryReserve);
        }
        if let Some(max) = self
            .sources
            .battery
            .as_ref()
            .and_then(|b| b.max_discharge_w)
            && !(max.is_finite() && max >= 0.0)
        {
            problems.push(PlanProblem::BatteryDischarge);
        }
        if let Some(g) = &self.sources.grid
            && !(g.max_import_w.is_finite() && g.max_import_w >= 0.0)
        {
            problems.push(PlanProblem::GridImport);
        }
        problems
    }

    /// [`Plan::problems`], and every service of the plan that the site
    /// configuration does not declare (`configured`: the ids of its services).
    pub fn problems_against(&self, configured: &BTreeSet<String>) -> Vec<PlanProblem> {
        let mut problems = self.problems();
        let mut named = BTreeSet::new();
        for s in &self.services {
            if !s.id.trim().is_empty() && !configured.contains(&s.id) && named.insert(&s.id) {
                problems.push(PlanProblem::NotConfigured { id: s.id.clone() });
            }
        }
        problems
    }
}

/// One reason a plan cannot be adopted. [`std::fmt::Display`] says it in English, as
/// the JSON API does; pages phrase each kind in their reader's language.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanProblem {
    EmptyServiceId,
    ServiceTwice {
        id: String,
    },
    ServiceTierZero {
        id: String,
    },
    MinNegative {
        id: String,
    },
    MaxNegative {
        id: String,
    },
    MaxBelowMin {
        id: String,
        min_w: f64,
        max_w: f64,
    },
    TierZeroRule,
    TierTwice {
        tier: u32,
    },
    BatteryReserve,
    BatteryDischarge,
    GridImport,
    /// A service the site configuration does not declare.
    NotConfigured {
        id: String,
    },
}

impl std::fmt::Display for PlanProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanProblem::EmptyServiceId => f.write_str("a service has an empty id"),
            PlanProblem::ServiceTwice { id } => write!(f, "service `{id}` is listed twice"),
            PlanProblem::ServiceTierZero { id } => {
                write!(f, "service `{id}`: tier must be 1 or more")
            }
            PlanProblem::MinNegative { id } => write!(f, "service `{id}`: min_w must be 0 or more"),
            PlanProblem::MaxNegative { id } => write!(f, "service `{id}`: max_w must be 0 or more"),
            PlanProblem::MaxBelowMin { id, min_w, max_w } => write!(
                f,
                "service `{id}`: max_w ({max_w}) is below min_w ({min_w})"
            ),
            PlanProblem::TierZeroRule => {
                f.write_str("tier 0 has a split rule: tiers are numbered from 1")
            }
            PlanProblem::TierTwice { tier } => write!(f, "tier {tier} has two split rules"),
            PlanProblem::BatteryReserve => {
                f.write_str("battery reserve_soc_pct must be between 0 and 100")
            }
            PlanProblem::BatteryDischarge => {
                f.write_str("battery max_discharge_w must be 0 or more")
            }
            PlanProblem::GridImport => f.write_str("grid max_import_w must be 0 or more"),
            PlanProblem::NotConfigured { id } => {
                write!(f, "service `{id}` is not in the site configuration")
            }
        }
    }
}

/// One difference between a plan and the one it replaced, for the history of plans
/// (what the assembly changed at each adoption). Serialized with a `change` tag so
/// that pages can phrase each kind in their own language.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum PlanChange {
    ServiceAdded {
        id: String,
        tier: u32,
        min_w: f64,
        max_w: Option<f64>,
    },
    ServiceRemoved {
        id: String,
        tier: u32,
    },
    TierMoved {
        id: String,
        from: u32,
        to: u32,
    },
    MinChanged {
        id: String,
        from: f64,
        to: f64,
    },
    MaxChanged {
        id: String,
        from: Option<f64>,
        to: Option<f64>,
    },
    SplitChanged {
        tier: u32,
        from: Split,
        to: Split,
    },
    BatteryChanged {
        from: Option<BatterySource>,
        to: Option<BatterySource>,
    },
    GridChanged {
        from: Option<GridSource>,
        to: Option<GridSource>,
    },
}

impl Plan {
    /// What changed from `previous` to this plan: services in this plan's order (added,
    /// moved between tiers, minimum or cap changed), then services dropped (in the
    /// previous plan's order), then split rules by tier, then the sources. Order within
    /// a tier does not count: it does not change the allocation.
    pub fn changes_since(&self, previous: &Plan) -> Vec<PlanChange> {
        let mut changes = Vec::new();
        let before: std::collections::HashMap<&str, &PlanService> = previous
            .services
            .iter()
            .map(|s| (s.id.as_str(), s))
            .collect();
        for s in &self.services {
            let Some(old) = before.get(s.id.as_str()) else {
                changes.push(PlanChange::ServiceAdded {
                    id: s.id.clone(),
                    tier: s.tier,
                    min_w: s.min_w,
                    max_w: s.max_w,
                });
                continue;
            };
            if old.tier != s.tier {
                changes.push(PlanChange::TierMoved {
                    id: s.id.clone(),
                    from: old.tier,
                    to: s.tier,
                });
            }
            if old.min_w != s.min_w {
                changes.push(PlanChange::MinChanged {
                    id: s.id.clone(),
                    from: old.min_w,
                    to: s.min_w,
                });
            }
            if old.max_w != s.max_w {
                changes.push(PlanChange::MaxChanged {
                    id: s.id.clone(),
                    from: old.max_w,
                    to: s.max_w,
                });
            }
        }
        for old in &previous.services {
            if !self.services.iter().any(|s| s.id == old.id) {
                changes.push(PlanChange::ServiceRemoved {
                    id: old.id.clone(),
                    tier: old.tier,
                });
            }
        }
        // Every tier either plan mentions, by its rule or by a service in it.
        let tiers: std::collections::BTreeSet<u32> = [self, previous]
            .iter()
            .flat_map(|p| {
                p.tiers
                    .iter()
                    .map(|t| t.tier)
                    .chain(p.services.iter().map(|s| s.tier))
            })
            .collect();
        for tier in tiers {
            let (from, to) = (previous.split_of(tier), self.split_of(tier));
            if from != to {
                changes.push(PlanChange::SplitChanged { tier, from, to });
            }
        }
        if previous.sources.battery != self.sources.battery {
            changes.push(PlanChange::BatteryChanged {
                from: previous.sources.battery.clone(),
                to: self.sources.battery.clone(),
            });
        }
        if previous.sources.grid != self.sources.grid {
            changes.push(PlanChange::GridChanged {
                from: previous.sources.grid.clone(),
                to: self.sources.grid.clone(),
            });
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(id: &str, tier: u32, min_w: f64, max_w: Option<f64>) -> PlanService {
        PlanService {
            id: id.into(),
            tier,
            min_w,
            max_w,
        }
    }

    fn clinic_first() -> Plan {
        Plan {
            tiers: vec![TierRule {
                tier: 2,
                split: Split::ProRata,
            }],
            services: vec![
                svc("clinic", 1, 150.0, None),
                svc("school", 2, 0.0, Some(2000.0)),
                svc("homes", 2, 0.0, None),
            ],
            sources: Sources::default(),
        }
    }

    #[test]
    fn the_same_plan_has_no_changes_even_reordered_within_a_tier() {
        let plan = clinic_first();
        assert_eq!(plan.changes_since(&plan), []);
        let mut reordered = plan.clone();
        reordered.services.swap(1, 2);
        assert_eq!(reordered.changes_since(&plan), []);
    }

    #[test]
    fn each_kind_of_change_is_named_once() {
        let old = clinic_first();
        let new = Plan {
            tiers: vec![TierRule {
                tier: 2,
                split: Split::Equal,
            }],
            services: vec![
                svc("clinic", 1, 200.0, None),
                svc("school", 1, 0.0, None),
                svc("pump", 3, 0.0, Some(500.0)),
            ],
            sources: Sources {
                battery: None,
                grid: Some(GridSource {
                    max_import_w: 1000.0,
                    tiers: vec![1],
                }),
            },
        };
        assert_eq!(
            new.changes_since(&old),
            [
                PlanChange::MinChanged {
                    id: "clinic".into(),
                    from: 150.0,
                    to: 200.0
                },
                PlanChange::TierMoved {
                    id: "school".into(),
                    from: 2,
                    to: 1
                },
                PlanChange::MaxChanged {
                    id: "school".into(),
                    from: Some(2000.0),
                    to: None
                },
                PlanChange::ServiceAdded {
                    id: "pump".into(),
                    tier: 3,
                    min_w: 0.0,
                    max_w: Some(500.0)
                },
                PlanChange::ServiceRemoved {
                    id: "homes".into(),
                    tier: 2
                },
                PlanChange::SplitChanged {
                    tier: 2,
                    from: Split::ProRata,
                    to: Split::Equal
                },
                PlanChange::GridChanged {
                    from: None,
                    to: Some(GridSource {
                        max_import_w: 1000.0,
                        tiers: vec![1]
                    })
                },
            ]
        );
    }

    #[test]
    fn an_unlisted_tier_shares_pro_rata_so_listing_it_so_is_no_change() {
        let old = clinic_first();
        let mut new = old.clone();
        new.tiers.push(TierRule {
            tier: 1,
            split: Split::ProRata,
        });
        assert_eq!(new.changes_since(&old), []);
        new.tiers[1].split = Split::Equal;
        assert_eq!(
            new.changes_since(&old),
            [PlanChange::SplitChanged {
                tier: 1,
                from: Split::ProRata,
                to: Split::Equal
            }]
        );
    }

    #[test]
    fn services_the_configuration_does_not_declare_are_named_once() {
        let mut plan = clinic_first();
        plan.services.push(svc("ghost", 3, 0.0, None));
        plan.services.push(svc("ghost", 3, 0.0, None));
        let configured: BTreeSet<String> = ["clinic", "school", "homes", "pump"]
            .map(String::from)
            .into();
        assert_eq!(
            plan.problems_against(&configured),
            [
                PlanProblem::ServiceTwice { id: "ghost".into() },
                PlanProblem::NotConfigured { id: "ghost".into() },
            ]
        );
        assert_eq!(clinic_first().problems_against(&configured), []);
    }

    #[test]
    fn changes_serialize_with_a_tag_for_the_pages() {
        let change = PlanChange::TierMoved {
            id: "school".into(),
            from: 2,
            to: 1,
        };
        assert_eq!(
            serde_json::to_value(&change).expect("json"),
            serde_json::json!({"change": "tier_moved", "id": "school", "from": 2, "to": 1})
        );
    }
}
