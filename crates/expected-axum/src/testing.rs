//! Test helpers: log a user in without going through a password form, like
//! Laravel's `actingAs`.
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use expected_axum::{AuthUser, ExpectedLayer, testing::login_as};
//! use expected_axum::expected_core::{Config, Expected, Username};
//! use expected_store_memory::MemoryStore;
//! use tower::ServiceExt as _;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let layer = ExpectedLayer::new(Expected::new(MemoryStore::new(), Config::default()));
//! let login = login_as(layer.engine(), &Username::new("alice")?, true).await?;
//! let app: Router = Router::new()
//!     .route("/me", get(|AuthUser(user): AuthUser| async move { user.username.to_string() }))
//!     .layer(layer);
//! let request = http::Request::get("/me").header("cookie", login.cookie_header()).body(Body::empty())?;
//! let response = app.oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! # Ok(()) }
//! ```

pub use expected_core::testing::{TestLogin, login_as};
