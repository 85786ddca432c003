//! `GET /metrics` in the Prometheus text exposition format, version 0.0.4
//! (<https://prometheus.io/docs/instrumenting/exposition_formats/>).
//!
//! The route is public: its per-device samples are the community's devices only
//! (see `query::visibility`). A household's meter is never a label; what it adds
//! to the site's totals is counted, unnamed, in the totals.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use ingest::metrics::IngestMetrics;
use query::live::LiveSnapshot;
use query::visibility::Visibility;

use crate::AppState;

pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let snapshot = state.live.borrow().clone();
    let body = render_metrics(&state.metrics, &snapshot, &state.visibility);
    (
        [
            (CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE),
            (CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// The node's metrics (DESIGN.md §8): ingest counters and the live allocation,
/// with no sample for a device `visibility` says is a household's.
pub fn render_metrics(
    ingest: &IngestMetrics,
    snapshot: &LiveSnapshot,
    visibility: &Visibility,
) -> String {
    let shown = |device: &str| !visibility.is_household(device);
    let mut out = String::new();
    family(
        &mut out,
        "communalia_readings_ingested_total",
        "counter",
        "Readings accepted into the live store since the node started.",
        [(None, ingest.readings_ingested() as f64)],
    );
    family_labelled(
        &mut out,
        "communalia_evaluations_total",
        "counter",
        "Live evaluations (site balance, allocation, actuation) since the node started, by what triggered them: reading (a reading changed what the site knows; at most one every 50 ms), heartbeat (a second without another evaluation), plan (a plan adoption).",
        ingest.evaluations().into_iter().map(|(trigger, n)| {
            (
                None,
                Some(("trigger", trigger.as_str().to_string())),
                n as f64,
            )
        }),
    );
    family(
        &mut out,
        "communalia_mqtt_messages_total",
        "counter",
        "MQTT messages received since the node started.",
        [(None, ingest.mqtt_messages() as f64)],
    );
    family_labelled(
        &mut out,
        "communalia_payloads_rejected_total",
        "counter",
        "Payloads or readings turned away, per device (\"unknown\" for a topic no device claims) and reason (decode, unknown_topic, not_finite, power_out_of_bounds, soc_out_of_bounds, counter_backwards, rate_limited).",
        ingest
            .payloads_rejected()
            .into_iter()
            .filter(|((device, _), _)| shown(device))
            .map(|((device, reason), n)| {
                (
                    Some(device),
                    Some(("reason", reason.as_str().to_string())),
                    n as f64,
                )
            }),
    );
    family(
        &mut out,
        "communalia_modbus_transactions_total",
        "counter",
        "Modbus requests sent, per device.",
        ingest
            .modbus_transactions()
            .into_iter()
            .filter(|(device, _)| shown(device))
            .map(|(device, n)| (Some(device), n as f64)),
    );
    // Every polled device, at zero until it refuses a request, so that a rate
    // over the counter works from the first poll.
    let exceptions = ingest.modbus_exceptions();
    family(
        &mut out,
        "communalia_modbus_exceptions_total",
        "counter",
        "Modbus exception responses (the device refused a request), per device.",
        ingest
            .modbus_transactions()
            .into_keys()
            .filter(|device| shown(device))
            .map(|device| {
                let n = exceptions.get(&device).copied().unwrap_or(0);
                (Some(device), n as f64)
            }),
    );
    let mut health = ingest.health();
    health.retain(|device, _| shown(device));
    family(
        &mut out,
        "communalia_modbus_transactions_per_cycle",
        "gauge",
        "Modbus requests the device's last poll sent (discovery included).",
        health.iter().filter_map(|(device, h)| {
            h.last_cycle_transactions
                .map(|n| (Some(device.clone()), f64::from(n)))
        }),
    );
    family(
        &mut out,
        "communalia_modbus_planned_transactions_per_cycle",
        "gauge",
        "The fewest Modbus requests that read all of the device's registers (its read plan).",
        health.iter().filter_map(|(device, h)| {
            h.planned_transactions
                .map(|n| (Some(device.clone()), f64::from(n)))
        }),
    );
    family(
        &mut out,
        "communalia_device_poll_latency_seconds",
        "gauge",
        "Time the device's last successful poll took, all its requests included, in seconds.",
        health.iter().filter_map(|(device, h)| {
            h.last_latency
                .map(|d| (Some(device.clone()), d.as_secs_f64()))
        }),
    );
    family(
        &mut out,
        "communalia_device_up",
        "gauge",
        "1 while the device is read successfully and recently, else 0.",
        snapshot
            .devices
            .iter()
            .filter(|d| shown(&d.id))
            .map(|d| (Some(d.id.to_string()), if d.healthy { 1.0 } else { 0.0 })),
    );
    family(
        &mut out,
        "communalia_allocation_headroom_watts",
        "gauge",
        "Power the active plan makes available to services but that none is using, in watts.",
        [(None, snapshot.site.headroom_w)],
    );
    let storage = ingest.storage();
    if let Some(free) = storage.free_bytes {
        family(
            &mut out,
            "communalia_storage_free_bytes",
            "gauge",
            "Free bytes on the filesystem of the storage directory ([storage] dir).",
            [(None, free as f64)],
        );
    }
    family(
        &mut out,
        "communalia_storage_min_free_bytes",
        "gauge",
        "Below this free space ([storage] min_free) the node warns and deletes its oldest raw readings.",
        [(None, storage.min_free_bytes as f64)],
    );
    family(
        &mut out,
        "communalia_storage_write_failing",
        "gauge",
        "1 while the write-ahead log cannot be written (disk full, read-only, failing) and ingest is held.",
        [(None, if storage.write_failing { 1.0 } else { 0.0 })],
    );
    family(
        &mut out,
        "communalia_wal_errors_total",
        "counter",
        "Writes to the write-ahead log that failed since the node started.",
        [(None, ingest.wal_errors() as f64)],
    );
    family(
        &mut out,
        "communalia_storage_readings_dropped_total",
        "counter",
        "Readings of polled devices dropped because the memory buffer filled while the write-ahead log could not be written.",
        [(None, storage.readings_dropped as f64)],
    );
    out
}

/// One metric family: HELP, TYPE, then one sample per (device label, value).
fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Option<String>, f64)>,
) {
    family_labelled(
        out,
        name,
        kind,
        help,
        samples
            .into_iter()
            .map(|(device, value)| (device, None, value)),
    );
}

/// As [`family`], each sample with one more label beside its device.
fn family_labelled(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Option<String>, Option<(&'static str, String)>, f64)>,
) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (device, extra, value) in samples {
        let mut labels = Vec::new();
        if let Some(device) = device {
            labels.push(format!("device=\"{}\"", escape_label_value(&device)));
        }
        if let Some((key, label)) = extra {
            labels.push(format!("{key}=\"{}\"", escape_label_value(&label)));
        }
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {}", sample_value(value));
        } else {
            let _ = writeln!(
                out,
                "{name}{{{}}} {}",
                labels.join(","),
                sample_value(value)
            );
        }
    }
}

/// In HELP text, `\` and line feed are escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// In label values, `\`, `"` and line feed are escaped.
fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// A Go `ParseFloat`-compatible number; the format spells the specials `NaN`,
/// `+Inf` and `-Inf`. Rust's `Display` never uses an exponent, which is also valid.
fn sample_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value == f64::INFINITY {
        "+Inf".to_string()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label_value("two\nlines"), "two\\nlines");
        assert_eq!(escape_label_value("Toit de l'école"), "Toit de l'école");
    }

    #[test]
    fn values() {
        assert_eq!(sample_value(800.0), "800");
        assert_eq!(sample_value(-12.5), "-12.5");
        assert_eq!(sample_value(f64::NAN), "NaN");
        assert_eq!(sample_value(f64::INFINITY), "+Inf");
        assert_eq!(sample_value(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn help_is_escaped() {
        assert_eq!(escape_help("a\\b\nc"), "a\\\\b\\nc");
    }
}
