//! Extractors: [`Auth`], [`Session`] and [`AuthUser`].
//!
//! [`Auth`] and [`Session`] are views of the request's
//! [`Exchange`]: every method of the exchange is theirs through `Deref`.

use std::ops::Deref;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use expected_core::exchange::Unauthenticated;
use expected_core::{DynStore, Exchange, Username};
use http::header::CONTENT_TYPE;
use http::request::Parts;
use http::{HeaderValue, StatusCode};

/// The rejection when a handler extracts [`Auth`], [`Session`] or
/// [`AuthUser`] on a route the [`ExpectedLayer`](crate::ExpectedLayer) does
/// not wrap: a programming error, answered 500.
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

/// Implements the extractor and `Deref` for a view of the exchange.
macro_rules! exchange_view {
    ($view:ident) => {
        impl<S: Send + Sync> FromRequestParts<S> for $view {
            type Rejection = MissingLayer;

            async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
                exchange(parts).map(Self)
            }
        }

        impl Deref for $view {
            type Target = Exchange<DynStore>;

            fn deref(&self) -> &Exchange<DynStore> {
                &self.0
            }
        }

        impl std::fmt::Debug for $view {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($view))
                    .field("username", &self.username())
                    .field("via", &self.via())
                    .finish_non_exhaustive()
            }
        }
    };
}

/// The authentication state of the request, and the actions on it (all
/// [`Exchange`] methods): `username`, `via`, `theft_detected`, `register`
/// after a password check, `logout`, `devices`, `revoke`,
/// `logout_everywhere`.
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
exchange_view!(Auth);

/// The request's server-side session data ([`Exchange::get`],
/// [`Exchange::insert`], [`Exchange::remove`]). Changes are saved after the
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
exchange_view!(Session);

/// The logged-in user's name; rejects the request with 401 otherwise
/// (`{"error":"unauthenticated"}`, or `{"error":"unexpected_token"}` on the
/// request that detected a replayed cookie).
///
/// Turn it into your own user type with an extractor of yours that loads the
/// user by name (and answers 401 when the account is gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser(pub Username);

/// Why [`AuthUser`] rejected a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// 401 with the JSON of [`Unauthenticated::json`].
    Unauthenticated(Unauthenticated),
    /// The layer is missing: 500.
    MissingLayer,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self {
            Self::Unauthenticated(why) => {
                let json = HeaderValue::from_static("application/json");
                (StatusCode::UNAUTHORIZED, [(CONTENT_TYPE, json)], why.json()).into_response()
            }
            Self::MissingLayer => MissingLayer.into_response(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuthUser {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let exchange = exchange(parts).map_err(|_| Rejection::MissingLayer)?;
        exchange.require_user().map(Self).map_err(Rejection::Unauthenticated)
    }
}
