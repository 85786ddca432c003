//! `communalia household erase`: a household's readings erased from the history
//! (DESIGN.md §10), the node stopped, at the request of one of its members given
//! at the command line, or asked for from `/me` and recorded in the journal
//! (`household_erasure_requested`), which `--pending` and every start of the node
//! carry out.
//!
//! No copy is left behind: what the write-ahead log holds is first flushed into
//! the history, so that every reading is in its files; the log is then emptied of
//! readings (its segments deleted, the redelivery digests kept), so that a start
//! cannot replay them into the live store or the history; the history's files are
//! rewritten without the household's rows and the old ones deleted; and the
//! erasure (never the readings) is recorded in the journal.

use std::collections::BTreeSet;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Datelike, Utc};
use ledger::Journal;
use query::consent::HouseholdConfig;

use crate::config::Loaded;

/// What one erasure did.
#[derive(Debug)]
pub(crate) struct Erased {
    pub(crate) rows: u64,
    pub(crate) seq: i64,
    /// Write-ahead log segments deleted.
    pub(crate) segments: usize,
    /// Damaged parts of the log deleted with it (unreadable, so of unknown owner).
    pub(crate) damaged: usize,
}

fn household<'a>(loaded: &'a Loaded, id: &str) -> Result<&'a HouseholdConfig> {
    loaded
        .config
        .households
        .iter()
        .find(|h| h.id == id)
        .with_context(|| format!("{}: no [[household]] has the id `{id}`", loaded.source))
}

fn check_member(loaded: &Loaded, h: &HouseholdConfig, member: &str) -> Result<()> {
    if !h.members.iter().any(|m| m == member) {
        bail!(
            "`{member}` is not a member of household `{}` (key `members` in {}): \
             only its members may ask for its readings to be erased",
            h.id,
            loaded.source
        );
    }
    if h.meters.is_empty() {
        bail!("household `{}` has no meter", h.id);
    }
    Ok(())
}

/// Erases `household`'s meters' readings in `[from, to)` (everything when absent),
/// for `member`, one of its members. Prints what was done.
pub(crate) fn erase(
    loaded: &Loaded,
    household_id: &str,
    member: &str,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<()> {
    let h = household(loaded, household_id)?;
    check_member(loaded, h, member)?;
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
    let done = erase_readings(loaded, &journal, h, member, from, to, None)?;
    say(h, &done);
    Ok(())
}

fn say(h: &HouseholdConfig, done: &Erased) {
    println!(
        "Erased {} readings of household `{}` ({}) from the history; \
         recorded as journal entry {}.",
        done.rows,
        h.id,
        h.meters.join(", "),
        done.seq
    );
    println!(
        "The write-ahead log holds no reading any more ({} segment(s) deleted).",
        done.segments
    );
    if done.damaged > 0 {
        println!(
            "{} damaged part(s) of the log, which no start could read, were deleted with it.",
            done.damaged
        );
    }
}

/// `communalia household erase --pending`: carries out the requests members made
/// from `/me`. Prints what was done; fails if one of them could not be.
pub(crate) fn erase_pending(loaded: &Loaded) -> Result<()> {
    let journal = crate::node::open_ledger(loaded)?;
    let Carried { done, failed } = carry_out_requests(loaded, &journal)?;
    if done.is_empty() && failed.is_empty() {
        println!("No erasure request is pending.");
    }
    for (h, erased) in &done {
        say(h, erased);
    }
    if let Some((id, e)) = failed.into_iter().next() {
        return Err(e.context(format!("erasure request {id} is still pending")));
    }
    Ok(())
}

/// What [`carry_out_requests`] did: the erasures made, and the requests that
/// could not be carried out, with why (they stay pending).
pub(crate) struct Carried {
    pub(crate) done: Vec<(HouseholdConfig, Erased)>,
    pub(crate) failed: Vec<(i64, anyhow::Error)>,
}

/// Carries out every pending erasure request of the journal, each as its author
/// (a member of the household: the journal's rule). Fails only when the journal
/// cannot be read.
pub(crate) fn carry_out_requests(loaded: &Loaded, journal: &Journal) -> Result<Carried> {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    let pending = journal
        .erasure_requests(None)
        .context("cannot read the erasure requests in the journal")?
        .into_iter()
        .filter(|r| r.done_by_entry.is_none());
    for request in pending {
        let r = &request.request;
        let outcome = household(loaded, &r.household).and_then(|h| {
            check_member(loaded, h, &request.by)?;
            erase_readings(
                loaded,
                journal,
                &HouseholdConfig {
                    meters: r.meters.clone(),
                    ..h.clone()
                },
                &request.by,
                r.from,
                r.to,
                Some(request.seq),
            )
            .map(|erased| (h.clone(), erased))
        });
        match outcome {
            Ok(one) => done.push(one),
            Err(e) => failed.push((request.seq, e)),
        }
    }
    Ok(Carried { done, failed })
}

/// The erasure itself (see the module's documentation), recorded by `member`,
/// carrying out `request` when there is one.
fn erase_readings(
    loaded: &Loaded,
    journal: &Journal,
    h: &HouseholdConfig,
    member: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    request: Option<i64>,
) -> Result<Erased> {
    let c = &loaded.config;
    // An encrypted node's history and log are read and rewritten under its key.
    let data_key = loaded.data_key()?;
    let history = ingest::history::History::open(
        &c.storage.dir,
        crate::keys::history_options(&c.storage, data_key),
    )
    .with_context(|| format!("cannot open the history in {}", c.storage.dir.display()))?;
    let store = ingest::store::LiveStore::new(std::time::Duration::from_secs(1));
    let (wal, replayed) = ingest::open_wal_sealed(
        &c.storage.dir.join("wal"),
        &store,
        Some(&history),
        crate::keys::wal_sealer(data_key),
    )
    .context("cannot open the write-ahead log")?;
    history
        .flush(Some(&wal), Utc::now().date_naive())
        .context("cannot write the write-ahead log's readings into the history")?;
    if history.pending_rows() > 0 {
        bail!("the write-ahead log's readings did not all reach the history; nothing was erased");
    }
    // Every readable reading is in the history now: the log keeps none of them
    // (the segment a running node last wrote holds readings already flushed, which
    // no checkpoint deletes).
    let digests: Vec<u64> = replayed.digests.iter().copied().collect();
    let segments = wal
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .forget_readings(&digests)
        .context("cannot empty the write-ahead log")?;
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
                request,
            },
            Utc::now(),
        )
        .context("cannot record the erasure in the journal")?;
    Ok(Erased {
        rows,
        seq: entry.seq,
        segments,
        damaged: replayed.damaged.len(),
    })
}
