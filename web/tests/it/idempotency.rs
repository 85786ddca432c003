//! `Idempotency-Key` on `POST /api/transfers`, `/api/contributions` and
//! `/api/plans`: a request retried on a flaky network is recorded once.

use axum::http::StatusCode;
use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::support::{
    Reply, bearer, decision_json, plan_json, request, send, validated, with_residents,
};

async fn post(
    state: &web::AppState,
    auth: &str,
    key: Option<&str>,
    uri: &str,
    body: &Value,
) -> Reply {
    let mut headers = vec![("authorization", auth)];
    if let Some(key) = key {
        headers.push(("idempotency-key", key));
    }
    send(
        state.clone(),
        request("POST", uri, &headers, &body.to_string()),
    )
    .await
}

fn journal_len(state: &web::AppState) -> usize {
    state
        .journal
        .entries(0, 10_000)
        .unwrap_or_else(|e| panic!("{e}"))
        .len()
}

fn kinds_since(state: &web::AppState, len: usize) -> Vec<ledger::EntryKind> {
    state
        .journal
        .entries(0, 10_000)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .skip(len)
        .map(|e| e.kind)
        .collect()
}

/// rita with 100 Communs, earned yesterday.
fn rita_with_100() -> web::AppState {
    let (state, _tx) = with_residents();
    validated(&state, "rita", 10.0, Utc::now() - Duration::days(1));
    state
}

#[tokio::test]
async fn a_transfer_retried_with_its_key_pays_once() {
    let state = rita_with_100();
    let rita = bearer(&state, "rita");
    let before = journal_len(&state);
    let body = json!({"to": "sara", "amount": 30, "memo": "Les courses"});
    let first = post(&state, &rita, Some("pay-sara-1"), "/api/transfers", &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.header("idempotent-replayed"), "");
    let recorded = journal_len(&state);
    // The answer was lost: the client sends the same request again.
    let again = post(&state, &rita, Some("pay-sara-1"), "/api/transfers", &body).await;
    assert_eq!(again.status, first.status);
    assert_eq!(again.json(), first.json());
    assert_eq!(again.header("idempotent-replayed"), "true");
    assert_eq!(journal_len(&state), recorded, "nothing new recorded");
    let transfers: Vec<_> = kinds_since(&state, before)
        .into_iter()
        .filter(|k| *k == ledger::EntryKind::Transfer)
        .collect();
    assert_eq!(transfers.len(), 1);
    let received: Vec<i64> = state
        .journal
        .transfers_of("sara")
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|t| t.amount.micro())
        .collect();
    assert_eq!(received, [30_000_000], "sara got 30 Communs once");
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused() {
    let state = rita_with_100();
    let rita = bearer(&state, "rita");
    let body = json!({"to": "sara", "amount": 30, "memo": ""});
    let first = post(&state, &rita, Some("k"), "/api/transfers", &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let recorded = journal_len(&state);
    let other = json!({"to": "sara", "amount": 60, "memo": ""});
    let reply = post(&state, &rita, Some("k"), "/api/transfers", &other).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    assert!(
        reply.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("already used for a different request")),
        "{}",
        reply.body
    );
    assert_eq!(journal_len(&state), recorded);
    // Keys are per member: sara's "k" is her own.
    let sara = bearer(&state, "sara");
    let back = json!({"to": "rita", "amount": 10, "memo": ""});
    let reply = post(&state, &sara, Some("k"), "/api/transfers", &back).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    // A key that is not one is a bad request.
    let reply = post(
        &state,
        &rita,
        Some(&"x".repeat(300)),
        "/api/transfers",
        &body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
}

#[tokio::test]
async fn copies_sent_at_once_record_one_entry() {
    let state = rita_with_100();
    let rita = bearer(&state, "rita");
    let before = journal_len(&state);
    let body = json!({"to": "sara", "amount": 5, "memo": "once"}).to_string();
    let copies: Vec<_> = (0..6)
        .map(|_| {
            let state = state.clone();
            let request = request(
                "POST",
                "/api/transfers",
                &[("authorization", &rita), ("idempotency-key", "burst")],
                &body,
            );
            tokio::spawn(async move { send(state, request).await })
        })
        .collect();
    let mut answers = Vec::new();
    for copy in copies {
        answers.push(copy.await.unwrap_or_else(|e| panic!("{e}")));
    }
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        assert_eq!(answer.json(), answers[0].json());
    }
    let replayed = answers
        .iter()
        .filter(|a| a.header("idempotent-replayed") == "true")
        .count();
    assert_eq!(replayed, answers.len() - 1);
    let transfers = kinds_since(&state, before)
        .into_iter()
        .filter(|k| *k == ledger::EntryKind::Transfer)
        .count();
    assert_eq!(transfers, 1);
}

#[tokio::test]
async fn contributions_and_plans_retried_with_their_key_are_recorded_once() {
    let (state, _tx) = with_residents();
    let rita = bearer(&state, "rita");
    let today = Utc::now().date_naive().to_string();
    let work = json!({"category": "repair", "hours": 2, "date": today,
                      "description": "Fixed the gate"});
    let first = post(&state, &rita, Some("gate"), "/api/contributions", &work).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let recorded = journal_len(&state);
    let again = post(&state, &rita, Some("gate"), "/api/contributions", &work).await;
    assert_eq!(
        (again.status, again.json(), again.header("location")),
        (first.status, first.json(), first.header("location"))
    );
    assert_eq!(journal_len(&state), recorded);

    let aline = bearer(&state, "aline");
    let adoption = json!({
        "plan": plan_json(&["laundry", "clinic-fridge"]),
        "decision": decision_json(14, 10)
    });
    let first = post(&state, &aline, Some("plan-march"), "/api/plans", &adoption).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let recorded = journal_len(&state);
    let again = post(&state, &aline, Some("plan-march"), "/api/plans", &adoption).await;
    assert_eq!((again.status, again.json()), (first.status, first.json()));
    assert_eq!(again.header("idempotent-replayed"), "true");
    assert_eq!(journal_len(&state), recorded);
    // Without a key, each request is its own.
    let once_more = post(&state, &aline, None, "/api/plans", &adoption).await;
    assert_eq!(once_more.status, StatusCode::CREATED);
    assert_eq!(journal_len(&state), recorded + 1);
}
