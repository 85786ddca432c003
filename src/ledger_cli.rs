//! `communalia ledger verify`, `communalia ledger export` and `communalia sortition
//! explain`: opening the journal a configuration names and printing what the `ledger`
//! crate finds or writes.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use ledger::{Communs, Journal};

use crate::config::Loaded;

/// The journal of an existing node; never creates one.
pub(crate) fn open_existing(loaded: &Loaded) -> Result<(Journal, std::path::PathBuf)> {
    let path = loaded.ledger_path();
    if !path.exists() {
        anyhow::bail!(
            "no ledger at {} (has the node run with this configuration?)",
            path.display()
        );
    }
    let key = loaded.journal_key()?;
    let journal = Journal::open_keyed(&path, key.as_ref())
        .with_context(|| format!("cannot open {}", path.display()))?;
    Ok((journal, path))
}

/// Re-derives the chain and replays every balance ([`Journal::verify`]); prints
/// what each found and exits 2 naming the first bad entry (and account). The first
/// line keeps the form it had before balances were replayed (`PATH: N entries,
/// chain intact, head HASH`), which scripts may read. Past adoptions that today's
/// decision rule would refuse are printed as warnings (`warning: entry N …`) and
/// leave the exit status at 0: they were recorded under the rules of their time.
pub(crate) fn verify(loaded: &Loaded) -> Result<ExitCode> {
    let (journal, path) = open_existing(loaded)?;
    let report = journal.verify()?;
    if report.chain_intact {
        println!(
            "{}: {} entries, chain intact, head {}",
            path.display(),
            report.entries,
            report.head_hash
        );
    } else {
        println!("{}: {} entries", path.display(), report.entries);
    }
    let Some(bad) = &report.first_bad else {
        let balances = journal.balances(chrono::Utc::now())?;
        let held = balances
            .balances
            .iter()
            .try_fold(Communs::ZERO, |sum, b| sum.checked_add(b.communs))
            .unwrap_or(Communs::ZERO);
        println!(
            "  balances: replayed from the journal and equal to the stored ones: \
             {} accounts hold {held} Communs, the commons {}, minted in all {}",
            balances.balances.len(),
            balances.commons,
            balances.minted_total
        );
        for warning in &report.warnings {
            println!("warning: {warning}");
        }
        if report.warnings.is_empty() {
            println!("journal intact");
        } else {
            println!(
                "journal intact, with {} past decision(s) that today's rule would refuse",
                report.warnings.len()
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    if report.chain_intact {
        println!("  balances: the replay disagrees at {bad}");
    } else {
        println!("  chain: broken at {bad}");
        println!("  balances: not replayed (the chain must hold first)");
    }
    println!("journal broken at entry {}", bad.seq);
    Ok(ExitCode::from(2))
}

/// `communalia sortition explain ID`: the draw re-run step by step
/// ([`ledger::Draw::explain`]); exit 2 when the journal records another panel than
/// its inputs give.
pub(crate) fn explain_draw(loaded: &Loaded, id: i64) -> Result<ExitCode> {
    let (journal, _) = open_existing(loaded)?;
    let Some(draw) = journal.draw(id)? else {
        anyhow::bail!(
            "no draw {id} in the journal (a draw's id is the seq of its sortition_announced entry)"
        );
    };
    let text = draw.explain();
    print!("{text}");
    Ok(if text.contains("MISMATCH") {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Writes the journal as JSON lines ([`Journal::export_jsonl`]) to `output`, or to
/// standard output. A file is written beside its final name and renamed into place
/// once complete, so a reader never sees half an export.
pub(crate) fn export(loaded: &Loaded, output: Option<&Path>) -> Result<()> {
    let (journal, _) = open_existing(loaded)?;
    match output {
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let lines = journal.export_jsonl(&mut out)?;
            out.flush().context("cannot write to standard output")?;
            eprintln!("{lines} entries exported");
        }
        Some(path) => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "export".to_string());
            let partial = path.with_file_name(format!(".{name}.partial"));
            let file = std::fs::File::create(&partial)
                .with_context(|| format!("cannot create {}", partial.display()))?;
            let mut out = std::io::BufWriter::new(file);
            let lines = journal
                .export_jsonl(&mut out)
                .with_context(|| format!("cannot export to {}", partial.display()))?;
            let file = out
                .into_inner()
                .map_err(|e| e.into_error())
                .with_context(|| format!("cannot write {}", partial.display()))?;
            file.sync_all()
                .with_context(|| format!("cannot write {}", partial.display()))?;
            std::fs::rename(&partial, path)
                .with_context(|| format!("cannot move the export to {}", path.display()))?;
            eprintln!("{lines} entries exported to {}", path.display());
        }
    }
    Ok(())
}
