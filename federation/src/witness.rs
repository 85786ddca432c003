//! Neighbours witnessing each other's journals (DESIGN.md §12).
//!
//! A node's journal is a transparency log: the leaves of an RFC 6962 Merkle tree
//! are its entries' hashes in order ([`merkle`]), and the node signs checkpoints
//! of it as C2SP signed notes ([`note`]), origin `communalia/<node id>`. The
//! witnesses named in `[federation] witnesses` are other nodes running the C2SP
//! `tlog-witness` protocol ([`witness_app`]): `POST /add-checkpoint` with the size
//! the client believes the witness last cosigned, a consistency proof from it,
//! and the new checkpoint. A witness cosigns only a checkpoint consistent with
//! the last one it cosigned for that log: a stale size is answered 409 with the
//! witness's size, a proof that does not hold 422. A node that rewrites its
//! journal can no longer prove its new tree extends the old one, and every
//! witness refuses it; `communalia ledger verify --witnesses` checks the
//! cosignatures of the latest witnessed checkpoint and that the journal still
//! has that tree as its prefix.

pub mod merkle;
pub mod note;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use self::merkle::Hash;
use self::note::{COSIGNATURE_V1, Checkpoint, ED25519, Note, Verifier};
use crate::identity::NodeKey;
use crate::{Error, Result};

/// The latest checkpoint with its cosignatures, in the node's data directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.note";
/// The size each witness last cosigned, as the node knows it.
pub const WITNESSED_FILE: &str = "witnessed.json";
/// A witness's memory of the logs it witnesses.
pub const WITNESS_STATE_FILE: &str = "witness-state.json";

/// The origin line of a node's checkpoints.
pub fn origin(node_id: &str) -> String {
    format!("communalia/{node_id}")
}

/// The verifier key of a node's checkpoints, as its witnesses configure it.
pub fn log_verifier(key: &NodeKey) -> Verifier {
    Verifier::new(&origin(key.node_id()), ED25519, key.public())
}

/// The verifier key of a node's cosignatures as a witness.
pub fn witness_verifier(key: &NodeKey) -> Verifier {
    Verifier::new(
        &format!("witness/{}", key.node_id()),
        COSIGNATURE_V1,
        key.public(),
    )
}

/// The leaves of the journal's tree: each entry's hash, in journal order.
pub fn journal_leaves(journal: &ledger::Journal) -> Result<Vec<Hash>> {
    let mut leaves = Vec::new();
    let mut after = 0;
    loop {
        let page = journal
            .entries(after, 1000)
            .map_err(|e| Error::Query(format!("journal: {e}")))?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for entry in &page {
            let bytes = hex::decode(&entry.hash).map_err(|e| {
                Error::Query(format!("journal entry {}: hash not hex: {e}", entry.seq))
            })?;
            leaves.push(merkle::leaf_hash(&bytes));
        }
    }
    Ok(leaves)
}

/// The node's signed checkpoint of `leaves`.
pub fn signed_checkpoint(key: &NodeKey, leaves: &[Hash]) -> Note {
    let checkpoint = Checkpoint {
        origin: origin(key.node_id()),
        size: leaves.len() as u64,
        root: merkle::root(leaves),
    };
    Note::sign(&checkpoint.body(), &checkpoint.origin, key)
}

/// The body of an `add-checkpoint` request.
pub fn add_checkpoint_body(old_size: u64, proof: &[Hash], note: &Note) -> String {
    let mut out = format!("old {old_size}\n");
    for h in proof {
        out.push_str(&B64.encode(h));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&note.text());
    out
}

/// What a witness remembers of each log: the size and root it last cosigned, and
/// the refusal it stands by, if the log's latest checkpoint was refused.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Seen {
    logs: BTreeMap<String, (u64, String)>,
    /// By origin; absent from states written before refusals were kept.
    #[serde(default)]
    refused: BTreeMap<String, StandingRefusal>,
}

/// A checkpoint a witness refused, signed by the log's own key, that did not
/// extend what it cosigned: the log was rewritten, or cut. It stands until the log
/// presents a checkpoint that does extend it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandingRefusal {
    /// The node whose journal it is (its origin without `communalia/`).
    pub node: String,
    /// The size of the refused checkpoint.
    pub size: u64,
    /// The size the witness last cosigned.
    pub cosigned: u64,
    /// 422 (no consistency proof from the cosigned tree) or 400 (smaller).
    pub status: u16,
    /// When it was refused, RFC 3339 to the second.
    pub at: String,
}

/// What a witness says of the logs it witnesses, signed with its node key and
/// published once a minute on `communalia.<witness>.witness` (core NATS: each
/// statement replaces the last, and the next one comes within a minute).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessStatement {
    /// The witness's node id.
    pub witness: String,
    /// When it was made, RFC 3339 to the second.
    pub at: String,
    /// Every refusal it stands by.
    pub refusals: Vec<StandingRefusal>,
}

/// What a statement's signature covers before its bytes.
pub const STATEMENT_CONTEXT: &[u8] = b"communalia-witness/v1\n";

/// `communalia.<witness>.witness`.
pub fn statement_subject(witness: &str) -> String {
    format!("communalia.{witness}.witness")
}

/// The subjects of every witness's statements.
pub const STATEMENT_SUBJECTS: &str = "communalia.*.witness";

impl WitnessStatement {
    /// The canonical bytes and their signature by `key`.
    pub fn sign(&self, key: &NodeKey) -> crate::summary::Signed {
        let value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        let payload = ledger::canonical_json(&value).into_bytes();
        let signature = key.sign(&[STATEMENT_CONTEXT, &payload].concat());
        crate::summary::Signed { payload, signature }
    }

    /// A received statement, checked: its subject names a known node, that
    /// node's key signed it, and it names that node as the witness.
    pub fn verify(
        subject: &str,
        payload: &[u8],
        signature: Option<&[u8]>,
        key_of: impl Fn(&str) -> Option<crate::identity::PublicKey>,
    ) -> std::result::Result<WitnessStatement, crate::summary::Refusal> {
        use crate::summary::Refusal;
        let node = subject
            .strip_prefix("communalia.")
            .and_then(|s| s.strip_suffix(".witness"))
            .ok_or_else(|| Refusal::Malformed(format!("unexpected subject `{subject}`")))?;
        let key = key_of(node).ok_or_else(|| Refusal::UnknownNode(node.to_string()))?;
        let signature = signature.ok_or(Refusal::NoSignature)?;
        if !key.verify(&[STATEMENT_CONTEXT, payload].concat(), signature) {
            return Err(Refusal::BadSignature(node.to_string()));
        }
        let statement: WitnessStatement =
            serde_json::from_slice(payload).map_err(|e| Refusal::Malformed(e.to_string()))?;
        if statement.witness != node {
            return Err(Refusal::WrongSubject {
                subject: subject.to_string(),
                node: statement.witness,
            });
        }
        Ok(statement)
    }
}

/// A witness: its key, the logs it witnesses, and what it cosigned of each.
pub struct Witness {
    key: Arc<NodeKey>,
    name: String,
    logs: BTreeMap<String, Verifier>,
    path: PathBuf,
    seen: Mutex<Seen>,
    clock: Arc<dyn crate::clock::Clock>,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Witness {
    /// A witness keeping its state in `dir`, for the logs whose verifier keys
    /// are `logs`.
    pub fn open(
        key: Arc<NodeKey>,
        logs: &[String],
        dir: &Path,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Result<Witness> {
        let mut by_origin = BTreeMap::new();
        for text in logs {
            let v = Verifier::parse(text)
                .map_err(|why| Error::Config(format!("key `federation.witness.logs`: {why}")))?;
            by_origin.insert(v.name.clone(), v);
        }
        let path = dir.join(WITNESS_STATE_FILE);
        let seen = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Key {
                path: path.clone(),
                why: format!("not a witness state: {e}"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Seen::default(),
            Err(e) => return Err(Error::io(&path, e)),
        };
        Ok(Witness {
            name: witness_verifier(&key).name,
            key,
            logs: by_origin,
            path,
            seen: Mutex::new(seen),
            clock,
        })
    }

    /// Its verifier key, for the logs' `[federation] witnesses`.
    pub fn verifier(&self) -> Verifier {
        witness_verifier(&self.key)
    }

    /// `add-checkpoint`: the status and the body of the answer.
    pub fn add_checkpoint(&self, request: &str) -> (StatusCode, String) {
        let Some((head, rest)) = request.split_once("\n\n") else {
            return (
                StatusCode::BAD_REQUEST,
                "no empty line after the proof".into(),
            );
        };
        let mut lines = head.lines();
        let Some(old) = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            return (
                StatusCode::BAD_REQUEST,
                "the first line is not `old <size>`".into(),
            );
        };
        let mut proof = Vec::new();
        for l in lines {
            match B64.decode(l).ok().and_then(|h| Hash::try_from(h).ok()) {
                Some(h) => proof.push(h),
                None => return (StatusCode::BAD_REQUEST, format!("`{l}` is not a hash")),
            }
        }
        let note = match Note::parse(rest) {
            Ok(n) => n,
            Err(why) => return (StatusCode::BAD_REQUEST, why),
        };
        let checkpoint = match Checkpoint::parse_body(&note.body) {
            Ok(c) => c,
            Err(why) => return (StatusCode::BAD_REQUEST, why),
        };
        let Some(log) = self.logs.get(&checkpoint.origin) else {
            return (
                StatusCode::NOT_FOUND,
                format!("unknown log `{}`", checkpoint.origin),
            );
        };
        if !note.signed_by(log) {
            return (
                StatusCode::FORBIDDEN,
                "the checkpoint is not signed by the log's key".into(),
            );
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let (size, root) = match seen.logs.get(&checkpoint.origin) {
            Some((size, root)) => {
                match B64.decode(root).ok().and_then(|r| Hash::try_from(r).ok()) {
                    Some(root) => (*size, root),
                    None => {
                        return (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "witness state damaged".into(),
                        );
                    }
                }
            }
            None => (0, merkle::root(&[])),
        };
        if old != size {
            // tlog-witness: the client's idea of our size is stale; tell it ours.
            tracing::info!(log = %checkpoint.origin, old, ours = size, "witness: stale size");
            return (StatusCode::CONFLICT, format!("{size}\n"));
        }
        // From here the checkpoint is the log's own, signed by its key: a refusal
        // says something of the log, and is kept to be said to the region.
        let refuse = |seen: &mut Seen, status: StatusCode, why: String| {
            let refusal = StandingRefusal {
                node: checkpoint
                    .origin
                    .strip_prefix("communalia/")
                    .unwrap_or(&checkpoint.origin)
                    .to_string(),
                size: checkpoint.size,
                cosigned: size,
                status: status.as_u16(),
                at: crate::summary::rfc3339(self.clock.now()),
            };
            seen.refused.insert(checkpoint.origin.clone(), refusal);
            if let Err(e) = self.save(seen) {
                tracing::error!(error = %e, "witness: cannot keep its state");
            }
            (status, why)
        };
        if checkpoint.size < size {
            return refuse(
                &mut seen,
                StatusCode::BAD_REQUEST,
                "the checkpoint is older than the one cosigned".into(),
            );
        }
        if !merkle::verify_consistency(size, checkpoint.size, &root, &checkpoint.root, &proof) {
            tracing::warn!(log = %checkpoint.origin, from = size, to = checkpoint.size, "witness: inconsistent checkpoint refused (rewritten log?)");
            return refuse(
                &mut seen,
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "checkpoint {} does not extend the {size} entries cosigned before",
                    checkpoint.size
                ),
            );
        }
        seen.logs.insert(
            checkpoint.origin.clone(),
            (checkpoint.size, B64.encode(checkpoint.root)),
        );
        seen.refused.remove(&checkpoint.origin);
        if let Err(e) = self.save(&seen) {
            tracing::error!(error = %e, "witness: cannot keep its state");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot keep the witness's state".into(),
            );
        }
        let time = self.clock.now().timestamp().max(0) as u64;
        let (name, sig) = note::cosign(&note.body, &self.name, &self.key, time);
        (StatusCode::OK, note::signature_line(&name, &sig))
    }

    /// The refusals it stands by: logs whose latest checkpoint it refused.
    pub fn refusals(&self) -> Vec<StandingRefusal> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.refused.values().cloned().collect()
    }

    /// Its statement now, signed.
    pub fn statement(&self) -> (WitnessStatement, crate::summary::Signed) {
        let statement = WitnessStatement {
            witness: self.key.node_id().to_string(),
            at: crate::summary::rfc3339(self.clock.now()),
            refusals: self.refusals(),
        };
        let signed = statement.sign(&self.key);
        (statement, signed)
    }

    fn save(&self, seen: &Seen) -> Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(seen).map_err(|e| Error::Config(e.to_string()))?;
        std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::io(&self.path, e))
    }
}

/// Publishes `witness`'s signed statement on core NATS now and every `every`,
/// until `cancel`; a failed publish is logged and made again at the next turn.
pub async fn announce(
    client: async_nats::Client,
    witness: Arc<Witness>,
    every: std::time::Duration,
    cancel: tokio_util::sync::CancellationToken,
) {
    loop {
        let (statement, signed) = witness.statement();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            crate::publish::SIGNATURE_HEADER,
            B64.encode(signed.signature).as_str(),
        );
        let subject = statement_subject(&statement.witness);
        if let Err(e) = client
            .publish_with_headers(subject, headers, signed.payload.into())
            .await
        {
            tracing::warn!(error = %e, "witness: statement not published");
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// The witness's routes: `POST /add-checkpoint` (C2SP tlog-witness).
pub fn witness_app(witness: Arc<Witness>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .with_state(witness)
}

async fn add_checkpoint(State(w): State<Arc<Witness>>, body: String) -> Response {
    let (status, text) = w.add_checkpoint(&body);
    let kind = if status == StatusCode::CONFLICT {
        "text/x.tlog.size"
    } else {
        "text/plain; charset=utf-8"
    };
    (status, [(CONTENT_TYPE, kind)], text).into_response()
}

/// What one witness answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Cosigned,
    Refused { status: u16, reason: String },
    Unreachable(String),
}

/// Asks every witness to cosign `note` (the checkpoint of `leaves`), keeping the
/// size each cosigned in `dir`; saves the note with the cosignatures it got as
/// the latest checkpoint when at least one cosigned. Returns each answer.
pub async fn collect_cosignatures(
    http: &reqwest::Client,
    witnesses: &[crate::config::WitnessPeer],
    mut note: Note,
    leaves: &[Hash],
    dir: &Path,
) -> Result<Vec<(String, Answer)>> {
    let sizes_path = dir.join(WITNESSED_FILE);
    let mut sizes: BTreeMap<String, u64> = match std::fs::read(&sizes_path) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
        Err(_) => BTreeMap::new(),
    };
    let size = leaves.len() as u64;
    let mut answers = Vec::new();
    for w in witnesses {
        let verifier = Verifier::parse(&w.key)
            .map_err(|why| Error::Config(format!("key `federation.witnesses`: {why}")))?;
        let url = format!("{}/add-checkpoint", w.url.trim_end_matches('/'));
        let mut old = sizes.get(&w.url).copied().unwrap_or(0).min(size);
        let mut answer = Answer::Unreachable(String::new());
        // At most one retry, after a 409 told us the witness's size.
        for _ in 0..2 {
            let proof = merkle::consistency_proof(leaves, old as usize);
            let body = add_checkpoint_body(old, &proof, &note);
            let response = match http.post(&url).body(body).send().await {
                Ok(r) => r,
                Err(e) => {
                    answer = Answer::Unreachable(e.to_string());
                    break;
                }
            };
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            if status == 200 {
                let parsed = Note::parse(&format!("{}\n{text}", note.text()));
                let cosig = parsed
                    .ok()
                    .and_then(|p| p.signatures.last().cloned())
                    .filter(|(name, _)| name == &verifier.name);
                let mut with = note.clone();
                if let Some(sig) = cosig {
                    with.signatures.push(sig);
                }
                if with.cosigned_by(&verifier).is_some() {
                    note = with;
                    sizes.insert(w.url.clone(), size);
                    answer = Answer::Cosigned;
                } else {
                    answer = Answer::Refused {
                        status,
                        reason: "the cosignature does not verify with the witness's key".into(),
                    };
                }
                break;
            }
            if status == 409
                && let Ok(theirs) = text.trim().parse::<u64>()
                && theirs != old
                && theirs <= size
            {
                old = theirs;
                answer = Answer::Refused {
                    status,
                    reason: text.trim().to_string(),
                };
                continue;
            }
            answer = Answer::Refused {
                status,
                reason: text.trim().to_string(),
            };
            break;
        }
        answers.push((w.url.clone(), answer));
    }
    let bytes = serde_json::to_vec(&sizes).map_err(|e| Error::Config(e.to_string()))?;
    std::fs::write(&sizes_path, bytes).map_err(|e| Error::io(&sizes_path, e))?;
    if answers.iter().any(|(_, a)| *a == Answer::Cosigned) {
        let path = dir.join(CHECKPOINT_FILE);
        std::fs::write(&path, note.text()).map_err(|e| Error::io(&path, e))?;
    }
    Ok(answers)
}

/// What `ledger verify --witnesses` finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessReport {
    pub size: u64,
    /// The node's own signature on the checkpoint holds.
    pub signed: bool,
    /// The journal's first `size` entries still have the checkpoint's root.
    pub journal_matches: bool,
    /// Witnesses whose cosignature holds, and those without one.
    pub cosigned: Vec<String>,
    pub missing: Vec<String>,
}

impl WitnessReport {
    pub fn ok(&self) -> bool {
        self.signed && self.journal_matches && self.missing.is_empty()
    }
}

/// Checks the latest witnessed checkpoint (`note_text`) against the node's key,
/// each configured witness's key, and the journal's `leaves`.
pub fn verify_witnessed(
    note_text: &str,
    key: &NodeKey,
    witnesses: &[crate::config::WitnessPeer],
    leaves: &[Hash],
) -> Result<WitnessReport> {
    let note =
        Note::parse(note_text).map_err(|why| Error::Config(format!("{CHECKPOINT_FILE}: {why}")))?;
    let checkpoint = Checkpoint::parse_body(&note.body)
        .map_err(|why| Error::Config(format!("{CHECKPOINT_FILE}: {why}")))?;
    let signed = note.signed_by(&log_verifier(key));
    let journal_matches = usize::try_from(checkpoint.size)
        .ok()
        .filter(|n| *n <= leaves.len())
        .is_some_and(|n| merkle::root(&leaves[..n]) == checkpoint.root);
    let mut cosigned = Vec::new();
    let mut missing = Vec::new();
    for w in witnesses {
        let v = Verifier::parse(&w.key)
            .map_err(|why| Error::Config(format!("key `federation.witnesses`: {why}")))?;
        if note.cosigned_by(&v).is_some() {
            cosigned.push(v.name);
        } else {
            missing.push(v.name);
        }
    }
    Ok(WitnessReport {
        size: checkpoint.size,
        signed,
        journal_matches,
        cosigned,
        missing,
    })
}
