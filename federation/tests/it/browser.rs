//! The region's page in a real browser: Debian's headless Chromium renders it and
//! its DOM is read back, and a screenshot is kept under the target directory.

use std::path::{Path, PathBuf};

use testkit::browser::{CHROMIUM, run_headless};

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
    let dom = run_headless(
        Path::new(CHROMIUM),
        &["--dump-dom".to_string(), url.clone()],
    )
    .await;
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
    run_headless(
        Path::new(CHROMIUM),
        &[
            "--window-size=1280,800".to_string(),
            format!("--screenshot={}", shot.display()),
            url,
        ],
    )
    .await;
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot {} is {size} bytes",
        shot.display()
    );
}
