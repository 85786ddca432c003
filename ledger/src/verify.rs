//! Re-deriving the hash chain and replaying the journal against the derived tables
//! (`communalia ledger verify`).

use std::fmt;

use chrono::NaiveDate;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::assembly::{CONFIG_AUTHOR, Decision, DecisionContext, DecisionRule};
use crate::entry::{EntryKind, canonical_json};
use crate::error::{Error, Result};
use crate::journal::chain::{self, BadEntry};
use crate::journal::{Journal, SELECT_ENTRY, entry_from_row};
use crate::replay::Replay;
use crate::rules::state::parameters_from_stored;
use crate::schema::ENTRY_REFERENCES;

/// What [`Journal::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Rows in the journal.
    pub entries: u64,
    /// The `hash` stored in the last row (64 zeros when the journal is empty). Keep
    /// it: a journal cut short after it is only noticed against a known head.
    pub head_hash: String,
    /// Whether every row chains onto the one before it (sequence, hashes, canonical
    /// forms). The replay of the ledger's rules and balances runs only then: when
    /// this is true, `first_bad` names what the replay found, if anything.
    pub chain_intact: bool,
    /// The first entry that breaks the chain or, the chain being intact, the first
    /// entry or account where the replay disagrees, if any.
    pub first_bad: Option<BadEntry>,
    /// Past adoptions (plans, ledger parameters) whose decision record today's
    /// decision rule would refuse: recorded under the rules of their time, they do
    /// not break the journal, but the assembly may want to know. Oldest first.
    #[serde(default)]
    pub warnings: Vec<DecisionWarning>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// A recorded adoption that would be refused today ([`VerifyReport::warnings`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionWarning {
    /// The `plan_adopted` or `parameters_adopted` entry.
    pub seq: i64,
    pub kind: EntryKind,
    pub assembly_date: NaiveDate,
    /// Under this rule (the one in force now).
    pub rule: DecisionRule,
    /// What today's checks say of its decision record, in English.
    pub problems: Vec<String>,
}

impl fmt::Display for DecisionWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "entry {} ({}, assembly of {}) would not be adopted under today's rule `{}`: {}",
            self.seq,
            self.kind,
            self.assembly_date,
            self.rule,
            self.problems.join("; ")
        )
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.first_bad {
            None => write!(
                f,
                "journal intact: {} entries, head {}",
                self.entries, self.head_hash
            ),
            Some(bad) => write!(f, "journal broken at {bad} ({} entries)", self.entries),
        }
    }
}

impl Journal {
    /// Re-derives the chain from the first entry, checking for every row, in order:
    /// that `seq` follows on without gaps, that its columns are text, that `prev_hash`
    /// is the previous entry's `hash`, that the payload is JSON in canonical form, that
    /// `ts` is in canonical form, and that `hash` is the hash of its contents (see
    /// [`crate::Entry`] for the encoding). Then that the derived tables refer to no
    /// entry past the end. Then it replays the whole journal in memory under the
    /// ledger's rules (each entry must be one the ledger would have recorded: a
    /// validation after `k` approvals minting exactly `hours x rate`, a settlement
    /// taking exactly the demurrage due, no transfer beyond a balance, …), checks
    /// that balances and commons add up to all that was minted, and compares every
    /// derived table (members, plans, parameters, contributions, attestations,
    /// balances, totals, transfers) with the replay, naming the first entry, or the
    /// account, where they differ. Reports the first problem; a damaged row is a
    /// finding, never an error. Errors only when the database itself cannot be read.
    ///
    /// An intact journal is also read for past adoptions whose decision record
    /// today's decision rule would refuse ([`VerifyReport::warnings`]); those do not
    /// make it broken.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.read(|conn| {
            let chain = chain::check(conn)?;
            let chain_intact = chain.first_bad.is_none();
            let (first_bad, warnings) = if chain_intact {
                let first_bad = check_ledger(conn, chain.last_seq)?;
                let warnings = if first_bad.is_none() {
                    decision_warnings(conn)?
                } else {
                    Vec::new()
                };
                (first_bad, warnings)
            } else {
                (chain.first_bad, Vec::new())
            };
            Ok(VerifyReport {
                entries: chain.entries,
                head_hash: chain.head_hash,
                chain_intact,
                first_bad,
                warnings,
            })
        })
    }
}

/// Every adoption, oldest first, judged as if it were recorded now: under the
/// decision rule in force today, its date against its entry's instant and the
/// previous adoption of the same kind. The plan taken from the configuration was
/// voted by no assembly and is not judged.
fn decision_warnings(conn: &Connection) -> Result<Vec<DecisionWarning>> {
    let mut stmt = conn.prepare(&format!(
        "{SELECT_ENTRY} WHERE kind IN ('plan_adopted', 'parameters_adopted') ORDER BY seq"
    ))?;
    let mut rows = stmt.query([])?;
    let mut adoptions = Vec::new();
    while let Some(row) = rows.next()? {
        let entry = entry_from_row(row)?;
        let corrupt = |problem: String| Error::Corrupt {
            seq: entry.seq,
            problem,
        };
        let decision: Decision = entry
            .payload
            .get("decision")
            .map(|d| serde_json::from_value(d.clone()))
            .transpose()
            .map_err(|e| corrupt(format!("the decision does not decode: {e}")))?
            .ok_or_else(|| corrupt("an adoption without its decision".into()))?;
        let rule = match entry.kind {
            EntryKind::ParametersAdopted => {
                let parameters = entry.payload.get("parameters").map(canonical_json);
                let parameters = parameters_from_stored(parameters.as_deref().unwrap_or(""))
                    .map_err(|e| corrupt(format!("the parameters do not decode: {e}")))?;
                Some(parameters.decision_rule)
            }
            _ => None,
        };
        adoptions.push((entry, decision, rule));
    }
    let today = adoptions
        .iter()
        .rev()
        .find_map(|(_, _, rule)| *rule)
        .unwrap_or_default();
    let mut previous_plan = None;
    let mut previous_parameters = None;
    let mut warnings = Vec::new();
    for (entry, decision, _) in adoptions {
        let previous = match entry.kind {
            EntryKind::PlanAdopted if entry.author == CONFIG_AUTHOR => continue,
            EntryKind::PlanAdopted => &mut previous_plan,
            _ => &mut previous_parameters,
        };
        let context = DecisionContext::at(entry.ts, today, *previous);
        *previous = Some(decision.assembly_date);
        let problems = decision.problems_in(&context);
        if !problems.is_empty() {
            warnings.push(DecisionWarning {
                seq: entry.seq,
                kind: entry.kind,
                assembly_date: decision.assembly_date,
                rule: today,
                problems: problems.iter().map(ToString::to_string).collect(),
            });
        }
    }
    Ok(warnings)
}

/// A derived row that refers to an entry past the last one means entries were cut off
/// the end, which the chain alone cannot show.
fn derived_past_the_end(conn: &Connection, last_seq: i64) -> Result<Option<BadEntry>> {
    for &(table, column) in ENTRY_REFERENCES {
        let max: Option<i64> = conn.query_row(
            &format!("SELECT max({column}) FROM {table} WHERE typeof({column}) = 'integer'"),
            [],
            |row| row.get(0),
        )?;
        if let Some(max) = max.filter(|&m| m > last_seq) {
            return Ok(Some(BadEntry {
                seq: last_seq + 1,
                account: None,
                problem: format!(
                    "the journal ends at entry {last_seq} but the {table} table refers to \
                     entry {max}: later entries may have been removed"
                ),
            }));
        }
    }
    Ok(None)
}

/// Checks, for a journal whose chain is intact: that its entries follow the ledger's
/// rules (a replay in memory), that the derived tables refer to no entry past its
/// end, and that they hold what the replay gives. In that order, so that a rule
/// broken by an entry is named before what follows from it.
fn check_ledger(conn: &Connection, last_seq: i64) -> Result<Option<BadEntry>> {
    let replay = match replay(conn, last_seq)? {
        Ok(replay) => replay,
        Err(bad) => return Ok(Some(bad)),
    };
    if let Some(bad) = derived_past_the_end(conn, last_seq)? {
        return Ok(Some(bad));
    }
    match Replay::from_tables(conn)? {
        Err(bad) => Ok(Some(bad)),
        Ok(tables) => Ok(replay.first_difference(&tables)),
    }
}

/// The journal replayed in memory, or the first entry the ledger would not have
/// recorded.
fn replay(conn: &Connection, last_seq: i64) -> Result<Result<Replay, BadEntry>> {
    let mut replay = Replay::default();
    let mut stmt = conn.prepare(&format!("{SELECT_ENTRY} ORDER BY seq"))?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let applied = entry_from_row(row).and_then(|entry| replay.apply(&entry));
        let problem = match applied {
            Ok(()) => continue,
            Err(Error::Sqlite(e)) => return Err(e.into()),
            Err(Error::Corrupt { problem, .. }) => problem,
            Err(rule) => format!("the ledger would not have recorded it: {rule}"),
        };
        return Ok(Err(BadEntry {
            seq,
            account: None,
            problem,
        }));
    }
    Ok(match replay.check_end(last_seq) {
        Some(bad) => Err(bad),
        None => Ok(replay),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::entry::GENESIS_PREV_HASH;
    use crate::members::Role;
    use chrono::{DateTime, Utc};

    fn ts(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn an_empty_journal_is_intact() {
        let journal = Journal::open_in_memory().unwrap();
        let report = journal.verify().unwrap();
        assert_eq!(report.entries, 0);
        assert_eq!(report.head_hash, GENESIS_PREV_HASH);
        assert!(report.is_intact());
    }

    fn three_members() -> Journal {
        let journal = Journal::open_in_memory().unwrap();
        for name in ["Alice", "Bob", "Carol"] {
            journal
                .add_member(name, &[Role::Resident], "admin", ts("2026-11-22T10:00:00Z"))
                .unwrap();
        }
        journal
    }

    fn tamper(journal: &Journal, sql: &str) {
        journal
            .read(|conn| {
                conn.execute_batch(&format!(
                    "DROP TRIGGER IF EXISTS journal_no_update;
                     DROP TRIGGER IF EXISTS journal_no_delete;
                     PRAGMA foreign_keys = OFF; {sql}"
                ))?;
                Ok(())
            })
            .unwrap();
    }

    fn first_bad(journal: &Journal) -> BadEntry {
        journal
            .verify()
            .unwrap()
            .first_bad
            .expect("verify should fail")
    }

    #[test]
    fn an_intact_journal_reports_its_head() {
        let journal = three_members();
        let report = journal.verify().unwrap();
        assert_eq!(report.entries, 3);
        assert_eq!(report.head_hash, journal.head().unwrap().unwrap().hash);
        assert!(report.is_intact(), "{report}");
        assert!(report.chain_intact);
    }

    #[test]
    fn damaged_columns_are_findings() {
        let journal = three_members();
        tamper(
            &journal,
            "UPDATE journal SET author = CAST(X'C3' AS TEXT) WHERE seq = 2;",
        );
        let bad = first_bad(&journal);
        assert_eq!(
            (bad.seq, bad.problem.as_str()),
            (2, "column `author` is not valid UTF-8")
        );
        assert!(!journal.verify().unwrap().chain_intact);

        let journal = three_members();
        tamper(&journal, "UPDATE journal SET ts = X'0102' WHERE seq = 3;");
        assert_eq!(first_bad(&journal).problem, "column `ts` is not text");

        let journal = three_members();
        tamper(
            &journal,
            r#"UPDATE journal SET payload = '{ "name":"Bob","roles":["resident"]}' WHERE seq = 2;"#,
        );
        assert_eq!(
            first_bad(&journal),
            BadEntry {
                seq: 2,
                account: None,
                problem: "payload is not in canonical form".into()
            }
        );

        let journal = three_members();
        tamper(
            &journal,
            "UPDATE journal SET ts = '2026-11-22T10:00:00Z' WHERE seq = 1;",
        );
        assert!(
            first_bad(&journal)
                .problem
                .contains("is not an RFC 3339 UTC timestamp")
        );
    }

    #[test]
    fn gaps_at_the_start_and_several_missing_are_named() {
        let journal = three_members();
        tamper(&journal, "DELETE FROM journal WHERE seq IN (1, 2);");
        let bad = first_bad(&journal);
        assert_eq!(bad.seq, 1);
        assert_eq!(
            bad.problem,
            "entries 1 to 2 are missing (the journal starts at 3)"
        );
    }

    #[test]
    fn a_cut_off_end_is_noticed_through_the_derived_tables() {
        let journal = three_members();
        tamper(&journal, "DELETE FROM journal WHERE seq = 3;");
        let bad = first_bad(&journal);
        assert_eq!(bad.seq, 3);
        assert!(
            bad.problem.contains("the members table refers to entry 3"),
            "{bad}"
        );
        // What is left chains correctly: the replay is what finds the cut.
        assert!(journal.verify().unwrap().chain_intact);
    }
}
