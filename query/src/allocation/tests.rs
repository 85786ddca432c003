//! Expected values are worked out by hand in the comments and written as literals.

use super::*;
use proptest::prelude::*;

fn svc(id: &str, tier: u32, demand_w: f64, min_w: f64, max_w: Option<f64>) -> ServiceDemand {
    ServiceDemand {
        id: id.to_string(),
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
        .find(|g| g.id == id)
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
    let ids: Vec<&str> = a.services.iter().map(|g| g.id.as_str()).collect();
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
    let ids: Vec<&str> = a.services.iter().map(|g| g.id.as_str()).collect();
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
                    id: s.id.clone(),
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
