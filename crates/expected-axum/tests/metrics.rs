//! `GET /metrics` of the axum demo, scraped after a theft and a store outage:
//! the kit's `metrics_count_a_theft_and_an_outage`, alone in this binary so
//! that no other server counts into the process's one Prometheus recorder.

mod support;

expected_demo_kit::metrics_scenario!(support::start);
