//! The SunSpec simulator builds a map of any supported model; the plan decodes it
//! back, with unset points missing and the sign convention of the first power model.

use sensors::modbus::RegisterKind;
use sensors::model::{Metric, PowerSign};
use sensors::sim::RegisterImage;
use sensors::sim::sunspec::{build_map, write_common, write_model};
use sensors::sunspec::{self, SunSpecMap};

fn read_all(
    image: &RegisterImage,
    plan: &sunspec::SunSpecPlan,
) -> Vec<(sensors::modbus::ReadBlock, Vec<u16>)> {
    plan.blocks
        .iter()
        .map(|b| {
            (
                *b,
                image
                    .read(b.kind, b.start, b.count)
                    .expect("in range")
                    .to_vec(),
            )
        })
        .collect()
}

#[test]
fn a_meter_map_decodes_with_scale_factors_and_missing_points() {
    let mut image = RegisterImage::new();
    let h = build_map(&mut image, 0, &[(1, 66), (203, 105)]);
    write_common(&mut image, &h[0], "Acme", "Meter 3", "A-1");
    write_model(
        &mut image,
        &h[1],
        &[
            ("W", -1523.4),
            ("Hz", 49.98),
            ("PhVphA", 231.5),
            ("PhVphB", 230.1),
            ("TotWhImp", 12_345_678.0),
            ("TotWhExp", 876_543.0),
        ],
    )
    .expect("write");
    let plan = SunSpecMap {
        base: 0,
        models: h.clone(),
    }
    .poll_plan()
    .expect("plan");
    assert_eq!(plan.power_sign, Some(PowerSign::Consumption));
    let points = plan.decode(&read_all(&image, &plan));
    let get = |m: Metric| {
        points
            .iter()
            .find(|p| p.sample.metric == m)
            .map(|p| p.sample.value)
    };
    assert_eq!(get(Metric::PowerW), Some(-1523.4));
    assert_eq!(get(Metric::FrequencyHz), Some(49.98));
    assert_eq!(get(Metric::VoltageL1V), Some(231.5));
    assert_eq!(get(Metric::EnergyImportWh), Some(12_345_678.0));
    assert_eq!(get(Metric::EnergyExportWh), Some(876_543.0));
    assert_eq!(
        get(Metric::VoltageL3V),
        None,
        "not implemented: missing, not zero"
    );
    assert_eq!(get(Metric::CurrentA), None);
    let common = sunspec::decode_common(
        image
            .read(RegisterKind::Holding, h[0].body_address(), 66)
            .expect("body"),
    );
    assert_eq!(
        (common.manufacturer.as_str(), common.serial.as_str()),
        ("Acme", "A-1")
    );
}

#[test]
fn every_supported_model_round_trips_its_metric_points() {
    for id in [
        101u16, 102, 103, 111, 112, 113, 123, 124, 201, 202, 203, 204, 211, 212, 213, 214, 701,
    ] {
        let def = sunspec::model_definition(id).expect("definition");
        let mut image = RegisterImage::new();
        let h = build_map(&mut image, 40000, &[(1, 66), (id, def.length)]);
        let values: Vec<(&str, f64)> = def
            .points
            .iter()
            .filter_map(|p| p.metric.map(|m| (p.name.as_str(), m)))
            .map(|(name, m)| (name, if m == Metric::Status { 4.0 } else { 123.0 }))
            .collect();
        write_model(&mut image, &h[1], &values).unwrap_or_else(|e| panic!("{id}: {e}"));
        let plan = SunSpecMap {
            base: 40000,
            models: h,
        }
        .poll_plan()
        .expect("plan");
        let points = plan.decode(&read_all(&image, &plan));
        let mut metrics: Vec<Metric> = points.iter().map(|p| p.sample.metric).collect();
        metrics.sort();
        let mut want: Vec<Metric> = def.points.iter().filter_map(|p| p.metric).collect();
        want.sort();
        want.dedup();
        assert_eq!(metrics, want, "model {id}");
        for p in &points {
            let expect = if p.sample.metric == Metric::Status {
                4.0
            } else {
                123.0
            };
            assert!(
                (p.sample.value - expect).abs() < 1e-9,
                "model {id} {}: {}",
                p.sample.metric,
                p.sample.value
            );
        }
    }
}

#[test]
fn an_inverter_with_its_meter_reports_the_inverter_first() {
    let mut image = RegisterImage::new();
    let h = build_map(&mut image, 40000, &[(1, 66), (103, 50), (203, 105)]);
    write_model(&mut image, &h[1], &[("W", 4000.0)]).expect("103");
    write_model(&mut image, &h[2], &[("W", -2500.0), ("TotWhImp", 10.0)]).expect("203");
    let plan = SunSpecMap {
        base: 40000,
        models: h,
    }
    .poll_plan()
    .expect("plan");
    assert_eq!(plan.power_sign, Some(PowerSign::Generation));
    let points = plan.decode(&read_all(&image, &plan));
    let powers: Vec<f64> = points
        .iter()
        .filter(|p| p.sample.metric == Metric::PowerW)
        .map(|p| p.sample.value)
        .collect();
    assert_eq!(powers, vec![4000.0]);
    assert!(
        points
            .iter()
            .any(|p| p.sample.metric == Metric::EnergyImportWh),
        "the meter's own metrics still come"
    );
}
