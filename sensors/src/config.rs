//! The `[[device]]` section of the configuration (DESIGN.md §8), owned here because
//! it names profiles and roles. Parsing errors carry the line and key through `toml`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::{Metric, PowerSign, Role};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Stable id used in data and URLs.
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub role: Role,
    /// Profile name, e.g. `sunspec`, `sdm630`, `shelly-gen2-em`, `generic-json`.
    pub profile: String,
    #[serde(default)]
    pub modbus: Option<ModbusTcpConfig>,
    #[serde(default)]
    pub mqtt: Option<MqttDeviceConfig>,
    /// Overrides the profile's sign convention (e.g. a meter wired the other way).
    #[serde(default)]
    pub power_sign: Option<PowerSign>,
    #[serde(default = "default_poll_interval", with = "humantime_secs")]
    pub poll_interval: Duration,
    /// Per-request Modbus timeout.
    #[serde(default = "default_timeout", with = "humantime_secs")]
    pub timeout: Duration,
}

impl DeviceConfig {
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(1)
}

fn default_timeout() -> Duration {
    Duration::from_millis(1000)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModbusTcpConfig {
    pub host: String,
    #[serde(default = "default_modbus_port")]
    pub port: u16,
    #[serde(default = "default_unit")]
    pub unit: u8,
}

fn default_modbus_port() -> u16 {
    502
}

fn default_unit() -> u8 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MqttDeviceConfig {
    /// Topic prefix / base for the profile (DESIGN.md §3 table).
    pub topic: String,
    /// `generic-json` only: metric name -> JSON path (`a.b[0].c`) or `{ path, scale }`.
    #[serde(default)]
    pub fields: BTreeMap<Metric, FieldPath>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum FieldPath {
    Path(String),
    Scaled {
        path: String,
        #[serde(default = "one")]
        scale: f64,
    },
}

fn one() -> f64 {
    1.0
}

impl FieldPath {
    pub fn path(&self) -> &str {
        match self {
            FieldPath::Path(p) | FieldPath::Scaled { path: p, .. } => p,
        }
    }
    pub fn scale(&self) -> f64 {
        match self {
            FieldPath::Path(_) => 1.0,
            FieldPath::Scaled { scale, .. } => *scale,
        }
    }
}

/// Durations written as `"1s"`, `"500ms"`, `"2m"`.
pub mod humantime_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn parse(s: &str) -> Result<Duration, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("`{s}` has no unit (use ms, s, m or h)"))?;
        let (num, unit) = s.split_at(split);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("`{s}` does not start with a number"))?;
        let secs = match unit {
            "ms" => n / 1000.0,
            "s" => n,
            "m" | "min" => n * 60.0,
            "h" => n * 3600.0,
            _ => {
                return Err(format!(
                    "`{s}` has an unknown unit `{unit}` (use ms, s, m or h)"
                ));
            }
        };
        if !(secs.is_finite() && secs > 0.0) {
            return Err(format!("`{s}` must be a positive duration"));
        }
        Ok(Duration::from_secs_f64(secs))
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", d.as_millis()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_reject_nonsense() {
        assert_eq!(humantime_secs::parse("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(
            humantime_secs::parse("250ms"),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(humantime_secs::parse("2m"), Ok(Duration::from_secs(120)));
        assert!(humantime_secs::parse("5").is_err());
        assert!(humantime_secs::parse("0s").is_err());
        assert!(humantime_secs::parse("fast").is_err());
    }

    #[test]
    fn unknown_device_key_is_rejected_with_its_name_and_line() {
        let text = "id = \"a\"\nrole = \"pv\"\nprofile = \"sunspec\"\npol_interval = \"1s\"\n";
        let err = toml::from_str::<DeviceConfig>(text).expect_err("unknown key");
        let msg = err.to_string();
        assert!(msg.contains("pol_interval"), "{msg}");
        assert!(msg.contains("line 4"), "{msg}");
    }
}
