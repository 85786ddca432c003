//! `GET /metrics`: each §8 metric, with the values held in the state, as valid
//! Prometheus text exposition (format 0.0.4).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use ingest::metrics::IngestMetrics;
use ingest::plausible::RejectReason;

use crate::support::{get, send, snapshot, state_with};

/// One sample line, parsed: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => text
            .parse::<f64>()
            .map_err(|e| format!("value {text:?}: {e}")),
    }
}

/// Parses `{a="x",b="y\"z"}` from the start of `text`; returns labels and the rest.
fn parse_labels(text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = text.strip_prefix('{').ok_or("labels must start with {")?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after_name) = rest.split_once("=\"").ok_or("label without =\"")?;
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = after_name.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((i, '"')) => break i,
                Some((_, '\n')) | None => return Err("unterminated label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        labels.insert(name.to_string(), value);
        rest = &after_name[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// Checks every line of an exposition and returns its samples. A sample must
/// follow the TYPE line of its family, and each family is declared once.
fn parse_exposition(text: &str) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut helped: Vec<String> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match words.next() {
                Some("HELP") => {
                    let name = words.next().ok_or_else(|| at("HELP without name".into()))?;
                    if !is_metric_name(name) || helped.contains(&name.to_string()) {
                        return Err(at(format!("bad or repeated HELP for {name}")));
                    }
                    helped.push(name.to_string());
                }
                Some("TYPE") => {
                    let name = words.next().ok_or_else(|| at("TYPE without name".into()))?;
                    let kind = words.next().unwrap_or_default();
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at(format!("bad type {kind:?}")));
                    }
                    if typed.insert(name.to_string(), kind.to_string()).is_some() {
                        return Err(at(format!("TYPE repeated for {name}")));
                    }
                }
                _ => {}
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(at(format!("bad metric name {name:?}")));
        }
        if !typed.contains_key(name) {
            return Err(at(format!("sample before TYPE of {name}")));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(at)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let mut fields = rest.split_whitespace();
        let value = parse_value(fields.next().ok_or_else(|| at("no value".into()))?).map_err(at)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .map_err(|e| at(format!("timestamp: {e}")))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing text".into()));
        }
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(samples)
}

fn value_of(samples: &[Sample], name: &str, device: Option<&str>) -> f64 {
    samples
        .iter()
        .find(|s| s.name == name && s.labels.get("device").map(String::as_str) == device)
        .unwrap_or_else(|| panic!("no sample {name} device={device:?} in {samples:?}"))
        .value
}

#[tokio::test]
async fn metrics_expose_state_as_valid_text() {
    let ingest = IngestMetrics::default();
    ingest.add_readings(1234);
    for _ in 0..3 {
        ingest.add_mqtt_message();
    }
    let odd_device = "meter \"east\"\\2\nbis";
    ingest.reject_payload("unknown", RejectReason::UnknownTopic);
    ingest.reject_payload(odd_device, RejectReason::Decode);
    ingest.reject_payload(odd_device, RejectReason::Decode);
    ingest.reject_payload(odd_device, RejectReason::PowerOutOfBounds);
    ingest.add_modbus_transactions("roof-school", 17);
    ingest.add_modbus_transactions("grid-meter", 5);
    // A poll of the roof's inverter: 2 requests, one refused, 35 ms; its plan needs 1.
    ingest.set_planned_transactions("roof-school", 1);
    ingest.record_poll(
        "roof-school",
        chrono::Utc::now(),
        2,
        &[(2, "illegal data address".into())],
        Ok(std::time::Duration::from_millis(35)),
    );
    let mut snapshot = snapshot();
    snapshot.site.headroom_w = 812.5;
    let (state, _tx) = state_with(snapshot, ingest);

    let reply = send(state, get("/metrics", &[])).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("content-type"),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(
        reply.body.ends_with('\n'),
        "exposition must end with a line feed"
    );

    for name in [
        "communalia_readings_ingested_total",
        "communalia_mqtt_messages_total",
        "communalia_payloads_rejected_total",
        "communalia_modbus_transactions_total",
        "communalia_device_up",
        "communalia_allocation_headroom_watts",
        "communalia_modbus_exceptions_total",
        "communalia_modbus_transactions_per_cycle",
        "communalia_modbus_planned_transactions_per_cycle",
        "communalia_device_poll_latency_seconds",
    ] {
        assert!(
            reply.body.contains(&format!("# HELP {name} ")),
            "no HELP for {name}"
        );
        assert!(
            reply.body.contains(&format!("# TYPE {name} ")),
            "no TYPE for {name}"
        );
    }

    let samples = parse_exposition(&reply.body).unwrap_or_else(|e| panic!("{e}\n{}", reply.body));
    assert_eq!(
        value_of(&samples, "communalia_readings_ingested_total", None),
        1234.0
    );
    assert_eq!(
        value_of(&samples, "communalia_mqtt_messages_total", None),
        3.0
    );
    assert_eq!(
        value_of(
            &samples,
            "communalia_payloads_rejected_total",
            Some("unknown")
        ),
        1.0
    );
    // The label value survives escaping and unescaping intact.
    assert_eq!(
        value_of(
            &samples,
            "communalia_payloads_rejected_total",
            Some(odd_device)
        ),
        2.0
    );
    assert!(
        reply
            .body
            .contains(r#"device="meter \"east\"\\2\nbis",reason="decode"} 2"#),
        "{}",
        reply.body
    );
    assert!(
        reply
            .body
            .contains(r#"device="meter \"east\"\\2\nbis",reason="power_out_of_bounds"} 1"#),
        "{}",
        reply.body
    );
    assert_eq!(
        value_of(
            &samples,
            "communalia_modbus_transactions_total",
            Some("roof-school")
        ),
        19.0,
        "17 added, and the poll's 2"
    );
    assert_eq!(
        value_of(
            &samples,
            "communalia_modbus_exceptions_total",
            Some("roof-school")
        ),
        1.0
    );
    assert_eq!(
        value_of(
            &samples,
            "communalia_modbus_exceptions_total",
            Some("grid-meter")
        ),
        0.0,
        "a polled device without exceptions counts from zero"
    );
    assert_eq!(
        value_of(
            &samples,
            "communalia_modbus_transactions_per_cycle",
            Some("roof-school")
        ),
        2.0
    );
    assert_eq!(
        value_of(
            &samples,
            "communalia_modbus_planned_transactions_per_cycle",
            Some("roof-school")
        ),
        1.0
    );
    assert_eq!(
        value_of(
            &samples,
            "communalia_device_poll_latency_seconds",
            Some("roof-school")
        ),
        0.035
    );
    assert!(
        reply
            .body
            .contains("# TYPE communalia_modbus_exceptions_total counter")
    );
    assert!(
        reply
            .body
            .contains("# TYPE communalia_modbus_transactions_per_cycle gauge")
    );
    assert_eq!(
        value_of(
            &samples,
            "communalia_modbus_transactions_total",
            Some("grid-meter")
        ),
        5.0
    );
    assert_eq!(
        value_of(&samples, "communalia_device_up", Some("roof-school")),
        1.0
    );
    assert_eq!(
        value_of(&samples, "communalia_device_up", Some("grid-meter")),
        0.0
    );
    assert_eq!(
        value_of(&samples, "communalia_allocation_headroom_watts", None),
        812.5
    );
    assert!(reply.body.contains("# TYPE communalia_device_up gauge"));
    assert!(
        reply
            .body
            .contains("# TYPE communalia_readings_ingested_total counter")
    );
}

#[test]
fn the_checker_refuses_bad_lines() {
    assert!(parse_exposition("# TYPE a counter\na 1\n").is_ok());
    assert!(parse_exposition("a 1\n").is_err(), "sample before TYPE");
    assert!(parse_exposition("# TYPE a counter\na{x=\"1} 1\n").is_err());
    assert!(parse_exposition("# TYPE a counter\na{x=\"\\q\"} 1\n").is_err());
    assert!(parse_exposition("# TYPE a counter\na one\n").is_err());
    assert!(parse_exposition("# TYPE 1a counter\n1a 1\n").is_err());
}
