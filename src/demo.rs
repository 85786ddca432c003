//! `communalia demo`: a whole simulated community on this machine. The simulators
//! (sensors::sim) take free ports; this file points the demo configuration at them
//! and starts an ordinary node over it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::NaiveTime;
use sensors::model::Role;
use sensors::sim::demo::{DemoOptions, start as start_simulators};
use sensors::sim::world::{LoadShape, SimLoad, WorldConfig};
use tokio_util::sync::CancellationToken;

use crate::config::{self, Loaded};
use crate::node::Node;

pub(crate) const DEMO_TOML: &str = include_str!("../config/demo.toml");

#[derive(Debug, Clone)]
pub(crate) struct DemoArgs {
    pub(crate) config: Option<PathBuf>,
    pub(crate) bind: Option<SocketAddr>,
    pub(crate) speed: f64,
    pub(crate) start: Option<NaiveTime>,
    pub(crate) date: Option<chrono::NaiveDate>,
    pub(crate) data: Option<PathBuf>,
    /// Days of simulated history written before the start (0: none).
    pub(crate) history_days: u32,
}

/// The demo's load shapes, by service position: a fridge, a school, households.
fn shape_for(index: usize) -> (LoadShape, f64) {
    match index {
        0 => (LoadShape::Fridge, 150.0),
        1 => (LoadShape::School, 2000.0),
        _ => (LoadShape::Households, 3000.0),
    }
}

pub(crate) async fn run(args: DemoArgs) -> Result<()> {
    let mut loaded: Loaded = match &args.config {
        Some(p) => config::load_file(p)?,
        None => config::parse(DEMO_TOML, "config/demo.toml (built in)")?,
    };
    if !(args.speed.is_finite() && args.speed > 0.0) {
        bail!("--speed must be a positive number (got {})", args.speed);
    }
    let data = match &args.data {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("communalia-demo-{}", std::process::id())),
    };
    loaded.config.storage.dir = data.clone();
    // The demo exercises encryption at rest: its key file is the data directory's
    // sibling (`<data>.key`), outside it as a real site's must be. A `--data`
    // directory a clear-text demo filled before stays clear text.
    let storage = &mut loaded.config.storage;
    if storage.key_file.is_none() && storage.passphrase.is_none() {
        if keyring::is_encrypted(&data) || crate::keys::clear_data(&data).is_empty() {
            storage.key_file = Some(data.with_extension("key"));
        } else {
            tracing::warn!(data = %data.display(), "this demo data directory is in clear text; it stays so");
        }
    }
    // Opened (or made) now, before the simulated past is written into the history.
    loaded.data_key()?;
    // The broker starts before the simulators so that they find it at once; the
    // node then connects to it like to any broker.
    let broker = ingest::broker::free_local_addr()?;
    ingest::broker::start_embedded_with(broker, None, loaded.config.mqtt.embedded_backlog_kib)?;
    loaded.config.mqtt.broker = format!("mqtt://{broker}");

    let c = &loaded.config;
    let mut service_topics = Vec::new();
    let mut loads = Vec::new();
    for (i, s) in c.services.iter().enumerate() {
        let topic = s
            .meter
            .as_ref()
            .and_then(|m| c.devices.iter().find(|d| &d.id == m))
            .filter(|d| d.profile == "shelly-gen2-em")
            .and_then(|d| d.mqtt.as_ref())
            .map(|m| m.topic.clone());
        let Some(topic) = topic else { continue };
        let (profile, base_w) = shape_for(i);
        service_topics.push((s.id.clone(), topic));
        loads.push(SimLoad {
            id: s.id.clone(),
            base_w,
            profile,
        });
    }
    let battery_topic = c
        .devices
        .iter()
        .find(|d| d.role == Role::Battery)
        .and_then(|d| d.mqtt.as_ref())
        .map(|m| m.topic.clone())
        .unwrap_or_else(|| "demo/battery".into());
    let cancel = CancellationToken::new();
    let world = WorldConfig {
        latitude: c.site.latitude,
        longitude: c.site.longitude,
        pv_peak_w: 9000.0,
        battery_capacity_wh: 10_000.0,
        battery_max_w: 3000.0,
        battery_reserve_pct: 20.0,
        services: loads,
    };
    let site = start_simulators(
        DemoOptions {
            world: world.clone(),
            speed: args.speed,
            start: args.start,
            date: args.date,
            timezone: c.site.timezone,
            broker,
            inverter_unit: 1,
            meter_unit: 1,
            battery_topic,
            service_topics,
            tick: Duration::from_millis(500),
        },
        cancel.clone(),
    )
    .await
    .context("cannot start the simulators")?;
    // One clock everywhere: readings, the wall, the history and the simulated sun
    // all read the simulation's time from here on.
    sensors::clock::install(site.clock.clone());

    for d in &mut loaded.config.devices {
        if let Some(m) = &mut d.modbus {
            match d.profile.as_str() {
                "sunspec" => m.port = site.inverter_addr.port(),
                "sdm630" => m.port = site.meter_addr.port(),
                _ => {}
            }
        }
    }
    // The past the history pages and the replay show, made up before the node
    // opens its history.
    let seeding = std::time::Instant::now();
    let seeded = crate::demo_history::seed(
        &loaded.config,
        crate::keys::history_options(&loaded.config.storage, loaded.data_key()?),
        &world,
        &data,
        site.clock.now(),
        args.history_days,
    )?;
    let accounts = demo_accounts(&loaded)?;
    demo_ledger(&loaded)?;
    let bind = args.bind.unwrap_or(loaded.config.web.bind);
    // The demo stays on plain HTTP (on loopback unless `--bind` says otherwise).
    let node = Node::start(&loaded, bind, false).await?;
    println!("Communalia demo: {}", loaded.config.site.name);
    println!("  web:        http://{}/", node.web_addr);
    println!("  mqtt:       {broker} (embedded broker)");
    println!(
        "  inverter:   modbus-tcp://{}/1 (SunSpec, simulated)",
        site.inverter_addr
    );
    println!(
        "  grid meter: modbus-tcp://{}/1 (SDM630, simulated)",
        site.meter_addr
    );
    println!("  data:       {}", data.display());
    match &loaded.config.storage.key_file {
        Some(key) => println!(
            "  key file:   {} (the data is encrypted at rest)",
            key.display()
        ),
        None => println!("  key file:   none (the data is NOT encrypted)"),
    }
    if seeded.days > 0 {
        println!(
            "  history:    {} simulated days before the start ({} readings, written in {:.1} s)",
            seeded.days,
            seeded.readings,
            seeding.elapsed().as_secs_f64()
        );
    }
    println!(
        "  sim clock:  {} (x{})",
        site.clock
            .now()
            .with_timezone(&loaded.config.site.timezone)
            .format("%Y-%m-%d %H:%M"),
        args.speed
    );
    if !accounts.is_empty() {
        println!(
            "  sign in at http://{}/login (demo accounts, new each run):",
            node.web_addr
        );
        for (name, roles, password) in &accounts {
            println!("    {name:<10} {password}   ({roles})");
        }
        if let Some((name, _, _)) = accounts
            .iter()
            .find(|(_, roles, _)| roles.contains("assembly"))
        {
            println!(
                "  the assembly's panel (plans, preview, adoption): http://{}/assembly, as {name}",
                node.web_addr
            );
        }
        println!(
            "  the contribution ledger (any member): http://{}/ledger",
            node.web_addr
        );
        if let Some((name, _, _)) = accounts
            .iter()
            .find(|(_, roles, _)| roles.contains("installer"))
        {
            println!(
                "  the installer's page (devices, raw registers, probe): http://{}/installer, as {name}",
                node.web_addr
            );
        }
    }
    println!("Press Ctrl-C to stop.");
    crate::wait_for_signal().await;
    cancel.cancel();
    node.shutdown().await
}

/// A few days of the demo community's contribution ledger, recorded once in a new
/// journal through the ledger's ordinary calls (now, for work dated the days
/// before): a validated repair (Communs minted, some given on), a lesson waiting
/// for its second approval, a meal just recorded. Skipped when the demo's members
/// are not those of `config/demo.toml`.
fn demo_ledger(loaded: &Loaded) -> Result<()> {
    use chrono::{Duration, Utc};
    use ledger::{Category, NewContribution, NewTransfer, Verdict};
    let journal = crate::node::open_ledger(loaded)?;
    let names: Vec<String> = journal.members()?.into_iter().map(|m| m.name).collect();
    let known = ["camille", "yasmine", "bernard"]
        .iter()
        .all(|n| names.iter().any(|m| m == n));
    if !known || !journal.contributions()?.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let contribution = |category, hours, days_ago: i64, description: &str| NewContribution {
        category,
        hours,
        date: (now - Duration::days(days_ago)).date_naive(),
        description: description.to_string(),
    };
    let repair = journal.record_contribution(
        "bernard",
        &contribution(Category::Repair, 3.0, 3, "Réparé les vélos de l'école"),
        now,
    )?;
    for who in ["camille", "yasmine"] {
        journal.attest(repair.seq, who, Verdict::Approve, "Vu à l'atelier", now)?;
    }
    journal.transfer(
        "bernard",
        &NewTransfer {
            to: "camille".into(),
            amount: ledger::Communs::from_whole(5),
            memo: "Pour les confitures".into(),
            intent: None,
        },
        now,
    )?;
    let lesson = journal.record_contribution(
        "yasmine",
        &contribution(Category::Teaching, 2.0, 1, "Atelier solaire avec les CM2"),
        now,
    )?;
    journal.attest(lesson.seq, "camille", Verdict::Approve, "", now)?;
    journal.record_contribution(
        "camille",
        &contribution(Category::Cooking, 1.5, 0, "Soupe pour la réunion du soir"),
        now,
    )?;
    Ok(())
}

/// Gives every member of the demo's configuration a password generated for this run,
/// so that a newcomer can sign in and try the assembly panel at once. A real site's
/// accounts come from `communalia user add`, never from here.
fn demo_accounts(loaded: &Loaded) -> Result<Vec<(String, String, String)>> {
    let journal = crate::node::open_ledger(loaded)?;
    let mut accounts = Vec::new();
    for m in journal.members()? {
        let password = ledger::generate_password();
        journal
            .set_password(&m.name, &password, chrono::Utc::now())
            .with_context(|| format!("cannot set the demo password of `{}`", m.name))?;
        let roles: Vec<&str> = m.roles.iter().map(|r| r.as_str()).collect();
        accounts.push((m.name, roles.join(", "), password));
    }
    Ok(accounts)
}
