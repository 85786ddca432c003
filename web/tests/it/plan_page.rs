//! The planning board's page (`/plan`) as members use it with a browser (plain
//! forms, no script): needs and offers filtered by class, matches, commitments
//! accepted and released, refusals named beside their form, and the whole flow to
//! an intent closed by a contribution recorded on `/ledger` that names its
//! commitment.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Utc;
use dashboards::{BoardField, BoardProblem, Catalog, Lang, board_problem_text};

use crate::support::{Browser, Reply, get, login, send, with_residents};

async fn post_form(
    state: &web::AppState,
    browser: &Browser,
    uri: &str,
    fields: &[(&str, &str)],
    lang: &str,
) -> Reply {
    let mut body = form_urlencoded::Serializer::new(String::new());
    body.append_pair("csrf", &browser.csrf);
    for (k, v) in fields {
        body.append_pair(k, v);
    }
    let request = Request::post(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &browser.cookie)
        .header("accept-language", lang)
        .body(Body::from(body.finish()))
        .unwrap_or_else(|e| panic!("request: {e}"));
    send(state.clone(), request).await
}

async fn page_at(state: &web::AppState, browser: &Browser, uri: &str, lang: &str) -> String {
    let page = send(
        state.clone(),
        get(
            uri,
            &[("cookie", &browser.cookie), ("accept-language", lang)],
        ),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.header("cache-control"), "no-store");
    unescaped(&page.body)
}

/// The id a redirect after a recorded form confirms (`/plan?posted=12`).
fn confirmed(reply: &Reply, what: &str) -> i64 {
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let location = reply.header("location");
    let prefix = format!("/plan?{what}=");
    assert!(location.starts_with(&prefix), "{location}");
    location[prefix.len()..]
        .split('#')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no id in {location}"))
}

fn unescaped(html: &str) -> String {
    html.replace("&#39;", "'")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#60;", "<")
        .replace("&lt;", "<")
        .replace("&#62;", ">")
        .replace("&gt;", ">")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

/// The part of the page from the element with `id` to the next `</section>` or
/// `</li>`, whichever `end` names.
fn part<'a>(html: &'a str, id: &str, end: &str) -> &'a str {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let rest = &html[at..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

fn need(class: &str, quantity: f64, description: &str) -> ledger::NewIntent {
    ledger::NewIntent {
        direction: ledger::Direction::Need,
        action: ledger::Action::Work,
        class: class.into(),
        quantity,
        unit: ledger::Unit::Hours,
        window_start: None,
        window_end: None,
        expires_at: None,
        never_expires: false,
        description: description.into(),
        visibility: ledger::Visibility::Node,
        collective: false,
    }
}

fn post(state: &web::AppState, member: &str, intent: &ledger::NewIntent) -> i64 {
    state
        .journal
        .post_intent(member, intent, Utc::now())
        .unwrap_or_else(|e| panic!("post: {e}"))
        .seq
}

/// The catalog's text for `key` (not the key echoed back).
fn t(lang: Lang, key: &'static str) -> &'static str {
    let text = Catalog::for_lang(lang).t(key);
    assert_ne!(text, key);
    text
}

#[tokio::test]
async fn the_board_lists_open_needs_and_offers_filters_by_class_and_shows_matches() {
    let (state, _tx) = with_residents();
    let bikes = post(&state, "rita", &need("bike-repair", 2.0, "Deux crevaisons"));
    let offer = post(
        &state,
        "remi",
        &ledger::NewIntent {
            direction: ledger::Direction::Offer,
            description: "Je répare les vélos le samedi".into(),
            ..need("bike-repair", 3.0, "")
        },
    );
    let veg = post(&state, "sara", &need("vegetables", 5.0, "Des courges"));

    let rita = login(&state, "rita").await;
    let html = page_at(&state, &rita, "/plan", "en").await;
    for id in [bikes, offer, veg] {
        assert!(
            html.contains(&format!("id=\"intent-{id}\"")),
            "{id}: {html}"
        );
    }
    let needs = part(&html, "needs-title", "</section>");
    assert!(needs.contains("Deux crevaisons") && needs.contains("Des courges"));
    assert!(
        !needs.contains("le samedi"),
        "an offer among needs: {needs}"
    );
    let offers = part(&html, "offers-title", "</section>");
    assert!(offers.contains("Je répare les vélos le samedi"), "{offers}");
    // remi's offer meets rita's need: it is in her matches, with a link to it.
    let matches = part(&html, "matches-title", "</section>");
    assert!(
        matches.contains(&format!("href=\"#intent-{offer}\"")),
        "{matches}"
    );
    // rita may commit on others' intents, not on her own.
    assert!(html.contains(&format!(
        "action=\"/plan/intents/{offer}/commitments#intent-{offer}\""
    )));
    assert!(!html.contains(&format!("action=\"/plan/intents/{bikes}/commitments")));
    // The navigation leads here.
    assert!(
        html.contains("<a href=\"/plan\" aria-current=\"page\">"),
        "{html}"
    );

    let filtered = page_at(&state, &rita, "/plan?class=vegetables", "fr").await;
    assert!(filtered.contains(&format!("id=\"intent-{veg}\"")));
    assert!(!filtered.contains(&format!("id=\"intent-{bikes}\"")));
    assert!(!filtered.contains(&format!("id=\"intent-{offer}\"")));
    assert!(filtered.contains(t(Lang::Fr, "plan.open_needs")));
    assert!(filtered.contains(t(Lang::Fr, "plan.no_offers")));
    assert!(filtered.contains("<html lang=\"fr\""), "{filtered}");
}

#[tokio::test]
async fn the_whole_flow_through_the_forms_closes_the_need() {
    let (state, _tx) = with_residents();
    let rita = login(&state, "rita").await;
    let reply = post_form(
        &state,
        &rita,
        "/plan/intents",
        &[
            ("direction", "need"),
            ("action", "work"),
            ("class", "electrician"),
            ("quantity", "1,5"),
            ("unit", "hours"),
            ("window_start", ""),
            ("window_end", ""),
            ("expires", ""),
            ("description", "Réparer la prise du local vélo"),
        ],
        "fr",
    )
    .await;
    let intent = confirmed(&reply, "posted");
    let posted = state
        .journal
        .intent(intent, Utc::now())
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no intent {intent}"));
    assert_eq!(posted.author, "rita");
    assert_eq!(posted.quantity, ledger::Quantity::from_centi(150));
    assert_eq!(posted.direction, ledger::Direction::Need);

    let aline = login(&state, "aline").await;
    let reply = post_form(
        &state,
        &aline,
        &format!("/plan/intents/{intent}/commitments"),
        &[("quantity", "1.5"), ("note", "Samedi matin")],
        "fr",
    )
    .await;
    let commitment = confirmed(&reply, "proposed");
    // Only rita, the other side, is offered the button to accept it.
    let alines = page_at(&state, &aline, "/plan", "en").await;
    let item = part(&alines, &format!("commitment-{commitment}"), "</li>");
    assert!(!item.contains("/accept"), "{item}");
    assert!(item.contains("data-state=\"proposed\""), "{item}");
    let ritas = page_at(&state, &rita, "/plan", "en").await;
    let item = part(&ritas, &format!("commitment-{commitment}"), "</li>");
    assert!(
        item.contains(&format!("action=\"/plan/commitments/{commitment}/accept")),
        "{item}"
    );
    let reply = post_form(
        &state,
        &rita,
        &format!("/plan/commitments/{commitment}/accept"),
        &[],
        "en",
    )
    .await;
    assert_eq!(confirmed(&reply, "accepted"), commitment);
    let page = page_at(&state, &rita, &format!("/plan?accepted={commitment}"), "en").await;
    assert!(page.contains("id=\"done\""), "{page}");
    let item = part(&page, &format!("commitment-{commitment}"), "</li>");
    assert!(item.contains("data-state=\"accepted\""), "{item}");

    // aline's ledger page offers the commitment on the contribution form.
    let ledger_page = page_at(&state, &aline, "/ledger", "fr").await;
    let record = part(&ledger_page, "record", "</section>");
    assert!(
        record.contains(&format!("<option value=\"{commitment}\"")),
        "{record}"
    );
    let reply = post_form(
        &state,
        &aline,
        "/ledger/contributions",
        &[
            ("category", "repair"),
            ("hours", "1.5"),
            (
                "date",
                &Utc::now().date_naive().format("%Y-%m-%d").to_string(),
            ),
            ("description", "Prise du local vélo remplacée"),
            ("commitment", &commitment.to_string()),
        ],
        "fr",
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let contribution = state
        .journal
        .contributions()
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .find(|c| c.member == "aline")
        .unwrap_or_else(|| panic!("no contribution of aline's"))
        .id;
    for attester in ["remi", "sara"] {
        let browser = login(&state, attester).await;
        let reply = post_form(
            &state,
            &browser,
            &format!("/ledger/contributions/{contribution}/attestations"),
            &[("verdict", "approve"), ("comment", "")],
            "fr",
        )
        .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    }
    let closed = state
        .journal
        .intent(intent, Utc::now())
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no intent {intent}"));
    assert_eq!(closed.state, ledger::IntentState::Closed);
    assert_eq!(closed.fulfilled, closed.quantity);
    // Closed, it is no longer among the open needs.
    let page = page_at(&state, &rita, "/plan", "en").await;
    assert!(!page.contains(&format!("id=\"intent-{intent}\"")), "{page}");
    let item = part(&page, &format!("commitment-{commitment}"), "</li>");
    assert!(item.contains("data-state=\"fulfilled\""), "{item}");
}

#[tokio::test]
async fn refusals_are_named_beside_their_form_in_the_readers_language() {
    let (state, _tx) = with_residents();
    let rita = login(&state, "rita").await;
    let reply = post_form(
        &state,
        &rita,
        "/plan/intents",
        &[
            ("direction", "need"),
            ("action", "work"),
            ("class", "Vélo Réparation"),
            ("quantity", "0"),
            ("unit", "litres"),
            ("description", " "),
            ("collective", "1"),
        ],
        "fr",
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    let html = unescaped(&reply.body);
    let form = part(&html, "post", "</section>");
    for problem in [
        BoardProblem::Class {
            value: "Vélo Réparation".into(),
        },
        BoardProblem::Quantity { value: "0".into() },
        BoardProblem::UnknownChoice {
            field: BoardField::Unit,
            value: "litres".into(),
        },
        BoardProblem::DescriptionEmpty,
    ] {
        let text = board_problem_text(&problem, Lang::Fr);
        assert!(form.contains(&text), "{text} not in {form}");
    }
    // As typed.
    assert!(form.contains("value=\"Vélo Réparation\""), "{form}");

    // A collective need from outside the assembly: the journal refuses it.
    let reply = post_form(
        &state,
        &rita,
        "/plan/intents",
        &[
            ("direction", "need"),
            ("action", "work"),
            ("class", "care"),
            ("quantity", "2"),
            ("unit", "hours"),
            ("description", "Garde d'enfants pendant l'assemblée"),
            ("collective", "1"),
        ],
        "en",
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    let html = unescaped(&reply.body);
    assert!(
        part(&html, "post", "</section>")
            .contains(&board_problem_text(&BoardProblem::AssemblyOnly, Lang::En))
    );

    // More than remains, beside the commitment form of that intent.
    let intent = post(&state, "sara", &need("care", 2.0, "Garde le mercredi"));
    let reply = post_form(
        &state,
        &rita,
        &format!("/plan/intents/{intent}/commitments"),
        &[("quantity", "3"), ("note", "")],
        "en",
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    let html = unescaped(&reply.body);
    let item = part(&html, &format!("intent-{intent}"), "</form>");
    let over = board_problem_text(
        &BoardProblem::OverCommitment {
            remaining: ledger::Quantity::from_centi(200),
            asked: ledger::Quantity::from_centi(300),
            unit: None,
        },
        Lang::En,
    );
    assert!(item.contains(&over), "{over} not in {item}");
    assert!(item.contains("value=\"3\""), "as typed: {item}");

    // The proposer cannot accept their own proposal.
    let reply = post_form(
        &state,
        &rita,
        &format!("/plan/intents/{intent}/commitments"),
        &[("quantity", "1"), ("note", "")],
        "en",
    )
    .await;
    let commitment = confirmed(&reply, "proposed");
    let reply = post_form(
        &state,
        &rita,
        &format!("/plan/commitments/{commitment}/accept"),
        &[],
        "en",
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    let html = unescaped(&reply.body);
    assert!(
        part(&html, &format!("commitment-{commitment}"), "</li>")
            .contains(&board_problem_text(&BoardProblem::NotAParty, Lang::En))
    );

    // A commitment that does not exist, at the top.
    let reply = post_form(&state, &rita, "/plan/commitments/999/accept", &[], "en").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    assert!(unescaped(&reply.body).contains(&board_problem_text(
        &BoardProblem::NoSuchCommitment { id: 999 },
        Lang::En
    )));
    let reply = post_form(&state, &rita, "/plan/commitments/abc/accept", &[], "en").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
}

#[tokio::test]
async fn either_side_releases_and_the_quantity_returns_to_the_intent() {
    let (state, _tx) = with_residents();
    let intent = post(&state, "rita", &need("care", 2.0, "Garde le mercredi"));
    let commitment = state
        .journal
        .propose_commitment(
            "sara",
            intent,
            &ledger::NewCommitment {
                quantity: 2.0,
                note: String::new(),
            },
            Utc::now(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .seq;
    state
        .journal
        .accept_commitment("rita", commitment, Utc::now())
        .unwrap_or_else(|e| panic!("{e}"));
    let remaining = |state: &web::AppState| {
        state
            .journal
            .intent(intent, Utc::now())
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|i| i.remaining)
    };
    assert_eq!(remaining(&state), Some(ledger::Quantity::ZERO));
    let sara = login(&state, "sara").await;
    let reply = post_form(
        &state,
        &sara,
        &format!("/plan/commitments/{commitment}/release"),
        &[("reason", "Malade")],
        "fr",
    )
    .await;
    assert_eq!(confirmed(&reply, "released"), commitment);
    assert_eq!(remaining(&state), Some(ledger::Quantity::from_centi(200)));
    let c = state
        .journal
        .commitment(commitment)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no commitment"));
    assert_eq!(c.state, ledger::CommitmentState::Released);
    // Released, it offers no button any more.
    let page = page_at(&state, &sara, "/plan", "fr").await;
    let item = part(&page, &format!("commitment-{commitment}"), "</li>");
    assert!(!item.contains("<form"), "{item}");
}

#[tokio::test]
async fn a_member_who_is_not_a_resident_reads_the_board_without_forms() {
    let (state, _tx) = with_residents();
    let intent = post(&state, "rita", &need("care", 2.0, "Garde le mercredi"));
    let stranger = send(state.clone(), get("/plan", &[])).await;
    assert_eq!(stranger.status, StatusCode::UNAUTHORIZED);
    let ivo = login(&state, "ivo").await;
    let html = page_at(&state, &ivo, "/plan", "en").await;
    assert!(html.contains(&format!("id=\"intent-{intent}\"")));
    // Acts are for residents; saving one's interests, a preference, is not an act.
    for acting in ["action=\"/plan/intents", "action=\"/plan/commitments"] {
        assert!(!html.contains(acting), "{html}");
    }
    assert!(html.contains("action=\"/plan/interests\""), "{html}");
    assert!(html.contains(t(Lang::En, "plan.residents_only")));
    let reply = post_form(
        &state,
        &ivo,
        &format!("/plan/intents/{intent}/commitments"),
        &[("quantity", "1")],
        "en",
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
}

/// The wall screen's footer, as a reader of `lang` gets it.
async fn wall_footer(state: &web::AppState, lang: &'static str) -> String {
    let reply = send(state.clone(), get(&format!("/?lang={lang}"), &[])).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let html = unescaped(&reply.body);
    let at = html
        .find("<footer class=\"foot\">")
        .unwrap_or_else(|| panic!("no footer in {html}"));
    let rest = &html[at..];
    rest[..rest.find("</footer>").unwrap_or(rest.len())].to_string()
}

#[tokio::test]
async fn the_wall_names_the_open_collective_needs_in_its_footer() {
    let (state, _tx) = with_residents();
    let wall = wall_footer;
    // A member's own need is not the community's: the footer says nothing of it.
    post(&state, "rita", &need("bike-repair", 2.0, "Deux crevaisons"));
    let foot = wall(&state, "fr").await;
    assert!(!foot.contains("collective-needs"), "{foot}");
    assert!(!foot.contains("crevaisons"), "{foot}");

    let collective = ledger::NewIntent {
        collective: true,
        ..need("care", 3.0, "Garde d'enfants pendant l'assemblée du 12")
    };
    post(&state, "aline", &collective);
    let foot = wall(&state, "fr").await;
    assert!(foot.contains("data-field=\"collective-needs\""), "{foot}");
    assert!(
        foot.contains("Garde d'enfants pendant l'assemblée du 12 (3 h)"),
        "{foot}"
    );
    // Who posted it is not on the public screen.
    assert!(!foot.contains("aline"), "{foot}");
    let en = wall(&state, "en").await;
    let line = Catalog::for_lang(Lang::En).tf(
        "wall.collective_needs",
        &[("needs", "Garde d'enfants pendant l'assemblée du 12 (3 h)")],
    );
    assert!(en.contains(&line), "{line} not in {en}");
}

/// The node's next surplus offer is the wall's line, the day said against the
/// node's clock, in the reader's language; a window over is not shown.
#[tokio::test]
async fn the_wall_names_the_next_solar_surplus_window() {
    let (state, tx) = with_residents();
    let tz = state.site.timezone;
    let local = |h: u32| {
        use chrono::TimeZone;
        tz.from_local_datetime(
            &chrono::NaiveDate::from_ymd_opt(2026, 6, 18)
                .and_then(|d| d.and_hms_opt(h, 0, 0))
                .expect("time"),
        )
        .single()
        .expect("one instant")
        .with_timezone(&Utc)
    };
    let foot = wall_footer;
    let at = |ts| {
        tx.send_replace(std::sync::Arc::new(query::engine::empty_snapshot(ts)));
    };
    at(local(8));
    assert!(
        !foot(&state, "fr").await.contains("surplus-window"),
        "no offer, no line"
    );

    state
        .journal
        .open_surplus_offer(local(11), local(15), 6.2, "Surplus solaire prévu", local(8))
        .expect("offer")
        .expect("posted");
    let fr = foot(&state, "fr").await;
    assert!(fr.contains("data-field=\"surplus-window\""), "{fr}");
    let line = |lang, day: &str, start: &str| {
        Catalog::for_lang(lang).tf(
            "wall.surplus_window",
            &[
                ("day", day),
                ("start", start),
                ("end", "15:00"),
                (
                    "kwh",
                    &dashboards::quantity_with_unit(
                        ledger::Quantity::from_centi(620),
                        ledger::Unit::Kwh,
                        lang,
                    ),
                ),
                (
                    "free",
                    &dashboards::quantity_with_unit(
                        ledger::Quantity::from_centi(620),
                        ledger::Unit::Kwh,
                        lang,
                    ),
                ),
            ],
        )
    };
    let today_fr = line(Lang::Fr, t(Lang::Fr, "wall.surplus_today"), "11:00");
    assert!(fr.contains(&today_fr), "{today_fr} not in {fr}");
    // Seen the evening before, it is tomorrow's; once the window has begun, what is
    // left of it; once over, nothing.
    at(local(8) - chrono::Duration::hours(12));
    let en = foot(&state, "en").await;
    let tomorrow_en = line(Lang::En, t(Lang::En, "wall.surplus_tomorrow"), "11:00");
    assert!(en.contains(&tomorrow_en), "{tomorrow_en} not in {en}");
    at(local(13));
    let en = foot(&state, "en").await;
    let rest_en = line(Lang::En, t(Lang::En, "wall.surplus_today"), "13:00");
    assert!(en.contains(&rest_en), "{rest_en} not in {en}");
    at(local(16));
    assert!(!foot(&state, "en").await.contains("surplus-window"));
}

/// Every item of every list of problems on a page.
fn problem_items(html: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find("<ul class=\"problems\">") {
        rest = &rest[at..];
        let end = rest.find("</ul>").unwrap_or(rest.len());
        let list = &rest[..end];
        for li in list.split("<li>").skip(1) {
            items.push(li.split("</li>").next().unwrap_or("").trim().to_string());
        }
        rest = &rest[end..];
    }
    items
}

/// Words that every English refusal of the journal holds one of and no French
/// sentence of the catalog does.
const ENGLISH_MARKERS: [&str; 10] = [
    " the ",
    "The ",
    " is ",
    " not ",
    "cannot",
    "commitment",
    "intent",
    " was ",
    "already",
    "refuses",
];

/// The page answered `reply` in French names `expected` and says nothing in
/// English.
fn said_in_french(reply: &Reply, expected: &BoardProblem) {
    let html = unescaped(&reply.body);
    let items = problem_items(&html);
    let text = board_problem_text(expected, Lang::Fr);
    assert!(
        items.contains(&text),
        "{text:?} not among {items:?} ({})",
        reply.status
    );
    for item in &items {
        for marker in ENGLISH_MARKERS {
            assert!(
                !item.contains(marker),
                "English on the French page: {item:?}"
            );
        }
    }
}

async fn commit_in_french(
    state: &web::AppState,
    who: &Browser,
    intent: i64,
    quantity: &str,
    note: &str,
) -> Reply {
    post_form(
        state,
        who,
        &format!("/plan/intents/{intent}/commitments"),
        &[("quantity", quantity), ("note", note)],
        "fr",
    )
    .await
}

/// An hour of care recorded on `/ledger`, naming `commitment`.
async fn contribute_in_french(state: &web::AppState, who: &Browser, commitment: String) -> Reply {
    let today = Utc::now().date_naive().to_string();
    post_form(
        state,
        who,
        "/ledger/contributions",
        &[
            ("category", "care"),
            ("hours", "1"),
            ("date", &today),
            ("description", "Garde du mercredi"),
            ("commitment", &commitment),
        ],
        "fr",
    )
    .await
}

#[tokio::test]
async fn every_refusal_on_the_board_is_said_in_french() {
    let (state, _tx) = with_residents();
    let rita = login(&state, "rita").await;
    let sara = login(&state, "sara").await;
    let remi = login(&state, "remi").await;
    let intent_form = |description: &'static str, collective: &'static str| {
        vec![
            ("direction", "need"),
            ("action", "work"),
            ("class", "care"),
            ("quantity", "2"),
            ("unit", "hours"),
            ("description", description),
            ("collective", collective),
        ]
    };
    use ledger::{IntentProblem, PlanningProblem, TextField, Unfulfillable};

    // Posting: a control character only the journal looks for; a collective need
    // from outside the assembly.
    let reply = post_form(
        &state,
        &rita,
        "/plan/intents",
        &intent_form("Garde\u{7} d'enfants", "0"),
        "fr",
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    said_in_french(
        &reply,
        &BoardProblem::Intent(IntentProblem::TextControlCharacter {
            field: TextField::Description,
        }),
    );
    let reply = post_form(
        &state,
        &rita,
        "/plan/intents",
        &intent_form("Garde d'enfants", "1"),
        "fr",
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    said_in_french(&reply, &BoardProblem::AssemblyOnly);

    // Committing: to one's own need, beyond what remains, to no intent, to an
    // expired one, with a control character in the note.
    let intent = post(&state, "rita", &need("care", 2.0, "Garde le mercredi"));
    let (rita, sara, remi) = (&rita, &sara, &remi);
    let commit = |who, id, quantity, note| commit_in_french(&state, who, id, quantity, note);
    said_in_french(
        &commit(rita, intent, "1", "").await,
        &BoardProblem::Planning(PlanningProblem::OwnIntent {
            intent,
            member: "rita".into(),
        }),
    );
    said_in_french(
        &commit(sara, intent, "3", "").await,
        &BoardProblem::OverCommitment {
            remaining: ledger::Quantity::from_centi(200),
            asked: ledger::Quantity::from_centi(300),
            unit: None,
        },
    );
    said_in_french(
        &commit(sara, 999, "1", "").await,
        &BoardProblem::NoSuchIntent { id: 999 },
    );
    said_in_french(
        &commit(sara, intent, "1", "à\u{1b}bientôt").await,
        &BoardProblem::Intent(IntentProblem::TextControlCharacter {
            field: TextField::Note,
        }),
    );
    let past = Utc::now() - chrono::TimeDelta::days(2);
    let expired = state
        .journal
        .post_intent(
            "remi",
            &ledger::NewIntent {
                expires_at: Some(past + chrono::TimeDelta::hours(1)),
                ..need("care", 1.0, "Hier")
            },
            past,
        )
        .unwrap_or_else(|e| panic!("post: {e}"))
        .seq;
    said_in_french(
        &commit(sara, expired, "1", "").await,
        &BoardProblem::IntentNotOpen {
            id: expired,
            state: ledger::IntentState::Expired,
        },
    );

    // Accepting and releasing.
    let proposed = confirmed(&commit(sara, intent, "1", "").await, "proposed");
    let state_ref = &state;
    let act = |who, path: String, fields: Vec<(&'static str, &'static str)>| async move {
        post_form(state_ref, who, &path, &fields, "fr").await
    };
    let accept = |id: i64| format!("/plan/commitments/{id}/accept");
    let release = |id: i64| format!("/plan/commitments/{id}/release");
    said_in_french(
        &act(sara, accept(proposed), vec![]).await,
        &BoardProblem::NotAParty,
    );
    said_in_french(
        &act(sara, accept(999), vec![]).await,
        &BoardProblem::NoSuchCommitment { id: 999 },
    );
    said_in_french(
        &act(sara, release(proposed), vec![("reason", "\u{7}")]).await,
        &BoardProblem::Intent(IntentProblem::TextControlCharacter {
            field: TextField::Reason,
        }),
    );
    said_in_french(
        &act(remi, release(proposed), vec![]).await,
        &BoardProblem::NotAParty,
    );
    confirmed(&act(rita, accept(proposed), vec![]).await, "accepted");
    said_in_french(
        &act(rita, accept(proposed), vec![]).await,
        &BoardProblem::Planning(PlanningProblem::AlreadyAccepted {
            commitment: proposed,
        }),
    );
    // On the ledger's page, a contribution naming a commitment it cannot fulfil.
    let second = confirmed(&commit(sara, intent, "1", "").await, "proposed");
    let contribute = |who, commitment: String| contribute_in_french(&state, who, commitment);
    for (who, commitment, expected) in [
        (
            sara,
            second,
            BoardProblem::Planning(PlanningProblem::CannotFulfil {
                commitment: second,
                why: Unfulfillable::NotAccepted,
            }),
        ),
        (remi, proposed, BoardProblem::NotAParty),
        (sara, 999, BoardProblem::NoSuchCommitment { id: 999 }),
    ] {
        let reply = contribute(who, commitment.to_string()).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            reply.body
        );
        said_in_french(&reply, &expected);
    }
    confirmed(&act(sara, release(second), vec![]).await, "released");
    said_in_french(
        &act(rita, accept(second), vec![]).await,
        &BoardProblem::Planning(PlanningProblem::Released { commitment: second }),
    );
    said_in_french(
        &act(rita, release(second), vec![]).await,
        &BoardProblem::Planning(PlanningProblem::AlreadyReleased { commitment: second }),
    );
    let reply = contribute(sara, second.to_string()).await;
    said_in_french(
        &reply,
        &BoardProblem::Planning(PlanningProblem::CannotFulfil {
            commitment: second,
            why: Unfulfillable::Released,
        }),
    );

    // Fulfilled: nothing left to release.
    let reply = contribute(sara, proposed.to_string()).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let contribution = state
        .journal
        .contributions()
        .unwrap_or_else(|e| panic!("contributions: {e}"))
        .into_iter()
        .map(|c| c.id)
        .max()
        .unwrap_or_else(|| panic!("no contribution"));
    for approver in ["remi", "aline"] {
        state
            .journal
            .attest(
                contribution,
                approver,
                ledger::Verdict::Approve,
                "",
                Utc::now(),
            )
            .unwrap_or_else(|e| panic!("attest: {e}"));
    }
    said_in_french(
        &act(rita, release(proposed), vec![]).await,
        &BoardProblem::Planning(PlanningProblem::NothingToRelease {
            commitment: proposed,
        }),
    );
}

/// The count of new matches beside the planning board's link in a page's
/// navigation, if any.
fn nav_count(html: &str) -> Option<String> {
    let nav = &html[html.find("<nav class=\"member-nav\"")?..];
    let nav = &nav[..nav.find("</nav>")?];
    let at = nav.find("<span class=\"nav-count\">")?;
    let rest = &nav[at + "<span class=\"nav-count\">".len()..];
    Some(rest[..rest.find("</span>")?].to_string())
}

#[tokio::test]
async fn saved_interests_list_their_intents_and_the_navigation_counts_new_matches() {
    let (state, _tx) = with_residents();
    let rita = login(&state, "rita").await;
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(5));

    // Interests saved from the page's form, as typed with commas and spaces.
    let reply = post_form(
        &state,
        &rita,
        "/plan/interests",
        &[("classes", "vegetables, bike-repair")],
        "fr",
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(
        state.journal.interests("rita").unwrap_or_default(),
        ["bike-repair", "vegetables"]
    );
    // A class that is not one is refused beside the form, in French, as typed.
    let reply = post_form(
        &state,
        &rita,
        "/plan/interests",
        &[("classes", "vegetables Légumes")],
        "fr",
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    said_in_french(
        &reply,
        &BoardProblem::Interests {
            value: "Légumes".into(),
        },
    );
    assert!(unescaped(&reply.body).contains("value=\"vegetables Légumes\""));

    // rita looks at the board: nothing is new to her then.
    page_at(&state, &rita, "/plan", "fr").await;
    let ledger = page_at(&state, &rita, "/ledger", "en").await;
    assert_eq!(nav_count(&ledger), None, "nothing new yet");
    pause().await;

    // Others post: one in her interests, one that matches her own need, one
    // neither.
    let veg = post(
        &state,
        "sara",
        &ledger::NewIntent {
            direction: ledger::Direction::Offer,
            action: ledger::Action::Give,
            unit: ledger::Unit::Kg,
            ..need("vegetables", 3.0, "Des courgettes du jardin")
        },
    );
    post(
        &state,
        "rita",
        &need("electrician", 2.0, "Une prise à changer"),
    );
    let spark = post(
        &state,
        "remi",
        &ledger::NewIntent {
            direction: ledger::Direction::Offer,
            ..need("electrician", 4.0, "Je suis électricien le samedi")
        },
    );
    post(&state, "remi", &need("care", 1.0, "Garde d'un chat"));

    // Every member page counts the two, in the page's language.
    let t_count = |lang: Lang, n: u64| Catalog::for_lang(lang).count("plan.nav_new", n);
    let ledger = page_at(&state, &rita, "/ledger", "en").await;
    assert_eq!(nav_count(&ledger), Some(t_count(Lang::En, 2)));
    let ledger = page_at(&state, &rita, "/ledger", "fr").await;
    assert_eq!(nav_count(&ledger), Some(t_count(Lang::Fr, 2)));
    let sortition = page_at(&state, &rita, "/sortition", "fr").await;
    assert_eq!(nav_count(&sortition), Some(t_count(Lang::Fr, 2)));
    // The API says the same.
    let api = send(
        state.clone(),
        get("/api/interests", &[("cookie", &rita.cookie)]),
    )
    .await;
    assert_eq!(api.status, StatusCode::OK, "{}", api.body);
    let json = api.json();
    assert_eq!(json["new_matches"], 2);
    assert_eq!(
        json["classes"],
        serde_json::json!(["bike-repair", "vegetables"])
    );
    let ids: Vec<i64> = json["intents"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["id"].as_i64()).collect())
        .unwrap_or_default();
    assert_eq!(ids, [veg]);

    // The board lists what is in her interests, marked new, and the match.
    let html = page_at(&state, &rita, "/plan", "fr").await;
    let interests = part(&html, "interests-title", "</section>");
    assert!(
        interests.contains("Des courgettes du jardin"),
        "{interests}"
    );
    assert!(
        interests.contains(t(Lang::Fr, "plan.new_mark")),
        "{interests}"
    );
    assert!(!interests.contains("Garde d'un chat"), "{interests}");
    assert!(
        part(&html, "matches-title", "</section>").contains(&format!("#intent-{spark}")),
        "{html}"
    );
    // Having looked, nothing is new any more.
    assert_eq!(nav_count(&html), None);
    let ledger = page_at(&state, &rita, "/ledger", "en").await;
    assert_eq!(nav_count(&ledger), None);

    // The API saves too, and names a class that is not one.
    let bearer = crate::support::bearer(&state, "rita");
    let reply = send(
        state.clone(),
        crate::support::request(
            "POST",
            "/api/interests",
            &[("authorization", &bearer)],
            r#"{"classes": ["care", "Bad Class"]}"#,
        ),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    assert!(reply.body.contains("Bad Class"), "{}", reply.body);
    let reply = send(
        state.clone(),
        crate::support::request(
            "POST",
            "/api/interests",
            &[("authorization", &bearer)],
            r#"{"classes": ["care"]}"#,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["classes"], serde_json::json!(["care"]));
}

#[tokio::test]
async fn a_transfer_names_the_intent_it_pays_for_and_the_board_shows_it() {
    let (state, _tx) = with_residents();
    // rita earns Communs, then needs vegetables; sara commits to give them.
    crate::support::validated(
        &state,
        "rita",
        2.0,
        Utc::now() - chrono::TimeDelta::hours(1),
    );
    let veg = post(
        &state,
        "rita",
        &ledger::NewIntent {
            action: ledger::Action::Give,
            unit: ledger::Unit::Kg,
            ..need("vegetables", 3.0, "Trois kilos de courgettes")
        },
    );
    let commitment = state
        .journal
        .propose_commitment(
            "sara",
            veg,
            &ledger::NewCommitment {
                quantity: 3.0,
                note: String::new(),
            },
            Utc::now(),
        )
        .unwrap_or_else(|e| panic!("propose: {e}"))
        .seq;
    state
        .journal
        .accept_commitment("rita", commitment, Utc::now())
        .unwrap_or_else(|e| panic!("accept: {e}"));
    let rita = login(&state, "rita").await;
    let pay = |to: &'static str, intent: String| {
        let (state, rita) = (&state, &rita);
        async move {
            post_form(
                state,
                rita,
                "/ledger/transfers",
                &[
                    ("to", to),
                    ("amount", "4"),
                    ("memo", "Courgettes"),
                    ("intent", &intent),
                ],
                "fr",
            )
            .await
        }
    };
    // remi is no party to the intent; 999 is no intent; "abc" no number.
    let reply = pay("remi", veg.to_string()).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    said_in_french(
        &reply,
        &BoardProblem::Planning(ledger::PlanningProblem::NotPartyToIntent {
            member: "remi".into(),
            intent: veg,
        }),
    );
    said_in_french(
        &pay("sara", "999".into()).await,
        &BoardProblem::NoSuchIntent { id: 999 },
    );
    let reply = pay("sara", "abc".into()).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    assert!(unescaped(&reply.body).contains("value=\"abc\""));
    // Paid to sara: recorded with the intent, and shown under it on the board.
    let reply = pay("sara", veg.to_string()).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let payments = state
        .journal
        .transfers_for_intents()
        .unwrap_or_else(|e| panic!("payments: {e}"));
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0].intent, Some(veg));
    let html = page_at(&state, &rita, "/plan", "fr").await;
    let item = part(&html, &format!("intent-{veg}"), "</li>");
    let paid = Catalog::for_lang(Lang::Fr).tf(
        "plan.paid",
        &[
            (
                "amount",
                &dashboards::format_communs(ledger::Communs::from_whole(4), Lang::Fr),
            ),
            ("from", "rita"),
            ("to", "sara"),
        ],
    );
    assert!(item.contains(&paid), "{paid} not in {item}");

    // The API takes the intent too, and refuses a payer who is no party to it.
    let bearer = crate::support::bearer(&state, "remi");
    crate::support::validated(
        &state,
        "remi",
        1.0,
        Utc::now() - chrono::TimeDelta::hours(1),
    );
    let reply = send(
        state.clone(),
        crate::support::request(
            "POST",
            "/api/transfers",
            &[("authorization", &bearer)],
            &format!(r#"{{"to": "sara", "amount": 1, "memo": "", "intent": {veg}}}"#),
        ),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    assert!(reply.body.contains("no party to intent"), "{}", reply.body);
    assert!(state.journal.verify().is_ok_and(|r| r.is_intact()));
}

#[tokio::test]
async fn the_nodes_repair_need_reads_as_the_nodes_on_the_board_and_the_wall() {
    let (state, _tx) = with_residents();
    let need = state
        .journal
        .open_repair_need(
            "roof-school",
            "Réparer l'onduleur du toit de l'école",
            Utc::now(),
        )
        .unwrap_or_else(|e| panic!("open: {e}"))
        .unwrap_or_else(|| panic!("not opened"))
        .seq;
    let rita = login(&state, "rita").await;
    let html = page_at(&state, &rita, "/plan", "fr").await;
    let item = part(&html, &format!("intent-{need}"), "</li>");
    assert!(item.contains(t(Lang::Fr, "plan.by_node")), "{item}");
    assert!(
        item.contains("Réparer l'onduleur du toit de l'école"),
        "{item}"
    );
    // A resident can take it up; the assembly accepts for the node.
    assert!(
        item.contains(&format!("action=\"/plan/intents/{need}/commitments")),
        "{item}"
    );
    let wall = send(state.clone(), get("/?lang=fr", &[])).await;
    assert!(
        unescaped(&wall.body).contains("Réparer l'onduleur du toit de l'école (2 h)"),
        "{}",
        wall.body
    );
}
