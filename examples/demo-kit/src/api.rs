//! The JSON contract every demo serves (see the [crate docs](crate) for the
//! routes). Every type both serializes and deserializes, so servers and the
//! scenario suite share it.

use expected_core::time::OffsetDateTime;
use expected_core::{Device, Via};
use serde::{Deserialize, Serialize};

/// Largest request body accepted, in bytes; larger ones answer 400
/// [`error::BODY_TOO_LARGE`].
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The `error` codes of error bodies.
pub mod error {
    /// 401: wrong password, or no such user (the two are not told apart).
    pub const INVALID_CREDENTIALS: &str = "invalid_credentials";
    /// 401: not logged in.
    pub const UNAUTHENTICATED: &str = "unauthenticated";
    /// 401: this request presented a replayed remember-me cookie; every
    /// login and session of the user was revoked.
    pub const UNEXPECTED_TOKEN: &str = "unexpected_token";
    /// 400: the body is not the JSON the route takes.
    pub const INVALID_BODY: &str = "invalid_body";
    /// 400: the body is over [`MAX_BODY_BYTES`](super::MAX_BODY_BYTES).
    pub const BODY_TOO_LARGE: &str = "body_too_large";
    /// 404: no such login (of the caller's), or no such route.
    pub const NOT_FOUND: &str = "not_found";
    /// 403: a state-changing request sent from another site.
    pub const CROSS_SITE_REQUEST: &str = "cross_site_request";
    /// 503: the store is down; nothing was changed, cookies included.
    pub const STORE_UNAVAILABLE: &str = "store_unavailable";
    /// 500: anything else.
    pub const INTERNAL: &str = "internal";
}

/// An error body: `{"error": code}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// One of the [`error`] codes.
    pub error: String,
}

impl ErrorBody {
    /// The body for `code`.
    pub fn new(code: &str) -> Self {
        Self { error: code.to_owned() }
    }
}

/// `POST /api/login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRequest {
    /// Who.
    pub username: String,
    /// Their password.
    pub password: String,
    /// "Remember me": a persistent login for this device. Default `false`.
    #[serde(default)]
    pub remember: bool,
}

/// `POST /api/login` → 200.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginResponse {
    /// Who is now logged in.
    pub username: String,
    /// Whether a remember-me cookie was set.
    pub remembered: bool,
}

/// How the request was authenticated, as `GET /api/me` tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ViaName {
    /// The session cookie.
    Session,
    /// The remember-me cookie, rotated.
    Cookie,
    /// A just-rotated remember-me cookie inside the grace window.
    Grace,
    /// A password, during this very request.
    Password,
}

impl From<Via> for ViaName {
    fn from(via: Via) -> Self {
        match via {
            Via::Session => Self::Session,
            Via::CookieLogin => Self::Cookie,
            Via::Grace => Self::Grace,
            Via::Password => Self::Password,
        }
    }
}

/// `GET /api/me` → 200.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    /// Who is logged in.
    pub username: String,
    /// How this request was authenticated.
    pub via: ViaName,
}

/// One entry of `GET /api/logins`: a device that ticked "remember me".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginInfo {
    /// The login's serial, to revoke it with `DELETE /api/logins/{serial}`.
    pub serial: String,
    /// When the login was made.
    #[serde(with = "expected_core::time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last opened a session.
    #[serde(with = "expected_core::time::serde::rfc3339")]
    pub last_used_at: OffsetDateTime,
    /// The last client IP seen.
    pub ip: Option<String>,
    /// The last user agent seen.
    pub user_agent: Option<String>,
    /// Whether it is the login of the device asking.
    pub current: bool,
}

impl From<&Device> for LoginInfo {
    fn from(device: &Device) -> Self {
        Self {
            serial: device.serial.to_string(),
            created_at: device.created_at,
            last_used_at: device.last_used_at,
            ip: device.ip.map(|ip| ip.to_string()),
            user_agent: device.user_agent.clone(),
            current: device.current,
        }
    }
}

/// `GET /healthz` → 200.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

impl Health {
    /// `{"status":"ok"}`.
    pub fn ok() -> Self {
        Self { status: "ok".to_owned() }
    }
}

/// Whether a state-changing request came from another site, by its
/// `Sec-Fetch-Site` header (which every current browser sends and no page can
/// forge). SameSite=Lax cookies already keep other sites from acting as the
/// user; this also stops them logging the user in to an account of theirs
/// (login CSRF). Requests without the header (curl, old browsers) pass.
pub fn is_cross_site(method: &str, sec_fetch_site: Option<&str>) -> bool {
    let safe = matches!(method, "GET" | "HEAD" | "OPTIONS");
    !safe && sec_fetch_site.is_some_and(|site| site.trim().eq_ignore_ascii_case("cross-site"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_request_remember_defaults_to_false() -> Result<(), serde_json::Error> {
        let request: LoginRequest = serde_json::from_str(r#"{"username":"a","password":"b"}"#)?;
        assert!(!request.remember);
        Ok(())
    }

    #[test]
    fn via_names_are_lowercase() -> Result<(), serde_json::Error> {
        assert_eq!(serde_json::to_string(&ViaName::from(Via::CookieLogin))?, r#""cookie""#);
        assert_eq!(serde_json::to_string(&ViaName::from(Via::Grace))?, r#""grace""#);
        Ok(())
    }

    #[test]
    fn only_cross_site_state_changes_are_refused() {
        assert!(is_cross_site("POST", Some("cross-site")));
        assert!(is_cross_site("DELETE", Some("Cross-Site")));
        assert!(!is_cross_site("GET", Some("cross-site")), "navigations are fine");
        assert!(!is_cross_site("POST", Some("same-origin")));
        assert!(!is_cross_site("POST", Some("none")), "typed in or bookmarked");
        assert!(!is_cross_site("POST", None));
    }
}
