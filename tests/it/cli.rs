//! The command line as an installer meets it: configuration checks and the
//! journal's verification.

use std::process::Command;

use crate::support::*;

#[test]
fn check_config_accepts_the_shipped_files_and_names_the_line_of_a_mistake() {
    for f in ["config/demo.toml", "config/example-site.toml"] {
        let path = format!("{}/{f}", env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(BIN)
            .args(["check-config", &path])
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dir = TempDir::new("cfg");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[site]\nname = \"x\"\nlatitude = 1.0\nlongitude = 2.0\nlanguage = \"de\"\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["check-config", &path.to_string_lossy()])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("line 5") && err.contains("de"),
        "{err}"
    );
}

#[test]
fn web_port_taken_is_reported_with_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = TempDir::new("port");
    let path = dir.path().join("site.toml");
    std::fs::write(
        &path,
        format!(
            "[site]\nname = \"x\"\nlatitude = 1.0\nlongitude = 2.0\n[storage]\ndir = \"{}\"\n",
            dir.path().display()
        ),
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["run", "--config", &path.to_string_lossy(), "--bind", &addr])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr), "the error names {addr}: {err}");
}

#[test]
fn ledger_verify_names_the_entry_whose_payload_was_changed() {
    let dir = TempDir::new("verify");
    let config = format!(
        "[site]\nname = \"x\"\nlatitude = 1.0\nlongitude = 2.0\n[storage]\ndir = \"{}\"\n\
         [[service]]\nid = \"a\"\ndemand_w = 10\ntier = 1\n[[member]]\nname = \"ana\"\nroles = [\"resident\"]\n\
         [[member]]\nname = \"bo\"\nroles = [\"assembly\"]\n",
        dir.path().display()
    );
    let path = dir.path().join("site.toml");
    std::fs::write(&path, config).expect("write");
    let cfg = path.to_string_lossy().to_string();
    // Starting the node records the members and the initial plan.
    let node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    drop(node);
    let verify = || {
        Command::new(BIN)
            .args(["ledger", "verify", "--config", &cfg])
            .output()
            .expect("verify")
    };
    let ok = verify();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );

    // Change one byte of the second entry's stored payload, as a tamperer with
    // the database file would.
    let db = dir.path().join("ledger.sqlite");
    let conn = rusqlite::Connection::open(&db).expect("open db");
    let payload: String = conn
        .query_row("SELECT payload FROM journal WHERE seq = 2", [], |r| {
            r.get(0)
        })
        .expect("entry 2");
    let tampered = payload.replacen("bo", "bp", 1);
    assert_ne!(payload, tampered, "the payload names the member");
    // The journal's append-only triggers guard against mistakes, not against a
    // tamperer, who can drop them as we do here.
    conn.execute_batch("DROP TRIGGER journal_no_update; DROP TRIGGER journal_no_delete;")
        .expect("drop triggers");
    conn.execute("UPDATE journal SET payload = ?1 WHERE seq = 2", [&tampered])
        .expect("tamper");
    drop(conn);
    let bad = verify();
    assert!(!bad.status.success());
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(out.contains("entry 2"), "verify names entry 2: {out}");
}
