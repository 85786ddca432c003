//! Members joining (`member_joined` entries, `members` table): the payload, recording
//! it, the row it adds, and reading members back.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::assembly::CONFIG_AUTHOR;
use crate::entry::{Entry, EntryKind, canonical_json, parse_canonical_ts};
use crate::error::{Error, Refusal, Result};
use crate::journal::Journal;
use crate::journal::chain::{append, check_author};
use crate::members::{COMMAND_LINE_AUTHOR, Member, NODE_AUTHOR, Role};

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
        self.write(|tx| record(tx, author, &payload, ts))
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

/// Checks a new `member_joined` payload and records it as this program writes it.
pub(crate) fn record(
    tx: &Connection,
    author: &str,
    payload: &Value,
    ts: DateTime<Utc>,
) -> Result<Entry> {
    check_author(author)?;
    let payload = check_new(payload)?;
    let entry = append(tx, EntryKind::MemberJoined, author, &payload, ts)?;
    apply(tx, &entry)?;
    Ok(entry)
}

/// Checks a new `member_joined` payload; returns it as it will be recorded.
fn check_new(payload: &Value) -> Result<Value> {
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
    } else if name.eq_ignore_ascii_case(NODE_AUTHOR) {
        "it is reserved for what the node records of itself"
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
#[allow(clippy::unwrap_used)]
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
}
