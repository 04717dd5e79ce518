//! The adapter itself, request by request with `tower::ServiceExt::oneshot`
//! on a tiny router over a memory store: the store-outage policies,
//! `Cache-Control: no-store`, oversized `Cookie` headers, the missing-layer
//! error, session data saved only when changed, and the client IP.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use expected_axum::expected_core::{Config, Expected, Username};
use expected_axum::{Auth, AuthUser, ExpectedLayer, OnStoreError, Session};
use expected_conformance::{Flaky, Operation};
use expected_store_memory::MemoryStore;
use tower::ServiceExt as _;

fn alice() -> Username {
    match Username::new("alice") {
        Ok(user) => user,
        Err(error) => panic!("{error}"),
    }
}

async fn login(auth: Auth) -> StatusCode {
    match auth.register(&alice(), true).await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn me(auth: Auth) -> String {
    auth.username().map_or_else(|| "anonymous".to_owned(), |user| user.to_string())
}

async fn who(AuthUser(user): AuthUser) -> String {
    user.to_string()
}

async fn visit(session: Session) -> String {
    let visits: u64 = session.get("visits").ok().flatten().unwrap_or(0) + 1;
    let _ = session.insert("visits", visits);
    visits.to_string()
}

async fn peek(session: Session) -> String {
    let visits: u64 = session.get("visits").ok().flatten().unwrap_or(0);
    // Writing the value it already has is no change.
    let _ = session.insert("visits", visits);
    visits.to_string()
}

async fn devices(auth: Auth) -> String {
    let devices = auth.devices().await.ok().flatten().unwrap_or_default();
    devices.iter().map(|device| device.ip.map_or_else(String::new, |ip| ip.to_string())).collect()
}

fn config() -> Config {
    match Config::builder().secure(false).build() {
        Ok(config) => config,
        Err(error) => panic!("{error}"),
    }
}

fn routes() -> Router {
    Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/who", get(who))
        .route("/visit", get(visit))
        .route("/peek", get(peek))
        .route("/devices", get(devices))
}

/// A memory store that can be taken down and counts the calls it gets.
fn store() -> Arc<Flaky<MemoryStore>> {
    Arc::new(Flaky::new(MemoryStore::new()))
}

fn app(store: Arc<Flaky<MemoryStore>>, configure: impl FnOnce(ExpectedLayer) -> ExpectedLayer) -> Router {
    routes().layer(configure(ExpectedLayer::new(Expected::new(store, config()))))
}

fn request(method: &str, path: &str, cookies: &str) -> Request {
    let mut builder = Request::builder().method(method).uri(path);
    if !cookies.is_empty() {
        builder = builder.header(header::COOKIE, cookies);
    }
    match builder.body(Body::empty()) {
        Ok(request) => request,
        Err(error) => panic!("{error}"),
    }
}

async fn call(app: &Router, request: Request) -> Response {
    match app.clone().oneshot(request).await {
        Ok(response) => response,
        Err(error) => match error {},
    }
}

async fn body(response: Response) -> String {
    match to_bytes(response.into_body(), 1 << 20).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(error) => panic!("{error}"),
    }
}

/// The `name=value` pairs of a response's `Set-Cookie`s, as a `Cookie` header.
fn cookies_of(response: &Response) -> String {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|text| text.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

async fn logged_in(app: &Router) -> String {
    let response = call(app, request("POST", "/login", "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    cookies_of(&response)
}

#[tokio::test]
async fn store_outage_answers_503_without_calling_the_handler() {
    let store = store();
    let app = app(store.clone(), |layer| layer);
    let cookies = logged_in(&app).await;
    store.set_down(true);
    let remember_only = cookies.split("; ").find(|pair| pair.starts_with("remember_me=")).unwrap_or_default();
    for cookies in [cookies.as_str(), remember_only] {
        let response = call(&app, request("GET", "/me", cookies)).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().get(header::SET_COOKIE).is_none(), "cookies untouched");
        assert_eq!(body(response).await, r#"{"error":"store_unavailable"}"#);
    }
    store.set_down(false);
    assert_eq!(body(call(&app, request("GET", "/me", &cookies)).await).await, "alice");
}

#[tokio::test]
async fn store_outage_can_run_the_handler_anonymously() {
    let store = store();
    let app = app(store.clone(), |layer| layer.on_store_error(OnStoreError::Anonymous));
    let cookies = logged_in(&app).await;
    store.set_down(true);
    let response = call(&app, request("GET", "/me", &cookies)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get(header::SET_COOKIE).is_none(), "cookies untouched");
    assert_eq!(body(response).await, "anonymous");
    let response = call(&app, request("GET", "/who", &cookies)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    store.set_down(false);
    assert_eq!(body(call(&app, request("GET", "/me", &cookies)).await).await, "alice");
}

#[tokio::test]
async fn responses_setting_cookies_are_not_cached() {
    let store = store();
    let app = app(store, |layer| layer);
    let response = call(&app, request("POST", "/login", "")).await;
    assert_eq!(response.headers().get(header::CACHE_CONTROL), Some(&HeaderValue::from_static("no-store")));
    let cookies = cookies_of(&response);
    let response = call(&app, request("GET", "/me", &cookies)).await;
    assert!(response.headers().get(header::SET_COOKIE).is_none());
    assert!(response.headers().get(header::CACHE_CONTROL).is_none(), "a session hit may be cached");
    let remember_only = cookies.split("; ").find(|pair| pair.starts_with("remember_me=")).unwrap_or_default();
    let response = call(&app, request("GET", "/me", remember_only)).await;
    assert!(response.headers().get(header::SET_COOKIE).is_some(), "a cookie login sets cookies");
    assert_eq!(response.headers().get(header::CACHE_CONTROL), Some(&HeaderValue::from_static("no-store")));
    let response = call(&app, request("GET", "/me", "session=garbage")).await;
    assert!(response.headers().get(header::SET_COOKIE).is_some(), "a bad cookie is cleared");
    assert_eq!(response.headers().get(header::CACHE_CONTROL), Some(&HeaderValue::from_static("no-store")));
}

#[tokio::test]
async fn an_oversized_cookie_header_is_anonymous() {
    let store = store();
    let app = app(store, |layer| layer);
    let cookies = logged_in(&app).await;
    let padded = format!("pad={}; {cookies}", "x".repeat(20 * 1024));
    let response = call(&app, request("GET", "/who", &padded)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get(header::SET_COOKIE).is_none(), "refused unread, nothing cleared");
    assert_eq!(body(response).await, r#"{"error":"unauthenticated"}"#);
    assert_eq!(body(call(&app, request("GET", "/who", &cookies)).await).await, "alice");
}

#[tokio::test]
async fn extractors_without_the_layer_are_a_500() {
    let app = routes();
    for path in ["/me", "/who", "/visit"] {
        let response = call(&app, request("GET", path, "")).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert!(body(response).await.contains("ExpectedLayer"), "{path}");
    }
}

#[tokio::test]
async fn session_data_is_saved_only_when_changed() {
    let store = store();
    let app = app(store.clone(), |layer| layer);
    let cookies = logged_in(&app).await;
    let session = cookies.split("; ").find(|pair| pair.starts_with("session=")).unwrap_or_default();
    assert_eq!(store.calls(Operation::SaveSession), 0, "logging in saves no data");
    assert_eq!(body(call(&app, request("GET", "/visit", session)).await).await, "1");
    assert_eq!(store.calls(Operation::SaveSession), 1);
    assert_eq!(body(call(&app, request("GET", "/visit", session)).await).await, "2");
    assert_eq!(store.calls(Operation::SaveSession), 2);
    for _ in 0..3 {
        assert_eq!(body(call(&app, request("GET", "/peek", session)).await).await, "2");
        assert_eq!(body(call(&app, request("GET", "/me", session)).await).await, "alice");
    }
    assert_eq!(store.calls(Operation::SaveSession), 2, "reading, or writing the same value, saves nothing");
    assert_eq!(body(call(&app, request("GET", "/visit", "")).await).await, "1", "anonymous: no session");
    assert_eq!(store.calls(Operation::SaveSession), 2);
}

#[tokio::test]
async fn the_client_ip_is_the_peer_or_a_trusted_header() {
    let peer = SocketAddr::from(([192, 0, 2, 7], 40000));
    let with_peer = |mut request: Request| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request
            .headers_mut()
            .insert("x-forwarded-for", HeaderValue::from_static("203.0.113.1, 198.51.100.9"));
        request
    };
    for (trusted, expected) in [(false, "192.0.2.7"), (true, "198.51.100.9")] {
        let store = store();
        let app = app(store, |layer| {
            if trusted {
                layer.trusted_client_ip_header(header::HeaderName::from_static("x-forwarded-for"))
            } else {
                layer
            }
        });
        let response = call(&app, with_peer(request("POST", "/login", ""))).await;
        let cookies = cookies_of(&response);
        let listed = body(call(&app, request("GET", "/devices", &cookies)).await).await;
        assert_eq!(listed, expected, "trusted header: {trusted}");
    }
}
