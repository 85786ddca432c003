//! Attacks on the node's web side (DESIGN.md §9), each reproduced as an attacker
//! would try it, and refused: racing the sign-in limit, and flooding sign-in to
//! exhaust memory.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use web::AppState;

use crate::support::{PASSWORD, Reply, form_csrf, get, send, set_cookie, with_members};

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
