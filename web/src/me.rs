//! A member's own household and data (DESIGN.md §10): `/me` (its meters live and
//! over the last day, its grants with the forms to give and revoke consent, the
//! log of reads under a grant, its erasures), the same as JSON
//! (`/api/me/consent`), and `GET /api/me/export`, everything about the member as
//! one tar archive.
//!
//! A household's members may also ask from `/me` for its readings to be erased
//! (`/me/erasure`, after a confirmation naming what; `POST /api/me/erasure`). The
//! request is recorded in the journal and carried out by the node at its next
//! start (or `communalia household erase --pending`), with the history and the
//! write-ahead log closed: rewriting the history's files while the node flushes
//! and compacts them could bring erased rows back, and the log a running node
//! writes to holds them too. `/me` shows the request pending, then done.
//!
//! Any signed-in member may call these routes: who may grant or revoke for a
//! household is the journal's rule (a member of that household, as the
//! configuration lists them), checked by its typed calls, not a role.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use dashboards::{Catalog, GrantForm, MeEraseView, MeView, MeterHour, MeterNow};
use futures::StreamExt;
use ledger::{Entry, EntryKind, Grant, Grantee, Granularity, NewGrant};
use query::consent::{HouseholdConfig, Households};
use query::export::{ExportRange, csv_rows};
use serde::Deserialize;
use serde_json::json;

use crate::api_json::ApiJson;
use crate::archive::Tar;
use crate::auth::CurrentMember;
use crate::form;
use crate::history::viewer_scope;
use crate::lang::PageLang;
use crate::ledger_api::{refused, with_journal};
use crate::{AppError, AppState};

/// The site's households (none on a node that keeps no history).
fn households(state: &AppState) -> std::sync::Arc<Households> {
    state
        .queries
        .as_ref()
        .map(|q| q.households().clone())
        .unwrap_or_default()
}

/// The member's household, or a 422 saying they belong to none, so have no
/// household to consent for (not a 403: they passed the guard, and the request is
/// one no member of no household can make).
fn own_household(state: &AppState, member: &CurrentMember) -> Result<HouseholdConfig, AppError> {
    households(state)
        .of_member(&member.member.name)
        .cloned()
        .ok_or_else(|| {
            AppError::invalid(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "`{}` belongs to no household of this node's configuration: there is \
                     no household's consent to give or revoke for them",
                    member.member.name
                ),
                vec![],
            )
        })
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct PageQuery {
    done: Option<String>,
}

/// The household's grants, access log and erasures.
async fn household_facts(
    state: &AppState,
    household: &str,
) -> Result<
    (
        Vec<Grant>,
        Vec<ledger::AccessRecord>,
        Vec<ledger::RecordedErasure>,
        Vec<ledger::RecordedErasureRequest>,
    ),
    AppError,
> {
    let id = household.to_string();
    let facts = with_journal(state, "household facts", move |j| {
        let grants = j
            .consent_grants()?
            .into_iter()
            .filter(|g| g.household == id)
            .collect();
        Ok((
            grants,
            j.access_log(&id)?,
            j.erasures(&id)?,
            j.erasure_requests(Some(&id))?,
        ))
    })
    .await??;
    Ok(facts)
}

/// The mean power of each of `meters` per hour over the last day, on the member's
/// own scope (so through the same views as every other read).
async fn last_day(
    state: &AppState,
    member: &CurrentMember,
    meters: &[String],
) -> Result<Vec<MeterHour>, AppError> {
    let Some(queries) = state.queries.clone() else {
        return Ok(Vec::new());
    };
    if meters.is_empty() {
        return Ok(Vec::new());
    }
    let scope = viewer_scope(state, &queries, member).await?;
    let to = Utc::now();
    let hours = queries
        .hourly_power(&scope, meters, to - chrono::TimeDelta::hours(24), to, "/me")
        .await?;
    let tz = state.site.timezone;
    Ok(hours
        .into_iter()
        .map(|(hour, meter, mean_w)| MeterHour {
            hour: hour.with_timezone(&tz).format("%d/%m %H:00").to_string(),
            meter,
            mean_w,
        })
        .collect())
}

async fn render(
    state: &AppState,
    lang: &PageLang,
    member: &CurrentMember,
    status: StatusCode,
    form: &GrantForm,
    problems: &[String],
    done: Option<&'static str>,
) -> Result<Response, AppError> {
    let household = households(state).of_member(&member.member.name).cloned();
    let (grants, log, erasures, erasure_requests) = match &household {
        Some(h) => household_facts(state, &h.id).await?,
        None => Default::default(),
    };
    let (meters, hours) = match &household {
        Some(h) => {
            let live = state.live_full.borrow().clone();
            let meters: Vec<MeterNow> = h
                .meters
                .iter()
                .map(|id| {
                    let row = live.devices.iter().find(|d| *d.id == **id);
                    MeterNow {
                        id: id.clone(),
                        name: row.map_or_else(|| id.clone(), |d| d.name.to_string()),
                        power_w: row.and_then(|d| d.power_w),
                        healthy: row.is_some_and(|d| d.healthy),
                    }
                })
                .collect();
            (meters, last_day(state, member, &h.meters).await?)
        }
        None => (Vec::new(), Vec::new()),
    };
    let csrf = member.csrf().unwrap_or_default();
    let html = dashboards::render_me(
        &MeView {
            member: &member.member.name,
            roles: &member.member.roles,
            csrf,
            household: household
                .as_ref()
                .map(|h| (h.id.as_str(), h.name.as_deref().unwrap_or(h.id.as_str()))),
            meters: &meters,
            hours: &hours,
            grants: &grants,
            access_log: &log,
            erasures: &erasures,
            erasure_requests: &erasure_requests,
            form,
            problems,
            done,
            now: Utc::now(),
            timezone: state.site.timezone,
        },
        lang.lang,
        &state.site,
    )?;
    Ok(lang.page(status, html))
}

/// `GET /me`.
pub(crate) async fn page(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
    Query(query): Query<PageQuery>,
) -> Result<Response, AppError> {
    let today = Utc::now().with_timezone(&state.site.timezone).date_naive();
    let form = GrantForm {
        granularity: Granularity::Daily.as_str().into(),
        starts: today.to_string(),
        expires: (today + chrono::Days::new(90)).to_string(),
        ..GrantForm::default()
    };
    let done = match query.done.as_deref() {
        Some("granted") => Some("me.granted_done"),
        Some("revoked") => Some("me.revoked_done"),
        Some("erasure") => Some("me.erasure_requested_done"),
        _ => None,
    };
    render(&state, &lang, &member, StatusCode::OK, &form, &[], done).await
}

/// A grant as asked for, checked for its form; the journal checks the rest.
fn new_grant(
    household: &HouseholdConfig,
    grantee: &str,
    granularity: &str,
    purpose: &str,
    starts: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> Result<NewGrant, Vec<String>> {
    let mut problems = Vec::new();
    let grantee = grantee
        .trim()
        .parse::<Grantee>()
        .map_err(|e| problems.push(format!("grantee: {e}")))
        .ok();
    let granularity = granularity
        .parse::<Granularity>()
        .map_err(|e| problems.push(format!("granularity: {e}")))
        .ok();
    match (grantee, granularity) {
        (Some(grantee), Some(granularity)) if problems.is_empty() => Ok(NewGrant {
            household: household.id.clone(),
            household_members: household.members.clone(),
            grantee,
            granularity,
            purpose: purpose.trim().to_string(),
            starts,
            expires,
        }),
        _ => Err(problems),
    }
}

/// Midnight of `date` in the site's time zone.
fn site_midnight(state: &AppState, date: NaiveDate) -> Option<DateTime<Utc>> {
    state
        .site
        .timezone
        .from_local_datetime(&date.and_hms_opt(0, 0, 0)?)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// `POST /me/consent`: `grantee`, `granularity`, `purpose`, `starts` and
/// `expires` (dates, from midnight to midnight in the site's time).
pub(crate) async fn grant_form(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
    body: Bytes,
) -> Result<Response, AppError> {
    let mut form = GrantForm::default();
    let mut problems = Vec::new();
    for (name, value) in form::fields(&body) {
        match name.as_str() {
            "grantee" => form.grantee = value,
            "granularity" => form.granularity = value,
            "purpose" => form.purpose = value,
            "starts" => form.starts = value,
            "expires" => form.expires = value,
            other => problems.push(format!("unknown field `{other}`")),
        }
    }
    let date = |key: &str, value: &str, problems: &mut Vec<String>| {
        let parsed = NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
            .ok()
            .and_then(|d| site_midnight(&state, d));
        if parsed.is_none() {
            problems.push(format!("{key}: a date such as 2026-12-31, not {value:?}"));
        }
        parsed
    };
    let starts = date("starts", &form.starts, &mut problems);
    let expires = date("expires", &form.expires, &mut problems);
    let household = own_household(&state, &member)?;
    let grant = match (starts, expires) {
        (Some(s), Some(e)) if problems.is_empty() => new_grant(
            &household,
            &form.grantee,
            &form.granularity,
            &form.purpose,
            s,
            e,
        ),
        _ => Err(problems),
    };
    let grant = match grant {
        Ok(g) => g,
        Err(problems) => {
            return render(
                &state,
                &lang,
                &member,
                StatusCode::UNPROCESSABLE_ENTITY,
                &form,
                &problems,
                None,
            )
            .await;
        }
    };
    let name = member.member.name.clone();
    match with_journal(&state, "consent grant", move |j| {
        j.grant_consent(&name, &grant, Utc::now())
    })
    .await?
    {
        Ok(_) => Ok(form::done("/me", "done=granted")),
        Err(ledger::Error::Refused(refusal)) => {
            render(
                &state,
                &lang,
                &member,
                StatusCode::UNPROCESSABLE_ENTITY,
                &form,
                &[refusal.to_string()],
                None,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

async fn revoke(state: &AppState, member: &CurrentMember, grant: i64) -> Result<Entry, AppError> {
    let household = own_household(state, member)?;
    let name = member.member.name.clone();
    match with_journal(state, "consent revocation", move |j| {
        j.revoke_consent(&name, grant, &household.id, &household.members, Utc::now())
    })
    .await?
    {
        Ok(entry) => Ok(entry),
        Err(ledger::Error::Refused(refusal)) => Err(refused(refusal)),
        Err(e) => Err(e.into()),
    }
}

/// `POST /me/consent/{id}/revoke`.
pub(crate) async fn revoke_form(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    match revoke(&state, &member, id).await {
        Ok(_) => Ok(form::done("/me", "done=revoked")),
        Err(AppError::InvalidRequest { message, .. }) => {
            render(
                &state,
                &lang,
                &member,
                StatusCode::UNPROCESSABLE_ENTITY,
                &GrantForm::default(),
                &[message],
                None,
            )
            .await
        }
        Err(e) => Err(e),
    }
}

/// `GET /api/me/consent`: `{"household", "members", "meters", "grants",
/// "access_log", "erasures", "erasure_requests"}` of the member's household (`household` null and the
/// lists empty for a member of none).
pub(crate) async fn consent(
    State(state): State<AppState>,
    member: CurrentMember,
) -> Result<Response, AppError> {
    let Some(household) = households(&state).of_member(&member.member.name).cloned() else {
        return Ok((
            [(CACHE_CONTROL, "no-store")],
            Json(json!({
                "household": null, "members": [], "meters": [], "grants": [],
                "access_log": [], "erasures": [], "erasure_requests": [],
            })),
        )
            .into_response());
    };
    let (grants, log, erasures, erasure_requests) = household_facts(&state, &household.id).await?;
    Ok((
        [(CACHE_CONTROL, "no-store")],
        Json(json!({
            "household": household.id,
            "members": household.members,
            "meters": household.meters,
            "grants": grants,
            "access_log": log,
            "erasures": erasures,
            "erasure_requests": erasure_requests,
        })),
    )
        .into_response())
}

/// The body of `POST /api/me/consent`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrantRequest {
    grantee: String,
    granularity: String,
    purpose: String,
    /// Now when absent.
    #[serde(default)]
    starts: Option<DateTime<Utc>>,
    expires: DateTime<Utc>,
}

/// `POST /api/me/consent` -> 201 `{"seq", "hash"}`.
pub(crate) async fn grant_api(
    State(state): State<AppState>,
    member: CurrentMember,
    ApiJson(request): ApiJson<GrantRequest>,
) -> Result<Response, AppError> {
    let household = own_household(&state, &member)?;
    let now = Utc::now();
    let grant = new_grant(
        &household,
        &request.grantee,
        &request.granularity,
        &request.purpose,
        request.starts.unwrap_or(now),
        request.expires,
    )
    .map_err(|problems| {
        AppError::invalid(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the grant is not valid: {}", problems.join("; ")),
            problems,
        )
    })?;
    let name = member.member.name.clone();
    let entry = match with_journal(&state, "consent grant", move |j| {
        j.grant_consent(&name, &grant, now)
    })
    .await?
    {
        Ok(entry) => entry,
        Err(ledger::Error::Refused(refusal)) => return Err(refused(refusal)),
        Err(e) => return Err(e.into()),
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({"seq": entry.seq, "hash": entry.hash})),
    )
        .into_response())
}

/// `POST /api/me/consent/{id}/revoke` -> `{"seq", "hash"}`.
pub(crate) async fn revoke_api(
    State(state): State<AppState>,
    member: CurrentMember,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    let entry = revoke(&state, &member, id).await?;
    Ok(Json(json!({"seq": entry.seq, "hash": entry.hash})).into_response())
}

/// Why a member may not ask for `household`'s readings to be erased.
enum EraseRefusal {
    /// They belong to no household at all.
    NoHousehold,
    /// Not one of its members (or no such household: told apart from a
    /// household of which they are not a member to nobody).
    NotMember,
}

/// `household` when `member` is one of its members.
fn household_to_erase(
    state: &AppState,
    member: &CurrentMember,
    household: &str,
) -> Result<HouseholdConfig, EraseRefusal> {
    let all = households(state);
    if all.of_member(&member.member.name).is_none() {
        return Err(EraseRefusal::NoHousehold);
    }
    all.all()
        .iter()
        .find(|h| h.id == household && h.members.contains(&member.member.name))
        .cloned()
        .ok_or(EraseRefusal::NotMember)
}

/// Records `member`'s request that `household`'s readings until now be erased.
async fn request_erasure(
    state: &AppState,
    member: &CurrentMember,
    household: HouseholdConfig,
) -> Result<Result<Entry, ledger::Refusal>, AppError> {
    let name = member.member.name.clone();
    let now = Utc::now();
    let request = ledger::ErasureRequest {
        household: household.id.clone(),
        household_members: household.members.clone(),
        meters: household.meters.clone(),
        from: DateTime::<Utc>::UNIX_EPOCH,
        to: now,
    };
    match with_journal(state, "erasure request", move |j| {
        j.request_erasure(&name, &request, now)
    })
    .await?
    {
        Ok(entry) => Ok(Ok(entry)),
        Err(ledger::Error::Refused(refusal)) => Ok(Err(refusal)),
        Err(e) => Err(e.into()),
    }
}

async fn render_erase(
    state: &AppState,
    lang: &PageLang,
    member: &CurrentMember,
    status: StatusCode,
    household: Option<&HouseholdConfig>,
    problems: &[String],
) -> Result<Response, AppError> {
    let html = dashboards::render_me_erase(
        &MeEraseView {
            member: &member.member.name,
            roles: &member.member.roles,
            csrf: member.csrf().unwrap_or_default(),
            household: household.map(|h| {
                (
                    h.id.as_str(),
                    h.name.as_deref().unwrap_or(h.id.as_str()),
                    h.meters.as_slice(),
                )
            }),
            problems,
            now: Utc::now(),
            timezone: state.site.timezone,
        },
        lang.lang,
        &state.site,
    )?;
    Ok(lang.page(status, html))
}

/// `GET /me/erasure`: the confirmation step, naming what would be erased; for a
/// member of no household, a page saying there is nothing of theirs to erase
/// (200, as `/me` says it: reading it asks nothing of anyone).
pub(crate) async fn erase_page(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
) -> Result<Response, AppError> {
    let t = Catalog::for_lang(lang.lang);
    match households(&state).of_member(&member.member.name).cloned() {
        Some(h) => render_erase(&state, &lang, &member, StatusCode::OK, Some(&h), &[]).await,
        None => {
            let problems = [t.t("me.erase_no_household").to_string()];
            render_erase(&state, &lang, &member, StatusCode::OK, None, &problems).await
        }
    }
}

/// `POST /me/erasure`: `household`, and `confirm=yes` once the member has seen
/// the confirmation (without it, the confirmation is shown). 403 for a member of
/// another household or of none; 422 for a field the form does not have.
pub(crate) async fn erase_form(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
    body: Bytes,
) -> Result<Response, AppError> {
    let t = Catalog::for_lang(lang.lang);
    let mut household = None;
    let mut confirmed = false;
    let mut problems = Vec::new();
    for (name, value) in form::fields(&body) {
        match name.as_str() {
            "household" => household = Some(value),
            "confirm" => confirmed = value == "yes",
            other => problems.push(t.tf("me.erase_unknown_field", &[("name", other)])),
        }
    }
    let own = households(&state).of_member(&member.member.name).cloned();
    if !problems.is_empty() {
        return render_erase(
            &state,
            &lang,
            &member,
            StatusCode::UNPROCESSABLE_ENTITY,
            own.as_ref(),
            &problems,
        )
        .await;
    }
    let Some(household) = household else {
        let problems = [t.t("me.erase_missing_household").to_string()];
        return render_erase(
            &state,
            &lang,
            &member,
            StatusCode::UNPROCESSABLE_ENTITY,
            own.as_ref(),
            &problems,
        )
        .await;
    };
    let target = match household_to_erase(&state, &member, &household) {
        Ok(h) => h,
        Err(why) => {
            let problem = match why {
                EraseRefusal::NoHousehold => t.t("me.erase_no_household").to_string(),
                EraseRefusal::NotMember => t.tf("me.erase_not_member", &[("id", &household)]),
            };
            return render_erase(
                &state,
                &lang,
                &member,
                StatusCode::FORBIDDEN,
                None,
                &[problem],
            )
            .await;
        }
    };
    if !confirmed {
        return render_erase(&state, &lang, &member, StatusCode::OK, Some(&target), &[]).await;
    }
    match request_erasure(&state, &member, target.clone()).await? {
        Ok(_) => Ok(form::done("/me", "done=erasure")),
        Err(refusal) => {
            render_erase(
                &state,
                &lang,
                &member,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&target),
                &[refusal.to_string()],
            )
            .await
        }
    }
}

/// The body of `POST /api/me/erasure`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ErasureApiRequest {
    household: String,
}

/// `POST /api/me/erasure` `{"household"}` -> 201 `{"seq", "hash"}`: the request,
/// carried out at the node's next start.
pub(crate) async fn erase_api(
    State(state): State<AppState>,
    member: CurrentMember,
    ApiJson(request): ApiJson<ErasureApiRequest>,
) -> Result<Response, AppError> {
    let target = household_to_erase(&state, &member, &request.household).map_err(|why| {
        let message = match why {
            EraseRefusal::NoHousehold => format!(
                "`{}` belongs to no household: there are no readings of theirs to erase",
                member.member.name
            ),
            EraseRefusal::NotMember => format!(
                "only the members of household `{}` may ask for its readings to be erased",
                request.household
            ),
        };
        AppError::invalid(StatusCode::FORBIDDEN, message.clone(), vec![message])
    })?;
    let entry = match request_erasure(&state, &member, target).await? {
        Ok(entry) => entry,
        Err(refusal) => return Err(refused(refusal)),
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({"seq": entry.seq, "hash": entry.hash})),
    )
        .into_response())
}

/// Whether `entry` is about `member`: theirs, or naming them as the one paid,
/// validated, drawn, or whose household consent it records.
fn concerns(entry: &Entry, member: &str, household: Option<&str>) -> bool {
    if entry.author == member {
        return true;
    }
    let field = |key: &str| entry.payload.get(key).and_then(|v| v.as_str());
    match entry.kind {
        EntryKind::Transfer => field("to") == Some(member),
        EntryKind::ContributionValidated | EntryKind::PanelMemberDeclined => {
            field("member") == Some(member) || field("replacement") == Some(member)
        }
        EntryKind::ConsentGranted
        | EntryKind::ConsentRevoked
        | EntryKind::HouseholdReadingsErased
        | EntryKind::HouseholdErasureRequested => {
            household.is_some() && field("household") == household
        }
        _ => false,
    }
}

/// `GET /api/me/export`: one tar archive of everything about the member:
/// `member.json` (name, roles, household), `journal.json` (every entry they wrote
/// or that names them: contributions, attestations, transfers, decisions entered,
/// consent given, and their household's consent and erasures), `balance.json`,
/// and `readings.csv` (their household's meters, every reading kept).
pub(crate) async fn export(
    State(state): State<AppState>,
    member: CurrentMember,
) -> Result<Response, AppError> {
    let household = households(&state).of_member(&member.member.name).cloned();
    let name = member.member.name.clone();
    let hh = household.as_ref().map(|h| h.id.clone());
    let now = Utc::now();
    let (entries, balances) = with_journal(&state, "member export", move |j| {
        let mut mine = Vec::new();
        let mut after = 0;
        loop {
            let page = j.entries(after, 1000)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            mine.extend(
                page.into_iter()
                    .filter(|e| concerns(e, &name, hh.as_deref())),
            );
        }
        Ok((mine, j.balances(now)?))
    })
    .await??;
    let balance = balances
        .balances
        .iter()
        .find(|b| b.member == member.member.name);
    let mut tar = Tar::default();
    let mtime = now.timestamp();
    let json_bytes = |v: &serde_json::Value| {
        serde_json::to_vec_pretty(v).map_err(|e| AppError::Internal(e.to_string()))
    };
    tar.add(
        "member.json",
        &json_bytes(&json!({
            "name": member.member.name,
            "roles": member.member.roles,
            "joined_at": member.member.joined_at,
            "household": household,
            "exported_at": now,
        }))?,
        mtime,
    );
    tar.add(
        "journal.json",
        &json_bytes(
            &serde_json::to_value(&entries).map_err(|e| AppError::Internal(e.to_string()))?,
        )?,
        mtime,
    );
    tar.add(
        "balance.json",
        &json_bytes(&json!({"at": balances.at, "balance": balance}))?,
        mtime,
    );
    let mut csv = String::from("ts,device,metric,value\n");
    if let (Some(h), Some(queries)) = (&household, state.queries.clone())
        && !h.meters.is_empty()
    {
        let scope = viewer_scope(&state, &queries, &member).await?;
        let range = ExportRange {
            devices: h.meters.clone(),
            ..ExportRange::default()
        };
        let mut stream = queries.export(&scope, &range, "/api/me/export").await?;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| AppError::Internal(e.to_string()))?;
            csv.push_str(&csv_rows(&batch)?);
        }
    }
    tar.add("readings.csv", csv.as_bytes(), mtime);
    // Only letters and digits of the name go into the header.
    let safe: String = member
        .member
        .name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let filename = format!("communalia-{safe}-{}.tar", now.format("%Y%m%d"));
    Ok((
        [
            (CONTENT_TYPE, "application/x-tar".to_string()),
            (CACHE_CONTROL, "no-store".to_string()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        tar.finish(),
    )
        .into_response())
}
