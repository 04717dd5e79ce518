//! The middleware and extractors, end to end through actix-web's test
//! harness, over a memory store that counts its calls and can be taken down:
//! laziness, visitors' sessions, the guards and their `next`, store outages,
//! caching headers, the test helpers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse, Transform};
use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, HeaderName, LOCATION, SET_COOKIE, VARY};
use actix_web::{App, HttpResponse, test, web};
use expected_actix::expected_core::{Config, Expected, ManualClock, Username};
use expected_actix::testing::login_as;
use expected_actix::{
    Auth, AuthMethod, AuthUser, Error, ExpectedMiddleware, FreshLogin, FreshUser, LoginRequired,
    OnStoreError, Session, Via,
};
use expected_conformance::{Flaky, Operation};
use expected_store_memory::MemoryStore;
use serde_json::{Value, json};

type TestResult = Result<(), Box<dyn std::error::Error>>;

// ------------------------------------------------------------------ the app

fn alice() -> Username {
    match Username::new("alice") {
        Ok(user) => user,
        Err(error) => panic!("{error}"),
    }
}

async fn login(auth: Auth) -> Result<HttpResponse, Error> {
    auth.register(&alice(), true).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn login_session_only(auth: Auth) -> Result<HttpResponse, Error> {
    auth.register(&alice(), false).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn me(auth: Auth) -> Result<HttpResponse, Error> {
    let user = auth.require_user().await?;
    let body =
        json!({ "user": user.username.as_str(), "via": user.via.as_str(), "method": user.method.as_str() });
    Ok(HttpResponse::Ok().json(body))
}

/// Swallows the store error: the middleware still answers 503 under the
/// default policy.
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

async fn confirm(auth: Auth) -> Result<HttpResponse, Error> {
    auth.confirm_password().await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn is_fresh(auth: Auth) -> Result<HttpResponse, Error> {
    Ok(HttpResponse::Ok().json(auth.is_fresh(Duration::from_secs(600)).await?))
}

async fn cart(session: Session) -> Result<HttpResponse, Error> {
    let items: Option<u32> = session.get("cart").await?;
    Ok(HttpResponse::Ok().json(items))
}

async fn add_to_cart(session: Session) -> Result<HttpResponse, Error> {
    let items: u32 = session.get("cart").await?.unwrap_or(0) + 1;
    session.insert("cart", items).await?;
    Ok(HttpResponse::Ok().json(items))
}

async fn keep_cart(session: Session) -> Result<HttpResponse, Error> {
    let items: Option<u32> = session.get("cart").await?;
    if let Some(items) = items {
        // Writing the value it already has is no change.
        session.insert("cart", items).await?;
    }
    Ok(HttpResponse::Ok().json(items))
}

async fn big(session: Session) -> Result<HttpResponse, Error> {
    session.insert("blob", "x".repeat(4096)).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn devices(auth: Auth) -> Result<HttpResponse, Error> {
    let devices = auth.devices().await?;
    let ips: Vec<_> = devices.iter().map(|device| device.ip.map(|ip| ip.to_string())).collect();
    Ok(HttpResponse::Ok().json(ips))
}

async fn logout(auth: Auth) -> Result<HttpResponse, Error> {
    auth.logout().await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn how(AuthUser(user): AuthUser) -> String {
    let password = user.method == AuthMethod::Password;
    let session = user.via == Via::Session;
    format!("{} {} {} {password} {session}", user.via.as_str(), user.method.as_str(), user.login.is_some())
}

async fn vary(auth: Auth) -> HttpResponse {
    let _ = auth.user().await;
    HttpResponse::Ok()
        .insert_header((VARY, "Accept-Encoding"))
        .insert_header((CACHE_CONTROL, "public, max-age=60"))
        .body("x")
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/plain", web::get().to(|| async { "plain" }))
        .route("/handles", web::get().to(|_: Auth, _: Session| async { "unused" }))
        .route("/login", web::post().to(login))
        .route("/login-session", web::post().to(login_session_only))
        .route("/me", web::get().to(me))
        .route("/whoami", web::get().to(whoami))
        .route("/api/user", web::get().to(api_user))
        .route("/api/fresh", web::get().to(api_fresh))
        .route("/account", web::get().to(account))
        .route("/account/password", web::get().to(change_password))
        .route("/confirm", web::post().to(confirm))
        .route("/is-fresh", web::get().to(is_fresh))
        .route("/cart", web::get().to(cart))
        .route("/cart", web::post().to(add_to_cart))
        .route("/cart", web::put().to(keep_cart))
        .route("/big", web::post().to(big))
        .route("/devices", web::get().to(devices))
        .route("/logout", web::post().to(logout))
        .route("/how", web::get().to(how))
        .route("/vary", web::get().to(vary))
        .service(web::scope("/app").route("/account", web::get().to(account)));
}

macro_rules! app {
    ($middleware:expr) => {
        test::init_service(App::new().wrap($middleware).configure(routes)).await
    };
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

fn middleware(store: &Arc<Flaky<MemoryStore>>) -> ExpectedMiddleware {
    ExpectedMiddleware::new(Expected::new(store.clone(), config()))
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
    fn absorb<B>(&mut self, response: &ServiceResponse<B>) {
        for header in response.headers().get_all(SET_COOKIE) {
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

    fn request(&self, method: &str, path: &str) -> test::TestRequest {
        let request = match method {
            "POST" => test::TestRequest::post(),
            "PUT" => test::TestRequest::put(),
            _ => test::TestRequest::get(),
        }
        .uri(path);
        if self.0.is_empty() { request } else { request.insert_header((COOKIE, self.header())) }
    }
}

/// Sends the request with the jar's cookies and absorbs the answer's.
macro_rules! send {
    ($app:expr, $jar:expr, $method:expr, $path:expr) => {{
        let response = test::call_service(&$app, $jar.request($method, $path).to_request()).await;
        $jar.absorb(&response);
        response
    }};
}

/// Sends the request with these cookies, absorbing nothing.
macro_rules! call {
    ($app:expr, $jar:expr, $method:expr, $path:expr) => {
        test::call_service(&$app, $jar.request($method, $path).to_request()).await
    };
}

fn set_cookies<B>(response: &ServiceResponse<B>) -> Vec<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .map(|value| value.to_str().unwrap_or_default().to_owned())
        .collect()
}

fn header_of<B>(response: &ServiceResponse<B>, name: HeaderName) -> Option<&str> {
    response.headers().get(name).and_then(|value| value.to_str().ok())
}

fn assert_not_cacheable<B>(response: &ServiceResponse<B>, what: &str) {
    assert_eq!(header_of(response, CACHE_CONTROL), Some("no-store"), "{what}");
    assert_eq!(header_of(response, VARY), Some("Cookie"), "{what}");
}

async fn text<B: MessageBody>(response: ServiceResponse<B>) -> String {
    String::from_utf8_lossy(&test::read_body(response).await).into_owned()
}

async fn json_body<B: MessageBody>(response: ServiceResponse<B>) -> Value {
    serde_json::from_slice(&test::read_body(response).await).unwrap_or(Value::Null)
}

macro_rules! logged_in {
    ($app:expr) => {{
        let mut jar = Jar::default();
        let response = send!($app, jar, "POST", "/login");
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert!(jar.get("session").is_some() && jar.get("remember_me").is_some(), "{jar:?}");
        jar
    }};
}

// ------------------------------------------------------------------ laziness

#[actix_web::test]
async fn a_route_without_extractors_costs_no_store_call_and_no_cookie() {
    let store = store();
    let app = app!(middleware(&store));
    let jar = logged_in!(app);
    let before = store_calls(&store);
    for presented in [jar.clone(), jar.without("session"), Jar::default()] {
        for path in ["/plain", "/handles"] {
            let response = call!(app, presented, "GET", path);
            assert_eq!(response.status(), StatusCode::OK);
            assert!(set_cookies(&response).is_empty(), "{:?}", set_cookies(&response));
            assert_eq!(header_of(&response, CACHE_CONTROL), None);
            assert_eq!(header_of(&response, VARY), None);
        }
    }
    assert_eq!(store_calls(&store), before, "not one store call, even with both cookies");
    // An outage nobody meets is no outage.
    store.set_down(true);
    let response = call!(app, jar.without("session"), "GET", "/plain");
    assert_eq!(response.status(), StatusCode::OK);
}

// ------------------------------------------------------------------ visitors

#[actix_web::test]
async fn a_visitor_who_only_reads_gets_no_cookie_and_costs_no_write() {
    let store = store();
    let app = app!(middleware(&store));
    let response = call!(app, Jar::default(), "GET", "/cart");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(set_cookies(&response).is_empty());
    assert_not_cacheable(&response, "authentication ran");
    assert_eq!(json_body(response).await, Value::Null);
    let response = call!(app, Jar::default(), "GET", "/whoami");
    assert_eq!(text(response).await, "visitor");
    assert_eq!(writes(&store), 0);
}

#[actix_web::test]
async fn a_visitor_who_writes_gets_a_session_and_the_data_back() {
    let store = store();
    let app = app!(middleware(&store));
    let mut jar = Jar::default();
    let response = send!(app, jar, "POST", "/cart");
    assert_eq!(json_body(response).await, json!(1));
    assert!(jar.get("session").is_some() && jar.get("remember_me").is_none(), "{jar:?}");
    assert_eq!(store.calls(Operation::CreateSession), 1);

    let response = send!(app, jar, "POST", "/cart");
    assert!(set_cookies(&response).is_empty(), "the same session: no new cookie");
    assert_eq!(json_body(response).await, json!(2));
    let response = send!(app, jar, "GET", "/cart");
    assert_eq!(json_body(response).await, json!(2));
    let response = send!(app, jar, "GET", "/whoami");
    assert_eq!(text(response).await, "visitor", "data, but nobody logged in");
    assert_eq!(store.calls(Operation::CreateSession), 1);
}

#[actix_web::test]
async fn a_password_login_carries_the_data_under_a_new_session_cookie() {
    let store = store();
    let app = app!(middleware(&store));
    let mut jar = Jar::default();
    send!(app, jar, "POST", "/cart");
    send!(app, jar, "POST", "/cart");
    let visitor = jar.clone();
    let anonymous_session = jar.get("session").map(str::to_owned);

    let response = send!(app, jar, "POST", "/login-session");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_ne!(jar.get("session").map(str::to_owned), anonymous_session, "a new id: no fixation");
    let response = send!(app, jar, "GET", "/cart");
    assert_eq!(json_body(response).await, json!(2), "the cart survived the login");
    let response = send!(app, jar, "GET", "/me");
    assert_eq!(json_body(response).await, json!({ "user": "alice", "via": "session", "method": "password" }));

    let response = call!(app, visitor, "GET", "/cart");
    assert_eq!(json_body(response).await, Value::Null, "the visitor's session is gone");
}

#[actix_web::test]
async fn session_data_is_saved_only_when_changed() {
    let store = store();
    let app = app!(middleware(&store));
    let mut jar = logged_in!(app).without("remember_me");
    assert_eq!(store.calls(Operation::SaveSession), 0, "logging in saves no data");
    send!(app, jar, "POST", "/cart");
    assert_eq!(store.calls(Operation::SaveSession), 1);
    for _ in 0..3 {
        let response = send!(app, jar, "PUT", "/cart");
        assert_eq!(json_body(response).await, json!(1));
    }
    assert_eq!(store.calls(Operation::SaveSession), 1, "reading, or writing the same value, saves nothing");
    send!(app, jar, "POST", "/cart");
    assert_eq!(store.calls(Operation::SaveSession), 2);
}

#[actix_web::test]
async fn session_data_over_the_limit_is_the_error_response() {
    let store = store();
    let app = app!(middleware(&store));
    let mut jar = Jar::default();
    let response = send!(app, jar, "POST", "/big");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(header_of(&response, CONTENT_TYPE), Some("application/json"));
    assert!(set_cookies(&response).is_empty(), "nothing written, no session");
    assert_eq!(text(response).await, r#"{"error":"session_too_large"}"#);
    assert_eq!(writes(&store), 0);
}

// -------------------------------------------------------------- API guards

#[actix_web::test]
async fn auth_user_refuses_visitors_with_401() {
    let store = store();
    let app = app!(middleware(&store));
    for path in ["/api/user", "/api/fresh", "/me"] {
        let response = call!(app, Jar::default(), "GET", path);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(header_of(&response, CONTENT_TYPE), Some("application/json"));
        assert_not_cacheable(&response, path);
        assert_eq!(text(response).await, r#"{"error":"unauthenticated"}"#, "{path}");
    }
    let jar = logged_in!(app);
    let response = call!(app, jar, "GET", "/api/user");
    assert_eq!(response.status(), StatusCode::OK);
    assert_not_cacheable(&response, "a session hit depends on the cookie");
    assert_eq!(text(response).await, "alice");
}

#[actix_web::test]
async fn the_theft_request_answers_unexpected_token() {
    let store = store();
    let app = app!(middleware(&store));
    let stolen = logged_in!(app).without("session");
    let mut victim = stolen.clone();
    let response = send!(app, victim, "GET", "/api/user");
    assert_eq!(response.status(), StatusCode::OK, "the cookie login rotates");

    let mut thief = stolen;
    let response = send!(app, thief, "GET", "/api/user");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(thief.0.is_empty(), "both cookies cleared: {thief:?}");
    assert_eq!(text(response).await, r#"{"error":"unexpected_token"}"#);

    let response = call!(app, victim, "GET", "/api/user");
    assert_eq!(text(response).await, r#"{"error":"unauthenticated"}"#, "every login revoked");
}

#[actix_web::test]
async fn freshness_is_false_after_a_cookie_login_and_true_after_confirming() {
    let store = store();
    let app = app!(middleware(&store));
    let mut jar = logged_in!(app);
    let response = send!(app, jar, "GET", "/is-fresh");
    assert_eq!(json_body(response).await, json!(true), "a password login is fresh");

    let mut jar = jar.without("session");
    let response = send!(app, jar, "GET", "/me");
    assert_eq!(
        json_body(response).await,
        json!({ "user": "alice", "via": "cookie", "method": "remembered" })
    );
    let response = send!(app, jar, "GET", "/is-fresh");
    assert_eq!(json_body(response).await, json!(false), "the cookie logged in, not a password");
    let response = send!(app, jar, "GET", "/api/fresh");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(text(response).await, r#"{"error":"reauthentication_required"}"#);

    let response = send!(app, jar, "POST", "/confirm");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = send!(app, jar, "GET", "/is-fresh");
    assert_eq!(json_body(response).await, json!(true));
    let response = send!(app, jar, "GET", "/api/fresh");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "alice");
}

#[actix_web::test]
async fn freshness_wears_off_after_fresh_for() {
    let store = store();
    let clock = ManualClock::starting_now();
    let engine = Expected::new(store.clone(), config()).with_clock(clock.clone());
    let app = app!(ExpectedMiddleware::new(engine).fresh_for(Duration::from_secs(60)));
    let mut jar = logged_in!(app);
    assert_eq!(call!(app, jar, "GET", "/api/fresh").status(), StatusCode::OK);
    clock.advance(expected_actix::expected_core::time::Duration::seconds(61));
    let response = send!(app, jar, "GET", "/api/fresh");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = send!(app, jar, "GET", "/account/password");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(header_of(&response, LOCATION), Some("/confirm-password?next=%2Faccount%2Fpassword"));
    assert_eq!(call!(app, jar, "GET", "/api/user").status(), StatusCode::OK, "still logged in");
}

// ------------------------------------------------------------- page guards

#[actix_web::test]
async fn login_required_sends_visitors_to_the_login_page_with_next() {
    let store = store();
    let app = app!(middleware(&store));
    for (path, location) in [
        ("/account", "/login?next=%2Faccount"),
        ("/account?tab=devices&x=%2F", "/login?next=%2Faccount%3Ftab%3Ddevices%26x%3D%252F"),
        ("/app/account", "/login?next=%2Fapp%2Faccount"),
        ("/account/password", "/login?next=%2Faccount%2Fpassword"),
    ] {
        let response = call!(app, Jar::default(), "GET", path);
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(header_of(&response, LOCATION), Some(location), "{path}");
        assert_not_cacheable(&response, path);
    }
    let jar = logged_in!(app);
    let response = call!(app, jar, "GET", "/account");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "account of alice");
}

#[actix_web::test]
async fn next_is_only_ever_a_same_site_path() {
    let store = store();
    // Every path is guarded, whatever the request line held.
    let guarded =
        test::init_service(App::new().wrap(middleware(&store)).default_service(web::to(account))).await;
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
        let response = test::call_service(&guarded, test::TestRequest::get().uri(target).to_request()).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{target}");
        assert_eq!(header_of(&response, LOCATION), Some(location), "{target}");
    }
    for attack in
        ["//evil.com", "/\\evil.com", "https://evil.com", "javascript:alert(1)", "/\r\n/x", "/\t/x", ""]
    {
        assert_eq!(expected_actix::safe_next(attack), "/", "{attack:?}");
    }
    assert_eq!(expected_actix::safe_next("/account?tab=2"), "/account?tab=2");
}

#[actix_web::test]
async fn fresh_login_sends_stale_users_to_confirm_and_visitors_to_login() {
    let store = store();
    let app = app!(middleware(&store));
    let response = call!(app, Jar::default(), "GET", "/account/password?step=2");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(header_of(&response, LOCATION), Some("/login?next=%2Faccount%2Fpassword%3Fstep%3D2"));

    let mut jar = logged_in!(app);
    let response = send!(app, jar, "GET", "/account/password");
    assert_eq!(response.status(), StatusCode::OK, "just logged in with the password");

    let mut jar = jar.without("session");
    let response = send!(app, jar, "GET", "/account/password?step=2");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = "/confirm-password?next=%2Faccount%2Fpassword%3Fstep%3D2";
    assert_eq!(header_of(&response, LOCATION), Some(location));
    assert_eq!(set_cookies(&response).len(), 2, "the cookie login's rotation still reaches the browser");
    assert_not_cacheable(&response, "redirect");

    send!(app, jar, "POST", "/confirm");
    let response = send!(app, jar, "GET", "/account/password");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "new password for alice");
}

#[actix_web::test]
async fn the_guard_pages_are_configurable() {
    let store = store();
    let app = app!(middleware(&store).login_page("/sign-in?lang=fr").confirm_password_page("/sudo"));
    let response = call!(app, Jar::default(), "GET", "/account");
    assert_eq!(header_of(&response, LOCATION), Some("/sign-in?lang=fr&next=%2Faccount"));
    let mut jar = logged_in!(app).without("session");
    let response = send!(app, jar, "GET", "/account/password");
    assert_eq!(header_of(&response, LOCATION), Some("/sudo?next=%2Faccount%2Fpassword"));
}

#[actix_web::test]
async fn the_theft_request_is_sent_to_the_login_page() {
    let store = store();
    let app = app!(middleware(&store));
    let stolen = logged_in!(app).without("session");
    let mut victim = stolen.clone();
    send!(app, victim, "GET", "/account");
    let mut thief = stolen;
    let response = send!(app, thief, "GET", "/account");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(header_of(&response, LOCATION), Some("/login?next=%2Faccount"));
    assert!(thief.0.is_empty(), "both cookies cleared");
}

// ------------------------------------------------------------ store outage

#[actix_web::test]
async fn a_store_outage_is_503_where_it_is_met_with_no_cookie_change() {
    let store = store();
    let app = app!(middleware(&store));
    let jar = logged_in!(app);
    store.set_down(true);
    for presented in [jar.clone(), jar.without("session"), jar.without("remember_me")] {
        // The extractor's rejection, the handler's `?`, and a handler that
        // swallowed the error: all 503.
        for path in ["/api/user", "/api/fresh", "/account", "/account/password", "/me", "/whoami", "/cart"] {
            let response = call!(app, presented, "GET", path);
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path} {presented:?}");
            assert!(set_cookies(&response).is_empty(), "cookies untouched: {path}");
            assert_eq!(header_of(&response, CONTENT_TYPE), Some("application/json"));
            assert_not_cacheable(&response, path);
            assert_eq!(text(response).await, r#"{"error":"store_unavailable"}"#, "{path}");
        }
    }
    store.set_down(false);
    let response = call!(app, jar.without("session"), "GET", "/api/user");
    assert_eq!(response.status(), StatusCode::OK, "the same auth cookie still works");
}

#[actix_web::test]
async fn a_write_that_could_not_be_saved_is_503_not_a_success() {
    let store = store();
    let app = app!(middleware(&store));
    store.set_down(true);
    let response = call!(app, Jar::default(), "POST", "/cart");
    assert_eq!(
        response.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "the visitor's first write was not stored"
    );
    assert!(set_cookies(&response).is_empty(), "no session cookie for a session that does not exist");
    assert_eq!(text(response).await, r#"{"error":"store_unavailable"}"#);
}

#[actix_web::test]
async fn a_store_outage_can_leave_the_handler_its_answer() {
    let store = store();
    let app = app!(middleware(&store).on_store_error(OnStoreError::Anonymous));
    let jar = logged_in!(app);
    store.set_down(true);
    let response = call!(app, jar, "GET", "/whoami");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(set_cookies(&response).is_empty(), "cookies untouched");
    assert_eq!(text(response).await, "store down, shown as a visitor");
    let response = call!(app, jar, "GET", "/api/user");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "the guards see a visitor");
    assert!(set_cookies(&response).is_empty());
    let response = call!(app, jar, "GET", "/account");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let response = call!(app, jar, "GET", "/me");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "the handler's own `?` stands");
    store.set_down(false);
    assert_eq!(text(call!(app, jar, "GET", "/whoami")).await, "alice");
}

// --------------------------------------------------------- the middleware

#[actix_web::test]
async fn responses_that_set_cookies_or_ran_authentication_are_not_cached() {
    let store = store();
    let app = app!(middleware(&store));
    let response = call!(app, Jar::default(), "POST", "/login");
    assert_not_cacheable(&response, "login");
    let cookie =
        set_cookies(&response).into_iter().find(|c| c.starts_with("remember_me=")).unwrap_or_default();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(cookie.contains(attribute), "{attribute} missing from {cookie}");
    }
    let request = test::TestRequest::get().uri("/whoami").insert_header((COOKIE, "session=garbage"));
    let response = test::call_service(&app, request.to_request()).await;
    assert!(!set_cookies(&response).is_empty(), "a bad cookie is cleared");
    assert_not_cacheable(&response, "cleared cookie");

    // A Vary the handler set is kept, and Cookie is not listed twice.
    let response = call!(app, Jar::default(), "GET", "/vary");
    let vary: Vec<_> = response.headers().get_all(VARY).filter_map(|v| v.to_str().ok()).collect();
    assert_eq!(vary, ["Accept-Encoding", "Cookie"]);
    assert_eq!(header_of(&response, CACHE_CONTROL), Some("no-store"));
}

#[actix_web::test]
async fn an_oversized_cookie_header_is_a_visitor() {
    let store = store();
    let app = app!(middleware(&store));
    let jar = logged_in!(app);
    let padded = format!("{}; pad={}", jar.header(), "x".repeat(17 * 1024));
    let request = test::TestRequest::get().uri("/api/user").insert_header((COOKIE, padded));
    let response = test::call_service(&app, request.to_request()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookies(&response).is_empty(), "refused unread, nothing cleared");
    assert_eq!(text(response).await, r#"{"error":"unauthenticated"}"#);

    // Split over several Cookie headers, the limit is on their sum.
    let mut request = jar.request("GET", "/api/user");
    for _ in 0..3 {
        request = request.append_header((COOKIE, format!("pad={}", "y".repeat(6 * 1024))));
    }
    let response = test::call_service(&app, request.to_request()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(text(call!(app, jar, "GET", "/api/user")).await, "alice");
}

#[actix_web::test]
async fn extractors_without_the_middleware_answer_500() {
    let app = test::init_service(App::new().configure(routes)).await;
    for path in ["/me", "/api/user", "/api/fresh", "/account", "/account/password", "/cart"] {
        let response = call!(app, Jar::default(), "GET", path);
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert!(text(response).await.contains("ExpectedMiddleware"), "{path}");
    }
}

#[actix_web::test]
async fn logout_clears_both_cookies() {
    let store = store();
    let app = app!(middleware(&store));
    let mut jar = logged_in!(app);
    let old = jar.clone();
    let response = send!(app, jar, "POST", "/logout");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(jar.0.is_empty(), "{jar:?}");
    let response = call!(app, old.without("session"), "GET", "/api/user");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "the old auth cookie is dead");
}

#[actix_web::test]
async fn the_client_ip_is_the_peer_unless_a_trusted_header_is_opted_in() {
    let peer: SocketAddr = ([10, 0, 0, 1], 40000).into();
    let forwarded = ("x-forwarded-for", "203.0.113.9, 198.51.100.2");
    for (trusted, expected) in [(false, "10.0.0.1"), (true, "198.51.100.2")] {
        let store = store();
        let mut middleware = middleware(&store);
        if trusted {
            middleware = middleware.trusted_client_ip_header(HeaderName::from_static("x-forwarded-for"));
        }
        let app = app!(middleware);
        let mut jar = Jar::default();
        let login = jar.request("POST", "/login").peer_addr(peer).insert_header(forwarded);
        jar.absorb(&test::call_service(&app, login.to_request()).await);
        let listed = json_body(call!(app, jar, "GET", "/devices")).await;
        assert_eq!(listed, json!([expected]), "trusted header: {trusted}");
    }
}

#[actix_web::test]
async fn cookies_survive_an_error_from_an_inner_middleware() -> TestResult {
    let store = store();
    let app = test::init_service(
        App::new()
            .wrap_fn(|request, service| {
                let fails = request.path() == "/fail";
                let call = service.call(request);
                async move {
                    let response = call.await?;
                    if fails {
                        Err(actix_web::error::ErrorForbidden("inner middleware says no"))
                    } else {
                        Ok(response)
                    }
                }
            })
            .wrap(middleware(&store))
            .route("/login", web::post().to(login))
            .route("/fail", web::get().to(whoami)),
    )
    .await;
    let jar = logged_in!(app);

    let request = jar.without("session").request("GET", "/fail").to_request();
    let Err(error) = test::try_call_service(&app, request).await else {
        return Err("the inner middleware's error should come through".into());
    };
    let response = error.error_response();
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "the error's own status");
    let cookies: Vec<_> = response.headers().get_all(SET_COOKIE).filter_map(|v| v.to_str().ok()).collect();
    assert_eq!(cookies.len(), 2, "the rotated cookies still reach the client: {cookies:?}");
    assert_eq!(response.headers().get(CACHE_CONTROL).and_then(|v| v.to_str().ok()), Some("no-store"));

    // An outage met behind the failing middleware is still a 503.
    store.set_down(true);
    let request = jar.without("session").request("GET", "/fail").to_request();
    let Err(error) = test::try_call_service(&app, request).await else {
        return Err("the inner middleware's error should come through".into());
    };
    let response = error.error_response();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get(SET_COOKIE).is_none());
    Ok(())
}

#[actix_web::test]
async fn any_body_type_passes_through() -> TestResult {
    let middleware = middleware(&store());
    let inner = actix_web::dev::fn_service(|request: actix_web::dev::ServiceRequest| async move {
        let (http_request, mut payload) = request.into_parts();
        let auth = <Auth as actix_web::FromRequest>::from_request(&http_request, &mut payload).await?;
        let user = auth.user().await.map_err(Error::from)?;
        let text: &'static str = if user.is_none() { "visitor" } else { "?" };
        let response = HttpResponse::Ok().message_body(text)?;
        Ok::<_, actix_web::Error>(actix_web::dev::ServiceResponse::new(http_request, response))
    });
    let service = middleware.new_transform(inner).await.map_err(|()| "transform")?;
    let request = test::TestRequest::get().insert_header((COOKIE, "remember_me=garbage")).to_srv_request();
    let response = service.call(request).await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(set_cookies(&response).len(), 1, "the unparseable auth cookie is cleared");
    assert_eq!(test::read_body(response).await, "visitor");
    Ok(())
}

// ------------------------------------------------------------- test helpers

#[actix_web::test]
async fn login_as_logs_in_through_the_middlewares_engine() -> TestResult {
    let store = store();
    let middleware = middleware(&store);
    let app = app!(middleware.clone());
    for remember in [true, false] {
        let login = login_as(middleware.engine(), &alice(), remember).await?;
        assert_eq!(login.auth_cookie().is_some(), remember);
        assert_eq!(login.serial().is_some(), remember);
        assert!(login.cookie_header().starts_with(&format!("session={}", login.session_cookie())));
        let request = test::TestRequest::get().uri("/me").insert_header((COOKIE, login.cookie_header()));
        let response = test::call_service(&app, request.to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let expected = json!({ "user": "alice", "via": "session", "method": "password" });
        assert_eq!(json_body(response).await, expected);
        if let Some(auth) = login.auth_cookie() {
            let request =
                test::TestRequest::get().uri("/me").insert_header((COOKIE, format!("remember_me={auth}")));
            let response = test::call_service(&app, request.to_request()).await;
            assert_eq!(json_body(response).await["via"], json!("cookie"), "the auth cookie works alone");
        }
    }
    // Through any store: the engine can be the app's, or one of the test's.
    let engine = Expected::new(MemoryStore::new(), config());
    let login = login_as(&engine, &alice(), true).await?;
    assert!(login.cookie_header().contains("; remember_me="));
    Ok(())
}

#[actix_web::test]
async fn the_current_user_says_how_it_was_authenticated() -> TestResult {
    let store = store();
    let middleware = middleware(&store);
    let login = login_as(middleware.engine(), &alice(), true).await?;
    let app = app!(middleware);
    let request = test::TestRequest::get().uri("/how").insert_header((COOKIE, login.cookie_header()));
    let response = test::call_service(&app, request.to_request()).await;
    assert_eq!(text(response).await, "session password true true true");
    let remember = format!("remember_me={}", login.auth_cookie().unwrap_or_default());
    let request = test::TestRequest::get().uri("/how").insert_header((COOKIE, remember));
    let response = test::call_service(&app, request.to_request()).await;
    assert_eq!(text(response).await, "cookie remembered true false false");
    Ok(())
}

// ------------------------------------------------------ repeated cookie names

/// Sends `GET path` with a hand-made `Cookie` header.
macro_rules! get_with_cookies {
    ($app:expr, $path:expr, $cookies:expr) => {
        test::call_service(
            &$app,
            test::TestRequest::get().uri($path).insert_header((COOKIE, $cookies)).to_request(),
        )
        .await
    };
}

#[actix_web::test]
async fn every_value_of_a_repeated_cookie_name_is_judged() {
    let store = store();
    let app = app!(middleware(&store));
    let jar = logged_in!(app);
    let good = jar.get("remember_me").unwrap_or_default().to_owned();

    // A sibling subdomain's garbage first (a longer Path is sent first).
    let response = get_with_cookies!(app, "/me", format!("remember_me=garbage; remember_me={good}"));
    let set = set_cookies(&response);
    assert_eq!(json_body(response).await["via"], json!("cookie"), "{set:?}");
    assert!(
        set.iter().filter(|c| c.starts_with("remember_me=")).all(|c| !c.starts_with("remember_me=;")),
        "the good cookie is replaced, never cleared: {set:?}"
    );

    // A dead session before the live one is still a session hit. (The
    // cookie login above ended the session `jar` held: log in afresh.)
    let jar = logged_in!(app);
    let mut dead = logged_in!(app);
    let dead_session = dead.get("session").unwrap_or_default().to_owned();
    send!(app, dead, "POST", "/logout");
    let live = jar.get("session").unwrap_or_default().to_owned();
    let response = get_with_cookies!(app, "/me", format!("session={dead_session}; session={live}"));
    assert!(set_cookies(&response).is_empty(), "{:?}", set_cookies(&response));
    assert_eq!(json_body(response).await["via"], json!("session"));
}

#[actix_web::test]
async fn after_a_domain_change_the_host_only_twin_is_cleared_and_the_user_stays() {
    let store = store();
    let config = Config::builder()
        .secure(false)
        .grace_period(Duration::ZERO)
        .domain(Some("example.com".into()))
        .build()
        .unwrap_or_else(|error| panic!("{error}"));
    let app = app!(ExpectedMiddleware::new(Expected::new(store.clone(), config)));
    // The host-only cookie from before the deploy; the cookie login sets the
    // Domain one next to it, and the browser sends both, the older first.
    let old = logged_in!(app).get("remember_me").unwrap_or_default().to_owned();
    let response = get_with_cookies!(app, "/me", format!("remember_me={old}"));
    let mut current = Jar::default();
    current.absorb(&response);
    let current = current.get("remember_me").unwrap_or_default().to_owned();
    assert_ne!(current, old);

    let response = get_with_cookies!(app, "/me", format!("remember_me={old}; remember_me={current}"));
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
