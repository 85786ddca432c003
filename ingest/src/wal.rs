//! The write-ahead log: every group of readings is appended here and made durable
//! (`fdatasync`) before it counts as accepted, so that a power cut loses nothing the
//! node acknowledged. Replayed at start; segments whose readings are all in the
//! Parquet history are deleted (a checkpoint).
//!
//! On disk, `<storage>/wal/` holds segment files `<first record>.wal`, each opening
//! with the 8 bytes `CMNLWAL1` and then records:
//!
//! ```text
//! u32 LE  payload length
//! u32 LE  CRC-32 (IEEE) of the payload
//! payload:
//!   u64 LE  record number (increasing across segments)
//!   u32 LE  number of readings, then per reading:
//!           i64 LE ts_ms, u16 LE + bytes device, u8 + bytes metric name, f64 LE value
//!   u32 LE  number of message digests, then u64 LE each
//! ```
//!
//! A record cut short or failing its CRC at the end of the newest segment is what a
//! crash in the middle of a write leaves: it was never acknowledged, so it is cut off
//! and the log goes on from there. One in the middle of the log is damage: it is
//! reported with its file and offset, and replay goes on with the next segment.
//!
//! An encrypted node (DESIGN.md §10) writes segments opening with `CMNLWAS1`
//! instead, whose records keep the same length and CRC framing around a sealed
//! payload:
//!
//! ```text
//! u64 LE  record number (in clear: it is the associated data)
//! 12 bytes nonce, ChaCha20-Poly1305 ciphertext of the payload above, 16 bytes tag
//! ```
//!
//! The associated data is the segment magic and the record number, which the
//! payload repeats: a record moved to another place in the log, or from another
//! log, does not open, and an encrypted log's records must come in increasing
//! order. The CRC still tells a torn write (cut off) from damage; a record whose
//! CRC holds but whose tag does not was changed on purpose and is reported as
//! damage. A log of one kind never reads a segment of the other: the node stops
//! with the segment named (`communalia encrypt` converts a clear log).
//!
//! The message digests are those of the MQTT messages whose readings the record
//! holds: after a crash, the broker sends again what the node had not acknowledged,
//! and a message it marks as a duplicate whose digest is already in the log is
//! acknowledged without being stored twice.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sensors::model::Metric;

use keyring::RecordSealer;

use crate::reading::Reading;

const MAGIC: &[u8; 8] = b"CMNLWAL1";
/// The magic of a segment of sealed records (same length as [`MAGIC`]).
const SEALED_MAGIC: &[u8; 8] = b"CMNLWAS1";
/// A segment is closed and a new one begun past this size.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// No record is larger than this; a length above it is damage, not a record.
const MAX_RECORD_BYTES: u32 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("write-ahead log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("write-ahead log {path}: {why}")]
    Kind { path: PathBuf, why: &'static str },
    #[error("write-ahead log: {0}")]
    Seal(String),
}

type Result<T, E = WalError> = std::result::Result<T, E>;

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What replay found.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Every intact record, in log order: its number and its readings.
    pub records: Vec<(u64, Vec<Reading>)>,
    /// The digests of the messages those readings came from.
    pub digests: HashSet<u64>,
    /// Damage found in the middle of the log (file, offset, what): reported, skipped.
    pub damaged: Vec<String>,
    /// Bytes cut off the end of the newest segment (an unfinished write).
    pub truncated_bytes: u64,
}

impl Replayed {
    /// Every reading of every intact record, in log order.
    pub fn readings(&self) -> impl Iterator<Item = &Reading> {
        self.records.iter().flat_map(|(_, r)| r)
    }

    /// How many readings the records hold.
    pub fn reading_count(&self) -> usize {
        self.records.iter().map(|(_, r)| r.len()).sum()
    }
}

/// An open write-ahead log, appending to its newest segment.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    /// `None` after a failed write: the log lets go of its file, so that a
    /// filesystem the kernel or the operator wants to remount is not held busy, and
    /// opens it again (cut back to `len`) at the next append.
    file: Option<File>,
    path: PathBuf,
    len: u64,
    next_record: u64,
    /// First record number of each segment, oldest first (the last is `file`).
    segments: Vec<(u64, PathBuf)>,
    /// A new segment is begun past this size.
    segment_bytes: u64,
    /// Seals each record when the node's data is encrypted.
    sealer: Option<Arc<RecordSealer>>,
}

/// Digest of one MQTT message (topic and payload), for recognising redeliveries.
pub fn message_digest(topic: &str, payload: &[u8]) -> u64 {
    // FNV-1a, 64 bits: stable across builds and machines, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in topic
        .as_bytes()
        .iter()
        .chain(std::iter::once(&0u8))
        .chain(payload)
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn segment_name(first: u64) -> String {
    format!("{first:020}.wal")
}

fn encode(record: u64, readings: &[Reading], digests: &[u64]) -> Vec<u8> {
    let mut p = Vec::with_capacity(16 + readings.len() * 40 + digests.len() * 8);
    p.extend_from_slice(&record.to_le_bytes());
    p.extend_from_slice(&(readings.len() as u32).to_le_bytes());
    for r in readings {
        p.extend_from_slice(&r.ts_ms.to_le_bytes());
        let device = r.device.as_bytes();
        let device = &device[..device.len().min(usize::from(u16::MAX))];
        p.extend_from_slice(&(device.len() as u16).to_le_bytes());
        p.extend_from_slice(device);
        let metric = r.metric.as_str().as_bytes();
        p.push(metric.len() as u8);
        p.extend_from_slice(metric);
        p.extend_from_slice(&r.value.to_le_bytes());
    }
    p.extend_from_slice(&(digests.len() as u32).to_le_bytes());
    for d in digests {
        p.extend_from_slice(&d.to_le_bytes());
    }
    frame(&p)
}

/// The associated data of sealed record `record`.
fn sealed_aad(record: u64) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..8].copy_from_slice(SEALED_MAGIC);
    a[8..].copy_from_slice(&record.to_le_bytes());
    a
}

/// [`encode`], its payload sealed with `sealer`.
fn encode_sealed(
    sealer: &RecordSealer,
    record: u64,
    readings: &[Reading],
    digests: &[u64],
) -> Result<Vec<u8>> {
    let clear = encode(record, readings, digests);
    let sealed = sealer
        .seal(&sealed_aad(record), &clear[8..])
        .map_err(|e| WalError::Seal(e.to_string()))?;
    let mut p = Vec::with_capacity(8 + sealed.len());
    p.extend_from_slice(&record.to_le_bytes());
    p.extend_from_slice(&sealed);
    Ok(frame(&p))
}

/// The length and CRC header, then `p`.
fn frame(p: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + p.len());
    out.extend_from_slice(&(p.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(p).to_le_bytes());
    out.extend_from_slice(p);
    out
}

/// The clear payload of a sealed one, or what is wrong with it.
fn unseal(sealer: &RecordSealer, payload: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let record = payload
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or("record ends early")?;
    let clear = sealer
        .open(&sealed_aad(record), &payload[8..])
        .ok_or_else(|| format!("record {record} fails its authentication (changed, moved or sealed with another key)"))?;
    if clear.get(..8) != Some(&record.to_le_bytes()[..]) {
        return Err(format!("record {record} holds another record number"));
    }
    Ok(clear)
}

/// A cursor over a payload that refuses to read past its end.
struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|b| b.try_into().ok())
    }
    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }
    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_le_bytes)
    }
    fn f64(&mut self) -> Option<f64> {
        self.array().map(f64::from_le_bytes)
    }
}

/// A decoded record: its number, readings and digests; `Err` says what is wrong.
fn decode(
    payload: &[u8],
    devices: &mut HashSet<Arc<str>>,
) -> std::result::Result<(u64, Vec<Reading>, Vec<u64>), String> {
    let mut c = Cursor { bytes: payload };
    let short = || "record ends early".to_string();
    let record = c.u64().ok_or_else(short)?;
    let n = c.u32().ok_or_else(short)?;
    let mut readings = Vec::with_capacity((n as usize).min(payload.len() / 20));
    for _ in 0..n {
        let ts_ms = c.i64().ok_or_else(short)?;
        let len = c.u16().ok_or_else(short)?;
        let device = c.take(usize::from(len)).ok_or_else(short)?;
        let device = std::str::from_utf8(device).map_err(|_| "device id is not UTF-8")?;
        let len = c.u8().ok_or_else(short)?;
        let metric = c.take(usize::from(len)).ok_or_else(short)?;
        let metric = std::str::from_utf8(metric).map_err(|_| "metric is not UTF-8")?;
        let metric = Metric::parse(metric).ok_or_else(|| format!("unknown metric `{metric}`"))?;
        let value = c.f64().ok_or_else(short)?;
        // One shared id per device, as live ingest makes them.
        let device = match devices.get(device) {
            Some(d) => d.clone(),
            None => {
                let d: Arc<str> = device.into();
                devices.insert(d.clone());
                d
            }
        };
        readings.push(Reading {
            ts_ms,
            device,
            metric,
            value,
        });
    }
    let n = c.u32().ok_or_else(short)?;
    let mut digests = Vec::with_capacity((n as usize).min(payload.len() / 8));
    for _ in 0..n {
        digests.push(c.u64().ok_or_else(short)?);
    }
    if !c.bytes.is_empty() {
        return Err(format!("{} bytes after the record", c.bytes.len()));
    }
    Ok((record, readings, digests))
}

/// The segments in `dir`, oldest first.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_at(dir))? {
        let entry = entry.map_err(io_at(dir))?;
        let path = entry.path();
        let first = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(first) = first {
            out.push((first, path));
        }
    }
    out.sort();
    Ok(out)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

impl Wal {
    /// Opens the log in `dir` (created if need be), replays every intact record, cuts
    /// off an unfinished last write, and starts a fresh segment for new records.
    pub fn open(dir: &Path) -> Result<(Wal, Replayed)> {
        Wal::open_with(dir, SEGMENT_BYTES)
    }

    /// [`Wal::open`] with segments of about `segment_bytes` (tests use small ones).
    pub fn open_with(dir: &Path, segment_bytes: u64) -> Result<(Wal, Replayed)> {
        Wal::open_sealed(dir, segment_bytes, None)
    }

    /// [`Wal::open_with`] of a log whose records are sealed with `sealer` (`None`:
    /// a clear-text log).
    pub fn open_sealed(
        dir: &Path,
        segment_bytes: u64,
        sealer: Option<Arc<RecordSealer>>,
    ) -> Result<(Wal, Replayed)> {
        fs::create_dir_all(dir).map_err(io_at(dir))?;
        let (magic, other): (&[u8; 8], &[u8; 8]) = match sealer {
            Some(_) => (SEALED_MAGIC, MAGIC),
            None => (MAGIC, SEALED_MAGIC),
        };
        let segments = list_segments(dir)?;
        let mut replayed = Replayed::default();
        let mut devices = HashSet::new();
        let mut next_record = 0u64;
        let last = segments.len().saturating_sub(1);
        // A record whose CRC holds but which does not authenticate was not torn by a
        // crash but changed: never cut off (that would destroy the evidence and, with
        // a wrong key, the log), and new records go to a new segment after it.
        let mut tampered_last = false;
        for (i, (_, path)) in segments.iter().enumerate() {
            let mut bytes = Vec::new();
            File::open(path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(io_at(path))?;
            let mut at = 0usize;
            let mut problem = None;
            let mut tampered = false;
            if bytes.get(..other.len()) == Some(&other[..]) {
                return Err(WalError::Kind {
                    path: path.clone(),
                    why: if sealer.is_some() {
                        "a clear-text segment in an encrypted log (convert it with `communalia encrypt`)"
                    } else {
                        "an encrypted segment, and no key is configured ([storage] key_file or passphrase)"
                    },
                });
            }
            if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != magic {
                problem = Some("not a write-ahead log segment".to_string());
            } else {
                at = MAGIC.len();
                while at < bytes.len() {
                    let header = bytes.get(at..at + 8);
                    let Some(header) = header else {
                        problem = Some("record header cut short".into());
                        break;
                    };
                    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
                    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
                    if len > MAX_RECORD_BYTES {
                        problem = Some(format!("record length {len} is not plausible"));
                        break;
                    }
                    let Some(payload) = bytes.get(at + 8..at + 8 + len as usize) else {
                        problem = Some("record cut short".into());
                        break;
                    };
                    if crc32fast::hash(payload) != crc {
                        problem = Some("record fails its checksum".into());
                        break;
                    }
                    let clear = match &sealer {
                        Some(sealer) => match unseal(sealer, payload) {
                            Ok(clear) => Some(clear),
                            Err(why) => {
                                problem = Some(why);
                                tampered = true;
                                break;
                            }
                        },
                        None => None,
                    };
                    match decode(clear.as_deref().unwrap_or(payload), &mut devices) {
                        Ok((record, ..))
                            if sealer.is_some()
                                && replayed.records.last().is_some_and(|(r, _)| *r >= record) =>
                        {
                            problem = Some(format!("record {record} out of order (replayed?)"));
                            tampered = true;
                            break;
                        }
                        Ok((record, readings, digests)) => {
                            replayed.records.push((record, readings));
                            replayed.digests.extend(digests);
                            next_record = next_record.max(record + 1);
                        }
                        Err(why) => {
                            problem = Some(why);
                            break;
                        }
                    }
                    at += 8 + len as usize;
                }
            }
            if let Some(problem) = problem {
                if i == last && !tampered {
                    // An unfinished write: never acknowledged, cut off.
                    let cut = bytes.len().saturating_sub(at) as u64;
                    tracing::warn!(
                        path = %path.display(), offset = at, bytes = cut, %problem,
                        "cutting an unfinished write off the end of the write-ahead log"
                    );
                    replayed.truncated_bytes = cut;
                    let file = OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(io_at(path))?;
                    file.set_len(at.max(MAGIC.len()) as u64)
                        .and_then(|()| file.sync_all())
                        .map_err(io_at(path))?;
                } else {
                    let what = format!("{} at byte {at}: {problem}", path.display());
                    tracing::error!(damage = %what, "damaged write-ahead log segment; the rest of it is skipped");
                    replayed.damaged.push(what);
                    tampered_last |= i == last;
                }
            }
        }
        // A segment is named after the first record it was opened for: when a
        // checkpoint has cut every record away, the newest (empty) segment's name is
        // all that says how far the numbering went. Starting again from 0 would
        // number new records below the history's checkpoint, which skips them.
        if let Some((first, _)) = segments.last() {
            next_record = next_record.max(*first + u64::from(tampered_last));
        }
        let mut segments = segments;
        // New records go to a new segment, so that what replay read stays untouched.
        let path = dir.join(segment_name(next_record));
        let (file, len) = if segments.last().is_some_and(|(f, _)| *f == next_record) {
            // The newest segment holds no intact record: write on after its header.
            let file = OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(io_at(&path))?;
            let len = file.metadata().map_err(io_at(&path))?.len();
            if len < MAGIC.len() as u64 {
                file.set_len(0).map_err(io_at(&path))?;
                (&file).write_all(magic).map_err(io_at(&path))?;
                file.sync_data().map_err(io_at(&path))?;
            }
            (file, len.max(MAGIC.len() as u64))
        } else {
            let mut file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)
                .map_err(io_at(&path))?;
            file.write_all(magic)
                .and_then(|()| file.sync_data())
                .map_err(io_at(&path))?;
            sync_dir(dir)?;
            segments.push((next_record, path.clone()));
            (file, MAGIC.len() as u64)
        };
        Ok((
            Wal {
                dir: dir.to_path_buf(),
                file: Some(file),
                path,
                len,
                next_record,
                segments,
                segment_bytes,
                sealer,
            },
            replayed,
        ))
    }

    /// Appends one record and makes it durable; returns its number.
    ///
    /// A write that fails (disk full, read-only or failing filesystem) leaves nothing
    /// behind: what part of the record reached the file is cut off again, so that
    /// the next record follows the last intact one (a torn record in the middle of a
    /// segment would hide every record after it at replay). The record number is not
    /// used up, and the same readings can be appended again later.
    pub fn append(&mut self, readings: &[Reading], digests: &[u64]) -> Result<u64> {
        let bytes = match &self.sealer {
            Some(sealer) => encode_sealed(sealer, self.next_record, readings, digests)?,
            None => encode(self.next_record, readings, digests),
        };
        match self.try_append(&bytes) {
            Ok(()) => {
                self.len += bytes.len() as u64;
                let record = self.next_record;
                self.next_record += 1;
                Ok(record)
            }
            Err(e) => {
                self.let_go();
                Err(e)
            }
        }
    }

    fn try_append(&mut self, bytes: &[u8]) -> Result<()> {
        if self.len >= self.segment_bytes {
            self.rotate()?;
        }
        let path = self.path.clone();
        let file = self.reopen()?;
        file.write_all(bytes)
            .and_then(|()| file.sync_data())
            .map_err(io_at(&path))
    }

    /// The open segment, opened again and cut back to its last intact record after
    /// a failed write.
    fn reopen(&mut self) -> Result<&mut File> {
        if self.file.is_none() {
            let file = OpenOptions::new()
                .append(true)
                .open(&self.path)
                .map_err(io_at(&self.path))?;
            let on_disk = file.metadata().map_err(io_at(&self.path))?.len();
            if on_disk != self.len {
                file.set_len(self.len)
                    .and_then(|()| file.sync_data())
                    .map_err(io_at(&self.path))?;
            }
            self.file = Some(file);
        }
        match self.file.as_mut() {
            Some(file) => Ok(file),
            None => Err(io_at(&self.path)(io::Error::other("segment not open"))),
        }
    }

    /// After a failed write: cuts off what part of it reached the file (best effort:
    /// on a read-only filesystem that fails too, and [`Wal::reopen`] does it later)
    /// and closes the file.
    fn let_go(&mut self) {
        if let Some(file) = self.file.take() {
            let _ = file.set_len(self.len).and_then(|()| file.sync_data());
        }
    }

    fn rotate(&mut self) -> Result<()> {
        let path = self.dir.join(segment_name(self.next_record));
        let created = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| {
                file.write_all(if self.sealer.is_some() {
                    SEALED_MAGIC
                } else {
                    MAGIC
                })?;
                file.sync_data()?;
                Ok(file)
            })
            .map_err(io_at(&path))
            .and_then(|file| sync_dir(&self.dir).map(|()| file));
        let file = match created {
            Ok(file) => file,
            Err(e) => {
                // No half-made segment is left to be taken for one at replay.
                let _ = fs::remove_file(&path);
                return Err(e);
            }
        };
        self.segments.push((self.next_record, path.clone()));
        self.file = Some(file);
        self.path = path;
        self.len = MAGIC.len() as u64;
        Ok(())
    }

    /// Whether the log can be written again after a failure: there is room on its
    /// filesystem for more than a few records, and an empty record goes through.
    /// (A few bytes may still fit in the last page of a full disk: the room check
    /// keeps the node from coming back only to fail at the next real write.)
    pub fn probe(&mut self) -> Result<()> {
        const ROOM_BYTES: u64 = 64 * 1024;
        let free = rustix::fs::statvfs(&self.dir)
            .map(|st| st.f_bavail.saturating_mul(st.f_frsize))
            .map_err(|e| io_at(&self.dir)(io::Error::from(e)))?;
        if free < ROOM_BYTES {
            return Err(io_at(&self.dir)(io::Error::from(
                io::ErrorKind::StorageFull,
            )));
        }
        self.append(&[], &[]).map(|_| ())
    }

    /// The number the next record will get.
    pub fn next_record(&self) -> u64 {
        self.next_record
    }

    /// Deletes the segments all of whose records are below `upto` (their readings are
    /// safe elsewhere), never the segment being written. Returns how many went.
    pub fn checkpoint(&mut self, upto: u64) -> Result<usize> {
        if upto > self.next_record {
            // More than was written cannot be safe elsewhere; be conservative.
            return Ok(0);
        }
        let mut removed = 0;
        // Segment i holds records [first_i, first_{i+1}).
        while self.segments.len() > 1 && self.segments.get(1).is_some_and(|(next, _)| *next <= upto)
        {
            let (_, path) = self.segments.remove(0);
            fs::remove_file(&path).map_err(io_at(&path))?;
            removed += 1;
        }
        if removed > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    /// Empties the log of every reading it holds, for an erasure (DESIGN.md §10),
    /// the node stopped: the segment being written (fresh since [`Wal::open`], so
    /// holding nothing yet) gets one record without readings that keeps `digests`
    /// (the redelivery check still works after a crash), and every older segment
    /// is deleted, damaged ones included: what replay cannot read, nobody can tell
    /// whose readings it holds.
    ///
    /// The caller must first have every replayed reading safe in the history (and
    /// erased there): [`Wal::checkpoint`] alone is not enough, since it never
    /// deletes the segment a running node was writing, which keeps records already
    /// in Parquet and would give them back to the live store at the next start.
    /// Returns how many segments went.
    pub fn forget_readings(&mut self, digests: &[u64]) -> Result<usize> {
        let header = MAGIC.len() as u64;
        if self.len != header {
            return Err(WalError::Kind {
                path: self.path.clone(),
                why: "the segment being written already holds records; open the log afresh before an erasure",
            });
        }
        if !digests.is_empty() {
            self.append(&[], digests)?;
        }
        let mut removed = 0;
        while self.segments.len() > 1 {
            let (_, path) = self.segments.remove(0);
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(&path)(e)),
            }
        }
        sync_dir(&self.dir)?;
        Ok(removed)
    }

    /// The segment files, oldest first.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|(_, p)| p.clone()).collect()
    }
}

/// Writes the intact records of the clear-text log in `src` as one sealed segment
/// in `dst` (`communalia encrypt`), keeping their numbers (the history's
/// checkpoint counts in them); the message digests all go with the first record.
/// A log without records becomes an empty segment named after the next number, as
/// [`Wal::open`] leaves one. Returns how many readings were written.
pub fn convert_to_sealed(src: &Path, dst: &Path, sealer: &RecordSealer) -> Result<usize> {
    let (wal, replayed) = Wal::open(src)?;
    if let Some(damage) = replayed.damaged.first() {
        return Err(WalError::Seal(format!(
            "{damage}: the log is damaged; start the node once in clear text to settle it"
        )));
    }
    fs::create_dir_all(dst).map_err(io_at(dst))?;
    let first = replayed
        .records
        .first()
        .map_or(wal.next_record(), |(n, _)| *n);
    let path = dst.join(segment_name(first));
    let mut bytes = SEALED_MAGIC.to_vec();
    let digests: Vec<u64> = replayed.digests.iter().copied().collect();
    for (i, (record, readings)) in replayed.records.iter().enumerate() {
        let d = if i == 0 { &digests[..] } else { &[] };
        bytes.extend(encode_sealed(sealer, *record, readings, d)?);
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_at(&path))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_at(&path))?;
    sync_dir(dst)?;
    Ok(replayed.reading_count())
}

#[cfg(test)]
mod tests;
