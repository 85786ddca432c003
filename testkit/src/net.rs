//! Ports on the loopback interface.

use std::time::Duration;

/// A TCP port on 127.0.0.1 that was free a moment ago: the kernel picked it for a
/// listener that is closed again at once. Servers the tests start themselves bind
/// `127.0.0.1:0` instead; this is for peers that must be told a port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
}

/// Whether something accepts TCP connections on `addr` (`host:port`) within 500 ms.
pub fn tcp_open(addr: &str) -> bool {
    addr.parse()
        .ok()
        .and_then(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_millis(500)).ok())
        .is_some()
}
