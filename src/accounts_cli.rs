//! `communalia user …` and `communalia token …`: accounts made, changed and listed
//! on the command line, in the journal a configuration names.

use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use ledger::{Journal, TokenInfo};

use crate::config::Loaded;
use crate::ledger_cli::open_existing;

/// When a token stops acting: `90d` (days from now) or `2027-01-01` (that day,
/// 00:00 UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    After(TimeDelta),
    On(NaiveDate),
}

impl std::str::FromStr for Expiry {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some(days) = s.strip_suffix('d') {
            return match days.parse::<i64>() {
                Ok(days @ 1..=36_500) => Ok(Expiry::After(TimeDelta::days(days))),
                _ => Err(format!(
                    "`{s}`: give a number of days from 1 to 36500 (e.g. 90d) or a date (2027-01-01)"
                )),
            };
        }
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Expiry::On)
            .map_err(|_| format!("`{s}` is neither a number of days (90d) nor a date (2027-01-01)"))
    }
}

impl Expiry {
    pub(crate) fn at(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Expiry::After(span) => now + span,
            Expiry::On(date) => date.and_time(chrono::NaiveTime::MIN).and_utc(),
        }
    }
}

/// `token create`: a token acting as `user`, printed once on standard output.
pub(crate) fn create_token(
    loaded: &Loaded,
    user: &str,
    label: &str,
    expires: Option<Expiry>,
) -> Result<()> {
    let (journal, _) = open_existing(loaded)?;
    let now = Utc::now();
    let expires_at = expires.map(|e| e.at(now));
    let token = journal.create_token(user, label, expires_at, now)?;
    let until = match expires_at {
        Some(end) => format!(" until {}", moment(end)),
        None => String::new(),
    };
    eprintln!(
        "API token acting as `{user}`{until}, shown only this once; send it as \
         `Authorization: Bearer TOKEN`:"
    );
    println!("{token}");
    Ok(())
}

/// `token list`: every token (of `user`, if given), never the token itself.
pub(crate) fn list_tokens(loaded: &Loaded, user: Option<&str>) -> Result<()> {
    let (journal, _) = open_existing(loaded)?;
    let tokens = match user {
        Some(user) => {
            let known = journal
                .members()?
                .iter()
                .any(|m| m.name.eq_ignore_ascii_case(user));
            if !known {
                anyhow::bail!("no member named `{user}`");
            }
            journal.tokens(user)?
        }
        None => journal.all_tokens()?,
    };
    print!("{}", token_table(&tokens, Utc::now()));
    Ok(())
}

/// The tokens as a table, one per line under a heading.
pub(crate) fn token_table(tokens: &[TokenInfo], now: DateTime<Utc>) -> String {
    let mut rows = vec![[
        "ID".to_string(),
        "MEMBER".into(),
        "LABEL".into(),
        "CREATED".into(),
        "EXPIRES".into(),
        "LAST USED".into(),
        "STATE".into(),
    ]];
    for t in tokens {
        let state = match (t.revoked_at, t.expires_at) {
            (Some(at), _) => format!("revoked {}", moment(at)),
            (None, Some(end)) if end <= now => "expired".to_string(),
            _ => "active".to_string(),
        };
        rows.push([
            t.id.to_string(),
            t.member.clone(),
            if t.label.is_empty() {
                "-".into()
            } else {
                t.label.clone()
            },
            moment(t.created_at),
            t.expires_at.map_or_else(|| "never".into(), moment),
            t.last_used_at.map_or_else(|| "never".into(), moment),
            state,
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if tokens.is_empty() {
        out.push_str("(no tokens)\n");
    }
    out
}

fn moment(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `token revoke ID`.
pub(crate) fn revoke_token(loaded: &Loaded, id: i64) -> Result<ExitCode> {
    let (journal, _) = open_existing(loaded)?;
    if journal.revoke_token(id, Utc::now())? {
        eprintln!("token {id} revoked: it no longer acts");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: no token {id} that still acts (see `communalia token list`)");
        Ok(ExitCode::FAILURE)
    }
}

/// `user password NAME`: a new password for a member who has one; every session
/// and API token of theirs ends.
pub(crate) fn change_password(journal: &Journal, name: &str, password: &str) -> Result<()> {
    let signed_out = journal
        .set_password(name, password, Utc::now())
        .with_context(|| format!("cannot change the password of `{name}`"))?;
    eprintln!(
        "password of `{name}` changed; {} session(s) ended and {} API token(s) revoked \
         (make new tokens with `communalia token create`)",
        signed_out.sessions, signed_out.tokens
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn expiry_is_days_from_now_or_a_date() {
        let now = utc("2026-12-07T02:42:00Z");
        assert_eq!(
            "90d".parse::<Expiry>().map(|e| e.at(now)),
            Ok(utc("2027-03-07T02:42:00Z"))
        );
        assert_eq!(
            "2027-01-01".parse::<Expiry>().map(|e| e.at(now)),
            Ok(utc("2027-01-01T00:00:00Z"))
        );
        for bad in ["0d", "-3d", "90", "tomorrow", "2027-13-01", "d"] {
            assert!(bad.parse::<Expiry>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_table_never_shows_a_token_and_says_each_state() {
        let now = utc("2026-12-07T12:00:00Z");
        let token = |id, expires_at, revoked_at| TokenInfo {
            id,
            member: "alba".into(),
            label: "backup".into(),
            created_at: utc("2026-12-01T08:00:00Z"),
            expires_at,
            revoked_at,
            last_used_at: None,
        };
        let table = token_table(
            &[
                token(1, None, None),
                token(2, Some(utc("2026-12-07T11:00:00Z")), None),
                token(3, None, Some(utc("2026-12-05T09:30:00Z"))),
            ],
            now,
        );
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("ID  MEMBER  LABEL"), "{table}");
        let words = |line: &str| line.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            words(lines[1]).ends_with("UTC never never active"),
            "{table}"
        );
        assert!(lines[2].ends_with("expired"), "{table}");
        assert!(
            lines[3].ends_with("revoked 2026-12-05 09:30 UTC"),
            "{table}"
        );
        assert_eq!(token_table(&[], now).lines().last(), Some("(no tokens)"));
    }
}
