//! The JSON contract every demo serves (see the [crate docs](crate) for the
//! routes). Every type both serializes and deserializes, so servers and the
//! scenario suite share it.

use expected_core::time::OffsetDateTime;
use expected_core::{AuthMethod, CurrentUser, Device, SessionData, Via};
use serde::{Deserialize, Serialize};

/// Largest request body accepted, in bytes; larger ones answer 400
/// [`error::BODY_TOO_LARGE`].
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Largest body of `PUT /api/session/{key}` (one JSON value), in bytes;
/// larger ones answer 400 [`error::BODY_TOO_LARGE`].
pub const MAX_SESSION_VALUE_BYTES: usize = 4 * 1024;

/// Longest session key, in bytes.
pub const MAX_SESSION_KEY_BYTES: usize = 64;

/// Whether `key` may name a session value: 1 to [`MAX_SESSION_KEY_BYTES`]
/// of `A-Z`, `a-z`, `0-9`, `_` and `-`. Others answer 400
/// [`error::INVALID_KEY`].
pub fn is_session_key(key: &str) -> bool {
    (1..=MAX_SESSION_KEY_BYTES).contains(&key.len())
        && key.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

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
    /// 400: the body is over [`MAX_BODY_BYTES`](super::MAX_BODY_BYTES)
    /// ([`MAX_SESSION_VALUE_BYTES`](super::MAX_SESSION_VALUE_BYTES) for a
    /// session value).
    pub const BODY_TOO_LARGE: &str = "body_too_large";
    /// 400: not a session key (see [`is_session_key`](super::is_session_key)).
    pub const INVALID_KEY: &str = "invalid_key";
    /// 403: logged in, but the password was not typed recently enough on this
    /// session (a remembered login, or longer ago than `EXPECTED_FRESH_SECS`).
    pub const REAUTHENTICATION_REQUIRED: &str = "reauthentication_required";
    /// 413: the write would make the session data larger than the library's
    /// limit (`Config::max_session_data_bytes`, 64 KiB); nothing was changed.
    pub const SESSION_TOO_LARGE: &str = "session_too_large";
    /// 404: no such login (of the caller's), or no such route.
    pub const NOT_FOUND: &str = "not_found";
    /// 403: a state-changing request that does not come from this origin
    /// (see `expected_core::http::check_origin`): another site, a sibling
    /// subdomain, or neither `Sec-Fetch-Site` nor `Origin` to tell.
    pub const CROSS_SITE_REQUEST: &str = "cross_site_request";
    /// 403: a logged-in user's state-changing request without their
    /// session's CSRF token (`X-CSRF-Token`, from `GET /api/csrf`, or the
    /// pages' hidden `csrf_token` field), or with another one.
    pub const INVALID_CSRF_TOKEN: &str = "invalid_csrf_token";
    /// 429: too many failed password attempts from this address or for this
    /// username (see [`LIMITS`](crate::LIMITS)), or every password check is
    /// busy; `Retry-After` says when to try again.
    pub const TOO_MANY_ATTEMPTS: &str = "too_many_attempts";
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
            Via::CookieLogin => Self::Cookie,
            Via::Grace => Self::Grace,
            Via::Password => Self::Password,
            // `Via::Session`, and any way a later version adds: a session.
            _ => Self::Session,
        }
    }
}

/// `GET /api/me` → 200.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Me {
    /// Who is logged in.
    pub username: String,
    /// How this request was authenticated.
    pub via: ViaName,
    /// How the session was opened or last confirmed: `password` (typed on
    /// this session) or `remembered` (opened by the remember-me cookie).
    pub method: AuthMethod,
    /// When the user last typed their password on this device.
    #[serde(with = "expected_core::time::serde::rfc3339")]
    pub authenticated_at: OffsetDateTime,
    /// Whether that was by password less than `EXPECTED_FRESH_SECS` ago: the
    /// security page and `POST /api/sensitive` need it.
    pub fresh: bool,
}

impl Me {
    /// What `/api/me` answers for `user`, fresh or not.
    pub fn new(user: &CurrentUser, fresh: bool) -> Self {
        Self {
            username: user.username.as_str().to_owned(),
            via: ViaName::from(user.via),
            method: user.method,
            authenticated_at: user.authenticated_at,
            fresh,
        }
    }
}

/// `GET /api/session` → 200: the request's session data, a visitor's or a
/// logged-in user's (`{}` when there is no session).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionView {
    /// Every value, by key.
    pub data: SessionData,
}

impl SessionView {
    /// The application's data of `data`: without the CSRF token the library
    /// keeps there (`GET /api/csrf` hands that out).
    pub fn new(mut data: SessionData) -> Self {
        data.remove(expected_core::csrf::SESSION_KEY);
        Self { data }
    }
}

/// `GET /api/csrf` → 200: the logged-in user's CSRF token, for the
/// `X-CSRF-Token` header of their state-changing requests. Made on first use
/// and kept for the session's life; a new session (a cookie login after the
/// old one expired) has a new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrfView {
    /// The token.
    pub token: String,
}

/// `POST /api/confirm-password`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmPasswordRequest {
    /// The logged-in user's password, again.
    pub password: String,
}

/// `POST /api/logout-others` → 200: what ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogoutOthersResponse {
    /// Remembered logins (devices) of the user that ended.
    pub logins: u64,
    /// Sessions of the user that ended (the other devices', remembered or
    /// not).
    pub sessions: u64,
}

impl LogoutOthersResponse {
    /// What the devices page's query (`logins=N&sessions=M`, see
    /// [`devices_after_logout_others`](crate::html::paths::devices_after_logout_others))
    /// says ended, if it says so.
    pub fn from_query(query: Option<&str>) -> Option<Self> {
        let count = |name| crate::html::query_param(query, name)?.parse().ok();
        Some(Self { logins: count("logins")?, sessions: count("sessions")? })
    }
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
    /// When the user last typed their password on it (signing in, or
    /// confirming it).
    #[serde(with = "expected_core::time::serde::rfc3339")]
    pub authenticated_at: OffsetDateTime,
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
            authenticated_at: device.authenticated_at,
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
    fn session_keys() {
        for key in ["theme", "a", "A-z_09", &"k".repeat(64)] {
            assert!(is_session_key(key), "{key}");
        }
        for key in ["", "a b", "a.b", "a/b", "a%2Fb", "thème", &"k".repeat(65)] {
            assert!(!is_session_key(key), "{key}");
        }
    }

    #[test]
    fn me_is_rfc3339_with_the_method_in_lowercase() -> Result<(), Box<dyn std::error::Error>> {
        let user = CurrentUser {
            username: expected_core::Username::new("alice")?,
            login: None,
            via: Via::CookieLogin,
            method: AuthMethod::Remembered,
            authenticated_at: OffsetDateTime::UNIX_EPOCH,
        };
        let json = serde_json::to_value(Me::new(&user, false))?;
        assert_eq!(
            json,
            serde_json::json!({
                "username": "alice",
                "via": "cookie",
                "method": "remembered",
                "authenticated_at": "1970-01-01T00:00:00Z",
                "fresh": false,
            })
        );
        Ok(())
    }
}
