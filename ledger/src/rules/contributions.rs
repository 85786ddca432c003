//! Contributions and attestations (`contribution_recorded`, `attestation` and
//! `contribution_validated` entries; `contributions` and `attestations` tables): their
//! payloads, recording them, the rules that apply them, and reading them back.
//!
//! Distinct members other than the contributor attest; the `k`-th approval validates
//! the contribution and, in the same transaction, settles the contributor's demurrage
//! and mints `hours x rate` Communs to them; the `k`-th rejection rejects it. The `k`
//! in force when an attestation is recorded decides, and the rate in force at the
//! validation.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use rusqlite::{Connection, Row, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::communs::{Communs, Hours};
use crate::contributions::{
    Attestation, Attested, Category, Contribution, ContributionState, NewContribution, Verdict,
    comment_problem,
};
use crate::entry::{Entry, EntryKind, format_ts, parse_canonical_ts};
use crate::error::{Error, Refusal, Result};
use crate::journal::Journal;
use crate::journal::chain::{append, check_author};
use crate::rules::balances::{later, require_settled, settle};
use crate::rules::planning;
use crate::rules::sql::SqlState;
use crate::rules::state::{
    AttestationRow, ContributionRow, LedgerState, Stage, decode, encode, require_member,
};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContributionRecorded {
    category: Category,
    hours: f64,
    date: NaiveDate,
    description: String,
    /// The commitment this contribution fulfils, if any; absent otherwise, so that
    /// contributions recorded before the planning board keep their bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    commitment: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttestationPayload {
    contribution: i64,
    verdict: Verdict,
    comment: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContributionValidated {
    contribution: i64,
    member: String,
    hours: f64,
    rate_micro_per_hour: i64,
    minted_micro: i64,
}

impl Journal {
    /// Records `member`'s contribution. Refuses one that does not hold
    /// ([`Refusal::InvalidContribution`], each [`crate::ContributionProblem`] named) and a
    /// member the journal does not know ([`Refusal::UnknownMember`]). Surrounding
    /// spaces of the description are dropped. The entry's `seq` is the
    /// contribution's id.
    pub fn record_contribution(
        &self,
        member: &str,
        contribution: &NewContribution,
        ts: DateTime<Utc>,
    ) -> Result<Entry> {
        // Checked before encoding, so that hours that are not a number are named as
        // such rather than as an undecodable payload.
        let problems = contribution.problems(ts);
        if !problems.is_empty() {
            return Err(Refusal::InvalidContribution(problems).into());
        }
        let payload = contribution_payload(contribution, None);
        self.write(|tx| record(tx, member, &payload, ts))
    }

    /// Records `member`'s contribution as the fulfilment of commitment
    /// `commitment`, as [`Journal::record_contribution`] does; refuses also a
    /// commitment that does not exist ([`Refusal::NoSuchCommitment`]), whose
    /// provider is someone else ([`Refusal::NotAParty`]), or that is not accepted,
    /// released or already fulfilled ([`Refusal::PlanningRule`]). Its validation
    /// writes the fulfilment.
    pub fn record_contribution_fulfilling(
        &self,
        member: &str,
        contribution: &NewContribution,
        commitment: i64,
        ts: DateTime<Utc>,
    ) -> Result<Entry> {
        let problems = contribution.problems(ts);
        if !problems.is_empty() {
            return Err(Refusal::InvalidContribution(problems).into());
        }
        let payload = contribution_payload(contribution, Some(commitment));
        self.write(|tx| record(tx, member, &payload, ts))
    }

    /// Records `member`'s verdict on contribution `id`, and, when it is the `k`-th
    /// approval, settles the contributor's demurrage and mints their Communs in the
    /// same transaction. Refuses: an unknown contribution
    /// ([`Refusal::NoSuchContribution`]) or member ([`Refusal::UnknownMember`]); the
    /// contributor themselves ([`Refusal::SelfAttestation`]); a second verdict by the
    /// same member ([`Refusal::AlreadyAttested`]); a contribution already validated or
    /// rejected ([`Refusal::ContributionDecided`]); a comment that does not hold
    /// ([`Refusal::InvalidComment`]: a rejection must say why).
    pub fn attest(
        &self,
        id: i64,
        member: &str,
        verdict: Verdict,
        comment: &str,
        ts: DateTime<Utc>,
    ) -> Result<Attested> {
        let payload = attestation_payload(id, verdict, comment);
        self.write(|tx| attest(tx, member, &payload, ts))
    }

    /// Every contribution, newest first, with its attestations.
    pub fn contributions(&self) -> Result<Vec<Contribution>> {
        self.read(|conn| select_contributions(conn, None))
    }

    /// One contribution by id.
    pub fn contribution(&self, id: i64) -> Result<Option<Contribution>> {
        self.read(|conn| Ok(select_contributions(conn, Some(id))?.into_iter().next()))
    }

    /// Hours of the contributions validated at or after `since` (by the time of their
    /// validation), e.g. "this week: 42 hours validated" on the wall screen.
    pub fn hours_validated_since(&self, since: DateTime<Utc>) -> Result<Hours> {
        let since = format_ts(since);
        self.read(|conn| {
            let centihours: i64 = conn.query_row(
                "SELECT coalesce(sum(c.centihours), 0) FROM contributions c
                 JOIN journal j ON j.seq = c.decided_seq
                 WHERE c.state = 'validated' AND j.ts >= ?1",
                [since],
                |row| row.get(0),
            )?;
            Ok(Hours::from_centihours(
                u64::try_from(centihours).unwrap_or(0),
            ))
        })
    }

    /// Each validation at or after `since`, oldest first: when the contribution
    /// was validated and its hours. What [`Journal::hours_validated_since`] sums,
    /// for a caller that needs the sum as it stood at several past moments (the
    /// week's hours of minutes resent to a federation).
    pub fn validations_since(&self, since: DateTime<Utc>) -> Result<Vec<(DateTime<Utc>, Hours)>> {
        let since = format_ts(since);
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT j.ts, c.centihours FROM contributions c
                 JOIN journal j ON j.seq = c.decided_seq
                 WHERE c.state = 'validated' AND j.ts >= ?1
                 ORDER BY j.seq",
            )?;
            let rows = stmt.query_map([since], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (ts, centihours) = row?;
                // The journal writes its own instants; one it cannot read back is
                // left out rather than guessed.
                if let Some(ts) = parse_canonical_ts(&ts) {
                    out.push((
                        ts,
                        Hours::from_centihours(u64::try_from(centihours).unwrap_or(0)),
                    ));
                }
            }
            Ok(out)
        })
    }
}

pub(crate) fn contribution_payload(c: &NewContribution, commitment: Option<i64>) -> Value {
    let mut payload = serde_json::json!({
        "category": c.category,
        "hours": c.hours,
        "date": c.date,
        "description": c.description.trim(),
    });
    if let (Some(id), Value::Object(fields)) = (commitment, &mut payload) {
        fields.insert("commitment".into(), Value::from(id));
    }
    payload
}

fn attestation_payload(contribution: i64, verdict: Verdict, comment: &str) -> Value {
    serde_json::json!({"contribution": contribution, "verdict": verdict, "comment": comment})
}

// ---------------------------------------------------------------------------------
// Writing: the entries each act is made of, appended and applied in one transaction.

pub(crate) fn record(
    tx: &Connection,
    member: &str,
    payload: &Value,
    ts: DateTime<Utc>,
) -> Result<Entry> {
    check_author(member)?;
    let kind = EntryKind::ContributionRecorded;
    let recorded: ContributionRecorded = decode(kind, payload)?;
    // Refused before encoding: a NaN would not survive the trip through JSON.
    let problems = new_contribution(&recorded).problems(ts.trunc_subsecs(3));
    if !problems.is_empty() {
        return Err(Refusal::InvalidContribution(problems).into());
    }
    let entry = append(tx, kind, member, &encode(kind, &recorded)?, ts)?;
    apply_recorded(&mut SqlState::new(tx), &entry)?;
    Ok(entry)
}

pub(crate) fn attest(
    tx: &Connection,
    member: &str,
    payload: &Value,
    ts: DateTime<Utc>,
) -> Result<Attested> {
    check_author(member)?;
    let ts = ts.trunc_subsecs(3);
    let kind = EntryKind::Attestation;
    let attestation: AttestationPayload = decode(kind, payload)?;
    let entry = append(tx, kind, member, &encode(kind, &attestation)?, ts)?;
    let mut state = SqlState::new(tx);
    apply_attestation(&mut state, &entry)?;
    let contribution = state
        .contribution(attestation.contribution)?
        .ok_or(Refusal::NoSuchContribution(attestation.contribution))?;
    if contribution.stage != Stage::Approved {
        return Ok(Attested {
            attestation: entry,
            state: contribution.stage.public(),
            validation: None,
            minted: None,
            fulfilment: None,
        });
    }
    settle(tx, member, &[contribution.member.as_str()], ts)?;
    let rate = state.parameters()?.rate(contribution.category);
    let minted = mint(contribution.hours, rate)?;
    let validated = ContributionValidated {
        contribution: contribution.id,
        member: contribution.member.clone(),
        hours: contribution.hours.as_hours(),
        rate_micro_per_hour: rate.micro(),
        minted_micro: minted.micro(),
    };
    let kind = EntryKind::ContributionValidated;
    let validation = append(tx, kind, member, &encode(kind, &validated)?, ts)?;
    apply_validated(&mut SqlState::new(tx), &validation)?;
    let fulfilment = planning::fulfil(tx, member, contribution.id, ts)?;
    Ok(Attested {
        attestation: entry,
        state: ContributionState::Validated,
        validation: Some(validation),
        minted: Some(minted),
        fulfilment,
    })
}

fn new_contribution(r: &ContributionRecorded) -> NewContribution {
    NewContribution {
        category: r.category,
        hours: r.hours,
        date: r.date,
        description: r.description.clone(),
    }
}

/// `floor(hours x rate)`, in micro-Communs.
fn mint(hours: Hours, rate: Communs) -> Result<Communs> {
    let micro = i128::from(hours.centihours()) * i128::from(rate.micro()) / 100;
    i64::try_from(micro).map(Communs::from_micro).map_err(|_| {
        Refusal::LedgerRule(format!("{hours} hours at {rate} Communs overflow")).into()
    })
}

// ---------------------------------------------------------------------------------
// Applying: what each entry does to the state, and what it must find there.

pub(crate) fn apply_recorded(state: &mut impl LedgerState, entry: &Entry) -> Result<()> {
    let recorded: ContributionRecorded = decode(entry.kind, &entry.payload)?;
    require_member(state, &entry.author)?;
    let problems = new_contribution(&recorded).problems(entry.ts);
    let hours = Hours::from_hours(recorded.hours);
    let (true, Some(hours)) = (problems.is_empty(), hours) else {
        return Err(Refusal::InvalidContribution(problems).into());
    };
    let commitment = recorded.commitment;
    state.put_contribution(&ContributionRow {
        id: entry.seq,
        member: entry.author.clone(),
        category: recorded.category,
        hours,
        date: recorded.date,
        description: recorded.description,
        stage: Stage::Pending,
        approvals: 0,
        rejections: 0,
        minted: None,
        decided_seq: None,
    })?;
    match commitment {
        Some(commitment) => planning::apply_named(state, entry.seq, &entry.author, commitment),
        None => Ok(()),
    }
}

pub(crate) fn apply_attestation(state: &mut impl LedgerState, entry: &Entry) -> Result<()> {
    let attestation: AttestationPayload = decode(entry.kind, &entry.payload)?;
    let id = attestation.contribution;
    let member = entry.author.as_str();
    let mut contribution = state
        .contribution(id)?
        .ok_or(Refusal::NoSuchContribution(id))?;
    require_member(state, member)?;
    if contribution.member == member {
        return Err(Refusal::SelfAttestation {
            member: member.to_string(),
            contribution: id,
        }
        .into());
    }
    match contribution.stage {
        Stage::Pending => {}
        Stage::Approved => {
            return Err(Refusal::LedgerRule(format!(
                "contribution {id} has the approvals it needs and awaits its validation"
            ))
            .into());
        }
        decided @ (Stage::Validated | Stage::Rejected) => {
            return Err(Refusal::ContributionDecided {
                contribution: id,
                state: decided.public(),
            }
            .into());
        }
    }
    if state.has_attested(id, member)? {
        return Err(Refusal::AlreadyAttested {
            member: member.to_string(),
            contribution: id,
        }
        .into());
    }
    if let Some(problem) = comment_problem(attestation.verdict, &attestation.comment) {
        return Err(Refusal::InvalidComment(problem).into());
    }
    let needed = state.parameters()?.attestations_needed;
    match attestation.verdict {
        Verdict::Approve => {
            contribution.approvals += 1;
            if contribution.approvals >= needed {
                contribution.stage = Stage::Approved;
            }
        }
        Verdict::Reject => {
            contribution.rejections += 1;
            if contribution.rejections >= needed {
                contribution.stage = Stage::Rejected;
                contribution.decided_seq = Some(entry.seq);
            }
        }
    }
    state.put_contribution(&contribution)?;
    state.add_attestation(&AttestationRow {
        seq: entry.seq,
        contribution: id,
        member: member.to_string(),
        verdict: attestation.verdict,
        comment: attestation.comment,
    })
}

pub(crate) fn apply_validated(state: &mut impl LedgerState, entry: &Entry) -> Result<()> {
    let validated: ContributionValidated = decode(entry.kind, &entry.payload)?;
    let id = validated.contribution;
    let mut contribution = state
        .contribution(id)?
        .ok_or(Refusal::NoSuchContribution(id))?;
    let rule = |problem: String| Err(Refusal::LedgerRule(problem).into());
    if contribution.stage != Stage::Approved {
        return rule(format!(
            "contribution {id} is {} without the approvals it needs: it cannot be validated",
            contribution.stage.public()
        ));
    }
    if validated.member != contribution.member {
        return rule(format!(
            "contribution {id} is `{}`'s, not `{}`'s",
            contribution.member, validated.member
        ));
    }
    if Hours::from_hours(validated.hours) != Some(contribution.hours) {
        return rule(format!(
            "contribution {id} counts {} hours, not {}",
            contribution.hours, validated.hours
        ));
    }
    let parameters = state.parameters()?;
    let rate = parameters.rate(contribution.category);
    if validated.rate_micro_per_hour != rate.micro() {
        return rule(format!(
            "the rate for `{}` is {rate} Communs per hour, not {}",
            contribution.category,
            Communs::from_micro(validated.rate_micro_per_hour)
        ));
    }
    let minted = mint(contribution.hours, rate)?;
    if validated.minted_micro != minted.micro() {
        return rule(format!(
            "contribution {id} mints {minted} Communs, not {}",
            Communs::from_micro(validated.minted_micro)
        ));
    }
    let member = contribution.member.clone();
    let mut account = state.account(&member)?.unwrap_or_default();
    require_settled(&member, &account, &parameters, entry.ts)?;
    account.balance = account
        .balance
        .checked_add(minted)
        .ok_or_else(|| Refusal::LedgerRule(format!("the balance of `{member}` overflows")))?;
    account.settled_at = later(account.settled_at, entry.ts);
    account.last_seq = entry.seq;
    state.put_account(&member, &account)?;
    let mut totals = state.totals()?;
    totals.minted = totals
        .minted
        .checked_add(minted)
        .ok_or_else(|| Refusal::LedgerRule("the total minted overflows".into()))?;
    totals.last_seq = entry.seq;
    state.put_totals(&totals)?;
    contribution.stage = Stage::Validated;
    contribution.minted = Some(minted);
    contribution.decided_seq = Some(entry.seq);
    state.put_contribution(&contribution)
}

// ---------------------------------------------------------------------------------
// Reading.

fn select_contributions(conn: &Connection, id: Option<i64>) -> Result<Vec<Contribution>> {
    let filter = if id.is_some() {
        "WHERE c.id = ?1"
    } else {
        "WHERE ?1 IS NULL"
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT c.id, c.member, c.category, c.centihours, c.date, c.description, j.ts,
                c.state, c.minted_micro, d.ts
         FROM contributions c JOIN journal j ON j.seq = c.id
         LEFT JOIN journal d ON d.seq = c.decided_seq
         {filter} ORDER BY c.id DESC"
    ))?;
    let mut rows = stmt.query(params![id])?;
    let mut contributions = Vec::new();
    while let Some(row) = rows.next()? {
        contributions.push(contribution_from_row(row)?);
    }
    let mut stmt = conn.prepare(&format!(
        "SELECT a.seq, a.contribution, a.member, a.verdict, a.comment, j.ts
         FROM attestations a JOIN journal j ON j.seq = a.seq
         {} ORDER BY a.seq",
        if id.is_some() {
            "WHERE a.contribution = ?1"
        } else {
            "WHERE ?1 IS NULL"
        }
    ))?;
    let mut rows = stmt.query(params![id])?;
    let mut by_contribution: BTreeMap<i64, Vec<Attestation>> = BTreeMap::new();
    while let Some(row) = rows.next()? {
        let (contribution, attestation) = attestation_from_row(row)?;
        by_contribution
            .entry(contribution)
            .or_default()
            .push(attestation);
    }
    for c in &mut contributions {
        c.attestations = by_contribution.remove(&c.id).unwrap_or_default();
    }
    Ok(contributions)
}

fn contribution_from_row(row: &Row<'_>) -> Result<Contribution> {
    let id: i64 = row.get(0)?;
    let corrupt = |problem: String| Error::Corrupt { seq: id, problem };
    let text = |idx: usize, name: &str| -> Result<String> {
        row.get(idx)
            .map_err(|_| corrupt(format!("contribution column `{name}` is not text")))
    };
    let ts = |text: &str| {
        parse_canonical_ts(text).ok_or_else(|| corrupt(format!("ts `{text}` is not canonical")))
    };
    let category = text(2, "category")?.parse::<Category>().map_err(corrupt)?;
    let centihours: i64 = row
        .get(3)
        .map_err(|_| corrupt("contribution hours are not an integer".into()))?;
    let date = text(4, "date")?;
    let date = date
        .parse::<NaiveDate>()
        .map_err(|_| corrupt(format!("contribution date `{date}` is not a date")))?;
    let state = match text(7, "state")?.as_str() {
        "validated" => ContributionState::Validated,
        "rejected" => ContributionState::Rejected,
        // "approved" only lasts inside the transaction of the k-th approval.
        "pending" | "approved" => ContributionState::Pending,
        other => return Err(corrupt(format!("unknown contribution state `{other}`"))),
    };
    let minted: Option<i64> = row
        .get(8)
        .map_err(|_| corrupt("minted amount is not an integer".into()))?;
    let decided_at: Option<String> = row
        .get(9)
        .map_err(|_| corrupt("decision ts is not text".into()))?;
    Ok(Contribution {
        id,
        member: text(1, "member")?,
        category,
        hours: Hours::from_centihours(
            u64::try_from(centihours).map_err(|_| corrupt("negative hours".into()))?,
        ),
        date,
        description: text(5, "description")?,
        recorded_at: ts(&text(6, "ts")?)?,
        state,
        attestations: Vec::new(),
        minted: minted.map(Communs::from_micro),
        decided_at: decided_at.as_deref().map(ts).transpose()?,
    })
}

fn attestation_from_row(row: &Row<'_>) -> Result<(i64, Attestation)> {
    let seq: i64 = row.get(0)?;
    let corrupt = |problem: String| Error::Corrupt { seq, problem };
    let text = |idx: usize, name: &str| -> Result<String> {
        row.get(idx)
            .map_err(|_| corrupt(format!("attestation column `{name}` is not text")))
    };
    let contribution: i64 = row
        .get(1)
        .map_err(|_| corrupt("attestation contribution is not an integer".into()))?;
    let ts = text(5, "ts")?;
    Ok((
        contribution,
        Attestation {
            seq,
            member: text(2, "member")?,
            verdict: text(3, "verdict")?.parse().map_err(corrupt)?,
            comment: text(4, "comment")?,
            ts: parse_canonical_ts(&ts)
                .ok_or_else(|| corrupt(format!("ts `{ts}` is not canonical")))?,
        },
    ))
}
