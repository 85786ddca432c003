//! The `[[service]]` section of the configuration (DESIGN.md §8) and the optional
//! `[[tier]]` and `[sources]` sections: together, the initial plan that the node
//! records as the first adoption. The assembly owns the plan afterwards.

use std::time::Duration;

use ledger::plan::{Plan, PlanService, Sources, TierRule};
use sensors::config::humantime_secs;
use serde::{Deserialize, Deserializer, Serialize};

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
    /// Opt-in: publish this service's on/off state and allowed power to an MQTT
    /// topic (see `crate::actuation`). Services without it are never actuated.
    #[serde(default)]
    pub actuation: Option<ActuationConfig>,
}

/// `actuation = { topic = "…", min_on = "5m", min_off = "5m" }` of a `[[service]]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ActuationConfig {
    /// Where the command is published, retained. A plain topic: no `+` or `#`.
    #[serde(deserialize_with = "plain_topic")]
    pub topic: String,
    /// Once switched on, the service stays on at least this long.
    #[serde(default = "default_min_switch_time", with = "humantime_secs")]
    pub min_on: Duration,
    /// Once switched off, the service stays off at least this long.
    #[serde(default = "default_min_switch_time", with = "humantime_secs")]
    pub min_off: Duration,
    /// The relay's account on the broker: the access rules let it read this topic
    /// and nothing else (`communalia mqtt acl`).
    #[serde(default)]
    pub reader: Option<String>,
}

/// Five minutes: long enough that a cloud passing over the roof does not cycle a
/// compressor or a charger, short enough that a sunny spell is used.
fn default_min_switch_time() -> Duration {
    Duration::from_secs(5 * 60)
}

fn plain_topic<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let topic = String::deserialize(d)?;
    check_topic(&topic).map_err(serde::de::Error::custom)?;
    Ok(topic)
}

/// A topic a command can be published to (MQTT 3.1.1 §4.7): not empty, no
/// wildcard, no NUL, and not one of the broker's own `$` topics.
pub fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("the actuation topic is empty".into());
    }
    if topic.contains(['+', '#']) {
        return Err(format!(
            "the actuation topic `{topic}` contains a wildcard (`+` or `#`); name one plain topic"
        ));
    }
    if topic.contains('\0') {
        return Err("the actuation topic contains a NUL character".into());
    }
    if topic.starts_with('$') {
        return Err(format!(
            "the actuation topic `{topic}` starts with `$`, which brokers reserve for themselves"
        ));
    }
    if topic.len() > 65_535 {
        return Err("the actuation topic is longer than MQTT allows (65535 bytes)".into());
    }
    Ok(())
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
