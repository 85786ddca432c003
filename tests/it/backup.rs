//! Backups through the binary (DESIGN.md §10): `communalia backup` of a running
//! node, read by Debian's `age` and `tar`; `communalia restore` into a fresh
//! directory, after which `ledger verify` passes with the same head and the
//! restored node exports the same readings, with encryption on and off; backups
//! taken while readings stream in hold each acknowledged reading once; an
//! archive made by `age -r` from a tar made by GNU tar restores too; a wrong
//! identity, a truncated archive, a flipped byte, an occupied directory and tar
//! members reaching outside are refused, naming what, and leave nothing behind.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rumqttc::QoS;
use serde_json::Value;

use crate::cli::{run_cli, stdout_of};
use crate::history::{exported_values, publisher};
use crate::ledger_cli::{earn_100, token};
use crate::support::*;

/// Debian's `age` and `age-keygen`, the independent reader and writer.
fn have_age() -> bool {
    let ok = |bin: &str| {
        Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ok("age") && ok("age-keygen") {
        return true;
    }
    skip("age");
    false
}

/// `age-keygen -o FILE`: the identity file and its recipient.
fn keygen(path: &Path) -> String {
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(path)
        .output()
        .expect("age-keygen");
    assert!(out.status.success(), "{out:?}");
    let out = Command::new("age-keygen")
        .arg("-y")
        .arg(path)
        .output()
        .expect("age-keygen -y");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A site with a generic-json meter on `site/meter` (embedded broker on `port`),
/// three residents and an installer; the data in `data`, the history written every
/// second; `storage_extra` and `backup` go into their sections.
fn site(
    dir: &Path,
    name: &str,
    data: &Path,
    port: u16,
    storage_extra: &str,
    backup: &str,
) -> String {
    let config = format!(
        "[site]\nname = \"x\"\nlatitude = 1.0\nlongitude = 2.0\ntimezone = \"Europe/Paris\"\n\
         [storage]\ndir = \"{}\"\nflush_interval = \"1s\"\n{storage_extra}\n\
         [mqtt]\nbroker = \"embedded\"\nembedded_bind = \"127.0.0.1:{port}\"\n\
         [backup]\n{backup}\n\
         [[device]]\nid = \"meter\"\nrole = \"load\"\nprofile = \"generic-json\"\n\
         max_messages_per_s = 1000000\n\
         mqtt = {{ topic = \"site/meter\", fields = {{ power_w = \"p\" }} }}\n\
         [[service]]\nid = \"hall\"\nmeter = \"meter\"\ntier = 1\n\
         [[member]]\nname = \"ivo\"\nroles = [\"installer\"]\n\
         [[member]]\nname = \"ana\"\nroles = [\"resident\"]\n\
         [[member]]\nname = \"bo\"\nroles = [\"resident\"]\n\
         [[member]]\nname = \"cy\"\nroles = [\"resident\"]\n",
        data.display()
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).expect("write the configuration");
    path.to_string_lossy().into_owned()
}

async fn publish_values(port: u16, id: &str, values: impl Iterator<Item = i64>) {
    let client = publisher("127.0.0.1", port, id).await;
    for v in values {
        client
            .publish(
                "site/meter",
                QoS::AtLeastOnce,
                false,
                format!("{{\"p\": {v}}}"),
            )
            .await
            .expect("publish");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = client.disconnect().await;
}

fn parquet_count(data: &Path) -> usize {
    fn walk(p: &Path, n: &mut usize) {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, n);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(&data.join("readings"), &mut n);
    n
}

/// Waits until the export has `n` values and some are in Parquet files.
async fn wait_exported(node: &NodeProc, token: &str, data: &Path, n: usize) -> Vec<i64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let values = exported_values(&node.base, token).await;
        if values.len() == n && parquet_count(data) > 0 {
            return values;
        }
        assert!(
            Instant::now() < deadline,
            "{} values exported after 60 s",
            values.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn contributions(base: &str, token: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{base}/api/contributions"))
        .bearer_auth(token)
        .send()
        .await
        .expect("contributions")
        .json()
        .await
        .expect("contributions JSON")
}

/// The head hash a line `…, chain intact, head HASH…` gives.
fn head_in(out: &str) -> String {
    let after = out
        .split_once("chain intact, head ")
        .unwrap_or_else(|| panic!("no head in {out}"))
        .1;
    after
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn is_empty_or_absent(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut e| e.next().is_none())
}

/// What one round trip keeps to compare.
struct Original {
    values: Vec<i64>,
    contributions: Value,
    head: String,
    archive: PathBuf,
    identity: PathBuf,
    recipient: String,
    config_text: String,
}

/// A node with readings and contributions, backed up while it runs; the node
/// keeps running until the caller drops it.
async fn backed_up_node(dir: &Path, storage_extra: &str) -> (NodeProc, Original, String) {
    let identity = dir.join("backup-identity.txt");
    let recipient = keygen(&identity);
    let data = dir.join("data");
    let port = free_port();
    let cfg = site(
        dir,
        "site",
        &data,
        port,
        storage_extra,
        &format!("recipients = [\"{recipient}\"]"),
    );
    let node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    let ivo = token(&cfg, "ivo");
    let tokens = [token(&cfg, "ana"), token(&cfg, "bo"), token(&cfg, "cy")];
    let client = reqwest::Client::new();
    earn_100(&client, &node.base, &tokens).await;
    earn_100(&client, &node.base, &tokens).await;
    publish_values(port, "backup-pub", (0..60).map(|i| 3000 + i)).await;
    let values = wait_exported(&node, &ivo, &data, 60).await;
    let contributions = contributions(&node.base, &tokens[0]).await;
    assert_eq!(
        contributions.as_array().map(Vec::len),
        Some(2),
        "{contributions}"
    );

    let archive = dir.join("backups/site.age");
    std::fs::create_dir_all(archive.parent().expect("parent")).expect("mkdir");
    let out = run_cli(
        &[
            "backup",
            "--config",
            &cfg,
            "--to",
            &archive.to_string_lossy(),
        ],
        "",
    );
    let said = stdout_of(&out, "backup");
    assert!(said.contains("backup of"), "{said}");
    let head = head_in(&said);
    // The node's own verify of the journal has the head the backup took.
    let verified = stdout_of(
        &run_cli(&["ledger", "verify", "--config", &cfg], ""),
        "verify",
    );
    assert_eq!(
        head_in(&verified),
        head,
        "the journal moved under the backup"
    );
    // Nothing is left behind beside the archive or in the data directory.
    let beside: Vec<_> = std::fs::read_dir(archive.parent().expect("parent"))
        .expect("list")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(beside, vec![std::ffi::OsString::from("site.age")]);
    assert!(
        std::fs::read_dir(&data)
            .expect("data")
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().starts_with(".backup")),
        "a staging directory was left in the data directory"
    );
    let config_text = std::fs::read_to_string(&cfg).expect("config");
    (
        node,
        Original {
            values,
            contributions,
            head,
            archive,
            identity,
            recipient,
            config_text,
        },
        ivo,
    )
}

/// `communalia restore` into `data`, with a configuration naming `storage_extra`;
/// the restored node then verifies and answers as the original did.
async fn restore_and_compare(
    dir: &Path,
    name: &str,
    original: &Original,
    archive: &Path,
    storage_extra: &str,
    ivo: &str,
) {
    let data = dir.join(format!("{name}-data"));
    let port = free_port();
    let cfg = site(dir, name, &data, port, storage_extra, "");
    let out = run_cli(
        &[
            "restore",
            "--config",
            &cfg,
            "--from",
            &archive.to_string_lossy(),
            "--identity",
            &original.identity.to_string_lossy(),
        ],
        "",
    );
    let said = stdout_of(&out, "restore");
    assert!(
        said.contains("restored from") && said.contains("verified"),
        "{said}"
    );
    assert_eq!(head_in(&said), original.head);
    let verified = stdout_of(
        &run_cli(&["ledger", "verify", "--config", &cfg], ""),
        "verify",
    );
    assert!(verified.contains("journal intact"), "{verified}");
    assert_eq!(head_in(&verified), original.head);

    let node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    // Tokens live beside the journal: the original's act on the restored node.
    assert_eq!(exported_values(&node.base, ivo).await, original.values);
    let ana = token(&cfg, "ana");
    assert_eq!(
        contributions(&node.base, &ana).await,
        original.contributions
    );
    drop(node);
}

async fn round_trip(tag: &str, encrypted: bool) {
    if !have_age() {
        return;
    }
    let dir = TempDir::new(tag);
    let key_file = dir.path().join("keys/node.key");
    let storage_extra = if encrypted {
        format!("key_file = \"{}\"", key_file.display())
    } else {
        String::new()
    };
    let (node, original, ivo) = backed_up_node(dir.path(), &storage_extra).await;

    // Debian's age opens the archive with the identity; tar lists what is in it.
    let tar_file = dir.path().join("site.tar");
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&original.identity)
        .arg("-o")
        .arg(&tar_file)
        .arg(&original.archive)
        .output()
        .expect("age -d");
    assert!(out.status.success(), "age -d: {}", stderr(&out));
    let out = Command::new("tar")
        .arg("-tf")
        .arg(&tar_file)
        .output()
        .expect("tar -t");
    assert!(out.status.success(), "tar -t: {}", stderr(&out));
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    let names: Vec<&str> = listed.lines().collect();
    assert_eq!(names.first(), Some(&"config.toml"), "{listed}");
    assert_eq!(names.last(), Some(&"manifest.json"), "{listed}");
    for want in ["data/ledger.sqlite", "data/readings/_wal_checkpoint"] {
        assert!(names.contains(&want), "{want} missing: {listed}");
    }
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("data/readings/date=") && n.ends_with(".parquet")),
        "{listed}"
    );
    assert_eq!(names.contains(&"data/keyring.json"), encrypted, "{listed}");
    // The key file is not in it, under any name.
    let key_bytes = std::fs::read(&key_file).unwrap_or_default();
    let tar_bytes = std::fs::read(&tar_file).expect("tar");
    if encrypted {
        let key_text = String::from_utf8_lossy(&key_bytes).trim().to_string();
        assert!(!key_text.is_empty());
        assert!(
            !tar_bytes
                .windows(key_text.len())
                .any(|w| w == key_text.as_bytes()),
            "the key file is in the archive"
        );
    }

    // Restored with the node still running, into a fresh directory, same key file.
    restore_and_compare(
        dir.path(),
        "restored",
        &original,
        &original.archive,
        &storage_extra,
        &ivo,
    )
    .await;
    drop(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_node_backed_up_while_running_restores_whole() {
    round_trip("backup-enc", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clear_node_backed_up_while_running_restores_whole() {
    round_trip("backup-clear", false).await;
}

fn restore_cmd(cfg: &str, archive: &Path, identity: &Path) -> std::process::Output {
    run_cli(
        &[
            "restore",
            "--config",
            cfg,
            "--from",
            &archive.to_string_lossy(),
            "--identity",
            &identity.to_string_lossy(),
        ],
        "",
    )
}

/// `age -r` encrypting `tar` (a file) to `recipient`.
fn age_encrypt(tar: &Path, recipient: &str, out: &Path) {
    let status = Command::new("age")
        .arg("-r")
        .arg(recipient)
        .arg("-o")
        .arg(out)
        .arg(tar)
        .status()
        .expect("age -r");
    assert!(status.success());
}

/// A tar written by Python's tarfile: `config.toml` (given), then a member of
/// `kind` (`dotdot`, `absolute`, `symlink`) reaching outside.
fn hostile_tar(config: &str, kind: &str, out: &Path) {
    let script = r#"
import io, sys, tarfile
config, kind, out = sys.argv[1], sys.argv[2], sys.argv[3]
with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as t:
    data = open(config, "rb").read()
    info = tarfile.TarInfo("config.toml"); info.size = len(data)
    t.addfile(info, io.BytesIO(data))
    if kind == "symlink":
        info = tarfile.TarInfo("data/ledger.sqlite"); info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        t.addfile(info)
    else:
        name = "data/../../escaped" if kind == "dotdot" else "/tmp/communalia-escaped"
        info = tarfile.TarInfo(name); info.size = 5
        t.addfile(info, io.BytesIO(b"owned"))
"#;
    let status = Command::new("python3")
        .args(["-c", script, config, kind])
        .arg(out)
        .status()
        .expect("python3");
    assert!(status.success());
}

/// Archives the node did not write: one `age -r` made from a tar GNU tar made
/// restores; a wrong identity, a cut, a flipped byte, an occupied directory and
/// members reaching outside are refused by name and leave nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_from_outside_are_read_and_damaged_or_hostile_ones_refused() {
    if !have_age() {
        return;
    }
    let dir = TempDir::new("backup-outside");
    let key_file = dir.path().join("keys/node.key");
    let storage_extra = format!("key_file = \"{}\"", key_file.display());
    let (node, original, ivo) = backed_up_node(dir.path(), &storage_extra).await;
    drop(node);

    // age -d, tar -x, GNU tar -c (config first, manifest last), age -r.
    let plain = dir.path().join("plain.tar");
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&original.identity)
        .arg("-o")
        .arg(&plain)
        .arg(&original.archive)
        .output()
        .expect("age -d");
    assert!(out.status.success(), "{}", stderr(&out));
    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).expect("mkdir");
    let status = Command::new("tar")
        .arg("-xf")
        .arg(&plain)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .expect("tar -x");
    assert!(status.success());
    let gnu = dir.path().join("gnu.tar");
    let status = Command::new("tar")
        .arg("--format=gnu")
        .arg("-cf")
        .arg(&gnu)
        .arg("-C")
        .arg(&unpacked)
        .args(["config.toml", "data", "manifest.json"])
        .status()
        .expect("tar -c");
    assert!(status.success());
    let by_age = dir.path().join("by-age.age");
    age_encrypt(&gnu, &original.recipient, &by_age);
    restore_and_compare(
        dir.path(),
        "from-age",
        &original,
        &by_age,
        &storage_extra,
        &ivo,
    )
    .await;

    // Without a configuration file, the archive's own is written there and used.
    let blank_cfg = dir.path().join("blank.toml");
    let blank_data = dir.path().join("data");
    std::fs::rename(&blank_data, dir.path().join("data.old")).expect("move the data aside");
    let out = restore_cmd(
        &blank_cfg.to_string_lossy(),
        &original.archive,
        &original.identity,
    );
    let said = stdout_of(&out, "restore without a configuration");
    assert!(said.contains("configuration was written"), "{said}");
    assert_eq!(
        std::fs::read_to_string(&blank_cfg).expect("config"),
        original.config_text
    );
    let verified = stdout_of(
        &run_cli(
            &["ledger", "verify", "--config", &blank_cfg.to_string_lossy()],
            "",
        ),
        "verify",
    );
    assert_eq!(head_in(&verified), original.head);

    // Refusals, each into a fresh directory that stays empty (or absent).
    let target = dir.path().join("target-data");
    let cfg = site(
        dir.path(),
        "target",
        &target,
        free_port(),
        &storage_extra,
        "",
    );
    let archive_name = original.archive.to_string_lossy().into_owned();

    let stranger = dir.path().join("stranger.txt");
    keygen(&stranger);
    let out = restore_cmd(&cfg, &original.archive, &stranger);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&archive_name) && err.contains("no identity"),
        "{err}"
    );
    assert!(is_empty_or_absent(&target));

    let bytes = std::fs::read(&original.archive).expect("archive");
    let cut = dir.path().join("cut.age");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).expect("write");
    let out = restore_cmd(&cfg, &cut, &original.identity);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("cut.age") && err.contains("cut short"),
        "{err}"
    );
    assert!(is_empty_or_absent(&target), "a cut archive left files");

    let flipped = dir.path().join("flipped.age");
    let mut damaged = bytes.clone();
    let at = damaged.len() / 2;
    damaged[at] ^= 0x20;
    std::fs::write(&flipped, &damaged).expect("write");
    let out = restore_cmd(&cfg, &flipped, &original.identity);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("flipped.age") && err.contains("altered"),
        "{err}"
    );
    assert!(is_empty_or_absent(&target), "a damaged archive left files");

    // A wrong node key: the archive opens, the data does not; nothing is left.
    let other_key = dir.path().join("keys/other.key");
    let other_cfg = site(
        dir.path(),
        "other-key",
        &target,
        free_port(),
        &format!("key_file = \"{}\"", other_key.display()),
        "",
    );
    std::fs::write(&other_key, format!("{}\n", "5a".repeat(32))).expect("write");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&other_key, std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
    }
    let out = restore_cmd(&other_cfg, &original.archive, &original.identity);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("other.key") && err.contains("does not verify"),
        "{err}"
    );
    assert!(
        is_empty_or_absent(&target),
        "a restore with the wrong key left files"
    );

    // An occupied directory is refused, named, and untouched.
    std::fs::create_dir_all(&target).expect("mkdir");
    std::fs::write(target.join("something"), b"mine").expect("write");
    let out = restore_cmd(&cfg, &original.archive, &original.identity);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&target.display().to_string()) && err.contains("not empty"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(target.join("something")).expect("kept"),
        b"mine"
    );
    std::fs::remove_file(target.join("something")).expect("rm");

    // Members reaching outside, in archives age made.
    let config_path = dir.path().join("target.toml");
    for (kind, why) in [
        ("dotdot", ".."),
        ("absolute", "absolute"),
        ("symlink", "a link"),
    ] {
        let tar = dir.path().join(format!("{kind}.tar"));
        hostile_tar(&config_path.to_string_lossy(), kind, &tar);
        let archive = dir.path().join(format!("{kind}.age"));
        age_encrypt(&tar, &original.recipient, &archive);
        let out = restore_cmd(&cfg, &archive, &original.identity);
        assert!(!out.status.success(), "{kind} accepted");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{kind}.age")) && err.contains(why),
            "{kind}: {err}"
        );
        assert!(is_empty_or_absent(&target), "{kind}: files left");
        assert!(!dir.path().join("escaped").exists());
        assert!(!Path::new("/tmp/communalia-escaped").exists());
    }
}

/// Backups taken while readings stream in and the history is flushed every
/// second: the restored node has every reading acknowledged before the backup
/// began, and each reading at most once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_readings_stream_in_holds_each_reading_once() {
    if !have_age() {
        return;
    }
    let dir = TempDir::new("backup-stream");
    let identity = dir.path().join("id.txt");
    let recipient = keygen(&identity);
    let key_file = dir.path().join("keys/node.key");
    let storage_extra = format!("key_file = \"{}\"", key_file.display());
    let data = dir.path().join("data");
    let port = free_port();
    let cfg = site(
        dir.path(),
        "site",
        &data,
        port,
        &storage_extra,
        &format!("recipients = [\"{recipient}\"]"),
    );
    let node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    let ivo = token(&cfg, "ivo");
    publish_values(port, "stream-first", 0..50).await;
    let before = wait_exported(&node, &ivo, &data, 50).await;

    // 1000 more over about four seconds, while three backups are taken.
    let streaming = tokio::spawn(async move {
        let client = publisher("127.0.0.1", port, "stream-more").await;
        for v in 1000..2000i64 {
            client
                .publish(
                    "site/meter",
                    QoS::AtLeastOnce,
                    false,
                    format!("{{\"p\": {v}}}"),
                )
                .await
                .expect("publish");
            if v % 25 == 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = client.disconnect().await;
    });
    let mut archives = Vec::new();
    for i in 0..3 {
        tokio::time::sleep(Duration::from_millis(900)).await;
        let archive = dir.path().join(format!("b{i}.age"));
        let cfg = cfg.clone();
        let to = archive.to_string_lossy().into_owned();
        let out = tokio::task::spawn_blocking(move || {
            run_cli(&["backup", "--config", &cfg, "--to", &to], "")
        })
        .await
        .expect("backup task");
        stdout_of(&out, "backup while readings stream in");
        archives.push(archive);
    }
    streaming.await.expect("publisher");
    drop(node);

    let published: std::collections::BTreeSet<i64> = (0..50).chain(1000..2000).collect();
    for (i, archive) in archives.iter().enumerate() {
        let restored = dir.path().join(format!("r{i}"));
        let rcfg = site(
            dir.path(),
            &format!("r{i}"),
            &restored,
            free_port(),
            &storage_extra,
            "",
        );
        let out = restore_cmd(&rcfg, archive, &identity);
        stdout_of(&out, "restore");
        let node = spawn(&["run", "--config", &rcfg, "--bind", "127.0.0.1:0"]);
        let values = exported_values(&node.base, &ivo).await;
        drop(node);
        assert!(
            values.windows(2).all(|w| w[0] != w[1]),
            "backup {i}: a reading twice in {values:?}"
        );
        for v in &before {
            assert!(
                values.contains(v),
                "backup {i}: {v}, acknowledged before, is missing"
            );
        }
        assert!(
            values.iter().all(|v| published.contains(v)),
            "backup {i}: a reading nobody sent"
        );
        // One publisher, in order: what the backup holds is everything up to some
        // reading, none missing before it.
        let later = values.len() - 50;
        let prefix: Vec<i64> = (0..50).chain(1000..1000 + later as i64).collect();
        assert_eq!(values, prefix, "backup {i}: a gap in the readings");
        println!("backup {i}: {} readings", values.len());
    }
}
