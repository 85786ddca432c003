//! The region's page in a real browser: Debian's headless Chromium renders it and
//! its DOM is read back, and a screenshot is kept under the target directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";
/// `.ci/run` looks for processes still using a profile of this name.
const BROWSER_DIR_PREFIX: &str = "communalia-browser-";
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs headless Chromium with a fresh profile; its standard output. The browser
/// and its helpers are gone when this returns.
async fn run_chromium(args: &[String]) -> String {
    let profile = tempfile::Builder::new()
        .prefix(BROWSER_DIR_PREFIX)
        .tempdir()
        .unwrap_or_else(|e| panic!("temp dir: {e}"));
    let reaper = testkit::process::Reaper::new();
    let mut command = Command::new(CHROMIUM);
    reaper.prepare_tokio(&mut command);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!(
            "--user-data-dir={}",
            profile.path().join("profile").display()
        ))
        .env("TMPDIR", profile.path())
        .args(args)
        .kill_on_drop(true);
    let output = tokio::time::timeout(BROWSER_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("chromium did not finish within {BROWSER_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("running chromium: {e}"));
    assert!(
        output.status.success(),
        "chromium failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let survivors = reaper.reap();
    assert!(survivors.is_empty(), "chromium left {survivors:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// The French page as Chromium renders it: every node, the stale one flagged in
/// words, the one never heard from too; and a 1280x800 screenshot.
pub(crate) async fn region_page_in_a_browser(base: &str) {
    if !testkit::peers::have_file(CHROMIUM, "chromium") {
        return;
    }
    let url = format!("{base}/?lang=fr");
    let dom = run_chromium(&["--dump-dom".to_string(), url.clone()]).await;
    for name in ["Les Tilleuls", "Les Platanes", "Le Moulin", "Le Hameau"] {
        assert!(dom.contains(name), "{name} not in the rendered page");
    }
    assert!(dom.contains("Pas à jour"), "the stale node is not flagged");
    assert!(
        dom.contains("Jamais entendu"),
        "the silent node is not flagged"
    );
    assert!(dom.contains("Qui a du surplus maintenant"));
    let shot = screenshot_dir().join("region-1280x800.png");
    run_chromium(&[
        "--window-size=1280,800".to_string(),
        format!("--screenshot={}", shot.display()),
        url,
    ])
    .await;
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot {} is {size} bytes",
        shot.display()
    );
}
