//! Everything Communalia knows about devices, and nothing about talking to real ones.
//!
//! This crate owns the device vocabulary the rest of the node speaks (roles, canonical
//! metrics, samples and the site sign convention of DESIGN.md §2), the `[[device]]`
//! configuration, and the device families as *data*: profiles are TOML files under
//! `sensors/profiles/`, embedded in the binary and parsed once, each register or JSON
//! field commented with the datasheet point it reads. The decoders here are pure
//! functions from register words or MQTT payloads to [`model::Sample`]s, so that they
//! can be tested exhaustively and reused by `ingest`, the probe command and the
//! installer pages alike. The simulators in [`sim`] (a Modbus TCP server over a
//! register image, a SunSpec inverter, an SDM630 meter, Shelly payloads and a small
//! community world) exist for the demo and for tests.
//!
//! It never performs network I/O towards real devices and never stores anything:
//! polling, subscribing, reconnecting and persisting readings belong to `ingest`.

pub mod clock;
pub mod config;
pub mod modbus;
pub mod model;
pub mod mqtt;
pub mod profile;
pub mod sim;
pub mod sunspec;

pub use model::{Metric, PowerSign, Role, Sample};
pub use mqtt::DecodeError;

/// Errors of this crate: a profile or SunSpec model that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("unknown profile `{name}` (known profiles: {known})")]
    UnknownProfile { name: String, known: String },
    /// An embedded data file does not parse or is inconsistent; a test loads every
    /// one of them, so this only happens to a build that skipped its tests.
    #[error("embedded data file `{file}` is invalid: {message}")]
    InvalidDataFile { file: &'static str, message: String },
    #[error("SunSpec model {0} is not supported")]
    UnsupportedModel(u16),
    #[error("SunSpec model {id} has {got} registers, at least {need} are needed")]
    ShortModel { id: u16, got: usize, need: usize },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
