//! The JSON-lines export, verified the way another program would: with serde_json to
//! read the lines, sha2 to hash, and a canonical JSON encoder written here from the
//! documented rules rather than the crate's.

use std::collections::BTreeSet;

use chrono::Duration;
use ledger::{Category, Communs, Journal, NewContribution, NewTransfer, Verdict};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::contributions::{community, earn, t0};

/// Sorted keys (by UTF-8 bytes), no whitespace, the documented string escapes,
/// numbers as serde_json writes them.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(key, out);
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
    }
}

fn string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn encode(value: &Value) -> String {
    let mut out = String::new();
    canonical(value, &mut out);
    out
}

/// Verifies an export line by line; returns the head hash.
fn verify_lines(text: &str) -> Result<String, String> {
    let mut prev = "0".repeat(64);
    for (i, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        let obj = v.as_object().ok_or("not an object")?;
        let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
        let expected: BTreeSet<&str> = [
            "author",
            "hash",
            "kind",
            "payload",
            "prev_hash",
            "seq",
            "ts",
        ]
        .into();
        if keys != expected {
            return Err(format!("line {}: keys {keys:?}", i + 1));
        }
        if encode(&v) != line {
            return Err(format!("line {} is not canonical JSON", i + 1));
        }
        let seq = v["seq"].as_i64().ok_or("seq")?;
        if seq != i as i64 + 1 {
            return Err(format!("line {}: seq {seq}", i + 1));
        }
        if v["prev_hash"] != prev.as_str() {
            return Err(format!("entry {seq}: prev_hash"));
        }
        let mut hashed = serde_json::Map::new();
        for key in ["author", "kind", "payload", "seq", "ts"] {
            hashed.insert(key.into(), v[key].clone());
        }
        let bytes = encode(&Value::Object(hashed));
        let mut hasher = Sha256::new();
        hasher.update(prev.as_bytes());
        hasher.update(bytes.as_bytes());
        let hash = hex::encode(hasher.finalize());
        if v["hash"] != hash.as_str() {
            return Err(format!("entry {seq}: hash"));
        }
        prev = hash;
    }
    Ok(prev)
}

fn export(journal: &Journal) -> String {
    let mut out = Vec::new();
    let lines = journal.export_jsonl(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(lines as usize, text.lines().count());
    assert!(text.ends_with('\n'));
    text
}

fn busy_journal() -> Journal {
    let journal = community();
    earn(&journal, "Alice", 1.5, t0());
    let tricky = NewContribution {
        category: Category::Teaching,
        hours: 2.0,
        date: t0().date_naive(),
        description: "Taught \"Ohm's law\" \\ résistance ☀\nsecond line".into(),
    };
    let id = journal
        .record_contribution("Bob", &tricky, t0() + Duration::hours(1))
        .unwrap()
        .seq;
    journal
        .attest(
            id,
            "Carol",
            Verdict::Approve,
            "Très clair 👍",
            t0() + Duration::hours(2),
        )
        .unwrap();
    journal
        .transfer(
            "Alice",
            &NewTransfer {
                to: "Dave".into(),
                amount: Communs::from_micro(1_234_567),
                memo: "pour le pain".into(),
                intent: None,
            },
            t0() + Duration::days(3),
        )
        .unwrap();
    journal
}

#[test]
fn an_export_verifies_independently_to_the_same_head() {
    let journal = busy_journal();
    let text = export(&journal);
    let head = verify_lines(&text).unwrap();
    let report = journal.verify().unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(head, report.head_hash);
    assert_eq!(text.lines().count() as u64, report.entries);
    // The stored payload text travels verbatim.
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(
        first["payload"],
        serde_json::json!({"name": "Alice", "roles": ["resident", "assembly"]})
    );
    assert!(text.contains(r#"\"Ohm's law\" \\ résistance ☀\nsecond line""#));
    assert!(text.contains(r#""kind":"demurrage_settled""#));
}

#[test]
fn a_change_in_the_export_is_caught_by_the_independent_check() {
    let journal = busy_journal();
    let text = export(&journal);
    let altered = text.replacen("1234567", "7654321", 1);
    assert_ne!(altered, text);
    let err = verify_lines(&altered).unwrap_err();
    assert!(err.ends_with(": hash"), "{err}");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.swap(5, 6);
    let err = verify_lines(&lines.join("\n")).unwrap_err();
    assert_eq!(err, "line 6: seq 7");
}

#[test]
fn an_empty_journal_exports_nothing() {
    let journal = Journal::open_in_memory().unwrap();
    assert_eq!(export_empty(&journal), "");
}

fn export_empty(journal: &Journal) -> String {
    let mut out = Vec::new();
    assert_eq!(journal.export_jsonl(&mut out).unwrap(), 0);
    String::from_utf8(out).unwrap()
}
