//! The HTTP scenario suite every demo runs (feature `scenarios`), over real
//! HTTP against a running server, with hand-made `Cookie` headers so that each
//! scenario controls its cookie jars (one per device: a victim, a thief,
//! another user).
//!
//! An adapter calls [`scenarios!`](crate::scenarios!) once in a test file
//! with the function that starts its demo over a
//! [`Backend`](crate::testing::Backend) (answering a future of a
//! [`DemoServer`]); it expands to one `#[test]` per case of [`cases`], each
//! on its own server over the backend that case needs (most run on
//! [`Backend::new`](crate::testing::Backend::new), the `Domain` change on
//! [`Backend::with_cookie_domain`](crate::testing::Backend::with_cookie_domain)),
//! so a failure names the scenario that broke.
//!
//! ```ignore
//! // tests/scenarios.rs of an adapter
//! async fn start(backend: Backend) -> expected_demo_kit::testing::TestServer { /* … */ }
//! expected_demo_kit::scenarios!(start);
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cookie::Cookie;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::config::{AUTH_COOKIE, SESSION_COOKIE};

/// A demo served at a base URL (`http://127.0.0.1:PORT`) over a real store
/// that the test takes down itself, if at all: [`DemoServer::set_store_down`]
/// panics.
#[derive(Debug, Clone)]
pub struct ServedAt(pub String);

impl DemoServer for ServedAt {
    fn base_url(&self) -> String {
        self.0.clone()
    }
    fn set_store_down(&self, _: bool) {
        panic!("this demo runs on a real store, which its test takes down itself");
    }
}

/// A demo server the suite drives.
pub trait DemoServer: Send + Sync + 'static {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    fn base_url(&self) -> String;
    /// Takes the store down (`true`: every store call fails as unavailable)
    /// or brings it back.
    fn set_store_down(&self, down: bool);
    /// The server's grace window.
    fn grace_period(&self) -> Duration {
        crate::testing::GRACE
    }
    /// The server's freshness window (`EXPECTED_FRESH_SECS`).
    fn fresh_for(&self) -> Duration {
        crate::testing::FRESH
    }
}

/// How long one scenario may take before it fails.
pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);

/// The runtime the suites run on: two workers, I/O and timers.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("cannot start a tokio runtime: {error}"))
}

/// Runs one scenario on a fresh server from `start`. Used by
/// [`scenarios!`](crate::scenarios!).
///
/// # Panics
///
/// When the scenario fails or times out.
pub fn run<S, F, Fut, C, CFut>(name: &str, start: F, case: C)
where
    S: DemoServer,
    F: FnOnce() -> Fut,
    Fut: Future<Output = S>,
    C: FnOnce(Arc<dyn DemoServer>) -> CFut,
    CFut: Future<Output = ()>,
{
    runtime().block_on(async move {
        let server: Arc<dyn DemoServer> = Arc::new(start().await);
        if tokio::time::timeout(SCENARIO_TIMEOUT, case(server)).await.is_err() {
            panic!("{name}: did not finish within {SCENARIO_TIMEOUT:?}");
        }
    });
}

/// Expands to one `#[test]` per scenario of [`cases`], each starting its own
/// server with `$start` (a function, called once per test inside the test's
/// tokio runtime with the [`Backend`](crate::testing::Backend) the scenario
/// runs on, answering a future of a [`DemoServer`]).
#[macro_export]
macro_rules! scenarios {
    ($start:expr) => {
        $crate::__scenarios! { @list tests [$start] }
    };
}

/// Expands to the one `#[test]` that must run alone in its test binary,
/// `metrics_count_a_theft_and_an_outage` (the metrics recorder is
/// process-wide: no other server may count into it), starting its server with
/// `$start` as [`scenarios!`](crate::scenarios!) does.
///
/// ```ignore
/// // tests/metrics.rs of an adapter: nothing else in this binary
/// expected_demo_kit::metrics_scenario!(support::start);
/// ```
#[macro_export]
macro_rules! metrics_scenario {
    ($start:expr) => {
        #[test]
        fn metrics_count_a_theft_and_an_outage() {
            $crate::__private::run(
                "metrics_count_a_theft_and_an_outage",
                || ($start)($crate::testing::Backend::new()),
                $crate::scenarios::cases::metrics_count_a_theft_and_an_outage,
            );
        }
    };
}

/// The one list of scenarios, by the [`Backend`](crate::testing::Backend)
/// constructor each runs on, and what is made of it.
#[doc(hidden)]
#[macro_export]
macro_rules! __scenarios {
    (@list $mode:ident $args:tt) => {
        $crate::__scenarios! { @ $mode $args
          new => [
            healthz_answers_200,
            metrics_are_served_in_prometheus_format,
            login_without_remember_me,
            login_with_remember_me,
            session_hit_sets_no_cookie,
            cookie_login_after_session_cookie_dropped,
            grace_converges_concurrent_requests,
            polling_thief_is_caught_at_the_next_rotation,
            grace_is_for_the_browser_that_rotated,
            theft_after_grace_revokes_every_login,
            remote_revoke_ends_that_device,
            logout_ends_this_device_only,
            logout_everywhere_ends_every_device,
            logging_in_again_replaces_the_device_login,
            malformed_and_oversized_cookies_are_401,
            invalid_and_oversized_bodies_are_400,
            wrong_password_and_unknown_user_are_401,
            store_outage_is_503_then_recovers,
            logins_list_fields_times_and_current,
            cross_site_state_changes_are_refused,
            html_pages_render_and_escape,
            html_theft_alert_and_form_actions,
            visitors_have_session_data,
            session_keys_and_values_are_checked,
            login_keeps_the_visitor_data_under_a_new_session,
            me_tells_how_when_and_whether_fresh,
            confirm_password_makes_the_session_fresh,
            freshness_lapses_after_the_window,
            logout_others_keeps_this_device,
            html_visitor_theme_survives_login,
            html_security_page_needs_a_fresh_password,
            html_logout_others_from_the_devices_page,
            csrf_tokens_guard_a_users_state_changes,
            password_attempts_are_throttled,
            responses_about_the_user_are_not_cached,
            repeated_cookie_names_judge_every_value,
            a_sibling_planted_cookie_does_not_break_the_api,
          ],
          with_cookie_domain => [
            a_cookie_domain_change_keeps_the_user_logged_in,
          ],
        }
    };
    (@tests [$start:expr] $($backend:ident => [$($case:ident),* $(,)?]),* $(,)?) => {
        $($(
            #[test]
            fn $case() {
                $crate::__private::run(
                    stringify!($case),
                    || ($start)($crate::testing::Backend::$backend()),
                    $crate::scenarios::cases::$case,
                );
            }
        )*)*
    };
    (@names [] $($backend:ident => [$($case:ident),* $(,)?]),* $(,)?) => {
        &[$($(stringify!($case)),*),*]
    };
}

/// The names of every scenario, in order.
pub const SCENARIOS: &[&str] = crate::__scenarios! { @list names [] };

/// One device's cookies, as a browser would keep them, and the CSRF token
/// its page would hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jar {
    /// The session cookie's value.
    pub session: Option<String>,
    /// The remember-me cookie's value.
    pub remember: Option<String>,
    /// The `User-Agent` this device sends.
    pub user_agent: Option<String>,
    /// The session's CSRF token, sent as `X-CSRF-Token` with every
    /// state-changing request ([`Client::login`] and [`Client::csrf`] fetch
    /// it; a logged-in user's state-changing requests need it).
    pub csrf: Option<String>,
    /// The client address this device's requests come from, sent in
    /// [`CLIENT_IP_HEADER`](crate::testing::CLIENT_IP_HEADER), which test
    /// servers trust; `None` sends none, and the server sees the loopback
    /// peer.
    pub ip: Option<String>,
}

impl Jar {
    /// An empty jar sending `user_agent`.
    pub fn with_agent(user_agent: &str) -> Self {
        Self { user_agent: Some(user_agent.to_owned()), ..Self::default() }
    }

    /// This jar sending its requests from `ip` (another network, say).
    pub fn from_ip(&self, ip: &str) -> Self {
        Self { ip: Some(ip.to_owned()), ..self.clone() }
    }

    /// This jar without its session cookie, as after a browser restart
    /// (and so without the session's CSRF token).
    pub fn without_session(&self) -> Self {
        Self { session: None, csrf: None, ..self.clone() }
    }

    /// The `Cookie` header this jar sends, if any.
    pub fn cookie_header(&self) -> Option<String> {
        let mut pairs = Vec::new();
        if let Some(value) = &self.session {
            pairs.push(format!("{SESSION_COOKIE}={value}"));
        }
        if let Some(value) = &self.remember {
            pairs.push(format!("{AUTH_COOKIE}={value}"));
        }
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    /// Applies a response's `Set-Cookie`s, as a browser does.
    pub fn apply(&mut self, reply: &Reply) {
        for cookie in &reply.set_cookies {
            let removed = cookie.value().is_empty() || cookie.max_age().is_some_and(|age| age.is_zero());
            let value = (!removed).then(|| cookie.value().to_owned());
            match cookie.name() {
                SESSION_COOKIE => self.session = value,
                AUTH_COOKIE => self.remember = value,
                _ => {}
            }
        }
    }
}

/// A browser's cookies for one host, kept apart as browsers keep them: by
/// name, `Domain` (or none: host-only) and `Path`. Unlike [`Jar`], it holds
/// several cookies of one name, the way a browser does after a deploy added a
/// `Domain` or a sibling subdomain planted one for a longer `Path`, and sends
/// every one that applies to a request: the longest `Path` first, then the
/// oldest (a replaced cookie keeps its place, RFC 6265 §5.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrowserJar {
    cookies: Vec<HeldCookie>,
    /// The `User-Agent` this browser sends.
    pub user_agent: Option<String>,
}

/// One cookie a [`BrowserJar`] holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldCookie {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: String,
    /// Its `Domain`; `None` for a host-only cookie.
    pub domain: Option<String>,
    /// Its `Path`.
    pub path: String,
    /// Whether it outlives the browser session (it had a `Max-Age`).
    pub persistent: bool,
}

impl BrowserJar {
    /// The cookies `jar` holds, as host-only cookies for `Path=/` (what a
    /// deployment without a `Domain` sets), and its user agent.
    pub fn host_only(jar: &Jar) -> Self {
        let mut browser = Self { user_agent: jar.user_agent.clone(), ..Self::default() };
        for (name, value, persistent) in
            [(SESSION_COOKIE, &jar.session, false), (AUTH_COOKIE, &jar.remember, true)]
        {
            if let Some(value) = value {
                let path = "/".to_owned();
                browser.store(HeldCookie {
                    name: name.into(),
                    value: value.clone(),
                    domain: None,
                    path,
                    persistent,
                });
            }
        }
        browser
    }

    /// An empty jar sending `user_agent`.
    pub fn with_agent(user_agent: &str) -> Self {
        Self { user_agent: Some(user_agent.to_owned()), ..Self::default() }
    }

    /// Stores `cookie`, replacing the one of its name, domain and path in
    /// place, or removes that one when `cookie` has no value.
    pub fn store(&mut self, cookie: HeldCookie) {
        let same = |held: &HeldCookie| {
            held.name == cookie.name && held.domain == cookie.domain && held.path == cookie.path
        };
        if cookie.value.is_empty() {
            self.cookies.retain(|held| !same(held));
        } else if let Some(held) = self.cookies.iter_mut().find(|held| same(held)) {
            *held = cookie;
        } else {
            self.cookies.push(cookie);
        }
    }

    /// Applies a response's `Set-Cookie`s, as a browser does.
    pub fn apply(&mut self, reply: &Reply) {
        for cookie in &reply.set_cookies {
            let removed = cookie.value().is_empty() || cookie.max_age().is_some_and(|age| age.is_zero());
            self.store(HeldCookie {
                name: cookie.name().to_owned(),
                value: if removed { String::new() } else { cookie.value().to_owned() },
                domain: cookie.domain().map(str::to_owned),
                path: cookie.path().unwrap_or("/").to_owned(),
                persistent: cookie.max_age().is_some() || cookie.expires().is_some(),
            });
        }
    }

    /// The browser restarts: the cookies without a `Max-Age` are gone.
    pub fn restart(&mut self) {
        self.cookies.retain(|held| held.persistent);
    }

    /// The cookies of `name` it holds, oldest first.
    pub fn held(&self, name: &str) -> Vec<&HeldCookie> {
        self.cookies.iter().filter(|held| held.name == name).collect()
    }

    /// The `Cookie` header it sends with a request for `path`, if any.
    pub fn cookie_header(&self, path: &str) -> Option<String> {
        let mut sent: Vec<&HeldCookie> = self
            .cookies
            .iter()
            .filter(|held| {
                let prefix = held.path.trim_end_matches('/');
                path == held.path || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
            })
            .collect();
        // Stable: of equal paths, the oldest stays first.
        sent.sort_by_key(|held| std::cmp::Reverse(held.path.len()));
        let pairs: Vec<String> = sent.iter().map(|held| format!("{}={}", held.name, held.value)).collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
    /// The `Set-Cookie` headers, parsed.
    pub set_cookies: Vec<Cookie<'static>>,
}

impl Reply {
    /// The body as JSON of type `T`.
    ///
    /// # Panics
    ///
    /// When it is not.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!("{}: body is not the expected JSON ({error}): {}", self.status, self.text())
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `error` code of an error body.
    pub fn error_code(&self) -> String {
        self.json::<crate::api::ErrorBody>().error
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The `Set-Cookie` of `name`, if the response has one.
    pub fn cookie(&self, name: &str) -> Option<&Cookie<'static>> {
        self.set_cookies.iter().find(|cookie| cookie.name() == name)
    }
}

/// An HTTP client for one server, sending what a browser's same-origin
/// request carries: `Sec-Fetch-Site: same-origin` on state-changing requests
/// (unless a request brings its own `Sec-Fetch-Site` or `Origin`, or the
/// client is [`bare`](Client::bare)), and the jar's CSRF token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    fetch_metadata: bool,
}

/// A request body: its content type and bytes.
pub type Body = (&'static str, Vec<u8>);

impl Client {
    /// A client for `server`: no redirects followed, no proxy, no cookie
    /// store (the [`Jar`]s are the cookie stores).
    pub fn new(server: &dyn DemoServer) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|error| panic!("cannot build an HTTP client: {error}"));
        Self { http, base: server.base_url(), fetch_metadata: true }
    }

    /// This client without the `Sec-Fetch-Site` a browser adds: a script
    /// (curl) or a browser from before Fetch Metadata.
    pub fn bare(&self) -> Self {
        Self { fetch_metadata: false, ..self.clone() }
    }

    /// `GET /api/csrf` with `jar`, applying its cookies and keeping the
    /// token in `jar` when it answers 200.
    pub async fn csrf(&self, jar: &mut Jar) -> Reply {
        let reply = self.get("/api/csrf", jar).await;
        jar.apply(&reply);
        if reply.status == StatusCode::OK {
            jar.csrf = Some(reply.json::<crate::api::CsrfView>().token);
        }
        reply
    }

    /// Sends a request with `jar`'s cookies and user agent, plus `headers`.
    ///
    /// # Panics
    ///
    /// When the server cannot be reached.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        jar: &Jar,
        body: Option<Body>,
        headers: &[(&str, HeaderValue)],
    ) -> Reply {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(cookies) = jar.cookie_header() {
            request = request.header(reqwest::header::COOKIE, cookies);
        }
        if let Some(agent) = &jar.user_agent {
            request = request.header(reqwest::header::USER_AGENT, agent.as_str());
        }
        let given = |wanted: &str| headers.iter().any(|(name, _)| name.eq_ignore_ascii_case(wanted));
        let safe = matches!(method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE);
        if !safe && self.fetch_metadata && !given("sec-fetch-site") && !given("origin") {
            request = request.header("sec-fetch-site", "same-origin");
        }
        if let Some(token) = jar.csrf.as_deref().filter(|_| !safe && !given(expected_core::csrf::HEADER)) {
            request = request.header(expected_core::csrf::HEADER, token);
        }
        if let Some(ip) = &jar.ip {
            request = request.header(crate::testing::CLIENT_IP_HEADER, ip.as_str());
        }
        for (name, value) in headers {
            match HeaderName::from_bytes(name.as_bytes()) {
                Ok(name) => request = request.header(name, value.clone()),
                Err(error) => panic!("bad header name {name}: {error}"),
            }
        }
        if let Some((content_type, bytes)) = body {
            if !content_type.is_empty() {
                request = request.header(reqwest::header::CONTENT_TYPE, content_type);
            }
            request = request.body(bytes);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => panic!("{method} {path}: {error}"),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = match response.bytes().await {
            Ok(bytes) => bytes.to_vec(),
            Err(error) => panic!("{method} {path}: reading the body: {error}"),
        };
        let set_cookies = headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(|text| Cookie::parse(text.to_owned()).ok())
            .collect();
        Reply { status, headers, body, set_cookies }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str, jar: &Jar) -> Reply {
        self.send(Method::GET, path, jar, None, &[]).await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, jar: &Jar, body: &serde_json::Value) -> Reply {
        let bytes = body.to_string().into_bytes();
        self.send(Method::POST, path, jar, Some(("application/json", bytes)), &[]).await
    }

    /// `POST path` without a body.
    pub async fn post(&self, path: &str, jar: &Jar) -> Reply {
        self.send(Method::POST, path, jar, None, &[]).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str, jar: &Jar) -> Reply {
        self.send(Method::DELETE, path, jar, None, &[]).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put_json(&self, path: &str, jar: &Jar, body: &serde_json::Value) -> Reply {
        let bytes = body.to_string().into_bytes();
        self.send(Method::PUT, path, jar, Some(("application/json", bytes)), &[]).await
    }

    /// `POST path` with a form body.
    pub async fn post_form(&self, path: &str, jar: &Jar, fields: &[(&str, &str)]) -> Reply {
        let body = ("application/x-www-form-urlencoded", form_encode(fields));
        self.send(Method::POST, path, jar, Some(body), &[]).await
    }

    /// `POST /api/login`, applying the cookies to `jar`; once logged in,
    /// fetches the new session's CSRF token into `jar` (as the page of a
    /// script would).
    pub async fn login(&self, jar: &mut Jar, username: &str, password: &str, remember: bool) -> Reply {
        let body = serde_json::json!({ "username": username, "password": password, "remember": remember });
        let reply = self.post_json("/api/login", jar, &body).await;
        jar.apply(&reply);
        if reply.status == StatusCode::OK {
            jar.csrf = None;
            let token = self.csrf(jar).await;
            assert_eq!(token.status, StatusCode::OK, "GET /api/csrf after the login: {}", token.text());
        }
        reply
    }

    /// `GET /api/me`, applying the cookies to `jar`.
    pub async fn me(&self, jar: &mut Jar) -> Reply {
        let reply = self.get("/api/me", jar).await;
        jar.apply(&reply);
        reply
    }

    /// `GET path` with a hand-made `Cookie` header (none when `cookies` is
    /// empty), applying nothing.
    pub async fn get_with_cookies(&self, path: &str, cookies: &str) -> Reply {
        let headers = match HeaderValue::from_str(cookies) {
            Ok(value) if !cookies.is_empty() => vec![("cookie", value)],
            Ok(_) => Vec::new(),
            Err(error) => panic!("bad Cookie header {cookies:?}: {error}"),
        };
        self.send(Method::GET, path, &Jar::default(), None, &headers).await
    }

    /// `GET path` as `browser` sends it, applying the cookies to it.
    pub async fn browse(&self, path: &str, browser: &mut BrowserJar) -> Reply {
        let jar = Jar { user_agent: browser.user_agent.clone(), ..Jar::default() };
        let headers = match browser.cookie_header(path).map(|header| HeaderValue::from_str(&header)) {
            Some(Ok(value)) => vec![("cookie", value)],
            Some(Err(error)) => panic!("bad Cookie header: {error}"),
            None => Vec::new(),
        };
        let reply = self.send(Method::GET, path, &jar, None, &headers).await;
        browser.apply(&reply);
        reply
    }
}

/// Percent-encodes `text` for an `application/x-www-form-urlencoded` body.
pub fn form_encode(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = String::new();
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        for (j, part) in [name, value].into_iter().enumerate() {
            if j > 0 {
                out.push('=');
            }
            for byte in part.bytes() {
                match byte {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                        out.push(char::from(byte))
                    }
                    b' ' => out.push('+'),
                    _ => out.push_str(&format!("%{byte:02X}")),
                }
            }
        }
    }
    out.into_bytes()
}

/// Asserts that `reply` sets cookie `name` to a fresh value with the demo's
/// attributes, and answers the value. A remember-me cookie has a Max-Age
/// (about 90 days: what is left of its login's), a session cookie none (it
/// ends with the browser session).
///
/// # Panics
///
/// When it does not.
pub fn assert_sets(reply: &Reply, name: &str) -> String {
    let Some(cookie) = reply.cookie(name) else {
        panic!("{}: no Set-Cookie for {name}; got {:?}", reply.status, reply.set_cookies);
    };
    assert!(!cookie.value().is_empty(), "{name} is set, not cleared: {cookie}");
    assert_eq!(cookie.http_only(), Some(true), "{name} must be HttpOnly: {cookie}");
    assert_eq!(cookie.secure(), Some(true), "{name} must be Secure: {cookie}");
    assert_eq!(cookie.same_site(), Some(cookie::SameSite::Lax), "{name} must be SameSite=Lax: {cookie}");
    assert_eq!(cookie.path(), Some("/"), "{name} must be for Path=/: {cookie}");
    if name == AUTH_COOKIE {
        // What is left of the login's life: the cookie max age from the
        // last rotation (a grace answer comes a moment after it).
        let max_age = cookie.max_age().map_or(0, |age| age.whole_seconds());
        let full = 90 * 24 * 3600;
        assert!((full - 120..=full).contains(&max_age), "remember_me lasts the cookie max age: {cookie}");
    } else {
        assert!(cookie.max_age().is_none() && cookie.expires().is_none(), "session cookie: {cookie}");
    }
    assert_eq!(reply.header("cache-control"), Some("no-store"), "a response setting cookies is not cached");
    cookie.value().to_owned()
}

/// The CSRF token a page's forms carry (their hidden `csrf_token` field),
/// if they carry one.
pub fn page_csrf(reply: &Reply) -> Option<String> {
    let marker = format!("name=\"{}\" value=\"", expected_core::csrf::FORM_FIELD);
    let text = reply.text();
    let rest = text.split_once(&marker)?.1;
    rest.split_once('"').map(|(token, _)| token.to_owned())
}

/// Asserts that `reply` clears cookie `name`.
///
/// # Panics
///
/// When it does not.
pub fn assert_clears(reply: &Reply, name: &str) {
    let Some(cookie) = reply.cookie(name) else {
        panic!("{}: no Set-Cookie clearing {name}; got {:?}", reply.status, reply.set_cookies);
    };
    assert!(cookie.value().is_empty(), "{name} must be cleared: {cookie}");
    assert_eq!(cookie.max_age().map(|age| age.whole_seconds()), Some(0), "{name} removal: {cookie}");
    assert_eq!(cookie.path(), Some("/"), "a removal must match the cookie's path: {cookie}");
}

/// Asserts that `reply` has no `Set-Cookie` at all.
///
/// # Panics
///
/// When it has.
pub fn assert_no_cookies(reply: &Reply) {
    let headers: Vec<_> = reply.headers.get_all(reqwest::header::SET_COOKIE).iter().collect();
    assert!(headers.is_empty(), "{}: expected no Set-Cookie, got {headers:?}", reply.status);
}

/// Asserts the status and the `error` code of a JSON error.
///
/// # Panics
///
/// When they differ.
pub fn assert_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "body: {}", reply.text());
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "error bodies are JSON, got {content_type:?}");
    assert_eq!(reply.error_code(), code);
}

/// Asserts 200 from `/api/me` as `username` via `via`, and answers the
/// body. A request the remember-me cookie authenticated (`cookie`, `grace`)
/// is `remembered`, never fresh.
///
/// # Panics
///
/// When it is not.
pub fn assert_me(reply: &Reply, username: &str, via: crate::api::ViaName) -> crate::api::Me {
    use crate::api::ViaName;
    use expected_core::AuthMethod;

    assert_eq!(reply.status, StatusCode::OK, "body: {}", reply.text());
    let me: crate::api::Me = reply.json();
    assert_eq!((me.username.as_str(), me.via), (username, via), "{me:?}");
    if matches!(via, ViaName::Cookie | ViaName::Grace) {
        assert_eq!((me.method, me.fresh), (AuthMethod::Remembered, false), "{me:?}");
    }
    me
}

/// The path and the decoded `next` query value of a redirect's `Location`.
///
/// # Panics
///
/// When `reply` is no `303 See Other`.
pub fn redirect_target(reply: &Reply) -> (String, Option<String>) {
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    let location = reply.header("location").unwrap_or_default();
    let (path, query) = match location.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (location, None),
    };
    (path.to_owned(), crate::html::query_param(query, "next"))
}

/// Says something on the test's output, which the test harness captures and
/// shows when the scenario fails.
#[allow(clippy::print_stderr)]
fn note(line: &str) {
    eprintln!("{line}");
}

/// The scenarios. Each takes a fresh server and asserts status codes, JSON
/// bodies and `Set-Cookie` behaviour.
pub mod cases {
    use std::sync::Arc;
    use std::time::Duration;

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use expected_core::time::OffsetDateTime;
    use expected_core::time::format_description::well_known::Rfc3339;
    use reqwest::header::HeaderValue;
    use reqwest::{Method, StatusCode};

    use expected_core::AuthMethod;
    use serde_json::json;

    use super::{
        BrowserJar, Client, DemoServer, HeldCookie, Jar, Reply, assert_clears, assert_error, assert_me,
        assert_no_cookies, assert_sets, form_encode, note, page_csrf, redirect_target,
    };
    use crate::api::{self, LoginInfo, LoginResponse, LogoutOthersResponse, Me, ViaName, error};
    use crate::config::{AUTH_COOKIE, SESSION_COOKIE};
    use crate::html::paths;
    use crate::metrics::{self, sample};
    use expected_core::telemetry::{
        AUTHENTICATIONS, LOGINS_ENDED, REGISTRATIONS, STORE_CALL_DURATION, STORE_ERRORS, THEFTS,
    };

    const ALICE: (&str, &str) = ("alice", "alice-secret");
    const BOB: (&str, &str) = ("bob", "bob-secret");
    const ZOE: (&str, &str) = ("zoë.o'brien", "zoë-secret");

    /// Logs `user` in on a fresh device with user agent `agent`.
    async fn device(client: &Client, user: (&str, &str), remember: bool, agent: &str) -> Jar {
        let mut jar = Jar::with_agent(agent);
        let reply = client.login(&mut jar, user.0, user.1, remember).await;
        assert_eq!(reply.status, StatusCode::OK, "login of {}: {}", user.0, reply.text());
        jar
    }

    async fn logins(client: &Client, jar: &Jar) -> Vec<LoginInfo> {
        let reply = client.get("/api/logins", jar).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        reply.json()
    }

    async fn current_serial(client: &Client, jar: &Jar) -> String {
        let list = logins(client, jar).await;
        match list.iter().find(|login| login.current) {
            Some(login) => login.serial.clone(),
            None => panic!("no current login in {list:?}"),
        }
    }

    /// `GET /healthz` answers 200 `{"status":"ok"}` and sets no cookie.
    pub async fn healthz_answers_200(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let reply = client.get("/healthz", &Jar::default()).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json::<api::Health>(), api::Health::ok());
        assert_no_cookies(&reply);
    }

    /// `GET /metrics` answers 200 in the Prometheus text format, sets no
    /// cookie and holds no cookie value or username, with the engine's
    /// counters described and counting (this binary's servers share the one
    /// recorder, so only presence is checked here; the exact counts are
    /// [`metrics_count_a_theft_and_an_outage`]'s); a store outage does not
    /// stop it.
    pub async fn metrics_are_served_in_prometheus_format(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let mut jar = device(&client, ALICE, true, "scenario/metrics").await;
        assert_me(&client.me(&mut jar).await, "alice", ViaName::Session);
        let reply = client.get("/metrics", &jar).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.header("content-type"), Some(metrics::CONTENT_TYPE));
        assert_no_cookies(&reply);
        let text = reply.text();
        for line in [
            "# TYPE expected_authentications_total counter",
            "# HELP expected_authentications_total ",
            "# TYPE expected_store_call_duration_seconds histogram",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        let sessions = sample(&text, AUTHENTICATIONS, &[("outcome", "session")]);
        assert!(sessions.is_some_and(|count| count >= 1.0), "{text}");
        let registered = sample(&text, REGISTRATIONS, &[("remember", "true")]);
        assert!(registered.is_some_and(|count| count >= 1.0), "{text}");
        assert_holds_no_secret(&text, &jar);

        server.set_store_down(true);
        let reply = client.get("/metrics", &jar).await;
        server.set_store_down(false);
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_no_cookies(&reply);
    }

    /// What a `/metrics` text must never hold: the jar's cookie values, the
    /// secrets inside them, the demo users' names.
    fn assert_holds_no_secret(text: &str, jar: &Jar) {
        for value in [&jar.session, &jar.remember].into_iter().flatten() {
            assert!(!text.contains(value.as_str()), "a cookie value is in /metrics");
            for part in value.split('.').filter(|part| part.len() > 4) {
                assert!(!text.contains(part), "{part}, of a cookie, is in /metrics");
            }
        }
        for (name, _) in [ALICE, BOB, ZOE] {
            assert!(!text.contains(&format!("\"{name}\"")), "{name} is a label in /metrics");
        }
    }

    /// Scrapes `GET /metrics`.
    async fn scrape(client: &Client) -> String {
        let reply = client.get("/metrics", &Jar::default()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        reply.text()
    }

    /// A theft and a store outage, counted exactly: one `theft` outcome (a
    /// `foreign_client` one, ending alice's one login), one `cookie_login`
    /// (the thief's, one rotation), one `unavailable` and the one store error
    /// the outage met. Not in [`scenarios!`](crate::scenarios!): the recorder
    /// is process-wide, so an adapter runs this alone in a test binary of its
    /// own ([`metrics_scenario!`](crate::metrics_scenario!) in
    /// `tests/metrics.rs`), where no other server counts into it.
    pub async fn metrics_count_a_theft_and_an_outage(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let before = scrape(&client).await;
        let delta = |after: &str, name: &str, labels: &[(&str, &str)]| {
            sample(after, name, labels).unwrap_or(0.0) - sample(&before, name, labels).unwrap_or(0.0)
        };

        let victim = device(&client, ALICE, true, "scenario/victim").await;
        let mut bob = device(&client, BOB, false, "scenario/bob").await;
        // The thief replays alice's cookie first: a cookie login, rotated to
        // the thief's browser. Alice's browser then presents the old token,
        // inside the grace window but from another browser: a theft.
        let mut thief = Jar { user_agent: Some("scenario/thief".into()), ..victim.without_session() };
        assert_me(&client.me(&mut thief).await, "alice", ViaName::Cookie);
        let reply = client.me(&mut victim.without_session()).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNEXPECTED_TOKEN);

        server.set_store_down(true);
        let reply = client.get("/api/me", &bob).await;
        server.set_store_down(false);
        assert_error(&reply, StatusCode::SERVICE_UNAVAILABLE, error::STORE_UNAVAILABLE);
        assert_me(&client.me(&mut bob).await, "bob", ViaName::Session);

        let after = scrape(&client).await;
        let outcome = |name| delta(&after, AUTHENTICATIONS, &[("outcome", name)]);
        assert_eq!(outcome("theft"), 1.0, "{after}");
        assert_eq!(outcome("unavailable"), 1.0, "{after}");
        assert_eq!(outcome("cookie_login"), 1.0, "{after}");
        assert_eq!(outcome("grace"), 0.0, "{after}");
        assert_eq!(delta(&after, THEFTS, &[("cause", "foreign_client")]), 1.0, "{after}");
        assert_eq!(delta(&after, LOGINS_ENDED, &[("cause", "theft")]), 1.0, "{after}");
        assert_eq!(delta(&after, REGISTRATIONS, &[("remember", "true")]), 1.0, "{after}");
        assert_eq!(delta(&after, REGISTRATIONS, &[("remember", "false")]), 1.0, "{after}");
        let errors = |op| delta(&after, STORE_ERRORS, &[("operation", op), ("kind", "unavailable")]);
        assert_eq!(errors("get_session"), 1.0, "the outage's one store call:\n{after}");
        let rotations = format!("{STORE_CALL_DURATION}_count");
        // The thief's cookie login rotated by the optimistic attempt; alice's
        // replay tried it too, did not apply, and was judged a theft: no
        // two-step rotation.
        assert_eq!(delta(&after, &rotations, &[("operation", "rotate_current")]), 2.0, "{after}");
        assert_eq!(delta(&after, &rotations, &[("operation", "rotate_login")]), 0.0, "{after}");
        let lookups = delta(&after, &rotations, &[("operation", "get_session")]);
        assert!(lookups >= 3.0, "every session lookup is timed, failed ones too: {lookups}\n{after}");
        assert_holds_no_secret(&after, &victim);
        assert_holds_no_secret(&after, &thief);
    }

    /// Without "remember me": 200 `{"username","remembered":false}`, only a
    /// session cookie (no Max-Age), no login in the list; once the session
    /// cookie is gone the device is logged out. Logging in without "remember
    /// me" on a device that had a remember-me cookie clears it and ends that
    /// login.
    pub async fn login_without_remember_me(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let mut jar = Jar::with_agent("scenario/plain");
        let reply = client.login(&mut jar, ALICE.0, ALICE.1, false).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(
            reply.json::<LoginResponse>(),
            LoginResponse { username: "alice".into(), remembered: false }
        );
        assert_sets(&reply, SESSION_COOKIE);
        assert!(reply.cookie(AUTH_COOKIE).is_none(), "no remember-me cookie without remember me");
        assert_me(&client.me(&mut jar).await, "alice", ViaName::Session);
        assert!(logins(&client, &jar).await.is_empty(), "a session without remember me is no login");

        let reply = client.me(&mut jar.without_session()).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
        assert_no_cookies(&reply);

        // A remembered device logging in again without "remember me".
        let mut remembered = device(&client, ALICE, true, "scenario/remembered").await;
        let old = remembered.clone();
        let reply = client.login(&mut remembered, ALICE.0, ALICE.1, false).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_sets(&reply, SESSION_COOKIE);
        assert_clears(&reply, AUTH_COOKIE);
        assert_eq!(remembered.remember, None);
        let reply = client.me(&mut old.without_session()).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
    }

    /// With "remember me": 200 `{"remembered":true}`, a session cookie and a
    /// remember-me cookie (HttpOnly, Secure, SameSite=Lax, Path=/, Max-Age of
    /// 90 days), `Cache-Control: no-store`, and one login listed as current.
    pub async fn login_with_remember_me(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let mut jar = Jar::with_agent("scenario/remember");
        let reply = client.login(&mut jar, ALICE.0, ALICE.1, true).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(
            reply.json::<LoginResponse>(),
            LoginResponse { username: "alice".into(), remembered: true }
        );
        let session = assert_sets(&reply, SESSION_COOKIE);
        let remember = assert_sets(&reply, AUTH_COOKIE);
        assert_ne!(session, remember);
        assert!(remember.starts_with("1."), "versioned cookie format: {remember}");
        let list = logins(&client, &jar).await;
        assert_eq!(list.len(), 1);
        assert!(list[0].current);
    }

    /// With a live session cookie every request is `via: session` and no
    /// response sets a cookie.
    pub async fn session_hit_sets_no_cookie(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let mut jar = device(&client, ALICE, true, "scenario/session").await;
        let before = jar.clone();
        for _ in 0..3 {
            let reply = client.me(&mut jar).await;
            assert_me(&reply, "alice", ViaName::Session);
            assert_no_cookies(&reply);
        }
        assert_eq!(jar, before);
    }

    /// With the session cookie dropped, the remember-me cookie logs the
    /// device back in (`via: cookie`) and both cookies are replaced; the new
    /// ones are a session hit, and the old session cookie is dead (401,
    /// cleared).
    pub async fn cookie_login_after_session_cookie_dropped(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let original = device(&client, ALICE, true, "scenario/cookie").await;
        let mut jar = original.without_session();
        let reply = client.me(&mut jar).await;
        assert_me(&reply, "alice", ViaName::Cookie);
        let session = assert_sets(&reply, SESSION_COOKIE);
        let remember = assert_sets(&reply, AUTH_COOKIE);
        assert_ne!(Some(&remember), original.remember.as_ref(), "the token was rotated");
        assert_ne!(Some(&session), original.session.as_ref(), "a new session");

        let reply = client.me(&mut jar).await;
        assert_me(&reply, "alice", ViaName::Session);
        assert_no_cookies(&reply);

        let mut old_session = Jar { remember: None, ..original };
        let reply = client.me(&mut old_session).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
        assert_clears(&reply, SESSION_COOKIE);
    }

    /// Ten parallel `/api/me` with the same remember-me cookie and no
    /// session: all 200, exactly one `via: cookie` and nine `via: grace`,
    /// every response setting the very same two cookies, which then are a
    /// session hit.
    pub async fn grace_converges_concurrent_requests(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let stale = device(&client, ALICE, true, "scenario/parallel").await.without_session();
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (client, jar) = (client.clone(), stale.clone());
                tokio::spawn(async move { client.get("/api/me", &jar).await })
            })
            .collect();
        let mut replies = Vec::new();
        for task in tasks {
            match task.await {
                Ok(reply) => replies.push(reply),
                Err(error) => panic!("request task failed: {error}"),
            }
        }
        let mut vias = Vec::new();
        let mut jars = Vec::new();
        for reply in &replies {
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
            let me: api::Me = reply.json();
            assert_eq!(me.username, "alice");
            vias.push(me.via);
            let session = assert_sets(reply, SESSION_COOKIE);
            let remember = assert_sets(reply, AUTH_COOKIE);
            jars.push((session, remember));
        }
        let cookie = vias.iter().filter(|via| **via == ViaName::Cookie).count();
        let grace = vias.iter().filter(|via| **via == ViaName::Grace).count();
        assert_eq!((cookie, grace), (1, 9), "vias: {vias:?}");
        assert!(
            jars.windows(2).all(|pair| pair[0] == pair[1]),
            "every request converges on one pair of cookies"
        );
        let Some((session, remember)) = jars.pop() else { return };
        assert_ne!(Some(&remember), stale.remember.as_ref());
        let mut converged = Jar { session: Some(session), remember: Some(remember), ..stale };
        let reply = client.me(&mut converged).await;
        assert_me(&reply, "alice", ViaName::Session);
        assert_no_cookies(&reply);
    }

    /// Fails the scenario when the requests since `start` took longer than
    /// the grace window: the scenario would then prove nothing about grace.
    fn assert_within_grace(server: &dyn DemoServer, start: std::time::Instant) {
        let took = start.elapsed();
        assert!(
            took < server.grace_period(),
            "the requests took {took:?}, past the {:?} grace window: too slow to test grace",
            server.grace_period()
        );
    }

    /// A thief who copied both of alice's cookies polls `/api/me` with its
    /// own user agent, from its own network, riding her session. Her browser
    /// restarts and makes a cookie login, which ends that session. The
    /// thief's next poll presents the replaced token inside the grace window,
    /// from another browser than the one that rotated: 401 `unexpected_token`,
    /// both cookies cleared, and alice is logged out everywhere (her new
    /// cookies, her other device); bob is untouched.
    pub async fn polling_thief_is_caught_at_the_next_rotation(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let victim = device(&client, ALICE, true, "scenario/victim").await.from_ip("198.51.100.7");
        let mut other = device(&client, ALICE, true, "scenario/alice-laptop").await;
        let mut bob = device(&client, BOB, true, "scenario/bob").await;

        let mut thief = Jar { user_agent: Some("scenario/thief".into()), ..victim.from_ip("203.0.113.66") };
        for _ in 0..3 {
            let reply = client.me(&mut thief).await;
            assert_me(&reply, "alice", ViaName::Session);
            assert_no_cookies(&reply);
        }
        let mut restarted = victim.without_session();
        let start = std::time::Instant::now();
        assert_me(&client.me(&mut restarted).await, "alice", ViaName::Cookie);
        let reply = client.me(&mut thief).await;
        assert_within_grace(&*server, start);
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNEXPECTED_TOKEN);
        assert_clears(&reply, SESSION_COOKIE);
        assert_clears(&reply, AUTH_COOKIE);
        assert_eq!(thief.cookie_header(), None, "the thief holds nothing any more");

        for (who, jar) in [("alice's restarted browser", &mut restarted), ("alice's laptop", &mut other)] {
            let reply = client.me(jar).await;
            assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
            note(&format!("{who}: logged out"));
        }
        for jar in [&restarted, &other] {
            let reply = client.me(&mut jar.without_session()).await;
            assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
        }
        assert_me(&client.me(&mut bob).await, "bob", ViaName::Session);
        assert_eq!(logins(&client, &bob).await.len(), 1, "bob keeps his login");
    }

    /// Two tabs of one browser after a restart: the first request rotates,
    /// the second (the same user agent, the same /24, the old cookie)
    /// converges on the same cookies through grace. The same browser from
    /// another network (Wi-Fi to mobile) presenting the old cookie inside the
    /// window gets 401 `unauthenticated` and its cookies cleared, and nothing
    /// is revoked: the converged tabs, alice's other device and both logins
    /// stay.
    pub async fn grace_is_for_the_browser_that_rotated(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let browser = device(&client, ALICE, true, "scenario/browser").await.from_ip("192.0.2.10");
        let mut other = device(&client, ALICE, true, "scenario/alice-laptop").await;
        let restarted = browser.without_session();

        let mut first_tab = restarted.clone();
        let start = std::time::Instant::now();
        assert_me(&client.me(&mut first_tab).await, "alice", ViaName::Cookie);
        let mut second_tab = restarted.from_ip("192.0.2.77");
        let reply = client.me(&mut second_tab).await;
        assert_me(&reply, "alice", ViaName::Grace);
        assert_eq!(
            (&second_tab.session, &second_tab.remember),
            (&first_tab.session, &first_tab.remember),
            "the second tab converges on the first tab's cookies"
        );
        let mut moved = restarted.from_ip("198.51.100.20");
        let reply = client.me(&mut moved).await;
        assert_within_grace(&*server, start);
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
        assert_clears(&reply, SESSION_COOKIE);
        assert_clears(&reply, AUTH_COOKIE);
        assert_eq!(moved.cookie_header(), None, "the refused request's cookies are cleared");

        for jar in [&mut first_tab, &mut second_tab, &mut other] {
            let reply = client.me(jar).await;
            assert_me(&reply, "alice", ViaName::Session);
        }
        assert_eq!(logins(&client, &first_tab).await.len(), 2, "no login was revoked");
        let reply = client.me(&mut first_tab.without_session()).await;
        assert_me(&reply, "alice", ViaName::Cookie);
    }

    /// A thief replays alice's remember-me cookie (a cookie login for them);
    /// after the grace window alice's browser comes back with the old token:
    /// that request answers 401 `unexpected_token` and clears both cookies;
    /// the thief, alice's other device and alice's own cookies are then all
    /// logged out (plain `unauthenticated`), and bob is untouched.
    pub async fn theft_after_grace_revokes_every_login(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let mut victim = device(&client, ALICE, true, "scenario/victim").await;
        let mut other = device(&client, ALICE, true, "scenario/alice-laptop").await;
        let mut bob = device(&client, BOB, true, "scenario/bob").await;

        let mut thief = Jar { user_agent: Some("scenario/thief".into()), ..victim.without_session() };
        let reply = client.me(&mut thief).await;
        assert_me(&reply, "alice", ViaName::Cookie);

        tokio::time::sleep(server.grace_period() + Duration::from_millis(300)).await;
        let stale = victim.clone();
        let reply = client.me(&mut victim).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNEXPECTED_TOKEN);
        assert_clears(&reply, SESSION_COOKIE);
        assert_clears(&reply, AUTH_COOKIE);
        assert_eq!(victim.cookie_header(), None);

        for (who, jar) in [("thief", &mut thief), ("other device", &mut other)] {
            let reply = client.me(jar).await;
            assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
            note(&format!("{who}: logged out"));
        }
        let reply = client.me(&mut other.clone().without_session()).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
        let reply = client.me(&mut stale.without_session()).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);

        assert_me(&client.me(&mut bob).await, "bob", ViaName::Session);
        assert_me(&client.me(&mut bob.without_session()).await, "bob", ViaName::Cookie);
        assert_eq!(logins(&client, &bob).await.len(), 1);
    }

    /// `DELETE /api/logins/{serial}` of another of alice's devices: 204, and
    /// that device is logged out on its next request; again, 404. Bob's
    /// serial, a garbage serial: 404, bob untouched. Anonymous: 401.
    /// Revoking one's own login: 204 and both cookies cleared.
    pub async fn remote_revoke_ends_that_device(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let mut phone = device(&client, ALICE, true, "scenario/phone").await;
        let laptop = device(&client, ALICE, true, "scenario/laptop").await;
        let laptop_serial = current_serial(&client, &laptop).await;
        let list = logins(&client, &phone).await;
        assert_eq!(list.len(), 2);
        assert!(list.iter().any(|login| login.serial == laptop_serial && !login.current));

        let reply = client.delete(&format!("/api/logins/{laptop_serial}"), &phone).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
        assert!(reply.body.is_empty());
        assert_no_cookies(&reply);
        let reply = client.me(&mut laptop.clone()).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
        let reply = client.me(&mut laptop.without_session()).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
        assert_clears(&reply, AUTH_COOKIE);
        assert_eq!(logins(&client, &phone).await.len(), 1);

        let reply = client.delete(&format!("/api/logins/{laptop_serial}"), &phone).await;
        assert_error(&reply, StatusCode::NOT_FOUND, error::NOT_FOUND);

        let bob = device(&client, BOB, true, "scenario/bob").await;
        let bob_serial = current_serial(&client, &bob).await;
        let reply = client.delete(&format!("/api/logins/{bob_serial}"), &phone).await;
        assert_error(&reply, StatusCode::NOT_FOUND, error::NOT_FOUND);
        for garbage in ["garbage", "AAAA", "%2e%2e"] {
            let reply = client.delete(&format!("/api/logins/{garbage}"), &phone).await;
            assert_error(&reply, StatusCode::NOT_FOUND, error::NOT_FOUND);
        }
        assert_me(&client.me(&mut bob.without_session()).await, "bob", ViaName::Cookie);

        let reply = client.delete(&format!("/api/logins/{bob_serial}"), &Jar::default()).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);

        let own = current_serial(&client, &phone).await;
        let reply = client.delete(&format!("/api/logins/{own}"), &phone).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        assert_clears(&reply, SESSION_COOKIE);
        assert_clears(&reply, AUTH_COOKIE);
        phone.apply(&reply);
        assert_eq!(phone.cookie_header(), None);
    }

    /// `POST /api/logout`: 204, both cookies cleared; that device's cookies
    /// no longer work, alice's other device still does.
    pub async fn logout_ends_this_device_only(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let phone = device(&client, ALICE, true, "scenario/phone").await;
        let mut laptop = device(&client, ALICE, true, "scenario/laptop").await;
        let reply = client.post("/api/logout", &phone).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
        assert_clears(&reply, SESSION_COOKIE);
        assert_clears(&reply, AUTH_COOKIE);
        let reply = client.me(&mut phone.clone()).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
        let reply = client.me(&mut phone.without_session()).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
        assert_me(&client.me(&mut laptop).await, "alice", ViaName::Session);
        let list = logins(&client, &laptop).await;
        assert_eq!(list.len(), 1);
        assert!(list[0].current);
        let reply = client.post("/api/logout", &Jar::default()).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "logging out twice is fine");
    }

    /// `POST /api/logout-everywhere`: 204, both cookies cleared; every
    /// device of alice is logged out, bob is not. Anonymous: 401.
    pub async fn logout_everywhere_ends_every_device(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let phone = device(&client, ALICE, true, "scenario/phone").await;
        let laptop = device(&client, ALICE, true, "scenario/laptop").await;
        let plain = device(&client, ALICE, false, "scenario/plain").await;
        let mut bob = device(&client, BOB, true, "scenario/bob").await;
        let reply = client.post("/api/logout-everywhere", &phone).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
        assert_clears(&reply, SESSION_COOKIE);
        assert_clears(&reply, AUTH_COOKIE);
        for jar in [&phone, &laptop, &laptop.without_session(), &plain] {
            let reply = client.me(&mut jar.clone()).await;
            assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
        }
        assert_me(&client.me(&mut bob).await, "bob", ViaName::Session);
        let reply = client.post("/api/logout-everywhere", &Jar::default()).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
    }

    /// Logging in again on a device replaces its login (one login per
    /// device), and logging in as someone else ends the previous user's
    /// login on that device.
    pub async fn logging_in_again_replaces_the_device_login(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let mut jar = device(&client, ALICE, true, "scenario/shared").await;
        let first = jar.clone();
        let reply = client.login(&mut jar, ALICE.0, ALICE.1, true).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(logins(&client, &jar).await.len(), 1, "still one login for this device");
        let reply = client.me(&mut first.without_session()).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);

        let alice = jar.clone();
        let reply = client.login(&mut jar, BOB.0, BOB.1, true).await;
        assert_eq!(reply.json::<LoginResponse>().username, "bob");
        assert_me(&client.me(&mut jar).await, "bob", ViaName::Session);
        let reply = client.me(&mut alice.without_session()).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
    }

    /// Garbage, a wrong format version, bad encodings, a 5 KB value, a
    /// non-UTF-8 header and another user's name on bob's cookie: 401
    /// `unauthenticated` (never 500), the bad cookie cleared; a 20 KB
    /// `Cookie` header is refused unread (401, nothing cleared), even with a
    /// valid session inside. Bob keeps working.
    pub async fn malformed_and_oversized_cookies_are_401(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let mut bob = device(&client, BOB, true, "scenario/bob").await;
        let bob_remember = bob.remember.clone().unwrap_or_default();
        let mut parts: Vec<String> = bob_remember.split('.').map(str::to_owned).collect();
        assert_eq!(parts.len(), 4, "auth cookie is version.user.serial.token: {bob_remember}");
        parts[1] = URL_SAFE_NO_PAD.encode("alice");
        let foreign = parts.join(".");

        let long = format!("1.{}", "A".repeat(5 * 1024));
        let cases: [(&str, String, Option<&str>); 9] = [
            ("garbage session", "session=garbage".into(), Some(SESSION_COOKIE)),
            ("garbage remember-me", "remember_me=garbage".into(), Some(AUTH_COOKIE)),
            ("wrong version", "remember_me=2.YWxpY2U.AAAAAAAAAAAAAAAAAAAAAA.AAAA".into(), Some(AUTH_COOKIE)),
            ("bad base64", "remember_me=1.!!!.***.~~~".into(), Some(AUTH_COOKIE)),
            ("session with too few parts", "session=1.YWxpY2U".into(), Some(SESSION_COOKIE)),
            ("5 KB remember-me", format!("remember_me={long}"), Some(AUTH_COOKIE)),
            ("5 KB session", format!("session={long}"), Some(SESSION_COOKIE)),
            ("another user's name on bob's cookie", format!("remember_me={foreign}"), Some(AUTH_COOKIE)),
            (
                "20 KB Cookie header",
                format!("pad={}; session={}", "x".repeat(20 * 1024), bob.session.clone().unwrap_or_default()),
                None,
            ),
        ];
        for (what, header, cleared) in cases {
            let value = match HeaderValue::from_str(&header) {
                Ok(value) => value,
                Err(error) => panic!("{what}: {error}"),
            };
            let reply =
                client.send(Method::GET, "/api/me", &Jar::default(), None, &[("cookie", value)]).await;
            assert_ne!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{what}");
            assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
            match cleared {
                Some(name) => assert_clears(&reply, name),
                None => assert_no_cookies(&reply),
            }
        }
        let non_utf8 = match HeaderValue::from_bytes(b"session=\xff\xfe; remember_me=\xc3\x28") {
            Ok(value) => value,
            Err(error) => panic!("{error}"),
        };
        let reply = client.send(Method::GET, "/api/me", &Jar::default(), None, &[("cookie", non_utf8)]).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);

        assert_me(&client.me(&mut bob).await, "bob", ViaName::Session);
        assert_me(&client.me(&mut bob.without_session()).await, "bob", ViaName::Cookie);
    }

    /// Malformed JSON, wrong types, missing fields, no content type: 400
    /// `invalid_body`; a 20 KiB body: 400 `body_too_large`. No cookie is
    /// set, nobody is logged in.
    pub async fn invalid_and_oversized_bodies_are_400(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let json = "application/json";
        let cases: [(&str, &'static str, Vec<u8>, &str); 6] = [
            ("malformed", json, b"{\"username\": \"alice\",".to_vec(), error::INVALID_BODY),
            ("wrong types", json, br#"{"username": 1, "password": true}"#.to_vec(), error::INVALID_BODY),
            ("missing password", json, br#"{"username": "alice"}"#.to_vec(), error::INVALID_BODY),
            ("not an object", json, b"[1, 2, 3]".to_vec(), error::INVALID_BODY),
            (
                "no content type",
                "",
                br#"{"username":"alice","password":"alice-secret"}"#.to_vec(),
                error::INVALID_BODY,
            ),
            (
                "20 KiB",
                json,
                format!(r#"{{"username":"alice","password":"{}"}}"#, "p".repeat(20 * 1024)).into_bytes(),
                error::BODY_TOO_LARGE,
            ),
        ];
        for (what, content_type, body, code) in cases {
            let reply = client
                .send(Method::POST, "/api/login", &Jar::default(), Some((content_type, body)), &[])
                .await;
            note(what);
            assert_error(&reply, StatusCode::BAD_REQUEST, code);
            assert_no_cookies(&reply);
        }
    }

    /// A wrong password, an unknown user, an empty username: 401
    /// `invalid_credentials`, no cookie. (That an unknown user costs a hash
    /// like a known one is checked on `Accounts` itself, not by timing.)
    pub async fn wrong_password_and_unknown_user_are_401(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        for (user, password) in [("alice", "bob-secret"), ("mallory", "alice-secret")] {
            let reply = client.login(&mut Jar::default(), user, password, true).await;
            assert_error(&reply, StatusCode::UNAUTHORIZED, error::INVALID_CREDENTIALS);
            assert_no_cookies(&reply);
        }
        let reply = client.login(&mut Jar::default(), "", "", false).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::INVALID_CREDENTIALS);
        let reply = client.login(&mut Jar::default(), "ALICE", ALICE.1, false).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::INVALID_CREDENTIALS);
    }

    /// With the store down: `/api/me` with a session, with only the
    /// remember-me cookie, `/api/logins`, `/api/logout`, `/api/login`, the
    /// session data routes, `/api/confirm-password`, `/api/sensitive` and
    /// `/api/logout-others` all answer 503 `store_unavailable` with no
    /// `Set-Cookie`; the pages (plain, guarded, the theme form) answer a 503
    /// page, no `Set-Cookie` either; `/healthz` still 200, and so does reading
    /// the session data of a request without cookies (which asks the store
    /// nothing). Once it is back, the same cookies work again (session, then
    /// cookie login) and logging in works.
    pub async fn store_outage_is_503_then_recovers(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let mut jar = device(&client, ALICE, true, "scenario/outage").await;
        server.set_store_down(true);
        let remember_only = jar.without_session();
        let login = serde_json::json!({ "username": "bob", "password": "bob-secret", "remember": true });
        let replies = [
            ("me", client.get("/api/me", &jar).await),
            ("me by cookie", client.get("/api/me", &remember_only).await),
            ("logins", client.get("/api/logins", &jar).await),
            ("logout", client.post("/api/logout", &jar).await),
            ("login", client.post_json("/api/login", &Jar::default(), &login).await),
            ("login over cookies", client.post_json("/api/login", &jar, &login).await),
            ("session data", client.get("/api/session", &jar).await),
            ("session write", client.put_json("/api/session/theme", &jar, &json!("dark")).await),
            ("session delete", client.delete("/api/session/theme", &jar).await),
            (
                "confirm",
                client.post_json("/api/confirm-password", &jar, &json!({ "password": ALICE.1 })).await,
            ),
            ("sensitive", client.post("/api/sensitive", &jar).await),
            ("sensitive by cookie", client.post("/api/sensitive", &remember_only).await),
            ("logout others", client.post("/api/logout-others", &jar).await),
        ];
        for (what, reply) in &replies {
            note(what);
            assert_error(reply, StatusCode::SERVICE_UNAVAILABLE, error::STORE_UNAVAILABLE);
            assert_no_cookies(reply);
        }
        let pages = [
            ("home", client.get("/", &jar).await),
            ("devices", client.get("/devices", &jar).await),
            ("security", client.get("/security", &jar).await),
            ("confirm", client.get("/confirm-password", &remember_only).await),
            ("theme", client.post_form("/theme", &jar, &[("theme", "dark"), ("next", "/")]).await),
            ("logout others", client.post("/logout-others", &jar).await),
        ];
        for (what, reply) in &pages {
            note(what);
            assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {}", reply.text());
            let content_type = reply.header("content-type").unwrap_or_default();
            assert!(content_type.starts_with("text/html"), "{what}: a page, not {content_type:?}");
            assert!(reply.text().contains("Temporarily unavailable"), "{what}: {}", reply.text());
            assert_no_cookies(reply);
        }
        let reply = client.get("/healthz", &Jar::default()).await;
        assert_eq!(reply.status, StatusCode::OK);
        let reply = client.get("/api/session", &Jar::default()).await;
        assert_eq!(
            (reply.status, reply.json::<serde_json::Value>()),
            (StatusCode::OK, json!({ "data": {} }))
        );
        assert_no_cookies(&reply);
        server.set_store_down(false);

        assert_me(&client.me(&mut jar).await, "alice", ViaName::Session);
        let mut remember_only = remember_only;
        assert_me(&client.me(&mut remember_only).await, "alice", ViaName::Cookie);
        let reply = client.login(&mut Jar::default(), BOB.0, BOB.1, true).await;
        assert_eq!(reply.status, StatusCode::OK);
    }

    /// `GET /api/logins`: exactly the fields `serial`, `created_at`,
    /// `last_used_at`, `authenticated_at`, `ip`, `user_agent`, `current`;
    /// RFC 3339 UTC times;
    /// the loopback IP and each device's user agent; only the asking device
    /// `current`; most recently used first; a cookie login moves
    /// `last_used_at`. Anonymous: 401.
    pub async fn logins_list_fields_times_and_current(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let started = OffsetDateTime::now_utc() - Duration::from_secs(2);
        let phone = device(&client, ALICE, true, "scenario/phone <b>&</b>").await;
        let laptop = device(&client, ALICE, true, "scenario/laptop").await;

        let reply = client.get("/api/logins", &phone).await;
        assert_eq!(reply.status, StatusCode::OK);
        let raw: serde_json::Value = reply.json();
        let Some(entries) = raw.as_array() else { panic!("not an array: {raw}") };
        assert_eq!(entries.len(), 2);
        for entry in entries {
            let Some(object) = entry.as_object() else { panic!("not an object: {entry}") };
            let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(
                keys,
                ["authenticated_at", "created_at", "current", "ip", "last_used_at", "serial", "user_agent"]
            );
            for field in ["created_at", "last_used_at", "authenticated_at"] {
                let text = object[field].as_str().unwrap_or_default();
                let at = OffsetDateTime::parse(text, &Rfc3339)
                    .unwrap_or_else(|error| panic!("{field} {text:?} is not RFC 3339: {error}"));
                assert!(at >= started && at <= OffsetDateTime::now_utc() + Duration::from_secs(2), "{text}");
                assert!(text.ends_with('Z'), "UTC: {text}");
            }
            let serial = object["serial"].as_str().unwrap_or_default();
            assert_eq!(serial.len(), 22, "16 bytes of base64url: {serial}");
        }
        let list: Vec<LoginInfo> = reply.json();
        assert_eq!(list[0].user_agent.as_deref(), Some("scenario/laptop"), "most recently used first");
        assert_eq!(list[1].user_agent.as_deref(), Some("scenario/phone <b>&</b>"));
        assert!(list.iter().all(|login| login.ip.as_deref() == Some("127.0.0.1")), "{list:?}");
        assert_eq!(
            list.iter().map(|login| login.current).collect::<Vec<_>>(),
            [false, true],
            "the phone asked"
        );
        assert!(
            logins(&client, &laptop)
                .await
                .iter()
                .any(|l| l.current && l.user_agent.as_deref() == Some("scenario/laptop"))
        );

        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut phone_again = phone.without_session();
        assert_me(&client.me(&mut phone_again).await, "alice", ViaName::Cookie);
        let after = logins(&client, &phone_again).await;
        assert_eq!(after[0].user_agent.as_deref(), Some("scenario/phone <b>&</b>"), "now the most recent");
        assert!(after[0].current);
        assert!(after[0].last_used_at > list[1].last_used_at);
        assert_eq!(after[0].created_at, list[1].created_at);
        assert_eq!(after[0].authenticated_at, list[1].authenticated_at, "a cookie login types no password");

        let reply = client.get("/api/logins", &Jar::default()).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
    }

    /// A state-changing request that does not come from the demo's origin
    /// is refused with 403 `cross_site_request` before anything happens:
    /// `Sec-Fetch-Site: cross-site` or `same-site` (a sibling subdomain),
    /// and, without `Sec-Fetch-Site`, an `Origin` of another host, `Origin:
    /// null`, or no `Origin` either (curl, a stripped request). A cross-site
    /// login sets no cookie (no login CSRF), a refused logout leaves the
    /// session alone. `Sec-Fetch-Site: same-origin` or `none`, an `Origin`
    /// of this host without it, and GETs from anywhere pass.
    pub async fn cross_site_state_changes_are_refused(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let mut jar = device(&client, ALICE, true, "scenario/csrf").await;
        let header = |name: &'static str, value: &'static str| (name, HeaderValue::from_static(value));
        let here = server.base_url();
        let here = HeaderValue::from_str(&here).unwrap_or_else(|error| panic!("{here}: {error}"));
        let login = br#"{"username":"bob","password":"bob-secret","remember":true}"#.to_vec();
        let refusals: [(&str, Vec<(&str, HeaderValue)>); 6] = [
            ("cross-site", vec![header("sec-fetch-site", "cross-site")]),
            ("same-site", vec![header("sec-fetch-site", "same-site"), ("origin", here.clone())]),
            ("another origin", vec![header("origin", "http://evil.example")]),
            ("another port", vec![header("origin", "http://127.0.0.1:1")]),
            ("a null origin", vec![header("origin", "null")]),
            ("no header at all", vec![]),
        ];
        let bare = client.bare();
        for (what, headers) in &refusals {
            note(what);
            let body = Some(("application/json", login.clone()));
            let reply = bare.send(Method::POST, "/api/login", &Jar::default(), body, headers).await;
            assert_error(&reply, StatusCode::FORBIDDEN, error::CROSS_SITE_REQUEST);
            assert_no_cookies(&reply);
            for path in ["/api/logout", "/api/logout-everywhere", "/logout"] {
                let reply = bare.send(Method::POST, path, &jar, None, headers).await;
                assert_error(&reply, StatusCode::FORBIDDEN, error::CROSS_SITE_REQUEST);
                assert_no_cookies(&reply);
            }
        }
        let reply =
            bare.send(Method::GET, "/api/me", &jar, None, &[header("sec-fetch-site", "cross-site")]).await;
        assert_me(&reply, "alice", ViaName::Session);
        assert_me(&bare.send(Method::GET, "/api/me", &jar, None, &[]).await, "alice", ViaName::Session);

        let body = || Some(("application/json", b"\"dark\"".to_vec()));
        for (what, headers) in [
            ("none", vec![header("sec-fetch-site", "none")]),
            ("this origin", vec![("origin", here.clone())]),
            ("same-origin", vec![header("sec-fetch-site", "same-origin")]),
        ] {
            note(what);
            let reply = bare.send(Method::PUT, "/api/session/theme", &jar, body(), &headers).await;
            assert_eq!(reply.status, StatusCode::NO_CONTENT, "{what}: {}", reply.text());
        }
        let same = [header("sec-fetch-site", "same-origin")];
        let reply = bare.send(Method::POST, "/api/logout", &jar, None, &same).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        jar.apply(&reply);
        assert_eq!(jar.cookie_header(), None);
    }

    /// The HTML pages: `/` shows the login form to a stranger; the form logs
    /// zoë.o'brien in (303 to `/`, both cookies); home says who she is,
    /// escaped, and how the request was authenticated; the devices page
    /// lists her login as this device, with every user-agent character
    /// escaped; a wrong password re-renders the form with 401, the typed
    /// username escaped.
    pub async fn html_pages_render_and_escape(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let reply = client.get("/", &Jar::default()).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.header("content-type").unwrap_or_default().starts_with("text/html"));
        assert!(reply.text().contains("id=\"login-form\""));
        assert_no_cookies(&reply);

        let mut jar = Jar::with_agent("scenario/<script>alert('ua')</script>");
        let form = form_encode(&[("username", ZOE.0), ("password", ZOE.1), ("remember", "on")]);
        let form_type = "application/x-www-form-urlencoded";
        let reply = client.send(Method::POST, "/login", &jar, Some((form_type, form)), &[]).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
        assert_eq!(reply.header("location"), Some("/"));
        assert_sets(&reply, SESSION_COOKIE);
        assert_sets(&reply, AUTH_COOKIE);
        jar.apply(&reply);

        let home = client.get("/", &jar).await;
        assert_eq!(home.status, StatusCode::OK);
        let text = home.text();
        assert!(text.contains("<span id=\"user\">zoë.o&#39;brien</span>"), "{text}");
        assert!(text.contains("data-via=\"session\""), "{text}");
        assert!(!text.contains("o'brien"), "the quote is escaped everywhere");

        let devices = client.get("/devices", &jar).await;
        assert_eq!(devices.status, StatusCode::OK);
        let text = devices.text();
        assert!(text.contains("class=\"current\""), "{text}");
        assert!(text.contains("scenario/&lt;script&gt;alert(&#39;ua&#39;)&lt;/script&gt;"), "{text}");
        assert!(!text.contains("<script>"), "{text}");

        let mut cookie_jar = jar.without_session();
        let reply = client.get("/", &cookie_jar).await;
        assert!(reply.text().contains("data-via=\"cookie\""));
        cookie_jar.apply(&reply);

        let form = form_encode(&[("username", "<b>mallory</b>"), ("password", "x")]);
        let reply = client.send(Method::POST, "/login", &Jar::default(), Some((form_type, form)), &[]).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        let text = reply.text();
        assert!(text.contains("id=\"login-error\""), "{text}");
        assert!(text.contains("value=\"&lt;b&gt;mallory&lt;/b&gt;\""), "{text}");
        assert_no_cookies(&reply);
    }

    /// The HTML side of a theft and of the forms: after the grace window the
    /// victim's `GET /` shows the theft alert and clears both cookies; the
    /// revoke button's POST ends another device (303 back to the devices
    /// page); the log-out forms end this device or all (303 to `/`).
    pub async fn html_theft_alert_and_form_actions(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let mut victim = device(&client, ALICE, true, "scenario/victim").await;
        let mut thief = victim.without_session();
        assert_me(&client.me(&mut thief).await, "alice", ViaName::Cookie);
        tokio::time::sleep(server.grace_period() + Duration::from_millis(300)).await;
        let reply = client.get("/", &victim).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.text().contains("id=\"theft-alert\""), "{}", reply.text());
        assert!(reply.text().contains("backup"), "the alert mentions restored backups");
        assert_clears(&reply, SESSION_COOKIE);
        assert_clears(&reply, AUTH_COOKIE);
        victim.apply(&reply);
        let reply = client.get("/", &victim).await;
        assert!(!reply.text().contains("theft-alert"), "the alert is shown once");

        let phone = device(&client, ALICE, true, "scenario/phone").await;
        let mut laptop = device(&client, ALICE, true, "scenario/laptop").await;
        let laptop_serial = current_serial(&client, &laptop).await;
        let reply = client.post(&crate::html::paths::revoke(&laptop_serial), &phone).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER);
        assert_eq!(reply.header("location"), Some("/devices"));
        let reply = client.me(&mut laptop).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
        let reply = client.post(&crate::html::paths::revoke("AAAAAAAAAAAAAAAAAAAAAA"), &phone).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);

        let reply = client.post("/logout", &phone).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER);
        assert_eq!(reply.header("location"), Some("/"));
        assert_clears(&reply, SESSION_COOKIE);
        assert_clears(&reply, AUTH_COOKIE);

        let tablet = device(&client, ALICE, true, "scenario/tablet").await;
        let mut desktop = device(&client, ALICE, true, "scenario/desktop").await;
        let reply = client.post("/logout-everywhere", &tablet).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER);
        assert_clears(&reply, AUTH_COOKIE);
        let reply = client.me(&mut desktop).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
        let reply = client.get("/devices", &Jar::default()).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "the devices page needs a login");
    }

    /// `GET /api/session`, asking the JSON body of a reply.
    async fn session_data(client: &Client, jar: &mut Jar) -> serde_json::Value {
        let reply = client.get("/api/session", jar).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        jar.apply(&reply);
        let body: serde_json::Value = reply.json();
        let view: api::SessionView = reply.json();
        assert_eq!(body, json!({ "data": view.data }), "nothing but `data`");
        body["data"].clone()
    }

    /// Asserts a `204 No Content` with an empty body.
    fn assert_no_content(reply: &Reply) {
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
        assert!(reply.body.is_empty(), "204 has no body: {}", reply.text());
    }

    /// `GET /api/me` as `username` via `via`, applying the cookies.
    async fn me_as(client: &Client, jar: &mut Jar, username: &str, via: ViaName) -> Me {
        assert_me(&client.me(jar).await, username, via)
    }

    /// `POST /api/confirm-password` with `password`.
    async fn confirm(client: &Client, jar: &Jar, password: &str) -> Reply {
        client.post_json("/api/confirm-password", jar, &json!({ "password": password })).await
    }

    /// Visitors have session data. `GET /api/session` answers exactly
    /// `{"data":{}}` to a request without cookies, and sets no cookie: no
    /// session is made to be read. `PUT /api/session/{key}` of any JSON value
    /// answers 204 and, the first time only, a session cookie (a visitor's:
    /// no remember-me cookie); reads give back what was written, a `PUT`
    /// overwrites, `DELETE` takes a value out (204, also for a missing key or
    /// without a session, which it does not create). A visitor with a
    /// session is still not logged in: `/api/me` 401, their cookie left
    /// alone.
    pub async fn visitors_have_session_data(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let reply = client.get("/api/session", &Jar::default()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert!(reply.header("content-type").unwrap_or_default().starts_with("application/json"));
        assert_eq!(reply.json::<serde_json::Value>(), json!({ "data": {} }));
        assert_no_cookies(&reply);
        let reply = client.delete("/api/session/theme", &Jar::default()).await;
        assert_no_content(&reply);
        assert_no_cookies(&reply);

        let mut jar = Jar::with_agent("scenario/visitor");
        let reply = client.put_json("/api/session/theme", &jar, &json!("dark")).await;
        assert_no_content(&reply);
        let first = assert_sets(&reply, SESSION_COOKIE);
        assert!(reply.cookie(AUTH_COOKIE).is_none(), "a visitor has no remember-me cookie");
        jar.apply(&reply);

        let values = [
            ("cart", json!({ "items": [1, 2, 3], "note": "zoë <b>&</b>" })),
            ("count", json!(3)),
            ("flag", json!(null)),
            ("list", json!([true, "x", 1.5])),
        ];
        for (key, value) in &values {
            let reply = client.put_json(&format!("/api/session/{key}"), &jar, value).await;
            note(key);
            assert_no_content(&reply);
            assert_no_cookies(&reply);
        }
        let mut expected = json!({ "theme": "dark" });
        for (key, value) in values {
            expected[key] = value;
        }
        assert_eq!(session_data(&client, &mut jar).await, expected);
        assert_eq!(jar.session.as_deref(), Some(first.as_str()), "reading keeps the session cookie");

        let reply = client.put_json("/api/session/theme", &jar, &json!("light")).await;
        assert_no_content(&reply);
        for _ in 0..2 {
            let reply = client.delete("/api/session/count", &jar).await;
            assert_no_content(&reply);
            assert_no_cookies(&reply);
        }
        expected["theme"] = json!("light");
        if let Some(object) = expected.as_object_mut() {
            object.remove("count");
        }
        assert_eq!(session_data(&client, &mut jar).await, expected);

        let reply = client.get("/api/me", &jar).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
        assert_no_cookies(&reply);
        assert_eq!(session_data(&client, &mut jar).await, expected, "still the visitor's");
    }

    /// Session keys are 1 to 64 of `A-Z a-z 0-9 _ -`: others (a dot, a
    /// space, a slash, a non-ASCII letter, bad UTF-8, 65 characters) answer
    /// 400 `invalid_key`, for `PUT` and `DELETE`, before the body is looked
    /// at. A value is one JSON document of at most 4 KiB: 4097 bytes (or
    /// 20 KiB) answer 400 `body_too_large`; malformed JSON, two documents,
    /// an empty body or no JSON content type 400 `invalid_body`. None of
    /// them sets a cookie or changes the data. Past the library's 64 KiB of
    /// session data, a write answers 413 `session_too_large` and changes
    /// nothing.
    pub async fn session_keys_and_values_are_checked(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let long = "k".repeat(65);
        for key in ["a.b", "a%20b", "a%2Fb", "th%C3%A8me", "%FF", long.as_str()] {
            note(key);
            let reply = client.put_json(&format!("/api/session/{key}"), &Jar::default(), &json!(1)).await;
            assert_error(&reply, StatusCode::BAD_REQUEST, error::INVALID_KEY);
            assert_no_cookies(&reply);
            let reply = client.delete(&format!("/api/session/{key}"), &Jar::default()).await;
            assert_error(&reply, StatusCode::BAD_REQUEST, error::INVALID_KEY);
        }
        let body = Some(("application/json", b"{not json".to_vec()));
        let reply = client.send(Method::PUT, "/api/session/a.b", &Jar::default(), body, &[]).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, error::INVALID_KEY);

        let mut jar = Jar::with_agent("scenario/keys");
        let key = "k".repeat(64);
        let reply = client.put_json(&format!("/api/session/{key}"), &jar, &json!("64")).await;
        assert_no_content(&reply);
        jar.apply(&reply);

        let json_type = "application/json";
        // A JSON string of exactly `size` bytes, quotes included.
        let string_of = |size: usize| format!("\"{}\"", "v".repeat(size - 2)).into_bytes();
        let cases: [(&str, &'static str, Vec<u8>, &str); 6] = [
            ("4097 bytes", json_type, string_of(4097), error::BODY_TOO_LARGE),
            ("20 KiB", json_type, string_of(20 * 1024), error::BODY_TOO_LARGE),
            ("malformed", json_type, b"{\"a\":".to_vec(), error::INVALID_BODY),
            ("two documents", json_type, b"1 2".to_vec(), error::INVALID_BODY),
            ("empty", json_type, Vec::new(), error::INVALID_BODY),
            ("no content type", "", b"\"dark\"".to_vec(), error::INVALID_BODY),
        ];
        for (what, content_type, body, code) in cases {
            note(what);
            let reply =
                client.send(Method::PUT, "/api/session/note", &jar, Some((content_type, body)), &[]).await;
            assert_error(&reply, StatusCode::BAD_REQUEST, code);
            assert_no_cookies(&reply);
        }
        let reply = client
            .send(Method::PUT, "/api/session/note", &jar, Some((json_type, string_of(4096))), &[])
            .await;
        assert_no_content(&reply);
        let data = session_data(&client, &mut jar).await;
        assert_eq!(data[&key], json!("64"));
        assert_eq!(data["note"].as_str().map(str::len), Some(4094), "exactly 4 KiB is fine");

        // Fill the session up to the library's limit (64 KiB of JSON).
        let mut refused = None;
        for i in 0..20 {
            let path = format!("/api/session/fill{i}");
            let reply = client.send(Method::PUT, &path, &jar, Some((json_type, string_of(4000))), &[]).await;
            if reply.status != StatusCode::NO_CONTENT {
                assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, error::SESSION_TOO_LARGE);
                assert_no_cookies(&reply);
                refused = Some(i);
                break;
            }
        }
        let Some(refused) = refused else { panic!("20 writes of 4000 bytes fit in a session") };
        assert!((14..=16).contains(&refused), "refused at the {refused}th 4000-byte value, not near 64 KiB");
        let data = session_data(&client, &mut jar).await;
        assert!(data.get(format!("fill{refused}")).is_none(), "the refused write changed nothing");
        assert!(data.get(format!("fill{}", refused - 1)).is_some());
        let reply = client.delete("/api/session/note", &jar).await;
        assert_no_content(&reply);
        let reply = client.put_json(&format!("/api/session/fill{refused}"), &jar, &json!("small")).await;
        assert_no_content(&reply);
    }

    /// A visitor's session data comes along when they log in, under a new
    /// session cookie value (no fixation): the visitor's cookie is dead at
    /// once (its read answers `{}` and clears it). Writes then go to the
    /// user's session. Logging in as someone else on that browser ends
    /// alice's session and does not hand them her data; logging out ends the
    /// data with the session.
    pub async fn login_keeps_the_visitor_data_under_a_new_session(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        for remember in [true, false] {
            note(&format!("remember me: {remember}"));
            let mut jar = Jar::with_agent("scenario/carry");
            for (key, value) in [("theme", json!("dark")), ("cart", json!({ "items": [7] }))] {
                let reply = client.put_json(&format!("/api/session/{key}"), &jar, &value).await;
                assert_no_content(&reply);
                jar.apply(&reply);
            }
            let visitor = jar.clone();
            let Some(visitor_session) = visitor.session.clone() else { panic!("no visitor session") };

            let reply = client.login(&mut jar, ALICE.0, ALICE.1, remember).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
            let session = assert_sets(&reply, SESSION_COOKIE);
            assert_ne!(session, visitor_session, "a login always opens a new session id");
            assert_eq!(reply.cookie(AUTH_COOKIE).is_some(), remember);
            let carried = json!({ "theme": "dark", "cart": { "items": [7] } });
            assert_eq!(session_data(&client, &mut jar).await, carried);
            me_as(&client, &mut jar, "alice", ViaName::Session).await;

            let reply = client.get("/api/session", &visitor).await;
            assert_eq!(reply.status, StatusCode::OK);
            assert_eq!(reply.json::<serde_json::Value>(), json!({ "data": {} }));
            assert_clears(&reply, SESSION_COOKIE);

            let reply = client.put_json("/api/session/note", &jar, &json!("mine")).await;
            assert_no_content(&reply);
            assert_no_cookies(&reply);
            let mut expected = carried.clone();
            expected["note"] = json!("mine");
            assert_eq!(session_data(&client, &mut jar).await, expected);

            let alice = jar.clone();
            let reply = client.login(&mut jar, BOB.0, BOB.1, remember).await;
            assert_eq!(reply.status, StatusCode::OK);
            assert_eq!(session_data(&client, &mut jar).await, json!({}), "bob does not get alice's data");
            let reply = client.get("/api/session", &alice).await;
            assert_eq!(reply.json::<serde_json::Value>(), json!({ "data": {} }), "alice's session ended");

            let reply = client.put_json("/api/session/note", &jar, &json!("bob's")).await;
            assert_no_content(&reply);
            let bob = jar.clone();
            let reply = client.post("/api/logout", &jar).await;
            assert_no_content(&reply);
            let reply = client.get("/api/session", &bob).await;
            assert_eq!(reply.json::<serde_json::Value>(), json!({ "data": {} }), "logging out ends the data");
        }
    }

    /// `GET /api/me` has exactly `username`, `via`, `method`,
    /// `authenticated_at` (RFC 3339 UTC) and `fresh`. After a password login
    /// (remembered or not): `password`, the login's time, fresh. After a
    /// cookie login: `remembered`, not fresh, and still the time the password
    /// was typed; the session it opened stays `remembered`.
    pub async fn me_tells_how_when_and_whether_fresh(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let started = OffsetDateTime::now_utc() - Duration::from_secs(2);
        let mut jar = device(&client, ALICE, true, "scenario/me").await;
        let reply = client.me(&mut jar).await;
        let raw: serde_json::Value = reply.json();
        let Some(object) = raw.as_object() else { panic!("not an object: {raw}") };
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["authenticated_at", "fresh", "method", "username", "via"]);
        assert_eq!(
            (&raw["method"], &raw["fresh"], &raw["via"]),
            (&json!("password"), &json!(true), &json!("session"))
        );
        let text = raw["authenticated_at"].as_str().unwrap_or_default();
        let at = OffsetDateTime::parse(text, &Rfc3339)
            .unwrap_or_else(|error| panic!("authenticated_at {text:?} is not RFC 3339: {error}"));
        assert!(text.ends_with('Z'), "UTC: {text}");
        assert!(at >= started && at <= OffsetDateTime::now_utc() + Duration::from_secs(2), "{text}");
        let me = assert_me(&reply, "alice", ViaName::Session);

        let mut restarted = jar.without_session();
        let cookie = me_as(&client, &mut restarted, "alice", ViaName::Cookie).await;
        assert_eq!(cookie.authenticated_at, me.authenticated_at, "the password was typed at the login");
        let again = me_as(&client, &mut restarted, "alice", ViaName::Session).await;
        assert_eq!(
            (again.method, again.fresh),
            (AuthMethod::Remembered, false),
            "the session stays remembered"
        );

        let mut plain = device(&client, BOB, false, "scenario/plain").await;
        let bob = me_as(&client, &mut plain, "bob", ViaName::Session).await;
        assert_eq!((bob.method, bob.fresh), (AuthMethod::Password, true));
    }

    /// A remembered browser after a restart is not fresh: `POST
    /// /api/sensitive` answers 403 `reauthentication_required`.
    /// `POST /api/confirm-password` with a wrong password: 401
    /// `invalid_credentials`, nothing changes; a bad body 400 `invalid_body`;
    /// the right one: 204 and no cookie change, and the session is
    /// `password` and fresh, with the confirmation's time, so
    /// `/api/sensitive` answers 204. The device's login keeps that time: the
    /// next cookie login reports it (remembered again, not fresh). Not
    /// logged in (no cookies, or a visitor's session): both routes 401
    /// `unauthenticated`.
    pub async fn confirm_password_makes_the_session_fresh(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let mut phone = device(&client, ALICE, true, "scenario/confirm").await.without_session();
        me_as(&client, &mut phone, "alice", ViaName::Cookie).await;
        // The cookie login's new session has a new CSRF token.
        assert_eq!(client.csrf(&mut phone).await.status, StatusCode::OK);
        let reply = client.post("/api/sensitive", &phone).await;
        assert_error(&reply, StatusCode::FORBIDDEN, error::REAUTHENTICATION_REQUIRED);
        assert_no_cookies(&reply);

        let reply = confirm(&client, &phone, BOB.1).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::INVALID_CREDENTIALS);
        assert_no_cookies(&reply);
        let reply = client.post_json("/api/confirm-password", &phone, &json!({ "pass": ALICE.1 })).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, error::INVALID_BODY);
        let still = me_as(&client, &mut phone, "alice", ViaName::Session).await;
        assert_eq!(
            (still.method, still.fresh),
            (AuthMethod::Remembered, false),
            "a wrong password changes nothing"
        );

        let before = OffsetDateTime::now_utc() - Duration::from_secs(1);
        let reply = confirm(&client, &phone, ALICE.1).await;
        assert_no_content(&reply);
        assert_no_cookies(&reply);
        let confirmed = me_as(&client, &mut phone, "alice", ViaName::Session).await;
        assert_eq!((confirmed.method, confirmed.fresh), (AuthMethod::Password, true), "{confirmed:?}");
        assert!(confirmed.authenticated_at >= before, "{confirmed:?}");
        assert!(confirmed.authenticated_at > still.authenticated_at);
        let reply = client.post("/api/sensitive", &phone).await;
        assert_no_content(&reply);
        assert_no_cookies(&reply);

        let list = logins(&client, &phone).await;
        assert_eq!(
            list.iter().find(|login| login.current).map(|login| login.authenticated_at),
            Some(confirmed.authenticated_at)
        );
        let mut restarted = phone.without_session();
        let cookie = me_as(&client, &mut restarted, "alice", ViaName::Cookie).await;
        assert_eq!(client.csrf(&mut restarted).await.status, StatusCode::OK);
        assert_eq!(cookie.authenticated_at, confirmed.authenticated_at, "the login keeps the confirmation");
        let reply = client.post("/api/sensitive", &restarted).await;
        assert_error(&reply, StatusCode::FORBIDDEN, error::REAUTHENTICATION_REQUIRED);

        let mut visitor = Jar::with_agent("scenario/visitor");
        let reply = client.put_json("/api/session/theme", &visitor, &json!("dark")).await;
        visitor.apply(&reply);
        for (who, jar) in [("nobody", Jar::default()), ("a visitor", visitor)] {
            note(who);
            let reply = confirm(&client, &jar, ALICE.1).await;
            assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
            assert_no_cookies(&reply);
            let reply = client.post("/api/sensitive", &jar).await;
            assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
            assert_no_cookies(&reply);
        }
    }

    /// A password login is fresh for the server's freshness window
    /// (`EXPECTED_FRESH_SECS`) and no longer: once it has passed, `/api/me`
    /// says `password` but not fresh, and `/api/sensitive` answers 403
    /// `reauthentication_required` until the password is confirmed again.
    pub async fn freshness_lapses_after_the_window(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let mut jar = device(&client, ALICE, true, "scenario/lapse").await;
        let reply = client.post("/api/sensitive", &jar).await;
        assert_no_content(&reply);
        assert!(me_as(&client, &mut jar, "alice", ViaName::Session).await.fresh);

        tokio::time::sleep(server.fresh_for() + Duration::from_millis(300)).await;
        let stale = me_as(&client, &mut jar, "alice", ViaName::Session).await;
        assert_eq!((stale.method, stale.fresh), (AuthMethod::Password, false), "{stale:?}");
        let reply = client.post("/api/sensitive", &jar).await;
        assert_error(&reply, StatusCode::FORBIDDEN, error::REAUTHENTICATION_REQUIRED);

        assert_no_content(&confirm(&client, &jar, ALICE.1).await);
        assert_no_content(&client.post("/api/sensitive", &jar).await);
    }

    /// `POST /api/logout-others` ends every other login and session of the
    /// user and answers what ended, exactly `{"logins":N,"sessions":M}`;
    /// this device stays logged in, its cookies untouched (its session and
    /// its remember-me cookie both still work). The other devices, remembered
    /// or not, are logged out; asked again, nothing more ends. From a device
    /// without "remember me" every remembered login ends. Other users are untouched. Not logged
    /// in: 401 `unauthenticated`.
    pub async fn logout_others_keeps_this_device(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let mut phone = device(&client, ALICE, true, "scenario/phone").await;
        let laptop = device(&client, ALICE, true, "scenario/laptop").await;
        let tablet = device(&client, ALICE, false, "scenario/tablet").await;
        let mut bob = device(&client, BOB, true, "scenario/bob").await;

        let reply = client.post("/api/logout-others", &phone).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.json::<serde_json::Value>(), json!({ "logins": 1, "sessions": 2 }));
        assert_no_cookies(&reply);
        me_as(&client, &mut phone, "alice", ViaName::Session).await;
        for (who, jar) in [("laptop", &laptop), ("tablet", &tablet)] {
            note(who);
            let reply = client.me(&mut jar.clone()).await;
            assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
        }
        let reply = client.me(&mut laptop.without_session()).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
        assert_clears(&reply, AUTH_COOKIE);
        let list = logins(&client, &phone).await;
        assert_eq!((list.len(), list.iter().all(|login| login.current)), (1, true), "{list:?}");

        // The phone's remember-me cookie still works (a restart); then there
        // is nothing else to end.
        let mut restarted = phone.without_session();
        me_as(&client, &mut restarted, "alice", ViaName::Cookie).await;
        assert_eq!(client.csrf(&mut restarted).await.status, StatusCode::OK);
        let reply = client.post("/api/logout-others", &restarted).await;
        assert_eq!(reply.json::<LogoutOthersResponse>(), LogoutOthersResponse { logins: 0, sessions: 0 });
        me_as(&client, &mut restarted, "alice", ViaName::Session).await;

        let mut plain = device(&client, BOB, false, "scenario/bob-plain").await;
        let reply = client.post("/api/logout-others", &plain).await;
        assert_eq!(reply.json::<LogoutOthersResponse>(), LogoutOthersResponse { logins: 1, sessions: 1 });
        me_as(&client, &mut plain, "bob", ViaName::Session).await;
        let reply = client.me(&mut bob).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);

        let reply = client.post("/api/logout-others", &Jar::default()).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
        assert_no_cookies(&reply);
    }

    /// The HTML side of visitor data: the login page has theme buttons; the
    /// theme form (`POST /theme`) stores the choice in a new visitor session
    /// (303 back to `next`, only ever a path on this site; 400 for an
    /// unknown theme) and the login page turns dark. Signing in through the
    /// form keeps it under a new session cookie value: home is dark too and
    /// says the password was just typed.
    pub async fn html_visitor_theme_survives_login(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let mut jar = Jar::with_agent("scenario/theme");
        let reply = client.get("/", &jar).await;
        let text = reply.text();
        assert!(text.contains("data-theme=\"light\"") && text.contains("id=\"theme-dark\""), "{text}");
        assert_no_cookies(&reply);

        let reply = client.post_form("/theme", &jar, &[("theme", "dark"), ("next", "/")]).await;
        assert_eq!(redirect_target(&reply), ("/".to_owned(), None));
        let visitor = assert_sets(&reply, SESSION_COOKIE);
        assert!(reply.cookie(AUTH_COOKIE).is_none());
        jar.apply(&reply);
        let reply = client.get("/", &jar).await;
        let text = reply.text();
        assert!(text.contains("<body data-theme=\"dark\">") && text.contains("id=\"login-form\""), "{text}");
        assert_no_cookies(&reply);
        assert_eq!(session_data(&client, &mut jar).await, json!({ "theme": "dark" }));

        let reply = client.post_form("/theme", &jar, &[("theme", "purple"), ("next", "/")]).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
        for evil in ["//evil.example/", "https://evil.example/"] {
            let reply = client.post_form("/theme", &jar, &[("theme", "dark"), ("next", evil)]).await;
            assert_eq!(redirect_target(&reply).0, "/", "{evil}");
        }
        let reply =
            client.post_form("/theme", &jar, &[("theme", "dark"), ("next", "/login?next=%2Fsecurity")]).await;
        assert_eq!(reply.header("location"), Some("/login?next=%2Fsecurity"), "back where the buttons were");

        let fields = [("username", ALICE.0), ("password", ALICE.1), ("remember", "on"), ("next", "/")];
        let reply = client.post_form("/login", &jar, &fields).await;
        assert_eq!(redirect_target(&reply), ("/".to_owned(), None));
        let session = assert_sets(&reply, SESSION_COOKIE);
        assert_ne!(session, visitor, "a new session id");
        jar.apply(&reply);
        let reply = client.get("/", &jar).await;
        let text = reply.text();
        assert!(text.contains("<body data-theme=\"dark\">"), "{text}");
        assert!(text.contains("<span id=\"user\">alice</span>"), "{text}");
        assert!(text.contains("id=\"theme-name\">dark<"), "{text}");
        assert!(text.contains("data-method=\"password\">You signed in with your password"), "{text}");
        assert!(text.contains("just now"), "{text}");
    }

    /// The security page needs a password typed within the freshness window
    /// (the `FreshLogin` guard). A stranger is sent to the login page with
    /// `next=/security`, which the form carries and goes back to: a password
    /// login is fresh, so the page opens. A remembered browser after a
    /// restart is sent to `/confirm-password?next=/security` instead: a wrong
    /// password answers 401 with the form again, the right one 303 back to
    /// the page, which opens, and home then says `password`, fresh. The
    /// confirm page itself needs a login; its `next` stays on the site.
    pub async fn html_security_page_needs_a_fresh_password(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let reply = client.get(paths::SECURITY, &Jar::default()).await;
        assert_eq!(redirect_target(&reply), (paths::LOGIN.to_owned(), Some(paths::SECURITY.to_owned())));
        assert_no_cookies(&reply);
        let reply = client.get("/login?next=%2Fsecurity", &Jar::default()).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.text().contains("name=\"next\" value=\"/security\""), "{}", reply.text());
        let mut jar = Jar::with_agent("scenario/security");
        let fields = [("username", ALICE.0), ("password", ALICE.1), ("next", "/security")];
        let reply = client.post_form("/login", &jar, &fields).await;
        assert_eq!(redirect_target(&reply), (paths::SECURITY.to_owned(), None));
        jar.apply(&reply);
        let reply = client.get(paths::SECURITY, &jar).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert!(reply.text().contains("id=\"security\""));

        let mut remembered = device(&client, ALICE, true, "scenario/remembered").await.without_session();
        let reply = client.get("/", &remembered).await;
        let text = reply.text();
        assert!(
            text.contains("data-method=\"remembered\"") && text.contains("data-fresh=\"false\""),
            "{text}"
        );
        remembered.apply(&reply);
        // The page's forms carry the new session's CSRF token.
        remembered.csrf = page_csrf(&reply);
        assert!(remembered.csrf.is_some(), "{text}");
        let reply = client.get(paths::SECURITY, &remembered).await;
        let (page, next) = redirect_target(&reply);
        assert_eq!((page.as_str(), next.as_deref()), (paths::CONFIRM_PASSWORD, Some(paths::SECURITY)));
        let reply =
            client.get(&paths::with_next(paths::CONFIRM_PASSWORD, paths::SECURITY), &remembered).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let text = reply.text();
        assert!(
            text.contains("id=\"confirm-form\"") && text.contains("name=\"next\" value=\"/security\""),
            "{text}"
        );
        assert!(!text.contains("confirm-error"));

        let wrong = [("password", BOB.1), ("next", "/security")];
        let reply = client.post_form(paths::CONFIRM_PASSWORD, &remembered, &wrong).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert!(reply.text().contains("id=\"confirm-error\""), "{}", reply.text());
        assert_no_cookies(&reply);
        let reply = client.get(paths::SECURITY, &remembered).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "still not fresh");

        let right = [("password", ALICE.1), ("next", "/security")];
        let reply = client.post_form(paths::CONFIRM_PASSWORD, &remembered, &right).await;
        assert_eq!(redirect_target(&reply), (paths::SECURITY.to_owned(), None));
        assert_no_cookies(&reply);
        let reply = client.get(paths::SECURITY, &remembered).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert!(reply.text().contains("id=\"security\""));
        let text = client.get("/", &remembered).await.text();
        assert!(text.contains("data-method=\"password\"") && text.contains("data-fresh=\"true\""), "{text}");

        let evil = [("password", ALICE.1), ("next", "https://evil.example/")];
        let reply = client.post_form(paths::CONFIRM_PASSWORD, &remembered, &evil).await;
        assert_eq!(redirect_target(&reply), ("/".to_owned(), None));
        let reply = client.get(paths::CONFIRM_PASSWORD, &Jar::default()).await;
        assert_eq!(redirect_target(&reply).0, paths::LOGIN);
        let reply = client.post_form(paths::CONFIRM_PASSWORD, &Jar::default(), &right).await;
        assert_eq!(redirect_target(&reply).0, paths::LOGIN);
        assert_no_cookies(&reply);
    }

    /// "Sign out other devices" on the devices page (`POST /logout-others`):
    /// 303 to the devices page saying what ended, this device's cookies
    /// untouched; the other devices are logged out and the list holds this
    /// one only. A garbled notice is left out; a stranger's form gets the
    /// 401 "signed out" page.
    pub async fn html_logout_others_from_the_devices_page(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let mut phone = device(&client, ALICE, true, "scenario/phone").await;
        let laptop = device(&client, ALICE, true, "scenario/laptop").await;
        let plain = device(&client, ALICE, false, "scenario/plain").await;
        let reply = client.get(paths::DEVICES, &phone).await;
        assert!(reply.text().contains("id=\"logout-others\""), "{}", reply.text());

        let reply = client.post(paths::LOGOUT_OTHERS, &phone).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
        let location = reply.header("location").unwrap_or_default().to_owned();
        assert_eq!(location, paths::devices_after_logout_others(1, 2));
        assert_no_cookies(&reply);
        let reply = client.get(&location, &phone).await;
        assert_eq!(reply.status, StatusCode::OK);
        let text = reply.text();
        assert!(text.contains("id=\"others-ended\""), "{text}");
        assert!(text.contains("1 remembered device and 2 sessions ended"), "{text}");
        assert_eq!(text.matches("<tr data-serial=").count(), 1, "{text}");
        for jar in [&laptop, &plain, &laptop.without_session()] {
            let reply = client.me(&mut jar.clone()).await;
            assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
        }
        me_as(&client, &mut phone, "alice", ViaName::Session).await;

        let reply = client.get("/devices?logins=many&sessions=-1", &phone).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(!reply.text().contains("others-ended"), "{}", reply.text());
        let reply = client.post(paths::LOGOUT_OTHERS, &Jar::default()).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text());
        assert!(reply.text().contains("Signed out"), "{}", reply.text());
        assert_no_cookies(&reply);
    }

    /// The `Set-Cookie`s of `name` in `reply`: (value, `Domain`), in order.
    fn cookies_named(reply: &Reply, name: &str) -> Vec<(String, Option<String>)> {
        reply
            .set_cookies
            .iter()
            .filter(|cookie| cookie.name() == name)
            .map(|cookie| (cookie.value().to_owned(), cookie.domain().map(str::to_owned)))
            .collect()
    }

    /// `GET /api/me` as `browser`, asserting alice, via `via`.
    async fn alice_in(client: &Client, browser: &mut BrowserJar, via: ViaName) -> Reply {
        let reply = client.browse("/api/me", browser).await;
        assert_me(&reply, "alice", via);
        reply
    }

    /// Asserts that `reply` sets `name` and never clears it.
    fn assert_replaced_not_cleared(reply: &Reply, name: &str) {
        let set = cookies_named(reply, name);
        assert!(!set.is_empty() && set.iter().all(|(value, _)| !value.is_empty()), "{name}: {set:?}");
    }

    /// Several cookies of one name, as a browser sends them when they were
    /// set with different `Domain` or `Path` attributes:
    /// `remember_me=<garbage>; remember_me=<current>` logs in by the cookie
    /// and replaces the good one, never clears it; `session=<dead>;
    /// session=<live>` is a session hit with no cookie change; and past the
    /// grace window a replayed token next to the current one is no theft:
    /// 200 by the cookie, and alice's other device stays logged in.
    pub async fn repeated_cookie_names_judge_every_value(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let twins = device(&client, ALICE, true, "scenario/twins").await;
        let mut other = device(&client, ALICE, true, "scenario/other").await;
        let current = twins.remember.clone().unwrap_or_default();
        // The cookie login below rotates the login, which ends this session.
        let dead = twins.session.clone().unwrap_or_default();

        let reply = client
            .get_with_cookies("/api/me", &format!("{AUTH_COOKIE}=garbage; {AUTH_COOKIE}={current}"))
            .await;
        assert_me(&reply, "alice", ViaName::Cookie);
        assert_replaced_not_cleared(&reply, AUTH_COOKIE);
        let live = assert_sets(&reply, SESSION_COOKIE);
        let rotated = assert_sets(&reply, AUTH_COOKIE);

        let reply = client
            .get_with_cookies("/api/me", &format!("{SESSION_COOKIE}={dead}; {SESSION_COOKIE}={live}"))
            .await;
        assert_me(&reply, "alice", ViaName::Session);
        assert_no_cookies(&reply);

        tokio::time::sleep(server.grace_period() + Duration::from_millis(300)).await;
        let reply = client
            .get_with_cookies("/api/me", &format!("{AUTH_COOKIE}={current}; {AUTH_COOKIE}={rotated}"))
            .await;
        assert_me(&reply, "alice", ViaName::Cookie);
        assert_replaced_not_cleared(&reply, AUTH_COOKIE);
        me_as(&client, &mut other, "alice", ViaName::Session).await;
        assert_eq!(logins(&client, &other).await.len(), 2, "nothing revoked");
    }

    /// A sibling subdomain plants `remember_me` and `session` for
    /// `Path=/api` under the parent domain: the browser sends them first on
    /// every `/api` request, and this server cannot clear them (it never
    /// learns their `Domain`). `/api` keeps working: with the live session a
    /// session hit, after a browser restart a cookie login, and the real
    /// cookies are never cleared.
    pub async fn a_sibling_planted_cookie_does_not_break_the_api(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let mut browser = BrowserJar::host_only(&device(&client, ALICE, true, "scenario/planted").await);
        // Well-formed, naming no login: alice's name on a serial nobody has.
        let planted = format!("1.{}.{}.{}", URL_SAFE_NO_PAD.encode("alice"), "A".repeat(22), "B".repeat(43));
        for (name, value) in [(AUTH_COOKIE, planted.as_str()), (SESSION_COOKIE, "1.planted")] {
            browser.store(HeldCookie {
                name: name.into(),
                value: value.into(),
                domain: Some("parent.test".into()),
                path: "/api".into(),
                persistent: true,
            });
        }
        let sent = browser.cookie_header("/api/me").unwrap_or_default();
        assert!(sent.starts_with(&format!("{AUTH_COOKIE}={planted}")), "the planted ones go first: {sent}");

        let reply = alice_in(&client, &mut browser, ViaName::Session).await;
        assert_no_cookies(&reply);

        browser.restart();
        let reply = alice_in(&client, &mut browser, ViaName::Cookie).await;
        assert_replaced_not_cleared(&reply, AUTH_COOKIE);
        assert_replaced_not_cleared(&reply, SESSION_COOKIE);
        let real: Vec<_> =
            browser.held(AUTH_COOKIE).into_iter().filter(|held| held.domain.is_none()).collect();
        assert_eq!(real.len(), 1, "the real remember-me cookie is still there: {browser:?}");

        let reply = alice_in(&client, &mut browser, ViaName::Session).await;
        assert_no_cookies(&reply);
    }

    /// A deploy adds a cookie `Domain` (this server runs with
    /// [`COOKIE_DOMAIN`](crate::testing::COOKIE_DOMAIN)). The browser holds
    /// alice's host-only cookies from before; after a restart the host-only
    /// remember-me cookie logs in and the response sets the `Domain` ones,
    /// which the browser keeps next to the old one. After the grace window
    /// and another restart it sends both, the old (now a replayed token)
    /// first: 200 by the cookie, not a theft; the response clears the
    /// host-only cookie (a removal without `Domain`) and sets the `Domain`
    /// one, so the browser is left with the `Domain` cookies alone, which are
    /// a session hit. Alice's other device is untouched.
    pub async fn a_cookie_domain_change_keeps_the_user_logged_in(server: Arc<dyn DemoServer>) {
        let domain = crate::testing::COOKIE_DOMAIN;
        let client = Client::new(&*server);
        let mut other = device(&client, ALICE, true, "scenario/other").await;
        // Before the deploy the same login set host-only cookies.
        let mut browser = BrowserJar::host_only(&device(&client, ALICE, true, "scenario/domain").await);

        browser.restart();
        alice_in(&client, &mut browser, ViaName::Cookie).await;
        let held: Vec<Option<&str>> =
            browser.held(AUTH_COOKIE).iter().map(|held| held.domain.as_deref()).collect();
        assert_eq!(held, [None, Some(domain)], "the old host-only cookie and the new Domain one");

        tokio::time::sleep(server.grace_period() + Duration::from_millis(300)).await;
        browser.restart();
        let sent = browser.cookie_header("/api/me").unwrap_or_default();
        assert_eq!(sent.matches(&format!("{AUTH_COOKIE}=")).count(), 2, "{sent}");
        let reply = alice_in(&client, &mut browser, ViaName::Cookie).await;
        let set = cookies_named(&reply, AUTH_COOKIE);
        assert!(
            set.first().is_some_and(|(value, cookie_domain)| value.is_empty() && cookie_domain.is_none()),
            "the host-only twin is cleared first: {set:?}"
        );
        assert!(
            set.last().is_some_and(
                |(value, cookie_domain)| !value.is_empty() && cookie_domain.as_deref() == Some(domain)
            ),
            "then the Domain cookie is set: {set:?}"
        );
        let held: Vec<Option<&str>> =
            browser.held(AUTH_COOKIE).iter().map(|held| held.domain.as_deref()).collect();
        assert_eq!(held, [Some(domain)], "only the Domain cookie is left");

        let reply = alice_in(&client, &mut browser, ViaName::Session).await;
        assert_no_cookies(&reply);
        browser.restart();
        alice_in(&client, &mut browser, ViaName::Cookie).await;
        me_as(&client, &mut other, "alice", ViaName::Session).await;
        assert_eq!(logins(&client, &other).await.len(), 2, "nothing revoked");
    }

    /// A logged-in user's state-changing requests need their session's CSRF
    /// token. `GET /api/csrf` hands it out (the same token for the session's
    /// life, 401 for a visitor); `/api/session` does not show it. Without
    /// it, with a wrong one or with another user's: 403
    /// `invalid_csrf_token` and nothing changes; with it: done. The pages'
    /// forms carry it in a hidden field, and a form without it answers the
    /// 403 "form expired" page. A cookie login's new session has a new
    /// token: the old one is refused, and the refusal still hands out the
    /// rotated cookies. A visitor's requests need none.
    pub async fn csrf_tokens_guard_a_users_state_changes(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let mut phone = device(&client, ALICE, true, "scenario/phone").await;
        let mut laptop = device(&client, ALICE, true, "scenario/laptop").await;
        let bob = device(&client, BOB, true, "scenario/bob").await;
        let Some(token) = phone.csrf.clone() else { panic!("the login fetched no token") };
        assert_eq!(token.len(), 43, "{token}");
        let reply = client.csrf(&mut phone).await;
        assert_eq!(reply.json::<api::CsrfView>().token, token, "one token for the session's life");
        assert_no_cookies(&reply);
        assert_ne!(laptop.csrf, phone.csrf, "each session its own");
        let reply = client.get("/api/csrf", &Jar::default()).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);
        let data = session_data(&client, &mut phone).await;
        assert!(!data.to_string().contains(&token), "/api/session keeps the token to itself: {data}");

        let forged = [None, Some("A".repeat(43)), Some(token[..42].to_owned()), bob.csrf.clone()];
        for presented in forged {
            note(&format!("{presented:?}"));
            let jar = Jar { csrf: presented, ..phone.clone() };
            let reply = client.post("/api/logout-others", &jar).await;
            assert_error(&reply, StatusCode::FORBIDDEN, error::INVALID_CSRF_TOKEN);
            assert_no_cookies(&reply);
            let reply = client.put_json("/api/session/theme", &jar, &json!("dark")).await;
            assert_error(&reply, StatusCode::FORBIDDEN, error::INVALID_CSRF_TOKEN);
        }
        me_as(&client, &mut laptop, "alice", ViaName::Session).await;
        assert_eq!(session_data(&client, &mut phone).await, json!({}), "nothing was written");

        // The pages: every form carries the token; a form without it is refused.
        let page = client.get(paths::DEVICES, &phone).await;
        assert_eq!(page_csrf(&page).as_deref(), Some(token.as_str()), "{}", page.text());
        let formless = Jar { csrf: None, ..phone.clone() };
        let reply = client.post_form(paths::LOGOUT_OTHERS, &formless, &[]).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
        assert!(reply.header("content-type").unwrap_or_default().starts_with("text/html"));
        assert!(reply.text().contains("This form has expired"), "{}", reply.text());
        me_as(&client, &mut laptop, "alice", ViaName::Session).await;
        let field = [(expected_core::csrf::FORM_FIELD, token.as_str())];
        let reply = client.post_form(paths::LOGOUT_OTHERS, &formless, &field).await;
        assert_eq!(redirect_target(&reply).0, paths::DEVICES, "the hidden field is enough");
        let reply = client.me(&mut laptop).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::UNAUTHENTICATED);

        // A cookie login's session has a new token: the old one is refused,
        // and the refusal still sets the rotated cookies.
        let mut restarted = Jar { csrf: Some(token.clone()), ..phone.without_session() };
        let reply = client.post("/api/logout", &restarted).await;
        assert_error(&reply, StatusCode::FORBIDDEN, error::INVALID_CSRF_TOKEN);
        assert_sets(&reply, SESSION_COOKIE);
        assert_sets(&reply, AUTH_COOKIE);
        restarted.apply(&reply);
        assert_eq!(client.csrf(&mut restarted).await.status, StatusCode::OK);
        assert_ne!(restarted.csrf.as_deref(), Some(token.as_str()));
        me_as(&client, &mut restarted, "alice", ViaName::Session).await;
        let reply = client.post("/api/logout", &restarted).await;
        assert_no_content(&reply);

        // Visitors need no token: the origin check covers them.
        let mut visitor = Jar::with_agent("scenario/visitor");
        let reply = client.post_form(paths::THEME, &visitor, &[("theme", "dark"), ("next", "/")]).await;
        assert_eq!(redirect_target(&reply).0, "/");
        visitor.apply(&reply);
        let reply = client.put_json("/api/session/cart", &visitor, &json!([1])).await;
        assert_no_content(&reply);
    }

    /// Password attempts are throttled ([`LIMITS`](crate::LIMITS): 5
    /// failures per username, 20 per client IP, in 15 minutes). After 5
    /// wrong passwords for alice, her next attempt answers 429
    /// `too_many_attempts` with `Retry-After` (seconds, within the window),
    /// even with the right password, no cookie set, through the API and the
    /// form; other users still log in, and a right password forgives their
    /// own failures. An address that rotates usernames is stopped by its
    /// own limit: past 20 failures, every attempt from it is refused, the
    /// password confirmation too.
    pub async fn password_attempts_are_throttled(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let limits = crate::LIMITS;
        let retry_after = |reply: &Reply| {
            let secs: u64 = reply.header("retry-after").and_then(|value| value.parse().ok()).unwrap_or(0);
            assert!((1..=limits.window.as_secs()).contains(&secs), "Retry-After {secs}");
        };
        let mut bob = device(&client, BOB, true, "scenario/bob").await;
        let mut failures = 0;
        for _ in 0..limits.per_username {
            let reply = client.login(&mut Jar::default(), ALICE.0, "wrong", false).await;
            assert_error(&reply, StatusCode::UNAUTHORIZED, error::INVALID_CREDENTIALS);
            failures += 1;
        }
        let reply = client.login(&mut Jar::default(), ALICE.0, ALICE.1, true).await;
        assert_error(&reply, StatusCode::TOO_MANY_REQUESTS, error::TOO_MANY_ATTEMPTS);
        retry_after(&reply);
        assert_no_cookies(&reply);
        let fields = [("username", ALICE.0), ("password", ALICE.1), ("next", "/")];
        let reply = client.post_form(paths::LOGIN, &Jar::default(), &fields).await;
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{}", reply.text());
        assert!(reply.text().contains("Too many attempts"), "{}", reply.text());
        retry_after(&reply);
        assert_no_cookies(&reply);

        // Bob: one failure, then his right password, which forgives it.
        let reply = client.login(&mut Jar::default(), BOB.0, "wrong", false).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, error::INVALID_CREDENTIALS);
        failures += 1;
        assert_eq!(client.login(&mut Jar::default(), BOB.0, BOB.1, false).await.status, StatusCode::OK);

        // One address rotating usernames: stopped at its own limit.
        let mut i = 0;
        while failures < limits.per_ip {
            let reply = client.login(&mut Jar::default(), &format!("guess{i}"), "wrong", false).await;
            assert_error(&reply, StatusCode::UNAUTHORIZED, error::INVALID_CREDENTIALS);
            (failures, i) = (failures + 1, i + 1);
        }
        let reply = client.login(&mut Jar::default(), &format!("guess{i}"), "wrong", false).await;
        assert_error(&reply, StatusCode::TOO_MANY_REQUESTS, error::TOO_MANY_ATTEMPTS);
        retry_after(&reply);
        let reply = client.login(&mut Jar::default(), BOB.0, BOB.1, false).await;
        assert_error(&reply, StatusCode::TOO_MANY_REQUESTS, error::TOO_MANY_ATTEMPTS);
        let reply = confirm(&client, &bob, BOB.1).await;
        assert_error(&reply, StatusCode::TOO_MANY_REQUESTS, error::TOO_MANY_ATTEMPTS);
        retry_after(&reply);
        me_as(&client, &mut bob, "bob", ViaName::Session).await;
    }

    /// Every response that depends on who is logged in says `Cache-Control:
    /// no-store` and `Vary: Cookie`, a session hit that sets no cookie
    /// included: `/api/me`, `/api/logins` (IPs and user agents), `/api/csrf`,
    /// `/api/session` and the pages, so no cache keeps one user's answer for
    /// another.
    pub async fn responses_about_the_user_are_not_cached(server: Arc<dyn DemoServer>) {
        let client = Client::new(&*server);
        let jar = device(&client, ALICE, true, "scenario/cache").await;
        for path in ["/api/me", "/api/logins", "/api/csrf", "/api/session", "/", paths::DEVICES] {
            note(path);
            let reply = client.get(path, &jar).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
            assert_no_cookies(&reply);
            assert_eq!(reply.header("cache-control"), Some("no-store"));
            let vary: Vec<&str> =
                reply.headers.get_all("vary").iter().filter_map(|v| v.to_str().ok()).collect();
            assert!(
                vary.iter().flat_map(|v| v.split(',')).any(|name| name.trim().eq_ignore_ascii_case("cookie")),
                "Vary: {vary:?}"
            );
        }
    }
}
