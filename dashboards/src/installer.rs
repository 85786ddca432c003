//! The installer's page (`/installer`, role `installer`): every device with its
//! health told in words and icon (up, degraded, down), when it was last read, its
//! failures, latency and bus traffic against its read plan, the last exception,
//! and its last decoded values beside the raw registers or payload they came
//! from; and a probe form whose result (SunSpec models, a profile's values, the
//! `[[device]]` block to paste) is shown below it. The probe itself runs in the
//! `web` crate; this module only arranges and phrases what it found.

use std::collections::BTreeMap;
use std::time::Duration;

use askama::Template;
use chrono::{DateTime, Utc};
use ingest::diagnosis::Diagnosis;
use ingest::metrics::{DeviceDiagnostics, DeviceHealth, HealthState, ModelInfo, RawBlock};
use ingest::probe::{ProbeReport, origin_text_of};
use query::live::LiveSnapshot;
use sensors::modbus::RegisterKind;
use sensors::model::Metric;
use sensors::profile::{Profile, Transport};

use crate::format::{NO_VALUE, format_moment};
use crate::layout::{Layout, render};
use crate::{Catalog, Lang, Result, SiteInfo};

/// How old the last reading of a device the configuration does not list (and so
/// the live evaluation does not judge) may be before it shows as down.
const UNLISTED_MAX_AGE: Duration = Duration::from_secs(60);

/// One device as the installer sees it: what the live evaluation says of it (its
/// name, role and state over its own freshness window) and what ingest keeps of it.
/// [`installer_devices`] lists them; the page and `GET /api/devices` show the same.
#[derive(Debug, Clone, Copy)]
pub struct InstallerDevice<'a> {
    pub id: &'a str,
    pub name: &'a str,
    /// `pv`, `grid`, `battery` or `load`; `None` for a device no longer configured.
    pub role: Option<&'static str>,
    pub state: HealthState,
    /// As `/api/live` says it: up, recently.
    pub healthy: bool,
    pub health: Option<&'a DeviceHealth>,
    pub diagnostics: Option<&'a DeviceDiagnostics>,
}

/// The configured devices in the order of the configuration, then any other device
/// ingest knows of, by id.
pub fn installer_devices<'a>(
    snapshot: &'a LiveSnapshot,
    health: &'a BTreeMap<String, DeviceHealth>,
    diagnostics: &'a BTreeMap<String, DeviceDiagnostics>,
    now: DateTime<Utc>,
) -> Vec<InstallerDevice<'a>> {
    let mut devices: Vec<InstallerDevice<'a>> = snapshot
        .devices
        .iter()
        .map(|d| InstallerDevice {
            id: &d.id,
            name: &d.name,
            role: Some(d.role),
            state: d.state,
            healthy: d.healthy,
            health: health.get(&*d.id),
            diagnostics: diagnostics.get(&*d.id),
        })
        .collect();
    let listed = |id: &str| snapshot.devices.iter().any(|d| &*d.id == id);
    let mut others: Vec<&'a str> = health
        .keys()
        .chain(diagnostics.keys())
        .map(String::as_str)
        .filter(|id| !listed(id))
        .collect();
    others.sort_unstable();
    others.dedup();
    for id in others {
        let h = health.get(id);
        let state = h.map_or(HealthState::Down, |h| h.state(now, UNLISTED_MAX_AGE));
        devices.push(InstallerDevice {
            id,
            name: id,
            role: None,
            state,
            healthy: h.is_some_and(|h| h.is_up(now, UNLISTED_MAX_AGE)),
            health: h,
            diagnostics: diagnostics.get(id),
        });
    }
    devices
}

/// The probe form as typed (or as first offered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeForm {
    /// `modbus-tcp://HOST:PORT/UNIT` or `serial:///dev/ttyUSB0?baud=9600&unit=1`.
    pub address: String,
    /// A Modbus profile id; empty to look for SunSpec models.
    pub profile: String,
    /// Per request, e.g. `2s`, `500ms`, or a number of seconds.
    pub timeout: String,
}

impl Default for ProbeForm {
    fn default() -> Self {
        ProbeForm {
            address: String::new(),
            profile: String::new(),
            timeout: "2s".to_string(),
        }
    }
}

/// What became of a probe.
#[derive(Debug, Clone)]
pub enum ProbeOutcome {
    /// Something answered at the address; the report says what (it may be only
    /// refusals).
    Found(Box<ProbeReport>),
    /// No address was typed.
    MissingAddress,
    /// The address could not be read; `why` says what is wrong with it.
    BadAddress {
        why: String,
    },
    BadTimeout {
        value: String,
    },
    /// Not a profile read over Modbus.
    BadProfile {
        why: String,
    },
    /// Nothing answered as a Modbus device: no connection, no answer in time, no
    /// SunSpec marker. `why` is the probe's own account.
    Failed {
        why: String,
    },
    /// The probe as a whole took longer than this.
    TimedOut {
        after: Duration,
    },
}

/// Everything the page shows.
#[derive(Debug)]
pub struct InstallerView<'a> {
    /// The count of new matches on the planning board, for the navigation.
    pub new_matches: usize,
    pub devices: &'a [InstallerDevice<'a>],
    pub form: &'a ProbeForm,
    pub outcome: Option<&'a ProbeOutcome>,
    /// The session's CSRF token for the forms.
    pub csrf: &'a str,
    /// Who is signed in.
    pub member: &'a str,
    /// The member's roles: which pages the navigation offers.
    pub roles: &'a [ledger::Role],
    pub now: DateTime<Utc>,
    /// The node's disk: a warning when it is low on space or failing.
    pub storage: ingest::metrics::StorageStatus,
    /// How the node serves its pages over HTTPS, when it does: the certificate's
    /// fingerprints, to compare with what a browser shows before trusting it.
    pub https: Option<HttpsShown<'a>>,
}

/// The node's HTTPS certificate as the installer's page shows it.
#[derive(Debug, Clone, Copy)]
pub struct HttpsShown<'a> {
    /// SHA-256 of the certificate, hex pairs joined by `:`.
    pub fingerprint: &'a str,
    /// SHA-256 of its public key, base64 (for pinning).
    pub spki_sha256: &'a str,
    /// The node made it itself (nobody vouches for it: pin it).
    pub generated: bool,
}

struct FigureLine {
    label: &'static str,
    value: String,
    /// Shown as a warning (a failure count above zero, traffic above the plan).
    warn: bool,
}

struct ModelLine {
    id: u16,
    name: String,
    address: u16,
    length: u16,
    decoded: String,
}

struct ValueLine {
    metric: &'static str,
    value: String,
    /// The device's own figure, when the site's sign convention turned it.
    device_value: Option<String>,
    origin: String,
    at: String,
}

struct RawLine {
    request: String,
    answer: String,
    refused: bool,
}

struct PayloadLine {
    topic: String,
    at: String,
    payload: String,
    rejected: Option<String>,
}

struct DeviceCard {
    id: String,
    name: String,
    subtitle: String,
    state: &'static str,
    icon: &'static str,
    state_word: &'static str,
    state_hint: String,
    /// What the device is doing, in words: "produit 2,2 kW".
    doing: Option<String>,
    figures: Vec<FigureLine>,
    last_error: Option<String>,
    /// When and why readings were last turned away.
    last_reject: Option<String>,
    identity: Option<String>,
    sunspec_heading: Option<String>,
    models: Vec<ModelLine>,
    values: Vec<ValueLine>,
    raw_heading: Option<String>,
    raw: Vec<RawLine>,
    payloads: Vec<PayloadLine>,
}

struct ProfileChoice {
    value: &'static str,
    label: String,
    selected: bool,
}

struct ProbeResult {
    heading: String,
    sunspec_heading: Option<String>,
    identity: Option<String>,
    models: Vec<ModelLine>,
    values: Vec<ValueLine>,
    exceptions: Vec<String>,
    traffic: String,
    /// Set when nothing useful came back: no models, no values.
    empty: Option<String>,
    block: Option<String>,
}

/// The HTTPS section of the page.
struct HttpsLines {
    fingerprint: String,
    spki_sha256: String,
    /// Who made the certificate and what to do with the fingerprint.
    how: String,
}

#[derive(Template)]
#[template(path = "installer.html")]
struct InstallerTemplate<'a> {
    csrf: &'a str,
    summary: String,
    /// The devices that are not fully up, named and linked at the top.
    attention: Vec<AttentionLine>,
    devices: Vec<DeviceCard>,
    form: &'a ProbeForm,
    profiles: Vec<ProfileChoice>,
    /// A problem with the form or an address where nothing answered.
    probe_problem: Option<String>,
    /// The probe's own words, under the problem.
    probe_detail: Option<String>,
    result: Option<ProbeResult>,
    /// The node's disk is low or failing.
    storage_warning: Option<String>,
    /// The HTTPS certificate's fingerprints and what to do with them.
    https: Option<HttpsLines>,
    /// The data directory is not encrypted.
    clear_text_warning: Option<String>,
    layout: Layout<'a>,
}

/// Icon and catalog keys (word, hint) of a health state.
fn state_parts(state: HealthState) -> (&'static str, &'static str, &'static str) {
    match state {
        HealthState::Up => ("✔", "installer.state_up", "installer.state_up_hint"),
        HealthState::Degraded => (
            "◐",
            "installer.state_degraded",
            "installer.state_degraded_hint",
        ),
        HealthState::Down => ("✖", "installer.state_down", "installer.state_down_hint"),
    }
}

/// The unit a canonical metric is counted in, from its name.
fn unit_of(metric: Metric) -> &'static str {
    let name = metric.as_str();
    if name.ends_with("_wh") {
        "Wh"
    } else if name.ends_with("_w") {
        "W"
    } else if name.ends_with("_v") {
        "V"
    } else if name.ends_with("_a") {
        "A"
    } else if name.ends_with("_hz") {
        "Hz"
    } else if name.ends_with("_pct") {
        "%"
    } else if name.ends_with("_c") {
        "°C"
    } else {
        ""
    }
}

/// A measured value as read, to three decimals at most, with its unit.
fn format_reading(value: f64, metric: Metric, lang: Lang) -> String {
    if !value.is_finite() {
        return NO_VALUE.to_string();
    }
    let mut number = format!("{value:.3}");
    if number.contains('.') {
        number = number
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string();
    }
    if number == "-0" {
        number = "0".to_string();
    }
    if lang == Lang::Fr {
        number = number.replace('.', ",");
    }
    let number = number.replacen('-', "\u{2212}", 1);
    match unit_of(metric) {
        "" => number,
        unit => format!("{number} {unit}"),
    }
}

fn format_latency(latency: Duration, lang: Lang) -> String {
    let ms = latency.as_secs_f64() * 1000.0;
    let text = if ms < 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    };
    let text = if lang == Lang::Fr {
        text.replace('.', ",")
    } else {
        text
    };
    format!("{text} ms")
}

/// "12:03:04 (il y a 3 s)": the moment, and how long ago while that is short.
fn moment_ago(at: DateTime<Utc>, now: DateTime<Utc>, tz: chrono_tz::Tz, t: &Catalog) -> String {
    let moment = format_moment(at, now, tz);
    let age = (now - at).num_seconds().max(0);
    if age < 120 {
        format!(
            "{moment} ({})",
            t.tf("installer.seconds_ago", &[("n", &age.to_string())])
        )
    } else if age < 2 * 3600 {
        format!(
            "{moment} ({})",
            t.tf("installer.minutes_ago", &[("n", &(age / 60).to_string())])
        )
    } else {
        moment
    }
}

/// "0x02 adresse de données illégale" in the reader's language.
/// One device needing a look, as the top of the page names it.
struct AttentionLine {
    id: String,
    name: String,
    icon: &'static str,
    state_word: &'static str,
}

/// For a device that publishes when it likes (MQTT) and has gone quiet: how long,
/// and what the two windows mean, so that "degraded" here and "stale" on the wall
/// read as the same silence.
fn silent_hint(d: &InstallerDevice<'_>, now: DateTime<Utc>, t: &Catalog) -> Option<String> {
    let polled = d
        .diagnostics
        .is_some_and(|x| x.transport.starts_with("modbus"))
        || d.health.is_some_and(|h| h.planned_transactions.is_some());
    let h = d.health?;
    if polled || d.state != HealthState::Degraded || h.consecutive_failures > 0 {
        return None;
    }
    let age = (now - h.last_success?).to_std().ok()?;
    (age > query::engine::STALE_AFTER).then(|| {
        t.tf(
            "installer.state_silent_hint",
            &[
                ("age", &age.as_secs().to_string()),
                ("stale", &query::engine::STALE_AFTER.as_secs().to_string()),
                ("max", &query::engine::VALUE_MAX_AGE.as_secs().to_string()),
            ],
        )
    })
}

/// "produit 2,2 kW", "prélève 640 W sur le réseau", "se charge à 1,2 kW · 62 %":
/// the device's last power reading said for its role.
fn doing_text(d: &InstallerDevice<'_>, t: &Catalog, lang: Lang) -> Option<String> {
    let values = &d.diagnostics?.values;
    let power = values.get(&Metric::PowerW).map(|v| v.value);
    let soc = values.get(&Metric::SocPct).map(|v| v.value);
    const RESTING_W: f64 = 20.0;
    let p = |w: f64| crate::format_power(w.abs(), lang);
    let text = match (d.role?, power) {
        ("pv", Some(w)) if w >= RESTING_W => t.tf("installer.doing.producing", &[("power", &p(w))]),
        ("pv", Some(_)) => t.t("installer.doing.not_producing").to_string(),
        ("grid", Some(w)) if w >= RESTING_W => {
            t.tf("installer.doing.importing", &[("power", &p(w))])
        }
        ("grid", Some(w)) if w <= -RESTING_W => {
            t.tf("installer.doing.exporting", &[("power", &p(w))])
        }
        ("grid", Some(_)) => t.t("installer.doing.balanced").to_string(),
        ("battery", Some(w)) if w >= RESTING_W => {
            t.tf("installer.doing.discharging", &[("power", &p(w))])
        }
        ("battery", Some(w)) if w <= -RESTING_W => {
            t.tf("installer.doing.charging", &[("power", &p(w))])
        }
        ("battery", Some(_)) => t.t("installer.doing.resting").to_string(),
        ("load", Some(w)) => t.tf("installer.doing.consuming", &[("power", &p(w.max(0.0)))]),
        _ => return None,
    };
    Some(match soc {
        Some(pct) => format!("{text} · {}", crate::format_percent(pct, lang)),
        None => text,
    })
}

/// A device's failure in the page's language, when it is one ingest words (see
/// [`Diagnosis`]); any other text as it is.
pub(crate) fn diagnosis_text(text: &str, t: &Catalog) -> String {
    let Some(d) = Diagnosis::parse(text) else {
        return text.to_string();
    };
    let kind = |k: RegisterKind| match k {
        RegisterKind::Holding => t.t("installer.diag.holding"),
        RegisterKind::Input => t.t("installer.diag.input"),
    };
    match d {
        Diagnosis::NoAnswer {
            timeout_ms,
            count,
            kind: k,
            start,
        } => t.tf(
            "installer.diag.no_answer",
            &[
                ("ms", &timeout_ms.to_string()),
                ("count", &count.to_string()),
                ("kind", kind(k)),
                ("start", &start.to_string()),
            ],
        ),
        Diagnosis::Transport {
            count,
            kind: k,
            start,
            error,
        } => t.tf(
            "installer.diag.transport",
            &[
                ("count", &count.to_string()),
                ("kind", kind(k)),
                ("start", &start.to_string()),
                ("error", &error),
            ],
        ),
        Diagnosis::WrongLength {
            count,
            kind: k,
            start,
            got,
        } => t.tf(
            "installer.diag.wrong_length",
            &[
                ("count", &count.to_string()),
                ("kind", kind(k)),
                ("start", &start.to_string()),
                ("got", &got.to_string()),
            ],
        ),
        Diagnosis::Refused {
            count,
            kind: k,
            start,
            exception,
        } => t.tf(
            "installer.diag.refused",
            &[
                ("count", &count.to_string()),
                ("kind", kind(k)),
                ("start", &start.to_string()),
                ("exception", &exception),
            ],
        ),
        Diagnosis::ResolveTimeout { target } => {
            t.tf("installer.diag.resolve_timeout", &[("target", &target)])
        }
        Diagnosis::CannotResolve { target, error } => t.tf(
            "installer.diag.cannot_resolve",
            &[("target", &target), ("error", &error)],
        ),
        Diagnosis::NoAddress { target } => {
            t.tf("installer.diag.no_address", &[("target", &target)])
        }
        Diagnosis::ConnectTimeout { target, timeout_ms } => t.tf(
            "installer.diag.connect_timeout",
            &[("target", &target), ("ms", &timeout_ms.to_string())],
        ),
        Diagnosis::CannotConnect { target, error } => t.tf(
            "installer.diag.cannot_connect",
            &[("target", &target), ("error", &error)],
        ),
        Diagnosis::CannotOpenSerial { path, error } => t.tf(
            "installer.diag.cannot_open_serial",
            &[("path", &path), ("error", &error)],
        ),
    }
}

fn exception_text(code: u8, t: &Catalog) -> String {
    let key = format!("installer.exception_{code}");
    let name = t.t(&key);
    if name == key {
        format!("0x{code:02X}")
    } else {
        format!("0x{code:02X} {name}")
    }
}

fn role_word(role: &str, t: &'static Catalog) -> &'static str {
    match role {
        "pv" => t.t("installer.role_pv"),
        "grid" => t.t("installer.role_grid"),
        "battery" => t.t("installer.role_battery"),
        "load" => t.t("installer.role_load"),
        _ => t.t("installer.role_unlisted"),
    }
}

fn model_lines(models: &[ModelInfo], t: &Catalog) -> Vec<ModelLine> {
    models
        .iter()
        .map(|m| ModelLine {
            id: m.id,
            name: m.name.unwrap_or(t.t("installer.model_unknown")).to_string(),
            address: m.address,
            length: m.length,
            decoded: match &m.decoded {
                Ok(()) => t.t("installer.model_decoded").to_string(),
                // Model 1 names the device; it has no measured values.
                Err(_) if m.id == 1 => t.t("installer.model_common").to_string(),
                Err(why) => why.clone(),
            },
        })
        .collect()
}

fn words_hex(words: &[u16]) -> String {
    words
        .iter()
        .map(|w| format!("{w:04X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn raw_lines(blocks: &[RawBlock], t: &Catalog) -> Vec<RawLine> {
    blocks
        .iter()
        .map(|b| {
            let request = t.tf(
                "installer.raw_request",
                &[
                    ("kind", b.kind.as_str()),
                    ("count", &b.count.to_string()),
                    ("start", &b.start.to_string()),
                ],
            );
            match &b.result {
                Ok(words) => RawLine {
                    request,
                    answer: words_hex(words),
                    refused: false,
                },
                Err(code) => RawLine {
                    request,
                    answer: t.tf(
                        "installer.raw_refused",
                        &[("exception", &exception_text(*code, t))],
                    ),
                    refused: true,
                },
            }
        })
        .collect()
}

fn device_card(
    d: &InstallerDevice<'_>,
    now: DateTime<Utc>,
    lang: Lang,
    site: &SiteInfo,
) -> DeviceCard {
    let t = Catalog::for_lang(lang);
    let tz = site.timezone;
    let (icon, word, hint) = state_parts(d.state);
    let diag = d.diagnostics;
    let h = d.health;
    let role = role_word(d.role.unwrap_or_default(), t);
    let mut subtitle = format!("{} · {role}", d.id);
    if let Some(diag) = diag {
        if !diag.profile.is_empty() {
            subtitle.push_str(&format!(" · {}", diag.profile));
        }
        if !diag.transport.is_empty() {
            subtitle.push_str(&format!(" · {}", diag.transport));
        }
    }
    let polled = h
        .is_some_and(|h| h.last_cycle_transactions.is_some() || h.planned_transactions.is_some())
        || diag.is_some_and(|d| d.transport.starts_with("modbus"));
    let mut figures = vec![FigureLine {
        label: t.t("installer.last_success"),
        value: h.and_then(|h| h.last_success).map_or_else(
            || t.t("installer.never").to_string(),
            |at| moment_ago(at, now, tz, t),
        ),
        warn: h.and_then(|h| h.last_success).is_none(),
    }];
    let failures = h.map_or(0, |h| h.consecutive_failures);
    figures.push(FigureLine {
        label: t.t("installer.failures"),
        value: failures.to_string(),
        warn: failures > 0,
    });
    if polled {
        figures.push(FigureLine {
            label: t.t("installer.latency"),
            value: h
                .and_then(|h| h.last_latency)
                .map_or_else(|| NO_VALUE.to_string(), |l| format_latency(l, lang)),
            warn: false,
        });
        let last = h.and_then(|h| h.last_cycle_transactions);
        let planned = h.and_then(|h| h.planned_transactions);
        let value = match (last, planned) {
            (Some(n), Some(p)) => t.tf(
                "installer.transactions_of_plan",
                &[("n", &n.to_string()), ("planned", &p.to_string())],
            ),
            (Some(n), None) => n.to_string(),
            (None, Some(p)) => t.tf(
                "installer.transactions_planned_only",
                &[("planned", &p.to_string())],
            ),
            (None, None) => NO_VALUE.to_string(),
        };
        figures.push(FigureLine {
            label: t.t("installer.transactions"),
            value,
            warn: matches!((last, planned), (Some(n), Some(p)) if n > p),
        });
        figures.push(FigureLine {
            label: t.t("installer.last_exception"),
            value: h.and_then(|h| h.last_exception).map_or_else(
                || t.t("installer.no_exception").to_string(),
                |c| exception_text(c, t),
            ),
            warn: h.and_then(|h| h.last_exception).is_some(),
        });
        figures.push(FigureLine {
            label: t.t("installer.exceptions_total"),
            value: h.map_or(0, |h| h.exceptions).to_string(),
            warn: false,
        });
    }
    figures.push(FigureLine {
        label: if polled {
            t.t("installer.polls")
        } else {
            t.t("installer.messages")
        },
        value: h.map_or(0, |h| h.polls).to_string(),
        warn: false,
    });
    // Readings the plausibility gate turned away, by reason in words.
    let rejects = diag.map(|d| &d.rejects).filter(|r| !r.is_empty());
    figures.push(FigureLine {
        label: t.t("installer.rejected"),
        value: rejects.map_or_else(
            || "0".to_string(),
            |r| {
                r.iter()
                    .map(|(reason, n)| {
                        format!(
                            "{n} {}",
                            t.t(&format!("installer.reject.{}", reason.as_str()))
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ),
        warn: rejects.is_some(),
    });

    let raw_blocks: &[RawBlock] = diag.map_or(&[], |d| &d.raw_blocks);
    let values = diag
        .map(|diag| {
            diag.values
                .values()
                .map(|v| ValueLine {
                    metric: v.metric.as_str(),
                    value: format_reading(v.value, v.metric, lang),
                    device_value: (v.device_value != v.value)
                        .then(|| format_reading(v.device_value, v.metric, lang)),
                    origin: origin_text_of(&v.origin, raw_blocks),
                    at: format_moment(v.at, now, tz),
                })
                .collect()
        })
        .unwrap_or_default();
    let payloads = diag
        .map(|diag| {
            diag.raw_payloads
                .iter()
                .map(|(topic, p)| PayloadLine {
                    topic: topic.clone(),
                    at: moment_ago(p.at, now, tz, t),
                    payload: p.payload.clone(),
                    rejected: p.rejected.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    DeviceCard {
        id: d.id.to_string(),
        name: d.name.to_string(),
        subtitle,
        state: d.state.as_str(),
        icon,
        state_word: t.t(word),
        state_hint: silent_hint(d, now, t).unwrap_or_else(|| t.t(hint).to_string()),
        doing: (d.state != HealthState::Down)
            .then(|| doing_text(d, t, lang))
            .flatten(),
        figures,
        last_error: h
            .and_then(|h| h.last_error.as_deref())
            .map(|e| diagnosis_text(e, t)),
        last_reject: diag
            .and_then(|d| d.last_reject.as_ref())
            .map(|(at, _, why)| format!("{} — {why}", moment_ago(*at, now, tz, t))),
        identity: diag.and_then(|d| d.identity.clone()),
        sunspec_heading: diag
            .and_then(|d| d.sunspec_base)
            .map(|base| t.tf("installer.sunspec_at", &[("base", &base.to_string())])),
        models: diag
            .map(|d| model_lines(&d.sunspec_models, t))
            .unwrap_or_default(),
        values,
        raw_heading: diag.and_then(|d| d.raw_at).map(|at| {
            t.tf(
                "installer.raw_heading",
                &[("at", &moment_ago(at, now, tz, t))],
            )
        }),
        raw: raw_lines(raw_blocks, t),
        payloads,
    }
}

fn probe_result(
    report: &ProbeReport,
    now: DateTime<Utc>,
    lang: Lang,
    site: &SiteInfo,
) -> ProbeResult {
    let t = Catalog::for_lang(lang);
    let sunspec = report.sunspec.as_ref();
    ProbeResult {
        heading: t.tf(
            "installer.probe_found",
            &[
                ("target", &report.target.to_string()),
                ("profile", &report.profile),
            ],
        ),
        sunspec_heading: sunspec
            .map(|s| t.tf("installer.sunspec_at", &[("base", &s.base.to_string())])),
        identity: sunspec.and_then(|s| s.common.as_ref()).map(|c| {
            t.tf(
                "installer.identity",
                &[
                    ("manufacturer", &c.manufacturer),
                    ("model", &c.model),
                    ("serial", &c.serial),
                    ("version", &c.version),
                ],
            )
        }),
        models: sunspec
            .map(|s| model_lines(&s.models, t))
            .unwrap_or_default(),
        values: report
            .values
            .iter()
            .map(|v| ValueLine {
                metric: v.sample.metric.as_str(),
                value: format_reading(v.sample.value, v.sample.metric, lang),
                device_value: None,
                origin: origin_text_of(&v.origin, &report.raw_blocks),
                at: crate::format_time(now, site.timezone),
            })
            .collect(),
        exceptions: report
            .exceptions
            .iter()
            .map(|(code, what)| {
                format!("{}: {}", exception_text(*code, t), diagnosis_text(what, t))
            })
            .collect(),
        traffic: t.tf(
            "installer.probe_traffic",
            &[
                ("poll", &report.poll_transactions.to_string()),
                ("probe", &report.transactions.to_string()),
            ],
        ),
        empty: (!report.found_anything())
            .then(|| t.tf("installer.probe_empty", &[("profile", &report.profile)])),
        block: report
            .found_anything()
            .then(|| report.suggested_devices().join("\n")),
    }
}

/// The profiles a probe can read: SunSpec discovery first, then every family
/// with fixed Modbus registers (`generic-modbus` reads the registers a device
/// lists, which the form does not ask for).
fn profile_choices(selected: &str, t: &Catalog) -> Vec<ProfileChoice> {
    let mut choices = vec![ProfileChoice {
        value: "",
        label: t.t("installer.profile_sunspec").to_string(),
        selected: selected.is_empty() || selected == "sunspec",
    }];
    for name in sensors::profile::names() {
        let Ok(profile) = sensors::profile::lookup(name) else {
            continue;
        };
        if profile.transport() != Transport::Modbus
            || matches!(profile, Profile::SunSpec)
            || name == "generic-modbus"
        {
            continue;
        }
        choices.push(ProfileChoice {
            value: name,
            label: format!("{name} — {}", profile.name()),
            selected: selected == name,
        });
    }
    choices
}

/// The installer's page as a complete HTML document.
pub fn render_installer(view: &InstallerView<'_>, lang: Lang, site: &SiteInfo) -> Result<String> {
    let t = Catalog::for_lang(lang);
    let devices: Vec<DeviceCard> = view
        .devices
        .iter()
        .map(|d| device_card(d, view.now, lang, site))
        .collect();
    let count = |state: HealthState| {
        view.devices
            .iter()
            .filter(|d| d.state == state)
            .count()
            .to_string()
    };
    let total = u64::try_from(view.devices.len()).unwrap_or(u64::MAX);
    let count_text = t.count("installer.device_count", total);
    let summary = t.tf(
        "installer.summary",
        &[
            ("count", &count_text),
            ("up", &count(HealthState::Up)),
            ("degraded", &count(HealthState::Degraded)),
            ("down", &count(HealthState::Down)),
        ],
    );
    let attention = view
        .devices
        .iter()
        .filter(|d| d.state != HealthState::Up)
        .map(|d| {
            let (icon, word, _) = state_parts(d.state);
            AttentionLine {
                id: d.id.to_string(),
                name: d.name.to_string(),
                icon,
                state_word: t.t(word),
            }
        })
        .collect();
    let (probe_problem, probe_detail, result) = match view.outcome {
        None => (None, None, None),
        Some(ProbeOutcome::Found(report)) => {
            (None, None, Some(probe_result(report, view.now, lang, site)))
        }
        Some(ProbeOutcome::MissingAddress) => (
            Some(t.t("installer.probe_missing_address").to_string()),
            None,
            None,
        ),
        Some(ProbeOutcome::BadAddress { why }) => (
            Some(t.t("installer.probe_bad_address").to_string()),
            Some(why.clone()),
            None,
        ),
        Some(ProbeOutcome::BadTimeout { value }) => (
            Some(t.tf("installer.probe_bad_timeout", &[("value", value)])),
            None,
            None,
        ),
        Some(ProbeOutcome::BadProfile { why }) => (
            Some(t.t("installer.probe_bad_profile").to_string()),
            Some(why.clone()),
            None,
        ),
        Some(ProbeOutcome::Failed { why }) => (
            Some(t.tf(
                "installer.probe_failed",
                &[("address", view.form.address.trim())],
            )),
            // "probing TARGET: WHY": the target is in the sentence above.
            Some(diagnosis_text(
                why.strip_prefix("probing ")
                    .and_then(|rest| rest.split_once(": "))
                    .map_or(why.as_str(), |(_, what)| what),
                t,
            )),
            None,
        ),
        Some(ProbeOutcome::TimedOut { after }) => (
            Some(t.tf(
                "installer.probe_timed_out",
                &[
                    ("address", view.form.address.trim()),
                    ("seconds", &after.as_secs().to_string()),
                ],
            )),
            None,
            None,
        ),
    };
    let page = InstallerTemplate {
        csrf: view.csrf,
        summary,
        attention,
        devices,
        form: view.form,
        profiles: profile_choices(view.form.profile.trim(), t),
        probe_problem,
        probe_detail,
        result,
        storage_warning: crate::storage::storage_notice(&view.storage, lang),
        https: view.https.map(|h| HttpsLines {
            fingerprint: h.fingerprint.to_string(),
            spki_sha256: h.spki_sha256.to_string(),
            how: t
                .t(if h.generated {
                    "installer.https_generated"
                } else {
                    "installer.https_provided"
                })
                .to_string(),
        }),
        clear_text_warning: view
            .storage
            .clear_text
            .then(|| t.t("storage.clear_text").to_string()),
        layout: Layout::new(lang, site, t.t("installer.title")).with_nav(
            crate::nav::member_nav("/installer", view.roles, view.member, view.csrf, t)
                .with_new_matches(view.new_matches, t),
        ),
    };
    render(&page, "installer.html")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_for_refusing_readings_is_said_in_both_languages() {
        for lang in [Lang::Fr, Lang::En] {
            for reason in ingest::plausible::RejectReason::ALL {
                let key = format!("installer.reject.{}", reason.as_str());
                assert_ne!(lang.catalog().t(&key), key, "{lang:?}");
            }
        }
    }

    #[test]
    fn readings_show_three_decimals_at_most_with_their_unit() {
        assert_eq!(
            format_reading(228.87921142578125, Metric::VoltageL1V, Lang::Fr),
            "228,879 V"
        );
        assert_eq!(format_reading(4321.0, Metric::PowerW, Lang::En), "4321 W");
        assert_eq!(
            format_reading(-640.5, Metric::PowerW, Lang::En),
            "\u{2212}640.5 W"
        );
        assert_eq!(
            format_reading(61_250_000.0, Metric::EnergyExportWh, Lang::En),
            "61250000 Wh"
        );
        assert_eq!(format_reading(4.0, Metric::Status, Lang::Fr), "4");
        assert_eq!(format_reading(-0.0001, Metric::CurrentA, Lang::Fr), "0 A");
        assert_eq!(format_reading(f64::NAN, Metric::PowerW, Lang::Fr), "—");
    }

    #[test]
    fn latencies_and_exceptions() {
        assert_eq!(
            format_latency(Duration::from_micros(3_400), Lang::Fr),
            "3,4 ms"
        );
        assert_eq!(format_latency(Duration::from_millis(35), Lang::En), "35 ms");
        let en = Catalog::for_lang(Lang::En);
        assert_eq!(exception_text(2, en), "0x02 illegal data address");
        assert_eq!(exception_text(0x42, en), "0x42");
    }
}

#[cfg(test)]
mod words_tests {
    use ingest::diagnosis::Diagnosis;
    use sensors::modbus::RegisterKind;

    use super::*;

    #[test]
    fn failures_are_said_in_the_pages_language() {
        let text = Diagnosis::NoAnswer {
            timeout_ms: 1000,
            count: 37,
            kind: RegisterKind::Holding,
            start: 40072,
        }
        .to_string();
        let fr = diagnosis_text(&text, Catalog::for_lang(Lang::Fr));
        assert_eq!(
            fr,
            "pas de réponse en 1000 ms à la lecture de 37 registres de maintien (holding) à l'adresse 40072"
        );
        let en = diagnosis_text(&text, Catalog::for_lang(Lang::En));
        assert!(en.starts_with("no answer within 1000 ms"), "{en}");
        let refused = Diagnosis::CannotConnect {
            target: "192.168.1.20:502".into(),
            error: "Connection refused (os error 111)".into(),
        }
        .to_string();
        assert_eq!(
            diagnosis_text(&refused, Catalog::for_lang(Lang::Fr)),
            "connexion à 192.168.1.20:502 impossible : Connection refused (os error 111)"
        );
        // A text ingest did not word is shown as it is.
        assert_eq!(
            diagnosis_text("the WAL is full", Catalog::for_lang(Lang::Fr)),
            "the WAL is full"
        );
    }

    #[test]
    fn every_diagnosis_has_its_words() {
        for lang in Lang::ALL {
            let t = Catalog::for_lang(lang);
            for key in [
                "installer.diag.no_answer",
                "installer.diag.transport",
                "installer.diag.wrong_length",
                "installer.diag.refused",
                "installer.diag.resolve_timeout",
                "installer.diag.cannot_resolve",
                "installer.diag.no_address",
                "installer.diag.connect_timeout",
                "installer.diag.cannot_connect",
                "installer.diag.cannot_open_serial",
            ] {
                assert_ne!(t.t(key), key, "{lang}: {key}");
            }
        }
    }
}
