//! The history through the binary: readings published at QoS 1 to a real Mosquitto
//! survive a SIGKILL of the node exactly once, and the Parquet files it writes are
//! read back by an independent reader (pyarrow) with the same rows and schema.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::cli::{run_cli, stdout_of};
use crate::support::*;

/// A site with one generic-json meter on `topic`, the `[mqtt]` section `mqtt`, the
/// history written every `flush` and an installer account.
fn site(dir: &Path, mqtt: &str, topic: &str, flush: &str) -> String {
    let config = format!(
        "[site]\nname = \"x\"\nlatitude = 1.0\nlongitude = 2.0\ntimezone = \"Europe/Paris\"\n\
         [storage]\ndir = \"{}\"\nflush_interval = \"{flush}\"\n\
         [mqtt]\n{mqtt}\n\
         [[device]]\nid = \"meter\"\nrole = \"load\"\nprofile = \"generic-json\"\n\
         max_messages_per_s = 1000000\n\
         mqtt = {{ topic = \"{topic}\", fields = {{ power_w = \"p\" }} }}\n\
         [[service]]\nid = \"hall\"\nmeter = \"meter\"\ntier = 1\n\
         [[member]]\nname = \"ivo\"\nroles = [\"installer\"]\n",
        dir.display()
    );
    let path = dir.join("site.toml");
    std::fs::write(&path, config).expect("write the configuration");
    path.to_string_lossy().into_owned()
}

/// A Mosquitto of the test's own on a free port, which keeps every message for a
/// client that is away (the system one keeps 1,000), killed on drop.
struct Mosquitto {
    _broker: Peer,
    port: u16,
    _dir: TempDir,
}

fn own_mosquitto() -> Option<Mosquitto> {
    let binary = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let dir = TempDir::new("mosquitto-own");
    let port = free_port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\npersistence false\n"
        ),
    )
    .expect("write mosquitto.conf");
    let broker = Peer::spawn(
        std::process::Command::new(binary)
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
    Some(Mosquitto {
        _broker: broker,
        port,
        _dir: dir,
    })
}

/// A publisher on `host:port` whose event loop runs in the background.
pub(crate) async fn publisher(host: &str, port: u16, id: &str) -> AsyncClient {
    let mut opts = MqttOptions::new(id, host, port);
    opts.set_inflight(50);
    let (client, mut eventloop) = AsyncClient::new(opts, 256);
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Disconnect)) => break,
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    client
}

/// The `value` column of the CSV export of the meter's power, as integers.
pub(crate) async fn exported_values(base: &str, token: &str) -> Vec<i64> {
    let body = reqwest::Client::new()
        .get(format!(
            "{base}/api/export?device=meter&metric=power_w&format=csv"
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("export")
        .text()
        .await
        .expect("export body");
    let mut lines = body.lines();
    assert_eq!(lines.next(), Some("ts,device,metric,value"), "{body}");
    let mut values: Vec<i64> = lines
        .map(|l| {
            let v = l.rsplit(',').next().unwrap_or_default();
            v.parse::<f64>().unwrap_or_else(|e| panic!("{l}: {e}")) as i64
        })
        .collect();
    values.sort_unstable();
    values
}

/// Every reading published at QoS 1 is in the history exactly once, though the node
/// was killed without warning in the middle and more arrived while it was down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_sent_at_qos_1_survive_a_sigkill_exactly_once() {
    let Some(broker) = own_mosquitto() else {
        skip("mosquitto");
        return;
    };
    const N: i64 = 20_000;
    let dir = TempDir::new("history-crash");
    let topic = "communalia-test/crash".to_string();
    let mqtt = format!("broker = \"mqtt://127.0.0.1:{}\"", broker.port);
    let cfg = site(dir.path(), &mqtt, &topic, "5m");
    let mut node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    let token = stdout_of(
        &run_cli(&["token", "create", "--user", "ivo", "--config", &cfg], ""),
        "token create",
    );
    let client = publisher("127.0.0.1", broker.port, "crash-pub").await;
    // The node's subscription is in place once a first message comes through.
    let deadline = Instant::now() + Duration::from_secs(20);
    client
        .publish(&topic, QoS::AtLeastOnce, false, "{\"p\": 0}")
        .await
        .expect("publish");
    while exported_values(&node.base, &token).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the node never received the first reading"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The rest, ten messages every 2 ms, so that some are always inside the node on
    // their way to the log; three times while they stream in, the node is killed
    // without warning and started again.
    let published = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(1));
    let burst = {
        let client = client.clone();
        let topic = topic.clone();
        let published = published.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(2));
            for i in 1..N {
                if i % 10 == 0 {
                    tick.tick().await;
                }
                client
                    .publish(&topic, QoS::AtLeastOnce, false, format!("{{\"p\": {i}}}"))
                    .await
                    .expect("publish");
                published.store(i + 1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    for k in 1..=3 {
        while published.load(std::sync::atomic::Ordering::Relaxed) < k * N / 4 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        node.kill();
        let at_kill = published.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            at_kill < N,
            "the stream was over before kill {k} ({at_kill})"
        );
        node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    }
    burst.await.expect("stream");
    let expected: Vec<i64> = (0..N).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut values = exported_values(&node.base, &token).await;
    while values.len() < N as usize && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        values = exported_values(&node.base, &token).await;
    }
    // Give redeliveries that would duplicate a reading the time to arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let values = exported_values(&node.base, &token).await;
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for v in &values {
        *counts.entry(*v).or_default() += 1;
    }
    let missing: Vec<i64> = expected
        .iter()
        .filter(|v| !counts.contains_key(v))
        .copied()
        .collect();
    let twice: Vec<(&i64, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    let first = |v: &[i64]| v.iter().take(20).copied().collect::<Vec<_>>();
    assert!(
        missing.is_empty(),
        "{} readings lost, first {:?}",
        missing.len(),
        first(&missing)
    );
    let twice: Vec<_> = twice.into_iter().take(20).collect();
    assert!(
        twice.is_empty(),
        "readings stored more than once (first 20): {twice:?}"
    );
    assert!(
        values == expected,
        "{} readings, expected {N}",
        values.len()
    );
    let _ = client.disconnect().await;
}

/// The files the node writes are Parquet that pyarrow reads: the readings schema
/// and the rows the node itself exports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_reads_the_nodes_parquet_files() {
    let have_pyarrow = std::process::Command::new("python3")
        .args(["-c", "import pyarrow"])
        .status()
        .is_ok_and(|s| s.success());
    if !have_pyarrow {
        skip("pyarrow");
        return;
    }
    let dir = TempDir::new("history-pyarrow");
    let port = free_port();
    let topic = "site/meter";
    let mqtt = format!("broker = \"embedded\"\nembedded_bind = \"127.0.0.1:{port}\"");
    let cfg = site(dir.path(), &mqtt, topic, "1s");
    let node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    let token = stdout_of(
        &run_cli(&["token", "create", "--user", "ivo", "--config", &cfg], ""),
        "token create",
    );
    let client = publisher("127.0.0.1", port, "pyarrow-pub").await;
    for i in 0..50 {
        client
            .publish(
                topic,
                QoS::AtLeastOnce,
                false,
                format!("{{\"p\": {}}}", i * 10),
            )
            .await
            .expect("publish");
    }
    // Written out within the flush interval.
    let readings = dir.path().join("readings");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let values = exported_values(&node.base, &token).await;
        let files = parquet_files(&readings);
        if values.len() == 50 && !files.is_empty() && rows_in(&files) >= 50 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no Parquet with 50 rows after 30 s: {files:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let script = r#"
import json, sys, glob
import pyarrow.parquet as pq
rows = []
schema = None
for f in sorted(glob.glob(sys.argv[1] + "/date=*/*.parquet")):
    t = pq.read_table(f)
    schema = [(field.name, str(field.type)) for field in t.schema]
    for r in t.to_pylist():
        rows.append([r["ts"].isoformat(), r["device"], r["metric"], r["value"]])
print(json.dumps({"schema": schema, "rows": rows}))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, &readings.to_string_lossy()])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let schema: Vec<(String, String)> =
        serde_json::from_value(read["schema"].clone()).expect("schema");
    let expected_schema = [
        ("ts", "timestamp[ms, tz=UTC]"),
        (
            "device",
            "dictionary<values=string, indices=int32, ordered=0>",
        ),
        (
            "metric",
            "dictionary<values=string, indices=int32, ordered=0>",
        ),
        ("value", "double"),
    ]
    .map(|(a, b)| (a.to_string(), b.to_string()));
    assert_eq!(schema, expected_schema);
    let mut values: Vec<i64> = read["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r[1] == "meter" && r[2] == "power_w")
        .map(|r| r[3].as_f64().unwrap_or(f64::NAN) as i64)
        .collect();
    values.sort_unstable();
    assert_eq!(values, (0..50).map(|i| i * 10).collect::<Vec<_>>());
    assert_eq!(
        exported_values(&node.base, &token).await,
        values,
        "the node's own export agrees"
    );
    let _ = client.disconnect().await;
}

fn parquet_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for day in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(day.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if f.path().extension().is_some_and(|e| e == "parquet") {
                out.push(f.path());
            }
        }
    }
    out
}

/// Rows in Parquet files, by their footers, read by pyarrow.
fn rows_in(files: &[std::path::PathBuf]) -> usize {
    let mut total = 0;
    for f in files {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys, pyarrow.parquet as pq; print(pq.ParquetFile(sys.argv[1]).metadata.num_rows)",
                &f.to_string_lossy(),
            ])
            .output();
        if let Ok(out) = out {
            total += String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<usize>()
                .unwrap_or(0);
        }
    }
    total
}
