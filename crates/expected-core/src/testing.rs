//! Test helpers for applications: log a user in without going through a
//! password form, like Laravel's `actingAs`. The adapters re-export them
//! with framework examples (`expected_axum::testing`, `expected_actix::testing`).
//!
//! ```
//! use expected_core::{Config, Expected, Username, testing::login_as};
//! use expected_store_memory::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Expected::new(MemoryStore::new(), Config::default());
//! let login = login_as(&engine, &Username::new("alice")?, true).await?;
//! assert!(login.cookie_header().starts_with("session=1."));
//! assert!(login.serial().is_some(), "remembered: a device in the devices list");
//! # Ok(()) }
//! ```

use crate::cookies::CookieKind;
use crate::engine::{EngineError, Expected, Presented};
use crate::secret::{Serial, Username};
use crate::store::Store;

/// A login made by [`login_as`]: the cookies a browser would now hold.
#[derive(Clone)]
pub struct TestLogin {
    session_name: String,
    session: String,
    auth_name: String,
    auth: Option<String>,
    serial: Option<Serial>,
}

impl std::fmt::Debug for TestLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The values are bearer credentials, even in tests.
        f.debug_struct("TestLogin")
            .field("remembered", &self.auth.is_some())
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

impl TestLogin {
    /// The `Cookie` request header value carrying the session cookie and,
    /// when "remember me" was chosen, the auth cookie.
    pub fn cookie_header(&self) -> String {
        let mut header = format!("{}={}", self.session_name, self.session);
        if let Some(auth) = &self.auth {
            header.push_str(&format!("; {}={auth}", self.auth_name));
        }
        header
    }

    /// The session cookie's value.
    pub fn session_cookie(&self) -> &str {
        &self.session
    }

    /// The auth ("remember me") cookie's value, when "remember me" was chosen.
    pub fn auth_cookie(&self) -> Option<&str> {
        self.auth.as_deref()
    }

    /// The login's serial (its device in the devices list), when "remember
    /// me" was chosen.
    pub fn serial(&self) -> Option<Serial> {
        self.serial
    }
}

/// Logs `username` in through `engine` directly, as a password login would
/// (method `password`, so the session is fresh), with a login (device) when
/// `remember`: no password, no request, any store. Use the engine the app
/// uses (the adapter's layer or middleware hands it out), then send
/// [`TestLogin::cookie_header`] as the `Cookie` header.
pub async fn login_as<S: Store>(
    engine: &Expected<S>,
    username: &Username,
    remember: bool,
) -> Result<TestLogin, EngineError> {
    let registration = engine.register(username, remember, &Presented::default()).await?;
    let value = |kind| {
        registration
            .cookies
            .iter()
            .find(|cookie| cookie.kind() == kind)
            .map(|cookie| cookie.value().to_owned())
    };
    let config = engine.config();
    Ok(TestLogin {
        session_name: config.session_cookie_name().to_owned(),
        session: value(CookieKind::Session).unwrap_or_default(),
        auth_name: config.auth_cookie_name().to_owned(),
        auth: value(CookieKind::Auth),
        serial: registration.serial,
    })
}
