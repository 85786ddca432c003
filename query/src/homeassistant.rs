//! Home Assistant MQTT discovery (opt-in: `[homeassistant] discovery = true`): the
//! community's figures appear in Home Assistant as sensors of one device, with no
//! YAML. What is published comes from the public view of each snapshot (community
//! totals and services only, never a household's meter):
//!
//! - a retained discovery config per sensor on
//!   `<prefix>/sensor/<node>/<object>/config` (production, consumption, surplus,
//!   grid, battery power and charge, the "use power now" signal, and each service's
//!   allocation and state), with `device_class`, `unit_of_measurement`,
//!   `state_class` and the availability topic;
//! - the figures as one retained JSON object on `communalia/<node>/state`, at most
//!   every `state_interval`, which each sensor reads with its `value_template`;
//! - `online` / `offline` on `communalia/<node>/availability`: offline while the
//!   data is stale (nobody should act on old figures), and as the MQTT last will
//!   when the node's connection dies.
//!
//! This module only decides what to publish; the node's one outgoing MQTT client
//! (`ingest::actuate`) sends it.

use std::sync::Arc;
use std::time::Duration;

use ingest::actuate::Publish;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::ServiceConfig;
use crate::live::LiveSnapshot;
use sensors::config::humantime_secs;

/// The `[homeassistant]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomeAssistantConfig {
    /// Publish discovery configs and states.
    #[serde(default)]
    pub discovery: bool,
    /// Home Assistant's discovery prefix.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// The node's id in topics and unique ids (default: from the site's name).
    #[serde(default)]
    pub node_id: Option<String>,
    /// How often the figures are published at most.
    #[serde(default = "default_state_interval", with = "humantime_secs")]
    pub state_interval: Duration,
}

impl Default for HomeAssistantConfig {
    fn default() -> Self {
        HomeAssistantConfig {
            discovery: false,
            prefix: default_prefix(),
            node_id: None,
            state_interval: default_state_interval(),
        }
    }
}

fn default_prefix() -> String {
    "homeassistant".to_string()
}

fn default_state_interval() -> Duration {
    Duration::from_secs(10)
}

/// Lower-case letters, digits and `_`: what Home Assistant accepts in a node or
/// object id.
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

/// One sensor of the discovery.
struct Sensor {
    object: String,
    name: String,
    /// Where its value lies in the state object, as a Jinja expression on `value_json`.
    value: String,
    kind: Kind,
}

enum Kind {
    /// Watts, `device_class: power`.
    Power,
    /// Percent of a battery's charge, `device_class: battery`.
    Battery,
    /// One of a fixed set of words, `device_class: enum`.
    Enum(&'static [&'static str]),
}

/// What the node publishes for Home Assistant.
#[derive(Debug, Clone)]
pub struct Discovery {
    prefix: String,
    node: String,
    site_name: String,
    services: Vec<(String, String, String)>,
    pub state_interval: Duration,
}

/// The words a service's state takes (`ServiceState`).
const SERVICE_STATES: &[&str] = &["served", "partial", "shed", "idle"];
/// The words of the wall's signal (`Signal`).
const SIGNALS: &[&str] = &["use", "hold", "unknown"];

impl Discovery {
    pub fn new(
        config: &HomeAssistantConfig,
        site_name: &str,
        services: &[ServiceConfig],
    ) -> Discovery {
        let node = config
            .node_id
            .as_deref()
            .map(slug)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| {
                let s = slug(site_name);
                if s.is_empty() {
                    "communalia".to_string()
                } else {
                    format!("communalia_{s}")
                }
            });
        Discovery {
            prefix: config.prefix.trim_end_matches('/').to_string(),
            node,
            site_name: site_name.to_string(),
            services: services
                .iter()
                .map(|s| {
                    (
                        s.id.clone(),
                        slug(&s.id),
                        s.name.clone().unwrap_or_else(|| s.id.clone()),
                    )
                })
                .collect(),
            state_interval: config.state_interval,
        }
    }

    pub fn state_topic(&self) -> String {
        format!("communalia/{}/state", self.node)
    }

    pub fn availability_topic(&self) -> String {
        format!("communalia/{}/availability", self.node)
    }

    /// The topic filters the node writes, for the broker's access rules.
    pub fn topics_written(&self) -> Vec<String> {
        vec![
            format!("{}/sensor/{}/#", self.prefix, self.node),
            format!("communalia/{}/#", self.node),
        ]
    }

    fn sensors(&self) -> Vec<Sensor> {
        let power = |object: &str, name: &str, key: &str| Sensor {
            object: object.to_string(),
            name: name.to_string(),
            value: format!("value_json.{key}"),
            kind: Kind::Power,
        };
        let mut out = vec![
            power("production", "Production", "production_w"),
            power("consumption", "Consumption", "consumption_w"),
            power("surplus", "Surplus", "surplus_w"),
            power("grid", "Grid (import positive)", "grid_w"),
            power("battery_power", "Battery (discharge positive)", "battery_w"),
            Sensor {
                object: "battery_charge".into(),
                name: "Battery charge".into(),
                value: "value_json.battery_soc_pct".into(),
                kind: Kind::Battery,
            },
            Sensor {
                object: "signal".into(),
                name: "Use power now".into(),
                value: "value_json.signal".into(),
                kind: Kind::Enum(SIGNALS),
            },
        ];
        for (id, object, name) in &self.services {
            // The service's id as a JSON key, whatever characters it holds.
            let key = serde_json::to_string(id).unwrap_or_default();
            out.push(Sensor {
                object: format!("service_{object}_allocated"),
                name: format!("{name}: allocated"),
                value: format!("value_json.services[{key}].allocated_w"),
                kind: Kind::Power,
            });
            out.push(Sensor {
                object: format!("service_{object}_state"),
                name: format!("{name}: state"),
                value: format!("value_json.services[{key}].state"),
                kind: Kind::Enum(SERVICE_STATES),
            });
        }
        out
    }

    /// Every sensor's retained discovery config.
    pub fn configs(&self) -> Vec<Publish> {
        let device = json!({
            "identifiers": [self.node],
            "name": self.site_name,
            "manufacturer": "Communalia",
            "model": "Community energy node",
        });
        self.sensors()
            .into_iter()
            .map(|s| {
                let unique_id = format!("{}_{}", self.node, s.object);
                let mut config = json!({
                    "name": s.name,
                    "unique_id": unique_id,
                    "object_id": unique_id,
                    "state_topic": self.state_topic(),
                    // `none` when the figure is missing: Home Assistant then shows it unknown.
                    "value_template": format!("{{{{ {} | default(none) }}}}", s.value),
                    "availability_topic": self.availability_topic(),
                    "payload_available": "online",
                    "payload_not_available": "offline",
                    "device": device,
                });
                let fields = match s.kind {
                    Kind::Power => json!({
                        "device_class": "power",
                        "unit_of_measurement": "W",
                        "state_class": "measurement",
                    }),
                    Kind::Battery => json!({
                        "device_class": "battery",
                        "unit_of_measurement": "%",
                        "state_class": "measurement",
                    }),
                    Kind::Enum(options) => json!({
                        "device_class": "enum",
                        "options": options,
                    }),
                };
                if let (Value::Object(c), Value::Object(f)) = (&mut config, fields) {
                    c.extend(f);
                }
                Publish {
                    topic: format!("{}/sensor/{}/{}/config", self.prefix, self.node, s.object),
                    payload: config.to_string().into_bytes(),
                    retain: true,
                }
            })
            .collect()
    }

    pub fn availability(&self, online: bool) -> Publish {
        Publish {
            topic: self.availability_topic(),
            payload: if online { "online" } else { "offline" }.into(),
            retain: true,
        }
    }

    /// The figures of a snapshot as the state object the sensors read.
    pub fn state(&self, snapshot: &LiveSnapshot) -> Publish {
        let site = &snapshot.site;
        let services: serde_json::Map<String, Value> = snapshot
            .services
            .iter()
            .map(|s| {
                (
                    s.id.to_string(),
                    json!({"allocated_w": s.allocated_w, "state": s.state}),
                )
            })
            .collect();
        let state = json!({
            "ts": snapshot.ts,
            "production_w": site.pv_w,
            "consumption_w": site.pv_w + site.grid_w + site.battery_w,
            "surplus_w": site.surplus_w,
            "grid_w": site.grid_w,
            "battery_w": site.battery_w,
            "battery_soc_pct": site.battery_soc_pct,
            "signal": snapshot.signal,
            "services": services,
        });
        Publish {
            topic: self.state_topic(),
            payload: state.to_string().into_bytes(),
            retain: true,
        }
    }
}

/// Publishes the discovery configs at once, then follows the snapshots: the
/// figures at most every `state_interval`, the availability as soon as the data
/// turns stale or fresh again.
pub async fn run(
    mut rx: watch::Receiver<Arc<LiveSnapshot>>,
    discovery: Discovery,
    tx: mpsc::Sender<Publish>,
    cancel: CancellationToken,
) {
    for config in discovery.configs() {
        if tx.send(config).await.is_err() {
            return;
        }
    }
    let mut online: Option<bool> = None;
    let mut last_state: Option<tokio::time::Instant> = None;
    rx.mark_changed();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            changed = rx.changed() => if changed.is_err() { break },
        }
        let snapshot = rx.borrow_and_update().clone();
        let fresh = !snapshot.stale;
        let mut out = Vec::new();
        if online != Some(fresh) {
            online = Some(fresh);
            out.push(discovery.availability(fresh));
        }
        let now = tokio::time::Instant::now();
        if fresh && last_state.is_none_or(|t| now.duration_since(t) >= discovery.state_interval) {
            last_state = Some(now);
            out.push(discovery.state(&snapshot));
        }
        for p in out {
            tokio::select! {
                _ = cancel.cancelled() => return,
                sent = tx.send(p) => if sent.is_err() { return },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_what_home_assistant_accepts() {
        assert_eq!(slug("Les Tilleuls — école"), "les_tilleuls_cole");
        assert_eq!(slug("clinic-fridge"), "clinic_fridge");
        assert_eq!(slug("  "), "");
    }
}
