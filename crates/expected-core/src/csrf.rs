//! CSRF protection by a synchronizer token kept in the session.
//!
//! A cross-site request forgery is a page of another site making the
//! browser send a state-changing request to yours: the browser adds your
//! cookies, so the request acts as the user. `SameSite=Lax` cookies (the
//! default) already keep other *sites* from doing it with a POST, but not a
//! sibling subdomain (same site, other origin), nor a browser that ignores
//! `SameSite`. The synchronizer token closes that: each session holds a
//! random token, the application's pages put it in their forms (a hidden
//! field, [`FORM_FIELD`]) and its scripts send it with `fetch` (a header,
//! [`HEADER`]), and a state-changing request passes only when it presents the
//! session's token. Another origin cannot read your pages, so it cannot
//! learn the token.
//!
//! - [`SessionHandle::csrf_token`]: the session's token, made on first use
//!   (32 bytes from the engine's [`TokenSource`](crate::TokenSource),
//!   unpadded base64url) and kept in the session data under [`SESSION_KEY`].
//!   A visitor without a session gets one, like any first write.
//! - [`SessionHandle::verify_csrf`]: whether a request presented it,
//!   compared in constant time ([`tokens_match`]).
//!
//! The token lives as long as the session's data: a password login carries
//! it along (a visitor's data moves into the user's session), and a new
//! session (a cookie login after the session expired, a logout) starts
//! without one. A form rendered before that no longer passes: answer it
//! with a page that says to reload. [`SessionHandle::clear`] removes the
//! token with the rest of the data.
//!
//! Pair it with an origin check ([`http::check_origin`](crate::http::check_origin),
//! feature `http`): a request without a session ([`CsrfError::NoSession`])
//! has no token to present, and that is exactly the request of a login form
//! a visitor never opened a session for. An application that lets such
//! requests through (as the demos do, so that reading the login page costs
//! no session) relies on the origin check against login CSRF.
//!
//! ```
//! # use expected_core::{SessionHandle, Store, csrf::{self, CsrfError}};
//! # async fn page<S: Store>(session: SessionHandle<S>) -> Result<String, CsrfError> {
//! // Rendering a form:
//! let token = session.csrf_token().await?;
//! let form = format!(
//!     r#"<form method="post" action="/logout"><input type="hidden" name="{}" value="{token}">…</form>"#,
//!     csrf::FORM_FIELD
//! );
//! # Ok(form) }
//! # async fn check<S: Store>(session: SessionHandle<S>, field: Option<&str>) -> Result<(), CsrfError> {
//! // Handling the POST (the field from the form, or the header from `fetch`):
//! session.verify_csrf(field).await?; // else 403
//! # Ok(()) }
//! ```

use serde_json::Value;
use subtle::ConstantTimeEq as _;

use crate::exchange::{SessionError, SessionHandle};
use crate::secret::encode_b64;
use crate::store::Store;

/// The session data key the token is kept under. The dot keeps it apart
/// from the keys an application picks (and out of reach of a JSON API that
/// only takes `A-Z a-z 0-9 _ -` keys, as the demos' does).
pub const SESSION_KEY: &str = "expected.csrf";

/// The request header a script sends the token in (`fetch(url, { headers:
/// { "X-CSRF-Token": token } })`). Another origin cannot set it on a
/// cross-origin request without the server's CORS consent.
pub const HEADER: &str = "x-csrf-token";

/// The form field a page sends the token in (a hidden `<input>`).
pub const FORM_FIELD: &str = "csrf_token";

/// Random bytes in a token: 256 bits, like a session id.
pub const TOKEN_BYTES: usize = 32;

/// Why a request's CSRF token was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsrfError {
    /// The request has no session, so no token to compare with (see the
    /// [module docs](self) for when to let that through).
    #[error("the request has no session, so no CSRF token")]
    NoSession,
    /// The request presented no token.
    #[error("the request presented no CSRF token")]
    Missing,
    /// The request presented a token that is not its session's (or the
    /// session has none yet: a new session after a cookie login, say).
    #[error("the CSRF token is not the session's")]
    Mismatch,
    /// Loading or writing the session failed (the store: fail closed).
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// Whether `presented` is `expected`, compared in constant time (the
/// length, public anyway, is compared first).
pub fn tokens_match(expected: &str, presented: &str) -> bool {
    bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// A token as this module makes them: [`TOKEN_BYTES`] of unpadded base64url.
fn is_token(text: &str) -> bool {
    text.len() == TOKEN_BYTES.div_ceil(3) * 4 - (3 - TOKEN_BYTES % 3) % 3
        && text.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

impl<S: Store> SessionHandle<S> {
    /// This session's CSRF token, made and stored under [`SESSION_KEY`] on
    /// first use (saved with the session after the handler, like any write;
    /// for a visitor without a session, this creates one).
    ///
    /// A value under the key that is not a token (an application wrote
    /// there) is replaced.
    pub async fn csrf_token(&self) -> Result<String, SessionError> {
        if let Some(Value::String(token)) = self.get::<Value>(SESSION_KEY).await?
            && is_token(&token)
        {
            return Ok(token);
        }
        let mut bytes = [0u8; TOKEN_BYTES];
        self.exchange().engine().tokens().fill(&mut bytes);
        let token = encode_b64(&bytes);
        self.insert(SESSION_KEY, &token).await?;
        Ok(token)
    }

    /// Whether the request presented this session's CSRF token
    /// (`presented`: the [`FORM_FIELD`] of a form, or the [`HEADER`] of a
    /// script's request), compared in constant time. Authenticates the
    /// request if nobody asked yet, so a remember-me cookie login happens
    /// here, and its new session has no token yet: [`CsrfError::Mismatch`].
    ///
    /// Never creates a token or a session.
    pub async fn verify_csrf(&self, presented: Option<&str>) -> Result<(), CsrfError> {
        let stored = self.get::<Value>(SESSION_KEY).await?;
        if stored.is_none() {
            let stored_session = self.record().await.map_err(SessionError::from)?.is_some();
            let pending_data = !self.data().await.map_err(SessionError::from)?.is_empty();
            if !stored_session && !pending_data {
                return Err(CsrfError::NoSession);
            }
        }
        let Some(presented) = presented.filter(|token| !token.is_empty()) else {
            return Err(CsrfError::Missing);
        };
        match stored {
            Some(Value::String(token)) if is_token(&token) && tokens_match(&token, presented) => Ok(()),
            _ => Err(CsrfError::Mismatch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        let token = encode_b64(&[9; TOKEN_BYTES]);
        assert!(is_token(&token), "{token}");
        assert!(tokens_match(&token, &token.clone()));
        assert!(!tokens_match(&token, &token[..42]), "a prefix");
        assert!(!tokens_match(&token, &format!("{token}A")), "longer");
        assert!(!tokens_match(&token, &encode_b64(&[8; TOKEN_BYTES])));
        assert!(!tokens_match(&token, ""));
        for bad in ["", "short", &"A".repeat(44), &format!("{}!", "A".repeat(42))] {
            assert!(!is_token(bad), "{bad}");
        }
    }
}
