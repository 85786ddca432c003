//! The contribution ledger's state as the derived tables hold it, read and written
//! inside the journal's transaction.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::communs::{Communs, Hours};
use crate::entry::{format_ts, parse_canonical_ts};
use crate::error::{Error, Result};
use crate::members::Role;
use crate::parameters::LedgerParameters;
use crate::rules::planning;
use crate::rules::state::{
    Account, AttestationRow, CommitmentRow, ContributionRow, FulfilmentRow, IntentRow, LedgerState,
    Stage, Totals, TransferRow, parameters_from_stored,
};

/// The derived tables, inside a transaction.
pub(crate) struct SqlState<'c> {
    conn: &'c Connection,
}

impl<'c> SqlState<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Self {
        SqlState { conn }
    }
}

const SELECT_CONTRIBUTION: &str = "SELECT id, member, category, centihours, date, description,
    state, approvals, rejections, minted_micro, decided_seq FROM contributions";

fn contribution_row(row: &Row<'_>) -> Result<ContributionRow> {
    let id: i64 = row.get(0)?;
    let corrupt = |problem: String| Error::Corrupt { seq: id, problem };
    let bad = |name: &str| corrupt(format!("contributions column `{name}` does not read"));
    let category: String = row.get(2).map_err(|_| bad("category"))?;
    let centihours: i64 = row.get(3).map_err(|_| bad("centihours"))?;
    let date: String = row.get(4).map_err(|_| bad("date"))?;
    let stage: String = row.get(6).map_err(|_| bad("state"))?;
    let minted: Option<i64> = row.get(9).map_err(|_| bad("minted_micro"))?;
    Ok(ContributionRow {
        id,
        member: row.get(1).map_err(|_| bad("member"))?,
        category: category.parse().map_err(corrupt)?,
        hours: Hours::from_centihours(u64::try_from(centihours).map_err(|_| bad("centihours"))?),
        date: date.parse().map_err(|_| bad("date"))?,
        description: row.get(5).map_err(|_| bad("description"))?,
        stage: Stage::parse(&stage).ok_or_else(|| bad("state"))?,
        approvals: row.get(7).map_err(|_| bad("approvals"))?,
        rejections: row.get(8).map_err(|_| bad("rejections"))?,
        minted: minted.map(Communs::from_micro),
        decided_seq: row.get(10).map_err(|_| bad("decided_seq"))?,
    })
}

fn account_row(row: &Row<'_>) -> Result<(String, Account)> {
    let member: String = row.get(0)?;
    let last_seq: i64 = row.get(3)?;
    let corrupt = |problem: String| Error::Corrupt {
        seq: last_seq,
        problem,
    };
    let balance: i64 = row
        .get(1)
        .map_err(|_| corrupt(format!("the balance of `{member}` is not an integer")))?;
    let settled_at: Option<String> = row
        .get(2)
        .map_err(|_| corrupt(format!("settled_at of `{member}` is not text")))?;
    let settled_at = settled_at
        .map(|s| {
            parse_canonical_ts(&s)
                .ok_or_else(|| corrupt(format!("settled_at `{s}` of `{member}` is not canonical")))
        })
        .transpose()?;
    Ok((
        member,
        Account {
            balance: Communs::from_micro(balance),
            settled_at,
            last_seq,
        },
    ))
}

impl LedgerState for SqlState<'_> {
    fn is_member(&mut self, name: &str) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM members WHERE name = ?1)",
            [name],
            |row| row.get(0),
        )?)
    }

    fn parameters(&mut self) -> Result<LedgerParameters> {
        let latest: Option<(i64, String)> = self
            .conn
            .query_row(
                "SELECT seq, parameters FROM ledger_parameters ORDER BY seq DESC LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        match latest {
            None => Ok(LedgerParameters::default()),
            Some((seq, text)) => parameters_from_stored(&text).map_err(|e| Error::Corrupt {
                seq,
                problem: format!("the stored ledger parameters do not decode: {e}"),
            }),
        }
    }

    fn add_parameters(&mut self, seq: i64, parameters: &str, decision: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO ledger_parameters (seq, parameters, decision) VALUES (?1, ?2, ?3)",
            params![seq, parameters, decision],
        )?;
        Ok(())
    }

    fn contribution(&mut self, id: i64) -> Result<Option<ContributionRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{SELECT_CONTRIBUTION} WHERE id = ?1"))?;
        let mut rows = stmt.query([id])?;
        rows.next()?.map(contribution_row).transpose()
    }

    fn put_contribution(&mut self, c: &ContributionRow) -> Result<()> {
        let centihours = i64::try_from(c.hours.centihours()).unwrap_or(i64::MAX);
        self.conn.execute(
            "INSERT INTO contributions (id, member, category, centihours, date, description,
                 state, approvals, rejections, minted_micro, decided_seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (id) DO UPDATE SET member = excluded.member,
                 category = excluded.category, centihours = excluded.centihours,
                 date = excluded.date, description = excluded.description,
                 state = excluded.state, approvals = excluded.approvals,
                 rejections = excluded.rejections, minted_micro = excluded.minted_micro,
                 decided_seq = excluded.decided_seq",
            params![
                c.id,
                c.member,
                c.category.as_str(),
                centihours,
                c.date.to_string(),
                c.description,
                c.stage.as_str(),
                c.approvals,
                c.rejections,
                c.minted.map(Communs::micro),
                c.decided_seq
            ],
        )?;
        Ok(())
    }

    fn has_attested(&mut self, contribution: i64, member: &str) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM attestations WHERE contribution = ?1 AND member = ?2)",
            params![contribution, member],
            |row| row.get(0),
        )?)
    }

    fn add_attestation(&mut self, a: &AttestationRow) -> Result<()> {
        self.conn.execute(
            "INSERT INTO attestations (seq, contribution, member, verdict, comment)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                a.seq,
                a.contribution,
                a.member,
                a.verdict.as_str(),
                a.comment
            ],
        )?;
        Ok(())
    }

    fn account(&mut self, member: &str) -> Result<Option<Account>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT member, balance_micro, settled_at, last_seq FROM balances WHERE member = ?1",
        )?;
        let mut rows = stmt.query([member])?;
        Ok(rows.next()?.map(account_row).transpose()?.map(|(_, a)| a))
    }

    fn accounts(&mut self) -> Result<Vec<(String, Account)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT member, balance_micro, settled_at, last_seq FROM balances ORDER BY member",
        )?;
        let mut rows = stmt.query([])?;
        let mut all = Vec::new();
        while let Some(row) = rows.next()? {
            all.push(account_row(row)?);
        }
        Ok(all)
    }

    fn put_account(&mut self, member: &str, a: &Account) -> Result<()> {
        self.conn.execute(
            "INSERT INTO balances (member, balance_micro, settled_at, last_seq)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (member) DO UPDATE SET balance_micro = excluded.balance_micro,
                 settled_at = excluded.settled_at, last_seq = excluded.last_seq",
            params![
                member,
                a.balance.micro(),
                a.settled_at.map(format_ts),
                a.last_seq
            ],
        )?;
        Ok(())
    }

    fn totals(&mut self) -> Result<Totals> {
        let totals = self
            .conn
            .query_row(
                "SELECT commons_micro, minted_micro, last_seq FROM ledger_totals WHERE id = 1",
                [],
                |row| {
                    Ok(Totals {
                        commons: Communs::from_micro(row.get(0)?),
                        minted: Communs::from_micro(row.get(1)?),
                        last_seq: row.get(2)?,
                    })
                },
            )
            .optional()?;
        Ok(totals.unwrap_or_default())
    }

    fn put_totals(&mut self, t: &Totals) -> Result<()> {
        self.conn.execute(
            "INSERT INTO ledger_totals (id, commons_micro, minted_micro, last_seq)
             VALUES (1, ?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET commons_micro = excluded.commons_micro,
                 minted_micro = excluded.minted_micro, last_seq = excluded.last_seq",
            params![t.commons.micro(), t.minted.micro(), t.last_seq],
        )?;
        Ok(())
    }

    fn add_transfer(&mut self, t: &TransferRow) -> Result<()> {
        self.conn.execute(
            "INSERT INTO transfers (seq, from_member, to_member, amount_micro, memo, intent)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![t.seq, t.from, t.to, t.amount.micro(), t.memo, t.intent],
        )?;
        Ok(())
    }

    fn has_role(&mut self, name: &str, role: Role) -> Result<bool> {
        let roles: Option<String> = self
            .conn
            .query_row("SELECT roles FROM members WHERE name = ?1", [name], |row| {
                row.get(0)
            })
            .optional()?;
        Ok(roles
            .and_then(|r| serde_json::from_str::<Vec<Role>>(&r).ok())
            .is_some_and(|r| r.contains(&role)))
    }

    fn intent(&mut self, id: i64) -> Result<Option<IntentRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{} WHERE id = ?1", planning::SELECT_INTENT))?;
        let mut rows = stmt.query([id])?;
        rows.next()?.map(planning::intent_row).transpose()
    }

    fn put_intent(&mut self, row: &IntentRow) -> Result<()> {
        planning::put_intent(self.conn, row)
    }

    fn commitment(&mut self, id: i64) -> Result<Option<CommitmentRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{} WHERE id = ?1", planning::SELECT_COMMITMENT))?;
        let mut rows = stmt.query([id])?;
        rows.next()?.map(planning::commitment_row).transpose()
    }

    fn put_commitment(&mut self, row: &CommitmentRow) -> Result<()> {
        planning::put_commitment(self.conn, row)
    }

    fn commitments_on(&mut self, intent: i64) -> Result<Vec<CommitmentRow>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{} WHERE intent = ?1 ORDER BY id",
            planning::SELECT_COMMITMENT
        ))?;
        let mut rows = stmt.query([intent])?;
        let mut found = Vec::new();
        while let Some(row) = rows.next()? {
            found.push(planning::commitment_row(row)?);
        }
        Ok(found)
    }

    fn fulfilment(&mut self, contribution: i64) -> Result<Option<FulfilmentRow>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{} WHERE contribution = ?1",
            planning::SELECT_FULFILMENT
        ))?;
        let mut rows = stmt.query([contribution])?;
        rows.next()?.map(planning::fulfilment_row).transpose()
    }

    fn put_fulfilment(&mut self, row: &FulfilmentRow) -> Result<()> {
        planning::put_fulfilment(self.conn, row)
    }
}
