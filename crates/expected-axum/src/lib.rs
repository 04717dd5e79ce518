//! The axum adapter of `expected`: persistent "remember me" logins and
//! server-side sessions, as a tower [`Layer`](tower_layer::Layer) and
//! extractors.
//!
//! Every decision lives in `expected-core`; this crate moves cookies in and
//! out. Add [`ExpectedLayer`] to the router, then use the extractors:
//!
//! - [`Auth`]: who is logged in and how, and the actions
//!   ([`register`](expected_core::AuthHandle::register) after a password check,
//!   [`confirm_password`](expected_core::AuthHandle::confirm_password),
//!   [`logout`](expected_core::AuthHandle::logout),
//!   [`devices`](expected_core::AuthHandle::devices), …);
//! - [`Session`]: typed session data, for visitors and users alike, saved
//!   only when changed;
//! - the API guards [`AuthUser`] (401) and [`FreshUser`] (403 unless the
//!   password was entered recently), and the page guards [`LoginRequired`]
//!   and [`FreshLogin`] (redirects to the login or confirm-password page);
//! - [`Error`], for handlers to pass any of these errors on with `?`.
//!
//! ```
//! use axum::{Form, Json, Router, routing::{get, post}};
//! use axum::response::Redirect;
//! use expected_axum::{Auth, AuthUser, Error, ExpectedLayer, FreshLogin, FreshUser, LoginRequired, Session, safe_next};
//! use expected_axum::expected_core::{Config, Expected, Username};
//! use expected_store_memory::MemoryStore;
//!
//! #[derive(serde::Deserialize)]
//! struct LoginForm { username: String, password: String, remember: Option<String>, next: Option<String> }
//!
//! async fn login(auth: Auth, Form(form): Form<LoginForm>) -> Result<Redirect, Error> {
//!     // … check form.password first …
//!     let Ok(user) = Username::new(&form.username) else { return Ok(Redirect::to("/login")) };
//!     // The visitor's session data (the cart below) moves into the new session.
//!     auth.register(&user, form.remember.is_some()).await?;
//!     // Only ever back to a page of this site.
//!     Ok(Redirect::to(safe_next(form.next.as_deref().unwrap_or("/"))))
//! }
//!
//! // Anyone, logged in or not, has session data; a visitor's session (and its
//! // cookie) is created on the first write.
//! async fn add_to_cart(session: Session) -> Result<String, Error> {
//!     let items: u32 = session.get("cart").await?.unwrap_or(0) + 1;
//!     session.insert("cart", items).await?;
//!     Ok(format!("{items} items in your cart"))
//! }
//!
//! // API: 401 `{"error":"unauthenticated"}` unless logged in.
//! async fn me(AuthUser(user): AuthUser) -> String {
//!     format!("hello {} (logged in via {})", user.username, user.via.as_str())
//! }
//!
//! // API: also 403 `{"error":"reauthentication_required"}` unless the password
//! // was entered in the last 10 minutes (not after a remember-me cookie login).
//! async fn delete_account(FreshUser(user): FreshUser) -> String {
//!     format!("bye {}", user.username)
//! }
//!
//! // Pages: a 303 to `/login?next=%2Faccount` unless logged in…
//! async fn account(LoginRequired(user): LoginRequired) -> String {
//!     format!("{}'s account", user.username)
//! }
//!
//! // …and to `/confirm-password?next=%2Faccount%2Fpassword` unless fresh.
//! async fn change_password_page(FreshLogin(user): FreshLogin) -> String {
//!     format!("new password for {}", user.username)
//! }
//!
//! // The confirm-password form: check the password again, then
//! async fn confirm_password(auth: Auth) -> Result<Redirect, Error> {
//!     auth.confirm_password().await?; // fresh again
//!     Ok(Redirect::to("/account/password"))
//! }
//!
//! let engine = Expected::new(MemoryStore::new(), Config::default());
//! let app: Router = Router::new()
//!     .route("/login", post(login))
//!     .route("/cart", post(add_to_cart))
//!     .route("/api/me", get(me))
//!     .route("/api/account", axum::routing::delete(delete_account))
//!     .route("/account", get(account))
//!     .route("/account/password", get(change_password_page))
//!     .route("/confirm-password", post(confirm_password))
//!     .layer(ExpectedLayer::new(engine).fresh_for(std::time::Duration::from_secs(5 * 60)));
//! ```
//!
//! # Behaviour
//!
//! - **Lazy.** The layer only parses the two cookies. Nothing reaches the
//!   store until an extractor or a handler asks who is logged in or touches
//!   session data; a route that never asks costs no store call and sets no
//!   cookie.
//! - **Caching.** Every response that sets a cookie, and every response to a
//!   request whose authentication ran, carries `Cache-Control: no-store` and
//!   `Vary: Cookie`.
//! - **Store outages** fail closed: when authenticating meets one, the
//!   request is answered `503 {"error":"store_unavailable"}` with no cookie
//!   change, by the extractor that met it, by the handler's `?`, and by the
//!   layer whatever the handler returned. With [`OnStoreError::Anonymous`]
//!   the handler's answer stands and the guards treat the request as a
//!   visitor's.
//! - **Client IP** for the devices list: the peer address (serve with
//!   `into_make_service_with_connect_info::<SocketAddr>()`), or a trusted
//!   proxy header with [`ExpectedLayer::trusted_client_ip_header`].
//! - **Bad cookies** make the request a visitor's (an unparseable cookie is
//!   cleared; an oversized `Cookie` header is ignored); never a 500.
//! - **`next`** on the guards' redirects is only ever a same-site path
//!   ([`safe_next`]); use the same check on the `next` a login form sends
//!   back.
//!
//! - **Speed.** Put a router's middleware on in one `layer` call,
//!   [`ExpectedLayer`] among them (`.layer(tower::ServiceBuilder::new()
//!   .layer(a).layer(expected).layer(b))`, outermost first), not one `layer`
//!   call each: every `Router::layer` boxes each route once more, and each
//!   boxed level is cloned again on every request by the levels above it.
//!   Prefer a tower layer to `axum::middleware::from_fn` on hot routes: each
//!   call of a `from_fn` clones and boxes what is below it. On the demo's
//!   session hit the two together were 12 000 of 61 000 instructions
//!   (`docs/benchmarks.md`).
//!
//! # CSRF
//!
//! `SameSite=Lax` cookies (the default) keep other sites from posting as the
//! user, but not a sibling subdomain, which is the same site. Refuse
//! state-changing requests that do not come from your origin with
//! [`check_origin`] (in a middleware of yours, answering 403), and check the
//! session's synchronizer token ([`csrf`]) on the routes that change state:
//! forms carry it in a hidden field, `fetch` in the `X-CSRF-Token` header
//! ([`csrf_header`]); a missing or wrong one is a [`CsrfError`], which
//! [`Error`] answers 403 `{"error":"invalid_csrf_token"}`.
//!
//! ```
//! use axum::{Form, http::HeaderMap, response::Html};
//! use expected_axum::{Error, Session, csrf, csrf_header};
//!
//! async fn page(session: Session) -> Result<Html<String>, Error> {
//!     let token = session.csrf_token().await?; // made on first use
//!     let field = csrf::FORM_FIELD;
//!     Ok(Html(format!(r#"<form method="post" action="/note">
//!         <input type="hidden" name="{field}" value="{token}"><button>Save</button></form>"#)))
//! }
//!
//! #[derive(serde::Deserialize)]
//! struct Note { csrf_token: Option<String> }
//!
//! async fn save(session: Session, headers: HeaderMap, Form(note): Form<Note>) -> Result<&'static str, Error> {
//!     // A script's `fetch` sends the header, the form the field.
//!     session.verify_csrf(csrf_header(&headers).or(note.csrf_token.as_deref())).await?;
//!     Ok("saved")
//! }
//! ```
//!
//! # Your user type
//!
//! `expected` knows usernames, not users. Load yours with an extractor of your
//! own built on [`AuthUser`]:
//!
//! ```
//! use axum::{extract::FromRequestParts, http::request::Parts};
//! use expected_axum::{AuthUser, Error};
//!
//! struct User { name: String, admin: bool }
//!
//! impl<S: Send + Sync> FromRequestParts<S> for User {
//!     type Rejection = Error;
//!     async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
//!         let AuthUser(user) = AuthUser::from_request_parts(parts, state).await?;
//!         // look the user up in your database here
//!         Ok(User { name: user.username.to_string(), admin: false })
//!     }
//! }
//! ```
//!
//! # Testing
//!
//! [`testing::login_as`] logs a user in through the engine, with no password
//! form: send its [`cookie_header`](testing::TestLogin::cookie_header).

#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod extract;
mod layer;
pub mod testing;

pub use error::Error;
pub use expected_core;
pub use expected_core::csrf::{self, CsrfError};
pub use expected_core::guard::safe_next;
pub use expected_core::http::{CrossSite, OnStoreError, check_origin, csrf_header};
pub use expected_core::{AuthError, AuthMethod, CurrentUser, SessionError, Via};
pub use extract::{Auth, AuthUser, FreshLogin, FreshUser, LoginRequired, PageRejection, Session};
pub use layer::{ExpectedLayer, ExpectedService};

/// This crate's README, compiled as doctests so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
