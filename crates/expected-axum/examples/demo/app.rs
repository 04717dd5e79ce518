//! The demo's router: the JSON API and the HTML pages of the
//! `expected-demo-kit` contract, on the adapter's layer and extractors.
//!
//! Also compiled into `tests/scenarios.rs` and `tests/browser.rs`, which
//! serve it in-process.

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post, put};
use axum::{Form, Json, Router};
use expected_axum::expected_core::time::OffsetDateTime;
use expected_axum::expected_core::{EngineError, Serial, StoreError, Username};
use expected_axum::{
    Auth, AuthError, AuthUser, CsrfError, Error, ExpectedLayer, FreshLogin, FreshUser, LoginRequired,
    Session, SessionError, csrf_header, safe_next,
};
use expected_demo_kit::api::{
    self, ConfirmPasswordRequest, CsrfView, ErrorBody, Health, LoginInfo, LoginRequest, LoginResponse,
    LogoutOthersResponse, Me, SessionView, error,
};
use expected_demo_kit::html::{self, Alert, Theme, paths};
use expected_demo_kit::{DemoState, Passwords, Refused, csrf, metrics};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tower::ServiceBuilder;

// A path of its own: this file is also compiled into tests under other
// module paths.
#[path = "guards.rs"]
mod guards;

/// What every route runs first, outermost first: the refusal of
/// state-changing requests from other origins, then the body limit, as a
/// `ServiceBuilder` the rest of a router's stack goes on. Each router takes
/// its whole stack in one `layer` call: every `Router::layer` boxes each
/// route once more, and every boxed level is cloned again on each request by
/// the levels above it (22 allocations of a session hit went to that with
/// one `layer` call per middleware). A macro, because the type of the stack
/// with the rest on it is a different one per router.
macro_rules! outer_checks {
    () => {
        ServiceBuilder::new()
            .layer(guards::RefuseCrossSiteLayer)
            .layer(DefaultBodyLimit::max(api::MAX_BODY_BYTES))
    };
}

/// The router: the JSON API under `/api`, the pages, `/healthz`, `/metrics`.
///
/// `expected` runs around the API and the pages: a store outage answers 503
/// `store_unavailable` (as an HTML page on page routes) with cookies
/// untouched. The page guards send browsers to the login and
/// confirm-password pages, and `state.fresh_for` is how recent a password
/// the security page and `/api/sensitive` want. Bodies are limited to
/// [`api::MAX_BODY_BYTES`] (a session value to
/// [`api::MAX_SESSION_VALUE_BYTES`]), state-changing requests from
/// other origins are refused, and a logged-in user's state-changing
/// requests need their session's CSRF token (see the kit's `csrf` module).
/// Password checks are throttled and hashed on a bounded pool
/// (`state.passwords`).
pub(crate) fn app(expected: ExpectedLayer, state: DemoState) -> Router {
    let expected = expected
        .login_page(paths::LOGIN)
        .confirm_password_page(paths::CONFIRM_PASSWORD)
        .fresh_for(state.fresh_for);
    let session_value = put(api_session_put)
        .delete(api_session_delete)
        .layer(DefaultBodyLimit::max(api::MAX_SESSION_VALUE_BYTES));
    let api = Router::new()
        .route("/api/login", post(api_login))
        .route("/api/me", get(api_me))
        .route("/api/logins", get(api_logins))
        .route("/api/logins/{serial}", delete(api_revoke))
        .route("/api/logout", post(api_logout))
        .route("/api/logout-everywhere", post(api_logout_everywhere))
        .route("/api/logout-others", post(api_logout_others))
        .route("/api/session", get(api_session))
        .route("/api/session/{key}", session_value)
        .route("/api/confirm-password", post(api_confirm_password))
        .route("/api/sensitive", post(api_sensitive))
        .route("/api/csrf", get(api_csrf))
        .layer(outer_checks!().layer(expected.clone()).layer(guards::CsrfLayer::<false>));
    let pages = Router::new()
        .route(paths::HOME, get(home))
        .route(paths::LOGIN, get(login_page).post(login))
        .route(paths::THEME, post(set_theme))
        .route(paths::DEVICES, get(devices))
        .route(paths::REVOKE_ROUTE, post(revoke))
        .route(paths::CONFIRM_PASSWORD, get(confirm_password_page).post(confirm_password))
        .route(paths::SECURITY, get(security))
        .route(paths::LOGOUT, post(logout))
        .route(paths::LOGOUT_OTHERS, post(logout_others))
        .route(paths::LOGOUT_EVERYWHERE, post(logout_everywhere))
        .layer(
            outer_checks!()
                .layer(middleware::map_response(outage_as_page))
                .layer(expected)
                .layer(guards::CsrfLayer::<true>),
        );
    let rest = Router::new()
        .route("/healthz", get(|| async { Json(Health::ok()) }))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(outer_checks!());
    Router::new().merge(api).merge(pages).merge(rest).with_state(state)
}

// ---------------------------------------------------------------- JSON API

/// A JSON error: a status and an [`error`] code of the demo's, or one of
/// `expected`'s (401, 403, 413, 503, …) as the adapter answers it.
enum ApiError {
    Code(StatusCode, &'static str),
    Expected(Error),
    /// 429 `too_many_attempts` with `Retry-After`.
    Refused(Refused),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Code(status, code) => (status, Json(ErrorBody::new(code))).into_response(),
            Self::Expected(error) => error.into_response(),
            Self::Refused(refused) => {
                let body = Json(ErrorBody::new(error::TOO_MANY_ATTEMPTS));
                (StatusCode::TOO_MANY_REQUESTS, [retry_after(refused)], body).into_response()
            }
        }
    }
}

/// The `Retry-After` header of a refused password check.
fn retry_after(refused: Refused) -> (header::HeaderName, HeaderValue) {
    (header::RETRY_AFTER, HeaderValue::from(refused.retry_after_secs()))
}

impl<E: Into<Error>> From<E> for ApiError {
    fn from(error: E) -> Self {
        Self::Expected(error.into())
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
                Err(ApiError::Code(StatusCode::BAD_REQUEST, error::BODY_TOO_LARGE))
            }
            Err(_) => Err(ApiError::Code(StatusCode::BAD_REQUEST, error::INVALID_BODY)),
        }
    }
}

/// Checks a password for a client at `peer`: throttled, and hashed on the
/// kit's bounded pool, off the async workers (Argon2 is CPU-bound).
async fn check_password(
    passwords: &Passwords,
    peer: SocketAddr,
    username: &str,
    password: &str,
) -> Result<Option<Username>, Refused> {
    let ip: IpAddr = peer.ip();
    passwords.check(Some(ip), username, password).await
}

async fn api_login(
    State(state): State<DemoState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    auth: Auth,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let checked = check_password(&state.passwords, peer, &body.username, &body.password).await;
    let Some(user) = checked.map_err(ApiError::Refused)? else {
        return Err(ApiError::Code(StatusCode::UNAUTHORIZED, error::INVALID_CREDENTIALS));
    };
    auth.register(&user, body.remember).await?;
    Ok(Json(LoginResponse { username: user.to_string(), remembered: body.remember }))
}

async fn api_me(
    State(state): State<DemoState>,
    AuthUser(user): AuthUser,
    auth: Auth,
) -> Result<Json<Me>, ApiError> {
    let fresh = auth.is_fresh(state.fresh_for).await?;
    Ok(Json(Me::new(&user, fresh)))
}

async fn api_logins(auth: Auth) -> Result<Json<Vec<LoginInfo>>, ApiError> {
    let devices = auth.devices().await?;
    Ok(Json(devices.iter().map(LoginInfo::from).collect()))
}

async fn api_revoke(
    _: AuthUser,
    auth: Auth,
    serial: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let not_found = ApiError::Code(StatusCode::NOT_FOUND, error::NOT_FOUND);
    let Some(serial) = serial.ok().and_then(|Path(text)| Serial::from_base64(&text).ok()) else {
        return Err(not_found);
    };
    if auth.revoke(&serial).await? { Ok(StatusCode::NO_CONTENT) } else { Err(not_found) }
}

async fn api_logout(auth: Auth) -> Result<StatusCode, ApiError> {
    auth.logout().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn api_logout_everywhere(auth: Auth) -> Result<StatusCode, ApiError> {
    auth.logout_everywhere().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn api_logout_others(auth: Auth) -> Result<Json<LogoutOthersResponse>, ApiError> {
    let ended = auth.logout_others().await?;
    Ok(Json(LogoutOthersResponse { logins: ended.logins, sessions: ended.sessions }))
}

async fn api_session(session: Session) -> Result<Json<SessionView>, ApiError> {
    Ok(Json(SessionView::new(session.data().await?)))
}

/// The logged-in user's CSRF token, for scripts (made on first use).
async fn api_csrf(_: AuthUser, session: Session) -> Result<Json<CsrfView>, ApiError> {
    Ok(Json(CsrfView { token: session.csrf_token().await? }))
}

/// The `{key}` of a session route, if it is one (see [`api::is_session_key`]).
fn session_key(key: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    match key {
        Ok(Path(key)) if api::is_session_key(&key) => Ok(key),
        _ => Err(ApiError::Code(StatusCode::BAD_REQUEST, error::INVALID_KEY)),
    }
}

async fn api_session_put(
    session: Session,
    key: Result<Path<String>, PathRejection>,
    value: Result<ApiJson<serde_json::Value>, ApiError>,
) -> Result<StatusCode, ApiError> {
    let key = session_key(key)?;
    let ApiJson(value) = value?;
    session.insert(&key, value).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn api_session_delete(
    session: Session,
    key: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    session.remove(&session_key(key)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn api_confirm_password(
    State(state): State<DemoState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    AuthUser(user): AuthUser,
    auth: Auth,
    ApiJson(body): ApiJson<ConfirmPasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let checked = check_password(&state.passwords, peer, user.username.as_str(), &body.password).await;
    if checked.map_err(ApiError::Refused)?.is_none() {
        return Err(ApiError::Code(StatusCode::UNAUTHORIZED, error::INVALID_CREDENTIALS));
    }
    auth.confirm_password().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stands for anything that wants a password typed within
/// `EXPECTED_FRESH_SECS` (changing it, deleting the account).
async fn api_sensitive(FreshUser(_): FreshUser) -> StatusCode {
    StatusCode::NO_CONTENT
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

/// The 429 page of a refused password check, with `Retry-After`.
fn too_many_attempts(refused: Refused) -> Response {
    let page = html::ErrorPage::TooManyAttempts;
    (StatusCode::TOO_MANY_REQUESTS, [retry_after(refused)], Html(page.render())).into_response()
}

/// `expected`'s errors as pages (see the kit's `ErrorPage` conversions).
macro_rules! page_errors {
    ($($error:ty),*) => {$(
        impl From<$error> for PageError {
            fn from(error: $error) -> Self {
                Self(error.into())
            }
        }
    )*};
}

page_errors!(AuthError, SessionError, StoreError, EngineError);

/// Where a form goes once done: `next` if it is a path of this site, else
/// home.
fn next_or_home(next: Option<&str>) -> &str {
    safe_next(next.unwrap_or(paths::HOME))
}

/// The `next` query parameter of the login and confirm-password pages, made
/// safe.
fn next_of(uri: &Uri) -> String {
    next_or_home(html::query_param(uri.query(), "next").as_deref()).to_owned()
}

/// What a page shows someone not logged in: the login form, with the theft
/// alert when this very request detected a replayed cookie (a redirect would
/// lose that), or a redirect to it, back to `here` once logged in.
async fn anonymous(auth: &Auth, session: &Session, here: &str) -> Result<Response, PageError> {
    if auth.theft().await?.is_some() {
        let data = session.data().await?;
        return Ok(Html(html::login_page(&data, "", Some(Alert::Theft), here)).into_response());
    }
    Ok(Redirect::to(&paths::with_next(paths::LOGIN, here)).into_response())
}

async fn home(State(state): State<DemoState>, auth: Auth, session: Session) -> Result<Response, PageError> {
    let data = session.data().await?;
    let page = match auth.user().await? {
        Some(user) => html::home_page(&data, &user, state.fresh_for, OffsetDateTime::now_utc()),
        None => {
            let alert = auth.theft().await?.map(|_| Alert::Theft);
            html::login_page(&data, "", alert, paths::HOME)
        }
    };
    Ok(Html(page).into_response())
}

async fn login_page(auth: Auth, session: Session, uri: Uri) -> Result<Response, PageError> {
    let next = next_of(&uri);
    if auth.user().await?.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    let data = session.data().await?;
    let alert = auth.theft().await?.map(|_| Alert::Theft);
    Ok(Html(html::login_page(&data, "", alert, &next)).into_response())
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    remember: Option<String>,
    next: Option<String>,
}

async fn login(
    State(state): State<DemoState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    auth: Auth,
    session: Session,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Ok(Form(form)) = form else {
        return Err(PageError(html::ErrorPage::BadForm));
    };
    let next = next_or_home(form.next.as_deref()).to_owned();
    let typed = form.username.clone();
    let checked = match check_password(&state.passwords, peer, &form.username, &form.password).await {
        Ok(checked) => checked,
        Err(refused) => return Ok(too_many_attempts(refused)),
    };
    let Some(user) = checked else {
        let data = session.data().await?;
        let page = html::login_page(&data, &typed, Some(Alert::InvalidCredentials), &next);
        return Ok((StatusCode::UNAUTHORIZED, Html(page)).into_response());
    };
    let remember = form.remember.is_some_and(|value| value == "on");
    auth.register(&user, remember).await?;
    Ok(Redirect::to(&next).into_response())
}

#[derive(Deserialize)]
struct ThemeForm {
    theme: String,
    next: Option<String>,
}

async fn set_theme(
    session: Session,
    form: Result<Form<ThemeForm>, FormRejection>,
) -> Result<Redirect, PageError> {
    let Some((theme, form)) = form.ok().and_then(|Form(form)| Some((Theme::parse(&form.theme)?, form)))
    else {
        return Err(PageError(html::ErrorPage::BadForm));
    };
    session.insert(Theme::SESSION_KEY, theme.as_str()).await?;
    Ok(Redirect::to(next_or_home(form.next.as_deref())))
}

async fn devices(auth: Auth, session: Session, uri: Uri) -> Result<Response, PageError> {
    let Some(user) = auth.user().await? else { return anonymous(&auth, &session, paths::DEVICES).await };
    let data = session.data().await?;
    let devices = auth.devices().await?;
    let ended = LogoutOthersResponse::from_query(uri.query());
    Ok(Html(html::devices_page(&data, &user.username, &devices, ended)).into_response())
}

async fn revoke(
    auth: Auth,
    session: Session,
    serial: Result<Path<String>, PathRejection>,
) -> Result<Response, PageError> {
    if auth.user().await?.is_none() {
        return anonymous(&auth, &session, paths::DEVICES).await;
    }
    let not_found = PageError(html::ErrorPage::NoSuchDevice);
    let Some(serial) = serial.ok().and_then(|Path(text)| Serial::from_base64(&text).ok()) else {
        return Err(not_found);
    };
    if !auth.revoke(&serial).await? {
        return Err(not_found);
    }
    // Revoking this very device logs it out: back to the start.
    let back = if auth.user().await?.is_some() { paths::DEVICES } else { paths::HOME };
    Ok(Redirect::to(back).into_response())
}

async fn confirm_password_page(
    State(state): State<DemoState>,
    LoginRequired(user): LoginRequired,
    session: Session,
    uri: Uri,
) -> Result<Html<String>, PageError> {
    let data = session.data().await?;
    let next = next_of(&uri);
    Ok(Html(html::confirm_password_page(&data, &user.username, &next, state.fresh_for, false)))
}

#[derive(Deserialize)]
struct ConfirmForm {
    password: String,
    next: Option<String>,
}

async fn confirm_password(
    State(state): State<DemoState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    LoginRequired(user): LoginRequired,
    auth: Auth,
    session: Session,
    form: Result<Form<ConfirmForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Ok(Form(form)) = form else {
        return Err(PageError(html::ErrorPage::BadForm));
    };
    let next = next_or_home(form.next.as_deref()).to_owned();
    let checked = match check_password(&state.passwords, peer, user.username.as_str(), &form.password).await {
        Ok(checked) => checked,
        Err(refused) => return Ok(too_many_attempts(refused)),
    };
    if checked.is_none() {
        let data = session.data().await?;
        let page = html::confirm_password_page(&data, &user.username, &next, state.fresh_for, true);
        return Ok((StatusCode::UNAUTHORIZED, Html(page)).into_response());
    }
    auth.confirm_password().await?;
    Ok(Redirect::to(&next).into_response())
}

async fn security(
    State(state): State<DemoState>,
    FreshLogin(user): FreshLogin,
    session: Session,
) -> Result<Html<String>, PageError> {
    let data = session.data().await?;
    Ok(Html(html::security_page(&data, &user, state.fresh_for, OffsetDateTime::now_utc())))
}

async fn logout(auth: Auth) -> Result<Redirect, PageError> {
    auth.logout().await?;
    Ok(Redirect::to(paths::HOME))
}

async fn logout_others(auth: Auth) -> Result<Redirect, PageError> {
    let ended = auth.logout_others().await?;
    Ok(Redirect::to(&paths::devices_after_logout_others(ended.logins, ended.sessions)))
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

/// `GET /metrics`: the Prometheus text, outside `expected` (no store call).
async fn metrics(State(state): State<DemoState>) -> Response {
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], state.metrics.render()).into_response()
}

/// 404: JSON under `/api`, a page elsewhere.
async fn not_found(request: Request) -> Response {
    if request.uri().path().starts_with("/api/") {
        ApiError::Code(StatusCode::NOT_FOUND, error::NOT_FOUND).into_response()
    } else {
        PageError(html::ErrorPage::NotFound).into_response()
    }
}

/// The CSRF rule (the kit's `csrf` module): a logged-in user's
/// state-changing request presents the session's token, or is refused. On
/// the API (`PAGE` false) the token comes in the `X-CSRF-Token` header and a
/// refusal is 403 `invalid_csrf_token`. On the pages (`PAGE` true) a
/// logged-in user's page first gets the token (so its forms carry it), the
/// token comes in the form's `csrf_token` field (or the header), and a
/// refusal is the 403 "form expired" page.
pub(crate) async fn csrf_guard<const PAGE: bool, I>(
    auth: Auth,
    session: Session,
    request: Request,
    next: I,
) -> Response
where
    I: tower::Service<Request, Response = Response, Error = std::convert::Infallible>,
{
    match csrf::token_needed(&auth, &session, request.method().as_str(), PAGE).await {
        Ok(false) => return guards::run(next, request).await,
        Ok(true) => {}
        Err(failed) => return Error::from(failed).into_response(),
    }
    let (parts, body) = request.into_parts();
    let mut presented = csrf_header(&parts.headers).map(str::to_owned);
    let body = if PAGE {
        let Ok(body) = axum::body::to_bytes(body, api::MAX_BODY_BYTES).await else {
            return PageError(html::ErrorPage::BadForm).into_response();
        };
        if presented.is_none() {
            let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok());
            presented = csrf::form_token(content_type, &body);
        }
        // The handler reads the form again.
        Body::from(body)
    } else {
        body
    };
    match session.verify_csrf(presented.as_deref()).await {
        Ok(()) => guards::run(next, Request::from_parts(parts, body)).await,
        // A store outage: the layer's 503 (made a page by `outage_as_page`).
        Err(CsrfError::Session(failed)) => Error::from(failed).into_response(),
        Err(_) if PAGE => PageError(html::ErrorPage::FormExpired).into_response(),
        Err(refused) => Error::from(refused).into_response(),
    }
}
