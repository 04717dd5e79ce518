//! Test helpers: log a user in without going through a password form, like
//! Laravel's `actingAs`.
//!
//! ```
//! use actix_web::{App, test, web};
//! use expected_actix::{AuthUser, ExpectedMiddleware, testing::login_as};
//! use expected_actix::expected_core::{Config, Expected, Username};
//! use expected_store_memory::MemoryStore;
//!
//! # #[actix_web::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let middleware = ExpectedMiddleware::new(Expected::new(MemoryStore::new(), Config::default()));
//! let login = login_as(middleware.engine(), &Username::new("alice")?, true).await?;
//! let app = test::init_service(App::new().wrap(middleware).route(
//!     "/me",
//!     web::get().to(|AuthUser(user): AuthUser| async move { user.username.to_string() }),
//! ))
//! .await;
//! let request = test::TestRequest::get().uri("/me").insert_header(("cookie", login.cookie_header()));
//! let response = test::call_service(&app, request.to_request()).await;
//! assert_eq!(response.status(), 200);
//! # Ok(()) }
//! ```

pub use expected_core::testing::{TestLogin, login_as};
