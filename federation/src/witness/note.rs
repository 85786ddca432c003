//! C2SP signed notes (`signed-note.md`), checkpoints (`tlog-checkpoint.md`) and
//! witness cosignatures (`tlog-cosignature.md`, `cosignature/v1`), with Ed25519.
//!
//! A checkpoint's body is `<origin>\n<size>\n<base64 root>\n`; a note is the body,
//! an empty line, and one line per signature, `— <name> <base64(key id ||
//! signature)>`. A key id is the first four bytes of `SHA-256(name || "\n" ||
//! type || public key)`: type 0x01 for a log's Ed25519 signature, 0x04 for a
//! witness's cosignature, whose signature is `key id || timestamp (8 bytes, big
//! endian) || Ed25519 over "cosignature/v1\ntime <timestamp>\n" || body`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

use super::merkle::Hash;
use crate::identity::{NodeKey, PublicKey};

/// Signature types of the C2SP key ids.
pub const ED25519: u8 = 0x01;
pub const COSIGNATURE_V1: u8 = 0x04;
const DASH: &str = "\u{2014}";

/// `SHA-256(name || "\n" || type || key)[..4]`.
pub fn key_id(name: &str, kind: u8, key: &PublicKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([kind]);
    h.update(key.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// A verifier key: `name+hex(key id)+base64(type || key)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    pub name: String,
    pub kind: u8,
    pub key: PublicKey,
}

impl Verifier {
    pub fn new(name: &str, kind: u8, key: PublicKey) -> Verifier {
        Verifier {
            name: name.to_string(),
            kind,
            key,
        }
    }

    pub fn id(&self) -> [u8; 4] {
        key_id(&self.name, self.kind, &self.key)
    }

    /// Reads `name+hex+base64`, checking that the id matches the key.
    pub fn parse(text: &str) -> Result<Verifier, String> {
        // A name has no `+` (C2SP signed-note); the base64 key may: split from the left.
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(hex_id), Some(b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("`{text}` is not a verifier key (name+id+key)"));
        };
        let bytes = B64
            .decode(b64)
            .map_err(|e| format!("`{text}`: key not base64: {e}"))?;
        let (&kind, key) = bytes
            .split_first()
            .ok_or_else(|| format!("`{text}`: empty key"))?;
        if kind != ED25519 && kind != COSIGNATURE_V1 {
            return Err(format!(
                "`{text}`: signature type {kind:#04x} is not Ed25519 or cosignature/v1"
            ));
        }
        let key = PublicKey::from_slice(key).map_err(|e| format!("`{text}`: {e}"))?;
        let v = Verifier::new(name, kind, key);
        if hex::encode(v.id()) != hex_id {
            return Err(format!("`{text}`: the key id does not match the key"));
        }
        Ok(v)
    }
}

impl std::fmt::Display for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut bytes = vec![self.kind];
        bytes.extend_from_slice(self.key.as_bytes());
        write!(
            f,
            "{}+{}+{}",
            self.name,
            hex::encode(self.id()),
            B64.encode(bytes)
        )
    }
}

/// A checkpoint: the log's origin, its size and its root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    pub fn parse_body(body: &str) -> Result<Checkpoint, String> {
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or("no origin line")?;
        let size = lines
            .next()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or("the second line is not a size")?;
        let root: Hash = lines
            .next()
            .and_then(|r| B64.decode(r).ok())
            .and_then(|r| r.try_into().ok())
            .ok_or("the third line is not a base64 SHA-256 hash")?;
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
        })
    }
}

/// A signed note: its body and its signature lines (name, raw signature bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub body: String,
    pub signatures: Vec<(String, Vec<u8>)>,
}

impl Note {
    /// `body` signed as the log `name` with `key` (type 0x01).
    pub fn sign(body: &str, name: &str, key: &NodeKey) -> Note {
        let id = key_id(name, ED25519, &key.public());
        let mut sig = id.to_vec();
        sig.extend_from_slice(&key.sign(body.as_bytes()));
        Note {
            body: body.to_string(),
            signatures: vec![(name.to_string(), sig)],
        }
    }

    pub fn text(&self) -> String {
        let mut out = format!("{}\n", self.body);
        for (name, sig) in &self.signatures {
            out.push_str(&format!("{DASH} {name} {}\n", B64.encode(sig)));
        }
        out
    }

    pub fn parse(text: &str) -> Result<Note, String> {
        let (body, sigs) = text
            .split_once("\n\n")
            .ok_or("a note is its text, an empty line, then its signatures")?;
        let mut signatures = Vec::new();
        for line in sigs.lines().filter(|l| !l.is_empty()) {
            let rest = line
                .strip_prefix(DASH)
                .and_then(|l| l.strip_prefix(' '))
                .ok_or_else(|| format!("`{line}` is not a signature line"))?;
            let (name, sig) = rest
                .rsplit_once(' ')
                .ok_or_else(|| format!("`{line}` has no signature"))?;
            let sig = B64.decode(sig).map_err(|e| format!("`{line}`: {e}"))?;
            signatures.push((name.to_string(), sig));
        }
        Ok(Note {
            body: format!("{body}\n"),
            signatures,
        })
    }

    /// Whether `v` signed the body (as a log, type 0x01).
    pub fn signed_by(&self, v: &Verifier) -> bool {
        let id = v.id();
        self.signatures.iter().any(|(name, sig)| {
            name == &v.name
                && sig.len() == 68
                && sig[..4] == id
                && v.key.verify(self.body.as_bytes(), &sig[4..])
        })
    }

    /// The time of `v`'s valid cosignature of the body, if there is one.
    pub fn cosigned_by(&self, v: &Verifier) -> Option<u64> {
        let id = v.id();
        self.signatures.iter().find_map(|(name, sig)| {
            if name != &v.name || sig.len() != 76 || sig[..4] != id {
                return None;
            }
            let time = u64::from_be_bytes(sig[4..12].try_into().ok()?);
            let message = cosigned_message(&self.body, time);
            v.key.verify(message.as_bytes(), &sig[12..]).then_some(time)
        })
    }
}

fn cosigned_message(body: &str, time: u64) -> String {
    format!("cosignature/v1\ntime {time}\n{body}")
}

/// A witness's cosignature line of `body` at `time`: `(name, signature bytes)`.
pub fn cosign(body: &str, name: &str, key: &NodeKey, time: u64) -> (String, Vec<u8>) {
    let mut sig = key_id(name, COSIGNATURE_V1, &key.public()).to_vec();
    sig.extend_from_slice(&time.to_be_bytes());
    sig.extend_from_slice(&key.sign(cosigned_message(body, time).as_bytes()));
    (name.to_string(), sig)
}

/// A cosignature line as the witness returns it.
pub fn signature_line(name: &str, sig: &[u8]) -> String {
    format!("{DASH} {name} {}\n", B64.encode(sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_note_round_trips_and_verifies() {
        let log = NodeKey::from_seed([1; 32], Some("a")).expect("key");
        let witness = NodeKey::from_seed([2; 32], Some("w")).expect("key");
        let c = Checkpoint {
            origin: "communalia/a".into(),
            size: 7,
            root: [9; 32],
        };
        let mut note = Note::sign(&c.body(), "communalia/a", &log);
        let (name, sig) = cosign(&note.body, "witness.w", &witness, 1_780_000_000);
        note.signatures.push((name, sig));
        let parsed = Note::parse(&note.text()).expect("parse");
        assert_eq!(parsed, note);
        assert_eq!(Checkpoint::parse_body(&parsed.body).expect("body"), c);
        let log_v = Verifier::new("communalia/a", ED25519, log.public());
        let w_v = Verifier::new("witness.w", COSIGNATURE_V1, witness.public());
        assert!(parsed.signed_by(&log_v));
        assert_eq!(parsed.cosigned_by(&w_v), Some(1_780_000_000));
        // The witness's key is not the log's, nor the other way round.
        assert!(!parsed.signed_by(&Verifier::new("communalia/a", ED25519, witness.public())));
        assert_eq!(
            parsed.cosigned_by(&Verifier::new("witness.w", COSIGNATURE_V1, log.public())),
            None
        );
        assert_eq!(Verifier::parse(&log_v.to_string()), Ok(log_v));
    }

    #[test]
    fn verifier_keys_whose_base64_has_a_plus_read_back() {
        // About one key in two has a `+` in its base64: all of these must parse.
        let mut with_plus = 0;
        for seed in 0..64u8 {
            let key = NodeKey::from_seed([seed; 32], Some("n")).expect("key");
            let v = Verifier::new("communalia/n", ED25519, key.public());
            let text = v.to_string();
            if text
                .rsplit('+')
                .next()
                .is_some_and(|_| text.matches('+').count() > 2)
            {
                with_plus += 1;
            }
            assert_eq!(Verifier::parse(&text), Ok(v), "{text}");
        }
        assert!(
            with_plus > 0,
            "no key of the sample had a `+` in its base64"
        );
    }

    #[test]
    fn the_key_id_is_the_c2sp_one() {
        // SHA-256("name" || 0x0A || 0x01 || key)[..4], computed by hand here.
        let key = NodeKey::from_seed([3; 32], None).expect("key").public();
        let mut bytes = b"name\n".to_vec();
        bytes.push(1);
        bytes.extend_from_slice(key.as_bytes());
        let d = Sha256::digest(&bytes);
        assert_eq!(key_id("name", ED25519, &key), [d[0], d[1], d[2], d[3]]);
    }
}
