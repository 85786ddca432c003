//! The plain HTTP port of a node that serves HTTPS: it serves nothing itself.
//! A page asked for (`GET`, `HEAD`) is redirected to the same path over HTTPS; any
//! other request (a sign-in, a change, an API call with a body) is refused with
//! 403 and the HTTPS address, never handled: a password or token sent in clear is
//! not honoured, so that no client keeps working that way unnoticed.
//!
//! The redirect is temporary (307): a browser that cached a permanent one would
//! stay stuck on HTTPS if the site later turned it off.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST, LOCATION};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// The router of the plain port: every path goes to [`to_https`].
pub(crate) fn router(https_port: u16) -> Router {
    Router::new()
        .fallback(to_https)
        .with_state(HttpsPort(https_port))
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpsPort(u16);

async fn to_https(State(HttpsPort(port)): State<HttpsPort>, request: Request) -> Response {
    let host = request
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host())
        .and_then(host_of);
    let Some(host) = host else {
        return plain(
            StatusCode::BAD_REQUEST,
            "missing or malformed Host header; this node answers over HTTPS only\n".to_string(),
        );
    };
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let base = if port == 443 {
        format!("https://{host}")
    } else {
        format!("https://{host}:{port}")
    };
    let target = format!("{base}{path}");
    if request.method() == Method::GET || request.method() == Method::HEAD {
        match HeaderValue::from_str(&target) {
            Ok(location) => (
                StatusCode::TEMPORARY_REDIRECT,
                [
                    (LOCATION, location),
                    (CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
            )
                .into_response(),
            Err(_) => plain(StatusCode::BAD_REQUEST, "malformed path\n".to_string()),
        }
    } else {
        tracing::info!(method = %request.method(), path = %request.uri().path(), "plain HTTP request refused: HTTPS only");
        plain(
            StatusCode::FORBIDDEN,
            format!(
                "refused: this node takes sign-ins and changes over HTTPS only; nothing was done. Use {base}/\n"
            ),
        )
    }
}

fn plain(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (CONTENT_TYPE, "text/plain; charset=utf-8"),
            (CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// The host part of a `Host` header (its port dropped), when it is a plain DNS
/// name, an IPv4 address or a bracketed IPv6 address, and nothing else.
pub(crate) fn host_of(header: &str) -> Option<&str> {
    let header = header.trim();
    if header.is_empty() || header.len() > 260 {
        return None;
    }
    if let Some(rest) = header.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || port_ok(after.strip_prefix(':')?)) {
            return None;
        }
        inside
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|_| &header[..inside.len() + 2])
    } else {
        let host = match header.rsplit_once(':') {
            Some((h, p)) if port_ok(p) => h,
            Some(_) => return None,
            None => header,
        };
        let ok = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
            });
        ok.then_some(host)
    }
}

fn port_ok(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_taken_only_when_well_formed() {
        assert_eq!(host_of("solar.local:8080"), Some("solar.local"));
        assert_eq!(host_of("192.168.1.5"), Some("192.168.1.5"));
        assert_eq!(host_of("[fe80::1]:80"), Some("[fe80::1]"));
        assert_eq!(host_of("[::1]"), Some("[::1]"));
        for bad in [
            "",
            "evil.example/path",
            "a b",
            "x:y",
            "[::1]x",
            "[nope]",
            "-a.example",
            "a..b",
            "user@host",
        ] {
            assert_eq!(host_of(bad), None, "{bad:?}");
        }
    }
}
