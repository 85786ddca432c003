//! `communalia household erase`: a household's readings erased from the history
//! (DESIGN.md §10), the node stopped. What the write-ahead log still holds is first
//! flushed into the history, so that the rows to erase are all in its files; they
//! are rewritten without them, the old files deleted, and the erasure (never the
//! readings) recorded in the journal by the member of the household who asked.

use std::collections::BTreeSet;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Datelike, Utc};

use crate::config::Loaded;

/// Erases `household`'s meters' readings in `[from, to)` (everything when absent),
/// for `member`, one of its members. Prints what was done.
pub(crate) fn erase(
    loaded: &Loaded,
    household: &str,
    member: &str,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<()> {
    let c = &loaded.config;
    let Some(h) = c.households.iter().find(|h| h.id == household) else {
        bail!(
            "{}: no [[household]] has the id `{household}`",
            loaded.source
        );
    };
    if !h.members.iter().any(|m| m == member) {
        bail!(
            "`{member}` is not a member of household `{household}` (key `members` in {}): \
             only its members may ask for its readings to be erased",
            loaded.source
        );
    }
    if h.meters.is_empty() {
        bail!("household `{household}` has no meter");
    }
    // Readings carry Unix times; the journal writes instants of years 0 to 9999.
    let (from, to) = (
        from.unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
        to.unwrap_or_else(Utc::now),
    );
    if from >= to {
        bail!("`--from` must come before `--to`");
    }
    if from < DateTime::<Utc>::UNIX_EPOCH || to.year() > 9999 {
        bail!("`--from` and `--to` lie between 1970 and 9999");
    }
    let journal = crate::node::open_ledger(loaded)?;
    // An encrypted node's history and log are read and rewritten under its key.
    let data_key = loaded.data_key()?;
    let history = ingest::history::History::open(
        &c.storage.dir,
        crate::keys::history_options(&c.storage, data_key),
    )
    .with_context(|| format!("cannot open the history in {}", c.storage.dir.display()))?;
    let store = ingest::store::LiveStore::new(std::time::Duration::from_secs(1));
    let (wal, _) = ingest::open_wal_sealed(
        &c.storage.dir.join("wal"),
        &store,
        Some(&history),
        crate::keys::wal_sealer(data_key),
    )
    .context("cannot open the write-ahead log")?;
    history
        .flush(Some(&wal), Utc::now().date_naive())
        .context("cannot write the write-ahead log's readings into the history")?;
    let meters: BTreeSet<String> = h.meters.iter().cloned().collect();
    let rows = history
        .erase(&meters, from.timestamp_millis(), to.timestamp_millis())
        .context("cannot rewrite the history")?;
    history.delete_replaced_now();
    let entry = journal
        .record_erasure(
            member,
            &ledger::Erasure {
                household: h.id.clone(),
                household_members: h.members.clone(),
                meters: h.meters.clone(),
                from,
                to,
                rows,
            },
            Utc::now(),
        )
        .context("cannot record the erasure in the journal")?;
    println!(
        "Erased {rows} readings of household `{household}` ({}) from the history; \
         recorded as journal entry {}.",
        h.meters.join(", "),
        entry.seq
    );
    println!(
        "The write-ahead log's current segment may still hold some until it is \
         replaced (at most {} MiB of readings later).",
        ingest::wal::SEGMENT_BYTES / (1024 * 1024)
    );
    Ok(())
}
