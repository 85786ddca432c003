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

fn sealer() -> Arc<RecordSealer> {
    let key = keyring::DataKey::generate().expect("key");
    Arc::new(RecordSealer::new(&key.subkey(keyring::Purpose::Wal)))
}

fn open_sealed(dir: &Path, sealer: &Arc<RecordSealer>) -> Result<(Wal, Replayed)> {
    Wal::open_sealed(dir, SEGMENT_BYTES, Some(sealer.clone()))
}

#[test]
fn sealed_records_come_back_with_the_key_and_show_nothing_in_clear() {
    let dir = tempfile::tempdir().expect("tmp");
    let sealer = sealer();
    let (mut wal, _) = open_sealed(dir.path(), &sealer).expect("open");
    let a = vec![r(1_000, "household-dupont", Metric::PowerW, 1234.5)];
    wal.append(&a, &[77]).expect("append");
    wal.append(&batch(4, 2_000), &[]).expect("append");
    let path = wal.segment_paths()[0].clone();
    drop(wal);
    let bytes = fs::read(&path).expect("read");
    assert_eq!(&bytes[..8], SEALED_MAGIC);
    let needle = b"household-dupont";
    assert!(
        !bytes.windows(needle.len()).any(|w| w == needle),
        "a device id is in clear in a sealed segment"
    );
    assert!(!bytes.windows(8).any(|w| w == 1234.5f64.to_le_bytes()));

    let (mut wal, replayed) = open_sealed(dir.path(), &sealer).expect("reopen");
    assert_eq!(replayed.readings().next(), a.first());
    assert_eq!(replayed.reading_count(), 5);
    assert_eq!(replayed.digests, HashSet::from([77]));
    assert_eq!(wal.append(&a, &[]).expect("append"), 2);
}

#[test]
fn a_sealed_log_with_another_key_or_none_is_refused_not_replayed() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut wal, _) = open_sealed(dir.path(), &sealer()).expect("open");
    wal.append(&batch(3, 0), &[]).expect("append");
    wal.append(&batch(3, 10), &[]).expect("append");
    drop(wal);
    let err = Wal::open(dir.path()).expect_err("opened without a key");
    assert!(matches!(err, WalError::Kind { .. }), "{err}");
    assert!(err.to_string().contains("no key"), "{err}");

    // Another key: nothing is replayed, and nothing is cut off either (a wrong key
    // must not destroy the log); new records go to a new segment.
    let before = fs::read(dir.path().join(segment_name(0))).expect("read");
    let (mut wal, replayed) = open_sealed(dir.path(), &sealer()).expect("open");
    assert_eq!(replayed.reading_count(), 0);
    assert_eq!(replayed.truncated_bytes, 0);
    assert!(
        replayed.damaged[0].contains("authentication"),
        "{:?}",
        replayed.damaged
    );
    wal.append(&batch(1, 0), &[]).expect("append");
    drop(wal);
    assert_eq!(
        fs::read(dir.path().join(segment_name(0))).expect("read"),
        before
    );
}

#[test]
fn a_clear_segment_in_an_encrypted_log_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut wal, _) = Wal::open(dir.path()).expect("open");
    wal.append(&batch(3, 0), &[]).expect("append");
    drop(wal);
    let err = open_sealed(dir.path(), &sealer()).expect_err("clear segment accepted");
    assert!(err.to_string().contains("communalia encrypt"), "{err}");
}

/// The framing of record `i` in a segment's bytes: (offset, total length).
fn record_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut at = 8;
    let mut out = Vec::new();
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4")) as usize;
        out.push((at, 8 + len));
        at += 8 + len;
    }
    out
}

#[test]
fn a_tampered_sealed_record_with_a_fixed_checksum_is_damage() {
    let dir = tempfile::tempdir().expect("tmp");
    let sealer = sealer();
    let (mut wal, _) = open_sealed(dir.path(), &sealer).expect("open");
    for i in 0..3 {
        wal.append(&batch(2, i * 10), &[]).expect("append");
    }
    let path = wal.segment_paths()[0].clone();
    drop(wal);
    let mut bytes = fs::read(&path).expect("read");
    let (at, len) = record_spans(&bytes)[1];
    // Flip a ciphertext byte and make the CRC right again, as an attacker would.
    bytes[at + len - 20] ^= 0x01;
    let crc = crc32fast::hash(&bytes[at + 8..at + len]);
    bytes[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
    // Not the newest segment: a later one follows, so this is damage, not a torn end.
    fs::write(&path, &bytes).expect("write");
    fs::write(dir.path().join(segment_name(100)), SEALED_MAGIC).expect("next segment");
    let (_, replayed) = open_sealed(dir.path(), &sealer).expect("reopen");
    assert_eq!(
        replayed.records.len(),
        1,
        "only the record before the damage"
    );
    assert_eq!(replayed.damaged.len(), 1);
    assert!(
        replayed.damaged[0].contains("authentication"),
        "{:?}",
        replayed.damaged
    );
}

#[test]
fn a_sealed_record_moved_or_replayed_is_detected() {
    let dir = tempfile::tempdir().expect("tmp");
    let sealer = sealer();
    let (mut wal, _) = open_sealed(dir.path(), &sealer).expect("open");
    for i in 0..3 {
        wal.append(&batch(2, i * 10), &[]).expect("append");
    }
    let path = wal.segment_paths()[0].clone();
    drop(wal);
    let bytes = fs::read(&path).expect("read");
    let spans = record_spans(&bytes);
    // Record 0 copied again after record 2: a replay, intact in itself.
    let (at0, len0) = spans[0];
    let mut replayed_log = bytes.clone();
    replayed_log.extend_from_slice(&bytes[at0..at0 + len0]);
    fs::write(&path, &replayed_log).expect("write");
    fs::write(dir.path().join(segment_name(100)), SEALED_MAGIC).expect("next segment");
    let (_, replayed) = open_sealed(dir.path(), &sealer).expect("reopen");
    assert_eq!(replayed.records.len(), 3);
    assert!(
        replayed.damaged[0].contains("out of order"),
        "{:?}",
        replayed.damaged
    );

    // Record 1's sealed payload given record 2's number: it does not open.
    let (at1, _) = spans[1];
    let mut renumbered = bytes.clone();
    renumbered[at1 + 8..at1 + 16].copy_from_slice(&7u64.to_le_bytes());
    let (_, len1) = spans[1];
    let crc = crc32fast::hash(&renumbered[at1 + 8..at1 + len1]);
    renumbered[at1 + 4..at1 + 8].copy_from_slice(&crc.to_le_bytes());
    fs::write(&path, &renumbered).expect("write");
    let (_, replayed) = open_sealed(dir.path(), &sealer).expect("reopen");
    assert_eq!(replayed.records.len(), 1);
    assert!(
        replayed.damaged[0].contains("authentication"),
        "{:?}",
        replayed.damaged
    );
}

#[test]
fn a_torn_sealed_record_at_the_end_is_cut_off_as_before() {
    let dir = tempfile::tempdir().expect("tmp");
    let sealer = sealer();
    let (mut wal, _) = open_sealed(dir.path(), &sealer).expect("open");
    wal.append(&batch(2, 0), &[]).expect("append");
    wal.append(&batch(2, 10), &[]).expect("append");
    let path = wal.segment_paths()[0].clone();
    drop(wal);
    let bytes = fs::read(&path).expect("read");
    fs::write(&path, &bytes[..bytes.len() - 5]).expect("tear");
    let (mut wal, replayed) = open_sealed(dir.path(), &sealer).expect("reopen");
    assert_eq!(replayed.records.len(), 1);
    assert!(replayed.damaged.is_empty());
    assert!(replayed.truncated_bytes > 0);
    assert_eq!(wal.append(&batch(1, 20), &[]).expect("append"), 1);
    drop(wal);
    let (_, replayed) = open_sealed(dir.path(), &sealer).expect("reopen");
    assert_eq!(replayed.records.len(), 2);
}

#[test]
fn a_clear_log_converted_to_sealed_keeps_its_records_and_numbers() {
    let src = tempfile::tempdir().expect("tmp");
    let dst = tempfile::tempdir().expect("tmp");
    let (mut wal, _) = Wal::open(src.path()).expect("open");
    for i in 0..3 {
        wal.append(&batch(2, i * 10), &[100 + i as u64])
            .expect("append");
    }
    wal.checkpoint(0).expect("checkpoint");
    drop(wal);
    let sealer = sealer();
    assert_eq!(
        convert_to_sealed(src.path(), &dst.path().join("wal"), &sealer).expect("convert"),
        6
    );
    let (mut wal, replayed) = open_sealed(&dst.path().join("wal"), &sealer).expect("open");
    let numbers: Vec<u64> = replayed.records.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [0, 1, 2]);
    assert_eq!(replayed.digests, HashSet::from([100, 101, 102]));
    assert_eq!(wal.append(&batch(1, 0), &[]).expect("append"), 3);
}

#[test]
fn forgetting_readings_leaves_no_reading_in_any_segment_and_keeps_digests_and_numbers() {
    let dir = tempfile::tempdir().expect("tmp");
    let sealer = sealer();
    // Small segments: the readings span several, the last one the running node's.
    let (mut wal, _) = Wal::open_sealed(dir.path(), 200, Some(sealer.clone())).expect("open");
    for k in 0..6 {
        wal.append(&batch(4, 1_000 * k), &[k as u64 + 100])
            .expect("append");
    }
    let next = wal.next_record();
    drop(wal);
    let (mut wal, replayed) =
        Wal::open_sealed(dir.path(), 200, Some(sealer.clone())).expect("reopen");
    assert_eq!(replayed.reading_count(), 24);
    assert!(wal.segment_paths().len() > 2, "{:?}", wal.segment_paths());
    let digests: Vec<u64> = replayed.digests.iter().copied().collect();
    let removed = wal.forget_readings(&digests).expect("forget");
    assert!(removed >= 2, "{removed}");
    assert_eq!(wal.segment_paths().len(), 1);
    drop(wal);

    let (wal, replayed) = Wal::open_sealed(dir.path(), 200, Some(sealer)).expect("reopen");
    assert_eq!(replayed.reading_count(), 0, "a reading is left in the log");
    assert_eq!(replayed.digests, (100..106).collect::<HashSet<u64>>());
    assert!(
        wal.next_record() > next,
        "numbering goes on: records below the history's checkpoint would be skipped"
    );

    // Not on a log that was written to since it was opened.
    let dir = tempfile::tempdir().expect("tmp");
    let (mut wal, _) = Wal::open(dir.path()).expect("open");
    wal.append(&batch(2, 0), &[]).expect("append");
    assert!(wal.forget_readings(&[]).is_err());
}
