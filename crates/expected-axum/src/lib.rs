//! The axum adapter of `expected`: persistent "remember me" logins and
//! server-side sessions, as a tower [`Layer`](tower_layer::Layer) and
//! extractors.
//!
//! Every decision lives in `expected-core`; this crate moves cookies in and
//! out. Add [`ExpectedLayer`] to the router, then use the extractors:
//!
//! - [`Auth`]: who is logged in and how (session, cookie login, grace), the
//!   theft flag, and the actions: [`register`](expected_core::Exchange::register) after a password check
//!   (with the "remember me" choice), [`logout`](expected_core::Exchange::logout), [`devices`](expected_core::Exchange::devices),
//!   [`revoke`](expected_core::Exchange::revoke), [`logout_everywhere`](expected_core::Exchange::logout_everywhere);
//! - [`Session`]: typed session data, saved only when changed;
//! - [`AuthUser`]: the username, or a 401 rejection.
//!
//! ```
//! use axum::{Router, routing::{get, post}, Json};
//! use expected_axum::{Auth, AuthUser, ExpectedLayer};
//! use expected_axum::expected_core::{Config, Expected, Username};
//! use expected_store_memory::MemoryStore;
//!
//! async fn login(auth: Auth) -> &'static str {
//!     // … check the password first …
//!     let alice = Username::new("alice").expect("valid");
//!     match auth.register(&alice, true).await {
//!         Ok(()) => "welcome",
//!         Err(_) => "try again later",
//!     }
//! }
//!
//! async fn me(AuthUser(user): AuthUser) -> String {
//!     format!("hello {user}")
//! }
//!
//! let engine = Expected::new(MemoryStore::new(), Config::default());
//! let app: Router = Router::new()
//!     .route("/login", post(login))
//!     .route("/me", get(me))
//!     .layer(ExpectedLayer::new(engine));
//! ```
//!
//! # Behaviour
//!
//! - The client IP kept for the devices list is the peer address (serve with
//!   `into_make_service_with_connect_info::<SocketAddr>()`), or a trusted
//!   proxy header with [`ExpectedLayer::trusted_client_ip_header`].
//! - A store outage answers `503 {"error":"store_unavailable"}` with cookies
//!   untouched, or runs the handler anonymously
//!   ([`OnStoreError::Anonymous`]).
//! - Malformed or oversized cookies make the request anonymous (the auth
//!   cookie is cleared when it cannot be parsed); they never cause a 500.
//! - Responses that set a cookie carry `Cache-Control: no-store`.
//!
//! # Your user type
//!
//! `expected` knows usernames, not users. Load yours with an extractor of your
//! own built on [`AuthUser`]:
//!
//! ```
//! use axum::{extract::FromRequestParts, http::{request::Parts, StatusCode}};
//! use expected_axum::AuthUser;
//!
//! struct User { name: String, admin: bool }
//!
//! impl<S: Send + Sync> FromRequestParts<S> for User {
//!     type Rejection = StatusCode;
//!     async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, StatusCode> {
//!         let AuthUser(name) = AuthUser::from_request_parts(parts, state)
//!             .await
//!             .map_err(|_| StatusCode::UNAUTHORIZED)?;
//!         // look the user up in your database here
//!         Ok(User { name: name.to_string(), admin: false })
//!     }
//! }
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod extract;
mod layer;

pub use expected_core;
pub use expected_core::exchange::{OnStoreError, Unauthenticated};
pub use extract::{Auth, AuthUser, MissingLayer, Rejection, Session};
pub use layer::{ExpectedLayer, ExpectedService};
