//! Starting the parts of a node in order, and stopping them in the reverse order:
//! ledger, ingest (broker, workers, sink), the live evaluation, then the web server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ingest::Ingest;
use ingest::config::BrokerEndpoint;
use ingest::metrics::IngestMetrics;
use ingest::mqtt::MqttClientOptions;
use ingest::store::LiveStore;
use ledger::Journal;
use query::engine::{Engine, EngineOptions, empty_snapshot};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{Language, Loaded};

/// How much recent data the live store keeps in memory.
const LIVE_WINDOW: Duration = Duration::from_secs(15 * 60);

pub(crate) struct Node {
    /// The plain HTTP address (with HTTPS on, it only redirects there).
    pub(crate) web_addr: SocketAddr,
    /// Where HTTPS listens and its certificate, when it is on.
    pub(crate) https: Option<(SocketAddr, web::tls::TlsShown)>,
    cancel: CancellationToken,
    web_cancel: CancellationToken,
    ingest: Ingest,
    engine: tokio::task::JoinHandle<()>,
    web: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Opens the journal and records the configured plan and members if it is new.
pub(crate) fn open_ledger(loaded: &Loaded) -> Result<Journal> {
    let c = &loaded.config;
    std::fs::create_dir_all(&c.storage.dir).with_context(|| {
        format!(
            "cannot create the storage directory {}",
            c.storage.dir.display()
        )
    })?;
    let path = loaded.ledger_path();
    let key = loaded.journal_key()?;
    let journal = Journal::open_keyed(&path, key.as_ref())
        .with_context(|| format!("cannot open the ledger {}", path.display()))?;
    let plan = query::config::initial_plan(&c.services, &c.tiers, &c.sources);
    let members: Vec<(String, Vec<ledger::Role>)> = c
        .members
        .iter()
        .map(|m| (m.name.clone(), m.roles.clone()))
        .collect();
    if journal.seed(&plan, &members, chrono::Utc::now())? {
        tracing::info!(path = %path.display(), "new journal: initial plan recorded");
    }
    // A household's members consent for it: each must be a member of the journal.
    for (i, h) in c.households.iter().enumerate() {
        for m in &h.members {
            if journal.member(m)?.is_none() {
                anyhow::bail!(
                    "{}: key `household[{i}].members` of household `{}`: no member named `{m}` \
                     in the journal (add them with `communalia user add`)",
                    loaded.source,
                    h.id
                );
            }
        }
    }
    Ok(journal)
}

/// The node's HTTPS certificate as `[web] tls` says: none (`"off"`), the one it
/// made at an earlier start or makes now (`"auto"`), or the installer's files.
fn https_identity(loaded: &Loaded, bind: SocketAddr) -> Result<Option<web::tls::TlsIdentity>> {
    let c = &loaded.config;
    Ok(match &c.web.tls {
        crate::config::TlsSetting::Off => None,
        crate::config::TlsSetting::Auto => {
            let names = web::tls::default_names(bind, &c.web.tls_names);
            Some(
                web::tls::TlsIdentity::load_or_generate(&c.storage.dir, &names)
                    .with_context(|| format!("{}: key `web.tls`", loaded.source))?,
            )
        }
        crate::config::TlsSetting::Files { cert, key } => Some(
            web::tls::TlsIdentity::from_files(cert, key)
                .with_context(|| format!("{}: key `web.tls`", loaded.source))?,
        ),
    })
}

impl Node {
    /// Starts everything; fails with the address named when a port is taken.
    /// `https`: whether `[web] tls` applies (the demo stays on plain HTTP).
    pub(crate) async fn start(loaded: &Loaded, bind: SocketAddr, https: bool) -> Result<Node> {
        let c = &loaded.config;
        let journal = Arc::new(open_ledger(loaded)?);
        // Erasures members asked for from `/me`, done before the history and the
        // log are opened for the node (nothing can flush or compact meanwhile). One
        // that fails stays pending, shown as such on `/me`, and is tried again at
        // the next start or by `communalia household erase --pending`.
        let carried = crate::household_cli::carry_out_requests(loaded, &journal)?;
        for (h, done) in carried.done {
            tracing::info!(household = %h.id, rows = done.rows, entry = done.seq,
                "erased a household's readings at its request");
        }
        for (request, e) in carried.failed {
            tracing::error!(request, error = %format!("{e:#}"),
                "could not carry out an erasure request; it stays pending");
        }
        let store = Arc::new(LiveStore::new(LIVE_WINDOW));
        let metrics = Arc::new(IngestMetrics::default());
        // What was accepted before the last stop (or crash) comes back first.
        let data_key = loaded.data_key()?;
        let history_options = crate::keys::history_options(&c.storage, data_key);
        let history = ingest::history::History::open(&c.storage.dir, history_options)
            .with_context(|| format!("cannot open the history in {}", c.storage.dir.display()))?;
        let wal_dir = c.storage.dir.join("wal");
        metrics.set_clear_text_at_rest(data_key.is_none());
        let sealer = crate::keys::wal_sealer(data_key);
        let (wal, replayed) = ingest::open_wal_sealed(&wal_dir, &store, Some(&history), sealer)
            .with_context(|| format!("cannot open the write-ahead log in {}", wal_dir.display()))?;
        tracing::info!(
            records = replayed.records.len(),
            readings = replayed.reading_count(),
            cut_bytes = replayed.truncated_bytes,
            "write-ahead log replayed"
        );
        for damage in &replayed.damaged {
            tracing::error!(%damage, "write-ahead log damaged; readings of that part are lost");
        }
        let cancel = CancellationToken::new();
        // Woken by the web API after each plan adoption: the live evaluation re-runs at once.
        let replan = Arc::new(tokio::sync::Notify::new());

        // Bind the web port first: a taken port is the most common start failure.
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind} for the web server (is another node or program using it? use --bind)"))?;
        let web_addr = listener.local_addr()?;
        let tls = if https {
            https_identity(loaded, bind)?
        } else {
            None
        };
        let https_listener = match &tls {
            Some(_) => {
                let addr = c.web.https_addr(bind);
                Some(tokio::net::TcpListener::bind(addr).await.with_context(|| {
                    format!("cannot listen on {addr} for HTTPS (is another program using it? set [web] https_bind)")
                })?)
            }
            None => {
                if !bind.ip().is_loopback() {
                    tracing::warn!(%bind, "the web server is reachable from the network over plain HTTP: passwords and sessions cross the LAN in clear; set [web] tls = \"auto\" (docs/installers.md)");
                }
                None
            }
        };

        let workers = ingest::resolve_devices(&c.devices)?;
        // Actuated services need the broker even on a site without MQTT devices.
        let actuated = query::actuation::actuated_services(&c.services);
        let home_assistant = c.homeassistant.discovery.then(|| {
            query::homeassistant::Discovery::new(&c.homeassistant, &c.site.name, &c.services)
        });
        let mqtt = if workers.mqtt.is_empty() && actuated.is_empty() && home_assistant.is_none() {
            None
        } else {
            let mut login = (c.mqtt.username.clone(), c.mqtt.password.clone());
            let endpoint = match c.mqtt.endpoint()? {
                BrokerEndpoint::Embedded(mut addr) => {
                    if addr.port() == 0 {
                        addr = ingest::broker::free_local_addr()?;
                    }
                    let access = ingest::broker::embedded_access(&c.mqtt, &c.devices)?;
                    ingest::broker::start_embedded_with(
                        addr,
                        access.as_ref(),
                        c.mqtt.embedded_backlog_kib,
                    )?;
                    tracing::info!(
                        %addr,
                        accounts = access.as_ref().map_or(0, |a| a.account_names().count()),
                        "embedded MQTT broker listening"
                    );
                    if let Some(access) = &access {
                        let (user, password) = access.node_login();
                        login = (Some(user.to_string()), Some(password.to_string()));
                    }
                    BrokerEndpoint::Embedded(addr)
                }
                external => external,
            };
            let client_id = match &c.mqtt.client_id {
                Some(id) => id.clone(),
                None => ingest::mqtt::stable_client_id(&c.storage.dir).with_context(|| {
                    format!(
                        "cannot keep the MQTT client id in {}",
                        c.storage.dir.display()
                    )
                })?,
            };
            Some(MqttClientOptions {
                endpoint,
                client_id,
                username: login.0,
                password: login.1,
            })
        };
        let durability = ingest::Durability {
            wal: Some(wal),
            recovered: replayed.digests,
            history: Some(history.clone()),
        };
        // Free space watched, and room made before the disk is full.
        // It stops on `cancel`; not joined: it holds nothing to write out.
        let _storage_monitor = ingest::storage::spawn_monitor(
            c.storage.dir.clone(),
            c.storage.min_free,
            Some(history.clone()),
            metrics.clone(),
            cancel.clone(),
        );
        let ingest = Ingest::start(
            workers,
            mqtt.clone(),
            store.clone(),
            metrics.clone(),
            durability,
            cancel.clone(),
        );

        let queries =
            query::history_session::Queries::new(history.clone(), &c.devices, &c.services)
                .await?
                .with_sql_limits(query::export::SqlLimits {
                    memory_bytes: c.web.sql_memory_mb * 1024 * 1024,
                    ..query::export::SqlLimits::default()
                })?;
        let visibility = queries.visibility().clone();
        let households = query::consent::Households::new(&c.households, &visibility)
            .map_err(|problems| anyhow::anyhow!("[[household]]: {}", problems.join("; ")))?;
        let queries = queries
            .with_households(households)
            .with_timezone(c.site.timezone);
        let engine = Engine::new(
            store,
            metrics.clone(),
            journal.clone(),
            &c.devices,
            &c.services,
            EngineOptions::default(),
        )
        .await?;
        let (tx, rx) = watch::channel(Arc::new(empty_snapshot(chrono::Utc::now())));
        let engine =
            tokio::spawn(engine.run(tx, Duration::from_secs(1), replan.clone(), cancel.clone()));
        // Each evaluation goes into the history, for its charts and replays.
        tokio::spawn(query::replay::record(
            rx.clone(),
            ingest.sender(),
            cancel.clone(),
        ));

        // What the public sees of each evaluation: the community's devices only.
        let visibility = queries.visibility().clone();
        let (public, feed) = query::visibility::public_feed(rx.clone(), visibility.clone());
        tokio::spawn(feed);

        // --- what the node publishes over MQTT: actuation commands (opt-in per
        // service) and Home Assistant discovery (opt-in), through one client ---
        if let Some(opts) = mqtt
            && (!actuated.is_empty() || home_assistant.is_some())
        {
            let (publish_tx, publish_rx) = tokio::sync::mpsc::channel(256);
            let last_will = home_assistant.as_ref().map(|d| d.availability(false));
            // They stop on `cancel`; not joined: the retained messages are on the broker.
            ingest::actuate::spawn_publisher(opts, publish_rx, last_will, cancel.clone());
            if !actuated.is_empty() {
                tracing::info!(services = actuated.len(), "actuation enabled");
                tokio::spawn(query::actuation::run(
                    rx.clone(),
                    actuated,
                    publish_tx.clone(),
                    cancel.clone(),
                ));
            }
            if let Some(discovery) = home_assistant {
                tracing::info!(state = %discovery.state_topic(), "Home Assistant discovery enabled");
                tokio::spawn(query::homeassistant::run(
                    public.clone(),
                    discovery,
                    publish_tx,
                    cancel.clone(),
                ));
            }
        }
        // --- end of what the node publishes ---
        // The node's own repair needs on the planning board. It stops on `cancel`;
        // not joined: each look is one short transaction.
        let lang = match c.site.language {
            Language::Fr => dashboards::Lang::Fr,
            Language::En => dashboards::Lang::En,
        };
        tokio::spawn(crate::repair::run(
            crate::repair::RepairWatch::new(c.planning.repair_after, lang),
            rx.clone(),
            journal.clone(),
            cancel.clone(),
        ));
        // The node's offers of solar surplus, from the history's forecast.
        if c.planning.surplus_offers {
            tokio::spawn(crate::surplus::run(
                crate::surplus::SurplusWatch::new(c.planning.surplus_min_w, c.site.timezone, lang),
                rx.clone(),
                journal.clone(),
                queries.clone(),
                cancel.clone(),
            ));
        }
        // The node's needs for the services shed for hours this week.
        if c.planning.shed_need_hours > 0.0 {
            tokio::spawn(crate::shed::run(
                crate::shed::ShedWatch::new(c.planning.shed_need_hours, c.site.timezone, lang),
                rx.clone(),
                journal.clone(),
                queries.clone(),
                cancel.clone(),
            ));
        }
        // What the federation sees: the public view's totals, once a minute.
        crate::federation_cli::start_sharing(
            loaded,
            public.clone(),
            queries.clone(),
            journal.clone(),
            cancel.clone(),
        )
        .await?;
        let state = web::AppState {
            live: public,
            live_full: rx,
            visibility,
            metrics,
            journal,
            replan,
            login_limiter: Arc::new(web::LoginLimiter::default()),
            queries: Some(queries),
            services: Arc::new(c.services.iter().map(|s| s.id.clone()).collect()),
            site: dashboards::SiteInfo {
                name: c.site.name.clone(),
                default_lang: match c.site.language {
                    Language::Fr => dashboards::Lang::Fr,
                    Language::En => dashboards::Lang::En,
                },
                timezone: c.site.timezone,
            },
        };
        let web_cancel = CancellationToken::new();
        let (web, https) = match (tls, https_listener) {
            (Some(identity), Some(https_listener)) => {
                let addr = https_listener.local_addr()?;
                let shown = identity.shown.clone();
                let web = tokio::spawn(web::serve_tls(
                    https_listener,
                    Some(listener),
                    state,
                    identity,
                    web_cancel.clone(),
                ));
                (web, Some((addr, shown)))
            }
            _ => (
                tokio::spawn(web::serve(listener, state, web_cancel.clone())),
                None,
            ),
        };
        Ok(Node {
            web_addr,
            https,
            cancel,
            web_cancel,
            ingest,
            engine,
            web,
        })
    }

    /// Ordered shutdown: stop ingest and let the sink drain, stop the evaluation,
    /// then the web server.
    pub(crate) async fn shutdown(self) -> Result<()> {
        self.cancel.cancel();
        self.ingest.join().await;
        let _ = self.engine.await;
        self.web_cancel.cancel();
        match self.web.await {
            Ok(r) => r.context("web server")?,
            Err(e) => tracing::error!(error = %e, "web server task failed"),
        }
        Ok(())
    }
}
