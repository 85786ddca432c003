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
    // Wait until the broker answers a real MQTT handshake: a bare TCP probe would
    // make it log a failed connection, and a bind probe could steal the port.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match mqtt_handshake(addr) {
            Ok(()) => return Ok(()),
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

/// CONNECT, expect CONNACK "accepted", DISCONNECT (MQTT 3.1.1, §3.1, §3.2, §3.14).
fn mqtt_handshake(addr: SocketAddr) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    let client_id = b"communalia-probe";
    let mut packet = vec![0x10, (12 + client_id.len()) as u8];
    packet.extend_from_slice(&[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x0A]);
    packet.extend_from_slice(&[0x00, client_id.len() as u8]);
    packet.extend_from_slice(client_id);
    stream.write_all(&packet)?;
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack)?;
    if connack[0] != 0x20 || connack[3] != 0x00 {
        return Err(std::io::Error::other(format!(
            "unexpected answer to CONNECT: {connack:02x?}"
        )));
    }
    stream.write_all(&[0xE0, 0x00])
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
