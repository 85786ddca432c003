//! The community journal: one SQLite database holding every act of the community as
//! an append-only, hash-chained list of entries (DESIGN.md §5).
//!
//! This crate owns that database, opened through [`Journal`]. Its `journal` table is
//! the truth: each entry has a `seq`, a timestamp, an [`EntryKind`], an author and a
//! canonical JSON payload, and is chained to the one before it by SHA-256 (the exact
//! encoding is documented on [`Entry`] so that any program can re-verify it;
//! [`Journal::verify`] does).
//! It records members joining, priority plans and ledger parameters adopted by the
//! assembly with their decision records (recorded only when the motion carried
//! under the assembly's decision rule, itself a ledger parameter: see
//! [`Decision::problems_in`]), and the contribution ledger: contributions,
//! attestations, Communs minted on validation, transfers, and demurrage settled into
//! the commons account.
//! Accounts (password hashes, API tokens, sessions) and members' saved interests on
//! the planning board sit beside the journal in the same database but are not entries: see the `accounts` module and [`Journal::create_user`].
//! Derived tables (`members`, `plans`, `contributions`, `balances`, …) are updated in
//! the same transaction as the entry that changes them and can always be rebuilt from
//! the journal ([`Journal::rebuild_derived`]).
//!
//! # The contribution ledger
//!
//! - A member records a contribution ([`Journal::record_contribution`]). Distinct
//!   members other than the contributor approve or reject it ([`Journal::attest`]);
//!   the `k`-th approval validates it and, in the same transaction, mints
//!   `hours x rate` Communs to the contributor; the `k`-th rejection rejects it. The
//!   `k` in force when an attestation is recorded decides; the rate is the one in
//!   force at validation.
//! - The assembly sets `k`, the rate per category and the demurrage rate `r` and
//!   period `P` ([`Journal::adopt_ledger_parameters`], under a [`Decision`] like a
//!   plan); defaults: 2 approvals, 10 Communs per hour in every category, 2 % per 30
//!   days ([`LedgerParameters::default`]). A change applies from its adoption on,
//!   never backwards.
//! - Communs move by transfers between members ([`Journal::transfer`]), which never
//!   make a balance negative. They cannot be bought, sold or converted: no call here
//!   does that.
//! - Read: [`Journal::contributions`], [`Journal::contribution`],
//!   [`Journal::balances`] (at any instant, the future projected),
//!   [`Journal::transfers_of`], [`Journal::ledger_parameters`],
//!   [`Journal::hours_validated_since`]. Check: [`Journal::verify`]. Export:
//!   [`Journal::export_jsonl`].
//!
//! ## Amounts and demurrage
//!
//! Communs are counted in integers of **micro-Communs** (10^-6; [`Communs`]), hours
//! in hundredths ([`Hours`]). Read types serialize amounts as JSON numbers in Communs
//! (`98.0`, `99.93268`); payloads hold them as integers in fields ending `_micro`.
//!
//! Demurrage is `balance(t) = b0 x (1 - r)^((t - t0) / P)` with `t - t0` in
//! milliseconds. The factor is computed in 18-decimal fixed point from integers only,
//! by the steps documented on [`demurrage_factor`], so every machine gets the same
//! one; the balance is then **floored** to the micro-Commun ([`decayed_balance`]).
//! What a balance loses goes to the commons account, so that the sum of the balances
//! plus the commons equals everything minted, exactly. With the defaults, 100 Communs
//! become 98 after 30 days, 99.932680 after one day and 78.207893 after 365.
//!
//! Demurrage is lazy. A read projects every balance to the instant asked and writes
//! nothing. Every write that changes a balance first **settles** it: a
//! `demurrage_settled` entry, in the same transaction and just before the act,
//! records what each balance lost since it was last settled. So the journal alone
//! gives every balance, and [`Journal::verify`] replays it to check the derived
//! tables. The floor is taken at each settlement, so each one may cost a balance up
//! to one micro-Commun more than a single computation over the whole time would.
//!
//! ## Entries and payloads
//!
//! The member who acts is the entry's `author`. Dates are `YYYY-MM-DD`, instants in
//! the journal's form (see [`format_ts`]), hours a JSON number with at most two
//! decimals.
//!
//! | kind | payload |
//! |---|---|
//! | `contribution_recorded` | `{"category", "hours", "date", "description"}`; the contributor is the author and the entry's `seq` the contribution's id |
//! | `attestation` | `{"contribution": id, "verdict": "approve" or "reject", "comment"}` (a rejection's comment is not blank) |
//! | `contribution_validated` | `{"contribution": id, "member", "hours", "rate_micro_per_hour", "minted_micro"}`, just after the `k`-th approval; `minted_micro = floor(hours x 100 x rate_micro_per_hour / 100)` |
//! | `demurrage_settled` | `{"accounts": [{"member", "since", "balance_micro", "decayed_micro"}]}`: each balance, of `balance_micro` last settled at `since`, loses `decayed_micro` to the commons at the entry's `ts` |
//! | `transfer` | `{"to", "amount_micro", "memo"}`, from the author; and `"intent"` when it pays for an intent (absent otherwise: older transfers keep their bytes), author and `to` both parties to it |
//! | `intent_posted` | `{"direction", "action", "class", "quantity", "unit", "window_start", "window_end", "expires_at", "description", "visibility", "collective"}`; its `seq` is the intent's id; `"device"` only in the repair needs the node opens (author [`NODE_AUTHOR`], always collective); the node also posts offers of its solar surplus (class [`SURPLUS_CLASS`], in kWh, over a window, lapsing at its end), and accepts the commitments proposed on them |
//! | `commitment_proposed`, `commitment_accepted`, `commitment_released` | `{"intent", "quantity", "note"}`, `{"commitment"}`, `{"commitment", "reason"}` |
//! | `commitment_fulfilled` | `{"commitment", "contribution", "quantity"}`, just after the validation of a contribution naming the commitment |
//! | `intent_closed` | `{"intent", "reason"}`: its author closes an intent; the node closes its repair need once the device is back and the need wholly fulfilled |
//! | `load_shift_certified` | `{"commitment", "household", "household_members", "meters", "window_start", "window_end", "basis", "measured_kwh", "baseline_kwh", "baseline_days", "quantity"}`, by the node once the window of its surplus offer is over, one per accepted commitment on it: `basis` is `metered` (then `quantity` is [`load_shift_quantity`] of the two measures and what the commitment lacked), `no_meter`, `no_readings` or `no_baseline` (then `quantity` is 0); the receiver is one of `household_members`; it fulfils the commitment by `quantity`, and closes the offer when all of it is fulfilled |
//! | `parameters_adopted` | `{"parameters": {"attestations_needed", "rates_micro_per_hour": {CATEGORY: n, …}, "demurrage_rate_ppm", "demurrage_period_days", "decision_rule"}, "decision": DECISION}`; `decision_rule` is `simple`, `two_thirds` or `consent`, and absent (meaning `simple`) from adoptions recorded before it existed |
//! | `sortition_keys_set` | `{"keys": [NAME, …]}`: the attributes members may declare for sortition (1 to 40 of `a-z 0-9 _ -`, at most 8); replaces the previous list, and what members declared for a key no longer listed is forgotten |
//! | `sortition_opted` | `{"opt_in", "attributes": {KEY: VALUE}}`: the author opts in to be drawn (declaring only listed keys, each value 1 to 80 characters) or out (`opt_in: false`, no attributes) |
//! | `sortition_announced` | `{"size", "strata_key", "quotas": {STRATUM: {"min", "max"}}, "mandate": {"scope": "energy_priorities" or "ledger_parameters", "title", "term_end"}, "draw_at", "pool": [{"member", "stratum"}], "pool_hash"}`: its `seq` is the draw's id; `max` is absent for no cap, `strata_key` `null` for one stratum; the pool is every member opted in, sorted by name, with their value for the strata key (`""` when undeclared) |
//! | `sortition_drawn` | `{"draw", "rolls", "witnesses", "head_hash", "seed", "selected", "consumed"}`: `head_hash` is the entry's own `prev_hash`, `seed` the hex SHA-256 of the inputs, `selected` the panel in the order drawn, `consumed` how many stream numbers the draw took |
//! | `panel_member_declined` | `{"draw", "member", "replacement", "consumed"}`: a seated member declines; `replacement` (or `null` when nobody is left) is drawn from the same stream, continuing at the draw's `consumed` |
//!
//! Replaying the contribution ledger's entries (what [`Journal::verify`] does, and
//! what another program needs to reproduce balances from [`Journal::export_jsonl`]):
//! - Each balance remembers when it was last settled. An entry that changes a
//!   balance (a validation minting to it, a transfer from or to it) requires it to
//!   be settled at the entry's `ts` already, and leaves it settled at `ts`.
//! - `decayed_micro` is `balance_micro - decayed_balance(balance_micro, r, P, ts - since)`
//!   at the parameters in force, and is more than zero (a balance with nothing due
//!   is not listed).
//! - A `parameters_adopted` that changes `r` or `P` requires every balance to be
//!   settled at its `ts` (a `demurrage_settled` entry precedes it), and leaves them
//!   settled there.
//! - A clock set back (an entry earlier than a balance's last settlement) decays
//!   nothing, and a settlement instant never moves back.
//! - `ts` orders nothing: replay follows `seq`.
//!
//! ## Assemblies drawn by lot
//!
//! Members opt in to a pool ([`Journal::opt_in_sortition`]), declaring only the
//! attributes the assembly listed ([`Journal::set_sortition_keys`]). A draw is
//! announced with its pool, quotas, mandate and time ([`Journal::announce_sortition`];
//! infeasible quotas are refused with every reason, [`feasibility`]), then made from
//! die rolls entered before witnesses ([`Journal::draw_sortition`]); a seated member
//! may decline and is replaced from the seed's continuation
//! ([`Journal::decline_panel_seat`]). The seed, the random stream and the selection
//! are documented step by step in the [`sortition`] module ([`select`], [`seed`],
//! [`Stream`]); [`Journal::verify`] re-runs every draw and every replacement, and
//! [`Draw::explain`] prints each step. A [`Decision`] may name the panel that took
//! it (`panel`): presence, votes and quorum are then counted among its seated
//! members, within its mandate and term.
//! Its state is rebuilt from its entries; the `sortition_entries` table only lists
//! them, so that a journal cut off after one is noticed like any other.
//!
//! It never touches the network and knows nothing of live power: `query` reads the
//! active plan from here, `web` writes through here, and time is always passed in by
//! the caller.
//!
//! # How the crate is laid out
//!
//! In layers, each importing only those above it:
//!
//! 1. What things are, without storage: `entry` (an entry and the canonical encoding
//!    it is hashed in), `communs` (amounts, demurrage), `plan`, and the types of each
//!    subject (`members`, `assembly`, `contributions`, `balances`, `parameters`).
//!    `error` says what can go wrong: a [`Refusal`] (the rules decline a request) or
//!    another [`Error`] (the database fails).
//! 2. The journal's core, `journal`: the database opened and migrated to `schema`
//!    (every table, in one place), the hash chain appended to and re-derived
//!    (`journal::chain`), entries read back and exported. It knows no kind's rules,
//!    so it can be reviewed, and its chain trusted, on its own.
//! 3. The rules by subject, `rules::{members, assembly, contributions, balances,
//!    parameters}`: for each kind of entry, its payload, its checks, what it does to
//!    the derived tables, and the [`Journal`] calls that record and read it. The
//!    contribution ledger's rules act on `rules::state::LedgerState`, the derived
//!    tables (`rules::sql`) or their image in memory.
//! 4. `dispatch`: an entry routed to its kind's rules ([`Journal::append`],
//!    [`Journal::rebuild_derived`]).
//! 5. `replay` (the journal replayed in memory, balances at any instant), `verify`
//!    (chain and replay against the tables), `accounts` (credentials beside the
//!    journal) and `idempotency` (requests recorded once, their keys beside the
//!    journal).

mod accounts;
mod assembly;
mod balances;
mod communs;
pub mod consent;
mod contributions;
mod dispatch;
mod entry;
mod error;
mod idempotency;
mod interests;
mod journal;
mod members;
mod parameters;
pub mod plan;
mod planning;
mod replay;
mod rules;
mod schema;
pub mod sortition;
mod verify;

pub use accounts::{
    ActiveSession, MIN_PASSWORD_CHARS, NewSession, PasswordMemory, SESSION_LIFETIME, SignedOut,
    TOKEN_USE_RESOLUTION, TokenInfo, generate_password,
};
pub use assembly::{
    AdoptedPlan, CONFIG_AUTHOR, CONFIG_MINUTES, Decision, DecisionContext, DecisionProblem,
    DecisionRule, Motion,
};
pub use balances::{Balances, MAX_MEMO_CHARS, MemberBalance, NewTransfer, Transfer};
pub use communs::{
    Communs, FACTOR_ONE, Hours, MAX_DEMURRAGE_RATE_PPM, MICRO_PER_COMMUN, decayed_balance,
    demurrage_factor,
};
pub use consent::{
    ACCESS_LOG_PAGE, AccessRecord, Erasure, ErasureRequest, Grant, Grantee, Granularity,
    MAX_PURPOSE_CHARS, NewGrant, RecordedErasure, RecordedErasureRequest,
};
pub use contributions::{
    Attestation, Attested, Category, Contribution, ContributionProblem, ContributionState,
    DATE_TOLERANCE_HOURS, MAX_COMMENT_CHARS, MAX_DESCRIPTION_CHARS, MAX_HOURS, NewContribution,
    Verdict,
};
pub use entry::{Entry, EntryKind, GENESIS_PREV_HASH, canonical_json, format_ts};
pub use error::{Error, MAX_IDEMPOTENCY_KEY_CHARS, Refusal, Result, StorageFault};
pub use idempotency::{IDEMPOTENCY_KEY_LIFETIME, Recorded, Request};
pub use interests::MAX_INTERESTS;
pub use journal::Journal;
pub use journal::chain::BadEntry;
pub use members::{COMMAND_LINE_AUTHOR, Member, NODE_AUTHOR, Role};
pub use parameters::{
    AdoptedParameters, LedgerParameters, MAX_ATTESTATIONS_NEEDED, MAX_DEMURRAGE_PERIOD_DAYS,
    MAX_RATE_PER_HOUR,
};
pub use plan::{
    BatterySource, GridSource, Plan, PlanChange, PlanProblem, PlanService, Sources, Split, TierRule,
};
pub use planning::{
    Action, Commitment, CommitmentState, DEFAULT_INTENT_LIFETIME_DAYS, Direction, Intent,
    IntentProblem, IntentState, LoadShiftBasis, LoadShiftCertification, MAX_CLASS_CHARS,
    MAX_INTENT_DESCRIPTION_CHARS, MAX_NOTE_CHARS, MAX_QUANTITY, Match, NewCommitment, NewIntent,
    NewLoadShiftCertification, PlanningProblem, Quantity, TextField, Unfulfillable, Unit,
    Visibility, load_shift_quantity,
};
pub use rules::planning::{
    REPAIR_CLASS, REPAIR_NEED_HOURS, SHED_CLASS, SHED_DEVICE_PREFIX, SURPLUS_CLASS,
};
pub use rules::sortition::PanelDecision;
pub use sortition::{
    Decline, Draw, DrawResult, DrawSpec, MAX_DIE_ROLLS, MAX_MANDATE_TITLE_CHARS, MAX_PANEL_SIZE,
    MAX_SORTITION_KEYS, MAX_SORTITION_TEXT_CHARS, MAX_WITNESSES, Mandate, MandateScope, Phase,
    Pick, PoolMember, Quota, Selection, SortitionProblem, Step, Stream, feasibility, pool_hash,
    replace, seed, select,
};
pub use verify::{DecisionWarning, VerifyReport};
