//! Accounts: what lets a person or a script act as a member (DESIGN.md §6 "Roles",
//! §8): password hashes, API tokens and browser sessions.
//!
//! Credentials are not journal entries. A member's joining is an act of the
//! community and is recorded in the journal ([`Journal::create_user`] does both);
//! a password, a token or a session says nothing about the community, must be
//! changeable and revocable, and would leak if it were chained into a record that
//! is meant to be shown and verified. They live in their own tables in the same
//! database (migration 2), are not derived from the journal, and survive
//! [`Journal::rebuild_derived`]: that is also why they name members by name and
//! carry no foreign key to `members`, which a rebuild empties and refills.
//!
//! No secret is stored as given: passwords as argon2id PHC strings (the parameters
//! travel in the string, so they can be raised later without breaking old hashes);
//! tokens and session ids as the hex SHA-256 of their text. Those are 256 random
//! bits, which a fast hash protects as well as a slow one.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use rand::{Rng, RngCore};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::entry::{format_ts, parse_canonical_ts};
use crate::error::{Error, Refusal, Result};
use crate::journal::Journal;
use crate::members::{Member, Role};
use crate::rules::members::{self, SELECT_MEMBER, joined_payload, member_from_row};

/// How long a browser session lasts from sign-in: a working day at the community
/// hall. Fixed, not sliding, so that a lookup never writes to the database.
pub const SESSION_LIFETIME: TimeDelta = TimeDelta::hours(12);

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in bytes: argon2 takes anything, but a megabyte of
/// "password" sent to the login form should cost nothing.
const MAX_PASSWORD_BYTES: usize = 1024;

/// Random bytes in an API token, a session id and a CSRF token.
const SECRET_BYTES: usize = 32;

/// A browser session just opened: `id` goes in the cookie, `csrf` in every form and
/// state-changing request made with that cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub id: String,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

/// A session found by its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveSession {
    pub member: Member,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

/// An API token as listed (the token itself is never kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: i64,
    pub member: String,
    pub label: String,
    pub created_at: DateTime<Utc>,
    /// When it stops acting, if it was made to; `None` for a token without end.
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it last opened a request, to the hour ([`TOKEN_USE_RESOLUTION`]).
    pub last_used_at: Option<DateTime<Utc>>,
}

impl TokenInfo {
    /// Whether it still acts at `now`: neither revoked nor expired.
    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|end| end > now)
    }
}

/// How stale a token's `last_used_at` may get before a use writes it again: a use
/// costs a database write at most once an hour per token.
pub const TOKEN_USE_RESOLUTION: TimeDelta = TimeDelta::hours(1);

/// What a password change ended: every session and API token of the member, so
/// that whoever held the old password, or a token made with it, is out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedOut {
    pub sessions: usize,
    pub tokens: usize,
}

impl Journal {
    /// Gives `name` a password, recording their joining with `roles` first when the
    /// journal does not know them yet (entry authored by `author`), in one
    /// transaction. Refuses a member who already has a password
    /// ([`Refusal::CredentialExists`]: use [`Journal::set_password`]), a known member
    /// whose recorded roles are not `roles` ([`Refusal::RolesDiffer`]: roles are
    /// recorded in the journal and do not change here), and a password that is too
    /// short or too long ([`Refusal::UnacceptablePassword`]).
    pub fn create_user(
        &self,
        name: &str,
        roles: &[Role],
        password: &str,
        author: &str,
        ts: DateTime<Utc>,
    ) -> Result<Member> {
        check_password_rules(password)?;
        // Hashing takes tens of milliseconds: not while holding the database.
        let hash = hash_password(password)?;
        let mut asked = roles.to_vec();
        asked.sort_unstable();
        asked.dedup();
        self.write(|tx| {
            let member = match member_nocase(tx, name)? {
                Some(member) => {
                    if has_credential(tx, &member.name)? {
                        return Err(Refusal::CredentialExists(member.name).into());
                    }
                    if member.roles != asked {
                        return Err(Refusal::RolesDiffer {
                            name: member.name,
                            recorded: member.roles,
                            asked,
                        }
                        .into());
                    }
                    member
                }
                None => {
                    let payload = joined_payload(name, &asked)?;
                    members::record(tx, author, &payload, ts)?;
                    member_nocase(tx, name)?.ok_or_else(|| Refusal::UnknownMember(name.into()))?
                }
            };
            tx.execute(
                "INSERT INTO credentials (member, password_hash, updated_at) VALUES (?1, ?2, ?3)",
                params![member.name, hash, format_ts(ts)],
            )?;
            tracing::info!(member = %member.name, "password set for a new account");
            Ok(member)
        })
    }

    /// Sets or replaces the password of a known member, and ends their sessions and
    /// revokes their API tokens, in the same transaction: whoever knew the old
    /// password, or holds a token made while it was in use, is out. Make new
    /// tokens afterwards.
    pub fn set_password(&self, name: &str, password: &str, ts: DateTime<Utc>) -> Result<SignedOut> {
        check_password_rules(password)?;
        let hash = hash_password(password)?;
        self.write(|tx| {
            let member =
                member_nocase(tx, name)?.ok_or_else(|| Refusal::UnknownMember(name.into()))?;
            tx.execute(
                "INSERT INTO credentials (member, password_hash, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (member) DO UPDATE SET
                     password_hash = excluded.password_hash, updated_at = excluded.updated_at",
                params![member.name, hash, format_ts(ts)],
            )?;
            let sessions = tx.execute("DELETE FROM sessions WHERE member = ?1", [&member.name])?;
            let tokens = tx.execute(
                "UPDATE api_tokens SET revoked_at = ?2 WHERE member = ?1 AND revoked_at IS NULL",
                params![member.name, format_ts(ts)],
            )?;
            tracing::info!(member = %member.name, sessions, tokens, "password changed; signed out everywhere");
            Ok(SignedOut { sessions, tokens })
        })
    }

    /// The member `name` (any ASCII case) if `password` is theirs. The comparison is
    /// argon2's, in constant time; an unknown name or a member without a password
    /// costs a verification too, so that the answer's timing does not tell which
    /// names exist.
    pub fn check_password(&self, name: &str, password: &str) -> Result<Option<Member>> {
        self.check_password_in(name, password, &mut PasswordMemory::default())
    }

    /// [`Journal::check_password`] in `memory`, which a caller that checks many
    /// passwords keeps between checks instead of allocating ~19 MiB for each.
    pub fn check_password_in(
        &self,
        name: &str,
        password: &str,
        memory: &mut PasswordMemory,
    ) -> Result<Option<Member>> {
        let stored = self.read(|conn| {
            let Some(member) = member_nocase(conn, name)? else {
                return Ok(None);
            };
            let hash: Option<String> = conn
                .query_row(
                    "SELECT password_hash FROM credentials WHERE member = ?1",
                    [&member.name],
                    |row| row.get(0),
                )
                .optional()?;
            Ok(hash.map(|hash| (member, hash)))
        })?;
        // Verified after the database lock is released.
        let (member, hash) = match stored {
            Some(found) => found,
            None => {
                verify_password(dummy_hash()?, password, memory);
                return Ok(None);
            }
        };
        if password.len() > MAX_PASSWORD_BYTES {
            verify_password(dummy_hash()?, "", memory);
            return Ok(None);
        }
        Ok(verify_password(&hash, password, memory).then_some(member))
    }

    /// Makes an API token acting as `member` and returns it: 64 hex digits, shown
    /// to the caller once; only its SHA-256 is kept. `label` says what it is for.
    /// It acts until `expires_at` (never ends when `None`; refused,
    /// [`Refusal::ExpiryPast`], when not after `ts`), until it is revoked, or until
    /// the member's password changes.
    pub fn create_token(
        &self,
        member: &str,
        label: &str,
        expires_at: Option<DateTime<Utc>>,
        ts: DateTime<Utc>,
    ) -> Result<String> {
        let label = label.trim();
        if label.chars().count() > 100 || label.chars().any(char::is_control) {
            return Err(Refusal::InvalidLabel(label.to_string()).into());
        }
        let ts = ts.trunc_subsecs(3);
        let expires_at = expires_at.map(|t| t.trunc_subsecs(3));
        if let Some(end) = expires_at
            && end <= ts
        {
            return Err(Refusal::ExpiryPast(end).into());
        }
        let token = random_hex();
        self.write(|tx| {
            let member =
                member_nocase(tx, member)?.ok_or_else(|| Refusal::UnknownMember(member.into()))?;
            tx.execute(
                "INSERT INTO api_tokens (token_sha256, member, label, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    sha256_hex(&token),
                    member.name,
                    label,
                    format_ts(ts),
                    expires_at.map(format_ts)
                ],
            )?;
            tracing::info!(member = %member.name, label, "API token created");
            Ok(())
        })?;
        Ok(token)
    }

    /// The member a token acts as at `now`, unless it is unknown, revoked or
    /// expired. Notes the use ([`TokenInfo::last_used_at`]) when the last one noted
    /// is more than [`TOKEN_USE_RESOLUTION`] old.
    pub fn member_for_token(&self, token: &str, now: DateTime<Utc>) -> Result<Option<Member>> {
        if !is_secret(token) {
            return Ok(None);
        }
        let digest = sha256_hex(token);
        let found = self.read(|conn| {
            let found: Option<(i64, Option<String>, Option<String>)> = conn
                .query_row(
                    "SELECT id, expires_at, last_used_at FROM api_tokens
                     WHERE token_sha256 = ?1 AND revoked_at IS NULL",
                    [&digest],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?;
            let Some((id, expires_at, last_used_at)) = found else {
                return Ok(None);
            };
            let time = |text: String| token_time(id, text);
            if expires_at
                .map(time)
                .transpose()?
                .is_some_and(|end| end <= now)
            {
                return Ok(None);
            }
            let last_used_at = last_used_at.map(time).transpose()?;
            let mut stmt = conn.prepare(&format!(
                "{SELECT_MEMBER} WHERE m.name = (SELECT member FROM api_tokens WHERE id = ?1)"
            ))?;
            let mut rows = stmt.query([id])?;
            let member = match rows.next()? {
                Some(row) => member_from_row(row)?,
                None => return Ok(None),
            };
            Ok(Some((id, last_used_at, member)))
        })?;
        let Some((id, last_used_at, member)) = found else {
            return Ok(None);
        };
        if last_used_at.is_none_or(|last| now - last >= TOKEN_USE_RESOLUTION) {
            self.write(|tx| {
                tx.execute(
                    "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1",
                    params![id, format_ts(now)],
                )?;
                Ok(())
            })?;
        }
        Ok(Some(member))
    }

    /// A member's tokens, oldest first, revoked and expired ones included.
    pub fn tokens(&self, member: &str) -> Result<Vec<TokenInfo>> {
        self.token_list(Some(member))
    }

    /// Every member's tokens, oldest first, revoked and expired ones included.
    pub fn all_tokens(&self) -> Result<Vec<TokenInfo>> {
        self.token_list(None)
    }

    fn token_list(&self, member: Option<&str>) -> Result<Vec<TokenInfo>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id, member, label, created_at, expires_at, revoked_at, last_used_at
                 FROM api_tokens WHERE ?1 IS NULL OR member = ?1 COLLATE NOCASE ORDER BY id",
            )?;
            let mut rows = stmt.query([member])?;
            let mut tokens = Vec::new();
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(0)?;
                let time = |idx: usize| -> Result<Option<DateTime<Utc>>> {
                    row.get::<_, Option<String>>(idx)?
                        .map(|text| token_time(id, text))
                        .transpose()
                };
                tokens.push(TokenInfo {
                    id,
                    member: row.get(1)?,
                    label: row.get(2)?,
                    created_at: time(3)?.ok_or_else(|| Error::CorruptAccount {
                        table: "api_tokens",
                        problem: format!("token {id} has no creation time"),
                    })?,
                    expires_at: time(4)?,
                    revoked_at: time(5)?,
                    last_used_at: time(6)?,
                });
            }
            Ok(tokens)
        })
    }

    /// Revokes a token by its id; `false` if there was no such token still valid.
    pub fn revoke_token(&self, id: i64, ts: DateTime<Utc>) -> Result<bool> {
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, format_ts(ts)],
            )?;
            Ok(changed > 0)
        })
    }

    /// Opens a session for `member`, lasting [`SESSION_LIFETIME`] from `now`. Sessions
    /// that have ended are cleared on the way.
    pub fn create_session(&self, member: &str, now: DateTime<Utc>) -> Result<NewSession> {
        let id = random_hex();
        let csrf = random_hex();
        let expires_at = now + SESSION_LIFETIME;
        self.write(|tx| {
            let member =
                member_nocase(tx, member)?.ok_or_else(|| Refusal::UnknownMember(member.into()))?;
            tx.execute(
                "DELETE FROM sessions WHERE expires_at <= ?1",
                [format_ts(now)],
            )?;
            tx.execute(
                "INSERT INTO sessions (id_sha256, member, csrf, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    sha256_hex(&id),
                    member.name,
                    csrf,
                    format_ts(now),
                    format_ts(expires_at)
                ],
            )?;
            Ok(())
        })?;
        Ok(NewSession {
            id,
            csrf,
            expires_at,
        })
    }

    /// The session with this id, if it exists and has not ended at `now`.
    pub fn session(&self, id: &str, now: DateTime<Utc>) -> Result<Option<ActiveSession>> {
        if !is_secret(id) {
            return Ok(None);
        }
        let found: Option<(String, String, String)> = self.read(|conn| {
            Ok(conn
                .query_row(
                    "SELECT member, csrf, expires_at FROM sessions
                     WHERE id_sha256 = ?1 AND expires_at > ?2",
                    params![sha256_hex(id), format_ts(now)],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?)
        })?;
        let Some((member, csrf, expires_at)) = found else {
            return Ok(None);
        };
        let expires_at = parse_canonical_ts(&expires_at).ok_or_else(|| Error::CorruptAccount {
            table: "sessions",
            problem: format!("a session of `{member}` ends at `{expires_at}`"),
        })?;
        // A member who is no longer in `members` (a rebuilt table) has no session.
        Ok(self.member(&member)?.map(|member| ActiveSession {
            member,
            csrf,
            expires_at,
        }))
    }

    /// Ends a session (signing out); `false` if there was none with this id.
    pub fn delete_session(&self, id: &str) -> Result<bool> {
        if !is_secret(id) {
            return Ok(false);
        }
        self.write(|tx| {
            let deleted = tx.execute(
                "DELETE FROM sessions WHERE id_sha256 = ?1",
                [sha256_hex(id)],
            )?;
            Ok(deleted > 0)
        })
    }
}

/// A password for a new account, to be shown once: four groups of five letters and
/// digits (about 100 bits), without the look-alikes `0 o 1 l i`.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    let mut out = String::with_capacity(23);
    for group in 0..4 {
        if group > 0 {
            out.push('-');
        }
        for _ in 0..5 {
            out.push(char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]));
        }
    }
    out
}

/// What a password must satisfy, said in words.
fn check_password_rules(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Refusal::UnacceptablePassword(format!(
            "it must have at least {MIN_PASSWORD_CHARS} characters"
        ))
        .into());
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Refusal::UnacceptablePassword(format!(
            "it must not be longer than {MAX_PASSWORD_BYTES} bytes"
        ))
        .into());
    }
    Ok(())
}

/// argon2id with the crate's default parameters (19 MiB, 2 passes, 1 lane: the
/// OWASP recommendation), as a PHC string.
fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::PasswordHash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::PasswordHash(e.to_string()))
}

/// Whether `password` matches a stored PHC string; a string that does not parse
/// matches nothing (and is logged: it means the table was edited by hand).
fn verify_password(phc: &str, password: &str, memory: &mut PasswordMemory) -> bool {
    let hash = match PasswordHash::new(phc) {
        Ok(hash) => hash,
        Err(error) => {
            tracing::error!(%error, "a stored password hash does not parse");
            return false;
        }
    };
    // What `PasswordVerifier::verify_password` does, in the caller's memory.
    let computed = (|| -> Result<bool, argon2::password_hash::Error> {
        let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
            return Ok(false);
        };
        let params = argon2::Params::try_from(&hash)?;
        let algorithm = argon2::Algorithm::try_from(hash.algorithm)?;
        let version = hash
            .version
            .map(argon2::Version::try_from)
            .transpose()?
            .unwrap_or_default();
        let blocks = params.block_count();
        let mut salt_bytes = [0u8; 64];
        let salt = salt.decode_b64(&mut salt_bytes)?;
        let mut out = vec![0u8; expected.len()];
        if memory.0.len() < blocks {
            memory.0.resize(blocks, argon2::Block::default());
        }
        Argon2::new(algorithm, version, params).hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut out,
            &mut memory.0[..blocks],
        )?;
        // `Output`'s comparison takes constant time.
        Ok(argon2::password_hash::Output::new(&out)? == *expected)
    })();
    match computed {
        Ok(matches) => matches,
        Err(error) => {
            tracing::error!(%error, "a stored password hash cannot be checked");
            false
        }
    }
}

/// The memory an argon2 check works in (~19 MiB with the parameters passwords are
/// hashed with), kept by a caller between checks: allocating it anew for each
/// check leaves the allocator holding more and more of it.
#[derive(Default)]
pub struct PasswordMemory(Vec<argon2::Block>);

impl std::fmt::Debug for PasswordMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PasswordMemory({} blocks)", self.0.len())
    }
}

/// A hash of nothing anyone knows, verified against when there is no account, so
/// that a failed sign-in costs the same whether or not the name exists.
fn dummy_hash() -> Result<&'static str> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(hash) = DUMMY.get() {
        return Ok(hash);
    }
    let hash = hash_password(&random_hex())?;
    Ok(DUMMY.get_or_init(|| hash))
}

/// A member by name regardless of ASCII case (names are unique that way).
fn member_nocase(conn: &Connection, name: &str) -> Result<Option<Member>> {
    let mut stmt = conn.prepare(&format!("{SELECT_MEMBER} WHERE m.name = ?1 COLLATE NOCASE"))?;
    let mut rows = stmt.query([name])?;
    match rows.next()? {
        Some(row) => member_from_row(row).map(Some),
        None => Ok(None),
    }
}

fn has_credential(conn: &Connection, member: &str) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM credentials WHERE member = ?1)",
        [member],
        |row| row.get(0),
    )?)
}

/// 32 random bytes as 64 lowercase hex digits.
fn random_hex() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Whether a text can be a token or session id at all: 64 lowercase hex digits.
fn is_secret(text: &str) -> bool {
    text.len() == SECRET_BYTES * 2 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A time of the `api_tokens` table, which this program writes in the journal's
/// form.
fn token_time(id: i64, text: String) -> Result<DateTime<Utc>> {
    parse_canonical_ts(&text).ok_or_else(|| Error::CorruptAccount {
        table: "api_tokens",
        problem: format!("token {id} has the time `{text}`"),
    })
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::entry::EntryKind;
    use crate::members::COMMAND_LINE_AUTHOR;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn now() -> DateTime<Utc> {
        at("2026-11-22T10:00:00Z")
    }

    fn journal_with_alice() -> Journal {
        let journal = Journal::open_in_memory().unwrap();
        journal
            .create_user(
                "Alice",
                &[Role::Assembly, Role::Resident],
                "correct horse",
                COMMAND_LINE_AUTHOR,
                now(),
            )
            .unwrap();
        journal
    }

    #[test]
    fn checks_reusing_one_memory_still_tell_right_from_wrong() {
        let journal = journal_with_alice();
        let mut memory = PasswordMemory::default();
        let check = |password: &str, memory: &mut PasswordMemory| {
            journal
                .check_password_in("Alice", password, memory)
                .unwrap()
                .is_some()
        };
        assert!(check("correct horse", &mut memory));
        // ~19 MiB: m = 19456 KiB as argon2's defaults (the OWASP recommendation).
        assert_eq!(memory.0.len(), 19_456);
        assert!(!check("correct horsf", &mut memory));
        assert!(check("correct horse", &mut memory));
        assert!(
            journal
                .check_password_in("Nobody", "correct horse", &mut memory)
                .unwrap()
                .is_none()
        );
        assert!(check("correct horse", &mut memory));
    }

    #[test]
    fn a_new_user_joins_in_the_journal_and_can_sign_in() {
        let journal = journal_with_alice();
        let head = journal.head().unwrap().unwrap();
        assert_eq!(head.kind, EntryKind::MemberJoined);
        assert_eq!(head.author, COMMAND_LINE_AUTHOR);
        assert_eq!(
            head.payload,
            serde_json::json!({"name": "Alice", "roles": ["resident", "assembly"]})
        );
        let member = journal.check_password("Alice", "correct horse").unwrap();
        assert_eq!(member.as_ref().map(|m| m.name.as_str()), Some("Alice"));
        assert_eq!(member.unwrap().roles, vec![Role::Resident, Role::Assembly]);
        // Names are matched regardless of ASCII case, passwords exactly.
        assert!(
            journal
                .check_password("alice", "correct horse")
                .unwrap()
                .is_some()
        );
        assert!(
            journal
                .check_password("Alice", "Correct horse")
                .unwrap()
                .is_none()
        );
        assert!(
            journal
                .check_password("Bob", "correct horse")
                .unwrap()
                .is_none()
        );
        assert!(journal.verify().unwrap().is_intact());
    }

    #[test]
    fn the_password_is_stored_as_an_argon2id_phc_string() {
        let journal = journal_with_alice();
        let stored: String = journal
            .read(|conn| {
                Ok(conn.query_row("SELECT password_hash FROM credentials", [], |r| r.get(0))?)
            })
            .unwrap();
        assert!(stored.starts_with("$argon2id$v=19$"), "{stored}");
        assert!(!stored.contains("correct horse"));
    }

    #[test]
    fn an_existing_credential_is_refused_and_set_password_replaces_it() {
        let journal = journal_with_alice();
        let err = journal
            .create_user(
                "alice",
                &[Role::Resident, Role::Assembly],
                "another one",
                "x",
                now(),
            )
            .unwrap_err();
        assert!(
            matches!(err, Error::Refused(Refusal::CredentialExists(ref n)) if n == "Alice"),
            "{err}"
        );
        let session = journal.create_session("Alice", now()).unwrap();
        journal
            .set_password("Alice", "a new secret", now())
            .unwrap();
        assert!(
            journal
                .check_password("Alice", "correct horse")
                .unwrap()
                .is_none()
        );
        assert!(
            journal
                .check_password("Alice", "a new secret")
                .unwrap()
                .is_some()
        );
        // Changing the password signs out everywhere.
        assert!(journal.session(&session.id, now()).unwrap().is_none());
        let err = journal
            .set_password("Nobody", "whatever1", now())
            .unwrap_err();
        assert!(
            matches!(err, Error::Refused(Refusal::UnknownMember(_))),
            "{err}"
        );
    }

    #[test]
    fn a_member_from_the_configuration_gets_a_password_if_the_roles_agree() {
        let journal = Journal::open_in_memory().unwrap();
        journal
            .add_member("Bo", &[Role::Installer], "config", now())
            .unwrap();
        let err = journal
            .create_user(
                "Bo",
                &[Role::Admin],
                "bo's secret",
                COMMAND_LINE_AUTHOR,
                now(),
            )
            .unwrap_err();
        assert!(
            matches!(err, Error::Refused(Refusal::RolesDiffer { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("installer"), "{err}");
        let bo = journal
            .create_user(
                "Bo",
                &[Role::Installer],
                "bo's secret",
                COMMAND_LINE_AUTHOR,
                now(),
            )
            .unwrap();
        assert_eq!(bo.joined_seq, 1);
        assert_eq!(journal.head().unwrap().map(|e| e.seq), Some(1));
    }

    #[test]
    fn passwords_too_short_and_bad_names_record_nothing() {
        let journal = Journal::open_in_memory().unwrap();
        let err = journal
            .create_user("Carol", &[Role::Resident], "short", "x", now())
            .unwrap_err();
        assert!(
            matches!(err, Error::Refused(Refusal::UnacceptablePassword(_))),
            "{err}"
        );
        assert!(err.to_string().contains("at least 8 characters"), "{err}");
        let err = journal
            .create_user(" Carol", &[Role::Resident], "long enough", "x", now())
            .unwrap_err();
        assert!(
            matches!(err, Error::Refused(Refusal::InvalidMemberName { .. })),
            "{err}"
        );
        assert!(journal.head().unwrap().is_none());
        let count: i64 = journal
            .read(|c| Ok(c.query_row("SELECT count(*) FROM credentials", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(count, 0);
    }

    #[test]
    fn tokens_act_as_their_member_until_revoked() {
        let journal = journal_with_alice();
        let token = journal
            .create_token("alice", "backup script", None, now())
            .unwrap();
        assert!(is_secret(&token), "{token}");
        let member = journal.member_for_token(&token, now()).unwrap().unwrap();
        assert_eq!(member.name, "Alice");
        // Only the hash is stored.
        let stored: String = journal
            .read(|c| Ok(c.query_row("SELECT token_sha256 FROM api_tokens", [], |r| r.get(0))?))
            .unwrap();
        assert_ne!(stored, token);
        assert_eq!(stored, sha256_hex(&token));
        for wrong in ["", "nope", &token.to_uppercase(), &"0".repeat(64)] {
            assert!(
                journal.member_for_token(wrong, now()).unwrap().is_none(),
                "{wrong}"
            );
        }
        let listed = journal.tokens("Alice").unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].label, "backup script");
        assert!(journal.revoke_token(listed[0].id, now()).unwrap());
        assert!(!journal.revoke_token(listed[0].id, now()).unwrap());
        assert!(journal.member_for_token(&token, now()).unwrap().is_none());
        assert_eq!(journal.tokens("Alice").unwrap()[0].revoked_at, Some(now()));
        let err = journal.create_token("Nobody", "", None, now()).unwrap_err();
        assert!(
            matches!(err, Error::Refused(Refusal::UnknownMember(_))),
            "{err}"
        );
    }

    #[test]
    fn an_expired_token_acts_no_more() {
        let journal = journal_with_alice();
        let end = now() + TimeDelta::days(90);
        let token = journal
            .create_token("Alice", "quarterly report", Some(end), now())
            .unwrap();
        let just_before = end - TimeDelta::milliseconds(1);
        assert!(
            journal
                .member_for_token(&token, just_before)
                .unwrap()
                .is_some()
        );
        assert!(journal.member_for_token(&token, end).unwrap().is_none());
        let listed = &journal.tokens("Alice").unwrap()[0];
        assert_eq!(listed.expires_at, Some(end));
        assert!(listed.is_valid_at(just_before) && !listed.is_valid_at(end));
        // An end that is already past is refused: it would make a dead token.
        let err = journal
            .create_token("Alice", "", Some(now()), now())
            .unwrap_err();
        assert_eq!(err.refusal(), Some(&Refusal::ExpiryPast(now())));
    }

    #[test]
    fn a_password_change_revokes_every_token_and_session() {
        let journal = journal_with_alice();
        let tokens = [
            journal.create_token("Alice", "a", None, now()).unwrap(),
            journal.create_token("Alice", "b", None, now()).unwrap(),
        ];
        let revoked_before = journal.create_token("Alice", "c", None, now()).unwrap();
        let id = journal.tokens("Alice").unwrap()[2].id;
        journal.revoke_token(id, now()).unwrap();
        journal.create_session("Alice", now()).unwrap();
        let later = now() + TimeDelta::days(1);
        let signed_out = journal
            .set_password("alice", "a new secret", later)
            .unwrap();
        assert_eq!(
            signed_out,
            SignedOut {
                sessions: 1,
                tokens: 2
            }
        );
        for token in tokens.iter().chain([&revoked_before]) {
            assert!(journal.member_for_token(token, later).unwrap().is_none());
        }
        let listed = journal.tokens("Alice").unwrap();
        assert_eq!(listed[0].revoked_at, Some(later));
        assert_eq!(
            listed[2].revoked_at,
            Some(now()),
            "revoked earlier, kept so"
        );
        // A token made afterwards acts.
        let fresh = journal.create_token("Alice", "new", None, later).unwrap();
        assert!(journal.member_for_token(&fresh, later).unwrap().is_some());
    }

    #[test]
    fn a_use_is_noted_at_most_once_an_hour() {
        let journal = journal_with_alice();
        let token = journal.create_token("Alice", "", None, now()).unwrap();
        assert_eq!(journal.tokens("Alice").unwrap()[0].last_used_at, None);
        journal.member_for_token(&token, now()).unwrap();
        let minutes = |m| now() + TimeDelta::minutes(m);
        journal.member_for_token(&token, minutes(59)).unwrap();
        assert_eq!(
            journal.tokens("Alice").unwrap()[0].last_used_at,
            Some(now())
        );
        journal.member_for_token(&token, minutes(60)).unwrap();
        assert_eq!(
            journal.tokens("Alice").unwrap()[0].last_used_at,
            Some(minutes(60))
        );
        // Every member's tokens, in the order they were made.
        journal
            .create_user("Bob", &[Role::Resident], "bob's secret", "x", now())
            .unwrap();
        journal.create_token("Bob", "", None, now()).unwrap();
        let all: Vec<String> = journal
            .all_tokens()
            .unwrap()
            .into_iter()
            .map(|t| t.member)
            .collect();
        assert_eq!(all, ["Alice", "Bob"]);
    }

    #[test]
    fn sessions_last_twelve_hours_and_end_on_sign_out() {
        let journal = journal_with_alice();
        let s = journal.create_session("Alice", now()).unwrap();
        assert_ne!(s.id, s.csrf);
        assert_eq!(s.expires_at, now() + TimeDelta::hours(12));
        let found = journal.session(&s.id, now()).unwrap().unwrap();
        assert_eq!(found.member.name, "Alice");
        assert_eq!(found.csrf, s.csrf);
        let later = now() + TimeDelta::hours(11) + TimeDelta::minutes(59);
        assert!(journal.session(&s.id, later).unwrap().is_some());
        assert!(
            journal
                .session(&s.id, now() + SESSION_LIFETIME)
                .unwrap()
                .is_none()
        );
        assert!(journal.session("garbage", now()).unwrap().is_none());
        assert!(journal.delete_session(&s.id).unwrap());
        assert!(journal.session(&s.id, now()).unwrap().is_none());
        assert!(!journal.delete_session(&s.id).unwrap());
    }

    #[test]
    fn ended_sessions_are_cleared_when_a_new_one_opens() {
        let journal = journal_with_alice();
        journal.create_session("Alice", now()).unwrap();
        journal
            .create_session("Alice", now() + TimeDelta::hours(13))
            .unwrap();
        let count: i64 = journal
            .read(|c| Ok(c.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(count, 1);
    }

    #[test]
    fn accounts_survive_a_reopen_and_a_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        let (token, session) = {
            let journal = Journal::open(&path).unwrap();
            journal
                .create_user("Alice", &[Role::Admin], "correct horse", "x", now())
                .unwrap();
            (
                journal.create_token("Alice", "", None, now()).unwrap(),
                journal.create_session("Alice", now()).unwrap(),
            )
        };
        let journal = Journal::open(&path).unwrap();
        assert_eq!(journal.rebuild_derived().unwrap(), 1);
        assert!(
            journal
                .check_password("Alice", "correct horse")
                .unwrap()
                .is_some()
        );
        assert!(journal.member_for_token(&token, now()).unwrap().is_some());
        assert!(journal.session(&session.id, now()).unwrap().is_some());
        assert!(journal.verify().unwrap().is_intact());
    }

    #[test]
    fn generated_passwords_are_accepted_and_differ() {
        let a = generate_password();
        let b = generate_password();
        assert_ne!(a, b);
        assert_eq!(a.len(), 23);
        assert!(check_password_rules(&a).is_ok());
    }
}
