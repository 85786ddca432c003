//! Priority plans as the assembly adopts them (DESIGN.md §4, §8 `PLAN`). The journal
//! stores them whole; `query` reads the latest one to allocate power.

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
    /// the offending service or tier.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for s in &self.services {
            if s.id.trim().is_empty() {
                problems.push("a service has an empty id".to_string());
            }
            if !seen.insert(s.id.as_str()) {
                problems.push(format!("service `{}` is listed twice", s.id));
            }
            if s.tier == 0 {
                problems.push(format!("service `{}`: tier must be 1 or more", s.id));
            }
            if !(s.min_w.is_finite() && s.min_w >= 0.0) {
                problems.push(format!("service `{}`: min_w must be 0 or more", s.id));
            }
            if let Some(max) = s.max_w {
                if !(max.is_finite() && max >= 0.0) {
                    problems.push(format!("service `{}`: max_w must be 0 or more", s.id));
                } else if max < s.min_w {
                    problems.push(format!(
                        "service `{}`: max_w ({max}) is below min_w ({})",
                        s.id, s.min_w
                    ));
                }
            }
        }
        let mut tiers = std::collections::BTreeSet::new();
        for t in &self.tiers {
            if t.tier == 0 {
                problems.push("tier 0 has a split rule: tiers are numbered from 1".to_string());
            }
            if !tiers.insert(t.tier) {
                problems.push(format!("tier {} has two split rules", t.tier));
            }
        }
        if let Some(b) = &self.sources.battery
            && !(0.0..=100.0).contains(&b.reserve_soc_pct)
        {
            problems.push("battery reserve_soc_pct must be between 0 and 100".to_string());
        }
        if let Some(max) = self
            .sources
            .battery
            .as_ref()
            .and_then(|b| b.max_discharge_w)
            && !(max.is_finite() && max >= 0.0)
        {
            problems.push("battery max_discharge_w must be 0 or more".to_string());
        }
        if let Some(g) = &self.sources.grid
            && !(g.max_import_w.is_finite() && g.max_import_w >= 0.0)
        {
            problems.push("grid max_import_w must be 0 or more".to_string());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}
