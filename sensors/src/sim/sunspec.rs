//! A simulated SunSpec three-phase inverter: marker, common model 1, inverter
//! model 103 (integer + scale factors) and the end model, in holding registers.

use super::RegisterImage;
use crate::modbus::{RegisterKind, WordOrder};
use crate::sunspec::{END_ID, MARKER, ModelHeader, PointType, model_definition};

/// Length of the common model as written (with its Pad register).
const COMMON_LENGTH: u16 = 66;
/// Length of model 103.
const INVERTER_LENGTH: u16 = 50;

pub const MANUFACTURER: &str = "Communalia";
pub const MODEL: &str = "SimInverter";
pub const SERIAL: &str = "SIM-0001";

// Fixed scale factors, chosen so that the demo's values fit the int16/uint16
// points: W_SF 0 keeps up to 32 kW at 1 W resolution (a community roof is larger
// than the 3.2 kW W_SF -1 would allow).
const A_SF: i16 = -2;
const V_SF: i16 = -1;
const W_SF: i16 = 0;
const HZ_SF: i16 = -2;
const VA_SF: i16 = 0;
const VAR_SF: i16 = 0;
const PF_SF: i16 = -1;
const WH_SF: i16 = 0;
const DCA_SF: i16 = -2;
const DCV_SF: i16 = -1;
const DCW_SF: i16 = 0;
const TMP_SF: i16 = -1;

/// What the simulated inverter reports.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct InverterState {
    /// AC power produced (W).
    pub power_w: f64,
    /// Lifetime energy produced (Wh). SunSpec reads an acc32 of 0 as "not
    /// implemented", so a fresh simulator should start above zero.
    pub energy_wh: f64,
    /// Phase-to-neutral voltage (V), the same on the three phases.
    pub voltage_v: f64,
    pub frequency_hz: f64,
    /// Cabinet temperature (°C).
    pub temperature_c: f64,
    /// Operating state, see [`crate::sunspec::operating_state`].
    pub status: u16,
}

/// Header of the inverter model in an image built at `base`.
pub fn inverter_header(base: u16) -> ModelHeader {
    ModelHeader {
        id: 103,
        length: INVERTER_LENGTH,
        address: base.wrapping_add(2 + 2 + COMMON_LENGTH),
    }
}

/// Writes the static part of the map at `base` (holding registers): marker, model 1
/// naming the simulator, the model 103 header with its scale factors and
/// unimplemented points, and the end model.
pub fn build_inverter_image(image: &mut RegisterImage, base: u16) {
    let h = RegisterKind::Holding;
    image.set_words(h, base, &MARKER);
    let common = base.wrapping_add(2);
    image.set_words(h, common, &[1, COMMON_LENGTH]);
    let body = common.wrapping_add(2);
    image.set_string(h, body, MANUFACTURER, 16); // Mn
    image.set_string(h, body.wrapping_add(16), MODEL, 16); // Md
    image.set_string(h, body.wrapping_add(32), "", 8); // Opt
    image.set_string(h, body.wrapping_add(40), env!("CARGO_PKG_VERSION"), 8); // Vr
    image.set_string(h, body.wrapping_add(48), SERIAL, 16); // SN
    image.set_u16(h, body.wrapping_add(64), 1); // DA
    image.set_u16(h, body.wrapping_add(65), 0); // Pad

    let inv = inverter_header(base);
    image.set_words(h, inv.address, &[inv.id, inv.length]);
    let at = |offset: u16| inv.address.wrapping_add(offset);
    for (offset, sf) in [
        (6, A_SF),
        (13, V_SF),
        (15, W_SF),
        (17, HZ_SF),
        (19, VA_SF),
        (21, VAR_SF),
        (23, PF_SF),
        (26, WH_SF),
        (28, DCA_SF),
        (30, DCV_SF),
        (32, DCW_SF),
        (37, TMP_SF),
    ] {
        image.set_i16(h, at(offset), sf);
    }
    // Not implemented by the simulator: int16 0x8000, enum16 0xFFFF, bitfield32
    // 0xFFFFFFFF (SunSpec sentinels).
    for offset in [34, 35, 36] {
        image.set_u16(h, at(offset), 0x8000); // TmpSnk, TmpTrns, TmpOt
    }
    image.set_u16(h, at(39), 0xFFFF); // StVnd
    for offset in [44, 46, 48, 50] {
        image.set_u32(h, at(offset), 0xFFFF_FFFF, WordOrder::Abcd); // EvtVnd1-4
    }
    image.set_u32(h, at(40), 0, WordOrder::Abcd); // Evt1: no event
    image.set_u32(h, at(42), 0, WordOrder::Abcd); // Evt2: no event

    let end = inv.next_address();
    image.set_words(h, end, &[END_ID, 0]);
    write_inverter(image, base, &InverterState::default());
}

/// raw = value / 10^sf, rounded into the point's type by the image.
fn scaled(value: f64, sf: i16) -> f64 {
    value * 10f64.powi(-i32::from(sf))
}

/// Writes the measured points of model 103 from `s`.
pub fn write_inverter(image: &mut RegisterImage, base: u16, s: &InverterState) {
    use crate::modbus::ValueType::{Acc32, Int16, Uint16};
    let h = RegisterKind::Holding;
    let at = |offset: u16| inverter_header(base).address.wrapping_add(offset);
    let mut put = |offset: u16, ty, value: f64, sf: i16| {
        image.set_value(h, at(offset), ty, WordOrder::Abcd, scaled(value, sf));
    };
    let ac = s.power_w.max(0.0);
    let phase_a = if s.voltage_v > 0.0 {
        ac / (3.0 * s.voltage_v)
    } else {
        0.0
    };
    put(2, Uint16, 3.0 * phase_a, A_SF); // A
    put(3, Uint16, phase_a, A_SF); // AphA
    put(4, Uint16, phase_a, A_SF); // AphB
    put(5, Uint16, phase_a, A_SF); // AphC
    let line_line = s.voltage_v * 3f64.sqrt();
    put(7, Uint16, line_line, V_SF); // PPVphAB
    put(8, Uint16, line_line, V_SF); // PPVphBC
    put(9, Uint16, line_line, V_SF); // PPVphCA
    put(10, Uint16, s.voltage_v, V_SF); // PhVphA
    put(11, Uint16, s.voltage_v, V_SF); // PhVphB
    put(12, Uint16, s.voltage_v, V_SF); // PhVphC
    put(14, Int16, s.power_w, W_SF); // W
    put(16, Uint16, s.frequency_hz, HZ_SF); // Hz
    put(18, Int16, s.power_w.abs(), VA_SF); // VA: unity power factor
    put(20, Int16, 0.0, VAR_SF); // VAr
    put(22, Int16, 100.0, PF_SF); // PF (%)
    // acc32 wraps at 2^32 like a real accumulator.
    put(24, Acc32, s.energy_wh.max(0.0) % 4_294_967_296.0, WH_SF); // WH
    // DC side of a string inverter at 97 % efficiency and a typical MPP voltage.
    let dc_w = ac / 0.97;
    let dc_v = if ac > 0.0 { 620.0 } else { 0.0 };
    put(
        27,
        Uint16,
        if dc_v > 0.0 { dc_w / dc_v } else { 0.0 },
        DCA_SF,
    ); // DCA
    put(29, Uint16, dc_v, DCV_SF); // DCV
    put(31, Int16, dc_w, DCW_SF); // DCW
    put(33, Int16, s.temperature_c, TMP_SF); // TmpCab
    image.set_u16(h, at(38), s.status); // St
}

/// Lays out a SunSpec map at `base` (holding registers): the marker, one header per
/// `(id, length)` with its body filled with "not implemented" sentinels, and the
/// end model. Returns the headers, for [`write_model`].
pub fn build_map(image: &mut RegisterImage, base: u16, models: &[(u16, u16)]) -> Vec<ModelHeader> {
    let h = RegisterKind::Holding;
    image.set_words(h, base, &MARKER);
    let mut at = base.wrapping_add(2);
    let mut headers = Vec::new();
    for &(id, length) in models {
        let header = ModelHeader {
            id,
            length,
            address: at,
        };
        image.set_words(h, at, &[id, length]);
        if let Some(def) = model_definition(id) {
            for p in &def.points {
                let words = unimplemented(p.ty, p.words());
                image.set_words(h, at.wrapping_add(p.offset), &words);
            }
        }
        headers.push(header);
        at = header.next_address();
    }
    image.set_words(h, at, &[END_ID, 0]);
    headers
}

/// The "not implemented" value of a point type (SunSpec Information Model
/// Specification; pysunspec2's `SUNS_UNIMPL_*`).
fn unimplemented(ty: PointType, words: u16) -> Vec<u16> {
    let n = usize::from(words);
    match ty {
        PointType::Int16 | PointType::Sunssf => vec![0x8000],
        PointType::Uint16 | PointType::Enum16 | PointType::Bitfield16 => vec![0xFFFF],
        PointType::Int32 => vec![0x8000, 0],
        PointType::Uint32 | PointType::Bitfield32 => vec![0xFFFF; 2],
        PointType::Acc32 => vec![0, 0],
        PointType::Float32 => vec![0x7FC0, 0],
        PointType::Uint64 => vec![0xFFFF; 4],
        PointType::String | PointType::Pad => vec![0; n],
    }
}

fn fits(ty: PointType, raw: f64) -> bool {
    // The sentinel itself is not a value.
    match ty {
        PointType::Int16 => (-32767.0..=32767.0).contains(&raw),
        PointType::Uint16 | PointType::Enum16 | PointType::Bitfield16 => {
            (0.0..=65534.0).contains(&raw)
        }
        PointType::Int32 => (-2_147_483_647.0..=2_147_483_647.0).contains(&raw),
        PointType::Uint32 | PointType::Bitfield32 => (0.0..=4_294_967_294.0).contains(&raw),
        PointType::Acc32 => (1.0..=4_294_967_295.0).contains(&raw),
        PointType::Uint64 => (0.0..=9.0e15).contains(&raw),
        PointType::Float32 => raw.is_finite(),
        PointType::Sunssf | PointType::String | PointType::Pad => false,
    }
}

/// Writes the named points of a model laid out by [`build_map`]; points not named
/// stay "not implemented". Each scale factor is chosen as the smallest (finest)
/// one, from -3 up, with which every value sharing it fits its type, unless the
/// scale factor itself is given (`("W_SF", -1.0)`). Errors name the point.
pub fn write_model(
    image: &mut RegisterImage,
    header: &ModelHeader,
    values: &[(&str, f64)],
) -> Result<(), String> {
    use crate::modbus::ValueType;
    let h = RegisterKind::Holding;
    let def = model_definition(header.id)
        .ok_or_else(|| format!("model {} has no definition", header.id))?;
    let given = |name: &str| values.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let mut sfs: Vec<(&str, i16)> = Vec::new();
    for sf_point in def.points.iter().filter(|p| p.ty == PointType::Sunssf) {
        let users: Vec<(PointType, f64)> = def
            .points
            .iter()
            .filter(|p| p.sf.as_deref() == Some(sf_point.name.as_str()))
            .filter_map(|p| given(&p.name).map(|v| (p.ty, v)))
            .collect();
        let sf = match given(&sf_point.name) {
            // A scale factor is a small integer by definition.
            Some(v) => v as i16,
            None if users.is_empty() => continue,
            None => (-3i16..=6)
                .find(|&sf| {
                    users
                        .iter()
                        .all(|(ty, v)| fits(*ty, (v * 10f64.powi(-i32::from(sf))).round()))
                })
                .ok_or_else(|| {
                    format!(
                        "model {}: no scale factor fits {}'s points",
                        header.id, sf_point.name
                    )
                })?,
        };
        sfs.push((sf_point.name.as_str(), sf));
        image.set_i16(h, header.address.wrapping_add(sf_point.offset), sf);
    }
    for (name, v) in values {
        let p = def
            .point(name)
            .ok_or_else(|| format!("model {} has no point {name}", header.id))?;
        if p.ty == PointType::Sunssf {
            continue;
        }
        let sf =
            p.sf.as_deref()
                .and_then(|s| sfs.iter().find(|(n, _)| *n == s))
                .map_or(0, |(_, sf)| *sf);
        let raw = if p.ty == PointType::Float32 {
            *v
        } else {
            (v * 10f64.powi(-i32::from(sf))).round()
        };
        if !fits(p.ty, raw) {
            return Err(format!(
                "model {}: {name} = {v} does not fit its type",
                header.id
            ));
        }
        let ty = match p.ty {
            PointType::Int16 => ValueType::Int16,
            PointType::Uint16 | PointType::Enum16 | PointType::Bitfield16 => ValueType::Uint16,
            PointType::Int32 => ValueType::Int32,
            PointType::Uint32 | PointType::Bitfield32 => ValueType::Uint32,
            PointType::Acc32 => ValueType::Acc32,
            PointType::Float32 => ValueType::Float32,
            PointType::Uint64 => ValueType::Uint64,
            PointType::Sunssf | PointType::String | PointType::Pad => {
                return Err(format!("model {}: {name} is not a number", header.id));
            }
        };
        image.set_value(
            h,
            header.address.wrapping_add(p.offset),
            ty,
            WordOrder::Abcd,
            raw,
        );
    }
    Ok(())
}

/// Writes model 1's strings and device address.
pub fn write_common(
    image: &mut RegisterImage,
    header: &ModelHeader,
    manufacturer: &str,
    model: &str,
    serial: &str,
) {
    let h = RegisterKind::Holding;
    let body = header.body_address();
    image.set_string(h, body, manufacturer, 16); // Mn
    image.set_string(h, body.wrapping_add(16), model, 16); // Md
    image.set_string(h, body.wrapping_add(32), "", 8); // Opt
    image.set_string(h, body.wrapping_add(40), env!("CARGO_PKG_VERSION"), 8); // Vr
    image.set_string(h, body.wrapping_add(48), serial, 16); // SN
    image.set_u16(h, body.wrapping_add(64), 1); // DA
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{Metric, Sample};
    use crate::sunspec::{self, BASES, is_marker, operating_state};

    pub(crate) fn assert_inverter_samples(samples: &[Sample], s: &InverterState) {
        let get = |m| {
            samples
                .iter()
                .find(|x| x.metric == m)
                .map(|x| x.value)
                .unwrap_or_else(|| panic!("{m} missing from {samples:?}"))
        };
        assert!((get(Metric::PowerW) - s.power_w).abs() <= 0.5);
        assert!((get(Metric::EnergyExportWh) - s.energy_wh).abs() <= 0.5);
        for m in [Metric::VoltageL1V, Metric::VoltageL2V, Metric::VoltageL3V] {
            assert!((get(m) - s.voltage_v).abs() <= 0.05, "{m}");
        }
        assert!((get(Metric::FrequencyHz) - s.frequency_hz).abs() <= 0.005);
        assert!((get(Metric::TemperatureC) - s.temperature_c).abs() <= 0.05);
        assert_eq!(get(Metric::Status), f64::from(s.status));
        let expected_a = s.power_w / s.voltage_v;
        assert!((get(Metric::CurrentA) - expected_a).abs() <= 0.02);
    }

    #[test]
    fn the_image_walks_like_a_sunspec_device_and_decodes_to_its_state() {
        let mut img = RegisterImage::new();
        let base = BASES[0];
        build_inverter_image(&mut img, base);
        let s = InverterState {
            power_w: 6543.0,
            energy_wh: 12_345_678.0,
            voltage_v: 231.4,
            frequency_hz: 49.98,
            temperature_c: 41.3,
            status: operating_state::MPPT,
        };
        write_inverter(&mut img, base, &s);

        let h = RegisterKind::Holding;
        assert!(is_marker(img.read(h, base, 2).expect("marker")));
        let mut addr = base + 2;
        let mut found = Vec::new();
        loop {
            let header =
                ModelHeader::parse(addr, img.read(h, addr, 2).expect("header")).expect("header");
            if header.is_end() {
                break;
            }
            let body = img
                .read(h, header.body_address(), header.length)
                .expect("body");
            found.push(header.id);
            match header.id {
                1 => {
                    let info = sunspec::decode_common(body);
                    assert_eq!(info.manufacturer, MANUFACTURER);
                    assert_eq!(info.model, MODEL);
                    assert_eq!(info.serial, SERIAL);
                }
                103 => assert_inverter_samples(&sunspec::decode_model(103, body).expect("103"), &s),
                other => panic!("unexpected model {other}"),
            }
            addr = header.next_address();
        }
        assert_eq!(found, vec![1, 103]);
        assert_eq!(addr, base + 122);
    }
}
