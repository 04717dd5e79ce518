//! Glue for frameworks built on the `http` crate (feature `http`).
//!
//! ```
//! # use expected_core::{Config, http::{presented_cookies, MAX_COOKIE_HEADER_BYTES}};
//! let mut headers = http::HeaderMap::new();
//! headers.insert(http::header::COOKIE, "theme=dark; session=1.YWxpY2U.abc".parse().unwrap());
//! let config = Config::default();
//! let cookies = presented_cookies(&headers, &config).unwrap();
//! assert_eq!(cookies.session_values().as_slice(), ["1.YWxpY2U.abc"]);
//! assert!(cookies.auth_values().is_empty());
//! ```

use http::header::{COOKIE, HOST, HeaderMap, HeaderValue, ORIGIN, USER_AGENT};
use http::{Method, StatusCode, Uri};

use crate::config::Config;
use crate::cookies::SetCookie;
use crate::csrf::CsrfError;
use crate::exchange::{AuthError, SessionError, Unauthenticated};
use crate::store::StoreError;

/// What an adapter does with a request when the store is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnStoreError {
    /// Answer `503 Service Unavailable` with [`STORE_UNAVAILABLE_JSON`] and no
    /// cookie change where the outage is first met (the extractor or the
    /// handler's `?`). The default.
    #[default]
    ServiceUnavailable,
    /// Treat the request as a visitor's (cookies still untouched): for pages
    /// that work for anonymous users too. Extractors that need a user still
    /// refuse it (401).
    Anonymous,
}

/// What an adapter answers once the handler has run and the exchange
/// finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AfterHandler {
    /// The handler's response, with the exchange's `Set-Cookie`s.
    Respond,
    /// `503` with [`STORE_UNAVAILABLE_JSON`] instead of the handler's
    /// response.
    StoreUnavailable {
        /// Whether the exchange's `Set-Cookie`s still go out. They do when the
        /// outage was met only while saving session data: whatever the
        /// request already changed in the store (a rotated token) must reach
        /// the client, or its next request would look like a replay.
        with_cookies: bool,
    },
}

/// The adapter's answer after the handler: under
/// [`OnStoreError::ServiceUnavailable`], a store outage met by
/// authentication (`authentication_failed`) replaces the response, cookies
/// untouched; so does one met while saving session data (`saved`), so that
/// a write that was not stored is never answered as a success. Under
/// [`OnStoreError::Anonymous`] the handler's response stands (the failed save
/// is the adapter's to log).
pub fn after_handler(
    policy: OnStoreError,
    authentication_failed: bool,
    saved: &Result<(), crate::EngineError>,
) -> AfterHandler {
    if policy != OnStoreError::ServiceUnavailable {
        return AfterHandler::Respond;
    }
    if authentication_failed {
        return AfterHandler::StoreUnavailable { with_cookies: false };
    }
    match saved {
        Err(_) => AfterHandler::StoreUnavailable { with_cookies: true },
        Ok(()) => AfterHandler::Respond,
    }
}

/// The body of the 503 answer to a store outage.
pub const STORE_UNAVAILABLE_JSON: &str = r#"{"error":"store_unavailable"}"#;

/// The body of a 500 answer to an engine failure other than the store's.
pub const INTERNAL_ERROR_JSON: &str = r#"{"error":"internal"}"#;

/// The status and JSON body answering `why`: 401 for a missing login or a
/// replayed cookie, 403 when a fresher password entry is required.
pub fn unauthenticated(why: Unauthenticated) -> (StatusCode, &'static str) {
    match why {
        Unauthenticated::NotLoggedIn => (StatusCode::UNAUTHORIZED, r#"{"error":"unauthenticated"}"#),
        Unauthenticated::UnexpectedToken => (StatusCode::UNAUTHORIZED, r#"{"error":"unexpected_token"}"#),
        Unauthenticated::ReauthenticationRequired => {
            (StatusCode::FORBIDDEN, r#"{"error":"reauthentication_required"}"#)
        }
    }
}

/// The status and JSON body answering a store failure: 503.
pub fn store_failed(error: &StoreError) -> (StatusCode, &'static str) {
    tracing::error!(%error, "store unavailable; failing closed");
    (StatusCode::SERVICE_UNAVAILABLE, STORE_UNAVAILABLE_JSON)
}

/// The status and JSON body answering `error`.
pub fn auth_failed(error: &AuthError) -> (StatusCode, &'static str) {
    match error {
        AuthError::Unauthenticated(why) => unauthenticated(*why),
        AuthError::Store(error) => store_failed(error),
        other => {
            tracing::error!(error = %other, "authentication failed");
            (StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR_JSON)
        }
    }
}

/// The status and JSON body answering `error`: 503 for the store, 413 for
/// data over the limit, 400 for a value that is not JSON.
pub fn session_failed(error: &SessionError) -> (StatusCode, &'static str) {
    match error {
        SessionError::Store(error) => store_failed(error),
        SessionError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, r#"{"error":"session_too_large"}"#),
        SessionError::Json(_) => (StatusCode::BAD_REQUEST, r#"{"error":"invalid_session_value"}"#),
    }
}

/// The client IP to keep for the devices list: the last address of a trusted
/// proxy header (`X-Forwarded-For`'s last hop is the one your proxy saw;
/// `X-Real-IP` has one) when the adapter was told to trust one and it parses,
/// else the peer address.
pub fn client_ip(trusted_header: Option<&str>, peer: Option<std::net::IpAddr>) -> Option<std::net::IpAddr> {
    trusted_header.and_then(|text| text.rsplit(',').next()).and_then(|last| last.trim().parse().ok()).or(peer)
}

/// The body of the 403 answer to a request refused as cross-site
/// ([`check_origin`]).
pub const CROSS_SITE_JSON: &str = r#"{"error":"cross_site_request"}"#;

/// The body of the 403 answer to a missing or wrong CSRF token
/// ([`csrf_failed`]).
pub const INVALID_CSRF_TOKEN_JSON: &str = r#"{"error":"invalid_csrf_token"}"#;

/// The status and JSON body answering `error`: 403 `invalid_csrf_token`
/// for a token that is missing or wrong (or a request without a session, for
/// an application that refuses those), as a session failure otherwise (503
/// for the store).
pub fn csrf_failed(error: &CsrfError) -> (StatusCode, &'static str) {
    match error {
        CsrfError::Session(error) => session_failed(error),
        _ => (StatusCode::FORBIDDEN, INVALID_CSRF_TOKEN_JSON),
    }
}

/// The CSRF token a script sent in the [`csrf::HEADER`](crate::csrf::HEADER)
/// header, when there is exactly one and it is text.
pub fn csrf_header(headers: &HeaderMap) -> Option<&str> {
    single(headers, crate::csrf::HEADER)
}

/// The one value of header `name`: `None` when it is missing, repeated
/// (ambiguous) or not visible ASCII.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()
}

/// Why [`check_origin`] refused a state-changing request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CrossSite {
    /// `Sec-Fetch-Site` says `same-site`, `cross-site` or something else
    /// than `same-origin` and `none` (or is repeated).
    #[error("Sec-Fetch-Site says the request comes from elsewhere")]
    FetchSite,
    /// No `Sec-Fetch-Site`, and an `Origin` of another host (or `null`, or
    /// repeated), or no host to compare it with.
    #[error("the Origin is not this host")]
    Origin,
    /// Neither header: nothing shows where the request comes from.
    #[error("neither Sec-Fetch-Site nor Origin says where the request comes from")]
    Unknown,
}

/// Whether `method` is safe in the sense of RFC 9110 (GET, HEAD, OPTIONS,
/// TRACE; methods are case-sensitive): it must not change state, so
/// [`check_origin`] lets it through from anywhere. Everything else, unknown
/// methods included, is not.
pub fn is_safe_method(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE")
}

/// Whether a request may change state, by where the browser says it comes
/// from: the HTTP half of CSRF protection (the [`csrf`](crate::csrf) token is
/// the other).
///
/// Safe methods always pass. Any other request passes only with
/// `Sec-Fetch-Site: same-origin` or `none` (typed in, a bookmark), or,
/// without `Sec-Fetch-Site` (browsers from before 2020-2023), with an
/// `Origin` whose host and port are this request's (`Host`, else the URI's
/// authority, as HTTP/2 carries it). Everything else is refused:
/// `same-site` (a sibling subdomain is another origin, and `SameSite` cookies
/// go along with its requests), `cross-site`, `Origin: null`, another
/// origin, and a request with neither header (not a current browser, or one
/// a proxy stripped: refused rather than guessed at). A header sent twice is
/// ambiguous, and refused.
///
/// Browsers set both headers themselves; a page cannot forge them. Behind a
/// reverse proxy, forward the `Host` the browser sent, or `Origin` never
/// matches (only browsers without `Sec-Fetch-Site` care).
///
/// ```
/// use expected_core::http::{CrossSite, check_origin};
/// use http::{HeaderMap, Method, Uri};
///
/// let uri: Uri = "/logout".parse().unwrap();
/// let mut headers = HeaderMap::new();
/// headers.insert("host", "app.example".parse().unwrap());
/// assert_eq!(check_origin(&Method::POST, &uri, &headers), Err(CrossSite::Unknown));
/// headers.insert("origin", "https://app.example".parse().unwrap());
/// assert_eq!(check_origin(&Method::POST, &uri, &headers), Ok(()));
/// headers.insert("sec-fetch-site", "same-site".parse().unwrap());
/// assert_eq!(check_origin(&Method::POST, &uri, &headers), Err(CrossSite::FetchSite));
/// assert_eq!(check_origin(&Method::GET, &uri, &headers), Ok(()));
/// ```
pub fn check_origin(method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), CrossSite> {
    // Safe methods pass whatever their headers say: decided before any
    // header is looked up, as most requests are reads.
    if is_safe_method(method.as_str()) {
        return Ok(());
    }
    // Present but repeated or unreadable: an empty value, which never passes.
    let value = |name: &str| headers.contains_key(name).then(|| single(headers, name).unwrap_or_default());
    let host = match headers.get(HOST) {
        Some(_) => value(HOST.as_str()),
        None => uri.authority().map(|authority| authority.as_str()),
    };
    check_origin_values(method.as_str(), value("sec-fetch-site"), value(ORIGIN.as_str()), host)
}

/// [`check_origin`] on the request's method and header values, for
/// frameworks with their own header types (actix-web): each `None` when the
/// header is absent; pass `Some("")` for one that is present but repeated or
/// not text. `host` is the `Host` header, or the request URI's authority.
pub fn check_origin_values(
    method: &str,
    sec_fetch_site: Option<&str>,
    origin: Option<&str>,
    host: Option<&str>,
) -> Result<(), CrossSite> {
    if is_safe_method(method) {
        return Ok(());
    }
    if let Some(site) = sec_fetch_site {
        let site = site.trim();
        return if site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none") {
            Ok(())
        } else {
            Err(CrossSite::FetchSite)
        };
    }
    let Some(origin) = origin else { return Err(CrossSite::Unknown) };
    match host {
        Some(host) if origin_is_host(origin.trim(), host.trim()) => Ok(()),
        _ => Err(CrossSite::Origin),
    }
}

/// Whether the serialized origin `scheme://host[:port]` names `host`
/// (`name[:port]`), letters in any case and the scheme's default port
/// written or not.
fn origin_is_host(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else { return false };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return false,
    };
    let split = |text: &str| -> (String, String) {
        let text = text.to_ascii_lowercase();
        // An IPv6 literal's colons are inside the brackets.
        let port_at = text.rfind(':').filter(|&at| !text[at..].contains(']'));
        match port_at {
            Some(at) => (text[..at].to_owned(), text[at + 1..].to_owned()),
            None => (text.clone(), default.to_owned()),
        }
    };
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) || host.is_empty() {
        return false;
    }
    split(authority) == split(host)
}

pub use crate::cookies::{HeaderError, MAX_COOKIE_HEADER_BYTES, PresentedCookies};

/// Reads every value of the session and auth cookies from the `Cookie`
/// headers (see [`read_cookie_headers`](crate::cookies::read_cookie_headers)).
pub fn presented_cookies(headers: &HeaderMap, config: &Config) -> Result<PresentedCookies, HeaderError> {
    crate::cookies::read_cookie_headers(headers.get_all(COOKIE).iter().map(HeaderValue::as_bytes), config)
}

/// The `User-Agent` header, if it is valid UTF-8.
pub fn user_agent(headers: &HeaderMap) -> Option<&str> {
    // UTF-8, not `HeaderValue::to_str`'s visible ASCII: a byte-by-byte check
    // that `ClientMeta::new` repeats (it keeps printable text, cut to size).
    headers.get(USER_AGENT).and_then(|value| std::str::from_utf8(value.as_bytes()).ok())
}

impl SetCookie {
    /// The `Set-Cookie` header value.
    pub fn to_header_value(&self) -> HeaderValue {
        // Values are base64url and dots, names RFC 6265 tokens, attributes
        // visible ASCII (all checked by Config), so this never falls back.
        HeaderValue::from_str(&self.header_value()).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// Appends `Set-Cookie` headers for `cookies`.
pub fn append_set_cookies(headers: &mut HeaderMap, cookies: &[SetCookie]) {
    for cookie in cookies {
        headers.append(http::header::SET_COOKIE, cookie.to_header_value());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_agent_is_taken_when_it_is_utf8() -> Result<(), Box<dyn std::error::Error>> {
        let agent = |bytes: &[u8]| -> Result<Option<String>, http::header::InvalidHeaderValue> {
            let mut headers = HeaderMap::new();
            headers.insert(USER_AGENT, HeaderValue::from_bytes(bytes)?);
            Ok(user_agent(&headers).map(str::to_owned))
        };
        assert_eq!(agent(b"Mozilla/5.0 (X11)")?.as_deref(), Some("Mozilla/5.0 (X11)"));
        assert_eq!(
            agent("Navigateur \u{e9}t\u{e9}".as_bytes())?.as_deref(),
            Some("Navigateur \u{e9}t\u{e9}")
        );
        assert_eq!(agent(b"bad \xff byte")?, None, "not UTF-8: no user agent");
        let meta = crate::ClientMeta::new(None, agent(b"tab\there")?.as_deref());
        assert_eq!(meta.user_agent.as_deref(), Some("tabhere"), "control characters dropped");
        assert_eq!(user_agent(&HeaderMap::new()), None);
        Ok(())
    }

    #[test]
    fn client_ip_prefers_the_trusted_header_and_its_last_hop() {
        let peer = Some(std::net::IpAddr::from([10, 0, 0, 1]));
        let last_hop = Some(std::net::IpAddr::from([198, 51, 100, 2]));
        assert_eq!(
            client_ip(Some("203.0.113.9, 198.51.100.2"), peer),
            last_hop,
            "the last hop is the proxy's"
        );
        assert_eq!(client_ip(Some(" 2001:db8::1 "), peer), "2001:db8::1".parse().ok(), "IPv6, trimmed");
        assert_eq!(client_ip(None, peer), peer, "no trusted header: the peer");
        assert_eq!(client_ip(Some("garbage"), peer), peer, "unparseable falls back to the peer");
    }

    #[test]
    fn outages_after_the_handler_replace_its_answer_under_the_default_policy() {
        let failed_save =
            Err(crate::EngineError::Store(StoreError::new(crate::StoreErrorKind::Unavailable, "x")));
        let strict = OnStoreError::ServiceUnavailable;
        assert_eq!(after_handler(strict, false, &Ok(())), AfterHandler::Respond);
        assert_eq!(
            after_handler(strict, true, &Ok(())),
            AfterHandler::StoreUnavailable { with_cookies: false }
        );
        assert_eq!(
            after_handler(strict, false, &failed_save),
            AfterHandler::StoreUnavailable { with_cookies: true },
            "an unsaved write is no success, but a rotation it made must reach the client"
        );
        assert_eq!(after_handler(OnStoreError::Anonymous, true, &failed_save), AfterHandler::Respond);
    }

    #[test]
    fn each_refusal_has_its_status_and_body() {
        assert_eq!(unauthenticated(Unauthenticated::NotLoggedIn).0, StatusCode::UNAUTHORIZED);
        assert_eq!(unauthenticated(Unauthenticated::UnexpectedToken).1, r#"{"error":"unexpected_token"}"#);
        let fresh = unauthenticated(Unauthenticated::ReauthenticationRequired);
        assert_eq!(fresh, (StatusCode::FORBIDDEN, r#"{"error":"reauthentication_required"}"#));
        let outage = StoreError::new(crate::StoreErrorKind::Unavailable, "down");
        assert_eq!(store_failed(&outage), (StatusCode::SERVICE_UNAVAILABLE, STORE_UNAVAILABLE_JSON));
        let too_large = SessionError::TooLarge { size: 10, limit: 2 };
        assert_eq!(session_failed(&too_large).0, StatusCode::PAYLOAD_TOO_LARGE);
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_same_origin_requests_change_state() {
        let uri: Uri = "/logout".parse().unwrap_or_default();
        let host = ("host", "app.example:8443");
        let post =
            |pairs: &[(&'static str, &'static str)]| check_origin(&Method::POST, &uri, &headers(pairs));
        assert_eq!(post(&[host, ("sec-fetch-site", "same-origin")]), Ok(()));
        assert_eq!(post(&[host, ("sec-fetch-site", " None ")]), Ok(()), "typed in or bookmarked");
        for site in ["same-site", "cross-site", "", "bogus"] {
            let refused = check_origin(&Method::POST, &uri, &{
                let mut map = headers(&[host, ("origin", "https://app.example:8443")]);
                map.insert(
                    "sec-fetch-site",
                    HeaderValue::from_str(site).unwrap_or(HeaderValue::from_static("")),
                );
                map
            });
            assert_eq!(refused, Err(CrossSite::FetchSite), "{site:?}: the header decides, Origin or not");
        }
        assert_eq!(
            post(&[host, ("sec-fetch-site", "same-origin"), ("sec-fetch-site", "same-origin")]),
            Err(CrossSite::FetchSite),
            "repeated: ambiguous"
        );
        assert_eq!(post(&[host]), Err(CrossSite::Unknown), "header-less requests no longer pass");
        assert_eq!(post(&[host, ("origin", "https://app.example:8443")]), Ok(()));
        assert_eq!(post(&[host, ("origin", "HTTPS://App.Example:8443")]), Ok(()), "any letter case");
        for origin in [
            "https://app.example",
            "https://evil.example:8443",
            "https://app.example:8443.evil.example",
            "https://sub.app.example:8443",
            "null",
            "app.example:8443",
            "https://app.example:8443/path",
            "https://user@app.example:8443",
            "ftp://app.example:8443",
        ] {
            let mut map = headers(&[host]);
            map.insert("origin", HeaderValue::from_static(origin));
            assert_eq!(check_origin(&Method::POST, &uri, &map), Err(CrossSite::Origin), "{origin}");
        }
        let default_port = [("host", "app.example"), ("origin", "https://app.example:443")];
        assert_eq!(post(&default_port), Ok(()), "the default port, written or not");
        assert_eq!(post(&[("host", "app.example:443"), ("origin", "https://app.example")]), Ok(()));
        assert_eq!(
            post(&[("host", "app.example"), ("origin", "http://app.example:443")]),
            Err(CrossSite::Origin)
        );
        assert_eq!(post(&[("host", "[::1]:3000"), ("origin", "http://[::1]:3000")]), Ok(()));
        assert_eq!(post(&[("host", "[::1]"), ("origin", "http://[::1]:80")]), Ok(()));
        assert_eq!(post(&[("origin", "https://app.example")]), Err(CrossSite::Origin), "no host to compare");
        let http2: Uri = "https://app.example/logout".parse().unwrap_or_default();
        let origin = headers(&[("origin", "https://app.example")]);
        assert_eq!(check_origin(&Method::DELETE, &http2, &origin), Ok(()), "HTTP/2: the URI's authority");

        assert_eq!(check_origin_values("post", None, None, None), Err(CrossSite::Unknown), "case-sensitive");
        assert_eq!(check_origin_values("POST", Some("same-origin"), None, None), Ok(()));
        for method in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert_eq!(check_origin(&method, &uri, &headers(&[("sec-fetch-site", "cross-site")])), Ok(()));
        }
        for method in
            [Method::PUT, Method::PATCH, Method::DELETE, Method::from_bytes(b"PURGE").unwrap_or_default()]
        {
            assert_eq!(check_origin(&method, &uri, &headers(&[host])), Err(CrossSite::Unknown), "{method}");
        }
    }

    #[test]
    fn the_csrf_header_is_read_once() {
        assert_eq!(csrf_header(&headers(&[("x-csrf-token", "abc")])), Some("abc"));
        assert_eq!(csrf_header(&headers(&[("X-CSRF-Token", "a"), ("x-csrf-token", "b")])), None, "ambiguous");
        assert_eq!(csrf_header(&HeaderMap::new()), None);
        assert_eq!(csrf_failed(&CsrfError::Mismatch), (StatusCode::FORBIDDEN, INVALID_CSRF_TOKEN_JSON));
        assert_eq!(csrf_failed(&CsrfError::NoSession).0, StatusCode::FORBIDDEN);
        let outage = CsrfError::Session(SessionError::Store(StoreError::new(
            crate::StoreErrorKind::Unavailable,
            "down",
        )));
        assert_eq!(csrf_failed(&outage).0, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn oversized_headers_are_refused() {
        let mut headers = HeaderMap::new();
        let big = format!("session={}", "a".repeat(MAX_COOKIE_HEADER_BYTES));
        headers.insert(COOKIE, HeaderValue::from_str(&big).unwrap_or_else(|_| HeaderValue::from_static("")));
        assert!(matches!(presented_cookies(&headers, &Config::default()), Err(HeaderError::Oversize(_))));
    }
}
