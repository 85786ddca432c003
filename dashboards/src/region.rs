//! The region's page (`communalia region`): every node of the federation with its
//! state and the age of its latest summary, stale nodes flagged in words, the
//! region's totals, and who has surplus power now. The figures come from the
//! region's queries (the `federation` crate) as plain numbers; this module only
//! formats and arranges them, as for the wall.

use askama::Template;
use chrono::{DateTime, Utc};

use crate::layout::{Layout, render};
use crate::{Catalog, Lang, Result, SiteInfo, format_power};

/// One node as the region last heard it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegionNode {
    pub id: String,
    pub name: String,
    /// Seconds since its latest summary's minute ended; `None` if never heard.
    pub age_s: Option<f64>,
    pub stale: bool,
    pub production_w: Option<f64>,
    pub consumption_w: Option<f64>,
    pub surplus_w: Option<f64>,
    pub grid_w: Option<f64>,
    pub battery_soc_pct: Option<f64>,
    pub served: Option<u32>,
    pub partial: Option<u32>,
    pub shed: Option<u32>,
    /// Summaries naming this node that the region refused (forged, or signed
    /// with a key it does not know for the node); 0 when none.
    pub refused: u64,
    /// The witnesses (their names) that refuse the node's latest checkpoint.
    pub witness_refused_by: Vec<String>,
}

/// What the region's page shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegionData {
    pub nodes: Vec<RegionNode>,
    /// Nodes configured, and those whose latest summary is current.
    pub node_count: u64,
    pub current_count: u64,
    /// Totals over the current nodes.
    pub production_w: f64,
    pub consumption_w: f64,
    pub surplus_w: f64,
    /// Current nodes with surplus, largest first: (name, watts).
    pub surplus: Vec<(String, f64)>,
    /// Summaries refused (bad signature, unknown node) since the region started.
    pub refused: u64,
    pub now: DateTime<Utc>,
    /// The open needs and offers the current nodes share with the federation.
    pub intents: Vec<RegionIntent>,
}

/// A need or offer a node shares with the federation.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionIntent {
    /// The node's name.
    pub node: String,
    pub need: bool,
    pub class: String,
    pub remaining: ledger::Quantity,
    pub unit: ledger::Unit,
    pub description: String,
}

/// A node's row, every figure written out.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionRow {
    pub id: String,
    pub name: String,
    /// `current`, `stale` or `never`: the row's class.
    pub state: &'static str,
    pub state_text: String,
    pub age: String,
    pub production: String,
    pub consumption: String,
    pub surplus: String,
    pub grid: String,
    pub battery: String,
    pub services: String,
    /// Said in the row when summaries naming the node were refused.
    pub refused: Option<String>,
    /// Said in the row when its witnesses refuse its journal.
    pub witness_refused: Option<String>,
}

#[derive(Template)]
#[template(path = "region.html")]
struct RegionTemplate<'a> {
    rows: Vec<RegionRow>,
    counts: String,
    production: String,
    consumption: String,
    surplus: String,
    surplus_rows: Vec<(String, String)>,
    refused: Option<String>,
    updated: String,
    /// One line each: who, need or offer, what, how much.
    intents: Vec<String>,
    layout: Layout<'a>,
}

/// How long ago, in seconds below two minutes, else minutes, else hours.
fn age_text(t: &Catalog, age_s: f64) -> String {
    let secs = age_s.max(0.0).round() as u64;
    if secs < 120 {
        t.tf("region.age_seconds", &[("n", &secs.to_string())])
    } else if secs < 120 * 60 {
        t.tf("region.age_minutes", &[("n", &(secs / 60).to_string())])
    } else {
        t.tf("region.age_hours", &[("n", &(secs / 3600).to_string())])
    }
}

fn power(w: Option<f64>, lang: Lang) -> String {
    w.map_or_else(
        || crate::format::NO_VALUE.to_string(),
        |w| format_power(w, lang),
    )
}

/// The rows of the page's table.
pub fn region_rows(data: &RegionData, lang: Lang) -> Vec<RegionRow> {
    let t = Catalog::for_lang(lang);
    data.nodes
        .iter()
        .map(|n| {
            let (state, state_text) = match (n.age_s, n.stale) {
                (None, _) => ("never", t.t("region.never").to_string()),
                (Some(_), true) => ("stale", t.t("region.stale").to_string()),
                (Some(_), false) => ("current", t.t("region.current").to_string()),
            };
            let services = match (n.served, n.partial, n.shed) {
                (Some(served), Some(partial), Some(shed)) => t.tf(
                    "region.services_counts",
                    &[
                        ("served", &served.to_string()),
                        ("partial", &partial.to_string()),
                        ("shed", &shed.to_string()),
                    ],
                ),
                _ => crate::format::NO_VALUE.to_string(),
            };
            RegionRow {
                id: n.id.clone(),
                name: n.name.clone(),
                state,
                state_text,
                age: n
                    .age_s
                    .map_or_else(|| crate::format::NO_VALUE.to_string(), |a| age_text(t, a)),
                production: power(n.production_w, lang),
                consumption: power(n.consumption_w, lang),
                surplus: power(n.surplus_w, lang),
                grid: power(n.grid_w, lang),
                battery: n.battery_soc_pct.map_or_else(
                    || crate::format::NO_VALUE.to_string(),
                    |p| crate::format_percent(p, lang),
                ),
                services,
                refused: (n.refused > 0).then(|| t.count("region.node_refused", n.refused)),
                witness_refused: (!n.witness_refused_by.is_empty()).then(|| {
                    t.tf(
                        "region.node_witness_refused",
                        &[("witnesses", &n.witness_refused_by.join(", "))],
                    )
                }),
            }
        })
        .collect()
}

/// The region's page as a complete HTML document.
pub fn render_region(data: &RegionData, lang: Lang, site: &SiteInfo) -> Result<String> {
    let t = Catalog::for_lang(lang);
    let page = RegionTemplate {
        rows: region_rows(data, lang),
        counts: t.tf(
            "region.current_count",
            &[
                ("current", &data.current_count.to_string()),
                ("nodes", &data.node_count.to_string()),
            ],
        ),
        production: format_power(data.production_w, lang),
        consumption: format_power(data.consumption_w, lang),
        surplus: format_power(data.surplus_w, lang),
        surplus_rows: data
            .surplus
            .iter()
            .map(|(name, w)| (name.clone(), format_power(*w, lang)))
            .collect(),
        refused: (data.refused > 0).then(|| t.count("region.refused", data.refused)),
        updated: t.tf(
            "region.updated",
            &[("time", &crate::format_time(data.now, site.timezone))],
        ),
        intents: data
            .intents
            .iter()
            .map(|i| {
                t.tf(
                    "region.intent_line",
                    &[
                        ("node", &i.node),
                        (
                            "direction",
                            t.t(if i.need { "plan.need" } else { "plan.offer" }),
                        ),
                        ("class", &i.class),
                        (
                            "quantity",
                            &crate::plan_page::quantity_with_unit(i.remaining, i.unit, lang),
                        ),
                        ("description", &i.description),
                    ],
                )
            })
            .collect(),
        layout: Layout::new(lang, site, t.t("region.title")),
    };
    render(&page, "region.html")
}

/// One node's energy over a period, from the bucket's archives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegionHistoryNode {
    pub name: String,
    pub production_wh: f64,
    pub consumption_wh: f64,
    pub surplus_wh: f64,
    /// Minutes archived in the period.
    pub minutes: u64,
}

/// What the region's history page shows: `[from, to]`, the region's energy each
/// day (summed over the nodes archived that day), and each node's over the period.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionHistoryData {
    pub from: chrono::NaiveDate,
    pub to: chrono::NaiveDate,
    /// Every day of the period, with its production and consumption in Wh
    /// (`None`: nothing archived that day).
    pub days: Vec<(chrono::NaiveDate, Option<(f64, f64)>)>,
    pub nodes: Vec<RegionHistoryNode>,
    /// `false` when the region has no bucket: the page says so.
    pub has_archive: bool,
    /// Whether the history comes from the region's compacted months, and how
    /// recent they are: the page says up to when it counts.
    pub compaction: RegionCompaction,
}

/// Where a region's history comes from.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum RegionCompaction {
    /// The nodes' own daily files, read as they are.
    #[default]
    Off,
    /// The compacted months, before the region's first pass.
    Pending,
    /// The compacted months, as of the pass that ended then.
    Passed(chrono::DateTime<chrono::Utc>),
}

struct RegionHistoryRow {
    name: String,
    production: String,
    consumption: String,
    surplus: String,
    days: String,
}

struct LegendLine {
    class: &'static str,
    hatched: bool,
    label: String,
}

#[derive(Template)]
#[template(path = "region_history.html")]
struct RegionHistoryTemplate<'a> {
    from: String,
    to: String,
    has_archive: bool,
    chart: Option<crate::chart::ChartSvg>,
    legend: Vec<LegendLine>,
    rows: Vec<RegionHistoryRow>,
    compaction_note: Option<String>,
    csv_href: String,
    parquet_href: String,
    layout: Layout<'a>,
}

/// The region's history page.
pub fn render_region_history(
    data: &RegionHistoryData,
    lang: Lang,
    site: &SiteInfo,
) -> Result<String> {
    use crate::chart::{BarChart, Series, bar_chart};
    let t = Catalog::for_lang(lang);
    let has_data = data.days.iter().any(|(_, d)| d.is_some());
    let kwh = |wh: f64| wh / 1000.0;
    let series = vec![
        Series {
            class: "series-production",
            label: t.t("history.production").to_string(),
            values: data.days.iter().map(|(_, d)| d.map(|d| kwh(d.0))).collect(),
            hatched: false,
        },
        Series {
            class: "series-consumption",
            label: t.t("history.consumption").to_string(),
            values: data.days.iter().map(|(_, d)| d.map(|d| kwh(d.1))).collect(),
            hatched: true,
        },
    ];
    let legend = series
        .iter()
        .map(|s| LegendLine {
            class: s.class,
            hatched: s.hatched,
            label: s.label.clone(),
        })
        .collect();
    // At most about twelve labels along the axis.
    let every = data.days.len().div_ceil(12).max(1);
    let categories = data
        .days
        .iter()
        .enumerate()
        .map(|(i, (d, _))| (i % every == 0).then(|| d.format("%d/%m").to_string()))
        .collect();
    let names = data.days.iter().map(|(d, _)| d.to_string()).collect();
    let tick = |v: f64, d: usize| crate::format_number(v, d, lang);
    let value = |v: f64| crate::format_energy(v * 1000.0, lang);
    let chart = data.has_archive.then(|| {
        bar_chart(&BarChart {
            id: "region-energy",
            title: t.t("region.history_chart").to_string(),
            unit: "kWh".into(),
            categories,
            category_names: names,
            series,
            stacked: false,
            fixed: None,
            tick_label: &tick,
            value_label: &value,
            empty: (!has_data).then(|| t.t("region.history_empty").to_string()),
        })
    });
    let rows = data
        .nodes
        .iter()
        .map(|n| RegionHistoryRow {
            name: n.name.clone(),
            production: crate::format_energy(n.production_wh, lang),
            consumption: crate::format_energy(n.consumption_wh, lang),
            surplus: crate::format_energy(n.surplus_wh, lang),
            days: crate::format_number(n.minutes as f64 / 1440.0, 1, lang),
        })
        .collect();
    let range = format!("from={}&to={}", data.from, data.to);
    let compaction_note = match data.compaction {
        RegionCompaction::Off => None,
        RegionCompaction::Pending => Some(t.t("region.history_compaction_pending").to_string()),
        RegionCompaction::Passed(at) => {
            let at = at
                .with_timezone(&site.timezone)
                .format("%d/%m %H:%M")
                .to_string();
            Some(t.tf("region.history_compaction_at", &[("at", &at)]))
        }
    };
    let page = RegionHistoryTemplate {
        from: data.from.to_string(),
        to: data.to.to_string(),
        has_archive: data.has_archive,
        chart,
        legend,
        rows,
        compaction_note,
        csv_href: format!("/api/region/export?{range}&format=csv"),
        parquet_href: format!("/api/region/export?{range}&format=parquet"),
        layout: Layout::new(lang, site, t.t("region.history_title")),
    };
    render(&page, "region_history.html")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> SiteInfo {
        SiteInfo {
            name: "Vallée".into(),
            default_lang: Lang::Fr,
            timezone: chrono_tz::UTC,
        }
    }

    fn data() -> RegionData {
        RegionData {
            nodes: vec![
                RegionNode {
                    id: "a".into(),
                    name: "Les Tilleuls".into(),
                    age_s: Some(42.0),
                    stale: false,
                    production_w: Some(5200.0),
                    consumption_w: Some(3100.0),
                    surplus_w: Some(2100.0),
                    grid_w: Some(-2100.0),
                    battery_soc_pct: None,
                    served: Some(3),
                    partial: Some(1),
                    shed: Some(0),
                    refused: 0,
                    witness_refused_by: vec![],
                },
                RegionNode {
                    id: "b".into(),
                    name: "Les Platanes".into(),
                    age_s: Some(600.0),
                    stale: true,
                    production_w: Some(100.0),
                    refused: 2,
                    ..RegionNode::default()
                },
                RegionNode {
                    id: "c".into(),
                    name: "Le Moulin".into(),
                    witness_refused_by: vec!["Les Tilleuls".into(), "Les Platanes".into()],
                    ..RegionNode::default()
                },
            ],
            node_count: 3,
            current_count: 1,
            production_w: 5200.0,
            consumption_w: 3100.0,
            surplus_w: 2100.0,
            surplus: vec![("Les Tilleuls".into(), 2100.0)],
            refused: 2,
            now: chrono::DateTime::from_timestamp(1_780_000_000, 0).unwrap_or_default(),
            intents: vec![RegionIntent {
                node: "Le Moulin".into(),
                need: true,
                class: "bike-repair".into(),
                remaining: ledger::Quantity::from_centi(300),
                unit: ledger::Unit::Hours,
                description: "Deux vélos à réparer".into(),
            }],
        }
    }

    #[test]
    fn each_node_says_its_state_and_age_in_words() {
        let rows = region_rows(&data(), Lang::En);
        assert_eq!(rows[0].state, "current");
        assert_eq!(rows[0].age, "42 s");
        assert_eq!(rows[0].production, "5.2 kW");
        assert_eq!(rows[0].services, "3 served · 1 partly · 0 shed");
        assert_eq!(rows[1].state, "stale");
        assert_eq!(rows[1].age, "10 min");
        assert_eq!(rows[2].state, "never");
        assert_eq!(rows[2].production, "—");
        // A node whose journal its witnesses refuse says so, naming them.
        assert_eq!(rows[0].witness_refused, None);
        assert_eq!(
            rows[2].witness_refused.as_deref(),
            Some(
                "Journal refused by its witnesses (Les Tilleuls, Les Platanes): it no \
                 longer extends what they cosigned (rewritten or cut)"
            )
        );
        // A node under whose name summaries were refused is flagged in its row.
        assert_eq!(rows[0].refused, None);
        assert_eq!(
            rows[1].refused.as_deref(),
            Some("2 summaries under this name refused: forged, or not signed with the node's key")
        );
        let html = render_region(&data(), Lang::En, &site()).expect("renders");
        assert!(
            html.contains(r#"<tr class="node-stale node-refused" data-node="b">"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<tr class="node-current" data-node="a">"#),
            "{html}"
        );
        let fr = region_rows(&data(), Lang::Fr);
        assert_eq!(fr[0].production, "5,2 kW");
        assert_eq!(fr[1].state_text, "Pas à jour");
    }

    #[test]
    fn the_page_names_every_node_the_totals_and_the_refusals() {
        for lang in Lang::ALL {
            let html = render_region(&data(), lang, &site()).expect("renders");
            for name in ["Les Tilleuls", "Les Platanes", "Le Moulin"] {
                assert!(html.contains(name), "{lang}: {name}");
            }
            let t = Catalog::for_lang(lang);
            assert!(html.contains(t.t("region.who_surplus")), "{lang}");
            // The refusals' sentence up to its first apostrophe (escaped in HTML).
            let refused = t.count("region.refused", 2);
            let plain = refused.split('\'').next().unwrap_or_default();
            assert!(html.contains(plain), "{lang}: {plain}");
            assert!(
                html.contains(&t.tf("region.current_count", &[("current", "1"), ("nodes", "3")]))
            );
            // The needs and offers shared with the federation, with their node.
            assert!(html.contains(t.t("region.intents")), "{lang}");
            assert!(
                html.contains("data-field=\"shared-intent\">Le Moulin")
                    && html.contains("bike-repair")
                    && html.contains("3 h"),
                "{lang}: {html}"
            );
        }
        let none = RegionData {
            intents: vec![],
            ..data()
        };
        let html = render_region(&none, Lang::En, &site()).expect("renders");
        assert!(!html.contains("shared-intent"), "no section without any");
    }
}
