//! Glue for frameworks built on the `http` crate (feature `http`).
//!
//! ```
//! # use expected_core::{Config, http::{presented_cookies, MAX_COOKIE_HEADER_BYTES}};
//! let mut headers = http::HeaderMap::new();
//! headers.insert(http::header::COOKIE, "theme=dark; session=1.YWxpY2U.abc".parse().unwrap());
//! let config = Config::default();
//! let cookies = presented_cookies(&headers, &config).unwrap();
//! assert_eq!(cookies.session.as_deref(), Some("1.YWxpY2U.abc"));
//! assert_eq!(cookies.auth, None);
//! ```

use http::header::{COOKIE, HeaderMap, HeaderValue, USER_AGENT};

use crate::config::Config;
use crate::cookies::SetCookie;

pub use crate::cookies::{HeaderError, MAX_COOKIE_HEADER_BYTES, PresentedCookies};

/// Reads the session and auth cookies from the `Cookie` headers (see
/// [`read_cookie_headers`](crate::cookies::read_cookie_headers)).
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
    fn oversized_headers_are_refused() {
        let mut headers = HeaderMap::new();
        let big = format!("session={}", "a".repeat(MAX_COOKIE_HEADER_BYTES));
        headers.insert(COOKIE, HeaderValue::from_str(&big).unwrap_or_else(|_| HeaderValue::from_static("")));
        assert!(matches!(presented_cookies(&headers, &Config::default()), Err(HeaderError::Oversize(_))));
    }
}
