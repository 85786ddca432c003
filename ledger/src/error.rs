//! What can go wrong, in two kinds: a [`Refusal`] is the ledger declining what it was
//! asked (the caller can correct the request), every other [`Error`] is the database
//! failing (whoever runs the node must look).

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::assembly::DecisionProblem;
use crate::communs::Communs;
use crate::contributions::{ContributionProblem, ContributionState};
use crate::entry::EntryKind;
use crate::members::Role;
use crate::plan::PlanProblem;
use crate::planning::{IntentProblem, IntentState, PlanningProblem, Quantity};
use crate::sortition::SortitionProblem;

/// Everything that can go wrong in the ledger: a refusal, or a failure of the
/// database underneath.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ledger refuses what it was asked: its rules do not allow it. The database
    /// is unchanged.
    #[error(transparent)]
    Refused(#[from] Refusal),
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
    #[error("cannot read the ledger database {path}: {why}")]
    Locked { path: PathBuf, why: &'static str },
    #[error(
        "the ledger database has schema version {found}, newer than this program \
         understands ({supported}); upgrade communalia"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("ledger database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("journal entry {seq} cannot be read ({problem}); run `communalia ledger verify`")]
    Corrupt { seq: i64, problem: String },
    #[error("password hashing failed: {0}")]
    PasswordHash(String),
    #[error("cannot write the journal export: {0}")]
    Export(std::io::Error),
    #[error("the `{table}` table holds something unreadable: {problem}")]
    CorruptAccount {
        table: &'static str,
        problem: String,
    },
}

/// The storage under the database at fault: what a write could not do because of
/// the disk, not of the request. SQLite rolls the transaction back: nothing of the
/// write is in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFault {
    /// The disk is full (`SQLITE_FULL`).
    Full,
    /// The filesystem or the database file is read-only (`SQLITE_READONLY`).
    ReadOnly,
    /// The disk fails to read or write (`SQLITE_IOERR`, `SQLITE_CANTOPEN`).
    Failing,
}

impl StorageFault {
    /// The fault, if `error` is one of the storage underneath.
    pub fn of_sqlite(error: &rusqlite::Error) -> Option<StorageFault> {
        use rusqlite::ffi::ErrorCode;
        match error.sqlite_error_code()? {
            ErrorCode::DiskFull => Some(StorageFault::Full),
            ErrorCode::ReadOnly => Some(StorageFault::ReadOnly),
            ErrorCode::SystemIoFailure | ErrorCode::CannotOpen => Some(StorageFault::Failing),
            _ => None,
        }
    }
}

impl Error {
    /// The storage fault behind this failure, if the disk is what failed.
    pub fn storage_fault(&self) -> Option<StorageFault> {
        match self {
            Error::Sqlite(e) | Error::Open { source: e, .. } => StorageFault::of_sqlite(e),
            Error::CreateDir { source, .. } | Error::Export(source) => {
                match source.raw_os_error() {
                    Some(28) => Some(StorageFault::Full),     // ENOSPC
                    Some(30) => Some(StorageFault::ReadOnly), // EROFS
                    Some(5) => Some(StorageFault::Failing),   // EIO
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The refusal, if the ledger declined what it was asked rather than failed.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Error::Refused(refusal) => Some(refusal),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Declares [`Refusal`] as written inside it, with the names of its variants, so that
/// the list of names ([`Refusal::NAMES`]) cannot miss one: a caller's test can then
/// check that it answers every refusal, including those added after it was written.
macro_rules! with_names {
    (
        $(#[$enum_attr:meta])*
        pub enum Refusal { $( $(#[$attr:meta])* $variant:ident $($fields:tt)? ),* $(,)? }
    ) => {
        $(#[$enum_attr])*
        pub enum Refusal {
            $( $(#[$attr])* $variant $($fields)?, )*
        }

        impl Refusal {
            /// The name of every variant, in the order they are declared.
            pub const NAMES: &'static [&'static str] = &[$( stringify!($variant) ),*];

            /// The name of this refusal's variant (`"UnknownMember"`), for logs and
            /// for checking a caller handles each one.
            pub fn name(&self) -> &'static str {
                match self {
                    $( Refusal::$variant { .. } => stringify!($variant), )*
                }
            }
        }
    };
}

with_names! {
    /// What the ledger refuses to record, and why, in English. Each names what the
    /// caller can correct; the database is left unchanged.
    #[derive(Debug, Clone, PartialEq, thiserror::Error)]
    pub enum Refusal {
        #[error("a member named `{0}` already exists")]
        DuplicateMember(String),
        #[error("invalid member name {name:?}: {reason}")]
        InvalidMemberName { name: String, reason: String },
        #[error("invalid author {0:?}: an author is a non-empty name without control characters")]
        InvalidAuthor(String),
        #[error("the plan cannot be adopted: {}", problem_list(.0))]
        InvalidPlan(Vec<PlanProblem>),
        #[error("the decision record does not adopt it: {}", problem_list(.0))]
        InvalidDecision(Vec<DecisionProblem>),
        #[error("not a valid `{kind}` payload: {reason}")]
        InvalidPayload { kind: EntryKind, reason: String },
        #[error(
            "entries of kind `{0}` are written by the ledger itself, as the consequence of \
             another act, and cannot be appended on their own"
        )]
        DerivedKind(EntryKind),
        #[error("timestamp {0} cannot be recorded: the journal takes years 0000 to 9999")]
        InvalidTimestamp(DateTime<Utc>),
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
        #[error(
            "entries of kind `{kind}` are recorded with `{call}`, which checks what the journal \
             alone cannot know"
        )]
        TypedCallOnly { kind: EntryKind, call: &'static str },
        #[error(
            "invalid Idempotency-Key {0:?}: 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters"
        )]
        InvalidIdempotencyKey(String),
        #[error(
            "the Idempotency-Key {0:?} was already used for a different request; \
             use a new key for a new request"
        )]
        IdempotencyKeyReused(String),
        #[error("a token cannot expire at {0}: that is already past")]
        ExpiryPast(DateTime<Utc>),
        #[error("the intent or commitment cannot be recorded: {}", problem_list(.0))]
        InvalidIntent(Vec<IntentProblem>),
        #[error("there is no intent {0}")]
        NoSuchIntent(i64),
        #[error("there is no commitment {0}")]
        NoSuchCommitment(i64),
        #[error("intent {intent} is {state}: it takes no new commitment")]
        IntentNotOpen { intent: i64, state: IntentState },
        #[error("intent {intent} has {remaining} left to commit, less than the {asked} asked")]
        OverCommitment {
            intent: i64,
            asked: Quantity,
            remaining: Quantity,
        },
        #[error("`{member}` is not a side of commitment {commitment} that may do this")]
        NotAParty { member: String, commitment: i64 },
        #[error("{0}")]
        AssemblyOnly(String),
        #[error("the planning board refuses it: {0}")]
        PlanningRule(PlanningProblem),
        #[error("the draw cannot be announced: {}", problem_list(.0))]
        InvalidDraw(Vec<SortitionProblem>),
        #[error("there is no draw {0}")]
        NoSuchDraw(i64),
        #[error("sortition refuses it: {0}")]
        SortitionRule(String),
        #[error("`{member}` is not a member of household `{household}`: only its members may do this")]
        NotOfHousehold { member: String, household: String },
        #[error("there is no consent grant {0}")]
        NoSuchGrant(i64),
        #[error("consent refuses it: {0}")]
        ConsentRule(String),
    }
}

/// Longest `Idempotency-Key` accepted, in characters.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

fn problem_list<T: std::fmt::Display>(problems: &[T]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_variants() {
        let refusal = Refusal::NoSuchContribution(3);
        assert_eq!(refusal.name(), "NoSuchContribution");
        assert!(Refusal::NAMES.contains(&"NoSuchContribution"));
        assert_eq!(Refusal::NAMES.first(), Some(&"DuplicateMember"));
        assert_eq!(Refusal::NAMES.last(), Some(&"ConsentRule"));
        assert_eq!(Refusal::NAMES.len(), 44);
    }

    #[test]
    fn a_refusal_reads_the_same_inside_an_error() {
        let refusal = Refusal::UnknownMember("Mallory".into());
        let error = Error::from(refusal.clone());
        assert_eq!(error.to_string(), "no member named `Mallory`");
        assert_eq!(error.refusal(), Some(&refusal));
        let failure = Error::Corrupt {
            seq: 4,
            problem: "x".into(),
        };
        assert_eq!(failure.refusal(), None);
    }
}
