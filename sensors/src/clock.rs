//! The time readings are stamped with and the live side reasons in: the system
//! clock, except in `communalia demo`, which installs its simulated clock here at
//! start so that the wall's "last reading", the history's hours, staleness and the
//! simulated sun all read one clock, whatever `--speed`, `--start` or `--date`.
//!
//! What is about people rather than power keeps the system clock: sessions, sign-in
//! limits, tokens and the journal's entries.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};

use crate::sim::demo::SimClock;

static CLOCK: OnceLock<SimClock> = OnceLock::new();

/// Now, on the node's clock.
pub fn now() -> DateTime<Utc> {
    CLOCK.get().map_or_else(Utc::now, SimClock::now)
}

/// Makes `clock` the node's clock for the rest of the process; `false` if one was
/// installed already (the first stays).
pub fn install(clock: SimClock) -> bool {
    CLOCK.set(clock).is_ok()
}
