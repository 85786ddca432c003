//! A household's consent to share its meters' readings (DESIGN.md §10), the
//! erasures of its readings, and the log of reads made under a grant.
//!
//! Entries (`consent_granted`, `consent_revoked`, `household_readings_erased`,
//! `household_erasure_requested`): the
//! journal does not hold the site's households (they are in the configuration, like
//! the services a plan may name), so each entry carries the members the household
//! had when it was written (`household_members`), and the typed calls take them from
//! the caller, who reads the configuration. The rule every replay checks is then:
//! the author is one of those members, each of them a member of the journal; a
//! revocation names a grant of the same household not revoked yet. As for plans,
//! [`Journal::append`] refuses these kinds ([`Refusal::TypedCallOnly`]).
//!
//! The state (the grants, and who revoked them) is rebuilt from these entries, which
//! are few, each time it is needed, by the same `apply` that [`Journal::verify`]'s
//! replay runs; no derived table holds it.
//!
//! The access log (`consent_access_log`) is kept beside the journal, not in it: a
//! read is not an act of the community but a fact the household is owed, and reads
//! are frequent (every page of a history). The household sees its log on `/me`;
//! what protects it is that only the node writes it, on the path every granted read
//! takes. Being outside the hash chain, it is not tamper-evident against whoever
//! holds the data directory, who could read the history directly anyway.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::entry::{Entry, EntryKind, format_ts, parse_canonical_ts};
use crate::error::{Refusal, Result};
use crate::journal::chain::{append, check_author};
use crate::journal::{Journal, SELECT_ENTRY, entry_from_row};
use crate::members::Role;
use crate::rules::state::{decode, encode};

/// Longest purpose of a grant, in characters.
pub const MAX_PURPOSE_CHARS: usize = 200;

/// The kinds this module records, as SQL.
const KINDS_SQL: &str = "('consent_granted', 'consent_revoked', 'household_readings_erased', \
                         'household_erasure_requested')";

/// How finely a grantee sees a household's readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Granularity {
    /// Only counted in the community's totals: no row of its own (the default for
    /// everyone outside the household, written down as a grant for clarity).
    #[serde(rename = "aggregate")]
    Aggregate,
    /// One row per day, device and metric.
    #[serde(rename = "daily")]
    Daily,
    /// One row per quarter hour, device and metric.
    #[serde(rename = "15min")]
    FifteenMinutes,
    /// Every reading as recorded.
    #[serde(rename = "raw")]
    Raw,
}

impl Granularity {
    pub const ALL: [Granularity; 4] = [
        Granularity::Aggregate,
        Granularity::Daily,
        Granularity::FifteenMinutes,
        Granularity::Raw,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Aggregate => "aggregate",
            Granularity::Daily => "daily",
            Granularity::FifteenMinutes => "15min",
            Granularity::Raw => "raw",
        }
    }
}

impl FromStr for Granularity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Granularity::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| format!("granularity is aggregate, daily, 15min or raw, not {s:?}"))
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a grant lets read: `member:<name>`, `role:<role>`, or `federation:<node id>`
/// (reserved: a federation peer, refused until the federation can carry it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grantee {
    Member(String),
    Role(Role),
    Federation(String),
}

impl Grantee {
    /// Whether a reader who is `member` with `roles` is this grantee.
    pub fn covers(&self, member: &str, roles: &[Role]) -> bool {
        match self {
            Grantee::Member(name) => name == member,
            Grantee::Role(role) => roles.contains(role),
            Grantee::Federation(_) => false,
        }
    }
}

impl fmt::Display for Grantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grantee::Member(name) => write!(f, "member:{name}"),
            Grantee::Role(role) => write!(f, "role:{role}"),
            Grantee::Federation(node) => write!(f, "federation:{node}"),
        }
    }
}

impl FromStr for Grantee {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("a grantee is member:<name>, role:<role> or federation:<node id>, not {s:?}")
        };
        let (kind, name) = s.split_once(':').ok_or_else(bad)?;
        if name.trim().is_empty() || name.trim() != name {
            return Err(bad());
        }
        match kind {
            "member" => Ok(Grantee::Member(name.to_string())),
            "role" => name.parse().map(Grantee::Role).map_err(|_| {
                format!("`{name}` is not a role: resident, assembly, installer or admin")
            }),
            "federation" => Ok(Grantee::Federation(name.to_string())),
            _ => Err(bad()),
        }
    }
}

impl Serialize for Grantee {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Grantee {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A grant as a household member asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    pub household: String,
    /// The household's members as the site's configuration lists them now.
    pub household_members: Vec<String>,
    pub grantee: Grantee,
    pub granularity: Granularity,
    pub purpose: String,
    #[serde(with = "crate::entry::ts_millis")]
    pub starts: DateTime<Utc>,
    #[serde(with = "crate::entry::ts_millis")]
    pub expires: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Revoked {
    grant: i64,
    household: String,
    household_members: Vec<String>,
}

/// An erasure of a household's readings, as recorded: never the readings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Erasure {
    pub household: String,
    pub household_members: Vec<String>,
    pub meters: Vec<String>,
    #[serde(with = "crate::entry::ts_millis")]
    pub from: DateTime<Utc>,
    #[serde(with = "crate::entry::ts_millis")]
    pub to: DateTime<Utc>,
    /// How many rows were removed.
    pub rows: u64,
    /// The `household_erasure_requested` entry this erasure carried out, when a
    /// member asked for it from `/me` (absent from erasures made at the command
    /// line, and from every entry written before requests existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<i64>,
}

/// A household member's request that its readings be erased: what will be
/// erased, recorded before it is done (the node does it with its history closed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureRequest {
    pub household: String,
    pub household_members: Vec<String>,
    pub meters: Vec<String>,
    #[serde(with = "crate::entry::ts_millis")]
    pub from: DateTime<Utc>,
    #[serde(with = "crate::entry::ts_millis")]
    pub to: DateTime<Utc>,
}

/// A recorded request: the entry's seq (the request's id), author and time, what
/// it asks, and the erasure that carried it out once there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedErasureRequest {
    pub seq: i64,
    pub by: String,
    #[serde(with = "crate::entry::ts_millis")]
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub request: ErasureRequest,
    /// The `household_readings_erased` entry that carried it out; `None` while
    /// pending.
    pub done_by_entry: Option<i64>,
}

/// A recorded erasure: the entry's seq, author and time with what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedErasure {
    pub seq: i64,
    pub by: String,
    #[serde(with = "crate::entry::ts_millis")]
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub erasure: Erasure,
}

/// A grant as the journal holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// The `consent_granted` entry: the grant's id.
    pub seq: i64,
    pub household: String,
    pub grantee: Grantee,
    pub granularity: Granularity,
    pub purpose: String,
    #[serde(with = "crate::entry::ts_millis")]
    pub starts: DateTime<Utc>,
    #[serde(with = "crate::entry::ts_millis")]
    pub expires: DateTime<Utc>,
    pub granted_by: String,
    #[serde(with = "crate::entry::ts_millis")]
    pub granted_at: DateTime<Utc>,
    pub revoked_by: Option<String>,
    #[serde(serialize_with = "crate::entry::ts_millis::option::serialize")]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Grant {
    /// Whether the grant lets its grantee read at `at`: started, not expired, not
    /// revoked.
    pub fn is_live(&self, at: DateTime<Utc>) -> bool {
        self.starts <= at && at < self.expires && self.revoked_at.is_none_or(|r| at < r)
    }
}

/// Every grant and erasure, from the consent entries.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConsentState {
    grants: BTreeMap<i64, Grant>,
    erasures: Vec<RecordedErasure>,
    requests: BTreeMap<i64, RecordedErasureRequest>,
}

fn rule(text: String) -> crate::error::Error {
    Refusal::ConsentRule(text).into()
}

/// The checks every consent entry shares: a household id, members who are members
/// of the journal, and an author among them.
fn check_household(
    household: &str,
    members: &[String],
    author: &str,
    is_member: &dyn Fn(&str) -> bool,
) -> Result<()> {
    if household.trim().is_empty() || household.chars().count() > 100 {
        return Err(rule("a household id is 1 to 100 characters".into()));
    }
    if members.is_empty() {
        return Err(rule(format!("household `{household}` lists no member")));
    }
    if let Some(unknown) = members.iter().find(|m| !is_member(m)) {
        return Err(Refusal::UnknownMember(unknown.clone()).into());
    }
    if !members.iter().any(|m| m == author) {
        return Err(Refusal::NotOfHousehold {
            member: author.to_string(),
            household: household.to_string(),
        }
        .into());
    }
    Ok(())
}

impl ConsentState {
    /// The state from every consent entry of the journal.
    pub(crate) fn load(conn: &Connection) -> Result<Self> {
        let members = member_names(conn)?;
        let mut state = ConsentState::default();
        let mut stmt = conn.prepare(&format!(
            "{SELECT_ENTRY} WHERE kind IN {KINDS_SQL} ORDER BY seq"
        ))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let entry = entry_from_row(row)?;
            state
                .apply(&entry, &|name| members.contains(name))
                .map_err(|e| crate::error::Error::Corrupt {
                    seq: entry.seq,
                    problem: e.to_string(),
                })?;
        }
        Ok(state)
    }

    /// Applies one consent entry, refusing it as the write path would have. Other
    /// kinds change nothing.
    pub(crate) fn apply(&mut self, entry: &Entry, is_member: &dyn Fn(&str) -> bool) -> Result<()> {
        match entry.kind {
            EntryKind::ConsentGranted => {
                let grant: NewGrant = decode(entry.kind, &entry.payload)?;
                check_household(
                    &grant.household,
                    &grant.household_members,
                    &entry.author,
                    is_member,
                )?;
                match &grant.grantee {
                    Grantee::Member(name) if !is_member(name) => {
                        return Err(Refusal::UnknownMember(name.clone()).into());
                    }
                    Grantee::Federation(node) => {
                        return Err(rule(format!(
                            "`federation:{node}`: grants to a federation peer are reserved and \
                             not yet carried by the federation"
                        )));
                    }
                    _ => {}
                }
                let chars = grant.purpose.trim().chars().count();
                if chars == 0 || chars > MAX_PURPOSE_CHARS {
                    return Err(rule(format!(
                        "the purpose says what the readings are for, in 1 to \
                         {MAX_PURPOSE_CHARS} characters"
                    )));
                }
                if grant.expires <= grant.starts {
                    return Err(rule(format!(
                        "the grant expires ({}) before it starts ({})",
                        format_ts(grant.expires),
                        format_ts(grant.starts)
                    )));
                }
                self.grants.insert(
                    entry.seq,
                    Grant {
                        seq: entry.seq,
                        household: grant.household,
                        grantee: grant.grantee,
                        granularity: grant.granularity,
                        purpose: grant.purpose,
                        starts: grant.starts,
                        expires: grant.expires,
                        granted_by: entry.author.clone(),
                        granted_at: entry.ts,
                        revoked_by: None,
                        revoked_at: None,
                    },
                );
                Ok(())
            }
            EntryKind::ConsentRevoked => {
                let revoked: Revoked = decode(entry.kind, &entry.payload)?;
                check_household(
                    &revoked.household,
                    &revoked.household_members,
                    &entry.author,
                    is_member,
                )?;
                let grant = self
                    .grants
                    .get_mut(&revoked.grant)
                    .ok_or(Refusal::NoSuchGrant(revoked.grant))?;
                if grant.household != revoked.household {
                    // Told apart from a missing grant only to its own household.
                    return Err(Refusal::NoSuchGrant(revoked.grant).into());
                }
                if grant.revoked_at.is_some() {
                    return Err(rule(format!("grant {} was already revoked", revoked.grant)));
                }
                grant.revoked_by = Some(entry.author.clone());
                grant.revoked_at = Some(entry.ts);
                Ok(())
            }
            EntryKind::HouseholdReadingsErased => {
                let erasure: Erasure = decode(entry.kind, &entry.payload)?;
                check_household(
                    &erasure.household,
                    &erasure.household_members,
                    &entry.author,
                    is_member,
                )?;
                if erasure.meters.is_empty() {
                    return Err(rule("an erasure names the meters it erased".into()));
                }
                if erasure.to <= erasure.from {
                    return Err(rule("an erasure's `from` comes before its `to`".into()));
                }
                if let Some(id) = erasure.request {
                    let request = self
                        .requests
                        .get_mut(&id)
                        .filter(|r| r.request.household == erasure.household)
                        .ok_or_else(|| {
                            rule(format!(
                                "entry {id} is no erasure request of household `{}`",
                                erasure.household
                            ))
                        })?;
                    if let Some(done) = request.done_by_entry {
                        return Err(rule(format!(
                            "erasure request {id} was already carried out (entry {done})"
                        )));
                    }
                    if request.request.meters != erasure.meters
                        || request.request.from != erasure.from
                        || request.request.to != erasure.to
                    {
                        return Err(rule(format!(
                            "the erasure does not erase what request {id} asked \
                             (meters and period)"
                        )));
                    }
                    request.done_by_entry = Some(entry.seq);
                }
                self.erasures.push(RecordedErasure {
                    seq: entry.seq,
                    by: entry.author.clone(),
                    at: entry.ts,
                    erasure,
                });
                Ok(())
            }
            EntryKind::HouseholdErasureRequested => {
                let request: ErasureRequest = decode(entry.kind, &entry.payload)?;
                check_household(
                    &request.household,
                    &request.household_members,
                    &entry.author,
                    is_member,
                )?;
                if request.meters.is_empty() {
                    return Err(rule("an erasure request names the meters to erase".into()));
                }
                if request.to <= request.from {
                    return Err(rule(
                        "an erasure request's `from` comes before its `to`".into(),
                    ));
                }
                if let Some(pending) = self
                    .requests
                    .values()
                    .find(|r| r.request.household == request.household && r.done_by_entry.is_none())
                {
                    return Err(rule(format!(
                        "household `{}` already asked for its readings to be erased \
                         (request {}, by {}); it is carried out at the node's next start",
                        request.household, pending.seq, pending.by
                    )));
                }
                self.requests.insert(
                    entry.seq,
                    RecordedErasureRequest {
                        seq: entry.seq,
                        by: entry.author.clone(),
                        at: entry.ts,
                        request,
                        done_by_entry: None,
                    },
                );
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn member_names(conn: &Connection) -> Result<BTreeSet<String>> {
    let mut stmt = conn.prepare("SELECT name FROM members")?;
    let names = stmt
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<BTreeSet<String>>>()?;
    Ok(names)
}

/// Appends a consent entry whose payload was built here, and applies it to the
/// state loaded from the journal: refused (and rolled back) when it breaks a rule.
fn record_payload(
    tx: &Connection,
    kind: EntryKind,
    author: &str,
    payload: &Value,
    ts: DateTime<Utc>,
) -> Result<Entry> {
    check_author(author)?;
    let mut state = ConsentState::load(tx)?;
    let members = member_names(tx)?;
    let entry = append(tx, kind, author, payload, ts)?;
    state.apply(&entry, &|name| members.contains(name))?;
    apply_row(tx, &entry)?;
    Ok(entry)
}

/// The `consent_entries` row of a consent entry.
pub(crate) fn apply_row(tx: &Connection, entry: &Entry) -> Result<()> {
    tx.execute(
        "INSERT INTO consent_entries (seq, kind) VALUES (?1, ?2)",
        params![entry.seq, entry.kind.as_str()],
    )?;
    Ok(())
}

/// One read of a household's readings under a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessRecord {
    #[serde(with = "crate::entry::ts_millis")]
    pub at: DateTime<Utc>,
    pub household: String,
    /// The grant the read was made under.
    pub grant: i64,
    /// Who read.
    pub reader: String,
    /// What was read: the route or query path (`/api/export`, `sql`, ...).
    pub what: String,
    /// The household's meters the read could include.
    pub meters: Vec<String>,
    #[serde(serialize_with = "crate::entry::ts_millis::option::serialize")]
    pub from: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::entry::ts_millis::option::serialize")]
    pub to: Option<DateTime<Utc>>,
}

/// Most rows of the access log [`Journal::access_log`] returns.
pub const ACCESS_LOG_PAGE: usize = 500;

impl Journal {
    /// Encodes `payload` as an entry of `kind` and records it (see [`record_payload`]).
    fn record_consent<T: Serialize>(
        &self,
        kind: EntryKind,
        author: &str,
        payload: &T,
        ts: DateTime<Utc>,
    ) -> Result<Entry> {
        let payload = encode(kind, payload)?;
        self.write(|tx| record_payload(tx, kind, author, &payload, ts))
    }

    /// Records a grant by `author`, who must be one of `grant.household_members`
    /// (the household's members as the configuration lists them).
    pub fn grant_consent(
        &self,
        author: &str,
        grant: &NewGrant,
        ts: DateTime<Utc>,
    ) -> Result<Entry> {
        self.record_consent(EntryKind::ConsentGranted, author, grant, ts)
    }

    /// Revokes grant `grant` of `household` for `author`, one of
    /// `household_members`.
    pub fn revoke_consent(
        &self,
        author: &str,
        grant: i64,
        household: &str,
        household_members: &[String],
        ts: DateTime<Utc>,
    ) -> Result<Entry> {
        let revoked = Revoked {
            grant,
            household: household.to_string(),
            household_members: household_members.to_vec(),
        };
        self.record_consent(EntryKind::ConsentRevoked, author, &revoked, ts)
    }

    /// Records that `author` erased readings of a household (the erasure, never the
    /// readings).
    pub fn record_erasure(
        &self,
        author: &str,
        erasure: &Erasure,
        ts: DateTime<Utc>,
    ) -> Result<Entry> {
        self.record_consent(EntryKind::HouseholdReadingsErased, author, erasure, ts)
    }

    /// Records that `author`, a member of the household, asks for its readings to be
    /// erased; refused while an earlier request of the household is pending.
    pub fn request_erasure(
        &self,
        author: &str,
        request: &ErasureRequest,
        ts: DateTime<Utc>,
    ) -> Result<Entry> {
        self.record_consent(EntryKind::HouseholdErasureRequested, author, request, ts)
    }

    /// The erasure requests of `household` (every household when `None`), oldest
    /// first, carried out or not.
    pub fn erasure_requests(&self, household: Option<&str>) -> Result<Vec<RecordedErasureRequest>> {
        self.read(|conn| {
            Ok(ConsentState::load(conn)?
                .requests
                .into_values()
                .filter(|r| household.is_none_or(|h| r.request.household == h))
                .collect())
        })
    }

    /// Every grant, oldest first, revoked and expired ones too.
    pub fn consent_grants(&self) -> Result<Vec<Grant>> {
        self.read(|conn| Ok(ConsentState::load(conn)?.grants.into_values().collect()))
    }

    /// The erasures of `household`'s readings, oldest first.
    pub fn erasures(&self, household: &str) -> Result<Vec<RecordedErasure>> {
        self.read(|conn| {
            Ok(ConsentState::load(conn)?
                .erasures
                .into_iter()
                .filter(|e| e.erasure.household == household)
                .collect())
        })
    }

    /// Appends reads under grants to the access log.
    pub fn log_access(&self, records: &[AccessRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            for r in records {
                tx.execute(
                    "INSERT INTO consent_access_log
                        (at, household, grant_seq, reader, what, meters, range_from, range_to)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        format_ts(r.at),
                        r.household,
                        r.grant,
                        r.reader,
                        r.what,
                        r.meters.join(","),
                        r.from.map(format_ts),
                        r.to.map(format_ts),
                    ],
                )?;
            }
            Ok(())
        })
    }

    /// The latest reads of `household`'s readings under a grant, newest first (at
    /// most [`ACCESS_LOG_PAGE`]).
    pub fn access_log(&self, household: &str) -> Result<Vec<AccessRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT at, household, grant_seq, reader, what, meters, range_from, range_to
                 FROM consent_access_log WHERE household = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![household, ACCESS_LOG_PAGE as i64], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, Option<String>>(6)?,
                    row.get::<_, Option<String>>(7)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (at, household, grant, reader, what, meters, from, to) = row?;
                let time = |s: &str| {
                    parse_canonical_ts(s).ok_or_else(|| crate::error::Error::Corrupt {
                        seq: grant,
                        problem: format!("access log time {s:?} is not one"),
                    })
                };
                out.push(AccessRecord {
                    at: time(&at)?,
                    household,
                    grant,
                    reader,
                    what,
                    meters: meters
                        .split(',')
                        .filter(|m| !m.is_empty())
                        .map(str::to_string)
                        .collect(),
                    from: from.as_deref().map(time).transpose()?,
                    to: to.as_deref().map(time).transpose()?,
                });
            }
            Ok(out)
        })
    }
}
