//! Serving the demo app in-process for the kit's suites.

#[path = "../../examples/demo/app.rs"]
mod app;

use std::net::SocketAddr;

use axum::http::HeaderName;
use expected_axum::ExpectedLayer;
use expected_demo_kit::testing::{Backend, CLIENT_IP_HEADER, TestServer};

/// Serves the demo on an ephemeral loopback port over `backend` (a fresh
/// [`Backend`], in the configuration the scenario needs).
pub(crate) async fn start(backend: Backend) -> TestServer {
    let Backend { engine, state, store } = backend;
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(listener) => listener,
        Err(error) => panic!("cannot bind a loopback port: {error}"),
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(error) => panic!("no local address: {error}"),
    };
    // Scenarios play clients on other networks through this header.
    let layer =
        ExpectedLayer::new(engine).trusted_client_ip_header(HeaderName::from_static(CLIENT_IP_HEADER));
    let service = app::app(layer, state).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await });
    TestServer::new(addr, store)
}
