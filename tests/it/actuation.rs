//! Actuation through the embedded broker: a node with one actuated service publishes
//! its command retained; when production drops the service is shed and switched off,
//! but only once its minimum on time has passed, and back on after its minimum off time.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use sensors::sim::sunspec::{InverterState, build_inverter_image, write_inverter};
use sensors::sim::{RegisterImage, serve_modbus_tcp};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use query::actuation::{POWER_REPUBLISH_INTERVAL, POWER_STEP_FRACTION, POWER_STEP_MIN_W};

use crate::end_to_end::publish_loop;
use crate::support::*;

const MIN_ON: Duration = Duration::from_secs(4);
const MIN_OFF: Duration = Duration::from_secs(3);
/// The node decides on monotonic time and stamps the snapshot time: allow for the
/// few milliseconds an evaluation takes.
const CLOCK_SLACK: Duration = Duration::from_millis(250);

fn inverter(power_w: f64) -> InverterState {
    InverterState {
        power_w,
        energy_wh: 1_000_000.0,
        voltage_v: 231.0,
        frequency_hz: 50.0,
        temperature_c: 35.0,
        status: 4,
    }
}

/// A SunSpec inverter simulator whose production the test sets.
async fn inverter_sim(power_w: f64) -> (u16, Arc<RwLock<RegisterImage>>) {
    let mut image = RegisterImage::default();
    build_inverter_image(&mut image, 40000);
    write_inverter(&mut image, 40000, &inverter(power_w));
    let image = Arc::new(RwLock::new(image));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sim");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(serve_modbus_tcp(listener, image.clone(), 1));
    (port, image)
}

fn set_production(image: &RwLock<RegisterImage>, power_w: f64) {
    let mut image = image.write().expect("simulator image");
    write_inverter(&mut image, 40000, &inverter(power_w));
}

/// PV is all the site has (no battery, no grid import in the plan): the school's
/// 1000 W are served above 1000 W of production and shed at none.
fn actuated_site(
    dir: &std::path::Path,
    inverter_port: u16,
    broker_port: u16,
    prefix: &str,
    topic: &str,
) -> String {
    format!(
        r#"
[site]
name = "Actuated site"
language = "en"
latitude = 45.76
longitude = 4.84

[storage]
dir = "{dir}"

[mqtt]
broker = "embedded"
embedded_bind = "127.0.0.1:{broker_port}"

[[device]]
id = "inverter"
role = "pv"
profile = "sunspec"
modbus = {{ host = "127.0.0.1", port = {inverter_port}, unit = 1 }}
poll_interval = "200ms"

[[device]]
id = "school-meter"
role = "load"
profile = "shelly-gen2-em"
mqtt = {{ topic = "{prefix}-school" }}

[[service]]
id = "school"
meter = "school-meter"
tier = 1
actuation = {{ topic = "{topic}", min_on = "{min_on}s", min_off = "{min_off}s" }}
"#,
        dir = dir.display(),
        min_on = MIN_ON.as_secs(),
        min_off = MIN_OFF.as_secs(),
    )
}

/// One command as a subscriber sees it.
#[derive(Debug)]
struct Heard {
    json: serde_json::Value,
    retained: bool,
    ts: DateTime<Utc>,
}

impl Heard {
    fn on(&self) -> Option<bool> {
        self.json["on"].as_bool()
    }
}

/// Subscribes to `topic` on the broker and forwards every message.
fn subscribe(port: u16, topic: &str) -> mpsc::UnboundedReceiver<Heard> {
    let mut opts = MqttOptions::new(
        format!("it-actuation-sub-{}", std::process::id()),
        "127.0.0.1",
        port,
    );
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(opts, 10);
    let (tx, rx) = mpsc::unbounded_channel();
    let topic = topic.to_string();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let client = client.clone();
                    let topic = topic.clone();
                    tokio::spawn(async move {
                        let _ = client.subscribe(topic, QoS::AtLeastOnce).await;
                    });
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let json: serde_json::Value = serde_json::from_slice(&p.payload)
                        .unwrap_or_else(|e| panic!("command is not JSON ({e}): {:?}", p.payload));
                    let ts = json["ts"]
                        .as_str()
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.with_timezone(&Utc))
                        .unwrap_or_else(|| panic!("no RFC 3339 `ts` in {json}"));
                    let heard = Heard {
                        json,
                        retained: p.retain,
                        ts,
                    };
                    if tx.send(heard).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    rx
}

/// Receives until a command with `on == want`; every command before it must be the
/// opposite state (possibly with another allowed power).
async fn next_switch(rx: &mut mpsc::UnboundedReceiver<Heard>, want: bool, what: &str) -> Heard {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let heard = tokio::time::timeout(left, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("{what}: no command with on = {want} within 20 s"))
            .expect("subscriber running");
        if heard.on() == Some(want) {
            return heard;
        }
        assert_eq!(heard.on(), Some(!want), "{what}: {:#}", heard.json);
    }
}

/// The switch-on command may carry the allocation of its moment (at start the meter
/// can report before the inverter, or not yet at all: `idle`, on with 0 W); the
/// allowed power then follows in an update that keeps the load on, sent no sooner than
/// `POWER_REPUBLISH_INTERVAL` after and only for a step larger than the actuator's
/// threshold. Checks that the command, from `on` onward, that settles within that
/// step of `want_w` says the service is served.
async fn allowed_settles(
    rx: &mut mpsc::UnboundedReceiver<Heard>,
    on: &Heard,
    want_w: f64,
    what: &str,
) {
    let settled = |h: &Heard| {
        let step = POWER_STEP_MIN_W.max(POWER_STEP_FRACTION * want_w);
        h.json["allowed_w"]
            .as_f64()
            .is_some_and(|w| (w - want_w).abs() <= step)
    };
    if settled(on) {
        assert_eq!(on.json["state"], "served", "{what}: {:#}", on.json);
        return;
    }
    println!(
        "{what}: switched on at {}, waiting for the update",
        on.json["allowed_w"]
    );
    let wait = POWER_REPUBLISH_INTERVAL + Duration::from_secs(10);
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let heard = tokio::time::timeout(left, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("{what}: allowed_w not near {want_w} W within {wait:?}"))
            .expect("subscriber running");
        assert_eq!(
            heard.on(),
            Some(true),
            "{what}: switched off meanwhile: {:#}",
            heard.json
        );
        if settled(&heard) {
            assert_eq!(heard.json["state"], "served", "{what}: {:#}", heard.json);
            return;
        }
    }
}

fn since(later: &Heard, earlier: &Heard) -> Duration {
    (later.ts - earlier.ts).to_std().unwrap_or(Duration::ZERO)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actuated_service_is_switched_with_minimum_on_and_off_times() {
    let dir = TempDir::new("actuation");
    let prefix = format!("it-act-{}", std::process::id());
    let topic = format!("{prefix}/school/allowed");
    let (inverter_port, image) = inverter_sim(3000.0).await;
    let broker_port = free_port();
    let config_path = dir.path().join("site.toml");
    std::fs::write(
        &config_path,
        actuated_site(dir.path(), inverter_port, broker_port, &prefix, &topic),
    )
    .expect("write config");
    let cfg = config_path.to_string_lossy().to_string();

    let node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    // The school meter reads 1000 W (the clinic topic is claimed by no device here).
    let publisher = publish_loop("127.0.0.1", broker_port, &prefix, 0.0, 1000.0);
    wait_live(&node, Duration::from_secs(20), "the school served", |l| {
        l["stale"] == false
            && close(&service(l, "school")["allocated_w"], 1000.0)
            && service(l, "school")["state"] == "served"
    })
    .await;

    // A subscriber arriving after the command finds it retained.
    let mut commands = subscribe(broker_port, &topic);
    let first = tokio::time::timeout(Duration::from_secs(10), commands.recv())
        .await
        .expect("the retained command within 10 s")
        .expect("subscriber running");
    assert!(first.retained, "not retained: {:#}", first.json);
    assert_eq!(first.json["service"], "school");
    // At start the meter may have reported before the inverter: a first `off` is then
    // held for min_off before the `on`.
    let on = if first.on() == Some(true) {
        first
    } else {
        next_switch(&mut commands, true, "switched on at start").await
    };
    allowed_settles(&mut commands, &on, 1000.0, "on at start").await;

    // A cloud: no production at all, the school is shed within a second or two...
    set_production(&image, 0.0);
    let shed = wait_live(&node, Duration::from_secs(10), "the school shed", |l| {
        service(l, "school")["state"] == "shed"
    })
    .await;
    let shed_ts: DateTime<Utc> = shed["ts"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("ts in /api/live");
    // ...but switched off only once it has been on for min_on.
    let off = next_switch(&mut commands, false, "switched off after min_on").await;
    assert!(
        since(&off, &on) + CLOCK_SLACK >= MIN_ON,
        "off {:?} after on, min_on is {MIN_ON:?}",
        since(&off, &on)
    );
    if shed_ts < on.ts + MIN_ON {
        println!(
            "shed {:?} after on, held on {:?} longer",
            (shed_ts - on.ts).to_std().unwrap_or_default(),
            (off.ts - shed_ts).to_std().unwrap_or_default()
        );
    } else {
        println!("slow machine: the shed came after min_on, the hold was not exercised");
    }
    assert_eq!(off.json["state"], "shed", "{:#}", off.json);
    assert!(close(&off.json["allowed_w"], 0.0), "{:#}", off.json);
    assert!(
        !off.retained,
        "delivered live to a subscriber, not as the retained copy"
    );

    // The sun is back at once: the school stays off for min_off first.
    set_production(&image, 3000.0);
    let back = next_switch(&mut commands, true, "switched on after min_off").await;
    assert!(
        since(&back, &off) + CLOCK_SLACK >= MIN_OFF,
        "on {:?} after off, min_off is {MIN_OFF:?}",
        since(&back, &off)
    );
    allowed_settles(&mut commands, &back, 1000.0, "on again").await;

    publisher.abort();
    drop(node);
}

/// PV is a roof that publishes JSON on `<prefix>/roof`, the school's 1000 W are
/// metered by a Shelly: served while the roof gives 3000 W, shed when it gives none.
fn flapping_site(dir: &std::path::Path, broker_port: u16, prefix: &str, topic: &str) -> String {
    format!(
        r#"
[site]
name = "Flapping site"
language = "en"
latitude = 45.76
longitude = 4.84

[storage]
dir = "{dir}"

[mqtt]
broker = "embedded"
embedded_bind = "127.0.0.1:{broker_port}"

[[device]]
id = "roof"
role = "pv"
profile = "generic-json"
power_sign = "generation"
mqtt = {{ topic = "{prefix}/roof", fields = {{ power_w = "power_w" }} }}
max_messages_per_s = 1000

[[device]]
id = "school-meter"
role = "load"
profile = "shelly-gen2-em"
mqtt = {{ topic = "{prefix}-school" }}

[[service]]
id = "school"
meter = "school-meter"
tier = 1
actuation = {{ topic = "{topic}", min_on = "{min_on}s", min_off = "{min_off}s" }}
"#,
        dir = dir.display(),
        min_on = MIN_ON.as_secs(),
        min_off = MIN_OFF.as_secs(),
    )
}

/// `communalia_evaluations_total{trigger="reading"}` from `/metrics`.
async fn evaluations_on_readings(node: &NodeProc) -> f64 {
    let text = get_text(&format!("{}/metrics", node.base)).await;
    text.lines()
        .find_map(|l| l.strip_prefix("communalia_evaluations_total{trigger=\"reading\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no evaluations counted in /metrics:\n{text}"))
}

/// Production flaps between 3000 W and nothing every 50 ms, so the node evaluates
/// about twenty times a second and the allocation alternates between serving and
/// shedding the school: its commands still keep min_on and min_off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimum_times_hold_when_evaluations_come_twenty_times_a_second() {
    let _alone = crate::support::ONE_TIMED_NODE.lock().await;
    let dir = TempDir::new("actuation-flap");
    let prefix = format!("it-flap-{}", std::process::id());
    let topic = format!("{prefix}/school/allowed");
    let broker_port = free_port();
    let config_path = dir.path().join("site.toml");
    std::fs::write(
        &config_path,
        flapping_site(dir.path(), broker_port, &prefix, &topic),
    )
    .expect("write config");
    let cfg = config_path.to_string_lossy().to_string();
    let node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    let mut commands = subscribe(broker_port, &topic);

    let mut opts = MqttOptions::new(
        format!("it-flap-pub-{}", std::process::id()),
        "127.0.0.1",
        broker_port,
    );
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    let driver = tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let flapping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let flapping = flapping.clone();
        let prefix = prefix.clone();
        tokio::spawn(async move {
            let mut sunny = true;
            loop {
                if flapping.load(std::sync::atomic::Ordering::Relaxed) {
                    sunny = !sunny;
                }
                let roof = if sunny { 3000 } else { 0 };
                let _ = client
                    .publish(
                        format!("{prefix}/roof"),
                        QoS::AtMostOnce,
                        false,
                        format!(r#"{{"power_w": {roof}}}"#),
                    )
                    .await;
                let _ = client
                    .publish(
                        format!("{prefix}-school/status/em:0"),
                        QoS::AtMostOnce,
                        false,
                        sensors::sim::shelly::gen2_em_status(1000.0, 230.0),
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    wait_live(&node, Duration::from_secs(20), "the school served", |l| {
        l["stale"] == false && service(l, "school")["state"] == "served"
    })
    .await;
    let on = next_switch(&mut commands, true, "switched on at start").await;

    flapping.store(true, std::sync::atomic::Ordering::Relaxed);
    let before = evaluations_on_readings(&node).await;
    let started = Instant::now();
    let span = Duration::from_secs(12);
    let mut switches = vec![on];
    while let Some(left) = span.checked_sub(started.elapsed()) {
        let Ok(Some(heard)) = tokio::time::timeout(left, commands.recv()).await else {
            break;
        };
        if heard.on() != switches.last().and_then(Heard::on) {
            switches.push(heard);
        }
    }
    let evaluated = evaluations_on_readings(&node).await - before;
    let seconds = started.elapsed().as_secs_f64();
    publisher.abort();
    driver.abort();

    // The node did evaluate at the pace of the readings, not once a second...
    assert!(
        evaluated >= 5.0 * seconds,
        "{evaluated} evaluations on readings in {seconds:.1} s"
    );
    // ...and the load followed the flapping only as its minimum times allow.
    let states: Vec<_> = switches.iter().map(|h| (h.ts, h.on())).collect();
    assert!(switches.len() >= 3, "the load never switched: {states:?}");
    for pair in switches.windows(2) {
        let held = since(&pair[1], &pair[0]);
        let minimum = if pair[0].on() == Some(true) {
            MIN_ON
        } else {
            MIN_OFF
        };
        assert!(
            held + CLOCK_SLACK >= minimum,
            "kept {:?} only {held:?}, minimum {minimum:?}: {states:?}",
            pair[0].on()
        );
    }
}
