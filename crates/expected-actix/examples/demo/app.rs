//! The demo's app: the JSON API and the HTML pages of the
//! `expected-demo-kit` contract, on the adapter's middleware and extractors.
//! Route by route the same as the axum demo's router.
//!
//! Also compiled into `tests/scenarios.rs` and `tests/browser.rs`, which
//! serve it in-process.

use std::sync::Arc;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, ResponseError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpRequest, HttpResponse, Route, guard, web};
use expected_actix::expected_core::{EngineError, Serial, StoreError, Username};
use expected_actix::{Auth, AuthUser, ExpectedMiddleware};
use expected_demo_kit::Accounts;
use expected_demo_kit::api::{
    self, ErrorBody, Health, LoginInfo, LoginRequest, LoginResponse, Me, ViaName, error,
};
use expected_demo_kit::html::{self, Alert, paths};
use serde::Deserialize;

/// The app: the JSON API under `/api`, the pages, `/healthz`.
///
/// `expected` runs around the API and the pages (each resource is wrapped, so
/// `/healthz` and the 404 fallback never touch the store): a store outage
/// answers 503 `store_unavailable` (as an HTML page on page routes) with
/// cookies untouched. Bodies are limited to [`api::MAX_BODY_BYTES`], and
/// state-changing requests from other sites are refused.
pub(crate) fn app(
    expected: ExpectedMiddleware,
    accounts: Arc<Accounts>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let api = |path: &str| web::resource(path).wrap(expected.clone());
    let page = |path: &str| web::resource(path).wrap(expected.clone()).wrap(from_fn(outage_as_page));
    App::new()
        .app_data(web::Data::from(accounts))
        .app_data(web::JsonConfig::default().limit(api::MAX_BODY_BYTES).error_handler(|error, _| {
            let code = match error {
                JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
                    error::BODY_TOO_LARGE
                }
                _ => error::INVALID_BODY,
            };
            ApiError(StatusCode::BAD_REQUEST, code).into()
        }))
        .app_data(web::FormConfig::default().limit(api::MAX_BODY_BYTES))
        .service(api("/api/login").route(web::post().to(api_login)))
        .service(api("/api/me").route(get().to(api_me)))
        .service(api("/api/logins").route(get().to(api_logins)))
        .service(api("/api/logins/{serial}").route(web::delete().to(api_revoke)))
        .service(api("/api/logout").route(web::post().to(api_logout)))
        .service(api("/api/logout-everywhere").route(web::post().to(api_logout_everywhere)))
        .service(page(paths::HOME).route(get().to(home)))
        .service(page(paths::LOGIN).route(get().to(login_page)).route(web::post().to(login)))
        .service(page(paths::DEVICES).route(get().to(devices)))
        .service(page(paths::REVOKE_ROUTE).route(web::post().to(revoke)))
        .service(page(paths::LOGOUT).route(web::post().to(logout)))
        .service(page(paths::LOGOUT_EVERYWHERE).route(web::post().to(logout_everywhere)))
        .route("/healthz", get().to(|| async { HttpResponse::Ok().json(Health::ok()) }))
        .default_service(web::to(not_found))
        .wrap(from_fn(refuse_cross_site))
}

/// GET, and HEAD with it (as axum's `get` routes answer both).
fn get() -> Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

// ---------------------------------------------------------------- JSON API

/// A JSON error: a status and an [`error`] code.
#[derive(Debug)]
struct ApiError(StatusCode, &'static str);

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.1)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.0
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.0).json(ErrorBody::new(self.1))
    }
}

impl From<StoreError> for ApiError {
    fn from(_: StoreError) -> Self {
        // The engine has logged it.
        Self(StatusCode::SERVICE_UNAVAILABLE, error::STORE_UNAVAILABLE)
    }
}

impl From<EngineError> for ApiError {
    fn from(failure: EngineError) -> Self {
        match failure {
            EngineError::Store(store) => store.into(),
            EngineError::KeyCollision => Self(StatusCode::INTERNAL_SERVER_ERROR, error::INTERNAL),
        }
    }
}

/// Checks a password off the async workers (Argon2 is CPU-bound).
async fn check_password(accounts: Arc<Accounts>, username: String, password: String) -> Option<Username> {
    web::block(move || accounts.verify(&username, &password)).await.ok().flatten()
}

async fn api_login(
    accounts: web::Data<Accounts>,
    auth: Auth,
    body: web::Json<LoginRequest>,
) -> Result<web::Json<LoginResponse>, ApiError> {
    let body = body.into_inner();
    let Some(user) = check_password(accounts.into_inner(), body.username, body.password).await else {
        return Err(ApiError(StatusCode::UNAUTHORIZED, error::INVALID_CREDENTIALS));
    };
    auth.register(&user, body.remember).await?;
    Ok(web::Json(LoginResponse { username: user.to_string(), remembered: body.remember }))
}

async fn api_me(AuthUser(user): AuthUser, auth: Auth) -> web::Json<Me> {
    let via = auth.via().map_or(ViaName::Session, ViaName::from);
    web::Json(Me { username: user.to_string(), via })
}

async fn api_logins(_: AuthUser, auth: Auth) -> Result<web::Json<Vec<LoginInfo>>, ApiError> {
    let devices = auth.devices().await?.unwrap_or_default();
    Ok(web::Json(devices.iter().map(LoginInfo::from).collect()))
}

async fn api_revoke(_: AuthUser, auth: Auth, serial: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let not_found = ApiError(StatusCode::NOT_FOUND, error::NOT_FOUND);
    let Ok(serial) = Serial::from_base64(&serial) else { return Err(not_found) };
    match auth.revoke(&serial).await? {
        Some(true) => Ok(HttpResponse::NoContent().finish()),
        Some(false) | None => Err(not_found),
    }
}

async fn api_logout(auth: Auth) -> Result<HttpResponse, ApiError> {
    auth.logout().await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn api_logout_everywhere(_: AuthUser, auth: Auth) -> Result<HttpResponse, ApiError> {
    auth.logout_everywhere().await?;
    Ok(HttpResponse::NoContent().finish())
}

// ------------------------------------------------------------------- pages

/// An HTML page with its status.
fn html_page(status: StatusCode, page: String) -> HttpResponse {
    HttpResponse::build(status).content_type(ContentType::html()).body(page)
}

/// A `303 See Other` to `path`.
fn redirect(path: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, path)).finish()
}

/// An HTML error page with its status.
#[derive(Debug)]
struct PageError(html::ErrorPage);

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.text().0)
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        html_page(self.status_code(), self.0.render())
    }
}

impl From<StoreError> for PageError {
    fn from(_: StoreError) -> Self {
        Self(html::ErrorPage::StoreDown)
    }
}

/// What a page shows someone not logged in: the login form, with the theft
/// alert when this very request detected a replayed cookie (a redirect would
/// lose that), or a redirect to it.
fn anonymous(auth: &Auth) -> HttpResponse {
    if auth.theft_detected() {
        html_page(StatusCode::OK, html::login_page("", Some(Alert::Theft)))
    } else {
        redirect(paths::HOME)
    }
}

async fn home(auth: Auth) -> HttpResponse {
    match auth.username() {
        Some(user) => html_page(StatusCode::OK, html::home_page(&user, auth.via(), auth.login().as_ref())),
        None => {
            let alert = auth.theft_detected().then_some(Alert::Theft);
            html_page(StatusCode::OK, html::login_page("", alert))
        }
    }
}

async fn login_page(auth: Auth) -> HttpResponse {
    match auth.username() {
        Some(_) => redirect(paths::HOME),
        None => {
            let alert = auth.theft_detected().then_some(Alert::Theft);
            html_page(StatusCode::OK, html::login_page("", alert))
        }
    }
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    remember: Option<String>,
}

async fn login(
    accounts: web::Data<Accounts>,
    auth: Auth,
    form: Result<web::Form<LoginForm>, actix_web::Error>,
) -> Result<HttpResponse, PageError> {
    let Ok(web::Form(form)) = form else {
        return Err(PageError(html::ErrorPage::BadForm));
    };
    let typed = form.username.clone();
    let Some(user) = check_password(accounts.into_inner(), form.username, form.password).await else {
        let page = html::login_page(&typed, Some(Alert::InvalidCredentials));
        return Ok(html_page(StatusCode::UNAUTHORIZED, page));
    };
    let remember = form.remember.is_some_and(|value| value == "on");
    auth.register(&user, remember).await.map_err(|_| PageError(html::ErrorPage::StoreDown))?;
    Ok(redirect(paths::HOME))
}

async fn devices(auth: Auth) -> Result<HttpResponse, PageError> {
    let Some(user) = auth.username() else { return Ok(anonymous(&auth)) };
    let devices = auth.devices().await?.unwrap_or_default();
    Ok(html_page(StatusCode::OK, html::devices_page(&user, &devices)))
}

async fn revoke(auth: Auth, serial: web::Path<String>) -> Result<HttpResponse, PageError> {
    if !auth.is_authenticated() {
        return Ok(anonymous(&auth));
    }
    let not_found = PageError(html::ErrorPage::NoSuchDevice);
    let Ok(serial) = Serial::from_base64(&serial) else { return Err(not_found) };
    match auth.revoke(&serial).await? {
        // Revoking this very device logs it out: back to the start.
        Some(true) if auth.is_authenticated() => Ok(redirect(paths::DEVICES)),
        Some(true) => Ok(redirect(paths::HOME)),
        Some(false) | None => Err(not_found),
    }
}

async fn logout(auth: Auth) -> Result<HttpResponse, PageError> {
    auth.logout().await?;
    Ok(redirect(paths::HOME))
}

async fn logout_everywhere(auth: Auth) -> Result<HttpResponse, PageError> {
    auth.logout_everywhere().await?;
    Ok(redirect(paths::HOME))
}

/// The middleware answers a store outage with JSON; on the pages, show a
/// page instead (keeping the status and every other header).
async fn outage_as_page(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, actix_web::Error> {
    let response = next.call(request).await?;
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if response.status() != StatusCode::SERVICE_UNAVAILABLE || !json {
        return Ok(response.map_into_left_body());
    }
    let page = html::ErrorPage::StoreDown.render();
    Ok(response
        .map_body(|head, _| {
            head.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            head.headers_mut().remove(header::CONTENT_LENGTH);
            BoxBody::new(page)
        })
        .map_into_right_body())
}

/// 404: JSON under `/api`, a page elsewhere.
async fn not_found(request: HttpRequest) -> HttpResponse {
    if request.path().starts_with("/api/") {
        ApiError(StatusCode::NOT_FOUND, error::NOT_FOUND).error_response()
    } else {
        PageError(html::ErrorPage::NotFound).error_response()
    }
}

/// Refuses state-changing requests another site sent (see
/// [`api::is_cross_site`]).
async fn refuse_cross_site(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let site = request.headers().get("sec-fetch-site").and_then(|value| value.to_str().ok());
    if api::is_cross_site(request.method().as_str(), site) {
        let refused = ApiError(StatusCode::FORBIDDEN, error::CROSS_SITE_REQUEST).error_response();
        return Ok(request.into_response(refused).map_into_right_body());
    }
    Ok(next.call(request).await?.map_into_left_body())
}
