//! `communalia probe` as an installer runs it against hardware: the project's
//! SunSpec simulator over Modbus TCP, an Eastron SDM120 served by pymodbus on a
//! serial line (a socat pseudo-terminal pair), and addresses where nothing
//! answers. What it suggests must be a configuration `check-config` accepts.

use sensors::sim::sunspec::{InverterState, build_inverter_image, write_inverter};
use sensors::sim::{RegisterImage, serve_modbus_tcp};
use tokio::net::TcpListener;

use crate::cli::run_cli;
use crate::support::*;

/// The simulated SunSpec inverter (models 1 and 103 at 40000) producing 4321 W,
/// on a free port.
async fn sunspec_inverter() -> u16 {
    let mut image = RegisterImage::default();
    build_inverter_image(&mut image, 40000);
    write_inverter(
        &mut image,
        40000,
        &InverterState {
            power_w: 4321.0,
            energy_wh: 1_000_000.0,
            voltage_v: 231.0,
            frequency_hz: 50.0,
            temperature_c: 41.0,
            status: 4,
        },
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sim");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(serve_modbus_tcp(listener, image.shared(), 1));
    port
}

/// `communalia probe ARGS…`, run off the test's runtime (the simulators live on it).
async fn probe(args: &[&str]) -> std::process::Output {
    let mut all = vec!["probe".to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = all.iter().map(String::as_str).collect();
        run_cli(&args, "")
    })
    .await
    .expect("probe ran")
}

/// The `[[device]]` block the probe printed, to the end of its output.
fn suggested_block(stdout: &str) -> &str {
    let at = stdout
        .find("[[device]]")
        .unwrap_or_else(|| panic!("no [[device]] block in:\n{stdout}"));
    &stdout[at..]
}

/// A minimal site with `block` pasted at its end, checked by `check-config`.
fn check_pasted(dir: &TempDir, block: &str) -> String {
    let path = dir.path().join("site.toml");
    std::fs::write(
        &path,
        format!(
            "[site]\nname = \"Atelier\"\nlatitude = 45.0\nlongitude = 5.0\n\n[storage]\ndir = \"{}\"\n\n{block}",
            dir.path().display()
        ),
    )
    .expect("write config");
    let out = run_cli(&["check-config", &path.to_string_lossy()], "");
    assert!(
        out.status.success(),
        "check-config refused the pasted block:\n{block}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_finds_the_sunspec_models_and_suggests_a_block_check_config_accepts() {
    let port = sunspec_inverter().await;
    let out = probe(&[
        &format!("modbus-tcp://127.0.0.1:{port}/1"),
        "--timeout",
        "2s",
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let has = |text: &str| lines.iter().any(|l| l.contains(text));
    assert!(has("SunSpec map at 40000"), "{stdout}");
    assert!(
        has("device: Communalia SimInverter (serial SIM-0001"),
        "{stdout}"
    );
    assert!(has("model 1 Common at 40002, L = 66"), "{stdout}");
    assert!(
        has("model 103 Inverter (Three Phase) at 40070, L = 50"),
        "{stdout}"
    );
    // The values beside the registers they came from: W = 4321 (0x10E1), W_SF 0.
    assert!(
        has("power_w 4321 holding 40084 = [10E1], SF 40085 = [0000] (103.W)"),
        "{stdout}"
    );

    let block = suggested_block(&stdout);
    for line in [
        "id = \"communalia-siminverter\"",
        "name = \"Communalia SimInverter\"",
        "profile = \"sunspec\"",
        &format!("modbus = {{ host = \"127.0.0.1\", port = {port}, unit = 1 }}"),
    ] {
        assert!(block.contains(line), "{line} missing from\n{block}");
    }
    assert!(
        block.contains("role = \"pv\""),
        "an inverter is pv: {block}"
    );
    let dir = TempDir::new("probe-paste");
    let checked = check_pasted(&dir, block);
    assert!(checked.contains("ok (1 devices"), "{checked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_says_clearly_when_nothing_answers() {
    // A port where nothing listens.
    let port = free_port();
    let target = format!("modbus-tcp://127.0.0.1:{port}/1");
    let out = probe(&[&target, "--timeout", "500ms"]).await;
    assert!(!out.status.success(), "nothing answers, yet it succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("cannot connect"),
        "{err}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("[[device]]"),
        "no block for nothing"
    );

    // A Modbus server that is not SunSpec: the simulator with an empty image.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let empty = listener.local_addr().expect("addr").port();
    tokio::spawn(serve_modbus_tcp(
        listener,
        RegisterImage::default().shared(),
        1,
    ));
    let out = probe(&[&format!("modbus-tcp://127.0.0.1:{empty}")]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no SunSpec marker at 40000, 0 or 50000"),
        "{err}"
    );

    // An address that is not one, and a serial port that does not exist.
    let out = probe(&["http://192.168.1.20"]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("http://192.168.1.20") && err.contains("modbus-tcp://"),
        "{err}"
    );
    let out = probe(&["serial:///dev/ttyCOMMUNALIA-no-such-port?baud=9600&unit=1"]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot open serial port /dev/ttyCOMMUNALIA-no-such-port"),
        "{err}"
    );
}

/// What the probe says about `serial://PATH`, with the path itself taken out so
/// that two answers can be compared.
async fn probe_serial_answer(path: &str) -> String {
    let out = probe(&[
        &format!("serial://{path}?baud=9600&unit=1"),
        "--timeout",
        "200ms",
    ])
    .await;
    assert!(!out.status.success(), "{path} was probed as a serial port");
    String::from_utf8_lossy(&out.stderr).replace(path, "PATH")
}

/// The attack seen: `serial:///etc/shadow` opened the file read-write, as root
/// ("Not a typewriter"), and a file that does not exist got another answer, so the
/// probe told which files exist. Now any path that is not a serial device is
/// refused before anything is opened, with the same words whether or not it
/// exists; the same goes for `serial.path` in the configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_opens_serial_ports_only() {
    let dir = TempDir::new("probe-paths");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "root:$6$not-a-serial-port\n").expect("write");
    let missing = dir.path().join("missing");
    let secret = secret.to_string_lossy().into_owned();
    let missing = missing.to_string_lossy().into_owned();

    let refused = probe_serial_answer(&secret).await;
    assert!(refused.contains("`PATH` is not a serial port"), "{refused}");
    assert!(!refused.contains("typewriter"), "it was opened: {refused}");
    assert_eq!(probe_serial_answer(&missing).await, refused);
    assert_eq!(probe_serial_answer("/etc/shadow").await, refused);
    assert_eq!(
        probe_serial_answer("/etc/communalia-no-such-file").await,
        refused
    );
    // Lexical tricks do not reach the file either.
    assert_eq!(
        probe_serial_answer("/dev/ttyS0/../../etc/shadow").await,
        refused
    );
    assert_eq!(
        probe_serial_answer("/dev/serial/by-id/../../../etc/shadow").await,
        refused
    );
    assert_eq!(
        std::fs::read_to_string(&secret).expect("read"),
        "root:$6$not-a-serial-port\n"
    );

    // The configuration says the same of `serial.path`, naming the device and key.
    let check = |path: &str| {
        let config = dir.path().join("site.toml");
        std::fs::write(
            &config,
            format!(
                "[site]\nname = \"x\"\nlatitude = 1.0\nlongitude = 2.0\n[storage]\ndir = \"{}\"\n\
                 [[device]]\nid = \"meter\"\nrole = \"load\"\nprofile = \"sdm120\"\n\
                 serial = {{ path = \"{path}\", unit = 2 }}\n",
                dir.path().display()
            ),
        )
        .expect("write the configuration");
        let out = run_cli(&["check-config", &config.to_string_lossy()], "");
        assert!(!out.status.success(), "{path} accepted as serial.path");
        String::from_utf8_lossy(&out.stderr).replace(path, "PATH")
    };
    let refused = check(&secret);
    assert!(
        refused.contains("meter")
            && refused.contains("serial.path")
            && refused.contains("not a serial port"),
        "{refused}"
    );
    assert_eq!(check(&missing), refused);
}

/// Over RS-485 as an installer meets it: `serial://` with the line settings and
/// the unit, a fixed-register profile, and the block with `serial = {…}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_reads_an_sdm120_on_a_serial_line() {
    let dir = TempDir::new("probe-rtu");
    // Two SDM120 on the bus: unit 2 draws 150 W, unit 5 2300 W.
    let Some(bus) =
        tokio::task::block_in_place(|| testkit::rtu::Sdm120Bus::start(dir.path(), 19200))
    else {
        return;
    };
    let node_end = &bus.node_end;

    let target = format!("serial://{}?baud=19200&unit=5", node_end.display());
    let out = probe(&[&target, "--profile", "sdm120", "--timeout", "1s"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let power = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("power_w "))
        .unwrap_or_else(|| panic!("no power_w in\n{stdout}"));
    let words: Vec<&str> = power.split_whitespace().collect();
    assert_eq!(words.get(1), Some(&"2300"), "{power}");
    // float32 2300.0 is 0x450FC000, high word first, at input register 0x000C.
    assert!(power.contains("input 12 = [450F C000]"), "{power}");

    let block = suggested_block(&stdout);
    assert!(block.contains("profile = \"sdm120\""), "{block}");
    assert!(
        block.contains(&format!(
            "serial = {{ path = \"{}\", baud = 19200, parity = \"none\", stop_bits = 1, unit = 5 }}",
            node_end.display()
        )),
        "{block}"
    );
    let checked = check_pasted(&dir, block);
    assert!(checked.contains("ok (1 devices"), "{checked}");
}
