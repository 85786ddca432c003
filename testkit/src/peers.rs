//! Outside peers: present, skipped, or required.

use std::path::Path;
use std::process::{Command, Stdio};

/// The variable `.ci/run` sets: a test whose peer is missing then fails instead of
/// skipping, so that CI never passes by testing nothing.
pub const REQUIRE_PEERS: &str = "COMMUNALIA_REQUIRE_PEERS";

/// Whether tests needing an outside peer must fail instead of skipping.
pub fn peers_required() -> bool {
    std::env::var(REQUIRE_PEERS).is_ok_and(|v| v == "1")
}

/// Prints `skipped: <peer> not available`, or fails when peers are required.
pub fn skip(peer: &str) {
    if peers_required() {
        panic!("{peer} not available and {REQUIRE_PEERS}=1");
    }
    println!("skipped: {peer} not available");
}

/// `true` when `path` exists; otherwise [`skip`]s naming `peer` and returns `false`.
pub fn have_file(path: &str, peer: &str) -> bool {
    if Path::new(path).exists() {
        return true;
    }
    skip(&format!("{peer} ({path})"));
    false
}

/// Whether `python3 -c "import <module>"` succeeds.
pub fn python_has(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `true` when python3 can import `module`; otherwise [`skip`]s with the pip line
/// that installs `package`.
pub fn have_python(module: &str, package: &str) -> bool {
    if python_has(module) {
        return true;
    }
    skip(&format!("{module} (python3 -m pip install '{package}')"));
    false
}
