//! A simulated Carlo Gavazzi EM24 DIN meter: INT32 values least significant word
//! first, at the addresses of the "EM24 DIN Communication protocol" document.

use super::RegisterImage;
use super::sdm630::MeterState;
use crate::modbus::{RegisterKind, ValueType, WordOrder};

/// Writes `s` into the holding registers, balanced over the three phases.
pub fn write_meter(image: &mut RegisterImage, s: &MeterState) {
    let h = RegisterKind::Holding;
    let mut int32 = |addr: u16, value: f64| {
        image.set_value(h, addr, ValueType::Int32, WordOrder::Cdab, value);
    };
    let phase_w = s.power_w / 3.0;
    let phase_a = if s.voltage_v > 0.0 {
        phase_w.abs() / s.voltage_v
    } else {
        0.0
    };
    let line_line = s.voltage_v * 3f64.sqrt();
    for (i, addr) in [0x0000u16, 0x0002, 0x0004].into_iter().enumerate() {
        int32(addr, s.voltage_v * 10.0); // V L1-N .. V L3-N (Volt*10)
        int32(0x0006 + 2 * i as u16, line_line * 10.0); // V L1-L2 .. V L3-L1
        int32(0x000C + 2 * i as u16, phase_a * 1000.0); // A L1 .. A L3 (Ampere*1000)
        int32(0x0012 + 2 * i as u16, phase_w * 10.0); // W L1 .. W L3 (Watt*10)
    }
    int32(0x0024, s.voltage_v * 10.0); // V L-N sys
    int32(0x0026, line_line * 10.0); // V L-L sys
    int32(0x0028, s.power_w * 10.0); // W sys (Watt*10)
    image.set_value(h, 0x0031, ValueType::Int16, WordOrder::Abcd, 1000.0); // PF sys (PF*1000)
    image.set_value(
        h,
        0x0033,
        ValueType::Int16,
        WordOrder::Abcd,
        s.frequency_hz * 10.0,
    ); // Hz (Hz*10)
    image.set_value(
        h,
        0x0034,
        ValueType::Int32,
        WordOrder::Cdab,
        s.import_wh / 100.0,
    ); // kWh (+) TOT (kWh*10)
    image.set_value(
        h,
        0x004E,
        ValueType::Int32,
        WordOrder::Cdab,
        s.export_wh / 100.0,
    ); // kWh (-) TOT (kWh*10)
}
