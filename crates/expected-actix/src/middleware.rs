//! The middleware that runs the protocol around every request.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::StatusCode;
use actix_web::http::header::{
    CACHE_CONTROL, COOKIE, HeaderMap, HeaderName, HeaderValue, SET_COOKIE, USER_AGENT,
};
use actix_web::{HttpMessage, HttpResponse, ResponseError};
use expected_core::cookies::{PresentedCookies, read_cookie_headers};
use expected_core::exchange::{OnStoreError, STORE_UNAVAILABLE_JSON, client_ip};
use expected_core::{ClientMeta, Config, DynStore, Exchange, Expected, SetCookie, Store};

#[derive(Debug, Clone)]
struct Options {
    on_store_error: OnStoreError,
    client_ip_header: Option<HeaderName>,
}

/// Runs `expected` around every request: reads the session and auth cookies,
/// authenticates, hands the handler an [`Exchange`] (through the
/// [`Auth`](crate::Auth), [`Session`](crate::Session) and
/// [`AuthUser`](crate::AuthUser) extractors), then saves changed session data
/// and writes the `Set-Cookie` headers.
///
/// Install it with [`App::wrap`](actix_web::App::wrap). It is cheap to clone:
/// make it once, outside the `HttpServer::new` closure, so that every worker
/// shares one engine.
#[derive(Clone)]
pub struct ExpectedMiddleware {
    engine: Arc<Expected<DynStore>>,
    options: Arc<Options>,
}

impl std::fmt::Debug for ExpectedMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpectedMiddleware").field("options", &self.options).finish_non_exhaustive()
    }
}

impl ExpectedMiddleware {
    /// A middleware over `engine` (any store), answering 503 on store errors
    /// and taking the client IP from the peer address.
    pub fn new<S: Store>(engine: Expected<S>) -> Self {
        Self {
            engine: Arc::new(engine.into_dyn()),
            options: Arc::new(Options { on_store_error: OnStoreError::default(), client_ip_header: None }),
        }
    }

    /// What to do when the store is unavailable.
    #[must_use]
    pub fn on_store_error(mut self, policy: OnStoreError) -> Self {
        Arc::make_mut(&mut self.options).on_store_error = policy;
        self
    }

    /// Take the client IP shown in the devices list from this header, set by
    /// a reverse proxy you trust (`X-Forwarded-For`: the last address, the
    /// one your proxy saw; `X-Real-IP`: the address). Only opt in behind such
    /// a proxy: anyone can send the header.
    #[must_use]
    pub fn trusted_client_ip_header(mut self, header: HeaderName) -> Self {
        Arc::make_mut(&mut self.options).client_ip_header = Some(header);
        self
    }

    /// The engine, to call from outside requests (a cleaner, an admin task).
    pub fn engine(&self) -> &Arc<Expected<DynStore>> {
        &self.engine
    }
}

impl<S, B> Transform<S, ServiceRequest> for ExpectedMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = ExpectedService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(ExpectedService { service: Rc::new(service), middleware: self.clone() }))
    }
}

/// The service [`ExpectedMiddleware`] wraps around the application.
#[derive(Debug)]
pub struct ExpectedService<S> {
    service: Rc<S>,
    middleware: ExpectedMiddleware,
}

/// The session and auth cookies of the request. Oversized `Cookie` headers
/// make the request simply anonymous (a handler answers 401, never 500).
fn request_cookies(headers: &HeaderMap, config: &Config) -> PresentedCookies {
    read_cookie_headers(headers.get_all(COOKIE).map(HeaderValue::as_bytes), config).unwrap_or_default()
}

/// The `User-Agent` header, if it is visible ASCII.
fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers.get(USER_AGENT).and_then(|value| value.to_str().ok())
}

/// The 503 answer to a store outage.
pub(crate) fn store_unavailable() -> HttpResponse {
    HttpResponse::ServiceUnavailable().content_type("application/json").body(STORE_UNAVAILABLE_JSON)
}

/// Appends the `Set-Cookie`s, and `Cache-Control: no-store` when there are
/// any: a response that hands out credentials must never be cached.
fn write_cookies(headers: &mut HeaderMap, cookies: &[SetCookie]) {
    if cookies.is_empty() {
        return;
    }
    for cookie in cookies {
        // Values are base64url and dots, attributes visible ASCII (checked
        // by Config), so this always succeeds.
        match HeaderValue::from_str(&cookie.header_value()) {
            Ok(value) => headers.append(SET_COOKIE, value),
            Err(_) => tracing::error!(kind = ?cookie.kind(), "Set-Cookie is not a valid header value"),
        }
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

impl<S, B> Service<ServiceRequest> for ExpectedService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let engine = Arc::clone(&self.middleware.engine);
        let options = Arc::clone(&self.middleware.options);
        Box::pin(async move {
            let headers = request.headers();
            // An oversized Cookie header makes the request anonymous: a
            // handler answers 401, never 500.
            let cookies = request_cookies(headers, engine.config());
            let peer = request.peer_addr().map(|address| address.ip());
            let trusted = options
                .client_ip_header
                .as_ref()
                .and_then(|name| headers.get_all(name).next_back())
                .and_then(|value| value.to_str().ok());
            let ip = client_ip(trusted, peer);
            let client = ClientMeta::new(ip, user_agent(headers));
            let exchange = Arc::new(Exchange::begin(engine, cookies.session, cookies.auth, client).await);

            if exchange.refused(options.on_store_error) {
                return Ok(request.into_response(store_unavailable()).map_into_right_body());
            }
            request.extensions_mut().insert(Arc::clone(&exchange));
            let result = service.call(request).await;

            let (cookies, saved) = exchange.finish().await;
            if let Err(error) = saved {
                tracing::warn!(%error, "session data could not be saved");
            }
            match result {
                Ok(mut response) => {
                    write_cookies(response.headers_mut(), &cookies);
                    Ok(response.map_into_left_body())
                }
                // Routes turn handler and extractor errors into responses;
                // an error here comes from a middleware inside this one. The
                // cookies must still reach the client (a rotated auth cookie
                // lost would look like a replay once the grace window ends),
                // so they ride on the error's response.
                Err(error) if cookies.is_empty() => Err(error),
                Err(error) => Err(WithCookies { error, cookies }.into()),
            }
        })
    }
}

/// An inner service's error, rendered with the exchange's cookies.
#[derive(Debug)]
struct WithCookies {
    error: actix_web::Error,
    cookies: Vec<SetCookie>,
}

impl std::fmt::Display for WithCookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.error, f)
    }
}

impl ResponseError for WithCookies {
    fn status_code(&self) -> StatusCode {
        self.error.as_response_error().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = self.error.error_response();
        write_cookies(response.headers_mut(), &self.cookies);
        response
    }
}

#[cfg(test)]
mod tests {
    use expected_core::cookies::MAX_COOKIE_HEADER_BYTES;

    use super::*;

    #[test]
    fn cookies_cross_over_and_oversize_is_anonymous() {
        let config = Config::default();
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("remember_me=first; x=1"));
        headers.append(COOKIE, HeaderValue::from_static("remember_me=second; session=s"));
        let found = request_cookies(&headers, &config);
        assert_eq!(found.auth.as_deref(), Some("first"));
        assert_eq!(found.session.as_deref(), Some("s"));

        let big = format!("session=s; pad={}", "a".repeat(MAX_COOKIE_HEADER_BYTES));
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_str(&big).unwrap_or(HeaderValue::from_static("")));
        assert_eq!(request_cookies(&headers, &config), PresentedCookies::default());
    }
}
