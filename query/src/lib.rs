//! The node's live arithmetic: a DataFusion session over the readings ingest keeps
//! (`readings_live`, with `devices` and `services` beside it), the site balance,
//! and the allocation of available power among services in the priority order of
//! the active plan (DESIGN.md §4); and over the history, the figures of the
//! history charts, exports, installers' SQL and the replay of a draft plan; and
//! which devices are the community's, so that every public surface shows those
//! only ([`visibility`]). It reads the ledger for the plan and never writes
//! anything: no storage, no network, no pages.

pub mod actuation;
pub mod allocation;
pub mod charts;
pub mod config;
pub mod consent;
pub mod engine;
pub mod export;
pub mod history;
pub mod history_session;
pub mod homeassistant;
pub mod live;
pub mod live_table;
pub mod load_shift;
pub mod plan_runner;
pub mod replay;
pub mod stoppable;
pub mod surplus;
pub mod visibility;

/// Everything that can go wrong in a query, by where it went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("query: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// Writing a Parquet file (exports).
    #[error("parquet: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    #[error("ledger: {0}")]
    Ledger(#[from] ledger::Error),
    /// A result lacks a column the code reads from it: the SQL and the code that
    /// reads its result disagree.
    #[error("{query}: column `{column}` missing")]
    MissingColumn { query: &'static str, column: String },
    /// A result column is not of the type the code reads.
    #[error("{query}: column `{column}` has an unexpected type")]
    ColumnType { query: &'static str, column: String },
    /// More devices configured than the engine numbers (`u32`).
    #[error("{0} devices are more than the engine can number")]
    TooManyDevices(usize),
    /// A task the query waited for failed (a panic, or the runtime shutting down).
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
