//! The actix-web demo of `expected`: persistent "remember me" logins with a
//! login form, a devices page, theft detection and a JSON API — the same
//! pages, accounts and API as the axum demo, from `expected-demo-kit`.
//!
//! ```text
//! cargo run -p expected-actix --example demo
//! # then open http://127.0.0.1:3000 (alice / alice-secret)
//! EXPECTED_STORE=memory: EXPECTED_GRACE_SECS=5 cargo run -p expected-actix --example demo
//! ```
//!
//! Settings come from `EXPECTED_ADDR` (default `127.0.0.1:3000`),
//! `EXPECTED_STORE` (default `sqlite:expected-demo.db`; also `memory:`,
//! `postgres://…`, `mysql://…`, `redis://…`), `EXPECTED_GRACE_SECS`,
//! `EXPECTED_SESSION_IDLE_SECS`, `EXPECTED_COOKIE_MAX_AGE_SECS` and
//! `EXPECTED_SECURE_COOKIES` (default `1`; browsers keep Secure cookies on
//! http://localhost and http://127.0.0.1, so set `0` only for plain HTTP on
//! another host). A bad value exits with status 2.

#![forbid(unsafe_code)]

mod app;

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use actix_web::HttpServer;
use expected_actix::ExpectedMiddleware;
use expected_actix::expected_core::Expected;
use expected_demo_kit::{Accounts, DemoConfig, open_store};

fn fail(code: u8, message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "error: {message}");
    ExitCode::from(code)
}

#[actix_web::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt().with_max_level(tracing::Level::INFO).with_target(false).init();
    let config = DemoConfig::from_env_or_exit();
    let store = match open_store(&config.store).await {
        Ok(store) => store,
        Err(error) => return fail(if error.is_configuration() { 2 } else { 1 }, &error.to_string()),
    };
    let accounts = match Accounts::seeded() {
        Ok(accounts) => Arc::new(accounts),
        Err(error) => return fail(1, &error.to_string()),
    };
    if let Some(note) = config.secure_cookies_note() {
        tracing::warn!("{note}");
    }
    // One middleware, so one engine, shared by every worker.
    let expected = ExpectedMiddleware::new(Expected::new(store, config.engine.clone()));
    let cleaner = expected.engine().clone().spawn_cleaner();
    let server = HttpServer::new(move || app::app(expected.clone(), accounts.clone()));
    let server = match server.bind(config.addr) {
        Ok(server) => server,
        Err(error) => return fail(1, &format!("cannot listen on {}: {error}", config.addr)),
    };
    tracing::info!(
        store = %expected_demo_kit::redact(&config.store),
        grace = ?config.engine.grace_period(),
        "expected demo (actix) on http://{}/ — log in as alice / alice-secret; Ctrl-C stops",
        config.addr
    );
    // Ctrl-C stops gracefully, letting requests in flight finish (as the
    // axum demo does; actix-web's own SIGINT handling would not wait).
    let server = server.disable_signals().run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        let _ = actix_web::rt::signal::ctrl_c().await;
        handle.stop(true).await;
    });
    let served = server.await;
    cleaner.abort();
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(1, &error.to_string()),
    }
}
