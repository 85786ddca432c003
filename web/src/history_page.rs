//! The history as pages: `GET /history` (a day, week, month or year of production,
//! consumption, self-sufficiency, battery and services, public like the wall
//! screen) and `GET /wall/today`, the wall screen's curve of today alone, which the
//! wall's script fetches every few minutes to redraw it in place.

use axum::extract::{RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, VARY};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::{Datelike, NaiveDate};
use dashboards::{
    ExportChoices, HistoryData, HistoryProblem, HistoryReader, HistoryTable, TodayCurve,
};
use ledger::Role;
use query::charts::{self, Period, View};
use query::history_session::Queries;
use sensors::model::Role as DeviceRole;

use crate::auth::CurrentMember;
use crate::lang::PageLang;
use crate::{AppError, AppState};

/// The dates a history page may show: what a Parquet day partition and a
/// millisecond timestamp can both hold, with room for the period around them.
const YEARS: std::ops::RangeInclusive<i32> = 1970..=9999;

/// The query of `/history`: `view` (`day` by default, `week`, `month`, `year`),
/// `date` (`YYYY-MM-DD`, today by default; any day of the period) and `lang`.
#[cfg(test)]
fn parse_query(query: Option<&str>, today: NaiveDate) -> Result<Period, Vec<HistoryProblem>> {
    parse_query_with_table(query, today).map(|(period, _)| period)
}

/// [`parse_query`], and `download` (a table of the page, as CSV).
fn parse_query_with_table(
    query: Option<&str>,
    today: NaiveDate,
) -> Result<(Period, Option<HistoryTable>), Vec<HistoryProblem>> {
    let mut view = None;
    let mut date = None;
    let mut table = None;
    let mut seen = std::collections::BTreeSet::new();
    let mut problems = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if !seen.insert(key.to_string()) {
            problems.push(HistoryProblem::Repeated(key.to_string()));
            continue;
        }
        match &*key {
            "view" => match View::parse(&value) {
                Some(v) => view = Some(v),
                None => problems.push(HistoryProblem::UnknownView(value.to_string())),
            },
            "date" => match NaiveDate::parse_from_str(&value, "%Y-%m-%d") {
                Ok(d) if YEARS.contains(&d.year()) => date = Some(d),
                Ok(_) => problems.push(HistoryProblem::DateOutOfRange(value.to_string())),
                Err(_) => problems.push(HistoryProblem::BadDate(value.to_string())),
            },
            "download" => match HistoryTable::parse(&value) {
                Some(t) => table = Some(t),
                None => problems.push(HistoryProblem::UnknownTable(value.to_string())),
            },
            // Read by the language negotiation.
            "lang" => {}
            other => problems.push(HistoryProblem::UnknownParameter(other.to_string())),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let date = date.unwrap_or(today);
    Period::containing(view.unwrap_or(View::Day), date)
        .map(|period| (period, table))
        .ok_or_else(|| vec![HistoryProblem::DateOutOfRange(date.to_string())])
}

/// What a member may export: the community's devices (never a household's meter
/// that meters no service), each by name and id, and every metric.
fn export_choices(queries: &Queries) -> ExportChoices {
    let community = queries.community_devices();
    let mut devices: Vec<(String, String)> = queries
        .devices()
        .iter()
        .filter(|d| community.contains(&d.id))
        .map(|d| (d.id.clone(), format!("{} ({})", d.display_name(), d.id)))
        .collect();
    for s in queries.services() {
        let id = query::replay::service_device(&s.id);
        if community.contains(&id) {
            let name = s.name.as_deref().unwrap_or(&s.id);
            devices.push((id.clone(), format!("{name} ({id})")));
        }
    }
    ExportChoices {
        devices,
        metrics: sensors::model::Metric::ALL
            .iter()
            .map(|m| m.as_str())
            .collect(),
    }
}

/// Today's figures change by the minute, and the page depends on who reads it.
fn page_headers(response: &mut Response, lang: &PageLang) {
    lang.page_headers(response);
}

/// `GET /history`: a period's charts and tables, or a 400 page naming what is
/// wrong with the address.
pub(crate) async fn page(
    State(state): State<AppState>,
    lang: PageLang,
    member: Option<CurrentMember>,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let tz = state.site.timezone;
    let today = sensors::clock::now().with_timezone(&tz).date_naive();
    let (period, table) = match parse_query_with_table(query.as_deref(), today) {
        Ok(parsed) => parsed,
        Err(problems) => {
            let html = dashboards::render_history_problems(&problems, lang.lang, &state.site)?;
            let mut response = (StatusCode::BAD_REQUEST, Html(html)).into_response();
            page_headers(&mut response, &lang);
            return Ok(response);
        }
    };
    let buckets = period.buckets(tz);
    let (site, services, has_battery, export) = match &state.queries {
        Some(queries) => {
            let site = charts::site_energy(queries, &buckets).await?;
            let services = charts::service_energy(queries, &buckets).await?;
            let has_battery = queries
                .devices()
                .iter()
                .any(|d| d.role == DeviceRole::Battery);
            let export = member.as_ref().map(|_| export_choices(queries));
            (Some(site), services, has_battery, export)
        }
        None => (None, vec![], false, None),
    };
    let data = HistoryData {
        period,
        today,
        buckets: &buckets,
        site: site.as_ref(),
        services: &services,
        has_battery,
        reader: member.as_ref().map(|m| HistoryReader {
            name: m.member.name.clone(),
            assembly: m.has(Role::Assembly),
        }),
        export,
    };
    if let Some(table) = table {
        return Ok(csv_response(&data, table, &lang));
    }
    let html = dashboards::render_history(&data, lang.lang, &state.site)?;
    let mut response = Html(html).into_response();
    page_headers(&mut response, &lang);
    Ok(response)
}

/// A table of the page as a CSV download, named after the table and the period;
/// 404 when the page does not show that table (no history, no battery).
fn csv_response(data: &HistoryData<'_>, table: HistoryTable, lang: &PageLang) -> Response {
    let Some(csv) = dashboards::history_csv(data, table, lang.lang) else {
        return (
            StatusCode::NOT_FOUND,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            "this history page has no such table\n",
        )
            .into_response();
    };
    let name = format!(
        "communalia-{}-{}-{}.csv",
        table.code(),
        data.period.view().code(),
        data.period.start().format("%Y-%m-%d")
    );
    let mut response = (
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        csv,
    )
        .into_response();
    page_headers(&mut response, lang);
    response
}

/// Today's curve for the wall screen, or `None` when the node keeps no history or
/// the history cannot be read (the wall then says the curve is unavailable, and
/// the cause is logged: the wall itself must never fail for it).
pub(crate) async fn today_curve(state: &AppState) -> Option<TodayCurve> {
    let queries = state.queries.as_ref()?;
    let now = sensors::clock::now();
    let buckets = charts::today(now, state.site.timezone, dashboards::TODAY_STEP_MINUTES);
    match charts::site_energy(queries, &buckets).await {
        Ok(series) => Some(TodayCurve {
            buckets,
            series,
            now,
        }),
        Err(e) => {
            tracing::warn!(error = %e, "today's curve: the history could not be read");
            None
        }
    }
}

/// `GET /wall/today`: the wall's curve alone, as an HTML fragment.
pub(crate) async fn today(
    State(state): State<AppState>,
    lang: PageLang,
) -> Result<Response, AppError> {
    let curve = today_curve(&state).await;
    let html = dashboards::render_today_curve(curve.as_ref(), lang.lang, &state.site)?;
    let mut response = Html(html).into_response();
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(VARY, HeaderValue::from_static("Accept-Language, Cookie"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default()
    }

    #[test]
    fn the_query_names_a_period_or_says_what_is_wrong() {
        let today = date("2026-03-12");
        let day = parse_query(None, today).unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!((day.view(), day.start()), (View::Day, today));
        let week = parse_query(Some("view=week&date=2026-03-14&lang=en"), today)
            .unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(
            (week.view(), week.start()),
            (View::Week, date("2026-03-09"))
        );
        assert_eq!(
            parse_query(Some("view=decade&date=12/03/2026&colour=red"), today),
            Err(vec![
                HistoryProblem::UnknownView("decade".into()),
                HistoryProblem::BadDate("12/03/2026".into()),
                HistoryProblem::UnknownParameter("colour".into()),
            ])
        );
        assert_eq!(
            parse_query(Some("date=1969-12-31"), today),
            Err(vec![HistoryProblem::DateOutOfRange("1969-12-31".into())])
        );
        assert_eq!(
            parse_query(Some("view=day&view=week"), today),
            Err(vec![HistoryProblem::Repeated("view".into())])
        );
    }
}
