//! The tar inside a backup: written as a stream (POSIX ustar, regular files only),
//! and read as a stream from an archive that may have been made by anyone with the
//! recipients' public key, so every header is checked: its checksum, its format,
//! its path (relative, no `..`), its kind (files and directories only: no link,
//! no device, no fifo), and nothing but zeros after the end.

use std::io::{self, Read, Write};

const BLOCK: usize = 512;
/// The largest GNU long name or pax header read.
const MAX_META: u64 = 64 * 1024;

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// `value` in octal, zero-padded, NUL-terminated; base-256 when it does not fit
/// (GNU's extension, for a file of 8 GiB or more).
fn numeric(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    if text.len() <= digits {
        field[..digits].copy_from_slice(text.as_bytes());
        field[digits] = 0;
    } else {
        field.fill(0);
        let bytes = value.to_be_bytes();
        let n = field.len();
        field[n - 8..].copy_from_slice(&bytes);
        field[0] = 0x80;
    }
}

fn parse_numeric(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = 0;
        for (i, &b) in field.iter().enumerate() {
            let b = if i == 0 { b & 0x7f } else { b };
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != 0 && b != b' ')
        .collect();
    if text.is_empty() {
        return Some(0);
    }
    let text = std::str::from_utf8(&text).ok()?;
    u64::from_str_radix(text, 8).ok()
}

fn checksum(header: &[u8; BLOCK]) -> u64 {
    header
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                u64::from(b' ')
            } else {
                u64::from(b)
            }
        })
        .sum()
}

/// Writes regular files into a tar stream.
pub(crate) struct Writer<W: Write> {
    out: W,
}

impl<W: Write> Writer<W> {
    pub(crate) fn new(out: W) -> Self {
        Writer { out }
    }

    /// Adds `size` bytes of `data` as the file `path` (ASCII, relative, `/`-separated),
    /// mode 0600. Fails if `data` ends before `size` bytes; bytes after them are
    /// not read (a log segment still growing is taken as it was when measured).
    pub(crate) fn add(
        &mut self,
        path: &str,
        size: u64,
        mtime: u64,
        data: &mut impl Read,
    ) -> io::Result<()> {
        let mut header = [0u8; BLOCK];
        let bytes = path.as_bytes();
        let (prefix, name) = if bytes.len() <= 100 {
            (&b""[..], bytes)
        } else {
            // ustar's prefix: split at a `/` leaving at most 100 bytes of name.
            let split = bytes
                .iter()
                .enumerate()
                .filter(|&(i, &b)| b == b'/' && i <= 155 && bytes.len() - i - 1 <= 100)
                .map(|(i, _)| i)
                .next()
                .ok_or_else(|| invalid(format!("{path}: too long a path for a tar member")))?;
            (&bytes[..split], &bytes[split + 1..])
        };
        header[..name.len()].copy_from_slice(name);
        numeric(&mut header[100..108], 0o600);
        numeric(&mut header[108..116], 0);
        numeric(&mut header[116..124], 0);
        numeric(&mut header[124..136], size);
        numeric(&mut header[136..148], mtime);
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        header[345..345 + prefix.len()].copy_from_slice(prefix);
        let sum = checksum(&header);
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        self.out.write_all(&header)?;
        let copied = io::copy(&mut data.take(size), &mut self.out)?;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{path}: {copied} bytes read of {size} (the file shrank while copied)"),
            ));
        }
        let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        self.out.write_all(&vec![0u8; pad as usize])
    }

    /// Closes the archive (two empty blocks) and returns the writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        Ok(self.out)
    }
}

/// What a member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
}

/// One member's header: its path, checked and normalised (relative, no `.` or
/// empty components, no `..`), its kind and size.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) path: String,
    pub(crate) kind: Kind,
    pub(crate) size: u64,
}

/// Reads the members of a tar stream one by one.
pub(crate) struct Reader<R: Read> {
    input: R,
    /// Bytes of the current member not yet read, then its padding.
    left: u64,
    pad: u64,
    members: u64,
    ended: bool,
}

/// `path` made safe to join under a directory, or why it is not.
fn checked_path(raw: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(raw).map_err(|_| "a path that is not UTF-8".to_string())?;
    if text.starts_with('/') {
        return Err(format!("{text}: an absolute path"));
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("{text}: a path with `..`")),
            p if p.contains('\\') || p.chars().any(char::is_control) => {
                return Err(format!("{text:?}: a path with a control character or `\\`"));
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// `field` up to its first NUL.
fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

impl<R: Read> Reader<R> {
    pub(crate) fn new(input: R) -> Self {
        Reader {
            input,
            left: 0,
            pad: 0,
            members: 0,
            ended: false,
        }
    }

    fn skip(&mut self, n: u64) -> io::Result<()> {
        let skipped = io::copy(&mut (&mut self.input).take(n), &mut io::sink())?;
        if skipped != n {
            return Err(invalid("the tar ends inside a member".into()));
        }
        Ok(())
    }

    fn block(&mut self) -> io::Result<Option<[u8; BLOCK]>> {
        let mut block = [0u8; BLOCK];
        let mut got = 0;
        while got < BLOCK {
            match self.input.read(&mut block[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        match got {
            0 => Ok(None),
            BLOCK => Ok(Some(block)),
            _ => Err(invalid("the tar ends inside a header".into())),
        }
    }

    /// The contents of a metadata member (a GNU long name, a pax header).
    fn meta(&mut self, size: u64) -> io::Result<Vec<u8>> {
        if size > MAX_META {
            return Err(invalid(format!(
                "member {}: a metadata entry of {size} bytes",
                self.members
            )));
        }
        let mut data = Vec::new();
        (&mut self.input).take(size).read_to_end(&mut data)?;
        if data.len() as u64 != size {
            return Err(invalid("the tar ends inside a member".into()));
        }
        self.skip((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64)?;
        Ok(data)
    }

    /// The next member's header (the rest of the previous one is skipped), or
    /// `None` at the end of the archive.
    pub(crate) fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        if self.ended {
            return Ok(None);
        }
        self.skip(self.left + self.pad)?;
        self.left = 0;
        self.pad = 0;
        let mut long_name: Option<Vec<u8>> = None;
        loop {
            let Some(header) = self.block()? else {
                return Err(invalid(
                    "the tar ends without its end-of-archive blocks".into(),
                ));
            };
            if header.iter().all(|&b| b == 0) {
                // The end: only zeros may follow (tar pads to its record size).
                let mut rest = Vec::new();
                (&mut self.input).take(1024 * 1024).read_to_end(&mut rest)?;
                if rest.iter().any(|&b| b != 0) || self.input.read(&mut [0u8; 1])? != 0 {
                    return Err(invalid("data after the end of the tar".into()));
                }
                self.ended = true;
                return Ok(None);
            }
            self.members += 1;
            let n = self.members;
            let stored = parse_numeric(&header[148..156]);
            if stored != Some(checksum(&header)) {
                return Err(invalid(format!(
                    "member {n}: its header's checksum is wrong (not a tar, or damaged)"
                )));
            }
            let posix = &header[257..263] == b"ustar\0";
            let gnu = &header[257..265] == b"ustar  \0";
            if !posix && !gnu {
                return Err(invalid(format!(
                    "member {n}: not a ustar header (an old or unknown tar format)"
                )));
            }
            let size = parse_numeric(&header[124..136])
                .ok_or_else(|| invalid(format!("member {n}: an unreadable size")))?;
            let mut raw_name = cstr(&header[..100]).to_vec();
            if posix {
                let prefix = cstr(&header[345..500]);
                if !prefix.is_empty() {
                    raw_name = [prefix, b"/", &raw_name].concat();
                }
            }
            if let Some(long) = long_name.take() {
                raw_name = long;
            }
            let shown = String::from_utf8_lossy(&raw_name).into_owned();
            let kind = match header[156] {
                b'0' | 0 | b'7' => Kind::File,
                b'5' => Kind::Dir,
                b'L' => {
                    long_name = Some(cstr(&self.meta(size)?).to_vec());
                    continue;
                }
                b'x' => {
                    let records = self.meta(size)?;
                    long_name =
                        pax_path(&records).map_err(|e| invalid(format!("member {n}: {e}")))?;
                    continue;
                }
                b'g' => {
                    self.meta(size)?;
                    continue;
                }
                b'1' | b'2' => {
                    return Err(invalid(format!(
                        "member {n} ({shown}): a link; a backup holds regular files only"
                    )));
                }
                other => {
                    return Err(invalid(format!(
                        "member {n} ({shown}): a special file (type {:?}); a backup holds regular files only",
                        other as char
                    )));
                }
            };
            let path = checked_path(&raw_name)
                .map_err(|why| invalid(format!("member {n}: refused: {why}")))?;
            if path.is_empty() {
                // `./`, the archive's root, as `tar -C DIR -cf ARCHIVE .` writes it.
                if kind == Kind::Dir {
                    continue;
                }
                return Err(invalid(format!(
                    "member {n}: refused: {shown:?}: an empty path"
                )));
            }
            if kind == Kind::Dir && size != 0 {
                return Err(invalid(format!(
                    "member {n} ({path}): a directory with data"
                )));
            }
            self.left = size;
            self.pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
            return Ok(Some(Entry { path, kind, size }));
        }
    }

    /// Copies the current member's data into `out`, all of it.
    pub(crate) fn copy_to(&mut self, out: &mut impl Write) -> io::Result<u64> {
        let want = self.left;
        let copied = io::copy(&mut (&mut self.input).take(want), out)?;
        self.left -= copied;
        if copied != want {
            return Err(invalid("the tar ends inside a member".into()));
        }
        Ok(copied)
    }
}

/// The `path` of a pax extended header, if it has one.
fn pax_path(records: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut rest = records;
    let mut path = None;
    while !rest.is_empty() {
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or("a malformed pax record")?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&l| l > space + 1 && l <= rest.len())
            .ok_or("a malformed pax record length")?;
        let record = &rest[space + 1..len];
        let record = record
            .strip_suffix(b"\n")
            .ok_or("a pax record without newline")?;
        if let Some(value) = record.strip_prefix(b"path=") {
            path = Some(value.to_vec());
        } else if record.starts_with(b"linkpath=") {
            return Err("a pax link".into());
        }
        rest = &rest[len..];
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = Writer::new(Vec::new());
        for (name, data) in members {
            w.add(name, data.len() as u64, 1_765_000_000, &mut &data[..])
                .unwrap();
        }
        w.finish().unwrap()
    }

    fn read_all(bytes: &[u8]) -> io::Result<Vec<(String, Vec<u8>)>> {
        let mut r = Reader::new(bytes);
        let mut out = Vec::new();
        while let Some(e) = r.next_entry()? {
            let mut data = Vec::new();
            r.copy_to(&mut data)?;
            assert_eq!(data.len() as u64, e.size);
            out.push((e.path, data));
        }
        Ok(out)
    }

    #[test]
    fn what_is_written_reads_back_with_long_paths() {
        let long = format!("data/readings/date=2026-03-12/{}.parquet", "x".repeat(90));
        let big: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let bytes = archive(&[("config.toml", b"a = 1\n"), (&long, &big), ("empty", b"")]);
        let got = read_all(&bytes).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].0, long);
        assert_eq!(got[1].1, big);
        assert_eq!(got[2].1, b"");
        // The system's tar lists it the same.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.tar");
        std::fs::write(&file, &bytes).unwrap();
        let out = std::process::Command::new("tar")
            .arg("-tf")
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success());
        let listed = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            listed.lines().collect::<Vec<_>>(),
            vec!["config.toml", long.as_str(), "empty"]
        );
    }

    fn with_header_change(name: &str, change: impl Fn(&mut [u8; BLOCK])) -> Vec<u8> {
        let mut bytes = archive(&[(name, b"x")]);
        let mut header = [0u8; BLOCK];
        header.copy_from_slice(&bytes[..BLOCK]);
        change(&mut header);
        let sum = checksum(&header);
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        bytes[..BLOCK].copy_from_slice(&header);
        bytes
    }

    #[test]
    fn hostile_members_are_refused_naming_them() {
        for (name, why) in [
            ("../etc/passwd", ".."),
            ("data/../../x", ".."),
            ("/etc/passwd", "absolute"),
        ] {
            let err = read_all(&archive(&[(name, b"x")])).unwrap_err().to_string();
            assert!(
                err.contains(why) && err.contains("member 1"),
                "{name}: {err}"
            );
        }
        let symlink = with_header_change("data/x", |h| {
            h[156] = b'2';
            h[157..168].copy_from_slice(b"/etc/passwd");
        });
        let err = read_all(&symlink).unwrap_err().to_string();
        assert!(err.contains("a link") && err.contains("data/x"), "{err}");
        let fifo = with_header_change("data/x", |h| h[156] = b'6');
        assert!(
            read_all(&fifo)
                .unwrap_err()
                .to_string()
                .contains("special file")
        );
        // A damaged header, a cut, and bytes after the end.
        let mut bad = archive(&[("a", b"x")]);
        bad[10] ^= 1;
        assert!(read_all(&bad).unwrap_err().to_string().contains("checksum"));
        let good = archive(&[("a", &[7u8; 2000])]);
        assert!(read_all(&good[..1000]).is_err());
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"more");
        assert!(
            read_all(&trailing)
                .unwrap_err()
                .to_string()
                .contains("after the end")
        );
    }

    #[test]
    fn gnu_tar_archives_read_with_their_directories() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let long_dir = src.join("data").join("y".repeat(120));
        std::fs::create_dir_all(&long_dir).unwrap();
        std::fs::write(src.join("config.toml"), b"c").unwrap();
        std::fs::write(long_dir.join("f.parquet"), vec![1u8; 700]).unwrap();
        // GNU tar names a long path in a `L` member, pax in an `x` header.
        for format in ["gnu", "posix"] {
            let file = dir.path().join(format!("{format}.tar"));
            let status = std::process::Command::new("tar")
                .arg(format!("--format={format}"))
                .arg("-cf")
                .arg(&file)
                .arg("-C")
                .arg(&src)
                .arg(".")
                .status()
                .unwrap();
            assert!(status.success());
            let bytes = std::fs::read(&file).unwrap();
            let mut r = Reader::new(&bytes[..]);
            let mut files = Vec::new();
            while let Some(e) = r.next_entry().unwrap_or_else(|e| panic!("{format}: {e}")) {
                if e.kind == Kind::File {
                    let mut data = Vec::new();
                    r.copy_to(&mut data).unwrap();
                    files.push((e.path, data.len()));
                }
            }
            files.sort();
            let want = format!("data/{}/f.parquet", "y".repeat(120));
            assert_eq!(
                files,
                vec![("config.toml".to_string(), 1), (want, 700)],
                "{format}"
            );
        }
    }
}
