//! The web crate's one integration test binary: the router through `oneshot`, a
//! real server for Server-Sent Events, and a real browser for the wall screen.

mod access;
mod accounts;
mod api;
mod assembly;
mod browser;
mod consent;
mod consent_browser;
mod csp_browser;
mod decisions;
mod events;
mod guard;
mod history_api;
mod history_browser;
mod history_page;
mod idempotency;
mod installer;
mod installer_browser;
mod ledger_api;
mod ledger_browser;
mod ledger_page;
mod metrics;
mod pages;
mod panel_browser;
mod phone_browser;
mod plan_browser;
mod plan_page;
mod planning_api;
mod plans;
mod privacy;
mod sortition;
mod sortition_browser;
mod support;
mod webdriver;
