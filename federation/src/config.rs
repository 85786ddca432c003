//! The `[federation]` section of a node's configuration and the region's own file
//! (`region.toml`), DESIGN.md §12. Unknown keys are refused.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sensors::config::humantime_secs;
use serde::Deserialize;

use crate::{Error, Result};

/// `[federation]`: what this node shares, where, and who witnesses its journal.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    /// The node's id on the federation; derived from its public key when absent.
    #[serde(default)]
    pub node_id: Option<String>,
    /// The federation's NATS servers (`nats://host:4222`, `tls://…`); the live
    /// summary is not published when empty.
    #[serde(default)]
    pub nats: Vec<String>,
    /// A NATS `.creds` file (JWT and nkey seed) the federation gave this node.
    #[serde(default)]
    pub credentials: Option<PathBuf>,
    #[serde(default)]
    pub stream: StreamConfig,
    /// How often the node looks at the clock to publish; a summary is published
    /// once per minute whatever this is (shorter in tests).
    #[serde(default = "default_publish_interval", with = "humantime_secs")]
    pub publish_interval: Duration,
    /// How far back missed minutes are resent from the history after an outage.
    #[serde(default = "default_catch_up", with = "humantime_secs")]
    pub catch_up: Duration,
    /// How long to wait for JetStream to acknowledge a summary.
    #[serde(default = "default_ack_timeout", with = "humantime_secs")]
    pub ack_timeout: Duration,
    /// How often the node pings its NATS server: a link that died without a word
    /// (a cable pulled, a NAT forgetting the connection) is noticed after two
    /// unanswered pings, and the client moves to another server of the cluster.
    #[serde(default = "default_ping_interval", with = "humantime_secs")]
    pub ping_interval: Duration,
    /// The bucket where the node archives its daily summaries.
    #[serde(default)]
    pub s3: Option<S3Config>,
    /// Neighbours who cosign this node's journal checkpoints.
    #[serde(default)]
    pub witnesses: Vec<WitnessPeer>,
    /// How often `communalia run` signs a checkpoint of its journal and asks
    /// `witnesses` to cosign it (at start, then at this interval; at least a minute).
    #[serde(default = "default_checkpoint_every", with = "humantime_secs")]
    pub checkpoint_every: Duration,
    /// This node witnessing its neighbours' journals.
    #[serde(default)]
    pub witness: Option<WitnessServerConfig>,
}

fn default_publish_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_checkpoint_every() -> Duration {
    Duration::from_secs(3600)
}

fn default_catch_up() -> Duration {
    Duration::from_secs(24 * 3600)
}

/// The NATS client's own default is two minutes: a silent partition would hold a
/// node on a dead server for four.
pub fn default_ping_interval() -> Duration {
    Duration::from_secs(10)
}

fn default_ack_timeout() -> Duration {
    Duration::from_secs(5)
}

/// The JetStream stream the summaries go to. A node creates it when it does not
/// exist yet (the federation usually has, with its own replication).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    #[serde(default = "default_stream")]
    pub name: String,
    /// Replicas when the node creates the stream (3 on a federation's cluster).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// JetStream's de-duplication window: a summary resent within it (same
    /// `Nats-Msg-Id`) is stored once. It must cover the longest redelivery.
    #[serde(default = "default_duplicate_window", with = "humantime_secs")]
    pub duplicate_window: Duration,
    /// How long the stream keeps summaries.
    #[serde(default = "default_max_age", with = "humantime_secs")]
    pub max_age: Duration,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            name: default_stream(),
            replicas: default_replicas(),
            duplicate_window: default_duplicate_window(),
            max_age: default_max_age(),
        }
    }
}

fn default_stream() -> String {
    "COMMUNALIA".to_string()
}

fn default_replicas() -> usize {
    1
}

fn default_duplicate_window() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_max_age() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

/// An S3-compatible bucket (Garage in production; any S3 works).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// `https://garage.example.org:3900`; `http://` is allowed for a store on the
    /// same host or network.
    pub endpoint: String,
    pub bucket: String,
    #[serde(default = "default_region")]
    pub region: String,
    /// A file holding the access key id.
    pub access_key_file: PathBuf,
    /// A file holding the secret key (never the secret itself in the configuration).
    pub secret_key_file: PathBuf,
}

fn default_region() -> String {
    "garage".to_string()
}

impl S3Config {
    /// The access key id and secret, read from their files.
    pub fn credentials(&self) -> Result<(String, String)> {
        let read = |path: &Path| -> Result<String> {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            let text = text.trim().to_string();
            if text.is_empty() {
                return Err(Error::Config(format!("{} is empty", path.display())));
            }
            Ok(text)
        };
        Ok((read(&self.access_key_file)?, read(&self.secret_key_file)?))
    }
}

/// A neighbour who witnesses this node's journal.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessPeer {
    /// Its witness endpoint, `http://host:port` (the `add-checkpoint` path is added).
    pub url: String,
    /// Its verifier key, `name+hex+base64` (C2SP signed-note).
    pub key: String,
}

/// This node as a witness of its neighbours.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessServerConfig {
    pub bind: SocketAddr,
    /// The logs it witnesses: each neighbour's verifier key.
    #[serde(default)]
    pub logs: Vec<String>,
}

/// `region.toml`: the region's view of its nodes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionFile {
    pub region: RegionConfig,
    #[serde(default, rename = "node")]
    pub nodes: Vec<RegionNode>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    pub name: String,
    #[serde(default = "default_language")]
    pub language: String,
    #[serde(default = "default_timezone")]
    pub timezone: chrono_tz::Tz,
    #[serde(default = "default_region_bind")]
    pub bind: SocketAddr,
    pub nats: Vec<String>,
    #[serde(default)]
    pub credentials: Option<PathBuf>,
    #[serde(default = "default_stream")]
    pub stream: String,
    /// The durable consumer's name: the stream remembers how far it has read.
    #[serde(default = "default_consumer")]
    pub consumer: String,
    /// A node whose latest summary is older than this is shown as stale.
    #[serde(default = "default_stale_after", with = "humantime_secs")]
    pub stale_after: Duration,
    #[serde(default)]
    pub s3: Option<S3Config>,
    /// Whether the region compacts the nodes' archived days into its own monthly
    /// files of quarter hours on the bucket (`regions/<consumer>/`), which its
    /// history then reads. Without (`false`), the history reads the nodes' daily
    /// files: slow past a few thousand of them, but the region needs only read
    /// access to the bucket.
    #[serde(default = "default_compact")]
    pub compact: bool,
    /// How often it looks for newly archived days.
    #[serde(default = "default_compact_every", with = "humantime_secs")]
    pub compact_every: Duration,
}

fn default_compact() -> bool {
    true
}

fn default_compact_every() -> Duration {
    Duration::from_secs(600)
}

fn default_language() -> String {
    "fr".to_string()
}

fn default_timezone() -> chrono_tz::Tz {
    chrono_tz::Europe::Paris
}

fn default_region_bind() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8090))
}

fn default_consumer() -> String {
    "region".to_string()
}

fn default_stale_after() -> Duration {
    Duration::from_secs(180)
}

/// A node the region knows, and the key its summaries must be signed with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionNode {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// The node's public key, as `communalia federation show` prints it.
    pub key: String,
}

impl RegionFile {
    /// Reads and checks `region.toml`; errors name the file, and the line where
    /// the TOML parser knows it.
    pub fn load(path: &Path) -> Result<RegionFile> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, source: &str) -> Result<RegionFile> {
        let file: RegionFile =
            toml::from_str(text).map_err(|e| Error::Config(format!("{source}: {e}")))?;
        if file.region.nats.is_empty() {
            return Err(Error::Config(format!(
                "{source}: key `region.nats`: no NATS server to read the summaries from"
            )));
        }
        if dashboards::Lang::from_tag(&file.region.language).is_none() {
            return Err(Error::Config(format!(
                "{source}: key `region.language`: `{}` is neither fr nor en",
                file.region.language
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for n in &file.nodes {
            if !crate::identity::valid_node_id(&n.id) {
                return Err(Error::Config(format!(
                    "{source}: [[node]] `{}`: not a node id (lowercase letters, digits and `-`)",
                    n.id
                )));
            }
            if !seen.insert(n.id.as_str()) {
                return Err(Error::Config(format!(
                    "{source}: [[node]] `{}` is listed twice",
                    n.id
                )));
            }
            if let Err(why) = crate::identity::PublicKey::parse(&n.key) {
                return Err(Error::Config(format!(
                    "{source}: key `key` of [[node]] `{}`: {why}",
                    n.id
                )));
            }
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGION: &str = r#"
[region]
name = "Vallée"
nats = ["nats://127.0.0.1:4222"]

[[node]]
id = "les-tilleuls"
key = "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik="
"#;

    #[test]
    fn a_region_file_loads_with_defaults() {
        let f = RegionFile::parse(REGION, "region.toml").expect("valid");
        assert_eq!(f.region.stream, "COMMUNALIA");
        assert_eq!(f.region.consumer, "region");
        assert_eq!(f.region.stale_after, Duration::from_secs(180));
        assert_eq!(f.nodes.len(), 1);
        assert!(f.region.compact, "a region compacts its history by default");
        assert_eq!(f.region.compact_every, Duration::from_secs(600));
        let off = REGION.replace(
            "nats = [",
            "compact = false\ncompact_every = \"1h\"\nnats = [",
        );
        let f = RegionFile::parse(&off, "region.toml").expect("valid");
        assert!(!f.region.compact);
        assert_eq!(f.region.compact_every, Duration::from_secs(3600));
        let never = REGION.replace("nats = [", "compact_every = \"0s\"\nnats = [");
        let err = RegionFile::parse(&never, "region.toml").expect_err("zero");
        assert!(err.to_string().contains("positive"), "{err}");
    }

    #[test]
    fn a_bad_node_key_or_unknown_key_is_named() {
        let bad = REGION.replace("O2onvM62", "xx");
        let err = RegionFile::parse(&bad, "region.toml")
            .expect_err("bad key")
            .to_string();
        assert!(err.contains("les-tilleuls") && err.contains("key"), "{err}");
        let unknown = REGION.replace("name = \"Vallée\"", "name = \"Vallée\"\ncolour = 1");
        let err = RegionFile::parse(&unknown, "region.toml")
            .expect_err("unknown")
            .to_string();
        assert!(err.contains("colour") && err.contains("line 4"), "{err}");
    }

    #[test]
    fn the_federation_section_has_its_defaults() {
        let c: FederationConfig = toml::from_str("nats = [\"nats://a:4222\"]").expect("valid");
        assert_eq!(c.stream.name, "COMMUNALIA");
        assert_eq!(c.publish_interval, Duration::from_secs(60));
        assert!(c.s3.is_none());
        let err = toml::from_str::<FederationConfig>("nat = []").expect_err("unknown");
        assert!(err.to_string().contains("nat"), "{err}");
    }
}
