//! Signing in and out: `GET /login` (the form), `POST /login`, `POST /logout`, and
//! the in-memory limit on failed attempts.
//!
//! The sign-in form carries its own anti-forgery token, since there is no session
//! yet to hold one: `GET /login` sets it in a `communalia_login` cookie (HttpOnly,
//! SameSite=Strict, Path=/login) and in the form, and `POST /login` wants both to
//! match. This keeps another site from signing a visitor into an account of its
//! choosing.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Form;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::header::{CACHE_CONTROL, COOKIE, LOCATION, RETRY_AFTER, SET_COOKIE, VARY};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use dashboards::{LoginProblem, LoginView, SignedIn};
use rand::RngCore;
use serde::Deserialize;

use crate::auth::{
    Credential, CurrentMember, over_https, same_secret, session_clear_cookie, session_set_cookie,
};
use crate::lang::{PageLang, cookie_value};
use crate::{AppError, AppState};

/// The sign-in form's own anti-forgery cookie.
const LOGIN_COOKIE: &str = "communalia_login";

/// Failed sign-ins allowed per account within [`LIMIT_WINDOW`].
pub const FAILURES_PER_ACCOUNT: usize = 5;
/// Failed sign-ins allowed per client address within [`LIMIT_WINDOW`]: more than
/// per account, since a whole household or the community hall shares an address.
pub const FAILURES_PER_ADDRESS: usize = 20;
pub const LIMIT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Beyond this many remembered keys, those with no recent failure are forgotten.
const MAX_TRACKED: usize = 10_000;

/// Failed sign-ins in the last [`LIMIT_WINDOW`], per account name (ASCII case
/// folded) and per client address. In memory: a restart forgets them, which costs an
/// attacker a restart per few guesses. The client address is the TCP peer's:
/// `X-Forwarded-For` is not trusted, since anyone can write it.
#[derive(Debug)]
pub struct LoginLimiter {
    per_account: usize,
    per_address: usize,
    window: Duration,
    failures: Mutex<Failures>,
}

#[derive(Debug, Default)]
struct Failures {
    by_account: HashMap<String, VecDeque<Instant>>,
    by_address: HashMap<String, VecDeque<Instant>>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new(FAILURES_PER_ACCOUNT, FAILURES_PER_ADDRESS, LIMIT_WINDOW)
    }
}

impl LoginLimiter {
    pub fn new(per_account: usize, per_address: usize, window: Duration) -> Self {
        LoginLimiter {
            per_account,
            per_address,
            window,
            failures: Mutex::new(Failures::default()),
        }
    }

    /// `Err(wait)` while the account or the address has used up its failures.
    pub fn check(&self, account: &str, address: &str, now: Instant) -> Result<(), Duration> {
        let mut f = self.lock();
        let account = account_key(account);
        let wait_account = wait(
            f.by_account.get_mut(&account),
            self.per_account,
            self.window,
            now,
        );
        let wait_address = wait(
            f.by_address.get_mut(address),
            self.per_address,
            self.window,
            now,
        );
        match wait_account.max(wait_address) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    pub fn record_failure(&self, account: &str, address: &str, now: Instant) {
        let mut f = self.lock();
        if f.by_account.len() + f.by_address.len() > MAX_TRACKED {
            let window = self.window;
            let recent = |q: &mut VecDeque<Instant>| {
                q.back()
                    .is_some_and(|last| now.saturating_duration_since(*last) < window)
            };
            f.by_account.retain(|_, q| recent(q));
            f.by_address.retain(|_, q| recent(q));
        }
        f.by_account
            .entry(account_key(account))
            .or_default()
            .push_back(now);
        f.by_address
            .entry(address.to_string())
            .or_default()
            .push_back(now);
    }

    /// A successful sign-in clears the account's failures (not the address's).
    pub fn record_success(&self, account: &str) {
        self.lock().by_account.remove(&account_key(account));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn account_key(account: &str) -> String {
    account.trim().to_ascii_lowercase()
}

/// Drops failures older than the window; how long until one more is allowed.
fn wait(
    failures: Option<&mut VecDeque<Instant>>,
    limit: usize,
    window: Duration,
    now: Instant,
) -> Option<Duration> {
    let failures = failures?;
    while failures
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= window)
    {
        failures.pop_front();
    }
    if failures.len() < limit {
        return None;
    }
    // The oldest failure that must expire before the count drops below the limit.
    let oldest = failures[failures.len() - limit];
    Some(window.saturating_sub(now.saturating_duration_since(oldest)))
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LoginForm {
    name: String,
    password: String,
    csrf: String,
    next: String,
}

/// `GET /login`: the form, or the sign-out button for a member already signed in.
pub(crate) async fn form(
    State(state): State<AppState>,
    lang: PageLang,
    member: Option<CurrentMember>,
    Query(query): Query<LoginQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let signed_in = member.and_then(|m| {
        m.csrf().map(|csrf| SignedIn {
            name: m.member.name.clone(),
            csrf: csrf.to_string(),
        })
    });
    let (csrf, fresh) = login_token(&headers);
    let view = LoginView {
        name: String::new(),
        next: safe_next(query.next.as_deref().unwrap_or("/")).to_string(),
        csrf,
        problem: None,
        signed_in,
    };
    page(
        StatusCode::OK,
        &view,
        &lang,
        &state,
        fresh.then_some(&view.csrf),
    )
}

/// `POST /login`: checks the form's token, the limits, then the password; on
/// success opens a session and goes on to `next`.
pub(crate) async fn submit(
    State(state): State<AppState>,
    lang: PageLang,
    client: ClientAddress,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, AppError> {
    let next = safe_next(&form.next).to_string();
    let mut view = LoginView {
        name: form.name.trim().to_string(),
        next: next.clone(),
        csrf: String::new(),
        problem: None,
        signed_in: None,
    };
    let (csrf, fresh) = login_token(&headers);
    view.csrf = csrf;
    let set_token = fresh.then(|| view.csrf.clone());
    let refuse = |status, problem, view: &mut LoginView| {
        view.problem = Some(problem);
        page(status, view, &lang, &state, set_token.as_ref())
    };
    if fresh || !same_secret(form.csrf.as_bytes(), view.csrf.as_bytes()) {
        return refuse(StatusCode::FORBIDDEN, LoginProblem::Expired, &mut view);
    }
    if view.name.is_empty() || form.password.is_empty() {
        return refuse(StatusCode::BAD_REQUEST, LoginProblem::Missing, &mut view);
    }
    let limiter = state.login_limiter.clone();
    if let Err(wait) = limiter.check(&view.name, &client.ip, Instant::now()) {
        let retry_after_s = wait.as_secs().max(1);
        tracing::warn!(account = %view.name, address = %client.ip, "sign-in refused: too many failures");
        let mut response = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            LoginProblem::RateLimited { retry_after_s },
            &mut view,
        )?;
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(retry_after_s));
        return Ok(response);
    }

    let journal = state.journal.clone();
    let (name, password) = (view.name.clone(), form.password);
    // argon2 takes tens of milliseconds of CPU: off the async workers.
    let session =
        tokio::task::spawn_blocking(move || match journal.check_password(&name, &password)? {
            Some(member) => journal
                .create_session(&member.name, chrono::Utc::now())
                .map(|s| Some((member, s))),
            None => Ok(None),
        })
        .await
        .map_err(|e| AppError::Internal(format!("sign-in task: {e}")))??;

    let Some((member, session)) = session else {
        limiter.record_failure(&view.name, &client.ip, Instant::now());
        tracing::info!(account = %view.name, address = %client.ip, "sign-in failed");
        return refuse(
            StatusCode::UNAUTHORIZED,
            LoginProblem::Credentials,
            &mut view,
        );
    };
    limiter.record_success(&view.name);
    tracing::info!(member = %member.name, "signed in");
    let mut response = (
        StatusCode::SEE_OTHER,
        [(LOCATION, next), (CACHE_CONTROL, "no-store".to_string())],
    )
        .into_response();
    let headers = response.headers_mut();
    if let Some(cookie) = session_set_cookie(&session.id, client.https) {
        headers.append(SET_COOKIE, cookie);
    }
    headers.append(SET_COOKIE, clear_login_cookie());
    Ok(response)
}

/// `POST /logout`: ends the session (a token has none to end) and goes to the wall.
pub(crate) async fn logout(
    State(state): State<AppState>,
    client: ClientAddress,
    member: CurrentMember,
) -> Result<Response, AppError> {
    if let Credential::Session { id, .. } = &member.credential {
        let journal = state.journal.clone();
        let id = id.clone();
        tokio::task::spawn_blocking(move || journal.delete_session(&id))
            .await
            .map_err(|e| AppError::Internal(format!("sign-out task: {e}")))??;
        tracing::info!(member = %member.member.name, "signed out");
    }
    let mut response = (
        StatusCode::SEE_OTHER,
        [(LOCATION, "/"), (CACHE_CONTROL, "no-store")],
    )
        .into_response();
    response
        .headers_mut()
        .append(SET_COOKIE, session_clear_cookie(client.https));
    Ok(response)
}

fn page(
    status: StatusCode,
    view: &LoginView,
    lang: &PageLang,
    state: &AppState,
    set_login_token: Option<&String>,
) -> Result<Response, AppError> {
    let html = dashboards::render_login(view, lang.lang, &state.site)?;
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(VARY, HeaderValue::from_static("Accept-Language, Cookie"));
    if let Some(cookie) = lang.cookie() {
        headers.append(SET_COOKIE, cookie);
    }
    if let Some(token) = set_login_token
        && let Ok(cookie) = HeaderValue::from_str(&format!(
            "{LOGIN_COOKIE}={token}; Path=/login; Max-Age=86400; HttpOnly; SameSite=Strict"
        ))
    {
        headers.append(SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The sign-in form's token from its cookie, or a new one (`true`) to be set.
fn login_token(headers: &HeaderMap) -> (String, bool) {
    let existing = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| cookie_value(c, LOGIN_COOKIE))
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()));
    match existing {
        Some(token) => (token.to_string(), false),
        None => {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            let token = bytes.iter().map(|b| format!("{b:02x}")).collect();
            (token, true)
        }
    }
}

fn clear_login_cookie() -> HeaderValue {
    HeaderValue::from_static("communalia_login=; Path=/login; Max-Age=0; HttpOnly; SameSite=Strict")
}

/// A path on this site to go to after signing in; anything else (another site,
/// `//host`, a scheme) becomes `/`.
fn safe_next(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control);
    if local { next } else { "/" }
}

/// The client's address for the limits (the TCP peer; `unknown` when the server
/// was not started with connection info, as in `oneshot` tests), and whether the
/// request came over HTTPS.
#[derive(Debug, Clone)]
pub(crate) struct ClientAddress {
    pub(crate) ip: String,
    pub(crate) https: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(
                || "unknown".to_string(),
                |ConnectInfo(a)| a.ip().to_string(),
            );
        Ok(ClientAddress {
            ip: address,
            https: over_https(parts),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_the_account_until_the_oldest_expires() {
        let limiter = LoginLimiter::default();
        let t0 = Instant::now();
        for i in 0..5 {
            assert!(limiter.check("Ana", "10.0.0.1", t0).is_ok(), "attempt {i}");
            limiter.record_failure("Ana", "10.0.0.1", t0 + Duration::from_secs(i * 60));
        }
        let now = t0 + Duration::from_secs(5 * 60);
        let Err(wait) = limiter.check("ana", "10.0.0.2", now) else {
            panic!("the account should be locked")
        };
        assert_eq!(wait, Duration::from_secs(10 * 60));
        // Another account from the same address is not locked.
        assert!(limiter.check("Bo", "10.0.0.1", now).is_ok());
        // Once the first failure is 15 minutes old, one more try is allowed.
        assert!(limiter.check("Ana", "10.0.0.1", t0 + LIMIT_WINDOW).is_ok());
    }

    #[test]
    fn a_success_clears_the_account_but_not_the_address() {
        let limiter = LoginLimiter::new(2, 3, LIMIT_WINDOW);
        let t0 = Instant::now();
        limiter.record_failure("Ana", "a", t0);
        limiter.record_failure("Ana", "a", t0);
        assert!(limiter.check("Ana", "b", t0).is_err());
        limiter.record_success("ANA");
        assert!(limiter.check("Ana", "b", t0).is_ok());
        limiter.record_failure("Bo", "a", t0);
        assert!(
            limiter.check("Cy", "a", t0).is_err(),
            "address a has 3 failures"
        );
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next("/assembly"), "/assembly");
        assert_eq!(safe_next("/assembly?tab=history"), "/assembly?tab=history");
        for bad in [
            "",
            "https://evil.example/",
            "//evil.example",
            "/\\evil",
            "assembly",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad}");
        }
    }
}
