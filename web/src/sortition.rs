//! Assemblies drawn by lot as pages (DESIGN.md §13): `/sortition`, where members
//! opt in and the assembly lists the attributes and prepares and announces a draw
//! (`/assembly/sortition/*`, role `assembly`); the public draw page
//! `/sortition/{id}` for the ceremony (anyone may watch; entering the die needs the
//! role `assembly`), and a seated member declining. Every act goes through the
//! journal's typed calls, which check everything; refusals come back beside the
//! form, phrased in the reader's language where the page knows them.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
use dashboards::{AnnounceForm, DrawView, SortitionForm, SortitionView, sortition_problem_text};
use ledger::{DrawSpec, Mandate, MandateScope, Quota, Refusal, Role};
use serde::Deserialize;

use crate::auth::CurrentMember;
use crate::form;
use crate::lang::PageLang;
use crate::ledger_api::with_journal;
use crate::{AppError, AppState};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct PageQuery {
    done: Option<String>,
}

fn done_key(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "opted" => Some("sortition.opted_done"),
        "opted_out" => Some("sortition.opted_out_done"),
        "keys" => Some("sortition.keys_done"),
        _ => None,
    }
}

/// A refusal of the journal as lines in the reader's language; anything that is
/// not a refusal is an error.
fn problems_of(error: ledger::Error, lang: &PageLang) -> Result<Vec<String>, AppError> {
    match error {
        ledger::Error::Refused(Refusal::InvalidDraw(problems)) => Ok(problems
            .iter()
            .map(|p| sortition_problem_text(p, lang.lang))
            .collect()),
        ledger::Error::Refused(refusal) => Ok(vec![refusal.to_string()]),
        other => Err(AppError::from(other)),
    }
}

/// The page again with a journal refusal beside the form that met it (422).
async fn refused(
    state: &AppState,
    lang: &PageLang,
    member: &CurrentMember,
    e: ledger::Error,
    form: SortitionForm,
) -> Result<Response, AppError> {
    let problems = problems_of(e, lang)?;
    render_page(
        state,
        lang,
        member,
        StatusCode::UNPROCESSABLE_ENTITY,
        &AnnounceForm::default(),
        &problems,
        Some(form),
        None,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn render_page(
    state: &AppState,
    lang: &PageLang,
    member: &CurrentMember,
    status: StatusCode,
    announce: &AnnounceForm,
    problems: &[String],
    problems_for: Option<SortitionForm>,
    done: Option<&'static str>,
) -> Result<Response, AppError> {
    let (keys, pool, draws) = with_journal(state, "sortition page", |j| {
        Ok((j.sortition_keys()?, j.sortition_pool()?, j.draws()?))
    })
    .await??;
    let csrf = member.csrf().unwrap_or_default();
    let html = dashboards::render_sortition(
        &SortitionView {
            new_matches: member.new_matches(state),
            member: &member.member.name,
            roles: &member.member.roles,
            csrf,
            keys: &keys,
            pool: &pool,
            draws: &draws,
            announce,
            problems,
            problems_for,
            done,
        },
        lang.lang,
        &state.site,
    )?;
    Ok(lang.page(status, html))
}

/// `GET /sortition`: opting in, the draws, and for the assembly the preparation.
pub(crate) async fn page(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
    Query(query): Query<PageQuery>,
) -> Result<Response, AppError> {
    let today = Utc::now().with_timezone(&state.site.timezone).date_naive();
    let announce = AnnounceForm {
        size: "7".into(),
        scope: MandateScope::EnergyPriorities.as_str().into(),
        term_end: (today + chrono::Duration::days(90)).to_string(),
        ..AnnounceForm::default()
    };
    render_page(
        &state,
        &lang,
        &member,
        StatusCode::OK,
        &announce,
        &[],
        None,
        done_key(query.done.as_deref()),
    )
    .await
}

/// `POST /sortition/opt`: `opt` = `in` (with `attr.KEY` fields, empty ones not
/// declared) or `out`.
pub(crate) async fn opt(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
    body: Bytes,
) -> Result<Response, AppError> {
    let mut opt_in = None;
    let mut attributes = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, value) in form::fields(&body) {
        if name == "opt" {
            opt_in = match value.as_str() {
                "in" => Some(true),
                "out" => Some(false),
                _ => None,
            };
        } else if let Some(key) = name.strip_prefix("attr.") {
            if !value.trim().is_empty() {
                attributes.insert(key.to_string(), value.trim().to_string());
            }
        } else {
            problems.push(format!("unknown field `{name}`"));
        }
    }
    if opt_in.is_none() {
        problems.push("opt: `in` or `out`".into());
    }
    let Some(opt_in) = opt_in.filter(|_| problems.is_empty()) else {
        return render_page(
            &state,
            &lang,
            &member,
            StatusCode::UNPROCESSABLE_ENTITY,
            &AnnounceForm::default(),
            &problems,
            Some(SortitionForm::OptIn),
            None,
        )
        .await;
    };
    if !opt_in {
        attributes.clear();
    }
    let name = member.member.name.clone();
    let recorded = with_journal(&state, "sortition opt-in", move |j| {
        j.opt_in_sortition(&name, opt_in, &attributes, Utc::now())
    })
    .await?;
    match recorded {
        Ok(_) => Ok(form::done(
            "/sortition",
            if opt_in {
                "done=opted"
            } else {
                "done=opted_out"
            },
        )),
        Err(e) => refused(&state, &lang, &member, e, SortitionForm::OptIn).await,
    }
}

/// `POST /assembly/sortition/keys`: `keys`, comma-separated attribute names.
pub(crate) async fn keys(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
    body: Bytes,
) -> Result<Response, AppError> {
    let mut keys = Vec::new();
    for (name, value) in form::fields(&body) {
        if name == "keys" {
            keys = value
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect();
        }
    }
    let author = member.member.name.clone();
    let recorded = with_journal(&state, "sortition keys", move |j| {
        j.set_sortition_keys(&keys, &author, Utc::now())
    })
    .await?;
    match recorded {
        Ok(_) => Ok(form::done("/sortition", "done=keys")),
        Err(e) => refused(&state, &lang, &member, e, SortitionForm::Keys).await,
    }
}

/// Reads the quota lines `VALUE: MIN-MAX` (`?` for the undeclared), naming each
/// line that does not read.
fn parse_quotas(text: &str, lang: &PageLang) -> Result<BTreeMap<String, Quota>, Vec<String>> {
    let mut quotas = BTreeMap::new();
    let mut problems = Vec::new();
    let fr = lang.lang == dashboards::Lang::Fr;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let parsed = line.rsplit_once(':').and_then(|(name, range)| {
            let name = name.trim();
            let name = if name == "?" { "" } else { name };
            let (min, max) = match range.split_once('-') {
                Some((min, max)) => (min.trim(), max.trim()),
                None => (range.trim(), ""),
            };
            let min = min.parse::<u32>().ok()?;
            let max = if max.is_empty() {
                None
            } else {
                Some(max.parse::<u32>().ok()?)
            };
            Some((name.to_string(), Quota { min, max }))
        });
        match parsed {
            Some((name, quota)) => {
                quotas.insert(name, quota);
            }
            None => problems.push(if fr {
                format!("Quotas : la ligne « {line} » ne se lit pas comme « valeur : min-max ».")
            } else {
                format!("Quotas: the line “{line}” does not read as “value: min-max”.")
            }),
        }
    }
    if problems.is_empty() {
        Ok(quotas)
    } else {
        Err(problems)
    }
}

/// `POST /assembly/sortition/announce`: the announcement form; the draw's page on
/// success (303), or the form again with every problem (422), nothing recorded.
pub(crate) async fn announce(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
    body: Bytes,
) -> Result<Response, AppError> {
    let mut f = AnnounceForm::default();
    for (name, value) in form::fields(&body) {
        match name.as_str() {
            "size" => f.size = value,
            "strata_key" => f.strata_key = value,
            "quotas" => f.quotas = value,
            "scope" => f.scope = value,
            "title" => f.title = value,
            "term_end" => f.term_end = value,
            "draw_at" => f.draw_at = value,
            _ => {}
        }
    }
    let fr = lang.lang == dashboards::Lang::Fr;
    let mut problems = Vec::new();
    let size = f.size.trim().parse::<u32>().ok();
    if size.is_none() {
        problems.push(if fr {
            "Sièges : un nombre entier.".to_string()
        } else {
            "Seats: a whole number.".to_string()
        });
    }
    let scope = match f.scope.parse::<MandateScope>() {
        Ok(scope) => Some(scope),
        Err(problem) => {
            problems.push(problem);
            None
        }
    };
    let term_end = NaiveDate::parse_from_str(f.term_end.trim(), "%Y-%m-%d").ok();
    if term_end.is_none() {
        problems.push(if fr {
            "Dernier jour du mandat : une date AAAA-MM-JJ.".to_string()
        } else {
            "Last day of the term: a date YYYY-MM-DD.".to_string()
        });
    }
    let now = Utc::now();
    let draw_at = if f.draw_at.trim().is_empty() {
        Some(now)
    } else {
        NaiveDateTime::parse_from_str(f.draw_at.trim(), "%Y-%m-%dT%H:%M")
            .ok()
            .and_then(|local| state.site.timezone.from_local_datetime(&local).earliest())
            .map(|t| t.with_timezone(&Utc).max(now))
    };
    if draw_at.is_none() {
        problems.push(if fr {
            "Heure du tirage : AAAA-MM-JJTHH:MM, heure du site.".to_string()
        } else {
            "Time of the draw: YYYY-MM-DDTHH:MM, site time.".to_string()
        });
    }
    let quotas = parse_quotas(&f.quotas, &lang).unwrap_or_else(|p| {
        problems.extend(p);
        BTreeMap::new()
    });
    let strata_key = Some(f.strata_key.trim().to_string()).filter(|k| !k.is_empty());
    if let (true, Some(size), Some(scope), Some(term_end), Some(draw_at)) =
        (problems.is_empty(), size, scope, term_end, draw_at)
    {
        let spec = DrawSpec {
            size,
            strata_key,
            quotas,
            mandate: Mandate {
                scope,
                title: f.title.trim().to_string(),
                term_end,
            },
            draw_at,
        };
        let author = member.member.name.clone();
        let recorded = with_journal(&state, "sortition announcement", move |j| {
            j.announce_sortition(&spec, &author, now)
        })
        .await?;
        match recorded {
            Ok(entry) => {
                return Ok(form::done(
                    &format!("/sortition/{}", entry.seq),
                    "announced=1",
                ));
            }
            Err(e) => problems.extend(problems_of(e, &lang)?),
        }
    }
    render_page(
        &state,
        &lang,
        &member,
        StatusCode::UNPROCESSABLE_ENTITY,
        &f,
        &problems,
        Some(SortitionForm::Announce),
        None,
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct DrawQuery {
    drawn: Option<String>,
}

#[allow(clippy::too_many_arguments)]
async fn render_draw(
    state: &AppState,
    lang: &PageLang,
    member: Option<&CurrentMember>,
    id: i64,
    status: StatusCode,
    reveal: bool,
    rolls: &str,
    witnesses: &str,
    problems: &[String],
) -> Result<Response, AppError> {
    let (draw, decisions) = with_journal(state, "draw page", move |j| {
        Ok((j.draw(id)?, j.panel_decisions(id)?))
    })
    .await??;
    let Some(draw) = draw else {
        return not_found(state, lang).await;
    };
    let html = dashboards::render_draw(
        &DrawView {
            draw: &draw,
            decisions: &decisions,
            member: member.map(|m| {
                (
                    m.member.name.as_str(),
                    m.member.roles.as_slice(),
                    m.csrf().unwrap_or_default(),
                )
            }),
            can_draw: member.is_some_and(|m| m.has(Role::Assembly) && m.csrf().is_some()),
            reveal,
            rolls,
            witnesses,
            problems,
        },
        lang.lang,
        &state.site,
    )?;
    Ok(lang.page(status, html))
}

/// `GET /sortition/{id}`: the public draw page, for the wall screen.
pub(crate) async fn draw_page(
    State(state): State<AppState>,
    lang: PageLang,
    member: Option<CurrentMember>,
    Path(id): Path<i64>,
    Query(query): Query<DrawQuery>,
) -> Result<Response, AppError> {
    render_draw(
        &state,
        &lang,
        member.as_ref(),
        id,
        StatusCode::OK,
        query.drawn.is_some(),
        "",
        "",
        &[],
    )
    .await
}

/// `POST /sortition/{id}/draw`: `rolls` (digits 1 to 6, separated by spaces or
/// commas) and `witnesses` (one per line). The names then appear one by one.
pub(crate) async fn draw(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, AppError> {
    let (mut rolls_text, mut witnesses_text) = (String::new(), String::new());
    for (name, value) in form::fields(&body) {
        match name.as_str() {
            "rolls" => rolls_text = value,
            "witnesses" => witnesses_text = value,
            _ => {}
        }
    }
    let fr = lang.lang == dashboards::Lang::Fr;
    let rolls: Option<Vec<u8>> = rolls_text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|r| !r.is_empty())
        .map(|r| r.parse::<u8>().ok())
        .collect();
    let witnesses: Vec<String> = witnesses_text
        .lines()
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    let problems = match rolls {
        None => vec![if fr {
            "Lancers de dé : des chiffres de 1 à 6 séparés par des espaces.".to_string()
        } else {
            "Die rolls: digits 1 to 6 separated by spaces.".to_string()
        }],
        Some(rolls) => {
            let author = member.member.name.clone();
            let recorded = with_journal(&state, "draw", move |j| {
                j.draw_sortition(id, &rolls, &witnesses, &author, Utc::now())
            })
            .await?;
            match recorded {
                Ok(_) => return Ok(form::done(&format!("/sortition/{id}"), "drawn=1")),
                Err(ledger::Error::Refused(Refusal::NoSuchDraw(_))) => {
                    return not_found(&state, &lang).await;
                }
                Err(e) => problems_of(e, &lang)?,
            }
        }
    };
    render_draw(
        &state,
        &lang,
        Some(&member),
        id,
        StatusCode::UNPROCESSABLE_ENTITY,
        false,
        &rolls_text,
        &witnesses_text,
        &problems,
    )
    .await
}

/// `POST /sortition/{id}/decline`: the signed-in member declines their seat; the
/// replacement is drawn from the seed's continuation.
pub(crate) async fn decline(
    State(state): State<AppState>,
    lang: PageLang,
    member: CurrentMember,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    let name = member.member.name.clone();
    let recorded = with_journal(&state, "decline", move |j| {
        j.decline_panel_seat(id, &name, &name, Utc::now())
    })
    .await?;
    match recorded {
        Ok(_) => Ok(form::done(&format!("/sortition/{id}"), "declined=1")),
        Err(e) => {
            let problems = problems_of(e, &lang)?;
            render_draw(
                &state,
                &lang,
                Some(&member),
                id,
                StatusCode::UNPROCESSABLE_ENTITY,
                false,
                "",
                "",
                &problems,
            )
            .await
        }
    }
}

/// `GET /api/sortition`: every draw, newest first, as the journal records it
/// (pool, quotas, mandate, seed, panel, declines).
pub(crate) async fn list(State(state): State<AppState>) -> Result<Response, AppError> {
    let draws = with_journal(&state, "draws", |j| j.draws()).await??;
    Ok(axum::Json(draws).into_response())
}

/// The page of a draw that does not exist: the node's 404 page.
async fn not_found(state: &AppState, lang: &PageLang) -> Result<Response, AppError> {
    crate::pages::not_found(
        State(state.clone()),
        *lang,
        axum::http::Uri::from_static("/sortition"),
    )
    .await
}
