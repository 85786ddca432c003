//! Plan adoptions with their decision records (`plan_adopted` entries, `plans`
//! table): the payload, recording it, the row it adds, reading plans back, and seeding
//! a new journal from the site configuration.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::assembly::{AdoptedPlan, CONFIG_AUTHOR, Decision, DecisionContext, Motion};
use crate::entry::{Entry, EntryKind, canonical_json, format_ts, parse_canonical_ts};
use crate::error::{Error, Refusal, Result};
use crate::journal::Journal;
use crate::journal::chain::{append, check_author};
use crate::members::Role;
use crate::plan::Plan;
use crate::rules::members::{self, joined_payload};
use crate::rules::sortition;
use crate::rules::sql::SqlState;
use crate::rules::state::LedgerState;

/// The payload of a `plan_adopted` entry.
#[derive(Debug, Serialize, Deserialize)]
struct PlanAdopted {
    plan: Plan,
    decision: Decision,
}

impl Journal {
    /// Records the adoption of `plan` under `decision`, if the motion carried
    /// (DESIGN.md §9). Refuses ([`Refusal::InvalidPlan`]) a plan that does not hold,
    /// naming the service or tier, or that names a service not among `configured`
    /// (the ids of the services of the site configuration); and
    /// ([`Refusal::InvalidDecision`]) a decision record with any of the
    /// [`Decision::problems_in`] of [`Journal::decision_context`]: no quorum, the
    /// motion not carried under the rule in force, an assembly in the future or
    /// older than the previous plan's. Plans are versioned: each adoption is a new
    /// entry, the latest is the active one.
    pub fn adopt_plan(
        &self,
        plan: &Plan,
        decision: &Decision,
        configured: &BTreeSet<String>,
        author: &str,
        ts: DateTime<Utc>,
    ) -> Result<Entry> {
        let payload = adoption_payload(plan, decision)?;
        self.write(|tx| record(tx, author, &payload, configured, ts))
    }

    /// What a decision record of `motion` is judged against at `ts`: the decision
    /// rule in force and the assembly date of the previous adoption of the same
    /// kind. [`Decision::problems_in`] it names every problem at once, as
    /// [`Journal::adopt_plan`] and [`Journal::adopt_ledger_parameters`] would.
    pub fn decision_context(&self, motion: Motion, ts: DateTime<Utc>) -> Result<DecisionContext> {
        self.read(|conn| decision_context(conn, motion, ts))
    }

    /// The latest adopted plan, which the allocation uses.
    pub fn active_plan(&self) -> Result<Option<AdoptedPlan>> {
        Ok(self.plans(Some(1))?.into_iter().next())
    }

    /// Every adopted plan, newest first.
    pub fn plan_history(&self) -> Result<Vec<AdoptedPlan>> {
        self.plans(None)
    }

    /// Seeds an empty journal from the site configuration: records `members` (author
    /// [`CONFIG_AUTHOR`]), then adopts `plan` with [`Decision::from_configuration`]
    /// dated `ts`'s UTC date. All or nothing, in one transaction. Returns `false`,
    /// changing nothing, when the journal already has entries: the configuration
    /// seeds a community once, and the assembly owns the plan afterwards. No
    /// assembly voted this plan, so no decision rule applies to it; the plan itself
    /// must hold.
    pub fn seed(
        &self,
        plan: &Plan,
        members: &[(String, Vec<Role>)],
        ts: DateTime<Utc>,
    ) -> Result<bool> {
        let decision = Decision::from_configuration(ts.date_naive());
        let problems = plan.problems();
        if !problems.is_empty() {
            return Err(Refusal::InvalidPlan(problems).into());
        }
        let adoption = adoption_payload(plan, &decision)?;
        let joins = members
            .iter()
            .map(|(name, roles)| joined_payload(name, roles))
            .collect::<Result<Vec<_>>>()?;
        self.write(|tx| {
            let empty: bool =
                tx.query_row("SELECT NOT EXISTS (SELECT 1 FROM journal)", [], |row| {
                    row.get(0)
                })?;
            if !empty {
                return Ok(false);
            }
            for join in &joins {
                members::record(tx, CONFIG_AUTHOR, join, ts)?;
            }
            let entry = append(tx, EntryKind::PlanAdopted, CONFIG_AUTHOR, &adoption, ts)?;
            apply(tx, &entry)?;
            tracing::info!(
                members = joins.len(),
                "journal seeded from the site configuration"
            );
            Ok(true)
        })
    }

    fn plans(&self, limit: Option<usize>) -> Result<Vec<AdoptedPlan>> {
        let limit = limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        self.read(|conn| plans(conn, limit))
    }
}

fn plans(conn: &Connection, limit: i64) -> Result<Vec<AdoptedPlan>> {
    let mut stmt = conn.prepare(
        "SELECT p.seq, p.adopted_at, p.plan, p.decision, j.author, j.hash
         FROM plans p JOIN journal j ON j.seq = p.seq
         ORDER BY p.seq DESC LIMIT ?1",
    )?;
    let mut rows = stmt.query([limit])?;
    let mut plans = Vec::new();
    while let Some(row) = rows.next()? {
        plans.push(adopted_from_row(row)?);
    }
    Ok(plans)
}

/// The context of a new decision of `motion` at `ts`, from the derived tables.
pub(crate) fn decision_context(
    conn: &Connection,
    motion: Motion,
    ts: DateTime<Utc>,
) -> Result<DecisionContext> {
    let rule = SqlState::new(conn).parameters()?.decision_rule;
    let latest = match motion {
        // The plan from the configuration was voted by no assembly: it dates nothing.
        Motion::Plan => {
            "SELECT p.seq, p.decision FROM plans p JOIN journal j ON j.seq = p.seq
                         WHERE j.author != ?1 ORDER BY p.seq DESC LIMIT 1"
        }
        Motion::Parameters => {
            "SELECT seq, decision FROM ledger_parameters
                               WHERE ?1 IS NOT NULL ORDER BY seq DESC LIMIT 1"
        }
    };
    let previous: Option<(i64, String)> = conn
        .query_row(latest, [CONFIG_AUTHOR], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    let previous_date = previous
        .map(|(seq, text)| {
            serde_json::from_str::<Decision>(&text)
                .map(|d| d.assembly_date)
                .map_err(|e| Error::Corrupt {
                    seq,
                    problem: format!("the stored decision does not decode: {e}"),
                })
        })
        .transpose()?;
    Ok(DecisionContext::at(ts, rule, previous_date))
}

pub(crate) fn adoption_payload(plan: &Plan, decision: &Decision) -> Result<Value> {
    serde_json::to_value(PlanAdopted {
        plan: plan.clone(),
        decision: decision.clone(),
    })
    .map_err(|e| {
        Refusal::InvalidPayload {
            kind: EntryKind::PlanAdopted,
            reason: e.to_string(),
        }
        .into()
    })
}

/// Checks a new `plan_adopted` payload against the site's services and the
/// assembly's rule, and records it as this program writes it.
pub(crate) fn record(
    tx: &Connection,
    author: &str,
    payload: &Value,
    configured: &BTreeSet<String>,
    ts: DateTime<Utc>,
) -> Result<Entry> {
    check_author(author)?;
    let adopted: PlanAdopted =
        serde_json::from_value(payload.clone()).map_err(|e| Refusal::InvalidPayload {
            kind: EntryKind::PlanAdopted,
            reason: e.to_string(),
        })?;
    let problems = adopted.plan.problems_against(configured);
    if !problems.is_empty() {
        return Err(Refusal::InvalidPlan(problems).into());
    }
    let context = decision_context(tx, Motion::Plan, ts)?;
    let mut problems = adopted.decision.problems_in(&context);
    problems.extend(sortition::panel_problems(
        tx,
        &adopted.decision,
        Motion::Plan,
    )?);
    if !problems.is_empty() {
        return Err(Refusal::InvalidDecision(problems).into());
    }
    let payload = adoption_payload(&adopted.plan, &adopted.decision)?;
    let entry = append(tx, EntryKind::PlanAdopted, author, &payload, ts)?;
    apply(tx, &entry)?;
    Ok(entry)
}

/// Whether a `plan_adopted` payload decodes, and why not.
pub(crate) fn decode_adopted(payload: &Value) -> Result<(), String> {
    serde_json::from_value::<PlanAdopted>(payload.clone())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The `plans` row for a `plan_adopted` entry.
pub(crate) fn apply(tx: &Connection, entry: &Entry) -> Result<()> {
    let corrupt = |problem: String| Error::Corrupt {
        seq: entry.seq,
        problem,
    };
    let (Some(plan), Some(decision)) = (entry.payload.get("plan"), entry.payload.get("decision"))
    else {
        return Err(corrupt(
            "a plan_adopted payload without plan or decision".into(),
        ));
    };
    // Decoding proves the row will read back.
    serde_json::from_value::<PlanAdopted>(entry.payload.clone())
        .map_err(|e| corrupt(format!("not a valid plan_adopted payload: {e}")))?;
    tx.execute(
        "INSERT INTO plans (seq, adopted_at, plan, decision) VALUES (?1, ?2, ?3, ?4)",
        params![
            entry.seq,
            format_ts(entry.ts),
            canonical_json(plan),
            canonical_json(decision)
        ],
    )?;
    Ok(())
}

fn adopted_from_row(row: &Row<'_>) -> Result<AdoptedPlan> {
    let seq: i64 = row.get(0)?;
    let corrupt = |problem: String| Error::Corrupt { seq, problem };
    let text = |idx: usize, name: &str| -> Result<String> {
        row.get(idx)
            .map_err(|_| corrupt(format!("column `{name}` is not text")))
    };
    let adopted_at = text(1, "adopted_at")?;
    let adopted_at = parse_canonical_ts(&adopted_at)
        .ok_or_else(|| corrupt(format!("adopted_at `{adopted_at}` is not canonical")))?;
    let plan = serde_json::from_str(&text(2, "plan")?)
        .map_err(|e| corrupt(format!("the stored plan does not decode: {e}")))?;
    let decision = serde_json::from_str(&text(3, "decision")?)
        .map_err(|e| corrupt(format!("the stored decision does not decode: {e}")))?;
    Ok(AdoptedPlan {
        seq,
        adopted_at,
        plan,
        decision,
        author: text(4, "author")?,
        hash: text(5, "hash")?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::assembly::DecisionProblem;
    use crate::plan::{PlanProblem, PlanService, Sources, Split, TierRule};

    fn ts(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn plan(ids: &[&str]) -> Plan {
        Plan {
            tiers: vec![TierRule {
                tier: 1,
                split: Split::Equal,
            }],
            services: ids
                .iter()
                .map(|id| PlanService {
                    id: id.to_string(),
                    tier: 1,
                    min_w: 100.0,
                    max_w: Some(2000.0),
                })
                .collect(),
            sources: Sources::default(),
        }
    }

    fn configured() -> BTreeSet<String> {
        ["clinic-fridge", "a"].map(String::from).into()
    }

    fn decision(present: u32, quorum: u32) -> Decision {
        Decision {
            assembly_date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
            votes_for: 10,
            votes_against: 2,
            votes_abstain: 1,
            quorum_required: quorum,
            present,
            minutes: "Adopted after discussion.".into(),
            panel: None,
        }
    }

    #[test]
    fn adoption_is_recorded_and_read_back() {
        let journal = Journal::open_in_memory().unwrap();
        assert_eq!(journal.active_plan().unwrap(), None);
        let entry = journal
            .adopt_plan(
                &plan(&["clinic-fridge"]),
                &decision(14, 10),
                &configured(),
                "Alice",
                ts("2026-11-22T10:00:00Z"),
            )
            .unwrap();
        let active = journal.active_plan().unwrap().unwrap();
        assert_eq!(active.seq, entry.seq);
        assert_eq!(active.hash, entry.hash);
        assert_eq!(active.author, "Alice");
        assert_eq!(active.plan, plan(&["clinic-fridge"]));
        assert_eq!(active.decision, decision(14, 10));
        assert_eq!(active.adopted_at, ts("2026-11-22T10:00:00Z"));
        assert!(!active.is_from_configuration());
    }

    #[test]
    fn quorum_not_reached_is_refused() {
        let journal = Journal::open_in_memory().unwrap();
        let err = journal
            .adopt_plan(
                &plan(&["a"]),
                &decision(9, 10),
                &configured(),
                "Alice",
                ts("2026-11-22T10:00:00Z"),
            )
            .unwrap_err();
        let Error::Refused(Refusal::InvalidDecision(problems)) = &err else {
            panic!("{err}")
        };
        assert_eq!(
            problems,
            &[
                DecisionProblem::QuorumNotReached {
                    present: 9,
                    required: 10
                },
                // 13 votes cast, 9 present.
                DecisionProblem::MoreVotesThanPresent {
                    cast: 13,
                    present: 9
                }
            ]
        );
        assert!(
            err.to_string()
                .contains("quorum not reached: 9 members present, 10 required"),
            "{err}"
        );
        assert_eq!(journal.head().unwrap(), None);
    }

    #[test]
    fn a_plan_naming_a_service_the_site_does_not_have_is_refused() {
        let journal = Journal::open_in_memory().unwrap();
        let err = journal
            .adopt_plan(
                &plan(&["a", "ghost"]),
                &decision(14, 10),
                &configured(),
                "Alice",
                ts("2026-11-22T10:00:00Z"),
            )
            .unwrap_err();
        assert_eq!(
            err.refusal(),
            Some(&Refusal::InvalidPlan(vec![PlanProblem::NotConfigured {
                id: "ghost".into()
            }]))
        );
        assert_eq!(journal.head().unwrap(), None);
    }

    #[test]
    fn a_plan_cannot_be_appended_without_the_sites_services() {
        let journal = Journal::open_in_memory().unwrap();
        let payload = adoption_payload(&plan(&["a"]), &decision(14, 10)).unwrap();
        let err = journal
            .append(
                EntryKind::PlanAdopted,
                "Alice",
                &payload,
                ts("2026-11-22T10:00:00Z"),
            )
            .unwrap_err();
        assert!(
            matches!(
                err.refusal(),
                Some(Refusal::TypedCallOnly {
                    kind: EntryKind::PlanAdopted,
                    ..
                })
            ),
            "{err}"
        );
        assert_eq!(journal.head().unwrap(), None);
    }

    #[test]
    fn seed_uses_the_configuration_decision() {
        let journal = Journal::open_in_memory().unwrap();
        let members = vec![("Alice".to_string(), vec![Role::Assembly])];
        assert!(
            journal
                .seed(&plan(&["a"]), &members, ts("2026-11-22T23:30:00Z"))
                .unwrap()
        );
        let active = journal.active_plan().unwrap().unwrap();
        assert!(active.is_from_configuration());
        assert_eq!(
            active.decision,
            Decision::from_configuration(NaiveDate::from_ymd_opt(2026, 11, 22).unwrap())
        );
        assert_eq!(active.seq, 2);
        // Nobody voted it, so it dates no later decision: an assembly held before
        // the node was installed still adopts.
        let context = journal
            .decision_context(Motion::Plan, ts("2026-11-23T10:00:00Z"))
            .unwrap();
        assert_eq!(context.previous_date, None);
        let mut earlier = decision(14, 10);
        earlier.assembly_date = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        journal
            .adopt_plan(
                &plan(&["a"]),
                &earlier,
                &configured(),
                "Alice",
                ts("2026-11-23T10:00:00Z"),
            )
            .unwrap();
        assert!(journal.verify().unwrap().is_intact());
        assert_eq!(journal.verify().unwrap().warnings, []);
    }

    #[test]
    fn a_failing_seed_records_nothing() {
        let journal = Journal::open_in_memory().unwrap();
        let members = vec![
            ("Alice".to_string(), vec![Role::Assembly]),
            ("alice".to_string(), vec![Role::Resident]),
        ];
        assert!(
            journal
                .seed(&plan(&["a"]), &members, ts("2026-11-22T10:00:00Z"))
                .is_err()
        );
        assert_eq!(journal.head().unwrap(), None);
        assert!(journal.members().unwrap().is_empty());
    }
}
