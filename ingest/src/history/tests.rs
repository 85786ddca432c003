use std::collections::HashMap;

use sensors::model::Metric;

use super::*;

const DAY_MS: i64 = 86_400_000;
/// 2026-03-12T00:00:00Z
const MARCH_12: i64 = 1_773_273_600_000;

fn r(ts_ms: i64, device: &str, metric: Metric, value: f64) -> Reading {
    Reading {
        ts_ms,
        device: device.into(),
        metric,
        value,
    }
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

/// (device, metric, ts, value) of every row of readings batches.
fn rows_of(batches: &[RecordBatch]) -> Vec<(String, String, i64, f64)> {
    let mut out = Vec::new();
    for b in batches {
        let ts = b.column(0).as_primitive::<TimestampMillisecondType>();
        let value = b.column(3).as_primitive::<arrow::datatypes::Float64Type>();
        for i in 0..b.num_rows() {
            out.push((
                text(b.column(1), i).to_string(),
                text(b.column(2), i).to_string(),
                ts.value(i),
                value.value(i),
            ));
        }
    }
    out
}

fn read_files(files: &[PathBuf]) -> Vec<RecordBatch> {
    vec![read_parquet(files, &readings_schema(), None).expect("read")]
}

#[test]
fn a_flush_writes_each_day_sorted_and_cuts_the_log() {
    let dir = tempfile::tempdir().expect("tmp");
    let history = History::open(dir.path(), HistoryOptions::default()).expect("open");
    let (wal, _) = Wal::open(&dir.path().join("wal")).expect("wal");
    let wal = Mutex::new(wal);
    // Two records, across midnight, out of order.
    let first = vec![
        r(MARCH_12 + 5_000, "pv", Metric::PowerW, 3.0),
        r(MARCH_12 - 1_000, "pv", Metric::PowerW, 1.0),
        r(MARCH_12 + 1_000, "grid", Metric::PowerW, 2.0),
    ];
    let second = vec![r(MARCH_12 + 2_000, "pv", Metric::PowerW, 4.0)];
    for readings in [&first, &second] {
        let n = wal
            .lock()
            .expect("lock")
            .append(readings, &[])
            .expect("append");
        history.add_pending(Some(n), readings).expect("pending");
    }
    assert_eq!(history.pending_rows(), 4);
    let report = history
        .flush(Some(&wal), date("2026-03-12"))
        .expect("flush");
    assert_eq!(report.rows, 4);
    assert_eq!(history.pending_rows(), 0, "nothing pending once written");
    let snap = history.snapshot();
    let days: Vec<NaiveDate> = snap.raw.keys().copied().collect();
    assert_eq!(days, [date("2026-03-11"), date("2026-03-12")]);
    // March 12: grid first, then pv by time.
    let rows = rows_of(&read_files(&snap.raw[&date("2026-03-12")]));
    let expected = [
        ("grid", "power_w", MARCH_12 + 1_000, 2.0),
        ("pv", "power_w", MARCH_12 + 2_000, 4.0),
        ("pv", "power_w", MARCH_12 + 5_000, 3.0),
    ]
    .map(|(d, m, t, v)| (d.to_string(), m.to_string(), t, v));
    assert_eq!(rows, expected);
    for f in snap.raw.values().flatten() {
        assert!(
            f.starts_with(dir.path().join("readings")),
            "{}",
            f.display()
        );
    }
    // The log is cut behind the flush, and a new history knows it.
    assert_eq!(history.wal_checkpoint(), 2);
    drop(history);
    let reopened = History::open(dir.path(), HistoryOptions::default()).expect("reopen");
    assert_eq!(reopened.wal_checkpoint(), 2);
    assert_eq!(reopened.snapshot().raw.len(), 2, "files found again");
}

#[test]
fn a_past_day_is_compacted_into_one_file_and_rolled_up() {
    let dir = tempfile::tempdir().expect("tmp");
    let history = History::open(dir.path(), HistoryOptions::default()).expect("open");
    let mut all = Vec::new();
    // Three flushes during March 12 (today then), of two devices every 7 s.
    for part in 0..3i64 {
        let readings: Vec<Reading> = (0..40i64)
            .flat_map(|k| {
                let t = MARCH_12 + part * 3_600_000 + k * 7_000;
                [
                    r(t, "pv", Metric::PowerW, (k * 13 % 17) as f64),
                    r(
                        t + 500,
                        "meter",
                        Metric::EnergyImportWh,
                        (part * 100 + k) as f64,
                    ),
                ]
            })
            .collect();
        all.extend(readings.clone());
        history.add_pending(None, &readings).expect("pending");
        let report = history.flush(None, date("2026-03-12")).expect("flush");
        assert!(report.compacted_days.is_empty(), "today is not compacted");
    }
    assert_eq!(history.snapshot().raw[&date("2026-03-12")].len(), 3);
    // The next day, March 12 is compacted and rolled up.
    let report = history.flush(None, date("2026-03-13")).expect("flush");
    assert_eq!(report.compacted_days, [date("2026-03-12")]);
    let snap = history.snapshot();
    let files = &snap.raw[&date("2026-03-12")];
    assert_eq!(files.len(), 1, "{files:?}");
    let mut expected = rows_of(&[to_batch(&all).expect("batch")]);
    expected.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
    assert_eq!(rows_of(&read_files(files)), expected, "same rows, sorted");

    // The rollup, recomputed here from the raw readings.
    let mut minutes: HashMap<(String, String, i64), Vec<(i64, f64)>> = HashMap::new();
    for x in &all {
        let minute = x.ts_ms / 60_000 * 60_000;
        minutes
            .entry((x.device.to_string(), x.metric.as_str().to_string(), minute))
            .or_default()
            .push((x.ts_ms, x.value));
    }
    let rollup_files = &snap.rollups[&date("2026-03-12")];
    let got = read_parquet(rollup_files, &rollup_schema(), None).expect("rollup");
    assert_eq!(got.num_rows(), minutes.len());
    let ts = got.column(0).as_primitive::<TimestampMillisecondType>();
    let f = |c: usize| {
        got.column(c)
            .as_primitive::<arrow::datatypes::Float64Type>()
    };
    let count = got.column(7).as_primitive::<arrow::datatypes::Int64Type>();
    for i in 0..got.num_rows() {
        let key = (
            text(got.column(1), i).to_string(),
            text(got.column(2), i).to_string(),
            ts.value(i),
        );
        let mut values = minutes
            .get(&key)
            .cloned()
            .unwrap_or_else(|| panic!("{key:?}"));
        values.sort_by_key(|(t, _)| *t);
        let sum: f64 = values.iter().map(|(_, v)| v).sum();
        assert_eq!(count.value(i), values.len() as i64, "{key:?}");
        assert!(
            (f(3).value(i) - sum / values.len() as f64).abs() < 1e-9,
            "{key:?} avg"
        );
        let lo = values.iter().map(|(_, v)| *v).fold(f64::INFINITY, f64::min);
        let hi = values
            .iter()
            .map(|(_, v)| *v)
            .fold(f64::NEG_INFINITY, f64::max);
        assert_eq!((f(4).value(i), f(5).value(i)), (lo, hi), "{key:?} min max");
        assert_eq!(
            f(6).value(i),
            values.last().map(|(_, v)| *v).unwrap_or(f64::NAN)
        );
    }
    // The replaced files go after their grace period.
    history.delete_doomed(true);
    let left = fs::read_dir(dir.path().join("readings/date=2026-03-12"))
        .expect("dir")
        .count();
    assert_eq!(left, 1);
}

#[test]
fn retention_keeps_raw_readings_and_rollups_for_their_own_time() {
    let dir = tempfile::tempdir().expect("tmp");
    let opts = HistoryOptions {
        raw_retention_days: Some(2),
        rollup_retention_days: Some(5),
        ..HistoryOptions::default()
    };
    let history = History::open(dir.path(), opts).expect("open");
    // One reading a day, March 12 to 16; compacted and rolled up as days pass.
    for day in 0..5 {
        let t = MARCH_12 + day * DAY_MS + 3_600_000;
        history
            .add_pending(None, &[r(t, "pv", Metric::PowerW, day as f64)])
            .expect("pending");
        let today = day_of(t).expect("day");
        history.flush(None, today).expect("flush");
    }
    history.flush(None, date("2026-03-17")).expect("flush");
    let snap = history.snapshot();
    let raw: Vec<NaiveDate> = snap.raw.keys().copied().collect();
    assert_eq!(
        raw,
        [date("2026-03-15"), date("2026-03-16")],
        "two days of raw"
    );
    let rollups: Vec<NaiveDate> = snap.rollups.keys().copied().collect();
    assert_eq!(rollups.len(), 5, "five days of rollups: {rollups:?}");
    history.delete_doomed(true);
    assert!(!dir.path().join("readings/date=2026-03-12").exists());
    assert!(dir.path().join("readings_1m/date=2026-03-12").exists());
}

/// The files say, in their own metadata, that `ts` is delta-encoded and `value`
/// byte-stream split (what keeps a reading near 2.7 bytes: BENCHMARKS.md), so any
/// Parquet reader knows how to read them back.
#[test]
fn files_carry_delta_timestamps_and_split_values() {
    use parquet::basic::Encoding;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let dir = tempfile::tempdir().expect("tmp");
    let history = History::open(dir.path(), HistoryOptions::default()).expect("open");
    let readings: Vec<Reading> = (0..500)
        .map(|k| {
            r(
                MARCH_12 + k * 1000,
                "pv",
                Metric::PowerW,
                1000.0 + (k % 17) as f64 * 0.1,
            )
        })
        .collect();
    history.add_pending(None, &readings).expect("pending");
    history.flush(None, date("2026-03-12")).expect("flush");
    let file = &history.snapshot().raw[&date("2026-03-12")][0];
    let reader = SerializedFileReader::new(File::open(file).expect("open")).expect("parquet");
    let group = reader.metadata().row_group(0);
    let encodings = |name: &str| {
        group
            .columns()
            .iter()
            .find(|c| c.column_path().string() == name)
            .map(|c| c.encodings().collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    assert!(
        encodings("ts").contains(&Encoding::DELTA_BINARY_PACKED),
        "{:?}",
        encodings("ts")
    );
    assert!(
        encodings("value").contains(&Encoding::BYTE_STREAM_SPLIT),
        "{:?}",
        encodings("value")
    );
    assert!(
        encodings("device").contains(&Encoding::RLE_DICTIONARY),
        "{:?}",
        encodings("device")
    );
    let back = rows_of(&read_files(std::slice::from_ref(file)));
    assert_eq!(back.len(), readings.len());
    assert!(
        back.iter()
            .zip(&readings)
            .all(|(b, r)| b.3.to_bits() == r.value.to_bits())
    );
}

/// The disk under the storage directory is unmounted while the node runs (an
/// operator detaching a failed card): the mount point is an empty directory of
/// another filesystem. A flush then fails and keeps its readings pending, rather
/// than making the storage directory again there, where the files would be hidden
/// once the card is mounted again and their readings lost from the history.
#[test]
fn a_flush_never_makes_a_storage_directory_that_is_gone() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("data");
    std::fs::create_dir_all(&root).expect("data");
    let history = History::open(&root, HistoryOptions::default()).expect("open");
    let readings = vec![r(MARCH_12 + 1_000, "pv", Metric::PowerW, 1.0)];
    history.add_pending(None, &readings).expect("pending");
    std::fs::rename(&root, dir.path().join("away")).expect("unmount");
    assert!(history.flush(None, date("2026-03-13")).is_err());
    assert!(!root.exists(), "the flush made the storage directory again");
    assert_eq!(history.pending_rows(), 1, "the readings left pending");
    std::fs::rename(dir.path().join("away"), &root).expect("mount again");
    let report = history.flush(None, date("2026-03-13")).expect("flush");
    assert_eq!(report.rows, 1);
    assert_eq!(history.pending_rows(), 0);
    assert_eq!(
        rows_of(&read_files(&report.files)),
        vec![("pv".into(), "power_w".into(), MARCH_12 + 1_000, 1.0)]
    );
}

/// The `.parquet` files under the history's raw directory, wherever they are.
fn raw_files_on_disk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(days) = fs::read_dir(root.join(RAW_DIR)) else {
        return out;
    };
    for day in days.flatten() {
        if let Ok(files) = fs::read_dir(day.path()) {
            out.extend(
                files
                    .flatten()
                    .map(|f| f.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "parquet")),
            );
        }
    }
    out.sort();
    out
}

/// Makes the checkpoint's temporary file a directory that is not empty: writing it
/// fails, as on a full or read-only disk, even for root. Undone by `unblock`.
fn block_checkpoint(root: &Path) -> PathBuf {
    let tmp = root.join(RAW_DIR).join("_wal_checkpoint.tmp");
    fs::create_dir_all(tmp.join("in-the-way")).expect("block the checkpoint");
    tmp
}

fn unblock(tmp: &Path) {
    fs::remove_dir_all(tmp).expect("unblock the checkpoint");
}

/// Appends each group of readings to the log as one record, and hands it to the
/// history as the sink does.
fn log_and_keep(wal: &Mutex<Wal>, history: &History, groups: &[Vec<Reading>]) {
    for readings in groups {
        let n = wal
            .lock()
            .expect("lock")
            .append(readings, &[])
            .expect("append");
        history.add_pending(Some(n), readings).expect("pending");
    }
}

/// The rows of `readings`, in the order of `rows_of` over sorted files.
fn expected_rows(readings: &[Reading]) -> Vec<(String, String, i64, f64)> {
    let mut rows = rows_of(&[to_batch(readings).expect("batch")]);
    rows.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
    rows
}

/// Every row of the history's files and of what is pending, sorted.
fn history_rows(history: &History) -> Vec<(String, String, i64, f64)> {
    let snap = history.snapshot();
    let files: Vec<PathBuf> = snap.raw.values().flatten().cloned().collect();
    let mut rows = rows_of(&read_files(&files));
    rows.extend(rows_of(&snap.pending));
    rows.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
    rows
}

/// Issue 18: the flush writes its file, then the checkpoint cannot be written
/// (the card turns read-only between the two) and the file cannot be deleted
/// either. The node stops there (SIGKILL); the card is repaired and the node
/// started again over the same directory, the log still holding the records: the
/// orphan is deleted at open, the log replays its readings, and the history holds
/// every reading exactly once.
#[test]
fn an_orphan_of_a_failed_checkpoint_is_deleted_at_open_and_every_reading_kept_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path();
    let history = History::open(root, HistoryOptions::default()).expect("open");
    let (wal, _) = Wal::open(&root.join("wal")).expect("wal");
    let wal = Mutex::new(wal);
    let groups = vec![
        vec![
            r(MARCH_12 + 1_000, "pv", Metric::PowerW, 1.0),
            r(MARCH_12 + 500, "grid", Metric::PowerW, 2.0),
        ],
        vec![r(MARCH_12 + 2_000, "pv", Metric::PowerW, 3.0)],
    ];
    let all: Vec<Reading> = groups.iter().flatten().cloned().collect();
    log_and_keep(&wal, &history, &groups);

    let tmp = block_checkpoint(root);
    history
        .refuse_deletes
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let err = history
        .flush(Some(&wal), date("2026-03-12"))
        .expect_err("a flush without its checkpoint");
    assert!(
        err.to_string().contains("_wal_checkpoint"),
        "the error names the checkpoint: {err}"
    );
    // The file was written, could not be deleted, and is not seen.
    let orphans = raw_files_on_disk(root);
    assert_eq!(orphans.len(), 1, "{orphans:?}");
    for path in &orphans {
        assert_eq!(wal_mark(path), Some(2), "{}", path.display());
    }
    assert!(
        history.snapshot().raw.is_empty(),
        "an orphan in the snapshot"
    );
    assert_eq!(history.pending_rows(), 3, "the readings left pending");
    assert_eq!(history.wal_checkpoint(), 0);
    assert_eq!(
        rows_of(&read_files(&orphans)).len(),
        3,
        "the orphan holds every reading: counted, it would double them"
    );

    // Killed; the card repaired; started again over the same directory.
    drop(history);
    drop(wal);
    unblock(&tmp);
    let history = History::open(root, HistoryOptions::default()).expect("reopen");
    for path in &orphans {
        assert!(!path.exists(), "orphan kept at open: {}", path.display());
    }
    assert!(history.snapshot().raw.is_empty());
    assert_eq!(history.wal_checkpoint(), 0);
    let store = crate::store::LiveStore::new(Duration::from_secs(3600));
    let (wal, replayed) =
        crate::open_wal(&root.join("wal"), &store, Some(&history)).expect("replay");
    assert_eq!(replayed.records.len(), 2);
    assert_eq!(history_rows(&history), expected_rows(&all), "after replay");
    let report = history
        .flush(Some(&wal), date("2026-03-12"))
        .expect("flush");
    assert_eq!(report.rows, 3);
    assert_eq!(history.pending_rows(), 0);
    assert_eq!(history.wal_checkpoint(), 2);
    assert_eq!(
        history_rows(&history),
        expected_rows(&all),
        "after the flush"
    );

    // And once more from the disk alone: the files hold each reading once, and the
    // log replays nothing into the history.
    drop(history);
    drop(wal);
    let history = History::open(root, HistoryOptions::default()).expect("reopen");
    let (_wal, _) = crate::open_wal(&root.join("wal"), &store, Some(&history)).expect("replay");
    assert_eq!(history.pending_rows(), 0, "replayed what is in Parquet");
    assert_eq!(
        history_rows(&history),
        expected_rows(&all),
        "after a restart"
    );
}

/// While the node runs: the orphan of a failed checkpoint cannot be deleted, so
/// every flush refuses to write (a later checkpoint would hide the orphan from the
/// next open, and its readings would count twice), saying which file; once the
/// file can be deleted, the next flush deletes it and writes everything, and the
/// day compacted later holds every reading once.
#[test]
fn a_flush_writes_nothing_while_an_orphan_cannot_be_deleted() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path();
    let history = History::open(root, HistoryOptions::default()).expect("open");
    let (wal, _) = Wal::open(&root.join("wal")).expect("wal");
    let wal = Mutex::new(wal);
    let first = vec![vec![r(MARCH_12 + 1_000, "pv", Metric::PowerW, 1.0)]];
    log_and_keep(&wal, &history, &first);
    let tmp = block_checkpoint(root);
    history
        .refuse_deletes
        .store(true, std::sync::atomic::Ordering::SeqCst);
    history
        .flush(Some(&wal), date("2026-03-12"))
        .expect_err("a flush without its checkpoint");
    let orphans = raw_files_on_disk(root);
    assert_eq!(orphans.len(), 1, "{orphans:?}");

    // The checkpoint could be written now, but the orphan is still there.
    unblock(&tmp);
    let second = vec![vec![r(MARCH_12 + 2_000, "pv", Metric::PowerW, 2.0)]];
    log_and_keep(&wal, &history, &second);
    let err = history
        .flush(Some(&wal), date("2026-03-13"))
        .expect_err("a flush next to an orphan");
    assert!(matches!(err, HistoryError::Orphan { .. }), "{err:?}");
    let said = err.to_string();
    assert!(
        said.contains(&orphans[0].display().to_string()),
        "the error names the orphan: {said}"
    );
    assert_eq!(raw_files_on_disk(root), orphans, "the flush wrote files");
    assert!(
        !root.join(RAW_DIR).join(CHECKPOINT_FILE).exists(),
        "the flush wrote a checkpoint"
    );
    assert_eq!(history.wal_checkpoint(), 0);
    assert_eq!(history.pending_rows(), 2);
    assert!(history.snapshot().raw.is_empty());

    // The card is writable again: the orphan goes, everything is written, and the
    // day (over on March 13) is compacted from the files the snapshot has.
    history
        .refuse_deletes
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let report = history
        .flush(Some(&wal), date("2026-03-13"))
        .expect("flush once the orphan can go");
    assert!(!orphans[0].exists(), "the orphan is still there");
    assert_eq!(report.rows, 2);
    assert_eq!(report.compacted_days, [date("2026-03-12")]);
    assert_eq!(history.wal_checkpoint(), 2);
    let all: Vec<Reading> = first.iter().chain(&second).flatten().cloned().collect();
    assert_eq!(history_rows(&history), expected_rows(&all));
    history.delete_doomed(true);
    let on_disk = raw_files_on_disk(root);
    assert_eq!(on_disk.len(), 1, "{on_disk:?}");
    assert_eq!(rows_of(&read_files(&on_disk)), expected_rows(&all));
    drop(history);
    let history = History::open(root, HistoryOptions::default()).expect("reopen");
    assert_eq!(
        history_rows(&history),
        expected_rows(&all),
        "after a restart"
    );
}

/// Open deletes only raw files marked above the checkpoint: files marked at or
/// below it, files without a mark (written without a log, or before marks
/// existed) and compacted days stay.
#[test]
fn open_deletes_only_the_files_marked_above_the_checkpoint() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path();
    let day = root.join(RAW_DIR).join("date=2026-03-12");
    let batch = to_batch(&[r(MARCH_12 + 1_000, "pv", Metric::PowerW, 1.0)]).expect("batch");
    let names = [
        "part-000000000000000000000001-w2.parquet",
        "part-000000000000000000000002.parquet",
        "day-000000000000000000000003.parquet",
        "part-000000000000000000000004-w3.parquet",
    ];
    for name in names {
        write_parquet(root, &day.join(name), &batch, None).expect("write");
    }
    fs::write(root.join(RAW_DIR).join(CHECKPOINT_FILE), "2\n").expect("checkpoint");
    let history = History::open(root, HistoryOptions::default()).expect("open");
    let kept: Vec<PathBuf> = names[..3].iter().map(|n| day.join(n)).collect();
    let mut listed = history.snapshot().raw[&date("2026-03-12")].clone();
    listed.sort();
    let mut expected = kept.clone();
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(raw_files_on_disk(root), expected, "on disk");
    assert_eq!(history.wal_checkpoint(), 2);
}

/// An orphan that cannot be deleted at open (here a directory by its name, which
/// no one can unlink as a file) stops the open, which names it: the node does not
/// start with readings it would count twice.
#[test]
fn an_orphan_that_cannot_be_deleted_stops_the_open() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path();
    let orphan = root
        .join(RAW_DIR)
        .join("date=2026-03-12")
        .join("part-000000000000000000000001-w7.parquet");
    fs::create_dir_all(orphan.join("x")).expect("orphan");
    fs::write(root.join(RAW_DIR).join(CHECKPOINT_FILE), "5\n").expect("checkpoint");
    let err = History::open(root, HistoryOptions::default()).expect_err("open");
    assert!(matches!(err, HistoryError::Orphan { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&orphan.display().to_string()),
        "{err}"
    );
}

/// A checkpoint file that cannot be read as a number (a repair left it empty) is
/// taken as the highest mark of the raw files: no file is taken for an orphan, and
/// the log's records below it are not replayed into the history again.
#[test]
fn an_unreadable_checkpoint_is_taken_from_the_files_marks() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path();
    let day = root.join(RAW_DIR).join("date=2026-03-12");
    let batch = to_batch(&[r(MARCH_12 + 1_000, "pv", Metric::PowerW, 1.0)]).expect("batch");
    for name in [
        "part-000000000000000000000001-w4.parquet",
        "part-000000000000000000000002-w9.parquet",
    ] {
        write_parquet(root, &day.join(name), &batch, None).expect("write");
    }
    fs::write(root.join(RAW_DIR).join(CHECKPOINT_FILE), "").expect("checkpoint");
    let history = History::open(root, HistoryOptions::default()).expect("open");
    assert_eq!(history.wal_checkpoint(), 9);
    assert_eq!(history.snapshot().raw[&date("2026-03-12")].len(), 2);
}

/// The node stops (SIGKILL) within the grace period of a compaction, before the
/// files it replaced are deleted, twice over (a day compacted, then again after a
/// late reading for it): started again, it reads neither the replaced raw files nor
/// the replaced rollups, deletes them, and holds every reading once.
#[test]
fn a_stop_within_a_compactions_grace_counts_nothing_twice() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path();
    let history = History::open(root, HistoryOptions::default()).expect("open");
    let mut all = Vec::new();
    for k in 0..3i64 {
        let readings = vec![r(MARCH_12 + k * 3_600_000, "pv", Metric::PowerW, k as f64)];
        all.extend(readings.clone());
        history.add_pending(None, &readings).expect("pending");
        history.flush(None, date("2026-03-12")).expect("flush");
    }
    let report = history.flush(None, date("2026-03-13")).expect("compact");
    assert_eq!(report.compacted_days, [date("2026-03-12")]);
    // A late reading of March 12: the day is compacted again.
    let late = vec![r(MARCH_12 + 5 * 3_600_000, "pv", Metric::PowerW, 9.0)];
    all.extend(late.clone());
    history.add_pending(None, &late).expect("pending");
    let report = history
        .flush(None, date("2026-03-13"))
        .expect("compact again");
    assert_eq!(report.compacted_days, [date("2026-03-12")]);
    let raw_before = raw_files_on_disk(root);
    assert_eq!(
        raw_before.len(),
        6,
        "replaced files still there: {raw_before:?}"
    );
    let rollup_dir = root.join(ROLLUP_DIR).join("date=2026-03-12");
    assert_eq!(fs::read_dir(&rollup_dir).expect("rollups").count(), 2);
    let kept = history.snapshot();
    drop(history);

    let history = History::open(root, HistoryOptions::default()).expect("reopen");
    let snap = history.snapshot();
    assert_eq!(snap.raw, kept.raw, "the raw files read after the restart");
    assert_eq!(
        snap.rollups, kept.rollups,
        "the rollups read after the restart"
    );
    assert_eq!(history_rows(&history), expected_rows(&all));
    let rollups =
        read_parquet(&snap.rollups[&date("2026-03-12")], &rollup_schema(), None).expect("rollups");
    let counted: i64 = rollups
        .column(7)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .iter()
        .flatten()
        .sum();
    assert_eq!(counted, all.len() as i64, "readings counted by the rollups");
    assert_eq!(
        raw_files_on_disk(root),
        snap.raw[&date("2026-03-12")],
        "deleted"
    );
    assert_eq!(fs::read_dir(&rollup_dir).expect("rollups").count(), 1);
}

#[test]
fn small_pending_batches_are_merged_and_no_reading_is_lost() {
    let dir = tempfile::tempdir().expect("tmp");
    let history = History::open(dir.path(), HistoryOptions::default()).expect("open");
    let readings: Vec<Reading> = (0..1000)
        .map(|i| r(MARCH_12 + i * 1000, "pv", Metric::PowerW, i as f64))
        .collect();
    for (i, one) in readings.iter().enumerate() {
        history
            .add_pending(Some(i as u64), std::slice::from_ref(one))
            .expect("keep");
    }
    let pending = history.snapshot().pending;
    assert!(
        pending.len() <= 1000 / MERGE_AFTER + MERGE_AFTER,
        "{} batches kept for 1000 readings",
        pending.len()
    );
    assert_eq!(history.pending_rows(), 1000);
    assert_eq!(rows_of(&pending), expected_rows(&readings));
    let report = history.flush(None, date("2026-03-12")).expect("flush");
    assert_eq!(report.rows, 1000);
    assert_eq!(history.pending_rows(), 0);
    assert_eq!(history_rows(&history), expected_rows(&readings));
}

#[test]
fn batches_a_flush_has_taken_are_never_merged_with_newer_ones() {
    let dir = tempfile::tempdir().expect("tmp");
    let history = History::open(dir.path(), HistoryOptions::default()).expect("open");
    let one = |i: i64| vec![r(MARCH_12 + i * 1000, "pv", Metric::PowerW, i as f64)];
    for i in 0..10 {
        history.add_pending(None, &one(i)).expect("keep");
    }
    // A flush under way has taken the ten batches there are (as `flush` marks it).
    history.write().flushing = 10;
    for i in 10..(10 + 2 * MERGE_AFTER as i64) {
        history.add_pending(None, &one(i)).expect("keep");
    }
    let pending = history.snapshot().pending;
    // The ten taken batches are as they were, one reading each, in their place: the
    // flush removes exactly what it wrote.
    assert!(pending[..10].iter().all(|b| b.num_rows() == 1));
    assert_eq!(
        rows_of(&pending[..10]),
        expected_rows(&(0..10).flat_map(one).collect::<Vec<_>>())
    );
    // The newer ones were merged.
    assert!(
        pending.len() < 10 + 2 * MERGE_AFTER,
        "{} batches",
        pending.len()
    );
    assert_eq!(history.pending_rows(), 10 + 2 * MERGE_AFTER);
}

#[test]
fn enough_pending_rows_make_a_flush_due() {
    let dir = tempfile::tempdir().expect("tmp");
    let opts = HistoryOptions {
        flush_rows: 100,
        ..HistoryOptions::default()
    };
    let history = History::open(dir.path(), opts).expect("open");
    let readings = |from: i64, n: i64| -> Vec<Reading> {
        (from..from + n)
            .map(|i| r(MARCH_12 + i * 1000, "grid", Metric::PowerW, 1.0))
            .collect()
    };
    history.add_pending(None, &readings(0, 99)).expect("keep");
    assert!(!history.flush_due(), "99 rows of 100");
    history.add_pending(None, &readings(99, 1)).expect("keep");
    assert!(history.flush_due(), "100 rows of 100");
    history.flush(None, date("2026-03-12")).expect("flush");
    assert!(!history.flush_due(), "nothing pending after a flush");
}

fn history_key() -> keyring::Key32 {
    keyring::DataKey::generate()
        .expect("key")
        .subkey(keyring::Purpose::History)
}

/// An encrypted history: flushed, compacted and rolled up under its key, opened
/// again (which reads what a compaction replaced from the encrypted metadata), and
/// unreadable without the key, footer included.
#[test]
fn an_encrypted_history_is_written_compacted_and_read_with_its_key_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let key = history_key();
    let opts = HistoryOptions {
        key: Some(key.clone()),
        ..HistoryOptions::default()
    };
    let history = History::open(dir.path(), opts.clone()).expect("open");
    for (i, t) in [MARCH_12 + 1_000, MARCH_12 + 60_000]
        .into_iter()
        .enumerate()
    {
        history
            .add_pending(None, &[r(t, "household-7", Metric::PowerW, i as f64)])
            .expect("pending");
        history.flush(None, date("2026-03-12")).expect("flush");
    }
    // The day is over: compacted into one file and rolled up.
    history.flush(None, date("2026-03-13")).expect("flush");
    history.delete_doomed(true);
    let snap = history.snapshot();
    let day = &snap.raw[&date("2026-03-12")];
    assert_eq!(day.len(), 1, "{day:?}");
    assert_eq!(
        rows_of(&[read_parquet(day, &readings_schema(), Some(&key)).expect("read")])
            .into_iter()
            .map(|(d, _, _, v)| (d, v))
            .collect::<Vec<_>>(),
        [
            ("household-7".to_string(), 0.0),
            ("household-7".to_string(), 1.0)
        ]
    );
    let rollup = &snap.rollups[&date("2026-03-12")];
    assert_eq!(
        read_parquet(rollup, &rollup_schema(), Some(&key))
            .expect("rollup")
            .num_rows(),
        2
    );
    for file in day.iter().chain(rollup) {
        let bytes = fs::read(file).expect("read");
        assert_eq!(&bytes[bytes.len() - 4..], b"PARE", "an encrypted footer");
        assert!(!bytes.windows(11).any(|w| w == b"household-7"));
        assert!(!file.to_string_lossy().contains("household"));
        let clear = ParquetRecordBatchReaderBuilder::try_new(File::open(file).expect("open"));
        assert!(clear.is_err(), "read without the key");
        let other = ParquetRecordBatchReaderBuilder::try_new_with_options(
            File::open(file).expect("open"),
            reader_options(Some(&history_key())),
        );
        assert!(other.is_err(), "read with another key");
    }
    drop(history);
    let again = History::open(dir.path(), opts).expect("reopen");
    assert_eq!(again.snapshot().raw[&date("2026-03-12")], *day);
}

#[test]
fn a_clear_history_file_rewritten_encrypted_keeps_rows_and_metadata() {
    let dir = tempfile::tempdir().expect("tmp");
    let batch = sorted(
        &crate::reading::to_batch(&[
            r(MARCH_12, "pv", Metric::PowerW, 1.0),
            r(MARCH_12 + 1, "pv", Metric::PowerW, 2.0),
        ])
        .expect("batch"),
    )
    .expect("sorted");
    let src = dir.path().join("day-1.parquet");
    write_parquet_replacing(
        dir.path(),
        &src,
        &batch,
        &[dir.path().join("part-0.parquet")],
        None,
    )
    .expect("write");
    let dst = dir.path().join("enc/day-1.parquet");
    let key = history_key();
    assert_eq!(
        rewrite_file(&src, &dst, None, Some(&key)).expect("rewrite"),
        2
    );
    assert_eq!(count_rows(&dst, Some(&key)).expect("count"), 2);
    assert_eq!(replaced_names(&dst, Some(&key)), ["part-0.parquet"]);
    assert!(count_rows(&dst, None).is_err());
}
