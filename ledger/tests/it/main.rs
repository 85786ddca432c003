//! The ledger's integration tests: a journal in a file, reopened, tampered with by
//! raw SQL, and verified; the contribution ledger's rules, demurrage and export.

#![allow(clippy::unwrap_used)]

mod chain;
mod community;
mod consent;
mod contributions;
mod decisions;
mod demurrage;
mod export;
mod planning;
mod sortition;
mod tamper;
