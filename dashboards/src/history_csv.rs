//! "Download this table": each table of the history page as a CSV file a
//! resident opens in a spreadsheet, the same rows as the page shows (one per hour,
//! day or month, then the total) as plain numbers.
//!
//! A French spreadsheet reads `;` between fields and `,` in numbers, an English one
//! `,` and `.`: the file follows the page's language, starts with a UTF-8 byte order
//! mark (so that "Prélevé" survives a spreadsheet that guesses encodings), and
//! names its columns with their units.

use query::charts::{SiteEnergy, View};

use crate::history_page::HistoryData;
use crate::{Catalog, Lang};

/// A table of the history page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryTable {
    Energy,
    SelfSufficiency,
    Battery,
    Services,
}

impl HistoryTable {
    pub const ALL: [HistoryTable; 4] = [
        HistoryTable::Energy,
        HistoryTable::SelfSufficiency,
        HistoryTable::Battery,
        HistoryTable::Services,
    ];

    /// The name in `?download=NAME`.
    pub fn code(self) -> &'static str {
        match self {
            HistoryTable::Energy => "energy",
            HistoryTable::SelfSufficiency => "self",
            HistoryTable::Battery => "battery",
            HistoryTable::Services => "services",
        }
    }

    pub fn parse(code: &str) -> Option<HistoryTable> {
        HistoryTable::ALL.into_iter().find(|t| t.code() == code)
    }
}

struct Writer {
    separator: char,
    decimal: char,
    out: String,
}

impl Writer {
    fn new(lang: Lang) -> Writer {
        let (separator, decimal) = match lang {
            Lang::Fr => (';', ','),
            Lang::En => (',', '.'),
        };
        Writer {
            separator,
            decimal,
            out: String::from('\u{feff}'),
        }
    }

    /// One record; a field holding the separator, a quote or a line break is quoted
    /// (RFC 4180).
    fn row<S: AsRef<str>>(&mut self, fields: &[S]) {
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                self.out.push(self.separator);
            }
            let field = field.as_ref();
            if field.contains([self.separator, '"', '\n', '\r']) {
                self.out.push('"');
                self.out.push_str(&field.replace('"', "\"\""));
                self.out.push('"');
            } else {
                self.out.push_str(field);
            }
        }
        self.out.push_str("\r\n");
    }

    /// Kilowatt-hours to the watt-hour.
    fn kwh(&self, wh: f64) -> String {
        self.number(wh / 1000.0, 3)
    }

    fn number(&self, x: f64, decimals: usize) -> String {
        if !x.is_finite() {
            return String::new();
        }
        format!("{x:.decimals$}").replace('.', &self.decimal.to_string())
    }

    fn maybe(&self, x: Option<f64>, decimals: usize) -> String {
        x.map_or_else(String::new, |x| self.number(x, decimals))
    }
}

/// The table as CSV, or `None` when the page does not show it (no history kept,
/// no battery).
pub fn history_csv(data: &HistoryData<'_>, table: HistoryTable, lang: Lang) -> Option<String> {
    let t = Catalog::for_lang(lang);
    let mut w = Writer::new(lang);
    let unit = |key: &str, unit: &str| format!("{} ({unit})", t.t(key));
    let start = t.t(match data.period.view() {
        View::Day => "history.csv_hour",
        View::Week | View::Month => "history.csv_day",
        View::Year => "history.csv_month",
    });
    let format = match data.period.view() {
        View::Day => "%Y-%m-%d %H:%M",
        View::Week | View::Month => "%Y-%m-%d",
        View::Year => "%Y-%m",
    };
    let total = t.t("history.csv_total");
    if table == HistoryTable::Services {
        data.site?;
        w.row(&[
            t.t("history.service").to_string(),
            unit("history.demand", "kWh"),
            unit("history.served", "kWh"),
            unit("history.shed", "kWh"),
            unit("history.shed_time", "h"),
        ]);
        for s in data.services {
            let e = &s.total;
            w.row(&[
                s.name.clone(),
                w.kwh(e.demand_wh),
                w.kwh(e.served_wh),
                w.kwh(e.shed_wh),
                w.number(e.shed_hours, 2),
            ]);
        }
        return Some(w.out);
    }
    let site = data.site?;
    if table == HistoryTable::Battery && !data.has_battery {
        return None;
    }
    let head: Vec<String> = match table {
        HistoryTable::Energy => vec![
            start.to_string(),
            unit("history.production", "kWh"),
            unit("history.consumption", "kWh"),
            unit("history.grid_import", "kWh"),
            unit("history.grid_export", "kWh"),
        ],
        HistoryTable::SelfSufficiency => vec![
            start.to_string(),
            unit("history.consumption", "kWh"),
            unit("history.grid_import", "kWh"),
            unit("history.self_sufficiency", "%"),
        ],
        _ => vec![
            start.to_string(),
            unit("history.battery_charge", "kWh"),
            unit("history.battery_discharge", "kWh"),
            unit("history.soc_avg", "%"),
            unit("history.csv_soc_min", "%"),
            unit("history.csv_soc_max", "%"),
        ],
    };
    w.row(&head);
    let line = |w: &Writer, label: String, e: &SiteEnergy| -> Vec<String> {
        match table {
            HistoryTable::Energy => vec![
                label,
                w.kwh(e.production_wh),
                w.kwh(e.consumption_wh),
                w.kwh(e.grid_import_wh),
                w.kwh(e.grid_export_wh),
            ],
            HistoryTable::SelfSufficiency => vec![
                label,
                w.kwh(e.consumption_wh),
                w.kwh(e.grid_import_wh),
                w.maybe(e.self_sufficiency().map(|s| s * 100.0), 1),
            ],
            _ => vec![
                label,
                w.kwh(e.battery_charge_wh),
                w.kwh(e.battery_discharge_wh),
                w.maybe(e.soc_avg_pct, 1),
                w.maybe(e.soc_min_pct, 1),
                w.maybe(e.soc_max_pct, 1),
            ],
        }
    };
    for (bucket, energy) in data.buckets.iter().zip(&site.buckets) {
        let label = bucket.local_start.format(format).to_string();
        let fields = line(&w, label, energy);
        w.row(&fields);
    }
    let fields = line(&w, total.to_string(), &site.total);
    w.row(&fields);
    Some(w.out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_they_must_be() {
        let mut w = Writer::new(Lang::Fr);
        w.row(&["Laverie; partagée", "dit \"oui\"", "1,5"]);
        assert_eq!(
            w.out,
            "\u{feff}\"Laverie; partagée\";\"dit \"\"oui\"\"\";1,5\r\n"
        );
        let mut w = Writer::new(Lang::En);
        w.row(&["a,b", "1.5"]);
        assert_eq!(w.out, "\u{feff}\"a,b\",1.5\r\n");
        assert_eq!(w.kwh(1234.0), "1.234");
        assert_eq!(Writer::new(Lang::Fr).kwh(1234.0), "1,234");
        assert_eq!(w.number(f64::NAN, 1), "");
    }

    #[test]
    fn every_table_has_a_name_read_back() {
        for table in HistoryTable::ALL {
            assert_eq!(HistoryTable::parse(table.code()), Some(table));
        }
        assert_eq!(HistoryTable::parse("everything"), None);
    }
}
