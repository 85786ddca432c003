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

/// Starts what the node shares: the summary once a minute when `[federation]
/// nats` names servers, and each finished day on the bucket when `[federation]
/// s3` names one; both from `public` (the public view of the live snapshot, as
/// the wall sees it) and the history.
pub(crate) async fn start_sharing(
    loaded: &Loaded,
    public: tokio::sync::watch::Receiver<Arc<query::live::LiveSnapshot>>,
    queries: query::history_session::Queries,
    journal: Arc<ledger::Journal>,
    cancel: CancellationToken,
) -> Result<()> {
    let f = &loaded.config.federation;
    if f.nats.is_empty() && f.s3.is_none() {
        return Ok(());
    }
    let dir = &loaded.config.storage.dir;
    let key = Arc::new(node_key(loaded)?);
    let source = federation::source::NodeSource::new(
        key.node_id(),
        public,
        Some(queries),
        Some(journal),
        loaded.config.site.timezone,
    );
    let clock = Arc::new(federation::clock::SystemClock);
    if !f.nats.is_empty() {
        let client = federation::publish::connect(&f.nats, f.credentials.as_deref(), key.node_id())
            .await
            .context("federation")?;
        let publisher = federation::publish::Publisher::new(
            client,
            key.clone(),
            source.clone(),
            dir,
            clock.clone(),
            f.clone(),
        )?;
        tracing::info!(node = %key.node_id(), servers = %f.nats.join(", "), "federation: publishing the public summary");
        tokio::spawn(publisher.run(cancel.clone()));
    }
    if let Some(s3) = &f.s3 {
        let store = federation::archive::s3_store(s3).context("[federation] s3")?;
        let archiver = federation::archive::Archiver::new(
            store,
            key.clone(),
            source,
            dir,
            clock,
            f.publish_interval,
        )?;
        tracing::info!(node = %key.node_id(), bucket = %s3.bucket, "federation: archiving each day on the bucket");
        tokio::spawn(archiver.run(cancel));
    }
    Ok(())
}

/// `communalia region`: the durable consumer, the region's session and its web
/// server, until Ctrl-C or SIGTERM.
pub(crate) async fn run_region(
    file: federation::config::RegionFile,
    bind: Option<std::net::SocketAddr>,
) -> Result<()> {
    use federation::region::{RegionState, consume, session, web};
    let r = &file.region;
    let bind = bind.unwrap_or(r.bind);
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind} for the region's page (use --bind)"))?;
    let addr = listener.local_addr()?;
    let clock = Arc::new(federation::clock::SystemClock);
    let state = Arc::new(RegionState::new(&file, clock)?);
    let client = federation::publish::connect(
        &r.nats,
        r.credentials.as_deref(),
        &format!("region {}", r.name),
    )
    .await
    .context("region")?;
    let cancel = CancellationToken::new();
    let consumer = tokio::spawn(consume(
        client,
        r.stream.clone(),
        r.consumer.clone(),
        state.clone(),
        cancel.clone(),
    ));
    let bucket = match &r.s3 {
        Some(s3) => Some((
            s3.bucket.as_str(),
            federation::archive::s3_store(s3).context("[region] s3")?,
        )),
        None => None,
    };
    let has_archive = bucket.is_some();
    let ctx = session(state.clone(), bucket).await?;
    let lang = dashboards::Lang::from_tag(&r.language).unwrap_or_default();
    let app = web::RegionApp {
        state,
        ctx,
        site: dashboards::SiteInfo {
            name: r.name.clone(),
            default_lang: lang,
            timezone: r.timezone,
        },
        has_archive,
    };
    println!(
        "Communalia region: {} ({} nodes) on http://{addr}/",
        r.name,
        file.nodes.len()
    );
    let server = tokio::spawn(web::serve(listener, app, cancel.clone()));
    crate::wait_for_signal().await;
    cancel.cancel();
    if let Ok(Err(e)) = consumer.await {
        tracing::error!(error = %e, "region: the consumer failed");
    }
    server
        .await
        .context("region web server")?
        .context("region web server")?;
    Ok(())
}
