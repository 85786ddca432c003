//! A network without a centre (DESIGN.md §12): what a node shares with the other
//! nodes of its federation, and the region that reads them all.
//!
//! On a node, this crate owns the node's identity ([`identity`]: an Ed25519 key in
//! the data directory and the node id), the public summary it signs once a minute
//! ([`summary`]) and publishes on NATS JetStream with a durable cursor so that an
//! outage loses and doubles nothing ([`publish`]), and the daily Parquet archive
//! of those summaries on S3-compatible storage ([`archive`]). A summary is made
//! from the *public* view of the live snapshot and from the history's one-minute
//! rollups: community totals only, never a household's meter.
//!
//! For the region (`communalia region`), it owns the durable JetStream consumer,
//! the check of every summary's signature against the keys the region was given,
//! the Arrow table of each node's latest summary and the DataFusion session over it
//! and over the bucket ([`region`]), and the region's small HTTP server.
//!
//! Where it sits in the data flow (`sensors -> ingest -> query -> dashboards ->
//! web`): at the end, beside `web`. On the node it *reads* what `query` computes
//! (snapshots, the history session) and the `ledger`'s journal; for the region it
//! renders its page through `dashboards` (view models and templates in French and
//! English, like every page) and serves it with axum. Nothing but the binary
//! imports this crate, so the NATS and S3 clients it brings are built only into the
//! binary and this crate's tests. It never writes to the node's journal or
//! history, and the region holds no authority over any node: it reads.

pub mod archive;
pub mod clock;
pub mod config;
pub mod cursor;
pub mod identity;
pub mod publish;
pub mod region;
pub mod source;
pub mod summary;
pub mod witness;

use std::path::{Path, PathBuf};

/// Everything that can go wrong in the federation, by where it went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The node key file exists but cannot be used.
    #[error("node key {}: {why}", path.display())]
    Key { path: PathBuf, why: String },
    /// A configuration value the federation cannot use.
    #[error("{0}")]
    Config(String),
    /// NATS: connecting, the stream, publishing or consuming.
    #[error("nats: {0}")]
    Nats(String),
    #[error("query: {0}")]
    Query(String),
    #[error("query: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    /// The object store (S3): building its client, reading or writing.
    #[error("object store: {0}")]
    Store(String),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
