//! The embedded MQTT broker (rumqttd), the default for a site that has none: Shelly,
//! Tasmota and OpenDTU devices are pointed at the node itself.
//!
//! Who may talk to it (DESIGN.md §9): without accounts it listens on loopback only,
//! and a configuration that binds it elsewhere without accounts is refused; with
//! accounts (`[mqtt] users`, or a device's own `mqtt.password`) every client must
//! log in, the node included. rumqttd checks logins but has no per-topic rules:
//! for those, [`mosquitto_acl`] writes the access rules of a Mosquitto broker
//! from the configuration, so that a device can publish only its own topics and
//! only the node can publish commands.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use sensors::config::DeviceConfig;
use sensors::profile::{self, Profile};

use crate::config::{BrokerEndpoint, MqttConfig};
use crate::{Error, Result};

/// The node's own account name when `[mqtt] username` is not set.
pub const NODE_ACCOUNT: &str = "communalia";

/// Who may log in to the embedded broker, and as whom the node itself does.
#[derive(Clone, PartialEq)]
pub struct BrokerAccess {
    accounts: BTreeMap<String, String>,
    node: (String, String),
}

impl std::fmt::Debug for BrokerAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerAccess")
            .field("accounts", &self.accounts.keys().collect::<Vec<_>>())
            .field("node", &self.node.0)
            .finish_non_exhaustive()
    }
}

impl BrokerAccess {
    /// The login the node's own clients use.
    pub fn node_login(&self) -> (&str, &str) {
        (&self.node.0, &self.node.1)
    }

    /// The account names, the node's included.
    pub fn account_names(&self) -> impl Iterator<Item = &str> {
        self.accounts.keys().map(String::as_str)
    }
}

/// The accounts the configuration gives the embedded broker: `[mqtt] users`, each
/// device's `mqtt` account when it has a password, and the node's own (from
/// `[mqtt] username`/`password`, or made now with a random password). `None` when
/// there are none: the broker then takes anyone, and must listen on loopback only,
/// which is checked here. Errors name the key.
pub fn embedded_access(
    mqtt: &MqttConfig,
    devices: &[DeviceConfig],
) -> Result<Option<BrokerAccess>> {
    let mut accounts: BTreeMap<String, String> = BTreeMap::new();
    for u in &mqtt.users {
        add_account(
            &mut accounts,
            &u.name,
            &u.password,
            "[mqtt] users".to_string(),
        )?;
    }
    for d in devices {
        if let Some(m) = &d.mqtt
            && let Some(password) = &m.password
        {
            add_account(
                &mut accounts,
                m.account(&d.id),
                password,
                format!("device `{}`: key `mqtt.password`", d.id),
            )?;
        }
    }
    for d in devices {
        if let Some(m) = &d.mqtt
            && let Some(name) = &m.username
            && !accounts.is_empty()
            && !accounts.contains_key(name)
        {
            return Err(Error::Config(format!(
                "device `{}`: key `mqtt.username`: the account `{name}` has no password; \
                 give it `mqtt.password` or list it in [mqtt] users",
                d.id
            )));
        }
    }
    if accounts.is_empty() {
        if let BrokerEndpoint::Embedded(addr) = mqtt.endpoint()?
            && !addr.ip().is_loopback()
        {
            return Err(Error::Config(format!(
                "[mqtt] embedded_bind = \"{addr}\": the embedded broker would take anyone \
                 on the network, who could then fake meters and commands. Give it accounts \
                 ([mqtt] users = [{{ name = \"…\", password = \"…\" }}], or `password` in a \
                 device's mqtt) or bind it to 127.0.0.1"
            )));
        }
        return Ok(None);
    }
    let node = match (&mqtt.username, &mqtt.password) {
        (Some(name), Some(password)) => {
            add_account(&mut accounts, name, password, "[mqtt] username".to_string())?;
            (name.clone(), password.clone())
        }
        (Some(_), None) => {
            return Err(Error::Config(
                "[mqtt] username is set without [mqtt] password".to_string(),
            ));
        }
        (None, _) => {
            if accounts.contains_key(NODE_ACCOUNT) {
                return Err(Error::Config(format!(
                    "[mqtt] users: `{NODE_ACCOUNT}` is the node's own account; \
                     name the device accounts otherwise, or set [mqtt] username and password"
                )));
            }
            let password = random_password();
            add_account(&mut accounts, NODE_ACCOUNT, &password, "[mqtt]".to_string())?;
            (NODE_ACCOUNT.to_string(), password)
        }
    };
    Ok(Some(BrokerAccess { accounts, node }))
}

/// Adds one account, refusing an empty name or password and two passwords for one
/// name; `whose` says which key gave it.
fn add_account(
    accounts: &mut BTreeMap<String, String>,
    name: &str,
    password: &str,
    whose: String,
) -> Result<()> {
    if name.trim().is_empty() || name.contains(char::is_whitespace) {
        return Err(Error::Config(format!(
            "{whose}: the account name `{name}` is empty or has spaces"
        )));
    }
    if password.is_empty() {
        return Err(Error::Config(format!(
            "{whose}: the account `{name}` has an empty password"
        )));
    }
    match accounts.get(name) {
        Some(known) if known != password => Err(Error::Config(format!(
            "{whose}: the account `{name}` is given two different passwords"
        ))),
        _ => {
            accounts.insert(name.to_string(), password.to_string());
            Ok(())
        }
    }
}

fn random_password() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A command topic the node publishes on, and the account of the relay that reads
/// it (none: only the node's own rules are written for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandTopic {
    pub topic: String,
    pub reader: Option<String>,
}

/// What one broker account may write and read, and whose it is (in words).
type AccountRules = (BTreeSet<String>, BTreeSet<String>, Vec<String>);

/// Mosquitto's `acl_file` for this site: the node reads everything and alone writes
/// the command topics; each device's account writes only its own topics and reads
/// only what its firmware listens to; a relay's account reads only its command
/// topic. Anything not granted is denied by Mosquitto.
pub fn mosquitto_acl(
    mqtt: &MqttConfig,
    devices: &[DeviceConfig],
    commands: &[CommandTopic],
    source: &str,
) -> Result<String> {
    let node = mqtt
        .username
        .clone()
        .unwrap_or_else(|| NODE_ACCOUNT.to_string());
    let mut rules: BTreeMap<String, AccountRules> = BTreeMap::new();
    for d in devices {
        let Some(m) = &d.mqtt else { continue };
        let Ok(Profile::Mqtt(p)) = profile::lookup(&d.profile) else {
            continue;
        };
        let account = m.account(&d.id).to_string();
        if account == node {
            return Err(Error::Device {
                device: d.id.clone(),
                key: Some("mqtt.username"),
                problem: format!("`{account}` is the node's own account; give the device its own"),
            });
        }
        let (writes, reads) = p.access_of(m);
        let entry = rules.entry(account).or_default();
        entry.0.extend(writes);
        entry.1.extend(reads);
        entry.2.push(format!("device {} ({})", d.id, d.profile));
    }
    for c in commands {
        if let Some(reader) = &c.reader {
            if *reader == node {
                return Err(Error::Config(format!(
                    "the relay of `{}` uses the node's own account `{node}`",
                    c.topic
                )));
            }
            let entry = rules.entry(reader.clone()).or_default();
            entry.1.insert(c.topic.clone());
            entry.2.push(format!("relay reading {}", c.topic));
        }
    }
    // A device may not write what the node commands.
    for (account, (writes, _, _)) in &rules {
        for c in commands {
            if writes
                .iter()
                .any(|w| sensors::mqtt::topic_matches(w, &c.topic))
            {
                return Err(Error::Config(format!(
                    "the command topic `{}` lies among the topics account `{account}` publishes; \
                     choose a command topic outside the devices' own",
                    c.topic
                )));
            }
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Mosquitto access rules written by `communalia mqtt acl` from {source}.\n\
         # Write them again after changing devices or services. Anything not granted\n\
         # here is denied.\n"
    );
    let _ = writeln!(
        out,
        "# The node: reads every device, alone writes the commands."
    );
    let _ = writeln!(out, "user {node}");
    let _ = writeln!(out, "topic read #");
    for c in commands {
        let _ = writeln!(out, "topic write {}", c.topic);
    }
    for (account, (writes, reads, what)) in &rules {
        let _ = writeln!(out, "\n# {}", what.join("; "));
        let _ = writeln!(out, "user {account}");
        for w in writes {
            let _ = writeln!(out, "topic write {w}");
        }
        for r in reads {
            let _ = writeln!(out, "topic read {r}");
        }
    }
    Ok(out)
}

/// What to do with the rules [`mosquitto_acl`] wrote to `acl_path`: the lines of
/// `mosquitto.conf` and the commands that make the password file, for the
/// accounts the rules name.
pub fn mosquitto_setup(acl: &str, acl_path: &str) -> String {
    let accounts: Vec<&str> = acl
        .lines()
        .filter_map(|l| l.strip_prefix("user "))
        .collect();
    let passwd = "/etc/mosquitto/communalia.passwd";
    let mut out = format!(
        "Wrote the access rules to {acl_path}. In mosquitto.conf:\n\
         \n    listener 1883\n    allow_anonymous false\n    password_file {passwd}\n    acl_file {acl_path}\n\
         \x20   # Readings survive a broker restart, and a node that is away for a while:\n\
         \x20   persistence true\n\
         \x20   # The default, 1000, drops readings for a node that restarts while devices\n\
         \x20   # publish fast; messages are small.\n\
         \x20   max_queued_messages 100000\n\
         \nThen give each account its password (mosquitto_passwd asks for it; -c creates the\n\
         file, so only on the first):\n\n"
    );
    for (i, account) in accounts.iter().enumerate() {
        let create = if i == 0 { "-c " } else { "" };
        let _ = writeln!(out, "    mosquitto_passwd {create}{passwd} {account}");
    }
    let _ = write!(
        out,
        "\nand the node's own in [mqtt] username and password, each device's in the\n\
         device itself. Restart Mosquitto after each change.\n"
    );
    out
}

/// What the embedded broker keeps of each subscription's latest messages, in KiB
/// (`[mqtt] embedded_backlog_kib`). rumqttd keeps every topic filter's messages in
/// memory, delivered or not, up to its segments' limit: with its usual 10 segments
/// of 16 MiB a node's memory grew by the messages it received until each filter
/// held 160 MiB (BENCHMARKS.md, "the broker's backlog"). A MiB is some 1,700 Shelly
/// Pro 3EM status messages: half an hour of one meter, seconds of a burst.
pub const DEFAULT_BACKLOG_KIB: u32 = 1024;
/// The smallest backlog: rumqttd's segments are at least 1 KiB, and there are 4.
pub const MIN_BACKLOG_KIB: u32 = 16;
/// The largest: 4 GiB per filter is more than a small computer has.
pub const MAX_BACKLOG_KIB: u32 = 4 * 1024 * 1024;
/// The backlog is kept in this many segments: the oldest is let go whole, so the
/// broker keeps between three and four quarters of the backlog once it is full.
const BACKLOG_SEGMENTS: usize = 4;

/// Starts the broker on `addr`, taking anyone, with the default backlog: for
/// loopback. See [`start_embedded_with`].
pub fn start_embedded(addr: SocketAddr) -> Result<()> {
    start_embedded_with(addr, None, DEFAULT_BACKLOG_KIB)
}

/// Starts the broker on `addr` in its own threads and waits until it accepts
/// connections; with `access`, every client must log in with one of its accounts;
/// it keeps `backlog_kib` KiB of each subscription's latest messages.
/// Fails with the address named if it cannot listen there.
pub fn start_embedded_with(
    addr: SocketAddr,
    access: Option<&BrokerAccess>,
    backlog_kib: u32,
) -> Result<()> {
    let backlog_kib = backlog_kib.clamp(MIN_BACKLOG_KIB, MAX_BACKLOG_KIB);
    // rumqttd only logs a bind failure from its own thread; probe first so the
    // installer gets an error naming the address.
    std::net::TcpListener::bind(addr).map_err(|e| Error::Listen {
        what: "embedded MQTT broker",
        addr,
        source: e,
    })?;
    let mut v4 = HashMap::new();
    v4.insert(
        "v4".to_string(),
        ServerSettings {
            name: "v4".to_string(),
            listen: addr,
            tls: None,
            next_connection_delay_ms: 1,
            connections: ConnectionSettings {
                connection_timeout_ms: 60_000,
                max_payload_size: 256 * 1024,
                max_inflight_count: 500,
                auth: access.map(|a| a.accounts.clone().into_iter().collect::<HashMap<_, _>>()),
                external_auth: None,
                dynamic_filters: true,
            },
        },
    );
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 1024,
            max_outgoing_packet_count: 1000,
            max_segment_size: backlog_kib as usize * 1024 / BACKLOG_SEGMENTS,
            max_segment_count: BACKLOG_SEGMENTS,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(v4),
        v5: None,
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    };
    std::thread::Builder::new()
        .name("mqtt-broker".to_string())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(|e| Error::Listen {
            what: "embedded MQTT broker",
            addr,
            source: e,
        })?;
    // Wait until the broker answers a real MQTT handshake: a bare TCP probe would
    // make it log a failed connection, and a bind probe could steal the port.
    let deadline = Instant::now() + Duration::from_secs(5);
    let login = access.map(BrokerAccess::node_login);
    loop {
        match mqtt_handshake(addr, login) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(Error::Listen {
                    what: "embedded MQTT broker",
                    addr,
                    source: e,
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// CONNECT (with `login` when given), expect CONNACK "accepted", DISCONNECT (MQTT
/// 3.1.1, §3.1, §3.2, §3.14).
fn mqtt_handshake(addr: SocketAddr, login: Option<(&str, &str)>) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    let field = |out: &mut Vec<u8>, bytes: &[u8]| -> std::io::Result<()> {
        let len = u16::try_from(bytes.len()).map_err(std::io::Error::other)?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(bytes);
        Ok(())
    };
    // Variable header: protocol name and level, flags (clean session, and user
    // name and password when logging in), keep-alive 10 s.
    let flags = if login.is_some() { 0xC2 } else { 0x02 };
    let mut body = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, flags, 0x00, 0x0A];
    field(&mut body, b"communalia-probe")?;
    if let Some((user, password)) = login {
        field(&mut body, user.as_bytes())?;
        field(&mut body, password.as_bytes())?;
    }
    // Remaining length, variable-length encoded (§2.2.3).
    let mut packet = vec![0x10];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        packet.push(byte);
        if len == 0 {
            break;
        }
    }
    packet.extend_from_slice(&body);
    stream.write_all(&packet)?;
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack)?;
    if connack[0] != 0x20 || connack[3] != 0x00 {
        return Err(std::io::Error::other(format!(
            "unexpected answer to CONNECT: {connack:02x?}"
        )));
    }
    stream.write_all(&[0xE0, 0x00])
}

/// A free port on 127.0.0.1, for brokers that cannot report the port they bound.
pub fn free_local_addr() -> Result<SocketAddr> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| Error::Listen {
        what: "a free local port",
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        source: e,
    })?;
    l.local_addr().map_err(|e| Error::Listen {
        what: "a free local port",
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        source: e,
    })
}
