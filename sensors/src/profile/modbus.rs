//! Profiles of Modbus devices with a fixed register map (meters such as the SDM630),
//! and the generic profile whose registers a device's configuration lists.

use serde::{Deserialize, Serialize};

use crate::modbus::{
    MAX_READ_REGISTERS, ReadBlock, RegisterKind, ValueType, WordOrder, decode_value, plan_reads,
    words,
};
use crate::model::{DecodedPoint, Metric, Origin, PowerSign, Sample};

/// A device family read from fixed registers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusProfile {
    pub id: String,
    pub name: String,
    pub power_sign: PowerSign,
    /// Unused registers read through rather than splitting a request: only as many
    /// as the device is known to answer for without an exception.
    #[serde(default = "default_max_gap")]
    pub max_gap: u16,
    /// Registers one request may ask for (the protocol allows 125; some meters less).
    #[serde(default = "default_max_registers")]
    pub max_registers: u16,
    /// Whether the registers come from each device's `registers =` (generic-modbus).
    #[serde(default)]
    pub config_registers: bool,
    #[serde(default)]
    pub registers: Vec<RegisterSpec>,
}

fn default_max_gap() -> u16 {
    8
}

fn default_max_registers() -> u16 {
    MAX_READ_REGISTERS
}

/// One value of the register map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterSpec {
    pub metric: Metric,
    /// `holding` (function code 03) or `input` (04).
    pub kind: RegisterKind,
    /// 0-based protocol address.
    pub address: u16,
    #[serde(rename = "type")]
    pub ty: ValueType,
    /// `ABCD` (high word first) or `CDAB` (word swapped).
    #[serde(default)]
    pub order: WordOrder,
    /// Multiplies the decoded value into the metric's unit (e.g. 1000 for kWh, 0.1
    /// for tenths); a negative scale turns the device's sign around.
    #[serde(default = "one")]
    pub scale: f64,
}

fn one() -> f64 {
    1.0
}

/// Checks a register list; the message names the register at fault.
pub fn check_registers(registers: &[RegisterSpec]) -> Result<(), String> {
    if registers.is_empty() {
        return Err("no registers".to_string());
    }
    for r in registers {
        if u32::from(r.address) + u32::from(r.ty.words()) > 1 << 16 {
            return Err(format!(
                "{} at {:#06x} runs past 0xFFFF",
                r.metric, r.address
            ));
        }
        if !r.scale.is_finite() || r.scale == 0.0 {
            return Err(format!(
                "{} at {:#06x} has scale {}",
                r.metric, r.address, r.scale
            ));
        }
    }
    for (i, r) in registers.iter().enumerate() {
        if registers[..i].iter().any(|q| q.metric == r.metric) {
            return Err(format!("{} is read from two registers", r.metric));
        }
    }
    Ok(())
}

impl ModbusProfile {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.max_registers == 0 || self.max_registers > MAX_READ_REGISTERS {
            return Err(format!(
                "max_registers = {} is not within 1..=125",
                self.max_registers
            ));
        }
        if self.config_registers {
            if !self.registers.is_empty() {
                return Err("a profile with config_registers lists no register".to_string());
            }
            return Ok(());
        }
        check_registers(&self.registers)
    }

    /// This profile for one device: the generic profile takes the device's own
    /// registers; a fixed profile refuses them.
    pub fn for_device(&self, registers: &[RegisterSpec]) -> Result<ModbusProfile, String> {
        match (self.config_registers, registers.is_empty()) {
            (true, true) => Err(format!(
                "profile `{}` needs `registers = [{{ metric = \"power_w\", kind = \"holding\", address = 0, type = \"int16\" }}]`",
                self.id
            )),
            (true, false) => {
                check_registers(registers)?;
                Ok(ModbusProfile {
                    registers: registers.to_vec(),
                    config_registers: false,
                    ..self.clone()
                })
            }
            (false, false) => Err(format!(
                "profile `{}` has a fixed register map; remove `registers`",
                self.id
            )),
            (false, true) => Ok(self.clone()),
        }
    }

    /// The read transactions that fetch every register of the profile.
    pub fn read_plan(&self) -> Vec<ReadBlock> {
        plan_reads(
            self.registers
                .iter()
                .map(|r| (r.kind, r.address, r.ty.words())),
            self.max_gap,
            self.max_registers,
        )
    }

    /// Decodes the blocks read (by [`Self::read_plan`] or otherwise). A value whose
    /// block is missing (exception, short response) or that decodes to NaN or
    /// infinity is left out, never reported as zero.
    pub fn decode(&self, blocks: &[(ReadBlock, Vec<u16>)]) -> Vec<Sample> {
        self.decode_points(blocks)
            .into_iter()
            .map(|p| p.sample)
            .collect()
    }

    /// [`Self::decode`], each value with the registers it came from.
    pub fn decode_points(&self, blocks: &[(ReadBlock, Vec<u16>)]) -> Vec<DecodedPoint> {
        self.registers
            .iter()
            .filter_map(|r| {
                let w = words(blocks, r.kind, r.address, r.ty.words())?;
                let v = decode_value(r.ty, r.order, w)? * r.scale;
                v.is_finite().then(|| DecodedPoint {
                    sample: Sample::new(r.metric, v),
                    origin: Origin::Modbus {
                        kind: r.kind,
                        address: r.address,
                        count: r.ty.words(),
                        point: None,
                        scale_address: None,
                    },
                })
            })
            .collect()
    }

    /// Every register kind the profile reads.
    pub fn kinds(&self) -> Vec<RegisterKind> {
        let mut k: Vec<RegisterKind> = self.registers.iter().map(|r| r.kind).collect();
        k.sort_unstable();
        k.dedup();
        k
    }
}
