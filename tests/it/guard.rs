//! Attacks on a running node's web side (DESIGN.md §9), each reproduced as an
//! attacker would try it, and refused.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::cli::{run_cli, stdout_of};
use crate::support::*;

/// The highest resident size of `pid` until `stop` is raised, sampled every 2 ms,
/// and (when the kernel lets its high-water mark be reset) that mark too.
struct PeakMemory {
    pid: u32,
    before_kb: u64,
    hwm_reset: bool,
    peak_kb: Arc<AtomicU64>,
    sampling: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<()>>,
}

impl PeakMemory {
    fn watch(pid: u32) -> PeakMemory {
        let before_kb = status_kb(pid, "VmRSS").expect("VmRSS of the node");
        // Writing 5 to clear_refs resets the high-water mark to the present size.
        let hwm_reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
        let peak_kb = Arc::new(AtomicU64::new(before_kb));
        let sampling = Arc::new(AtomicBool::new(true));
        let sampler = {
            let (peak_kb, sampling) = (peak_kb.clone(), sampling.clone());
            std::thread::spawn(move || {
                while sampling.load(Ordering::Relaxed) {
                    if let Some(kb) = status_kb(pid, "VmRSS") {
                        peak_kb.fetch_max(kb, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        PeakMemory {
            pid,
            before_kb,
            hwm_reset,
            peak_kb,
            sampling,
            sampler: Some(sampler),
        }
    }

    /// `(before, peak)` in kB.
    fn stop(mut self) -> (u64, u64) {
        self.sampling.store(false, Ordering::Relaxed);
        if let Some(sampler) = self.sampler.take() {
            sampler.join().expect("sampler");
        }
        let mut peak = self.peak_kb.load(Ordering::Relaxed);
        if self.hwm_reset
            && let Some(hwm) = status_kb(self.pid, "VmHWM")
        {
            peak = peak.max(hwm);
        }
        (self.before_kb, peak)
    }
}

/// A field of `/proc/PID/status` in kilobytes (`VmRSS`, `VmHWM`).
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A sign-in form posted from `from`, as a browser would: the form's anti-forgery
/// token is whatever the login cookie holds, so none needs fetching first.
async fn sign_in_from(base: &str, from: IpAddr, name: &str) -> (u16, Option<String>) {
    let client = reqwest::Client::builder()
        .local_address(from)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    let token = "5a".repeat(32);
    let reply = client
        .post(format!("{base}/login"))
        .header("cookie", format!("communalia_login={token}"))
        .form(&[
            ("name", name),
            ("password", "a wrong guess"),
            ("csrf", &token),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("sign-in from {from}: {e}"));
    let retry_after = reply
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (reply.status().as_u16(), retry_after)
}

/// The attack seen: a burst of sign-ins, each for another account from another
/// address so that no failure limit stands in the way, made the node check every
/// password at once at ~19 MiB each. The node's resident memory is sampled all
/// through the burst (and its high-water mark, reset before it, read after): it
/// grows by less than 64 MB, and every sign-in not checked is told when to retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sign_in_cannot_exhaust_memory() {
    const BURST: u8 = 200;
    const LIMIT_KB: u64 = 64 * 1000;
    let dir = TempDir::new("sign-in-memory");
    let config = dir.path().join("site.toml");
    std::fs::write(
        &config,
        format!(
            "[site]\nname = \"x\"\nlatitude = 1.0\nlongitude = 2.0\n[storage]\ndir = \"{}\"\n",
            dir.path().display()
        ),
    )
    .expect("write the configuration");
    let mut node = spawn(&[
        "run",
        "--config",
        &config.to_string_lossy(),
        "--bind",
        "127.0.0.1:0",
    ]);
    let pid = node.node.child().id();

    // The sign-in page once, so that the burst measures the sign-ins, not what the
    // first page served needs; no password has been checked yet.
    let page = reqwest::get(format!("{}/login", node.base))
        .await
        .expect("the sign-in page");
    assert_eq!(page.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let memory = PeakMemory::watch(pid);

    let barrier = Arc::new(tokio::sync::Barrier::new(usize::from(BURST)));
    let attempts: Vec<_> = (1..=BURST)
        .map(|i| {
            let (base, barrier) = (node.base.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let from = IpAddr::V4(Ipv4Addr::new(127, 0, 1, i));
                sign_in_from(&base, from, &format!("guess{i}")).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for attempt in attempts {
        answers.push(attempt.await.expect("sign-in task"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (before_kb, peak) = memory.stop();
    node.kill();

    let checked = answers.iter().filter(|(status, _)| *status == 401).count();
    assert!(checked >= 1, "no password was checked: {answers:?}");
    for (status, retry_after) in answers.iter().filter(|(status, _)| *status != 401) {
        assert!(
            matches!(status, 429 | 503),
            "a sign-in answered {status}: {answers:?}"
        );
        assert!(
            retry_after
                .as_deref()
                .and_then(|r| r.parse::<u64>().ok())
                .is_some_and(|s| s >= 1),
            "a {status} without Retry-After"
        );
    }
    let grew_kb = peak.saturating_sub(before_kb);
    println!(
        "{BURST} sign-ins at once: {checked} checked, resident memory {before_kb} kB -> peak {peak} kB"
    );
    assert!(
        grew_kb < LIMIT_KB,
        "{BURST} sign-ins at once took the node from {before_kb} kB to {peak} kB \
         (+{grew_kb} kB; {checked} passwords checked)"
    );
}

/// The attack seen: one installer query (a text of 400 MB built in memory by
/// `string_agg`) took the node from 125 MB to 1.6 GB. Now it is refused when it
/// needs more than the installers' memory pool (256 MiB by default), in words, and
/// the node's resident memory grows by little more than that pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installer_sql_cannot_exhaust_memory() {
    const LIMIT_KB: u64 = (256 + 64) * 1024;
    let dir = TempDir::new("sql-memory");
    let config = dir.path().join("site.toml");
    std::fs::write(
        &config,
        format!(
            "[site]\nname = \"x\"\nlatitude = 1.0\nlongitude = 2.0\n[storage]\ndir = \"{}\"\n\
             [[member]]\nname = \"ivo\"\nroles = [\"installer\"]\n",
            dir.path().display()
        ),
    )
    .expect("write the configuration");
    let cfg = config.to_string_lossy().into_owned();
    let mut node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    let token = stdout_of(
        &run_cli(&["token", "create", "--user", "ivo", "--config", &cfg], ""),
        "token create",
    );
    let client = reqwest::Client::new();
    let ask = |sql: &str| {
        client
            .post(format!("{}/api/sql", node.base))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "sql": sql }))
            .send()
    };
    // A small query first, so that what every query needs once is in place.
    let warm = ask("SELECT count(*) AS n FROM range(1000)")
        .await
        .expect("sql");
    assert_eq!(warm.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let memory = PeakMemory::watch(node.node.child().id());
    let reply = ask("SELECT length(string_agg(repeat('x', 100), '')) AS n FROM range(4000000)")
        .await
        .expect("sql");
    let status = reply.status().as_u16();
    let body: serde_json::Value = reply.json().await.expect("an answer in JSON");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (before_kb, peak_kb) = memory.stop();
    node.kill();

    let grew_kb = peak_kb.saturating_sub(before_kb);
    println!("an over-large query: resident memory {before_kb} kB -> peak {peak_kb} kB");
    assert!(
        grew_kb < LIMIT_KB,
        "the query took the node from {before_kb} kB to {peak_kb} kB (+{grew_kb} kB): {body}"
    );
    assert_eq!(status, 422, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("the query needs more than 256 MB of memory"),
        "{error}"
    );
}
