//! The time the federation's loops go by: the system's, or a simulated one that
//! runs faster, so that an hour of minutes passes in seconds in tests and benches.

use std::time::Instant;

use chrono::{DateTime, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Simulated time: `start` when made, then `speed` simulated seconds per real one.
#[derive(Debug, Clone)]
pub struct ScaledClock {
    start: DateTime<Utc>,
    real_start: Instant,
    speed: f64,
}

impl ScaledClock {
    pub fn new(start: DateTime<Utc>, speed: f64) -> ScaledClock {
        ScaledClock {
            start,
            real_start: Instant::now(),
            speed,
        }
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = self.real_start.elapsed().as_secs_f64() * self.speed;
        let ms = (elapsed * 1000.0) as i64;
        self.start + chrono::Duration::milliseconds(ms)
    }
}
