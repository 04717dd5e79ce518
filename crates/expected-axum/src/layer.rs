//! The tower [`Layer`] that runs the protocol around every request.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use expected_core::exchange::{OnStoreError, STORE_UNAVAILABLE_JSON, client_ip};
use expected_core::http::{append_set_cookies, presented_cookies, user_agent};
use expected_core::{ClientMeta, DynStore, Exchange, Expected, Store};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

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
    /// A layer over `engine` (any store), answering 503 on store errors and
    /// taking the client IP from the peer address.
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
pub(crate) fn store_unavailable() -> Response {
    let json = HeaderValue::from_static("application/json");
    (StatusCode::SERVICE_UNAVAILABLE, [(CONTENT_TYPE, json)], STORE_UNAVAILABLE_JSON).into_response()
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
        let layer = self.layer.clone();
        Box::pin(async move {
            let engine = layer.engine.clone();
            let headers = request.headers();
            // An oversized Cookie header is refused unread: the request is
            // then simply anonymous (a handler answers 401, never 500).
            let cookies = presented_cookies(headers, engine.config()).unwrap_or_default();
            let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
            let trusted = layer.options.client_ip_header.as_ref().and_then(|name| last_value(headers, name));
            let ip = client_ip(trusted, peer);
            let client = ClientMeta::new(ip, user_agent(headers));
            let exchange = Arc::new(Exchange::begin(engine, cookies.session, cookies.auth, client).await);

            if exchange.store_unavailable()
                && layer.options.on_store_error == OnStoreError::ServiceUnavailable
            {
                return Ok(store_unavailable());
            }
            request.extensions_mut().insert(exchange.clone());
            let mut response = inner.call(request).await?;

            let (cookies, saved) = exchange.finish().await;
            if let Err(error) = saved {
                tracing::warn!(%error, "session data could not be saved");
            }
            if !cookies.is_empty() {
                append_set_cookies(response.headers_mut(), &cookies);
                // A response that hands out credentials must never be cached.
                response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
            Ok(response)
        })
    }
}

/// The last value of a header, when it is text.
fn last_value<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get_all(name).iter().next_back().and_then(|value| value.to_str().ok())
}
