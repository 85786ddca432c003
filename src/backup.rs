//! `communalia backup` (one age archive of the configuration, the keyring, a
//! consistent snapshot of the journal and the history as it is on disk, made while
//! the node runs) and `communalia restore` (a node rebuilt from it, verified before
//! it says so), DESIGN.md §10.
//!
//! The archive is an age v1 file (`keyring::age`) holding a tar:
//!
//! ```text
//! config.toml            the configuration the backup was made with
//! data/keyring.json      the wrapped data key (encrypted nodes)
//! data/ledger.sqlite     the journal, a snapshot (SQLite's online backup, same key)
//! data/wal/…             the write-ahead log, as on disk (sealed when encrypted)
//! data/readings/…        the Parquet history, as on disk (encrypted when encrypted)
//! data/readings_1m/…
//! data/…                 the rest of the data directory (MQTT client id, certificate…)
//! manifest.json          what was written: sizes, the journal's head, rows per file
//! ```
//!
//! The key file or passphrase is never in it: restoring takes the age identity
//! *and* the node's key.

mod tar;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use keyring::age::{Decryptor, Encryptor, Identity, Recipient};
use keyring::{DataKey, Key32, Purpose};
use serde::{Deserialize, Serialize};

use crate::config::Loaded;

const CONFIG_MEMBER: &str = "config.toml";
const MANIFEST_MEMBER: &str = "manifest.json";
const DATA_PREFIX: &str = "data/";
const MANIFEST_FORMAT: &str = "communalia-backup/1";
/// How many times the history is linked again when compaction replaced a file
/// under the backup's feet.
const HISTORY_ATTEMPTS: usize = 5;
/// The history's own directories, linked together in one pass.
const HISTORY_DIRS: [&str; 2] = ["readings", "readings_1m"];
/// The configuration and the manifest are read into memory: bounded.
const MAX_SMALL_MEMBER: u64 = 16 * 1024 * 1024;

/// What a backup holds, written last in the archive and checked by restore.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    format: String,
    created_at: String,
    site: String,
    encrypted: bool,
    journal_entries: u64,
    journal_head: String,
    /// Every file under `data/`, with its size.
    files: BTreeMap<String, u64>,
    /// Rows of every history file.
    history_rows: BTreeMap<String, usize>,
}

/// Every regular file under `dir`, relative to it, sorted; a directory that does
/// not exist has none, and one removed while it is listed is passed over.
pub(crate) fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let here = dir.join(&rel);
        let entries = match std::fs::read_dir(&here) {
            Ok(e) => e,
            // A day directory deleted by retention meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !rel.as_os_str().is_empty() => {
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", here.display())),
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", here.display()))?;
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let rel = rel.join(entry.file_name());
            if kind.is_dir() {
                todo.push(rel);
            } else if kind.is_file() {
                out.push(rel);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `rel` as a tar path (`/`-separated UTF-8).
fn member_name(rel: &Path) -> Result<String> {
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    parts
        .map(|p| format!("{DATA_PREFIX}{}", p.join("/")))
        .with_context(|| format!("{}: a file name that is not UTF-8", rel.display()))
}

fn open_sqlite(path: &Path, key: Option<&Key32>, create: bool) -> Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = rusqlite::Connection::open_with_flags(path, flags)
        .with_context(|| format!("cannot open {}", path.display()))?;
    if let Some(key) = key {
        conn.execute_batch("PRAGMA cipher_log_level = NONE;")?;
        conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", key.to_hex()))?;
    }
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}

/// A consistent copy of the journal `src` as `dst` while the node writes to it:
/// SQLite's online backup, all pages in one step under one read transaction,
/// into a database keyed like the source (SQLCipher encrypts it with the same key).
fn snapshot_journal(src: &Path, dst: &Path, key: Option<&Key32>) -> Result<()> {
    let source = open_sqlite(src, key, false)?;
    source
        .query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .with_context(|| format!("cannot read {}", src.display()))?;
    let mut dest = open_sqlite(dst, key, true)?;
    {
        let backup = rusqlite::backup::Backup::new(&source, &mut dest)
            .with_context(|| format!("cannot start a snapshot of {}", src.display()))?;
        let mut waits = 0;
        loop {
            match backup
                .step(-1)
                .with_context(|| format!("cannot snapshot {}", src.display()))?
            {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::More => {}
                _ => {
                    waits += 1;
                    if waits > 600 {
                        bail!("{}: busy for a minute, no snapshot taken", src.display());
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
    let check: String = dest
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .with_context(|| format!("cannot check the snapshot {}", dst.display()))?;
    if check != "ok" {
        bail!("the snapshot of {} does not check: {check}", src.display());
    }
    Ok(())
}

/// Removes a path when dropped, unless kept.
struct Cleanup {
    paths: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.paths {
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(p);
            } else {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Hard links (copies where links fail) of the log and the history into `stage`,
/// the log first: whatever a flush moves from the log into the history meanwhile
/// is then in the links of one or the other. `Ok(false)`: a history file listed
/// was gone before it was linked (compaction replaced it): the pass must be redone.
/// `before_link` runs before each history file is linked (tests stand a compaction
/// there).
fn link_history(dir: &Path, stage: &Path, before_link: &mut dyn FnMut(&Path)) -> Result<bool> {
    let link = |rel: &Path| -> Result<bool> {
        let src = dir.join(rel);
        let dst = stage.join(rel);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        match std::fs::hard_link(&src, &dst) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(_) => match std::fs::copy(&src, &dst) {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e).with_context(|| format!("cannot copy {}", src.display())),
            },
        }
    };
    // A log segment gone meanwhile was cut after a flush the history below holds.
    for rel in files_under(&dir.join("wal"))? {
        link(&Path::new("wal").join(rel))?;
    }
    for sub in HISTORY_DIRS {
        for rel in files_under(&dir.join(sub))? {
            if rel.extension().is_some_and(|e| e == "tmp") {
                continue;
            }
            let rel = Path::new(sub).join(rel);
            before_link(&rel);
            if !link(&rel)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Removes the staging directories of backups that were killed (their process is
/// gone): their links would hold the space of files the node has deleted since.
fn remove_stale_stages(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(".backup-") else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            tracing::info!(dir = %entry.path().display(), "removing what a killed backup left");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Links the log and the history into `stage` (made anew) until one pass finds
/// every file it listed; returns how many passes it took.
fn stage_history(dir: &Path, stage: &Path, before_link: &mut dyn FnMut(&Path)) -> Result<usize> {
    for attempt in 1..=HISTORY_ATTEMPTS {
        if stage.exists() {
            std::fs::remove_dir_all(stage)
                .with_context(|| format!("cannot remove {}", stage.display()))?;
        }
        std::fs::create_dir(stage).with_context(|| format!("cannot create {}", stage.display()))?;
        if link_history(dir, stage, before_link)? {
            return Ok(attempt);
        }
        tracing::info!("a history file was replaced while the backup linked it: linking again");
    }
    bail!(
        "the history in {} kept changing while it was copied ({HISTORY_ATTEMPTS} tries): try again",
        dir.display()
    )
}

/// `communalia backup --config FILE --to ARCHIVE [--recipient age1…]…`.
pub(crate) fn backup(loaded: &Loaded, to: &Path, more_recipients: &[String]) -> Result<()> {
    let storage = &loaded.config.storage;
    let dir = &storage.dir;
    if !dir.is_dir() {
        bail!(
            "no data directory at {} (has the node run with {}?)",
            dir.display(),
            loaded.source
        );
    }
    let ledger = loaded.ledger_path();
    if !ledger.exists() {
        bail!(
            "no journal at {} (has the node run with {}?)",
            ledger.display(),
            loaded.source
        );
    }
    let mut recipients: Vec<Recipient> = Vec::new();
    for text in loaded
        .config
        .backup
        .recipients
        .iter()
        .chain(more_recipients)
    {
        let r: Recipient = text
            .parse()
            .with_context(|| format!("--recipient {text}"))?;
        if !recipients.contains(&r) {
            recipients.push(r);
        }
    }
    if recipients.is_empty() {
        bail!(
            "no recipient to encrypt the backup to: set [backup] recipients = [\"age1…\"] in {} or give --recipient age1… (age-keygen makes a pair)",
            loaded.source
        );
    }
    let abs_to = std::path::absolute(to).with_context(|| format!("{}", to.display()))?;
    let abs_dir = std::path::absolute(dir).with_context(|| format!("{}", dir.display()))?;
    if abs_to.starts_with(&abs_dir) {
        bail!(
            "{}: the archive must be outside the data directory {} (a backup beside the data is lost with it)",
            to.display(),
            dir.display()
        );
    }
    let Some(name) = to.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        bail!("{}: not a file name", to.display());
    };
    if let Some(parent) = abs_to.parent()
        && !parent.is_dir()
    {
        bail!(
            "{}: no directory {} to write it in",
            to.display(),
            parent.display()
        );
    }
    let key = loaded.data_key()?;
    let journal_key = crate::keys::journal_key(key);
    let history_key = key.map(|k| k.subkey(Purpose::History));

    let partial = to.with_file_name(format!(".{name}.partial"));
    let snapshot = to.with_file_name(format!(".{name}.journal"));
    let stage = dir.join(format!(".backup-{}", std::process::id()));
    let paths = vec![
        partial.clone(),
        snapshot.clone(),
        PathBuf::from(format!("{}-journal", snapshot.display())),
        PathBuf::from(format!("{}-wal", snapshot.display())),
        PathBuf::from(format!("{}-shm", snapshot.display())),
        stage.clone(),
    ];
    for p in &paths {
        if p.exists() {
            bail!(
                "{} is in the way (left by a backup that was interrupted? remove it)",
                p.display()
            );
        }
    }
    let mut cleanup = Cleanup { paths };
    remove_stale_stages(dir);

    // The journal first: a snapshot, verified as `ledger verify` does.
    snapshot_journal(&ledger, &snapshot, journal_key.as_ref())?;
    let report = ledger::Journal::open_keyed(&snapshot, journal_key.as_ref())
        .and_then(|j| j.verify())
        .with_context(|| format!("cannot verify the snapshot of {}", ledger.display()))?;
    if !report.chain_intact || report.first_bad.is_some() {
        bail!(
            "{} does not verify (`communalia ledger verify` says where): no backup written",
            ledger.display()
        );
    }

    // The history, linked in a consistent pass.
    stage_history(dir, &stage, &mut |_| {})?;

    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let encryptor = Encryptor::new(BufWriter::with_capacity(256 * 1024, file), &recipients)
        .with_context(|| format!("cannot start {}", partial.display()))?;
    let mut tar = tar::Writer::new(encryptor);
    let now = unix_now();
    let write_err = |what: &str| format!("cannot write {what} into {}", partial.display());
    let mut manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        site: loaded.config.site.name.clone(),
        encrypted: key.is_some(),
        journal_entries: report.entries,
        journal_head: report.head_hash.clone(),
        ..Manifest::default()
    };
    tar.add(
        CONFIG_MEMBER,
        loaded.text.len() as u64,
        now,
        &mut loaded.text.as_bytes(),
    )
    .with_context(|| write_err(CONFIG_MEMBER))?;

    add_file(
        &mut tar,
        &snapshot,
        format!("{DATA_PREFIX}ledger.sqlite"),
        now,
        &partial,
        &mut manifest.files,
    )?;
    // The rest of the data directory as it is, but the journal's own files and what
    // the pass above linked.
    let skip_top: BTreeSet<String> = [
        "ledger.sqlite",
        "ledger.sqlite-wal",
        "ledger.sqlite-shm",
        "ledger.sqlite-journal",
        "wal",
        "readings",
        "readings_1m",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let mut others = 0;
    for rel in files_under(dir)? {
        let top = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        if skip_top.contains(&top) || top.starts_with(".backup-") {
            continue;
        }
        if add_file(
            &mut tar,
            &dir.join(&rel),
            member_name(&rel)?,
            now,
            &partial,
            &mut manifest.files,
        )? {
            others += 1;
        }
    }
    let mut history_files = 0;
    let mut history_rows = 0;
    let mut wal_files = 0;
    for rel in files_under(&stage)? {
        let src = stage.join(&rel);
        let member = member_name(&rel)?;
        if rel.extension().is_some_and(|e| e == "parquet") {
            let rows =
                ingest::history::count_rows(&src, history_key.as_ref()).with_context(|| {
                    format!("cannot read the history file {}", dir.join(&rel).display())
                })?;
            manifest.history_rows.insert(member.clone(), rows);
            history_files += 1;
            history_rows += rows;
        } else if rel.starts_with("wal") {
            wal_files += 1;
        }
        add_file(&mut tar, &src, member, now, &partial, &mut manifest.files)?;
    }
    let manifest_bytes = serde_json::to_vec_pretty(&manifest)?;
    tar.add(
        MANIFEST_MEMBER,
        manifest_bytes.len() as u64,
        now,
        &mut manifest_bytes.as_slice(),
    )
    .with_context(|| write_err(MANIFEST_MEMBER))?;
    let encryptor = tar
        .finish()
        .with_context(|| write_err("the end of the tar"))?;
    let file = encryptor
        .finish()
        .with_context(|| write_err("the last chunk"))?
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| write_err("the last chunk"))?;
    file.sync_all()
        .with_context(|| format!("cannot sync {}", partial.display()))?;
    drop(file);
    std::fs::rename(&partial, to)
        .with_context(|| format!("cannot move {} to {}", partial.display(), to.display()))?;
    cleanup.paths.retain(|p| p != &partial);
    if let Some(parent) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
        let _ = File::open(parent).and_then(|d| d.sync_all());
    }
    drop(cleanup);
    println!(
        "{}: backup of {} for {} recipient(s): journal {} entries (chain intact, head {}), {} history files ({} rows), {} write-ahead log segments, {} other files{}",
        to.display(),
        dir.display(),
        recipients.len(),
        report.entries,
        report.head_hash,
        history_files,
        history_rows,
        wal_files,
        others,
        if key.is_some() {
            "; restoring it also takes the node's key file or passphrase, which is not in it"
        } else {
            "; the data in it is clear text (the node is not encrypted): only age protects it"
        }
    );
    Ok(())
}

/// Adds the file `src` as `member`, as long as it is when opened; `Ok(false)`
/// when it is gone (deleted since it was listed).
fn add_file<W: Write>(
    tar: &mut tar::Writer<W>,
    src: &Path,
    member: String,
    mtime: u64,
    archive: &Path,
    files: &mut BTreeMap<String, u64>,
) -> Result<bool> {
    let mut f = match File::open(src) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", src.display())),
    };
    let size = f
        .metadata()
        .with_context(|| format!("cannot read {}", src.display()))?
        .len();
    tar.add(&member, size, mtime, &mut f)
        .with_context(|| format!("cannot write {member} into {}", archive.display()))?;
    files.insert(member, size);
    Ok(true)
}

/// Whether `dir` is absent or an empty directory.
fn absent_or_empty(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
}

/// What restore has written so far, undone unless it succeeds: the files written
/// into a directory that was empty (or the directory it made), and a
/// configuration file it wrote.
struct Undo {
    dir: PathBuf,
    made_dir: bool,
    config: Option<PathBuf>,
    done: bool,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.made_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let p = e.path();
                let _ = if p.is_dir() && !p.is_symlink() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
        if let Some(c) = &self.config {
            let _ = std::fs::remove_file(c);
        }
    }
}

fn read_small(
    tar: &mut tar::Reader<impl Read>,
    entry: &tar::Entry,
    from: &Path,
) -> Result<Vec<u8>> {
    if entry.size > MAX_SMALL_MEMBER {
        bail!(
            "{}: {} is {} bytes, too large",
            from.display(),
            entry.path,
            entry.size
        );
    }
    let mut data = Vec::new();
    tar.copy_to(&mut data)
        .with_context(|| format!("{}: cannot read {}", from.display(), entry.path))?;
    Ok(data)
}

/// `communalia restore --config FILE --from ARCHIVE --identity FILE`.
pub(crate) fn restore(config: &Path, from: &Path, identity: &Path) -> Result<()> {
    let identities = std::fs::read_to_string(identity)
        .with_context(|| format!("cannot read the identity file {}", identity.display()))
        .and_then(|text| {
            Identity::parse_file(&text)
                .with_context(|| format!("the identity file {}", identity.display()))
        })?;
    let existing = if config.exists() {
        Some(crate::config::load_file(config)?)
    } else {
        None
    };
    if let Some(l) = &existing {
        refuse_occupied(&l.config.storage.dir)?;
    }
    let archive =
        File::open(from).with_context(|| format!("cannot open the archive {}", from.display()))?;
    let decryptor = Decryptor::new(archive, &identities).map_err(|e| match e {
        keyring::age::AgeError::NoMatch => anyhow::anyhow!(
            "{}: no identity in {} opens it (it was made for other recipients)",
            from.display(),
            identity.display()
        ),
        other => anyhow::anyhow!("{}: {other}", from.display()),
    })?;
    let mut tar = tar::Reader::new(decryptor);
    let in_archive = |e: std::io::Error| anyhow::anyhow!("{}: {e}", from.display());

    // The configuration comes first; it is used when FILE does not exist yet.
    let first = tar.next_entry().map_err(in_archive)?;
    let Some(first) = first.filter(|e| e.path == CONFIG_MEMBER && e.kind == tar::Kind::File) else {
        bail!(
            "{}: not a communalia backup (its first member is not {CONFIG_MEMBER})",
            from.display()
        );
    };
    let archived_config = read_small(&mut tar, &first, from)?;
    let mut undo;
    let loaded = match existing {
        Some(l) => {
            undo = Undo {
                dir: l.config.storage.dir.clone(),
                made_dir: false,
                config: None,
                done: false,
            };
            l
        }
        None => {
            let text = String::from_utf8(archived_config).map_err(|_| {
                anyhow::anyhow!("{}: its {CONFIG_MEMBER} is not UTF-8", from.display())
            })?;
            let l = crate::config::parse(&text, &format!("{} ({CONFIG_MEMBER})", from.display()))?;
            refuse_occupied(&l.config.storage.dir)?;
            write_new(config, text.as_bytes())?;
            undo = Undo {
                dir: l.config.storage.dir.clone(),
                made_dir: false,
                config: Some(config.to_path_buf()),
                done: false,
            };
            crate::config::load_file(config)?
        }
    };
    let dir = loaded.config.storage.dir.clone();
    if !dir.exists() {
        undo.made_dir = true;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;

    // The data, member by member, each into a new file.
    let mut written: BTreeMap<String, u64> = BTreeMap::new();
    let mut manifest: Option<Manifest> = None;
    while let Some(entry) = tar.next_entry().map_err(in_archive)? {
        if manifest.is_some() {
            bail!(
                "{}: {} comes after {MANIFEST_MEMBER}",
                from.display(),
                entry.path
            );
        }
        if entry.path == MANIFEST_MEMBER && entry.kind == tar::Kind::File {
            let bytes = read_small(&mut tar, &entry, from)?;
            manifest = Some(serde_json::from_slice(&bytes).with_context(|| {
                format!("{}: its {MANIFEST_MEMBER} is not readable", from.display())
            })?);
            continue;
        }
        let Some(rel) = entry
            .path
            .strip_prefix(DATA_PREFIX)
            .filter(|r| !r.is_empty())
        else {
            if entry.path == "data" && entry.kind == tar::Kind::Dir {
                continue;
            }
            bail!(
                "{}: unexpected member {} (outside data/)",
                from.display(),
                entry.path
            );
        };
        let target = dir.join(rel);
        if entry.kind == tar::Kind::Dir {
            std::fs::create_dir_all(&target)
                .with_context(|| format!("cannot create {}", target.display()))?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        // A new file: a member named twice, or through a path that is not ours, fails.
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&target)
            .with_context(|| {
                format!(
                    "{}: cannot write {} as {}",
                    from.display(),
                    entry.path,
                    target.display()
                )
            })?;
        let size = tar.copy_to(&mut out).map_err(in_archive)?;
        out.sync_all()
            .with_context(|| format!("cannot sync {}", target.display()))?;
        written.insert(entry.path.clone(), size);
    }
    if let Some(m) = &manifest {
        if m.format != MANIFEST_FORMAT {
            bail!(
                "{}: a backup of another format ({})",
                from.display(),
                m.format
            );
        }
        if m.files != written {
            let missing: Vec<&String> = m
                .files
                .keys()
                .filter(|k| !written.contains_key(*k))
                .collect();
            bail!(
                "{}: its files do not match its manifest (missing or different: {:?})",
                from.display(),
                if missing.is_empty() {
                    m.files
                        .keys()
                        .filter(|k| written.get(*k) != m.files.get(*k))
                        .collect()
                } else {
                    missing
                }
            );
        }
    }

    let done = verify_restored(&loaded, manifest.as_ref()).with_context(|| {
        format!(
            "the node restored from {} does not verify; {} is left as it was",
            from.display(),
            dir.display()
        )
    })?;
    sync_tree(&dir);
    undo.done = true;
    println!(
        "{}: restored from {} and verified: journal {} entries (chain intact, head {}), {} history files ({} rows), {} readings in the write-ahead log, {} files in all{}",
        dir.display(),
        from.display(),
        done.entries,
        done.head,
        done.history_files,
        done.history_rows,
        done.wal_readings,
        written.len(),
        if undo.config.is_some() {
            format!("; the configuration was written to {}", config.display())
        } else {
            format!(
                "; {} was used as it is (the archive's own configuration is its {CONFIG_MEMBER})",
                config.display()
            )
        }
    );
    Ok(())
}

fn refuse_occupied(dir: &Path) -> Result<()> {
    if !absent_or_empty(dir)? {
        bail!(
            "{} is not empty: restore writes into an absent or empty data directory only (move it aside first)",
            dir.display()
        );
    }
    Ok(())
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn sync_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                sync_tree(&e.path());
            }
        }
    }
    let _ = File::open(dir).and_then(|d| d.sync_all());
}

#[derive(Debug)]
struct Restored {
    entries: u64,
    head: String,
    history_files: usize,
    history_rows: usize,
    wal_readings: usize,
}

/// Checks what was written as the node will read it: the data key opens with the
/// configured key file or passphrase, the journal verifies as `ledger verify` does
/// (and has the manifest's head), every history file reads (with the manifest's
/// rows), the write-ahead log replays without damage.
fn verify_restored(loaded: &Loaded, manifest: Option<&Manifest>) -> Result<Restored> {
    let storage = &loaded.config.storage;
    let dir = &storage.dir;
    let source = crate::keys::kek_source(storage)?;
    let has_keyring = keyring::is_encrypted(dir);
    let key: Option<DataKey> = match (has_keyring, source) {
        (true, Some(source)) => Some(keyring::open(dir, &source)?),
        (true, None) => bail!(
            "the backup is of an encrypted node ({} is in it) but {} names no [storage] key_file or passphrase",
            keyring::KEYRING_FILE,
            loaded.source
        ),
        (false, Some(_)) => bail!(
            "the backup is of a clear-text node but {} names a key: restore with a configuration without it, then run `communalia encrypt`",
            loaded.source
        ),
        (false, None) => None,
    };
    let journal_key = key.as_ref().map(|k| k.subkey(Purpose::Journal));
    let history_key = key.as_ref().map(|k| k.subkey(Purpose::History));
    let ledger_path = loaded.ledger_path();
    if !ledger_path.exists() {
        bail!("the backup holds no journal (data/ledger.sqlite)");
    }
    let journal = ledger::Journal::open_keyed(&ledger_path, journal_key.as_ref())
        .with_context(|| format!("cannot open {}", ledger_path.display()))?;
    let report = journal.verify()?;
    if !report.chain_intact || report.first_bad.is_some() {
        bail!(
            "{}: the journal does not verify{}",
            ledger_path.display(),
            report
                .first_bad
                .as_ref()
                .map(|b| format!(" (first bad: {b})"))
                .unwrap_or_default()
        );
    }
    journal
        .balances(chrono::Utc::now())
        .with_context(|| format!("{}: the balances cannot be replayed", ledger_path.display()))?;
    drop(journal);
    if let Some(m) = manifest
        && (m.journal_entries != report.entries || m.journal_head != report.head_hash)
    {
        bail!(
            "{}: {} entries, head {}, where the backup had {} entries, head {}",
            ledger_path.display(),
            report.entries,
            report.head_hash,
            m.journal_entries,
            m.journal_head
        );
    }
    let mut history_files = 0;
    let mut history_rows = 0;
    for sub in HISTORY_DIRS {
        for rel in files_under(&dir.join(sub))? {
            if rel.extension().is_none_or(|e| e != "parquet") {
                continue;
            }
            let path = dir.join(sub).join(&rel);
            let rows = ingest::history::count_rows(&path, history_key.as_ref())
                .with_context(|| format!("cannot read the history file {}", path.display()))?;
            let member = member_name(&Path::new(sub).join(&rel))?;
            if let Some(want) = manifest.and_then(|m| m.history_rows.get(&member))
                && *want != rows
            {
                bail!(
                    "{}: {rows} rows, where the backup had {want}",
                    path.display()
                );
            }
            history_files += 1;
            history_rows += rows;
        }
    }
    if let Some(m) = manifest
        && m.history_rows.len() != history_files
    {
        bail!(
            "{} history files restored, where the backup had {}",
            history_files,
            m.history_rows.len()
        );
    }
    let wal_dir = dir.join("wal");
    let mut wal_readings = 0;
    if wal_dir.is_dir() {
        let sealer = key
            .as_ref()
            .map(|k| std::sync::Arc::new(keyring::RecordSealer::new(&k.subkey(Purpose::Wal))));
        let (_, replayed) =
            ingest::wal::Wal::open_sealed(&wal_dir, ingest::wal::SEGMENT_BYTES, sealer)
                .with_context(|| {
                    format!("cannot read the write-ahead log {}", wal_dir.display())
                })?;
        if !replayed.damaged.is_empty() {
            bail!(
                "the write-ahead log {} is damaged: {}",
                wal_dir.display(),
                replayed.damaged.join("; ")
            );
        }
        wal_readings = replayed.reading_count();
    }
    Ok(Restored {
        entries: report.entries,
        head: report.head_hash,
        history_files,
        history_rows,
        wal_readings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal_with_entries(path: &Path, key: Option<&Key32>) {
        let j = ledger::Journal::open_keyed(path, key).unwrap();
        for name in ["ada", "bea"] {
            j.create_user(
                name,
                &[ledger::Role::Resident],
                "a password long enough",
                ledger::COMMAND_LINE_AUTHOR,
                chrono::Utc::now(),
            )
            .unwrap();
        }
    }

    /// A compaction replacing files while the history is linked: the pass that
    /// missed a file is redone, and the staged history is the one after it, each
    /// row once (the day file, not the flushes it replaced and also the day file).
    #[test]
    fn a_history_file_replaced_during_the_pass_makes_it_start_again() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let day = dir.join("readings/date=2026-03-12");
        std::fs::create_dir_all(&day).unwrap();
        std::fs::create_dir_all(dir.join("wal")).unwrap();
        std::fs::write(dir.join("wal/00000001.wal"), b"log").unwrap();
        for part in ["part-a-w1.parquet", "part-b-w2.parquet"] {
            std::fs::write(day.join(part), part).unwrap();
        }
        std::fs::write(day.join("half.parquet.tmp"), b"unfinished").unwrap();
        let stage = dir.join(".backup-test");
        let mut compacted = false;
        let attempts = stage_history(&dir, &stage, &mut |rel| {
            // Right after the first file is listed, the day is compacted.
            if !compacted && rel.ends_with("part-a-w1.parquet") {
                std::fs::write(day.join("day-1.parquet"), b"day").unwrap();
                std::fs::remove_file(day.join("part-a-w1.parquet")).unwrap();
                std::fs::remove_file(day.join("part-b-w2.parquet")).unwrap();
                compacted = true;
            }
        })
        .unwrap();
        assert_eq!(attempts, 2);
        let staged: Vec<String> = files_under(&stage)
            .unwrap()
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            staged,
            vec![
                "readings/date=2026-03-12/day-1.parquet".to_string(),
                "wal/00000001.wal".to_string()
            ]
        );
        // A history that never holds still is given up on, saying so.
        let mut n = 1;
        let err = stage_history(&dir, &stage, &mut |rel| {
            n += 1;
            std::fs::write(day.join(format!("day-{n}.parquet")), b"day").unwrap();
            std::fs::remove_file(dir.join(rel)).unwrap();
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("kept changing"), "{err}");
    }

    /// The snapshot of a journal, clear or under SQLCipher, opens with the same
    /// key and verifies with the same entries and head; another key does not open
    /// the encrypted one.
    #[test]
    fn a_journal_snapshot_keeps_its_key_and_its_chain() {
        let dir = tempfile::tempdir().unwrap();
        let key = DataKey::generate().unwrap().subkey(Purpose::Journal);
        for key in [None, Some(&key)] {
            let src = dir.path().join(format!("src-{}.sqlite", key.is_some()));
            let dst = dir.path().join(format!("dst-{}.sqlite", key.is_some()));
            journal_with_entries(&src, key);
            // The node keeps the journal open while the snapshot is taken.
            let live = ledger::Journal::open_keyed(&src, key).unwrap();
            snapshot_journal(&src, &dst, key).unwrap();
            let a = live.verify().unwrap();
            let b = ledger::Journal::open_keyed(&dst, key)
                .unwrap()
                .verify()
                .unwrap();
            assert!(b.chain_intact && b.first_bad.is_none());
            assert_eq!((a.entries, a.head_hash), (b.entries, b.head_hash));
            if key.is_some() {
                let head = std::fs::read(&dst).unwrap();
                assert!(
                    !head.starts_with(b"SQLite format 3"),
                    "the snapshot is clear text"
                );
                let other = DataKey::generate().unwrap().subkey(Purpose::Journal);
                assert!(ledger::Journal::open_keyed(&dst, Some(&other)).is_err());
            }
        }
    }
}
