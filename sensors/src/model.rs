//! The vocabulary every other crate speaks: roles, canonical metrics, samples and
//! the site sign convention (DESIGN.md §2).

use serde::{Deserialize, Serialize};

/// What a device is to the community's bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Pv,
    Grid,
    Battery,
    Load,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Pv => "pv",
            Role::Grid => "grid",
            Role::Battery => "battery",
            Role::Load => "load",
        }
    }

    /// The factor that turns a device's own `power_w` into the site bus view:
    /// positive into the bus for pv, grid (import) and battery (discharge),
    /// positive when consuming for a load.
    pub fn bus_sign(self, convention: PowerSign) -> f64 {
        match (self, convention) {
            (Role::Pv | Role::Battery, PowerSign::Generation)
            | (Role::Grid | Role::Load, PowerSign::Consumption) => 1.0,
            _ => -1.0,
        }
    }
}

/// How a device family counts its own power: an inverter counts what it produces
/// (`generation`), a meter counts what flows through it towards the load side
/// (`consumption`: import on a grid meter, draw on a sub-meter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerSign {
    Generation,
    Consumption,
}

/// Canonical metric names (DESIGN.md §2). Extend, never rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    #[serde(rename = "power_w")]
    PowerW,
    #[serde(rename = "energy_import_wh")]
    EnergyImportWh,
    #[serde(rename = "energy_export_wh")]
    EnergyExportWh,
    #[serde(rename = "voltage_v")]
    VoltageV,
    #[serde(rename = "voltage_l1_v")]
    VoltageL1V,
    #[serde(rename = "voltage_l2_v")]
    VoltageL2V,
    #[serde(rename = "voltage_l3_v")]
    VoltageL3V,
    #[serde(rename = "current_a")]
    CurrentA,
    #[serde(rename = "frequency_hz")]
    FrequencyHz,
    #[serde(rename = "soc_pct")]
    SocPct,
    #[serde(rename = "temperature_c")]
    TemperatureC,
    #[serde(rename = "power_limit_pct")]
    PowerLimitPct,
    #[serde(rename = "status")]
    Status,
    /// What a service asked of the community's power (recorded for `service:<id>`).
    #[serde(rename = "demand_w")]
    DemandW,
    /// What the allocation gave a service (recorded for `service:<id>`).
    #[serde(rename = "allocated_w")]
    AllocatedW,
    /// 1 while the allocation sheds a service that asks for power, else 0.
    #[serde(rename = "shed")]
    Shed,
}

impl Metric {
    pub const ALL: [Metric; 16] = [
        Metric::PowerW,
        Metric::EnergyImportWh,
        Metric::EnergyExportWh,
        Metric::VoltageV,
        Metric::VoltageL1V,
        Metric::VoltageL2V,
        Metric::VoltageL3V,
        Metric::CurrentA,
        Metric::FrequencyHz,
        Metric::SocPct,
        Metric::TemperatureC,
        Metric::PowerLimitPct,
        Metric::Status,
        Metric::DemandW,
        Metric::AllocatedW,
        Metric::Shed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::PowerW => "power_w",
            Metric::EnergyImportWh => "energy_import_wh",
            Metric::EnergyExportWh => "energy_export_wh",
            Metric::VoltageV => "voltage_v",
            Metric::VoltageL1V => "voltage_l1_v",
            Metric::VoltageL2V => "voltage_l2_v",
            Metric::VoltageL3V => "voltage_l3_v",
            Metric::CurrentA => "current_a",
            Metric::FrequencyHz => "frequency_hz",
            Metric::SocPct => "soc_pct",
            Metric::TemperatureC => "temperature_c",
            Metric::PowerLimitPct => "power_limit_pct",
            Metric::Status => "status",
            Metric::DemandW => "demand_w",
            Metric::AllocatedW => "allocated_w",
            Metric::Shed => "shed",
        }
    }

    pub fn parse(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decoded value, in the device's own sign convention and the metric's unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub metric: Metric,
    pub value: f64,
}

impl Sample {
    pub fn new(metric: Metric, value: f64) -> Self {
        Sample { metric, value }
    }
}

/// A decoded value and where it came from, so that an installer can see the value
/// next to the registers or the payload field it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedPoint {
    pub sample: Sample,
    pub origin: Origin,
}

/// The source of a decoded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// `count` registers of `kind` from `address`; `point` names the SunSpec point
    /// (`103.W`) or is absent for fixed profiles; `scale_address` is the register of
    /// its SunSpec scale factor.
    Modbus {
        kind: crate::modbus::RegisterKind,
        address: u16,
        count: u16,
        point: Option<String>,
        scale_address: Option<u16>,
    },
    /// A JSON path of a payload received on `topic` (empty path: the whole payload).
    Mqtt { topic: String, path: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_round_trip_through_serde_and_parse() {
        for m in Metric::ALL {
            let json = serde_json::to_string(&m).expect("serialize");
            assert_eq!(json, format!("\"{}\"", m.as_str()));
            assert_eq!(Metric::parse(m.as_str()), Some(m));
        }
    }

    #[test]
    fn bus_sign_follows_the_site_convention() {
        // A grid meter counting import as positive is already in the bus view.
        assert_eq!(Role::Grid.bus_sign(PowerSign::Consumption), 1.0);
        // A meter on a battery counts charging as positive: discharge must be positive.
        assert_eq!(Role::Battery.bus_sign(PowerSign::Consumption), -1.0);
        assert_eq!(Role::Pv.bus_sign(PowerSign::Generation), 1.0);
        assert_eq!(Role::Load.bus_sign(PowerSign::Generation), -1.0);
    }
}
