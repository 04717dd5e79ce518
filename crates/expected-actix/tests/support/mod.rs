//! Serving the demo app in-process for the kit's suites.

#[path = "../../examples/demo/app.rs"]
mod app;

use std::net::TcpListener;

use actix_web::HttpServer;
use actix_web::http::header::HeaderName;
use expected_actix::ExpectedMiddleware;
use expected_demo_kit::testing::{Backend, CLIENT_IP_HEADER, TestServer};

/// Serves the demo on an ephemeral loopback port over `backend` (a fresh
/// [`Backend`], in the configuration the scenario needs).
///
/// The suites run on a tokio runtime of their own, while actix-web serves on
/// its own single-threaded system: the server gets a thread with one worker.
/// The port is bound before this returns, so requests queue until it is up.
pub(crate) async fn start(backend: Backend) -> TestServer {
    let Backend { engine, state, store } = backend;
    let listener = match TcpListener::bind("127.0.0.1:0") {
        Ok(listener) => listener,
        Err(error) => panic!("cannot bind a loopback port: {error}"),
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(error) => panic!("no local address: {error}"),
    };
    // Scenarios play clients on other networks through this header.
    let expected =
        ExpectedMiddleware::new(engine).trusted_client_ip_header(HeaderName::from_static(CLIENT_IP_HEADER));
    let server = HttpServer::new(move || app::app(expected.clone(), state.clone()))
        .workers(1)
        .disable_signals()
        .listen(listener);
    let server = match server {
        Ok(server) => server.run(),
        Err(error) => panic!("cannot serve on {addr}: {error}"),
    };
    std::thread::spawn(move || actix_web::rt::System::new().block_on(server));
    TestServer::new(addr, store)
}
