//! The one table of the node's routes: method, path, who may call it, handler.
//!
//! The router is built from this table and nothing else, and each route's
//! [`Access`] is enforced by a guard the table installs, so a route cannot be added
//! without saying who may call it, and tests can enumerate [`routes`] to check every
//! one (see `web/tests/it/access.rs`).

use std::sync::Arc;

use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Extension, Router};
use ledger::Role;

use crate::auth::{self, Access};
use crate::{
    AppState, api, assembly, assets, events, history, history_page, installer, ledger_api,
    ledger_page, login, me, metrics, pages, plan_page, planning_api, plans, security, sortition,
};

/// One route as the table declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

impl RouteSpec {
    /// Whether requests to this route may change something (see
    /// [`auth::changes_state`]).
    pub fn changes_state(&self) -> bool {
        auth::changes_state(&self.method)
    }
}

struct Route {
    spec: RouteSpec,
    handler: MethodRouter<AppState>,
}

fn route<H, T>(method: Method, path: &'static str, access: Access, handler: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    // Every method the table uses is a standard one, which MethodFilter knows.
    let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
    Route {
        spec: RouteSpec {
            method,
            path,
            access,
        },
        handler: on(filter, handler),
    }
}

fn table() -> Vec<Route> {
    use Access::{AnyMember, Public};
    vec![
        // The wall screen and what feeds it: public and read-only.
        route(Method::GET, "/", Public, pages::wall),
        route(Method::GET, "/api/live", Public, api::live),
        route(Method::GET, "/events", Public, events::events),
        route(Method::GET, "/metrics", Public, metrics::metrics),
        route(Method::GET, "/static/wall.js", Public, assets::wall_js),
        route(Method::GET, "/static/wall.css", Public, assets::wall_css),
        route(Method::GET, "/healthz", Public, pages::healthz),
        // Today's curve alone, fetched again by the wall screen every few minutes.
        route(Method::GET, "/wall/today", Public, history_page::today),
        // The history of community totals and services, public like the wall; it
        // shows no household's meter.
        route(Method::GET, "/history", Public, history_page::page),
        // Computes on the caller's figures and changes nothing.
        route(
            Method::POST,
            "/api/allocation/simulate",
            Public,
            api::simulate,
        ),
        // Signing in has its own anti-forgery token and rate limit (login.rs).
        route(Method::GET, "/login", Public, login::form),
        route(Method::POST, "/login", Public, login::submit),
        route(Method::POST, "/logout", AnyMember, login::logout),
        route(Method::GET, "/api/me", AnyMember, auth::me),
        // A member's own household and data (DESIGN.md §10). Any member: who may
        // grant or revoke for a household is the journal's rule (its members).
        route(Method::GET, "/me", AnyMember, me::page),
        route(Method::POST, "/me/consent", AnyMember, me::grant_form),
        route(
            Method::POST,
            "/me/consent/{id}/revoke",
            AnyMember,
            me::revoke_form,
        ),
        // Asking for the household's readings to be erased: a request the node
        // carries out at its next start (me.rs says why).
        route(Method::GET, "/me/erasure", AnyMember, me::erase_page),
        route(Method::POST, "/me/erasure", AnyMember, me::erase_form),
        route(Method::POST, "/api/me/erasure", AnyMember, me::erase_api),
        route(Method::GET, "/api/me/consent", AnyMember, me::consent),
        route(Method::POST, "/api/me/consent", AnyMember, me::grant_api),
        route(
            Method::POST,
            "/api/me/consent/{id}/revoke",
            AnyMember,
            me::revoke_api,
        ),
        route(Method::GET, "/api/me/export", AnyMember, me::export),
        route(Method::GET, "/api/plans", AnyMember, plans::list),
        // The history: any member exports the community's devices and the
        // household meters they may read (their own, under a grant); installers
        // query it in SQL, household meters under a grant only (query::consent).
        route(Method::GET, "/api/export", AnyMember, history::export),
        route(
            Method::POST,
            "/api/sql",
            Access::Role(Role::Installer),
            history::sql,
        ),
        route(
            Method::POST,
            "/api/plans",
            Access::Role(Role::Assembly),
            plans::adopt,
        ),
        // The assembly's panel: the plan, its preview and its adoption as pages.
        route(
            Method::GET,
            "/assembly",
            Access::Role(Role::Assembly),
            assembly::panel,
        ),
        route(
            Method::POST,
            "/assembly/preview",
            Access::Role(Role::Assembly),
            assembly::preview,
        ),
        route(
            Method::POST,
            "/assembly/adopt",
            Access::Role(Role::Assembly),
            assembly::adopt,
        ),
        route(
            Method::POST,
            "/assembly/replay",
            Access::Role(Role::Assembly),
            assembly::replay,
        ),
        // Assemblies drawn by lot (DESIGN.md §13): members opt in; the assembly
        // lists the attributes, announces a draw and enters the die; anyone may
        // watch the draw's page on the wall screen.
        route(Method::GET, "/sortition", AnyMember, sortition::page),
        route(Method::POST, "/sortition/opt", AnyMember, sortition::opt),
        route(Method::GET, "/api/sortition", AnyMember, sortition::list),
        route(
            Method::POST,
            "/assembly/sortition/keys",
            Access::Role(Role::Assembly),
            sortition::keys,
        ),
        route(
            Method::POST,
            "/assembly/sortition/announce",
            Access::Role(Role::Assembly),
            sortition::announce,
        ),
        route(Method::GET, "/sortition/{id}", Public, sortition::draw_page),
        route(
            Method::POST,
            "/sortition/{id}/draw",
            Access::Role(Role::Assembly),
            sortition::draw,
        ),
        route(
            Method::POST,
            "/sortition/{id}/decline",
            AnyMember,
            sortition::decline,
        ),
        // The contribution ledger. Contributions and balances name members, so
        // reading is for members; earning, attesting and moving Communs for
        // residents; the parameters are the assembly's.
        route(
            Method::GET,
            "/api/contributions",
            AnyMember,
            ledger_api::list_contributions,
        ),
        route(
            Method::POST,
            "/api/contributions",
            Access::Role(Role::Resident),
            ledger_api::record_contribution,
        ),
        route(
            Method::GET,
            "/api/contributions/{id}",
            AnyMember,
            ledger_api::get_contribution,
        ),
        route(
            Method::POST,
            "/api/contributions/{id}/attestations",
            Access::Role(Role::Resident),
            ledger_api::attest,
        ),
        route(
            Method::GET,
            "/api/transfers",
            AnyMember,
            ledger_api::transfers,
        ),
        route(
            Method::POST,
            "/api/transfers",
            Access::Role(Role::Resident),
            ledger_api::transfer,
        ),
        route(
            Method::GET,
            "/api/ledger/balances",
            AnyMember,
            ledger_api::balances,
        ),
        route(
            Method::GET,
            "/api/ledger/parameters",
            AnyMember,
            ledger_api::parameters,
        ),
        route(
            Method::POST,
            "/api/ledger/parameters",
            Access::Role(Role::Assembly),
            ledger_api::adopt_parameters,
        ),
        route(
            Method::GET,
            "/api/ledger/verify",
            AnyMember,
            ledger_api::verify,
        ),
        // The planning board (DESIGN.md §11): reading for members, posting and
        // committing for residents, like contributions.
        route(Method::GET, "/api/intents", AnyMember, planning_api::list),
        route(
            Method::POST,
            "/api/intents",
            Access::Role(Role::Resident),
            planning_api::post,
        ),
        route(
            Method::GET,
            "/api/intents/matches",
            AnyMember,
            planning_api::matches,
        ),
        route(
            Method::GET,
            "/api/intents/{id}",
            AnyMember,
            planning_api::get,
        ),
        route(
            Method::POST,
            "/api/intents/{id}/commitments",
            Access::Role(Role::Resident),
            planning_api::commit,
        ),
        route(
            Method::GET,
            "/api/commitments",
            AnyMember,
            planning_api::mine,
        ),
        route(
            Method::POST,
            "/api/commitments/{id}/accept",
            Access::Role(Role::Resident),
            planning_api::accept,
        ),
        route(
            Method::POST,
            "/api/commitments/{id}/release",
            Access::Role(Role::Resident),
            planning_api::release,
        ),
        // Saved interests are a member's own preference, not an act: any member.
        route(
            Method::GET,
            "/api/interests",
            AnyMember,
            planning_api::interests,
        ),
        route(
            Method::POST,
            "/api/interests",
            AnyMember,
            planning_api::set_interests,
        ),
        // The ledger as a page, with its forms.
        route(Method::GET, "/ledger", AnyMember, ledger_page::page),
        route(
            Method::POST,
            "/ledger/contributions",
            Access::Role(Role::Resident),
            ledger_page::record,
        ),
        route(
            Method::POST,
            "/ledger/contributions/{id}/attestations",
            Access::Role(Role::Resident),
            ledger_page::attest,
        ),
        route(
            Method::POST,
            "/ledger/transfers",
            Access::Role(Role::Resident),
            ledger_page::transfer,
        ),
        route(
            Method::POST,
            "/ledger/parameters",
            Access::Role(Role::Assembly),
            ledger_page::adopt_parameters,
        ),
        // The planning board as a page, with its forms.
        route(Method::GET, "/plan", AnyMember, plan_page::page),
        route(
            Method::POST,
            "/plan/intents",
            Access::Role(Role::Resident),
            plan_page::post,
        ),
        route(
            Method::POST,
            "/plan/intents/{id}/commitments",
            Access::Role(Role::Resident),
            plan_page::commit,
        ),
        route(
            Method::POST,
            "/plan/commitments/{id}/accept",
            Access::Role(Role::Resident),
            plan_page::accept,
        ),
        route(
            Method::POST,
            "/plan/commitments/{id}/release",
            Access::Role(Role::Resident),
            plan_page::release,
        ),
        route(
            Method::POST,
            "/plan/interests",
            AnyMember,
            plan_page::save_interests,
        ),
        // The installer's page: devices' health, raw registers beside decoded
        // values, and the probe (which reads a device, and records nothing).
        route(
            Method::GET,
            "/installer",
            Access::Role(Role::Installer),
            installer::page,
        ),
        route(
            Method::POST,
            "/installer/probe",
            Access::Role(Role::Installer),
            installer::probe,
        ),
        route(
            Method::GET,
            "/api/devices",
            Access::Role(Role::Installer),
            installer::devices,
        ),
    ]
}

/// Every route of the node, as declared.
pub fn routes() -> Vec<RouteSpec> {
    table().into_iter().map(|r| r.spec).collect()
}

/// The router, built from the table only.
pub(crate) fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for Route { spec, handler } in table() {
        let handler = match spec.access {
            Access::Public => handler,
            access => handler.route_layer(from_fn_with_state(
                state.clone(),
                move |state, request, next| auth::guard(state, access, request, next),
            )),
        };
        router = router.route(spec.path, handler);
    }
    router
        .fallback(pages::not_found)
        .with_state(state)
        // One per server: what every open event stream shares.
        .layer(Extension(Arc::new(events::SnapshotEvents::default())))
        // Outermost, so that refusals and the fallback carry the headers too.
        .layer(axum::middleware::map_response(security::headers))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    #[test]
    fn the_table_has_no_duplicates() {
        let specs = routes();
        let unique: BTreeSet<_> = specs
            .iter()
            .map(|s| (s.method.as_str().to_string(), s.path))
            .collect();
        assert_eq!(unique.len(), specs.len());
    }

    /// The router is made here and only here: no other source file of the crate
    /// adds routes, nests or merges routers behind the table's back.
    #[test]
    fn routes_are_added_only_through_the_table() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        // Built from parts so that this test does not find itself.
        let needles: Vec<String> = ["route", "route_service", "nest", "nest_service", "merge"]
            .iter()
            .map(|name| [".", name, "("].concat())
            .collect();
        let mut found = Vec::new();
        let entries = std::fs::read_dir(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        for entry in entries {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for needle in &needles {
                for _ in text.matches(needle.as_str()) {
                    found.push(format!(
                        "{} {needle}",
                        path.file_name().unwrap_or_default().to_string_lossy()
                    ));
                }
            }
        }
        assert_eq!(
            found,
            vec![format!("routes.rs {}", needles[0])],
            "{found:?}"
        );
    }
}
