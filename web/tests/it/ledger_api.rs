//! The contribution ledger's JSON API against DESIGN.md §8: contributions and
//! their attestations, transfers, balances (demurrage projected), the parameters
//! the assembly adopts, and the journal's verification.

use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use crate::support::{Reply, bearer, decision_json, get, request, send, validated, with_residents};

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

fn today() -> String {
    Utc::now().date_naive().format("%Y-%m-%d").to_string()
}

/// A 422 whose `problems` has an item containing `needle`.
fn refused_saying(reply: &Reply, status: StatusCode, needle: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    let body = reply.json();
    assert!(body["error"].is_string(), "{body}");
    let problems = body["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems in {body}"));
    assert!(
        problems
            .iter()
            .any(|p| p.as_str().is_some_and(|p| p.contains(needle))),
        "no problem says {needle:?}: {body}"
    );
}

fn ts(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not an instant: {value}"))
}

fn communs_of(balances: &Value, member: &str) -> f64 {
    balances["balances"]
        .as_array()
        .and_then(|all| all.iter().find(|b| b["member"] == member))
        .and_then(|b| b["communs"].as_f64())
        .unwrap_or_else(|| panic!("no balance for {member} in {balances}"))
}

async fn record(state: &web::AppState, auth: &str, hours: f64) -> i64 {
    let reply = post(
        state,
        auth,
        "/api/contributions",
        json!({"category": "repair", "hours": hours, "date": today(),
               "description": "Mended the bicycles of the school"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert!(reply.header("location").starts_with("/api/contributions/"));
    let body = reply.json();
    assert_eq!(body["hash"].as_str().map(str::len), Some(64), "{body}");
    body["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no id in {body}"))
}

/// rita records 10 hours; aline's approval leaves it pending (one of two), remi's
/// validates it and mints 10 x 10 = 100 Communs; `GET` shows each step.
#[tokio::test]
async fn a_contribution_is_validated_at_the_kth_approval() {
    let (state, _tx) = with_residents();
    let rita = bearer(&state, "rita");
    let aline = bearer(&state, "aline");
    let remi = bearer(&state, "remi");
    let id = record(&state, &rita, 10.0).await;

    let listed = read(&state, &aline, "/api/contributions").await;
    let all = listed.as_array().unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(all.len(), 1);
    let c = &all[0];
    for field in ["id", "member", "category", "hours", "state", "attestations"] {
        assert!(c.get(field).is_some(), "contribution lacks {field}: {c}");
    }
    assert_eq!(c["id"], id);
    assert_eq!(c["member"], "rita");
    assert_eq!(c["category"], "repair");
    assert_eq!(c["hours"], 10.0);
    assert_eq!(c["date"], today());
    assert_eq!(c["state"], "pending");
    assert_eq!(c["attestations"], json!([]));
    assert_eq!(c["minted"], Value::Null);

    let uri = format!("/api/contributions/{id}/attestations");
    let first = post(
        &state,
        &aline,
        &uri,
        json!({"verdict": "approve", "comment": "Seen it"}),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.json()["state"], "pending");
    let one = read(&state, &rita, &format!("/api/contributions/{id}")).await;
    assert_eq!(one["state"], "pending");
    assert_eq!(one["attestations"][0]["member"], "aline");
    assert_eq!(one["attestations"][0]["verdict"], "approve");
    assert_eq!(one["attestations"][0]["comment"], "Seen it");

    let second = post(&state, &remi, &uri, json!({"verdict": "approve"})).await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);
    let second = second.json();
    assert_eq!(second["state"], "validated");
    assert_eq!(second["minted"], 100.0);
    assert!(second["validation_seq"].is_i64(), "{second}");

    let one = read(&state, &rita, &format!("/api/contributions/{id}")).await;
    assert_eq!(one["state"], "validated");
    assert_eq!(one["minted"], 100.0);
    assert_eq!(one["attestations"].as_array().map(Vec::len), Some(2));
    assert!(one["decided_at"].is_string(), "{one}");
    let balances = read(&state, &rita, "/api/ledger/balances").await;
    assert!(
        (communs_of(&balances, "rita") - 100.0).abs() < 0.001,
        "{balances}"
    );
    assert_eq!(balances["minted_total"], 100.0);

    // The wall's figure counts it, in /api/live too.
    let live = send(state.clone(), get("/api/live", &[])).await.json();
    assert_eq!(
        live["contributions"]["hours_validated_this_week"], 10.0,
        "{live}"
    );
    assert!(live["contributions"]["week_start"].is_string());
}

#[tokio::test]
async fn attestations_that_break_the_rules_are_refused_and_say_why() {
    let (state, _tx) = with_residents();
    let rita = bearer(&state, "rita");
    let aline = bearer(&state, "aline");
    let remi = bearer(&state, "remi");
    let sara = bearer(&state, "sara");
    let id = record(&state, &rita, 2.0).await;
    let uri = format!("/api/contributions/{id}/attestations");

    let own = post(&state, &rita, &uri, json!({"verdict": "approve"})).await;
    refused_saying(&own, StatusCode::UNPROCESSABLE_ENTITY, "it is their own");

    let ok = post(&state, &aline, &uri, json!({"verdict": "approve"})).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    let twice = post(
        &state,
        &aline,
        &uri,
        json!({"verdict": "reject", "comment": "Changed my mind"}),
    )
    .await;
    refused_saying(
        &twice,
        StatusCode::UNPROCESSABLE_ENTITY,
        "has already attested",
    );

    let blank = post(
        &state,
        &remi,
        &uri,
        json!({"verdict": "reject", "comment": "  "}),
    )
    .await;
    refused_saying(
        &blank,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a rejection needs a comment",
    );
    let maybe = post(&state, &remi, &uri, json!({"verdict": "maybe"})).await;
    refused_saying(
        &maybe,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown variant `maybe`",
    );

    let unknown = post(
        &state,
        &remi,
        "/api/contributions/999/attestations",
        json!({"verdict": "approve"}),
    )
    .await;
    refused_saying(
        &unknown,
        StatusCode::NOT_FOUND,
        "there is no contribution 999",
    );
    let not_an_id = post(
        &state,
        &remi,
        "/api/contributions/abc/attestations",
        json!({"verdict": "approve"}),
    )
    .await;
    assert_eq!(
        not_an_id.status,
        StatusCode::NOT_FOUND,
        "{}",
        not_an_id.body
    );
    let missing = send(
        state.clone(),
        get("/api/contributions/999", &[("authorization", &rita)]),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // The second approval validates; nothing is taken after that.
    let ok = post(&state, &remi, &uri, json!({"verdict": "approve"})).await;
    assert_eq!(ok.json()["state"], "validated");
    let late = post(&state, &sara, &uri, json!({"verdict": "approve"})).await;
    refused_saying(&late, StatusCode::UNPROCESSABLE_ENTITY, "already validated");

    // Two rejections (k = 2) reject another one, which then mints nothing.
    let other = record(&state, &rita, 3.0).await;
    let uri = format!("/api/contributions/{other}/attestations");
    for who in [&aline, &remi] {
        let reply = post(
            &state,
            who,
            &uri,
            json!({"verdict": "reject", "comment": "Not that long"}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
    let c = read(&state, &rita, &format!("/api/contributions/{other}")).await;
    assert_eq!(
        (c["state"].as_str(), &c["minted"]),
        (Some("rejected"), &Value::Null)
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
async fn contributions_that_do_not_hold_are_refused_naming_each_problem() {
    let (state, _tx) = with_residents();
    let rita = bearer(&state, "rita");
    let tomorrow_but_one = (Utc::now() + Duration::days(2)).date_naive().to_string();
    let reply = post(
        &state,
        &rita,
        "/api/contributions",
        json!({"category": "care", "hours": 0, "date": tomorrow_but_one, "description": " "}),
    )
    .await;
    refused_saying(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "hours must be more than 0",
    );
    let problems = reply.json()["problems"].as_array().map(Vec::len);
    assert_eq!(problems, Some(3), "{}", reply.body);
    refused_saying(&reply, StatusCode::UNPROCESSABLE_ENTITY, "is in the future");
    refused_saying(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the description is empty",
    );

    let reply = post(
        &state,
        &rita,
        "/api/contributions",
        json!({"category": "plumbing", "hours": 1, "date": today(), "description": "x"}),
    )
    .await;
    refused_saying(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown variant `plumbing`",
    );
    let reply = post(
        &state,
        &rita,
        "/api/contributions",
        json!({"category": "care"}),
    )
    .await;
    refused_saying(&reply, StatusCode::UNPROCESSABLE_ENTITY, "missing field");
    let reply = post(
        &state,
        &rita,
        "/api/contributions",
        json!({"category": "care", "hours": 1.255, "date": today(), "description": "x"}),
    )
    .await;
    refused_saying(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "at most two decimals",
    );
    assert_eq!(
        state
            .journal
            .contributions()
            .unwrap_or_else(|e| panic!("{e}"))
            .len(),
        0
    );
}

#[tokio::test]
async fn transfers_move_communs_and_never_overdraw() {
    let (state, _tx) = with_residents();
    let rita = bearer(&state, "rita");
    let aline = bearer(&state, "aline");
    validated(&state, "rita", 10.0, Utc::now());

    let sent = post(
        &state,
        &rita,
        "/api/transfers",
        json!({"to": "aline", "amount": 30, "memo": "Bread"}),
    )
    .await;
    assert_eq!(sent.status, StatusCode::CREATED, "{}", sent.body);
    let sent = sent.json();
    assert!(sent["seq"].is_i64() && sent["hash"].is_string(), "{sent}");

    let too_much = post(
        &state,
        &rita,
        "/api/transfers",
        json!({"to": "aline", "amount": 100, "memo": ""}),
    )
    .await;
    refused_saying(
        &too_much,
        StatusCode::UNPROCESSABLE_ENTITY,
        "less than the 100 asked",
    );
    let stranger = post(
        &state,
        &rita,
        "/api/transfers",
        json!({"to": "zoe", "amount": 1}),
    )
    .await;
    refused_saying(
        &stranger,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no member named `zoe`",
    );
    let to_self = post(
        &state,
        &rita,
        "/api/transfers",
        json!({"to": "rita", "amount": 1}),
    )
    .await;
    refused_saying(&to_self, StatusCode::UNPROCESSABLE_ENTITY, "to themselves");
    let nothing = post(
        &state,
        &rita,
        "/api/transfers",
        json!({"to": "aline", "amount": 0}),
    )
    .await;
    refused_saying(
        &nothing,
        StatusCode::UNPROCESSABLE_ENTITY,
        "more than 0 Communs",
    );
    let precise = post(
        &state,
        &rita,
        "/api/transfers",
        json!({"to": "aline", "amount": 0.0000001}),
    )
    .await;
    refused_saying(
        &precise,
        StatusCode::UNPROCESSABLE_ENTITY,
        "more than six decimals",
    );
    // aline holds only what she was given.
    let back = post(
        &state,
        &aline,
        "/api/transfers",
        json!({"to": "rita", "amount": 30.5}),
    )
    .await;
    refused_saying(
        &back,
        StatusCode::UNPROCESSABLE_ENTITY,
        "less than the 30.5 asked",
    );

    let mine = read(&state, &rita, "/api/transfers").await;
    let mine = mine.as_array().unwrap_or_else(|| panic!("{mine}"));
    assert_eq!(mine.len(), 1);
    assert_eq!(
        (mine[0]["from"].as_str(), mine[0]["to"].as_str()),
        (Some("rita"), Some("aline"))
    );
    assert_eq!(
        (mine[0]["amount"].as_f64(), mine[0]["memo"].as_str()),
        (Some(30.0), Some("Bread"))
    );
    // Someone else's transfers are not listed to a third member.
    let remi = bearer(&state, "remi");
    assert_eq!(read(&state, &remi, "/api/transfers").await, json!([]));

    let balances = read(&state, &rita, "/api/ledger/balances").await;
    assert!(
        (communs_of(&balances, "rita") - 70.0).abs() < 0.001,
        "{balances}"
    );
    assert!(
        (communs_of(&balances, "aline") - 30.0).abs() < 0.001,
        "{balances}"
    );
    // Everything minted is somewhere: balances plus the commons.
    let held: f64 = balances["balances"]
        .as_array()
        .map(|all| all.iter().filter_map(|b| b["communs"].as_f64()).sum())
        .unwrap_or_default();
    let commons = balances["commons"].as_f64().unwrap_or(f64::NAN);
    assert!((held + commons - 100.0).abs() < 1e-6, "{balances}");
    assert!(
        state
            .journal
            .verify()
            .unwrap_or_else(|e| panic!("{e}"))
            .is_intact()
    );
}

/// 100 Communs validated at t0: 30 days later, at 2 % per 30 days, 100 x 0.98 = 98
/// remain and 2 went to the commons; 60 days later 100 x 0.98 x 0.98 = 96.04.
#[tokio::test]
async fn balances_in_the_future_show_the_demurrage() {
    let (state, _tx) = with_residents();
    let rita = bearer(&state, "rita");
    let id = validated(&state, "rita", 10.0, Utc::now());
    let c = read(&state, &rita, &format!("/api/contributions/{id}")).await;
    let t0 = ts(&c["decided_at"]);

    let at = |days: i64| ledger::format_ts(t0 + Duration::days(days));
    let in_30 = read(
        &state,
        &rita,
        &format!("/api/ledger/balances?at={}", at(30)),
    )
    .await;
    assert_eq!(in_30["at"], at(30));
    assert_eq!(communs_of(&in_30, "rita"), 98.0, "{in_30}");
    assert_eq!(communs_of(&in_30, "aline"), 0.0);
    assert_eq!(in_30["commons"], 2.0);
    assert_eq!(in_30["minted_total"], 100.0);
    let in_60 = read(
        &state,
        &rita,
        &format!("/api/ledger/balances?at={}", at(60)),
    )
    .await;
    assert_eq!(communs_of(&in_60, "rita"), 96.04, "{in_60}");
    assert_eq!(in_60["commons"], 3.96);
    // At the validation itself nothing has melted yet.
    let at_t0 = read(&state, &rita, &format!("/api/ledger/balances?at={}", at(0))).await;
    assert_eq!(communs_of(&at_t0, "rita"), 100.0, "{at_t0}");

    let bad = send(
        state.clone(),
        get(
            "/api/ledger/balances?at=next-week",
            &[("authorization", &rita)],
        ),
    )
    .await;
    refused_saying(&bad, StatusCode::UNPROCESSABLE_ENTITY, "RFC 3339");
}

#[tokio::test]
async fn the_assembly_adopts_ledger_parameters_under_its_quorum() {
    let (state, _tx) = with_residents();
    let aline = bearer(&state, "aline");
    let rita = bearer(&state, "rita");
    let before = read(&state, &rita, "/api/ledger/parameters").await;
    assert_eq!(before["active"]["attestations_needed"], 2);
    assert_eq!(before["active"]["rates_per_hour"]["energy_sharing"], 10.0);
    assert_eq!(before["active"]["demurrage_rate_ppm"], 20_000);
    assert_eq!(before["active"]["demurrage_period_days"], 30);
    assert_eq!(before["history"], json!([]));

    let mut parameters = before["active"].clone();
    parameters["attestations_needed"] = json!(1);
    parameters["rates_per_hour"]["care"] = json!(12.5);

    let short = post(
        &state,
        &aline,
        "/api/ledger/parameters",
        json!({"parameters": parameters, "decision": decision_json(8, 10)}),
    )
    .await;
    refused_saying(
        &short,
        StatusCode::UNPROCESSABLE_ENTITY,
        "quorum not reached",
    );

    let mut wrong = parameters.clone();
    wrong["attestations_needed"] = json!(0);
    wrong["demurrage_period_days"] = json!(0);
    let reply = post(
        &state,
        &aline,
        "/api/ledger/parameters",
        json!({"parameters": wrong, "decision": decision_json(8, 10)}),
    )
    .await;
    refused_saying(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "attestations_needed must be between 1",
    );
    refused_saying(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "demurrage_period_days",
    );
    // And the record's own two: too few present, more votes than present.
    assert_eq!(
        reply.json()["problems"].as_array().map(Vec::len),
        Some(4),
        "{}",
        reply.body
    );

    let adopted = post(
        &state,
        &aline,
        "/api/ledger/parameters",
        json!({"parameters": parameters, "decision": decision_json(14, 10)}),
    )
    .await;
    assert_eq!(adopted.status, StatusCode::CREATED, "{}", adopted.body);
    let seq = adopted.json()["seq"]
        .as_i64()
        .unwrap_or_else(|| panic!("{}", adopted.body));

    let after = read(&state, &rita, "/api/ledger/parameters").await;
    assert_eq!(after["active"]["attestations_needed"], 1);
    assert_eq!(after["active"]["rates_per_hour"]["care"], 12.5);
    assert_eq!(after["active_seq"], seq);
    assert_eq!(after["history"][0]["decision"]["entered_by"], "aline");
    assert_eq!(after["history"][0]["decision"]["present"], 14);

    // One approval now validates, at the new rate for care: 2 x 12.5.
    let reply = post(
        &state,
        &rita,
        "/api/contributions",
        json!({"category": "care", "hours": 2, "date": today(), "description": "Sat with Mrs Duval"}),
    )
    .await;
    let id = reply.json()["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{}", reply.body));
    let remi = bearer(&state, "remi");
    let reply = post(
        &state,
        &remi,
        &format!("/api/contributions/{id}/attestations"),
        json!({"verdict": "approve"}),
    )
    .await;
    assert_eq!(reply.json()["state"], "validated", "{}", reply.body);
    assert_eq!(reply.json()["minted"], 25.0);
}

#[tokio::test]
async fn verify_reports_the_chain_and_the_replayed_balances() {
    let (state, _tx) = with_residents();
    let rita = bearer(&state, "rita");
    validated(&state, "rita", 1.5, Utc::now());
    let report = read(&state, &rita, "/api/ledger/verify").await;
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(report["chain_intact"], true);
    assert_eq!(report["first_bad"], Value::Null);
    let head = state
        .journal
        .head()
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("empty journal"));
    assert_eq!(report["head_hash"], head.hash);
    assert_eq!(report["entries"], head.seq);
}

/// Each state-changing ledger route is in the table with the role it needs, so
/// that the access tests (`access.rs`) check it.
#[test]
fn the_ledger_routes_are_declared_with_their_roles() {
    use ledger::Role;
    use web::Access;
    let routes = web::routes();
    for (method, path, access) in [
        ("GET", "/api/contributions", Access::AnyMember),
        ("POST", "/api/contributions", Access::Role(Role::Resident)),
        ("GET", "/api/contributions/{id}", Access::AnyMember),
        (
            "POST",
            "/api/contributions/{id}/attestations",
            Access::Role(Role::Resident),
        ),
        ("GET", "/api/transfers", Access::AnyMember),
        ("POST", "/api/transfers", Access::Role(Role::Resident)),
        ("GET", "/api/ledger/balances", Access::AnyMember),
        ("GET", "/api/ledger/parameters", Access::AnyMember),
        (
            "POST",
            "/api/ledger/parameters",
            Access::Role(Role::Assembly),
        ),
        ("GET", "/api/ledger/verify", Access::AnyMember),
        ("GET", "/ledger", Access::AnyMember),
        (
            "POST",
            "/ledger/contributions",
            Access::Role(Role::Resident),
        ),
        (
            "POST",
            "/ledger/contributions/{id}/attestations",
            Access::Role(Role::Resident),
        ),
        ("POST", "/ledger/transfers", Access::Role(Role::Resident)),
        ("POST", "/ledger/parameters", Access::Role(Role::Assembly)),
    ] {
        let spec = routes
            .iter()
            .find(|r| r.method.as_str() == method && r.path == path)
            .unwrap_or_else(|| panic!("{method} {path} is not in the table"));
        assert_eq!(spec.access, access, "{method} {path}");
    }
}
