//! The cooperative planning board (DESIGN.md §11), in Valueflows' words: members post
//! **intents** (a need or an offer), agree on all or part of one in a **commitment**
//! (it exists once provider and receiver have both accepted), and a contribution
//! validated by peers (§5) that names the commitment is its **fulfilment**.
//!
//! This module holds what these are; recording and reading them, and the rules (who
//! may accept, how much may be committed, when an intent closes), are in
//! `rules::planning`.
//!
//! Quantities are counted in hundredths of their unit ([`Quantity`]), like hours.
//! An intent is *open* until the quantity fulfilled reaches its quantity (*closed*)
//! or its expiry passes (*expired*, read at the instant asked: nothing is written).

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize, Serializer};

use crate::entry::ts_millis;

/// How long an intent stays open when its author gives no expiry.
pub const DEFAULT_INTENT_LIFETIME_DAYS: i64 = 30;
/// Longest resource class, in characters.
pub const MAX_CLASS_CHARS: usize = 40;
/// Most an intent may ask or offer, in its unit.
pub const MAX_QUANTITY: f64 = 100_000.0;
/// Longest description of an intent, in characters.
pub const MAX_INTENT_DESCRIPTION_CHARS: usize = 1_000;
/// Longest note on a commitment or a release, in characters.
pub const MAX_NOTE_CHARS: usize = 500;

/// Whether an intent asks (a need, whose author receives) or proposes (an offer,
/// whose author provides).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Need,
    Offer,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Need => "need",
            Direction::Offer => "offer",
        }
    }

    pub fn opposite(self) -> Direction {
        match self {
            Direction::Need => Direction::Offer,
            Direction::Offer => Direction::Need,
        }
    }

    pub fn parse(s: &str) -> Option<Direction> {
        [Direction::Need, Direction::Offer]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Valueflows action: work done, a thing used (lent), a thing given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Work,
    Use,
    Give,
}

impl Action {
    pub const ALL: [Action; 3] = [Action::Work, Action::Use, Action::Give];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Work => "work",
            Action::Use => "use",
            Action::Give => "give",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a quantity counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Hours,
    Kwh,
    Kg,
    Items,
}

impl Unit {
    pub const ALL: [Unit; 4] = [Unit::Hours, Unit::Kwh, Unit::Kg, Unit::Items];

    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Hours => "hours",
            Unit::Kwh => "kwh",
            Unit::Kg => "kg",
            Unit::Items => "items",
        }
    }

    pub fn parse(s: &str) -> Option<Unit> {
        Unit::ALL.into_iter().find(|u| u.as_str() == s)
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may see an intent. Only `node` for now: sharing intents with the federation
/// (DESIGN.md §12) is not built yet, and an intent is refused rather than marked
/// for a sharing that would not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    #[default]
    Node,
    Federation,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Node => "node",
            Visibility::Federation => "federation",
        }
    }

    pub fn parse(s: &str) -> Option<Visibility> {
        [Visibility::Node, Visibility::Federation]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// A quantity in hundredths of its unit. Serialized as a JSON number in the unit
/// (`1.5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Quantity(i64);

impl Quantity {
    pub const ZERO: Quantity = Quantity(0);

    pub fn from_centi(centi: i64) -> Self {
        Quantity(centi)
    }

    pub fn centi(self) -> i64 {
        self.0
    }

    /// `value` in hundredths, if it is a non-negative number with at most two
    /// decimals, below 10^12.
    pub fn from_f64(value: f64) -> Option<Self> {
        if !(0.0..1e12).contains(&value) {
            return None;
        }
        let centi = (value * 100.0).round();
        (centi / 100.0 == value).then_some(Quantity(centi as i64))
    }

    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 100.0
    }

    pub fn saturating_sub(self, other: Quantity) -> Quantity {
        Quantity(self.0.saturating_sub(other.0).max(0))
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 100, (self.0 % 100).abs());
        match frac {
            0 => write!(f, "{whole}"),
            f10 if f10 % 10 == 0 => write!(f, "{whole}.{}", f10 / 10),
            _ => write!(f, "{whole}.{frac:02}"),
        }
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.as_f64())
    }
}

/// An intent as a member posts it (the body of `POST /api/intents`); the author is
/// whoever is signed in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewIntent {
    pub direction: Direction,
    pub action: Action,
    /// A contribution category, a skill (`electrician`, `bike-repair`), a good
    /// (`vegetables`) or an energy class (`kwh-surplus`, `load-shift`): lowercase
    /// letters, digits, `-` and `_`, at most [`MAX_CLASS_CHARS`].
    pub class: String,
    /// More than 0, at most [`MAX_QUANTITY`], at most two decimals.
    pub quantity: f64,
    pub unit: Unit,
    /// When the work or the thing is needed or available; either end may be open.
    #[serde(default)]
    pub window_start: Option<DateTime<Utc>>,
    #[serde(default)]
    pub window_end: Option<DateTime<Utc>>,
    /// When the intent lapses if not fulfilled; [`DEFAULT_INTENT_LIFETIME_DAYS`]
    /// after it is posted when absent, never with `never_expires`.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub never_expires: bool,
    pub description: String,
    #[serde(default)]
    pub visibility: Visibility,
    /// A need of the whole community, posted by a member of the assembly; any
    /// member of the assembly accepts and releases for it.
    #[serde(default)]
    pub collective: bool,
}

impl NewIntent {
    /// The expiry this intent is recorded with when posted at `ts`.
    pub fn expiry_at(&self, ts: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.never_expires {
            None
        } else {
            Some(
                self.expires_at
                    .unwrap_or(ts + TimeDelta::days(DEFAULT_INTENT_LIFETIME_DAYS)),
            )
        }
    }

    /// Everything that keeps this intent from being posted at `ts`.
    pub fn problems(&self, ts: DateTime<Utc>) -> Vec<IntentProblem> {
        let mut problems = Vec::new();
        problems.extend(class_problem(&self.class));
        problems.extend(quantity_problem(self.quantity));
        if let (Some(start), Some(end)) = (self.window_start, self.window_end)
            && end <= start
        {
            problems.push(IntentProblem::WindowOrder { start, end });
        }
        if let Some(end) = self.window_end
            && end <= ts
        {
            problems.push(IntentProblem::WindowEnded { end });
        }
        if self.never_expires && self.expires_at.is_some() {
            problems.push(IntentProblem::ExpiryAndNever);
        }
        if let Some(expiry) = self.expires_at
            && expiry <= ts
        {
            problems.push(IntentProblem::ExpiryPast { expiry });
        }
        problems.extend(text_problem(
            TextField::Description,
            &self.description,
            MAX_INTENT_DESCRIPTION_CHARS,
            false,
        ));
        if self.collective && self.direction != Direction::Need {
            problems.push(IntentProblem::CollectiveOffer);
        }
        problems
    }
}

/// A free text of the planning board that a problem can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextField {
    Description,
    Note,
    Reason,
}

impl TextField {
    pub fn as_str(self) -> &'static str {
        match self {
            TextField::Description => "description",
            TextField::Note => "note",
            TextField::Reason => "reason",
        }
    }
}

/// One reason an intent, a commitment or a release cannot be recorded as asked.
/// [`fmt::Display`] says it in English; pages phrase each kind in their reader's
/// language.
#[derive(Debug, Clone, PartialEq)]
pub enum IntentProblem {
    ClassEmpty,
    ClassTooLong,
    ClassCharacters {
        class: String,
    },
    QuantityNotPositive {
        quantity: f64,
    },
    QuantityTooLarge {
        quantity: f64,
    },
    QuantityTooPrecise {
        quantity: f64,
    },
    WindowOrder {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    WindowEnded {
        end: DateTime<Utc>,
    },
    ExpiryAndNever,
    ExpiryPast {
        expiry: DateTime<Utc>,
    },
    TextEmpty {
        field: TextField,
    },
    TextTooLong {
        field: TextField,
        chars: usize,
        max: usize,
    },
    TextControlCharacter {
        field: TextField,
    },
    CollectiveOffer,
    /// More saved interests than a member may keep.
    TooManyInterests {
        count: usize,
        max: usize,
    },
}

impl fmt::Display for IntentProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntentProblem::ClassEmpty => f.write_str("the class is empty"),
            IntentProblem::ClassTooLong => {
                write!(f, "the class has more than {MAX_CLASS_CHARS} characters")
            }
            IntentProblem::ClassCharacters { class } => write!(
                f,
                "the class {class:?} may hold only lowercase letters, digits, `-` and `_`"
            ),
            IntentProblem::QuantityNotPositive { quantity } => {
                write!(f, "the quantity must be more than 0, not {quantity}")
            }
            IntentProblem::QuantityTooLarge { quantity } => write!(
                f,
                "the quantity must be at most {MAX_QUANTITY}, not {quantity}"
            ),
            IntentProblem::QuantityTooPrecise { quantity } => write!(
                f,
                "the quantity has at most two decimals (1.25, not {quantity})"
            ),
            IntentProblem::WindowOrder { start, end } => {
                write!(f, "the window ends ({end}) before it starts ({start})")
            }
            IntentProblem::WindowEnded { end } => write!(f, "the window ended already ({end})"),
            IntentProblem::ExpiryAndNever => {
                f.write_str("give an expiry or `never_expires`, not both")
            }
            IntentProblem::ExpiryPast { expiry } => {
                write!(f, "the expiry {expiry} is already past")
            }
            IntentProblem::TextEmpty { field } => write!(f, "the {} is empty", field.as_str()),
            IntentProblem::TextTooLong { field, chars, max } => write!(
                f,
                "the {} has {chars} characters, more than {max}",
                field.as_str()
            ),
            IntentProblem::TextControlCharacter { field } => write!(
                f,
                "the {} contains a control character other than a line break",
                field.as_str()
            ),
            IntentProblem::CollectiveOffer => f.write_str("only a need can be collective"),
            IntentProblem::TooManyInterests { count, max } => {
                write!(
                    f,
                    "{count} interests, more than the {max} a member may save"
                )
            }
        }
    }
}

/// What is wrong with a class, if anything.
pub(crate) fn class_problem(class: &str) -> Option<IntentProblem> {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if class.is_empty() {
        Some(IntentProblem::ClassEmpty)
    } else if class.chars().count() > MAX_CLASS_CHARS {
        Some(IntentProblem::ClassTooLong)
    } else if !class.chars().all(ok) {
        Some(IntentProblem::ClassCharacters {
            class: class.to_string(),
        })
    } else {
        None
    }
}

/// What is wrong with a quantity, if anything.
pub(crate) fn quantity_problem(quantity: f64) -> Option<IntentProblem> {
    if !(quantity.is_finite() && quantity > 0.0) {
        Some(IntentProblem::QuantityNotPositive { quantity })
    } else if quantity > MAX_QUANTITY {
        Some(IntentProblem::QuantityTooLarge { quantity })
    } else if Quantity::from_f64(quantity).is_none() {
        Some(IntentProblem::QuantityTooPrecise { quantity })
    } else {
        None
    }
}

/// What is wrong with a free text, if anything (`blank_ok` for notes).
pub(crate) fn text_problem(
    field: TextField,
    text: &str,
    max: usize,
    blank_ok: bool,
) -> Option<IntentProblem> {
    let chars = text.chars().count();
    if !blank_ok && text.trim().is_empty() {
        Some(IntentProblem::TextEmpty { field })
    } else if chars > max {
        Some(IntentProblem::TextTooLong { field, chars, max })
    } else if text.chars().any(|c| c.is_control() && c != '\n') {
        Some(IntentProblem::TextControlCharacter { field })
    } else {
        None
    }
}

/// Why the planning board's rules refuse an act that is well formed. [`fmt::Display`]
/// says it in English; pages phrase each kind in their reader's language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanningProblem {
    /// A member proposes a commitment on their own intent.
    OwnIntent {
        intent: i64,
        member: String,
    },
    /// Accepting a commitment that was released.
    Released {
        commitment: i64,
    },
    AlreadyAccepted {
        commitment: i64,
    },
    AlreadyReleased {
        commitment: i64,
    },
    /// Releasing a commitment whose whole quantity was fulfilled.
    NothingToRelease {
        commitment: i64,
    },
    /// A contribution names a commitment it cannot fulfil.
    CannotFulfil {
        commitment: i64,
        why: Unfulfillable,
    },
    /// Closing an intent one did not post (or a repair need of the node's).
    NotYourIntent {
        intent: i64,
    },
    /// The node closes its repair need only once what it asked was fulfilled.
    RepairNotFulfilled {
        intent: i64,
    },
    AlreadyClosed {
        intent: i64,
    },
    /// A transfer names an intent that `member` (its payer or recipient) is no
    /// party to.
    NotPartyToIntent {
        member: String,
        intent: i64,
    },
    /// A journal whose fulfilments do not follow from its contributions (only met
    /// when replaying or appending entries written elsewhere).
    Inconsistent(String),
}

/// Why a commitment cannot be fulfilled by a new contribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfulfillable {
    NotAccepted,
    Released,
    Fulfilled,
}

impl fmt::Display for PlanningProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanningProblem::OwnIntent { intent, member } => write!(
                f,
                "intent {intent} is `{member}`'s own: someone else takes its other side"
            ),
            PlanningProblem::Released { commitment } => {
                write!(f, "commitment {commitment} was released")
            }
            PlanningProblem::AlreadyAccepted { commitment } => {
                write!(f, "commitment {commitment} is already accepted")
            }
            PlanningProblem::AlreadyReleased { commitment } => {
                write!(f, "commitment {commitment} is already released")
            }
            PlanningProblem::NothingToRelease { commitment } => write!(
                f,
                "commitment {commitment} is fulfilled: there is nothing left to release"
            ),
            PlanningProblem::CannotFulfil { commitment, why } => {
                let why = match why {
                    Unfulfillable::NotAccepted => "is not accepted by both sides yet",
                    Unfulfillable::Released => "was released",
                    Unfulfillable::Fulfilled => "is already fulfilled",
                };
                write!(
                    f,
                    "commitment {commitment} {why}: no contribution can fulfil it"
                )
            }
            PlanningProblem::NotYourIntent { intent } => write!(
                f,
                "intent {intent} is not yours: only whoever posted it closes it"
            ),
            PlanningProblem::RepairNotFulfilled { intent } => write!(
                f,
                "repair need {intent} is not fulfilled yet: the node closes it once its device \
                 is back and the repair fulfilled"
            ),
            PlanningProblem::AlreadyClosed { intent } => {
                write!(f, "intent {intent} is already closed")
            }
            PlanningProblem::NotPartyToIntent { member, intent } => write!(
                f,
                "`{member}` is no party to intent {intent}: a transfer pays for an intent \
                 between its author and a side of a commitment on it"
            ),
            PlanningProblem::Inconsistent(text) => f.write_str(text),
        }
    }
}

/// A commitment as a member proposes it (the body of
/// `POST /api/intents/{id}/commitments`): the proposer takes the other side of the
/// intent, and accepts by proposing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCommitment {
    /// All or part of what remains of the intent, in its unit.
    pub quantity: f64,
    #[serde(default)]
    pub note: String,
}

/// Where an intent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentState {
    Open,
    /// Its whole quantity fulfilled.
    Closed,
    /// Its expiry passed before it was fulfilled.
    Expired,
}

impl IntentState {
    pub fn as_str(self) -> &'static str {
        match self {
            IntentState::Open => "open",
            IntentState::Closed => "closed",
            IntentState::Expired => "expired",
        }
    }
}

impl fmt::Display for IntentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a commitment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitmentState {
    /// Accepted by whoever proposed it, awaiting the other side.
    Proposed,
    /// Both sides accepted: it exists.
    Accepted,
    /// Its whole quantity fulfilled.
    Fulfilled,
    /// Withdrawn by either side before it was fulfilled.
    Released,
    /// A load shift the node certified short of its whole quantity (part of it,
    /// or nothing): over, with what it fulfilled.
    Certified,
}

impl CommitmentState {
    pub fn as_str(self) -> &'static str {
        match self {
            CommitmentState::Proposed => "proposed",
            CommitmentState::Accepted => "accepted",
            CommitmentState::Fulfilled => "fulfilled",
            CommitmentState::Released => "released",
            CommitmentState::Certified => "certified",
        }
    }
}

impl fmt::Display for CommitmentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An intent as the pages and the JSON API show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Intent {
    /// The `seq` of the `intent_posted` entry.
    pub id: i64,
    /// Who posted it: the receiver of a need, the provider of an offer.
    pub author: String,
    pub direction: Direction,
    pub action: Action,
    pub class: String,
    pub quantity: Quantity,
    pub unit: Unit,
    #[serde(with = "ts_millis::option")]
    pub window_start: Option<DateTime<Utc>>,
    #[serde(with = "ts_millis::option")]
    pub window_end: Option<DateTime<Utc>>,
    #[serde(with = "ts_millis::option")]
    pub expires_at: Option<DateTime<Utc>>,
    pub description: String,
    pub visibility: Visibility,
    pub collective: bool,
    /// The device a repair need opened by the node is about (its author is then
    /// [`crate::NODE_AUTHOR`]).
    pub device: Option<String>,
    #[serde(with = "ts_millis")]
    pub posted_at: DateTime<Utc>,
    /// Held by accepted commitments (a released one keeps what it fulfilled).
    pub committed: Quantity,
    pub fulfilled: Quantity,
    /// What may still be committed: `quantity - committed`.
    pub remaining: Quantity,
    /// At the instant it was read.
    pub state: IntentState,
}

impl Intent {
    /// Whether this intent's window and `other`'s share an instant (an open end
    /// reaches forever).
    pub fn window_overlaps(&self, other: &Intent) -> bool {
        let starts_before_end = |start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>| matches!((start, end), (Some(s), Some(e)) if s >= e);
        !(starts_before_end(self.window_start, other.window_end)
            || starts_before_end(other.window_start, self.window_end))
    }
}

/// A commitment as the pages and the JSON API show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Commitment {
    /// The `seq` of the `commitment_proposed` entry.
    pub id: i64,
    pub intent: i64,
    pub provider: String,
    pub receiver: String,
    /// Who proposed it (and so accepted it first).
    pub proposed_by: String,
    pub quantity: Quantity,
    pub unit: Unit,
    pub class: String,
    pub fulfilled: Quantity,
    pub note: String,
    pub state: CommitmentState,
    #[serde(with = "ts_millis")]
    pub proposed_at: DateTime<Utc>,
    /// For a load shifted into one of the node's surplus offers: what the node
    /// certified once the window was over (`null` before, and for every other
    /// commitment).
    pub certification: Option<LoadShiftCertification>,
}

/// How the node judged a load shift it certifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadShiftBasis {
    /// The household's meters were read over the window and over the same hours of
    /// the days before: what they drew above that baseline is what was shifted.
    Metered,
    /// The receiver belongs to no household with a meter: nothing can be measured,
    /// so nothing is certified.
    NoMeter,
    /// A meter of the household reported too little during the window to measure
    /// it: nothing is certified.
    NoReadings,
    /// The meters have too few days of history before the window to tell a
    /// shifted load from an ordinary day: nothing is certified.
    NoBaseline,
}

impl LoadShiftBasis {
    pub fn as_str(self) -> &'static str {
        match self {
            LoadShiftBasis::Metered => "metered",
            LoadShiftBasis::NoMeter => "no_meter",
            LoadShiftBasis::NoReadings => "no_readings",
            LoadShiftBasis::NoBaseline => "no_baseline",
        }
    }
}

/// What the node measured for a load-shift commitment, to certify
/// ([`crate::Journal::certify_load_shift`]); the journal works out the quantity.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLoadShiftCertification {
    pub commitment: i64,
    /// The receiver's household and its members and meters, as configured now;
    /// `None` when the receiver belongs to none.
    pub household: Option<String>,
    pub household_members: Vec<String>,
    pub meters: Vec<String>,
    pub basis: LoadShiftBasis,
    /// What the meters drew over the window, in kWh.
    pub measured_kwh: Option<f64>,
    /// What they drew on average over the same hours of the days before.
    pub baseline_kwh: Option<f64>,
    /// The days that baseline is the mean of.
    pub baseline_days: u32,
}

/// The node's certification of a load shift, as the pages and the JSON API show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadShiftCertification {
    /// The `seq` of the `load_shift_certified` entry.
    pub seq: i64,
    #[serde(with = "ts_millis")]
    pub certified_at: DateTime<Utc>,
    pub household: Option<String>,
    pub basis: LoadShiftBasis,
    pub measured_kwh: Option<f64>,
    pub baseline_kwh: Option<f64>,
    pub baseline_days: u32,
    /// What it fulfilled of the commitment: the energy above the baseline, down to
    /// the hundredth of a kWh, at most what the commitment lacked.
    pub quantity: Quantity,
}

/// What a load shift fulfils: with a measurement and a baseline, the energy drawn
/// above the baseline (both taken to the watt-hour, the difference rounded down to
/// the hundredth of a kWh, never below zero), at most `lacking`; otherwise nothing.
pub fn load_shift_quantity(
    basis: LoadShiftBasis,
    measured_kwh: Option<f64>,
    baseline_kwh: Option<f64>,
    lacking: Quantity,
) -> Quantity {
    match (basis, measured_kwh, baseline_kwh) {
        (LoadShiftBasis::Metered, Some(measured), Some(baseline))
            if measured.is_finite() && baseline.is_finite() =>
        {
            // In whole watt-hours (all a meter resolves), so that 3.3 − 1.8 is
            // 1.5 and not 1.4999…: exact, and the same on every replay.
            let wh = |kwh: f64| (kwh * 1000.0).round().min(1e15);
            let above = (wh(measured) - wh(baseline)).max(0.0);
            // Bounded by `lacking`, so the cast cannot overflow.
            Quantity::from_centi(((above / 10.0).floor().min(lacking.centi() as f64)) as i64)
        }
        _ => Quantity::ZERO,
    }
}

/// One of a member's open intents and an open intent of someone else that could
/// meet it: same class, opposite direction, windows that overlap, something left on
/// both sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    pub yours: Intent,
    pub theirs: Intent,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn need() -> NewIntent {
        NewIntent {
            direction: Direction::Need,
            action: Action::Work,
            class: "bike-repair".into(),
            quantity: 2.0,
            unit: Unit::Hours,
            window_start: None,
            window_end: None,
            expires_at: None,
            never_expires: false,
            description: "Two punctures".into(),
            visibility: Visibility::Node,
            collective: false,
        }
    }

    #[test]
    fn a_good_intent_has_no_problem_and_expires_in_30_days() {
        let now = at("2026-11-22T10:00:00Z");
        assert_eq!(need().problems(now), Vec::<IntentProblem>::new());
        assert_eq!(need().expiry_at(now), Some(at("2026-12-22T10:00:00Z")));
        let forever = NewIntent {
            never_expires: true,
            ..need()
        };
        assert_eq!(forever.expiry_at(now), None);
    }

    #[test]
    fn each_problem_is_named() {
        let now = at("2026-11-22T10:00:00Z");
        let cases = [
            (
                NewIntent {
                    class: "Bike Repair".into(),
                    ..need()
                },
                "lowercase letters",
            ),
            (
                NewIntent {
                    quantity: 0.0,
                    ..need()
                },
                "more than 0",
            ),
            (
                NewIntent {
                    quantity: 1.234,
                    ..need()
                },
                "two decimals",
            ),
            (
                NewIntent {
                    window_start: Some(at("2026-11-25T10:00:00Z")),
                    window_end: Some(at("2026-11-24T10:00:00Z")),
                    ..need()
                },
                "before it starts",
            ),
            (
                NewIntent {
                    expires_at: Some(at("2026-11-21T10:00:00Z")),
                    ..need()
                },
                "already past",
            ),
            (
                NewIntent {
                    description: " ".into(),
                    ..need()
                },
                "description is empty",
            ),
            (
                NewIntent {
                    direction: Direction::Offer,
                    collective: true,
                    ..need()
                },
                "only a need",
            ),
        ];
        for (intent, expected) in cases {
            let problems = intent.problems(now);
            assert_eq!(problems.len(), 1, "{intent:?}: {problems:?}");
            assert!(
                problems[0].to_string().contains(expected),
                "{problems:?} / {expected}"
            );
        }
    }

    #[test]
    fn windows_overlap_unless_one_ends_before_the_other_starts() {
        let now = at("2026-11-22T10:00:00Z");
        let intent = |start: Option<&str>, end: Option<&str>| Intent {
            id: 1,
            author: "a".into(),
            direction: Direction::Need,
            action: Action::Work,
            class: "x".into(),
            quantity: Quantity::from_centi(100),
            unit: Unit::Hours,
            window_start: start.map(at),
            window_end: end.map(at),
            expires_at: None,
            description: "d".into(),
            visibility: Visibility::Node,
            collective: false,
            device: None,
            posted_at: now,
            committed: Quantity::ZERO,
            fulfilled: Quantity::ZERO,
            remaining: Quantity::from_centi(100),
            state: IntentState::Open,
        };
        let morning = intent(Some("2026-11-23T08:00:00Z"), Some("2026-11-23T12:00:00Z"));
        let noon = intent(Some("2026-11-23T11:00:00Z"), Some("2026-11-23T15:00:00Z"));
        let evening = intent(Some("2026-11-23T12:00:00Z"), Some("2026-11-23T18:00:00Z"));
        let always = intent(None, None);
        assert!(morning.window_overlaps(&noon));
        assert!(noon.window_overlaps(&morning));
        assert!(!morning.window_overlaps(&evening));
        assert!(!evening.window_overlaps(&morning));
        assert!(always.window_overlaps(&morning));
    }

    #[test]
    fn quantities_read_in_hundredths() {
        assert_eq!(Quantity::from_f64(1.5), Some(Quantity::from_centi(150)));
        assert_eq!(Quantity::from_f64(1.005), None);
        assert_eq!(Quantity::from_f64(-1.0), None);
        assert_eq!(Quantity::from_centi(150).to_string(), "1.5");
        assert_eq!(Quantity::from_centi(205).to_string(), "2.05");
    }
}
