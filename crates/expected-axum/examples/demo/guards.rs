//! The demo's two request guards as tower layers of their own: the refusal
//! of state-changing requests from other origins, and the CSRF rule.
//!
//! Written as services rather than `middleware::from_fn`, whose every call
//! clones the boxed routes below it and boxes them again as its `Next`: on a
//! session hit the two cost about 7 000 instructions of 55 000. A request
//! either guard lets through without asking anything (any request from this
//! origin; a safe API request, for the CSRF rule) goes straight to the inner
//! service, with no allocation of the guard's own.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::Json;
use axum::extract::{FromRequestParts, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use expected_axum::expected_core::http::is_safe_method;
use expected_axum::{Auth, Session, check_origin};
use expected_demo_kit::api::{ErrorBody, error};
use futures_util::future::{BoxFuture, Either, Ready, ready};
use tower::{Layer, Service, ServiceExt as _};

/// Refuses state-changing requests that do not come from this origin (see
/// [`check_origin`]) with 403 `cross_site_request`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RefuseCrossSiteLayer;

impl<I> Layer<I> for RefuseCrossSiteLayer {
    type Service = RefuseCrossSite<I>;

    fn layer(&self, inner: I) -> RefuseCrossSite<I> {
        RefuseCrossSite { inner }
    }
}

/// The service of [`RefuseCrossSiteLayer`].
#[derive(Debug, Clone)]
pub(crate) struct RefuseCrossSite<I> {
    inner: I,
}

impl<I> Service<Request> for RefuseCrossSite<I>
where
    I: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = I::Error;
    type Future = Either<Ready<Result<Response, I::Error>>, I::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), I::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if check_origin(request.method(), request.uri(), request.headers()).is_err() {
            let refused = (StatusCode::FORBIDDEN, Json(ErrorBody::new(error::CROSS_SITE_REQUEST)));
            return Either::Left(ready(Ok(refused.into_response())));
        }
        // The inner service was driven to readiness by `poll_ready`.
        Either::Right(self.inner.call(request))
    }
}

/// The CSRF rule ([`super::csrf_guard`]) on the API (`PAGE` false) or on
/// the pages (`PAGE` true).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CsrfLayer<const PAGE: bool>;

impl<I, const PAGE: bool> Layer<I> for CsrfLayer<PAGE> {
    type Service = Csrf<I, PAGE>;

    fn layer(&self, inner: I) -> Csrf<I, PAGE> {
        Csrf { inner }
    }
}

/// The service of [`CsrfLayer`].
#[derive(Debug, Clone)]
pub(crate) struct Csrf<I, const PAGE: bool> {
    inner: I,
}

impl<I, const PAGE: bool> Service<Request> for Csrf<I, PAGE>
where
    I: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    I::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<I::Future, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // A safe API request needs no token, and asks nothing of the store
        // (the kit's `csrf::token_needed` says so too; this is its fast path).
        if !PAGE && is_safe_method(request.method().as_str()) {
            return Either::Left(self.inner.call(request));
        }
        // The clone that was driven to readiness is the one to call, later.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Either::Right(Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let auth = match Auth::from_request_parts(&mut parts, &()).await {
                Ok(auth) => auth,
                Err(rejection) => return Ok(rejection.into_response()),
            };
            let session = match Session::from_request_parts(&mut parts, &()).await {
                Ok(session) => session,
                Err(rejection) => return Ok(rejection.into_response()),
            };
            let request = Request::from_parts(parts, body);
            Ok(super::csrf_guard::<PAGE, _>(auth, session, request, inner).await)
        }))
    }
}

/// Runs `request` on `inner`, ready or not: what the guards call once they
/// let a request through.
pub(crate) async fn run<I>(inner: I, request: Request) -> Response
where
    I: Service<Request, Response = Response, Error = Infallible>,
{
    match inner.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}
