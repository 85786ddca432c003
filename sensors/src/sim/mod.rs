//! Device simulators for the demo and the tests: a register image served over real
//! Modbus TCP, SunSpec maps of any supported model, the fixed-register meters
//! (SDM630, SDM120, EM24), the payloads of every MQTT profile, the sun, and a
//! small community whose production and consumption drive them all.

pub mod demo;
pub mod em24;
mod image;
pub mod payloads;
pub mod registers;
pub mod sdm120;
pub mod sdm630;
mod server;
pub mod shelly;
pub mod sun;
pub mod sunspec;
pub mod world;

pub use self::image::{RegisterImage, SharedImage};
pub use self::server::{SimControl, serve_modbus_gateway, serve_modbus_tcp};
