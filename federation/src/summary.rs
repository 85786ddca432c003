//! The public summary a node publishes once a minute, its canonical bytes and its
//! signature.
//!
//! A summary holds community totals only: the site's production, consumption,
//! surplus, grid and battery, how many services were served, partly served and
//! shed, and the week's validated hours. It is made from the *public* view of a
//! live snapshot ([`Summary::from_live`]) or from the history's one-minute rollups
//! ([`crate::source`]), never from a household's meter on its own.
//!
//! On the wire the payload *is* the canonical bytes (JSON, keys sorted, no
//! spaces; see [`ledger::canonical_json`]) and the signature travels beside it, so
//! that a reader checks exactly the bytes it received: Ed25519 over
//! `communalia-summary/v1\n` followed by the payload.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use query::live::{LiveSnapshot, ServiceState};
use serde::{Deserialize, Serialize};

use crate::identity::{NodeKey, PublicKey};

/// What a summary's signature covers before the payload: the kind of message and
/// its version, so that no other signed message of the node can pass for one.
pub const SIGNATURE_CONTEXT: &[u8] = b"communalia-summary/v1\n";

/// Where a summary's figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The live snapshot at the time of publishing.
    Live,
    /// The minute's rollups in the history (a minute resent after an outage).
    History,
}

/// How many services were in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCounts {
    pub served: u32,
    pub partial: u32,
    pub shed: u32,
}

/// One node's public summary of one minute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub node: String,
    /// The start of the minute summarised (UTC, whole minute).
    #[serde(with = "minute_text")]
    pub minute: DateTime<Utc>,
    pub origin: Origin,
    /// The node had no recent readings: its figures should not be acted on.
    pub stale: bool,
    /// PV production.
    pub production_w: f64,
    /// What the site used (metered loads and what flows to unmetered ones).
    pub consumption_w: f64,
    /// Production minus consumption: positive when the sun gives more than is used.
    pub surplus_w: f64,
    /// Grid import (negative: export).
    pub grid_w: f64,
    /// Battery discharge (negative: charging).
    pub battery_w: f64,
    pub battery_soc_pct: Option<f64>,
    pub services: ServiceCounts,
    /// Hours of contributions validated since Monday, when known.
    pub week_hours: Option<f64>,
    /// The open needs and offers its members chose to share with the
    /// federation; absent when there are none (so a summary without any keeps the
    /// bytes, and the signature, it had before they existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intents: Vec<PublicIntent>,
}

/// An open need or offer shared with the federation, as a summary carries it:
/// what is asked or offered, never who asked it (the node is the contact).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublicIntent {
    /// Its id on its node.
    pub id: i64,
    /// `need` or `offer`.
    pub direction: String,
    /// `work`, `use` or `give`.
    pub action: String,
    pub class: String,
    /// What remains to be committed, in `unit`.
    pub remaining: f64,
    /// `hours`, `kwh`, `kg` or `items`.
    pub unit: String,
    /// RFC 3339, when set.
    pub window_start: Option<String>,
    pub window_end: Option<String>,
    pub expires_at: Option<String>,
    pub description: String,
    /// A need of the whole community.
    pub collective: bool,
}

impl PublicIntent {
    /// The shareable part of `intent`, or `None` when it is not open, not shared
    /// with the federation, or has nothing left to commit.
    pub fn of(intent: &ledger::Intent) -> Option<PublicIntent> {
        let shared = intent.visibility == ledger::Visibility::Federation
            && intent.state == ledger::IntentState::Open
            && intent.remaining > ledger::Quantity::ZERO;
        shared.then(|| PublicIntent {
            id: intent.id,
            direction: intent.direction.as_str().to_string(),
            action: intent.action.as_str().to_string(),
            class: intent.class.clone(),
            remaining: intent.remaining.as_f64(),
            unit: intent.unit.as_str().to_string(),
            window_start: intent.window_start.map(rfc3339),
            window_end: intent.window_end.map(rfc3339),
            expires_at: intent.expires_at.map(rfc3339),
            description: intent.description.clone(),
            collective: intent.collective,
        })
    }
}

/// The minute a time falls in, as a whole minute.
pub fn minute_of(t: DateTime<Utc>) -> DateTime<Utc> {
    let secs = t.timestamp().div_euclid(60) * 60;
    Utc.timestamp_opt(secs, 0).single().unwrap_or(t)
}

/// A minute as the summaries and message ids write it: `2026-06-01T12:34Z`.
pub fn minute_label(minute: DateTime<Utc>) -> String {
    minute.format("%Y-%m-%dT%H:%MZ").to_string()
}

mod minute_text {
    use chrono::{DateTime, NaiveDateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::minute_label(*t))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%MZ")
            .map(|t| t.and_utc())
            .map_err(|_| {
                serde::de::Error::custom(format!("`{text}` is not a minute like 2026-06-01T12:34Z"))
            })
    }
}

/// Watts to a tenth: the summary says what a meter says, and the same figure
/// always gives the same bytes.
fn tenth(w: f64) -> f64 {
    let r = (w * 10.0).round() / 10.0;
    // -0.0 and 0.0 would write differently.
    if r == 0.0 { 0.0 } else { r }
}

impl Summary {
    /// The summary of `minute` from the public view of a live snapshot (the
    /// caller's `AppState.live`: community devices and totals only).
    pub fn from_live(
        node: &str,
        minute: DateTime<Utc>,
        public: &LiveSnapshot,
        week_hours: Option<f64>,
    ) -> Summary {
        let site = &public.site;
        let mut services = ServiceCounts::default();
        for s in &public.services {
            match s.state {
                ServiceState::Served => services.served += 1,
                ServiceState::Partial => services.partial += 1,
                ServiceState::Shed => services.shed += 1,
                ServiceState::Idle => {}
            }
        }
        Summary {
            node: node.to_string(),
            minute: minute_of(minute),
            origin: Origin::Live,
            stale: public.stale,
            production_w: site.pv_w,
            consumption_w: site.load_w + site.unmetered_w,
            surplus_w: site.surplus_w,
            grid_w: site.grid_w,
            battery_w: site.battery_w,
            battery_soc_pct: site.battery_soc_pct,
            services,
            week_hours,
            intents: Vec::new(),
        }
        .rounded()
    }

    /// Every figure to a tenth.
    pub(crate) fn rounded(mut self) -> Summary {
        self.production_w = tenth(self.production_w);
        self.consumption_w = tenth(self.consumption_w);
        self.surplus_w = tenth(self.surplus_w);
        self.grid_w = tenth(self.grid_w);
        self.battery_w = tenth(self.battery_w);
        self.battery_soc_pct = self.battery_soc_pct.map(tenth);
        self.week_hours = self.week_hours.map(|h| (h * 100.0).round() / 100.0);
        self
    }

    /// The canonical bytes: what is published and what the signature covers.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        ledger::canonical_json(&value).into_bytes()
    }

    /// The `Nats-Msg-Id` of this summary: `<node>/<minute>`.
    pub fn msg_id(&self) -> String {
        format!("{}/{}", self.node, minute_label(self.minute))
    }

    /// The subject it is published on.
    pub fn subject(&self) -> String {
        subject(&self.node)
    }

    /// Signs the summary with the node's key.
    pub fn sign(&self, key: &NodeKey) -> Signed {
        let payload = self.canonical_bytes();
        let signature = key.sign(&signed_message(&payload));
        Signed { payload, signature }
    }
}

/// `communalia.<node>.summary`.
pub fn subject(node: &str) -> String {
    format!("communalia.{node}.summary")
}

fn signed_message(payload: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNATURE_CONTEXT.len() + payload.len());
    message.extend_from_slice(SIGNATURE_CONTEXT);
    message.extend_from_slice(payload);
    message
}

/// A summary's bytes and its signature.
#[derive(Debug, Clone, PartialEq)]
pub struct Signed {
    pub payload: Vec<u8>,
    pub signature: [u8; 64],
}

/// Why a received summary was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no key is known for node `{0}`")]
    UnknownNode(String),
    #[error("the signature is missing or malformed")]
    NoSignature,
    #[error("the signature does not match node `{0}`'s key")]
    BadSignature(String),
    #[error("the payload is not a summary: {0}")]
    Malformed(String),
    #[error("published on `{subject}` but signed as node `{node}`")]
    WrongSubject { subject: String, node: String },
}

impl Refusal {
    /// A stable word for counting refusals by reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::UnknownNode(_) => "unknown_node",
            Refusal::NoSignature => "no_signature",
            Refusal::BadSignature(_) => "bad_signature",
            Refusal::Malformed(_) => "malformed",
            Refusal::WrongSubject { .. } => "wrong_subject",
        }
    }
}

/// Checks a received summary: the node named by the subject must be known, the
/// signature must be its key's over exactly `payload`, and the payload must be a
/// summary of that node.
pub fn verify(
    subject_name: &str,
    payload: &[u8],
    signature: Option<&[u8]>,
    key_of: impl Fn(&str) -> Option<PublicKey>,
) -> Result<Summary, Refusal> {
    let node = subject_name
        .strip_prefix("communalia.")
        .and_then(|s| s.strip_suffix(".summary"))
        .ok_or_else(|| Refusal::Malformed(format!("unexpected subject `{subject_name}`")))?;
    let key = key_of(node).ok_or_else(|| Refusal::UnknownNode(node.to_string()))?;
    let signature = signature.ok_or(Refusal::NoSignature)?;
    if !key.verify(&signed_message(payload), signature) {
        return Err(Refusal::BadSignature(node.to_string()));
    }
    let summary: Summary =
        serde_json::from_slice(payload).map_err(|e| Refusal::Malformed(e.to_string()))?;
    if summary.node != node {
        return Err(Refusal::WrongSubject {
            subject: subject_name.to_string(),
            node: summary.node,
        });
    }
    Ok(summary)
}

/// RFC 3339 of a time, to the second.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(node: &str) -> Summary {
        Summary {
            node: node.to_string(),
            minute: Utc
                .with_ymd_and_hms(2026, 6, 1, 12, 34, 0)
                .single()
                .expect("time"),
            origin: Origin::Live,
            stale: false,
            production_w: 5200.0,
            consumption_w: 3100.0,
            surplus_w: 2100.0,
            grid_w: -1500.0,
            battery_w: -600.0,
            battery_soc_pct: Some(64.5),
            services: ServiceCounts {
                served: 3,
                partial: 1,
                shed: 0,
            },
            week_hours: Some(12.5),
            intents: Vec::new(),
        }
    }

    #[test]
    fn the_canonical_bytes_are_sorted_compact_json() {
        let bytes = sample("a").canonical_bytes();
        let text = String::from_utf8(bytes).expect("utf-8");
        // Written by hand: keys in byte order, no spaces, the minute as a label.
        assert_eq!(
            text,
            "{\"battery_soc_pct\":64.5,\"battery_w\":-600.0,\"consumption_w\":3100.0,\
             \"grid_w\":-1500.0,\"minute\":\"2026-06-01T12:34Z\",\"node\":\"a\",\
             \"origin\":\"live\",\"production_w\":5200.0,\"services\":{\"partial\":1,\
             \"served\":3,\"shed\":0},\"stale\":false,\"surplus_w\":2100.0,\"week_hours\":12.5}"
        );
        assert_eq!(sample("a").msg_id(), "a/2026-06-01T12:34Z");
    }

    #[test]
    fn a_summary_verifies_with_its_nodes_key_only() {
        let key = NodeKey::from_seed([3; 32], Some("a")).expect("key");
        let forger = NodeKey::from_seed([4; 32], Some("a")).expect("key");
        let signed = sample("a").sign(&key);
        let known = |node: &str| (node == "a").then(|| key.public());
        let got = verify(
            "communalia.a.summary",
            &signed.payload,
            Some(&signed.signature),
            known,
        )
        .expect("valid");
        assert_eq!(got, sample("a"));

        let forged = sample("a").sign(&forger);
        assert_eq!(
            verify(
                "communalia.a.summary",
                &forged.payload,
                Some(&forged.signature),
                known
            ),
            Err(Refusal::BadSignature("a".into()))
        );
        // One byte changed after signing.
        let mut tampered = signed.payload.clone();
        let at = tampered.len() - 3;
        tampered[at] = b'9';
        assert!(matches!(
            verify(
                "communalia.a.summary",
                &tampered,
                Some(&signed.signature),
                known
            ),
            Err(Refusal::BadSignature(_))
        ));
        assert_eq!(
            verify(
                "communalia.b.summary",
                &signed.payload,
                Some(&signed.signature),
                known
            ),
            Err(Refusal::UnknownNode("b".into()))
        );
        assert_eq!(
            verify("communalia.a.summary", &signed.payload, None, known),
            Err(Refusal::NoSignature)
        );
    }

    #[test]
    fn a_summary_signed_as_another_node_is_refused() {
        // Node b's key signs a summary claiming to be node a's, sent on b's subject.
        let b = NodeKey::from_seed([5; 32], Some("b")).expect("key");
        let signed = sample("a").sign(&b);
        let known = |node: &str| (node == "b").then(|| b.public());
        assert!(matches!(
            verify(
                "communalia.b.summary",
                &signed.payload,
                Some(&signed.signature),
                known
            ),
            Err(Refusal::WrongSubject { .. })
        ));
    }

    #[test]
    fn a_live_snapshot_gives_community_totals() {
        let mut snap = query::engine::empty_snapshot(
            Utc.with_ymd_and_hms(2026, 6, 1, 12, 34, 27)
                .single()
                .expect("time"),
        );
        snap.site.pv_w = 4000.04;
        snap.site.load_w = 2500.0;
        snap.site.unmetered_w = 300.0;
        snap.site.surplus_w = 1200.0;
        snap.site.grid_w = -1200.0;
        let s = Summary::from_live("a", snap.ts, &snap, None);
        assert_eq!(
            s.minute,
            Utc.with_ymd_and_hms(2026, 6, 1, 12, 34, 0)
                .single()
                .expect("t")
        );
        assert_eq!(s.production_w, 4000.0);
        assert_eq!(s.consumption_w, 2800.0);
        assert_eq!(s.surplus_w, 1200.0);
    }
}
