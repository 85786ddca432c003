//! Peers, simulators and waiting, shared by the tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ingest::metrics::IngestMetrics;
use ingest::modbus::{Link, ModbusDevice, ModbusSource};
use ingest::reading::Reading;
use sensors::model::Role;
use sensors::sim::{RegisterImage, SharedImage, SimControl, serve_modbus_gateway};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(crate) use testkit::net::free_port;
pub(crate) use testkit::peers::{python_has, skip};
pub(crate) use testkit::process::Peer;

pub(crate) fn peer_script(name: &str) -> String {
    format!("{}/tests/peers/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A simulated gateway (or single device) on a free port.
pub(crate) struct Sim {
    pub(crate) addr: SocketAddr,
    pub(crate) control: Arc<SimControl>,
    #[allow(dead_code)] // kept so that a test can change what the device reports
    pub(crate) images: Vec<(u8, SharedImage)>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) async fn serve(units: Vec<(u8, RegisterImage)>) -> Sim {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let control = SimControl::new();
    let images: Vec<(u8, SharedImage)> = units.into_iter().map(|(u, i)| (u, i.shared())).collect();
    let task = tokio::spawn(serve_modbus_gateway(
        listener,
        images.clone(),
        control.clone(),
    ));
    Sim {
        addr,
        control,
        images,
        task,
    }
}

pub(crate) fn device(
    id: &str,
    addr: SocketAddr,
    unit: u8,
    source: ModbusSource,
    every: Duration,
) -> ModbusDevice {
    ModbusDevice {
        id: id.into(),
        link: Link::Tcp {
            host: addr.ip().to_string(),
            port: addr.port(),
        },
        unit,
        source,
        poll_interval: every,
        timeout: Duration::from_millis(150),
        role: Role::Grid,
        power_sign: None,
        limits: ingest::plausible::Limits::polled(Role::Grid),
    }
}

pub(crate) fn profile(name: &str) -> ModbusSource {
    match sensors::profile::lookup(name) {
        Ok(sensors::profile::Profile::Modbus(p)) => ModbusSource::Profile(Arc::new(p.clone())),
        Ok(sensors::profile::Profile::SunSpec) => ModbusSource::SunSpec { model: None },
        other => panic!("{name} is not a Modbus profile: {other:?}"),
    }
}

/// Running Modbus workers, their readings and counters.
pub(crate) struct Running {
    pub(crate) metrics: Arc<IngestMetrics>,
    pub(crate) readings: Arc<std::sync::Mutex<Vec<Reading>>>,
    cancel: CancellationToken,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub(crate) async fn stop(self) {
        self.cancel.cancel();
        for h in self.handles {
            let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
        }
    }
}

pub(crate) fn run(devices: Vec<ModbusDevice>) -> Running {
    let metrics = Arc::new(IngestMetrics::default());
    let (tx, rx) = mpsc::channel(4096);
    let cancel = CancellationToken::new();
    let handles = ingest::modbus::spawn_modbus_links(devices, tx, metrics.clone(), cancel.clone());
    Running {
        metrics,
        readings: drain(rx),
        cancel,
        handles,
    }
}

/// Waits up to `within` for `cond`, checking every 10 ms.
pub(crate) async fn wait_for(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Keeps draining readings so that workers never wait on a full channel.
fn drain(mut rx: mpsc::Receiver<ingest::sink::Accepted>) -> Arc<std::sync::Mutex<Vec<Reading>>> {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = seen.clone();
    tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            if let Ok(mut v) = keep.lock() {
                v.extend(batch.readings);
            }
        }
    });
    seen
}
