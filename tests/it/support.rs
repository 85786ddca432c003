//! Spawning the node and talking to it like any client would.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_communalia");

/// Held by the tests whose figures are timings of a running node (a value must
/// reach the wall within its gap, twenty evaluations a second): two such nodes,
/// debug builds evaluating twenty times a second each, would share this machine's
/// two cores and measure each other. The other tests run beside them as usual.
pub(crate) static ONE_TIMED_NODE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub(crate) use testkit::net::{free_port, tcp_open};
pub(crate) use testkit::peers::{python_has, skip};
pub(crate) use testkit::process::Peer;

pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!(
            "communalia-it-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `communalia` process, killed on drop.
pub(crate) struct NodeProc {
    pub(crate) node: Peer,
    pub(crate) base: String,
    /// Kept so that the node never writes into a closed pipe.
    pub(crate) _lines: mpsc::Receiver<String>,
}

impl NodeProc {
    /// SIGKILLs the node, as a power cut would, and waits for it to be gone.
    pub(crate) fn kill(&mut self) {
        let child = self.node.child();
        child.kill().expect("SIGKILL the node");
        let _ = child.wait();
    }
}

/// Starts the binary with `args` and waits for the line announcing its web address.
pub(crate) fn spawn(args: &[&str]) -> NodeProc {
    spawn_with_env(args, &[])
}

/// [`spawn`] with environment variables set for the node.
pub(crate) fn spawn_with_env(args: &[&str], env: &[(&str, &str)]) -> NodeProc {
    let mut node = Peer::spawn(
        Command::new(BIN)
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    )
    .expect("spawn communalia");
    let stdout = node.child().stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(i) = line.find("http://") {
                    let base = line[i..].trim().trim_end_matches('/').to_string();
                    return NodeProc {
                        node,
                        base,
                        _lines: rx,
                    };
                }
            }
            Err(_) => {
                let _ = node.child().kill();
                let status = node.child().wait();
                panic!(
                    "communalia {args:?} did not announce its web address within 30 s ({status:?})"
                );
            }
        }
    }
}

pub(crate) async fn get_json(url: &str) -> serde_json::Value {
    reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json::<serde_json::Value>()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

pub(crate) async fn get_text(url: &str) -> String {
    reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// Polls `/api/live` until `ok` holds, or fails showing the last answer.
pub(crate) async fn wait_live(
    node: &NodeProc,
    within: Duration,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    let url = format!("{}/api/live", node.base);
    let mut last = serde_json::Value::Null;
    while Instant::now() < deadline {
        last = get_json(&url).await;
        if ok(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{what}: not seen within {within:?}; last /api/live: {last:#}");
}

pub(crate) fn service<'a>(live: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    live["services"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["id"] == id))
        .unwrap_or_else(|| panic!("service {id} missing from {live:#}"))
}

pub(crate) fn close(a: &serde_json::Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 0.01)
}

/// Signs `name` in through the `/login` form of a running node, as a browser does
/// (the login cookie's CSRF token, then the form); asserts the 303 and returns the
/// session cookie as `name=value`.
pub(crate) async fn sign_in(
    client: &reqwest::Client,
    node: &NodeProc,
    name: &str,
    password: &str,
) -> String {
    let cookie = |response: &reqwest::Response, prefix: &str| {
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(prefix))
            .and_then(|v| v.split(';').next())
            .map(str::to_string)
    };
    let form = client
        .get(format!("{}/login", node.base))
        .send()
        .await
        .expect("login page");
    let login_cookie = cookie(&form, "communalia_login=").expect("login cookie");
    let csrf = login_cookie
        .trim_start_matches("communalia_login=")
        .to_string();
    let signed_in = client
        .post(format!("{}/login", node.base))
        .header("cookie", &login_cookie)
        .form(&[
            ("name", name),
            ("password", password),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .expect("sign in");
    assert_eq!(signed_in.status(), 303, "{name} signs in with the password");
    cookie(&signed_in, "communalia_session=").expect("session cookie")
}
