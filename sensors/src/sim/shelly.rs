//! Payloads of a simulated Shelly Pro 3EM (Gen2+), as it publishes them on
//! `<prefix>/status/em:0` and `<prefix>/status/emdata:0` (Shelly API docs,
//! EM.GetStatus and EMData.GetStatus).

use serde_json::json;

/// How the simulated load spreads over the three phases; a real building is never
/// balanced.
const PHASE_SHARES: [f64; 3] = [0.40, 0.35, 0.25];
/// Voltage offsets of phases B and C from phase A (V).
const PHASE_VOLTAGE_OFFSETS: [f64; 3] = [0.0, 0.6, -0.4];
const POWER_FACTOR: f64 = 0.97;

fn round(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

/// Splits `total` over the phases so that the rounded phase values add up to it.
fn split(total: f64, decimals: i32) -> [f64; 3] {
    let a = round(total * PHASE_SHARES[0], decimals);
    let b = round(total * PHASE_SHARES[1], decimals);
    [a, b, round(total - a - b, decimals)]
}

/// The `em:0` status: per-phase current, voltage, active and apparent power, power
/// factor and frequency, and the totals; `total_act_power` is `power_w`.
pub fn gen2_em_status(power_w: f64, voltage_v: f64) -> String {
    let act = split(power_w, 1);
    let mut doc = serde_json::Map::new();
    doc.insert("id".into(), json!(0));
    let mut total_current = 0.0;
    let mut total_aprt = 0.0;
    for (i, phase) in ["a", "b", "c"].into_iter().enumerate() {
        let v = round(voltage_v + PHASE_VOLTAGE_OFFSETS[i], 1);
        let aprt = round(act[i].abs() / POWER_FACTOR, 1);
        let current = if v > 0.0 { round(aprt / v, 3) } else { 0.0 };
        total_current += current;
        total_aprt += aprt;
        doc.insert(format!("{phase}_current"), json!(current));
        doc.insert(format!("{phase}_voltage"), json!(v));
        doc.insert(format!("{phase}_act_power"), json!(act[i]));
        doc.insert(format!("{phase}_aprt_power"), json!(aprt));
        doc.insert(
            format!("{phase}_pf"),
            json!(if act[i] == 0.0 { 0.0 } else { POWER_FACTOR }),
        );
        doc.insert(format!("{phase}_freq"), json!(50.0));
    }
    // The Pro 3EM without a neutral CT reports no neutral current.
    doc.insert("n_current".into(), serde_json::Value::Null);
    doc.insert("total_current".into(), json!(round(total_current, 3)));
    doc.insert("total_act_power".into(), json!(round(power_w, 3)));
    doc.insert("total_aprt_power".into(), json!(round(total_aprt, 3)));
    doc.insert("user_calibrated_phase".into(), json!([]));
    serde_json::Value::Object(doc).to_string()
}

/// The `emdata:0` status: per-phase and total active energy, consumed and
/// returned, in Wh.
pub fn gen2_emdata(total_act_wh: f64, total_act_ret_wh: f64) -> String {
    let act = split(total_act_wh, 2);
    let ret = split(total_act_ret_wh, 2);
    json!({
        "id": 0,
        "a_total_act_energy": act[0],
        "a_total_act_ret_energy": ret[0],
        "b_total_act_energy": act[1],
        "b_total_act_ret_energy": ret[1],
        "c_total_act_energy": act[2],
        "c_total_act_ret_energy": ret[2],
        "total_act": round(total_act_wh, 2),
        "total_act_ret": round(total_act_ret_wh, 2),
    })
    .to_string()
}

/// One measuring channel of a Shelly EM / 3EM (Gen1).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Gen1Channel {
    pub power_w: f64,
    pub total_wh: f64,
    pub total_returned_wh: f64,
    pub voltage_v: f64,
}

/// What a Shelly EM / 3EM (Gen1) with MQTT enabled publishes for its channels,
/// under `topic` (`shellies/<model>-<id>`): `(topic, plain-number payload)` pairs.
pub fn gen1_em_messages(topic: &str, channels: &[Gen1Channel]) -> Vec<(String, String)> {
    let t = topic.trim_end_matches('/');
    let mut out = Vec::new();
    for (i, c) in channels.iter().enumerate() {
        let pf = if c.power_w == 0.0 { 0.0 } else { POWER_FACTOR };
        out.push((format!("{t}/emeter/{i}/power"), format!("{:.2}", c.power_w)));
        out.push((format!("{t}/emeter/{i}/reactive_power"), "0.00".to_string()));
        out.push((format!("{t}/emeter/{i}/pf"), format!("{pf:.2}")));
        out.push((
            format!("{t}/emeter/{i}/voltage"),
            format!("{:.2}", c.voltage_v),
        ));
        out.push((
            format!("{t}/emeter/{i}/total"),
            format!("{:.1}", c.total_wh),
        ));
        out.push((
            format!("{t}/emeter/{i}/total_returned"),
            format!("{:.1}", c.total_returned_wh),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_add_up_to_the_totals() {
        let v: serde_json::Value =
            serde_json::from_str(&gen2_em_status(2484.7, 236.1)).expect("json");
        let n = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        assert_eq!(n("total_act_power"), 2484.7);
        let sum = n("a_act_power") + n("b_act_power") + n("c_act_power");
        assert!((sum - 2484.7).abs() < 0.05, "{sum}");
        assert_eq!(n("a_voltage"), 236.1);
        assert!(v["n_current"].is_null());
        let e: serde_json::Value =
            serde_json::from_str(&gen2_emdata(8174150.16, 12.5)).expect("json");
        assert_eq!(e["total_act"].as_f64(), Some(8174150.16));
        assert_eq!(e["total_act_ret"].as_f64(), Some(12.5));
    }
}
