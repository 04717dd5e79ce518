//! Extractors: [`Auth`], [`Session`] and [`AuthUser`].
//!
//! [`Auth`] and [`Session`] are views of the request's
//! [`Exchange`]: every method of the exchange is theirs through `Deref`.

use std::future::{Ready, ready};
use std::ops::Deref;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use expected_core::exchange::Unauthenticated;
use expected_core::{DynStore, Exchange, Username};

/// The rejection when a handler extracts [`Auth`], [`Session`] or
/// [`AuthUser`] on a route the [`ExpectedMiddleware`](crate::ExpectedMiddleware)
/// does not wrap: a programming error, answered 500.
#[derive(Debug, Clone, Copy)]
pub struct MissingMiddleware;

impl std::fmt::Display for MissingMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExpectedMiddleware is not installed on this route")
    }
}

impl ResponseError for MissingMiddleware {
    fn status_code(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn error_response(&self) -> HttpResponse {
        tracing::error!("expected-actix extractor used on a route without ExpectedMiddleware");
        HttpResponse::InternalServerError().content_type("text/plain; charset=utf-8").body(self.to_string())
    }
}

fn exchange(request: &HttpRequest) -> Result<Arc<Exchange<DynStore>>, MissingMiddleware> {
    request.extensions().get::<Arc<Exchange<DynStore>>>().cloned().ok_or(MissingMiddleware)
}

/// Implements the extractor and `Deref` for a view of the exchange.
macro_rules! exchange_view {
    ($view:ident) => {
        impl FromRequest for $view {
            type Error = MissingMiddleware;
            type Future = Ready<Result<Self, Self::Error>>;

            fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
                ready(exchange(request).map(Self))
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
/// use expected_actix::Auth;
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
/// use expected_actix::Session;
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
    /// The middleware is missing: 500.
    MissingMiddleware,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unauthenticated(why) => std::fmt::Display::fmt(why, f),
            Self::MissingMiddleware => std::fmt::Display::fmt(&MissingMiddleware, f),
        }
    }
}

impl ResponseError for Rejection {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::MissingMiddleware => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Unauthenticated(why) => {
                HttpResponse::Unauthorized().content_type("application/json").body(why.json())
            }
            Self::MissingMiddleware => MissingMiddleware.error_response(),
        }
    }
}

impl FromRequest for AuthUser {
    type Error = Rejection;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match exchange(request) {
            Err(MissingMiddleware) => Err(Rejection::MissingMiddleware),
            Ok(exchange) => exchange.require_user().map(Self).map_err(Rejection::Unauthenticated),
        })
    }
}
