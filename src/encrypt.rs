//! `communalia encrypt` (a clear-text data directory made encrypted, verified, the
//! clear copy removed), `communalia key rotate` (the data key wrapped again) and
//! `communalia key history-key` (the Parquet key, for an independent reader).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use keyring::{DataKey, KekSource, Purpose};

use crate::backup::files_under;
use crate::config::Loaded;

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}

/// What a conversion wrote, to print and to check.
#[derive(Debug, Default)]
struct Converted {
    entries: u64,
    history_files: usize,
    history_rows: usize,
    wal_readings: usize,
    other_files: usize,
}

/// Writes the encrypted copy of the clear journal `src` as `dst` (SQLCipher's
/// `sqlcipher_export` into an attached, keyed database), and its schema version.
fn export_journal(src: &Path, dst: &Path, key: &keyring::Key32) -> Result<()> {
    let conn = rusqlite_open(src)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .with_context(|| format!("cannot read {}", src.display()))?;
    let dst_text = dst
        .to_str()
        .context("the data directory's path is not UTF-8")?
        .replace('\'', "''");
    conn.execute_batch(&format!(
        "ATTACH DATABASE '{dst_text}' AS encrypted KEY \"x'{}'\";
         SELECT sqlcipher_export('encrypted');
         PRAGMA encrypted.user_version = {version};
         DETACH DATABASE encrypted;",
        key.to_hex()
    ))
    .with_context(|| format!("cannot write the encrypted journal {}", dst.display()))?;
    Ok(())
}

fn rusqlite_open(path: &Path) -> Result<rusqlite::Connection> {
    rusqlite::Connection::open(path).with_context(|| format!("cannot open {}", path.display()))
}

/// `communalia encrypt --config FILE`.
pub(crate) fn encrypt(loaded: &Loaded) -> Result<()> {
    let storage = &loaded.config.storage;
    let dir = &storage.dir;
    let Some(source) = crate::keys::kek_source(storage)? else {
        bail!(
            "{}: set [storage] key_file (or passphrase) first: it is what will open the encrypted data",
            loaded.source
        );
    };
    if keyring::is_encrypted(dir) {
        bail!("{} is already encrypted", dir.display());
    }
    if !dir.is_dir() {
        bail!("no data directory at {}", dir.display());
    }
    let staging = dir.with_extension("encrypting");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).with_context(|| {
            format!(
                "cannot remove {} (left by an interrupted encrypt)",
                staging.display()
            )
        })?;
    }
    std::fs::create_dir_all(&staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    let key = DataKey::generate()?;
    let converted = convert(loaded, dir, &staging, &key);
    let converted = match converted {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e.context(format!("{} is unchanged (still clear text)", dir.display())));
        }
    };
    keyring::install(&staging, &key, &source)?;
    // The copy opens with the configured key before the clear one goes.
    if keyring::open(&staging, &source)? != key {
        bail!("the new keyring does not give back the data key");
    }
    sync_dir(&staging)?;
    let old = dir.with_extension("clear-old");
    std::fs::rename(dir, &old).with_context(|| {
        format!(
            "cannot move {} aside (the encrypted copy is ready in {}; is the data directory a mount point? Use a directory below it)",
            dir.display(),
            staging.display()
        )
    })?;
    std::fs::rename(&staging, dir)
        .with_context(|| format!("cannot move {} into place", staging.display()))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    std::fs::remove_dir_all(&old)
        .with_context(|| format!("cannot remove the clear copy {}", old.display()))?;
    println!(
        "{}: encrypted and verified: journal {} entries (chain intact), {} history files ({} rows), {} readings in the write-ahead log, {} other files copied; the clear copy is removed",
        dir.display(),
        converted.entries,
        converted.history_files,
        converted.history_rows,
        converted.wal_readings,
        converted.other_files
    );
    Ok(())
}

fn convert(loaded: &Loaded, dir: &Path, staging: &Path, key: &DataKey) -> Result<Converted> {
    let mut done = Converted::default();
    let journal_key = key.subkey(Purpose::Journal);
    let history_key = key.subkey(Purpose::History);
    // The journal, verified before and after.
    let ledger = loaded.ledger_path();
    let file_name = |p: &Path| p.file_name().map(PathBuf::from).unwrap_or_default();
    let ledger_name = file_name(&ledger);
    if ledger.exists() {
        let before = ledger::Journal::open(&ledger)?.verify()?;
        if !before.chain_intact || before.first_bad.is_some() {
            bail!("{} does not verify: repair it first", ledger.display());
        }
        let dst = staging.join(&ledger_name);
        export_journal(&ledger, &dst, &journal_key)?;
        let after = ledger::Journal::open_keyed(&dst, Some(&journal_key))?.verify()?;
        if !after.chain_intact
            || after.first_bad.is_some()
            || after.entries != before.entries
            || after.head_hash != before.head_hash
        {
            bail!(
                "the encrypted journal does not verify as the clear one does ({} entries, head {} against {} and {})",
                after.entries,
                after.head_hash,
                before.entries,
                before.head_hash
            );
        }
        done.entries = after.entries;
    }
    let ledger_name = ledger_name.to_string_lossy().into_owned();
    // Other programs' leftovers of the database itself (SQLite's WAL and shared
    // memory) are in the export.
    let journal_files = [
        ledger_name.clone(),
        format!("{ledger_name}-wal"),
        format!("{ledger_name}-shm"),
    ];
    for rel in files_under(dir)? {
        let src = dir.join(&rel);
        let dst = staging.join(&rel);
        let top = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        if rel.components().count() == 1 && journal_files.contains(&top) {
            continue;
        }
        if top == "wal" {
            continue;
        }
        // The federation's signing key: sealed with the data key, never copied
        // in clear (whoever held it could sign as the node).
        if rel.as_os_str() == federation::identity::KEY_FILE {
            let sealer = keyring::RecordSealer::new(&key.subkey(Purpose::NodeKey));
            let dst_dir = dst.parent().unwrap_or(staging);
            federation::identity::seal_key_file(&src, dst_dir, &sealer)
                .with_context(|| format!("cannot seal {}", src.display()))?;
            done.other_files += 1;
            continue;
        }
        if (top == "readings" || top == "readings_1m")
            && rel.extension().is_some_and(|e| e == "parquet")
        {
            let rows = ingest::history::rewrite_file(&src, &dst, None, Some(&history_key))?;
            let back = ingest::history::count_rows(&dst, Some(&history_key))?;
            if back != rows {
                bail!(
                    "{}: {back} rows read back from the encrypted copy, {rows} written",
                    dst.display()
                );
            }
            done.history_files += 1;
            done.history_rows += rows;
            continue;
        }
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(&src, &dst)
            .with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
        done.other_files += 1;
    }
    let wal = dir.join("wal");
    if wal.is_dir() {
        let sealer = keyring::RecordSealer::new(&key.subkey(Purpose::Wal));
        done.wal_readings = ingest::wal::convert_to_sealed(&wal, &staging.join("wal"), &sealer)?;
        let (_, replayed) = ingest::wal::Wal::open_sealed(
            &staging.join("wal"),
            ingest::wal::SEGMENT_BYTES,
            Some(std::sync::Arc::new(sealer)),
        )?;
        if replayed.reading_count() != done.wal_readings || !replayed.damaged.is_empty() {
            bail!("the encrypted write-ahead log does not read back as written");
        }
    }
    Ok(done)
}

/// `communalia key rotate --config FILE --to-key-file PATH | --to-passphrase SPEC`.
pub(crate) fn rotate(
    loaded: &Loaded,
    to_key_file: Option<PathBuf>,
    to_passphrase: Option<String>,
) -> Result<()> {
    let storage = &loaded.config.storage;
    let Some(old) = crate::keys::kek_source(storage)? else {
        bail!(
            "{}: no [storage] key_file or passphrase: the data is not encrypted (see `communalia encrypt`)",
            loaded.source
        );
    };
    let mut new_storage = storage.clone();
    new_storage.key_file = to_key_file;
    new_storage.passphrase = to_passphrase;
    let new = match crate::keys::kek_source(&new_storage)? {
        Some(n) => n,
        None => {
            bail!("name the new key-encryption key: --to-key-file PATH or --to-passphrase SPEC")
        }
    };
    if let KekSource::KeyFile(path) = &new
        && !path.exists()
    {
        keyring::create_key_file(path)?;
    }
    keyring::rotate(&storage.dir, &old, &new)?;
    let (key, value) = match (&new_storage.key_file, &new_storage.passphrase) {
        (Some(f), _) => ("key_file", format!("{:?}", f.display().to_string())),
        (_, Some(p)) => ("passphrase", format!("{p:?}")),
        _ => unreachable!("one of them is set"),
    };
    println!(
        "{}: the data key is wrapped by {new:?} now; the old one no longer opens it. \
         Set `{key} = {value}` in [storage] of {} (and remove the other) before the next start.",
        storage.dir.display(),
        loaded.source
    );
    Ok(())
}

/// `communalia key history-key --config FILE`: the history's Parquet key in
/// hexadecimal, for a reader outside the node (its KMS client gives it for the
/// master key `communalia-history`).
pub(crate) fn history_key(loaded: &Loaded) -> Result<()> {
    let Some(key) = loaded.data_key()? else {
        bail!("{}: the data is not encrypted", loaded.source);
    };
    println!("{}", key.subkey(Purpose::History).to_hex());
    Ok(())
}
