//! The Modbus TCP worker: one connection per device, requests one at a time, a
//! timeout on every request, reconnection with exponential backoff, SunSpec
//! discovery. tokio-modbus's two error layers are kept apart: a transport error
//! (or timeout) drops the connection and reconnects; an exception code is counted,
//! its values are missing for this poll, and polling goes on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sensors::modbus::{ReadBlock, RegisterKind, plan_reads};
use sensors::model::{Metric, Sample};
use sensors::profile::ModbusProfile;
use sensors::sunspec::{self, ModelHeader};
use tokio::task::JoinHandle;
use tokio_modbus::client::{Context, Reader};
use tokio_modbus::{ExceptionCode, Slave};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::metrics::IngestMetrics;
use crate::reading::Reading;
use crate::sink::ReadingsTx;

/// What a device speaks.
#[derive(Debug, Clone, Copy)]
pub enum ModbusSource {
    /// Any SunSpec device: models found at connection time.
    SunSpec,
    /// A fixed register map from a profile data file.
    Profile(&'static ModbusProfile),
}

#[derive(Debug, Clone)]
pub struct ModbusDevice {
    pub id: Arc<str>,
    pub host: String,
    pub port: u16,
    pub unit: u8,
    pub source: ModbusSource,
    pub poll_interval: Duration,
    pub timeout: Duration,
    pub power_sign: f64,
}

/// Doubling delays between reconnection attempts, capped.
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

/// Why a poll or a discovery stopped.
#[derive(Debug)]
enum Failure {
    /// The connection is unusable: reconnect.
    Transport(String),
    /// The device answered with an exception.
    Exception { code: u8, what: String },
}

/// What to read each poll and how to turn it into samples.
enum PollPlan {
    SunSpec {
        models: Vec<ModelHeader>,
        blocks: Vec<ReadBlock>,
    },
    Profile {
        profile: &'static ModbusProfile,
        blocks: Vec<ReadBlock>,
    },
}

impl PollPlan {
    fn blocks(&self) -> &[ReadBlock] {
        match self {
            PollPlan::SunSpec { blocks, .. } | PollPlan::Profile { blocks, .. } => blocks,
        }
    }

    fn decode(&self, device: &str, read: &[(ReadBlock, Vec<u16>)]) -> Vec<Sample> {
        match self {
            PollPlan::Profile { profile, .. } => profile.decode(read),
            PollPlan::SunSpec { models, .. } => {
                let mut out = Vec::new();
                for m in models {
                    let Some(body) = sensors::modbus::words(
                        read,
                        RegisterKind::Holding,
                        m.body_address(),
                        m.length,
                    ) else {
                        continue; // that block failed this poll: its values are missing
                    };
                    match sunspec::decode_model(m.id, body) {
                        Ok(samples) => out.extend(samples),
                        Err(e) => {
                            tracing::warn!(device, model = m.id, error = %e, "SunSpec model not decoded")
                        }
                    }
                }
                out
            }
        }
    }
}

pub fn spawn_modbus(
    dev: ModbusDevice,
    tx: ReadingsTx,
    metrics: Arc<IngestMetrics>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    metrics.register_device(&dev.id);
    let span = tracing::info_span!("modbus", device = %dev.id, host = %dev.host, port = dev.port, unit = dev.unit);
    tokio::spawn(
        async move {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        while !cancel.is_cancelled() {
            if let Err(why) = run_connection(&dev, &tx, &metrics, &cancel, &mut backoff).await {
                metrics.record_failure(&dev.id, why.clone(), None);
                let delay = backoff.next_delay();
                tracing::warn!(error = %why, retry_in_ms = delay.as_millis() as u64, "device unreachable");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
        }
        .instrument(span),
    )
}

/// One connection's life: connect, discover, poll until the transport fails.
async fn run_connection(
    dev: &ModbusDevice,
    tx: &ReadingsTx,
    metrics: &IngestMetrics,
    cancel: &CancellationToken,
    backoff: &mut Backoff,
) -> Result<(), String> {
    let mut ctx = connect(dev).await?;
    let plan = match discover(dev, &mut ctx, metrics).await {
        Ok(p) => p,
        Err(Failure::Transport(why)) => return Err(why),
        Err(Failure::Exception { what, .. }) => return Err(what),
    };
    let mut tick = tokio::time::interval(dev.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let started = Instant::now();
        let mut read = Vec::with_capacity(plan.blocks().len());
        let mut exception = None;
        let mut transactions = 0u64;
        for block in plan.blocks() {
            transactions += 1;
            match read_block(dev, &mut ctx, block).await {
                Ok(words) => read.push((*block, words)),
                Err(Failure::Exception { code, what }) => exception = Some((code, what)),
                Err(Failure::Transport(why)) => {
                    metrics.add_modbus_transactions(&dev.id, transactions);
                    return Err(why);
                }
            }
        }
        metrics.add_modbus_transactions(&dev.id, transactions);
        let latency = started.elapsed();
        let now = chrono::Utc::now();
        let samples = plan.decode(&dev.id, &read);
        match exception {
            Some((code, what)) => {
                tracing::warn!(exception = code, "{what}");
                metrics.record_failure(&dev.id, what, Some(code));
            }
            None => {
                metrics.record_success(&dev.id, now, Some(latency));
                backoff.reset();
            }
        }
        let readings = to_readings(&dev.id, dev.power_sign, now.timestamp_millis(), samples);
        if !readings.is_empty() && tx.send(readings.into()).await.is_err() {
            return Ok(()); // the sink is gone: shutting down
        }
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
            value: if s.metric == Metric::PowerW {
                s.value * power_sign
            } else {
                s.value
            },
        })
        .collect()
}

async fn connect(dev: &ModbusDevice) -> Result<Context, String> {
    let target = format!("{}:{}", dev.host, dev.port);
    let addr = tokio::time::timeout(dev.timeout, tokio::net::lookup_host(&target))
        .await
        .map_err(|_| format!("resolving {target} timed out"))?
        .map_err(|e| format!("cannot resolve {target}: {e}"))?
        .next()
        .ok_or_else(|| format!("{target} resolves to no address"))?;
    tokio::time::timeout(
        dev.timeout,
        tokio_modbus::client::tcp::connect_slave(addr, Slave(dev.unit)),
    )
    .await
    .map_err(|_| {
        format!(
            "connecting to {target} timed out after {} ms",
            dev.timeout.as_millis()
        )
    })?
    .map_err(|e| format!("cannot connect to {target}: {e}"))
}

async fn read_block(
    dev: &ModbusDevice,
    ctx: &mut Context,
    b: &ReadBlock,
) -> Result<Vec<u16>, Failure> {
    read_words(dev, ctx, b.kind, b.start, b.count).await
}

async fn read_words(
    dev: &ModbusDevice,
    ctx: &mut Context,
    kind: RegisterKind,
    start: u16,
    count: u16,
) -> Result<Vec<u16>, Failure> {
    let what = |k: RegisterKind| match k {
        RegisterKind::Holding => "holding",
        RegisterKind::Input => "input",
    };
    let fut = async {
        match kind {
            RegisterKind::Holding => ctx.read_holding_registers(start, count).await,
            RegisterKind::Input => ctx.read_input_registers(start, count).await,
        }
    };
    match tokio::time::timeout(dev.timeout, fut).await {
        Err(_) => Err(Failure::Transport(format!(
            "no answer within {} ms reading {count} {} registers at {start}",
            dev.timeout.as_millis(),
            what(kind)
        ))),
        Ok(Err(e)) => Err(Failure::Transport(format!(
            "transport error reading {count} {} registers at {start}: {e}",
            what(kind)
        ))),
        Ok(Ok(Err(code))) => Err(exception(code, kind, start, count)),
        Ok(Ok(Ok(words))) if words.len() != count as usize => Err(Failure::Transport(format!(
            "asked {count} registers at {start}, got {}",
            words.len()
        ))),
        Ok(Ok(Ok(words))) => Ok(words),
    }
}

fn exception(code: ExceptionCode, kind: RegisterKind, start: u16, count: u16) -> Failure {
    let k = match kind {
        RegisterKind::Holding => "holding",
        RegisterKind::Input => "input",
    };
    Failure::Exception {
        code: u8::from(code),
        what: format!("device refused reading {count} {k} registers at {start}: {code}"),
    }
}

async fn discover(
    dev: &ModbusDevice,
    ctx: &mut Context,
    metrics: &IngestMetrics,
) -> Result<PollPlan, Failure> {
    match dev.source {
        ModbusSource::Profile(profile) => Ok(PollPlan::Profile {
            profile,
            blocks: profile.read_plan(),
        }),
        ModbusSource::SunSpec => {
            let mut transactions = 0;
            let result = discover_sunspec(dev, ctx, &mut transactions).await;
            metrics.add_modbus_transactions(&dev.id, transactions);
            let models = result?;
            let polled: Vec<ModelHeader> = models
                .iter()
                .filter(|m| m.id != 1 && sunspec::supported(m.id))
                .copied()
                .collect();
            if polled.is_empty() {
                let ids: Vec<String> = models.iter().map(|m| m.id.to_string()).collect();
                return Err(Failure::Transport(format!(
                    "SunSpec device has no model this node decodes (found: {})",
                    ids.join(", ")
                )));
            }
            let blocks = plan_reads(
                polled
                    .iter()
                    .map(|m| (RegisterKind::Holding, m.body_address(), m.length)),
                0,
            );
            Ok(PollPlan::SunSpec {
                models: polled,
                blocks,
            })
        }
    }
}

/// Finds the `SunS` marker at 40000, 0 or 50000 and walks the model headers to
/// the end marker. Returns every model found, in address order.
pub async fn discover_sunspec_models(
    dev: &ModbusDevice,
    ctx: &mut Context,
) -> Result<Vec<ModelHeader>, String> {
    let mut n = 0;
    discover_sunspec(dev, ctx, &mut n)
        .await
        .map_err(|f| match f {
            Failure::Transport(w) | Failure::Exception { what: w, .. } => w,
        })
}

async fn discover_sunspec(
    dev: &ModbusDevice,
    ctx: &mut Context,
    transactions: &mut u64,
) -> Result<Vec<ModelHeader>, Failure> {
    let mut base = None;
    for candidate in sunspec::BASES {
        *transactions += 1;
        match read_words(dev, ctx, RegisterKind::Holding, candidate, 2).await {
            Ok(words) if sunspec::is_marker(&words) => {
                base = Some(candidate);
                break;
            }
            Ok(_) | Err(Failure::Exception { .. }) => continue,
            Err(t @ Failure::Transport(_)) => return Err(t),
        }
    }
    let Some(base) = base else {
        return Err(Failure::Transport(format!(
            "no SunSpec marker at {:?} (is this a SunSpec device, and is unit {} right?)",
            sunspec::BASES,
            dev.unit
        )));
    };
    let mut models = Vec::new();
    let mut addr = u32::from(base) + 2;
    // A chain longer than this is corrupt; stop rather than loop.
    for _ in 0..128 {
        let Ok(a) = u16::try_from(addr) else { break };
        if a > u16::MAX - 1 {
            break;
        }
        *transactions += 1;
        let words = read_words(dev, ctx, RegisterKind::Holding, a, 2).await?;
        let (id, length) = (words[0], words[1]);
        if id == sunspec::END_ID {
            break;
        }
        let header = ModelHeader {
            id,
            length,
            address: a,
        };
        if id == 1 {
            *transactions += 1;
            if let Ok(body) = read_words(
                dev,
                ctx,
                RegisterKind::Holding,
                header.body_address(),
                length.min(125),
            )
            .await
            {
                let info = sunspec::decode_common(&body);
                tracing::info!(manufacturer = %info.manufacturer, model = %info.model, serial = %info.serial, "SunSpec device");
            }
        }
        models.push(header);
        addr = u32::from(a) + 2 + u32::from(length);
    }
    tracing::info!(base, models = ?models.iter().map(|m| m.id).collect::<Vec<_>>(), "SunSpec models found");
    Ok(models)
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
}
