//! A decision is what the assembly decided (DESIGN.md §9): a plan or a change of
//! the ledger parameters is recorded only when its decision record shows the motion
//! carried under the assembly's own rule. One test per attack, through the API.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::{Reply, bearer, plan_json, request, send, with_members};

/// A decision record with these votes (for, against, abstaining), members present
/// and quorum, dated a few days ago.
fn decision(votes: (u32, u32, u32), present: u32, quorum_required: u32) -> Value {
    json!({
        "assembly_date": days_ago(3), "votes_for": votes.0, "votes_against": votes.1,
        "votes_abstain": votes.2, "quorum_required": quorum_required, "present": present,
        "minutes": "Vote à main levée."
    })
}

fn days_ago(days: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days))
        .date_naive()
        .format("%Y-%m-%d")
        .to_string()
}

async fn post(state: &web::AppState, auth: &str, uri: &str, body: &Value) -> Reply {
    send(
        state.clone(),
        request("POST", uri, &[("authorization", auth)], &body.to_string()),
    )
    .await
}

/// The plan the configuration of [`with_members`] holds, with the laundry first: a
/// change the assembly could make.
fn laundry_first() -> Value {
    plan_json(&["laundry", "clinic-fridge"])
}

/// A 422 with a problem containing `needle`, and nothing recorded since `head`.
fn refused(state: &web::AppState, reply: &Reply, head: i64, needle: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    let body = reply.json();
    let problems: Vec<&str> = body["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems in {body}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        problems.iter().any(|p| p.contains(needle)),
        "no problem says {needle:?}: {problems:?}"
    );
    assert_eq!(head_seq(state), head, "nothing is recorded");
}

fn head_seq(state: &web::AppState) -> i64 {
    state
        .journal
        .head()
        .unwrap_or_else(|e| panic!("{e}"))
        .map_or(0, |e| e.seq)
}

fn active_services(state: &web::AppState) -> Vec<String> {
    state
        .journal
        .active_plan()
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|a| a.plan.services.into_iter().map(|s| s.id).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_motion_voted_down_is_refused() {
    let (state, _tx) = with_members();
    let aline = bearer(&state, "aline");
    let head = head_seq(&state);
    let before = active_services(&state);
    // 3 for, 6 against, 1 abstaining; 10 present for a quorum of 8.
    let body = json!({"plan": laundry_first(), "decision": decision((3, 6, 1), 10, 8)});
    let reply = post(&state, &aline, "/api/plans", &body).await;
    refused(
        &state,
        &reply,
        head,
        "the motion did not carry: 3 for, 6 against",
    );
    assert_eq!(active_services(&state), before, "the plan in force stays");
    // The same assembly, had the vote gone the other way.
    let body = json!({"plan": laundry_first(), "decision": decision((6, 3, 1), 10, 8)});
    let reply = post(&state, &aline, "/api/plans", &body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(active_services(&state), ["laundry", "clinic-fridge"]);
}

#[tokio::test]
async fn a_motion_nobody_voted_for_is_refused() {
    let (state, _tx) = with_members();
    let aline = bearer(&state, "aline");
    let head = head_seq(&state);
    let body = json!({"plan": laundry_first(), "decision": decision((0, 9, 0), 9, 5)});
    let reply = post(&state, &aline, "/api/plans", &body).await;
    refused(
        &state,
        &reply,
        head,
        "the motion did not carry: 0 for, 9 against",
    );
    // Abstentions count for the quorum, not for the majority: 1 for, 0 against and
    // 8 abstaining carries.
    let body = json!({"plan": laundry_first(), "decision": decision((1, 0, 8), 9, 5)});
    let reply = post(&state, &aline, "/api/plans", &body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

#[tokio::test]
async fn a_decision_with_no_vote_and_no_quorum_is_refused() {
    let (state, _tx) = with_members();
    let aline = bearer(&state, "aline");
    let head = head_seq(&state);
    let body = json!({"plan": laundry_first(), "decision": decision((0, 0, 0), 0, 0)});
    let reply = post(&state, &aline, "/api/plans", &body).await;
    refused(&state, &reply, head, "quorum_required must be at least 1");
    refused(
        &state,
        &reply,
        head,
        "the motion did not carry: 0 for, 0 against",
    );
}

#[tokio::test]
async fn ledger_parameters_voted_down_are_refused() {
    let (state, _tx) = with_members();
    let aline = bearer(&state, "aline");
    let head = head_seq(&state);
    let parameters = json!({
        "attestations_needed": 1,
        "rates_per_hour": {"care": 10.0, "teaching": 10.0, "repair": 10.0, "gardening": 10.0,
                           "cooking": 10.0, "energy_sharing": 10.0, "other": 10.0},
        "demurrage_rate_ppm": 0, "demurrage_period_days": 30
    });
    let body = json!({"parameters": parameters, "decision": decision((0, 3, 0), 3, 3)});
    let reply = post(&state, &aline, "/api/ledger/parameters", &body).await;
    refused(
        &state,
        &reply,
        head,
        "the motion did not carry: 0 for, 3 against",
    );
    assert_eq!(
        state.journal.ledger_parameters().ok(),
        Some(ledger::LedgerParameters::default()),
        "the parameters in force stay"
    );
}

#[tokio::test]
async fn an_assembly_dated_in_the_future_is_refused() {
    let (state, _tx) = with_members();
    let aline = bearer(&state, "aline");
    let head = head_seq(&state);
    let mut future = decision((9, 2, 1), 12, 10);
    future["assembly_date"] = json!("2030-01-01");
    let body = json!({"plan": laundry_first(), "decision": future});
    let reply = post(&state, &aline, "/api/plans", &body).await;
    refused(
        &state,
        &reply,
        head,
        "the assembly date 2030-01-01 is in the future",
    );
}

#[tokio::test]
async fn an_assembly_dated_before_the_previous_adoption_is_refused() {
    let (state, _tx) = with_members();
    let aline = bearer(&state, "aline");
    let mut recent = decision((9, 2, 1), 12, 10);
    recent["assembly_date"] = json!(days_ago(2));
    let body = json!({"plan": laundry_first(), "decision": recent});
    let reply = post(&state, &aline, "/api/plans", &body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let head = head_seq(&state);
    // An older assembly's decision would replace a newer one's.
    let mut older = decision((9, 2, 1), 12, 10);
    older["assembly_date"] = json!(days_ago(20));
    let body = json!({"plan": plan_json(&["clinic-fridge", "laundry"]), "decision": older});
    let reply = post(&state, &aline, "/api/plans", &body).await;
    refused(
        &state,
        &reply,
        head,
        &format!(
            "the assembly date {} is before that of the previous adoption ({})",
            days_ago(20),
            days_ago(2)
        ),
    );
}

#[tokio::test]
async fn a_plan_naming_services_that_do_not_exist_is_refused() {
    let (state, _tx) = with_members();
    let aline = bearer(&state, "aline");
    let head = head_seq(&state);
    let body = json!({
        "plan": plan_json(&["clinic-fridge", "ghost-heater"]),
        "decision": decision((9, 2, 1), 12, 10)
    });
    let reply = post(&state, &aline, "/api/plans", &body).await;
    refused(
        &state,
        &reply,
        head,
        "service `ghost-heater` is not in the site configuration",
    );
}

/// The panel says it in the reader's language, keeps the draft, records nothing.
#[tokio::test]
async fn a_motion_voted_down_on_the_panel_is_refused_in_both_languages() {
    use crate::assembly::{form, post_form};
    use crate::support::login;
    let (state, _tx) = with_members();
    let aline = login(&state, "aline").await;
    let head = head_seq(&state);
    let down = [
        ("tier.laundry", "1"),
        ("present", "10"),
        ("quorum_required", "8"),
        ("votes_for", "3"),
        ("votes_against", "6"),
        ("votes_abstain", "1"),
        ("assembly_date", "2030-01-01"),
    ];
    for (lang, carried, future) in [
        (
            "fr",
            "La motion n&#39;est pas adoptée : 3 pour, 6 contre (majorité simple : plus de voix pour que contre).",
            "Date de l&#39;assemblée : le 1er janvier 2030 n&#39;est pas encore arrivé.",
        ),
        (
            "en",
            "The motion did not carry: 3 for, 6 against (simple majority: more votes for than against).",
            "Assembly date: 1 January 2030 has not come yet.",
        ),
    ] {
        let reply = post_form(&state, &aline, "/assembly/adopt", form(&aline, &down), lang).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{lang}");
        assert!(reply.body.contains(carried), "{lang}: {}", reply.body);
        assert!(reply.body.contains(future), "{lang}: {}", reply.body);
        assert!(reply.body.contains("name=\"votes_against\" value=\"6\""));
        assert_eq!(head_seq(&state), head, "nothing is recorded");
    }
    // The panel says which rule the record is judged by.
    let page = send(
        state.clone(),
        crate::support::get(
            "/assembly",
            &[("cookie", &aline.cookie), ("accept-language", "en")],
        ),
    )
    .await;
    assert!(
        page.body
            .contains("A motion of the assembly carries by simple majority"),
        "{}",
        page.body
    );
}

/// The rule is adopted from the ledger page like the other parameters, under the
/// rule in force; it then judges the panel's plans.
#[tokio::test]
async fn the_assembly_adopts_two_thirds_from_the_ledger_page_and_the_panel_applies_it() {
    use crate::assembly::{form, post_form};
    use crate::support::login;
    let (state, _tx) = with_members();
    let aline = login(&state, "aline").await;
    let page = send(
        state.clone(),
        crate::support::get(
            "/ledger",
            &[("cookie", &aline.cookie), ("accept-language", "fr")],
        ),
    )
    .await;
    assert!(
        page.body
            .contains("<option value=\"simple\" selected>Majorité simple</option>"),
        "{}",
        page.body
    );
    let mut fields = vec![
        ("csrf".to_string(), aline.csrf.clone()),
        ("attestations_needed".into(), "2".into()),
        ("demurrage_rate_pct".into(), "2".into()),
        ("demurrage_period_days".into(), "30".into()),
        ("decision_rule".into(), "two_thirds".into()),
        ("assembly_date".into(), days_ago(1)),
        ("present".into(), "12".into()),
        ("quorum_required".into(), "10".into()),
        ("votes_for".into(), "7".into()),
        ("votes_against".into(), "5".into()),
        ("votes_abstain".into(), "0".into()),
        ("minutes".into(), "Les deux tiers désormais.".into()),
    ];
    for c in ledger::Category::ALL {
        fields.push((format!("rate.{}", c.as_str()), "10".into()));
    }
    let body = |fields: &[(String, String)]| {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in fields {
            out.append_pair(k, v);
        }
        out.finish()
    };
    // 7 for, 5 against carries under the simple majority in force.
    let reply = post_form(&state, &aline, "/ledger/parameters", body(&fields), "fr").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(
        state
            .journal
            .ledger_parameters()
            .ok()
            .map(|p| p.decision_rule),
        Some(ledger::DecisionRule::TwoThirds)
    );
    // The same votes no longer carry a plan: 7 of 12 is short of two thirds.
    let head = head_seq(&state);
    let reply = post_form(
        &state,
        &aline,
        "/assembly/adopt",
        form(
            &aline,
            &[
                ("tier.laundry", "1"),
                ("present", "12"),
                ("votes_for", "7"),
                ("votes_against", "5"),
                ("votes_abstain", "0"),
                ("assembly_date", &days_ago(0)),
            ],
        ),
        "en",
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains(
            "The motion did not carry: 7 for, 5 against (two thirds: at least two thirds of \
             the votes for or against are for)."
        ),
        "{}",
        reply.body
    );
    assert_eq!(head_seq(&state), head);
    // An unknown rule on the form is named.
    fields[4].1 = "unanimity".into();
    let reply = post_form(&state, &aline, "/ledger/parameters", body(&fields), "en").await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply
            .body
            .contains("Decision rule: “unanimity” is not a known rule"),
        "{}",
        reply.body
    );
}

/// A service taken out of the site configuration is left out of the panel's draft:
/// the next plan, which may not name it, is adopted without it.
#[tokio::test]
async fn the_panel_drafts_without_a_service_the_configuration_dropped() {
    use crate::assembly::post_form;
    use crate::support::login;
    let (mut state, _tx) = with_members();
    let mut services = (*state.services).clone();
    services.remove("laundry");
    state.services = std::sync::Arc::new(services);
    let aline = login(&state, "aline").await;
    let page = send(
        state.clone(),
        crate::support::get("/assembly", &[("cookie", &aline.cookie)]),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("name=\"tier.clinic-fridge\""));
    assert!(
        !page.body.contains("name=\"tier.laundry\""),
        "{}",
        page.body
    );
    let fields = [
        ("csrf", aline.csrf.as_str()),
        ("tier.clinic-fridge", "1"),
        ("min_w.clinic-fridge", "100"),
        ("max_w.clinic-fridge", "3000"),
        ("split.1", "equal"),
        ("assembly_date", &days_ago(1)),
        ("present", "12"),
        ("quorum_required", "10"),
        ("votes_for", "9"),
        ("votes_against", "2"),
        ("votes_abstain", "1"),
        ("minutes", "La laverie a fermé."),
        ("confirm", "yes"),
    ];
    let mut body = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        body.append_pair(k, v);
    }
    let reply = post_form(&state, &aline, "/assembly/adopt", body.finish(), "fr").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(active_services(&state), ["clinic-fridge"]);
}
