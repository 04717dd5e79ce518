//! The conformance suite on the single Redis at `EXPECTED_TEST_REDIS_URL`
//! (default `redis://127.0.0.1:6379`), each case under its own key prefix.

mod support;

expected_conformance::tests!(support::harness::SingleHarness);
expected_conformance::rollback_tests!(support::harness::SingleHarness);
