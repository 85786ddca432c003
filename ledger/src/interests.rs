//! Each member's saved interests on the planning board (the classes they want to
//! hear of) and when they last looked at the board, kept beside the journal like
//! accounts, not in it.
//!
//! Why not journal entries: an interest is a personal preference, not an act of the
//! community. Nobody else relies on it, it binds no one, and it changes as often as
//! a member likes: writing it into the append-only, hash-chained journal would make
//! every member's passing curiosity a permanent public record and lengthen the chain
//! for nothing. The `plan_interests` and `plan_seen` tables are not derived from the
//! journal, so a rebuild leaves them alone, and `ledger verify` has nothing to check
//! in them.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use crate::entry::{format_ts, parse_canonical_ts};
use crate::error::{Error, Refusal, Result};
use crate::journal::Journal;
use crate::planning::{Intent, IntentProblem, IntentState, Quantity, class_problem};

/// Most classes a member may save.
pub const MAX_INTERESTS: usize = 20;

impl Journal {
    /// Replaces `member`'s saved interests with `classes` (each a class as intents
    /// have, duplicates dropped; none clears them). Refuses an unknown member and a
    /// class that is not one ([`Refusal::InvalidIntent`], each problem named).
    pub fn set_interests(&self, member: &str, classes: &[String]) -> Result<Vec<String>> {
        let set: BTreeSet<String> = classes.iter().map(|c| c.trim().to_string()).collect();
        let mut problems: Vec<IntentProblem> =
            set.iter().filter_map(|c| class_problem(c)).collect();
        if set.len() > MAX_INTERESTS {
            problems.push(IntentProblem::TooManyInterests {
                count: set.len(),
                max: MAX_INTERESTS,
            });
        }
        if !problems.is_empty() {
            return Err(Refusal::InvalidIntent(problems).into());
        }
        if self.member(member)?.is_none() {
            return Err(Refusal::UnknownMember(member.to_string()).into());
        }
        self.write(|tx| {
            tx.execute("DELETE FROM plan_interests WHERE member = ?1", [member])?;
            for class in &set {
                tx.execute(
                    "INSERT INTO plan_interests (member, class) VALUES (?1, ?2)",
                    params![member, class],
                )?;
            }
            Ok(())
        })?;
        Ok(set.into_iter().collect())
    }

    /// `member`'s saved interests, in order.
    pub fn interests(&self, member: &str) -> Result<Vec<String>> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare("SELECT class FROM plan_interests WHERE member = ?1 ORDER BY class")?;
            let rows = stmt.query_map([member], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Records that `member` looked at the planning board at `at`: what was posted
    /// up to then is no longer new to them.
    pub fn mark_board_seen(&self, member: &str, at: DateTime<Utc>) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO plan_seen (member, seen_at) VALUES (?1, ?2)
                 ON CONFLICT (member) DO UPDATE SET seen_at = excluded.seen_at",
                params![member, format_ts(at)],
            )?;
            Ok(())
        })
    }

    /// When `member` last looked at the planning board, if ever.
    pub fn board_seen(&self, member: &str) -> Result<Option<DateTime<Utc>>> {
        let text: Option<String> = self.read(|conn| {
            Ok(conn
                .query_row(
                    "SELECT seen_at FROM plan_seen WHERE member = ?1",
                    [member],
                    |r| r.get(0),
                )
                .optional()?)
        })?;
        text.map(|t| {
            parse_canonical_ts(&t).ok_or_else(|| Error::CorruptAccount {
                table: "plan_seen",
                problem: format!("seen_at `{t}` of `{member}` is not an instant"),
            })
        })
        .transpose()
    }

    /// The open intents of others in `member`'s saved interests (either direction),
    /// with something left to commit, newest first.
    pub fn interest_matches(&self, member: &str, at: DateTime<Utc>) -> Result<Vec<Intent>> {
        let interests = self.interests(member)?;
        if interests.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .intents(at)?
            .into_iter()
            .filter(|i| {
                i.author != member
                    && i.state == IntentState::Open
                    && i.remaining > Quantity::ZERO
                    && interests.contains(&i.class)
            })
            .collect())
    }

    /// How many open intents of others are new to `member` at `at`: posted after
    /// they last looked at the board (all of them if they never did), and either in
    /// one of their saved interests or matching one of their open intents
    /// ([`Journal::matches`]). Each intent counts once.
    pub fn new_matches(&self, member: &str, at: DateTime<Utc>) -> Result<usize> {
        let seen = self.board_seen(member)?;
        let is_new = |i: &Intent| seen.is_none_or(|s| i.posted_at > s);
        let mut ids: BTreeSet<i64> = self
            .interest_matches(member, at)?
            .iter()
            .filter(|i| is_new(i))
            .map(|i| i.id)
            .collect();
        ids.extend(
            self.matches(member, at)?
                .iter()
                .filter(|m| is_new(&m.theirs))
                .map(|m| m.theirs.id),
        );
        Ok(ids.len())
    }
}
