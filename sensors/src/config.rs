//! The `[[device]]` section of the configuration (DESIGN.md §8), owned here because
//! it names profiles and roles. Parsing errors carry the line and key through `toml`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::{Metric, PowerSign, Role};
use crate::profile::RegisterSpec;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Stable id used in data and URLs.
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub role: Role,
    /// Profile name, e.g. `sunspec`, `sdm630`, `shelly-gen2-em`, `generic-json`.
    pub profile: String,
    /// Modbus TCP: `modbus = { host, port, unit }`.
    #[serde(default)]
    pub modbus: Option<ModbusTcpConfig>,
    /// Modbus RTU: `serial = { path, baud, parity, stop_bits, unit }`.
    #[serde(default)]
    pub serial: Option<SerialConfig>,
    #[serde(default)]
    pub mqtt: Option<MqttDeviceConfig>,
    /// `generic-modbus` only: the registers to read (see profiles/generic-modbus.toml).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registers: Vec<RegisterSpec>,
    /// Overrides the profile's sign convention (e.g. a meter wired the other way).
    #[serde(default)]
    pub power_sign: Option<PowerSign>,
    /// The largest power this device can carry, in watts; readings beyond it are
    /// rejected (default by role: see `ingest::plausible`).
    #[serde(default)]
    pub max_power_w: Option<f64>,
    /// MQTT devices: messages a second accepted, sustained (default 20; a burst
    /// of five seconds' worth passes).
    #[serde(default)]
    pub max_messages_per_s: Option<f64>,
    /// `sunspec` only: read this model alone (e.g. 203, the meter behind an
    /// inverter), instead of the models the device's role calls for.
    #[serde(default)]
    pub sunspec_model: Option<u16>,
    #[serde(default = "default_poll_interval", with = "humantime_secs")]
    pub poll_interval: Duration,
    /// Per-request Modbus timeout.
    #[serde(default = "default_timeout", with = "humantime_secs")]
    pub timeout: Duration,
}

impl DeviceConfig {
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }

    /// Whether the node polls this device (Modbus TCP or RTU) rather than hearing
    /// it over MQTT.
    pub fn is_polled(&self) -> bool {
        self.modbus.is_some() || self.serial.is_some()
    }
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(1)
}

fn default_timeout() -> Duration {
    Duration::from_millis(1000)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModbusTcpConfig {
    pub host: String,
    #[serde(default = "default_modbus_port")]
    pub port: u16,
    #[serde(default = "default_unit")]
    pub unit: u8,
}

fn default_modbus_port() -> u16 {
    502
}

fn default_unit() -> u8 {
    1
}

/// A Modbus RTU device on a serial line (RS-485 adapter). Devices sharing a `path`
/// share the bus, and must agree on its settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SerialConfig {
    /// The serial port, e.g. `/dev/ttyUSB0`.
    pub path: String,
    #[serde(default = "default_baud")]
    pub baud: u32,
    #[serde(default)]
    pub parity: Parity,
    /// 1 or 2.
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
    /// 7 or 8.
    #[serde(default = "default_data_bits")]
    pub data_bits: u8,
    #[serde(default = "default_unit")]
    pub unit: u8,
}

impl SerialConfig {
    /// Checks the line settings; the message names the key. A path written as a
    /// serial port ([`written_as_serial_port`]) may name an adapter not plugged in
    /// yet; any other path must lead to one now ([`serial_port`]).
    pub fn check(&self) -> Result<(), String> {
        if self.path.trim().is_empty() {
            return Err("serial.path is empty".to_string());
        }
        if !written_as_serial_port(&self.path) {
            serial_port(&self.path).map_err(|e| format!("serial.path: {e}"))?;
        }
        if !(300..=1_000_000).contains(&self.baud) {
            return Err(format!("serial.baud = {} is not a baud rate", self.baud));
        }
        if !matches!(self.stop_bits, 1 | 2) {
            return Err(format!(
                "serial.stop_bits = {} (use 1 or 2)",
                self.stop_bits
            ));
        }
        if !matches!(self.data_bits, 7 | 8) {
            return Err(format!(
                "serial.data_bits = {} (use 7 or 8)",
                self.data_bits
            ));
        }
        if self.unit == 0 || self.unit > 247 {
            return Err(format!(
                "serial.unit = {} (RTU devices have addresses 1 to 247)",
                self.unit
            ));
        }
        Ok(())
    }

    /// Whether two devices' settings can share one bus.
    pub fn same_line(&self, other: &SerialConfig) -> bool {
        (self.baud, self.parity, self.stop_bits, self.data_bits)
            == (other.baud, other.parity, other.stop_bits, other.data_bits)
    }
}

/// Why a path is not opened as a serial line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SerialPathError {
    /// Not a serial port, or not there: the same words either way, so that the
    /// answer never tells whether a file exists.
    #[error(
        "`{0}` is not a serial port: only /dev/tty* devices, and links to them such \
         as /dev/serial/by-id/…, are opened as serial lines"
    )]
    NotASerialPort(String),
    /// A port named as one (`/dev/ttyUSB1`) that is not there (yet).
    #[error("cannot open serial port {path}: {problem} (is the adapter plugged in?)")]
    Missing { path: String, problem: String },
}

/// Whether `path` is written as a serial port is: `/dev/tty…` or a link udev makes
/// under `/dev/serial/by-id/` or `/dev/serial/by-path/`, without `.` or `..`.
/// Whether such a path exists is no secret, so a missing one may be said so.
pub fn written_as_serial_port(path: &str) -> bool {
    use std::path::{Component, Path};
    let parts: Vec<Component<'_>> = Path::new(path).components().collect();
    let normal = |c: &Component<'_>| matches!(c, Component::Normal(_));
    if parts.first() != Some(&Component::RootDir) || !parts[1..].iter().all(normal) {
        return false;
    }
    let names: Vec<&str> = parts[1..]
        .iter()
        .filter_map(|c| c.as_os_str().to_str())
        .collect();
    match names.as_slice() {
        ["dev", name] => name.starts_with("tty"),
        ["dev", "serial", "by-id" | "by-path", _] => true,
        _ => false,
    }
}

/// The device to open for `path`, decided before anything is opened: the path
/// with its links followed must be a character device whose name starts with
/// `tty` directly in `/dev` (`/dev/ttyUSB0`, `/dev/ttyAMA0`) or a pseudo-terminal
/// (`/dev/pts/N`). Anything else (a file above all, which a node running as root
/// would otherwise open read-write) is refused with the same words whether or not
/// it exists.
pub fn serial_port(path: &str) -> Result<std::path::PathBuf, SerialPathError> {
    use std::os::unix::fs::FileTypeExt;
    use std::path::Path;
    let refused = || SerialPathError::NotASerialPort(path.to_string());
    let written = written_as_serial_port(path);
    let clean = Path::new(path).is_absolute()
        && Path::new(path).components().all(|c| {
            !matches!(
                c,
                std::path::Component::ParentDir | std::path::Component::CurDir
            )
        });
    if !clean {
        return Err(refused());
    }
    let target = match std::fs::canonicalize(path) {
        Ok(target) => target,
        Err(e) if written => {
            return Err(SerialPathError::Missing {
                path: path.to_string(),
                problem: e.to_string(),
            });
        }
        Err(_) => return Err(refused()),
    };
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let tty_name = match target.parent().and_then(Path::to_str) {
        Some("/dev") => name.starts_with("tty"),
        Some("/dev/pts") => !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()),
        _ => false,
    };
    let character_device = std::fs::metadata(&target)
        .map(|m| m.file_type().is_char_device())
        .unwrap_or(false);
    if tty_name && character_device {
        Ok(target)
    } else {
        Err(refused())
    }
}

fn default_baud() -> u32 {
    9600
}

fn default_stop_bits() -> u8 {
    1
}

fn default_data_bits() -> u8 {
    8
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    #[default]
    None,
    Even,
    Odd,
}

impl Parity {
    pub fn as_str(self) -> &'static str {
        match self {
            Parity::None => "none",
            Parity::Even => "even",
            Parity::Odd => "odd",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MqttDeviceConfig {
    /// Topic prefix / base for the profile (DESIGN.md §3 table).
    pub topic: String,
    /// `generic-json` only: metric name -> JSON path (`a.b[0].c`) or `{ path, scale }`.
    #[serde(default)]
    pub fields: BTreeMap<Metric, FieldPath>,
    /// The device's own account on the broker (default: the device id), for the
    /// embedded broker's credentials and the access rules `communalia mqtt acl`
    /// writes. Several devices behind one bridge (Zigbee2MQTT, OpenDTU) share one.
    #[serde(default)]
    pub username: Option<String>,
    /// The account's password on the embedded broker.
    #[serde(default)]
    pub password: Option<String>,
}

impl MqttDeviceConfig {
    /// The broker account this device publishes with.
    pub fn account<'a>(&'a self, device_id: &'a str) -> &'a str {
        self.username.as_deref().unwrap_or(device_id)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum FieldPath {
    Path(String),
    Scaled {
        path: String,
        #[serde(default = "one")]
        scale: f64,
    },
}

fn one() -> f64 {
    1.0
}

impl FieldPath {
    pub fn path(&self) -> &str {
        match self {
            FieldPath::Path(p) | FieldPath::Scaled { path: p, .. } => p,
        }
    }
    pub fn scale(&self) -> f64 {
        match self {
            FieldPath::Path(_) => 1.0,
            FieldPath::Scaled { scale, .. } => *scale,
        }
    }
}

/// Durations written as `"1s"`, `"500ms"`, `"2m"`.
pub mod humantime_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn parse(s: &str) -> Result<Duration, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("`{s}` has no unit (use ms, s, m or h)"))?;
        let (num, unit) = s.split_at(split);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("`{s}` does not start with a number"))?;
        let secs = match unit {
            "ms" => n / 1000.0,
            "s" => n,
            "m" | "min" => n * 60.0,
            "h" => n * 3600.0,
            _ => {
                return Err(format!(
                    "`{s}` has an unknown unit `{unit}` (use ms, s, m or h)"
                ));
            }
        };
        if !(secs.is_finite() && secs > 0.0) {
            return Err(format!("`{s}` must be a positive duration"));
        }
        Ok(Duration::from_secs_f64(secs))
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", d.as_millis()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_reject_nonsense() {
        assert_eq!(humantime_secs::parse("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(
            humantime_secs::parse("250ms"),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(humantime_secs::parse("2m"), Ok(Duration::from_secs(120)));
        assert!(humantime_secs::parse("5").is_err());
        assert!(humantime_secs::parse("0s").is_err());
        assert!(humantime_secs::parse("fast").is_err());
    }

    #[test]
    fn serial_paths_are_written_as_ports_or_lead_to_one() {
        for written in [
            "/dev/ttyUSB0",
            "/dev/ttyAMA0",
            "/dev/serial/by-id/usb-FTDI_FT232R-if00-port0",
            "/dev/serial/by-path/platform-3f980000.usb-usb-0:1.2:1.0-port0",
        ] {
            assert!(written_as_serial_port(written), "{written}");
        }
        for not in [
            "/etc/shadow",
            "dev/ttyUSB0",
            "/dev/ttyUSB0/../../etc/shadow",
            "/dev/serial/by-id/../../../etc/shadow",
            "/dev/sda",
            "/dev/serial/by-id",
            "/tmp/ttyUSB0",
        ] {
            assert!(!written_as_serial_port(not), "{not}");
        }
    }

    /// A file or a device that is not a terminal is refused in the same words
    /// whether or not it exists; a port named as one that is missing says so.
    #[test]
    fn only_terminals_open_as_serial_ports() {
        let dir = std::env::temp_dir().join(format!("communalia-serial-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("secret");
        std::fs::write(&file, "x").expect("write");
        let to_null = dir.join("to-null");
        let _ = std::fs::remove_file(&to_null);
        std::os::unix::fs::symlink("/dev/null", &to_null).expect("link");
        let words = |path: &str| match serial_port(path) {
            Err(e @ SerialPathError::NotASerialPort(_)) => e.to_string().replace(path, "PATH"),
            other => panic!("{path}: {other:?}"),
        };
        let refused = words(&file.to_string_lossy());
        assert!(
            refused.starts_with("`PATH` is not a serial port"),
            "{refused}"
        );
        for path in [
            dir.join("missing").to_string_lossy().into_owned(),
            to_null.to_string_lossy().into_owned(),
            "/dev/null".into(),
            "/dev/ptmx".into(),
            "/etc/shadow".into(),
            "/etc/communalia-no-such-file".into(),
            "/dev/ttyS0/../../etc/shadow".into(),
            "relative/ttyUSB0".into(),
        ] {
            assert_eq!(words(&path), refused, "{path}");
        }
        assert!(matches!(
            serial_port("/dev/ttyCOMMUNALIA-missing"),
            Err(SerialPathError::Missing { .. })
        ));
        // A terminal, by its own name or through a link, is what is opened.
        if std::path::Path::new("/dev/tty").exists() {
            let to_tty = dir.join("to-tty");
            let _ = std::fs::remove_file(&to_tty);
            std::os::unix::fs::symlink("/dev/tty", &to_tty).expect("link");
            let device = std::path::PathBuf::from("/dev/tty");
            assert_eq!(serial_port("/dev/tty"), Ok(device.clone()));
            assert_eq!(serial_port(&to_tty.to_string_lossy()), Ok(device));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `serial.path` in the configuration: a port not plugged in yet is accepted,
    /// a path that leads nowhere near one is not.
    #[test]
    fn the_configuration_keeps_serial_paths_to_ports() {
        let line = |path: &str| SerialConfig {
            path: path.into(),
            baud: 9600,
            parity: Parity::None,
            stop_bits: 1,
            data_bits: 8,
            unit: 1,
        };
        assert_eq!(line("/dev/ttyCOMMUNALIA-not-plugged-in").check(), Ok(()));
        let refused = line("/etc/shadow").check();
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.starts_with("serial.path: `/etc/shadow` is not a serial port")),
            "{refused:?}"
        );
    }

    #[test]
    fn serial_and_generic_registers_parse() {
        let text = r#"
id = "heat-pump"
role = "load"
profile = "generic-modbus"
serial = { path = "/dev/ttyUSB0", baud = 19200, parity = "even", stop_bits = 1, unit = 3 }
registers = [
  { metric = "power_w", kind = "holding", address = 0x0100, type = "int32", order = "CDAB", scale = 0.1 },
]
"#;
        let d: DeviceConfig = toml::from_str(text).expect("device");
        let s = d.serial.as_ref().expect("serial");
        assert_eq!(
            (s.baud, s.parity, s.stop_bits, s.unit),
            (19200, Parity::Even, 1, 3)
        );
        assert_eq!(s.check(), Ok(()));
        assert!(d.is_polled());
        assert_eq!(d.registers.len(), 1);
        assert_eq!(d.registers[0].address, 0x0100);
        let defaults: SerialConfig = toml::from_str("path = \"/dev/ttyS0\"").expect("defaults");
        assert_eq!(
            (
                defaults.baud,
                defaults.parity,
                defaults.stop_bits,
                defaults.data_bits,
                defaults.unit
            ),
            (9600, Parity::None, 1, 8, 1)
        );
        let bad = SerialConfig {
            stop_bits: 3,
            ..defaults.clone()
        };
        assert!(bad.check().expect_err("3 stop bits").contains("stop_bits"));
        let err =
            toml::from_str::<SerialConfig>("path = \"x\"\nparity = \"mark\"").expect_err("parity");
        assert!(err.to_string().contains("mark"), "{err}");
    }

    #[test]
    fn unknown_device_key_is_rejected_with_its_name_and_line() {
        let text = "id = \"a\"\nrole = \"pv\"\nprofile = \"sunspec\"\npol_interval = \"1s\"\n";
        let err = toml::from_str::<DeviceConfig>(text).expect_err("unknown key");
        let msg = err.to_string();
        assert!(msg.contains("pol_interval"), "{msg}");
        assert!(msg.contains("line 4"), "{msg}");
    }
}
