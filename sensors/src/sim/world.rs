//! A small simulated community: a PV roof under the real sun with light clouds, a
//! battery, the grid, and the services that consume. Deterministic for a given
//! seed and sequence of steps, so that tests and demos can be replayed.

use chrono::{DateTime, Datelike, Offset, TimeZone, Timelike, Utc, Weekday};
use serde::{Deserialize, Serialize};

use super::sun::clear_sky_fraction;

/// How a simulated service consumes over the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadShape {
    /// A refrigerator: the compressor cycles on (about `base_w`, ~150 W) and off.
    Fridge,
    /// A school: weekdays 08:00-17:00 between 0.75 and 1.5 x `base_w` with a
    /// lunchtime peak (canteen), a small standby load otherwise.
    School,
    /// Homes: `base_w` overnight, a morning peak and an evening peak near
    /// 6 x `base_w`.
    Households,
}

/// One simulated service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimLoad {
    pub id: String,
    pub base_w: f64,
    pub profile: LoadShape,
}

/// The simulated site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorldConfig {
    pub latitude: f64,
    pub longitude: f64,
    /// PV output under a clear sky with the sun at the zenith (W).
    pub pv_peak_w: f64,
    /// 0 for a site without battery.
    pub battery_capacity_wh: f64,
    pub battery_max_w: f64,
    /// The battery does not discharge below this state of charge (%).
    pub battery_reserve_pct: f64,
    pub services: Vec<SimLoad>,
}

impl Default for WorldConfig {
    /// A village near Lyon: 12 kWp roof, 20 kWh battery, a clinic fridge, a school
    /// and a group of homes.
    fn default() -> Self {
        WorldConfig {
            latitude: 45.76,
            longitude: 4.84,
            pv_peak_w: 12_000.0,
            battery_capacity_wh: 20_000.0,
            battery_max_w: 5_000.0,
            battery_reserve_pct: 20.0,
            services: vec![
                SimLoad {
                    id: "clinic-fridge".to_string(),
                    base_w: 150.0,
                    profile: LoadShape::Fridge,
                },
                SimLoad {
                    id: "school".to_string(),
                    base_w: 2_000.0,
                    profile: LoadShape::School,
                },
                SimLoad {
                    id: "households".to_string(),
                    base_w: 1_000.0,
                    profile: LoadShape::Households,
                },
            ],
        }
    }
}

/// Power flows (W, site bus convention of DESIGN.md §2) and energies (Wh) after a
/// step.
#[derive(Debug, Clone, PartialEq)]
pub struct WorldState {
    pub time: DateTime<Utc>,
    pub pv_w: f64,
    /// Import positive: loads - pv - battery.
    pub grid_w: f64,
    /// Discharge positive.
    pub battery_w: f64,
    pub battery_soc_pct: f64,
    /// Each service's consumption, in configuration order.
    pub loads: Vec<(String, f64)>,
    pub pv_energy_wh: f64,
    pub grid_import_wh: f64,
    pub grid_export_wh: f64,
    pub loads_energy_wh: Vec<(String, f64)>,
}

/// SplitMix64: tiny, seedable and good enough for noise.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Approximately standard normal (sum of uniforms, Irwin-Hall).
    fn normal(&mut self) -> f64 {
        (0..6).map(|_| self.uniform()).sum::<f64>() * 2.0 - 6.0
    }
}

/// Red noise (Ornstein-Uhlenbeck): varies smoothly over about `tau_s` seconds,
/// whatever the step length.
#[derive(Debug, Clone)]
struct Wander {
    value: f64,
    tau_s: f64,
}

impl Wander {
    fn step(&mut self, rng: &mut Rng, dt_s: f64) -> f64 {
        if dt_s > 0.0 {
            let keep = (-dt_s / self.tau_s).exp();
            self.value = keep * self.value + (1.0 - keep * keep).sqrt() * rng.normal();
            self.value = self.value.clamp(-3.0, 3.0);
        }
        self.value
    }
}

#[derive(Debug, Clone)]
struct LoadState {
    noise: Wander,
    compressor_on: bool,
    /// Seconds until the compressor switches.
    cycle_left_s: f64,
    energy_wh: f64,
}

/// The simulated community.
#[derive(Debug, Clone)]
pub struct World {
    cfg: WorldConfig,
    timezone: Option<chrono_tz::Tz>,
    rng: Rng,
    clouds: Wander,
    battery_wh: f64,
    loads: Vec<LoadState>,
    pv_energy_wh: f64,
    grid_import_wh: f64,
    grid_export_wh: f64,
}

fn bump(hour: f64, center: f64, width: f64) -> f64 {
    (-((hour - center) / width).powi(2)).exp()
}

impl World {
    pub fn new(cfg: WorldConfig, seed: u64) -> World {
        let mut rng = Rng(seed);
        let loads = cfg
            .services
            .iter()
            .map(|_| LoadState {
                noise: Wander {
                    value: 0.0,
                    tau_s: 600.0,
                },
                compressor_on: rng.uniform() < 0.4,
                cycle_left_s: rng.uniform() * 900.0,
                energy_wh: 0.0,
            })
            .collect();
        let battery_wh = 0.6 * cfg.battery_capacity_wh.max(0.0);
        World {
            cfg,
            timezone: None,
            rng,
            clouds: Wander {
                value: 0.0,
                tau_s: 900.0,
            },
            battery_wh,
            loads,
            pv_energy_wh: 0.0,
            grid_import_wh: 0.0,
            grid_export_wh: 0.0,
        }
    }

    /// Local civil time for the load shapes (school hours, evening peak). Without
    /// it, the mean solar time at the site's longitude is used.
    pub fn with_timezone(mut self, timezone: chrono_tz::Tz) -> World {
        self.timezone = Some(timezone);
        self
    }

    pub fn config(&self) -> &WorldConfig {
        &self.cfg
    }

    /// Local hour of day (fractional) and whether it is a school day.
    fn local_time(&self, t: DateTime<Utc>) -> (f64, bool) {
        let offset_s = match self.timezone {
            Some(tz) => f64::from(
                tz.offset_from_utc_datetime(&t.naive_utc())
                    .fix()
                    .local_minus_utc(),
            ),
            None => self.cfg.longitude / 15.0 * 3600.0,
        };
        let local = t
            .checked_add_signed(chrono::Duration::milliseconds((offset_s * 1000.0) as i64))
            .unwrap_or(t);
        let hour = f64::from(local.hour())
            + f64::from(local.minute()) / 60.0
            + f64::from(local.second()) / 3600.0;
        let weekday = !matches!(local.weekday(), Weekday::Sat | Weekday::Sun);
        (hour, weekday)
    }

    fn load_power(&mut self, i: usize, hour: f64, weekday: bool, dt_s: f64) -> f64 {
        let Some(load) = self.cfg.services.get(i) else {
            return 0.0;
        };
        let (base_w, shape) = (load.base_w.max(0.0), load.profile);
        let Some(state) = self.loads.get_mut(i) else {
            return 0.0;
        };
        let noise = state.noise.step(&mut self.rng, dt_s);
        match shape {
            LoadShape::Fridge => {
                state.cycle_left_s -= dt_s.max(0.0);
                if state.cycle_left_s <= 0.0 {
                    state.compressor_on = !state.compressor_on;
                    // Compressor runs 10-18 min, rests 20-30 min.
                    state.cycle_left_s = if state.compressor_on {
                        600.0 + 480.0 * self.rng.uniform()
                    } else {
                        1200.0 + 600.0 * self.rng.uniform()
                    };
                }
                if state.compressor_on {
                    base_w * (1.0 + 0.03 * noise)
                } else {
                    // Controller and light.
                    0.03 * base_w
                }
            }
            LoadShape::School => {
                if weekday && (8.0..17.0).contains(&hour) {
                    base_w * (0.75 + 0.75 * bump(hour, 12.5, 1.2)) * (1.0 + 0.05 * noise)
                } else {
                    // Network, fridges and the alarm overnight and at weekends.
                    0.06 * base_w * (1.0 + 0.05 * noise)
                }
            }
            LoadShape::Households => {
                let shape = 1.0
                    + 2.0 * bump(hour, 7.5, 1.0)
                    + 5.0 * bump(hour, 19.5, 1.5)
                    + 0.5 * bump(hour, 13.0, 2.0);
                base_w * shape * (1.0 + 0.08 * noise)
            }
        }
        .max(0.0)
    }

    /// Advances the world by `dt_s` seconds ending at `sim_time`.
    pub fn step(&mut self, sim_time: DateTime<Utc>, dt_s: f64) -> WorldState {
        let dt_s = if dt_s.is_finite() { dt_s.max(0.0) } else { 0.0 };
        let dt_h = dt_s / 3600.0;
        let (hour, weekday) = self.local_time(sim_time);

        let clouds = self.clouds.step(&mut self.rng, dt_s);
        let cloud_factor = (1.0 - 0.08 * clouds.abs()).clamp(0.6, 1.0);
        let pv_w = self.cfg.pv_peak_w.max(0.0)
            * clear_sky_fraction(self.cfg.latitude, self.cfg.longitude, sim_time)
            * cloud_factor;

        let mut loads = Vec::with_capacity(self.cfg.services.len());
        for i in 0..self.cfg.services.len() {
            let w = self.load_power(i, hour, weekday, dt_s);
            if let Some(state) = self.loads.get_mut(i) {
                state.energy_wh += w * dt_h;
            }
            loads.push((self.cfg.services[i].id.clone(), w));
        }
        let load_w: f64 = loads.iter().map(|(_, w)| w).sum();

        let battery_w = self.battery_power(pv_w - load_w, dt_h);
        self.battery_wh -= battery_w * dt_h;
        let capacity = self.cfg.battery_capacity_wh.max(0.0);
        self.battery_wh = self.battery_wh.clamp(0.0, capacity);

        let grid_w = load_w - pv_w - battery_w;
        self.pv_energy_wh += pv_w * dt_h;
        self.grid_import_wh += grid_w.max(0.0) * dt_h;
        self.grid_export_wh += (-grid_w).max(0.0) * dt_h;

        WorldState {
            time: sim_time,
            pv_w,
            grid_w,
            battery_w,
            battery_soc_pct: if capacity > 0.0 {
                100.0 * self.battery_wh / capacity
            } else {
                0.0
            },
            loads,
            pv_energy_wh: self.pv_energy_wh,
            grid_import_wh: self.grid_import_wh,
            grid_export_wh: self.grid_export_wh,
            loads_energy_wh: self
                .cfg
                .services
                .iter()
                .zip(&self.loads)
                .map(|(s, l)| (s.id.clone(), l.energy_wh))
                .collect(),
        }
    }

    /// Battery power (discharge positive) for a PV surplus (positive) or deficit:
    /// charge from surplus up to full, discharge to cover a deficit down to the
    /// reserve, both within the inverter's rating.
    fn battery_power(&self, surplus_w: f64, dt_h: f64) -> f64 {
        let capacity = self.cfg.battery_capacity_wh.max(0.0);
        let max_w = self.cfg.battery_max_w.max(0.0);
        if capacity <= 0.0 || max_w <= 0.0 {
            return 0.0;
        }
        let reserve_wh = capacity * self.cfg.battery_reserve_pct.clamp(0.0, 100.0) / 100.0;
        // What the stored energy allows over this step; a zero-length step only
        // asks whether there is room at all.
        let limit = |room_wh: f64| {
            if room_wh <= 0.0 {
                0.0
            } else if dt_h > 0.0 {
                room_wh / dt_h
            } else {
                f64::INFINITY
            }
        };
        if surplus_w > 0.0 {
            -surplus_w.min(max_w).min(limit(capacity - self.battery_wh))
        } else {
            (-surplus_w)
                .min(max_w)
                .min(limit(self.battery_wh - reserve_wh))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64, tz: Option<chrono_tz::Tz>) -> Vec<WorldState> {
        let mut world = World::new(WorldConfig::default(), seed);
        if let Some(tz) = tz {
            world = world.with_timezone(tz);
        }
        let start = Utc
            .with_ymd_and_hms(2025, 6, 16, 0, 0, 0)
            .single()
            .expect("date");
        (0..=2 * 24 * 60)
            .map(|m| {
                world.step(
                    start + chrono::Duration::minutes(m),
                    if m == 0 { 0.0 } else { 60.0 },
                )
            })
            .collect()
    }

    #[test]
    fn the_bus_balances_at_every_step() {
        for s in run(7, Some(chrono_tz::Europe::Paris)) {
            let loads: f64 = s.loads.iter().map(|(_, w)| w).sum();
            assert!(
                (s.pv_w + s.grid_w + s.battery_w - loads).abs() < 1e-6,
                "{s:?}"
            );
            assert!((0.0..=100.0).contains(&s.battery_soc_pct));
            assert!(s.battery_w.abs() <= 5_000.0 + 1e-9);
            assert!(s.pv_w >= 0.0 && s.pv_w <= 12_000.0);
        }
    }

    #[test]
    fn same_seed_same_world_other_seed_other_clouds() {
        assert_eq!(run(1, None), run(1, None));
        assert_ne!(run(1, None), run(2, None));
    }

    #[test]
    fn energies_accumulate_and_the_day_looks_like_a_day() {
        let states = run(3, Some(chrono_tz::Europe::Paris));
        let last = states.last().expect("states");
        // Two June days of a 12 kWp horizontal roof: tens of kWh.
        assert!(
            last.pv_energy_wh > 80_000.0 && last.pv_energy_wh < 200_000.0,
            "{}",
            last.pv_energy_wh
        );
        let balance = last.pv_energy_wh + last.grid_import_wh - last.grid_export_wh;
        let loads: f64 = last.loads_energy_wh.iter().map(|(_, e)| e).sum();
        // Bus energy = loads + what the battery stored since the start (60 %).
        let stored = (last.battery_soc_pct - 60.0) / 100.0 * 20_000.0;
        assert!(
            (balance - loads - stored).abs() < 1.0,
            "{balance} {loads} {stored}"
        );

        // Monday 16 June 2025, Paris: no PV at 02:00 local, school open at 10:00.
        let at = |h: usize| &states[h * 60 - 120];
        assert_eq!(at(2).pv_w, 0.0);
        let school = |s: &WorldState| s.loads[1].1;
        assert!(
            school(at(10)) >= 1_400.0 && school(at(10)) <= 3_100.0,
            "{}",
            school(at(10))
        );
        assert!(school(at(22)) < 200.0);
        // Households peak in the evening.
        let homes = |s: &WorldState| s.loads[2].1;
        assert!(homes(at(20)) > 4.0 * homes(at(3)));
        // The battery never goes below its reserve, charges around midday and
        // helps in the evening.
        assert!(states.iter().all(|s| s.battery_soc_pct >= 20.0 - 1e-9));
        assert!((9..15).any(|h| at(h).battery_w < 0.0));
        assert!((19..23).any(|h| at(h).battery_w > 0.0));
        // The fridge cycles.
        let fridge: Vec<f64> = states.iter().map(|s| s.loads[0].1).collect();
        assert!(fridge.iter().any(|w| *w > 140.0) && fridge.iter().any(|w| *w < 10.0));
    }
}
