//! The embedded MQTT broker (rumqttd), the default for a site that has none: Shelly,
//! Tasmota and OpenDTU devices are pointed at the node itself.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use crate::{Error, Result};

/// Starts the broker on `addr` in its own threads and waits until it accepts
/// connections. Fails with the address named if it cannot listen there.
pub fn start_embedded(addr: SocketAddr) -> Result<()> {
    // rumqttd only logs a bind failure from its own thread; probe first so the
    // installer gets an error naming the address.
    std::net::TcpListener::bind(addr).map_err(|e| Error::Listen {
        what: "embedded MQTT broker",
        addr,
        source: e,
    })?;
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
                max_payload_size: 256 * 1024,
                max_inflight_count: 500,
                auth: None,
                external_auth: None,
                dynamic_filters: true,
            },
        },
    );
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 1024,
            max_outgoing_packet_count: 1000,
            max_segment_size: 16 * 1024 * 1024,
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
    std::thread::Builder::new()
        .name("mqtt-broker".to_string())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(|e| Error::Listen {
            what: "embedded MQTT broker",
            addr,
            source: e,
        })?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(Error::Listen {
                    what: "embedded MQTT broker",
                    addr,
                    source: e,
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A free port on 127.0.0.1, for brokers that cannot report the port they bound.
pub fn free_local_addr() -> Result<SocketAddr> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| Error::Listen {
        what: "a free local port",
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        source: e,
    })?;
    l.local_addr().map_err(|e| Error::Listen {
        what: "a free local port",
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        source: e,
    })
}
