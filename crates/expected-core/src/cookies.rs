//! Rendering the two cookies as `Set-Cookie` headers.

use std::fmt;

use cookie::Cookie;

use crate::config::Config;
use crate::credential::{AuthCookie, SessionCookie};

/// Which of the two cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CookieKind {
    /// The session cookie (no Max-Age: it ends with the browser session).
    Session,
    /// The auth ("remember me") cookie (Max-Age: what is left of the login's
    /// life, at most the cookie max age).
    Auth,
}

/// One `Set-Cookie` the response must carry: a new value, or a removal.
#[derive(Clone, PartialEq)]
pub struct SetCookie {
    kind: CookieKind,
    cookie: Cookie<'static>,
}

impl SetCookie {
    fn base(kind: CookieKind, value: String, config: &Config) -> Cookie<'static> {
        let name = match kind {
            CookieKind::Session => config.session_cookie_name(),
            CookieKind::Auth => config.auth_cookie_name(),
        };
        let mut cookie = Cookie::build((name.to_owned(), value))
            .http_only(true)
            .secure(config.secure())
            .same_site(config.same_site())
            .path(config.path().to_owned())
            .build();
        if let Some(domain) = config.domain() {
            cookie.set_domain(domain.to_owned());
        }
        cookie
    }

    /// Sets the session cookie.
    pub fn session(value: &SessionCookie, config: &Config) -> Self {
        Self { kind: CookieKind::Session, cookie: Self::base(CookieKind::Session, value.encode(), config) }
    }

    /// Sets the auth cookie, for the cookie max age.
    pub fn auth(value: &AuthCookie, config: &Config) -> Self {
        Self::auth_for(value, config.max_age(), config)
    }

    /// Sets the auth cookie for `max_age` at most (the login's remaining
    /// lifetime, say), never longer than the cookie max age and never less
    /// than a second.
    pub fn auth_for(value: &AuthCookie, max_age: time::Duration, config: &Config) -> Self {
        let mut cookie = Self::base(CookieKind::Auth, value.encode(), config);
        let max_age = max_age.min(config.max_age()).max(time::Duration::SECOND);
        cookie.set_max_age(max_age);
        Self { kind: CookieKind::Auth, cookie }
    }

    /// Removes a cookie: empty value, `Max-Age=0` and an expiry in the past,
    /// with the same path and domain so the browser matches it.
    pub fn remove(kind: CookieKind, config: &Config) -> Self {
        let mut cookie = Self::base(kind, String::new(), config);
        cookie.make_removal();
        Self { kind, cookie }
    }

    /// Which cookie this sets or removes.
    pub fn kind(&self) -> CookieKind {
        self.kind
    }

    /// Whether this removes the cookie.
    pub fn is_removal(&self) -> bool {
        self.cookie.value().is_empty()
    }

    /// The cookie's value (empty for a removal).
    pub fn value(&self) -> &str {
        self.cookie.value()
    }

    /// The cookie, as the `cookie` crate models it.
    pub fn as_cookie(&self) -> &Cookie<'static> {
        &self.cookie
    }

    /// The `Set-Cookie` header value.
    pub fn header_value(&self) -> String {
        self.cookie.to_string()
    }
}

impl fmt::Display for SetCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.cookie, f)
    }
}

impl fmt::Debug for SetCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The value is a bearer credential: never in logs.
        f.debug_struct("SetCookie")
            .field("kind", &self.kind)
            .field("removal", &self.is_removal())
            .finish_non_exhaustive()
    }
}

/// Most bytes of `Cookie` headers read from one request. Browsers send at most
/// a few KiB; anything larger is refused before it is parsed.
pub const MAX_COOKIE_HEADER_BYTES: usize = 16 * 1024;

/// Why a request's cookies could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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

/// Reads the session and auth cookies from the raw values of a request's
/// `Cookie` headers, whatever HTTP library carried them.
///
/// Headers adding up to more than [`MAX_COOKIE_HEADER_BYTES`] are refused
/// unread. When a name appears more than once (a cookie set for a parent
/// domain as well, say) the first is taken, which browsers send for the most
/// specific path; `__Host-` names rule that out. Values that are not UTF-8 are
/// skipped.
pub fn read_cookie_headers<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    config: &Config,
) -> Result<PresentedCookies, HeaderError> {
    let values: Vec<&[u8]> = values.into_iter().collect();
    let total: usize = values.iter().map(|value| value.len()).sum();
    if total > MAX_COOKIE_HEADER_BYTES {
        return Err(HeaderError::Oversize(total));
    }
    let mut found = PresentedCookies::default();
    for header in values {
        let Ok(text) = std::str::from_utf8(header) else { continue };
        for cookie in Cookie::split_parse(text).flatten() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{Serial, Token, Username};

    #[test]
    fn auth_cookie_has_every_attribute() -> Result<(), Box<dyn std::error::Error>> {
        let config = Config::builder()
            .auth_cookie_name("__Host-remember")
            .cookie_max_age(std::time::Duration::from_secs(3600))
            .build()?;
        let value = AuthCookie {
            username: Username::new("zoë")?,
            serial: Serial::from_bytes([1; 16]),
            token: Token::from_bytes([2; 32]),
        };
        let header = SetCookie::auth(&value, &config).header_value();
        assert!(header.starts_with(&format!("__Host-remember={}", value.encode())), "{header}");
        for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Max-Age=3600"] {
            assert!(header.contains(attribute), "{attribute} missing from {header}");
        }
        assert!(!header.contains("Domain"), "{header}");
        Ok(())
    }

    #[test]
    fn cookie_headers_are_bounded_and_the_first_of_duplicates_wins() {
        let config = Config::default();
        let headers: [&[u8]; 3] = [b"remember_me=first; x=1", b"\xff\xfe", b"remember_me=second; session=s"];
        let found = read_cookie_headers(headers, &config);
        assert_eq!(
            found,
            Ok(PresentedCookies { session: Some("s".into()), auth: Some("first".into()) }),
            "non-UTF-8 headers are skipped, the first duplicate wins"
        );
        let big = vec![b'a'; MAX_COOKIE_HEADER_BYTES + 1];
        let oversize = read_cookie_headers([big.as_slice()], &config);
        assert_eq!(oversize, Err(HeaderError::Oversize(MAX_COOKIE_HEADER_BYTES + 1)));
    }

    #[test]
    fn removal_matches_path_and_domain() -> Result<(), Box<dyn std::error::Error>> {
        let config =
            Config::builder().secure(false).path("/app").domain(Some("example.com".into())).build()?;
        let removal = SetCookie::remove(CookieKind::Session, &config);
        let header = removal.header_value();
        assert!(removal.is_removal());
        assert!(header.starts_with("session=;"), "{header}");
        for attribute in ["Max-Age=0", "Path=/app", "Domain=example.com", "HttpOnly"] {
            assert!(header.contains(attribute), "{attribute} missing from {header}");
        }
        assert!(!header.contains("Secure"), "{header}");
        Ok(())
    }
}
