//! How long ingest takes to resume once a full disk has room again: the node's MQTT
//! worker and sink with the write-ahead log on a 2 MB tmpfs, readings arriving at
//! QoS 1 every 10 ms from Mosquitto at 127.0.0.1:1883; the disk is filled, then
//! freed, and the time from the file's removal to the first new reading in the live
//! store is measured. Side by side in one run: space freed while the messages are
//! still held (0.5 s into the fault) and after the node has left the broker
//! (4 s in: it must connect again and take the redelivery).
//!
//!     cargo bench -p ingest --bench storage_recovery [-- ROUNDS]
//!
//! Needs root (it mounts a tmpfs) and Mosquitto; says so and stops without them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingest::config::BrokerEndpoint;
use ingest::metrics::IngestMetrics;
use ingest::mqtt::MqttClientOptions;
use ingest::store::LiveStore;
use ingest::{Ingest, resolve_devices};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use sensors::config::DeviceConfig;
use tokio_util::sync::CancellationToken;

/// A mounted tmpfs, unmounted on drop; `_dir` holds the mount point.
struct Tmpfs(PathBuf, #[allow(dead_code)] tempfile::TempDir);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

fn mount() -> Option<Tmpfs> {
    let dir = tempfile::tempdir().ok()?;
    let path = dir.path().join("data");
    std::fs::create_dir_all(&path).ok()?;
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&path)
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(Tmpfs(path, dir))
}

fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        for chunk in [64 * 1024, 4096, 1] {
            let zeros = vec![0u8; chunk];
            while file.write_all(&zeros).is_ok() {}
        }
    }
    path
}

fn device(topic: &str) -> DeviceConfig {
    toml::from_str(&format!(
        "id = \"meter\"\nrole = \"load\"\nprofile = \"generic-json\"\n\
         max_messages_per_s = 1000000\n\
         mqtt = {{ topic = \"{topic}\", fields = {{ power_w = \"p\" }} }}\n"
    ))
    .expect("device")
}

/// One round: milliseconds from the space freed to the first reading ingested.
async fn round(n: usize, freed_after: Duration) -> Option<f64> {
    let tmpfs = mount()?;
    let prefix = format!("bench-storage-{}-{n}", std::process::id());
    let topic = format!("{prefix}/meter");
    let store = Arc::new(LiveStore::new(Duration::from_secs(3600)));
    let metrics = Arc::new(IngestMetrics::default());
    let cancel = CancellationToken::new();
    let (wal, _) = ingest::open_wal(&tmpfs.0.join("wal"), &store, None).ok()?;
    let ingest = Ingest::start(
        resolve_devices(&[device(&topic)]).ok()?,
        Some(MqttClientOptions {
            endpoint: BrokerEndpoint::External {
                host: "127.0.0.1".into(),
                port: 1883,
            },
            client_id: format!("{prefix}-node"),
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
    let mut opts = MqttOptions::new(format!("{prefix}-pub"), "127.0.0.1", 1883);
    opts.set_inflight(100);
    let (client, mut eventloop) = AsyncClient::new(opts, 1000);
    let driver = tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let publishing = tokio::spawn({
        let client = client.clone();
        let topic = topic.clone();
        async move {
            for i in 0.. {
                if client
                    .publish(&topic, QoS::AtLeastOnce, false, format!("{{\"p\": {i}}}"))
                    .await
                    .is_err()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while metrics.readings_ingested() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let filler = fill(&tmpfs.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !metrics.storage().write_failing && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(freed_after).await;
    let before = metrics.readings_ingested();
    let _ = std::fs::remove_file(&filler);
    let freed = Instant::now();
    let deadline = freed + Duration::from_secs(30);
    while metrics.readings_ingested() == before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let took = freed.elapsed();
    publishing.abort();
    let _ = client.disconnect().await;
    driver.abort();
    cancel.cancel();
    ingest.join().await;
    (metrics.readings_ingested() > before).then_some(took.as_secs_f64() * 1000.0)
}

fn summary(ms: &mut [f64]) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[ms.len() - 1])
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    if !std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    }) {
        println!("skipped: tmpfs (needs root)");
        return;
    }
    if std::net::TcpStream::connect("127.0.0.1:1883").is_err() {
        println!("skipped: mosquitto not available at 127.0.0.1:1883");
        return;
    }
    let mut results = Vec::new();
    for (label, after) in [
        (
            "held (freed 0.5 s into the fault)",
            Duration::from_millis(500),
        ),
        ("left the broker (freed 4 s in)", Duration::from_secs(4)),
    ] {
        let mut ms = Vec::new();
        for n in 0..rounds {
            match round(results.len() * 1000 + n, after).await {
                Some(t) => ms.push(t),
                None => println!("{label}: round {n} did not resume within 30 s"),
            }
        }
        if ms.is_empty() {
            continue;
        }
        let (median, max) = summary(&mut ms);
        println!(
            "{label}: space freed -> first reading ingested: median {median:.0} ms, max {max:.0} ms over {} rounds",
            ms.len()
        );
        results.push((label, median));
    }
    if let [(_, held), (_, left)] = results[..] {
        println!("ratio left/held (median): {:.1}", left / held.max(0.001));
    }
}
