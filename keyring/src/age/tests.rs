use std::io::{Read, Write};
use std::path::Path;

use super::*;

/// A pair `age-keygen` made (1.1.1): our X25519 and bech32 give the same recipient.
const KEYGEN_SECRET: &str =
    "AGE-SECRET-KEY-15JQLCYUSN7CLYWCYX5CKUC5C37V5LG0SZ8LT2W6NYAU2HWC3JAKQP3N80Y";
const KEYGEN_RECIPIENT: &str = "age1fedyheqcqgmpkvg6e3zt7wmeevkx4safk53q64s4kenc5rnndypqgqpcl6";

#[test]
fn an_age_keygen_identity_gives_its_recipient_and_spells_back() {
    let identity = Identity::parse(KEYGEN_SECRET).unwrap();
    assert_eq!(identity.to_recipient().to_string(), KEYGEN_RECIPIENT);
    assert_eq!(identity.to_secret_string(), KEYGEN_SECRET);
    let recipient: Recipient = KEYGEN_RECIPIENT.parse().unwrap();
    assert_eq!(recipient, identity.to_recipient());
    // Lower case is the same key; mixed case, a typo and the other kind are not.
    assert!(Identity::parse(&KEYGEN_SECRET.to_lowercase()).is_ok());
    let mixed = format!("age-secret-key-1{}", &KEYGEN_SECRET[16..]);
    assert!(Identity::parse(&mixed).is_err());
    let typo = KEYGEN_RECIPIENT.replace("fedy", "fedz");
    assert!(typo.parse::<Recipient>().is_err());
    assert!(Identity::parse(KEYGEN_RECIPIENT).is_err());
    assert!(KEYGEN_SECRET.parse::<Recipient>().is_err());
    // An error about an identity never repeats it.
    let bad = KEYGEN_SECRET.replace("15JQ", "15JR");
    let err = Identity::parse(&bad).unwrap_err().to_string();
    assert!(!err.contains("JAKQP3N80Y"), "{err}");
}

#[test]
fn an_identity_file_keeps_its_keys_and_skips_comments() {
    let text = format!("# created: now\n# public key: {KEYGEN_RECIPIENT}\n\n{KEYGEN_SECRET}\n");
    let ids = Identity::parse_file(&text).unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].to_recipient().to_string(), KEYGEN_RECIPIENT);
    let err = Identity::parse_file("# nothing\n").unwrap_err().to_string();
    assert!(err.contains("no AGE-SECRET-KEY"), "{err}");
    let err = Identity::parse_file("# a\nnot a key\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2"), "{err}");
}

fn encrypt(plain: &[u8], to: &[Recipient], write_size: usize) -> Vec<u8> {
    let mut e = Encryptor::new(Vec::new(), to).unwrap();
    for part in plain.chunks(write_size.max(1)) {
        e.write_all(part).unwrap();
    }
    e.finish().unwrap()
}

fn decrypt(file: &[u8], ids: &[Identity]) -> Result<Vec<u8>, String> {
    let mut d = Decryptor::new(file, ids).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    d.read_to_end(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

#[test]
fn every_size_round_trips_including_chunk_boundaries() {
    let id = Identity::generate().unwrap();
    let other = Identity::generate().unwrap();
    for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 7] {
        let plain: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        for write_size in [1000, CHUNK, 3 * CHUNK] {
            let file = encrypt(
                &plain,
                &[other.to_recipient(), id.to_recipient()],
                write_size,
            );
            // Header, 16-byte nonce, one tag per chunk (at least one chunk).
            let chunks = len.div_ceil(CHUNK).max(1);
            let header = file.len() - 16 - len - chunks * TAG;
            assert!(header < 400, "{len}: a header of {header} bytes");
            assert_eq!(
                decrypt(&file, std::slice::from_ref(&id)).unwrap(),
                plain,
                "{len}"
            );
            assert_eq!(
                decrypt(&file, std::slice::from_ref(&other)).unwrap(),
                plain,
                "{len}"
            );
        }
    }
}

#[test]
fn a_wrong_identity_a_cut_and_a_flipped_byte_are_refused() {
    let id = Identity::generate().unwrap();
    let plain = vec![42u8; 2 * CHUNK + 100];
    let file = encrypt(&plain, &[id.to_recipient()], 4096);
    let stranger = Identity::generate().unwrap();
    assert!(matches!(
        Decryptor::new(file.as_slice(), &[stranger]),
        Err(AgeError::NoMatch)
    ));
    // Cut at a chunk boundary: the chunk before is not a last chunk.
    let header = file.len() - 16 - plain.len() - 3 * TAG;
    for cut in [header + 16 + CHUNK + TAG, file.len() - 1, header + 20] {
        let err = decrypt(&file[..cut], std::slice::from_ref(&id)).unwrap_err();
        assert!(err.contains("payload"), "cut at {cut}: {err}");
    }
    // A flipped byte in the header (the MAC), in a stanza, in the payload.
    for at in [header - 5, 40, header + 16 + CHUNK + 3, file.len() - 3] {
        let mut bad = file.clone();
        bad[at] ^= 0x01;
        assert!(
            decrypt(&bad, std::slice::from_ref(&id)).is_err(),
            "flipped at {at}"
        );
    }
}

/// The age project's own vectors (testdata/age/README.md).
#[test]
fn the_age_test_kit_vectors_give_what_they_expect() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/age");
    let mut ran = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "LICENSE" || name.ends_with(".md") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let split = bytes.windows(2).position(|w| w == b"\n\n").unwrap();
        let head = std::str::from_utf8(&bytes[..split]).unwrap();
        let file = &bytes[split + 2..];
        let field = |key: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}: ")))
                .map(str::to_string)
        };
        let expect = field("expect").unwrap();
        let identities: Vec<Identity> = head
            .lines()
            .filter_map(|l| l.strip_prefix("identity: "))
            .map(|s| Identity::parse(s).unwrap())
            .collect();
        let got = match Decryptor::new(file, &identities) {
            Err(AgeError::Header(_)) => "header failure".to_string(),
            Err(AgeError::NoMatch) => "no match".to_string(),
            Err(AgeError::HeaderMac) => "HMAC failure".to_string(),
            Err(e) => format!("other: {e}"),
            Ok(mut d) => {
                let mut out = Vec::new();
                match d.read_to_end(&mut out) {
                    Ok(_) => {
                        let digest = ring::digest::digest(&ring::digest::SHA256, &out);
                        let want = field("payload").unwrap();
                        assert_eq!(hex::encode(digest.as_ref()), want, "{name}: payload");
                        "success".to_string()
                    }
                    Err(_) => "payload failure".to_string(),
                }
            }
        };
        assert_eq!(got, expect, "{name}");
        ran += 1;
    }
    assert!(ran >= 50, "{ran} vectors");
}
