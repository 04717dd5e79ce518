//! The benchmark's twin of its tower-sessions peer (`peers/tower-sessions`):
//! the same two routes and answers, on expected, so that
//! `cargo xtask bench http --app twin --peer …` measures what the library
//! costs beside tower-sessions, without what the demo adds on top of it.
//!
//! The demo (`examples/demo`) is what an application looks like; every
//! request to its API also goes through a cross-site check, a CSRF check and
//! a Prometheus recorder, which the peer has no counterpart for. The twin
//! has the peer's shape, route for route:
//!
//! - `POST /api/login`, the demo's JSON body (`username`, `password`,
//!   `remember`): **the password is not checked**, as the peer does not
//!   check it (logins are not what is measured, only the session hits after
//!   them; never serve this). A login with remember-me, then 200.
//! - `GET /api/me`: the demo's `Me` (username, via, method, RFC 3339
//!   `authenticated_at`, fresh) through [`AuthUser`], or 401.
//! - `GET /healthz`: 200.
//!
//! It reads the demo's settings (`EXPECTED_ADDR`, `EXPECTED_STORE`, the
//! engine's `EXPECTED_*`), opens the store as the demo does, and runs the
//! engine's cleaner, which a real application runs too (and whose first
//! pass the benchmark waits for). No metrics recorder is installed: the
//! engine's counters then cost a check each.
//!
//! ```text
//! cargo build --release -p expected-axum --example bench_twin
//! EXPECTED_STORE=memory: target/release/examples/bench_twin
//! ```

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use expected_axum::expected_core::time::OffsetDateTime;
use expected_axum::expected_core::{Expected, Username};
use expected_axum::{Auth, AuthUser, Error, ExpectedLayer};
use expected_demo_kit::api::{LoginRequest, Me};
use expected_demo_kit::{DemoConfig, open_store};

/// How recently a typed password counts as fresh in `Me`, as the peer's.
const FRESH: Duration = Duration::from_secs(5 * 60);

/// The demo's login body; its password is not checked (see the module's
/// docs).
async fn login(auth: Auth, Json(body): Json<LoginRequest>) -> Result<StatusCode, Error> {
    let Ok(username) = Username::new(body.username) else {
        return Ok(StatusCode::BAD_REQUEST);
    };
    auth.register(&username, body.remember).await?;
    Ok(StatusCode::OK)
}

/// The demo's `Me`, its freshness read off the request's user as the peer
/// reads it off its session (the demo asks the engine, `Auth::is_fresh`).
async fn me(AuthUser(user): AuthUser) -> Json<Me> {
    let fresh = user.is_fresh_at(FRESH, OffsetDateTime::now_utc());
    Json(Me::new(&user, fresh))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt().with_max_level(tracing::Level::INFO).with_target(false).init();
    let config = DemoConfig::from_env_or_exit();
    let store = match open_store(&config.store).await {
        Ok(store) => store,
        Err(error) => {
            tracing::error!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let layer = ExpectedLayer::new(Expected::new(store, config.engine.clone()));
    let cleaner = layer.engine().clone().spawn_cleaner();
    let app = Router::new()
        .route("/api/login", post(login))
        .route("/api/me", get(me))
        .route("/healthz", get(|| async { "ok" }))
        .layer(layer);
    let listener = match tokio::net::TcpListener::bind(config.addr).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!("cannot listen on {}: {error}", config.addr);
            return ExitCode::FAILURE;
        }
    };
    tracing::info!("bench twin on http://{}", config.addr);
    let served = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    cleaner.abort();
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}
