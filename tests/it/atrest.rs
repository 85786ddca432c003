//! Encryption at rest through the binary (DESIGN.md §10): a node with a key file
//! writes a journal that `sqlite3` cannot read, history files that pyarrow reads
//! with the key and not without, and a write-ahead log with nothing in clear;
//! `ledger verify` passes with the key and fails clearly without it or with
//! another; a clear-text node is converted by `communalia encrypt`, and its key is
//! wrapped again by `communalia key rotate`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rumqttc::QoS;

use crate::cli::{run_cli, stdout_of};
use crate::history::{exported_values, publisher};
use crate::support::*;

/// A site with one generic-json meter on `site/meter` (embedded broker on `port`),
/// the history written every second and an installer account; `storage_extra` goes
/// into `[storage]` (the key file); written as `dir/name.toml`.
fn site(dir: &Path, port: u16, name: &str, storage_extra: &str) -> String {
    let config = format!(
        "[site]\nname = \"x\"\nlatitude = 1.0\nlongitude = 2.0\ntimezone = \"Europe/Paris\"\n\
         [storage]\ndir = \"{}\"\nflush_interval = \"1s\"\n{storage_extra}\n\
         [mqtt]\nbroker = \"embedded\"\nembedded_bind = \"127.0.0.1:{port}\"\n\
         [[device]]\nid = \"meter\"\nrole = \"load\"\nprofile = \"generic-json\"\n\
         max_messages_per_s = 1000000\n\
         mqtt = {{ topic = \"site/meter\", fields = {{ power_w = \"p\" }} }}\n\
         [[service]]\nid = \"hall\"\nmeter = \"meter\"\ntier = 1\n\
         [[member]]\nname = \"ivo\"\nroles = [\"installer\"]\n",
        dir.join("data").display()
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).expect("write the configuration");
    path.to_string_lossy().into_owned()
}

fn key_file_line(path: &Path) -> String {
    format!("key_file = \"{}\"", path.display())
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn parquet_files(data: &Path) -> Vec<PathBuf> {
    files_under(&data.join("readings"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect()
}

fn contains(bytes: &[u8], needle: &[u8]) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle)
}

/// pyarrow's reading of the history files: `Ok(values)` of the meter's power, or
/// `Err(pyarrow's message)`. With `key`, through pyarrow's own Parquet encryption
/// tools (`CryptoFactory`) and a KMS client that answers the node's master key
/// `communalia-history` with `key`.
fn pyarrow_values(files: &[PathBuf], key: Option<&str>) -> Result<Vec<i64>, String> {
    let script = r#"
import json, sys
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe
key = sys.argv[1]
props = None
if key:
    class Kms(pe.KmsClient):
        def __init__(self, config):
            pe.KmsClient.__init__(self)
        def wrap_key(self, key_bytes, master_key_identifier):
            raise NotImplementedError("a reader never wraps")
        def unwrap_key(self, wrapped_key, master_key_identifier):
            if master_key_identifier != "communalia-history":
                raise KeyError(master_key_identifier)
            return bytes.fromhex(key)
    factory = pe.CryptoFactory(lambda config: Kms(config))
    props = factory.file_decryption_properties(pe.KmsConnectionConfig(), pe.DecryptionConfiguration())
values = []
for f in sys.argv[2:]:
    t = pq.read_table(f, decryption_properties=props)
    for r in t.to_pylist():
        if r["device"] == "meter" and r["metric"] == "power_w":
            values.append(int(r["value"]))
print(json.dumps(sorted(values)))
"#;
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", script, key.unwrap_or("")]);
    cmd.args(files);
    let out = cmd.output().expect("python3");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("json"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
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
    // QoS 1: the broker has them once the client let them go.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = client.disconnect().await;
}

/// Waits until the node's export holds `n` values and the history files hold them
/// too (read by pyarrow with `key`); returns the exported values.
async fn wait_in_history(
    node: &NodeProc,
    token: &str,
    data: &Path,
    n: usize,
    key: Option<&str>,
) -> Vec<i64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let values = exported_values(&node.base, token).await;
        let files = parquet_files(data);
        if values.len() == n
            && !files.is_empty()
            && pyarrow_values(&files, key).is_ok_and(|v| v.len() == n)
        {
            return values;
        }
        assert!(
            Instant::now() < deadline,
            "{} values exported, files {files:?} after 60 s",
            values.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn sqlite3_error(db: &Path) -> Option<String> {
    let out = std::process::Command::new("sqlite3")
        .arg(db)
        .arg("SELECT count(*) FROM journal;")
        .output()
        .ok()?;
    Some(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

fn have_peers() -> bool {
    if !python_has("pyarrow") {
        skip("pyarrow");
        return false;
    }
    if std::process::Command::new("sqlite3")
        .arg("--version")
        .output()
        .is_err()
    {
        skip("sqlite3");
        return false;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_node_keeps_its_data_unreadable_without_its_key() {
    if !have_peers() {
        return;
    }
    let dir = TempDir::new("atrest");
    let data = dir.path().join("data");
    let key_file = dir.path().join("keys/node.key");
    let port = free_port();
    let cfg = site(dir.path(), port, "site", &key_file_line(&key_file));
    let node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);

    // The key file was made at first start, for its owner only, outside the data.
    let mode = std::fs::metadata(&key_file)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(data.join("keyring.json").exists());

    let token = stdout_of(
        &run_cli(&["token", "create", "--user", "ivo", "--config", &cfg], ""),
        "token create",
    );
    publish_values(port, "atrest-pub", (0..40).map(|i| 1000 + i)).await;
    let history_key = stdout_of(
        &run_cli(&["key", "history-key", "--config", &cfg], ""),
        "key history-key",
    );
    let values = wait_in_history(&node, &token, &data, 40, Some(&history_key)).await;
    assert_eq!(values, (0..40).map(|i| 1000 + i).collect::<Vec<_>>());

    // History: pyarrow reads the files with the key, and the same values; without
    // it, not even the footer.
    let files = parquet_files(&data);
    assert_eq!(
        pyarrow_values(&files, Some(&history_key)),
        Ok(values.clone())
    );
    let without =
        pyarrow_values(&files, None).expect_err("pyarrow read an encrypted file without its key");
    assert!(without.to_lowercase().contains("encrypt"), "{without}");
    let wrong = pyarrow_values(&files, Some(&"00".repeat(32))).expect_err("read with a wrong key");
    assert!(!wrong.is_empty());

    // Nothing of a device in clear on disk: not in paths, not in any file's bytes.
    for path in files_under(&data) {
        let rel = path.strip_prefix(&data).expect("under data");
        assert!(
            !rel.to_string_lossy().contains("meter"),
            "a device id in a path: {rel:?}"
        );
        let name = rel.to_string_lossy();
        if name.ends_with(".parquet")
            || name.starts_with("wal/")
            || name.starts_with("ledger.sqlite")
        {
            let bytes = std::fs::read(&path).expect("read");
            assert!(
                !contains(&bytes, b"meter"),
                "a device id in clear in {rel:?}"
            );
            assert!(
                !contains(&bytes, b"power_w"),
                "a metric in clear in {rel:?}"
            );
        }
        if name.starts_with("wal/") && name.ends_with(".wal") {
            let bytes = std::fs::read(&path).expect("read");
            assert_eq!(&bytes[..8], b"CMNLWAS1", "{rel:?} is not a sealed segment");
        }
    }

    // Journal: SQLCipher; sqlite3 does not read it, `ledger verify` does with the key.
    let ledger = data.join("ledger.sqlite");
    let said = sqlite3_error(&ledger).expect("sqlite3");
    assert!(
        said.contains("file is not a database"),
        "sqlite3 said: {said}"
    );
    let verified = run_cli(&["ledger", "verify", "--config", &cfg], "");
    assert!(
        stdout_of(&verified, "ledger verify").contains("chain intact"),
        "{verified:?}"
    );

    // Without a key configured, and with another key file: one clear error each,
    // naming what is wrong, before any database is read.
    let no_key = site(dir.path(), port, "no-key", "");
    let out = run_cli(&["ledger", "verify", "--config", &no_key], "");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("keyring.json") && err.contains("no [storage] key_file"),
        "{err}"
    );

    let other_key = dir.path().join("keys/other.key");
    let other = site(dir.path(), port, "other", &key_file_line(&other_key));
    // A well-formed key file (64 hexadecimal digits, mode 0600) of another node.
    std::fs::write(&other_key, format!("{}\n", "5a".repeat(32))).expect("write");
    std::fs::set_permissions(&other_key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = run_cli(&["ledger", "verify", "--config", &other], "");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("other.key") && err.contains("does not open the data key"),
        "{err}"
    );

    // A key file others can read is refused, even the right one.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = run_cli(&["ledger", "verify", "--config", &cfg], "");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("can be read by others"), "{err}");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    drop(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clear_node_is_encrypted_in_place_then_its_key_rotated() {
    if !have_peers() {
        return;
    }
    let dir = TempDir::new("atrest-encrypt");
    let data = dir.path().join("data");
    let port = free_port();
    let clear_cfg = site(dir.path(), port, "clear", "");
    let node = spawn(&["run", "--config", &clear_cfg, "--bind", "127.0.0.1:0"]);
    let token = stdout_of(
        &run_cli(
            &["token", "create", "--user", "ivo", "--config", &clear_cfg],
            "",
        ),
        "token create",
    );
    publish_values(port, "atrest-clear-pub", (0..30).map(|i| 2000 + i)).await;
    let values = wait_in_history(&node, &token, &data, 30, None).await;
    drop(node);
    let said = sqlite3_error(&data.join("ledger.sqlite")).expect("sqlite3");
    assert!(
        said.trim() != "" && !said.contains("not a database"),
        "a clear journal: {said}"
    );

    // A key configured on clear data: the node (any command) refuses to open it
    // and says what to do.
    let key_file = dir.path().join("node.key");
    let cfg = site(dir.path(), port, "site", &key_file_line(&key_file));
    let out = run_cli(&["ledger", "verify", "--config", &cfg], "");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("communalia encrypt"), "{err}");

    let out = run_cli(&["encrypt", "--config", &cfg], "");
    let said = stdout_of(&out, "encrypt");
    assert!(said.contains("encrypted and verified"), "{said}");
    assert!(
        !dir.path().join("data.clear-old").exists(),
        "the clear copy is still there"
    );
    assert!(!dir.path().join("data.encrypting").exists());
    let said = sqlite3_error(&data.join("ledger.sqlite")).expect("sqlite3");
    assert!(
        said.contains("file is not a database"),
        "sqlite3 said: {said}"
    );
    assert!(
        stdout_of(
            &run_cli(&["ledger", "verify", "--config", &cfg], ""),
            "verify"
        )
        .contains("chain intact")
    );
    let history_key = stdout_of(
        &run_cli(&["key", "history-key", "--config", &cfg], ""),
        "key history-key",
    );
    let files = parquet_files(&data);
    assert_eq!(
        pyarrow_values(&files, Some(&history_key)),
        Ok(values.clone())
    );
    assert!(pyarrow_values(&files, None).is_err());

    // Rotation: a new key file wraps the same data key; the old one opens nothing.
    let new_key = dir.path().join("rotated.key");
    let out = run_cli(
        &[
            "key",
            "rotate",
            "--config",
            &cfg,
            "--to-key-file",
            &new_key.to_string_lossy(),
        ],
        "",
    );
    assert!(stdout_of(&out, "key rotate").contains("key_file"));
    let out = run_cli(&["ledger", "verify", "--config", &cfg], "");
    assert!(
        !out.status.success(),
        "the old key file still opens the data"
    );
    let rotated = site(dir.path(), port, "rotated", &key_file_line(&new_key));
    assert!(
        stdout_of(
            &run_cli(&["ledger", "verify", "--config", &rotated], ""),
            "verify"
        )
        .contains("chain intact")
    );

    // The encrypted node starts and answers the same export.
    let node = spawn(&["run", "--config", &rotated, "--bind", "127.0.0.1:0"]);
    assert_eq!(exported_values(&node.base, &token).await, values);
    drop(node);
}

/// `(node id, public key)` as `communalia federation show` prints them.
fn federation_identity(cfg: &str) -> (String, String) {
    let said = stdout_of(
        &run_cli(&["federation", "show", "--config", cfg], ""),
        "federation show",
    );
    let field = |name: &str| {
        said.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no `{name}` in {said}"))
            .trim()
            .to_string()
    };
    (field("node id:"), field("public key:"))
}

/// The federation's signing key is kept under the data key once the data is
/// encrypted: `communalia encrypt` seals it (the file no longer holds the key in
/// clear), and the node keeps the same id and public key through the encryption
/// and a rotation of the key-encryption key; without the key, it is refused.
#[test]
fn the_node_key_is_sealed_by_encrypt_and_keeps_its_identity() {
    let dir = TempDir::new("atrest-node-key");
    let data = dir.path().join("data");
    let port = free_port();
    let clear_cfg = site(dir.path(), port, "clear", "");
    let before = federation_identity(&clear_cfg);
    let key_path = data.join("node.key");
    let clear_text = std::fs::read_to_string(&key_path).expect("node.key");
    let seed_line = clear_text
        .lines()
        .nth(1)
        .expect("the key line")
        .trim()
        .to_string();
    assert_eq!(seed_line.len(), 44, "a base64 seed: {clear_text}");

    let key_file = dir.path().join("data.key");
    let cfg = site(dir.path(), port, "site", &key_file_line(&key_file));
    let said = stdout_of(&run_cli(&["encrypt", "--config", &cfg], ""), "encrypt");
    assert!(said.contains("encrypted and verified"), "{said}");
    let sealed = std::fs::read(&key_path).expect("node.key");
    assert!(
        !contains(&sealed, seed_line.as_bytes()),
        "node.key still holds the key in clear"
    );
    assert!(
        String::from_utf8_lossy(&sealed).starts_with("communalia node key (ed25519 seed, sealed"),
        "{}",
        String::from_utf8_lossy(&sealed)
    );
    assert_eq!(
        std::fs::metadata(&key_path)
            .expect("node.key")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(federation_identity(&cfg), before);

    // The clear configuration (no key) cannot use it.
    let out = run_cli(&["federation", "show", "--config", &clear_cfg], "");
    assert!(
        !out.status.success(),
        "the node key opened without the data key"
    );

    let new_key = dir.path().join("rotated.key");
    stdout_of(
        &run_cli(
            &[
                "key",
                "rotate",
                "--config",
                &cfg,
                "--to-key-file",
                &new_key.to_string_lossy(),
            ],
            "",
        ),
        "key rotate",
    );
    let rotated = site(dir.path(), port, "rotated", &key_file_line(&new_key));
    assert_eq!(federation_identity(&rotated), before);
    assert_eq!(std::fs::read(&key_path).expect("node.key"), sealed);
}

/// A passphrase from the environment (`[storage] passphrase = "env:VAR"`): the
/// node starts with it and encrypts its new data directory (argon2id); a wrong one
/// is refused naming the keyring, a missing variable naming the variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passphrase_from_the_environment_opens_the_data_and_a_wrong_one_is_refused() {
    const VAR: &str = "COMMUNALIA_IT_PASSPHRASE";
    let dir = TempDir::new("atrest-passphrase");
    let data = dir.path().join("data");
    let cfg = site(
        dir.path(),
        free_port(),
        "site",
        &format!("passphrase = \"env:{VAR}\""),
    );
    let right = "correct horse battery staple";
    let mut node = spawn_with_env(
        &["run", "--config", &cfg, "--bind", "127.0.0.1:0"],
        &[(VAR, right)],
    );
    let live = get_json(&format!("{}/api/live", node.base)).await;
    assert!(live["site"].is_object(), "{live}");
    node.kill();
    let keyring = data.join("keyring.json");
    let ring = std::fs::read_to_string(&keyring).expect("the keyring");
    assert!(ring.contains("argon2id"), "{ring}");
    assert!(!ring.contains(right), "the passphrase is in the keyring");

    let verify = |passphrase: Option<&str>| {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(["ledger", "verify", "--config", &cfg])
            .env("RUST_LOG", "warn")
            .env_remove(VAR);
        if let Some(p) = passphrase {
            cmd.env(VAR, p);
        }
        cmd.output().expect("run")
    };
    let ok = verify(Some(right));
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("chain intact"),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let wrong = verify(Some("correct horse battery stapler"));
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        err.contains("does not open the data key") && err.contains(&keyring.display().to_string()),
        "{err}"
    );
    assert!(err.contains(&format!("${VAR}")), "which passphrase: {err}");
    let missing = verify(None);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains(VAR) && err.contains("not set"), "{err}");
}
