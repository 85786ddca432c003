//! Profiles of Modbus devices with a fixed register map (meters such as the SDM630).

use serde::Deserialize;

use crate::modbus::{
    ReadBlock, RegisterKind, ValueType, WordOrder, decode_value, plan_reads, words,
};
use crate::model::{Metric, PowerSign, Sample};

/// A device family read from fixed registers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusProfile {
    pub id: String,
    pub name: String,
    pub power_sign: PowerSign,
    /// Unused registers read through rather than splitting a request.
    #[serde(default = "default_max_gap")]
    pub max_gap: u16,
    pub registers: Vec<RegisterSpec>,
}

fn default_max_gap() -> u16 {
    8
}

/// One value of the register map.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterSpec {
    pub metric: Metric,
    pub kind: RegisterKind,
    /// 0-based protocol address.
    pub address: u16,
    #[serde(rename = "type")]
    pub ty: ValueType,
    #[serde(default)]
    pub order: WordOrder,
    /// Multiplies the decoded value into the metric's unit (e.g. 1000 for kWh).
    #[serde(default = "one")]
    pub scale: f64,
}

fn one() -> f64 {
    1.0
}

impl ModbusProfile {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.registers.is_empty() {
            return Err("no registers".to_string());
        }
        for r in &self.registers {
            if u32::from(r.address) + u32::from(r.ty.words()) > 1 << 16 {
                return Err(format!(
                    "{} at {:#06x} runs past 0xFFFF",
                    r.metric, r.address
                ));
            }
            if !r.scale.is_finite() || r.scale == 0.0 {
                return Err(format!("{} has scale {}", r.metric, r.scale));
            }
        }
        Ok(())
    }

    /// The read transactions that fetch every register of the profile.
    pub fn read_plan(&self) -> Vec<ReadBlock> {
        plan_reads(
            self.registers
                .iter()
                .map(|r| (r.kind, r.address, r.ty.words())),
            self.max_gap,
        )
    }

    /// Decodes the blocks read (by [`Self::read_plan`] or otherwise). A value whose
    /// block is missing (exception, short response) or that decodes to NaN or
    /// infinity is left out, never reported as zero.
    pub fn decode(&self, blocks: &[(ReadBlock, Vec<u16>)]) -> Vec<Sample> {
        self.registers
            .iter()
            .filter_map(|r| {
                let w = words(blocks, r.kind, r.address, r.ty.words())?;
                let v = decode_value(r.ty, r.order, w)? * r.scale;
                v.is_finite().then(|| Sample::new(r.metric, v))
            })
            .collect()
    }
}
