//! The node's keys at rest (DESIGN.md §10): one random 256-bit data key per data
//! directory, wrapped by a key-encryption key (KEK) that never lives in it, and the
//! subkeys each store derives from it (the journal's SQLCipher key, the write-ahead
//! log's record key, the Parquet history's key).
//!
//! On disk, `<storage>/keyring.json` holds the wrapped data key:
//!
//! ```text
//! {"version": 1, "kek": {"kind": "key_file"}                       | the KEK is a key file
//!                       {"kind": "argon2id", "salt", "m_kib", "t", "p"} | or argon2id(passphrase)
//!  "nonce": hex(12), "wrapped": hex(ChaCha20-Poly1305(KEK, data key))}
//! ```
//!
//! The associated data of the wrapping is the version and the KEK description, so a
//! keyring whose parameters were edited does not open. A wrong key file or passphrase
//! fails here, at start, with one error naming what was tried, instead of as an
//! unreadable database later.
//!
//! Subkeys are HKDF-SHA256 of the data key with one label per use: a store never
//! holds the data key itself, and keys for later uses (the federation identity) can
//! be derived without touching those already in files.
//!
//! This crate owns the key formats and their checks; it never reads the node's
//! configuration and never stores anything but the keyring file and a new key file.
//! All cryptography is ring's, the library rustls and Parquet's encryption bring.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

pub mod age;

/// The file in the data directory that holds the wrapped data key.
pub const KEYRING_FILE: &str = "keyring.json";
const VERSION: u32 = 1;
/// HKDF salt: names this derivation scheme, so another never yields the same keys.
const HKDF_SALT: &[u8] = b"communalia data key v1";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "key file {path} can be read by others (mode {mode:o}): it must be readable by its owner only (chmod 600 {path})"
    )]
    KeyFileExposed { path: PathBuf, mode: u32 },
    #[error("key file {path} is not a key: {why} (expected 64 hexadecimal digits)")]
    KeyFileInvalid { path: PathBuf, why: String },
    #[error(
        "key file {key_file} is missing: the data in {dir} is encrypted and cannot be read without it"
    )]
    KeyFileMissing { key_file: PathBuf, dir: PathBuf },
    #[error(
        "{what} does not open the data key of {keyring}: it is not the key this data directory was encrypted with"
    )]
    WrongKey { what: String, keyring: PathBuf },
    #[error("{path}: {why}")]
    Keyring { path: PathBuf, why: String },
    #[error(
        "{keyring} was wrapped by a {wrapped_by}, but the configuration gives a {given}: configure the one it was made with"
    )]
    KekMismatch {
        keyring: PathBuf,
        wrapped_by: &'static str,
        given: &'static str,
    },
    #[error("passphrase: {0}")]
    Passphrase(String),
    #[error("no random numbers from the system")]
    Random,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// 32 bytes of key that do not show in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Key32([u8; 32]);

impl Key32 {
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Key32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key32(..)")
    }
}

impl Drop for Key32 {
    fn drop(&mut self) {
        // Best effort: the optimiser may keep copies, but not this one.
        self.0 = [0; 32];
    }
}

fn random32() -> Result<[u8; 32]> {
    let mut k = [0u8; 32];
    SystemRandom::new()
        .fill(&mut k)
        .map_err(|_| Error::Random)?;
    Ok(k)
}

/// What each subkey is for: its HKDF label. Never change a label: the data
/// written under it would no longer open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// SQLCipher's raw key for the journal database.
    Journal,
    /// The write-ahead log's record sealing key.
    Wal,
    /// The Parquet history's footer (and, uniformly, column) key.
    History,
    /// Seals the federation's node signing key (`node.key`) at rest.
    NodeKey,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Journal => b"journal sqlcipher",
            Purpose::Wal => b"wal records chacha20-poly1305",
            Purpose::History => b"history parquet aes-256-gcm",
            Purpose::NodeKey => b"federation node key chacha20-poly1305",
        }
    }
}

struct Len32;
impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

/// The data key of one data directory.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey(Key32);

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// A fresh random data key.
    pub fn generate() -> Result<DataKey> {
        Ok(DataKey(Key32(random32()?)))
    }

    /// The subkey for `purpose`.
    pub fn subkey(&self, purpose: Purpose) -> Key32 {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(self.0.bytes());
        let info = [purpose.label()];
        let mut out = [0u8; 32];
        // `expand` and `fill` fail only for an output longer than 255 hash lengths.
        if let Ok(okm) = prk.expand(&info, Len32) {
            let _ = okm.fill(&mut out);
        }
        Key32(out)
    }

    /// The bytes of the data key itself, for a backup archive (which encrypts them).
    pub fn to_hex(&self) -> String {
        self.0.to_hex()
    }

    /// A data key from [`DataKey::to_hex`].
    pub fn from_hex(text: &str) -> Option<DataKey> {
        let bytes = hex::decode(text.trim()).ok()?;
        let bytes: [u8; 32] = bytes.try_into().ok()?;
        Some(DataKey(Key32(bytes)))
    }
}

/// Where the key-encryption key comes from.
#[derive(Clone)]
pub enum KekSource {
    /// 32 random bytes in hexadecimal in a file outside the data directory, mode 0600.
    KeyFile(PathBuf),
    /// A passphrase (from a systemd credential, the environment or a terminal),
    /// stretched with argon2id; `origin` says where it came from, for errors.
    Passphrase { passphrase: String, origin: String },
}

impl fmt::Debug for KekSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KekSource::KeyFile(p) => write!(f, "KeyFile({})", p.display()),
            KekSource::Passphrase { origin, .. } => write!(f, "Passphrase(from {origin})"),
        }
    }
}

impl KekSource {
    fn describe(&self) -> String {
        match self {
            KekSource::KeyFile(p) => format!("key file {}", p.display()),
            KekSource::Passphrase { origin, .. } => format!("the passphrase from {origin}"),
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            KekSource::KeyFile(_) => "key file",
            KekSource::Passphrase { .. } => "passphrase",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum KekParams {
    KeyFile,
    Argon2id {
        salt: String,
        m_kib: u32,
        t: u32,
        p: u32,
    },
}

impl KekParams {
    fn kind(&self) -> &'static str {
        match self {
            KekParams::KeyFile => "key file",
            KekParams::Argon2id { .. } => "passphrase",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringFile {
    version: u32,
    kek: KekParams,
    nonce: String,
    wrapped: String,
}

/// argon2id costs for a new passphrase: OWASP's first recommendation (19 MiB, 2
/// passes), bearable on a small ARM board at each start.
const ARGON2_M_KIB: u32 = 19 * 1024;
const ARGON2_T: u32 = 2;
const ARGON2_P: u32 = 1;
/// The most a keyring may ask for: a keyring is read before anything is verified,
/// and a forged one must not make the node allocate gigabytes.
const ARGON2_MAX_M_KIB: u32 = 1024 * 1024;
const ARGON2_MAX_T: u32 = 64;

/// Reads (or, with `create`, makes) the key file and checks its mode.
fn read_key_file(path: &Path) -> Result<Key32> {
    let file = File::open(path).map_err(io_at(path))?;
    let mode = file.metadata().map_err(io_at(path))?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(Error::KeyFileExposed {
            path: path.to_path_buf(),
            mode: mode & 0o777,
        });
    }
    let mut text = String::new();
    file.take(1024)
        .read_to_string(&mut text)
        .map_err(|e| Error::KeyFileInvalid {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
    let invalid = |why: &str| Error::KeyFileInvalid {
        path: path.to_path_buf(),
        why: why.to_string(),
    };
    let bytes = hex::decode(text.trim()).map_err(|_| invalid("not hexadecimal"))?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| invalid("not 32 bytes long"))?;
    Ok(Key32(bytes))
}

/// Writes a new random key file (mode 0600, never over an existing file).
pub fn create_key_file(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io_at(dir))?;
    }
    let key = Key32(random32()?);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_at(path))?;
    file.write_all(format!("{}\n", key.to_hex()).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_at(path))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        sync_dir(dir)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

fn argon2_kek(passphrase: &str, salt: &[u8], m_kib: u32, t: u32, p: u32) -> Result<Key32> {
    let params =
        argon2::Params::new(m_kib, t, p, Some(32)).map_err(|e| Error::Passphrase(e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    argon
        .hash_password_into(passphrase.as_bytes(), salt, &mut out)
        .map_err(|e| Error::Passphrase(e.to_string()))?;
    Ok(Key32(out))
}

fn aad(version: u32, kek: &KekParams) -> Vec<u8> {
    let mut a = format!("communalia keyring v{version}\n").into_bytes();
    a.extend_from_slice(serde_json::to_string(kek).unwrap_or_default().as_bytes());
    a
}

fn aead_key(k: &Key32) -> LessSafeKey {
    // A 32-byte key is always the right length for ChaCha20-Poly1305.
    LessSafeKey::new(
        UnboundKey::new(&CHACHA20_POLY1305, k.bytes())
            .unwrap_or_else(|_| unreachable!("ChaCha20-Poly1305 takes 32-byte keys")),
    )
}

/// The KEK and its parameters for a new wrapping.
fn new_kek(source: &KekSource) -> Result<(Key32, KekParams)> {
    match source {
        KekSource::KeyFile(path) => {
            if !path.exists() {
                create_key_file(path)?;
            }
            Ok((read_key_file(path)?, KekParams::KeyFile))
        }
        KekSource::Passphrase { passphrase, .. } => {
            if passphrase.is_empty() {
                return Err(Error::Passphrase("empty".into()));
            }
            let mut salt = [0u8; 16];
            SystemRandom::new()
                .fill(&mut salt)
                .map_err(|_| Error::Random)?;
            let kek = argon2_kek(passphrase, &salt, ARGON2_M_KIB, ARGON2_T, ARGON2_P)?;
            Ok((
                kek,
                KekParams::Argon2id {
                    salt: hex::encode(salt),
                    m_kib: ARGON2_M_KIB,
                    t: ARGON2_T,
                    p: ARGON2_P,
                },
            ))
        }
    }
}

/// Wraps `key` under `source` and writes the keyring into `dir` (atomically:
/// a temporary file renamed over the old keyring, both synced).
fn write_keyring(dir: &Path, key: &DataKey, source: &KekSource) -> Result<()> {
    let (kek, params) = new_kek(source)?;
    let mut nonce = [0u8; 12];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| Error::Random)?;
    let mut sealed = key.0.bytes().to_vec();
    aead_key(&kek)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(VERSION, &params)),
            &mut sealed,
        )
        .map_err(|_| Error::Random)?;
    let file = KeyringFile {
        version: VERSION,
        kek: params,
        nonce: hex::encode(nonce),
        wrapped: hex::encode(&sealed),
    };
    let text = serde_json::to_string_pretty(&file).map_err(|e| Error::Keyring {
        path: dir.join(KEYRING_FILE),
        why: e.to_string(),
    })?;
    fs::create_dir_all(dir).map_err(io_at(dir))?;
    let path = dir.join(KEYRING_FILE);
    let tmp = dir.join(format!("{KEYRING_FILE}.tmp"));
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_at(&tmp))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .map_err(io_at(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_at(&path))?;
    sync_dir(dir)
}

/// Whether `dir` holds a keyring (its data is encrypted).
pub fn is_encrypted(dir: &Path) -> bool {
    dir.join(KEYRING_FILE).exists()
}

/// Unwraps the data key of `dir` with `source`.
pub fn open(dir: &Path, source: &KekSource) -> Result<DataKey> {
    let path = dir.join(KEYRING_FILE);
    let bad = |why: String| Error::Keyring {
        path: path.clone(),
        why,
    };
    let mut text = String::new();
    File::open(&path)
        .and_then(|f| f.take(64 * 1024).read_to_string(&mut text))
        .map_err(io_at(&path))?;
    let file: KeyringFile =
        serde_json::from_str(&text).map_err(|e| bad(format!("not a keyring: {e}")))?;
    if file.version != VERSION {
        return Err(bad(format!(
            "keyring version {} is not known to this node (it knows {VERSION})",
            file.version
        )));
    }
    if file.kek.kind() != source.kind() {
        return Err(Error::KekMismatch {
            keyring: path,
            wrapped_by: file.kek.kind(),
            given: source.kind(),
        });
    }
    let kek = match (&file.kek, source) {
        (KekParams::KeyFile, KekSource::KeyFile(key_file)) => {
            if !key_file.exists() {
                return Err(Error::KeyFileMissing {
                    key_file: key_file.clone(),
                    dir: dir.to_path_buf(),
                });
            }
            read_key_file(key_file)?
        }
        (KekParams::Argon2id { salt, m_kib, t, p }, KekSource::Passphrase { passphrase, .. }) => {
            if *m_kib > ARGON2_MAX_M_KIB || *t > ARGON2_MAX_T || *p > 16 {
                return Err(bad(format!(
                    "argon2id costs m={m_kib} KiB t={t} p={p} are beyond what this node accepts"
                )));
            }
            let salt = hex::decode(salt).map_err(|_| bad("salt is not hexadecimal".into()))?;
            argon2_kek(passphrase, &salt, *m_kib, *t, *p)?
        }
        _ => unreachable!("kinds compared above"),
    };
    let nonce: [u8; 12] = hex::decode(&file.nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or_else(|| bad("nonce is not 12 bytes of hexadecimal".into()))?;
    let mut sealed =
        hex::decode(&file.wrapped).map_err(|_| bad("wrapped key is not hexadecimal".into()))?;
    let opened = aead_key(&kek)
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(file.version, &file.kek)),
            &mut sealed,
        )
        .map_err(|_| Error::WrongKey {
            what: source.describe(),
            keyring: path.clone(),
        })?;
    let key: [u8; 32] = opened
        .try_into()
        .map_err(|_| bad("wrapped key is not 32 bytes".into()))?;
    Ok(DataKey(Key32(key)))
}

/// Opens the data key of `dir`, or creates one (and the key file, if the source is
/// a key file that does not exist yet) when the directory has no keyring.
/// Returns the key and whether it was created.
pub fn open_or_create(dir: &Path, source: &KekSource) -> Result<(DataKey, bool)> {
    if is_encrypted(dir) {
        return open(dir, source).map(|k| (k, false));
    }
    let key = DataKey::generate()?;
    write_keyring(dir, &key, source)?;
    Ok((key, true))
}

/// Writes `key` as the keyring of `dir` under `source` (a restore on a new machine,
/// or a migration's new key). Replaces a keyring that is there.
pub fn install(dir: &Path, key: &DataKey, source: &KekSource) -> Result<()> {
    write_keyring(dir, key, source)
}

/// `communalia key rotate`: unwraps with `old`, wraps again under `new`. The data
/// key, and so every file, stays the same; only the keyring changes.
pub fn rotate(dir: &Path, old: &KekSource, new: &KekSource) -> Result<()> {
    let key = open(dir, old)?;
    if let (KekSource::KeyFile(a), KekSource::KeyFile(b)) = (old, new)
        && a == b
    {
        return Err(Error::Keyring {
            path: dir.join(KEYRING_FILE),
            why: format!(
                "the new key file {} is the old one: name a new file",
                b.display()
            ),
        });
    }
    write_keyring(dir, &key, new)?;
    // Proves the new keyring opens before the caller lets go of the old KEK.
    open(dir, new).map(|_| ())
}

/// Seals and opens records with a subkey (ChaCha20-Poly1305, random 96-bit nonces:
/// a record number can be written twice, after a failed write, so it cannot be
/// the nonce).
pub struct RecordSealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl fmt::Debug for RecordSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecordSealer(..)")
    }
}

/// Bytes a sealed record adds to its plaintext: nonce and tag.
pub const SEAL_OVERHEAD: usize = 12 + 16;

impl RecordSealer {
    pub fn new(key: &Key32) -> RecordSealer {
        RecordSealer {
            key: aead_key(key),
            rng: SystemRandom::new(),
        }
    }

    /// `nonce || ciphertext || tag` of `plaintext`, bound to `associated`.
    pub fn seal(&self, associated: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; 12];
        self.rng.fill(&mut nonce).map_err(|_| Error::Random)?;
        let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated),
                &mut out[12..],
            )
            .map_err(|_| Error::Random)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// The plaintext of a sealed record, or `None` when it was not sealed with this
    /// key and `associated` or was changed since.
    pub fn open(&self, associated: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < SEAL_OVERHEAD {
            return None;
        }
        let nonce: [u8; 12] = sealed[..12].try_into().ok()?;
        let mut buf = sealed[12..].to_vec();
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated),
                &mut buf,
            )
            .ok()?;
        let n = plain.len();
        buf.truncate(n);
        Some(buf)
    }
}

#[cfg(test)]
mod tests;
