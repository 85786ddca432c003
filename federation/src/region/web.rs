//! The region's HTTP server: its page (`/`, French and English like the node's),
//! `GET /api/region/live`, over the bucket its history page (`/history`), `GET
//! /api/region/history` and `GET /api/region/export` (the signed minute summaries
//! in CSV or Parquet), and the stylesheet the page shares with the wall.
//! Read-only: the region changes nothing anywhere.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, VARY};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use datafusion::prelude::SessionContext;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::RegionState;
use crate::summary::rfc3339;
use crate::{Error, Result};

/// What the region's routes share.
#[derive(Clone)]
pub struct RegionApp {
    pub state: Arc<RegionState>,
    pub ctx: SessionContext,
    pub site: dashboards::SiteInfo,
    /// Whether `summaries` (the bucket) is registered.
    pub has_archive: bool,
    /// When the region compacts the archive (`quarters` registered, see
    /// [`super::compact`]), its counters: the history then reads the compacted
    /// months; without, it reads the nodes' daily files.
    pub compaction: Option<Arc<super::compact::CompactionStats>>,
}

impl std::fmt::Debug for RegionApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionApp").finish_non_exhaustive()
    }
}

/// The region's routes.
pub fn app(app: RegionApp) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/region/live", get(live_json))
        .route("/api/region/history", get(history_json))
        .route("/api/region/export", get(export))
        .route("/history", get(history_page))
        .route("/static/wall.css", get(css))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(app)
}

/// Serves [`app`] on `listener` until `cancel`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    region: RegionApp,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, app(region))
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
}

/// An error shown as a plain message, its cause logged.
struct AppError(Error);

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError(e)
    }
}

impl From<datafusion::error::DataFusionError> for AppError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        AppError(Error::DataFusion(e))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self.0, "region: request failed");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "The region could not answer; the cause is in its log.",
        )
            .into_response()
    }
}

/// The region's totals and who has surplus, by DataFusion over `nodes_live`.
const TOTALS_SQL: &str = "SELECT count(*) AS nodes,
       sum(CASE WHEN NOT stale THEN 1 ELSE 0 END) AS current,
       coalesce(sum(CASE WHEN NOT stale THEN production_w END), 0) AS production_w,
       coalesce(sum(CASE WHEN NOT stale THEN consumption_w END), 0) AS consumption_w,
       coalesce(sum(CASE WHEN NOT stale THEN surplus_w END), 0) AS surplus_w,
       coalesce(sum(CASE WHEN NOT stale THEN grid_w END), 0) AS grid_w,
       coalesce(sum(CASE WHEN NOT stale THEN battery_w END), 0) AS battery_w
FROM nodes_live";

const SURPLUS_SQL: &str = "SELECT node, name, surplus_w FROM nodes_live
WHERE NOT stale AND surplus_w > 0 ORDER BY surplus_w DESC, node";

#[derive(Debug, Default)]
struct Totals {
    nodes: u64,
    current: u64,
    production_w: f64,
    consumption_w: f64,
    surplus_w: f64,
    grid_w: f64,
    battery_w: f64,
}

fn column_err(c: &str) -> Error {
    Error::Query(format!("region: column `{c}` missing or mistyped"))
}

fn f64_at(batch: &RecordBatch, name: &str, row: usize) -> Result<f64> {
    let col = batch.column_by_name(name).ok_or_else(|| column_err(name))?;
    let a = col
        .as_primitive_opt::<Float64Type>()
        .ok_or_else(|| column_err(name))?;
    Ok(if a.is_valid(row) { a.value(row) } else { 0.0 })
}

fn i64_at(batch: &RecordBatch, name: &str, row: usize) -> Result<i64> {
    let col = batch.column_by_name(name).ok_or_else(|| column_err(name))?;
    let a = col
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| column_err(name))?;
    Ok(if a.is_valid(row) { a.value(row) } else { 0 })
}

fn text_at(batch: &RecordBatch, name: &str, row: usize) -> Result<String> {
    let col = batch.column_by_name(name).ok_or_else(|| column_err(name))?;
    if let Some(a) = col.as_string_opt::<i32>() {
        return Ok(a.value(row).to_string());
    }
    if let Some(a) = col.as_string_view_opt() {
        return Ok(a.value(row).to_string());
    }
    Err(column_err(name))
}

async fn totals(ctx: &SessionContext) -> Result<Totals> {
    let batches = ctx.sql(TOTALS_SQL).await?.collect().await?;
    let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(Totals::default());
    };
    Ok(Totals {
        nodes: i64_at(b, "nodes", 0)?.max(0) as u64,
        current: i64_at(b, "current", 0)?.max(0) as u64,
        production_w: f64_at(b, "production_w", 0)?,
        consumption_w: f64_at(b, "consumption_w", 0)?,
        surplus_w: f64_at(b, "surplus_w", 0)?,
        grid_w: f64_at(b, "grid_w", 0)?,
        battery_w: f64_at(b, "battery_w", 0)?,
    })
}

/// (node, name, surplus) of the current nodes with surplus, largest first.
async fn surplus(ctx: &SessionContext) -> Result<Vec<(String, String, f64)>> {
    let mut out = Vec::new();
    for b in ctx.sql(SURPLUS_SQL).await?.collect().await? {
        for r in 0..b.num_rows() {
            out.push((
                text_at(&b, "node", r)?,
                text_at(&b, "name", r)?,
                f64_at(&b, "surplus_w", r)?,
            ));
        }
    }
    Ok(out)
}

/// The page's data, from the queries and the state.
pub async fn region_data(app: &RegionApp) -> Result<dashboards::RegionData> {
    let rows = app.state.rows();
    let ctx = super::snapshot_session(&rows)?;
    let totals = totals(&ctx).await?;
    let surplus = surplus(&ctx).await?;
    let nodes = rows
        .iter()
        .map(|r| {
            let s = r.latest.as_ref();
            dashboards::RegionNode {
                id: r.id.clone(),
                name: r.name.clone(),
                age_s: r.age_s,
                stale: r.stale,
                production_w: s.map(|s| s.production_w),
                consumption_w: s.map(|s| s.consumption_w),
                surplus_w: s.map(|s| s.surplus_w),
                grid_w: s.map(|s| s.grid_w),
                battery_soc_pct: s.and_then(|s| s.battery_soc_pct),
                served: s.map(|s| s.services.served),
                partial: s.map(|s| s.services.partial),
                shed: s.map(|s| s.services.shed),
                refused: r.refused.as_ref().map_or(0, |f| f.count),
                witness_refused_by: r
                    .witness_refusals
                    .iter()
                    .map(|w| w.witness_name.clone())
                    .collect(),
            }
        })
        .collect();
    let intents = rows
        .iter()
        .filter(|r| !r.stale)
        .filter_map(|r| r.latest.as_ref().map(|s| (r, s)))
        .flat_map(|(r, s)| {
            s.intents.iter().filter_map(move |i| {
                Some(dashboards::RegionIntent {
                    node: r.name.clone(),
                    need: i.direction == "need",
                    class: i.class.clone(),
                    remaining: ledger::Quantity::from_f64(i.remaining)?,
                    unit: ledger::Unit::parse(&i.unit)?,
                    description: i.description.clone(),
                })
            })
        })
        .collect();
    Ok(dashboards::RegionData {
        intents,
        nodes,
        node_count: totals.nodes,
        current_count: totals.current,
        production_w: totals.production_w,
        consumption_w: totals.consumption_w,
        surplus_w: totals.surplus_w,
        surplus: surplus.into_iter().map(|(_, name, w)| (name, w)).collect(),
        refused: app.state.refused_total(),
        now: app.state.now(),
    })
}

#[derive(Debug, serde::Deserialize)]
struct LangQuery {
    lang: Option<String>,
}

/// A page's language: `?lang=`, else the browser's, else the region's.
fn page_lang(app: &RegionApp, asked: Option<&str>, headers: &HeaderMap) -> dashboards::Lang {
    let accept = headers
        .get(axum::http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    dashboards::negotiate(asked, None, accept, app.site.default_lang)
}

async fn page(
    State(app): State<RegionApp>,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let lang = page_lang(&app, q.lang.as_deref(), &headers);
    let data = region_data(&app).await?;
    let html = dashboards::render_region(&data, lang, &app.site)
        .map_err(|e| Error::Query(e.to_string()))?;
    let mut response = Html(html).into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(VARY, HeaderValue::from_static("Accept-Language"));
    Ok(response)
}

/// `GET /api/region/live`.
async fn live_json(State(app): State<RegionApp>) -> Result<Json<Value>, AppError> {
    Ok(Json(live_value(&app).await?))
}

/// The JSON of `/api/region/live`: `{"ts", "nodes": [...], "totals": {...},
/// "surplus": [{"id", "name", "surplus_w"}], "accepted", "refused": {"total",
/// "by": [{"node", "reason", "count"}]}, "witness_statements_refused"}`; a node
/// whose journal its witnesses refuse carries `"witness_refusals": [{"witness",
/// "witness_name", "size", "cosigned", "status", "at"}]`; a region that compacts
/// its history adds `"compaction": {"passes", "days", "minutes", "rows_refused",
/// "failures", "last_pass", "last_error"}`.
pub async fn live_value(app: &RegionApp) -> Result<Value> {
    let rows = app.state.rows();
    let ctx = super::snapshot_session(&rows)?;
    let t = totals(&ctx).await?;
    let surplus: Vec<Value> = surplus(&ctx)
        .await?
        .into_iter()
        .map(|(id, name, w)| json!({"id": id, "name": name, "surplus_w": w}))
        .collect();
    let nodes: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            let mut v = json!({
                "id": r.id, "name": r.name, "stale": r.stale, "age_s": r.age_s,
            });
            if let (Some(f), Value::Object(map)) = (&r.refused, &mut v) {
                map.insert(
                    "refused".into(),
                    json!({"count": f.count, "reasons": f.reasons, "last": rfc3339(f.last)}),
                );
            }
            if let (false, Value::Object(map)) = (r.witness_refusals.is_empty(), &mut v) {
                map.insert(
                    "witness_refusals".into(),
                    serde_json::to_value(&r.witness_refusals).unwrap_or(Value::Null),
                );
            }
            if let (Some(s), Value::Object(map)) = (&r.latest, &mut v) {
                map.insert(
                    "summary".into(),
                    serde_json::to_value(s).unwrap_or(Value::Null),
                );
            }
            v
        })
        .collect();
    let by: Vec<Value> = app
        .state
        .refused()
        .into_iter()
        .map(|((node, reason), count)| json!({"node": node, "reason": reason, "count": count}))
        .collect();
    let mut live = json!({
        "ts": rfc3339(app.state.now()),
        "nodes": nodes,
        "totals": {
            "nodes": t.nodes, "current": t.current,
            "production_w": t.production_w, "consumption_w": t.consumption_w,
            "surplus_w": t.surplus_w, "grid_w": t.grid_w, "battery_w": t.battery_w,
        },
        "surplus": surplus,
        "accepted": app.state.accepted(),
        "refused": {"total": app.state.refused_total(), "by": by},
        "witness_statements_refused": app.state.statements_refused(),
    });
    if let (Some(c), Value::Object(map)) = (&app.compaction, &mut live) {
        use std::sync::atomic::Ordering::Relaxed;
        let last = *c.last_pass.lock().unwrap_or_else(|e| e.into_inner());
        let error = c
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        map.insert(
            "compaction".into(),
            json!({
                "passes": c.passes.load(Relaxed), "days": c.days.load(Relaxed),
                "minutes": c.minutes.load(Relaxed), "rows_refused": c.rows_refused.load(Relaxed),
                "failures": c.failures.load(Relaxed),
                "last_pass": last.map(rfc3339), "last_error": error,
            }),
        );
    }
    Ok(live)
}

#[derive(Debug, serde::Deserialize)]
struct HistoryQuery {
    from: NaiveDate,
    to: NaiveDate,
    /// `day` (the default): each node's days; `node`: each node's totals over
    /// the period.
    per: Option<String>,
}

/// Energy per node and day over `[from, to]` from the bucket's archives, in
/// watt-hours (each minute's power counts for a sixtieth of an hour).
pub fn history_sql(from: NaiveDate, to: NaiveDate) -> String {
    energy_sql("node, date", "date, node", from, to)
}

/// Each node's energy over `[from, to]` from the nodes' daily files.
pub fn totals_sql(from: NaiveDate, to: NaiveDate) -> String {
    energy_sql("node", "node", from, to)
}

fn energy_sql(by: &str, order: &str, from: NaiveDate, to: NaiveDate) -> String {
    format!(
        "SELECT {by},
                sum(production_w) / 60.0 AS production_wh,
                sum(consumption_w) / 60.0 AS consumption_wh,
                sum(greatest(surplus_w, 0)) / 60.0 AS surplus_wh,
                CAST(count(*) AS BIGINT) AS minutes
         FROM summaries
         WHERE date >= '{from}' AND date <= '{to}'
         GROUP BY {by} ORDER BY {order}"
    )
}

/// `GET /api/region/history?from=YYYY-MM-DD&to=YYYY-MM-DD[&per=day|node]`:
/// `{"from", "to", "days": [{"node", "date", "production_wh", "consumption_wh",
/// "surplus_wh", "minutes"}]}`, or with `per=node` `{"from", "to", "nodes":
/// [{"node", "production_wh", "consumption_wh", "surplus_wh", "minutes"}]}`.
async fn history_json(
    State(app): State<RegionApp>,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, AppError> {
    if let Some(refused) = check_period(&app, q.from, q.to) {
        return Ok(refused);
    }
    let (from, to) = (q.from.to_string(), q.to.to_string());
    match q.per.as_deref().unwrap_or("day") {
        "day" => {
            let days: Vec<Value> = history_days(&app, q.from, q.to)
                .await?
                .into_iter()
                .map(|(node, date, production, consumption, surplus, minutes)| {
                    json!({
                        "node": node, "date": date, "production_wh": production,
                        "consumption_wh": consumption, "surplus_wh": surplus, "minutes": minutes,
                    })
                })
                .collect();
            Ok(Json(json!({"from": from, "to": to, "days": days})).into_response())
        }
        "node" => {
            let sql = if app.compaction.is_some() {
                super::compact::totals_sql(q.from, q.to)
            } else {
                totals_sql(q.from, q.to)
            };
            let mut nodes = Vec::new();
            for b in app.ctx.sql(&sql).await?.collect().await? {
                for r in 0..b.num_rows() {
                    nodes.push(json!({
                        "node": text_at(&b, "node", r)?,
                        "production_wh": f64_at(&b, "production_wh", r)?,
                        "consumption_wh": f64_at(&b, "consumption_wh", r)?,
                        "surplus_wh": f64_at(&b, "surplus_wh", r)?,
                        "minutes": i64_at(&b, "minutes", r)?,
                    }));
                }
            }
            Ok(Json(json!({"from": from, "to": to, "nodes": nodes})).into_response())
        }
        other => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("`per` must be `day` or `node`, not `{other}`."),
        )
            .into_response()),
    }
}

/// The longest period the history answers, in days.
const MAX_HISTORY_DAYS: i64 = 400;

/// Refuses a period that ends before it starts or is longer than
/// [`MAX_HISTORY_DAYS`], and a region without a bucket.
fn check_period(app: &RegionApp, from: NaiveDate, to: NaiveDate) -> Option<Response> {
    if !app.has_archive {
        return Some(
            (
                StatusCode::NOT_FOUND,
                "This region has no bucket configured ([region] s3).",
            )
                .into_response(),
        );
    }
    if to < from || (to - from).num_days() > MAX_HISTORY_DAYS {
        return Some(
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("`to` must be on or after `from`, at most {MAX_HISTORY_DAYS} days later."),
            )
                .into_response(),
        );
    }
    None
}

/// Each node's energy per day over `[from, to]`: (node, date, production,
/// consumption, surplus in Wh, minutes).
async fn history_days(
    app: &RegionApp,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<(String, String, f64, f64, f64, i64)>> {
    let sql = if app.compaction.is_some() {
        super::compact::history_sql(from, to)
    } else {
        history_sql(from, to)
    };
    let mut days = Vec::new();
    for b in app.ctx.sql(&sql).await?.collect().await? {
        for r in 0..b.num_rows() {
            days.push((
                text_at(&b, "node", r)?,
                text_at(&b, "date", r)?,
                f64_at(&b, "production_wh", r)?,
                f64_at(&b, "consumption_wh", r)?,
                f64_at(&b, "surplus_wh", r)?,
                i64_at(&b, "minutes", r)?,
            ));
        }
    }
    Ok(days)
}

#[derive(Debug, serde::Deserialize)]
struct HistoryPageQuery {
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    lang: Option<String>,
}

/// `GET /history?from=&to=`: the region day by day (the last 30 days by default).
async fn history_page(
    State(app): State<RegionApp>,
    Query(q): Query<HistoryPageQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let lang = page_lang(&app, q.lang.as_deref(), &headers);
    let today = app
        .state
        .now()
        .with_timezone(&app.site.timezone)
        .date_naive();
    let to = q.to.unwrap_or(today);
    let from = q
        .from
        .unwrap_or_else(|| to.checked_sub_days(chrono::Days::new(29)).unwrap_or(to));
    if let Some(refused) = check_period(&app, from, to).filter(|_| app.has_archive) {
        return Ok(refused);
    }
    let days = if app.has_archive {
        history_days(&app, from, to).await?
    } else {
        Vec::new()
    };
    let names: std::collections::BTreeMap<String, String> = app
        .state
        .rows()
        .into_iter()
        .map(|r| (r.id, r.name))
        .collect();
    let mut per_day: std::collections::BTreeMap<String, (f64, f64)> = Default::default();
    let mut per_node: std::collections::BTreeMap<String, dashboards::RegionHistoryNode> =
        Default::default();
    for (node, date, production, consumption, surplus, minutes) in days {
        let d = per_day.entry(date).or_default();
        d.0 += production;
        d.1 += consumption;
        let n = per_node
            .entry(node.clone())
            .or_insert_with(|| dashboards::RegionHistoryNode {
                name: names.get(&node).cloned().unwrap_or(node),
                ..Default::default()
            });
        n.production_wh += production;
        n.consumption_wh += consumption;
        n.surplus_wh += surplus;
        n.minutes += u64::try_from(minutes).unwrap_or(0);
    }
    let data = dashboards::RegionHistoryData {
        from,
        to,
        days: from
            .iter_days()
            .take_while(|d| *d <= to)
            .map(|d| (d, per_day.get(&d.to_string()).copied()))
            .collect(),
        nodes: per_node.into_values().collect(),
        has_archive: app.has_archive,
        compaction: match &app.compaction {
            None => dashboards::RegionCompaction::Off,
            Some(c) => match *c.last_pass.lock().unwrap_or_else(|e| e.into_inner()) {
                Some(at) => dashboards::RegionCompaction::Passed(at),
                None => dashboards::RegionCompaction::Pending,
            },
        },
    };
    let html = dashboards::render_region_history(&data, lang, &app.site)
        .map_err(|e| Error::Query(e.to_string()))?;
    let mut response = Html(html).into_response();
    response
        .headers_mut()
        .insert(VARY, HeaderValue::from_static("Accept-Language"));
    Ok(response)
}

#[derive(Debug, serde::Deserialize)]
struct ExportQuery {
    from: NaiveDate,
    to: NaiveDate,
    format: Option<String>,
}

/// The signed minute summaries of `[from, to]`, every node, as archived.
pub fn export_sql(from: NaiveDate, to: NaiveDate) -> String {
    format!(
        "SELECT node, date, minute, stale, production_w, consumption_w, surplus_w, grid_w,
                battery_w, battery_soc_pct, served, partial, shed, payload, signature
         FROM summaries
         WHERE date >= '{from}' AND date <= '{to}'
         ORDER BY date, node, minute"
    )
}

/// `GET /api/region/export?from=&to=&format=csv|parquet`: the archived minute
/// summaries of every node, each with its canonical bytes and its node's
/// signature (anyone can check them with the node keys), streamed batch by batch.
async fn export(
    State(app): State<RegionApp>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, AppError> {
    if let Some(refused) = check_period(&app, q.from, q.to) {
        return Ok(refused);
    }
    let parquet = match q.format.as_deref().unwrap_or("csv") {
        "csv" => false,
        "parquet" => true,
        other => {
            return Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("`format` is `csv` or `parquet`, not `{other}`."),
            )
                .into_response());
        }
    };
    let df = app.ctx.sql(&export_sql(q.from, q.to)).await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let mut batches = df.execute_stream().await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    tokio::spawn(async move {
        use futures::StreamExt as _;
        let fail = |e: &dyn std::fmt::Display| {
            tracing::warn!(error = %e, "region export cut short");
            std::io::Error::other(e.to_string())
        };
        let mut chunks = if parquet {
            match query::export::ParquetChunks::new(schema) {
                Ok(c) => Some(c),
                Err(e) => {
                    let _ = tx.send(Err(fail(&e))).await;
                    return;
                }
            }
        } else {
            None
        };
        let mut first = true;
        while let Some(batch) = batches.next().await {
            let bytes = batch.map_err(|e| fail(&e)).and_then(|b| match &mut chunks {
                Some(c) => c.push(&b).map_err(|e| fail(&e)),
                None => {
                    let mut out = Vec::new();
                    let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                        .with_header(first)
                        .build(&mut out);
                    writer.write(&b).map_err(|e| fail(&e))?;
                    drop(writer);
                    first = false;
                    Ok(out)
                }
            });
            let stop = bytes.is_err();
            if tx.send(bytes).await.is_err() || stop {
                return;
            }
        }
        if let Some(c) = chunks {
            let _ = tx.send(c.finish().map_err(|e| fail(&e))).await;
        }
    });
    let body = axum::body::Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let (kind, ext) = if parquet {
        ("application/vnd.apache.parquet", "parquet")
    } else {
        ("text/csv; charset=utf-8", "csv")
    };
    let disposition = format!("attachment; filename=\"region-{}-{}.{ext}\"", q.from, q.to);
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(axum::http::header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

async fn css() -> Response {
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
        ],
        dashboards::WALL_CSS,
    )
        .into_response()
}
