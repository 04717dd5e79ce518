//! The browser end-to-end flow of `expected-demo-kit` against the axum demo:
//! headless Chromium picks a theme as a visitor and logs in through the form
//! keeping it, survives a restart by the remember-me cookie, confirms its
//! password for the security page, meets a thief, sees the theft alert,
//! revokes a device and signs out the other devices. Screenshots land in
//! `target/browser-screenshots/axum/`.
//!
//! Skipped loudly without `/usr/bin/chromium` and `/usr/bin/chromedriver`
//! (`apt-get install chromium chromium-driver`), unless `CI` is set.

mod support;

use expected_demo_kit::testing::Backend;

#[test]
fn browser_end_to_end() {
    expected_demo_kit::browser::test("axum", || support::start(Backend::new()));
}
