//! The actix-web adapter of `expected`: persistent "remember me" logins and
//! server-side sessions, as a middleware and extractors.
//!
//! Every decision lives in `expected-core`; this crate moves cookies in and
//! out. Wrap the app in [`ExpectedMiddleware`], then use the extractors:
//!
//! - [`Auth`]: who is logged in and how (session, cookie login, grace), the
//!   theft flag, and the actions: [`register`](expected_core::Exchange::register) after a password check
//!   (with the "remember me" choice), [`logout`](expected_core::Exchange::logout), [`devices`](expected_core::Exchange::devices),
//!   [`revoke`](expected_core::Exchange::revoke), [`logout_everywhere`](expected_core::Exchange::logout_everywhere);
//! - [`Session`]: typed session data, saved only when changed;
//! - [`AuthUser`]: the username, or a 401 rejection.
//!
//! ```
//! use actix_web::{App, HttpServer, web};
//! use expected_actix::{Auth, AuthUser, ExpectedMiddleware};
//! use expected_actix::expected_core::{Config, Expected, Username};
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
//! async fn serve() -> std::io::Result<()> {
//!     let engine = Expected::new(MemoryStore::new(), Config::default());
//!     // One middleware, and so one engine, shared by every worker.
//!     let expected = ExpectedMiddleware::new(engine);
//!     HttpServer::new(move || {
//!         App::new()
//!             .wrap(expected.clone())
//!             .route("/login", web::post().to(login))
//!             .route("/me", web::get().to(me))
//!     })
//!     .bind(("127.0.0.1", 8080))?
//!     .run()
//!     .await
//! }
//! ```
//!
//! # Behaviour
//!
//! - The client IP kept for the devices list is the peer address, or a
//!   trusted proxy header with
//!   [`ExpectedMiddleware::trusted_client_ip_header`].
//! - A store outage answers `503 {"error":"store_unavailable"}` with cookies
//!   untouched, or runs the handler anonymously
//!   ([`OnStoreError::Anonymous`]).
//! - Malformed or oversized cookies make the request anonymous (the auth
//!   cookie is cleared when it cannot be parsed); they never cause a 500.
//! - Responses that set a cookie carry `Cache-Control: no-store`.
//! - The response may have any body type: the middleware answers
//!   `ServiceResponse<EitherBody<B>>`. Should a middleware wrapped inside this
//!   one fail with an error, the cookies still reach the client on the error's
//!   response.
//!
//! # Your user type
//!
//! `expected` knows usernames, not users. Load yours with an extractor of your
//! own built on [`AuthUser`]:
//!
//! ```
//! use std::future::Future;
//! use std::pin::Pin;
//!
//! use actix_web::{FromRequest, HttpRequest, dev::Payload, error::ErrorUnauthorized};
//! use expected_actix::AuthUser;
//!
//! struct User { name: String, admin: bool }
//!
//! impl FromRequest for User {
//!     type Error = actix_web::Error;
//!     type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;
//!
//!     fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
//!         let user = AuthUser::from_request(request, payload);
//!         Box::pin(async move {
//!             // Keep AuthUser's 401 JSON answers, or map them to yours.
//!             let AuthUser(name) = user.await?;
//!             // look the user up in your database here, and answer 401 when
//!             // the account is gone
//!             if name.as_str().is_empty() {
//!                 return Err(ErrorUnauthorized("no such account"));
//!             }
//!             Ok(User { name: name.to_string(), admin: false })
//!         })
//!     }
//! }
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod extract;
mod middleware;

pub use expected_core;
pub use expected_core::exchange::{OnStoreError, Unauthenticated};
pub use extract::{Auth, AuthUser, MissingMiddleware, Rejection, Session};
pub use middleware::{ExpectedMiddleware, ExpectedService};
