//! The extractors: the handles [`Auth`] and [`Session`], the API guards
//! [`AuthUser`] and [`FreshUser`], the page guards [`LoginRequired`] and
//! [`FreshLogin`].

use std::ops::Deref;

use axum::extract::{FromRequestParts, OriginalUri};
use axum::response::{IntoResponse, Response};
use expected_core::{AuthHandle, CurrentUser, DynStore, SessionHandle};
use http::header::LOCATION;
use http::request::Parts;
use http::{HeaderValue, StatusCode};

use crate::Error;
use crate::layer::RequestState;

/// The layer's state for this request, borrowed: a guard asks through it
/// without cloning its handles.
fn state(parts: &Parts) -> Result<&RequestState, Error> {
    parts.extensions.get::<RequestState>().ok_or(Error::MissingLayer)
}

/// The path and query the browser asked for, before any `nest` stripped it.
fn asked_for(parts: &Parts) -> &str {
    let uri = parts.extensions.get::<OriginalUri>().map_or(&parts.uri, |original| &original.0);
    uri.path_and_query().map_or("/", |path| path.as_str())
}

/// `Deref` to the handle, and the extractor that makes it (no I/O).
macro_rules! handle {
    ($name:ident, $handle:ident) => {
        impl Deref for $name {
            type Target = $handle<DynStore>;

            fn deref(&self) -> &$handle<DynStore> {
                &self.0
            }
        }

        impl<S: Send + Sync> FromRequestParts<S> for $name {
            type Rejection = Error;

            async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
                Ok(Self($handle::new(state(parts)?.exchange.clone())))
            }
        }
    };
}

/// Who is logged in and the actions on it, all of
/// [`AuthHandle`]'s methods: [`user`](AuthHandle::user),
/// [`require_user`](AuthHandle::require_user), [`is_fresh`](AuthHandle::is_fresh),
/// [`theft`](AuthHandle::theft), [`register`](AuthHandle::register) after a
/// password check, [`confirm_password`](AuthHandle::confirm_password),
/// [`logout`](AuthHandle::logout), [`devices`](AuthHandle::devices),
/// [`revoke`](AuthHandle::revoke), … Extracting it costs nothing: the store is
/// asked on the first question.
///
/// ```
/// use expected_axum::{Auth, Error};
///
/// async fn hello(auth: Auth) -> Result<String, Error> {
///     Ok(match auth.user().await? {
///         Some(user) => format!("hello {} (via {})", user.username, user.via.as_str()),
///         None if auth.theft().await?.is_some() => "your sessions were closed: a copied cookie was used".into(),
///         None => "hello, visitor".into(),
///     })
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Auth(AuthHandle<DynStore>);

handle!(Auth, AuthHandle);

/// The request's session data, a visitor's or a logged-in user's, through
/// [`SessionHandle`]'s methods ([`get`](SessionHandle::get),
/// [`insert`](SessionHandle::insert), [`remove`](SessionHandle::remove), …).
/// Changes are saved after the handler, only when something changed; a
/// visitor's first write creates their session (and its cookie), and a
/// password login carries the data into the new session.
///
/// The data does **not** survive a cookie login: when the session times out
/// (idle, or absolutely) and the remember-me cookie logs the user back in,
/// the new session starts empty, because the cookie proves the device, not
/// that the old session's data belongs to whoever holds it now. Keep what
/// must last longer in your own tables. [`SessionHandle`] has the whole table
/// of what survives what.
///
/// ```
/// use expected_axum::{Error, Session};
///
/// async fn visit(session: Session) -> Result<String, Error> {
///     let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
///     session.insert("visits", visits).await?;
///     Ok(format!("visit number {visits}"))
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Session(SessionHandle<DynStore>);

handle!(Session, SessionHandle);

/// API guard: the logged-in user, or the request is refused with an
/// [`Error`]: 401 `{"error":"unauthenticated"}`, 401
/// `{"error":"unexpected_token"}` on the request that detected a replayed
/// cookie, 503 `{"error":"store_unavailable"}` on a store outage (401 under
/// [`OnStoreError::Anonymous`](crate::OnStoreError::Anonymous)).
///
/// Turn it into your own user type with an extractor of yours that loads the
/// user by name (and refuses the request when the account is gone).
///
/// ```
/// use expected_axum::AuthUser;
///
/// // 401 {"error":"unauthenticated"} for visitors.
/// async fn me(AuthUser(user): AuthUser) -> String {
///     format!("{} (via {}, by {})", user.username, user.via.as_str(), user.method.as_str())
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser(pub CurrentUser);

impl<S: Send + Sync> FromRequestParts<S> for AuthUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        let state = state(parts)?;
        Ok(Self(state.options.guards.ask_user(&state.exchange).await?))
    }
}

/// API guard: the logged-in user when they entered their password on this
/// session recently ([`ExpectedLayer::fresh_for`](crate::ExpectedLayer::fresh_for));
/// refused like [`AuthUser`], and with 403
/// `{"error":"reauthentication_required"}` when logged in but not freshly
/// (after a cookie login, say). Guard password changes and deletions with it.
///
/// ```
/// use expected_axum::{Auth, Error, FreshUser};
///
/// // 403 {"error":"reauthentication_required"} unless the password was typed
/// // recently on this session (never right after a remember-me login).
/// async fn delete_account(FreshUser(user): FreshUser, auth: Auth) -> Result<String, Error> {
///     // … delete user.username's data …
///     auth.logout_everywhere().await?;
///     Ok(format!("goodbye {}", user.username))
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreshUser(pub CurrentUser);

impl<S: Send + Sync> FromRequestParts<S> for FreshUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        let state = state(parts)?;
        Ok(Self(state.options.guards.ask_fresh(&state.exchange).await?))
    }
}

/// Why a page guard ([`LoginRequired`], [`FreshLogin`]) refused a request.
#[derive(Debug)]
#[non_exhaustive]
pub enum PageRejection {
    /// `303 See Other` to this location: the login page or the
    /// confirm-password page, with the page asked for as `next`.
    Redirect(String),
    /// Anything else: a store outage (503), a missing layer (500).
    Error(Error),
}

impl IntoResponse for PageRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Redirect(location) => {
                // The layer checked the pages, and `next` is percent-encoded:
                // always a valid header value.
                let location = HeaderValue::from_str(&location).unwrap_or(HeaderValue::from_static("/"));
                (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response()
            }
            Self::Error(error) => error.into_response(),
        }
    }
}

/// A page guard's answer, a refusal turned into its redirect.
async fn page_guard(parts: &Parts, fresh: bool) -> Result<CurrentUser, PageRejection> {
    let state = state(parts).map_err(PageRejection::Error)?;
    let error = match state.ask(fresh).await {
        Ok(user) => return Ok(user),
        Err(error) => error,
    };
    match state.options.guards.refusal(error, asked_for(parts)) {
        Ok(location) => Err(PageRejection::Redirect(location)),
        Err(error) => Err(PageRejection::Error(error.into())),
    }
}

/// Page guard: the logged-in user, or `303 See Other` to the login page
/// ([`ExpectedLayer::login_page`](crate::ExpectedLayer::login_page)) with
/// the page asked for as `next` (`/login?next=%2Faccount%3Ftab%3D2`, only
/// ever a same-site path: see [`safe_next`](crate::safe_next)); 503 on a
/// store outage.
///
/// ```
/// use expected_axum::LoginRequired;
///
/// // A page: visitors are sent to /login?next=%2Faccount and come back after.
/// async fn account(LoginRequired(user): LoginRequired) -> String {
///     format!("{}'s account", user.username)
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRequired(pub CurrentUser);

impl<S: Send + Sync> FromRequestParts<S> for LoginRequired {
    type Rejection = PageRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, PageRejection> {
        page_guard(parts, false).await.map(Self)
    }
}

/// Page guard: the logged-in user when their password entry is recent
/// ([`ExpectedLayer::fresh_for`](crate::ExpectedLayer::fresh_for)); else
/// `303 See Other` to the confirm-password page
/// ([`ExpectedLayer::confirm_password_page`](crate::ExpectedLayer::confirm_password_page))
/// when logged in, to the login page when not, with the page asked for as
/// `next`; 503 on a store outage.
///
/// ```
/// use expected_axum::FreshLogin;
///
/// // A page that changes credentials: a stale session is sent to
/// // /confirm-password?next=%2Fsecurity to type the password again.
/// async fn security(FreshLogin(user): FreshLogin) -> String {
///     format!("change {}'s password", user.username)
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreshLogin(pub CurrentUser);

impl<S: Send + Sync> FromRequestParts<S> for FreshLogin {
    type Rejection = PageRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, PageRejection> {
        page_guard(parts, true).await.map(Self)
    }
}
