//! `communalia household erase`: a household's readings leave the history's files,
//! the rest stay, and the journal records the erasure (not the readings); asked by
//! someone outside the household, nothing is erased.

use std::process::Command;

use crate::support::*;

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("site.toml");
    std::fs::write(
        &path,
        format!(
            r#"[site]
name = "Les Tilleuls"
latitude = 45.0
longitude = 4.0

[storage]
dir = "{}"

[[device]]
id = "roof"
role = "pv"
profile = "generic-json"
mqtt = {{ topic = "t/roof", fields = {{ power_w = "power" }} }}

[[device]]
id = "house-7"
role = "load"
profile = "generic-json"
mqtt = {{ topic = "t/house-7", fields = {{ power_w = "power" }} }}

[[service]]
id = "laundry"
demand_w = 500
tier = 1

[[member]]
name = "hugo"
roles = ["resident"]

[[member]]
name = "rita"
roles = ["resident"]

[[household]]
id = "martin"
members = ["hugo"]
meters = ["house-7"]
"#,
            dir.display()
        ),
    )
    .expect("write");
    path
}

/// Rows of each device in the history's files, read back with the history
/// session (configured without devices: nothing is hidden from it).
async fn rows(dir: &std::path::Path) -> Vec<(String, i64)> {
    let history = ingest::history::History::open(dir, Default::default()).expect("history");
    let queries = query::history_session::Queries::new(history, &[], &[])
        .await
        .expect("queries");
    let scope = queries.scope_without_grants(query::consent::Viewer {
        member: "test".into(),
        roles: vec![],
    });
    let answer = queries
        .sql(
            &scope,
            "SELECT CAST(device AS VARCHAR) AS d, count(*) AS n FROM readings GROUP BY 1 ORDER BY 1",
        )
        .await
        .expect("sql");
    answer
        .rows
        .iter()
        .map(|r| {
            (
                r["d"].as_str().unwrap_or_default().to_string(),
                r["n"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_households_readings_are_erased_and_the_erasure_recorded() {
    let dir = TempDir::new("erase");
    let path = config(dir.path());
    {
        let history =
            ingest::history::History::open(dir.path(), Default::default()).expect("history");
        let today = chrono::Utc::now().date_naive();
        let start = (today - chrono::Days::new(1))
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_millis();
        let mut readings = Vec::new();
        for k in 0..30 {
            for (device, w) in [("roof", 1000.0), ("house-7", 700.0)] {
                readings.push(ingest::reading::Reading {
                    ts_ms: start + k * 60_000,
                    device: device.into(),
                    metric: sensors::model::Metric::PowerW,
                    value: w,
                });
            }
        }
        history.add_pending(None, &readings).expect("pending");
        history.flush(None, today).expect("flush");
    }
    assert_eq!(
        rows(dir.path()).await,
        [("house-7".to_string(), 30), ("roof".to_string(), 30)]
    );

    // rita is not of the household: refused, nothing erased.
    let out = Command::new(BIN)
        .args([
            "household",
            "erase",
            "martin",
            "--member",
            "rita",
            "--config",
        ])
        .arg(&path)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`rita` is not a member of household `martin`"),
        "{err}"
    );
    assert_eq!(rows(dir.path()).await.len(), 2);

    let out = Command::new(BIN)
        .args([
            "household",
            "erase",
            "martin",
            "--member",
            "hugo",
            "--config",
        ])
        .arg(&path)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("Erased 30 readings of household `martin`"),
        "{said}"
    );
    assert_eq!(rows(dir.path()).await, [("roof".to_string(), 30)]);

    let journal = ledger::Journal::open(&dir.path().join("ledger.sqlite")).expect("journal");
    let erasures = journal.erasures("martin").expect("erasures");
    assert_eq!(erasures.len(), 1);
    assert_eq!(erasures[0].erasure.rows, 30);
    assert_eq!(erasures[0].by, "hugo");
    assert!(journal.verify().expect("verify").is_intact());
}

/// `config` with the embedded broker on a free port, so that the node can run.
fn runnable_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = config(dir);
    let text = std::fs::read_to_string(&path).expect("read");
    let text = text.replacen(
        "[[device]]",
        &format!(
            "[mqtt]\nbroker = \"embedded\"\nembedded_bind = \"127.0.0.1:{}\"\n\n[[device]]",
            free_port()
        ),
        1,
    );
    std::fs::write(&path, text).expect("write");
    path
}

fn power(ts_ms: i64, device: &str, w: f64) -> ingest::reading::Reading {
    ingest::reading::Reading {
        ts_ms,
        device: device.into(),
        metric: sensors::model::Metric::PowerW,
        value: w,
    }
}

/// `(device, rows)` of `GET /api/export` as `token` over the last two days.
async fn exported(base: &str, token: &str) -> Vec<(String, usize)> {
    let now = chrono::Utc::now();
    let from = (now - chrono::Duration::days(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let to = (now + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let response = reqwest::Client::new()
        .get(format!("{base}/api/export"))
        .query(&[
            ("from", from.as_str()),
            ("to", to.as_str()),
            ("format", "csv"),
        ])
        .bearer_auth(token)
        .send()
        .await
        .expect("export");
    assert_eq!(response.status(), 200);
    let body = response.text().await.expect("export body");
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for line in body.lines().skip(1) {
        let device = line.split(',').nth(1).unwrap_or_default().to_string();
        *counts.entry(device).or_default() += 1;
    }
    counts.into_iter().collect()
}

/// What a node leaves in its write-ahead log when it stops: readings it flushed
/// (the segment it was writing is never cut, so they stay there) and, when it was
/// killed (`killed`), readings it never flushed, which only the log holds. After
/// `household erase`, the log holds none of them: the next start replays nothing
/// of the household's into the live store or the history, and the export and the
/// history show the household's meter nowhere, the other meter whole.
async fn erasure_leaves_no_reading_in_the_log(killed: bool) {
    let dir = TempDir::new("erase-wal");
    let path = runnable_config(dir.path());
    let cfg = path.to_string_lossy().into_owned();
    // Within the live store's window of each other: replayed, they would be live.
    let now_ms = chrono::Utc::now().timestamp_millis();
    let wal_dir = dir.path().join("wal");
    let batch = |from_ms: i64, n: i64, roof_w: f64| -> Vec<ingest::reading::Reading> {
        (0..n)
            .flat_map(|k| {
                let ts = from_ms + k * 10_000;
                [power(ts, "roof", roof_w), power(ts, "house-7", 700.0)]
            })
            .collect()
    };
    {
        let history =
            ingest::history::History::open(dir.path(), Default::default()).expect("history");
        let store = ingest::store::LiveStore::new(std::time::Duration::from_secs(600));
        let (wal, _) = ingest::open_wal(&wal_dir, &store, Some(&history)).expect("wal");
        let flushed = batch(now_ms - 600_000, 10, 1000.0);
        let record = wal
            .lock()
            .expect("lock")
            .append(&flushed, &[41])
            .expect("append");
        history
            .add_pending(Some(record), &flushed)
            .expect("pending");
        history
            .flush(Some(&wal), chrono::Utc::now().date_naive())
            .expect("flush");
        if killed {
            wal.lock()
                .expect("lock")
                .append(&batch(now_ms - 120_000, 5, 1100.0), &[42])
                .expect("append");
        }
    }
    let in_log = |device: &str| {
        let (_, replayed) = ingest::wal::Wal::open(&wal_dir).expect("replay");
        replayed.readings().filter(|r| &*r.device == device).count()
    };
    let household_rows: usize = if killed { 15 } else { 10 };
    assert_eq!(
        in_log("house-7"),
        household_rows,
        "the log holds the readings"
    );

    let out = Command::new(BIN)
        .args([
            "household",
            "erase",
            "martin",
            "--member",
            "hugo",
            "--config",
            &cfg,
        ])
        .output()
        .expect("run");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains(&format!(
            "Erased {household_rows} readings of household `martin`"
        )),
        "{said}"
    );
    assert!(said.contains("holds no reading any more"), "{said}");
    assert_eq!(
        in_log("house-7"),
        0,
        "the log still holds the household's readings"
    );
    assert_eq!(
        in_log("roof"),
        0,
        "the roof's are in the history, not the log"
    );
    let (_, replayed) = ingest::wal::Wal::open(&wal_dir).expect("replay");
    assert!(
        replayed.digests.contains(&41) && (!killed || replayed.digests.contains(&42)),
        "the redelivery digests are kept: {:?}",
        replayed.digests
    );
    assert_eq!(
        rows(dir.path()).await,
        [("roof".to_string(), household_rows as i64)]
    );

    // The next start: hugo, of the household, sees all his household's readings
    // in his export (live and history); there are none, and the roof's are all
    // there.
    let token = crate::cli::stdout_of(
        &crate::cli::run_cli(&["token", "create", "--user", "hugo", "--config", &cfg], ""),
        "token create",
    );
    let mut node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    assert_eq!(
        exported(&node.base, &token).await,
        [("roof".to_string(), household_rows)]
    );
    node.kill();
    assert_eq!(
        rows(dir.path()).await,
        [("roof".to_string(), household_rows as i64)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_leaves_no_unflushed_reading_in_the_log_of_a_killed_node() {
    erasure_leaves_no_reading_in_the_log(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_leaves_no_flushed_reading_in_the_last_segment_of_a_stopped_node() {
    erasure_leaves_no_reading_in_the_log(false).await;
}

/// A request made from `/me` (recorded in the journal) is carried out by the node
/// at its start, before it opens the history, as the member who asked; the journal
/// ties the erasure to the request, and `--pending` then has nothing left to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_from_me_is_carried_out_when_the_node_starts() {
    let dir = TempDir::new("erase-request");
    let path = runnable_config(dir.path());
    let cfg = path.to_string_lossy().into_owned();
    {
        let history =
            ingest::history::History::open(dir.path(), Default::default()).expect("history");
        let start = chrono::Utc::now().timestamp_millis() - 7_200_000;
        let readings: Vec<_> = (0..20)
            .flat_map(|k| {
                let ts = start + k * 60_000;
                [power(ts, "roof", 1000.0), power(ts, "house-7", 700.0)]
            })
            .collect();
        history.add_pending(None, &readings).expect("pending");
        history
            .flush(None, chrono::Utc::now().date_naive())
            .expect("flush");
    }
    let pending = |cfg: &str| {
        let out = crate::cli::run_cli(&["household", "erase", "--pending", "--config", cfg], "");
        crate::cli::stdout_of(&out, "household erase --pending")
    };
    // Nothing asked yet (this also creates the journal with its members).
    assert!(pending(&cfg).contains("No erasure request is pending"));
    let request = {
        let journal = ledger::Journal::open(&dir.path().join("ledger.sqlite")).expect("journal");
        journal
            .request_erasure(
                "hugo",
                &ledger::ErasureRequest {
                    household: "martin".into(),
                    household_members: vec!["hugo".into()],
                    meters: vec!["house-7".into()],
                    from: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
                    to: chrono::Utc::now(),
                },
                chrono::Utc::now(),
            )
            .expect("request")
            .seq
    };
    assert_eq!(
        rows(dir.path()).await.len(),
        2,
        "nothing erased before the start"
    );
    // Its author no longer of the household: not carried out, still pending, and
    // `--pending` says which request and why.
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(
        &path,
        text.replace("members = [\"hugo\"]", "members = [\"rita\"]"),
    )
    .expect("write");
    let out = crate::cli::run_cli(&["household", "erase", "--pending", "--config", &cfg], "");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("erasure request {request} is still pending"))
            && err.contains("`hugo` is not a member of household `martin`"),
        "{err}"
    );
    assert_eq!(rows(dir.path()).await.len(), 2, "erased for a non-member");
    std::fs::write(&path, text).expect("write");

    let mut node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    node.kill();
    assert_eq!(rows(dir.path()).await, [("roof".to_string(), 20)]);
    let journal = ledger::Journal::open(&dir.path().join("ledger.sqlite")).expect("journal");
    let erasures = journal.erasures("martin").expect("erasures");
    assert_eq!(erasures.len(), 1);
    assert_eq!(erasures[0].erasure.request, Some(request));
    assert_eq!(erasures[0].erasure.rows, 20);
    assert_eq!(erasures[0].by, "hugo");
    let requests = journal.erasure_requests(Some("martin")).expect("requests");
    assert_eq!(requests[0].done_by_entry, Some(erasures[0].seq));
    assert!(journal.verify().expect("verify").is_intact());
    drop(journal);
    assert!(pending(&cfg).contains("No erasure request is pending"));
}
