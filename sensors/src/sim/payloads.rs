//! Payloads of simulated MQTT devices other than Shelly's: Tasmota telemetry,
//! OpenDTU inverter values and Zigbee2MQTT metering plugs, as their firmwares
//! publish them.

use serde_json::json;

/// Tasmota's `tele/<topic>/SENSOR` with an ENERGY object; one `power_w` item per
/// channel gives the per-channel array of multi-channel devices.
pub fn tasmota_energy(power_w: &[f64], total_kwh: f64, voltage_v: f64) -> String {
    let power = match power_w {
        [one] => json!(one),
        many => json!(many),
    };
    json!({
        "Time": "2024-05-01T12:00:00",
        "ENERGY": {
            "TotalStartTime": "2023-01-01T00:00:00",
            "Total": total_kwh,
            "Yesterday": 1.234,
            "Today": 0.567,
            "Period": 2,
            "Power": power,
            "ApparentPower": power_w.iter().sum::<f64>().abs(),
            "ReactivePower": 0,
            "Factor": 1.0,
            "Voltage": voltage_v,
            "Current": power_w.iter().map(|p| p.abs() / voltage_v.max(1.0)).sum::<f64>(),
        }
    })
    .to_string()
}

/// Tasmota's `tele/<topic>/SENSOR` from an SML reader script whose meter is `SML`.
pub fn tasmota_sml(power_w: f64, total_in_kwh: f64, total_out_kwh: f64) -> String {
    json!({
        "Time": "2024-05-01T12:00:00",
        "SML": { "Total_in": total_in_kwh, "Total_out": total_out_kwh, "Power_curr": power_w, "Meter_number": "0a01445a" }
    })
    .to_string()
}

/// OpenDTU's per-inverter topics under `<base>/<serial>` (`topic`), AC channel 0:
/// `(topic, payload)` pairs of plain numbers.
pub fn opendtu_messages(
    topic: &str,
    power_w: f64,
    yield_total_kwh: f64,
    voltage_v: f64,
) -> Vec<(String, String)> {
    let t = topic.trim_end_matches('/');
    vec![
        (format!("{t}/0/power"), format!("{power_w:.1}")),
        (format!("{t}/0/yieldtotal"), format!("{yield_total_kwh:.3}")),
        (format!("{t}/0/voltage"), format!("{voltage_v:.1}")),
        (
            format!("{t}/0/current"),
            format!("{:.2}", power_w / voltage_v.max(1.0)),
        ),
        (format!("{t}/0/frequency"), "50.00".to_string()),
        (format!("{t}/0/temperature"), "31.4".to_string()),
        (format!("{t}/0/powerdc"), format!("{:.1}", power_w / 0.96)),
        (format!("{t}/status/producing"), "1".to_string()),
    ]
}

/// The state a Zigbee2MQTT metering plug publishes on `zigbee2mqtt/<name>`.
pub fn zigbee2mqtt_plug(power_w: f64, energy_kwh: f64, voltage_v: f64) -> String {
    json!({
        "state": "ON",
        "power": power_w,
        "energy": energy_kwh,
        "voltage": voltage_v,
        "current": (power_w / voltage_v.max(1.0) * 100.0).round() / 100.0,
        "linkquality": 116,
        "update": { "state": "idle" }
    })
    .to_string()
}
