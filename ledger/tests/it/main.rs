//! The ledger's integration tests: a journal in a file, reopened, tampered with by
//! raw SQL, and verified.

#![allow(clippy::unwrap_used)]

mod chain;
mod community;
