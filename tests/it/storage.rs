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
    assert!(
        missing.is_empty(),
        "{when}: readings lost, first {missing:?}"
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
    let filler = fill(tmpfs.path());
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
    std::fs::remove_file(&filler).expect("free the space");
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
