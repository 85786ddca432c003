//! Panels drawn by lot over HTTP: the public draw page (no sign-in to watch, no die
//! without the role), and the API refusing a decision a panel takes outside its
//! mandate while taking one within it.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use chrono::Utc;
use ledger::{DrawSpec, Mandate, MandateScope, Quota};

use crate::support::{bearer, get, plan_json, request, send, with_members};

/// Everyone of [`with_members`] opted in; a panel of 3 with the mandate `scope`,
/// announced and drawn. Its id.
fn drawn_panel(state: &web::AppState, scope: MandateScope) -> i64 {
    let journal = &state.journal;
    let now = Utc::now();
    journal
        .set_sortition_keys(&["street".into()], "aline", now)
        .unwrap_or_else(|e| panic!("{e}"));
    for (member, street) in [
        ("rita", "Tilleuls"),
        ("aline", "Tilleuls"),
        ("ivo", "Gare"),
        ("ada", "Gare"),
    ] {
        let attributes: BTreeMap<String, String> =
            [("street".to_string(), street.to_string())].into();
        journal
            .opt_in_sortition(member, true, &attributes, now)
            .unwrap_or_else(|e| panic!("{member}: {e}"));
    }
    let spec = DrawSpec {
        size: 3,
        strata_key: Some("street".into()),
        quotas: [(
            "Gare".to_string(),
            Quota {
                min: 1,
                max: Some(2),
            },
        )]
        .into(),
        mandate: Mandate {
            scope,
            title: "Énergie de l'hiver".into(),
            term_end: (now + chrono::Duration::days(60)).date_naive(),
        },
        draw_at: now,
    };
    let id = journal
        .announce_sortition(&spec, "aline", now)
        .unwrap_or_else(|e| panic!("{e}"))
        .seq;
    journal
        .draw_sortition(id, &[5, 3], &["Témoin".into()], "aline", now)
        .unwrap_or_else(|e| panic!("{e}"));
    id
}

#[tokio::test]
async fn anyone_watches_the_draw_page_but_only_the_assembly_enters_the_die() {
    let (state, _tx) = with_members();
    let journal = &state.journal;
    let now = Utc::now();
    for member in ["rita", "aline", "ivo"] {
        journal
            .opt_in_sortition(member, true, &BTreeMap::new(), now)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let spec = DrawSpec {
        size: 2,
        strata_key: None,
        quotas: BTreeMap::new(),
        mandate: Mandate {
            scope: MandateScope::EnergyPriorities,
            title: "Winter energy priorities".into(),
            term_end: (now + chrono::Duration::days(30)).date_naive(),
        },
        draw_at: now,
    };
    let id = journal
        .announce_sortition(&spec, "aline", now)
        .unwrap_or_else(|e| panic!("{e}"))
        .seq;
    let page = send(state.clone(), get(&format!("/sortition/{id}?lang=en"), &[])).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Winter energy priorities"));
    assert!(
        page.body.contains("data-figure=\"pool\">3<"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Waiting for the die."));
    assert!(
        !page.body.contains("name=\"rolls\""),
        "no die without the role"
    );
    let fr = send(state.clone(), get(&format!("/sortition/{id}?lang=fr"), &[])).await;
    assert!(fr.body.contains("En attente du dé."), "{}", fr.body);
    // A resident cannot make the draw.
    let rita = bearer(&state, "rita");
    let refused = send(
        state.clone(),
        request(
            "POST",
            &format!("/sortition/{id}/draw"),
            &[
                ("authorization", &rita),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            "",
        ),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        journal
            .draw(id)
            .unwrap_or_else(|e| panic!("{e}"))
            .and_then(|d| d.drawn)
            .is_none()
    );
    // A draw that does not exist.
    let missing = send(state.clone(), get("/sortition/9999", &[])).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_panel_cannot_adopt_outside_its_mandate_through_the_api() {
    let (state, _tx) = with_members();
    let panel = drawn_panel(&state, MandateScope::LedgerParameters);
    let auth = bearer(&state, "aline");
    let today = Utc::now().date_naive().to_string();
    let decision = serde_json::json!({
        "assembly_date": today, "votes_for": 2, "votes_against": 1, "votes_abstain": 0,
        "quorum_required": 2, "present": 3, "minutes": "Le panel veut changer le plan.",
        "panel": panel
    });
    let body = serde_json::json!({
        "plan": plan_json(&["clinic-fridge", "laundry"]),
        "decision": decision
    })
    .to_string();
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
    assert!(
        reply.body.contains(&format!(
            "the panel of draw {panel} has the mandate `ledger_parameters`: it cannot adopt a priority plan"
        )),
        "{}",
        reply.body
    );
    // The same panel adopts what its mandate covers.
    let parameters = serde_json::json!({
        "parameters": ledger::LedgerParameters {
            attestations_needed: 3,
            ..ledger::LedgerParameters::default()
        },
        "decision": decision
    });
    let reply = send(
        state.clone(),
        request(
            "POST",
            "/api/ledger/parameters",
            &[("authorization", &auth)],
            &parameters.to_string(),
        ),
    )
    .await;
    let adopted = reply.status == StatusCode::CREATED || reply.status == StatusCode::OK;
    assert!(adopted, "{} {}", reply.status, reply.body);
    let decisions = state
        .journal
        .panel_decisions(panel)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].kind, ledger::EntryKind::ParametersAdopted);
    // Its page lists the decision with the mandate.
    let page = send(
        state.clone(),
        get(&format!("/sortition/{panel}?lang=en"), &[]),
    )
    .await;
    assert!(
        page.body.contains("ledger parameters adopted"),
        "{}",
        page.body
    );
    let report = state.journal.verify().unwrap_or_else(|e| panic!("{e}"));
    assert!(report.is_intact(), "{report}");
}
