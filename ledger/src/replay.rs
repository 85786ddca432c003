//! The journal replayed in memory, under the same rules as the write path (`rules`,
//! through `dispatch`), and the derived tables read into the same shape, so that
//! `verify` can tell the first place where the tables and the journal disagree, and
//! balances at any instant ([`Journal::balances`]), replaying the journal for one in
//! the past.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SubsecRound, Utc};
use rusqlite::Connection;
use rusqlite::types::ValueRef;

use crate::assembly::{Decision, Motion};
use crate::balances::{Balances, MemberBalance};
use crate::communs::{Communs, Hours};
use crate::dispatch::apply_ledger;
use crate::entry::{Entry, EntryKind, canonical_json, format_ts, parse_canonical_ts};
use crate::error::{Error, Refusal, Result};
use crate::journal::chain::BadEntry;
use crate::journal::{Journal, SELECT_ENTRY, entry_from_row};
use crate::members::Role;
use crate::parameters::LedgerParameters;
use crate::rules::assembly::decode_adopted;
use crate::rules::balances::projected;
use crate::rules::members::decode_joined;
use crate::rules::planning;
use crate::rules::sortition::SortitionState;
use crate::rules::sql::SqlState;
use crate::rules::state::{
    Account, AttestationRow, CommitmentRow, ContributionRow, FulfilmentRow, IntentRow, LedgerState,
    Stage, Totals, TransferRow, parameters_from_stored,
};

impl Journal {
    /// Every member's balance, the commons and the total minted, at `at`.
    ///
    /// From the last entry's time on (now, or a future instant) this is the current
    /// state with demurrage projected to `at`; nothing is written. Before it, the
    /// journal is replayed as far as its first entry later than `at` (in `seq`
    /// order: entries are appended in time order unless a clock was set back) and
    /// projected to `at` from there.
    pub fn balances(&self, at: DateTime<Utc>) -> Result<Balances> {
        let at = at.trunc_subsecs(3);
        self.read(|conn| {
            let last_ts: Option<String> =
                conn.query_row("SELECT max(ts) FROM journal", [], |row| row.get(0))?;
            let current = match last_ts.as_deref().map(parse_canonical_ts) {
                None => true,
                Some(Some(last)) => last <= at,
                Some(None) => false,
            };
            if current {
                let mut state = SqlState::new(conn);
                let parameters = state.parameters()?;
                let accounts = state.accounts()?.into_iter().collect();
                let totals = state.totals()?;
                let members = member_names(conn)?;
                Ok(project(
                    &members,
                    &accounts,
                    totals.commons,
                    totals.minted,
                    &parameters,
                    at,
                ))
            } else {
                let replay = replay_until(conn, at)?;
                Ok(replay.project(at))
            }
        })
    }

    /// One member's balance at `at` (see [`Journal::balances`]);
    /// [`Refusal::UnknownMember`] if they are not a member at `at`.
    pub fn balance(&self, member: &str, at: DateTime<Utc>) -> Result<Communs> {
        self.balances(at)?
            .balances
            .into_iter()
            .find(|b| b.member == member)
            .map(|b| b.communs)
            .ok_or_else(|| Refusal::UnknownMember(member.to_string()).into())
    }
}

/// Members' names in the order they joined.
fn member_names(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM members ORDER BY joined_seq")?;
    let names = stmt
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(names)
}

/// The journal replayed in memory up to (not including) its first entry later than
/// `at`.
fn replay_until(conn: &Connection, at: DateTime<Utc>) -> Result<Replay> {
    let mut stmt = conn.prepare(&format!("{SELECT_ENTRY} ORDER BY seq"))?;
    let mut rows = stmt.query([])?;
    let mut replay = Replay::default();
    while let Some(row) = rows.next()? {
        let entry = entry_from_row(row)?;
        if entry.ts > at {
            break;
        }
        replay.apply(&entry).map_err(|e| Error::Corrupt {
            seq: entry.seq,
            problem: e.to_string(),
        })?;
    }
    Ok(replay)
}

/// Balances at `at` from a settled state: each balance decays from when it was last
/// settled, and what it loses is counted in the commons.
fn project(
    members: &[String],
    accounts: &BTreeMap<String, Account>,
    commons: Communs,
    minted: Communs,
    parameters: &LedgerParameters,
    at: DateTime<Utc>,
) -> Balances {
    let mut commons = commons;
    let mut balance_of = |account: Option<&Account>| -> Communs {
        let Some(account) = account else {
            return Communs::ZERO;
        };
        let kept = projected(account, parameters, at);
        let decay = Communs::from_micro(account.balance.micro() - kept.micro());
        commons = commons.checked_add(decay).unwrap_or(commons);
        kept
    };
    let mut balances: Vec<MemberBalance> = members
        .iter()
        .map(|m| MemberBalance {
            member: m.clone(),
            communs: balance_of(accounts.get(m)),
        })
        .collect();
    // Accounts of names that are not members cannot arise from the rules; shown all
    // the same so that the sum still holds.
    for (name, account) in accounts {
        if !members.contains(name) {
            balances.push(MemberBalance {
                member: name.clone(),
                communs: balance_of(Some(account)),
            });
        }
    }
    Balances {
        at,
        balances,
        commons,
        minted_total: minted,
    }
}

/// Everything the derived tables hold, as the journal says it should be.
#[derive(Debug, Clone, Default)]
pub(crate) struct Replay {
    /// By name: roles and the joining entry.
    members: BTreeMap<String, (Vec<Role>, i64)>,
    /// By seq: adopted_at, plan and decision as canonical JSON.
    plans: BTreeMap<i64, (String, String, String)>,
    /// By seq: parameters and decision as canonical JSON.
    parameters: BTreeMap<i64, (String, String)>,
    contributions: BTreeMap<i64, ContributionRow>,
    attestations: BTreeMap<i64, AttestationRow>,
    /// (contribution, member) of every attestation, to look them up in the replay.
    attested: BTreeSet<(i64, String)>,
    accounts: BTreeMap<String, Account>,
    totals: Totals,
    transfers: BTreeMap<i64, TransferRow>,
    intents: BTreeMap<i64, IntentRow>,
    commitments: BTreeMap<i64, CommitmentRow>,
    /// By contribution.
    fulfilments: BTreeMap<i64, FulfilmentRow>,
    /// Draws and pool, every draw re-run as it comes.
    sortition: SortitionState,
    /// By seq: the kind of each sortition entry (`sortition_entries`).
    sortition_entries: BTreeMap<i64, String>,
    /// Grants and erasures, each checked as it comes.
    consent: crate::consent::ConsentState,
    /// By seq: the kind of each consent entry (`consent_entries`).
    consent_entries: BTreeMap<i64, String>,
}

impl Replay {
    /// Applies one entry, refusing it as the write path would have.
    pub(crate) fn apply(&mut self, entry: &Entry) -> Result<()> {
        if let Some(motion) = match entry.kind {
            EntryKind::PlanAdopted => Some(Motion::Plan),
            EntryKind::ParametersAdopted => Some(Motion::Parameters),
            _ => None,
        } && let Some(decision) = entry
            .payload
            .get("decision")
            .and_then(|d| serde_json::from_value::<Decision>(d.clone()).ok())
        {
            let problems = self.sortition.panel_problems(&decision, motion);
            if !problems.is_empty() {
                return Err(Refusal::InvalidDecision(problems).into());
            }
        }
        match entry.kind {
            EntryKind::ConsentGranted
            | EntryKind::ConsentRevoked
            | EntryKind::HouseholdReadingsErased
            | EntryKind::HouseholdErasureRequested => {
                let members = &self.members;
                self.consent
                    .apply(entry, &|name| members.contains_key(name))?;
                self.consent_entries
                    .insert(entry.seq, entry.kind.as_str().to_string());
                Ok(())
            }
            EntryKind::SortitionKeysSet
            | EntryKind::SortitionOpted
            | EntryKind::SortitionAnnounced
            | EntryKind::SortitionDrawn
            | EntryKind::PanelMemberDeclined => {
                let members = &self.members;
                self.sortition
                    .apply(entry, &|name| members.contains_key(name))?;
                self.sortition_entries
                    .insert(entry.seq, entry.kind.as_str().to_string());
                Ok(())
            }
            EntryKind::MemberJoined => {
                let (name, roles) =
                    decode_joined(&entry.payload).map_err(|reason| Refusal::InvalidPayload {
                        kind: entry.kind,
                        reason,
                    })?;
                if let Some(existing) = self.members.keys().find(|m| m.eq_ignore_ascii_case(&name))
                {
                    return Err(Refusal::DuplicateMember(existing.clone()).into());
                }
                self.members.insert(name, (roles, entry.seq));
                Ok(())
            }
            EntryKind::PlanAdopted => {
                decode_adopted(&entry.payload).map_err(|reason| Refusal::InvalidPayload {
                    kind: entry.kind,
                    reason,
                })?;
                let part = |key: &str| {
                    entry
                        .payload
                        .get(key)
                        .map(canonical_json)
                        .unwrap_or_default()
                };
                self.plans.insert(
                    entry.seq,
                    (format_ts(entry.ts), part("plan"), part("decision")),
                );
                Ok(())
            }
            _ => apply_ledger(self, entry),
        }
    }

    /// Balances at `at`, demurrage projected from this state.
    pub(crate) fn project(&self, at: DateTime<Utc>) -> Balances {
        let mut members: Vec<(&String, i64)> =
            self.members.iter().map(|(n, (_, seq))| (n, *seq)).collect();
        members.sort_by_key(|(_, seq)| *seq);
        let members: Vec<String> = members.into_iter().map(|(n, _)| n.clone()).collect();
        let parameters = self.current_parameters().unwrap_or_default();
        project(
            &members,
            &self.accounts,
            self.totals.commons,
            self.totals.minted,
            &parameters,
            at,
        )
    }

    fn current_parameters(&self) -> Result<LedgerParameters> {
        match self.parameters.iter().next_back() {
            None => Ok(LedgerParameters::default()),
            Some((seq, (text, _))) => parameters_from_stored(text).map_err(|e| Error::Corrupt {
                seq: *seq,
                problem: format!("the ledger parameters do not decode: {e}"),
            }),
        }
    }

    /// What holds at the end of a replay that cannot be seen entry by entry: every
    /// Commun is accounted for, and no approved contribution went unvalidated.
    pub(crate) fn check_end(&self, last_seq: i64) -> Option<BadEntry> {
        if let Some(c) = self
            .contributions
            .values()
            .find(|c| c.stage == Stage::Approved)
        {
            return Some(BadEntry {
                seq: last_seq + 1,
                account: None,
                problem: format!(
                    "contribution {} has the approvals it needs but no contribution_validated \
                     entry follows: later entries may have been removed",
                    c.id
                ),
            });
        }
        let held: i128 = self
            .accounts
            .values()
            .map(|a| i128::from(a.balance.micro()))
            .sum();
        let accounted = held + i128::from(self.totals.commons.micro());
        if accounted != i128::from(self.totals.minted.micro()) {
            return Some(BadEntry {
                seq: self.totals.last_seq,
                account: None,
                problem: format!(
                    "balances and commons add up to {accounted} micro-Communs, but {} were minted",
                    self.totals.minted.micro()
                ),
            });
        }
        None
    }

    /// Reads the derived tables. A row that does not read is a finding, named by the
    /// entry it refers to; `Err` only when the database cannot be read.
    pub(crate) fn from_tables(conn: &Connection) -> Result<Result<Replay, BadEntry>> {
        match read_tables(conn) {
            Ok(replay) => Ok(Ok(replay)),
            Err(TableError::Sqlite(e)) => Err(e.into()),
            Err(TableError::Finding(bad)) => Ok(Err(bad)),
        }
    }

    /// The first place (by entry) where `tables` differ from this replay.
    pub(crate) fn first_difference(&self, tables: &Replay) -> Option<BadEntry> {
        let mut found: Vec<BadEntry> = Vec::new();
        let mut note = |seq: i64, account: Option<&str>, problem: String| {
            found.push(BadEntry {
                seq,
                account: account.map(str::to_string),
                problem,
            });
        };

        for name in keys(&self.members, &tables.members) {
            match (self.members.get(name), tables.members.get(name)) {
                (Some(j), Some(t)) if j == t => {}
                (Some((roles, seq)), Some((t_roles, t_seq))) => note(
                    *seq.min(t_seq),
                    None,
                    format!(
                        "the members table gives `{name}` roles {t_roles:?} from entry {t_seq}; \
                         the journal, {roles:?} from entry {seq}"
                    ),
                ),
                (Some((_, seq)), None) => note(
                    *seq,
                    None,
                    format!(
                        "member `{name}` joined at entry {seq} is missing from the members table"
                    ),
                ),
                (None, Some((_, seq))) => note(
                    *seq,
                    None,
                    format!("the members table lists `{name}`, who never joined by the journal"),
                ),
                (None, None) => {}
            }
        }
        diff_by_seq(&self.plans, &tables.plans, "plans", &mut note);
        diff_by_seq(
            &self.parameters,
            &tables.parameters,
            "ledger_parameters",
            &mut note,
        );
        for id in keys(&self.contributions, &tables.contributions) {
            match (self.contributions.get(id), tables.contributions.get(id)) {
                (Some(j), Some(t)) if j == t => {}
                (Some(j), Some(t)) => note(
                    *id,
                    None,
                    format!(
                        "contribution {id} differs between the contributions table and the \
                         journal: {}",
                        contribution_diff(j, t)
                    ),
                ),
                (Some(_), None) => note(
                    *id,
                    None,
                    format!("contribution {id} is missing from the contributions table"),
                ),
                (None, Some(_)) => note(
                    *id,
                    None,
                    format!(
                        "the contributions table has a contribution {id} the journal does not record"
                    ),
                ),
                (None, None) => {}
            }
        }
        for seq in keys(&self.attestations, &tables.attestations) {
            let (j, t) = (self.attestations.get(seq), tables.attestations.get(seq));
            if j != t {
                note(
                    *seq,
                    None,
                    format!("the attestations table differs from the journal at attestation {seq}"),
                );
            }
        }
        for seq in keys(&self.transfers, &tables.transfers) {
            let (j, t) = (self.transfers.get(seq), tables.transfers.get(seq));
            if j != t {
                note(
                    *seq,
                    None,
                    format!("the transfers table differs from the journal at transfer {seq}"),
                );
            }
        }
        for name in keys(&self.accounts, &tables.accounts) {
            let (j, t) = (self.accounts.get(name), tables.accounts.get(name));
            let describe = |a: &Account| {
                format!(
                    "{} Communs settled at {}",
                    a.balance,
                    a.settled_at
                        .map(format_ts)
                        .unwrap_or_else(|| "no time".into())
                )
            };
            match (j, t) {
                (Some(j), Some(t)) if j == t => {}
                (Some(j), Some(t)) => note(
                    j.last_seq,
                    Some(name),
                    format!(
                        "the balances table gives `{name}` {} (entry {}); the journal, {} (entry {})",
                        describe(t),
                        t.last_seq,
                        describe(j),
                        j.last_seq
                    ),
                ),
                (Some(j), None) => note(
                    j.last_seq,
                    Some(name),
                    format!(
                        "the balances table has no row for `{name}`, who holds {} by the journal",
                        describe(j)
                    ),
                ),
                (None, Some(t)) => note(
                    t.last_seq,
                    Some(name),
                    format!(
                        "the balances table gives `{name}` {}, who has no balance by the journal",
                        describe(t)
                    ),
                ),
                (None, None) => {}
            }
        }
        diff_by_seq(&self.intents, &tables.intents, "intents", &mut note);
        diff_by_seq(
            &self.consent_entries,
            &tables.consent_entries,
            "consent_entries",
            &mut note,
        );
        diff_by_seq(
            &self.sortition_entries,
            &tables.sortition_entries,
            "sortition_entries",
            &mut note,
        );
        diff_by_seq(
            &self.commitments,
            &tables.commitments,
            "commitments",
            &mut note,
        );
        diff_by_seq(
            &self.fulfilments,
            &tables.fulfilments,
            "fulfilments",
            &mut note,
        );
        if self.totals != tables.totals {
            let (j, t) = (&self.totals, &tables.totals);
            note(
                j.last_seq.max(1),
                Some("commons"),
                format!(
                    "the ledger_totals table gives the commons {} and {} minted; the journal, \
                     {} and {} minted",
                    t.commons, t.minted, j.commons, j.minted
                ),
            );
        }
        found.into_iter().min_by_key(|bad| bad.seq)
    }
}

fn keys<'a, K: Ord, A, B>(a: &'a BTreeMap<K, A>, b: &'a BTreeMap<K, B>) -> BTreeSet<&'a K> {
    a.keys().chain(b.keys()).collect()
}

fn diff_by_seq<V: PartialEq>(
    journal: &BTreeMap<i64, V>,
    tables: &BTreeMap<i64, V>,
    table: &str,
    note: &mut impl FnMut(i64, Option<&str>, String),
) {
    for seq in keys(journal, tables) {
        match (journal.get(seq), tables.get(seq)) {
            (Some(j), Some(t)) if j == t => {}
            (Some(_), Some(_)) => note(
                *seq,
                None,
                format!("the {table} table differs from entry {seq}"),
            ),
            (Some(_), None) => note(
                *seq,
                None,
                format!("the {table} table has no row for entry {seq}"),
            ),
            (None, Some(_)) => note(
                *seq,
                None,
                format!("the {table} table has a row for entry {seq}, which records no such thing"),
            ),
            (None, None) => {}
        }
    }
}

fn contribution_diff(journal: &ContributionRow, table: &ContributionRow) -> String {
    let mut parts = Vec::new();
    let mut field = |name: &str, j: String, t: String| {
        if j != t {
            parts.push(format!("{name} is {t} in the table, {j} by the journal"));
        }
    };
    field("member", journal.member.clone(), table.member.clone());
    field(
        "category",
        journal.category.to_string(),
        table.category.to_string(),
    );
    field("hours", journal.hours.to_string(), table.hours.to_string());
    field("date", journal.date.to_string(), table.date.to_string());
    field(
        "description",
        journal.description.clone(),
        table.description.clone(),
    );
    field(
        "state",
        journal.stage.as_str().into(),
        table.stage.as_str().into(),
    );
    field(
        "approvals",
        journal.approvals.to_string(),
        table.approvals.to_string(),
    );
    field(
        "rejections",
        journal.rejections.to_string(),
        table.rejections.to_string(),
    );
    let minted = |m: Option<Communs>| m.map_or("nothing".into(), |m| format!("{m} Communs"));
    field("minted", minted(journal.minted), minted(table.minted));
    let decided = |d: Option<i64>| d.map_or("none".into(), |d| format!("entry {d}"));
    field(
        "decision",
        decided(journal.decided_seq),
        decided(table.decided_seq),
    );
    parts.join("; ")
}

impl LedgerState for Replay {
    fn is_member(&mut self, name: &str) -> Result<bool> {
        Ok(self.members.contains_key(name))
    }

    fn parameters(&mut self) -> Result<LedgerParameters> {
        self.current_parameters()
    }

    fn add_parameters(&mut self, seq: i64, parameters: &str, decision: &str) -> Result<()> {
        self.parameters
            .insert(seq, (parameters.to_string(), decision.to_string()));
        Ok(())
    }

    fn contribution(&mut self, id: i64) -> Result<Option<ContributionRow>> {
        Ok(self.contributions.get(&id).cloned())
    }

    fn put_contribution(&mut self, row: &ContributionRow) -> Result<()> {
        self.contributions.insert(row.id, row.clone());
        Ok(())
    }

    fn has_attested(&mut self, contribution: i64, member: &str) -> Result<bool> {
        Ok(self.attested.contains(&(contribution, member.to_string())))
    }

    fn add_attestation(&mut self, row: &AttestationRow) -> Result<()> {
        self.attestations.insert(row.seq, row.clone());
        self.attested.insert((row.contribution, row.member.clone()));
        Ok(())
    }

    fn account(&mut self, member: &str) -> Result<Option<Account>> {
        Ok(self.accounts.get(member).cloned())
    }

    fn accounts(&mut self) -> Result<Vec<(String, Account)>> {
        Ok(self
            .accounts
            .iter()
            .map(|(n, a)| (n.clone(), a.clone()))
            .collect())
    }

    fn put_account(&mut self, member: &str, account: &Account) -> Result<()> {
        self.accounts.insert(member.to_string(), account.clone());
        Ok(())
    }

    fn totals(&mut self) -> Result<Totals> {
        Ok(self.totals.clone())
    }

    fn put_totals(&mut self, totals: &Totals) -> Result<()> {
        self.totals = totals.clone();
        Ok(())
    }

    fn add_transfer(&mut self, row: &TransferRow) -> Result<()> {
        self.transfers.insert(row.seq, row.clone());
        Ok(())
    }

    fn has_role(&mut self, name: &str, role: Role) -> Result<bool> {
        Ok(self
            .members
            .get(name)
            .is_some_and(|(roles, _)| roles.contains(&role)))
    }

    fn intent(&mut self, id: i64) -> Result<Option<IntentRow>> {
        Ok(self.intents.get(&id).cloned())
    }

    fn put_intent(&mut self, row: &IntentRow) -> Result<()> {
        self.intents.insert(row.id, row.clone());
        Ok(())
    }

    fn commitment(&mut self, id: i64) -> Result<Option<CommitmentRow>> {
        Ok(self.commitments.get(&id).cloned())
    }

    fn put_commitment(&mut self, row: &CommitmentRow) -> Result<()> {
        self.commitments.insert(row.id, row.clone());
        Ok(())
    }

    fn commitments_on(&mut self, intent: i64) -> Result<Vec<CommitmentRow>> {
        Ok(self
            .commitments
            .values()
            .filter(|c| c.intent == intent)
            .cloned()
            .collect())
    }

    fn fulfilment(&mut self, contribution: i64) -> Result<Option<FulfilmentRow>> {
        Ok(self.fulfilments.get(&contribution).cloned())
    }

    fn put_fulfilment(&mut self, row: &FulfilmentRow) -> Result<()> {
        self.fulfilments.insert(row.contribution, row.clone());
        Ok(())
    }
}

enum TableError {
    Sqlite(rusqlite::Error),
    Finding(BadEntry),
}

impl From<rusqlite::Error> for TableError {
    fn from(e: rusqlite::Error) -> Self {
        TableError::Sqlite(e)
    }
}

/// One row of a derived table, read column by column with findings for what does not
/// read as the schema says.
struct Cells<'r, 's> {
    row: &'r rusqlite::Row<'s>,
    table: &'static str,
    seq: i64,
}

impl Cells<'_, '_> {
    fn bad(&self, column: &str, what: &str) -> TableError {
        TableError::Finding(BadEntry {
            seq: self.seq,
            account: None,
            problem: format!(
                "the {} table's `{column}` for entry {} is not {what}",
                self.table, self.seq
            ),
        })
    }

    fn int(&self, idx: usize, column: &str) -> Result<i64, TableError> {
        match self.row.get_ref(idx)? {
            ValueRef::Integer(i) => Ok(i),
            _ => Err(self.bad(column, "an integer")),
        }
    }

    fn opt_int(&self, idx: usize, column: &str) -> Result<Option<i64>, TableError> {
        match self.row.get_ref(idx)? {
            ValueRef::Null => Ok(None),
            _ => self.int(idx, column).map(Some),
        }
    }

    fn text(&self, idx: usize, column: &str) -> Result<String, TableError> {
        match self.row.get_ref(idx)? {
            ValueRef::Text(bytes) => {
                String::from_utf8(bytes.to_vec()).map_err(|_| self.bad(column, "UTF-8 text"))
            }
            _ => Err(self.bad(column, "text")),
        }
    }

    fn opt_text(&self, idx: usize, column: &str) -> Result<Option<String>, TableError> {
        match self.row.get_ref(idx)? {
            ValueRef::Null => Ok(None),
            _ => self.text(idx, column).map(Some),
        }
    }

    fn parse<T>(
        &self,
        idx: usize,
        column: &str,
        what: &str,
        f: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, TableError> {
        let text = self.text(idx, column)?;
        f(&text).ok_or_else(|| self.bad(column, what))
    }

    fn u32(&self, idx: usize, column: &str) -> Result<u32, TableError> {
        u32::try_from(self.int(idx, column)?).map_err(|_| self.bad(column, "a count"))
    }
}

/// Runs `sql` and reads each row with `f`; the first column is the row's entry.
fn each_row(
    conn: &Connection,
    sql: &str,
    table: &'static str,
    mut f: impl FnMut(&Cells<'_, '_>) -> Result<(), TableError>,
) -> Result<(), TableError> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let seq = match row.get_ref(0)? {
            ValueRef::Integer(i) => i,
            _ => 0,
        };
        f(&Cells { row, table, seq })?;
    }
    Ok(())
}

fn read_tables(conn: &Connection) -> Result<Replay, TableError> {
    let mut r = Replay::default();
    each_row(
        conn,
        "SELECT joined_seq, name, roles FROM members",
        "members",
        |c| {
            let roles = c.parse(2, "roles", "a list of roles", |t| {
                serde_json::from_str::<Vec<Role>>(t).ok()
            })?;
            r.members
                .insert(c.text(1, "name")?, (roles, c.int(0, "joined_seq")?));
            Ok(())
        },
    )?;
    each_row(
        conn,
        "SELECT seq, kind FROM consent_entries",
        "consent_entries",
        |c| {
            r.consent_entries
                .insert(c.int(0, "seq")?, c.text(1, "kind")?);
            Ok(())
        },
    )?;
    each_row(
        conn,
        "SELECT seq, kind FROM sortition_entries",
        "sortition_entries",
        |c| {
            r.sortition_entries
                .insert(c.int(0, "seq")?, c.text(1, "kind")?);
            Ok(())
        },
    )?;
    each_row(
        conn,
        "SELECT seq, adopted_at, plan, decision FROM plans",
        "plans",
        |c| {
            r.plans.insert(
                c.int(0, "seq")?,
                (
                    c.text(1, "adopted_at")?,
                    c.text(2, "plan")?,
                    c.text(3, "decision")?,
                ),
            );
            Ok(())
        },
    )?;
    each_row(
        conn,
        "SELECT seq, parameters, decision FROM ledger_parameters",
        "ledger_parameters",
        |c| {
            r.parameters.insert(
                c.int(0, "seq")?,
                (c.text(1, "parameters")?, c.text(2, "decision")?),
            );
            Ok(())
        },
    )?;
    each_row(
        conn,
        "SELECT id, member, category, centihours, date, description, state, approvals,
                rejections, minted_micro, decided_seq FROM contributions",
        "contributions",
        |c| {
            let id = c.int(0, "id")?;
            let centihours = u64::try_from(c.int(3, "centihours")?)
                .map_err(|_| c.bad("centihours", "a number of hours"))?;
            r.contributions.insert(
                id,
                ContributionRow {
                    id,
                    member: c.text(1, "member")?,
                    category: c.parse(2, "category", "a category", |t| t.parse().ok())?,
                    hours: Hours::from_centihours(centihours),
                    date: c.parse(4, "date", "a date", |t| t.parse().ok())?,
                    description: c.text(5, "description")?,
                    stage: c.parse(6, "state", "a state", Stage::parse)?,
                    approvals: c.u32(7, "approvals")?,
                    rejections: c.u32(8, "rejections")?,
                    minted: c.opt_int(9, "minted_micro")?.map(Communs::from_micro),
                    decided_seq: c.opt_int(10, "decided_seq")?,
                },
            );
            Ok(())
        },
    )?;
    each_row(
        conn,
        "SELECT seq, contribution, member, verdict, comment FROM attestations",
        "attestations",
        |c| {
            let seq = c.int(0, "seq")?;
            r.attestations.insert(
                seq,
                AttestationRow {
                    seq,
                    contribution: c.int(1, "contribution")?,
                    member: c.text(2, "member")?,
                    verdict: c.parse(3, "verdict", "a verdict", |t| t.parse().ok())?,
                    comment: c.text(4, "comment")?,
                },
            );
            Ok(())
        },
    )?;
    each_row(
        conn,
        "SELECT last_seq, member, balance_micro, settled_at FROM balances",
        "balances",
        |c| {
            let settled_at = match c.opt_text(3, "settled_at")? {
                None => None,
                Some(t) => Some(
                    parse_canonical_ts(&t)
                        .ok_or_else(|| c.bad("settled_at", "a canonical timestamp"))?,
                ),
            };
            r.accounts.insert(
                c.text(1, "member")?,
                Account {
                    balance: Communs::from_micro(c.int(2, "balance_micro")?),
                    settled_at,
                    last_seq: c.int(0, "last_seq")?,
                },
            );
            Ok(())
        },
    )?;
    each_row(
        conn,
        "SELECT last_seq, commons_micro, minted_micro FROM ledger_totals",
        "ledger_totals",
        |c| {
            r.totals = Totals {
                commons: Communs::from_micro(c.int(1, "commons_micro")?),
                minted: Communs::from_micro(c.int(2, "minted_micro")?),
                last_seq: c.int(0, "last_seq")?,
            };
            Ok(())
        },
    )?;
    each_row(
        conn,
        "SELECT seq, from_member, to_member, amount_micro, memo, intent FROM transfers",
        "transfers",
        |c| {
            let seq = c.int(0, "seq")?;
            r.transfers.insert(
                seq,
                TransferRow {
                    seq,
                    from: c.text(1, "from_member")?,
                    to: c.text(2, "to_member")?,
                    amount: Communs::from_micro(c.int(3, "amount_micro")?),
                    memo: c.text(4, "memo")?,
                    intent: c.opt_int(5, "intent")?,
                },
            );
            Ok(())
        },
    )?;
    let finding = |e: Error| match e {
        Error::Corrupt { seq, problem } => TableError::Finding(BadEntry {
            seq,
            account: None,
            problem,
        }),
        Error::Sqlite(e) => TableError::Sqlite(e),
        other => TableError::Finding(BadEntry {
            seq: 0,
            account: None,
            problem: other.to_string(),
        }),
    };
    for row in
        planning::all_rows(conn, planning::SELECT_INTENT, planning::intent_row).map_err(finding)?
    {
        r.intents.insert(row.id, row);
    }
    for row in planning::all_rows(conn, planning::SELECT_COMMITMENT, planning::commitment_row)
        .map_err(finding)?
    {
        r.commitments.insert(row.id, row);
    }
    for row in planning::all_rows(conn, planning::SELECT_FULFILMENT, planning::fulfilment_row)
        .map_err(finding)?
    {
        r.fulfilments.insert(row.contribution, row);
    }
    Ok(r)
}
