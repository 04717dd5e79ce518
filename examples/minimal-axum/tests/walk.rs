//! Builds the example, starts it on an ephemeral port and walks through it
//! as a browser would: login, the protected route, a browser restart (the
//! remember-me cookie logs back in), logout.

#[test]
fn login_remember_me_and_logout_work_over_http() {
    expected_demo_kit::minimal::walk(env!("CARGO_BIN_EXE_expected-minimal-axum"));
}
