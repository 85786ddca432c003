//! Profiles of devices that publish over MQTT: which topics to subscribe to for a
//! device, and which JSON fields of each topic's payloads carry which metric.
//!
//! A topic may hold one `+` level for a device that publishes one topic per channel
//! (Shelly Gen1: `<id>/emeter/<n>/power`); such a topic says how channels combine
//! (`combine = "sum"`), and decoding keeps the last value of each channel in a
//! per-device [`MqttState`].

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::MqttDeviceConfig;
use crate::model::{DecodedPoint, Metric, Origin, PowerSign, Sample};
use crate::mqtt::{DecodeError, lookup, number_at, parse_payload, topic_matches};

/// A device family reached over MQTT.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttProfile {
    pub id: String,
    pub name: String,
    pub power_sign: PowerSign,
    /// What the device publishes and reads, for a broker's access rules.
    pub access: Access,
    #[serde(rename = "topic")]
    pub topics: Vec<TopicSpec>,
}

/// The topics a device of this family publishes (`writes`) and listens to
/// (`reads`), with `{topic}` for its `mqtt.topic`; filters may end in `#`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Access {
    pub writes: Vec<String>,
    pub reads: Vec<String>,
}

/// One subscription of a device.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    /// Topic, where `{topic}` stands for the device's `mqtt.topic`; one `+` level
    /// stands for a channel number.
    pub topic: String,
    #[serde(default)]
    pub fields: Vec<FieldSpec>,
    /// Whether the device's `mqtt.fields` (generic-json) are read from this topic.
    #[serde(default)]
    pub config_fields: bool,
    /// How the channels of a `+` topic make the device's value.
    #[serde(default)]
    pub combine: Option<Combine>,
}

/// How several values make one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Combine {
    /// The sum (power and energy of a multi-channel meter).
    Sum,
    /// The first (phase 1 of a per-phase array).
    First,
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
    /// A field that may be a number or an array of numbers (Tasmota's per-channel
    /// `ENERGY.Power`): how the array is read. Without it an array is an error.
    #[serde(default)]
    pub array: Option<Combine>,
}

fn one() -> f64 {
    1.0
}

/// A device configuration used to check a profile's own topics against each other.
static PROBE_DEVICE: std::sync::LazyLock<MqttDeviceConfig> =
    std::sync::LazyLock::new(|| MqttDeviceConfig {
        topic: "probe/device".to_string(),
        fields: BTreeMap::new(),
        username: None,
        password: None,
    });

fn expand(pattern: &str, dev: &MqttDeviceConfig) -> String {
    pattern.replace("{topic}", dev.topic.trim_end_matches('/'))
}

/// The levels of `topic` that the `+` levels of `filter` matched, joined by `/`.
fn channel_of(filter: &str, topic: &str) -> String {
    filter
        .split('/')
        .zip(topic.split('/'))
        .filter(|(f, _)| *f == "+")
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join("/")
}

/// What a device's decoder remembers between messages: the last value of each
/// channel of its per-channel topics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MqttState {
    channels: BTreeMap<(usize, usize), BTreeMap<String, f64>>,
}

/// Channels a device may publish; more is a topic no real meter has.
const MAX_CHANNELS: usize = 16;

impl MqttProfile {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.topics.is_empty() {
            return Err("no topic".to_string());
        }
        if self.access.writes.is_empty() {
            return Err("[access] writes names no topic".to_string());
        }
        for w in &self.access.writes {
            if !w.starts_with("{topic}") && !w.contains("/{topic}") {
                return Err(format!(
                    "[access] writes `{w}` is not under the device's {{topic}}"
                ));
            }
        }
        // Every topic read must be one the device is allowed to write.
        for t in &self.topics {
            let probe = expand(&t.topic.replace('+', "0"), &PROBE_DEVICE);
            let allowed = self
                .access
                .writes
                .iter()
                .any(|w| topic_matches(&expand(w, &PROBE_DEVICE), &probe));
            if !allowed {
                return Err(format!(
                    "topic `{}` is not among the [access] writes",
                    t.topic
                ));
            }
        }
        let probe = serde_json::Value::Null;
        for t in &self.topics {
            if !t.topic.contains("{topic}") {
                return Err(format!(
                    "topic `{}` does not use the device's {{topic}}",
                    t.topic
                ));
            }
            if t.topic.contains('#') {
                return Err(format!("topic `{}` uses `#`", t.topic));
            }
            let channels = t.topic.split('/').filter(|l| *l == "+").count();
            if channels > 0 && t.combine.is_none() {
                return Err(format!("topic `{}` has channels but no `combine`", t.topic));
            }
            if channels > 0 && t.config_fields {
                return Err(format!(
                    "topic `{}`: configured fields on a per-channel topic",
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
                if !fp.scale().is_finite() || fp.scale() == 0.0 {
                    return Err(format!("field `{}` has scale {}", fp.path(), fp.scale()));
                }
            }
        } else if !dev.fields.is_empty() {
            return Err(format!(
                "profile `{}` has fixed fields; remove `mqtt.fields`",
                self.id
            ));
        }
        Ok(())
    }

    /// The topic filters to subscribe to for `dev` (a `+` level stays a wildcard).
    pub fn subscriptions(&self, dev: &MqttDeviceConfig) -> Vec<String> {
        self.topics.iter().map(|t| expand(&t.topic, dev)).collect()
    }

    /// The topic filters `dev` may publish on and those it may read, for a
    /// broker's access rules.
    pub fn access_of(&self, dev: &MqttDeviceConfig) -> (Vec<String>, Vec<String>) {
        let expand_all = |v: &[String]| v.iter().map(|t| expand(t, dev)).collect();
        (
            expand_all(&self.access.writes),
            expand_all(&self.access.reads),
        )
    }

    /// Decodes one payload on its own, without what earlier messages said: a
    /// per-channel topic gives that channel's value alone. See [`Self::decode_with`].
    pub fn decode(
        &self,
        dev: &MqttDeviceConfig,
        topic: &str,
        payload: &[u8],
    ) -> Result<Vec<Sample>, DecodeError> {
        let mut state = MqttState::default();
        Ok(self
            .decode_with(dev, &mut state, topic, payload)?
            .into_iter()
            .map(|p| p.sample)
            .collect())
    }

    /// Decodes a payload received on `topic` into values in the device's own sign
    /// convention, each with the field it came from. A payload from which no value
    /// is read is an error. Never panics, whatever the bytes.
    pub fn decode_with(
        &self,
        dev: &MqttDeviceConfig,
        state: &mut MqttState,
        topic: &str,
        payload: &[u8],
    ) -> Result<Vec<DecodedPoint>, DecodeError> {
        let (ti, spec, filter) = self
            .topics
            .iter()
            .enumerate()
            .map(|(i, t)| (i, t, expand(&t.topic, dev)))
            .find(|(_, _, f)| topic_matches(f, topic))
            .ok_or_else(|| DecodeError::UnexpectedTopic(topic.to_string()))?;
        let json = parse_payload(payload)?;
        let origin = |path: &str| Origin::Mqtt {
            topic: topic.to_string(),
            path: path.to_string(),
        };
        let mut out = Vec::new();
        let mut read = Vec::new();
        for (fi, f) in spec.fields.iter().enumerate() {
            match field_value(&json, f)? {
                Some(v) => read.push((fi, f, v * f.scale)),
                None if f.optional => {}
                None => return Err(DecodeError::MissingField(f.path.clone())),
            }
        }
        if let Some(combine) = spec.combine {
            let channel = channel_of(&filter, topic);
            for (fi, f, v) in read {
                let channels = state.channels.entry((ti, fi)).or_default();
                if channels.len() >= MAX_CHANNELS && !channels.contains_key(&channel) {
                    return Err(DecodeError::TooManyChannels(topic.to_string()));
                }
                channels.insert(channel.clone(), v);
                let value = match combine {
                    Combine::Sum => channels.values().sum(),
                    Combine::First => channels.values().next().copied().unwrap_or(v),
                };
                out.push(DecodedPoint {
                    sample: Sample::new(f.metric, value),
                    origin: origin(&f.path),
                });
            }
        } else {
            out.extend(read.into_iter().map(|(_, f, v)| DecodedPoint {
                sample: Sample::new(f.metric, v),
                origin: origin(&f.path),
            }));
        }
        if spec.config_fields {
            // A device may publish partial updates, so one configured field is
            // enough; a payload carrying none of them is an error.
            let before = out.len();
            for (metric, fp) in &dev.fields {
                if let Some(v) = number_at(&json, fp.path())? {
                    out.push(DecodedPoint {
                        sample: Sample::new(*metric, v * fp.scale()),
                        origin: origin(fp.path()),
                    });
                }
            }
            if out.len() == before && !dev.fields.is_empty() {
                let wanted: Vec<String> = dev
                    .fields
                    .values()
                    .map(|f| format!("`{}`", f.path()))
                    .collect();
                return Err(DecodeError::NoConfiguredField(wanted.join(", ")));
            }
        }
        // Scales are checked finite at load; a huge value times a scale may not be.
        out.retain(|p| p.sample.value.is_finite());
        if out.is_empty() {
            let wanted: Vec<String> = spec
                .fields
                .iter()
                .map(|f| format!("`{}`", f.path))
                .collect();
            return Err(DecodeError::NoKnownField(wanted.join(", ")));
        }
        Ok(out)
    }
}

/// A field's number; with `array`, an array of numbers is summed or its first
/// item taken (nulls in it are skipped).
fn field_value(json: &serde_json::Value, f: &FieldSpec) -> Result<Option<f64>, DecodeError> {
    if let (Some(rule), Some(serde_json::Value::Array(items))) = (f.array, lookup(json, &f.path)?) {
        let mut values = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let n = match item {
                serde_json::Value::Null => continue,
                serde_json::Value::Number(n) => n.as_f64(),
                serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            match n {
                Some(x) if x.is_finite() => values.push(x),
                _ => return Err(DecodeError::NotANumber(format!("{}[{i}]", f.path))),
            }
        }
        return Ok(match rule {
            Combine::Sum if values.is_empty() => None,
            Combine::Sum => Some(values.iter().sum()),
            Combine::First => values.first().copied(),
        });
    }
    number_at(json, &f.path)
}
