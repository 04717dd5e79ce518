//! The adapter itself, request by request with `tower::ServiceExt::oneshot`
//! on a tiny router over a memory store that counts its calls and can be
//! taken down: laziness, visitors' sessions, the guards and their `next`,
//! store outages, caching headers, the test helpers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use expected_axum::expected_core::{Config, Expected, ManualClock, Username};
use expected_axum::testing::login_as;
use expected_axum::{
    Auth, AuthMethod, AuthUser, Error, ExpectedLayer, FreshLogin, FreshUser, LoginRequired, OnStoreError,
    Session, Via,
};
use expected_conformance::{Flaky, Operation};
use expected_store_memory::MemoryStore;
use serde_json::{Value, json};
use tower::ServiceExt as _;

// ------------------------------------------------------------------ the app

fn alice() -> Username {
    match Username::new("alice") {
        Ok(user) => user,
        Err(error) => panic!("{error}"),
    }
}

async fn login(auth: Auth) -> Result<StatusCode, Error> {
    auth.register(&alice(), true).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn login_session_only(auth: Auth) -> Result<StatusCode, Error> {
    auth.register(&alice(), false).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(auth: Auth) -> Result<Json<Value>, Error> {
    let user = auth.require_user().await?;
    Ok(Json(
        json!({ "user": user.username.as_str(), "via": user.via.as_str(), "method": user.method.as_str() }),
    ))
}

/// Swallows the store error: the layer still answers 503 under the default
/// policy.
async fn whoami(auth: Auth) -> String {
    match auth.user().await {
        Ok(Some(user)) => user.username.to_string(),
        Ok(None) => "visitor".to_owned(),
        Err(_) => "store down, shown as a visitor".to_owned(),
    }
}

async fn api_user(AuthUser(user): AuthUser) -> String {
    user.username.to_string()
}

async fn api_fresh(FreshUser(user): FreshUser) -> String {
    user.username.to_string()
}

async fn account(LoginRequired(user): LoginRequired) -> String {
    format!("account of {}", user.username)
}

async fn change_password(FreshLogin(user): FreshLogin) -> String {
    format!("new password for {}", user.username)
}

async fn confirm(auth: Auth) -> Result<StatusCode, Error> {
    auth.confirm_password().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn is_fresh(auth: Auth) -> Result<Json<bool>, Error> {
    Ok(Json(auth.is_fresh(Duration::from_secs(600)).await?))
}

async fn cart(session: Session) -> Result<Json<Option<u32>>, Error> {
    Ok(Json(session.get("cart").await?))
}

async fn add_to_cart(session: Session) -> Result<Json<u32>, Error> {
    let items: u32 = session.get("cart").await?.unwrap_or(0) + 1;
    session.insert("cart", items).await?;
    Ok(Json(items))
}

async fn keep_cart(session: Session) -> Result<Json<Option<u32>>, Error> {
    let items: Option<u32> = session.get("cart").await?;
    if let Some(items) = items {
        // Writing the value it already has is no change.
        session.insert("cart", items).await?;
    }
    Ok(Json(items))
}

async fn big(session: Session) -> Result<StatusCode, Error> {
    session.insert("blob", "x".repeat(4096)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn devices(auth: Auth) -> Result<Json<Vec<Option<String>>>, Error> {
    let devices = auth.devices().await?;
    Ok(Json(devices.iter().map(|device| device.ip.map(|ip| ip.to_string())).collect()))
}

async fn logout(auth: Auth) -> Result<StatusCode, Error> {
    auth.logout().await?;
    Ok(StatusCode::NO_CONTENT)
}

fn routes() -> Router {
    let pages = Router::new().route("/account", get(account));
    Router::new()
        .route("/plain", get(|| async { "plain" }))
        .route("/login", post(login))
        .route("/login-session", post(login_session_only))
        .route("/me", get(me))
        .route("/whoami", get(whoami))
        .route("/api/user", get(api_user))
        .route("/api/fresh", get(api_fresh))
        .route("/account", get(account))
        .route("/account/password", get(change_password))
        .route("/confirm", post(confirm))
        .route("/is-fresh", get(is_fresh))
        .route("/cart", get(cart).post(add_to_cart).put(keep_cart))
        .route("/big", post(big))
        .route("/devices", get(devices))
        .route("/logout", post(logout))
        .nest("/app", pages)
}

fn config() -> Config {
    match Config::builder().secure(false).grace_period(Duration::ZERO).max_session_data_bytes(1024).build() {
        Ok(config) => config,
        Err(error) => panic!("{error}"),
    }
}

/// A memory store that can be taken down and counts the calls it gets.
fn store() -> Arc<Flaky<MemoryStore>> {
    Arc::new(Flaky::new(MemoryStore::new()))
}

fn layer(store: &Arc<Flaky<MemoryStore>>) -> ExpectedLayer {
    ExpectedLayer::new(Expected::new(store.clone(), config()))
}

fn app(layer: ExpectedLayer) -> Router {
    app_with(Router::new(), layer)
}

/// The routes and `extra`, under the layer.
fn app_with(extra: Router, layer: ExpectedLayer) -> Router {
    routes().merge(extra).layer(layer)
}

fn store_calls(store: &Flaky<MemoryStore>) -> usize {
    store.total_calls()
}

fn writes(store: &Flaky<MemoryStore>) -> usize {
    [Operation::CreateSession, Operation::SaveSession, Operation::CreateLogin, Operation::CreateRemembered]
        .iter()
        .map(|operation| store.calls(*operation))
        .sum()
}

// ------------------------------------------------------------- the browser

/// The cookies a browser would hold, by name.
#[derive(Debug, Default, Clone)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    /// Applies a response's `Set-Cookie`s.
    fn absorb(&mut self, response: &Response) {
        for header in response.headers().get_all(header::SET_COOKIE) {
            let text = header.to_str().unwrap_or_default();
            let pair = text.split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if value.is_empty() {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn header(&self) -> String {
        self.0.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ")
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn without(&self, name: &str) -> Self {
        let mut jar = self.clone();
        jar.0.remove(name);
        jar
    }

    fn request(&self, method: &str, path: &str) -> Request {
        request(method, path, &self.header())
    }
}

fn request(method: &str, path: &str, cookies: &str) -> Request {
    let mut builder = Request::builder().method(method).uri(path);
    if !cookies.is_empty() {
        builder = builder.header(header::COOKIE, cookies);
    }
    match builder.body(Body::empty()) {
        Ok(request) => request,
        Err(error) => panic!("{method} {path}: {error}"),
    }
}

async fn call(app: &Router, request: Request) -> Response {
    match app.clone().oneshot(request).await {
        Ok(response) => response,
        Err(error) => match error {},
    }
}

/// Sends the request with the jar's cookies and absorbs the answer's.
async fn send(app: &Router, jar: &mut Jar, method: &str, path: &str) -> Response {
    let response = call(app, jar.request(method, path)).await;
    jar.absorb(&response);
    response
}

async fn body(response: Response) -> String {
    match to_bytes(response.into_body(), 1 << 20).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(error) => panic!("{error}"),
    }
}

async fn json_body(response: Response) -> Value {
    serde_json::from_str(&body(response).await).unwrap_or(Value::Null)
}

fn set_cookies(response: &Response) -> Vec<String> {
    let values = response.headers().get_all(header::SET_COOKIE).iter();
    values.filter_map(|value| value.to_str().ok()).map(str::to_owned).collect()
}

fn header_of(response: &Response, name: header::HeaderName) -> Option<&str> {
    response.headers().get(name).and_then(|value| value.to_str().ok())
}

fn assert_not_cacheable(response: &Response, what: &str) {
    assert_eq!(header_of(response, header::CACHE_CONTROL), Some("no-store"), "{what}");
    assert_eq!(header_of(response, header::VARY), Some("Cookie"), "{what}");
}

async fn logged_in(app: &Router) -> Jar {
    let mut jar = Jar::default();
    let response = send(app, &mut jar, "POST", "/login").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(jar.get("session").is_some() && jar.get("remember_me").is_some(), "{jar:?}");
    jar
}

// ------------------------------------------------------------------ laziness

#[tokio::test]
async fn a_route_without_extractors_costs_no_store_call_and_no_cookie() {
    let store = store();
    let app = app(layer(&store));
    let jar = logged_in(&app).await;
    let before = store_calls(&store);
    for presented in [jar.clone(), jar.without("session"), Jar::default()] {
        let response = call(&app, presented.request("GET", "/plain")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(set_cookies(&response).is_empty(), "{:?}", set_cookies(&response));
        assert_eq!(header_of(&response, header::CACHE_CONTROL), None);
        assert_eq!(header_of(&response, header::VARY), None);
        assert_eq!(body(response).await, "plain");
    }
    assert_eq!(store_calls(&store), before, "not one store call, even with both cookies");
    // An outage nobody meets is no outage.
    store.set_down(true);
    let response = call(&app, jar.without("session").request("GET", "/plain")).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn extracting_the_handles_costs_nothing_until_asked() {
    let store = store();
    let extra = Router::new().route("/handles", get(|_: Auth, _: Session| async { "unused" }));
    let app = app_with(extra, layer(&store));
    let jar = logged_in(&app).await;
    let before = store_calls(&store);
    let response = call(&app, jar.request("GET", "/handles")).await;
    assert!(set_cookies(&response).is_empty());
    assert_eq!(header_of(&response, header::CACHE_CONTROL), None);
    assert_eq!(store_calls(&store), before);
}

// ------------------------------------------------------------------ visitors

#[tokio::test]
async fn a_visitor_who_only_reads_gets_no_cookie_and_costs_no_write() {
    let store = store();
    let app = app(layer(&store));
    let response = call(&app, request("GET", "/cart", "")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(set_cookies(&response).is_empty());
    assert_not_cacheable(&response, "authentication ran");
    assert_eq!(json_body(response).await, Value::Null);
    let response = call(&app, request("GET", "/whoami", "")).await;
    assert_eq!(body(response).await, "visitor");
    assert_eq!(writes(&store), 0);
}

#[tokio::test]
async fn a_visitor_who_writes_gets_a_session_and_the_data_back() {
    let store = store();
    let app = app(layer(&store));
    let mut jar = Jar::default();
    let response = send(&app, &mut jar, "POST", "/cart").await;
    assert_eq!(json_body(response).await, json!(1));
    assert!(jar.get("session").is_some() && jar.get("remember_me").is_none(), "{jar:?}");
    assert_eq!(store.calls(Operation::CreateSession), 1);

    let response = send(&app, &mut jar, "POST", "/cart").await;
    assert!(set_cookies(&response).is_empty(), "the same session: no new cookie");
    assert_eq!(json_body(response).await, json!(2));
    let response = send(&app, &mut jar, "GET", "/cart").await;
    assert_eq!(json_body(response).await, json!(2));
    let response = send(&app, &mut jar, "GET", "/whoami").await;
    assert_eq!(body(response).await, "visitor", "data, but nobody logged in");
    assert_eq!(store.calls(Operation::CreateSession), 1);
}

#[tokio::test]
async fn a_password_login_carries_the_data_under_a_new_session_cookie() {
    let store = store();
    let app = app(layer(&store));
    let mut jar = Jar::default();
    send(&app, &mut jar, "POST", "/cart").await;
    send(&app, &mut jar, "POST", "/cart").await;
    let visitor = jar.clone();
    let anonymous_session = jar.get("session").map(str::to_owned);

    let response = send(&app, &mut jar, "POST", "/login").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_ne!(jar.get("session").map(str::to_owned), anonymous_session, "a new id: no fixation");
    let response = send(&app, &mut jar, "GET", "/cart").await;
    assert_eq!(json_body(response).await, json!(2), "the cart survived the login");
    let response = send(&app, &mut jar, "GET", "/me").await;
    assert_eq!(json_body(response).await, json!({ "user": "alice", "via": "session", "method": "password" }));

    let response = call(&app, visitor.request("GET", "/cart")).await;
    assert_eq!(json_body(response).await, Value::Null, "the visitor's session is gone");
}

#[tokio::test]
async fn session_data_is_saved_only_when_changed() {
    let store = store();
    let app = app(layer(&store));
    let mut jar = logged_in(&app).await.without("remember_me");
    assert_eq!(store.calls(Operation::SaveSession), 0, "logging in saves no data");
    send(&app, &mut jar, "POST", "/cart").await;
    assert_eq!(store.calls(Operation::SaveSession), 1);
    for _ in 0..3 {
        let response = send(&app, &mut jar, "PUT", "/cart").await;
        assert_eq!(json_body(response).await, json!(1));
    }
    assert_eq!(store.calls(Operation::SaveSession), 1, "reading, or writing the same value, saves nothing");
    send(&app, &mut jar, "POST", "/cart").await;
    assert_eq!(store.calls(Operation::SaveSession), 2);
}

#[tokio::test]
async fn session_data_over_the_limit_is_the_error_response() {
    let store = store();
    let app = app(layer(&store));
    let mut jar = Jar::default();
    let response = send(&app, &mut jar, "POST", "/big").await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(header_of(&response, header::CONTENT_TYPE), Some("application/json"));
    assert!(set_cookies(&response).is_empty(), "nothing written, no session");
    assert_eq!(body(response).await, r#"{"error":"session_too_large"}"#);
    assert_eq!(writes(&store), 0);
}

// -------------------------------------------------------------- API guards

#[tokio::test]
async fn auth_user_refuses_visitors_with_401() {
    let store = store();
    let app = app(layer(&store));
    for path in ["/api/user", "/api/fresh", "/me"] {
        let response = call(&app, request("GET", path, "")).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(header_of(&response, header::CONTENT_TYPE), Some("application/json"));
        assert_not_cacheable(&response, path);
        assert_eq!(body(response).await, r#"{"error":"unauthenticated"}"#, "{path}");
    }
    let jar = logged_in(&app).await;
    let response = call(&app, jar.request("GET", "/api/user")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_not_cacheable(&response, "a session hit depends on the cookie");
    assert_eq!(body(response).await, "alice");
}

#[tokio::test]
async fn the_theft_request_answers_unexpected_token() {
    let store = store();
    let app = app(layer(&store));
    let stolen = logged_in(&app).await.without("session");
    let mut victim = stolen.clone();
    let response = send(&app, &mut victim, "GET", "/api/user").await;
    assert_eq!(response.status(), StatusCode::OK, "the cookie login rotates");

    let mut thief = stolen;
    let response = send(&app, &mut thief, "GET", "/api/user").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(thief.0.is_empty(), "both cookies cleared: {thief:?}");
    assert_eq!(body(response).await, r#"{"error":"unexpected_token"}"#);

    let response = call(&app, victim.request("GET", "/api/user")).await;
    assert_eq!(body(response).await, r#"{"error":"unauthenticated"}"#, "every login revoked");
}

#[tokio::test]
async fn freshness_is_false_after_a_cookie_login_and_true_after_confirming() {
    let store = store();
    let app = app(layer(&store));
    let mut jar = logged_in(&app).await;
    let response = send(&app, &mut jar, "GET", "/is-fresh").await;
    assert_eq!(json_body(response).await, json!(true), "a password login is fresh");

    let mut jar = jar.without("session");
    let response = send(&app, &mut jar, "GET", "/me").await;
    assert_eq!(
        json_body(response).await,
        json!({ "user": "alice", "via": "cookie", "method": "remembered" })
    );
    let response = send(&app, &mut jar, "GET", "/is-fresh").await;
    assert_eq!(json_body(response).await, json!(false), "the cookie logged in, not a password");
    let response = send(&app, &mut jar, "GET", "/api/fresh").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(body(response).await, r#"{"error":"reauthentication_required"}"#);

    let response = send(&app, &mut jar, "POST", "/confirm").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = send(&app, &mut jar, "GET", "/is-fresh").await;
    assert_eq!(json_body(response).await, json!(true));
    let response = send(&app, &mut jar, "GET", "/api/fresh").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body(response).await, "alice");
}

#[tokio::test]
async fn freshness_wears_off_after_fresh_for() {
    let store = store();
    let clock = ManualClock::starting_now();
    let engine = Expected::new(store.clone(), config()).with_clock(clock.clone());
    let app = app(ExpectedLayer::new(engine).fresh_for(Duration::from_secs(60)));
    let mut jar = logged_in(&app).await;
    assert_eq!(call(&app, jar.request("GET", "/api/fresh")).await.status(), StatusCode::OK);
    clock.advance(expected_axum::expected_core::time::Duration::seconds(61));
    let response = send(&app, &mut jar, "GET", "/api/fresh").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = send(&app, &mut jar, "GET", "/account/password").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(header_of(&response, header::LOCATION), Some("/confirm-password?next=%2Faccount%2Fpassword"));
    assert_eq!(call(&app, jar.request("GET", "/api/user")).await.status(), StatusCode::OK, "still logged in");
}

// ------------------------------------------------------------- page guards

#[tokio::test]
async fn login_required_sends_visitors_to_the_login_page_with_next() {
    let store = store();
    let app = app(layer(&store));
    for (path, location) in [
        ("/account", "/login?next=%2Faccount"),
        ("/account?tab=devices&x=%2F", "/login?next=%2Faccount%3Ftab%3Ddevices%26x%3D%252F"),
        ("/app/account", "/login?next=%2Fapp%2Faccount"),
        ("/account/password", "/login?next=%2Faccount%2Fpassword"),
    ] {
        let response = call(&app, request("GET", path, "")).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(header_of(&response, header::LOCATION), Some(location), "{path}");
        assert_not_cacheable(&response, path);
    }
    let jar = logged_in(&app).await;
    let response = call(&app, jar.request("GET", "/account")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body(response).await, "account of alice");
}

#[tokio::test]
async fn next_is_only_ever_a_same_site_path() {
    let store = store();
    // Every path is guarded, whatever the request line held.
    let guarded = Router::new().fallback(account).layer(layer(&store));
    for (target, location) in [
        ("//evil.com", "/login?next=%2F"),
        ("//evil.com/account", "/login?next=%2F"),
        ("/\\evil.com", "/login?next=%2F"),
        ("/%5Cevil.com", "/login?next=%2F"),
        ("/%2F%2Fevil.com", "/login?next=%2F"),
        ("/%2f/evil.com", "/login?next=%2F"),
        ("/%0d%0aSet-Cookie:%20a=b", "/login?next=%2F"),
        ("/account?%0D%0ALocation:%20https://evil.com", "/login?next=%2F"),
        ("/%09/evil.com", "/login?next=%2F"),
        ("javascript:alert(1)", "/login?next=%2F"),
        // Absolute-form: only the path is kept, so it stays on this site.
        ("https://evil.com/account", "/login?next=%2Faccount"),
        // Local paths that merely mention another site are fine, encoded.
        ("/account//evil.com", "/login?next=%2Faccount%2F%2Fevil.com"),
        ("/account?next=https://evil.com", "/login?next=%2Faccount%3Fnext%3Dhttps%3A%2F%2Fevil.com"),
    ] {
        let request = match Request::builder().uri(target).body(Body::empty()) {
            Ok(request) => request,
            Err(error) => panic!("{target}: {error}"),
        };
        let response = call(&guarded, request).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{target}");
        assert_eq!(header_of(&response, header::LOCATION), Some(location), "{target}");
    }
    for attack in
        ["//evil.com", "/\\evil.com", "https://evil.com", "javascript:alert(1)", "/\r\n/x", "/\t/x", ""]
    {
        assert_eq!(expected_axum::safe_next(attack), "/", "{attack:?}");
    }
    assert_eq!(expected_axum::safe_next("/account?tab=2"), "/account?tab=2");
}

#[tokio::test]
async fn fresh_login_sends_stale_users_to_confirm_and_visitors_to_login() {
    let store = store();
    let app = app(layer(&store));
    let response = call(&app, request("GET", "/account/password?step=2", "")).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(header_of(&response, header::LOCATION), Some("/login?next=%2Faccount%2Fpassword%3Fstep%3D2"));

    let mut jar = logged_in(&app).await;
    let response = send(&app, &mut jar, "GET", "/account/password").await;
    assert_eq!(response.status(), StatusCode::OK, "just logged in with the password");

    let mut jar = jar.without("session");
    let response = send(&app, &mut jar, "GET", "/account/password?step=2").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = "/confirm-password?next=%2Faccount%2Fpassword%3Fstep%3D2";
    assert_eq!(header_of(&response, header::LOCATION), Some(location));
    assert_eq!(set_cookies(&response).len(), 2, "the cookie login's rotation still reaches the browser");
    assert_not_cacheable(&response, "redirect");

    send(&app, &mut jar, "POST", "/confirm").await;
    let response = send(&app, &mut jar, "GET", "/account/password").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body(response).await, "new password for alice");
}

#[tokio::test]
async fn the_guard_pages_are_configurable() {
    let store = store();
    let app = app(layer(&store).login_page("/sign-in?lang=fr").confirm_password_page("/sudo"));
    let response = call(&app, request("GET", "/account", "")).await;
    assert_eq!(header_of(&response, header::LOCATION), Some("/sign-in?lang=fr&next=%2Faccount"));
    let mut jar = logged_in(&app).await.without("session");
    let response = send(&app, &mut jar, "GET", "/account/password").await;
    assert_eq!(header_of(&response, header::LOCATION), Some("/sudo?next=%2Faccount%2Fpassword"));
}

#[tokio::test]
async fn the_theft_request_is_sent_to_the_login_page() {
    let store = store();
    let app = app(layer(&store));
    let stolen = logged_in(&app).await.without("session");
    let mut victim = stolen.clone();
    send(&app, &mut victim, "GET", "/account").await;
    let mut thief = stolen;
    let response = send(&app, &mut thief, "GET", "/account").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(header_of(&response, header::LOCATION), Some("/login?next=%2Faccount"));
    assert!(thief.0.is_empty(), "both cookies cleared");
}

// ------------------------------------------------------------ store outage

#[tokio::test]
async fn a_store_outage_is_503_where_it_is_met_with_no_cookie_change() {
    let store = store();
    let app = app(layer(&store));
    let jar = logged_in(&app).await;
    store.set_down(true);
    for presented in [jar.clone(), jar.without("session"), jar.without("remember_me")] {
        // The extractor's rejection, the handler's `?`, and a handler that
        // swallowed the error: all 503.
        for path in ["/api/user", "/api/fresh", "/account", "/account/password", "/me", "/whoami", "/cart"] {
            let response = call(&app, presented.request("GET", path)).await;
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path} {presented:?}");
            assert!(set_cookies(&response).is_empty(), "cookies untouched: {path}");
            assert_eq!(header_of(&response, header::CONTENT_TYPE), Some("application/json"));
            assert_not_cacheable(&response, path);
            assert_eq!(body(response).await, r#"{"error":"store_unavailable"}"#, "{path}");
        }
    }
    store.set_down(false);
    let response = call(&app, jar.without("session").request("GET", "/api/user")).await;
    assert_eq!(response.status(), StatusCode::OK, "the same auth cookie still works");
}

#[tokio::test]
async fn a_write_that_could_not_be_saved_is_503_not_a_success() {
    let store = store();
    let app = app(layer(&store));
    store.set_down(true);
    let response = call(&app, request("POST", "/cart", "")).await;
    assert_eq!(
        response.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "the visitor's first write was not stored"
    );
    assert!(set_cookies(&response).is_empty(), "no session cookie for a session that does not exist");
    assert_eq!(body(response).await, r#"{"error":"store_unavailable"}"#);
}

#[tokio::test]
async fn a_save_failing_after_a_cookie_login_still_hands_out_the_rotated_cookie() {
    let store = store();
    let outage = store.clone();
    let extra = Router::new().route(
        "/rotate-then-outage",
        post(move |session: Session| async move {
            // The cookie login (a rotation) happens here…
            let _ = session.get::<u32>("cart").await;
            // …and the store goes away before the data is saved.
            outage.set_down(true);
            let _ = session.insert("cart", 9).await;
            StatusCode::NO_CONTENT
        }),
    );
    let app = app_with(extra, layer(&store));
    let jar = logged_in(&app).await;
    let old_auth = jar.get("remember_me").map(str::to_owned);
    let response = call(&app, jar.without("session").request("POST", "/rotate-then-outage")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "the write was not stored");
    let mut after = jar.without("session");
    after.absorb(&response);
    assert!(
        after.get("remember_me").is_some() && after.get("remember_me").map(str::to_owned) != old_auth,
        "the rotated auth cookie reaches the client, or its next request would look like a replay"
    );
    store.set_down(false);
    let response = call(&app, after.without("session").request("GET", "/api/user")).await;
    assert_eq!(response.status(), StatusCode::OK, "the rotated cookie logs in");
}

#[tokio::test]
async fn a_store_outage_can_leave_the_handler_its_answer() {
    let store = store();
    let app = app(layer(&store).on_store_error(OnStoreError::Anonymous));
    let jar = logged_in(&app).await;
    store.set_down(true);
    let response = call(&app, jar.request("GET", "/whoami")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(set_cookies(&response).is_empty(), "cookies untouched");
    assert_eq!(body(response).await, "store down, shown as a visitor");
    let response = call(&app, jar.request("GET", "/api/user")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "the guards see a visitor");
    assert!(set_cookies(&response).is_empty());
    let response = call(&app, jar.request("GET", "/account")).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let response = call(&app, jar.request("GET", "/me")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "the handler's own `?` stands");
    store.set_down(false);
    assert_eq!(body(call(&app, jar.request("GET", "/whoami")).await).await, "alice");
}

// -------------------------------------------------------------- the layer

#[tokio::test]
async fn responses_that_set_cookies_or_ran_authentication_are_not_cached() {
    let store = store();
    let app = app(layer(&store));
    let response = call(&app, request("POST", "/login", "")).await;
    assert_not_cacheable(&response, "login");
    let cookie =
        set_cookies(&response).into_iter().find(|c| c.starts_with("remember_me=")).unwrap_or_default();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(cookie.contains(attribute), "{attribute} missing from {cookie}");
    }
    let response = call(&app, request("GET", "/whoami", "session=garbage")).await;
    assert!(!set_cookies(&response).is_empty(), "a bad cookie is cleared");
    assert_not_cacheable(&response, "cleared cookie");

    // A Vary the handler set is kept, and Cookie is not listed twice.
    let extra = Router::new().route(
        "/vary",
        get(|auth: Auth| async move {
            let _ = auth.user().await;
            ([(header::VARY, "Accept-Encoding"), (header::CACHE_CONTROL, "public, max-age=60")], "x")
        }),
    );
    let app = app_with(extra, layer(&store));
    let response = call(&app, request("GET", "/vary", "")).await;
    let vary: Vec<_> =
        response.headers().get_all(header::VARY).iter().filter_map(|v| v.to_str().ok()).collect();
    assert_eq!(vary, ["Accept-Encoding", "Cookie"]);
    assert_eq!(header_of(&response, header::CACHE_CONTROL), Some("no-store"));
}

#[tokio::test]
async fn an_oversized_cookie_header_is_a_visitor() {
    let store = store();
    let app = app(layer(&store));
    let jar = logged_in(&app).await;
    let padded = format!("pad={}; {}", "x".repeat(20 * 1024), jar.header());
    let response = call(&app, request("GET", "/api/user", &padded)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookies(&response).is_empty(), "refused unread, nothing cleared");
    assert_eq!(body(response).await, r#"{"error":"unauthenticated"}"#);
    assert_eq!(body(call(&app, jar.request("GET", "/api/user")).await).await, "alice");
}

#[tokio::test]
async fn extractors_without_the_layer_are_a_500() {
    let app = routes();
    for path in ["/me", "/api/user", "/api/fresh", "/account", "/account/password", "/cart"] {
        let response = call(&app, request("GET", path, "")).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert!(body(response).await.contains("ExpectedLayer"), "{path}");
    }
}

#[tokio::test]
async fn logout_clears_both_cookies() {
    let store = store();
    let app = app(layer(&store));
    let mut jar = logged_in(&app).await;
    let old = jar.clone();
    let response = send(&app, &mut jar, "POST", "/logout").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(jar.0.is_empty(), "{jar:?}");
    let response = call(&app, old.without("session").request("GET", "/api/user")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "the old auth cookie is dead");
}

#[tokio::test]
async fn the_client_ip_is_the_peer_or_a_trusted_header() {
    let peer = SocketAddr::from(([192, 0, 2, 7], 40000));
    for (trusted, expected) in [(false, "192.0.2.7"), (true, "198.51.100.9")] {
        let store = store();
        let mut layer = layer(&store);
        if trusted {
            layer = layer.trusted_client_ip_header(header::HeaderName::from_static("x-forwarded-for"));
        }
        let app = app(layer);
        let mut login = request("POST", "/login", "");
        login.extensions_mut().insert(ConnectInfo(peer));
        login.headers_mut().insert("x-forwarded-for", HeaderValue::from_static("203.0.113.1, 198.51.100.9"));
        let mut jar = Jar::default();
        jar.absorb(&call(&app, login).await);
        let listed = json_body(call(&app, jar.request("GET", "/devices")).await).await;
        assert_eq!(listed, json!([expected]), "trusted header: {trusted}");
    }
}

// ------------------------------------------------------------- test helpers

#[tokio::test]
async fn login_as_logs_in_through_the_layers_engine() -> Result<(), Box<dyn std::error::Error>> {
    let store = store();
    let layer = layer(&store);
    for remember in [true, false] {
        let login = login_as(layer.engine(), &alice(), remember).await?;
        assert_eq!(login.auth_cookie().is_some(), remember);
        assert_eq!(login.serial().is_some(), remember);
        assert!(login.cookie_header().starts_with(&format!("session={}", login.session_cookie())));
        let app = app(layer.clone());
        let response = call(&app, request("GET", "/me", &login.cookie_header())).await;
        assert_eq!(response.status(), StatusCode::OK);
        let expected = json!({ "user": "alice", "via": "session", "method": "password" });
        assert_eq!(json_body(response).await, expected);
        if let Some(auth) = login.auth_cookie() {
            let response = call(&app, request("GET", "/me", &format!("remember_me={auth}"))).await;
            assert_eq!(json_body(response).await["via"], json!("cookie"), "the auth cookie works alone");
        }
    }
    // Through any store: the engine can be the app's, or one of the test's.
    let engine = Expected::new(MemoryStore::new(), config());
    let login = login_as(&engine, &alice(), true).await?;
    assert!(login.cookie_header().contains("; remember_me="));
    Ok(())
}

#[tokio::test]
async fn the_current_user_says_how_it_was_authenticated() -> Result<(), Box<dyn std::error::Error>> {
    let store = store();
    let layer = layer(&store);
    let login = login_as(layer.engine(), &alice(), true).await?;
    let extra = Router::new().route(
        "/how",
        get(|AuthUser(user): AuthUser| async move {
            let password = user.method == AuthMethod::Password;
            let session = user.via == Via::Session;
            format!(
                "{} {} {} {password} {session}",
                user.via.as_str(),
                user.method.as_str(),
                user.login.is_some()
            )
        }),
    );
    let app = app_with(extra, layer);
    let response = call(&app, request("GET", "/how", &login.cookie_header())).await;
    assert_eq!(body(response).await, "session password true true true");
    let remember = format!("remember_me={}", login.auth_cookie().unwrap_or_default());
    let response = call(&app, request("GET", "/how", &remember)).await;
    assert_eq!(body(response).await, "cookie remembered true false false");
    Ok(())
}

// ------------------------------------------------------ repeated cookie names

#[tokio::test]
async fn every_value_of_a_repeated_cookie_name_is_judged() {
    let store = store();
    let app = app(layer(&store));
    let jar = logged_in(&app).await;
    let good = jar.get("remember_me").unwrap_or_default().to_owned();

    // A sibling subdomain's garbage first (a longer Path is sent first).
    let cookies = format!("remember_me=garbage; remember_me={good}");
    let response = call(&app, request("GET", "/me", &cookies)).await;
    let set = set_cookies(&response);
    assert_eq!(json_body(response).await["via"], json!("cookie"), "{set:?}");
    assert!(
        set.iter().filter(|c| c.starts_with("remember_me=")).all(|c| !c.starts_with("remember_me=;")),
        "the good cookie is replaced, never cleared: {set:?}"
    );

    // A dead session before the live one is still a session hit. (The
    // cookie login above ended the session `jar` held: log in afresh.)
    let jar = logged_in(&app).await;
    let mut dead = logged_in(&app).await;
    let dead_session = dead.get("session").unwrap_or_default().to_owned();
    send(&app, &mut dead, "POST", "/logout").await;
    let cookies = format!("session={dead_session}; session={}", jar.get("session").unwrap_or_default());
    let response = call(&app, request("GET", "/me", &cookies)).await;
    assert!(set_cookies(&response).is_empty(), "{:?}", set_cookies(&response));
    assert_eq!(json_body(response).await["via"], json!("session"));
}

#[tokio::test]
async fn after_a_domain_change_the_host_only_twin_is_cleared_and_the_user_stays() {
    let store = store();
    let config = Config::builder()
        .secure(false)
        .grace_period(Duration::ZERO)
        .domain(Some("example.com".into()))
        .build()
        .unwrap_or_else(|error| panic!("{error}"));
    let app = app(ExpectedLayer::new(Expected::new(store.clone(), config)));
    // The host-only cookie from before the deploy; the cookie login sets the
    // Domain one next to it, and the browser sends both, the older first.
    let old = logged_in(&app).await.get("remember_me").unwrap_or_default().to_owned();
    let response = call(&app, request("GET", "/me", &format!("remember_me={old}"))).await;
    let mut current = Jar::default();
    current.absorb(&response);
    let current = current.get("remember_me").unwrap_or_default().to_owned();
    assert_ne!(current, old);

    let response =
        call(&app, request("GET", "/me", &format!("remember_me={old}; remember_me={current}"))).await;
    let set = set_cookies(&response);
    assert_eq!(response.status(), StatusCode::OK, "not a theft: {set:?}");
    let auth: Vec<&String> = set.iter().filter(|c| c.starts_with("remember_me=")).collect();
    assert_eq!(auth.len(), 2, "{set:?}");
    assert!(
        auth[0].starts_with("remember_me=;") && !auth[0].contains("Domain"),
        "host-only removal: {set:?}"
    );
    assert!(!auth[1].starts_with("remember_me=;") && auth[1].contains("Domain=example.com"), "{set:?}");
    assert_eq!(json_body(response).await["via"], json!("cookie"));
}
