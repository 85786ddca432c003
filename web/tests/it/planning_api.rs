//! The planning board's JSON API (DESIGN.md §11, §8 additions): a need posted, an
//! offer to meet it, both sides accepting, the contribution naming the commitment,
//! two attestations validating it, Communs minted and the intent closed; partial
//! fulfilment, release, expiry, refusals and roles.

use axum::http::StatusCode;
use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::support::{Reply, bearer, get, request, send, with_residents};

async fn post(state: &web::AppState, auth: &str, uri: &str, body: Value) -> Reply {
    send(
        state.clone(),
        request("POST", uri, &[("authorization", auth)], &body.to_string()),
    )
    .await
}

async fn read(state: &web::AppState, auth: &str, uri: &str) -> Value {
    let reply = send(state.clone(), get(uri, &[("authorization", auth)])).await;
    assert_eq!(reply.status, StatusCode::OK, "GET {uri}: {}", reply.body);
    reply.json()
}

fn id_of(reply: &Reply) -> i64 {
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.json()["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no id in {}", reply.body))
}

fn need(hours: f64) -> Value {
    json!({"direction": "need", "action": "work", "class": "bike-repair",
           "quantity": hours, "unit": "hours",
           "description": "Réparer les vélos de l'école"})
}

/// rita needs `hours`; remi offers `commit`, and rita accepts. (need, commitment).
async fn agreed(state: &web::AppState, hours: f64, commit: f64) -> (i64, i64) {
    let rita = bearer(state, "rita");
    let remi = bearer(state, "remi");
    let need = id_of(&post(state, &rita, "/api/intents", need(hours)).await);
    let c = id_of(
        &post(
            state,
            &remi,
            &format!("/api/intents/{need}/commitments"),
            json!({"quantity": commit, "note": "Samedi matin"}),
        )
        .await,
    );
    let accepted = post(
        state,
        &rita,
        &format!("/api/commitments/{c}/accept"),
        json!({}),
    )
    .await;
    assert_eq!(accepted.status, StatusCode::CREATED, "{}", accepted.body);
    (need, c)
}

/// remi records `hours` naming commitment `c`, aline and sara approve.
async fn fulfilled(state: &web::AppState, c: i64, hours: f64) -> Value {
    let remi = bearer(state, "remi");
    let contribution = id_of(
        &post(
            state,
            &remi,
            "/api/contributions",
            json!({"category": "repair", "hours": hours,
                   "date": Utc::now().date_naive().to_string(),
                   "description": "Réparé les vélos", "commitment": c}),
        )
        .await,
    );
    let mut last = Value::Null;
    for member in ["aline", "sara"] {
        let auth = bearer(state, member);
        let reply = post(
            state,
            &auth,
            &format!("/api/contributions/{contribution}/attestations"),
            json!({"verdict": "approve"}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        last = reply.json();
    }
    last
}

#[tokio::test]
async fn a_need_is_met_committed_fulfilled_and_closed_through_the_api() {
    let (state, _tx) = with_residents();
    let rita = bearer(&state, "rita");
    let (need, c) = agreed(&state, 2.0, 2.0).await;
    let open = read(&state, &rita, &format!("/api/intents/{need}")).await;
    assert_eq!(open["intent"]["state"], "open");
    assert_eq!(open["intent"]["remaining"], 0.0);
    assert_eq!(open["commitments"][0]["state"], "accepted");
    assert_eq!(open["commitments"][0]["provider"], "remi");

    let last = fulfilled(&state, c, 2.0).await;
    assert_eq!(last["state"], "validated", "{last}");
    assert_eq!(last["minted"], 20.0, "{last}");
    assert!(last["fulfilment_seq"].is_i64(), "{last}");

    let closed = read(&state, &rita, &format!("/api/intents/{need}")).await;
    assert_eq!(closed["intent"]["state"], "closed", "{closed}");
    assert_eq!(closed["intent"]["fulfilled"], 2.0);
    assert_eq!(closed["commitments"][0]["state"], "fulfilled");
    let balances = read(&state, &rita, "/api/ledger/balances").await;
    let remi = balances["balances"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["member"] == "remi"))
        .cloned()
        .unwrap_or_default();
    // Minted 20; demurrage since the validation may already have taken a
    // micro-Commun by the time balances are read.
    assert_eq!(balances["minted_total"], 20.0, "{balances}");
    let held = remi["communs"].as_f64().unwrap_or_default();
    assert!((19.99..=20.0).contains(&held), "{balances}");
    // Open intents no longer list it; `state=closed` does.
    let listed = read(&state, &rita, "/api/intents").await;
    assert!(listed.as_array().is_some_and(|a| a.is_empty()), "{listed}");
    let listed = read(&state, &rita, "/api/intents?state=closed&class=bike-repair").await;
    assert_eq!(listed[0]["id"], need);
    let verify = read(&state, &rita, "/api/ledger/verify").await;
    assert_eq!(verify["intact"], true, "{verify}");
}

#[tokio::test]
async fn partial_fulfilment_keeps_the_intent_open() {
    let (state, _tx) = with_residents();
    let rita = bearer(&state, "rita");
    let (need, c) = agreed(&state, 4.0, 3.0).await;
    fulfilled(&state, c, 1.0).await;
    let intent = read(&state, &rita, &format!("/api/intents/{need}")).await;
    assert_eq!(intent["intent"]["state"], "open");
    assert_eq!(intent["intent"]["fulfilled"], 1.0);
    assert_eq!(intent["intent"]["remaining"], 1.0);
    assert_eq!(intent["commitments"][0]["state"], "accepted");
    assert_eq!(intent["commitments"][0]["fulfilled"], 1.0);
    // More than remains is refused, naming what is left.
    let sara = bearer(&state, "sara");
    let over = post(
        &state,
        &sara,
        &format!("/api/intents/{need}/commitments"),
        json!({"quantity": 2.0}),
    )
    .await;
    assert_eq!(
        over.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        over.body
    );
    assert!(over.body.contains("has 1 left to commit"), "{}", over.body);
}

#[tokio::test]
async fn a_release_frees_the_quantity_and_only_the_sides_may_act() {
    let (state, _tx) = with_residents();
    let rita = bearer(&state, "rita");
    let sara = bearer(&state, "sara");
    let (need, c) = agreed(&state, 2.0, 2.0).await;
    let stranger = post(
        &state,
        &sara,
        &format!("/api/commitments/{c}/release"),
        json!({}),
    )
    .await;
    assert_eq!(stranger.status, StatusCode::FORBIDDEN, "{}", stranger.body);
    let released = post(
        &state,
        &rita,
        &format!("/api/commitments/{c}/release"),
        json!({"reason": "plus besoin"}),
    )
    .await;
    assert_eq!(released.status, StatusCode::CREATED, "{}", released.body);
    let intent = read(&state, &rita, &format!("/api/intents/{need}")).await;
    assert_eq!(intent["intent"]["remaining"], 2.0);
    assert_eq!(intent["commitments"][0]["state"], "released");
    // A contribution cannot name it any more.
    let remi = bearer(&state, "remi");
    let refused = post(
        &state,
        &remi,
        "/api/contributions",
        json!({"category": "repair", "hours": 1.0,
               "date": Utc::now().date_naive().to_string(),
               "description": "x", "commitment": c}),
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert!(refused.body.contains("was released"), "{}", refused.body);
    let missing = post(&state, &rita, "/api/commitments/9999/accept", json!({})).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
}

#[tokio::test]
async fn an_expired_intent_takes_no_commitment() {
    let (state, _tx) = with_residents();
    let rita = bearer(&state, "rita");
    let remi = bearer(&state, "remi");
    let mut body = need(1.0);
    body["expires_at"] = json!((Utc::now() + Duration::milliseconds(300)).to_rfc3339());
    let reply = post(&state, &rita, "/api/intents", body).await;
    let id = id_of(&reply);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let late = post(
        &state,
        &remi,
        &format!("/api/intents/{id}/commitments"),
        json!({"quantity": 1.0}),
    )
    .await;
    assert_eq!(
        late.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        late.body
    );
    assert!(late.body.contains("is expired"), "{}", late.body);
    let expired = read(&state, &rita, "/api/intents?state=expired").await;
    assert_eq!(expired[0]["id"], id);
    // Without an expiry, 30 days.
    let reply = post(&state, &rita, "/api/intents", need(1.0)).await;
    let expires = reply.json()["expires_at"].as_str().map(str::to_string);
    let expires = expires
        .and_then(|e| chrono::DateTime::parse_from_rfc3339(&e).ok())
        .unwrap_or_else(|| panic!("no expiry in {}", reply.body));
    let days = (expires.with_timezone(&Utc) - Utc::now()).num_hours();
    assert!((29 * 24..=30 * 24).contains(&days), "{days} hours");
}

#[tokio::test]
async fn bad_intents_are_named_and_roles_apply() {
    let (state, _tx) = with_residents();
    let rita = bearer(&state, "rita");
    let mut bad = need(0.0);
    bad["class"] = json!("Bike Repair");
    let reply = post(&state, &rita, "/api/intents", bad).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    let problems = reply.json()["problems"].clone();
    assert_eq!(problems.as_array().map(Vec::len), Some(2), "{problems}");
    // Collective needs are the assembly's.
    let mut collective = need(3.0);
    collective["collective"] = json!(true);
    let reply = post(&state, &rita, "/api/intents", collective.clone()).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    let aline = bearer(&state, "aline");
    id_of(&post(&state, &aline, "/api/intents", collective).await);
    // An installer without the resident role posts nothing.
    let ivo = bearer(&state, "ivo");
    let reply = post(&state, &ivo, "/api/intents", need(1.0)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    // No credentials: 401.
    let reply = send(
        state.clone(),
        request("POST", "/api/intents", &[], &need(1.0).to_string()),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_idempotency_key_posts_an_intent_once() {
    let (state, _tx) = with_residents();
    let rita = bearer(&state, "rita");
    let send_once = || {
        send(
            state.clone(),
            request(
                "POST",
                "/api/intents",
                &[("authorization", &rita), ("idempotency-key", "need-1")],
                &need(2.0).to_string(),
            ),
        )
    };
    let first = send_once().await;
    let again = send_once().await;
    assert_eq!(id_of(&first), id_of(&again));
    assert_eq!(again.header("idempotent-replayed"), "true");
    let all = read(&state, &rita, "/api/intents").await;
    assert_eq!(all.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn matches_show_offers_for_your_needs() {
    let (state, _tx) = with_residents();
    let rita = bearer(&state, "rita");
    let remi = bearer(&state, "remi");
    let need = id_of(&post(&state, &rita, "/api/intents", need(2.0)).await);
    let mut offer = need_body_as_offer();
    let offer_id = id_of(&post(&state, &remi, "/api/intents", offer.take()).await);
    let mine = read(&state, &rita, "/api/intents/matches").await;
    assert_eq!(mine["offers_for_your_needs"][0]["yours"]["id"], need);
    assert_eq!(mine["offers_for_your_needs"][0]["theirs"]["id"], offer_id);
    let theirs = read(&state, &remi, "/api/intents/matches").await;
    assert_eq!(theirs["needs_you_could_meet"][0]["theirs"]["id"], need);
}

fn need_body_as_offer() -> Value {
    let mut offer = need(3.0);
    offer["direction"] = json!("offer");
    offer
}
