//! The demo's router: the JSON API and the HTML pages of the
//! `expected-demo-kit` contract, on the adapter's layer and extractors.
//!
//! Also compiled into `tests/scenarios.rs` and `tests/browser.rs`, which
//! serve it in-process.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use axum::{Form, Json, Router};
use expected_axum::expected_core::{EngineError, Serial, StoreError, Username};
use expected_axum::{Auth, AuthUser, ExpectedLayer};
use expected_demo_kit::Accounts;
use expected_demo_kit::api::{
    self, ErrorBody, Health, LoginInfo, LoginRequest, LoginResponse, Me, ViaName, error,
};
use expected_demo_kit::html::{self, Alert, paths};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The router: the JSON API under `/api`, the pages, `/healthz`.
///
/// `expected` runs around the API and the pages: a store outage answers 503
/// `store_unavailable` (as an HTML page on page routes) with cookies
/// untouched. Bodies are limited to [`api::MAX_BODY_BYTES`], and
/// state-changing requests from other sites are refused.
pub(crate) fn app(expected: ExpectedLayer, accounts: Arc<Accounts>) -> Router {
    let api = Router::new()
        .route("/api/login", post(api_login))
        .route("/api/me", get(api_me))
        .route("/api/logins", get(api_logins))
        .route("/api/logins/{serial}", delete(api_revoke))
        .route("/api/logout", post(api_logout))
        .route("/api/logout-everywhere", post(api_logout_everywhere))
        .layer(expected.clone());
    let pages = Router::new()
        .route(paths::HOME, get(home))
        .route(paths::LOGIN, get(login_page).post(login))
        .route(paths::DEVICES, get(devices))
        .route(paths::REVOKE_ROUTE, post(revoke))
        .route(paths::LOGOUT, post(logout))
        .route(paths::LOGOUT_EVERYWHERE, post(logout_everywhere))
        .layer(expected)
        .layer(middleware::map_response(outage_as_page));
    Router::new()
        .merge(api)
        .merge(pages)
        .route("/healthz", get(|| async { Json(Health::ok()) }))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(api::MAX_BODY_BYTES))
        .layer(middleware::from_fn(refuse_cross_site))
        .with_state(accounts)
}

// ---------------------------------------------------------------- JSON API

/// A JSON error: a status and an [`error`] code.
struct ApiError(StatusCode, &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody::new(self.1))).into_response()
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

/// `Json<T>` whose rejections are [`ApiError`]s: 400 `body_too_large` over
/// the limit, 400 `invalid_body` for anything else (syntax, types, missing
/// fields, content type).
struct ApiJson<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError(StatusCode::BAD_REQUEST, error::BODY_TOO_LARGE))
            }
            Err(_) => Err(ApiError(StatusCode::BAD_REQUEST, error::INVALID_BODY)),
        }
    }
}

/// Checks a password off the async workers (Argon2 is CPU-bound).
async fn check_password(accounts: Arc<Accounts>, username: String, password: String) -> Option<Username> {
    tokio::task::spawn_blocking(move || accounts.verify(&username, &password)).await.ok().flatten()
}

async fn api_login(
    State(accounts): State<Arc<Accounts>>,
    auth: Auth,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let Some(user) = check_password(accounts, body.username, body.password).await else {
        return Err(ApiError(StatusCode::UNAUTHORIZED, error::INVALID_CREDENTIALS));
    };
    auth.register(&user, body.remember).await?;
    Ok(Json(LoginResponse { username: user.to_string(), remembered: body.remember }))
}

async fn api_me(AuthUser(user): AuthUser, auth: Auth) -> Json<Me> {
    let via = auth.via().map_or(ViaName::Session, ViaName::from);
    Json(Me { username: user.to_string(), via })
}

async fn api_logins(_: AuthUser, auth: Auth) -> Result<Json<Vec<LoginInfo>>, ApiError> {
    let devices = auth.devices().await?.unwrap_or_default();
    Ok(Json(devices.iter().map(LoginInfo::from).collect()))
}

async fn api_revoke(
    _: AuthUser,
    auth: Auth,
    serial: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let not_found = ApiError(StatusCode::NOT_FOUND, error::NOT_FOUND);
    let Some(serial) = serial.ok().and_then(|Path(text)| Serial::from_base64(&text).ok()) else {
        return Err(not_found);
    };
    match auth.revoke(&serial).await? {
        Some(true) => Ok(StatusCode::NO_CONTENT),
        Some(false) | None => Err(not_found),
    }
}

async fn api_logout(auth: Auth) -> Result<StatusCode, ApiError> {
    auth.logout().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn api_logout_everywhere(_: AuthUser, auth: Auth) -> Result<StatusCode, ApiError> {
    auth.logout_everywhere().await?;
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------------- pages

/// An HTML error page with its status.
struct PageError(html::ErrorPage);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Html(self.0.render())).into_response()
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
fn anonymous(auth: &Auth) -> Response {
    if auth.theft_detected() {
        Html(html::login_page("", Some(Alert::Theft))).into_response()
    } else {
        Redirect::to(paths::HOME).into_response()
    }
}

async fn home(auth: Auth) -> Response {
    match auth.username() {
        Some(user) => Html(html::home_page(&user, auth.via(), auth.login().as_ref())).into_response(),
        None => {
            let alert = auth.theft_detected().then_some(Alert::Theft);
            Html(html::login_page("", alert)).into_response()
        }
    }
}

async fn login_page(auth: Auth) -> Response {
    match auth.username() {
        Some(_) => Redirect::to(paths::HOME).into_response(),
        None => {
            let alert = auth.theft_detected().then_some(Alert::Theft);
            Html(html::login_page("", alert)).into_response()
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
    State(accounts): State<Arc<Accounts>>,
    auth: Auth,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Ok(Form(form)) = form else {
        return Err(PageError(html::ErrorPage::BadForm));
    };
    let typed = form.username.clone();
    let Some(user) = check_password(accounts, form.username, form.password).await else {
        let page = html::login_page(&typed, Some(Alert::InvalidCredentials));
        return Ok((StatusCode::UNAUTHORIZED, Html(page)).into_response());
    };
    let remember = form.remember.is_some_and(|value| value == "on");
    auth.register(&user, remember).await.map_err(|_| PageError(html::ErrorPage::StoreDown))?;
    Ok(Redirect::to(paths::HOME).into_response())
}

async fn devices(auth: Auth) -> Result<Response, PageError> {
    let Some(user) = auth.username() else { return Ok(anonymous(&auth)) };
    let devices = auth.devices().await?.unwrap_or_default();
    Ok(Html(html::devices_page(&user, &devices)).into_response())
}

async fn revoke(auth: Auth, serial: Result<Path<String>, PathRejection>) -> Result<Response, PageError> {
    if !auth.is_authenticated() {
        return Ok(anonymous(&auth));
    }
    let not_found = PageError(html::ErrorPage::NoSuchDevice);
    let Some(serial) = serial.ok().and_then(|Path(text)| Serial::from_base64(&text).ok()) else {
        return Err(not_found);
    };
    match auth.revoke(&serial).await? {
        // Revoking this very device logs it out: back to the start.
        Some(true) if auth.is_authenticated() => Ok(Redirect::to(paths::DEVICES).into_response()),
        Some(true) => Ok(Redirect::to(paths::HOME).into_response()),
        Some(false) | None => Err(not_found),
    }
}

async fn logout(auth: Auth) -> Result<Redirect, PageError> {
    auth.logout().await?;
    Ok(Redirect::to(paths::HOME))
}

async fn logout_everywhere(auth: Auth) -> Result<Redirect, PageError> {
    auth.logout_everywhere().await?;
    Ok(Redirect::to(paths::HOME))
}

/// The layer answers a store outage with JSON; on the pages, show a page
/// instead (keeping the status and every other header).
async fn outage_as_page(response: Response) -> Response {
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if response.status() != StatusCode::SERVICE_UNAVAILABLE || !json {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(html::ErrorPage::StoreDown.render()))
}

/// 404: JSON under `/api`, a page elsewhere.
async fn not_found(request: Request) -> Response {
    if request.uri().path().starts_with("/api/") {
        ApiError(StatusCode::NOT_FOUND, error::NOT_FOUND).into_response()
    } else {
        PageError(html::ErrorPage::NotFound).into_response()
    }
}

/// Refuses state-changing requests another site sent (see
/// [`api::is_cross_site`]).
async fn refuse_cross_site(request: Request, next: Next) -> Response {
    let site = request.headers().get("sec-fetch-site").and_then(|value| value.to_str().ok());
    if api::is_cross_site(request.method().as_str(), site) {
        return ApiError(StatusCode::FORBIDDEN, error::CROSS_SITE_REQUEST).into_response();
    }
    next.run(request).await
}
