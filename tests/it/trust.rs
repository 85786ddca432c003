//! Nobody on the network fakes a meter or a command (DESIGN.md §9): attacks on the
//! node's MQTT side, each reproduced as an attacker would try it, and refused.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::cli::{run_cli, stdout_of};
use crate::support::*;

/// A client on `port` logged in as `login` (anonymous without), whose event loop
/// runs in the background; `None` when the broker refuses the connection.
async fn client(port: u16, id: &str, login: Option<(&str, &str)>) -> Option<AsyncClient> {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    if let Some((user, password)) = login {
        opts.set_credentials(user, password);
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let accepted = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    return ack.code == rumqttc::ConnectReturnCode::Success;
                }
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await
    .unwrap_or(false);
    if !accepted {
        return None;
    }
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    Some(client)
}

async fn publish(client: &AsyncClient, topic: &str, payload: &str) {
    client
        .publish(topic, QoS::AtLeastOnce, false, payload.to_string())
        .await
        .expect("publish");
}

fn device_power(live: &serde_json::Value, id: &str) -> Option<f64> {
    live["devices"].as_array()?.iter().find(|d| d["id"] == id)?["power_w"].as_f64()
}

/// A site with a battery and a service's sub-meter on the embedded broker at
/// `port`: `mqtt_extra` is added to its `[mqtt]` section, `meter_mqtt` to the
/// sub-meter's `mqtt` table and `meter_extra` to the sub-meter's keys.
fn site(dir: &Path, port: u16, mqtt_extra: &str, meter_mqtt: &str, meter_extra: &str) -> String {
    let config = format!(
        "[site]\nname = \"x\"\nlatitude = 1.0\nlongitude = 2.0\n\
         [storage]\ndir = \"{dir}\"\n\
         [mqtt]\nbroker = \"embedded\"\nembedded_bind = \"127.0.0.1:{port}\"\n{mqtt_extra}\n\
         [[device]]\nid = \"battery\"\nrole = \"battery\"\nprofile = \"generic-json\"\n\
         mqtt = {{ topic = \"t/battery\", fields = {{ power_w = \"p\", soc_pct = \"soc\" }} }}\n\
         [[device]]\nid = \"laundry-meter\"\nrole = \"load\"\nprofile = \"generic-json\"\n\
         mqtt = {{ topic = \"t/laundry\", fields = {{ power_w = \"p\", energy_import_wh = \"e\" }}{meter_mqtt} }}\n{meter_extra}\n\
         [[service]]\nid = \"laundry\"\nmeter = \"laundry-meter\"\ntier = 1\n\
         [[member]]\nname = \"ivo\"\nroles = [\"installer\"]\n",
        dir = dir.display()
    );
    let path = dir.join("site.toml");
    std::fs::write(&path, config).expect("write the configuration");
    path.to_string_lossy().into_owned()
}

/// The largest `power_w` the history holds for `device`, through the installer's SQL.
async fn largest_power_in_history(base: &str, token: &str, device: &str) -> f64 {
    let reply: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/api/sql"))
        .bearer_auth(token)
        .json(&serde_json::json!({"sql": format!(
            "SELECT max(abs(value)) AS m FROM readings WHERE device = '{device}' AND metric = 'power_w'"
        )}))
        .send()
        .await
        .expect("sql")
        .json()
        .await
        .expect("sql json");
    reply["rows"][0]["m"]
        .as_f64()
        .unwrap_or_else(|| panic!("no maximum in {reply}"))
}

/// The attack seen on the LAN: a battery reporting 99,999 W at 100 %, a sub-meter
/// reporting 1e300 W, a counter sent backwards. None of it reaches the wall, the
/// allocation or the history; each is counted with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implausible_readings_never_reach_the_wall_or_the_history() {
    let dir = TempDir::new("implausible");
    let port = free_port();
    let cfg = site(dir.path(), port, "", "", "");
    let node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    let token = stdout_of(
        &run_cli(&["token", "create", "--user", "ivo", "--config", &cfg], ""),
        "token create",
    );
    let device = client(port, "plausible-test", None)
        .await
        .expect("loopback broker without accounts");
    publish(&device, "t/battery", r#"{"p": 1200, "soc": 55}"#).await;
    publish(&device, "t/laundry", r#"{"p": 800, "e": 5000}"#).await;
    wait_live(&node, Duration::from_secs(20), "the honest readings", |l| {
        // The generic profile counts power drawn: the battery is charging.
        device_power(l, "battery") == Some(-1200.0)
            && device_power(l, "laundry-meter") == Some(800.0)
    })
    .await;

    publish(&device, "t/battery", r#"{"p": 99999, "soc": 100}"#).await;
    publish(&device, "t/laundry", r#"{"p": 1e300, "e": 5001}"#).await;
    publish(&device, "t/laundry", r#"{"p": 750, "e": 4000}"#).await;
    publish(&device, "t/battery", r#"{"p": 1100, "soc": 101}"#).await;
    // An honest message after them shows they were all heard, in order.
    publish(&device, "t/laundry", r#"{"p": 640, "e": 5002}"#).await;
    let live = wait_live(
        &node,
        Duration::from_secs(20),
        "the last honest reading",
        |l| device_power(l, "laundry-meter") == Some(640.0),
    )
    .await;
    assert_eq!(device_power(&live, "battery"), Some(-1200.0), "{live:#}");
    let served = service(&live, "laundry");
    assert!(close(&served["demand_w"], 640.0), "{live:#}");

    let metrics = get_text(&format!("{}/metrics", node.base)).await;
    for line in [
        r#"communalia_payloads_rejected_total{device="battery",reason="power_out_of_bounds"} 1"#,
        r#"communalia_payloads_rejected_total{device="battery",reason="soc_out_of_bounds"} 1"#,
        r#"communalia_payloads_rejected_total{device="laundry-meter",reason="power_out_of_bounds"} 1"#,
        r#"communalia_payloads_rejected_total{device="laundry-meter",reason="counter_backwards"} 1"#,
    ] {
        assert!(metrics.contains(line), "no `{line}` in\n{metrics}");
    }
    assert_eq!(
        largest_power_in_history(&node.base, &token, "battery").await,
        1200.0
    );
    assert_eq!(
        largest_power_in_history(&node.base, &token, "laundry-meter").await,
        800.0
    );
}

/// A flood from one device is cut to its rate; what passes is still read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_device_is_held_to_its_rate() {
    let dir = TempDir::new("flood");
    let port = free_port();
    let cfg = site(dir.path(), port, "", "", "max_messages_per_s = 2");
    let node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    let device = client(port, "flood-test", None).await.expect("client");
    // 2 a second with a burst of 10: of 60 sent at once, about 10 pass.
    for i in 0..60 {
        publish(
            &device,
            "t/laundry",
            &format!(r#"{{"p": {}, "e": {i}}}"#, 100 + i),
        )
        .await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let rejected = loop {
        let metrics = get_text(&format!("{}/metrics", node.base)).await;
        let n = metrics
            .lines()
            .find(|l| {
                l.starts_with(
                    r#"communalia_payloads_rejected_total{device="laundry-meter",reason="rate_limited"}"#,
                )
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if n >= 45.0 || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        (45.0..=50.0).contains(&rejected),
        "{rejected} of 60 rejected for their rate (10, give or take one, may pass)"
    );
}

/// A broker bound beyond loopback with no accounts would let anyone on the LAN
/// publish readings and commands: the configuration is refused, naming the key.
#[test]
fn a_broker_open_to_the_network_without_accounts_is_refused() {
    let dir = TempDir::new("open-broker");
    let cfg = site(dir.path(), 1883, "", "", "");
    let path = dir.path().join("open.toml");
    let open = std::fs::read_to_string(&cfg)
        .expect("read")
        .replace("127.0.0.1:1883", "0.0.0.0:1883");
    std::fs::write(&path, open).expect("write");
    let out = run_cli(&["check-config", &path.to_string_lossy()], "");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {err}");
    assert!(err.contains("embedded_bind"), "{err}");
    assert!(
        err.contains("line 9"),
        "names the line of embedded_bind: {err}"
    );
    // With an account it starts.
    let with_accounts = std::fs::read_to_string(&path)
        .expect("read")
        .replace(
            "embedded_bind = \"0.0.0.0:1883\"",
            "embedded_bind = \"0.0.0.0:1883\"\nusers = [{ name = \"meters\", password = \"s3cret-enough\" }]",
        );
    std::fs::write(&path, with_accounts).expect("write");
    let out = run_cli(&["check-config", &path.to_string_lossy()], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// With accounts, an anonymous client (or a wrong password) is turned away by the
/// embedded broker, while a device with its own password is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_clients_cannot_publish() {
    let dir = TempDir::new("accounts");
    let port = free_port();
    let cfg = site(
        dir.path(),
        port,
        "users = [{ name = \"meters\", password = \"s3cret-enough\" }]",
        ", username = \"meters\"",
        "",
    );
    let node = spawn(&["run", "--config", &cfg, "--bind", "127.0.0.1:0"]);
    assert!(
        client(port, "anonymous", None).await.is_none(),
        "an anonymous client was let in"
    );
    assert!(
        client(port, "guesser", Some(("meters", "s3cret")))
            .await
            .is_none(),
        "a wrong password was let in"
    );
    let meter = client(port, "meter", Some(("meters", "s3cret-enough")))
        .await
        .expect("the device's own account");
    publish(&meter, "t/laundry", r#"{"p": 321, "e": 1}"#).await;
    wait_live(
        &node,
        Duration::from_secs(20),
        "the device's reading",
        |l| device_power(l, "laundry-meter") == Some(321.0),
    )
    .await;
}

/// The access rules `communalia mqtt acl` writes, on a real Mosquitto started with
/// them: a device cannot write another's topic, a relay cannot write a command,
/// the node still reads everything and alone commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_enforces_the_access_rules_the_node_writes() {
    let mosquitto = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let passwd = ["/usr/bin/mosquitto_passwd", "/usr/sbin/mosquitto_passwd"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let (Some(mosquitto), Some(passwd)) = (mosquitto, passwd) else {
        return skip("mosquitto with mosquitto_passwd (apt-get install mosquitto)");
    };
    let dir = TempDir::new("acl");
    let port = free_port();
    let config = format!(
        "[site]\nname = \"x\"\nlatitude = 1.0\nlongitude = 2.0\n\
         [storage]\ndir = \"{dir}\"\n\
         [mqtt]\nbroker = \"mqtt://127.0.0.1:{port}\"\nusername = \"node\"\npassword = \"node-pw\"\n\
         [[device]]\nid = \"school\"\nrole = \"load\"\nprofile = \"shelly-gen2-em\"\n\
         mqtt = {{ topic = \"shellypro3em-school\" }}\n\
         [[device]]\nid = \"clinic\"\nrole = \"load\"\nprofile = \"shelly-gen2-em\"\n\
         mqtt = {{ topic = \"shellypro3em-clinic\" }}\n\
         [[service]]\nid = \"school\"\nmeter = \"school\"\ntier = 1\n\
         actuation = {{ topic = \"communalia/cmd/school\", reader = \"school-relay\" }}\n\
         [[service]]\nid = \"clinic\"\nmeter = \"clinic\"\ntier = 1\n",
        dir = dir.path().display()
    );
    let cfg = dir.path().join("site.toml");
    std::fs::write(&cfg, config).expect("write");
    let acl = dir.path().join("communalia.acl");
    let out = run_cli(
        &[
            "mqtt",
            "acl",
            "--config",
            &cfg.to_string_lossy(),
            "--out",
            &acl.to_string_lossy(),
        ],
        "",
    );
    let setup = stdout_of(&out, "mqtt acl");
    assert!(setup.contains("allow_anonymous false"), "{setup}");
    assert!(setup.contains("max_queued_messages"), "{setup}");
    let passwords = dir.path().join("passwd");
    for (i, (user, password)) in [
        ("node", "node-pw"),
        ("school", "school-pw"),
        ("clinic", "clinic-pw"),
        ("school-relay", "relay-pw"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut args = vec!["-b"];
        if i == 0 {
            args.insert(0, "-c");
        }
        let passwords = passwords.to_string_lossy();
        args.extend([passwords.as_ref(), user, password]);
        let status = Command::new(passwd)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("mosquitto_passwd");
        assert!(status.success(), "mosquitto_passwd {args:?}");
    }
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\npersistence false\n",
            passwords.display(),
            acl.display()
        ),
    )
    .expect("write mosquitto.conf");
    let _broker = Peer::spawn(
        Command::new(mosquitto)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .expect("start mosquitto");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !tcp_open(&format!("127.0.0.1:{port}")) {
        assert!(Instant::now() < deadline, "mosquitto did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        client(port, "anon", None).await.is_none(),
        "anonymous let in"
    );

    let node = spawn(&[
        "run",
        "--config",
        &cfg.to_string_lossy(),
        "--bind",
        "127.0.0.1:0",
    ]);
    let school = client(port, "school", Some(("school", "school-pw")))
        .await
        .expect("school's account");
    let relay = client(port, "school-relay", Some(("school-relay", "relay-pw")))
        .await
        .expect("the relay's account");
    let em = |w: f64| format!(r#"{{"total_act_power": {w}}}"#);
    // Mosquitto may take the node's subscription a moment after it connects.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        publish(&school, "shellypro3em-school/status/em:0", &em(500.0)).await;
        let live = get_json(&format!("{}/api/live", node.base)).await;
        if device_power(&live, "school") == Some(500.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the node never read school: {live:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The school's meter forges the clinic's, then its own honest value follows.
    publish(&school, "shellypro3em-clinic/status/em:0", &em(9000.0)).await;
    publish(&school, "shellypro3em-school/status/em:0", &em(510.0)).await;
    wait_live(
        &node,
        Duration::from_secs(20),
        "school's next reading",
        |l| device_power(l, "school") == Some(510.0),
    )
    .await;
    let live = get_json(&format!("{}/api/live", node.base)).await;
    assert_eq!(
        device_power(&live, "clinic"),
        None,
        "the forged clinic reading got through: {live:#}"
    );

    // The relay listens to its command, and cannot give one itself.
    let (watch_tx, mut watch_rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    let mut opts = MqttOptions::new("node-watch", "127.0.0.1", port);
    opts.set_credentials("node", "node-pw");
    let (watcher, mut events) = AsyncClient::new(opts, 64);
    tokio::spawn(async move {
        while let Ok(event) = events.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = event {
                let _ =
                    watch_tx.send((p.topic.clone(), String::from_utf8_lossy(&p.payload).into()));
            }
        }
    });
    watcher
        .subscribe("communalia/cmd/#", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    tokio::time::sleep(Duration::from_millis(500)).await;
    publish(
        &relay,
        "communalia/cmd/school",
        r#"{"state":"on","allowed_w":99999}"#,
    )
    .await;
    publish(
        &watcher,
        "communalia/cmd/school",
        r#"{"state":"off","allowed_w":0}"#,
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, watch_rx.recv()).await {
        seen.push(msg);
        if seen.iter().any(|(_, p)| p.contains("\"off\"")) {
            break;
        }
    }
    assert!(
        seen.iter().any(|(_, p)| p.contains("\"off\"")),
        "the node's own command did not pass: {seen:?}"
    );
    assert!(
        !seen.iter().any(|(_, p)| p.contains("99999")),
        "the relay's forged command passed: {seen:?}"
    );
}
