//! A simulated Eastron SDM120 single-phase meter: float32 input registers (ABCD)
//! at the addresses of the Eastron "SDM120 Modbus Protocol" document.

use super::RegisterImage;
use super::sdm630::MeterState;
use crate::modbus::{RegisterKind, WordOrder};

/// Writes `s` into the input registers.
pub fn write_meter(image: &mut RegisterImage, s: &MeterState) {
    let mut put = |addr: u16, value: f64| {
        image.set_f32(RegisterKind::Input, addr, value as f32, WordOrder::Abcd);
    };
    let current = if s.voltage_v > 0.0 {
        s.power_w.abs() / s.voltage_v
    } else {
        0.0
    };
    put(0x0000, s.voltage_v); // 30001 Voltage
    put(0x0006, current); // 30007 Current
    put(0x000C, s.power_w); // 30013 Active power
    put(0x0012, s.power_w.abs()); // 30019 Apparent power
    put(0x0018, 0.0); // 30025 Reactive power
    put(0x001E, 1.0); // 30031 Power factor
    put(0x0046, s.frequency_hz); // 30071 Frequency
    put(0x0048, s.import_wh / 1000.0); // 30073 Import active energy (kWh)
    put(0x004A, s.export_wh / 1000.0); // 30075 Export active energy (kWh)
    put(0x0156, (s.import_wh + s.export_wh) / 1000.0); // 30343 Total active energy (kWh)
}
