//! The wall screen's stylesheet and script, embedded in the binary by `dashboards`.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dashboards::{ASSET_VERSION, WALL_CSS, WALL_JS};

/// Pages link the assets with `?v=ASSET_VERSION`, so a day of caching never serves
/// an old script to a new page; the ETag lets a kiosk revalidate cheaply after that.
const CACHE: &str = "public, max-age=86400";

pub(crate) async fn wall_js(headers: HeaderMap) -> Response {
    asset(&headers, WALL_JS, "text/javascript; charset=utf-8", "js")
}

pub(crate) async fn wall_css(headers: HeaderMap) -> Response {
    asset(&headers, WALL_CSS, "text/css; charset=utf-8", "css")
}

fn asset(
    request: &HeaderMap,
    body: &'static str,
    content_type: &'static str,
    kind: &str,
) -> Response {
    let etag = format!("\"{ASSET_VERSION:016x}-{kind}\"");
    let etag_header = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\""));
    let cached = request
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        });
    let headers = [
        (CACHE_CONTROL, HeaderValue::from_static(CACHE)),
        (ETAG, etag_header),
    ];
    if cached {
        (StatusCode::NOT_MODIFIED, headers).into_response()
    } else {
        (
            headers,
            [(CONTENT_TYPE, HeaderValue::from_static(content_type))],
            body,
        )
            .into_response()
    }
}
