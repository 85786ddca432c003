//! The node's identity on the federation: an Ed25519 key made at first start and
//! kept in the data directory (`node.key`, mode 0600), and the node id derived from
//! its public key unless the configuration names one.
//!
//! Everything that reads or writes the key file is in this module. On a node
//! whose data is encrypted (DESIGN.md §10) the file holds the key sealed with a
//! subkey of the data key ([`keyring::Purpose::NodeKey`]), so that whoever takes
//! the card cannot sign as the node; a clear key found there (a node encrypted
//! before keys were sealed) is sealed in place at the next load. A sealed key
//! without the data key is refused with the file named.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "node.key";
/// First line of the key file: what the file is, and its format's version.
const KEY_HEADER: &str = "communalia node key (ed25519 seed, base64) v1";
/// First line of a sealed key file; the second is the base64 of the seed sealed
/// with the data key's node-key subkey, this header as associated data.
const SEALED_HEADER: &str = "communalia node key (ed25519 seed, sealed, base64) v1";

/// The node's signing key and id.
pub struct NodeKey {
    signing: SigningKey,
    node_id: String,
    path: PathBuf,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret.
        f.debug_struct("NodeKey")
            .field("node_id", &self.node_id)
            .field("public", &self.public().to_string())
            .finish_non_exhaustive()
    }
}

/// Whether `id` can be a node id: it is one token of a NATS subject
/// (`communalia.<node>.summary`) and one segment of an S3 key, so lowercase
/// letters, digits and `-`, 1 to 64 of them, not starting with `-`.
pub fn valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl NodeKey {
    /// The key in `dir`, made there (mode 0600) if there is none yet. The node id
    /// is `node_id` when given, else derived from the public key
    /// ([`PublicKey::derived_node_id`]).
    pub fn load_or_create(dir: &Path, node_id: Option<&str>) -> Result<NodeKey> {
        Self::load_or_create_sealed(dir, node_id, None)
    }

    /// [`NodeKey::load_or_create`] on a node whose data is encrypted when `sealer`
    /// is given (made from [`keyring::Purpose::NodeKey`]): the key is kept sealed
    /// with it, and a clear one is sealed in place.
    pub fn load_or_create_sealed(
        dir: &Path,
        node_id: Option<&str>,
        sealer: Option<&keyring::RecordSealer>,
    ) -> Result<NodeKey> {
        let path = dir.join(KEY_FILE);
        let bad = |why: String| Error::Key {
            path: path.clone(),
            why,
        };
        let signing = match std::fs::read_to_string(&path) {
            Ok(text) => {
                check_private(&path)?;
                match (text.lines().next() == Some(SEALED_HEADER), sealer) {
                    (true, Some(sealer)) => parse_sealed(&text, sealer).map_err(bad)?,
                    (true, None) => {
                        return Err(bad("it is sealed with the data key, and no key is \
                             configured ([storage] key_file or passphrase)"
                            .into()));
                    }
                    (false, sealer) => {
                        let seed = parse_key_file(&text).map_err(bad)?;
                        if let Some(sealer) = sealer {
                            write_key_file(dir, &path, &seed, Some(sealer))?;
                            tracing::info!(path = %path.display(), "node key sealed with the data key");
                        }
                        seed
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(dir, &path, sealer)?,
            Err(e) => return Err(Error::io(&path, e)),
        };
        Self::with_id(signing, node_id, path)
    }

    /// A key held in memory only (tests, simulated nodes of the bench).
    pub fn from_seed(seed: [u8; 32], node_id: Option<&str>) -> Result<NodeKey> {
        Self::with_id(SigningKey::from_bytes(&seed), node_id, PathBuf::new())
    }

    fn with_id(signing: SigningKey, node_id: Option<&str>, path: PathBuf) -> Result<NodeKey> {
        let public = PublicKey(signing.verifying_key());
        let node_id = match node_id {
            Some(id) if valid_node_id(id) => id.to_string(),
            Some(id) => {
                return Err(Error::Config(format!(
                    "key `federation.node_id`: `{id}` is not a node id (lowercase letters, digits and `-`, at most 64)"
                )));
            }
            None => public.derived_node_id(),
        };
        Ok(NodeKey {
            signing,
            node_id,
            path,
        })
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key())
    }

    /// Where the key is kept (empty for a key held in memory).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The Ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
}

/// Refuses a key file others can read: the key is the node's word on the network.
#[cfg(unix)]
fn check_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(Error::Key {
            path: path.to_path_buf(),
            why: format!(
                "others may read it (mode {:o}); run `chmod 600 {}`",
                mode & 0o777,
                path.display()
            ),
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<()> {
    Ok(())
}

fn parse_sealed(
    text: &str,
    sealer: &keyring::RecordSealer,
) -> std::result::Result<SigningKey, String> {
    let line = text.lines().nth(1).ok_or("it has no key line")?;
    let sealed = B64
        .decode(line.trim())
        .map_err(|e| format!("its key line is not base64: {e}"))?;
    let seed = sealer
        .open(SEALED_HEADER.as_bytes(), &sealed)
        .ok_or("it does not open with the data key (another node's, or changed)")?;
    let seed: [u8; 32] = seed
        .try_into()
        .map_err(|b: Vec<u8>| format!("its key is {} bytes, not 32", b.len()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The key file's text for `seed`, sealed with `sealer` when given.
fn key_file_text(seed: &SigningKey, sealer: Option<&keyring::RecordSealer>) -> Result<String> {
    Ok(match sealer {
        Some(sealer) => {
            let sealed = sealer
                .seal(SEALED_HEADER.as_bytes(), seed.as_bytes())
                .map_err(|e| Error::Config(format!("cannot seal the node key: {e}")))?;
            format!("{SEALED_HEADER}\n{}\n", B64.encode(sealed))
        }
        None => format!("{KEY_HEADER}\n{}\n", B64.encode(seed.as_bytes())),
    })
}

/// Writes the key file whole or not at all (temporary file of mode 0600, synced,
/// renamed into place, directory synced).
fn write_key_file(
    dir: &Path,
    path: &Path,
    seed: &SigningKey,
    sealer: Option<&keyring::RecordSealer>,
) -> Result<()> {
    let text = key_file_text(seed, sealer)?;
    let tmp = path.with_extension("key.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path))
        .and_then(|()| std::fs::File::open(dir)?.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// `communalia encrypt`: the clear key file `src` written sealed with `sealer` into
/// the directory `dst_dir`, and read back; returns the key's public half, for the
/// caller to check it is the one it had.
pub fn seal_key_file(
    src: &Path,
    dst_dir: &Path,
    sealer: &keyring::RecordSealer,
) -> Result<PublicKey> {
    let text = std::fs::read_to_string(src).map_err(|e| Error::io(src, e))?;
    let seed = parse_key_file(&text).map_err(|why| Error::Key {
        path: src.to_path_buf(),
        why,
    })?;
    let dst = dst_dir.join(KEY_FILE);
    write_key_file(dst_dir, &dst, &seed, Some(sealer))?;
    let back = std::fs::read_to_string(&dst).map_err(|e| Error::io(&dst, e))?;
    let back = parse_sealed(&back, sealer).map_err(|why| Error::Key { path: dst, why })?;
    if back.verifying_key() != seed.verifying_key() {
        return Err(Error::Config(
            "the sealed node key does not read back".into(),
        ));
    }
    Ok(PublicKey(seed.verifying_key()))
}

fn parse_key_file(text: &str) -> std::result::Result<SigningKey, String> {
    let mut lines = text.lines();
    if lines.next() != Some(KEY_HEADER) {
        return Err(format!("its first line is not `{KEY_HEADER}`"));
    }
    let seed = lines.next().ok_or("it has no key line")?;
    let bytes = B64
        .decode(seed.trim())
        .map_err(|e| format!("its key line is not base64: {e}"))?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("its key is {} bytes, not 32", b.len()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Writes a new key to `path`, created with mode 0600 (never readable by others,
/// not even for an instant) and synced before it is used.
fn create(dir: &Path, path: &Path, sealer: Option<&keyring::RecordSealer>) -> Result<SigningKey> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let seed: [u8; 32] = rand::random();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| Error::io(path, e))?;
    let text = key_file_text(&SigningKey::from_bytes(&seed), sealer)?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(path, e))?;
    tracing::info!(path = %path.display(), "new node key");
    Ok(SigningKey::from_bytes(&seed))
}

/// A node's public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Reads the base64 of the 32-byte key, as [`fmt::Display`] writes it.
    pub fn parse(text: &str) -> Result<PublicKey, String> {
        let bytes = B64
            .decode(text.trim())
            .map_err(|e| format!("`{text}` is not base64: {e}"))?;
        Self::from_slice(&bytes)
    }

    pub fn from_slice(bytes: &[u8]) -> Result<PublicKey, String> {
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| format!("a public key is 32 bytes, not {}", bytes.len()))?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|e| format!("not an Ed25519 public key: {e}"))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// The node id a key gives when the configuration names none: the first
    /// eight bytes of the SHA-256 of the public key, in hexadecimal.
    pub fn derived_node_id(&self) -> String {
        hex::encode(&Sha256::digest(self.as_bytes())[..8])
    }

    /// Whether `signature` is this key's over `message` (strict verification: no
    /// malleable or small-order forms). `verify_strict` is the ordinary check
    /// (`verify`) with the small-order refusals added before it, so it is made
    /// once: it is most of what reading a summary costs the region.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = Signature::from_slice(signature) else {
            return false;
        };
        self.0.verify_strict(message, &signature).is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&B64.encode(self.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(key: &keyring::DataKey) -> keyring::RecordSealer {
        keyring::RecordSealer::new(&key.subkey(keyring::Purpose::NodeKey))
    }

    #[test]
    fn under_the_data_key_the_file_holds_no_clear_key_and_a_clear_one_is_sealed() {
        let dir = tempfile::tempdir().expect("temp dir");
        // A clear key first, as a node made it before its data was encrypted.
        let clear = NodeKey::load_or_create(dir.path(), None).expect("new key");
        let path = dir.path().join(KEY_FILE);
        let seed_b64 = B64.encode(clear.signing.as_bytes());
        assert!(
            std::fs::read_to_string(&path)
                .expect("file")
                .contains(&seed_b64)
        );

        let key = keyring::DataKey::generate().expect("data key");
        let sealed = NodeKey::load_or_create_sealed(dir.path(), None, Some(&sealer(&key)))
            .expect("sealed in place");
        assert_eq!(sealed.public(), clear.public());
        assert_eq!(sealed.node_id(), clear.node_id());
        let text = std::fs::read_to_string(&path).expect("file");
        assert!(text.starts_with(SEALED_HEADER), "{text}");
        assert!(
            !text.contains(&seed_b64),
            "the clear seed is still in the file"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("file").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again =
            NodeKey::load_or_create_sealed(dir.path(), None, Some(&sealer(&key))).expect("opens");
        assert_eq!(again.public(), clear.public());
        // Without the data key, or with another: refused, naming the file.
        let err = NodeKey::load_or_create(dir.path(), None).expect_err("no key");
        assert!(err.to_string().contains("node.key"), "{err}");
        assert!(
            err.to_string().contains("sealed with the data key"),
            "{err}"
        );
        let other = keyring::DataKey::generate().expect("data key");
        let err = NodeKey::load_or_create_sealed(dir.path(), None, Some(&sealer(&other)))
            .expect_err("another key");
        assert!(err.to_string().contains("does not open"), "{err}");
        // A key made on an encrypted node is sealed from the start.
        let fresh = tempfile::tempdir().expect("temp dir");
        let made =
            NodeKey::load_or_create_sealed(fresh.path(), None, Some(&sealer(&key))).expect("new");
        let text = std::fs::read_to_string(fresh.path().join(KEY_FILE)).expect("file");
        assert!(text.starts_with(SEALED_HEADER), "{text}");
        assert!(!text.contains(&B64.encode(made.signing.as_bytes())));
    }

    #[test]
    fn a_key_is_made_once_private_and_read_back_the_same() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = NodeKey::load_or_create(dir.path(), None).expect("new key");
        let path = dir.path().join(KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("key file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = NodeKey::load_or_create(dir.path(), None).expect("same key");
        assert_eq!(first.public(), again.public());
        assert_eq!(first.node_id(), again.node_id());
        // The id is the hex of the first 8 bytes of SHA-256(public key).
        let digest = Sha256::digest(first.public().as_bytes());
        let expected: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(first.node_id(), expected);
        assert_eq!(first.node_id().len(), 16);
    }

    #[test]
    fn a_configured_id_is_kept_and_a_bad_one_refused() {
        let key = NodeKey::from_seed([7; 32], Some("les-tilleuls")).expect("id");
        assert_eq!(key.node_id(), "les-tilleuls");
        for bad in ["Les-Tilleuls", "a.b", "a*", "", "-x", "a b"] {
            assert!(NodeKey::from_seed([7; 32], Some(bad)).is_err(), "{bad}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_key_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        NodeKey::load_or_create(dir.path(), None).expect("new key");
        let path = dir.path().join(KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = NodeKey::load_or_create(dir.path(), None).expect_err("world-readable");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn a_signature_verifies_only_with_its_key_and_message() {
        let a = NodeKey::from_seed([1; 32], None).expect("a");
        let b = NodeKey::from_seed([2; 32], None).expect("b");
        let sig = a.sign(b"minute 1");
        assert!(a.public().verify(b"minute 1", &sig));
        assert!(!a.public().verify(b"minute 2", &sig));
        assert!(!b.public().verify(b"minute 1", &sig));
        let round = PublicKey::parse(&a.public().to_string()).expect("parse");
        assert_eq!(round, a.public());
    }
}
