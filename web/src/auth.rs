//! Who is asking, and may they (DESIGN.md §6 "Roles", §8).
//!
//! A request acts as a member through a session cookie ([`SESSION_COOKIE`], set by
//! `POST /login`) or an `Authorization: Bearer TOKEN` header (`communalia token
//! create`); when both come, the header decides. Every route declares its
//! [`Access`] in the route table (`routes.rs`), and [`guard`] enforces it before the
//! handler runs: no credentials → 401, a member without the role → 403, and a
//! cookie-authenticated request that changes state without the session's CSRF token
//! (header `X-CSRF-Token` or form field `csrf`) → 403. A Bearer request needs no
//! CSRF token: a browser never adds that header by itself, so a forged cross-site
//! request cannot carry one. Roles do not imply one another: `admin` is not
//! `assembly`.

use std::convert::Infallible;

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, OptionalFromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, COOKIE, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use dashboards::RefusalPage;
use ledger::{Member, Role};
use serde_json::json;

use crate::lang::{PageLang, cookie_value};
use crate::{AppError, AppState};

/// The browser session's cookie: HttpOnly, SameSite=Strict, Path=/.
pub const SESSION_COOKIE: &str = "communalia_session";
/// The header a script or page sends the session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The form field a page sends it in.
pub const CSRF_FIELD: &str = "csrf";

/// The largest form body read to find its CSRF field.
const FORM_LIMIT_BYTES: usize = 1024 * 1024;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not: the wall screen, its data and the public API.
    Public,
    /// Any signed-in member, whatever their roles.
    AnyMember,
    /// A member holding this role.
    Role(Role),
}

/// How the current request proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A browser session; state-changing requests must repeat its `csrf`.
    Session { id: String, csrf: String },
    /// An API token.
    Bearer,
}

/// The member the request acts as. As an extractor it answers 401 when there is
/// none; `Option<CurrentMember>` does not.
#[derive(Debug, Clone)]
pub struct CurrentMember {
    pub member: Member,
    pub credential: Credential,
}

impl CurrentMember {
    pub fn has(&self, role: Role) -> bool {
        self.member.roles.contains(&role)
    }

    /// The CSRF token to put in this session's forms (none for a token).
    pub fn csrf(&self) -> Option<&str> {
        match &self.credential {
            Credential::Session { csrf, .. } => Some(csrf),
            Credential::Bearer => None,
        }
    }

    /// How many matches on the planning board are new to this member, for the
    /// navigation of their pages (see `ledger::Journal::new_matches`). A journal
    /// that cannot be read shows no count rather than failing the page.
    pub(crate) fn new_matches(&self, state: &crate::AppState) -> usize {
        state
            .journal
            .new_matches(&self.member.name, chrono::Utc::now())
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, member = %self.member.name, "new matches not counted");
                0
            })
    }
}

/// Why a request is refused, said in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 401: neither a valid session nor a valid token.
    SignInRequired { reason: String },
    /// 403: the member lacks the role.
    MissingRole { role: Role, member: String },
    /// 403: a cookie-authenticated change without the session's CSRF token.
    CsrfMissing,
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Refusal::SignInRequired { .. } => StatusCode::UNAUTHORIZED,
            Refusal::MissingRole { .. } | Refusal::CsrfMissing => StatusCode::FORBIDDEN,
        }
    }

    fn message(&self) -> String {
        match self {
            Refusal::SignInRequired { reason } => reason.clone(),
            Refusal::MissingRole { role, member } => {
                format!("this needs the role `{role}`, which `{member}` does not have")
            }
            Refusal::CsrfMissing => format!(
                "the request changes something but does not carry the session's CSRF token: \
                 send it in the `{CSRF_HEADER}` header or the `{CSRF_FIELD}` form field \
                 (or authenticate with a Bearer token instead of the cookie)"
            ),
        }
    }

    /// JSON under `/api/`, a page in the reader's language elsewhere.
    pub(crate) async fn response(self, parts: &mut Parts, state: &AppState) -> Response {
        let status = self.status();
        let message = self.message();
        tracing::debug!(%status, %message, path = %parts.uri.path(), "request refused");
        let mut response = if is_api(parts.uri.path()) {
            (status, Json(json!({ "error": message, "problems": [] }))).into_response()
        } else {
            let lang = match PageLang::from_request_parts(parts, state).await {
                Ok(lang) => lang.lang,
                Err(never) => match never {},
            };
            let page = match &self {
                Refusal::SignInRequired { .. } => RefusalPage::SignInRequired {
                    next: parts
                        .uri
                        .path_and_query()
                        .map_or("/".to_string(), |p| p.as_str().to_string()),
                },
                Refusal::MissingRole { role, .. } => RefusalPage::MissingRole {
                    role: role.as_str().to_string(),
                },
                Refusal::CsrfMissing => RefusalPage::FormNotVerified,
            };
            match dashboards::render_refusal(&page, lang, &state.site) {
                Ok(html) => (status, Html(html)).into_response(),
                Err(e) => return AppError::from(e).into_response(),
            }
        };
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"communalia\""),
            );
        }
        response
    }
}

fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// Whether a request with this method may change something (RFC 9110 §9.2.1: every
/// method but the safe ones).
pub fn changes_state(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The member behind the request's token or session cookie, if any. A token that
/// is not valid is refused outright rather than falling back to the cookie; a
/// session that has ended reads as no session.
pub(crate) fn authenticate(
    parts: &Parts,
    state: &AppState,
) -> Result<Result<CurrentMember, Refusal>, AppError> {
    if let Some(header) = parts.headers.get(AUTHORIZATION) {
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let Some(token) = token else {
            return Ok(Err(Refusal::SignInRequired {
                reason: "the Authorization header must be `Bearer TOKEN`".into(),
            }));
        };
        let now = chrono::Utc::now();
        return Ok(match state.journal.member_for_token(token, now)? {
            Some(member) => Ok(CurrentMember {
                member,
                credential: Credential::Bearer,
            }),
            None => Err(Refusal::SignInRequired {
                reason: "the API token is not valid (unknown, expired or revoked)".into(),
            }),
        });
    }
    let Some(id) = session_cookie(parts) else {
        return Ok(Err(Refusal::SignInRequired {
            reason: "sign in first: send a session cookie (POST /login) or \
                     `Authorization: Bearer TOKEN`"
                .into(),
        }));
    };
    Ok(match state.journal.session(id, chrono::Utc::now())? {
        Some(session) => Ok(CurrentMember {
            member: session.member,
            credential: Credential::Session {
                id: id.to_string(),
                csrf: session.csrf,
            },
        }),
        None => Err(Refusal::SignInRequired {
            reason: "the session has ended or is unknown: sign in again".into(),
        }),
    })
}

/// The session id in the request's cookie, if any.
pub(crate) fn session_cookie(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|cookies| cookie_value(cookies, SESSION_COOKIE))
        .filter(|id| !id.is_empty())
}

impl FromRequestParts<AppState> for CurrentMember {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if let Some(member) = parts.extensions.get::<CurrentMember>() {
            return Ok(member.clone());
        }
        match authenticate(parts, state) {
            Ok(Ok(member)) => Ok(member),
            Ok(Err(refusal)) => Err(refusal.response(parts, state).await),
            Err(e) => Err(e.into_response()),
        }
    }
}

impl OptionalFromRequestParts<AppState> for CurrentMember {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Infallible> {
        if let Some(member) = parts.extensions.get::<CurrentMember>() {
            return Ok(Some(member.clone()));
        }
        Ok(match authenticate(parts, state) {
            Ok(Ok(member)) => Some(member),
            Ok(Err(_)) => None,
            Err(e) => {
                tracing::error!(error = %e, "could not read the session");
                None
            }
        })
    }
}

/// Enforces a route's [`Access`] (installed on every non-public route by the route
/// table): authentication, then the role, then for a cookie-authenticated change
/// the CSRF token. The member is handed to the handler in the request extensions.
pub(crate) async fn guard(
    State(state): State<AppState>,
    access: Access,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let member = match authenticate(&parts, &state) {
        Ok(Ok(member)) => member,
        Ok(Err(refusal)) => return refusal.response(&mut parts, &state).await,
        Err(e) => return e.into_response(),
    };
    if let Access::Role(role) = access
        && !member.has(role)
    {
        let refusal = Refusal::MissingRole {
            role,
            member: member.member.name.clone(),
        };
        return refusal.response(&mut parts, &state).await;
    }
    let body = match (&member.credential, changes_state(&parts.method)) {
        (Credential::Session { csrf, .. }, true) => match check_csrf(&parts, body, csrf).await {
            Ok(Some(body)) => body,
            Ok(None) => return Refusal::CsrfMissing.response(&mut parts, &state).await,
            Err(e) => return e.into_response(),
        },
        _ => body,
    };
    parts.extensions.insert(member);
    next.run(Request::from_parts(parts, body)).await
}

/// The body to pass on if the request carries `expected` in the CSRF header or,
/// for a form, in its `csrf` field; `None` if it does not.
async fn check_csrf(parts: &Parts, body: Body, expected: &str) -> Result<Option<Body>, AppError> {
    if let Some(sent) = parts.headers.get(CSRF_HEADER) {
        return Ok(same_secret(sent.as_bytes(), expected.as_bytes()).then_some(body));
    }
    let is_form = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !is_form {
        return Ok(None);
    }
    let bytes = axum::body::to_bytes(body, FORM_LIMIT_BYTES)
        .await
        .map_err(|e| {
            AppError::invalid(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the form could not be read (at most {FORM_LIMIT_BYTES} bytes): {e}"),
                vec![],
            )
        })?;
    let matches = form_urlencoded::parse(&bytes)
        .find(|(name, _)| name == CSRF_FIELD)
        .is_some_and(|(_, sent)| same_secret(sent.as_bytes(), expected.as_bytes()));
    Ok(matches.then(|| Body::from(bytes)))
}

/// Compares two secrets in time that depends only on their lengths (`subtle` keeps
/// the optimiser from turning the comparison into an early exit).
pub(crate) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// Whether the request reached us over HTTPS (directly, or through a proxy that
/// says so): the session cookie is then marked `Secure`.
pub(crate) fn over_https(parts: &Parts) -> bool {
    parts.extensions.get::<crate::tls::OverTls>().is_some()
        || parts.uri.scheme_str() == Some("https")
        || parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// `Set-Cookie` for a new session.
pub(crate) fn session_set_cookie(id: &str, secure: bool) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={id}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}",
        ledger::SESSION_LIFETIME.num_seconds(),
        if secure { "; Secure" } else { "" }
    ))
    .ok()
}

/// `Set-Cookie` that removes the session cookie.
pub(crate) fn session_clear_cookie(secure: bool) -> HeaderValue {
    if secure {
        HeaderValue::from_static(
            "communalia_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict; Secure",
        )
    } else {
        HeaderValue::from_static(
            "communalia_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict",
        )
    }
}

/// `GET /api/me`: who the request acts as, and the CSRF token a page script sends
/// back with its changes.
pub(crate) async fn me(member: CurrentMember) -> Response {
    (
        [(CACHE_CONTROL, "no-store")],
        Json(json!({
            "name": member.member.name,
            "roles": member.member.roles,
            "csrf": member.csrf(),
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_methods_do_not_change_state() {
        for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(!changes_state(&m), "{m}");
        }
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(changes_state(&m), "{m}");
        }
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
    }

    #[test]
    fn the_session_cookie_is_strict_and_secure_only_over_https() {
        let plain = session_set_cookie("abc", false).unwrap_or_else(|| panic!("cookie"));
        let plain = plain.to_str().unwrap_or_default();
        assert!(
            plain.starts_with("communalia_session=abc; Path=/;"),
            "{plain}"
        );
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(plain.contains("Max-Age=43200"));
        assert!(!plain.contains("Secure"));
        let secure = session_set_cookie("abc", true).unwrap_or_else(|| panic!("cookie"));
        assert!(secure.to_str().unwrap_or_default().ends_with("; Secure"));
    }
}
