//! The journal as JSON lines, for another program to keep, read or verify on its
//! own (`Journal::export_jsonl`).

use std::io::Write;

use rusqlite::types::ValueRef;

use super::Journal;
use crate::entry::push_json_string;
use crate::error::{Error, Result};

impl Journal {
    /// Writes the whole journal to `w`, one entry per line, oldest first, and returns
    /// how many lines it wrote. Each line is one JSON object with exactly the keys
    /// `author`, `hash`, `kind`, `payload`, `prev_hash`, `seq` and `ts`, in that
    /// (byte-wise sorted) order, without whitespace, ending in `\n`:
    ///
    /// ```text
    /// {"author":"config","hash":"b8a3…","kind":"member_joined","payload":{"name":"Alice","roles":["resident"]},"prev_hash":"0000…","seq":1,"ts":"2026-11-22T10:00:00.000Z"}
    /// ```
    ///
    /// `payload` is the stored payload text verbatim (it is canonical JSON), the
    /// strings are escaped as [`crate::canonical_json`] says, and `seq` is a plain
    /// integer. To verify an export without this crate, for each line in order: check
    /// that `seq` counts 1, 2, 3, …; that `prev_hash` is 64 `0` on the first line and
    /// the previous line's `hash` after; then rebuild the canonical bytes
    /// `{"author":…,"kind":…,"payload":…,"seq":…,"ts":…}` from the line's values
    /// (payload re-encoded as canonical JSON) and check that `hash` is the hex
    /// SHA-256 of `prev_hash` followed by them (see [`crate::Entry`]). Replaying
    /// the balances needs the payloads and rules in the crate docs ("Entries and
    /// payloads") and [`crate::demurrage_factor`].
    ///
    /// Rows are written as stored, damaged ones included, so that the reader can see
    /// what is wrong; only a row whose columns are not text, or whose payload is not
    /// JSON at all, cannot be written as a line and ends the export with
    /// [`Error::Corrupt`]. An I/O failure is [`Error::Export`].
    pub fn export_jsonl(&self, w: &mut impl Write) -> Result<u64> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT seq, ts, kind, author, payload, prev_hash, hash FROM journal ORDER BY seq",
            )?;
            let mut rows = stmt.query([])?;
            let mut lines = 0u64;
            let mut line = String::new();
            while let Some(row) = rows.next()? {
                let seq: i64 = row.get(0)?;
                let text = |idx: usize, name: &str| -> Result<String> {
                    match row.get_ref(idx)? {
                        ValueRef::Text(bytes) => {
                            String::from_utf8(bytes.to_vec()).map_err(|_| Error::Corrupt {
                                seq,
                                problem: format!("column `{name}` is not valid UTF-8"),
                            })
                        }
                        _ => Err(Error::Corrupt {
                            seq,
                            problem: format!("column `{name}` is not text"),
                        }),
                    }
                };
                let payload = text(4, "payload")?;
                if serde_json::from_str::<serde_json::Value>(&payload).is_err() {
                    return Err(Error::Corrupt {
                        seq,
                        problem: "payload is not valid JSON".into(),
                    });
                }
                line.clear();
                line.push_str("{\"author\":");
                push_json_string(&text(3, "author")?, &mut line);
                line.push_str(",\"hash\":");
                push_json_string(&text(6, "hash")?, &mut line);
                line.push_str(",\"kind\":");
                push_json_string(&text(2, "kind")?, &mut line);
                line.push_str(",\"payload\":");
                line.push_str(&payload);
                line.push_str(",\"prev_hash\":");
                push_json_string(&text(5, "prev_hash")?, &mut line);
                line.push_str(",\"seq\":");
                line.push_str(&seq.to_string());
                line.push_str(",\"ts\":");
                push_json_string(&text(1, "ts")?, &mut line);
                line.push_str("}\n");
                w.write_all(line.as_bytes()).map_err(Error::Export)?;
                lines += 1;
            }
            w.flush().map_err(Error::Export)?;
            Ok(lines)
        })
    }
}
