//! The data key of the configured data directory (DESIGN.md §10): where its
//! key-encryption key comes from (`[storage] key_file` or `passphrase`), and the
//! checks made before anything in the directory is opened, so that a missing or
//! wrong key is one clear error at start rather than an unreadable database later.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ingest::config::StorageConfig;
use keyring::{DataKey, KekSource, Purpose};

/// What the data directory holds in clear text, if anything: the ledger database,
/// history files or write-ahead log segments.
pub(crate) fn clear_data(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let ledger = dir.join("ledger.sqlite");
    if ledger.exists() {
        found.push(ledger);
    }
    for sub in ["readings", "readings_1m", "wal"] {
        let path = dir.join(sub);
        if has_files(&path) {
            found.push(path);
        }
    }
    found
}

fn has_files(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let p = e.path();
        if p.is_dir() {
            has_files(&p)
        } else {
            p.extension()
                .is_some_and(|x| x == "parquet" || x == "wal" || x == "sqlite")
        }
    })
}

/// The passphrase named by `[storage] passphrase`.
fn passphrase(spec: &str) -> Result<(String, String)> {
    let trim_line = |mut s: String| {
        while s.ends_with('\n') || s.ends_with('\r') {
            s.pop();
        }
        s
    };
    if let Some(name) = spec.strip_prefix("credential:") {
        let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") else {
            bail!(
                "[storage] passphrase = \"{spec}\": $CREDENTIALS_DIRECTORY is not set (systemd's LoadCredential= sets it)"
            );
        };
        if name.is_empty() || name.contains('/') {
            bail!("[storage] passphrase = \"{spec}\": not a credential name");
        }
        let path = Path::new(&dir).join(name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the passphrase credential {}", path.display()))?;
        return Ok((trim_line(text), format!("credential {}", path.display())));
    }
    if let Some(var) = spec.strip_prefix("env:") {
        let value = std::env::var(var).with_context(|| {
            format!("[storage] passphrase = \"{spec}\": the environment variable {var} is not set")
        })?;
        return Ok((value, format!("${var}")));
    }
    if spec == "ask" {
        if !std::io::stdin().is_terminal() {
            bail!(
                "[storage] passphrase = \"ask\": no terminal to ask on (use \"credential:NAME\" under systemd)"
            );
        }
        let value = rpassword::prompt_password("Passphrase of the data directory: ")
            .context("cannot read the passphrase")?;
        return Ok((value, "the terminal".into()));
    }
    bail!("[storage] passphrase = \"{spec}\": expected \"credential:NAME\", \"env:VAR\" or \"ask\"")
}

/// The key-encryption key the configuration names, if any.
pub(crate) fn kek_source(storage: &StorageConfig) -> Result<Option<KekSource>> {
    match (&storage.key_file, &storage.passphrase) {
        (Some(_), Some(_)) => {
            bail!(
                "[storage] has both key_file and passphrase: the data key is wrapped by one of them"
            )
        }
        (Some(file), None) => {
            let inside = match (std::path::absolute(file), std::path::absolute(&storage.dir)) {
                (Ok(f), Ok(d)) => f.starts_with(d),
                _ => false,
            };
            if inside {
                bail!(
                    "[storage] key_file = {}: the key file must be outside the data directory {} (whoever takes the data would take the key)",
                    file.display(),
                    storage.dir.display()
                );
            }
            Ok(Some(KekSource::KeyFile(file.clone())))
        }
        (None, Some(spec)) => {
            let (passphrase, origin) = passphrase(spec)?;
            Ok(Some(KekSource::Passphrase { passphrase, origin }))
        }
        (None, None) => Ok(None),
    }
}

/// The data key of the configured directory: opened, or created at first start.
/// `None`: the node runs in clear text (no key configured, no keyring), which it
/// says. Refuses to start when the directory and the configuration disagree.
pub(crate) fn data_key(storage: &StorageConfig) -> Result<Option<DataKey>> {
    let dir = &storage.dir;
    let source = kek_source(storage)?;
    let encrypted = keyring::is_encrypted(dir);
    let Some(source) = source else {
        if encrypted {
            bail!(
                "{} is encrypted ({} is there) but no [storage] key_file or passphrase is configured",
                dir.display(),
                dir.join(keyring::KEYRING_FILE).display()
            );
        }
        tracing::warn!(
            dir = %dir.display(),
            "the data directory is NOT encrypted: set [storage] key_file (or passphrase) and run `communalia encrypt`"
        );
        return Ok(None);
    };
    if !encrypted {
        let clear = clear_data(dir);
        if !clear.is_empty() {
            bail!(
                "{} holds clear-text data ({}): a key is configured, so convert it first with `communalia encrypt --config FILE`",
                dir.display(),
                clear
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the storage directory {}", dir.display()))?;
    let (key, created) = keyring::open_or_create(dir, &source)?;
    if created {
        tracing::info!(dir = %dir.display(), kek = ?source, "new data key: the data directory is encrypted");
    }
    Ok(Some(key))
}

/// The journal's SQLCipher key.
pub(crate) fn journal_key(key: Option<&DataKey>) -> Option<keyring::Key32> {
    key.map(|k| k.subkey(Purpose::Journal))
}

/// The history's options with its key.
pub(crate) fn history_options(
    storage: &StorageConfig,
    key: Option<&DataKey>,
) -> ingest::history::HistoryOptions {
    ingest::history::HistoryOptions {
        key: key.map(|k| k.subkey(Purpose::History)),
        ..storage.history_options()
    }
}

/// The write-ahead log's record sealer.
pub(crate) fn wal_sealer(key: Option<&DataKey>) -> Option<std::sync::Arc<keyring::RecordSealer>> {
    key.map(|k| std::sync::Arc::new(keyring::RecordSealer::new(&k.subkey(Purpose::Wal))))
}
