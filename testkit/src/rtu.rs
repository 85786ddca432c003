//! An RS-485 bus on this machine: a pseudo-terminal pair made by socat, with a
//! pymodbus RTU server on one end (`peers/rtu_server.py`: two Eastron SDM120, unit 2
//! drawing 150 W and unit 5 2300 W) and the other end for the code under test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::peers::{have_file, have_python};
use crate::process::Peer;

const SOCAT: &str = "/usr/bin/socat";

/// The bus; both processes end when it is dropped.
#[derive(Debug)]
pub struct Sdm120Bus {
    /// The end a node or probe opens, as it would open `/dev/ttyUSB0`.
    pub node_end: PathBuf,
    _server: Peer,
    _socat: Peer,
}

impl Sdm120Bus {
    /// Starts the bus with its links in `dir` at `baud` 8N1 (a pseudo-terminal
    /// takes no parity bit: tcsetattr refuses PARENB on it). `None`, after the
    /// skip line, when socat, pymodbus or pyserial is missing.
    pub fn start(dir: &Path, baud: u32) -> Option<Sdm120Bus> {
        if !have_file(SOCAT, "socat (apt-get install socat)")
            || !have_python("pymodbus", "pymodbus>=3.9,<4")
            || !have_python("serial", "pyserial")
        {
            return None;
        }
        let (node_end, device_end) = (dir.join("node"), dir.join("device"));
        let socat = Peer::spawn(
            Command::new(SOCAT)
                .args([
                    "-d",
                    &format!("pty,raw,echo=0,link={}", node_end.display()),
                    &format!("pty,raw,echo=0,link={}", device_end.display()),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .unwrap_or_else(|e| panic!("starting socat: {e}"));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !(node_end.exists() && device_end.exists()) {
            assert!(Instant::now() < deadline, "socat made no pty pair");
            std::thread::sleep(Duration::from_millis(50));
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/rtu_server.py");
        let mut server = Peer::spawn(
            Command::new("python3")
                .args([
                    script,
                    &device_end.to_string_lossy(),
                    &baud.to_string(),
                    "none",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        )
        .unwrap_or_else(|e| panic!("starting the pymodbus RTU server: {e}"));
        let line = server.first_line(Duration::from_secs(30));
        assert_eq!(line, "ready", "the pymodbus RTU server said {line:?}");
        Some(Sdm120Bus {
            node_end,
            _server: server,
            _socat: socat,
        })
    }
}
