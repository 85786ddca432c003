//! What goes on the wire: each poll sends as many requests as the device's plan
//! has blocks, counted by the simulated device itself, and the per-cycle count the
//! health reports is that number.

use std::sync::atomic::Ordering;
use std::time::Duration;

use sensors::sim::RegisterImage;
use sensors::sim::sdm630::MeterState;
use sensors::sim::sunspec::{build_map, write_model};

use crate::support::*;

const EVERY: Duration = Duration::from_millis(50);

fn meter() -> MeterState {
    MeterState {
        power_w: 500.0,
        import_wh: 1e6,
        export_wh: 1e5,
        voltage_v: 230.0,
        frequency_hz: 50.0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_poll_sends_the_planned_requests_and_no_more() {
    let mut sdm630 = RegisterImage::new();
    sensors::sim::sdm630::write_meter(&mut sdm630, &meter());
    let mut sdm120 = RegisterImage::new();
    sensors::sim::sdm120::write_meter(&mut sdm120, &meter());
    let mut em24 = RegisterImage::new();
    sensors::sim::em24::write_meter(&mut em24, &meter());
    let mut sunspec_image = RegisterImage::new();
    let h = build_map(&mut sunspec_image, 40000, &[(1, 66), (103, 50), (203, 105)]);
    write_model(&mut sunspec_image, &h[1], &[("W", 1200.0), ("WH", 5e6)]).expect("103");
    write_model(&mut sunspec_image, &h[2], &[("W", -300.0)]).expect("203");
    // (profile, image, requests per poll: 1 for each, by hand from the data files)
    for (name, image, per_poll) in [
        ("sdm630", sdm630, 1u64),
        ("sdm120", sdm120, 1),
        ("em24", em24, 1),
        ("sunspec", sunspec_image, 1),
    ] {
        let sim = serve(vec![(1, image)]).await;
        let running = run(vec![device(name, sim.addr, 1, profile(name), EVERY)]);
        let m = running.metrics.clone();
        wait_for(Duration::from_secs(5), "first poll", || {
            m.health()[name].last_success.is_some()
        })
        .await;
        let (r0, p0) = (sim.control.requests(), m.health()[name].polls);
        wait_for(Duration::from_secs(5), "ten more polls", || {
            m.health()[name].polls >= p0 + 10
        })
        .await;
        let (r1, p1) = (sim.control.requests(), m.health()[name].polls);
        // A poll may be in flight at either reading: allow one request either way.
        let expected = (p1 - p0) * per_poll;
        assert!(
            r1 - r0 >= expected.saturating_sub(per_poll) && r1 - r0 <= expected + per_poll,
            "{name}: {} requests for {} polls",
            r1 - r0,
            p1 - p0
        );
        let h = m.health()[name].clone();
        assert_eq!(h.last_cycle_transactions, Some(per_poll as u32), "{name}");
        assert_eq!(h.planned_transactions, Some(per_poll as u32), "{name}");
        assert_eq!(
            sim.control.connections.load(Ordering::SeqCst),
            1,
            "{name}: one connection"
        );
        running.stop().await;
    }
}
