//! `communalia federation …`: the node's identity as the federation knows it.

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use crate::config::Loaded;

/// The node key of the configured data directory (made if there is none yet).
pub(crate) fn node_key(loaded: &Loaded) -> Result<federation::identity::NodeKey> {
    let c = &loaded.config;
    Ok(federation::identity::NodeKey::load_or_create(
        &c.storage.dir,
        c.federation.node_id.as_deref(),
    )?)
}

/// Prints the node id and public key, in the form `region.toml` takes them.
pub(crate) fn show(loaded: &Loaded) -> Result<()> {
    let key = node_key(loaded)?;
    println!("node id: {}", key.node_id());
    println!("public key: {}", key.public());
    println!("key file: {}", key.path().display());
    println!(
        "\nFor a region.toml:\n\n[[node]]\nid = \"{}\"\nname = \"{}\"\nkey = \"{}\"",
        key.node_id(),
        loaded.config.site.name.replace('"', "\\\""),
        key.public()
    );
    Ok(())
}

/// Starts publishing the node's summary when `[federation] nats` names servers:
/// from `public` (the public view of the live snapshot, as the wall sees it) and
/// the history.
pub(crate) async fn start_sharing(
    loaded: &Loaded,
    public: tokio::sync::watch::Receiver<Arc<query::live::LiveSnapshot>>,
    queries: query::history_session::Queries,
    journal: Arc<ledger::Journal>,
    cancel: CancellationToken,
) -> Result<()> {
    let f = &loaded.config.federation;
    if f.nats.is_empty() {
        return Ok(());
    }
    let key = Arc::new(node_key(loaded)?);
    let source = federation::source::NodeSource::new(
        key.node_id(),
        public,
        Some(queries),
        Some(journal),
        loaded.config.site.timezone,
    );
    let client = federation::publish::connect(&f.nats, f.credentials.as_deref(), key.node_id())
        .await
        .context("federation")?;
    let publisher = federation::publish::Publisher::new(
        client,
        key.clone(),
        source,
        &loaded.config.storage.dir,
        Arc::new(federation::clock::SystemClock),
        f.clone(),
    )?;
    tracing::info!(node = %key.node_id(), servers = %f.nats.join(", "), "federation: publishing the public summary");
    tokio::spawn(publisher.run(cancel));
    Ok(())
}
