//! Extractors: [`Auth`], [`Session`] and [`AuthUser`].

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use expected_core::exchange::SessionError;
use expected_core::store::Deleted;
use expected_core::{
    Device, DynStore, EngineError, Exchange, Serial, StoreError, TheftReport, Username, Via,
};
use http::StatusCode;
use http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The rejection when a handler extracts [`Auth`] or [`Session`] on a route
/// the [`ExpectedLayer`](crate::ExpectedLayer) does not wrap: a programming
/// error, answered 500.
#[derive(Debug, Clone, Copy)]
pub struct MissingLayer;

impl IntoResponse for MissingLayer {
    fn into_response(self) -> Response {
        tracing::error!("expected-axum extractor used on a route without ExpectedLayer");
        (StatusCode::INTERNAL_SERVER_ERROR, "ExpectedLayer is not installed on this route").into_response()
    }
}

fn exchange(parts: &Parts) -> Result<Arc<Exchange<DynStore>>, MissingLayer> {
    parts.extensions.get::<Arc<Exchange<DynStore>>>().cloned().ok_or(MissingLayer)
}

/// The authentication state of the request, and the actions on it: log in
/// after a password check, log out, list and revoke devices.
///
/// ```
/// use expected_axum::Auth;
///
/// async fn me(auth: Auth) -> String {
///     match auth.username() {
///         Some(user) => format!("hello {user} (via {})", auth.via().map_or("?", |v| v.as_str())),
///         None if auth.theft_detected() => "your sessions were closed: a copied cookie was used".into(),
///         None => "please log in".into(),
///     }
/// }
/// ```
#[derive(Clone)]
pub struct Auth(Arc<Exchange<DynStore>>);

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("username", &self.username()).field("via", &self.via()).finish()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = MissingLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        exchange(parts).map(Self)
    }
}

impl Auth {
    /// Who is logged in, if anyone.
    pub fn username(&self) -> Option<Username> {
        self.0.username()
    }

    /// Whether someone is logged in.
    pub fn is_authenticated(&self) -> bool {
        self.0.username().is_some()
    }

    /// How they got logged in: session, cookie login, grace or password.
    pub fn via(&self) -> Option<Via> {
        self.0.via()
    }

    /// Whether this request detected a replayed remember-me cookie: every
    /// login and session of the user was just revoked. Tell them.
    pub fn theft_detected(&self) -> bool {
        self.0.theft().is_some()
    }

    /// The theft report, when [`theft_detected`](Self::theft_detected).
    pub fn theft(&self) -> Option<TheftReport> {
        self.0.theft()
    }

    /// The serial of this device's login, if it has one.
    pub fn login(&self) -> Option<Serial> {
        self.0.login()
    }

    /// Logs `username` in after your handler checked their password: a new
    /// session, and with `remember` a new login and its auth cookie. The
    /// cookies are set on the response.
    pub async fn register(&self, username: &Username, remember: bool) -> Result<(), EngineError> {
        self.0.register(username, remember).await
    }

    /// Logs this device out and clears both cookies.
    pub async fn logout(&self) -> Result<(), StoreError> {
        self.0.logout().await
    }

    /// The user's devices (logins), this one marked; `None` when logged out.
    pub async fn devices(&self) -> Result<Option<Vec<Device>>, StoreError> {
        self.0.devices().await
    }

    /// Revokes one of the user's logins; its session ends at once. `None`
    /// when logged out, `Some(false)` when the user has no such login.
    pub async fn revoke(&self, serial: &Serial) -> Result<Option<bool>, StoreError> {
        self.0.revoke(serial).await
    }

    /// Ends every login and session of the user, this device's included.
    pub async fn logout_everywhere(&self) -> Result<Option<Deleted>, StoreError> {
        self.0.logout_everywhere().await
    }

    /// The exchange underneath, for what the methods above do not cover.
    pub fn exchange(&self) -> &Arc<Exchange<DynStore>> {
        &self.0
    }
}

/// The request's server-side session data. Changes are saved after the
/// handler, only when something changed.
///
/// ```
/// use expected_axum::Session;
///
/// async fn visit(session: Session) -> String {
///     let visits: u64 = session.get("visits").ok().flatten().unwrap_or(0) + 1;
///     let _ = session.insert("visits", visits);
///     format!("visit number {visits}")
/// }
/// ```
#[derive(Clone)]
pub struct Session(Arc<Exchange<DynStore>>);

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = MissingLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        exchange(parts).map(Self)
    }
}

impl Session {
    /// Reads a value. [`SessionError::NoSession`] when not logged in.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        self.0.get(key)
    }

    /// Writes a value.
    pub fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionError> {
        self.0.insert(key, value)
    }

    /// Removes a value, answering it.
    pub fn remove(&self, key: &str) -> Result<Option<serde_json::Value>, SessionError> {
        self.0.remove(key)
    }
}

/// The logged-in user's name; rejects the request with 401 otherwise.
///
/// Turn it into your own user type with an extractor of yours that loads the
/// user by name (and answers 401 when the account is gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser(pub Username);

/// Why [`AuthUser`] rejected a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unauthenticated {
    /// Not logged in: 401 `{"error":"unauthenticated"}`.
    NotLoggedIn,
    /// This very request detected a replayed cookie and revoked everything:
    /// 401 `{"error":"unexpected_token"}`.
    UnexpectedToken,
    /// The layer is missing: 500.
    MissingLayer,
}

impl IntoResponse for Unauthenticated {
    fn into_response(self) -> Response {
        let error = match self {
            Self::NotLoggedIn => "unauthenticated",
            Self::UnexpectedToken => "unexpected_token",
            Self::MissingLayer => return MissingLayer.into_response(),
        };
        (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({ "error": error }))).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuthUser {
    type Rejection = Unauthenticated;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let exchange = exchange(parts).map_err(|_| Unauthenticated::MissingLayer)?;
        match exchange.username() {
            Some(username) => Ok(Self(username)),
            None if exchange.theft().is_some() => Err(Unauthenticated::UnexpectedToken),
            None => Err(Unauthenticated::NotLoggedIn),
        }
    }
}
