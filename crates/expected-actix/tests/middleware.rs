//! The middleware and extractors, end to end through actix-web's test
//! harness, over the memory store.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse, Transform};
use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, COOKIE, HeaderName, SET_COOKIE};
use actix_web::{App, HttpMessage, HttpResponse, test, web};
use expected_actix::expected_core::{Config, DynStore, Exchange, Expected, Username};
use expected_actix::{Auth, AuthUser, ExpectedMiddleware, OnStoreError, Session};
use expected_conformance::{Flaky, Operation};
use expected_store_memory::MemoryStore;
use serde::Deserialize;
use serde_json::{Value, json};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn config() -> Config {
    Config::builder().secure(false).build().unwrap_or_default()
}

// ------------------------------------------------------------------ the app

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    #[serde(default)]
    remember: bool,
}

async fn login(auth: Auth, form: web::Query<LoginForm>) -> HttpResponse {
    let Ok(user) = Username::new(&form.user) else { return HttpResponse::BadRequest().finish() };
    match auth.register(&user, form.remember).await {
        Ok(()) => HttpResponse::Ok().json(json!({ "user": user.as_str() })),
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}

async fn me(AuthUser(user): AuthUser, auth: Auth, calls: web::Data<AtomicUsize>) -> HttpResponse {
    calls.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Ok().json(json!({ "user": user.as_str(), "via": auth.via().map(|via| via.as_str()) }))
}

async fn whoami(auth: Auth, calls: web::Data<AtomicUsize>) -> HttpResponse {
    calls.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Ok().json(json!({
        "user": auth.username().map(|user| user.to_string()),
        "authenticated": auth.is_authenticated(),
        "theft": auth.theft_detected(),
    }))
}

async fn visit(session: Session) -> HttpResponse {
    let visits: u64 = session.get("visits").ok().flatten().unwrap_or(0) + 1;
    match session.insert("visits", visits) {
        Ok(()) => HttpResponse::Ok().json(json!({ "visits": visits })),
        Err(_) => HttpResponse::Unauthorized().finish(),
    }
}

async fn peek(session: Session) -> HttpResponse {
    let visits: Option<u64> = session.get("visits").ok().flatten();
    // Writing back the value already there changes nothing.
    if let Some(visits) = visits {
        let _ = session.insert("visits", visits);
    }
    HttpResponse::Ok().json(json!({ "visits": visits }))
}

async fn logout(auth: Auth) -> HttpResponse {
    match auth.logout().await {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}

async fn devices(auth: Auth) -> HttpResponse {
    match auth.devices().await {
        Ok(Some(devices)) => HttpResponse::Ok().json(
            devices
                .iter()
                .map(|device| json!({ "ip": device.ip.map(|ip| ip.to_string()), "current": device.current }))
                .collect::<Vec<_>>(),
        ),
        Ok(None) => HttpResponse::Unauthorized().finish(),
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}

/// The test app's routes; `calls` counts handler calls.
fn routes(cfg: &mut web::ServiceConfig, calls: web::Data<AtomicUsize>) {
    cfg.app_data(calls)
        .route("/login", web::post().to(login))
        .route("/me", web::get().to(me))
        .route("/whoami", web::get().to(whoami))
        .route("/visit", web::post().to(visit))
        .route("/peek", web::get().to(peek))
        .route("/logout", web::post().to(logout))
        .route("/devices", web::get().to(devices));
}

macro_rules! app {
    ($middleware:expr, $calls:expr) => {{
        let calls = $calls.clone();
        test::init_service(App::new().wrap($middleware).configure(move |cfg| routes(cfg, calls))).await
    }};
    ($middleware:expr) => {
        app!($middleware, web::Data::new(AtomicUsize::new(0)))
    };
}

// ------------------------------------------------------------- the browser

/// The cookies a browser would hold, by name.
#[derive(Debug, Default, Clone)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    /// Applies a response's `Set-Cookie`s, answering how many there were.
    fn absorb<B>(&mut self, response: &ServiceResponse<B>) -> usize {
        let mut count = 0;
        for header in response.headers().get_all(SET_COOKIE) {
            count += 1;
            let text = header.to_str().unwrap_or_default();
            let pair = text.split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if value.is_empty() {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), value.to_owned());
            }
        }
        count
    }

    fn header(&self) -> String {
        self.0.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ")
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    fn without(&self, name: &str) -> Self {
        let mut jar = self.clone();
        jar.0.remove(name);
        jar
    }

    fn get(&self, path: &str) -> test::TestRequest {
        self.with(test::TestRequest::get().uri(path))
    }

    fn post(&self, path: &str) -> test::TestRequest {
        self.with(test::TestRequest::post().uri(path))
    }

    fn with(&self, request: test::TestRequest) -> test::TestRequest {
        if self.0.is_empty() { request } else { request.insert_header((COOKIE, self.header())) }
    }
}

fn set_cookies<B>(response: &ServiceResponse<B>) -> Vec<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .map(|value| value.to_str().unwrap_or_default().to_owned())
        .collect()
}

fn cache_control<B>(response: &ServiceResponse<B>) -> Option<&str> {
    response.headers().get(CACHE_CONTROL).and_then(|value| value.to_str().ok())
}

async fn body<B: MessageBody>(response: ServiceResponse<B>) -> Value {
    let bytes = test::read_body(response).await;
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

// -------------------------------------------------------------------- tests

#[actix_web::test]
async fn login_with_remember_sets_both_cookies_and_no_store() {
    let app = app!(ExpectedMiddleware::new(Expected::new(MemoryStore::new(), config())));
    let mut jar = Jar::default();
    let response = test::call_service(&app, jar.post("/login?user=alice&remember=true").to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(jar.absorb(&response), 2, "{:?}", set_cookies(&response));
    assert!(jar.has("session") && jar.has("remember_me"), "{jar:?}");
    assert_eq!(cache_control(&response), Some("no-store"));
    let auth_cookie =
        set_cookies(&response).into_iter().find(|c| c.starts_with("remember_me=")).unwrap_or_default();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(auth_cookie.contains(attribute), "{attribute} missing from {auth_cookie}");
    }
}

#[actix_web::test]
async fn login_without_remember_sets_only_the_session_cookie() {
    let app = app!(ExpectedMiddleware::new(Expected::new(MemoryStore::new(), config())));
    let mut jar = Jar::default();
    let response = test::call_service(&app, jar.post("/login?user=alice").to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(jar.absorb(&response), 1, "{:?}", set_cookies(&response));
    assert!(jar.has("session") && !jar.has("remember_me"), "{jar:?}");
    assert_eq!(cache_control(&response), Some("no-store"));

    let response = test::call_service(&app, jar.get("/me").to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body(response).await, json!({ "user": "alice", "via": "session" }));
}

#[actix_web::test]
async fn session_hit_changes_no_cookie() {
    let app = app!(ExpectedMiddleware::new(Expected::new(MemoryStore::new(), config())));
    let mut jar = Jar::default();
    jar.absorb(&test::call_service(&app, jar.post("/login?user=alice&remember=true").to_request()).await);

    let response = test::call_service(&app, jar.get("/me").to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(set_cookies(&response).is_empty(), "{:?}", set_cookies(&response));
    assert_eq!(cache_control(&response), None, "no cookie set, nothing to forbid");
    assert_eq!(body(response).await, json!({ "user": "alice", "via": "session" }));
}

#[actix_web::test]
async fn the_auth_cookie_logs_back_in_once_the_session_cookie_is_gone() {
    let app = app!(ExpectedMiddleware::new(Expected::new(MemoryStore::new(), config())));
    let mut jar = Jar::default();
    jar.absorb(&test::call_service(&app, jar.post("/login?user=alice&remember=true").to_request()).await);
    let old = jar.clone();

    // The browser was closed: the session cookie is gone.
    let mut jar = jar.without("session");
    let response = test::call_service(&app, jar.get("/me").to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(jar.absorb(&response), 2, "rotated auth cookie and a new session cookie");
    assert_eq!(cache_control(&response), Some("no-store"));
    assert_ne!(jar.0.get("remember_me"), old.0.get("remember_me"), "the token was rotated");
    assert_eq!(body(response).await, json!({ "user": "alice", "via": "cookie" }));

    let response = test::call_service(&app, jar.get("/me").to_request()).await;
    assert_eq!(body(response).await, json!({ "user": "alice", "via": "session" }));
}

#[actix_web::test]
async fn a_replayed_auth_cookie_is_theft_and_answers_unexpected_token() {
    let config = Config::builder().secure(false).grace_period(Duration::ZERO).build().unwrap_or_default();
    let app = app!(ExpectedMiddleware::new(Expected::new(MemoryStore::new(), config)));
    let mut jar = Jar::default();
    jar.absorb(&test::call_service(&app, jar.post("/login?user=alice&remember=true").to_request()).await);
    let stolen = jar.without("session");

    let mut victim = stolen.clone();
    victim.absorb(&test::call_service(&app, victim.get("/me").to_request()).await);

    // The thief replays the old token: theft, everything revoked.
    let mut thief = stolen;
    let response = test::call_service(&app, thief.get("/me").to_request()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(thief.absorb(&response), 2, "both cookies cleared");
    assert!(thief.0.is_empty());
    assert_eq!(body(response).await, json!({ "error": "unexpected_token" }));

    // The victim's session was revoked too.
    let response = test::call_service(&app, victim.get("/me").to_request()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body(response).await, json!({ "error": "unauthenticated" }));
}

#[actix_web::test]
async fn store_outage_answers_503_without_calling_the_handler_or_touching_cookies() {
    let flaky = Arc::new(Flaky::new(MemoryStore::new()));
    let calls = web::Data::new(AtomicUsize::new(0));
    let app = app!(ExpectedMiddleware::new(Expected::new(flaky.clone(), config())), calls);
    let mut jar = Jar::default();
    jar.absorb(&test::call_service(&app, jar.post("/login?user=alice&remember=true").to_request()).await);

    flaky.set_down(true);
    for presented in [jar.clone(), jar.without("session"), jar.without("remember_me")] {
        let response = test::call_service(&app, presented.get("/me").to_request()).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(set_cookies(&response).is_empty(), "fail closed: no cookie change");
        assert_eq!(cache_control(&response), None);
        assert_eq!(body(response).await, json!({ "error": "store_unavailable" }));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the handler was never called");

    flaky.set_down(false);
    let response = test::call_service(&app, jar.without("session").get("/me").to_request()).await;
    assert_eq!(response.status(), StatusCode::OK, "the same auth cookie still works");
}

#[actix_web::test]
async fn store_outage_runs_the_handler_anonymously_when_asked() {
    let flaky = Arc::new(Flaky::new(MemoryStore::new()));
    let calls = web::Data::new(AtomicUsize::new(0));
    let middleware = ExpectedMiddleware::new(Expected::new(flaky.clone(), config()))
        .on_store_error(OnStoreError::Anonymous);
    let app = app!(middleware, calls);
    let mut jar = Jar::default();
    jar.absorb(&test::call_service(&app, jar.post("/login?user=alice&remember=true").to_request()).await);

    flaky.set_down(true);
    for presented in [jar.clone(), jar.without("session")] {
        let response = test::call_service(&app, presented.get("/whoami").to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(set_cookies(&response).is_empty(), "fail closed: no cookie change");
        assert_eq!(cache_control(&response), None);
        assert_eq!(body(response).await, json!({ "user": null, "authenticated": false, "theft": false }));

        let response = test::call_service(&app, presented.get("/me").to_request()).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(set_cookies(&response).is_empty());
        assert_eq!(body(response).await, json!({ "error": "unauthenticated" }));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2, "/whoami ran, anonymously");
}

#[actix_web::test]
async fn an_oversized_cookie_header_is_anonymous_never_500() {
    let app = app!(ExpectedMiddleware::new(Expected::new(MemoryStore::new(), config())));
    let mut jar = Jar::default();
    jar.absorb(&test::call_service(&app, jar.post("/login?user=alice&remember=true").to_request()).await);

    let oversized = format!("{}; padding={}", jar.header(), "x".repeat(17 * 1024));
    let request = test::TestRequest::get().uri("/me").insert_header((COOKIE, oversized)).to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookies(&response).is_empty(), "refused unread: nothing to clear");
    assert_eq!(body(response).await, json!({ "error": "unauthenticated" }));

    // Split over several Cookie headers, the limit is on their sum.
    let mut request = jar.get("/me");
    for _ in 0..3 {
        request = request.append_header((COOKIE, format!("pad={}", "y".repeat(6 * 1024))));
    }
    let response = test::call_service(&app, request.to_request()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn garbage_cookies_are_anonymous_and_the_auth_cookie_is_cleared() {
    let app = app!(ExpectedMiddleware::new(Expected::new(MemoryStore::new(), config())));
    let request = test::TestRequest::get()
        .uri("/me")
        .insert_header((COOKIE, "session=%%%; remember_me=!!!"))
        .to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let cleared = set_cookies(&response);
    assert!(cleared.iter().any(|c| c.starts_with("remember_me=;")), "{cleared:?}");
    assert_eq!(cache_control(&response), Some("no-store"));
}

#[actix_web::test]
async fn extractors_without_the_middleware_answer_500() {
    let calls = web::Data::new(AtomicUsize::new(0));
    let app = test::init_service(App::new().configure(move |cfg| routes(cfg, calls.clone()))).await;
    for request in [
        test::TestRequest::get().uri("/me"),
        test::TestRequest::get().uri("/whoami"),
        test::TestRequest::post().uri("/visit"),
    ] {
        let response = test::call_service(&app, request.to_request()).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}

#[actix_web::test]
async fn session_data_is_saved_only_when_changed() {
    let store = Arc::new(Flaky::new(MemoryStore::new()));
    let app = app!(ExpectedMiddleware::new(Expected::new(store.clone(), config())));
    let mut jar = Jar::default();
    jar.absorb(&test::call_service(&app, jar.post("/login?user=alice").to_request()).await);
    let saves = || store.calls(Operation::SaveSession);
    let before = saves();

    let response = test::call_service(&app, jar.post("/visit").to_request()).await;
    assert_eq!(body(response).await, json!({ "visits": 1 }));
    assert_eq!(saves(), before + 1, "a change is saved");

    let response = test::call_service(&app, jar.get("/peek").to_request()).await;
    assert!(set_cookies(&response).is_empty());
    assert_eq!(body(response).await, json!({ "visits": 1 }));
    assert_eq!(saves(), before + 1, "reading, or writing the same value, saves nothing");

    let response = test::call_service(&app, jar.post("/visit").to_request()).await;
    assert_eq!(body(response).await, json!({ "visits": 2 }));
    assert_eq!(saves(), before + 2);

    // Anonymous: no session, nothing to save.
    let response = test::call_service(&app, Jar::default().post("/visit").to_request()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(saves(), before + 2);
}

#[actix_web::test]
async fn logout_clears_both_cookies() {
    let app = app!(ExpectedMiddleware::new(Expected::new(MemoryStore::new(), config())));
    let mut jar = Jar::default();
    jar.absorb(&test::call_service(&app, jar.post("/login?user=alice&remember=true").to_request()).await);
    let old = jar.clone();

    let response = test::call_service(&app, jar.post("/logout").to_request()).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(jar.absorb(&response), 2);
    assert!(jar.0.is_empty(), "{jar:?}");
    assert_eq!(cache_control(&response), Some("no-store"));

    let response = test::call_service(&app, old.without("session").get("/me").to_request()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "the old auth cookie is dead");
}

async fn device_ip(middleware: ExpectedMiddleware) -> Option<String> {
    let app = app!(middleware);
    let peer: SocketAddr = ([10, 0, 0, 1], 40000).into();
    let forwarded = ("x-forwarded-for", "203.0.113.9, 198.51.100.2");
    let mut jar = Jar::default();
    let login = jar.post("/login?user=alice&remember=true").peer_addr(peer).insert_header(forwarded);
    jar.absorb(&test::call_service(&app, login.to_request()).await);
    let response = test::call_service(&app, jar.get("/devices").peer_addr(peer).to_request()).await;
    let devices = body(response).await;
    assert_eq!(devices[0]["current"], json!(true), "{devices}");
    devices[0]["ip"].as_str().map(str::to_owned)
}

#[actix_web::test]
async fn the_client_ip_is_the_peer_unless_a_trusted_header_is_opted_in() {
    let engine = || Expected::new(MemoryStore::new(), config());
    assert_eq!(device_ip(ExpectedMiddleware::new(engine())).await.as_deref(), Some("10.0.0.1"));
    let trusted = ExpectedMiddleware::new(engine())
        .trusted_client_ip_header(HeaderName::from_static("x-forwarded-for"));
    assert_eq!(device_ip(trusted).await.as_deref(), Some("198.51.100.2"), "the last hop, the proxy's");
}

#[actix_web::test]
async fn cookies_survive_an_error_from_an_inner_middleware() -> TestResult {
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
            .wrap(ExpectedMiddleware::new(Expected::new(MemoryStore::new(), config())))
            .route("/login", web::post().to(login))
            .route("/fail", web::get().to(|auth: Auth| async move { format!("{:?}", auth.username()) })),
    )
    .await;
    let mut jar = Jar::default();
    jar.absorb(&test::call_service(&app, jar.post("/login?user=alice&remember=true").to_request()).await);

    let Err(error) = test::try_call_service(&app, jar.without("session").get("/fail").to_request()).await
    else {
        return Err("the inner middleware's error should come through".into());
    };
    let response = error.error_response();
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "the error's own status");
    let cookies: Vec<_> = response.headers().get_all(SET_COOKIE).filter_map(|v| v.to_str().ok()).collect();
    assert_eq!(cookies.len(), 2, "the rotated cookies still reach the client: {cookies:?}");
    assert_eq!(response.headers().get(CACHE_CONTROL).and_then(|v| v.to_str().ok()), Some("no-store"));
    Ok(())
}

#[actix_web::test]
async fn any_body_type_passes_through() -> TestResult {
    let middleware = ExpectedMiddleware::new(Expected::new(MemoryStore::new(), config()));
    let inner = actix_web::dev::fn_service(|request: actix_web::dev::ServiceRequest| async move {
        let anonymous = request
            .extensions()
            .get::<Arc<Exchange<DynStore>>>()
            .is_some_and(|exchange| exchange.username().is_none());
        let text: &'static str = if anonymous { "anonymous" } else { "?" };
        Ok::<_, actix_web::Error>(request.into_response(HttpResponse::Ok().message_body(text)?))
    });
    let service = middleware.new_transform(inner).await.map_err(|()| "transform")?;
    let request = test::TestRequest::get().insert_header((COOKIE, "remember_me=garbage")).to_srv_request();
    let response = service.call(request).await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(set_cookies(&response).len(), 1, "the unparseable auth cookie is cleared");
    assert_eq!(test::read_body(response).await, "anonymous");
    Ok(())
}
