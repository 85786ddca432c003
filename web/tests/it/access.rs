//! Every route of the table, enumerated: who may call it, and what the others get.
//! A route is added to the router only through that table (`web::routes()`), so a
//! new state-changing route is checked here without anyone remembering to.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use ledger::Role;
use tower::ServiceExt;
use web::{Access, AppState, RouteSpec};

use crate::support::{Browser, login, request, send, with_members};

/// The members `with_members` makes, by role.
fn holder_of(role: Role) -> &'static str {
    match role {
        Role::Resident => "rita",
        Role::Assembly => "aline",
        Role::Installer => "ivo",
        Role::Admin => "ada",
    }
}

/// A member without `role`.
fn lacking(role: Role) -> &'static str {
    if role == Role::Installer {
        "rita"
    } else {
        "ivo"
    }
}

/// A path that matches the route, its `{id}` filled with `contribution`, or for
/// the planning board's routes with the intent (`contribution + 1`) or the
/// commitment (`contribution + 2`) that [`members_and_a_contribution`] records
/// right after it, for a draw by lot's with the draw (`contribution + 4`).
fn concrete(path: &str, contribution: i64) -> String {
    let id = if path.starts_with("/api/intents/") || path.starts_with("/plan/intents/") {
        contribution + 1
    } else if path.starts_with("/api/commitments/") || path.starts_with("/plan/commitments/") {
        contribution + 2
    } else if path.starts_with("/sortition/") {
        contribution + 4
    } else {
        contribution
    };
    path.split('/')
        .map(|part| {
            if part.starts_with('{') {
                id.to_string()
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// [`with_members`], a contribution of rita's for the `{id}` routes, rita's need
/// and aline's commitment to it (which rita, the resident the checks sign in as,
/// may accept and release), and a draw by lot announced.
fn members_and_a_contribution() -> (
    AppState,
    tokio::sync::watch::Sender<std::sync::Arc<query::live::LiveSnapshot>>,
    i64,
) {
    let (state, tx) = with_members();
    let contribution = ledger::NewContribution {
        category: ledger::Category::Repair,
        hours: 2.0,
        date: chrono::Utc::now().date_naive(),
        description: "Fixed the hall's door".into(),
    };
    let id = state
        .journal
        .record_contribution("rita", &contribution, chrono::Utc::now())
        .unwrap_or_else(|e| panic!("{e}"))
        .seq;
    let need = ledger::NewIntent {
        direction: ledger::Direction::Need,
        action: ledger::Action::Work,
        class: "care".into(),
        quantity: 2.0,
        unit: ledger::Unit::Hours,
        window_start: None,
        window_end: None,
        expires_at: None,
        never_expires: false,
        description: "Garde d'enfants".into(),
        visibility: ledger::Visibility::Node,
        collective: false,
    };
    let intent = state
        .journal
        .post_intent("rita", &need, chrono::Utc::now())
        .unwrap_or_else(|e| panic!("{e}"))
        .seq;
    let offer = ledger::NewCommitment {
        quantity: 1.0,
        note: String::new(),
    };
    let commitment = state
        .journal
        .propose_commitment("aline", intent, &offer, chrono::Utc::now())
        .unwrap_or_else(|e| panic!("{e}"))
        .seq;
    assert_eq!((intent, commitment), (id + 1, id + 2));
    // A draw by lot for the `/sortition/{id}` routes: rita opts in, aline
    // announces a panel of one.
    let now = chrono::Utc::now();
    state
        .journal
        .opt_in_sortition("rita", true, &Default::default(), now)
        .unwrap_or_else(|e| panic!("{e}"));
    let spec = ledger::DrawSpec {
        size: 1,
        strata_key: None,
        quotas: Default::default(),
        mandate: ledger::Mandate {
            scope: ledger::MandateScope::EnergyPriorities,
            title: "Hiver".into(),
            term_end: (now + chrono::Duration::days(30)).date_naive(),
        },
        draw_at: now,
    };
    let draw = state
        .journal
        .announce_sortition(&spec, "aline", now)
        .unwrap_or_else(|e| panic!("{e}"))
        .seq;
    assert_eq!(draw, id + 4);
    (state, tx, id)
}

async fn status(
    state: &AppState,
    spec: &RouteSpec,
    contribution: i64,
    headers: &[(&str, &str)],
) -> StatusCode {
    let reply = send(
        state.clone(),
        request(
            spec.method.as_str(),
            &concrete(spec.path, contribution),
            headers,
            "{}",
        ),
    )
    .await;
    reply.status
}

#[tokio::test]
async fn public_changes_are_only_the_known_ones() {
    let public_changes: BTreeSet<(String, &str)> = web::routes()
        .into_iter()
        .filter(|r| r.changes_state() && r.access == Access::Public)
        .map(|r| (r.method.to_string(), r.path))
        .collect();
    // Simulating computes on the caller's figures; signing in has its own
    // anti-forgery token and rate limit. Anything else that changes state needs a
    // member.
    let expected: BTreeSet<(String, &str)> = [
        ("POST".to_string(), "/api/allocation/simulate"),
        ("POST".to_string(), "/login"),
    ]
    .into_iter()
    .collect();
    assert_eq!(public_changes, expected);
}

#[tokio::test]
async fn the_wall_and_its_data_stay_public_and_read_only() {
    let routes = web::routes();
    for (method, path) in [
        (Method::GET, "/"),
        (Method::GET, "/api/live"),
        (Method::GET, "/events"),
        (Method::GET, "/metrics"),
        (Method::GET, "/static/wall.js"),
        (Method::GET, "/static/wall.css"),
        (Method::GET, "/healthz"),
        (Method::POST, "/api/allocation/simulate"),
        // Community totals and services over time, as on the wall.
        (Method::GET, "/history"),
        (Method::GET, "/wall/today"),
    ] {
        let spec = routes
            .iter()
            .find(|r| r.method == method && r.path == path)
            .unwrap_or_else(|| panic!("{method} {path} is not in the table"));
        assert_eq!(spec.access, Access::Public, "{method} {path}");
    }
}

#[tokio::test]
async fn every_state_changing_route_refuses_the_wrong_callers() {
    let (state, _tx, id) = members_and_a_contribution();
    let mut checked = 0;
    for spec in web::routes() {
        if !spec.changes_state() || spec.access == Access::Public {
            continue;
        }
        let what = format!("{} {}", spec.method, spec.path);
        // No session, no token.
        assert_eq!(
            status(&state, &spec, id, &[]).await,
            StatusCode::UNAUTHORIZED,
            "{what}"
        );
        // A token that does not exist.
        let bogus = format!("Bearer {}", "ab".repeat(32));
        assert_eq!(
            status(&state, &spec, id, &[("authorization", &bogus)]).await,
            StatusCode::UNAUTHORIZED,
            "{what}: unknown token"
        );
        let right = match spec.access {
            Access::Role(role) => {
                // The wrong role, with a correct CSRF token and with a token.
                let Browser { cookie, csrf } = login(&state, lacking(role)).await;
                assert_eq!(
                    status(
                        &state,
                        &spec,
                        id,
                        &[("cookie", &cookie), ("x-csrf-token", &csrf)]
                    )
                    .await,
                    StatusCode::FORBIDDEN,
                    "{what}: session without the role"
                );
                let token = state
                    .journal
                    .create_token(lacking(role), "test", None, chrono::Utc::now())
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(
                    status(
                        &state,
                        &spec,
                        id,
                        &[("authorization", &format!("Bearer {token}"))]
                    )
                    .await,
                    StatusCode::FORBIDDEN,
                    "{what}: token without the role"
                );
                holder_of(role)
            }
            Access::AnyMember => "rita",
            Access::Public => unreachable!(),
        };
        // The right role but no CSRF token, or another session's.
        let browser = login(&state, right).await;
        assert_eq!(
            status(&state, &spec, id, &[("cookie", &browser.cookie)]).await,
            StatusCode::FORBIDDEN,
            "{what}: no CSRF token"
        );
        let other = login(&state, right).await;
        assert_eq!(
            status(
                &state,
                &spec,
                id,
                &[("cookie", &browser.cookie), ("x-csrf-token", &other.csrf)]
            )
            .await,
            StatusCode::FORBIDDEN,
            "{what}: another session's CSRF token"
        );
        // The right role with the CSRF token: past the guard (the empty body may
        // still be refused by the handler, but not as 401/403).
        let ok = status(
            &state,
            &spec,
            id,
            &[("cookie", &browser.cookie), ("x-csrf-token", &browser.csrf)],
        )
        .await;
        assert!(
            ok != StatusCode::UNAUTHORIZED && ok != StatusCode::FORBIDDEN,
            "{what}: right role and CSRF token got {ok}"
        );
        // And with a token of the right role, no CSRF token needed.
        let token = state
            .journal
            .create_token(right, "test", None, chrono::Utc::now())
            .unwrap_or_else(|e| panic!("{e}"));
        let ok = status(
            &state,
            &spec,
            id,
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
        assert!(
            ok != StatusCode::UNAUTHORIZED && ok != StatusCode::FORBIDDEN,
            "{what}: right role by token got {ok}"
        );
        checked += 1;
    }
    assert!(
        checked >= 12,
        "only {checked} state-changing routes were checked"
    );
}

#[tokio::test]
async fn every_member_read_route_wants_a_member() {
    let (state, _tx, id) = members_and_a_contribution();
    for spec in web::routes() {
        if spec.changes_state() || spec.access == Access::Public {
            continue;
        }
        let what = format!("{} {}", spec.method, spec.path);
        assert_eq!(
            status(&state, &spec, id, &[]).await,
            StatusCode::UNAUTHORIZED,
            "{what}"
        );
        let member = match spec.access {
            Access::Role(role) => holder_of(role),
            _ => "rita",
        };
        let browser = login(&state, member).await;
        let ok = status(&state, &spec, id, &[("cookie", &browser.cookie)]).await;
        assert!(ok.is_success(), "{what}: got {ok}");
    }
}

/// The router answers every route of the table (no 404 or 405: the table and the
/// router agree), and a path outside it is not found.
#[tokio::test]
async fn the_router_serves_exactly_the_table() {
    let (state, tx, id) = members_and_a_contribution();
    // Event streams end when the live loop is gone, so no request hangs.
    drop(tx);
    let token = state
        .journal
        .create_token("ada", "test", None, chrono::Utc::now())
        .unwrap_or_else(|e| panic!("{e}"));
    for spec in web::routes() {
        let response = web::app(state.clone())
            .oneshot(request(
                spec.method.as_str(),
                &concrete(spec.path, id),
                &[("authorization", &format!("Bearer {token}"))],
                "{}",
            ))
            .await
            .unwrap_or_else(|e| match e {});
        let got = response.status();
        assert!(
            got != StatusCode::NOT_FOUND && got != StatusCode::METHOD_NOT_ALLOWED,
            "{} {}: {got}",
            spec.method,
            spec.path
        );
    }
    let reply = send(state, request("POST", "/api/not-a-route", &[], "{}")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}
