//! Loading the one TOML file (DESIGN.md §7-8): each section's type belongs to the
//! crate that uses it; this file only composes them and checks what spans sections
//! (a service's meter must be a configured device). Errors name the file, the line
//! and the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use ingest::config::{MqttConfig, StorageConfig};
use ledger::plan::{Sources, TierRule};
use query::config::ServiceConfig;
use sensors::config::DeviceConfig;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    pub(crate) site: SiteConfig,
    #[serde(default)]
    pub(crate) web: WebConfig,
    #[serde(default)]
    pub(crate) storage: StorageConfig,
    #[serde(default)]
    pub(crate) mqtt: MqttConfig,
    #[serde(default, rename = "device")]
    pub(crate) devices: Vec<DeviceConfig>,
    #[serde(default, rename = "service")]
    pub(crate) services: Vec<ServiceConfig>,
    /// Split rule per tier, initial plan only (a tier not listed shares pro rata).
    #[serde(default, rename = "tier")]
    pub(crate) tiers: Vec<TierRule>,
    /// Which sources the initial plan counts on besides PV.
    #[serde(default)]
    pub(crate) sources: Sources,
    /// The households, their members and meters (DESIGN.md §10): whose readings
    /// are whose, and who may consent to share them.
    #[serde(default, rename = "household")]
    pub(crate) households: Vec<query::consent::HouseholdConfig>,
    /// Members recorded in a new journal (the demo's seeded community).
    #[serde(default, rename = "member")]
    pub(crate) members: Vec<MemberSeed>,
    /// Home Assistant MQTT discovery (opt-in).
    #[serde(default)]
    pub(crate) homeassistant: query::homeassistant::HomeAssistantConfig,
    /// What this node shares with its federation (DESIGN.md §12); nothing when absent.
    #[serde(default)]
    pub(crate) federation: federation::config::FederationConfig,
    /// The node's own needs on the planning board.
    #[serde(default)]
    pub(crate) planning: PlanningConfig,
    /// Who can open the node's backups (`communalia backup`, DESIGN.md §10).
    #[serde(default)]
    pub(crate) backup: BackupConfig,
}

/// `[backup]`: the age recipients every archive of `communalia backup` is
/// encrypted to (`age1…`, from `age-keygen`), besides those given with `--recipient`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackupConfig {
    #[serde(default)]
    pub(crate) recipients: Vec<String>,
}

/// `[planning]`: when the node asks for a device to be repaired, and offers its
/// solar surplus.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlanningConfig {
    /// How long a device is down before the node opens a need to repair it.
    #[serde(
        default = "default_repair_after",
        with = "sensors::config::humantime_secs"
    )]
    pub(crate) repair_after: std::time::Duration,
    /// Whether the node offers its expected solar surplus on the planning board.
    #[serde(default = "default_true")]
    pub(crate) surplus_offers: bool,
    /// The surplus, in watts, from which a quarter hour counts in a window.
    #[serde(default = "default_surplus_min_w")]
    pub(crate) surplus_min_w: f64,
    /// The hours a service may be shed in a week before the node opens a need
    /// for it; 0: never.
    #[serde(default = "default_shed_need_hours")]
    pub(crate) shed_need_hours: f64,
}

impl Default for PlanningConfig {
    fn default() -> Self {
        PlanningConfig {
            repair_after: default_repair_after(),
            surplus_offers: true,
            surplus_min_w: default_surplus_min_w(),
            shed_need_hours: default_shed_need_hours(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_surplus_min_w() -> f64 {
    500.0
}

fn default_shed_need_hours() -> f64 {
    6.0
}

fn default_repair_after() -> std::time::Duration {
    std::time::Duration::from_secs(3600)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SiteConfig {
    pub(crate) name: String,
    #[serde(default = "default_language")]
    pub(crate) language: Language,
    #[serde(default = "default_timezone")]
    pub(crate) timezone: chrono_tz::Tz,
    pub(crate) latitude: f64,
    pub(crate) longitude: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Language {
    Fr,
    En,
}

fn default_language() -> Language {
    Language::Fr
}

fn default_timezone() -> chrono_tz::Tz {
    chrono_tz::Europe::Paris
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebConfig {
    #[serde(default = "default_bind")]
    pub(crate) bind: SocketAddr,
    /// Memory installers' SQL queries may hold together, in MiB: a query that
    /// needs more is refused, not let grow.
    #[serde(default = "default_sql_memory_mb")]
    pub(crate) sql_memory_mb: usize,
    /// HTTPS: `"off"` (plain HTTP on `bind`, as before; what a configuration
    /// without the key gets), `"auto"` (a certificate the node makes at its first
    /// start) or `{ cert = "…", key = "…" }` (the installer's PEM files). With TLS
    /// on, `bind` only redirects to HTTPS.
    #[serde(default)]
    pub(crate) tls: TlsSetting,
    /// Where HTTPS listens; by default `bind`'s address on port 443 when `bind`
    /// is on port 80, else on port 8443.
    #[serde(default)]
    pub(crate) https_bind: Option<SocketAddr>,
    /// Names (and addresses) the node is reached by, added to those a certificate
    /// it makes is valid for (`tls = "auto"`; read at its first start only).
    #[serde(default)]
    pub(crate) tls_names: Vec<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            bind: default_bind(),
            sql_memory_mb: default_sql_memory_mb(),
            tls: TlsSetting::Off,
            https_bind: None,
            tls_names: Vec::new(),
        }
    }
}

impl WebConfig {
    /// Where HTTPS listens when plain HTTP is on `bind` (see `https_bind`).
    pub(crate) fn https_addr(&self, bind: SocketAddr) -> SocketAddr {
        self.https_bind.unwrap_or_else(|| {
            let port = if bind.port() == 80 { 443 } else { 8443 };
            SocketAddr::new(bind.ip(), port)
        })
    }
}

/// `[web] tls`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum TlsSetting {
    #[default]
    Off,
    Auto,
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
}

impl<'de> Deserialize<'de> for TlsSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        const EXPECTED: &str =
            "\"auto\", \"off\" or { cert = \"<PEM file>\", key = \"<PEM file>\" }";
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Files {
            cert: PathBuf,
            key: PathBuf,
        }
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = TlsSetting;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TlsSetting, E> {
                match v {
                    "auto" => Ok(TlsSetting::Auto),
                    "off" => Ok(TlsSetting::Off),
                    other => Err(E::custom(format!(
                        "`{other}` is not a TLS setting: expected {EXPECTED}"
                    ))),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<TlsSetting, A::Error> {
                let files = Files::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(TlsSetting::Files {
                    cert: files.cert,
                    key: files.key,
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}

fn default_sql_memory_mb() -> usize {
    query::export::SQL_MEMORY_MB
}

/// The smallest pool a query over a day of readings can work in.
const MIN_SQL_MEMORY_MB: usize = 16;

fn default_bind() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MemberSeed {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) roles: Vec<ledger::Role>,
}

/// The configuration with where it came from, for error messages.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub(crate) config: Config,
    pub(crate) source: String,
    pub(crate) text: String,
    /// The data key, once opened ([`Loaded::data_key`]).
    data_key: std::sync::Arc<std::sync::OnceLock<Option<keyring::DataKey>>>,
}

impl Loaded {
    /// The data key of the storage directory (opened, or made at first start, once
    /// per process); `None` for a clear-text node. See [`crate::keys::data_key`].
    pub(crate) fn data_key(&self) -> Result<Option<&keyring::DataKey>> {
        if self.data_key.get().is_none() {
            let key = crate::keys::data_key(&self.config.storage)?;
            let _ = self.data_key.set(key);
        }
        Ok(self.data_key.get().and_then(Option::as_ref))
    }

    /// The journal's SQLCipher key (after [`Loaded::data_key`]).
    pub(crate) fn journal_key(&self) -> Result<Option<keyring::Key32>> {
        Ok(crate::keys::journal_key(self.data_key()?))
    }

    pub(crate) fn ledger_path(&self) -> PathBuf {
        self.config.storage.dir.join("ledger.sqlite")
    }
}

pub(crate) fn load_file(path: &Path) -> Result<Loaded> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// Parses and checks a configuration; `source` names it in errors.
pub(crate) fn parse(text: &str, source: &str) -> Result<Loaded> {
    let config: Config = toml::from_str(text).map_err(|e| anyhow!("{source}: {e}"))?;
    let loaded = Loaded {
        config,
        source: source.to_string(),
        text: text.to_string(),
        data_key: Default::default(),
    };
    check(&loaded)?;
    Ok(loaded)
}

/// Line (1-based) of the first line at or after `from` that starts with `key`.
fn line_of(text: &str, from: usize, key: &str) -> Option<usize> {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, l)| {
            let l = l.trim_start();
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|(i, _)| i + 1)
}

/// Line of `id = "<id>"` inside a `[[section]]` block.
fn line_of_id(text: &str, id: &str) -> Option<usize> {
    let needle = format!("\"{id}\"");
    text.lines()
        .enumerate()
        .find(|(_, l)| {
            let l = l.trim_start();
            l.starts_with("id") && l.contains(&needle)
        })
        .map(|(i, _)| i + 1)
}

fn check(l: &Loaded) -> Result<()> {
    let c = &l.config;
    let at = |line: Option<usize>| match line {
        Some(n) => format!("{}: line {n}", l.source),
        None => l.source.clone(),
    };
    for r in &c.backup.recipients {
        if let Err(e) = r.parse::<keyring::age::Recipient>() {
            bail!(
                "{}: key `backup.recipients`: {e}",
                at(line_of(&l.text, 1, "recipients"))
            );
        }
    }
    if !(-90.0..=90.0).contains(&c.site.latitude) {
        bail!(
            "{}: key `site.latitude`: {} is not between -90 and 90",
            at(line_of(&l.text, 1, "latitude")),
            c.site.latitude
        );
    }
    if !(-180.0..=180.0).contains(&c.site.longitude) {
        bail!(
            "{}: key `site.longitude`: {} is not between -180 and 180",
            at(line_of(&l.text, 1, "longitude")),
            c.site.longitude
        );
    }
    if !(c.planning.surplus_min_w.is_finite() && c.planning.surplus_min_w > 0.0) {
        bail!(
            "{}: key `planning.surplus_min_w`: {} is not a power above 0 W",
            at(line_of(&l.text, 1, "surplus_min_w")),
            c.planning.surplus_min_w
        );
    }
    let shed = c.planning.shed_need_hours;
    if !(shed.is_finite() && (0.0..=168.0).contains(&shed)) {
        bail!(
            "{}: key `planning.shed_need_hours`: {shed} is not a number of hours from 0 \
             (never) to 168 (a week)",
            at(line_of(&l.text, 1, "shed_need_hours")),
        );
    }
    if c.web.sql_memory_mb < MIN_SQL_MEMORY_MB || c.web.sql_memory_mb > 1024 * 1024 {
        bail!(
            "{}: key `web.sql_memory_mb`: {} MiB is not between {MIN_SQL_MEMORY_MB} and 1048576",
            at(line_of(&l.text, 1, "sql_memory_mb")),
            c.web.sql_memory_mb
        );
    }
    if c.web.tls != TlsSetting::Off {
        let https = c.web.https_addr(c.web.bind);
        if https.port() == c.web.bind.port() && https.port() != 0 {
            bail!(
                "{}: key `web.https_bind`: {https} is the plain HTTP port of `web.bind`; HTTPS needs a port of its own",
                at(line_of(&l.text, 1, "https_bind").or(line_of(&l.text, 1, "tls")))
            );
        }
    }
    if let TlsSetting::Files { cert, key } = &c.web.tls
        && let Err(e) = web::tls::TlsIdentity::from_files(cert, key)
    {
        bail!("{}: key `web.tls`: {e}", at(line_of(&l.text, 1, "tls")));
    }
    if let Err(e) = c.mqtt.endpoint() {
        bail!(
            "{}: key `mqtt.broker`: {e}",
            at(line_of(&l.text, 1, "broker"))
        );
    }
    if let Ok(ingest::config::BrokerEndpoint::ExternalTls { ca_file, .. }) = c.mqtt.endpoint()
        && let Err(e) = ingest::mqtt::tls_client_config(ca_file.as_deref())
    {
        bail!(
            "{}: {e}",
            at(line_of(&l.text, 1, "ca_file").or(line_of(&l.text, 1, "broker")))
        );
    }
    if let Err(e) = ingest::resolve_devices(&c.devices) {
        let line = match &e {
            ingest::Error::Device { device, key, .. } => {
                let start = line_of_id(&l.text, device);
                match (start, key) {
                    (Some(s), Some(k)) => line_of(&l.text, s, k).or(Some(s)),
                    (s, _) => s,
                }
            }
            _ => None,
        };
        bail!("{}: [[device]] {e}", at(line));
    }
    if let Err(e) = ingest::broker::embedded_access(&c.mqtt, &c.devices) {
        let key = if e.to_string().contains("embedded_bind") {
            "embedded_bind"
        } else {
            "users"
        };
        bail!("{}: {e}", at(line_of(&l.text, 1, key)));
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut actuation_topics = std::collections::BTreeMap::new();
    for s in &c.services {
        let line = line_of_id(&l.text, &s.id);
        if !ids.insert(s.id.as_str()) {
            bail!("{}: [[service]] `{}` is defined twice", at(line), s.id);
        }
        // Two services on one topic would overwrite each other's retained command.
        if let Some(a) = &s.actuation
            && let Some(other) = actuation_topics.insert(a.topic.as_str(), s.id.as_str())
        {
            bail!(
                "{}: key `actuation` of service `{}`: the topic `{}` is already used by service `{other}`",
                at(line.and_then(|n| line_of(&l.text, n, "actuation")).or(line)),
                s.id,
                a.topic
            );
        }
        if let Some(meter) = &s.meter
            && !c.devices.iter().any(|d| &d.id == meter)
        {
            bail!(
                "{}: key `meter` of service `{}`: no device has the id `{meter}`",
                at(line.and_then(|n| line_of(&l.text, n, "meter")).or(line)),
                s.id
            );
        }
        if s.meter.is_some() && s.demand_w.is_some() {
            bail!(
                "{}: service `{}`: give either `meter` or `demand_w`, not both",
                at(line),
                s.id
            );
        }
    }
    if let Some(id) = &c.federation.node_id
        && !federation::identity::valid_node_id(id)
    {
        bail!(
            "{}: key `federation.node_id`: `{id}` is not a node id (lowercase letters, digits and `-`, at most 64)",
            at(line_of(&l.text, 1, "node_id"))
        );
    }
    let visibility = query::visibility::Visibility::new(&c.devices, &c.services);
    if let Err(problems) = query::consent::Households::new(&c.households, &visibility) {
        let first = c
            .households
            .first()
            .and_then(|h| line_of_id(&l.text, &h.id));
        bail!("{}: [[household]]: {}", at(first), problems.join("; "));
    }
    let plan = query::config::initial_plan(&c.services, &c.tiers, &c.sources);
    if let Err(problems) = plan.validate() {
        bail!(
            "{}: the initial plan is not valid: {}",
            l.source,
            problems.join("; ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[site]
name = "Test"
latitude = 45.0
longitude = 4.0

[[device]]
id = "inv"
role = "pv"
profile = "sunspec"
modbus = { host = "127.0.0.1", port = 502 }

[[service]]
id = "fridge"
demand_w = 100
tier = 1
"#;

    #[test]
    fn bad_households_are_refused_naming_the_key() {
        let with = |households: &str| {
            let text = format!(
                "{MINIMAL}
[[device]]
id = \"house-3\"
role = \"load\"
profile = \"shelly-gen2-em\"
mqtt = {{ topic = \"h3\" }}
{households}"
            );
            parse(&text, "site.toml").err().map(|e| format!("{e:#}"))
        };
        assert_eq!(
            with("[[household]]\nid = \"h3\"\nmembers = [\"alice\"]\nmeters = [\"house-3\"]\n"),
            None
        );
        let e = with("[[household]]\nid = \"h3\"\nmembers = [\"alice\"]\nmeters = [\"house-9\"]\n")
            .unwrap_or_default();
        assert!(
            e.contains("household[0].meters: `house-9` is not a configured device"),
            "{e}"
        );
        let e = with(
            "[[household]]\nid = \"h3\"\nmembers = [\"alice\"]\nmeters = [\"house-3\"]\n\
             [[household]]\nid = \"h4\"\nmembers = [\"bob\"]\nmeters = [\"house-3\", \"inv\"]\n",
        )
        .unwrap_or_default();
        assert!(
            e.contains("household[1].meters: `house-3` is already a meter of household[0]"),
            "{e}"
        );
        assert!(
            e.contains("household[1].meters: `inv` is the community's"),
            "{e}"
        );
        let e = with("[[household]]\nid = \"h3\"\nmeters = [\"house-3\"]\nowner = \"x\"\n")
            .unwrap_or_default();
        assert!(e.contains("owner"), "an unknown key is named: {e}");
    }

    #[test]
    fn the_shipped_configurations_load() {
        for (name, text) in [
            ("config/demo.toml", include_str!("../config/demo.toml")),
            (
                "config/example-site.toml",
                include_str!("../config/example-site.toml"),
            ),
        ] {
            if let Err(e) = parse(text, name) {
                panic!("{name} does not load: {e:#}");
            }
        }
    }

    #[test]
    fn a_minimal_configuration_loads_with_defaults() {
        let l = parse(MINIMAL, "t.toml").expect("valid");
        assert_eq!(l.config.web.bind.port(), 8080);
        assert_eq!(l.config.site.language, Language::Fr);
        assert_eq!(l.config.mqtt.broker, "embedded");
    }

    #[test]
    fn an_unknown_key_names_file_line_and_key() {
        let text = MINIMAL.replace("tier = 1", "tier = 1\npriority = 3");
        let err = parse(&text, "site.toml")
            .expect_err("unknown key")
            .to_string();
        assert!(err.starts_with("site.toml:"), "{err}");
        assert!(err.contains("priority"), "{err}");
        assert!(err.contains("line 17"), "{err}");
    }

    #[test]
    fn a_bad_value_names_file_line_and_key() {
        let text = MINIMAL.replace("role = \"pv\"", "role = \"solar\"");
        let err = parse(&text, "site.toml").expect_err("bad role").to_string();
        assert!(err.contains("line 9"), "{err}");
        assert!(err.contains("solar"), "{err}");
        let text = MINIMAL.replace("profile = \"sunspec\"", "profile = \"sunspek\"");
        let err = parse(&text, "site.toml")
            .expect_err("bad profile")
            .to_string();
        assert!(err.contains("site.toml: line 10"), "{err}");
        assert!(err.contains("inv") && err.contains("sunspek"), "{err}");
    }

    #[test]
    fn backup_recipients_are_checked_with_their_line() {
        let good = "age1fedyheqcqgmpkvg6e3zt7wmeevkx4safk53q64s4kenc5rnndypqgqpcl6";
        let text = format!("{MINIMAL}\n[backup]\nrecipients = [\"{good}\"]\n");
        let l = parse(&text, "site.toml").expect("a recipient from age-keygen");
        assert_eq!(l.config.backup.recipients, vec![good.to_string()]);
        let line = text.lines().count();
        let typo = text.replace("fedy", "fedz");
        let err = parse(&typo, "site.toml")
            .expect_err("a mistyped recipient")
            .to_string();
        assert!(err.contains(&format!("site.toml: line {line}")), "{err}");
        assert!(
            err.contains("backup.recipients") && err.contains("checksum"),
            "{err}"
        );
    }

    #[test]
    fn a_service_metered_by_an_unknown_device_is_refused() {
        let text = MINIMAL.replace("demand_w = 100", "meter = \"nowhere\"");
        let err = parse(&text, "site.toml")
            .expect_err("unknown meter")
            .to_string();
        assert!(err.contains("line 15") && err.contains("nowhere"), "{err}");
    }

    #[test]
    fn actuation_is_parsed_and_a_shared_or_wildcard_topic_is_refused() {
        let with = |extra: &str| format!("{MINIMAL}{extra}");
        let one = with("actuation = { topic = \"t/fridge\", min_on = \"2m\" }\n");
        let l = parse(&one, "site.toml").expect("valid");
        let a = l.config.services[0].actuation.as_ref().expect("actuation");
        assert_eq!(a.topic, "t/fridge");
        assert_eq!(a.min_on, std::time::Duration::from_secs(120));
        assert_eq!(a.min_off, std::time::Duration::from_secs(300));

        let err = parse(&with("actuation = { topic = \"t/+\" }\n"), "site.toml")
            .expect_err("wildcard")
            .to_string();
        assert!(err.contains("line 17") && err.contains("wildcard"), "{err}");
        let err = parse(
            &with("actuation = { topic = \"t\", min_onn = \"1s\" }\n"),
            "site.toml",
        )
        .expect_err("unknown key")
        .to_string();
        assert!(err.contains("line 17") && err.contains("min_onn"), "{err}");

        let two = format!(
            "{one}\n[[service]]\nid = \"school\"\ndemand_w = 500\ntier = 2\nactuation = {{ topic = \"t/fridge\" }}\n"
        );
        let err = parse(&two, "site.toml")
            .expect_err("shared topic")
            .to_string();
        assert!(
            err.contains("line 23") && err.contains("school") && err.contains("fridge"),
            "{err}"
        );
    }

    #[test]
    fn a_surplus_threshold_of_no_power_is_refused_with_its_line() {
        let text = format!("{MINIMAL}\n[planning]\nsurplus_min_w = -5\n");
        let err = parse(&text, "site.toml").expect_err("negative").to_string();
        let line = text.lines().count();
        assert!(
            err.contains(&format!("line {line}")) && err.contains("planning.surplus_min_w"),
            "{err}"
        );
        let ok = format!("{MINIMAL}\n[planning]\nsurplus_min_w = 800\nsurplus_offers = false\n");
        let loaded = parse(&ok, "site.toml").expect("valid");
        assert!(!loaded.config.planning.surplus_offers);
        assert_eq!(loaded.config.planning.surplus_min_w, 800.0);
        assert_eq!(loaded.config.planning.shed_need_hours, 6.0, "the default");
        let text = format!("{MINIMAL}\n[planning]\nshed_need_hours = 200\n");
        let err = parse(&text, "site.toml")
            .expect_err("beyond a week")
            .to_string();
        let line = text.lines().count();
        assert!(
            err.contains(&format!("line {line}")) && err.contains("planning.shed_need_hours"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_timezone_is_refused_with_its_line() {
        let text = MINIMAL.replace(
            "name = \"Test\"",
            "name = \"Test\"\ntimezone = \"Mars/Olympus\"",
        );
        let err = parse(&text, "site.toml").expect_err("bad tz").to_string();
        assert!(
            err.contains("line 4") && err.contains("Mars/Olympus"),
            "{err}"
        );
    }
}
