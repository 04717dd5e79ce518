//! The tower [`Layer`] that gives every request its exchange.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use expected_core::http::{
    AfterHandler, OnStoreError, STORE_UNAVAILABLE_JSON, after_handler, append_set_cookies, client_ip,
    presented_cookies, user_agent,
};
use expected_core::{AuthError, ClientMeta, Concluded, CurrentUser, DynStore, Exchange, Expected, Store};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue, VARY};
use http::{HeaderMap, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use expected_core::guard::{Guards, is_page_path};

/// The layer's settings, as the extractors read them.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) guards: Guards,
    pub(crate) client_ip_header: Option<HeaderName>,
}

/// What the layer puts in the request's extensions for the extractors.
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
#[derive(Clone)]
pub struct ExpectedLayer {
    engine: Arc<Expected<DynStore>>,
    options: Arc<Options>,
}

impl std::fmt::Debug for ExpectedLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpectedLayer").field("options", &self.options).finish_non_exhaustive()
    }
}

impl ExpectedLayer {
    /// A layer over `engine` (any store): 503 on store outages, the client IP
    /// from the peer address, guards sending browsers to `/login` and
    /// `/confirm-password`, and a password entry fresh for 10 minutes.
    ///
    /// ```
    /// use axum::{Router, routing::get};
    /// use expected_axum::ExpectedLayer;
    /// use expected_axum::expected_core::{Config, Expected};
    /// use expected_store_memory::MemoryStore;
    ///
    /// let engine = Expected::new(MemoryStore::new(), Config::default());
    /// let app: Router = Router::new()
    ///     .route("/", get(|| async { "hello" }))
    ///     .layer(ExpectedLayer::new(engine));
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
    /// use expected_axum::{ExpectedLayer, OnStoreError};
    /// # use expected_axum::expected_core::{Config, Expected};
    /// # let engine = Expected::new(expected_store_memory::MemoryStore::new(), Config::default());
    ///
    /// // A public site that stays up while the store is down, everyone a visitor:
    /// let layer = ExpectedLayer::new(engine).on_store_error(OnStoreError::Anonymous);
    /// # let _ = layer;
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
    /// use axum::http::HeaderName;
    /// use expected_axum::ExpectedLayer;
    /// # use expected_axum::expected_core::{Config, Expected};
    /// # let engine = Expected::new(expected_store_memory::MemoryStore::new(), Config::default());
    ///
    /// // Behind a reverse proxy that sets X-Forwarded-For (and drops the client's):
    /// let layer = ExpectedLayer::new(engine).trusted_client_ip_header(HeaderName::from_static("x-forwarded-for"));
    /// # let _ = layer;
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
    /// use axum::body::Body;
    /// use axum::http::{Request, StatusCode, header::LOCATION};
    /// use axum::{Router, routing::get};
    /// use expected_axum::{ExpectedLayer, LoginRequired};
    /// use tower::ServiceExt as _;
    /// # use expected_axum::expected_core::{Config, Expected};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let engine = Expected::new(expected_store_memory::MemoryStore::new(), Config::default());
    /// async fn account(LoginRequired(user): LoginRequired) -> String {
    ///     user.username.to_string()
    /// }
    ///
    /// let app = Router::new()
    ///     .route("/account", get(account))
    ///     .layer(ExpectedLayer::new(engine).login_page("/signin"));
    /// let request = Request::get("/account?tab=devices").body(Body::empty()).unwrap();
    /// let response = app.oneshot(request).await.unwrap();
    /// assert_eq!(response.status(), StatusCode::SEE_OTHER);
    /// assert_eq!(response.headers()[LOCATION], "/signin?next=%2Faccount%3Ftab%3Ddevices");
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
    /// use expected_axum::ExpectedLayer;
    /// # use expected_axum::expected_core::{Config, Expected};
    /// # let engine = Expected::new(expected_store_memory::MemoryStore::new(), Config::default());
    ///
    /// // FreshLogin sends stale sessions to /sudo?next=… to type the password again.
    /// let layer = ExpectedLayer::new(engine).confirm_password_page("/sudo");
    /// # let _ = layer;
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
    /// use expected_axum::ExpectedLayer;
    /// # use expected_axum::expected_core::{Config, Expected};
    /// # let engine = Expected::new(expected_store_memory::MemoryStore::new(), Config::default());
    ///
    /// // FreshUser and FreshLogin: a password typed in the last 5 minutes.
    /// let layer = ExpectedLayer::new(engine).fresh_for(Duration::from_secs(5 * 60));
    /// # let _ = layer;
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
    /// use expected_axum::ExpectedLayer;
    /// # use expected_axum::expected_core::{Config, Expected};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let engine = Expected::new(expected_store_memory::MemoryStore::new(), Config::default());
    /// let layer = ExpectedLayer::new(engine);
    /// // An admin task, outside any request: one cleaning pass.
    /// let cleaned = layer.engine().clean().await?;
    /// assert_eq!((cleaned.logins, cleaned.sessions), (0, 0));
    /// # Ok(()) }
    /// ```
    pub fn engine(&self) -> &Arc<Expected<DynStore>> {
        &self.engine
    }
}

impl<I> Layer<I> for ExpectedLayer {
    type Service = ExpectedService<I>;

    fn layer(&self, inner: I) -> Self::Service {
        ExpectedService { inner, layer: self.clone() }
    }
}

/// The service [`ExpectedLayer`] wraps around the application.
#[derive(Clone, Debug)]
pub struct ExpectedService<I> {
    inner: I,
    layer: ExpectedLayer,
}

/// The 503 answer to a store outage.
fn store_unavailable() -> Response {
    let json = HeaderValue::from_static("application/json");
    (StatusCode::SERVICE_UNAVAILABLE, [(CONTENT_TYPE, json)], STORE_UNAVAILABLE_JSON).into_response()
}

/// `Cache-Control: no-store` and `Vary: Cookie`: a response that depends on
/// the cookies, or hands some out, must not be cached or shared.
fn not_cacheable(headers: &mut HeaderMap) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let varies = headers.get_all(VARY).iter().filter_map(|value| value.to_str().ok()).any(|value| {
        value.split(',').map(str::trim).any(|name| name == "*" || name.eq_ignore_ascii_case("cookie"))
    });
    if !varies {
        headers.append(VARY, HeaderValue::from_static("Cookie"));
    }
}

impl<I> Service<Request> for ExpectedService<I>
where
    I: Service<Request, Response = Response> + Clone + Send + 'static,
    I::Future: Send + 'static,
{
    type Response = Response;
    type Error = I::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, I::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // The clone that was driven to readiness is the one to call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        // One clone of each of the layer's handles, moved on, never cloned
        // again: every request's clones write counts that every core reads.
        let ExpectedLayer { engine, options } = self.layer.clone();
        Box::pin(async move {
            let headers = request.headers();
            // Every value of both names: which one is good (after a Domain
            // change a browser sends two) is the engine's decision. An
            // oversized Cookie header is refused unread: the request is then
            // simply a visitor's (a guard answers 401, never 500).
            let cookies = presented_cookies(headers, engine.config()).unwrap_or_default();
            let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
            let trusted = options.client_ip_header.as_ref().and_then(|name| last_value(headers, name));
            let client = ClientMeta::new(client_ip(trusted, peer), user_agent(headers));
            let on_store_error = options.guards.on_store_error;
            let exchange = Arc::new(Exchange::new(engine, cookies, client));
            request.extensions_mut().insert(RequestState { exchange: exchange.clone(), options });

            let mut response = inner.call(request).await?;

            let Concluded {
                cookies, saved, asked: authenticated, store_failed: authentication_failed, ..
            } = exchange.conclude().await;
            if let Err(error) = &saved {
                tracing::warn!(%error, "session data could not be saved");
            }
            if let AfterHandler::StoreUnavailable { with_cookies } =
                after_handler(on_store_error, authentication_failed, &saved)
            {
                response = store_unavailable();
                if with_cookies {
                    append_set_cookies(response.headers_mut(), &cookies);
                }
                not_cacheable(response.headers_mut());
                return Ok(response);
            }
            append_set_cookies(response.headers_mut(), &cookies);
            if authenticated || !cookies.is_empty() {
                not_cacheable(response.headers_mut());
            }
            Ok(response)
        })
    }
}

/// The last value of a header, when it is text.
fn last_value<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get_all(name).iter().next_back().and_then(|value| value.to_str().ok())
}
