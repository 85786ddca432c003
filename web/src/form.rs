//! Reading the members' pages' forms (`application/x-www-form-urlencoded`): the
//! fields as typed, and a [`FormProblem`] naming the field for each value that
//! cannot be read. A reader that finds a problem returns `None`; its caller stands
//! in a value that raises no other problem, so that the rules still run on the
//! rest and one round trip shows every problem.

use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, LOCATION};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use dashboards::{DecisionForm, FormField, FormProblem};
use ledger::Decision;

use crate::auth::CSRF_FIELD;

/// Back to a member's page after a recorded form (303), with `query` saying what
/// was done. The forms post to their own anchor so that a refusal lands beside
/// them; a success lands on its confirmation at the top (`#done`) instead.
pub(crate) fn done(page: &str, query: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (LOCATION, format!("{page}?{query}#done")),
            (CACHE_CONTROL, "no-store".to_string()),
        ],
    )
        .into_response()
}

/// The form's fields in order, names and values decoded, without the
/// anti-forgery token (which the guard of every such route has checked).
pub(crate) fn fields(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .filter(|(k, _)| k != CSRF_FIELD)
        .collect()
}

/// A number as people type it: a decimal point or comma.
pub(crate) fn decimal(value: &str) -> Option<f64> {
    value
        .trim()
        .replace(',', ".")
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

/// `value` as a number, or a problem naming `field`.
pub(crate) fn number(
    field: FormField,
    value: &str,
    problems: &mut Vec<FormProblem>,
) -> Option<f64> {
    let number = decimal(value);
    if number.is_none() {
        problems.push(FormProblem::NotANumber {
            field,
            value: value.to_string(),
        });
    }
    number
}

/// [`number`], for a field that must be filled in.
pub(crate) fn required_number(
    field: FormField,
    value: &str,
    problems: &mut Vec<FormProblem>,
) -> Option<f64> {
    if value.trim().is_empty() {
        problems.push(FormProblem::Missing(field));
        return None;
    }
    number(field, value, problems)
}

/// `value` as a whole number of 0 or more, for a field that must be filled in.
pub(crate) fn whole(field: FormField, value: &str, problems: &mut Vec<FormProblem>) -> Option<u32> {
    if value.trim().is_empty() {
        problems.push(FormProblem::Missing(field));
        return None;
    }
    let whole = value.trim().parse::<u32>().ok();
    if whole.is_none() {
        problems.push(FormProblem::NotAWholeNumber {
            field,
            value: value.to_string(),
        });
    }
    whole
}

/// `value` as a date (YYYY-MM-DD), for a field that must be filled in.
pub(crate) fn date(
    field: FormField,
    value: &str,
    problems: &mut Vec<FormProblem>,
) -> Option<NaiveDate> {
    if value.trim().is_empty() {
        problems.push(FormProblem::Missing(field));
        return None;
    }
    let date = NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d").ok();
    if date.is_none() {
        problems.push(FormProblem::NotADate {
            field,
            value: value.to_string(),
        });
    }
    date
}

/// The decision record the form describes, with its problems: first the fields
/// that cannot be read, then what the record itself gets wrong (quorum, votes).
/// An unreadable count of members present stands in as "enough", an unreadable
/// quorum as 1 and unreadable votes as none. The votes are judged under the
/// assembly's rule, and the date against the previous adoption's, by the ledger
/// once the record reads whole.
pub(crate) fn decision(form: &DecisionForm, problems: &mut Vec<FormProblem>) -> Decision {
    let assembly_date = date(FormField::AssemblyDate, &form.assembly_date, problems);
    let votes_for = whole(FormField::VotesFor, &form.votes_for, problems);
    let votes_against = whole(FormField::VotesAgainst, &form.votes_against, problems);
    let votes_abstain = whole(FormField::VotesAbstain, &form.votes_abstain, problems);
    let quorum = whole(FormField::QuorumRequired, &form.quorum_required, problems);
    let present = whole(FormField::Present, &form.present, problems);
    if form.minutes.trim().is_empty() {
        problems.push(FormProblem::Missing(FormField::Minutes));
    }
    // Empty: the assembly took it; else the draw whose panel did.
    let panel = if form.panel.trim().is_empty() {
        None
    } else {
        whole(FormField::Panel, &form.panel, problems).map(i64::from)
    };
    let decision = Decision {
        assembly_date: assembly_date.unwrap_or_default(),
        votes_for: votes_for.unwrap_or(0),
        votes_against: votes_against.unwrap_or(0),
        votes_abstain: votes_abstain.unwrap_or(0),
        quorum_required: quorum.unwrap_or(1),
        present: present.unwrap_or(u32::MAX),
        minutes: form.minutes.trim().to_string(),
        panel,
    };
    problems.extend(decision.problems().into_iter().map(FormProblem::Decision));
    decision
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_take_a_point_or_a_comma() {
        assert_eq!(decimal("1,5"), Some(1.5));
        assert_eq!(decimal(" 2.25 "), Some(2.25));
        assert_eq!(decimal("abc"), None);
        assert_eq!(decimal("inf"), None);
    }

    #[test]
    fn the_anti_forgery_token_is_not_a_field() {
        let body = format!("{CSRF_FIELD}=abc&name=Ana+B&note=%C3%A9t%C3%A9");
        assert_eq!(
            fields(body.as_bytes()),
            [
                ("name".to_string(), "Ana B".to_string()),
                ("note".to_string(), "été".to_string())
            ]
        );
    }

    /// Every field of the record that cannot be read is named, then what the
    /// record itself gets wrong; unreadable counts stand in as values that add
    /// no problem of their own.
    #[test]
    fn a_decision_record_names_each_problem() {
        let form = DecisionForm {
            assembly_date: "12/03/2026".into(),
            votes_for: "9".into(),
            votes_against: "-1".into(),
            votes_abstain: String::new(),
            quorum_required: "10".into(),
            present: "8".into(),
            minutes: " ".into(),
            panel: String::new(),
        };
        let mut problems = Vec::new();
        let record = decision(&form, &mut problems);
        assert_eq!(
            problems,
            [
                FormProblem::NotADate {
                    field: FormField::AssemblyDate,
                    value: "12/03/2026".into()
                },
                FormProblem::NotAWholeNumber {
                    field: FormField::VotesAgainst,
                    value: "-1".into()
                },
                FormProblem::Missing(FormField::VotesAbstain),
                FormProblem::Missing(FormField::Minutes),
                FormProblem::Decision(ledger::DecisionProblem::QuorumNotReached {
                    present: 8,
                    required: 10
                }),
                FormProblem::Decision(ledger::DecisionProblem::MoreVotesThanPresent {
                    cast: 9,
                    present: 8
                }),
            ]
        );
        assert_eq!((record.votes_for, record.votes_against), (9, 0));
    }

    /// A quorum of 0 is a decision nobody attended; a quorum that cannot be read
    /// is named once, as unreadable, and not also as a quorum of 0.
    #[test]
    fn a_quorum_must_be_at_least_one_member() {
        let form = |quorum: &str| DecisionForm {
            assembly_date: "2026-03-12".into(),
            votes_for: "5".into(),
            votes_against: "1".into(),
            votes_abstain: "0".into(),
            quorum_required: quorum.into(),
            present: "6".into(),
            minutes: "Voté.".into(),
            panel: String::new(),
        };
        let mut problems = Vec::new();
        decision(&form("0"), &mut problems);
        assert_eq!(
            problems,
            [FormProblem::Decision(ledger::DecisionProblem::NoQuorum)]
        );
        let mut problems = Vec::new();
        let record = decision(&form("un"), &mut problems);
        assert_eq!(
            problems,
            [FormProblem::NotAWholeNumber {
                field: FormField::QuorumRequired,
                value: "un".into()
            }]
        );
        assert_eq!(record.quorum_required, 1);
        let mut problems = Vec::new();
        decision(&form("6"), &mut problems);
        assert_eq!(problems, []);
    }
}
