//! Persistent logins done right: Barry Jaspan's *Improved Persistent Login
//! Cookie Best Practice*, hardened.
//!
//! A **login** is one device that ticked "remember me": a username, a random
//! [`Serial`] that lasts as long as the login, and a random [`Token`] replaced
//! on every use. The browser holds them in the auth cookie; the store holds
//! only the token's SHA-256 digest. When the short-lived server-side
//! [`SessionRecord`] is gone, the auth cookie logs the user back in and the token is
//! rotated. A known serial with an unknown token means an old cookie was
//! replayed: every login and session of the user is revoked
//! ([`Outcome::Theft`]).
//!
//! Past the original scheme:
//!
//! - tokens and session ids are stored only as SHA-256 digests, compared in
//!   constant time;
//! - rotation is one atomic compare-and-swap in the store;
//! - a **grace window** (30 s by default) lets concurrent requests and lost
//!   responses converge on the winner's cookies instead of being mistaken for
//!   theft, for the client that rotated only ([`GraceBinding`]): another
//!   browser presenting the replaced token is a thief;
//! - a store failure fails closed and changes nothing;
//! - with [token keys](keys) configured, each successor token is derived
//!   from its predecessor with a server-held key, so a store that lost its
//!   last rotations (a failover to a replica that missed them, a restored
//!   backup) heals instead of raising theft; tokens behind the store are
//!   still theft (`docs/protocol.md` §13);
//! - stores prove themselves against the published `expected-conformance`
//!   suite.
//!
//! # Layers
//!
//! - [`protocol`]: the decisions, as pure functions of (presented cookie,
//!   stored record, time, config). No I/O, no clock, no random source.
//! - [`Expected`]: the engine, which applies them through a [`Store`] with an
//!   injected [`Clock`] and [`TokenSource`].
//!
//! Adapters (`expected-axum`, `expected-actix`) move cookies in and out; the
//! core alone serves any other transport, a WebSocket or a line protocol.
//!
//! Secrets come from the operating system, one draw each ([`OsTokens`]: safe
//! across `fork()`), and [`Token`] and [`SessionId`] are wiped when dropped.
//! For state-changing routes, [`csrf`] keeps a synchronizer token in the
//! session and `http::check_origin` (feature `http`) refuses requests the
//! browser does not say come from this origin.
//!
//! # Example
//!
//! ```
//! use expected_core::{Config, Expected, Outcome, Presented, Username};
//! # use expected_core::store::*;
//! # use expected_core::{Login, SessionRecord, Serial, SessionDigest};
//! # use time::OffsetDateTime;
//! # async fn run(store: impl Store) -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Expected::new(store, Config::builder().secure(false).build()?);
//! let alice = Username::new("alice")?;
//!
//! // After checking alice's password, with "remember me" ticked:
//! let registration = engine.register(&alice, true, &Presented::default()).await?;
//! let auth_cookie = registration.cookies.iter().find(|c| c.kind() == expected_core::CookieKind::Auth);
//! let auth_value = auth_cookie.map(|c| c.value().to_owned());
//!
//! // Later, her session is gone but the auth cookie logs her back in:
//! let request = Presented { auth: auth_value.as_deref().into(), ..Presented::default() };
//! let result = engine.authenticate(&request).await;
//! match &result.outcome {
//!     Outcome::CookieLogin(auth) => assert_eq!(auth.username(), &alice),
//!     other => panic!("unexpected {other:?}"),
//! }
//! // `result.cookies` carries the rotated auth cookie and the new session cookie.
//! assert_eq!(result.cookies.len(), 2);
//! # Ok(()) }
//! ```
//!
//! # Cost
//!
//! `cargo bench -p expected-core --bench protocol` measures the pure path of a cookie login
//! (parse the cookie, judge it, draw fresh secrets, plan the rotation, render
//! both `Set-Cookie` headers). On a 3.3 GHz AMD EPYC vCPU with SHA-NI:
//!
//! | step | ns |
//! |---|---:|
//! | whole cookie-login path | 1 226 |
//! | of which its 6 SHA-256 digests | 280 |
//! | one SHA-256 of 32 bytes | 39 |
//! | parse the auth cookie | 125 |
//! | judge it (current token) | 60 |
//! | judge it (previous token, grace) | 364 |
//! | render both `Set-Cookie` headers | 459 |
//!
//! Five of the six digests are unavoidable (compare, store the new token's and
//! session id's digests, seal the successor); the store's round trip, not the
//! protocol, sets the cost of a cookie login. Details in `docs/benchmarks.md`.
//!
//! The [`telemetry`] costs nothing measurable until something listens: with
//! the `metrics` feature and a Prometheus recorder installed, about 0.6 µs a
//! session hit and 1.2 µs a cookie login over the memory store (`benches/engine.rs`,
//! `docs/metrics.md`).
//!
//! # Features
//!
//! - `http`: read the cookies from an `http::HeaderMap`, render
//!   `http::HeaderValue`s (the [`http`] module).
//! - `tokio`: [`Expected::spawn_cleaner`], a background cleaning task.
//! - `admin`: the operator commands the stores' command-line tools share
//!   (the [`admin`] module, on clap).
//! - `metrics`: counters of every authentication outcome, registration,
//!   ended login and cleaning pass, and a histogram of store call latency,
//!   on the `metrics` facade (the [`telemetry`] module lists them). Without
//!   it, no `metrics` crate is compiled in; the `tracing` spans are there
//!   either way.

#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod clock;
pub mod config;
pub mod cookies;
pub mod credential;
pub mod csrf;
mod engine;
pub mod exchange;
pub mod keys;
pub mod protocol;
pub mod record;
pub mod secret;
pub mod store;
pub mod telemetry;
pub mod testing;

#[cfg(feature = "admin")]
pub mod admin;
#[cfg(feature = "tokio")]
mod cleaner;
#[cfg(feature = "http")]
pub mod guard;
#[cfg(feature = "http")]
pub mod http;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    Config, ConfigBuilder, ConfigError, DEFAULT_MAX_SESSIONS_PER_USER, GraceBinding, UnknownGraceBinding,
};
pub use cookies::{CookieKind, CookieValues, SetCookie};
pub use credential::{AuthCookie, CookieError, SessionCookie};
pub use csrf::CsrfError;
pub use engine::{
    Authenticated, Authentication, Cleaned, Client, Device, EndCause, EngineError, Expected, GraceRefusal,
    Hooks, LoginsEnded, NoHooks, Outcome, Presented, Registration, RollbackHealed, SignIn, TheftReport,
};
pub use exchange::{
    AuthError, AuthHandle, Concluded, CurrentUser, Exchange, SessionError, SessionHandle, Unauthenticated,
    Via,
};
pub use keys::{KeyError, KeyId, TokenKey, TokenKeys};
pub use protocol::TheftCause;
pub use record::{AuthMethod, ClientMeta, Login, PreviousToken, SessionData, SessionRecord, SessionUser};
pub use secret::{
    ChaChaTokens, OsTokens, SealedSuccessor, Serial, SessionDigest, SessionId, Token, TokenDigest,
    TokenSource, UserTag, Username, UsernameError,
};
pub use store::{Store, StoreError, StoreErrorKind};

/// A type-erased store, for adapters that keep one engine type whatever the
/// store: `Expected<DynStore>`.
pub type DynStore = std::sync::Arc<dyn Store>;

/// This crate's README, compiled and run as doctests so that it stays true
/// (the workspace's README is compiled by `expected-guides`).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The `cookie` crate, for [`cookie::SameSite`] and friends.
pub use cookie;
/// The `time` crate, whose `OffsetDateTime` every record uses.
pub use time;
