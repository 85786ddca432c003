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
