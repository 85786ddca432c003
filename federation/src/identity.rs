//! The node's identity on the federation: an Ed25519 key made at first start and
//! kept in the data directory (`node.key`, mode 0600), and the node id derived from
//! its public key unless the configuration names one.
//!
//! Everything that reads or writes the key file is in this module, so that keeping
//! the key under the node's data key (DESIGN.md §10) changes this module alone.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "node.key";
/// First line of the key file: what the file is, and its format's version.
const KEY_HEADER: &str = "communalia node key (ed25519 seed, base64) v1";

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
        let path = dir.join(KEY_FILE);
        let signing = match std::fs::read_to_string(&path) {
            Ok(text) => {
                check_private(&path)?;
                parse_key_file(&text).map_err(|why| Error::Key {
                    path: path.clone(),
                    why,
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(dir, &path)?,
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
fn create(dir: &Path, path: &Path) -> Result<SigningKey> {
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
    let text = format!("{KEY_HEADER}\n{}\n", B64.encode(seed));
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
    /// malleable or small-order forms).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = Signature::from_slice(signature) else {
            return false;
        };
        self.0.verify_strict(message, &signature).is_ok()
            && self.0.verify(message, &signature).is_ok()
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
