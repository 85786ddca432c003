//! A simulated device of the generic Modbus profile: writes each configured
//! register from a value, the way a device would encode it.

use super::RegisterImage;
use crate::model::Metric;
use crate::profile::RegisterSpec;

/// Writes `values` (in the metric's unit) through `registers`' types, orders and
/// scales. Metrics without a register are ignored.
pub fn write_registers(
    image: &mut RegisterImage,
    registers: &[RegisterSpec],
    values: &[(Metric, f64)],
) {
    for (metric, value) in values {
        for r in registers.iter().filter(|r| r.metric == *metric) {
            image.set_value(r.kind, r.address, r.ty, r.order, value / r.scale);
        }
    }
}
