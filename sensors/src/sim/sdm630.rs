//! A simulated Eastron SDM630 three-phase meter: float32 input registers (ABCD)
//! at the addresses of the Eastron "SDM630 Modbus Protocol" document.

use super::RegisterImage;
use crate::modbus::{RegisterKind, WordOrder};

/// What the simulated meter measures.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MeterState {
    /// Total system power (W), positive on import.
    pub power_w: f64,
    /// Import active energy (Wh); the meter itself counts kWh.
    pub import_wh: f64,
    /// Export active energy (Wh).
    pub export_wh: f64,
    /// Line-to-neutral voltage (V), the same on the three phases.
    pub voltage_v: f64,
    pub frequency_hz: f64,
}

/// Writes `s` into the input registers, balanced over the three phases.
pub fn write_meter(image: &mut RegisterImage, s: &MeterState) {
    let mut put = |addr: u16, value: f64| {
        image.set_f32(RegisterKind::Input, addr, value as f32, WordOrder::Abcd);
    };
    let phase_w = s.power_w / 3.0;
    let phase_a = if s.voltage_v > 0.0 {
        phase_w.abs() / s.voltage_v
    } else {
        0.0
    };
    put(0x0000, s.voltage_v); // 30001 Phase 1 line to neutral volts
    put(0x0002, s.voltage_v); // 30003 Phase 2 line to neutral volts
    put(0x0004, s.voltage_v); // 30005 Phase 3 line to neutral volts
    put(0x0006, phase_a); // 30007 Phase 1 current
    put(0x0008, phase_a); // 30009 Phase 2 current
    put(0x000A, phase_a); // 30011 Phase 3 current
    put(0x000C, phase_w); // 30013 Phase 1 power
    put(0x000E, phase_w); // 30015 Phase 2 power
    put(0x0010, phase_w); // 30017 Phase 3 power
    put(0x001E, 1.0); // 30031 Phase 1 power factor
    put(0x0020, 1.0); // 30033 Phase 2 power factor
    put(0x0022, 1.0); // 30035 Phase 3 power factor
    put(0x0030, 3.0 * phase_a); // 30049 Sum of line currents
    put(0x0034, s.power_w); // 30053 Total system power
    put(0x0046, s.frequency_hz); // 30071 Frequency of supply voltages
    put(0x0048, s.import_wh / 1000.0); // 30073 Import active energy (kWh)
    put(0x004A, s.export_wh / 1000.0); // 30075 Export active energy (kWh)
    put(0x0156, (s.import_wh + s.export_wh) / 1000.0); // 30343 Total active energy (kWh)
}
