//! Rendering: the askama templates under `templates/` and the static assets they
//! link to.

use askama::Template;
use query::live::LiveSnapshot;

use crate::history_page::{TODAY_REFRESH, TodayCurve, TodayView};
use crate::{Catalog, Error, Lang, Result, SiteInfo, WallView};

/// The wall screen's stylesheet, served at `/static/wall.css`.
pub const WALL_CSS: &str = include_str!("../static/wall.css");
/// The wall screen's live-update script, served at `/static/wall.js`.
pub const WALL_JS: &str = include_str!("../static/wall.js");

/// Changes whenever either asset changes; pages link `?v=ASSET_VERSION` so a
/// browser that cached an older asset fetches the new one, and it doubles as the
/// assets' ETag.
pub const ASSET_VERSION: u64 = fnv1a(WALL_JS.as_bytes(), fnv1a(WALL_CSS.as_bytes(), FNV_OFFSET));

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

const fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

#[derive(Template)]
#[template(path = "wall.html")]
struct WallTemplate<'a> {
    view: &'a WallView,
    /// Today's curve (or why there is none).
    today: &'a TodayView,
    /// Milliseconds between two fetches of the curve by `wall.js`.
    today_refresh_ms: i64,
    /// Shown to a signed-in member of the assembly: a link to their panel.
    assembly_link: bool,
    /// Shown to any signed-in member: a link to the ledger.
    ledger_link: bool,
    /// Shown to a signed-in installer: a link to the installer's page.
    installer_link: bool,
    site_name: &'a str,
    t: &'static Catalog,
    lang_code: &'static str,
    page_title: String,
    asset_version: u64,
}

#[derive(Template)]
#[template(path = "not_found.html")]
struct NotFoundTemplate<'a> {
    site_name: &'a str,
    t: &'static Catalog,
    lang_code: &'static str,
    page_title: String,
    asset_version: u64,
}

/// What the wall screen shows beside the live snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WallContext {
    /// The reader is a signed-in member of the assembly (the kiosk never is): a
    /// link to their panel.
    pub assembly_link: bool,
    /// The reader is a signed-in member: a link to the ledger.
    pub ledger_link: bool,
    /// The reader is a signed-in installer: a link to the installer's page.
    pub installer_link: bool,
    /// Hours of contributions validated this week (a community total), if known.
    pub week_hours: Option<ledger::Hours>,
    /// Today's production and consumption, when the node keeps a history.
    pub today: Option<TodayCurve>,
}

/// The wall screen as a complete HTML document.
pub fn render_wall(snapshot: &LiveSnapshot, lang: Lang, site: &SiteInfo) -> Result<String> {
    render_wall_with(snapshot, lang, site, &WallContext::default())
}

/// The wall screen, with a link to the assembly's panel when `assembly_link` (the
/// reader is a signed-in member of the assembly; the kiosk never is).
pub fn render_wall_for(
    snapshot: &LiveSnapshot,
    lang: Lang,
    site: &SiteInfo,
    assembly_link: bool,
) -> Result<String> {
    let context = WallContext {
        assembly_link,
        ..WallContext::default()
    };
    render_wall_with(snapshot, lang, site, &context)
}

/// The wall screen with what `context` adds to the snapshot.
pub fn render_wall_with(
    snapshot: &LiveSnapshot,
    lang: Lang,
    site: &SiteInfo,
    context: &WallContext,
) -> Result<String> {
    let t = Catalog::for_lang(lang);
    let view = WallView::new(snapshot, lang, site).with_week_hours(context.week_hours);
    let today = TodayView::new(context.today.as_ref(), lang, site.timezone);
    WallTemplate {
        page_title: format!("{} · {}", site.name, t.t("wall.title")),
        view: &view,
        today: &today,
        today_refresh_ms: TODAY_REFRESH.num_milliseconds(),
        assembly_link: context.assembly_link,
        ledger_link: context.ledger_link,
        installer_link: context.installer_link,
        site_name: &site.name,
        t,
        lang_code: lang.code(),
        asset_version: ASSET_VERSION,
    }
    .render()
    .map_err(|source| Error::Render {
        template: "wall.html",
        source,
    })
}

/// The "no page here" document, in the reader's language.
pub fn render_not_found(lang: Lang, site: &SiteInfo) -> Result<String> {
    let t = Catalog::for_lang(lang);
    NotFoundTemplate {
        page_title: format!("{} · {}", site.name, t.t("notfound.title")),
        site_name: &site.name,
        t,
        lang_code: lang.code(),
        asset_version: ASSET_VERSION,
    }
    .render()
    .map_err(|source| Error::Render {
        template: "not_found.html",
        source,
    })
}
