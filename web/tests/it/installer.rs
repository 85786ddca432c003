//! The installer's page (`/installer`), its probe form and `GET /api/devices`, as
//! an installer with a browser or a script uses them: a degraded inverter, a
//! meter that stopped answering and an MQTT sub-meter, each with its figures and
//! its last values beside the registers or payload they came from; and probes of
//! the project's SunSpec simulator, of a port where nothing listens and of
//! addresses that are not ones.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Utc;
use ingest::metrics::{DecodedValue, HealthState, IngestMetrics, ModelInfo, RawBlock};
use query::live::{DeviceLive, LiveSnapshot};
use sensors::modbus::RegisterKind;
use sensors::model::{Metric, Origin};
use sensors::sim::sunspec::{InverterState, build_inverter_image, write_inverter};
use sensors::sim::{RegisterImage, serve_modbus_tcp};
use tokio::net::TcpListener;

use crate::support::{
    Browser, Reply, bearer, form_csrf, get, login, opening_tag, send, snapshot, with_members_in,
};

/// The live snapshot the page reads states from: the inverter degraded (it
/// refused a block at its last poll), the grid meter down, the clinic's meter up.
pub(crate) fn installer_snapshot() -> LiveSnapshot {
    let mut s = snapshot();
    let now = Utc::now();
    s.devices = vec![
        DeviceLive {
            id: "roof-school".into(),
            name: "Toit de l'école".into(),
            role: "pv",
            power_w: Some(4321.0),
            last_seen: Some(now),
            healthy: true,
            state: HealthState::Degraded,
        },
        DeviceLive {
            id: "grid-meter".into(),
            name: "Compteur réseau".into(),
            role: "grid",
            power_w: None,
            last_seen: None,
            healthy: false,
            state: HealthState::Down,
        },
        DeviceLive {
            id: "clinic-meter".into(),
            name: "Compteur du cabinet médical".into(),
            role: "load",
            power_w: Some(152.5),
            last_seen: Some(now),
            healthy: true,
            state: HealthState::Up,
        },
    ];
    s
}

/// What ingest would have kept of those three devices.
pub(crate) fn installer_metrics() -> IngestMetrics {
    let m = IngestMetrics::default();
    let now = Utc::now();
    // The inverter: SunSpec at 40000, models 1 and 103; its last poll sent 2
    // requests where its plan needs 1, and one was refused.
    m.register_device_as(
        "roof-school",
        "modbus-tcp 192.168.1.20:502 unit 1".into(),
        "sunspec",
    );
    m.set_planned_transactions("roof-school", 1);
    m.record_poll(
        "roof-school",
        now,
        2,
        &[(
            2,
            "device refused reading 10 holding registers at 40200: Illegal data address".into(),
        )],
        Ok(Duration::from_millis(35)),
    );
    m.with_diagnostics("roof-school", |d| {
        d.sunspec_base = Some(40000);
        d.identity = Some("Fronius Symo 8.2-3-M (serial 31415926)".into());
        d.sunspec_models = vec![
            ModelInfo {
                id: 1,
                name: Some("Common"),
                address: 40002,
                length: 66,
                decoded: Err("read once, at discovery".into()),
            },
            ModelInfo {
                id: 103,
                name: Some("Inverter (Three Phase)"),
                address: 40070,
                length: 50,
                decoded: Ok(()),
            },
        ];
        d.raw_blocks = vec![
            RawBlock {
                kind: RegisterKind::Holding,
                start: 40084,
                count: 2,
                result: Ok(vec![0x10E1, 0x0000]),
            },
            RawBlock {
                kind: RegisterKind::Holding,
                start: 40200,
                count: 10,
                result: Err(2),
            },
        ];
        d.raw_at = Some(now);
        d.values.insert(
            Metric::PowerW,
            DecodedValue {
                metric: Metric::PowerW,
                value: 4321.0,
                device_value: 4321.0,
                origin: Origin::Modbus {
                    kind: RegisterKind::Holding,
                    address: 40084,
                    count: 1,
                    point: Some("103.W".into()),
                    scale_address: Some(40085),
                },
                at: now,
            },
        );
    });
    // The grid meter: two timeouts in a row after one good poll a minute ago.
    m.register_device_as(
        "grid-meter",
        "modbus-tcp 192.168.1.21:502 unit 1".into(),
        "sdm630",
    );
    m.set_planned_transactions("grid-meter", 1);
    m.record_poll(
        "grid-meter",
        now - chrono::Duration::seconds(185),
        1,
        &[],
        Ok(Duration::from_millis(12)),
    );
    for _ in 0..2 {
        m.record_poll(
            "grid-meter",
            now,
            1,
            &[],
            Err("no answer within 1000 ms reading 76 input registers at 0".into()),
        );
    }
    // The clinic's Shelly: its last payload, and the value taken from it.
    m.register_device_as(
        "clinic-meter",
        "mqtt shellypro3em-clinic".into(),
        "shelly-gen2-em",
    );
    m.record_success("clinic-meter", now, None);
    let payload = r#"{"id":0,"total_act_power":152.5,"a_act_power":152.5}"#;
    m.record_payload(
        "clinic-meter",
        "shellypro3em-clinic/status/em:0",
        payload.as_bytes(),
        now,
        None,
    );
    m.with_diagnostics("clinic-meter", |d| {
        d.values.insert(
            Metric::PowerW,
            DecodedValue {
                metric: Metric::PowerW,
                value: 152.5,
                device_value: 152.5,
                origin: Origin::Mqtt {
                    topic: "shellypro3em-clinic/status/em:0".into(),
                    path: "total_act_power".into(),
                },
                at: now,
            },
        );
    });
    m
}

/// The text of the element that opens with `<{tag} … {marker} …>`, to its closing
/// tag, tags removed and spaces collapsed.
fn text_of(html: &str, tag: &str, marker: &str) -> String {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in {html}"));
    let start = html[..at]
        .rfind(&format!("<{tag}"))
        .unwrap_or_else(|| panic!("no <{tag} before {marker}"));
    let end = start
        + html[start..]
            .find(&format!("</{tag}>"))
            .unwrap_or_else(|| panic!("no </{tag}> after {marker}"));
    words(&strip_tags(&html[start..end]))
}

fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    unescape(&out)
}

fn unescape(text: &str) -> String {
    text.replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&lt;", "<")
        .replace("&#62;", ">")
        .replace("&gt;", ">")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn the_page_shows_each_devices_state_figures_and_raw_registers() {
    let (state, _tx) = with_members_in(installer_snapshot(), installer_metrics());
    let ivo = login(&state, "ivo").await;
    let page = send(
        state.clone(),
        get(
            "/installer",
            &[("cookie", &ivo.cookie), ("accept-language", "fr")],
        ),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.header("cache-control"), "no-store");
    let html = &page.body;
    assert!(html.contains("<html lang=\"fr\""));
    assert!(
        words(&strip_tags(html))
            .contains("3 appareils — en service : 1 · dégradé : 1 · hors service : 1"),
        "{html}"
    );

    // The inverter: degraded, in words and icon; its figures; its value beside the
    // registers it was read from.
    let roof = text_of(html, "article", "data-device=\"roof-school\"");
    for part in [
        "Toit de l'école",
        "◐ Dégradé lu, mais son dernier relevé a échoué ou des registres ont été refusés.",
        "roof-school · production · sunspec · modbus-tcp 192.168.1.20:502 unit 1",
        "Fronius Symo 8.2-3-M (serial 31415926)",
        "Échecs consécutifs 0",
        "Durée du relevé 35 ms",
        "Requêtes par relevé 2 (au moins 1)",
        "Dernière exception 0x02 adresse de données illégale",
        "Exceptions au total 1",
        // Said in the page's language, not as ingest logs it.
        "Dernière erreur : l'appareil a refusé la lecture de 10 registres de maintien (holding) à l'adresse 40200 : Illegal data address",
        "Modèles SunSpec (carte à 40000)",
        "103 Inverter (Three Phase) 50 40070 décodé",
        "power_w 4321 W holding 40084 = [10E1], SF 40085 = [0000] (103.W)",
        "2 registres holding à partir de 40084 10E1 0000",
        "10 registres holding à partir de 40200 refusé : 0x02 adresse de données illégale",
    ] {
        assert!(roof.contains(part), "{part:?} not in: {roof}");
    }
    assert!(html.contains("data-state=\"degraded\""));
    // The decoded value and its registers are in one row, with when it was read.
    let row = text_of(html, "tr", "data-metric=\"power_w\"");
    let (cells, at) = row.rsplit_once(' ').unwrap_or_default();
    assert_eq!(
        cells,
        "power_w 4321 W holding 40084 = [10E1], SF 40085 = [0000] (103.W)"
    );
    assert!(
        at.len() == 8 && at.chars().filter(|c| *c == ':').count() == 2,
        "a time of day: {row}"
    );

    // What each device is doing, in words, on its card.
    assert!(roof.contains("produit 4,3 kW"), "{roof}");
    // The devices that are not up are named and linked at the top of the page.
    let attention = text_of(html, "ul", "class=\"attention\"");
    assert!(
        attention.contains("Toit de l'école — Dégradé"),
        "{attention}"
    );
    assert!(attention.contains("— Hors service"), "{attention}");
    assert!(!attention.contains("clinic"), "{attention}");
    assert!(html.contains("href=\"#device-grid-meter\""));
    assert!(html.find("class=\"attention\"") < html.find("data-device=\"roof-school\""));

    // The meter that stopped answering: down, its failures and why.
    let grid = text_of(html, "article", "data-device=\"grid-meter\"");
    for part in [
        "✖ Hors service",
        "Échecs consécutifs 2",
        "il y a 3 min",
        "Dernière erreur : pas de réponse en 1000 ms à la lecture de 76 registres d'entrée (input) à l'adresse 0",
        "Aucune valeur décodée pour l'instant.",
    ] {
        assert!(grid.contains(part), "{part:?} not in: {grid}");
    }

    // The MQTT meter: up, and the payload its value was read from.
    let clinic = text_of(html, "article", "data-device=\"clinic-meter\"");
    for part in [
        "✔ En service",
        "power_w 152,5 W shellypro3em-clinic/status/em:0 total_act_power",
        r#"shellypro3em-clinic/status/em:0 ·"#,
        r#"{"id":0,"total_act_power":152.5,"a_act_power":152.5}"#,
        "Messages 1",
    ] {
        assert!(clinic.contains(part), "{part:?} not in: {clinic}");
    }
    assert!(
        !clinic.contains("Requêtes par relevé"),
        "an MQTT device has no Modbus traffic: {clinic}"
    );

    // The same in English.
    let page = send(
        state.clone(),
        get("/installer?lang=en", &[("cookie", &ivo.cookie)]),
    )
    .await;
    let roof = text_of(&page.body, "article", "data-device=\"roof-school\"");
    for part in [
        "◐ Degraded",
        "Requests per poll 2 (at least 1)",
        "Last exception 0x02 illegal data address",
        "10 holding registers from 40200 refused: 0x02 illegal data address",
    ] {
        assert!(roof.contains(part), "{part:?} not in: {roof}");
    }
    // The form is there, with the session's CSRF token.
    assert_eq!(form_csrf(&page.body), ivo.csrf);
    assert!(page.body.contains("action=\"/installer/probe#probe\""));
}

#[tokio::test]
async fn the_page_is_the_installers_only() {
    let (state, _tx) = with_members_in(installer_snapshot(), installer_metrics());
    let reply = send(state.clone(), get("/installer", &[])).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(
        reply.body.contains("/login?next=/installer"),
        "{}",
        reply.body
    );
    let rita = login(&state, "rita").await;
    let reply = send(
        state.clone(),
        get("/installer", &[("cookie", &rita.cookie)]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    // The wall screen links to the page for an installer, and for nobody else.
    let wall = send(state.clone(), get("/", &[("cookie", &rita.cookie)])).await;
    assert!(!wall.body.contains("href=\"/installer\""));
    let ivo = login(&state, "ivo").await;
    let wall = send(state.clone(), get("/", &[("cookie", &ivo.cookie)])).await;
    assert!(wall.body.contains("href=\"/installer\""), "{}", wall.body);
    let reply = send(state, get("/api/devices", &[("cookie", &rita.cookie)])).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(
        reply.json()["error"]
            .as_str()
            .unwrap_or_default()
            .contains("installer")
    );
}

#[tokio::test]
async fn api_devices_gives_the_same_diagnostics_as_json() {
    let (state, _tx) = with_members_in(installer_snapshot(), installer_metrics());
    let token = bearer(&state, "ivo");
    let reply = send(state, get("/api/devices", &[("authorization", &token)])).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), "no-store");
    let body = reply.json();
    assert!(body["ts"].is_string());
    let devices = body["devices"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    let ids: Vec<&str> = devices.iter().filter_map(|d| d["id"].as_str()).collect();
    assert_eq!(
        ids,
        ["roof-school", "grid-meter", "clinic-meter"],
        "configuration order"
    );

    let roof = &devices[0];
    assert_eq!(roof["name"], "Toit de l'école");
    assert_eq!(roof["role"], "pv");
    assert_eq!(roof["state"], "degraded");
    assert_eq!(roof["healthy"], true);
    assert_eq!(roof["transport"], "modbus-tcp 192.168.1.20:502 unit 1");
    assert_eq!(roof["profile"], "sunspec");
    assert!(roof["last_success"].is_string());
    assert_eq!(roof["consecutive_failures"], 0);
    assert_eq!(roof["latency_ms"], 35.0);
    assert_eq!(roof["transactions_last_cycle"], 2);
    assert_eq!(roof["transactions_planned"], 1);
    assert_eq!(roof["exceptions"], 1);
    assert_eq!(
        roof["last_exception"],
        serde_json::json!({"code": 2, "name": "illegal data address"})
    );
    assert_eq!(roof["sunspec"]["base"], 40000);
    assert_eq!(
        roof["sunspec"]["models"][1],
        serde_json::json!({"id": 103, "name": "Inverter (Three Phase)", "address": 40070,
                           "length": 50, "decoded": true, "not_decoded": null})
    );
    assert_eq!(
        roof["sunspec"]["models"][0]["not_decoded"],
        "read once, at discovery"
    );
    let power = &roof["values"][0];
    assert_eq!(power["metric"], "power_w");
    assert_eq!(power["value"], 4321.0);
    assert_eq!(power["device_value"], 4321.0);
    assert_eq!(
        power["origin"],
        serde_json::json!({"kind": "holding", "address": 40084, "count": 1, "point": "103.W",
                           "registers": [0x10E1], "scale_address": 40085, "scale_register": 0})
    );
    assert_eq!(
        power["origin_text"],
        "holding 40084 = [10E1], SF 40085 = [0000] (103.W)"
    );
    assert_eq!(
        roof["raw"]["blocks"],
        serde_json::json!([
            {"kind": "holding", "start": 40084, "count": 2, "registers": [0x10E1, 0], "exception": null},
            {"kind": "holding", "start": 40200, "count": 10, "registers": null, "exception": 2}
        ])
    );

    let grid = &devices[1];
    assert_eq!(
        (grid["state"].as_str(), grid["healthy"].as_bool()),
        (Some("down"), Some(false))
    );
    assert_eq!(grid["consecutive_failures"], 2);
    assert!(
        grid["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("no answer within 1000 ms")
    );
    assert_eq!(grid["values"], serde_json::json!([]));
    assert!(grid["sunspec"].is_null() && grid["raw"].is_null());

    let clinic = &devices[2];
    assert_eq!(clinic["state"], "up");
    assert_eq!(
        clinic["values"][0]["origin"],
        serde_json::json!({"topic": "shellypro3em-clinic/status/em:0", "path": "total_act_power"})
    );
    assert_eq!(
        clinic["payloads"][0]["topic"],
        "shellypro3em-clinic/status/em:0"
    );
    assert!(
        clinic["payloads"][0]["payload"]
            .as_str()
            .unwrap_or_default()
            .contains("\"total_act_power\":152.5")
    );
    assert!(clinic["payloads"][0]["rejected"].is_null());
    assert!(clinic["transactions_last_cycle"].is_null());
}

/// The project's SunSpec simulator (models 1 and 103 at 40000) on a free port.
pub(crate) async fn sunspec_simulator() -> u16 {
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
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    tokio::spawn(serve_modbus_tcp(listener, image.shared(), 1));
    port
}

async fn probe(state: &web::AppState, browser: &Browser, fields: &[(&str, &str)]) -> Reply {
    let mut body = form_urlencoded::Serializer::new(String::new());
    body.append_pair("csrf", &browser.csrf);
    for (k, v) in fields {
        body.append_pair(k, v);
    }
    let request = Request::post("/installer/probe")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &browser.cookie)
        .header("accept-language", "fr")
        .body(Body::from(body.finish()))
        .unwrap_or_else(|e| panic!("request: {e}"));
    send(state.clone(), request).await
}

/// The `[[device]]` block shown in the page, as the installer would copy it.
fn block_of(html: &str) -> String {
    let marker = "<pre class=\"device-block\"><code>";
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no block in {html}"))
        + marker.len();
    let end = start + html[start..].find("</code>").unwrap_or(0);
    unescape(&html[start..end])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_form_finds_the_simulators_models_and_suggests_a_block() {
    let port = sunspec_simulator().await;
    let (state, _tx) = with_members_in(installer_snapshot(), installer_metrics());
    let ivo = login(&state, "ivo").await;
    let address = format!("modbus-tcp://127.0.0.1:{port}/1");
    let reply = probe(
        &state,
        &ivo,
        &[("address", &address), ("profile", ""), ("timeout", "2s")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let result = text_of(&reply.body, "div", "class=\"probe-result\"");
    let heading = format!("modbus-tcp 127.0.0.1:{port} unit 1 : profil sunspec");
    for part in [
        heading.as_str(),
        "Communalia SimInverter, n° de série SIM-0001",
        "Modèles SunSpec (carte à 40000)",
        "Modèle Nom Longueur Adresse Décodage",
        "1 Common 66 40002 identité de l'appareil, lue une fois",
        "103 Inverter (Three Phase) 50 40070 décodé",
        "power_w 4321 W holding 40084 = [10E1], SF 40085 = [0000] (103.W)",
        "Bloc à coller dans la configuration",
    ] {
        assert!(result.contains(part), "{part:?} not in: {result}");
    }
    // The address stays in the form for the next try.
    assert!(
        reply
            .body
            .contains(&format!("name=\"address\" value=\"{address}\""))
    );

    // The block reads that device: it parses as a [[device]] and resolves.
    let block = block_of(&reply.body);
    assert!(
        block.contains(&format!(
            "modbus = {{ host = \"127.0.0.1\", port = {port}, unit = 1 }}"
        )),
        "{block}"
    );
    #[derive(serde::Deserialize)]
    struct Pasted {
        device: Vec<sensors::config::DeviceConfig>,
    }
    let pasted: Pasted = toml::from_str(&block).unwrap_or_else(|e| panic!("{e}\n{block}"));
    let workers =
        ingest::resolve_devices(&pasted.device).unwrap_or_else(|e| panic!("{e}\n{block}"));
    assert_eq!(workers.modbus.len(), 1);
    assert_eq!(pasted.device[0].role, sensors::model::Role::Pv);

    // A profile of fixed registers on the same device: whatever it refuses is
    // told, and the page does not fail.
    let reply = probe(
        &state,
        &ivo,
        &[
            ("address", &address),
            ("profile", "sdm630"),
            ("timeout", "1s"),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(
        reply.body.contains("<option value=\"sdm630\" selected>"),
        "the profile stays chosen"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_where_nothing_answers_or_of_a_bad_address_says_so_in_the_page() {
    let (state, _tx) = with_members_in(installer_snapshot(), installer_metrics());
    let ivo = login(&state, "ivo").await;

    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let address = format!("modbus-tcp://127.0.0.1:{port}/1");
    let reply = probe(&state, &ivo, &[("address", &address), ("timeout", "500ms")]).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "the probe ran: {}",
        reply.body
    );
    let alert = text_of(&reply.body, "div", "class=\"form-error\" role=\"alert\"");
    assert!(
        alert.contains(&format!("Rien n'a répondu à {address}.")),
        "{alert}"
    );
    assert!(
        alert.contains(&format!("connexion à 127.0.0.1:{port} impossible")),
        "{alert}"
    );
    assert!(!reply.body.contains("device-block"), "no block for nothing");

    // A Modbus server, but no SunSpec device.
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let empty = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    tokio::spawn(serve_modbus_tcp(
        listener,
        RegisterImage::default().shared(),
        1,
    ));
    let reply = probe(
        &state,
        &ivo,
        &[("address", &format!("modbus-tcp://127.0.0.1:{empty}"))],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let alert = text_of(&reply.body, "div", "class=\"form-error\" role=\"alert\"");
    assert!(
        alert.contains("no SunSpec marker at 40000, 0 or 50000"),
        "{alert}"
    );

    // Forms that cannot be probed: 422, the reason named, the form kept.
    for (fields, expected) in [
        (vec![("address", "")], "Indiquez l'adresse à sonder."),
        (
            vec![("address", "192.168.1.20:http")],
            "Cette adresse ne peut pas être lue. probe target `modbus-tcp://192.168.1.20:http`: the port is not a number",
        ),
        (
            vec![("address", "modbus-tcp://192.168.1.20:99999/1")],
            "the port is not a number from 1 to 65535",
        ),
        (
            vec![("address", "serial:///dev/ttyUSB0?baud=9600&unit=0")],
            "RTU devices have addresses 1 to 247",
        ),
        (
            vec![
                ("address", "modbus-tcp://192.168.1.20"),
                ("timeout", "forever"),
            ],
            "Délai « forever » : indiquez une durée de 0,05 à 30 secondes",
        ),
        (
            vec![
                ("address", "modbus-tcp://192.168.1.20"),
                ("profile", "shelly-gen2-em"),
            ],
            "Ce profil ne se lit pas en Modbus. profile `shelly-gen2-em` is read over MQTT",
        ),
    ] {
        let reply = probe(&state, &ivo, &fields).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{fields:?}");
        let alert = text_of(&reply.body, "div", "class=\"form-error\" role=\"alert\"");
        assert!(alert.contains(expected), "{fields:?}: {alert}");
        let typed = fields[0].1;
        assert!(
            unescape(&reply.body).contains(&format!("name=\"address\" value=\"{typed}\"")),
            "{fields:?}: the address is kept: {}",
            opening_tag(&reply.body, "name=\"address\"")
        );
        // The devices are still shown beside the problem.
        assert!(reply.body.contains("data-device=\"roof-school\""));
    }

    // A serial port that does not exist is an answer like an unreachable host.
    let reply = probe(
        &state,
        &ivo,
        &[(
            "address",
            "serial:///dev/ttyCOMMUNALIA-no-such-port?baud=9600&unit=1",
        )],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        unescape(&reply.body)
            .contains("le port série /dev/ttyCOMMUNALIA-no-such-port ne s'ouvre pas"),
        "{}",
        reply.body
    );
}

/// The attack seen from the form: `serial:///etc/shadow` opened the file
/// read-write as root, and a missing file got another answer. Any path that is not
/// a serial device is refused before it is opened, in the same words whether or
/// not it exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_form_opens_serial_ports_only() {
    let (state, _tx) = with_members_in(installer_snapshot(), installer_metrics());
    let ivo = login(&state, "ivo").await;
    let answer = |path: &'static str| {
        let (state, ivo) = (&state, &ivo);
        async move {
            let address = format!("serial://{path}?baud=9600&unit=1");
            let reply = probe(state, ivo, &[("address", &address)]).await;
            let alert = text_of(&reply.body, "div", "class=\"form-error\" role=\"alert\"");
            (reply.status, unescape(&alert).replace(path, "PATH"))
        }
    };
    let (status, refused) = answer("/etc/shadow").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(refused.contains("`PATH` is not a serial port"), "{refused}");
    assert!(!refused.contains("typewriter"), "it was opened: {refused}");
    assert_eq!(
        answer("/etc/communalia-no-such-file").await,
        (status, refused.clone())
    );
    assert_eq!(answer("/dev/null").await, (status, refused));
}

/// A node whose data is in clear text says so on the installer's page, in French
/// and in English, and says what to do; an encrypted node's page says nothing of
/// it.
#[tokio::test]
async fn the_page_warns_of_clear_text_data_in_both_languages() {
    let metrics = installer_metrics();
    metrics.set_clear_text_at_rest(true);
    let (state, _tx) = with_members_in(installer_snapshot(), metrics);
    let ivo = login(&state, "ivo").await;
    for (lang, text) in [
        ("fr", "Les données de ce nœud ne sont pas chiffrées"),
        ("en", "This node's data is not encrypted"),
    ] {
        let page = send(
            state.clone(),
            get(
                &format!("/installer?lang={lang}"),
                &[("cookie", &ivo.cookie)],
            ),
        )
        .await;
        assert_eq!(page.status, StatusCode::OK);
        let warning = page
            .body
            .split("clear-text-warning")
            .nth(1)
            .unwrap_or_else(|| panic!("{lang}: no clear-text warning in {}", page.body));
        let warning = warning[..warning.find("</p>").unwrap_or(warning.len())]
            .replace("&#39;", "'")
            .replace("&#x27;", "'");
        assert!(warning.contains(text), "{lang}: {warning}");
        assert!(warning.contains("communalia encrypt"), "{lang}: {warning}");
    }

    let (state, _tx) = with_members_in(installer_snapshot(), installer_metrics());
    let ivo = login(&state, "ivo").await;
    let page = send(state.clone(), get("/installer", &[("cookie", &ivo.cookie)])).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("clear-text-warning"), "{}", page.body);
}
