//! Journal entries, their kinds, and the canonical encoding they are hashed in.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry: 64 ASCII zeros.
pub const GENESIS_PREV_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// What an entry records. The serde name (`snake_case`) is what the `kind` column holds
/// and what is hashed; names are never changed once released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A member joins: payload `{"name", "roles"}`.
    MemberJoined,
    /// The assembly adopts a priority plan: payload `{"plan", "decision"}`.
    PlanAdopted,
    /// A member (the author) records a contribution: payload `{"category", "hours",
    /// "date", "description"}`. Its `seq` is the contribution's id.
    ContributionRecorded,
    /// A member (the author) approves or rejects a contribution: payload
    /// `{"contribution", "verdict", "comment"}`.
    Attestation,
    /// A contribution is validated and Communs minted to its contributor, right after
    /// its `k`-th approval: payload `{"contribution", "member", "hours",
    /// "rate_micro_per_hour", "minted_micro"}`. Written by the ledger, not asked for.
    ContributionValidated,
    /// Communs move from the author to a member: payload `{"to", "amount_micro",
    /// "memo"}`.
    Transfer,
    /// Demurrage is settled into the commons account, just before an act that changes
    /// those balances: payload `{"accounts": [{"member", "since", "balance_micro",
    /// "decayed_micro"}]}`. Written by the ledger, not asked for.
    DemurrageSettled,
    /// The assembly adopts ledger parameters (k, rates, r, P): payload
    /// `{"parameters", "decision"}`.
    ParametersAdopted,
    /// A member (the author) posts a need or an offer on the planning board:
    /// payload `{"direction", "action", "class", "quantity", "unit", "window_start",
    /// "window_end", "expires_at", "description", "visibility", "collective"}`. Its
    /// `seq` is the intent's id.
    IntentPosted,
    /// A member (the author) proposes to take the other side of an intent, and so
    /// accepts it: payload `{"intent", "quantity", "note"}`. Its `seq` is the
    /// commitment's id.
    CommitmentProposed,
    /// The other side accepts a commitment, which then exists: payload
    /// `{"commitment"}`.
    CommitmentAccepted,
    /// Either side releases a commitment before it is fulfilled: payload
    /// `{"commitment", "reason"}`.
    CommitmentReleased,
    /// A validated contribution fulfils (part of) the commitment it named, right
    /// after its validation: payload `{"commitment", "contribution", "quantity"}`.
    /// Written by the ledger, not asked for.
    CommitmentFulfilled,
    /// The assembly lists the attributes members may declare for sortition (and
    /// nothing else is asked): payload `{"keys": [NAME, …]}`.
    SortitionKeysSet,
    /// A member (the author) opts in to be drawn by lot, or out: payload
    /// `{"opt_in", "attributes": {KEY: VALUE, …}}`, only listed keys.
    SortitionOpted,
    /// A draw is announced: payload `{"size", "strata_key", "quotas": {STRATUM:
    /// {"min", "max"}}, "mandate": {"scope", "title", "term_end"}, "draw_at", "pool":
    /// [{"member", "stratum"}], "pool_hash"}`. Its `seq` is the draw's id.
    SortitionAnnounced,
    /// A draw is made: payload `{"draw", "rolls", "witnesses", "head_hash", "seed",
    /// "selected", "consumed"}`.
    SortitionDrawn,
    /// A member declines their seat and is replaced from the seed's continuation:
    /// payload `{"draw", "member", "replacement", "consumed"}`.
    PanelMemberDeclined,
    /// The author of an intent closes it before it is fulfilled or expires; the node
    /// (author [`crate::NODE_AUTHOR`]) closes a repair need it opened once its device
    /// is back and the need fulfilled: payload `{"intent", "reason"}`.
    IntentClosed,
    /// A member of a household (the author) lets a member, a role or (later) a
    /// federation peer read that household's meters: payload `{"household",
    /// "household_members", "grantee", "granularity", "purpose", "starts",
    /// "expires"}`. Its `seq` is the grant's id. Recorded through
    /// [`crate::Journal::grant_consent`], which knows the site's households.
    ConsentGranted,
    /// A member of the household (the author) ends a grant before its expiry:
    /// payload `{"grant", "household", "household_members"}`.
    ConsentRevoked,
    /// A household's readings were erased from the history: payload `{"household",
    /// "household_members", "meters", "from", "to", "rows"}`; the erasure, never the
    /// data.
    HouseholdReadingsErased,
    /// The node (author [`crate::NODE_AUTHOR`]) certifies, once a surplus window is
    /// over, what a household's meters drew in it above their baseline, for a
    /// commitment to shift a load into one of its surplus offers: payload
    /// `{"commitment", "household", "household_members", "meters", "window_start",
    /// "window_end", "basis", "measured_kwh", "baseline_kwh", "baseline_days",
    /// "quantity"}`. Recorded through [`crate::Journal::certify_load_shift`], which
    /// knows the site's households.
    LoadShiftCertified,
    /// A member of the household (the author) asks for its readings to be erased
    /// (from `/me`): payload `{"household", "household_members", "meters", "from",
    /// "to"}`. The node carries it out with the history closed (at its next start,
    /// or `communalia household erase --pending`) and records a
    /// `household_readings_erased` entry naming it (`"request"`).
    HouseholdErasureRequested,
}

impl EntryKind {
    pub const ALL: [EntryKind; 24] = [
        EntryKind::MemberJoined,
        EntryKind::PlanAdopted,
        EntryKind::ContributionRecorded,
        EntryKind::Attestation,
        EntryKind::ContributionValidated,
        EntryKind::Transfer,
        EntryKind::DemurrageSettled,
        EntryKind::ParametersAdopted,
        EntryKind::IntentPosted,
        EntryKind::CommitmentProposed,
        EntryKind::CommitmentAccepted,
        EntryKind::CommitmentReleased,
        EntryKind::CommitmentFulfilled,
        EntryKind::SortitionKeysSet,
        EntryKind::SortitionOpted,
        EntryKind::SortitionAnnounced,
        EntryKind::SortitionDrawn,
        EntryKind::PanelMemberDeclined,
        EntryKind::IntentClosed,
        EntryKind::ConsentGranted,
        EntryKind::ConsentRevoked,
        EntryKind::HouseholdReadingsErased,
        EntryKind::LoadShiftCertified,
        EntryKind::HouseholdErasureRequested,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::MemberJoined => "member_joined",
            EntryKind::PlanAdopted => "plan_adopted",
            EntryKind::ContributionRecorded => "contribution_recorded",
            EntryKind::Attestation => "attestation",
            EntryKind::ContributionValidated => "contribution_validated",
            EntryKind::Transfer => "transfer",
            EntryKind::DemurrageSettled => "demurrage_settled",
            EntryKind::ParametersAdopted => "parameters_adopted",
            EntryKind::IntentPosted => "intent_posted",
            EntryKind::CommitmentProposed => "commitment_proposed",
            EntryKind::CommitmentAccepted => "commitment_accepted",
            EntryKind::CommitmentReleased => "commitment_released",
            EntryKind::CommitmentFulfilled => "commitment_fulfilled",
            EntryKind::SortitionKeysSet => "sortition_keys_set",
            EntryKind::SortitionOpted => "sortition_opted",
            EntryKind::SortitionAnnounced => "sortition_announced",
            EntryKind::SortitionDrawn => "sortition_drawn",
            EntryKind::PanelMemberDeclined => "panel_member_declined",
            EntryKind::IntentClosed => "intent_closed",
            EntryKind::ConsentGranted => "consent_granted",
            EntryKind::ConsentRevoked => "consent_revoked",
            EntryKind::HouseholdReadingsErased => "household_readings_erased",
            EntryKind::LoadShiftCertified => "load_shift_certified",
            EntryKind::HouseholdErasureRequested => "household_erasure_requested",
        }
    }

    /// Whether entries of this kind are only written by the ledger itself, as the
    /// consequence of another act (`contribution_validated`, `demurrage_settled`),
    /// and so cannot be appended on their own.
    pub fn is_derived(self) -> bool {
        matches!(
            self,
            EntryKind::ContributionValidated
                | EntryKind::DemurrageSettled
                | EntryKind::CommitmentFulfilled
        )
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EntryKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntryKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown entry kind `{s}`"))
    }
}

/// One act in the journal.
///
/// # How entries are chained
///
/// Another program can re-verify the chain from the `journal` table alone
/// (`SELECT seq, ts, kind, author, payload, prev_hash, hash FROM journal ORDER BY seq`):
///
/// 1. `seq` runs 1, 2, 3, … without gaps.
/// 2. The **canonical bytes** of an entry are the UTF-8 encoding of the text
///    `{"author":A,"kind":K,"payload":P,"seq":S,"ts":T}`: exactly these five keys, in
///    this (byte-wise sorted) order, with no whitespace, where
///    - `A`, `K` and `T` are the `author`, `kind` and `ts` columns written as JSON
///      strings, escaped as [`canonical_json`] describes;
///    - `P` is the `payload` column copied verbatim: it is stored as the
///      [`canonical_json`] of the payload, so the whole text is itself canonical JSON;
///    - `S` is `seq` in decimal, without sign or leading zeros;
///    - `ts` is RFC 3339 in UTC with exactly three fractional digits and a `Z`
///      suffix (`2026-11-22T10:00:00.000Z`), see [`format_ts`].
/// 3. `hash` is the lowercase hexadecimal SHA-256 of the 64 ASCII bytes of
///    `prev_hash` (lowercase hex) followed by the canonical bytes.
/// 4. `prev_hash` of entry 1 is 64 ASCII `0` ([`GENESIS_PREV_HASH`]); of entry
///    `n > 1`, the `hash` of entry `n - 1`.
///
/// Worked example: the entry `seq` 1, `ts` `2026-11-22T10:00:00.000Z`, kind
/// `member_joined`, author `config`, payload `{"name":"Alice","roles":["resident"]}`
/// has the canonical bytes
///
/// ```text
/// {"author":"config","kind":"member_joined","payload":{"name":"Alice","roles":["resident"]},"seq":1,"ts":"2026-11-22T10:00:00.000Z"}
/// ```
///
/// and, with `prev_hash` = 64 zeros, the hash
/// `b8a38fc5fea25536d0360ee7bdce9f66867867bf1a4e99a95739be8ecd44f722`.
///
/// The `ts` orders nothing: `seq` is the order of the journal, and a clock that was
/// set back still yields a valid chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: i64,
    #[serde(with = "ts_millis")]
    pub ts: DateTime<Utc>,
    pub kind: EntryKind,
    pub author: String,
    pub payload: Value,
    pub prev_hash: String,
    pub hash: String,
}

impl Entry {
    /// The canonical bytes this entry is hashed over (see [`Entry`]).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        canonical_entry(
            self.seq,
            &format_ts(self.ts),
            self.kind.as_str(),
            &self.author,
            &canonical_json(&self.payload),
        )
        .into_bytes()
    }

    /// The hash this entry should carry given its `prev_hash` and contents.
    pub fn computed_hash(&self) -> String {
        chain_hash(&self.prev_hash, &self.canonical_bytes())
    }
}

/// The canonical text of an entry from its column values; `payload` must already be
/// canonical JSON.
pub(crate) fn canonical_entry(
    seq: i64,
    ts: &str,
    kind: &str,
    author: &str,
    payload: &str,
) -> String {
    let mut out = String::with_capacity(64 + ts.len() + kind.len() + author.len() + payload.len());
    out.push_str("{\"author\":");
    push_json_string(author, &mut out);
    out.push_str(",\"kind\":");
    push_json_string(kind, &mut out);
    out.push_str(",\"payload\":");
    out.push_str(payload);
    out.push_str(",\"seq\":");
    out.push_str(&seq.to_string());
    out.push_str(",\"ts\":");
    push_json_string(ts, &mut out);
    out.push('}');
    out
}

/// `hex(SHA-256(prev_hash ASCII || canonical bytes))`.
pub(crate) fn chain_hash(prev_hash: &str, canonical: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(canonical);
    hex::encode(hasher.finalize())
}

/// Whether a text is a hash as the journal writes them: 64 lowercase hex digits.
pub(crate) fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The canonical JSON text of a value: the form payloads are stored and hashed in.
///
/// - No whitespace outside strings.
/// - Object keys sorted by the bytes of their UTF-8 encoding, at every depth. (This
///   function sorts them itself, so it does not depend on how `serde_json::Map` is
///   ordered.)
/// - Strings: `"` and `\` escaped as `\"` and `\\`; U+0008, U+0009, U+000A, U+000C
///   and U+000D as `\b`, `\t`, `\n`, `\f`, `\r`; every other character below U+0020
///   as `\u00XX` with lowercase hex digits; every other character, including `/`,
///   U+007F and all non-ASCII, as itself in UTF-8.
/// - Numbers as serde_json writes them: integers in plain decimal (`150`, `-3`);
///   other numbers in the shortest form that reads back as the same IEEE 754 double,
///   with at least one fractional digit or an exponent (`150.0`, `0.1`, `1e+20`,
///   `2.5e-7`).
/// - `true`, `false`, `null`.
///
/// A verifier that only checks the chain does not need to reproduce this: the stored
/// `payload` column is used verbatim (see [`Entry`]).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => push_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut fields: Vec<(&String, &Value)> = map.iter().collect();
            fields.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in fields.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(key, out);
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
    }
}

pub(crate) fn push_json_string(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
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
            c if (c as u32) < 0x20 => {
                let b = c as u32 as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[b >> 4]));
                out.push(char::from(HEX[b & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A timestamp as the journal writes it: RFC 3339, UTC, milliseconds, `Z`
/// (`2026-11-22T10:00:00.000Z`). Finer digits are truncated.
pub fn format_ts(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses a timestamp only if it is exactly in the form [`format_ts`] writes.
pub(crate) fn parse_canonical_ts(s: &str) -> Option<DateTime<Utc>> {
    let ts = DateTime::parse_from_rfc3339(s).ok()?.with_timezone(&Utc);
    (format_ts(ts) == s).then_some(ts)
}

/// Serde for timestamps in the journal's form, so JSON read by people and programs
/// shows the same text that is hashed.
pub(crate) mod ts_millis {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_ts(*ts))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|ts| ts.with_timezone(&Utc))
            .map_err(D::Error::custom)
    }

    /// The same for an optional timestamp (`null` when absent).
    pub(crate) mod option {
        use chrono::{DateTime, Utc};
        use serde::Serializer;

        pub(crate) fn serialize<S: Serializer>(
            ts: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match ts {
                Some(ts) => super::serialize(ts, s),
                None => s.serialize_none(),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn genesis_is_64_zeros() {
        assert_eq!(GENESIS_PREV_HASH.len(), 64);
        assert!(GENESIS_PREV_HASH.bytes().all(|b| b == b'0'));
        assert!(is_hash(GENESIS_PREV_HASH));
    }

    #[test]
    fn key_order_does_not_change_the_bytes() {
        // Built by insertion in two different orders, at two depths.
        let mut inner_a = serde_json::Map::new();
        inner_a.insert("zeta".into(), json!(1));
        inner_a.insert("alpha".into(), json!([3, {"y": 1, "x": 2}]));
        let mut outer_a = serde_json::Map::new();
        outer_a.insert("service".into(), Value::Object(inner_a));
        outer_a.insert("amount".into(), json!(2.5));

        let mut inner_b = serde_json::Map::new();
        inner_b.insert("alpha".into(), json!([3, {"x": 2, "y": 1}]));
        inner_b.insert("zeta".into(), json!(1));
        let mut outer_b = serde_json::Map::new();
        outer_b.insert("amount".into(), json!(2.5));
        outer_b.insert("service".into(), Value::Object(inner_b));

        let a = canonical_json(&Value::Object(outer_a));
        let b = canonical_json(&Value::Object(outer_b));
        assert_eq!(a, b);
        assert_eq!(
            a,
            r#"{"amount":2.5,"service":{"alpha":[3,{"x":2,"y":1}],"zeta":1}}"#
        );

        // And from texts whose keys come in different orders.
        let c: Value = serde_json::from_str(r#"{ "b": {"d": 1, "c": 2}, "a": null }"#).unwrap();
        let d: Value = serde_json::from_str(r#"{"a":null,"b":{"c":2,"d":1}}"#).unwrap();
        assert_eq!(canonical_json(&c), canonical_json(&d));
        assert_eq!(canonical_json(&c), r#"{"a":null,"b":{"c":2,"d":1}}"#);
    }

    #[test]
    fn keys_sort_by_utf8_bytes() {
        let v = json!({"é": 1, "z": 2, "Z": 3, "a": 4});
        assert_eq!(canonical_json(&v), r#"{"Z":3,"a":4,"z":2,"é":1}"#);
    }

    #[test]
    fn strings_are_escaped_like_serde_json() {
        let s =
            "quote\" back\\ slash/ tab\t nl\n cr\r bs\u{8} ff\u{c} nul\u{0} us\u{1f} del\u{7f} é ☀";
        let v = json!({ "s": s });
        let ours = canonical_json(&v);
        assert_eq!(ours, serde_json::to_string(&v).unwrap());
        assert!(ours.contains(r"\u0000") && ours.contains(r"\u001f"));
    }

    #[test]
    fn numbers_are_written_like_serde_json_and_read_back_identically() {
        let v = json!([
            0,
            -3,
            150,
            u64::MAX,
            i64::MIN,
            150.0,
            0.1,
            2.5e-7,
            1e20,
            1.0e300,
            -0.0,
            1.0 / 3.0
        ]);
        let text = canonical_json(&v);
        assert_eq!(text, serde_json::to_string(&v).unwrap());
        assert_eq!(
            canonical_json(&json!([150, 150.0, 0.1, 1e20, 2.5e-7])),
            "[150,150.0,0.1,1e+20,2.5e-7]"
        );
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(canonical_json(&back), text);
    }

    #[test]
    fn timestamps_have_milliseconds_and_z() {
        let ts = DateTime::parse_from_rfc3339("2026-11-22T11:00:00.123456+01:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_ts(ts), "2026-11-22T10:00:00.123Z");
        assert!(parse_canonical_ts("2026-11-22T10:00:00.123Z").is_some());
        assert!(parse_canonical_ts("2026-11-22T10:00:00Z").is_none());
        assert!(parse_canonical_ts("2026-11-22T11:00:00.123+01:00").is_none());
        assert!(parse_canonical_ts("yesterday").is_none());
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in EntryKind::ALL {
            assert_eq!(kind.as_str().parse::<EntryKind>(), Ok(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
        }
        assert!(!EntryKind::Transfer.is_derived());
        assert!(EntryKind::DemurrageSettled.is_derived());
    }

    #[test]
    fn documented_example_hash() {
        let entry = Entry {
            seq: 1,
            ts: DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            kind: EntryKind::MemberJoined,
            author: "config".into(),
            payload: json!({"roles": ["resident"], "name": "Alice"}),
            prev_hash: GENESIS_PREV_HASH.into(),
            hash: String::new(),
        };
        let bytes = String::from_utf8(entry.canonical_bytes()).unwrap();
        assert_eq!(
            bytes,
            r#"{"author":"config","kind":"member_joined","payload":{"name":"Alice","roles":["resident"]},"seq":1,"ts":"2026-11-22T10:00:00.000Z"}"#
        );
        assert_eq!(
            entry.computed_hash(),
            "b8a38fc5fea25536d0360ee7bdce9f66867867bf1a4e99a95739be8ecd44f722"
        );
    }
}
