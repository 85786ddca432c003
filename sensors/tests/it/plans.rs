//! Every profile's read plan uses the fewest requests its register set allows,
//! the minimum being found here by exhaustive dynamic programming over the
//! register ranges, independently of the planner's greedy merge.

use sensors::modbus::{MAX_READ_REGISTERS, ReadBlock, RegisterKind};
use sensors::profile::{self, ModbusProfile, Profile, RegisterSpec};
use sensors::sim::RegisterImage;
use sensors::sim::sunspec::build_map;
use sensors::sunspec::{self, SunSpecMap};

/// The fewest blocks covering `ranges` (kind, first register, one past the last),
/// each block one kind, at most `max_registers` long, and reading through at most
/// `max_gap` unused registers between two ranges it holds.
pub(crate) fn minimum(
    mut ranges: Vec<(RegisterKind, u32, u32)>,
    max_gap: u32,
    max_registers: u32,
) -> usize {
    ranges.sort_unstable();
    ranges.dedup();
    let n = ranges.len();
    // best[j]: fewest blocks for the first j ranges.
    let mut best = vec![usize::MAX; n + 1];
    best[0] = 0;
    for j in 1..=n {
        for i in (0..j).rev() {
            // Can ranges i..j (exclusive) form one block?
            let kind = ranges[i].0;
            let start = ranges[i].1;
            let mut end = ranges[i].2;
            let mut ok = true;
            for r in &ranges[i + 1..j] {
                if r.0 != kind || r.1 > end + max_gap {
                    ok = false;
                    break;
                }
                end = end.max(r.2);
            }
            if ok && end - start <= max_registers && best[i] != usize::MAX {
                best[j] = best[j].min(best[i] + 1);
            }
        }
    }
    best[n]
}

fn ranges_of(registers: &[RegisterSpec]) -> Vec<(RegisterKind, u32, u32)> {
    registers
        .iter()
        .map(|r| {
            (
                r.kind,
                u32::from(r.address),
                u32::from(r.address) + u32::from(r.ty.words()),
            )
        })
        .collect()
}

fn covers(plan: &[ReadBlock], ranges: &[(RegisterKind, u32, u32)], max_registers: u16) {
    for b in plan {
        assert!(b.count <= max_registers, "{b:?}");
    }
    for (k, s, e) in ranges {
        assert!(
            plan.iter()
                .any(|b| b.kind == *k && u32::from(b.start) <= *s && *e <= b.end()),
            "{k:?} {s}..{e} not read by {plan:?}"
        );
    }
}

fn check(p: &ModbusProfile) -> usize {
    let ranges = ranges_of(&p.registers);
    let plan = p.read_plan();
    covers(&plan, &ranges, p.max_registers);
    let min = minimum(ranges, u32::from(p.max_gap), u32::from(p.max_registers));
    assert_eq!(plan.len(), min, "{}: {plan:?}", p.id);
    min
}

#[test]
fn every_fixed_modbus_profile_reads_in_the_fewest_requests() {
    let mut seen = Vec::new();
    for name in profile::names() {
        if let Ok(Profile::Modbus(p)) = profile::lookup(name) {
            if p.config_registers {
                continue;
            }
            seen.push((name, check(p)));
        }
    }
    // And by hand, from the data files: every one of these meters is read in one request.
    assert_eq!(seen, vec![("sdm630", 1), ("sdm120", 1), ("em24", 1)]);
}

fn generic(text: &str) -> ModbusProfile {
    let t: toml::Table = toml::from_str(text).expect("toml");
    let regs: Vec<RegisterSpec> = t
        .get("registers")
        .cloned()
        .and_then(|v| v.try_into().ok())
        .expect("registers");
    match profile::lookup("generic-modbus") {
        Ok(Profile::Modbus(p)) => p.for_device(&regs).expect("valid"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn generic_registers_merge_when_adjacent_and_never_across_function_codes() {
    let p = generic(
        r#"registers = [
            { metric = "power_w", kind = "holding", address = 100, type = "int32" },
            { metric = "voltage_v", kind = "holding", address = 102, type = "uint16" },
            { metric = "current_a", kind = "holding", address = 103, type = "uint16" },
            { metric = "energy_import_wh", kind = "input", address = 104, type = "uint32" },
            { metric = "frequency_hz", kind = "holding", address = 110, type = "uint16" },
        ]"#,
    );
    // 100..104 holding, 104 input, 110 holding (a gap of 6 is not read through).
    assert_eq!(check(&p), 3);
}

#[test]
fn random_register_sets_plan_to_the_minimum() {
    // A small deterministic generator: no dependency for a handful of cases.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for case in 0..300 {
        let count = 1 + next(30) as usize;
        let max_gap = next(20) as u16;
        let max_registers = 2 + next(u64::from(MAX_READ_REGISTERS) - 1) as u16;
        let regs: Vec<(RegisterKind, u16, u16)> = (0..count)
            .map(|_| {
                let kind = if next(3) == 0 {
                    RegisterKind::Input
                } else {
                    RegisterKind::Holding
                };
                let words = [1u16, 2, 2, 4][next(4) as usize];
                (kind, next(600) as u16, words.min(max_registers))
            })
            .collect();
        let plan = sensors::modbus::plan_reads(regs.iter().copied(), max_gap, max_registers);
        let ranges: Vec<(RegisterKind, u32, u32)> = regs
            .iter()
            .map(|(k, a, n)| (*k, u32::from(*a), u32::from(*a) + u32::from(*n)))
            .collect();
        covers(&plan, &ranges, max_registers);
        assert_eq!(
            plan.len(),
            minimum(ranges, u32::from(max_gap), u32::from(max_registers)),
            "case {case}: {regs:?} gap {max_gap} max {max_registers}: {plan:?}"
        );
    }
}

/// The registers a SunSpec poll needs, found from the model definitions here.
fn sunspec_ranges(map: &SunSpecMap) -> Vec<(RegisterKind, u32, u32)> {
    let mut out = Vec::new();
    for m in map.models.iter().filter(|m| m.id != 1) {
        let def = sunspec::model_definition(m.id).expect("supported");
        for p in def.points.iter().filter(|p| p.metric.is_some()) {
            let at = u32::from(m.address) + u32::from(p.offset);
            out.push((RegisterKind::Holding, at, at + u32::from(p.words())));
            if let Some(sf) = p.sf.as_deref().and_then(|n| def.point(n)) {
                let at = u32::from(m.address) + u32::from(sf.offset);
                out.push((RegisterKind::Holding, at, at + 1));
            }
        }
    }
    out
}

#[test]
fn sunspec_polls_read_metric_points_and_scale_factors_in_the_fewest_requests() {
    let maps: [&[u16]; 5] = [
        &[1, 103, 203],
        &[1, 103],
        &[1, 113, 213, 124],
        &[1, 701, 123],
        &[
            1, 101, 102, 103, 111, 112, 113, 123, 124, 201, 202, 203, 204, 211, 212, 213, 214, 701,
        ],
    ];
    for ids in maps {
        for base in sunspec::BASES {
            let mut image = RegisterImage::new();
            let models: Vec<(u16, u16)> = ids
                .iter()
                .map(|id| (*id, sunspec::model_definition(*id).map_or(0, |d| d.length)))
                .collect();
            let headers = build_map(&mut image, base, &models);
            let map = SunSpecMap {
                base,
                models: headers,
            };
            let plan = map.poll_plan().expect("plan");
            let ranges = sunspec_ranges(&map);
            covers(&plan.blocks, &ranges, MAX_READ_REGISTERS);
            let min = minimum(
                ranges,
                u32::from(MAX_READ_REGISTERS),
                u32::from(MAX_READ_REGISTERS),
            );
            assert_eq!(
                plan.blocks.len(),
                min,
                "{ids:?} at {base}: {:?}",
                plan.blocks
            );
        }
    }
    // By hand for the benchmark's device: model 103's points run from A (40072)
    // to St (40108), model 203's from A (40124) to TotWh_SF (40177): 106 registers,
    // one request.
    let mut image = RegisterImage::new();
    let headers = build_map(&mut image, 40000, &[(1, 66), (103, 50), (203, 105)]);
    let plan = SunSpecMap {
        base: 40000,
        models: headers,
    }
    .poll_plan()
    .expect("plan");
    assert_eq!(plan.blocks.len(), 1, "{:?}", plan.blocks);
}
