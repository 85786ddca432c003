//! Members and their roles (`member_joined` entries, `members` table).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::accounts::COMMAND_LINE_AUTHOR;
use crate::assembly::CONFIG_AUTHOR;
use crate::entry::{Entry, EntryKind, canonical_json, parse_canonical_ts, ts_millis};
use crate::journal::{Journal, record};
use crate::{Error, Refusal, Result};

/// What a member may do on the node (DESIGN.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Resident,
    Assembly,
    Installer,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Resident, Role::Assembly, Role::Installer, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Resident => "resident",
            Role::Assembly => "assembly",
            Role::Installer => "installer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}` (resident, assembly, installer or admin)"))
    }
}

/// A member as the `members` table holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    /// Sorted, each role once.
    pub roles: Vec<Role>,
    /// The `member_joined` entry that recorded them.
    pub joined_seq: i64,
    #[serde(with = "ts_millis")]
    pub joined_at: DateTime<Utc>,
}

/// The payload of a `member_joined` entry.
#[derive(Debug, Serialize, Deserialize)]
struct MemberJoined {
    name: String,
    roles: Vec<Role>,
}

impl Journal {
    /// Records that `name` joins with `roles`. Names are unique regardless of ASCII
    /// case, so that "alice" and "Alice" cannot both appear on a page.
    pub fn add_member(
        &self,
        name: &str,
        roles: &[Role],
        author: &str,
        ts: DateTime<Utc>,
    ) -> Result<Entry> {
        let payload = joined_payload(name, roles)?;
        self.write(|tx| record(tx, EntryKind::MemberJoined, author, &payload, ts))
    }

    /// All members, in the order they joined.
    pub fn members(&self) -> Result<Vec<Member>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(&format!("{SELECT_MEMBER} ORDER BY m.joined_seq"))?;
            let mut rows = stmt.query([])?;
            let mut members = Vec::new();
            while let Some(row) = rows.next()? {
                members.push(member_from_row(row)?);
            }
            Ok(members)
        })
    }

    /// One member by exact name.
    pub fn member(&self, name: &str) -> Result<Option<Member>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(&format!("{SELECT_MEMBER} WHERE m.name = ?1"))?;
            let mut rows = stmt.query([name])?;
            match rows.next()? {
                Some(row) => member_from_row(row).map(Some),
                None => Ok(None),
            }
        })
    }
}

pub(crate) fn joined_payload(name: &str, roles: &[Role]) -> Result<Value> {
    let mut roles = roles.to_vec();
    roles.sort_unstable();
    roles.dedup();
    let joined = MemberJoined {
        name: name.to_string(),
        roles,
    };
    serde_json::to_value(joined).map_err(|e| {
        Refusal::InvalidPayload {
            kind: EntryKind::MemberJoined,
            reason: e.to_string(),
        }
        .into()
    })
}

/// Checks a new `member_joined` payload; returns it as it will be recorded.
pub(crate) fn check_new(payload: &Value) -> Result<Value> {
    let joined: MemberJoined =
        serde_json::from_value(payload.clone()).map_err(|e| Refusal::InvalidPayload {
            kind: EntryKind::MemberJoined,
            reason: e.to_string(),
        })?;
    check_name(&joined.name)?;
    joined_payload(&joined.name, &joined.roles)
}

fn check_name(name: &str) -> Result<()> {
    let reason = if name.trim().is_empty() {
        "it is empty"
    } else if name.trim() != name {
        "it starts or ends with a space"
    } else if name.chars().any(char::is_control) {
        "it contains a control character"
    } else if name.chars().count() > 100 {
        "it is longer than 100 characters"
    } else if name.eq_ignore_ascii_case(CONFIG_AUTHOR) {
        "it is reserved for what comes from the site configuration"
    } else if name.eq_ignore_ascii_case(COMMAND_LINE_AUTHOR) {
        "it is reserved for what the node's command line records"
    } else {
        return Ok(());
    };
    Err(Refusal::InvalidMemberName {
        name: name.to_string(),
        reason: reason.to_string(),
    }
    .into())
}

/// The name and roles a `member_joined` payload records, or why it does not decode.
pub(crate) fn decode_joined(payload: &Value) -> Result<(String, Vec<Role>), String> {
    let joined: MemberJoined =
        serde_json::from_value(payload.clone()).map_err(|e| e.to_string())?;
    Ok((joined.name, joined.roles))
}

/// The `members` row for a `member_joined` entry.
pub(crate) fn apply(tx: &Connection, entry: &Entry) -> Result<()> {
    let joined: MemberJoined =
        serde_json::from_value(entry.payload.clone()).map_err(|e| Error::Corrupt {
            seq: entry.seq,
            problem: format!("not a valid member_joined payload: {e}"),
        })?;
    let existing: Option<String> = tx
        .query_row(
            "SELECT name FROM members WHERE name = ?1 COLLATE NOCASE",
            [&joined.name],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(existing) = existing {
        return Err(Refusal::DuplicateMember(existing).into());
    }
    let roles = serde_json::to_value(&joined.roles).map_err(|e| Refusal::InvalidPayload {
        kind: EntryKind::MemberJoined,
        reason: e.to_string(),
    })?;
    tx.execute(
        "INSERT INTO members (name, roles, joined_seq) VALUES (?1, ?2, ?3)",
        params![joined.name, canonical_json(&roles), entry.seq],
    )?;
    Ok(())
}

pub(crate) const SELECT_MEMBER: &str = "SELECT m.name, m.roles, m.joined_seq, j.ts
     FROM members m JOIN journal j ON j.seq = m.joined_seq";

pub(crate) fn member_from_row(row: &Row<'_>) -> Result<Member> {
    let seq: i64 = row.get(2)?;
    let corrupt = |problem: String| Error::Corrupt { seq, problem };
    let name: String = row
        .get(0)
        .map_err(|_| corrupt("member name is not text".into()))?;
    let roles: String = row
        .get(1)
        .map_err(|_| corrupt(format!("roles of `{name}` are not text")))?;
    let roles: Vec<Role> = serde_json::from_str(&roles)
        .map_err(|e| corrupt(format!("roles of `{name}` do not decode: {e}")))?;
    let ts: String = row.get(3).map_err(|_| corrupt("ts is not text".into()))?;
    let joined_at =
        parse_canonical_ts(&ts).ok_or_else(|| corrupt(format!("ts `{ts}` is not canonical")))?;
    Ok(Member {
        name,
        roles,
        joined_seq: seq,
        joined_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn members_are_recorded_with_sorted_roles() {
        let journal = Journal::open_in_memory().unwrap();
        let entry = journal
            .add_member(
                "Alice",
                &[Role::Admin, Role::Resident, Role::Admin],
                "admin",
                now(),
            )
            .unwrap();
        assert_eq!(
            entry.payload,
            serde_json::json!({"name": "Alice", "roles": ["resident", "admin"]})
        );
        journal.add_member("Bob", &[], "Alice", now()).unwrap();
        let members = journal.members().unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].name, "Alice");
        assert_eq!(members[0].roles, vec![Role::Resident, Role::Admin]);
        assert_eq!(members[0].joined_seq, 1);
        assert_eq!(members[0].joined_at, now());
        assert_eq!(members[1].name, "Bob");
        assert_eq!(journal.member("Bob").unwrap(), Some(members[1].clone()));
        assert_eq!(journal.member("Carol").unwrap(), None);
    }

    #[test]
    fn a_duplicate_name_is_refused_clearly() {
        let journal = Journal::open_in_memory().unwrap();
        journal
            .add_member("Alice", &[Role::Resident], "admin", now())
            .unwrap();
        for name in ["Alice", "alice"] {
            let err = journal
                .add_member(name, &[Role::Resident], "admin", now())
                .unwrap_err();
            assert!(
                matches!(err, Error::Refused(Refusal::DuplicateMember(_))),
                "{err}"
            );
            assert_eq!(err.to_string(), "a member named `Alice` already exists");
        }
        assert_eq!(journal.head().unwrap().map(|e| e.seq), Some(1));
    }

    #[test]
    fn bad_names_are_refused() {
        let journal = Journal::open_in_memory().unwrap();
        for name in [
            "",
            "  ",
            " Alice",
            "Al\nice",
            "config",
            "CONFIG",
            "command-line",
        ] {
            let err = journal
                .add_member(name, &[Role::Resident], "admin", now())
                .unwrap_err();
            assert!(
                matches!(err, Error::Refused(Refusal::InvalidMemberName { .. })),
                "{name:?}: {err}"
            );
        }
    }

    #[test]
    fn roles_parse_from_their_names() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("mayor".parse::<Role>().is_err());
    }
}
