//! Expected values are worked out by hand in the comments and written as literals.

use super::*;
use proptest::prelude::*;

fn svc(id: &str, tier: u32, demand_w: f64, min_w: f64, max_w: Option<f64>) -> ServiceDemand {
    ServiceDemand {
        id: id.into(),
        tier,
        demand_w,
        min_w,
        max_w,
    }
}

fn rule(tier: u32, split: Split) -> TierRule {
    TierRule { tier, split }
}

fn grant<'a>(a: &'a Allocation, id: &str) -> &'a ServiceGrant {
    a.services
        .iter()
        .find(|g| &*g.id == id)
        .unwrap_or_else(|| panic!("no grant for service `{id}`"))
}

/// Asserts allocated watts, state and reason of one service.
fn check(a: &Allocation, id: &str, allocated_w: f64, state: ServiceState, reason: Reason) {
    let g = grant(a, id);
    assert!(
        (g.allocated_w - allocated_w).abs() < 1e-9,
        "service `{id}`: allocated {} W, expected {allocated_w} W",
        g.allocated_w
    );
    assert_eq!(g.state, state, "service `{id}`: state");
    assert_eq!(g.reason, reason, "service `{id}`: reason");
}

// ---------------------------------------------------------------------------------
// The French collective self-consumption default key

#[test]
fn french_default_key_shares_in_proportion_to_consumption() {
    // One tier, pro rata, no minima. Total demand 10000 W, 6000 W available:
    // each share = demand x 6000 / 10000 = demand x 0.6 -> 1200 / 1800 / 3000.
    let services = [
        svc("a", 1, 2000.0, 0.0, None),
        svc("b", 1, 3000.0, 0.0, None),
        svc("c", 1, 5000.0, 0.0, None),
    ];
    let a = allocate(6000.0, &[rule(1, Split::ProRata)], &services);
    check(&a, "a", 1200.0, ServiceState::Partial, Reason::TierShare);
    check(&a, "b", 1800.0, ServiceState::Partial, Reason::TierShare);
    check(&a, "c", 3000.0, ServiceState::Partial, Reason::TierShare);
    assert_eq!(a.available_w, 6000.0, "available is reported as given");
    assert!(
        (a.allocated_w - 6000.0).abs() < 1e-9,
        "all 6000 W are shared, got {}",
        a.allocated_w
    );
    assert_eq!(a.headroom_w, 0.0, "nothing is left over");
}

#[test]
fn french_default_key_serves_everyone_when_power_suffices() {
    // 20000 W for 10000 W of demand: everyone is served, 10000 W left over.
    let services = [
        svc("a", 1, 2000.0, 0.0, None),
        svc("b", 1, 3000.0, 0.0, None),
        svc("c", 1, 5000.0, 0.0, None),
    ];
    // No tier listed: pro rata by default.
    let a = allocate(20000.0, &[], &services);
    check(&a, "a", 2000.0, ServiceState::Served, Reason::FullyServed);
    check(&a, "b", 3000.0, ServiceState::Served, Reason::FullyServed);
    check(&a, "c", 5000.0, ServiceState::Served, Reason::FullyServed);
    for g in &a.services {
        assert_eq!(
            g.allocated_w, g.demand_w,
            "service `{}`: served means exactly its demand",
            g.id
        );
    }
    assert_eq!(a.allocated_w, 10000.0, "allocated is the total demand");
    assert_eq!(a.headroom_w, 10000.0, "headroom is available - allocated");
}

// ---------------------------------------------------------------------------------
// Minima

#[test]
fn minima_take_precedence_over_higher_tiers_remainders() {
    // Tier 1 {a: demand 1000, min 200}, tier 2 {b: demand 1000, min 300}, 600 W.
    // Minima pass: tier 1 asks 200 <= 600 -> a 200, 400 left;
    //              tier 2 asks 300 <= 400 -> b 300, 100 left.
    // Remainder pass: tier 1 residual 800 > 100 -> tier 1 shares the 100: a 200 + 100 = 300;
    //                 tier 2 gets nothing more: b stays at its minimum, 300.
    let services = [
        svc("a", 1, 1000.0, 200.0, None),
        svc("b", 2, 1000.0, 300.0, None),
    ];
    let a = allocate(600.0, &[], &services);
    check(&a, "a", 300.0, ServiceState::Partial, Reason::TierShare);
    check(&a, "b", 300.0, ServiceState::Partial, Reason::MinimumOnly);
    assert_eq!(a.allocated_w, 600.0, "all 600 W are allocated");
    assert_eq!(a.headroom_w, 0.0, "no headroom");
}

#[test]
fn lower_tier_minimum_beats_higher_tier_without_minimum() {
    // Tier 1 {a: demand 1000, no min}, tier 2 {b: demand 1000, min 300}, 300 W.
    // Minima: tier 1 asks 0, tier 2 asks 300 <= 300 -> b 300, 0 left. Remainder: nothing.
    let services = [
        svc("a", 1, 1000.0, 0.0, None),
        svc("b", 2, 1000.0, 300.0, None),
    ];
    let a = allocate(300.0, &[], &services);
    check(&a, "a", 0.0, ServiceState::Shed, Reason::MinimumOnly);
    check(&a, "b", 300.0, ServiceState::Partial, Reason::MinimumOnly);
}

#[test]
fn uncovered_minima_are_shared_pro_rata_and_later_tiers_get_no_minimum() {
    // Tier 1 pro rata {a: demand 1000, min 400; b: demand 1000, min 200},
    // tier 2 {c: demand 500, min 100}; 300 W.
    // Minima: tier 1 asks 600 > 300 -> shares 300 pro rata to the asks:
    //   a 400 x 300 / 600 = 200, b 200 x 300 / 600 = 100; tier 2 gets no minimum.
    // Remainder: nothing left.
    let services = [
        svc("a", 1, 1000.0, 400.0, None),
        svc("b", 1, 1000.0, 200.0, None),
        svc("c", 2, 500.0, 100.0, None),
    ];
    let a = allocate(300.0, &[rule(1, Split::ProRata)], &services);
    check(&a, "a", 200.0, ServiceState::Partial, Reason::TierShare);
    check(&a, "b", 100.0, ServiceState::Partial, Reason::TierShare);
    check(&a, "c", 0.0, ServiceState::Shed, Reason::HigherTiersFirst);
    assert_eq!(a.allocated_w, 300.0, "all 300 W are allocated");
}

#[test]
fn uncovered_minima_are_shared_equally_by_water_filling() {
    // Tier 1 equal {a: demand 1000, min 400; b: demand 1000, min 100},
    // tier 2 {c: demand 500, min 100}; 300 W.
    // Minima: tier 1 asks 500 > 300 -> water-filling of 300 over asks 100 and 400:
    //   level 300 / 2 = 150 >= 100 -> b 100, 200 left; a: 200 / 1 = 200 < 400 -> a 200.
    // Tier 2 gets no minimum; nothing is left for the remainder pass.
    let services = [
        svc("a", 1, 1000.0, 400.0, None),
        svc("b", 1, 1000.0, 100.0, None),
        svc("c", 2, 500.0, 100.0, None),
    ];
    let a = allocate(300.0, &[rule(1, Split::Equal)], &services);
    check(&a, "a", 200.0, ServiceState::Partial, Reason::TierShare);
    check(&a, "b", 100.0, ServiceState::Partial, Reason::TierShare);
    check(&a, "c", 0.0, ServiceState::Shed, Reason::HigherTiersFirst);
}

// ---------------------------------------------------------------------------------
// Caps

#[test]
fn cap_limits_the_allocation_and_leaves_the_service_partial() {
    // a: demand 3000 capped at 1000 -> e = 1000; b: demand 500. 5000 W available:
    // both tiers' residuals are covered: a 1000 (partial, capped), b 500 (served).
    // Headroom 5000 - 1500 = 3500.
    let services = [
        svc("a", 1, 3000.0, 0.0, Some(1000.0)),
        svc("b", 1, 500.0, 0.0, None),
    ];
    let a = allocate(5000.0, &[], &services);
    check(&a, "a", 1000.0, ServiceState::Partial, Reason::Capped);
    check(&a, "b", 500.0, ServiceState::Served, Reason::FullyServed);
    assert_eq!(a.allocated_w, 1500.0, "allocated 1000 + 500");
    assert_eq!(a.headroom_w, 3500.0, "headroom 5000 - 1500");
}

#[test]
fn cap_also_bounds_the_pro_rata_ask() {
    // a: demand 3000 capped at 1000 -> e = 1000; b: demand 1000. 1000 W available:
    // pro rata to the effective demands 1000 : 1000 -> 500 each (not 750 / 250).
    let services = [
        svc("a", 1, 3000.0, 0.0, Some(1000.0)),
        svc("b", 1, 1000.0, 0.0, None),
    ];
    let a = allocate(1000.0, &[], &services);
    check(&a, "a", 500.0, ServiceState::Partial, Reason::TierShare);
    check(&a, "b", 500.0, ServiceState::Partial, Reason::TierShare);
}

#[test]
fn zero_cap_sheds_a_demanding_service() {
    let services = [svc("a", 1, 800.0, 0.0, Some(0.0))];
    let a = allocate(5000.0, &[], &services);
    check(&a, "a", 0.0, ServiceState::Shed, Reason::Capped);
    assert_eq!(a.headroom_w, 5000.0, "nothing allocated");
}

// ---------------------------------------------------------------------------------
// Equal split

#[test]
fn equal_split_is_water_filling() {
    // Asks 100 / 500 / 1000, 900 W: level 900 / 3 = 300 >= 100 -> 100, 800 left;
    // level 800 / 2 = 400 < 500 -> 400 and 400.
    let services = [
        svc("small", 1, 100.0, 0.0, None),
        svc("medium", 1, 500.0, 0.0, None),
        svc("large", 1, 1000.0, 0.0, None),
    ];
    let a = allocate(900.0, &[rule(1, Split::Equal)], &services);
    check(
        &a,
        "small",
        100.0,
        ServiceState::Served,
        Reason::FullyServed,
    );
    check(
        &a,
        "medium",
        400.0,
        ServiceState::Partial,
        Reason::TierShare,
    );
    check(&a, "large", 400.0, ServiceState::Partial, Reason::TierShare);
    assert_eq!(a.allocated_w, 900.0, "all 900 W are allocated");
    let ids: Vec<&str> = a.services.iter().map(|g| &*g.id).collect();
    assert_eq!(
        ids,
        ["small", "medium", "large"],
        "grants keep the input order"
    );
}

#[test]
fn equal_split_in_the_remainder_pass_after_minima() {
    // Tier 1 equal {a: demand 600, min 200; b: demand 300}, 700 W.
    // Minima: asks 200 + 0 covered -> a 200, 500 left.
    // Remainder: residuals a 400, b 300 = 700 > 500 -> water-filling of 500:
    //   level 250 < 300 -> a 250, b 250. a = 200 + 250 = 450, b = 250.
    let services = [
        svc("a", 1, 600.0, 200.0, None),
        svc("b", 1, 300.0, 0.0, None),
    ];
    let a = allocate(700.0, &[rule(1, Split::Equal)], &services);
    check(&a, "a", 450.0, ServiceState::Partial, Reason::TierShare);
    check(&a, "b", 250.0, ServiceState::Partial, Reason::TierShare);
}

// ---------------------------------------------------------------------------------
// Tiers, zero power, odd inputs

#[test]
fn higher_tiers_are_served_first_and_order_is_kept() {
    // Input lists tier 2 first. Tier 1 {a 700} is covered (1000 W), tier 2 {b 500, c 100}
    // shares the 300 left pro rata: b 500 x 300 / 600 = 250, c 100 x 300 / 600 = 50.
    // Tier 3 {d 200} gets nothing.
    let services = [
        svc("b", 2, 500.0, 0.0, None),
        svc("a", 1, 700.0, 0.0, None),
        svc("d", 3, 200.0, 0.0, None),
        svc("c", 2, 100.0, 0.0, None),
    ];
    let a = allocate(
        1000.0,
        &[rule(3, Split::Equal), rule(2, Split::ProRata)],
        &services,
    );
    check(&a, "a", 700.0, ServiceState::Served, Reason::FullyServed);
    check(&a, "b", 250.0, ServiceState::Partial, Reason::TierShare);
    check(&a, "c", 50.0, ServiceState::Partial, Reason::TierShare);
    check(&a, "d", 0.0, ServiceState::Shed, Reason::HigherTiersFirst);
    let ids: Vec<&str> = a.services.iter().map(|g| &*g.id).collect();
    assert_eq!(ids, ["b", "a", "d", "c"], "grants keep the input order");
}

#[test]
fn partial_service_with_its_minimum_behind_a_higher_tier() {
    // Tier 1 {a: demand 1000}, tier 2 {b: demand 500, min 100}, 800 W.
    // Minima: tier 2 asks 100 -> b 100, 700 left. Remainder: tier 1 residual 1000 > 700
    // -> a 700; tier 2 nothing more -> b 100 (its minimum).
    let services = [
        svc("a", 1, 1000.0, 0.0, None),
        svc("b", 2, 500.0, 100.0, None),
    ];
    let a = allocate(800.0, &[], &services);
    check(&a, "a", 700.0, ServiceState::Partial, Reason::TierShare);
    check(&a, "b", 100.0, ServiceState::Partial, Reason::MinimumOnly);
}

#[test]
fn zero_available_power_sheds_every_demanding_service() {
    let services = [
        svc("fridge", 1, 300.0, 150.0, None),
        svc("pump", 2, 1200.0, 0.0, None),
        svc("off", 2, 0.0, 0.0, None),
    ];
    let a = allocate(0.0, &[], &services);
    check(&a, "fridge", 0.0, ServiceState::Shed, Reason::NoPower);
    check(&a, "pump", 0.0, ServiceState::Shed, Reason::NoPower);
    check(&a, "off", 0.0, ServiceState::Idle, Reason::NoDemand);
    assert_eq!(a.allocated_w, 0.0, "nothing allocated");
    assert_eq!(a.headroom_w, 0.0, "no headroom");
}

#[test]
fn zero_demand_is_idle_even_with_power() {
    let services = [svc("off", 1, 0.0, 150.0, None)];
    let a = allocate(1000.0, &[], &services);
    check(&a, "off", 0.0, ServiceState::Idle, Reason::NoDemand);
    assert_eq!(a.headroom_w, 1000.0, "all of it is headroom");
}

#[test]
fn negative_or_nan_figures_read_as_zero() {
    let services = [
        svc("noisy", 1, -3.0, 0.0, None),
        svc("broken", 1, f64::NAN, f64::NAN, Some(f64::NAN)),
        svc("ok", 1, 100.0, -50.0, None),
    ];
    for available in [-500.0, f64::NAN] {
        let a = allocate(available, &[], &services);
        assert_eq!(a.available_w, 0.0, "available {available} reads as 0");
        assert_eq!(a.headroom_w, 0.0, "available {available}: no headroom");
        check(&a, "noisy", 0.0, ServiceState::Idle, Reason::NoDemand);
        check(&a, "broken", 0.0, ServiceState::Idle, Reason::NoDemand);
        check(&a, "ok", 0.0, ServiceState::Shed, Reason::NoPower);
        assert_eq!(
            grant(&a, "noisy").demand_w,
            0.0,
            "negative demand reported as 0"
        );
    }
    let a = allocate(1000.0, &[], &services);
    check(&a, "ok", 100.0, ServiceState::Served, Reason::FullyServed);
    assert_eq!(a.headroom_w, 900.0, "headroom 1000 - 100");
}

#[test]
fn first_listed_rule_counts_for_a_tier_listed_twice() {
    // Equal listed first: asks 100 / 300 with 200 W -> 100 / 100 (pro rata would give 50 / 150).
    let services = [svc("a", 1, 100.0, 0.0, None), svc("b", 1, 300.0, 0.0, None)];
    let a = allocate(
        200.0,
        &[rule(1, Split::Equal), rule(1, Split::ProRata)],
        &services,
    );
    check(&a, "a", 100.0, ServiceState::Served, Reason::FullyServed);
    check(&a, "b", 100.0, ServiceState::Partial, Reason::TierShare);
}

#[test]
fn no_services_allocate_nothing() {
    let a = allocate(1234.0, &[], &[]);
    assert!(a.services.is_empty(), "no grants");
    assert_eq!(a.allocated_w, 0.0, "nothing allocated");
    assert_eq!(a.headroom_w, 1234.0, "everything is headroom");
}

#[test]
fn reason_codes_are_the_serde_names() {
    let all = [
        Reason::NoDemand,
        Reason::FullyServed,
        Reason::Capped,
        Reason::MinimumOnly,
        Reason::TierShare,
        Reason::HigherTiersFirst,
        Reason::NoPower,
    ];
    for r in all {
        let json = serde_json::to_value(r).expect("a reason serializes");
        assert_eq!(json, serde_json::Value::from(r.code()), "code of {r:?}");
    }
}

// ---------------------------------------------------------------------------------
// Speed

/// 10,000 services over five tiers with minima, caps and both split rules.
fn many_services(n: usize) -> Vec<ServiceDemand> {
    (0..n)
        .map(|i| {
            let demand = ((i * 7919) % 5000) as f64 + 0.5;
            let min = if i % 3 == 0 { 100.0 } else { 0.0 };
            let max = if i % 5 == 0 { Some(2500.0) } else { None };
            svc(&format!("s{i}"), (i % 5) as u32 + 1, demand, min, max)
        })
        .collect()
}

#[test]
fn ten_thousand_services_are_quick() {
    let services = many_services(10_000);
    let tiers = [
        rule(1, Split::Equal),
        rule(3, Split::Equal),
        rule(4, Split::ProRata),
    ];
    let available = 9_000_000.0;
    let mut best = std::time::Duration::MAX;
    let mut last = None;
    for _ in 0..10 {
        let start = std::time::Instant::now();
        let a = allocate(available, &tiers, &services);
        best = best.min(start.elapsed());
        last = Some(a);
    }
    let a = last.expect("ran at least once");
    let total_e: f64 = services
        .iter()
        .map(|s| s.max_w.map_or(s.demand_w, |m| s.demand_w.min(m)))
        .sum();
    let expected = available.min(total_e);
    assert!(
        (a.allocated_w - expected).abs() < 1e-3,
        "allocated {} W, expected {expected} W",
        a.allocated_w
    );
    assert!(
        a.services.iter().any(|g| g.state == ServiceState::Partial),
        "the case is one where power runs short"
    );
    // Timing means something only in an optimised build.
    if !cfg!(debug_assertions) {
        assert!(
            best < std::time::Duration::from_millis(5),
            "10,000 services took {best:?} at best"
        );
    }
}

// ---------------------------------------------------------------------------------
// Pools: which sources each tier may use

fn pool(name: &'static str, available_w: f64, tiers: Option<&[u32]>) -> Pool {
    Pool {
        name,
        available_w,
        tiers: tiers.map(<[u32]>::to_vec),
    }
}

/// Asserts what one pool gave.
fn check_pool(a: &Allocation, name: &str, available_w: f64, used_w: f64) {
    let p = a
        .pools
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no pool `{name}` in {:?}", a.pools));
    assert_eq!(p.available_w, available_w, "pool `{name}`: available");
    assert!(
        (p.used_w - used_w).abs() < 1e-9,
        "pool `{name}`: used {} W, expected {used_w} W",
        p.used_w
    );
}

#[test]
fn grid_for_tier_one_only_is_out_of_reach_of_tier_two() {
    // PV 1000 W for all, grid 2000 W for tier 1 only. Tier 1 {a: 1500}, tier 2 {b: 1000}.
    // Minima: nobody asks. Remainder: tier 1 asks 1500 <= PV 1000 + grid 2000 -> a
    // 1500, drawn PV first: PV 1000, grid 500. Tier 2 reaches PV only, now 0 -> b 0.
    let pools = [pool("pv", 1000.0, None), pool("grid", 2000.0, Some(&[1]))];
    let services = [
        svc("a", 1, 1500.0, 0.0, None),
        svc("b", 2, 1000.0, 0.0, None),
    ];
    let a = allocate_pools(&pools, &[], &services);
    check(&a, "a", 1500.0, ServiceState::Served, Reason::FullyServed);
    check(&a, "b", 0.0, ServiceState::Shed, Reason::HigherTiersFirst);
    check_pool(&a, "pv", 1000.0, 1000.0);
    check_pool(&a, "grid", 2000.0, 500.0);
    assert_eq!(a.available_w, 3000.0, "available is the sum of the pools");
    assert_eq!(a.allocated_w, 1500.0, "allocated");
    // 1500 W of grid import stay unused: only tier 1 may import.
    assert_eq!(a.headroom_w, 1500.0, "headroom");
}

#[test]
fn grid_for_tier_one_leaves_tier_two_only_the_sun_tier_one_did_not_take() {
    // PV 1000 W, grid 2000 W for tier 1. Tier 1 {a: 500}, tier 2 {b: 1000}.
    // Tier 1 is covered by the sun (PV 1000 -> 500), no import. Tier 2 reaches the
    // 500 W of PV left, less than its 1000 W: it shares them -> b 500.
    let pools = [pool("pv", 1000.0, None), pool("grid", 2000.0, Some(&[1]))];
    let services = [
        svc("a", 1, 500.0, 0.0, None),
        svc("b", 2, 1000.0, 0.0, None),
    ];
    let a = allocate_pools(&pools, &[], &services);
    check(&a, "a", 500.0, ServiceState::Served, Reason::FullyServed);
    check(&a, "b", 500.0, ServiceState::Partial, Reason::TierShare);
    check_pool(&a, "pv", 1000.0, 1000.0);
    check_pool(&a, "grid", 2000.0, 0.0);
}

#[test]
fn battery_below_its_reserve_gives_nothing() {
    use crate::live::SiteBalance;
    use crate::plan_runner::pools;
    use ledger::plan::{BatterySource, GridSource, Plan, PlanService, Sources};

    let plan = Plan {
        tiers: vec![],
        services: vec![PlanService {
            id: "a".into(),
            tier: 1,
            min_w: 0.0,
            max_w: None,
        }],
        sources: Sources {
            battery: Some(BatterySource {
                reserve_soc_pct: 30.0,
                tiers: vec![],
                max_discharge_w: Some(2000.0),
            }),
            grid: Some(GridSource {
                max_import_w: 0.0,
                tiers: vec![1, 2],
            }),
        },
    };
    let site = |soc: f64| SiteBalance {
        pv_w: 500.0,
        battery_soc_pct: Some(soc),
        ..SiteBalance::default()
    };
    let services = [svc("a", 1, 1200.0, 0.0, None)];

    // 25 % and exactly 30 % are not above the 30 % reserve: PV and the (0 W) grid only.
    for soc in [25.0, 30.0] {
        let p = pools(&plan, &site(soc));
        assert_eq!(
            p,
            vec![pool("pv", 500.0, None), pool("grid", 0.0, Some(&[1, 2]))],
            "pools at {soc} % state of charge"
        );
        // a asks 1200 W and reaches 500 W of PV: it gets 500.
        let a = allocate_pools(&p, &[], &services);
        check(&a, "a", 500.0, ServiceState::Partial, Reason::TierShare);
        assert!(
            a.pools.iter().all(|p| p.name != "battery"),
            "no battery pool"
        );
    }
    // No state of charge known: no battery either.
    let unknown = SiteBalance {
        pv_w: 500.0,
        ..SiteBalance::default()
    };
    assert_eq!(pools(&plan, &unknown).len(), 2, "pv and grid only");

    // At 31 % the battery counts, for every tier (its list is empty): 500 + 700 W.
    let p = pools(&plan, &site(31.0));
    assert_eq!(
        p.get(1),
        Some(&pool("battery", 2000.0, None)),
        "battery pool"
    );
    let a = allocate_pools(&p, &[], &services);
    check(&a, "a", 1200.0, ServiceState::Served, Reason::FullyServed);
    check_pool(&a, "pv", 500.0, 500.0);
    check_pool(&a, "battery", 2000.0, 700.0);
    check_pool(&a, "grid", 0.0, 0.0);
    assert_eq!(
        crate::plan_runner::available_w(&plan, &site(31.0)),
        2500.0,
        "available_w is the sum of the pools"
    );
}

#[test]
fn tiers_keep_their_order_across_pools() {
    // PV 1000 W for all, battery 1000 W for tiers 1-2, grid 500 W for tier 1.
    // Tier 1 {a: 800}, tier 2 {b: 1500, min 200}, tier 3 {c: 1000, min 100}.
    // Minima: tier 1 asks 0; tier 2 asks 200 of PV + battery 2000 -> from PV (800
    // left); tier 3 asks 100 of PV 800 -> PV 700 left.
    // Remainder: tier 1 asks 800 of 700 + 1000 + 500 -> PV 700, battery 100 (900
    // left), no import. Tier 2 asks 1300 of PV 0 + battery 900: it shares 900 -> b
    // 200 + 900 = 1100, and empties both. Tier 3 reaches PV only, 0 -> c keeps 100.
    let pools = [
        pool("pv", 1000.0, None),
        pool("battery", 1000.0, Some(&[1, 2])),
        pool("grid", 500.0, Some(&[1])),
    ];
    let services = [
        svc("c", 3, 1000.0, 100.0, None),
        svc("a", 1, 800.0, 0.0, None),
        svc("b", 2, 1500.0, 200.0, None),
    ];
    let a = allocate_pools(&pools, &[], &services);
    check(&a, "a", 800.0, ServiceState::Served, Reason::FullyServed);
    check(&a, "b", 1100.0, ServiceState::Partial, Reason::TierShare);
    check(&a, "c", 100.0, ServiceState::Partial, Reason::MinimumOnly);
    let ids: Vec<&str> = a.services.iter().map(|g| &*g.id).collect();
    assert_eq!(ids, ["c", "a", "b"], "grants keep the input order");
    check_pool(&a, "pv", 1000.0, 1000.0);
    check_pool(&a, "battery", 1000.0, 1000.0);
    check_pool(&a, "grid", 500.0, 0.0);
    assert_eq!(a.allocated_w, 2000.0, "allocated");
    assert_eq!(a.headroom_w, 500.0, "the unused import is headroom");
}

#[test]
fn a_pool_kept_for_a_later_tier_serves_it_while_an_earlier_tier_is_short() {
    // PV 500 W for all, battery 1000 W for tier 2 only. Tier 1 {a: 1000}, tier 2 {b: 800}.
    // Tier 1 reaches PV only and shares its 500 W; tier 2 reaches the battery: 800.
    let pools = [pool("pv", 500.0, None), pool("battery", 1000.0, Some(&[2]))];
    let services = [
        svc("a", 1, 1000.0, 0.0, None),
        svc("b", 2, 800.0, 0.0, None),
    ];
    let a = allocate_pools(&pools, &[], &services);
    check(&a, "a", 500.0, ServiceState::Partial, Reason::TierShare);
    check(&a, "b", 800.0, ServiceState::Served, Reason::FullyServed);
    check_pool(&a, "pv", 500.0, 500.0);
    check_pool(&a, "battery", 1000.0, 800.0);
}

#[test]
fn a_restricted_pool_only_makes_up_what_its_tiers_lack() {
    // PV 300 W for all, battery 500 W for tier 2 only. Tier 1 {a: 1000}, tier 2
    // {b: 600, min 400}. Minima first (DESIGN.md §4): b's 400 W come from PV (all
    // 300) then the battery (100). Remainder: tier 1 reaches PV only, now 0 -> a 0;
    // tier 2 asks 200 of the battery's 400 -> b 600.
    // The battery does not discharge more so that the sun could go to tier 1: power
    // is fungible, and that discharge would serve tier 1, which the plan does not allow.
    let pools = [pool("pv", 300.0, None), pool("battery", 500.0, Some(&[2]))];
    let services = [
        svc("a", 1, 1000.0, 0.0, None),
        svc("b", 2, 600.0, 400.0, None),
    ];
    let a = allocate_pools(&pools, &[], &services);
    check(&a, "a", 0.0, ServiceState::Shed, Reason::MinimumOnly);
    check(&a, "b", 600.0, ServiceState::Served, Reason::FullyServed);
    check_pool(&a, "pv", 300.0, 300.0);
    check_pool(&a, "battery", 500.0, 300.0);
    assert_eq!(a.headroom_w, 200.0, "the battery's last 200 W are headroom");
}

#[test]
fn a_pool_open_to_no_tier_gives_nothing() {
    // No sun; a grid pool whose list of tiers is empty: no tier may import.
    let pools = [pool("pv", 0.0, None), pool("grid", 1000.0, Some(&[]))];
    let services = [svc("a", 1, 500.0, 100.0, None)];
    let a = allocate_pools(&pools, &[], &services);
    check(&a, "a", 0.0, ServiceState::Shed, Reason::NoPower);
    check_pool(&a, "grid", 1000.0, 0.0);
    assert_eq!(a.headroom_w, 1000.0, "headroom");
}

#[test]
fn negative_or_nan_pools_read_as_zero() {
    let pools = [pool("pv", -50.0, None), pool("battery", f64::NAN, None)];
    let a = allocate_pools(&pools, &[], &[svc("a", 1, 100.0, 0.0, None)]);
    check(&a, "a", 0.0, ServiceState::Shed, Reason::NoPower);
    check_pool(&a, "pv", 0.0, 0.0);
    check_pool(&a, "battery", 0.0, 0.0);
    assert_eq!(a.available_w, 0.0, "available");
    // No pool at all: nothing to share.
    let a = allocate_pools(&[], &[], &[svc("a", 1, 100.0, 0.0, None)]);
    check(&a, "a", 0.0, ServiceState::Shed, Reason::NoPower);
    assert!(
        a.available_w == 0.0 && a.available_w.is_sign_positive(),
        "0, not -0"
    );
}

// ---------------------------------------------------------------------------------
// Properties

fn effective(s: &ServiceDemand) -> f64 {
    s.max_w.map_or(s.demand_w, |m| s.demand_w.min(m))
}

fn watts(max: f64) -> impl Strategy<Value = f64> {
    prop_oneof![1 => Just(0.0), 4 => 0.0..max]
}

fn services_strategy() -> impl Strategy<Value = Vec<ServiceDemand>> {
    prop::collection::vec(
        (
            1u32..=4,
            watts(10_000.0),
            prop_oneof![2 => Just(0.0), 1 => 0.0..3_000.0],
            prop::option::of(watts(8_000.0)),
        ),
        0..40,
    )
    .prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (tier, demand, min, max))| svc(&format!("s{i}"), tier, demand, min, max))
            .collect()
    })
}

fn tiers_strategy() -> impl Strategy<Value = Vec<TierRule>> {
    prop::collection::vec(
        (
            1u32..=4,
            prop_oneof![Just(Split::ProRata), Just(Split::Equal)],
        ),
        0..5,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(tier, split)| rule(tier, split))
            .collect()
    })
}

proptest! {
    #[test]
    fn allocation_invariants(
        available in watts(60_000.0),
        tiers in tiers_strategy(),
        services in services_strategy(),
    ) {
        let a = allocate(available, &tiers, &services);
        prop_assert_eq!(a.services.len(), services.len(), "one grant per service");
        prop_assert!(a.allocated_w <= available + 1e-6,
            "allocated {} > available {}", a.allocated_w, available);
        prop_assert!(a.headroom_w >= 0.0, "headroom {} < 0", a.headroom_w);
        prop_assert!((a.headroom_w - (available - a.allocated_w).max(0.0)).abs() < 1e-6,
            "headroom {} != available - allocated", a.headroom_w);

        let total_e: f64 = services.iter().map(effective).sum();
        let sum: f64 = a.services.iter().map(|g| g.allocated_w).sum();
        prop_assert!((sum - a.allocated_w).abs() < 1e-6, "allocated_w is the sum of grants");
        prop_assert!((sum - available.min(total_e)).abs() < 1e-6,
            "sum {} != min(available {}, sum of e {})", sum, available, total_e);

        for (s, g) in services.iter().zip(&a.services) {
            let e = effective(s);
            prop_assert_eq!(&g.id, &s.id, "grants keep the input order");
            prop_assert!(g.allocated_w >= 0.0 && g.allocated_w <= e,
                "service `{}`: allocated {} outside [0, {}]", s.id, g.allocated_w, e);
            let expected_state = if s.demand_w == 0.0 {
                ServiceState::Idle
            } else if g.allocated_w == s.demand_w {
                ServiceState::Served
            } else if g.allocated_w == 0.0 {
                ServiceState::Shed
            } else {
                ServiceState::Partial
            };
            prop_assert_eq!(g.state, expected_state, "service `{}`: state", &s.id);
        }

        // Priority: when a service of tier t is short of its effective demand, no
        // service of a later tier gets more than its minimum; when it is short of its
        // minimum, later tiers get nothing.
        for (s, g) in services.iter().zip(&a.services) {
            let e = effective(s);
            let min_ask = e.min(s.min_w);
            for (s2, g2) in services.iter().zip(&a.services) {
                if s2.tier <= s.tier {
                    continue;
                }
                let min_ask2 = effective(s2).min(s2.min_w);
                if g.allocated_w < e - 1e-9 {
                    prop_assert!(g2.allocated_w <= min_ask2 + 1e-9,
                        "`{}` (tier {}) is short, yet `{}` (tier {}) gets {} > its minimum {}",
                        s.id, s.tier, s2.id, s2.tier, g2.allocated_w, min_ask2);
                }
                if g.allocated_w < min_ask - 1e-9 {
                    prop_assert!(g2.allocated_w <= 1e-9,
                        "`{}` (tier {}) is short of its minimum, yet `{}` (tier {}) gets {}",
                        s.id, s.tier, s2.id, s2.tier, g2.allocated_w);
                }
            }
        }
    }

    #[test]
    fn more_power_never_lowers_a_tier_one_allocation(
        available in watts(30_000.0),
        extra in watts(30_000.0),
        tiers in tiers_strategy(),
        services in services_strategy(),
    ) {
        let less = allocate(available, &tiers, &services);
        let more = allocate(available + extra, &tiers, &services);
        for ((s, g1), g2) in services.iter().zip(&less.services).zip(&more.services) {
            if s.tier == 1 {
                prop_assert!(g2.allocated_w >= g1.allocated_w - 1e-9,
                    "service `{}`: {} W with {} W available, {} W with {} W",
                    s.id, g1.allocated_w, available, g2.allocated_w, available + extra);
            }
        }
    }

    #[test]
    fn simulate_runs_allocate_on_valid_requests(
        available in watts(60_000.0),
        services in services_strategy(),
    ) {
        let req = SimulateRequest {
            available_w: available,
            tiers: vec![rule(1, Split::Equal), rule(2, Split::ProRata)],
            services: services
                .iter()
                .map(|s| SimulateService {
                    id: s.id.to_string(),
                    tier: s.tier,
                    demand_w: s.demand_w,
                    min_w: s.min_w,
                    // Valid requests: a cap is never below the minimum.
                    max_w: s.max_w.map(|m| m.max(s.min_w)),
                })
                .collect(),
        };
        let resp = simulate(&req);
        prop_assert!(resp.is_ok(), "valid request refused: {:?}", resp.as_ref().err());
        let resp = resp.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let demands: Vec<ServiceDemand> = req.services.iter().map(ServiceDemand::from).collect();
        let live = allocate(available, &req.tiers, &demands);
        prop_assert_eq!(resp.allocated_w, live.allocated_w, "same total as allocate");
        for (r, l) in resp.services.iter().zip(&live.services) {
            prop_assert_eq!(r.allocated_w, l.allocated_w, "service `{}`: same as allocate", &r.id);
            prop_assert_eq!(r.state, l.state, "service `{}`: same state", &r.id);
        }
    }
}

// ---------------------------------------------------------------------------------
// Properties of pools

fn tier_list() -> impl Strategy<Value = Option<Vec<u32>>> {
    prop::option::of(prop::collection::vec(1u32..=4, 0..3))
}

/// PV for every tier, and maybe a battery and a grid, each for some tiers.
fn pools_strategy() -> impl Strategy<Value = Vec<Pool>> {
    (
        watts(20_000.0),
        prop::option::of((watts(10_000.0), tier_list())),
        prop::option::of((watts(10_000.0), tier_list())),
    )
        .prop_map(|(pv, battery, grid)| {
            let mut pools = vec![Pool {
                name: "pv",
                available_w: pv,
                tiers: None,
            }];
            for (name, p) in [("battery", battery), ("grid", grid)] {
                if let Some((available_w, tiers)) = p {
                    pools.push(Pool {
                        name,
                        available_w,
                        tiers,
                    });
                }
            }
            pools
        })
}

proptest! {
    #[test]
    fn pool_invariants(
        pools in pools_strategy(),
        tiers in tiers_strategy(),
        services in services_strategy(),
    ) {
        let a = allocate_pools(&pools, &tiers, &services);
        let offered: f64 = pools.iter().map(|p| p.available_w).sum();
        prop_assert_eq!(a.services.len(), services.len(), "one grant per service");
        prop_assert_eq!(a.pools.len(), pools.len(), "one use per pool");
        prop_assert!((a.available_w - offered).abs() < 1e-6, "available is the sum of the pools");
        prop_assert!(a.allocated_w <= offered + 1e-6,
            "allocated {} > the pools' {}", a.allocated_w, offered);
        prop_assert!((a.headroom_w - (a.available_w - a.allocated_w).max(0.0)).abs() < 1e-6,
            "headroom {} != available - allocated", a.headroom_w);

        let mut used = 0.0;
        for (p, u) in pools.iter().zip(&a.pools) {
            prop_assert_eq!(u.name, p.name, "pools keep the input order");
            prop_assert_eq!(u.available_w, p.available_w, "pool `{}`: available", p.name);
            prop_assert!(u.used_w >= 0.0 && u.used_w <= u.available_w,
                "pool `{}` over-used: {} of {}", p.name, u.used_w, u.available_w);
            used += u.used_w;
        }
        let sum: f64 = a.services.iter().map(|g| g.allocated_w).sum();
        prop_assert!((sum - a.allocated_w).abs() < 1e-6, "allocated_w is the sum of grants");
        prop_assert!((used - sum).abs() < 1e-6, "the pools gave {} W, the grants are {} W", used, sum);

        for (s, g) in services.iter().zip(&a.services) {
            let e = effective(s);
            prop_assert!(g.allocated_w >= 0.0 && g.allocated_w <= e,
                "service `{}`: allocated {} outside [0, {}]", s.id, g.allocated_w, e);
        }

        // No tier receives from a pool it may not use: for every set of tiers, what
        // they got fits in what the pools open to any of them gave (with the totals
        // equal, this is Hall's condition: the grants can be traced to pools).
        for set in 1u32..16 {
            let in_set = |t: u32| (1..=4).contains(&t) && set & (1 << (t - 1)) != 0;
            let got: f64 = a.services.iter().filter(|g| in_set(g.tier)).map(|g| g.allocated_w).sum();
            let gave: f64 = pools
                .iter()
                .zip(&a.pools)
                .filter(|(p, _)| (1..=4).any(|t| in_set(t) && p.serves(t)))
                .map(|(_, u)| u.used_w)
                .sum();
            prop_assert!(got <= gave + 1e-6,
                "tiers {:04b} got {} W, their pools gave {} W", set, got, gave);
        }

        // Priority: when a service of tier t is short, a later tier that can reach only
        // pools tier t may use gets no more than its minimum, and nothing when the
        // service is short of its minimum.
        for (s, g) in services.iter().zip(&a.services) {
            let e = effective(s);
            let min_ask = e.min(s.min_w);
            for (s2, g2) in services.iter().zip(&a.services) {
                let within = pools.iter().all(|p| !p.serves(s2.tier) || p.serves(s.tier));
                if s2.tier <= s.tier || !within {
                    continue;
                }
                let min_ask2 = effective(s2).min(s2.min_w);
                if g.allocated_w < e - 1e-9 {
                    prop_assert!(g2.allocated_w <= min_ask2 + 1e-9,
                        "`{}` (tier {}) is short, yet `{}` (tier {}) gets {} > its minimum {}",
                        s.id, s.tier, s2.id, s2.tier, g2.allocated_w, min_ask2);
                }
                if g.allocated_w < min_ask - 1e-9 {
                    prop_assert!(g2.allocated_w <= 1e-9,
                        "`{}` (tier {}) is short of its minimum, yet `{}` (tier {}) gets {}",
                        s.id, s.tier, s2.id, s2.tier, g2.allocated_w);
                }
            }
        }
    }

    #[test]
    fn allocate_is_allocate_pools_with_one_pool_for_every_tier(
        available in watts(60_000.0),
        tiers in tiers_strategy(),
        services in services_strategy(),
    ) {
        let one = Pool { name: ALL_POWER, available_w: available, tiers: None };
        prop_assert_eq!(
            allocate(available, &tiers, &services),
            allocate_pools(&[one], &tiers, &services)
        );
    }

    #[test]
    fn allocate_is_the_allocation_before_pools(
        available in prop_oneof![8 => watts(60_000.0), 1 => Just(-5.0), 1 => Just(f64::NAN)],
        tiers in tiers_strategy(),
        services in services_strategy(),
    ) {
        let now = allocate(available, &tiers, &services);
        let before = before_pools::allocate(available, &tiers, &services);
        prop_assert_eq!(now.available_w, before.available_w, "available");
        prop_assert_eq!(now.allocated_w, before.allocated_w, "allocated");
        prop_assert_eq!(now.headroom_w, before.headroom_w, "headroom");
        prop_assert_eq!(now.services, before.services, "grants");
    }

    #[test]
    fn pools_open_to_every_tier_act_as_one(
        parts in prop::collection::vec(watts(20_000.0), 1..4),
        tiers in tiers_strategy(),
        services in services_strategy(),
    ) {
        let pools: Vec<Pool> = parts
            .iter()
            .zip(["pv", "battery", "grid"])
            .map(|(&available_w, name)| Pool { name, available_w, tiers: None })
            .collect();
        let total = parts.iter().fold(0.0, |sum, w| sum + w);
        let split = allocate_pools(&pools, &tiers, &services);
        let one = allocate(total, &tiers, &services);
        prop_assert!((split.allocated_w - one.allocated_w).abs() < 1e-6, "allocated");
        for (g1, g2) in split.services.iter().zip(&one.services) {
            prop_assert!((g1.allocated_w - g2.allocated_w).abs() < 1e-6,
                "service `{}`: {} W from the pools, {} W from one", g1.id, g1.allocated_w, g2.allocated_w);
            prop_assert_eq!(g1.state, g2.state, "service `{}`: state", &g1.id);
            prop_assert_eq!(g1.reason, g2.reason, "service `{}`: reason", &g1.id);
        }
        // Drawn in order: a pool gives only once those before it are empty.
        let used: Vec<f64> = split.pools.iter().map(|p| p.used_w).collect();
        for k in 1..split.pools.len() {
            if used[k] > 0.0 {
                for (p, u) in split.pools.iter().zip(&used).take(k) {
                    prop_assert!((p.available_w - u).abs() < 1e-6,
                        "pool {} gave while `{}` kept {} W", k, p.name, p.available_w - u);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// simulate()

/// A request body shaped exactly as DESIGN.md §8 shows it.
const REQUEST: &str = r#"{
    "available_w": 4200,
    "tiers": [{"tier": 1, "split": "equal"}, {"tier": 2, "split": "pro_rata"}],
    "services": [
        {"id": "clinic-fridge", "tier": 1, "demand_w": 300, "min_w": 150, "max_w": null},
        {"id": "water-pump", "tier": 1, "demand_w": 1200, "min_w": 0, "max_w": 1000},
        {"id": "school", "tier": 2, "demand_w": 3000, "min_w": 500, "max_w": 2500},
        {"id": "laundry", "tier": 2, "demand_w": 1000, "min_w": 0, "max_w": null},
        {"id": "ev-charger", "tier": 3, "demand_w": 7000, "min_w": 0, "max_w": null}
    ]
}"#;

#[test]
fn simulate_accepts_the_documented_request_body() {
    // e: fridge 300, pump min(1200, 1000) = 1000, school min(3000, 2500) = 2500,
    //    laundry 1000, ev 7000.
    // Minima: tier 1 asks 150 -> 4050 left; tier 2 asks 500 -> 3550 left; tier 3 asks 0.
    // Remainder: tier 1 residuals 150 + 1000 = 1150 <= 3550 -> fridge 300, pump 1000;
    //   2400 left. Tier 2 residuals 2000 + 1000 = 3000 > 2400 -> pro rata:
    //   school 500 + 2000 x 2400 / 3000 = 500 + 1600 = 2100, laundry 1000 x 2400 / 3000 = 800.
    //   Tier 3 (not listed: pro rata) gets nothing.
    // Allocated 300 + 1000 + 2100 + 800 = 4200, headroom 0.
    let req: SimulateRequest = serde_json::from_str(REQUEST).expect("the documented body parses");
    let resp = simulate(&req).expect("the documented body is valid");
    assert_eq!(resp.available_w, 4200.0, "available");
    assert_eq!(resp.allocated_w, 4200.0, "allocated");
    assert_eq!(resp.headroom_w, 0.0, "headroom");
    let expected = [
        (
            "clinic-fridge",
            300.0,
            ServiceState::Served,
            Reason::FullyServed,
        ),
        ("water-pump", 1000.0, ServiceState::Partial, Reason::Capped),
        ("school", 2100.0, ServiceState::Partial, Reason::TierShare),
        ("laundry", 800.0, ServiceState::Partial, Reason::TierShare),
        (
            "ev-charger",
            0.0,
            ServiceState::Shed,
            Reason::HigherTiersFirst,
        ),
    ];
    assert_eq!(resp.services.len(), expected.len(), "one entry per service");
    for (got, (id, allocated, state, reason)) in resp.services.iter().zip(expected) {
        assert_eq!(got.id, id, "order of the request");
        assert!(
            (got.allocated_w - allocated).abs() < 1e-9,
            "service `{id}`: allocated {} W, expected {allocated} W",
            got.allocated_w
        );
        assert_eq!(got.state, state, "service `{id}`: state");
        assert_eq!(got.reason, reason, "service `{id}`: reason");
    }

    // The response carries the fields §8 promises.
    let json = serde_json::to_value(&resp).expect("the response serializes");
    assert_eq!(
        json["allocated_w"],
        serde_json::json!(4200.0),
        "allocated_w in JSON"
    );
    assert_eq!(
        json["headroom_w"],
        serde_json::json!(0.0),
        "headroom_w in JSON"
    );
    assert_eq!(
        json["services"][1]["id"], "water-pump",
        "services[].id in JSON"
    );
    assert_eq!(
        json["services"][1]["allocated_w"],
        serde_json::json!(1000.0),
        "services[].allocated_w"
    );
    assert_eq!(
        json["services"][1]["state"], "partial",
        "services[].state in JSON"
    );
    assert_eq!(
        json["services"][1]["reason"], "capped",
        "services[].reason in JSON"
    );
    assert_eq!(json["services"][4]["state"], "shed", "shed state in JSON");
}

#[test]
fn simulate_request_optional_fields_default() {
    let body = r#"{"available_w": 100, "services": [{"id": "a", "tier": 1, "demand_w": 50}]}"#;
    let req: SimulateRequest =
        serde_json::from_str(body).expect("tiers, min_w and max_w may be left out");
    assert!(req.tiers.is_empty(), "tiers default to none");
    let resp = simulate(&req).expect("valid");
    assert_eq!(resp.services[0].allocated_w, 50.0, "served");
    assert_eq!(resp.headroom_w, 50.0, "headroom 100 - 50");
}

#[test]
fn simulate_request_rejects_unknown_fields() {
    let top = r#"{"available_w": 100, "services": [], "battery_w": 5}"#;
    assert!(
        serde_json::from_str::<SimulateRequest>(top).is_err(),
        "unknown top-level field refused"
    );
    let service = r#"{"available_w": 100, "services": [{"id": "a", "tier": 1, "demand": 50}]}"#;
    assert!(
        serde_json::from_str::<SimulateRequest>(service).is_err(),
        "unknown service field refused"
    );
    let split = r#"{"available_w": 100, "tiers": [{"tier": 1, "split": "fair"}], "services": []}"#;
    assert!(
        serde_json::from_str::<SimulateRequest>(split).is_err(),
        "unknown split refused"
    );
}

fn sim_service(
    id: &str,
    tier: u32,
    demand_w: f64,
    min_w: f64,
    max_w: Option<f64>,
) -> SimulateService {
    SimulateService {
        id: id.to_string(),
        tier,
        demand_w,
        min_w,
        max_w,
    }
}

#[test]
fn simulate_rejects_bad_input_naming_service_and_field() {
    let req = SimulateRequest {
        available_w: -1.0,
        tiers: vec![
            rule(0, Split::Equal),
            rule(2, Split::Equal),
            rule(2, Split::ProRata),
        ],
        services: vec![
            sim_service("x", 1, -5.0, 0.0, None),
            sim_service("y", 0, 100.0, f64::NAN, Some(-1.0)),
            sim_service("z", 1, 100.0, 300.0, Some(200.0)),
            sim_service("x", 2, 100.0, 0.0, Some(f64::INFINITY)),
            sim_service(" ", 1, 100.0, 0.0, None),
        ],
    };
    let errors = simulate(&req).expect_err("the request is refused");
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let expected = [
        "available_w must be a finite number >= 0",
        "tiers: tier must be 1 or more",
        "tiers: tier 2 is listed more than once",
        "service `x`: demand_w must be a finite number >= 0",
        "service `y`: tier must be 1 or more",
        "service `y`: min_w must be a finite number >= 0",
        "service `y`: max_w must be a finite number >= 0",
        "service `z`: max_w (200) must be >= min_w (300)",
        "service `x`: id is listed more than once",
        "service `x`: max_w must be a finite number >= 0",
        "services[4]: id must not be empty",
    ];
    assert_eq!(messages, expected, "every problem, in request order");
    assert_eq!(
        errors[3],
        InvalidInput::NotNonNegative {
            id: "x".to_string(),
            field: "demand_w"
        },
        "the error names the service and the field"
    );
}

#[test]
fn simulate_accepts_zero_everything_and_equal_min_max() {
    let req = SimulateRequest {
        available_w: 0.0,
        tiers: vec![],
        services: vec![
            sim_service("a", 1, 0.0, 0.0, Some(0.0)),
            sim_service("b", 3, 10.0, 5.0, Some(5.0)),
        ],
    };
    let resp = simulate(&req).expect("zeros and max_w == min_w are valid");
    assert_eq!(resp.services[0].state, ServiceState::Idle, "a: idle");
    assert_eq!(resp.services[1].state, ServiceState::Shed, "b: shed");
    assert_eq!(resp.services[1].reason, Reason::NoPower, "b: no power");
}

// ---------------------------------------------------------------------------------
// The live path: pools from the plan and the site, in `Engine::evaluate`

mod live_path {
    use std::sync::Arc;
    use std::time::Duration;

    use chrono::{TimeZone, Utc};
    use ingest::metrics::IngestMetrics;
    use ingest::reading::Reading;
    use ingest::store::LiveStore;
    use ledger::plan::{BatterySource, GridSource, Plan, Sources};
    use ledger::{Decision, Journal};
    use sensors::config::DeviceConfig;
    use sensors::model::{Metric, Role};

    use crate::allocation::ServiceState;
    use crate::config::{ServiceConfig, initial_plan};
    use crate::engine::{Engine, EngineOptions};
    use crate::live::LiveSnapshot;

    /// A decision record that carries: an assembly held on `at`'s day.
    fn carried(at: chrono::DateTime<Utc>) -> Decision {
        Decision {
            assembly_date: at.date_naive(),
            votes_for: 9,
            votes_against: 2,
            votes_abstain: 1,
            quorum_required: 10,
            present: 12,
            minutes: "Adopted.".into(),
            panel: None,
        }
    }

    /// The ids of the services of `plan`: those of the site configuration here.
    fn service_ids(plan: &Plan) -> std::collections::BTreeSet<String> {
        plan.services.iter().map(|s| s.id.clone()).collect()
    }

    fn device(id: &str, role: Role) -> DeviceConfig {
        DeviceConfig {
            id: id.into(),
            name: None,
            role,
            profile: "generic-json".into(),
            modbus: None,
            serial: None,
            mqtt: None,
            power_sign: None,
            max_power_w: None,
            max_messages_per_s: None,
            sunspec_model: None,
            registers: Vec::new(),
            poll_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        }
    }

    fn service(json: serde_json::Value) -> ServiceConfig {
        serde_json::from_value(json).expect("service config")
    }

    fn state<'a>(live: &'a LiveSnapshot, id: &str) -> (f64, ServiceState, &'a str) {
        let s = live
            .services
            .iter()
            .find(|s| &*s.id == id)
            .unwrap_or_else(|| panic!("no service `{id}`"));
        (s.allocated_w, s.state, s.reason)
    }

    #[tokio::test]
    async fn evaluate_draws_on_the_pools_the_plan_opens_to_each_tier() {
        let now = Utc
            .timestamp_millis_opt(1_750_000_000_000)
            .single()
            .expect("time");
        let at = now.timestamp_millis() - 1_000;
        let r = |device: &str, metric, value| Reading {
            ts_ms: at,
            device: device.into(),
            metric,
            value,
        };
        let store = Arc::new(LiveStore::new(Duration::from_secs(120)));
        store
            .append(&[
                r("roof", Metric::PowerW, 1000.0),
                r("bat", Metric::PowerW, 0.0),
                r("bat", Metric::SocPct, 50.0),
                r("grid", Metric::PowerW, 1500.0),
                r("m-a", Metric::PowerW, 1500.0),
                r("m-b", Metric::PowerW, 1000.0),
                // A device the configuration does not know (the configuration refuses
                // such a meter): its readings count nowhere, not even as x's demand.
                r("m-x", Metric::PowerW, 900.0),
            ])
            .expect("append");
        let devices = [
            device("roof", Role::Pv),
            device("bat", Role::Battery),
            device("grid", Role::Grid),
            device("m-a", Role::Load),
            device("m-b", Role::Load),
        ];
        let services = [
            service(serde_json::json!({"id": "a", "meter": "m-a", "tier": 1})),
            service(serde_json::json!({"id": "b", "name": "Bee", "meter": "m-b", "tier": 2})),
            service(serde_json::json!({"id": "c", "demand_w": 200.0, "tier": 2})),
            service(serde_json::json!({"id": "x", "meter": "m-x", "tier": 2})),
        ];
        // Grid import for tier 1 only; the battery at 50 % is under its 60 % reserve.
        let plan = initial_plan(
            &services,
            &[],
            &Sources {
                battery: Some(BatterySource {
                    reserve_soc_pct: 60.0,
                    tiers: vec![],
                    max_discharge_w: Some(3000.0),
                }),
                grid: Some(GridSource {
                    max_import_w: 2000.0,
                    tiers: vec![1],
                }),
            },
        );
        let journal = Arc::new(Journal::open_in_memory().expect("journal"));
        journal.seed(&plan, &[], now).expect("seed");
        let engine = Engine::new(
            store.clone(),
            Arc::new(IngestMetrics::default()),
            journal.clone(),
            &devices,
            &services,
            EngineOptions::default(),
        )
        .await
        .expect("engine");

        // a (tier 1) asks 1500 of PV 1000 + grid 2000: PV 1000, grid 500. Tier 2 (b 1000,
        // c 200) reaches PV only, now 0. x's meter is unknown: it demands nothing.
        let live = engine.evaluate(now).await.expect("evaluate");
        assert!(!live.stale, "fresh data");
        assert_eq!(live.site.pv_w, 1000.0, "pv");
        assert_eq!(live.site.grid_w, 1500.0, "grid");
        assert_eq!(
            live.site.load_w, 2500.0,
            "metered loads of configured devices"
        );
        assert_eq!(live.site.battery_soc_pct, Some(50.0), "state of charge");
        assert_eq!(live.site.available_w, 3000.0, "PV + grid, no battery");
        assert_eq!(live.site.allocated_w, 1500.0, "allocated");
        // /api/live says what each source gave: all the sun, 500 W of the import.
        let pools: Vec<(&str, f64, f64)> = live
            .pools
            .iter()
            .map(|p| (p.name, p.available_w, p.used_w))
            .collect();
        assert_eq!(pools, [("pv", 1000.0, 1000.0), ("grid", 2000.0, 500.0)]);
        assert_eq!(
            state(&live, "a"),
            (1500.0, ServiceState::Served, "fully_served")
        );
        assert_eq!(
            state(&live, "b"),
            (0.0, ServiceState::Shed, "higher_tiers_first")
        );
        assert_eq!(
            state(&live, "c"),
            (0.0, ServiceState::Shed, "higher_tiers_first")
        );
        assert_eq!(state(&live, "x"), (0.0, ServiceState::Idle, "no_demand"));
        let names: Vec<&str> = live.services.iter().map(|s| &*s.name).collect();
        assert_eq!(
            names,
            ["a", "Bee", "c", "x"],
            "names, in the order of the plan"
        );
        let first_seq = live.plan.as_ref().map(|p| p.seq);

        // The assembly opens the grid to every tier: the next evaluation uses the new
        // plan. Tier 2 asks 1200 of the 1500 W of import left: served.
        let open = Plan {
            sources: Sources {
                grid: Some(GridSource {
                    max_import_w: 2000.0,
                    tiers: vec![],
                }),
                ..plan.sources.clone()
            },
            ..plan.clone()
        };
        journal
            .adopt_plan(&open, &carried(now), &service_ids(&open), "assembly", now)
            .expect("adopt");
        let live = engine.evaluate(now).await.expect("evaluate");
        assert_ne!(live.plan.as_ref().map(|p| p.seq), first_seq, "the new plan");
        assert_eq!(
            state(&live, "b"),
            (1000.0, ServiceState::Served, "fully_served")
        );
        assert_eq!(
            state(&live, "c"),
            (200.0, ServiceState::Served, "fully_served")
        );
        assert_eq!(live.site.allocated_w, 2700.0, "allocated");
        assert_eq!(live.site.headroom_w, 300.0, "headroom");

        // Once the battery is above its reserve, its 3000 W count too.
        store
            .append(&[Reading {
                ts_ms: at + 500,
                ..r("bat", Metric::SocPct, 70.0)
            }])
            .expect("append");
        let live = engine.evaluate(now).await.expect("evaluate");
        assert_eq!(
            live.site.battery_soc_pct,
            Some(70.0),
            "the latest state of charge"
        );
        assert_eq!(live.site.available_w, 6000.0, "PV + battery + grid");
        assert_eq!(live.site.allocated_w, 2700.0, "allocated");
    }
    /// Of several readings in the window, the newest counts; a device whose newest
    /// power is older than `value_max_age` counts neither in the balance nor as a
    /// demand, though the device list still shows it with its time; a device's last
    /// reading of any metric is its "last seen".
    #[tokio::test]
    async fn evaluate_counts_each_devices_newest_recent_reading() {
        let now = Utc
            .timestamp_millis_opt(1_750_000_000_000)
            .single()
            .expect("time");
        let ms = now.timestamp_millis();
        let r = |age_ms: i64, device: &str, metric, value| Reading {
            ts_ms: ms - age_ms,
            device: device.into(),
            metric,
            value,
        };
        let store = Arc::new(LiveStore::new(Duration::from_secs(600)));
        store
            .append(&[
                r(3_000, "roof", Metric::PowerW, 800.0),
                r(1_000, "roof", Metric::PowerW, 2_000.0),
                r(2_000, "roof", Metric::PowerW, 1_200.0),
                // The pump's meter stopped 90 s ago, past the 60 s limit...
                r(90_000, "m-pump", Metric::PowerW, 700.0),
                // ...though its energy counter still arrived 5 s ago.
                r(5_000, "m-pump", Metric::EnergyImportWh, 12_345.0),
                r(1_000, "m-fridge", Metric::PowerW, 150.0),
            ])
            .expect("append");
        let devices = [
            device("roof", Role::Pv),
            device("m-pump", Role::Load),
            device("m-fridge", Role::Load),
        ];
        let services = [
            service(serde_json::json!({"id": "fridge", "meter": "m-fridge", "tier": 1})),
            service(serde_json::json!({"id": "pump", "meter": "m-pump", "tier": 1})),
        ];
        let plan = initial_plan(&services, &[], &Sources::default());
        let journal = Arc::new(Journal::open_in_memory().expect("journal"));
        journal.seed(&plan, &[], now).expect("seed");
        let engine = Engine::new(
            store,
            Arc::new(IngestMetrics::default()),
            journal,
            &devices,
            &services,
            EngineOptions::default(),
        )
        .await
        .expect("engine");
        let live = engine.evaluate(now).await.expect("evaluate");
        assert_eq!(live.site.pv_w, 2_000.0, "the newest PV reading");
        assert_eq!(
            live.site.load_w, 150.0,
            "the pump's old power does not count"
        );
        assert_eq!(live.site.available_w, 2_000.0);
        assert_eq!(
            state(&live, "fridge"),
            (150.0, ServiceState::Served, "fully_served")
        );
        assert_eq!(state(&live, "pump"), (0.0, ServiceState::Idle, "no_demand"));
        let pump = live
            .devices
            .iter()
            .find(|d| &*d.id == "m-pump")
            .expect("pump meter listed");
        assert_eq!(pump.power_w, Some(700.0), "its last power, however old");
        assert_eq!(
            pump.last_seen.map(|t| t.timestamp_millis()),
            Some(ms - 5_000),
            "last seen by its energy counter"
        );
        assert_eq!(
            live.last_data.map(|t| t.timestamp_millis()),
            Some(ms - 1_000),
            "the newest reading of the site"
        );
    }

    /// A polled device, over TCP or a serial line, is healthy while its last poll is
    /// within three poll intervals (at least 5 s); an MQTT device within
    /// `value_max_age`, since it publishes when it likes.
    #[tokio::test]
    async fn polled_devices_tcp_or_serial_get_the_polling_window() {
        let now = Utc
            .timestamp_millis_opt(1_750_000_000_000)
            .single()
            .expect("time");
        let polled = |id: &str, link: &str| {
            let mut d = device(id, Role::Load);
            d.profile = "sdm630".into();
            match link {
                "tcp" => {
                    d.modbus = Some(sensors::config::ModbusTcpConfig {
                        host: "10.0.0.2".into(),
                        port: 502,
                        unit: 3,
                    });
                }
                _ => {
                    d.serial = Some(sensors::config::SerialConfig {
                        path: "/dev/ttyUSB0".into(),
                        baud: 9600,
                        parity: sensors::config::Parity::None,
                        stop_bits: 1,
                        data_bits: 8,
                        unit: 3,
                    });
                }
            }
            d
        };
        let devices = [
            polled("tcp-late", "tcp"),
            polled("rtu-late", "serial"),
            polled("rtu-now", "serial"),
            device("mqtt-late", Role::Load),
            device("mqtt-silent", Role::Load),
        ];
        let metrics = Arc::new(IngestMetrics::default());
        let ten_s_ago = now - chrono::Duration::seconds(10);
        for id in ["tcp-late", "rtu-late", "mqtt-late"] {
            metrics.record_poll(id, ten_s_ago, 1, &[], Ok(Duration::from_millis(20)));
        }
        metrics.record_poll("rtu-now", now, 1, &[], Ok(Duration::from_millis(20)));
        let fifteen_s_ago = now - chrono::Duration::seconds(15);
        metrics.record_poll(
            "mqtt-silent",
            fifteen_s_ago,
            1,
            &[],
            Ok(Duration::from_millis(20)),
        );
        let journal = Arc::new(Journal::open_in_memory().expect("journal"));
        let engine = Engine::new(
            Arc::new(LiveStore::new(Duration::from_secs(600))),
            metrics,
            journal,
            &devices,
            &[],
            EngineOptions::default(),
        )
        .await
        .expect("engine");
        let live = engine.evaluate(now).await.expect("evaluate");
        let health: Vec<(&str, bool, &str)> = live
            .devices
            .iter()
            .map(|d| (&*d.id, d.healthy, d.state.as_str()))
            .collect();
        assert_eq!(
            health,
            [
                ("tcp-late", false, "down"),
                ("rtu-late", false, "down"),
                ("rtu-now", true, "up"),
                ("mqtt-late", true, "up"),
                // Silent for longer than makes the wall stale: its value still
                // counts (healthy), but it is not shown as simply up.
                ("mqtt-silent", true, "degraded"),
            ]
        );
    }

    /// The running engine evaluates again as soon as a plan is adopted and it is woken,
    /// not only at its next tick (here an hour away).
    #[tokio::test]
    async fn run_evaluates_at_once_after_an_adoption() {
        let store = Arc::new(LiveStore::new(Duration::from_secs(120)));
        let services = [
            service(serde_json::json!({"id": "a", "demand_w": 100.0, "tier": 1})),
            service(serde_json::json!({"id": "b", "demand_w": 100.0, "tier": 2})),
        ];
        let plan = initial_plan(&services, &[], &Sources::default());
        let journal = Arc::new(Journal::open_in_memory().expect("journal"));
        journal.seed(&plan, &[], Utc::now()).expect("seed");
        let engine = Engine::new(
            store,
            Arc::new(IngestMetrics::default()),
            journal.clone(),
            &[],
            &services,
            EngineOptions::default(),
        )
        .await
        .expect("engine");
        let (tx, mut rx) =
            tokio::sync::watch::channel(Arc::new(crate::engine::empty_snapshot(Utc::now())));
        let replan = Arc::new(tokio::sync::Notify::new());
        let cancel = tokio_util::sync::CancellationToken::new();
        let running = tokio::spawn(engine.run(
            tx,
            Duration::from_secs(3600),
            replan.clone(),
            cancel.clone(),
        ));
        let tier_of = |live: &LiveSnapshot, id: &str| {
            live.services.iter().find(|s| &*s.id == id).map(|s| s.tier)
        };
        // The first tick is immediate.
        tokio::time::timeout(Duration::from_secs(10), rx.changed())
            .await
            .expect("a first snapshot")
            .expect("engine running");
        assert_eq!(tier_of(&rx.borrow_and_update(), "b"), Some(2));

        let mut swapped = plan.clone();
        for s in &mut swapped.services {
            s.tier = if s.id == "b" { 1 } else { 2 };
        }
        let now = Utc::now();
        journal
            .adopt_plan(
                &swapped,
                &carried(now),
                &service_ids(&swapped),
                "assembly",
                now,
            )
            .expect("adopt");
        replan.notify_one();
        tokio::time::timeout(Duration::from_secs(10), rx.changed())
            .await
            .expect("a snapshot within seconds of the adoption, not at the next tick")
            .expect("engine running");
        assert_eq!(tier_of(&rx.borrow(), "b"), Some(1), "the new plan");
        cancel.cancel();
        running.await.expect("engine stops");
    }
}

// ---------------------------------------------------------------------------------
// The allocation before pools

/// The allocation as it stood before it drew on pools (commit 68efe0a), kept verbatim:
/// the oracle that [`allocate`], now [`allocate_pools`] with one pool, must match to
/// the bit.
mod before_pools {
    use crate::allocation::{Reason, ServiceDemand, ServiceGrant, ServiceState};
    use ledger::plan::{Split, TierRule};
    use serde::Serialize;

    /// The outcome of one evaluation.
    #[derive(Debug, Clone, PartialEq, Serialize)]
    pub(super) struct Allocation {
        /// The available power the allocation used (negative or not a number reads as 0).
        pub(super) available_w: f64,
        /// Sum of the services' allocations.
        pub(super) allocated_w: f64,
        /// `available_w - allocated_w`, never negative.
        pub(super) headroom_w: f64,
        /// One grant per service, in the order of the input.
        pub(super) services: Vec<ServiceGrant>,
    }

    /// Working figures of one service during an evaluation, in the order of the input.
    #[derive(Debug, Clone, Copy)]
    struct Work {
        tier: u32,
        /// Sanitized demand.
        demand: f64,
        /// Effective demand: `min(demand, max_w)`.
        e: f64,
        /// `min(e, min_w)`: what it asks in the minima pass.
        min_ask: f64,
        /// What it asks in the pass being run.
        ask: f64,
        /// What the pass being run granted.
        got: f64,
        /// What the minima pass granted.
        min_got: f64,
    }

    /// Where a pass ran short: the first tier whose asks it could not cover, and how much
    /// power that tier shared.
    #[derive(Debug, Clone, Copy)]
    struct Cut {
        tier: u32,
        shared: f64,
    }

    /// Shares `available_w` among `services` by the priorities of the plan (DESIGN.md §4).
    ///
    /// `tiers` gives each tier's split rule; a tier not listed shares pro rata, and when a
    /// tier is listed twice the first rule counts. Tiers are served in ascending order.
    /// Negative or non-numeric figures are read as described on [`ServiceDemand`]; a
    /// negative or non-numeric `available_w` reads as 0. Runs in O(n log n).
    pub(super) fn allocate(
        available_w: f64,
        tiers: &[TierRule],
        services: &[ServiceDemand],
    ) -> Allocation {
        // `>` is false for NaN: negative and NaN both read as 0 (and -0.0 becomes 0.0).
        let available = if available_w > 0.0 { available_w } else { 0.0 };

        // Split rules sorted by tier; the stable sort keeps the first-listed rule first.
        let mut rules: Vec<(u32, Split)> = tiers.iter().map(|r| (r.tier, r.split)).collect();
        rules.sort_by_key(|r| r.0);

        let mut work: Vec<Work> = services
            .iter()
            .map(|s| {
                let demand = non_negative(s.demand_w);
                let cap = s.max_w.filter(|m| !m.is_nan()).map(|m| m.max(0.0));
                let e = cap.map_or(demand, |c| demand.min(c));
                let min_ask = e.min(non_negative(s.min_w));
                Work {
                    tier: s.tier,
                    demand,
                    e,
                    min_ask,
                    ask: min_ask,
                    got: 0.0,
                    min_got: 0.0,
                }
            })
            .collect();
        // (tier, index) of every service, tiers ascending: each tier is a contiguous run.
        // Sorting these narrow keys rather than `work` keeps the evaluation fast.
        let mut order: Vec<(u32, usize)> = services.iter().map(|s| s.tier).zip(0..).collect();
        order.sort_unstable();

        // 2. Minima pass.
        let (min_cut, left) = run_pass(&mut work, &mut order, &rules, available);
        for w in &mut work {
            w.min_got = w.got;
            w.ask = (w.e - w.min_got).max(0.0);
        }
        // 3. Remainder pass, with what the minima left.
        let (rem_cut, _) = run_pass(&mut work, &mut order, &rules, left);

        let mut allocated_total = 0.0;
        let grants = services
            .iter()
            .zip(&work)
            .map(|(s, w)| {
                // A tier that the remainder pass covered gets its effective demand exactly,
                // so that a fully served service compares equal to its demand.
                let covered = rem_cut.is_none_or(|c| w.tier < c.tier);
                let allocated = if covered {
                    w.e
                } else {
                    (w.min_got + w.got).min(w.e)
                };
                allocated_total += allocated;
                let (state, reason) = judge(w, allocated, available, left, min_cut, rem_cut);
                ServiceGrant {
                    id: s.id.clone(),
                    tier: s.tier,
                    demand_w: w.demand,
                    allocated_w: allocated,
                    state,
                    reason,
                }
            })
            .collect();

        let headroom = available - allocated_total;
        Allocation {
            available_w: available,
            allocated_w: allocated_total,
            // Float noise may make the sum exceed what was available by a hair.
            headroom_w: if headroom > 0.0 { headroom } else { 0.0 },
            services: grants,
        }
    }

    /// The value if it is a finite number above 0, else 0.
    fn non_negative(x: f64) -> f64 {
        if x.is_finite() && x > 0.0 { x } else { 0.0 }
    }

    /// The split rule of a tier in rules sorted by tier; pro rata when it is not listed.
    fn split_of(rules: &[(u32, Split)], tier: u32) -> Split {
        let pos = rules.partition_point(|r| r.0 < tier);
        match rules.get(pos) {
            Some(&(t, split)) if t == tier => split,
            _ => Split::default(),
        }
    }

    /// One pass over the tiers with each service's `ask`: covered tiers get their asks
    /// exactly, the first tier not covered shares what remains by its split rule, later
    /// tiers get nothing. `order` lists (tier, index into `work`) by ascending tier; the
    /// services within a tier may be reordered. Writes each grant to `got` and returns
    /// where the pass ran short, if it did, and the power left over.
    fn run_pass(
        work: &mut [Work],
        order: &mut [(u32, usize)],
        rules: &[(u32, Split)],
        available: f64,
    ) -> (Option<Cut>, f64) {
        let mut remaining = available;
        let mut cut: Option<Cut> = None;
        for group in order.chunk_by_mut(|a, b| a.0 == b.0) {
            let tier = group.first().map_or(0, |g| g.0);
            if cut.is_some() {
                for_each_member(work, group, |w| w.got = 0.0);
                continue;
            }
            let asked: f64 = group
                .iter()
                .filter_map(|&(_, i)| work.get(i))
                .map(|w| w.ask)
                .sum();
            if asked <= remaining {
                for_each_member(work, group, |w| w.got = w.ask);
                remaining = (remaining - asked).max(0.0);
            } else {
                match split_of(rules, tier) {
                    Split::ProRata => for_each_member(work, group, |w| {
                        w.got = (w.ask * remaining / asked).min(w.ask);
                    }),
                    Split::Equal => water_fill(work, group, remaining),
                }
                cut = Some(Cut {
                    tier,
                    shared: remaining,
                });
                remaining = 0.0;
            }
        }
        (cut, remaining)
    }

    /// Applies `f` to each service of one tier group.
    fn for_each_member(work: &mut [Work], group: &[(u32, usize)], mut f: impl FnMut(&mut Work)) {
        for &(_, i) in group {
            if let Some(w) = work.get_mut(i) {
                f(w);
            }
        }
    }

    /// Max-min fair water-filling of `r` (less than the sum of the asks): everyone gets
    /// the same level, capped at their ask, and what small asks leave goes to the others.
    /// Reorders `group` by ask.
    fn water_fill(work: &mut [Work], group: &mut [(u32, usize)], r: f64) {
        let ask = |i: usize| work.get(i).map_or(0.0, |w| w.ask);
        group.sort_unstable_by(|a, b| ask(a.1).total_cmp(&ask(b.1)));
        let n = group.len();
        let mut left = r;
        for (k, &(_, i)) in group.iter().enumerate() {
            let share = left / (n - k) as f64;
            let Some(w) = work.get_mut(i) else { continue };
            if w.ask <= share {
                w.got = w.ask;
                left = (left - w.ask).max(0.0);
            } else {
                // Sorted ascending: every ask from here on is above the level.
                for &(_, j) in group.iter().skip(k) {
                    if let Some(w) = work.get_mut(j) {
                        w.got = share.min(w.ask);
                    }
                }
                break;
            }
        }
    }

    /// State and reason of one service, given what it got and how the passes went.
    fn judge(
        w: &Work,
        allocated: f64,
        available: f64,
        left_after_minima: f64,
        min_cut: Option<Cut>,
        rem_cut: Option<Cut>,
    ) -> (ServiceState, Reason) {
        if w.demand <= 0.0 {
            return (ServiceState::Idle, Reason::NoDemand);
        }
        if allocated == w.demand {
            return (ServiceState::Served, Reason::FullyServed);
        }
        let state = if allocated <= 0.0 {
            ServiceState::Shed
        } else {
            ServiceState::Partial
        };
        let reason = if allocated >= w.e {
            Reason::Capped
        } else if available <= 0.0 {
            Reason::NoPower
        } else if let Some(m) = min_cut.filter(|m| w.tier >= m.tier) {
            if w.tier > m.tier {
                // Higher tiers' minima took everything.
                Reason::HigherTiersFirst
            } else if w.min_ask > 0.0 {
                Reason::TierShare
            } else {
                // Its tier's minima took what remained and it has none.
                Reason::MinimumOnly
            }
        } else {
            // Its minimum was granted in full; the remainder pass did not satisfy it.
            match rem_cut {
                Some(r) if r.tier == w.tier && r.shared > 0.0 => Reason::TierShare,
                _ if left_after_minima <= 0.0 || allocated > 0.0 => Reason::MinimumOnly,
                _ => Reason::HigherTiersFirst,
            }
        };
        (state, reason)
    }
}
