//! Figures and dates as a reader of each language expects them. `static/wall.js`
//! repeats `format_power`, `format_percent` and `format_time` for live updates: change
//! them together.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::{Catalog, Lang};

/// Shown where a value is missing or not a number.
pub(crate) const NO_VALUE: &str = "—";

/// Typographic minus, so a negative figure does not read as a dash.
const MINUS: char = '\u{2212}';

/// Power in watts below 1 kW ("850 W"), else in kW with one decimal ("4,3 kW" in
/// French, "4.3 kW" in English). Rounds half away from zero on whole watts and on
/// tenths of kW, which `Math.round` on the absolute value reproduces in JavaScript.
pub fn format_power(watts: f64, lang: Lang) -> String {
    if !watts.is_finite() {
        return NO_VALUE.to_string();
    }
    let magnitude = watts.abs();
    let whole_watts = magnitude.round();
    let (number, unit) = if whole_watts < 1000.0 {
        (format!("{whole_watts:.0}"), "W")
    } else {
        let tenths = (magnitude / 100.0).round() as u64;
        let separator = decimal_separator(lang);
        (format!("{}{separator}{}", tenths / 10, tenths % 10), "kW")
    };
    let sign = if watts < 0.0 && number.bytes().any(|b| b != b'0') {
        MINUS.to_string()
    } else {
        String::new()
    };
    format!("{sign}{number} {unit}")
}

/// A whole percentage: "62 %" in French (space before the sign), "62%" in English.
pub fn format_percent(pct: f64, lang: Lang) -> String {
    if !pct.is_finite() {
        return NO_VALUE.to_string();
    }
    let whole = pct.round();
    let whole = if whole == 0.0 { 0.0 } else { whole };
    match lang {
        Lang::Fr => format!("{whole:.0} %"),
        Lang::En => format!("{whole:.0}%"),
    }
}

/// Time of day in the site's time zone, 24-hour clock in both languages.
pub fn format_time(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz).format("%H:%M:%S").to_string()
}

/// Time of day, preceded by the numeric date (dd/mm/yyyy) when it is not the same
/// day as `now` in the site's time zone.
pub(crate) fn format_moment(at: DateTime<Utc>, now: DateTime<Utc>, tz: Tz) -> String {
    let local = at.with_timezone(&tz);
    if local.date_naive() == now.with_timezone(&tz).date_naive() {
        format_time(at, tz)
    } else {
        local.format("%d/%m/%Y %H:%M:%S").to_string()
    }
}

/// "12 mars 2026" / "1er mars 2026" in French, "12 March 2026" in English, as
/// the catalog's `date.long` writes a date.
pub fn format_date_long(date: NaiveDate, lang: Lang) -> String {
    Catalog::for_lang(lang).tf(
        "date.long",
        &[
            ("day", &day_of_month(date, lang)),
            ("month", month_name(date.month(), lang, false)),
            ("year", &date.year().to_string()),
        ],
    )
}

/// The day of the month as a date writes it: the first is "1er" in French.
pub(crate) fn day_of_month(date: NaiveDate, lang: Lang) -> String {
    match date.day() {
        1 => Catalog::for_lang(lang).t("date.first_day").to_string(),
        day => day.to_string(),
    }
}

/// An amount of Communs to the hundredth, rounded half up: "98,00" in French,
/// "98.00" in English (99.999999 shows as 100,00: demurrage takes a millionth
/// within milliseconds, which a reader should not see as a lost hundredth). Where
/// the last digit matters, [`format_communs_exact`]; the JSON API gives amounts
/// exactly.
pub fn format_communs(amount: ledger::Communs, lang: Lang) -> String {
    hundredths_text(
        (amount.micro().saturating_add(5_000)).div_euclid(10_000),
        lang,
    )
}

/// A member's balance to the hundredth, rounded down: what they can send. A
/// balance of 32,499926 after demurrage shows as "32,49", never as a "32,50" that a
/// transfer of 32,50 would then be refused for; "send all" sends the millionths.
pub(crate) fn format_balance(amount: ledger::Communs, lang: Lang) -> String {
    hundredths_text(amount.micro().div_euclid(10_000), lang)
}

fn hundredths_text(hundredths: i64, lang: Lang) -> String {
    let sign = if hundredths < 0 {
        MINUS.to_string()
    } else {
        String::new()
    };
    let abs = hundredths.unsigned_abs();
    format!(
        "{sign}{}{}{:02}",
        abs / 100,
        decimal_separator(lang),
        abs % 100
    )
}

/// An amount of Communs exactly, to the millionth, without trailing zeros:
/// "99,932679", "500".
pub fn format_communs_exact(amount: ledger::Communs, lang: Lang) -> String {
    amount
        .to_string()
        .replace('.', &decimal_separator(lang).to_string())
        .replace('-', &MINUS.to_string())
}

/// Hours as few digits as they need, at most two decimals: "3", "1,5", "1,25" in
/// French, "1.5" in English. `static/wall.js` repeats it (`formatHours`).
pub fn format_hours(hours: ledger::Hours, lang: Lang) -> String {
    let centi = hours.centihours();
    let (whole, frac) = (centi / 100, centi % 100);
    let separator = decimal_separator(lang);
    match frac {
        0 => whole.to_string(),
        f if f % 10 == 0 => format!("{whole}{separator}{}", f / 10),
        f => format!("{whole}{separator}{f:02}"),
    }
}

/// "1,5 heure" / "3 heures", "1 hour" / "1.5 hours", counted by the catalog's
/// plural rule. `static/wall.js` repeats it (`formatHours`).
pub fn hours_text(hours: ledger::Hours, lang: Lang) -> String {
    let centi = hours.centihours();
    Catalog::for_lang(lang).count_shown(
        "hours",
        centi / 100,
        !centi.is_multiple_of(100),
        &format_hours(hours, lang),
    )
}

fn decimal_separator(lang: Lang) -> char {
    match lang {
        Lang::Fr => ',',
        Lang::En => '.',
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn power_in_both_languages() {
        assert_eq!(format_power(4321.0, Lang::Fr), "4,3 kW");
        assert_eq!(format_power(4321.0, Lang::En), "4.3 kW");
        assert_eq!(format_power(7777.0, Lang::Fr), "7,8 kW");
        assert_eq!(format_power(850.4, Lang::Fr), "850 W");
        assert_eq!(format_power(0.0, Lang::En), "0 W");
        assert_eq!(format_power(999.4, Lang::Fr), "999 W");
        // Rounding to whole watts reaches 1 kW: show kW, never "1000 W".
        assert_eq!(format_power(999.6, Lang::Fr), "1,0 kW");
        assert_eq!(format_power(1000.0, Lang::En), "1.0 kW");
        assert_eq!(format_power(4250.0, Lang::En), "4.3 kW");
        assert_eq!(format_power(12_345.0, Lang::Fr), "12,3 kW");
        assert_eq!(format_power(-1200.0, Lang::Fr), "\u{2212}1,2 kW");
        assert_eq!(format_power(-0.3, Lang::Fr), "0 W");
        assert_eq!(format_power(f64::NAN, Lang::Fr), "—");
    }

    #[test]
    fn communs_and_hours() {
        use ledger::{Communs, Hours};
        assert_eq!(format_communs(Communs::from_whole(98), Lang::Fr), "98,00");
        assert_eq!(
            format_communs(Communs::from_micro(99_932_680), Lang::En),
            "99.93"
        );
        assert_eq!(
            format_communs(Communs::from_micro(99_999_999), Lang::Fr),
            "100,00"
        );
        assert_eq!(
            format_communs(Communs::from_micro(99_994_999), Lang::Fr),
            "99,99"
        );
        assert_eq!(format_communs(Communs::ZERO, Lang::En), "0.00");
        // Balances round down: the figure shown can always be sent.
        assert_eq!(
            format_balance(Communs::from_micro(32_499_926), Lang::Fr),
            "32,49"
        );
        assert_eq!(format_balance(Communs::from_whole(98), Lang::En), "98.00");
        assert_eq!(format_balance(Communs::from_micro(9_999), Lang::En), "0.00");
        assert_eq!(
            format_balance(Communs::from_micro(-1), Lang::En),
            "\u{2212}0.01"
        );
        assert_eq!(format_communs(Communs::from_micro(5_000), Lang::En), "0.01");
        assert_eq!(format_communs(Communs::from_micro(4_999), Lang::En), "0.00");
        assert_eq!(
            format_communs_exact(Communs::from_micro(99_932_679), Lang::Fr),
            "99,932679"
        );
        assert_eq!(
            format_communs_exact(Communs::from_whole(500), Lang::En),
            "500"
        );
        assert_eq!(format_hours(Hours::from_centihours(300), Lang::Fr), "3");
        assert_eq!(format_hours(Hours::from_centihours(150), Lang::Fr), "1,5");
        assert_eq!(format_hours(Hours::from_centihours(125), Lang::En), "1.25");
        assert_eq!(
            format_hours(Hours::from_centihours(1205), Lang::En),
            "12.05"
        );
        assert_eq!(
            hours_text(Hours::from_centihours(150), Lang::Fr),
            "1,5 heure"
        );
        assert_eq!(hours_text(Hours::from_centihours(0), Lang::Fr), "0 heure");
        assert_eq!(
            hours_text(Hours::from_centihours(1250), Lang::Fr),
            "12,5 heures"
        );
        assert_eq!(hours_text(Hours::from_centihours(100), Lang::En), "1 hour");
        assert_eq!(
            hours_text(Hours::from_centihours(150), Lang::En),
            "1.5 hours"
        );
        assert_eq!(hours_text(Hours::from_centihours(0), Lang::En), "0 hours");
    }

    #[test]
    fn percent() {
        assert_eq!(format_percent(62.4, Lang::Fr), "62 %");
        assert_eq!(format_percent(62.5, Lang::En), "63%");
        assert_eq!(format_percent(-0.2, Lang::En), "0%");
    }

    #[test]
    fn dates() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 12).unwrap_or_default();
        assert_eq!(format_date_long(d, Lang::Fr), "12 mars 2026");
        assert_eq!(format_date_long(d, Lang::En), "12 March 2026");
        let first = NaiveDate::from_ymd_opt(2026, 8, 1).unwrap_or_default();
        assert_eq!(format_date_long(first, Lang::Fr), "1er août 2026");
        assert_eq!(format_date_long(first, Lang::En), "1 August 2026");
    }

    #[test]
    fn times_in_site_zone() {
        let at = Utc.with_ymd_and_hms(2026, 3, 12, 13, 32, 5).single();
        let at = at.unwrap_or_default();
        assert_eq!(format_time(at, chrono_tz::Europe::Paris), "14:32:05");
        assert_eq!(format_moment(at, at, chrono_tz::Europe::Paris), "14:32:05");
        let next_day = at + chrono::Duration::days(1);
        assert_eq!(
            format_moment(at, next_day, chrono_tz::Europe::Paris),
            "12/03/2026 14:32:05"
        );
    }
}

/// Energy in Wh below 1 kWh, in kWh (one decimal) below 1 MWh, else in MWh.
pub fn format_energy(wh: f64, lang: Lang) -> String {
    if !wh.is_finite() {
        return NO_VALUE.to_string();
    }
    let (value, unit, decimals) = if wh.abs() < 1_000.0 {
        (wh, "Wh", 0)
    } else if wh.abs() < 1_000_000.0 {
        (wh / 1_000.0, "kWh", 1)
    } else {
        (wh / 1_000_000.0, "MWh", 2)
    };
    let text = format!("{value:.decimals$}");
    let text = if text.starts_with('-') && text.trim_start_matches(['-', '0', '.']).is_empty() {
        text.trim_start_matches('-').to_string()
    } else {
        text
    };
    match lang {
        Lang::Fr => format!("{} {unit}", text.replace('.', ",")),
        Lang::En => format!("{text} {unit}"),
    }
}

/// A number of hours, to the tenth: "3,5 h" / "3.5 h"; "0 h" for none.
pub fn format_duration_hours(hours: f64, lang: Lang) -> String {
    if !hours.is_finite() {
        return NO_VALUE.to_string();
    }
    let text = if hours.abs() < 0.05 {
        "0".to_string()
    } else {
        format!("{hours:.1}")
    };
    match lang {
        Lang::Fr => format!("{} h", text.replace('.', ",")),
        Lang::En => format!("{text} h"),
    }
}

#[cfg(test)]
mod energy_tests {
    use super::*;

    #[test]
    fn energies_and_durations_read_in_both_languages() {
        assert_eq!(format_energy(850.4, Lang::Fr), "850 Wh");
        assert_eq!(format_energy(12_345.0, Lang::Fr), "12,3 kWh");
        assert_eq!(format_energy(12_345.0, Lang::En), "12.3 kWh");
        assert_eq!(format_energy(2_500_000.0, Lang::En), "2.50 MWh");
        assert_eq!(format_energy(-0.2, Lang::En), "0 Wh");
        assert_eq!(format_duration_hours(3.46, Lang::Fr), "3,5 h");
        assert_eq!(format_duration_hours(0.01, Lang::En), "0 h");
    }
}

/// A number with `decimals` decimals in the reader's convention ("1,5" / "1.5"),
/// a typographic minus before a negative one: an axis' tick.
pub fn format_number(value: f64, decimals: usize, lang: Lang) -> String {
    if !value.is_finite() {
        return NO_VALUE.to_string();
    }
    let text = format!("{:.decimals$}", value.abs());
    let text = text.replace('.', &decimal_separator(lang).to_string());
    if value < 0.0 && text.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
        format!("{MINUS}{text}")
    } else {
        text
    }
}

/// "lundi" / "Monday", or "lun." / "Mon" when `short`, from the catalog.
pub fn weekday_name(day: chrono::Weekday, lang: Lang, short: bool) -> &'static str {
    let form = if short { "weekday_short" } else { "weekday" };
    date_name(lang, &format!("date.{form}.{}", day.number_from_monday()))
}

/// "mars" / "March", or "mars" / "Mar" when `short` (French abbreviates only
/// the long names: "janv.", "févr.", "sept."), from the catalog.
pub fn month_name(month: u32, lang: Lang, short: bool) -> &'static str {
    let form = if short { "month_short" } else { "month" };
    date_name(lang, &format!("date.{form}.{}", month.clamp(1, 12)))
}

/// A name of the catalog's `date` section; a test keeps every one present.
fn date_name(lang: Lang, key: &str) -> &'static str {
    Catalog::for_lang(lang).entry(key).unwrap_or(NO_VALUE)
}

/// The name of a contribution category in the reader's language.
pub fn category_name(category: ledger::Category, lang: Lang) -> &'static str {
    Catalog::for_lang(lang).t(category_key(category))
}

pub(crate) fn category_key(category: ledger::Category) -> &'static str {
    use ledger::Category;
    match category {
        Category::Care => "ledger.category_care",
        Category::Teaching => "ledger.category_teaching",
        Category::Repair => "ledger.category_repair",
        Category::Gardening => "ledger.category_gardening",
        Category::Cooking => "ledger.category_cooking",
        Category::EnergySharing => "ledger.category_energy_sharing",
        Category::Other => "ledger.category_other",
    }
}

/// The catalog key of a contribution's state ("en attente", "validée", …).
pub(crate) fn contribution_state_key(state: ledger::ContributionState) -> &'static str {
    use ledger::ContributionState;
    match state {
        ContributionState::Pending => "ledger.state_pending",
        ContributionState::Validated => "ledger.state_validated",
        ContributionState::Rejected => "ledger.state_rejected",
    }
}

#[cfg(test)]
mod number_tests {
    use super::*;

    #[test]
    fn numbers_and_names_in_both_languages() {
        assert_eq!(format_number(1.5, 1, Lang::Fr), "1,5");
        assert_eq!(format_number(1.5, 1, Lang::En), "1.5");
        assert_eq!(format_number(-600.0, 0, Lang::En), "\u{2212}600");
        assert_eq!(format_number(-0.001, 1, Lang::Fr), "0,0");
        assert_eq!(weekday_name(chrono::Weekday::Thu, Lang::Fr, false), "jeudi");
        assert_eq!(weekday_name(chrono::Weekday::Thu, Lang::En, true), "Thu");
        assert_eq!(month_name(2, Lang::Fr, true), "févr.");
        assert_eq!(month_name(3, Lang::En, false), "March");
    }

    /// Every month and weekday has its names in both catalogs (the code has none).
    #[test]
    fn every_month_and_weekday_is_named_in_both_languages() {
        use chrono::Weekday::{Fri, Mon, Sat, Sun, Thu, Tue, Wed};
        for lang in Lang::ALL {
            for month in 1..=12 {
                for short in [false, true] {
                    assert_ne!(month_name(month, lang, short), NO_VALUE, "{lang} {month}");
                }
            }
            for day in [Mon, Tue, Wed, Thu, Fri, Sat, Sun] {
                for short in [false, true] {
                    assert_ne!(weekday_name(day, lang, short), NO_VALUE, "{lang} {day}");
                }
            }
        }
        assert_eq!(month_name(1, Lang::Fr, false), "janvier");
        assert_eq!(month_name(9, Lang::Fr, true), "sept.");
        assert_eq!(month_name(12, Lang::En, false), "December");
        assert_eq!(month_name(5, Lang::En, true), "May");
        assert_eq!(weekday_name(Mon, Lang::Fr, false), "lundi");
        assert_eq!(weekday_name(Sun, Lang::En, false), "Sunday");
        assert_eq!(weekday_name(Sun, Lang::Fr, true), "dim.");
    }
}
