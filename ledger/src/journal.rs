//! The SQLite database: opening and migrating it, the append path, and reading entries
//! back.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Datelike, SubsecRound, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use serde_json::Value;

use crate::entry::{
    Entry, EntryKind, GENESIS_PREV_HASH, canonical_entry, canonical_json, chain_hash, format_ts,
    is_hash,
};
use crate::schema::MIGRATIONS;
use crate::{Error, Refusal, Result, assembly, members, rules};

/// The community journal in one SQLite database. Share it behind an `Arc`: every
/// call takes an internal lock, and every write is one `IMMEDIATE` transaction, so
/// other processes (e.g. `communalia ledger verify`) may open the same file.
pub struct Journal {
    conn: Mutex<Connection>,
    path: Option<PathBuf>,
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish()
    }
}

impl Journal {
    /// Opens the database at `path`, creating the file, its directory and the schema
    /// as needed, in WAL mode with `synchronous=FULL` and foreign keys on.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let with_path = |source| Error::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open(path).map_err(with_path)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(with_path)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "ledger database is not in WAL mode");
        }
        configure(&conn).map_err(with_path)?;
        migrate(&mut conn)?;
        Ok(Journal {
            conn: Mutex::new(conn),
            path: Some(path.to_path_buf()),
        })
    }

    /// A journal that lives in memory only (tests, demos).
    pub fn open_in_memory() -> Result<Self> {
        let mut conn = Connection::open_in_memory()?;
        configure(&conn)?;
        migrate(&mut conn)?;
        Ok(Journal {
            conn: Mutex::new(conn),
            path: None,
        })
    }

    /// The database file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Records one entry and updates the derived tables, in one transaction.
    ///
    /// The payload is checked for its kind and recorded as this program understands it
    /// (decoded and re-encoded, in canonical form). An act of the contribution ledger
    /// goes through its typed call's path, with the entries that come with it (a
    /// transfer with its demurrage settlement, the `k`-th approval with the
    /// validation), and the entry returned is the act's own; kinds the ledger only
    /// writes as consequences are refused with [`Refusal::DerivedKind`]. `ts` is
    /// truncated to milliseconds. Prefer the typed calls ([`Journal::add_member`],
    /// [`Journal::adopt_plan`], [`Journal::record_contribution`], [`Journal::attest`],
    /// [`Journal::transfer`], [`Journal::adopt_ledger_parameters`]).
    pub fn append(
        &self,
        kind: EntryKind,
        author: &str,
        payload: &Value,
        ts: DateTime<Utc>,
    ) -> Result<Entry> {
        self.write(|tx| record(tx, kind, author, payload, ts))
    }

    /// The latest entry, if any.
    pub fn head(&self) -> Result<Option<Entry>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(&format!("{SELECT_ENTRY} ORDER BY seq DESC LIMIT 1"))?;
            let mut rows = stmt.query([])?;
            match rows.next()? {
                Some(row) => entry_from_row(row).map(Some),
                None => Ok(None),
            }
        })
    }

    /// Up to `limit` entries with `seq > after_seq`, oldest first. Page through the
    /// journal with the last `seq` returned.
    pub fn entries(&self, after_seq: i64, limit: usize) -> Result<Vec<Entry>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            let mut stmt = conn.prepare(&format!(
                "{SELECT_ENTRY} WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            ))?;
            let mut rows = stmt.query(params![after_seq, limit])?;
            let mut entries = Vec::new();
            while let Some(row) = rows.next()? {
                entries.push(entry_from_row(row)?);
            }
            Ok(entries)
        })
    }

    /// Empties the derived tables and replays the whole journal into them, in one
    /// transaction; returns how many entries were replayed. Fails, changing nothing,
    /// on an entry it cannot read or that breaks the ledger's rules.
    pub fn rebuild_derived(&self) -> Result<u64> {
        self.write(|tx| {
            tx.execute_batch(crate::schema::CLEAR_DERIVED)?;
            let mut stmt = tx.prepare(&format!("{SELECT_ENTRY} ORDER BY seq"))?;
            let mut rows = stmt.query([])?;
            let mut replayed = 0;
            while let Some(row) = rows.next()? {
                let entry = entry_from_row(row)?;
                apply(tx, &entry).map_err(|e| match e {
                    Error::Sqlite(_) | Error::Corrupt { .. } => e,
                    rule => Error::Corrupt {
                        seq: entry.seq,
                        problem: rule.to_string(),
                    },
                })?;
                replayed += 1;
            }
            Ok(replayed)
        })
    }

    /// Runs `f` in one `IMMEDIATE` transaction (the write lock is taken before the head
    /// is read), committing if it succeeds.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        f(&self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held dropped its transaction, which rolled back:
        // the connection is still sound.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let supported = MIGRATIONS.len() as i64;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > supported {
        return Err(Error::SchemaTooNew { found, supported });
    }
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", step as i64 + 1)?;
        tracing::info!(version = step + 1, "ledger schema migrated");
    }
    tx.commit()?;
    Ok(())
}

/// Checks a new entry for its kind and appends it. Every write goes through here.
pub(crate) fn record(
    tx: &Connection,
    kind: EntryKind,
    author: &str,
    payload: &Value,
    ts: DateTime<Utc>,
) -> Result<Entry> {
    check_author(author)?;
    let payload = match kind {
        EntryKind::MemberJoined => members::check_new(payload)?,
        EntryKind::PlanAdopted => assembly::check_new(payload)?,
        EntryKind::ContributionRecorded => {
            return rules::record_contribution(tx, author, payload, ts);
        }
        EntryKind::Attestation => {
            return rules::attest(tx, author, payload, ts).map(|a| a.attestation);
        }
        EntryKind::Transfer => return rules::transfer(tx, author, payload, ts),
        EntryKind::ParametersAdopted => {
            return rules::adopt_parameters(tx, author, payload, ts);
        }
        EntryKind::ContributionValidated | EntryKind::DemurrageSettled => {
            return Err(Refusal::DerivedKind(kind).into());
        }
    };
    append_unchecked(tx, kind, author, &payload, ts)
}

pub(crate) fn check_author(author: &str) -> Result<()> {
    if author.trim().is_empty() || author.chars().any(char::is_control) {
        return Err(Refusal::InvalidAuthor(author.to_string()).into());
    }
    Ok(())
}

/// Chains an entry onto the head and applies it to the derived tables. The caller
/// holds an `IMMEDIATE` transaction, so the head cannot move underneath.
pub(crate) fn append_unchecked(
    tx: &Connection,
    kind: EntryKind,
    author: &str,
    payload: &Value,
    ts: DateTime<Utc>,
) -> Result<Entry> {
    let ts = ts.trunc_subsecs(3);
    if !(0..=9999).contains(&ts.year()) {
        return Err(Refusal::InvalidTimestamp(ts).into());
    }
    let (head_seq, prev_hash) = tx
        .query_row(
            "SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1",
            [],
            |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get_ref(1)?.as_str().map(str::to_owned),
                ))
            },
        )
        .optional()?
        .map(|(seq, hash)| match hash {
            Ok(hash) if is_hash(&hash) => Ok((seq, hash)),
            _ => Err(Error::Corrupt {
                seq,
                problem: "its hash is not 64 lowercase hex digits".into(),
            }),
        })
        .transpose()?
        .unwrap_or((0, GENESIS_PREV_HASH.to_string()));

    let seq = head_seq + 1;
    let ts_text = format_ts(ts);
    let payload_text = canonical_json(payload);
    let canonical = canonical_entry(seq, &ts_text, kind.as_str(), author, &payload_text);
    let hash = chain_hash(&prev_hash, canonical.as_bytes());
    tx.execute(
        "INSERT INTO journal (seq, ts, kind, author, payload, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            seq,
            ts_text,
            kind.as_str(),
            author,
            payload_text,
            prev_hash,
            hash
        ],
    )?;
    let entry = Entry {
        seq,
        ts,
        kind,
        author: author.to_string(),
        payload: payload.clone(),
        prev_hash,
        hash,
    };
    apply(tx, &entry)?;
    tracing::debug!(seq, kind = %kind, author, "journal entry appended");
    Ok(entry)
}

/// Updates the derived tables for one entry (on append, and on rebuild).
fn apply(tx: &Connection, entry: &Entry) -> Result<()> {
    match entry.kind {
        EntryKind::MemberJoined => members::apply(tx, entry),
        EntryKind::PlanAdopted => assembly::apply(tx, entry),
        _ => rules::apply(&mut rules::SqlState::new(tx), entry),
    }
}

pub(crate) const SELECT_ENTRY: &str =
    "SELECT seq, ts, kind, author, payload, prev_hash, hash FROM journal";

/// Reads a row of [`SELECT_ENTRY`]; a row that does not decode is reported as
/// [`Error::Corrupt`], never a panic.
pub(crate) fn entry_from_row(row: &Row<'_>) -> Result<Entry> {
    let seq: i64 = row.get(0)?;
    let corrupt = |problem: String| Error::Corrupt { seq, problem };
    let text = |idx: usize, name: &str| -> Result<String> {
        match row.get_ref(idx)? {
            ValueRef::Text(bytes) => String::from_utf8(bytes.to_vec())
                .map_err(|_| corrupt(format!("column `{name}` is not valid UTF-8"))),
            _ => Err(corrupt(format!("column `{name}` is not text"))),
        }
    };
    let ts_text = text(1, "ts")?;
    let ts = DateTime::parse_from_rfc3339(&ts_text)
        .map_err(|_| corrupt(format!("ts `{ts_text}` is not an RFC 3339 timestamp")))?
        .with_timezone(&Utc);
    let kind_text = text(2, "kind")?;
    let kind = kind_text.parse::<EntryKind>().map_err(corrupt)?;
    let payload_text = text(4, "payload")?;
    let payload = serde_json::from_str(&payload_text)
        .map_err(|_| corrupt("payload is not valid JSON".into()))?;
    Ok(Entry {
        seq,
        ts,
        kind,
        author: text(3, "author")?,
        payload,
        prev_hash: text(5, "prev_hash")?,
        hash: text(6, "hash")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn journal_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Journal>();
    }

    #[test]
    fn entries_chain_onto_each_other() {
        let journal = Journal::open_in_memory().unwrap();
        assert!(journal.head().unwrap().is_none());
        let a = journal
            .append(
                EntryKind::MemberJoined,
                "admin",
                &json!({"name": "Alice", "roles": ["resident"]}),
                ts("2026-11-22T10:00:00.123456Z"),
            )
            .unwrap();
        let b = journal
            .append(
                EntryKind::MemberJoined,
                "admin",
                &json!({"name": "Bob", "roles": []}),
                ts("2026-11-22T10:01:00Z"),
            )
            .unwrap();
        assert_eq!((a.seq, b.seq), (1, 2));
        assert_eq!(a.prev_hash, GENESIS_PREV_HASH);
        assert_eq!(b.prev_hash, a.hash);
        assert_eq!(a.ts, ts("2026-11-22T10:00:00.123Z"));
        assert_eq!(a.hash, a.computed_hash());
        assert_eq!(journal.head().unwrap(), Some(b.clone()));
        assert_eq!(journal.entries(0, 10).unwrap(), vec![a.clone(), b.clone()]);
        assert_eq!(journal.entries(1, 10).unwrap(), vec![b]);
        assert_eq!(journal.entries(0, 1).unwrap(), vec![a]);
        assert!(journal.entries(2, 10).unwrap().is_empty());
    }

    #[test]
    fn derived_kinds_and_bad_input_are_refused_and_leave_nothing() {
        let journal = Journal::open_in_memory().unwrap();
        let now = ts("2026-11-22T10:00:00Z");
        for kind in [
            EntryKind::DemurrageSettled,
            EntryKind::ContributionValidated,
        ] {
            let err = journal.append(kind, "alice", &json!({}), now).unwrap_err();
            assert!(
                matches!(err, Error::Refused(Refusal::DerivedKind(k)) if k == kind),
                "{err}"
            );
        }
        let err = journal
            .append(EntryKind::Transfer, "alice", &json!({}), now)
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Refused(Refusal::InvalidPayload {
                    kind: EntryKind::Transfer,
                    ..
                })
            ),
            "{err}"
        );
        let err = journal
            .append(EntryKind::MemberJoined, "alice", &json!({"name": 3}), now)
            .unwrap_err();
        assert!(
            matches!(err, Error::Refused(Refusal::InvalidPayload { .. })),
            "{err}"
        );
        let err = journal
            .append(
                EntryKind::MemberJoined,
                " ",
                &json!({"name": "A", "roles": []}),
                now,
            )
            .unwrap_err();
        assert!(
            matches!(err, Error::Refused(Refusal::InvalidAuthor(_))),
            "{err}"
        );
        let far = chrono::NaiveDate::from_ymd_opt(10000, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        let err = journal
            .append(
                EntryKind::MemberJoined,
                "a",
                &json!({"name": "A", "roles": []}),
                far,
            )
            .unwrap_err();
        assert!(
            matches!(err, Error::Refused(Refusal::InvalidTimestamp(_))),
            "{err}"
        );
        assert!(journal.head().unwrap().is_none());
    }

    #[test]
    fn a_failed_derived_update_rolls_the_entry_back() {
        let journal = Journal::open_in_memory().unwrap();
        let now = ts("2026-11-22T10:00:00Z");
        let payload = json!({"name": "Alice", "roles": ["resident"]});
        journal
            .append(EntryKind::MemberJoined, "a", &payload, now)
            .unwrap();
        assert!(
            journal
                .append(EntryKind::MemberJoined, "a", &payload, now)
                .is_err()
        );
        assert_eq!(journal.head().unwrap().map(|e| e.seq), Some(1));
    }

    #[test]
    fn the_journal_refuses_updates_and_deletes() {
        let journal = Journal::open_in_memory().unwrap();
        journal
            .append(
                EntryKind::MemberJoined,
                "a",
                &json!({"name": "Alice", "roles": []}),
                ts("2026-11-22T10:00:00Z"),
            )
            .unwrap();
        let conn = journal.lock();
        let err = conn
            .execute("UPDATE journal SET author = 'mallory'", [])
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
        assert!(conn.execute("DELETE FROM journal", []).is_err());
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        drop(Journal::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = Journal::open(&path).unwrap_err();
        assert!(
            matches!(err, Error::SchemaTooNew { found: 99, .. }),
            "{err}"
        );
    }

    #[test]
    fn open_sets_the_pragmas() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("sub/ledger.sqlite")).unwrap();
        let conn = journal.lock();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        let fk: i64 = conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!((mode.as_str(), sync, fk), ("wal", 2, 1));
        assert_eq!(version, MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_corrupted_row_is_an_error_not_a_panic() {
        let journal = Journal::open_in_memory().unwrap();
        journal
            .append(
                EntryKind::MemberJoined,
                "a",
                &json!({"name": "Alice", "roles": []}),
                ts("2026-11-22T10:00:00Z"),
            )
            .unwrap();
        {
            let conn = journal.lock();
            conn.execute_batch(
                "DROP TRIGGER journal_no_update;
                 UPDATE journal SET payload = X'FF00', kind = 'nonsense';",
            )
            .unwrap();
        }
        let err = journal.entries(0, 10).unwrap_err();
        assert!(matches!(err, Error::Corrupt { seq: 1, .. }), "{err}");
        assert!(journal.head().is_err());
        assert!(journal.rebuild_derived().is_err());
    }
}
