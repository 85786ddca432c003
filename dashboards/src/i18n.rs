//! Languages of the pages and their text catalogs.
//!
//! The catalogs are data files (`i18n/fr.toml`, `i18n/en.toml`) so that a translator
//! edits text, not code. Keys are written as TOML dotted keys (`wall.grid = "Réseau"`)
//! and looked up by their full dotted name. Placeholders are `{name}`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

const FR_SOURCE: &str = include_str!("../i18n/fr.toml");
const EN_SOURCE: &str = include_str!("../i18n/en.toml");

/// A language the pages are written in. French is the default for a new site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    Fr,
    En,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::Fr, Lang::En];

    /// The BCP 47 primary language subtag, as used in `lang=` attributes and `?lang=`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }

    /// Reads a language tag (`fr`, `EN`, `en-GB`, `fr_CA`) by its primary subtag.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or_default();
        Lang::ALL
            .into_iter()
            .find(|lang| primary.eq_ignore_ascii_case(lang.code()))
    }

    pub fn catalog(self) -> &'static Catalog {
        Catalog::for_lang(self)
    }

    /// Whether a number whose integer part is `whole`, written with decimals or
    /// not (`fraction`), takes the singular. CLDR's plural rules: French counts 0
    /// and 1 in the singular, decimals too ("0 appareil", "1,5 heure"); English only
    /// exactly 1 ("0 devices", "1.5 hours"). `static/wall.js` repeats the rule.
    fn singular(self, whole: u64, fraction: bool) -> bool {
        match self {
            Lang::Fr => whole <= 1,
            Lang::En => whole == 1 && !fraction,
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown language {0:?} (expected fr or en)")]
pub struct UnknownLang(pub String);

impl FromStr for Lang {
    type Err = UnknownLang;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Lang::from_tag(s).ok_or_else(|| UnknownLang(s.to_string()))
    }
}

/// Chooses the language of a page: an explicit `?lang=` wins, then the `lang` cookie
/// a previous switch left, then the browser's `Accept-Language` by its q-values, then
/// the site's default. Values that name no language we have are ignored.
pub fn negotiate(
    query_lang: Option<&str>,
    cookie_lang: Option<&str>,
    accept_language: Option<&str>,
    site_default: Lang,
) -> Lang {
    query_lang
        .and_then(Lang::from_tag)
        .or_else(|| cookie_lang.and_then(Lang::from_tag))
        .or_else(|| accept_language.and_then(from_accept_language))
        .unwrap_or(site_default)
}

/// The preferred language we have, per RFC 9110 §12.5.4: highest q first, earlier
/// entries winning ties; `q=0` means "not this one"; `*` leaves the choice to us.
fn from_accept_language(header: &str) -> Option<Lang> {
    let mut best: Option<(f32, Lang)> = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or_default().trim();
        let mut q = 1.0_f32;
        for param in parts {
            let Some((name, value)) = param.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("q") {
                q = value
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|q| (0.0..=1.0).contains(q))
                    .unwrap_or(0.0);
            }
        }
        if q <= 0.0 {
            continue;
        }
        let Some(lang) = Lang::from_tag(tag) else {
            continue;
        };
        if best.is_none_or(|(best_q, _)| q > best_q) {
            best = Some((q, lang));
        }
    }
    best.map(|(_, lang)| lang)
}

/// The text of the pages in one language.
#[derive(Debug)]
pub struct Catalog {
    lang: Lang,
    entries: BTreeMap<String, String>,
}

impl Catalog {
    pub fn for_lang(lang: Lang) -> &'static Catalog {
        static FR: OnceLock<Catalog> = OnceLock::new();
        static EN: OnceLock<Catalog> = OnceLock::new();
        let (cell, source) = match lang {
            Lang::Fr => (&FR, FR_SOURCE),
            Lang::En => (&EN, EN_SOURCE),
        };
        cell.get_or_init(|| Catalog {
            lang,
            // The catalogs are part of the binary and a test parses both, so a
            // failure here is a build mistake; showing keys beats not starting.
            entries: parse_catalog(source).unwrap_or_default(),
        })
    }

    pub fn lang(&self) -> Lang {
        self.lang
    }

    /// The text for `key`; the key itself when missing, so a gap shows on the page
    /// instead of an empty space (tests keep both catalogs complete).
    pub fn t<'a>(&'a self, key: &'a str) -> &'a str {
        self.entries.get(key).map(String::as_str).unwrap_or(key)
    }

    /// The text for `key`, if the catalog has it.
    pub(crate) fn entry(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// The text for `key` with each `{name}` replaced by its value.
    pub fn tf(&self, key: &str, args: &[(&str, &str)]) -> String {
        let mut text = self.t(key).to_string();
        for (name, value) in args {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }

    /// `n` of something: the text of `KEY.one` or `KEY.many`, as the language
    /// counts `n`, with `{n}` replaced by it ("0 appareil", "0 devices").
    pub fn count(&self, key: &str, n: u64) -> String {
        self.count_shown(key, n, false, &n.to_string())
    }

    /// [`Catalog::count`] for a number with decimals: `whole` is its integer part,
    /// `fraction` whether it shows decimals, `shown` the number as written
    /// ("1,5 heure", "1.5 hours").
    pub fn count_shown(&self, key: &str, whole: u64, fraction: bool, shown: &str) -> String {
        let form = if self.lang.singular(whole, fraction) {
            "one"
        } else {
            "many"
        };
        self.tf(&format!("{key}.{form}"), &[("n", shown)])
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }
}

/// Flattens a catalog file into dotted keys. Every value must be a string.
pub(crate) fn parse_catalog(source: &str) -> Result<BTreeMap<String, String>, String> {
    let table: toml::Table = toml::from_str(source).map_err(|e| e.to_string())?;
    let mut entries = BTreeMap::new();
    flatten("", &table, &mut entries)?;
    Ok(entries)
}

fn flatten(
    prefix: &str,
    table: &toml::Table,
    out: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    for (key, value) in table {
        let full = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::String(text) => {
                out.insert(full, text.clone());
            }
            toml::Value::Table(inner) => flatten(&full, inner, out)?,
            other => return Err(format!("{full}: expected text, found {}", other.type_str())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    #[test]
    fn both_catalogs_parse_and_have_the_same_keys() {
        let fr = parse_catalog(FR_SOURCE).unwrap_or_else(|e| panic!("fr.toml: {e}"));
        let en = parse_catalog(EN_SOURCE).unwrap_or_else(|e| panic!("en.toml: {e}"));
        let fr_keys: BTreeSet<_> = fr.keys().collect();
        let en_keys: BTreeSet<_> = en.keys().collect();
        let only_fr: Vec<_> = fr_keys.difference(&en_keys).collect();
        let only_en: Vec<_> = en_keys.difference(&fr_keys).collect();
        assert!(
            only_fr.is_empty() && only_en.is_empty(),
            "only in fr.toml: {only_fr:?}; only in en.toml: {only_en:?}"
        );
        assert!(
            fr.values()
                .chain(en.values())
                .all(|text| !text.trim().is_empty())
        );
    }

    /// Every key passed to `t(..)` or `tf(..)` in the templates and in this crate's
    /// code names a key of both catalogs.
    #[test]
    fn every_key_used_exists() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut used = BTreeSet::new();
        let mut scanned = 0;
        for dir in ["templates", "src"] {
            let entries =
                std::fs::read_dir(root.join(dir)).unwrap_or_else(|e| panic!("reading {dir}: {e}"));
            for entry in entries {
                let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                scanned += 1;
                for marker in ["t(\"", "tf(\"", "count(\"", "count_shown(\""] {
                    for (pos, _) in text.match_indices(marker) {
                        // `t(` as a whole name: not the end of `format(`.
                        let before = text[..pos].chars().next_back();
                        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                            continue;
                        }
                        let rest = &text[pos + marker.len()..];
                        if let Some(end) = rest.find('"') {
                            let key = &rest[..end];
                            // The scanner's own markers and the tests' fake keys.
                            if key.is_empty() || key.starts_with("no.such") {
                                continue;
                            }
                            if marker.starts_with("count") {
                                // A count names the stem of its two forms.
                                used.insert(format!("{key}.one"));
                                used.insert(format!("{key}.many"));
                            } else {
                                used.insert(key.to_string());
                            }
                        }
                    }
                }
            }
        }
        assert!(scanned >= 4, "templates and sources were not found");
        assert!(used.contains("wall.production"), "scanner found {used:?}");
        assert!(used.contains("hours.many"), "scanner found {used:?}");
        for lang in Lang::ALL {
            let catalog = Catalog::for_lang(lang);
            let have: BTreeSet<_> = catalog.keys().collect();
            let missing: Vec<_> = used.iter().filter(|k| !have.contains(k.as_str())).collect();
            assert!(missing.is_empty(), "{lang}: missing keys {missing:?}");
        }
    }

    #[test]
    fn missing_key_shows_itself_and_placeholders_fill() {
        let fr = Catalog::for_lang(Lang::Fr);
        assert_eq!(fr.t("no.such.key"), "no.such.key");
        assert_eq!(
            fr.tf("wall.plan_adopted", &[("date", "12 mars 2026")]),
            "Priorités votées le 12 mars 2026"
        );
        assert_eq!(
            Catalog::for_lang(Lang::En).tf("wall.plan_adopted", &[("date", "12 March 2026")]),
            "Priorities voted on 12 March 2026"
        );
    }

    /// French says "0 appareil", "1 appareil", "2 appareils"; English "0 devices",
    /// "1 device", "2 devices".
    #[test]
    fn counts_follow_each_languages_plural_rule() {
        let fr = Catalog::for_lang(Lang::Fr);
        let en = Catalog::for_lang(Lang::En);
        let key = "installer.device_count";
        let counted = |t: &Catalog| [0, 1, 2].map(|n| t.count(key, n));
        assert_eq!(counted(fr), ["0 appareil", "1 appareil", "2 appareils"]);
        assert_eq!(counted(en), ["0 devices", "1 device", "2 devices"]);
        // Decimals: French keeps the singular below 2, English never takes it.
        let hours = |t: &Catalog, whole, shown| t.count_shown("hours", whole, true, shown);
        assert_eq!(hours(fr, 1, "1,5"), "1,5 heure");
        assert_eq!(hours(en, 1, "1.5"), "1.5 hours");
        assert_eq!(hours(fr, 2, "2,5"), "2,5 heures");
    }

    /// Every counted text has both its forms, and says the number.
    #[test]
    fn every_count_has_both_forms() {
        for lang in Lang::ALL {
            let catalog = Catalog::for_lang(lang);
            let stems: BTreeSet<&str> = catalog
                .keys()
                .filter_map(|k| k.strip_suffix(".one").or_else(|| k.strip_suffix(".many")))
                .collect();
            assert!(!stems.is_empty());
            for stem in stems {
                let many = format!("{stem}.many");
                assert!(
                    catalog.keys().any(|k| k == format!("{stem}.one"))
                        && catalog.keys().any(|k| k == many),
                    "{lang}: {stem} lacks a form"
                );
                assert!(catalog.t(&many).contains("{n}"), "{lang}: {many}");
            }
        }
    }

    #[test]
    fn tags() {
        assert_eq!(Lang::from_tag("fr"), Some(Lang::Fr));
        assert_eq!(Lang::from_tag("EN-gb"), Some(Lang::En));
        assert_eq!(Lang::from_tag("fr_CA"), Some(Lang::Fr));
        assert_eq!(Lang::from_tag("de"), None);
        assert_eq!(Lang::from_tag(""), None);
        assert_eq!("en".parse::<Lang>(), Ok(Lang::En));
        assert!("frx".parse::<Lang>().is_err());
        assert_eq!(Lang::default(), Lang::Fr);
    }

    #[test]
    fn negotiation_order() {
        use Lang::{En, Fr};
        // Explicit choice wins over everything.
        assert_eq!(negotiate(Some("en"), Some("fr"), Some("fr"), Fr), En);
        // An unknown ?lang= falls through to the cookie.
        assert_eq!(negotiate(Some("de"), Some("en"), Some("fr"), Fr), En);
        // Cookie wins over the browser.
        assert_eq!(negotiate(None, Some("fr"), Some("en-GB,en;q=0.9"), En), Fr);
        // Nothing at all: the site's default.
        assert_eq!(negotiate(None, None, None, Fr), Fr);
        assert_eq!(negotiate(None, None, None, En), En);
        assert_eq!(negotiate(None, Some("garbage"), Some(""), En), En);
    }

    #[test]
    fn accept_language_cases() {
        use Lang::{En, Fr};
        let pick = |header: &str| negotiate(None, None, Some(header), Fr);
        let pick_en_site = |header: &str| negotiate(None, None, Some(header), En);
        assert_eq!(pick("en-GB,en;q=0.9"), En);
        assert_eq!(pick("en-US"), En);
        assert_eq!(pick_en_site("fr-FR,fr;q=0.9,en;q=0.8"), Fr);
        // q-values decide, not the order.
        assert_eq!(pick("fr;q=0.4, en;q=0.8"), En);
        assert_eq!(pick_en_site("en;q=0.5,fr"), Fr);
        // Languages we do not have are skipped.
        assert_eq!(pick("de-DE,de;q=0.9,en;q=0.7"), En);
        assert_eq!(pick_en_site("de, it;q=0.5"), En);
        // q=0 refuses a language.
        assert_eq!(pick("en;q=0, de"), Fr);
        assert_eq!(pick_en_site("fr;q=0,en;q=0.1"), En);
        // Ties keep the first listed.
        assert_eq!(pick("en;q=0.8,fr;q=0.8"), En);
        // Wildcard and malformed parts do not choose.
        assert_eq!(pick_en_site("*"), En);
        assert_eq!(pick("en;q=abc,fr;q=0.3"), Fr);
        assert_eq!(pick("en;q=2"), Fr);
        assert_eq!(pick(" , ;q=1, EN ; Q=0.5 "), En);
    }
}
