//! The `[mqtt]` and `[storage]` sections of the configuration (DESIGN.md §8).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `embedded` (the node runs its own broker), `mqtt://host:port`, or
    /// `mqtts://host:port` (TLS, port 8883 when none is given).
    #[serde(default = "default_broker")]
    pub broker: String,
    /// Where the embedded broker listens.
    #[serde(default = "default_embedded_bind")]
    pub embedded_bind: SocketAddr,
    /// How much of the latest messages the embedded broker keeps for each
    /// subscription, in KiB: what a subscriber that falls behind (the node while
    /// its log cannot be written, away for a restart) can still be sent. The
    /// broker holds this in memory for every topic filter subscribed, delivered or
    /// not, so it is also the broker's steady memory per filter.
    #[serde(default = "default_embedded_backlog_kib")]
    pub embedded_backlog_kib: u32,
    /// The node's own account on the broker (on the embedded broker too, when it
    /// has accounts; without it the node makes itself one at each start).
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Client id the node uses (default `communalia-<site>`); must be unique on the broker.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Accounts on the embedded broker (devices may also carry their own in their
    /// `mqtt`). With none, the embedded broker only listens on loopback.
    #[serde(default)]
    pub users: Vec<MqttUser>,
    /// With `mqtts://`: the PEM file of the authority (or authorities) that signed
    /// the broker's certificate, e.g. a site's own CA; without it, the system's
    /// trusted authorities.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// One account on the embedded broker: `users = [{ name = "…", password = "…" }]`.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MqttUser {
    pub name: String,
    pub password: String,
}

impl std::fmt::Debug for MqttUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttUser")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            broker: default_broker(),
            embedded_bind: default_embedded_bind(),
            embedded_backlog_kib: default_embedded_backlog_kib(),
            username: None,
            password: None,
            client_id: None,
            users: Vec::new(),
            ca_file: None,
        }
    }
}

fn default_broker() -> String {
    "embedded".to_string()
}

fn default_embedded_backlog_kib() -> u32 {
    crate::broker::DEFAULT_BACKLOG_KIB
}

fn default_embedded_bind() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1883))
}

/// Where the node's MQTT client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerEndpoint {
    Embedded(SocketAddr),
    External {
        host: String,
        port: u16,
    },
    /// `mqtts://`: over TLS, the broker's certificate checked against `ca_file`'s
    /// authorities (the system's when none) and the host name.
    ExternalTls {
        host: String,
        port: u16,
        ca_file: Option<PathBuf>,
    },
}

impl BrokerEndpoint {
    pub fn host_port(&self) -> (String, u16) {
        match self {
            BrokerEndpoint::Embedded(a) => (a.ip().to_string(), a.port()),
            BrokerEndpoint::External { host, port } => (host.clone(), *port),
            BrokerEndpoint::ExternalTls { host, port, .. } => (host.clone(), *port),
        }
    }
}

impl MqttConfig {
    pub fn endpoint(&self) -> Result<BrokerEndpoint> {
        if !(crate::broker::MIN_BACKLOG_KIB..=crate::broker::MAX_BACKLOG_KIB)
            .contains(&self.embedded_backlog_kib)
        {
            return Err(Error::Config(format!(
                "[mqtt] embedded_backlog_kib = {}: expected {} to {} (KiB kept per subscription)",
                self.embedded_backlog_kib,
                crate::broker::MIN_BACKLOG_KIB,
                crate::broker::MAX_BACKLOG_KIB
            )));
        }
        if self.broker == "embedded" {
            return Ok(BrokerEndpoint::Embedded(self.embedded_bind));
        }
        let bad = |why: &str| Error::Config(format!("[mqtt] broker = \"{}\": {why}", self.broker));
        let (rest, tls) = if let Some(rest) = self.broker.strip_prefix("mqtt://") {
            (rest, false)
        } else if let Some(rest) = self.broker.strip_prefix("mqtts://") {
            (rest, true)
        } else {
            return Err(bad(
                "expected \"embedded\", \"mqtt://host:port\" or \"mqtts://host:port\"",
            ));
        };
        if self.ca_file.is_some() && !tls {
            return Err(Error::Config(format!(
                "[mqtt] ca_file is set but broker = \"{}\" is not TLS: use mqtts://",
                self.broker
            )));
        }
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| bad("the port is not a number from 1 to 65535"))?,
            ),
            None => (rest, if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() {
            return Err(bad("the host is missing"));
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(if tls {
            BrokerEndpoint::ExternalTls {
                host,
                port,
                ca_file: self.ca_file.clone(),
            }
        } else {
            BrokerEndpoint::External { host, port }
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// WAL, Parquet history and the ledger database live here.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// How often durable readings are written from memory to the Parquet history
    /// (the write-ahead log keeps them safe in between).
    #[serde(
        default = "default_flush_interval",
        with = "sensors::config::humantime_secs"
    )]
    pub flush_interval: std::time::Duration,
    /// Days of raw readings kept; none: all.
    #[serde(default)]
    pub raw_retention_days: Option<u32>,
    /// Days of one-minute rollups kept; none: all.
    #[serde(default)]
    pub rollup_retention_days: Option<u32>,
    /// Below this much free space on the storage directory's filesystem the node
    /// warns (installer page, wall) and deletes the oldest raw days whose rollups
    /// it keeps: `"200 MB"`, `"1 GB"`, or a number of bytes.
    #[serde(default = "default_min_free", with = "crate::storage::size")]
    pub min_free: u64,
    /// The key file that wraps the data key (DESIGN.md §10): outside the data
    /// directory, mode 0600, made at first start when absent. With it (or with
    /// `passphrase`) the journal, history and write-ahead log are encrypted.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Where the passphrase that wraps the data key comes from, instead of a key
    /// file: `"credential:NAME"` (a systemd credential, `$CREDENTIALS_DIRECTORY/NAME`),
    /// `"env:VAR"` (an environment variable) or `"ask"` (asked on the terminal).
    #[serde(default)]
    pub passphrase: Option<String>,
}

fn default_min_free() -> u64 {
    200_000_000
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            dir: default_dir(),
            flush_interval: default_flush_interval(),
            raw_retention_days: None,
            rollup_retention_days: None,
            min_free: default_min_free(),
            key_file: None,
            passphrase: None,
        }
    }
}

fn default_flush_interval() -> std::time::Duration {
    std::time::Duration::from_secs(300)
}

impl StorageConfig {
    /// The history's options from this section.
    pub fn history_options(&self) -> crate::history::HistoryOptions {
        crate::history::HistoryOptions {
            flush_every: self.flush_interval,
            raw_retention_days: self.raw_retention_days,
            rollup_retention_days: self.rollup_retention_days,
            key: None,
            ..crate::history::HistoryOptions::default()
        }
    }
}

fn default_dir() -> PathBuf {
    PathBuf::from("data")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(broker: &str) -> MqttConfig {
        MqttConfig {
            broker: broker.to_string(),
            ..MqttConfig::default()
        }
    }

    #[test]
    fn broker_urls_parse_or_say_what_is_wrong() {
        assert_eq!(
            cfg("mqtt://10.0.0.5:1884").endpoint().expect("valid"),
            BrokerEndpoint::External {
                host: "10.0.0.5".into(),
                port: 1884
            }
        );
        assert_eq!(
            cfg("mqtt://broker.local")
                .endpoint()
                .expect("valid")
                .host_port(),
            ("broker.local".to_string(), 1883)
        );
        let err = cfg("tcp://x:1")
            .endpoint()
            .expect_err("bad scheme")
            .to_string();
        assert!(
            err.contains("[mqtt] broker") && err.contains("tcp://x:1"),
            "{err}"
        );
        let err = cfg("mqtt://x:99999")
            .endpoint()
            .expect_err("bad port")
            .to_string();
        assert!(err.contains("port"), "{err}");
    }

    #[test]
    fn mqtts_urls_go_over_tls_with_their_authority() {
        let mut c = cfg("mqtts://broker.example");
        c.ca_file = Some(PathBuf::from("/etc/site-ca.pem"));
        assert_eq!(
            c.endpoint().expect("valid"),
            BrokerEndpoint::ExternalTls {
                host: "broker.example".into(),
                port: 8883,
                ca_file: Some(PathBuf::from("/etc/site-ca.pem")),
            }
        );
        assert_eq!(
            cfg("mqtts://10.0.0.5:18883").endpoint().expect("valid"),
            BrokerEndpoint::ExternalTls {
                host: "10.0.0.5".into(),
                port: 18883,
                ca_file: None,
            }
        );
        // An authority for a broker reached in clear is a mistake, said as one.
        let mut c = cfg("mqtt://broker.example");
        c.ca_file = Some(PathBuf::from("/etc/site-ca.pem"));
        let err = c.endpoint().expect_err("ca_file without TLS").to_string();
        assert!(err.contains("ca_file") && err.contains("mqtts://"), "{err}");
    }

    #[test]
    fn the_embedded_backlog_is_bounded_and_named_when_wrong() {
        let parsed: MqttConfig = toml::from_str("").expect("empty [mqtt]");
        assert_eq!(parsed.embedded_backlog_kib, 1024);
        let parsed: MqttConfig =
            toml::from_str("embedded_backlog_kib = 65536").expect("64 MiB a subscription");
        assert!(parsed.endpoint().is_ok());
        for bad in [0, 15, 4 * 1024 * 1024 + 1] {
            let c = MqttConfig {
                embedded_backlog_kib: bad,
                ..MqttConfig::default()
            };
            let err = c.endpoint().expect_err("out of range").to_string();
            assert!(
                err.contains("[mqtt] embedded_backlog_kib") && err.contains(&bad.to_string()),
                "{err}"
            );
        }
    }
}
