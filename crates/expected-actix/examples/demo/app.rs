//! The demo's app: the JSON API and the HTML pages of the
//! `expected-demo-kit` contract, on the adapter's middleware and extractors.
//! Route by route the same as the axum demo's router.
//!
//! Also compiled into `tests/scenarios.rs` and `tests/browser.rs`, which
//! serve it in-process.

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, ResponseError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpRequest, HttpResponse, Route, guard, web};
use expected_actix::expected_core::time::OffsetDateTime;
use expected_actix::expected_core::{EngineError, Serial, StoreError, Username};
use expected_actix::{
    Auth, AuthError, AuthUser, CsrfError, Error, ExpectedMiddleware, FreshLogin, FreshUser, LoginRequired,
    Session, SessionError, check_origin_values, csrf, safe_next,
};
use expected_demo_kit::api::{
    self, ConfirmPasswordRequest, CsrfView, ErrorBody, Health, LoginInfo, LoginRequest, LoginResponse,
    LogoutOthersResponse, Me, SessionView, error,
};
use expected_demo_kit::html::{self, Alert, Theme, paths};
use expected_demo_kit::{DemoState, Passwords, Refused, metrics};
use serde::Deserialize;

/// The app: the JSON API under `/api`, the pages, `/healthz`, `/metrics`.
///
/// `expected` runs around the API and the pages (each resource is wrapped, so
/// `/healthz`, `/metrics` and the 404 fallback never touch the store): a store outage
/// answers 503 `store_unavailable` (as an HTML page on page routes) with
/// cookies untouched. The page guards send browsers to the login and
/// confirm-password pages, and `state.fresh_for` is how recent a password
/// the security page and `/api/sensitive` want. Bodies are limited to
/// [`api::MAX_BODY_BYTES`] (a session value to
/// [`api::MAX_SESSION_VALUE_BYTES`]), state-changing requests from
/// other origins are refused, and a logged-in user's state-changing
/// requests need their session's CSRF token (see the kit's `csrf` module).
/// Password checks are throttled and hashed on a bounded pool
/// (`state.passwords`).
pub(crate) fn app(
    expected: ExpectedMiddleware,
    state: DemoState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let expected = expected
        .login_page(paths::LOGIN)
        .confirm_password_page(paths::CONFIRM_PASSWORD)
        .fresh_for(state.fresh_for);
    let api = |path: &str| web::resource(path).wrap(from_fn(csrf_guard::<false>)).wrap(expected.clone());
    let page = |path: &str| {
        web::resource(path)
            .wrap(from_fn(csrf_guard::<true>))
            .wrap(expected.clone())
            .wrap(from_fn(outage_as_page))
    };
    let session_value = api("/api/session/{key}")
        .app_data(json_config(api::MAX_SESSION_VALUE_BYTES))
        .route(web::put().to(api_session_put))
        .route(web::delete().to(api_session_delete));
    App::new()
        .app_data(web::Data::new(state))
        .app_data(json_config(api::MAX_BODY_BYTES))
        .app_data(web::FormConfig::default().limit(api::MAX_BODY_BYTES))
        .service(api("/api/login").route(web::post().to(api_login)))
        .service(api("/api/me").route(get().to(api_me)))
        .service(api("/api/logins").route(get().to(api_logins)))
        .service(api("/api/logins/{serial}").route(web::delete().to(api_revoke)))
        .service(api("/api/logout").route(web::post().to(api_logout)))
        .service(api("/api/logout-everywhere").route(web::post().to(api_logout_everywhere)))
        .service(api("/api/logout-others").route(web::post().to(api_logout_others)))
        .service(api("/api/session").route(get().to(api_session)))
        .service(session_value)
        .service(api("/api/confirm-password").route(web::post().to(api_confirm_password)))
        .service(api("/api/sensitive").route(web::post().to(api_sensitive)))
        .service(api("/api/csrf").route(get().to(api_csrf)))
        .service(page(paths::HOME).route(get().to(home)))
        .service(page(paths::LOGIN).route(get().to(login_page)).route(web::post().to(login)))
        .service(page(paths::THEME).route(web::post().to(set_theme)))
        .service(page(paths::DEVICES).route(get().to(devices)))
        .service(page(paths::REVOKE_ROUTE).route(web::post().to(revoke)))
        .service(
            page(paths::CONFIRM_PASSWORD)
                .route(get().to(confirm_password_page))
                .route(web::post().to(confirm_password)),
        )
        .service(page(paths::SECURITY).route(get().to(security)))
        .service(page(paths::LOGOUT).route(web::post().to(logout)))
        .service(page(paths::LOGOUT_OTHERS).route(web::post().to(logout_others)))
        .service(page(paths::LOGOUT_EVERYWHERE).route(web::post().to(logout_everywhere)))
        .route("/healthz", get().to(|| async { HttpResponse::Ok().json(Health::ok()) }))
        .route("/metrics", get().to(metrics))
        .default_service(web::to(not_found))
        .wrap(from_fn(refuse_cross_site))
}

/// GET, and HEAD with it (as axum's `get` routes answer both).
fn get() -> Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// JSON bodies up to `limit` bytes, refused as [`ApiError`]s: 400
/// `body_too_large` over the limit, 400 `invalid_body` for anything else.
fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default().limit(limit).error_handler(|error, _| {
        let code = match error {
            JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
                error::BODY_TOO_LARGE
            }
            _ => error::INVALID_BODY,
        };
        ApiError::Code(StatusCode::BAD_REQUEST, code).into()
    })
}

// ---------------------------------------------------------------- JSON API

/// A JSON error: a status and an [`error`] code of the demo's, one of
/// `expected`'s (401, 403, 413, 503, …) as the adapter answers it, or an
/// extractor's (already answered by [`json_config`]).
#[derive(Debug)]
enum ApiError {
    Code(StatusCode, &'static str),
    Expected(Error),
    Rejected(actix_web::Error),
    /// 429 `too_many_attempts` with `Retry-After`.
    Refused(Refused),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Code(_, code) => f.write_str(code),
            Self::Expected(error) => std::fmt::Display::fmt(error, f),
            Self::Rejected(error) => std::fmt::Display::fmt(error, f),
            Self::Refused(refused) => std::fmt::Display::fmt(refused, f),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Code(status, _) => *status,
            Self::Expected(error) => error.status_code(),
            Self::Rejected(error) => error.as_response_error().status_code(),
            Self::Refused(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Code(status, code) => HttpResponse::build(*status).json(ErrorBody::new(code)),
            Self::Expected(error) => error.error_response(),
            Self::Rejected(error) => error.error_response(),
            Self::Refused(refused) => HttpResponse::TooManyRequests()
                .insert_header(retry_after(*refused))
                .json(ErrorBody::new(error::TOO_MANY_ATTEMPTS)),
        }
    }
}

impl<E: Into<Error>> From<E> for ApiError {
    fn from(error: E) -> Self {
        Self::Expected(error.into())
    }
}

/// The `Retry-After` header of a refused password check.
fn retry_after(refused: Refused) -> (header::HeaderName, HeaderValue) {
    (header::RETRY_AFTER, HeaderValue::from(refused.retry_after_secs()))
}

/// Checks a password for the client of `request`: throttled, and hashed on
/// the kit's bounded pool, off the async workers (Argon2 is CPU-bound).
async fn check_password(
    passwords: &Passwords,
    request: &HttpRequest,
    username: &str,
    password: &str,
) -> Result<Option<Username>, Refused> {
    let ip = request.peer_addr().map(|peer| peer.ip());
    passwords.check(ip, username, password).await
}

async fn api_login(
    state: web::Data<DemoState>,
    request: HttpRequest,
    auth: Auth,
    body: web::Json<LoginRequest>,
) -> Result<web::Json<LoginResponse>, ApiError> {
    let body = body.into_inner();
    let checked = check_password(&state.passwords, &request, &body.username, &body.password).await;
    let Some(user) = checked.map_err(ApiError::Refused)? else {
        return Err(ApiError::Code(StatusCode::UNAUTHORIZED, error::INVALID_CREDENTIALS));
    };
    auth.register(&user, body.remember).await?;
    Ok(web::Json(LoginResponse { username: user.to_string(), remembered: body.remember }))
}

async fn api_me(
    state: web::Data<DemoState>,
    AuthUser(user): AuthUser,
    auth: Auth,
) -> Result<web::Json<Me>, ApiError> {
    let fresh = auth.is_fresh(state.fresh_for).await?;
    Ok(web::Json(Me::new(&user, fresh)))
}

async fn api_logins(auth: Auth) -> Result<web::Json<Vec<LoginInfo>>, ApiError> {
    let devices = auth.devices().await?;
    Ok(web::Json(devices.iter().map(LoginInfo::from).collect()))
}

async fn api_revoke(_: AuthUser, auth: Auth, serial: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let not_found = ApiError::Code(StatusCode::NOT_FOUND, error::NOT_FOUND);
    let Ok(serial) = Serial::from_base64(&serial) else { return Err(not_found) };
    if auth.revoke(&serial).await? { Ok(HttpResponse::NoContent().finish()) } else { Err(not_found) }
}

async fn api_logout(auth: Auth) -> Result<HttpResponse, ApiError> {
    auth.logout().await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn api_logout_everywhere(auth: Auth) -> Result<HttpResponse, ApiError> {
    auth.logout_everywhere().await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn api_logout_others(auth: Auth) -> Result<web::Json<LogoutOthersResponse>, ApiError> {
    let ended = auth.logout_others().await?;
    Ok(web::Json(LogoutOthersResponse { logins: ended.logins, sessions: ended.sessions }))
}

async fn api_session(session: Session) -> Result<web::Json<SessionView>, ApiError> {
    Ok(web::Json(SessionView::new(session.data().await?)))
}

/// The logged-in user's CSRF token, for scripts (made on first use).
async fn api_csrf(_: AuthUser, session: Session) -> Result<web::Json<CsrfView>, ApiError> {
    Ok(web::Json(CsrfView { token: session.csrf_token().await? }))
}

/// The `{key}` of a session route, if it is one (see [`api::is_session_key`]).
fn session_key(key: Result<web::Path<String>, actix_web::Error>) -> Result<String, ApiError> {
    match key {
        Ok(key) if api::is_session_key(&key) => Ok(key.into_inner()),
        _ => Err(ApiError::Code(StatusCode::BAD_REQUEST, error::INVALID_KEY)),
    }
}

async fn api_session_put(
    session: Session,
    key: Result<web::Path<String>, actix_web::Error>,
    value: Result<web::Json<serde_json::Value>, actix_web::Error>,
) -> Result<HttpResponse, ApiError> {
    let key = session_key(key)?;
    let value = value.map_err(ApiError::Rejected)?.into_inner();
    session.insert(&key, value).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn api_session_delete(
    session: Session,
    key: Result<web::Path<String>, actix_web::Error>,
) -> Result<HttpResponse, ApiError> {
    session.remove(&session_key(key)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn api_confirm_password(
    state: web::Data<DemoState>,
    request: HttpRequest,
    AuthUser(user): AuthUser,
    auth: Auth,
    body: web::Json<ConfirmPasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let password = body.into_inner().password;
    let checked = check_password(&state.passwords, &request, user.username.as_str(), &password).await;
    if checked.map_err(ApiError::Refused)?.is_none() {
        return Err(ApiError::Code(StatusCode::UNAUTHORIZED, error::INVALID_CREDENTIALS));
    }
    auth.confirm_password().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Stands for anything that wants a password typed within
/// `EXPECTED_FRESH_SECS` (changing it, deleting the account).
async fn api_sensitive(FreshUser(_): FreshUser) -> HttpResponse {
    HttpResponse::NoContent().finish()
}

// ------------------------------------------------------------------- pages

/// An HTML page with its status.
fn html_page(status: StatusCode, page: String) -> HttpResponse {
    HttpResponse::build(status).content_type(ContentType::html()).body(page)
}

/// The 429 page of a refused password check, with `Retry-After`.
fn too_many_attempts(refused: Refused) -> HttpResponse {
    let mut page = html_page(StatusCode::TOO_MANY_REQUESTS, html::ErrorPage::TooManyAttempts.render());
    let (name, value) = retry_after(refused);
    page.headers_mut().insert(name, value);
    page
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
fn next_of(request: &HttpRequest) -> String {
    next_or_home(html::query_param(Some(request.query_string()), "next").as_deref()).to_owned()
}

/// What a page shows someone not logged in: the login form, with the theft
/// alert when this very request detected a replayed cookie (a redirect would
/// lose that), or a redirect to it, back to `here` once logged in.
async fn anonymous(auth: &Auth, session: &Session, here: &str) -> Result<HttpResponse, PageError> {
    if auth.theft().await?.is_some() {
        let data = session.data().await?;
        return Ok(html_page(StatusCode::OK, html::login_page(&data, "", Some(Alert::Theft), here)));
    }
    Ok(redirect(&paths::with_next(paths::LOGIN, here)))
}

async fn home(state: web::Data<DemoState>, auth: Auth, session: Session) -> Result<HttpResponse, PageError> {
    let data = session.data().await?;
    let page = match auth.user().await? {
        Some(user) => html::home_page(&data, &user, state.fresh_for, OffsetDateTime::now_utc()),
        None => {
            let alert = auth.theft().await?.map(|_| Alert::Theft);
            html::login_page(&data, "", alert, paths::HOME)
        }
    };
    Ok(html_page(StatusCode::OK, page))
}

async fn login_page(auth: Auth, session: Session, request: HttpRequest) -> Result<HttpResponse, PageError> {
    let next = next_of(&request);
    if auth.user().await?.is_some() {
        return Ok(redirect(&next));
    }
    let data = session.data().await?;
    let alert = auth.theft().await?.map(|_| Alert::Theft);
    Ok(html_page(StatusCode::OK, html::login_page(&data, "", alert, &next)))
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    remember: Option<String>,
    next: Option<String>,
}

async fn login(
    state: web::Data<DemoState>,
    request: HttpRequest,
    auth: Auth,
    session: Session,
    form: Result<web::Form<LoginForm>, actix_web::Error>,
) -> Result<HttpResponse, PageError> {
    let Ok(web::Form(form)) = form else {
        return Err(PageError(html::ErrorPage::BadForm));
    };
    let next = next_or_home(form.next.as_deref()).to_owned();
    let typed = form.username.clone();
    let checked = match check_password(&state.passwords, &request, &form.username, &form.password).await {
        Ok(checked) => checked,
        Err(refused) => return Ok(too_many_attempts(refused)),
    };
    let Some(user) = checked else {
        let data = session.data().await?;
        let page = html::login_page(&data, &typed, Some(Alert::InvalidCredentials), &next);
        return Ok(html_page(StatusCode::UNAUTHORIZED, page));
    };
    let remember = form.remember.is_some_and(|value| value == "on");
    auth.register(&user, remember).await?;
    Ok(redirect(&next))
}

#[derive(Deserialize)]
struct ThemeForm {
    theme: String,
    next: Option<String>,
}

async fn set_theme(
    session: Session,
    form: Result<web::Form<ThemeForm>, actix_web::Error>,
) -> Result<HttpResponse, PageError> {
    let Some((theme, form)) = form.ok().and_then(|web::Form(form)| Some((Theme::parse(&form.theme)?, form)))
    else {
        return Err(PageError(html::ErrorPage::BadForm));
    };
    session.insert(Theme::SESSION_KEY, theme.as_str()).await?;
    Ok(redirect(next_or_home(form.next.as_deref())))
}

async fn devices(auth: Auth, session: Session, request: HttpRequest) -> Result<HttpResponse, PageError> {
    let Some(user) = auth.user().await? else { return anonymous(&auth, &session, paths::DEVICES).await };
    let data = session.data().await?;
    let devices = auth.devices().await?;
    let ended = LogoutOthersResponse::from_query(Some(request.query_string()));
    Ok(html_page(StatusCode::OK, html::devices_page(&data, &user.username, &devices, ended)))
}

async fn revoke(auth: Auth, session: Session, serial: web::Path<String>) -> Result<HttpResponse, PageError> {
    if auth.user().await?.is_none() {
        return anonymous(&auth, &session, paths::DEVICES).await;
    }
    let not_found = PageError(html::ErrorPage::NoSuchDevice);
    let Ok(serial) = Serial::from_base64(&serial) else { return Err(not_found) };
    if !auth.revoke(&serial).await? {
        return Err(not_found);
    }
    // Revoking this very device logs it out: back to the start.
    let back = if auth.user().await?.is_some() { paths::DEVICES } else { paths::HOME };
    Ok(redirect(back))
}

async fn confirm_password_page(
    state: web::Data<DemoState>,
    LoginRequired(user): LoginRequired,
    session: Session,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let data = session.data().await?;
    let next = next_of(&request);
    let page = html::confirm_password_page(&data, &user.username, &next, state.fresh_for, false);
    Ok(html_page(StatusCode::OK, page))
}

#[derive(Deserialize)]
struct ConfirmForm {
    password: String,
    next: Option<String>,
}

async fn confirm_password(
    state: web::Data<DemoState>,
    request: HttpRequest,
    LoginRequired(user): LoginRequired,
    auth: Auth,
    session: Session,
    form: Result<web::Form<ConfirmForm>, actix_web::Error>,
) -> Result<HttpResponse, PageError> {
    let Ok(web::Form(form)) = form else {
        return Err(PageError(html::ErrorPage::BadForm));
    };
    let next = next_or_home(form.next.as_deref()).to_owned();
    let checked =
        match check_password(&state.passwords, &request, user.username.as_str(), &form.password).await {
            Ok(checked) => checked,
            Err(refused) => return Ok(too_many_attempts(refused)),
        };
    if checked.is_none() {
        let data = session.data().await?;
        let page = html::confirm_password_page(&data, &user.username, &next, state.fresh_for, true);
        return Ok(html_page(StatusCode::UNAUTHORIZED, page));
    }
    auth.confirm_password().await?;
    Ok(redirect(&next))
}

async fn security(
    state: web::Data<DemoState>,
    FreshLogin(user): FreshLogin,
    session: Session,
) -> Result<HttpResponse, PageError> {
    let data = session.data().await?;
    let page = html::security_page(&data, &user, state.fresh_for, OffsetDateTime::now_utc());
    Ok(html_page(StatusCode::OK, page))
}

async fn logout(auth: Auth) -> Result<HttpResponse, PageError> {
    auth.logout().await?;
    Ok(redirect(paths::HOME))
}

async fn logout_others(auth: Auth) -> Result<HttpResponse, PageError> {
    let ended = auth.logout_others().await?;
    Ok(redirect(&paths::devices_after_logout_others(ended.logins, ended.sessions)))
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

/// `GET /metrics`: the Prometheus text, outside `expected` (no store call).
async fn metrics(state: web::Data<DemoState>) -> HttpResponse {
    HttpResponse::Ok().content_type(metrics::CONTENT_TYPE).body(state.metrics.render())
}

/// 404: JSON under `/api`, a page elsewhere.
async fn not_found(request: HttpRequest) -> HttpResponse {
    if request.path().starts_with("/api/") {
        ApiError::Code(StatusCode::NOT_FOUND, error::NOT_FOUND).error_response()
    } else {
        PageError(html::ErrorPage::NotFound).error_response()
    }
}

/// The one value of header `name`: `None` when absent, `Some("")` when
/// repeated or not text (which the origin rule refuses).
fn header_value<'a>(request: &'a ServiceRequest, name: &str) -> Option<&'a str> {
    let mut values = request.headers().get_all(name);
    let first = values.next()?;
    if values.next().is_some() {
        return Some("");
    }
    Some(first.to_str().unwrap_or_default())
}

/// Refuses state-changing requests that do not come from this origin (see
/// [`check_origin_values`]).
async fn refuse_cross_site(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let host = match request.headers().contains_key(header::HOST) {
        true => header_value(&request, header::HOST.as_str()),
        false => request.uri().authority().map(|authority| authority.as_str()),
    };
    let site = header_value(&request, "sec-fetch-site");
    let origin = header_value(&request, header::ORIGIN.as_str());
    if check_origin_values(request.method().as_str(), site, origin, host).is_err() {
        let refused = ApiError::Code(StatusCode::FORBIDDEN, error::CROSS_SITE_REQUEST).error_response();
        return Ok(request.into_response(refused).map_into_right_body());
    }
    Ok(next.call(request).await?.map_into_left_body())
}

/// The CSRF rule (the kit's `csrf` module): a logged-in user's
/// state-changing request presents the session's token, or is refused. On
/// the API (`PAGE` false) the token comes in the `X-CSRF-Token` header and a
/// refusal is 403 `invalid_csrf_token`. On the pages (`PAGE` true) a
/// logged-in user's page first gets the token (so its forms carry it), the
/// token comes in the form's `csrf_token` field (or the header), and a
/// refusal is the 403 "form expired" page.
async fn csrf_guard<const PAGE: bool>(
    mut request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let (auth, session) = (request.extract::<Auth>().await?, request.extract::<Session>().await?);
    let method = request.method().as_str().to_owned();
    let refused = match expected_demo_kit::csrf::token_needed(&auth, &session, &method, PAGE).await {
        Ok(false) => None,
        Ok(true) => {
            let mut presented = header_value(&request, csrf::HEADER).map(str::to_owned);
            if PAGE {
                let body = request.extract::<web::Bytes>().await.ok();
                let body = body.filter(|body| body.len() <= api::MAX_BODY_BYTES);
                if presented.is_none() {
                    let content_type = header_value(&request, header::CONTENT_TYPE.as_str());
                    presented = expected_demo_kit::csrf::form_token(
                        content_type,
                        body.as_deref().unwrap_or_default(),
                    );
                }
                if let Some(body) = body {
                    // The handler reads the form again.
                    request.set_payload(Payload::from(body));
                }
            }
            match session.verify_csrf(presented.as_deref()).await {
                Ok(()) => None,
                // A store outage: the middleware's 503 (made a page by
                // `outage_as_page`).
                Err(CsrfError::Session(failed)) => Some(Error::from(failed).error_response()),
                Err(_) if PAGE => Some(PageError(html::ErrorPage::FormExpired).error_response()),
                Err(refused) => Some(Error::from(refused).error_response()),
            }
        }
        Err(failed) => Some(Error::from(failed).error_response()),
    };
    match refused {
        None => Ok(next.call(request).await?.map_into_left_body()),
        Some(response) => Ok(request.into_response(response).map_into_right_body()),
    }
}
