//! The Modbus workers, TCP and RTU. Devices that share a connection (several unit
//! ids behind one gateway, a device that accepts one TCP connection only, an
//! RS-485 bus) share one worker: it owns the connection and sends one request at a
//! time, each device on its own cadence. Devices on other connections never wait
//! for it.
//!
//! tokio-modbus's two error layers are kept apart: a transport error or a timeout
//! drops the connection (a late answer would be taken for the next request's) and
//! reconnects, with exponential backoff when connecting fails; an exception code is
//! counted, the values it covered are missing for this poll, and polling goes on.
//! A failing device is retried with its own exponential backoff, so that a dead
//! unit does not take the bus from the live ones.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sensors::config::{Parity, SerialConfig};
use sensors::modbus::{ReadBlock, RegisterKind};
use sensors::model::{DecodedPoint, Metric, PowerSign, Role, Sample};
use sensors::profile::ModbusProfile;
use sensors::sunspec::{self, ModelChoice, ModelHeader, SunSpecMap, SunSpecPlan};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_modbus::client::{Context, Reader};
use tokio_modbus::slave::SlaveContext;
use tokio_modbus::{ExceptionCode, Slave};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::diagnosis::Diagnosis;
use crate::metrics::{DecodedValue, IngestMetrics, ModelInfo, RawBlock};
use crate::plausible::{Gate, Limits};
use crate::reading::Reading;
use crate::sink::ReadingsTx;

/// What a device speaks.
#[derive(Debug, Clone)]
pub enum ModbusSource {
    /// Any SunSpec device: models found at the first connection, those the role
    /// calls for read (or `model` alone, when the configuration names one).
    SunSpec { model: Option<u16> },
    /// A fixed register map from a profile data file, or the generic profile with
    /// the device's own registers.
    Profile(Arc<ModbusProfile>),
}

impl ModbusSource {
    pub fn profile_id(&self) -> &str {
        match self {
            ModbusSource::SunSpec { .. } => "sunspec",
            ModbusSource::Profile(p) => &p.id,
        }
    }
}

/// How a device is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Tcp { host: String, port: u16 },
    Serial(SerialConfig),
}

impl Link {
    /// Devices with equal keys share one connection.
    pub fn key(&self) -> String {
        match self {
            Link::Tcp { host, port } => format!("tcp://{}:{port}", host.to_ascii_lowercase()),
            Link::Serial(s) => format!("serial://{}", s.path),
        }
    }

    /// A TCP port of 0: not a device's address but a placeholder for a port
    /// assigned at start (the demo writes its simulators' free ports in).
    pub fn is_unassigned_port(&self) -> bool {
        matches!(self, Link::Tcp { port: 0, .. })
    }

    /// For logs and the installer pages, e.g. `modbus-rtu /dev/ttyUSB0 9600 8N1`.
    pub fn describe(&self) -> String {
        match self {
            Link::Tcp { host, port } => format!("modbus-tcp {host}:{port}"),
            Link::Serial(s) => format!(
                "modbus-rtu {} {} {}{}{}",
                s.path,
                s.baud,
                s.data_bits,
                match s.parity {
                    Parity::None => 'N',
                    Parity::Even => 'E',
                    Parity::Odd => 'O',
                },
                s.stop_bits
            ),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ModbusDevice {
    pub id: Arc<str>,
    pub link: Link,
    pub unit: u8,
    pub source: ModbusSource,
    pub poll_interval: Duration,
    /// On every request, and on connecting.
    pub timeout: Duration,
    pub role: Role,
    /// The device's `power_sign =`, which wins over the profile's or the model's.
    pub power_sign: Option<PowerSign>,
    /// What its readings must respect to be accepted.
    pub limits: Limits,
}

/// Which models a SunSpec device reads, in words: two devices at one unit must not
/// read the same ones.
pub fn sunspec_reads(model: Option<u16>, role: Role) -> String {
    match model {
        Some(id) => format!("model {id}"),
        None => format!("{:?}", sunspec::ModelFamily::for_role(role)),
    }
}

impl ModbusDevice {
    /// See [`sunspec_reads`]; `None` for a device with a fixed register map.
    pub fn sunspec_reads(&self) -> Option<String> {
        match self.source {
            ModbusSource::SunSpec { model } => Some(sunspec_reads(model, self.role)),
            ModbusSource::Profile(_) => None,
        }
    }

    /// The factor that turns this device's power into the site bus view, given
    /// the convention its profile or SunSpec model declares.
    pub fn bus_sign(&self, declared: Option<PowerSign>) -> f64 {
        let sign = self.power_sign.or(declared).unwrap_or(match &self.source {
            ModbusSource::Profile(p) => p.power_sign,
            ModbusSource::SunSpec { .. } => PowerSign::Generation,
        });
        self.role.bus_sign(sign)
    }

    pub fn describe(&self) -> String {
        format!("{} unit {}", self.link.describe(), self.unit)
    }
}

/// Doubling delays between attempts, capped.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    first: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            next: first,
            first,
            max,
        }
    }
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// Longest wait between two attempts at a failing device or connection.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why a request failed.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The connection is unusable: reconnect.
    Transport(String),
    /// The device answered with an exception.
    Exception { code: u8, what: String },
}

impl Failure {
    pub fn message(&self) -> &str {
        match self {
            Failure::Transport(w) | Failure::Exception { what: w, .. } => w,
        }
    }
}

/// A connection and the requests sent on it, counted.
pub struct Conn {
    ctx: Context,
    pub timeout: Duration,
    /// Requests sent since the counter was last taken.
    pub transactions: u32,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("transactions", &self.transactions)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// Opens `link` (TCP connect or serial port), within `timeout`.
    pub async fn open(link: &Link, unit: u8, timeout: Duration) -> Result<Conn, String> {
        let ctx = match link {
            Link::Tcp { host, port } => connect_tcp(host, *port, unit, timeout).await?,
            Link::Serial(s) => open_serial(s, unit)?,
        };
        Ok(Conn {
            ctx,
            timeout,
            transactions: 0,
        })
    }

    /// Addresses the next requests to `unit`.
    pub fn set_unit(&mut self, unit: u8) {
        self.ctx.set_slave(Slave(unit));
    }

    /// Reads `count` registers of `kind` from `start`: one transaction.
    pub async fn read(
        &mut self,
        kind: RegisterKind,
        start: u16,
        count: u16,
    ) -> Result<Vec<u16>, Failure> {
        self.transactions = self.transactions.saturating_add(1);
        let ctx = &mut self.ctx;
        let fut = async {
            match kind {
                RegisterKind::Holding => ctx.read_holding_registers(start, count).await,
                RegisterKind::Input => ctx.read_input_registers(start, count).await,
            }
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => Err(Failure::Transport(
                Diagnosis::NoAnswer {
                    timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
                    count,
                    kind,
                    start,
                }
                .to_string(),
            )),
            Ok(Err(e)) => Err(Failure::Transport(
                Diagnosis::Transport {
                    count,
                    kind,
                    start,
                    error: e.to_string(),
                }
                .to_string(),
            )),
            Ok(Ok(Err(code))) => Err(exception(code, kind, start, count)),
            Ok(Ok(Ok(words))) if words.len() != usize::from(count) => Err(Failure::Transport(
                Diagnosis::WrongLength {
                    count,
                    kind,
                    start,
                    got: words.len(),
                }
                .to_string(),
            )),
            Ok(Ok(Ok(words))) => Ok(words),
        }
    }

    pub async fn read_block(&mut self, b: &ReadBlock) -> Result<Vec<u16>, Failure> {
        self.read(b.kind, b.start, b.count).await
    }

    /// Reads `blocks` in order, one transaction each. An exception leaves only that
    /// block's values missing and is kept; a transport failure ends the pass, and
    /// its reason is returned beside what was read before it. The poller and the
    /// probe both read this way.
    pub async fn read_blocks(&mut self, blocks: &[ReadBlock]) -> (BlockReads, Option<String>) {
        let mut out = BlockReads {
            read: Vec::with_capacity(blocks.len()),
            raw: Vec::with_capacity(blocks.len()),
            exceptions: Vec::new(),
        };
        for block in blocks {
            let result = match self.read_block(block).await {
                Ok(words) => {
                    out.read.push((*block, words.clone()));
                    Ok(words)
                }
                Err(Failure::Exception { code, what }) => {
                    out.exceptions.push((code, what));
                    Err(code)
                }
                Err(Failure::Transport(why)) => return (out, Some(why)),
            };
            out.raw.push(RawBlock {
                kind: block.kind,
                start: block.start,
                count: block.count,
                result,
            });
        }
        (out, None)
    }
}

/// What one pass over a read plan gave.
#[derive(Debug, Default)]
pub struct BlockReads {
    /// The blocks answered, with their words, for the decoders.
    pub read: Vec<(ReadBlock, Vec<u16>)>,
    /// Every block asked, answered or refused, for the installer's raw view.
    pub raw: Vec<RawBlock>,
    /// Exception code and description of each refused block.
    pub exceptions: Vec<(u8, String)>,
}

async fn connect_tcp(
    host: &str,
    port: u16,
    unit: u8,
    timeout: Duration,
) -> Result<Context, String> {
    let target = format!("{host}:{port}");
    let addr = tokio::time::timeout(timeout, tokio::net::lookup_host(&target))
        .await
        .map_err(|_| {
            Diagnosis::ResolveTimeout {
                target: target.clone(),
            }
            .to_string()
        })?
        .map_err(|e| {
            Diagnosis::CannotResolve {
                target: target.clone(),
                error: e.to_string(),
            }
            .to_string()
        })?
        .next()
        .ok_or_else(|| {
            Diagnosis::NoAddress {
                target: target.clone(),
            }
            .to_string()
        })?;
    tokio::time::timeout(
        timeout,
        tokio_modbus::client::tcp::connect_slave(addr, Slave(unit)),
    )
    .await
    .map_err(|_| {
        Diagnosis::ConnectTimeout {
            target: target.clone(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        }
        .to_string()
    })?
    .map_err(|e| {
        Diagnosis::CannotConnect {
            target: target.clone(),
            error: e.to_string(),
        }
        .to_string()
    })
}

/// Opens a serial line: only a terminal device, decided before anything is opened
/// (see [`sensors::config::serial_port`]), which is then opened by the name checked.
fn open_serial(s: &SerialConfig, unit: u8) -> Result<Context, String> {
    use tokio_serial::SerialPortBuilderExt;
    let device = sensors::config::serial_port(&s.path).map_err(|e| e.to_string())?;
    let builder = tokio_serial::new(device.to_string_lossy(), s.baud)
        .parity(match s.parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Even => tokio_serial::Parity::Even,
            Parity::Odd => tokio_serial::Parity::Odd,
        })
        .stop_bits(if s.stop_bits == 2 {
            tokio_serial::StopBits::Two
        } else {
            tokio_serial::StopBits::One
        })
        .data_bits(if s.data_bits == 7 {
            tokio_serial::DataBits::Seven
        } else {
            tokio_serial::DataBits::Eight
        });
    let port = builder.open_native_async().map_err(|e| {
        Diagnosis::CannotOpenSerial {
            path: s.path.clone(),
            error: e.to_string(),
        }
        .to_string()
    })?;
    Ok(tokio_modbus::client::rtu::attach_slave(port, Slave(unit)))
}

/// The name the Modbus application protocol (v1.1b3, §7) gives an exception code.
pub fn exception_name(code: u8) -> Option<&'static str> {
    Some(match code {
        0x01 => "illegal function",
        0x02 => "illegal data address",
        0x03 => "illegal data value",
        0x04 => "server device failure",
        0x05 => "acknowledge",
        0x06 => "server device busy",
        0x08 => "memory parity error",
        0x0A => "gateway path unavailable",
        0x0B => "gateway target device failed to respond",
        _ => return None,
    })
}

fn exception(code: ExceptionCode, kind: RegisterKind, start: u16, count: u16) -> Failure {
    Failure::Exception {
        code: u8::from(code),
        what: Diagnosis::Refused {
            count,
            kind,
            start,
            exception: code.to_string(),
        }
        .to_string(),
    }
}

/// What to read each poll and how to turn it into values.
#[derive(Debug, Clone)]
pub enum PollPlan {
    SunSpec { map: SunSpecMap, plan: SunSpecPlan },
    Profile(Arc<ModbusProfile>),
}

impl PollPlan {
    pub fn blocks(&self) -> Vec<ReadBlock> {
        match self {
            PollPlan::SunSpec { plan, .. } => plan.blocks.clone(),
            PollPlan::Profile(p) => p.read_plan(),
        }
    }

    pub fn decode(&self, read: &[(ReadBlock, Vec<u16>)]) -> Vec<DecodedPoint> {
        match self {
            PollPlan::SunSpec { plan, .. } => plan.decode(read),
            PollPlan::Profile(p) => p.decode_points(read),
        }
    }

    /// The sign convention the plan declares (SunSpec: its first power model's).
    pub fn declared_sign(&self) -> Option<PowerSign> {
        match self {
            PollPlan::SunSpec { plan, .. } => plan.power_sign,
            PollPlan::Profile(p) => Some(p.power_sign),
        }
    }
}

/// Finds the `SunS` marker at 40000, 0 or 50000 and walks the model headers to
/// the end model (ID 0xFFFF). Returns the map and, when model 1 is there, what
/// it says of the device.
pub async fn discover_sunspec(
    conn: &mut Conn,
) -> Result<(SunSpecMap, Option<sunspec::CommonInfo>), Failure> {
    let mut base = None;
    let mut refused = Vec::new();
    for candidate in sunspec::BASES {
        match conn.read(RegisterKind::Holding, candidate, 2).await {
            Ok(words) if sunspec::is_marker(&words) => {
                base = Some(candidate);
                break;
            }
            Ok(words) => refused.push(format!("{candidate}: {words:04X?}")),
            Err(Failure::Exception { what, .. }) => refused.push(format!("{candidate}: {what}")),
            Err(t @ Failure::Transport(_)) => return Err(t),
        }
    }
    let Some(base) = base else {
        return Err(Failure::Exception {
            code: 0,
            what: format!(
                "no SunSpec marker at 40000, 0 or 50000 ({}); is this a SunSpec device, and is the unit id right?",
                refused.join("; ")
            ),
        });
    };
    let mut models = Vec::new();
    let mut common = None;
    let mut addr = u32::from(base) + 2;
    // A chain longer than this is corrupt; stop rather than loop.
    for _ in 0..256 {
        let Ok(a) = u16::try_from(addr) else {
            break;
        };
        if a == u16::MAX {
            break;
        }
        let words = conn.read(RegisterKind::Holding, a, 2).await?;
        let Some(header) = ModelHeader::parse(a, &words) else {
            break;
        };
        if header.is_end() {
            break;
        }
        if header.id == 1 && common.is_none() {
            let n = header.length.min(sensors::modbus::MAX_READ_REGISTERS);
            if let Ok(body) = conn
                .read(RegisterKind::Holding, header.body_address(), n)
                .await
            {
                common = Some(sunspec::decode_common(&body));
            }
        }
        models.push(header);
        addr = u32::from(a) + 2 + u32::from(header.length);
    }
    Ok((SunSpecMap { base, models }, common))
}

/// One device as its worker keeps it.
struct Polled {
    dev: ModbusDevice,
    plan: Option<PollPlan>,
    next_due: Instant,
    backoff: Backoff,
    gate: Gate,
}

/// What one poll did.
enum PollEnd {
    /// Values read (some may be missing through exceptions).
    Read,
    /// Nothing read, but the connection is fine (exceptions only, no marker).
    Refused(String),
    /// The connection is unusable.
    Transport(String),
}

/// Starts one worker per connection: devices with the same `Link::key()` share it.
pub fn spawn_modbus_links(
    devices: Vec<ModbusDevice>,
    tx: ReadingsTx,
    metrics: Arc<IngestMetrics>,
    cancel: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let mut links: Vec<(String, Vec<ModbusDevice>)> = Vec::new();
    for d in devices {
        let key = d.link.key();
        match links.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(d),
            None => links.push((key, vec![d])),
        }
    }
    links
        .into_iter()
        .map(|(_, devs)| spawn_link(devs, tx.clone(), metrics.clone(), cancel.clone()))
        .collect()
}

/// Starts the worker of one connection and the devices on it.
pub fn spawn_link(
    devices: Vec<ModbusDevice>,
    tx: ReadingsTx,
    metrics: Arc<IngestMetrics>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    let link = devices
        .first()
        .map(|d| d.link.describe())
        .unwrap_or_default();
    for d in &devices {
        metrics.register_device_as(&d.id, d.describe(), d.source.profile_id());
    }
    let span = tracing::info_span!("modbus", link = %link);
    tokio::spawn(run_link(devices, tx, metrics, cancel).instrument(span))
}

async fn run_link(
    devices: Vec<ModbusDevice>,
    tx: ReadingsTx,
    metrics: Arc<IngestMetrics>,
    cancel: CancellationToken,
) {
    let Some(link) = devices.first().map(|d| d.link.clone()) else {
        return;
    };
    let start = Instant::now();
    let mut polled: Vec<Polled> = devices
        .into_iter()
        .map(|dev| Polled {
            backoff: Backoff::new(dev.poll_interval, MAX_BACKOFF.max(dev.poll_interval)),
            next_due: start,
            plan: match &dev.source {
                ModbusSource::Profile(p) => Some(PollPlan::Profile(p.clone())),
                ModbusSource::SunSpec { .. } => None,
            },
            gate: Gate::new(dev.limits),
            dev,
        })
        .collect();
    for p in &polled {
        if let Some(plan) = &p.plan {
            metrics.set_planned_transactions(&p.dev.id, plan.blocks().len() as u32);
        }
    }
    let connect_timeout = polled
        .iter()
        .map(|p| p.dev.timeout)
        .max()
        .unwrap_or(Duration::from_secs(1));
    let mut conn_backoff = Backoff::new(Duration::from_millis(250), MAX_BACKOFF);
    let mut conn: Option<Conn> = None;
    let mut connect_after = start;
    loop {
        let Some(i) = (0..polled.len()).min_by_key(|&i| polled[i].next_due) else {
            return;
        };
        let due = polled[i].next_due.max(connect_after);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep_until(due) => {}
        }
        if conn.is_none() {
            match Conn::open(&link, polled[i].dev.unit, connect_timeout).await {
                Ok(c) => {
                    conn_backoff.reset();
                    conn = Some(c);
                }
                Err(why) => {
                    let delay = conn_backoff.next_delay();
                    tracing::warn!(error = %why, retry_in_ms = delay.as_millis() as u64, "cannot connect");
                    connect_after = Instant::now() + delay;
                    // Every device whose poll is due fails for this reason.
                    let now = Instant::now();
                    for p in polled.iter_mut().filter(|p| p.next_due <= now) {
                        metrics.record_poll(
                            &p.dev.id,
                            sensors::clock::now(),
                            0,
                            &[],
                            Err(why.clone()),
                        );
                        p.next_due = connect_after.max(now + p.backoff.next_delay());
                    }
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let p = &mut polled[i];
        let scheduled = p.next_due;
        let end = poll_once(p, c, &tx, &metrics).await;
        let now = Instant::now();
        match end {
            PollEnd::Read => {
                p.backoff.reset();
                // Keep the cadence; after a late poll, start again from now.
                let next = scheduled + p.dev.poll_interval;
                p.next_due = if next < now { now } else { next };
            }
            PollEnd::Refused(why) => {
                // A SunSpec map that refuses its own registers may have changed
                // (a firmware update): find it again next time.
                if matches!(p.dev.source, ModbusSource::SunSpec { .. }) {
                    p.plan = None;
                }
                let delay = p.backoff.next_delay();
                tracing::warn!(device = %p.dev.id, error = %why, retry_in_ms = delay.as_millis() as u64, "device refused");
                p.next_due = now + delay;
            }
            PollEnd::Transport(why) => {
                let delay = p.backoff.next_delay();
                tracing::warn!(device = %p.dev.id, error = %why, retry_in_ms = delay.as_millis() as u64, "device unreachable; reconnecting");
                p.next_due = now + delay;
                conn = None;
            }
        }
        if tx.is_closed() {
            return; // the sink is gone: shutting down
        }
    }
}

/// One poll of one device on an open connection: discovery when its plan is not
/// known yet, then the plan's reads; counts, health, diagnostics and readings.
async fn poll_once(
    p: &mut Polled,
    conn: &mut Conn,
    tx: &ReadingsTx,
    metrics: &IngestMetrics,
) -> PollEnd {
    let dev = &p.dev;
    conn.set_unit(dev.unit);
    conn.transactions = 0;
    let started = Instant::now();
    if p.plan.is_none() {
        match discover_sunspec(conn).await {
            Ok((map, common)) => {
                let plan = map.poll_plan_for(match dev.source {
                    ModbusSource::SunSpec { model: Some(id) } => ModelChoice::Model(id),
                    _ => ModelChoice::Role(dev.role),
                });
                let read = plan.as_ref().map(|p| p.models.as_slice()).unwrap_or(&[]);
                let infos = model_infos(&map, Some((read, dev.role)));
                metrics.with_diagnostics(&dev.id, |d| {
                    d.sunspec_base = Some(map.base);
                    d.sunspec_models = infos;
                    d.identity = common
                        .as_ref()
                        .map(|c| format!("{} {} (serial {})", c.manufacturer, c.model, c.serial));
                });
                tracing::info!(device = %dev.id, base = map.base, models = ?map.models.iter().map(|m| m.id).collect::<Vec<_>>(), "SunSpec models found");
                match plan {
                    Ok(plan) => {
                        metrics.set_planned_transactions(&dev.id, plan.blocks.len() as u32);
                        p.plan = Some(PollPlan::SunSpec { map, plan });
                    }
                    Err(e) => {
                        let why = e.to_string();
                        metrics.record_poll(
                            &dev.id,
                            sensors::clock::now(),
                            conn.transactions,
                            &[],
                            Err(why.clone()),
                        );
                        return PollEnd::Refused(why);
                    }
                }
            }
            Err(f) => {
                let why = f.message().to_string();
                metrics.record_poll(
                    &dev.id,
                    sensors::clock::now(),
                    conn.transactions,
                    &[],
                    Err(why.clone()),
                );
                return match f {
                    Failure::Transport(_) => PollEnd::Transport(why),
                    Failure::Exception { .. } => PollEnd::Refused(why),
                };
            }
        }
    }
    let Some(plan) = p.plan.as_ref() else {
        return PollEnd::Refused("no read plan".into());
    };
    let (
        BlockReads {
            read,
            raw,
            exceptions,
        },
        cut,
    ) = conn.read_blocks(&plan.blocks()).await;
    for (code, what) in &exceptions {
        tracing::warn!(device = %dev.id, exception = code, "{what}");
    }
    if let Some(why) = cut {
        metrics.record_poll(
            &dev.id,
            sensors::clock::now(),
            conn.transactions,
            &exceptions,
            Err(why.clone()),
        );
        return PollEnd::Transport(why);
    }
    let latency = started.elapsed();
    let now = sensors::clock::now();
    let points = plan.decode(&read);
    let sign = dev.bus_sign(plan.declared_sign());
    let outcome = if read.is_empty() {
        Err(format!(
            "every request was refused ({} exceptions)",
            exceptions.len()
        ))
    } else {
        Ok(latency)
    };
    metrics.record_poll(
        &dev.id,
        now,
        conn.transactions,
        &exceptions,
        outcome.clone(),
    );
    let readings = to_readings(
        &dev.id,
        sign,
        now.timestamp_millis(),
        points.iter().map(|p| p.sample).collect(),
    );
    // The device answered; whether what it said is possible is another matter.
    if let Err(rejected) = p.gate.check(&readings) {
        tracing::warn!(device = %dev.id, reason = rejected.reason.as_str(), "readings rejected: {}", rejected.detail);
        metrics.reject(&dev.id, &rejected, now);
        metrics.with_diagnostics(&dev.id, |d| {
            d.raw_blocks = raw;
            d.raw_at = Some(now);
        });
        return PollEnd::Read;
    }
    record_values(metrics, &dev.id, now, sign, &points, Some(raw));
    if !readings.is_empty() && tx.send(readings.into()).await.is_err() {
        return PollEnd::Read;
    }
    match outcome {
        Ok(_) => PollEnd::Read,
        Err(why) => PollEnd::Refused(why),
    }
}

/// The map's models for the installer; with `read`, the models the device's poll
/// reads and its role, so that a model left to another role says so.
pub(crate) fn model_infos(
    map: &SunSpecMap,
    read: Option<(&[ModelHeader], Role)>,
) -> Vec<ModelInfo> {
    map.models
        .iter()
        .map(|m| ModelInfo {
            id: m.id,
            name: sunspec::model_name(m.id),
            address: m.address,
            length: m.length,
            decoded: if m.id == 1 {
                Err("read once, at discovery".into())
            } else {
                sunspec::metric_registers(m)
                    .map_err(|e| e.to_string())
                    .and_then(|_| match read {
                        Some((models, role)) if !models.iter().any(|r| r.id == m.id) => Err(format!(
                            "not read for a {} device (its role reads other models; `sunspec_model` picks one)",
                            role.as_str()
                        )),
                        _ => Ok(()),
                    })
            },
        })
        .collect()
}

/// Keeps the decoded values (and the raw blocks, for Modbus) in the diagnostics.
pub(crate) fn record_values(
    metrics: &IngestMetrics,
    device: &str,
    at: DateTime<Utc>,
    sign: f64,
    points: &[DecodedPoint],
    raw: Option<Vec<RawBlock>>,
) {
    metrics.with_diagnostics(device, |d| {
        if let Some(raw) = raw {
            d.raw_blocks = raw;
            d.raw_at = Some(at);
        }
        for p in points {
            d.values.insert(
                p.sample.metric,
                DecodedValue {
                    metric: p.sample.metric,
                    value: bus_value(p.sample, sign),
                    device_value: p.sample.value,
                    origin: p.origin.clone(),
                    at,
                },
            );
        }
    });
}

fn bus_value(s: Sample, sign: f64) -> f64 {
    if s.metric == Metric::PowerW {
        s.value * sign
    } else {
        s.value
    }
}

/// Samples in the device's convention -> readings in the site bus convention.
pub fn to_readings(
    device: &Arc<str>,
    power_sign: f64,
    ts_ms: i64,
    samples: Vec<Sample>,
) -> Vec<Reading> {
    samples
        .into_iter()
        .map(|s| Reading {
            ts_ms,
            device: device.clone(),
            metric: s.metric,
            value: bus_value(s, power_sign),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(3));
        let got: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, vec![500, 1000, 2000, 3000, 3000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(500));
    }

    #[test]
    fn links_share_by_host_port_or_serial_path() {
        let tcp = |h: &str, p| Link::Tcp {
            host: h.into(),
            port: p,
        };
        assert_eq!(tcp("GW.local", 502).key(), tcp("gw.local", 502).key());
        assert_ne!(tcp("gw.local", 502).key(), tcp("gw.local", 503).key());
        let serial: SerialConfig =
            toml::from_str("path = \"/dev/ttyUSB0\"\nparity = \"even\"").expect("serial");
        assert_eq!(
            Link::Serial(serial.clone()).describe(),
            "modbus-rtu /dev/ttyUSB0 9600 8E1"
        );
        assert_eq!(Link::Serial(serial).key(), "serial:///dev/ttyUSB0");
    }
}
