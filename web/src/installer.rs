//! The installer's page and its JSON (role `installer`): `GET /installer` shows
//! every device's health and diagnostics, `POST /installer/probe` runs
//! [`ingest::probe::probe_modbus`] against the address typed in its form and shows
//! the page again with what answered there, and `GET /api/devices` gives the same
//! diagnostics as JSON. A probe reads and never writes; what it could not do (an
//! address that is not one, a host that does not answer) is told in the page,
//! never as a server error.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CACHE_CONTROL;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use dashboards::{InstallerDevice, InstallerView, ProbeForm, ProbeOutcome};
use ingest::metrics::{DeviceDiagnostics, DeviceHealth, RawBlock};
use ingest::probe::{ProbeOptions, ProbeTarget, origin_text_of, probe_modbus};
use sensors::model::Origin;
use sensors::profile::Profile;
use serde_json::{Value, json};

use crate::auth::{CSRF_FIELD, CurrentMember};
use crate::lang::PageLang;
use crate::tls::TlsShown;
use crate::{AppError, AppState};

/// The per-request timeouts the form accepts.
const TIMEOUT_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(50)..=Duration::from_secs(30);
/// The longest a whole probe may take (discovery walks every model header, one
/// request each), however long its requests may each take.
const PROBE_DEADLINE: Duration = Duration::from_secs(60);

/// `GET /installer`: the devices, and an empty probe form.
pub(crate) async fn page(
    State(state): State<AppState>,
    https: Option<Extension<Arc<TlsShown>>>,
    lang: PageLang,
    member: CurrentMember,
) -> Result<Response, AppError> {
    render(
        StatusCode::OK,
        &state,
        https.as_deref().map(|s| &**s),
        &lang,
        &member,
        &ProbeForm::default(),
        None,
    )
}

/// `POST /installer/probe` (form fields `address`, `profile`, `timeout`): the page
/// again, with what the probe found or why it found nothing. 422 when the form
/// itself is wrong; 200 once the probe ran, whatever answered.
pub(crate) async fn probe(
    State(state): State<AppState>,
    https: Option<Extension<Arc<TlsShown>>>,
    lang: PageLang,
    member: CurrentMember,
    body: Bytes,
) -> Result<Response, AppError> {
    let form = read_form(&body);
    let outcome = match checked(&form) {
        Err(problem) => problem,
        Ok((target, options)) => {
            tracing::info!(member = %member.member.name, %target, profile = ?options.profile, "probe");
            let deadline = (options.timeout * 30).min(PROBE_DEADLINE);
            match tokio::time::timeout(deadline, probe_modbus(&target, &options)).await {
                Ok(Ok(report)) => ProbeOutcome::Found(Box::new(report)),
                Ok(Err(e)) => ProbeOutcome::Failed { why: e.to_string() },
                Err(_) => ProbeOutcome::TimedOut { after: deadline },
            }
        }
    };
    let status = match outcome {
        ProbeOutcome::MissingAddress
        | ProbeOutcome::BadAddress { .. }
        | ProbeOutcome::BadTimeout { .. }
        | ProbeOutcome::BadProfile { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::OK,
    };
    render(
        status,
        &state,
        https.as_deref().map(|s| &**s),
        &lang,
        &member,
        &form,
        Some(&outcome),
    )
}

/// The form as typed; fields it does not have are ignored (nothing is recorded).
fn read_form(body: &[u8]) -> ProbeForm {
    let mut form = ProbeForm {
        timeout: String::new(),
        ..ProbeForm::default()
    };
    for (name, value) in form_urlencoded::parse(body) {
        match &*name {
            "address" => form.address = value.into_owned(),
            "profile" => form.profile = value.into_owned(),
            "timeout" => form.timeout = value.into_owned(),
            CSRF_FIELD => {}
            _ => {}
        }
    }
    if form.timeout.trim().is_empty() {
        form.timeout = ProbeForm::default().timeout;
    }
    form
}

/// The probe the form asks for, or why it cannot be run.
fn checked(form: &ProbeForm) -> Result<(ProbeTarget, ProbeOptions), ProbeOutcome> {
    let address = form.address.trim();
    if address.is_empty() {
        return Err(ProbeOutcome::MissingAddress);
    }
    let target =
        ProbeTarget::parse(address).map_err(|e| ProbeOutcome::BadAddress { why: e.to_string() })?;
    let timeout = parse_timeout(&form.timeout).ok_or_else(|| ProbeOutcome::BadTimeout {
        value: form.timeout.clone(),
    })?;
    let profile = match form.profile.trim() {
        "" | "sunspec" => None,
        name => match sensors::profile::lookup(name) {
            Ok(Profile::Mqtt(p)) => {
                return Err(ProbeOutcome::BadProfile {
                    why: format!(
                        "profile `{}` is read over MQTT: its device publishes, nothing is polled",
                        p.id
                    ),
                });
            }
            Ok(_) => Some(name.to_string()),
            Err(e) => return Err(ProbeOutcome::BadProfile { why: e.to_string() }),
        },
    };
    Ok((
        target,
        ProbeOptions {
            profile,
            timeout,
            ..ProbeOptions::default()
        },
    ))
}

/// `2s`, `500ms`, or a plain number of seconds (`1.5`, `0,5`), within
/// [`TIMEOUT_RANGE`].
fn parse_timeout(text: &str) -> Option<Duration> {
    let text = text.trim().replace(',', ".");
    let duration = match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 => Duration::from_secs_f64(seconds),
        Ok(_) => return None,
        Err(_) => sensors::config::humantime_secs::parse(&text).ok()?,
    };
    TIMEOUT_RANGE.contains(&duration).then_some(duration)
}

fn render(
    status: StatusCode,
    state: &AppState,
    https: Option<&TlsShown>,
    lang: &PageLang,
    member: &CurrentMember,
    form: &ProbeForm,
    outcome: Option<&ProbeOutcome>,
) -> Result<Response, AppError> {
    // Installers see every device, households' meters included.
    let snapshot = state.live_full.borrow().clone();
    let health = state.metrics.health();
    let diagnostics = state.metrics.diagnostics();
    let now = sensors::clock::now();
    let devices = dashboards::installer_devices(&snapshot, &health, &diagnostics, now);
    let view = InstallerView {
        new_matches: member.new_matches(state),
        devices: &devices,
        form,
        outcome,
        csrf: member.csrf().unwrap_or_default(),
        member: &member.member.name,
        roles: &member.member.roles,
        now,
        storage: state.metrics.storage(),
        https: https.map(|h| dashboards::HttpsShown {
            fingerprint: &h.fingerprint,
            spki_sha256: &h.spki_sha256,
            generated: h.generated,
        }),
    };
    let html = dashboards::render_installer(&view, lang.lang, &state.site)?;
    // Live health: a cached copy would show an old state as if it were current.
    Ok(lang.page(status, html))
}

/// `GET /api/devices`: every device's health and diagnostics (see docs/reference.md).
pub(crate) async fn devices(State(state): State<AppState>) -> Response {
    // Installers see every device, households' meters included.
    let snapshot = state.live_full.borrow().clone();
    let health = state.metrics.health();
    let diagnostics = state.metrics.diagnostics();
    let now = sensors::clock::now();
    let devices: Vec<Value> = dashboards::installer_devices(&snapshot, &health, &diagnostics, now)
        .iter()
        .map(device_json)
        .collect();
    (
        [(CACHE_CONTROL, "no-store")],
        Json(json!({ "ts": now, "devices": devices })),
    )
        .into_response()
}

fn device_json(d: &InstallerDevice<'_>) -> Value {
    let empty_health = DeviceHealth::default();
    let empty_diagnostics = DeviceDiagnostics::default();
    let h = d.health.unwrap_or(&empty_health);
    let diag = d.diagnostics.unwrap_or(&empty_diagnostics);
    let raw = &diag.raw_blocks;
    json!({
        "id": d.id,
        "name": d.name,
        "role": d.role,
        "state": d.state,
        "healthy": d.healthy,
        "transport": non_empty(&diag.transport),
        "profile": non_empty(&diag.profile),
        "last_success": h.last_success,
        "consecutive_failures": h.consecutive_failures,
        "latency_ms": h.last_latency.map(|l| l.as_secs_f64() * 1000.0),
        "polls": h.polls,
        "transactions_last_cycle": h.last_cycle_transactions,
        "transactions_planned": h.planned_transactions,
        "exceptions": h.exceptions,
        "last_exception": h.last_exception.map(|code| json!({
            "code": code,
            "name": ingest::modbus::exception_name(code),
        })),
        "last_error": h.last_error,
        "identity": diag.identity,
        "sunspec": diag.sunspec_base.map(|base| json!({
            "base": base,
            "models": diag.sunspec_models.iter().map(|m| json!({
                "id": m.id,
                "name": m.name,
                "address": m.address,
                "length": m.length,
                "decoded": m.decoded.is_ok(),
                "not_decoded": m.decoded.as_ref().err(),
            })).collect::<Vec<_>>(),
        })),
        "values": diag.values.values().map(|v| json!({
            "metric": v.metric,
            "value": v.value,
            "device_value": v.device_value,
            "at": v.at,
            "origin": origin_json(&v.origin, raw),
            "origin_text": origin_text_of(&v.origin, raw),
        })).collect::<Vec<_>>(),
        "raw": diag.raw_at.map(|at| json!({
            "at": at,
            "blocks": raw.iter().map(|b| json!({
                "kind": b.kind.as_str(),
                "start": b.start,
                "count": b.count,
                "registers": b.result.as_ref().ok(),
                "exception": b.result.as_ref().err(),
            })).collect::<Vec<_>>(),
        })),
        "payloads": diag.raw_payloads.iter().map(|(topic, p)| json!({
            "topic": topic,
            "at": p.at,
            "payload": p.payload,
            "rejected": p.rejected,
        })).collect::<Vec<_>>(),
    })
}

fn non_empty(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

/// Where a value came from, with the registers it was read from when they are
/// among the last poll's (`null` when not).
fn origin_json(origin: &Origin, raw: &[RawBlock]) -> Value {
    match origin {
        Origin::Modbus {
            kind,
            address,
            count,
            point,
            scale_address,
        } => {
            let words = |a: u16, n: u16| raw.iter().find_map(|b| b.words(*kind, a, n));
            json!({
                "kind": kind.as_str(),
                "address": address,
                "count": count,
                "point": point,
                "registers": words(*address, *count),
                "scale_address": scale_address,
                "scale_register": scale_address.and_then(|a| words(a, 1)).and_then(|w| w.first()),
            })
        }
        Origin::Mqtt { topic, path } => json!({ "topic": topic, "path": path }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_read_as_installers_type_them() {
        assert_eq!(parse_timeout("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout(" 500ms "), Some(Duration::from_millis(500)));
        assert_eq!(parse_timeout("1,5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_timeout("3"), Some(Duration::from_secs(3)));
        for bad in ["", "0", "-1", "10ms", "31s", "2 secondes", "NaN", "inf"] {
            assert_eq!(parse_timeout(bad), None, "{bad}");
        }
    }

    #[test]
    fn forms_are_checked_before_anything_is_sent() {
        let form = |address: &str, profile: &str, timeout: &str| ProbeForm {
            address: address.into(),
            profile: profile.into(),
            timeout: timeout.into(),
        };
        assert!(matches!(
            checked(&form("  ", "", "2s")),
            Err(ProbeOutcome::MissingAddress)
        ));
        // A bare address is what an installer types first: port 502, unit 1.
        let (target, _) = checked(&form("192.168.1.20", "", "2s")).expect("bare address");
        assert_eq!(
            target.link,
            ingest::modbus::Link::Tcp {
                host: "192.168.1.20".into(),
                port: 502
            }
        );
        assert_eq!(target.unit, 1);
        assert!(matches!(
            checked(&form("192.168.1.20:http", "", "2s")),
            Err(ProbeOutcome::BadAddress { .. })
        ));
        assert!(matches!(
            checked(&form("modbus-tcp://x", "", "forever")),
            Err(ProbeOutcome::BadTimeout { .. })
        ));
        assert!(matches!(
            checked(&form("modbus-tcp://x", "shelly-gen2-em", "2s")),
            Err(ProbeOutcome::BadProfile { .. })
        ));
        assert!(matches!(
            checked(&form("modbus-tcp://x", "no-such-meter", "2s")),
            Err(ProbeOutcome::BadProfile { .. })
        ));
        let (target, options) = checked(&form("serial:///dev/ttyUSB0?unit=4", "sdm120", "1s"))
            .unwrap_or_else(|_| panic!("a valid form"));
        assert_eq!(target.unit, 4);
        assert_eq!(options.profile.as_deref(), Some("sdm120"));
        assert_eq!(options.timeout, Duration::from_secs(1));
    }
}
