//! The community journal: one SQLite database holding every act of the community as
//! an append-only, hash-chained list of entries (DESIGN.md §5).
//!
//! This crate owns that database, opened through [`Journal`]. Its `journal` table is
//! the truth: each entry has a `seq`, a timestamp, an [`EntryKind`], an author and a
//! canonical JSON payload, and is chained to the one before it by SHA-256 (the exact
//! encoding is documented on [`Entry`] so that any program can re-verify it;
//! [`Journal::verify`] does).
//! It records members joining, priority plans and ledger parameters adopted by the
//! assembly with their decision records, and the contribution ledger: contributions,
//! attestations, Communs minted on validation, transfers, and demurrage settled into
//! the commons account.
//! Accounts (password hashes, API tokens, sessions) sit beside the journal in the same
//! database but are not entries: see the `accounts` module and [`Journal::create_user`].
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
//! | `transfer` | `{"to", "amount_micro", "memo"}`, from the author |
//! | `parameters_adopted` | `{"parameters": {"attestations_needed", "rates_micro_per_hour": {CATEGORY: n, …}, "demurrage_rate_ppm", "demurrage_period_days"}, "decision": DECISION}` |
//!
//! Replaying them (what [`Journal::verify`] does, and what another program needs to
//! reproduce balances from [`Journal::export_jsonl`]):
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
//! It never touches the network and knows nothing of live power: `query` reads the
//! active plan from here, `web` writes through here, and time is always passed in by
//! the caller.

mod accounts;
mod assembly;
mod balances;
mod communs;
mod contributions;
mod entry;
mod export;
mod journal;
mod members;
mod parameters;
pub mod plan;
mod replay;
mod rules;
mod verify;

use std::path::PathBuf;

pub use accounts::{
    ActiveSession, COMMAND_LINE_AUTHOR, MIN_PASSWORD_CHARS, NewSession, PasswordMemory,
    SESSION_LIFETIME, TokenInfo, generate_password,
};
pub use assembly::{AdoptedPlan, CONFIG_AUTHOR, CONFIG_MINUTES, Decision, DecisionProblem};
pub use balances::{Balances, MAX_MEMO_CHARS, MemberBalance, NewTransfer, Transfer};
pub use communs::{
    Communs, FACTOR_ONE, Hours, MAX_DEMURRAGE_RATE_PPM, MICRO_PER_COMMUN, decayed_balance,
    demurrage_factor,
};
pub use contributions::{
    Attestation, Attested, Category, Contribution, ContributionProblem, ContributionState,
    DATE_TOLERANCE_HOURS, MAX_COMMENT_CHARS, MAX_DESCRIPTION_CHARS, MAX_HOURS, NewContribution,
    Verdict,
};
pub use entry::{Entry, EntryKind, GENESIS_PREV_HASH, canonical_json, format_ts};
pub use journal::Journal;
pub use members::{Member, Role};
pub use parameters::{
    AdoptedParameters, LedgerParameters, MAX_ATTESTATIONS_NEEDED, MAX_DEMURRAGE_PERIOD_DAYS,
    MAX_RATE_PER_HOUR,
};
pub use plan::{
    BatterySource, GridSource, Plan, PlanChange, PlanProblem, PlanService, Sources, Split, TierRule,
};
pub use verify::{BadEntry, VerifyReport};

/// Everything that can go wrong in the ledger.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create the directory of the ledger database {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the ledger database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "the ledger database has schema version {found}, newer than this program \
         understands ({supported}); upgrade communalia"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("ledger database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("a member named `{0}` already exists")]
    DuplicateMember(String),
    #[error("invalid member name {name:?}: {reason}")]
    InvalidMemberName { name: String, reason: String },
    #[error("invalid author {0:?}: an author is a non-empty name without control characters")]
    InvalidAuthor(String),
    #[error("the plan cannot be adopted: {}", .0.join("; "))]
    InvalidPlan(Vec<String>),
    #[error("the decision record is not acceptable: {}", .0.join("; "))]
    InvalidDecision(Vec<String>),
    #[error("not a valid `{kind}` payload: {reason}")]
    InvalidPayload { kind: EntryKind, reason: String },
    #[error(
        "entries of kind `{0}` are written by the ledger itself, as the consequence of \
         another act, and cannot be appended on their own"
    )]
    DerivedKind(EntryKind),
    #[error("timestamp {0} cannot be recorded: the journal takes years 0000 to 9999")]
    InvalidTimestamp(chrono::DateTime<chrono::Utc>),
    #[error("journal entry {seq} cannot be read ({problem}); run `communalia ledger verify`")]
    Corrupt { seq: i64, problem: String },
    #[error("no member named `{0}`")]
    UnknownMember(String),
    #[error("`{0}` already has a password; change it instead of creating the account again")]
    CredentialExists(String),
    #[error(
        "member `{name}` is recorded with the roles: {}; not: {}. Roles cannot be changed here",
        role_list(recorded),
        role_list(asked)
    )]
    RolesDiffer {
        name: String,
        recorded: Vec<Role>,
        asked: Vec<Role>,
    },
    #[error("this password cannot be used: {0}")]
    UnacceptablePassword(String),
    #[error("invalid token label {0:?}: at most 100 characters, without control characters")]
    InvalidLabel(String),
    #[error("password hashing failed: {0}")]
    PasswordHash(String),
    #[error("the contribution cannot be recorded: {}", problem_list(.0))]
    InvalidContribution(Vec<ContributionProblem>),
    #[error("there is no contribution {0}")]
    NoSuchContribution(i64),
    #[error("`{member}` cannot attest contribution {contribution}: it is their own")]
    SelfAttestation { member: String, contribution: i64 },
    #[error("`{member}` has already attested contribution {contribution}")]
    AlreadyAttested { member: String, contribution: i64 },
    #[error("contribution {contribution} is already {state}: it takes no more attestations")]
    ContributionDecided {
        contribution: i64,
        state: ContributionState,
    },
    #[error("the attestation cannot be recorded: {0}")]
    InvalidComment(String),
    #[error("`{0}` cannot transfer Communs to themselves")]
    TransferToSelf(String),
    #[error("a transfer moves more than 0 Communs, not {0}")]
    NonPositiveAmount(Communs),
    #[error("the transfer cannot be recorded: {0}")]
    InvalidMemo(String),
    #[error("`{member}` has {balance} Communs (after demurrage), less than the {asked} asked")]
    InsufficientCommons {
        member: String,
        balance: Communs,
        asked: Communs,
    },
    #[error("the ledger parameters cannot be adopted: {}", .0.join("; "))]
    InvalidParameters(Vec<String>),
    #[error("the balance of `{member}` has demurrage due since {since} that was not settled first")]
    UnsettledDemurrage { member: String, since: String },
    #[error("the entry breaks the ledger's rules: {0}")]
    LedgerRule(String),
    #[error("cannot write the journal export: {0}")]
    Export(std::io::Error),
    #[error("the `{table}` table holds something unreadable: {problem}")]
    CorruptAccount {
        table: &'static str,
        problem: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn problem_list(problems: &[ContributionProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn role_list(roles: &[Role]) -> String {
    if roles.is_empty() {
        return "(none)".to_string();
    }
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
