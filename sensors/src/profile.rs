//! Device profiles: data files under `sensors/profiles/` that map a device family
//! to canonical metrics (DESIGN.md §3). They are embedded in the binary and parsed
//! once; a test loads every one and checks it against its simulator.

mod modbus;
mod mqtt;

use std::sync::LazyLock;

use serde::Deserialize;

pub use self::modbus::{ModbusProfile, RegisterSpec, check_registers};
pub use self::mqtt::{Access, Combine, FieldSpec, MqttProfile, MqttState, TopicSpec};
use crate::model::PowerSign;
pub use crate::mqtt::DecodeError;
use crate::{Error, Result};

/// How a profile's devices are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Modbus,
    Mqtt,
}

/// A device family.
#[derive(Debug, Clone, Copy)]
pub enum Profile {
    /// Any SunSpec device: its registers are discovered, see [`crate::sunspec`].
    SunSpec,
    Modbus(&'static ModbusProfile),
    Mqtt(&'static MqttProfile),
}

impl Profile {
    pub fn id(&self) -> &'static str {
        match self {
            Profile::SunSpec => registry()
                .map(|r| r.sunspec.id.as_str())
                .unwrap_or(SUNSPEC_ID),
            Profile::Modbus(p) => &p.id,
            Profile::Mqtt(p) => &p.id,
        }
    }

    /// A human name for the family.
    pub fn name(&self) -> &'static str {
        match self {
            Profile::SunSpec => registry()
                .map(|r| r.sunspec.name.as_str())
                .unwrap_or(SUNSPEC_ID),
            Profile::Modbus(p) => &p.name,
            Profile::Mqtt(p) => &p.name,
        }
    }

    /// How the family counts its own power; a device's configuration may override it.
    pub fn power_sign(&self) -> PowerSign {
        match self {
            // SunSpec inverter models count produced power as positive.
            Profile::SunSpec => registry()
                .map(|r| r.sunspec.power_sign)
                .unwrap_or(PowerSign::Generation),
            Profile::Modbus(p) => p.power_sign,
            Profile::Mqtt(p) => p.power_sign,
        }
    }

    pub fn transport(&self) -> Transport {
        match self {
            Profile::SunSpec | Profile::Modbus(_) => Transport::Modbus,
            Profile::Mqtt(_) => Transport::Mqtt,
        }
    }
}

/// `profiles/sunspec.toml`: SunSpec devices describe their own registers, so only
/// the family's name and sign convention are data.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SunSpecProfile {
    id: String,
    name: String,
    power_sign: PowerSign,
}

const SUNSPEC_ID: &str = "sunspec";

#[derive(Debug, Clone, Copy)]
enum Kind {
    SunSpec,
    Modbus,
    Mqtt,
}

/// Every embedded profile: name, kind, file, text. A new device family is a new
/// data file and a line here.
const FILES: [(&str, Kind, &str, &str); 11] = [
    (
        SUNSPEC_ID,
        Kind::SunSpec,
        "sunspec.toml",
        include_str!("../profiles/sunspec.toml"),
    ),
    (
        "sdm630",
        Kind::Modbus,
        "sdm630.toml",
        include_str!("../profiles/sdm630.toml"),
    ),
    (
        "sdm120",
        Kind::Modbus,
        "sdm120.toml",
        include_str!("../profiles/sdm120.toml"),
    ),
    (
        "em24",
        Kind::Modbus,
        "em24.toml",
        include_str!("../profiles/em24.toml"),
    ),
    (
        "generic-modbus",
        Kind::Modbus,
        "generic-modbus.toml",
        include_str!("../profiles/generic-modbus.toml"),
    ),
    (
        "shelly-gen1-em",
        Kind::Mqtt,
        "shelly-gen1-em.toml",
        include_str!("../profiles/shelly-gen1-em.toml"),
    ),
    (
        "shelly-gen2-em",
        Kind::Mqtt,
        "shelly-gen2-em.toml",
        include_str!("../profiles/shelly-gen2-em.toml"),
    ),
    (
        "tasmota",
        Kind::Mqtt,
        "tasmota.toml",
        include_str!("../profiles/tasmota.toml"),
    ),
    (
        "opendtu",
        Kind::Mqtt,
        "opendtu.toml",
        include_str!("../profiles/opendtu.toml"),
    ),
    (
        "zigbee2mqtt",
        Kind::Mqtt,
        "zigbee2mqtt.toml",
        include_str!("../profiles/zigbee2mqtt.toml"),
    ),
    (
        "generic-json",
        Kind::Mqtt,
        "generic-json.toml",
        include_str!("../profiles/generic-json.toml"),
    ),
];

#[derive(Debug)]
struct Registry {
    sunspec: SunSpecProfile,
    modbus: Vec<ModbusProfile>,
    mqtt: Vec<MqttProfile>,
}

static REGISTRY: LazyLock<Result<Registry>> = LazyLock::new(load);

fn load() -> Result<Registry> {
    let mut sunspec = None;
    let mut modbus = Vec::new();
    let mut mqtt = Vec::new();
    for (name, kind, file, text) in FILES {
        let invalid = |message: String| Error::InvalidDataFile { file, message };
        let id = match kind {
            Kind::SunSpec => {
                let p: SunSpecProfile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
                let id = p.id.clone();
                sunspec = Some(p);
                id
            }
            Kind::Modbus => {
                let p: ModbusProfile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
                p.check().map_err(invalid)?;
                let id = p.id.clone();
                modbus.push(p);
                id
            }
            Kind::Mqtt => {
                let p: MqttProfile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
                p.check().map_err(invalid)?;
                let id = p.id.clone();
                mqtt.push(p);
                id
            }
        };
        if id != name {
            return Err(invalid(format!("declares id `{id}` instead of `{name}`")));
        }
    }
    let sunspec = sunspec.ok_or_else(|| Error::InvalidDataFile {
        file: "sunspec.toml",
        message: "not embedded".to_string(),
    })?;
    Ok(Registry {
        sunspec,
        modbus,
        mqtt,
    })
}

fn registry() -> Result<&'static Registry> {
    REGISTRY.as_ref().map_err(Clone::clone)
}

/// Names of every profile, as a device's `profile =` names them.
pub fn names() -> Vec<&'static str> {
    FILES.iter().map(|(name, ..)| *name).collect()
}

/// The profile a device's `profile =` names. The error lists the known names.
pub fn lookup(name: &str) -> Result<Profile> {
    let reg = registry()?;
    if name == reg.sunspec.id {
        return Ok(Profile::SunSpec);
    }
    if let Some(p) = reg.modbus.iter().find(|p| p.id == name) {
        return Ok(Profile::Modbus(p));
    }
    if let Some(p) = reg.mqtt.iter().find(|p| p.id == name) {
        return Ok(Profile::Mqtt(p));
    }
    Err(Error::UnknownProfile {
        name: name.to_string(),
        known: names().join(", "),
    })
}

#[cfg(test)]
mod tests;
