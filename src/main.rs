//! `communalia`: the command line. It parses arguments, loads the configuration
//! and starts the parts; everything else lives in the crates.

mod accounts_cli;
mod backup;
mod config;
mod demo;
mod demo_history;
mod encrypt;
mod federation_cli;
mod household_cli;
mod keys;
mod ledger_cli;
mod node;
mod repair;
mod shed;
mod surplus;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveTime, Utc};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "communalia",
    version,
    about = "A community's solar power, shared by the priorities its assembly votes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a whole simulated community on this machine (web on 127.0.0.1:8080).
    Demo {
        /// Web address (default from the demo configuration: 127.0.0.1:8080).
        #[arg(long)]
        bind: Option<SocketAddr>,
        /// Run simulated time this many times faster than real time.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Simulated local time of day to start at, e.g. 11:30 (so a demo at night shows a day).
        #[arg(long, value_parser = parse_hhmm)]
        start: Option<NaiveTime>,
        /// Simulated day to start on, YYYY-MM-DD (a season: 2026-06-21 for a
        /// summer's day in a December demo).
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
        /// Keep the demo's data (journal) in this directory instead of a temporary one.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Another demo configuration instead of the built-in config/demo.toml.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Days of simulated history written before the start, so that the week,
        /// month and year views and the assembly's replay have data at once (0: none;
        /// a `--data` directory that already has history keeps its own).
        #[arg(long, default_value_t = 30)]
        history_days: u32,
    },
    /// Run a real site.
    Run {
        #[arg(long, default_value = "communalia.toml")]
        config: PathBuf,
        /// Web address, overriding `[web] bind`.
        #[arg(long)]
        bind: Option<SocketAddr>,
    },
    /// Check a configuration file and say what is wrong, with its line.
    CheckConfig { file: PathBuf },
    /// Find what answers at a Modbus address (SunSpec models, or a profile's
    /// values) and print the `[[device]]` block that reads it.
    Probe {
        /// `modbus-tcp://HOST[:PORT][/UNIT]`, or
        /// `serial:///dev/ttyUSB0?baud=9600&parity=none&stop_bits=1&unit=1`
        /// (also written `modbus-rtu://`).
        target: String,
        /// A Modbus profile to read (e.g. sdm630, sdm120, em24) instead of looking
        /// for SunSpec models.
        #[arg(long)]
        profile: Option<String>,
        /// How long to wait for each answer, e.g. 2s or 500ms.
        #[arg(long, default_value = "2s", value_parser = sensors::config::humantime_secs::parse)]
        timeout: Duration,
    },
    /// Households' data (DESIGN.md §10).
    Household {
        #[command(subcommand)]
        command: HouseholdCommand,
    },
    /// The community journal.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Assemblies drawn by lot (DESIGN.md §13).
    Sortition {
        #[command(subcommand)]
        command: SortitionCommand,
    },
    /// Accounts of members who sign in to the node's pages.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// API tokens, for scripts acting as a member.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The MQTT broker of a site whose devices share a network.
    Mqtt {
        #[command(subcommand)]
        command: MqttCommand,
    },
    /// The region: every node's summary on one page (DESIGN.md §12). A reader:
    /// it holds no authority over any node.
    Region {
        #[arg(long, default_value = "region.toml")]
        config: PathBuf,
        /// Web address, overriding `[region] bind`.
        #[arg(long)]
        bind: Option<SocketAddr>,
    },
    /// This node on its federation (DESIGN.md §12).
    Federation {
        #[command(subcommand)]
        command: FederationCommand,
    },
    /// Encrypt a clear-text data directory in place (DESIGN.md §10), with the key
    /// file or passphrase its `[storage]` now names: journal, history and
    /// write-ahead log are rewritten encrypted, verified, and the clear copy removed.
    /// Stop the node first.
    Encrypt {
        #[arg(long, default_value = "communalia.toml")]
        config: PathBuf,
    },
    /// The data key's wrapping (DESIGN.md §10).
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Write one encrypted archive (age) of the configuration, the journal, the
    /// history and the keyring, while the node runs (DESIGN.md §10). The key file
    /// or passphrase is not in it: restoring takes the age identity and that key.
    Backup {
        #[arg(long, default_value = "communalia.toml")]
        config: PathBuf,
        /// The archive to write (replaced only once the new one is complete).
        #[arg(long)]
        to: PathBuf,
        /// An age recipient (`age1…`) to encrypt to, besides `[backup] recipients`;
        /// repeat for several.
        #[arg(long = "recipient")]
        recipients: Vec<String>,
    },
    /// Rebuild a node from a `communalia backup` archive into an absent or empty
    /// data directory, and verify it (journal, history, write-ahead log) before
    /// saying so; on any failure nothing is left. Without the configuration file,
    /// the archive's own is written there first.
    Restore {
        #[arg(long, default_value = "communalia.toml")]
        config: PathBuf,
        /// The archive.
        #[arg(long)]
        from: PathBuf,
        /// An age identity file (`age-keygen`'s) for one of the archive's recipients.
        #[arg(long)]
        identity: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// Wrap the data key under a new key file or passphrase; the old one no longer
    /// opens the data. The data itself is not rewritten.
    Rotate {
        #[arg(long, default_value = "communalia.toml")]
        config: PathBuf,
        /// The new key file (made, mode 0600, when it does not exist).
        #[arg(long, conflicts_with = "to_passphrase")]
        to_key_file: Option<PathBuf>,
        /// The new passphrase's source: `credential:NAME`, `env:VAR` or `ask`.
        #[arg(long)]
        to_passphrase: Option<String>,
    },
    /// Print the history's Parquet key (hexadecimal), for a program that reads the
    /// history files on its own (its KMS client gives this key for the master key
    /// `communalia-history`). Whoever has it reads every reading.
    HistoryKey {
        #[arg(long, default_value = "communalia.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum HouseholdCommand {
    /// Erase a household's readings from the history and the write-ahead log, at
    /// the request of one of its members; run it with the node stopped. The journal
    /// records the erasure (who, which meters, which period, how many rows), never
    /// the readings. `--pending` carries out the requests made from `/me` (which
    /// the node also does at each start).
    Erase {
        #[arg(long, default_value = "communalia.toml")]
        config: PathBuf,
        /// The household's id (`[[household]] id`).
        #[arg(required_unless_present = "pending")]
        household: Option<String>,
        /// The member of the household who asks for it.
        #[arg(long, required_unless_present = "pending")]
        member: Option<String>,
        /// Carry out the erasures members asked for from `/me`, instead.
        #[arg(long, conflicts_with_all = ["household", "member", "from", "to"])]
        pending: bool,
        /// From this instant (RFC 3339; default: the beginning).
        #[arg(long)]
        from: Option<DateTime<Utc>>,
        /// Up to this instant, excluded (RFC 3339; default: now).
        #[arg(long)]
        to: Option<DateTime<Utc>>,
    },
}

#[derive(Subcommand, Debug)]
enum FederationCommand {
    /// Print the node's id and public key (made at first start, or now if there is
    /// none yet), for the region's and the witnesses' configurations.
    Show {
        #[arg(long, default_value = "communalia.toml")]
        config: PathBuf,
    },
    /// Sign a checkpoint of the journal and ask the witnesses of `[federation]
    /// witnesses` to cosign it; keeps the cosigned checkpoint in the data directory.
    Checkpoint {
        #[arg(long, default_value = "communalia.toml")]
        config: PathBuf,
    },
    /// Witness the neighbours' journals named in `[federation] witness`
    /// (C2SP tlog-witness: POST /add-checkpoint), until Ctrl-C or SIGTERM.
    Witness {
        #[arg(long, default_value = "communalia.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum MqttCommand {
    /// Write Mosquitto's access rules from the configuration: each device's account
    /// may publish only its own topics, only the node's publishes commands, and a
    /// relay's reads only its command topic. Says how to set Mosquitto up.
    Acl {
        #[arg(long, default_value = "communalia.toml")]
        config: PathBuf,
        /// Where to write the rules (Mosquitto's `acl_file`).
        #[arg(long, default_value = "communalia.acl")]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Give a member a password, recording their joining first if they are new.
    /// The password is asked on the terminal, or read as one line from standard input.
    Add {
        name: String,
        /// resident, assembly, installer or admin; repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<ledger::Role>,
        /// Generate a password and print it once instead of asking for one.
        #[arg(long)]
        generate: bool,
        #[arg(long, default_value = "communalia.toml")]
        config: PathBuf,
    },
    /// Change the password of a member who has one. Every session and API token
    /// of theirs ends: whoever held the old password, or a token, is out.
    Password {
        name: String,
        /// Generate a password and print it once instead of asking for one.
        #[arg(long)]
        generate: bool,
        #[arg(long, default_value = "communalia.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Make an API token acting as a member, with that member's roles. It is
    /// printed once, on standard output, and stored hashed.
    Create {
        #[arg(long)]
        user: String,
        /// What the token is for, e.g. "backup script".
        #[arg(long, default_value = "")]
        label: String,
        /// When it stops acting: a number of days (90d) or a date (2027-01-01,
        /// at 00:00 UTC). Without it, it acts until revoked or until the member's
        /// password changes.
        #[arg(long)]
        expires: Option<accounts_cli::Expiry>,
        #[arg(long, default_value = "communalia.toml")]
        config: PathBuf,
    },
    /// List tokens (all members', or one's): id, member, label, when made, when
    /// they expire, when last used, revoked or not. Never the token itself.
    List {
        #[arg(long)]
        user: Option<String>,
        #[arg(long, default_value = "communalia.toml")]
        config: PathBuf,
    },
    /// Revoke a token by its id (from `token list`): it acts no more.
    Revoke {
        id: i64,
        #[arg(long, default_value = "communalia.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum SortitionCommand {
    /// Re-run a draw from its inputs in the journal and print every step: the pool
    /// and quotas, the seed, each random number and the member it picked, each
    /// replacement. Exits 2 when the journal records another panel.
    Explain {
        /// The draw's id: the `seq` of its `sortition_announced` entry.
        id: i64,
        #[arg(long, default_value = "communalia.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum LedgerCommand {
    /// Recompute the hash chain and replay every balance; exit non-zero naming the
    /// first bad entry (and account).
    Verify {
        #[arg(long, default_value = "communalia.toml")]
        config: PathBuf,
        /// Also check the latest witnessed checkpoint: the node's signature, each
        /// configured witness's cosignature, and that the journal still begins with
        /// the entries it covers.
        #[arg(long)]
        witnesses: bool,
    },
    /// Write the whole journal as JSON lines, one entry per line, oldest first,
    /// for another program to keep or verify on its own.
    Export {
        #[arg(long, default_value = "communalia.toml")]
        config: PathBuf,
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

fn parse_hhmm(s: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| format!("`{s}` is not a time like 11:30"))
}

/// Ctrl-C or SIGTERM.
pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("stopping");
}

fn main() -> ExitCode {
    // First, before any thread: glibc's malloc with 2 arenas and a fixed mmap
    // threshold, so that freed buffers go back to the system (issue 13; measured in
    // BENCHMARKS.md, "Memory and CPU over time: the soak").
    let heap = heaptune::tune();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // rumqttd logs every ordinary client disconnect as an error; its
                // real failures (a taken port) are caught before it starts.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    tracing::debug!(?heap, "malloc settings");
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Encrypt { config } => {
            encrypt::encrypt(&config::load_file(&config)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup {
            config,
            to,
            recipients,
        } => {
            backup::backup(&config::load_file(&config)?, &to, &recipients)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore {
            config,
            from,
            identity,
        } => {
            backup::restore(&config, &from, &identity)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Key {
            command:
                KeyCommand::Rotate {
                    config,
                    to_key_file,
                    to_passphrase,
                },
        } => {
            encrypt::rotate(&config::load_file(&config)?, to_key_file, to_passphrase)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Key {
            command: KeyCommand::HistoryKey { config },
        } => {
            encrypt::history_key(&config::load_file(&config)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { file } => {
            let l = config::load_file(&file)?;
            println!(
                "{}: ok ({} devices, {} services, site \"{}\")",
                file.display(),
                l.config.devices.len(),
                l.config.services.len(),
                l.config.site.name
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Probe {
            target,
            profile,
            timeout,
        } => {
            let target = ingest::probe::ProbeTarget::parse(&target)?;
            let options = ingest::probe::ProbeOptions {
                profile,
                timeout,
                ..ingest::probe::ProbeOptions::default()
            };
            let report = runtime()?.block_on(ingest::probe::probe_modbus(&target, &options))?;
            print!("{}", report.to_text());
            if !report.found_anything() {
                eprintln!(
                    "error: {target} answered, but refused every register the `{}` profile reads: is it that device, and is the unit id right?",
                    report.profile
                );
                return Ok(ExitCode::FAILURE);
            }
            let blocks = report.suggested_devices();
            println!(
                "\nTo read it, add {} to the configuration (check the role and id):\n\n{}",
                if blocks.len() > 1 {
                    "these (one device per role it serves: each reads its own models)"
                } else {
                    "this"
                },
                blocks.join("\n")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Ledger {
            command: LedgerCommand::Verify { config, witnesses },
        } => {
            let l = config::load_file(&config)?;
            let code = ledger_cli::verify(&l)?;
            if witnesses && code == ExitCode::SUCCESS {
                return federation_cli::verify_witnesses(&l);
            }
            Ok(code)
        }
        Command::Sortition {
            command: SortitionCommand::Explain { id, config },
        } => ledger_cli::explain_draw(&config::load_file(&config)?, id),
        Command::Ledger {
            command: LedgerCommand::Export { config, output },
        } => {
            ledger_cli::export(&config::load_file(&config)?, output.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::User {
            command:
                UserCommand::Add {
                    name,
                    roles,
                    generate,
                    config,
                },
        } => {
            let l = config::load_file(&config)?;
            // A journal the node has not started yet is seeded from the configuration
            // first, as the node would: the first admin is often made before the first run.
            let journal = node::open_ledger(&l)?;
            let password = if generate {
                ledger::generate_password()
            } else {
                read_password(&name)?
            };
            let member = match journal.create_user(
                &name,
                &roles,
                &password,
                ledger::COMMAND_LINE_AUTHOR,
                chrono::Utc::now(),
            ) {
                Err(ledger::Error::Refused(ledger::Refusal::CredentialExists(who))) => {
                    anyhow::bail!(
                        "`{who}` already has a password; change it with \
                         `communalia user password {who}` (which also signs them out \
                         everywhere and revokes their API tokens)"
                    )
                }
                other => other?,
            };
            let roles: Vec<&str> = member.roles.iter().map(|r| r.as_str()).collect();
            eprintln!(
                "{}: `{}` ({}) can now sign in",
                l.ledger_path().display(),
                member.name,
                roles.join(", ")
            );
            if generate {
                eprintln!("Their password, shown only this once:");
                println!("{password}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::User {
            command:
                UserCommand::Password {
                    name,
                    generate,
                    config,
                },
        } => {
            let l = config::load_file(&config)?;
            let (journal, _) = ledger_cli::open_existing(&l)?;
            let password = if generate {
                ledger::generate_password()
            } else {
                read_password(&name)?
            };
            accounts_cli::change_password(&journal, &name, &password)?;
            if generate {
                eprintln!("Their new password, shown only this once:");
                println!("{password}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    user,
                    label,
                    expires,
                    config,
                },
        } => {
            accounts_cli::create_token(&config::load_file(&config)?, &user, &label, expires)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Token {
            command: TokenCommand::List { user, config },
        } => {
            accounts_cli::list_tokens(&config::load_file(&config)?, user.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Token {
            command: TokenCommand::Revoke { id, config },
        } => accounts_cli::revoke_token(&config::load_file(&config)?, id),
        Command::Mqtt {
            command: MqttCommand::Acl { config, out },
        } => {
            let l = config::load_file(&config)?;
            let mut commands: Vec<ingest::broker::CommandTopic> = l
                .config
                .services
                .iter()
                .filter_map(|s| s.actuation.as_ref())
                .map(|a| ingest::broker::CommandTopic {
                    topic: a.topic.clone(),
                    reader: a.reader.clone(),
                })
                .collect();
            // Home Assistant reads what the node publishes for it with its own
            // account (it needs read access to `#` or to these filters).
            if l.config.homeassistant.discovery {
                let discovery = query::homeassistant::Discovery::new(
                    &l.config.homeassistant,
                    &l.config.site.name,
                    &l.config.services,
                );
                commands.extend(discovery.topics_written().into_iter().map(|topic| {
                    ingest::broker::CommandTopic {
                        topic,
                        reader: None,
                    }
                }));
            }
            let acl = ingest::broker::mosquitto_acl(
                &l.config.mqtt,
                &l.config.devices,
                &commands,
                &config.display().to_string(),
            )?;
            std::fs::write(&out, &acl)
                .with_context(|| format!("cannot write {}", out.display()))?;
            print!(
                "{}",
                ingest::broker::mosquitto_setup(&acl, &out.display().to_string())
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Household {
            command:
                HouseholdCommand::Erase {
                    config,
                    household,
                    member,
                    pending,
                    from,
                    to,
                },
        } => {
            let loaded = config::load_file(&config)?;
            match (household, member) {
                (Some(household), Some(member)) if !pending => {
                    household_cli::erase(&loaded, &household, &member, from, to)?;
                }
                _ => household_cli::erase_pending(&loaded)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Region { config, bind } => {
            let file = federation::config::RegionFile::load(&config)?;
            runtime()?.block_on(federation_cli::run_region(file, bind))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Federation {
            command: FederationCommand::Show { config },
        } => {
            federation_cli::show(&config::load_file(&config)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Federation {
            command: FederationCommand::Checkpoint { config },
        } => {
            let l = config::load_file(&config)?;
            runtime()?.block_on(federation_cli::checkpoint(&l))
        }
        Command::Federation {
            command: FederationCommand::Witness { config },
        } => {
            let l = config::load_file(&config)?;
            runtime()?.block_on(federation_cli::witness(&l))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            bind,
            speed,
            start,
            date,
            data,
            config,
            history_days,
        } => {
            runtime()?.block_on(demo::run(demo::DemoArgs {
                config,
                bind,
                speed,
                start,
                date,
                data,
                history_days,
            }))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { config, bind } => {
            let l = config::load_file(&config)?;
            runtime()?.block_on(async move {
                let bind = bind.unwrap_or(l.config.web.bind);
                let node = node::Node::start(&l, bind, true).await?;
                match &node.https {
                    None => println!(
                        "Communalia: {} on http://{}/",
                        l.config.site.name, node.web_addr
                    ),
                    Some((addr, shown)) => {
                        println!("Communalia: {} on https://{addr}/", l.config.site.name);
                        println!(
                            "  certificate: {}{}",
                            shown.cert_path.display(),
                            if shown.generated {
                                " (made by this node: check its fingerprint in the browser, then pin it)"
                            } else {
                                ""
                            }
                        );
                        println!("  SHA-256 fingerprint: {}", shown.fingerprint);
                        println!("  public key SHA-256 (base64): {}", shown.spki_sha256);
                        println!(
                            "  plain HTTP on {} redirects to HTTPS",
                            node.web_addr
                        );
                    }
                }
                wait_for_signal().await;
                node.shutdown().await
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The new password: asked twice on a terminal, else one line of standard input.
fn read_password(name: &str) -> Result<String> {
    use std::io::{BufRead, IsTerminal};
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("Password for {name}: "))
            .context("cannot read the password")?;
        let again =
            rpassword::prompt_password("The same again: ").context("cannot read the password")?;
        if first != again {
            anyhow::bail!("the two passwords differ; nothing was changed");
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        anyhow::bail!("no password on standard input (give one line, or use --generate)");
    }
    Ok(password.to_string())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
