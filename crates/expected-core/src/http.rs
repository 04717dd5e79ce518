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

/// Most bytes of `Cookie` headers read from one request. Browsers send at most
/// a few KiB; anything larger is refused before it is parsed.
pub const MAX_COOKIE_HEADER_BYTES: usize = 16 * 1024;

/// Why a request's cookies could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The `Cookie` headers add up to more than [`MAX_COOKIE_HEADER_BYTES`].
    #[error("Cookie headers are {0} bytes, over the {MAX_COOKIE_HEADER_BYTES}-byte limit")]
    Oversize(usize),
}

/// The two cookies' raw values as a request carried them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PresentedCookies {
    /// The session cookie's value.
    pub session: Option<String>,
    /// The auth cookie's value.
    pub auth: Option<String>,
}

/// Reads the session and auth cookies from the `Cookie` headers.
///
/// When a name appears more than once (a cookie set for a parent domain as
/// well, say) the first is taken, which browsers send for the most specific
/// path; `__Host-` names rule that out. Non-UTF-8 header values are skipped.
pub fn presented_cookies(headers: &HeaderMap, config: &Config) -> Result<PresentedCookies, HeaderError> {
    let total: usize = headers.get_all(COOKIE).iter().map(|value| value.len()).sum();
    if total > MAX_COOKIE_HEADER_BYTES {
        return Err(HeaderError::Oversize(total));
    }
    let mut found = PresentedCookies::default();
    for header in headers.get_all(COOKIE) {
        let Ok(text) = header.to_str() else { continue };
        for cookie in cookie::Cookie::split_parse(text).flatten() {
            let slot = if cookie.name() == config.session_cookie_name() {
                &mut found.session
            } else if cookie.name() == config.auth_cookie_name() {
                &mut found.auth
            } else {
                continue;
            };
            if slot.is_none() {
                *slot = Some(cookie.value().to_owned());
            }
        }
    }
    Ok(found)
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

    #[test]
    fn first_of_duplicates_wins_across_headers() -> Result<(), HeaderError> {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("remember_me=first; x=1"));
        headers.append(COOKIE, HeaderValue::from_static("remember_me=second; session=s"));
        let found = presented_cookies(&headers, &Config::default())?;
        assert_eq!(found.auth.as_deref(), Some("first"));
        assert_eq!(found.session.as_deref(), Some("s"));
        Ok(())
    }
}
