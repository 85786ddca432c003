//! `GET /api/plans` and `POST /api/plans` against the §8 contract.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::{decision_json, get, login, plan_json, request, send, with_members};

fn as_plan(value: &Value) -> ledger::Plan {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("not a PLAN ({e}): {value}"))
}

async fn token(state: &web::AppState, member: &str) -> String {
    let token = state
        .journal
        .create_token(member, "test", None, chrono::Utc::now())
        .unwrap_or_else(|e| panic!("{e}"));
    format!("Bearer {token}")
}

#[tokio::test]
async fn an_assembly_member_adopts_a_plan_and_it_becomes_active() {
    let (state, _tx) = with_members();
    let auth = token(&state, "aline").await;
    let before = send(
        state.clone(),
        get("/api/plans", &[("authorization", &auth)]),
    )
    .await;
    assert_eq!(before.status, StatusCode::OK);
    let before = before.json();
    assert_eq!(before["history"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        as_plan(&before["active"]),
        as_plan(&plan_json(&["clinic-fridge", "laundry"]))
    );

    let replanned = state.replan.clone();
    let woken = tokio::spawn(async move { replanned.notified().await });
    tokio::task::yield_now().await;

    let new_plan = plan_json(&["laundry", "clinic-fridge", "ev-charger"]);
    let body = json!({"plan": new_plan, "decision": decision_json(14, 10)}).to_string();
    let reply = send(
        state.clone(),
        request("POST", "/api/plans", &[("authorization", &auth)], &body),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let created = reply.json();
    let seq = created["seq"]
        .as_i64()
        .unwrap_or_else(|| panic!("{created}"));
    assert_eq!(created["hash"].as_str().map(str::len), Some(64));
    tokio::time::timeout(std::time::Duration::from_secs(5), woken)
        .await
        .unwrap_or_else(|_| panic!("the live evaluation was not woken"))
        .unwrap_or_else(|e| panic!("{e}"));

    let after = send(
        state.clone(),
        get("/api/plans", &[("authorization", &auth)]),
    )
    .await
    .json();
    assert_eq!(as_plan(&after["active"]), as_plan(&new_plan));
    let history = after["history"]
        .as_array()
        .unwrap_or_else(|| panic!("{after}"));
    assert_eq!(history.len(), 2);
    let latest = &history[0];
    for field in ["seq", "adopted_at", "decision", "plan"] {
        assert!(
            latest.get(field).is_some(),
            "history item lacks {field}: {latest}"
        );
    }
    assert_eq!(latest["seq"], seq);
    assert_eq!(as_plan(&latest["plan"]), as_plan(&new_plan));
    assert_eq!(latest["decision"]["present"], 14);
    assert_eq!(latest["decision"]["assembly_date"], "2026-03-12");
    assert_eq!(latest["decision"]["entered_by"], "aline");
    assert!(
        chrono::DateTime::parse_from_rfc3339(latest["adopted_at"].as_str().unwrap_or("")).is_ok()
    );
    assert_eq!(history[1]["decision"]["from_configuration"], true);
    // What changed: the laundry and the fridge swapped tiers, the charger joined.
    assert_eq!(
        latest["changes"],
        json!([
            {"change": "tier_moved", "id": "laundry", "from": 2, "to": 1},
            {"change": "tier_moved", "id": "clinic-fridge", "from": 1, "to": 2},
            {"change": "service_added", "id": "ev-charger", "tier": 2,
             "min_w": 100.0, "max_w": 3000.0},
        ]),
        "{latest}"
    );
    assert_eq!(
        history[1]["changes"],
        Value::Null,
        "the first plan replaced none"
    );
    assert!(
        state
            .journal
            .verify()
            .unwrap_or_else(|e| panic!("{e}"))
            .is_intact()
    );
}

#[tokio::test]
async fn a_session_adopts_with_its_csrf_token() {
    let (state, _tx) = with_members();
    let browser = login(&state, "aline").await;
    let body =
        json!({"plan": plan_json(&["laundry"]), "decision": decision_json(14, 10)}).to_string();
    let headers = [
        ("cookie", browser.cookie.as_str()),
        ("x-csrf-token", browser.csrf.as_str()),
    ];
    let reply = send(
        state.clone(),
        request("POST", "/api/plans", &headers, &body),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reply = send(state, request("POST", "/api/plans", &headers[..1], &body)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(
        reply.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("CSRF"))
    );
}

#[tokio::test]
async fn quorum_not_reached_and_other_problems_are_422_naming_each() {
    let (state, _tx) = with_members();
    let auth = token(&state, "aline").await;
    // 12 votes cast by 9 present, quorum 10; a service twice; a cap below its minimum.
    let mut plan = plan_json(&["a", "a"]);
    plan["services"][1]["max_w"] = json!(50.0);
    let body = json!({"plan": plan, "decision": decision_json(9, 10)}).to_string();
    let reply = send(
        state.clone(),
        request("POST", "/api/plans", &[("authorization", &auth)], &body),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    let refusal = reply.json();
    let problems: Vec<&str> = refusal["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("{refusal}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let has = |text: &str| problems.iter().any(|p| p.contains(text));
    assert!(
        has("quorum not reached: 9 members present, 10 required"),
        "{problems:?}"
    );
    assert!(has("12 votes cast"), "{problems:?}");
    assert!(has("service `a` is listed twice"), "{problems:?}");
    assert!(has("max_w (50) is below min_w (100)"), "{problems:?}");
    assert!(
        refusal["error"]
            .as_str()
            .is_some_and(|e| e.contains("quorum not reached"))
    );

    // A malformed body says which field.
    let body = json!({"plan": plan_json(&["a"]), "decision": {"present": 3}}).to_string();
    let reply = send(
        state.clone(),
        request("POST", "/api/plans", &[("authorization", &auth)], &body),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("decision")),
        "{}",
        reply.body
    );

    // Nothing was adopted.
    assert_eq!(
        state.journal.plan_history().map(|h| h.len()).unwrap_or(0),
        1
    );
}

#[tokio::test]
async fn adoption_needs_a_member_of_the_assembly() {
    let (state, _tx) = with_members();
    let body = json!({"plan": plan_json(&["a"]), "decision": decision_json(10, 10)}).to_string();
    let reply = send(state.clone(), request("POST", "/api/plans", &[], &body)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(
        reply.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("sign in"))
    );
    for member in ["rita", "ivo", "ada"] {
        let auth = token(&state, member).await;
        let reply = send(
            state.clone(),
            request("POST", "/api/plans", &[("authorization", &auth)], &body),
        )
        .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{member}");
        assert!(
            reply.json()["error"]
                .as_str()
                .is_some_and(|e| e.contains("assembly")),
            "{}",
            reply.body
        );
    }
    // Reading the plans needs a member, any member.
    assert_eq!(
        send(state.clone(), get("/api/plans", &[])).await.status,
        StatusCode::UNAUTHORIZED
    );
    let auth = token(&state, "rita").await;
    assert_eq!(
        send(state, get("/api/plans", &[("authorization", &auth)]))
            .await
            .status,
        StatusCode::OK
    );
}
