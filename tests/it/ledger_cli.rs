//! The contribution ledger through the binary, as a site's members and its
//! treasurer meet it: contributions, attestations and transfers over the HTTP API
//! of a running node (with tokens from `communalia token create`), then
//! `communalia ledger export`, whose lines are re-hashed here with sha2 as any
//! other program would, and `communalia ledger verify` on an intact and on a
//! tampered database.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::cli::{run_cli, stdout_of};
use crate::support::*;

/// A site whose journal has three residents, ana, bo and cy (and so two approvals
/// validate a contribution, by default); returns the configuration's path.
pub(crate) fn ledger_site(dir: &Path) -> PathBuf {
    let config = format!(
        "[site]\nname = \"x\"\nlatitude = 1.0\nlongitude = 2.0\ntimezone = \"Europe/Paris\"\n\
         [storage]\ndir = \"{}\"\n\
         [[service]]\nid = \"a\"\ndemand_w = 10\ntier = 1\n\
         [[member]]\nname = \"ana\"\nroles = [\"resident\"]\n\
         [[member]]\nname = \"bo\"\nroles = [\"resident\"]\n\
         [[member]]\nname = \"cy\"\nroles = [\"resident\"]\n",
        dir.display()
    );
    let path = dir.join("site.toml");
    std::fs::write(&path, config).expect("write the configuration");
    path
}

/// A token acting as `member`, made with `communalia token create`.
pub(crate) fn token(cfg: &str, member: &str) -> String {
    stdout_of(
        &run_cli(&["token", "create", "--user", member, "--config", cfg], ""),
        "token create",
    )
}

/// `POST` with a Bearer token; the status and the JSON body.
pub(crate) async fn post(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
) -> reqwest::Result<(u16, Value)> {
    let response = client
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, body))
}

/// ana's 10 hours, approved by bo and cy: 100 Communs to ana. Returns the id.
pub(crate) async fn earn_100(client: &reqwest::Client, base: &str, tokens: &[String; 3]) -> i64 {
    let today = chrono::Utc::now().date_naive().to_string();
    let (status, body) = post(
        client,
        &format!("{base}/api/contributions"),
        &tokens[0],
        &json!({"category": "repair", "hours": 10, "date": today,
                "description": "Rewired the hall"}),
    )
    .await
    .expect("record");
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().expect("id");
    for approver in &tokens[1..] {
        let (status, body) = post(
            client,
            &format!("{base}/api/contributions/{id}/attestations"),
            approver,
            &json!({"verdict": "approve", "comment": ""}),
        )
        .await
        .expect("attest");
        assert_eq!(status, 201, "{body}");
    }
    id
}

fn verify(cfg: &str) -> std::process::Output {
    Command::new(BIN)
        .args(["ledger", "verify", "--config", cfg])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run ledger verify")
}

/// The head hash `ledger verify` printed.
fn reported_head(out: &str) -> String {
    out.lines()
        .find_map(|l| l.split_once(", chain intact, head ").map(|(_, h)| h))
        .unwrap_or_else(|| panic!("no head in {out}"))
        .trim()
        .to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks an export the way a program without the `ledger` crate would: `seq`
/// counts 1, 2, 3…, each `prev_hash` is the line before's `hash` (64 zeros
/// first), and `hash` is the hex SHA-256 of `prev_hash` followed by the line
/// without its `hash` and `prev_hash` members, which is the entry's canonical
/// encoding (keys sorted, no whitespace, payload as stored). Returns the last hash.
fn rehash(export: &str) -> String {
    let mut prev = "0".repeat(64);
    for (i, line) in export.lines().enumerate() {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
        assert_eq!(value["seq"], i as u64 + 1, "line {}", i + 1);
        let hash = value["hash"].as_str().expect("hash").to_string();
        assert_eq!(value["prev_hash"], prev.as_str(), "line {}", i + 1);
        // A string of the line holds no unescaped quote, so these members can only
        // be the line's own: `hash` right after `author`, `prev_hash` after `payload`.
        let with_hash = format!(",\"hash\":\"{hash}\"");
        let with_prev = format!(",\"prev_hash\":\"{prev}\"");
        assert!(
            line.contains(&with_hash) && line.contains(&with_prev),
            "line {}: {line}",
            i + 1
        );
        let canonical = line.replacen(&with_hash, "", 1);
        let at = canonical.rfind(&with_prev).expect("prev_hash member");
        let canonical = format!("{}{}", &canonical[..at], &canonical[at + with_prev.len()..]);
        assert!(canonical.starts_with("{\"author\":") && canonical.contains(",\"kind\":"));
        let mut hasher = Sha256::new();
        hasher.update(prev.as_bytes());
        hasher.update(canonical.as_bytes());
        assert_eq!(hex(&hasher.finalize()), hash, "line {}: {canonical}", i + 1);
        prev = hash;
    }
    prev
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_lines_rehash_into_the_chain_that_verify_reports() {
    let dir = TempDir::new("export");
    let cfg = ledger_site(dir.path()).to_string_lossy().to_string();
    let node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    let tokens = [token(&cfg, "ana"), token(&cfg, "bo"), token(&cfg, "cy")];
    let client = reqwest::Client::new();
    earn_100(&client, &node.base, &tokens).await;
    let (status, body) = post(
        &client,
        &format!("{}/api/transfers", node.base),
        &tokens[0],
        &json!({"to": "bo", "amount": 12.5, "memo": "Pain \"maison\" \\ merci\n"}),
    )
    .await
    .expect("transfer");
    // A memo with a line break is refused; the same without it is recorded.
    assert_eq!(status, 422, "{body}");
    let (status, body) = post(
        &client,
        &format!("{}/api/transfers", node.base),
        &tokens[0],
        &json!({"to": "bo", "amount": 12.5, "memo": "Pain \"maison\" \\ merci é"}),
    )
    .await
    .expect("transfer");
    assert_eq!(status, 201, "{body}");
    let transfer_hash = body["hash"].as_str().expect("hash").to_string();

    // Verify and export while the node runs, as a treasurer would.
    let ok = verify(&cfg);
    let out = String::from_utf8_lossy(&ok.stdout).to_string();
    assert!(
        ok.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        out.contains("balances: replayed from the journal and equal to the stored ones"),
        "{out}"
    );
    assert!(out.contains("journal intact"), "{out}");
    let entries: usize = out
        .lines()
        .next()
        .and_then(|l| l.rsplit(": ").next())
        .and_then(|l| l.split(" entries").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no entry count in {out}"));

    let exported = Command::new(BIN)
        .args(["ledger", "export", "--config", &cfg])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run ledger export");
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let text = String::from_utf8(exported.stdout).expect("UTF-8 export");
    assert!(
        String::from_utf8_lossy(&exported.stderr).contains(&format!("{entries} entries exported"))
    );
    assert_eq!(text.lines().count(), entries);
    assert!(text.ends_with('\n'));
    let last = rehash(&text);
    assert_eq!(last, reported_head(&out));
    assert_eq!(last, transfer_hash, "the transfer is the last entry");
    let kinds: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| v["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    for kind in [
        "member_joined",
        "plan_adopted",
        "contribution_recorded",
        "attestation",
        "contribution_validated",
        "demurrage_settled",
        "transfer",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} in {kinds:?}");
    }
    let transfer: Value =
        serde_json::from_str(text.lines().last().unwrap_or_default()).expect("json");
    assert_eq!(transfer["payload"]["amount_micro"], 12_500_000);
    assert_eq!(transfer["payload"]["memo"], "Pain \"maison\" \\ merci é");

    // To a file: the same bytes.
    let file = dir.path().join("journal.jsonl");
    let to_file = Command::new(BIN)
        .args([
            "ledger",
            "export",
            "--config",
            &cfg,
            "--output",
            &file.to_string_lossy(),
        ])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run ledger export --output");
    assert!(
        to_file.status.success(),
        "{}",
        String::from_utf8_lossy(&to_file.stderr)
    );
    assert!(to_file.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&file).expect("read export"), text);
    drop(node);
}

/// A payload changed in the file breaks the chain at its entry; a balance changed
/// in the derived table (the journal untouched) is found by the replay, naming the
/// account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_the_entry_or_the_account_a_tamperer_changed() {
    let dir = TempDir::new("tamper");
    let cfg = ledger_site(dir.path()).to_string_lossy().to_string();
    let node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    let tokens = [token(&cfg, "ana"), token(&cfg, "bo"), token(&cfg, "cy")];
    let client = reqwest::Client::new();
    earn_100(&client, &node.base, &tokens).await;
    let (status, body) = post(
        &client,
        &format!("{}/api/transfers", node.base),
        &tokens[0],
        &json!({"to": "cy", "amount": 40, "memo": "Vélo"}),
    )
    .await
    .expect("transfer");
    assert_eq!(status, 201, "{body}");
    let transfer = body["seq"].as_i64().expect("seq");
    drop(node);
    assert!(verify(&cfg).status.success());

    let db = dir.path().join("ledger.sqlite");
    let backup = dir.path().join("ledger.backup");
    {
        let conn = rusqlite::Connection::open(&db).expect("open db");
        conn.execute_batch(&format!("VACUUM INTO '{}'", backup.display()))
            .expect("backup");
    }

    // 1. The transfer's amount, raised in the journal itself.
    {
        let conn = rusqlite::Connection::open(&db).expect("open db");
        conn.execute_batch("DROP TRIGGER journal_no_update; DROP TRIGGER journal_no_delete;")
            .expect("drop triggers");
        let changed = conn
            .execute(
                "UPDATE journal SET payload = replace(payload, '40000000', '90000000') WHERE seq = ?1",
                [transfer],
            )
            .expect("tamper");
        assert_eq!(changed, 1);
    }
    let bad = verify(&cfg);
    let out = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(2), "{out}");
    assert!(
        out.contains(&format!(
            "chain: broken at entry {transfer}: hash does not match its contents"
        )),
        "{out}"
    );
    assert!(out.contains("balances: not replayed"), "{out}");
    assert!(
        out.contains(&format!("journal broken at entry {transfer}")),
        "{out}"
    );

    // 2. The journal as it was, but cy's balance raised in the derived table.
    std::fs::remove_file(&db).expect("remove");
    let _ = std::fs::remove_file(dir.path().join("ledger.sqlite-wal"));
    let _ = std::fs::remove_file(dir.path().join("ledger.sqlite-shm"));
    std::fs::rename(&backup, &db).expect("restore");
    assert!(
        verify(&cfg).status.success(),
        "the restored journal verifies"
    );
    {
        let conn = rusqlite::Connection::open(&db).expect("open db");
        let changed = conn
            .execute(
                "UPDATE balances SET balance_micro = balance_micro + 1000000 WHERE member = 'cy'",
                [],
            )
            .expect("tamper");
        assert_eq!(changed, 1);
    }
    let bad = verify(&cfg);
    let out = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(2), "{out}");
    assert!(out.contains(" entries, chain intact, head "), "{out}");
    assert!(
        out.contains(&format!(
            "balances: the replay disagrees at entry {transfer} (account `cy`)"
        )),
        "{out}"
    );
}

/// A journal recorded before the decision rule existed, holding a plan voted down
/// (3 for, 6 against): `ledger verify` still passes, and names it as a warning.
#[test]
fn verify_passes_on_an_old_journal_and_warns_of_decisions_todays_rule_refuses() {
    let dir = TempDir::new("old-decisions");
    let cfg = ledger_site(dir.path()).to_string_lossy().to_string();
    // Seeds the journal from the configuration: three members, the initial plan.
    stdout_of(
        &run_cli(
            &[
                "user",
                "add",
                "ana",
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
    let db = dir.path().join("ledger.sqlite");
    {
        // As an older version of the program wrote it: the entry chained onto the
        // head, its row in the `plans` table.
        let conn = rusqlite::Connection::open(&db).expect("open db");
        let (seq, ts, payload, hash): (i64, String, String, String) = conn
            .query_row(
                "SELECT seq, ts, payload, hash FROM journal ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .expect("head");
        let seed: Value = serde_json::from_str(&payload).expect("seed payload");
        let decision = json!({
            "assembly_date": &ts[..10], "votes_for": 3, "votes_against": 6,
            "votes_abstain": 1, "quorum_required": 8, "present": 10,
            "minutes": "Voted down, recorded all the same."
        });
        let mut entry = ledger::Entry {
            seq: seq + 1,
            ts: chrono::DateTime::parse_from_rfc3339(&ts)
                .expect("ts")
                .with_timezone(&chrono::Utc),
            kind: ledger::EntryKind::PlanAdopted,
            author: "ana".into(),
            payload: json!({"plan": seed["plan"], "decision": decision}),
            prev_hash: hash,
            hash: String::new(),
        };
        entry.hash = entry.computed_hash();
        conn.execute(
            "INSERT INTO journal (seq, ts, kind, author, payload, prev_hash, hash)
             VALUES (?1, ?2, 'plan_adopted', 'ana', ?3, ?4, ?5)",
            rusqlite::params![
                entry.seq,
                ts,
                ledger::canonical_json(&entry.payload),
                entry.prev_hash,
                entry.hash
            ],
        )
        .expect("append");
        conn.execute(
            "INSERT INTO plans (seq, adopted_at, plan, decision) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![
                entry.seq,
                ts,
                ledger::canonical_json(&seed["plan"]),
                ledger::canonical_json(&decision)
            ],
        )
        .expect("plans row");
    }
    let out = verify(&cfg);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(", chain intact, head "), "{text}");
    assert!(
        text.contains("warning: entry 5 (plan_adopted, assembly of 20")
            && text.contains(
                "would not be adopted under today's rule `simple`: the motion did not carry: \
             3 for, 6 against"
            ),
        "{text}"
    );
    assert!(
        text.contains("journal intact, with 1 past decision(s) that today's rule would refuse"),
        "{text}"
    );
}
