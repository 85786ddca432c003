//! The history's API (DESIGN.md §8): `GET /api/export` streams readings in CSV or
//! Parquet without holding the range in memory, and `POST /api/sql` runs an
//! installer's read-only query within its limits: rows, time, memory, and queries
//! at once.
//!
//! Household data is personal (DESIGN.md §6, §10): both run on the session of
//! the reader's scope (`query::consent`), which holds a household's meter only for
//! that household's members and under a live grant, at its granularity; reads
//! under a grant are logged there. Asking the export for a device one may not read
//! is refused by name; a member who is not an installer or an admin exports, by
//! default, the community's devices and the meters they may read.

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use ledger::Role;
use query::export::{ExportRange, ParquetChunks, SqlError, csv_rows};
use serde::Deserialize;

use crate::api_json::ApiJson;
use crate::auth::CurrentMember;
use crate::{AppError, AppState};

/// `Retry-After` when every installer query slot is taken: most queries take a
/// second or less, and none more than its time limit.
const SQL_BUSY_RETRY_AFTER_S: &str = "2";

/// The CSV export's header line.
const CSV_HEADER: &str = "ts,device,metric,value\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Parquet,
}

/// The query of `GET /api/export`: `from`, `to` (RFC 3339), `device` and `metric`
/// (each repeatable), `format` (`csv`, the default, or `parquet`).
fn parse_export(query: Option<&str>) -> Result<(ExportRange, Format), AppError> {
    let mut range = ExportRange::default();
    let mut format = Format::Csv;
    let mut problems = Vec::new();
    let time =
        |key: &str, value: &str, problems: &mut Vec<String>| match DateTime::parse_from_rfc3339(
            value,
        ) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                problems.push(format!(
                    "`{key}` must be an RFC 3339 time such as 2026-03-12T00:00:00Z, not {value:?}"
                ));
                None
            }
        };
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*key {
            "from" => range.from = time("from", &value, &mut problems),
            "to" => range.to = time("to", &value, &mut problems),
            "device" => range.devices.push(value.into_owned()),
            "metric" => {
                if sensors::model::Metric::parse(&value).is_none() {
                    problems.push(format!("`metric`: unknown metric {value:?}"));
                }
                range.metrics.push(value.into_owned());
            }
            "format" => match &*value {
                "csv" => format = Format::Csv,
                "parquet" => format = Format::Parquet,
                other => problems.push(format!("`format` is csv or parquet, not {other:?}")),
            },
            other => problems.push(format!("unknown parameter `{other}`")),
        }
    }
    if let (Some(from), Some(to)) = (range.from, range.to)
        && from >= to
    {
        problems.push("`from` must come before `to`".into());
    }
    if problems.is_empty() {
        Ok((range, format))
    } else {
        Err(AppError::invalid(
            StatusCode::BAD_REQUEST,
            format!("the export request is not valid: {}", problems.join("; ")),
            problems,
        ))
    }
}

/// `GET /api/export`: the readings of a range, streamed.
pub(crate) async fn export(
    State(state): State<AppState>,
    member: CurrentMember,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let (mut range, format) = parse_export(query.as_deref())?;
    let Some(queries) = state.queries.clone() else {
        // A node that keeps no history has no readings to give.
        return empty_export(format);
    };
    let scope = viewer_scope(&state, &queries, &member).await?;
    // Every device asked for must be one the reader may read: the community's, a
    // device of no configuration (installers and admins: the history may hold
    // devices since removed), or a household's meter of their own or under a
    // grant. The session the export runs on hides the others in any case.
    let may_read = |d: &str| {
        queries.visibility().is_community(d)
            || scope.access(d).is_some()
            || ((member.has(Role::Installer) || member.has(Role::Admin))
                && !queries.visibility().is_household(d))
    };
    let private: Vec<String> = range
        .devices
        .iter()
        .filter(|d| !may_read(d))
        .map(|d| format!("`{d}`"))
        .collect();
    if !private.is_empty() {
        return Err(AppError::invalid(
            StatusCode::FORBIDDEN,
            format!(
                "{} is not one of the community's devices: a household's readings are \
                 for that household, and for whom it consents to",
                private.join(", ")
            ),
            vec![],
        ));
    }
    if range.devices.is_empty() && !(member.has(Role::Installer) || member.has(Role::Admin)) {
        range.devices = queries
            .community_devices()
            .iter()
            .cloned()
            .chain(scope.readable().keys().cloned())
            .collect();
        range.devices.sort();
    }
    let stream = queries.export(&scope, &range, "/api/export").await?;
    let (content_type, extension) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Parquet => ("application/vnd.apache.parquet", "parquet"),
    };
    let body = match format {
        Format::Csv => {
            let rows = stream.map(|batch| {
                batch
                    .map_err(|e| e.to_string())
                    .and_then(|b| csv_rows(&b).map_err(|e| e.to_string()))
                    .map(axum::body::Bytes::from)
            });
            let header = futures::stream::once(async {
                Ok::<_, String>(axum::body::Bytes::from_static(CSV_HEADER.as_bytes()))
            });
            Body::from_stream(header.chain(rows).map(|r| r.map_err(std::io::Error::other)))
        }
        Format::Parquet => {
            let schema = stream.schema();
            let writer = ParquetChunks::new(schema)?;
            // Each batch becomes a row group sent at once; the footer comes last.
            let chunks = futures::stream::unfold(
                (stream, Some(writer)),
                |(mut stream, writer)| async move {
                    let mut writer = writer?;
                    match stream.next().await {
                        Some(Ok(batch)) => {
                            let bytes = writer.push(&batch).map_err(|e| e.to_string());
                            Some((bytes, (stream, Some(writer))))
                        }
                        Some(Err(e)) => Some((Err(e.to_string()), (stream, None))),
                        None => Some((writer.finish().map_err(|e| e.to_string()), (stream, None))),
                    }
                },
            );
            Body::from_stream(chunks.map(|r| {
                r.map(axum::body::Bytes::from)
                    .map_err(std::io::Error::other)
            }))
        }
    };
    let filename = format!("communalia-readings.{extension}");
    Ok((
        [
            (CONTENT_TYPE, content_type.to_string()),
            (CACHE_CONTROL, "no-store".to_string()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// An export of nothing, in `format`.
fn empty_export(format: Format) -> Result<Response, AppError> {
    match format {
        Format::Csv => {
            Ok(([(CONTENT_TYPE, "text/csv; charset=utf-8")], CSV_HEADER).into_response())
        }
        Format::Parquet => {
            let file = ParquetChunks::new(query::export::export_schema())?.finish()?;
            Ok(([(CONTENT_TYPE, "application/vnd.apache.parquet")], file).into_response())
        }
    }
}

/// What `member` may read of the households' meters now (their own household's,
/// and under live grants), with the journal that logs reads under a grant.
pub(crate) async fn viewer_scope(
    state: &AppState,
    queries: &query::history_session::Queries,
    member: &CurrentMember,
) -> Result<query::consent::Scope, AppError> {
    let viewer = query::consent::Viewer {
        member: member.member.name.clone(),
        roles: member.member.roles.clone(),
    };
    let journal = state.journal.clone();
    let queries = queries.clone();
    tokio::task::spawn_blocking(move || queries.scope(journal, viewer))
        .await
        .map_err(|e| AppError::Internal(format!("consent scope task: {e}")))?
        .map_err(AppError::from)
}

/// The body of `POST /api/sql`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SqlRequest {
    sql: String,
}

/// `POST /api/sql` (role `installer`): a read-only query's rows as JSON, within the
/// history session's limits (by default 10,000 rows, 10 seconds, 256 MB, two
/// queries at once).
pub(crate) async fn sql(
    State(state): State<AppState>,
    member: CurrentMember,
    ApiJson(request): ApiJson<SqlRequest>,
) -> Result<Response, AppError> {
    let Some(queries) = state.queries.clone() else {
        return Err(AppError::invalid(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node keeps no history to query".into(),
            vec![],
        ));
    };
    let scope = viewer_scope(&state, &queries, &member).await?;
    match queries.sql(&scope, &request.sql).await {
        Ok(answer) => Ok(([(CACHE_CONTROL, "no-store")], Json(answer)).into_response()),
        Err(e @ SqlError::Refused(_)) => Err(AppError::invalid(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the query cannot run: {e}"),
            vec![],
        )),
        Err(e @ SqlError::TooMuchMemory { .. }) => Err(AppError::invalid(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.to_string(),
            vec![],
        )),
        Err(e @ SqlError::TimedOut(_)) => Err(AppError::invalid(
            StatusCode::REQUEST_TIMEOUT,
            e.to_string(),
            vec![],
        )),
        Err(e @ SqlError::Busy { .. }) => {
            let mut response =
                AppError::invalid(StatusCode::SERVICE_UNAVAILABLE, e.to_string(), vec![])
                    .into_response();
            response.headers_mut().insert(
                RETRY_AFTER,
                HeaderValue::from_static(SQL_BUSY_RETRY_AFTER_S),
            );
            Ok(response)
        }
    }
}
