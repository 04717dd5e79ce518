//! The middleware that gives every request its exchange.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::StatusCode;
use actix_web::http::header::{
    CACHE_CONTROL, COOKIE, HeaderMap, HeaderName, HeaderValue, SET_COOKIE, USER_AGENT, VARY,
};
use actix_web::{HttpMessage, HttpResponse, ResponseError};
use expected_core::cookies::{PresentedCookies, read_cookie_headers};
use expected_core::http::{AfterHandler, OnStoreError, STORE_UNAVAILABLE_JSON, after_handler, client_ip};
use expected_core::{
    AuthError, ClientMeta, Concluded, Config, CurrentUser, DynStore, Exchange, Expected, SetCookie, Store,
};

use expected_core::guard::{Guards, is_page_path};

/// The middleware's settings, as the extractors read them.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) guards: Guards,
    pub(crate) client_ip_header: Option<HeaderName>,
}

/// What the middleware puts in the request's extensions for the extractors.
#[derive(Clone)]
pub(crate) struct RequestState {
    pub(crate) exchange: Arc<Exchange<DynStore>>,
    pub(crate) options: Arc<Options>,
}

impl RequestState {
    /// A guard's question: the logged-in user, fresh within the configured
    /// time when `fresh`, or why not (under the store-outage policy).
    pub(crate) async fn ask(&self, fresh: bool) -> Result<CurrentUser, AuthError> {
        self.options.guards.ask(&self.exchange, fresh).await
    }
}

/// Gives every request an exchange with `expected`: reads the session and
/// auth cookies (and nothing else: no store call until an extractor or a
/// handler asks who is logged in or touches session data), runs the handler,
/// then saves changed session data and writes the `Set-Cookie` headers.
///
/// Every response that sets a cookie, and every response to a request whose
/// authentication ran, carries `Cache-Control: no-store` and `Vary: Cookie`.
///
/// When authenticating the request meets a store outage, the request is
/// answered `503 {"error":"store_unavailable"}` with no cookie change,
/// whatever the handler returned; with [`OnStoreError::Anonymous`] the
/// handler's answer stands (and the guards treat the request as a visitor's).
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
    /// A middleware over `engine` (any store): 503 on store outages, the
    /// client IP from the peer address, guards sending browsers to `/login`
    /// and `/confirm-password`, and a password entry fresh for 10 minutes.
    ///
    /// ```
    /// use actix_web::{App, HttpServer, web};
    /// use expected_actix::ExpectedMiddleware;
    /// use expected_actix::expected_core::{Config, Expected};
    /// use expected_store_memory::MemoryStore;
    ///
    /// # async fn serve() -> std::io::Result<()> {
    /// let engine = Expected::new(MemoryStore::new(), Config::default());
    /// let expected = ExpectedMiddleware::new(engine); // outside the closure: one engine
    /// HttpServer::new(move || {
    ///     App::new().wrap(expected.clone()).route("/", web::get().to(|| async { "hello" }))
    /// })
    /// .bind(("127.0.0.1", 8080))?
    /// .run()
    /// .await
    /// # }
    /// ```
    pub fn new<S: Store>(engine: Expected<S>) -> Self {
        Self {
            engine: Arc::new(engine.into_dyn()),
            options: Arc::new(Options { guards: Guards::default(), client_ip_header: None }),
        }
    }

    /// What to do when the store is unavailable.
    ///
    /// ```
    /// use expected_actix::{ExpectedMiddleware, OnStoreError};
    /// # use expected_actix::expected_core::{Config, Expected};
    /// # let engine = Expected::new(expected_store_memory::MemoryStore::new(), Config::default());
    ///
    /// // A public site that stays up while the store is down, everyone a visitor:
    /// let middleware = ExpectedMiddleware::new(engine).on_store_error(OnStoreError::Anonymous);
    /// # let _ = middleware;
    /// ```
    #[must_use]
    pub fn on_store_error(mut self, policy: OnStoreError) -> Self {
        Arc::make_mut(&mut self.options).guards.on_store_error = policy;
        self
    }

    /// Take the client IP shown in the devices list from this header, set by
    /// a reverse proxy you trust (`X-Forwarded-For`: the last address, the
    /// one your proxy saw; `X-Real-IP`: the address). Only opt in behind such
    /// a proxy: anyone can send the header.
    ///
    /// ```
    /// use actix_web::http::header::HeaderName;
    /// use expected_actix::ExpectedMiddleware;
    /// # use expected_actix::expected_core::{Config, Expected};
    /// # let engine = Expected::new(expected_store_memory::MemoryStore::new(), Config::default());
    ///
    /// // Behind a reverse proxy that sets X-Forwarded-For (and drops the client's):
    /// let middleware = ExpectedMiddleware::new(engine).trusted_client_ip_header(HeaderName::from_static("x-forwarded-for"));
    /// # let _ = middleware;
    /// ```
    #[must_use]
    pub fn trusted_client_ip_header(mut self, header: HeaderName) -> Self {
        Arc::make_mut(&mut self.options).client_ip_header = Some(header);
        self
    }

    /// Where [`LoginRequired`](crate::LoginRequired) and
    /// [`FreshLogin`](crate::FreshLogin) send a browser that is not logged
    /// in, with the page it asked for as `next` (default `/login`).
    ///
    /// # Panics
    ///
    /// When `path` is empty or holds anything but visible ASCII (it becomes a
    /// `Location` header).
    ///
    /// ```
    /// use actix_web::http::{StatusCode, header::LOCATION};
    /// use actix_web::{App, test, web};
    /// use expected_actix::{ExpectedMiddleware, LoginRequired};
    /// # use expected_actix::expected_core::{Config, Expected};
    ///
    /// # #[actix_web::main] async fn main() {
    /// # let engine = Expected::new(expected_store_memory::MemoryStore::new(), Config::default());
    /// async fn account(LoginRequired(user): LoginRequired) -> String {
    ///     user.username.to_string()
    /// }
    ///
    /// let middleware = ExpectedMiddleware::new(engine).login_page("/signin");
    /// let app = test::init_service(App::new().wrap(middleware).route("/account", web::get().to(account))).await;
    /// let request = test::TestRequest::get().uri("/account?tab=devices").to_request();
    /// let response = test::call_service(&app, request).await;
    /// assert_eq!(response.status(), StatusCode::SEE_OTHER);
    /// let location = response.headers().get(LOCATION).and_then(|value| value.to_str().ok());
    /// assert_eq!(location, Some("/signin?next=%2Faccount%3Ftab%3Ddevices"));
    /// # }
    /// ```
    #[must_use]
    pub fn login_page(mut self, path: &'static str) -> Self {
        assert!(is_page_path(path), "login page {path:?} is not a visible-ASCII path");
        Arc::make_mut(&mut self.options).guards.login_page = path;
        self
    }

    /// Where [`FreshLogin`](crate::FreshLogin) sends a logged-in browser
    /// whose password entry is not recent enough, with the page it asked for
    /// as `next` (default `/confirm-password`). That page checks the password
    /// and calls [`confirm_password`](expected_core::AuthHandle::confirm_password).
    ///
    /// # Panics
    ///
    /// When `path` is empty or holds anything but visible ASCII.
    ///
    /// ```
    /// use expected_actix::ExpectedMiddleware;
    /// # use expected_actix::expected_core::{Config, Expected};
    /// # let engine = Expected::new(expected_store_memory::MemoryStore::new(), Config::default());
    ///
    /// // FreshLogin sends stale sessions to /sudo?next=… to type the password again.
    /// let middleware = ExpectedMiddleware::new(engine).confirm_password_page("/sudo");
    /// # let _ = middleware;
    /// ```
    #[must_use]
    pub fn confirm_password_page(mut self, path: &'static str) -> Self {
        assert!(is_page_path(path), "confirm-password page {path:?} is not a visible-ASCII path");
        Arc::make_mut(&mut self.options).guards.confirm_password_page = path;
        self
    }

    /// How recent a password entry [`FreshUser`](crate::FreshUser) and
    /// [`FreshLogin`](crate::FreshLogin) demand (default 10 minutes).
    ///
    /// ```
    /// use std::time::Duration;
    /// use expected_actix::ExpectedMiddleware;
    /// # use expected_actix::expected_core::{Config, Expected};
    /// # let engine = Expected::new(expected_store_memory::MemoryStore::new(), Config::default());
    ///
    /// // FreshUser and FreshLogin: a password typed in the last 5 minutes.
    /// let middleware = ExpectedMiddleware::new(engine).fresh_for(Duration::from_secs(5 * 60));
    /// # let _ = middleware;
    /// ```
    #[must_use]
    pub fn fresh_for(mut self, max_age: Duration) -> Self {
        Arc::make_mut(&mut self.options).guards.fresh_for = max_age;
        self
    }

    /// The engine, to call from outside requests (a cleaner, an admin task,
    /// [`testing::login_as`](crate::testing::login_as)).
    ///
    /// ```
    /// use expected_actix::ExpectedMiddleware;
    /// # use expected_actix::expected_core::{Config, Expected};
    ///
    /// # #[actix_web::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let engine = Expected::new(expected_store_memory::MemoryStore::new(), Config::default());
    /// let middleware = ExpectedMiddleware::new(engine);
    /// // An admin task, outside any request: one cleaning pass.
    /// let cleaned = middleware.engine().clean().await?;
    /// assert_eq!((cleaned.logins, cleaned.sessions), (0, 0));
    /// # Ok(()) }
    /// ```
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

/// Every value of the session and auth cookies of the request: which one is
/// good (after a `Domain` change a browser sends two) is the engine's
/// decision. Oversized `Cookie` headers make the request simply a visitor's
/// (a guard answers 401, never 500).
fn request_cookies(headers: &HeaderMap, config: &Config) -> PresentedCookies {
    read_cookie_headers(headers.get_all(COOKIE).map(HeaderValue::as_bytes), config).unwrap_or_default()
}

/// The `User-Agent` header, if it is valid UTF-8 (as the core's
/// `http::user_agent` reads it; `ClientMeta::new` keeps its printable text).
fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers.get(USER_AGENT).and_then(|value| std::str::from_utf8(value.as_bytes()).ok())
}

/// The 503 answer to a store outage.
fn store_unavailable() -> HttpResponse {
    let mut response =
        HttpResponse::ServiceUnavailable().content_type("application/json").body(STORE_UNAVAILABLE_JSON);
    not_cacheable(response.headers_mut());
    response
}

/// `Cache-Control: no-store` and `Vary: Cookie`: a response that depends on
/// the cookies, or hands some out, must not be cached or shared.
fn not_cacheable(headers: &mut HeaderMap) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let varies = headers.get_all(VARY).filter_map(|value| value.to_str().ok()).any(|value| {
        value.split(',').map(str::trim).any(|name| name == "*" || name.eq_ignore_ascii_case("cookie"))
    });
    if !varies {
        headers.append(VARY, HeaderValue::from_static("Cookie"));
    }
}

/// Appends the `Set-Cookie`s.
fn write_cookies(headers: &mut HeaderMap, cookies: &[SetCookie]) {
    for cookie in cookies {
        // Values are base64url and dots, attributes visible ASCII (checked
        // by Config), so this always succeeds.
        match HeaderValue::from_str(&cookie.header_value()) {
            Ok(value) => headers.append(SET_COOKIE, value),
            Err(_) => tracing::error!(kind = ?cookie.kind(), "Set-Cookie is not a valid header value"),
        }
    }
}

/// What the exchange adds to the response: its cookies, and whether the
/// response must not be cached.
#[derive(Debug)]
struct Finish {
    cookies: Vec<SetCookie>,
    not_cacheable: bool,
}

impl Finish {
    fn apply(&self, headers: &mut HeaderMap) {
        write_cookies(headers, &self.cookies);
        if self.not_cacheable {
            not_cacheable(headers);
        }
    }
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
            let cookies = request_cookies(headers, engine.config());
            let peer = request.peer_addr().map(|address| address.ip());
            let trusted = options
                .client_ip_header
                .as_ref()
                .and_then(|name| headers.get_all(name).next_back())
                .and_then(|value| value.to_str().ok());
            let client = ClientMeta::new(client_ip(trusted, peer), user_agent(headers));
            let exchange = Arc::new(Exchange::new(engine, cookies, client));
            let state = RequestState { exchange: Arc::clone(&exchange), options: Arc::clone(&options) };
            request.extensions_mut().insert(state);

            let result = service.call(request).await;

            let Concluded {
                cookies, saved, asked: authenticated, store_failed: authentication_failed, ..
            } = exchange.conclude().await;
            if let Err(error) = &saved {
                tracing::warn!(%error, "session data could not be saved");
            }
            let finish = Finish { not_cacheable: authenticated || !cookies.is_empty(), cookies };
            if let AfterHandler::StoreUnavailable { with_cookies } =
                after_handler(options.guards.on_store_error, authentication_failed, &saved)
            {
                return match result {
                    Ok(response) => {
                        let mut response = response.into_response(store_unavailable());
                        if with_cookies {
                            finish.apply(response.headers_mut());
                        }
                        not_cacheable(response.headers_mut());
                        Ok(response.map_into_right_body())
                    }
                    Err(_) if with_cookies => {
                        Err(WithCookies { error: StoreUnavailable.into(), finish }.into())
                    }
                    Err(_) => Err(StoreUnavailable.into()),
                };
            }
            match result {
                Ok(mut response) => {
                    finish.apply(response.headers_mut());
                    Ok(response.map_into_left_body())
                }
                // Routes turn handler and extractor errors into responses;
                // an error here comes from a middleware inside this one. The
                // cookies must still reach the client (a rotated auth cookie
                // lost would look like a replay once the grace window ends),
                // so they ride on the error's response.
                Err(error) if !finish.not_cacheable => Err(error),
                Err(error) => Err(WithCookies { error, finish }.into()),
            }
        })
    }
}

/// The 503 answer to a store outage, as an error (when an inner middleware
/// failed: there is no response to replace).
#[derive(Debug)]
struct StoreUnavailable;

impl std::fmt::Display for StoreUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("store unavailable")
    }
}

impl ResponseError for StoreUnavailable {
    fn status_code(&self) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }

    fn error_response(&self) -> HttpResponse {
        store_unavailable()
    }
}

/// An inner service's error, rendered with the exchange's cookies.
#[derive(Debug)]
struct WithCookies {
    error: actix_web::Error,
    finish: Finish,
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
        self.finish.apply(response.headers_mut());
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
        assert_eq!(
            found.auth_values().as_slice(),
            ["first", "second"],
            "every value, across headers, in order"
        );
        assert_eq!(found.session_values().as_slice(), ["s"]);

        let big = format!("session=s; pad={}", "a".repeat(MAX_COOKIE_HEADER_BYTES));
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_str(&big).unwrap_or(HeaderValue::from_static("")));
        assert_eq!(request_cookies(&headers, &config), PresentedCookies::default());
    }
}
