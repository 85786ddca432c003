//! Erasing a household's readings from the history (DESIGN.md §10): every day's
//! files holding any of its rows are rewritten without them, through the writer
//! compaction uses (so whatever that writer does to a file, such as encryption,
//! applies to the rewritten ones), the day's rollup recomputed when it has one, and
//! the old files deleted; rows still pending are dropped too. Kept apart from the
//! write path so that it changes nothing there.

use std::collections::BTreeSet;
use std::time::Instant;

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::TimestampMillisecondType;
use chrono::NaiveDate;

use super::{
    History, RAW_DIR, ROLLUP_DIR, Result, read_parquet, rollup, sorted, text, unique_name,
    write_parquet_replacing,
};
use crate::reading::readings_schema;

const DAY_MS: i64 = 86_400_000;

/// Which rows of `batch` to keep: all but those of `devices` in `[from_ms, to_ms)`.
fn keep_mask(
    batch: &RecordBatch,
    devices: &BTreeSet<String>,
    from_ms: i64,
    to_ms: i64,
) -> BooleanArray {
    let ts = batch.column(0).as_primitive::<TimestampMillisecondType>();
    let device = batch.column(1);
    (0..batch.num_rows())
        .map(|i| {
            let t = ts.value(i);
            Some(!(t >= from_ms && t < to_ms && devices.contains(text(device, i))))
        })
        .collect()
}

fn without(
    batch: &RecordBatch,
    devices: &BTreeSet<String>,
    from_ms: i64,
    to_ms: i64,
) -> Result<(RecordBatch, u64)> {
    let mask = keep_mask(batch, devices, from_ms, to_ms);
    let gone = (mask.len() - mask.true_count()) as u64;
    if gone == 0 {
        return Ok((batch.clone(), 0));
    }
    Ok((arrow::compute::filter_record_batch(batch, &mask)?, gone))
}

fn day_start_ms(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or(i64::MIN)
}

impl History {
    /// Removes the readings of `devices` in `[from_ms, to_ms)` from the files and
    /// from what is pending; returns how many rows went. The replaced files are
    /// deleted after the usual grace (or at once with
    /// [`History::delete_replaced_now`]). Run it where no flush runs at the same
    /// time (the node stopped): a compaction of the same day meanwhile would keep
    /// the rows it read.
    pub fn erase(&self, devices: &BTreeSet<String>, from_ms: i64, to_ms: i64) -> Result<u64> {
        let (raw, rollups) = {
            let state = self.read();
            (state.snapshot.raw.clone(), state.snapshot.rollups.clone())
        };
        let mut removed = 0;
        for (day, files) in raw {
            let start = day_start_ms(day);
            if start.saturating_add(DAY_MS) <= from_ms || start >= to_ms {
                continue;
            }
            let rows = read_parquet(&files, &readings_schema(), self.opts.key.as_ref())?;
            let (kept, gone) = without(&rows, devices, from_ms, to_ms)?;
            if gone == 0 {
                continue;
            }
            let kept = sorted(&kept)?;
            // The rollup first, as compaction does: stopped between the two, the
            // day's raw files still hold what the rollup lacks, and erasing again
            // finishes the work.
            let old_rollups = rollups.get(&day).cloned().unwrap_or_default();
            let new_rollup = if old_rollups.is_empty() {
                None
            } else {
                let path = self
                    .root
                    .join(ROLLUP_DIR)
                    .join(format!("date={day}"))
                    .join(unique_name("rollup"));
                write_parquet_replacing(
                    &self.root,
                    &path,
                    &rollup(&kept)?,
                    &old_rollups,
                    self.opts.key.as_ref(),
                )?;
                Some(path)
            };
            let merged = self
                .root
                .join(RAW_DIR)
                .join(format!("date={day}"))
                .join(unique_name("day"));
            if let Err(e) =
                write_parquet_replacing(&self.root, &merged, &kept, &files, self.opts.key.as_ref())
            {
                if let Some(path) = &new_rollup {
                    let _ = std::fs::remove_file(path);
                }
                return Err(e);
            }
            let mut state = self.write();
            let now = Instant::now();
            state.snapshot.raw.insert(day, vec![merged]);
            for path in files {
                state.doomed.push((now, path));
            }
            if let Some(path) = new_rollup {
                state.snapshot.rollups.insert(day, vec![path]);
                for path in old_rollups {
                    state.doomed.push((now, path));
                }
            }
            removed += gone;
        }
        let mut state = self.write();
        let mut pending = Vec::new();
        for batch in std::mem::take(&mut state.snapshot.pending) {
            let (kept, gone) = without(&batch, devices, from_ms, to_ms)?;
            removed += gone;
            if kept.num_rows() > 0 {
                pending.push(kept);
            }
        }
        // The counts the flush and the merging of small batches keep go with them.
        state.pending_rows = pending.iter().map(RecordBatch::num_rows).sum();
        state.young = 0;
        state.flushing = 0;
        state.snapshot.pending = pending;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::history::HistoryOptions;
    use crate::reading::Reading;
    use sensors::model::Metric;

    fn r(ts_ms: i64, device: &str, value: f64) -> Reading {
        Reading {
            ts_ms,
            device: device.into(),
            metric: Metric::PowerW,
            value,
        }
    }

    /// Every device of every file, and of the rollups, under `root`, read back.
    fn on_disk(root: &std::path::Path) -> (BTreeSet<String>, BTreeSet<String>, usize) {
        let history =
            History::open(root, HistoryOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        let snap = history.snapshot();
        let mut raw = BTreeSet::new();
        let mut rows = 0;
        for files in snap.raw.values() {
            let batch =
                read_parquet(files, &readings_schema(), None).unwrap_or_else(|e| panic!("{e}"));
            rows += batch.num_rows();
            for i in 0..batch.num_rows() {
                raw.insert(text(batch.column(1), i).to_string());
            }
        }
        let mut rolled = BTreeSet::new();
        for files in snap.rollups.values() {
            let batch = read_parquet(files, &super::super::rollup_schema(), None)
                .unwrap_or_else(|e| panic!("{e}"));
            for i in 0..batch.num_rows() {
                rolled.insert(text(batch.column(1), i).to_string());
            }
        }
        (raw, rolled, rows)
    }

    #[test]
    fn a_households_rows_leave_every_file_and_the_rest_stay() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let history =
            History::open(dir.path(), HistoryOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        let today = Utc::now().date_naive();
        let yesterday = day_start_ms(today) - DAY_MS;
        let mut readings = Vec::new();
        for k in 0..30 {
            readings.push(r(yesterday + k * 60_000, "roof", 1000.0));
            readings.push(r(yesterday + k * 60_000, "house-7", 700.0));
        }
        history
            .add_pending(None, &readings)
            .unwrap_or_else(|e| panic!("{e}"));
        history.flush(None, today).unwrap_or_else(|e| panic!("{e}"));
        // Yesterday is compacted and rolled up; one more reading waits, today.
        let now = Utc::now().timestamp_millis();
        history
            .add_pending(None, &[r(now, "house-7", 650.0), r(now, "roof", 900.0)])
            .unwrap_or_else(|e| panic!("{e}"));
        let (raw, rolled, rows) = on_disk(dir.path());
        assert!(
            raw.contains("house-7") && rolled.contains("house-7"),
            "{raw:?} {rolled:?}"
        );
        assert_eq!(rows, 60);

        let devices: BTreeSet<String> = ["house-7".to_string()].into();
        // Only the last ten minutes of yesterday, first: the rest of the day stays.
        let gone = history
            .erase(&devices, yesterday + 20 * 60_000, yesterday + DAY_MS)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(gone, 10);
        let gone = history
            .erase(&devices, i64::MIN, i64::MAX)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(gone, 20 + 1, "yesterday's other 20 and today's pending one");
        assert_eq!(history.pending_rows(), 1);
        history.delete_replaced_now();
        let (raw, rolled, rows) = on_disk(dir.path());
        assert_eq!(raw, ["roof".to_string()].into());
        assert_eq!(rolled, ["roof".to_string()].into());
        assert_eq!(rows, 30);
        // No file of the old ones is left on disk.
        let files: Vec<_> = walk(dir.path());
        assert_eq!(files.len(), 2, "one day file and its rollup: {files:?}");
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else if path.extension().is_some_and(|e| e == "parquet") {
                out.push(path);
            }
        }
        out
    }
}
