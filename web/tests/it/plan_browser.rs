//! The planning board in a real browser (headless Chromium through chromedriver),
//! the whole flow with plain forms: rita posts a need on `/plan`, aline offers to
//! meet it, rita accepts, aline records the contribution naming the commitment on
//! `/ledger`, remi and sara attest it, Communs are minted and the need is closed.
//! A screenshot of the board is kept as a test artefact.

use chrono::Utc;

use crate::ledger_browser::{keep_screenshot, serve, stop};
use crate::support::with_residents;
use crate::webdriver::{self, Driver, sign_in};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_need_is_posted_met_committed_fulfilled_and_closed_in_a_browser() {
    if !webdriver::available() {
        return;
    }
    let (state, _tx) = with_residents();
    let journal = state.journal.clone();
    let (base, shutdown, server) = serve(state).await;
    let browser = Driver::start(1280, 2400).await;

    // rita posts her need.
    sign_in(&browser, &base, "rita", "/plan").await;
    browser
        .find("select[name=direction]")
        .await
        .select("need")
        .await;
    browser
        .find("select[name=action]")
        .await
        .select("work")
        .await;
    browser
        .find("input[name=class]")
        .await
        .fill("electrician")
        .await;
    browser.find("input[name=quantity]").await.fill("2").await;
    browser
        .find("select[name=unit]")
        .await
        .select("hours")
        .await;
    browser
        .find("textarea[name=description]")
        .await
        .fill("Réparer l'éclairage du local vélo")
        .await;
    browser
        .find("form[action='/plan/intents#post'] button[type=submit]")
        .await
        .click()
        .await;
    let status = browser.text(".form-ok").await;
    let intents = journal
        .intents(Utc::now())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(intents.len(), 1, "{intents:?}");
    let intent = intents[0].id;
    assert!(status.contains(&intent.to_string()), "{status}");
    assert_eq!(intents[0].author, "rita");
    assert_eq!(intents[0].class, "electrician");

    // aline offers to meet it: the commitment form under it, all that remains.
    sign_in(&browser, &base, "aline", "/plan").await;
    browser
        .find(&format!(
            "form[action='/plan/intents/{intent}/commitments#intent-{intent}'] input[name=note]"
        ))
        .await
        .fill("Samedi matin")
        .await;
    browser
        .find(&format!(
            "form[action='/plan/intents/{intent}/commitments#intent-{intent}'] button[type=submit]"
        ))
        .await
        .click()
        .await;
    let commitments = journal.commitments().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(commitments.len(), 1, "{commitments:?}");
    let commitment = commitments[0].id;
    assert_eq!(commitments[0].provider, "aline");
    assert_eq!(commitments[0].state, ledger::CommitmentState::Proposed);

    // rita accepts it.
    sign_in(&browser, &base, "rita", "/plan").await;
    browser
        .find(&format!(
            "#commitment-{commitment} form.accept-form button[type=submit]"
        ))
        .await
        .click()
        .await;
    let state_now = journal
        .commitment(commitment)
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|c| c.state);
    assert_eq!(state_now, Some(ledger::CommitmentState::Accepted));
    keep_screenshot(&browser.screenshot().await, "plan-accepted-fr.png");

    // aline records the work on the ledger, naming the commitment.
    sign_in(&browser, &base, "aline", "/ledger").await;
    browser
        .find("select[name=category]")
        .await
        .select("repair")
        .await;
    browser.find("input[name=hours]").await.fill("2").await;
    browser
        .find("form[action='/ledger/contributions#record'] textarea[name=description]")
        .await
        .fill("Éclairage du local vélo réparé")
        .await;
    browser
        .find("select[name=commitment]")
        .await
        .select(&commitment.to_string())
        .await;
    browser
        .find("form[action='/ledger/contributions#record'] button[type=submit]")
        .await
        .click()
        .await;
    let contribution = journal
        .contributions()
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .find(|c| c.member == "aline")
        .unwrap_or_else(|| panic!("aline's contribution was not recorded"))
        .id;

    // remi and sara attest it.
    for attester in ["remi", "sara"] {
        sign_in(&browser, &base, attester, "/ledger").await;
        browser
            .find(&format!(
                "#contribution-{contribution} button[name=verdict][value=approve]"
            ))
            .await
            .click()
            .await;
    }
    let recorded = journal
        .contributions()
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .find(|c| c.id == contribution)
        .unwrap_or_else(|| panic!("no contribution {contribution}"));
    assert_eq!(recorded.state, ledger::ContributionState::Validated);
    assert!(
        recorded.minted.is_some_and(|m| m > ledger::Communs::ZERO),
        "{recorded:?}"
    );
    let closed = journal
        .intent(intent, Utc::now())
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no intent {intent}"));
    assert_eq!(closed.state, ledger::IntentState::Closed);

    // rita's board: the need is gone from the open ones, the commitment fulfilled.
    sign_in(&browser, &base, "rita", "/plan").await;
    let needs = browser.text("section.needs").await;
    assert!(!needs.contains("local vélo"), "{needs}");
    let item = browser
        .execute(&format!(
            "return document.querySelector('#commitment-{commitment}').dataset.state;"
        ))
        .await;
    assert_eq!(item, "fulfilled");
    let report = journal.verify().unwrap_or_else(|e| panic!("{e}"));
    assert!(report.is_intact(), "{report}");
    keep_screenshot(&browser.screenshot().await, "plan-fr.png");
    browser.quit().await;
    stop(shutdown, server).await;
}
