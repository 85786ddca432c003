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
