//! The journal's core: the SQLite database, opened and migrated, its `journal` table
//! appended to only through the hash chain ([`chain`]) and read back, and exported
//! ([`export`]).
//!
//! Nothing here knows what an entry means. The rules of each kind (`rules`) check an
//! entry, append it through [`chain::append`] and update the derived tables in the
//! same transaction, which [`Journal::write`] holds; `dispatch` routes an entry to its
//! kind's rules. This module imports none of them: it can be read, and its chain
//! trusted, on its own.

pub(crate) mod chain;
mod export;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row, Transaction, TransactionBehavior, params};

use crate::entry::{Entry, EntryKind};
use crate::error::{Error, Result};
use crate::schema::MIGRATIONS;

/// The community journal in one SQLite database. Share it behind an `Arc`: every
/// call takes an internal lock, and every write is one `IMMEDIATE` transaction, so
/// other processes (e.g. `communalia ledger verify`) may open the same file.
pub struct Journal {
    conn: Mutex<Connection>,
    path: Option<PathBuf>,
    /// Which file the connection has open, to notice when the path names another.
    file: Mutex<FileWatch>,
    /// Write transactions this handle committed: see [`Journal::commits`].
    commits: AtomicU64,
    /// SQLCipher's raw key when the database is encrypted (kept to open it again).
    key: Option<keyring::Key32>,
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish()
    }
}

/// The file behind the connection: its device and inode when it was opened, and
/// when the last attempt to open the path again was made.
#[derive(Debug, Default)]
struct FileWatch {
    id: Option<(u64, u64)>,
    last_try: Option<Instant>,
}

/// How often, at most, the journal tries to open its path again while the path
/// names another file than the one it has open and opening fails.
const REOPEN_EVERY: Duration = Duration::from_secs(1);

/// The device and inode of the file at `path`.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// A connection to the database at `path` in WAL mode with `synchronous=FULL` and
/// foreign keys on, its schema migrated; encrypted by SQLCipher under `key`.
fn connect(path: &Path, key: Option<&keyring::Key32>) -> Result<Connection> {
    let with_path = |source| Error::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut conn = Connection::open(path).map_err(with_path)?;
    apply_key(&conn, key).map_err(|source| locked(path, key.is_some(), source))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(with_path)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), mode, "ledger database is not in WAL mode");
    }
    configure(&conn).map_err(with_path)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Gives SQLCipher the raw key (no passphrase derivation: the key is already
/// random) and reads the schema, which fails at once when the key is wrong.
pub(crate) fn apply_key(conn: &Connection, key: Option<&keyring::Key32>) -> rusqlite::Result<()> {
    if let Some(key) = key {
        // A wrong key is reported once, as `Error::Locked`; not also on stderr.
        conn.execute_batch("PRAGMA cipher_log_level = NONE;")?;
        conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", key.to_hex()))?;
    }
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
}

/// The error of a database the key does not open (or that needs one).
fn locked(path: &Path, keyed: bool, source: rusqlite::Error) -> Error {
    let not_a_db = source.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase);
    match (not_a_db, keyed) {
        (true, true) => Error::Locked {
            path: path.to_path_buf(),
            why: "the data key does not open it (another node's database, or damaged)",
        },
        (true, false) => Error::Locked {
            path: path.to_path_buf(),
            why: "it is encrypted (or not a database) and no key is configured",
        },
        _ => Error::Open {
            path: path.to_path_buf(),
            source,
        },
    }
}

impl Journal {
    /// Opens the database at `path`, creating the file, its directory and the schema
    /// as needed, in WAL mode with `synchronous=FULL` and foreign keys on.
    ///
    /// The journal keeps following `path`: when it names another file than the one
    /// open (the disk under it failed, turned read-only and was mounted again, or
    /// was replaced by a copy), the next call opens the path again, so that writes
    /// go to the disk that is there now rather than failing for ever on the gone one.
    pub fn open(path: &Path) -> Result<Self> {
        Journal::open_keyed(path, None)
    }

    /// [`Journal::open`] of a database encrypted (or to be created encrypted) by
    /// SQLCipher under `key`; `None`: plain SQLite.
    pub fn open_keyed(path: &Path, key: Option<&keyring::Key32>) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = connect(path, key)?;
        Ok(Journal {
            conn: Mutex::new(conn),
            path: Some(path.to_path_buf()),
            file: Mutex::new(FileWatch {
                id: file_id(path),
                last_try: None,
            }),
            commits: AtomicU64::new(0),
            key: key.cloned(),
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
            file: Mutex::new(FileWatch::default()),
            commits: AtomicU64::new(0),
            key: None,
        })
    }

    /// The database file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
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

    /// Runs `f` in one `IMMEDIATE` transaction (the write lock is taken before the head
    /// is read), committing if it succeeds.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        self.commits.fetch_add(1, Ordering::Release);
        Ok(value)
    }

    /// How many write transactions this handle has committed. A reader that derives
    /// a figure from the journal (this week's validated hours, read for every live
    /// snapshot) keeps it while this does not move. Writes by another process (the
    /// command line, which adds members and tokens but records no contribution)
    /// are not counted.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Acquire)
    }

    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        f(&self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held dropped its transaction, which rolled back:
        // the connection is still sound.
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(path) = &self.path {
            self.follow(path, &mut conn);
        }
        conn
    }

    /// Opens `path` again when it names another file than the one `conn` has open
    /// (a disk mounted again after it failed): the old connection's files are on a
    /// filesystem that is gone or read-only for good. A path that names nothing
    /// (the disk is not mounted yet) keeps the connection as it is; so does a
    /// failed attempt, tried again at most every [`REOPEN_EVERY`].
    fn follow(&self, path: &Path, conn: &mut Connection) {
        let mut watch = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(now) = file_id(path) else {
            return;
        };
        if watch.id == Some(now) || watch.last_try.is_some_and(|at| at.elapsed() < REOPEN_EVERY) {
            return;
        }
        watch.last_try = Some(Instant::now());
        match connect(path, self.key.as_ref()) {
            Ok(fresh) => {
                tracing::warn!(
                    path = %path.display(),
                    "the ledger database is another file now (its disk was mounted again): opened it again"
                );
                *conn = fresh;
                watch.id = file_id(path);
                // What was read from the old file may be stale.
                self.commits.fetch_add(1, Ordering::Release);
            }
            Err(e) => {
                tracing::error!(
                    path = %path.display(), error = %e,
                    "the ledger database is another file now and cannot be opened; trying again"
                );
            }
        }
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
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::entry::GENESIS_PREV_HASH;

    fn ts(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// The modules of the core, and those it imports down to the leaves, with the
    /// modules each may import: none of them reaches the rules or the dispatch.
    const CORE: &[(&str, &str, &[&str])] = &[
        (
            "journal/mod.rs",
            include_str!("mod.rs"),
            &["entry", "error", "schema"],
        ),
        (
            "journal/chain.rs",
            include_str!("chain.rs"),
            &["entry", "error"],
        ),
        (
            "journal/export.rs",
            include_str!("export.rs"),
            &["entry", "error"],
        ),
        ("entry.rs", include_str!("../entry.rs"), &[]),
        ("schema.rs", include_str!("../schema.rs"), &[]),
        (
            "error.rs",
            include_str!("../error.rs"),
            &[
                "assembly",
                "communs",
                "contributions",
                "entry",
                "members",
                "plan",
                "planning",
                "sortition",
            ],
        ),
        ("planning.rs", include_str!("../planning.rs"), &["entry"]),
        (
            "assembly.rs",
            include_str!("../assembly.rs"),
            &["entry", "plan", "sortition"],
        ),
        ("plan.rs", include_str!("../plan.rs"), &[]),
        ("communs.rs", include_str!("../communs.rs"), &[]),
        (
            "contributions.rs",
            include_str!("../contributions.rs"),
            &["communs", "entry"],
        ),
        ("members.rs", include_str!("../members.rs"), &["entry"]),
    ];

    #[test]
    fn the_core_imports_none_of_the_rules() {
        for (file, text, allowed) in CORE {
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let code_lines = code.lines().filter(|l| !l.trim_start().starts_with("//"));
            for line in code_lines {
                for (at, _) in line.match_indices("crate::") {
                    let module = line[at + "crate::".len()..]
                        .split(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                        .next()
                        .unwrap_or_default();
                    assert!(
                        allowed.contains(&module),
                        "{file} imports `{module}`, not one of {allowed:?}: {line}"
                    );
                }
            }
        }
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

    fn journal_key() -> keyring::Key32 {
        keyring::DataKey::generate()
            .unwrap()
            .subkey(keyring::Purpose::Journal)
    }

    #[test]
    fn an_encrypted_journal_opens_with_its_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        let key = journal_key();
        let journal = Journal::open_keyed(&path, Some(&key)).unwrap();
        let alice = json!({"name": "Alice-in-clear", "roles": []});
        journal
            .append(
                EntryKind::MemberJoined,
                "a",
                &alice,
                ts("2026-11-22T10:00:00Z"),
            )
            .unwrap();
        drop(journal);
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.starts_with(b"SQLite format 3"));
        let wal = std::fs::read(dir.path().join("ledger.sqlite-wal")).unwrap_or_default();
        for file in [&bytes, &wal] {
            assert!(
                !file.windows(14).any(|w| w == b"Alice-in-clear"),
                "a member's name in clear"
            );
        }
        let again = Journal::open_keyed(&path, Some(&key)).unwrap();
        assert_eq!(again.verify().unwrap().entries, 1);
        drop(again);
        let err = Journal::open(&path).unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        assert!(err.to_string().contains("no key is configured"), "{err}");
        let err = Journal::open_keyed(&path, Some(&journal_key())).unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        assert!(err.to_string().contains("does not open it"), "{err}");
    }

    #[test]
    fn a_clear_journal_still_opens_without_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        drop(Journal::open(&path).unwrap());
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(b"SQLite format 3"));
        // A key given for a clear database does not open it either: the node never
        // treats clear data as encrypted (`communalia encrypt` converts it).
        let err = Journal::open_keyed(&path, Some(&journal_key())).unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err}");
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

    /// The disk under the journal failed and was mounted again (here: the directory
    /// is swapped for another holding a copy of the database): the journal follows
    /// its path, reading and writing the file that is there now, not the gone one.
    #[test]
    fn the_journal_follows_its_path_to_a_disk_mounted_again() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let path = data.join("ledger.sqlite");
        let journal = Journal::open(&path).unwrap();
        let alice = json!({"name": "Alice", "roles": []});
        journal
            .append(
                EntryKind::MemberJoined,
                "a",
                &alice,
                ts("2026-11-22T10:00:00Z"),
            )
            .unwrap();
        // The copy the disk comes back with: what was committed, in another file.
        let copy = dir.path().join("copy");
        std::fs::create_dir_all(&copy).unwrap();
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute(
                "VACUUM INTO ?1",
                [copy.join("ledger.sqlite").to_str().unwrap()],
            )
            .unwrap();
        }
        std::fs::rename(&data, dir.path().join("gone")).unwrap();
        // Between the two mounts the path names nothing: the journal keeps what it has.
        assert_eq!(journal.head().unwrap().map(|e| e.seq), Some(1));
        std::fs::rename(&copy, &data).unwrap();
        let bob = json!({"name": "Bob", "roles": []});
        let b = journal
            .append(
                EntryKind::MemberJoined,
                "a",
                &bob,
                ts("2026-11-22T10:01:00Z"),
            )
            .unwrap();
        assert_eq!(b.seq, 2);
        drop(journal);
        // The entry went to the file at the path, after the one it held before.
        let reopened = Journal::open(&path).unwrap();
        let seqs: Vec<i64> = reopened
            .entries(0, 10)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, vec![1, 2]);
        let gone = Journal::open(&dir.path().join("gone/ledger.sqlite")).unwrap();
        assert_eq!(
            gone.head().unwrap().map(|e| e.seq),
            Some(1),
            "written to the gone file"
        );
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
