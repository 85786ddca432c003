//! The wall screen and the "no page here" page.

use askama::Template;
use query::live::LiveSnapshot;

use crate::history_page::{TODAY_REFRESH, TodayCurve, TodayView};
use crate::layout::{Layout, render};
use crate::{Catalog, Lang, Result, SiteInfo, WallView};

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
    /// The node's disk is low or failing: said in a discreet line.
    storage_notice: Option<String>,
    collective_needs: Option<String>,
    surplus_window: Option<String>,
    layout: Layout<'a>,
}

#[derive(Template)]
#[template(path = "not_found.html")]
struct NotFoundTemplate<'a> {
    layout: Layout<'a>,
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
    /// The node's disk: a discreet line when it is low on space or failing.
    pub storage: ingest::metrics::StorageStatus,
    /// The open collective needs (the assembly's, on the planning board), newest
    /// first: shown in one line in the footer, without who posted them.
    pub collective_needs: Vec<ledger::Intent>,
    /// The node's next open offer of solar surplus (its earliest window not over),
    /// shown in one line in the footer.
    pub surplus_offer: Option<ledger::Intent>,
}

/// Most collective needs the wall's footer line names; the rest are counted.
pub(crate) const WALL_NEEDS_SHOWN: usize = 3;

/// The footer's line of open collective needs: "Besoins de la communauté : Garde
/// d'enfants (2 h) · …", or nothing when there is none.
pub(crate) fn collective_needs_line(needs: &[ledger::Intent], lang: Lang) -> Option<String> {
    if needs.is_empty() {
        return None;
    }
    let t = Catalog::for_lang(lang);
    let mut items: Vec<String> = needs
        .iter()
        .take(WALL_NEEDS_SHOWN)
        .map(|i| {
            t.tf(
                "wall.need_item",
                &[
                    (
                        "description",
                        i.description.lines().next().unwrap_or_default(),
                    ),
                    (
                        "remaining",
                        &crate::plan_page::quantity_with_unit(i.remaining, i.unit, lang),
                    ),
                ],
            )
        })
        .collect();
    let more = needs.len().saturating_sub(WALL_NEEDS_SHOWN);
    if more > 0 {
        items.push(t.count("wall.needs_more", more as u64));
    }
    Some(t.tf("wall.collective_needs", &[("needs", &items.join(" · "))]))
}

/// The footer's line of the next solar surplus: "Prochain surplus solaire :
/// aujourd'hui 11:00–15:00, environ 6,2 kWh à utiliser (4,7 kWh encore libres)…",
/// the day said against `now` on the site's clocks; nothing without an offer with
/// a window.
pub(crate) fn surplus_window_line(
    offer: Option<&ledger::Intent>,
    now: chrono::DateTime<chrono::Utc>,
    lang: Lang,
    tz: chrono_tz::Tz,
) -> Option<String> {
    let offer = offer?;
    let (start, end) = (offer.window_start?, offer.window_end?);
    let t = Catalog::for_lang(lang);
    let local = |at: chrono::DateTime<chrono::Utc>| at.with_timezone(&tz);
    let today = local(now).date_naive();
    let day = local(start).date_naive();
    let day_text = if day == today {
        t.t("wall.surplus_today").to_string()
    } else if today.succ_opt() == Some(day) {
        t.t("wall.surplus_tomorrow").to_string()
    } else {
        crate::format::format_date_long(day, lang)
    };
    let hm = |at: chrono::DateTime<chrono::Utc>| local(at).format("%H:%M").to_string();
    Some(t.tf(
        "wall.surplus_window",
        &[
            ("day", &day_text),
            ("start", &hm(start.max(now))),
            ("end", &hm(end)),
            (
                "kwh",
                &crate::plan_page::quantity_with_unit(offer.quantity, offer.unit, lang),
            ),
            (
                "free",
                &crate::plan_page::quantity_with_unit(offer.remaining, offer.unit, lang),
            ),
        ],
    ))
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
    let page = WallTemplate {
        layout: Layout::new(lang, site, t.t("wall.title")),
        view: &view,
        today: &today,
        today_refresh_ms: TODAY_REFRESH.num_milliseconds(),
        assembly_link: context.assembly_link,
        ledger_link: context.ledger_link,
        installer_link: context.installer_link,
        storage_notice: crate::storage::storage_notice(&context.storage, lang),
        collective_needs: collective_needs_line(&context.collective_needs, lang),
        surplus_window: surplus_window_line(
            context.surplus_offer.as_ref(),
            snapshot.ts,
            lang,
            site.timezone,
        ),
    };
    render(&page, "wall.html")
}

/// The "no page here" document, in the reader's language.
pub fn render_not_found(lang: Lang, site: &SiteInfo) -> Result<String> {
    let t = Catalog::for_lang(lang);
    let page = NotFoundTemplate {
        layout: Layout::new(lang, site, t.t("notfound.title")),
    };
    render(&page, "not_found.html")
}
