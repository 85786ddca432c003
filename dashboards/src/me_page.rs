//! `/me`: what a member sees of their own household (DESIGN.md §10): its meters
//! live and over the last day, the consent it gave (with the forms to grant and
//! revoke), who read its readings under a grant, its erasures and the requests
//! for one (with the confirmation step before a request), and the export of
//! everything about the member.

use askama::Template;
use ledger::{AccessRecord, Grant, Granularity, RecordedErasure, RecordedErasureRequest, Role};

use crate::layout::{Layout, render};
use crate::nav::member_nav;
use crate::{Catalog, Lang, Result, SiteInfo};

/// One of the household's meters as it reads now.
#[derive(Debug, Clone)]
pub struct MeterNow {
    pub id: String,
    pub name: String,
    pub power_w: Option<f64>,
    pub healthy: bool,
}

/// One hour of one meter: its mean power.
#[derive(Debug, Clone)]
pub struct MeterHour {
    /// The hour, in the site's time ("14:00").
    pub hour: String,
    pub meter: String,
    pub mean_w: f64,
}

/// What the grant form held, to show it again beside its problems.
#[derive(Debug, Clone, Default)]
pub struct GrantForm {
    pub grantee: String,
    pub granularity: String,
    pub purpose: String,
    pub starts: String,
    pub expires: String,
}

/// What `/me` shows.
pub struct MeView<'a> {
    pub member: &'a str,
    pub roles: &'a [Role],
    pub csrf: &'a str,
    /// The member's household: id and name; `None` when they belong to none.
    pub household: Option<(&'a str, &'a str)>,
    pub meters: &'a [MeterNow],
    pub hours: &'a [MeterHour],
    pub grants: &'a [Grant],
    pub access_log: &'a [AccessRecord],
    pub erasures: &'a [RecordedErasure],
    pub erasure_requests: &'a [RecordedErasureRequest],
    pub form: &'a GrantForm,
    pub problems: &'a [String],
    /// A key of the catalog saying what was just done.
    pub done: Option<&'static str>,
    pub now: chrono::DateTime<chrono::Utc>,
    pub timezone: chrono_tz::Tz,
}

struct GrantLine {
    seq: i64,
    grantee: String,
    granularity: String,
    purpose: String,
    period: String,
    state: String,
    revocable: bool,
}

struct LogLine {
    at: String,
    reader: String,
    what: String,
    meters: String,
    grant: i64,
}

struct ErasureLine {
    at: String,
    by: String,
    meters: String,
    period: String,
    rows: u64,
}

struct RequestLine {
    seq: i64,
    at: String,
    by: String,
    meters: String,
    until: String,
    /// Pending, or carried out (with the entry and when).
    state: String,
    pending: bool,
}

struct Choice {
    value: &'static str,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "me.html")]
struct MeTemplate<'a> {
    layout: Layout<'a>,
    csrf: &'a str,
    household: Option<String>,
    meters: Vec<(String, String, String)>,
    hours: &'a [MeterHour],
    grants: Vec<GrantLine>,
    log: Vec<LogLine>,
    erasures: Vec<ErasureLine>,
    requests: Vec<RequestLine>,
    can_request: bool,
    form: &'a GrantForm,
    granularities: Vec<Choice>,
    problems: &'a [String],
    done: Option<String>,
}

fn granularity_key(g: Granularity) -> &'static str {
    match g {
        Granularity::Aggregate => "me.granularity_aggregate",
        Granularity::Daily => "me.granularity_daily",
        Granularity::FifteenMinutes => "me.granularity_15min",
        Granularity::Raw => "me.granularity_raw",
    }
}

/// `/me` as a complete HTML document.
pub fn render_me(view: &MeView<'_>, lang: Lang, site: &SiteInfo) -> Result<String> {
    let t = Catalog::for_lang(lang);
    let local = |ts: chrono::DateTime<chrono::Utc>| {
        ts.with_timezone(&view.timezone)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    };
    let day = |ts: chrono::DateTime<chrono::Utc>| {
        ts.with_timezone(&view.timezone)
            .format("%Y-%m-%d")
            .to_string()
    };
    let page = MeTemplate {
        layout: Layout::new(lang, site, t.t("me.title")).with_nav(member_nav(
            "/me",
            view.roles,
            view.member,
            view.csrf,
            t,
        )),
        csrf: view.csrf,
        household: view
            .household
            .map(|(id, name)| t.tf("me.household", &[("name", name), ("id", id)])),
        meters: view
            .meters
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    m.power_w
                        .map(|w| format!("{w:.0} W"))
                        .unwrap_or_else(|| "—".into()),
                    t.t(if m.healthy {
                        "me.meter_up"
                    } else {
                        "me.meter_down"
                    })
                    .to_string(),
                )
            })
            .collect(),
        hours: view.hours,
        grants: view
            .grants
            .iter()
            .map(|g| {
                let state = if g.revoked_at.is_some() {
                    "me.state_revoked"
                } else if g.expires <= view.now {
                    "me.state_expired"
                } else if g.starts > view.now {
                    "me.state_upcoming"
                } else {
                    "me.state_live"
                };
                GrantLine {
                    seq: g.seq,
                    grantee: g.grantee.to_string(),
                    granularity: t.t(granularity_key(g.granularity)).to_string(),
                    purpose: g.purpose.clone(),
                    period: format!("{} → {}", day(g.starts), day(g.expires)),
                    state: t.t(state).to_string(),
                    revocable: g.revoked_at.is_none() && g.expires > view.now,
                }
            })
            .collect(),
        log: view
            .access_log
            .iter()
            .map(|r| LogLine {
                at: local(r.at),
                reader: r.reader.clone(),
                what: r.what.clone(),
                meters: r.meters.join(", "),
                grant: r.grant,
            })
            .collect(),
        erasures: view
            .erasures
            .iter()
            .map(|e| ErasureLine {
                at: local(e.at),
                by: e.by.clone(),
                meters: e.erasure.meters.join(", "),
                period: format!("{} → {}", local(e.erasure.from), local(e.erasure.to)),
                rows: e.erasure.rows,
            })
            .collect(),
        requests: view
            .erasure_requests
            .iter()
            .map(|r| {
                let done = r.done_by_entry.and_then(|seq| {
                    view.erasures
                        .iter()
                        .find(|e| e.seq == seq)
                        .map(|e| (seq, e))
                });
                RequestLine {
                    seq: r.seq,
                    at: local(r.at),
                    by: r.by.clone(),
                    meters: r.request.meters.join(", "),
                    until: local(r.request.to),
                    state: match done {
                        Some((seq, e)) => t.tf(
                            "me.erasure_request_done",
                            &[
                                ("at", &local(e.at)),
                                ("entry", &seq.to_string()),
                                ("rows", &e.erasure.rows.to_string()),
                            ],
                        ),
                        None => t.t("me.erasure_request_pending").to_string(),
                    },
                    pending: r.done_by_entry.is_none(),
                }
            })
            .collect(),
        can_request: view.household.is_some()
            && view
                .erasure_requests
                .iter()
                .all(|r| r.done_by_entry.is_some()),
        form: view.form,
        granularities: Granularity::ALL
            .into_iter()
            .map(|g| Choice {
                value: g.as_str(),
                label: t.t(granularity_key(g)).to_string(),
                selected: view.form.granularity == g.as_str(),
            })
            .collect(),
        problems: view.problems,
        done: view.done.map(|k| t.t(k).to_string()),
    };
    render(&page, "me.html")
}

/// What the confirmation before an erasure request shows.
pub struct MeEraseView<'a> {
    pub member: &'a str,
    pub roles: &'a [Role],
    pub csrf: &'a str,
    /// The household the request is for: id, name and meters; `None` when the
    /// member may ask for none (then only `problems` are shown).
    pub household: Option<(&'a str, &'a str, &'a [String])>,
    pub problems: &'a [String],
    pub now: chrono::DateTime<chrono::Utc>,
    pub timezone: chrono_tz::Tz,
}

#[derive(Template)]
#[template(path = "me_erase.html")]
struct MeEraseTemplate<'a> {
    layout: Layout<'a>,
    csrf: &'a str,
    household_id: Option<&'a str>,
    what: Option<String>,
    problems: &'a [String],
}

/// The confirmation step before asking for a household's readings to be erased,
/// naming what will be erased, as a complete HTML document.
pub fn render_me_erase(view: &MeEraseView<'_>, lang: Lang, site: &SiteInfo) -> Result<String> {
    let t = Catalog::for_lang(lang);
    let now = view
        .now
        .with_timezone(&view.timezone)
        .format("%Y-%m-%d %H:%M")
        .to_string();
    let page = MeEraseTemplate {
        layout: Layout::new(lang, site, t.t("me.erase_title")).with_nav(member_nav(
            "/me",
            view.roles,
            view.member,
            view.csrf,
            t,
        )),
        csrf: view.csrf,
        household_id: view.household.map(|(id, _, _)| id),
        what: view.household.map(|(id, name, meters)| {
            t.tf(
                "me.erase_what",
                &[
                    ("name", name),
                    ("id", id),
                    ("meters", &meters.join(", ")),
                    ("until", &now),
                ],
            )
        }),
        problems: view.problems,
    };
    render(&page, "me_erase.html")
}
