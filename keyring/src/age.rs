//! The age v1 file format (<https://age-encryption.org/v1>, C2SP), X25519
//! recipients only: what `communalia backup` writes and `communalia restore` reads,
//! so that an archive is opened by the `age` tool itself and an archive made by
//! `age -r` is read by the node.
//!
//! Written on the node's own crypto (ring: HKDF-SHA256, HMAC-SHA256,
//! ChaCha20-Poly1305) and curve25519-dalek's clamped Montgomery multiplication,
//! which is X25519 (RFC 7748); the bech32 of `age1…` and `AGE-SECRET-KEY-1…` is
//! below. Both directions stream: the payload goes through in 64 KiB chunks,
//! never whole in memory.
//!
//! Everything read is hostile: the header is parsed strictly (canonical base64,
//! line lengths, one X25519 argument of 32 bytes, a 16-byte file key, no all-zero
//! shared secret), its MAC checked before any payload byte is given out, and each
//! chunk is authenticated before its bytes are returned; a truncated stream, a
//! chunk out of place and trailing bytes are errors.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use curve25519_dalek::montgomery::MontgomeryPoint;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{hkdf, hmac};

const VERSION_LINE: &str = "age-encryption.org/v1";
const X25519_INFO: &[u8] = b"age-encryption.org/v1/X25519";
/// Plaintext bytes of a payload chunk.
const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
/// A bound on the header read from outside (grease stanzas included, real
/// headers are a few hundred bytes).
const MAX_HEADER: usize = 64 * 1024;

/// What is wrong with an age file, or with a key.
#[derive(Debug, thiserror::Error)]
pub enum AgeError {
    #[error("not a valid age header: {0}")]
    Header(String),
    #[error("none of the identities opens it (the archive was made for other recipients)")]
    NoMatch,
    #[error("its header's MAC does not match (the header was altered)")]
    HeaderMac,
    #[error("its payload is damaged or cut short: {0}")]
    Payload(String),
    #[error("not a valid age key: {0}")]
    Key(String),
    #[error("cannot get randomness from the system")]
    Random,
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<AgeError> for io::Error {
    fn from(e: AgeError) -> io::Error {
        match e {
            AgeError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

type Result<T, E = AgeError> = std::result::Result<T, E>;

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| AgeError::Random)?;
    Ok(out)
}

/// An X25519 recipient, `age1…`.
#[derive(Clone, PartialEq, Eq)]
pub struct Recipient([u8; 32]);

/// An X25519 identity, `AGE-SECRET-KEY-1…`.
#[derive(Clone)]
pub struct Identity([u8; 32]);

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", self.to_recipient())
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bech32::encode("age", &self.0))
    }
}

impl std::str::FromStr for Recipient {
    type Err = AgeError;
    fn from_str(s: &str) -> Result<Self> {
        let (hrp, data) = bech32::decode(s).map_err(|why| AgeError::Key(format!("{s}: {why}")))?;
        if hrp != "age" {
            return Err(AgeError::Key(format!(
                "{s}: not an X25519 recipient (age1…)"
            )));
        }
        let key: [u8; 32] = data
            .try_into()
            .map_err(|_| AgeError::Key(format!("{s}: not 32 bytes")))?;
        Ok(Recipient(key))
    }
}

impl Identity {
    /// A new random identity.
    pub fn generate() -> Result<Identity> {
        Ok(Identity(random()?))
    }

    /// `AGE-SECRET-KEY-1…`.
    pub fn parse(s: &str) -> Result<Identity> {
        // The key itself is never repeated in an error.
        let (hrp, data) =
            bech32::decode(s).map_err(|why| AgeError::Key(format!("an identity: {why}")))?;
        if hrp != "age-secret-key-" {
            return Err(AgeError::Key(
                "not an X25519 identity (AGE-SECRET-KEY-1…)".into(),
            ));
        }
        let key: [u8; 32] = data
            .try_into()
            .map_err(|_| AgeError::Key("an identity of another length than 32 bytes".into()))?;
        Ok(Identity(key))
    }

    /// Every identity of an identity file (`age-keygen`'s): one `AGE-SECRET-KEY-1…`
    /// a line, `#` comments and blank lines ignored.
    pub fn parse_file(text: &str) -> Result<Vec<Identity>> {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            out.push(Identity::parse(line).map_err(|e| match e {
                AgeError::Key(why) => AgeError::Key(format!("line {}: {why}", i + 1)),
                other => other,
            })?);
        }
        if out.is_empty() {
            return Err(AgeError::Key("no AGE-SECRET-KEY-1… line".into()));
        }
        Ok(out)
    }

    /// The secret, `AGE-SECRET-KEY-1…` (upper case, as age writes it).
    pub fn to_secret_string(&self) -> String {
        bech32::encode("age-secret-key-", &self.0).to_uppercase()
    }

    pub fn to_recipient(&self) -> Recipient {
        Recipient(MontgomeryPoint::mul_base_clamped(self.0).to_bytes())
    }

    /// The file key of an X25519 stanza, if it is for this identity; an error when
    /// the stanza is malformed (whoever it is for).
    fn unwrap_stanza(&self, stanza: &Stanza) -> Result<Option<[u8; 16]>> {
        let [share] = stanza.args.as_slice() else {
            return Err(AgeError::Header(
                "an X25519 stanza has other than one argument".into(),
            ));
        };
        let share: [u8; 32] = decode_b64(share)?
            .try_into()
            .map_err(|_| AgeError::Header("an X25519 share is not 32 bytes".into()))?;
        if stanza.body.len() != 32 {
            return Err(AgeError::Header(
                "an X25519 stanza's body is not a 16-byte file key".into(),
            ));
        }
        let shared = MontgomeryPoint(share).mul_clamped(self.0).to_bytes();
        if shared == [0u8; 32] {
            return Err(AgeError::Header(
                "an X25519 share is a low-order point".into(),
            ));
        }
        let mut salt = share.to_vec();
        salt.extend_from_slice(&self.to_recipient().0);
        let wrap: [u8; 32] = hkdf_expand(&salt, &shared, X25519_INFO);
        let mut body = stanza.body.clone();
        let key = aead_key(&wrap);
        match key.open_in_place(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::empty(),
            &mut body,
        ) {
            Ok(plain) => {
                let mut file_key = [0u8; 16];
                file_key.copy_from_slice(plain);
                Ok(Some(file_key))
            }
            Err(_) => Ok(None),
        }
    }
}

/// HKDF-SHA256 of `N` bytes.
fn hkdf_expand<const N: usize>(salt: &[u8], ikm: &[u8], info: &[u8]) -> [u8; N] {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let mut out = [0u8; N];
    let info = [info];
    // The lengths are constants of this file, far below HKDF's limit.
    #[allow(clippy::expect_used)]
    hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
        .extract(ikm)
        .expand(&info, Len(N))
        .and_then(|okm| okm.fill(&mut out))
        .expect("HKDF-SHA256 of at most 32 bytes");
    out
}

fn aead_key(key: &[u8; 32]) -> LessSafeKey {
    // A 32-byte key is what ChaCha20-Poly1305 takes.
    #[allow(clippy::expect_used)]
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).expect("a 32-byte key"))
}

fn header_mac_key(file_key: &[u8; 16]) -> hmac::Key {
    let key: [u8; 32] = hkdf_expand(&[], file_key, b"header");
    hmac::Key::new(hmac::HMAC_SHA256, &key)
}

fn payload_key(file_key: &[u8; 16], nonce: &[u8; 16]) -> LessSafeKey {
    aead_key(&hkdf_expand(nonce, file_key, b"payload"))
}

fn chunk_nonce(counter: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

fn encode_b64(bytes: &[u8]) -> String {
    STANDARD_NO_PAD.encode(bytes)
}

/// Canonical unpadded base64 only (the engine refuses non-zero trailing bits).
fn decode_b64(text: &str) -> Result<Vec<u8>> {
    STANDARD_NO_PAD
        .decode(text)
        .map_err(|e| AgeError::Header(format!("not canonical base64: {e}")))
}

/// One recipient stanza of a header.
#[derive(Debug)]
struct Stanza {
    kind: String,
    args: Vec<String>,
    body: Vec<u8>,
}

/// Writes an age file to `W`: the header at once, then the payload as it is
/// written, in 64 KiB chunks. [`Encryptor::finish`] seals the last chunk; an
/// encryptor dropped without it leaves a file every reader refuses as cut short.
pub struct Encryptor<W: Write> {
    out: W,
    key: LessSafeKey,
    buf: Vec<u8>,
    counter: u64,
}

impl<W: Write> fmt::Debug for Encryptor<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encryptor")
            .field("chunks", &self.counter)
            .finish()
    }
}

impl<W: Write> Encryptor<W> {
    /// Starts an age file for `recipients` (at least one).
    pub fn new(mut out: W, recipients: &[Recipient]) -> Result<Self> {
        if recipients.is_empty() {
            return Err(AgeError::Key("no recipient to encrypt to".into()));
        }
        let file_key: [u8; 16] = random()?;
        let mut header = format!("{VERSION_LINE}\n");
        for r in recipients {
            let ephemeral: [u8; 32] = random()?;
            let share = MontgomeryPoint::mul_base_clamped(ephemeral).to_bytes();
            let shared = MontgomeryPoint(r.0).mul_clamped(ephemeral).to_bytes();
            if shared == [0u8; 32] {
                return Err(AgeError::Key(format!("{r}: a low-order point")));
            }
            let mut salt = share.to_vec();
            salt.extend_from_slice(&r.0);
            let wrap: [u8; 32] = hkdf_expand(&salt, &shared, X25519_INFO);
            let mut body = file_key.to_vec();
            aead_key(&wrap)
                .seal_in_place_append_tag(
                    Nonce::assume_unique_for_key([0; 12]),
                    Aad::empty(),
                    &mut body,
                )
                .map_err(|_| AgeError::Key("cannot wrap the file key".into()))?;
            // 32 bytes: one body line of 43 characters (shorter than 64: the last).
            header.push_str(&format!(
                "-> X25519 {}\n{}\n",
                encode_b64(&share),
                encode_b64(&body)
            ));
        }
        header.push_str("---");
        let mac = hmac::sign(&header_mac_key(&file_key), header.as_bytes());
        header.push_str(&format!(" {}\n", encode_b64(mac.as_ref())));
        let nonce: [u8; 16] = random()?;
        out.write_all(header.as_bytes())?;
        out.write_all(&nonce)?;
        Ok(Encryptor {
            out,
            key: payload_key(&file_key, &nonce),
            buf: Vec::with_capacity(CHUNK + TAG),
            counter: 0,
        })
    }

    fn seal(&mut self, last: bool) -> io::Result<()> {
        self.key
            .seal_in_place_append_tag(chunk_nonce(self.counter, last), Aad::empty(), &mut self.buf)
            .map_err(|_| io::Error::other("cannot seal a chunk"))?;
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.counter += 1;
        Ok(())
    }

    /// Seals the last chunk and returns the writer (not flushed: its owner syncs).
    pub fn finish(mut self) -> io::Result<W> {
        self.seal(true)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for Encryptor<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut done = 0;
        while done < data.len() {
            // A full chunk is sealed only once more follows it: the last chunk
            // may be full, never empty (unless the whole payload is).
            if self.buf.len() == CHUNK {
                self.seal(false)?;
            }
            let take = (CHUNK - self.buf.len()).min(data.len() - done);
            self.buf.extend_from_slice(&data[done..done + take]);
            done += take;
        }
        Ok(done)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Reads an age file: [`Decryptor::new`] reads and checks the header, then
/// [`Read`] gives the payload, each chunk once authenticated. Errors are
/// [`io::ErrorKind::InvalidData`] carrying an [`AgeError`].
pub struct Decryptor<R: Read> {
    input: BufReader<R>,
    key: LessSafeKey,
    counter: u64,
    chunk: Vec<u8>,
    pos: usize,
    done: bool,
}

impl<R: Read> fmt::Debug for Decryptor<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decryptor")
            .field("chunks", &self.counter)
            .finish()
    }
}

/// A header line without its `\n`; an error at the end of the input or past the bound.
fn header_line<R: Read>(input: &mut BufReader<R>, read: &mut Vec<u8>) -> Result<String> {
    let start = read.len();
    let limit = (MAX_HEADER - start.min(MAX_HEADER)) as u64;
    let n = input.by_ref().take(limit).read_until(b'\n', read)?;
    if n == 0 || read.last() != Some(&b'\n') {
        return Err(AgeError::Header(if read.len() >= MAX_HEADER {
            "longer than 64 KiB".into()
        } else {
            "it ends before the header does".into()
        }));
    }
    let line = &read[start..read.len() - 1];
    if !line.iter().all(|&b| (0x20..=0x7e).contains(&b)) {
        return Err(AgeError::Header(
            "a header line has a character outside printable ASCII".into(),
        ));
    }
    Ok(String::from_utf8_lossy(line).into_owned())
}

impl<R: Read> Decryptor<R> {
    /// Reads the header; opens it with the first of `identities` that unwraps an
    /// X25519 stanza, checks its MAC and reads the payload's nonce.
    pub fn new(input: R, identities: &[Identity]) -> Result<Self> {
        let mut input = BufReader::with_capacity(CHUNK + TAG + 1, input);
        let mut read = Vec::new();
        if header_line(&mut input, &mut read)? != VERSION_LINE {
            return Err(AgeError::Header(format!(
                "not an age v1 file (the first line is not {VERSION_LINE})"
            )));
        }
        let mut stanzas = Vec::new();
        let mac_line = loop {
            let line = header_line(&mut input, &mut read)?;
            if let Some(rest) = line.strip_prefix("-> ") {
                let args: Vec<String> = rest.split(' ').map(str::to_string).collect();
                if args.iter().any(String::is_empty) {
                    return Err(AgeError::Header("a stanza has an empty argument".into()));
                }
                let mut body = Vec::new();
                loop {
                    let l = header_line(&mut input, &mut read)?;
                    if l.len() > 64 {
                        return Err(AgeError::Header(
                            "a stanza's body line is longer than 64 columns".into(),
                        ));
                    }
                    body.extend(decode_b64(&l)?);
                    if l.len() < 64 {
                        break;
                    }
                }
                let mut args = args.into_iter();
                let kind = args.next().unwrap_or_default();
                stanzas.push(Stanza {
                    kind,
                    args: args.collect(),
                    body,
                });
            } else if line.starts_with("---") {
                break line;
            } else {
                return Err(AgeError::Header(
                    "a line is neither a stanza (-> ) nor the MAC (--- )".into(),
                ));
            }
        };
        if stanzas.is_empty() {
            return Err(AgeError::Header("no recipient stanza".into()));
        }
        let Some(mac) = mac_line.strip_prefix("--- ") else {
            return Err(AgeError::Header("the MAC line is not `--- MAC`".into()));
        };
        let mac = decode_b64(mac)?;
        if mac.len() != 32 {
            return Err(AgeError::Header("the MAC is not 32 bytes".into()));
        }
        // Every X25519 stanza is checked for form, whoever it is for.
        let mut file_key = None;
        for stanza in stanzas.iter().filter(|s| s.kind == "X25519") {
            for identity in identities {
                if let Some(k) = identity.unwrap_stanza(stanza)? {
                    file_key.get_or_insert(k);
                }
            }
        }
        let Some(file_key) = file_key else {
            return Err(AgeError::NoMatch);
        };
        // The MAC covers the header up to `---`, without the space and the MAC.
        let covered = read.len() - (mac_line.len() + 1) + 3;
        hmac::verify(&header_mac_key(&file_key), &read[..covered], &mac)
            .map_err(|_| AgeError::HeaderMac)?;
        let mut nonce = [0u8; 16];
        input.read_exact(&mut nonce).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                AgeError::Header("it ends before the payload's nonce".into())
            } else {
                AgeError::Io(e)
            }
        })?;
        Ok(Decryptor {
            input,
            key: payload_key(&file_key, &nonce),
            counter: 0,
            chunk: Vec::with_capacity(CHUNK + TAG),
            pos: 0,
            done: false,
        })
    }

    /// Reads and opens the next chunk into `self.chunk`.
    fn next_chunk(&mut self) -> Result<()> {
        self.chunk.clear();
        self.pos = 0;
        (&mut self.input)
            .take((CHUNK + TAG) as u64)
            .read_to_end(&mut self.chunk)?;
        // The last chunk is the one the input ends after.
        let last = self.input.fill_buf()?.is_empty();
        if self.chunk.len() < TAG {
            return Err(AgeError::Payload(
                if self.counter == 0 && self.chunk.is_empty() {
                    "no payload at all".into()
                } else {
                    "a chunk shorter than its tag (cut short)".into()
                },
            ));
        }
        if !last && self.chunk.len() < CHUNK + TAG {
            return Err(AgeError::Payload("a short chunk before the end".into()));
        }
        let opened = self
            .key
            .open_in_place(
                chunk_nonce(self.counter, last),
                Aad::empty(),
                &mut self.chunk,
            )
            .map_err(|_| {
                AgeError::Payload(if last {
                    format!(
                        "chunk {} does not authenticate as the last one (altered, or cut short)",
                        self.counter
                    )
                } else {
                    format!("chunk {} does not authenticate (altered)", self.counter)
                })
            })?
            .len();
        self.chunk.truncate(opened);
        if last && opened == 0 && self.counter > 0 {
            return Err(AgeError::Payload("an empty last chunk".into()));
        }
        self.counter += 1;
        self.done = last;
        Ok(())
    }
}

impl<R: Read> Read for Decryptor<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            if self.done {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Bech32 (BIP 173) without its 90-character limit, as age uses it.
mod bech32 {
    const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    const GEN: [u32; 5] = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];

    fn polymod(values: impl Iterator<Item = u8>) -> u32 {
        let mut chk: u32 = 1;
        for v in values {
            let top = chk >> 25;
            chk = ((chk & 0x1ff_ffff) << 5) ^ u32::from(v);
            for (i, g) in GEN.iter().enumerate() {
                if (top >> i) & 1 == 1 {
                    chk ^= g;
                }
            }
        }
        chk
    }

    fn hrp_expand(hrp: &str) -> impl Iterator<Item = u8> + '_ {
        hrp.bytes()
            .map(|c| c >> 5)
            .chain(std::iter::once(0))
            .chain(hrp.bytes().map(|c| c & 31))
    }

    /// Regroups bits; `pad`: the last group filled with zeros (encoding), else
    /// leftover bits must be fewer than `from` and zero (decoding).
    fn convert(data: &[u8], from: u32, to: u32, pad: bool) -> Option<Vec<u8>> {
        let mut acc: u32 = 0;
        let mut bits = 0;
        let mut out = Vec::new();
        let max = (1u32 << to) - 1;
        for &v in data {
            acc = (acc << from) | u32::from(v);
            bits += from;
            while bits >= to {
                bits -= to;
                out.push(((acc >> bits) & max) as u8);
            }
        }
        if pad {
            if bits > 0 {
                out.push(((acc << (to - bits)) & max) as u8);
            }
        } else if bits >= from || (acc << (to - bits)) & max != 0 {
            return None;
        }
        Some(out)
    }

    /// Lower case.
    pub(super) fn encode(hrp: &str, data: &[u8]) -> String {
        let five = convert(data, 8, 5, true).unwrap_or_default();
        let checksum = polymod(hrp_expand(hrp).chain(five.iter().copied()).chain([0; 6])) ^ 1;
        let mut s = format!("{hrp}1");
        s.extend(five.iter().map(|&v| CHARSET[usize::from(v)] as char));
        s.extend((0..6).map(|i| CHARSET[((checksum >> (5 * (5 - i))) & 31) as usize] as char));
        s
    }

    /// `(hrp in lower case, bytes)`.
    pub(super) fn decode(s: &str) -> Result<(String, Vec<u8>), &'static str> {
        if s.chars().any(|c| c.is_ascii_lowercase()) && s.chars().any(|c| c.is_ascii_uppercase()) {
            return Err("mixed case");
        }
        let s = s.to_ascii_lowercase();
        let Some(sep) = s.rfind('1') else {
            return Err("no separator");
        };
        let (hrp, rest) = (&s[..sep], &s[sep + 1..]);
        if hrp.is_empty() || rest.len() < 6 || !hrp.bytes().all(|c| (33..=126).contains(&c)) {
            return Err("malformed");
        }
        let values = rest
            .bytes()
            .map(|c| CHARSET.iter().position(|&x| x == c).map(|p| p as u8))
            .collect::<Option<Vec<u8>>>()
            .ok_or("a character outside bech32's alphabet")?;
        if polymod(hrp_expand(hrp).chain(values.iter().copied())) != 1 {
            return Err("bad checksum (mistyped?)");
        }
        let data = convert(&values[..values.len() - 6], 5, 8, false).ok_or("bad padding")?;
        Ok((hrp.to_string(), data))
    }
}

#[cfg(test)]
mod tests;
