//! [`Error`]: what handlers pass on with `?`, answered as core's
//! [`http`](expected_core::http) policy says.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use expected_core::http::{auth_failed, csrf_failed, session_failed};
use expected_core::{AuthError, CsrfError, EngineError, SessionError, StoreError};

/// An error of `expected` in a handler or an extractor, answered with a JSON
/// body: 401 `{"error":"unauthenticated"}` or `{"error":"unexpected_token"}`,
/// 403 `{"error":"reauthentication_required"}` or
/// `{"error":"invalid_csrf_token"}`, 503
/// `{"error":"store_unavailable"}`, 413 `{"error":"session_too_large"}`, …
/// (see [`auth_failed`], [`session_failed`] and [`csrf_failed`]).
///
/// Every error of the [`Auth`](crate::Auth) and [`Session`](crate::Session)
/// methods converts into it, so a handler returns
/// `Result<_, expected_actix::Error>` and uses `?`:
///
/// ```
/// use actix_web::web::Json;
/// use expected_actix::{Auth, Session};
///
/// async fn profile(auth: Auth, session: Session) -> Result<Json<serde_json::Value>, expected_actix::Error> {
///     let user = auth.require_user().await?; // 401, or 503 on a store outage
///     let theme: Option<String> = session.get("theme").await?;
///     Ok(Json(serde_json::json!({ "user": user.username.as_str(), "theme": theme })))
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not logged in (or not freshly enough), the store, or the engine.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A session read or write failed: the store, a value that is not JSON,
    /// data over the size limit.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// A state-changing request without its session's CSRF token
    /// ([`SessionHandle::verify_csrf`](expected_core::SessionHandle::verify_csrf)).
    #[error(transparent)]
    Csrf(#[from] CsrfError),
    /// An extractor was used on a route the
    /// [`ExpectedMiddleware`](crate::ExpectedMiddleware) does not wrap: a
    /// programming error, answered 500.
    #[error("ExpectedMiddleware is not installed on this route")]
    MissingMiddleware,
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        Self::Auth(AuthError::Store(error))
    }
}

impl From<EngineError> for Error {
    fn from(error: EngineError) -> Self {
        Self::Auth(AuthError::from(error))
    }
}

impl Error {
    /// Whether this is a store failure (answered 503).
    pub fn is_store_failure(&self) -> bool {
        matches!(
            self,
            Self::Auth(AuthError::Store(_))
                | Self::Session(SessionError::Store(_))
                | Self::Csrf(CsrfError::Session(SessionError::Store(_)))
        )
    }

    /// The status and JSON body, as core's `http` policy says (`None` for a
    /// missing middleware).
    fn answer(&self) -> Option<(StatusCode, &'static str)> {
        let (status, body) = match self {
            Self::Auth(error) => auth_failed(error),
            Self::Session(error) => session_failed(error),
            Self::Csrf(error) => csrf_failed(error),
            Self::MissingMiddleware => return None,
        };
        let status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Some((status, body))
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        self.answer().map_or(StatusCode::INTERNAL_SERVER_ERROR, |(status, _)| status)
    }

    fn error_response(&self) -> HttpResponse {
        match self.answer() {
            Some((status, body)) => HttpResponse::build(status).content_type("application/json").body(body),
            None => {
                tracing::error!("expected-actix extractor used on a route without ExpectedMiddleware");
                HttpResponse::InternalServerError()
                    .content_type("text/plain; charset=utf-8")
                    .body(self.to_string())
            }
        }
    }
}
