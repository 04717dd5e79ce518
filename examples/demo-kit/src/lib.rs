//! What the `expected` demos share, whatever the web framework: the axum demo
//! (`cargo run -p expected-axum --example demo`) and the actix one.
//!
//! - [`DemoConfig`]: the settings, from `EXPECTED_*` environment variables;
//! - [`DemoState`]: what the handlers share (accounts, freshness window);
//! - [`open_store`]: a store from a URL (`memory:`, and the SQL and Redis
//!   schemes once their crates are in);
//! - [`Accounts`]: the three demo users, their passwords hashed with Argon2id,
//!   and [`Passwords`], the guard every check goes through (throttling per
//!   IP and per username, [`LIMITS`]; Argon2 on a bounded pool of threads);
//! - [`csrf`]: the demos' CSRF rule (the origin check, and the session's
//!   token on a logged-in user's state changes);
//! - [`html`]: the server-rendered pages (login, home, devices,
//!   confirm-password, security, the theft alert);
//! - [`api`]: the JSON contract every demo serves;
//! - [`Metrics`]: the Prometheus recorder behind `GET /metrics`;
//! - with feature `scenarios`: `scenarios!`, the HTTP scenario suite every
//!   demo runs over real HTTP (module `scenarios`), and module `testing`, the
//!   in-process backend it starts them with;
//! - with feature `browser`: module `browser`, the headless Chromium
//!   end-to-end flow;
//! - with feature `startup`: `Demo`, what a demo's `main` does before it
//!   serves;
//! - with feature `minimal`: module `minimal`, the walk the minimal
//!   examples' tests take through their binaries.
//!
//! # The contract
//!
//! JSON API (every error body is `{"error": code}` with a code from
//! [`api::error`]):
//!
//! | request | answers |
//! |---|---|
//! | `POST /api/login` `{"username","password","remember":bool}` | 200 [`api::LoginResponse`] and cookies, the visitor's session data moved to the new session (a new id); 401 `invalid_credentials`; 400 `invalid_body` or `body_too_large` (over [`api::MAX_BODY_BYTES`]); 429 `too_many_attempts` with `Retry-After` past [`LIMITS`] (5 failures per username, 20 per IP, in 15 minutes), the right password included |
//! | `GET /api/me` | 200 [`api::Me`] (`via`: `session`, `cookie` or `grace`; `method`: `password` or `remembered`; `authenticated_at`, RFC 3339; `fresh`: a password typed less than `EXPECTED_FRESH_SECS` ago); 401 `unauthenticated`, or `unexpected_token` on the request that detected a replayed cookie |
//! | `GET /api/session` | 200 [`api::SessionView`] `{"data":{…}}`, for anyone; no cookie for a request without a session |
//! | `PUT /api/session/{key}`, any JSON value | 204, creating the session if there is none; 400 `invalid_key` (keys: 1–64 of `A-Za-z0-9_-`), `body_too_large` (over [`api::MAX_SESSION_VALUE_BYTES`]), `invalid_body`; 413 `session_too_large` past the library's data limit |
//! | `DELETE /api/session/{key}` | 204; 400 `invalid_key` |
//! | `POST /api/confirm-password` `{"password"}` | 204, the session `password` and fresh again; 401 `invalid_credentials`; 401 `unauthenticated`; 429 `too_many_attempts` as for the login |
//! | `GET /api/csrf` | 200 [`api::CsrfView`] `{"token"}`: the session's CSRF token, for the `X-CSRF-Token` header; 401 `unauthenticated` |
//! | `POST /api/sensitive` | 204 when fresh; 403 `reauthentication_required` when logged in but not fresh; 401 `unauthenticated` |
//! | `GET /api/logins` | 200 `[`[`api::LoginInfo`]`]`, RFC 3339 times; 401 |
//! | `DELETE /api/logins/{serial}` | 204, that device's session ends at once; 404 `not_found` when the caller has no such login; 401 |
//! | `POST /api/logout` | 204, this device only, both cookies cleared |
//! | `POST /api/logout-others` | 200 [`api::LogoutOthersResponse`] `{"logins":N,"sessions":M}`, what ended; this device stays logged in; 401 |
//! | `POST /api/logout-everywhere` | 204, every login and session of the user; 401 |
//! | `GET /healthz` | 200 `{"status":"ok"}` (liveness: it does not touch the store) |
//! | `GET /metrics` | 200, the engine's metrics in the Prometheus text format ([`metrics::CONTENT_TYPE`]; names in `docs/metrics.md`); it does not touch the store |
//! | any request while the store is down | 503 `store_unavailable`, cookies untouched |
//! | a state-changing request (not GET, HEAD, OPTIONS, TRACE) without `Sec-Fetch-Site: same-origin` or `none`, or, without that header, an `Origin` of this host | 403 `cross_site_request` |
//! | a logged-in user's state-changing request without their session's CSRF token (`X-CSRF-Token`, or the pages' `csrf_token` field) | 403 `invalid_csrf_token` (the pages: a 403 "form expired" page), after authenticating (a cookie login's cookies still go out) |
//!
//! Every response that depends on who is logged in carries `Cache-Control:
//! no-store` and `Vary: Cookie` (the adapters add them whenever a request
//! was authenticated).
//!
//! HTML pages, at the paths of [`html::paths`]: `GET /` (home: who, how and
//! when they typed their password, whether that is fresh; or the login form
//! with the theft alert when this request detected one), `GET /login`
//! (`?next=`), `POST /login` (form: `username`, `password`, `remember=on`,
//! `next`; 303 to `next`, or 401 with the form again), `POST /theme` (form:
//! `theme`, `next`: kept in the session, a visitor's too), `GET /devices`,
//! `POST /devices/{serial}/revoke`, `GET /confirm-password` (`?next=`) and
//! `POST /confirm-password` (form: `password`, `next`; behind the
//! `LoginRequired` guard), `GET /security` (behind the `FreshLogin` guard:
//! 303 to the login or confirm-password page with `?next=`), `POST /logout`,
//! `POST /logout-others` (303 to the devices page saying what ended),
//! `POST /logout-everywhere`. Cookies are `session` and `remember_me`,
//! HttpOnly, SameSite=Lax: state changes are POST, PUT or DELETE only, since
//! Lax still sends cookies on cross-site top-level GETs. A logged-in user's
//! pages carry the session's CSRF token in every form (a hidden `csrf_token`
//! field); the login and confirm-password forms answer 429 (a page, with
//! `Retry-After`) when throttled.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

mod accounts;
pub mod api;
mod config;
pub mod csrf;
pub mod html;
pub mod metrics;
#[cfg(feature = "startup")]
mod startup;
mod store;

#[cfg(feature = "browser")]
pub mod browser;
#[cfg(feature = "minimal")]
pub mod minimal;
#[cfg(feature = "scenarios")]
pub mod scenarios;
#[cfg(feature = "scenarios")]
pub mod testing;
#[cfg(feature = "browser")]
mod webdriver;

pub use accounts::{
    Accounts, AccountsError, DEMO_USERS, LIMITS, Limits, MAX_PASSWORD_BYTES, Passwords, Refused, Throttle,
};
pub use config::{AUTH_COOKIE, DemoConfig, DemoConfigError, SESSION_COOKIE, env};
pub use metrics::Metrics;
#[cfg(feature = "startup")]
pub use startup::Demo;
pub use store::{OpenStoreError, cluster_nodes, is_cluster_url, open_store, redact};

/// What a demo's handlers share, whatever the framework: the accounts to
/// check passwords against, the guard in front of them and the freshness
/// window (how long a typed password opens the security page and `POST
/// /api/sensitive`).
#[derive(Debug, Clone)]
pub struct DemoState {
    /// The seeded demo users.
    pub accounts: Arc<Accounts>,
    /// The same accounts behind throttling ([`LIMITS`]) and a bounded pool
    /// of hashing threads: every password check goes through it.
    pub passwords: Arc<Passwords>,
    /// `EXPECTED_FRESH_SECS`: also the adapter's `fresh_for`.
    pub fresh_for: Duration,
    /// The Prometheus recorder `GET /metrics` renders.
    pub metrics: Metrics,
}

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
