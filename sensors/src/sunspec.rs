//! SunSpec (<https://sunspec.org>): where a device's register map starts, how its
//! model headers chain, and the decoding of the models Communalia understands,
//! whose definitions are data files under `sensors/profiles/sunspec/`.
//!
//! A SunSpec map is the marker `SunS` at one of [`BASES`], followed by models, each
//! an `[ID, L]` header and `L` registers of body, until the end model [`END_ID`].
//! Integer models carry scale-factor points: value = raw x 10^SF, and any raw value
//! or scale factor equal to its type's "not implemented" sentinel makes the value
//! missing, never zero.

use std::sync::LazyLock;

use serde::Deserialize;

use crate::modbus::{
    MAX_READ_REGISTERS, ReadBlock, RegisterKind, ValueType, decode_sunspec_value, plan_reads,
};
use crate::model::{DecodedPoint, Metric, Origin, PowerSign, Role, Sample};
use crate::{Error, Result};

/// Where discovery looks for the marker, in this order (SunSpec Device Information
/// Model Specification: 40000 is standard, 0 and 50000 are the alternatives).
pub const BASES: [u16; 3] = [40000, 0, 50000];

/// `SunS` in ASCII, the two registers at the base address.
pub const MARKER: [u16; 2] = [0x5375, 0x6E53];

/// Model ID of the end model that closes the map (its L is 0).
pub const END_ID: u16 = 0xFFFF;

/// Whether `words` starts with the `SunS` marker.
pub fn is_marker(words: &[u16]) -> bool {
    words.starts_with(&MARKER)
}

/// Operating states of inverter models 101-103 (`St`, enum16).
pub mod operating_state {
    pub const OFF: u16 = 1;
    pub const SLEEPING: u16 = 2;
    pub const STARTING: u16 = 3;
    pub const MPPT: u16 = 4;
    pub const THROTTLED: u16 = 5;
    pub const SHUTTING_DOWN: u16 = 6;
    pub const FAULT: u16 = 7;
    pub const STANDBY: u16 = 8;
}

/// A model header as found while walking the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelHeader {
    pub id: u16,
    /// Number of registers in the model body (`L`).
    pub length: u16,
    /// Address of the ID register.
    pub address: u16,
}

impl ModelHeader {
    /// Reads a header from the two words at `address`.
    pub fn parse(address: u16, words: &[u16]) -> Option<ModelHeader> {
        match words {
            [id, length, ..] => Some(ModelHeader {
                id: *id,
                length: *length,
                address,
            }),
            _ => None,
        }
    }

    pub fn is_end(&self) -> bool {
        self.id == END_ID
    }

    /// Address of the first body register.
    pub fn body_address(&self) -> u16 {
        self.address.saturating_add(2)
    }

    /// Address of the next model's header. Saturates at 0xFFFF so that a walker
    /// comparing addresses never loops back to the start of the space.
    pub fn next_address(&self) -> u16 {
        self.address.saturating_add(2).saturating_add(self.length)
    }
}

/// The type of a point in a model definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PointType {
    Int16,
    Uint16,
    Int32,
    Uint32,
    Acc32,
    Float32,
    Uint64,
    Sunssf,
    Enum16,
    Bitfield16,
    Bitfield32,
    String,
    Pad,
}

impl PointType {
    /// The register encoding whose sentinel marks the point "not implemented".
    fn value_type(self) -> Option<ValueType> {
        Some(match self {
            PointType::Int16 | PointType::Sunssf => ValueType::Int16,
            PointType::Uint16 | PointType::Enum16 | PointType::Bitfield16 => ValueType::Uint16,
            PointType::Int32 => ValueType::Int32,
            PointType::Uint32 | PointType::Bitfield32 => ValueType::Uint32,
            PointType::Acc32 => ValueType::Acc32,
            PointType::Float32 => ValueType::Float32,
            PointType::Uint64 => ValueType::Uint64,
            PointType::String | PointType::Pad => return None,
        })
    }
}

/// One point of a model definition.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointDef {
    /// The point's name in the SunSpec model (`W`, `WH`, `PhVphA`...).
    pub name: String,
    /// Counted from the model's ID register; the body starts at 2.
    pub offset: u16,
    #[serde(rename = "type")]
    pub ty: PointType,
    /// Registers, for strings.
    #[serde(default)]
    pub size: Option<u16>,
    /// Name of the scale-factor point.
    #[serde(default)]
    pub sf: Option<String>,
    /// The canonical metric this point is reported as, if any.
    #[serde(default)]
    pub metric: Option<Metric>,
}

impl PointDef {
    pub fn words(&self) -> u16 {
        match (self.ty, self.ty.value_type()) {
            (PointType::String, _) => self.size.unwrap_or(1),
            (_, Some(v)) => v.words(),
            (_, None) => 1,
        }
    }

    /// Index of the point's first register in the model body.
    fn body_index(&self) -> usize {
        usize::from(self.offset.saturating_sub(2))
    }

    fn slice<'b>(&self, body: &'b [u16]) -> Option<&'b [u16]> {
        let from = self.body_index();
        body.get(from..from + usize::from(self.words()))
    }
}

/// A SunSpec model definition, loaded from `sensors/profiles/sunspec/model_<id>.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDef {
    pub id: u16,
    pub name: String,
    /// The model's nominal `L`.
    pub length: u16,
    /// How the model counts its `W` point, for models that have one: inverters
    /// and DER models count delivered power, meters imported power.
    #[serde(default)]
    pub power_sign: Option<PowerSign>,
    pub points: Vec<PointDef>,
}

impl ModelDef {
    pub fn point(&self, name: &str) -> Option<&PointDef> {
        self.points.iter().find(|p| p.name == name)
    }

    /// Body registers a device must provide: up to the last point that is not
    /// padding (model 1 may omit its trailing Pad: L = 65 or 66).
    pub fn min_length(&self) -> usize {
        self.points
            .iter()
            .filter(|p| p.ty != PointType::Pad)
            .map(|p| p.body_index() + usize::from(p.words()))
            .max()
            .unwrap_or(0)
    }

    fn check(&self) -> std::result::Result<(), String> {
        for p in &self.points {
            if p.offset < 2 {
                return Err(format!("point {} lies in the model header", p.name));
            }
            if p.body_index() + usize::from(p.words()) > usize::from(self.length) {
                return Err(format!("point {} ends past L = {}", p.name, self.length));
            }
            if let Some(sf) = &p.sf {
                match self.point(sf) {
                    Some(s) if s.ty == PointType::Sunssf => {}
                    _ => {
                        return Err(format!(
                            "point {} names a missing scale factor {sf}",
                            p.name
                        ));
                    }
                }
            }
            if p.metric.is_some() && matches!(p.ty, PointType::String | PointType::Pad) {
                return Err(format!("point {} has a metric but no number", p.name));
            }
        }
        Ok(())
    }
}

macro_rules! model_files {
    ($($id:literal),* $(,)?) => {
        [$((
            $id,
            concat!("sunspec/model_", $id, ".toml"),
            include_str!(concat!("../profiles/sunspec/model_", $id, ".toml")),
        )),*]
    };
}

/// Every model definition this crate decodes (data files generated from the SunSpec
/// models by `profiles/sunspec/from_pysunspec2.py`).
const MODEL_FILES: [(u16, &str, &str); 18] = model_files![
    1, 101, 102, 103, 111, 112, 113, 123, 124, 201, 202, 203, 204, 211, 212, 213, 214, 701
];

static MODELS: LazyLock<Result<Vec<ModelDef>>> = LazyLock::new(|| {
    MODEL_FILES
        .iter()
        .map(|&(id, file, text)| {
            let invalid = |message: String| Error::InvalidDataFile { file, message };
            let def: ModelDef = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
            if def.id != id {
                return Err(invalid(format!(
                    "declares model {} instead of {id}",
                    def.id
                )));
            }
            def.check().map_err(invalid)?;
            Ok(def)
        })
        .collect()
});

fn models() -> Result<&'static [ModelDef]> {
    MODELS.as_deref().map_err(Clone::clone)
}

/// The definition of a model this crate can decode.
pub fn model_definition(id: u16) -> Option<&'static ModelDef> {
    models().ok()?.iter().find(|m| m.id == id)
}

/// Whether [`decode_model`] understands model `id`.
pub fn supported(id: u16) -> bool {
    model_definition(id).is_some()
}

/// Names of well-known models, so that a probe can say what it found even when it
/// cannot decode it (SunSpec model tables).
const KNOWN_MODEL_NAMES: &[(u16, &str)] = &[
    (1, "Common"),
    (2, "Basic Aggregator"),
    (11, "Ethernet Link Layer"),
    (101, "Inverter (Single Phase)"),
    (102, "Inverter (Split Phase)"),
    (103, "Inverter (Three Phase)"),
    (111, "Inverter (Single Phase, float)"),
    (112, "Inverter (Split Phase, float)"),
    (113, "Inverter (Three Phase, float)"),
    (120, "Nameplate"),
    (121, "Basic Settings"),
    (122, "Measurements and Status"),
    (123, "Immediate Controls"),
    (124, "Storage"),
    (160, "Multiple MPPT Inverter Extension"),
    (201, "Meter (Single Phase)"),
    (202, "Meter (Split Phase)"),
    (203, "Meter (Wye, Three Phase)"),
    (204, "Meter (Delta, Three Phase)"),
    (211, "Meter (Single Phase, float)"),
    (212, "Meter (Split Phase, float)"),
    (213, "Meter (Wye, Three Phase, float)"),
    (214, "Meter (Delta, Three Phase, float)"),
    (701, "DER AC Measurement"),
    (802, "Battery Base"),
    (END_ID, "End"),
];

/// A human name for model `id`, for the models this crate decodes and other
/// well-known ones.
pub fn model_name(id: u16) -> Option<&'static str> {
    KNOWN_MODEL_NAMES
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, n)| *n)
        .or_else(|| model_definition(id).map(|m| m.name.as_str()))
}

/// One numeric point of a model body, scaled; `None` when not implemented.
#[derive(Debug, Clone, PartialEq)]
pub struct PointValue {
    pub name: &'static str,
    pub metric: Option<Metric>,
    pub value: Option<f64>,
}

/// raw x 10^sf, dividing for negative factors so that 12345 with SF -1 is exactly
/// 1234.5. The specification limits scale factors to -10..=10; anything else is
/// treated as not implemented.
fn apply_sf(raw: f64, sf: i16) -> Option<f64> {
    if !(-10..=10).contains(&sf) {
        return None;
    }
    let factor = 10f64.powi(i32::from(sf.unsigned_abs()));
    Some(if sf < 0 { raw / factor } else { raw * factor })
}

fn definition_for(id: u16, length: usize) -> Result<&'static ModelDef> {
    let def = models()?
        .iter()
        .find(|m| m.id == id)
        .ok_or(Error::UnsupportedModel(id))?;
    let need = def.min_length();
    if length < need {
        return Err(Error::ShortModel {
            id,
            got: length,
            need,
        });
    }
    Ok(def)
}

/// Where a model's registers come from: `get(index, n)` gives body registers
/// `index .. index + n`, or `None` when they were not read.
trait Body<'a> {
    fn get(&self, index: usize, n: usize) -> Option<&'a [u16]>;
}

impl<'a> Body<'a> for &'a [u16] {
    fn get(&self, index: usize, n: usize) -> Option<&'a [u16]> {
        <[u16]>::get(self, index..index + n)
    }
}

/// A model body inside the blocks read from a device.
struct InBlocks<'a> {
    blocks: &'a [(ReadBlock, Vec<u16>)],
    body_address: u16,
}

impl<'a> Body<'a> for InBlocks<'a> {
    fn get(&self, index: usize, n: usize) -> Option<&'a [u16]> {
        let addr = u16::try_from(usize::from(self.body_address) + index).ok()?;
        crate::modbus::words(
            self.blocks,
            RegisterKind::Holding,
            addr,
            u16::try_from(n).ok()?,
        )
    }
}

/// Every numeric point of model `id` (scale factors applied, scale-factor points
/// themselves left out), for an installer's raw view.
pub fn decode_points(id: u16, body: &[u16]) -> Result<Vec<PointValue>> {
    let def = definition_for(id, body.len())?;
    Ok(def
        .points
        .iter()
        .filter(|p| !matches!(p.ty, PointType::Sunssf | PointType::String | PointType::Pad))
        .map(|p| PointValue {
            name: p.name.as_str(),
            metric: p.metric,
            value: point_value(def, p, &body),
        })
        .collect())
}

fn point_value<'a>(def: &ModelDef, p: &PointDef, body: &impl Body<'a>) -> Option<f64> {
    let words = body.get(p.body_index(), usize::from(p.words()))?;
    let raw = decode_sunspec_value(p.ty.value_type()?, words)?;
    match &p.sf {
        None => Some(raw),
        Some(sf_name) => {
            let sf_point = def.point(sf_name)?;
            let sf = decode_sunspec_value(ValueType::Int16, body.get(sf_point.body_index(), 1)?)?;
            // An int16 decoded to f64 converts back exactly.
            apply_sf(raw, sf as i16)
        }
    }
}

/// Decodes the body (the `L` registers after the header) of model `id` into
/// samples, in the device's own sign convention. Points that are not implemented
/// are left out.
pub fn decode_model(id: u16, body: &[u16]) -> Result<Vec<Sample>> {
    let def = definition_for(id, body.len())?;
    Ok(def
        .points
        .iter()
        .filter_map(|p| {
            let metric = p.metric?;
            point_value(def, p, &body).map(|v| Sample::new(metric, v))
        })
        .collect())
}

/// The registers of `header`'s model that carry a canonical metric, with their
/// scale factors: what a poll must read. Absolute `(address, count)` pairs.
pub fn metric_registers(header: &ModelHeader) -> Result<Vec<(u16, u16)>> {
    let def = definition_for(header.id, usize::from(header.length))?;
    let mut out = Vec::new();
    for p in def.points.iter().filter(|p| p.metric.is_some()) {
        let at = |q: &PointDef| {
            u16::try_from(usize::from(header.body_address()) + q.body_index())
                .ok()
                .map(|a| (a, q.words()))
        };
        out.extend(at(p));
        if let Some(sf) = p.sf.as_deref().and_then(|n| def.point(n)) {
            out.extend(at(sf));
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Decodes the metric points of `header`'s model from the blocks read, each with
/// the registers it came from.
pub fn decode_model_in(
    header: &ModelHeader,
    blocks: &[(ReadBlock, Vec<u16>)],
) -> Result<Vec<DecodedPoint>> {
    let def = definition_for(header.id, usize::from(header.length))?;
    let body = InBlocks {
        blocks,
        body_address: header.body_address(),
    };
    let address = |q: &PointDef| {
        u16::try_from(usize::from(header.body_address()) + q.body_index()).unwrap_or(u16::MAX)
    };
    Ok(def
        .points
        .iter()
        .filter_map(|p| {
            let metric = p.metric?;
            let value = point_value(def, p, &body)?;
            Some(DecodedPoint {
                sample: Sample::new(metric, value),
                origin: Origin::Modbus {
                    kind: RegisterKind::Holding,
                    address: address(p),
                    count: p.words(),
                    point: Some(format!("{}.{}", header.id, p.name)),
                    scale_address: p.sf.as_deref().and_then(|n| def.point(n)).map(address),
                },
            })
        })
        .collect())
}

/// A discovered SunSpec map: where it starts and the models it lists, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SunSpecMap {
    pub base: u16,
    pub models: Vec<ModelHeader>,
}

/// Why a discovered map cannot be polled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SunSpec device has no model this node decodes (found: {found})")]
pub struct NothingToPoll {
    pub found: String,
}

/// What to read from a SunSpec device each poll, and how to decode it.
#[derive(Debug, Clone, PartialEq)]
pub struct SunSpecPlan {
    /// The models decoded, in map order (model 1 is read once, at discovery).
    pub models: Vec<ModelHeader>,
    /// Models found but not decoded, with why (unsupported, or too short).
    pub skipped: Vec<(ModelHeader, String)>,
    pub blocks: Vec<ReadBlock>,
    /// The sign convention of the first decoded model that has one.
    pub power_sign: Option<PowerSign>,
}

/// What a SunSpec model measures, for choosing the models that read a device of a
/// given role: an inverter with the grid meter behind it holds both kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFamily {
    /// 101-103, 111-113 (inverters), 123 (its controls), 701 (DER AC measurements).
    Inverter,
    /// 201-204, 211-214 (meters).
    Meter,
    /// 124 (storage).
    Storage,
}

impl ModelFamily {
    pub fn of(id: u16) -> Option<ModelFamily> {
        match id {
            101..=103 | 111..=113 | 123 | 701 => Some(ModelFamily::Inverter),
            201..=204 | 211..=214 => Some(ModelFamily::Meter),
            124 => Some(ModelFamily::Storage),
            _ => None,
        }
    }

    /// The families that measure a device of `role`, the first preferred: an
    /// inverter's own output for PV, a meter for the grid and loads, storage (and
    /// the battery inverter's power) for a battery.
    pub fn for_role(role: Role) -> &'static [ModelFamily] {
        match role {
            Role::Pv => &[ModelFamily::Inverter],
            Role::Grid | Role::Load => &[ModelFamily::Meter],
            Role::Battery => &[ModelFamily::Storage, ModelFamily::Inverter],
        }
    }

    /// The role a device read through this family usually has, for the probe's
    /// suggestions.
    pub fn usual_role(self) -> Role {
        match self {
            ModelFamily::Inverter => Role::Pv,
            ModelFamily::Meter => Role::Grid,
            ModelFamily::Storage => Role::Battery,
        }
    }
}

/// Which of a map's models a device is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelChoice {
    /// Every decodable model; the first in the map wins a metric.
    All,
    /// The models of the role's families (see [`ModelFamily::for_role`]); every
    /// model when the map has none of them.
    Role(Role),
    /// That model alone (`sunspec_model = 203`).
    Model(u16),
}

impl SunSpecMap {
    /// Plans the poll over every decodable model; see [`SunSpecMap::poll_plan_for`].
    pub fn poll_plan(&self) -> Result<SunSpecPlan, NothingToPoll> {
        self.poll_plan_for(ModelChoice::All)
    }

    /// Plans the poll: the metric points of the chosen models, read in the fewest
    /// transactions. Registers between them lie inside the map, which a SunSpec
    /// device must answer for, so any gap is read through when that saves a
    /// request. The chosen models come first in the plan, so they win a metric
    /// two models both report.
    pub fn poll_plan_for(&self, choice: ModelChoice) -> Result<SunSpecPlan, NothingToPoll> {
        let candidates: Vec<&ModelHeader> = self
            .models
            .iter()
            .filter(|m| m.id != 1 && !m.is_end())
            .collect();
        let chosen: Vec<&ModelHeader> = match choice {
            ModelChoice::All => candidates.clone(),
            ModelChoice::Model(id) => candidates.iter().copied().filter(|m| m.id == id).collect(),
            ModelChoice::Role(role) => {
                let by_family: Vec<&ModelHeader> = ModelFamily::for_role(role)
                    .iter()
                    .flat_map(|family| {
                        candidates
                            .iter()
                            .copied()
                            .filter(move |m| ModelFamily::of(m.id) == Some(*family))
                    })
                    .collect();
                if by_family.is_empty() {
                    candidates.clone()
                } else {
                    by_family
                }
            }
        };
        if let ModelChoice::Model(id) = choice
            && chosen.is_empty()
        {
            let found: Vec<String> = candidates.iter().map(|m| m.id.to_string()).collect();
            return Err(NothingToPoll {
                found: format!(
                    "{} (sunspec_model = {id} is not among them)",
                    found.join(", ")
                ),
            });
        }
        let mut models = Vec::new();
        let mut skipped = Vec::new();
        let mut ranges = Vec::new();
        for m in chosen {
            match metric_registers(m) {
                Ok(regs) => {
                    ranges.extend(regs.into_iter().map(|(a, n)| (RegisterKind::Holding, a, n)));
                    models.push(*m);
                }
                Err(e) => skipped.push((*m, e.to_string())),
            }
        }
        if models.is_empty() {
            let found: Vec<String> = self.models.iter().map(|m| m.id.to_string()).collect();
            return Err(NothingToPoll {
                found: found.join(", "),
            });
        }
        let power_sign = models
            .iter()
            .filter_map(|m| model_definition(m.id))
            .find(|d| d.points.iter().any(|p| p.metric == Some(Metric::PowerW)))
            .and_then(|d| d.power_sign);
        Ok(SunSpecPlan {
            blocks: plan_reads(ranges, MAX_READ_REGISTERS, MAX_READ_REGISTERS),
            models,
            skipped,
            power_sign,
        })
    }
}

impl SunSpecPlan {
    /// Decodes one poll. When two models report the same metric (an inverter and
    /// the meter behind it), the first in the map wins: it is the device's own.
    pub fn decode(&self, blocks: &[(ReadBlock, Vec<u16>)]) -> Vec<DecodedPoint> {
        let mut out: Vec<DecodedPoint> = Vec::new();
        for m in &self.models {
            // Plans only hold models whose definitions exist and fit.
            for p in decode_model_in(m, blocks).unwrap_or_default() {
                if !out.iter().any(|q| q.sample.metric == p.sample.metric) {
                    out.push(p);
                }
            }
        }
        out
    }
}

/// What model 1 says about the device.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommonInfo {
    pub manufacturer: String,
    pub model: String,
    pub options: String,
    pub version: String,
    pub serial: String,
    pub device_address: Option<u16>,
}

/// Two ASCII characters per register, high byte first; the string ends at the first
/// NUL, and surrounding spaces are trimmed.
fn decode_string(words: &[u16]) -> String {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim().to_string()
}

/// Decodes a model 1 body. Strings missing from a short body come back empty.
pub fn decode_common(body: &[u16]) -> CommonInfo {
    let Some(def) = model_definition(1) else {
        return CommonInfo::default();
    };
    let string = |name: &str| {
        def.point(name)
            .map(|p| {
                let from = p.body_index().min(body.len());
                let to = (p.body_index() + usize::from(p.words())).min(body.len());
                decode_string(&body[from..to])
            })
            .unwrap_or_default()
    };
    CommonInfo {
        manufacturer: string("Mn"),
        model: string("Md"),
        options: string("Opt"),
        version: string("Vr"),
        serial: string("SN"),
        device_address: def
            .point("DA")
            .and_then(|p| decode_sunspec_value(ValueType::Uint16, p.slice(body)?))
            // A decoded uint16 converts back exactly.
            .map(|v| v as u16),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_103() -> Vec<u16> {
        // Everything unimplemented, then the points a test sets.
        let mut body = vec![0xFFFF; 50];
        for sf in [6, 13, 15, 17, 19, 21, 23, 26, 28, 30, 32, 37] {
            body[sf - 2] = 0x8000;
        }
        for int16 in [14, 18, 20, 22, 31, 33, 34, 35, 36] {
            body[int16 - 2] = 0x8000;
        }
        body[24 - 2] = 0;
        body[25 - 2] = 0;
        body
    }

    fn set(body: &mut [u16], offset: usize, v: u16) {
        body[offset - 2] = v;
    }

    fn value(samples: &[Sample], m: Metric) -> Option<f64> {
        samples.iter().find(|s| s.metric == m).map(|s| s.value)
    }

    #[test]
    fn every_model_file_loads_and_matches_the_specified_offsets() {
        for (id, _, _) in MODEL_FILES {
            assert!(supported(id), "model {id}");
        }
        let m103 = model_definition(103).expect("103");
        assert_eq!(m103.length, 50);
        assert_eq!(m103.min_length(), 50);
        for (name, offset) in [
            ("A", 2),
            ("A_SF", 6),
            ("PhVphA", 10),
            ("V_SF", 13),
            ("W", 14),
            ("W_SF", 15),
            ("Hz", 16),
            ("WH", 24),
            ("WH_SF", 26),
            ("TmpCab", 33),
            ("Tmp_SF", 37),
            ("St", 38),
            ("StVnd", 39),
        ] {
            assert_eq!(m103.point(name).map(|p| p.offset), Some(offset), "{name}");
        }
        let m1 = model_definition(1).expect("1");
        assert_eq!(m1.min_length(), 65);
        assert_eq!(
            m1.point("SN").map(|p| (p.offset, p.words())),
            Some((50, 16))
        );
        assert_eq!(model_name(103), Some("Inverter (Three Phase)"));
        assert_eq!(model_name(203), Some("Meter (Wye, Three Phase)"));
        assert_eq!(model_name(64000), None);
        for id in [
            111, 112, 113, 123, 124, 201, 202, 203, 204, 211, 212, 213, 214, 701,
        ] {
            assert!(supported(id), "model {id}");
        }
        assert!(!supported(160));
        assert_eq!(
            model_definition(203).and_then(|m| m.power_sign),
            Some(PowerSign::Consumption)
        );
        assert_eq!(
            model_definition(113).and_then(|m| m.power_sign),
            Some(PowerSign::Generation)
        );
    }

    #[test]
    fn scale_factors_apply_including_negative_ones() {
        let mut body = body_103();
        set(&mut body, 14, 12345); // W
        set(&mut body, 15, (-1i16) as u16); // W_SF
        set(&mut body, 10, 2304); // PhVphA
        set(&mut body, 11, 2311);
        set(&mut body, 12, 2299);
        set(&mut body, 13, (-1i16) as u16); // V_SF
        set(&mut body, 16, 5001); // Hz
        set(&mut body, 17, (-2i16) as u16);
        set(&mut body, 24, 0x0001); // WH = 0x0001_86A0 = 100000
        set(&mut body, 25, 0x86A0);
        set(&mut body, 26, 1); // WH_SF: x10
        set(&mut body, 33, (-52i16) as u16); // TmpCab -5.2 C
        set(&mut body, 37, (-1i16) as u16);
        set(&mut body, 38, operating_state::MPPT);
        let s = decode_model(103, &body).expect("decode");
        assert_eq!(value(&s, Metric::PowerW), Some(1234.5));
        assert_eq!(value(&s, Metric::VoltageL1V), Some(230.4));
        assert_eq!(value(&s, Metric::VoltageL2V), Some(231.1));
        assert_eq!(value(&s, Metric::VoltageL3V), Some(229.9));
        assert_eq!(value(&s, Metric::FrequencyHz), Some(50.01));
        assert_eq!(value(&s, Metric::EnergyExportWh), Some(1_000_000.0));
        assert_eq!(value(&s, Metric::TemperatureC), Some(-5.2));
        assert_eq!(value(&s, Metric::Status), Some(4.0));
    }

    #[test]
    fn sentinels_make_values_missing_not_zero() {
        let mut body = body_103();
        // W implemented but its scale factor is not: missing.
        set(&mut body, 14, 1000);
        // Hz has a scale factor but the value is the uint16 sentinel: missing.
        set(&mut body, 17, 0);
        // TmpCab is int16 0x8000 already; Tmp_SF valid.
        set(&mut body, 37, 0);
        let s = decode_model(103, &body).expect("decode");
        assert_eq!(s, vec![], "nothing implemented, nothing reported");

        // A negative power with a valid SF is a value, not a sentinel.
        set(&mut body, 15, 0);
        set(&mut body, 14, (-20i16) as u16);
        let s = decode_model(103, &body).expect("decode");
        assert_eq!(s, vec![Sample::new(Metric::PowerW, -20.0)]);
    }

    #[test]
    fn single_phase_inverters_report_voltage_v() {
        let mut body = body_103();
        set(&mut body, 10, 231);
        set(&mut body, 13, 0);
        let s = decode_model(101, &body).expect("decode");
        assert_eq!(s, vec![Sample::new(Metric::VoltageV, 231.0)]);
    }

    #[test]
    fn short_and_unknown_models_are_errors() {
        assert_eq!(
            decode_model(103, &[0; 10]),
            Err(Error::ShortModel {
                id: 103,
                got: 10,
                need: 50
            })
        );
        assert_eq!(
            decode_model(160, &[0; 60]),
            Err(Error::UnsupportedModel(160))
        );
    }

    #[test]
    fn common_model_strings_are_trimmed() {
        let mut body = vec![0u16; 66];
        let put = |body: &mut Vec<u16>, offset: usize, s: &str| {
            for (i, pair) in s.as_bytes().chunks(2).enumerate() {
                let hi = u16::from(pair[0]) << 8;
                let lo = pair.get(1).map(|b| u16::from(*b)).unwrap_or(0);
                body[offset - 2 + i] = hi | lo;
            }
        };
        put(&mut body, 2, "Fronius ");
        put(&mut body, 18, "Symo 8.2-3-M");
        put(&mut body, 42, "1.2.3");
        put(&mut body, 50, "  12345678");
        body[66 - 2] = 1;
        let info = decode_common(&body);
        assert_eq!(info.manufacturer, "Fronius");
        assert_eq!(info.model, "Symo 8.2-3-M");
        assert_eq!(info.options, "");
        assert_eq!(info.version, "1.2.3");
        assert_eq!(info.serial, "12345678");
        assert_eq!(info.device_address, Some(1));
        // A 65-register body (no Pad) is compliant; a shorter one loses what is cut.
        assert_eq!(decode_common(&body[..65]).serial, "12345678");
        assert_eq!(decode_common(&body[..52]).serial, "123456");
    }

    #[test]
    fn headers_chain() {
        let h = ModelHeader::parse(40002, &[1, 66]).expect("header");
        assert_eq!(h.body_address(), 40004);
        assert_eq!(h.next_address(), 40070);
        assert!(!h.is_end());
        assert!(ModelHeader::parse(0, &[END_ID, 0]).is_some_and(|h| h.is_end()));
        assert!(is_marker(&[0x5375, 0x6E53, 1]));
        assert!(!is_marker(&[0x5375]));
    }
}
