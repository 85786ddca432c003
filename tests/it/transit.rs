//! In transit (DESIGN.md §10): the node binary over HTTPS, checked with curl and
//! OpenSSL (programs we did not write) against the certificate it made or the one
//! an installer gave it, the plain port redirecting and refusing, `Secure`
//! cookies, Chromium trusting a pinned certificate; and the node's MQTT client
//! reading a Mosquitto over TLS whose certificate OpenSSL made.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use testkit::process::Reaper;

use crate::cli::{run_cli, stdout_of};
use crate::support::*;

/// Runs a short-lived program (curl, openssl) to its end, marked as the test's.
fn run(program: &str, args: &[&str]) -> Output {
    let reaper = Reaper::new();
    let mut command = Command::new(program);
    reaper.prepare(&mut command);
    command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"))
}

/// Whether `program` runs here; says it is skipped when not.
fn have(program: &str) -> bool {
    let ok = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        || Command::new(program)
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        skip(program);
    }
    ok
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A site with an installer `ivo`, web on `plain` and HTTPS on `https` with `tls`
/// (a TOML value).
fn site(dir: &Path, plain: u16, https: u16, tls: &str) -> String {
    let config = format!(
        "[site]\nname = \"Les Tilleuls\"\nlatitude = 1.0\nlongitude = 2.0\ntimezone = \"Europe/Paris\"\n\
         [web]\nbind = \"127.0.0.1:{plain}\"\nhttps_bind = \"127.0.0.1:{https}\"\ntls = {tls}\n\
         [storage]\ndir = \"{}\"\n\
         [[member]]\nname = \"ivo\"\nroles = [\"installer\"]\n",
        dir.join("data").display()
    );
    let path = dir.join("site.toml");
    std::fs::write(&path, config).expect("write the configuration");
    path.to_string_lossy().into_owned()
}

/// A node started with `args` that serves HTTPS: its process, with `base` the
/// HTTPS address, and the lines it printed up to its public key's fingerprint.
fn spawn_https(args: &[&str]) -> (NodeProc, Vec<String>) {
    let mut node = Peer::spawn(
        Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    )
    .expect("spawn communalia");
    let stdout = node.child().stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    let mut base = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(i) = line.find("https://") {
                    base = Some(line[i..].trim().trim_end_matches('/').to_string());
                }
                let done = line.contains("public key SHA-256");
                lines.push(line);
                if done && let Some(base) = base.take() {
                    return (
                        NodeProc {
                            node,
                            base,
                            _lines: rx,
                        },
                        lines,
                    );
                }
            }
            Err(_) => {
                let _ = node.child().kill();
                let status = node.child().wait();
                panic!(
                    "communalia {args:?} did not announce HTTPS within 30 s ({status:?}): {lines:?}"
                );
            }
        }
    }
}

/// The value printed after `label` at start.
fn printed(lines: &[String], label: &str) -> String {
    lines
        .iter()
        .find_map(|l| l.split_once(label).map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| panic!("`{label}` not printed: {lines:?}"))
}

/// `Set-Cookie` lines of an `curl -i` answer starting with `name=`.
fn set_cookie<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    answer.lines().find_map(|l| {
        let (header, value) = l.split_once(':')?;
        (header.eq_ignore_ascii_case("set-cookie") && value.trim().starts_with(&format!("{name}=")))
            .then(|| value.trim())
    })
}

fn status_of(answer: &str) -> u16 {
    answer
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer}"))
}

/// The node's own certificate, end to end: made at first start (its key 0600),
/// its fingerprints printed as OpenSSL computes them, trusted by curl given the
/// certificate or pinning its key and by nothing else, kept across a restart; the
/// plain port redirects pages and refuses a sign-in without creating a session;
/// cookies over HTTPS are `Secure`; `/installer` shows the fingerprint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_the_certificate_the_node_makes() {
    if !have("curl") || !have("openssl") {
        return;
    }
    let dir = TempDir::new("https-auto");
    let (plain, https) = (free_port(), free_port());
    let cfg = site(dir.path(), plain, https, "\"auto\"");
    let password = "a long enough password";
    stdout_of(
        &run_cli(
            &[
                "user",
                "add",
                "ivo",
                "--role",
                "installer",
                "--config",
                &cfg,
            ],
            &format!("{password}\n"),
        ),
        "user add",
    );
    let (node, lines) = spawn_https(&["run", "--config", &cfg]);
    assert_eq!(node.base, format!("https://127.0.0.1:{https}"));
    let cert = dir.path().join("data/tls/node-cert.pem");
    let key = dir.path().join("data/tls/node-key.pem");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).expect("key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the key is the node's alone: {mode:o}");
    }
    let cert_s = cert.to_string_lossy().into_owned();

    // The fingerprints printed are the ones OpenSSL computes from the file.
    let fingerprint = printed(&lines, "SHA-256 fingerprint:");
    let openssl_fp = text(&run(
        "openssl",
        &["x509", "-noout", "-fingerprint", "-sha256", "-in", &cert_s],
    ));
    assert_eq!(
        openssl_fp.trim().rsplit('=').next(),
        Some(fingerprint.as_str()),
        "{openssl_fp}"
    );
    let spki = printed(&lines, "public key SHA-256 (base64):");
    let pubkey = dir.path().join("pub.der");
    let pubkey_pem = run("openssl", &["x509", "-noout", "-pubkey", "-in", &cert_s]);
    std::fs::write(dir.path().join("pub.pem"), &pubkey_pem.stdout).expect("pub.pem");
    let der = run(
        "openssl",
        &[
            "pkey",
            "-pubin",
            "-in",
            &dir.path().join("pub.pem").to_string_lossy(),
            "-outform",
            "DER",
            "-out",
            &pubkey.to_string_lossy(),
        ],
    );
    assert!(der.status.success(), "{der:?}");
    let digest = dir.path().join("pub.sha256").to_string_lossy().into_owned();
    let hashed = run(
        "openssl",
        &[
            "dgst",
            "-sha256",
            "-binary",
            "-out",
            &digest,
            &pubkey.to_string_lossy(),
        ],
    );
    assert!(hashed.status.success(), "{hashed:?}");
    let openssl_spki = text(&run("openssl", &["base64", "-A", "-in", &digest]))
        .trim()
        .to_string();
    assert_eq!(spki, openssl_spki);
    // The certificate names what the node is reached by.
    let names = text(&run(
        "openssl",
        &["x509", "-noout", "-ext", "subjectAltName", "-in", &cert_s],
    ));
    assert!(
        names.contains("DNS:localhost") && names.contains("IP Address:127.0.0.1"),
        "{names}"
    );

    let live = format!("{}/api/live", node.base);
    // curl trusts it given the certificate, or pinning its public key ...
    let with_cert = run("curl", &["-sS", "--cacert", &cert_s, &live]);
    assert!(with_cert.status.success(), "{with_cert:?}");
    let body: serde_json::Value = serde_json::from_slice(&with_cert.stdout).expect("JSON");
    assert!(body["site"].is_object(), "{body}");
    let pin = format!("sha256//{spki}");
    let pinned = run("curl", &["-sS", "-k", "--pinnedpubkey", &pin, &live]);
    assert!(pinned.status.success(), "{pinned:?}");
    // ... and not otherwise: not with the system's authorities, nor with another pin.
    let unknown = run("curl", &["-sS", &live]);
    assert_eq!(
        unknown.status.code(),
        Some(60),
        "an unknown issuer: {unknown:?}"
    );
    let other_pin = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let wrong = run("curl", &["-sS", "-k", "--pinnedpubkey", other_pin, &live]);
    assert_eq!(wrong.status.code(), Some(90), "another key: {wrong:?}");

    // The plain port redirects a page to the same path over HTTPS ...
    let redirect = text(&run(
        "curl",
        &[
            "-sS",
            "-i",
            &format!("http://127.0.0.1:{plain}/ledger?lang=en"),
        ],
    ));
    assert_eq!(status_of(&redirect), 307, "{redirect}");
    assert!(
        redirect
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("location:")
                && l.trim()
                    .ends_with(&format!("https://127.0.0.1:{https}/ledger?lang=en"))),
        "{redirect}"
    );
    // ... which curl follows to the page, trusting the certificate.
    let followed = run(
        "curl",
        &[
            "-sS",
            "-L",
            "--cacert",
            &cert_s,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{url_effective}",
            &format!("http://127.0.0.1:{plain}/api/live"),
        ],
    );
    assert_eq!(
        text(&followed),
        format!("200 https://127.0.0.1:{https}/api/live"),
        "{followed:?}"
    );
    // A sign-in in clear is refused, not honoured: no session, whatever the password.
    let login_form = format!("name=ivo&password={}&csrf=x", password.replace(' ', "+"));
    let plain_login = text(&run(
        "curl",
        &[
            "-sS",
            "-i",
            "-X",
            "POST",
            "--cookie",
            "communalia_login=x",
            "--data",
            &login_form,
            &format!("http://127.0.0.1:{plain}/login"),
        ],
    ));
    assert_eq!(status_of(&plain_login), 403, "{plain_login}");
    assert!(
        set_cookie(&plain_login, "communalia_session").is_none(),
        "{plain_login}"
    );
    assert!(
        plain_login.contains(&format!("https://127.0.0.1:{https}/")),
        "the refusal says where to go: {plain_login}"
    );

    // Over HTTPS: the sign-in form's cookie and the session cookie are Secure.
    let form = text(&run(
        "curl",
        &[
            "-sS",
            "-i",
            "--cacert",
            &cert_s,
            &format!("{}/login", node.base),
        ],
    ));
    let login_cookie = set_cookie(&form, "communalia_login").unwrap_or_else(|| panic!("{form}"));
    assert!(login_cookie.contains("; Secure"), "{login_cookie}");
    let csrf = login_cookie
        .trim_start_matches("communalia_login=")
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    let signed_in = text(&run(
        "curl",
        &[
            "-sS",
            "-i",
            "--cacert",
            &cert_s,
            "--cookie",
            &format!("communalia_login={csrf}"),
            "--data",
            &format!(
                "name=ivo&password={}&csrf={csrf}",
                password.replace(' ', "+")
            ),
            &format!("{}/login", node.base),
        ],
    ));
    assert_eq!(status_of(&signed_in), 303, "{signed_in}");
    let session =
        set_cookie(&signed_in, "communalia_session").unwrap_or_else(|| panic!("{signed_in}"));
    assert!(
        session.contains("; Secure") && session.contains("HttpOnly"),
        "{session}"
    );
    let session_pair = session.split(';').next().unwrap_or_default().to_string();
    // The installer's page shows the fingerprint to compare with the browser's.
    let installer = text(&run(
        "curl",
        &[
            "-sS",
            "--cacert",
            &cert_s,
            "--cookie",
            &session_pair,
            &format!("{}/installer?lang=en", node.base),
        ],
    ));
    assert!(installer.contains(&fingerprint), "{installer}");
    assert!(installer.contains(&spki), "{installer}");
    assert!(
        installer.contains("The node made this certificate itself"),
        "{installer}"
    );
    // A language chosen over HTTPS is remembered in a Secure cookie too.
    let chosen = text(&run(
        "curl",
        &[
            "-sS",
            "-i",
            "--cacert",
            &cert_s,
            &format!("{}/?lang=en", node.base),
        ],
    ));
    let lang = set_cookie(&chosen, "lang").unwrap_or_else(|| panic!("{chosen}"));
    assert!(lang.contains("; Secure"), "{lang}");
    drop(node);

    // The next start uses the same certificate: what was pinned stays valid.
    let (node, again) = spawn_https(&["run", "--config", &cfg]);
    assert_eq!(printed(&again, "SHA-256 fingerprint:"), fingerprint);
    let still = run(
        "curl",
        &[
            "-sS",
            "-k",
            "--pinnedpubkey",
            &pin,
            &format!("{}/api/live", node.base),
        ],
    );
    assert!(still.status.success(), "{still:?}");
}

/// A CA and a certificate it signed for `localhost` and 127.0.0.1, made by
/// OpenSSL in `dir`: (ca.pem, server cert, server key).
fn openssl_ca_and_server(dir: &Path, tag: &str) -> (String, String, String) {
    let p = |name: &str| {
        dir.join(format!("{tag}-{name}"))
            .to_string_lossy()
            .into_owned()
    };
    let (ca_key, ca, key, csr, cert, ext) = (
        p("ca.key"),
        p("ca.pem"),
        p("server.key"),
        p("server.csr"),
        p("server.pem"),
        p("ext.cnf"),
    );
    let ok = |out: Output, what: &str| {
        assert!(
            out.status.success(),
            "openssl {what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ok(
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &ca_key,
                "-out",
                &ca,
                "-days",
                "2",
                "-subj",
                &format!("/CN={tag} test CA"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ),
        "CA",
    );
    ok(
        run(
            "openssl",
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                "/CN=localhost",
            ],
        ),
        "request",
    );
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext.cnf");
    ok(
        run(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-out",
                &cert,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        ),
        "sign",
    );
    (ca, cert, key)
}

/// An installer's certificate (signed by a CA of theirs) is served as given:
/// curl trusts the node through that CA, and `/installer` says whose it is. Files
/// that do not fit are refused at `check-config`, naming the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_the_installers_certificate() {
    if !have("curl") || !have("openssl") {
        return;
    }
    let dir = TempDir::new("https-files");
    let (ca, cert, key) = openssl_ca_and_server(dir.path(), "site");
    let (plain, https) = (free_port(), free_port());
    let cfg = site(
        dir.path(),
        plain,
        https,
        &format!("{{ cert = \"{cert}\", key = \"{key}\" }}"),
    );
    let (node, lines) = spawn_https(&["run", "--config", &cfg]);
    assert!(!dir.path().join("data/tls").exists(), "no certificate made");
    assert!(
        printed(&lines, "certificate:").starts_with(&cert),
        "{lines:?}"
    );
    let by_name = format!("https://localhost:{https}/api/live");
    let out = run(
        "curl",
        &[
            "-sS",
            "--cacert",
            &ca,
            "--resolve",
            &format!("localhost:{https}:127.0.0.1"),
            &by_name,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out).contains("\"site\""), "{out:?}");
    drop(node);

    // The key of another certificate, and a file that is no certificate: refused.
    let (_, _, other_key) = openssl_ca_and_server(dir.path(), "other");
    let cfg = site(
        dir.path(),
        plain,
        https,
        &format!("{{ cert = \"{cert}\", key = \"{other_key}\" }}"),
    );
    let out = run_cli(&["check-config", &cfg], "");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("web.tls") && err.contains(&cert), "{err}");
    let cfg = site(
        dir.path(),
        plain,
        https,
        &format!("{{ cert = \"{cfg}\", key = \"{key}\" }}"),
    );
    let out = run_cli(&["check-config", &cfg], "");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("site.toml") && err.contains("no certificate"),
        "{err}"
    );
    // A setting that is none of the three, and HTTPS on the plain port.
    let cfg = site(dir.path(), plain, https, "\"on\"");
    let err = String::from_utf8_lossy(&run_cli(&["check-config", &cfg], "").stderr).into_owned();
    assert!(err.contains("`on` is not a TLS setting"), "{err}");
    let cfg = site(dir.path(), plain, plain, "\"auto\"");
    let err = String::from_utf8_lossy(&run_cli(&["check-config", &cfg], "").stderr).into_owned();
    assert!(err.contains("web.https_bind"), "{err}");
}

/// Headless Chromium loads the wall over HTTPS once told the certificate's key
/// (`--ignore-certificate-errors-spki-list`, which is pinning), and shows an error
/// page, not the wall, without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_the_wall_over_https_with_the_pinned_key() {
    let Some(chromium) = testkit::browser::chromium() else {
        return;
    };
    let dir = TempDir::new("https-browser");
    let (plain, https) = (free_port(), free_port());
    let cfg = site(dir.path(), plain, https, "\"auto\"");
    let (node, lines) = spawn_https(&["run", "--config", &cfg]);
    let spki = printed(&lines, "public key SHA-256 (base64):");
    // Through the plain address: the browser follows the redirect to HTTPS.
    let url = format!("http://127.0.0.1:{plain}/?lang=en");
    let dom = testkit::browser::run_headless(
        chromium,
        &[
            format!("--ignore-certificate-errors-spki-list={spki}"),
            "--dump-dom".to_string(),
            url.clone(),
        ],
    )
    .await;
    assert!(dom.contains("Les Tilleuls"), "the wall over HTTPS: {dom}");
    let refused = testkit::browser::run_headless(
        chromium,
        &["--dump-dom".to_string(), format!("{}/?lang=en", node.base)],
    )
    .await;
    assert!(
        !refused.contains("Les Tilleuls"),
        "an unpinned self-made certificate is not trusted: {refused}"
    );
}

/// The node's MQTT client reads a meter through a Mosquitto that speaks TLS only
/// on the port the node is given (`mqtts://`, the site's CA in `ca_file`); a
/// broker whose certificate another CA signed is not believed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mqtt_client_reads_a_meter_over_tls() {
    if !have("openssl") {
        return;
    }
    let Some(binary) = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        skip("mosquitto");
        return;
    };
    let dir = TempDir::new("mqtts");
    let (ca, cert, key) = openssl_ca_and_server(dir.path(), "broker");
    let (other_ca, _, _) = openssl_ca_and_server(dir.path(), "elsewhere");
    // Mosquitto started as root reads its key after dropping to its own user: a
    // throwaway test key is made readable to it.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod key");
    }
    let (clear_port, tls_port) = (free_port(), free_port());
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "per_listener_settings false\nallow_anonymous true\npersistence false\n\
             listener {clear_port} 127.0.0.1\n\
             listener {tls_port} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\n"
        ),
    )
    .expect("mosquitto.conf");
    let _broker = Peer::spawn(
        Command::new(binary)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .expect("start mosquitto");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(tcp_open(&format!("127.0.0.1:{clear_port}"))
        && tcp_open(&format!("127.0.0.1:{tls_port}")))
    {
        assert!(Instant::now() < deadline, "mosquitto did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let node_site = |name: &str, ca: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).expect("dir");
        let config = format!(
            "[site]\nname = \"x\"\nlatitude = 1.0\nlongitude = 2.0\n\
             [storage]\ndir = \"{}\"\n\
             [mqtt]\nbroker = \"mqtts://127.0.0.1:{tls_port}\"\nca_file = \"{ca}\"\n\
             [[device]]\nid = \"meter\"\nrole = \"load\"\nprofile = \"generic-json\"\n\
             mqtt = {{ topic = \"site/{name}/meter\", fields = {{ power_w = \"p\" }} }}\n\
             [[service]]\nid = \"hall\"\nmeter = \"meter\"\ntier = 1\n",
            d.join("data").display()
        );
        let path = d.join("site.toml");
        std::fs::write(&path, config).expect("write");
        path.to_string_lossy().into_owned()
    };
    let good = spawn(&[
        "run",
        "--config",
        &node_site("good", &ca),
        "--bind",
        "127.0.0.1:0",
    ]);
    let fooled = spawn(&[
        "run",
        "--config",
        &node_site("fooled", &other_ca),
        "--bind",
        "127.0.0.1:0",
    ]);
    // The meter publishes in clear on the other listener: only the node's own
    // connection is under test.
    let publisher = crate::history::publisher("127.0.0.1", clear_port, "transit-meter").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = None;
    while Instant::now() < deadline {
        for name in ["good", "fooled"] {
            publisher
                .publish(
                    format!("site/{name}/meter"),
                    rumqttc::QoS::AtLeastOnce,
                    false,
                    "{\"p\": 1234}",
                )
                .await
                .expect("publish");
        }
        let live = get_json(&format!("{}/api/live", good.base)).await;
        if close(&service(&live, "hall")["demand_w"], 1234.0) {
            seen = Some(live);
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let seen = seen.expect("the meter's value reached the node over TLS within 30 s");
    assert!(close(&service(&seen, "hall")["demand_w"], 1234.0), "{seen}");
    // Meanwhile the node given another CA refused the broker and read nothing.
    let live = get_json(&format!("{}/api/live", fooled.base)).await;
    assert!(
        !close(&service(&live, "hall")["demand_w"], 1234.0),
        "a broker it cannot verify is not read: {live}"
    );
    let metrics = get_text(&format!("{}/metrics", fooled.base)).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("communalia_mqtt_messages_total") && l.ends_with(" 0")),
        "{metrics}"
    );
    // A CA file that is not there is refused at check-config, naming it.
    let missing = dir.path().join("nope.pem").to_string_lossy().into_owned();
    let out = run_cli(&["check-config", &node_site("missing", &missing)], "");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ca_file") && err.contains("nope.pem"), "{err}");
}
