//! The assembly's panel: `/assembly`, its preview and its adoption, as a secretary
//! with a browser uses them (plain forms, no script).

use axum::body::Body;
use axum::http::{Request, StatusCode};

use crate::support::{Browser, Reply, get, login, send, with_members};

/// The panel's form as the secretary would send it for the plan `with_members`
/// adopts (`plan_json(["clinic-fridge", "laundry"])`), written out by hand, with a
/// decision record of 14 present for a quorum of 10; `changes` replace or add fields.
pub(crate) fn form(browser: &Browser, changes: &[(&str, &str)]) -> String {
    let mut fields: Vec<(String, String)> = [
        ("csrf", browser.csrf.as_str()),
        ("tier.clinic-fridge", "1"),
        ("min_w.clinic-fridge", "100"),
        ("max_w.clinic-fridge", "3000"),
        ("tier.laundry", "2"),
        ("min_w.laundry", "100"),
        ("max_w.laundry", "3000"),
        ("split.1", "equal"),
        ("split.2", "pro_rata"),
        ("split.3", "pro_rata"),
        ("battery", "on"),
        ("battery_reserve_soc_pct", "30"),
        ("battery_max_discharge_w", ""),
        ("battery_tiers", "1"),
        ("grid", "on"),
        ("grid_max_import_w", "0"),
        ("grid_tiers", ""),
        ("assembly_date", "2026-03-12"),
        ("present", "14"),
        ("quorum_required", "10"),
        ("votes_for", "9"),
        ("votes_against", "2"),
        ("votes_abstain", "1"),
        ("minutes", "La laverie passe en premier."),
        // The second step of adoption; the tests of the first step leave it out.
        ("confirm", "yes"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (name, value) in changes {
        match fields.iter_mut().find(|(k, _)| k == name) {
            Some(field) => field.1 = value.to_string(),
            None => fields.push((name.to_string(), value.to_string())),
        }
    }
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &fields {
        out.append_pair(k, v);
    }
    out.finish()
}

pub(crate) async fn post_form(
    state: &web::AppState,
    browser: &Browser,
    uri: &str,
    body: String,
    lang: &str,
) -> Reply {
    let request = Request::post(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &browser.cookie)
        .header("accept-language", lang)
        .body(Body::from(body))
        .unwrap_or_else(|e| panic!("request: {e}"));
    send(state.clone(), request).await
}

fn journal_len(state: &web::AppState) -> u64 {
    state
        .journal
        .verify()
        .unwrap_or_else(|e| panic!("{e}"))
        .entries
}

/// The text of the `<tr>` of the preview table whose row header is `name`, tags
/// removed.
fn preview_row(html: &str, name: &str) -> String {
    table_row(html, "preview-table", name)
}

/// The text of the `<tr>` of the table of class `class` whose row header is
/// `name`, tags removed.
pub(crate) fn table_row(html: &str, class: &str, name: &str) -> String {
    let table = html
        .find(&format!("class=\"{class}\""))
        .unwrap_or_else(|| panic!("no {class} table in {html}"));
    let html = &html[table..];
    let at = html
        .find(&format!(">{name}</th>"))
        .unwrap_or_else(|| panic!("no row for {name}"));
    let end = at + html[at..].find("</tr>").unwrap_or(0);
    let mut text = String::new();
    let mut in_tag = false;
    for c in html[at..end].chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn the_panel_states_the_active_plan_in_plain_language() {
    let (state, _tx) = with_members();
    let aline = login(&state, "aline").await;
    let page = send(
        state.clone(),
        get("/assembly", &[("cookie", &aline.cookie)]),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.header("content-type").starts_with("text/html"));
    let html = &page.body;
    // The service by its name, its guarantee and its cap, under its tier.
    assert!(
        html.contains("Réfrigérateur du cabinet médical — garanti 100 W — plafonné à 3,0 kW"),
        "{html}"
    );
    assert!(html.contains("Priorité 1 — servie en premier — partage à parts égales"));
    assert!(html.contains("Laverie partagée — garanti 100 W"));
    // The draft form starts from the active plan and carries the session's token.
    assert!(html.contains("name=\"min_w.clinic-fridge\" value=\"100\""));
    assert!(html.contains("name=\"tier.laundry\" value=\"2\""));
    assert!(html.contains(&format!("name=\"csrf\" value=\"{}\"", aline.csrf)));
    assert!(html.contains("formaction=\"/assembly/adopt#result\""));
    // The first plan came from the configuration.
    assert!(html.contains("Plan initial tiré de la configuration du site"));

    let english = send(
        state.clone(),
        get(
            "/assembly",
            &[("cookie", &aline.cookie), ("accept-language", "en-GB,en")],
        ),
    )
    .await;
    assert!(
        english
            .body
            .contains("Réfrigérateur du cabinet médical — guaranteed 100 W — capped at 3.0 kW"),
        "{}",
        english.body
    );
    assert!(english.body.contains("Priority 1 — served first"));
}

#[tokio::test]
async fn only_assembly_members_see_the_panel() {
    let (state, _tx) = with_members();
    let stranger = send(state.clone(), get("/assembly", &[])).await;
    assert_eq!(stranger.status, StatusCode::UNAUTHORIZED);
    assert!(
        stranger.body.contains("/login?next=/assembly"),
        "{}",
        stranger.body
    );
    let rita = login(&state, "rita").await;
    let resident = send(state.clone(), get("/assembly", &[("cookie", &rita.cookie)])).await;
    assert_eq!(resident.status, StatusCode::FORBIDDEN);
    assert!(resident.body.contains("assemblée"), "{}", resident.body);
    assert!(!resident.body.contains("plan-form"));
    // A form without the session's token is refused before anything is read.
    let aline = login(&state, "aline").await;
    let forged = Browser {
        cookie: aline.cookie.clone(),
        csrf: "0".repeat(64),
    };
    let before = journal_len(&state);
    let reply = post_form(&state, &forged, "/assembly/adopt", form(&forged, &[]), "fr").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(journal_len(&state), before);
}

/// Live figures of `support::snapshot()`: PV 4321 W; the battery above the plan's
/// 30 % reserve but with no discharge counted, no grid import; the fridge asks
/// 150 W, the laundry 2900 W. Under the active plan the two ask 3050 W in all,
/// which the sun covers: both are served. Capping the laundry at 1000 W in the
/// draft leaves it 1000 W, partly served, and the fridge unchanged.
#[tokio::test]
async fn the_preview_runs_the_draft_on_the_live_figures() {
    let (state, _tx) = with_members();
    let aline = login(&state, "aline").await;
    let before = journal_len(&state);
    let reply = post_form(
        &state,
        &aline,
        "/assembly/preview",
        form(&aline, &[("max_w.laundry", "1000")]),
        "fr",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let laundry = preview_row(&reply.body, "Laverie partagée");
    assert_eq!(
        laundry, "Laverie partagée 2,9 kW 1,0 kW · ◐ partiel 2,9 kW · ✔ servi",
        "{}",
        reply.body
    );
    let fridge = preview_row(&reply.body, "Réfrigérateur du cabinet médical");
    assert_eq!(
        fridge,
        "Réfrigérateur du cabinet médical 150 W 150 W · ✔ servi 150 W · ✔ servi"
    );
    // The draft stays in the form; nothing was recorded.
    assert!(reply.body.contains("name=\"max_w.laundry\" value=\"1000\""));
    assert_eq!(journal_len(&state), before);
}

/// The preview of the plan in force is the live allocation: a snapshot made by the
/// live engine from readings (PV 1000 W, the fridge's meter 300 W, the laundry's
/// declared 1500 W) under the plan `with_members` adopts. By hand: the minima (100 W
/// each) and the fridge's remaining 200 W come from the sun, which leaves the
/// laundry 600 W more: 700 W, partly served. The panel's preview of the unchanged
/// plan says the same under the draft and under the plan in force.
#[tokio::test]
async fn the_preview_of_the_plan_in_force_is_the_live_allocation() {
    use std::sync::Arc;
    use std::time::Duration;

    use ingest::reading::Reading;
    use ingest::store::LiveStore;
    use query::engine::{Engine, EngineOptions};
    use query::live::ServiceState;
    use sensors::model::Metric;

    let (state, tx) = crate::support::with_members();
    let now = chrono::Utc::now();
    let store = Arc::new(LiveStore::new(Duration::from_secs(120)));
    let reading = |device: &str, value| Reading {
        ts_ms: now.timestamp_millis() - 1_000,
        device: device.into(),
        metric: Metric::PowerW,
        value,
    };
    store
        .append(&[reading("roof", 1000.0), reading("m-fridge", 300.0)])
        .unwrap_or_else(|e| panic!("{e}"));
    fn config<T: serde::de::DeserializeOwned>(json: serde_json::Value) -> T {
        serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"))
    }
    let devices: Vec<sensors::config::DeviceConfig> = ["roof", "m-fridge"]
        .iter()
        .zip(["pv", "load"])
        .map(|(id, role)| {
            config(serde_json::json!({
                "id": id, "role": role, "profile": "generic-json", "mqtt": {"topic": id}
            }))
        })
        .collect();
    let services: Vec<query::config::ServiceConfig> = vec![
        config(serde_json::json!({
            "id": "clinic-fridge", "name": "Réfrigérateur du cabinet médical",
            "meter": "m-fridge", "tier": 1
        })),
        config(serde_json::json!({
            "id": "laundry", "name": "Laverie partagée", "demand_w": 1500.0, "tier": 2
        })),
    ];
    let engine = Engine::new(
        store,
        state.metrics.clone(),
        state.journal.clone(),
        &devices,
        &services,
        EngineOptions::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let live = engine.evaluate(now).await.unwrap_or_else(|e| panic!("{e}"));
    let outcome: Vec<(&str, f64, ServiceState)> = live
        .services
        .iter()
        .map(|s| (&*s.id, s.allocated_w, s.state))
        .collect();
    assert_eq!(
        outcome,
        [
            ("clinic-fridge", 300.0, ServiceState::Served),
            ("laundry", 700.0, ServiceState::Partial)
        ]
    );
    tx.send_replace(Arc::new(live));

    let aline = login(&state, "aline").await;
    let reply = post_form(&state, &aline, "/assembly/preview", form(&aline, &[]), "fr").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        preview_row(&reply.body, "Réfrigérateur du cabinet médical"),
        "Réfrigérateur du cabinet médical 300 W 300 W · ✔ servi 300 W · ✔ servi"
    );
    assert_eq!(
        preview_row(&reply.body, "Laverie partagée"),
        "Laverie partagée 1,5 kW 700 W · ◐ partiel 700 W · ◐ partiel"
    );
}

#[tokio::test]
async fn adopting_through_the_form_records_the_plan_and_its_history() {
    let (state, _tx) = with_members();
    let aline = login(&state, "aline").await;
    let before = journal_len(&state);
    let reply = post_form(
        &state,
        &aline,
        "/assembly/adopt",
        form(
            &aline,
            &[
                ("tier.laundry", "1"),
                ("max_w.laundry", ""),
                ("split.1", "pro_rata"),
            ],
        ),
        "fr",
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let location = reply.header("location").to_string();
    assert!(location.starts_with("/assembly"), "{location}");

    assert_eq!(journal_len(&state), before + 1);
    let report = state.journal.verify().unwrap_or_else(|e| panic!("{e}"));
    assert!(report.is_intact(), "{report:?}");
    let active = state
        .journal
        .active_plan()
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no active plan"));
    assert_eq!(active.author, "aline");
    assert_eq!(active.decision.present, 14);
    assert_eq!(active.decision.quorum_required, 10);
    assert_eq!(active.decision.votes_for, 9);
    assert_eq!(active.decision.minutes, "La laverie passe en premier.");
    let laundry = active
        .plan
        .services
        .iter()
        .find(|s| s.id == "laundry")
        .unwrap_or_else(|| panic!("{:?}", active.plan));
    assert_eq!(
        (laundry.tier, laundry.min_w, laundry.max_w),
        (1, 100.0, None)
    );
    assert_eq!(active.plan.split_of(1), ledger::Split::ProRata);

    let page = send(state.clone(), get(&location, &[("cookie", &aline.cookie)])).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = &page.body;
    assert!(html.contains("Le nouveau plan est adopté"), "{html}");
    // The history says what changed, in words.
    assert!(
        html.contains("Laverie partagée passe de la priorité 2 à la priorité 1"),
        "{html}"
    );
    assert!(html.contains("Laverie partagée : plafond 3,0 kW → aucun"));
    assert!(html.contains("Priorité 1 : partage à parts égales → au prorata de la demande"));
    assert!(html.contains(
        "9 pour, 2 contre, 1 abstention ; 14 présents pour un quorum de 10 ; saisi par aline"
    ));
    // The laundry is now listed in the first tier of the active plan.
    assert!(html.contains("Laverie partagée — garanti 100 W</li>"));
}

#[tokio::test]
async fn adoption_below_quorum_is_refused_and_says_so() {
    let (state, _tx) = with_members();
    let aline = login(&state, "aline").await;
    let before = journal_len(&state);
    let reply = post_form(
        &state,
        &aline,
        "/assembly/adopt",
        form(
            &aline,
            &[("tier.laundry", "1"), ("present", "8"), ("votes_for", "5")],
        ),
        "fr",
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply
            .body
            .contains("Quorum non atteint : 8 membres présents pour 10 requis"),
        "{}",
        reply.body
    );
    // The draft is kept as typed.
    assert!(reply.body.contains("name=\"present\" value=\"8\""));
    assert!(reply.body.contains("name=\"tier.laundry\" value=\"1\""));
    assert_eq!(journal_len(&state), before);
    let history = state
        .journal
        .plan_history()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(history.len(), 1);

    let english = post_form(
        &state,
        &aline,
        "/assembly/adopt",
        form(&aline, &[("present", "8"), ("votes_for", "5")]),
        "en",
    )
    .await;
    assert_eq!(english.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        english
            .body
            .contains("Quorum not reached: 8 members present, 10 required"),
        "{}",
        english.body
    );
    assert_eq!(journal_len(&state), before);
}

#[tokio::test]
async fn every_problem_is_named_and_nothing_is_recorded() {
    let (state, _tx) = with_members();
    let aline = login(&state, "aline").await;
    let before = journal_len(&state);
    let body = form(
        &aline,
        &[
            ("max_w.laundry", "50"),
            ("min_w.clinic-fridge", "beaucoup"),
            ("votes_against", "-1"),
            ("colour", "blue"),
            ("tier.sauna-du-voisin", "1"),
        ],
    );
    let reply = post_form(&state, &aline, "/assembly/adopt", body.clone(), "fr").await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let html = &reply.body;
    for expected in [
        "Plafond de « Laverie partagée » (50 W) inférieur à son minimum garanti (100 W)",
        "Minimum garanti de « Réfrigérateur du cabinet médical » : « beaucoup » n'est pas un nombre",
        "Voix contre : « -1 » n'est pas un nombre entier",
        "champ inconnu : « colour »",
        "champ inconnu : « tier.sauna-du-voisin »",
    ] {
        assert!(
            html.contains(&expected.replace('\'', "&#39;")),
            "missing {expected:?} in {html}"
        );
    }
    assert!(html.contains("name=\"min_w.clinic-fridge\" value=\"beaucoup\""));
    assert_eq!(journal_len(&state), before);

    // The preview refuses the same draft, without a table.
    let preview = post_form(&state, &aline, "/assembly/preview", body, "fr").await;
    assert_eq!(preview.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!preview.body.contains("preview-table"));
    assert!(preview.body.contains("inférieur à son minimum garanti"));

    // A draft alone (no decision record) previews, but does not adopt.
    let draft_only = form(&aline, &[("present", ""), ("minutes", "")]);
    let reply = post_form(
        &state,
        &aline,
        "/assembly/preview",
        draft_only.clone(),
        "fr",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = post_form(&state, &aline, "/assembly/adopt", draft_only, "fr").await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply
            .body
            .contains("Membres présents : ce champ est à remplir")
    );
    assert!(
        reply
            .body
            .contains("Procès-verbal : ce champ est à remplir")
    );
    assert_eq!(journal_len(&state), before);
}

#[tokio::test]
async fn the_wall_links_to_the_panel_for_assembly_members_only() {
    let (state, _tx) = with_members();
    let kiosk = send(state.clone(), get("/", &[])).await;
    assert_eq!(kiosk.status, StatusCode::OK);
    assert!(!kiosk.body.contains("href=\"/assembly\""));
    let rita = login(&state, "rita").await;
    let resident = send(state.clone(), get("/", &[("cookie", &rita.cookie)])).await;
    assert!(!resident.body.contains("href=\"/assembly\""));
    let aline = login(&state, "aline").await;
    let member = send(state.clone(), get("/", &[("cookie", &aline.cookie)])).await;
    assert!(
        member.body.contains("href=\"/assembly\""),
        "{}",
        member.body
    );
    // The panel's language switch stays on the panel.
    let panel = send(
        state.clone(),
        get("/assembly?lang=en", &[("cookie", &aline.cookie)]),
    )
    .await;
    assert_eq!(panel.status, StatusCode::OK);
    assert!(panel.body.contains("href=\"/assembly?lang=fr\""));
    assert!(panel.body.contains("Priority plan in force"));
}

/// "Adopter" is a step, not the act: it shows the decision record about to be
/// signed and what the draft changes, records nothing, and carries the draft to a
/// "Confirmer" that adopts it. The preview lists the same changes.
#[tokio::test]
async fn adoption_is_confirmed_after_seeing_what_is_signed() {
    let (state, _tx) = with_members();
    let aline = login(&state, "aline").await;
    let before = journal_len(&state);
    let change = [("tier.laundry", "1"), ("confirm", "")];

    let preview = post_form(
        &state,
        &aline,
        "/assembly/preview",
        form(&aline, &change),
        "fr",
    )
    .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    let html = preview.body.replace("&#39;", "'").replace("&#34;", "\"");
    let changes = &html[html
        .find("Ce que le projet change")
        .unwrap_or_else(|| panic!("{html}"))..];
    assert!(
        changes.contains("Laverie partagée") && changes.contains("priorité 1"),
        "{changes}"
    );
    assert!(html.contains("id=\"result\""), "the preview is the anchor");
    assert!(html.contains("formaction=\"/assembly/preview#result\""));

    let step = post_form(
        &state,
        &aline,
        "/assembly/adopt",
        form(&aline, &change),
        "fr",
    )
    .await;
    assert_eq!(step.status, StatusCode::OK, "{}", step.body);
    assert_eq!(
        journal_len(&state),
        before,
        "nothing recorded before confirming"
    );
    let html = step.body.replace("&#39;", "'").replace("&#34;", "\"");
    let at = html
        .find("class=\"confirm-adoption\"")
        .unwrap_or_else(|| panic!("no confirmation step: {html}"));
    let section = &html[at..html[at..].find("</section>").map_or(html.len(), |e| at + e)];
    assert!(section.contains("Adopter ce plan ?"), "{section}");
    assert!(
        section.contains("12 mars 2026") && section.contains("9 pour"),
        "{section}"
    );
    assert!(section.contains("sous votre nom (aline)"), "{section}");
    assert!(section.contains("Laverie partagée"), "{section}");
    assert!(
        section.contains("name=\"tier.laundry\" value=\"1\""),
        "{section}"
    );
    assert!(
        section.contains("name=\"confirm\" value=\"yes\""),
        "{section}"
    );

    // Confirming posts the same draft with the confirmation: adopted.
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut rest = section;
    while let Some(i) = rest.find("<input type=\"hidden\" name=\"") {
        rest = &rest[i + 27..];
        let name_end = rest.find('"').unwrap_or(0);
        let name = rest[..name_end].to_string();
        let value_at = rest.find("value=\"").map_or(0, |v| v + 7);
        let value_end = rest[value_at..]
            .find('"')
            .map_or(value_at, |e| value_at + e);
        fields.push((name, rest[value_at..value_end].to_string()));
    }
    let mut body = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &fields {
        body.append_pair(k, v);
    }
    let reply = post_form(&state, &aline, "/assembly/adopt", body.finish(), "fr").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(journal_len(&state), before + 1);
    let active = state
        .journal
        .active_plan()
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no active plan"));
    assert!(
        active
            .plan
            .services
            .iter()
            .any(|s| s.id == "laundry" && s.tier == 1)
    );
}
