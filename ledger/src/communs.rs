//! Amounts of Communs, hours of contribution, and demurrage, all in integers.
//!
//! Why integers: the promise of the ledger is that the sum of all balances plus the
//! commons account equals everything ever minted, to the last unit, on every machine
//! that replays the journal. Floating point cannot keep that promise (its rounding
//! differs with the order of operations, and `powf` differs between libms), so:
//!
//! - **Communs** are counted in **micro-Communs** (1 µC = 0.000001 Communs) in an
//!   `i64` ([`Communs`]). In journal payloads every amount is such an integer, in a
//!   field whose name ends in `_micro`; in the read API an amount is a JSON number in
//!   Communs (`98.0`, `99.93268`), exact since six decimals of any amount below
//!   2^53 µC (about nine billion Communs) survive the trip through a double.
//! - **Hours** are counted in hundredths ([`Hours`]): a contribution's hours have at
//!   most two decimals.
//! - **Demurrage** (DESIGN.md §5) is `balance(t) = b0 x (1 - r)^((t - t0) / P)`. The
//!   factor is computed by [`demurrage_factor`] in fixed point with 18 decimals, from
//!   integer operations only, and the decayed balance is **floored** to the micro-
//!   Commun ([`decayed_balance`]). The floor is taken once per settlement: what is
//!   floored away goes to the commons with the rest of the decay, never lost.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// Micro-Communs in one Commun.
pub const MICRO_PER_COMMUN: i64 = 1_000_000;

/// Amounts whose micro-Communs a double holds exactly (2^53 µC): the largest amount
/// read from a JSON number.
const MAX_EXACT_MICRO: i64 = 1 << 53;

/// An amount of Communs, held as micro-Communs. Serializes as a JSON number in
/// Communs (`12.5`); deserializes from one with at most six decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Communs(i64);

impl Communs {
    pub const ZERO: Communs = Communs(0);

    pub const fn from_micro(micro: i64) -> Self {
        Communs(micro)
    }

    /// Whole Communs.
    pub const fn from_whole(communs: i64) -> Self {
        Communs(communs.saturating_mul(MICRO_PER_COMMUN))
    }

    pub const fn micro(self) -> i64 {
        self.0
    }

    /// An amount given as a number of Communs, if it is one: finite, at most six
    /// decimals, and below 2^53 µC in size. The reason in words otherwise.
    pub fn from_communs(communs: f64) -> Result<Self, String> {
        if !communs.is_finite() {
            return Err(format!("{communs} is not a number of Communs"));
        }
        let micro = (communs * MICRO_PER_COMMUN as f64).round();
        if micro.abs() >= MAX_EXACT_MICRO as f64 {
            return Err(format!("{communs} Communs is more than this ledger counts"));
        }
        // Exact: |micro| < 2^53.
        let micro = micro as i64;
        if micro as f64 / MICRO_PER_COMMUN as f64 != communs {
            return Err(format!(
                "{communs} has more than six decimals; Communs are counted to the millionth"
            ));
        }
        Ok(Communs(micro))
    }

    /// The amount as a number of Communs (exact below 2^53 µC).
    pub fn as_communs(self) -> f64 {
        self.0 as f64 / MICRO_PER_COMMUN as f64
    }

    pub fn checked_add(self, other: Communs) -> Option<Communs> {
        self.0.checked_add(other.0).map(Communs)
    }

    pub fn checked_sub(self, other: Communs) -> Option<Communs> {
        self.0.checked_sub(other.0).map(Communs)
    }
}

/// Exact decimal text: `12.5`, `98`, `0.000001`.
impl fmt::Display for Communs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = abs / MICRO_PER_COMMUN as u64;
        let frac = abs % MICRO_PER_COMMUN as u64;
        if frac == 0 {
            write!(f, "{sign}{whole}")
        } else {
            let digits = format!("{frac:06}");
            write!(f, "{sign}{whole}.{}", digits.trim_end_matches('0'))
        }
    }
}

impl Serialize for Communs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_communs())
    }
}

impl<'de> Deserialize<'de> for Communs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Communs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of Communs with at most six decimals")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Communs, E> {
                Communs::from_communs(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Communs, E> {
                match v.checked_mul(MICRO_PER_COMMUN) {
                    Some(micro) if micro.abs() < MAX_EXACT_MICRO => Ok(Communs(micro)),
                    _ => Err(E::custom(format!(
                        "{v} Communs is more than this ledger counts"
                    ))),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Communs, E> {
                match i64::try_from(v) {
                    Ok(v) => self.visit_i64(v),
                    Err(_) => Err(E::custom(format!(
                        "{v} Communs is more than this ledger counts"
                    ))),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Hours of contribution, held in hundredths of an hour. Serializes as a JSON number
/// of hours (`1.5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hours(u64);

impl Hours {
    pub const ZERO: Hours = Hours(0);

    pub const fn from_centihours(centihours: u64) -> Self {
        Hours(centihours)
    }

    pub const fn centihours(self) -> u64 {
        self.0
    }

    /// Hours given as a number, if it is a non-negative one with at most two
    /// decimals; `None` otherwise.
    pub fn from_hours(hours: f64) -> Option<Self> {
        if !(0.0..1e12).contains(&hours) {
            return None;
        }
        let centi = (hours * 100.0).round();
        // Exact: centi < 1e14 < 2^53.
        (centi / 100.0 == hours).then_some(Hours(centi as u64))
    }

    pub fn as_hours(self) -> f64 {
        self.0 as f64 / 100.0
    }
}

impl fmt::Display for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 100, self.0 % 100);
        match frac {
            0 => write!(f, "{whole}"),
            f10 if f10 % 10 == 0 => write!(f, "{whole}.{}", f10 / 10),
            _ => write!(f, "{whole}.{frac:02}"),
        }
    }
}

impl Serialize for Hours {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_hours())
    }
}

/// `1` in the fixed point of [`demurrage_factor`]: 18 decimals.
pub const FACTOR_ONE: i128 = 1_000_000_000_000_000_000;

/// Parts per million of a demurrage rate, turned into the fixed point.
const PPM_IN_FACTOR: i128 = 1_000_000_000_000;

/// Largest demurrage rate the assembly can set, in parts per million per period
/// (50 %): it keeps the series below short and every intermediate within `i128`.
pub const MAX_DEMURRAGE_RATE_PPM: u32 = 500_000;

/// `(1 - r)^(elapsed / period)` in fixed point (`FACTOR_ONE` is 1), for a rate `r`
/// of `rate_ppm` parts per million per period. Integer operations only, so every
/// machine computes the same factor. Exactly, with every division truncating toward
/// zero unless said otherwise:
///
/// 1. `n = elapsed_ms / period_ms` whole periods and `rem = elapsed_ms % period_ms`.
/// 2. `y = 10^18 - rate_ppm x 10^12` (that is `1 - r`), and `p = y^n` by binary
///    exponentiation from the lowest bit of `n`, each product `a x b / 10^18`
///    rounded half up; stopping at 0.
/// 3. If `rem = 0`, `g = 10^18`. Otherwise `l = ln(1 - r)` as `2 atanh(z)` with
///    `z = -(rate_ppm x 10^18) / (2 x 10^6 - rate_ppm)`: `t = z`, `z2 = z x z / 10^18`,
///    `l = 2 x sum(t / (2j + 1))` over `t <- t x z2 / 10^18` until `t = 0`; then
///    `a = l x rem / period_ms`, and `g = sum(u)` over `u = 10^18`,
///    `u <- u x a / (10^18 x k)` for `k = 1, 2, ...` until `u = 0`.
/// 4. The factor is `p x g / 10^18`, kept within `0..=10^18`.
///
/// So a whole number of periods is exact as far as 18 decimals go (`0.98` after one
/// period of 2 %), and the rest is within a few units of 10^-18 of the true value.
/// `elapsed_ms <= 0` gives 1; so does a rate of 0. `period_ms` must be positive and
/// `rate_ppm` at most [`MAX_DEMURRAGE_RATE_PPM`] (the parameters guarantee both);
/// outside that the factor is 1, i.e. no demurrage, rather than a panic.
pub fn demurrage_factor(rate_ppm: u32, period_ms: i64, elapsed_ms: i64) -> i128 {
    if elapsed_ms <= 0 || rate_ppm == 0 || period_ms <= 0 || rate_ppm > MAX_DEMURRAGE_RATE_PPM {
        return FACTOR_ONE;
    }
    let rate = i128::from(rate_ppm);
    let (n, rem) = (elapsed_ms / period_ms, elapsed_ms % period_ms);

    let mul_round = |a: i128, b: i128| (a * b + FACTOR_ONE / 2) / FACTOR_ONE;
    let mut p = FACTOR_ONE;
    let mut base = FACTOR_ONE - rate * PPM_IN_FACTOR;
    let mut e = n;
    while e > 0 && p > 0 {
        if e & 1 == 1 {
            p = mul_round(p, base);
        }
        e >>= 1;
        if e > 0 {
            base = mul_round(base, base);
        }
    }
    if p == 0 {
        return 0;
    }

    let g = if rem == 0 {
        FACTOR_ONE
    } else {
        // ln(1 - r) = 2 atanh(z), z = (y - 1) / (y + 1) = -r / (2 - r); |z| <= 1/3.
        let z = -(rate * FACTOR_ONE) / (2_000_000 - rate);
        let z2 = z * z / FACTOR_ONE;
        let (mut t, mut ln, mut j) = (z, 0i128, 0i128);
        while t != 0 {
            ln += t / (2 * j + 1);
            t = t * z2 / FACTOR_ONE;
            j += 1;
        }
        ln *= 2;
        // |ln| < 0.7 x 10^18 and rem < period_ms < 2^39: the product fits.
        let a = ln * i128::from(rem) / i128::from(period_ms);
        let (mut u, mut g, mut k) = (FACTOR_ONE, 0i128, 1i128);
        while u != 0 {
            g += u;
            u = u * a / (FACTOR_ONE * k);
            k += 1;
        }
        g
    };
    (p * g / FACTOR_ONE).clamp(0, FACTOR_ONE)
}

/// What a balance of `balance` becomes after `elapsed_ms`: `floor(balance x factor)`,
/// never more than `balance` nor less than zero. A zero or negative balance does not
/// decay.
pub fn decayed_balance(
    balance: Communs,
    rate_ppm: u32,
    period_ms: i64,
    elapsed_ms: i64,
) -> Communs {
    if balance.0 <= 0 {
        return balance;
    }
    let factor = demurrage_factor(rate_ppm, period_ms, elapsed_ms);
    // balance < 2^63 and factor <= 10^18 < 2^60: the product fits in i128; the
    // quotient is at most balance, so it fits in i64.
    let kept = i128::from(balance.0) * factor / FACTOR_ONE;
    Communs(i64::try_from(kept).unwrap_or(balance.0).min(balance.0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DAY_MS: i64 = 86_400_000;

    #[test]
    fn amounts_serialize_as_communs() {
        let v = serde_json::to_value([
            Communs::from_micro(98_000_000),
            Communs::from_micro(99_932_680),
            Communs::from_micro(1),
            Communs::ZERO,
        ])
        .unwrap();
        assert_eq!(v, serde_json::json!([98.0, 99.93268, 0.000001, 0.0]));
        assert_eq!(
            serde_json::to_string(&Communs::from_micro(98_000_000)).unwrap(),
            "98.0"
        );
    }

    #[test]
    fn amounts_read_from_communs_with_six_decimals_at_most() {
        let read = |text: &str| serde_json::from_str::<Communs>(text);
        assert_eq!(read("12.5").unwrap(), Communs::from_micro(12_500_000));
        assert_eq!(read("3").unwrap(), Communs::from_whole(3));
        assert_eq!(read("0.1").unwrap(), Communs::from_micro(100_000));
        assert_eq!(read("0.000001").unwrap(), Communs::from_micro(1));
        let err = read("0.0000001").unwrap_err().to_string();
        assert!(err.contains("more than six decimals"), "{err}");
        assert!(read("\"12\"").is_err());
        assert!(read("1e300").is_err());
        assert!(Communs::from_communs(f64::NAN).is_err());
    }

    #[test]
    fn amounts_display_exactly() {
        assert_eq!(Communs::from_micro(98_000_000).to_string(), "98");
        assert_eq!(Communs::from_micro(99_932_680).to_string(), "99.93268");
        assert_eq!(Communs::from_micro(-1_500_000).to_string(), "-1.5");
        assert_eq!(Communs::from_micro(7).to_string(), "0.000007");
    }

    #[test]
    fn hours_have_two_decimals_at_most() {
        assert_eq!(Hours::from_hours(1.5), Some(Hours::from_centihours(150)));
        assert_eq!(Hours::from_hours(1.15), Some(Hours::from_centihours(115)));
        assert_eq!(Hours::from_hours(0.01), Some(Hours::from_centihours(1)));
        assert_eq!(Hours::from_hours(1.155), None);
        assert_eq!(Hours::from_hours(-1.0), None);
        assert_eq!(Hours::from_hours(f64::INFINITY), None);
        assert_eq!(Hours::from_centihours(150).to_string(), "1.5");
        assert_eq!(Hours::from_centihours(105).to_string(), "1.05");
        assert_eq!(Hours::from_centihours(200).to_string(), "2");
        assert_eq!(
            serde_json::to_value(Hours::from_centihours(150)).unwrap(),
            1.5
        );
    }

    #[test]
    fn whole_periods_are_exact() {
        let period = 30 * DAY_MS;
        assert_eq!(
            demurrage_factor(20_000, period, period),
            980_000_000_000_000_000
        );
        assert_eq!(
            demurrage_factor(20_000, period, 2 * period),
            960_400_000_000_000_000
        );
        assert_eq!(
            demurrage_factor(20_000, period, 3 * period),
            941_192_000_000_000_000
        );
        assert_eq!(demurrage_factor(20_000, period, 0), FACTOR_ONE);
        assert_eq!(demurrage_factor(20_000, period, -5), FACTOR_ONE);
        assert_eq!(demurrage_factor(0, period, 10 * period), FACTOR_ONE);
    }

    #[test]
    fn the_factor_agrees_with_floating_point_closely() {
        // Not the definition (floating point is not the same everywhere), only a
        // witness that the integer series compute the intended function.
        let period = 30 * DAY_MS;
        for rate_ppm in [1, 20_000, 100_000, 500_000] {
            for elapsed in [
                1,
                1000,
                DAY_MS,
                7 * DAY_MS + 3,
                period - 1,
                365 * DAY_MS,
                3650 * DAY_MS,
            ] {
                let f = demurrage_factor(rate_ppm, period, elapsed) as f64 / FACTOR_ONE as f64;
                let r = 1.0 - f64::from(rate_ppm) / 1e6;
                let expected = r.powf(elapsed as f64 / period as f64);
                assert!(
                    (f - expected).abs() < 1e-14,
                    "rate {rate_ppm} ppm, {elapsed} ms: {f} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn very_long_times_decay_to_nothing_without_overflow() {
        let factor = demurrage_factor(500_000, DAY_MS, 3_000 * 365 * DAY_MS);
        assert_eq!(factor, 0);
        let b = Communs::from_micro(i64::MAX);
        assert_eq!(decayed_balance(b, 500_000, DAY_MS, i64::MAX), Communs::ZERO);
        assert_eq!(decayed_balance(b, 20_000, 30 * DAY_MS, 0), b);
        assert!(decayed_balance(b, 20_000, 30 * DAY_MS, DAY_MS) < b);
    }

    #[test]
    fn any_time_on_a_positive_balance_decays_at_least_one_unit() {
        // The floor: settling often costs at most a micro-Commun each time.
        let b = Communs::from_whole(100);
        assert_eq!(
            decayed_balance(b, 20_000, 30 * DAY_MS, 1),
            Communs::from_micro(99_999_999)
        );
    }
}
