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
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use axum::Form;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::header::{CACHE_CONTROL, COOKIE, LOCATION, RETRY_AFTER, SET_COOKIE, VARY};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use dashboards::{LoginProblem, LoginView, SignedIn};
use ledger::PasswordMemory;
use rand::RngCore;
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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
/// Passwords checked at the same time. Each check holds ~19 MiB (argon2id as the
/// ledger hashes) and a core for tens of milliseconds; a sign-in that finds them
/// all busy is answered 503 at once rather than queued.
pub const PASSWORD_CHECKS_AT_ONCE: usize = 2;

/// `Retry-After` of a sign-in turned away while every check is busy: a check takes
/// tens of milliseconds.
const BUSY_RETRY_AFTER_S: &str = "1";

/// Beyond this many remembered keys, those with no recent failure are forgotten.
const MAX_TRACKED: usize = 10_000;

/// Failed sign-ins in the last [`LIMIT_WINDOW`], per account name (ASCII case
/// folded) and per client address, and the password checks running now. In memory:
/// a restart forgets them, which costs an attacker a restart per few guesses. The
/// client address is the TCP peer's: `X-Forwarded-For` is not trusted, since anyone
/// can write it.
///
/// An attempt counts as a failure from the moment it is let through
/// ([`LoginLimiter::attempt`]), before its password is checked, and stops counting
/// only once it has succeeded: however many arrive at the same instant, no more
/// passwords are checked than the limit allows.
#[derive(Debug)]
pub struct LoginLimiter {
    per_account: usize,
    per_address: usize,
    window: Duration,
    failures: Mutex<Failures>,
    checks: PasswordChecks,
}

#[derive(Debug, Default)]
struct Failures {
    by_account: HashMap<String, VecDeque<Instant>>,
    by_address: HashMap<String, VecDeque<Instant>>,
}

/// A sign-in let through by [`LoginLimiter::attempt`]: already counted as a
/// failure of its account and its address.
#[derive(Debug)]
#[must_use = "an attempt counts as a failure unless it is marked as succeeded"]
pub struct Attempt {
    account: String,
    address: String,
    at: Instant,
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
            checks: PasswordChecks::new(PASSWORD_CHECKS_AT_ONCE),
        }
    }

    /// Lets one sign-in attempt through, counting it as a failure of `account` and
    /// `address` at once, in the same step as the check; `Err(wait)` while either
    /// has used up its failures.
    pub fn attempt(&self, account: &str, address: &str, now: Instant) -> Result<Attempt, Duration> {
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
        if let Some(wait) = wait_account.max(wait_address) {
            return Err(wait);
        }
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
            .entry(account.clone())
            .or_default()
            .push_back(now);
        f.by_address
            .entry(address.to_string())
            .or_default()
            .push_back(now);
        Ok(Attempt {
            account,
            address: address.to_string(),
            at: now,
        })
    }

    /// A successful sign-in clears its account's failures, and takes back the
    /// failure its attempt counted for the address (the address's other failures
    /// stay).
    pub fn succeeded(&self, attempt: Attempt) {
        let mut f = self.lock();
        f.by_account.remove(&attempt.account);
        if let Some(q) = f.by_address.get_mut(&attempt.address)
            && let Some(i) = q.iter().rposition(|t| *t == attempt.at)
        {
            q.remove(i);
        }
    }

    /// A place to check one password, or `None` when [`PASSWORD_CHECKS_AT_ONCE`]
    /// are running.
    pub fn check_slot(&self) -> Option<CheckSlot> {
        self.checks.slot()
    }

    /// Password checks running now.
    pub fn checks_running(&self) -> usize {
        self.checks.running()
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

type Job = Box<dyn FnOnce(&mut PasswordMemory) + Send>;

/// Threads kept for checking passwords, as many as checks may run at once, started
/// on the first sign-in and ended with the limiter. Each keeps the ~19 MiB an
/// argon2 check works in from one check to the next: allocated anew for each check
/// (and on any of the blocking pool's threads), that memory piles up in the
/// allocator, ~19 MiB more for every few checks.
#[derive(Debug)]
struct PasswordChecks {
    slots: Arc<Semaphore>,
    threads: usize,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
}

/// The right to check one password now (see [`LoginLimiter::check_slot`]); it is
/// given back when the check is over, even if the request was given up meanwhile.
#[derive(Debug)]
pub struct CheckSlot {
    _permit: OwnedSemaphorePermit,
    jobs: mpsc::Sender<Job>,
}

impl PasswordChecks {
    fn new(threads: usize) -> Self {
        PasswordChecks {
            slots: Arc::new(Semaphore::new(threads)),
            threads,
            jobs: Mutex::new(None),
        }
    }

    fn running(&self) -> usize {
        self.threads - self.slots.available_permits()
    }

    fn slot(&self) -> Option<CheckSlot> {
        let permit = self.slots.clone().try_acquire_owned().ok()?;
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        let sender = match &*jobs {
            Some(sender) => sender.clone(),
            None => {
                let (sender, receiver) = mpsc::channel::<Job>();
                let receiver = Arc::new(Mutex::new(receiver));
                for i in 0..self.threads {
                    let receiver = receiver.clone();
                    let started = std::thread::Builder::new()
                        .name(format!("communalia-pw-{i}"))
                        .spawn(move || {
                            let mut memory = PasswordMemory::default();
                            loop {
                                let job = receiver
                                    .lock()
                                    .unwrap_or_else(PoisonError::into_inner)
                                    .recv();
                                let Ok(job) = job else { break };
                                // A check that panics ends its request, not the thread.
                                let _ =
                                    std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut memory)));
                            }
                        });
                    if let Err(e) = started {
                        tracing::error!(error = %e, "cannot start a password-check thread");
                        return None;
                    }
                }
                *jobs = Some(sender.clone());
                sender
            }
        };
        Some(CheckSlot {
            _permit: permit,
            jobs: sender,
        })
    }
}

impl CheckSlot {
    /// Runs `check` on a password-check thread, in that thread's memory, and waits
    /// for its answer.
    pub async fn run<T: Send + 'static>(
        self,
        check: impl FnOnce(&mut PasswordMemory) -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let jobs = self.jobs.clone();
        let job: Job = Box::new(move |memory| {
            let answer = check(memory);
            // The slot is given back only now that the check is over.
            drop(self);
            let _ = tx.send(answer);
        });
        jobs.send(job)
            .map_err(|_| AppError::Internal("the password-check threads have stopped".into()))?;
        rx.await
            .map_err(|_| AppError::Internal("a password check ended without an answer".into()))
    }
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
    // A place to check the password first: a sign-in turned away because the node
    // is busy costs the account nothing.
    let Some(slot) = limiter.check_slot() else {
        tracing::warn!(account = %view.name, address = %client.ip, "sign-in refused: busy checking other passwords");
        let mut response = refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            LoginProblem::Busy,
            &mut view,
        )?;
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static(BUSY_RETRY_AFTER_S));
        return Ok(response);
    };
    // Counted as a failure before the password is checked, so that attempts arriving
    // together cannot all pass the limit before any of them has failed.
    let attempt = match limiter.attempt(&view.name, &client.ip, Instant::now()) {
        Ok(attempt) => attempt,
        Err(wait) => {
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
    };

    let journal = state.journal.clone();
    let (name, password) = (view.name.clone(), form.password);
    let member = slot
        .run(move |memory| journal.check_password_in(&name, &password, memory))
        .await??;
    let Some(member) = member else {
        tracing::info!(account = %view.name, address = %client.ip, "sign-in failed");
        return refuse(
            StatusCode::UNAUTHORIZED,
            LoginProblem::Credentials,
            &mut view,
        );
    };
    limiter.succeeded(attempt);
    let journal = state.journal.clone();
    let session_of = member.name.clone();
    let session = tokio::task::spawn_blocking(move || {
        journal.create_session(&session_of, chrono::Utc::now())
    })
    .await
    .map_err(|e| AppError::Internal(format!("sign-in task: {e}")))??;
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
    headers.append(SET_COOKIE, clear_login_cookie(client.https));
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
            "{LOGIN_COOKIE}={token}; Path=/login; Max-Age=86400; HttpOnly; SameSite=Strict{}",
            if lang.https { "; Secure" } else { "" }
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

fn clear_login_cookie(secure: bool) -> HeaderValue {
    if secure {
        return HeaderValue::from_static(
            "communalia_login=; Path=/login; Max-Age=0; HttpOnly; SameSite=Strict; Secure",
        );
    }
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
            let at = t0 + Duration::from_secs(i * 60);
            assert!(
                limiter.attempt("Ana", "10.0.0.1", at).is_ok(),
                "attempt {i}"
            );
        }
        let now = t0 + Duration::from_secs(5 * 60);
        let Err(wait) = limiter.attempt("ana", "10.0.0.2", now) else {
            panic!("the account should be locked")
        };
        assert_eq!(wait, Duration::from_secs(10 * 60));
        // Another account from the same address is not locked.
        assert!(limiter.attempt("Bo", "10.0.0.1", now).is_ok());
        // Once the first failure is 15 minutes old, one more try is allowed.
        assert!(
            limiter
                .attempt("Ana", "10.0.0.1", t0 + LIMIT_WINDOW)
                .is_ok()
        );
    }

    #[test]
    fn an_attempt_counts_before_its_password_is_checked() {
        let limiter = LoginLimiter::new(2, 10, LIMIT_WINDOW);
        let t0 = Instant::now();
        // Two attempts in flight, neither checked yet: a third must wait.
        let _first = limiter.attempt("Ana", "a", t0);
        let _second = limiter.attempt("Ana", "b", t0);
        assert!(limiter.attempt("Ana", "c", t0).is_err());
    }

    #[test]
    fn a_success_clears_the_account_and_its_own_count_for_the_address() {
        let limiter = LoginLimiter::new(2, 3, LIMIT_WINDOW);
        let t0 = Instant::now();
        let _ = limiter.attempt("Ana", "a", t0);
        let _ = limiter.attempt("Ana", "a", t0);
        assert!(limiter.attempt("Ana", "b", t0).is_err());
        let Ok(success) = limiter.attempt("Bo", "a", t0 + Duration::from_secs(1)) else {
            panic!("Bo is not locked")
        };
        // Address a has three attempts counted: it is locked until one is taken back.
        assert!(limiter.attempt("Cy", "a", t0).is_err());
        limiter.succeeded(success);
        let _ = limiter.attempt("Cy", "a", t0);
        assert!(
            limiter.attempt("Di", "a", t0).is_err(),
            "address a has 3 failures: Ana's two and Cy's"
        );
        // Ana's own success clears her account, not the address.
        let Ok(ana) = limiter.attempt("ANA", "b", t0 + LIMIT_WINDOW) else {
            panic!("Ana's failures have expired")
        };
        limiter.succeeded(ana);
        assert!(limiter.attempt("Ana", "b", t0 + LIMIT_WINDOW).is_ok());
    }

    #[tokio::test]
    async fn no_more_passwords_are_checked_at_once_than_the_slots() {
        let limiter = Arc::new(LoginLimiter::default());
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let mut running = Vec::new();
        for _ in 0..PASSWORD_CHECKS_AT_ONCE {
            let slot = limiter
                .check_slot()
                .unwrap_or_else(|| panic!("a free slot"));
            let gate = gate.clone();
            running.push(tokio::spawn(slot.run(move |_| {
                let _ = gate.lock().map(|g| g.recv());
            })));
        }
        assert!(limiter.check_slot().is_none(), "every slot is taken");
        assert_eq!(limiter.checks_running(), PASSWORD_CHECKS_AT_ONCE);
        for _ in 0..PASSWORD_CHECKS_AT_ONCE {
            let _ = release.send(());
        }
        for check in running {
            let answer = check.await.unwrap_or_else(|e| panic!("{e}"));
            assert!(answer.is_ok());
        }
        assert_eq!(limiter.checks_running(), 0);
        assert!(limiter.check_slot().is_some());
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
