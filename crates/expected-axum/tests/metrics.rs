//! `GET /metrics` of the axum demo, scraped after a theft and a store outage:
//! the kit's `metrics_count_a_theft_and_an_outage`, alone in this binary so
//! that no other server counts into the process's one Prometheus recorder.

mod support;

use expected_demo_kit::scenarios::{cases, run};
use expected_demo_kit::testing::Backend;

#[test]
fn metrics_count_a_theft_and_an_outage() {
    run(
        "metrics_count_a_theft_and_an_outage",
        || support::start(Backend::new()),
        cases::metrics_count_a_theft_and_an_outage,
    );
}
