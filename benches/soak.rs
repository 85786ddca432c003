//! Soak: the node's memory and CPU over time, on the demo and on a site of 100
//! Modbus meters polled once a second. The release binary runs as a user would run
//! it (`communalia demo`, `communalia run --config`); this bench samples its resident
//! memory (`VmRSS`, `/proc/PID/status`) and its CPU time (`/proc/PID/stat`) every
//! interval, prints one line per sample, and fails when the memory keeps growing.
//!
//!     cargo bench --bench soak -- [--minutes 60] [--every 60] [--site demo|modbus100|idle|all] [--speed 60]
//!         [--binary PATH] [--env NAME=VALUE]...
//!
//! `--binary` runs another build of the node (e.g. `target/dist/communalia`, the
//! installable profile) instead of the bench profile's; `--env` sets a variable in
//! the node's environment (e.g. `MALLOC_ARENA_MAX=2`), to compare allocator settings.
//!
//! Sites:
//! - `demo`: `communalia demo --speed 60` (the simulated community, its history and
//!   ledger, the wall's feed computed every evaluation);
//! - `idle`: `communalia demo --speed 1` with nobody watching, for the idle CPU;
//! - `modbus100`: `communalia run` on a configuration of 100 SDM630 meters, each its
//!   own Modbus TCP server (the simulator of `sensors::sim`, in this process, its
//!   values moving every second), polled at 1 s, with the embedded broker.
//!
//! "Growth" is judged on the second half of the run against the first: the run fails
//! when the largest RSS of the second half is more than 10 % (and 8 MB) above the
//! largest of the first half, the first sample (start-up) excepted. Goals (issue 13):
//! demo ≤ 120 MB after an hour at `--speed 60`, 100 meters ≤ 150 MB, idle CPU < 2 % of
//! one core; they are printed beside the figures, and a run over its goal fails too.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sensors::sim::sdm630::{MeterState, write_meter};
use sensors::sim::{RegisterImage, SharedImage, serve_modbus_tcp};

const METERS: usize = 100;

struct Args {
    minutes: f64,
    every: Duration,
    sites: Vec<String>,
    speed: f64,
    binary: Option<PathBuf>,
    env: Vec<(String, String)>,
}

fn args() -> Args {
    let mut a = Args {
        minutes: 60.0,
        every: Duration::from_secs(60),
        sites: vec!["demo".into(), "modbus100".into(), "idle".into()],
        speed: 60.0,
        binary: None,
        env: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_default();
        match arg.as_str() {
            "--minutes" => a.minutes = value().parse().unwrap_or(a.minutes),
            "--every" => {
                a.every = Duration::from_secs_f64(value().parse().unwrap_or(60.0));
            }
            "--speed" => a.speed = value().parse().unwrap_or(a.speed),
            "--binary" => a.binary = Some(PathBuf::from(value())),
            "--env" => {
                let v = value();
                match v.split_once('=') {
                    Some((k, v)) => a.env.push((k.to_string(), v.to_string())),
                    None => panic!("--env wants NAME=VALUE, got {v:?}"),
                }
            }
            "--site" => {
                let v = value();
                if v != "all" {
                    a.sites = vec![v];
                }
            }
            // `cargo bench` passes `--bench`.
            _ => {}
        }
    }
    a
}

/// One sample of a process: resident memory in bytes (all of it, its own
/// anonymous pages, and the pages of files such as its code), and CPU time.
struct Sample {
    rss: u64,
    anon: u64,
    file: u64,
    cpu: Duration,
}

/// A `/proc/PID/status` field in kB, as bytes.
fn status_bytes(status: &str, field: &str) -> Option<u64> {
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Resident memory and CPU time (user + system) of a process.
fn sample(pid: u32) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status_bytes(&status, "VmRSS:")?;
    let anon = status_bytes(&status, "RssAnon:")?;
    let file = status_bytes(&status, "RssFile:")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after ") ".
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux the node runs on.
    Some(Sample {
        rss,
        anon,
        file,
        cpu: Duration::from_millis(ticks * 10),
    })
}

struct Node {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to start the node: which binary, with which extra environment.
#[derive(Clone)]
struct Launch {
    binary: PathBuf,
    env: Vec<(String, String)>,
}

impl Launch {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.binary);
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_demo(launch: &Launch, speed: f64) -> Node {
    let dir = tempfile::tempdir().expect("temp dir");
    let child = launch
        .command()
        .args(["demo", "--speed", &speed.to_string(), "--bind"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--data")
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start communalia demo");
    Node { child, _dir: dir }
}

fn meters_config(dir: &Path, addrs: &[SocketAddr]) -> PathBuf {
    let mut toml = String::new();
    let _ = writeln!(
        toml,
        "[site]\nname = \"Soak: {METERS} meters\"\nlanguage = \"fr\"\ntimezone = \"Europe/Paris\"\n\
         latitude = 45.76\nlongitude = 4.84\n\n[web]\nbind = \"127.0.0.1:{}\"\n\n[storage]\n\
         dir = \"{}\"\n\n[mqtt]\nbroker = \"embedded\"\nembedded_bind = \"127.0.0.1:{}\"\n",
        free_port(),
        dir.join("data").display(),
        free_port()
    );
    for (i, addr) in addrs.iter().enumerate() {
        let role = if i == 0 { "grid" } else { "load" };
        let _ = writeln!(
            toml,
            "[[device]]\nid = \"meter-{i:03}\"\nrole = \"{role}\"\nprofile = \"sdm630\"\n\
             modbus = {{ host = \"{}\", port = {}, unit = 1 }}\npoll_interval = \"1s\"\n",
            addr.ip(),
            addr.port()
        );
    }
    for i in 1..METERS.min(21) {
        let _ = writeln!(
            toml,
            "[[service]]\nid = \"service-{i:03}\"\nmeter = \"meter-{i:03}\"\ntier = {}\n",
            1 + i % 3
        );
    }
    let path = dir.join("site.toml");
    std::fs::write(&path, toml).expect("write the configuration");
    path
}

/// 100 simulated meters on their own ports, their values moving every second.
fn start_meters(rt: &tokio::runtime::Runtime) -> Vec<SocketAddr> {
    rt.block_on(async {
        let mut addrs = Vec::new();
        let mut images: Vec<SharedImage> = Vec::new();
        for _ in 0..METERS {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            addrs.push(listener.local_addr().expect("addr"));
            let image = RegisterImage::new().shared();
            images.push(image.clone());
            tokio::spawn(serve_modbus_tcp(listener, image, 1));
        }
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut n: u64 = 0;
            loop {
                tick.tick().await;
                n += 1;
                for (i, image) in images.iter().enumerate() {
                    // A load that wanders, with measurement noise.
                    let x = (n as f64 / 60.0 + i as f64).sin() * 800.0
                        + ((n * 7919 + i as u64 * 104_729) % 97) as f64;
                    let state = MeterState {
                        power_w: 1200.0 + x,
                        import_wh: 1.0e6 + n as f64 * 0.4,
                        export_wh: 0.0,
                        voltage_v: 230.0 + (n % 5) as f64 * 0.1,
                        frequency_hz: 50.0,
                    };
                    if let Ok(mut img) = image.write() {
                        write_meter(&mut img, &state);
                    }
                }
            }
        });
        addrs
    })
}

fn start_run(launch: &Launch, addrs: &[SocketAddr]) -> Node {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = meters_config(dir.path(), addrs);
    let child = launch
        .command()
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start communalia run");
    Node { child, _dir: dir }
}

struct Series {
    name: String,
    goal_mb: Option<f64>,
    goal_cpu_pct: Option<f64>,
    node: Node,
    started: Instant,
    last: (Instant, Duration),
    rss: Vec<u64>,
    cpu_pct: Vec<f64>,
}

impl Series {
    fn new(name: &str, goal_mb: Option<f64>, goal_cpu_pct: Option<f64>, node: Node) -> Self {
        Series {
            name: name.into(),
            goal_mb,
            goal_cpu_pct,
            node,
            started: Instant::now(),
            last: (Instant::now(), Duration::ZERO),
            rss: Vec::new(),
            cpu_pct: Vec::new(),
        }
    }

    fn take(&mut self) -> bool {
        if let Ok(Some(status)) = self.node.child.try_wait() {
            println!("{:<10} the node exited: {status}", self.name);
            return false;
        }
        let Some(Sample {
            rss,
            anon,
            file,
            cpu,
        }) = sample(self.node.child.id())
        else {
            println!("{:<10} cannot read /proc for the node", self.name);
            return false;
        };
        let now = Instant::now();
        let pct = 100.0 * (cpu - self.last.1).as_secs_f64()
            / now.duration_since(self.last.0).as_secs_f64();
        self.last = (now, cpu);
        self.rss.push(rss);
        self.cpu_pct.push(pct);
        println!(
            "{:<10} {:>6.1} min   RSS {:>6.1} MB (own {:>6.1}, files {:>5.1})   CPU {:>5.2} % of a core since the last sample",
            self.name,
            self.started.elapsed().as_secs_f64() / 60.0,
            rss as f64 / 1e6,
            anon as f64 / 1e6,
            file as f64 / 1e6,
            pct
        );
        true
    }

    /// Prints the verdict; false when the run failed.
    fn verdict(&self) -> bool {
        let mb = |b: u64| b as f64 / 1e6;
        if self.rss.len() < 3 {
            println!("{:<10} too few samples to judge", self.name);
            return false;
        }
        let samples = &self.rss[1..];
        let half = samples.len() / 2;
        let first = samples[..half.max(1)].iter().copied().max().unwrap_or(0);
        let second = samples[half.max(1)..].iter().copied().max().unwrap_or(0);
        let grows = second as f64 > first as f64 * 1.10 && second > first + 8_000_000;
        let last = *self.rss.last().unwrap_or(&0);
        let peak = self.rss.iter().copied().max().unwrap_or(0);
        let steady_cpu = {
            let c = &self.cpu_pct[1..];
            c.iter().sum::<f64>() / c.len() as f64
        };
        let over_mb = self.goal_mb.is_some_and(|g| mb(last) > g);
        let over_cpu = self.goal_cpu_pct.is_some_and(|g| steady_cpu > g);
        println!(
            "{:<10} RSS last {:.1} MB, peak {:.1} MB (largest of the first half {:.1}, of the second {:.1}: {}); mean CPU after start-up {:.2} %{}{}",
            self.name,
            mb(last),
            mb(peak),
            mb(first),
            mb(second),
            if grows { "GROWS" } else { "steady" },
            steady_cpu,
            self.goal_mb
                .map(|g| format!(
                    "; goal ≤ {g} MB: {}",
                    if over_mb { "MISSED" } else { "met" }
                ))
                .unwrap_or_default(),
            self.goal_cpu_pct
                .map(|g| format!(
                    "; goal CPU < {g} %: {}",
                    if over_cpu { "MISSED" } else { "met" }
                ))
                .unwrap_or_default(),
        );
        !(grows || over_mb || over_cpu)
    }
}

fn main() {
    let a = args();
    let launch = Launch {
        binary: a
            .binary
            .clone()
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_communalia"))),
        env: a.env.clone(),
    };
    println!(
        "node: {}{}",
        launch.binary.display(),
        launch
            .env
            .iter()
            .map(|(k, v)| format!(" {k}={v}"))
            .collect::<String>()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut series = Vec::new();
    for site in &a.sites {
        match site.as_str() {
            "demo" => series.push(Series::new(
                "demo",
                Some(120.0),
                None,
                start_demo(&launch, a.speed),
            )),
            "idle" => series.push(Series::new(
                "idle",
                None,
                Some(2.0),
                start_demo(&launch, 1.0),
            )),
            "modbus100" => {
                let addrs = start_meters(&rt);
                series.push(Series::new(
                    "modbus100",
                    Some(150.0),
                    None,
                    start_run(&launch, &addrs),
                ));
            }
            other => {
                eprintln!("unknown site {other}: demo, modbus100, idle or all");
                std::process::exit(2);
            }
        }
    }
    println!(
        "soak: {} for {} min, a sample every {} s",
        a.sites.join(", "),
        a.minutes,
        a.every.as_secs_f64()
    );
    let end = Instant::now() + Duration::from_secs_f64(a.minutes * 60.0);
    let mut alive = true;
    while alive && Instant::now() < end {
        std::thread::sleep(a.every.min(end.saturating_duration_since(Instant::now())));
        for s in &mut series {
            alive &= s.take();
        }
    }
    let mut ok = alive;
    for s in &series {
        ok &= s.verdict();
    }
    drop(series);
    drop(rt);
    if !ok {
        std::process::exit(1);
    }
}
