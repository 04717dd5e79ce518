//! Glue for frameworks built on the `http` crate (feature `http`).
//!
//! ```
//! # use expected_core::{Config, http::{presented_cookies, MAX_COOKIE_HEADER_BYTES}};
//! let mut headers = http::HeaderMap::new();
//! headers.insert(http::header::COOKIE, "theme=dark; session=1.YWxpY2U.abc".parse().unwrap());
//! let config = Config::default();
//! let cookies = presented_cookies(&headers, &config).unwrap();
//! assert_eq!(cookies.session, ["1.YWxpY2U.abc"]);
//! assert!(cookies.auth.is_empty());
//! ```

use http::StatusCode;
use http::header::{COOKIE, HeaderMap, HeaderValue, USER_AGENT};

use crate::config::Config;
use crate::cookies::SetCookie;
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

pub use crate::cookies::{HeaderError, MAX_COOKIE_HEADER_BYTES, PresentedCookies};

/// Reads every value of the session and auth cookies from the `Cookie`
/// headers (see [`read_cookie_headers`](crate::cookies::read_cookie_headers)).
pub fn presented_cookies(headers: &HeaderMap, config: &Config) -> Result<PresentedCookies, HeaderError> {
    crate::cookies::read_cookie_headers(headers.get_all(COOKIE).iter().map(HeaderValue::as_bytes), config)
}

/// The `User-Agent` header, if it is valid UTF-8.
pub fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers.get(USER_AGENT).and_then(|value| value.to_str().ok())
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

    #[test]
    fn oversized_headers_are_refused() {
        let mut headers = HeaderMap::new();
        let big = format!("session={}", "a".repeat(MAX_COOKIE_HEADER_BYTES));
        headers.insert(COOKIE, HeaderValue::from_str(&big).unwrap_or_else(|_| HeaderValue::from_static("")));
        assert!(matches!(presented_cookies(&headers, &Config::default()), Err(HeaderError::Oversize(_))));
    }
}
