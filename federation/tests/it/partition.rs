//! A partition between hosts as it happens: one server of the three-server
//! cluster in a network namespace of its own, behind a veth link that is taken
//! down (a pulled cable: packets vanish, nothing is reset) while a node publishes
//! through it. The node notices by its pings, goes on through the other two
//! servers (the stream is replicated on all three, two are a quorum), and once the
//! link is back every minute is in the stream exactly once.
//!
//! Namespaces need root and iproute2; without them the test says it is skipped
//! (root is the machine's, not a peer `.ci/run` installs; CI runs as root).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use federation::clock::{Clock, ScaledClock};
use federation::publish::Publisher;
use testkit::process::Peer;
use tokio_util::sync::CancellationToken;

use crate::nats::NATS_SERVER;
use crate::node::{SimNode, index_of, sim_node};
use crate::publish::{SPEED, stream_contents, t0, test_config, wait_for_minute};

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A network namespace joined to this one by a veth pair: `host_ip` on this side,
/// `inner_ip` inside. Removed on drop.
struct Netns {
    name: String,
    host_if: String,
    inner_if: String,
    host_ip: String,
    inner_ip: String,
}

impl Netns {
    fn create() -> Option<Netns> {
        if !is_root() || !Path::new("/usr/sbin/ip").exists() && !Path::new("/sbin/ip").exists() {
            println!("skipped: network namespaces not available (needs root and iproute2)");
            return None;
        }
        let id = std::process::id() % 100_000;
        let net = std::process::id() % 250;
        let ns = Netns {
            name: format!("communalia-part-{id}"),
            host_if: format!("cmh{id}"),
            inner_if: format!("cmi{id}"),
            host_ip: format!("10.213.{net}.1"),
            inner_ip: format!("10.213.{net}.2"),
        };
        let made = ip(&["netns", "add", &ns.name])
            && ip(&[
                "link",
                "add",
                &ns.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &ns.inner_if,
            ])
            && ip(&["link", "set", &ns.inner_if, "netns", &ns.name])
            && ip(&[
                "addr",
                "add",
                &format!("{}/24", ns.host_ip),
                "dev",
                &ns.host_if,
            ])
            && ip(&["link", "set", &ns.host_if, "up"])
            && ns.inside(&[
                "addr",
                "add",
                &format!("{}/24", ns.inner_ip),
                "dev",
                &ns.inner_if,
            ])
            && ns.inside(&["link", "set", &ns.inner_if, "up"])
            && ns.inside(&["link", "set", "lo", "up"]);
        if !made {
            println!("skipped: network namespaces not available (`ip netns` failed)");
            return None;
        }
        Some(ns)
    }

    /// `ip ARGS` inside the namespace.
    fn inside(&self, args: &[&str]) -> bool {
        let mut all = vec!["netns", "exec", &self.name, "ip"];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// The cable pulled: the inner end goes down, the host end loses its carrier,
    /// and whatever is sent either way is dropped without a word.
    fn cut(&self) {
        assert!(self.inside(&["link", "set", &self.inner_if, "down"]), "cut");
    }

    fn heal(&self) {
        assert!(self.inside(&["link", "set", &self.inner_if, "up"]), "heal");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        ip(&["link", "del", &self.host_if]);
        ip(&["netns", "del", &self.name]);
    }
}

/// One server of the cluster: where it listens for clients, its config, and
/// (when started) the process, inside `netns` when given.
struct Server {
    client: String,
    config: PathBuf,
    netns: Option<String>,
    _peer: Option<Peer>,
}

impl Server {
    fn url(&self) -> String {
        format!("nats://{}", self.client)
    }

    fn start(&mut self) {
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, NATS_SERVER]);
                c
            }
            None => Command::new(NATS_SERVER),
        };
        command
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self._peer = Some(Peer::spawn(&mut command).unwrap_or_else(|e| panic!("nats-server: {e}")));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !testkit::net::tcp_open(&self.client) {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {}",
                self.client
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Three servers routed to each other, the first inside `ns`.
fn cluster(dir: &Path, ns: &Netns) -> Vec<Server> {
    let ports: Vec<u16> = (0..3).map(|_| testkit::net::free_port()).collect();
    let routes: Vec<u16> = (0..3).map(|_| testkit::net::free_port()).collect();
    // Server 0 is reached at the namespace's address, the others at the host's.
    let route_addr = |i: usize| {
        if i == 0 {
            format!("{}:{}", ns.inner_ip, routes[0])
        } else {
            format!("{}:{}", ns.host_ip, routes[i])
        }
    };
    (0..3)
        .map(|i| {
            let client = if i == 0 {
                format!("{}:{}", ns.inner_ip, ports[0])
            } else {
                format!("127.0.0.1:{}", ports[i])
            };
            let listen_route = if i == 0 {
                route_addr(0)
            } else {
                format!("0.0.0.0:{}", routes[i])
            };
            let others: Vec<String> = (0..3)
                .filter(|j| *j != i)
                .map(|j| format!("\"nats-route://{}\"", route_addr(j)))
                .collect();
            let store = dir.join(format!("js-{i}"));
            let config = dir.join(format!("nats-{i}.conf"));
            let text = format!(
                "listen: {client}\nserver_name: p{i}\n\
                 jetstream {{ store_dir: \"{}\" }}\n\
                 cluster {{ name: partition\n listen: {listen_route}\n routes: [{}] }}\n",
                store.display(),
                others.join(", "),
            );
            std::fs::write(&config, text).unwrap_or_else(|e| panic!("{}: {e}", config.display()));
            let mut server = Server {
                client,
                config,
                netns: (i == 0).then(|| ns.name.clone()),
                _peer: None,
            };
            server.start();
            server
        })
        .collect()
}

/// The node's publisher, connected to `url` only (it learns the other servers
/// from it), pinging every 300 ms.
async fn publisher(node: &SimNode, url: &str, clock: Arc<dyn Clock>, cancel: CancellationToken) {
    let mut config = test_config(vec![url.to_string()], 3);
    config.ping_interval = Duration::from_millis(300);
    let client = federation::publish::connect_with(
        &config.nats,
        None,
        node.key.node_id(),
        config.ping_interval,
    )
    .await
    .expect("client");
    let publisher = Publisher::new(
        client,
        node.key.clone(),
        node.source.clone(),
        node.dir.path(),
        clock,
        config,
    )
    .expect("publisher");
    tokio::spawn(publisher.run(cancel));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_cut_off_by_a_partition_loses_nothing_and_doubles_nothing() {
    if !crate::nats::available() {
        return;
    }
    let Some(ns) = Netns::create() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let servers = cluster(dir.path(), &ns);
    let cancel = CancellationToken::new();
    let clock: Arc<dyn Clock> = Arc::new(ScaledClock::new(t0(), SPEED));
    let node = sim_node("tilleuls", 1, t0(), 600, clock.clone(), cancel.clone()).await;
    publisher(&node, &servers[0].url(), clock.clone(), cancel.clone()).await;
    wait_for_minute(&node, 3, Duration::from_secs(30)).await;

    // The node's server is cut off: the node must go on through the two others,
    // while the partition lasts (not after it).
    ns.cut();
    let cut_at = (federation::summary::minute_of(clock.now()) - t0()).num_minutes();
    // What it had published before (it starts with the minute it started in,
    // later than minute 3 on a loaded machine).
    let before = federation::cursor::Cursor::open(node.dir.path())
        .expect("cursor")
        .position()
        .published_through
        .map(|t| (t - t0()).num_minutes())
        .expect("published before the partition");
    wait_for_minute(&node, cut_at + 10, Duration::from_secs(30)).await;
    ns.heal();
    let healed_at = (federation::summary::minute_of(clock.now()) - t0()).num_minutes();
    wait_for_minute(&node, healed_at + 3, Duration::from_secs(30)).await;
    cancel.cancel();

    // Read from a server that was never cut off.
    let summaries = stream_contents(&servers[1].url()).await;
    let minutes: Vec<i64> = summaries.iter().map(|s| index_of(s, t0())).collect();
    let (first, last) = (
        *minutes.iter().min().expect("some"),
        *minutes.iter().max().expect("some"),
    );
    assert!(
        first <= before && before < cut_at + 1 && last >= healed_at + 3,
        "minutes {first} to {last}, {before} published before the cut at {cut_at}"
    );
    for k in first..=last {
        let n = minutes.iter().filter(|m| **m == k).count();
        assert_eq!(n, 1, "minute {k} is in the stream {n} times");
    }
}
