//! Assemblies drawn by lot in the journal (`sortition_keys_set`, `sortition_opted`,
//! `sortition_announced`, `sortition_drawn`, `panel_member_declined`): the payloads,
//! the checks, recording them, and the state they build.
//!
//! The state ([`SortitionState`]) is not kept in tables: it is rebuilt from these
//! entries, which are few, each time it is needed, by the same `apply` that
//! [`Journal::verify`]'s replay runs. So a draw is re-run from its inputs both when it
//! is recorded and whenever the journal is verified, and one code path decides what
//! a panel is. The `sortition_entries` table only lists the entries, so that a
//! journal cut off after one of them is noticed as after any other.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, SubsecRound, TimeDelta, Utc};
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::assembly::{Decision, DecisionProblem, Motion};
use crate::entry::{Entry, EntryKind, GENESIS_PREV_HASH};
use crate::error::{Refusal, Result};
use crate::journal::chain::{append, check_author};
use crate::journal::{Journal, SELECT_ENTRY, entry_from_row};
use crate::rules::state::{decode, encode};
use crate::sortition::{
    Decline, Draw, DrawResult, DrawSpec, MAX_DIE_ROLLS, MAX_SORTITION_KEYS,
    MAX_SORTITION_TEXT_CHARS, MAX_WITNESSES, Mandate, PoolMember, Quota, SortitionProblem,
    check_text, feasibility, pool_hash, replace, seed, select,
};

/// The kinds this module records, as SQL.
const KINDS_SQL: &str = "('sortition_keys_set', 'sortition_opted', 'sortition_announced', \
     'sortition_drawn', 'panel_member_declined')";

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysSet {
    keys: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Opted {
    opt_in: bool,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Announced {
    size: u32,
    #[serde(default)]
    strata_key: Option<String>,
    #[serde(default)]
    quotas: BTreeMap<String, Quota>,
    mandate: Mandate,
    #[serde(with = "crate::entry::ts_millis")]
    draw_at: DateTime<Utc>,
    pool: Vec<PoolMember>,
    pool_hash: String,
}

impl Announced {
    fn spec(&self) -> DrawSpec {
        DrawSpec {
            size: self.size,
            strata_key: self.strata_key.clone(),
            quotas: self.quotas.clone(),
            mandate: self.mandate.clone(),
            draw_at: self.draw_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Drawn {
    draw: i64,
    rolls: Vec<u8>,
    witnesses: Vec<String>,
    head_hash: String,
    seed: String,
    selected: Vec<String>,
    consumed: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Declined {
    draw: i64,
    member: String,
    replacement: Option<String>,
    consumed: u64,
}

/// What the sortition entries of a journal add up to.
#[derive(Debug, Clone, Default)]
pub(crate) struct SortitionState {
    /// The attributes members may declare, as the assembly listed them.
    keys: Vec<String>,
    /// Members opted in, with what they declared.
    pool: BTreeMap<String, BTreeMap<String, String>>,
    draws: BTreeMap<i64, Draw>,
}

fn rule(text: String) -> crate::error::Error {
    Refusal::SortitionRule(text).into()
}

fn check_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 40
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(rule(format!(
            "`{key}` is not an attribute name: 1 to 40 lowercase letters, digits, `_` or `-`"
        )))
    }
}

impl SortitionState {
    /// The state from every sortition entry of the journal; `is_member` answers for
    /// the members now (members never leave, so it holds for every past entry).
    pub(crate) fn load(conn: &Connection) -> Result<Self> {
        let members = member_names(conn)?;
        let mut state = SortitionState::default();
        let mut stmt = conn.prepare(&format!(
            "{SELECT_ENTRY} WHERE kind IN {KINDS_SQL} ORDER BY seq"
        ))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let entry = entry_from_row(row)?;
            state
                .apply(&entry, &|name| members.contains(name))
                .map_err(|e| crate::error::Error::Corrupt {
                    seq: entry.seq,
                    problem: e.to_string(),
                })?;
        }
        Ok(state)
    }

    pub(crate) fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The pool as a draw with `strata_key` would list it now.
    pub(crate) fn pool_now(&self, strata_key: Option<&str>) -> Vec<PoolMember> {
        self.pool
            .iter()
            .map(|(member, attributes)| PoolMember {
                member: member.clone(),
                stratum: strata_key
                    .and_then(|k| attributes.get(k))
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// Applies one sortition entry, refusing it as the write path would have. Other
    /// kinds change nothing.
    pub(crate) fn apply(&mut self, entry: &Entry, is_member: &dyn Fn(&str) -> bool) -> Result<()> {
        match entry.kind {
            EntryKind::SortitionKeysSet => {
                let set: KeysSet = decode(entry.kind, &entry.payload)?;
                if set.keys.len() > MAX_SORTITION_KEYS {
                    return Err(rule(format!(
                        "{} attributes listed: at most {MAX_SORTITION_KEYS}",
                        set.keys.len()
                    )));
                }
                let mut seen = BTreeSet::new();
                for key in &set.keys {
                    check_key(key)?;
                    if !seen.insert(key) {
                        return Err(rule(format!("the attribute `{key}` is listed twice")));
                    }
                }
                // What members declared for an attribute no longer listed is forgotten.
                for attributes in self.pool.values_mut() {
                    attributes.retain(|k, _| set.keys.contains(k));
                }
                self.keys = set.keys;
                Ok(())
            }
            EntryKind::SortitionOpted => {
                let opted: Opted = decode(entry.kind, &entry.payload)?;
                if !is_member(&entry.author) {
                    return Err(Refusal::UnknownMember(entry.author.clone()).into());
                }
                if !opted.opt_in && !opted.attributes.is_empty() {
                    return Err(rule(
                        "a member who opts out declares nothing: attributes must be empty".into(),
                    ));
                }
                for (key, value) in &opted.attributes {
                    if !self.keys.contains(key) {
                        return Err(rule(format!(
                            "`{key}` is not an attribute the assembly listed; listed: {}",
                            if self.keys.is_empty() {
                                "none".to_string()
                            } else {
                                self.keys.join(", ")
                            }
                        )));
                    }
                    if let Some(p) = check_text("attribute value", value, MAX_SORTITION_TEXT_CHARS)
                    {
                        return Err(rule(format!("`{key}`: {p}")));
                    }
                }
                if opted.opt_in {
                    self.pool.insert(entry.author.clone(), opted.attributes);
                } else {
                    self.pool.remove(&entry.author);
                }
                Ok(())
            }
            EntryKind::SortitionAnnounced => {
                let announced: Announced = decode(entry.kind, &entry.payload)?;
                let spec = announced.spec();
                let mut problems = Vec::new();
                if let Some(key) = &spec.strata_key
                    && !self.keys.contains(key)
                {
                    problems.push(SortitionProblem::UnknownStrataKey { key: key.clone() });
                }
                let pool = self.pool_now(spec.strata_key.as_deref());
                problems.extend(feasibility(&spec, &pool));
                if !problems.is_empty() {
                    return Err(Refusal::InvalidDraw(problems).into());
                }
                if spec.draw_at < entry.ts.trunc_subsecs(3) {
                    return Err(rule(format!(
                        "the draw is set for {}, before its announcement at {}: a draw is \
                         announced first and made after",
                        crate::entry::format_ts(spec.draw_at),
                        crate::entry::format_ts(entry.ts)
                    )));
                }
                if announced.pool != pool {
                    return Err(rule(
                        "the pool listed is not the members opted in at the announcement".into(),
                    ));
                }
                if announced.pool_hash != pool_hash(&pool) {
                    return Err(rule(format!(
                        "pool_hash {} is not the hash of the pool listed ({})",
                        announced.pool_hash,
                        pool_hash(&pool)
                    )));
                }
                self.draws.insert(
                    entry.seq,
                    Draw {
                        id: entry.seq,
                        announced_at: entry.ts,
                        announced_by: entry.author.clone(),
                        announcement_hash: entry.hash.clone(),
                        spec,
                        pool,
                        pool_hash: announced.pool_hash,
                        drawn: None,
                        declines: Vec::new(),
                        seated: Vec::new(),
                        consumed: 0,
                    },
                );
                Ok(())
            }
            EntryKind::SortitionDrawn => {
                let drawn: Drawn = decode(entry.kind, &entry.payload)?;
                let draw = self
                    .draws
                    .get_mut(&drawn.draw)
                    .ok_or(Refusal::NoSuchDraw(drawn.draw))?;
                let id = draw.id;
                if let Some(done) = &draw.drawn {
                    return Err(rule(format!(
                        "draw {id} was already made (entry {}): a draw is made once",
                        done.seq
                    )));
                }
                if entry.ts < draw.spec.draw_at {
                    return Err(rule(format!(
                        "draw {id} is announced for {}: it cannot be made before",
                        crate::entry::format_ts(draw.spec.draw_at)
                    )));
                }
                check_ceremony(&drawn.rolls, &drawn.witnesses)?;
                if drawn.head_hash != entry.prev_hash {
                    return Err(rule(format!(
                        "draw {id}: head_hash {} is not the journal head at the draw ({})",
                        drawn.head_hash, entry.prev_hash
                    )));
                }
                let seed_bytes = seed(&draw.announcement_hash, &drawn.head_hash, &drawn.rolls);
                if hex::encode(seed_bytes) != drawn.seed {
                    return Err(rule(format!(
                        "draw {id}: the seed recorded is not SHA-256 of its inputs ({})",
                        hex::encode(seed_bytes)
                    )));
                }
                let selection =
                    select(&draw.spec, &draw.pool, seed_bytes).map_err(Refusal::InvalidDraw)?;
                if selection.selected != drawn.selected || selection.consumed != drawn.consumed {
                    return Err(rule(format!(
                        "draw {id}: the panel recorded ({}) is not the one its inputs give ({})",
                        drawn.selected.join(", "),
                        selection.selected.join(", ")
                    )));
                }
                draw.seated = selection.selected.clone();
                draw.consumed = selection.consumed;
                draw.drawn = Some(DrawResult {
                    seq: entry.seq,
                    ts: entry.ts,
                    author: entry.author.clone(),
                    rolls: drawn.rolls,
                    witnesses: drawn.witnesses,
                    head_hash: drawn.head_hash,
                    seed: drawn.seed,
                    selected: drawn.selected,
                });
                Ok(())
            }
            EntryKind::PanelMemberDeclined => {
                let declined: Declined = decode(entry.kind, &entry.payload)?;
                let draw = self
                    .draws
                    .get_mut(&declined.draw)
                    .ok_or(Refusal::NoSuchDraw(declined.draw))?;
                let id = draw.id;
                let Some(drawn) = &draw.drawn else {
                    return Err(rule(format!("draw {id} was not made yet: nobody sits")));
                };
                if !draw.seated.contains(&declined.member) {
                    return Err(rule(format!(
                        "`{}` does not sit on the panel of draw {id}",
                        declined.member
                    )));
                }
                // A seat is personal: only its holder gives it up.
                if entry.author != declined.member {
                    return Err(rule(format!(
                        "`{}` cannot decline the seat of `{}` on the panel of draw {id}: only the member drawn can",
                        entry.author, declined.member
                    )));
                }
                if entry.ts.date_naive() > draw.spec.mandate.term_end + TimeDelta::days(1) {
                    return Err(rule(format!(
                        "the panel of draw {id} sat until {}: its seats are no longer replaced",
                        draw.spec.mandate.term_end
                    )));
                }
                let mut ever: BTreeSet<String> = drawn.selected.iter().cloned().collect();
                ever.extend(draw.declines.iter().filter_map(|d| d.replacement.clone()));
                let others: Vec<String> = draw
                    .seated
                    .iter()
                    .filter(|m| **m != declined.member)
                    .cloned()
                    .collect();
                let seed_bytes = seed(&draw.announcement_hash, &drawn.head_hash, &drawn.rolls);
                let (step, consumed) = replace(
                    &draw.spec,
                    &draw.pool,
                    seed_bytes,
                    draw.consumed,
                    &ever,
                    &others,
                    &declined.member,
                );
                let replacement = step.map(|s| s.member);
                if replacement != declined.replacement || consumed != declined.consumed {
                    return Err(rule(format!(
                        "draw {id}: the replacement recorded for `{}` ({}) is not the one the \
                         seed's continuation gives ({})",
                        declined.member,
                        declined.replacement.as_deref().unwrap_or("none"),
                        replacement.as_deref().unwrap_or("none")
                    )));
                }
                draw.seated = std::mem::take(&mut draw.seated)
                    .into_iter()
                    .filter_map(|m| {
                        if m == declined.member {
                            replacement.clone()
                        } else {
                            Some(m)
                        }
                    })
                    .collect();
                draw.consumed = consumed;
                draw.declines.push(Decline {
                    seq: entry.seq,
                    ts: entry.ts,
                    member: declined.member,
                    replacement,
                });
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// What keeps a decision that names a panel from being that panel's (none for a
    /// decision of the assembly): a draw not made, a mandate that does not cover the
    /// motion, a date outside the term, more present than seated, a quorum under a
    /// majority of the panel.
    pub(crate) fn panel_problems(
        &self,
        decision: &Decision,
        motion: Motion,
    ) -> Vec<DecisionProblem> {
        let Some(id) = decision.panel else {
            return Vec::new();
        };
        let Some((draw, drawn)) = self
            .draws
            .get(&id)
            .and_then(|d| d.drawn.as_ref().map(|r| (d, r)))
        else {
            return vec![DecisionProblem::NoSuchPanel { draw: id }];
        };
        let mut problems = Vec::new();
        let mandate = &draw.spec.mandate;
        if !motion.within(mandate.scope) {
            problems.push(DecisionProblem::OutsideMandate {
                draw: id,
                scope: mandate.scope,
                motion,
            });
        }
        if decision.assembly_date > mandate.term_end {
            problems.push(DecisionProblem::AfterTerm {
                draw: id,
                date: decision.assembly_date,
                term_end: mandate.term_end,
            });
        }
        // A site west of Greenwich may still be on the previous day.
        let drawn_on: NaiveDate = (drawn.ts - TimeDelta::hours(12)).date_naive();
        if decision.assembly_date < drawn_on {
            problems.push(DecisionProblem::BeforePanel {
                draw: id,
                date: decision.assembly_date,
                drawn_on,
            });
        }
        let seated = u32::try_from(draw.seated.len()).unwrap_or(u32::MAX);
        if decision.present > seated {
            problems.push(DecisionProblem::MorePresentThanPanel {
                present: decision.present,
                seated,
            });
        }
        let minimum = seated / 2 + 1;
        if decision.quorum_required < minimum {
            problems.push(DecisionProblem::PanelQuorumTooLow {
                required: decision.quorum_required,
                minimum,
                seated,
            });
        }
        problems
    }
}

fn check_ceremony(rolls: &[u8], witnesses: &[String]) -> Result<()> {
    if rolls.is_empty() || rolls.len() > MAX_DIE_ROLLS {
        return Err(rule(format!(
            "{} die rolls: a draw takes 1 to {MAX_DIE_ROLLS}",
            rolls.len()
        )));
    }
    if let Some(bad) = rolls.iter().find(|r| !(1..=6).contains(*r)) {
        return Err(rule(format!("a die shows 1 to 6, not {bad}")));
    }
    if witnesses.is_empty() || witnesses.len() > MAX_WITNESSES {
        return Err(rule(format!(
            "{} witnesses named: a draw is made before 1 to {MAX_WITNESSES} named witnesses",
            witnesses.len()
        )));
    }
    for w in witnesses {
        if let Some(p) = check_text("witness name", w, MAX_SORTITION_TEXT_CHARS) {
            return Err(rule(p.to_string()));
        }
    }
    Ok(())
}

fn member_names(conn: &Connection) -> Result<BTreeSet<String>> {
    let mut stmt = conn.prepare("SELECT name FROM members")?;
    let names = stmt
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<BTreeSet<String>>>()?;
    Ok(names)
}

fn head_hash(conn: &Connection) -> Result<String> {
    Ok(conn
        .query_row(
            "SELECT hash FROM journal ORDER BY seq DESC LIMIT 1",
            [],
            |row| row.get::<_, String>(0),
        )
        .optional()?
        .unwrap_or_else(|| GENESIS_PREV_HASH.to_string()))
}

/// Appends an entry whose payload was built or re-encoded here, and applies it to
/// the state loaded from the journal: refused (and rolled back) when it breaks a rule.
fn record_payload(
    tx: &Connection,
    kind: EntryKind,
    author: &str,
    payload: &Value,
    ts: DateTime<Utc>,
) -> Result<Entry> {
    check_author(author)?;
    let mut state = SortitionState::load(tx)?;
    let members = member_names(tx)?;
    let entry = append(tx, kind, author, payload, ts)?;
    state.apply(&entry, &|name| members.contains(name))?;
    apply_row(tx, &entry)?;
    Ok(entry)
}

/// The `sortition_entries` row of a sortition entry.
pub(crate) fn apply_row(tx: &Connection, entry: &Entry) -> Result<()> {
    tx.execute(
        "INSERT INTO sortition_entries (seq, kind) VALUES (?1, ?2)",
        rusqlite::params![entry.seq, entry.kind.as_str()],
    )?;
    Ok(())
}

/// Checks a new sortition entry of any kind, as [`Journal::append`] is given it, and
/// records it as this program writes it.
pub(crate) fn record(
    tx: &Connection,
    kind: EntryKind,
    author: &str,
    payload: &Value,
    ts: DateTime<Utc>,
) -> Result<Entry> {
    let payload = match kind {
        EntryKind::SortitionKeysSet => encode(kind, &decode::<KeysSet>(kind, payload)?)?,
        EntryKind::SortitionOpted => encode(kind, &decode::<Opted>(kind, payload)?)?,
        EntryKind::SortitionAnnounced => encode(kind, &decode::<Announced>(kind, payload)?)?,
        EntryKind::SortitionDrawn => encode(kind, &decode::<Drawn>(kind, payload)?)?,
        EntryKind::PanelMemberDeclined => encode(kind, &decode::<Declined>(kind, payload)?)?,
        _ => return Err(rule(format!("`{kind}` is not a sortition entry"))),
    };
    record_payload(tx, kind, author, &payload, ts)
}

/// The problems of a decision naming a panel, from the journal (none without one).
pub(crate) fn panel_problems(
    conn: &Connection,
    decision: &Decision,
    motion: Motion,
) -> Result<Vec<DecisionProblem>> {
    if decision.panel.is_none() {
        return Ok(Vec::new());
    }
    Ok(SortitionState::load(conn)?.panel_problems(decision, motion))
}

/// A decision taken by a panel, as [`Journal::panel_decisions`] lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanelDecision {
    /// The `plan_adopted` or `parameters_adopted` entry.
    pub seq: i64,
    pub kind: EntryKind,
    #[serde(with = "crate::entry::ts_millis")]
    pub ts: DateTime<Utc>,
    pub decision: Decision,
}

impl Journal {
    /// Lists the attributes members may declare for sortition (and nothing else is
    /// asked): an act of the assembly. Replaces the previous list; what members
    /// declared for an attribute no longer listed is forgotten.
    pub fn set_sortition_keys(
        &self,
        keys: &[String],
        author: &str,
        ts: DateTime<Utc>,
    ) -> Result<Entry> {
        let kind = EntryKind::SortitionKeysSet;
        let payload = encode(
            kind,
            &KeysSet {
                keys: keys.to_vec(),
            },
        )?;
        self.write(|tx| record_payload(tx, kind, author, &payload, ts))
    }

    /// `member` opts in to be drawn (with the attributes they choose to declare,
    /// among those listed), or out (`opt_in` false, declaring nothing).
    pub fn opt_in_sortition(
        &self,
        member: &str,
        opt_in: bool,
        attributes: &BTreeMap<String, String>,
        ts: DateTime<Utc>,
    ) -> Result<Entry> {
        let kind = EntryKind::SortitionOpted;
        let payload = encode(
            kind,
            &Opted {
                opt_in,
                attributes: attributes.clone(),
            },
        )?;
        self.write(|tx| record_payload(tx, kind, member, &payload, ts))
    }

    /// The attributes members may declare, as the assembly listed them.
    pub fn sortition_keys(&self) -> Result<Vec<String>> {
        self.read(|conn| Ok(SortitionState::load(conn)?.keys().to_vec()))
    }

    /// Who is opted in now, with what they declared.
    pub fn sortition_pool(&self) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
        self.read(|conn| Ok(SortitionState::load(conn)?.pool))
    }

    /// What keeps `spec` from being announced now, every reason at once (none: it
    /// can be). What [`Journal::announce_sortition`] refuses with
    /// [`Refusal::InvalidDraw`].
    pub fn sortition_problems(&self, spec: &DrawSpec) -> Result<Vec<SortitionProblem>> {
        self.read(|conn| {
            let state = SortitionState::load(conn)?;
            let mut problems = Vec::new();
            if let Some(key) = &spec.strata_key
                && !state.keys.contains(key)
            {
                problems.push(SortitionProblem::UnknownStrataKey { key: key.clone() });
            }
            problems.extend(feasibility(
                spec,
                &state.pool_now(spec.strata_key.as_deref()),
            ));
            Ok(problems)
        })
    }

    /// Announces a draw: the pool (everyone opted in now) and its hash, the size,
    /// quotas, mandate and time of the draw. Refuses quotas that cannot be met,
    /// naming every reason ([`Refusal::InvalidDraw`]), and a draw set before now.
    /// The entry's `seq` is the draw's id.
    pub fn announce_sortition(
        &self,
        spec: &DrawSpec,
        author: &str,
        ts: DateTime<Utc>,
    ) -> Result<Entry> {
        let kind = EntryKind::SortitionAnnounced;
        self.write(|tx| {
            let state = SortitionState::load(tx)?;
            let pool = state.pool_now(spec.strata_key.as_deref());
            let payload = encode(
                kind,
                &Announced {
                    size: spec.size,
                    strata_key: spec.strata_key.clone(),
                    quotas: spec.quotas.clone(),
                    mandate: spec.mandate.clone(),
                    draw_at: spec.draw_at.trunc_subsecs(3),
                    pool_hash: pool_hash(&pool),
                    pool,
                },
            )?;
            record_payload(tx, kind, author, &payload, ts)
        })
    }

    /// Makes draw `draw` with the die `rolls` entered before `witnesses`: the seed
    /// from the announcement's hash, the journal head now and the rolls, the panel
    /// selected from it, all recorded in one entry.
    pub fn draw_sortition(
        &self,
        draw: i64,
        rolls: &[u8],
        witnesses: &[String],
        author: &str,
        ts: DateTime<Utc>,
    ) -> Result<Entry> {
        let kind = EntryKind::SortitionDrawn;
        self.write(|tx| {
            let state = SortitionState::load(tx)?;
            let d = state.draws.get(&draw).ok_or(Refusal::NoSuchDraw(draw))?;
            check_ceremony(rolls, witnesses)?;
            let head = head_hash(tx)?;
            let seed_bytes = seed(&d.announcement_hash, &head, rolls);
            let selection = select(&d.spec, &d.pool, seed_bytes).map_err(Refusal::InvalidDraw)?;
            let payload = encode(
                kind,
                &Drawn {
                    draw,
                    rolls: rolls.to_vec(),
                    witnesses: witnesses.to_vec(),
                    head_hash: head,
                    seed: hex::encode(seed_bytes),
                    selected: selection.selected,
                    consumed: selection.consumed,
                },
            )?;
            record_payload(tx, kind, author, &payload, ts)
        })
    }

    /// Records that `member` declines their seat on the panel of `draw`, with the
    /// replacement drawn from the seed's continuation (none when nobody is left).
    pub fn decline_panel_seat(
        &self,
        draw: i64,
        member: &str,
        author: &str,
        ts: DateTime<Utc>,
    ) -> Result<Entry> {
        let kind = EntryKind::PanelMemberDeclined;
        self.write(|tx| {
            let state = SortitionState::load(tx)?;
            let d = state.draws.get(&draw).ok_or(Refusal::NoSuchDraw(draw))?;
            let Some(drawn) = &d.drawn else {
                return Err(rule(format!("draw {draw} was not made yet: nobody sits")));
            };
            let mut ever: BTreeSet<String> = drawn.selected.iter().cloned().collect();
            ever.extend(d.declines.iter().filter_map(|x| x.replacement.clone()));
            let others: Vec<String> = d.seated.iter().filter(|m| *m != member).cloned().collect();
            let seed_bytes = seed(&d.announcement_hash, &drawn.head_hash, &drawn.rolls);
            let (step, consumed) = replace(
                &d.spec, &d.pool, seed_bytes, d.consumed, &ever, &others, member,
            );
            let payload = encode(
                kind,
                &Declined {
                    draw,
                    member: member.to_string(),
                    replacement: step.map(|s| s.member),
                    consumed,
                },
            )?;
            record_payload(tx, kind, author, &payload, ts)
        })
    }

    /// Every draw, newest first.
    pub fn draws(&self) -> Result<Vec<Draw>> {
        self.read(|conn| {
            Ok(SortitionState::load(conn)?
                .draws
                .into_values()
                .rev()
                .collect())
        })
    }

    /// One draw by its id (the announcement's `seq`).
    pub fn draw(&self, id: i64) -> Result<Option<Draw>> {
        self.read(|conn| Ok(SortitionState::load(conn)?.draws.remove(&id)))
    }

    /// The plans and parameters adopted by the panel of `draw`, oldest first.
    pub fn panel_decisions(&self, draw: i64) -> Result<Vec<PanelDecision>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(&format!(
                "{SELECT_ENTRY} WHERE kind IN ('plan_adopted', 'parameters_adopted') ORDER BY seq"
            ))?;
            let mut rows = stmt.query([])?;
            let mut found = Vec::new();
            while let Some(row) = rows.next()? {
                let entry = entry_from_row(row)?;
                let Some(decision) = entry
                    .payload
                    .get("decision")
                    .and_then(|d| serde_json::from_value::<Decision>(d.clone()).ok())
                else {
                    continue;
                };
                if decision.panel == Some(draw) {
                    found.push(PanelDecision {
                        seq: entry.seq,
                        kind: entry.kind,
                        ts: entry.ts,
                        decision,
                    });
                }
            }
            Ok(found)
        })
    }
}
