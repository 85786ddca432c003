//! A real Modbus TCP server over a [`RegisterImage`], so that the ingest workers,
//! the probe command and the demo talk to simulated devices exactly as to real ones.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_modbus::server::Service;
use tokio_modbus::server::tcp::{Server, accept_tcp_connection};
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

use super::SharedImage;
use crate::modbus::{MAX_READ_REGISTERS, RegisterKind};

/// Faults a test can inject into a running simulated device, and what it counts.
#[derive(Debug, Default)]
pub struct SimControl {
    /// While set, requests get no answer (a device that hangs, or a cable pulled
    /// behind a gateway); answers resume when it is cleared.
    pub silent: AtomicBool,
    /// Accept at most this many TCP connections at once (0: no limit), as many
    /// inverters do (often one); further connections are closed at once.
    pub max_connections: AtomicUsize,
    /// Requests answered or refused, over all connections.
    pub requests: AtomicU64,
    /// Connections accepted, over the server's life.
    pub connections: AtomicU64,
    /// Reads overlapping one of these `(kind, first, last)` register ranges are
    /// refused with exception 0x02 (Illegal Data Address).
    pub refused: std::sync::Mutex<Vec<(RegisterKind, u16, u16)>>,
    open: AtomicUsize,
}

impl SimControl {
    pub fn new() -> Arc<SimControl> {
        Arc::new(SimControl::default())
    }

    pub fn set_silent(&self, silent: bool) {
        self.silent.store(silent, Ordering::SeqCst);
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Refuses reads that touch registers `first..=last` of `kind`.
    pub fn refuse(&self, kind: RegisterKind, first: u16, last: u16) {
        self.refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((kind, first, last));
    }

    fn refuses(&self, kind: RegisterKind, start: u16, count: u16) -> bool {
        let end = u32::from(start) + u32::from(count);
        self.refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|(k, a, b)| *k == kind && u32::from(*a) < end && u32::from(start) <= u32::from(*b))
    }
}

/// Answers register reads for its unit ids from their shared images.
struct ImageService {
    units: Arc<Vec<(u8, SharedImage)>>,
    control: Arc<SimControl>,
}

impl Drop for ImageService {
    fn drop(&mut self) {
        self.control.open.fetch_sub(1, Ordering::SeqCst);
    }
}

fn read(
    image: &SharedImage,
    kind: RegisterKind,
    start: u16,
    count: u16,
) -> Result<Vec<u16>, ExceptionCode> {
    // Modbus Application Protocol v1.1b3 §6.3: quantity 1..=125 and the range
    // must exist. The specification answers a bad quantity with 0x03; many
    // devices answer 0x02 (Illegal Data Address) for both, as this one does,
    // so clients must handle either.
    if count == 0 || count > MAX_READ_REGISTERS || u32::from(start) + u32::from(count) > 1 << 16 {
        return Err(ExceptionCode::IllegalDataAddress);
    }
    // A writer that panicked leaves a consistent image (plain words), so a
    // poisoned lock is still safe to read.
    let image = image.read().unwrap_or_else(PoisonError::into_inner);
    image
        .read(kind, start, count)
        .map(<[u16]>::to_vec)
        .ok_or(ExceptionCode::IllegalDataAddress)
}

impl ImageService {
    fn answer(&self, req: SlaveRequest<'static>) -> Result<Response, ExceptionCode> {
        // Modbus TCP addresses a lone device by IP; unit 0xFF ("not used", Modbus
        // Messaging on TCP/IP Implementation Guide §4.4.2) and 0 reach it too.
        let image = match self.units.as_slice() {
            [(unit, image)] if req.slave == *unit || req.slave == 0xFF || req.slave == 0 => image,
            units => match units.iter().find(|(u, _)| *u == req.slave) {
                Some((_, image)) => image,
                // A gateway answers for a unit it does not reach with 0x0B.
                None => return Err(ExceptionCode::GatewayTargetDevice),
            },
        };
        let (kind, start, count) = match req.request {
            Request::ReadHoldingRegisters(start, count) => (RegisterKind::Holding, start, count),
            Request::ReadInputRegisters(start, count) => (RegisterKind::Input, start, count),
            _ => return Err(ExceptionCode::IllegalFunction),
        };
        if self.control.refuses(kind, start, count) {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        let words = read(image, kind, start, count)?;
        Ok(match kind {
            RegisterKind::Holding => Response::ReadHoldingRegisters(words),
            RegisterKind::Input => Response::ReadInputRegisters(words),
        })
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<Response, ExceptionCode>> + Send>>;

impl Service for ImageService {
    type Request = SlaveRequest<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = Answer;

    fn call(&self, req: Self::Request) -> Self::Future {
        let control = self.control.clone();
        if !control.silent.load(Ordering::SeqCst) {
            control.requests.fetch_add(1, Ordering::SeqCst);
            let res = self.answer(req);
            return Box::pin(std::future::ready(res));
        }
        let units = self.units.clone();
        let late = ImageService {
            units,
            control: control.clone(),
        };
        // Counted as open again: `late` decrements when dropped.
        control.open.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            while late.control.silent.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            late.control.requests.fetch_add(1, Ordering::SeqCst);
            late.answer(req)
        })
    }
}

/// Serves `image` as Modbus unit `unit` on `listener` until the returned future is
/// dropped (which also closes every open connection) or accepting fails.
pub async fn serve_modbus_tcp(
    listener: TcpListener,
    image: SharedImage,
    unit: u8,
) -> std::io::Result<()> {
    serve_modbus_gateway(listener, vec![(unit, image)], SimControl::new()).await
}

/// Serves several unit ids on one listener, as a Modbus TCP gateway in front of an
/// RS-485 bus does, with the faults `control` injects.
pub async fn serve_modbus_gateway(
    listener: TcpListener,
    units: Vec<(u8, SharedImage)>,
    control: Arc<SimControl>,
) -> std::io::Result<()> {
    let server = Server::new(listener);
    let units = Arc::new(units);
    let on_connected = move |stream: TcpStream, socket_addr: SocketAddr| {
        let units = units.clone();
        let control = control.clone();
        async move {
            let max = control.max_connections.load(Ordering::SeqCst);
            if max > 0 && control.open.load(Ordering::SeqCst) >= max {
                tracing::debug!(%socket_addr, "simulated device refuses a second connection");
                return Ok(None);
            }
            control.open.fetch_add(1, Ordering::SeqCst);
            control.connections.fetch_add(1, Ordering::SeqCst);
            accept_tcp_connection(stream, socket_addr, |_| {
                Ok(Some(ImageService {
                    units: units.clone(),
                    control: control.clone(),
                }))
            })
        }
    };
    let on_process_error = |err: std::io::Error| {
        tracing::debug!(error = %err, "simulated Modbus connection ended");
    };
    server.serve(&on_connected, on_process_error).await
}

#[cfg(test)]
mod tests {
    use tokio_modbus::client::{Context, Reader};
    use tokio_modbus::{ExceptionCode, Slave};

    use super::*;
    use crate::modbus::ReadBlock;
    use crate::model::{Metric, Sample};
    use crate::profile::{self, Profile};
    use crate::sim::RegisterImage;
    use crate::sim::sdm630::{MeterState, write_meter};
    use crate::sim::sunspec::tests::assert_inverter_samples;
    use crate::sim::sunspec::{InverterState, build_inverter_image, write_inverter};
    use crate::sunspec::{self, BASES, ModelHeader, is_marker, operating_state};

    async fn serve(image: RegisterImage, unit: u8) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(serve_modbus_tcp(listener, image.shared(), unit));
        addr
    }

    async fn connect(addr: SocketAddr, unit: u8) -> Context {
        tokio_modbus::client::tcp::connect_slave(addr, Slave(unit))
            .await
            .expect("connect")
    }

    #[tokio::test]
    async fn a_sunspec_client_discovers_and_decodes_the_simulated_inverter() {
        let state = InverterState {
            power_w: 8421.0,
            energy_wh: 3_456_789.0,
            voltage_v: 229.7,
            frequency_hz: 50.02,
            temperature_c: 38.5,
            status: operating_state::MPPT,
        };
        let mut image = RegisterImage::new();
        build_inverter_image(&mut image, BASES[0]);
        write_inverter(&mut image, BASES[0], &state);
        let addr = serve(image, 3).await;
        let mut ctx = connect(addr, 3).await;

        // Discovery as a client does it: try each base for the marker.
        let mut base = None;
        for b in BASES {
            if let Ok(Ok(words)) = ctx.read_holding_registers(b, 2).await
                && is_marker(&words)
            {
                base = Some(b);
                break;
            }
        }
        let base = base.expect("marker found");
        assert_eq!(base, 40000);

        let mut addr = base + 2;
        let mut decoded = None;
        let mut common = None;
        loop {
            let words = ctx
                .read_holding_registers(addr, 2)
                .await
                .expect("io")
                .expect("no exception");
            let header = ModelHeader::parse(addr, &words).expect("header");
            if header.is_end() {
                break;
            }
            let body = ctx
                .read_holding_registers(header.body_address(), header.length)
                .await
                .expect("io")
                .expect("no exception");
            match header.id {
                1 => common = Some(sunspec::decode_common(&body)),
                103 => decoded = Some(sunspec::decode_model(103, &body).expect("decode")),
                _ => {}
            }
            addr = header.next_address();
        }
        assert_eq!(common.expect("model 1").manufacturer, "Communalia");
        assert_inverter_samples(&decoded.expect("model 103"), &state);
    }

    #[tokio::test]
    async fn the_sdm630_profile_reads_the_simulated_meter() {
        let state = MeterState {
            power_w: -1520.5,
            import_wh: 12_345_000.0,
            export_wh: 6_789_000.0,
            voltage_v: 231.5,
            frequency_hz: 49.97,
        };
        let mut image = RegisterImage::new();
        write_meter(&mut image, &state);
        let addr = serve(image, 7).await;
        let mut ctx = connect(addr, 7).await;

        let Ok(Profile::Modbus(sdm)) = profile::lookup("sdm630") else {
            panic!("sdm630 is a Modbus profile");
        };
        let plan = sdm.read_plan();
        assert_eq!(plan.len(), 1, "one request reads the whole meter: {plan:?}");
        let mut blocks: Vec<(ReadBlock, Vec<u16>)> = Vec::new();
        for block in plan {
            let words = ctx
                .read_input_registers(block.start, block.count)
                .await
                .expect("io")
                .expect("no exception");
            blocks.push((block, words));
        }
        let samples = sdm.decode(&blocks);
        let get = |m| {
            samples
                .iter()
                .find(|s: &&Sample| s.metric == m)
                .map(|s| s.value)
                .expect("metric")
        };
        // float32 carries about 7 significant digits.
        assert!((get(Metric::PowerW) - state.power_w).abs() < 0.01);
        assert!((get(Metric::EnergyImportWh) - state.import_wh).abs() < 2.0);
        assert!((get(Metric::EnergyExportWh) - state.export_wh).abs() < 2.0);
        assert!((get(Metric::VoltageL3V) - state.voltage_v).abs() < 0.001);
        assert!((get(Metric::FrequencyHz) - state.frequency_hz).abs() < 0.001);
        assert!((get(Metric::CurrentA) - 1520.5 / 231.5).abs() < 0.001);
    }

    #[tokio::test]
    async fn bad_requests_get_modbus_exceptions() {
        let addr = serve(RegisterImage::new(), 1).await;
        let mut ctx = connect(addr, 1).await;
        assert_eq!(
            ctx.read_holding_registers(0, 125)
                .await
                .expect("io")
                .map(|w| w.len()),
            Ok(125)
        );
        assert_eq!(
            ctx.read_holding_registers(0, 126).await.expect("io"),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            ctx.read_input_registers(0xFFFF, 2).await.expect("io"),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            ctx.read_input_registers(0xFFFF, 1)
                .await
                .expect("io")
                .map(|w| w.len()),
            Ok(1)
        );
        assert_eq!(
            ctx.read_coils(0, 8).await.expect("io"),
            Err(ExceptionCode::IllegalFunction)
        );
        let mut other = connect(addr, 9).await;
        assert_eq!(
            other.read_holding_registers(0, 1).await.expect("io"),
            Err(ExceptionCode::GatewayTargetDevice)
        );
    }
}
