//! The whole ceremony of a draw by lot in a real browser (headless Chromium through
//! chromedriver), in French: aline (assembly) lists the attribute members may
//! declare, rita opts in declaring her building, aline's infeasible quotas are
//! refused with the reason before anything is announced, then the draw is
//! announced, the die entered before witnesses on the public draw page, and the
//! names come one after the other; anyone can watch it without signing in; a
//! member of the panel declines and is replaced. The page, big type for the wall
//! screen, is kept as a screenshot.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;

use crate::ledger_browser::{keep_screenshot, serve, stop};
use crate::support::{get, send, with_residents};
use crate::webdriver::{self, Driver, sign_in};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panel_is_announced_drawn_before_witnesses_and_watched_in_a_browser() {
    if !webdriver::available() {
        return;
    }
    let (state, _tx) = with_residents();
    let journal = state.journal.clone();
    let public = state.clone();
    let (base, shutdown, server) = serve(state).await;
    let browser = Driver::start(1920, 1080).await;

    // aline lists what members may declare: the building, nothing else.
    sign_in(&browser, &base, "aline", "/sortition").await;
    browser
        .find("form[action='/assembly/sortition/keys#keys'] input[name=keys]")
        .await
        .fill("batiment")
        .await;
    browser
        .find("form[action='/assembly/sortition/keys#keys'] button[type=submit]")
        .await
        .click()
        .await;
    assert_eq!(
        journal.sortition_keys().unwrap_or_else(|e| panic!("{e}")),
        ["batiment"]
    );

    // rita opts in, declaring her building.
    sign_in(&browser, &base, "rita", "/sortition").await;
    browser
        .find("input[name='attr.batiment']")
        .await
        .fill("A")
        .await;
    browser
        .find("form[action='/sortition/opt#opt-in'] button[value=in]")
        .await
        .click()
        .await;
    let done = browser.text(".form-ok").await;
    assert!(done.contains("vivier"), "{done}");
    // The others opt in through the journal: two of building B, two of A, one
    // who declares nothing.
    for (member, building) in [
        ("remi", Some("B")),
        ("sara", Some("B")),
        ("aline", Some("A")),
        ("ivo", Some("A")),
        ("ada", None),
    ] {
        let attributes: BTreeMap<String, String> = building
            .map(|b| [("batiment".to_string(), b.to_string())].into())
            .unwrap_or_default();
        journal
            .opt_in_sortition(member, true, &attributes, Utc::now())
            .unwrap_or_else(|e| panic!("{member}: {e}"));
    }

    // aline announces: first with quotas the pool cannot meet.
    sign_in(&browser, &base, "aline", "/sortition").await;
    let announce = "form[action='/assembly/sortition/announce#announce']";
    browser
        .find(&format!("{announce} input[name=title]"))
        .await
        .fill("Priorités d'énergie pour l'hiver")
        .await;
    browser
        .find(&format!("{announce} input[name=size]"))
        .await
        .fill("3")
        .await;
    browser
        .find(&format!("{announce} select[name=strata_key]"))
        .await
        .select("batiment")
        .await;
    browser
        .find(&format!("{announce} textarea[name=quotas]"))
        .await
        .fill("B: 3")
        .await;
    let head = journal
        .head()
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|e| e.seq);
    browser
        .find(&format!("{announce} button[type=submit]"))
        .await
        .click()
        .await;
    let refused = browser.text("#announce .form-error").await;
    assert!(
        refused.contains("Strate B : le minimum 3 dépasse ses 2 membres dans le vivier"),
        "{refused}"
    );
    assert_eq!(
        journal
            .head()
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|e| e.seq),
        head,
        "nothing announced"
    );
    // The form kept what was typed; the quotas corrected.
    browser
        .find(&format!("{announce} textarea[name=quotas]"))
        .await
        .fill("A: 1-2\nB: 1")
        .await;
    browser
        .find(&format!("{announce} button[type=submit]"))
        .await
        .click()
        .await;
    let draws = journal.draws().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(draws.len(), 1);
    let id = draws[0].id;
    assert_eq!(draws[0].pool.len(), 6);
    let url = browser.current_url().await;
    assert!(url.contains(&format!("/sortition/{id}")), "{url}");

    // The draw page, for the wall: the pool, the seats, the quotas, the die.
    assert_eq!(browser.text("[data-figure=pool]").await, "6");
    assert_eq!(browser.text("[data-figure=seats]").await, "3");
    let quotas = browser.text("table.ceremony-quotas").await;
    assert!(
        quotas.contains("batiment") && quotas.contains("(non déclaré)"),
        "{quotas}"
    );
    browser.find("input[name=rolls]").await.fill("4 2 6").await;
    browser
        .find("textarea[name=witnesses]")
        .await
        .fill("Marie Dupont\nJean Martin")
        .await;
    browser.find("button.draw-button").await.click().await;

    // The names come one by one; wait for the last to be shown.
    let drawn = journal
        .draw(id)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no draw {id}"));
    let result = drawn
        .drawn
        .clone()
        .unwrap_or_else(|| panic!("draw {id} was not made"));
    assert_eq!(result.rolls, [4, 2, 6]);
    assert_eq!(result.witnesses, ["Marie Dupont", "Jean Martin"]);
    let first_opacity = browser
        .execute("return getComputedStyle(document.querySelector('.panel-names li:last-child')).opacity;")
        .await;
    assert_eq!(first_opacity, "0", "the last name is not shown at once");
    let mut shown = false;
    for _ in 0..40 {
        let opacity = browser
            .execute("return getComputedStyle(document.querySelector('.panel-names li:last-child')).opacity;")
            .await;
        if opacity == "1" {
            shown = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(shown, "the names never all came");
    let names = browser
        .execute(
            "return Array.from(document.querySelectorAll('.panel-names li .name')).map(e => e.textContent);",
        )
        .await;
    assert_eq!(names, serde_json::json!(result.selected));
    // The quotas hold: at least one of A, one of B, at most two of A.
    let stratum = |name: &str| {
        drawn
            .pool
            .iter()
            .find(|m| m.member == name)
            .map(|m| m.stratum.clone())
            .unwrap_or_default()
    };
    let of = |s: &str| result.selected.iter().filter(|m| stratum(m) == s).count();
    assert!(
        (1..=2).contains(&of("A")) && of("B") >= 1,
        "{:?}",
        result.selected
    );
    keep_screenshot(&browser.screenshot().await, "sortition-draw-fr.png");

    // Anyone may watch without signing in; nobody without the role enters a die.
    let watched = send(public.clone(), get(&format!("/sortition/{id}"), &[])).await;
    assert_eq!(watched.status, axum::http::StatusCode::OK);
    for name in &result.selected {
        assert!(watched.body.contains(name.as_str()), "{name} not shown");
    }
    assert!(!watched.body.contains("name=\"rolls\""));

    // A member of the panel declines; the replacement comes from the same seed.
    let decliner = result.selected[0].clone();
    sign_in(&browser, &base, &decliner, &format!("/sortition/{id}")).await;
    browser
        .find(&format!(
            "form[action='/sortition/{id}/decline'] button[type=submit]"
        ))
        .await
        .click()
        .await;
    let after = journal
        .draw(id)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no draw {id}"));
    assert_eq!(after.declines.len(), 1);
    assert_eq!(after.declines[0].member, decliner);
    assert!(!after.seated.contains(&decliner));
    let declines = browser.text("p.decline").await;
    assert!(declines.contains(&decliner), "{declines}");
    let report = journal.verify().unwrap_or_else(|e| panic!("{e}"));
    assert!(report.is_intact(), "{report}");
    browser.quit().await;
    stop(shutdown, server).await;
}
