//! The shared HTTP scenario suite of `expected-demo-kit`, run against the
//! axum demo (`examples/demo`) served in-process on an ephemeral port, over a
//! memory store that can be taken down, with a 1 s grace window.

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

expected_demo_kit::scenarios!(start());
