//! The installer's page in a real browser (headless Chromium through
//! chromedriver): an installer signs in, reads the devices' states, probes the
//! project's SunSpec simulator from the form and finds the block to paste.
//! Screenshots of the devices and of the probe's result are kept as test
//! artefacts (`$CARGO_TARGET_TMPDIR/screenshots/installer-*.png`).

use crate::installer::{installer_metrics, installer_snapshot, sunspec_simulator};
use crate::ledger_browser::{keep_screenshot, serve, stop};
use crate::support::{PASSWORD, with_members_in};
use crate::webdriver::{self, Driver};

fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installer_reads_the_devices_and_probes_the_simulator_in_a_browser() {
    if !webdriver::available() {
        return;
    }
    let port = sunspec_simulator().await;
    let (state, _tx) = with_members_in(installer_snapshot(), installer_metrics());
    let (base, shutdown, server) = serve(state).await;
    let browser = Driver::start(1280, 1500).await;

    browser.goto(&format!("{base}/installer?lang=fr")).await;
    browser
        .find("main.message a[href^='/login']")
        .await
        .click()
        .await;
    browser.find("input[name=name]").await.fill("ivo").await;
    browser
        .find("input[name=password]")
        .await
        .fill(PASSWORD)
        .await;
    browser
        .find("form.account-form button[type=submit]")
        .await
        .click()
        .await;
    let url = browser.current_url().await;
    assert!(url.contains("/installer"), "{url}");

    // Each state in words and icon, not by colour alone.
    for (device, state) in [
        ("roof-school", "◐ Dégradé"),
        ("grid-meter", "✖ Hors service"),
        ("clinic-meter", "✔ En service"),
    ] {
        let text = words(
            &browser
                .text(&format!("article[data-device='{device}'] .device-state"))
                .await,
        );
        assert!(text.starts_with(state), "{device}: {text}");
    }
    let row = words(
        &browser
            .text("article[data-device='roof-school'] tr[data-metric='power_w']")
            .await,
    );
    assert!(
        row.starts_with("power_w 4321 W holding 40084 = [10E1], SF 40085 = [0000] (103.W)"),
        "{row}"
    );
    keep_screenshot(&browser.screenshot().await, "installer-devices-fr.png");

    // The probe, typed as an installer would.
    browser
        .find("input[name=address]")
        .await
        .fill(&format!("modbus-tcp://127.0.0.1:{port}/1"))
        .await;
    browser
        .find("form.probe-form button[type=submit]")
        .await
        .click()
        .await;
    let result = words(&browser.text(".probe-result").await);
    for part in [
        "103 Inverter (Three Phase) 50 40070 décodé",
        "power_w 4321 W holding 40084 = [10E1], SF 40085 = [0000] (103.W)",
        "[[device]]",
        &format!("modbus = {{ host = \"127.0.0.1\", port = {port}, unit = 1 }}"),
    ] {
        assert!(result.contains(part), "{part:?} not in: {result}");
    }
    // The form's address ends with #probe: the browser shows the result.
    let url = browser.current_url().await;
    assert!(url.ends_with("/installer/probe#probe"), "{url}");
    keep_screenshot(&browser.screenshot().await, "installer-probe-fr.png");

    browser.quit().await;
    stop(shutdown, server).await;
}
