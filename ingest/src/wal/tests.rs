use super::*;

fn r(ts_ms: i64, device: &str, metric: Metric, value: f64) -> Reading {
    Reading {
        ts_ms,
        device: device.into(),
        metric,
        value,
    }
}

fn batch(n: usize, start: i64) -> Vec<Reading> {
    (0..n)
        .map(|i| {
            let metric = if i % 2 == 0 {
                Metric::PowerW
            } else {
                Metric::EnergyImportWh
            };
            r(
                start + i as i64,
                &format!("dev-{}", i % 3),
                metric,
                i as f64 * 1.5,
            )
        })
        .collect()
}

#[test]
fn records_come_back_after_reopening_and_numbering_goes_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut wal, replayed) = Wal::open(dir.path()).expect("open");
    assert!(replayed.records.is_empty());
    let a = batch(5, 1_000);
    let b = vec![r(2_000, "é-unicode", Metric::SocPct, -0.25)];
    assert_eq!(wal.append(&a, &[11, 12]).expect("append"), 0);
    assert_eq!(wal.append(&b, &[]).expect("append"), 1);
    drop(wal);

    let (mut wal, replayed) = Wal::open(dir.path()).expect("reopen");
    let expected: Vec<Reading> = a.iter().chain(&b).cloned().collect();
    assert_eq!(replayed.readings().cloned().collect::<Vec<_>>(), expected);
    assert_eq!(replayed.digests, HashSet::from([11, 12]));
    let numbers: Vec<u64> = replayed.records.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [0, 1]);
    assert!(replayed.damaged.is_empty());
    assert_eq!(
        wal.next_record(),
        2,
        "numbering goes on after the replayed records"
    );
    assert_eq!(wal.append(&a, &[]).expect("append"), 2);
    drop(wal);
    let (_, replayed) = Wal::open(dir.path()).expect("reopen");
    assert_eq!(replayed.reading_count(), a.len() * 2 + b.len());
}

#[test]
fn an_unfinished_last_write_is_cut_off_and_the_log_goes_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut wal, _) = Wal::open(dir.path()).expect("open");
    let a = batch(4, 0);
    wal.append(&a, &[]).expect("append");
    let last = wal.segment_paths().last().cloned().expect("segment");
    drop(wal);
    // A crash in the middle of the next record: its header and half its payload.
    let whole = encode(1, &batch(10, 100), &[7]);
    let mut f = OpenOptions::new()
        .append(true)
        .open(&last)
        .expect("open segment");
    f.write_all(&whole[..whole.len() / 2]).expect("torn write");
    drop(f);
    let torn_len = fs::metadata(&last).expect("meta").len();

    let (mut wal, replayed) = Wal::open(dir.path()).expect("reopen");
    assert_eq!(
        replayed.readings().cloned().collect::<Vec<_>>(),
        a,
        "the intact record only"
    );
    assert!(
        !replayed.digests.contains(&7),
        "nothing of the unfinished record"
    );
    assert_eq!(replayed.truncated_bytes, (whole.len() / 2) as u64);
    assert!(
        fs::metadata(&last).expect("meta").len() < torn_len,
        "cut off on disk"
    );
    let c = batch(2, 500);
    wal.append(&c, &[]).expect("append after the cut");
    drop(wal);
    let (_, replayed) = Wal::open(dir.path()).expect("reopen");
    let expected: Vec<Reading> = a.iter().chain(&c).cloned().collect();
    assert_eq!(replayed.readings().cloned().collect::<Vec<_>>(), expected);
    assert!(replayed.damaged.is_empty());
}

#[test]
fn damage_inside_an_older_segment_is_reported_and_the_rest_replayed() {
    let dir = tempfile::tempdir().expect("tmp");
    // Tiny segments: every record after the first begins a new one.
    let (mut wal, _) = Wal::open_with(dir.path(), 16).expect("open");
    let a = batch(3, 0);
    let b = batch(3, 10);
    let c = batch(3, 20);
    for x in [&a, &b, &c] {
        wal.append(x, &[]).expect("append");
    }
    let segments = wal.segment_paths();
    assert!(segments.len() >= 3, "{segments:?}");
    drop(wal);
    // Flip one byte in the middle of the record of the second segment.
    let victim = segments
        .iter()
        .find(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0) > 40)
        .cloned()
        .expect("a segment with a record");
    let mut bytes = fs::read(&victim).expect("read");
    let middle = bytes.len() - 10;
    bytes[middle] ^= 0xFF;
    fs::write(&victim, &bytes).expect("write");

    let (_, replayed) = Wal::open(dir.path()).expect("reopen");
    assert_eq!(replayed.damaged.len(), 1, "{:?}", replayed.damaged);
    assert!(
        replayed.damaged[0].contains(&victim.display().to_string())
            && replayed.damaged[0].contains("checksum"),
        "{:?}",
        replayed.damaged
    );
    // The two undamaged records are replayed.
    assert_eq!(replayed.reading_count(), 6);
}

#[test]
fn a_checkpoint_deletes_only_segments_wholly_below_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut wal, _) = Wal::open_with(dir.path(), 16).expect("open");
    for i in 0..4 {
        wal.append(&batch(2, i * 10), &[]).expect("append");
    }
    let before = wal.segment_paths().len();
    // Records 0 and 1 are safe elsewhere.
    let removed = wal.checkpoint(2).expect("checkpoint");
    assert!(removed >= 1);
    assert_eq!(wal.segment_paths().len(), before - removed);
    drop(wal);
    let (mut wal, replayed) = Wal::open_with(dir.path(), 16).expect("reopen");
    let ts: Vec<i64> = replayed.readings().map(|r| r.ts_ms).collect();
    assert!(ts.starts_with(&[20, 21]), "records 2 and 3 remain: {ts:?}");
    assert!(!ts.contains(&0) && !ts.contains(&10), "{ts:?}");
    // Asking for more than was written deletes nothing.
    assert_eq!(wal.checkpoint(1_000).expect("checkpoint"), 0);
}

/// The history wrote every record out and the log was cut behind them, leaving only
/// the empty segment opened at the last start: the numbering still goes on from
/// there, not from 0 (records numbered below the history's checkpoint would be
/// skipped by the next replay, and lost from the history).
#[test]
fn numbering_goes_on_after_a_checkpoint_cut_every_record() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut wal, _) = Wal::open(dir.path()).expect("open");
    for i in 0..3 {
        wal.append(&batch(2, i * 10), &[]).expect("append");
    }
    drop(wal);
    let (mut wal, replayed) = Wal::open(dir.path()).expect("reopen");
    assert_eq!(replayed.records.len(), 3);
    assert_eq!(wal.next_record(), 3);
    // Records 0 to 2 are in the history: only the new, empty segment is left.
    assert_eq!(wal.checkpoint(3).expect("checkpoint"), 1);
    assert_eq!(wal.segment_paths().len(), 1);
    drop(wal);
    let (mut wal, replayed) = Wal::open(dir.path()).expect("reopen");
    assert!(replayed.records.is_empty());
    assert_eq!(wal.next_record(), 3, "the numbering started again");
    assert_eq!(wal.append(&batch(1, 50), &[]).expect("append"), 3);
}

#[test]
fn digests_tell_topic_from_payload() {
    assert_ne!(message_digest("a/b", b"1"), message_digest("a", b"/b1"));
    assert_eq!(message_digest("t", b"x"), message_digest("t", b"x"));
    assert_ne!(message_digest("t", b"x"), message_digest("t", b"y"));
}
