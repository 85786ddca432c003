//! The community journal: one SQLite database holding every act of the community as
//! an append-only, hash-chained list of entries (DESIGN.md §5).
//!
//! This crate owns that database, opened through [`Journal`]. Its `journal` table is
//! the truth: each entry has a `seq`, a timestamp, an [`EntryKind`], an author and a
//! canonical JSON payload, and is chained to the one before it by SHA-256 (the exact
//! encoding is documented on [`Entry`] so that any program can re-verify it;
//! [`Journal::verify`] does).
//! Today it records members joining and priority plans adopted by the assembly with
//! their decision records; contributions, attestations, Communs, transfers and
//! demurrage will be further kinds of entries, already reserved in [`EntryKind`].
//! Accounts (password hashes, API tokens, sessions) sit beside the journal in the same
//! database but are not entries: see the `accounts` module and [`Journal::create_user`].
//! Derived tables (`members`, `plans`, …) are updated in the same transaction as the
//! entry that changes them and can always be rebuilt from the journal
//! ([`Journal::rebuild_derived`]).
//!
//! It never touches the network and knows nothing of live power: `query` reads the
//! active plan from here, `web` writes through here, and time is always passed in by
//! the caller.

mod accounts;
mod assembly;
mod entry;
mod journal;
mod members;
pub mod plan;
mod verify;

use std::path::PathBuf;

pub use accounts::{
    ActiveSession, COMMAND_LINE_AUTHOR, MIN_PASSWORD_CHARS, NewSession, SESSION_LIFETIME,
    TokenInfo, generate_password,
};
pub use assembly::{AdoptedPlan, CONFIG_AUTHOR, CONFIG_MINUTES, Decision, DecisionProblem};
pub use entry::{Entry, EntryKind, GENESIS_PREV_HASH, canonical_json, format_ts};
pub use journal::Journal;
pub use members::{Member, Role};
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
    #[error("entries of kind `{0}` cannot be recorded yet")]
    KindNotSupported(EntryKind),
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
    #[error("the `{table}` table holds something unreadable: {problem}")]
    CorruptAccount {
        table: &'static str,
        problem: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

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
