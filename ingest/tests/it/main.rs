//! ingest's integration tests, one binary (STYLE.md): Modbus polling against the
//! simulators and against pymodbus, SunSpec decoding checked against pysunspec2,
//! Modbus RTU over a pseudo-terminal pair, faults, bus traffic and fuzzing, and
//! the embedded broker's backlog.

mod backlog;
mod faults;
mod fuzz;
mod pysunspec2;
mod roles;
mod rtu;
mod support;
mod traffic;
