//! What the `expected` demos share, whatever the web framework: the axum demo
//! (`cargo run -p expected-axum --example demo`) and the actix one.
//!
//! - [`DemoConfig`]: the settings, from `EXPECTED_*` environment variables;
//! - [`open_store`]: a store from a URL (`memory:`, and the SQL and Redis
//!   schemes once their crates are in);
//! - [`Accounts`]: the three demo users, their passwords hashed with Argon2id;
//! - [`html`]: the server-rendered pages (login, home, devices, the theft
//!   alert);
//! - [`api`]: the JSON contract every demo serves;
//! - with feature `scenarios`: `scenarios!`, the HTTP scenario suite every
//!   demo runs over real HTTP (module `scenarios`), and module `testing`, the
//!   in-process backend it starts them with;
//! - with feature `browser`: module `browser`, the headless Chromium
//!   end-to-end flow;
//! - with feature `startup`: `Demo`, what a demo's `main` does before it
//!   serves.
//!
//! # The contract
//!
//! JSON API (every error body is `{"error": code}` with a code from
//! [`api::error`]):
//!
//! | request | answers |
//! |---|---|
//! | `POST /api/login` `{"username","password","remember":bool}` | 200 [`api::LoginResponse`] and cookies; 401 `invalid_credentials`; 400 `invalid_body` or `body_too_large` (over [`api::MAX_BODY_BYTES`]) |
//! | `GET /api/me` | 200 [`api::Me`] (`via`: `session`, `cookie` or `grace`); 401 `unauthenticated`, or `unexpected_token` on the request that detected a replayed cookie |
//! | `GET /api/logins` | 200 `[`[`api::LoginInfo`]`]`, RFC 3339 times; 401 |
//! | `DELETE /api/logins/{serial}` | 204, that device's session ends at once; 404 `not_found` when the caller has no such login; 401 |
//! | `POST /api/logout` | 204, this device only, both cookies cleared |
//! | `POST /api/logout-everywhere` | 204, every login and session of the user; 401 |
//! | `GET /healthz` | 200 `{"status":"ok"}` (liveness: it does not touch the store) |
//! | any request while the store is down | 503 `store_unavailable`, cookies untouched |
//! | a state-changing request with `Sec-Fetch-Site: cross-site` | 403 `cross_site_request` |
//!
//! HTML pages, at the paths of [`html::paths`]: `GET /` (home, or the login
//! form with the theft alert when this request detected one), `POST /login`
//! (form: `username`, `password`, `remember=on`; 303 to `/`, or 401 with the
//! form again), `GET /devices`, `POST /devices/{serial}/revoke`,
//! `POST /logout`, `POST /logout-everywhere` (each 303 back). Cookies are
//! `session` and `remember_me`, HttpOnly, SameSite=Lax: state changes are
//! POST or DELETE only, since Lax still sends cookies on cross-site
//! top-level GETs.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod accounts;
pub mod api;
mod config;
pub mod html;
#[cfg(feature = "startup")]
mod startup;
mod store;

#[cfg(feature = "browser")]
pub mod browser;
#[cfg(feature = "scenarios")]
pub mod scenarios;
#[cfg(feature = "scenarios")]
pub mod testing;
#[cfg(feature = "browser")]
mod webdriver;

pub use accounts::{Accounts, AccountsError, DEMO_USERS, MAX_PASSWORD_BYTES};
pub use config::{AUTH_COOKIE, DemoConfig, DemoConfigError, SESSION_COOKIE, env};
#[cfg(feature = "startup")]
pub use startup::Demo;
pub use store::{OpenStoreError, open_store, redact};

/// Whether the `CI` environment variable is set to something else than
/// empty, `0` or `false`: suites that would skip for a missing tool fail
/// instead.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "0" && value != "false")
}

#[doc(hidden)]
pub mod __private {
    #[cfg(feature = "scenarios")]
    pub use crate::scenarios::run;
}
