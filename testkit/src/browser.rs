//! Debian's headless Chromium, run once for a page: its standard output (a DOM dump,
//! or nothing when it writes a screenshot). A fresh profile each time, named so that
//! `.ci/run` can tell a browser that outlived its test; the browser and every
//! helper process it started are gone when [`run_headless`] returns, also when it
//! fails or times out.

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use crate::process::Reaper;

/// Where Debian puts Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// How the tests' browser profile directories are named: `.ci/run` looks for
/// processes that still use one after the suite.
pub const BROWSER_DIR_PREFIX: &str = "communalia-browser-";
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// `None` (after saying so) when there is no browser and none is required.
pub fn chromium() -> Option<&'static Path> {
    crate::peers::have_file(CHROMIUM, "chromium").then(|| Path::new(CHROMIUM))
}

/// Runs headless `browser` with `args` and a fresh profile; its standard output.
/// Panics, naming why, when it fails, times out or leaves a process behind.
pub async fn run_headless(browser: &Path, args: &[String]) -> String {
    let profile = tempfile::Builder::new()
        .prefix(BROWSER_DIR_PREFIX)
        .tempdir()
        .unwrap_or_else(|e| panic!("temp dir: {e}"));
    let reaper = Reaper::new();
    let mut command = Command::new(browser);
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
        // Chromium puts scratch directories under TMPDIR: in the profile's
        // directory, they go with it.
        .env("TMPDIR", profile.path())
        .args(args)
        .kill_on_drop(true);
    let output = tokio::time::timeout(BROWSER_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("chromium did not finish within {BROWSER_TIMEOUT:?}: {args:?}"))
        .unwrap_or_else(|e| panic!("running chromium: {e}"));
    assert!(
        output.status.success(),
        "chromium failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let mut survivors = reaper.reap();
    survivors.extend(crate::process::reap_mentioning(
        &profile.path().to_string_lossy(),
    ));
    assert!(survivors.is_empty(), "chromium left {survivors:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}
