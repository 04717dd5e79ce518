//! The actix-web demo of `expected`: persistent "remember me" logins with a
//! login form, session data for visitors too (the theme), a devices page
//! with "sign out other devices", a security page that asks for the password
//! again, theft detection and a JSON API — the same pages, accounts and API
//! as the axum demo, from `expected-demo-kit`.
//!
//! ```text
//! cargo run -p expected-actix --example demo
//! # then open http://127.0.0.1:3000 (alice / alice-secret)
//! EXPECTED_STORE=memory: EXPECTED_GRACE_SECS=5 cargo run -p expected-actix --example demo
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

use std::process::ExitCode;

use actix_web::HttpServer;
use expected_actix::ExpectedMiddleware;
use expected_demo_kit::Demo;

#[actix_web::main]
async fn main() -> ExitCode {
    let demo = match Demo::from_env(ExpectedMiddleware::new, ExpectedMiddleware::engine).await {
        Ok(demo) => demo,
        Err(code) => return code,
    };
    // One middleware, so one engine, shared by every worker.
    let (expected, state) = (demo.expected.clone(), demo.state());
    let server = HttpServer::new(move || app::app(expected.clone(), state.clone()));
    let server = match server.bind(demo.config.addr) {
        Ok(server) => server,
        Err(error) => return demo.cannot_listen(error),
    };
    demo.announce("actix");
    // Ctrl-C stops gracefully, letting requests in flight finish (as the
    // axum demo does; actix-web's own SIGINT handling would not wait).
    let server = server.disable_signals().run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        let _ = actix_web::rt::signal::ctrl_c().await;
        handle.stop(true).await;
    });
    demo.stopped(server.await)
}
