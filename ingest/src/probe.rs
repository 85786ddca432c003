//! `communalia probe`: what is at a Modbus address. Finds the SunSpec models there
//! (id, name, address, length) and decodes them, or reads a profile's registers,
//! and writes the `[[device]]` block that would read the device, so that an
//! installer can paste it into the configuration.

use std::time::Duration;

use sensors::config::{Parity, SerialConfig};
use sensors::modbus::ReadBlock;
use sensors::model::{DecodedPoint, Metric, Role};
use sensors::profile::{self, Profile, RegisterSpec};
use sensors::sunspec::{self, CommonInfo, ModelFamily};

use crate::metrics::{ModelInfo, RawBlock};
use crate::modbus::{BlockReads, Conn, Link, discover_sunspec};
use crate::{Error, Result};

/// Where to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    pub link: Link,
    pub unit: u8,
}

impl ProbeTarget {
    /// `modbus-tcp://HOST[:PORT][/UNIT]` (port 502, unit 1 by default), or
    /// `serial:///dev/ttyUSB0[?baud=9600&parity=none&stop_bits=1&data_bits=8&unit=1]`
    /// (`modbus-rtu://` is the same).
    pub fn parse(text: &str) -> Result<ProbeTarget> {
        let text = text.trim();
        // What an installer types first: `192.168.1.20` (port 502, unit 1),
        // `192.168.1.20:1502/3`, or a serial port `/dev/ttyUSB0`.
        if !text.is_empty() && !text.contains("://") {
            let scheme = if text.starts_with('/') {
                "serial://"
            } else {
                "modbus-tcp://"
            };
            return ProbeTarget::parse(&format!("{scheme}{text}"));
        }
        let bad = |why: &str| Error::Config(format!("probe target `{text}`: {why}"));
        if let Some(rest) = text.strip_prefix("modbus-tcp://") {
            let (hostport, unit) = match rest.split_once('/') {
                Some((hp, u)) if !u.is_empty() => (
                    hp,
                    u.parse::<u8>()
                        .map_err(|_| bad("the unit id is not a number from 0 to 255"))?,
                ),
                Some((hp, _)) => (hp, 1),
                None => (rest, 1),
            };
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                    h,
                    p.parse::<u16>()
                        .map_err(|_| bad("the port is not a number from 1 to 65535"))?,
                ),
                _ => (hostport, 502),
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err(bad("the host is missing"));
            }
            return Ok(ProbeTarget {
                link: Link::Tcp {
                    host: host.to_string(),
                    port,
                },
                unit,
            });
        }
        // DESIGN.md §7 writes serial targets `serial://`; `modbus-rtu://` says the
        // same and matches `modbus-tcp://`.
        if let Some(rest) = text
            .strip_prefix("serial://")
            .or_else(|| text.strip_prefix("modbus-rtu://"))
        {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            if path.is_empty() {
                return Err(bad("the serial port path is missing"));
            }
            let mut serial = SerialConfig {
                path: path.to_string(),
                baud: 9600,
                parity: Parity::None,
                stop_bits: 1,
                data_bits: 8,
                unit: 1,
            };
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| bad("query items are key=value"))?;
                let num = |what: &str| bad(&format!("`{k}={v}` is not a valid {what}"));
                match k {
                    "baud" => serial.baud = v.parse().map_err(|_| num("baud rate"))?,
                    "parity" => {
                        serial.parity = match v {
                            "none" => Parity::None,
                            "even" => Parity::Even,
                            "odd" => Parity::Odd,
                            _ => return Err(num("parity (none, even, odd)")),
                        }
                    }
                    "stop_bits" => {
                        serial.stop_bits = v.parse().map_err(|_| num("stop bit count"))?
                    }
                    "data_bits" => {
                        serial.data_bits = v.parse().map_err(|_| num("data bit count"))?
                    }
                    "unit" => serial.unit = v.parse().map_err(|_| num("unit id"))?,
                    _ => {
                        return Err(bad(&format!(
                            "unknown setting `{k}` (baud, parity, stop_bits, data_bits, unit)"
                        )));
                    }
                }
            }
            serial.check().map_err(|e| bad(&e))?;
            return Ok(ProbeTarget {
                unit: serial.unit,
                link: Link::Serial(serial),
            });
        }
        Err(bad(
            "expected modbus-tcp://HOST:PORT/UNIT, or serial:///dev/PORT?baud=9600&unit=1 (also written modbus-rtu://)",
        ))
    }
}

impl std::fmt::Display for ProbeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} unit {}", self.link.describe(), self.unit)
    }
}

/// What to do at the target.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// A Modbus profile to read; `None` or `sunspec` discovers SunSpec models.
    pub profile: Option<String>,
    /// `generic-modbus` only: the registers to read.
    pub registers: Vec<RegisterSpec>,
    pub timeout: Duration,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            profile: None,
            registers: Vec::new(),
            timeout: Duration::from_secs(2),
        }
    }
}

/// SunSpec models found at the target.
#[derive(Debug, Clone, PartialEq)]
pub struct SunSpecFound {
    pub base: u16,
    pub models: Vec<ModelInfo>,
    pub common: Option<CommonInfo>,
}

/// What a probe found.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    pub target: ProbeTarget,
    pub profile: String,
    pub sunspec: Option<SunSpecFound>,
    /// Decoded values, in the device's own sign convention, each with its origin.
    pub values: Vec<DecodedPoint>,
    /// Every read of the value poll, with what came back.
    pub raw_blocks: Vec<RawBlock>,
    /// Requests a poll of this device sends (discovery not counted).
    pub poll_transactions: u32,
    /// Requests the whole probe sent.
    pub transactions: u32,
    /// Exceptions the device answered with.
    pub exceptions: Vec<(u8, String)>,
}

/// Probes `target`: SunSpec discovery and decoding, or `opts.profile`'s registers.
/// Errors name the target; a device that refuses some registers still gives a
/// report, with the exceptions listed.
pub async fn probe_modbus(target: &ProbeTarget, opts: &ProbeOptions) -> Result<ProbeReport> {
    let fail = |problem: String| Error::Probe {
        target: target.to_string(),
        problem,
    };
    let profile_name = opts
        .profile
        .clone()
        .unwrap_or_else(|| "sunspec".to_string());
    let profile = profile::lookup(&profile_name).map_err(|e| fail(e.to_string()))?;
    let mut conn = Conn::open(&target.link, target.unit, opts.timeout)
        .await
        .map_err(fail)?;
    let (found, plan_blocks, decode): (Option<SunSpecFound>, Vec<ReadBlock>, Decoder) =
        match profile {
            Profile::SunSpec => {
                let (map, common) = discover_sunspec(&mut conn)
                    .await
                    .map_err(|f| fail(f.message().to_string()))?;
                let models = map
                    .models
                    .iter()
                    .map(|m| ModelInfo {
                        id: m.id,
                        name: sunspec::model_name(m.id),
                        address: m.address,
                        length: m.length,
                        decoded: if m.id == 1 {
                            Err("common model: identity only".into())
                        } else {
                            sunspec::metric_registers(m)
                                .map(|_| ())
                                .map_err(|e| e.to_string())
                        },
                    })
                    .collect();
                let found = SunSpecFound {
                    base: map.base,
                    models,
                    common,
                };
                match map.poll_plan() {
                    Ok(plan) => (Some(found), plan.blocks.clone(), Decoder::SunSpec(plan)),
                    Err(_) => (Some(found), Vec::new(), Decoder::Nothing),
                }
            }
            Profile::Modbus(p) => {
                let p = p.for_device(&opts.registers).map_err(fail)?;
                (None, p.read_plan(), Decoder::Profile(p))
            }
            Profile::Mqtt(p) => {
                return Err(fail(format!(
                    "profile `{}` is read over MQTT, not Modbus",
                    p.id
                )));
            }
        };
    let (
        BlockReads {
            read,
            raw,
            exceptions,
        },
        cut,
    ) = conn.read_blocks(&plan_blocks).await;
    if let Some(why) = cut {
        return Err(fail(why));
    }
    let values = match &decode {
        Decoder::SunSpec(plan) => plan.decode(&read),
        Decoder::Profile(p) => p.decode_points(&read),
        Decoder::Nothing => Vec::new(),
    };
    Ok(ProbeReport {
        target: target.clone(),
        profile: profile_name,
        sunspec: found,
        values,
        poll_transactions: plan_blocks.len() as u32,
        raw_blocks: raw,
        transactions: conn.transactions,
        exceptions,
    })
}

enum Decoder {
    SunSpec(sunspec::SunSpecPlan),
    Profile(sensors::profile::ModbusProfile),
    Nothing,
}

fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').chars().take(40).collect()
}

fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl ProbeReport {
    /// The role the models suggest: an inverter is `pv`, a meter `grid`, storage
    /// `battery`; the installer corrects it where the meter measures a load.
    pub fn suggested_role(&self) -> Role {
        let ids: Vec<u16> = self
            .sunspec
            .iter()
            .flat_map(|s| s.models.iter().map(|m| m.id))
            .collect();
        if ids.iter().any(|id| *id == 124 || (800..900).contains(id)) {
            Role::Battery
        } else if ids.iter().any(|id| matches!(id, 101..=113 | 701)) {
            Role::Pv
        } else {
            Role::Grid
        }
    }

    /// The SunSpec model families the map holds, in the order inverter, meter,
    /// storage: an inverter with its grid meter behind it serves two roles.
    pub fn model_families(&self) -> Vec<ModelFamily> {
        let ids: Vec<u16> = self
            .sunspec
            .iter()
            .flat_map(|s| s.models.iter().map(|m| m.id))
            .collect();
        [
            ModelFamily::Inverter,
            ModelFamily::Meter,
            ModelFamily::Storage,
        ]
        .into_iter()
        .filter(|f| ids.iter().any(|id| ModelFamily::of(*id) == Some(*f)))
        .collect()
    }

    /// One `[[device]]` block per role the device can serve: for a SunSpec map
    /// holding an inverter and a meter model, a `pv` device (read from the inverter
    /// model) and a `grid` device (read from the meter model), since each role
    /// reads its own models.
    pub fn suggested_devices(&self) -> Vec<String> {
        let families = self.model_families();
        if families.len() < 2 {
            return vec![self.suggested_device()];
        }
        families
            .into_iter()
            .map(|family| {
                let (suffix, models) = match family {
                    ModelFamily::Inverter => ("inverter", "inverter models 10x/11x"),
                    ModelFamily::Meter => ("meter", "meter models 20x/21x"),
                    ModelFamily::Storage => ("battery", "storage model 124"),
                };
                self.device_block(family.usual_role(), Some((suffix, models)))
            })
            .collect()
    }

    /// A `[[device]]` block that reads this device, to paste into the configuration.
    pub fn suggested_device(&self) -> String {
        self.device_block(self.suggested_role(), None)
    }

    /// The block for `role`; `part` names the models read when the map serves
    /// several roles (a suffix for the id, and the models in words).
    fn device_block(&self, role: Role, part: Option<(&str, &str)>) -> String {
        let name = self
            .sunspec
            .as_ref()
            .and_then(|s| s.common.as_ref())
            .map(|c| format!("{} {}", c.manufacturer, c.model).trim().to_string())
            .filter(|n| !n.is_empty());
        let id = name
            .as_deref()
            .map(slug)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("{}-{}", slug(&self.profile), self.target.unit));
        let id = match part {
            Some((suffix, _)) => format!("{id}-{suffix}"),
            None => id,
        };
        let mut out = String::from("[[device]]\n");
        if let Some((_, models)) = part {
            out.push_str(&format!("# read from its {models}\n"));
        }
        out.push_str(&format!("id = {}\n", toml_string(&id)));
        if let Some(n) = &name {
            out.push_str(&format!("name = {}\n", toml_string(n)));
        }
        out.push_str(&format!(
            "role = \"{}\"                # check: pv | grid | battery | load\n",
            role.as_str()
        ));
        out.push_str(&format!("profile = {}\n", toml_string(&self.profile)));
        match &self.target.link {
            Link::Tcp { host, port } => out.push_str(&format!(
                "modbus = {{ host = {}, port = {port}, unit = {} }}\n",
                toml_string(host),
                self.target.unit
            )),
            Link::Serial(s) => out.push_str(&format!(
                "serial = {{ path = {}, baud = {}, parity = \"{}\", stop_bits = {}, unit = {} }}\n",
                toml_string(&s.path),
                s.baud,
                s.parity.as_str(),
                s.stop_bits,
                self.target.unit
            )),
        }
        out.push_str("poll_interval = \"1s\"\n");
        out
    }

    /// A plain-text account of what was found, for the terminal.
    pub fn to_text(&self) -> String {
        let mut out = format!("{}: profile {}\n", self.target, self.profile);
        if let Some(s) = &self.sunspec {
            out.push_str(&format!("SunSpec map at {}\n", s.base));
            if let Some(c) = &s.common {
                out.push_str(&format!(
                    "  device: {} {} (serial {}, version {})\n",
                    c.manufacturer, c.model, c.serial, c.version
                ));
            }
            for m in &s.models {
                out.push_str(&format!(
                    "  model {:>5} {:<36} at {:>5}, L = {:>3}{}\n",
                    m.id,
                    m.name.unwrap_or("(unknown)"),
                    m.address,
                    m.length,
                    match &m.decoded {
                        Ok(()) => String::new(),
                        Err(why) => format!("  [{why}]"),
                    }
                ));
            }
        }
        for v in &self.values {
            out.push_str(&format!(
                "  {:<18} {:>14}  {}\n",
                v.sample.metric.as_str(),
                v.sample.value,
                origin_text(v, &self.raw_blocks)
            ));
        }
        for (code, what) in &self.exceptions {
            out.push_str(&format!("  exception {code:#04x}: {what}\n"));
        }
        out.push_str(&format!(
            "{} requests per poll ({} in this probe)\n",
            self.poll_transactions, self.transactions
        ));
        out
    }

    /// Whether anything useful answered: SunSpec models, or decoded values.
    pub fn found_anything(&self) -> bool {
        !self.values.is_empty() || self.sunspec.as_ref().is_some_and(|s| !s.models.is_empty())
    }

    /// The decoded value of `metric`, in the device's own convention.
    pub fn value(&self, metric: Metric) -> Option<f64> {
        self.values
            .iter()
            .find(|v| v.sample.metric == metric)
            .map(|v| v.sample.value)
    }
}

/// `holding 40084 = [04D2] (103.W)`: the registers a value came from.
pub fn origin_text(v: &DecodedPoint, raw: &[RawBlock]) -> String {
    origin_text_of(&v.origin, raw)
}

/// The registers of `origin` as read in `raw` (`holding 40084 = [04D2], SF 40085 =
/// [FFFF] (103.W)`, `?` for registers not read), or the topic and JSON path of a
/// payload.
pub fn origin_text_of(origin: &sensors::model::Origin, raw: &[RawBlock]) -> String {
    match origin {
        sensors::model::Origin::Modbus {
            kind,
            address,
            count,
            point,
            scale_address,
        } => {
            let words = |a: u16, n: u16| {
                raw.iter()
                    .find_map(|b| b.words(*kind, a, n))
                    .map(|w| {
                        w.iter()
                            .map(|x| format!("{x:04X}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_else(|| "?".into())
            };
            let mut s = format!(
                "{} {address} = [{}]",
                kind.as_str(),
                words(*address, *count)
            );
            if let Some(sf) = scale_address {
                s.push_str(&format!(", SF {sf} = [{}]", words(*sf, 1)));
            }
            if let Some(p) = point {
                s.push_str(&format!(" ({p})"));
            }
            s
        }
        sensors::model::Origin::Mqtt { topic, path } => format!("{topic} {path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_with_defaults_and_errors_name_the_target() {
        let t = ProbeTarget::parse("modbus-tcp://192.168.1.20:1502/3").expect("tcp");
        assert_eq!(
            t,
            ProbeTarget {
                link: Link::Tcp {
                    host: "192.168.1.20".into(),
                    port: 1502
                },
                unit: 3
            }
        );
        // A bare address, as typed on a roof: Modbus TCP, port 502, unit 1.
        for bare in ["192.168.1.20", " 192.168.1.20 "] {
            let t = ProbeTarget::parse(bare).expect("bare address");
            assert_eq!(
                (t.link.clone(), t.unit),
                (
                    Link::Tcp {
                        host: "192.168.1.20".into(),
                        port: 502
                    },
                    1
                )
            );
        }
        let t = ProbeTarget::parse("192.168.1.20:1502/3").expect("bare with port and unit");
        assert_eq!(t.unit, 3);
        assert!(matches!(t.link, Link::Tcp { port: 1502, .. }));
        let t = ProbeTarget::parse("/dev/ttyUSB0").expect("bare serial port");
        assert!(matches!(&t.link, Link::Serial(s) if s.path == "/dev/ttyUSB0" && s.baud == 9600));
        let t = ProbeTarget::parse("modbus-tcp://inverter.local").expect("defaults");
        assert_eq!(
            (t.unit, t.link.key()),
            (1, "tcp://inverter.local:502".to_string())
        );
        let t = ProbeTarget::parse("modbus-rtu:///dev/ttyUSB0?baud=19200&parity=even&unit=7")
            .expect("rtu");
        assert_eq!(t.unit, 7);
        assert_eq!(t.link.describe(), "modbus-rtu /dev/ttyUSB0 19200 8E1");
        // DESIGN.md §7's spelling reads the same.
        let serial = ProbeTarget::parse("serial:///dev/ttyUSB0?baud=19200&parity=even&unit=7")
            .expect("serial");
        assert_eq!(serial, t);
        let t = ProbeTarget::parse(" serial:///dev/ttyAMA0 ").expect("defaults");
        assert_eq!(
            (t.unit, t.link.describe()),
            (1, "modbus-rtu /dev/ttyAMA0 9600 8N1".to_string())
        );
        for bad in [
            "tcp://x",
            "modbus-tcp://x:port",
            "modbus-tcp://x/300",
            "modbus-rtu:///dev/x?speed=1",
            "modbus-rtu://?baud=9600",
            "serial://?unit=1",
            "serial:///dev/ttyUSB0?unit=0",
            "serial:///dev/ttyUSB0?parity=mark",
            "",
        ] {
            let e = ProbeTarget::parse(bad).expect_err(bad).to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(slug("Fronius Symo 8.2-3-M"), "fronius-symo-8-2-3-m");
    }
}
