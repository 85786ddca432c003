//! Sharing the available power among services in the order of priority the assembly
//! voted (DESIGN.md §4), and the body of `POST /api/allocation/simulate` (DESIGN.md
//! §8), which validates a request and then runs [`allocate`]: the live allocation's
//! [`allocate_pools`] with all the power in one pool.
//!
//! Per evaluation:
//! 1. each service's effective demand is `e = min(demand, max_w)`;
//! 2. minima pass, tiers in ascending order: each service asks `min(e, min_w)`; while
//!    the remaining power covers a whole tier's asks they are granted exactly; the
//!    first tier it does not cover shares what remains by its split rule, and later
//!    tiers get no minimum;
//! 3. remainder pass, the same way with each service's residual `e - granted`;
//! 4. each service gets a state and a reason, the site its totals and headroom.
//!
//! The power comes from [`Pool`]s (PV, the battery, the grid), each of which the plan
//! may open to some tiers only: the power a tier can reach is what remains in the
//! pools it may use, so "the remaining power" above is counted per tier.
//!
//! With one tier, `pro_rata` and no minima this is the French collective
//! self-consumption default key: each share = demand x min(1, available / total demand).

use ledger::plan::{Split, TierRule};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;

/// How a service fares in one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    /// Gets all it demands.
    Served,
    /// Gets some, but less than it demands.
    Partial,
    /// Demands power and gets none.
    Shed,
    /// Demands nothing.
    Idle,
}

/// Why a service got what it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// It demands nothing.
    NoDemand,
    /// It gets all it demands.
    FullyServed,
    /// It is served up to its cap (`max_w`), below its demand.
    Capped,
    /// It gets its guaranteed minimum only: after the minima, nothing more reached it.
    MinimumOnly,
    /// Its tier was the one that could not be covered and shared what remained.
    TierShare,
    /// Nothing was left once the higher tiers were served.
    HigherTiersFirst,
    /// None of the pools its tier may use has any power.
    NoPower,
}

impl Reason {
    /// The stable code of the reason, as it is serialized (`tier_share`, ...).
    pub fn code(self) -> &'static str {
        match self {
            Reason::NoDemand => "no_demand",
            Reason::FullyServed => "fully_served",
            Reason::Capped => "capped",
            Reason::MinimumOnly => "minimum_only",
            Reason::TierShare => "tier_share",
            Reason::HigherTiersFirst => "higher_tiers_first",
            Reason::NoPower => "no_power",
        }
    }
}

/// One service as the allocation sees it: its place in the plan and its demand now.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceDemand {
    /// Shared, not copied: the live evaluation passes thousands of ids a second.
    pub id: Arc<str>,
    /// 1 is served first.
    pub tier: u32,
    /// What it would draw now, in watts. Negative or not a number counts as 0.
    pub demand_w: f64,
    /// Guaranteed minimum, in watts (0: none). Negative or not a number counts as 0.
    pub min_w: f64,
    /// Cap, in watts (`None`: no cap). Not a number counts as no cap, negative as 0.
    pub max_w: Option<f64>,
}

/// What one service gets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceGrant {
    pub id: Arc<str>,
    pub tier: u32,
    /// The demand the allocation used (a negative or non-numeric demand reads as 0).
    pub demand_w: f64,
    pub allocated_w: f64,
    pub state: ServiceState,
    pub reason: Reason,
}

/// A source of power the allocation may draw on, as far as the plan lets it (DESIGN.md
/// §4: PV always; the battery's discharge down to a reserve, for some tiers; grid
/// import up to a limit, for some tiers).
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// `pv`, `battery` or `grid`; the allocation only reports it.
    pub name: &'static str,
    /// What the pool may give now, in watts. Negative or not a number counts as 0.
    pub available_w: f64,
    /// The tiers allowed to draw on it; `None`: every tier (`Some` of an empty list:
    /// none).
    pub tiers: Option<Vec<u32>>,
}

impl Pool {
    /// Whether services of `tier` may draw on this pool.
    fn serves(&self, tier: u32) -> bool {
        self.tiers.as_ref().is_none_or(|t| t.contains(&tier))
    }
}

/// How much one pool gave.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolUse {
    pub name: &'static str,
    /// What it could give (a negative or non-numeric figure reads as 0).
    pub available_w: f64,
    /// What the grants drew from it; never above `available_w`.
    pub used_w: f64,
}

/// The name of the one pool of [`allocate`]: all the available power, for every tier.
pub const ALL_POWER: &str = "available";

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Allocation {
    /// The available power the allocation used: the sum of the pools (each negative
    /// or non-numeric figure reads as 0).
    pub available_w: f64,
    /// Sum of the services' allocations.
    pub allocated_w: f64,
    /// `available_w - allocated_w`, never negative. Power of a pool that no
    /// demanding tier may use counts here.
    pub headroom_w: f64,
    /// One grant per service, in the order of the input.
    pub services: Vec<ServiceGrant>,
    /// What each pool gave, in the order of the input.
    pub pools: Vec<PoolUse>,
}

/// Working figures of one service during an evaluation, in the order of the input.
#[derive(Debug, Clone, Copy)]
struct Work {
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
    /// The outcome, once both passes ran.
    allocated: f64,
    state: ServiceState,
    reason: Reason,
}

/// How one tier fared in one pass.
#[derive(Debug, Clone, Copy)]
struct TierPass {
    tier: u32,
    /// Its asks were not all granted in full.
    short: bool,
    /// It is the first short tier of the pass.
    first_short: bool,
    /// What it shared when short: all the power it could still reach.
    shared: f64,
}

/// How one tier fared in the whole evaluation: what it needs to explain its grants.
#[derive(Debug, Clone, Copy)]
struct TierFate {
    /// What its pools offered before any grant.
    reach: f64,
    /// What its pools still held after the minima pass.
    reach_after_minima: f64,
    minima: TierPass,
    remainder: TierPass,
}

/// Shares `available_w` among `services` by the priorities of the plan (DESIGN.md §4):
/// [`allocate_pools`] with one pool that every tier may use, [`ALL_POWER`].
///
/// `tiers` gives each tier's split rule; a tier not listed shares pro rata, and when a
/// tier is listed twice the first rule counts. Tiers are served in ascending order.
/// Negative or non-numeric figures are read as described on [`ServiceDemand`]; a
/// negative or non-numeric `available_w` reads as 0. Runs in O(n log n).
pub fn allocate(available_w: f64, tiers: &[TierRule], services: &[ServiceDemand]) -> Allocation {
    let all = Pool {
        name: ALL_POWER,
        available_w,
        tiers: None,
    };
    allocate_pools(std::slice::from_ref(&all), tiers, services)
}

/// Shares the power of several `pools` among `services` by the priorities of the plan
/// (DESIGN.md §4), each tier drawing only on the pools it may use.
///
/// The passes are those of the module documentation, where the power a tier can
/// reach is what remains in the pools it may use. A tier whose asks that power covers
/// draws them from its pools in the order given, so the caller lists them PV, battery,
/// grid: a tier covered by the sun leaves the battery and the grid untouched, and the
/// community imports only what the tiers it allows import for still lack. A tier it
/// does not cover shares all it can reach by its split rule and empties those pools;
/// later tiers then get what remains in the pools they may use (nothing when they may
/// use no other). With one pool that every tier may use, this is [`allocate`].
///
/// Figures are read as on [`allocate`] and [`Pool`]. Runs in O(n log n + t x p) for
/// n services, t tiers and p pools.
pub fn allocate_pools(
    pools: &[Pool],
    tiers: &[TierRule],
    services: &[ServiceDemand],
) -> Allocation {
    // `>` is false for NaN: negative and NaN both read as 0 (and -0.0 becomes 0.0).
    let offered: Vec<f64> = pools
        .iter()
        .map(|p| {
            if p.available_w > 0.0 {
                p.available_w
            } else {
                0.0
            }
        })
        .collect();
    let available = offered.iter().fold(0.0, |sum, w| sum + w);

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
                demand,
                e,
                min_ask,
                ask: min_ask,
                got: 0.0,
                min_got: 0.0,
                allocated: 0.0,
                state: ServiceState::Idle,
                reason: Reason::NoDemand,
            }
        })
        .collect();
    // (tier, index) of every service, tiers ascending: each tier is a contiguous run.
    // Sorting these narrow keys rather than `work` keeps the evaluation fast.
    let mut order: Vec<(u32, usize)> = services.iter().map(|s| s.tier).zip(0..).collect();
    order.sort_unstable();

    // 2. Minima pass.
    let mut left = offered.clone();
    let minima = run_pass(&mut work, &mut order, &rules, pools, &mut left);
    let after_minima = left.clone();
    for w in &mut work {
        w.min_got = w.got;
        w.ask = (w.e - w.min_got).max(0.0);
    }
    // 3. Remainder pass, with what the minima left.
    let remainder = run_pass(&mut work, &mut order, &rules, pools, &mut left);

    // 4. Both passes see the same tiers in the same order: one `TierPass` per group.
    let groups = order.chunk_by(|a, b| a.0 == b.0);
    for (group, (m, r)) in groups.zip(minima.iter().zip(&remainder)) {
        let fate = TierFate {
            reach: reach(pools, &offered, m.tier),
            reach_after_minima: reach(pools, &after_minima, m.tier),
            minima: *m,
            remainder: *r,
        };
        for &(_, i) in group {
            let Some(w) = work.get_mut(i) else { continue };
            // A tier that the remainder pass covered gets its effective demand exactly,
            // so that a fully served service compares equal to its demand.
            w.allocated = if r.short {
                (w.min_got + w.got).min(w.e)
            } else {
                w.e
            };
            (w.state, w.reason) = judge(w, &fate);
        }
    }

    let mut allocated_total = 0.0;
    let grants = services
        .iter()
        .zip(&work)
        .map(|(s, w)| {
            allocated_total += w.allocated;
            ServiceGrant {
                id: s.id.clone(),
                tier: s.tier,
                demand_w: w.demand,
                allocated_w: w.allocated,
                state: w.state,
                reason: w.reason,
            }
        })
        .collect();
    let pools = pools
        .iter()
        .zip(offered.iter().zip(&left))
        .map(|(p, (&offered, &left))| PoolUse {
            name: p.name,
            available_w: offered,
            used_w: offered - left,
        })
        .collect();

    let headroom = available - allocated_total;
    Allocation {
        available_w: available,
        allocated_w: allocated_total,
        // Float noise may make the sum exceed what was available by a hair.
        headroom_w: if headroom > 0.0 { headroom } else { 0.0 },
        services: grants,
        pools,
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

/// What the pools that `tier` may use hold, by `left` (one figure per pool).
fn reach(pools: &[Pool], left: &[f64], tier: u32) -> f64 {
    pools
        .iter()
        .zip(left)
        .filter(|(p, _)| p.serves(tier))
        .fold(0.0, |sum, (_, w)| sum + w)
}

/// Takes `need` from the pools that `tier` may use, in the order of the pools.
fn draw(pools: &[Pool], left: &mut [f64], tier: u32, mut need: f64) {
    for (p, l) in pools.iter().zip(left.iter_mut()) {
        if need <= 0.0 {
            break;
        }
        if p.serves(tier) {
            let take = need.min(*l);
            *l -= take;
            need -= take;
        }
    }
}

/// One pass over the tiers with each service's `ask`: a tier whose asks the power it
/// can reach covers gets them exactly; one it does not cover shares what it can reach
/// by its split rule. After the first short tier, a tier that can reach nothing gets
/// nothing. `order` lists (tier, index into `work`) by ascending tier; the services
/// within a tier may be reordered. Writes each grant to `got`, takes the grants from
/// `left` (what remains in each pool) and returns how each tier fared, in the order
/// of `order`.
fn run_pass(
    work: &mut [Work],
    order: &mut [(u32, usize)],
    rules: &[(u32, Split)],
    pools: &[Pool],
    left: &mut [f64],
) -> Vec<TierPass> {
    let mut passes = Vec::new();
    let mut any_short = false;
    for group in order.chunk_by_mut(|a, b| a.0 == b.0) {
        let tier = group.first().map_or(0, |g| g.0);
        let reachable = reach(pools, left, tier);
        let asked: f64 = group
            .iter()
            .filter_map(|&(_, i)| work.get(i))
            .map(|w| w.ask)
            .sum();
        // With one pool, every tier after the first short one reaches nothing.
        let short = asked > reachable || (any_short && reachable <= 0.0);
        if !short {
            for_each_member(work, group, |w| w.got = w.ask);
            draw(pools, left, tier, asked);
        } else {
            if !any_short || reachable > 0.0 {
                match split_of(rules, tier) {
                    Split::ProRata => for_each_member(work, group, |w| {
                        w.got = (w.ask * reachable / asked).min(w.ask);
                    }),
                    Split::Equal => water_fill(work, group, reachable),
                }
            } else {
                for_each_member(work, group, |w| w.got = 0.0);
            }
            for (p, l) in pools.iter().zip(left.iter_mut()) {
                if p.serves(tier) {
                    *l = 0.0;
                }
            }
        }
        passes.push(TierPass {
            tier,
            short,
            first_short: short && !any_short,
            shared: if short { reachable } else { 0.0 },
        });
        any_short |= short;
    }
    passes
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

/// State and reason of one service, given what it was allocated and how its tier
/// fared.
fn judge(w: &Work, fate: &TierFate) -> (ServiceState, Reason) {
    let allocated = w.allocated;
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
    let (m, r) = (fate.minima, fate.remainder);
    let reason = if allocated >= w.e {
        Reason::Capped
    } else if fate.reach <= 0.0 {
        Reason::NoPower
    } else if m.short {
        if !m.first_short && m.shared <= 0.0 {
            // Higher tiers' minima took everything it could reach.
            Reason::HigherTiersFirst
        } else if w.min_ask > 0.0 {
            Reason::TierShare
        } else {
            // Its tier's minima took what remained and it has none.
            Reason::MinimumOnly
        }
    } else if r.short && r.shared > 0.0 {
        // Its minimum was granted in full; its tier shared the rest it could reach.
        Reason::TierShare
    } else if fate.reach_after_minima <= 0.0 || allocated > 0.0 {
        Reason::MinimumOnly
    } else {
        Reason::HigherTiersFirst
    };
    (state, reason)
}

// ---------------------------------------------------------------------------------
// POST /api/allocation/simulate (DESIGN.md §8)

/// The body of `POST /api/allocation/simulate`. Unknown fields are refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    pub available_w: f64,
    /// Split rule per tier; a tier not listed shares pro rata.
    #[serde(default)]
    pub tiers: Vec<TierRule>,
    pub services: Vec<SimulateService>,
}

/// One service of a simulation request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulateService {
    pub id: String,
    pub tier: u32,
    pub demand_w: f64,
    #[serde(default)]
    pub min_w: f64,
    #[serde(default)]
    pub max_w: Option<f64>,
}

/// The answer of `POST /api/allocation/simulate`.
#[derive(Debug, Clone, Serialize)]
pub struct SimulateResponse {
    pub available_w: f64,
    pub allocated_w: f64,
    pub headroom_w: f64,
    /// In the order of the request.
    pub services: Vec<SimulatedService>,
}

/// One service of a simulation's answer.
#[derive(Debug, Clone, Serialize)]
pub struct SimulatedService {
    pub id: String,
    pub tier: u32,
    pub demand_w: f64,
    pub allocated_w: f64,
    pub state: ServiceState,
    pub reason: Reason,
}

/// What is wrong with a simulation request; each message names the field and, for a
/// service, the service.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InvalidInput {
    #[error("available_w must be a finite number >= 0")]
    AvailableW,
    #[error("tiers: tier must be 1 or more")]
    TierRuleZero,
    #[error("tiers: tier {tier} is listed more than once")]
    TierRuleTwice { tier: u32 },
    #[error("services[{index}]: id must not be empty")]
    EmptyId { index: usize },
    #[error("service `{id}`: id is listed more than once")]
    DuplicateId { id: String },
    #[error("service `{id}`: tier must be 1 or more")]
    ServiceTier { id: String },
    /// `field` is `demand_w`, `min_w` or `max_w`.
    #[error("service `{id}`: {field} must be a finite number >= 0")]
    NotNonNegative { id: String, field: &'static str },
    #[error("service `{id}`: max_w ({max_w}) must be >= min_w ({min_w})")]
    MaxBelowMin { id: String, min_w: f64, max_w: f64 },
}

impl From<&SimulateService> for ServiceDemand {
    fn from(s: &SimulateService) -> Self {
        ServiceDemand {
            id: s.id.as_str().into(),
            tier: s.tier,
            demand_w: s.demand_w,
            min_w: s.min_w,
            max_w: s.max_w,
        }
    }
}

impl From<ServiceGrant> for SimulatedService {
    fn from(g: ServiceGrant) -> Self {
        SimulatedService {
            id: g.id.to_string(),
            tier: g.tier,
            demand_w: g.demand_w,
            allocated_w: g.allocated_w,
            state: g.state,
            reason: g.reason,
        }
    }
}

impl From<Allocation> for SimulateResponse {
    fn from(a: Allocation) -> Self {
        SimulateResponse {
            available_w: a.available_w,
            allocated_w: a.allocated_w,
            headroom_w: a.headroom_w,
            services: a.services.into_iter().map(SimulatedService::from).collect(),
        }
    }
}

/// Checks a simulation request and, when it is sound, allocates its power with
/// [`allocate`], the function the live allocation uses.
///
/// # Errors
///
/// Every problem found in the request, in the order of the request: a non-finite or
/// negative watt figure, `max_w` below `min_w`, tier 0, an empty or repeated service
/// id, a tier given two split rules.
pub fn simulate(req: &SimulateRequest) -> Result<SimulateResponse, Vec<InvalidInput>> {
    let problems = validate(req);
    if !problems.is_empty() {
        return Err(problems);
    }
    let demands: Vec<ServiceDemand> = req.services.iter().map(ServiceDemand::from).collect();
    Ok(allocate(req.available_w, &req.tiers, &demands).into())
}

fn is_watts(x: f64) -> bool {
    x.is_finite() && x >= 0.0
}

fn validate(req: &SimulateRequest) -> Vec<InvalidInput> {
    let mut problems = Vec::new();
    if !is_watts(req.available_w) {
        problems.push(InvalidInput::AvailableW);
    }

    let mut tiers_seen = HashSet::new();
    let mut tiers_reported = HashSet::new();
    for rule in &req.tiers {
        if rule.tier == 0 {
            if tiers_reported.insert(0) {
                problems.push(InvalidInput::TierRuleZero);
            }
        } else if !tiers_seen.insert(rule.tier) && tiers_reported.insert(rule.tier) {
            problems.push(InvalidInput::TierRuleTwice { tier: rule.tier });
        }
    }

    let mut ids_seen = HashSet::new();
    let mut ids_reported = HashSet::new();
    for (index, s) in req.services.iter().enumerate() {
        let id = &s.id;
        if id.trim().is_empty() {
            problems.push(InvalidInput::EmptyId { index });
        } else if !ids_seen.insert(id.as_str()) && ids_reported.insert(id.as_str()) {
            problems.push(InvalidInput::DuplicateId { id: id.clone() });
        }
        if s.tier == 0 {
            problems.push(InvalidInput::ServiceTier { id: id.clone() });
        }
        if !is_watts(s.demand_w) {
            problems.push(InvalidInput::NotNonNegative {
                id: id.clone(),
                field: "demand_w",
            });
        }
        if !is_watts(s.min_w) {
            problems.push(InvalidInput::NotNonNegative {
                id: id.clone(),
                field: "min_w",
            });
        }
        if let Some(max_w) = s.max_w {
            if !is_watts(max_w) {
                problems.push(InvalidInput::NotNonNegative {
                    id: id.clone(),
                    field: "max_w",
                });
            } else if is_watts(s.min_w) && max_w < s.min_w {
                problems.push(InvalidInput::MaxBelowMin {
                    id: id.clone(),
                    min_w: s.min_w,
                    max_w,
                });
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests;
