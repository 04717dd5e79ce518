//! The shared HTTP scenario suite of `expected-demo-kit`, run against the
//! axum demo (`examples/demo`) served in-process on an ephemeral port, over a
//! memory store that can be taken down, with a 1 s grace window and a 5 s
//! freshness window.

mod support;

expected_demo_kit::scenarios!(support::start);
