use proptest::prelude::*;

use super::*;
use crate::config::MqttDeviceConfig;
use crate::modbus::ReadBlock;
use crate::model::{Metric, Sample};
use crate::sim::RegisterImage;
use crate::sim::sdm630::{MeterState, write_meter};
use crate::sim::shelly::{gen2_em_status, gen2_emdata};
use crate::sim::sunspec::{InverterState, build_inverter_image, inverter_header, write_inverter};
use crate::sunspec;

fn device(text: &str) -> MqttDeviceConfig {
    toml::from_str(text).expect("device mqtt config")
}

fn value(samples: &[Sample], m: Metric) -> Option<f64> {
    samples.iter().find(|s| s.metric == m).map(|s| s.value)
}

fn mqtt(name: &str) -> &'static MqttProfile {
    match lookup(name) {
        Ok(Profile::Mqtt(p)) => p,
        other => panic!("{name} is not an MQTT profile: {other:?}"),
    }
}

/// Reads a Modbus profile's plan out of a register image, as a client would.
fn read_from(image: &RegisterImage, plan: Vec<ReadBlock>) -> Vec<(ReadBlock, Vec<u16>)> {
    plan.into_iter()
        .map(|b| {
            (
                b,
                image
                    .read(b.kind, b.start, b.count)
                    .expect("in range")
                    .to_vec(),
            )
        })
        .collect()
}

#[test]
fn every_profile_loads_and_decodes_its_simulator() {
    assert!(names().len() >= 4);
    for name in names() {
        let profile = lookup(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(profile.id(), name);
        let samples = match (name, profile) {
            ("sunspec", Profile::SunSpec) => {
                let mut image = RegisterImage::new();
                build_inverter_image(&mut image, 40000);
                let state = InverterState {
                    power_w: 5000.0,
                    energy_wh: 1e6,
                    voltage_v: 230.0,
                    frequency_hz: 50.0,
                    temperature_c: 30.0,
                    status: sunspec::operating_state::MPPT,
                };
                write_inverter(&mut image, 40000, &state);
                let h = inverter_header(40000);
                let body = image
                    .read(
                        crate::modbus::RegisterKind::Holding,
                        h.body_address(),
                        h.length,
                    )
                    .expect("body");
                sunspec::decode_model(h.id, body).expect("decode")
            }
            ("sdm630", Profile::Modbus(p)) => {
                let mut image = RegisterImage::new();
                let state = MeterState {
                    power_w: 1200.0,
                    import_wh: 5e6,
                    export_wh: 2e6,
                    voltage_v: 231.0,
                    frequency_hz: 50.0,
                };
                write_meter(&mut image, &state);
                let samples = p.decode(&read_from(&image, p.read_plan()));
                assert_eq!(samples.len(), p.registers.len(), "every register decodes");
                assert_eq!(value(&samples, Metric::EnergyImportWh), Some(5e6));
                samples
            }
            ("shelly-gen2-em", Profile::Mqtt(p)) => {
                let dev = device("topic = \"shellypro3em-abc\"");
                let subs = p.subscriptions(&dev);
                assert_eq!(
                    subs,
                    vec![
                        "shellypro3em-abc/status/em:0",
                        "shellypro3em-abc/status/emdata:0"
                    ]
                );
                let mut samples = p
                    .decode(&dev, &subs[0], gen2_em_status(2484.7, 236.1).as_bytes())
                    .expect("em:0");
                assert_eq!(value(&samples, Metric::PowerW), Some(2484.7));
                assert_eq!(value(&samples, Metric::VoltageL1V), Some(236.1));
                assert!(value(&samples, Metric::CurrentA).is_some());
                samples.extend(
                    p.decode(&dev, &subs[1], gen2_emdata(8174150.16, 42.0).as_bytes())
                        .expect("emdata:0"),
                );
                assert_eq!(value(&samples, Metric::EnergyImportWh), Some(8174150.16));
                assert_eq!(value(&samples, Metric::EnergyExportWh), Some(42.0));
                samples
            }
            ("generic-json", Profile::Mqtt(p)) => {
                // The demo battery's payload, read the way the demo configures it.
                let dev = device(
                    "topic = \"demo/battery\"\nfields = { power_w = \"power_w\", soc_pct = { path = \"soc_pct\", scale = 1.0 } }",
                );
                p.check_device(&dev).expect("valid device");
                assert_eq!(p.subscriptions(&dev), vec!["demo/battery"]);
                let samples = p
                    .decode(
                        &dev,
                        "demo/battery",
                        br#"{"power_w": -1500.5, "soc_pct": 64.2}"#,
                    )
                    .expect("decode");
                assert_eq!(value(&samples, Metric::PowerW), Some(-1500.5));
                assert_eq!(value(&samples, Metric::SocPct), Some(64.2));
                samples
            }
            (name, _) => panic!("profile {name} has no simulator check: add one here"),
        };
        assert!(
            samples.iter().any(|s| s.metric == Metric::PowerW),
            "{name} reports no power: {samples:?}"
        );
    }
}

#[test]
fn sign_conventions_and_transports() {
    let sign = |n| lookup(n).map(|p| p.power_sign()).expect("profile");
    assert_eq!(sign("sunspec"), PowerSign::Generation);
    assert_eq!(sign("sdm630"), PowerSign::Consumption);
    assert_eq!(sign("shelly-gen2-em"), PowerSign::Consumption);
    assert_eq!(sign("generic-json"), PowerSign::Consumption);
    let transport = |n| lookup(n).map(|p| p.transport()).expect("profile");
    assert_eq!(transport("sunspec"), Transport::Modbus);
    assert_eq!(transport("sdm630"), Transport::Modbus);
    assert_eq!(transport("shelly-gen2-em"), Transport::Mqtt);
}

#[test]
fn unknown_profiles_are_named_with_the_known_ones() {
    let err = lookup("sdm360").expect_err("unknown");
    let msg = err.to_string();
    assert!(msg.contains("`sdm360`"), "{msg}");
    for name in names() {
        assert!(msg.contains(name), "{msg}");
    }
}

#[test]
fn shelly_payload_errors_say_what_is_wrong() {
    let p = mqtt("shelly-gen2-em");
    let dev = device("topic = \"shellypro3em-abc/\"");
    let em = "shellypro3em-abc/status/em:0";
    let msg = |payload: &[u8], topic: &str| {
        p.decode(&dev, topic, payload)
            .expect_err("rejected")
            .to_string()
    };
    assert!(msg(b"{\"total_act", em).starts_with("payload is not JSON: "));
    assert!(msg(&[0xFF, 0xFE, 0x00], em).starts_with("payload is not JSON: "));
    assert_eq!(
        msg(br#"{"a_voltage": 230}"#, em),
        "field `total_act_power` missing"
    );
    assert_eq!(
        msg(br#"{"total_act_power": "lots"}"#, em),
        "field `total_act_power` is not a number"
    );
    assert_eq!(
        msg(br#"{"total_act_power": 12, "a_voltage": [1]}"#, em),
        "field `a_voltage` is not a number"
    );
    assert!(
        msg(b"{}", "shellypro3em-abc/status/switch:0")
            .contains("not one this device subscribes to")
    );
    // Optional fields may be absent or null.
    let s = p
        .decode(&dev, em, br#"{"total_act_power": 12.5, "a_voltage": null}"#)
        .expect("decode");
    assert_eq!(s, vec![Sample::new(Metric::PowerW, 12.5)]);
}

#[test]
fn generic_json_reads_configured_paths_with_scales() {
    let p = mqtt("generic-json");
    let dev = device(
        "topic = \"tele/meter\"\nfields = { power_w = \"sml.power[1]\", energy_import_wh = { path = \"sml.total.0\", scale = 1000.0 } }",
    );
    let s = p
        .decode(
            &dev,
            "tele/meter",
            br#"{"sml": {"power": [1, 250.5], "total": [12.5]}}"#,
        )
        .expect("decode");
    assert_eq!(value(&s, Metric::PowerW), Some(250.5));
    assert_eq!(value(&s, Metric::EnergyImportWh), Some(12_500.0));
    // Partial updates are fine; a payload with none of the fields is not.
    let s = p
        .decode(&dev, "tele/meter", br#"{"sml": {"power": [0, 3]}}"#)
        .expect("partial");
    assert_eq!(s, vec![Sample::new(Metric::PowerW, 3.0)]);
    let err = p
        .decode(&dev, "tele/meter", br#"{"other": 1}"#)
        .expect_err("nothing");
    assert!(err.to_string().contains("`sml.power[1]`"), "{err}");
    // A plain-number payload, read with an empty path.
    let plain = device("topic = \"solar/116180123456/0/power\"\nfields = { power_w = \"\" }");
    let s = p
        .decode(&plain, "solar/116180123456/0/power", b"812.4")
        .expect("plain");
    assert_eq!(s, vec![Sample::new(Metric::PowerW, 812.4)]);
    // Configuration mistakes are caught before any payload arrives.
    assert!(p.check_device(&device("topic = \"a\"")).is_err());
    assert!(
        p.check_device(&device("topic = \"a/#\"\nfields = { power_w = \"p\" }"))
            .is_err()
    );
    assert!(
        p.check_device(&device("topic = \"a\"\nfields = { power_w = \"p[\" }"))
            .is_err()
    );
    assert!(
        mqtt("shelly-gen2-em")
            .check_device(&device("topic = \"a\"\nfields = { power_w = \"p\" }"))
            .is_err()
    );
}

proptest! {
    #[test]
    fn mqtt_decoders_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..256), which in 0usize..3) {
        let dev = device("topic = \"d\"\nfields = { power_w = \"a.b[0]\", soc_pct = \"c\" }");
        let topic = ["d/status/em:0", "d/status/emdata:0", "d"][which];
        for name in ["shelly-gen2-em", "generic-json"] {
            let _ = mqtt(name).decode(&dev, topic, &payload);
        }
    }

    #[test]
    fn json_shaped_payloads_never_panic(
        power in prop_oneof![any::<f64>().prop_map(|f| f.to_string()), Just("null".to_string()), Just("\"x\"".to_string()), Just("[]".to_string()), Just("1e999".to_string())],
    ) {
        let dev = device("topic = \"d\"\nfields = { power_w = \"total_act_power\" }");
        let payload = format!("{{\"total_act_power\": {power}, \"total_act\": {power}, \"total_act_ret\": 1}}");
        for (name, topic) in [("shelly-gen2-em", "d/status/em:0"), ("shelly-gen2-em", "d/status/emdata:0"), ("generic-json", "d")] {
            if let Ok(samples) = mqtt(name).decode(&dev, topic, payload.as_bytes()) {
                prop_assert!(samples.iter().all(|s| s.value.is_finite()));
            }
        }
    }
}
