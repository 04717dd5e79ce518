//! Route guards' decisions, for adapters (feature `http`): whether a request
//! may pass, where a refused page request is sent, and the `next` it may
//! carry back. The axum and actix adapters share them, so they behave the
//! same.

use std::time::Duration;

use crate::exchange::{AuthError, CurrentUser, Exchange, Unauthenticated};
use crate::http::OnStoreError;
use crate::store::Store;

/// `candidate` when it is a safe place to send the browser back to after a
/// login, else `"/"`.
///
/// Safe means a same-site relative path: it starts with a single `/` (not
/// `//` or `/\`, which browsers read as another host), holds no backslash (read
/// as `/`) and no control character (a tab or line break, stripped or split on
/// by browsers and headers), and stays so once percent-decoded. Anything else,
/// `https://evil.com` and `javascript:` included, becomes `/`.
///
/// The guards run the request's own path through it; run a `next` that comes
/// back from a login form through it too before redirecting to it.
///
/// ```
/// use expected_core::guard::safe_next;
///
/// assert_eq!(safe_next("/account?tab=devices"), "/account?tab=devices");
/// for attack in ["//evil.com", "/\\evil.com", "https://evil.com", "javascript:alert(1)", "/%0d%0aSet-Cookie:x", "/%2F/evil.com", ""] {
///     assert_eq!(safe_next(attack), "/", "{attack}");
/// }
/// ```
pub fn safe_next(candidate: &str) -> &str {
    if is_local_path(candidate) && is_local_path(&percent_decode(candidate)) { candidate } else { "/" }
}

fn is_local_path(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
}

/// `text` with every `%XX` escape decoded (invalid escapes kept as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escape {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// `text` percent-encoded as a query parameter value: every byte but the
/// unreserved `A-Z a-z 0-9 - . _ ~` escaped.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// `page` with `next` (made [safe](safe_next) first) as its `next`
/// parameter: `/login?next=%2Faccount`.
///
/// ```
/// use expected_core::guard::redirect_location;
///
/// assert_eq!(redirect_location("/login", "/a?b=c"), "/login?next=%2Fa%3Fb%3Dc");
/// assert_eq!(redirect_location("/login", "//evil.com"), "/login?next=%2F");
/// ```
pub fn redirect_location(page: &str, next: &str) -> String {
    let separator = if page.contains('?') { '&' } else { '?' };
    format!("{page}{separator}next={}", percent_encode(safe_next(next)))
}

/// Whether a page path given to the layer is usable as a `Location` header.
///
/// ```
/// use expected_core::guard::is_page_path;
///
/// assert!(is_page_path("/signin?lang=fr"));
/// assert!(!is_page_path("/sign in") && !is_page_path(""));
/// ```
pub fn is_page_path(page: &str) -> bool {
    !page.is_empty() && page.bytes().all(|byte| byte.is_ascii_graphic())
}

/// What an adapter's route guards demand and where they send refused pages:
/// the settings its layer or middleware keeps, with the defaults every
/// adapter shares.
///
/// ```
/// use std::time::Duration;
/// use expected_core::guard::Guards;
///
/// // What an adapter's `login_page("/signin")` and `fresh_for(…)` keep:
/// let guards = Guards { login_page: "/signin", fresh_for: Duration::from_secs(300), ..Guards::default() };
/// assert_eq!(guards.confirm_password_page, "/confirm-password");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guards {
    /// What a store outage comes to (the guards treat the request as a
    /// visitor's under [`OnStoreError::Anonymous`]).
    pub on_store_error: OnStoreError,
    /// Where a page guard sends a browser that is not logged in (default
    /// `/login`).
    pub login_page: &'static str,
    /// Where a page guard sends a logged-in browser whose password entry is
    /// not recent enough (default `/confirm-password`).
    pub confirm_password_page: &'static str,
    /// How recent a password entry the fresh guards demand (default 10
    /// minutes).
    pub fresh_for: Duration,
}

impl Default for Guards {
    fn default() -> Self {
        Self {
            on_store_error: OnStoreError::default(),
            login_page: "/login",
            confirm_password_page: "/confirm-password",
            fresh_for: Duration::from_secs(10 * 60),
        }
    }
}

impl Guards {
    /// A guard's question: the logged-in user (fresh within
    /// [`Guards::fresh_for`] when `fresh`), or why not, a store outage
    /// counting as not logged in when the policy treats outages as visitors.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use expected_core::guard::Guards;
    /// use expected_core::{AuthError, ClientMeta, Config, Exchange, Expected, Unauthenticated};
    /// use expected_store_memory::MemoryStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let engine = Arc::new(Expected::new(MemoryStore::new(), Config::default()));
    /// // A request that carries no cookie:
    /// let exchange = Exchange::new(engine, Default::default(), ClientMeta::default());
    /// let refused = Guards::default().ask(&exchange, false).await;
    /// assert!(matches!(refused, Err(AuthError::Unauthenticated(Unauthenticated::NotLoggedIn))));
    /// # }
    /// ```
    pub async fn ask<S: Store>(&self, exchange: &Exchange<S>, fresh: bool) -> Result<CurrentUser, AuthError> {
        if fresh { self.ask_fresh(exchange).await } else { self.ask_user(exchange).await }
    }

    /// [`ask`](Self::ask) for any logged-in user. Its future holds only
    /// [`Exchange::require_user`]'s, where `ask`'s holds room for the larger
    /// of the two questions: an API guard's extractor future is part of the
    /// handler's, which axum boxes per request.
    pub async fn ask_user<S: Store>(&self, exchange: &Exchange<S>) -> Result<CurrentUser, AuthError> {
        self.answered(exchange.require_user().await)
    }

    /// [`ask`](Self::ask) for a user who entered their password less than
    /// `fresh_for` ago.
    pub async fn ask_fresh<S: Store>(&self, exchange: &Exchange<S>) -> Result<CurrentUser, AuthError> {
        self.answered(exchange.require_fresh(self.fresh_for).await)
    }

    /// An answer under [`on_store_error`](Self::on_store_error).
    fn answered(&self, answer: Result<CurrentUser, AuthError>) -> Result<CurrentUser, AuthError> {
        match answer {
            Err(AuthError::Store(_)) if self.on_store_error == OnStoreError::Anonymous => {
                Err(Unauthenticated::NotLoggedIn.into())
            }
            other => other,
        }
    }

    /// Where a page guard sends the browser it refuses with `error`, having
    /// asked for `asked_for`: the `Location` of the confirm-password page
    /// when logged in but not freshly, of the login page when not logged in,
    /// each with `asked_for` as a [safe](safe_next) `next`; any other error
    /// (a store outage) is answered as it is.
    ///
    /// ```
    /// use expected_core::guard::Guards;
    /// use expected_core::{AuthError, Unauthenticated};
    ///
    /// let guards = Guards::default();
    /// let stale = AuthError::Unauthenticated(Unauthenticated::ReauthenticationRequired);
    /// let location = guards.refusal(stale, "/security").ok();
    /// assert_eq!(location.as_deref(), Some("/confirm-password?next=%2Fsecurity"));
    /// ```
    pub fn refusal(&self, error: AuthError, asked_for: &str) -> Result<String, AuthError> {
        let page = match error {
            AuthError::Unauthenticated(Unauthenticated::ReauthenticationRequired) => {
                self.confirm_password_page
            }
            AuthError::Unauthenticated(_) => self.login_page,
            other => return Err(other),
        };
        Ok(redirect_location(page, asked_for))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_site_paths_survive() {
        for safe in ["/", "/account", "/a/b?c=d&e=%2F", "/javascript:alert(1)", "/~user/x.y-z_"] {
            assert_eq!(safe_next(safe), safe);
        }
        for attack in [
            "",
            "account",
            "//evil.com",
            "///evil.com",
            "/\\evil.com",
            "/a\\b",
            "https://evil.com",
            "javascript:alert(1)",
            "/\t/evil.com",
            "/x\r\nSet-Cookie: a=b",
            "/%0d%0aSet-Cookie:%20a=b",
            "/%2F/evil.com",
            "/%5Cevil.com",
            "/%09/evil.com",
            " /account",
        ] {
            assert_eq!(safe_next(attack), "/", "{attack:?}");
        }
    }

    #[test]
    fn locations_encode_next_as_one_query_value() {
        assert_eq!(redirect_location("/login", "/a?b=c&d=e"), "/login?next=%2Fa%3Fb%3Dc%26d%3De");
        assert_eq!(redirect_location("/login?lang=fr", "/"), "/login?lang=fr&next=%2F");
        assert_eq!(redirect_location("/login", "//evil.com"), "/login?next=%2F");
        assert_eq!(redirect_location("/login", "/%0d%0a"), "/login?next=%2F");
        assert_eq!(redirect_location("/login", "/caf%C3%A9"), "/login?next=%2Fcaf%25C3%25A9");
    }

    #[test]
    fn refused_pages_go_to_login_or_confirm_and_outages_stay_errors() {
        let guards = Guards { login_page: "/in", ..Guards::default() };
        let stale = AuthError::Unauthenticated(Unauthenticated::ReauthenticationRequired);
        assert_eq!(
            guards.refusal(stale, "/account").ok().as_deref(),
            Some("/confirm-password?next=%2Faccount")
        );
        let visitor = AuthError::Unauthenticated(Unauthenticated::NotLoggedIn);
        assert_eq!(
            guards.refusal(visitor, "//evil.com").ok().as_deref(),
            Some("/in?next=%2F"),
            "next made safe"
        );
        let outage = AuthError::Store(crate::StoreError::new(crate::StoreErrorKind::Unavailable, "down"));
        assert!(matches!(guards.refusal(outage, "/"), Err(AuthError::Store(_))), "an outage is no redirect");
        assert_eq!(Guards::default().fresh_for, Duration::from_secs(600), "the documented default");
    }

    #[test]
    fn percent_decoding_keeps_invalid_escapes() {
        assert_eq!(percent_decode("/a%2Fb%zz%4"), "/a/b%zz%4");
    }
}
