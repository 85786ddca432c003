//! Profiles of devices that publish over MQTT: which topics to subscribe to for a
//! device, and which JSON fields of each topic's payloads carry which metric.

use serde::Deserialize;

use crate::config::MqttDeviceConfig;
use crate::model::{Metric, PowerSign, Sample};
use crate::mqtt::{DecodeError, lookup, number_at, parse_payload};

/// A device family reached over MQTT.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttProfile {
    pub id: String,
    pub name: String,
    pub power_sign: PowerSign,
    #[serde(rename = "topic")]
    pub topics: Vec<TopicSpec>,
}

/// One subscription of a device.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    /// Topic, where `{topic}` stands for the device's `mqtt.topic`.
    pub topic: String,
    #[serde(default)]
    pub fields: Vec<FieldSpec>,
    /// Whether the device's `mqtt.fields` (generic-json) are read from this topic.
    #[serde(default)]
    pub config_fields: bool,
}

/// A metric read from a JSON path of the payload.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub metric: Metric,
    pub path: String,
    #[serde(default = "one")]
    pub scale: f64,
    /// A missing optional field is skipped; a missing required one rejects the payload.
    #[serde(default)]
    pub optional: bool,
}

fn one() -> f64 {
    1.0
}

fn expand(pattern: &str, dev: &MqttDeviceConfig) -> String {
    pattern.replace("{topic}", dev.topic.trim_end_matches('/'))
}

impl MqttProfile {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.topics.is_empty() {
            return Err("no topic".to_string());
        }
        let probe = serde_json::Value::Null;
        for t in &self.topics {
            if !t.topic.contains("{topic}") {
                return Err(format!(
                    "topic `{}` does not use the device's {{topic}}",
                    t.topic
                ));
            }
            if t.fields.is_empty() && !t.config_fields {
                return Err(format!("topic `{}` reads no field", t.topic));
            }
            for f in &t.fields {
                lookup(&probe, &f.path).map_err(|e| e.to_string())?;
                if !f.scale.is_finite() || f.scale == 0.0 {
                    return Err(format!("field `{}` has scale {}", f.path, f.scale));
                }
            }
        }
        Ok(())
    }

    /// Checks a device's MQTT settings against the profile: a non-empty topic
    /// without wildcards, and for profiles that read configured fields, at least
    /// one field with a valid path.
    pub fn check_device(&self, dev: &MqttDeviceConfig) -> Result<(), String> {
        let topic = dev.topic.trim();
        if topic.is_empty() || topic.contains(['+', '#']) {
            return Err(format!(
                "`{}` is not a topic this profile can subscribe to",
                dev.topic
            ));
        }
        if self.topics.iter().any(|t| t.config_fields) {
            if dev.fields.is_empty() {
                return Err(format!(
                    "profile `{}` needs `mqtt.fields` (metric = \"json.path\")",
                    self.id
                ));
            }
            for fp in dev.fields.values() {
                lookup(&serde_json::Value::Null, fp.path()).map_err(|e| e.to_string())?;
            }
        } else if !dev.fields.is_empty() {
            return Err(format!(
                "profile `{}` has fixed fields; remove `mqtt.fields`",
                self.id
            ));
        }
        Ok(())
    }

    /// The topics to subscribe to for `dev`.
    pub fn subscriptions(&self, dev: &MqttDeviceConfig) -> Vec<String> {
        self.topics.iter().map(|t| expand(&t.topic, dev)).collect()
    }

    /// Decodes a payload received on `topic` into samples in the device's own sign
    /// convention. Never panics, whatever the bytes.
    pub fn decode(
        &self,
        dev: &MqttDeviceConfig,
        topic: &str,
        payload: &[u8],
    ) -> Result<Vec<Sample>, DecodeError> {
        let spec = self
            .topics
            .iter()
            .find(|t| expand(&t.topic, dev) == topic)
            .ok_or_else(|| DecodeError::UnexpectedTopic(topic.to_string()))?;
        let json = parse_payload(payload)?;
        let mut samples = Vec::new();
        for f in &spec.fields {
            match number_at(&json, &f.path)? {
                Some(v) => samples.push(Sample::new(f.metric, v * f.scale)),
                None if f.optional => {}
                None => return Err(DecodeError::MissingField(f.path.clone())),
            }
        }
        if spec.config_fields {
            // A device may publish partial updates, so one configured field is
            // enough; a payload carrying none of them is an error.
            let before = samples.len();
            for (metric, fp) in &dev.fields {
                if let Some(v) = number_at(&json, fp.path())? {
                    samples.push(Sample::new(*metric, v * fp.scale()));
                }
            }
            if samples.len() == before && !dev.fields.is_empty() {
                let wanted: Vec<String> = dev
                    .fields
                    .values()
                    .map(|f| format!("`{}`", f.path()))
                    .collect();
                return Err(DecodeError::NoConfiguredField(wanted.join(", ")));
            }
        }
        // Scales are checked finite at load; a huge value times a scale may not be.
        samples.retain(|s| s.value.is_finite());
        Ok(samples)
    }
}
