//! End-to-end tests of the `communalia` binary: real processes, real sockets,
//! simulators and outside peers (Mosquitto, pymodbus) where they are present.

mod support;

mod actuation;
mod atrest;
mod backup;
mod cli;
mod crash;
mod end_to_end;
mod federation;
mod guard;
mod history;
mod homeassistant;
mod household_cli;
mod ledger_cli;
mod live;
mod peers;
mod privacy;
mod probe;
mod repair;
mod sortition_cli;
mod storage;
mod transit;
mod trust;
