//! Attacks on the node's web side (DESIGN.md §9), each reproduced as an attacker
//! would try it, and refused: racing the sign-in limit, installer queries that
//! outlive their time or pile up, and pages framed or sniffed by another site.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use ledger::Role;
use tower::ServiceExt;
use web::{Access, AppState};

use crate::support::{
    PASSWORD, Reply, form_csrf, get, login, request, send, set_cookie, with_members,
};

/// A sign-in form as a browser would post it from `address`, its anti-forgery
/// cookie fetched beforehand, so that many can be sent at the same instant.
async fn sign_in_request(
    state: &AppState,
    name: &str,
    password: &str,
    address: &str,
) -> Request<Body> {
    let page = send(state.clone(), get("/login", &[])).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let cookie = set_cookie(&page, "communalia_login").unwrap_or_else(|| panic!("no login cookie"));
    let body = format!(
        "name={name}&password={}&csrf={}&next=%2F",
        password.replace(' ', "+"),
        form_csrf(&page.body)
    );
    let mut request = Request::post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie)
        .body(Body::from(body))
        .unwrap_or_else(|e| panic!("request: {e}"));
    let addr: std::net::SocketAddr = format!("{address}:40000")
        .parse()
        .unwrap_or_else(|e| panic!("{address}: {e}"));
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(addr));
    request
}

/// Sends every request at once and gathers the answers.
async fn all_at_once(state: &AppState, requests: Vec<Request<Body>>) -> Vec<Reply> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let (state, barrier) = (state.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                send(state, request).await
            })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.unwrap_or_else(|e| panic!("sign-in task: {e}")));
    }
    replies
}

/// The attack seen: 40 wrong passwords for one account sent at the same instant,
/// each from its own address so that only the account's limit stands in the way.
/// Each checked password answers 401; no more than the limit may ever be checked,
/// and every other attempt is told when to come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sign_in_cannot_be_raced_past_its_limit() {
    let (state, _tx) = with_members();
    let mut requests = Vec::new();
    for i in 0..40 {
        requests.push(
            sign_in_request(
                &state,
                "aline",
                "a wrong guess",
                &format!("10.9.0.{}", i + 1),
            )
            .await,
        );
    }
    let replies = all_at_once(&state, requests).await;
    let checked = replies
        .iter()
        .filter(|r| r.status == StatusCode::UNAUTHORIZED)
        .count();
    assert!(
        checked <= web::FAILURES_PER_ACCOUNT,
        "{checked} passwords were checked for one account; the limit is {}",
        web::FAILURES_PER_ACCOUNT
    );
    for reply in replies
        .iter()
        .filter(|r| r.status != StatusCode::UNAUTHORIZED)
    {
        assert!(
            matches!(
                reply.status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            ),
            "{}: {}",
            reply.status,
            reply.body
        );
        let retry: u64 = reply
            .header("retry-after")
            .parse()
            .unwrap_or_else(|e| panic!("Retry-After of a {}: {e}", reply.status));
        assert!((1..=15 * 60).contains(&retry), "{retry}");
    }
    // Now that the limit is used up (the burst is over, so nothing is busy), even
    // the right password waits, and checking it does not count one more failure.
    for _ in 0..web::FAILURES_PER_ACCOUNT - checked {
        let reply = send(
            state.clone(),
            sign_in_request(&state, "aline", "another guess", "10.9.1.1").await,
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    }
    let right = send(
        state.clone(),
        sign_in_request(&state, "aline", PASSWORD, "10.9.1.2").await,
    )
    .await;
    assert_eq!(
        right.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        right.body
    );
}

/// CPU time (user and system, in ticks of 1/100 s as `/proc` counts them) of each
/// of this process's threads running installer queries, by thread id.
fn sql_threads_cpu() -> BTreeMap<String, u64> {
    let mut cpu = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return cpu;
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != "communalia-sql" {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the command's closing parenthesis: state is the first,
        // utime the 12th and stime the 13th.
        let fields: Vec<u64> = stat
            .rsplit_once(')')
            .map(|(_, rest)| {
                rest.split_whitespace()
                    .skip(1)
                    .map(|f| f.parse().unwrap_or(0))
                    .collect()
            })
            .unwrap_or_default();
        if let (Some(utime), Some(stime)) = (fields.get(10), fields.get(11)) {
            cpu.insert(
                task.file_name().to_string_lossy().into_owned(),
                utime + stime,
            );
        }
    }
    cpu
}

/// The attack seen: a query that computes for minutes (a cross join of a million
/// rows by a million) was answered 408 after its 10 s but went on using a core; sent
/// several times, it took every core. Now two run at once and the third is told to
/// come back; past their time both are stopped, not just answered: within a moment
/// no query thread uses the processor, and the next query runs at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn installer_sql_past_its_time_is_stopped_and_never_piles_up() {
    let (mut state, _tx) = with_members();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let history = ingest::history::History::open(dir.path(), Default::default())
        .unwrap_or_else(|e| panic!("{e}"));
    state.queries = Some(
        query::history_session::Queries::new(history, &[], &[])
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let ivo = login(&state, "ivo").await;
    let ask = |sql: &str| {
        request(
            "POST",
            "/api/sql",
            &[("cookie", &ivo.cookie), ("x-csrf-token", &ivo.csrf)],
            &serde_json::json!({ "sql": sql }).to_string(),
        )
    };
    let slow = "SELECT count(*) FROM range(1000000) a CROSS JOIN range(1000000) b";
    let sent = Instant::now();
    let tasks: Vec<_> = (0..3)
        .map(|_| tokio::spawn(send(state.clone(), ask(slow))))
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.unwrap_or_else(|e| panic!("{e}")));
    }
    let answered_after = sent.elapsed();

    // A moment for the stopped queries to unwind, then a second and a half of
    // watching. A runaway query gets its share of a core even on a busy machine;
    // a stopped one has no thread left.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = sql_threads_cpu();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = sql_threads_cpu();
    let busy_ticks: u64 = after
        .iter()
        .map(|(thread, ticks)| ticks.saturating_sub(*before.get(thread).unwrap_or(ticks)))
        .sum();
    assert!(
        busy_ticks < 10,
        "query threads used {} s of processor in the 1.5 s after their queries were \
         answered {:?}: they were not stopped",
        busy_ticks as f64 / 100.0,
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );

    println!(
        "query threads after the answers: {} s of processor",
        busy_ticks as f64 / 100.0
    );
    let next_sent = Instant::now();
    let next = send(state.clone(), ask("SELECT 1 AS one")).await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.body);
    assert!(next_sent.elapsed() < Duration::from_secs(2));

    let mut statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [408, 408, 503],
        "{:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    assert!(
        answered_after < Duration::from_secs(12),
        "{answered_after:?}"
    );
    for reply in &replies {
        let error = reply.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(reply.header("retry-after"), "2");
            assert!(
                error.contains("2 installer queries are already running"),
                "{error}"
            );
        } else {
            assert!(
                error.contains("took longer than 10s and was stopped"),
                "{error}"
            );
        }
    }
}

/// The headers of the answer to `request`; the body is not read, so that an
/// endless event stream answers too.
async fn headers_of(state: &AppState, request: Request<Body>) -> (StatusCode, HeaderMap) {
    let response = web::app(state.clone())
        .oneshot(request)
        .await
        .unwrap_or_else(|e| match e {});
    (response.status(), response.headers().clone())
}

/// What every answer must say about itself, each checked on its own: a page that
/// another site may not frame, script and styles from this site only, no guessing
/// of content types, and no address of the node handed to other sites.
fn security_problems(headers: &HeaderMap) -> Vec<String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let mut problems = Vec::new();
    let csp = header("content-security-policy");
    let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
    for wanted in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ] {
        if !directives.contains(&wanted) {
            problems.push(format!("CSP {csp:?} lacks `{wanted}`"));
        }
    }
    if csp.contains("unsafe-inline") || csp.contains("unsafe-eval") {
        problems.push(format!("CSP {csp:?} allows inline or eval'd code"));
    }
    if header("x-content-type-options") != "nosniff" {
        problems.push("no `X-Content-Type-Options: nosniff`".into());
    }
    if !matches!(
        header("referrer-policy").as_str(),
        "no-referrer" | "same-origin"
    ) {
        problems.push(format!("Referrer-Policy {:?}", header("referrer-policy")));
    }
    if header("x-frame-options") != "DENY" {
        problems.push("no `X-Frame-Options: DENY` for browsers without CSP".into());
    }
    problems
}

/// The attack seen: no page said it may not be framed (another site could show the
/// sign-in or the assembly's form under its own, and have them clicked), nor that
/// its type is not to be guessed, nor where its scripts may come from. Every route
/// of the table answers with those headers, to a stranger and to a member with the
/// route's role alike, and so do a page that does not exist and a refused method.
#[tokio::test]
async fn every_answer_forbids_framing_sniffing_and_foreign_scripts() {
    let (state, _tx) = with_members();
    let token_of = |name: &str| {
        state
            .journal
            .create_token(name, "headers", None, chrono::Utc::now())
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let tokens: BTreeMap<&str, String> = ["rita", "aline", "ivo", "ada"]
        .into_iter()
        .map(|name| (name, token_of(name)))
        .collect();
    let mut failures = Vec::new();
    let mut checked = 0;
    for spec in web::routes() {
        let path = spec.path.replace("{id}", "1");
        let member = match spec.access {
            Access::Role(Role::Assembly) => Some("aline"),
            Access::Role(Role::Installer) => Some("ivo"),
            Access::Role(Role::Admin) => Some("ada"),
            Access::Role(Role::Resident) | Access::AnyMember => Some("rita"),
            Access::Public => None,
        };
        let mut callers = vec![None];
        callers.extend(member.map(Some));
        for caller in callers {
            let bearer = caller.map(|name| format!("Bearer {}", tokens[name]));
            let headers: Vec<(&str, &str)> = bearer
                .as_deref()
                .map(|b| vec![("authorization", b)])
                .unwrap_or_default();
            let (status, answer) =
                headers_of(&state, request(spec.method.as_str(), &path, &headers, "{}")).await;
            for problem in security_problems(&answer) {
                failures.push(format!(
                    "{} {path} as {}: {status}: {problem}",
                    spec.method,
                    caller.unwrap_or("a stranger")
                ));
            }
            checked += 1;
        }
    }
    for (method, path) in [
        ("GET", "/no-such-page"),
        ("GET", "/api/no-such-thing"),
        ("DELETE", "/login"),
    ] {
        let (status, answer) = headers_of(&state, request(method, path, &[], "")).await;
        for problem in security_problems(&answer) {
            failures.push(format!("{method} {path}: {status}: {problem}"));
        }
        checked += 1;
    }
    assert!(checked > 50, "only {checked} answers checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
