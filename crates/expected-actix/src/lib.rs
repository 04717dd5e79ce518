//! The actix-web adapter of `expected`: persistent "remember me" logins and
//! server-side sessions, as a middleware and extractors.
//!
//! Every decision lives in `expected-core`; this crate moves cookies in and
//! out. Wrap the app in [`ExpectedMiddleware`], then use the extractors:
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
//! use actix_web::{App, HttpResponse, HttpServer, web};
//! use actix_web::http::header::LOCATION;
//! use expected_actix::{Auth, AuthUser, Error, ExpectedMiddleware, FreshLogin, FreshUser, LoginRequired, Session, safe_next};
//! use expected_actix::expected_core::{Config, Expected, Username};
//! use expected_store_memory::MemoryStore;
//!
//! #[derive(serde::Deserialize)]
//! struct LoginForm { username: String, password: String, remember: Option<String>, next: Option<String> }
//!
//! fn see_other(location: &str) -> HttpResponse {
//!     HttpResponse::SeeOther().insert_header((LOCATION, location)).finish()
//! }
//!
//! async fn login(auth: Auth, form: web::Form<LoginForm>) -> Result<HttpResponse, Error> {
//!     // … check form.password first …
//!     let Ok(user) = Username::new(&form.username) else { return Ok(see_other("/login")) };
//!     // The visitor's session data (the cart below) moves into the new session.
//!     auth.register(&user, form.remember.is_some()).await?;
//!     // Only ever back to a page of this site.
//!     Ok(see_other(safe_next(form.next.as_deref().unwrap_or("/"))))
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
//! async fn confirm_password(auth: Auth) -> Result<HttpResponse, Error> {
//!     auth.confirm_password().await?; // fresh again
//!     Ok(see_other("/account/password"))
//! }
//!
//! async fn serve() -> std::io::Result<()> {
//!     let engine = Expected::new(MemoryStore::new(), Config::default());
//!     // One middleware, and so one engine, shared by every worker.
//!     let expected = ExpectedMiddleware::new(engine).fresh_for(std::time::Duration::from_secs(5 * 60));
//!     HttpServer::new(move || {
//!         App::new()
//!             .wrap(expected.clone())
//!             .route("/login", web::post().to(login))
//!             .route("/cart", web::post().to(add_to_cart))
//!             .route("/api/me", web::get().to(me))
//!             .route("/api/account", web::delete().to(delete_account))
//!             .route("/account", web::get().to(account))
//!             .route("/account/password", web::get().to(change_password_page))
//!             .route("/confirm-password", web::post().to(confirm_password))
//!     })
//!     .bind(("127.0.0.1", 8080))?
//!     .run()
//!     .await
//! }
//! ```
//!
//! # Behaviour
//!
//! - **Lazy.** The middleware only parses the two cookies. Nothing reaches
//!   the store until an extractor or a handler asks who is logged in or
//!   touches session data; a route that never asks costs no store call and
//!   sets no cookie.
//! - **Caching.** Every response that sets a cookie, and every response to a
//!   request whose authentication ran, carries `Cache-Control: no-store` and
//!   `Vary: Cookie`.
//! - **Store outages** fail closed: when authenticating meets one, the
//!   request is answered `503 {"error":"store_unavailable"}` with no cookie
//!   change, by the extractor that met it, by the handler's `?`, and by the
//!   middleware whatever the handler returned. With
//!   [`OnStoreError::Anonymous`] the handler's answer stands and the guards
//!   treat the request as a visitor's.
//! - **Client IP** for the devices list: the peer address, or a trusted proxy
//!   header with [`ExpectedMiddleware::trusted_client_ip_header`].
//! - **Bad cookies** make the request a visitor's (an unparseable cookie is
//!   cleared; an oversized `Cookie` header is ignored); never a 500.
//! - **`next`** on the guards' redirects is only ever a same-site path
//!   ([`safe_next`]); use the same check on the `next` a login form sends
//!   back.
//! - **Any body type**: the middleware answers
//!   `ServiceResponse<EitherBody<B>>`. Should a middleware wrapped inside this
//!   one fail with an error, the cookies still reach the client on the error's
//!   response.
//!
//! # CSRF
//!
//! `SameSite=Lax` cookies (the default) keep other sites from posting as the
//! user, but not a sibling subdomain, which is the same site. Refuse
//! state-changing requests that do not come from your origin with
//! [`check_origin_values`] (in a middleware of yours, answering 403), and
//! check the session's synchronizer token ([`csrf`]) on the routes that
//! change state: forms carry it in a hidden field, `fetch` in the
//! `X-CSRF-Token` header ([`csrf::HEADER`]); a missing or wrong one is a
//! [`CsrfError`], which [`Error`] answers 403
//! `{"error":"invalid_csrf_token"}`.
//!
//! ```
//! use actix_web::{HttpRequest, HttpResponse, web};
//! use expected_actix::{Error, Session, csrf};
//!
//! async fn page(session: Session) -> Result<HttpResponse, Error> {
//!     let token = session.csrf_token().await?; // made on first use
//!     let field = csrf::FORM_FIELD;
//!     Ok(HttpResponse::Ok().content_type("text/html").body(format!(r#"<form method="post" action="/note">
//!         <input type="hidden" name="{field}" value="{token}"><button>Save</button></form>"#)))
//! }
//!
//! #[derive(serde::Deserialize)]
//! struct Note { csrf_token: Option<String> }
//!
//! async fn save(session: Session, request: HttpRequest, note: web::Form<Note>) -> Result<&'static str, Error> {
//!     // A script's `fetch` sends the header, the form the field.
//!     let header = request.headers().get(csrf::HEADER).and_then(|value| value.to_str().ok());
//!     session.verify_csrf(header.or(note.csrf_token.as_deref())).await?;
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
//! use std::future::Future;
//! use std::pin::Pin;
//!
//! use actix_web::{FromRequest, HttpRequest, dev::Payload};
//! use expected_actix::{AuthUser, Error};
//!
//! struct User { name: String, admin: bool }
//!
//! impl FromRequest for User {
//!     type Error = Error;
//!     type Future = Pin<Box<dyn Future<Output = Result<Self, Error>>>>;
//!
//!     fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
//!         let user = AuthUser::from_request(request, payload);
//!         Box::pin(async move {
//!             let AuthUser(user) = user.await?;
//!             // look the user up in your database here
//!             Ok(User { name: user.username.to_string(), admin: false })
//!         })
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
mod middleware;
pub mod testing;

pub use error::Error;
pub use expected_core;
pub use expected_core::csrf::{self, CsrfError};
pub use expected_core::guard::safe_next;
pub use expected_core::http::{CrossSite, OnStoreError, check_origin_values};
pub use expected_core::{AuthError, AuthMethod, CurrentUser, SessionError, Via};
pub use extract::{Auth, AuthUser, FreshLogin, FreshUser, LoginRequired, PageRejection, Session};
pub use middleware::{ExpectedMiddleware, ExpectedService};

/// This crate's README, compiled as doctests so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
