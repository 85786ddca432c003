//! The command line as an installer meets it: configuration checks and the
//! journal's verification.

use std::process::Command;
use std::time::Duration;

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

/// Runs the binary to completion with `stdin` as its standard input.
pub(crate) fn run_cli(args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn communalia");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait")
}

/// Standard output of a run that must have succeeded, trimmed.
pub(crate) fn stdout_of(out: &std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The first admin and a script's token are made on the command line, before and
/// while the node runs; the token then adopts a plan through the API, the live
/// allocation follows it, and the generated password signs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_made_on_the_command_line_act_on_a_running_node() {
    let dir = TempDir::new("accounts");
    let config = format!(
        "[site]\nname = \"x\"\nlatitude = 1.0\nlongitude = 2.0\n[storage]\ndir = \"{}\"\n\
         [[service]]\nid = \"a\"\ndemand_w = 10\ntier = 1\n\
         [[service]]\nid = \"b\"\ndemand_w = 20\ntier = 2\n\
         [[member]]\nname = \"rita\"\nroles = [\"resident\"]\n",
        dir.path().display()
    );
    let path = dir.path().join("site.toml");
    std::fs::write(&path, config).expect("write");
    let cfg = path.to_string_lossy().to_string();

    // Before the first run: the journal is seeded from the configuration, then alba joins.
    let password = stdout_of(
        &run_cli(
            &[
                "user",
                "add",
                "alba",
                "--role",
                "assembly",
                "--role",
                "resident",
                "--generate",
                "--config",
                &cfg,
            ],
            "",
        ),
        "user add --generate",
    );
    assert_eq!(password.len(), 23, "one generated password: {password:?}");
    // A member from the configuration gets a password from standard input.
    stdout_of(
        &run_cli(
            &[
                "user", "add", "rita", "--role", "resident", "--config", &cfg,
            ],
            "rita's own password\n",
        ),
        "user add from stdin",
    );
    // A second account for the same member is refused, saying why.
    let again = run_cli(
        &[
            "user",
            "add",
            "alba",
            "--role",
            "assembly",
            "--role",
            "resident",
            "--generate",
            "--config",
            &cfg,
        ],
        "",
    );
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already has a password"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    // Tokens can be made while the node runs.
    let token = stdout_of(
        &run_cli(
            &[
                "token", "create", "--user", "alba", "--label", "it", "--config", &cfg,
            ],
            "",
        ),
        "token create",
    );
    assert_eq!(token.len(), 64, "{token:?}");
    let rita_token = stdout_of(
        &run_cli(&["token", "create", "--user", "rita", "--config", &cfg], ""),
        "token create for rita",
    );

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let plans = format!("{}/api/plans", node.base);
    let body = serde_json::json!({
        "plan": {
            "tiers": [{"tier": 1, "split": "pro_rata"}, {"tier": 2, "split": "equal"}],
            "services": [{"id": "b", "tier": 1, "min_w": 0.0}, {"id": "a", "tier": 2, "min_w": 0.0}],
            "sources": {}
        },
        "decision": {
            "assembly_date": "2026-03-12", "votes_for": 7, "votes_against": 1, "votes_abstain": 0,
            "quorum_required": 5, "present": 8, "minutes": "b first"
        }
    });
    let post = |auth: String| {
        client
            .post(&plans)
            .header("authorization", auth)
            .json(&body)
            .send()
    };
    let refused = post(format!("Bearer {}", "0".repeat(64)))
        .await
        .expect("post");
    assert_eq!(refused.status(), 401);
    let refused = post(format!("Bearer {rita_token}")).await.expect("post");
    assert_eq!(refused.status(), 403);
    let created = post(format!("Bearer {token}")).await.expect("post");
    assert_eq!(created.status(), 201);
    let created: serde_json::Value = created.json().await.expect("json");
    let seq = created["seq"].as_i64().expect("seq");

    let listed: serde_json::Value = client
        .get(&plans)
        .bearer_auth(&token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["history"][0]["seq"], seq);
    assert_eq!(listed["history"][0]["decision"]["entered_by"], "alba");
    assert_eq!(listed["active"]["services"][0]["id"], "b");
    // The live allocation uses the new plan.
    wait_live(
        &node,
        Duration::from_secs(10),
        "service b in tier 1",
        |live| {
            live["services"]
                .as_array()
                .and_then(|s| s.iter().find(|s| s["id"] == "b"))
                .is_some_and(|b| b["tier"] == 1)
        },
    )
    .await;

    // The generated password signs in through the form.
    sign_in(&client, &node, "alba", &password).await;
}

/// The systemd unit in `dist/` is one systemd accepts (`systemd-analyze verify`),
/// run with this build's binary in place of the installed one.
#[test]
fn the_systemd_unit_is_valid() {
    let analyze = "/usr/bin/systemd-analyze";
    if !std::path::Path::new(analyze).exists() {
        return skip("systemd-analyze (apt-get install systemd)");
    }
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dist/systemd/communalia.service"
    ))
    .expect("read the unit");
    assert!(
        unit.contains("ExecStart=/usr/local/bin/communalia run --config /etc/communalia/site.toml")
    );
    for key in [
        "StateDirectory=communalia",
        "ProtectSystem=strict",
        "Restart=on-failure",
        "DynamicUser=yes",
    ] {
        assert!(unit.contains(key), "{key}");
    }
    let dir = TempDir::new("systemd");
    let path = dir.path().join("communalia.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/communalia", BIN)).expect("write");
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !said.contains("communalia.service:"),
        "{said}"
    );
}

/// `token create --expires`, `token list` and `token revoke`, and `user password`,
/// which ends every token and session of the member, against a running node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expire_are_listed_revoked_and_end_with_a_password_change() {
    let dir = TempDir::new("tokens");
    let config = format!(
        "[site]\nname = \"x\"\nlatitude = 1.0\nlongitude = 2.0\n[storage]\ndir = \"{}\"\n\
         [[service]]\nid = \"a\"\ndemand_w = 10\ntier = 1\n",
        dir.path().display()
    );
    let path = dir.path().join("site.toml");
    std::fs::write(&path, config).expect("write");
    let cfg = path.to_string_lossy().to_string();
    stdout_of(
        &run_cli(
            &[
                "user",
                "add",
                "alba",
                "--role",
                "resident",
                "--generate",
                "--config",
                &cfg,
            ],
            "",
        ),
        "user add",
    );
    let create = |args: &[&str]| {
        let mut all = vec!["token", "create", "--user", "alba", "--config", &cfg];
        all.extend_from_slice(args);
        run_cli(&all, "")
    };
    let quarterly = stdout_of(
        &create(&["--label", "quarterly", "--expires", "90d"]),
        "token create --expires 90d",
    );
    let backup = stdout_of(&create(&["--label", "backup"]), "token create");
    let past = create(&["--expires", "2020-01-01"]);
    assert!(!past.status.success());
    assert!(
        String::from_utf8_lossy(&past.stderr).contains("already past"),
        "{}",
        String::from_utf8_lossy(&past.stderr)
    );
    let bad = create(&["--expires", "soon"]);
    assert!(!bad.status.success());

    let list = || {
        stdout_of(
            &run_cli(&["token", "list", "--user", "alba", "--config", &cfg], ""),
            "token list",
        )
    };
    let listed = list();
    assert!(
        !listed.contains(&quarterly) && !listed.contains(&backup),
        "the list never shows a token: {listed}"
    );
    let rows: Vec<&str> = listed.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{listed}");
    let in_90_days = (chrono::Utc::now() + chrono::Duration::days(90))
        .format("%Y-%m-%d")
        .to_string();
    assert!(
        rows[0].contains("quarterly") && rows[0].contains(&in_90_days),
        "{listed}"
    );
    assert!(
        rows[0].ends_with("active") && rows[1].ends_with("active"),
        "{listed}"
    );
    assert!(
        rows[1].contains("backup") && rows[1].contains("never"),
        "{listed}"
    );
    let quarterly_id = rows[0].split_whitespace().next().expect("an id");

    let node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    let client = reqwest::Client::new();
    let me = |token: String| {
        client
            .get(format!("{}/api/me", node.base))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(me(quarterly.clone()).await.expect("get").status(), 200);
    assert_eq!(me(backup.clone()).await.expect("get").status(), 200);

    // A revoked token gets 401.
    stdout_of(
        &run_cli(&["token", "revoke", quarterly_id, "--config", &cfg], ""),
        "token revoke",
    );
    assert_eq!(me(quarterly.clone()).await.expect("get").status(), 401);
    let again = run_cli(&["token", "revoke", quarterly_id, "--config", &cfg], "");
    assert!(!again.status.success(), "revoked once only");

    // A password change ends the other token too.
    let changed = run_cli(
        &["user", "password", "alba", "--generate", "--config", &cfg],
        "",
    );
    let new_password = stdout_of(&changed, "user password");
    assert_eq!(new_password.len(), 23, "{new_password:?}");
    assert!(
        String::from_utf8_lossy(&changed.stderr).contains("1 API token(s) revoked"),
        "{}",
        String::from_utf8_lossy(&changed.stderr)
    );
    assert_eq!(me(backup).await.expect("get").status(), 401);
    let listed = list();
    assert_eq!(
        listed.lines().filter(|l| l.contains("revoked")).count(),
        2,
        "{listed}"
    );
    // `user add` on a member with a password says how to change it instead.
    let add = run_cli(
        &[
            "user",
            "add",
            "alba",
            "--role",
            "resident",
            "--generate",
            "--config",
            &cfg,
        ],
        "",
    );
    assert!(!add.status.success());
    assert!(
        String::from_utf8_lossy(&add.stderr).contains("communalia user password alba"),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    drop(node);
}
