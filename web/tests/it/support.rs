//! Shared fixtures: a site, a snapshot, and requests through the router.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use chrono::{DateTime, TimeZone, Utc};
use dashboards::{Lang, SiteInfo};
use ingest::metrics::IngestMetrics;
use query::live::{
    DeviceLive, LiveSnapshot, PlanInfo, ServiceLive, ServiceState, Signal, SiteBalance,
};
use tokio::sync::watch;
use tower::ServiceExt;
use web::AppState;

pub(crate) fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .unwrap_or_else(|| panic!("bad test date"))
}

fn service(
    id: &str,
    name: &str,
    tier: u32,
    demand_w: f64,
    allocated_w: f64,
    state: ServiceState,
) -> ServiceLive {
    ServiceLive {
        id: id.into(),
        name: name.into(),
        tier,
        demand_w,
        allocated_w,
        state,
        min_w: 0.0,
        max_w: None,
        reason: "tier_share",
    }
}

/// A sunny afternoon at a small site: PV 4.3 kW, the battery charging, some export,
/// one service short and one shed.
pub(crate) fn snapshot() -> LiveSnapshot {
    let now = Utc::now();
    LiveSnapshot {
        ts: now,
        stale: false,
        last_data: Some(now),
        site: SiteBalance {
            pv_w: 4321.0,
            grid_w: -640.0,
            battery_w: -1200.0,
            battery_soc_pct: Some(62.4),
            load_w: 2300.0,
            unmetered_w: 181.0,
            available_w: 6000.0,
            allocated_w: 5200.0,
            headroom_w: 800.0,
            ..Default::default()
        },
        services: vec![
            service(
                "clinic-fridge",
                "Réfrigérateur du cabinet médical",
                1,
                150.0,
                150.0,
                ServiceState::Served,
            ),
            service(
                "school-lights",
                "Éclairage de l'école",
                1,
                420.0,
                420.0,
                ServiceState::Served,
            ),
            service(
                "water-pump",
                "Pompe du château d'eau",
                2,
                1800.0,
                1800.0,
                ServiceState::Served,
            ),
            service(
                "laundry",
                "Laverie partagée",
                2,
                2900.0,
                2830.0,
                ServiceState::Partial,
            ),
            service(
                "ev-charger",
                "Borne de recharge",
                3,
                7400.0,
                0.0,
                ServiceState::Shed,
            ),
            service(
                "sauna",
                "Sauna de la salle commune",
                3,
                0.0,
                0.0,
                ServiceState::Idle,
            ),
        ],
        devices: vec![
            DeviceLive {
                id: "roof-school".into(),
                name: "Toit de l'école".into(),
                role: "pv",
                power_w: Some(4321.0),
                last_seen: Some(now),
                healthy: true,
                state: ingest::metrics::HealthState::Up,
            },
            DeviceLive {
                id: "grid-meter".into(),
                name: "Compteur réseau".into(),
                role: "grid",
                power_w: None,
                last_seen: None,
                healthy: false,
                state: ingest::metrics::HealthState::Down,
            },
        ],
        signal: Signal::Use,
        plan: Some(PlanInfo {
            seq: 12,
            adopted_at: at(2026, 3, 12, 19, 30, 0),
        }),
        pools: vec![],
    }
}

pub(crate) fn site() -> SiteInfo {
    SiteInfo {
        name: "Les Tilleuls".into(),
        default_lang: Lang::Fr,
        timezone: chrono_tz::Europe::Paris,
    }
}

/// The services of the site configuration behind [`snapshot`]: those a plan may name.
pub(crate) fn configured_services() -> std::collections::BTreeSet<String> {
    snapshot()
        .services
        .iter()
        .map(|s| s.id.to_string())
        .collect()
}

pub(crate) fn state_with(
    snapshot: LiveSnapshot,
    metrics: IngestMetrics,
) -> (AppState, watch::Sender<Arc<LiveSnapshot>>) {
    let (tx, rx) = watch::channel(Arc::new(snapshot));
    let journal = ledger::Journal::open_in_memory().unwrap_or_else(|e| panic!("journal: {e}"));
    // These sites have no household's meter, so the public view is the whole
    // snapshot (see `privacy.rs` for a site with one, fed as the node feeds it).
    let state = AppState {
        live: rx.clone(),
        live_full: rx,
        visibility: Arc::new(query::visibility::Visibility::new(&[], &[])),
        metrics: Arc::new(metrics),
        site: site(),
        journal: Arc::new(journal),
        replan: Arc::new(tokio::sync::Notify::new()),
        login_limiter: Arc::new(web::LoginLimiter::default()),
        queries: None,
        services: Arc::new(configured_services()),
    };
    (state, tx)
}

pub(crate) fn state() -> (AppState, watch::Sender<Arc<LiveSnapshot>>) {
    state_with(snapshot(), IngestMetrics::default())
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub(crate) async fn send(state: AppState, request: Request<Body>) -> Reply {
    let response = web::app(state)
        .oneshot(request)
        .await
        .unwrap_or_else(|e| match e {});
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024)
        .await
        .unwrap_or_else(|e| panic!("reading body: {e}"));
    let body = String::from_utf8(bytes.to_vec()).unwrap_or_else(|e| panic!("body not UTF-8: {e}"));
    Reply {
        status,
        headers,
        body,
    }
}

pub(crate) fn get(uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::get(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(Body::empty())
        .unwrap_or_else(|e| panic!("request: {e}"))
}

pub(crate) fn post_json(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_else(|e| panic!("request: {e}"))
}

/// The opening tag of the first element carrying `marker` (e.g. `class="stale-banner"`),
/// or starting with it (e.g. `<body`).
pub(crate) fn opening_tag<'a>(html: &'a str, marker: &str) -> &'a str {
    let pos = html
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in page"));
    let start = if marker.starts_with('<') {
        pos
    } else {
        html[..pos].rfind('<').unwrap_or(0)
    };
    let end = pos + html[pos..].find('>').unwrap_or(0);
    &html[start..=end]
}

/// The password of every account [`with_members`] makes.
pub(crate) const PASSWORD: &str = "correct horse battery";

/// A state whose journal has an account for each role: `rita` (resident), `aline`
/// (assembly and resident), `ivo` (installer) and `ada` (admin), all with
/// [`PASSWORD`], and the plan [`plan_json`] adopted from the configuration.
pub(crate) fn with_members() -> (AppState, watch::Sender<Arc<LiveSnapshot>>) {
    with_members_in(snapshot(), IngestMetrics::default())
}

/// [`with_members`] over this snapshot and these ingest counters.
pub(crate) fn with_members_in(
    snapshot: LiveSnapshot,
    metrics: IngestMetrics,
) -> (AppState, watch::Sender<Arc<LiveSnapshot>>) {
    use ledger::Role;
    let (state, tx) = state_with(snapshot, metrics);
    let now = Utc::now();
    let plan: ledger::Plan = serde_json::from_value(plan_json(&["clinic-fridge", "laundry"]))
        .unwrap_or_else(|e| panic!("{e}"));
    state
        .journal
        .seed(&plan, &[], now)
        .unwrap_or_else(|e| panic!("seed: {e}"));
    for (name, roles) in [
        ("rita", vec![Role::Resident]),
        ("aline", vec![Role::Assembly, Role::Resident]),
        ("ivo", vec![Role::Installer]),
        ("ada", vec![Role::Admin]),
    ] {
        state
            .journal
            .create_user(name, &roles, PASSWORD, ledger::COMMAND_LINE_AUTHOR, now)
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
    }
    (state, tx)
}

/// A valid PLAN (DESIGN.md §8) over these services, all in tier 1.
pub(crate) fn plan_json(services: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "tiers": [{"tier": 1, "split": "equal"}, {"tier": 2, "split": "pro_rata"}],
        "services": services.iter().enumerate().map(|(i, id)| serde_json::json!({
            "id": id, "tier": if i == 0 { 1 } else { 2 }, "min_w": 100.0, "max_w": 3000.0
        })).collect::<Vec<_>>(),
        "sources": {"battery": {"reserve_soc_pct": 30.0, "tiers": [1]},
                    "grid": {"max_import_w": 0.0, "tiers": []}}
    })
}

/// A valid decision record.
pub(crate) fn decision_json(present: u32, quorum_required: u32) -> serde_json::Value {
    serde_json::json!({
        "assembly_date": "2026-03-12", "votes_for": 9, "votes_against": 2, "votes_abstain": 1,
        "quorum_required": quorum_required, "present": present,
        "minutes": "Le cabinet médical passe en premier."
    })
}

/// A signed-in browser: its session cookie (`name=value`) and its CSRF token.
#[derive(Debug, Clone)]
pub(crate) struct Browser {
    pub(crate) cookie: String,
    pub(crate) csrf: String,
}

/// The `csrf` hidden field of a page's first form.
pub(crate) fn form_csrf(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no csrf field in {html}"))
        + marker.len();
    let end = start + html[start..].find('"').unwrap_or(0);
    html[start..end].to_string()
}

/// The `name=value` of a `Set-Cookie` header naming `cookie`.
pub(crate) fn set_cookie(reply: &Reply, cookie: &str) -> Option<String> {
    reply
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{cookie}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_string())
}

/// `GET /login` then `POST /login` as a browser would, from `address`.
pub(crate) async fn try_login(
    state: &AppState,
    name: &str,
    password: &str,
    address: &str,
) -> Reply {
    let page = send(state.clone(), get("/login", &[])).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let login_cookie =
        set_cookie(&page, "communalia_login").unwrap_or_else(|| panic!("no login cookie"));
    let csrf = form_csrf(&page.body);
    let body = format!(
        "name={name}&password={}&csrf={csrf}&next=%2Fapi%2Fme",
        password.replace(' ', "+")
    );
    let mut request = Request::post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", login_cookie)
        .body(Body::from(body))
        .unwrap_or_else(|e| panic!("request: {e}"));
    let addr: std::net::SocketAddr = format!("{address}:40000")
        .parse()
        .unwrap_or_else(|e| panic!("{address}: {e}"));
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(addr));
    send(state.clone(), request).await
}

/// Signs `name` in and reads the session's CSRF token from `GET /api/me`.
pub(crate) async fn login(state: &AppState, name: &str) -> Browser {
    let reply = try_login(state, name, PASSWORD, "127.0.0.1").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let cookie = set_cookie(&reply, web::SESSION_COOKIE)
        .unwrap_or_else(|| panic!("no session cookie: {:?}", reply.headers));
    let me = send(state.clone(), get("/api/me", &[("cookie", &cookie)])).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    let csrf = me.json()["csrf"]
        .as_str()
        .unwrap_or_else(|| panic!("no csrf in {}", me.body))
        .to_string();
    Browser { cookie, csrf }
}

/// A request with any method, headers and a JSON body (or none when empty).
pub(crate) fn request(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if !body.is_empty() {
        builder = builder.header("content-type", "application/json");
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(Body::from(body.to_string()))
        .unwrap_or_else(|e| panic!("request: {e}"))
}

/// [`with_members`] and two more residents, `remi` and `sara`, so that a
/// contribution of rita's can gather the two approvals (other than hers) that
/// validate it by default.
pub(crate) fn with_residents() -> (AppState, watch::Sender<Arc<LiveSnapshot>>) {
    let (state, tx) = with_members();
    add_residents(&state);
    (state, tx)
}

/// The two residents of [`with_residents`], added to a state of [`with_members`].
pub(crate) fn add_residents(state: &AppState) {
    for name in ["remi", "sara"] {
        state
            .journal
            .create_user(
                name,
                &[ledger::Role::Resident],
                PASSWORD,
                ledger::COMMAND_LINE_AUTHOR,
                Utc::now(),
            )
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
    }
}

/// `Authorization: Bearer …` for a fresh token of `member`.
pub(crate) fn bearer(state: &AppState, member: &str) -> String {
    let token = state
        .journal
        .create_token(member, "test", None, Utc::now())
        .unwrap_or_else(|e| panic!("token for {member}: {e}"));
    format!("Bearer {token}")
}

/// `member`'s contribution of `hours` of repair recorded at `at` and approved by
/// two other residents (aline, remi or sara) at the same instant: validated at
/// `at`, minting `hours` x 10 Communs (the default rate). Its id. Keep `at` in the
/// past: balances asked before the journal's last entry are replayed up to there.
pub(crate) fn validated(state: &AppState, member: &str, hours: f64, at: DateTime<Utc>) -> i64 {
    let contribution = ledger::NewContribution {
        category: ledger::Category::Repair,
        hours,
        date: at.date_naive(),
        description: "Mended the bicycles of the school".into(),
    };
    let id = state
        .journal
        .record_contribution(member, &contribution, at)
        .unwrap_or_else(|e| panic!("record: {e}"))
        .seq;
    let approvers: Vec<&str> = ["aline", "remi", "sara"]
        .into_iter()
        .filter(|m| *m != member)
        .take(2)
        .collect();
    for approver in approvers {
        state
            .journal
            .attest(id, approver, ledger::Verdict::Approve, "I saw it done", at)
            .unwrap_or_else(|e| panic!("attest by {approver}: {e}"));
    }
    id
}
