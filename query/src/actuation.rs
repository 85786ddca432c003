//! Actuation (DESIGN.md §4, opt-in per service): turning the allocation into
//! commands a relay or a controllable load can follow, published retained on the
//! MQTT topic the service's `actuation` key names.
//!
//! A service is wanted on unless the allocation sheds it (`served`, `partial` and
//! `idle` are on; `shed` is off; a service missing from the active plan gets
//! nothing and is off). Each service has a [`Switch`] that keeps loads from
//! flapping when production hovers around what they need, the most common
//! complaint about energy managers:
//!
//! - the first decision after start is applied at once;
//! - once on, a service stays on for at least `min_on`; once off, it stays off for
//!   at least `min_off`; a change wanted earlier waits, and is applied at the first
//!   snapshot after the minimum time if it is still wanted then;
//! - while on, the allowed power is published again when it has moved by more than
//!   50 W and more than 10 % of the last published value (that is, by more than
//!   `max(50 W, 10 %)`), at most once every 10 s: a charger can follow the sun
//!   without a message every second;
//! - a stale snapshot (no recent readings) changes nothing: a service is never
//!   switched on the strength of old data, and keeps its current state.
//!
//! The decision code takes the time as an argument ([`Actuator::on_snapshot`]), so
//! tests can run hours of simulated time in milliseconds; only [`run`] reads a clock.
//!
//! The payload, JSON: `{"service": "school", "on": true, "allowed_w": 1200,
//! "state": "served", "ts": "2025-06-01T12:00:00.000Z"}`, with `state` one of
//! `served`, `partial`, `shed`, `idle` or `not_in_plan`, `allowed_w` in whole watts
//! (0 when off) and `ts` the RFC 3339 UTC time of the snapshot it follows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use ingest::actuate::Publish;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::{ActuationConfig, ServiceConfig};
use crate::live::{LiveSnapshot, ServiceState};

/// The allowed power is published again only when it moved by more than this...
pub const POWER_STEP_MIN_W: f64 = 50.0;
/// ...and by more than this fraction of the last published value...
pub const POWER_STEP_FRACTION: f64 = 0.10;
/// ...and no sooner than this after the previous message for the service.
pub const POWER_REPUBLISH_INTERVAL: Duration = Duration::from_secs(10);

/// The services of the configuration that have an `actuation` key.
pub fn actuated_services(services: &[ServiceConfig]) -> Vec<(String, ActuationConfig)> {
    services
        .iter()
        .filter_map(|s| s.actuation.clone().map(|a| (s.id.clone(), a)))
        .collect()
}

/// What a [`Switch`] tells the load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Output {
    pub on: bool,
    /// Whole watts, 0 when off.
    pub allowed_w: f64,
}

#[derive(Debug, Clone, Copy)]
struct Published {
    on: bool,
    /// When the service last changed between on and off.
    since: Instant,
    allowed_w: f64,
    at: Instant,
}

/// One service's on/off state with its minimum on and off times.
#[derive(Debug, Clone)]
pub struct Switch {
    min_on: Duration,
    min_off: Duration,
    last: Option<Published>,
}

impl Switch {
    pub fn new(min_on: Duration, min_off: Duration) -> Switch {
        Switch {
            min_on,
            min_off,
            last: None,
        }
    }

    /// The state last published, `None` before the first decision.
    pub fn is_on(&self) -> Option<bool> {
        self.last.map(|l| l.on)
    }

    /// Feeds one evaluation: whether the allocation wants the service on and the
    /// power it allows it. Returns what to publish, if anything.
    pub fn update(&mut self, want_on: bool, allowed_w: f64, now: Instant) -> Option<Output> {
        // NaN and negative figures become 0 (`f64::max` ignores NaN).
        let allowed_w = allowed_w.max(0.0).round();
        let Some(last) = self.last else {
            return Some(self.publish(want_on, allowed_w, now, now));
        };
        if want_on != last.on {
            let held_for = now.saturating_duration_since(last.since);
            let minimum = if last.on { self.min_on } else { self.min_off };
            if held_for >= minimum {
                return Some(self.publish(want_on, allowed_w, now, now));
            }
        }
        if last.on {
            let step_w = (allowed_w - last.allowed_w).abs();
            let threshold_w = POWER_STEP_MIN_W.max(POWER_STEP_FRACTION * last.allowed_w);
            if step_w > threshold_w
                && now.saturating_duration_since(last.at) >= POWER_REPUBLISH_INTERVAL
            {
                return Some(self.publish(true, allowed_w, last.since, now));
            }
        }
        None
    }

    fn publish(&mut self, on: bool, allowed_w: f64, since: Instant, now: Instant) -> Output {
        let allowed_w = if on { allowed_w } else { 0.0 };
        self.last = Some(Published {
            on,
            since,
            allowed_w,
            at: now,
        });
        Output { on, allowed_w }
    }
}

/// One message for one actuated service.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub service_id: String,
    pub topic: String,
    pub on: bool,
    pub allowed_w: f64,
    /// The service's state in the snapshot; `None` when it is not in the plan.
    pub state: Option<ServiceState>,
    /// Time of the snapshot the command follows.
    pub at: DateTime<Utc>,
}

#[derive(Serialize)]
struct Payload<'a> {
    service: &'a str,
    on: bool,
    allowed_w: f64,
    state: &'static str,
    ts: String,
}

/// The payload's name for a service state.
fn state_code(state: Option<ServiceState>) -> &'static str {
    match state {
        Some(ServiceState::Served) => "served",
        Some(ServiceState::Partial) => "partial",
        Some(ServiceState::Shed) => "shed",
        Some(ServiceState::Idle) => "idle",
        None => "not_in_plan",
    }
}

impl Command {
    /// The JSON payload (see the module documentation).
    pub fn payload(&self) -> Vec<u8> {
        let payload = Payload {
            service: &self.service_id,
            on: self.on,
            allowed_w: self.allowed_w,
            state: state_code(self.state),
            ts: self.at.to_rfc3339_opts(SecondsFormat::Millis, true),
        };
        // A struct of strings, a bool and a finite number always serializes.
        serde_json::to_vec(&payload).unwrap_or_default()
    }

    /// The retained message that carries the command.
    pub fn to_publish(&self) -> Publish {
        Publish {
            topic: self.topic.clone(),
            payload: self.payload(),
            retain: true,
        }
    }
}

#[derive(Debug)]
struct Actuated {
    id: String,
    topic: String,
    switch: Switch,
}

/// The switches of every actuated service, fed one snapshot at a time.
#[derive(Debug)]
pub struct Actuator {
    services: Vec<Actuated>,
}

impl Actuator {
    pub fn new(services: Vec<(String, ActuationConfig)>) -> Actuator {
        Actuator {
            services: services
                .into_iter()
                .map(|(id, a)| Actuated {
                    id,
                    topic: a.topic,
                    switch: Switch::new(a.min_on, a.min_off),
                })
                .collect(),
        }
    }

    /// The commands `snapshot` calls for at the monotonic time `now`. A stale
    /// snapshot calls for none.
    pub fn on_snapshot(&mut self, snapshot: &LiveSnapshot, now: Instant) -> Vec<Command> {
        if snapshot.stale {
            return Vec::new();
        }
        let mut commands = Vec::new();
        for a in &mut self.services {
            let live = snapshot.services.iter().find(|s| *s.id == *a.id);
            let state = live.map(|s| s.state);
            let want_on = state.is_some_and(|s| s != ServiceState::Shed);
            let allowed_w = live.map_or(0.0, |s| s.allocated_w);
            if let Some(out) = a.switch.update(want_on, allowed_w, now) {
                commands.push(Command {
                    service_id: a.id.clone(),
                    topic: a.topic.clone(),
                    on: out.on,
                    allowed_w: out.allowed_w,
                    state,
                    at: snapshot.ts,
                });
            }
        }
        commands
    }
}

/// Follows the live snapshots and sends each command to the MQTT publisher,
/// until `cancel` or until either channel closes.
pub async fn run(
    mut rx: watch::Receiver<Arc<LiveSnapshot>>,
    services: Vec<(String, ActuationConfig)>,
    tx: mpsc::Sender<Publish>,
    cancel: CancellationToken,
) {
    let span = tracing::info_span!("actuation", services = services.len());
    async move {
        let mut actuator = Actuator::new(services);
        // Evaluate the snapshot already there too (a cloned receiver may not have seen it).
        rx.mark_changed();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                changed = rx.changed() => if changed.is_err() { break },
            }
            let snapshot = rx.borrow_and_update().clone();
            // tokio's clock, so that a test with paused time drives it too.
            let now = tokio::time::Instant::now().into_std();
            for command in actuator.on_snapshot(&snapshot, now) {
                tracing::info!(
                    service = %command.service_id,
                    topic = %command.topic,
                    on = command.on,
                    allowed_w = command.allowed_w,
                    state = state_code(command.state),
                    "actuation command"
                );
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    sent = tx.send(command.to_publish()) => if sent.is_err() {
                        tracing::warn!("the MQTT publisher has stopped; actuation ends");
                        return;
                    },
                }
            }
        }
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::{ServiceLive, Signal, SiteBalance};

    const MIN: Duration = Duration::from_secs(60);

    fn config(min_on: Duration, min_off: Duration) -> ActuationConfig {
        ActuationConfig {
            topic: "tilleuls/school/allowed".into(),
            min_on,
            min_off,
            reader: None,
        }
    }

    fn snapshot(at_s: u64, stale: bool, services: &[(&str, ServiceState, f64)]) -> LiveSnapshot {
        let t0 = DateTime::parse_from_rfc3339("2025-06-01T10:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        LiveSnapshot {
            ts: t0 + chrono::Duration::seconds(at_s as i64),
            stale,
            last_data: None,
            site: SiteBalance::default(),
            services: services
                .iter()
                .map(|(id, state, allocated_w)| ServiceLive {
                    id: (*id).into(),
                    name: (*id).into(),
                    tier: 1,
                    demand_w: 1000.0,
                    allocated_w: *allocated_w,
                    state: *state,
                    min_w: 0.0,
                    max_w: None,
                    reason: "tier_share",
                })
                .collect(),
            devices: vec![],
            signal: Signal::Hold,
            plan: None,
            pools: vec![],
        }
    }

    /// The school needs 1000 W: served above, shed below (a single-tier site).
    fn school_at(at_s: u64, available_w: f64) -> LiveSnapshot {
        let (state, allocated_w) = if available_w >= 1000.0 {
            (ServiceState::Served, 1000.0)
        } else {
            (ServiceState::Shed, 0.0)
        };
        snapshot(at_s, false, &[("school", state, allocated_w)])
    }

    /// The most switches a load can make in `span`, starting in state `on`, if each
    /// state lasts at least its minimum: the initial decision plus as many changes as
    /// alternating minimum dwell times fit in the span.
    fn max_switches(span: Duration, min_on: Duration, min_off: Duration, mut on: bool) -> usize {
        let mut changes = 1;
        let mut elapsed = Duration::ZERO;
        loop {
            elapsed += if on { min_on } else { min_off };
            if elapsed > span {
                return changes;
            }
            changes += 1;
            on = !on;
        }
    }

    #[test]
    fn production_hovering_around_the_threshold_does_not_make_the_load_flap() {
        let (min_on, min_off) = (5 * MIN, 3 * MIN);
        let span = 30 * MIN;
        let mut actuator = Actuator::new(vec![("school".into(), config(min_on, min_off))]);
        let start = Instant::now();
        let mut switches: Vec<(u64, bool)> = Vec::new();
        for t in 0..=span.as_secs() {
            // 1010 W, 990 W, 1010 W, ...: on the threshold, every second.
            let available_w = if t % 2 == 0 { 1010.0 } else { 990.0 };
            let now = start + Duration::from_secs(t);
            for c in actuator.on_snapshot(&school_at(t, available_w), now) {
                if switches.last().is_none_or(|(_, on)| *on != c.on) {
                    switches.push((t, c.on));
                }
            }
        }
        let bound = max_switches(span, min_on, min_off, true);
        assert!(
            switches.len() <= bound,
            "{} switches, at most {bound} allowed: {switches:?}",
            switches.len()
        );
        // It does follow the sun when it may: the 1 s oscillation would switch 1800 times.
        assert!(switches.len() >= bound / 2, "{switches:?}");
        assert_eq!(
            switches[0],
            (0, true),
            "the first decision is applied at once"
        );
        for pair in switches.windows(2) {
            let ((t0, on), (t1, _)) = (pair[0], pair[1]);
            let minimum = if on { min_on } else { min_off };
            assert!(
                t1 - t0 >= minimum.as_secs(),
                "state {on} kept only {} s: {switches:?}",
                t1 - t0
            );
        }
    }

    #[test]
    fn a_sustained_change_is_followed_once_the_minimum_time_has_passed() {
        let (min_on, min_off) = (5 * MIN, 4 * MIN);
        let mut actuator = Actuator::new(vec![("school".into(), config(min_on, min_off))]);
        let start = Instant::now();
        let mut log = Vec::new();
        for t in 0..1200u64 {
            // Sun until 60 s, cloud until 700 s, sun again.
            let available_w = if (60..700).contains(&t) { 0.0 } else { 3000.0 };
            let now = start + Duration::from_secs(t);
            for c in actuator.on_snapshot(&school_at(t, available_w), now) {
                log.push((t, c.on, c.allowed_w));
            }
        }
        assert_eq!(
            log,
            vec![
                (0, true, 1000.0),
                // Shed at 60 s but held on until min_on; the power it may use is told.
                (60, true, 0.0),
                (300, false, 0.0),
                // the sun is back at 700 s, past min_off (300 + 240 s): on at once
                (700, true, 1000.0),
            ]
        );
    }

    #[test]
    fn the_first_decision_is_immediate_whichever_it_is() {
        let start = Instant::now();
        let mut off = Switch::new(5 * MIN, 5 * MIN);
        assert_eq!(
            off.update(false, 0.0, start),
            Some(Output {
                on: false,
                allowed_w: 0.0
            })
        );
        // ...and a minimum time runs from it.
        assert_eq!(off.update(true, 800.0, start + MIN), None);
        assert_eq!(off.is_on(), Some(false));
        assert_eq!(
            off.update(true, 800.0, start + 5 * MIN),
            Some(Output {
                on: true,
                allowed_w: 800.0
            })
        );
        let mut on = Switch::new(5 * MIN, 5 * MIN);
        assert_eq!(on.is_on(), None);
        assert_eq!(
            on.update(true, 512.4, start),
            Some(Output {
                on: true,
                allowed_w: 512.0
            })
        );
    }

    #[test]
    fn stale_snapshots_change_nothing() {
        let mut actuator = Actuator::new(vec![("school".into(), config(MIN, MIN))]);
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        // Before any data: nothing is decided, not even the first command.
        let idle = [("school", ServiceState::Idle, 0.0)];
        assert!(
            actuator
                .on_snapshot(&snapshot(0, true, &idle), at(0))
                .is_empty()
        );
        let shed = actuator.on_snapshot(&school_at(1, 0.0), at(1));
        assert_eq!(shed.len(), 1);
        assert!(!shed[0].on, "first fresh decision applied at once");
        // Stale data says idle (the engine zeroes demands): never a reason to switch on.
        for s in 2..600 {
            assert!(
                actuator
                    .on_snapshot(&snapshot(s, true, &idle), at(s))
                    .is_empty(),
                "switched on stale data at {s} s"
            );
        }
        let back = actuator.on_snapshot(&school_at(600, 5000.0), at(600));
        assert_eq!(back.len(), 1);
        assert!(back[0].on && back[0].allowed_w == 1000.0, "{back:?}");
        // And stale data never switches a load off either.
        assert!(
            actuator
                .on_snapshot(
                    &snapshot(2000, true, &[("school", ServiceState::Shed, 0.0)]),
                    at(2000)
                )
                .is_empty()
        );
    }

    #[test]
    fn allowed_power_is_republished_on_real_changes_at_most_every_10_s() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut s = Switch::new(MIN, MIN);
        let out = |w: f64| {
            Some(Output {
                on: true,
                allowed_w: w,
            })
        };
        assert_eq!(s.update(true, 1000.0, at(0)), out(1000.0));
        // 10 % of 1000 W is 100 W: a 90 W move is noise.
        assert_eq!(s.update(true, 1090.0, at(5)), None);
        // A real move, but 10 s have not passed since the last message.
        assert_eq!(s.update(true, 1500.0, at(8)), None);
        assert_eq!(s.update(true, 1500.0, at(10)), out(1500.0));
        // Measured from the last published value (1500 W: 150 W).
        assert_eq!(s.update(true, 1640.0, at(30)), None);
        assert_eq!(s.update(true, 1360.0, at(30)), None);
        assert_eq!(s.update(true, 1660.0, at(30)), out(1660.0));
        // Small loads: the 50 W floor.
        let mut small = Switch::new(MIN, MIN);
        assert_eq!(small.update(true, 100.0, at(0)), out(100.0));
        assert_eq!(small.update(true, 140.0, at(20)), None);
        assert_eq!(small.update(true, 160.0, at(20)), out(160.0));
        // While held on by min_on, a drop to nothing is still told (a charger can stop
        // drawing while its relay stays closed).
        let mut held = Switch::new(5 * MIN, MIN);
        assert_eq!(held.update(true, 1000.0, at(0)), out(1000.0));
        assert_eq!(held.update(false, 0.0, at(5)), None);
        assert_eq!(held.update(false, 0.0, at(10)), out(0.0));
        assert_eq!(held.update(false, 0.0, at(20)), None);
        assert_eq!(
            held.update(false, 0.0, at(300)),
            Some(Output {
                on: false,
                allowed_w: 0.0
            })
        );
        // While off, the allowed power is not published.
        assert_eq!(held.update(false, 0.0, at(400)), None);
    }

    #[test]
    fn partial_and_idle_are_on_and_a_service_out_of_the_plan_is_off() {
        let mut actuator = Actuator::new(vec![
            ("a".into(), config(MIN, MIN)),
            ("b".into(), config(MIN, MIN)),
            ("gone".into(), config(MIN, MIN)),
        ]);
        let snap = snapshot(
            0,
            false,
            &[
                ("a", ServiceState::Partial, 420.0),
                ("b", ServiceState::Idle, 0.0),
            ],
        );
        let commands = actuator.on_snapshot(&snap, Instant::now());
        let summary: Vec<(&str, bool, f64, &str)> = commands
            .iter()
            .map(|c| {
                (
                    c.service_id.as_str(),
                    c.on,
                    c.allowed_w,
                    state_code(c.state),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("a", true, 420.0, "partial"),
                ("b", true, 0.0, "idle"),
                ("gone", false, 0.0, "not_in_plan"),
            ]
        );
    }

    #[test]
    fn the_payload_is_the_documented_json() {
        let mut actuator = Actuator::new(vec![("school".into(), config(MIN, MIN))]);
        let commands = actuator.on_snapshot(&school_at(0, 2000.0), Instant::now());
        let [command] = commands.as_slice() else {
            panic!("one command expected: {commands:?}");
        };
        let publish = command.to_publish();
        assert_eq!(publish.topic, "tilleuls/school/allowed");
        assert!(publish.retain);
        let json: serde_json::Value =
            serde_json::from_slice(&publish.payload).expect("payload is JSON");
        assert_eq!(
            json,
            serde_json::json!({
                "service": "school",
                "on": true,
                "allowed_w": 1000.0,
                "state": "served",
                "ts": "2025-06-01T10:00:00.000Z",
            })
        );
    }

    #[test]
    fn actuation_config_has_defaults_and_refuses_wildcards_and_unknown_keys() {
        let a: ActuationConfig =
            serde_json::from_str(r#"{"topic": "tilleuls/school/allowed"}"#).expect("valid");
        assert_eq!(a.min_on, 5 * MIN);
        assert_eq!(a.min_off, 5 * MIN);
        let a: ActuationConfig =
            serde_json::from_str(r#"{"topic": "t", "min_on": "90s", "min_off": "2m"}"#)
                .expect("valid");
        assert_eq!((a.min_on, a.min_off), (Duration::from_secs(90), 2 * MIN));
        for (text, needle) in [
            (r#"{"topic": "tilleuls/+/allowed"}"#, "wildcard"),
            (r#"{"topic": "tilleuls/#"}"#, "wildcard"),
            (r#"{"topic": ""}"#, "empty"),
            (r#"{"topic": "$SYS/x"}"#, "$"),
            (r#"{"topic": "t", "min_on": "5"}"#, "unit"),
            (r#"{"topic": "t", "min_of": "5m"}"#, "min_of"),
        ] {
            let err = serde_json::from_str::<ActuationConfig>(text)
                .expect_err(text)
                .to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[tokio::test]
    async fn run_publishes_what_the_snapshots_call_for() {
        let (snapshots, rx) = watch::channel(Arc::new(snapshot(0, true, &[])));
        let (tx, mut published) = mpsc::channel(8);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run(
            rx,
            vec![("school".into(), config(MIN, MIN))],
            tx,
            cancel.clone(),
        ));
        snapshots.send_replace(Arc::new(school_at(1, 1500.0)));
        let p = tokio::time::timeout(Duration::from_secs(5), published.recv())
            .await
            .expect("a command within 5 s")
            .expect("channel open");
        let json: serde_json::Value = serde_json::from_slice(&p.payload).expect("JSON");
        assert_eq!(
            (json["on"].as_bool(), json["allowed_w"].as_f64()),
            (Some(true), Some(1000.0))
        );
        // A shed right after is held by min_on: nothing more is published.
        snapshots.send_replace(Arc::new(school_at(2, 0.0)));
        assert!(
            tokio::time::timeout(Duration::from_millis(300), published.recv())
                .await
                .is_err()
        );
        cancel.cancel();
        task.await.expect("run ends on cancel");
    }
}
