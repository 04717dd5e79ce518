//! The browser end-to-end flow of `expected-demo-kit` against the axum demo:
//! headless Chromium logs in through the form, survives a restart by the
//! remember-me cookie, meets a thief, sees the theft alert, and revokes a
//! device. Screenshots land in `target/browser-screenshots/axum/`.
//!
//! Skipped loudly without `/usr/bin/chromium` and `/usr/bin/chromedriver`
//! (`apt-get install chromium chromium-driver`), unless `CI` is set.

#[path = "../examples/demo/app.rs"]
mod app;

use std::net::SocketAddr;

use expected_axum::ExpectedLayer;
use expected_demo_kit::testing::{Backend, TestServer};

async fn start() -> TestServer {
    let Backend { engine, accounts, store } = Backend::new();
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(listener) => listener,
        Err(error) => panic!("cannot bind a loopback port: {error}"),
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(error) => panic!("no local address: {error}"),
    };
    let service =
        app::app(ExpectedLayer::new(engine), accounts).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await });
    TestServer::new(addr, store)
}

#[test]
fn browser_end_to_end() {
    expected_demo_kit::browser::test("axum", start);
}
