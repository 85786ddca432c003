//! A POSIX tar archive (ustar) of regular files, written in memory: what
//! `GET /api/me/export` answers. Tar because every system reads it without
//! anything to install (`tar -xf`), and because its members need no checksum of
//! their content; files are stored as they are (no compression: the readings go
//! out as Parquet, compressed already).

/// The 512-byte blocks of one header and file.
const BLOCK: usize = 512;

/// Files added to an archive in memory.
#[derive(Debug, Default)]
pub(crate) struct Tar {
    bytes: Vec<u8>,
}

impl Tar {
    /// Adds `data` as the regular file `name` (ASCII, at most 100 bytes: the names
    /// are the node's own), mode 0644, modified at `mtime` (Unix seconds).
    pub(crate) fn add(&mut self, name: &str, data: &[u8], mtime: i64) {
        let mut header = [0u8; BLOCK];
        let name = name.as_bytes();
        let name = &name[..name.len().min(100)];
        header[..name.len()].copy_from_slice(name);
        octal(&mut header[100..108], 0o644);
        octal(&mut header[108..116], 0);
        octal(&mut header[116..124], 0);
        octal(&mut header[124..136], data.len() as u64);
        octal(&mut header[136..148], mtime.max(0) as u64);
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        // The checksum is computed with its own field as spaces.
        header[148..156].copy_from_slice(b"        ");
        let sum: u64 = header.iter().map(|&b| u64::from(b)).sum();
        let field = format!("{sum:06o}\0 ");
        header[148..156].copy_from_slice(field.as_bytes());
        self.bytes.extend_from_slice(&header);
        self.bytes.extend_from_slice(data);
        let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
        self.bytes.extend(std::iter::repeat_n(0u8, pad));
    }

    /// The archive, closed by its two empty blocks.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.bytes.extend(std::iter::repeat_n(0u8, 2 * BLOCK));
        self.bytes
    }
}

/// `value` in octal, zero-padded, NUL-terminated, filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    let text = &text.as_bytes()[text.len().saturating_sub(digits)..];
    field[..digits].copy_from_slice(text);
    field[digits] = 0;
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// The system's own `tar` reads back what was written: names, sizes, bytes.
    #[test]
    fn the_system_tar_reads_the_archive_back() {
        let mut tar = Tar::default();
        let big: Vec<u8> = (0..1500u32).map(|i| (i % 251) as u8).collect();
        tar.add("member.json", b"{\"name\":\"alice\"}\n", 1_765_000_000);
        tar.add("readings.csv", &big, 1_765_000_000);
        tar.add("empty.txt", b"", 1_765_000_000);
        let bytes = tar.finish();
        assert_eq!(bytes.len() % BLOCK, 0);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("a.tar");
        std::fs::write(&file, &bytes).unwrap_or_else(|e| panic!("{e}"));
        let status = Command::new("tar")
            .arg("-xf")
            .arg(&file)
            .arg("-C")
            .arg(dir.path())
            .status();
        let Ok(status) = status else {
            eprintln!("skipped: tar not available");
            return;
        };
        assert!(status.success());
        let read =
            |n: &str| std::fs::read(dir.path().join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
        assert_eq!(read("member.json"), b"{\"name\":\"alice\"}\n");
        assert_eq!(read("readings.csv"), big);
        assert!(read("empty.txt").is_empty());
    }
}
