//! What the integration tests of every crate share, and nothing the node itself uses
//! (a dev-dependency only).
//!
//! - [`peers`]: whether an outside peer (Mosquitto, pymodbus, Chromium...) is present,
//!   and the `skipped: <peer> not available` line, or a failure under
//!   `COMMUNALIA_REQUIRE_PEERS=1` as `.ci/run` sets it.
//! - [`browser`]: headless Chromium run once for a page, leaving nothing behind.
//! - [`net`]: free ports and "is something listening".
//! - [`process`]: child processes that never outlive the test that started them, nor
//!   do their own children (Chromium's many processes, a broker, a Python server).
//! - [`rtu`]: an RS-485 bus with two meters on it, for the serial paths.

pub mod browser;
pub mod net;
pub mod peers;
pub mod process;
pub mod rtu;
