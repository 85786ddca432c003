//! The planning board (`intent_posted`, `commitment_proposed`, `commitment_accepted`,
//! `commitment_released` and `commitment_fulfilled` entries; `intents`,
//! `commitments` and `fulfilments` tables): their payloads, recording them, the rules
//! that apply them, and reading them back (DESIGN.md §11).
//!
//! - A member posts an intent; a collective need is posted by a member of the
//!   assembly, and any member of the assembly then acts for its receiving side.
//! - Someone else proposes a commitment on it, taking the other side (the provider
//!   of a need, the receiver of an offer) and accepting by proposing; it exists once
//!   the intent's side accepts too. Only accepted commitments hold a quantity, and
//!   what they hold never exceeds the intent's quantity: a proposal or an acceptance
//!   beyond what remains is refused.
//! - Either side releases a commitment that is not yet fulfilled; what it held
//!   returns to the intent, except what it already fulfilled.
//! - A contribution names the commitment it fulfils (its contributor is the
//!   provider). When peers validate it, a `commitment_fulfilled` entry follows the
//!   validation in the same transaction: in hours, the contribution's hours up to
//!   what the commitment still lacks; in any other unit, all it lacks. The intent
//!   closes when what was fulfilled reaches its quantity.
//! - An intent expires at its expiry unless closed before: that is read at the
//!   instant asked, and writes nothing; an expired intent takes no new commitment
//!   and no acceptance, and those already accepted may still be fulfilled.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, Row, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::entry::{Entry, EntryKind, format_ts, parse_canonical_ts};
use crate::error::{Error, Refusal, Result};
use crate::journal::Journal;
use crate::journal::chain::{append, check_author};
use crate::members::{NODE_AUTHOR, Role};
use crate::planning::{
    Action, Commitment, CommitmentState, Direction, Intent, IntentState, LoadShiftBasis,
    LoadShiftCertification, MAX_NOTE_CHARS, Match, NewCommitment, NewIntent,
    NewLoadShiftCertification, PlanningProblem, Quantity, TextField, Unfulfillable, Unit,
    Visibility, load_shift_quantity, quantity_problem, text_problem,
};
use crate::rules::sql::SqlState;
use crate::rules::state::{
    CommitmentRow, FulfilmentRow, IntentRow, LedgerState, Stage, decode, encode, require_member,
};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntentPosted {
    direction: Direction,
    action: Action,
    class: String,
    quantity: f64,
    unit: Unit,
    window_start: Option<String>,
    window_end: Option<String>,
    /// `null`: never expires.
    expires_at: Option<String>,
    description: String,
    visibility: Visibility,
    collective: bool,
    /// Only in repair needs the node opens: absent elsewhere, so members' intents
    /// are recorded as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntentClosed {
    intent: i64,
    reason: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitmentProposed {
    intent: i64,
    quantity: f64,
    note: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitmentAccepted {
    commitment: i64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitmentReleased {
    commitment: i64,
    reason: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitmentFulfilled {
    commitment: i64,
    contribution: i64,
    quantity: f64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadShiftCertified {
    commitment: i64,
    household: Option<String>,
    household_members: Vec<String>,
    meters: Vec<String>,
    window_start: String,
    window_end: String,
    basis: LoadShiftBasis,
    measured_kwh: Option<f64>,
    baseline_kwh: Option<f64>,
    baseline_days: u32,
    quantity: f64,
}

/// Households, members and meters named in a certification: as many as a site has.
const MAX_CERTIFIED_NAMES: usize = 64;

impl Journal {
    /// Posts `member`'s intent. Refuses one that does not hold
    /// ([`Refusal::InvalidIntent`], each problem named), a collective need from
    /// outside the assembly ([`Refusal::AssemblyOnly`]) and an unknown member. The
    /// entry's `seq` is the intent's id; without an expiry it lapses
    /// [`crate::DEFAULT_INTENT_LIFETIME_DAYS`] after `ts`.
    pub fn post_intent(
        &self,
        member: &str,
        intent: &NewIntent,
        ts: DateTime<Utc>,
    ) -> Result<Entry> {
        let payload = intent_payload(intent, ts)?;
        self.write(|tx| record_intent(tx, member, &payload, ts))
    }

    /// `member` proposes to take the other side of intent `intent` for
    /// `commitment.quantity`, accepting it by proposing. Refuses an unknown intent
    /// ([`Refusal::NoSuchIntent`]), one's own intent, an intent closed or expired
    /// ([`Refusal::IntentNotOpen`]) and more than remains
    /// ([`Refusal::OverCommitment`]). The entry's `seq` is the commitment's id.
    pub fn propose_commitment(
        &self,
        member: &str,
        intent: i64,
        commitment: &NewCommitment,
        ts: DateTime<Utc>,
    ) -> Result<Entry> {
        let payload = commitment_payload(intent, commitment);
        self.write(|tx| record_proposed(tx, member, &payload, ts))
    }

    /// The other side accepts commitment `id`, which then exists. Refuses whoever
    /// is not that side ([`Refusal::NotAParty`]), a commitment released or already
    /// accepted, an intent no longer open, and a quantity beyond what remains of the
    /// intent ([`Refusal::OverCommitment`]).
    pub fn accept_commitment(&self, member: &str, id: i64, ts: DateTime<Utc>) -> Result<Entry> {
        let payload = serde_json::json!({ "commitment": id });
        self.write(|tx| record_simple(tx, EntryKind::CommitmentAccepted, member, &payload, ts))
    }

    /// Either side releases commitment `id` before it is fulfilled.
    pub fn release_commitment(
        &self,
        member: &str,
        id: i64,
        reason: &str,
        ts: DateTime<Utc>,
    ) -> Result<Entry> {
        let payload = serde_json::json!({ "commitment": id, "reason": reason.trim() });
        self.write(|tx| record_simple(tx, EntryKind::CommitmentReleased, member, &payload, ts))
    }

    /// `member` closes their own open intent `id` before it is fulfilled or
    /// expires (the commitments already accepted on it stay as they are).
    pub fn close_intent(
        &self,
        member: &str,
        id: i64,
        reason: &str,
        ts: DateTime<Utc>,
    ) -> Result<Entry> {
        let payload = serde_json::json!({ "intent": id, "reason": reason.trim() });
        self.write(|tx| record_closed(tx, member, &payload, ts))
    }

    /// The node opens a collective need to repair `device` (class `repair`,
    /// [`REPAIR_NEED_HOURS`] hours of work, `description` in the site's language),
    /// unless a repair need for it is open already: then nothing is written.
    pub fn open_repair_need(
        &self,
        device: &str,
        description: &str,
        ts: DateTime<Utc>,
    ) -> Result<Option<Entry>> {
        self.write(|tx| {
            if open_repair_need(tx, device, ts)?.is_some() {
                return Ok(None);
            }
            let need = NewIntent {
                direction: Direction::Need,
                action: Action::Work,
                class: REPAIR_CLASS.into(),
                quantity: REPAIR_NEED_HOURS,
                unit: Unit::Hours,
                window_start: None,
                window_end: None,
                expires_at: None,
                never_expires: false,
                description: description.to_string(),
                visibility: Visibility::Node,
                collective: true,
            };
            let mut payload = intent_payload(&need, ts)?;
            payload["device"] = Value::from(device);
            record_intent(tx, NODE_AUTHOR, &payload, ts).map(Some)
        })
    }

    /// The node opens a collective need for service `service` (its id), shed
    /// for hours this week: `kwh` (rounded down to the hundredth) of load shifted
    /// away from its hours, class [`SHED_CLASS`], naming `service:<id>` as its
    /// device, lapsing at `expires_at` (the week's end); `description` in the
    /// site's language. Nothing is written while one for that service is open, or
    /// for less than a hundredth of a kWh.
    pub fn open_shed_need(
        &self,
        service: &str,
        kwh: f64,
        description: &str,
        expires_at: DateTime<Utc>,
        ts: DateTime<Utc>,
    ) -> Result<Option<Entry>> {
        let quantity = (kwh * 100.0).floor() / 100.0;
        if quantity.is_nan() || quantity < 0.01 {
            return Ok(None);
        }
        let device = format!("{SHED_DEVICE_PREFIX}{service}");
        self.write(|tx| {
            if open_repair_need(tx, &device, ts)?.is_some() {
                return Ok(None);
            }
            let need = NewIntent {
                direction: Direction::Need,
                action: Action::Use,
                class: SHED_CLASS.into(),
                quantity: quantity.min(crate::planning::MAX_QUANTITY),
                unit: Unit::Kwh,
                window_start: None,
                window_end: None,
                expires_at: Some(expires_at),
                never_expires: false,
                description: description.to_string(),
                visibility: Visibility::Node,
                collective: true,
            };
            let mut payload = intent_payload(&need, ts)?;
            payload["device"] = Value::from(device.as_str());
            record_intent(tx, NODE_AUTHOR, &payload, ts).map(Some)
        })
    }

    /// The node closes the open repair need of `device`, now that it is back, if
    /// what it asked was fulfilled; a need not yet fulfilled stays open (until it is,
    /// or it expires). The `intent_closed` entry, if one was written.
    pub fn close_repair_need(&self, device: &str, ts: DateTime<Utc>) -> Result<Option<Entry>> {
        self.write(|tx| {
            let Some(need) = open_repair_need(tx, device, ts)? else {
                return Ok(None);
            };
            if need.fulfilled < need.quantity {
                return Ok(None);
            }
            let payload = serde_json::json!({ "intent": need.id, "reason": "device back" });
            record_closed(tx, NODE_AUTHOR, &payload, ts).map(Some)
        })
    }

    /// The node offers the solar surplus expected over `[start, end)`: an offer of
    /// class [`SURPLUS_CLASS`] for `kwh` (rounded down to the hundredth), lapsing at
    /// `end`, `description` in the site's language. Nothing is written when an open
    /// surplus offer of the node's already overlaps the window, or when less than a
    /// hundredth of a kWh is offered.
    pub fn open_surplus_offer(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        kwh: f64,
        description: &str,
        ts: DateTime<Utc>,
    ) -> Result<Option<Entry>> {
        let quantity = (kwh * 100.0).floor() / 100.0;
        if quantity.is_nan() || quantity < 0.01 {
            return Ok(None);
        }
        self.write(|tx| {
            let overlapping = select_intents(tx, None, ts)?.into_iter().any(|i| {
                i.author == NODE_AUTHOR
                    && i.class == SURPLUS_CLASS
                    && i.state == IntentState::Open
                    && i.window_start.is_none_or(|s| s < end)
                    && i.window_end.is_none_or(|e| e > start)
            });
            if overlapping {
                return Ok(None);
            }
            let offer = NewIntent {
                direction: Direction::Offer,
                action: Action::Use,
                class: SURPLUS_CLASS.into(),
                quantity,
                unit: Unit::Kwh,
                window_start: Some(start),
                window_end: Some(end),
                expires_at: Some(end),
                never_expires: false,
                description: description.to_string(),
                visibility: Visibility::Node,
                collective: false,
            };
            let payload = intent_payload(&offer, ts)?;
            record_intent(tx, NODE_AUTHOR, &payload, ts).map(Some)
        })
    }

    /// The node accepts the commitments proposed on its open surplus offers, as long
    /// as what they ask fits what remains (the others wait, and may be released by
    /// whoever proposed them). The `commitment_accepted` entries written.
    pub fn accept_surplus_commitments(&self, ts: DateTime<Utc>) -> Result<Vec<Entry>> {
        self.write(|tx| {
            let offers: Vec<i64> = select_intents(tx, None, ts)?
                .into_iter()
                .filter(|i| {
                    i.author == NODE_AUTHOR
                        && i.class == SURPLUS_CLASS
                        && i.state == IntentState::Open
                })
                .map(|i| i.id)
                .collect();
            let mut written = Vec::new();
            let mut proposed: Vec<Commitment> = select_commitments(tx, None)?
                .into_iter()
                .filter(|c| c.state == CommitmentState::Proposed && offers.contains(&c.intent))
                .collect();
            // Oldest first: who asked first is served first.
            proposed.sort_by_key(|c| c.id);
            for c in proposed {
                let Some(offer) = select_intents(tx, Some(c.intent), ts)?.into_iter().next() else {
                    continue;
                };
                if c.quantity > offer.remaining {
                    continue;
                }
                let payload = serde_json::json!({ "commitment": c.id });
                written.push(record_simple(
                    tx,
                    EntryKind::CommitmentAccepted,
                    NODE_AUTHOR,
                    &payload,
                    ts,
                )?);
            }
            Ok(written)
        })
    }

    /// The commitments on the node's surplus offers whose window is over at `at`
    /// and that the node has not certified yet: accepted, not released, oldest
    /// first.
    pub fn load_shifts_to_certify(&self, at: DateTime<Utc>) -> Result<Vec<(Commitment, Intent)>> {
        self.read(|conn| {
            let offers: Vec<Intent> = select_intents(conn, None, at)?
                .into_iter()
                .filter(|i| {
                    i.author == NODE_AUTHOR
                        && i.class == SURPLUS_CLASS
                        && i.window_end.is_some_and(|end| end <= at)
                })
                .collect();
            let mut due: Vec<(Commitment, Intent)> = select_commitments(conn, None)?
                .into_iter()
                .filter(|c| c.state == CommitmentState::Accepted && c.certification.is_none())
                .filter_map(|c| {
                    let offer = offers.iter().find(|i| i.id == c.intent)?.clone();
                    Some((c, offer))
                })
                .collect();
            due.sort_by_key(|(c, _)| c.id);
            Ok(due)
        })
    }

    /// The node certifies what the receiver's household drew in the window of a
    /// surplus offer above its baseline, for commitment `certification.commitment`
    /// on it; the quantity is worked out here ([`load_shift_quantity`]) and fulfils
    /// the commitment. Refused before the window is over, twice for one commitment,
    /// for a commitment not accepted or released, or not on a surplus offer of the
    /// node's, and for a household the receiver is not a member of.
    pub fn certify_load_shift(
        &self,
        certification: &NewLoadShiftCertification,
        ts: DateTime<Utc>,
    ) -> Result<Entry> {
        self.write(|tx| {
            let mut state = SqlState::new(tx);
            let (commitment, intent) = commitment_and_intent(&mut state, certification.commitment)?;
            let lacking = commitment.quantity.saturating_sub(commitment.fulfilled);
            let quantity = load_shift_quantity(
                certification.basis,
                certification.measured_kwh,
                certification.baseline_kwh,
                lacking,
            );
            let window = |t: Option<DateTime<Utc>>| t.map(format_ts).unwrap_or_default();
            let kind = EntryKind::LoadShiftCertified;
            let payload = encode(
                kind,
                &LoadShiftCertified {
                    commitment: commitment.id,
                    household: certification.household.clone(),
                    household_members: certification.household_members.clone(),
                    meters: certification.meters.clone(),
                    window_start: window(intent.window_start),
                    window_end: window(intent.window_end),
                    basis: certification.basis,
                    measured_kwh: certification.measured_kwh,
                    baseline_kwh: certification.baseline_kwh,
                    baseline_days: certification.baseline_days,
                    quantity: quantity.as_f64(),
                },
            )?;
            let entry = append(tx, kind, NODE_AUTHOR, &payload, ts)?;
            apply_certified(&mut SqlState::new(tx), &entry)?;
            Ok(entry)
        })
    }

    /// Every intent, newest first, its state read at `at`.
    pub fn intents(&self, at: DateTime<Utc>) -> Result<Vec<Intent>> {
        self.read(|conn| select_intents(conn, None, at))
    }

    /// One intent by id, its state read at `at`.
    pub fn intent(&self, id: i64, at: DateTime<Utc>) -> Result<Option<Intent>> {
        self.read(|conn| Ok(select_intents(conn, Some(id), at)?.into_iter().next()))
    }

    /// Every commitment, newest first.
    pub fn commitments(&self) -> Result<Vec<Commitment>> {
        self.read(|conn| select_commitments(conn, None))
    }

    /// One commitment by id.
    pub fn commitment(&self, id: i64) -> Result<Option<Commitment>> {
        self.read(|conn| Ok(select_commitments(conn, Some(id))?.into_iter().next()))
    }

    /// The commitments `member` is a side of (or acts for, as a member of the
    /// assembly, on a collective need), newest first.
    pub fn commitments_of(&self, member: &str) -> Result<Vec<Commitment>> {
        let assembly = self
            .member(member)?
            .is_some_and(|m| m.roles.contains(&Role::Assembly));
        let intents = self.intents(Utc::now())?;
        Ok(self
            .commitments()?
            .into_iter()
            .filter(|c| {
                c.provider == member
                    || c.receiver == member
                    || (assembly
                        && intents
                            .iter()
                            .any(|i| i.id == c.intent && i.collective && i.author == c.receiver))
            })
            .collect())
    }

    /// The matching query: for each of `member`'s open intents (and, for a member
    /// of the assembly, each open collective need), every open intent of someone
    /// else of the same class and the opposite direction whose window overlaps,
    /// with something left to commit on both sides. Yours oldest first.
    pub fn matches(&self, member: &str, at: DateTime<Utc>) -> Result<Vec<Match>> {
        let assembly = self
            .member(member)?
            .is_some_and(|m| m.roles.contains(&Role::Assembly));
        let open: Vec<Intent> = self
            .intents(at)?
            .into_iter()
            .filter(|i| i.state == IntentState::Open && i.remaining > Quantity::ZERO)
            .collect();
        let yours = |i: &Intent| i.author == member || (assembly && i.collective);
        let mut found = Vec::new();
        for mine in open.iter().rev().filter(|i| yours(i)) {
            for theirs in open.iter().filter(|t| {
                t.author != member
                    && !yours(t)
                    && t.class == mine.class
                    && t.direction == mine.direction.opposite()
                    && t.window_overlaps(mine)
            }) {
                found.push(Match {
                    yours: mine.clone(),
                    theirs: theirs.clone(),
                });
            }
        }
        Ok(found)
    }
}

/// The class of the repair needs the node opens.
pub const REPAIR_CLASS: &str = "repair";
/// The class of the node's offers of solar surplus, which households commit to
/// shift a load into (DESIGN.md §11).
pub const SURPLUS_CLASS: &str = "kwh-surplus";
/// The class of the needs the node opens for a service shed for hours: load
/// shifted away from its hours (DESIGN.md §11).
pub const SHED_CLASS: &str = "load-shift";
/// What the `device` of a need for a shed service starts with, before its id.
pub const SHED_DEVICE_PREFIX: &str = "service:";
/// The hours of work a repair need of the node's asks for.
pub const REPAIR_NEED_HOURS: f64 = 2.0;

/// The open repair need of `device`, if there is one.
fn open_repair_need(tx: &Connection, device: &str, at: DateTime<Utc>) -> Result<Option<IntentRow>> {
    let mut stmt = tx.prepare(&format!(
        "{SELECT_INTENT} WHERE device = ?1 AND closed_seq IS NULL ORDER BY id DESC"
    ))?;
    let mut rows = stmt.query([device])?;
    while let Some(row) = rows.next()? {
        let need = intent_row(row)?;
        if intent_state(&need, at) == IntentState::Open {
            return Ok(Some(need));
        }
    }
    Ok(None)
}

/// The payload an intent is recorded with at `ts` (its default expiry resolved).
pub(crate) fn intent_payload(intent: &NewIntent, ts: DateTime<Utc>) -> Result<Value> {
    let problems = intent.problems(ts);
    if !problems.is_empty() {
        return Err(Refusal::InvalidIntent(problems).into());
    }
    let ts_text = |t: Option<DateTime<Utc>>| t.map(format_ts);
    encode(
        EntryKind::IntentPosted,
        &IntentPosted {
            direction: intent.direction,
            action: intent.action,
            class: intent.class.clone(),
            quantity: intent.quantity,
            unit: intent.unit,
            window_start: ts_text(intent.window_start),
            window_end: ts_text(intent.window_end),
            expires_at: ts_text(intent.expiry_at(ts)),
            description: intent.description.trim().to_string(),
            visibility: intent.visibility,
            collective: intent.collective,
            device: None,
        },
    )
}

pub(crate) fn commitment_payload(intent: i64, c: &NewCommitment) -> Value {
    serde_json::json!({"intent": intent, "quantity": c.quantity, "note": c.note.trim()})
}

// ---------------------------------------------------------------------------------
// Writing.

pub(crate) fn record_intent(
    tx: &Connection,
    member: &str,
    payload: &Value,
    ts: DateTime<Utc>,
) -> Result<Entry> {
    check_author(member)?;
    let kind = EntryKind::IntentPosted;
    let posted: IntentPosted = decode(kind, payload)?;
    let entry = append(tx, kind, member, &encode(kind, &posted)?, ts)?;
    apply_intent(&mut SqlState::new(tx), &entry)?;
    Ok(entry)
}

pub(crate) fn record_proposed(
    tx: &Connection,
    member: &str,
    payload: &Value,
    ts: DateTime<Utc>,
) -> Result<Entry> {
    check_author(member)?;
    let kind = EntryKind::CommitmentProposed;
    let proposed: CommitmentProposed = decode(kind, payload)?;
    // Named before encoding: a NaN would not survive the trip through JSON.
    if let Some(problem) = quantity_problem(proposed.quantity) {
        return Err(Refusal::InvalidIntent(vec![problem]).into());
    }
    let entry = append(tx, kind, member, &encode(kind, &proposed)?, ts)?;
    apply_proposed(&mut SqlState::new(tx), &entry)?;
    Ok(entry)
}

/// Records an acceptance or a release (payloads without numbers to check first).
pub(crate) fn record_simple(
    tx: &Connection,
    kind: EntryKind,
    member: &str,
    payload: &Value,
    ts: DateTime<Utc>,
) -> Result<Entry> {
    check_author(member)?;
    let payload = match kind {
        EntryKind::CommitmentAccepted => {
            encode(kind, &decode::<CommitmentAccepted>(kind, payload)?)?
        }
        _ => encode(kind, &decode::<CommitmentReleased>(kind, payload)?)?,
    };
    let entry = append(tx, kind, member, &payload, ts)?;
    let mut state = SqlState::new(tx);
    match kind {
        EntryKind::CommitmentAccepted => apply_accepted(&mut state, &entry)?,
        _ => apply_released(&mut state, &entry)?,
    }
    Ok(entry)
}

pub(crate) fn record_closed(
    tx: &Connection,
    author: &str,
    payload: &Value,
    ts: DateTime<Utc>,
) -> Result<Entry> {
    check_author(author)?;
    let kind = EntryKind::IntentClosed;
    let closed: IntentClosed = decode(kind, payload)?;
    let entry = append(tx, kind, author, &encode(kind, &closed)?, ts)?;
    apply_closed(&mut SqlState::new(tx), &entry)?;
    Ok(entry)
}

/// After contribution `contribution` was validated by `member`'s approval at `ts`:
/// the `commitment_fulfilled` entry, when it names a commitment that still lacks
/// something.
pub(crate) fn fulfil(
    tx: &Connection,
    member: &str,
    contribution: i64,
    ts: DateTime<Utc>,
) -> Result<Option<Entry>> {
    let mut state = SqlState::new(tx);
    let Some(link) = state.fulfilment(contribution)? else {
        return Ok(None);
    };
    let Some(contribution_row) = state.contribution(contribution)? else {
        return Ok(None);
    };
    let commitment = state
        .commitment(link.commitment)?
        .ok_or(Refusal::NoSuchCommitment(link.commitment))?;
    let intent = state
        .intent(commitment.intent)?
        .ok_or(Refusal::NoSuchIntent(commitment.intent))?;
    let quantity = fulfilment_quantity(
        &commitment,
        intent.unit,
        contribution_row.hours.centihours(),
    );
    if quantity == Quantity::ZERO {
        return Ok(None);
    }
    let kind = EntryKind::CommitmentFulfilled;
    let payload = CommitmentFulfilled {
        commitment: commitment.id,
        contribution,
        quantity: quantity.as_f64(),
    };
    let entry = append(tx, kind, member, &encode(kind, &payload)?, ts)?;
    apply_fulfilled(&mut SqlState::new(tx), &entry)?;
    Ok(Some(entry))
}

/// What a validated contribution of `centihours` fulfils of `c`: nothing once it
/// is released or not accepted; in hours, its hours up to what `c` lacks; in any
/// other unit, all that `c` lacks.
fn fulfilment_quantity(c: &CommitmentRow, unit: Unit, centihours: u64) -> Quantity {
    if c.accepted_seq.is_none() || c.released_seq.is_some() {
        return Quantity::ZERO;
    }
    let lacking = c.quantity.saturating_sub(c.fulfilled);
    match unit {
        Unit::Hours => Quantity::from_centi(
            lacking
                .centi()
                .min(i64::try_from(centihours).unwrap_or(i64::MAX)),
        ),
        _ => lacking,
    }
}

// ---------------------------------------------------------------------------------
// Applying.

fn parse_ts(kind: EntryKind, field: &str, text: Option<&str>) -> Result<Option<DateTime<Utc>>> {
    text.map(|t| {
        parse_canonical_ts(t).ok_or_else(|| {
            Error::from(Refusal::InvalidPayload {
                kind,
                reason: format!("`{field}` {t:?} is not a canonical instant"),
            })
        })
    })
    .transpose()
}

fn intent_state(intent: &IntentRow, at: DateTime<Utc>) -> IntentState {
    if intent.closed_seq.is_some() {
        IntentState::Closed
    } else if intent.expires_at.is_some_and(|e| e <= at) {
        IntentState::Expired
    } else {
        IntentState::Open
    }
}

fn require_open(intent: &IntentRow, at: DateTime<Utc>) -> Result<()> {
    match intent_state(intent, at) {
        IntentState::Open => Ok(()),
        state => Err(Refusal::IntentNotOpen {
            intent: intent.id,
            state,
        }
        .into()),
    }
}

fn quantity_of(kind: EntryKind, value: f64) -> Result<Quantity> {
    if let Some(problem) = quantity_problem(value) {
        return Err(Refusal::InvalidIntent(vec![problem]).into());
    }
    Quantity::from_f64(value).ok_or_else(|| {
        Refusal::InvalidPayload {
            kind,
            reason: format!("quantity {value} does not count in hundredths"),
        }
        .into()
    })
}

pub(crate) fn apply_intent(state: &mut impl LedgerState, entry: &Entry) -> Result<()> {
    let kind = entry.kind;
    let posted: IntentPosted = decode(kind, &entry.payload)?;
    if entry.author != NODE_AUTHOR {
        require_member(state, &entry.author)?;
    }
    let expires_at = parse_ts(kind, "expires_at", posted.expires_at.as_deref())?;
    let device = posted.device.clone();
    let by_node = entry.author == NODE_AUTHOR;
    // The node posts two things: repair needs naming a device (always collective),
    // and offers of its solar surplus (class `kwh-surplus`, in kWh, over a window).
    let repair = device.is_some() && posted.collective;
    let surplus = device.is_none()
        && !posted.collective
        && posted.direction == Direction::Offer
        && posted.class == SURPLUS_CLASS
        && posted.unit == Unit::Kwh
        && posted.window_start.is_some()
        && posted.window_end.is_some();
    if (by_node && !(repair || surplus)) || (!by_node && device.is_some()) {
        return Err(Refusal::InvalidPayload {
            kind,
            reason: format!(
                "only the node (author `{NODE_AUTHOR}`) posts an intent naming a device, \
                 always as a collective need; and it posts nothing else but offers of \
                 class `{SURPLUS_CLASS}` in kWh over a window"
            ),
        }
        .into());
    }
    if let Some(device) = &device
        && (device.trim().is_empty() || device.chars().any(char::is_control))
    {
        return Err(Refusal::InvalidPayload {
            kind,
            reason: format!("device {device:?} is not a device id"),
        }
        .into());
    }
    let intent = NewIntent {
        direction: posted.direction,
        action: posted.action,
        class: posted.class,
        quantity: posted.quantity,
        unit: posted.unit,
        window_start: parse_ts(kind, "window_start", posted.window_start.as_deref())?,
        window_end: parse_ts(kind, "window_end", posted.window_end.as_deref())?,
        expires_at,
        never_expires: expires_at.is_none(),
        description: posted.description,
        visibility: posted.visibility,
        collective: posted.collective,
    };
    let problems = intent.problems(entry.ts);
    if !problems.is_empty() {
        return Err(Refusal::InvalidIntent(problems).into());
    }
    if intent.collective && !by_node && !state.has_role(&entry.author, Role::Assembly)? {
        return Err(Refusal::AssemblyOnly(format!(
            "`{}` is not a member of the assembly: only the assembly posts collective needs",
            entry.author
        ))
        .into());
    }
    state.put_intent(&IntentRow {
        id: entry.seq,
        author: entry.author.clone(),
        direction: intent.direction,
        action: intent.action,
        class: intent.class,
        quantity: quantity_of(kind, intent.quantity)?,
        unit: intent.unit,
        window_start: intent.window_start,
        window_end: intent.window_end,
        expires_at,
        description: intent.description,
        visibility: intent.visibility,
        collective: intent.collective,
        committed: Quantity::ZERO,
        fulfilled: Quantity::ZERO,
        closed_seq: None,
        device,
    })
}

pub(crate) fn apply_proposed(state: &mut impl LedgerState, entry: &Entry) -> Result<()> {
    let kind = entry.kind;
    let proposed: CommitmentProposed = decode(kind, &entry.payload)?;
    let member = entry.author.as_str();
    require_member(state, member)?;
    let intent = state
        .intent(proposed.intent)?
        .ok_or(Refusal::NoSuchIntent(proposed.intent))?;
    if intent.author == member {
        return Err(Refusal::PlanningRule(PlanningProblem::OwnIntent {
            intent: intent.id,
            member: member.to_string(),
        })
        .into());
    }
    require_open(&intent, entry.ts)?;
    let quantity = quantity_of(kind, proposed.quantity)?;
    let remaining = intent.quantity.saturating_sub(intent.committed);
    if quantity > remaining {
        return Err(Refusal::OverCommitment {
            intent: intent.id,
            asked: quantity,
            remaining,
        }
        .into());
    }
    if let Some(problem) = text_problem(TextField::Note, &proposed.note, MAX_NOTE_CHARS, true) {
        return Err(Refusal::InvalidIntent(vec![problem]).into());
    }
    let (provider, receiver) = match intent.direction {
        Direction::Need => (member.to_string(), intent.author.clone()),
        Direction::Offer => (intent.author.clone(), member.to_string()),
    };
    state.put_commitment(&CommitmentRow {
        id: entry.seq,
        intent: intent.id,
        provider,
        receiver,
        proposed_by: member.to_string(),
        quantity,
        note: proposed.note,
        accepted_seq: None,
        released_seq: None,
        fulfilled: Quantity::ZERO,
        certified_seq: None,
    })
}

/// Whether `member` acts for `side` of a commitment on `intent`: they are that side,
/// or it is the receiving side of a collective need and they sit in the assembly.
fn acts_for(
    state: &mut impl LedgerState,
    member: &str,
    side: &str,
    intent: &IntentRow,
) -> Result<bool> {
    Ok(member == side
        || (intent.collective
            && side == intent.author
            && state.has_role(member, Role::Assembly)?))
}

fn commitment_and_intent(
    state: &mut impl LedgerState,
    id: i64,
) -> Result<(CommitmentRow, IntentRow)> {
    let commitment = state.commitment(id)?.ok_or(Refusal::NoSuchCommitment(id))?;
    let intent = state
        .intent(commitment.intent)?
        .ok_or(Refusal::NoSuchIntent(commitment.intent))?;
    Ok((commitment, intent))
}

pub(crate) fn apply_accepted(state: &mut impl LedgerState, entry: &Entry) -> Result<()> {
    let accepted: CommitmentAccepted = decode(entry.kind, &entry.payload)?;
    let member = entry.author.as_str();
    let (mut commitment, mut intent) = commitment_and_intent(state, accepted.commitment)?;
    // The node accepts for its own surplus offers, and for nothing else.
    if member != NODE_AUTHOR || intent.author != NODE_AUTHOR {
        require_member(state, member)?;
    }
    let id = commitment.id;
    let other = if commitment.proposed_by == commitment.provider {
        commitment.receiver.clone()
    } else {
        commitment.provider.clone()
    };
    if member == commitment.proposed_by || !acts_for(state, member, &other, &intent)? {
        return Err(Refusal::NotAParty {
            member: member.to_string(),
            commitment: id,
        }
        .into());
    }
    if commitment.released_seq.is_some() {
        return Err(Refusal::PlanningRule(PlanningProblem::Released { commitment: id }).into());
    }
    if commitment.accepted_seq.is_some() {
        return Err(
            Refusal::PlanningRule(PlanningProblem::AlreadyAccepted { commitment: id }).into(),
        );
    }
    require_open(&intent, entry.ts)?;
    let remaining = intent.quantity.saturating_sub(intent.committed);
    if commitment.quantity > remaining {
        return Err(Refusal::OverCommitment {
            intent: intent.id,
            asked: commitment.quantity,
            remaining,
        }
        .into());
    }
    intent.committed = Quantity::from_centi(intent.committed.centi() + commitment.quantity.centi());
    commitment.accepted_seq = Some(entry.seq);
    state.put_intent(&intent)?;
    state.put_commitment(&commitment)
}

pub(crate) fn apply_closed(state: &mut impl LedgerState, entry: &Entry) -> Result<()> {
    let closed: IntentClosed = decode(entry.kind, &entry.payload)?;
    let author = entry.author.as_str();
    if author != NODE_AUTHOR {
        require_member(state, author)?;
    }
    let id = closed.intent;
    let mut intent = state.intent(id)?.ok_or(Refusal::NoSuchIntent(id))?;
    let rule = |problem| Err(Refusal::PlanningRule(problem).into());
    if intent.author != author {
        return rule(PlanningProblem::NotYourIntent { intent: id });
    }
    if intent.closed_seq.is_some() {
        return rule(PlanningProblem::AlreadyClosed { intent: id });
    }
    require_open(&intent, entry.ts)?;
    if intent.device.is_some() && intent.fulfilled < intent.quantity {
        return rule(PlanningProblem::RepairNotFulfilled { intent: id });
    }
    if let Some(problem) = text_problem(TextField::Reason, &closed.reason, MAX_NOTE_CHARS, true) {
        return Err(Refusal::InvalidIntent(vec![problem]).into());
    }
    intent.closed_seq = Some(entry.seq);
    state.put_intent(&intent)
}

pub(crate) fn apply_released(state: &mut impl LedgerState, entry: &Entry) -> Result<()> {
    let released: CommitmentReleased = decode(entry.kind, &entry.payload)?;
    let member = entry.author.as_str();
    require_member(state, member)?;
    let (mut commitment, mut intent) = commitment_and_intent(state, released.commitment)?;
    let id = commitment.id;
    let provider = commitment.provider.clone();
    let receiver = commitment.receiver.clone();
    if !(acts_for(state, member, &provider, &intent)?
        || acts_for(state, member, &receiver, &intent)?)
    {
        return Err(Refusal::NotAParty {
            member: member.to_string(),
            commitment: id,
        }
        .into());
    }
    if commitment.released_seq.is_some() {
        return Err(
            Refusal::PlanningRule(PlanningProblem::AlreadyReleased { commitment: id }).into(),
        );
    }
    if commitment.fulfilled >= commitment.quantity || commitment.certified_seq.is_some() {
        return Err(
            Refusal::PlanningRule(PlanningProblem::NothingToRelease { commitment: id }).into(),
        );
    }
    if let Some(problem) = text_problem(TextField::Reason, &released.reason, MAX_NOTE_CHARS, true) {
        return Err(Refusal::InvalidIntent(vec![problem]).into());
    }
    if commitment.accepted_seq.is_some() {
        let freed = commitment.quantity.saturating_sub(commitment.fulfilled);
        intent.committed = intent.committed.saturating_sub(freed);
        state.put_intent(&intent)?;
    }
    commitment.released_seq = Some(entry.seq);
    state.put_commitment(&commitment)
}

/// A transfer from `payer` to `recipient` names intent `intent` as what it pays
/// for: the intent must exist and both must be parties to it, that is its author
/// (or, for a collective need, a member of the assembly) or a side of a commitment
/// on it that was not released.
pub(crate) fn require_payment_parties(
    state: &mut impl LedgerState,
    intent: i64,
    payer: &str,
    recipient: &str,
) -> Result<()> {
    let row = state.intent(intent)?.ok_or(Refusal::NoSuchIntent(intent))?;
    let commitments = state.commitments_on(intent)?;
    for member in [payer, recipient] {
        let party = acts_for(state, member, &row.author, &row)?
            || commitments.iter().any(|c| {
                c.released_seq.is_none() && (c.provider == member || c.receiver == member)
            });
        if !party {
            return Err(Refusal::PlanningRule(PlanningProblem::NotPartyToIntent {
                member: member.to_string(),
                intent,
            })
            .into());
        }
    }
    Ok(())
}

/// A contribution `contribution` by `contributor` names `commitment`: it must be
/// accepted, not released nor fulfilled, with the contributor as its provider.
pub(crate) fn apply_named(
    state: &mut impl LedgerState,
    contribution: i64,
    contributor: &str,
    commitment: i64,
) -> Result<()> {
    let (row, _) = commitment_and_intent(state, commitment)?;
    if row.provider != contributor {
        return Err(Refusal::NotAParty {
            member: contributor.to_string(),
            commitment,
        }
        .into());
    }
    let why = if row.released_seq.is_some() {
        Some(Unfulfillable::Released)
    } else if row.accepted_seq.is_none() {
        Some(Unfulfillable::NotAccepted)
    } else if row.fulfilled >= row.quantity {
        Some(Unfulfillable::Fulfilled)
    } else {
        None
    };
    if let Some(why) = why {
        return Err(
            Refusal::PlanningRule(PlanningProblem::CannotFulfil { commitment, why }).into(),
        );
    }
    state.put_fulfilment(&FulfilmentRow {
        contribution,
        commitment,
        fulfilment_seq: None,
        quantity: Quantity::ZERO,
    })
}

pub(crate) fn apply_fulfilled(state: &mut impl LedgerState, entry: &Entry) -> Result<()> {
    let fulfilled: CommitmentFulfilled = decode(entry.kind, &entry.payload)?;
    let id = fulfilled.contribution;
    let rule =
        |problem: String| Err(Refusal::PlanningRule(PlanningProblem::Inconsistent(problem)).into());
    let contribution = state
        .contribution(id)?
        .ok_or(Refusal::NoSuchContribution(id))?;
    if contribution.stage != Stage::Validated {
        return rule(format!(
            "contribution {id} is not validated: it fulfils nothing yet"
        ));
    }
    let Some(mut link) = state.fulfilment(id)? else {
        return rule(format!("contribution {id} names no commitment"));
    };
    if link.commitment != fulfilled.commitment {
        return rule(format!(
            "contribution {id} names commitment {}, not {}",
            link.commitment, fulfilled.commitment
        ));
    }
    if link.fulfilment_seq.is_some() {
        return rule(format!(
            "contribution {id} fulfilled its commitment already"
        ));
    }
    let (mut commitment, mut intent) = commitment_and_intent(state, link.commitment)?;
    let quantity = fulfilment_quantity(&commitment, intent.unit, contribution.hours.centihours());
    if Quantity::from_f64(fulfilled.quantity) != Some(quantity) || quantity == Quantity::ZERO {
        return rule(format!(
            "contribution {id} fulfils {quantity} of commitment {}, not {}",
            commitment.id, fulfilled.quantity
        ));
    }
    commitment.fulfilled = Quantity::from_centi(commitment.fulfilled.centi() + quantity.centi());
    intent.fulfilled = Quantity::from_centi(intent.fulfilled.centi() + quantity.centi());
    // A repair need of the node's closes when the node says its device is back.
    if intent.closed_seq.is_none() && intent.fulfilled >= intent.quantity && intent.device.is_none()
    {
        intent.closed_seq = Some(entry.seq);
    }
    link.fulfilment_seq = Some(entry.seq);
    link.quantity = quantity;
    state.put_commitment(&commitment)?;
    state.put_intent(&intent)?;
    state.put_fulfilment(&link)
}

pub(crate) fn apply_certified(state: &mut impl LedgerState, entry: &Entry) -> Result<()> {
    let kind = entry.kind;
    let certified: LoadShiftCertified = decode(kind, &entry.payload)?;
    let invalid =
        |reason: String| -> Result<()> { Err(Refusal::InvalidPayload { kind, reason }.into()) };
    if entry.author != NODE_AUTHOR {
        return invalid(format!(
            "only the node (author `{NODE_AUTHOR}`) certifies a load shift"
        ));
    }
    let (mut commitment, mut intent) = commitment_and_intent(state, certified.commitment)?;
    let id = commitment.id;
    if intent.author != NODE_AUTHOR || intent.class != SURPLUS_CLASS {
        return invalid(format!(
            "commitment {id} is not on a surplus offer of the node's"
        ));
    }
    let window = |t: Option<DateTime<Utc>>| t.map(format_ts).unwrap_or_default();
    if certified.window_start != window(intent.window_start)
        || certified.window_end != window(intent.window_end)
    {
        return invalid(format!(
            "the window {}..{} is not that of intent {}",
            certified.window_start, certified.window_end, intent.id
        ));
    }
    if intent.window_end.is_none_or(|end| entry.ts < end) {
        return Err(Refusal::PlanningRule(PlanningProblem::Inconsistent(format!(
            "commitment {id} is certified before the end of its window ({})",
            certified.window_end
        )))
        .into());
    }
    let why = if commitment.released_seq.is_some() {
        Some(Unfulfillable::Released)
    } else if commitment.accepted_seq.is_none() {
        Some(Unfulfillable::NotAccepted)
    } else if commitment.certified_seq.is_some() || commitment.fulfilled >= commitment.quantity {
        Some(Unfulfillable::Fulfilled)
    } else {
        None
    };
    if let Some(why) = why {
        return Err(Refusal::PlanningRule(PlanningProblem::CannotFulfil {
            commitment: id,
            why,
        })
        .into());
    }
    let names = || {
        certified
            .household
            .iter()
            .chain(&certified.household_members)
            .chain(&certified.meters)
    };
    if certified.household_members.len() + certified.meters.len() > MAX_CERTIFIED_NAMES {
        return invalid(format!(
            "more than {MAX_CERTIFIED_NAMES} members and meters"
        ));
    }
    if let Some(bad) =
        names().find(|n| n.trim().is_empty() || n.len() > 200 || n.chars().any(char::is_control))
    {
        return invalid(format!("{bad:?} is not a household, member or meter id"));
    }
    let measures = [certified.measured_kwh, certified.baseline_kwh];
    if measures
        .iter()
        .flatten()
        .any(|v| !v.is_finite() || *v < 0.0)
    {
        return invalid("a measure is not a number of kWh at least 0".into());
    }
    let metered = certified.household.is_some() && !certified.meters.is_empty();
    let consistent = match certified.basis {
        LoadShiftBasis::Metered => {
            metered
                && certified.measured_kwh.is_some()
                && certified.baseline_kwh.is_some()
                && certified.baseline_days > 0
        }
        LoadShiftBasis::NoReadings => metered && certified.measured_kwh.is_none(),
        LoadShiftBasis::NoBaseline => {
            metered && certified.measured_kwh.is_some() && certified.baseline_kwh.is_none()
        }
        LoadShiftBasis::NoMeter => {
            certified.meters.is_empty()
                && certified.measured_kwh.is_none()
                && certified.baseline_kwh.is_none()
        }
    };
    if !consistent {
        return invalid(format!(
            "basis `{}` does not go with the household, meters and measures given",
            certified.basis.as_str()
        ));
    }
    if certified.household.is_some() && !certified.household_members.contains(&commitment.receiver)
    {
        return invalid(format!(
            "`{}`, who committed, is not a member of household {:?}",
            commitment.receiver,
            certified.household.as_deref().unwrap_or_default()
        ));
    }
    let lacking = commitment.quantity.saturating_sub(commitment.fulfilled);
    let quantity = load_shift_quantity(
        certified.basis,
        certified.measured_kwh,
        certified.baseline_kwh,
        lacking,
    );
    if Quantity::from_f64(certified.quantity) != Some(quantity) {
        return Err(Refusal::PlanningRule(PlanningProblem::Inconsistent(format!(
            "commitment {id}: the measures give {quantity} kWh above the baseline, not {}",
            certified.quantity
        )))
        .into());
    }
    commitment.fulfilled = Quantity::from_centi(commitment.fulfilled.centi() + quantity.centi());
    commitment.certified_seq = Some(entry.seq);
    intent.fulfilled = Quantity::from_centi(intent.fulfilled.centi() + quantity.centi());
    if intent.closed_seq.is_none() && intent.fulfilled >= intent.quantity {
        intent.closed_seq = Some(entry.seq);
    }
    state.put_commitment(&commitment)?;
    state.put_intent(&intent)
}

/// The node's certification `seq` of a load shift, as the pages show it.
fn certification(conn: &Connection, seq: i64) -> Result<LoadShiftCertification> {
    let (ts, payload): (String, String) = conn.query_row(
        "SELECT ts, payload FROM journal WHERE seq = ?1",
        [seq],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let corrupt = |problem: String| Error::Corrupt { seq, problem };
    let value: Value = serde_json::from_str(&payload).map_err(|e| corrupt(e.to_string()))?;
    let c: LoadShiftCertified = decode(EntryKind::LoadShiftCertified, &value)?;
    Ok(LoadShiftCertification {
        seq,
        certified_at: parse_canonical_ts(&ts)
            .ok_or_else(|| corrupt(format!("ts `{ts}` is not canonical")))?,
        household: c.household,
        basis: c.basis,
        measured_kwh: c.measured_kwh,
        baseline_kwh: c.baseline_kwh,
        baseline_days: c.baseline_days,
        quantity: Quantity::from_f64(c.quantity)
            .ok_or_else(|| corrupt(format!("quantity {} does not read", c.quantity)))?,
    })
}

// ---------------------------------------------------------------------------------
// The tables, read and written (for `rules::sql` and the verification).

pub(crate) const SELECT_INTENT: &str = "SELECT id, author, direction, action, class,
    centi_quantity, unit, window_start, window_end, expires_at, description, visibility,
    collective, committed_centi, fulfilled_centi, closed_seq, device FROM intents";

pub(crate) fn intent_row(row: &Row<'_>) -> Result<IntentRow> {
    let id: i64 = row.get(0)?;
    let bad = |name: &str| Error::Corrupt {
        seq: id,
        problem: format!("intents column `{name}` does not read"),
    };
    let text = |i: usize, name: &str| -> Result<String> { row.get(i).map_err(|_| bad(name)) };
    let ts = |i: usize, name: &str| -> Result<Option<DateTime<Utc>>> {
        let t: Option<String> = row.get(i).map_err(|_| bad(name))?;
        t.map(|t| parse_canonical_ts(&t).ok_or_else(|| bad(name)))
            .transpose()
    };
    let int = |i: usize, name: &str| -> Result<i64> { row.get(i).map_err(|_| bad(name)) };
    Ok(IntentRow {
        id,
        author: text(1, "author")?,
        direction: Direction::parse(&text(2, "direction")?).ok_or_else(|| bad("direction"))?,
        action: Action::parse(&text(3, "action")?).ok_or_else(|| bad("action"))?,
        class: text(4, "class")?,
        quantity: Quantity::from_centi(int(5, "centi_quantity")?),
        unit: Unit::parse(&text(6, "unit")?).ok_or_else(|| bad("unit"))?,
        window_start: ts(7, "window_start")?,
        window_end: ts(8, "window_end")?,
        expires_at: ts(9, "expires_at")?,
        description: text(10, "description")?,
        visibility: Visibility::parse(&text(11, "visibility")?).ok_or_else(|| bad("visibility"))?,
        collective: int(12, "collective")? != 0,
        committed: Quantity::from_centi(int(13, "committed_centi")?),
        fulfilled: Quantity::from_centi(int(14, "fulfilled_centi")?),
        closed_seq: row.get(15).map_err(|_| bad("closed_seq"))?,
        device: row.get(16).map_err(|_| bad("device"))?,
    })
}

pub(crate) fn put_intent(conn: &Connection, i: &IntentRow) -> Result<()> {
    let ts = |t: Option<DateTime<Utc>>| t.map(format_ts);
    conn.execute(
        "INSERT INTO intents (id, author, direction, action, class, centi_quantity, unit,
            window_start, window_end, expires_at, description, visibility, collective,
            committed_centi, fulfilled_centi, closed_seq, device)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
         ON CONFLICT (id) DO UPDATE SET committed_centi = excluded.committed_centi,
            fulfilled_centi = excluded.fulfilled_centi, closed_seq = excluded.closed_seq",
        params![
            i.id,
            i.author,
            i.direction.as_str(),
            i.action.as_str(),
            i.class,
            i.quantity.centi(),
            i.unit.as_str(),
            ts(i.window_start),
            ts(i.window_end),
            ts(i.expires_at),
            i.description,
            i.visibility.as_str(),
            i.collective,
            i.committed.centi(),
            i.fulfilled.centi(),
            i.closed_seq,
            i.device,
        ],
    )?;
    Ok(())
}

pub(crate) const SELECT_COMMITMENT: &str = "SELECT id, intent, provider, receiver,
    proposed_by, centi_quantity, note, accepted_seq, released_seq, fulfilled_centi,
    certified_seq FROM commitments";

pub(crate) fn commitment_row(row: &Row<'_>) -> Result<CommitmentRow> {
    let id: i64 = row.get(0)?;
    let bad = |name: &str| Error::Corrupt {
        seq: id,
        problem: format!("commitments column `{name}` does not read"),
    };
    Ok(CommitmentRow {
        id,
        intent: row.get(1).map_err(|_| bad("intent"))?,
        provider: row.get(2).map_err(|_| bad("provider"))?,
        receiver: row.get(3).map_err(|_| bad("receiver"))?,
        proposed_by: row.get(4).map_err(|_| bad("proposed_by"))?,
        quantity: Quantity::from_centi(row.get(5).map_err(|_| bad("centi_quantity"))?),
        note: row.get(6).map_err(|_| bad("note"))?,
        accepted_seq: row.get(7).map_err(|_| bad("accepted_seq"))?,
        released_seq: row.get(8).map_err(|_| bad("released_seq"))?,
        fulfilled: Quantity::from_centi(row.get(9).map_err(|_| bad("fulfilled_centi"))?),
        certified_seq: row.get(10).map_err(|_| bad("certified_seq"))?,
    })
}

pub(crate) fn put_commitment(conn: &Connection, c: &CommitmentRow) -> Result<()> {
    conn.execute(
        "INSERT INTO commitments (id, intent, provider, receiver, proposed_by, centi_quantity,
            note, accepted_seq, released_seq, fulfilled_centi, certified_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (id) DO UPDATE SET accepted_seq = excluded.accepted_seq,
            released_seq = excluded.released_seq, fulfilled_centi = excluded.fulfilled_centi,
            certified_seq = excluded.certified_seq",
        params![
            c.id,
            c.intent,
            c.provider,
            c.receiver,
            c.proposed_by,
            c.quantity.centi(),
            c.note,
            c.accepted_seq,
            c.released_seq,
            c.fulfilled.centi(),
            c.certified_seq,
        ],
    )?;
    Ok(())
}

pub(crate) const SELECT_FULFILMENT: &str =
    "SELECT contribution, commitment, fulfilment_seq, centi_quantity FROM fulfilments";

pub(crate) fn fulfilment_row(row: &Row<'_>) -> Result<FulfilmentRow> {
    let contribution: i64 = row.get(0)?;
    let bad = |name: &str| Error::Corrupt {
        seq: contribution,
        problem: format!("fulfilments column `{name}` does not read"),
    };
    Ok(FulfilmentRow {
        contribution,
        commitment: row.get(1).map_err(|_| bad("commitment"))?,
        fulfilment_seq: row.get(2).map_err(|_| bad("fulfilment_seq"))?,
        quantity: Quantity::from_centi(row.get(3).map_err(|_| bad("centi_quantity"))?),
    })
}

pub(crate) fn put_fulfilment(conn: &Connection, f: &FulfilmentRow) -> Result<()> {
    conn.execute(
        "INSERT INTO fulfilments (contribution, commitment, fulfilment_seq, centi_quantity)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (contribution) DO UPDATE SET fulfilment_seq = excluded.fulfilment_seq,
            centi_quantity = excluded.centi_quantity",
        params![
            f.contribution,
            f.commitment,
            f.fulfilment_seq,
            f.quantity.centi()
        ],
    )?;
    Ok(())
}

/// Every row `sql` selects, read by `read`.
pub(crate) fn all_rows<T>(
    conn: &Connection,
    sql: &str,
    read: fn(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(read(row)?);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------
// Reading.

fn select_intents(conn: &Connection, id: Option<i64>, at: DateTime<Utc>) -> Result<Vec<Intent>> {
    let mut stmt = conn.prepare(&format!(
        "{SELECT_INTENT} WHERE ?1 IS NULL OR id = ?1 ORDER BY id DESC"
    ))?;
    let mut rows = stmt.query(params![id])?;
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        found.push(intent_row(row)?);
    }
    found
        .into_iter()
        .map(|row| {
            let posted_at = entry_ts(conn, row.id)?;
            Ok(Intent {
                id: row.id,
                state: intent_state(&row, at),
                remaining: row.quantity.saturating_sub(row.committed),
                author: row.author,
                direction: row.direction,
                action: row.action,
                class: row.class,
                quantity: row.quantity,
                unit: row.unit,
                window_start: row.window_start,
                window_end: row.window_end,
                expires_at: row.expires_at,
                description: row.description,
                visibility: row.visibility,
                collective: row.collective,
                device: row.device,
                posted_at,
                committed: row.committed,
                fulfilled: row.fulfilled,
            })
        })
        .collect()
}

fn entry_ts(conn: &Connection, seq: i64) -> Result<DateTime<Utc>> {
    let text: String =
        conn.query_row("SELECT ts FROM journal WHERE seq = ?1", [seq], |r| r.get(0))?;
    parse_canonical_ts(&text).ok_or_else(|| Error::Corrupt {
        seq,
        problem: format!("ts `{text}` is not canonical"),
    })
}

fn select_commitments(conn: &Connection, id: Option<i64>) -> Result<Vec<Commitment>> {
    let mut stmt = conn.prepare(&format!(
        "{SELECT_COMMITMENT} WHERE ?1 IS NULL OR id = ?1 ORDER BY id DESC"
    ))?;
    let mut rows = stmt.query(params![id])?;
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        found.push(commitment_row(row)?);
    }
    found
        .into_iter()
        .map(|row| {
            let (unit, class): (String, String) = conn.query_row(
                "SELECT unit, class FROM intents WHERE id = ?1",
                [row.intent],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let state = if row.released_seq.is_some() {
                CommitmentState::Released
            } else if row.fulfilled >= row.quantity {
                CommitmentState::Fulfilled
            } else if row.certified_seq.is_some() {
                CommitmentState::Certified
            } else if row.accepted_seq.is_some() {
                CommitmentState::Accepted
            } else {
                CommitmentState::Proposed
            };
            Ok(Commitment {
                id: row.id,
                intent: row.intent,
                proposed_at: entry_ts(conn, row.id)?,
                provider: row.provider,
                receiver: row.receiver,
                proposed_by: row.proposed_by,
                quantity: row.quantity,
                unit: Unit::parse(&unit).ok_or_else(|| Error::Corrupt {
                    seq: row.intent,
                    problem: format!("intent unit `{unit}` does not read"),
                })?,
                class,
                fulfilled: row.fulfilled,
                note: row.note,
                state,
                certification: row
                    .certified_seq
                    .map(|seq| certification(conn, seq))
                    .transpose()?,
            })
        })
        .collect()
}
