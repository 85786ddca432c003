use proptest::prelude::*;

use super::*;
use crate::config::MqttDeviceConfig;
use crate::modbus::ReadBlock;
use crate::model::{Metric, Sample};
use crate::sim::RegisterImage;
use crate::sim::payloads::{opendtu_messages, tasmota_energy, tasmota_sml, zigbee2mqtt_plug};
use crate::sim::sdm630::{MeterState, write_meter};
use crate::sim::shelly::{Gen1Channel, gen1_em_messages, gen2_em_status, gen2_emdata};
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
    assert_eq!(names().len(), 11);
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
            ("sdm120", Profile::Modbus(p)) => {
                let mut image = RegisterImage::new();
                let state = MeterState {
                    power_w: -640.0,
                    import_wh: 1_234_000.0,
                    export_wh: 56_000.0,
                    voltage_v: 229.5,
                    frequency_hz: 50.0,
                };
                crate::sim::sdm120::write_meter(&mut image, &state);
                assert_eq!(p.read_plan().len(), 1);
                let samples = p.decode(&read_from(&image, p.read_plan()));
                assert_eq!(samples.len(), p.registers.len(), "every register decodes");
                assert_eq!(value(&samples, Metric::PowerW), Some(-640.0));
                assert_eq!(value(&samples, Metric::VoltageV), Some(229.5));
                assert_eq!(value(&samples, Metric::EnergyExportWh), Some(56_000.0));
                samples
            }
            ("em24", Profile::Modbus(p)) => {
                let mut image = RegisterImage::new();
                let state = MeterState {
                    power_w: -2345.6,
                    import_wh: 9_876_500.0,
                    export_wh: 123_400.0,
                    voltage_v: 231.2,
                    frequency_hz: 49.9,
                };
                crate::sim::em24::write_meter(&mut image, &state);
                let samples = p.decode(&read_from(&image, p.read_plan()));
                assert_eq!(samples.len(), p.registers.len(), "every register decodes");
                let close = |m, want: f64| {
                    let got = value(&samples, m).unwrap_or(f64::NAN);
                    assert!((got - want).abs() < 1e-6, "{m}: {got} != {want}");
                };
                close(Metric::PowerW, -2345.6);
                close(Metric::VoltageL2V, 231.2);
                close(Metric::FrequencyHz, 49.9);
                close(Metric::EnergyImportWh, 9_876_500.0);
                close(Metric::EnergyExportWh, 123_400.0);
                samples
            }
            ("generic-modbus", Profile::Modbus(p)) => {
                let regs: Vec<RegisterSpec> = toml::from_str::<toml::Table>(
                    r#"registers = [
                        { metric = "power_w", kind = "holding", address = 0x0100, type = "int32", order = "CDAB", scale = 0.1 },
                        { metric = "energy_import_wh", kind = "input", address = 0x0010, type = "uint32", scale = 10.0 },
                        { metric = "voltage_v", kind = "holding", address = 0x0102, type = "uint16", scale = 0.1 },
                    ]"#,
                )
                .ok()
                .and_then(|t| t.get("registers").cloned())
                .and_then(|v| v.try_into().ok())
                .expect("registers");
                assert!(
                    p.for_device(&[]).is_err(),
                    "the generic profile needs registers"
                );
                let dev = p.for_device(&regs).expect("device profile");
                let mut image = RegisterImage::new();
                crate::sim::registers::write_registers(
                    &mut image,
                    &regs,
                    &[
                        (Metric::PowerW, -150.5),
                        (Metric::EnergyImportWh, 43_210.0),
                        (Metric::VoltageV, 230.1),
                    ],
                );
                // Holding 0x100..0x102 in one request, input 0x10 in another.
                assert_eq!(dev.read_plan().len(), 2);
                let samples = dev.decode(&read_from(&image, dev.read_plan()));
                assert_eq!(value(&samples, Metric::PowerW), Some(-150.5));
                assert_eq!(value(&samples, Metric::EnergyImportWh), Some(43_210.0));
                assert!((value(&samples, Metric::VoltageV).unwrap_or(0.0) - 230.1).abs() < 1e-9);
                samples
            }
            ("shelly-gen1-em", Profile::Mqtt(p)) => {
                let dev = device("topic = \"shellies/shellyem3-abc\"");
                assert_eq!(
                    p.subscriptions(&dev)[0],
                    "shellies/shellyem3-abc/emeter/+/power"
                );
                let channels = [
                    Gen1Channel {
                        power_w: 100.5,
                        total_wh: 1000.0,
                        total_returned_wh: 10.0,
                        voltage_v: 231.0,
                    },
                    Gen1Channel {
                        power_w: -20.25,
                        total_wh: 2000.0,
                        total_returned_wh: 20.0,
                        voltage_v: 232.0,
                    },
                    Gen1Channel {
                        power_w: 300.0,
                        total_wh: 3000.0,
                        total_returned_wh: 0.0,
                        voltage_v: 233.0,
                    },
                ];
                let mut state = MqttState::default();
                let mut last = Vec::new();
                for (topic, payload) in gen1_em_messages(&dev.topic, &channels) {
                    match p.decode_with(&dev, &mut state, &topic, payload.as_bytes()) {
                        Ok(points) => last.extend(points.into_iter().map(|p| p.sample)),
                        // reactive_power and pf are published but not subscribed to.
                        Err(DecodeError::UnexpectedTopic(_)) => {}
                        Err(e) => panic!("{topic}: {e}"),
                    }
                }
                let latest = |m: Metric| last.iter().rev().find(|s| s.metric == m).map(|s| s.value);
                assert_eq!(latest(Metric::PowerW), Some(380.25), "sum of the channels");
                assert_eq!(latest(Metric::EnergyImportWh), Some(6000.0));
                assert_eq!(latest(Metric::EnergyExportWh), Some(30.0));
                assert_eq!(latest(Metric::VoltageV), Some(231.0));
                last
            }
            ("tasmota", Profile::Mqtt(p)) => {
                let dev = device("topic = \"plug-42\"");
                assert_eq!(p.subscriptions(&dev), vec!["tele/plug-42/SENSOR"]);
                let topic = "tele/plug-42/SENSOR";
                let one = p
                    .decode(
                        &dev,
                        topic,
                        tasmota_energy(&[57.0], 12.345, 230.0).as_bytes(),
                    )
                    .expect("plug");
                assert_eq!(value(&one, Metric::PowerW), Some(57.0));
                assert_eq!(value(&one, Metric::EnergyImportWh), Some(12_345.0));
                assert_eq!(value(&one, Metric::VoltageV), Some(230.0));
                let two = p
                    .decode(
                        &dev,
                        topic,
                        tasmota_energy(&[10.0, 32.5], 1.5, 229.0).as_bytes(),
                    )
                    .expect("two channels");
                assert_eq!(value(&two, Metric::PowerW), Some(42.5), "channels summed");
                let sml = p
                    .decode(&dev, topic, tasmota_sml(-812.0, 4321.5, 987.25).as_bytes())
                    .expect("sml");
                assert_eq!(value(&sml, Metric::PowerW), Some(-812.0));
                assert_eq!(value(&sml, Metric::EnergyImportWh), Some(4_321_500.0));
                assert_eq!(value(&sml, Metric::EnergyExportWh), Some(987_250.0));
                // A SENSOR message of a device without energy readings is rejected.
                let err = p
                    .decode(
                        &dev,
                        topic,
                        br#"{"Time":"x","DS18B20":{"Temperature":21.5}}"#,
                    )
                    .expect_err("no energy");
                assert!(matches!(err, DecodeError::NoKnownField(_)), "{err}");
                one
            }
            ("opendtu", Profile::Mqtt(p)) => {
                let dev = device("topic = \"solar/116180123456\"");
                let mut samples = Vec::new();
                for (topic, payload) in opendtu_messages(&dev.topic, 812.4, 1234.567, 231.2) {
                    match p.decode(&dev, &topic, payload.as_bytes()) {
                        Ok(s) => samples.extend(s),
                        Err(DecodeError::UnexpectedTopic(_)) => {}
                        Err(e) => panic!("{topic}: {e}"),
                    }
                }
                assert_eq!(value(&samples, Metric::PowerW), Some(812.4));
                assert_eq!(value(&samples, Metric::EnergyExportWh), Some(1_234_567.0));
                assert_eq!(value(&samples, Metric::VoltageV), Some(231.2));
                assert_eq!(value(&samples, Metric::TemperatureC), Some(31.4));
                samples
            }
            ("zigbee2mqtt", Profile::Mqtt(p)) => {
                let dev = device("topic = \"zigbee2mqtt/fridge plug\"");
                assert_eq!(p.subscriptions(&dev), vec!["zigbee2mqtt/fridge plug"]);
                let samples = p
                    .decode(
                        &dev,
                        "zigbee2mqtt/fridge plug",
                        zigbee2mqtt_plug(87.0, 42.17, 229.0).as_bytes(),
                    )
                    .expect("plug");
                assert_eq!(value(&samples, Metric::PowerW), Some(87.0));
                assert_eq!(value(&samples, Metric::EnergyImportWh), Some(42_170.0));
                assert_eq!(value(&samples, Metric::VoltageV), Some(229.0));
                assert_eq!(value(&samples, Metric::CurrentA), Some(0.38));
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

const MQTT_PROFILES: [&str; 6] = [
    "shelly-gen1-em",
    "shelly-gen2-em",
    "tasmota",
    "opendtu",
    "zigbee2mqtt",
    "generic-json",
];

#[test]
fn every_mqtt_profile_is_fuzzed() {
    let mqtt_names: Vec<&str> = names()
        .into_iter()
        .filter(|n| matches!(lookup(n), Ok(Profile::Mqtt(_))))
        .collect();
    assert_eq!(mqtt_names.len(), MQTT_PROFILES.len());
    for n in mqtt_names {
        assert!(MQTT_PROFILES.contains(&n), "{n} is not fuzzed");
    }
}

proptest! {
    #[test]
    fn mqtt_decoders_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..256), which in 0usize..9) {
        let dev = device("topic = \"d\"\nfields = { power_w = \"a.b[0]\", soc_pct = \"c\" }");
        let topic = ["d/status/em:0", "d/status/emdata:0", "d", "d/emeter/0/power", "d/emeter/7/total", "tele/d/SENSOR", "d/0/power", "d/0/yieldtotal", "d/emeter/x/voltage"][which];
        let mut state = MqttState::default();
        for name in MQTT_PROFILES {
            let _ = mqtt(name).decode_with(&dev, &mut state, topic, &payload);
        }
    }

    #[test]
    fn json_values_of_every_shape_never_panic_and_stay_finite(
        value in prop_oneof![
            any::<f64>().prop_map(|f| f.to_string()),
            Just("null".to_string()), Just("\"12.5\"".to_string()), Just("\"x\"".to_string()),
            Just("[]".to_string()), Just("[1, null, 2]".to_string()), Just("[1, \"a\"]".to_string()),
            Just("{}".to_string()), Just("1e999".to_string()), Just("-0".to_string()), Just("true".to_string()),
        ],
        which in 0usize..9,
    ) {
        let dev = device("topic = \"d\"\nfields = { power_w = \"power\" }");
        let topic = ["d/status/em:0", "d/status/emdata:0", "d", "d/emeter/0/power", "d/emeter/1/total", "tele/d/SENSOR", "d/0/power", "d/0/yieldtotal", "d/emeter/2/voltage"][which];
        let payloads = [
            value.clone(),
            format!("{{\"power\": {value}, \"energy\": {value}, \"total_act_power\": {value}, \"total_act\": {value}, \"total_act_ret\": 1}}"),
            format!("{{\"ENERGY\": {{\"Power\": {value}, \"Total\": {value}, \"Voltage\": {value}}}, \"SML\": {{\"Power_curr\": {value}}}}}"),
        ];
        let mut state = MqttState::default();
        for name in MQTT_PROFILES {
            for payload in &payloads {
                if let Ok(points) = mqtt(name).decode_with(&dev, &mut state, topic, payload.as_bytes()) {
                    prop_assert!(!points.is_empty());
                    prop_assert!(points.iter().all(|p| p.sample.value.is_finite()));
                }
            }
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
