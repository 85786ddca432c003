//! A small W3C WebDriver client over HTTP, enough to drive Debian's headless Chromium
//! through `chromedriver` as a person would: open a page, type into fields, click,
//! read the page back and take a screenshot. No browser automation crate: the
//! protocol is a handful of JSON requests (https://www.w3.org/TR/webdriver2/).

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::process::Reaper;
use tokio::process::{Child, Command};

pub(crate) const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
use testkit::browser::{BROWSER_DIR_PREFIX, CHROMIUM};
/// The key under which WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// `false` (after saying so) when chromedriver or Chromium is missing and no peer is
/// required; under `COMMUNALIA_REQUIRE_PEERS=1` a missing one fails the test.
pub(crate) fn available() -> bool {
    testkit::peers::have_file(CHROMEDRIVER, "chromedriver")
        && testkit::peers::have_file(CHROMIUM, "chromium")
}

/// One chromedriver process with one browser session.
///
/// A test ends it with [`Driver::quit`]; if the test panics first, dropping the
/// driver kills chromedriver's process group and every process it started (the
/// browser and its helpers), synchronously: nothing depends on the test's runtime,
/// which is shutting down by then.
pub(crate) struct Driver {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`
    session: String,
    chromedriver: Child,
    /// Declared after `chromedriver`: dropped last, it reaps whatever is left.
    reaper: Reaper,
    profile: tempfile::TempDir,
}

impl Driver {
    /// Starts chromedriver on a free port and a headless Chromium of `width` x
    /// `height` with a fresh profile.
    pub(crate) async fn start(width: u32, height: u32) -> Driver {
        let port = testkit::net::free_port();
        let profile = tempfile::Builder::new()
            .prefix(BROWSER_DIR_PREFIX)
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        let reaper = Reaper::new();
        let mut command = Command::new(CHROMEDRIVER);
        command
            .arg(format!("--port={port}"))
            // chromedriver and Chromium put scratch directories under TMPDIR: in the
            // profile's directory, they go with it.
            .env("TMPDIR", profile.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let chromedriver = reaper
            .prepare_tokio(&mut command)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {CHROMEDRIVER}: {e}"));
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(reply) = ready
                && let Ok(body) = reply.json::<Value>().await
                && body["value"]["ready"] == true
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The flags this machine's closed network needs (see the wall screen tests).
        let args = [
            "--headless".to_string(),
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-quic".to_string(),
            "--no-first-run".to_string(),
            "--disable-background-networking".to_string(),
            "--disable-component-update".to_string(),
            "--disable-sync".to_string(),
            "--hide-scrollbars".to_string(),
            format!("--window-size={width},{height}"),
            format!(
                "--user-data-dir={}",
                profile.path().join("profile").display()
            ),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let reply = call(
            &http,
            reqwest::Method::POST,
            &format!("{base}/session"),
            Some(capabilities),
        )
        .await;
        let id = reply["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {reply}"))
            .to_string();
        let driver = Driver {
            http,
            session: format!("{base}/session/{id}"),
            chromedriver,
            reaper,
            profile,
        };
        // An element a page shows a moment after it loads is waited for a while.
        driver.post("/timeouts", json!({"implicit": 5_000})).await;
        driver
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.session);
        call(&self.http, reqwest::Method::POST, &url, Some(body)).await
    }

    /// As [`Driver::post`], `None` on a WebDriver error instead of failing.
    async fn try_post(&self, path: &str, body: Value) -> Option<Value> {
        let url = format!("{}{path}", self.session);
        let reply = self
            .http
            .post(&url)
            .timeout(Duration::from_secs(60))
            .json(&body)
            .send()
            .await
            .ok()?;
        if !reply.status().is_success() {
            return None;
        }
        reply.json::<Value>().await.ok().map(|b| b["value"].clone())
    }

    async fn get(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.session);
        call(&self.http, reqwest::Method::GET, &url, None).await
    }

    /// Loads `url` and waits for it to be loaded.
    pub(crate) async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    pub(crate) async fn current_url(&self) -> String {
        self.get("/url")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The page's HTML as the browser now holds it.
    pub(crate) async fn source(&self) -> String {
        self.get("/source")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The element `css` selects; fails the test when there is none.
    pub(crate) async fn find(&self, css: &str) -> Element<'_> {
        let reply = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        let id = reply[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {reply}"))
            .to_string();
        Element { driver: self, id }
    }

    /// The visible text of the element `css` selects.
    pub(crate) async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    pub(crate) async fn execute(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": [] }))
            .await
    }

    /// A PNG of the whole viewport.
    pub(crate) async fn screenshot(&self) -> Vec<u8> {
        let b64 = self.get("/screenshot").await;
        decode_base64(
            b64.as_str()
                .unwrap_or_else(|| panic!("no screenshot: {b64}")),
        )
    }
}

impl Driver {
    /// Ends the browser session as WebDriver means it to end (the browser closes
    /// itself), then chromedriver; asserts that no process of theirs is left, the
    /// browser's helpers included.
    pub(crate) async fn quit(mut self) {
        let closed = self
            .http
            .delete(&self.session)
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        assert!(
            closed.as_ref().is_ok_and(|r| r.status().is_success()),
            "DELETE {}: {closed:?}",
            self.session
        );
        let _ = self.chromedriver.kill().await;
        let survivors = self.reaper.reap();
        assert!(
            survivors.is_empty(),
            "still running after quit: {survivors:?}"
        );
        let profile = self.profile.path().to_string_lossy().into_owned();
        let stray = testkit::process::reap_mentioning(&profile);
        assert!(stray.is_empty(), "processes still use {profile}: {stray:?}");
    }
}

impl Drop for Driver {
    /// A test that failed before `quit` leaves no browser either: the reaper
    /// ends what carries its marker, and this what still names the profile.
    fn drop(&mut self) {
        let _ = testkit::process::reap_mentioning(&self.profile.path().to_string_lossy());
    }
}

pub(crate) struct Element<'a> {
    driver: &'a Driver,
    id: String,
}

impl Element<'_> {
    /// Empties a field and types `text` into it, as a keyboard would.
    pub(crate) async fn fill(&self, text: &str) {
        let base = format!("/element/{}", self.id);
        self.driver.post(&format!("{base}/clear"), json!({})).await;
        self.driver
            .post(&format!("{base}/value"), json!({ "text": text }))
            .await;
    }

    /// Clicks the element; a click that follows a link or submits a form waits for
    /// the next page. chromedriver may answer a click before the navigation it
    /// starts has even begun: the old page is marked before the click, and the
    /// click is over once a page without the mark has loaded.
    pub(crate) async fn click(&self) {
        let leaves = self
            .driver
            .post(
                "/execute/sync",
                json!({
                    "script": "const e = arguments[0];
                        const leaves = e.tagName === 'A' && e.hasAttribute('href')
                            || (e.tagName === 'BUTTON' || e.tagName === 'INPUT')
                                && e.type === 'submit' && e.form !== null;
                        if (leaves) document.documentElement.setAttribute('data-webdriver-left', '');
                        return leaves;",
                    "args": [{ ELEMENT_KEY: self.id }],
                }),
            )
            .await;
        self.driver
            .post(&format!("/element/{}/click", self.id), json!({}))
            .await;
        if leaves != Value::Bool(true) {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // While the page is being replaced a script may fail to run: try again.
            let arrived = self
                .driver
                .try_post(
                    "/execute/sync",
                    json!({
                        "script": "return document.readyState === 'complete'
                            && !document.documentElement.hasAttribute('data-webdriver-left');",
                        "args": [],
                    }),
                )
                .await;
            if arrived == Some(Value::Bool(true)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the click did not lead to a new page within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn text(&self) -> String {
        let reply = self.driver.get(&format!("/element/{}/text", self.id)).await;
        reply.as_str().unwrap_or_default().to_string()
    }

    /// Picks the `<option>` of this `<select>` whose value is `value`.
    pub(crate) async fn select(&self, value: &str) {
        let reply = self
            .driver
            .post(
                &format!("/element/{}/element", self.id),
                json!({"using": "css selector", "value": format!("option[value=\"{value}\"]")}),
            )
            .await;
        let option = reply[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no option {value}: {reply}"));
        self.driver
            .post(&format!("/element/{option}/click"), json!({}))
            .await;
    }
}

/// One WebDriver command; fails the test on a WebDriver error, naming it.
async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Value {
    let mut request = http
        .request(method.clone(), url)
        .timeout(Duration::from_secs(60));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let reply = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = reply.status();
    let body: Value = reply
        .json()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: not JSON: {e}"));
    assert!(status.is_success(), "{method} {url}: {status}: {body}");
    body["value"].clone()
}

/// Standard base64 (RFC 4648) to bytes; the screenshot is the only use.
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c:?}"),
        }
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn base64_decodes_the_rfc_4648_vectors() {
    for (text, bytes) in [
        ("", &b""[..]),
        ("Zg==", b"f"),
        ("Zm8=", b"fo"),
        ("Zm9v", b"foo"),
        ("Zm9vYg==", b"foob"),
        ("Zm9vYmE=", b"fooba"),
        ("Zm9vYmFy", b"foobar"),
    ] {
        assert_eq!(decode_base64(text), bytes, "{text}");
    }
}

/// Signs out whoever is signed in (if anyone), then signs `name` in, landing on
/// `next`.
pub(crate) async fn sign_in(browser: &Driver, base: &str, name: &str, next: &str) {
    browser.goto(&format!("{base}{next}")).await;
    let signed_in = browser
        .execute(
            "return document.querySelector('nav.member-nav form[action=\"/logout\"]') !== null;",
        )
        .await;
    if signed_in == serde_json::Value::Bool(true) {
        browser
            .find("nav.member-nav form[action='/logout'] button[type=submit]")
            .await
            .click()
            .await;
    }
    browser
        .goto(&format!("{base}/login?next={next}&lang=fr"))
        .await;
    browser.find("input[name=name]").await.fill(name).await;
    browser
        .find("input[name=password]")
        .await
        .fill(crate::support::PASSWORD)
        .await;
    browser
        .find("form.account-form button[type=submit]")
        .await
        .click()
        .await;
    let url = browser.current_url().await;
    assert!(url.contains(next), "{name} landed on {url}");
}
