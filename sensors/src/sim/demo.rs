//! The simulated site behind `communalia demo`: a SunSpec inverter and an SDM630
//! grid meter served over real Modbus TCP, Shelly sub-meters and a battery
//! publishing over MQTT, all driven by one [`World`] running on a sped-up clock.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use chrono::{DateTime, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::sdm630::{MeterState, write_meter};
use super::shelly::{gen2_em_status, gen2_emdata};
use super::sunspec::{InverterState, build_inverter_image, write_inverter};
use super::world::{World, WorldConfig, WorldState};
use super::{RegisterImage, SharedImage, serve_modbus_tcp};
use crate::sunspec::{BASES, operating_state};

/// The demo's world is the same on every run.
const DEMO_SEED: u64 = 0x00C0_FFEE;
/// Where the simulated inverter's SunSpec map starts.
pub const INVERTER_BASE: u16 = BASES[0];
/// Counters of devices that have been running for years before the demo starts;
/// SunSpec also reads an acc32 of 0 as "not implemented".
const INVERTER_LIFETIME_WH: f64 = 61_250_000.0;
const METER_IMPORT_WH: f64 = 48_312_000.0;
const METER_EXPORT_WH: f64 = 21_764_000.0;
const SUBMETER_WH: f64 = 1_250_000.0;
/// How long the MQTT event loop waits before reconnecting to a broker that is down.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub world: WorldConfig,
    /// Simulated seconds per real second.
    pub speed: f64,
    /// Local time of day (in `timezone`) the simulation starts at, today; now if absent.
    pub start: Option<NaiveTime>,
    /// The day the simulation starts on (a season: the sun's height and the day's
    /// length follow it); today if absent.
    pub date: Option<NaiveDate>,
    pub timezone: chrono_tz::Tz,
    pub broker: SocketAddr,
    pub inverter_unit: u8,
    pub meter_unit: u8,
    /// Where the battery publishes `{"power_w": <discharge +>, "soc_pct": ...}`.
    pub battery_topic: String,
    /// (service id in `world.services`, Shelly Gen2 topic prefix).
    pub service_topics: Vec<(String, String)>,
    /// Real time between two world steps.
    pub tick: Duration,
}

/// The simulated clock: `start + elapsed real time x speed`.
#[derive(Debug, Clone)]
pub struct SimClock {
    origin_sim: DateTime<Utc>,
    origin_real: Instant,
    speed: f64,
}

impl SimClock {
    /// A clock reading `start` now and running `speed` times faster than real
    /// time (a speed that is not a positive number means real time).
    pub fn new(start: DateTime<Utc>, speed: f64) -> SimClock {
        SimClock {
            origin_sim: start,
            origin_real: Instant::now(),
            speed: if speed.is_finite() && speed > 0.0 {
                speed
            } else {
                1.0
            },
        }
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// The simulated time now.
    pub fn now(&self) -> DateTime<Utc> {
        let sim_ms = self.origin_real.elapsed().as_secs_f64() * self.speed * 1000.0;
        chrono::Duration::try_milliseconds(sim_ms as i64)
            .and_then(|d| self.origin_sim.checked_add_signed(d))
            .unwrap_or(self.origin_sim)
    }
}

/// The running demo site.
#[derive(Debug, Clone)]
pub struct DemoSite {
    /// SunSpec inverter, map at [`INVERTER_BASE`].
    pub inverter_addr: SocketAddr,
    /// SDM630 grid meter.
    pub meter_addr: SocketAddr,
    pub clock: SimClock,
    /// The latest world state, updated every tick.
    pub state: watch::Receiver<WorldState>,
}

/// `start` as a local time today in `timezone`; a time skipped by a DST change
/// moves one hour later.
fn resolve_start(
    date: Option<NaiveDate>,
    start: Option<NaiveTime>,
    timezone: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    if date.is_none() && start.is_none() {
        return now;
    }
    let here = now.with_timezone(&timezone);
    let local = date
        .unwrap_or_else(|| here.date_naive())
        .and_time(start.unwrap_or_else(|| here.time()));
    let resolved = match timezone.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t),
        LocalResult::None => timezone
            .from_local_datetime(&(local + chrono::Duration::hours(1)))
            .earliest(),
    };
    resolved.map_or(now, |t| t.with_timezone(&Utc))
}

/// Turns world states into device registers and payloads.
struct Devices {
    inverter: SharedImage,
    meter: SharedImage,
    pv_peak_w: f64,
}

/// Voltage rises a little when the site exports, as on a real feeder.
fn site_voltage_v(s: &WorldState) -> f64 {
    230.0 + (-s.grid_w / 2000.0).clamp(-4.0, 6.0)
}

impl Devices {
    fn write(&self, s: &WorldState) {
        let voltage_v = site_voltage_v(s);
        let t = s.time.timestamp_millis() as f64 / 1000.0;
        let frequency_hz = 50.0 + 0.03 * (t / 300.0 * std::f64::consts::TAU).sin();
        let inverter = InverterState {
            power_w: s.pv_w,
            energy_wh: INVERTER_LIFETIME_WH + s.pv_energy_wh,
            voltage_v,
            frequency_hz,
            temperature_c: 20.0 + 25.0 * (s.pv_w / self.pv_peak_w.max(1.0)),
            status: if s.pv_w > 1.0 {
                operating_state::MPPT
            } else {
                operating_state::SLEEPING
            },
        };
        let meter = MeterState {
            power_w: s.grid_w,
            import_wh: METER_IMPORT_WH + s.grid_import_wh,
            export_wh: METER_EXPORT_WH + s.grid_export_wh,
            voltage_v,
            frequency_hz,
        };
        {
            let mut img = self
                .inverter
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            write_inverter(&mut img, INVERTER_BASE, &inverter);
        }
        let mut img = self.meter.write().unwrap_or_else(PoisonError::into_inner);
        write_meter(&mut img, &meter);
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The MQTT messages of one world state: topic and payload.
fn messages(opts: &DemoOptions, s: &WorldState) -> Vec<(String, String)> {
    let voltage_v = site_voltage_v(s);
    let mut out = Vec::with_capacity(2 * opts.service_topics.len() + 1);
    for (service, prefix) in &opts.service_topics {
        let power = s
            .loads
            .iter()
            .find(|(id, _)| id == service)
            .map(|(_, w)| *w);
        let energy = s
            .loads_energy_wh
            .iter()
            .find(|(id, _)| id == service)
            .map(|(_, e)| *e);
        let (Some(power), Some(energy)) = (power, energy) else {
            continue;
        };
        let prefix = prefix.trim_end_matches('/');
        out.push((
            format!("{prefix}/status/em:0"),
            gen2_em_status(power, voltage_v),
        ));
        out.push((
            format!("{prefix}/status/emdata:0"),
            gen2_emdata(SUBMETER_WH + energy, 0.0),
        ));
    }
    out.push((
        opts.battery_topic.clone(),
        serde_json::json!({"power_w": round1(s.battery_w), "soc_pct": round1(s.battery_soc_pct)})
            .to_string(),
    ));
    out
}

async fn bind_and_serve(
    image: SharedImage,
    unit: u8,
    cancel: CancellationToken,
    what: &'static str,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        tokio::select! {
            () = cancel.cancelled() => {}
            res = serve_modbus_tcp(listener, image, unit) => {
                if let Err(e) = res {
                    tracing::error!(device = what, error = %e, "simulated Modbus server stopped");
                }
            }
        }
    });
    tracing::info!(device = what, %addr, unit, "simulated Modbus device listening");
    Ok(addr)
}

/// Drives the MQTT connection: reconnects after a pause whenever the broker is
/// unreachable, and never blocks on anything but the broker.
async fn drive_mqtt(mut eventloop: EventLoop, broker: SocketAddr, cancel: CancellationToken) {
    let mut connected = false;
    let mut warned = false;
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connected = true;
                    warned = false;
                    tracing::info!(%broker, "demo devices connected to the MQTT broker");
                }
                Ok(_) => {}
                Err(e) => {
                    if connected || !warned {
                        tracing::warn!(%broker, error = %e, "demo devices cannot reach the MQTT broker; retrying");
                        warned = true;
                    }
                    connected = false;
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(RECONNECT_DELAY) => {}
                    }
                }
            },
        }
    }
}

/// Starts the simulated site: binds the inverter and the grid meter on
/// `127.0.0.1:0`, connects to the broker (retrying until it is up) and advances
/// the world every `tick` until `cancel` fires.
pub async fn start(opts: DemoOptions, cancel: CancellationToken) -> std::io::Result<DemoSite> {
    let clock = SimClock::new(
        resolve_start(opts.date, opts.start, opts.timezone, Utc::now()),
        opts.speed,
    );
    let mut world = World::new(opts.world.clone(), DEMO_SEED).with_timezone(opts.timezone);
    for (service, prefix) in &opts.service_topics {
        if !opts.world.services.iter().any(|s| &s.id == service) {
            tracing::warn!(service = %service, topic = %prefix, "demo has no simulated load for this service; nothing is published");
        }
    }

    let mut inverter = RegisterImage::new();
    build_inverter_image(&mut inverter, INVERTER_BASE);
    let devices = Devices {
        inverter: inverter.shared(),
        meter: RegisterImage::new().shared(),
        pv_peak_w: opts.world.pv_peak_w,
    };
    // Registers hold real values before the first client can connect.
    let first = world.step(clock.now(), 0.0);
    devices.write(&first);
    let (state_tx, state_rx) = watch::channel(first.clone());

    let inverter_addr = bind_and_serve(
        devices.inverter.clone(),
        opts.inverter_unit,
        cancel.clone(),
        "inverter",
    )
    .await?;
    let meter_addr = bind_and_serve(
        devices.meter.clone(),
        opts.meter_unit,
        cancel.clone(),
        "grid meter",
    )
    .await?;

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let client_id = format!("communalia-demo-{}-{nanos}", std::process::id());
    let mut mqtt_options =
        MqttOptions::new(client_id, opts.broker.ip().to_string(), opts.broker.port());
    mqtt_options.set_keep_alive(Duration::from_secs(30));
    // Room for a few ticks of messages while the broker is away; older ones are
    // dropped rather than blocking the world.
    let capacity = 4 * (2 * opts.service_topics.len() + 1);
    let (client, eventloop) = AsyncClient::new(mqtt_options, capacity);
    tokio::spawn(drive_mqtt(eventloop, opts.broker, cancel.clone()));

    let task_clock = clock.clone();
    let tick = opts.tick.max(Duration::from_millis(10));
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = first.time;
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = interval.tick() => {}
            }
            let now = task_clock.now();
            let dt_s = (now - last).num_milliseconds() as f64 / 1000.0;
            last = now;
            let state = world.step(now, dt_s);
            devices.write(&state);
            for (topic, payload) in messages(&opts, &state) {
                if let Err(e) = client.try_publish(topic, QoS::AtMostOnce, false, payload) {
                    tracing::trace!(error = %e, "demo message dropped");
                }
            }
            state_tx.send_replace(state);
        }
        tracing::debug!("demo world stopped");
    });

    Ok(DemoSite {
        inverter_addr,
        meter_addr,
        clock,
        state: state_rx,
    })
}

#[cfg(test)]
mod tests;
