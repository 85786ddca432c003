//! What people see. This crate turns what the node knows (a [`query::live::LiveSnapshot`],
//! the site's name and time zone) into view models with every figure already formatted
//! for the reader's language, renders them with askama templates, and owns the French
//! and English text (data files under `i18n/`), the wall screen's stylesheet and its
//! small live-update script. It never does I/O, HTTP or arithmetic on the energy
//! itself: it formats and arranges, and the `web` crate serves what it renders.
//!
//! Numbers are formatted here and, identically, by `static/wall.js` when a new
//! snapshot arrives over Server-Sent Events; the two must change together.
//!
//! Charts (the wall's curve of today, the history page) are SVG drawn on the
//! server: [`chart`] computes their geometry (scales, ticks, bars, paths) as plain
//! numbers, `templates/chart.html` writes it out; no script draws anything.

mod account;
mod assembly;
pub mod chart;
mod form;
mod format;
mod history_csv;
mod history_page;
mod i18n;
mod installer;
mod layout;
mod ledger_page;
mod me_page;
mod nav;
mod pages;
pub(crate) mod plan_page;
mod region;
mod sortition_page;
mod storage;
mod wall;

pub use account::{
    LoginProblem, LoginView, RefusalPage, SignedIn, login_problem_text, render_login,
    render_refusal, role_name,
};
pub use assembly::{
    AdoptionStep, AssemblyView, DraftForm, DraftService, Preview, PreviewRow, change_text,
    render_assembly,
};
pub use form::{DecisionForm, FormField, FormPage, FormProblem, form_problem_text};
pub use format::{
    category_name, format_communs, format_communs_exact, format_date_long, format_duration_hours,
    format_energy, format_hours, format_number, format_percent, format_power, format_time,
    hours_text, month_name, weekday_name,
};
pub use history_csv::{HistoryTable, history_csv};
pub use history_page::{
    ExportChoices, HistoryData, HistoryProblem, HistoryReader, TODAY_REFRESH, TODAY_STEP_MINUTES,
    TodayCurve, TodayView, history_href, history_problem_text, period_heading, render_history,
    render_history_problems, render_today_curve,
};
pub use i18n::{Catalog, Lang, negotiate};
pub use installer::{
    HttpsShown, InstallerDevice, InstallerView, ProbeForm, ProbeOutcome, installer_devices,
    render_installer,
};
pub use layout::{ASSET_VERSION, WALL_CSS, WALL_JS};
pub use ledger_page::{
    Confirmation, ContributionForm, FormTarget, LedgerForms, LedgerView, PROJECTION_DAYS,
    ParametersForm, TransferForm, render_ledger,
};
pub use me_page::{
    GrantForm, MeEraseView, MeView, MeterHour, MeterNow, render_me, render_me_erase,
};
pub use pages::{WallContext, render_not_found, render_wall, render_wall_for, render_wall_with};
pub use plan_page::{
    BoardConfirmation, BoardField, BoardProblem, BoardTarget, CommitForm, IntentForm, PlanForms,
    PlanView, author_name, board_problem_text, quantity_text, quantity_with_unit, render_plan,
};
pub use region::{
    RegionCompaction, RegionData, RegionHistoryData, RegionHistoryNode, RegionIntent, RegionNode,
    RegionRow, region_rows, render_region, render_region_history,
};
pub use sortition_page::{
    AnnounceForm, DrawView, SortitionForm, SortitionView, render_draw, render_sortition,
    sortition_problem_text,
};
pub use storage::storage_notice;
pub use wall::{Figures, ServiceRow, SignalView, TierView, WallView};

/// The site as the pages present it.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteInfo {
    pub name: String,
    /// Language of the pages for a reader who has not asked for one.
    pub default_lang: Lang,
    /// Times are shown in the site's time zone, whatever the reader's device says.
    pub timezone: chrono_tz::Tz,
}

/// What can go wrong while rendering a page.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("rendering template {template}: {source}")]
    Render {
        template: &'static str,
        #[source]
        source: askama::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
