//! The node on its federation, through the binary: its identity.

use std::process::Command;

use sha2::{Digest, Sha256};

use crate::support::*;

fn show(config: &std::path::Path) -> String {
    let out = Command::new(BIN)
        .args(["federation", "show", "--config", &config.to_string_lossy()])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "federation show: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn field<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no `{name}` in:\n{text}"))
}

/// Base64 (standard alphabet, padded) decoded by hand, to check the printed key
/// without the code that printed it.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

#[test]
fn federation_show_makes_the_key_once_and_derives_the_node_id() {
    let dir = TempDir::new("fed");
    let path = dir.path().join("site.toml");
    std::fs::write(
        &path,
        format!(
            "[site]\nname = \"Les Tilleuls\"\nlatitude = 1.0\nlongitude = 2.0\n[storage]\ndir = \"{}\"\n",
            dir.path().join("data").display()
        ),
    )
    .expect("write");
    let first = show(&path);
    let again = show(&path);
    assert_eq!(first, again, "the key is made once");
    let public = base64_decode(field(&first, "public key:"));
    assert_eq!(public.len(), 32);
    let expected: String = Sha256::digest(&public)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(field(&first, "node id:"), expected);
    let key_file = dir.path().join("data").join("node.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(first.contains("[[node]]"), "{first}");

    // A configured id wins; the key stays the same.
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(
        &path,
        format!("{text}[federation]\nnode_id = \"tilleuls\"\n"),
    )
    .expect("write");
    let named = show(&path);
    assert_eq!(field(&named, "node id:"), "tilleuls");
    assert_eq!(field(&named, "public key:"), field(&first, "public key:"));
}

/// `communalia run` with `[federation] witnesses` signs a checkpoint of its
/// journal at start and has it cosigned by a witness (`communalia federation
/// witness`, another process) without anyone running `federation checkpoint`:
/// `ledger verify --witnesses` then finds the cosignature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_node_has_its_journal_witnessed_by_itself() {
    let dir = TempDir::new("fed-witnessing");
    let site = |name: &str, extra: &str| {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "[site]\nname = \"{name}\"\nlatitude = 1.0\nlongitude = 2.0\n[storage]\ndir = \"{}\"\n\
                 [[member]]\nname = \"ana\"\nroles = [\"resident\"]\n{extra}",
                dir.path().join(name).display()
            ),
        )
        .expect("write");
        path
    };
    let node_cfg = site("tilleuls", "");
    let log_key = field(&show(&node_cfg), "checkpoint key (for a witness's `logs`):").to_string();
    let port = free_port();
    let witness_cfg = site(
        "platanes",
        &format!("[federation.witness]\nbind = \"127.0.0.1:{port}\"\nlogs = [\"{log_key}\"]\n"),
    );
    let witness_key = field(
        &show(&witness_cfg),
        "witness key (for a neighbour's `witnesses`):",
    )
    .to_string();
    let node_cfg = site(
        "tilleuls",
        &format!(
            "[federation]\ncheckpoint_every = \"1h\"\n\
             witnesses = [{{ url = \"http://127.0.0.1:{port}\", key = \"{witness_key}\" }}]\n"
        ),
    );
    let _witness = Peer::spawn(
        Command::new(BIN)
            .args([
                "federation",
                "witness",
                "--config",
                &witness_cfg.to_string_lossy(),
            ])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null()),
    )
    .expect("witness");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !tcp_open(&format!("127.0.0.1:{port}")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the witness did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let node_s = node_cfg.to_string_lossy().into_owned();
    let _node = spawn(&["run", "--config", &node_s, "--bind", "127.0.0.1:0"]);
    let checkpoint = dir.path().join("tilleuls").join("checkpoint.note");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let verify = Command::new(BIN)
            .args(["ledger", "verify", "--witnesses", "--config", &node_s])
            .output()
            .expect("verify");
        let out = String::from_utf8_lossy(&verify.stdout).into_owned();
        if verify.status.success() && out.contains("cosigned by 1 of 1") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no cosigned checkpoint within 30 s ({}): {out} {}",
            checkpoint.display(),
            String::from_utf8_lossy(&verify.stderr)
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}
