//! Assemblies drawn by lot (DESIGN.md §13): what a draw is, and the selection, without
//! storage. Recording announcements, draws and declines in the journal, and the
//! checks on each, is in `rules::sortition`.
//!
//! # The draw, step by step
//!
//! 1. **Pool.** Members opt in (`sortition_opted`), declaring, if they choose, values
//!    for the attributes the assembly listed (`sortition_keys_set`). At the
//!    announcement the pool is every member opted in, sorted by name (byte-wise),
//!    each with their **stratum**: their value for the draw's strata key, or `""`
//!    when they did not declare it or the draw has no strata key.
//! 2. **Announcement** (`sortition_announced`): the pool itself, its hash
//!    ([`pool_hash`]), the size, the quotas (`min`, and `max` or none, per stratum;
//!    a stratum not listed has min 0 and no max), the mandate and the time of the
//!    draw. Quotas that cannot be met are refused before anything is recorded
//!    ([`feasibility`]).
//! 3. **Seed** ([`seed`]): at or after the time of the draw, die rolls (1 to 6) are
//!    entered in front of named witnesses, and
//!    `seed = SHA-256(A || H || R)` where `A` is the announcement entry's hash and `H`
//!    the journal head at the draw (the `prev_hash` of the draw entry), each as its
//!    64 lowercase hex ASCII characters, and `R` the rolls in decimal joined by
//!    commas (`3,6,1`).
//! 4. **Random numbers** ([`Stream`]): the `k`-th 64-bit number (`k` from 0) is bytes
//!    `8*(k mod 4)` to `8*(k mod 4)+7`, read big-endian, of
//!    `SHA-256(seed || be64(floor(k / 4)))` (the 32 seed bytes, then the block number
//!    as 8 bytes big-endian). No library's generator is involved, so the stream never
//!    changes with a dependency.
//! 5. **A uniform pick among `n`** ([`Stream::uniform`]): take the next number `x`;
//!    reject it and take the next while `x >= n * floor(2^64 / n)`; the pick is
//!    `x mod n`. Every one of the `n` is equally likely (no modulo bias).
//! 6. **Selection** ([`select`]): first each stratum's minimum, strata in byte-wise
//!    order of their names, each seat a uniform pick among that stratum's members not
//!    yet selected (in pool order); then the remaining seats, each a uniform pick
//!    among all members not yet selected whose stratum has not reached its max (in
//!    pool order). Within a stratum every member has the same chance: the rules
//!    never tell two members of one stratum apart.
//! 7. **Declines** ([`replace`]): a member who declines is replaced by a uniform pick,
//!    continuing the same stream where the draw (or the previous replacement)
//!    stopped, among the pool members never selected of the decliner's stratum;
//!    when none is left, among all never selected whose stratum is under its max;
//!    when none is left either, the seat stays empty.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::entry::canonical_json;

/// Most seats a panel may have.
pub const MAX_PANEL_SIZE: u32 = 500;
/// Most die rolls a draw takes.
pub const MAX_DIE_ROLLS: usize = 20;
/// Most witnesses a draw names.
pub const MAX_WITNESSES: usize = 12;
/// Most attributes the assembly may list for members to declare.
pub const MAX_SORTITION_KEYS: usize = 8;
/// Longest attribute name, value, witness name, in characters.
pub const MAX_SORTITION_TEXT_CHARS: usize = 80;
/// Longest mandate title, in characters.
pub const MAX_MANDATE_TITLE_CHARS: usize = 200;

/// What a panel may decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MandateScope {
    /// The energy priorities: it may adopt priority plans, nothing else.
    EnergyPriorities,
    /// The ledger's parameters: it may adopt them, nothing else.
    LedgerParameters,
}

impl MandateScope {
    pub const ALL: [MandateScope; 2] = [
        MandateScope::EnergyPriorities,
        MandateScope::LedgerParameters,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MandateScope::EnergyPriorities => "energy_priorities",
            MandateScope::LedgerParameters => "ledger_parameters",
        }
    }
}

impl fmt::Display for MandateScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MandateScope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MandateScope::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!("unknown mandate scope `{s}` (energy_priorities or ledger_parameters)")
            })
    }
}

/// What a panel is drawn for: its subject, title and last day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mandate {
    pub scope: MandateScope,
    /// In the assembly's words, e.g. "priorités d'énergie pour l'hiver".
    pub title: String,
    /// The last day (inclusive) on which the panel may decide.
    pub term_end: NaiveDate,
}

/// Seats a stratum must and may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    pub min: u32,
    /// No cap when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

/// One member of a draw's pool, as the announcement lists them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolMember {
    pub member: String,
    /// Their value for the strata key; `""` when undeclared or without a key.
    pub stratum: String,
}

/// What the assembly asks of a draw before it is announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrawSpec {
    pub size: u32,
    /// The attribute whose values are the strata; none: one stratum, `""`.
    #[serde(default)]
    pub strata_key: Option<String>,
    /// Per stratum value.
    #[serde(default)]
    pub quotas: BTreeMap<String, Quota>,
    pub mandate: Mandate,
    /// The draw happens at or after this instant.
    #[serde(with = "crate::entry::ts_millis")]
    pub draw_at: DateTime<Utc>,
}

impl DrawSpec {
    /// The quota of a stratum: listed, or min 0 and no max.
    pub fn quota(&self, stratum: &str) -> Quota {
        self.quotas
            .get(stratum)
            .copied()
            .unwrap_or(Quota { min: 0, max: None })
    }
}

/// One reason a draw cannot be announced (or made). [`fmt::Display`] says it in
/// English.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortitionProblem {
    SizeZero,
    SizeTooLarge {
        size: u32,
    },
    PoolTooSmall {
        size: u32,
        pool: usize,
    },
    MinAboveMax {
        stratum: String,
        min: u32,
        max: u32,
    },
    MinAboveStratum {
        stratum: String,
        min: u32,
        members: usize,
    },
    MinimaAboveSize {
        minima: u64,
        size: u32,
    },
    MaximaBelowSize {
        seats: u64,
        size: u32,
    },
    UnknownStrataKey {
        key: String,
    },
    QuotasWithoutKey,
    BadText {
        what: &'static str,
        reason: String,
    },
    TermBeforeDraw {
        term_end: NaiveDate,
        draw_at: DateTime<Utc>,
    },
}

fn stratum_name(s: &str) -> String {
    if s.is_empty() {
        "(not declared)".to_string()
    } else {
        format!("`{s}`")
    }
}

impl fmt::Display for SortitionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SortitionProblem::SizeZero => f.write_str("a panel has at least one seat"),
            SortitionProblem::SizeTooLarge { size } => {
                write!(f, "a panel of {size} seats: at most {MAX_PANEL_SIZE}")
            }
            SortitionProblem::PoolTooSmall { size, pool } => write!(
                f,
                "{size} seats but only {pool} members in the pool (members who opted in)"
            ),
            SortitionProblem::MinAboveMax { stratum, min, max } => write!(
                f,
                "stratum {}: the minimum {min} is above the maximum {max}",
                stratum_name(stratum)
            ),
            SortitionProblem::MinAboveStratum {
                stratum,
                min,
                members,
            } => write!(
                f,
                "stratum {}: the minimum {min} is more than its {members} members in the pool",
                stratum_name(stratum)
            ),
            SortitionProblem::MinimaAboveSize { minima, size } => write!(
                f,
                "the minima add up to {minima} seats, more than the {size} of the panel"
            ),
            SortitionProblem::MaximaBelowSize { seats, size } => write!(
                f,
                "the maxima and the pool allow at most {seats} seats, fewer than the {size} \
                 of the panel"
            ),
            SortitionProblem::UnknownStrataKey { key } => write!(
                f,
                "`{key}` is not an attribute the assembly listed for members to declare"
            ),
            SortitionProblem::QuotasWithoutKey => {
                f.write_str("quotas need a strata key (the attribute whose values they name)")
            }
            SortitionProblem::BadText { what, reason } => write!(f, "{what}: {reason}"),
            SortitionProblem::TermBeforeDraw { term_end, draw_at } => write!(
                f,
                "the term ends on {term_end}, before the draw at {}",
                crate::entry::format_ts(*draw_at)
            ),
        }
    }
}

/// Checks a text a person typed: not blank, no control characters, at most `max`
/// characters.
pub(crate) fn check_text(what: &'static str, text: &str, max: usize) -> Option<SortitionProblem> {
    let reason = if text.trim().is_empty() {
        "must not be blank".to_string()
    } else if text.chars().any(char::is_control) {
        "must not hold control characters".to_string()
    } else if text.chars().count() > max {
        format!("at most {max} characters")
    } else {
        return None;
    };
    Some(SortitionProblem::BadText { what, reason })
}

/// Members per stratum, in the pool.
fn strata_counts(pool: &[PoolMember]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for m in pool {
        *counts.entry(m.stratum.as_str()).or_insert(0) += 1;
    }
    counts
}

/// Everything that keeps `spec` from being drawn from `pool`: every reason at once,
/// none when the quotas can always be met.
pub fn feasibility(spec: &DrawSpec, pool: &[PoolMember]) -> Vec<SortitionProblem> {
    let mut problems = Vec::new();
    if spec.size == 0 {
        problems.push(SortitionProblem::SizeZero);
    }
    if spec.size > MAX_PANEL_SIZE {
        problems.push(SortitionProblem::SizeTooLarge { size: spec.size });
    }
    if let Some(p) = check_text(
        "mandate title",
        &spec.mandate.title,
        MAX_MANDATE_TITLE_CHARS,
    ) {
        problems.push(p);
    }
    if spec.mandate.term_end < spec.draw_at.date_naive() {
        problems.push(SortitionProblem::TermBeforeDraw {
            term_end: spec.mandate.term_end,
            draw_at: spec.draw_at,
        });
    }
    if spec.strata_key.is_none() && !spec.quotas.is_empty() {
        problems.push(SortitionProblem::QuotasWithoutKey);
    }
    if usize::try_from(spec.size).map_or(true, |s| s > pool.len()) {
        problems.push(SortitionProblem::PoolTooSmall {
            size: spec.size,
            pool: pool.len(),
        });
    }
    let counts = strata_counts(pool);
    let mut minima: u64 = 0;
    for (stratum, quota) in &spec.quotas {
        if let Some(max) = quota.max
            && quota.min > max
        {
            problems.push(SortitionProblem::MinAboveMax {
                stratum: stratum.clone(),
                min: quota.min,
                max,
            });
        }
        let members = counts.get(stratum.as_str()).copied().unwrap_or(0);
        if usize::try_from(quota.min).map_or(true, |m| m > members) {
            problems.push(SortitionProblem::MinAboveStratum {
                stratum: stratum.clone(),
                min: quota.min,
                members,
            });
        }
        minima += u64::from(quota.min);
    }
    if minima > u64::from(spec.size) {
        problems.push(SortitionProblem::MinimaAboveSize {
            minima,
            size: spec.size,
        });
    }
    let seats: u64 = counts
        .iter()
        .map(|(stratum, &members)| {
            let members = members as u64;
            spec.quota(stratum)
                .max
                .map_or(members, |max| members.min(u64::from(max)))
        })
        .sum();
    // A pool too small is already said.
    if seats < u64::from(spec.size) && pool.len() as u64 >= u64::from(spec.size) {
        problems.push(SortitionProblem::MaximaBelowSize {
            seats,
            size: spec.size,
        });
    }
    problems
}

/// The hash of a pool: lowercase hex SHA-256 of the canonical JSON of the list
/// `[{"member", "stratum"}, …]` in pool order.
pub fn pool_hash(pool: &[PoolMember]) -> String {
    let value = serde_json::to_value(pool).unwrap_or_default();
    hex::encode(Sha256::digest(canonical_json(&value).as_bytes()))
}

/// `SHA-256(announcement hash || head hash || rolls joined by commas)`, see the
/// module docs.
pub fn seed(announcement_hash: &str, head_hash: &str, rolls: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(announcement_hash.as_bytes());
    hasher.update(head_hash.as_bytes());
    let rolls: Vec<String> = rolls.iter().map(u8::to_string).collect();
    hasher.update(rolls.join(",").as_bytes());
    hasher.finalize().into()
}

/// The stream of 64-bit numbers a seed gives (module docs, step 4), from a position.
#[derive(Debug, Clone)]
pub struct Stream {
    seed: [u8; 32],
    /// How many numbers were taken so far.
    consumed: u64,
}

/// The largest number accepted for a pick among `n`: `n * floor(2^64 / n) - 1`,
/// computed without overflow as `2^64 - 1 - (2^64 mod n)`.
fn acceptance_limit(n: u64) -> u64 {
    u64::MAX - (u64::MAX % n + 1) % n
}

/// One uniform pick: what was drawn and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pick {
    /// The position in the stream of the number accepted.
    pub position: u64,
    /// The number accepted.
    pub number: u64,
    /// Numbers rejected before it (at most a handful, almost always none).
    pub rejected: u32,
    /// Among how many candidates.
    pub candidates: usize,
    /// The index picked: `number mod candidates`.
    pub index: usize,
}

impl Stream {
    pub fn new(seed: [u8; 32], consumed: u64) -> Self {
        Stream { seed, consumed }
    }

    /// How many numbers have been taken.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The next number of the stream.
    pub fn next_u64(&mut self) -> u64 {
        let k = self.consumed;
        self.consumed += 1;
        let mut hasher = Sha256::new();
        hasher.update(self.seed);
        hasher.update((k / 4).to_be_bytes());
        let block: [u8; 32] = hasher.finalize().into();
        let at = 8 * (k % 4) as usize;
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&block[at..at + 8]);
        u64::from_be_bytes(bytes)
    }

    /// A uniform pick among `n` candidates (`n > 0`), by rejection sampling (module
    /// docs, step 5).
    pub fn uniform(&mut self, n: usize) -> Pick {
        let n64 = n.max(1) as u64;
        let zone_end = acceptance_limit(n64);
        let mut rejected = 0;
        loop {
            let position = self.consumed;
            let x = self.next_u64();
            // Accept x <= zone_end, i.e. x < n * floor(2^64 / n).
            if x <= zone_end {
                return Pick {
                    position,
                    number: x,
                    rejected,
                    candidates: n,
                    index: (x % n64) as usize,
                };
            }
            rejected += 1;
        }
    }
}

/// Why a member was picked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// To meet the minimum of a stratum.
    Minimum { stratum: String },
    /// To fill the remaining seats, among strata under their maximum.
    Fill,
    /// To replace a member who declined.
    Replacement { declined: String },
}

/// One seat drawn: the pick and the member it gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub phase: Phase,
    pub pick: Pick,
    pub member: String,
    pub stratum: String,
}

/// The outcome of a selection: the members in the order drawn, every step, and how
/// far into the stream it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub selected: Vec<String>,
    pub steps: Vec<Step>,
    pub consumed: u64,
}

/// The deterministic stratified selection (module docs, step 6). `pool` is in pool
/// order; the caller has checked [`feasibility`] (problems are returned again if not).
pub fn select(
    spec: &DrawSpec,
    pool: &[PoolMember],
    seed: [u8; 32],
) -> Result<Selection, Vec<SortitionProblem>> {
    let problems = feasibility(spec, pool);
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut stream = Stream::new(seed, 0);
    let mut taken = vec![false; pool.len()];
    let mut per_stratum: BTreeMap<&str, u32> = BTreeMap::new();
    let mut steps = Vec::new();
    for (stratum, quota) in &spec.quotas {
        for _ in 0..quota.min {
            let candidates: Vec<usize> = (0..pool.len())
                .filter(|&i| !taken[i] && pool[i].stratum == *stratum)
                .collect();
            let pick = stream.uniform(candidates.len());
            let i = candidates[pick.index];
            taken[i] = true;
            *per_stratum.entry(pool[i].stratum.as_str()).or_insert(0) += 1;
            steps.push(Step {
                phase: Phase::Minimum {
                    stratum: stratum.clone(),
                },
                pick,
                member: pool[i].member.clone(),
                stratum: pool[i].stratum.clone(),
            });
        }
    }
    while steps.len() < spec.size as usize {
        let candidates: Vec<usize> = (0..pool.len())
            .filter(|&i| {
                !taken[i] && {
                    let s = pool[i].stratum.as_str();
                    let have = per_stratum.get(s).copied().unwrap_or(0);
                    spec.quota(s).max.is_none_or(|max| have < max)
                }
            })
            .collect();
        if candidates.is_empty() {
            // Cannot happen after `feasibility`; said rather than looped on.
            return Err(vec![SortitionProblem::MaximaBelowSize {
                seats: steps.len() as u64,
                size: spec.size,
            }]);
        }
        let pick = stream.uniform(candidates.len());
        let i = candidates[pick.index];
        taken[i] = true;
        *per_stratum.entry(pool[i].stratum.as_str()).or_insert(0) += 1;
        steps.push(Step {
            phase: Phase::Fill,
            pick,
            member: pool[i].member.clone(),
            stratum: pool[i].stratum.clone(),
        });
    }
    Ok(Selection {
        selected: steps.iter().map(|s| s.member.clone()).collect(),
        steps,
        consumed: stream.consumed(),
    })
}

/// The replacement of `declined` (module docs, step 7): `ever_selected` holds every
/// member drawn for this panel so far (declined or not), `seated` the panel now
/// without `declined`, `consumed` how far into the stream the draw has gone. Returns
/// the step (none when nobody is left) and the new position.
pub fn replace(
    spec: &DrawSpec,
    pool: &[PoolMember],
    seed: [u8; 32],
    consumed: u64,
    ever_selected: &BTreeSet<String>,
    seated: &[String],
    declined: &str,
) -> (Option<Step>, u64) {
    let stratum_of = |name: &str| {
        pool.iter()
            .find(|m| m.member == name)
            .map(|m| m.stratum.clone())
            .unwrap_or_default()
    };
    let declined_stratum = stratum_of(declined);
    let fresh: Vec<usize> = (0..pool.len())
        .filter(|&i| !ever_selected.contains(&pool[i].member))
        .collect();
    let mut candidates: Vec<usize> = fresh
        .iter()
        .copied()
        .filter(|&i| pool[i].stratum == declined_stratum)
        .collect();
    if candidates.is_empty() {
        let mut per_stratum: BTreeMap<String, u32> = BTreeMap::new();
        for name in seated {
            *per_stratum.entry(stratum_of(name)).or_insert(0) += 1;
        }
        candidates = fresh
            .into_iter()
            .filter(|&i| {
                let s = &pool[i].stratum;
                let have = per_stratum.get(s).copied().unwrap_or(0);
                spec.quota(s).max.is_none_or(|max| have < max)
            })
            .collect();
    }
    if candidates.is_empty() {
        return (None, consumed);
    }
    let mut stream = Stream::new(seed, consumed);
    let pick = stream.uniform(candidates.len());
    let i = candidates[pick.index];
    (
        Some(Step {
            phase: Phase::Replacement {
                declined: declined.to_string(),
            },
            pick,
            member: pool[i].member.clone(),
            stratum: pool[i].stratum.clone(),
        }),
        stream.consumed(),
    )
}

/// A draw as the journal records it: the announcement, the draw if made, the
/// declines, and the panel seated now ([`crate::Journal::draw`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draw {
    /// The `sortition_announced` entry: the draw's id.
    pub id: i64,
    #[serde(with = "crate::entry::ts_millis")]
    pub announced_at: DateTime<Utc>,
    pub announced_by: String,
    /// The announcement entry's hash, the first input of the seed.
    pub announcement_hash: String,
    pub spec: DrawSpec,
    pub pool: Vec<PoolMember>,
    pub pool_hash: String,
    pub drawn: Option<DrawResult>,
    pub declines: Vec<Decline>,
    /// The panel now: the members drawn, each decliner in their place replaced by
    /// their replacement (or gone when none was left).
    pub seated: Vec<String>,
    /// How far into the stream the draw and its replacements went.
    pub consumed: u64,
}

/// The draw made (`sortition_drawn`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawResult {
    pub seq: i64,
    #[serde(with = "crate::entry::ts_millis")]
    pub ts: DateTime<Utc>,
    pub author: String,
    pub rolls: Vec<u8>,
    pub witnesses: Vec<String>,
    /// The journal head at the draw: the draw entry's `prev_hash`.
    pub head_hash: String,
    /// Lowercase hex.
    pub seed: String,
    /// In the order drawn.
    pub selected: Vec<String>,
}

/// A member who declined their seat (`panel_member_declined`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decline {
    pub seq: i64,
    #[serde(with = "crate::entry::ts_millis")]
    pub ts: DateTime<Utc>,
    pub member: String,
    pub replacement: Option<String>,
}

impl Draw {
    /// The seed's 32 bytes, if drawn.
    pub fn seed_bytes(&self) -> Option<[u8; 32]> {
        let drawn = self.drawn.as_ref()?;
        Some(seed(
            &self.announcement_hash,
            &drawn.head_hash,
            &drawn.rolls,
        ))
    }

    /// Every step of the draw, re-run from its inputs, in English: the inputs, the
    /// seed, each random number and the member it picked, the quotas as they stand,
    /// each replacement; and whether the journal records the same panel.
    pub fn explain(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let spec = &self.spec;
        let _ = writeln!(
            out,
            "Draw {} announced at {} by {}",
            self.id,
            crate::entry::format_ts(self.announced_at),
            self.announced_by
        );
        let _ = writeln!(
            out,
            "Mandate: {} ({}), until {} inclusive",
            spec.mandate.title, spec.mandate.scope, spec.mandate.term_end
        );
        let _ = writeln!(
            out,
            "Seats: {}; strata key: {}; draw at or after {}",
            spec.size,
            spec.strata_key.as_deref().unwrap_or("(none)"),
            crate::entry::format_ts(spec.draw_at)
        );
        let counts = strata_counts(&self.pool);
        let _ = writeln!(
            out,
            "Pool: {} members, hash {}",
            self.pool.len(),
            self.pool_hash
        );
        let recomputed = pool_hash(&self.pool);
        if recomputed != self.pool_hash {
            let _ = writeln!(out, "  MISMATCH: the pool listed hashes to {recomputed}");
        }
        for (stratum, n) in &counts {
            let q = spec.quota(stratum);
            let _ = writeln!(
                out,
                "  stratum {}: {n} members, min {}, max {}",
                stratum_name(stratum),
                q.min,
                q.max.map_or("none".to_string(), |m| m.to_string())
            );
        }
        for (i, m) in self.pool.iter().enumerate() {
            let _ = writeln!(out, "  [{i}] {} ({})", m.member, stratum_name(&m.stratum));
        }
        let Some(drawn) = &self.drawn else {
            let _ = writeln!(out, "Not drawn yet.");
            return out;
        };
        let rolls: Vec<String> = drawn.rolls.iter().map(u8::to_string).collect();
        let _ = writeln!(
            out,
            "Drawn at {} (entry {}) by {}, witnesses: {}",
            crate::entry::format_ts(drawn.ts),
            drawn.seq,
            drawn.author,
            drawn.witnesses.join(", ")
        );
        let _ = writeln!(out, "Announcement hash: {}", self.announcement_hash);
        let _ = writeln!(out, "Journal head at the draw: {}", drawn.head_hash);
        let _ = writeln!(out, "Die rolls: {}", rolls.join(","));
        let seed_bytes = seed(&self.announcement_hash, &drawn.head_hash, &drawn.rolls);
        let seed_hex = hex::encode(seed_bytes);
        let _ = writeln!(
            out,
            "Seed = SHA-256(announcement hash || head || \"{}\") = {seed_hex}",
            rolls.join(",")
        );
        if seed_hex != drawn.seed {
            let _ = writeln!(
                out,
                "  MISMATCH: the journal records the seed {}",
                drawn.seed
            );
        }
        let mut seats: BTreeMap<String, u32> = BTreeMap::new();
        let describe = |out: &mut String, n: usize, step: &Step, seats: &BTreeMap<String, u32>| {
            let why = match &step.phase {
                Phase::Minimum { stratum } => {
                    format!("minimum of stratum {}", stratum_name(stratum))
                }
                Phase::Fill => "remaining seats".to_string(),
                Phase::Replacement { declined } => format!("replacing {declined}, who declined"),
            };
            let _ = writeln!(
                out,
                "  {n}. {why}: number #{} = {} ({} rejected before it) mod {} candidates = {} -> {} ({}; now {} seats)",
                step.pick.position,
                step.pick.number,
                step.pick.rejected,
                step.pick.candidates,
                step.pick.index,
                step.member,
                stratum_name(&step.stratum),
                seats.get(&step.stratum).copied().unwrap_or(0)
            );
        };
        match select(spec, &self.pool, seed_bytes) {
            Err(problems) => {
                let _ = writeln!(out, "The inputs give no panel:");
                for p in problems {
                    let _ = writeln!(out, "  {p}");
                }
            }
            Ok(selection) => {
                let _ = writeln!(out, "Selection:");
                for (n, step) in selection.steps.iter().enumerate() {
                    *seats.entry(step.stratum.clone()).or_insert(0) += 1;
                    describe(&mut out, n + 1, step, &seats);
                }
                if selection.selected == drawn.selected {
                    let _ = writeln!(out, "The journal records this panel: it matches.");
                } else {
                    let _ = writeln!(
                        out,
                        "MISMATCH: the journal records the panel {}",
                        drawn.selected.join(", ")
                    );
                }
                let mut ever: BTreeSet<String> = selection.selected.iter().cloned().collect();
                let mut seated = selection.selected.clone();
                let mut consumed = selection.consumed;
                for decline in &self.declines {
                    let others: Vec<String> = seated
                        .iter()
                        .filter(|m| **m != decline.member)
                        .cloned()
                        .collect();
                    let (step, next) = replace(
                        spec,
                        &self.pool,
                        seed_bytes,
                        consumed,
                        &ever,
                        &others,
                        &decline.member,
                    );
                    consumed = next;
                    let _ = writeln!(out, "{} declined (entry {}):", decline.member, decline.seq);
                    if let Some(m) = self.pool.iter().find(|m| m.member == decline.member)
                        && let Some(n) = seats.get_mut(&m.stratum)
                    {
                        *n = n.saturating_sub(1);
                    }
                    match &step {
                        Some(step) => {
                            *seats.entry(step.stratum.clone()).or_insert(0) += 1;
                            describe(&mut out, 1, step, &seats);
                            ever.insert(step.member.clone());
                        }
                        None => {
                            let _ = writeln!(out, "  nobody left to draw: the seat stays empty");
                        }
                    }
                    let got = step.as_ref().map(|s| s.member.clone());
                    if got != decline.replacement {
                        let _ = writeln!(
                            out,
                            "  MISMATCH: the journal records the replacement {}",
                            decline.replacement.as_deref().unwrap_or("(none)")
                        );
                    }
                    seated = seated
                        .into_iter()
                        .filter_map(|m| {
                            if m == decline.member {
                                got.clone()
                            } else {
                                Some(m)
                            }
                        })
                        .collect();
                }
                let _ = writeln!(out, "Panel now: {}", seated.join(", "));
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(size: u32, quotas: &[(&str, u32, Option<u32>)]) -> DrawSpec {
        DrawSpec {
            size,
            strata_key: Some("building".into()),
            quotas: quotas
                .iter()
                .map(|(s, min, max)| {
                    (
                        s.to_string(),
                        Quota {
                            min: *min,
                            max: *max,
                        },
                    )
                })
                .collect(),
            mandate: Mandate {
                scope: MandateScope::EnergyPriorities,
                title: "Winter energy priorities".into(),
                term_end: NaiveDate::from_ymd_opt(2027, 3, 31).unwrap(),
            },
            draw_at: DateTime::parse_from_rfc3339("2026-12-01T18:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    fn pool(strata: &[(&str, usize)]) -> Vec<PoolMember> {
        let mut pool: Vec<PoolMember> = strata
            .iter()
            .flat_map(|(s, n)| {
                (0..*n).map(move |i| PoolMember {
                    member: format!("{s}-{i:02}"),
                    stratum: s.to_string(),
                })
            })
            .collect();
        pool.sort();
        pool
    }

    #[test]
    fn the_stream_is_sha256_in_counter_mode() {
        let seed = [7u8; 32];
        let mut stream = Stream::new(seed, 0);
        let mut hasher = Sha256::new();
        hasher.update(seed);
        hasher.update(0u64.to_be_bytes());
        let block: [u8; 32] = hasher.finalize().into();
        let first = u64::from_be_bytes(block[0..8].try_into().unwrap());
        let second = u64::from_be_bytes(block[8..16].try_into().unwrap());
        assert_eq!(stream.next_u64(), first);
        assert_eq!(stream.next_u64(), second);
        // A stream resumed at a position gives what follows.
        let mut a = Stream::new(seed, 0);
        let tail: Vec<u64> = (0..9).map(|_| a.next_u64()).skip(5).collect();
        let mut b = Stream::new(seed, 5);
        assert_eq!(tail, (0..4).map(|_| b.next_u64()).collect::<Vec<_>>());
    }

    #[test]
    fn uniform_rejects_the_biased_tail() {
        // 2^64 = 3 * 6148914691236517205 + 1: only u64::MAX lies past the last
        // whole cycle of 3.
        assert_eq!(acceptance_limit(3), u64::MAX - 1);
        // 2^64 mod 6 = 4.
        assert_eq!(acceptance_limit(6), u64::MAX - 4);
        // A power of two divides 2^64: nothing is rejected.
        assert_eq!(acceptance_limit(4), u64::MAX);
        assert_eq!(acceptance_limit(1), u64::MAX);
        let mut s = Stream::new([1; 32], 0);
        for n in 1..50 {
            let pick = s.uniform(n);
            assert!(pick.index < n);
        }
    }

    #[test]
    fn the_seed_is_the_documented_hash() {
        let a = "a".repeat(64);
        let h = "b".repeat(64);
        let expected: [u8; 32] = Sha256::digest(format!("{a}{h}3,6,1").as_bytes()).into();
        assert_eq!(seed(&a, &h, &[3, 6, 1]), expected);
        assert_ne!(seed(&a, &h, &[3, 6, 2]), expected);
    }

    #[test]
    fn minima_are_met_and_maxima_kept() {
        let pool = pool(&[("A", 10), ("B", 3), ("C", 6)]);
        let spec = spec(6, &[("B", 2, None), ("C", 1, Some(2))]);
        for i in 0..200u8 {
            let sel = select(&spec, &pool, [i; 32]).unwrap();
            assert_eq!(sel.selected.len(), 6);
            let count = |s: &str| sel.steps.iter().filter(|st| st.stratum == s).count();
            assert!(count("B") >= 2);
            assert!((1..=2).contains(&count("C")));
            let unique: BTreeSet<_> = sel.selected.iter().collect();
            assert_eq!(unique.len(), 6);
        }
    }

    #[test]
    fn infeasible_quotas_name_every_reason() {
        let pool = pool(&[("A", 2), ("B", 3)]);
        let problems = feasibility(&spec(4, &[("A", 3, Some(2)), ("B", 2, None)]), &pool);
        assert_eq!(
            problems,
            [
                SortitionProblem::MinAboveMax {
                    stratum: "A".into(),
                    min: 3,
                    max: 2
                },
                SortitionProblem::MinAboveStratum {
                    stratum: "A".into(),
                    min: 3,
                    members: 2
                },
                SortitionProblem::MinimaAboveSize { minima: 5, size: 4 },
            ]
        );
        let problems = feasibility(&spec(4, &[("A", 0, Some(0)), ("B", 0, Some(1))]), &pool);
        assert_eq!(
            problems,
            [SortitionProblem::MaximaBelowSize { seats: 1, size: 4 }]
        );
        assert_eq!(
            feasibility(&spec(6, &[]), &pool),
            [SortitionProblem::PoolTooSmall { size: 6, pool: 5 }]
        );
    }

    #[test]
    fn a_replacement_comes_from_the_decliners_stratum_first() {
        let pool = pool(&[("A", 4), ("B", 4)]);
        let spec = spec(2, &[("A", 1, Some(1)), ("B", 1, Some(1))]);
        let sel = select(&spec, &pool, [3; 32]).unwrap();
        let declined = sel.steps[0].member.clone();
        let ever: BTreeSet<String> = sel.selected.iter().cloned().collect();
        let seated: Vec<String> = sel.selected[1..].to_vec();
        let (step, consumed) = replace(
            &spec,
            &pool,
            [3; 32],
            sel.consumed,
            &ever,
            &seated,
            &declined,
        );
        let step = step.unwrap();
        assert_eq!(step.stratum, "A");
        assert!(!ever.contains(&step.member));
        assert!(consumed > sel.consumed);
    }
}
