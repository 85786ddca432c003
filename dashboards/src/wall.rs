//! The wall screen's view model: a [`LiveSnapshot`] with every figure and word
//! ready to print in the reader's language.

use std::collections::BTreeMap;

use query::live::{LiveSnapshot, ServiceState, Signal};

use crate::format::{NO_VALUE, format_date_long, format_moment, format_percent, format_power};
use crate::{Catalog, Lang, SiteInfo};

/// Below this many watts the battery and the grid are shown as resting rather than
/// as flowing one way; `wall.js` uses the same threshold.
pub(crate) const RESTING_BELOW_W: f64 = 20.0;

#[derive(Debug, Clone, PartialEq)]
pub struct WallView {
    pub lang: Lang,
    pub site_name: String,
    /// IANA name of the site's time zone, for the script to format times as we do.
    pub timezone: String,
    pub stale: bool,
    /// What the stale-data banner says (filled even when hidden).
    pub stale_text: String,
    pub figures: Figures,
    pub signal: SignalView,
    pub tiers: Vec<TierView>,
    /// How many services the tiers hold (the layout tightens for many).
    pub service_count: usize,
    /// "Dernière mesure : 14:32:05", or that nothing was ever received.
    pub last_data: String,
    /// RFC 3339 time of the newest reading, empty when none.
    pub last_data_iso: String,
    /// "Priorités votées le 12 mars 2026", or that no plan is adopted.
    pub plan: String,
    /// "12,5 heures": contributions validated this week, when known (see
    /// [`WallView::with_week_hours`]); the panel is left out otherwise.
    pub week_hours: Option<String>,
    /// The words `wall.js` needs to redraw the page, as `data-t-NAME` on `<body>`.
    pub script_texts: Vec<(&'static str, String)>,
}

/// The headline figures, formatted.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub production: String,
    pub consumption: String,
    /// State of charge, or "—" when the site reports none.
    pub battery_soc: String,
    /// "en charge · 1,2 kW" / "au repos".
    pub battery_flow: String,
    /// Grid power without its sign; `grid_direction` says which way it flows.
    pub grid: String,
    pub grid_direction: String,
    pub headroom: String,
    /// "sur 6,0 kW que le site peut leur donner".
    pub available: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SignalView {
    /// `use`, `hold` or `unknown`: a CSS class and `data-signal` value.
    pub code: &'static str,
    pub icon: &'static str,
    pub word: String,
    pub hint: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TierView {
    pub tier: u32,
    /// "Priorité 1".
    pub label: String,
    pub services: Vec<ServiceRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRow {
    pub id: std::sync::Arc<str>,
    pub name: std::sync::Arc<str>,
    /// `served`, `partial`, `shed` or `idle`: a CSS class and `data-state` value.
    pub state: &'static str,
    /// Told by an icon and a word as well as by colour.
    pub icon: &'static str,
    pub state_word: String,
    pub allocated: String,
    pub demand: String,
    /// The allocation against the demand in words: "reçoit 2,7 kW des 4,7 kW
    /// demandés", so that a partial share does not read as a cut.
    pub receives: String,
}

/// A row's state when the figures are out of date: nobody knows what a service
/// receives, and the wall must not say it from old readings.
pub(crate) const UNKNOWN_STATE: (&str, &str, &str) = ("unknown", "?", "state.unknown");

/// Code, icon and catalog key of a service state.
pub(crate) fn state_parts(state: ServiceState) -> (&'static str, &'static str, &'static str) {
    match state {
        ServiceState::Served => ("served", "✔", "state.served"),
        ServiceState::Partial => ("partial", "◐", "state.partial"),
        ServiceState::Shed => ("shed", "✖", "state.shed"),
        ServiceState::Idle => ("idle", "○", "state.idle"),
    }
}

impl WallView {
    pub fn new(snapshot: &LiveSnapshot, lang: Lang, site: &SiteInfo) -> WallView {
        let t = Catalog::for_lang(lang);
        let tz = site.timezone;
        let s = &snapshot.site;
        let power = |w: f64| format_power(w, lang);

        // Old figures are not readings: on a stale snapshot every figure is unknown
        // ("—"), whatever the last values were, so that a reload under the stale
        // banner never draws "0 W" or "à l'équilibre" as if measured.
        let figures = if snapshot.stale {
            Figures::unknown(t)
        } else {
            Figures::new(s, t, lang)
        };

        // Figures that stopped moving must not invite anyone to switch a load on.
        let signal = if snapshot.stale {
            Signal::Unknown
        } else {
            snapshot.signal
        };
        let (code, icon, word, hint) = match signal {
            Signal::Use => ("use", "☀", t.t("signal.use"), t.t("signal.use_hint")),
            Signal::Hold => ("hold", "⊘", t.t("signal.hold"), t.t("signal.hold_hint")),
            Signal::Unknown => (
                "unknown",
                "?",
                t.t("signal.unknown"),
                t.t("signal.unknown_hint"),
            ),
        };
        let signal = SignalView {
            code,
            icon,
            word: word.to_string(),
            hint: hint.to_string(),
        };

        let mut by_tier: BTreeMap<u32, Vec<ServiceRow>> = BTreeMap::new();
        for service in &snapshot.services {
            let (state, icon, word_key) = if snapshot.stale {
                UNKNOWN_STATE
            } else {
                state_parts(service.state)
            };
            let (allocated, demand, receives) = if snapshot.stale {
                (NO_VALUE.to_string(), NO_VALUE.to_string(), String::new())
            } else {
                let allocated = power(service.allocated_w);
                let demand = power(service.demand_w);
                let receives = if service.state == ServiceState::Idle {
                    String::new()
                } else {
                    t.tf(
                        "wall.service_receives",
                        &[("allocated", &allocated), ("demand", &demand)],
                    )
                };
                (allocated, demand, receives)
            };
            by_tier.entry(service.tier).or_default().push(ServiceRow {
                id: service.id.clone(),
                name: service.name.clone(),
                state,
                icon,
                state_word: t.t(word_key).to_string(),
                allocated,
                demand,
                receives,
            });
        }
        let tiers = by_tier
            .into_iter()
            .map(|(tier, services)| TierView {
                tier,
                label: t.tf("wall.tier", &[("tier", &tier.to_string())]),
                services,
            })
            .collect();

        let (last_data, stale_text, last_data_iso) = match snapshot.last_data {
            Some(at) => {
                let moment = format_moment(at, snapshot.ts, tz);
                (
                    t.tf("wall.last_data", &[("time", &moment)]),
                    t.tf("wall.stale_since", &[("time", &moment)]),
                    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                )
            }
            None => (
                t.t("wall.no_data").to_string(),
                t.t("wall.stale_never").to_string(),
                String::new(),
            ),
        };

        let plan = match &snapshot.plan {
            Some(plan) => {
                let date = plan.adopted_at.with_timezone(&tz).date_naive();
                t.tf(
                    "wall.plan_adopted",
                    &[("date", &format_date_long(date, lang))],
                )
            }
            None => t.t("wall.no_plan").to_string(),
        };

        WallView {
            lang,
            site_name: site.name.clone(),
            timezone: tz.name().to_string(),
            stale: snapshot.stale,
            stale_text,
            figures,
            signal,
            tiers,
            service_count: snapshot.services.len(),
            last_data,
            last_data_iso,
            plan,
            week_hours: None,
            script_texts: script_texts(t),
        }
    }

    /// The same view with the hours of contributions validated this week.
    pub fn with_week_hours(mut self, hours: Option<ledger::Hours>) -> WallView {
        self.week_hours = hours.map(|h| crate::format::hours_text(h, self.lang));
        self
    }
}

impl Figures {
    fn new(s: &query::live::SiteBalance, t: &Catalog, lang: Lang) -> Figures {
        let power = |w: f64| format_power(w, lang);
        let grid_direction = if s.grid_w >= RESTING_BELOW_W {
            t.t("wall.grid_import")
        } else if s.grid_w <= -RESTING_BELOW_W {
            t.t("wall.grid_export")
        } else {
            t.t("wall.grid_idle")
        };
        Figures {
            production: power(s.pv_w),
            consumption: power((s.load_w + s.unmetered_w).max(0.0)),
            battery_soc: s
                .battery_soc_pct
                .map(|p| format_percent(p, lang))
                .unwrap_or_else(|| NO_VALUE.to_string()),
            battery_flow: battery_flow(t, s.battery_w, lang),
            grid: power(s.grid_w.abs()),
            grid_direction: grid_direction.to_string(),
            headroom: power(s.headroom_w),
            available: t.tf("wall.available", &[("power", &power(s.available_w))]),
        }
    }

    /// Every figure "—" and every direction "inconnu".
    fn unknown(t: &Catalog) -> Figures {
        let unknown = t.t("wall.unknown").to_string();
        Figures {
            production: NO_VALUE.to_string(),
            consumption: NO_VALUE.to_string(),
            battery_soc: NO_VALUE.to_string(),
            battery_flow: unknown.clone(),
            grid: NO_VALUE.to_string(),
            grid_direction: unknown.clone(),
            headroom: NO_VALUE.to_string(),
            available: unknown,
        }
    }
}

fn battery_flow(t: &Catalog, battery_w: f64, lang: Lang) -> String {
    let power = format_power(battery_w.abs(), lang);
    if battery_w >= RESTING_BELOW_W {
        t.tf("wall.battery_discharging", &[("power", &power)])
    } else if battery_w <= -RESTING_BELOW_W {
        t.tf("wall.battery_charging", &[("power", &power)])
    } else {
        t.t("wall.battery_idle").to_string()
    }
}

/// The catalog entries `wall.js` needs, under the names it reads them by.
const SCRIPT_TEXT_KEYS: [(&str, &str); 28] = [
    ("state-served", "state.served"),
    ("state-unknown", "state.unknown"),
    ("unknown", "wall.unknown"),
    ("service-receives", "wall.service_receives"),
    ("state-partial", "state.partial"),
    ("state-shed", "state.shed"),
    ("state-idle", "state.idle"),
    ("signal-use", "signal.use"),
    ("signal-hold", "signal.hold"),
    ("signal-unknown", "signal.unknown"),
    ("hint-use", "signal.use_hint"),
    ("hint-hold", "signal.hold_hint"),
    ("hint-unknown", "signal.unknown_hint"),
    ("battery-charging", "wall.battery_charging"),
    ("battery-discharging", "wall.battery_discharging"),
    ("battery-idle", "wall.battery_idle"),
    ("grid-import", "wall.grid_import"),
    ("grid-export", "wall.grid_export"),
    ("grid-idle", "wall.grid_idle"),
    ("available", "wall.available"),
    ("last-data", "wall.last_data"),
    ("no-data", "wall.no_data"),
    ("stale-since", "wall.stale_since"),
    ("stale-never", "wall.stale_never"),
    ("stale-no-update", "wall.stale_no_update"),
    ("connection-lost", "wall.connection_lost"),
    ("hours-one", "hours.one"),
    ("hours-many", "hours.many"),
];

fn script_texts(t: &Catalog) -> Vec<(&'static str, String)> {
    SCRIPT_TEXT_KEYS
        .into_iter()
        .map(|(name, key)| (name, t.t(key).to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use query::live::{PlanInfo, ServiceLive, SiteBalance};

    use super::*;

    fn site() -> SiteInfo {
        SiteInfo {
            name: "Les Tilleuls".into(),
            default_lang: Lang::Fr,
            timezone: chrono_tz::Europe::Paris,
        }
    }

    fn service(
        id: &str,
        tier: u32,
        demand_w: f64,
        allocated_w: f64,
        state: ServiceState,
    ) -> ServiceLive {
        ServiceLive {
            id: id.into(),
            name: format!("Service {id}").into(),
            tier,
            demand_w,
            allocated_w,
            state,
            min_w: 0.0,
            max_w: None,
            reason: "tier_share",
        }
    }

    pub(crate) fn snapshot() -> LiveSnapshot {
        let ts = Utc
            .with_ymd_and_hms(2026, 3, 14, 13, 32, 5)
            .single()
            .unwrap_or_default();
        LiveSnapshot {
            ts,
            stale: false,
            last_data: Some(ts),
            site: SiteBalance {
                pv_w: 4321.0,
                grid_w: -1500.0,
                battery_w: -800.0,
                battery_soc_pct: Some(62.4),
                load_w: 1900.0,
                unmetered_w: 121.0,
                available_w: 6000.0,
                allocated_w: 5200.0,
                headroom_w: 800.0,
                ..Default::default()
            },
            services: vec![
                service("pump", 2, 900.0, 450.0, ServiceState::Partial),
                service("fridge", 1, 150.0, 150.0, ServiceState::Served),
                service("sauna", 3, 3000.0, 0.0, ServiceState::Shed),
                service("oven", 2, 0.0, 0.0, ServiceState::Idle),
            ],
            devices: vec![],
            signal: Signal::Use,
            plan: Some(PlanInfo {
                seq: 7,
                adopted_at: Utc
                    .with_ymd_and_hms(2026, 3, 12, 19, 0, 0)
                    .single()
                    .unwrap_or_default(),
            }),
            pools: vec![],
        }
    }

    #[test]
    fn french_figures_and_words() {
        let view = WallView::new(&snapshot(), Lang::Fr, &site());
        assert_eq!(view.figures.production, "4,3 kW");
        assert_eq!(view.figures.consumption, "2,0 kW");
        assert_eq!(view.figures.battery_soc, "62 %");
        assert_eq!(view.figures.battery_flow, "en charge · 800 W");
        assert_eq!(view.figures.grid, "1,5 kW");
        assert_eq!(view.figures.grid_direction, "injecté sur le réseau");
        assert_eq!(view.figures.headroom, "800 W");
        assert_eq!(
            view.figures.available,
            "sur 6,0 kW que le site peut leur donner"
        );
        assert_eq!(view.signal.code, "use");
        assert_eq!(view.signal.word, "Bon moment pour consommer");
        assert_eq!(view.last_data, "Dernière mesure : 14:32:05");
        assert_eq!(view.plan, "Priorités votées le 12 mars 2026");
        assert_eq!(view.timezone, "Europe/Paris");
        let tiers: Vec<_> = view.tiers.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(tiers, ["Priorité 1", "Priorité 2", "Priorité 3"]);
        let pump = &view.tiers[1].services[0];
        assert_eq!(
            (&*pump.id, pump.state, pump.icon, pump.state_word.as_str()),
            ("pump", "partial", "◐", "partiel")
        );
        assert_eq!(
            (pump.allocated.as_str(), pump.demand.as_str()),
            ("450 W", "900 W")
        );
        assert_eq!(pump.receives, "reçoit 450 W des 900 W demandés");
        // A service asking nothing receives nothing worth a sentence.
        assert_eq!(view.tiers[1].services[1].receives, "");
        let sauna = &view.tiers[2].services[0];
        assert_eq!((sauna.state, sauna.icon), ("shed", "✖"));
        assert_eq!(view.tiers[1].services[1].icon, "○");
    }

    #[test]
    fn the_week_panel_counts_hours_in_each_language() {
        let view = WallView::new(&snapshot(), Lang::Fr, &site());
        assert_eq!(view.week_hours, None);
        let hours = Some(ledger::Hours::from_centihours(1250));
        let fr = WallView::new(&snapshot(), Lang::Fr, &site()).with_week_hours(hours);
        assert_eq!(fr.week_hours.as_deref(), Some("12,5 heures"));
        let en = WallView::new(&snapshot(), Lang::En, &site())
            .with_week_hours(Some(ledger::Hours::from_centihours(100)));
        assert_eq!(en.week_hours.as_deref(), Some("1 hour"));
    }

    #[test]
    fn english_figures_and_words() {
        let view = WallView::new(&snapshot(), Lang::En, &site());
        assert_eq!(view.figures.production, "4.3 kW");
        assert_eq!(view.figures.battery_soc, "62%");
        assert_eq!(view.signal.word, "Good time to use power");
        assert_eq!(view.plan, "Priorities voted on 12 March 2026");
        assert_eq!(view.tiers[0].services[0].state_word, "served");
        assert_eq!(view.tiers[0].services[0].icon, "✔");
    }

    #[test]
    fn stale_snapshot_says_so_and_withholds_the_signal() {
        let mut snap = snapshot();
        snap.stale = true;
        snap.signal = Signal::Hold;
        let view = WallView::new(&snap, Lang::Fr, &site());
        assert!(view.stale);
        assert_eq!(view.signal.code, "unknown");
        assert!(view.stale_text.contains("14:32:05"), "{}", view.stale_text);
        // Old figures are not shown as readings: every figure and state unknown.
        let f = &view.figures;
        for figure in [
            &f.production,
            &f.consumption,
            &f.battery_soc,
            &f.grid,
            &f.headroom,
        ] {
            assert_eq!(figure, "—");
        }
        assert_eq!(f.grid_direction, "inconnu");
        assert_eq!(f.battery_flow, "inconnu");
        for row in view.tiers.iter().flat_map(|t| &t.services) {
            assert_eq!((row.state, row.state_word.as_str()), ("unknown", "inconnu"));
            assert_eq!((row.allocated.as_str(), row.receives.as_str()), ("—", ""));
        }
        let en = WallView::new(&snap, Lang::En, &site());
        assert_eq!(en.signal.word, "No current data");
        assert_eq!(en.tiers[0].services[0].state_word, "unknown");

        snap.last_data = None;
        snap.plan = None;
        let view = WallView::new(&snap, Lang::En, &site());
        assert_eq!(view.last_data, "No reading received yet");
        assert_eq!(view.plan, "No priority plan adopted yet");
        assert!(view.last_data_iso.is_empty());
    }

    #[test]
    fn hold_signal_and_no_battery() {
        let mut snap = snapshot();
        snap.signal = Signal::Hold;
        snap.site.battery_soc_pct = None;
        snap.site.battery_w = 5.0;
        snap.site.grid_w = 2500.0;
        let view = WallView::new(&snap, Lang::En, &site());
        assert_eq!(view.signal.word, "Hold off");
        assert_eq!(view.signal.code, "hold");
        assert_eq!(view.figures.battery_soc, "—");
        assert_eq!(view.figures.battery_flow, "idle");
        assert_eq!(view.figures.grid_direction, "drawn from the grid");
    }

    /// Keys held in tables rather than passed to `t` directly, which the
    /// catalog test cannot see.
    #[test]
    fn keys_in_tables_are_translated() {
        let state_keys = [
            ServiceState::Served,
            ServiceState::Partial,
            ServiceState::Shed,
            ServiceState::Idle,
        ]
        .map(|s| state_parts(s).2);
        let keys = SCRIPT_TEXT_KEYS
            .iter()
            .map(|(_, key)| *key)
            .chain(state_keys)
            .chain([UNKNOWN_STATE.2]);
        for key in keys {
            for lang in Lang::ALL {
                assert_ne!(Catalog::for_lang(lang).t(key), key, "{lang}: {key} missing");
            }
        }
    }
}
