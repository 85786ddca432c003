//! The gate every device's readings pass before they are accepted (DESIGN.md §9):
//! finite numbers, power within the device's bounds, a state of charge between 0
//! and 100 %, energy counters that never run backwards, and at most so many
//! messages a second. What fails is rejected whole (a device that sends one
//! impossible value in a message is not trusted for the rest of it), counted by
//! device and reason, and never reaches the write-ahead log, the live store or the
//! history.

use std::collections::HashMap;
use std::time::Instant;

use sensors::config::DeviceConfig;
use sensors::model::{Metric, Role};

use crate::reading::Reading;

/// Why readings were turned away; the `reason` label of
/// `communalia_payloads_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// The payload could not be read as the profile says.
    Decode,
    /// A message on a topic no device claims.
    UnknownTopic,
    /// NaN or infinite.
    NotFinite,
    /// Power beyond the device's `max_power_w`.
    PowerOutOfBounds,
    /// A state of charge outside 0–100 %.
    SocOutOfBounds,
    /// An energy counter below its last accepted value.
    CounterBackwards,
    /// More messages than the device's `max_messages_per_s` allows.
    RateLimited,
}

impl RejectReason {
    pub const ALL: [RejectReason; 7] = [
        RejectReason::Decode,
        RejectReason::UnknownTopic,
        RejectReason::NotFinite,
        RejectReason::PowerOutOfBounds,
        RejectReason::SocOutOfBounds,
        RejectReason::CounterBackwards,
        RejectReason::RateLimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Decode => "decode",
            RejectReason::UnknownTopic => "unknown_topic",
            RejectReason::NotFinite => "not_finite",
            RejectReason::PowerOutOfBounds => "power_out_of_bounds",
            RejectReason::SocOutOfBounds => "soc_out_of_bounds",
            RejectReason::CounterBackwards => "counter_backwards",
            RejectReason::RateLimited => "rate_limited",
        }
    }
}

/// A rejection with what was wrong, in words for the installer.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub reason: RejectReason,
    pub detail: String,
}

/// Largest plausible power of a device of each role when its configuration sets
/// none: a community installation's inverters, its connection to the grid, a
/// shared battery, one meter's loads. An installer with larger equipment sets
/// `max_power_w` on the device.
pub fn default_max_power_w(role: Role) -> f64 {
    match role {
        Role::Pv | Role::Grid => 250_000.0,
        Role::Battery | Role::Load => 50_000.0,
    }
}

/// Messages a second a device may send, sustained, when its configuration sets
/// none; a burst of [`BURST_SECONDS`] times as many is let through. Meters publish
/// a few times a second at most.
pub const DEFAULT_MAX_MESSAGES_PER_S: f64 = 20.0;
pub const BURST_SECONDS: f64 = 5.0;

/// One device's bounds, from its configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub max_power_w: f64,
    /// `None`: no limit (polled devices pace themselves).
    pub max_messages_per_s: Option<f64>,
}

impl Limits {
    /// The defaults of a polled device of `role`.
    pub fn polled(role: Role) -> Limits {
        Limits {
            max_power_w: default_max_power_w(role),
            max_messages_per_s: None,
        }
    }

    pub fn of(device: &DeviceConfig) -> Limits {
        Limits {
            max_power_w: device
                .max_power_w
                .unwrap_or_else(|| default_max_power_w(device.role)),
            max_messages_per_s: if device.is_polled() {
                None
            } else {
                Some(
                    device
                        .max_messages_per_s
                        .unwrap_or(DEFAULT_MAX_MESSAGES_PER_S),
                )
            },
        }
    }
}

/// What the gate remembers of one device: the token bucket of its messages and
/// the last accepted value of each energy counter.
#[derive(Debug, Clone)]
pub struct Gate {
    limits: Limits,
    tokens: f64,
    refilled: Option<Instant>,
    counters: HashMap<Metric, f64>,
}

impl Gate {
    pub fn new(limits: Limits) -> Gate {
        Gate {
            limits,
            tokens: limits
                .max_messages_per_s
                .map_or(0.0, |rate| rate * BURST_SECONDS),
            refilled: None,
            counters: HashMap::new(),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Counts one message against the rate limit at `now`.
    pub fn admit_message(&mut self, now: Instant) -> Result<(), Rejected> {
        let Some(rate) = self.limits.max_messages_per_s else {
            return Ok(());
        };
        let burst = rate * BURST_SECONDS;
        if let Some(last) = self.refilled {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * rate).min(burst);
        }
        self.refilled = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Rejected {
                reason: RejectReason::RateLimited,
                detail: format!("more than {rate} messages a second"),
            })
        }
    }

    /// Checks the readings of one message (values in the site bus view). Accepted
    /// counters are remembered only when the whole message passes.
    pub fn check(&mut self, readings: &[Reading]) -> Result<(), Rejected> {
        for r in readings {
            let metric = r.metric.as_str();
            if !r.value.is_finite() {
                return Err(Rejected {
                    reason: RejectReason::NotFinite,
                    detail: format!("{metric} = {} is not a number", r.value),
                });
            }
            match r.metric {
                Metric::PowerW if r.value.abs() > self.limits.max_power_w => {
                    return Err(Rejected {
                        reason: RejectReason::PowerOutOfBounds,
                        detail: format!(
                            "power_w = {} W is beyond this device's {} W (max_power_w)",
                            r.value, self.limits.max_power_w
                        ),
                    });
                }
                Metric::SocPct if !(0.0..=100.0).contains(&r.value) => {
                    return Err(Rejected {
                        reason: RejectReason::SocOutOfBounds,
                        detail: format!("soc_pct = {} is not between 0 and 100", r.value),
                    });
                }
                Metric::EnergyImportWh | Metric::EnergyExportWh => {
                    if let Some(&last) = self.counters.get(&r.metric)
                        && r.value < last
                    {
                        return Err(Rejected {
                            reason: RejectReason::CounterBackwards,
                            detail: format!(
                                "{metric} = {} Wh is below the {last} Wh accepted before",
                                r.value
                            ),
                        });
                    }
                }
                _ => {}
            }
        }
        for r in readings {
            if matches!(r.metric, Metric::EnergyImportWh | Metric::EnergyExportWh) {
                self.counters.insert(r.metric, r.value);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn reading(metric: Metric, value: f64) -> Reading {
        Reading {
            ts_ms: 0,
            device: "d".into(),
            metric,
            value,
        }
    }

    fn gate(max_power_w: f64, rate: Option<f64>) -> Gate {
        Gate::new(Limits {
            max_power_w,
            max_messages_per_s: rate,
        })
    }

    #[test]
    fn impossible_values_are_named() {
        let mut g = gate(10_000.0, None);
        let reason = |g: &mut Gate, r| g.check(&[r]).map_err(|e| e.reason);
        assert_eq!(reason(&mut g, reading(Metric::PowerW, 9_999.0)), Ok(()));
        assert_eq!(reason(&mut g, reading(Metric::PowerW, -10_000.0)), Ok(()));
        assert_eq!(
            reason(&mut g, reading(Metric::PowerW, 1e300)),
            Err(RejectReason::PowerOutOfBounds)
        );
        assert_eq!(
            reason(&mut g, reading(Metric::PowerW, -10_001.0)),
            Err(RejectReason::PowerOutOfBounds)
        );
        assert_eq!(
            reason(&mut g, reading(Metric::VoltageV, f64::NAN)),
            Err(RejectReason::NotFinite)
        );
        assert_eq!(
            reason(&mut g, reading(Metric::PowerW, f64::INFINITY)),
            Err(RejectReason::NotFinite)
        );
        assert_eq!(reason(&mut g, reading(Metric::SocPct, 100.0)), Ok(()));
        assert_eq!(reason(&mut g, reading(Metric::SocPct, 0.0)), Ok(()));
        assert_eq!(
            reason(&mut g, reading(Metric::SocPct, 100.5)),
            Err(RejectReason::SocOutOfBounds)
        );
        assert_eq!(
            reason(&mut g, reading(Metric::SocPct, -1.0)),
            Err(RejectReason::SocOutOfBounds)
        );
    }

    #[test]
    fn counters_never_run_backwards_and_a_rejected_message_leaves_them() {
        let mut g = gate(10_000.0, None);
        assert!(g.check(&[reading(Metric::EnergyImportWh, 1000.0)]).is_ok());
        assert!(g.check(&[reading(Metric::EnergyImportWh, 1000.0)]).is_ok());
        let back = g.check(&[reading(Metric::EnergyImportWh, 999.0)]);
        assert_eq!(
            back.map_err(|e| e.reason),
            Err(RejectReason::CounterBackwards)
        );
        // The export counter is its own.
        assert!(g.check(&[reading(Metric::EnergyExportWh, 5.0)]).is_ok());
        // A message whose power is impossible does not move the counter on.
        let bad = g.check(&[
            reading(Metric::EnergyImportWh, 50_000.0),
            reading(Metric::PowerW, 1e9),
        ]);
        assert!(bad.is_err());
        assert!(g.check(&[reading(Metric::EnergyImportWh, 1200.0)]).is_ok());
    }

    #[test]
    fn the_rate_limit_lets_a_burst_through_then_the_sustained_rate() {
        let mut g = gate(10_000.0, Some(2.0));
        let t0 = Instant::now();
        // A burst of 5 s worth: 10 messages at once.
        for i in 0..10 {
            assert!(g.admit_message(t0).is_ok(), "message {i} of the burst");
        }
        assert_eq!(
            g.admit_message(t0).map_err(|e| e.reason),
            Err(RejectReason::RateLimited)
        );
        // Half a second later one token has come back, not two.
        let later = t0 + Duration::from_millis(500);
        assert!(g.admit_message(later).is_ok());
        assert!(g.admit_message(later).is_err());
        // Polled devices have no limit.
        let mut polled = gate(10_000.0, None);
        for _ in 0..1000 {
            assert!(polled.admit_message(t0).is_ok());
        }
    }
}
