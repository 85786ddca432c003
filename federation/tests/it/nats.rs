//! NATS servers for the tests: one JetStream server, or a cluster of three.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::process::Peer;

pub(crate) const NATS_SERVER: &str = "/usr/sbin/nats-server";

/// `false` (after saying so) when nats-server is missing and peers are not required.
pub(crate) fn available() -> bool {
    testkit::peers::have_file(NATS_SERVER, "nats-server (apt-get install nats-server)")
}

/// One nats-server with JetStream, on a port and a store directory that survive
/// its being stopped and started again.
pub(crate) struct NatsServer {
    pub(crate) port: u16,
    config: PathBuf,
    peer: Option<Peer>,
}

impl NatsServer {
    /// A single server with JetStream storing under `dir`.
    pub(crate) fn single(dir: &Path) -> NatsServer {
        let port = testkit::net::free_port();
        let store = dir.join("js");
        let config = dir.join("nats.conf");
        let text = format!(
            "listen: 127.0.0.1:{port}\nserver_name: single\njetstream {{ store_dir: \"{}\" }}\n",
            store.display()
        );
        std::fs::write(&config, text).unwrap_or_else(|e| panic!("{}: {e}", config.display()));
        let mut server = NatsServer {
            port,
            config,
            peer: None,
        };
        server.start();
        server
    }

    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) and waits until it accepts connections.
    pub(crate) fn start(&mut self) {
        let mut command = Command::new(NATS_SERVER);
        command
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let peer = Peer::spawn(&mut command).unwrap_or_else(|e| panic!("nats-server: {e}"));
        self.peer = Some(peer);
        let addr = format!("127.0.0.1:{}", self.port);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !testkit::net::tcp_open(&addr) {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills it, as a crash would.
    pub(crate) fn kill(&mut self) {
        if let Some(peer) = self.peer.take() {
            peer.stop();
        }
    }
}

/// Three nats-servers routed to each other on loopback: one JetStream cluster.
pub(crate) struct Cluster {
    pub(crate) servers: Vec<NatsServer>,
}

impl Cluster {
    pub(crate) fn start(dir: &Path) -> Cluster {
        let client_ports: Vec<u16> = (0..3).map(|_| testkit::net::free_port()).collect();
        let route_ports: Vec<u16> = (0..3).map(|_| testkit::net::free_port()).collect();
        let mut servers = Vec::new();
        for i in 0..3 {
            let routes: Vec<String> = (0..3)
                .filter(|j| *j != i)
                .map(|j| format!("\"nats-route://127.0.0.1:{}\"", route_ports[j]))
                .collect();
            let store = dir.join(format!("js-{i}"));
            let config = dir.join(format!("nats-{i}.conf"));
            let text = format!(
                "listen: 127.0.0.1:{port}\nserver_name: n{i}\n\
                 jetstream {{ store_dir: \"{store}\" }}\n\
                 cluster {{ name: federation\n listen: 127.0.0.1:{route}\n routes: [{routes}] }}\n",
                port = client_ports[i],
                store = store.display(),
                route = route_ports[i],
                routes = routes.join(", "),
            );
            std::fs::write(&config, text).unwrap_or_else(|e| panic!("{}: {e}", config.display()));
            let mut server = NatsServer {
                port: client_ports[i],
                config,
                peer: None,
            };
            server.start();
            servers.push(server);
        }
        Cluster { servers }
    }

    pub(crate) fn urls(&self) -> Vec<String> {
        self.servers.iter().map(NatsServer::url).collect()
    }
}
