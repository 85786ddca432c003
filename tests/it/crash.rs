//! Crash safety of the journal's real write path: a node hammered with transfers
//! and contributions over its HTTP API is killed (SIGKILL, no shutdown) in the
//! middle of the burst. Afterwards `communalia ledger verify` must find the chain
//! and every balance intact, and every write the node acknowledged with a 201 must
//! be in the journal, with the hash it answered.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::ledger_cli::{earn_100, ledger_site, post, token};
use crate::support::*;

/// What the node answered 201 to: the kind of entry, its seq, and its hash (none
/// for a contribution, whose answer gives the id only).
#[derive(Debug, Clone)]
struct Acknowledged {
    kind: &'static str,
    seq: i64,
    hash: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_mid_burst_keeps_every_acknowledged_write() {
    let dir = TempDir::new("crash");
    let cfg = ledger_site(dir.path()).to_string_lossy().to_string();
    let mut node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    let tokens = [token(&cfg, "ana"), token(&cfg, "bo"), token(&cfg, "cy")];
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    earn_100(&client, &node.base, &tokens).await;

    let acknowledged = Arc::new(Mutex::new(Vec::<Acknowledged>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let today = chrono::Utc::now().date_naive().to_string();
    let mut writers = Vec::new();
    // Six writers at once: four send ana's Communs to bo a hundredth at a time, two
    // record bo's and cy's contributions, each as fast as the node answers.
    for w in 0..6 {
        let client = client.clone();
        let base = node.base.clone();
        let acknowledged = acknowledged.clone();
        let stop = stop.clone();
        let (token, body, kind) = if w < 4 {
            (
                tokens[0].clone(),
                json!({"to": "bo", "amount": 0.01, "memo": format!("burst {w}")}),
                "transfer",
            )
        } else {
            (
                tokens[w - 3].clone(),
                json!({"category": "cooking", "hours": 0.5, "date": today,
                       "description": format!("Soup for the hall, writer {w}")}),
                "contribution_recorded",
            )
        };
        let url = if kind == "transfer" {
            format!("{base}/api/transfers")
        } else {
            format!("{base}/api/contributions")
        };
        writers.push(tokio::spawn(async move {
            let mut failures = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && failures < 3 {
                match post(&client, &url, &token, &body).await {
                    Ok((201, answer)) => {
                        let seq = answer["seq"].as_i64().or_else(|| answer["id"].as_i64());
                        let seq = seq.unwrap_or_else(|| panic!("201 without seq: {answer}"));
                        acknowledged.lock().expect("lock").push(Acknowledged {
                            kind,
                            seq,
                            hash: answer["hash"].as_str().map(str::to_string),
                        });
                    }
                    Ok((status, answer)) => panic!("{kind}: {status} {answer}"),
                    // The node is gone: the request in flight got no answer.
                    Err(_) => failures += 1,
                }
            }
        }));
    }

    // Let the burst run, then kill the node in the middle of it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = acknowledged.lock().expect("lock").len();
        if done >= 60 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {done} writes acknowledged in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.kill();
    let killed_at = acknowledged.lock().expect("lock").len();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    // Writers were still writing when the node died (a request or more of each
    // failed for want of an answer); what was answered before is all there is.
    assert!(acknowledged.len() >= killed_at && killed_at >= 60);

    // The journal, as the killed process left it.
    let verify = std::process::Command::new(BIN)
        .args(["ledger", "verify", "--config", &cfg])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run ledger verify");
    let out = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success(),
        "verify after SIGKILL: {out}{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(out.contains("chain intact"), "{out}");
    assert!(
        out.contains("balances: replayed from the journal and equal to the stored ones"),
        "{out}"
    );

    let db = rusqlite::Connection::open(dir.path().join("ledger.sqlite")).expect("open db");
    for ack in &acknowledged {
        let (kind, hash): (String, String) = db
            .query_row(
                "SELECT kind, hash FROM journal WHERE seq = ?1",
                [ack.seq],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap_or_else(|e| panic!("acknowledged {ack:?} is not in the journal: {e}"));
        assert_eq!(kind, ack.kind, "{ack:?}");
        if let Some(expected) = &ack.hash {
            assert_eq!(&hash, expected, "{ack:?}");
        }
    }
    let transfers = acknowledged.iter().filter(|a| a.kind == "transfer").count();
    let contributions = acknowledged.len() - transfers;
    println!(
        "killed after {killed_at} acknowledged writes; {} in all ({transfers} transfers, \
         {contributions} contributions), all in the journal",
        acknowledged.len()
    );
    assert!(
        transfers > 0 && contributions > 0,
        "{transfers} transfers, {contributions} contributions"
    );
    // At most the requests in flight at the kill were written but not answered.
    let in_journal: i64 = db
        .query_row(
            "SELECT count(*) FROM journal WHERE kind = 'transfer'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert!(in_journal as usize >= transfers && in_journal as usize <= transfers + 4);
    drop(db);

    // And the node starts again on it, answering as before.
    let node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    let report: serde_json::Value = client
        .get(format!("{}/api/ledger/verify", node.base))
        .bearer_auth(&tokens[1])
        .send()
        .await
        .expect("verify over the API")
        .json()
        .await
        .expect("json");
    assert_eq!(report["intact"], true, "{report}");
    let balances: serde_json::Value = client
        .get(format!("{}/api/ledger/balances", node.base))
        .bearer_auth(&tokens[1])
        .send()
        .await
        .expect("balances")
        .json()
        .await
        .expect("json");
    let bo = balances["balances"]
        .as_array()
        .and_then(|all| all.iter().find(|b| b["member"] == "bo"))
        .and_then(|b| b["communs"].as_f64())
        .unwrap_or_else(|| panic!("{balances}"));
    // bo received a hundredth per transfer in the journal, less a trace of demurrage.
    let received = in_journal as f64 * 0.01;
    assert!(
        bo <= received + 1e-9 && bo > received - 0.001,
        "bo {bo}, received {received}"
    );
}
