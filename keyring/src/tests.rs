use super::*;

fn key_file_source(dir: &Path) -> KekSource {
    KekSource::KeyFile(dir.join("keys/node.key"))
}

fn passphrase(p: &str) -> KekSource {
    KekSource::Passphrase {
        passphrase: p.to_string(),
        origin: "the test".into(),
    }
}

#[test]
fn first_start_creates_a_private_key_file_and_a_keyring_that_opens_again() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let source = key_file_source(tmp.path());
    let (key, created) = open_or_create(&data, &source).unwrap();
    assert!(created);
    let KekSource::KeyFile(kf) = &source else {
        unreachable!()
    };
    let mode = fs::metadata(kf).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let keyring = fs::read_to_string(data.join(KEYRING_FILE)).unwrap();
    assert!(
        !keyring.contains(&key.to_hex()),
        "the data key is in clear in the keyring"
    );
    let (again, created) = open_or_create(&data, &source).unwrap();
    assert!(!created);
    assert_eq!(again, key);
}

#[test]
fn a_group_readable_key_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let source = key_file_source(tmp.path());
    open_or_create(&tmp.path().join("data"), &source).unwrap();
    let KekSource::KeyFile(kf) = &source else {
        unreachable!()
    };
    fs::set_permissions(kf, fs::Permissions::from_mode(0o640)).unwrap();
    let err = open(&tmp.path().join("data"), &source).unwrap_err();
    assert!(matches!(err, Error::KeyFileExposed { .. }), "{err}");
    assert!(err.to_string().contains("node.key"), "{err}");
}

#[test]
fn another_key_file_is_a_wrong_key_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    open_or_create(&data, &key_file_source(tmp.path())).unwrap();
    let other = tmp.path().join("other.key");
    create_key_file(&other).unwrap();
    let err = open(&data, &KekSource::KeyFile(other)).unwrap_err();
    assert!(matches!(err, Error::WrongKey { .. }), "{err}");
    assert!(err.to_string().contains("other.key"), "{err}");
}

#[test]
fn a_missing_key_file_of_an_encrypted_directory_is_not_created_again() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let source = key_file_source(tmp.path());
    open_or_create(&data, &source).unwrap();
    let KekSource::KeyFile(kf) = &source else {
        unreachable!()
    };
    fs::remove_file(kf).unwrap();
    let err = open_or_create(&data, &source).unwrap_err();
    assert!(matches!(err, Error::KeyFileMissing { .. }), "{err}");
    assert!(!kf.exists(), "a new key file was made for encrypted data");
}

#[test]
fn a_key_file_that_is_not_a_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let kf = tmp.path().join("bad.key");
    fs::write(&kf, "hunter2\n").unwrap();
    fs::set_permissions(&kf, fs::Permissions::from_mode(0o600)).unwrap();
    let err = open_or_create(&tmp.path().join("data"), &KekSource::KeyFile(kf)).unwrap_err();
    assert!(matches!(err, Error::KeyFileInvalid { .. }), "{err}");
}

#[test]
fn a_passphrase_wraps_and_a_wrong_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (key, _) = open_or_create(&data, &passphrase("correct horse")).unwrap();
    assert_eq!(open(&data, &passphrase("correct horse")).unwrap(), key);
    let err = open(&data, &passphrase("wrong horse")).unwrap_err();
    assert!(matches!(err, Error::WrongKey { .. }), "{err}");
    let err = open(&data, &key_file_source(tmp.path())).unwrap_err();
    assert!(matches!(err, Error::KekMismatch { .. }), "{err}");
}

#[test]
fn an_edited_keyring_does_not_open() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    open_or_create(&data, &passphrase("pw")).unwrap();
    let path = data.join(KEYRING_FILE);
    // Lower the argon2 cost an attacker would like to brute-force against.
    let text = fs::read_to_string(&path).unwrap();
    let edited = text.replace("\"t\": 2", "\"t\": 1");
    assert_ne!(text, edited);
    fs::write(&path, edited).unwrap();
    let err = open(&data, &passphrase("pw")).unwrap_err();
    assert!(matches!(err, Error::WrongKey { .. }), "{err}");
}

#[test]
fn a_forged_keyring_cannot_ask_for_gigabytes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    open_or_create(&data, &passphrase("pw")).unwrap();
    let path = data.join(KEYRING_FILE);
    let text = fs::read_to_string(&path).unwrap();
    fs::write(
        &path,
        text.replace("\"m_kib\": 19456", "\"m_kib\": 4000000000"),
    )
    .unwrap();
    let err = open(&data, &passphrase("pw")).unwrap_err();
    assert!(err.to_string().contains("beyond"), "{err}");
}

#[test]
fn rotation_keeps_the_data_key_and_drops_the_old_kek() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let old = key_file_source(tmp.path());
    let (key, _) = open_or_create(&data, &old).unwrap();
    let new = KekSource::KeyFile(tmp.path().join("new.key"));
    rotate(&data, &old, &new).unwrap();
    assert_eq!(open(&data, &new).unwrap(), key);
    assert!(matches!(open(&data, &old), Err(Error::WrongKey { .. })));
    // And from a key file to a passphrase.
    rotate(&data, &new, &passphrase("pw")).unwrap();
    assert_eq!(open(&data, &passphrase("pw")).unwrap(), key);
    // Rotating to the same key file is refused: it would rotate nothing.
    rotate(&data, &passphrase("pw"), &new).unwrap();
    assert!(rotate(&data, &new, &new).is_err());
    assert_eq!(open(&data, &new).unwrap(), key);
}

#[test]
fn subkeys_differ_by_purpose_and_are_stable() {
    let key = DataKey::from_hex(&"11".repeat(32)).unwrap();
    let j = key.subkey(Purpose::Journal);
    let w = key.subkey(Purpose::Wal);
    let h = key.subkey(Purpose::History);
    assert_ne!(j, w);
    assert_ne!(w, h);
    assert_ne!(j.bytes(), &[0x11; 32]);
    assert_eq!(key.subkey(Purpose::Journal), j);
}

#[test]
fn a_sealed_record_opens_only_unchanged_and_with_its_associated_data() {
    let sealer = RecordSealer::new(&DataKey::generate().unwrap().subkey(Purpose::Wal));
    let sealed = sealer.seal(b"record 7", b"readings").unwrap();
    assert_eq!(sealed.len(), 8 + SEAL_OVERHEAD);
    assert_eq!(sealer.open(b"record 7", &sealed).unwrap(), b"readings");
    assert!(sealer.open(b"record 8", &sealed).is_none());
    for i in 0..sealed.len() {
        let mut flipped = sealed.clone();
        flipped[i] ^= 1;
        assert!(sealer.open(b"record 7", &flipped).is_none(), "byte {i}");
    }
    let other = RecordSealer::new(&DataKey::generate().unwrap().subkey(Purpose::Wal));
    assert!(other.open(b"record 7", &sealed).is_none());
    // Two seals of the same record differ (random nonces).
    assert_ne!(sealer.seal(b"record 7", b"readings").unwrap(), sealed);
}
