//! sensors' integration tests, one binary (STYLE.md): read plans against an
//! independent minimum, and SunSpec maps built by the simulator for every model.

mod plans;
mod sunspec_maps;
