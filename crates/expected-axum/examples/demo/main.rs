//! The axum demo of `expected`: persistent "remember me" logins with a login
//! form, session data for visitors too (the theme), a devices page with
//! "sign out other devices", a security page that asks for the password
//! again, theft detection and a JSON API.
//!
//! ```text
//! cargo run -p expected-axum --example demo
//! # then open http://127.0.0.1:3000 (alice / alice-secret)
//! EXPECTED_STORE=memory: EXPECTED_GRACE_SECS=5 cargo run -p expected-axum --example demo
//! ```
//!
//! Settings come from `EXPECTED_ADDR` (default `127.0.0.1:3000`),
//! `EXPECTED_STORE` (default `sqlite:expected-demo.db`; also `memory:`,
//! `postgres://…`, `mysql://…`, `redis://…`,
//! `redis-cluster://HOST:PORT,HOST:PORT,…`), `EXPECTED_TOKEN_KEYS`
//! (`id:base64url-secret,…`, the current key first: rotations that survive a
//! failover or a restored backup; required with a cluster), `EXPECTED_GRACE_SECS`,
//! `EXPECTED_GRACE_BINDING` (`client`, the default: grace only for the
//! rotating browser on its network; `user-agent`; `off`),
//! `EXPECTED_SESSION_IDLE_SECS`, `EXPECTED_SESSION_ABSOLUTE_SECS`,
//! `EXPECTED_COOKIE_MAX_AGE_SECS`, `EXPECTED_LOGIN_LIFETIME_SECS`,
//! `EXPECTED_FRESH_SECS` (default 600: how long a typed password opens the
//! security page) and `EXPECTED_SECURE_COOKIES` (default `1`; browsers keep
//! Secure cookies on
//! http://localhost and http://127.0.0.1, so set `0` only for plain HTTP on
//! another host). A bad value exits with status 2.

#![forbid(unsafe_code)]

mod app;

use std::net::SocketAddr;
use std::process::ExitCode;

use expected_axum::ExpectedLayer;
use expected_demo_kit::Demo;

#[tokio::main]
async fn main() -> ExitCode {
    let demo = match Demo::from_env(ExpectedLayer::new, ExpectedLayer::engine).await {
        Ok(demo) => demo,
        Err(code) => return code,
    };
    let listener = match tokio::net::TcpListener::bind(demo.config.addr).await {
        Ok(listener) => listener,
        Err(error) => return demo.cannot_listen(error),
    };
    demo.announce("axum");
    let app = app::app(demo.expected.clone(), demo.state());
    let served = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    demo.stopped(served)
}
