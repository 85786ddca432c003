//! `communalia federation …`: the node's identity as the federation knows it.

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use crate::config::Loaded;

/// The node key of the configured data directory (made if there is none yet),
/// sealed with the data key when there is one.
pub(crate) fn node_key(loaded: &Loaded) -> Result<federation::identity::NodeKey> {
    let c = &loaded.config;
    // On an encrypted node the key is kept sealed with the data key.
    let sealer = loaded
        .data_key()?
        .map(|key| keyring::RecordSealer::new(&key.subkey(keyring::Purpose::NodeKey)));
    Ok(federation::identity::NodeKey::load_or_create_sealed(
        &c.storage.dir,
        c.federation.node_id.as_deref(),
        sealer.as_ref(),
    )?)
}

/// Prints the node id and public key, in the form `region.toml` takes them.
pub(crate) fn show(loaded: &Loaded) -> Result<()> {
    let key = node_key(loaded)?;
    println!("node id: {}", key.node_id());
    println!("public key: {}", key.public());
    println!("key file: {}", key.path().display());
    println!(
        "checkpoint key (for a witness's `logs`): {}",
        federation::witness::log_verifier(&key)
    );
    println!(
        "witness key (for a neighbour's `witnesses`): {}",
        federation::witness::witness_verifier(&key)
    );
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
    if f.nats.is_empty() && f.s3.is_none() && f.witnesses.is_empty() {
        return Ok(());
    }
    let dir = &loaded.config.storage.dir;
    let key = Arc::new(node_key(loaded)?);
    if !f.witnesses.is_empty() {
        tracing::info!(witnesses = f.witnesses.len(), every = ?f.checkpoint_every, "federation: journal checkpoints sent to the witnesses");
        tokio::spawn(witness_periodically(
            key.clone(),
            journal.clone(),
            f.witnesses.clone(),
            f.checkpoint_every.max(std::time::Duration::from_secs(60)),
            dir.clone(),
            cancel.clone(),
        ));
    }
    let source = federation::source::NodeSource::new(
        key.node_id(),
        public,
        Some(queries),
        Some(journal),
        loaded.config.site.timezone,
    );
    let clock = Arc::new(federation::clock::SystemClock);
    if !f.nats.is_empty() {
        let client = federation::publish::connect_with(
            &f.nats,
            f.credentials.as_deref(),
            key.node_id(),
            f.ping_interval,
        )
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

/// Signs a checkpoint of the journal and asks every witness to cosign it, at
/// start and then every `every`, until `cancel`. A witness's refusal (409 that a
/// retry did not settle, 422: the journal no longer extends what it cosigned) is
/// an error in the log; the checkpoint with the cosignatures it got is kept for
/// `ledger verify --witnesses`.
async fn witness_periodically(
    key: Arc<federation::identity::NodeKey>,
    journal: Arc<ledger::Journal>,
    witnesses: Vec<federation::config::WitnessPeer>,
    every: std::time::Duration,
    dir: std::path::PathBuf,
    cancel: CancellationToken,
) {
    use federation::witness::{Answer, collect_cosignatures, journal_leaves, signed_checkpoint};
    let http = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
    {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "witnessing: no HTTP client");
            return;
        }
    };
    loop {
        let j = journal.clone();
        match tokio::task::spawn_blocking(move || journal_leaves(&j)).await {
            Ok(Ok(leaves)) => {
                let note = signed_checkpoint(&key, &leaves);
                match collect_cosignatures(&http, &witnesses, note, &leaves, &dir).await {
                    Ok(answers) => {
                        for (url, answer) in answers {
                            match answer {
                                Answer::Cosigned => {
                                    tracing::info!(%url, size = leaves.len(), "witness cosigned the journal's checkpoint")
                                }
                                Answer::Refused { status, reason } => tracing::error!(
                                    %url, %status, %reason, size = leaves.len(),
                                    "witness REFUSED the journal's checkpoint: it does not extend what it cosigned before"
                                ),
                                Answer::Unreachable(why) => {
                                    tracing::warn!(%url, %why, "witness unreachable")
                                }
                            }
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "witnessing failed"),
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "witnessing: cannot read the journal"),
            Err(e) => tracing::error!(error = %e, "witnessing: cannot read the journal"),
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
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
    tokio::spawn(federation::region::listen_to_witnesses(
        client.clone(),
        state.clone(),
        cancel.clone(),
    ));
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
    let compaction = match (&bucket, r.compact) {
        (Some((_, store)), true) => {
            let stats = Arc::new(federation::region::compact::CompactionStats::default());
            let compactor = federation::region::compact::Compactor::open(
                store.clone(),
                &r.consumer,
                state.keys(),
                stats.clone(),
            )
            .await
            .context("[region] s3: the compacted history")?;
            tokio::spawn(compactor.run(r.compact_every, cancel.clone()));
            Some(stats)
        }
        _ => None,
    };
    let ctx = session(state.clone(), bucket.clone()).await?;
    if let (Some((bucket, _)), Some(_)) = (&bucket, &compaction) {
        federation::region::compact::register_compacted(&ctx, bucket, &r.consumer)?;
    }
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
        compaction,
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

/// The journal's leaves, from an existing journal (never creates one).
fn leaves(loaded: &Loaded) -> Result<Vec<federation::witness::merkle::Hash>> {
    let path = loaded.ledger_path();
    if !path.exists() {
        anyhow::bail!(
            "no ledger at {} (has the node run with this configuration?)",
            path.display()
        );
    }
    let journal = ledger::Journal::open_keyed(&path, loaded.journal_key()?.as_ref())
        .with_context(|| format!("cannot open {}", path.display()))?;
    Ok(federation::witness::journal_leaves(&journal)?)
}

/// `communalia federation checkpoint`: signs a checkpoint and asks each witness.
pub(crate) async fn checkpoint(loaded: &Loaded) -> Result<std::process::ExitCode> {
    use federation::witness::{Answer, collect_cosignatures, signed_checkpoint};
    let f = &loaded.config.federation;
    if f.witnesses.is_empty() {
        anyhow::bail!("[federation] witnesses names no witness to ask");
    }
    let key = node_key(loaded)?;
    let leaves = leaves(loaded)?;
    let note = signed_checkpoint(&key, &leaves);
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .context("HTTP client")?;
    let answers = collect_cosignatures(
        &http,
        &f.witnesses,
        note,
        &leaves,
        &loaded.config.storage.dir,
    )
    .await?;
    let mut cosigned = 0;
    for (url, answer) in &answers {
        match answer {
            Answer::Cosigned => {
                cosigned += 1;
                println!("{url}: cosigned checkpoint {}", leaves.len());
            }
            Answer::Refused { status, reason } => println!("{url}: refused ({status}): {reason}"),
            Answer::Unreachable(why) => println!("{url}: unreachable: {why}"),
        }
    }
    println!(
        "{cosigned} of {} witnesses cosigned {} entries",
        answers.len(),
        leaves.len()
    );
    Ok(if cosigned == answers.len() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(2)
    })
}

/// `communalia federation witness`: serves `POST /add-checkpoint` for the logs of
/// `[federation] witness`.
pub(crate) async fn witness(loaded: &Loaded) -> Result<()> {
    let Some(w) = &loaded.config.federation.witness else {
        anyhow::bail!("no [federation] witness section: which logs, on which address?");
    };
    let key = Arc::new(node_key(loaded)?);
    let witness = Arc::new(federation::witness::Witness::open(
        key,
        &w.logs,
        &loaded.config.storage.dir,
        Arc::new(federation::clock::SystemClock),
    )?);
    let listener = tokio::net::TcpListener::bind(w.bind)
        .await
        .with_context(|| format!("cannot listen on {} for the witness", w.bind))?;
    println!(
        "Communalia witness {} for {} logs on http://{}/add-checkpoint",
        witness.verifier(),
        w.logs.len(),
        listener.local_addr()?
    );
    let cancel = CancellationToken::new();
    // What it refuses is said to the region, once a minute, when it has servers.
    let f = &loaded.config.federation;
    if !f.nats.is_empty() {
        let client = federation::publish::connect(
            &f.nats,
            f.credentials.as_deref(),
            &format!("witness {}", witness.verifier().name),
        )
        .await
        .context("witness")?;
        tokio::spawn(federation::witness::announce(
            client,
            witness.clone(),
            std::time::Duration::from_secs(60),
            cancel.clone(),
        ));
    }
    let stop = cancel.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, federation::witness::witness_app(witness))
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
    });
    crate::wait_for_signal().await;
    cancel.cancel();
    server.await.context("witness")?.context("witness")?;
    Ok(())
}

/// `ledger verify --witnesses`: the latest witnessed checkpoint against the keys
/// and the journal.
pub(crate) fn verify_witnesses(loaded: &Loaded) -> Result<std::process::ExitCode> {
    let f = &loaded.config.federation;
    let path = loaded
        .config
        .storage
        .dir
        .join(federation::witness::CHECKPOINT_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no witnessed checkpoint at {} (run `communalia federation checkpoint`)",
            path.display()
        )
    })?;
    let key = node_key(loaded)?;
    let report =
        federation::witness::verify_witnessed(&text, &key, &f.witnesses, &leaves(loaded)?)?;
    println!(
        "  witnesses: checkpoint of {} entries, signed by this node: {}, cosigned by {} of {} ({})",
        report.size,
        if report.signed { "yes" } else { "NO" },
        report.cosigned.len(),
        f.witnesses.len(),
        report.cosigned.join(", ")
    );
    if !report.missing.is_empty() {
        println!(
            "  witnesses: no valid cosignature from {}",
            report.missing.join(", ")
        );
    }
    if !report.journal_matches {
        println!(
            "  witnesses: the journal no longer begins with the {} entries they witnessed: it was rewritten",
            report.size
        );
    }
    Ok(if report.ok() {
        println!("witnesses agree");
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(2)
    })
}
