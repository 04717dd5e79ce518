//! The browser end-to-end flow of `expected-demo-kit` against the axum demo:
//! headless Chromium logs in through the form, survives a restart by the
//! remember-me cookie, meets a thief, sees the theft alert, and revokes a
//! device. Screenshots land in `target/browser-screenshots/axum/`.
//!
//! Skipped loudly without `/usr/bin/chromium` and `/usr/bin/chromedriver`
//! (`apt-get install chromium chromium-driver`), unless `CI` is set.

mod support;

#[test]
fn browser_end_to_end() {
    expected_demo_kit::browser::test("axum", support::start);
}
