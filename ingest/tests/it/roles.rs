//! A SunSpec device whose map holds an inverter model and a meter model (an
//! inverter with its grid meter behind it) is read from the model its role calls
//! for, or from the one its configuration names.

use std::time::Duration;

use ingest::modbus::ModbusSource;
use sensors::model::{Metric, Role};
use sensors::sim::RegisterImage;
use sensors::sim::sunspec::{build_map, write_model};

use crate::support::*;

/// The inverter produces 990 W (model 103); the meter behind it sees the site
/// import 2,210 W (model 203, positive on import).
fn inverter_with_meter() -> RegisterImage {
    let mut image = RegisterImage::new();
    let h = build_map(&mut image, 40000, &[(1, 66), (103, 50), (203, 105)]);
    write_model(&mut image, &h[1], &[("W", 990.0)]).expect("103");
    write_model(&mut image, &h[2], &[("W", 2210.0)]).expect("203");
    image
}

async fn power_read_as(role: Role, model: Option<u16>) -> f64 {
    let sim = serve(vec![(1, inverter_with_meter())]).await;
    let mut dev = device(
        "dev",
        sim.addr,
        1,
        ModbusSource::SunSpec { model },
        Duration::from_millis(50),
    );
    dev.role = role;
    dev.limits = ingest::plausible::Limits::polled(role);
    let running = run(vec![dev]);
    let seen = running.readings.clone();
    let power = || {
        seen.lock().ok().and_then(|r| {
            r.iter()
                .rev()
                .find(|r| r.metric == Metric::PowerW)
                .map(|r| r.value)
        })
    };
    wait_for(Duration::from_secs(5), "a power reading", || {
        power().is_some()
    })
    .await;
    let value = power().unwrap_or(f64::NAN);
    running.stop().await;
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grid_meter_behind_an_inverter_is_read_from_its_meter_model() {
    // Site convention: grid import positive, PV production positive.
    assert_eq!(power_read_as(Role::Grid, None).await, 2210.0);
    assert_eq!(power_read_as(Role::Pv, None).await, 990.0);
    // Forced: the inverter's model for a grid device, its output counted as export.
    assert_eq!(power_read_as(Role::Grid, Some(103)).await, -990.0);
    // The meter model for a PV device: what the meter says, as production.
    assert_eq!(power_read_as(Role::Pv, Some(203)).await, -2210.0);
}
