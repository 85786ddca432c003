//! Whose a device's readings are (DESIGN.md §6 and §9, "a household's consumption
//! is that household's"): the one definition of a *community* device, which every
//! public surface and the export use.
//!
//! A device is the community's when it is production, the grid connection, a
//! battery, or the meter of a service; every other meter (a `load` that meters no
//! service) is a household's. Public surfaces (the wall, `/api/live`, `/events`,
//! `/metrics`, `/history`, `/wall/today`) show community devices and the site's
//! totals only: a household's meter still counts in `load_w` and `unmetered_w`,
//! but is never named or shown on its own. Installers see every device.
//!
//! The live side's public view is made once per evaluation ([`public_feed`]), not
//! by each request, so that no public handler can forget to filter.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use sensors::config::DeviceConfig;
use sensors::model::Role;
use tokio::sync::watch;

use crate::config::ServiceConfig;
use crate::live::LiveSnapshot;

/// Which configured devices are the community's and which are households'.
#[derive(Debug, Clone)]
pub struct Visibility {
    /// Community devices, and the services' recorded allocations (`service:<id>`):
    /// what any member may export, and all a public surface may name.
    community: HashSet<String>,
    /// Configured devices that are not the community's: households' meters.
    household: HashSet<String>,
}

impl Visibility {
    /// Sorts the configured devices into the community's and the households'.
    pub fn new(devices: &[DeviceConfig], services: &[ServiceConfig]) -> Visibility {
        let meters: HashSet<&str> = services.iter().filter_map(|s| s.meter.as_deref()).collect();
        let (community, household): (Vec<&DeviceConfig>, Vec<&DeviceConfig>) =
            devices.iter().partition(|d| match d.role {
                Role::Pv | Role::Grid | Role::Battery => true,
                Role::Load => meters.contains(d.id.as_str()),
            });
        let community = community
            .into_iter()
            .map(|d| d.id.clone())
            .chain(
                services
                    .iter()
                    .map(|s| crate::replay::service_device(&s.id)),
            )
            .collect();
        let household = household.into_iter().map(|d| d.id.clone()).collect();
        Visibility {
            community,
            household,
        }
    }

    /// Whether `device` is the community's: production, grid, battery, a service's
    /// meter, or a service's recorded allocation (`service:<id>`). An id the
    /// configuration does not know is not.
    pub fn is_community(&self, device: &str) -> bool {
        self.community.contains(device)
    }

    /// Whether `device` is a configured household's meter: never named on a public
    /// surface.
    pub fn is_household(&self, device: &str) -> bool {
        self.household.contains(device)
    }

    /// The households' meters: every configured load that meters no service,
    /// claimed by a `[[household]]` or not.
    pub fn household_devices(&self) -> &HashSet<String> {
        &self.household
    }

    /// The community's devices (see [`Visibility::is_community`]).
    pub fn community_devices(&self) -> &HashSet<String> {
        &self.community
    }

    /// What the public may see of `snapshot`: every figure, with only the
    /// community's devices in `devices`. The site's totals keep counting the
    /// households' meters; no row names them.
    pub fn public_view(&self, snapshot: &LiveSnapshot) -> LiveSnapshot {
        LiveSnapshot {
            devices: snapshot
                .devices
                .iter()
                .filter(|d| self.is_community(&d.id))
                .cloned()
                .collect(),
            ..snapshot.clone()
        }
    }
}

/// A channel of the public views of the snapshots `full` receives, holding the
/// view of the current one already, and the task that feeds it, for the caller to
/// spawn: each view is made once per evaluation, whoever reads it. The task ends,
/// and the channel's readers see its sender gone, when `full`'s sender is dropped.
pub fn public_feed(
    mut full: watch::Receiver<Arc<LiveSnapshot>>,
    visibility: Arc<Visibility>,
) -> (
    watch::Receiver<Arc<LiveSnapshot>>,
    impl Future<Output = ()> + Send + 'static,
) {
    let first = visibility.public_view(&full.borrow_and_update());
    let (tx, rx) = watch::channel(Arc::new(first));
    let feed = async move {
        while full.changed().await.is_ok() {
            let view = visibility.public_view(&full.borrow_and_update());
            tx.send_replace(Arc::new(view));
        }
    };
    (rx, feed)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use ingest::metrics::HealthState;

    use super::*;
    use crate::live::DeviceLive;

    fn device(id: &str, role: &str) -> DeviceConfig {
        serde_json::from_value(serde_json::json!({
            "id": id, "role": role, "profile": "generic-json", "mqtt": {"topic": id}
        }))
        .unwrap_or_else(|e| panic!("{id}: {e}"))
    }

    fn service(id: &str, meter: Option<&str>) -> ServiceConfig {
        serde_json::from_value(serde_json::json!({"id": id, "meter": meter, "tier": 1}))
            .unwrap_or_else(|e| panic!("{id}: {e}"))
    }

    /// The site of these tests: a roof, the grid, a battery, the clinic's meter
    /// (metering the fridge service), and two households' meters; the laundry
    /// service declares its demand.
    fn site() -> Visibility {
        Visibility::new(
            &[
                device("roof", "pv"),
                device("grid", "grid"),
                device("battery", "battery"),
                device("clinic-meter", "load"),
                device("house-3", "load"),
                device("house-7", "load"),
            ],
            &[
                service("clinic-fridge", Some("clinic-meter")),
                service("laundry", None),
            ],
        )
    }

    #[test]
    fn a_load_that_meters_no_service_is_a_households() {
        let v = site();
        for id in [
            "roof",
            "grid",
            "battery",
            "clinic-meter",
            "service:clinic-fridge",
            "service:laundry",
        ] {
            assert!(v.is_community(id), "{id} is the community's");
            assert!(!v.is_household(id), "{id} is not a household's");
        }
        for id in ["house-3", "house-7"] {
            assert!(!v.is_community(id), "{id} is a household's");
            assert!(v.is_household(id), "{id} is a household's");
        }
        // An id the configuration does not know is neither: not exportable, and
        // no household's meter either.
        assert!(!v.is_community("unknown") && !v.is_household("unknown"));
    }

    fn row(id: &str, role: &'static str, power_w: f64) -> DeviceLive {
        DeviceLive {
            id: id.into(),
            name: id.into(),
            role,
            power_w: Some(power_w),
            last_seen: Some(Utc::now()),
            healthy: true,
            state: HealthState::Up,
        }
    }

    fn snapshot() -> LiveSnapshot {
        let mut s = crate::engine::empty_snapshot(Utc::now());
        s.stale = false;
        s.site.pv_w = 3000.0;
        s.site.load_w = 150.0 + 700.0;
        s.site.unmetered_w = 3000.0 - 850.0;
        s.devices = vec![
            row("roof", "pv", 3000.0),
            row("house-7", "load", 700.0),
            row("clinic-meter", "load", 150.0),
        ];
        s
    }

    #[test]
    fn the_public_view_keeps_the_totals_and_drops_the_households_rows() {
        let full = snapshot();
        let public = site().public_view(&full);
        let ids: Vec<&str> = public.devices.iter().map(|d| &*d.id).collect();
        assert_eq!(ids, ["roof", "clinic-meter"]);
        // The household's 700 W still count in the site's consumption.
        assert_eq!(public.site.load_w, 850.0);
        assert_eq!(public.site.unmetered_w, 2150.0);
        assert_eq!(
            public,
            LiveSnapshot {
                devices: public.devices.clone(),
                ..full
            },
            "nothing but the device rows differs"
        );
    }

    #[tokio::test]
    async fn the_feed_makes_one_public_view_per_snapshot_and_ends_with_its_source() {
        let (tx, rx) = watch::channel(Arc::new(snapshot()));
        let (mut public, feed) = public_feed(rx, Arc::new(site()));
        assert_eq!(public.borrow().devices.len(), 2, "the first view is ready");
        let feed = tokio::spawn(feed);

        let mut next = snapshot();
        next.site.pv_w = 2500.0;
        next.devices.push(row("house-3", "load", 420.0));
        tx.send_replace(Arc::new(next));
        public.changed().await.unwrap_or_else(|e| panic!("{e}"));
        let view = public.borrow_and_update().clone();
        assert_eq!(view.site.pv_w, 2500.0);
        assert!(
            view.devices.iter().all(|d| !d.id.starts_with("house-")),
            "{:?}",
            view.devices
        );

        drop(tx);
        feed.await.unwrap_or_else(|e| panic!("{e}"));
        assert!(public.changed().await.is_err(), "the feed's sender is gone");
    }
}
