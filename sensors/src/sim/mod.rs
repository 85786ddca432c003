//! Device simulators for the demo and the tests: a register image served over real
//! Modbus TCP, a SunSpec inverter, an SDM630 meter, Shelly payloads, the sun, and a
//! small community whose production and consumption drive them all.

pub mod demo;
mod image;
pub mod sdm630;
mod server;
pub mod shelly;
pub mod sun;
pub mod sunspec;
pub mod world;

pub use self::image::{RegisterImage, SharedImage};
pub use self::server::serve_modbus_tcp;
