//! The ledger page (`/ledger`) as members use it with a browser (plain forms, no
//! script), and the wall screen's figure of this week's validated hours.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{Duration, Utc};

use crate::support::{Browser, Reply, get, login, send, validated, with_residents};

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

/// The page a redirect leads to (its fragment is the browser's business).
async fn follow(state: &web::AppState, browser: &Browser, reply: &Reply, lang: &str) -> String {
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let location = reply.header("location");
    assert!(location.starts_with("/ledger?"), "{location}");
    let location = location.split('#').next().unwrap_or_default();
    let page = send(
        state.clone(),
        get(
            location,
            &[("cookie", &browser.cookie), ("accept-language", lang)],
        ),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    unescaped(&page.body)
}

async fn page(state: &web::AppState, browser: &Browser, lang: &str) -> String {
    let page = send(
        state.clone(),
        get(
            "/ledger",
            &[("cookie", &browser.cookie), ("accept-language", lang)],
        ),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.header("cache-control"), "no-store");
    unescaped(&page.body)
}

/// The `<tr>` of the balances table for `member`, as words.
fn balance_row(html: &str, member: &str) -> String {
    let at = html
        .find(&format!("<tr data-member=\"{member}\""))
        .unwrap_or_else(|| panic!("no balance row for {member} in {html}"));
    let end = at + html[at..].find("</tr>").unwrap_or(0);
    words(&strip_tags(&html[at..end]))
}

/// The `<li>` of contribution `id`, as words.
fn contribution_item(html: &str, id: i64) -> String {
    let at = html
        .find(&format!("id=\"contribution-{id}\""))
        .unwrap_or_else(|| panic!("no contribution {id} in {html}"));
    let rest = &html[at + 1..];
    let end = rest
        .find("<li id=\"contribution-")
        .or_else(|| rest.find("</ol>"))
        .unwrap_or(rest.len());
    rest[..end].to_string()
}

/// The page with askama's character references turned back into characters, so
/// that French text reads as written ("l'avez", not "l&#39;avez").
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

fn strip_tags(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
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
    text
}

fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn today() -> String {
    Utc::now().date_naive().format("%Y-%m-%d").to_string()
}

#[tokio::test]
async fn the_ledger_is_for_members_only() {
    let (state, _tx) = with_residents();
    let stranger = send(state.clone(), get("/ledger", &[])).await;
    assert_eq!(stranger.status, StatusCode::UNAUTHORIZED);
    assert!(
        stranger.body.contains("/login?next=/ledger"),
        "{}",
        stranger.body
    );
    assert!(!stranger.body.contains("rita"));
    // The installer sees it, without the forms that need the role `resident`.
    let ivo = login(&state, "ivo").await;
    let html = page(&state, &ivo, "fr").await;
    assert!(html.contains("Registre des contributions"));
    assert!(!html.contains("action=\"/ledger/contributions#record\""));
    assert!(!html.contains("action=\"/ledger/transfers#transfer\""));
    assert!(html.contains("réservés aux résident·es"));
}

/// rita's 10 hours were validated a day ago: 100 Communs then, 100 x 0.98^(1/30) =
/// 99.93 now, and 100 x 0.98^(31/30) = 97.93 thirty days on (shown rounded down).
#[tokio::test]
async fn the_page_shows_balances_contributions_forms_and_the_chain() {
    let (state, _tx) = with_residents();
    let id = validated(&state, "rita", 10.0, Utc::now() - Duration::days(1));
    let rita = login(&state, "rita").await;
    let html = page(&state, &rita, "fr").await;
    assert!(html.contains("<html lang=\"fr\">"));
    assert_eq!(balance_row(&html, "rita"), "rita 99,93 97,93");
    assert_eq!(balance_row(&html, "aline"), "aline 0,00 0,00");
    assert!(html.contains("data-total=\"minted\">100,00<"), "{html}");
    assert!(html.contains("data-total=\"commons\">0,07<"), "{html}");
    assert!(html.contains("Votre solde : 99,93 Communs."));
    assert!(html.contains("Les Communs perdent 2 % de leur valeur tous les 30 jours"));
    // The chain, verified, behind a link for whoever wants to check it.
    assert!(html.contains("Journal intact"), "{html}");
    let details = html
        .find("<details class=\"chain-status\">")
        .unwrap_or_else(|| panic!("the chain is not behind a details link: {html}"));
    assert!(html[details..].contains("<summary>Vérifier le registre</summary>"));
    let head = state
        .journal
        .head()
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("empty journal"));
    assert!(html.contains(&head.hash));
    // The contribution with its attestations; no buttons on one's own.
    let item = contribution_item(&html, id);
    let text = words(&strip_tags(&item));
    assert!(
        text.contains(&format!("N° {id} · rita · réparation · 10 heures")),
        "{text}"
    );
    assert!(text.contains("validée · 100,00 Communs créés"), "{text}");
    assert!(text.contains("approuvée par aline"), "{text}");
    assert!(text.contains("approuvée par remi"), "{text}");
    assert!(text.contains("« I saw it done »"), "{text}");
    assert!(text.contains("C'est votre contribution"), "{text}");
    assert!(!item.contains("value=\"approve\""));
    // The forms, with the session's token.
    assert!(html.contains("action=\"/ledger/contributions#record\""));
    assert!(html.contains("action=\"/ledger/transfers#transfer\""));
    assert!(html.contains(&format!("name=\"csrf\" value=\"{}\"", rita.csrf)));
    assert!(html.contains(&format!(
            "name=\"date\" value=\"{}\"",
            Utc::now()
                .with_timezone(&chrono_tz::Europe::Paris)
                .date_naive()
        )));
    assert!(html.contains("<option value=\"aline\">aline</option>"));
    assert!(
        !html.contains("<option value=\"rita\">"),
        "no transfer to oneself"
    );
    // Not of the assembly: no parameters form.
    assert!(!html.contains("action=\"/ledger/parameters#parameters\""));

    let english = page(&state, &rita, "en-GB,en").await;
    assert_eq!(balance_row(&english, "rita"), "rita 99.93 97.93");
    assert!(english.contains("Contribution ledger"));
    assert!(
        english.contains(&format!("No. {id} · rita · repair · 10 hours")),
        "{english}"
    );
    assert!(english.contains("Communs lose 2% of their value every 30 days"));
}

#[tokio::test]
async fn a_resident_records_a_contribution_through_the_form() {
    let (state, _tx) = with_residents();
    let rita = login(&state, "rita").await;
    let reply = post_form(
        &state,
        &rita,
        "/ledger/contributions",
        &[
            ("category", "gardening"),
            ("hours", "2,5"),
            ("date", &today()),
            ("description", "Weeded the shared beds"),
        ],
        "fr",
    )
    .await;
    let html = follow(&state, &rita, &reply, "fr").await;
    let all = state
        .journal
        .contributions()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all.len(), 1);
    let c = &all[0];
    assert_eq!(
        (c.member.as_str(), c.category, c.hours.centihours()),
        ("rita", ledger::Category::Gardening, 250)
    );
    assert_eq!(c.description, "Weeded the shared beds");
    assert!(
        html.contains(&format!("Votre contribution est enregistrée (n° {})", c.id)),
        "{html}"
    );
    let text = words(&strip_tags(&contribution_item(&html, c.id)));
    assert!(text.contains("jardinage · 2,5 heures"), "{text}");
    assert!(
        text.contains("en attente · approbations : 0 sur 2"),
        "{text}"
    );
}

#[tokio::test]
async fn a_form_with_mistakes_comes_back_as_typed_with_each_problem_named() {
    let (state, _tx) = with_residents();
    let rita = login(&state, "rita").await;
    let reply = post_form(
        &state,
        &rita,
        "/ledger/contributions",
        &[
            ("category", "care"),
            ("hours", "beaucoup"),
            ("date", "2099-01-01"),
            ("description", "  "),
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
    let html = &unescaped(&reply.body);
    assert!(
        html.contains("La contribution n'a pas été enregistrée"),
        "{html}"
    );
    assert!(
        html.contains("Heures : « beaucoup » n'est pas un nombre."),
        "{html}"
    );
    assert!(
        html.contains("Date : le 1er janvier 2099 n'est pas encore arrivé."),
        "{html}"
    );
    assert!(
        html.contains("Dites en quelques mots ce que vous avez fait."),
        "{html}"
    );
    assert!(html.contains("name=\"hours\" value=\"beaucoup\""));
    assert!(html.contains("name=\"date\" value=\"2099-01-01\""));
    assert!(html.contains("<option value=\"care\" selected>"));
    assert!(
        state
            .journal
            .contributions()
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty()
    );

    let reply = post_form(
        &state,
        &rita,
        "/ledger/contributions",
        &[
            ("category", "care"),
            ("hours", "30"),
            ("date", &today()),
            ("description", "All day and night"),
        ],
        "en",
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply
            .body
            .contains("Hours: at most 24 in one contribution (one day)."),
        "{}",
        reply.body
    );
}

/// aline and remi approve rita's contribution from the page; the second approval
/// validates it. rita's own page has no buttons; a rejection needs a reason.
#[tokio::test]
async fn members_attest_each_others_contributions_from_the_page() {
    let (state, _tx) = with_residents();
    let contribution = ledger::NewContribution {
        category: ledger::Category::Teaching,
        hours: 1.5,
        date: Utc::now().date_naive(),
        description: "Reading lesson".into(),
    };
    let id = state
        .journal
        .record_contribution("rita", &contribution, Utc::now())
        .unwrap_or_else(|e| panic!("{e}"))
        .seq;
    let uri = format!("/ledger/contributions/{id}/attestations");

    let rita = login(&state, "rita").await;
    let own = contribution_item(&page(&state, &rita, "fr").await, id);
    assert!(!own.contains("value=\"approve\""), "{own}");
    // Forcing the form anyway: the ledger refuses, the page says why.
    let reply = post_form(
        &state,
        &rita,
        &uri,
        &[("verdict", "approve"), ("comment", "")],
        "fr",
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply
            .body
            .contains("Vous ne pouvez pas attester votre propre contribution"),
        "{}",
        reply.body
    );

    let aline = login(&state, "aline").await;
    let theirs = contribution_item(&page(&state, &aline, "fr").await, id);
    assert!(
        theirs.contains(&format!("action=\"{uri}#contribution-{id}\"")),
        "{theirs}"
    );
    assert!(theirs.contains("name=\"verdict\" value=\"approve\""));
    assert!(theirs.contains("name=\"verdict\" value=\"reject\""));

    let reply = post_form(
        &state,
        &aline,
        &uri,
        &[("verdict", "reject"), ("comment", " ")],
        "fr",
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let item = contribution_item(&unescaped(&reply.body), id);
    assert!(
        item.contains("Pour refuser, dites pourquoi dans le commentaire."),
        "{item}"
    );

    let reply = post_form(
        &state,
        &aline,
        &uri,
        &[("verdict", "approve"), ("comment", "Bravo")],
        "fr",
    )
    .await;
    let html = follow(&state, &aline, &reply, "fr").await;
    assert!(
        html.contains(&format!(
            "Votre avis sur la contribution n° {id} est enregistré."
        )),
        "{html}"
    );
    let item = contribution_item(&html, id);
    assert!(item.contains("Vous l'avez approuvée."), "{item}");
    assert!(!item.contains("value=\"approve\""));
    let again = post_form(&state, &aline, &uri, &[("verdict", "approve")], "fr").await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        again
            .body
            .contains("Vous avez déjà donné votre avis sur cette contribution.")
    );

    let remi = login(&state, "remi").await;
    let reply = post_form(
        &state,
        &remi,
        &uri,
        &[("verdict", "approve"), ("comment", "")],
        "en",
    )
    .await;
    let html = follow(&state, &remi, &reply, "en").await;
    assert!(
        html.contains(&format!(
            "Your verdict is recorded: contribution no. {id} is validated, 15.00 Communs minted."
        )),
        "{html}"
    );
    let c = state
        .journal
        .contribution(id)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("gone"));
    assert_eq!(c.state, ledger::ContributionState::Validated);

    let missing = post_form(
        &state,
        &remi,
        "/ledger/contributions/999/attestations",
        &[("verdict", "approve")],
        "fr",
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        unescaped(&missing.body).contains("Il n'y a pas de contribution n° 999."),
        "{}",
        missing.body
    );
}

#[tokio::test]
async fn a_resident_transfers_communs_and_cannot_overdraw() {
    let (state, _tx) = with_residents();
    validated(&state, "rita", 10.0, Utc::now() - Duration::days(1));
    let rita = login(&state, "rita").await;
    let reply = post_form(
        &state,
        &rita,
        "/ledger/transfers",
        &[("to", "aline"), ("amount", "500"), ("memo", "Le vélo")],
        "fr",
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    let html = &unescaped(&reply.body);
    assert!(html.contains("Le transfert n'a pas été fait"));
    // The balance to the millionth (it melts by the second), the amount as asked.
    assert!(html.contains("Vous avez 99,93"), "{html}");
    assert!(
        html.contains("Communs (fonte comprise), moins que les 500 demandés."),
        "{html}"
    );
    assert!(
        html.contains("<option value=\"aline\" selected>aline</option>"),
        "{html}"
    );
    assert!(html.contains("name=\"amount\" value=\"500\""));
    assert!(html.contains("name=\"memo\" value=\"Le vélo\""));

    let reply = post_form(
        &state,
        &rita,
        "/ledger/transfers",
        &[("to", ""), ("amount", "1,2345678")],
        "fr",
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply.body.contains("À : ce champ doit être rempli."),
        "{}",
        reply.body
    );
    assert!(
        unescaped(&reply.body).contains("n'est pas un montant de Communs"),
        "{}",
        reply.body
    );

    let reply = post_form(
        &state,
        &rita,
        "/ledger/transfers",
        &[("to", "aline"), ("amount", "12,5"), ("memo", "Le vélo")],
        "fr",
    )
    .await;
    let html = follow(&state, &rita, &reply, "fr").await;
    assert!(html.contains("12,50 Communs transférés à aline."), "{html}");
    assert!(html.contains("12,50 Communs donnés à aline le"), "{html}");
    assert!(html.contains("« Le vélo »"));
    // Rounded down: from the millisecond after it arrived, demurrage has taken
    // millionths.
    let row = balance_row(&html, "aline");
    assert!(
        row == "aline 12,49 12,24" || row == "aline 12,50 12,24",
        "{row}"
    );
    let aline = login(&state, "aline").await;
    assert!(
        page(&state, &aline, "fr")
            .await
            .contains("12,50 Communs reçus de rita le")
    );
}

#[tokio::test]
async fn the_assembly_adopts_ledger_rules_from_the_page() {
    let (state, _tx) = with_residents();
    let aline = login(&state, "aline").await;
    let html = page(&state, &aline, "fr").await;
    assert!(html.contains("action=\"/ledger/parameters#parameters\""));
    assert!(html.contains("name=\"attestations_needed\" value=\"2\""));
    assert!(html.contains("name=\"rate.energy_sharing\" value=\"10\""));
    assert!(html.contains("name=\"demurrage_rate_pct\" value=\"2\""));
    assert!(
        html.contains("href=\"/assembly\""),
        "the assembly's panel is one click away"
    );
    let fields = |present: &'static str| {
        vec![
            ("attestations_needed", "3"),
            ("rate.care", "12"),
            ("rate.teaching", "10"),
            ("rate.repair", "10"),
            ("rate.gardening", "10"),
            ("rate.cooking", "10"),
            ("rate.energy_sharing", "10"),
            ("rate.other", "8"),
            ("demurrage_rate_pct", "1,5"),
            ("demurrage_period_days", "30"),
            ("assembly_date", "2026-03-12"),
            ("present", present),
            ("quorum_required", "10"),
            ("votes_for", "7"),
            ("votes_against", "1"),
            ("votes_abstain", "0"),
            ("minutes", "Trois avis pour valider, fonte adoucie."),
        ]
    };
    let reply = post_form(&state, &aline, "/ledger/parameters", &fields("8"), "fr").await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    assert!(
        reply
            .body
            .contains("Quorum non atteint : 8 membres présents pour 10 requis."),
        "{}",
        reply.body
    );
    assert!(
        reply
            .body
            .contains("name=\"demurrage_rate_pct\" value=\"1,5\"")
    );
    assert!(reply.body.contains("name=\"rate.other\" value=\"8\""));
    assert_eq!(
        state
            .journal
            .ledger_parameters()
            .unwrap_or_else(|e| panic!("{e}")),
        ledger::LedgerParameters::default()
    );

    let reply = post_form(&state, &aline, "/ledger/parameters", &fields("12"), "fr").await;
    let html = follow(&state, &aline, &reply, "fr").await;
    assert!(
        html.contains("Les nouvelles règles sont adoptées"),
        "{html}"
    );
    let p = state
        .journal
        .ledger_parameters()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (
            p.attestations_needed,
            p.demurrage_rate_ppm,
            p.demurrage_period_days
        ),
        (3, 15_000, 30)
    );
    assert_eq!(
        p.rate(ledger::Category::Care),
        ledger::Communs::from_whole(12)
    );
    assert_eq!(
        p.rate(ledger::Category::Other),
        ledger::Communs::from_whole(8)
    );
    assert!(html.contains("Une contribution est validée par 3 approbations d'autres membres."));
    assert!(html.contains("Les Communs perdent 1,5 % de leur valeur tous les 30 jours"));
    assert!(
        html.contains(
            "7 pour, 1 contre, 0 abstention ; 12 présents pour un quorum de 10 ; saisi par aline"
        ),
        "{html}"
    );

    // A resident who is not of the assembly cannot.
    let rita = login(&state, "rita").await;
    let reply = post_form(&state, &rita, "/ledger/parameters", &fields("12"), "fr").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

/// The wall screen says how many hours of contributions were validated this
/// week, beside the energy figures, and `/api/live` carries the same figure.
#[tokio::test]
async fn the_wall_shows_this_weeks_validated_hours() {
    let (state, _tx) = with_residents();
    let before = send(state.clone(), get("/", &[])).await;
    assert!(
        before
            .body
            .contains("data-field=\"contributions.hours_validated_this_week\">0 heure<"),
        "{}",
        before.body
    );
    validated(&state, "rita", 10.0, Utc::now());
    validated(&state, "remi", 2.5, Utc::now());
    let wall = send(state.clone(), get("/", &[])).await;
    assert_eq!(wall.status, StatusCode::OK);
    let html = &wall.body;
    let panel_at = html
        .find("class=\"figure figure-week\"")
        .unwrap_or_else(|| panic!("no panel: {html}"));
    let panel = &html[panel_at..panel_at + html[panel_at..].find("</div>").unwrap_or(0)];
    assert_eq!(
        words(&strip_tags(&format!("<{panel}"))),
        "Cette semaine 12,5 heures de contributions validées"
    );
    // Inside the figures, after the headroom.
    let figures = html
        .find("class=\"figures has-week\"")
        .unwrap_or_else(|| panic!("{html}"));
    let headroom = html.find("figure-headroom").unwrap_or(usize::MAX);
    assert!(figures < headroom && headroom < panel_at);
    // Community totals only: no member's name on the public wall.
    assert!(!html.contains("rita"));

    let en = send(state.clone(), get("/?lang=en", &[])).await;
    assert!(
        words(&strip_tags(&en.body)).contains("This week 12.5 hours of contributions validated")
    );
    let live = send(state.clone(), get("/api/live", &[])).await.json();
    assert_eq!(live["contributions"]["hours_validated_this_week"], 12.5);

    // The kiosk (no journal problems, no members) still shows its panel.
    let (plain, _tx) = crate::support::state();
    let html = send(plain, get("/", &[])).await.body;
    assert!(html.contains("class=\"figure figure-week\""));
}

/// rita holds 99,93… Communs after a day of demurrage: the page shows what she can
/// send (rounded down), "send all" sends every millionth, and a refusal lands at
/// the form while a success lands on its confirmation.
#[tokio::test]
async fn a_resident_sends_all_she_holds() {
    let (state, _tx) = with_residents();
    validated(&state, "rita", 10.0, Utc::now() - Duration::days(1));
    let rita = login(&state, "rita").await;
    let held = state
        .journal
        .balance("rita", Utc::now())
        .unwrap_or_else(|e| panic!("{e}"));
    let html = page(&state, &rita, "fr").await;
    let floor = held.micro() / 10_000;
    let shown = format!("{},{:02}", floor / 100, floor % 100);
    assert!(
        balance_row(&html, "rita").starts_with(&format!("rita {shown} ")),
        "{} for {held}",
        balance_row(&html, "rita")
    );
    assert!(html.contains(&format!("Votre solde : {shown} Communs.")));
    assert!(html.contains("name=\"all\" value=\"1\""), "{html}");

    // A refusal comes back anchored at its form.
    let reply = post_form(
        &state,
        &rita,
        "/ledger/transfers",
        &[("to", ""), ("all", "1")],
        "fr",
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body.contains("id=\"transfer\""));
    assert!(reply.body.contains("action=\"/ledger/transfers#transfer\""));

    // "Send all" needs no amount, and ignores one typed.
    let reply = post_form(
        &state,
        &rita,
        "/ledger/transfers",
        &[("to", "aline"), ("amount", "1"), ("memo", ""), ("all", "1")],
        "fr",
    )
    .await;
    assert!(
        reply.header("location").ends_with("#done"),
        "{}",
        reply.header("location")
    );
    let html = follow(&state, &rita, &reply, "fr").await;
    assert!(html.contains("id=\"done\""), "{html}");
    let now = Utc::now();
    let left = state
        .journal
        .balance("rita", now)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(left, ledger::Communs::ZERO);
    let aline = state
        .journal
        .balance("aline", now)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        aline.micro() > held.micro() - 10_000 && aline.micro() <= held.micro(),
        "aline got {aline} of rita's {held}"
    );
    assert_eq!(balance_row(&html, "rita"), "rita 0,00 0,00");
}
