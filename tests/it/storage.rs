//! Storage faults, real ones: the node's data directory on a size-limited tmpfs
//! that the test fills while QoS 1 readings stream in, then frees; every reading
//! must be stored exactly once, ingest must resume by itself within seconds, and
//! journal writes during the fault are refused in words (507), never with a 500.
//! Mounting needs root (CI runs as root); elsewhere the tests say they are skipped.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rumqttc::QoS;
use serde_json::json;

use crate::cli::{run_cli, stdout_of};
use crate::history::{exported_values, publisher};
use crate::support::*;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

/// A size-limited tmpfs mounted on a directory of its own, unmounted on drop
/// (a failing test included).
pub(crate) struct Tmpfs {
    path: PathBuf,
    _dir: TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`3m`), or says why the test is skipped.
    pub(crate) fn mount(size: &str) -> Option<Tmpfs> {
        // Root and the right to mount are the machine's, not a peer `.ci/run` can
        // install: without them the test says so and is skipped, even in CI.
        if !is_root() {
            println!("skipped: tmpfs (needs root)");
            eprintln!("skipped: tmpfs (needs root)");
            return None;
        }
        let dir = TempDir::new("tmpfs");
        let path = dir.path().join("data");
        std::fs::create_dir_all(&path).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .expect("run mount");
        if !out.status.success() {
            // A container without CAP_SYS_ADMIN refuses even root.
            let why = String::from_utf8_lossy(&out.stderr);
            println!("skipped: tmpfs (mount refused: {})", why.trim());
            eprintln!("skipped: tmpfs (mount refused: {})", why.trim());
            return None;
        }
        Some(Tmpfs { path, _dir: dir })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Remounts read-only (`true`) or read-write; `false` when the kernel refuses
    /// (a file still open for writing keeps it busy).
    pub(crate) fn remount(&self, read_only: bool) -> bool {
        let mode = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        Command::new("mount")
            .args(["-o", mode])
            .arg(&self.path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a node being killed): detach it now, freed once unused.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Fills the filesystem of `dir` with a file of zeros until it refuses one byte
/// more; returns the file, whose removal frees the space.
pub(crate) fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("create the filler");
    for chunk in [64 * 1024, 4096, 1] {
        let zeros = vec![0u8; chunk];
        while file.write_all(&zeros).is_ok() {}
    }
    path
}

/// A disk kept full the way a runaway log keeps it full: after the first fill,
/// whatever the node frees (a history file it could not finish and removed) is
/// taken again within milliseconds, so the fault lasts until [`KeepFull::free`].
/// Without it a few freed blocks let the log through for a moment, and the test
/// would be judging a disk that is no longer full.
struct KeepFull {
    path: PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KeepFull {
    fn fill(dir: &Path) -> KeepFull {
        let path = fill(dir);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut file = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .expect("open the filler");
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for chunk in [4096, 1] {
                        let zeros = vec![0u8; chunk];
                        while file.write_all(&zeros).is_ok() {}
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        KeepFull {
            path,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // Joined so the filler is closed before the tmpfs is unmounted.
            let _ = thread.join();
        }
    }

    /// Stops taking space and gives it all back.
    fn free(mut self) {
        self.stop();
        std::fs::remove_file(&self.path).expect("free the space");
    }
}

impl Drop for KeepFull {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Mosquitto of the test's own, with persistence and no limit on the messages
/// it queues for the node, killed on drop.
struct PersistentMosquitto {
    _broker: Peer,
    port: u16,
    _dir: TempDir,
}

fn persistent_mosquitto() -> Option<PersistentMosquitto> {
    let binary = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let dir = TempDir::new("mosquitto-persist");
    let port = free_port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n\
             persistence true\npersistence_location {}/\n",
            dir.path().display()
        ),
    )
    .expect("write mosquitto.conf");
    let broker = Peer::spawn(
        Command::new(binary)
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    )
    .ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !tcp_open(&format!("127.0.0.1:{port}")) {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(PersistentMosquitto {
        _broker: broker,
        port,
        _dir: dir,
    })
}

/// A site with one generic-json meter on `topic`, its data in `data`, its
/// configuration in `conf_dir`, and a member who may record and export.
fn site(conf_dir: &Path, data: &Path, mqtt: &str, topic: &str) -> String {
    let config = format!(
        "[site]\nname = \"x\"\nlatitude = 1.0\nlongitude = 2.0\ntimezone = \"Europe/Paris\"\n\
         [storage]\ndir = \"{}\"\nflush_interval = \"2s\"\nmin_free = \"1 MB\"\n\
         [mqtt]\n{mqtt}\n\
         [[device]]\nid = \"meter\"\nrole = \"load\"\nprofile = \"generic-json\"\n\
         max_messages_per_s = 1000000\n\
         mqtt = {{ topic = \"{topic}\", fields = {{ power_w = \"p\" }} }}\n\
         [[service]]\nid = \"hall\"\nmeter = \"meter\"\ntier = 1\n\
         [[member]]\nname = \"ivo\"\nroles = [\"resident\", \"installer\"]\n",
        data.display()
    );
    let path = conf_dir.join("site.toml");
    std::fs::write(&path, config).expect("write the configuration");
    path.to_string_lossy().into_owned()
}

async fn metric(base: &str, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Waits until the export holds `n` readings; returns them and how long it took.
async fn wait_for(base: &str, token: &str, n: usize, within: Duration) -> (Vec<i64>, Duration) {
    let start = Instant::now();
    loop {
        let values = exported_values(base, token).await;
        if values.len() >= n || start.elapsed() > within {
            return (values, start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every value of `0..n` exactly once.
fn assert_exactly_once(values: &[i64], n: i64, when: &str) {
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for v in values {
        *counts.entry(*v).or_default() += 1;
    }
    let missing: Vec<i64> = (0..n)
        .filter(|v| !counts.contains_key(v))
        .take(20)
        .collect();
    let twice: Vec<(&i64, &usize)> = counts.iter().filter(|(_, c)| **c > 1).take(20).collect();
    let lost: Vec<i64> = (0..n).filter(|v| !counts.contains_key(v)).collect();
    let mut ranges: Vec<(i64, i64)> = Vec::new();
    for v in &lost {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == *v => *end = *v,
            _ => ranges.push((*v, *v)),
        }
    }
    assert!(
        missing.is_empty(),
        "{when}: {} readings lost, first {missing:?}, in ranges {ranges:?}",
        lost.len()
    );
    assert!(twice.is_empty(), "{when}: readings stored twice: {twice:?}");
    assert_eq!(
        values.len() as i64,
        n,
        "{when}: {} readings, expected {n}",
        values.len()
    );
}

/// Records contributions until the full disk refuses one: every answer is a 201
/// or a refusal in words with 507, never a 500. Returns how many were recorded.
async fn contributions_until_refused(base: &str, token: &str) -> usize {
    let client = reqwest::Client::new();
    let today = chrono::Utc::now().date_naive().to_string();
    for recorded in 0..200 {
        let response = client
            .post(format!("{base}/api/contributions"))
            .bearer_auth(token)
            .json(&json!({"category": "repair", "hours": 1, "date": today,
                          "description": format!("Fixed the hall's lamp, try {recorded}")}))
            .send()
            .await
            .expect("POST /api/contributions");
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        match status {
            201 => continue,
            507 => {
                assert!(
                    body.contains("disque du nœud est plein : rien n'a été enregistré")
                        && body.contains("disk is full"),
                    "507 without the words: {body}"
                );
                return recorded;
            }
            other => panic!("a journal write on a full disk answered {other}: {body}"),
        }
    }
    panic!("200 contributions recorded on a full disk: was it full?");
}

/// The scenario of issue 18 on a 3 MB tmpfs, with the broker `mqtt` is (the
/// embedded one, or a Mosquitto keeping the session): fill the disk while QoS 1
/// readings arrive, free it, and count.
async fn fill_free_and_count(mqtt: &str, publish_port: u16, restart_keeps_broker: bool) {
    let Some(tmpfs) = Tmpfs::mount("3m") else {
        return;
    };
    let conf = TempDir::new("storage-conf");
    let topic = "communalia-test/storage";
    let cfg = site(conf.path(), tmpfs.path(), mqtt, topic);
    let mut node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    let token = stdout_of(
        &run_cli(&["token", "create", "--user", "ivo", "--config", &cfg], ""),
        "token create",
    );
    let client = publisher("127.0.0.1", publish_port, "storage-pub").await;
    let send = |from: i64, to: i64| {
        let client = client.clone();
        async move {
            for i in from..to {
                client
                    .publish(topic, QoS::AtLeastOnce, false, format!("{{\"p\": {i}}}"))
                    .await
                    .expect("publish");
                if i % 20 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }
    };
    // The subscription is in place once a first reading comes through.
    let deadline = Instant::now() + Duration::from_secs(20);
    send(0, 1).await;
    while exported_values(&node.base, &token).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the node never received the first reading"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A first part while there is room, then the disk fills while the rest streams in.
    send(1, 500).await;
    let filler = KeepFull::fill(tmpfs.path());
    send(500, 1500).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while metric(&node.base, "communalia_storage_write_failing").await != Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "the node never noticed that its log cannot be written"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recorded = contributions_until_refused(&node.base, &token).await;
    // Long enough for the node to give up holding the messages and leave the
    // broker: space must then bring it back by itself.
    tokio::time::sleep(ingest::sink::HOLD_MQTT + Duration::from_secs(2)).await;
    assert_eq!(
        metric(&node.base, "communalia_storage_write_failing").await,
        Some(1.0)
    );
    // The node stays up and says so.
    let live = get_json(&format!("{}/api/live", node.base)).await;
    assert!(live["site"].is_object(), "{live}");
    let wall = reqwest::get(format!("{}/?lang=fr", node.base))
        .await
        .expect("wall")
        .text()
        .await
        .expect("wall body");
    assert!(
        wall.contains("storage-note"),
        "the wall says nothing of the disk"
    );

    // Space comes back: ingest resumes by itself, every reading once.
    filler.free();
    let (values, took) = wait_for(&node.base, &token, 1500, Duration::from_secs(30)).await;
    println!("space freed: all 1500 readings stored {took:?} later");
    assert!(
        took < Duration::from_secs(30),
        "ingest did not resume within 30 s of space returning ({} of 1500)",
        values.len()
    );
    send(1500, 1600).await;
    let (_, _) = wait_for(&node.base, &token, 1600, Duration::from_secs(20)).await;
    // Time for a stray redelivery to double something.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_exactly_once(
        &exported_values(&node.base, &token).await,
        1600,
        "after the fault",
    );

    // Nothing half-written in the journal: it verifies, and holds the
    // contributions that were answered 201, and no other.
    let verify = run_cli(&["ledger", "verify", "--config", &cfg], "");
    assert!(verify.status.success(), "ledger verify: {verify:?}");
    let listed = reqwest::Client::new()
        .get(format!("{}/api/contributions", node.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json::<serde_json::Value>()
        .await
        .expect("contributions");
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(recorded),
        "contributions in the journal: {listed}"
    );

    // After a restart too: what the log replays and what the broker sends again.
    node.kill();
    node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    let (_, _) = wait_for(&node.base, &token, 1600, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = exported_values(&node.base, &token).await;
    if restart_keeps_broker {
        assert_exactly_once(&after, 1600, "after a restart");
    } else {
        // The embedded broker goes with the node: what was acknowledged is all there.
        assert_exactly_once(&after, 1600, "after a restart (embedded broker)");
    }
    node.kill();
    let _ = client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_with_mosquitto_resumes_by_itself_exactly_once() {
    if !is_root() {
        let _ = Tmpfs::mount("3m");
        return;
    }
    let Some(broker) = persistent_mosquitto() else {
        skip("mosquitto");
        return;
    };
    let mqtt = format!("broker = \"mqtt://127.0.0.1:{}\"", broker.port);
    fill_free_and_count(&mqtt, broker.port, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_with_the_embedded_broker_resumes_by_itself_exactly_once() {
    let port = free_port();
    let mqtt = format!("broker = \"embedded\"\nembedded_bind = \"127.0.0.1:{port}\"");
    fill_free_and_count(&mqtt, port, false).await;
}

/// A write that fails on a full disk leaves nothing behind in the log: the records
/// written after space returns follow the last intact one, and all replay.
#[test]
fn a_write_that_fails_on_a_full_disk_leaves_the_log_replayable() {
    use ingest::wal::Wal;
    let Some(tmpfs) = Tmpfs::mount("1m") else {
        return;
    };
    let dir = tmpfs.path().join("wal");
    let (mut wal, _) = Wal::open(&dir).expect("open the log");
    let reading = |i: i64| ingest::reading::Reading {
        ts_ms: 1_700_000_000_000 + i,
        device: "meter".into(),
        metric: sensors::model::Metric::PowerW,
        value: i as f64,
    };
    // Records of 100 readings until the disk refuses one: that one is torn.
    let batch = |from: i64| (from..from + 100).map(reading).collect::<Vec<_>>();
    let filler = fill(tmpfs.path());
    let mut written = 0;
    let mut failed = false;
    for _ in 0..1000 {
        if wal.append(&batch(written), &[]).is_err() {
            failed = true;
            break;
        }
        written += 100;
    }
    assert!(failed, "the disk never filled");
    std::fs::remove_file(&filler).expect("free the space");
    // The same readings again, and more, once there is room.
    for _ in 0..3 {
        wal.append(&batch(written), &[])
            .expect("append after space returned");
        written += 100;
    }
    drop(wal);
    let (_, replayed) = Wal::open(&dir).expect("reopen the log");
    assert!(
        replayed.damaged.is_empty(),
        "damage: {:?}",
        replayed.damaged
    );
    assert_eq!(
        replayed.truncated_bytes, 0,
        "a torn record was left in the log"
    );
    let values: Vec<i64> = replayed.readings().map(|r| r.value as i64).collect();
    assert_eq!(values, (0..written).collect::<Vec<_>>());
}

/// The disk fills, then the filesystem turns read-only, while readings arrive from
/// Mosquitto; then it is writable again and the space freed. The node's ingest
/// resumes by itself, and the log holds every reading exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_then_read_only_disk_holds_ingest_and_resumes_exactly_once() {
    use std::sync::Arc;

    use ingest::metrics::IngestMetrics;
    use ingest::store::LiveStore;
    use tokio_util::sync::CancellationToken;

    let Some(tmpfs) = Tmpfs::mount("2m") else {
        return;
    };
    let Some(broker) = persistent_mosquitto() else {
        skip("mosquitto");
        return;
    };
    let topic = format!("communalia-test/ro-{}", std::process::id());
    let device: sensors::config::DeviceConfig = toml::from_str(&format!(
        "id = \"meter\"\nrole = \"load\"\nprofile = \"generic-json\"\n\
         max_messages_per_s = 1000000\n\
         mqtt = {{ topic = \"{topic}\", fields = {{ power_w = \"p\" }} }}\n"
    ))
    .expect("device");
    let wal_dir = tmpfs.path().join("wal");
    let store = Arc::new(LiveStore::new(Duration::from_secs(3600)));
    let metrics = Arc::new(IngestMetrics::default());
    let cancel = CancellationToken::new();
    let (wal, _) = ingest::open_wal(&wal_dir, &store, None).expect("open the log");
    let node = ingest::Ingest::start(
        ingest::resolve_devices(&[device]).expect("devices"),
        Some(ingest::mqtt::MqttClientOptions {
            endpoint: ingest::config::BrokerEndpoint::External {
                host: "127.0.0.1".into(),
                port: broker.port,
            },
            client_id: format!("ro-node-{}", std::process::id()),
            username: None,
            password: None,
        }),
        store.clone(),
        metrics.clone(),
        ingest::Durability {
            wal: Some(wal),
            ..Default::default()
        },
        cancel.clone(),
    );
    let client = publisher("127.0.0.1", broker.port, "ro-pub").await;
    let send = |from: i64, to: i64| {
        let client = client.clone();
        let topic = topic.clone();
        async move {
            for i in from..to {
                client
                    .publish(&topic, QoS::AtLeastOnce, false, format!("{{\"p\": {i}}}"))
                    .await
                    .expect("publish");
                if i % 20 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }
    };
    let wait_rows = |n: usize, within: Duration| {
        let store = store.clone();
        async move {
            let deadline = Instant::now() + within;
            while store.rows() < n && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            store.rows()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.rows() == 0 {
        assert!(Instant::now() < deadline, "nothing ever arrived");
        send(0, 1).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The probes above may have sent 0 more than once; from 1 on, each value once.
    send(1, 300).await;
    assert!(wait_rows(300, Duration::from_secs(20)).await >= 300);
    let filler = fill(tmpfs.path());
    send(300, 600).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !metrics.storage().write_failing {
        assert!(
            Instant::now() < deadline,
            "the log never failed on a full disk"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The log let go of its file after the failure: the kernel may remount.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !tmpfs.remount(true) {
        assert!(
            Instant::now() < deadline,
            "the filesystem stayed busy: the log holds its file open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    send(600, 900).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        metrics.storage().write_failing,
        "writes on a read-only disk"
    );
    assert!(tmpfs.remount(false), "remount read-write");
    std::fs::remove_file(&filler).expect("free the space");
    let freed = Instant::now();
    let rows = wait_rows(900, Duration::from_secs(30)).await;
    println!(
        "read-only, then writable and freed: 900 readings after {:?}",
        freed.elapsed()
    );
    assert!(rows >= 900, "ingest did not resume: {rows} of 900 readings");
    assert!(!metrics.storage().write_failing);
    tokio::time::sleep(Duration::from_secs(2)).await;
    cancel.cancel();
    node.join().await;
    let _ = client.disconnect().await;
    let (_, replayed) = ingest::wal::Wal::open(&wal_dir).expect("reopen the log");
    assert!(replayed.damaged.is_empty(), "{:?}", replayed.damaged);
    let mut values: Vec<i64> = replayed
        .readings()
        .map(|r| r.value as i64)
        .filter(|v| *v != 0)
        .collect();
    values.sort_unstable();
    let mut with_zero = vec![0];
    with_zero.extend(values);
    assert_exactly_once(&with_zero, 900, "in the log after the fault");
}

/// An ext4 filesystem on a loop device, mounted with `errors=remount-ro` as a
/// node's SD card is: on an I/O error the kernel turns it read-only for good (the
/// journal is aborted; not even `mount -o remount,rw` brings it back), whoever
/// holds files open on it. [`LoopDisk::fail`] raises such an error through ext4's
/// own test switch; [`LoopDisk::repair`] is what an operator then does. Unmounted
/// and detached on drop.
pub(crate) struct LoopDisk {
    dir: TempDir,
    path: PathBuf,
    /// The loop devices attached, the one mounted last.
    devices: Vec<String>,
    /// The image behind the mounted device.
    image: PathBuf,
}

/// Runs a command; its standard error in words when it fails.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("`{program}` cannot be run: {e}")),
    }
}

impl LoopDisk {
    /// Makes and mounts a disk of `mb` megabytes, or says why the test is skipped:
    /// without root, loop devices or the right to mount (a container may refuse
    /// any of them), the machine cannot stage a failing disk.
    pub(crate) fn mount(mb: u64) -> Option<LoopDisk> {
        if !is_root() {
            println!("skipped: ext4 on a loop device (needs root)");
            eprintln!("skipped: ext4 on a loop device (needs root)");
            return None;
        }
        let dir = TempDir::new("loopdisk");
        let path = dir.path().join("mnt");
        std::fs::create_dir_all(&path).expect("mount point");
        let mut disk = LoopDisk {
            image: dir.path().join("card.img"),
            dir,
            path,
            devices: Vec::new(),
        };
        let made = std::fs::File::create(&disk.image)
            .and_then(|f| f.set_len(mb * 1024 * 1024))
            .map_err(|e| format!("cannot make the image: {e}"))
            .and_then(|()| disk.attach_and_mount(true));
        match made {
            Ok(()) => Some(disk),
            Err(why) => {
                println!("skipped: ext4 on a loop device ({why})");
                eprintln!("skipped: ext4 on a loop device ({why})");
                None
            }
        }
    }

    /// Attaches `self.image` to a free loop device (making a filesystem on it if
    /// `fresh`) and mounts it on `self.path`.
    fn attach_and_mount(&mut self, fresh: bool) -> Result<(), String> {
        let image = self.image.to_string_lossy().into_owned();
        let device = run("losetup", &["-f", "--show", &image])?
            .trim()
            .to_string();
        self.devices.push(device.clone());
        if fresh {
            run("mkfs.ext4", &["-q", "-F", &device])?;
        }
        let mount_point = self.path.to_string_lossy().into_owned();
        run(
            "mount",
            &[
                "-t",
                "ext4",
                "-o",
                "errors=remount-ro",
                &device,
                &mount_point,
            ],
        )?;
        let switch = self.error_switch();
        if !switch.exists() {
            return Err(format!(
                "the kernel has no ext4 error switch at {}",
                switch.display()
            ));
        }
        Ok(())
    }

    /// ext4's test switch for the mounted device: what is written to it is raised
    /// as a filesystem error.
    fn error_switch(&self) -> PathBuf {
        let name = self
            .devices
            .last()
            .and_then(|d| Path::new(d).file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        PathBuf::from(format!("/sys/fs/ext4/{name}/trigger_fs_error"))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The card fails: an ext4 error on the mounted device, which the kernel answers
    /// by turning the filesystem read-only. `false` when it did not (a kernel
    /// without the switch is found out at [`LoopDisk::mount`], which skips).
    pub(crate) fn fail(&self) -> bool {
        if std::fs::write(self.error_switch(), "communalia test: the card fails").is_err() {
            return false;
        }
        // Read-only from now on, for every writer.
        std::fs::write(self.path.join("probe"), b"x").is_err_and(|e| e.raw_os_error() == Some(30))
    }

    /// What an operator does once the card failed: unmount it, check and repair it
    /// (`e2fsck -fy`), and mount it again at the same place. A node still running
    /// holds files open on it, so that it cannot be unmounted; then it is detached
    /// (`umount -l`) and a copy of the card, repaired, is mounted in its place: the
    /// same data on another device, as when the card is replaced by an image of it.
    pub(crate) fn repair(&mut self) -> Result<(), String> {
        let mount_point = self.path.to_string_lossy().into_owned();
        let device = self.devices.last().cloned().unwrap_or_default();
        if run("umount", &[&mount_point]).is_ok() {
            fsck(&device)?;
            let mounted = run(
                "mount",
                &[
                    "-t",
                    "ext4",
                    "-o",
                    "errors=remount-ro",
                    &device,
                    &mount_point,
                ],
            );
            return mounted.map(|_| ());
        }
        run("umount", &["-l", &mount_point])?;
        let copy = self
            .dir
            .path()
            .join(format!("card-{}.img", self.devices.len()));
        std::fs::copy(&self.image, &copy).map_err(|e| format!("cannot copy the card: {e}"))?;
        fsck(&copy.to_string_lossy())?;
        self.image = copy;
        self.attach_and_mount(false)
    }
}

/// `e2fsck -fy`: repairs what it finds (exit 1 and 2 say it did); what it said is
/// printed, shown with a failing test.
fn fsck(target: &str) -> Result<(), String> {
    let out = Command::new("e2fsck")
        .args(["-fy", target])
        .output()
        .map_err(|e| format!("`e2fsck` cannot be run: {e}"))?;
    println!(
        "e2fsck -fy {target}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim()
    );
    match out.status.code() {
        Some(0..=2) => Ok(()),
        _ => Err(format!(
            "`e2fsck -fy {target}` could not repair it ({})",
            out.status
        )),
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .stderr(std::process::Stdio::null())
            .status();
        for device in &self.devices {
            let _ = Command::new("losetup")
                .args(["-d", device])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// Records one contribution: the status and body of the answer.
async fn contribution(base: &str, token: &str, what: &str) -> (u16, String) {
    let today = chrono::Utc::now().date_naive().to_string();
    let response = reqwest::Client::new()
        .post(format!("{base}/api/contributions"))
        .bearer_auth(token)
        .json(&json!({"category": "repair", "hours": 1, "date": today, "description": what}))
        .send()
        .await
        .expect("POST /api/contributions");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// The node's card turns read-only under it (an ext4 error, the kernel's answer to
/// a failing SD card) while QoS 1 readings stream in from the broker `mqtt` is;
/// journal writes are refused in words; the card is repaired and mounted again
/// while the node runs; ingest resumes by itself and every reading is stored
/// exactly once, and the journal writes to the card that is there now.
async fn read_only_and_back(mqtt: &str, publish_port: u16) {
    let Some(mut disk) = LoopDisk::mount(32) else {
        return;
    };
    let conf = TempDir::new("ro-conf");
    let data = disk.path().join("data");
    let topic = "communalia-test/read-only";
    let cfg = site(conf.path(), &data, mqtt, topic);
    let mut node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    let token = stdout_of(
        &run_cli(&["token", "create", "--user", "ivo", "--config", &cfg], ""),
        "token create",
    );
    let client = publisher("127.0.0.1", publish_port, "ro-whole-pub").await;
    let send = |from: i64, to: i64| {
        let client = client.clone();
        async move {
            for i in from..to {
                client
                    .publish(topic, QoS::AtLeastOnce, false, format!("{{\"p\": {i}}}"))
                    .await
                    .expect("publish");
                if i % 20 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    send(0, 1).await;
    while exported_values(&node.base, &token).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the node never received the first reading"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    send(1, 500).await;
    let (before, _) = wait_for(&node.base, &token, 500, Duration::from_secs(20)).await;
    assert_eq!(before.len(), 500, "before the fault");

    // The card fails while readings keep coming.
    assert!(disk.fail(), "the filesystem did not turn read-only");
    send(500, 1500).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while metric(&node.base, "communalia_storage_write_failing").await != Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "the node never noticed that its log cannot be written"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = contribution(&node.base, &token, "Fixed the hall's lamp").await;
    assert_eq!(status, 503, "a journal write on a read-only disk: {body}");
    assert!(
        body.contains("rien n'a été enregistré") && body.contains("nothing was recorded"),
        "503 without the words: {body}"
    );
    tokio::time::sleep(ingest::sink::HOLD_MQTT + Duration::from_secs(2)).await;
    assert_eq!(
        metric(&node.base, "communalia_storage_write_failing").await,
        Some(1.0),
        "writes on a read-only disk"
    );
    let live = get_json(&format!("{}/api/live", node.base)).await;
    assert!(live["site"].is_object(), "{live}");
    let wall = get_text(&format!("{}/?lang=en", node.base)).await;
    assert!(
        wall.contains("storage-note"),
        "the wall says nothing of the disk"
    );
    let held = exported_values(&node.base, &token).await;
    assert_exactly_once(&held, 500, "while the disk is read-only");

    // The card comes back under the running node.
    disk.repair().expect("repair and mount the card again");
    let back = Instant::now();
    let mut first = None;
    while first.is_none() && back.elapsed() < Duration::from_secs(30) {
        if exported_values(&node.base, &token).await.len() > 500 {
            first = Some(back.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (values, _) = wait_for(&node.base, &token, 1500, Duration::from_secs(30)).await;
    let all = back.elapsed();
    println!(
        "card mounted again: first reading ingested {first:?} later, all 1500 stored {all:?} later"
    );
    if values.len() < 1500 {
        assert_exactly_once(
            &values,
            1500,
            "ingest did not resume within 30 s of the card coming back",
        );
    }
    send(1500, 1600).await;
    let (_, _) = wait_for(&node.base, &token, 1600, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_exactly_once(
        &exported_values(&node.base, &token).await,
        1600,
        "after the card came back",
    );
    assert_eq!(
        metric(&node.base, "communalia_storage_write_failing").await,
        Some(0.0)
    );

    // The journal writes to the card that is there now, and nothing half-written:
    // the refused contribution is not in it, the one recorded now is.
    let (status, body) = contribution(&node.base, &token, "Cleaned the panels").await;
    assert_eq!(status, 201, "a journal write once the card is back: {body}");
    let verify = run_cli(&["ledger", "verify", "--config", &cfg], "");
    assert!(verify.status.success(), "ledger verify: {verify:?}");
    let listed = reqwest::Client::new()
        .get(format!("{}/api/contributions", node.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json::<serde_json::Value>()
        .await
        .expect("contributions");
    let listed = listed.to_string();
    assert!(
        listed.contains("Cleaned the panels") && !listed.contains("Fixed the hall's lamp"),
        "contributions in the journal: {listed}"
    );

    // After a restart on the card: the same readings, each once.
    node.kill();
    node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    let (_, _) = wait_for(&node.base, &token, 1600, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_exactly_once(
        &exported_values(&node.base, &token).await,
        1600,
        "after a restart",
    );
    node.kill();
    let _ = client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_turning_read_only_with_mosquitto_resumes_by_itself_exactly_once() {
    if !is_root() {
        let _ = LoopDisk::mount(32);
        return;
    }
    let Some(broker) = persistent_mosquitto() else {
        skip("mosquitto");
        return;
    };
    let mqtt = format!("broker = \"mqtt://127.0.0.1:{}\"", broker.port);
    read_only_and_back(&mqtt, broker.port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_turning_read_only_with_the_embedded_broker_resumes_by_itself_exactly_once() {
    let port = free_port();
    let mqtt = format!("broker = \"embedded\"\nembedded_bind = \"127.0.0.1:{port}\"");
    read_only_and_back(&mqtt, port).await;
}

/// Which fault the node is killed in.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Full,
    ReadOnly,
}

/// The node is SIGKILLed while its log cannot be written (disk full, or card
/// read-only) and it holds messages unacknowledged; the fault is cleared (space
/// freed; the card unmounted, repaired and mounted again, as an operator does once
/// nothing holds it) and the node started again: Mosquitto sends again what was
/// never acknowledged, nothing durable is lost, nothing is doubled.
///
/// With the embedded broker (`embedded`), the broker dies with the node, and the
/// devices had their acknowledgement from it: what it and the node held, never
/// durable, is gone. Then nothing durable is lost and nothing is doubled, and what
/// comes after the restart is stored; the loss is counted and said.
async fn killed_during(fault: Fault, embedded: bool) {
    enum Disk {
        Tmpfs(Tmpfs),
        Loop(LoopDisk),
    }
    let disk = match fault {
        Fault::Full => Tmpfs::mount("3m").map(Disk::Tmpfs),
        Fault::ReadOnly => LoopDisk::mount(32).map(Disk::Loop),
    };
    let Some(mut disk) = disk else {
        return;
    };
    let (broker, mqtt, port) = if embedded {
        let port = free_port();
        let mqtt = format!("broker = \"embedded\"\nembedded_bind = \"127.0.0.1:{port}\"");
        (None, mqtt, port)
    } else {
        let Some(broker) = persistent_mosquitto() else {
            skip("mosquitto");
            return;
        };
        let mqtt = format!("broker = \"mqtt://127.0.0.1:{}\"", broker.port);
        let port = broker.port;
        (Some(broker), mqtt, port)
    };
    let root = match &disk {
        Disk::Tmpfs(t) => t.path().to_path_buf(),
        Disk::Loop(l) => l.path().to_path_buf(),
    };
    let conf = TempDir::new("kill-conf");
    let topic = "communalia-test/killed";
    let cfg = site(conf.path(), &root.join("data"), &mqtt, topic);
    let mut node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    let token = stdout_of(
        &run_cli(&["token", "create", "--user", "ivo", "--config", &cfg], ""),
        "token create",
    );
    let client = publisher("127.0.0.1", port, "kill-pub").await;
    let send = |from: i64, to: i64| {
        let client = client.clone();
        async move {
            for i in from..to {
                client
                    .publish(topic, QoS::AtLeastOnce, false, format!("{{\"p\": {i}}}"))
                    .await
                    .expect("publish");
                if i % 20 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    send(0, 1).await;
    while exported_values(&node.base, &token).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the node never received the first reading"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    send(1, 500).await;
    let (before, _) = wait_for(&node.base, &token, 500, Duration::from_secs(20)).await;
    assert_eq!(before.len(), 500, "before the fault");
    let filler = match &disk {
        Disk::Tmpfs(t) => Some(fill(t.path())),
        Disk::Loop(l) => {
            assert!(l.fail(), "the filesystem did not turn read-only");
            None
        }
    };
    send(500, 1500).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while metric(&node.base, "communalia_storage_write_failing").await != Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "the node never noticed that its log cannot be written"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Killed while it holds messages unacknowledged (within the hold time).
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.kill();
    if !embedded {
        // Mosquitto keeps these for the node's session while it is down.
        send(1500, 1600).await;
    }
    match (&mut disk, filler) {
        (Disk::Tmpfs(_), Some(filler)) => std::fs::remove_file(&filler).expect("free the space"),
        (Disk::Loop(l), _) => l.repair().expect("repair and mount the card again"),
        (Disk::Tmpfs(_), None) => unreachable!("a full tmpfs has its filler"),
    }
    let restarted = Instant::now();
    node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    if embedded {
        // The publisher finds the broker again, and what it sends now is stored.
        send(1500, 1600).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut values = exported_values(&node.base, &token).await;
        while !(1500..1600).all(|v| values.binary_search(&v).is_ok()) {
            assert!(
                Instant::now() < deadline,
                "{fault:?}, embedded broker: readings sent after the restart are missing"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            values = exported_values(&node.base, &token).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let values = exported_values(&node.base, &token).await;
        let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
        for v in &values {
            *counts.entry(*v).or_default() += 1;
        }
        let twice: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).take(20).collect();
        assert!(
            twice.is_empty(),
            "{fault:?}: readings stored twice: {twice:?}"
        );
        let missing_durable: Vec<i64> = (0..500).filter(|v| !counts.contains_key(v)).collect();
        assert!(
            missing_durable.is_empty(),
            "{fault:?}: durable readings lost: {missing_durable:?}"
        );
        assert!(values.iter().all(|v| (0..1600).contains(v)), "{values:?}");
        let lost = (500..1500).filter(|v| !counts.contains_key(v)).count();
        println!(
            "{fault:?}, embedded broker, killed in the fault: {lost} of the 1000 readings held while the disk could not be written are gone with the broker"
        );
        let verify = run_cli(&["ledger", "verify", "--config", &cfg], "");
        assert!(verify.status.success(), "ledger verify: {verify:?}");
        node.kill();
        let _ = client.disconnect().await;
        return;
    }
    let (_, _) = wait_for(&node.base, &token, 1600, Duration::from_secs(30)).await;
    println!(
        "{fault:?}, killed, cleared and restarted: 1600 readings {:?} after the restart",
        restarted.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_exactly_once(
        &exported_values(&node.base, &token).await,
        1600,
        &format!("{fault:?}: killed in the fault, then restarted"),
    );
    let verify = run_cli(&["ledger", "verify", "--config", &cfg], "");
    assert!(verify.status.success(), "ledger verify: {verify:?}");
    node.kill();
    let _ = client.disconnect().await;
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_on_a_full_disk_then_restarted_every_reading_exactly_once() {
    killed_during(Fault::Full, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_on_a_full_disk_with_the_embedded_broker_loses_nothing_durable_doubles_nothing() {
    killed_during(Fault::Full, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_on_a_read_only_card_then_restarted_every_reading_exactly_once() {
    killed_during(Fault::ReadOnly, false).await;
}
