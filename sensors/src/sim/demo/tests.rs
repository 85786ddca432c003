use std::collections::{BTreeMap, HashMap};

use chrono::Timelike;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio_modbus::Slave;
use tokio_modbus::client::Reader;

use super::*;
use crate::config::MqttDeviceConfig;
use crate::modbus::ReadBlock;
use crate::model::Metric;
use crate::profile::{self, Profile};
use crate::sunspec::{self, ModelHeader};

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// A real broker (rumqttd, as the node embeds it) on `addr`, in its own thread.
fn start_broker(addr: SocketAddr) {
    use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
    let mut v4 = HashMap::new();
    v4.insert(
        "v4".to_string(),
        ServerSettings {
            name: "v4".to_string(),
            listen: addr,
            tls: None,
            next_connection_delay_ms: 1,
            connections: ConnectionSettings {
                connection_timeout_ms: 60_000,
                max_payload_size: 64 * 1024,
                max_inflight_count: 100,
                auth: None,
                external_auth: None,
                dynamic_filters: true,
            },
        },
    );
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 64,
            max_outgoing_packet_count: 200,
            max_segment_size: 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(v4),
        v5: None,
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    };
    std::thread::spawn(move || {
        let _ = Broker::new(config).start();
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "broker did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn options(broker: SocketAddr) -> DemoOptions {
    DemoOptions {
        world: WorldConfig::default(),
        speed: 600.0,
        start: NaiveTime::from_hms_opt(12, 0, 0),
        date: None,
        timezone: chrono_tz::Europe::Paris,
        broker,
        inverter_unit: 1,
        meter_unit: 2,
        battery_topic: "demo/battery".to_string(),
        service_topics: vec![
            ("school".to_string(), "demo/school-em".to_string()),
            ("households".to_string(), "demo/homes-em/".to_string()),
            ("no-such-service".to_string(), "demo/nothing".to_string()),
        ],
        tick: Duration::from_millis(50),
    }
}

#[test]
fn start_times_are_local_and_survive_dst_gaps() {
    let paris = chrono_tz::Europe::Paris;
    let now = Utc
        .with_ymd_and_hms(2025, 6, 16, 5, 0, 0)
        .single()
        .expect("date");
    let noon = resolve_start(None, NaiveTime::from_hms_opt(12, 0, 0), paris, now);
    assert_eq!(
        noon,
        Utc.with_ymd_and_hms(2025, 6, 16, 10, 0, 0)
            .single()
            .expect("date")
    );
    assert_eq!(resolve_start(None, None, paris, now), now);
    // 02:30 does not exist in Paris on 30 March 2025: 03:30 CEST instead.
    let spring = Utc
        .with_ymd_and_hms(2025, 3, 30, 0, 30, 0)
        .single()
        .expect("date");
    let gap = resolve_start(None, NaiveTime::from_hms_opt(2, 30, 0), paris, spring);
    assert_eq!(
        gap,
        Utc.with_ymd_and_hms(2025, 3, 30, 1, 30, 0)
            .single()
            .expect("date")
    );
}

/// A season: a December demo can start on a June day, at the time of day asked
/// or the present one.
#[test]
fn a_start_date_gives_the_season() {
    let paris = chrono_tz::Europe::Paris;
    let december_night = Utc
        .with_ymd_and_hms(2026, 12, 7, 0, 30, 0)
        .single()
        .expect("date");
    let june = chrono::NaiveDate::from_ymd_opt(2026, 6, 21);
    assert_eq!(
        resolve_start(
            june,
            NaiveTime::from_hms_opt(12, 0, 0),
            paris,
            december_night
        ),
        Utc.with_ymd_and_hms(2026, 6, 21, 10, 0, 0)
            .single()
            .expect("date"),
        "noon in Paris in summer is 10:00 UTC"
    );
    assert_eq!(
        resolve_start(june, None, paris, december_night),
        Utc.with_ymd_and_hms(2026, 6, 20, 23, 30, 0)
            .single()
            .expect("date"),
        "01:30 in Paris on 21 June"
    );
}

#[test]
fn the_clock_runs_at_its_speed() {
    let start = Utc
        .with_ymd_and_hms(2025, 6, 16, 10, 0, 0)
        .single()
        .expect("date");
    let clock = SimClock::new(start, 3600.0);
    std::thread::sleep(Duration::from_millis(50));
    let elapsed = (clock.now() - start).num_seconds();
    assert!((170..3600).contains(&elapsed), "{elapsed}");
    assert_eq!(SimClock::new(start, f64::NAN).speed(), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_site_serves_modbus_and_publishes_once_the_broker_is_up() {
    let broker = free_addr();
    let cancel = CancellationToken::new();
    // The broker is not up yet: the demo must start anyway and keep retrying.
    let site = start(options(broker), cancel.clone())
        .await
        .expect("demo starts");
    let local = site.clock.now().with_timezone(&chrono_tz::Europe::Paris);
    assert!((12..=13).contains(&local.hour()), "{local}");

    // The inverter answers as a SunSpec device at 40000.
    let mut ctx = tokio_modbus::client::tcp::connect_slave(site.inverter_addr, Slave(1))
        .await
        .expect("connect inverter");
    let words = ctx
        .read_holding_registers(INVERTER_BASE, 2)
        .await
        .expect("io")
        .expect("ok");
    assert!(sunspec::is_marker(&words));
    let mut addr = INVERTER_BASE + 2;
    let mut inverter = None;
    loop {
        let words = ctx
            .read_holding_registers(addr, 2)
            .await
            .expect("io")
            .expect("ok");
        let h = ModelHeader::parse(addr, &words).expect("header");
        if h.is_end() {
            break;
        }
        if sunspec::supported(h.id) && h.id != 1 {
            let body = ctx
                .read_holding_registers(h.body_address(), h.length)
                .await
                .expect("io")
                .expect("ok");
            inverter = Some(sunspec::decode_model(h.id, &body).expect("decode"));
        }
        addr = h.next_address();
    }
    let inverter = inverter.expect("an inverter model");
    let get = |m| inverter.iter().find(|s| s.metric == m).map(|s| s.value);
    assert!(
        get(Metric::PowerW).is_some_and(|w| w > 0.0),
        "PV at noon: {inverter:?}"
    );
    assert_eq!(get(Metric::Status), Some(f64::from(operating_state::MPPT)));

    // The grid meter answers through the SDM630 profile.
    let Ok(Profile::Modbus(sdm)) = profile::lookup("sdm630") else {
        panic!("sdm630 profile");
    };
    let mut meter = tokio_modbus::client::tcp::connect_slave(site.meter_addr, Slave(2))
        .await
        .expect("connect meter");
    let mut blocks: Vec<(ReadBlock, Vec<u16>)> = Vec::new();
    for b in sdm.read_plan() {
        let w = meter
            .read_input_registers(b.start, b.count)
            .await
            .expect("io")
            .expect("ok");
        blocks.push((b, w));
    }
    let grid = sdm.decode(&blocks);
    let voltage = grid
        .iter()
        .find(|s| s.metric == Metric::VoltageL1V)
        .map(|s| s.value);
    assert!(
        voltage.is_some_and(|v| (225.0..237.0).contains(&v)),
        "{grid:?}"
    );
    assert!(
        grid.iter()
            .any(|s| s.metric == Metric::EnergyImportWh && s.value > METER_IMPORT_WH - 1.0)
    );

    // The broker comes up late; the demo's devices reconnect and publish.
    start_broker(broker);
    let mut opts = MqttOptions::new(
        "demo-test-subscriber",
        broker.ip().to_string(),
        broker.port(),
    );
    opts.set_keep_alive(Duration::from_secs(10));
    let (client, mut eventloop) = AsyncClient::new(opts, 10);
    client
        .subscribe("demo/#", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    let wanted = [
        "demo/school-em/status/em:0",
        "demo/school-em/status/emdata:0",
        "demo/homes-em/status/em:0",
        "demo/battery",
    ];
    let mut seen: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !wanted.iter().all(|t| seen.contains_key(*t)) {
        let Ok(event) = tokio::time::timeout_at(deadline, eventloop.poll()).await else {
            panic!("only saw {:?}", seen.keys().collect::<Vec<_>>());
        };
        if let Ok(Event::Incoming(Packet::Publish(p))) = event {
            seen.insert(p.topic.clone(), p.payload.to_vec());
        }
    }
    assert!(!seen.keys().any(|t| t.starts_with("demo/nothing")));

    let shelly = match profile::lookup("shelly-gen2-em") {
        Ok(Profile::Mqtt(p)) => p,
        other => panic!("{other:?}"),
    };
    let dev: MqttDeviceConfig = toml::from_str("topic = \"demo/school-em\"").expect("dev");
    let topic = "demo/school-em/status/em:0";
    let samples = shelly
        .decode(&dev, topic, &seen[topic])
        .expect("em:0 decodes");
    assert!(
        samples
            .iter()
            .any(|s| s.metric == Metric::PowerW && s.value > 0.0)
    );
    let topic = "demo/school-em/status/emdata:0";
    let samples = shelly
        .decode(&dev, topic, &seen[topic])
        .expect("emdata decodes");
    assert!(
        samples
            .iter()
            .any(|s| s.metric == Metric::EnergyImportWh && s.value >= SUBMETER_WH)
    );

    let generic = match profile::lookup("generic-json") {
        Ok(Profile::Mqtt(p)) => p,
        other => panic!("{other:?}"),
    };
    let battery: MqttDeviceConfig = toml::from_str(
        "topic = \"demo/battery\"\nfields = { power_w = \"power_w\", soc_pct = \"soc_pct\" }",
    )
    .expect("dev");
    let samples = generic
        .decode(&battery, "demo/battery", &seen["demo/battery"])
        .expect("battery decodes");
    assert!(
        samples
            .iter()
            .any(|s| s.metric == Metric::SocPct && (0.0..=100.0).contains(&s.value))
    );

    // The world moves on, and stops with the token.
    let before = site.state.borrow().time;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(site.state.borrow().time > before);
    cancel.cancel();
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(site.inverter_addr)
        .await
        .is_ok()
    {
        assert!(
            Instant::now() < deadline,
            "inverter still listening after cancel"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
