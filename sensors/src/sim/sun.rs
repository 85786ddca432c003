//! Where the sun is, and how much of a clear sky's irradiance reaches a horizontal
//! panel. Solar position from the NOAA "General Solar Position Calculations"
//! (fractional year, equation of time, declination, hour angle); air mass from
//! Kasten & Young (1989); clear-sky attenuation from Meinel & Meinel (1976),
//! I = I0 x 0.7^(AM^0.678).

use std::f64::consts::PI;

use chrono::{DateTime, Datelike, Timelike, Utc};

/// Sine of the sun's elevation above the horizon (negative below it).
pub fn sin_elevation(latitude: f64, longitude: f64, at: DateTime<Utc>) -> f64 {
    let days_in_year = if at.date_naive().leap_year() {
        366.0
    } else {
        365.0
    };
    let hour =
        f64::from(at.hour()) + f64::from(at.minute()) / 60.0 + f64::from(at.second()) / 3600.0;
    // Fractional year (radians).
    let g = 2.0 * PI / days_in_year * (f64::from(at.ordinal()) - 1.0 + (hour - 12.0) / 24.0);
    // Equation of time (minutes).
    let eqtime = 229.18
        * (0.000075 + 0.001868 * g.cos()
            - 0.032077 * g.sin()
            - 0.014615 * (2.0 * g).cos()
            - 0.040849 * (2.0 * g).sin());
    // Solar declination (radians).
    let decl = 0.006918 - 0.399912 * g.cos() + 0.070257 * g.sin() - 0.006758 * (2.0 * g).cos()
        + 0.000907 * (2.0 * g).sin()
        - 0.002697 * (3.0 * g).cos()
        + 0.00148 * (3.0 * g).sin();
    // True solar time (minutes), longitude positive east; hour angle (degrees).
    let true_solar_min = hour * 60.0 + eqtime + 4.0 * longitude;
    let hour_angle = (true_solar_min / 4.0 - 180.0).to_radians();
    let lat = latitude.to_radians();
    lat.sin() * decl.sin() + lat.cos() * decl.cos() * hour_angle.cos()
}

/// Fraction, in [0, 1], of the clear-sky irradiance the sun would give on a
/// horizontal surface with the sun at the zenith: sin(elevation) times the
/// atmosphere's transmission at this air mass, normalised to air mass 1.
pub fn clear_sky_fraction(latitude: f64, longitude: f64, at: DateTime<Utc>) -> f64 {
    let cos_zenith = sin_elevation(latitude, longitude, at);
    // Below the horizon, or NaN from a clock far out of range.
    if cos_zenith.is_nan() || cos_zenith <= 0.0 {
        return 0.0;
    }
    let zenith_deg = cos_zenith.clamp(-1.0, 1.0).acos().to_degrees();
    let air_mass = 1.0 / (cos_zenith + 0.50572 * (96.07995 - zenith_deg).powf(-1.6364));
    let transmission = 0.7f64.powf(air_mass.powf(0.678)) / 0.7;
    (cos_zenith * transmission).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const LYON: (f64, f64) = (45.76, 4.84);

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("valid date")
    }

    #[test]
    fn dark_at_local_midnight() {
        // Lyon's solar midnight is about 23:40 UTC.
        for (mo, d) in [(6, 21), (12, 21), (3, 20)] {
            assert_eq!(
                clear_sky_fraction(LYON.0, LYON.1, at(2025, mo, d, 23, 40)),
                0.0
            );
            assert_eq!(
                clear_sky_fraction(LYON.0, LYON.1, at(2025, mo, d, 0, 0)),
                0.0
            );
        }
    }

    #[test]
    fn peaks_near_local_solar_noon() {
        // Solar noon at 4.84° E is 12:00 - 19 min - equation of time: about 11:42
        // UTC on 21 June, 11:39 on 21 December, 11:24 on 3 November.
        for (mo, d, noon_min) in [
            (6, 21, 11 * 60 + 42),
            (12, 21, 11 * 60 + 39),
            (11, 3, 11 * 60 + 24),
        ] {
            let (best_min, best) = (0..24 * 60)
                .map(|m| {
                    (
                        m,
                        clear_sky_fraction(LYON.0, LYON.1, at(2025, mo, d, m / 60, m % 60)),
                    )
                })
                .fold((0, 0.0), |acc, x| if x.1 > acc.1 { x } else { acc });
            assert!(
                (best_min as i32 - noon_min).abs() <= 5,
                "{mo}/{d}: peak at {best_min} min"
            );
            assert!(best > 0.0 && best <= 1.0);
        }
    }

    #[test]
    fn june_beats_december_at_latitude_45() {
        let june = clear_sky_fraction(45.0, 0.0, at(2025, 6, 21, 12, 0));
        let december = clear_sky_fraction(45.0, 0.0, at(2025, 12, 21, 12, 0));
        assert!(june > 0.85 && june < 1.0, "{june}");
        assert!(december > 0.15 && december < 0.4, "{december}");
        assert!(june > 2.0 * december);
    }
}
