//! The history page (`/history`) and the wall screen's curve of today.
//!
//! The page shows a day by hour, a week or a month by day, or a year by month:
//! production and consumption, self-sufficiency, the battery (charge, discharge and
//! state of charge) and each service's served and shed energy, each as an SVG chart
//! with a table of the same figures beneath it. It is public like the wall screen:
//! it shows community totals and services only, never a household's meter. The
//! figures come from `query::charts`; here they are only arranged and formatted.

use askama::Template;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use query::charts::{Bucket, Period, ServiceSeries, SiteEnergy, SiteSeries, View, local_instant};

use crate::chart::{
    BarChart, ChartSvg, LineChart, LineSeries, PAGE_CHART, PAGE_MARGINS, RowChart, Series,
    bar_chart, line_chart, row_chart,
};
use crate::format::{
    NO_VALUE, day_of_month, format_date_long, format_duration_hours, format_energy, format_number,
    format_percent, month_name, weekday_name,
};
use crate::layout::{Layout, render};
use crate::{Catalog, Lang, Result, SiteInfo};

/// Who reads the page, for its links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryReader {
    pub name: String,
    pub assembly: bool,
}

/// What the export form offers a member: the community's devices (id, name) and
/// the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportChoices {
    pub devices: Vec<(String, String)>,
    pub metrics: Vec<&'static str>,
}

/// Everything the page is drawn from.
#[derive(Debug, Clone)]
pub struct HistoryData<'a> {
    pub period: Period,
    /// Today on the site's clocks: no link past it.
    pub today: NaiveDate,
    pub buckets: &'a [Bucket],
    /// `None` on a node that keeps no history.
    pub site: Option<&'a SiteSeries>,
    pub services: &'a [ServiceSeries],
    /// Whether the site has a battery (the battery's section is left out otherwise).
    pub has_battery: bool,
    /// `None` for a reader who is not signed in.
    pub reader: Option<HistoryReader>,
    /// The export form's choices, for a signed-in member.
    pub export: Option<ExportChoices>,
}

/// Why a history address is refused (400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryProblem {
    UnknownView(String),
    BadDate(String),
    /// A date the history cannot hold (before 1970 or after 9999).
    DateOutOfRange(String),
    UnknownParameter(String),
    Repeated(String),
    /// `download=` names no table of the page.
    UnknownTable(String),
}

/// The text of a problem, in words.
pub fn history_problem_text(problem: &HistoryProblem, lang: Lang) -> String {
    let t = Catalog::for_lang(lang);
    match problem {
        HistoryProblem::UnknownView(v) => t.tf("history.problem_view", &[("value", v)]),
        HistoryProblem::BadDate(v) => t.tf("history.problem_date", &[("value", v)]),
        HistoryProblem::DateOutOfRange(v) => t.tf("history.problem_date_range", &[("value", v)]),
        HistoryProblem::UnknownParameter(v) => t.tf("history.problem_parameter", &[("name", v)]),
        HistoryProblem::Repeated(v) => t.tf("history.problem_repeated", &[("name", v)]),
        HistoryProblem::UnknownTable(v) => t.tf("history.problem_table", &[("value", v)]),
    }
}

/// The page that refuses a history address (400), every problem said, with a
/// link to today's history.
pub fn render_history_problems(
    problems: &[HistoryProblem],
    lang: Lang,
    site: &SiteInfo,
) -> Result<String> {
    let t = Catalog::for_lang(lang);
    let title = t.t("history.problem_title");
    let text: Vec<String> = problems
        .iter()
        .map(|p| history_problem_text(p, lang))
        .collect();
    crate::account::render_message(
        lang,
        site,
        title,
        text.join(" "),
        Some(("/history".to_string(), t.t("history.back"))),
    )
}

/// A link of the page's navigation.
struct NavLink {
    href: String,
    label: String,
    current: bool,
}

/// A colour and pattern key beside a chart.
struct LegendEntry {
    class: &'static str,
    hatched: bool,
    label: String,
}

struct EnergyRow {
    label: String,
    production: String,
    consumption: String,
    import: String,
    export: String,
    self_sufficiency: String,
}

struct BatteryRow {
    label: String,
    charge: String,
    discharge: String,
    soc_avg: String,
    soc_range: String,
}

struct ServiceRow {
    id: String,
    name: String,
    demand: String,
    served: String,
    shed: String,
    shed_time: String,
}

struct BatterySection {
    chart: ChartSvg,
    soc_chart: ChartSvg,
    legend: Vec<LegendEntry>,
    rows: Vec<BatteryRow>,
    total: BatteryRow,
}

struct ExportView {
    from: String,
    to: String,
    devices: Vec<(String, String)>,
    metrics: Vec<&'static str>,
}

#[derive(Template)]
#[template(path = "history.html")]
struct HistoryTemplate<'a> {
    heading: String,
    /// `/history?view=…&date=…&download=`: a table's CSV is this and its name.
    download_href: String,
    /// The view and first day shown, for the date picker.
    view_code: &'static str,
    date_value: String,
    views: Vec<NavLink>,
    previous: Option<NavLink>,
    next: Option<NavLink>,
    today_link: Option<NavLink>,
    lang_fr_href: String,
    lang_en_href: String,
    no_history: bool,
    summary: Vec<(String, String)>,
    energy_chart: Option<ChartSvg>,
    energy_legend: Vec<LegendEntry>,
    energy_rows: Vec<EnergyRow>,
    energy_total: Option<EnergyRow>,
    self_chart: Option<ChartSvg>,
    battery: Option<BatterySection>,
    services_chart: Option<ChartSvg>,
    services_legend: Vec<LegendEntry>,
    service_rows: Vec<ServiceRow>,
    export: Option<ExportView>,
    sign_in_href: String,
    /// "Connecté·e : rita", for a signed-in reader.
    signed_in: Option<String>,
    reader_assembly: bool,
    bucket_heading: String,
    layout: Layout<'a>,
}

/// The address of a period's page.
pub fn history_href(period: &Period, lang: Option<Lang>) -> String {
    let mut href = format!(
        "/history?view={}&date={}",
        period.view().code(),
        period.start().format("%Y-%m-%d")
    );
    if let Some(lang) = lang {
        href.push_str("&lang=");
        href.push_str(lang.code());
    }
    href
}

/// "Jeudi 12 mars 2026", "Semaine du 9 mars 2026 au 15 mars 2026", "Mars 2026",
/// "2026".
pub fn period_heading(period: &Period, lang: Lang) -> String {
    let t = Catalog::for_lang(lang);
    let start = period.start();
    match period.view() {
        View::Day => capitalize(&format!(
            "{} {}",
            weekday_name(start.weekday(), lang, false),
            format_date_long(start, lang)
        )),
        View::Week => {
            let last = period.end().and_then(|e| e.pred_opt()).unwrap_or(start);
            t.tf(
                "history.week_heading",
                &[
                    ("from", &format_date_long(start, lang)),
                    ("to", &format_date_long(last, lang)),
                ],
            )
        }
        View::Month => capitalize(&format!(
            "{} {}",
            month_name(start.month(), lang, false),
            start.year()
        )),
        View::Year => start.year().to_string(),
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// "10 h" / "10:00": `{h}` is the hour, `{hh}` the same on two digits.
fn hour_text(hour: u32, lang: Lang) -> String {
    Catalog::for_lang(lang).tf(
        "chart.hour",
        &[("h", &hour.to_string()), ("hh", &format!("{hour:02}"))],
    )
}

/// A bucket's label on the axis (`None` to thin them out) and its full name.
fn bucket_labels(view: View, bucket: &Bucket, lang: Lang, tz: Tz) -> (Option<String>, String) {
    let local = bucket.local_start;
    let date = local.date();
    match view {
        View::Day => {
            let end = bucket.end.with_timezone(&tz).naive_local();
            let end_hour = if end.date() > date { 24 } else { end.hour() };
            let full = Catalog::for_lang(lang).tf(
                "chart.hour_span",
                &[
                    ("from", &hour_text(local.hour(), lang)),
                    ("to", &hour_text(end_hour, lang)),
                ],
            );
            let axis = local
                .hour()
                .is_multiple_of(3)
                .then(|| hour_text(local.hour(), lang));
            (axis, full)
        }
        View::Week => (
            Some(format!(
                "{} {}",
                weekday_name(date.weekday(), lang, true),
                date.day()
            )),
            day_name(date, lang),
        ),
        View::Month => (Some(date.day().to_string()), day_name(date, lang)),
        View::Year => (
            Some(month_name(date.month(), lang, true).to_string()),
            capitalize(&format!(
                "{} {}",
                month_name(date.month(), lang, false),
                date.year()
            )),
        ),
    }
}

/// "Jeudi 12 mars" / "Thursday 12 March".
fn day_name(date: NaiveDate, lang: Lang) -> String {
    capitalize(&Catalog::for_lang(lang).tf(
        "date.weekday_day_month",
        &[
            ("weekday", weekday_name(date.weekday(), lang, false)),
            ("day", &day_of_month(date, lang)),
            ("month", month_name(date.month(), lang, false)),
        ],
    ))
}

/// The unit energies of a chart are drawn in: Wh, kWh or MWh by the largest.
#[derive(Debug, Clone, Copy)]
struct EnergyUnit {
    divisor: f64,
    name: &'static str,
}

fn energy_unit(values: impl Iterator<Item = f64>) -> EnergyUnit {
    let largest = values
        .filter(|v| v.is_finite())
        .fold(0.0, |m: f64, v| m.max(v.abs()));
    if largest >= 1_000_000.0 {
        EnergyUnit {
            divisor: 1_000_000.0,
            name: "MWh",
        }
    } else if largest >= 1_000.0 {
        EnergyUnit {
            divisor: 1_000.0,
            name: "kWh",
        }
    } else {
        EnergyUnit {
            divisor: 1.0,
            name: "Wh",
        }
    }
}

fn legend(series: &[Series]) -> Vec<LegendEntry> {
    series
        .iter()
        .map(|s| LegendEntry {
            class: s.class,
            hatched: s.hatched,
            label: s.label.clone(),
        })
        .collect()
}

fn share(e: &SiteEnergy, lang: Lang) -> String {
    e.self_sufficiency()
        .map(|s| format_percent(s * 100.0, lang))
        .unwrap_or_else(|| NO_VALUE.to_string())
}

/// A bucket's energies, "—" for one without readings (nothing measured is not
/// nothing produced).
fn energy_row(label: String, e: &SiteEnergy, lang: Lang) -> EnergyRow {
    let wh = |v: f64| {
        if e.minutes == 0 {
            NO_VALUE.to_string()
        } else {
            format_energy(v, lang)
        }
    };
    EnergyRow {
        label,
        production: wh(e.production_wh),
        consumption: wh(e.consumption_wh),
        import: wh(e.grid_import_wh),
        export: wh(e.grid_export_wh),
        self_sufficiency: share(e, lang),
    }
}

fn battery_row(label: String, e: &SiteEnergy, lang: Lang) -> BatteryRow {
    let pct = |v: Option<f64>| v.map(|p| format_percent(p, lang));
    let wh = |v: f64| {
        if e.minutes == 0 {
            NO_VALUE.to_string()
        } else {
            format_energy(v, lang)
        }
    };
    BatteryRow {
        label,
        charge: wh(e.battery_charge_wh),
        discharge: wh(e.battery_discharge_wh),
        soc_avg: pct(e.soc_avg_pct).unwrap_or_else(|| NO_VALUE.to_string()),
        soc_range: match (pct(e.soc_min_pct), pct(e.soc_max_pct)) {
            (Some(lo), Some(hi)) => format!("{lo} – {hi}"),
            _ => NO_VALUE.to_string(),
        },
    }
}

/// The history page as a complete HTML document.
pub fn render_history(data: &HistoryData<'_>, lang: Lang, site: &SiteInfo) -> Result<String> {
    let t = Catalog::for_lang(lang);
    let tz = site.timezone;
    let period = data.period;
    let view = period.view();
    let heading = period_heading(&period, lang);

    let views = View::ALL
        .into_iter()
        .filter_map(|v| {
            // The period of the new view that holds this period's first day.
            let p = Period::containing(v, period.start())?;
            Some(NavLink {
                href: history_href(&p, None),
                label: t.t(view_key(v)).to_string(),
                current: v == view,
            })
        })
        .collect();
    let previous = period.previous().map(|p| NavLink {
        href: history_href(&p, None),
        label: period_heading(&p, lang),
        current: false,
    });
    let next = period
        .next()
        .filter(|p| p.start() <= data.today)
        .map(|p| NavLink {
            href: history_href(&p, None),
            label: period_heading(&p, lang),
            current: false,
        });
    let today_link = Period::containing(view, data.today)
        .filter(|p| *p != period)
        .map(|p| NavLink {
            href: history_href(&p, None),
            label: t.t("history.today").to_string(),
            current: false,
        });

    let labels: Vec<(Option<String>, String)> = data
        .buckets
        .iter()
        .map(|b| bucket_labels(view, b, lang, tz))
        .collect();
    let categories: Vec<Option<String>> = labels.iter().map(|(a, _)| a.clone()).collect();
    let names: Vec<String> = labels.iter().map(|(_, n)| n.clone()).collect();

    let mut page = HistoryTemplate {
        layout: Layout::new(lang, site, t.t("history.title")),
        heading: heading.clone(),
        download_href: format!("{}&download=", history_href(&period, Some(lang))),
        view_code: period.view().code(),
        date_value: period.start().format("%Y-%m-%d").to_string(),
        views,
        previous,
        next,
        today_link,
        lang_fr_href: history_href(&period, Some(Lang::Fr)),
        lang_en_href: history_href(&period, Some(Lang::En)),
        no_history: data.site.is_none(),
        summary: vec![],
        energy_chart: None,
        energy_legend: vec![],
        energy_rows: vec![],
        energy_total: None,
        self_chart: None,
        battery: None,
        services_chart: None,
        services_legend: vec![],
        service_rows: vec![],
        export: None,
        sign_in_href: crate::account::login_href(&history_href(&period, None)),
        signed_in: data
            .reader
            .as_ref()
            .map(|r| t.tf("assembly.signed_in_as", &[("name", &r.name)])),
        reader_assembly: data.reader.as_ref().is_some_and(|r| r.assembly),
        bucket_heading: t.t(bucket_key(view)).to_string(),
    };

    if let Some(series) = data.site {
        fill_site(&mut page, series, data, &categories, &names, lang);
        fill_services(&mut page, data.services, lang);
    }
    if let (Some(choices), Some((from, to))) = (&data.export, period.range(tz)) {
        let local = |at: DateTime<Utc>| {
            at.with_timezone(&tz)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        };
        page.export = Some(ExportView {
            from: local(from),
            to: local(to),
            devices: choices.devices.clone(),
            metrics: choices.metrics.clone(),
        });
    }
    render(&page, "history.html")
}

fn view_key(view: View) -> &'static str {
    match view {
        View::Day => "history.view_day",
        View::Week => "history.view_week",
        View::Month => "history.view_month",
        View::Year => "history.view_year",
    }
}

fn bucket_key(view: View) -> &'static str {
    match view {
        View::Day => "history.bucket_hour",
        View::Week | View::Month => "history.bucket_day",
        View::Year => "history.bucket_month",
    }
}

fn fill_site(
    page: &mut HistoryTemplate<'_>,
    series: &SiteSeries,
    data: &HistoryData<'_>,
    categories: &[Option<String>],
    names: &[String],
    lang: Lang,
) {
    let t = Catalog::for_lang(lang);
    let total = &series.total;
    let empty = (total.minutes == 0).then(|| t.t("history.no_readings").to_string());
    let wh = |v: f64| format_energy(v, lang);
    page.summary = vec![
        (
            t.t("history.production").to_string(),
            wh(total.production_wh),
        ),
        (
            t.t("history.consumption").to_string(),
            wh(total.consumption_wh),
        ),
        (
            t.t("history.self_sufficiency").to_string(),
            share(total, lang),
        ),
        (
            t.t("history.grid_import").to_string(),
            wh(total.grid_import_wh),
        ),
        (
            t.t("history.grid_export").to_string(),
            wh(total.grid_export_wh),
        ),
    ];
    if data.has_battery {
        page.summary.push((
            t.t("history.battery_charge").to_string(),
            wh(total.battery_charge_wh),
        ));
        page.summary.push((
            t.t("history.battery_discharge").to_string(),
            wh(total.battery_discharge_wh),
        ));
    }

    let unit = energy_unit(
        series
            .buckets
            .iter()
            .flat_map(|e| [e.production_wh, e.consumption_wh]),
    );
    let scaled = |f: fn(&SiteEnergy) -> f64, unit: EnergyUnit| -> Vec<Option<f64>> {
        series
            .buckets
            .iter()
            .map(|e| (e.minutes > 0).then(|| f(e) / unit.divisor))
            .collect()
    };
    let energy_series = vec![
        Series {
            class: "series-production",
            label: t.t("history.production").to_string(),
            values: scaled(|e| e.production_wh, unit),
            hatched: false,
        },
        Series {
            class: "series-consumption",
            label: t.t("history.consumption").to_string(),
            values: scaled(|e| e.consumption_wh, unit),
            hatched: true,
        },
    ];
    let tick = |v: f64, d: usize| format_number(v, d, lang);
    let unit_value = |v: f64| format_energy(v * unit.divisor, lang);
    page.energy_legend = legend(&energy_series);
    page.energy_chart = Some(bar_chart(&BarChart {
        id: "energy",
        title: t.t("history.energy_title").to_string(),
        unit: unit.name.to_string(),
        categories: categories.to_vec(),
        category_names: names.to_vec(),
        series: energy_series,
        stacked: false,
        fixed: None,
        tick_label: &tick,
        value_label: &unit_value,
        empty: empty.clone(),
    }));
    page.energy_rows = series
        .buckets
        .iter()
        .zip(names)
        .map(|(e, name)| energy_row(name.clone(), e, lang))
        .collect();
    page.energy_total = Some(energy_row(t.t("history.total").to_string(), total, lang));

    let percent_value = |v: f64| format_percent(v, lang);
    let self_series = vec![Series {
        class: "series-self",
        label: t.t("history.self_sufficiency").to_string(),
        values: series
            .buckets
            .iter()
            .map(|e| e.self_sufficiency().map(|s| s * 100.0))
            .collect(),
        hatched: false,
    }];
    page.self_chart = Some(bar_chart(&BarChart {
        id: "self",
        title: t.t("history.self_title").to_string(),
        unit: "%".into(),
        categories: categories.to_vec(),
        category_names: names.to_vec(),
        series: self_series,
        stacked: false,
        fixed: Some((0.0, 100.0)),
        tick_label: &tick,
        value_label: &percent_value,
        empty: empty.clone(),
    }));

    if data.has_battery {
        let unit = energy_unit(
            series
                .buckets
                .iter()
                .flat_map(|e| [e.battery_charge_wh, e.battery_discharge_wh]),
        );
        let unit_value = |v: f64| format_energy(v.abs() * unit.divisor, lang);
        let battery_series = vec![
            Series {
                class: "series-discharge",
                label: t.t("history.battery_discharge").to_string(),
                values: scaled(|e| e.battery_discharge_wh, unit),
                hatched: false,
            },
            Series {
                class: "series-charge",
                label: t.t("history.battery_charge").to_string(),
                values: scaled(|e| -e.battery_charge_wh, unit),
                hatched: true,
            },
        ];
        let battery_legend = legend(&battery_series);
        let chart = bar_chart(&BarChart {
            id: "battery",
            title: t.t("history.battery_title").to_string(),
            unit: unit.name.to_string(),
            categories: categories.to_vec(),
            category_names: names.to_vec(),
            series: battery_series,
            stacked: true,
            fixed: None,
            tick_label: &tick,
            value_label: &unit_value,
            empty: empty.clone(),
        });
        let n = series.buckets.len();
        let soc_chart = line_chart(&LineChart {
            id: "soc",
            title: t.t("history.soc_title").to_string(),
            unit: "%".into(),
            x_domain: (0.0, n as f64),
            x_ticks: categories
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.clone().map(|c| (i as f64 + 0.5, c)))
                .collect(),
            series: vec![LineSeries {
                class: "series-soc",
                points: series
                    .buckets
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (i as f64 + 0.5, e.soc_avg_pct))
                    .collect(),
            }],
            fixed: Some((0.0, 100.0)),
            tick_label: &tick,
            empty: (series.total.soc_minutes == 0).then(|| t.t("history.no_readings").to_string()),
            marker: None,
            size: PAGE_CHART,
            margins: PAGE_MARGINS,
        });
        page.battery = Some(BatterySection {
            chart,
            soc_chart,
            legend: battery_legend,
            rows: series
                .buckets
                .iter()
                .zip(names)
                .map(|(e, name)| battery_row(name.clone(), e, lang))
                .collect(),
            total: battery_row(t.t("history.total").to_string(), total, lang),
        });
    }
}

fn fill_services(page: &mut HistoryTemplate<'_>, services: &[ServiceSeries], lang: Lang) {
    let t = Catalog::for_lang(lang);
    if services.is_empty() {
        return;
    }
    let unit = energy_unit(services.iter().map(|s| s.total.served_wh + s.total.shed_wh));
    let series = vec![
        Series {
            class: "series-served",
            label: t.t("history.served").to_string(),
            values: services
                .iter()
                .map(|s| Some(s.total.served_wh / unit.divisor))
                .collect(),
            hatched: false,
        },
        Series {
            class: "series-shed",
            label: t.t("history.shed").to_string(),
            values: services
                .iter()
                .map(|s| Some(s.total.shed_wh / unit.divisor))
                .collect(),
            hatched: true,
        },
    ];
    let tick = |v: f64, d: usize| format_number(v, d, lang);
    let unit_value = |v: f64| format_energy(v * unit.divisor, lang);
    let recorded = services.iter().any(|s| s.total.minutes > 0);
    page.services_legend = legend(&series);
    page.services_chart = Some(row_chart(&RowChart {
        id: "services",
        title: t.t("history.services_title").to_string(),
        unit: unit.name.to_string(),
        rows: services.iter().map(|s| s.name.clone()).collect(),
        series,
        tick_label: &tick,
        value_label: &unit_value,
        empty: (!recorded).then(|| t.t("history.no_readings").to_string()),
    }));
    page.service_rows = services
        .iter()
        .map(|s| ServiceRow {
            id: s.id.clone(),
            name: s.name.clone(),
            demand: format_energy(s.total.demand_wh, lang),
            served: format_energy(s.total.served_wh, lang),
            shed: format_energy(s.total.shed_wh, lang),
            shed_time: format_duration_hours(s.total.shed_hours, lang),
        })
        .collect();
}

/// Today's production and consumption on the wall screen, as average power per
/// bucket (quarter hours).
#[derive(Debug, Clone, PartialEq)]
pub struct TodayCurve {
    pub buckets: Vec<Bucket>,
    pub series: SiteSeries,
    pub now: DateTime<Utc>,
}

/// The wall's curve ready to draw, or what to say instead.
#[derive(Debug, Clone, PartialEq)]
pub struct TodayView {
    pub chart: Option<ChartSvg>,
    /// Said in place of the chart when there is none.
    pub unavailable: Option<String>,
    pub title: String,
}

/// Size and margins (top, right, bottom, left) of the wall's curve.
const WALL_CHART: (f64, f64) = (560.0, 250.0);
const WALL_MARGINS: [f64; 4] = [36.0, 22.0, 38.0, 56.0];

impl TodayView {
    pub fn new(curve: Option<&TodayCurve>, lang: Lang, tz: Tz) -> TodayView {
        let t = Catalog::for_lang(lang);
        let title = t.t("wall.today").to_string();
        let Some(curve) = curve else {
            return TodayView {
                chart: None,
                unavailable: Some(t.t("wall.today_unavailable").to_string()),
                title,
            };
        };
        let (Some(first), Some(last)) = (curve.buckets.first(), curve.buckets.last()) else {
            return TodayView {
                chart: None,
                unavailable: Some(t.t("wall.today_unavailable").to_string()),
                title,
            };
        };
        let start = first.start;
        let hours = |at: DateTime<Utc>| (at - start).num_seconds() as f64 / 3600.0;
        let date = first.local_start.date();
        let x_ticks = [0u32, 6, 12, 18, 24]
            .into_iter()
            .map(|h| {
                let at = if h == 24 {
                    last.end
                } else {
                    local_instant(tz, date.and_hms_opt(h, 0, 0).unwrap_or(first.local_start))
                };
                (hours(at), hour_text(h, lang))
            })
            .collect();
        let points = |f: fn(&SiteEnergy) -> Option<f64>| -> Vec<(f64, Option<f64>)> {
            curve
                .buckets
                .iter()
                .zip(&curve.series.buckets)
                .map(|(b, e)| {
                    let middle = b.start + (b.end - b.start) / 2;
                    (hours(middle), f(e).map(|w| w / 1000.0))
                })
                .collect()
        };
        let tick = |v: f64, d: usize| format_number(v, d, lang);
        let now = (curve.now >= start && curve.now <= last.end).then(|| hours(curve.now));
        let empty = (curve.series.total.minutes == 0).then(|| t.t("wall.today_empty").to_string());
        let chart = line_chart(&LineChart {
            id: "today",
            title: title.clone(),
            unit: "kW".into(),
            x_domain: (0.0, hours(last.end)),
            x_ticks,
            series: vec![
                LineSeries {
                    class: "series-production",
                    points: points(SiteEnergy::average_production_w),
                },
                LineSeries {
                    class: "series-consumption",
                    points: points(SiteEnergy::average_consumption_w),
                },
            ],
            fixed: None,
            tick_label: &tick,
            empty,
            marker: now,
            size: WALL_CHART,
            margins: WALL_MARGINS,
        });
        TodayView {
            chart: Some(chart),
            unavailable: None,
            title,
        }
    }
}

/// Quarter hours of today for the wall's curve.
pub const TODAY_STEP_MINUTES: i64 = 15;

/// How often the wall screen fetches its curve again.
pub const TODAY_REFRESH: Duration = Duration::minutes(5);

#[derive(Template)]
#[template(path = "today_curve.html")]
struct TodayTemplate<'a> {
    today: &'a TodayView,
}

/// The wall's curve alone, as the wall screen fetches it to redraw it in place.
pub fn render_today_curve(
    curve: Option<&TodayCurve>,
    lang: Lang,
    site: &SiteInfo,
) -> Result<String> {
    let today = TodayView::new(curve, lang, site.timezone);
    render(&TodayTemplate { today: &today }, "today_curve.html")
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use chrono_tz::Europe::Paris;

    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
    }

    #[test]
    fn headings_and_labels_in_both_languages() {
        let day = Period::containing(View::Day, date(2026, 3, 12));
        let day = day.unwrap_or_else(|| panic!("day"));
        assert_eq!(period_heading(&day, Lang::Fr), "Jeudi 12 mars 2026");
        assert_eq!(period_heading(&day, Lang::En), "Thursday 12 March 2026");
        let week =
            Period::containing(View::Week, date(2026, 3, 12)).unwrap_or_else(|| panic!("week"));
        assert_eq!(
            period_heading(&week, Lang::Fr),
            "Semaine du 9 mars 2026 au 15 mars 2026"
        );
        let month =
            Period::containing(View::Month, date(2026, 3, 12)).unwrap_or_else(|| panic!("month"));
        assert_eq!(period_heading(&month, Lang::Fr), "Mars 2026");
        assert_eq!(
            history_href(&month, None),
            "/history?view=month&date=2026-03-01"
        );
        let hours = day.buckets(Paris);
        assert_eq!(
            bucket_labels(View::Day, &hours[10], Lang::Fr, Paris),
            (None, "10 h – 11 h".to_string())
        );
        assert_eq!(
            bucket_labels(View::Day, &hours[9], Lang::En, Paris),
            (Some("09:00".to_string()), "09:00 – 10:00".to_string())
        );
        assert_eq!(
            bucket_labels(View::Day, &hours[23], Lang::Fr, Paris).1,
            "23 h – 24 h"
        );
        let days = week.buckets(Paris);
        assert_eq!(
            bucket_labels(View::Week, &days[3], Lang::Fr, Paris),
            (Some("jeu. 12".to_string()), "Jeudi 12 mars".to_string())
        );
        let year =
            Period::containing(View::Year, date(2026, 3, 12)).unwrap_or_else(|| panic!("year"));
        let months = year.buckets(Paris);
        assert_eq!(
            bucket_labels(View::Year, &months[1], Lang::Fr, Paris),
            (Some("févr.".to_string()), "Février 2026".to_string())
        );
    }

    /// Today's curve over the 24 hours of March 12th in Paris: a quarter hour
    /// at 10:00 of 4 kW production lands at x 10.125 h of 24.
    #[test]
    fn todays_curve_is_placed_on_the_hours_of_the_day() {
        let now = Utc
            .with_ymd_and_hms(2026, 3, 12, 11, 0, 0)
            .single()
            .unwrap_or_default();
        let buckets = query::charts::today(now, Paris, 15);
        let mut series = SiteSeries {
            buckets: vec![SiteEnergy::default(); buckets.len()],
            total: SiteEnergy::default(),
        };
        series.buckets[40] = SiteEnergy {
            minutes: 15,
            production_wh: 1000.0,
            consumption_wh: 500.0,
            ..SiteEnergy::default()
        };
        series.total = series.buckets[40].clone();
        let view = TodayView::new(
            Some(&TodayCurve {
                buckets,
                series,
                now,
            }),
            Lang::Fr,
            Paris,
        );
        let chart = view.chart.unwrap_or_else(|| panic!("a chart"));
        // x: 56 + 10.125 / 24 × 482 = 259.3; y: 0..4 kW over 212..36, 4 kW at the top.
        assert_eq!(
            chart.lines[0].dots,
            [("259.3".to_string(), "36".to_string())]
        );
        // Consumption 2 kW: 212 − 88 = 124.
        assert_eq!(
            chart.lines[1].dots,
            [("259.3".to_string(), "124".to_string())]
        );
        let ticks: Vec<(&str, &str)> = chart
            .category_ticks
            .iter()
            .map(|t| (t.at.as_str(), t.label.as_str()))
            .collect();
        assert_eq!(
            ticks,
            [
                ("56", "0 h"),
                ("176.5", "6 h"),
                ("297", "12 h"),
                ("417.5", "18 h"),
                ("538", "24 h")
            ]
        );
        // Now, 12:00 local.
        assert_eq!(chart.marker_x.as_deref(), Some("297"));
        assert!(chart.empty.is_none());
        let none = TodayView::new(None, Lang::En, Paris);
        assert!(none.chart.is_none());
        assert_eq!(
            none.unavailable.as_deref(),
            Some("Today's curve is not available")
        );
    }
}
