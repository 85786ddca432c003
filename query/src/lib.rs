//! The node's live arithmetic: a DataFusion session over the readings ingest keeps
//! (`readings_live`, with `devices` and `services` beside it), the site balance,
//! and the allocation of available power among services in the priority order of
//! the active plan (DESIGN.md §4); and over the history, the figures of the
//! history charts, exports, installers' SQL and the replay of a draft plan. It
//! reads the ledger for the plan and never writes anything: no storage, no
//! network, no pages.

pub mod actuation;
pub mod allocation;
pub mod charts;
pub mod config;
pub mod engine;
pub mod export;
pub mod history;
pub mod history_session;
pub mod live;
pub mod live_table;
pub mod plan_runner;
pub mod replay;
pub mod stoppable;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("query: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("ledger: {0}")]
    Ledger(#[from] ledger::Error),
    #[error("{0}")]
    Query(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
